"""Straight-through autograd quantizers for torch (functional wrappers of torch.autograd.Functions).

- ``quantize(x, fmt, rounding, estimator="ste"|"clipped", axis=-1)``: lowprec.quantize forward (axis:
  the blocks' axis of block-scaled formats); backward the identity ("ste") or the identity inside the
  format's representable range and 0 outside ("clipped"; per channel for per-channel formats: affine
  [(qmin - zp) * scale, (qmax - zp) * scale], binary [-alpha, alpha], ternary [-w_n, w_p]).
- ``quantize_grad(x, fmt, rounding, seed)``: identity forward; the gradient rounded to fmt backward
  (e.g. fp8_e5m2 with stochastic rounding).
- ``pact(x, alpha, bits)``: PACT (Choi et al. 2018): y = clip(x, 0, alpha), k-bit uniform on [0, alpha];
  dy/dx = 1 on [0, alpha], dy/dalpha = 1 where x >= alpha (the paper's eq. 3), else 0.
- ``dorefa_weight(w, bits)``, ``dorefa_activation(x, bits)``, ``dorefa_grad(x, bits, seed)``: DoReFa-Net
  (Zhou et al. 2016) quantize_k(r) = round((2**k - 1) r) / (2**k - 1) with the STE; weights
  2 quantize_k(tanh w / (2 max|tanh w|) + 1/2) - 1 (k = 1: sign(w) * mean|w|); activations
  quantize_k(clip(x, 0, 1)); gradients 2 max|dr| [quantize_k(dr / (2 max|dr|) + 1/2 + N) - 1/2] with
  uniform noise N in [-1/2, 1/2] / (2**k - 1).
- ``lsq(v, s, bits, signed)``: LSQ (Esser et al. 2020): round(clip(v / s, -Qn, Qp)) * s; dv = 1 inside;
  ds = (-v/s + round(v/s) inside, -Qn or Qp at the clip) * g, g = 1 / sqrt(numel * Qp).
- ``sign(x)``: BinaryConnect / BNN: +1 for x >= 0 else -1; gradient through hardtanh (1 where |x| <= 1).
- ``xnor_sign(w, axis)``: XNOR-Net / BWN: alpha * sign(w), alpha = mean |w| (per channel along axis);
  the gradient of the paper, g * (1/n + alpha * 1{|w| <= 1}).
- ``twn(w, axis)``: TWN ternary (lowprec.fit_twn), straight-through.
- ``ttq(w, w_p, w_n, t)``: TTQ (Zhu et al. 2017) with learned scales, the paper's eqs. (6)-(7): ternary
  weights W_p, 0, -W_n at threshold t * max|w|; dL/dW_p = sum of the gradients over I_p, dL/dW_n the
  sum over I_n (the paper's sign convention); the latent weights get W_p g, g, W_n g on I_p, I_0, I_n.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .kernels.params import qparams
from .formats import FixedFormat, FloatFormat
from .array import quantize as _lp_quantize
from .array.backend import choose
from .array.device import quantize_device
from .array.scalar import run_kernel
from .kernels.rounding import mode_index
from .formats import as_format
from .formats import BinaryFormat, BlockFormat, IntAffineFormat, LUTFormat, TernaryFormat, fit_twn

__all__ = ["quantize", "quantize_grad", "format_key", "pact", "dorefa_weight", "dorefa_activation", "dorefa_grad", "lsq",
           "sign", "xnor_sign", "twn", "ttq", "ESTIMATORS"]

ESTIMATORS = ("ste", "clipped")


def _q(x: torch.Tensor, fmt: Any, rounding: str, seed: Any, axis: int = -1) -> torch.Tensor:
    if (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and isinstance(rounding, str)
            and rounding != "stochastic" and isinstance(fmt, (FloatFormat, FixedFormat)) and fmt.overflow != "wrap"):
        # the common training case, without lowprec.quantize's argument handling (same kernel)
        src = x.detach()
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            # keep channels-last activations channels-last (mkldnn's layout): elementwise, any order works
            result = torch.empty_like(src)
            src_v, dst_v = src.permute(0, 2, 3, 1), result.permute(0, 2, 3, 1)
        else:
            src_v = src.contiguous()
            result = dst_v = torch.empty_like(src_v)
        arr = src_v.numpy()
        run_kernel(arr, dst_v.numpy(), qparams(fmt, arr.dtype, rounding, None), mode_index(rounding), 0)
        return result
    if isinstance(fmt, (FloatFormat, FixedFormat)):  # any layout: CUDA tensors keep theirs (Triton)
        if x.device.type == "cuda" and x.dtype in (torch.float32, torch.float64) and choose(None, x, fmt) == "triton":
            return quantize_device(x.detach(), fmt, rounding, "triton", seed=seed, automatic=True)  # the short way
        return _lp_quantize(x.detach(), fmt, rounding, seed=seed)
    blocks = {"axis": axis} if isinstance(fmt, BlockFormat) else {}
    return _lp_quantize(x.detach().contiguous(), fmt, rounding, seed=seed, **blocks)


def _along(param: Any, axis: int, x: torch.Tensor) -> Any:
    """A scalar, or a per-channel parameter shaped to broadcast along `axis` of x."""
    if np.ndim(param) == 0:
        return float(param)
    shape = [1] * x.dim()
    shape[axis % x.dim()] = -1
    return torch.tensor(np.asarray(param, np.float64), dtype=x.dtype, device=x.device).reshape(shape)


def representable_range(fmt: Any, x: torch.Tensor) -> tuple[Any, Any]:
    """(lowest, highest) value fmt can give for x (per channel where fmt is): the range outside which
    the 'clipped' estimator passes no gradient. Block-scaled formats scale to their block: no bound."""
    if isinstance(fmt, IntAffineFormat):
        zp, scale = _along(fmt.zero_point, fmt.axis, x), _along(fmt.scale, fmt.axis, x)
        return (fmt.qmin - zp) * scale, (fmt.qmax - zp) * scale
    if isinstance(fmt, BinaryFormat):
        alpha = _along(fmt.alpha, fmt.axis, x)
        return -alpha, alpha
    if isinstance(fmt, TernaryFormat):
        return -_along(fmt.w_n, fmt.axis, x), _along(fmt.w_p, fmt.axis, x)
    if isinstance(fmt, LUTFormat) and fmt.per_channel:
        book = fmt.codebook
        return _along(book.min(axis=1), fmt.axis, x), _along(book.max(axis=1), fmt.axis, x)
    if isinstance(fmt, BlockFormat):
        return -math.inf, math.inf
    return fmt.min, fmt.max


class _Quantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, fmt, rounding, estimator, seed, axis):
        ctx.save_for_backward(x)
        ctx.fmt, ctx.estimator = fmt, estimator
        return _q(x, fmt, rounding, seed, axis)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return _passed(g, x, ctx.fmt, ctx.estimator), None, None, None, None, None


def _passed(g: torch.Tensor, x: torch.Tensor, fmt: Any, estimator: str) -> torch.Tensor:
    """The gradient the estimator passes: g ("ste"), or g inside fmt's representable range, 0 outside
    ("clipped")."""
    if estimator != "clipped":
        return g
    lo, hi = representable_range(fmt, x)
    return g * ((x >= lo) & (x <= hi)).to(g.dtype)


def quantize(x: torch.Tensor, fmt: Any, rounding: str = "nearest_even", *, estimator: str = "ste",
             seed: Any = None, axis: int = -1) -> torch.Tensor:
    """lowprec.quantize with a straight-through gradient (see the module doc); `axis`: the blocks'
    axis of block-scaled formats (MX, NVFP4, bfp)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(map(repr, ESTIMATORS))}; got {estimator!r}")
    if torch.compiler.is_compiling():  # the custom operator: no graph break
        return _quantize_op(x, _key_traced(fmt), rounding, estimator, _seed_int(seed), axis)
    return _Quantize.apply(x, as_format(fmt), rounding, estimator, seed, axis)


