import math

import ml_dtypes
import numpy as np
import pytest

import lowprec
from lowprec import FixedFormat, FloatFormat, formats

from helpers import ML_DTYPES_NAMES

REQUIRED = ["fp64", "fp32", "tf32", "fp16", "bf16", "fp8_e4m3fn", "fp8_e4m3fnuz", "fp8_e5m2", "fp8_e5m2fnuz",
            "fp8_e4m3", "fp8_e3m4", "fp6_e2m3fn", "fp6_e3m2fn", "fp4_e2m1fn", "dlfloat16",
            "int8", "uint8", "int4", "uint4", "int16", "int32"]


def test_required_names_exist_and_cite_a_source():
    assert set(REQUIRED) <= set(formats.names())
    for name in formats.names():
        assert len(formats.source(name)) > 10
        assert formats.get(name).name == name


@pytest.mark.parametrize("name", sorted(ML_DTYPES_NAMES))
def test_traits_match_ml_dtypes_finfo(name):
    fmt = formats.get(name)
    info = ml_dtypes.finfo(getattr(ml_dtypes, ML_DTYPES_NAMES[name]))
    assert fmt.max == float(info.max)
    assert fmt.min == float(info.min)
    assert fmt.min_normal == float(info.smallest_normal)
    assert fmt.min_subnormal == float(info.smallest_subnormal)
    assert fmt.eps == float(info.eps)
    assert fmt.bits == info.bits


@pytest.mark.parametrize("name", sorted(ML_DTYPES_NAMES))
def test_values_are_every_finite_value_of_ml_dtypes(name):
    dt = getattr(ml_dtypes, ML_DTYPES_NAMES[name])
    bits = formats.get(name).bits
    codes = np.arange(2**bits, dtype=np.uint16 if bits > 8 else np.uint8)
    theirs = codes.view(dt).astype(np.float64) if bits in (8, 16) else _subbyte_values(dt, bits)
    theirs = np.unique(theirs[np.isfinite(theirs)] + 0.0)
    np.testing.assert_array_equal(formats.get(name).values(), theirs)


def _subbyte_values(dt, bits):
    # ml_dtypes stores fp6/fp4 one per byte, in the low bits
    return np.arange(2**bits, dtype=np.uint8).view(dt).astype(np.float64)


def test_ieee_formats_match_numpy_finfo():
    for name, dt in [("fp16", np.float16), ("fp32", np.float32), ("fp64", np.float64)]:
        fmt, info = formats.get(name), np.finfo(dt)
        assert (fmt.max, fmt.min_normal, fmt.min_subnormal, fmt.eps) == (
            float(info.max), float(info.tiny), float(info.smallest_subnormal), float(info.eps))


def test_other_named_formats():
    tf32 = formats.get("tf32")
    assert (tf32.bits, tf32.eps, tf32.min_normal) == (19, 2**-10, 2**-126)
    dl = formats.get("dlfloat16")
    assert (dl.bits, dl.bias, dl.min_subnormal) == (16, 31, None)
    assert dl.max == (2 - 2**-9) * 2.0**31
    i8 = formats.get("int8")
    assert (i8.max, i8.min, i8.eps, i8.bits) == (127, -128, 1, 8)
    assert (formats.get("uint4").max, formats.get("uint4").min) == (15, 0)
    assert (formats.get("int32").max, formats.get("int32").min) == (2**31 - 1, -(2**31))


def test_q_names_parse():
    q = formats.get("q1.7")
    assert q == FixedFormat(1, 7) and q.bits == 8 and q.max == 127 / 128 and q.min == -1
    assert formats.get("q8.8").max == 32767 / 256
    uq = formats.get("uq4.4")
    assert not uq.signed and uq.max == 255 / 16 and uq.min == 0
    assert len(formats.get("q8.8").values()) == 2**16


def test_values_and_codes():
    fp4 = formats.get("fp4_e2m1fn")
    np.testing.assert_array_equal(fp4.values(), [-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6])
    assert fp4.codes().dtype == np.uint8 and len(fp4.codes()) == 16
    assert formats.get("fp16").codes().dtype == np.uint16
    np.testing.assert_array_equal(formats.get("int4").values(), np.arange(-8, 8))
    with pytest.raises(ValueError, match="at most 16 bits"):
        formats.get("fp32").values()


