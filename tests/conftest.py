"""Test setup: Triton's interpreter runs the kernels on CPU tensors.

TRITON_INTERPRET must be set before `triton.jit` decorates the kernels, i.e. before
`mn_triton` is imported anywhere, so it is set here at the very top.
"""

import hashlib
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")


def _source_digest(package: Path) -> str:
    files = sorted(package.rglob("*.py"))
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]


# torch.compile's on-disk caches (FX graph, AOTAutograd) do not notice a custom op whose
# schema changed (pytorch/pytorch#144344): a graph compiled before mn_triton's ops changed
# would be reused and call them with the old arguments. A cache of this source's own keeps
# reruns of the same code quick and never mixes two versions of the ops.
_PACKAGE = Path(__file__).resolve().parents[1] / "mn_triton"
os.environ.setdefault(
    "TORCHINDUCTOR_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"mn_triton_inductor_{_source_digest(_PACKAGE)}"),
)

import zlib  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import helpers  # noqa: E402
import memcheck  # noqa: E402
import mn_triton  # noqa: E402
import poison  # noqa: E402
from mn_triton import backend as mn_backend  # noqa: E402

memcheck.install()  # every interpreted launch: in bounds, no races between programs
poison.install()  # mn_triton's fresh float tensors start as NaN: unwritten reads show


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("+")[0].split(".")[:2])


def pytest_configure(config: pytest.Config) -> None:
    """Triton 3.6's interpreter (and older ones) fails any kernel whose loop bounds are
    computed from its arguments under NumPy >= 2.4 ("only 0-dimensional arrays can be
    converted to Python scalars"): say so once, instead of ~200 failing tests."""
    import numpy
    import triton

    old_interpreter = _release(triton.__version__) < (3, 7)
    if mn_backend.INTERPRETING and old_interpreter and _release(numpy.__version__) >= (2, 4):
        pytest.exit(
            f"Triton {triton.__version__}'s interpreter cannot run these kernels with NumPy "
            f"{numpy.__version__}: use Triton >= 3.7 or NumPy < 2.4 for the CPU tests, or run "
            "the GPU tests alone (TRITON_INTERPRET=0 python -m pytest tests -m gpu)",
            returncode=4,
        )


@pytest.fixture(autouse=True)
def _fresh_seed(request):
    """Every test draws its own data: a seed from its id (and MN_TEST_SEED, to re-draw)."""
    seed = zlib.crc32(request.node.nodeid.encode()) ^ int(os.environ.get("MN_TEST_SEED", "0"))
    torch.manual_seed(seed)
    print(f"seed={seed} (set MN_TEST_SEED to draw other data)")


@pytest.fixture(autouse=True)
def _backend_left_as_found():
    """A test that sets the global backend must put it back ('auto'): the tests after it that
    rely on 'auto' would otherwise run on the torch ops, the kernels unnoticed and untested.
    (tools/fuzz_sync.py's `run` once left 'torch' behind for every test after tests/test_fuzz.)"""
    yield
    left = mn_backend.get_backend()
    if left != "auto":
        mn_backend.set_backend("auto")
        pytest.fail(f"the test left the backend at {left!r}")


@pytest.fixture(autouse=True)
def _interpreter_variable_left_as_found():
    """A test must leave TRITON_INTERPRET as it found it: the processes that later tests
    start (test_sync's workers, test_mutants' pytest runs) read it when they import mn_triton,
    and without it their kernels would not run on the CPU. (Importing tools/compile_check.py
    sets it to 0: a test of the GPU run's warm-up once left it so for every test after it.)"""
    before = os.environ.get("TRITON_INTERPRET")
    yield
    after = os.environ.get("TRITON_INTERPRET")
    if after != before:
        if before is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = before
        pytest.fail(f"the test left TRITON_INTERPRET at {after!r} (it was {before!r})")


@pytest.fixture(params=["triton", "torch"])
def backend(request):
    """Run the test with the Triton kernels (interpreted on CPU) and with the torch-op path."""
    with mn_triton.use_backend(request.param):
        # Both paths compute the same results, so a 'triton' run that fell back to torch ops
        # would pass every comparison unnoticed.
        assert mn_backend.uses_kernels(torch.empty(1)) == (request.param == "triton")
        yield request.param


@pytest.fixture
def tiny_tiles():
    """helpers.tiny_tiles for the test's duration."""
    with helpers.tiny_tiles():
        yield
