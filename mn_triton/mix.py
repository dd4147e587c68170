"""The mix: small math between the two passes over x (SPEC §3).

Input: per-row statistics from the moments pass, each (N, C) — a shift s (a value of the
row), the mean of x − s, and the biased variance v. Output: per-row coefficients of the
apply pass, y = (x − s)·scale + bias. The backward maps the per-row sums of the backward
reduction pass, Σ dy and Σ dy·(x − s), to the coefficients of dx = dy·scale + (x − s)·e + f
and to the parameter gradients. Nothing here is larger than (K, N, C).

Precision: each mode's mean is held as a pivot of the mode's own, P_k = μ_k as its sum
rounds, and the rest, μ_k − P_k (ModeStats, _mgn_deviations), so m − μ_k is formed from
small, exactly representable differences near the mode, wherever the other rows lie. MN
sums P_k from the row means themselves (batch_mode_stats); MGN sums its means relative to
a pivot per sample (of its channels' shifts, the one nearest 0: `_mgn_pivots`), which its
gates' logits need too (_mgn_gates_and_weights).

Notation (SPEC §1–2): m row means, g gates, w = g / N_k normalised gate weights, μ and σ²
mode statistics, r = (σ² + ε)^-½, and per row a = Σ_k g·r, b = Σ_k g·(m − μ_k)·r (MN) or
the (1/K) means over modes (MGN), so that y = α·(a·(x − m) + b) + β.

The backward below is the hand-derived vector–Jacobian product of the forward; it is
checked against autograd of the paper-literal reference with `gradcheck` in the tests.

Speed (this is the CPU's mix; a GPU's runs in kernels/mix.py): temporaries of K·N·C
elements are changed in place where nothing reads them again, as the same operations in the
same order. On a CPU a fresh tensor of that size costs its page faults, ~0.1 ms at
(6, 128, 120), several times the arithmetic on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from reference._base import MIN_MODE_MASS


@dataclass
class RowAffine:
    """Per-row coefficients of the apply pass: out = (x − s)·scale + bias."""

    scale: Tensor
    bias: Tensor


class MixGrads(NamedTuple):
    """Coefficients of dx = dy·dy_scale + (x − s)·x_scale + row_bias, per row, and the
    parameters' gradients (`bias_param`: the layer bias's). A named tuple: the torch-op mix
    and the kernels (kernels/mix) build it by name, so their orders cannot disagree."""

    dy_scale: Tensor
    x_scale: Tensor | None  # None from the kernels on rows of one element (x − s = 0)
    row_bias: Tensor
    gate_weight: Tensor
    gate_bias: Tensor
    weight: Tensor
    bias_param: Tensor


@dataclass
class _ModeState:
    """Everything the forward computes on small tensors; the backward recomputes it."""

    m: Tensor  # row means (N, C)
    gates: Tensor  # MN (N, K); MGN (N, K, C)
    weights: Tensor | None  # gates / mode mass (batch statistics only)
    dev: Tensor  # m − μ_k: MN (K, N, C); MGN (N, K, C)
    var: Tensor  # σ²: MN (K, C); MGN (N, K)
    rstd: Tensor  # r = (σ² + ε)^-½, like var
    a: Tensor  # per-row Σ_k g·r (MN) or mean_k r (MGN)
    b: Tensor  # per-row Σ_k g·(m − μ_k)·r (MN) or mean_k (m − μ_k)·r (MGN)


def _affine(param: Tensor | None, like: Tensor, fill: float) -> Tensor:
    return torch.full_like(like[0], fill) if param is None else param.to(like.dtype)


def _row_affine(state: _ModeState, mean_dev: Tensor, weight: Tensor | None, bias: Tensor | None):
    """y = α·(a·(x − m) + b) + β written as (x − s)·scale + bias, using x − m = (x − s) − md."""
    alpha = _affine(weight, mean_dev, 1.0)
    beta = _affine(bias, mean_dev, 0.0)
    scale = alpha * state.a
    return RowAffine(scale, beta + alpha * state.b - mean_dev * scale)


def _common_backward(
    state: _ModeState,
    mean_dev: Tensor,
    sum_dy: Tensor,
    sum_dy_xs: Tensor,
    weight: Tensor | None,
):
    """Gradients through the apply step y = α·(a·(x − m) + b) + β, shared by MN and MGN.

    Returns (da, db, dm, dweight, dbias, scale): gradients w.r.t. a, b, the row means m
    (through the explicit x − m), the affine parameters, and the forward scale α·a.
    """
    alpha = _affine(weight, mean_dev, 1.0)
    sum_dy_xm = sum_dy_xs - mean_dev * sum_dy  # Σ dy·(x − m)
    d_bias = sum_dy.sum(dim=0)
    d_weight = (sum_dy_xm * state.a + sum_dy * state.b).sum(dim=0)
    scale = alpha * state.a
    da = alpha * sum_dy_xm
    db = alpha * sum_dy
    dm = db * state.a - scale * sum_dy
    return da, db, dm, d_weight, d_bias, scale


def _dx_coefficients(dm: Tensor, dv: Tensor, mean_dev: Tensor, length: int):
    """dx = … + dm/L + dv·2(x − m)/L, i.e. (x − s)·e + f with e = 2dv/L, f = dm/L − md·e."""
    e = dv * (2.0 / length)
    return e, dm / length - mean_dev * e


def _own_terms_of_one_element_rows(
    gates: Tensor, weights: Tensor, db: Tensor, g_db: Tensor, rstd: Tensor
) -> Tensor:
    """Σ_k (g·db − w·Σ_n g·db)·r, (N, C): on rows of one element, what x receives through
    its own term in b = Σ_k g·(m − μ)·r and through μ, mode by mode.

    Summed over the modes first (dy·α·a as dx's dy_scale, −Σ_k w·(Σ_n g·db)·r in its bias),
    the two cancel only as a whole: where a mode is one sample's alone (the others' gates
    0), they are each ~r·g·db (r ≈ ε^-½ there, σ² = 0) and their difference, 0 exactly,
    came out as their rounding: dx off by 0.26 on a fuzzer draw (ε = 3e-9) where a float32
    evaluation of the reference, whose autograd subtracts each mode's term as it is formed,
    loses 1e-2. Mode by mode, w = 1 and Σ_n g·db = g·db exactly there, and each difference is
    0."""
    own = gates.T.unsqueeze(-1) * db.unsqueeze(0)  # (K, N, C)
    own -= weights.T.unsqueeze(-1) * g_db.unsqueeze(1)
    return own.mul_(rstd.unsqueeze(1)).sum(dim=0)


def _softmax_backward(gates: Tensor, g_dg: Tensor, modes_dim: int = -1) -> Tensor:
    """Gradient w.r.t. the logits, given gates g and g ⊙ ∂L/∂g (modes in the last dim, or
    with `modes_dim=-2` in the one before).

    The usual g ⊙ ∂g − g·Σ_j g_j ∂g_j computes 1 − g_k implicitly and loses every digit of
    it when a gate saturates (g_k → 1). Written as Σ_{j≠k} (g_j·g_k∂g_k − g_k·g_j∂g_j), it
    only uses the small gates themselves, which softmax gives to full relative precision.
    """
    n_modes = gates.shape[modes_dim]
    others = 1.0 - torch.eye(n_modes, dtype=gates.dtype, device=gates.device)  # symmetric

    def sum_of_others(t: Tensor) -> Tensor:  # Σ_{j≠k} t_j for each k
        return t @ others if modes_dim == -1 else others @ t

    kept = sum_of_others(gates).mul_(g_dg)  # Σ_{j≠k} g_j·g_k∂g_k
    given = sum_of_others(g_dg).mul_(gates)  # Σ_{j≠k} g_k·g_j∂g_j
    return kept.sub_(given)


# --------------------------------------------------------------------------------------
# Contractions over the small tensors. Each is one torch.einsum in the formulas (the
# docstrings give it), but on a CPU einsum's three-operand forms run ~10× slower than these
# (~0.35 ms each at LeNet's K = 6, N = 128, C = 120: it contracts through a bmm over N·C
# batches of one element) and its two-operand forms up to 3× slower on small tensors.
# --------------------------------------------------------------------------------------


def _var_grad(d_rstd: Tensor, rstd: Tensor) -> Tensor:
    """∂L/∂σ² from ∂L/∂r, r = 1/√(σ² + ε): −½·r³·∂L/∂r, multiplied from ∂L/∂r on. r³ alone
    overflows once σ² + ε < ~2e-26 (a constant channel with a tiny ε), and ∂L/∂r is 0 exactly
    there: inf·0 would put NaN into every gradient. In this order no product outgrows the
    result while r ≥ 1, and 0 stays 0."""
    return -0.5 * d_rstd * rstd * rstd * rstd


def _sum_over_samples(weights: Tensor, t: Tensor) -> Tensor:
    """Σ_n w[n, k]·t[k, n, c], (K, C): einsum("nk,knc->kc", w, t)."""
    return torch.bmm(weights.T.unsqueeze(1), t).squeeze(1)


def _sum_over_modes(weights: Tensor, dev: Tensor, v: Tensor) -> Tensor:
    """Σ_k w[n, k]·dev[k, n, c]·v[k, c], (N, C): einsum("nk,knc,kc->nc", w, dev, v)."""
    return (dev * v.unsqueeze(1)).mul_(weights.T.unsqueeze(-1)).sum(dim=0)


def _sum_over_mode_channels(v: Tensor, t: Tensor) -> Tensor:
    """Σ_c v[k, c]·t[k, n, c], (N, K): einsum("kc,knc->nk", v, t)."""
    return torch.bmm(v.unsqueeze(1), t.transpose(1, 2)).squeeze(1).T


def _sum_over_channels(weights: Tensor, t: Tensor) -> Tensor:
    """Σ_c w[n, k, c]·t[n, c], (N, K): einsum("nkc,nc->nk", w, t) (MGN's layout)."""
    return torch.bmm(weights, t.unsqueeze(-1)).squeeze(-1)


def _sum_over_group_modes(weights: Tensor, v: Tensor) -> Tensor:
    """Σ_k w[n, k, c]·v[n, k], (N, C): einsum("nkc,nk->nc", w, v) (MGN's layout)."""
    return torch.bmm(v.unsqueeze(1), weights).squeeze(1)


# --------------------------------------------------------------------------------------
# Mode Normalization: gates per sample, statistics per (mode, channel) over the batch.
# --------------------------------------------------------------------------------------


@dataclass
class ModeStats:
    """MN's statistics per (mode, channel): what SyncModeNorm merges across processes.

    Each mean μ is held as a pivot of the mode's own, P = μ as its sum rounds (within
    ~ε·(|μ| + σ) of μ), and the rest, μ − P: m − μ is then formed as (s − P) + md − (μ − P),
    exact for the rows near the mode. Formed as (m − p) − (μ − p) around one pivot p per
    channel (say sample 0), it would carry the rounding of values as far from p as the data
    reach.
    """

    center: Tensor  # P, (K, C)
    residual: Tensor  # μ − P, (K, C)
    var: Tensor  # σ², (K, C)
    mass: Tensor | None  # N_k = Σ_n g, (K,); None for running estimates

    def absolute_mean(self) -> Tensor:
        """μ = Σ_n w·m: 0 for a mode without gate mass, as in the reference (its gates, all
        0, keep it out of the output)."""
        return self.center + self.residual

    def packed(self) -> Tensor:
        """Batch statistics as one flat buffer, [N_k | P_k | μ_k − P_k | σ²_k] (K + 3·K·C
        elements): what SyncModeNorm's processes exchange, what the mix kernels write
        (kernels.mix._load_mode_stats reads it) and what a forward saves for its backward."""
        fields = (self.center, self.residual, self.var)
        return torch.cat([self.mass, *(t.flatten() for t in fields)])

    @staticmethod
    def packed_size(k: int, c: int) -> int:
        """Elements of `packed`'s buffer for K modes and C channels."""
        return k + 3 * k * c

    @staticmethod
    def unpacked(buffer: Tensor, k: int, c: int) -> ModeStats:
        """The statistics `packed` gave, as views of `buffer`."""
        mass, *per_mode = buffer.split([k, k * c, k * c, k * c])
        center, residual, var = (t.view(k, c) for t in per_mode)
        return ModeStats(center, residual, var, mass)


def _coverage(mass: Tensor) -> Tensor:
    """Σ w = N_k / max(N_k, tiny), exactly: 1, or less for a mode with almost no gate mass."""
    return mass / mass.clamp_min(MIN_MODE_MASS)


def mode_norm_gates(
    shift: Tensor, mean_dev: Tensor, gate_weight: Tensor, gate_bias: Tensor | None
) -> Tensor:
    """g = softmax(gate(m)) per sample, (N, K), from the row means m = s + (mean of x − s)."""
    dtype = shift.dtype
    gb = None if gate_bias is None else gate_bias.to(dtype)
    return torch.softmax(F.linear(shift + mean_dev, gate_weight.to(dtype), gb), dim=1)


def batch_mode_stats(gates: Tensor, shift: Tensor, mean_dev: Tensor, var_rows: Tensor) -> ModeStats:
    """μ = Σ_n w·m and σ² = Σ_n w·(v + (m − μ)²), with w = g / N_k (SPEC §1, step 3)."""
    mass = gates.sum(dim=0)
    weights = gates / mass.clamp_min(MIN_MODE_MASS)
    # Each mode's own pivot P = Σ_n w·m as it rounds, within ~ε·(|μ| + σ) of μ whatever the
    # other samples hold; μ − P = Σ_n w·(m − P) − (1 − Σ_n w)·P from the rows (see
    # ModeStats) then brings μ to about an ulp of the mode's own rows. Where a mode is nearly
    # one sample's alone, m − μ is all rounding and σ² tiny, so μ's last bits reach dx.
    # (Summed as Σ_n w·(m − p) around one pivot p of all modes, say sample 0's shift, P
    # missed μ by the rounding of values as far from p as the data reach: with sample 0 at
    # 1e8 and a mode of the others spread by 0.1, by up to ~10 (100σ), and σ² lost 1e-4.)
    center = weights.T @ (shift + mean_dev)  # (K, C); 0 in an empty batch (SyncModeNorm)
    coverage = _coverage(mass).unsqueeze(1)
    raw = _mn_deviations(shift, mean_dev, center)  # m − P
    residual = _sum_over_samples(weights, raw) - (1.0 - coverage) * center
    # v + (m − μ)², formed in place of m − P (nothing reads that again)
    spread = raw.sub_(residual.unsqueeze(1)).square_().add_(var_rows.unsqueeze(0))
    var = _sum_over_samples(weights, spread)
    return ModeStats(center, residual, var, mass)


def _mn_deviations(
    shift: Tensor, mean_dev: Tensor, center: Tensor, residual: Tensor | None = None
) -> Tensor:
    """m − μ, (K, N, C), as (s − P) + md − (μ − P) (see ModeStats); m − P
    without a `residual`."""
    raw = (shift.unsqueeze(0) - center.unsqueeze(1)).add_(mean_dev.unsqueeze(0))
    return raw if residual is None else raw.sub_(residual.unsqueeze(1))


def running_mode_stats(running_mean: Tensor, running_mean_sq: Tensor, shift: Tensor) -> ModeStats:
    """μ = ⟨x⟩ and σ² = max(⟨x²⟩ − ⟨x⟩², 0) from the running estimates (SPEC §1, eval)."""
    # The difference is formed in float64: with a large common offset it cancels most
    # digits, and this keeps all that the float32 buffers hold.
    running = running_mean.double()
    var = (running_mean_sq.double() - running * running).clamp_min(0).to(shift.dtype)
    running = running_mean.to(shift.dtype)
    return ModeStats(running, torch.zeros_like(running), var, None)


def _mode_norm_state(
    shift: Tensor, mean_dev: Tensor, gates: Tensor, stats: ModeStats, eps: float
) -> _ModeState:
    weights = None if stats.mass is None else gates / stats.mass.clamp_min(MIN_MODE_MASS)
    dev = _mn_deviations(shift, mean_dev, stats.center, stats.residual)
    rstd = torch.rsqrt(stats.var + eps)
    a = gates @ rstd
    b = _sum_over_modes(gates, dev, rstd)
    m = shift + mean_dev
    return _ModeState(m, gates, weights, dev, stats.var, rstd, a, b)


def _mode_stats(gates, shift, mean_dev, var_rows, running_mean, running_mean_sq, training):  # noqa: ANN001
    if training:
        return batch_mode_stats(gates, shift, mean_dev, var_rows)
    return running_mode_stats(running_mean, running_mean_sq, shift)


def mode_norm_forward(
    shift: Tensor,
    mean_dev: Tensor,
    var_rows: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    running_mean: Tensor | None,
    running_mean_sq: Tensor | None,
    training: bool,
    eps: float,
    merge_stats: Callable[[ModeStats], ModeStats] | None = None,
    gates_out: Tensor | None = None,
) -> tuple[RowAffine, ModeStats]:
    """Per-row coefficients of the apply pass, and the mode statistics used.

    `merge_stats` (SyncModeNorm) turns this process's batch statistics into the global ones.
    With `gates_out` (N, K), the gates are written there too (for the backward's `gates`).
    """
    gates = mode_norm_gates(shift, mean_dev, gate_weight, gate_bias)
    if gates_out is not None:
        gates_out.copy_(gates)
    stats = _mode_stats(gates, shift, mean_dev, var_rows, running_mean, running_mean_sq, training)
    if training and merge_stats is not None:
        stats = merge_stats(stats)
    state = _mode_norm_state(shift, mean_dev, gates, stats, eps)
    return _row_affine(state, mean_dev, weight, bias), stats


def mode_norm_backward(
    sum_dy: Tensor,
    sum_dy_xs: Tensor,
    length: int,
    shift: Tensor,
    mean_dev: Tensor,
    var_rows: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    running_mean: Tensor | None,
    running_mean_sq: Tensor | None,
    training: bool,
    eps: float,
    stats: ModeStats | None = None,
    sum_over_batch: Callable[[Tensor], Tensor] | None = None,
    gates: Tensor | None = None,
) -> MixGrads:
    """The vector–Jacobian product of `mode_norm_forward` and the apply pass.

    Recomputes the small forward state (given `stats`, SyncModeNorm's merged statistics or
    those the forward kept, and `gates`, the forward's, it reuses them); `sum_over_batch`
    completes sums over the batch across processes.
    """
    if gates is None:
        gates = mode_norm_gates(shift, mean_dev, gate_weight, gate_bias)
    if stats is None:
        stats = _mode_stats(
            gates, shift, mean_dev, var_rows, running_mean, running_mean_sq, training
        )
    s = _mode_norm_state(shift, mean_dev, gates, stats, eps)
    da, db, dm, d_weight, d_bias, scale = _common_backward(s, mean_dev, sum_dy, sum_dy_xs, weight)
    g = s.gates
    # a = Σ_k g·r and b = Σ_k g·(m − μ_k)·r: into r, μ and (as g ⊙ ∂/∂g) into the gates.
    dev_db = s.dev * db
    d_rstd = g.T @ da + _sum_over_samples(g, dev_db)
    g_dg = g * (da @ s.rstd.T + _sum_over_mode_channels(s.rstd, dev_db))
    if training:
        w = s.weights
        g_db = g.T @ db  # Σ_n g·db: μ's gradient through b is −(that)·r
        # σ²'s derivative in μ, −2·Σ_n w·(m − μ): 0 in exact arithmetic, but computed it
        # cancels μ's rounding in what m receives, as in MGN (mode_group_norm_backward).
        sum_w_dev = _sum_over_samples(w, s.dev)
        if sum_over_batch is not None:  # the three (K, C) sums over the batch, in one call
            sums = sum_over_batch(torch.stack([d_rstd, g_db, sum_w_dev]))
            d_rstd, g_db, sum_w_dev = sums.unbind(0)
        # μ = Σ_n w·m and σ² = Σ_n w·(v + (m − μ)²), with w = g / N_k.
        d_var = _var_grad(d_rstd, s.rstd)
        d_mean_via_var = -2.0 * d_var * sum_w_dev
        d_mean = d_mean_via_var - g_db * s.rstd
        dv = w @ d_var
        dm_via_var = 2.0 * _sum_over_modes(w, s.dev, d_var)
        if length == 1:  # x − m = 0: x reaches y through m alone
            own = _own_terms_of_one_element_rows(g, w, db, g_db, s.rstd)
            dm = own + dm_via_var + w @ d_mean_via_var
            scale = torch.zeros_like(scale)
        else:
            dm = dm + dm_via_var + w @ d_mean
        spread = (s.dev * s.dev).add_(var_rows.unsqueeze(0)).sub_(s.var.unsqueeze(1))
        g_dg = g_dg + w * (
            _sum_over_mode_channels(d_mean, s.dev) + _sum_over_mode_channels(d_var, spread)
        )
    else:
        dv = torch.zeros_like(var_rows)  # running estimates carry no gradient
    d_logits = _softmax_backward(g, g_dg)
    dm = dm + d_logits @ gate_weight.to(dm.dtype)
    e, f = _dx_coefficients(dm, dv, mean_dev, length)
    return MixGrads(
        dy_scale=scale,
        x_scale=e,
        row_bias=f,
        gate_weight=d_logits.T @ s.m,
        gate_bias=d_logits.sum(dim=0),
        weight=d_weight,
        bias_param=d_bias,
    )


# --------------------------------------------------------------------------------------
# Mode Group Normalization: gates per (sample, channel), statistics per (sample, mode).
# Per-(sample, mode, channel) tensors are laid out (N, K, C): channels innermost, so that
# the broadcasts of per-(sample, mode) values and the softmax over channels run along
# contiguous memory (with K innermost they ran 3–5× slower on a CPU).
# --------------------------------------------------------------------------------------


def _mgn_deviations(
    shift: Tensor, mean_dev: Tensor, pivot: Tensor, mean: Tensor, weights: Tensor
) -> Tensor:
    """m − μ_k, (N, K, C), to about an ulp of each row's own values.

    μ_k = Σ_c w·m = pivot + mean (Σ_c w = 1). Formed as m_rel − mean, m − μ_k would carry
    the rounding of m_rel = s − pivot, which is |m − pivot|/|m| times the rounding of m
    itself: 9× where the sample's pivot (once channel 0's shift; _mgn_pivots) lies far out
    and a mode's channels close together, and dx then lost 2e-5. So each mode gets a pivot
    of its own, P_k = μ_k rounded, near its channels (s − P_k is exact there), and the
    residual ρ_k = μ_k − P_k = Σ_c w·(m − P_k).
    """
    mode_pivot = (pivot + mean).unsqueeze(-1)  # P_k, (N, K, 1)
    raw = (shift.unsqueeze(1) - mode_pivot).add_(mean_dev.unsqueeze(1))  # m − P_k
    residual = (weights * raw).sum(dim=-1, keepdim=True)
    return raw.sub_(residual)


def _mgn_gates_and_weights(
    m_rel: Tensor, pivot: Tensor, gate_weight: Tensor, gate_bias: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The gates g = softmax_k(w_k·m + b_k) and the weights g / C_k, C_k = Σ_c g, per sample,
    (N, K, C) each, from m − p (`m_rel`) and the sample's pivot p.

    The weights are a softmax over the channels of log g: C_k underflows where every
    channel shuns the mode (logit gaps past ~87 in float32), and each mode enters MGN's
    output, so it needs its statistics even then (as reference.functional says). And the
    logits are split as A_k + w_k·(m − p), A_k = w_k·p + b_k, and the per-mode constant
    A_k left out of the softmax over channels: ℓ = log g − (A_k − max_j A_j). Taken from
    log g itself, the weights would carry the rounding of logits as large as the data's
    offset or a shunned mode's bias (−1e5: log g ± 4e-3 in float32, the weights ± 0.4 %).
    The other modes' A_j still reach ℓ through log Σ_j; so the biases' common part, which
    the softmax ignores, is taken out first (b − max b), and what remains rounds at the
    size of w_j·p and of the biases' differences: an offset that biases cancel (w·p ≈ −b)
    stays ill-conditioned.
    """
    dtype = m_rel.dtype
    slope = gate_weight.to(dtype)[:, 0]  # (K,)
    a = pivot * slope  # (N, K)
    if gate_bias is not None:
        bias = gate_bias.to(dtype)
        a = a + (bias - bias.max())
    offset = (a - a.amax(dim=1, keepdim=True)).unsqueeze(-1)  # D_k, (N, K, 1)
    z = m_rel.unsqueeze(1) * slope.unsqueeze(-1)  # (N, K, C)
    ell = z.sub_(torch.logsumexp(offset + z, dim=1, keepdim=True))
    return (offset + ell).exp_(), torch.softmax(ell, dim=-1)


def _mgn_pivots(shift: Tensor) -> Tensor:
    """Each sample's pivot p, (N, 1): of its channels' shifts, the one nearest 0 (the first
    of equals, a NaN never; channel 0's where no magnitude is a number).

    The gates' logits are formed as A_k + w_k·(m − p) (_mgn_gates_and_weights), and m − p
    rounds at the size of |m − p|: every channel far from p puts that rounding into its
    gates, and through them into every output and gradient. With |p| the least of the
    shifts, |m − p| ≤ |m| + |s| for every channel: no channel's logits round much worse
    than the reference's own w_k·m + b_k, wherever the others lie, and under a common
    offset p lies with the channels (m − p small, better than the reference). Two pivots
    before failed where channels lie apart: channel 0's shift, an outlier of 1e6 among
    channels near 0 (dx off by 3e-2, where a float32 evaluation of the reference loses
    2e-7), and the shift nearest the mean of the shifts, half the channels at 1e4 and half
    at 0 (the pivot with the far half: dx off by 3e-4, against 3e-7). Any value is right
    up to rounding: this only decides which channels' rounding is least."""
    size = shift.abs()
    size.masked_fill_(size.isnan(), math.inf)  # argmin would take a NaN as least
    return shift.gather(1, size.argmin(dim=1, keepdim=True))


def _mode_group_norm_state(
    shift: Tensor,
    mean_dev: Tensor,
    var_rows: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    eps: float,
) -> _ModeState:
    m = shift + mean_dev
    pivot = _mgn_pivots(shift)  # (N, 1)
    m_rel = (shift - pivot) + mean_dev
    gates, weights = _mgn_gates_and_weights(m_rel, pivot, gate_weight, gate_bias)
    mean = _sum_over_channels(weights, m_rel)
    dev = _mgn_deviations(shift, mean_dev, pivot, mean, weights)
    var = (dev * dev).add_(var_rows.unsqueeze(1)).mul_(weights).sum(dim=-1)
    rstd = torch.rsqrt(var + eps)
    a = rstd.mean(dim=1, keepdim=True)  # (N, 1): the same for every channel of a sample
    b = (dev * rstd.unsqueeze(-1)).mean(dim=1)
    return _ModeState(m, gates, weights, dev, var, rstd, a, b)


def mode_group_norm_forward(
    shift: Tensor,
    mean_dev: Tensor,
    var_rows: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
) -> RowAffine:
    state = _mode_group_norm_state(shift, mean_dev, var_rows, gate_weight, gate_bias, eps)
    return _row_affine(state, mean_dev, weight, bias)


def mode_group_norm_backward(
    sum_dy: Tensor,
    sum_dy_xs: Tensor,
    length: int,
    shift: Tensor,
    mean_dev: Tensor,
    var_rows: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    eps: float,
) -> MixGrads:
    s = _mode_group_norm_state(shift, mean_dev, var_rows, gate_weight, gate_bias, eps)
    da, db, dm, d_weight, d_bias, scale = _common_backward(s, mean_dev, sum_dy, sum_dy_xs, weight)
    n_modes = s.rstd.shape[1]
    # a = mean_k r and b = mean_k (m − μ_k)·r: into r and μ (the gates only weigh statistics).
    d_rstd = (da.sum(dim=1, keepdim=True) + _sum_over_channels(s.dev, db)) / n_modes
    # μ = Σ_c w·m and σ² = Σ_c w·(v + (m − μ)²), with w = g / C_k.
    d_var = _var_grad(d_rstd, s.rstd)
    w = s.weights
    # σ²'s derivative in μ, −2·Σ_c w·(m − μ), is 0 in exact arithmetic. Computed, it carries
    # μ's rounding error and cancels it in what m receives, as autograd's chain through the
    # reference does; without it, a mode dominated by one channel (m ≈ μ, small σ², large
    # d_var) loses digits (dx off by 3e-5 on (2, 5) features instead of 2e-7).
    d_mean = -db.sum(dim=1, keepdim=True) * s.rstd / n_modes
    d_mean = d_mean - 2.0 * d_var * (w * s.dev).sum(dim=-1)
    dv = _sum_over_group_modes(w, d_var)
    # What m receives through μ and σ²: Σ_k w·(2(m − μ)·∂σ² + ∂μ).
    through_stats = (2.0 * s.dev).mul_(d_var.unsqueeze(-1)).add_(d_mean.unsqueeze(-1)).mul_(w)
    dm = dm + through_stats.sum(dim=1)
    spread = (s.dev * s.dev).add_(var_rows.unsqueeze(1)).sub_(s.var.unsqueeze(-1))
    # g ⊙ ∂L/∂g = ∂L/∂log g, in w: finite also where g underflows to 0 (w is a ratio). It sums
    # to 0 over each sample's channels (w = g / C_k ignores a common factor of g_k): so must
    # its two factors, Σ_c w·(v + (m − μ)² − σ²) and Σ_c w·(m − μ). Computed, they carry σ²'s
    # and μ's rounding (an ulp of σ², not of the far smaller spread), which reaches the gate
    # gradients undamped wherever those are small beside their terms: centre both again.
    spread = spread.sub_((w * spread).sum(dim=-1, keepdim=True))
    centred_dev = s.dev - (w * s.dev).sum(dim=-1, keepdim=True)
    g_dg = spread.mul_(d_var.unsqueeze(-1)).add_(centred_dev * d_mean.unsqueeze(-1)).mul_(w)
    d_logits = _softmax_backward(s.gates, g_dg, modes_dim=-2)  # (N, K, C)
    gw = gate_weight.to(dm.dtype)[:, 0]
    dm = dm + gw @ d_logits
    e, f = _dx_coefficients(dm, dv, mean_dev, length)
    return MixGrads(
        dy_scale=scale,
        x_scale=e,
        row_bias=f,
        gate_weight=_sum_over_channels(d_logits, s.m).sum(dim=0).unsqueeze(1),
        gate_bias=d_logits.sum(dim=(0, 2)),
        weight=d_weight,
        bias_param=d_bias,
    )
