"""A deterministic rounding to a format of few values as steps: thresholds on the exact value.

A format with at most 16 magnitudes (fp4_e2m1fn, NVFP4's element) rounds a value of magnitude v to
code[k], where k counts the thresholds v passes: v >= t, or v > t for an exclusive one, with t a code
or the midpoint of two. The float-scaled kernel (csrc/fscale_impl.h) then compares |x| with t * scale
* g instead of dividing x by scale * g. The thresholds are not derived from the mode's definition but
read off the format's own rounding (the C core on float64 values) at each candidate and its neighbours,
so they follow the format's conventions (ties, signed zeros, saturation) by construction; a format or
mode that the probes do not pin down gets None (the kernel divides).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..formats import Format
from ..kernels.native import ffi
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


@lru_cache(maxsize=64)
def rounding_steps(fmt: Format, rounding: str):
    """The lp_fscale_steps block (a cffi struct) of fmt's rounding in a deterministic mode, or None."""
    if rounding == "stochastic":
        return None
    try:
        values = fmt.values()
    except (ValueError, AttributeError):  # more than 16 bits, or no value list
        return None
    code = values[values >= 0]
    if code.size < 2 or code.size - 1 > MAX_STEPS or code[0] != 0 or not np.array_equal(-code[::-1], values[values <= 0]):
        return None  # not a signed-symmetric set of at most 16 magnitudes with 0
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
