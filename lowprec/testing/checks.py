"""Property checkers: hold a user's quantizer or codec to lowprec's reference, property by property.

Each checker returns a Report: falsy when a property fails, its str names every property checked
and, for each that fails, the first counterexample (input bits, expected, got); ``assert_ok()``
raises AssertionError with that text. A user function that raises, returns the wrong shape or dtype,
or writes into its input is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..formats import Format, as_format
from ..array import quantize
from ..kernels.rounding import SYMMETRIC_MODES, mode_index
from .inputs import labelled_inputs


def _bits(x: Any, dtype) -> str:
    """The bit pattern of x in dtype (pass an element of a dtype array: a NaN's payload survives)."""
    width = np.dtype(dtype).itemsize
    u = np.asarray(x, dtype).view(np.uint32 if width == 4 else np.uint64)
    return f"0x{int(u):0{2 * width}x}"


@dataclass(frozen=True)
class Counterexample:
    """One input on which a property fails."""

    input: float
    dtype: str
    expected: Any = None
    got: Any = None
    detail: str = ""
    pattern: str = ""  # the input's bits as given (a float loses a signalling NaN's payload)

    def __str__(self) -> str:
        text = f"input {self.pattern or _bits(self.input, self.dtype)} ({self.input!r})"
        if self.expected is not None:
            text += f": expected {self.expected!r}, got {self.got!r}"
        elif self.got is not None:
            text += f": got {self.got!r}"
        return text + (f" ({self.detail})" if self.detail else "")


@dataclass
class PropertyResult:
    name: str
    ok: bool
    checked: int = 0
    counterexample: Counterexample | None = None
    message: str = ""


@dataclass
class Report:
    """The outcome of a checker: one PropertyResult per property."""

    title: str
    results: list[PropertyResult] = field(default_factory=list)

    def __bool__(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[PropertyResult]:
        return [r for r in self.results if not r.ok]

    def failed(self, name: str) -> bool:
        """Whether the property of that name (or starting with it) failed."""
        return any(r.name.startswith(name) for r in self.failures)

    def __str__(self) -> str:
        head = f"{self.title}: " + ("all properties hold" if self else f"{len(self.failures)} of {len(self.results)} properties FAIL")
        lines = [head]
        for r in sorted(self.results, key=lambda r: r.ok):
            mark = "ok  " if r.ok else "FAIL"
            line = f"  {mark} {r.name}"
            if r.checked:
                line += f" [{r.checked} inputs]"
            if not r.ok:
                line += f": {r.counterexample}" if r.counterexample else f": {r.message}"
            lines.append(line)
        return "\n".join(lines)

    def assert_ok(self) -> None:
        if not self:
            raise AssertionError(str(self))


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise bit-level equality up to NaN payloads; zero signs compared."""
    return (np.isnan(a) & np.isnan(b)) | ((a == b) & (np.signbit(a) == np.signbit(b)))


class _UserFunction:
    """Calls a user's function safely and records how it misbehaves."""

    def __init__(self, fn: Callable, array: str):
        if array not in ("numpy", "torch"):
            raise ValueError(f"array must be 'numpy' or 'torch', got {array!r}")
        self.fn, self.array = fn, array
        self.problems: list[PropertyResult] = []

    def __call__(self, x: np.ndarray, *args) -> np.ndarray | None:
        buf = x.copy()
        arg = buf
        if self.array == "torch":
            import torch

            arg = torch.from_numpy(buf)  # shares buf's memory
        try:
            out = self.fn(arg, *args)
        except Exception as exc:  # a user's bug, reported rather than raised
            self._problem("raises no exception", f"{type(exc).__name__}: {exc}")
            return None
        if not np.array_equal(buf.view(np.uint8), x.view(np.uint8)):
            self._problem("leaves its input unchanged", "the function wrote into its input array")
        if self.array == "torch" and hasattr(out, "detach"):
            out = out.detach().cpu().numpy()
        out = np.asarray(out)
        if out.shape != x.shape:
            self._problem("returns the input's shape", f"input shape {x.shape}, returned {out.shape}")
            return None
        return out

    def _problem(self, name: str, message: str) -> None:
        if not any(p.name == name for p in self.problems):
            self.problems.append(PropertyResult(name, False, message=message))


def _first(mask: np.ndarray, x, expected, got, dtype, detail="") -> Counterexample | None:
    idx = np.flatnonzero(mask)
    if not idx.size:
        return None
    i = idx[0]
    return Counterexample(float(x[i]), np.dtype(dtype).name, None if expected is None else float(expected[i]),
                          None if got is None else float(got[i]), detail, _bits(x[i], dtype))


def _check(results, name, fails, x, expected, got, dtype, checked=None, detail=""):
    results.append(PropertyResult(name, not fails.any(), int(checked if checked is not None else fails.size),
                                  _first(fails, x, expected, got, dtype, detail)))


# which boundary classes each exactness property covers
_CLASS_PROPERTIES = [
    ("NaN handling", ("nan",)),
    ("Inf handling", ("inf",)),
    ("negative zero", ("negative zero", "zero")),
    ("largest value", ("max",)),
    ("overflow rule", ("above max", "overflow")),
    ("subnormals and underflow", ("min subnormal", "subnormal", "underflow", "min normal")),
    ("tie rule", ("tie",)),
    ("rounding near ties", ("near tie",)),
    ("rounding", ("normal", "between", "random")),
]


def check_quantizer(fn: Callable, fmt: Format | str | None, rounding: str = "nearest_even", *,
                    values=None, dtype=np.float32, array: str = "numpy", n_random: int = 4096,
                    seed: int = 0) -> Report:
    """Check a quantizer ``fn(x) -> values`` against a format (of at most 16 bits) and mode.

    With a lowprec format, fn must agree bit for bit with lowprec.quantize on every boundary class
    of the format (zeros, subnormals, min normal, max, ties and their neighbours, overflow,
    underflow, Inf, NaN) and on a random sample; failures are named by the class they hit. The
    invariants hold too: representable results, idempotence, monotonicity, sign symmetry (symmetric
    modes), the error bound (half a spacing for nearest modes, one spacing and the right side for
    directed and stochastic ones). With fmt=None, pass `values` (every finite value of the format)
    and only the invariants are checked. `dtype` is the input dtype (float64 inputs also catch
    double rounding through float32); `array` is "numpy" or "torch" (what fn receives)."""
    with np.errstate(invalid="ignore", over="ignore"):  # Inf and NaN results are compared, not errors
        return _check_quantizer(fn, fmt, rounding, values, dtype, array, n_random, seed)


def _check_quantizer(fn, fmt, rounding, values, dtype, array, n_random, seed) -> Report:
    mode_index(rounding)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    fmt = as_format(fmt) if fmt is not None else None
    if fmt is None and values is None:
        raise ValueError("give a format, or values= (every finite value) for a format lowprec does not know")
    if fmt is not None and fmt.bits > 16:
        raise ValueError(f"check_quantizer needs a format of at most 16 bits; {fmt} has {fmt.bits}")
    table = np.unique(np.asarray(values, np.float64) + 0.0) if values is not None else fmt.values()
    title = f"check_quantizer({getattr(fn, '__name__', 'fn')}, {fmt.name or fmt if fmt else 'values'}, {rounding}, {dtype.name})"

    x, labels = _inputs(fmt, table, dtype, n_random, seed)
    user = _UserFunction(fn, array)
    got = user(x)
    report = Report(title)
    if got is None:
        report.results = user.problems
        return report
    if got.dtype != dtype:
        user._problem("returns the input's dtype", f"input {dtype}, returned {got.dtype}")
        got = got.astype(dtype) if got.dtype.kind == "f" else None
    if got is None:
        report.results = user.problems
        return report
    results: list[PropertyResult] = []
    g, xd = got.astype(np.float64), x.astype(np.float64)
    finite_in = np.isfinite(xd)
    in_range = finite_in & (xd >= table[0]) & (xd <= table[-1])

    # invariants
    ok_value = np.isin(g, table) | np.isnan(g) | (np.isinf(g) & (fmt is None or fmt.has_inf))
    _check(results, "representable values", ~ok_value, x, None, got, dtype, detail="not a value of the format")
    again = user(got.copy()) if np.isfinite(g).any() else got
    if again is not None:
        stable = np.isfinite(g) & (rounding != "stochastic")
        _check(results, "idempotence", stable & ~_same(again.astype(np.float64), g), x, got, again, dtype,
               checked=stable.sum())
    lo_idx = np.clip(np.searchsorted(table, xd, side="right") - 1, 0, len(table) - 1)
    hi_idx = np.clip(np.searchsorted(table, xd, side="left"), 0, len(table) - 1)
    lo, hi = table[lo_idx], table[hi_idx]
    neighbour = (g == lo) | (g == hi)
    if rounding.startswith("nearest"):
        bound_fail = in_range & ~(neighbour & (np.abs(g - xd) <= (hi - lo) / 2))
    else:
        side = {"toward_zero": np.abs(g) <= np.abs(xd), "up": g >= xd, "down": g <= xd}.get(rounding, True)
        bound_fail = in_range & ~(neighbour & side)
    nearer = np.where(np.abs(xd - lo) <= np.abs(hi - xd), lo, hi)
    _check(results, "error bound", bound_fail, x, nearer if rounding.startswith("nearest") else None, got, dtype,
           checked=in_range.sum(), detail=f"outside the {rounding} error bound")
    if rounding != "stochastic":
        order = np.argsort(xd[finite_in], kind="stable")
        xs, gs = x[finite_in][order], g[finite_in][order]
        ok = ~np.isnan(gs)
        xs, gs = xs[ok], gs[ok]
        drop = np.zeros(len(gs), bool)
        drop[1:] = gs[1:] < gs[:-1]
        _check(results, "monotonicity", drop, xs, np.r_[np.nan, gs[:-1]], gs, dtype, checked=len(gs),
               detail="smaller than the result of the next smaller input")
    if rounding in SYMMETRIC_MODES and table[0] < 0:
        sym = in_range & (np.abs(xd) <= min(-table[0], table[-1]))
        neg = user(-x)
        if neg is not None:
            n64 = neg.astype(np.float64)
            mismatch = ~_same(n64, -g)
            if fmt is None or not fmt.has_negative_zero:  # zeros of either sign are the same zero
                mismatch &= ~((n64 == 0) & (g == 0))
            _check(results, "sign symmetry", sym & mismatch, x, -g, neg, dtype, checked=sym.sum())

    # exactness against lowprec, by boundary class
    if fmt is not None and rounding != "stochastic":
        expected = quantize(x, fmt, rounding)
        wrong = ~_same(got.astype(np.float64), expected.astype(np.float64))
        if dtype == np.float64:
            via32 = quantize(x.astype(np.float32), fmt, rounding).astype(np.float64)
            double = wrong & _same(g, via32)
            _check(results, "no double rounding (float64 input rounded once)", double, x, expected, got, dtype,
                   checked=(labels == "near tie").sum(), detail="the result of rounding through float32 first")
            wrong &= ~double
        beyond = np.isfinite(g) & ((g > fmt.max) | (g < fmt.min))  # a finite result outside the range
        for name, classes in _CLASS_PROPERTIES:
            member = np.isin(labels, classes) | (beyond if name == "largest value" else False)
            if not member.any():
                continue
            label = {"overflow rule": f"overflow rule (overflow={fmt.overflow!r})",
                     "tie rule": f"tie rule ({rounding})", "rounding": f"rounding ({rounding})",
                     "largest value": f"largest value (max={fmt.max:g})"}.get(name, name)
            _check(results, label, member & wrong, x, expected, got, dtype, checked=member.sum())
    report.results = user.problems + results
    return report


def _inputs(fmt, table, dtype, n_random, seed):
    rng = np.random.default_rng(seed)
    top = float(table[-1])
    rand = np.concatenate([rng.uniform(table[0], top, n_random // 2),
                           rng.standard_normal(n_random - n_random // 2) * top / 4]).astype(dtype)
    if fmt is not None:
        x, labels = labelled_inputs(fmt, dtype)
    else:
        mids = (table[:-1] + table[1:]) / 2
        x = np.concatenate([table, mids, [top * 2, -top * 2, np.inf, -np.inf, np.nan, -0.0]]).astype(dtype)
        labels = np.array(["value"] * len(table) + ["tie"] * len(mids) + ["overflow"] * 4 + ["nan", "negative zero"])
    return np.concatenate([x, rand]), np.concatenate([labels, np.array(["random"] * len(rand))])


def check_codec(encode: Callable, decode: Callable, fmt: Format | str) -> Report:
    """Check a user's ``encode(values) -> codes`` and ``decode(codes) -> values`` over every code of
    a format of at most 16 bits: decode must give lowprec's value of each code (NaN codes any NaN),
    encode must give back each code from its value (codes that alias a value come back as the
    first such code), and decode(encode(v)) == v."""
    fmt = as_format(fmt)
    if fmt.bits > 16:
        raise ValueError(f"check_codec needs a format of at most 16 bits; {fmt} has {fmt.bits}")
    codes = fmt.codes()
    want = fmt.decode(codes)
    report = Report(f"check_codec({getattr(encode, '__name__', 'encode')}, {getattr(decode, '__name__', 'decode')}, {fmt.name or fmt})")
    dec = _UserFunction(decode, "numpy")
    got = dec(codes)
    results: list[PropertyResult] = []
    if got is not None:
        g = np.asarray(got, np.float64)
        _check(results, "decode gives each code's value", ~_same(g, want.astype(np.float64)),
               codes.astype(np.float64), want, got, np.float64,
               detail="input is the code")
    enc = _UserFunction(encode, "numpy")
    finite = np.isfinite(want)
    signed = np.stack([want.astype(np.float64), np.signbit(want)])
    first = np.zeros(len(codes), bool)
    first[np.unique(signed, axis=1, return_index=True)[1]] = True
    canonical = finite & first
    values = want[canonical]
    back = enc(values)
    if back is not None:
        b = np.asarray(back)
        if b.dtype.kind not in "iu":
            enc._problem("returns integer codes", f"returned {b.dtype}")
        else:
            _check(results, "encode gives back each code", b.astype(np.int64) != codes[canonical].astype(np.int64),
                   values, codes[canonical], b, want.dtype)
            round_trip = dec(b.astype(codes.dtype))
            if round_trip is not None:
                _check(results, "decode(encode(v)) == v", ~_same(np.asarray(round_trip, np.float64), values.astype(np.float64)),
                       values, values, round_trip, want.dtype)
    report.results = dec.problems + enc.problems + results
    return report
