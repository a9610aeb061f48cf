"""Codes of a format: encode (round, then lay out the bits) and decode (codes to values).

Layouts: floats are sign | exponent field | mantissa field, as IEEE 754, the OCP specifications and
ml_dtypes lay them out (NaN: sign | all-ones exponent | quiet bit for "ieee"; sign | all ones for
"fn"; 1000..0 for "fnuz" and "p3109", whose +-Inf are 0111..1 and 1111..1). Fixed point is the two's complement (or unsigned) integer k of the value
k * 2**-frac_bits. Codes are uint8/uint16/uint32/uint64 by width.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from . import _arrays
from .block_formats import BlockFormat
from .codebook_formats import LUTFormat
from .scaled_formats import SCALED_KINDS
from .formats import FixedFormat, Format, as_format
from .quantize import quantize, quantized_chunks


def encode(x: Any, fmt: Format | str, rounding: str = "nearest_even", **kwargs) -> Any:
    """Round x to `fmt` (as lowprec.quantize, same keywords) and return the codes: an unsigned
    integer array of x's shape (a torch tensor for tensor input, a Python int for a Python float)."""
    fmt = as_format(fmt)
    if isinstance(fmt, SCALED_KINDS):
        from .scaled import encode_scaled

        return encode_scaled(x, fmt, rounding, **kwargs)
    if isinstance(fmt, LUTFormat):
        from .lut import encode_lut

        return encode_lut(x, fmt, rounding, **kwargs)
    if isinstance(fmt, BlockFormat):
        from .blockscaled import encode_blocks

        return encode_blocks(x, fmt, rounding, **kwargs)
    if isinstance(x, (float, int)) and not isinstance(x, bool):
        return int(_values_to_codes(np.float64(quantize(float(x), fmt, rounding, **kwargs)), fmt))
    if _arrays.is_tensor(x) and x.device.type != "cpu":
        arr, _ = _arrays.to_numpy(quantize(x, fmt, rounding, **kwargs))
        codes = _values_to_codes(arr.astype(np.float64), fmt)
    else:
        unknown = set(kwargs) - {"seed", "rbits", "nan"}
        if unknown:
            raise TypeError(f"encode got unexpected keyword argument(s) {', '.join(sorted(unknown))}")
        arr, _ = _arrays.to_numpy(x)
        # a chunk at a time: scratch stays bounded, the codes are the only full-size allocation
        codes = np.empty(arr.shape, fmt.code_dtype)
        flat = codes.reshape(-1)
        for start, values in quantized_chunks(arr, fmt, rounding, **kwargs):
            flat[start:start + values.size] = _values_to_codes(values.astype(np.float64), fmt)
    if _arrays.is_tensor(x):
        import torch

        return torch.from_numpy(codes.astype(_torch_code_dtype(fmt.bits), copy=False))
    return codes if codes.ndim else codes[()]


def _torch_code_dtype(bits: int) -> type:
    # torch's unsigned support is partial: uint8 for <= 8 bits, else the signed type of the same width
    return np.uint8 if bits <= 8 else np.int16 if bits <= 16 else np.int32 if bits <= 32 else np.int64


def decode(codes: Any, fmt: Format | str, scales: Any = None, *, axis: int = -1,
           tensor_scale: float | None = None, dtype: Any = None) -> Any:
    """Values of codes of `fmt`: float32, or float64 for formats float32 cannot hold (see
    ``fmt.decode_dtype``). Codes must be integers in [0, 2**bits).

    Block-scaled formats: pass the pair ``encode`` returned as `codes` (values in the encoded array's
    dtype: decode(encode(x)) is quantize(x) bit for bit), or the element codes and their `scales`
    (values exact, float64: E8M0 scales reach beyond float32), blocked along `axis`; NVFP4 also needs
    `tensor_scale` (``encode(...).tensor_scale``). `dtype` (float32/float64) overrides the values'
    dtype (rounded once)."""
    fmt = as_format(fmt)
    if isinstance(fmt, SCALED_KINDS):
        from .scaled import decode_scaled

        return decode_scaled(codes, fmt)
    if isinstance(fmt, LUTFormat):
        from .lut import decode_lut

        return decode_lut(codes, fmt)
    if isinstance(fmt, BlockFormat):
        from .blockscaled import BlockCodes, decode_blocks

        if isinstance(codes, BlockCodes):
            given = codes
            codes, scales = given.codes, given.scales
            tensor_scale = given.tensor_scale if tensor_scale is None else tensor_scale
            dtype = given.dtype if dtype is None else dtype
        if scales is None:
            raise TypeError(f"decode of the block-scaled {fmt!r} needs scales= (or the pair encode returned)")
        if tensor_scale is None and fmt.tensor_scale:
            raise TypeError(f"decode of {fmt.name or fmt!r} needs tensor_scale= (encode(...).tensor_scale): "
                            "its values are element * block scale * tensor scale")
        return decode_blocks(codes, fmt, scales, axis=axis, tensor_scale=1.0 if tensor_scale is None else tensor_scale,
                             dtype=np.float64 if dtype is None else dtype)
    if scales is not None:
        raise TypeError(f"scales= is for block-scaled formats; {fmt!r} has none")
    tensor = _arrays.is_tensor(codes)
    arr = codes.detach().cpu().numpy() if tensor else np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"codes must be an integer array, got {arr.dtype}")
    if tensor and arr.dtype.kind == "i" and fmt.bits in (16, 32, 64):
        arr = arr.view(f"u{arr.dtype.itemsize}")  # torch holds wide codes in signed types
    if arr.size and (arr.min() < 0 or (fmt.bits < 64 and arr.max() >= 2**fmt.bits)):
        raise ValueError(f"codes must be in [0, 2**{fmt.bits}) for {fmt}; got values in [{arr.min()}, {arr.max()}]")
    values = np.empty(arr.shape, fmt.decode_dtype)
    flat_values = values.reshape(-1)
    table = _decode_table(fmt) if fmt.bits <= 16 else None
    for start, stop, part in _arrays.flat_chunks(arr):  # a chunk at a time: bounded scratch
        if table is not None:
            flat_values[start:stop] = table[part.astype(np.intp)]
        else:
            flat_values[start:stop] = _codes_to_values(part.astype(np.uint64), fmt)
    if tensor:
        import torch

        return torch.from_numpy(np.ascontiguousarray(values))
    return values if values.ndim else values[()]


