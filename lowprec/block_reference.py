"""The reference for E8M0 block-scaled (MX) quantization: plain Python and numpy, one block at a time,
with exact rationals for the scale rules. The tests hold lowprec.blockscaled's C path to it."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .formats.block import E8M0, E8M0_MAX, E8M0_MIN, BlockFormat
from .reference import quantize_reference


def _floor_log2(v: Fraction) -> int:
    """floor(log2 v) of a positive rational, exactly."""
    e = v.numerator.bit_length() - v.denominator.bit_length()
    return e if Fraction(2) ** e <= v else e - 1


def scale_exponent(block: np.ndarray, fmt: BlockFormat) -> int | None:
    """The e8m0 exponent of one block by fmt.rule, or None (a NaN scale) if it holds NaN or Inf."""
    a = np.abs(np.asarray(block, np.float64))
    if not np.isfinite(a).all():
        return None
    amax = Fraction(float(a.max()))
    if amax == 0:
        return E8M0_MIN
    emax = fmt.element_emax
    fl = _floor_log2(amax)
    if fmt.rule == "floor":
        e = fl - emax
    elif fmt.rule == "ceil":
        e = fl + (amax != Fraction(2) ** fl) - emax
    elif fmt.rule == "rceil":  # the smallest e with amax / 2**e <= element max
        m = Fraction(fmt.element.max)
        e = _floor_log2(amax / m)
        while amax / Fraction(2) ** e > m:
            e += 1
    else:  # "even": amax rounded, ties away, to 1 + precision significant bits
        step = Fraction(2) ** (fl - fmt.element_precision)
        rounded = math.floor(amax / step + Fraction(1, 2)) * step
        e = _floor_log2(rounded) - emax
    return min(max(e, E8M0_MIN), E8M0_MAX)


def quantize_blocks_reference(blocks: np.ndarray, fmt: BlockFormat, rounding: str = "nearest_even", *,
                              rbits: int | None = None, seed: int | None = None) -> tuple[np.ndarray, list]:
    """(values, exponents) of (nblocks, block) float32/float64 blocks of an e8m0 format: each element
    x becomes 2**e * round_element(x / 2**e) (NaN throughout a block whose scale is NaN).

    x / 2**e is formed in float64 and taken to the input dtype; where that would fall below the dtype's
    smallest normal it becomes that normal with x's sign, which every mode rounds as the true quotient
    (see csrc/block_impl.h), so the element rounding and its random draws are those of
    reference.quantize_reference over the array of quotients."""
    assert fmt.scale == E8M0
    blocks = np.asarray(blocks)
    dtype = blocks.dtype
    exps = [scale_exponent(b, fmt) for b in blocks]
    e = np.array([0 if v is None else v for v in exps], np.int64)[:, None]
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        y = np.ldexp(blocks.astype(np.float64), -e)
    tiny = float(np.finfo(dtype).tiny)
    y = np.where((np.abs(y) < tiny) & (blocks != 0), np.copysign(tiny, blocks.astype(np.float64)), y)
    q = quantize_reference(y.astype(dtype), fmt.element, rounding, rbits=rbits, seed=seed)
    values = np.ldexp(q.astype(np.float64), e)
    nan_block = np.array([v is None for v in exps])[:, None]
    values = np.where(nan_block, np.nan, values)
    return values.astype(dtype), exps
