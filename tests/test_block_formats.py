"""Block-scaled formats (OCP MX, BFP, NVFP4): the spec's rules by hand, gfloat's MX block encoding,
the exact-rational reference on generated blocks, encode/decode, axes, padding and bad input."""

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowprec
from lowprec import formats
from lowprec.formats import SCALE_RULES, BlockFormat, bfp
from lowprec.block_reference import quantize_blocks_reference, scale_exponent

from helpers import assert_same

MX = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8"]
MODES = ["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic"]
RNG = np.random.default_rng(7)


def _blocks(n, block, dtype, rng=RNG):
    """Blocks of varied magnitude: each block its own binade spread, some subnormal-only, some zero."""
    x = rng.standard_normal((n, block)) * np.exp2(rng.integers(-40, 40, (n, 1)))
    x *= np.exp2(rng.integers(-12, 1, (n, block)))  # spread within a block: small elements flush
    x[0] = 0.0
    x[1] = np.finfo(dtype).smallest_subnormal * rng.integers(-5, 6, block)
    x[2, ::2] = 0.0
    return x.astype(dtype)


# -- the spec's rules, by hand -----------------------------------------------------------------------
def test_spec_saturation_surprise_957_becomes_896_under_floor():
    x = np.zeros(32, np.float32)
    x[:2] = [960.0, 957.0]
    q = lowprec.quantize(x, "mxfp8_e4m3")
    assert q[0] == 896.0 and q[1] == 896.0  # scale 2**(9 - 8) = 2; 960/2 = 480 saturates to 448
    codes, scales = lowprec.encode(x, "mxfp8_e4m3")
    assert scales.tolist() == [128] and codes[0] == 0x7E  # e = 1; 448 is S.1111.110
    rceil = formats.get("mxfp8_e4m3").with_(rule="rceil")
    assert lowprec.quantize(x, rceil)[0] == 960.0  # scale 4: 960/4 = 240 fits, never saturates


@pytest.mark.parametrize("rule, amax, expected", [
    ("floor", 6.0, 0), ("floor", 7.9, 0), ("floor", 8.0, 1), ("ceil", 6.0, 1), ("ceil", 4.0, 0),
    ("rceil", 6.0, 0), ("rceil", 6.5, 1), ("rceil", 3.0, -1), ("even", 6.9, 0), ("even", 7.0, 1),
    ("even", 5.9, 0), ("floor", 0.0, -127), ("floor", 1e-45, -127), ("floor", 3e38, 125),
])
def test_scale_exponent_rules_for_fp4_elements(rule, amax, expected):
    fmt = formats.get("mxfp4_e2m1").with_(rule=rule)  # element emax 2, max 6, 1 mantissa bit
    x = np.zeros(32, np.float32)
    x[5] = -amax
    assert scale_exponent(x, fmt) == expected
    _, scales = lowprec.encode(x, fmt)
    assert int(scales[0]) == expected + 127


def test_nan_and_inf_blocks_get_a_nan_scale_and_decode_to_nan():
    x = np.ones((3, 32), np.float32)
    x[0, 3] = np.nan
    x[1, 7] = -np.inf
    q = lowprec.quantize(x, "mxfp8_e5m2")
    assert np.isnan(q[:2]).all() and (q[2] == 1).all()
    enc = lowprec.encode(x, "mxfp8_e5m2")
    assert enc.scales.ravel().tolist() == [255, 255, 127 - 15]  # e = floor(log2 1) - emax(e5m2)
    assert np.isnan(lowprec.decode(enc, "mxfp8_e5m2")[:2]).all()


def test_zero_and_subnormal_only_blocks():
    x = np.zeros((2, 32), np.float32)
    x[1, :4] = [1e-45, -2e-45, 3e-45, 0.0]  # float32 subnormals only
    q = lowprec.quantize(x, "mxfp8_e4m3")
    assert_same(q[0], np.zeros(32, np.float32))
    _, scales = lowprec.encode(x, "mxfp8_e4m3")
    assert scales.ravel().tolist() == [0, 0]  # 2**-127: clipped for both
    # the smallest nonzero value is 2**-127 * 2**-9 (e4m3's min subnormal) = 2**-136: these flush
    assert_same(q[1, :4], np.array([0.0, -0.0, 0.0, 0.0], np.float32))
    assert lowprec.quantize(x[1] * 2.0**13, "mxfp8_e4m3", "up")[0] == 2.0**-136


