"""The inputs that test a quantizer: every boundary class of a format, labelled.

Classes (both signs where they have one): zero, negative zero, min subnormal, subnormal, min normal,
normal, max, tie (midpoint of two neighbours), near tie (one input-dtype step either side of a tie,
and, for float64 input, a step too small for float32 to see), between (other inputs between two
values), above max (between max and the
overflow threshold), overflow, underflow (below half the smallest nonzero value), inf, nan.
"""

from __future__ import annotations

import numpy as np

from ..formats import Format, as_format

CLASSES = ("zero", "negative zero", "min subnormal", "subnormal", "min normal", "normal", "max", "tie",
           "near tie", "between", "above max", "overflow", "underflow", "inf", "nan")


def _finite_positive_values(fmt: Format) -> np.ndarray:
    """The nonzero magnitudes of the format (of either sign: a 1-bit signed integer has only -1)."""
    v = fmt.values()
    return np.unique(np.abs(v[v != 0]))


def _magnitude_classes(fmt: Format, dtype) -> dict[str, np.ndarray]:
    """Nonnegative inputs of each class, before signs are added."""
    dtype = np.dtype(dtype)
    pos = _finite_positive_values(fmt)
    smallest, biggest = pos[0], pos[-1]
    step_top = biggest - pos[-2] if len(pos) > 1 else biggest - 0.0
    sub = pos[pos < fmt.min_normal]
    everything = np.concatenate([[0.0], pos])
    mids = (everything[:-1] + everything[1:]) / 2
    tiny = np.ldexp(np.abs(mids), -40)  # far below a float32 ulp
    near = [np.nextafter(mids.astype(dtype), dtype.type(np.inf)), np.nextafter(mids.astype(dtype), dtype.type(0))]
    if dtype == np.float64:
        near += [mids + tiny, mids - tiny]
    threshold = biggest + step_top / 2  # nearest rounding overflows from here
    classes = {
        "zero": np.array([0.0]),
        "min subnormal": np.array([smallest]) if len(sub) else np.array([]),
        "subnormal": sub[1:] if len(sub) > 1 else np.array([]),
        "min normal": np.array([fmt.min_normal]) if fmt.min_normal <= biggest else np.array([]),
        "normal": pos[(pos > fmt.min_normal) & (pos < biggest)],
        "max": np.array([biggest]),
        "tie": mids[mids > 0],
        "near tie": np.concatenate(near),
        "above max": np.array([biggest + step_top / 4, np.nextafter(threshold, 0), threshold]),
        "overflow": np.array([np.nextafter(threshold, np.inf), biggest * 2, biggest * 1e3]),
        "underflow": np.array([smallest / 4, smallest / 2, np.nextafter(smallest / 2, 0)]),
        "inf": np.array([np.inf]),
        "nan": np.array([np.nan]),
    }
    out = {}
    for name, values in classes.items():
        if name == "nan":  # bit patterns: a cast from float64 (or np.unique) would quieten and merge them
            out[name] = nan_patterns(dtype)
            continue
        with np.errstate(over="ignore"):
            cast = np.asarray(values, np.float64).astype(dtype)
        keep = np.isfinite(cast) | (name in ("inf", "nan"))
        if name in ("overflow", "above max"):
            keep &= cast > biggest
        if name == "underflow":
            keep &= cast > 0
        out[name] = np.unique(cast[keep])
    return out


def nan_patterns(dtype=np.float32) -> np.ndarray:
    """NaNs of a float dtype as bit patterns: quiet and signalling, the lowest and highest payloads,
    both signs (a quantizer must keep each a NaN, whatever it does with the payload)."""
    dtype = np.dtype(dtype)
    utype, mant = (np.uint32, 23) if dtype == np.float32 else (np.uint64, 52)
    width = 8 * dtype.itemsize
    exp = ((1 << (width - mant - 1)) - 1) << mant
    quiet = 1 << (mant - 1)
    payloads = [quiet, 1, quiet - 1, quiet | 1, (1 << mant) - 1]  # qNaN, sNaN low/high, qNaN low/high
    sign = 1 << (width - 1)
    return np.array([exp | p | s for s in (0, sign) for p in payloads], utype).view(dtype)


def labelled_inputs(fmt: Format | str, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, class label of each) covering every boundary class of a format of at most 16 bits,
    both signs; `dtype` is float32 or float64."""
    fmt = as_format(fmt)
    xs, labels = [], []
    for name, values in _magnitude_classes(fmt, dtype).items():
        signed = [values] if name in ("zero", "nan") else [values, -values]
        for v in signed:
            xs.append(v)
            labels += [name] * len(v)
    xs.append(np.array([-0.0], dtype))
    labels.append("negative zero")
    return np.concatenate(xs).astype(dtype), np.array(labels)


def classify(fmt: Format | str, x: float) -> str:
    """The boundary class of one input (see CLASSES)."""
    fmt = as_format(fmt)
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf"
    if x == 0:
        return "negative zero" if np.signbit(x) else "zero"
    a = abs(float(x))
    pos = _finite_positive_values(fmt)
    if a > pos[-1]:
        step_top = pos[-1] - pos[-2] if len(pos) > 1 else pos[-1]
        return "above max" if a <= pos[-1] + step_top / 2 else "overflow"
    if a < pos[0] / 2:
        return "underflow"
    i = np.searchsorted(pos, a)
    if i < len(pos) and pos[i] == a:
        if a == pos[0] and a < fmt.min_normal:
            return "min subnormal"
        if a == fmt.min_normal:
            return "min normal"
        if a == pos[-1]:
            return "max"
        return "subnormal" if a < fmt.min_normal else "normal"
    lo = pos[i - 1] if i > 0 else 0.0
    mid = (lo + pos[i]) / 2
    if a == mid:
        return "tie"
    # within a few float32 steps of the tie: the inputs that catch tie and double-rounding bugs
    return "near tie" if abs(a - mid) <= 4 * np.spacing(np.float32(mid)) else "between"
