"""User multipliers in the MAC, at compiled speed (numba): a product table over two formats' codes
(the EvoApproxLib / AdaPT form: entry [i, j] is the product of code i of the first operand's format
and code j of the second's; a .npy file, a C array header or an array) or a numba-compilable scalar
function (a, b) -> product of the operands' values.

The products then follow the MAC's accumulation rules (DESIGN.md section 4) as exact products would:
any accumulator, chunks, orders, rounding modes, out=, integer wrap/saturate with overflow counts.
Compiled kernels sum the common cases in one pass: a table into fp32/fp64 (and in chunks) or into
an integer format, a function into fp32 or fp64, nearest-even, in k order. Every other configuration
computes the products (compiled) and sums them in lowprec's C engine (products of at most 26
significant bits, as every MAC operand). fp64 accumulators run only in the compiled kernels.

A user accumulator, a compiled step (s, p) -> s' from s = 0.0 in float64, takes exact products or a
multiplier function, in k order. Kernels specialised to a function are cached on disk
(lowprec.kernels.jit). A function numba cannot compile raises naming it, with numba's message;
``allow_python=True`` runs it in plain Python instead (slow: a Python call per product).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..array import encode
from ..formats import FixedFormat, FloatFormat, as_scalar_format
from ..kernels import jit
from . import fixed

_TABLE_KERNELS: dict = {}

# Kernels specialised to the user's functions: _mul (a, b) -> product, _step (s, p) -> s'.
_FUNCTION_TEMPLATE = '''
import numpy as np


def add32(s, p):
    """float32(s + p) rounded once (s a float32, p a float64): the float64 sum, corrected where it
    made a float32 tie that the exact sum does not have (TwoSum's error breaks it)."""
    s64 = np.float64(s)
    hi = s64 + p
    r = np.float32(hi)
    bb = hi - s64
    lo = (s64 - (hi - bb)) + (p - bb)
    if lo != 0.0 and lo == lo:
        r64 = np.float64(r)
        if r64 != hi:
            if r64 == np.inf or r64 == -np.inf:  # the tie between the largest float32 and overflow
                if abs(hi) == 3.4028235677973366e38 and (lo > 0.0) != (hi > 0.0):
                    r = np.float32(np.copysign(3.4028234663852886e38, hi))
            else:
                other = np.nextafter(r, np.float32(np.inf) if hi > r64 else np.float32(-np.inf))
                if hi == (r64 + np.float64(other)) * 0.5 and (lo > 0.0) == (np.float64(other) > r64):
                    r = other
    return r


def add64(s, p):
    return s + p


def products(a, bt, out):
    m, k = a.shape
    n = bt.shape[0]
    for i in prange(m):
        for j in range(n):
            for t in range(k):
                out[i, j, t] = _mul(a[i, t], bt[j, t])
'''

# k-order sums of the products from a zero, one kernel per accumulator (its add rounds once)
_SUMS = '''

def {name}(a, bt, out):
    m, k = a.shape
    n = bt.shape[0]
    for i in prange(m):
        for j in range(n):
            s = {zero}
            for t in range(k):
                s = {add}(s, np.float64(_mul(a[i, t], bt[j, t])))
            out[i, j] = s
'''
_FUNCTION_TEMPLATE += _SUMS.format(name="sum32", zero="np.float32(0.0)", add="add32")
_FUNCTION_TEMPLATE += _SUMS.format(name="sum64", zero="0.0", add="add64")

# the template's functions numba compiles, with their options (all at once: one module per function)
_FUNCTION_JIT = {"add32": {}, "add64": {}, "sum32": {"parallel": True}, "sum64": {"parallel": True},
                 "products": {"parallel": True}}

_ACC_TEMPLATE = "import numpy as np\n" + _SUMS.format(name="accumulate", zero="0.0", add="_step")


def exact_product(a: float, b: float) -> float:
    """The exact product of two values of at most 26 significant bits (the default multiplier)."""
    return a * b


def _table_kernels():
    """Kernels over codes: ca (m, k), cbt (n, k), the table in the sum's dtype."""
    if not _TABLE_KERNELS:
        numba = jit.numba_module()

        @numba.njit(parallel=True, cache=True)
        def float_sums(ca, cbt, table, out, chunk, zero, total_zero):
            """k-order sums in the table's dtype (zero's); with chunk > 0, the chunk sums one after
            another in total_zero's dtype (as wide as the table's or wider: its sum rounds once)."""
            m, k = ca.shape
            n = cbt.shape[0]
            for i in numba.prange(m):
                for j in range(n):
                    total = total_zero[0]
                    s = zero[0]
                    for t in range(k):
                        s = s + table[ca[i, t], cbt[j, t]]
                        if chunk > 0 and ((t + 1) % chunk == 0 or t == k - 1):
                            total = total + s
                            s = zero[0]
                    out[i, j] = total if chunk > 0 else s

        into_range = fixed.kernels()["into_range"]  # wrap or saturate, as the MAC's fixed-point sums

        @numba.njit(parallel=True, cache=True)
        def int_sums(ca, cbt, table, out, overflows, chunk, lo, hi, sat, clo, chi, csat):
            """k-order integer sums (int64 arithmetic), every step wrapped or saturated into [lo, hi]
            and each overflow counted (per row of out); chunk sums likewise in [clo, chi]."""
            m, k = ca.shape
            n = cbt.shape[0]
            for i in numba.prange(m):
                count = 0
                for j in range(n):
                    s = 0
                    total = 0
                    for t in range(k):
                        s, o = into_range(s + table[ca[i, t], cbt[j, t]], lo, hi, sat)
                        count += o
                        if chunk > 0 and ((t + 1) % chunk == 0 or t == k - 1):
                            total, o = into_range(total + s, clo, chi, csat)
                            count += o
                            s = 0
                    out[i, j] = total if chunk > 0 else s
                overflows[i] = count

        @numba.njit(parallel=True, cache=True)
        def plain_int_sums(ca, cbt, table, out):
            """k-order int64 sums where no partial sum can leave the accumulator's range."""
            m, k = ca.shape
            n = cbt.shape[0]
            for i in numba.prange(m):
                for j in range(n):
                    s = 0
                    for t in range(k):
                        s += table[ca[i, t], cbt[j, t]]
                    out[i, j] = s

        @numba.njit(parallel=True, cache=True)
        def products(ca, cbt, table, out):
            m, k = ca.shape
            n = cbt.shape[0]
            for i in numba.prange(m):
                for j in range(n):
                    for t in range(k):
                        out[i, j, t] = table[ca[i, t], cbt[j, t]]

        _TABLE_KERNELS.update(float_sums=float_sums, int_sums=int_sums, plain_int_sums=plain_int_sums,
                              products=products)
    return _TABLE_KERNELS


def float_dtype(fmt: Any) -> Any:
    """np.float32 / np.float64 where fmt is IEEE binary32 / binary64 itself (float's own sums round
    to it), else None."""
    if not isinstance(fmt, FloatFormat) or not (fmt.subnormals and fmt.specials == "ieee" and fmt.overflow == "inf"):
        return None
    return {(8, 23, -126): np.float32, (11, 52, -1022): np.float64}.get((fmt.exp_bits, fmt.man_bits, fmt.emin))


def int_range(fmt: Any) -> tuple[int, int, bool] | None:
    """(min, max, saturates) of an integer format (fixed point without fraction bits, <= 62 bits)."""
    if isinstance(fmt, FixedFormat) and fmt.frac_bits == 0 and fmt.bits <= 62:
        return int(fmt.min), int(fmt.max), fmt.overflow == "saturate"
    return None


class UserMul:
    """A user multiplier (see the module doc) for operands in `inputs` (two formats)."""

    def __init__(self, mul: Any, inputs: Any, *, acc: Callable | None = None, allow_python: bool = False) -> None:
        self.acc_fn = acc
        self.allow_python = allow_python
        self.integer_table = False
        if mul is None and acc is not None:  # exact products into a user accumulator
            self.inputs = None
            self.kind, self.table, self.fn = "exact", None, None
            return
        if inputs is None:
            raise ValueError("a user multiplier needs inputs=(format_a, format_b): the operands' formats "
                             "(a table is indexed by their codes; a function gets their values)")
        pair = inputs if isinstance(inputs, (tuple, list)) else (inputs, inputs)
        self.inputs = tuple(as_scalar_format(f, "inputs") for f in pair)
        if isinstance(mul, (str, Path)):
            path = Path(mul)
            if path.suffix not in (".npy", ".h", ".c") or not path.is_file():
                raise ValueError(f"mul={str(mul)!r}: give a product table as a .npy file or a C array header (.h, "
                                 ".c) that exists, an array, or a numba-compilable function")
            mul = np.load(path) if path.suffix == ".npy" else self._c_array(path)
        if isinstance(mul, np.ndarray):
            if acc is not None:
                raise ValueError("a user accumulator takes exact products or a multiplier function, not a "
                                 "product table")
            self.kind, self.table, self.fn = "table", self._check_table(mul), None
            # integers small enough that int64 sums of them never overflow (|p| < 2**52)
            self.integer_table = (bool(np.array_equal(self.table, np.round(self.table)))
                                  and float(np.abs(self.table).max()) < 2.0**52)
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

    # -- which engine sums -----------------------------------------------------------------------
    def compiled_sums(self, acc: Any, chunk: int | None, chunk_acc: Any, order: str, rounding: str,
                      out: Any) -> bool:
        """Whether one compiled pass sums the products as a MAC with these settings does."""
        if self.acc_fn is not None:
            return True
        final = chunk_acc if chunk else acc
        if order != "sequential" or (out is not None and out != final):
            return False
        if self.kind == "table" and int_range(acc) and int_range(final) and self.integer_table:
            return True  # integer sums are exact: the rounding mode never acts
        if rounding != "nearest_even" or float_dtype(acc) is None:
            return False
        if self.kind == "function":
            return chunk is None
        return chunk is None or np.dtype(float_dtype(final)).itemsize >= np.dtype(float_dtype(acc)).itemsize

    # -- kernels -----------------------------------------------------------------------------------
    def sums(self, A: np.ndarray, B: np.ndarray, acc: Any, chunk: int | None, chunk_acc: Any) -> tuple[np.ndarray, int]:
        """(m, k) @ (k, n) through the multiplier in one compiled pass (compiled_sums said so):
        (float64 result, overflow events)."""
        shape = (A.shape[0], B.shape[1])
        if self.acc_fn is not None:
            out = np.empty(shape)
            self._run(_ACC_TEMPLATE, {"_mul": self.fn or exact_product, "_step": self.acc_fn},
                      {"accumulate": {"parallel": True}}, "accumulate", _values(A), _values(B.T), out)
            return out, 0
        if self.kind == "function":
            dtype = float_dtype(acc)
            res = np.empty(shape, dtype)
            self._run(_FUNCTION_TEMPLATE, {"_mul": self.fn}, _FUNCTION_JIT, "sum32" if dtype == np.float32 else "sum64",
                      _values(A), _values(B.T), res)
            return res.astype(np.float64), 0
        kernels = _table_kernels()
        ca, cbt = _codes(A, self.inputs[0]), np.ascontiguousarray(_codes(B, self.inputs[1]).T)
        final = chunk_acc if chunk else acc
        ranges = int_range(acc), int_range(final)
        if all(ranges) and self.integer_table:
            res = np.empty(shape, np.int64)
            overflows = np.zeros(shape[0], np.int64)
            (lo, hi, sat), (clo, chi, csat) = ranges
            table = np.ascontiguousarray(self.table, np.int64)
            bound = int(np.abs(table).max()) * ca.shape[1]  # no partial sum (nor chunk sum) passes it
            if bound <= min(hi, -lo, chi, -clo):
                kernels["plain_int_sums"](ca, cbt, table, res)
            else:
                kernels["int_sums"](ca, cbt, table, res, overflows, chunk or 0, lo, hi, sat, clo, chi, csat)
            return res.astype(np.float64), int(overflows.sum())
        dtype, final_dtype = float_dtype(acc), float_dtype(final)
        res = np.empty(shape, final_dtype)
        kernels["float_sums"](ca, cbt, np.ascontiguousarray(self.table, dtype), res, chunk or 0,
                              np.zeros(1, dtype), np.zeros(1, final_dtype))
        return res.astype(np.float64), 0

    def products(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """The (m, n, k) products of A (m, k) and B (k, n) through the multiplier, float64."""
        out = np.empty((A.shape[0], B.shape[1], A.shape[1]), np.float64)
        if self.kind == "table":
            ca, cbt = _codes(A, self.inputs[0]), np.ascontiguousarray(_codes(B, self.inputs[1]).T)
            _table_kernels()["products"](ca, cbt, np.ascontiguousarray(self.table, np.float64), out)
            return out
        self._run(_FUNCTION_TEMPLATE, {"_mul": self.fn}, _FUNCTION_JIT, "products", _values(A), _values(B.T), out)
        return out

    def _run(self, template: str, functions: dict, compiled: dict, name: str, *args: Any) -> None:
        """Kernel `name` of the template specialised to the functions (numba compiles it on its first
        call); where numba cannot, the plain-Python twin if allowed, else a ValueError."""
        try:
            getattr(jit.specialise(template, functions, compiled), name)(*args)
        except Exception as exc:  # numba's typing and lowering errors  # noqa: BLE001
            if not type(exc).__module__.startswith("numba"):
                raise
            getattr(self._refuse(exc, template, functions), name)(*args)

    def _refuse(self, exc: Exception, template: str, functions: dict) -> Any:
        """The plain-Python module where allowed, else a ValueError naming the functions."""
        names = [f"{role}={getattr(f, '__name__', repr(f))}" for role, f in (("mul", self.fn), ("acc", self.acc_fn))
                 if f is not None]
        if not self.allow_python:
            raise ValueError(f"{' and '.join(names)}: numba cannot compile it ({str(exc).splitlines()[0]}); fix "
                             "it, or pass allow_python=True to run it in plain Python (about 100x slower)") from None
        return jit.python_module(template, functions)


def _has_nan(fmt: Any) -> bool:
    """Whether a format has a NaN code (float formats but those with specials 'none'; fixed point: none)."""
    return isinstance(fmt, FloatFormat) and fmt.specials != "none"


def _values(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, np.float64)


def _codes(x: np.ndarray, fmt: Any) -> np.ndarray:
    """The unsigned codes of values (already in the format, or rounded to it), as table indices."""
    codes = np.asarray(encode(x, fmt))
    unsigned = codes.view(np.dtype(f"u{codes.dtype.itemsize}")) if codes.dtype.kind == "i" else codes
    return np.ascontiguousarray(unsigned.astype(np.intp) & ((1 << fmt.bits) - 1))