# -- gfloat's MX blocks ---------------------------------------------------------------------------
GFLOAT_MX = {"mxfp8_e4m3": "format_info_mxfp8_e4m3", "mxfp8_e5m2": "format_info_mxfp8_e5m2",
             "mxfp6_e3m2": "format_info_mxfp6_e3m2", "mxfp6_e2m3": "format_info_mxfp6_e2m3",
             "mxfp4_e2m1": "format_info_mxfp4_e2m1", "mxint8": "format_info_mxint8"}
GFLOAT_MODES = {"nearest_even": "TiesToEven", "nearest_away": "TiesToAway", "toward_zero": "TowardZero",
                "up": "TowardPositive", "down": "TowardNegative"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", sorted(GFLOAT_MODES))
@pytest.mark.parametrize("name", MX)
def test_matches_gfloat_block_encoding(name, mode, dtype):
    pytest.importorskip("gfloat.formats")  # the submodule, an attribute of the package from here on
    gfloat = pytest.importorskip("gfloat")

    fi = getattr(gfloat.formats, GFLOAT_MX[name])
    rnd = getattr(gfloat.RoundMode, GFLOAT_MODES[mode])
    blocks = _blocks(40, 32, dtype)
    codes, scales = lowprec.encode(blocks, name, mode)
    values = lowprec.quantize(blocks, name, mode)
    for i, b in enumerate(blocks):
        scale = gfloat.compute_scale_amax(fi.etype.emax, b.astype(np.float64))
        enc = list(gfloat.encode_block(fi, scale, b.astype(np.float64) / scale, rnd))
        assert int(scales[i, 0]) == enc[0], (i, scale)
        np.testing.assert_array_equal(codes[i], enc[1:], err_msg=f"block {i}")
        theirs = np.array(list(gfloat.decode_block(fi, enc)))
        assert_same(values[i].astype(np.float64), theirs, f"{name} {mode} block {i}")


# -- the exact-rational reference on generated blocks -------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", SCALE_RULES)
@pytest.mark.parametrize("name", MX)
def test_every_rule_and_mode_matches_the_reference(name, rule, dtype):
    fmt = formats.get(name).with_(rule=rule)
    blocks = _blocks(70, 32, dtype)  # 2240 elements: more than one 1024-element chunk
    for mode in MODES:
        seed = 99 if mode == "stochastic" else None
        ours = lowprec.quantize(blocks, fmt, mode, seed=seed)
        ref, exps = quantize_blocks_reference(blocks, fmt, mode, seed=seed)
        assert_same(ours, ref, f"{name} {rule} {mode}")
        _, scales = lowprec.encode(blocks, fmt, mode, seed=seed)
        assert scales.ravel().tolist() == [255 if e is None else e + 127 for e in exps]


def _extreme_blocks(top, dtype, rng=RNG):
    """A block of largest magnitude about 2**top, with dtype subnormals and midpoints of the element
    grids among its members, and an all-zero block."""
    info = np.finfo(dtype)
    b = rng.standard_normal(32) * 2.0 ** (top - 2)
    b[:4] = [2.0 ** top * 1.5, -(2.0 ** top) * 1.75, 2.0 ** top * 1.03125, 0.0]
    b[4:10] = info.smallest_subnormal * rng.integers(-40, 41, 6)  # flush or round against the block
    b[10:16] = (2.0 ** (top - 3)) * (1 + rng.integers(0, 8, 6) / 8 + 1 / 16)  # midpoints
    return np.array([b, np.zeros(32)]).astype(dtype)


# the ends of the scale range, where the kernel's one-pass route (2**e and 2**-e normal for every
# block of a 1024-element chunk) hands over to the two-step one
@pytest.mark.parametrize("top", [-126, -122, -118, -100, 100, 120, 124, 126, 127])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", MX)
def test_blocks_at_the_ends_of_the_scale_range_match_the_reference(name, dtype, top):
    x = _extreme_blocks(top, dtype)
    for rule in SCALE_RULES:
        fmt = formats.get(name).with_(rule=rule)
        for mode in MODES:
            seed = 3 if mode == "stochastic" else None
            ref, _ = quantize_blocks_reference(x, fmt, mode, seed=seed)
            assert_same(lowprec.quantize(x, fmt, mode, seed=seed), ref, f"{fmt} {mode}")
            inplace = x.copy()
            lowprec.quantize(inplace, fmt, mode, seed=seed, out=inplace)
            assert_same(inplace, ref, f"{fmt} {mode} in place")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(MX), st.sampled_from(SCALE_RULES), st.sampled_from(MODES),
       st.integers(1, 40), st.sampled_from([np.float32, np.float64]), st.data())