class _QuantizeGrad(torch.autograd.Function):
    """The identity as a view (no copy; a custom operator may not alias its input), the gradient
    rounded: by _q for a format (eager), by the operator lowprec::quantize_grad_backward for a
    format_key (under torch.compile, which traces it)."""

    @staticmethod
    def forward(ctx, x, fmt, rounding, seed, axis):
        ctx.fmt, ctx.rounding, ctx.seed, ctx.axis = fmt, rounding, seed, axis
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        if isinstance(ctx.fmt, str):
            return _round_gradient(g.contiguous(), ctx.fmt, ctx.rounding, ctx.seed, ctx.axis), None, None, None, None
        return _q(g, ctx.fmt, ctx.rounding, ctx.seed, ctx.axis), None, None, None, None


def quantize_grad(x: torch.Tensor, fmt: Any, rounding: str = "nearest_even", *, seed: Any = None,
                  axis: int = -1) -> torch.Tensor:
    """Identity forward; the incoming gradient rounded to fmt backward (`axis`: as quantize's)."""
    if torch.compiler.is_compiling():  # traced: the format by its key, the operator backward
        return _QuantizeGrad.apply(x, _key_traced(fmt), rounding, _seed_int(seed), axis)
    return _QuantizeGrad.apply(x, as_format(fmt), rounding, seed, axis)


