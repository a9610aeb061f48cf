"""LUT and log-format MACs: products as the units form them, accumulated per the MAC contract."""

import math

import numpy as np
import pytest

import lowprec
from lowprec import MAC, LogFormat, LUTFormat
from lowprec.codemac import log_matmul, lut_matmul, product_table

RNG = np.random.default_rng(23)


def test_lut_products_come_from_the_table_and_sum_exactly_by_default():
    fa = LUTFormat(np.sort(RNG.standard_normal(16)))
    fb = LUTFormat(np.sort(RNG.standard_normal(4)))
    a, b = RNG.integers(0, 16, (5, 40)), RNG.integers(0, 4, (40, 3))
    out = lut_matmul(a, b, fa, fb)
    va, vb = fa.codebook[a], fb.codebook[b]
    for i in range(5):
        for j in range(3):
            assert out[i, j] == math.fsum(va[i] * vb[:, j])  # float64 products, summed exactly


def test_lut_with_a_rounded_table_and_an_fp16_accumulator():
    fa = fb = LUTFormat(np.linspace(-1, 1, 16))
    a, b = RNG.integers(0, 16, (4, 300)), RNG.integers(0, 16, (300, 2))
    mac = MAC(acc="fp16", chunk=64)
    out = lut_matmul(a, b, fa, fb, mac=mac, product="fp8_e4m3fn")
    table = product_table(fa, fb, "fp8_e4m3fn")
    expected = MAC(acc="fp16", chunk=64).sum(table[a[:, None, :], b.T[None, :, :]], axis=-1)
    np.testing.assert_array_equal(out, expected)
    assert np.isin(table, lowprec.formats.get("fp8_e4m3fn").values()).all()
    assert mac.counts["mul"]["lut4x4"] == 4 * 2 * 300 and "exact" not in mac.counts["mul"]
    assert mac.counts["add"]["fp16"] == 4 * 2 * 300 + 4 * 2 * 5  # the steps, then 5 chunk sums per output


@pytest.mark.parametrize("k", [1, 2])
def test_log_products_are_exponent_adds(k):
    fa = LogFormat(5, k=k, fsr=1)
    fb = LogFormat(4, k=k, fsr=0)
    a, b = RNG.integers(0, fa.entries, (6, 50)), RNG.integers(0, fb.entries, (50, 4))
    mac = MAC(acc=None)
    out = log_matmul(a, b, fa, fb, mac=mac)
    va, vb = fa.codebook[a], fb.codebook[b]
    for i in range(6):
        for j in range(4):
            prods = va[i] * vb[:, j]
            if k == 1:
                assert out[i, j] == math.fsum(prods)  # powers of two: the float products are exact
            else:
                assert out[i, j] == pytest.approx(math.fsum(prods), rel=1e-14, abs=1e-300)
    nonzero = int(np.count_nonzero(va, axis=0) @ np.count_nonzero(vb, axis=1))
    assert mac.counts["mul"][f"log{fa.log_bits}x{fb.log_bits}"] == nonzero
    assert mac.counts["zero_products"] == 6 * 4 * 50 - nonzero


def test_bad_operands():
    fa = LUTFormat([0.0, 1.0])
    with pytest.raises(ValueError, match="outside"):
        lut_matmul(np.array([[2]]), np.array([[0]]), fa, fa)
    with pytest.raises(TypeError, match="integer"):
        lut_matmul(np.array([[0.5]]), np.array([[0]]), fa, fa)
    with pytest.raises(ValueError, match="chain"):
        lut_matmul(np.zeros((2, 3), int), np.zeros((2, 3), int), fa, fa)
    with pytest.raises(TypeError, match="LogFormat"):
        log_matmul(np.zeros((1, 1), int), np.zeros((1, 1), int), fa, fa)
    with pytest.raises(TypeError, match="per-tensor"):
        product_table(LUTFormat([[0.0, 1.0]]), fa)
