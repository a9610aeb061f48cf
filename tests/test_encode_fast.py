"""Codes by table and from the C kernels' values (lowprec.formats.bits.float_codes_fast, the affine
codes of lowprec.array.scaled) against the numpy rules they replace."""

import numpy as np
import pytest

import lowprec
from lowprec import IntAffineFormat
from lowprec.formats import bits


def _float_formats():
    for name in lowprec.formats.names():
        f = lowprec.formats.get(name)
        if isinstance(f, lowprec.FloatFormat) and f.bits <= 16:
            yield f


@pytest.mark.parametrize("fmt", list(_float_formats()), ids=lambda f: f.name)
def test_table_codes_equal_the_rule_on_every_code(fmt):
    """Every value of every named float format of at most 16 bits (subnormals, both zeros, Inf, NaN
    of either sign), as float64 and float32, and float32 NaNs whose payload misses the mantissa's top
    bits (which read as Inf in the table): the table's codes are float_codes'."""
    params = (fmt.exp_bits, fmt.man_bits, fmt.bias, fmt.emin, fmt.specials, fmt.code_dtype)
    values = np.asarray(lowprec.decode(np.arange(2**fmt.bits, dtype=np.uint64).astype(fmt.code_dtype), fmt),
                        np.float64)
    odd_nans = np.array([0x7F800001, 0xFF800001, 0x7F800100, 0xFFA00000], np.uint32).view(np.float32)
    fast = bits.float_codes_fast(values, *params)
    if fast is None:
        assert fmt.man_bits > 10 or fmt.man_bits < 1 or fmt.emin < -126
        return
    np.testing.assert_array_equal(fast, bits.float_codes(values, *params))
    np.testing.assert_array_equal(bits.float_codes_fast(values.astype(np.float32), *params), fast)
    with np.errstate(invalid="ignore"):
        wide = odd_nans.astype(np.float64)
    np.testing.assert_array_equal(bits.float_codes_fast(odd_nans, *params), bits.float_codes(wide, *params))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["nearest_even", "down", "odd", "stochastic"])
def test_affine_codes_from_the_kernels_values_equal_the_rule(mode, dtype):
    """encode of integer-affine formats (4 to 16 bits, signed, unsigned, narrow, per tensor and per
    channel; scales at the fast path's limits and beyond them) against the numpy rule, over several
    65536-element chunks (stochastic draws continue across them), Inf and extremes included."""
    from lowprec.array.scaled import _affine_codes

    rng = np.random.default_rng(17)
    tiny = float(np.finfo(dtype).tiny)
    x = (rng.standard_normal((3, 70000)) * 40).astype(dtype)
    x[0, :4] = [np.inf, -np.inf, np.finfo(dtype).max, -0.0]
    for fmt in (IntAffineFormat(8, 0.3, 3), IntAffineFormat(4, 0.7, 1, signed=False, narrow=True),
                IntAffineFormat(16, 2.0**-9, -300), IntAffineFormat(8, np.array([0.1, 0.4, 2.5]), np.array([0, 5, -7]), axis=0),
                IntAffineFormat(8, tiny, 0), IntAffineFormat(8, tiny / 2, 0),  # at and past the limit
                IntAffineFormat(12, float(np.finfo(dtype).max) * 2.0**-18, 0), IntAffineFormat(32, 0.01, 9)):
        xs = x if np.ndim(fmt.scale) else x * np.float64(fmt.scale * 30).astype(dtype)
        got = lowprec.encode(xs, fmt, mode, seed=11)
        want = _affine_codes(xs, fmt, mode, 11)
        np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=f"{fmt} {mode}")
