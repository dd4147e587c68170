"""mn-triton: Mode Normalization and Mode Group Normalization as Triton kernels.

Drop-in `torch.nn` layers (Deecke, Murray & Bilen, ICLR 2019). CUDA tensors run Triton
kernels; CPU tensors run the same decomposition in torch ops, or the kernels through
Triton's interpreter when TRITON_INTERPRET=1 is set before import.
"""

from . import functional
from .backend import get_backend, set_backend, use_backend
from .convert import convert_to_mode_norm
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
from .swa import update_bn
from .sync import SyncModeNorm

__version__ = "0.1.0"

__all__ = [
    "convert_to_mode_norm",
    "functional",
    "get_backend",
    "set_backend",
    "use_backend",
    "ModeNorm",
    "ModeNorm1d",
    "ModeNorm2d",
    "ModeNorm3d",
    "ModeGroupNorm",
    "ModeGroupNorm1d",
    "ModeGroupNorm2d",
    "ModeGroupNorm3d",
    "SyncModeNorm",
    "update_bn",
]
