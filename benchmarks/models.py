"""The networks of the end-to-end benchmark, with the normalization layer chosen by argument.

- `LeNet`: the paper's multi-task net (§4.1): LeNet-5 on 32×32×3 inputs — conv(6, 5×5) →
  pool → conv(16, 5×5) → pool → fc 120 → fc 84 → a 40-way head (MNIST, CIFAR-10, SVHN and
  Fashion-MNIST: 4 × 10 classes). A normalization layer follows each conv and each hidden fc
  layer (before the ReLU), where BatchNorm would sit. The paper gives no layer sizes; these
  are LeNet-5's.
- `ResNet`: the CIFAR ResNet of He et al. (2016, §4.2): a 3×3 conv with 16 channels, three
  stages of n basic blocks with widths 16/32/64 (the 2nd and 3rd start with stride 2),
  global average pooling and a linear head; depth 6n + 2 (ResNet-20: n = 3, ResNet-56: n = 9).
  Shortcuts are **option B**: a projection (1×1 conv, stride 2, then a normalization layer)
  where the shape changes, identity elsewhere — as in the MN authors' code (ldeecke/mn-torch),
  so every normalization layer of their ResNets is here too (2 more than option A's 6n + 1).

`width` scales every channel count (narrow versions for tests); 1.0 gives the real nets.
`activation` (ReLU by default, as in the papers) is there for tests/test_e2e.py, which trains
with a smooth one: a rounding difference can flip a ReLU's derivative and fork two otherwise
equal fp32 training runs.

Norm kinds: "batchnorm" (nn.BatchNorm1d/2d), "mn_triton" (`mn_triton.ModeNorm1d/2d`, the
fast path) and "reference" (`reference.ModeNorm1d/2d`, the eager paper-literal one). All
share BatchNorm's constructor conventions, so the nets are otherwise identical.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

import mn_triton
import reference

NORM_KINDS = ("batchnorm", "mn_triton", "reference")
MODELS = ("lenet", "resnet20", "resnet56")
NUM_CLASSES = {"lenet": 40, "resnet20": 10, "resnet56": 10}

NormFactory = Callable[[int, int], nn.Module]  # (num_features, dim) -> layer
Activation = Callable[[Tensor], Tensor]


def make_norm(kind: str, num_features: int, dim: int = 2, num_modes: int = 2) -> nn.Module:
    """A normalization layer for (N, C) features (dim=1) or (N, C, H, W) maps (dim=2).

    `num_modes` (K) is ignored for "batchnorm".
    """
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2, got {dim}")
    if kind == "batchnorm":
        return (nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d)(num_features)
    if kind == "mn_triton":
        package = mn_triton
    elif kind == "reference":
        package = reference
    else:
        raise ValueError(f"norm kind must be one of {NORM_KINDS}, got {kind!r}")
    layer = package.ModeNorm1d if dim == 1 else package.ModeNorm2d
    return layer(num_features, num_modes=num_modes)


def norm_factory(kind: str, num_modes: int = 2) -> NormFactory:
    """`make_norm` with the kind and K bound: what the models take."""
    make_norm(kind, 1, 1, num_modes)  # fail early on a bad kind
    return lambda num_features, dim: make_norm(kind, num_features, dim, num_modes)


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class LeNet(nn.Module):
    """LeNet-5 with a normalization layer after each conv and hidden fc layer (see module doc)."""

    def __init__(
        self,
        norm: NormFactory,
        num_classes: int = 40,
        width: float = 1.0,
        image_size: int = 32,
        activation: Activation = F.relu,
    ) -> None:
        super().__init__()
        self.act = activation
        c1, c2, f1, f2 = (_scaled(c, width) for c in (6, 16, 120, 84))
        side = ((image_size - 4) // 2 - 4) // 2  # two valid 5×5 convs, each followed by 2×2 pool
        if side < 1:
            raise ValueError(f"LeNet needs images of at least 16×16, got {image_size}")
        self.conv1, self.norm1 = nn.Conv2d(3, c1, 5), norm(c1, 2)
        self.conv2, self.norm2 = nn.Conv2d(c1, c2, 5), norm(c2, 2)
        self.fc1, self.norm3 = nn.Linear(c2 * side * side, f1), norm(f1, 1)
        self.fc2, self.norm4 = nn.Linear(f1, f2), norm(f2, 1)
        self.head = nn.Linear(f2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(self.act(self.norm1(self.conv1(x))), 2)
        x = F.max_pool2d(self.act(self.norm2(self.conv2(x))), 2)
        x = self.act(self.norm3(self.fc1(x.flatten(1))))
        x = self.act(self.norm4(self.fc2(x)))
        return self.head(x)


class BasicBlock(nn.Module):
    """Two 3×3 convs with normalization; option-B (projection) shortcut when the shape changes."""

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int,
        norm: NormFactory,
        activation: Activation = F.relu,
    ) -> None:
        super().__init__()
        self.act = activation
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.norm1 = norm(planes, 2)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.norm2 = norm(planes, 2)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), norm(planes, 2)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet (He et al., 2016): depth 6n + 2, widths 16/32/64 × `width`."""

    def __init__(
        self,
        blocks_per_stage: int,
        norm: NormFactory,
        num_classes: int = 10,
        width: float = 1.0,
        activation: Activation = F.relu,
    ) -> None:
        super().__init__()
        self.act = activation
        widths = [_scaled(c, width) for c in (16, 32, 64)]
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.norm = norm(widths[0], 2)
        stages, in_planes = [], widths[0]
        for i, planes in enumerate(widths):
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                stages.append(BasicBlock(in_planes, planes, stride, norm, activation))
                in_planes = planes
        self.blocks = nn.Sequential(*stages)
        self.head = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He init, as in He et al. (2016) and the MN code
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.norm(self.conv(x)))
        x = self.blocks(x)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build_model(
    name: str,
    norm_kind: str = "batchnorm",
    num_modes: int = 2,
    width: float = 1.0,
    num_classes: int | None = None,
    image_size: int = 32,
    activation: Activation = F.relu,
) -> nn.Module:
    """'lenet' | 'resnet20' | 'resnet56' with `norm_kind` layers (K = `num_modes` for MN)."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {name!r}")
    norm = norm_factory(norm_kind, num_modes)
    classes = NUM_CLASSES[name] if num_classes is None else num_classes
    if name == "lenet":
        return LeNet(norm, classes, width, image_size, activation)
    return ResNet({"resnet20": 3, "resnet56": 9}[name], norm, classes, width, activation)
