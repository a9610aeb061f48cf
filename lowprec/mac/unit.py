"""The MAC-unit simulator: dot products, sums, matmuls and convolutions whose every product and
accumulation is rounded as a hardware MAC unit rounds it (DESIGN.md section 4).

For c = sum_k a_k * b_k:

1. operands are taken as given (quantize them first);
2. each product is exact, then rounded to `mul` (None: kept exact; fused=True: no product rounding,
   one rounding per step, which is the same thing since the product is exact);
3. order "sequential": s = round_acc(s + p_k) from s = 0; "pairwise": a balanced tree (halves of
   ceil/floor size), every leaf and node rounded to acc; "kahan": compensated summation with every
   operation rounded to acc;
4. chunk=C: consecutive chunks of C products are summed as in 3, the chunk sums then sequentially in
   chunk_acc (default acc) (Wang et al., NeurIPS 2018);
5. the result is rounded to `out` (default: chunk_acc when chunking, else acc).

Integer and fixed-point accumulators wrap or saturate as their format says; every overflow event
is counted. Every call adds what it executed to ``MAC.counts``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np

from .._exact import rto64
from ..array import adapters as _arrays
from ..array import quantize
from ..formats import FixedFormat, FloatFormat, Format, as_scalar_format, layout
from ..kernels import gpu
from ..kernels.native import ffi, lib
from ..kernels.params import qparams
from ..kernels.rounding import check_rbits, mode_index, seed_key
from ..kernels.threads import get_num_threads
from . import units
from .counts import Counts
from .fixed import fixed_matmul
from .fused import check_operand, fused_matmul
from .operand_stats import matmul_operand_stats, sig_bits
from .orders import ordered_matmul

ORDERS = ("sequential", "pairwise", "kahan")
_GOLDEN = 0x9E3779B97F4A7C15  # spreads per-step seeds of stochastic rounding


def _is_user_mul(mul: Any, tables: bool = True) -> bool:
    """A product table (array, .npy path) or a function, not a format or a format's name."""
    if isinstance(mul, str):
        return tables and mul.endswith((".npy", ".h", ".c"))
    return mul is not None and ((tables and isinstance(mul, (np.ndarray, Path)))
                                or (callable(mul) and not hasattr(mul, "bits")))


def _user_mul(mul, inputs, acc, chunk, chunk_acc, order, fused, rounding, out, unit, allow_python):
    from .usermul import UserMul

    if unit is not None or fused:
        raise ValueError("a user multiplier or accumulator (a product table or a function) makes the products "
                         "itself: leave unit and fused at their defaults")
    if _is_user_mul(acc, tables=False):
        if chunk is not None or order != "sequential" or rounding != "nearest_even" or out is not None \
                or chunk_acc is not None:
            raise ValueError("a user accumulator sums sequentially in its own arithmetic: leave chunk, chunk_acc, "
                             "order, rounding and out at their defaults")
        if mul is not None and not _is_user_mul(mul):
            raise ValueError(f"a user accumulator takes exact products (mul=None) or a multiplier function; got "
                             f"mul={mul!r}")
        return UserMul(mul, inputs, acc=acc, allow_python=allow_python)
    return UserMul(mul, inputs, allow_python=allow_python)


def _name(fmt: Format | None) -> str:
    if fmt is None:
        return "exact"
    return fmt.name or repr(fmt)


