"""The two AVX-512 steps that the fused stochastic kernels of float32 input share (csrc/sr_avx512.h:
NVFP4 and kin, integer affine), each against an exact statement on inputs that reach every case. The
public paths cannot: a float32 input's quotient lands within a few ulps of a rounding decision about
once in 2**25 elements. Skipped where the build or the CPU lacks AVX-512 (those machines run the
two-pass kernels, which the format tests cover)."""

from fractions import Fraction

import numpy as np
import pytest

from lowprec._exact import divide_round_odd
from lowprec.kernels.native import ffi, lib

RNG = np.random.default_rng(2026)


def _odd_quotients(a: np.ndarray, b: float) -> np.ndarray | None:
    a = np.ascontiguousarray(a, np.float64)
    out = np.empty_like(a)
    done = lib.lp_odd_quotients_avx512(ffi.from_buffer("double[]", a), a.size, b,
                                       ffi.from_buffer("double[]", out, require_writable=True))
    return out if done else None


def _ups(p64: np.ndarray, r: list[int]) -> np.ndarray | None:
    p64 = np.ascontiguousarray(p64, np.float64)
    lo = np.array([v & 0xFFFFFFFF for v in r], np.uint32)
    hi = np.array([v >> 32 for v in r], np.uint32)
    up = np.empty(p64.size, np.uint8)
    done = lib.lp_sr_ups_avx512(ffi.from_buffer("double[]", p64), ffi.from_buffer("uint32_t[]", lo),
                                ffi.from_buffer("uint32_t[]", hi), p64.size,
                                ffi.from_buffer("uint8_t[]", up, require_writable=True))
    return up if done else None


def test_odd_quotient_without_division_is_the_rounded_to_odd_quotient():
    """a / b rounded to odd (q1 = a * (1 / b), one fma correction, the exact residual's sign) against
    divide_round_odd (numpy, Dekker's exact residual; itself checked against rationals in
    test_block_formats): divisors of 53 and of 28 bits (NVFP4's scale * g), powers of two, the ends of
    the division-free range (2**-200, 2**200) and past them (the division); dividends of 53 bits
    across float32's range, quotients a hair above and below doubles (a = b * q rounded: residuals of
    both signs, q even and odd), exact quotients, 0 and the extremes."""
    b53 = list((1 + RNG.random(12)) * 2.0 ** RNG.integers(-190, 190, 12))
    b28 = [float(np.float32(1 + RNG.random()) * np.float64(m)) for m in (2.0**-9 * 3, 448.0, 1.5, 0.75 * 2.0**-20)]
    divisors = b53 + b28 + [1.0, 2.0**-200, 2.0**200, 1.5 * 2.0**-201, 2.0**201, 3.0 * 2.0**240]
    checked = 0
    for b in divisors:
        q = (1 + RNG.random(4000)) * 2.0 ** RNG.integers(-60, 60, 4000)
        near = q * b  # rounded products: a / b lies a hair off q, either side
        a = np.concatenate([near, np.nextafter(near, np.inf), np.nextafter(near, 0),
                            (1 + RNG.random(2000)) * 2.0 ** RNG.integers(-149, 127, 2000),
                            np.float32(RNG.random(500)).astype(np.float64) * b,  # exact where b has few bits
                            [0.0, 2.0**-149, 2.0**-126, 3.0 * 2.0**126, 2.0**128 - 2.0**104]])
        a = a[(a <= 2.0**128) & (a >= 0) & ((a == 0) | (a >= 2.0**-149))]  # float32's magnitudes
        got = _odd_quotients(a, b)
        if got is None:
            pytest.skip("this build or CPU lacks AVX-512: the fused kernels do not run")
        want = divide_round_odd(a, b)
        bad = np.flatnonzero(got.view(np.int64) != want.view(np.int64))
        assert bad.size == 0, f"b={b!r}: a={a[bad[:3]]!r} got {got[bad[:3]]!r} want {want[bad[:3]]!r}"
        inexact = want != a / b
        checked += int(inexact.sum())
    assert checked > 10000  # rounded quotients, not only exact ones


def test_draw_decision_is_the_integer_rule():
    """up iff round_half_even(p * 2**64) + R >= 2**64, R = hi * 2**32 + lo the 64-bit draw: places at
    their draw's threshold and one integer (or the next double) either side, halves of small places
    (F's ties to even decide), 0, places near 2**64, draws of 0 and 2**64 - 1."""
    p64, draws = [], []
    for _ in range(3000):
        r = int(RNG.integers(0, 1 << 63)) * 2 + int(RNG.integers(0, 2))
        need = (1 << 64) - r  # F reaching this carries
        d = float(need)  # the doubles around the threshold
        for v in (d, float(np.nextafter(d, 0)), float(np.nextafter(d, np.inf))):
            if v < 2.0**64:
                p64.append(v)
                draws.append(r)
    for _ in range(3000):  # small thresholds: the rounding of F decides
        m = int(RNG.integers(1, 1 << 52))
        r = (1 << 64) - m
        for v in (m - 1.0, float(m), m - 0.5, m + 0.5, m - 1.5, m - 0.25, m - 0.75):
            if v >= 0:
                p64.append(v)
                draws.append(r)
    for v, r in ((0.0, 0), (0.0, (1 << 64) - 1), (2.0**64 - 2048, 2047), (2.0**64 - 2048, 2048),
                 (0.5, (1 << 64) - 1), (1.5, (1 << 64) - 1), (2.5, (1 << 64) - 2)):
        p64.append(v)
        draws.append(r)
    got = _ups(np.array(p64), draws)
    if got is None:
        pytest.skip("this build or CPU lacks AVX-512: the fused kernels do not run")
    want = [int(round(Fraction(v)) + r >= 1 << 64) for v, r in zip(p64, draws)]  # round(): halves to even
    assert got.tolist() == want
    assert 0 < sum(want) < len(want)
