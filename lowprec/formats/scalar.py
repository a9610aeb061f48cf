"""Float and fixed-point formats: what values exist (the bottom layer).

A format is an immutable value object (``FloatFormat``, ``FixedFormat``) that answers ``bits``,
``max``, ``min``, ``min_normal``, ``min_subnormal``, ``eps``, ``has_inf``, ``has_nan`` and, for
formats of at most 16 bits, ``values()`` and ``codes()``; ``code_values`` and ``value_codes`` map
codes and values through its bit layout (lowprec.formats.bits). Named formats live in
lowprec.formats.registry.

This module imports nothing of lowprec above the formats layer, with one exception: ``encode`` (a
rounding) imports ``lowprec.array`` when it is called.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Union

import numpy as np

from .._checks import check_choice, check_int
from . import bits as _bits

__all__ = ["FloatFormat", "FixedFormat", "Format", "layout", "max_magnitudes", "decode_table", "check_codes", "decoded"]

SPECIALS = ("ieee", "fn", "fnuz", "p3109", "none")
FLOAT_OVERFLOW = ("saturate", "inf", "nan")
FIXED_OVERFLOW = ("saturate", "wrap")
_DEFAULT_OVERFLOW = {"ieee": "inf", "fn": "nan", "fnuz": "nan", "p3109": "inf", "none": "saturate"}


def _code_dtype(bits: int) -> type:
    return np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else np.uint32 if bits <= 32 else np.uint64


#: Bits of a format's stored parameter (a scale, zero point or codebook entry: float32 / int32).
PARAM_BITS = 32


class _FormatBase:
    """Behaviour shared by every format: codes, values, codec methods."""

    bits: int

    @property
    def code_dtype(self) -> np.dtype:
        """Unsigned integer dtype holding one code (uint8/16/32/64 by ``bits``)."""
        return np.dtype(_code_dtype(self.bits))

    def codes(self) -> np.ndarray:
        """Every code of the format, ascending (formats of at most 16 bits)."""
        if self.bits > 16:
            raise ValueError(f"codes() is only defined for formats of at most 16 bits; {self} has {self.bits}")
        return np.arange(2**self.bits, dtype=self.code_dtype)

    def values(self) -> np.ndarray:
        """Every finite value of the format, ascending, zero once (float64; at most 16 bits)."""
        v = self.code_values(self.codes().astype(np.uint64))
        v = v[np.isfinite(v)]
        return np.unique(v + 0.0)  # +0.0 folds -0 into 0

    def encode(self, x, rounding: str = "nearest_even", **kwargs) -> np.ndarray:
        """Round ``x`` to this format and return its unsigned integer codes (see ``lowprec.encode``)."""
        from ..array import encode  # the formats layer's one upward call: encoding is a rounding

        return encode(x, self, rounding, **kwargs)

    def decode(self, codes) -> np.ndarray:
        """Values of the given codes (an integer array in [0, 2**bits)), float32, or float64 where
        float32 cannot hold the format (``decode_dtype``)."""
        arr = np.asarray(codes)
        check_codes(arr, self)
        return decoded(arr, self)

    @property
    def decode_dtype(self) -> np.dtype:
        """float32 when every value of the format is a float32, else float64."""
        return np.dtype(np.float64 if self._needs_float64() else np.float32)

    def stored_bits(self, numel: int) -> int:
        """Bits that hold numel values (with the format's own parameters; none here)."""
        return numel * self.bits


@dataclass(frozen=True)
class FloatFormat(_FormatBase):
    """A binary floating-point format: 1 sign bit, ``exp_bits`` exponent bits, ``man_bits`` stored
    mantissa bits, value ``(-1)**s * 2**(E - bias) * 1.M`` (``0.M * 2**(1 - bias)`` when E == 0).

    Conventions, by ``specials``:

    - ``"ieee"``: the all-ones exponent holds +-Inf (mantissa 0) and NaN. Overflow default: Inf.
    - ``"fn"``: no Inf; only the all-ones code S.1..1.1..1 is NaN (OCP E4M3: max 448).
      Overflow and Inf inputs default to NaN, as ml_dtypes converts.
    - ``"fnuz"``: no Inf and no -0; the code 1000..0 is the single NaN; bias 2**(exp_bits-1) by
      default. -0 becomes +0. Overflow default: NaN.
    - ``"p3109"``: IEEE P3109 (interim report, as gfloat's ``format_info_p3109`` with the extended
      domain): no -0; the code 1000..0 is the single NaN, 0111..1 is +Inf and 1111..1 is -Inf; bias
      2**(exp_bits-1). Overflow default: Inf. (The finite domain is ``"fnuz"``.)
    - ``"none"``: every code is finite (OCP FP6/FP4). Overflow and Inf saturate to +-max. NaN input
      becomes a zero whose sign is the opposite of the NaN's sign bit (ml_dtypes' conversion;
      ``nan="raise"`` raises instead).

    ``overflow`` says what a finite value whose rounded magnitude exceeds ``max`` becomes, and what an
    Inf input becomes: ``"saturate"`` (+-max), ``"inf"`` or ``"nan"``. As in IEEE 754 and gfloat,
    directed roundings that point toward zero (toward_zero; down for positive values; up for
    negative ones) give +-max instead of Inf/NaN for finite inputs.

    ``subnormals=False``: codes with a zero exponent field all mean zero; a value below ``min_normal``
    rounds to 0 or +-min_normal by the rounding mode.
    """

    exp_bits: int
    man_bits: int
    bias: int | None = None
    subnormals: bool = True
    specials: str = "ieee"
    overflow: str | None = None
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        e = check_int("exp_bits", self.exp_bits, 1, 11)
        m = check_int("man_bits", self.man_bits, 0, 52)
        check_choice("specials", self.specials, SPECIALS)
        if not isinstance(self.subnormals, (bool, np.bool_)):
            raise TypeError(f"subnormals must be a bool, got {self.subnormals!r}")
        if self.bias is None:
            object.__setattr__(self, "bias", 2 ** (e - 1) if self.specials in ("fnuz", "p3109") else 2 ** (e - 1) - 1)
        check_int("bias", self.bias, -(2**11), 2**11)
        if self.overflow is None:
            object.__setattr__(self, "overflow", _DEFAULT_OVERFLOW[self.specials])
        check_choice("overflow", self.overflow, FLOAT_OVERFLOW)
        if self.specials == "ieee" and m == 0:
            raise ValueError("man_bits must be >= 1 with specials='ieee' (NaN needs a nonzero mantissa); use specials='fn' or 'none'")
        if self.overflow == "inf" and not self.has_inf:
            raise ValueError(f"overflow='inf' needs a format with Inf (specials 'ieee' or 'p3109'); got specials={self.specials!r}")
        if self.overflow == "nan" and self.specials == "none":
            raise ValueError("overflow='nan' needs a format with NaN; specials='none' has none (use 'saturate')")
        if self._max_biased_exponent() < 1:
            raise ValueError(
                f"exp_bits={e} with specials={self.specials!r} leaves no normal exponent; use more exp_bits"
            )
        emax = self._max_biased_exponent() - self.bias
        if emax > 1023 or self.emin - (m if self.subnormals else 0) < -1074 or self.emin > 1023:
            raise ValueError(
                f"bias={self.bias} puts the normal range 2**{self.emin}..2**{emax} outside float64's "
                f"(2**-1074..2**1023); choose a bias in [{emax + self.bias - 1023}, {1074 + 1 - m}]"
            )

    # -- structure -----------------------------------------------------------------------------
    def _max_biased_exponent(self) -> int:
        """Largest exponent field that holds finite normal values."""
        top = 2**self.exp_bits - 1
        if self.specials == "ieee" or (self.specials in ("fn", "p3109") and self.man_bits == 0):
            return top - 1
        return top

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def arithmetic(self) -> tuple:
        """The arithmetic its values need (the cost model prices operations by it)."""
        return ("float", self.exp_bits, self.man_bits)

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal value."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite value."""
        return self._max_biased_exponent() - self.bias

    @property
    def max(self) -> float:
        m = self.man_bits
        top_fraction = 2.0 - 2.0 ** (1 - m) if (self.specials in ("fn", "p3109") and m > 0) else 2.0 - 2.0**-m
        return math.ldexp(top_fraction, self.emax)

    @property
    def min(self) -> float:
        return -self.max

    @property
    def min_normal(self) -> float:
        return math.ldexp(1.0, self.emin)

    @property
    def min_subnormal(self) -> float | None:
        """Smallest positive subnormal, or None without subnormals."""
        return math.ldexp(1.0, self.emin - self.man_bits) if self.subnormals and self.man_bits > 0 else None

    @property
    def eps(self) -> float:
        return math.ldexp(1.0, -self.man_bits)

    @property
    def has_inf(self) -> bool:
        return self.specials in ("ieee", "p3109")

    @property
    def has_nan(self) -> bool:
        return self.specials != "none"

    @property
    def has_negative_zero(self) -> bool:
        return self.specials not in ("fnuz", "p3109")



    def _needs_float64(self) -> bool:
        return self.man_bits > 23 or self.emax > 127 or self.emin - (self.man_bits if self.subnormals else 0) < -149

    def code_values(self, codes: np.ndarray) -> np.ndarray:
        """float64 values of uint64 codes (the bit layout of lowprec.formats.bits)."""
        return _bits.float_values(codes, self.exp_bits, self.man_bits, self.bias, self.emin, self.subnormals,
                                  self.specials)

    def value_codes(self, values: np.ndarray) -> np.ndarray:
        """Codes (code_dtype) of float32 or float64 values that are values of this format, NaN and
        Inf included where it has them."""
        params = (self.exp_bits, self.man_bits, self.bias, self.emin, self.specials, self.code_dtype)
        fast = _bits.float_codes_fast(values, *params) if values.dtype in (np.float32, np.float64) else None
        return fast if fast is not None else _bits.float_codes(np.asarray(values, np.float64), *params)

    def __repr__(self) -> str:
        if self.name:
            return f"<FloatFormat {self.name}: e{self.exp_bits}m{self.man_bits} bias={self.bias}, {self.specials}, max={self.max:g}>"
        extra = "" if self.subnormals else ", subnormals=False"
        return (
            f"FloatFormat(exp_bits={self.exp_bits}, man_bits={self.man_bits}, bias={self.bias}, "
            f"specials={self.specials!r}, overflow={self.overflow!r}{extra})"
        )


@dataclass(frozen=True)
class FixedFormat(_FormatBase):
    """Two's complement (or unsigned) fixed point: value ``k * 2**-frac_bits`` for an integer k of
    ``int_bits + frac_bits`` bits; ``int_bits`` counts the sign bit when ``signed``. Integers are
    ``frac_bits=0``. There is no -0 (it becomes +0), no Inf and no NaN: Inf saturates, NaN becomes 0
    (ml_dtypes' int4 conversion; ``nan="raise"`` raises). ``overflow``: ``"saturate"`` or ``"wrap"``
    (modulo 2**bits, as integer hardware does).
    """

    int_bits: int
    frac_bits: int
    signed: bool = True
    overflow: str = "saturate"
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.signed, (bool, np.bool_)):
            raise TypeError(f"signed must be a bool, got {self.signed!r}")
        check_int("int_bits", self.int_bits, 1 if self.signed else 0, 64)
        check_int("frac_bits", self.frac_bits, 0, 64)
        if not 1 <= self.bits <= 64:
            raise ValueError(f"int_bits + frac_bits must be in [1, 64], got {self.bits}")
        check_choice("overflow", self.overflow, FIXED_OVERFLOW)

    @property
    def bits(self) -> int:
        return self.int_bits + self.frac_bits

    @property
    def arithmetic(self) -> tuple:
        """The arithmetic its values need: integers of its width (the cost model prices by it)."""
        return ("int", self.bits)

    @property
    def max(self) -> float:
        return math.ldexp(2 ** (self.bits - self.signed) - 1, -self.frac_bits)

    @property
    def min(self) -> float:
        return -math.ldexp(2 ** (self.bits - 1), -self.frac_bits) if self.signed else 0.0

    @property
    def min_normal(self) -> float:
        """Smallest positive value (fixed point has no subnormals: the same as ``eps``)."""
        return self.eps

    @property
    def min_subnormal(self) -> None:
        return None

    @property
    def eps(self) -> float:
        return math.ldexp(1.0, -self.frac_bits)

    has_inf = False
    has_nan = False
    has_negative_zero = False
    specials = "none"


    def _needs_float64(self) -> bool:
        return self.bits - self.signed > 24

    def code_values(self, codes: np.ndarray) -> np.ndarray:
        """float64 values of uint64 codes (two's complement or unsigned k of k * 2**-frac_bits)."""
        return _bits.fixed_values(codes, self.bits, self.frac_bits, self.signed)

    def value_codes(self, values: np.ndarray) -> np.ndarray:
        """Codes (code_dtype) of float64 values that are values of this format."""
        return _bits.fixed_codes(values, self.bits, self.frac_bits, self.signed, self.code_dtype)

    def __repr__(self) -> str:
        if self.name:
            return f"<FixedFormat {self.name}: {'' if self.signed else 'u'}q{self.int_bits}.{self.frac_bits}, {self.overflow}>"
        return (
            f"FixedFormat(int_bits={self.int_bits}, frac_bits={self.frac_bits}, signed={self.signed}, "
            f"overflow={self.overflow!r})"
        )


