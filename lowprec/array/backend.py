"""Which engine quantizes an array: the C core ("c"), Triton kernels ("triton") or plain torch
operations ("torch", float and fixed-point formats only).

Automatic choice (backend=None): numpy input and CPU tensors go to the C core; CUDA tensors to Triton
where it imports, else torch ops; tensors on other devices to torch ops. All three give the same bits
for every format and mode (stochastic rounding: the same Philox draws for a seed). Naming a backend
runs it or raises: "triton" on a CPU tensor runs Triton's interpreter (slow; for tests), "torch" and
"triton" take tensors only, and neither wraps (fixed point with overflow="wrap": use "c"). The
other kinds have Triton kernels for float32/float64 tensors (e8m0 block formats: float32 only):
choose_for_blocks, choose_for_scaled, choose_for_codebook; "torch" has no path for them.
"""

from __future__ import annotations

from typing import Any

from ..formats import FloatFormat, layout
from ..kernels import gpu
from . import adapters as _arrays

BACKENDS = ("c", "torch", "triton")


def choose(backend: str | None, x: Any, fmt: Any) -> str:
    """The backend that quantizes x to the float or fixed-point fmt; ValueError / TypeError for a
    backend that cannot."""
    if backend is None:
        if not _arrays.is_tensor(x) or x.device.type == "cpu" or fmt.overflow == "wrap":
            return "c"
        return "triton" if x.device.type == "cuda" and gpu.available() else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be None (automatic) or one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    if backend == "c":
        return backend
    if not _arrays.is_tensor(x):
        raise TypeError(f"backend={backend!r} takes torch tensors; x is a {type(x).__name__} (use backend='c' or None)")
    if fmt.overflow == "wrap":
        raise ValueError(f"backend={backend!r} does not wrap; {fmt.name or fmt!r} has overflow='wrap' (use backend='c')")
    if backend == "triton" and x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"backend='triton' runs on CUDA tensors (and CPU ones, interpreted); x is on {x.device}")
    return backend


def _kernel_or_host(backend: str | None, x: Any, fmt: Any, triton_ok: bool, takes: str) -> str:
    """"triton" or "c" for a kind with a Triton kernel where triton_ok, the host elsewhere; `takes`
    says in the refusal what the kernel takes."""
    if backend is None:
        return "triton" if triton_ok and x.device.type == "cuda" and gpu.available() else "c"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be None (automatic) or one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    name = getattr(fmt, "name", None) or repr(fmt)
    if backend == "torch":
        raise ValueError(f"backend='torch' has no path for {name}; it takes 'c', or 'triton' for {takes}")
    if backend == "triton" and not triton_ok:
        raise ValueError(f"backend='triton' takes {takes}; {name} with {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')} runs on 'c'")
    return backend


def _dtype_in(x: Any, names: tuple) -> bool:
    return _arrays.is_tensor(x) and str(x.dtype).rsplit(".", 1)[-1] in names


def rounds_through_float32(fmt: Any) -> bool:
    """Whether a value rounded to odd at float32 precision rounds to fmt as the exact value does: at
    most 22 significant bits, a quantum of at least 2**-147, below 2**127 (Boldo and Melquiond)."""
    width = fmt.man_bits + 1 if isinstance(fmt, FloatFormat) else fmt.bits - int(fmt.signed)
    return width <= 22 and layout(fmt)[2] >= -147 and fmt.max < 2.0**127


def choose_for_blocks(backend: str | None, x: Any, fmt: Any) -> str:
    """The backend for a block-scaled format: "triton" (e8m0 scales on float32 tensors; float scales
    on float32/float64 tensors, element and scale formats of at most 22 bits) or "c" (the host)."""
    if fmt.scale_is_e8m0:
        triton_ok = _dtype_in(x, ("float32",))
    else:
        triton_ok = (_dtype_in(x, ("float32", "float64")) and rounds_through_float32(fmt.element)
                     and rounds_through_float32(fmt.scale))
    return _kernel_or_host(backend, x, fmt, triton_ok, "float32 tensors in e8m0-scaled (MX, bfp) formats and "
                           "float32/float64 tensors in float-scaled (NVFP4) ones")


def choose_for_scaled(backend: str | None, x: Any, fmt: Any) -> str:
    """The backend for a binary, ternary or integer-affine format: "triton" (float32/float64
    tensors) or "c" (the host)."""
    return _kernel_or_host(backend, x, fmt, _dtype_in(x, ("float32", "float64")), "float32/float64 tensors")


def choose_for_codebook(backend: str | None, x: Any, fmt: Any) -> str:
    """The backend for a codebook (LUT, log) format: "triton" (float32/float64 tensors) or "c"."""
    return _kernel_or_host(backend, x, fmt, _dtype_in(x, ("float32", "float64")), "float32/float64 tensors")