def test_generated_blocks_match_the_reference(name, rule, mode, block, dtype, data):
    fmt = formats.get(name).with_(rule=rule, block=block)
    nblocks = data.draw(st.integers(1, 6))
    blocks = data.draw(hnp.arrays(dtype, (nblocks, block), elements=st.floats(
        width=32 if dtype == np.float32 else 64, allow_nan=True, allow_infinity=True)))
    ours = lowprec.quantize(blocks, fmt, mode, seed=5)
    ref, _ = quantize_blocks_reference(blocks, fmt, mode, seed=5)
    assert_same(ours, ref, f"{fmt} {mode}")


# -- encode / decode, axes, padding, torch -------------------------------------------------------------
@pytest.mark.parametrize("name", MX + ["nvfp4"])
def test_decode_of_encode_is_quantize(name):
    x = RNG.standard_normal((4, 96)).astype(np.float32) * 10
    enc = lowprec.encode(x, name)
    assert enc.codes.shape == x.shape and enc.codes.dtype == formats.get(name).element.code_dtype
    assert enc.scales.shape == (4, 96 // formats.get(name).block)
    decoded = lowprec.decode(enc, name)
    assert decoded.dtype == np.float32  # the encoded array's: bit for bit quantize's result
    assert_same(decoded, lowprec.quantize(x, name))
    exact = lowprec.decode(enc.codes, name, enc.scales, tensor_scale=enc.tensor_scale)
    assert exact.dtype == np.float64  # exact: NVFP4's two-level products can be wider than float32
    assert_same(exact.astype(np.float32), decoded)
    x64 = x.astype(np.float64)
    assert_same(lowprec.decode(lowprec.encode(x64, name), name), lowprec.quantize(x64, name))


def test_axis_and_partial_blocks():
    x = RNG.standard_normal((50, 3)).astype(np.float32)
    along0 = lowprec.quantize(x, "mxfp6_e2m3", axis=0)
    assert_same(along0, lowprec.quantize(x.T.copy(), "mxfp6_e2m3").T)
    padded = np.zeros((3, 64), np.float32)
    padded[:, :50] = x.T
    assert_same(along0.T, lowprec.quantize(padded, "mxfp6_e2m3")[:, :50])
    codes, scales = lowprec.encode(x, "mxfp6_e2m3", axis=0)
    assert scales.shape == (2, 3)
    assert_same(lowprec.decode(codes, "mxfp6_e2m3", scales, axis=0), along0.astype(np.float64))
    with pytest.raises(ValueError, match="multiple of the block size"):
        lowprec.quantize(x, "mxfp6_e2m3", axis=0, pad="raise")


def test_torch_tensors_in_and_out():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 64)
    q = lowprec.quantize(x, "mxfp4_e2m1")
    assert isinstance(q, torch.Tensor) and q.dtype == torch.float32
    assert_same(q.numpy(), lowprec.quantize(x.numpy(), "mxfp4_e2m1"))
    codes, scales = lowprec.encode(x, "mxfp4_e2m1")
    assert isinstance(codes, torch.Tensor) and isinstance(scales, torch.Tensor)


