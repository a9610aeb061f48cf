"""User multipliers in the MAC, at compiled speed (numba): a product table over two formats' codes
(the EvoApproxLib / AdaPT form: entry [i, j] is the product of code i of the first operand's format
and code j of the second's; a .npy file or an array) or a numba-compilable scalar function
(a, b) -> product of the operands' values. The products are summed in k order in the accumulator:
"fp32" (every sum rounded to float32, nearest-even), "fp64" or "int32" (two's complement, wrapping);
a table's also in chunks (chunk sums in chunk_acc, one of the same). The compiled kernels are cached (tables: on disk; functions: once per function and process).

A function numba cannot compile raises naming it, with numba's message; ``allow_python=True`` runs it
in plain Python instead (slow: a Python call per product).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..array import encode
from ..formats import FloatFormat, as_scalar_format

ACCUMULATORS = {"fp32": np.float32, "fp64": np.float64, "int32": np.int32}
_FUNCTION_KERNELS: dict = {}


def _numba():
    try:
        import numba
    except ImportError:
        raise ModuleNotFoundError("user multipliers compile with numba: pip install numba") from None
    return numba


_TABLE_KERNEL: list = []


def _table_kernel():
    """ca (m, k), cbt (n, k) codes; T the table in the accumulator's dtype; sums in k order."""
    if not _TABLE_KERNEL:
        numba = _numba()

        @numba.njit(parallel=True, cache=True)
        def kernel(ca, cbt, table, out, zero):
            m, k = ca.shape
            n = cbt.shape[0]
            for i in numba.prange(m):
                for j in range(n):
                    s = zero[0]
                    for t in range(k):
                        s = s + table[ca[i, t], cbt[j, t]]
                    out[i, j] = s

        _TABLE_KERNEL.append(kernel)
    return _TABLE_KERNEL[0]


def _compiled(fn: Callable) -> Callable:
    numba = _numba()
    return fn if hasattr(fn, "py_func") else numba.njit(fn)


def _function_kernel(mul: Callable | None, acc: Any) -> Callable:
    """A compiled matmul: products by `mul` (None: exact, a * b in float64), summed by `acc`: a dtype
    (every sum rounded to it) or a compiled step (s, p) -> s' from s = 0.0."""
    key = (mul, acc)
    if key not in _FUNCTION_KERNELS:
        numba = _numba()
        product = _compiled(mul) if mul is not None else numba.njit(lambda a, b: a * b)
        if isinstance(acc, type):
            step = numba.njit(lambda s, p: acc(s + acc(p)))
            zero = numba.njit(lambda: acc(0))
        else:
            step = _compiled(acc)
            zero = numba.njit(lambda: 0.0)

        @numba.njit(parallel=True)
        def kernel(a, bt, out):
            m, k = a.shape
            n = bt.shape[0]
            for i in numba.prange(m):
                for j in range(n):
                    s = zero()
                    for t in range(k):
                        s = step(s, product(a[i, t], bt[j, t]))
                    out[i, j] = s

        _FUNCTION_KERNELS[key] = kernel
    return _FUNCTION_KERNELS[key]


