"""Module skeletons shared by `reference` and `mn_triton`.

Both packages must expose the same constructors, parameter and buffer names (SPEC §4), so
that `load_state_dict` moves weights between them. This file holds everything except the
computation: argument checks, parameters, buffers, `extra_repr`, input checks and the
state-dict guard. Each package subclasses these bases and supplies `forward`.

It also holds the few helpers both packages compute with, so that they cannot drift apart:
the running-estimate update of SPEC §1 (`update_running_stats`), the statistics' dtype
(`stat_dtype`), the row length (`row_length`), the floor of a mode's mass
(`MIN_MODE_MASS`) and `autocast_off`. A change to them changes mn_triton too.

Modelled on `torch/nn/modules/batchnorm.py` (`_NormBase`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import operator
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch
import torch.fx
from torch import Tensor, nn
from torch.nn.utils.prune import BasePruningMethod
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

# The smallest total gate mass N_k (or C_k) a mode may divide by. A mode whose softmax
# weights all underflow has N_k == 0; dividing by this instead keeps the mode's statistics
# finite (in training they are multiplied by gates that are themselves ~0). It is float32's
# smallest normal number, so it changes no mode of normal float32 mass; in float64 (and for
# subnormal float32 masses) it scales a mode's μ by N_k / tiny below it, and the running
# estimates take that in (README, Accuracy: "A mode without gate mass").
MIN_MODE_MASS = float(torch.finfo(torch.float32).tiny)


def stat_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics are computed in: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def row_length(x: Tensor) -> int:
    """L = prod(S): the number of values one (sample, channel) row of x (N, C, *S) holds."""
    return math.prod(x.shape[2:])


def autocast_off(t: Tensor) -> contextlib.AbstractContextManager:
    """A block where torch.autocast is off for `t`'s device type: statistics are float32
    whatever the input, but autocast would run matrix products (the gates' logits, sums
    over samples or modes) in 16 bits, as it does a Linear layer's."""
    device_type = t.device.type
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def without_autocast(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """`fn(input, ...)`, run with torch.autocast off for the input's device (`autocast_off`)."""

    @functools.wraps(fn)
    def run(input: Any, *args: Any, **kwargs: Any) -> Tensor:
        if not isinstance(input, Tensor):  # fn's own checks say what is wrong
            return fn(input, *args, **kwargs)
        with autocast_off(input):
            return fn(input, *args, **kwargs)

    return run


# Floating dtypes too narrow to hold the running estimates (see ModeNormBase._apply).
_NARROW_DTYPES = (torch.float16, torch.bfloat16)


def running_stats_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """The dtype of MN's running estimates for a module of floating dtype `dtype` (None:
    torch's default, which may be 16-bit too: `torch.set_default_dtype(torch.bfloat16)`):
    float32 for 16-bit modules, else that dtype itself."""
    dtype = torch.get_default_dtype() if dtype is None else dtype
    return torch.float32 if dtype in _NARROW_DTYPES else dtype


def _positive_index(value: Any, name: str) -> int:
    """`value` as a Python int > 0. Like torch.nn, takes anything with `__index__` (numpy
    integers, 0-d integer tensors); refuses bool, which is an int but never a size."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive int, got the bool {value!r}")
    try:
        index = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive int, got {value!r}") from None
    if index < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return index


def _number_in(value: Any, low: float, high: float = math.inf, low_open: bool = False) -> bool:
    """Whether `value` is a number (or one-element tensor) in [low, high] ((low, high] with
    `low_open`); False for NaN, None, strings and the like."""
    try:
        return bool((value > low if low_open else value >= low) and value <= high)
    except (TypeError, RuntimeError):  # not comparable with a number
        return False


def _check_eps(eps: Any, where: str = "") -> None:
    # A tensor or array of any other shape. (Plain numbers first: under torch.compile with
    # dynamic shapes eps is a SymFloat, on which dynamo refuses hasattr.)
    if not isinstance(eps, int | float) and tuple(getattr(eps, "shape", ())) != ():
        raise ValueError(f"{where}eps must be a single number (0-d if a tensor), got {eps!r}")
    if not _number_in(eps, 0.0, low_open=True):
        raise ValueError(f"{where}eps must be > 0, got {eps!r}")


def _check_common_args(num_features: Any, num_modes: Any, eps: float) -> tuple[int, int]:
    """The layer sizes as Python ints, once checked (with eps)."""
    sizes = _positive_index(num_features, "num_features"), _positive_index(num_modes, "num_modes")
    _check_eps(eps)
    return sizes


def check_functional_momentum(momentum: Any, fn: str) -> None:
    """The functional forms take λ itself; None (the modules' cumulative average) needs the
    step count, which only the modules keep."""
    if isinstance(momentum, Tensor) and momentum.numel() != 1:
        raise ValueError(f"{fn}: momentum must be a number or a one-element tensor")
    if isinstance(momentum, Tensor):  # its value is on the device: not read (a host sync)
        return
    if isinstance(momentum, numbers.Real):
        if not _number_in(momentum, 0.0, 1.0):  # also a module's momentum set after init
            raise ValueError(f"{fn}: momentum must be in [0, 1], got {momentum!r}")
        return
    raise TypeError(
        f"{fn}: momentum must be a number or a one-element tensor, got {momentum!r} "
        "(momentum=None, the cumulative average, is the modules' option: they pass "
        "1/num_batches_tracked here)"
    )


# The dtypes the accuracy contract covers (SPEC §5). Float8 types are floating point too,
# but have no contract, and BatchNorm refuses them: so they are refused here too.
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_FLOATS = ", ".join(str(dtype).removeprefix("torch.") for dtype in FLOAT_DTYPES)


def check_input(x: Tensor, num_features: int, allowed_dims: tuple[int, ...], layer: str) -> None:
    """Raise a clear error for input a mode-normalization layer cannot take."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer} expects a torch.Tensor, got {type(x).__name__}")
    _check_dense_float(x, layer)
    if x.dim() not in allowed_dims:
        wanted = " or ".join(f"{d}D" for d in allowed_dims)
        raise ValueError(f"{layer}: expected {wanted} input (got {x.dim()}D input)")
    if x.size(1) != num_features:
        raise ValueError(
            f"{layer}: expected {num_features} channels in dim 1, got input of shape "
            f"{tuple(x.shape)}"
        )


def _check_dense_float(x: Tensor, fn: str) -> None:
    """A dense input of a dtype in FLOAT_DTYPES. Sparse, MKL-DNN and nested tensors have no
    strides to walk: say so, not torch's message from deep inside (a missing kernel, or a
    reshape it cannot do)."""
    if x.is_nested or x.layout != torch.strided:
        kind = "a nested tensor" if x.is_nested else f"layout {x.layout}"
        raise TypeError(f"{fn}: expected a dense (strided) input, got {kind}; convert it first")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: expected a floating-point input ({_FLOATS}), got dtype {x.dtype}")


_Forward = TypeVar("_Forward", bound=Callable[..., Tensor])
_Layer = TypeVar("_Layer", bound=nn.Module)


def fx_leaf(forward: _Forward) -> _Forward:
    """Decorate a layer's `forward` so that `torch.fx.symbolic_trace` records one call of
    the layer (a `call_module` node), as it does for torch.nn's norms, instead of tracing
    into it: the input checks, the step count and the running estimates need real tensors,
    and so run each time the traced graph runs."""

    @functools.wraps(forward)
    def traced_or_run(layer: nn.Module, input: Tensor) -> Tensor:
        if not isinstance(input, torch.fx.Proxy):
            return forward(layer, input)
        tracer = input.tracer
        path = tracer.path_of_module(layer)
        if not path:
            raise TypeError(
                f"torch.fx.symbolic_trace: trace a model that contains the "
                f"{type(layer).__name__}, not the layer alone (it is recorded as one call)"
            )
        return tracer.create_proxy("call_module", path, (input,), {})

    return cast(_Forward, traced_or_run)  # the same signature, so type checkers keep `input`


def _vmapped(x: Tensor) -> bool:
    """Whether `x` is a tensor inside torch.vmap (functorch's batched tensor). Asked on every
    training call: outside any torch.func transform, one cheap check answers."""
    if not torch._C._are_functorch_transforms_active():
        return False
    is_batched = getattr(torch._C._functorch, "is_batchedtensor", None)
    return is_batched is not None and is_batched(x)


def _batched_as_deep_as(buffer: Tensor, x: Tensor) -> bool:
    """Whether `buffer` is batched by every torch.vmap that batches `x`: an ensemble of
    layers (torch.func.stack_module_state) vmaps its stacked buffers with its inputs, and
    each layer's buffer then takes its own update in place, as BatchNorm's does."""
    level = torch._C._functorch.maybe_get_level
    return _vmapped(buffer) and level(buffer) >= level(x)


def check_batch_for_training(x: Tensor, layer: str) -> None:
    """BatchNorm's rule: batch statistics need more than one value per channel."""
    values_per_channel = x.numel() // max(x.size(1), 1)
    if values_per_channel == 1:
        raise ValueError(
            f"{layer}: expected more than 1 value per channel when training, got input size "
            f"{tuple(x.shape)}"
        )


# ---- the functional forms' argument checks (mn_triton.functional and reference.functional)


def _check_tensor(name: str, t: Tensor | None, shape: tuple[int, ...], x: Tensor, fn: str) -> None:
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}: {name} must be a Tensor or None, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{fn}: {name} must have shape {shape}, got {tuple(t.shape)}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: {name} must be floating point ({_FLOATS}), got {t.dtype}")
    if t.device != x.device:
        raise ValueError(f"{fn}: {name} is on {t.device} but the input is on {x.device}")


