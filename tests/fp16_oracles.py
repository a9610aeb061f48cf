"""Independent fp16 arithmetic for the MAC tests: Berkeley SoftFloat (the `softfloat` package) where
it imports, else MPFR through gmpy2 (wheels, no build), which has the four IEEE rounding directions
but not ties-away or round-to-odd. Each oracle rounds add, mul and fused mulAdd once, in a mode."""

from __future__ import annotations

import os

import numpy as np
import pytest

SOFTFLOAT_MODES = {"nearest_even": "softfloat_round_near_even", "nearest_away": "softfloat_round_near_maxMag",
                   "toward_zero": "softfloat_round_minMag", "up": "softfloat_round_max",
                   "down": "softfloat_round_min", "odd": "softfloat_round_odd"}
MPFR_MODES = {"nearest_even": "RoundToNearest", "toward_zero": "RoundToZero", "up": "RoundUp",
              "down": "RoundDown"}


class SoftFloat16:
    name = "SoftFloat"

    def __init__(self, sf, mode: str):
        self.sf, self.mode = sf, mode

    def __enter__(self):
        self.sf.cvar.softfloat_roundingMode = getattr(self.sf, SOFTFLOAT_MODES[self.mode])
        return self

    def __exit__(self, *exc):
        self.sf.cvar.softfloat_roundingMode = self.sf.softfloat_round_near_even

    def _in(self, x):
        v = self.sf.float16_t()
        v.v = int(np.array(x, np.float16).view(np.uint16))
        return v

    @staticmethod
    def _out(r) -> float:
        return float(np.array(r.v, np.uint16).view(np.float16))

    def add(self, a, b):
        return self._out(self.sf.f16_add(self._in(a), self._in(b)))

    def mul(self, a, b):
        return self._out(self.sf.f16_mul(self._in(a), self._in(b)))

    def fma(self, a, b, c):
        return self._out(self.sf.f16_mulAdd(self._in(a), self._in(b), self._in(c)))


class Mpfr16:
    """binary16 in MPFR: 11 bits of precision, exponents of 0.1xxx * 2**e in [-23, 16] with
    subnormals, so every operation is one correctly rounded IEEE fp16 operation."""

    name = "MPFR"

    def __init__(self, gmpy2, mode: str):
        self.gmpy2, self.mode = gmpy2, mode

    def __enter__(self):
        g = self.gmpy2
        self._saved = g.get_context()
        g.set_context(g.context(precision=11, emin=-23, emax=16, subnormalize=True,
                                round=getattr(g, MPFR_MODES[self.mode])))
        return self

    def __exit__(self, *exc):
        self.gmpy2.set_context(self._saved)

    def _in(self, x):
        return self.gmpy2.mpfr(float(x))  # fp16 values are exact at 11 bits

    def add(self, a, b):
        return float(self._in(a) + self._in(b))

    def mul(self, a, b):
        return float(self._in(a) * self._in(b))

    def fma(self, a, b, c):
        return float(self.gmpy2.fma(self._in(a), self._in(b), self._in(c)))


def fp16_oracle(mode: str):
    """A context manager doing fp16 arithmetic in `mode`: SoftFloat, else MPFR, else a skip (CI sets
    LOWPREC_REQUIRE_SOFTFLOAT=1: then SoftFloat must import)."""
    try:
        import softfloat

        return SoftFloat16(softfloat, mode)
    except ImportError:
        if os.environ.get("LOWPREC_REQUIRE_SOFTFLOAT"):
            raise
    gmpy2 = pytest.importorskip("gmpy2")
    if mode not in MPFR_MODES:
        pytest.skip(f"MPFR has no {mode} rounding and SoftFloat is not installed")
    return Mpfr16(gmpy2, mode)
