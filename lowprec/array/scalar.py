"""Float and fixed-point formats in the C core: quantize, and the codes of encode / decode, a bounded
chunk at a time where that bounds memory (quantized_chunks, quantize_at: the same stochastic draws
as one pass over the whole array)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import adapters as _arrays
from .backend import choose
from ..kernels.native import ffi, lib
from ..kernels.params import qparams
from ..kernels.philox import counter_offset
from ..formats import FixedFormat, Format, check_codes, decoded
from ..kernels.rounding import check_rbits, mode_index, seed_key
from ..kernels.threads import get_num_threads

NAN_POLICIES = ("default", "raise")


def quantize_scalar(x: Any, fmt: Format, rounding: str = "nearest_even", *, seed: Any = None,
                    rbits: int | None = None, out: Any = None, nan: str = "default", backend: str | None = None) -> Any:
    """lowprec.quantize for a float or fixed-point format (see lowprec.array.api.quantize); tensors on
    a GPU stay there (lowprec.array.backend chooses the engine, lowprec.array.device runs it)."""
    chosen = choose(backend, x, fmt)
    rbits, key = _checked(rounding, rbits, nan, seed)
    if chosen != "c":
        from .device import quantize_device  # imports torch: only for tensors, which means torch is loaded

        return quantize_device(x, fmt, rounding, chosen, seed=key, rbits=rbits, out=out, nan=nan,
                               automatic=backend is None)
    if x is None:
        raise TypeError("x must be a float array, tensor or number, got None")
    arr, restore = _arrays.to_numpy(x)
    target = _arrays.out_array(out, x, arr) if out is not None else None
    qparams(fmt, arr.dtype, rounding, rbits)  # its checks (a format the dtype cannot hold) before any work

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
    quantize_at(src, fmt, rounding, key, rbits, 0, dst)
    if target is not None:
        if dst is not target:
            target[...] = dst
        return out
    return restore(dst)


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


def _checked(rounding: str, rbits: int | None, nan: str, seed: Any) -> tuple[int | None, int]:
    """(rbits, the Philox key) after checking the mode, rbits and the NaN policy."""
    mode_index(rounding)
    rbits = check_rbits(rbits)
    if nan not in NAN_POLICIES:
        raise ValueError(f"nan must be one of {', '.join(map(repr, NAN_POLICIES))}; got {nan!r}")
    return rbits, (seed_key(seed) if rounding == "stochastic" else 0)


def quantize_at(src: np.ndarray, fmt: Format, rounding: str, key: int, rbits: int | None, start: int,
                dst: np.ndarray | None = None) -> np.ndarray:
    """src (C-contiguous float32/float64) quantized to a float or fixed-point format as the elements
    [start, start + src.size) of a larger array: stochastic draws as quantize(that array) draws them
    there. start must be a multiple of the work unit (1024). Into dst (C-contiguous, src's shape and
    dtype) if given."""
    dst = np.empty(src.shape, src.dtype) if dst is None else dst
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
    rbits, key = _checked(rounding, rbits, nan, seed)
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


def encode_scalar(x: Any, fmt: Format, rounding: str = "nearest_even", *, seed: Any = None,
                  rbits: int | None = None, nan: str = "default") -> Any:
    """Codes of x rounded to a float or fixed-point format (see lowprec.array.api.encode), a bounded
    chunk at a time: the codes are the only full-size allocation."""
    if isinstance(x, (float, int)) and not isinstance(x, bool):
        return int(fmt.value_codes(np.float64(quantize_scalar(float(x), fmt, rounding, seed=seed, rbits=rbits,
                                                              nan=nan))))
    if _arrays.is_tensor(x) and x.device.type != "cpu":
        arr, _ = _arrays.to_numpy(quantize_scalar(x, fmt, rounding, seed=seed, rbits=rbits, nan=nan))
        codes = fmt.value_codes(arr.astype(np.float64))
    else:
        arr, _ = _arrays.to_numpy(x)
        codes = np.empty(arr.shape, fmt.code_dtype)
        flat = codes.reshape(-1)
        for start, values in quantized_chunks(arr, fmt, rounding, seed=seed, rbits=rbits, nan=nan):
            flat[start:start + values.size] = fmt.value_codes(values)
    if _arrays.is_tensor(x):
        import torch  # a tensor came in: torch is loaded

        return torch.from_numpy(codes.astype(_torch_code_dtype(fmt.bits), copy=False))
    return codes if codes.ndim else codes[()]


def _torch_code_dtype(bits: int) -> type:
    # torch's unsigned support is partial: uint8 for <= 8 bits, else the signed type of the same width
    return np.uint8 if bits <= 8 else np.int16 if bits <= 16 else np.int32 if bits <= 32 else np.int64


def decode_scalar(codes: Any, fmt: Format) -> Any:
    """Values of codes of a float or fixed-point format (float32, or float64 where float32 cannot
    hold the format), a bounded chunk at a time."""
    tensor = _arrays.is_tensor(codes)
    arr = codes.detach().cpu().numpy() if tensor else np.asarray(codes)
    if tensor and arr.dtype.kind == "i" and fmt.bits in (16, 32, 64):
        arr = arr.view(f"u{arr.dtype.itemsize}")  # torch holds wide codes in signed types
    check_codes(arr, fmt)
    values = np.empty(arr.shape, fmt.decode_dtype)
    flat_values = values.reshape(-1)
    for start, stop, part in _arrays.flat_chunks(arr):  # a chunk at a time: bounded scratch
        flat_values[start:stop] = decoded(part, fmt)
    if tensor:
        import torch  # a tensor came in: torch is loaded

        return torch.from_numpy(np.ascontiguousarray(values))
    return values if values.ndim else values[()]