def _seed_int(seed: Any) -> int:
    """A seed for the operators: an int in [0, 2**63), or -1 for fresh entropy (None)."""
    if seed is None:
        return -1
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"under torch.compile, seed must be None or an int in [0, 2**63), got {seed!r}")
    return int(seed)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)  # half to even, as torch rounds

    @staticmethod
    def backward(ctx, g):
        return g


def _uniform_k(r: torch.Tensor, bits: int) -> torch.Tensor:
    n = 2**bits - 1
    return _RoundSTE.apply(r * n) / n


def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 32:
        raise ValueError(f"bits must be an int in [1, 32], got {bits!r}")
    return int(bits)


class _PACT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, bits):
        ctx.save_for_backward(x, alpha)
        n = 2**bits - 1
        y = torch.minimum(torch.relu(x), alpha)
        return torch.round(y * n / alpha) * alpha / n

    @staticmethod
    def backward(ctx, g):
        x, alpha = ctx.saved_tensors
        inside = (x >= 0) & (x < alpha)
        dalpha = (g * (x >= alpha).to(g.dtype)).sum().reshape(alpha.shape)
        return g * inside.to(g.dtype), dalpha, None


def pact(x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
    """PACT activation quantizer (see the module doc); alpha a learnable scalar tensor."""
    return _PACT.apply(x, alpha, _check_bits(bits))


def dorefa_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """DoReFa-Net's k-bit weights (Zhou et al. 2016): 2 quantize_k(tanh w / (2 max|tanh w|) + 1/2) - 1,
    values in [-1, 1]; k = 1: sign(w) * mean|w|. Straight-through gradient of the rounding."""
    bits = _check_bits(bits)
    if bits == 1:
        return sign(w) * w.abs().mean().detach()
    t = torch.tanh(w)
    return 2 * _uniform_k(t / (2 * t.abs().max()) + 0.5, bits) - 1


def dorefa_activation(x: torch.Tensor, bits: int) -> torch.Tensor:
    return _uniform_k(torch.clamp(x, 0, 1), _check_bits(bits))


class _DorefaGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bits, generator):
        ctx.bits, ctx.generator = bits, generator
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        n = 2**ctx.bits - 1
        m = g.abs().max()
        if m == 0:
            return g, None, None
        noise = (torch.rand(g.shape, generator=ctx.generator, dtype=g.dtype, device=g.device) - 0.5) / n
        q = torch.round((g / (2 * m) + 0.5 + noise) * n) / n
        return 2 * m * (q - 0.5), None, None


def dorefa_grad(x: torch.Tensor, bits: int, seed: int = 0) -> torch.Tensor:
    """Identity forward; DoReFa's k-bit gradient quantizer (with its noise, seeded) backward."""
    gen = torch.Generator().manual_seed(seed)
    return _DorefaGrad.apply(x, _check_bits(bits), gen)


