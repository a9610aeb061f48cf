"""Properties every format and mode must have, hypothesis-driven."""


import numpy as np
import pytest
from hypothesis import given, strategies as st

import lowprec
from lowprec.reference import largest_at_most
from lowprec.rounding import SYMMETRIC_MODES

from helpers import SMALL_FORMATS

NAMES = lowprec.formats.names("scalar") + ["q1.7", "q4.4", "uq4.4", "q8.8"]
MODES = lowprec.ROUNDING_MODES
DTYPES = [np.float32, np.float64]


def _inputs(fmt, data, dtype, n=64):
    hi = float(largest_at_most(min(fmt.max * 1.5, float(np.finfo(dtype).max) / 4), dtype))
    values = st.floats(-hi, hi, allow_nan=False, width=32 if dtype == np.float32 else 64)
    return np.array(data.draw(st.lists(values, min_size=1, max_size=n)), dtype)


@given(name=st.sampled_from(NAMES), mode=st.sampled_from(MODES), dtype=st.sampled_from(DTYPES), data=st.data())
def test_idempotent(name, mode, dtype, data):
    x = _inputs(lowprec.formats.get(name), data, dtype)
    q = lowprec.quantize(x, name, mode, seed=1)
    np.testing.assert_array_equal(lowprec.quantize(q, name, mode, seed=2), q)


@given(name=st.sampled_from(NAMES), mode=st.sampled_from([m for m in MODES if m != "stochastic"]),
       dtype=st.sampled_from(DTYPES), data=st.data())
def test_monotone(name, mode, dtype, data):
    x = np.sort(_inputs(lowprec.formats.get(name), data, dtype))
    q = lowprec.quantize(x, name, mode)
    q = q[~np.isnan(q)]
    assert np.all(q[1:] >= q[:-1])


def _neighbours(fmt, x):
    """The format's values just below and above each x (within range)."""
    lo = lowprec.quantize(x, fmt, "down").astype(np.float64)
    hi = lowprec.quantize(x, fmt, "up").astype(np.float64)
    return lo, hi


@given(name=st.sampled_from(NAMES), mode=st.sampled_from(MODES), dtype=st.sampled_from(DTYPES), data=st.data())
def test_error_bounds_and_sides(name, mode, dtype, data):
    fmt = lowprec.formats.get(name)
    x = _inputs(fmt, data, dtype)
    x = x[(x >= fmt.min) & (x <= fmt.max)]  # in range: no overflow rule involved
    q = lowprec.quantize(x, name, mode, seed=3).astype(np.float64)
    xd = x.astype(np.float64)
    lo, hi = _neighbours(fmt, x)
    assert np.all((lo <= xd) & (xd <= hi))
    assert np.all((q == lo) | (q == hi))  # one of the two neighbours: error < one spacing
    if mode.startswith("nearest"):
        assert np.all(np.abs(q - xd) <= (hi - lo) / 2)  # half a spacing
    if mode == "toward_zero":
        assert np.all(np.abs(q) <= np.abs(xd))
    if mode == "up":
        assert np.all(q >= xd)
    if mode == "down":
        assert np.all(q <= xd)


@given(name=st.sampled_from([n for n in NAMES if lowprec.formats.get(n).min < 0]),
       mode=st.sampled_from(SYMMETRIC_MODES), dtype=st.sampled_from(DTYPES), data=st.data())
def test_sign_symmetric(name, mode, dtype, data):
    fmt = lowprec.formats.get(name)
    x = np.abs(_inputs(fmt, data, dtype))
    x = x[x <= -fmt.min]  # fixed point is asymmetric beyond max
    x = x[x <= fmt.max]
    np.testing.assert_array_equal(lowprec.quantize(-x, name, mode), -lowprec.quantize(x, name, mode))


@given(name=st.sampled_from(NAMES), dtype=st.sampled_from(DTYPES), data=st.data())
def test_up_and_down_mirror(name, dtype, data):
    fmt = lowprec.formats.get(name)
    if fmt.min >= 0 or isinstance(fmt, lowprec.FixedFormat):
        return
    x = _inputs(fmt, data, dtype)
    np.testing.assert_array_equal(lowprec.quantize(-x, name, "up"), -lowprec.quantize(x, name, "down"))


@pytest.mark.parametrize("name", SMALL_FORMATS)
def test_encode_decode_round_trip_over_every_code(name):
    fmt = lowprec.formats.get(name)
    codes = fmt.codes()
    values = fmt.decode(codes)
    finite = np.isfinite(values)
    back = fmt.encode(values)
    assert np.array_equal(fmt.decode(back), values, equal_nan=True)
    # every finite code comes back, but for codes that alias another's value (the zeros that a
    # format without subnormals has in its zero exponent): those come back as the first such code
    signed_values = np.where(np.signbit(values), -1.0, 1.0) * np.abs(values)
    first = np.zeros(len(codes), bool)
    first[np.unique(np.stack([signed_values, np.signbit(values)]), axis=1, return_index=True)[1]] = True
    canonical = finite & first
    assert canonical.sum() >= len(fmt.values())
    np.testing.assert_array_equal(back[canonical], codes[canonical])
    for mode in lowprec.ROUNDING_MODES:
        np.testing.assert_array_equal(fmt.encode(values[canonical], mode, seed=1), codes[canonical])


@given(name=st.sampled_from(NAMES), mode=st.sampled_from(MODES), dtype=st.sampled_from(DTYPES), data=st.data())
def test_decode_of_encode_is_quantize(name, mode, dtype, data):
    fmt = lowprec.formats.get(name)
    x = _inputs(fmt, data, dtype)
    q = lowprec.quantize(x, name, mode, seed=11)
    d = fmt.decode(fmt.encode(x, mode, seed=11))
    assert np.array_equal(d.astype(np.float64), q.astype(np.float64), equal_nan=True)
