"""The fast layers: the skeletons shared with `reference`, with forwards into the kernels."""

from __future__ import annotations

from torch import Tensor

from reference._base import ModeGroupNormBase, ModeNormBase, fx_leaf, rank_variants

from . import functional


class ModeNorm(ModeNormBase):
    """Mode Normalization, on Triton kernels (CUDA) or torch ops (CPU).

    Arguments and state: see `ModeNormBase`.
    """

    @fx_leaf
    def forward(self, input: Tensor) -> Tensor:
        y = functional.mode_norm(input, **self._functional_args(input))
        self._count_step()  # after the call: a refused call counts no step
        return y


ModeNorm1d, ModeNorm2d, ModeNorm3d = rank_variants(ModeNorm)


class ModeGroupNorm(ModeGroupNormBase):
    """Mode Group Normalization, on Triton kernels (CUDA) or torch ops (CPU).

    Arguments and state: see `ModeGroupNormBase`.
    """

    @fx_leaf
    def forward(self, input: Tensor) -> Tensor:
        return functional.mode_group_norm(input, **self._functional_args(input))


ModeGroupNorm1d, ModeGroupNorm2d, ModeGroupNorm3d = rank_variants(ModeGroupNorm)
