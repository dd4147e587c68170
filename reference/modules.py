"""The reference layers: the shared skeletons from `_base` with paper-literal forwards."""

from __future__ import annotations

from torch import Tensor

from . import functional
from ._base import ModeGroupNormBase, ModeNormBase, fx_leaf, rank_variants


class ModeNorm(ModeNormBase):
    """Mode Normalization, eager and paper-literal (a loop over the modes).

    Arguments and state: see `ModeNormBase`.
    """

    @fx_leaf
    def forward(self, input: Tensor) -> Tensor:
        y = functional.mode_norm(input, **self._functional_args(input))
        self._count_step()  # after the call: a refused call counts no step
        return y


ModeNorm1d, ModeNorm2d, ModeNorm3d = rank_variants(ModeNorm)


class ModeGroupNorm(ModeGroupNormBase):
    """Mode Group Normalization, eager and paper-literal (a loop over the modes).

    Arguments and state: see `ModeGroupNormBase`.
    """

    @fx_leaf
    def forward(self, input: Tensor) -> Tensor:
        return functional.mode_group_norm(input, **self._functional_args(input))


ModeGroupNorm1d, ModeGroupNorm2d, ModeGroupNorm3d = rank_variants(ModeGroupNorm)
