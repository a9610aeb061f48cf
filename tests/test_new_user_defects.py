"""Defects a new user hit (issue 13): each test failed before its fix."""

import dataclasses
import tracemalloc
import warnings

import numpy as np
import pytest

import lowprec
from lowprec import formats
from lowprec.sims import swamping

from helpers import assert_same

RNG = np.random.default_rng(13)


# -- 1. long sums in narrow accumulators ---------------------------------------------------------------
@pytest.mark.parametrize("acc, expected", [("fp16", 2048.0), ("bf16", 256.0), ("fp8_e5m2", 8.0), ("fp8_e4m3fn", 16.0)])
def test_long_sum_of_ones_swamps_instead_of_crashing(acc, expected):
    # the growth bound (1 + 2**-m) ** (K + 2) overflowed a Python float
    assert lowprec.MAC(acc=acc).sum(np.ones(2**20, np.float32)) == expected
    assert lowprec.MAC(acc=acc, chunk=16).sum(np.ones(2**20, np.float32)) > expected


def test_long_matmul_in_fp16():
    a = lowprec.quantize(RNG.uniform(0, 1, (2, 5000)).astype(np.float32), "fp8_e4m3fn")
    c = lowprec.MAC(acc="fp16").matmul(a, np.ones((5000, 3), np.float32))
    assert c.shape == (2, 3) and np.isfinite(c).all() and (c > 1000).all()


def test_swamping_runs_every_order_at_full_length_in_narrow_accumulators():
    accs = ("fp16", "bf16", "fp8_e5m2", "fp8_e4m3fn")
    rows = swamping.run(22, 22, accumulators=accs, progress=False)
    assert len(rows) == 3 * len(accs) * len(swamping.configurations())
    ones = {(r["acc"], r["order"]): r["sum"] for r in rows if r["distribution"] == "ones"}
    assert ones["fp16", "sequential"] == 2048.0 and ones["bf16", "sequential"] == 256.0
    assert ones["fp8_e5m2", "sequential"] == 8.0 and ones["fp8_e4m3fn", "sequential"] == 16.0
    # pairwise sums of ones are exact while they fit: 2**22 overflows fp16 (max 65504), not bf16
    assert ones["bf16", "pairwise"] == 2.0**22 and ones["fp16", "pairwise"] == np.inf
    assert np.isnan(ones["fp8_e4m3fn", "pairwise"])  # e4m3fn overflows to NaN


# -- 2. bounded memory ----------------------------------------------------------------------------------
def _peak(fn):
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _nbytes(r):
    return sum(_nbytes(v) for v in r) if isinstance(r, tuple) else np.asarray(r).nbytes


MEMORY_CASES = ["fp8_e5m2", "bf16", "q3.12", "mxfp8_e4m3", "mxfp4_e2m1", "nvfp4",
                lowprec.LUTFormat(np.linspace(-2, 2, 16)), lowprec.LogFormat(4),
                lowprec.IntAffineFormat(8, 0.05, 0), lowprec.IntAffineFormat(8, np.full(64, 0.05), 0, axis=1),
                lowprec.BinaryFormat(0.8), lowprec.TernaryFormat(0.8, 0.8, 0.5)]


@pytest.mark.parametrize("fmt", MEMORY_CASES, ids=str)
def test_encode_and_decode_memory_is_the_output_plus_bounded_scratch(fmt):
    x = RNG.standard_normal((2**16, 64)).astype(np.float32)  # 16 MiB in: scratch would show
    scratch = 8 * 2**20  # bounded chunks: far below a copy of x
    codes, top = _peak(lambda: lowprec.encode(x, fmt))
    assert top <= _nbytes(codes) + scratch, (top, _nbytes(codes))
    values, top = _peak(lambda: lowprec.decode(codes, fmt))
    assert top <= _nbytes(values) + scratch, (top, _nbytes(values))


@pytest.mark.parametrize("fmt", ["fp8_e4m3fn", "bf16", "q1.6", "mxfp6_e2m3", "nvfp4",
                                 lowprec.BinaryFormat(np.linspace(0.5, 1, 5), axis=1),
                                 lowprec.IntAffineFormat(4, np.linspace(0.1, 0.2, 5), 1, axis=1),
                                 lowprec.LUTFormat(np.linspace(-2, 2, 16))], ids=str)
