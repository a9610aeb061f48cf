"""Shared test helpers: bit-level comparison and boundary inputs of a format."""

import numpy as np

import lowprec

ML_DTYPES_NAMES = {
    "fp8_e4m3fn": "float8_e4m3fn",
    "fp8_e4m3fnuz": "float8_e4m3fnuz",
    "fp8_e5m2": "float8_e5m2",
    "fp8_e5m2fnuz": "float8_e5m2fnuz",
    "fp8_e4m3": "float8_e4m3",
    "fp8_e3m4": "float8_e3m4",
    "fp6_e2m3fn": "float6_e2m3fn",
    "fp6_e3m2fn": "float6_e3m2fn",
    "fp4_e2m1fn": "float4_e2m1fn",
    "bf16": "bfloat16",
}

SMALL_FORMATS = [n for n in lowprec.formats.names() if lowprec.formats.get(n).bits <= 16] + [
    "q1.7", "q4.4", "uq4.4", "q8.8",
]


def assert_same(actual, expected, context=""):
    """Bit-exact equality of float arrays, any NaN equal to any NaN, signs of zeros compared."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape
    both_nan = np.isnan(actual) & np.isnan(expected)
    ok = both_nan | ((actual == expected) & (np.signbit(actual) == np.signbit(expected)))
    if not ok.all():
        i = np.flatnonzero(~ok.ravel())[:5]
        raise AssertionError(
            f"{context}: {int((~ok).sum())} mismatches; first at {i}: got {actual.ravel()[i]!r}, "
            f"expected {expected.ravel()[i]!r}"
        )


def boundary_inputs(fmt, dtype=np.float32) -> np.ndarray:
    """Every value of a <=16-bit format, every midpoint (tie) between neighbours, the dtype
    neighbours of each, the overflow threshold and beyond, and the specials; both signs."""
    fmt = lowprec.formats.as_format(fmt)
    v = fmt.values()
    v = np.concatenate([v, [v[-1] + (v[-1] - v[-2]), v[0] - (v[1] - v[0])]])  # one step past each end
    v = np.unique(v)
    mids = (v[:-1] + v[1:]) / 2
    pts = np.concatenate([v, mids]).astype(dtype)
    pts = pts[np.isfinite(pts)]
    near = np.concatenate([pts, np.nextafter(pts, dtype(np.inf)), np.nextafter(pts, dtype(-np.inf))])
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, np.finfo(dtype).max,
                         np.finfo(dtype).smallest_subnormal, np.finfo(dtype).tiny], dtype)
    out = np.concatenate([near, -near, specials, -specials])
    return out.astype(dtype)


def random_floats(rng, n, dtype=np.float32, scale_exp=(-30, 30)) -> np.ndarray:
    """A mix of random bit patterns (every exponent) and scaled normals (the common range)."""
    if dtype == np.float32:
        bits = rng.integers(0, 2**32, n // 2, dtype=np.uint64).astype(np.uint32).view(np.float32)
    else:
        bits = rng.integers(-(2**63), 2**63 - 1, n // 2, dtype=np.int64).view(np.float64)
    normal = rng.standard_normal(n - n // 2) * np.exp2(rng.integers(*scale_exp, n - n // 2))
    return np.concatenate([bits, normal.astype(dtype)])
