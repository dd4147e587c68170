"""The fast layers: the skeletons shared with `reference`, with forwards into the kernels."""

from __future__ import annotations

from torch import Tensor

from reference._base import ModeGroupNormBase, ModeNormBase, rank_variants

from . import functional


class ModeNorm(ModeNormBase):
    """Mode Normalization (Deecke et al., 2019) over inputs of shape (N, C, *S), 0 ≤ |S| ≤ 3.

    Args mirror `nn.BatchNorm2d`, plus `num_modes` (K). State: `weight`, `bias`,
    `gate.weight`, `gate.bias`, `running_mean`, `running_mean_sq` (K, C), `num_batches_tracked`.
    """

    def forward(self, input: Tensor) -> Tensor:
        return functional.mode_norm(input, **self._functional_args(input))


ModeNorm1d, ModeNorm2d, ModeNorm3d = rank_variants(ModeNorm)


class ModeGroupNorm(ModeGroupNormBase):
    """Mode Group Normalization (Deecke et al., 2019) over inputs of shape (N, C, *S).

    State: `weight`, `bias`, `gate.weight` (K, 1), `gate.bias` (K,). No running estimates:
    training and eval compute the same function.
    """

    def forward(self, input: Tensor) -> Tensor:
        return functional.mode_group_norm(input, **self._functional_args(input))


ModeGroupNorm1d, ModeGroupNorm2d, ModeGroupNorm3d = rank_variants(ModeGroupNorm)
