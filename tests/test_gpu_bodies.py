"""tests/test_gpu.py's bodies on the CPU, through Triton's interpreter, at their smallest cases.

That module is skipped without CUDA, so CI never runs its code: a name it reads that the
library no longer has (MixGrads.bias, renamed row_bias, went unseen until a review: all 22
cases of the mix check would have failed on a GPU, after compiling their kernels) shows only
in a GPU session's few minutes. Here each body runs with the module's device name pointed at
the CPU and the kernels' backend on, so such a slip fails in CI. What needs CUDA itself
(CUDA graphs, sync debug mode, two devices, 2³¹ elements) is left to the GPU, and process
groups are gloo's instead of NCCL's; this checks the test code, not the GPU.
"""

import inspect

import pytest
import test_gpu
import torch
from test_sync import _process_group_of_one as group_of_one

import mn_triton

# (test function's name, its arguments): the cheapest case of each body the CPU can run.
BODIES = [
    ("test_mode_norm_mix_kernels_match_the_torch_mix", (16, 24, 143, 3, True)),
    ("test_mode_norm_mix_kernels_match_the_torch_mix", (16, 24, 143, 3, False)),
    ("test_mode_norm_mix_kernels_match_the_torch_mix", (64, 8, 16, 1, True)),
    ("test_matches_oracle", ("ModeNorm2d", True, torch.float16, True)),
    ("test_matches_oracle", ("ModeGroupNorm2d", False, torch.float32, False)),
    ("test_float64_end_to_end", ("ModeNorm2d",)),
    ("test_full_oracle_check_small", ("ModeGroupNorm2d",)),
    ("test_mgn_pivots_match_the_torch_mix", (torch.float32,)),
    ("test_layer_shapes", ((32, 3),)),
    ("test_rows_of_one_element", ("ModeGroupNorm1d", True)),
    ("test_16_bit_and_transposed_rows_of_one_element", ("ModeNorm1d", "bfloat16")),
    ("test_large_offset", ()),
    ("test_hundreds_of_modes", ("ModeNorm2d",)),
    ("test_second_order_gradients", ("ModeGroupNorm2d",)),
    ("test_synchronising_layer_as_mode_norm", ()),  # over gloo here
    ("test_synchronising_path_in_a_group_of_one", ("computed_once_samples_split",)),
]

# The rest, each with what it needs that a CPU lacks. A new GPU test goes in one list or the
# other (test_every_gpu_test_is_run_here_or_named_as_needing_cuda).
NEEDS_CUDA = {
    "test_no_host_synchronisation": "CUDA's sync debug mode",
    "test_layer_on_a_device_that_is_not_the_current_one": "two CUDA devices",
    "test_long_channels_last_rows": "a grid past 65535 tiles (1 GiB of float16)",
    "test_more_than_2_pow_31_elements": "2³¹ elements (4.3 GB per tensor)",
    "test_a_cuda_graph_of_eager_calls_replays_them": "CUDA graphs",
    "test_compiled_and_cuda_graphs_match_eager": "CUDA graphs, and inductor launching user kernels",
    "test_traced_float64_layer_keeps_float64_accuracy": "inductor launching user kernels",
}


def test_every_gpu_test_is_run_here_or_named_as_needing_cuda():
    tests = {name for name, _ in inspect.getmembers(test_gpu, inspect.isfunction)}
    tests = {name for name in tests if name.startswith("test_")}
    run_here = {name for name, _ in BODIES}
    assert not run_here & NEEDS_CUDA.keys()
    assert tests == run_here | NEEDS_CUDA.keys(), "tests/test_gpu.py changed: sort its tests here"


@pytest.mark.parametrize(
    "name, args", BODIES, ids=[f"{name[5:]}-{i}" for i, (name, _) in enumerate(BODIES)]
)
def test_gpu_test_body_runs_on_the_cpu(name, args, monkeypatch):
    monkeypatch.setattr(test_gpu, "CUDA", "cpu")
    monkeypatch.setattr(test_gpu, "_process_group_of_one", lambda backend: group_of_one("gloo"))
    check_sync = test_gpu.check_group_of_one_matches_mode_norm
    monkeypatch.setattr(
        test_gpu,
        "check_group_of_one_matches_mode_norm",
        lambda device, backend: check_sync(device, "gloo"),
    )
    body = getattr(test_gpu, name)
    if "monkeypatch" in inspect.signature(body).parameters:
        args = (*args, monkeypatch)
    with mn_triton.use_backend("triton"):
        body(*args)
