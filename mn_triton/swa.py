"""update_bn: stochastic weight averaging's running-estimate pass, for ModeNorm layers too.

`torch.optim.swa_utils.update_bn` recomputes the running estimates of the `_BatchNorm`
layers in a model, which the averaged weights no longer match. It finds layers by that
class, so it leaves every ModeNorm's estimates stale (and returns at once when a model has
no BatchNorm left). This one treats ModeNorm layers, either package's, like BatchNorm.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from reference._base import ModeNormBase


@torch.no_grad()
def update_bn(
    loader: Iterable[Any], model: nn.Module, device: int | torch.device | None = None
) -> None:
    """`torch.optim.swa_utils.update_bn` for BatchNorm and ModeNorm layers alike.

    One pass over `loader` in training mode. Each layer's running estimates restart and
    become the equal-weight average of the batches' statistics (momentum=None for the pass;
    each layer's momentum and every module's mode are restored afterwards: a norm kept in
    eval inside a training model, frozen, stays in eval, where torch's, which restores the
    model's own mode through `model.train(...)`, puts it in training). A batch is a
    tensor, or a list or tuple whose first element is the model's input; `device`, if
    given, is where batches are moved first.
    """
    kinds = (nn.modules.batchnorm._BatchNorm, ModeNormBase)
    norms = [m for m in model.modules() if isinstance(m, kinds)]
    if not norms:
        return
    momenta = {norm: norm.momentum for norm in norms}
    modes = {module: module.training for module in model.modules()}
    model.train()
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the pass
        for batch in loader:
            if isinstance(batch, (list, tuple)):
                batch = batch[0]
            model(batch if device is None else batch.to(device))
    finally:
        for norm, momentum in momenta.items():
            norm.momentum = momentum
        model.train(modes[model])  # as torch's (a module's own `train` may do more)
        for module, training in modes.items():  # then each module's own mode, as it was
            module.training = training
