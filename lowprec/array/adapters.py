"""Input and output adapters of the array API: numpy arrays and scalars, Python numbers and torch
CPU tensors in; the same kind out. torch is never imported here: a tensor can only arrive if the
caller already imported it."""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

from ..kernels.native import ffi, lib
from .layout import contiguous

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _torch_tensor_type():
    torch = sys.modules.get("torch")
    return torch.Tensor if torch is not None else None


def is_tensor(x: Any) -> bool:
    t = _torch_tensor_type()
    return t is not None and isinstance(x, t)


def half_dtype_name(dtype: np.dtype) -> str | None:
    """"float16" or "bfloat16" (ml_dtypes' numpy type) for those dtypes, else None."""
    if dtype.itemsize != 2:
        return None
    if dtype.kind == "f":
        return "float16"
    return "bfloat16" if dtype.name == "bfloat16" else None


def is_half_array(x: Any) -> bool:
    """A numpy float16 or bfloat16 array or scalar (taken through float32, which holds it)."""
    return isinstance(x, (np.ndarray, np.generic)) and half_dtype_name(x.dtype) is not None


def widened_half(arr: np.ndarray) -> np.ndarray:
    """float32 values (exact) of a float16 or bfloat16 numpy array by the C core (numpy's and
    ml_dtypes' conversions take 1-4 ns an element)."""
    return _widened_bits(contiguous(arr).view(np.uint16), half_dtype_name(arr.dtype) == "bfloat16")


def _half_call(fn: Any, src: np.ndarray, src_type: str, dtype: Any, dst_type: str, bf16: bool) -> np.ndarray:
    """fn(src, a new array of dtype, n, bf16) of csrc/half_impl.h; the new array."""
    out = np.empty(src.shape, dtype)
    if src.size:
        fn(ffi.from_buffer(src_type, src), ffi.from_buffer(dst_type, out, require_writable=True), src.size, int(bf16))
    return out


def _widened_bits(bits: np.ndarray, bf16: bool) -> np.ndarray:
    return _half_call(lib.lp_half_widen, bits, "uint16_t[]", np.float32, "float[]", bf16)


def narrowed_half(values: np.ndarray, bf16: bool) -> np.ndarray:
    """The float16 (bfloat16 where bf16) patterns, uint16, of float32 values that type holds exactly
    (and Inf and NaN: sign and top payload bits kept, as numpy's and torch's conversions do)."""
    values = contiguous(np.asarray(values, np.float32))
    return _half_call(lib.lp_half_narrow, values, "float[]", np.uint16, "uint16_t[]", bf16)


def _check_float_dtype(dtype: np.dtype, name: str) -> np.dtype:
    """The native-byte-order dtype the C core reads for `dtype`: float32/float64 as they are, float16
    and bfloat16 as float32 (exact); anything else raises TypeError."""
    if half_dtype_name(dtype):
        return np.dtype(np.float32)
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        kind = {"i": "integer", "u": "unsigned integer", "b": "boolean", "c": "complex", "O": "object",
                "U": "string", "S": "bytes"}.get(dtype.kind, str(dtype))
        article = "an" if kind[0] in "aeiou" else "a"
        raise TypeError(f"{name} must hold float16, bfloat16, float32 or float64 values, got {article} {kind} "
                        f"array ({dtype}); convert it first, e.g. with .astype(np.float32)")
    return dtype.newbyteorder("=")


def to_numpy(x: Any, name: str = "x") -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """(a native-byte-order float32/float64 ndarray viewing or holding x, a function that turns a
    result array of the same shape back into x's kind: ndarray, numpy scalar, float or tensor).
    float16/bfloat16 arrays come as float32 (exact; results then float32: quantize keeps their dtype
    itself, where the format fits it)."""
    if isinstance(x, np.ndarray):
        dtype = _check_float_dtype(x.dtype, name)
        arr = x if x.dtype == dtype else widened_half(x) if half_dtype_name(x.dtype) else x.astype(dtype)
        return arr, lambda r: r
    if isinstance(x, np.generic):
        dtype = _check_float_dtype(x.dtype, name)
        return np.asarray(x, dtype), lambda r: r[()]
    if isinstance(x, (float, int)) and not isinstance(x, bool):
        return np.asarray(float(x), np.float64), lambda r: float(r)
    if is_tensor(x):
        return _tensor_to_numpy(x, name)
    if isinstance(x, (list, tuple)):
        arr = np.asarray(x)
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.float64)
        return arr.astype(_check_float_dtype(arr.dtype, name), copy=False), lambda r: r
    raise TypeError(f"{name} must be a float32/float64 numpy array or torch tensor, a Python float or a "
                    f"list of floats; got {type(x).__name__}")


def is_half_tensor(x: Any) -> bool:
    """A float16 or bfloat16 torch tensor (taken by the array API through float32, which holds it)."""
    if not is_tensor(x):
        return False
    import torch

    return x.dtype in (torch.float16, torch.bfloat16)


def widened(x: Any) -> Any:
    """A float16/bfloat16 tensor as float32 (exact): on the CPU by the C widening (torch's takes about
    1.7 ns an element on one thread), elsewhere torch's."""
    import torch  # a tensor came in: torch is loaded

    if x.device.type != "cpu":
        return x.detach().float()
    bits = x.detach().contiguous().view(torch.int16).numpy().view(np.uint16)
    return torch.from_numpy(_widened_bits(bits, x.dtype == torch.bfloat16))


