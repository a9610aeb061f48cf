"""Bit-exact agreement with the oracles: numpy float16, ml_dtypes, torch's float8 casts, gfloat (every
mode incl. stochastic with explicit random bits), exact rationals for float64 input."""

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

import lowprec
from lowprec import formats
from lowprec.reference import element_random

from helpers import ML_DTYPES_NAMES, assert_same, boundary_inputs, random_floats

RNG = np.random.default_rng(20261122)


# -- numpy float16 ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fp16_matches_numpy_on_boundaries_and_random(dtype):
    x = np.concatenate([boundary_inputs("fp16", dtype), random_floats(RNG, 1 << 20, dtype)])
    assert_same(lowprec.quantize(x, "fp16"), x.astype(np.float16).astype(dtype), "fp16")


def test_fp16_matches_numpy_on_every_float32_of_the_critical_ranges():
    # every float32 around the smallest subnormal (ties to 0 / 2**-24), the subnormal/normal border
    # and the overflow threshold 65520, both signs
    ranges = [(0x33000000 - 4096, 0x33800000 + 4096), (0x38800000 - 65536, 0x38800000 + 65536),
              (0x477FE000 - 65536, 0x47800000 + 4096)]
    bits = np.concatenate([np.arange(a, b, dtype=np.uint32) for a, b in ranges])
    x = np.concatenate([bits.view(np.float32), -bits.view(np.float32)])
    assert_same(lowprec.quantize(x, "fp16"), x.astype(np.float16).astype(np.float32))


@pytest.mark.exhaustive
def test_fp16_matches_numpy_on_all_float32_patterns():
    chunk = 1 << 24
    for start in range(0, 1 << 32, chunk):
        x = np.arange(start, start + chunk, dtype=np.uint64).astype(np.uint32).view(np.float32)
        assert_same(lowprec.quantize(x, "fp16"), x.astype(np.float16).astype(np.float32), hex(start))


# -- ml_dtypes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ML_DTYPES_NAMES))
def test_quantize_and_encode_match_ml_dtypes(name):
    dt = getattr(ml_dtypes, ML_DTYPES_NAMES[name])
    x = np.concatenate([boundary_inputs(name), random_floats(RNG, 1 << 18),
                        (RNG.standard_normal(1 << 18) * formats.get(name).max / 3).astype(np.float32)])
    theirs = x.astype(dt)
    assert_same(lowprec.quantize(x, name), theirs.astype(np.float32), name)
    codes = lowprec.encode(x, name)
    bits = formats.get(name).bits
    their_codes = theirs.view(np.uint8 if bits <= 8 else np.uint16)
    np.testing.assert_array_equal(codes, their_codes)


@pytest.mark.parametrize("name", sorted(ML_DTYPES_NAMES))
def test_decode_every_code_matches_ml_dtypes(name):
    fmt = formats.get(name)
    dt = getattr(ml_dtypes, ML_DTYPES_NAMES[name])
    codes = fmt.codes()
    theirs = codes.view(dt) if fmt.bits in (8, 16) else codes.view(dt)
    assert_same(fmt.decode(codes), theirs.astype(np.float32), name)
    # and every code round-trips through encode (NaN codes to the canonical NaN)
    back = fmt.encode(fmt.decode(codes))
    finite = np.isfinite(fmt.decode(codes))
    np.testing.assert_array_equal(back[finite], codes[finite])


@pytest.mark.exhaustive
@pytest.mark.parametrize("name", ["fp8_e4m3fn", "fp8_e5m2", "bf16"])
def test_ml_dtypes_on_all_float32_patterns(name):
    dt = getattr(ml_dtypes, ML_DTYPES_NAMES[name])
    chunk = 1 << 24
    for start in range(0, 1 << 32, chunk):
        x = np.arange(start, start + chunk, dtype=np.uint64).astype(np.uint32).view(np.float32)
        assert_same(lowprec.quantize(x, name), x.astype(dt).astype(np.float32), hex(start))