def _check_input(x: Tensor, fn: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {type(x).__name__}")
    _check_dense_float(x, fn)
    if x.dim() < 2:
        raise ValueError(f"{fn}: expected input of shape (N, C, *S), got {tuple(x.shape)}")


def _check_gate(gate_weight: Tensor, gate_bias: Tensor | None, in_features: int, x, fn):  # noqa: ANN001
    if not isinstance(gate_weight, Tensor) or gate_weight.dim() != 2:
        raise ValueError(f"{fn}: gate_weight must be a 2-D tensor (num_modes, {in_features})")
    k = gate_weight.shape[0]
    if k < 1:
        raise ValueError(f"{fn}: gate_weight must have at least one mode (row)")
    _check_tensor("gate_weight", gate_weight, (k, in_features), x, fn)
    _check_tensor("gate_bias", gate_bias, (k,), x, fn)
    return k


def check_mode_norm_call(
    input: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    running_mean: Tensor | None,
    running_mean_sq: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    eps: float,
    fn: str = "mode_norm",
    *,
    check_batch: bool = True,
) -> None:
    """Refuse, with a message naming the argument, what functional mode_norm cannot take.

    `check_batch=False` leaves out BatchNorm's rule of more than one value per channel in
    training (SyncModeNorm's synchronising path: a process's own batch may hold one)."""
    if not isinstance(training, bool):  # as F.batch_norm: "False", a string, would train
        raise TypeError(f"{fn}: training must be a bool, got {type(training).__name__}")
    _check_input(input, fn)
    c = input.shape[1]
    k = _check_gate(gate_weight, gate_bias, c, input, fn)
    for name, t in (("weight", weight), ("bias", bias)):
        _check_tensor(name, t, (c,), input, fn)
    for name, t in (("running_mean", running_mean), ("running_mean_sq", running_mean_sq)):
        _check_tensor(name, t, (k, c), input, fn)
    if (running_mean is None) != (running_mean_sq is None):
        raise ValueError(f"{fn}: give both running_mean and running_mean_sq, or neither")
    if running_mean is not None:
        _check_running_pair(running_mean, running_mean_sq, training, fn)
    _check_eps(eps, f"{fn}: ")
    if training:
        if check_batch:
            check_batch_for_training(input, fn)
    elif running_mean is None:
        raise ValueError(f"{fn}: training=False needs running_mean and running_mean_sq")


def _check_running_pair(running_mean: Tensor, running_mean_sq: Tensor, training: bool, fn: str):
    """One dtype for both estimates (they are updated together); and, where training writes
    them in place, no element sharing memory with another (an expanded view): each would take
    several modes' or channels' updates, in whichever order they came."""
    if running_mean.dtype != running_mean_sq.dtype:
        raise TypeError(
            f"{fn}: running_mean and running_mean_sq must have one dtype, got "
            f"{running_mean.dtype} and {running_mean_sq.dtype}"
        )
    if not training:
        return
    if running_mean is running_mean_sq:
        raise ValueError(f"{fn}: running_mean and running_mean_sq must be two tensors")
    for name, t in (("running_mean", running_mean), ("running_mean_sq", running_mean_sq)):
        if any(stride == 0 and size > 1 for stride, size in zip(t.stride(), t.shape, strict=True)):
            raise ValueError(
                f"{fn}: {name} has elements sharing memory (stride 0, an expanded view?); "
                "training updates it in place, so each element needs its own"
            )


def check_mode_group_norm_call(
    input: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
    fn: str = "mode_group_norm",
) -> None:
    """Refuse, with a message naming the argument, what functional mode_group_norm cannot
    take."""
    _check_input(input, fn)
    _check_gate(gate_weight, gate_bias, 1, input, fn)
    c = input.shape[1]
    for name, t in (("weight", weight), ("bias", bias)):
        _check_tensor(name, t, (c,), input, fn)
    _check_eps(eps, f"{fn}: ")


class ModeGate(nn.Linear):
    """MN's gate Ψ = nn.Linear(C, K), initialised as SPEC §1 says: weight 1/K + 0.01·randn
    (near-uniform gates at the start of training, as in the authors' code), bias as
    nn.Linear's.

    The gate initialises itself, rather than its layer doing it: deferred (meta-device)
    initialisation, as FSDP does it, calls each module's `reset_parameters` for its own
    parameters only, parents before children, so an initialisation of the gate done by its
    layer would run on meta tensors and then be overwritten by nn.Linear's.

    Construction itself gives nn.Linear's init, as a plain nn.Linear gate got: the owning
    layer resets the gate right after, and so the random draws, and every seeded result
    that follows a layer's construction, stay what they were before the gate had a class.
    """

    _spec_init = False  # off while nn.Linear.__init__ runs its reset_parameters

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        self._spec_init = True

    def reset_parameters(self) -> None:
        super().reset_parameters()  # the bias's init (and the weight's, replaced below)
        if self._spec_init:
            with torch.no_grad():
                self.weight.normal_(0.0, 0.01).add_(1.0 / self.out_features)


class ModeGroupGate(nn.Linear):
    """MGN's gate Ψ: R → R^K, nn.Linear with nn.Linear's own init (SPEC §2).

    A class of its own, as MN's ModeGate: tools that swap every nn.Linear by exact type
    (`torch.ao.quantization.quantize_dynamic(model, {nn.Linear})`, QAT's module mappings)
    then leave it alone. The layer never calls its gate (see `_gate_parameters`), so a
    swapped-in quantised gate would be refused at the next forward.
    """


def _qualified_name(cls: type) -> str:
    """A class as `module.QualName`: a quantised gate is also called `Linear`."""
    return f"{cls.__module__}.{cls.__qualname__}"


# Forward pre-hooks that set a module's weight from other state before each call.
_WEIGHT_HOOKS = (BasePruningMethod, WeightNorm, SpectralNorm)


class _ModeNormCommon(nn.Module):
    """Parameters and state shared by ModeNorm and ModeGroupNorm."""

    _version = 1
    _allowed_dims: tuple[int, ...] = (2, 3, 4, 5)
    # MGN's gate Ψ: R → R^K keeps nn.Linear's default init (SPEC §2).
    _gate_type: type[nn.Linear] = ModeGroupGate

    def __init__(
        self,
        num_features: int,
        num_modes: int,
        eps: float,
        affine: bool,
        gate_in_features: int,
        device: Any = None,
        dtype: Any = None,
        bias: bool = True,
    ) -> None:
        num_features, num_modes = _check_common_args(num_features, num_modes, eps)
        if dtype is not None and dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be one of {_FLOATS} (or None), got {dtype}")
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.num_features = num_features
        self.num_modes = num_modes
        self.eps = float(eps)
        self.affine = affine
        self.gate = self._gate_type(gate_in_features, num_modes, **factory_kwargs)
        # As BatchNorm's and GroupNorm's `bias=False` (torch 2.12 or so): a scale, no shift.
        for name, wanted in (("weight", affine), ("bias", affine and bias)):
            param = nn.Parameter(torch.empty(num_features, **factory_kwargs)) if wanted else None
            self.register_parameter(name, param)

    def reset_parameters(self) -> None:
        self.gate.reset_parameters()
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _affine_repr(self) -> str:
        """`affine=…`, and `bias=False` where the affine map has no shift (BatchNorm's
        repr always names bias; here only where it departs from the default)."""
        no_shift = self.affine and self.bias is None
        return f"affine={self.affine}" + (", bias=False" if no_shift else "")

    def _check_input(self, x: Tensor) -> None:
        check_input(x, self.num_features, self._allowed_dims, type(self).__name__)

    def _gate_parameters(self) -> tuple[Tensor, Tensor | None]:
        """The gate's weight and bias for this call.

        The layer never calls its gate: the kernels compute the gates from its weight and
        bias (fused with the channel means), so the gate's own forward and hooks would not
        run. Those that recompute the weight (pruning, weight_norm, spectral_norm) are run
        here; any other hook is said to be skipped; another forward is refused.
        """
        gate = self.gate
        if type(gate).forward is not nn.Linear.forward:
            raise TypeError(
                f"{type(self).__name__}.gate must be an nn.Linear, or a subclass that keeps "
                f"nn.Linear's forward; got {_qualified_name(type(gate))}, whose forward the "
                "layer would bypass: it computes the gates from gate.weight and gate.bias "
                "without calling the gate. (Leave the gates out of quantisation: "
                "quantize_dynamic and prepare_qat swap nn.Linear by exact type and leave "
                "them alone; a custom module mapping or a swap by hand must too.)"
            )
        if gate._forward_pre_hooks or gate._forward_hooks:  # rare: two dict checks per call
            self._run_gate_hooks()
        return gate.weight, gate.bias

    def _run_gate_hooks(self) -> None:
        """Recompute the gate's weight as its forward would (these hooks ignore the input)."""
        gate = self.gate
        skipped = bool(gate._forward_hooks)
        for hook in gate._forward_pre_hooks.values():
            if isinstance(hook, _WEIGHT_HOOKS):
                hook(gate, ())
            else:
                skipped = True
        if skipped and not torch.compiler.is_compiling():  # dynamo cannot trace warn
            warnings.warn(
                f"{type(self).__name__}: forward hooks on its gate do not run: the layer "
                "computes the gates from gate.weight and gate.bias without calling the gate "
                "(pruning, weight_norm and spectral_norm hooks are run, to update the weight)",
                stacklevel=2,
            )

    def __prepare_scriptable__(self) -> nn.Module:
        """torch.jit.script calls this first: say that it cannot compile these layers (Python
        around custom ops), rather than fail inside its compiler at a line of the decorator."""
        raise RuntimeError(
            f"torch.jit.script cannot compile {type(self).__name__}; use torch.jit.trace, "
            "torch.export or torch.compile instead"
        )

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        gate_weight = state_dict.get(prefix + "gate.weight")
        if gate_weight is None and prefix + "running_var" in state_dict:
            # A BatchNorm's state: it fails to load anyway (running_mean is (C,), not (K, C));
            # say how to start from it. (Torch calls this with strict=True whatever the
            # caller's strict, so a GroupNorm's state, which loads with strict=False, cannot
            # be told apart from a deliberate partial load and gets no such note.)
            error_msgs.append(
                f"{type(self).__name__} at '{prefix or '.'}': the state_dict has a "
                "running_var and no gate.weight, as a BatchNorm's; to start from a BatchNorm "
                "checkpoint, load it into the model with its BatchNorms, then convert them "
                "with mn_triton.convert_to_mode_norm, which hands over their parameters and "
                "running estimates."
            )
        if gate_weight is not None and gate_weight.shape[0] != self.num_modes:
            error_msgs.append(
                f"{type(self).__name__} at '{prefix or '.'}': the state_dict was saved with "
                f"num_modes={gate_weight.shape[0]}, but this layer has "
                f"num_modes={self.num_modes}; build the layer with the same num_modes."
            )
            return
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


class ModeNormBase(_ModeNormCommon):
    """Mode Normalization (Deecke et al., 2019) over inputs of shape (N, C, *S), 0 ≤ |S| ≤ 3.

    Constructor, parameters and buffers (SPEC §1, §4); subclasses supply `forward`.
    Arguments mirror `nn.BatchNorm2d` (`bias=False`: a scale without a shift), plus
    `num_modes` (K). State: `weight`, `bias` (C,), `gate.weight` (K, C), `gate.bias` (K,),
    `running_mean` and `running_mean_sq` (K, C), `num_batches_tracked`. K = 1 in training
    is exactly BatchNorm.
    """

    _gate_type = ModeGate
    # MN's running estimates; ⟨x²⟩ must not be kept in 16 bits (see `_apply`).
    _running_buffers = ("running_mean", "running_mean_sq")

    def __init__(
        self,
        num_features: int,
        num_modes: int = 2,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        if momentum is not None and not _number_in(momentum, 0.0, 1.0):
            raise ValueError(f"momentum must be a number in [0, 1] or None, got {momentum!r}")
        super().__init__(
            num_features, num_modes, eps, affine, num_features, device, dtype, bias=bias
        )
        self.momentum = momentum
        self.track_running_stats = track_running_stats
        factory_kwargs = {"device": device, "dtype": running_stats_dtype(dtype)}
        if track_running_stats:
            shape = (self.num_modes, self.num_features)
            self.register_buffer("running_mean", torch.zeros(shape, **factory_kwargs))
            self.register_buffer("running_mean_sq", torch.ones(shape, **factory_kwargs))
            self.register_buffer(
                "num_batches_tracked",
                torch.tensor(0, dtype=torch.long, device=device),
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_mean_sq", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_mean_sq.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        super().reset_parameters()  # the gate's own reset gives it SPEC's init (ModeGate)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> ModeNormBase:
        """`Module._apply` (`.to()`, `.half()`, `.cuda()`, ...), except that the running
        estimates stay float32 when the module becomes 16-bit.

        Eval takes σ² = ⟨x²⟩ − ⟨x⟩² from them. Stored in 16 bits, that difference has a
        relative error of about (μ/σ)²·2⁻⁸ in bfloat16 (σ² rounds to 0 at μ = 20σ), and
        ⟨x²⟩ overflows float16 for |μ| ≳ 256. So, as apex and AMP keep BatchNorm's
        statistics in float32, these two buffers follow the module's device but not its
        cast to a 16-bit dtype. float64 modules keep float64 estimates.
        """
        before = {name: self._buffers.get(name) for name in self._running_buffers}
        super()._apply(fn, recurse)
        for name, old in before.items():
            new = self._buffers.get(name)
            if old is not None and new is not None and new.dtype in _NARROW_DTYPES:
                # From the value before the cast, which still has all its bits.
                source = new if old.dtype in _NARROW_DTYPES else old
                self._buffers[name] = source.to(new.device, torch.float32)
        return self

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        *args: Any,
    ) -> None:
        count = prefix + "num_batches_tracked"
        unversioned = local_metadata.get("version") is None
        if unversioned and self.track_running_stats and count not in state_dict:
            # As BatchNorm: a state dict without metadata (built by hand, converted) may lack
            # the step count; the layer keeps its own (0 on a meta-device layer).
            own = self.num_batches_tracked
            real = own is not None and own.device.type != "meta"
            state_dict[count] = own if real else torch.tensor(0, dtype=torch.long)
        # A 16-bit checkpoint's estimates: copied into float32 buffers anyway, and with
        # load_state_dict(assign=True) they would replace them; keep them float32 (`_apply`).
        # (load_state_dict copies the dict so that modules may change it.)
        for name in self._running_buffers:
            saved = state_dict.get(prefix + name)
            if isinstance(saved, Tensor) and saved.dtype in _NARROW_DTYPES:
                state_dict[prefix + name] = saved.float()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)

    def _uses_batch_stats(self) -> bool:
        return self.training or self.running_mean is None

    def _step_weight(self) -> float | Tensor | None:
        """This training step's running-estimate weight λ (None: no update).

        With `momentum=None` it is 1/t for the t-th counted step (a cumulative average, as
        BatchNorm's), kept as a tensor so that no host synchronisation is needed. The step
        itself is counted by `_count_step` once the call has returned, so that a call refused
        by its checks leaves the layer as it was (BatchNorm counts first).
        """
        if not (self.training and self.track_running_stats):
            return None
        if self.running_mean is None:  # estimates dropped, as BatchNorm allows: nothing to update
            return None
        if self.momentum is None:
            if self.num_batches_tracked is None:  # no count to average: BatchNorm's λ is 0 then
                return None
            # 1/t in the estimates' precision, at least float32: `1.0 / count` alone would be
            # the default dtype's, bfloat16's 8 bits under a 16-bit default (weights off by
            # up to 0.4 %), or float32's where the estimates are float64 (~1e-9).
            weight_dtype = torch.promote_types(self.running_mean.dtype, torch.float32)
            return 1.0 / (self.num_batches_tracked.to(weight_dtype) + 1)
        return self.momentum

    def _count_step(self) -> None:
        """Count a training step in `num_batches_tracked`, as BatchNorm does (the count may
        be dropped too; estimates set to None still count their steps, as in BatchNorm)."""
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)

    def _check_vmap(self, x: Tensor, gate_weight: Tensor, gate_bias: Tensor | None) -> None:
        """Refuse, before anything runs, a torch.vmap whose calls would all update one
        set of running estimates in place (BatchNorm fails there too, less clearly)."""
        if not (self.training and self.running_mean is not None):
            return
        if not torch._C._are_functorch_transforms_active():  # the usual call: no vmap at all
            return
        # What the batch statistics depend on: the input and the gate.
        depends_on = (x, gate_weight, gate_bias)
        if any(
            t is not None and _vmapped(t) and not _batched_as_deep_as(self.running_mean, t)
            for t in depends_on
        ):
            raise RuntimeError(
                f"{type(self).__name__}: torch.vmap over a layer in training that keeps "
                "running estimates would update one set of them in place from every "
                "vmapped call at once, which vmap cannot do; build it with "
                "track_running_stats=False, call it in eval mode, or vmap the running "
                "estimates too (torch.func.stack_module_state, one set per model)"
            )

    def _functional_args(self, x: Tensor) -> dict[str, Any]:
        """Check `x` for this layer's mode and state; build the call's arguments (the caller
        counts the step once the call has returned: `_count_step`).

        Mirrors `nn.BatchNorm`: batch statistics in training (or when no running estimates
        are kept), running estimates passed whenever they are used or updated.
        """
        self._check_input(x)
        use_batch_stats = self._uses_batch_stats()
        if use_batch_stats:
            check_batch_for_training(x, type(self).__name__)
        gate_weight, gate_bias = self._gate_parameters()
        self._check_vmap(x, gate_weight, gate_bias)
        momentum = self._step_weight()
        keep_running = not self.training or self.track_running_stats
        return {
            "gate_weight": gate_weight,
            "gate_bias": gate_bias,
            "running_mean": self.running_mean if keep_running else None,
            "running_mean_sq": self.running_mean_sq if keep_running else None,
            "weight": self.weight,
            "bias": self.bias,
            "training": use_batch_stats,
            "momentum": 0.0 if momentum is None else momentum,
            "eps": self.eps,
        }

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, num_modes={self.num_modes}, eps={self.eps}, "
            f"momentum={self.momentum}, {self._affine_repr()}, "
            f"track_running_stats={self.track_running_stats}"
        )