def test_value_object_semantics():
    a = FloatFormat(4, 3, specials="fn")
    assert a == formats.get("fp8_e4m3fn")  # equality is by parameters, not name
    assert hash(a) == hash(formats.get("fp8_e4m3fn"))
    assert len({a, formats.get("fp8_e4m3fn"), formats.get("fp8_e5m2")}) == 2
    assert a != FloatFormat(4, 3, specials="fn", overflow="saturate")
    with pytest.raises(Exception):
        a.exp_bits = 5
    assert "fp8_e4m3fn" in repr(formats.get("fp8_e4m3fn")) and "448" in repr(formats.get("fp8_e4m3fn"))
    assert repr(a).startswith("FloatFormat(exp_bits=4, man_bits=3")
    assert "q8.8" in repr(formats.get("q8.8"))


def test_fnuz_and_specials_conventions():
    f = formats.get("fp8_e4m3fnuz")
    assert f.bias == 8 and f.has_nan and not f.has_inf and not f.has_negative_zero and f.max == 240
    e = formats.get("fp8_e4m3fn")
    assert e.overflow == "nan" and e.has_nan and not e.has_inf
    assert formats.get("fp8_e5m2").overflow == "inf"
    assert formats.get("fp4_e2m1fn").overflow == "saturate" and not formats.get("fp4_e2m1fn").has_nan
    assert FloatFormat(3, 0, specials="fn").max == 8.0  # m = 0: the all-ones exponent is NaN only


@pytest.mark.parametrize("kwargs, param", [
    (dict(exp_bits=0, man_bits=3), "exp_bits"),
    (dict(exp_bits=12, man_bits=3), "exp_bits"),
    (dict(exp_bits=4, man_bits=-1), "man_bits"),
    (dict(exp_bits=4, man_bits=53), "man_bits"),
    (dict(exp_bits=4, man_bits=3, specials="weird"), "specials"),
    (dict(exp_bits=4, man_bits=3, overflow="clip"), "overflow"),
    (dict(exp_bits=4, man_bits=3, specials="fn", overflow="inf"), "overflow"),
    (dict(exp_bits=4, man_bits=3, bias=2000), "bias"),
    (dict(exp_bits=11, man_bits=3, bias=-100), "bias"),
    (dict(exp_bits=1, man_bits=3), "exp_bits"),
])
def test_bad_float_parameters(kwargs, param):
    with pytest.raises(ValueError, match=param):
        FloatFormat(**kwargs)


def test_bad_fixed_parameters_and_names():
    with pytest.raises(ValueError, match="int_bits"):
        FixedFormat(0, 8)
    with pytest.raises(ValueError, match="overflow"):
        FixedFormat(8, 0, overflow="clip")
    with pytest.raises(ValueError, match=r"\[1, 64\]"):
        FixedFormat(40, 40)
    with pytest.raises(TypeError, match="exp_bits"):
        FloatFormat(4.0, 3)
    with pytest.raises(ValueError, match="fp8_e4m3fn"):
        formats.get("fp8_e4m3f")
    with pytest.raises(ValueError, match="did you mean 'fp8_e4m3fn'"):
        formats.get("fp8_e4m3fm")
    with pytest.raises(ValueError, match="did you mean 'fp8_e4m3fn'"):  # names are lower case
        formats.get("FP8_E4M3FN")
    with pytest.raises(ValueError, match="did you mean 'bf16'"):
        formats.get("BF16")
    with pytest.raises(TypeError):
        formats.as_format(8)


def test_format_arguments_accept_names_and_objects():
    x = np.float32(1.3)
    assert lowprec.quantize(x, "fp16") == lowprec.quantize(x, FloatFormat(5, 10))
    assert math.isclose(lowprec.quantize(1.3, "q8.8"), round(1.3 * 256) / 256)


def test_corrupt_format_files_are_rejected():
    from lowprec.formats.registry import _load_file

    with pytest.raises(ValueError, match="not valid TOML"):
        _load_file("[a\nkind=", "bad.toml")
    with pytest.raises(ValueError, match="source"):
        _load_file('[x]\nkind = "float"\nexp_bits = 4\nman_bits = 3\n', "nosource.toml")
    with pytest.raises(ValueError, match="kind"):
        _load_file('[x]\nkind = "log"\nsource = "s"\n', "kind.toml")


def test_e_m_names_parse_to_ieee_style_floats():
    e8m13 = lowprec.formats.get("e8m13")
    assert (e8m13.exp_bits, e8m13.man_bits, e8m13.bias, e8m13.name) == (8, 13, 127, "e8m13")
    assert lowprec.formats.get("e5m2") == lowprec.formats.get("fp8_e5m2")
    with pytest.raises(ValueError, match="unknown format name 'e5m0'"):
        lowprec.formats.get("e5m0")  # no mantissa bit: not an IEEE-style float (e8m0 is MX's scale)
