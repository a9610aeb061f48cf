"""Scaled integer formats (the formats layer): binary (+-alpha), ternary (-w_n, 0, +w_p) and integer
affine (scale, zero point), per tensor or per channel, and the published rules that fit their
parameters to a weight tensor. Rounding to them lives in lowprec.scaled.

Per-channel parameters are 1-D arrays with one entry per index of ``axis`` of the quantized arrays
(for weights of shape (out, in, ...), axis=0: one per output channel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import check_int
from .registry import register
from .scalar import PARAM_BITS

__all__ = ["BinaryFormat", "TernaryFormat", "IntAffineFormat", "SCALED_KINDS"]


def _positive(name: str, value: Any) -> np.ndarray | float:
    """A positive finite scalar or 1-D array (held read-only)."""
    a = np.array(value, dtype=np.float64)
    if a.ndim > 1:
        raise ValueError(f"{name} must be a number or a 1-D array (one per channel), got shape {a.shape}")
    if a.size == 0 or not np.isfinite(a).all() or (a <= 0).any():
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    a.flags.writeable = False
    return float(a) if a.ndim == 0 else a


def _check_axis_param(axis: Any) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    return int(axis)


@dataclass(frozen=True, eq=False)
class BinaryFormat:
    """Values +-alpha (alpha per tensor or per channel along ``axis``); x >= 0 maps to +alpha.
    Rounding "nearest_even" (any deterministic mode) is the sign; "stochastic" is BinaryConnect's:
    +alpha with probability hard_sigmoid(x / alpha) = clip((x / alpha + 1) / 2, 0, 1). Codes: 1 for
    +alpha, 0 for -alpha (bitmac.pack_binary's bits)."""

    alpha: Any = 1.0
    axis: int = 0
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _positive("alpha", self.alpha))
        object.__setattr__(self, "axis", _check_axis_param(self.axis))

    bits = 1
    arithmetic = ("binary",)  # XNOR and popcount (the cost model prices by it)

    def stored_bits(self, numel: int) -> int:
        """Bits of numel signs and the scales."""
        return numel + np.size(self.alpha) * PARAM_BITS


@dataclass(frozen=True, eq=False)
class TernaryFormat:
    """Values -w_n, 0, +w_p: x > delta maps to +w_p, x < -delta to -w_n, the rest to 0 (each parameter
    per tensor or per channel along ``axis``). Codes (2 bits, bitmac.pack_ternary's planes): 0 for 0,
    1 for +w_p, 3 for -w_n."""

    w_p: Any
    w_n: Any
    delta: Any
    axis: int = 0
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for pname in ("w_p", "w_n", "delta"):
            object.__setattr__(self, pname, _positive(pname, getattr(self, pname)))
        object.__setattr__(self, "axis", _check_axis_param(self.axis))

    bits = 2
    arithmetic = ("ternary",)  # sign and zero planes (the cost model prices by it)

    def stored_bits(self, numel: int) -> int:
        """Bits of numel 2-bit codes and the per-channel parameters."""
        return 2 * numel + 3 * max(np.size(self.w_p), np.size(self.w_n), np.size(self.delta)) * PARAM_BITS


@dataclass(frozen=True, eq=False)
class IntAffineFormat:
    """b-bit integers q in [qmin, qmax] with value (q - zero_point) * scale: signed [-2**(b-1),
    2**(b-1) - 1] or unsigned [0, 2**b - 1]; ``narrow`` drops the lowest code (signed: symmetric
    [-(2**(b-1) - 1), 2**(b-1) - 1]; unsigned: [1, 2**b - 1]). scale and zero_point per tensor or per
    channel along ``axis``. q = clamp(round(x / scale) + zero_point): x / scale rounded once in the
    caller's mode, the value (q - zero_point) * scale rounded once to x's dtype."""

    bits: int
    scale: Any
    zero_point: Any = 0
    signed: bool = True
    narrow: bool = False
    axis: int = 0
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_int("bits", self.bits, 2 if self.signed else 1, 32)
        object.__setattr__(self, "scale", _positive("scale", self.scale))
        zp = np.array(self.zero_point)
        if zp.ndim > 1 or zp.dtype.kind not in "iu" and not (zp.dtype.kind == "f" and np.all(zp == np.round(zp))):
            raise ValueError(f"zero_point must be an integer or a 1-D array of integers, got {self.zero_point!r}")
        zp = zp.astype(np.int64)
        if (zp < self.qmin).any() or (zp > self.qmax).any():
            raise ValueError(f"zero_point must lie in [{self.qmin}, {self.qmax}] for this format, got {self.zero_point!r}")
        zp.flags.writeable = False
        object.__setattr__(self, "zero_point", int(zp) if zp.ndim == 0 else zp)
        object.__setattr__(self, "axis", _check_axis_param(self.axis))

    @property
    def arithmetic(self) -> tuple:
        """Integer arithmetic of its width (the cost model prices by it)."""
        return ("int", self.bits)

    def stored_bits(self, numel: int) -> int:
        """Bits of numel integers and the scales and zero points."""
        return numel * self.bits + max(np.size(self.scale), np.size(self.zero_point)) * 2 * PARAM_BITS

    @property
    def qmin(self) -> int:
        low = -(2 ** (self.bits - 1)) if self.signed else 0
        return low + int(self.narrow)

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def code_dtype(self) -> np.dtype:
        width = 8 if self.bits <= 8 else 16 if self.bits <= 16 else 32
        return np.dtype(f"{'i' if self.signed else 'u'}{width // 8}")

    @property
    def per_channel(self) -> bool:
        return np.ndim(self.scale) == 1 or np.ndim(self.zero_point) == 1


SCALED_KINDS = (BinaryFormat, TernaryFormat, IntAffineFormat)


for _kind in SCALED_KINDS:
    register(_kind)
