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
