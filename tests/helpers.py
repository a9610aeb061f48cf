"""Shared test helpers: bit-level comparison and boundary inputs of a format."""

import numpy as np

import lowprec
from lowprec.testing import labelled_inputs

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

SMALL_FORMATS = [n for n in lowprec.formats.names("scalar") if lowprec.formats.get(n).bits <= 16] + [
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
    """Every boundary class of a <=16-bit format (lowprec.testing.labelled_inputs), plus every value
    and both dtype neighbours of it, and the dtype's extremes."""
    fmt = lowprec.formats.as_format(fmt)
    labelled, _ = labelled_inputs(fmt, dtype)
    v = fmt.values().astype(dtype)
    near = np.concatenate([v, np.nextafter(v, dtype(np.inf)), np.nextafter(v, dtype(-np.inf))])
    info = np.finfo(dtype)
    extremes = np.array([info.max, info.smallest_subnormal, info.tiny], dtype)
    return np.concatenate([labelled, near, -near, extremes, -extremes]).astype(dtype)


def random_floats(rng, n, dtype=np.float32, scale_exp=(-30, 30)) -> np.ndarray:
    """A mix of random bit patterns (every exponent) and scaled normals (the common range)."""
    if dtype == np.float32:
        bits = rng.integers(0, 2**32, n // 2, dtype=np.uint64).astype(np.uint32).view(np.float32)
    else:
        bits = rng.integers(-(2**63), 2**63 - 1, n // 2, dtype=np.int64).view(np.float64)
    normal = rng.standard_normal(n - n // 2) * np.exp2(rng.integers(*scale_exp, n - n // 2))
    return np.concatenate([bits, normal.astype(dtype)])


def need_triton():
    """Skip the calling test module where triton is missing, but never under CI (which installs it
    with the test extra): a missing triton there is a failure."""
    import os

    import pytest

    try:
        import triton  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("triton is not installed (pip install 'lowprec[gpu]')", allow_module_level=True)
