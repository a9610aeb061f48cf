"""Quantize, encode and decode the scaled integer formats of lowprec.formats.scaled (binary, ternary,
integer affine), numpy and torch. NaN input: binary and ternary values stay NaN (encode raises);
integer affine quantize gives NaN, encode raises. Inf saturates."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from . import adapters as _arrays
from .._exact import divide_round_odd, multiply_round_odd
from ..kernels.philox import counter_offset, element_random
from ..formats import FixedFormat
from ..kernels.native import ffi, lib
from ..kernels.params import qparams
from ..kernels.rounding import mode_index, seed_key
from ..kernels.threads import get_num_threads
from .backend import choose_for_scaled
from .scalar import quantize_at
from ..formats import BinaryFormat, IntAffineFormat, TernaryFormat

__all__ = ["quantize_scaled", "encode_scaled", "decode_scaled", "SCALED_FORMATS"]

SCALED_FORMATS = (BinaryFormat, TernaryFormat, IntAffineFormat)
_INTEGER = FixedFormat(64, 0, overflow="saturate")  # round to an integer, any mode


def _along(param: Any, axis: int, arr: np.ndarray, name: str) -> np.ndarray | float:
    """A per-channel parameter shaped to broadcast along `axis` of arr (scalars pass through)."""
    if np.ndim(param) == 0:
        return param
    if arr.ndim == 0 or not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"per-channel {name} needs x with an axis {axis}; x has shape {arr.shape}")
    ax = axis % arr.ndim
    if arr.shape[ax] != len(param):
        raise ValueError(f"{name} has {len(param)} channels; x has {arr.shape[ax]} along axis {axis}")
    shape = [1] * arr.ndim
    shape[ax] = len(param)
    return np.asarray(param).reshape(shape)


def _random_unit(shape: tuple, seed: Any, start: int = 0) -> np.ndarray:
    """Uniform [0, 1) doubles from 32-bit Philox draws (lowprec.quantize's layout over float32), for
    the elements from `start` (a multiple of 1024) of a larger array."""
    n = int(np.prod(shape))
    words = element_random(n, np.float32, seed_key(seed), counter_offset(start, np.float32))
    return (words.astype(np.float64) / 2.0**32).reshape(shape)


_PARAMS = {BinaryFormat: ("alpha",), TernaryFormat: ("w_p", "w_n", "delta"), IntAffineFormat: ("scale", "zero_point")}


def _check_channels(fmt: Any, arr: np.ndarray) -> None:
    for name in _PARAMS[type(fmt)]:
        _along(getattr(fmt, name), fmt.axis, arr, name)


def _chunk_format(fmt: Any, shape: tuple, start: int, stop: int) -> Any:
    """fmt for the elements [start, stop) of a C-order array of `shape`, as a 1-D array: each
    per-channel parameter expanded to one entry per element (axis 0)."""
    per_channel = [n for n in _PARAMS[type(fmt)] if np.ndim(getattr(fmt, n)) == 1]
    if not per_channel:
        return fmt
    ax = fmt.axis % len(shape)
    channel = (np.arange(start, stop) // math.prod(shape[ax + 1:])) % shape[ax]
    return dataclasses.replace(fmt, axis=0, **{n: np.asarray(getattr(fmt, n))[channel] for n in per_channel})


def _binary(arr: np.ndarray, fmt: BinaryFormat, rounding: str, seed: Any, start: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    alpha = _along(fmt.alpha, fmt.axis, arr, "alpha")
    x = arr.astype(np.float64)
    if rounding == "stochastic":
        p = np.clip((x / alpha + 1.0) / 2.0, 0.0, 1.0)  # BinaryConnect's hard sigmoid
        plus = _random_unit(arr.shape, seed, start) < p
    else:
        plus = x >= 0
    values = np.where(plus, alpha, -np.asarray(alpha) * 1.0)
    return np.where(np.isnan(x), np.nan, values), plus.astype(np.uint8)


def _ternary(arr: np.ndarray, fmt: TernaryFormat) -> tuple[np.ndarray, np.ndarray]:
    x = arr.astype(np.float64)
    delta = _along(fmt.delta, fmt.axis, arr, "delta")
    w_p, w_n = _along(fmt.w_p, fmt.axis, arr, "w_p"), _along(fmt.w_n, fmt.axis, arr, "w_n")
    pos, neg = x > delta, x < -np.asarray(delta)
    values = np.where(pos, w_p, np.where(neg, -np.asarray(w_n) * 1.0, 0.0))
    codes = (pos | neg).astype(np.uint8) | (neg.astype(np.uint8) << 1)
    return np.where(np.isnan(x), np.nan, values), codes


def _affine_codes(arr: np.ndarray, fmt: IntAffineFormat, rounding: str, seed: Any, start: int = 0) -> np.ndarray:
    """q as int64 (NaN inputs give qmin; the callers mask them); stochastic draws as for the elements
    from `start` (a multiple of 1024) of a larger array."""

    scale = _along(fmt.scale, fmt.axis, arr, "scale")
    if np.ndim(scale):
        scale = np.broadcast_to(scale, arr.shape).astype(np.float64)
    zp = _along(fmt.zero_point, fmt.axis, arr, "zero_point")
    x = arr.astype(np.float64)
    r = divide_round_odd(np.where(np.isnan(x), 0.0, x), scale)
    key = seed_key(seed) if rounding == "stochastic" else 0
    k = quantize_at(np.ascontiguousarray(r).reshape(-1), _INTEGER, rounding, key, None, start).reshape(r.shape)
    k = np.clip(k, -(2.0**62), 2.0**62)  # beyond any range: clamped below anyway
    return np.clip(k.astype(np.int64) + zp, fmt.qmin, fmt.qmax)


def _affine(arr: np.ndarray, fmt: IntAffineFormat, rounding: str, seed: Any) -> tuple[np.ndarray, np.ndarray]:
    q = _affine_codes(arr, fmt, rounding, seed)
    zp = _along(fmt.zero_point, fmt.axis, arr, "zero_point")
    scale = np.broadcast_to(_along(fmt.scale, fmt.axis, arr, "scale"), arr.shape)
    k, sc = (q - zp).astype(np.float64), np.asarray(scale, np.float64)
    # one rounding to x's dtype: float64's own product, or round-to-odd then the cast to float32
    values = k * sc if arr.dtype == np.float64 else multiply_round_odd(k, sc)
    return np.where(np.isnan(arr), np.nan, values), q


def _channels(fmt: Any, arr: np.ndarray, names: tuple, dtypes: tuple) -> tuple[list, int, int]:
    """fmt's parameters `names` as contiguous per-channel arrays of `dtypes` (one entry per tensor),
    the channel count and `inner` (the C kernels' channel of element i: (i / inner) % channels)."""
    channels = max(np.size(getattr(fmt, n)) for n in names)
    params = [np.ascontiguousarray(np.broadcast_to(np.asarray(getattr(fmt, n), dt), (channels,)))
              for n, dt in zip(names, dtypes)]
    inner = math.prod(arr.shape[fmt.axis % arr.ndim + 1:]) if channels > 1 else 1
    return params, channels, inner


def _affine_c(src: np.ndarray, fmt: IntAffineFormat, rounding: str, seed: Any, dst: np.ndarray,
              start: int = 0) -> None:
    """The values of _affine by the C kernel (csrc/affine_impl.h) into dst (C-contiguous, src's shape
    and dtype; src itself or not overlapping it): per tensor or per channel, every mode; stochastic
    draws as for the elements from `start` (a multiple of 1024) of a larger array."""
    _check_channels(fmt, src)
    (scale, zp), channels, inner = _channels(fmt, src, ("scale", "zero_point"), (np.float64, np.int64))
    if not src.size:
        return
    ctype = "float[]" if src.dtype == np.float32 else "double[]"
    fn = lib.lp_affine_f32 if src.dtype == np.float32 else lib.lp_affine_f64
    key = seed_key(seed) if rounding == "stochastic" else 0
    ip = qparams(_INTEGER, np.dtype(np.float64), rounding, None)
    fn(ffi.from_buffer(ctype, src), ffi.from_buffer(ctype, dst, require_writable=True), src.size,
       ffi.from_buffer("double[]", scale), ffi.from_buffer("int64_t[]", zp), channels, inner, fmt.qmin, fmt.qmax,
       ip, mode_index(rounding), key, counter_offset(start, np.dtype(np.float64)), get_num_threads())


def _binary_ternary_c(src: np.ndarray, fmt: Any, rounding: str, seed: Any, dst: np.ndarray) -> None:
    """The values of _binary / _ternary by the C kernels (csrc/scaled_impl.h) into dst (as _affine_c's)."""
    _check_channels(fmt, src)
    names = _PARAMS[type(fmt)]
    params, channels, inner = _channels(fmt, src, names, (np.float64,) * len(names))
    if src.size:
        sfx, ctype = ("f32", "float[]") if src.dtype == np.float32 else ("f64", "double[]")
        ptrs = [ffi.from_buffer("double[]", p) for p in params]
        io = (ffi.from_buffer(ctype, src), ffi.from_buffer(ctype, dst, require_writable=True), src.size)
        if isinstance(fmt, BinaryFormat):
            stochastic = rounding == "stochastic"
            getattr(lib, f"lp_binary_{sfx}")(*io, ptrs[0], channels, inner, int(stochastic),
                                             seed_key(seed) if stochastic else 0, 0, get_num_threads())
        else:
            getattr(lib, f"lp_ternary_{sfx}")(*io, *ptrs, channels, inner, get_num_threads())


def _round(arr: np.ndarray, fmt: Any, rounding: str, seed: Any) -> tuple[np.ndarray, np.ndarray]:
    mode_index(rounding)
    if isinstance(fmt, BinaryFormat):
        return _binary(arr, fmt, rounding, seed)
    if isinstance(fmt, TernaryFormat):
        return _ternary(arr, fmt)
    return _affine(arr, fmt, rounding, seed)


def _affine_codes_c(chunk: np.ndarray, fmt: IntAffineFormat, rounding: str, seed: Any, start: int
                    ) -> np.ndarray | None:
    """_affine_codes of a 1-D float32/float64 chunk without NaN from the C kernel's values: q =
    rint(value / scale) + zero_point. Exact where q - zero_point has at most 17 bits (formats of at
    most 16) and every nonzero |value| is a normal of the chunk's dtype (no overflow either): then
    value = (q - zp) * scale * (1 + d), |d| <= 2**-24, and value / scale lies within 2**17 * 2**-23
    of q - zp. None where that does not hold (the numpy rule then)."""
    info = np.finfo(chunk.dtype)
    scale = np.asarray(fmt.scale, np.float64)
    if fmt.bits > 16 or chunk.dtype not in (np.float32, np.float64) or not (
            scale.min() >= info.tiny and scale.max() * 2.0**17 < info.max):
        return None
    values = np.empty_like(chunk)
    _affine_c(np.ascontiguousarray(chunk), fmt, rounding, seed, values, start)
    return np.rint(values / scale) + fmt.zero_point  # exact integers in float64


def _codes(chunk: np.ndarray, fmt: Any, rounding: str, seed: Any, start: int) -> np.ndarray:
    """The codes of a 1-D chunk (elements from `start` of a larger array; fmt as _chunk_format)."""
    if isinstance(fmt, BinaryFormat):
        return _binary(chunk, fmt, rounding, seed, start)[1]
    if isinstance(fmt, TernaryFormat):
        return _ternary(chunk, fmt)[1]
    fast = _affine_codes_c(chunk, fmt, rounding, seed, start)
    return fast if fast is not None else _affine_codes(chunk, fmt, rounding, seed, start)


def quantize_scaled(x: Any, fmt: Any, rounding: str = "nearest_even", *, seed: Any = None, out: Any = None,
                    backend: str | None = None) -> Any:
    """lowprec.quantize for BinaryFormat / TernaryFormat / IntAffineFormat (tensors on a GPU: the
    Triton kernels, lowprec.array.backend)."""
    if choose_for_scaled(backend, x, fmt) == "triton":
        mode_index(rounding)
        _check_channels(fmt, np.broadcast_to(np.float32(0), tuple(x.shape)))
        from .device import quantize_scaled_triton  # imports torch: only for tensors

        return quantize_scaled_triton(x, fmt, rounding, seed, _INTEGER, out=out)
    arr, restore = _arrays.to_numpy(x)
    target = _arrays.out_array(out, x, arr) if out is not None else None
    if isinstance(fmt, IntAffineFormat):
        mode_index(rounding)
    src = np.ascontiguousarray(arr)
    # the kernels write element i after reading it: into out= directly where it is src or apart from it
    direct = target is not None and target.flags.c_contiguous and (
        _arrays.address(target) == _arrays.address(src) or not np.may_share_memory(target, src))
    dst = target if direct else np.empty_like(src)
    kernel = _affine_c if isinstance(fmt, IntAffineFormat) else _binary_ternary_c
    kernel(src, fmt, rounding, seed, dst)
    return out if direct else _arrays.deliver(dst, out, target, restore)


def encode_scaled(x: Any, fmt: Any, rounding: str = "nearest_even", *, seed: Any = None) -> Any:
    """Codes: binary uint8 bits, ternary uint8 2-bit codes, affine the integers q (int/uint by bits)."""
    arr, _ = _arrays.to_numpy(x)
    mode_index(rounding)
    _check_channels(fmt, arr)
    codes = np.empty(arr.shape, fmt.code_dtype if isinstance(fmt, IntAffineFormat) else np.uint8)
    flat = codes.reshape(-1)
    for start, stop, chunk in _arrays.flat_chunks(arr):  # bounded scratch: the codes are the one full array
        if np.isnan(chunk).any():
            raise ValueError(f"x holds NaN, which no code of {fmt!r} represents")
        flat[start:stop] = _codes(chunk, _chunk_format(fmt, arr.shape, start, stop), rounding, seed, start)
    return _arrays.codes_like(codes, x)


def decode_scaled(codes: Any, fmt: Any) -> Any:
    """float64 values of codes."""
    c, tensor = _arrays.read_codes(codes)
    _check_channels(fmt, c)
    values = np.empty(c.shape, np.float64)
    flat = values.reshape(-1)
    for start, stop, chunk in _arrays.flat_chunks(c):  # bounded scratch: the values are the one full array
        flat[start:stop] = _decode_chunk(chunk, _chunk_format(fmt, c.shape, start, stop))
    if tensor:
        import torch

        return torch.from_numpy(values)
    return values


def _decode_chunk(c: np.ndarray, fmt: Any) -> np.ndarray:
    c = c.astype(np.int64)
    if isinstance(fmt, BinaryFormat):
        if c.size and not np.isin(c, (0, 1)).all():
            raise ValueError("binary codes must be 0 or 1")
        alpha = _along(fmt.alpha, fmt.axis, c, "alpha")
        values = np.where(c == 1, 1.0, -1.0) * alpha
    elif isinstance(fmt, TernaryFormat):
        if c.size and not np.isin(c, (0, 1, 3)).all():
            raise ValueError("ternary codes must be 0 (zero), 1 (+w_p) or 3 (-w_n)")
        w_p, w_n = _along(fmt.w_p, fmt.axis, c, "w_p"), _along(fmt.w_n, fmt.axis, c, "w_n")
        values = np.where(c == 1, w_p, np.where(c == 3, -np.asarray(w_n) * 1.0, 0.0)) * np.ones(c.shape)
    else:
        if c.size and (c.min() < fmt.qmin or c.max() > fmt.qmax):
            raise ValueError(f"codes must lie in [{fmt.qmin}, {fmt.qmax}]; got [{c.min()}, {c.max()}]")
        zp = _along(fmt.zero_point, fmt.axis, c, "zero_point")
        values = (c - zp) * np.asarray(_along(fmt.scale, fmt.axis, c, "scale"), np.float64)
    return values
