"""tests/poison.py: mn_triton's fresh float tensors start as NaN, nobody else's are touched."""

import torch

import poison

ALLOCATE = (
    "def allocate(x):\n"
    "    return {'empty': torch.empty(3), 'empty_like': torch.empty_like(x),\n"
    "            'empty_strided': torch.empty_strided((2, 2), (1, 2)),\n"
    "            'new_empty': x.new_empty(4), 'int': torch.empty(3, dtype=torch.int32),\n"
    "            'generator': next(torch.empty_like(x) for _ in range(1))}\n"
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
    assert fills == 5  # every float tensor, not the int32 one
    assert all(t.isnan().all() for name, t in ours.items() if name != "int"), ours
    for module in ("reference._base", "tests.fake", "torch.nn.modules.linear"):
        assert _allocate_as(module, monkeypatch)[1] == 0, module
