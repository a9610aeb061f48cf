"""The matrix-unit engine: a MatrixUnit (lowprec.mac.units) run over whole matmuls by the C core
(csrc/fused_impl.h), with partial sums promoted to a wider accumulator every `chunk` products
(DeepSeek-V3's fp8 GEMM, arXiv:2412.19437 section 3.3.2: the tensor core's partial sum is added
to an fp32 register every 128 products)."""

from __future__ import annotations

import numpy as np

from ..array import quantize
from ..formats import FloatFormat, Format
from ..kernels.native import ffi, lib
from ..kernels.params import qparams
from ..kernels.rounding import mode_index
from ..kernels.threads import get_num_threads
from .units import MatrixUnit

__all__ = ["fused_matmul", "check_operand"]


def check_operand(x: np.ndarray, fmt: Format, name: str) -> np.ndarray:
    """x as C-contiguous float32 if every value is one of fmt's (NaN anywhere), else ValueError."""
    x32 = np.asarray(x, np.float32)
    ok = ((x32.astype(np.float64) == x) & (quantize(x32, fmt) == x32)) | np.isnan(x)
    if not ok.all():
        bad = np.asarray(x).reshape(-1)[np.flatnonzero(~ok.reshape(-1))[:3]].tolist()
        raise ValueError(f"{name} holds values that are not {fmt.name or fmt!r} values (e.g. {bad}), the unit's "
                         f"input format; quantize them first: lowprec.quantize({name}, {fmt.name or fmt!r})")
    return np.ascontiguousarray(x32)


def _run(A: np.ndarray, B: np.ndarray, C: np.ndarray | None, unit: MatrixUnit, fa: Format, fb: Format) -> np.ndarray:
    m, k = A.shape
    n = B.shape[1]
    out = np.empty((m, n))
    fp = ffi.new("lp_fusedparams *")
    acc_params = qparams(unit.acc, np.dtype(np.float64), unit.acc_rounding, None)
    fp.acc, fp.group, fp.kept_bits = acc_params, unit.group, unit.kept_bits
    fp.mode, fp.acc_emax = mode_index(unit.acc_rounding), unit.acc.emax
    fp.a_emin, fp.b_emin = fa.emin, fb.emin
    # a float accumulator's normal range: where its steps may take the rounding's fast form
    fp.fast_min = 2.0**unit.acc.emin if isinstance(unit.acc, FloatFormat) else 0.0
    fp.ref_min = unit.engine_ref_min
    c_ptr = ffi.from_buffer("float[]", C) if C is not None else ffi.NULL
    status = lib.lp_fused_matmul(ffi.from_buffer("float[]", A), ffi.from_buffer("float[]", B), c_ptr,
                                 ffi.from_buffer("double[]", out, require_writable=True), m, k, n, fp, get_num_threads())
    if status == -2:
        raise MemoryError("lp_fused_matmul could not allocate its exponent tables")
    if status != 0:
        raise RuntimeError(f"lp_fused_matmul refused the unit {unit.name} (a bug in lowprec)")
    return out


def fused_matmul(A: np.ndarray, B: np.ndarray, C: np.ndarray | None, unit: MatrixUnit, fa: Format, fb: Format,
                 chunk: int | None = None, chunk_acc: Format | None = None) -> np.ndarray:
    """A (m x k) @ B (k x n) + C as the unit computes it (float64 values of its accumulator): A, B
    float32 values of fa, fb; C (m x n) float32 values of the accumulator, or None (zeros). chunk:
    the unit sums each `chunk` products from zero, and those partial sums are added in chunk_acc
    (rounded to nearest even: a CUDA core's fp32 add), starting from C."""
    if chunk is None:
        return _run(A, B, C, unit, fa, fb)
    total = np.zeros((A.shape[0], B.shape[1])) if C is None else C.astype(np.float64)
    for k0 in range(0, A.shape[1], chunk):
        part = _run(np.ascontiguousarray(A[:, k0:k0 + chunk]), np.ascontiguousarray(B[k0:k0 + chunk]), None, unit, fa, fb)
        total = quantize(total + part, chunk_acc)  # exact sum of two accumulator values, rounded once
    return total
