"""tests/poison.py: mn_triton's fresh float tensors start as NaN, nobody else's are touched."""

import torch

import poison

ALLOCATE = (
    "def allocate(x):\n"
    "    return {'empty': torch.empty(3), 'empty_like': torch.empty_like(x),\n"
    "            'empty_strided': torch.empty_strided((2, 2), (1, 2)),\n"
    "            'new_empty': x.new_empty(4), 'int': torch.empty(3, dtype=torch.int32),\n"
    "            'generator': next(torch.empty_like(x) for _ in range(1)),\n"
    "            'half': torch.empty(2, dtype=torch.float16),\n"
    "            'bfloat16': x.new_empty(2, dtype=torch.bfloat16)}\n"
)


def _allocate_as(module: str, monkeypatch) -> tuple[dict[str, torch.Tensor], int]:
    """Each allocator, called from code of module `module`; and how many fills it made."""
    fills = []
    fill = torch.Tensor.fill_
    monkeypatch.setattr(torch.Tensor, "fill_", lambda t, v: fills.append(v) or fill(t, v))
    scope = {"__name__": module, "torch": torch}
    exec(ALLOCATE, scope)
    made = scope["allocate"](torch.zeros(2, dtype=torch.float64))
    monkeypatch.undo()
    return made, len(fills)


def test_mn_tritons_float_allocations_are_nan_and_nobody_elses_are_touched(monkeypatch):
    assert poison._installed  # tests/conftest.py installs it
    ours, fills = _allocate_as("mn_triton.kernels.fake", monkeypatch)
    assert fills == 7  # every float tensor, of any width, not the int32 one
    assert all(t.isnan().all() for name, t in ours.items() if name != "int"), ours
    for module in ("reference._base", "tests.fake", "torch.nn.modules.linear", "mn_triton_x.fake"):
        assert _allocate_as(module, monkeypatch)[1] == 0, module


def test_code_that_dynamo_traces_is_left_alone():
    """Under torch.compile the allocation is traced, not run: poisoning it would take
    sys._getframe into the graph, which dynamo cannot trace (a graph break, fatal here)."""
    scope = {"__name__": "mn_triton.kernels.fake", "torch": torch}
    exec("def fresh(x):\n    return torch.empty_like(x).zero_() + x\n", scope)
    compiled = torch.compile(scope["fresh"], fullgraph=True, backend="eager")
    x = torch.randn(3)
    assert torch.equal(compiled(x), x)