class _LSQ(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, s, qn, qp, g):
        ratio = v / s
        ctx.save_for_backward(ratio)
        ctx.qn, ctx.qp, ctx.g = qn, qp, g
        return torch.round(torch.clamp(ratio, -qn, qp)) * s

    @staticmethod
    def backward(ctx, grad):
        (ratio,) = ctx.saved_tensors
        inside = (ratio > -ctx.qn) & (ratio < ctx.qp)
        dv = grad * inside.to(grad.dtype)
        ds_elem = torch.where(inside, torch.round(ratio) - ratio,
                              torch.where(ratio <= -ctx.qn, torch.full_like(ratio, -ctx.qn), torch.full_like(ratio, ctx.qp)))
        ds = (grad * ds_elem).sum() * ctx.g
        return dv, ds.reshape(()), None, None, None


def lsq(v: torch.Tensor, s: torch.Tensor, bits: int, signed: bool = True) -> torch.Tensor:
    """LSQ quantizer with its step-size gradient (see the module doc); s a learnable scalar tensor."""
    bits = _check_bits(bits)
    qn, qp = (2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    g = 1.0 / math.sqrt(v.numel() * qp)
    return _LSQ.apply(v, s, qn, qp, g)


class _Sign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def sign(x: torch.Tensor) -> torch.Tensor:
    return _Sign.apply(x)


class _XnorSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, axis):
        if axis is None:
            alpha = w.abs().mean()
            n = w.numel()
        else:
            dims = tuple(d for d in range(w.dim()) if d != axis % w.dim())
            alpha = w.abs().mean(dim=dims, keepdim=True)
            n = w.numel() // w.shape[axis]
        ctx.save_for_backward(w, alpha)
        ctx.n = n
        return alpha * torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, g):
        w, alpha = ctx.saved_tensors
        return g * (1.0 / ctx.n + alpha * (w.abs() <= 1).to(g.dtype)), None


def xnor_sign(w: torch.Tensor, axis: int | None = None) -> torch.Tensor:
    return _XnorSign.apply(w, axis)


class _STEValues(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, values):
        return values

    @staticmethod
    def backward(ctx, g):
        return g, None


def twn(w: torch.Tensor, axis: int | None = None) -> torch.Tensor:
    """Ternary Weight Networks (Li, Zhang, Liu 2016): w fitted with lowprec.fit_twn (delta = 0.7 mean|w|,
    scale = the mean |w| above it; per tensor, or per channel along `axis`) and rounded to {-a, 0, +a};
    the gradient passes straight through to w."""
    fmt = fit_twn(w.detach().cpu().double().numpy(), axis)
    values = _lp_quantize(w.detach().contiguous(), fmt)
    return _STEValues.apply(w, values.to(w.dtype))


class _TTQ(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, w_p, w_n, t):
        delta = t * w.abs().max()
        pos, neg = w > delta, w < -delta
        ctx.save_for_backward(pos, neg, w_p, w_n)
        return torch.where(pos, w_p, torch.where(neg, -w_n, torch.zeros_like(w)))

    @staticmethod
    def backward(ctx, g):
        pos, neg, w_p, w_n = ctx.saved_tensors
        d_wp = (g * pos).sum().reshape(w_p.shape)
        d_wn = (g * neg).sum().reshape(w_n.shape)
        dw = torch.where(pos, w_p * g, torch.where(neg, w_n * g, g))
        return dw, d_wp, d_wn, None


def ttq(w: torch.Tensor, w_p: torch.Tensor, w_n: torch.Tensor, t: float = 0.05) -> torch.Tensor:
    return _TTQ.apply(w, w_p, w_n, t)


# -- the same quantizers as PyTorch custom operators (torch.library), for torch.compile ------------------
# lowprec::quantize(x, fmt, rounding, estimator, seed, axis) rounds as lowprec.quantize does, with the
# straight-through backward above; lowprec::quantize_grad is the identity forward, rounding the incoming
# gradient backward. Formats travel as keys into a table of the format objects seen (operators take
# strings); a seed of -1 means fresh entropy; results are contiguous. quantize / quantize_grad call them
# while torch.compile traces, so a swapped model compiles without graph breaks; eager calls keep the
# autograd functions (less dispatch).

