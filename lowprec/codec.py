"""Codes of a format: encode (round, then lay out the bits) and decode (codes to values).

Layouts: floats are sign | exponent field | mantissa field, as IEEE 754, the OCP specifications and
ml_dtypes lay them out (NaN: sign | all-ones exponent | quiet bit for "ieee"; sign | all ones for
"fn"; 1000..0 for "fnuz" and "p3109", whose +-Inf are 0111..1 and 1111..1). Fixed point is the two's complement (or unsigned) integer k of the value
k * 2**-frac_bits. Codes are uint8/uint16/uint32/uint64 by width.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _arrays
from .formats import SCALED_KINDS, BlockFormat, Format, LUTFormat, as_format, decode_table
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
        return int(fmt.value_codes(np.float64(quantize(float(x), fmt, rounding, **kwargs))))
    if _arrays.is_tensor(x) and x.device.type != "cpu":
        arr, _ = _arrays.to_numpy(quantize(x, fmt, rounding, **kwargs))
        codes = fmt.value_codes(arr.astype(np.float64))
    else:
        unknown = set(kwargs) - {"seed", "rbits", "nan"}
        if unknown:
            raise TypeError(f"encode got unexpected keyword argument(s) {', '.join(sorted(unknown))}")
        arr, _ = _arrays.to_numpy(x)
        # a chunk at a time: scratch stays bounded, the codes are the only full-size allocation
        codes = np.empty(arr.shape, fmt.code_dtype)
        flat = codes.reshape(-1)
        for start, values in quantized_chunks(arr, fmt, rounding, **kwargs):
            flat[start:start + values.size] = fmt.value_codes(values.astype(np.float64))
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
    table = decode_table(fmt) if fmt.bits <= 16 else None
    for start, stop, part in _arrays.flat_chunks(arr):  # a chunk at a time: bounded scratch
        if table is not None:
            flat_values[start:stop] = table[part.astype(np.intp)]
        else:
            flat_values[start:stop] = fmt.code_values(part.astype(np.uint64))
    if tensor:
        import torch

        return torch.from_numpy(np.ascontiguousarray(values))
    return values if values.ndim else values[()]
