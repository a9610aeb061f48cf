"""Hypothesis strategies for number formats (needs the hypothesis package)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .. import formats as _formats
from ..formats import FixedFormat, FloatFormat, Format, as_format
from .inputs import _magnitude_classes


def formats(*, named: bool = True, max_exp_bits: int = 8, max_man_bits: int = 10, max_fixed_bits: int = 16,
            specials=("ieee", "fn", "fnuz", "p3109", "none")) -> st.SearchStrategy[Format]:
    """Formats: the named ones (if `named`), FloatFormats with 2..max_exp_bits exponent and
    0..max_man_bits mantissa bits of every `specials` kind, with and without subnormals and
    saturation, and FixedFormats of up to max_fixed_bits bits, signed or not, saturating or wrapping."""

    def make_float(e, m, kind, subnormals, saturate):
        if kind == "ieee" and m == 0:
            m = 1
        return FloatFormat(e, m, specials=kind, subnormals=subnormals, overflow="saturate" if saturate else None)

    def make_fixed(total, frac, signed, wrap):
        frac = min(frac, total - int(signed))
        return FixedFormat(total - frac, frac, signed=signed, overflow="wrap" if wrap else "saturate")

    floats = st.builds(make_float, st.integers(2, max_exp_bits), st.integers(0, max_man_bits),
                       st.sampled_from(specials), st.booleans(), st.booleans())
    fixed = st.builds(make_fixed, st.integers(2, max_fixed_bits), st.integers(0, max_fixed_bits),
                      st.booleans(), st.booleans())
    parts = [floats, fixed]
    if named:
        parts.insert(0, st.sampled_from(_formats.names("scalar")).map(_formats.get))
    return st.one_of(*parts)


_VALUE_CLASSES = ("zero", "min subnormal", "subnormal", "min normal", "normal", "max")


def values_of(fmt: Format | str, *, dtype=np.float64) -> st.SearchStrategy[float]:
    """Representable finite values of a format of at most 16 bits, weighted to its boundaries: zero
    (and -0 where the format has it), the smallest subnormal, subnormals, the min normal, max, and
    the normal values next to ties of the next format down; both signs."""
    fmt = as_format(fmt)
    classes = _magnitude_classes(fmt, dtype)
    groups = [classes[c] for c in _VALUE_CLASSES if len(classes[c])]
    magnitude = st.one_of(*[st.sampled_from(sorted(g.tolist())) for g in groups])
    members = set(fmt.values().tolist())
    # a magnitude of an asymmetric format (two's complement -128) exists with one sign only
    signed = st.tuples(magnitude, st.booleans()).map(
        lambda t: (-t[0] if t[1] else t[0]) if (-t[0] if t[1] else t[0]) in members else (t[0] if t[1] else -t[0]))
    if fmt.has_negative_zero:
        signed = st.one_of(signed, st.just(-0.0))
    return signed


_INPUT_CLASSES = ("tie", "near tie", "min subnormal", "min normal", "max", "above max", "overflow",
                  "underflow", "subnormal", "normal")


def floats_near(fmt: Format | str, *, width: int = 32, specials: bool = True) -> st.SearchStrategy[float]:
    """Inputs at and around the ties and boundaries of a format of at most 16 bits: ties, their
    neighbours, the extremes, overflow and underflow thresholds, each nudged by 0-2 steps of the
    input width (32 or 64 bits); with `specials`, also 0, -0, +-Inf and NaN."""
    fmt = as_format(fmt)
    dtype = np.float32 if width == 32 else np.float64
    classes = _magnitude_classes(fmt, dtype)
    groups = [classes[c] for c in _INPUT_CLASSES if len(classes[c])]
    base = st.one_of(*[st.sampled_from(sorted(g.tolist())) for g in groups])

    def nudge(args):
        value, steps, negative = args
        v = dtype(value)
        for _ in range(abs(steps)):
            v = np.nextafter(v, dtype(np.inf) if steps > 0 else dtype(0))
        return float(-v if negative else v)

    out = st.tuples(base, st.integers(-2, 2), st.booleans()).map(nudge)
    if specials:
        out = st.one_of(out, st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan]))
    return out


def codes(fmt: Format | str) -> st.SearchStrategy[int]:
    """Codes of a format: integers in [0, 2**bits)."""
    fmt = as_format(fmt)
    return st.integers(0, 2**fmt.bits - 1)