_FORMATS: dict[str, Any] = {}


def format_key(fmt: Any) -> str:
    """A string naming fmt for the operators (its name, else its repr), remembered for the lookup
    (call it outside torch.compile for an unnamed format: a traced call's record may not persist)."""
    key = getattr(fmt, "name", None) or repr(fmt)
    _FORMATS.setdefault(key, fmt)
    return key


def _key_traced(fmt: Any) -> str:
    """format_key while torch.compile traces: a name passes as it is (the registry's loading cannot be
    traced; the operator looks it up when it runs)."""
    return fmt if isinstance(fmt, str) else format_key(fmt)


def _format_of(key: str) -> Any:
    """The format a format_key names (a named format needs no record)."""
    fmt = _FORMATS.get(key)
    if fmt is not None:
        return fmt
    try:
        return as_format(key)
    except ValueError:
        raise ValueError(f"format {key} is not known to the compiled graph: call lowprec.ste.format_key(fmt) once "
                         "outside torch.compile (the layers do it for theirs)") from None


def _forward(x: torch.Tensor, fmt: str, rounding: str, seed: int, axis: int) -> torch.Tensor:
    """_q on the format `fmt` names: a new tensor with exactly the strides of torch.empty(x.shape), as
    the fake says (custom operators may not alias inputs; and a compiled graph plans the layouts of
    what follows from the fake's strides, even those of size-1 dimensions, which .contiguous() keeps)."""
    q = _q(x, _format_of(fmt), rounding, None if seed < 0 else seed, axis)
    if q.stride() != _dense_strides(q.shape) or q is x:
        q = torch.empty(q.shape, dtype=q.dtype, device=q.device).copy_(q)
    return q


def _dense_strides(shape: torch.Size) -> tuple:
    """The strides of torch.empty(shape)."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


@torch.library.custom_op("lowprec::quantize", mutates_args=())
def _quantize_op(x: torch.Tensor, fmt: str, rounding: str, estimator: str, seed: int, axis: int) -> torch.Tensor:
    """x rounded to the format `fmt` (a format_key); backward: the straight-through estimator."""
    return _forward(x, fmt, rounding, seed, axis)


@_quantize_op.register_fake
def _(x, fmt, rounding, estimator, seed, axis):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


def _setup_quantize(ctx, inputs, output):
    x, fmt, _, estimator, _, _ = inputs
    ctx.fmt, ctx.estimator = fmt, estimator
    ctx.save_for_backward(x if estimator == "clipped" else None)


def _backward_quantize(ctx, g):
    (x,) = ctx.saved_tensors
    return _passed(g, x, _format_of(ctx.fmt), ctx.estimator), None, None, None, None, None


_quantize_op.register_autograd(_backward_quantize, setup_context=_setup_quantize)


@torch.library.custom_op("lowprec::quantize_grad_backward", mutates_args=())
def _round_gradient(g: torch.Tensor, fmt: str, rounding: str, seed: int, axis: int) -> torch.Tensor:
    return _forward(g, fmt, rounding, seed, axis)


@_round_gradient.register_fake
def _(g, fmt, rounding, seed, axis):
    return torch.empty(g.shape, dtype=g.dtype, device=g.device)


@torch.library.custom_op("lowprec::quantize_grad", mutates_args=())
def _quantize_grad_op(x: torch.Tensor, fmt: str, rounding: str, seed: int, axis: int) -> torch.Tensor:
    """The identity (a copy); backward: the incoming gradient rounded to `fmt`. (ste.quantize_grad
    under torch.compile uses a view instead; this operator stays for direct use.)"""
    return x.clone()


@_quantize_grad_op.register_fake
def _(x, fmt, rounding, seed, axis):
    return torch.empty_like(x)


def _setup_grad(ctx, inputs, output):
    _, ctx.fmt, ctx.rounding, ctx.seed, ctx.axis = inputs


def _backward_grad(ctx, g):
    return _round_gradient(g.contiguous(), ctx.fmt, ctx.rounding, ctx.seed, ctx.axis), None, None, None, None


_quantize_grad_op.register_autograd(_backward_grad, setup_context=_setup_grad)