@lru_cache(maxsize=64)
def _decode_table(fmt: Format) -> np.ndarray:
    table = _codes_to_values(np.arange(2**fmt.bits, dtype=np.uint64), fmt).astype(fmt.decode_dtype)
    table.flags.writeable = False
    return table


def _codes_to_values(codes: np.ndarray, fmt: Format) -> np.ndarray:
    """float64 values of uint64 codes (exact for every format of at most 53 significant bits)."""
    if isinstance(fmt, FixedFormat):
        k = codes.astype(np.float64)
        if fmt.signed:
            k = np.where(codes >= np.uint64(2 ** (fmt.bits - 1)), k - 2.0**fmt.bits, k)
        return np.ldexp(k, -fmt.frac_bits)
    e, m = fmt.exp_bits, fmt.man_bits
    sign = (codes >> np.uint64(e + m)) & np.uint64(1)
    expo = ((codes >> np.uint64(m)) & np.uint64(2**e - 1)).astype(np.int64)
    man = (codes & np.uint64(2**m - 1)).astype(np.float64)
    with np.errstate(over="ignore"):  # the all-ones exponent of fp64-wide formats; replaced below
        normal = np.ldexp(1.0 + np.ldexp(man, -m), (expo - fmt.bias).astype(np.int32))
    sub = np.ldexp(man, fmt.emin - m) if fmt.subnormals else np.zeros_like(man)
    mag = np.where(expo == 0, sub, normal)
    top = expo == 2**e - 1
    if fmt.specials == "ieee":
        mag = np.where(top, np.where(man == 0, np.inf, np.nan), mag)
    elif fmt.specials == "fn":
        mag = np.where(top & (man == 2**m - 1), np.nan, mag)
    values = np.where(sign == 1, -mag, mag)
    if fmt.specials in ("fnuz", "p3109"):
        values = np.where(codes == np.uint64(2 ** (fmt.bits - 1)), np.nan, values)
    if fmt.specials == "p3109":
        values = np.where((codes & np.uint64(2 ** (fmt.bits - 1) - 1)) == np.uint64(2 ** (fmt.bits - 1) - 1),
                          np.where(sign == 1, -np.inf, np.inf), values)
    return values


def _values_to_codes(v: np.ndarray, fmt: Format) -> np.ndarray:
    """Codes of float64 values that are already values of fmt (or NaN/Inf where fmt has them)."""
    dtype = fmt.code_dtype
    if isinstance(fmt, FixedFormat):
        k = np.ldexp(np.nan_to_num(v), fmt.frac_bits)
        if fmt.bits == 64:
            return k.astype(np.int64).view(np.uint64) if fmt.signed else k.astype(np.uint64)
        return np.mod(k.astype(np.int64), 2**fmt.bits).astype(dtype)
    e, m = fmt.exp_bits, fmt.man_bits
    neg = np.signbit(v)
    a = np.abs(v)
    finite = np.isfinite(a)
    safe = np.where(finite & (a > 0), a, 1.0)
    ex = np.frexp(safe)[1].astype(np.int64) - 1
    is_normal = finite & (a >= fmt.min_normal)
    expo = np.where(is_normal, ex + fmt.bias, 0)
    man_normal = np.ldexp(safe, (m - ex).astype(np.int32)) - 2.0**m
    man_sub = np.ldexp(np.where(finite, a, 0.0), m - fmt.emin)
    man = np.where(is_normal, man_normal, man_sub)
    man = np.where(finite, man, 0.0).astype(np.uint64)
    codes = (expo.astype(np.uint64) << np.uint64(m)) | man
    top = np.uint64(2**e - 1) << np.uint64(m)
    if fmt.specials == "ieee":
        codes = np.where(np.isinf(a), top, codes)
        codes = np.where(np.isnan(a), top | np.uint64(1 << (m - 1)), codes)
    elif fmt.specials == "fn":
        codes = np.where(np.isnan(a), top | np.uint64(2**m - 1), codes)
    if fmt.specials == "p3109":
        codes = np.where(np.isinf(a), np.uint64(2 ** (fmt.bits - 1) - 1), codes)
    codes = codes | (neg.astype(np.uint64) << np.uint64(e + m))
    if fmt.specials in ("fnuz", "p3109"):
        codes = np.where(np.isnan(a), np.uint64(2 ** (fmt.bits - 1)), codes)
    return codes.astype(dtype)
