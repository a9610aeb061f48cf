"""The MAC reference: one output at a time in plain Python, exact rational intermediates, and
lowprec's quantizer after every single operation. Slow and clear; the tests' second opinion on
lowprec.MAC.

An exact rational is rounded to a format by rounding it to odd at float64's 53 bits first (exact
integer arithmetic) and then quantizing that float64: for formats of at most 51 bits this is the
correct rounding of the rational in every deterministic mode, and for stochastic rounding with k
random bits it is exact while k <= 51 - (the format's mantissa bits).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ._exact import rto64  # noqa: F401 (also lowprec.mac_reference.rto64)
from .formats import Format, as_scalar_format
from .array import quantize
from .reference import philox4x32, quantize_reference


def _draw(seed: int, counter: int, word: int) -> int:
    return int(philox4x32(np.array([counter], np.uint64), seed)[word, 0])


class _Step:
    """Rounds exact values to formats, drawing stochastic bits for output o as the C kernel does."""

    def __init__(self, rounding: str, seed: int, rbits: int, k: int):
        self.rounding, self.seed, self.rbits, self.k = rounding, seed, rbits, k

    def __call__(self, value, fmt: Format | None, o: int, t: int, kind: int):
        if fmt is None:
            return value
        if isinstance(value, float):  # a signed zero, Inf or NaN
            x = np.array([value])
        else:
            x = np.array([rto64(Fraction(value))])
        if self.rounding == "stochastic":
            # word t % 4 of counter (4 o + kind) Q + t // 4, Q = k // 4 + 1 (csrc/mac_impl.h)
            draw = _draw(self.seed, (4 * o + kind) * (self.k // 4 + 1) + t // 4, t % 4) << 32
            r = quantize_reference(x, fmt, "stochastic", rbits=self.rbits, random=np.array([draw], np.uint64))
        else:
            r = quantize(x, fmt, self.rounding)
        f = float(r[0])
        return Fraction(f) if math.isfinite(f) and f != 0 else f  # zeros keep their sign as floats


def _add(a, b, rounding: str):
    """a + b exactly; zeros are floats so that their signs follow IEEE 754: two zeros of one sign sum
    to that zero; any other exact zero sum is +0, -0 under rounding down."""
    if isinstance(a, float) and not math.isfinite(a) or isinstance(b, float) and not math.isfinite(b):
        return float(a) + float(b)  # Inf or NaN: IEEE arithmetic
    total = Fraction(a) + Fraction(b)
    if total != 0:
        return total
    if a == 0 and b == 0 and math.copysign(1.0, float(a)) == math.copysign(1.0, float(b)):
        return float(a)
    return -0.0 if rounding == "down" else 0.0


def _product(x, y):
    p = Fraction(float(x)) * Fraction(float(y))
    return p if p != 0 else float(x) * float(y)  # a signed zero


def mac_dot_reference(a, b, *, mul=None, acc="fp32", chunk=None, chunk_acc=None, rounding="nearest_even",
                      out=None, seed=0, rbits=32, output_index=0, initial: float = 0.0) -> float:
    """One output of a sequential (optionally chunked) MAC, as lowprec.MAC defines it; initial: the
    accumulator's start (MAC.matmul's c; the chunk total's when chunking)."""
    mul = as_scalar_format(mul, "mul") if mul is not None else None
    acc = as_scalar_format(acc, "acc")
    chunk_acc = as_scalar_format(chunk_acc, "chunk_acc") if chunk_acc is not None else acc
    out = as_scalar_format(out, "out") if out is not None else (chunk_acc if chunk else acc)
    k = len(a)
    step = _Step(rounding, seed, rbits, k)
    o = output_index
    start = Fraction(initial) if math.isfinite(initial) and initial != 0 else float(initial)
    s = 0.0 if chunk else start
    total = start if chunk else 0.0
    for t in range(k):
        p = step(_product(a[t], b[t]), mul, o, t, 0)
        s = step(_add(s, p, rounding), acc, o, t, 1)
        if chunk and ((t + 1) % chunk == 0 or t + 1 == k):
            total = step(_add(total, s, rounding), chunk_acc, o, t, 2)
            s = 0.0
    result = total if chunk else s
    return float(step(result, out, o, k, 3))
