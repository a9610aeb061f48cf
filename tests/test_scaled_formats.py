"""Binary (BWN/XNOR, BinaryConnect), ternary (TWN, TTQ) and integer-affine formats: the published
formulas on generated data, exact-rational rounding, round trips, per-channel parameters, bad input."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowprec
from lowprec import BinaryFormat, IntAffineFormat, TernaryFormat, fit_binary, fit_ttq, fit_twn
from lowprec.bitmac import pack_binary, pack_ternary

from helpers import assert_same

RNG = np.random.default_rng(5)
weights = hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 9)),
                     elements=st.floats(-10, 10, width=32))


@settings(max_examples=60, deadline=None)
@given(weights, st.sampled_from([None, 0, 1]))
def test_bwn_alpha_is_the_mean_magnitude_and_values_are_its_sign(w, axis):
    if not np.abs(w).sum(axis=None if axis is None else 1 - axis).all():
        return  # a channel of zeros has no positive scale
    fmt = fit_binary(w, axis)
    mean = np.abs(w.astype(np.float64)).mean(axis=None if axis is None else 1 - axis)
    np.testing.assert_allclose(fmt.alpha, mean, rtol=1e-15)
    alpha = mean if axis is None else np.expand_dims(mean, 1 - axis)
    assert_same(lowprec.quantize(w, fmt), np.where(w >= 0, alpha, -alpha).astype(np.float32))
    codes = lowprec.encode(w, fmt)
    np.testing.assert_array_equal(codes, w >= 0)
    assert_same(lowprec.decode(codes, fmt).astype(np.float32), lowprec.quantize(w, fmt))


@settings(max_examples=60, deadline=None)
@given(weights, st.sampled_from([None, 0]))
def test_twn_threshold_and_scale(w, axis):
    a = np.abs(w.astype(np.float64))
    rows = a.reshape(1, -1) if axis is None else a
    delta = 0.7 * rows.mean(axis=1)
    above = rows > delta[:, None]
    if not above.any(axis=1).all():
        return
    alpha = np.array([r[m].mean() for r, m in zip(rows, above)])
    fmt = fit_twn(w, axis)
    np.testing.assert_allclose(fmt.delta, delta if axis is not None else delta[0], rtol=1e-15)
    np.testing.assert_allclose(fmt.w_p, alpha if axis is not None else alpha[0], rtol=1e-15)
    d, al = (delta[:, None], alpha[:, None]) if axis is not None else (delta[0], alpha[0])
    expected = np.where(w > d, al, np.where(w < -d, -al, 0.0)).astype(np.float32)
    assert_same(lowprec.quantize(w, fmt) + 0.0, expected + 0.0)
    codes = lowprec.encode(w, fmt)
    nz, neg = pack_ternary(np.sign(expected), axis=-1)
    np.testing.assert_array_equal(np.packbits(codes & 1 == 1, axis=-1), nz)
    np.testing.assert_array_equal(np.packbits(codes >> 1 == 1, axis=-1), neg)


def test_ttq_uses_the_callers_scales_and_a_max_threshold():
    w = np.array([[-1.0, -0.04, 0.02, 0.5, 2.0]], np.float32)
    fmt = fit_ttq(w, w_p=1.5, w_n=0.25, t=0.05)
    assert fmt.delta == pytest.approx(0.1)
    assert lowprec.quantize(w, fmt).tolist() == [[-0.25, 0.0, 0.0, 1.5, 1.5]]


def test_binaryconnect_stochastic_is_unbiased_and_seeded():
    fmt = BinaryFormat(1.0)
    x = np.full(100000, 0.3, np.float32)  # +1 with probability (0.3 + 1) / 2 = 0.65
    q = lowprec.quantize(x, fmt, "stochastic", seed=2)
    assert abs((q > 0).mean() - 0.65) < 0.01
    assert_same(q, lowprec.quantize(x, fmt, "stochastic", seed=2))
    assert (lowprec.quantize(np.array([2.0, -2.0], np.float32), fmt, "stochastic", seed=0) == [1, -1]).all()
    bits = pack_binary(np.sign(q + 0.0))
    assert bits.shape == (12500,)


# -- integer affine ---------------------------------------------------------------------------------------
def _exact_affine(x: float, scale: float, zp: int, qmin: int, qmax: int, mode: str) -> int:
    r = Fraction(float(x)) / Fraction(scale)
    fl = math.floor(r)
    frac = r - fl
    if frac == 0:
        k = fl
    elif mode == "nearest_even":
        k = fl + (frac > Fraction(1, 2) or (frac == Fraction(1, 2) and fl % 2 == 1))
    elif mode == "nearest_away":
        k = fl + (frac >= Fraction(1, 2)) if r > 0 else fl + (frac > Fraction(1, 2))
    elif mode == "up":
        k = fl + 1
    elif mode == "down":
        k = fl
    else:  # toward_zero
        k = fl if r > 0 else fl + 1
    return min(max(k + zp, qmin), qmax)


@pytest.mark.parametrize("mode", ["nearest_even", "nearest_away", "up", "down", "toward_zero"])
@pytest.mark.parametrize("signed, narrow, zp", [(True, False, 0), (True, True, 0), (False, False, 128), (True, False, -7)])
def test_affine_rounds_x_over_scale_once(mode, signed, narrow, zp):
    scale = 0.1  # not a power of two: x / scale is inexact in float
    fmt = IntAffineFormat(8, scale, zp, signed=signed, narrow=narrow)
    ties = (np.arange(-300, 300) + 0.5) * scale
    x = np.concatenate([ties, RNG.standard_normal(2000) * 10, [30.0, -30.0, 0.0]])
    for dtype in (np.float32, np.float64):
        xd = x.astype(dtype)
        q = lowprec.encode(xd, fmt, mode)
        expected = [_exact_affine(v, scale, zp, fmt.qmin, fmt.qmax, mode) for v in xd]
        np.testing.assert_array_equal(q.astype(np.int64), expected)
        values = lowprec.quantize(xd, fmt, mode)
        exact = [(Fraction(int(k) - zp) * Fraction(scale)) for k in expected]
        assert_same(values, np.array([float(v) for v in exact]).astype(dtype) if dtype == np.float64
                    else np.array([_float32_of(v) for v in exact], np.float32))  # rounded once


def test_affine_matches_torch_fake_quantize_away_from_ties():
    torch = pytest.importorskip("torch")
    x = torch.randn(10000) * 3
    scale, zp = 0.0625, 3  # a power of two: x * (1 / scale) is exact, so torch rounds once too
    ours = lowprec.quantize(x, IntAffineFormat(8, scale, zp, signed=False))
    theirs = torch.fake_quantize_per_tensor_affine(x, scale, zp, 0, 255)
    assert torch.equal(ours, theirs)
    per_channel = IntAffineFormat(8, np.array([0.5, 0.25]), np.array([0, 1]), axis=1)
    w = torch.randn(7, 2) * 20
    theirs = torch.fake_quantize_per_channel_affine(w, torch.tensor([0.5, 0.25]), torch.tensor([0, 1], dtype=torch.int32), 1, -128, 127)
    assert torch.equal(lowprec.quantize(w, per_channel), theirs)


def test_affine_round_trip_nan_and_codes():
    fmt = IntAffineFormat(4, 0.5, 0, signed=True)
    x = np.array([-10.0, -0.3, 0.2, 3.7, np.inf], np.float32)
    codes = lowprec.encode(x, fmt)
    assert codes.dtype == np.int8 and codes.tolist() == [-8, -1, 0, 7, 7]
    assert lowprec.decode(codes, fmt).tolist() == [-4.0, -0.5, 0.0, 3.5, 3.5]
    assert np.isnan(lowprec.quantize(np.array([np.nan], np.float32), fmt)).all()
    with pytest.raises(ValueError, match="NaN"):
        lowprec.encode(np.array([np.nan]), fmt)


@pytest.mark.parametrize("factory, match", [
    (lambda: IntAffineFormat(1, 0.1), "bits"),
    (lambda: IntAffineFormat(33, 0.1), "bits"),
    (lambda: IntAffineFormat(8, 0.0), "scale"),
    (lambda: IntAffineFormat(8, -1.0), "scale"),
    (lambda: IntAffineFormat(8, np.nan), "scale"),
    (lambda: IntAffineFormat(8, 0.1, 200), "zero_point"),
    (lambda: IntAffineFormat(8, 0.1, 0.5), "zero_point"),
    (lambda: BinaryFormat(0.0), "alpha"),
    (lambda: TernaryFormat(1.0, 1.0, -0.1), "delta"),
    (lambda: fit_twn(np.zeros(4)), "nonzero"),
    (lambda: fit_twn(np.array([[1.0, 2.0], [0.0, 0.0]]), axis=0), "w_p"),
])
def test_bad_parameters(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_per_channel_shape_mismatch():
    fmt = IntAffineFormat(8, np.array([0.1, 0.2]), axis=0)
    with pytest.raises(ValueError, match="channels"):
        lowprec.quantize(np.ones((3, 2), np.float32), fmt)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic"])
def test_affine_c_kernel_equals_the_numpy_path(mode, dtype):
    """csrc/affine_impl.h against lowprec.array.scaled's numpy rule (_affine): per tensor and per
    channel along the last axis (each element its own channel), every mode with the same stochastic
    draws, ties, NaN, Inf, zeros of both signs, quotients past 2**52 and 2**62."""
    from lowprec.scaled import _affine

    rng = np.random.default_rng(8)
    for fmt in (IntAffineFormat(8, 0.1, 3), IntAffineFormat(4, 0.37, 1, signed=False, narrow=True),
                IntAffineFormat(16, 2.0**-7, -100), IntAffineFormat(8, [0.1, 0.03, 0.5], [0, 2, -5], axis=1),
                IntAffineFormat(32, 1e-9, 7)):  # quotients past 2**52 and 2**62 (the float route's limits)
        ties = (np.arange(-300, 300) + 0.5) * (fmt.scale if np.ndim(fmt.scale) == 0 else 0.1)
        x = np.concatenate([ties, rng.standard_normal(3000) * 20, [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30],
                            rng.standard_normal(300) * 2.0 ** rng.integers(20, 50, 300)])
        x = x[: len(x) // 3 * 3].reshape(-1, 3).astype(dtype)
        got = lowprec.quantize(x, fmt, mode, seed=4)
        expected = _affine(x, fmt, mode, 4)[0].astype(dtype)
        assert_same(got, expected, f"{fmt} {mode}")


@pytest.mark.parametrize("mode", ["up", "down", "odd", "nearest_even", "nearest_away", "toward_zero", "stochastic"])
def test_affine_float32_quotients_near_integers_at_every_scale(mode):
    """float32 x the nearest float to k * s and its two neighbours, so x / s lies within a hair of an
    integer on either side (where a directed rounding needs the quotient's exact side: csrc/affine_impl.h
    rounds it to odd), for random 53-bit scales from 2**-149 (subnormal x) to 2**120, extreme ones
    (2**-201 ... 2**201; 2**+-900, the AVX-512 kernel's limits, and past them) and plain ones; per
    tensor and per channel, against the numpy rule."""
    from lowprec.scaled import _affine

    rng = np.random.default_rng(29)
    k = np.arange(-120, 121, dtype=np.float64)
    scales = list((1 + rng.random(24)) * 2.0 ** rng.integers(-149, 120, 24))
    scales += [2.0**-200, 2.0**200, 2.0**-201, 2.0**201, 0.1, 1.0]
    scales += [2.0**-900, 2.0**900, 2.0**-901 * 1.5, 2.0**901]  # the division-free kernel's range and past it
    for s in scales:
        near = np.concatenate([np.array(k * s, np.float32), np.array((k + 0.5) * s, np.float32)])  # and ties
        x = np.concatenate([near, np.nextafter(near, np.float32(np.inf)), np.nextafter(near, np.float32(-np.inf)),
                            [np.float32(1e-45), np.float32(-1e-45), np.float32(3e38), np.inf, 0.0, -0.0]])
        x = x.astype(np.float32)
        fmt = IntAffineFormat(16, s, 3)
        assert_same(lowprec.quantize(x, fmt, mode, seed=2), _affine(x, fmt, mode, 2)[0].astype(np.float32),
                    f"scale {s!r} {mode}")
    per = IntAffineFormat(16, np.array(scales[:6]), 0, axis=1)
    x = (rng.standard_normal((300, 6)) * 50 * per.scale).astype(np.float32)
    assert_same(lowprec.quantize(x, per, mode, seed=2), _affine(x, per, mode, 2)[0].astype(np.float32), "per channel")


@pytest.mark.parametrize("mode", ["nearest_even", "up", "stochastic"])
def test_affine_c_kernel_per_channel_on_every_axis_and_out(mode):
    """Per-channel parameters on the first, a middle and the last axis of an array spanning several
    of the kernel's 1024-element units (channel runs crossing them), against the numpy rule; and
    out=: in place, a separate array, and an overlapping view (the same values each time)."""
    from lowprec.array.scaled import _affine

    rng = np.random.default_rng(31)
    x = (rng.standard_normal((6, 7, 300)) * 4).astype(np.float32)
    for axis, size in ((0, 6), (1, 7), (2, 300), (-1, 300)):
        fmt = IntAffineFormat(8, np.linspace(0.01, 0.2, size), rng.integers(-5, 5, size), axis=axis)
        expected = _affine(x, fmt, mode, 9)[0].astype(np.float32)
        assert_same(lowprec.quantize(x, fmt, mode, seed=9), expected, f"axis {axis} {mode}")
    fmt = IntAffineFormat(8, np.linspace(0.01, 0.2, 7), np.arange(7) - 3, axis=1)
    expected = _affine(x, fmt, mode, 9)[0].astype(np.float32)
    inplace = x.copy()
    assert lowprec.quantize(inplace, fmt, mode, seed=9, out=inplace) is inplace
    assert_same(inplace, expected, "in place")
    apart = np.empty_like(x)
    assert lowprec.quantize(x, fmt, mode, seed=9, out=apart) is apart
    assert_same(apart, expected, "out apart")
    buf = np.concatenate([x.reshape(-1), np.zeros(1, np.float32)])
    src, dst = buf[1:].reshape(x.shape), buf[:-1].reshape(x.shape)  # dst overlaps src shifted by one
    src_copy = src.copy()
    lowprec.quantize(src, fmt, mode, seed=9, out=dst)
    assert_same(dst, _affine(src_copy, fmt, mode, 9)[0].astype(np.float32), "overlapping out")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_and_ternary_c_kernels_equal_the_numpy_rules(dtype):
    """csrc/scaled_impl.h against lowprec.array.scaled's numpy statement of the rules: per tensor and
    per channel (first, middle and last axis), sign and BinaryConnect's stochastic rounding (the same
    draws), thresholds, NaN, Inf, zeros of both signs, arrays spanning several 1024-element units."""
    from lowprec.array.scaled import _binary, _ternary

    rng = np.random.default_rng(12)
    x = (rng.standard_normal((4, 5, 300)) * 2).astype(dtype)
    x[0, 0, :5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    formats_ = [BinaryFormat(0.7), BinaryFormat(np.linspace(0.25, 2.0, 5), axis=1),
                BinaryFormat(np.linspace(0.5, 1.0, 300), axis=2), BinaryFormat(np.array([0.5, 1, 2, 4.0]), axis=0),
                TernaryFormat(0.9, 1.1, 0.3), TernaryFormat(np.linspace(1, 2, 5), np.linspace(0.5, 1, 5),
                                                            np.linspace(0.1, 0.5, 5), axis=1)]
    for fmt in formats_:
        for mode in ("nearest_even", "stochastic"):
            got = lowprec.quantize(x, fmt, mode, seed=21)
            if isinstance(fmt, BinaryFormat):
                expected = _binary(x, fmt, mode, 21)[0]
            else:
                expected = _ternary(x, fmt)[0]
            assert_same(got, expected.astype(dtype), f"{fmt} {mode}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_channel_kernels_for_every_run_length(dtype):
    """The C kernels' channel of each element, (i / inner) % channels, where runs are short (each
    element its own channel, or a few elements: per-element parameters), at the switch to runs (63, 64,
    65) and with more channels than a 1024-element unit holds (the channel wrapping inside a unit and
    across units): affine in three modes, binary (sign and stochastic) and ternary, against the numpy
    rules."""
    from lowprec.array.scaled import _affine, _binary, _ternary

    rng = np.random.default_rng(41)
    for channels, inner in ((1500, 1), (7, 1), (5, 2), (3, 5), (11, 63), (2, 64), (3, 65), (1030, 3)):
        x = (rng.standard_normal((3, channels, inner)) * 3).astype(dtype)
        x[0, 0, 0], x[-1, -1, -1] = np.nan, -0.0
        spread = np.linspace(0.5, 2.0, channels)
        for fmt in (IntAffineFormat(8, 0.05 * spread, rng.integers(-9, 9, channels), axis=1),
                    BinaryFormat(spread, axis=1), TernaryFormat(spread, spread[::-1], 0.3 * spread, axis=1)):
            for mode in ("nearest_even", "up", "stochastic") if isinstance(fmt, IntAffineFormat) else (
                    "nearest_even", "stochastic"):
                got = lowprec.quantize(x, fmt, mode, seed=5)
                if isinstance(fmt, IntAffineFormat):
                    expected = _affine(x, fmt, mode, 5)[0]
                elif isinstance(fmt, BinaryFormat):
                    expected = _binary(x, fmt, mode, 5)[0]
                else:
                    expected = _ternary(x, fmt)[0]
                assert_same(got, expected.astype(dtype), f"{type(fmt).__name__} {channels}x{inner} {mode}")


def test_affine_stochastic_at_every_draws_threshold():
    """Stochastic rounding of x / scale to an integer against exact integers: round away from zero iff
    F + r >= 2**64, F the fraction |x / scale| - floor times 2**64 rounded to nearest even, r the 64-bit
    draw (lowprec.reference's Philox, the core's layout). Inputs sit at each element's own threshold:
    F = 2**64 - r rounded up and down to the grid of q in [1, 2), the exact threshold and a tie of F's
    rounding on either side of it for tiny quotients (the largest draws, where 2**64 - r < 2**52), and
    quotients below 2**-12, at 2**52 and beyond the clamp; both signs, across 1024-element units."""
    from lowprec.kernels.rounding import seed_key
    from lowprec.reference import element_random

    n, seed = 1 << 16, 77
    r = [int(v) for v in element_random(n, np.float64, seed_key(seed))]
    rng = np.random.default_rng(3)
    x = []
    for i, ri in enumerate(r):
        gap = (1 << 64) - ri  # F reaching this carries
        kind = i % 8
        if gap < 1 << 52:  # tiny quotients at the threshold and at ties of F's rounding next to it
            x.append(float(Fraction(gap - (i % 3), 1 << 64)) if i % 2 else float(Fraction(2 * gap - 1 - 2 * (i % 3 == 1), 1 << 65)))
        elif kind < 2:  # q in [1, 2): F a multiple of 2**12, just above or below the threshold
            f = -(-gap >> 12) if kind == 0 else gap >> 12
            x.append(1.0 + f * 2.0**-52 if f < 1 << 52 else 1.5)
        elif kind == 2:
            x.append(float(rng.uniform(0, 1)) * 2.0 ** int(rng.integers(-80, -10)))
        elif kind == 3:
            x.append(float(rng.uniform(0, 1)))
        elif kind == 4:
            x.append(float(rng.standard_normal() * 2.0 ** int(rng.integers(0, 30))))
        elif kind == 5:
            x.append(float(rng.choice([2.0**52 + 1, 2.0**52 - 0.5, 2.0**62 * 3, 2.0**31 - 0.25, 0.0, 5e-324])))
        else:
            x.append(float(rng.standard_normal() * 10))
    x = np.array(x) * np.where(np.arange(n) % 16 < 8, 1.0, -1.0)
    fmt = IntAffineFormat(32, 1.0, 0)  # x / 1 is exact: the quotient is x
    got = lowprec.quantize(x, fmt, "stochastic", seed=seed)
    expected = []
    for xi, ri in zip(x.tolist(), r):
        q = abs(Fraction(xi))
        whole = math.floor(q)
        frac = round((q - whole) * (1 << 64))  # Python rounds halves to even
        k = whole + (frac + ri >= 1 << 64)
        expected.append(min(max(-k if xi < 0 else k, fmt.qmin), fmt.qmax))
    assert_same(got, np.array(expected, np.float64))
    near = sum(1 for ri in r if (1 << 64) - ri < 1 << 52)
    assert near >= 4  # the threshold cases exist (about 16 expected)


def _float32_of(v: Fraction) -> np.float32:
    """v (within float32's finite range) rounded once to float32, nearest even: not float32(float(v)),
    which rounds twice."""
    d = np.float32(float(v))
    cands = [c for c in (np.nextafter(d, np.float32(-np.inf)), d, np.nextafter(d, np.float32(np.inf))) if np.isfinite(c)]
    return min(cands, key=lambda c: (abs(Fraction(float(c)) - v), int(c.view(np.uint32)) & 1))


def test_affine_products_that_double_rounding_would_get_wrong():
    """(q - zp) * scale rounded once to float32: products whose nearest double is a float32 midpoint
    while the exact product is not (rounding to double, then to float, would tie to even the wrong
    way), per tensor and per channel, against exact rationals; and x / scale landing on half-integers
    that the exact quotient misses, both ways."""
    cases = []
    for mid in (1 + 2.0**-24, 1.5 + 2.0**-24, 1.75 - 2.0**-24):  # float32 midpoints
        for m in range(3, 128, 2):
            s = float(Fraction(mid) / m)
            exact = Fraction(m) * Fraction(s)
            if float(exact) == mid and exact != mid:  # the nearest double is the midpoint, the product is not
                cases.append((m, s, exact))
    assert len(cases) > 20
    m, s, exact = (np.array(c) for c in zip(*cases))
    x = (m * s).astype(np.float32)  # x / s rounds to m
    expected = np.array([_float32_of(e) for e in exact], np.float32)
    assert np.any(expected != np.array([np.float32(float(e)) for e in exact], np.float32))  # twice would differ
    for i, si in enumerate(s.tolist()):
        got = lowprec.quantize(x[i:i + 1], IntAffineFormat(8, si, 0))
        assert_same(got, expected[i:i + 1], f"m={m[i]} s={si!r}")
        # stochastic rounding keeps m here (x / s lies within about 2**-24 of it; these draws keep it),
        # and its product takes the same one rounding (the fused AVX-512 pass rounds it apart)
        got = lowprec.quantize(x[i:i + 1], IntAffineFormat(8, si, 0), "stochastic", seed=3)
        assert_same(got, expected[i:i + 1], f"stochastic m={m[i]} s={si!r}")
    per_channel = IntAffineFormat(8, s, np.zeros(len(s), np.int64), axis=1)
    assert_same(lowprec.quantize(x[None, :], per_channel), expected[None, :], "per channel")
    # quotients a half-integer in double but not exactly: the odd fix decides, nearest even and away
    scale = 0.1
    ties = (np.arange(-2000, 2000) + 0.5) * scale
    fmt = IntAffineFormat(16, scale, 0)
    for mode in ("nearest_even", "nearest_away"):
        for xs in (ties, ties.astype(np.float32)):
            want = [_exact_affine(v, scale, 0, fmt.qmin, fmt.qmax, mode) for v in xs.tolist()]
            values = [Fraction(k) * Fraction(scale) for k in want]
            expected = (np.array([float(v) for v in values]) if xs.dtype == np.float64
                        else np.array([_float32_of(v) for v in values], np.float32))
            assert_same(lowprec.quantize(xs, fmt, mode), expected, f"{mode} {xs.dtype}")
            q = xs.astype(np.float64) / scale
            assert np.any(q % 1 == 0.5) and np.any(np.array(want) != np.where(q > 0, np.floor(q + 0.5), np.ceil(q - 0.5)))
