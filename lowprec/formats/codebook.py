"""Codebook formats (the formats layer): every value is one entry of a sorted table of K values, per
tensor or one table per channel; codes are table indices. Rounding to them lives in lowprec.lut."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .registry import register
from .scalar import PARAM_BITS

__all__ = ["LUTFormat", "LUT_MODES"]

LUT_MODES = ("nearest_even", "nearest_away", "up", "down", "stochastic")
MAX_ENTRIES = 2**16


def _check_codebook(values: Any) -> np.ndarray:
    cb = np.array(values, dtype=np.float64, copy=True)
    if cb.ndim not in (1, 2):
        raise ValueError(f"codebook must be 1-D (per tensor) or 2-D (one row per channel), got shape {cb.shape}")
    if cb.shape[-1] == 0:
        raise ValueError("codebook is empty: it needs at least one entry")
    if cb.shape[-1] > MAX_ENTRIES:
        raise ValueError(f"codebook has {cb.shape[-1]} entries; at most {MAX_ENTRIES} (16-bit codes)")
    if not np.isfinite(cb).all():
        raise ValueError("codebook must hold finite values (found NaN or Inf)")
    cb = np.sort(cb, axis=-1) + 0.0  # + 0.0: -0 and 0 are one entry
    if (np.diff(cb, axis=-1) == 0).any():
        raise ValueError("codebook has duplicate entries; each value must appear once")
    cb.flags.writeable = False
    return cb


@dataclass(frozen=True, eq=False)
class LUTFormat:
    """A codebook of K sorted, distinct, finite values (1-D), or one such row per channel (2-D, shape
    (channels, K)) with the channel ``axis`` of the arrays it quantizes."""

    codebook: Any
    axis: int = 0
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codebook", _check_codebook(self.codebook))
        if isinstance(self.axis, bool) or not isinstance(self.axis, (int, np.integer)):
            raise TypeError(f"axis must be an int, got {self.axis!r}")

    @property
    def entries(self) -> int:
        return self.codebook.shape[-1]

    @property
    def bits(self) -> int:
        """Code width: ceil(log2 K) (at least 1)."""
        return max(1, math.ceil(math.log2(self.entries)))

    @property
    def per_channel(self) -> bool:
        return self.codebook.ndim == 2

    @property
    def arithmetic(self) -> tuple:
        """Products by table lookup: the table's side (the cost model prices a read)."""
        return ("lut", self.entries)

    def stored_bits(self, numel: int) -> int:
        """Bits of numel codes and the codebook."""
        return numel * self.bits + self.codebook.size * PARAM_BITS

    @property
    def code_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits <= 8 else np.uint16)

    max = property(lambda self: float(np.max(self.codebook)))
    min = property(lambda self: float(np.min(self.codebook)))
    has_inf = has_nan = False

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.codebook.shape))
        return f"<LUTFormat {self.name + ': ' if self.name else ''}{shape} entries, {self.bits}-bit codes>"


LOG_DOMAINS = ("log", "linear")


class LogFormat(LUTFormat):
    """Logarithmic format (Miyashita, Lee, Murmann 2016): 0 and +-2**(e / k) for the integers e in
    [k * fsr - M + 1, k * fsr], M = 2**(bits - 1) - 1 nonzero magnitudes when signed (2**bits - 1
    unsigned): base 2 for k = 1, base sqrt(2) for k = 2; the largest magnitude is 2**fsr. Codes are the
    indices of the sorted values (2**bits - 1 of them signed: one zero).

    ``domain="log"`` (the paper's rule) rounds log2|x| to the nearest multiple of 1/k: the boundary
    between neighbours is their geometric mean, and magnitudes below 2**((e_min - 1/2) / k) become 0.
    ``domain="linear"`` rounds to the nearest value. Directed modes ("up", "down") are the same in both;
    "stochastic" interpolates linearly. Values 2**(e / k) that are irrational are held rounded to
    float64 (and to x's dtype in results); the log-domain boundaries are exact.
    """

    def __init__(self, bits: int, k: int = 1, fsr: int = 0, *, signed: bool = True, domain: str = "log",
                 name: str | None = None) -> None:
        for pname, v, lo, hi in (("bits", bits, 2 if signed else 1, 16), ("k", k, 1, 16), ("fsr", fsr, -1000, 1000)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{pname} must be an int, got {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"{pname} must be in [{lo}, {hi}], got {v}")
        if domain not in LOG_DOMAINS:
            raise ValueError(f"domain must be one of {', '.join(map(repr, LOG_DOMAINS))}; got {domain!r}")
        levels = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
        e_top = k * fsr
        exps = np.arange(e_top - levels + 1, e_top + 1)
        if exps[0] / k < -1074 or fsr > 1023:
            raise ValueError(f"bits={bits}, k={k}, fsr={fsr} reach beyond float64's range")
        mags = np.exp2(exps / k)
        book = np.concatenate([-mags[::-1], [0.0], mags]) if signed else np.concatenate([[0.0], mags])
        for attr, v in (("log_bits", int(bits)), ("k", int(k)), ("fsr", int(fsr)), ("signed", bool(signed)),
                        ("domain", domain), ("e_min", int(exps[0]))):
            object.__setattr__(self, attr, v)
        object.__setattr__(self, "codebook", book)
        object.__setattr__(self, "axis", 0)
        object.__setattr__(self, "name", name)
        self.__post_init__()

    def __repr__(self) -> str:
        return (f"LogFormat(bits={self.log_bits}, k={self.k}, fsr={self.fsr}, signed={self.signed}, "
                f"domain={self.domain!r})")

    @property
    def arithmetic(self) -> tuple:
        """Products as exponent additions (the cost model prices an adder of log_bits - 1 bits)."""
        return ("log", self.log_bits)

    def __reduce__(self):
        return (_make_log_format, (self.log_bits, self.k, self.fsr, self.signed, self.domain))


def _make_log_format(bits, k, fsr, signed, domain):
    return LogFormat(bits, k, fsr, signed=signed, domain=domain)


register(LUTFormat)
register(LogFormat)
