"""Exact float helpers shared by every layer: results that are exactly right, or rounded to odd so
that one later rounding to a narrower format is the correct rounding of the exact value.

Round to odd at float64 precision (53 bits): truncate, then set the last bit if anything was lost.
Rounding such a value to any format of at most 51 significant bits, in any mode, equals rounding the
exact value (the double-rounding property of round-to-odd, Boldo and Melquiond 2008).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def largest_at_most(value: float, dtype) -> np.generic:
    """The largest value of a float dtype that is <= value (value >= 0)."""
    dtype = np.dtype(dtype)
    with np.errstate(over="ignore"):
        v = dtype.type(value)
    if float(v) > value:
        v = np.nextafter(v, dtype.type(0))
    return v


def rto64(q: Fraction) -> float:
    """q rounded to odd at float64 precision (truncate toward zero, then set the last bit if inexact)."""
    if q == 0:
        return 0.0
    f = float(q)  # correctly rounded to nearest
    if Fraction(f) == q:
        return f
    if abs(Fraction(f)) > abs(q):
        f = math.nextafter(f, 0.0)
    bits = np.array(f).view(np.uint64)
    if int(bits) & 1 == 0:
        f = math.nextafter(f, math.copysign(math.inf, f))
    return f


def add_rto(s: np.ndarray, p: np.ndarray, down: bool = False) -> np.ndarray:
    """s + p rounded to odd at 53 bits, elementwise (float64). An exact zero sum is +0, but -0 under
    rounding down (`down`) unless both terms are +0, as IEEE 754 says."""
    with np.errstate(invalid="ignore", over="ignore"):  # Inf - Inf in the error term: NaN, unused
        return _add_rto(s, p, down)


def _add_rto(s, p, down):
    r = s + p
    if down:
        both_plus = (np.asarray(s).view(np.uint64) | np.asarray(p).view(np.uint64)) == 0
        r = np.where((r == 0) & ~both_plus, -0.0, r)
    bp = r - s
    e = (s - (r - bp)) + (p - bp)
    rb = r.view(np.uint64)
    eb = e.view(np.uint64)
    step = (e != 0) & ((rb & np.uint64(1)) == 0) & np.isfinite(r)
    down = ((rb ^ eb) >> np.uint64(63)) == 1
    out = np.where(step, np.where(down, rb - np.uint64(1), rb + np.uint64(1)), rb)
    return out.view(np.float64)


def split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp's split of float64 a into hi + lo, each of at most 26 significant bits."""
    c = a * 134217729.0  # 2**27 + 1
    hi = c - (c - a)
    return hi, a - hi


def divide_round_odd(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """a / b in float64 rounded to odd: the nearest quotient, moved to its odd neighbour toward the
    exact value when inexact. Rounding it to any format of at most 51 significant bits is then the
    same as rounding a / b exactly (b finite nonzero, a/b normal). A quotient that underflows to 0
    becomes the smallest subnormal of the exact quotient's sign, so that a directed rounding of a
    nonzero quotient leaves 0. b may be a scalar."""
    with np.errstate(all="ignore"):
        q = np.asarray(a / b, np.float64)
        qh, ql = split(q)
        bh, bl = split(np.asarray(b, np.float64))
        p = q * b
        err = ((qh * bh - p) + qh * bl + ql * bh) + ql * bl  # q*b = p + err exactly (Dekker)
        r = (a - p) - err  # the residual a - q*b, exact in float64 here
        fix = (r != 0) & ((q.view(np.int64) & 1) == 0) & np.isfinite(q) & (q != 0)
        under = (q == 0) & (np.asarray(a) != 0) & np.isfinite(b)
        if fix.any() or under.any():
            up = (r * np.sign(b) > 0)[fix]  # the exact quotient lies above q
            q = q.copy()
            q[fix] = np.nextafter(q[fix], np.where(up, np.inf, -np.inf))
            q[under] = np.copysign(np.nextafter(0.0, 1.0), (np.sign(a) * np.sign(b) * np.ones_like(q))[under])
    return q


def multiply_round_odd(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """a * b in float64 rounded to odd (see divide_round_odd): rounding it to float32 is rounding the
    exact product once."""
    with np.errstate(all="ignore"):
        p = np.asarray(a * b, np.float64)
        ah, al = split(np.asarray(a, np.float64))
        bh, bl = split(np.asarray(b, np.float64))
        err = ((ah * bh - p) + ah * bl + al * bh) + al * bl  # a*b = p + err exactly (Dekker)
        fix = (err != 0) & ((p.view(np.int64) & 1) == 0) & np.isfinite(p) & (p != 0)
        if fix.any():
            p = p.copy()
            p[fix] = np.nextafter(p[fix], np.where(np.broadcast_to(err, p.shape)[fix] > 0, np.inf, -np.inf))
    return p
