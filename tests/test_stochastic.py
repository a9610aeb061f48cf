"""Stochastic rounding: unbiased, probability proportional to distance, k-bit rule, seeds and
thread counts."""

import numpy as np
import pytest

import lowprec
from helpers import assert_same

# Each statistical test below fails with probability < 1e-6 when the implementation is right
# (|z| > 5 for a normal statistic: two-sided p = 5.7e-7).
Z_LIMIT = 5.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["bf16", "fp8_e4m3fn", "fp16", "q4.4"])
def test_unbiased_in_expectation(name, dtype):
    rng = np.random.default_rng(1)
    fmt = lowprec.formats.get(name)
    n = 1 << 20
    x = rng.uniform(0.1, 0.9 * min(fmt.max, 100), 64).astype(dtype)
    xs = np.repeat(x, n // 64)
    q = lowprec.quantize(xs, name, "stochastic", seed=7).astype(np.float64).reshape(64, -1)
    lo = lowprec.quantize(x, name, "toward_zero").astype(np.float64)
    hi = lowprec.quantize(x, name, "up").astype(np.float64)
    p = np.where(hi > lo, (x - lo) / np.where(hi > lo, hi - lo, 1), 0)
    # every draw is one of the two neighbours
    assert np.all((q == lo[:, None]) | (q == hi[:, None]))
    m = q.shape[1]
    frac_up = (q == hi[:, None]).mean(axis=1)
    sd = np.sqrt(np.maximum(p * (1 - p), 1e-12) / m)
    z = (frac_up - p) / sd
    assert np.all(np.abs(z[(p > 0) & (p < 1)]) < Z_LIMIT), z
    # the mean of all draws is the input, within the same bound
    err = (q.mean(axis=1) - x) / ((hi - lo) * sd + 1e-300)
    assert np.all(np.abs(err[(p > 0) & (p < 1)]) < Z_LIMIT)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_k_random_bits_give_the_k_bit_rule(k):
    # a remainder of r/2**k (exact in k bits) rounds up with probability exactly r/2**k; a remainder
    # below half a k-bit step never rounds up (it rounds to 0 in k bits first)
    n = 1 << 18
    base = np.float32(1.0)
    step = np.float32(2.0**-7)  # bf16 spacing at 1
    for r in range(2**k):
        x = np.full(n, base + step * r / 2**k, np.float32)
        up = (lowprec.quantize(x, "bf16", "stochastic", seed=r, rbits=k) > base).mean()
        p = r / 2**k
        assert abs(up - p) < Z_LIMIT * np.sqrt(max(p * (1 - p), 1e-12) / n), (r, up)
    tiny = np.full(n, base + step / 2 ** (k + 2), np.float32)
    assert not (lowprec.quantize(tiny, "bf16", "stochastic", seed=1, rbits=k) > base).any()


def test_same_seed_same_bits_on_one_and_two_threads():
    x = np.random.default_rng(3).standard_normal(1 << 20).astype(np.float32)
    lowprec.set_num_threads(1)
    one = lowprec.quantize(x, "fp8_e4m3fn", "stochastic", seed=42)
    lowprec.set_num_threads(2)
    two = lowprec.quantize(x, "fp8_e4m3fn", "stochastic", seed=42)
    np.testing.assert_array_equal(one.view(np.uint32), two.view(np.uint32))
    other = lowprec.quantize(x, "fp8_e4m3fn", "stochastic", seed=43)
    assert (other != one).mean() > 0.01
    gen_a = lowprec.quantize(x, "fp8_e4m3fn", "stochastic", seed=np.random.default_rng(9))
    gen_b = lowprec.quantize(x, "fp8_e4m3fn", "stochastic", seed=np.random.default_rng(9))
    np.testing.assert_array_equal(gen_a, gen_b)


@pytest.mark.parametrize("name", ["int8", "fp4_e2m1fn", "fp8_e4m3fn", "fp6_e3m2fn"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_of_mostly_tiny_inputs_take_the_full_rule_with_the_same_bits(name, dtype):
    """The C kernel rounds a 1024-element block whose inputs are mostly below the format's smallest
    nonzero value by the full stochastic rule in one vectorized pass; blocks with a few such inputs by
    the fast pass and a fix-up; blocks with none by the fast pass alone (at one shift for all where
    no input is below the smallest normal); a ragged last block with exceptional inputs at its end. All
    against the pure numpy reference, with 32 and 5 random bits (tiny inputs whose 5-bit fraction is a
    tie among them)."""
    from lowprec.reference import quantize_reference

    rng = np.random.default_rng(3)
    smallest = lowprec.formats.get(name).min_subnormal or lowprec.formats.get(name).min_normal
    tiny = rng.standard_normal(1024) * smallest  # mostly below the smallest nonzero value
    tiny[:64] = np.tile((np.arange(32) + 0.5) / 32, 2) * smallest * np.repeat([1, -1], 32)  # 5-bit ties
    few = rng.standard_normal(1024) * 8 * smallest  # about 1 in 10 tiny
    rare = (rng.standard_normal(2048) + 4) * 4 * smallest
    rare[:1024:64] = smallest / 3  # 1 in 64 tiny: over 1 in 128, the tiny pass
    rare[1024::200] = -smallest / 3  # 1 in 200: the fast pass and a fix-up
    none = (rng.standard_normal(1024) + 4) * 4 * smallest
    ragged = (rng.standard_normal(1029) + 4) * 4 * smallest  # a last block of 5, its flags past a word
    ragged[[-1, -6, 1021]] = smallest / 3, -smallest / 5, smallest / 7
    ragged[-4], ragged[-2] = np.inf, np.nan
    fmt = lowprec.formats.get(name)  # a block at and above the smallest normal only (one shift for all)
    normal = np.where(rng.random(1024) < 0.5, -1, 1) * fmt.min_normal * (1 + rng.random(1024) * (fmt.max / fmt.min_normal / 4))
    normal[::97] = 0.0  # zeros do not break the rule
    x = np.concatenate([tiny, few, none, -tiny, normal, rare, ragged]).astype(dtype)
    for rbits in (None, 5):
        got = lowprec.quantize(x, name, "stochastic", seed=8, rbits=rbits)
        want = quantize_reference(x, name, "stochastic", seed=8, rbits=rbits)
        assert_same(got, np.asarray(want, dtype), f"{name} rbits={rbits}")


FLOAT32_SR_FORMATS = ["fp16", "bf16", "tf32", "dlfloat16", "fp8_e4m3fn", "fp8_e4m3", "fp8_e4m3fnuz", "fp8_e5m2",
                      "fp8_e5m2fnuz", "fp8_e3m4", "fp6_e2m3fn", "fp6_e3m2fn", "fp4_e2m1fn", "binary8p3", "binary8p5",
                      "int8", "uint8", "int4", "int16", "q8.8"]


# a range below twice the min normal without subnormals: one grid above the min normal, but tiny inputs
# go to 0 or the min normal (not the integer form of fixed-point formats)
NARROW_FLUSH = lowprec.FloatFormat(1, 3, subnormals=False, specials="none", overflow="saturate")


@pytest.mark.parametrize("name", FLOAT32_SR_FORMATS + [NARROW_FLUSH])
def test_whole_float32_units_equal_the_reference(name):
    """Whole 1024-element units of float32 input (AVX-512 machines round them in one fused pass with the
    Philox words made in registers, AVX2 ones with a byte a draw in an 8-lane fused pass, others by the
    counting, fast and fix-up passes), against the numpy
    reference with 32 random bits and with a byte, 4 and 1 of it: values over the format's whole range
    and past it (subnormal results, overflow, both signs, -0), a unit with a few exceptional inputs
    (fixed up lane by lane), units with many (more than 4 in a quarter unit: the generic passes take
    the quarter), then a ragged end."""
    from lowprec.reference import quantize_reference

    fmt = lowprec.formats.get(name) if isinstance(name, str) else name
    rng = np.random.default_rng(11)
    smallest = fmt.min_subnormal or fmt.min_normal
    lo, hi = np.log2(smallest) - 2, np.log2(fmt.max) + 2
    sign = np.where(rng.random(4096) < 0.5, -1.0, 1.0)
    wide = sign[:1024] * 2.0 ** rng.uniform(lo, hi, 1024)  # tiny ones too: likely more than 8
    inside = sign[1024:2048] * 2.0 ** rng.uniform(np.log2(smallest), np.log2(fmt.max), 1024)
    inside[[5, 300, 301, 777, 1000]] = [np.inf, -np.inf, np.nan, smallest / 3, -smallest / 5]
    inside[[17, 18]] = [-0.0, 0.0]
    # far past the range, a few to a quarter unit: at and around the bounds (2**(30 - k) times the grid
    # step, k = 8, 4, 1) where fixed-point formats with a byte leave their integer form
    inside[[40, 41, 420, 421, 600, 900]] = [2.0**14, -(2.0**14) * 1.5, 2.0**21, 1 - 2.0**22, 3e38, -1e20]
    many = sign[2048:3072] * smallest * rng.random(1024) * 1.5
    ragged = sign[3072:3172] * 2.0 ** rng.uniform(lo, hi, 100)
    x = np.concatenate([inside, wide, many, inside[::-1], ragged]).astype(np.float32)
    for rbits in (None, 8, 4, 1):
        got = lowprec.quantize(x, name, "stochastic", seed=21, rbits=rbits)
        want = quantize_reference(x, name, "stochastic", seed=21, rbits=rbits)
        assert_same(got, np.asarray(want, np.float32), f"{name} rbits={rbits}")


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2"])
def test_byte_draws_on_ties_at_the_bytes_bit(name):
    """With a byte a draw the rule first rounds the remainder to 8 bits, nearest even: inputs whose bits
    below that are exactly a half, with the bit above even and odd, in quarter units at the min normal
    and above only (one shift for all) and in ones that also hold a subnormal result (a shift a lane).
    A tie rounded the wrong way changes the result only where the draw then carries by one, about 1 in
    256 of the ties it turns: 2**16 ties give some 128-256 such cases."""
    from lowprec.reference import quantize_reference

    fmt = lowprec.formats.get(name)
    rng = np.random.default_rng(5)
    s = 23 - fmt.man_bits - 8  # the bit the remainder is rounded at, for normal results
    n = 1 << 16
    exp = rng.integers(0, 6, n) + np.log2(fmt.min_normal).astype(int) + 127
    mant = (rng.integers(0, 1 << 23, n) & ~((1 << (s + 1)) - 1)) | (1 << (s - 1)) | ((np.arange(n) & 1) << s)
    bits = (exp.astype(np.uint32) << 23) | mant.astype(np.uint32) | (rng.integers(0, 2, n).astype(np.uint32) << 31)
    x = bits.view(np.float32).copy()
    x[n // 2 :: 256] = fmt.min_normal / 3  # the second half: a subnormal result in every quarter unit
    got = lowprec.quantize(x, name, "stochastic", seed=12, rbits=8)
    want = quantize_reference(x, name, "stochastic", seed=12, rbits=8)
    assert_same(got, np.asarray(want, np.float32), name)