Format = Union[FloatFormat, FixedFormat]


def layout(fmt: Format) -> tuple[int, int, int]:
    """(m, emin, q_exp): the format seen as a float with unbounded exponent range, m significand bits
    after the point, normal values from 2**emin, a fixed quantum 2**(emin - m) below 2**emin, and
    q_exp the exponent of its smallest nonzero magnitude. Fixed point is such a float whose values
    all lie below its 'min normal' 2**emin, with quantum 2**-frac_bits. Both quantizers (C and the
    numpy reference) round by this description."""
    if isinstance(fmt, FixedFormat):
        # wrap-around needs the exact integer beyond the range too: an unbounded uniform quantum
        m = fmt.bits - int(fmt.signed) if fmt.overflow == "saturate" else 2048
        return m, m - fmt.frac_bits, -fmt.frac_bits
    q_exp = fmt.emin - fmt.man_bits if (fmt.subnormals and fmt.man_bits > 0) else fmt.emin
    return fmt.man_bits, fmt.emin, q_exp

def max_magnitudes(fmt: Format, dtype) -> tuple[float, float]:
    """The largest magnitudes of results (positive side, negative side): the format's, or, for a float
    format wider than the dtype, its largest value the dtype holds (the dtype's max may not be one)."""
    if isinstance(fmt, FixedFormat):
        return fmt.max, abs(fmt.min)  # abs: an unsigned min is 0.0, never -0.0
    info = np.finfo(dtype)
    top = fmt.max
    if top > float(info.max):  # all ones in fmt's mantissa at the dtype's top exponent
        top = math.ldexp(2.0 - 2.0**-fmt.man_bits, int(info.maxexp) - 1)
    return top, top


@lru_cache(maxsize=64)
def decode_table(fmt: Format) -> np.ndarray:
    """The value of every code of a format of at most 16 bits, in its decode_dtype (read-only)."""
    table = fmt.code_values(np.arange(2**fmt.bits, dtype=np.uint64)).astype(fmt.decode_dtype)
    table.flags.writeable = False
    return table


def check_codes(arr: np.ndarray, fmt: Format) -> None:
    """TypeError unless arr holds integers, ValueError unless they lie in [0, 2**bits)."""
    if arr.dtype.kind not in "iu":
        raise TypeError(f"codes must be an integer array, got {arr.dtype}")
    if arr.size and (arr.min() < 0 or (fmt.bits < 64 and arr.max() >= 2**fmt.bits)):
        raise ValueError(f"codes must be in [0, 2**{fmt.bits}) for {fmt}; got values in [{arr.min()}, {arr.max()}]")


def decoded(arr: np.ndarray, fmt: Format) -> np.ndarray:
    """The values (decode_dtype) of checked codes: a table lookup up to 16 bits."""
    if fmt.bits <= 16:
        return decode_table(fmt)[arr.astype(np.intp)]
    return fmt.code_values(arr.astype(np.uint64)).astype(fmt.decode_dtype)
