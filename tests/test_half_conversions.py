"""csrc/half_impl.h: float16/bfloat16 <-> float32 on every pattern, against numpy's, ml_dtypes' and
torch's conversions, and quantize of half arrays and tensors through it."""

import ml_dtypes
import numpy as np
import pytest
import torch

import lowprec
from lowprec.array.adapters import narrowed_half, widened_half

ALL = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)], ids=["float16", "bfloat16"])
def test_every_pattern_widens_as_numpy_and_narrows_back(dtype):
    halves = ALL.view(dtype)
    wide = widened_half(halves)
    with np.errstate(invalid="ignore"):
        want = halves.astype(np.float32)
    np.testing.assert_array_equal(wide.view(np.uint32), want.view(np.uint32))  # NaN payloads included
    back = narrowed_half(wide, dtype == ml_dtypes.bfloat16)
    np.testing.assert_array_equal(back, ALL)
    finite = np.isfinite(wide)
    np.testing.assert_array_equal(back[finite], wide[finite].astype(dtype).view(np.uint16))
    # NaNs whose payload lies below the half's mantissa still narrow to NaNs, signs kept
    odd = np.array([0x7F800001, 0xFF800001, 0x7F801000, 0xFFC00000], np.uint32).view(np.float32)
    got = narrowed_half(odd, dtype == ml_dtypes.bfloat16).view(dtype).astype(np.float32)
    assert np.isnan(got).all() and np.array_equal(np.signbit(got), np.signbit(odd))


@pytest.mark.parametrize("tdtype", [torch.float16, torch.bfloat16])
def test_half_tensors_and_arrays_quantize_as_through_float32(tdtype):
    """quantize of float16/bfloat16 tensors and arrays (every pattern; a transposed view) equals
    quantize of their float32 values, narrowed back (torch's conversion for the finite values)."""
    t = torch.from_numpy(ALL.view(np.int16)).view(tdtype)
    for fmt, mode in (("fp8_e4m3fn", "nearest_even"), ("fp8_e5m2", "stochastic")):
        ref = lowprec.quantize(t.float(), fmt, mode, seed=3)
        got = lowprec.quantize(t, fmt, mode, seed=3)
        assert got.dtype == tdtype
        torch.testing.assert_close(got.float(), ref, equal_nan=True, rtol=0, atol=0)
        finite = torch.isfinite(ref)
        assert torch.equal(got[finite].view(torch.int16), ref[finite].to(tdtype).view(torch.int16))
        arr = ALL.view(np.float16 if tdtype == torch.float16 else ml_dtypes.bfloat16)
        a = lowprec.quantize(arr.reshape(256, 256).T, fmt, mode, seed=3)
        with np.errstate(invalid="ignore"):
            want = lowprec.quantize(arr.reshape(256, 256).T.astype(np.float32), fmt, mode, seed=3)
        assert a.dtype == arr.dtype
        np.testing.assert_array_equal(a.astype(np.float32), want)


def _around_every_half(drop: int) -> np.ndarray:
    """float32 patterns at every decision point of rounding away `drop` low bits: for each kept
    pattern (sign, exponent, top mantissa bits), the low bits 0, 1, the tie and its neighbours, the
    largest; and NaNs of several payloads."""
    kept = np.arange(1 << (32 - drop), dtype=np.uint64) << np.uint64(drop)
    half = 1 << (drop - 1)
    lows = np.array([0, 1, half - 1, half, half + 1, (1 << drop) - 1], np.uint64)
    bits = (kept[:, None] | lows[None, :]).reshape(-1)
    nans = np.array([0x7F800001, 0xFF800001, 0x7FA00000, 0x7FC00001, 0xFFFFFFFF, 0x7F801000], np.uint64)
    return np.concatenate([bits, nans]).astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("name, drop, oracle", [("fp16", 13, np.float16), ("bf16", 16, ml_dtypes.bfloat16)])
def test_fp16_and_bf16_nearest_even_at_every_decision_point(name, drop, oracle):
    """The hardware / integer fast paths of lp_quantize_f32 (csrc/half_impl.h) against numpy's and
    ml_dtypes' correctly rounded conversions (subnormals, ties, overflow to Inf, signed zeros), NaN the
    quiet NaN of its sign as the rule writes it; in place, out= apart, 2 threads, a ragged length."""
    x = _around_every_half(drop)
    with np.errstate(invalid="ignore", over="ignore"):
        want = x.astype(oracle).astype(np.float32)
    nan = np.isnan(x)
    want[nan] = np.where(np.signbit(x[nan]), np.float32(-np.nan), np.float32(np.nan))
    want_bits = want.view(np.uint32).copy()
    want_bits[nan] = np.where(np.signbit(x[nan]), 0xFFC00000, 0x7FC00000)
    got = lowprec.quantize(x, name)
    np.testing.assert_array_equal(got.view(np.uint32), want_bits)
    inplace = x[:-3].copy()
    threads = lowprec.get_num_threads()
    lowprec.set_num_threads(2)
    try:
        lowprec.quantize(inplace, name, out=inplace)
    finally:
        lowprec.set_num_threads(threads)
    np.testing.assert_array_equal(inplace.view(np.uint32), want_bits[:-3])


def test_zero_dimensional_halves_keep_their_shape():
    for x in (np.array(0.1, np.float16), np.array(0.1, ml_dtypes.bfloat16), torch.tensor(0.1, dtype=torch.bfloat16),
              torch.tensor(-0.3, dtype=torch.float16)):
        got = lowprec.quantize(x, "fp8_e4m3fn")
        assert tuple(got.shape) == () and got.dtype == x.dtype
        assert float(got) == float(lowprec.quantize(float(x), "fp8_e4m3fn"))
