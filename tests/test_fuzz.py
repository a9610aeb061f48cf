"""Fuzzing the C entry points through their Python wrappers: arbitrary dtypes, shapes (0 and 1 included),
negative and overlapping strides, non-contiguous views, byte-swapped and read-only arrays, every format
kind and mode. Checks: no crash, nothing written outside `out`, the result equal to the pure-numpy
reference. The default run is bounded; ``-m fuzz`` runs the long one. Also: thread safety and a
2**31-element sum."""

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowprec
from lowprec.block_reference import quantize_blocks_reference
from lowprec.reference import quantize_reference
from lowprec.testing import strategies as lst

from helpers import assert_same
from test_codebooks import _exact_choice

SHORT = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def awkward_arrays(draw, dtype=None):
    """A float array in an awkward layout: a strided, reversed or transposed view, maybe byte-swapped
    or read-only, of shape with zeros and ones."""
    dtype = draw(st.sampled_from([np.float32, np.float64])) if dtype is None else dtype
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=7))
    base = draw(hnp.arrays(dtype, tuple(2 * s + 1 for s in shape),
                           elements=st.floats(width=32 if dtype == np.float32 else 64)))
    view = base[tuple(slice(None, None, 2) for _ in shape)]  # strided
    if draw(st.booleans()):
        view = view[::-1]  # negative stride
    if view.ndim > 1 and draw(st.booleans()):
        view = view.T
    if draw(st.booleans()):
        view = view.astype(view.dtype.newbyteorder(">"))
    if draw(st.booleans()):
        view = view.copy()
        view.flags.writeable = False
    return view


def _quantize_case(fmt, mode, x):
    keep = x.copy()
    got = lowprec.quantize(x, fmt, mode, seed=3)
    assert_same(x, keep)  # the input is never written
    native = np.ascontiguousarray(x.astype(x.dtype.newbyteorder("=")))
    try:
        expected = quantize_reference(native, fmt, mode, seed=3)
    except ValueError:
        return
    assert_same(got.astype(native.dtype), expected, f"{fmt} {mode}")


def _quantize_property(fmt, mode, x):
    try:
        _quantize_case(fmt, mode, x)
    except ValueError as exc:  # a format float32 cannot hold is refused, clearly
        assert "float64 input" in str(exc) or "no nonzero value" in str(exc)


@SHORT
@given(lst.formats(), st.sampled_from(lowprec.ROUNDING_MODES), awkward_arrays())
def test_quantize_any_layout_equals_the_reference(fmt, mode, x):
    if isinstance(fmt, lowprec.FixedFormat) and fmt.overflow == "wrap":
        return  # wrap-around is applied after the kernel, tested in test_oracles
    _quantize_property(fmt, mode, x)


@pytest.mark.fuzz
@LONG
@given(lst.formats(), st.sampled_from(lowprec.ROUNDING_MODES), awkward_arrays())
def test_quantize_long_fuzz(fmt, mode, x):
    if isinstance(fmt, lowprec.FixedFormat) and fmt.overflow == "wrap":
        return
    _quantize_property(fmt, mode, x)


@SHORT
@given(st.data())
def test_out_is_written_and_nothing_else(data):
    x = data.draw(awkward_arrays(np.float32))
    big = np.full(x.size * 2 + 3, 7.0, np.float32)
    out = big[1:1 + x.size * 2:2][: x.size].reshape(x.shape) if x.size else np.empty(x.shape, np.float32)
    if x.dtype.byteorder == ">":
        x = x.astype(np.float32)
    lowprec.quantize(x, "fp8_e4m3fn", out=out)
    if x.size:
        untouched = np.ones(big.size, bool)
        untouched[1:1 + x.size * 2:2] = False
        assert (big[untouched] == 7.0).all()


@SHORT
@given(st.sampled_from(["mxfp8_e4m3", "mxfp4_e2m1", "mxint8"]), st.sampled_from(lowprec.ROUNDING_MODES),
       awkward_arrays(), st.integers(1, 9))