# -- torch float8 casts ---------------------------------------------------------------------------
def test_saturating_e4m3fn_matches_torch_cast():
    torch = pytest.importorskip("torch")
    sat = lowprec.FloatFormat(4, 3, specials="fn", overflow="saturate")
    x = np.concatenate([boundary_inputs("fp8_e4m3fn"), random_floats(RNG, 1 << 18),
                        np.float32([1e6, -1e6, np.inf, -np.inf, 464, 465, -465])])
    x = x[~np.isnan(x)]
    theirs = torch.from_numpy(x).to(torch.float8_e4m3fn).to(torch.float32).numpy()
    assert_same(lowprec.quantize(x, sat), theirs)


def test_e5m2_matches_torch_cast():
    torch = pytest.importorskip("torch")
    x = np.concatenate([boundary_inputs("fp8_e5m2"), random_floats(RNG, 1 << 18)])
    theirs = torch.from_numpy(x).to(torch.float8_e5m2).to(torch.float32).numpy()
    assert_same(lowprec.quantize(x, "fp8_e5m2"), theirs)


# -- gfloat: every mode, stochastic with explicit random bits ----------------------------------------
GFLOAT = {
    "fp8_e4m3fn": ("format_info_ocp_e4m3", False),
    "fp8_e5m2": ("format_info_ocp_e5m2", False),
    "fp6_e2m3fn": ("format_info_ocp_e2m3", True),
    "fp6_e3m2fn": ("format_info_ocp_e3m2", True),
    "fp4_e2m1fn": ("format_info_ocp_e2m1", True),
    "fp16": ("format_info_binary16", False),
    "bf16": ("format_info_bfloat16", False),
    **{f"binary8p{p}": (f"p3109:{p}", False) for p in range(1, 8)},
}
GFLOAT_MODES = {"nearest_even": "TiesToEven", "nearest_away": "TiesToAway", "toward_zero": "TowardZero",
                "up": "TowardPositive", "down": "TowardNegative"}


def _gfloat_info(info_name):
    import gfloat.formats

    if info_name.startswith("p3109:"):
        return gfloat.formats.format_info_p3109(8, int(info_name[6:]))
    return getattr(gfloat.formats, info_name)


def _gfloat_inputs(name, dtype):
    x = np.concatenate([boundary_inputs(name, dtype), random_floats(RNG, 1 << 14, dtype),
                        (RNG.standard_normal(1 << 14) * formats.get(name).max / 4).astype(dtype)])
    return x[~np.isnan(x)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(GFLOAT))
