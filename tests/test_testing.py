"""lowprec.testing: the checkers catch seeded bugs and pass correct quantizers; the strategies reach
every boundary class."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import find, given, settings, strategies as st

import lowprec
from lowprec import FloatFormat, testing

from fp8_handwritten import BUGS, fp8_e4m3_saturating
from helpers import ML_DTYPES_NAMES, SMALL_FORMATS

SAT_E4M3 = FloatFormat(4, 3, specials="fn", overflow="saturate")

# the property each seeded bug must be caught by
EXPECTED_PROPERTY = {
    "ties_away": "tie rule",
    "truncate": "error bound",
    "no_subnormals": "subnormals and underflow",
    "wrong_max": "largest value",
    "overflow_inf": "overflow rule",
    "lose_neg_zero": "negative zero",
    "double_rounding": "no double rounding",
}


def test_the_correct_handwritten_quantizer_passes():
    for dtype in (np.float32, np.float64):
        report = testing.check_quantizer(fp8_e4m3_saturating, SAT_E4M3, dtype=dtype)
        assert report, str(report)
        report.assert_ok()


@pytest.mark.parametrize("bug", BUGS)
def test_each_seeded_bug_is_caught_and_named(bug):
    dtype = np.float64 if bug == "double_rounding" else np.float32
    report = testing.check_quantizer(lambda x: fp8_e4m3_saturating(x, bug), SAT_E4M3, dtype=dtype)
    assert not report
    assert report.failed(EXPECTED_PROPERTY[bug]), str(report)
    text = str(report)
    assert "FAIL" in text and "input 0x" in text and "expected" in text
    with pytest.raises(AssertionError, match=EXPECTED_PROPERTY[bug]):
        report.assert_ok()


@pytest.mark.parametrize("name", SMALL_FORMATS)
@pytest.mark.parametrize("mode", lowprec.ROUNDING_MODES)
def test_lowprec_quantizers_pass(name, mode):
    fmt = lowprec.formats.get(name)
    if fmt.bits > 8 and mode not in ("nearest_even", "stochastic"):
        return  # the 16-bit formats: two modes keep the suite short
    report = testing.check_quantizer(lambda x: lowprec.quantize(x, name, mode, seed=3), name, mode, n_random=1024)
    report.assert_ok()


@pytest.mark.parametrize("name", sorted(ML_DTYPES_NAMES))
def test_ml_dtypes_conversions_pass(name):
    dt = getattr(ml_dtypes, ML_DTYPES_NAMES[name])
    testing.check_quantizer(lambda x: x.astype(dt).astype(np.float32), name).assert_ok()


def test_torch_functions_are_checked_as_torch():
    torch = pytest.importorskip("torch")
    fn = lambda t: t.to(torch.float8_e5m2).to(torch.float32)  # noqa: E731
    testing.check_quantizer(fn, "fp8_e5m2", array="torch").assert_ok()
    assert not testing.check_quantizer(fn, "fp8_e4m3fn", array="torch")


def _raises(x):
    raise RuntimeError("boom")


def _mutates(x):
    x[:] = 0
    return x.copy()


@pytest.mark.parametrize("fn, prop", [
    (_raises, "raises no exception"),
    (lambda x: x[:-1], "returns the input's shape"),
    (lambda x: x.astype(np.float64), "returns the input's dtype"),
    (_mutates, "leaves its input unchanged"),
])
def test_misbehaving_functions_are_reported_not_crashed(fn, prop):
    report = testing.check_quantizer(fn, "fp8_e4m3fn")
    assert report.failed(prop), str(report)


def test_formats_lowprec_does_not_know_get_the_invariants():
    # a base-2 logarithmic format: 0 and +-2**k, k in [-8, 7]; nearest in the linear domain
    values = np.concatenate([-(2.0 ** np.arange(-8, 8)), [0.0], 2.0 ** np.arange(-8, 8)])

    def log2_quantize(x, floor_only=False):
        a = np.abs(x.astype(np.float64))
        k = np.clip(np.floor(np.log2(np.where(a > 0, a, 1.0))), -8, 7)
        lo, hi = 2.0**k, 2.0 ** np.minimum(k + 1, 7)
        q = lo if floor_only else np.where(a - lo <= hi - a, lo, hi)
        q = np.where(a < 2.0**-9, 0.0, np.where(a < 2.0**-8, 2.0**-8, q))
        return np.copysign(np.where(np.isnan(a), np.nan, q), x).astype(x.dtype)

    assert testing.check_quantizer(log2_quantize, None, values=values), "correct log quantizer"
    bad = testing.check_quantizer(lambda x: log2_quantize(x, floor_only=True), None, values=values)
    assert bad.failed("error bound"), str(bad)


@pytest.mark.parametrize("name", SMALL_FORMATS)
def test_lowprec_codecs_pass(name):
    fmt = lowprec.formats.get(name)
    testing.check_codec(fmt.encode, fmt.decode, fmt).assert_ok()


@pytest.mark.parametrize("name", sorted(ML_DTYPES_NAMES))
def test_ml_dtypes_codecs_pass(name):
    dt = getattr(ml_dtypes, ML_DTYPES_NAMES[name])
    bits = lowprec.formats.get(name).bits
    utype = np.uint8 if bits <= 8 else np.uint16

    def encode(v):
        return v.astype(np.float32).astype(dt).view(utype)

    def decode(c):
        return c.astype(utype).view(dt).astype(np.float32)

    testing.check_codec(encode, decode, name).assert_ok()


def test_buggy_codecs_fail():
    fmt = lowprec.formats.get("fp8_e4m3fn")

    def decode_no_subnormals(c):
        v = fmt.decode(c)
        return np.where(np.abs(v) < fmt.min_normal, 0.0, v).astype(np.float32)

    def encode_wrong_sign(v):
        return fmt.encode(np.abs(v))

    assert testing.check_codec(fmt.encode, decode_no_subnormals, fmt).failed("decode gives")
    assert testing.check_codec(encode_wrong_sign, fmt.decode, fmt).failed("encode gives back")


NAMED_SMALL = [n for n in lowprec.formats.names("scalar") if lowprec.formats.get(n).bits <= 16]


@pytest.mark.parametrize("name", NAMED_SMALL)
def test_strategies_reach_every_boundary_class(name):
    fmt = lowprec.formats.get(name)
    # hypothesis.find raises NoSuchExample when a strategy never produces the class: that is the check
    quick = settings(max_examples=2000, database=None, deadline=None)
    input_classes = {"tie", "near tie", "max", "above max", "overflow", "underflow", "min normal", "normal",
                     "zero", "negative zero", "inf", "nan"} | ({"min subnormal", "subnormal"} if fmt.min_subnormal else set())
    if fmt.min_subnormal and len(fmt.values()[(fmt.values() > 0) & (fmt.values() < fmt.min_normal)]) < 2:
        input_classes.discard("subnormal")
    for cls in sorted(input_classes):
        find(testing.floats_near(fmt), lambda v, c=cls: testing.classify(fmt, v) == c, settings=quick)
    value_classes = {"zero", "max", "min normal", "normal"} | ({"min subnormal"} if fmt.min_subnormal else set())
    for cls in sorted(value_classes):
        v = find(testing.values_of(fmt), lambda v, c=cls: testing.classify(fmt, abs(v)) == c, settings=quick)
        assert v in fmt.values() or v == 0
    if fmt.min < 0:
        assert find(testing.values_of(fmt), lambda v: v < 0, settings=quick) < 0
    find(testing.codes(fmt), lambda c: c == 2**fmt.bits - 1, settings=quick)


def test_formats_strategy_covers_the_families():
    quick = settings(max_examples=500, database=None)
    assert isinstance(find(testing.formats(), lambda f: isinstance(f, lowprec.FixedFormat) and f.overflow == "wrap",
                           settings=quick), lowprec.FixedFormat)
    assert find(testing.formats(), lambda f: isinstance(f, FloatFormat) and f.specials == "fnuz" and not f.subnormals,
                settings=quick).specials == "fnuz"
    assert find(testing.formats(), lambda f: f.name == "fp8_e4m3fn", settings=quick).name == "fp8_e4m3fn"


@given(fmt=testing.formats(named=False, max_exp_bits=5, max_man_bits=4), data=st.data())
def test_generated_formats_round_their_own_values_to_themselves(fmt, data):
    v = data.draw(testing.values_of(fmt))
    assert lowprec.quantize(v, fmt) == v
