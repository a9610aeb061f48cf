"""The MAC's operand statistics (lowprec.mac.operand_stats): the C pass equals the numpy rule on every
kind of element (zeros of both signs, subnormals, Inf, NaN), in every layout (strided rows, a
broadcast column, transposed and reversed views copied in blocks) and dtype."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from lowprec.mac.operand_stats import operand_stats, operand_stats_reference


def assert_same_stats(got, want):
    assert got.finite == want.finite
    assert (got.min_nonzero, got.max_abs, got.sig_bits) == (want.min_nonzero, want.max_abs, want.sig_bits)
    np.testing.assert_array_equal(got.row_nonzeros, want.row_nonzeros)
    np.testing.assert_array_equal(got.col_nonzeros, want.col_nonzeros)
    # the C pass sums in eight partial double sums, the rule exactly: the same up to double's rounding
    # (near double's top a partial sum may overflow where the exact one does not: +Inf, still a bound)
    if got.row_abs_sums is not None:
        near_top = want.row_abs_sums > 1e300
        np.testing.assert_allclose(got.row_abs_sums[~near_top], want.row_abs_sums[~near_top], rtol=1e-12, atol=0)
        assert (got.row_abs_sums[near_top] >= want.row_abs_sums[near_top] * (1 - 1e-12)).all()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([np.float32, np.float64]).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40),
                          elements=st.floats(width=32 if dt == np.float32 else 64, allow_subnormal=True))))
def test_the_c_pass_is_the_numpy_rule(x):
    assert_same_stats(operand_stats(x), operand_stats_reference(x))


def test_every_binary16_value_as_float32_and_float64():
    """All 65536 patterns of binary16 (zeros, subnormals, Inf, NaN payloads) widened: each value's own
    row, and the whole as one row; then the finite ones alone."""
    h = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    for dtype in (np.float32, np.float64):
        x = h.astype(dtype)
        for shape in ((256, 256), (1, 1 << 16), (1 << 16, 1)):
            assert_same_stats(operand_stats(x.reshape(shape)), operand_stats_reference(x.reshape(shape)))
        finite = x[np.isfinite(x)].reshape(-1, 31)
        got = operand_stats(finite)
        assert got.finite and got.min_nonzero == 2.0**-24 and got.max_abs == 65504 and got.sig_bits == 11
        assert_same_stats(got, operand_stats_reference(finite))


def test_layouts_and_dtypes_give_the_contiguous_arrays_statistics():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 500)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = 0
    x[5, 7], x[9, 2] = -0.0, 2.0**-140  # a negative zero, a float32 subnormal
    views = {"transposed": x.T, "reversed": x[::-1, ::-1], "every other column": x[:, ::2],
             "strided rows": x[::3], "broadcast column": np.broadcast_to(x[:1, :1], (70000, 1)),
             "broadcast row": np.broadcast_to(x[:1], (4, 500)), "float16": x.astype(np.float16),
             "int16": (x * 100).astype(np.int16), "one long strided row": np.tile(x.ravel(), 2)[None, ::2]}
    for name, v in views.items():
        want = operand_stats_reference(np.array(v, np.float64 if v.dtype.kind != "f" or v.itemsize < 4 else v.dtype))
        assert_same_stats(operand_stats(v), want)
        assert want.row_nonzeros.size == v.shape[0], name


def test_empty_and_all_zero_operands():
    for shape in ((0, 5), (5, 0), (0, 0)):
        s = operand_stats(np.zeros(shape, np.float32))
        assert s.finite and s.max_abs == 0 and s.min_nonzero == 0 and s.sig_bits == 1
        assert s.row_abs_sums.shape == (shape[0],) and s.col_nonzeros.shape == (shape[1],)
    s = operand_stats(np.array([[0.0, -0.0]]))
    assert (s.max_abs, s.min_nonzero, s.sig_bits, int(s.row_nonzeros[0])) == (0, 0, 1, 0)
    with pytest.raises(ValueError, match="2-D"):
        operand_stats(np.zeros(3))


@pytest.mark.parametrize("k", [0, 300, 140000])  # 140000: three blocks of k
def test_matmul_statistics_in_blocks_of_k(k):
    """matmul_operand_stats: A's and B's statistics and the nonzero products, summed over blocks of k
    (a broadcast column of ones as B, as a sum has, and a dense one)."""
    from lowprec.mac.operand_stats import matmul_operand_stats

    rng = np.random.default_rng(8)
    a = rng.standard_normal((3, k)).astype(np.float32)
    a[rng.random(a.shape) < 0.4] = 0
    a[1, :k // 2] = np.nan if k else a[1, :0]
    for b in (np.broadcast_to(np.ones((1, 1), np.float32), (k, 1)), rng.integers(-1, 2, (k, 5)).astype(np.float64)):
        sa, sb, pairs = matmul_operand_stats(a, b)
        assert pairs == int(np.count_nonzero(a, axis=0) @ np.count_nonzero(b, axis=1))
        ra, rb = operand_stats_reference(a), operand_stats_reference(np.array(b))
        for got, want in ((sa, ra), (sb, rb)):
            assert (got.finite, got.min_nonzero, got.max_abs, got.sig_bits) == (want.finite, want.min_nonzero,
                                                                                want.max_abs, want.sig_bits)
        np.testing.assert_allclose(sa.row_abs_sums, ra.row_abs_sums, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(sa.row_nonzeros, ra.row_nonzeros)
        np.testing.assert_array_equal(sb.col_nonzeros, rb.col_nonzeros)
