"""A deterministic rounding to a format of few values as steps: thresholds on the exact value.

A format with at most 16 magnitudes (fp4_e2m1fn, NVFP4's element) rounds a value of magnitude v to
code[k], where k counts the thresholds v passes: v >= t, or v > t for an exclusive one, with t a code
or the midpoint of two. The float-scaled kernel (csrc/fscale_impl.h) then compares |x| with t * scale
* g instead of dividing x by scale * g. The thresholds are not derived from the mode's definition but
read off the format's own rounding (the C core on float64 values) at each candidate and its neighbours,
so they follow the format's conventions (ties, signed zeros, saturation) by construction; a format or
mode that the probes do not pin down gets None (the kernel divides). Stochastic rounding divides, then
rounds the quotient between two magnitudes, where probes at their draws' thresholds find the core's rule.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

from ..formats import Format
from ..kernels.native import ffi
from ..kernels.philox import element_random
from ..kernels.rounding import seed_key
from .scalar import quantize_scalar

MAX_STEPS = 15  # lp_fscale_steps' arrays
_MAX_BITS = 24  # significant bits of a threshold: t * scale * g stays exact in double (csrc/fscale_impl.h)


def _bits(v: float) -> int:
    """Significant bits of a positive double (0 for 0)."""
    if v == 0:
        return 0
    m, _ = np.frexp(v)
    m = int(m * 2**53)
    return 53 - (m & -m).bit_length() + 1


def _side(code: np.ndarray, fmt: Format, rounding: str, sign: float) -> list[tuple[float, bool]] | None:
    """(threshold, exclusive) per step for inputs of this sign, or None where the probes find another shape."""
    steps = []
    for lo, hi in zip(code[:-1], code[1:]):
        mid = (lo + hi) / 2  # exact: both are short
        points = np.array([lo, np.nextafter(lo, np.inf), np.nextafter(mid, 0), mid, np.nextafter(mid, np.inf),
                           np.nextafter(hi, 0), hi])
        got = np.abs(quantize_scalar(sign * points, fmt, rounding))
        if not np.all((got == lo) | (got == hi)) or got[0] != lo or got[-1] != hi:
            return None
        first = int(np.argmax(got == hi))
        if not np.all(got[first:] == hi):
            return None
        where = {1: (lo, True), 3: (mid, False), 4: (mid, True), 6: (hi, False)}.get(first)
        if where is None or _bits(where[0]) > _MAX_BITS:
            return None
        steps.append(where)
    top = code[-1]
    beyond = np.array([np.nextafter(top, np.inf), top * 1.5, top * 2, top * 2**40, np.finfo(np.float64).max])
    if not np.all(np.abs(quantize_scalar(sign * beyond, fmt, rounding)) == top):  # saturates
        return None
    return steps


def _stochastic_grid(code: np.ndarray, fmt: Format) -> bool | None:
    """Whether fmt's stochastic rounding of float64 values with 64 random bits (the C core) is
    lp_sr_steps' rule on these magnitudes (csrc/fscale_impl.h): up from code[j] iff F + r >= 2**64, F
    the place p = (|q| - code[j]) / gap as 64 bits rounded to nearest even, r the draw; saturating.
    Probed where it decides: quotients at their own draw's threshold and one step either side, in
    every gap and for the largest draws (where the rounding of F decides), both signs. Then whether
    a negative value rounding to 0 gives -0; None where the probes disagree."""
    gaps = np.diff(code)
    if not np.all(np.frexp(gaps)[0] == 0.5):  # powers of two: p = (|q| - low) / gap is exact
        return None
    n, seed = 1 << 16, 1
    r = element_random(n, np.float64, seed_key(seed))
    need = [(1 << 64) - int(v) for v in r.tolist()]  # F reaching this carries
    x = np.zeros(n)
    for j, (lo, gap) in enumerate(zip(code[:-1], gaps)):  # 24 members a gap: near the threshold, either side
        for i in range(24 * j, 24 * j + 24):
            t = float(Fraction(lo) + Fraction(need[i], 1 << 64) * Fraction(gap))
            x[i] = t if i % 3 == 1 else np.nextafter(t, -np.inf if i % 3 else np.inf)
    for k, i in enumerate(np.flatnonzero(r % np.uint64(1 << 11) == 0)):  # draws whose threshold a double holds
        j = k % len(gaps)
        t = Fraction(code[j]) + Fraction(need[i], 1 << 64) * Fraction(gaps[j])
        t = t if float(t) == t else Fraction(need[i], 1 << 64) * Fraction(code[1])
        x[i] = float(t) if k % 2 else np.nextafter(float(t), 0.0)
    for k, i in enumerate(np.argsort(r)[-8:]):  # the largest draws: a tiny p whose rounding decides
        x[i] = float(Fraction(2 * need[i] - (k % 2), 1 << 65) * Fraction(code[1]))  # a tie, or the threshold
    at = np.arange(24 * len(gaps), 24 * len(gaps) + 3)
    x[at] = code[-1] + gaps[-1] / 2, code[-1] * 3, code[-1] * 2.0**40  # saturates
    x[1::2] *= -1
    got = quantize_scalar(x, fmt, "stochastic", seed=seed)
    probed = np.flatnonzero(x)
    want = []
    for v, ri in zip(np.abs(x[probed]).tolist(), r[probed].tolist()):
        j = int(np.searchsorted(code, v, side="right")) - 1
        if j == code.size - 1:
            want.append(float(code[-1]))
            continue
        f = round((Fraction(v) - Fraction(code[j])) / Fraction(gaps[j]) * 2**64)  # halves to even
        want.append(float(code[j + 1]) if f + ri >= 2**64 else float(code[j]))
    got_p = got[probed]
    if (not np.array_equal(np.abs(got_p), want) or np.any(got[x == 0] != 0)
            or np.any(np.signbit(got_p[got_p != 0]) != np.signbit(x[probed][got_p != 0]))):
        return None
    zeros = quantize_scalar(-np.array([0.0, code[1] * 2.0**-70]), fmt, "stochastic", seed=seed)  # F = 0
    if np.any(zeros != 0) or np.signbit(zeros[0]) != np.signbit(zeros[1]):
        return None
    return bool(np.signbit(zeros[0]))


@lru_cache(maxsize=64)
def rounding_steps(fmt: Format, rounding: str):
    """The lp_fscale_steps block (a cffi struct) of fmt's rounding, or None. Stochastic rounding (with
    64 random bits; the kernel checks) gets only the magnitudes and the sign of zero."""
    try:
        values = fmt.values()
    except (ValueError, AttributeError):  # more than 16 bits, or no value list
        return None
    code = values[values >= 0]
    if code.size < 2 or code.size - 1 > MAX_STEPS or code[0] != 0 or not np.array_equal(-code[::-1], values[values <= 0]):
        return None  # not a signed-symmetric set of at most 16 magnitudes with 0
    if rounding == "stochastic":
        neg_zero = _stochastic_grid(code, fmt)
        if neg_zero is None:
            return None
        pos = neg = [(float(c), False) for c in code[1:]]  # for the record: lp_sr_steps reads code
    else:
        pos, neg = _side(code, fmt, rounding, 1.0), _side(code, fmt, rounding, -1.0)
        if pos is None or neg is None:
            return None
        zeros = quantize_scalar(-np.array([0.0, code[1] / 4]), fmt, rounding)
        zeros = zeros[zeros == 0]
        neg_zero = bool(np.signbit(zeros[0]))
        if not np.all(np.signbit(zeros) == neg_zero):
            return None
    st = ffi.new("lp_fscale_steps *")
    st.steps = code.size - 1
    st.sym = int(pos == neg)
    st.neg_zero = int(neg_zero)
    for k, c in enumerate(code):
        st.code[k] = float(c)
    for j, ((t, ex), (u, fx)) in enumerate(zip(pos, neg)):
        st.pos[j], st.pos_excl[j], st.neg[j], st.neg_excl[j] = float(t), int(ex), float(u), int(fx)
    return st