class UserMul:
    """A user multiplier (see the module doc) for operands in `inputs` (two formats)."""

    def __init__(self, mul: Any, inputs: Any, *, acc: Callable | None = None, allow_python: bool = False) -> None:
        self.acc_fn = acc
        if mul is None and acc is not None:  # exact products into a user accumulator
            self.inputs, self.allow_python = None, allow_python
            self.kind, self.table, self.fn = "exact", None, None
            return
        if inputs is None:
            raise ValueError("a user multiplier needs inputs=(format_a, format_b): the operands' formats "
                             "(a table is indexed by their codes; a function gets their values)")
        pair = inputs if isinstance(inputs, (tuple, list)) else (inputs, inputs)
        self.inputs = tuple(as_scalar_format(f, "inputs") for f in pair)
        self.allow_python = allow_python
        if isinstance(mul, (str, Path)):
            path = Path(mul)
            if path.suffix not in (".npy", ".h", ".c") or not path.is_file():
                raise ValueError(f"mul={str(mul)!r}: give a product table as a .npy file or a C array header (.h, "
                                 ".c) that exists, an array, or a numba-compilable function")
            mul = np.load(path) if path.suffix == ".npy" else self._c_array(path)
        if isinstance(mul, np.ndarray):
            if acc is not None:
                raise ValueError("a user accumulator takes exact products or a multiplier function; a product "
                                 "table sums in fp32, fp64 or int32")
            self.kind, self.table, self.fn = "table", self._check_table(mul), None
        elif callable(mul):
            self.kind, self.table, self.fn = "function", None, mul
        else:
            raise TypeError(f"mul must be a format, a product table (array or .npy) or a function; got {type(mul).__name__}")

    @property
    def label(self) -> str:
        """The counts' name of its products: lut<a>x<b> (a table read, priced as one) or the function's."""
        if self.kind == "table":
            return f"lut{self.inputs[0].bits}x{self.inputs[1].bits}"
        if self.kind == "exact":
            return "exact"
        return f"user:{getattr(self.fn, '__name__', 'function')}"

    @property
    def acc_label(self) -> str:
        return f"user:{getattr(self.acc_fn, '__name__', 'function')}"

    def _c_array(self, path: Path) -> np.ndarray:
        """The numbers of a C array initializer (AdaPT's and EvoApproxLib's exported tables: the first
        `{` to its last `}`, row-major), shaped as the inputs' codes ask."""
        import re

        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", path.read_text(encoding="utf-8", errors="replace"), flags=re.S)
        start, stop = text.find("{"), text.rfind("}")
        if start < 0 or stop < start:
            raise ValueError(f"mul={str(path)!r}: no array initializer {{...}} in the file")
        numbers = re.findall(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?", text[start:stop])
        want = tuple(2 ** f.bits for f in self.inputs)
        if len(numbers) != want[0] * want[1]:
            raise ValueError(f"mul={str(path)!r}: the array holds {len(numbers)} numbers; inputs "
                             f"{self.inputs[0].name} x {self.inputs[1].name} need {want[0]} x {want[1]}")
        return np.array([float(n) for n in numbers]).reshape(want)

    def _check_table(self, table: np.ndarray) -> np.ndarray:
        want = tuple(2 ** f.bits for f in self.inputs)
        if table.shape != want:
            raise ValueError(f"product table has shape {table.shape}; inputs {self.inputs[0].name} x "
                             f"{self.inputs[1].name} need {want} (2**bits codes of each)")
        if table.dtype.kind not in "iuf":
            raise ValueError(f"product table must hold numbers (int or float), got dtype {table.dtype}")
        if table.dtype.kind == "f" and np.isnan(table).any() and not any(_has_nan(f) for f in self.inputs):
            raise ValueError(f"product table holds NaN, which neither {self.inputs[0].name} nor "
                             f"{self.inputs[1].name} has; shape expected {want} of finite products")
        return table

    def matmul(self, A: np.ndarray, B: np.ndarray, acc: str, chunk: int | None = None,
               chunk_acc: str | None = None) -> np.ndarray:
        """(m, k) @ (k, n) of operand values through the multiplier, summed in `acc` (or the user
        accumulator); a table's products in chunks of `chunk` summed in `acc`, the chunk sums then in
        `chunk_acc`, one after another (Wang et al. 2018, as the C engine chunks); float64 result."""
        if self.acc_fn is None and acc not in ACCUMULATORS:
            raise ValueError(f"a user multiplier sums in {', '.join(ACCUMULATORS)}; got acc={acc!r}")
        dtype = ACCUMULATORS[acc] if self.acc_fn is None else np.float64
        out = np.empty((A.shape[0], B.shape[1]), dtype)
        if self.kind == "table":
            if dtype == np.int32 and not np.array_equal(self.table, np.round(self.table)):
                raise ValueError(f"acc={acc!r} sums integers: the product table must hold integers")
            ca = _codes(A, self.inputs[0])
            cbt = np.ascontiguousarray(_codes(B, self.inputs[1]).T)
            wide = np.int64 if dtype == np.int32 else dtype  # int32 wraps: sum in int64, wrap once (same bits)
            table = np.ascontiguousarray(self.table.astype(wide))
            kernel = _table_kernel()
            k = ca.shape[1]
            span = chunk or max(k, 1)
            total = None
            for start in range(0, max(k, 1), span):
                res = np.empty(out.shape, wide)
                kernel(np.ascontiguousarray(ca[:, start:start + span]), np.ascontiguousarray(cbt[:, start:start + span]),
                       table, res, np.zeros(1, wide))
                part = res.astype(dtype)  # int64 -> int32: two's complement wrap
                if chunk is None:
                    total = part
                else:  # the chunk sums, one after another, in chunk_acc (numpy's arithmetic in its dtype)
                    cdt = ACCUMULATORS[chunk_acc]
                    total = part.astype(cdt) if total is None else (total + part.astype(cdt)).astype(cdt)
            return total.astype(np.float64)
        a = np.ascontiguousarray(A, np.float64)
        bt = np.ascontiguousarray(B.T, np.float64)
        accumulate = self.acc_fn if self.acc_fn is not None else dtype
        try:
            kernel = _function_kernel(self.fn, accumulate)
            kernel(a, bt, out)
        except Exception as exc:  # numba's typing and lowering errors  # noqa: BLE001
            if not type(exc).__module__.startswith("numba"):
                raise
            names = [f"{role}={getattr(f, '__name__', repr(f))}" for role, f in (("mul", self.fn), ("acc", self.acc_fn))
                     if f is not None]
            if not self.allow_python:
                raise ValueError(f"{' and '.join(names)}: numba cannot compile it ({str(exc).splitlines()[0]}); fix "
                                 "it, or pass allow_python=True to run it in plain Python (about 100x slower)") from None
            _FUNCTION_KERNELS.pop((self.fn, accumulate), None)
            mul = self.fn or (lambda x, y: x * y)
            step = self.acc_fn or (lambda s, p: dtype(s + dtype(p)))
            for i in range(a.shape[0]):
                for j in range(bt.shape[0]):
                    s = dtype(0) if self.acc_fn is None else 0.0
                    for t in range(a.shape[1]):
                        s = step(s, mul(a[i, t], bt[j, t]))
                    out[i, j] = s
        return out.astype(np.float64)


def _has_nan(fmt: Any) -> bool:
    """Whether a format has a NaN code (float formats but those with specials 'none'; fixed point: none)."""
    return isinstance(fmt, FloatFormat) and fmt.specials != "none"


def _codes(x: np.ndarray, fmt: Any) -> np.ndarray:
    """The unsigned codes of values (already in the format, or rounded to it), as table indices."""
    codes = np.asarray(encode(x, fmt))
    unsigned = codes.view(np.dtype(f"u{codes.dtype.itemsize}")) if codes.dtype.kind == "i" else codes
    return np.ascontiguousarray(unsigned.astype(np.intp) & ((1 << fmt.bits) - 1))
