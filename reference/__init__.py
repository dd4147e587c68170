"""Eager, paper-literal Mode Normalization: the yardstick for `mn_triton`."""

from . import functional
from .modules import (
    ModeGroupNorm,
    ModeGroupNorm1d,
    ModeGroupNorm2d,
    ModeGroupNorm3d,
    ModeNorm,
    ModeNorm1d,
    ModeNorm2d,
    ModeNorm3d,
)

__all__ = [
    "functional",
    "ModeNorm",
    "ModeNorm1d",
    "ModeNorm2d",
    "ModeNorm3d",
    "ModeGroupNorm",
    "ModeGroupNorm1d",
    "ModeGroupNorm2d",
    "ModeGroupNorm3d",
]
