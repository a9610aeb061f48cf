"""lowprec.quantize: round arrays to a format, in the C core."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _arrays
from .kernels.native import ffi, lib
from .kernels.params import qparams
from .kernels.philox import counter_offset
from .formats import SCALED_KINDS, BlockFormat, FixedFormat, FloatFormat, Format, LUTFormat, as_format, layout
from .kernels.rounding import check_rbits, mode_index, seed_key
from .kernels.threads import get_num_threads

NAN_POLICIES = ("default", "raise")


def quantize(x: Any, fmt: Format | str, rounding: str = "nearest_even", *, seed: Any = None,
             rbits: int | None = None, out: Any = None, nan: str = "default", axis: int = -1,
             pad: str = "zeros") -> Any:
    """Round every element of x to a value of `fmt` (a name or a format object).

    x: float32/float64 numpy array (any strides, either byte order), numpy float scalar, Python
    float, or float32/float64 torch tensor. The result has x's type, dtype and shape; x itself is
    never written unless it is passed as `out`. float64 input is rounded once, directly.

    rounding: one of lowprec.ROUNDING_MODES. "stochastic" rounds away from zero with probability
    (distance to the lower neighbour) / spacing; `seed` (int or numpy Generator) fixes the random
    bits, whatever the thread count; `rbits=k` uses k random bits with the remainder rounded to k bits
    first (gfloat's RoundMode.Stochastic). rbits=None uses 32 random bits for float32 input and 64
    for float64, which is exact whenever the remainder fits in them (always, for inputs no more than
    ~8 (float32) / ~11 (float64) binades below the format's smallest nonzero value).

    Formats wider than x's dtype (e.g. fp64, int32 from float32): results are the values of the
    format that x's dtype holds; saturation stops at the largest such value.

    nan: "default" follows the format's convention (see its docstring); "raise" raises ValueError
    when a NaN meets a format without NaN.

    Block-scaled formats (lowprec.formats.block, e.g. "mxfp8_e4m3"): blocks run along `axis`; `pad`
    says what a partial last block does ("zeros": it is scaled by its own elements; "raise"). See
    lowprec.blockscaled. Codebook formats (lowprec.LUTFormat, LogFormat): see lowprec.lut. Binary,
    ternary and integer-affine formats: see lowprec.scaled.
    """
    fmt = as_format(fmt)
    if _arrays.is_half_tensor(x):
        return _quantize_half(x, fmt, rounding, out=out, seed=seed, rbits=rbits, nan=nan, axis=axis, pad=pad)
    if isinstance(fmt, SCALED_KINDS):
        from .scaled import quantize_scaled

        return quantize_scaled(x, fmt, rounding, seed=seed, out=out)
    if isinstance(fmt, LUTFormat):
        from .lut import quantize_lut

        return quantize_lut(x, fmt, rounding, seed, out)
    if _arrays.is_tensor(x) and x.device.type != "cpu" and out is None and nan == "default" and isinstance(
            fmt, (FloatFormat, FixedFormat)) and fmt.overflow != "wrap":
        from .torch_quantize import quantize_torch  # on the tensor's device, no host round trip

        return quantize_torch(x, fmt, rounding, seed=seed, rbits=rbits)
    if isinstance(fmt, BlockFormat):
        if nan not in NAN_POLICIES:
            raise ValueError(f"nan must be one of {', '.join(map(repr, NAN_POLICIES))}; got {nan!r}")
        from .blockscaled import quantize_blocks

        return quantize_blocks(x, fmt, rounding, axis=axis, seed=seed, rbits=rbits, out=out, pad=pad)
    mode = mode_index(rounding)
    rbits = check_rbits(rbits)
    if nan not in NAN_POLICIES:
        raise ValueError(f"nan must be one of {', '.join(map(repr, NAN_POLICIES))}; got {nan!r}")
    if x is None:
        raise TypeError("x must be a float array, tensor or number, got None")
    arr, restore = _arrays.to_numpy(x)
    target = _arrays.out_array(out, x, arr) if out is not None else None
    params = qparams(fmt, arr.dtype, rounding, rbits)
    key = seed_key(seed) if rounding == "stochastic" else 0

    src = _arrays.c_contiguous(arr)
    checked = nan == "raise" and not fmt.has_nan
    if target is not None and target.flags.c_contiguous and (
        not np.may_share_memory(target, src) or _same_buffer(target, src)
    ):
        dst = target
    else:
        dst = np.empty(arr.shape, arr.dtype)
    if checked and np.isnan(src).any():
        raise ValueError(f"x holds NaN and {fmt} has no NaN (nan='raise')")
    run_kernel(src, dst, params, mode, key)
    if isinstance(fmt, FixedFormat) and fmt.overflow == "wrap":
        _wrap(dst, fmt)
    if target is not None:
        if dst is not target:
            target[...] = dst
        return out
    return restore(dst)


_HALF_LIMITS = {"float16": (10, 65504.0, -24), "bfloat16": (7, 3.3895313892515355e38, -133)}  # man, max, q_exp


def fits(fmt: Format, dtype_name: str) -> bool:
    """Whether every value of a float or fixed-point format is exact in torch's float16/bfloat16."""
    man, top, q_exp = _HALF_LIMITS[dtype_name]
    fq = layout(fmt)[2]
    width = fmt.man_bits + 1 if isinstance(fmt, FloatFormat) else fmt.bits - int(fmt.signed)  # significant bits
    return width <= man + 1 and fmt.max <= top and -fmt.min <= top and fq >= q_exp


def _quantize_half(x: Any, fmt: Format, rounding: str, *, out: Any, **kwargs: Any) -> Any:
    """float16/bfloat16 tensors: exact in float32, quantized there, the result in x's dtype, which
    must hold every value of the format (else a clear error, never a second rounding)."""
    dtype_name = str(x.dtype).rsplit(".", 1)[-1]
    if isinstance(fmt, (FloatFormat, FixedFormat)) and not fits(fmt, dtype_name):
        raise TypeError(f"x is a {dtype_name} tensor and {fmt.name or fmt!r} has values {dtype_name} cannot "
                        "hold; pass x.float() (the result is then float32)")
    q = quantize(x.float(), fmt, rounding, **kwargs)
    result = q.to(x.dtype)
    if not isinstance(fmt, (FloatFormat, FixedFormat)):  # scaled, block, codebook values: check them
        import torch

        if not bool(((result.float() == q) | torch.isnan(q)).all()):
            raise TypeError(f"x is a {dtype_name} tensor and its values in {fmt!r} are not all {dtype_name} "
                            "values; pass x.float() (the result is then float32)")
    if out is not None:
        if not _arrays.is_tensor(out) or out.shape != x.shape or out.dtype != x.dtype:
            raise TypeError("out must be a tensor of x's shape and dtype")
        out.copy_(result)
        return out
    return result


def _same_buffer(a: np.ndarray, b: np.ndarray) -> bool:
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.strides == b.strides


def run_kernel(src: np.ndarray, dst: np.ndarray, params, mode: int, key: int, offset: int = 0) -> None:
    """Quantize C-contiguous src into C-contiguous dst (same dtype) with a prepared parameter block;
    stochastic draws start at Philox counter `offset` (see lp_quantize in csrc/lowprec.h)."""
    n = src.size
    if n == 0:
        return
    ctype = "float[]" if src.dtype == np.float32 else "double[]"
    fn = lib.lp_quantize_f32 if src.dtype == np.float32 else lib.lp_quantize_f64
    pin = ffi.from_buffer(ctype, src)
    pout = ffi.from_buffer(ctype, dst, require_writable=True)
    fn(pin, pout, n, params, mode, key, offset, get_num_threads())


def quantize_at(src: np.ndarray, fmt: Format, rounding: str, key: int, rbits: int | None, start: int) -> np.ndarray:
    """src (1-D, C-contiguous float32/float64) quantized to a float or fixed-point format as the
    elements [start, start + src.size) of a larger array: stochastic draws as quantize(that array)
    draws them there. start must be a multiple of 1024 (the kernel's block)."""
    dst = np.empty(src.size, src.dtype)
    run_kernel(src, dst, qparams(fmt, src.dtype, rounding, rbits), mode_index(rounding), key,
               counter_offset(start, src.dtype))
    if isinstance(fmt, FixedFormat) and fmt.overflow == "wrap":
        _wrap(dst, fmt)
    return dst


def quantized_chunks(arr: np.ndarray, fmt: Format, rounding: str = "nearest_even", *, seed: Any = None,
                     rbits: int | None = None, nan: str = "default"):
    """Yield (start, values): arr (a float32/float64 ndarray) quantized to a float or fixed-point
    format a bounded chunk at a time in C order, with the same bits (stochastic draws included) as
    quantize(arr) at those positions."""
    mode_index(rounding)
    rbits = check_rbits(rbits)
    if nan not in NAN_POLICIES:
        raise ValueError(f"nan must be one of {', '.join(map(repr, NAN_POLICIES))}; got {nan!r}")
    key = seed_key(seed) if rounding == "stochastic" else 0
    checked = nan == "raise" and not fmt.has_nan
    for start, _, src in _arrays.flat_chunks(arr):
        if checked and np.isnan(src).any():
            raise ValueError(f"x holds NaN and {fmt} has no NaN (nan='raise')")
        yield start, quantize_at(src, fmt, rounding, key, rbits, start)


def _wrap(values: np.ndarray, fmt: FixedFormat) -> None:
    """Two's complement wrap-around (modulo 2**bits) of the out-of-range values, in place."""
    scale = 2.0**fmt.frac_bits
    k = values.astype(np.float64) * scale
    kmax, kmin = fmt.max * scale, fmt.min * scale
    bad = (k > kmax) | (k < kmin)
    if bad.any():
        modulus = 2.0**fmt.bits
        w = np.fmod(k[bad], modulus)  # fmod is exact
        w = np.where(w > kmax, w - modulus, w)
        w = np.where(w < kmin, w + modulus, w)
        values[bad] = w / scale + 0.0  # + 0.0: a wrapped zero is +0
