"""Number formats: what values exist.

A format is an immutable value object (``FloatFormat``, ``FixedFormat``) that answers ``bits``,
``max``, ``min``, ``min_normal``, ``min_subnormal``, ``eps``, ``has_inf``, ``has_nan`` and, for
formats of at most 16 bits, ``values()`` and ``codes()``. Named formats are defined once, in the
``*.toml`` files of the ``formats`` folder shipped with the package; ``get(name)`` reads them and
``names()`` lists them. ``q<int>.<frac>`` (signed) and ``uq<int>.<frac>`` (unsigned) fixed-point
names are parsed on request.

This module is the bottom layer of lowprec: it imports nothing else of the package at import time.
``encode`` needs the rounding kernels, so ``FloatFormat.encode``/``FixedFormat.encode`` import
``lowprec.codec`` when they are called.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Union

import numpy as np

__all__ = ["FloatFormat", "FixedFormat", "Format", "get", "names", "as_format", "source", "layout"]

SPECIALS = ("ieee", "fn", "fnuz", "p3109", "none")
FLOAT_OVERFLOW = ("saturate", "inf", "nan")
FIXED_OVERFLOW = ("saturate", "wrap")
_DEFAULT_OVERFLOW = {"ieee": "inf", "fn": "nan", "fnuz": "nan", "p3109": "inf", "none": "saturate"}


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return int(value)


def _check_choice(name: str, value: Any, allowed: tuple) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def _code_dtype(bits: int) -> type:
    return np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else np.uint32 if bits <= 32 else np.uint64


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
        v = self.decode(self.codes()).astype(np.float64)
        v = v[np.isfinite(v)]
        return np.unique(v + 0.0)  # +0.0 folds -0 into 0

    def encode(self, x, rounding: str = "nearest_even", **kwargs) -> np.ndarray:
        """Round ``x`` to this format and return its unsigned integer codes (see ``lowprec.encode``)."""
        from .codec import encode

        return encode(x, self, rounding, **kwargs)

    def decode(self, codes) -> np.ndarray:
        """Values of the given codes (float32, or float64 where float32 cannot hold the format)."""
        from .codec import decode

        return decode(codes, self)

    @property
    def decode_dtype(self) -> np.dtype:
        """float32 when every value of the format is a float32, else float64."""
        return np.dtype(np.float64 if self._needs_float64() else np.float32)


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
        e = _check_int("exp_bits", self.exp_bits, 1, 11)
        m = _check_int("man_bits", self.man_bits, 0, 52)
        _check_choice("specials", self.specials, SPECIALS)
        if not isinstance(self.subnormals, (bool, np.bool_)):
            raise TypeError(f"subnormals must be a bool, got {self.subnormals!r}")
        if self.bias is None:
            object.__setattr__(self, "bias", 2 ** (e - 1) if self.specials in ("fnuz", "p3109") else 2 ** (e - 1) - 1)
        _check_int("bias", self.bias, -(2**11), 2**11)
        if self.overflow is None:
            object.__setattr__(self, "overflow", _DEFAULT_OVERFLOW[self.specials])
        _check_choice("overflow", self.overflow, FLOAT_OVERFLOW)
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
        _check_int("int_bits", self.int_bits, 1 if self.signed else 0, 64)
        _check_int("frac_bits", self.frac_bits, 0, 64)
        if not 1 <= self.bits <= 64:
            raise ValueError(f"int_bits + frac_bits must be in [1, 64], got {self.bits}")
        _check_choice("overflow", self.overflow, FIXED_OVERFLOW)

    @property
    def bits(self) -> int:
        return self.int_bits + self.frac_bits

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

# -- the named formats -------------------------------------------------------------------------
_KINDS = {"float": FloatFormat, "fixed": FixedFormat}
_Q_NAME = re.compile(r"^(u?)q(\d+)\.(\d+)$")


def _load_file(text: str, filename: str) -> dict[str, dict]:
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"format file {filename}: not valid TOML ({exc})") from None
    out = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise ValueError(f"format file {filename}: [{name}] must be a table")
        if not entry.get("source"):
            raise ValueError(f"format file {filename}: [{name}] has no 'source' (every format cites one)")
        kind = entry.get("kind")
        if kind not in _KINDS and kind != "block":
            raise ValueError(f"format file {filename}: [{name}] kind must be one of {sorted(_KINDS) + ['block']}, got {kind!r}")
        out[name] = entry
    return out


@lru_cache(maxsize=1)
def _registry() -> dict[str, dict]:
    entries: dict[str, dict] = {}
    folder = resources.files("lowprec.format_data")
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            for name, entry in _load_file(item.read_text(encoding="utf-8"), item.name).items():
                if name in entries:
                    raise ValueError(f"format {name!r} is defined twice (second time in {item.name})")
                entries[name] = entry
    return entries


def _kind(kind: str) -> type:
    if kind == "block":  # defined beside, on top of the element formats of this module
        from .block_formats import BlockFormat

        return BlockFormat
    return _KINDS[kind]


def _build(name: str, entry: dict) -> Format:
    params = {k: v for k, v in entry.items() if k not in ("kind", "source", "notes")}
    try:
        return _kind(entry["kind"])(name=name, **params)
    except TypeError as exc:
        raise ValueError(f"format {name!r}: bad parameters in its definition ({exc})") from None


NAME_KINDS = ("float", "fixed", "block", "scalar")


def names(kind: str | None = None) -> list[str]:
    """Names of the formats defined in the shipped ``formats/*.toml`` files, sorted; ``kind`` keeps
    those of one kind: "float", "fixed", "block" (block-scaled) or "scalar" (float and fixed)."""
    if kind is None:
        return sorted(_registry())
    _check_choice("kind", kind, NAME_KINDS)
    wanted = ("float", "fixed") if kind == "scalar" else (kind,)
    return sorted(n for n, entry in _registry().items() if entry["kind"] in wanted)


def source(name: str) -> str:
    """The citation a named format's definition gives."""
    return _registry()[get(name).name]["source"]


@lru_cache(maxsize=None)
def get(name: str) -> Format:
    """The named format (see ``names()``), or a parsed ``q<int>.<frac>`` / ``uq<int>.<frac>``."""
    if not isinstance(name, str):
        raise TypeError(f"format name must be a str, got {type(name).__name__}")
    entry = _registry().get(name)
    if entry is not None:
        return _build(name, entry)
    match = _Q_NAME.match(name)
    if match:
        unsigned, i, f = match.groups()
        return FixedFormat(int(i), int(f), signed=not unsigned, name=name)
    close = difflib.get_close_matches(name, names(), n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"unknown format name {name!r}{hint} (known: lowprec.formats.names(), or q<int>.<frac> / uq<int>.<frac>)"
    )


def as_format(fmt: Any) -> Format:
    """Accept a format object or a name; everything in lowprec takes formats through this."""
    if isinstance(fmt, (FloatFormat, FixedFormat)):
        return fmt
    if isinstance(fmt, str):
        return get(fmt)
    from .block_formats import BlockFormat
    from .codebook_formats import LUTFormat
    from .scaled_formats import SCALED_KINDS

    if isinstance(fmt, (BlockFormat, LUTFormat) + SCALED_KINDS):
        return fmt
    raise TypeError(f"fmt must be a format name (str), a FloatFormat/FixedFormat or a BlockFormat, got {type(fmt).__name__}")


def as_scalar_format(fmt: Any, name: str = "fmt") -> Format:
    """as_format, for the places that take one value per element (not a block-scaled format)."""
    f = as_format(fmt)
    if not isinstance(f, (FloatFormat, FixedFormat)):
        raise TypeError(f"{name} must be a float or fixed-point format; {f!r} is block-scaled "
                        f"(quantize/encode/decode take it)")
    return f
