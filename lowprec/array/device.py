"""Quantization of tensors where they live (lowprec.array.backend chooses): the Triton kernels
(lowprec.kernels.gpu) for float and fixed-point formats (quantize_device, quantize_triton), block
formats (quantize_blocks_triton), binary/ternary/integer-affine formats (quantize_scaled_triton) and
codebooks (quantize_lut_triton); and,
for float and fixed-point formats on devices Triton cannot run on, the C kernel's bit manipulation
(csrc/quantize_impl.h) in plain torch operations on integer views (quantize_torch).

Bit-identical to lowprec.quantize for float and fixed-point formats in every rounding mode
(stochastic: the same Philox4x32-10 draws for the same seed, generated on the device), float32 and
float64 tensors. Patterns are held in int64 lanes: magnitudes (sign cleared) stay below 2**63, so
signed comparisons order them as the C code's unsigned ones do.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Any

import numpy as np
import torch

from ..kernels import gpu
from .adapters import narrowed
from ..kernels.params import qparams
from ..kernels.philox import WORK_UNIT
from ..formats import BinaryFormat, FixedFormat, FloatFormat, TernaryFormat, as_format
from ..kernels.rounding import check_rbits, mode_index, seed_key

__all__ = ["quantize_device", "quantize_triton", "quantize_blocks_triton", "quantize_scaled_triton",
           "quantize_lut_triton", "quantize_torch", "philox_words"]

_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = 0xFFFFFFFF


def philox_words(counters: torch.Tensor, seed: int) -> torch.Tensor:
    """Philox4x32-10 of int64 counters (as (lo, hi, 0, 0)) keyed by seed: int64 tensor (4, n) of words."""
    c0 = counters & _MASK32
    c1 = (counters >> 32) & _MASK32
    c2 = torch.zeros_like(counters)
    c3 = torch.zeros_like(counters)
    k0, k1 = seed & _MASK32, (seed >> 32) & _MASK32
    for _ in range(10):
        p0 = c0 * _M0  # < 2**64: the low 64 bits are right in int64 (wrapping), so are both halves
        p1 = c2 * _M1
        hi0, lo0 = (p0 >> 32) & _MASK32, p0 & _MASK32
        hi1, lo1 = (p1 >> 32) & _MASK32, p1 & _MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return torch.stack([c0, c1, c2, c3])


def _element_random(n: int, width: int, seed: int, device, rbits: int | None = None) -> torch.Tensor:
    """Each element's draw in the C core's layout (lowprec.h): 32 bits (float32) or 64 (float64, as an
    int64 bit pattern); with rbits <= 8, a byte as the draw's top byte."""
    i = torch.arange(n, device=device, dtype=torch.int64)
    block, local = i // WORK_UNIT, i % WORK_UNIT
    per_ctr = 4 if width == 32 else 2
    per_block = WORK_UNIT // per_ctr
    if rbits is not None and rbits <= 8:  # byte local // 256 of word j // 64 of counter j % 64, j = local % 256
        j = local % 256
        words = philox_words(block * per_block + j % 64, seed)
        byte = (words.gather(0, (j // 64).unsqueeze(0)).squeeze(0) >> (8 * (local // 256))) & 0xFF
        return byte << (width - 8)
    ctr = block * per_block + local % per_block
    words = philox_words(ctr, seed)
    if width == 32:
        return words.gather(0, (local // per_block).unsqueeze(0)).squeeze(0)
    h = local // per_block
    lo = words.gather(0, (2 * h).unsqueeze(0)).squeeze(0)
    hi = words.gather(0, (2 * h + 1).unsqueeze(0)).squeeze(0)
    return lo | (hi << 32)


def _ugt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unsigned a > b for 64-bit patterns held in int64."""
    flip = -(2**63)
    return (a ^ flip) > (b ^ flip)


def _rtne_shift(v, t, width):
    """Round-to-nearest-even of v * 2**t as an integer (v >= 0; the C helper of the same name)."""
    tl = t.clamp(0, width - 1)
    tr = torch.where(t > -1, torch.ones_like(t), (-t).clamp(max=width - 1))
    up = (v << tl) & (_MASK32 if width == 32 else -1)
    q = v >> tr
    round_bit = (v >> (tr - 1)) & 1
    sticky = ((v & ((1 << (tr - 1)) - 1)) != 0).long()
    down = q + (round_bit & (sticky | (q & 1)))
    return torch.where(t >= 0, up, down)


def _round_bits(bits: torch.Tensor, p, mode: int, width: int, rnd) -> torch.Tensor:
    """round_one of csrc/quantize_impl.h on int64 lanes holding `width`-bit patterns."""
    mant = 23 if width == 32 else 52
    bias_in = 127 if width == 32 else 1023
    sign_bit = 1 << (width - 1) if width == 32 else -(2**63)
    abs_mask = (1 << (width - 1)) - 1
    inf_bits = abs_mask ^ ((1 << mant) - 1)
    sign = bits & sign_bit
    a = bits & abs_mask
    e = a >> mant
    ec = e.clamp(min=1)
    ex = ec
    if p.sub_exp < 1:  # the format reaches below the input's normal range: subnormal inputs' binades
        af = a.to(torch.float32 if width == 32 else torch.float64)
        raw = af.view(torch.int32).long() if width == 32 else af.view(torch.int64)
        ex = torch.where(e == 0, (raw >> mant) - bias_in - mant + 1, ec)
    below = p.sub_exp - ex
    d = (p.drop0 + ex - ec + below.clamp(min=0)).clamp(0, mant + 1)
    unit = torch.ones_like(d) << d
    mask = unit - 1
    rem = a & mask
    trunc = a & ~mask
    half = unit >> 1
    sig = torch.where(e != 0, (a & ((1 << mant) - 1)) | (1 << mant), a)
    par_mask, par_xor = int(p.par_mask), int(p.par_xor)
    count_odd = (((sig & ~par_mask) | (a & par_mask)) ^ par_xor) & unit
    neg = sign != 0
    dropped = (rem != 0).long() << d
    is_tiny = a < int(p.tiny)
    half_q = int(p.half_q)
    nonzero = (a != 0).long()
    if mode == 0:  # nearest_even
        lsb = ((count_odd >> d) | (unit & 1)) & 1
        r = (a + (half - 1) + lsb) & ~mask
        inc_tiny = (a > half_q).long()
    elif mode == 1:  # nearest_away
        r = (a + half) & ~mask
        inc_tiny = (a >= half_q).long()
    elif mode == 2:  # toward_zero
        r = trunc
        inc_tiny = torch.zeros_like(a)
    elif mode == 3:  # up
        r = trunc + torch.where(neg, 0, dropped)
        inc_tiny = nonzero * (~neg).long()
    elif mode == 4:  # down
        r = trunc + torch.where(neg, dropped, 0)
        inc_tiny = nonzero * neg.long()
    elif mode == 5:  # odd
        r = trunc + (dropped & ~count_odd)
        inc_tiny = nonzero
    else:  # stochastic: gfloat's rule with k random bits
        k = int(p.rbits)
        t_tiny = ec - bias_in - mant - int(p.q_exp) + k
        v = torch.where(is_tiny, sig, rem)
        t = torch.where(is_tiny, t_tiny, k - d)
        frac_k = _rtne_shift(v, t, width)
        if k == width:
            complement = (_MASK32 - frac_k) if width == 32 else ~frac_k
            inc = _ugt(rnd, complement).long() if width == 64 else (rnd > complement).long()
        else:
            top = (rnd >> (width - k)) & ((1 << k) - 1)
            inc = ((frac_k + top) >> k) & 1  # & 1: a carry into bit 63 reads as a sign
        r = trunc + (inc << d)
        inc_tiny = inc
    r = torch.where(is_tiny, int(p.q) * inc_tiny, r)
    lim = torch.where(neg, int(p.lim_neg), int(p.lim_pos))
    ovf = torch.where(neg, int(p.ovf_neg), int(p.ovf_pos))
    r = torch.where(r > lim, ovf, r)
    keep = (r != 0) | bool(p.keep_neg_zero)
    out = r | torch.where(keep, sign, 0)
    inf_full = torch.where(neg, _signed(int(p.inf_neg_full), width), _signed(int(p.inf_pos_full), width))
    nan_full = torch.where(neg, _signed(int(p.nan_neg_full), width), _signed(int(p.nan_pos_full), width))
    out = torch.where(a == inf_bits, inf_full, out)
    return torch.where(a > inf_bits, nan_full, out)


def _signed(pattern: int, width: int) -> int:
    """A width-bit pattern as the int64 value the lanes hold (float64 patterns are signed int64)."""
    if width == 64 and pattern >= 2**63:
        return pattern - 2**64
    return pattern


def quantize_torch(x: torch.Tensor, fmt: Any, rounding: str = "nearest_even", *, seed: Any = None,
                   rbits: int | None = None) -> torch.Tensor:
    """lowprec.quantize for a float32/float64 tensor on any device, in torch ops (see the module doc)."""
    fmt = as_format(fmt)
    if not isinstance(fmt, (FloatFormat, FixedFormat)):
        raise TypeError(f"quantize_torch takes float and fixed-point formats; {fmt!r} is neither")
    if isinstance(fmt, FixedFormat) and fmt.overflow == "wrap":
        raise ValueError("quantize_torch does not wrap; use a saturating format or lowprec.quantize")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be a float32 or float64 tensor, got {x.dtype}")
    mode = mode_index(rounding)
    rbits = check_rbits(rbits)
    width = 32 if x.dtype == torch.float32 else 64
    p = qparams(fmt, np.dtype(np.float32 if width == 32 else np.float64), rounding, rbits)
    src = x.detach()
    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    if channels_last and rounding == "stochastic":  # draws follow the logical order, as on the CPU
        return quantize_torch(x.contiguous(), fmt, rounding, seed=seed, rbits=rbits).contiguous(
            memory_format=torch.channels_last)
    if channels_last:  # elementwise: round the storage in its own order, keep the layout
        src = src.permute(0, 2, 3, 1)
    flat = src.contiguous().reshape(-1)
    if width == 32:
        bits = flat.view(torch.int32).long() & _MASK32
    else:
        bits = flat.view(torch.int64)
    rnd = None
    if rounding == "stochastic":
        rnd = _element_random(flat.numel(), width, seed_key(seed), x.device, rbits)
    out = _round_bits(bits, p, mode, width, rnd)
    if width == 32:
        out = torch.where(out >= 2**31, out - 2**32, out).to(torch.int32).view(torch.float32)
    else:
        out = out.view(torch.float64)
    if channels_last:
        return out.reshape(src.shape).permute(0, 3, 1, 2)
    return out.reshape(x.shape)


_HALF = (torch.float16, torch.bfloat16)
_log = logging.getLogger(__name__)
_fell_back: set = set()


def _dense(t: torch.Tensor) -> bool:
    """Whether t's elements fill its storage span exactly once, in some order of its dimensions."""
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride()), key=lambda d: d[1]):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


_PLANS: dict = {}  # (id(fmt), rounding, rbits, dtype) -> (fmt, params, mode, width): holding fmt keeps its id


def _plan(fmt: Any, rounding: str, rbits: Any, dtype: torch.dtype) -> tuple:
    """(fmt, the kernel's parameter block, mode number, pattern width), checked once per combination:
    a training step quantizes the same few combinations hundreds of times."""
    plan = _PLANS.get((id(fmt), rounding, rbits, dtype))
    if plan is None:
        if dtype not in (torch.float32, torch.float64) + _HALF:
            raise TypeError(f"x must be a float16, bfloat16, float32 or float64 tensor, got {dtype}")
        mode, checked = mode_index(rounding), check_rbits(rbits)
        width = 64 if dtype == torch.float64 else 32
        params = qparams(fmt, np.dtype(np.float64 if width == 64 else np.float32), rounding, checked)
        if len(_PLANS) > 1024:
            _PLANS.clear()
        plan = _PLANS[(id(fmt), rounding, rbits, dtype)] = (fmt, params, mode, width)
    return plan


def quantize_triton(x: torch.Tensor, fmt: Any, rounding: str = "nearest_even", *, seed: Any = None,
                    rbits: int | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """lowprec.quantize of a float16/bfloat16/float32/float64 tensor by the Triton kernel, on the
    tensor's device (CPU tensors: Triton's interpreter). Half tensors are rounded as float32 (exact)
    and written back in their dtype: the caller checks that the format fits it. The result keeps x's
    layout (channels-last included); stochastic draws follow x's logical (C) order, as on the CPU."""
    _, params, mode, width = _plan(as_format(fmt), rounding, rbits, x.dtype)
    key = seed_key(seed) if mode == 6 else 0
    src = x.detach()
    dst = torch.empty_like(src) if out is None else out
    # elementwise: a dense tensor's storage can be rounded in its own order, unless draws are involved
    in_storage_order = src.is_contiguous() or (
        rounding != "stochastic" and _dense(src) and dst.stride() == src.stride())
    if in_storage_order and (dst.is_contiguous() or dst.stride() == src.stride()):
        gpu.quantize_float(src, dst, params, mode, width, key)
        return dst
    flat = src.contiguous()
    result = dst if dst.is_contiguous() else torch.empty_like(flat)
    gpu.quantize_float(flat, result, params, mode, width, key)
    if result is not dst:
        dst.copy_(result)
    return dst


def _check_out(out: Any, x: torch.Tensor) -> None:
    if out is not None and not (isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == x.dtype
                                and out.device == x.device):
        raise TypeError(f"out must be a tensor of x's shape, dtype and device ({tuple(x.shape)}, {x.dtype}, {x.device})")


def quantize_device(x: torch.Tensor, fmt: Any, rounding: str, backend: str, *, seed: Any = None,
                    rbits: int | None = None, out: Any = None, nan: str = "default",
                    automatic: bool = False) -> torch.Tensor:
    """The array API's quantize for a tensor on the "triton" or "torch" backend (lowprec.array.backend).
    out: a tensor of x's shape, dtype and device. automatic: the backend was not named, so a Triton
    failure (a compile error, say) falls back to torch operations with one warning per format."""
    _check_out(out, x)
    if nan == "raise" and not fmt.has_nan and bool(torch.isnan(x).any()):
        raise ValueError(f"x holds NaN and {fmt} has no NaN (nan='raise')")
    if backend == "triton":
        try:
            return quantize_triton(x, fmt, rounding, seed=seed, rbits=rbits, out=out)
        except (TypeError, ValueError):
            raise
        except Exception as exc:  # a Triton compile or launch failure
            if not automatic:
                raise
            if fmt not in _fell_back:
                _fell_back.add(fmt)
                warnings.warn(f"the Triton kernel failed for {fmt.name or repr(fmt)} ({type(exc).__name__}: {exc}); "
                              "using torch operations instead", RuntimeWarning, stacklevel=3)
    elif automatic and x.device.type not in ("cuda", "cpu"):
        _log.debug("quantize: no Triton on %s; using torch operations", x.device)
    if x.dtype in _HALF:  # the torch path rounds float32 (which holds the halves exactly)
        result = narrowed(quantize_torch(x.float(), fmt, rounding, seed=seed, rbits=rbits), x.dtype)
    else:
        result = quantize_torch(x, fmt, rounding, seed=seed, rbits=rbits)
    if out is None:
        return result
    out.copy_(result)
    return out


def _contiguous_target(x: torch.Tensor, out: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(x contiguous, a contiguous tensor to write: out where it is one)."""
    _check_out(out, x)
    src = x.detach().contiguous()
    return src, out if out is not None and out.is_contiguous() else torch.empty_like(src)


def _delivered(dst: torch.Tensor, out: Any) -> torch.Tensor:
    if out is not None and dst is not out:
        out.copy_(dst)
        return out
    return dst


def _lines(src: torch.Tensor, axis: int) -> tuple[int, int, int]:
    """src's shape as (outer, L, inner) around `axis`."""
    outer = int(np.prod(src.shape[:axis], dtype=np.int64))
    return outer, src.shape[axis], int(np.prod(src.shape[axis + 1:], dtype=np.int64))


def quantize_blocks_triton(x: torch.Tensor, fmt: Any, rounding: str, axis: int, threshold: int, *, seed: Any = None,
                           rbits: int | None = None, out: Any = None) -> torch.Tensor:
    """lowprec.quantize of a tensor to a block format along the checked, non-negative `axis` by the
    Triton kernels, on the tensor's device: e8m0 scales (MX, bfp; float32 tensors; threshold: the
    scale rule's, lowprec.array.block.scale_threshold) or float scales (NVFP4; float32/float64). The
    result is contiguous. Same bits as the host (stochastic draws over the blocked layout included)."""
    src, dst = _contiguous_target(x, out)
    shape = _lines(src, axis)
    if fmt.scale_is_e8m0:
        _, params, mode, _ = _plan(fmt.element, rounding, rbits, torch.float32)
        key = seed_key(seed) if mode == 6 else 0
        gpu.quantize_e8m0(src.view(shape), dst.view(shape), params, mode, key, block=fmt.block,
                          elem_emax=fmt.element_emax, threshold=threshold)
    else:
        # float64 parameters for stochastic rounding (its draws are the float64 layout's), else float32
        wide = torch.float64 if rounding == "stochastic" else torch.float32
        _, params, mode, _ = _plan(fmt.element, rounding, rbits, wide)
        scale_params = _plan(_saturating_scale(fmt), "nearest_even", None, torch.float32)[1]
        key = seed_key(seed) if mode == 6 else 0
        constants = (float(fmt.element.max), float(fmt.scale.max) * float(fmt.element.max),
                     float(fmt.scale.min_subnormal or fmt.scale.min_normal))
        gpu.quantize_fscale(src.view(shape), dst.view(shape), params, scale_params, mode, key, block=fmt.block,
                            constants=constants, tensor_scale=fmt.tensor_scale)
    return _delivered(dst, out)


_SCALES: dict = {}


def _saturating_scale(fmt: Any) -> Any:
    """The float scale format of fmt, saturating (float_scale_quantize's rule), made once per format."""
    hit = _SCALES.get(id(fmt))
    if hit is None or hit[0] is not fmt:
        hit = _SCALES[id(fmt)] = (fmt, dataclasses.replace(fmt.scale, overflow="saturate"))
    return hit[1]


_PARAMETERS: dict = {}  # (id(fmt), what, device) -> (fmt, tensors): holding fmt keeps its id unique


def _on_device(fmt: Any, what: Any, device: torch.device, build) -> tuple:
    """build() (a tuple of tensors for fmt), made once per format, purpose and device."""
    hit = _PARAMETERS.get((id(fmt), what, device))
    if hit is None:
        if len(_PARAMETERS) > 1024:
            _PARAMETERS.clear()
        hit = _PARAMETERS[(id(fmt), what, device)] = (fmt, tuple(t.to(device) for t in build()))
    return hit[1]


def _per_channel(fmt: Any, names: tuple, dtypes: tuple) -> tuple:
    """The parameters `names` of a scaled format as 1-D tensors of one common length."""
    channels = max(np.size(getattr(fmt, n)) for n in names)
    return tuple(torch.from_numpy(np.broadcast_to(np.asarray(getattr(fmt, n), d), (channels,)).copy())
                 for n, d in zip(names, dtypes))


def _inner(src: torch.Tensor, fmt: Any, channels: int) -> int:
    """Elements of src after its channel axis (1 for parameters per tensor)."""
    return int(np.prod(src.shape[fmt.axis % src.dim() + 1:], dtype=np.int64)) if channels > 1 else 1


def quantize_scaled_triton(x: torch.Tensor, fmt: Any, rounding: str, seed: Any, integer: Any, *,
                           out: Any = None) -> torch.Tensor:
    """lowprec.quantize of a float32/float64 tensor to a binary, ternary or integer-affine format by
    the Triton kernels, on the tensor's device; the result is contiguous (parameters checked by the
    caller against x's shape). integer: the fixed-point format of rounding to an integer."""
    src, dst = _contiguous_target(x, out)
    if isinstance(fmt, BinaryFormat):
        alpha, = _on_device(fmt, "alpha", src.device, lambda: _per_channel(fmt, ("alpha",), (np.float64,)))
        key = seed_key(seed) if rounding == "stochastic" else None
        gpu.quantize_binary(src, dst, alpha, _inner(src, fmt, alpha.numel()), key)
    elif isinstance(fmt, TernaryFormat):
        params = _on_device(fmt, "ternary", src.device,
                            lambda: _per_channel(fmt, ("w_p", "w_n", "delta"), (np.float64,) * 3))
        gpu.quantize_ternary(src, dst, *params, _inner(src, fmt, params[0].numel()))
    else:
        scale, zp = _on_device(fmt, "affine", src.device,
                               lambda: _per_channel(fmt, ("scale", "zero_point"), (np.float64, np.int64)))
        _, params, mode, _ = _plan(integer, rounding, None, torch.float64)
        key = seed_key(seed) if mode == 6 else 0
        gpu.quantize_affine(src, dst, scale, zp, params, mode, key, _inner(src, fmt, scale.numel()), qmin=fmt.qmin,
                            qmax=fmt.qmax)
    return _delivered(dst, out)


def quantize_lut_triton(x: torch.Tensor, fmt: Any, rounding: str, seed: Any, rows_of, *,
                        out: Any = None) -> torch.Tensor:
    """lowprec.quantize of a float32/float64 tensor to a codebook (LUT, log) format by the Triton
    kernel, on the tensor's device (the channel count checked by the caller); the result is
    contiguous. rows_of(dtype): per codebook row, (thresholds, values) of that numpy dtype."""
    src, dst = _contiguous_target(x, out)

    def tables():
        rows = rows_of(np.dtype(np.float32 if x.dtype == torch.float32 else np.float64))
        book = fmt.codebook if fmt.per_channel else fmt.codebook[None]
        return (torch.from_numpy(np.stack([t for t, _ in rows])), torch.from_numpy(np.stack([v for _, v in rows])),
                torch.from_numpy(np.array(book, np.float64)))

    thresholds, table, book = _on_device(fmt, (rounding, x.dtype), src.device, tables)
    key = seed_key(seed) if rounding == "stochastic" else None
    gpu.quantize_lut(src, dst, thresholds, table, book, _inner(src, fmt, table.shape[0]), key)
    return _delivered(dst, out)