def test_input_is_never_written_and_out_is():
    x = RNG.standard_normal(64).astype(np.float32)
    keep = x.copy()
    out = np.empty_like(x)
    assert lowprec.quantize(x, "mxfp8_e4m3", out=out) is out
    assert_same(x, keep)
    assert_same(out, lowprec.quantize(x, "mxfp8_e4m3"))


def test_bfp_is_mxint_layout_with_any_width():
    assert bfp(8, 32) == BlockFormat(formats.get("q2.6"), 32)
    x = RNG.standard_normal(64).astype(np.float32)
    assert_same(lowprec.quantize(x, bfp(8, 32)), lowprec.quantize(x, "mxint8"))
    q = lowprec.quantize(x, bfp(4, 16))
    # elements k * 2**-2 with k a 4-bit integer, scale 2**floor(log2 amax) (the element's emax is 0)
    e = np.floor(np.log2(np.abs(x.reshape(4, 16)).max(axis=1))).astype(int)
    k = q.reshape(4, 16) / np.ldexp(1.0, e)[:, None] * 4
    assert np.all((k >= -8) & (k <= 7)) and np.all(np.mod(k, 1) == 0)
    assert np.abs(k).max() >= 4  # the block max keeps its leading bit


# -- NVFP4 -----------------------------------------------------------------------------------------
def test_nvfp4_two_level_scales_by_hand():
    x = np.zeros(32, np.float32)
    x[0], x[1], x[16] = 2688.0, 100.0, 3.0
    enc = lowprec.encode(x, "nvfp4")
    g = enc.tensor_scale
    assert g == float(np.float32(2688.0 / (448 * 6)))  # = 1.0
    scales = lowprec.decode(enc.scales, "fp8_e4m3fn")
    assert scales.tolist() == [448.0, 0.5]  # 2688 / 6; 3 / 6
    q = lowprec.quantize(x, "nvfp4")
    assert q[0] == 2688.0 and q[1] == 448.0 * 0.0 + 448.0 * 0.0 + 0.0 or q[1] == 0.0
    assert q[16] == 3.0
    assert_same(lowprec.decode(enc, "nvfp4"), q)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_scaled_blocks_in_c_are_the_numpy_rule(dtype):
    """The C kernel of float-scaled blocks (csrc/fscale_impl.h) against float_scale_quantize, the
    numpy statement of the rule: values, element values, scales and the tensor scale, every mode (and
    rbits), NVFP4 and kin (no tensor scale; 8-element blocks of fp6 with e5m2 scales; blocks of 7 that
    straddle the kernel's 1024-element chunks), NaN and Inf blocks, zero blocks, tiny blocks that take
    the smallest scale, blocks beyond the largest one, members whose quotients leave float's normal
    range (subnormal members; a tiny given tensor scale)."""
    from lowprec.array.block import float_scale_quantize, float_scale_quantize_c

    formats_ = [lowprec.formats.get("nvfp4"), BlockFormat("fp4_e2m1fn", block=16, scale="fp8_e4m3fn"),
                BlockFormat("fp6_e3m2fn", block=8, scale="fp8_e5m2", tensor_scale=True),
                BlockFormat("fp8_e4m3fn", block=7, scale="fp8_e4m3fn", tensor_scale=True)]
    for fmt in formats_:
        x = _blocks(3000 // fmt.block, fmt.block, dtype)
        x[3, 0], x[4, 1], x[5] = np.inf, np.nan, 1e-30
        x[6] = np.finfo(np.float32).max
        x[7, :3] = 1.0, 1e-40, -3e-39  # quotients below float's normal range (float32's subnormal members)
        cases = [(m, None, None) for m in MODES] + [("stochastic", 5, None)]
        cases += [(m, None, 1e-30) for m in ("nearest_even", "up", "odd", "stochastic")]  # a given tensor scale: huge quotients
        cases += [("stochastic", None, 1e-70)]  # divisors below 2**-200
        for mode, rbits, g in cases:
            v0, s0, g0, e0 = float_scale_quantize(x, fmt, mode, 9, rbits, g, start=2048)
            v1, s1, g1, e1 = float_scale_quantize_c(x, fmt, mode, 9, rbits, g, start=2048, want_elements=True)
            context = f"{fmt!r} {mode} rbits={rbits} g={g}"
            assert g0 == g1, context
            assert_same(v1, v0, context)
            assert_same(s1, s0, context + " scales")
            assert_same(e1, e0.astype(np.float64), context + " elements")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_scaled_steps_at_every_threshold(dtype):
    """The steps path of the C kernel (thresholds times scale * g, no division: csrc/fscale_impl.h) on
    inputs at every code and midpoint of fp4_e2m1fn times each block's divisor, and their neighbours
    in the input type, both signs, every deterministic mode: the numpy rule's values and elements.
    NVFP4 (blocks of 16, the unrolled loops), blocks of 8 and of 24 (straddling the 1024-element
    chunks; e5m2 scales, a tensor scale)."""
    from lowprec.array.block import float_scale_quantize, float_scale_quantize_c
    from lowprec.array.rounding_steps import rounding_steps

    rng = np.random.default_rng(11)
    e2m1 = formats.get("fp4_e2m1fn")
    code = e2m1.values()[e2m1.values() >= 0]
    points = np.concatenate([code, (code[:-1] + code[1:]) / 2])
    for fmt in [formats.get("nvfp4"), BlockFormat("fp4_e2m1fn", block=8, scale="fp8_e4m3fn"),
                BlockFormat("fp4_e2m1fn", block=24, scale="fp8_e5m2", tensor_scale=True)]:
        nb = 3000 // fmt.block
        top = (rng.standard_normal(nb) * np.exp2(rng.integers(-20, 20, nb))).astype(dtype)
        big = np.argmax(np.abs(top))  # the tensor scale a power of two: exact ties in float32 too
        top[big] = 2688.0 * 2.0 ** np.ceil(np.log2(np.abs(top[big]) / 2688.0))
        x = np.zeros((nb, fmt.block), dtype)
        x[:, 0] = top  # each block's amax: the others stay at or below it
        _, scales, g, _ = float_scale_quantize(x, fmt, "nearest_even", 0, None)
        sg = scales * g
        t = rng.choice(points, x[:, 1:].shape) * sg[:, None]
        t = t.astype(dtype)
        t = np.where(rng.random(t.shape) < 0.5, t, np.nextafter(t, rng.choice([-np.inf, np.inf], t.shape)).astype(dtype))
        t = np.where(np.abs(t) <= np.abs(top)[:, None], t, 0).astype(dtype)
        x[:, 1:] = t * rng.choice([-1, 1], t.shape).astype(dtype)
        for mode in MODES[:-1]:
            assert rounding_steps(fmt.element, mode) is not None, mode
            v0, s0, g0, e0 = float_scale_quantize(x, fmt, mode, 0, None)
            assert_same(s0, scales, f"{fmt!r}: the scales moved")
            v1, s1, g1, e1 = float_scale_quantize_c(x, fmt, mode, 0, None, want_elements=True)
            context = f"{fmt!r} {mode}"
            assert_same(v1, v0, context)
            assert_same(e1, e0.astype(np.float64), context + " elements")


def test_rounding_steps_read_off_the_format():
    """The thresholds are the format's own rounding: ties of nearest_even to the even code (exclusive
    where the lower code is even), nearest_away inclusive, the directed modes at the codes; None for
    formats of more than 16 magnitudes; stochastic rounding's grid where the format saturates."""
    from lowprec.array.rounding_steps import rounding_steps

    e2m1 = formats.get("fp4_e2m1fn")
    ne = rounding_steps(e2m1, "nearest_even")
    assert ne.steps == 7 and ne.sym == 1 and ne.neg_zero == 1
    assert [ne.pos[j] for j in range(7)] == [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]
    assert [ne.pos_excl[j] for j in range(7)] == [1, 0, 1, 0, 1, 0, 1]
    away = rounding_steps(e2m1, "nearest_away")
    assert [away.pos_excl[j] for j in range(7)] == [0] * 7
    up = rounding_steps(e2m1, "up")
    assert up.sym == 0 and [up.pos[j] for j in range(7)] == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]
    assert [up.neg[j] for j in range(7)] == [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    sr = rounding_steps(e2m1, "stochastic")  # the grid: probed with explicit draws
    assert sr.steps == 7 and sr.neg_zero == 1 and [sr.code[j] for j in range(8)] == [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    ieee = formats.get("e2m1")  # overflows to Inf, not to its largest value: not the steps' rule
    assert rounding_steps(ieee, "stochastic") is None
    assert rounding_steps(dataclasses.replace(ieee, overflow="saturate"), "stochastic").steps == 5
    assert rounding_steps(formats.get("fp6_e2m3fn"), "nearest_even") is None  # 32 magnitudes
    assert rounding_steps(formats.get("fp6_e2m3fn"), "stochastic") is None


def test_a_quotient_below_doubles_range_is_not_zero():
    """x / (scale * g) far below float64's smallest subnormal still rounds up under mode "up" (the
    exact quotient is positive): divide_round_odd gives the smallest subnormal, not 0, in numpy, the C
    division path (fp6 elements) and the C steps path (fp4)."""
    from lowprec._exact import divide_round_odd
    from lowprec.array.block import float_scale_quantize, float_scale_quantize_c

    assert divide_round_odd(np.array([5e-324, -5e-324]), 1e300).tolist() == [5e-324, -5e-324]
    for element in ("fp4_e2m1fn", "fp6_e3m2fn"):
        fmt = BlockFormat(element, block=16, scale="fp8_e4m3fn", tensor_scale=True)
        x = np.zeros((2, 16))
        x[0, 0] = 1e300  # a huge tensor scale
        x[1, :2] = 1e-320, -1e-320
        v0, _, _, e0 = float_scale_quantize(x, fmt, "up", 0, None)
        v1, _, _, e1 = float_scale_quantize_c(x, fmt, "up", 0, None, want_elements=True)
        smallest = float(lowprec.formats.get(element).values()[lowprec.formats.get(element).values() > 0][0])
        assert e0[1, 0] == smallest and e0[1, 1] == -0.0 and np.signbit(e0[1, 1]), element
        assert_same(e1, e0.astype(np.float64), element)
        assert_same(v1, v0, element)
    # integer affine: the C kernel and the numpy rule (encode's codes) take the quotient's sign too
    from lowprec.array.scaled import _affine

    fmt = lowprec.IntAffineFormat(8, 1e10, 0)
    x = np.array([5e-324, -5e-324, 0.0])
    v0, q0 = _affine(x, fmt, "up", None)
    assert q0.tolist() == [1, 0, 0] and v0.tolist() == [1e10, -0.0, 0.0]
    assert_same(lowprec.quantize(x, fmt, "up"), v0)


def test_divide_round_odd_is_exact_enough():
    from fractions import Fraction

    from lowprec.blockscaled import divide_round_odd

    a = RNG.standard_normal(2000)
    b = RNG.standard_normal(2000)
    q = divide_round_odd(a, b)
    for ai, bi, qi in zip(a, b, q):
        exact = Fraction(ai) / Fraction(bi)
        near = Fraction(float(ai / bi))
        assert abs(Fraction(qi) - exact) <= 2 * abs(near - exact) + abs(exact) * Fraction(1, 2**52)
        if Fraction(qi) != exact:
            assert int(np.float64(qi).view(np.int64)) & 1 == 1


# -- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(element="fp8_e4m3fn", block=0), ValueError, "block"),
    (dict(element="fp8_e4m3fn", rule="nearest"), ValueError, "rule"),
    (dict(element="fp8_e4m3fn", scale="e5m0"), ValueError, "unknown format"),
    (dict(element="mxint8"), TypeError, "element"),
    (dict(element="fp4_e2m1fn", scale="fp8_e4m3fn", rule="ceil"), ValueError, "rule"),
    (dict(element="q1.7"), ValueError, "reach 1"),
    (dict(element="fp8_e4m3fn", block=32, tensor_scale=True), ValueError, "tensor_scale"),
])
def test_bad_block_formats(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        BlockFormat(**kwargs)


def test_bad_calls():
    x = np.ones(32, np.float32)
    with pytest.raises(ValueError, match="axis"):
        lowprec.quantize(x, "mxfp8_e4m3", axis=1)
    with pytest.raises(ValueError, match="pad"):
        lowprec.quantize(x, "mxfp8_e4m3", pad="edge")
    with pytest.raises(ValueError, match="0-d"):
        lowprec.quantize(np.float32(1), "mxfp8_e4m3")
    codes, scales = lowprec.encode(x, "mxfp8_e4m3")
    with pytest.raises(TypeError, match="scales"):
        lowprec.decode(codes, "mxfp8_e4m3")
    with pytest.raises(ValueError, match="shape"):
        lowprec.decode(codes, "mxfp8_e4m3", scales[:0])
    with pytest.raises(TypeError, match="block-scaled"):
        lowprec.MAC(acc="mxfp8_e4m3")
    with pytest.raises(ValueError, match="float64 input"):
        lowprec.quantize(x, BlockFormat(formats.get("q2.30"), 32))


def test_float_scaled_stochastic_values_alone_are_the_numpy_rule():
    """Stochastic rounding of float32 float-scaled blocks when only the values are asked for (a
    quantize call: csrc/fscale_impl.h's fused AVX-512 pass where the machine has it; the same
    kernel's two passes elsewhere) against the numpy rule and the C kernel with element values
    asked for (two passes): grids of 7 steps with and without -0 (NVFP4; e2m1 fnuz), 14 and 15 steps
    (a four-level search), blocks of 8, 16, 24 (straddling the 1024-element units) and 32, divisors
    outside [2**-200, 2**200] (a tiny given tensor scale: the division), NaN, Inf, zero and -0 blocks,
    subnormal members, both signs, and an offset into the draws."""
    from lowprec.array.block import float_scale_quantize, float_scale_quantize_c
    from lowprec.formats import FloatFormat

    rng = np.random.default_rng(31)
    fnuz = FloatFormat(2, 1, specials="fnuz", overflow="saturate")
    cases = [formats.get("nvfp4"), BlockFormat(fnuz, block=32, scale="fp8_e4m3fn", tensor_scale=True),
             BlockFormat(FloatFormat(3, 1, specials="fnuz", overflow="saturate"), block=8, scale="fp8_e4m3fn"),
             BlockFormat(FloatFormat(2, 2, specials="fn", overflow="saturate"), block=24, scale="fp8_e5m2",
                         tensor_scale=True)]
    for fmt in cases:
        x = _blocks(6000 // fmt.block, fmt.block, np.float32, rng)
        x[3, 0], x[4, 1], x[5] = np.inf, np.nan, -0.0
        x[6] = np.finfo(np.float32).max * rng.choice([-1, 1], fmt.block)
        x[7, :3] = 1.0, 1e-40, -3e-39
        x[8:40] = (rng.standard_normal((32, fmt.block)) * 3).astype(np.float32)  # ordinary blocks, both signs
        for g in (None, 1e-30, 1e-70):
            for seed in (3, 4):
                v0, *_ = float_scale_quantize(x, fmt, "stochastic", seed, None, g, start=3072)
                v1, *_ = float_scale_quantize_c(x, fmt, "stochastic", seed, None, g, start=3072, want_elements=True)
                v2, s2, _, e2 = float_scale_quantize_c(x, fmt, "stochastic", seed, None, g, start=3072,
                                                       want_scales=False)
                context = f"{fmt!r} g={g} seed={seed}"
                assert s2 is None and e2 is None
                assert_same(v1, v0, context + " (two passes)")
                assert_same(v2, v0, context + " (values alone)")
    q = lowprec.quantize(x.reshape(-1), fmt, "stochastic", seed=5)  # the public path: the same values
    assert_same(q.reshape(x.shape), float_scale_quantize(x, fmt, "stochastic", lowprec.kernels.rounding.seed_key(5),
                                                          None)[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_scaled_stochastic_at_every_draws_threshold(dtype):
    """NVFP4's stochastic rounding by steps (lp_sr_steps: the quotient's place between two codes
    against the element's 64-bit draw, csrc/fscale_impl.h) against the numpy rule (the core quantizer
    on the quotients). Scales are powers of two (block maxima 6 * 2**k, tensor scale 1), so a float64
    member holds its quotient exactly: quotients at their own draw's threshold between each pair of
    fp4 codes and one step either side; exactly at it where a double holds it (draws with 11 low zero
    bits), and at a tie of p's rounding to 2**-64 and at the threshold for tiny quotients (the largest
    draws); both signs. float32 members: the nearest float to each. Values, scales and elements."""
    from lowprec.array.block import float_scale_quantize, float_scale_quantize_c
    from lowprec.array.rounding_steps import rounding_steps
    from lowprec.kernels.rounding import seed_key
    from lowprec.reference import element_random

    rng = np.random.default_rng(12)
    fmt = formats.get("nvfp4")
    e2m1 = formats.get("fp4_e2m1fn")
    assert rounding_steps(e2m1, "stochastic") is not None  # the steps path runs
    code = e2m1.values()[e2m1.values() >= 0]
    nb, seed = 4096, 21
    n = nb * fmt.block
    sg = np.exp2(rng.integers(-9, 9, nb)).astype(np.float64)  # the scales: powers of two in e4m3
    sg[0] = 448.0  # the tensor's largest block: tensor scale 2688 / (6 * 448) = 1
    r = element_random(n, np.float64, seed_key(seed)).reshape(nb, fmt.block)
    need = [[(1 << 64) - int(v) for v in row] for row in r.tolist()]  # F reaching this carries
    k = rng.integers(0, code.size - 1, (nb, fmt.block))
    q = np.zeros((nb, fmt.block))
    exact = tie = 0
    for b in range(1, nb):
        for i in range(1, fmt.block):
            lo, gap = Fraction(code[k[b, i]]), Fraction(code[k[b, i] + 1] - code[k[b, i]])
            t = lo + Fraction(need[b][i], 1 << 64) * gap
            if need[b][i] < 1 << 52:  # a tiny p: a tie of its rounding to 2**-64, or the threshold
                t = Fraction(2 * need[b][i] - (i % 2), 1 << 65) * Fraction(code[1])
                tie += 1
            elif r[b, i] % np.uint64(1 << 11) == 0 and float(Fraction(need[b][i], 1 << 64) * Fraction(code[1])) \
                    == Fraction(need[b][i], 1 << 64) * Fraction(code[1]):  # the exact threshold of the first gap
                t = Fraction(need[b][i], 1 << 64) * Fraction(code[1])
                exact += 1
            q[b, i] = float(t)
    q = np.where(rng.random(q.shape) < 0.5, q, np.nextafter(q, rng.choice([-np.inf, np.inf], q.shape)))
    x = q * sg[:, None] * rng.choice([-1, 1], q.shape)
    x[:, 0] = 6 * sg
    x[0] = 0
    x[0, 0] = 2688.0
    x = x.astype(dtype)
    v0, s0, g0, e0 = float_scale_quantize(x, fmt, "stochastic", seed_key(seed), None)
    assert g0 == 1.0 and np.array_equal(s0[1:], sg[1:])  # the constructed scales
    v1, s1, g1, e1 = float_scale_quantize_c(x, fmt, "stochastic", seed_key(seed), None, want_elements=True)
    assert g0 == g1
    assert_same(s1, s0, "scales")
    assert_same(v1, v0, "values")
    assert_same(e1, e0.astype(np.float64), "elements")
    v2 = float_scale_quantize_c(x, fmt, "stochastic", seed_key(seed), None, want_scales=False)[0]
    assert_same(v2, v0, "values alone")  # float32: the fused pass where the machine has AVX-512
    assert exact >= 8 and tie >= 4  # about 32 and 16 expected
    went_up = np.abs(e0[1:, 1:]) == code[k[1:, 1:] + 1]
    assert min(went_up.sum(), (~went_up).sum()) > n // 10  # at the thresholds: both outcomes, often