class MAC:
    """A multiply-accumulate unit: c = sum_k a_k * b_k with every product and accumulation rounded as
    the hardware rounds it (DESIGN.md section 4). Methods: matmul, dot, sum, conv1d, conv2d; each call
    adds what it executed to ``counts`` (priced by lowprec.cost.report).

    Parameters (formats are format objects or names such as "fp16", "q8.8"):
      mul: the product format; each exact product is rounded to it. None: products kept exact.
      acc: the accumulator format; every partial sum is rounded to it. None: exact accumulation,
        rounded once to `out` (float64 by default). Fixed-point accumulators wrap or saturate as their
        format says, counting each overflow in counts["overflows"].
      chunk: None, or C >= 1: consecutive chunks of C products are summed in acc, the chunk sums then
        sequentially in chunk_acc (Wang et al., NeurIPS 2018).
      chunk_acc: the format of the sum across chunks (default: acc).
      order: "sequential" (s = round(s + p) from s = 0), "pairwise" (a balanced tree, every node
        rounded to acc) or "kahan" (compensated, every operation rounded to acc).
      fused: True rounds each step once (an FMA chain); cannot be combined with mul.
      rounding: the mode of every rounding (lowprec.ROUNDING_MODES). An exact zero sum is -0 under
        "down", as IEEE 754 says; so is an empty sum.
      out: the format of the result (default: chunk_acc when chunking, else acc: the accumulator that
        holds the final sum).
      seed, rbits: stochastic rounding draws rbits (default 32, at most 32) bits per rounding from
        Philox(seed), indexed by output and step, so results do not depend on the thread count.
      inputs: the format(s) the operands are stored in, one for both or (a's, b's), for the bits-read
        counts and the multiplier's price in cost.report (default: their dtype, priced as given).
      unit: a matrix unit (a name from lowprec.mac_units.names() or a MatrixUnit): sums go through
        its fused multi-term adder (lowprec.mac.units), which fixes mul, acc, order and rounding;
        inputs (default: the unit's first operand format) must be formats the unit takes, and the
        operands must hold their values (ValueError otherwise: quantize first). chunk (a multiple of
        the unit's group) promotes the unit's partial sums to chunk_acc every chunk products.
      quantize_inputs: with a unit, round the operands to their formats (nearest even) and c to the
        unit's register format first, instead of refusing values the formats do not hold.
      backend: the engine of sequential float accumulation and of matrix units: None (CUDA operands:
        the Triton kernels where Triton imports, else the C core), "c", or "triton" (CPU operands:
        Triton's interpreter, slow, for tests). Both give the same bits and counts; the other orders
        and fixed-point and exact accumulators run on the host.

    Operands are taken as given (quantize them first) and may have at most 26 significant bits:
    float32/float64 numpy arrays or CPU tensors (float16/bfloat16 tensors are taken exactly; their
    results are float32).
    """

    def __init__(self, mul=None, acc="fp32", chunk: int | None = None, chunk_acc=None,
                 order: str = "sequential", fused: bool = False, rounding: str = "nearest_even",
                 out=None, seed: Any = None, rbits: int | None = None, inputs=None, unit=None,
                 quantize_inputs: bool = False, backend: str | None = None, allow_python: bool = False):
        self.unit = None
        self.user = None
        if _is_user_mul(mul) or _is_user_mul(acc, tables=False):  # tables or compiled functions (lowprec.mac.usermul)
            self.user = _user_mul(mul, inputs, acc, chunk, chunk_acc, order, fused, rounding, out, unit, allow_python)
            mul, acc = None, (None if self.user.acc_fn is not None else acc)
        if backend not in (None, "c", "triton"):
            raise ValueError(f"backend must be None (automatic), 'c' or 'triton'; got {backend!r}")
        if backend == "triton" and not gpu.available():
            raise ModuleNotFoundError("backend='triton' needs the triton package: pip install 'lowprec[gpu]'")
        self.backend = backend
        self._device = None  # the device of the current call's tensor operands (None: the host)
        if quantize_inputs and unit is None:
            raise ValueError("quantize_inputs=True is for matrix units (unit=...): other MACs take operands as given")
        self.quantize_inputs = bool(quantize_inputs)
        if unit is not None:  # a matrix unit fixes the arithmetic: its accumulator and its rounding
            self.unit = units.unit(unit) if isinstance(unit, str) else unit
            if mul is not None or fused or order != "sequential" or rounding != "nearest_even" or acc != "fp32":
                raise ValueError(f"unit={self.unit.name!r} fixes the products, the order, the accumulator and the "
                                 "rounding; leave mul, fused, order, rounding and acc at their defaults (chunk, "
                                 "chunk_acc, out and inputs apply)")
            acc, rounding = self.unit.acc, self.unit.acc_rounding
            inputs = inputs if inputs is not None else self.unit.operands[0]
        if fused and mul is not None:
            raise ValueError("fused=True rounds each step once; it cannot be combined with a mul format "
                             f"(got mul={mul!r})")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}; got {order!r}")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1):
            raise ValueError(f"chunk must be None or an int >= 1, got {chunk!r}")
        self.mode = mode_index(rounding)
        self.rounding = rounding
        rb = check_rbits(rbits)
        if rb is not None and rb > 32:
            raise ValueError(f"rbits must be in [1, 32] for a MAC, got {rb}")
        self.rbits = rb or 32
        self.mul = as_scalar_format(mul, "mul") if mul is not None else None
        self.acc = as_scalar_format(acc, "acc") if acc is not None else None
        self.chunk = int(chunk) if chunk is not None else None
        self.chunk_acc = as_scalar_format(chunk_acc, "chunk_acc") if chunk_acc is not None else self.acc
        # the accumulator that holds the final sum: chunk_acc when chunking (DESIGN.md section 4, 5.)
        self.out = as_scalar_format(out, "out") if out is not None else (self.chunk_acc if self.chunk else self.acc)
        self.order = order
        self.fused = bool(fused)
        self.seed = seed_key(seed) if rounding == "stochastic" else 0
        if isinstance(inputs, (tuple, list)):
            self.inputs = tuple(as_scalar_format(f, "inputs") for f in inputs)
        else:
            self.inputs = (as_scalar_format(inputs, "inputs"),) * 2 if inputs is not None else None
        self.user_compiled = self.user is not None and self.user.compiled_sums(
            self.acc, self.chunk, self.chunk_acc, self.order, self.rounding, self.out)
        if not self.user_compiled:  # (a user kernel's one pass sums in fp64 too)
            self._check_formats()
        if self.unit is not None:
            self.unit.check_operands(*self.inputs)
            if self.chunk is not None and self.chunk % self.unit.group:
                raise ValueError(f"chunk must be a multiple of the unit's group ({self.unit.group}), got {self.chunk}")
        self.reset_counts()
        self._offset = 0  # output index of the next call, for stochastic draws

    def _check_formats(self) -> None:
        fmts = [f for f in (self.mul, self.acc, self.chunk_acc, self.out) if f is not None]
        kinds = {type(f) for f in (self.acc, self.chunk_acc) if f is not None}
        if len(kinds) > 1:
            raise ValueError(f"acc ({_name(self.acc)}) and chunk_acc ({_name(self.chunk_acc)}) must both be float "
                             "or both be fixed point")
        for f in fmts:
            if isinstance(f, FloatFormat) and (f.man_bits > 51 or f.emin < -1022):
                raise ValueError(f"{_name(f)} is too wide for the MAC simulator (at most 51 mantissa bits, "
                                 "normal range within float64's)")
        for f in (self.acc, self.chunk_acc):
            if isinstance(f, FixedFormat) and f.bits > 53:
                raise ValueError(f"fixed-point accumulators of at most 53 bits are supported (exact in float64); "
                                 f"{_name(f)} has {f.bits}")
        if self.acc is None and self.chunk is not None:
            raise ValueError("chunk needs an accumulator format (acc=None accumulates exactly)")

    def with_inputs(self, a_format, b_format) -> "MAC":
        """This MAC for operands in other formats (a matrix unit's backward GEMMs, say), recording into
        the same counts; made once per pair of formats (a layer asks at every forward)."""
        inputs = (as_scalar_format(a_format, "inputs"), as_scalar_format(b_format, "inputs"))
        variants = self.__dict__.setdefault("_variants", {})
        if inputs not in variants:
            if self.unit is not None:
                self.unit.check_operands(*inputs)
            other = copy.copy(self)
            other.inputs = inputs
            variants[inputs] = other
        return variants[inputs]

    def reset_counts(self) -> None:
        """Zero the record of executed operations."""
        self.counts = Counts(operands=tuple(_name(f) for f in self.inputs) if self.inputs else None)

    def __repr__(self) -> str:
        if self.unit is not None:
            parts = [f"unit={self.unit.name!r}", f"inputs=({', '.join(_name(f) for f in self.inputs)})"]
            if self.chunk:
                parts += [f"chunk={self.chunk}", f"chunk_acc={_name(self.chunk_acc)}"]
            return f"MAC({', '.join(parts)}, out={_name(self.out)})"
        parts = [f"mul={_name(self.mul)}", f"acc={_name(self.acc)}"]
        if self.chunk:
            parts += [f"chunk={self.chunk}", f"chunk_acc={_name(self.chunk_acc)}"]
        parts += [f"order={self.order!r}", f"rounding={self.rounding!r}", f"out={_name(self.out)}"]
        return f"MAC({', '.join(parts)})"

    # -- public operations -------------------------------------------------------------------------
    def matmul(self, a, b, c=None):
        """a @ b (+ c) with numpy's matmul semantics (1-D operands, batched broadcasting), numpy arrays
        or torch CPU tensors (float32/float64); the result has the wider of the two dtypes. c: the
        initial accumulator, as in D = A @ B + C, broadcast to the result's shape: values of the
        format the sum starts in (chunk_acc when chunking, else acc; a matrix unit's registers);
        sequential float accumulators and matrix units."""
        a_np, restore = _arrays.to_numpy(a, "a")
        b_np, _ = _arrays.to_numpy(b, "b")
        self._device = _device_of(a, b)
        if c is not None and self.unit is None and not self._takes_initial():
            raise ValueError("c= (an initial accumulator) applies to sequential float accumulators and matrix units; "
                             f"this MAC has acc={_name(self.acc)}, order={self.order!r}")
        if a_np.ndim == 0 or b_np.ndim == 0:
            raise ValueError(f"matmul needs at least 1-D operands, got shapes {a_np.shape} and {b_np.shape}")
        a2 = a_np[None, :] if a_np.ndim == 1 else a_np
        b2 = b_np[:, None] if b_np.ndim == 1 else b_np
        if a2.shape[-1] != b2.shape[-2]:
            raise ValueError(f"shapes {a_np.shape} and {b_np.shape} do not align: "
                             f"{a2.shape[-1]} (a's last axis) != {b2.shape[-2]} (b's second to last)")
        try:
            batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        except ValueError:
            raise ValueError(f"batch shapes of {a_np.shape} and {b_np.shape} do not broadcast") from None
        m, k, n = a2.shape[-2], a2.shape[-1], b2.shape[-1]
        dtype = np.result_type(a_np.dtype, b_np.dtype)
        nb = math.prod(batch)  # explicit: reshape(-1, ...) is ambiguous for empty operands
        A = np.broadcast_to(a2, batch + (m, k)).reshape(nb, m, k)
        B = np.broadcast_to(b2, batch + (k, n)).reshape(nb, k, n)
        C = np.empty((A.shape[0], m, n), np.float64)
        init = None
        if c is not None:
            c_np, _ = _arrays.to_numpy(c, "c")
            try:
                init = np.broadcast_to(c_np, batch + (m, n)).reshape(nb, m, n)
            except ValueError:
                raise ValueError(f"c of shape {c_np.shape} does not broadcast to the result's {batch + (m, n)}") from None
        for i in range(A.shape[0]):
            C[i] = self._matmul2d(A[i], B[i], initial=None if init is None else init[i])
        result = C.reshape(batch + (m, n))
        if a_np.ndim == 1:
            result = result[..., 0, :]
        if b_np.ndim == 1:
            result = result[..., 0]
        return _wrap_like(a, restore, result.astype(dtype))

    def dot(self, a, b, c=None):
        """The dot product of two 1-D vectors of equal length (+ c, the initial accumulator, as matmul's)."""
        a_np, _ = _arrays.to_numpy(a, "a")
        b_np, _ = _arrays.to_numpy(b, "b")
        if a_np.ndim != 1 or b_np.ndim != 1 or a_np.shape != b_np.shape:
            raise ValueError(f"dot needs two 1-D vectors of one length, got shapes {a_np.shape} and {b_np.shape}")
        return self.matmul(a, b, c)

    def sum(self, x, axis: int = -1):
        """Sum along an axis as the MAC accumulates (each term is a product x * 1)."""
        x_np, restore = _arrays.to_numpy(x, "x")
        self._device = _device_of(x)
        if x_np.ndim == 0:
            raise ValueError("sum needs at least a 1-D array")
        r = self._sum_last(np.moveaxis(x_np, axis, -1))
        return _wrap_like(x, restore, r.astype(x_np.dtype))

    def sum_products(self, products: np.ndarray, label: str, executed: int) -> np.ndarray:
        """Sum (..., k) products along the last axis as this unit accumulates them (float64), recording
        `executed` products under `label`: the unit that made them (lowprec.mac.coded: "lut4x4" table
        reads, "log4x4" exponent adds)."""
        return self._sum_last(products, (label, executed))

    def _sum_last(self, values: np.ndarray, products: tuple[str, int] | None = None) -> np.ndarray:
        """float64 sums along the last axis: each term a product x * 1, the ones a broadcast view (no
        k-long array; the kernel reads one row of them)."""
        flat = values.reshape(math.prod(values.shape[:-1]), values.shape[-1])  # explicit: -1 fails on empty
        ones = np.broadcast_to(np.ones((1, 1), flat.dtype), (flat.shape[1], 1))
        return self._matmul2d(flat, ones, products)[:, 0].reshape(values.shape[:-1])

    def conv1d(self, x, w, stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1):
        """torch.nn.functional.conv1d semantics: x (N, C, L), w (O, C/groups, k)."""
        x_np, restore = _arrays.to_numpy(x, "x")
        w_np, _ = _arrays.to_numpy(w, "w")
        if x_np.ndim != 3 or w_np.ndim != 3:
            raise ValueError(f"conv1d needs x of shape (N, C, L) and w of shape (O, C/groups, k); got {x_np.shape} and {w_np.shape}")
        y = self.conv2d(x_np[:, :, None, :], w_np[:, :, None, :], (1, stride), (0, padding), (1, dilation), groups)
        return _wrap_like(x, restore, y[:, :, 0, :])

    def conv2d(self, x, w, stride=1, padding=0, dilation=1, groups: int = 1):
        """torch.nn.functional.conv2d semantics: x (N, C, H, W), w (O, C/groups, kh, kw); the
        reduction runs over (channel, kernel row, kernel column) in that order."""
        x_np, restore = _arrays.to_numpy(x, "x")
        w_np, _ = _arrays.to_numpy(w, "w")
        self._device = _device_of(x, w)
        if x_np.ndim != 4 or w_np.ndim != 4:
            raise ValueError(f"conv2d needs x of shape (N, C, H, W) and w of shape (O, C/groups, kh, kw); got {x_np.shape} and {w_np.shape}")
        n, c = x_np.shape[:2]
        o, cg, kh, kw = w_np.shape
        if groups < 1 or c % groups or o % groups or cg != c // groups:
            raise ValueError(f"groups={groups} does not fit x with {c} channels and w of shape {w_np.shape}")
        dtype = np.result_type(x_np.dtype, w_np.dtype)  # float32 operands keep the float path
        cols = patches(x_np.astype(dtype, copy=False), (kh, kw), stride, padding, dilation)
        ho, wo = cols.shape[1:3]
        out = np.empty((n, o, ho, wo), np.float64)
        og = o // groups
        for g in range(groups):
            wmat = w_np[g * og:(g + 1) * og].reshape(og, -1).T.astype(dtype)
            res = self._matmul2d(cols[:, :, :, g * cg:(g + 1) * cg].reshape(-1, cg * kh * kw), wmat)
            out[:, g * og:(g + 1) * og] = res.reshape(n, ho, wo, og).transpose(0, 3, 1, 2)
        return _wrap_like(x, restore, out.astype(dtype))

    def _unit_matmul(self, A: np.ndarray, B: np.ndarray, initial: np.ndarray | None) -> np.ndarray:
        fa, fb = self.inputs
        # the operands as float32 values of their formats: rounded there, or checked to be there
        prepare = (lambda x, fmt, name: np.ascontiguousarray(quantize(x, fmt), np.float32)) if self.quantize_inputs \
            else check_operand
        A32, B32 = prepare(A, fa, "a"), prepare(B, fb, "b")
        C32 = None if initial is None else prepare(initial, self.unit.registers, "c")
        if self._engine() == "triton":
            result = self._unit_matmul_triton(A32, B32, C32)
        else:
            result = fused_matmul(A32, B32, C32, self.unit, fa, fb, self.chunk, self.chunk_acc if self.chunk else None)
        return result if self.out == (self.chunk_acc if self.chunk else self.unit.acc) else quantize(result, self.out)

    def _unit_matmul_triton(self, A32: np.ndarray, B32: np.ndarray, C32: np.ndarray | None) -> np.ndarray:
        """fused_matmul's result by the Triton kernel on the call's device (CPU: the interpreter)."""
        import torch

        device = self._device if self._device is not None else torch.device("cpu")
        a, b = (_tensor_on(x, np.float32, device) for x in (A32, B32))
        c = None if C32 is None else _tensor_on(C32, np.float32, device)
        d = torch.empty((A32.shape[0], B32.shape[1]), dtype=torch.float64, device=device)
        unit, (fa, fb) = self.unit, self.inputs
        chunk_params = qparams(self.chunk_acc, np.dtype(np.float64), "nearest_even", None) if self.chunk else None
        gpu.mac_fused(a, b, c, d, qparams(unit.acc, np.dtype(np.float64), unit.acc_rounding, None),
                      mode_index(unit.acc_rounding), group=unit.group, kept_bits=unit.kept_bits, a_emin=fa.emin,
                      b_emin=fb.emin, acc_emax=unit.acc.emax, chunk=self.chunk or 0, chunk_params=chunk_params,
                      ref_min=unit.engine_ref_min)
        return d.cpu().numpy()

    # -- the engine --------------------------------------------------------------------------------
    def _takes_initial(self) -> bool:
        """Whether c= applies: sequential accumulation in a float format (or a matrix unit)."""
        return self.acc is not None and self.order == "sequential" and not isinstance(self.acc, FixedFormat)

    def _initial(self, initial: np.ndarray) -> np.ndarray:
        """c (m x n) as float64, checked to hold values of the format the sum starts in."""
        fmt = self.chunk_acc if self.chunk else self.acc
        c64 = np.asarray(initial, np.float64)
        ok = (quantize(c64, fmt) == c64) | np.isnan(c64)
        if not ok.all():
            bad = c64.reshape(-1)[np.flatnonzero(~ok.reshape(-1))[:3]].tolist()
            raise ValueError(f"c holds values that are not {_name(fmt)} values (e.g. {bad}), the format the sum "
                             f"starts in; quantize it first: lowprec.quantize(c, {_name(fmt)!r})")
        return c64

    def _matmul2d(self, A: np.ndarray, B: np.ndarray, products: tuple[str, int] | None = None,
                  initial: np.ndarray | None = None) -> np.ndarray:
        """(m, k) @ (k, n) (float32 or float64 operands) under this MAC's rules, as float64; records
        the counts (`products`: (label, count) of the unit that made A's values, for a sum of them;
        `initial`: the accumulator's start, (m, n), sequential float accumulators and matrix units)."""
        if self.user is not None:
            return self._user_matmul(A, B, initial)
        return self._engine_matmul2d(A, B, products, initial)

    def _engine_matmul2d(self, A: np.ndarray, B: np.ndarray, products: tuple[str, int] | None = None,
                         initial: np.ndarray | None = None, count: bool = True) -> np.ndarray:
        m, k = A.shape
        n = B.shape[1]
        # the sequential kernel's path reads the operands' statistics; the counts share them
        ops = _Operands(A, B) if self.unit is None and m * n and k and self._takes_initial() else None
        if count:
            self._count(A, B, products, ops)
        if self.unit is not None:
            return self._unit_matmul(A, B, initial)
        if m * n == 0:
            return np.zeros((m, n))
        start = None if initial is None else self._initial(initial)
        if k == 0:  # the empty sum: +0, or -0 under rounding down (as an exact zero sum is); or c
            zero = -0.0 if self.rounding == "down" else 0.0
            empty = np.full((m, n), zero) if start is None else start
            return empty if self.out is None else quantize(empty, self.out, self.rounding, seed=self.seed)
        if self._takes_initial():
            result = self._sequential(A, B, start, ops)  # takes float32 operands as they are
        elif isinstance(self.acc, FixedFormat):
            result = self._fixed(A, B)  # takes float32 operands as they are
        else:
            A, B = A.astype(np.float64), B.astype(np.float64)  # exact products from here on
            if self.acc is None:
                result = self._exact(A, B)
            else:
                result = ordered_matmul(self, A, B)
        self._offset += m * n
        return result

    def _user_matmul(self, A: np.ndarray, B: np.ndarray, initial: np.ndarray | None) -> np.ndarray:
        """A user multiplier's matmul: one compiled pass where it sums as this MAC says, else its
        products (compiled, 64 MiB at a time) summed by the engine as exact products would be."""
        m, k = A.shape
        n = B.shape[1]
        user = self.user
        if self.user_compiled and initial is None:
            result, overflows = user.sums(A, B, self.acc, self.chunk, self.chunk_acc)
            self._count(A, B, (user.label, m * n * k))
            if user.acc_fn is not None:
                self.counts["add"][user.acc_label] += m * n * k
            self.counts["overflows"] += overflows
            self._offset += m * n
            return result
        outer, self.counts = self.counts, Counts()  # the engine's overflow counts (the rest: from A and B)
        result = np.empty((m, n))
        rows = max(1, (1 << 23) // max(n * k, 1))
        ones = np.broadcast_to(np.ones((1, 1)), (k, 1))
        try:
            for r0 in range(0, m, rows):
                terms = user.products(A[r0:r0 + rows], B)
                r = terms.shape[0]
                if sig_bits(terms) > 26:
                    raise ValueError(f"mul={user.label}: its products have {sig_bits(terms)} significant bits; "
                                     "summed other than in one compiled pass (fp32/fp64 nearest-even in k order, "
                                     "a table's integer sums) they may have at most 26: round them in the function")
                init = None if initial is None else initial[r0:r0 + r].reshape(r * n, 1)
                result[r0:r0 + r] = self._engine_matmul2d(terms.reshape(r * n, k), ones, initial=init,
                                                          count=False).reshape(r, n)
        finally:
            inner, self.counts = self.counts, outer
        self._count(A, B, (user.label, m * n * k))
        self.counts["overflows"] += inner["overflows"]
        return result

    def _count(self, A, B, products: tuple[str, int] | None = None, ops: "_Operands | None" = None) -> None:
        m, k = A.shape
        n = B.shape[1]
        c = self.counts
        macs = m * n * k
        c["calls"] += 1
        if products is not None:  # a sum of products another unit made (a table read, an exponent add)
            c["mul"][products[0]] += products[1]
        else:
            c["mul"][_name(self.mul)] += macs
        if self.mul is not None:
            c["round"][_name(self.mul)] += macs
        if self.unit is not None:  # a multi-term adder: every product added, one rounding a group
            c["add"][_name(self.acc)] += macs
            span = self.chunk or max(k, 1)
            c["round"][_name(self.acc)] += m * n * ((k // span) * -(-span // self.unit.group)
                                                    + -(-(k % span) // self.unit.group))
            if self.chunk:
                chunk_sums = m * n * math.ceil(k / self.chunk)
                c["add"][_name(self.chunk_acc)] += chunk_sums
                c["round"][_name(self.chunk_acc)] += chunk_sums
        elif self.acc is not None:
            c["add"][_name(self.acc)] += macs
            c["round"][_name(self.acc)] += macs
            if self.chunk:
                chunk_sums = m * n * math.ceil(k / self.chunk)
                c["add"][_name(self.chunk_acc)] += chunk_sums
                c["round"][_name(self.chunk_acc)] += chunk_sums
        if self.out is not None:
            c["round"][_name(self.out)] += m * n
        if not macs:
            nonzero_pairs = 0
        elif ops is not None:
            nonzero_pairs = ops.nonzero_pairs
        else:
            nonzero_pairs = matmul_operand_stats(A, B)[2]
        c["zero_products"] += macs - nonzero_pairs
        c["elements_read"] += A.size + B.size
        c["elements_written"] += m * n
        bits_a, bits_b = (f.bits for f in self.inputs) if self.inputs else (8 * A.itemsize, 8 * B.itemsize)
        c["bits_read"] += A.size * bits_a + B.size * bits_b
        c["bits_written"] += m * n * (self.out.bits if self.out is not None else 64)

    def _chunk_native(self) -> bool:
        """Whether chunk totals may use float's own addition: chunk_acc is float32 itself and the mode
        nearest even, so the native sum is the correctly rounded one."""
        return bool(self.chunk) and _is_float32(self.chunk_acc) and self.rounding == "nearest_even"

    def _acc_native(self) -> bool:
        """The same for every accumulation: acc is float32 itself and the mode nearest even (products are
        exact on the float path, so an FMA step is the same one rounding)."""
        return _is_float32(self.acc) and self.rounding == "nearest_even" and self.order == "sequential"

    def _fma_float32(self, ops: "_Operands") -> bool:
        """Whether the float kernel may sum float32 operands whose products float cannot hold by fused
        multiply-adds (C engine): exact products into a float32 accumulator in nearest even, every step
        the one rounding of s + a * b, chunk totals float's own sums; finite operands, float32 values
        (normal: at most 24 significant bits is then exact)."""
        if (self.mul is not None or not self._acc_native() or (self.chunk and not self._chunk_native())
                or not ops.finite or ops.empty or max(ops.sig_a, ops.sig_b) > 24):
            return False
        top = float(np.finfo(np.float32).max)
        return min(ops.a_min, ops.b_min) >= 2.0**-126 and max(ops.a_max, ops.b_max) <= top and self._fits_float32(ops, True)

    def _fits_float32(self, ops: "_Operands", fma: bool = False) -> bool:
        """Whether float arithmetic (products and round-to-odd sums) is exact enough for this call."""
        if self.rounding == "stochastic":
            return False  # stochastic draws read more remainder bits than float keeps
        for role, f in (("mul", self.mul), ("acc", self.acc), ("chunk_acc", self.chunk_acc), ("out", self.out)):
            if f is None:
                continue
            if not isinstance(f, FloatFormat):
                return False
            # float32 itself: as the output it rounds float values to themselves; as chunk_acc (nearest
            # even) its sums are float's own
            if _is_float32(f) and (role == "out" or (role == "chunk_acc" and self._chunk_native())
                                   or (role == "acc" and self._acc_native())):
                continue
            if role == "chunk_acc" and not self.chunk:
                continue  # unused without chunks (it is acc then)
            m, emin, q_exp = layout(f)
            if m > 21 or emin < -126 or q_exp < -147 or f.max >= 2.0**126:
                return False
        if fma:  # products exact inside the fused multiply-add: the formats alone decide
            return True
        if ops.product_bits > 24 or not ops.finite:
            return False
        # products within float32's normal range, so that float products are exact
        return ops.empty or (ops.a_min * ops.b_min >= 2.0**-126 and ops.a_max * ops.b_max < 2.0**100)

    # The fast kernel leaves out the rules for tiny values, Inf and NaN where this call provably needs
    # them not: _on_grids (no nonzero value below a format's smallest) and _bounded (no overflow), or
    # _bounded alone for an fp16 accumulator that _tiny_safe_half admits.
    @staticmethod
    def _product_lsb(ops: "_Operands") -> int:
        """Every product is a multiple of 2**this (finite, nonempty operands)."""
        return (math.floor(math.log2(ops.a_min)) - ops.sig_a + 1) + (math.floor(math.log2(ops.b_min)) - ops.sig_b + 1)

    def _on_grids(self, ops: "_Operands") -> bool:
        """No nonzero product, partial sum, chunk total or output falls below a format's smallest
        value: each is a multiple of 2**L, L the products' least bit (a rounding keeps that: to a grid
        finer than 2**L at the value, the value is on it and stays; else the result is a multiple of the
        grid's spacing), and every format used holds 2**L's multiples from 2**L up."""
        if ops.empty or not ops.finite:
            return False
        lsb = self._product_lsb(ops)
        used = (self.mul, self.acc, self.chunk_acc if self.chunk else None, self.out)
        return all(layout(f)[2] <= lsb for f in used if f is not None)

    def _exact_in_double(self, ops: "_Operands") -> bool:
        """Every product, partial sum and chunk total is exact in float64 where no value is tiny or past
        a format's range (fast): each is a multiple of 2**L, L the products' least bit (see _on_grids),
        and below 2**(L + 52) by _bounded's bound with every step's growth."""
        bound = self._growth_bound(ops)
        return bound is not None and bound < 2.0 ** (self._product_lsb(ops) + 52)

    def _on_draw_grid(self, ops: "_Operands", rbits: int) -> bool:
        """Every sum acc rounds is a multiple of its spacing at the sum times 2**-rbits (so the
        stochastic rule's remainder needs no rounding to rbits bits): 2**L, the least bit of every
        value (see _on_grids), is at most acc's spacing at the bound on partial sums, over 2**rbits."""
        bound = self._growth_bound(ops)
        if bound is None or not isinstance(self.acc, FloatFormat) or bound == 0:
            return False
        m, emin, _ = layout(self.acc)
        spacing_exp = max(math.floor(math.log2(bound)), emin) - m  # acc's spacing at the bound
        return self._product_lsb(ops) >= spacing_exp - rbits

    def _growth_bound(self, ops: "_Operands") -> float | None:
        """A bound on |partial sums| and |chunk totals| (see _bounded), None where it does not hold."""
        if ops.empty or not ops.finite:
            return None
        grow_acc, grow_total = self._growths(ops)
        bound = ops.sum_bound * 1.01 * 2.0**grow_total
        return bound if grow_total <= 1000 and math.isfinite(bound) else None

    def _growths(self, ops: "_Operands") -> tuple[float, float]:
        """log2 of the growth of rounding up at every step: within a chunk (acc) and over all of them."""

        # in logs: each rounding grows a partial sum by at most (1 + 2**-m); acc rounds at most K + 2
        # times in a row (a chunk's length when chunked: it restarts), chunk totals once per chunk
        def log2_growth(f, steps):
            return (steps + 2) * math.log1p(2.0 ** -layout(f)[0]) / math.log(2)

        k = ops.k
        # a product rounds once (mul), then acc's steps
        grow_acc = log2_growth(self.acc, min(self.chunk or k, k)) + (log2_growth(self.mul, -1) if self.mul else 0.0)
        grow_total = grow_acc + (log2_growth(self.chunk_acc, -(-k // self.chunk)) if self.chunk else 0.0)
        return grow_acc, grow_total

    def _bounded(self, ops: "_Operands") -> bool:
        """No product or partial sum reaches a format's largest value: the partial sums are bounded
        by the largest row sum of |A| times max |B|, times the growth of rounding up at every step."""
        if ops.empty or not ops.finite:
            return False
        grow_acc, grow_total = self._growths(ops)
        if grow_total > 1000:
            return False
        # |partial sum| <= max row sum of |A| * max |B| (cheaper than max(|A| @ |B|), and enough), times
        # the growth: within a chunk for acc, over all of them for chunk totals and the output
        sums = ops.sum_bound * 1.01
        if self.mul is not None and float(ops.a_max * ops.b_max) * 1.01 >= self.mul.max:
            return False
        totals = [f for f in (self.chunk_acc if self.chunk else None, self.out) if f is not None]
        return (math.isfinite(sums * 2.0**grow_total) and sums * 2.0**grow_acc < self.acc.max
                and all(sums * 2.0**grow_total < f.max for f in totals))

    def _tiny_safe_half(self) -> bool:
        """Whether the fast kernel is right even where values fall below formats' grids: an fp16
        accumulator rounded by bit arithmetic (exact below half's normal range too), no product
        rounding, chunk totals float's own sums, the output a format those values already belong to."""
        return (self.mul is None and (not self.chunk or self._chunk_native())
                and (_is_float32(self.out) or self.out == self.acc))

    def _sequential(self, A: np.ndarray, B: np.ndarray, start: np.ndarray | None = None,
                    ops: "_Operands | None" = None) -> np.ndarray:
        """Sequential float accumulation by the C or Triton engine; start: the initial accumulator."""
        m, k = A.shape
        n = B.shape[1]
        cols = lib.lp_mac_tile(1)
        if n < cols <= m and k and B.strides[0] != 0 and self.rounding != "stochastic" and self._engine() == "c":
            # narrow (few output columns: the kernel would go one output at a time): C = (B^T A^T)^T, whose
            # every output is the same products (a * b == b * a exactly) summed in the same k order; the
            # deterministic modes do not depend on an output's index
            # (the operands' statistics are the same: every use of them is symmetric in A and B)
            t = self._sequential(np.ascontiguousarray(B.T), np.ascontiguousarray(A.T), None if start is None else start.T,
                                 ops)
            return np.ascontiguousarray(t.T)
        ops = _Operands(A, B) if ops is None else ops
        use32 = self._fits_float32(ops)
        fma = not use32 and self._engine() == "c" and self._fma_float32(ops)
        use32 = use32 or fma
        if not use32 and (ops.sig_a > 26 or ops.sig_b > 26):
            raise ValueError("MAC operands must have at most 26 significant bits (products exact in float64); "
                             "quantize them to a format first")
        dtype = np.dtype(np.float32 if use32 else np.float64)
        rbits = self.rbits if self.rounding == "stochastic" else None
        keep = []
        mp = ffi.new("lp_macparams *")
        for field, fmt in (("mul", self.mul), ("acc", self.acc), ("chunk_acc", self.chunk_acc), ("out", self.out)):
            if fmt is None:
                continue
            p = qparams(fmt, dtype, self.rounding, rbits)
            keep.append(p)
            setattr(mp, field, p)
        mp.chunk = self.chunk or 0
        mp.chunk_native = int(use32 and self._chunk_native())
        mp.acc_native = int(use32 and self._acc_native())
        mp.acc_fma = int(fma)
        # (the kernel takes it only where fast is set; 2: products of at most 11 bits, half's own
        # precision, so float's own sum rounds to half correctly: 24 >= 2 * 11 + 2, Figueroa's bound
        # for innocuous double rounding; below half's normal range no float sum of such terms lands on a
        # midpoint of half's grid unless the exact sum is that midpoint; tests/test_mac.py checks all)
        half = use32 and _is_binary16(self.acc) and self.rounding == "nearest_even" and self.order == "sequential"
        mp.acc_half = (2 if ops.product_bits <= 11 else 1) if half else 0
        mp.mode = self.mode
        mp.seed = self.seed
        mp.offset = self._offset
        # (an initial accumulator is outside the bound's premises: no fast variant then)
        # (the fp16 accumulator's bit-arithmetic rounding needs no proof that values stay on the grids)
        # (stochastic: the double kernel's fast variant; float never runs stochastic rounding)
        stochastic = self.rounding == "stochastic"
        on_grids = (use32 or stochastic) and self._on_grids(ops)
        mp.fast = int((use32 or stochastic) and start is None and self._bounded(ops)
                      and (on_grids or (half and self._tiny_safe_half())))
        # (stochastic, fast: the double kernel's own sums where every one is exact, no rounding to odd)
        mp.exact_sums = int(bool(mp.fast) and stochastic and not use32 and self._exact_in_double(ops))
        if mp.exact_sums and self._on_draw_grid(ops, rbits):
            mp.exact_sums = 2
        if mp.fast and on_grids and self.mul is not None and ops.product_bits <= layout(self.mul)[0] + 1:
            # every product is a value of mul (the proof behind fast puts it on mul's grid and below its
            # largest value; it has no more bits than mul's precision): rounding it changes nothing
            mp.mul = ffi.NULL
        m, k = A.shape
        n = B.shape[1]
        b_broadcast = k > 0 and B.strides[0] == 0  # every row of B is its first (a sum's ones)
        if self._engine() == "triton":
            return self._sequential_triton(A, B, dtype, keep, mp, b_broadcast, start)
        # the kernel takes whole tiles of rows x columns: pad with zeros, drop the padding
        tr, tc = lib.lp_mac_tile(0), lib.lp_mac_tile(1)
        if n < tc and (n < tc // 4 or self.rounding == "stochastic" or b_broadcast):
            # narrow: the kernel goes one output at a time, nothing to pad (padding a few columns to a
            # tile would copy B several times over, and draw Philox words for every padding output)
            tr = tc = 1
        mp_, np_ = -(-m // tr) * tr, -(-n // tc) * tc
        # float32 operands of the double kernel's fast stochastic variants are read as they are (no
        # float64 copies; the kernel converts each as it reads it)
        mp.ops_f32 = int(not use32 and bool(mp.fast) and stochastic and A.dtype == np.float32
                         and B.dtype == np.float32)
        op_dtype = np.dtype(np.float32) if mp.ops_f32 else dtype
        a = _padded(A, (mp_, k), op_dtype)  # copies only where needed
        mp.b_broadcast = int(b_broadcast)
        b = _padded(B[:1], (1, np_), op_dtype) if mp.b_broadcast else _padded(B, (k, np_), op_dtype)
        c = np.empty((mp_, np_), dtype)
        ctype = "float[]" if use32 else "double[]"
        init = None if start is None else _padded(start, (mp_, np_), dtype)  # exact: values of acc / chunk_acc
        mp.init = ffi.from_buffer(ctype, init) if init is not None else ffi.NULL
        fn = lib.lp_mac_matmul_f32 if use32 else lib.lp_mac_matmul_f64
        args = [ffi.cast(ctype.replace("[]", " *"), ffi.from_buffer(x)) if mp.ops_f32 else ffi.from_buffer(ctype, x)
               for x in (a, b)]
        rc = fn(args[0], args[1], ffi.from_buffer(ctype, c, require_writable=True), mp_, k, np_, n, mp,
                get_num_threads())
        if rc == -2:
            raise MemoryError("the MAC kernel could not allocate its stochastic draw buffers")
        if rc:
            raise RuntimeError("lp_mac_matmul refused the padded shapes (a bug in lowprec)")
        return np.ascontiguousarray(c[:m, :n], np.float64)  # c itself where nothing was padded

    def _engine(self) -> str:
        """"triton" or "c" for this call's sequential float accumulation (see backend)."""
        if self.backend is not None:
            return self.backend
        return "triton" if self._device is not None and self._device.type == "cuda" and gpu.available() else "c"

    def _sequential_triton(self, A: np.ndarray, B: np.ndarray, dtype: np.dtype, params: list, mp,
                           b_broadcast: bool, start: np.ndarray | None) -> np.ndarray:
        """_sequential's work by the Triton kernel (lowprec.kernels.triton_mac) on the call's device
        (CPU: the interpreter), the C kernel's bits: the parameter blocks and flags _sequential set up."""
        import torch

        device = self._device if self._device is not None else torch.device("cpu")
        names = [f for f, fmt in (("mul", self.mul), ("acc", self.acc), ("chunk_acc", self.chunk_acc),
                                  ("out", self.out)) if fmt is not None]
        a = _tensor_on(A, dtype, device)
        b = _tensor_on(B[:1] if b_broadcast else B, dtype, device)
        c = torch.empty((A.shape[0], B.shape[1]), dtype=a.dtype, device=device)
        formats = dict(mul=self.mul, acc=self.acc, chunk_acc=self.chunk_acc, out=self.out)
        halves = frozenset(r for r in names if dtype == np.float32 and self.rounding == "nearest_even"
                           and _is_binary16(formats[r]))
        init = None if start is None else _tensor_on(start, dtype, device)
        gpu.mac_matmul(a, b, c, dict(zip(names, params)), self.mode, chunk=self.chunk or 0, key=self.seed,
                       offset=self._offset, acc_native=bool(mp.acc_native), chunk_native=bool(mp.chunk_native),
                       b_broadcast=b_broadcast, halves=halves, init=init)
        return c.cpu().numpy().astype(np.float64)

    def _exact(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """acc=None: exact sums, rounded once to out."""
        if _exact_span(A, B) <= 53:  # every partial sum is exact in float64: native matmul is exact
            exact = A @ B
        else:  # exact rational sums
            from fractions import Fraction

            # rounded to odd at 53 bits when out rounds again (so that its one rounding is right), else
            # to nearest float64 (out=None means float64)
            to64 = rto64 if self.out is not None else float
            exact = np.array([[to64(sum((Fraction(float(x)) * Fraction(float(y)) for x, y in zip(A[i], B[:, j])),
                                        Fraction(0)))
                               for j in range(B.shape[1])] for i in range(A.shape[0])])
        return exact if self.out is None else quantize(exact, self.out, self.rounding, seed=self.seed)

    def _fixed(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Integer/fixed-point accumulators: exact products, every step rounded to the accumulator's
        grid, then wrapped or saturated; overflow events counted. A, B: float32 or float64."""
        acc = self.acc
        if self.chunk or self.order != "sequential":
            raise ValueError("fixed-point accumulators take order='sequential' without chunks")
        if self.mul is None:  # integer operands (after a power-of-two scaling): exact int64 sums, compiled
            fast = fixed_matmul(A, B, acc, self.rounding)
            if fast is not None:
                s, overflows = fast
                self.counts["overflows"] += overflows
                return s if self.out is None or self.out == acc else quantize(s, self.out, self.rounding, seed=self.seed)
        A, B = A.astype(np.float64), B.astype(np.float64)  # exact products from here on
        grid = FixedFormat(min(64 - acc.frac_bits, 62), acc.frac_bits, signed=True)  # unbounded, for rounding
        s = np.zeros((A.shape[0], B.shape[1]))
        overflows = 0
        for t in range(A.shape[1]):
            step_seed = (self.seed + (t + 1) * _GOLDEN) % 2**64  # fresh stochastic draws at every step
            p = np.multiply.outer(A[:, t], B[t])
            if self.mul is not None:
                p = quantize(p, self.mul, self.rounding, seed=step_seed)
            total = quantize(s + p, grid, self.rounding, seed=(step_seed + 1) % 2**64)
            overflows += int(((total > acc.max) | (total < acc.min)).sum())
            s = quantize(total, acc)  # on the grid already: only wraps or saturates, as acc says
        self.counts["overflows"] += overflows
        return s if self.out is None or self.out == acc else quantize(s, self.out, self.rounding, seed=self.seed)


def _tensor_on(x: np.ndarray, dtype: Any, device: Any) -> Any:
    """x as a contiguous tensor of dtype on device (a copy: x may be a read-only view)."""
    import torch

    return torch.from_numpy(np.array(x, dtype, order="C")).to(device)


def _device_of(*operands) -> Any:
    """The device of the first tensor operand off the host (None: all on the host)."""
    for x in operands:
        if _arrays.is_tensor(x) and x.device.type != "cpu":
            return x.device
    return None


def _padded(A: np.ndarray, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """2-D A zero-padded to `shape`, C-contiguous, in dtype: A itself where it already is."""
    if A.shape == shape:
        return np.ascontiguousarray(A, dtype)  # one pass where a conversion is needed
    a = np.zeros(shape, dtype)
    a[:A.shape[0], :A.shape[1]] = A
    return a


def patches(x: np.ndarray, kernel: tuple[int, int], stride=1, padding=0, dilation=1) -> np.ndarray:
    """The input patches a 2-D convolution reduces over (im2col), in x's dtype: (N, Ho, Wo, C, kh, kw)
    for x (N, C, H, W), zero padding; the convolutions of MAC and lowprec.nn (its backward too) share
    it, so they see the same operands in the same order."""
    stride, padding, dilation = (_pair(v, name) for v, name in ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    kh, kw = kernel
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    ho = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"the kernel {(kh, kw)} (dilation {dilation}) does not fit the padded input {xp.shape[2:]}")
    cols = np.empty((x.shape[0], ho, wo, x.shape[1], kh, kw), x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[..., i, j] = xp[:, :, i * dilation[0]: i * dilation[0] + stride[0] * (ho - 1) + 1: stride[0],
                                 j * dilation[1]: j * dilation[1] + stride[1] * (wo - 1) + 1: stride[1]].transpose(0, 2, 3, 1)
    return cols


def _pair(v, name):
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    v = tuple(int(t) for t in v)
    if len(v) != 2 or any(t < 0 for t in v) or (name != "padding" and any(t < 1 for t in v)):
        raise ValueError(f"{name} must be a positive int or pair (padding: non-negative), got {v}")
    return v


def _wrap_like(original, restore, result: np.ndarray):
    if _arrays.is_tensor(original):  # (np.ascontiguousarray makes a 0-d result 1-d: a dot's would be (1,))
        return restore(np.ascontiguousarray(result).reshape(result.shape))
    return result if result.ndim else result[()]


def _is_float32(fmt: Format | None) -> bool:
    """fmt is IEEE binary32 itself (subnormals, Inf on overflow): float's own arithmetic rounds to it."""
    return (isinstance(fmt, FloatFormat) and (fmt.exp_bits, fmt.man_bits, fmt.bias) == (8, 23, 127)
            and fmt.subnormals and fmt.specials == "ieee" and fmt.overflow == "inf")


def _is_binary16(fmt: Format | None) -> bool:
    """fmt is IEEE binary16 itself (subnormals, Inf on overflow): a float32-to-half conversion rounds to it."""
    return (isinstance(fmt, FloatFormat) and (fmt.exp_bits, fmt.man_bits, fmt.bias) == (5, 10, 15)
            and fmt.subnormals and fmt.specials == "ieee" and fmt.overflow == "inf")


class _Operands:
    """What the sequential kernel's choice of path needs to know of the operands, read once (one C
    pass each: operand_stats): finiteness, significant bits, the smallest and largest nonzero
    magnitudes, a bound on every partial sum's magnitude and the count of nonzero products. Symmetric
    in A and B: (B^T, A^T) has the same ones."""

    def __init__(self, A: np.ndarray, B: np.ndarray):
        sa, sb, self.nonzero_pairs = matmul_operand_stats(A, B)
        self.k = A.shape[1]
        self.a_min, self.a_max, self.b_min, self.b_max = sa.min_nonzero, sa.max_abs, sb.min_nonzero, sb.max_abs
        self.finite = sa.finite and sb.finite
        self.sig_a, self.sig_b = sa.sig_bits, sb.sig_bits
        self.empty = self.a_max == 0 or self.b_max == 0
        # significant bits of any product: p + q, but p alone when every b is a power of two (a sum's
        # ones), so float32 data sums in float
        self.product_bits = (self.sig_a + self.sig_b) if min(self.sig_a, self.sig_b) > 1 else max(self.sig_a, self.sig_b)
        # the largest row sum of |A| times the largest |b|
        self.sum_bound = (float(sa.row_abs_sums.max()) if sa.row_abs_sums.size else 0.0) * self.b_max


def _exact_span(A, B) -> int:
    """Bits between the largest possible |sum| and the finest product quantum."""
    a = A[np.isfinite(A) & (A != 0)]
    b = B[np.isfinite(B) & (B != 0)]
    if a.size == 0 or b.size == 0:
        return 0
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        return 10**6
    qa = np.frexp(a)[1] - sig_bits(a)
    qb = np.frexp(b)[1] - sig_bits(b)
    quantum = int(qa.min() + qb.min())
    top = math.log2(np.abs(a).max() * np.abs(b).max() * A.shape[1]) + 1
    return int(math.ceil(top)) - quantum