class ModeGroupNormBase(_ModeNormCommon):
    """Mode Group Normalization (Deecke et al., 2019) over inputs of shape (N, C, *S).

    Constructor and parameters (SPEC §2, §4); subclasses supply `forward`. State: `weight`,
    `bias` (C,), `gate.weight` (K, 1), `gate.bias` (K,). No running estimates: training and
    eval compute the same function. K = 1 is exactly `nn.GroupNorm(1, C)`.
    """

    def __init__(
        self,
        num_features: int,
        num_modes: int = 2,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(num_features, num_modes, eps, affine, 1, device, dtype, bias=bias)
        self.reset_parameters()

    def _functional_args(self, x: Tensor) -> dict[str, Any]:
        self._check_input(x)
        gate_weight, gate_bias = self._gate_parameters()
        return {
            "gate_weight": gate_weight,
            "gate_bias": gate_bias,
            "weight": self.weight,
            "bias": self.bias,
            "eps": self.eps,
        }

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_modes={self.num_modes}, eps={self.eps}, " + (
            self._affine_repr()
        )


def update_running_stats(
    running_mean: Tensor,
    running_mean_sq: Tensor,
    mode_mean: Tensor,
    mode_var: Tensor,
    momentum: float | Tensor,
) -> None:
    """running ← (1 − λ)·running + λ·batch, for ⟨x⟩ and ⟨x²⟩ = σ² + μ² (SPEC §1).

    Two ops (one addcmul, one fused lerp of both buffers), not four: on a GPU each op is a
    launch, and a small network pays them in every layer on every step. A tensor λ
    (momentum=None) takes one lerp per buffer instead: `_foreach_lerp_` would read it as a
    Python number, a copy to the host that waits for the GPU. Under torch.vmap (an
    ensemble's stacked buffers) the same step as add_, which vmap batches: `_foreach_lerp_`
    has no batching rule, and lerp_'s fallback warns on every step.
    """
    # detach() as well as no_grad(): a forward-mode tangent would otherwise reach the buffers.
    mode_mean, mode_var = mode_mean.detach(), mode_var.detach()
    with torch.no_grad():
        mode_mean = mode_mean.to(running_mean.dtype)
        mode_mean_sq = torch.addcmul(mode_var, mode_mean, mode_mean).to(running_mean.dtype)
        if isinstance(momentum, Tensor):
            momentum = momentum.to(running_mean.dtype)
        if _vmapped(running_mean) or _vmapped(mode_mean):
            # lerp_'s vmap fallback works but warns of a slow path on every step.
            running_mean.add_((mode_mean - running_mean) * momentum)
            running_mean_sq.add_((mode_mean_sq - running_mean_sq) * momentum)
        elif isinstance(momentum, Tensor):
            running_mean.lerp_(mode_mean, momentum)
            running_mean_sq.lerp_(mode_mean_sq, momentum)
        else:
            torch._foreach_lerp_(
                [running_mean, running_mean_sq], [mode_mean, mode_mean_sq], momentum
            )


_RANKS = {
    "1d": ((2, 3), "(N, C) or (N, C, L)"),
    "2d": ((4,), "(N, C, H, W)"),
    "3d": ((5,), "(N, C, D, H, W)"),
}


def rank_variants(layer: type[_Layer]) -> tuple[type[_Layer], type[_Layer], type[_Layer]]:
    """`layer`'s 1d, 2d and 3d variants, which check the input rank like BatchNorm1d/2d/3d.

    Defined once here so `reference` and `mn_triton` get identical variants; assign the
    result to module-level names equal to the class names (pickling finds them there).
    """
    variants = []
    for suffix, (dims, shapes) in _RANKS.items():
        name = layer.__name__ + suffix
        doc = f"{layer.__name__} over {shapes} inputs."
        attrs = {"_allowed_dims": dims, "__doc__": doc, "__module__": layer.__module__}
        variants.append(type(name, (layer,), attrs))
    one_d, two_d, three_d = variants
    return one_d, two_d, three_d