@pytest.mark.parametrize("mode", sorted(GFLOAT_MODES))
def test_directed_and_nearest_modes_match_gfloat(name, mode, dtype):
    pytest.importorskip("gfloat.formats")  # the submodule, an attribute of the package from here on
    gfloat = pytest.importorskip("gfloat")

    info_name, sat = GFLOAT[name]
    x = _gfloat_inputs(name, dtype)
    theirs = gfloat.round_ndarray(_gfloat_info(info_name), x.astype(np.float64),
                                  getattr(gfloat.RoundMode, GFLOAT_MODES[mode]), sat=sat)
    assert_same(lowprec.quantize(x, name, mode).astype(np.float64), theirs, f"{name} {mode}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(GFLOAT))
@pytest.mark.parametrize("rbits", [1, 3, 8, 13, None])
def test_stochastic_matches_gfloat_with_the_same_random_bits(name, rbits, dtype):
    pytest.importorskip("gfloat.formats")  # the submodule, an attribute of the package from here on
    gfloat = pytest.importorskip("gfloat")

    info_name, sat = GFLOAT[name]
    x = _gfloat_inputs(name, dtype)
    width = 32 if dtype == np.float32 else 64
    k = width if rbits is None else rbits
    if k > 62:
        k = rbits = 62  # gfloat adds the random bits in int64
    seed = 1234 + (rbits or 0)
    rand = element_random(x.size, dtype, seed, rbits=rbits).astype(np.uint64) >> np.uint64(width - k)
    theirs = gfloat.round_ndarray(_gfloat_info(info_name), x.astype(np.float64),
                                  gfloat.RoundMode.Stochastic, sat=sat, srbits=rand.astype(np.int64),
                                  srnumbits=k)
    ours = lowprec.quantize(x, name, "stochastic", seed=seed, rbits=rbits)
    assert_same(ours.astype(np.float64), theirs, f"{name} rbits={rbits}")


@pytest.mark.parametrize("name", sorted(GFLOAT))
def test_every_code_decodes_and_encodes_as_gfloat(name):
    gfloat = pytest.importorskip("gfloat")

    info = _gfloat_info(GFLOAT[name][0])
    fmt = formats.get(name)
    if fmt.bits > 8:
        pytest.skip("exhaustive over 8-bit codes only")
    codes = np.arange(2**fmt.bits)
    theirs = np.array([gfloat.decode_float(info, int(c)).fval for c in codes])
    assert_same(lowprec.decode(codes, fmt).astype(np.float64), theirs, name)
    finite = ~np.isnan(theirs)
    expected = np.array([gfloat.encode_float(info, v) for v in theirs[finite]])
    np.testing.assert_array_equal(lowprec.encode(theirs[finite], fmt), expected)


# -- exact rationals: float64 input rounded once --------------------------------------------------
def _exact_round(x: float, values: np.ndarray, mode: str) -> float:
    """Round x (|x| <= max) to the sorted finite values by exact rational comparisons. The parity of
    a value's code is that of its index among the nonnegative values (formats with subnormals)."""
    i = int(np.searchsorted(values, x, side="right")) - 1
    lo = values[i]
    if lo == x:
        return float(lo)
    hi = values[i + 1]
    fx, flo, fhi = Fraction(x), Fraction(float(lo)), Fraction(float(hi))
    zero = int(np.searchsorted(values, 0.0))
    lo_odd = abs(i - zero) % 2 == 1
    toward_zero = lo if x > 0 else hi
    away = hi if x > 0 else lo
    if mode == "toward_zero":
        return float(toward_zero)
    if mode == "up":
        return float(hi)
    if mode == "down":
        return float(lo)
    if mode == "odd":
        return float(lo if lo_odd else hi)
    dlo, dhi = fx - flo, fhi - fx
    if dlo != dhi:
        return float(lo if dlo < dhi else hi)
    if mode == "nearest_away":
        return float(away)
    return float(hi if lo_odd else lo)


EXACT_FORMATS = ["fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "fp8_e4m3fnuz", "fp6_e3m2fn", "fp4_e2m1fn",
                 "int8", "q1.7", "uq4.4", "q8.8"]


@pytest.mark.parametrize("name", EXACT_FORMATS)
@pytest.mark.parametrize("mode", ["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd"])
def test_float64_input_is_rounded_once(name, mode):
    fmt = formats.get(name)
    values = fmt.values()
    mids = (values[:-1] + values[1:]) / 2
    # just off each tie by far less than a float32 ulp: rounding through float32 would make it a tie
    eps = np.ldexp(np.abs(mids), -40)
    x = np.concatenate([mids, mids + eps, mids - eps, values,
                        RNG.uniform(fmt.min, fmt.max, 2000)])
    x = x[(x >= fmt.min) & (x <= fmt.max)]
    expected = np.array([_exact_round(float(v), values, mode) for v in x])
    got = lowprec.quantize(x, fmt, mode)
    ok = got == expected
    assert ok.all(), (x[~ok][:5], got[~ok][:5], expected[~ok][:5])


@pytest.mark.parametrize("name", ["int8", "q4.4", "uq4.4"])
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_fixed_point_overflow_matches_integer_arithmetic(name, overflow):
    base = formats.get(name)
    fmt = lowprec.FixedFormat(base.int_bits, base.frac_bits, signed=base.signed, overflow=overflow)
    x = RNG.uniform(-4 * 2**base.int_bits, 4 * 2**base.int_bits, 5000)
    got = lowprec.quantize(x, fmt)
    lo, hi = round(fmt.min * 2**fmt.frac_bits), round(fmt.max * 2**fmt.frac_bits)
    for xi, gi in zip(x, got):
        k = Fraction(xi) * 2**fmt.frac_bits
        k = round(k)  # Python rounds Fractions half to even
        if overflow == "saturate":
            k = min(max(k, lo), hi)
        else:
            k = (k - lo) % 2**fmt.bits + lo
        assert gi == k / 2**fmt.frac_bits, (xi, gi, k)