def test_block_quantize_any_layout(name, mode, x, block):
    fmt = lowprec.formats.get(name).with_(block=block)
    if x.ndim == 0 or x.size == 0:
        return
    got = lowprec.quantize(x, fmt, mode, seed=1, axis=-1)
    native = np.ascontiguousarray(x.astype(x.dtype.newbyteorder("=")))
    lines = native.reshape(-1, native.shape[-1])
    pad = -(-lines.shape[1] // block) * block
    padded = np.zeros((lines.shape[0], pad), native.dtype)
    padded[:, :lines.shape[1]] = lines
    ref, _ = quantize_blocks_reference(padded.reshape(-1, block), fmt, mode, seed=1)
    assert_same(got.astype(native.dtype), ref.reshape(lines.shape[0], pad)[:, :lines.shape[1]].reshape(native.shape))


@SHORT
@given(st.integers(0, 5), st.integers(0, 40), st.integers(0, 5), st.sampled_from(["fp16", "bf16", "fp32"]),
       st.booleans(), st.data())
def test_mac_matmul_any_shape_and_layout(m, k, n, acc, transpose, data):
    values = st.floats(-100, 100, width=32)
    a = data.draw(hnp.arrays(np.float32, (k, m) if transpose else (m, k), elements=values))
    b = data.draw(hnp.arrays(np.float32, (k, n), elements=values))
    a = lowprec.quantize(a.T if transpose else a, "fp8_e4m3fn")  # a transposed view: not contiguous
    b = lowprec.quantize(b, "fp8_e4m3fn")[::-1][::-1]
    from lowprec.mac_reference import mac_dot_reference

    got = lowprec.MAC(acc=acc).matmul(a, b)
    assert got.shape == (m, n)
    for i in range(m):
        for j in range(n):
            expected = mac_dot_reference(a[i].astype(np.float64), b[:, j].astype(np.float64), acc=acc)
            assert_same(np.float32(got[i, j]), np.float32(expected))


@SHORT
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=80, unique=True),
       st.sampled_from(["nearest_even", "nearest_away", "up", "down"]), awkward_arrays())
def test_lut_any_layout_and_size(book, mode, x):
    fmt = lowprec.LUTFormat(book)
    keep = x.copy()
    got = lowprec.quantize(x, fmt, mode)
    assert_same(x, keep)
    native = np.ascontiguousarray(x.astype(x.dtype.newbyteorder("="))).ravel()
    finite = ~np.isnan(native)
    top = fmt.entries - 1
    index = [_exact_choice(v, fmt.codebook, mode) if np.isfinite(v) else (top if v > 0 else 0) for v in native]
    expected = np.where(finite, fmt.codebook[index] if index else np.zeros(0), np.nan)
    assert_same(np.asarray(got, native.dtype).ravel(), expected.astype(native.dtype))


def test_concurrent_calls_equal_sequential():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(300_000).astype(np.float32) for _ in range(6)]
    expected = [lowprec.quantize(x, "fp8_e5m2", "stochastic", seed=i) for i, x in enumerate(xs)]
    mac_expected = [lowprec.MAC(acc="fp16").sum(x[:50_000]) for x in xs]
    results, macs = [None] * 6, [None] * 6

    def work(i):
        results[i] = lowprec.quantize(xs[i], "fp8_e5m2", "stochastic", seed=i)
        macs[i] = lowprec.MAC(acc="fp16").sum(xs[i][:50_000])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(6):
        assert_same(results[i], expected[i])
        assert macs[i] == mac_expected[i]


@pytest.mark.large
def test_sum_of_more_than_2_31_elements():
    n = 2**31 + 5
    x = np.ones(n, np.float32)
    assert float(lowprec.MAC(acc="fp32").sum(x)) == 2.0**24  # fp32 swamps at 2**24
    # chunks of 4096 sum exactly; the 2**19 chunk sums reach 2**31 exactly, and the last 5 are below half
    # an fp32 ulp of 2**31 (256)
    assert float(lowprec.MAC(acc="fp32", chunk=4096).sum(x)) == 2.0**31