def narrowed(values: Any, dtype: Any) -> Any:
    """float32 tensor values that float16/bfloat16 `dtype` holds exactly (the caller checked), in that
    dtype; bfloat16 by the top half of each pattern, which keeps NaN signs as the Triton kernel does
    (torch's conversion makes every NaN positive)."""
    import torch  # a tensor came in: torch is loaded

    if values.device.type == "cpu":
        bits = narrowed_half(values.detach().numpy(), dtype == torch.bfloat16)
        return torch.from_numpy(bits.view(np.int16)).view(dtype)
    if dtype == torch.bfloat16:
        return (values.view(torch.int32) >> 16).short().view(torch.bfloat16)
    return values.to(dtype)


def _tensor_to_numpy(x, name: str):
    """float32/float64 tensors as they are; float16/bfloat16 ones as float32 (exact), results then
    float32 (quantize keeps their dtype itself, where the format fits it)."""
    import torch  # already imported: x is a tensor

    if x.dtype in (torch.float16, torch.bfloat16):
        if x.device.type == "cpu":
            return widened(x).numpy(), torch.from_numpy
        x = x.detach().float()

    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be a float16, bfloat16, float32 or float64 tensor, got {x.dtype}; "
                        "convert it first, e.g. x.float()")
    device = x.device
    t = x.detach()
    if device.type != "cpu":
        t = t.cpu()
    if t.is_conj() or t.is_neg():
        t = t.resolve_conj().resolve_neg()
    arr = t.numpy()
    if device.type == "cpu":
        return arr, torch.from_numpy
    return arr, lambda r: torch.from_numpy(r).to(device)


def out_array(out: Any, x: Any, arr: np.ndarray) -> np.ndarray:
    """The ndarray that `out=` writes into, after checking it fits the input."""
    if is_tensor(out):
        if not is_tensor(x):
            raise TypeError("out must be a numpy array when x is not a tensor")
        if out.device.type != "cpu":
            raise TypeError("out must be a CPU tensor")
        target = out.detach().numpy()
    elif isinstance(out, np.ndarray):
        if is_tensor(x):
            raise TypeError("out must be a tensor when x is a tensor")
        target = out
    else:
        raise TypeError(f"out must be a numpy array or torch tensor like x, got {type(out).__name__}")
    if target.shape != arr.shape:
        raise ValueError(f"out has shape {target.shape}, x has shape {arr.shape}; they must match")
    if target.dtype != arr.dtype:
        raise TypeError(f"out has dtype {target.dtype}, x has {arr.dtype}; they must match")
    if not target.flags.writeable:
        raise ValueError("out is read-only")
    return target


CHUNK = 1 << 16  # elements per pass of the chunked paths: a multiple of the C kernels' work unit (1024)


def flat_chunks(arr: np.ndarray, size: int = CHUNK):
    """Yield (start, stop, 1-D C-contiguous elements [start, stop) of arr in C order): views of a
    C-contiguous arr, bounded copies of any other layout. Starts are multiples of size."""
    flat = arr.reshape(-1) if arr.flags.c_contiguous else None
    for start in range(0, arr.size, size):
        stop = min(start + size, arr.size)
        yield start, stop, (flat[start:stop] if flat is not None else arr.flat[start:stop])  # .flat: a copy


def c_contiguous(arr: np.ndarray) -> np.ndarray:
    """arr itself if C-contiguous, else a C-ordered copy (keeps 0-d arrays 0-d; in tiles where a plain
    copy would stride across memory: lowprec.array.layout)."""
    return contiguous(arr)


def address(arr: np.ndarray) -> int:
    """The address of arr's first element (two C-contiguous arrays of one shape and dtype at one
    address are the same memory)."""
    return arr.__array_interface__["data"][0]


def deliver(values: np.ndarray, out: Any, target: np.ndarray | None, restore: Callable) -> Any:
    """A quantizer's result: written into `out` (whose ndarray view is target) if given, else values
    in the caller's kind."""
    if target is not None:
        target[...] = values
        return out
    return restore(values)


def without_nan(x: Any, fmt: Any) -> np.ndarray:
    """x as an ndarray for encode into a format whose codes hold no NaN (ValueError if x has one)."""
    arr, _ = to_numpy(x)
    if np.isnan(arr).any():
        raise ValueError(f"x holds NaN, which no code of {fmt!r} represents")
    return arr


def read_codes(codes: Any, name: str = "codes") -> tuple[np.ndarray, bool]:
    """(integer ndarray of codes, whether they came as a tensor); TypeError for non-integers."""
    tensor = is_tensor(codes)
    arr = codes.detach().cpu().numpy() if tensor else np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got {arr.dtype}")
    return arr, tensor


def codes_like(codes: np.ndarray, x: Any) -> Any:
    """Codes in x's kind: a tensor for tensor input (uint16 held as int16: torch's unsigned types are
    partial), else the ndarray."""
    if not is_tensor(x):
        return codes
    import torch

    return torch.from_numpy(np.ascontiguousarray(codes.view(np.int16) if codes.dtype == np.uint16 else codes))