def test_chunked_encode_matches_one_pass_stochastic_draws(fmt):
    x = RNG.standard_normal((40000, 5)).astype(np.float32)[::-1]  # several chunks, not contiguous
    axis = {"axis": 0} if isinstance(fmt, str) and fmt.startswith(("mx", "nv")) else {}
    codes = lowprec.encode(x, fmt, "stochastic", seed=3, **axis)
    values = lowprec.quantize(x, fmt, "stochastic", seed=3, **axis)
    decoded = lowprec.decode(codes, fmt, **({"axis": 0} if axis else {}))
    assert_same(np.asarray(decoded, np.float64).astype(np.float32), values)


# -- 3. empty sums ---------------------------------------------------------------------------------------
def test_empty_sum_is_zero_and_minus_zero_rounding_down():
    empty = np.array([], np.float32)
    z = lowprec.MAC(acc="fp16").sum(empty)
    assert z == 0 and not np.signbit(z)
    assert np.signbit(lowprec.MAC(acc="fp16", rounding="down").sum(empty))
    assert lowprec.MAC(acc="fp16").sum(np.zeros((3, 0), np.float32)).shape == (3,)


# -- 6, 13. NVFP4 ----------------------------------------------------------------------------------------
def test_nvfp4_decode_needs_the_tensor_scale_and_round_trips():
    w = RNG.standard_normal((64, 64)).astype(np.float32) * 100
    codes, scales = lowprec.encode(w, "nvfp4")  # unpacking drops tensor_scale
    with pytest.raises(TypeError, match="tensor_scale"):
        lowprec.decode(codes, "nvfp4", scales)
    enc = lowprec.encode(w, "nvfp4")
    assert_same(lowprec.decode(enc, "nvfp4"), lowprec.quantize(w, "nvfp4"))
    assert_same(lowprec.decode(codes, "nvfp4", scales, tensor_scale=enc.tensor_scale, dtype=np.float32),
                lowprec.quantize(w, "nvfp4"))


def test_nvfp4_one_level_scale_is_clamped_not_nan_or_zero():
    one_level = formats.get("nvfp4").with_(tensor_scale=False)
    x = np.full(16, 3000.0, np.float32)
    assert (lowprec.quantize(x, one_level) == 6.0 * 448).all()  # torchao's clamp to the largest scale
    assert_same(lowprec.decode(lowprec.encode(x, one_level), one_level), lowprec.quantize(x, one_level))
    tiny = np.full(16, 1e-6, np.float32)  # amax / 6 rounds to 0 in e4m3: the smallest scale instead
    assert (lowprec.decode(lowprec.encode(tiny, one_level), one_level, dtype=np.float64) >= 0).all()
    assert lowprec.decode(lowprec.encode(tiny, one_level).scales, "fp8_e4m3fn").min() == 2.0**-9


# -- 12. MX element codes do not depend on the input dtype -------------------------------------------------
def test_mx_codes_when_element_times_scale_overflows_float32():
    big = np.full(32, np.finfo(np.float32).max, np.float32)
    rceil = formats.get("mxfp8_e4m3").with_(rule="rceil")
    codes, scales = lowprec.encode(big, rceil)
    assert scales[0] == 247 and (codes == 0x78).all()  # 256 * 2**120: both representable
    assert (codes == lowprec.encode(big.astype(np.float64), rceil).codes).all()
    ceil = formats.get("mxfp8_e5m2").with_(rule="ceil")
    codes, _ = lowprec.encode(big, ceil)
    assert (codes == lowprec.encode(big.astype(np.float64), ceil).codes).all() and (codes != 0x7C).all()


# -- 15, 16. the top of the range ------------------------------------------------------------------------
def test_wide_format_saturates_to_its_own_largest_float32_value():
    e8m7 = lowprec.FloatFormat(8, 7, specials="none")
    x = np.array([np.inf, np.finfo(np.float32).max, -np.inf], np.float32)
    top = np.float32((2 - 2.0**-7) * 2.0**127)
    assert_same(lowprec.quantize(x, e8m7), np.array([top, top, -top], np.float32))
    from lowprec.reference import quantize_reference
    assert_same(quantize_reference(x, e8m7), lowprec.quantize(x, e8m7))
    assert (lowprec.decode(lowprec.encode(x, e8m7), e8m7) == lowprec.quantize(x, e8m7)).all()


def test_decode_of_fp64_codes_at_the_top_warns_nothing():
    codes = np.array([0x7FEFFFFFFFFFFFFF, 0x7FF0000000000000, 0xFFF8000000000000], np.uint64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = lowprec.decode(codes, "fp64")
    assert v[0] == np.finfo(np.float64).max and v[1] == np.inf and np.isnan(v[2])
