"""The C core against the pure-numpy reference: every format family, mode and dtype, hypothesis-driven;
and the Philox stream against its published known-answer vectors."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

import lowprec
from lowprec import FixedFormat, FloatFormat
from lowprec._native import ffi, lib
from lowprec.reference import element_random, philox4x32, quantize_reference

from helpers import assert_same, boundary_inputs, random_floats


def test_philox_known_answers():
    # Random123 kat_vectors, philox4x32_10: counter (0,0,0,0) key (0,0) and all-ones counter and key
    np.testing.assert_array_equal(philox4x32(np.array([0], np.uint64), 0)[:, 0],
                                  [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8])
    buf = np.empty(4, np.uint32)
    lib.lp_philox_words(ffi.from_buffer("uint32_t[]", buf), 1, 0, 0)
    np.testing.assert_array_equal(buf, [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8])


def test_c_and_numpy_philox_agree():
    n = 1000
    buf = np.empty(4 * n, np.uint32)
    lib.lp_philox_words(ffi.from_buffer("uint32_t[]", buf), n, 0xDEADBEEF12345678, 77)
    ref = philox4x32(np.arange(77, 77 + n, dtype=np.uint64), 0xDEADBEEF12345678)
    np.testing.assert_array_equal(buf.reshape(4, n), ref)


def test_the_python_draw_layout_is_the_references():
    # lowprec._philox draws through the C core for the Python paths; the reference has its own numpy Philox
    from lowprec import _philox, reference

    assert _philox.WORK_UNIT == reference._BLOCK == 1024  # the C core's unit (LP_WORK_UNIT) and the oracle's
    for dtype in (np.float32, np.float64):
        for n, start in ((1, 0), (1000, 0), (5000, 3 * 1024)):
            off = _philox.counter_offset(start, dtype)
            np.testing.assert_array_equal(_philox.element_random(n, dtype, 0x1234ABCD, off),
                                          element_random(n, dtype, 0x1234ABCD, off))
            for rbits in (1, 8):  # the byte layout
                np.testing.assert_array_equal(_philox.element_random(n, dtype, 0x1234ABCD, off, rbits),
                                              element_random(n, dtype, 0x1234ABCD, off, rbits))
    x = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    whole = lowprec.quantize(x, "fp8_e4m3fn", "stochastic", seed=9)
    from lowprec.quantize import quantize_at

    part = quantize_at(x[2048:], lowprec.formats.get("fp8_e4m3fn"), "stochastic", 9, None, 2048)
    assert_same(part, whole[2048:])
    whole = lowprec.quantize(x, "fp8_e4m3fn", "stochastic", seed=9, rbits=4)
    part = quantize_at(x[2048:], lowprec.formats.get("fp8_e4m3fn"), "stochastic", 9, 4, 2048)
    assert_same(part, whole[2048:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rbits_up_to_8_draw_a_byte_an_element(dtype):
    # element i of a unit: byte i // 256 of word (i % 256) // 64 of counter base + i % 64, the draw's top byte;
    # unit b's base is b * 256 (float32) or b * 512 (float64) counters from the offset, as for wider draws
    width = 32 if dtype == np.float32 else 64
    per_unit = 1024 // (4 if width == 32 else 2)
    off, n = 5, 3000
    got = element_random(n, dtype, 77, off, rbits=8).astype(np.uint64)
    for i in (0, 1, 63, 64, 255, 256, 700, 1023, 1024, 2999):
        b, k = divmod(i, 1024)
        word = int(philox4x32(np.array([off + b * per_unit + k % 64], np.uint64), 77)[(k % 256) // 64, 0])
        assert int(got[i]) == ((word >> (8 * (k // 256))) & 0xFF) << (width - 8), i
    assert np.array_equal(element_random(n, dtype, 77, off, rbits=3), element_random(n, dtype, 77, off, rbits=8))
    wide = element_random(n, dtype, 77, off, rbits=9).astype(np.uint64) >> np.uint64(width - 8)
    assert not np.array_equal(wide, got >> np.uint64(width - 8))  # 9 bits and more: a word (two) an element
    # the bytes are uniform: each value about n / 256 times over many units
    counts = np.bincount((element_random(2**18, dtype, 3, 0, rbits=8).astype(np.uint64) >> np.uint64(width - 8))
                         .astype(np.int64), minlength=256)
    assert counts.min() > 800 and counts.max() < 1250


def test_production_code_never_imports_the_oracles():
    import ast
    from pathlib import Path

    oracles = {"reference", "mac_reference", "block_reference", "mma_reference", "testing"}
    root = Path(lowprec.__file__).parent
    for path in root.rglob("*.py"):
        if path.stem in oracles or "testing" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            hit = {part for name in names for part in name.split(".")} & oracles
            assert not hit, f"{path.relative_to(root)} imports {hit} (line {node.lineno})"


float_formats = st.builds(
    lambda e, m, specials, sub, ovf: _float_format(e, m, specials, sub, ovf),
    st.integers(2, 8), st.integers(0, 12), st.sampled_from(["ieee", "fn", "fnuz", "none"]), st.booleans(),
    st.sampled_from([None, "saturate"]),
)


def _float_format(e, m, specials, subnormals, overflow):
    if specials == "ieee" and m == 0:
        m = 1
    return FloatFormat(e, m, specials=specials, subnormals=subnormals, overflow=overflow)


fixed_formats = st.builds(
    lambda i, f, signed, ovf: FixedFormat(max(i, int(signed), 1 - f), f, signed=signed, overflow=ovf),
    st.integers(0, 16), st.integers(0, 16), st.booleans(), st.sampled_from(["saturate", "wrap"]),
)

named = st.sampled_from(lowprec.formats.names("scalar"))
any_format = st.one_of(named, float_formats, fixed_formats)


@given(fmt=any_format, mode=st.sampled_from(lowprec.ROUNDING_MODES),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**64 - 1),
       rbits=st.one_of(st.none(), st.integers(1, 64)))
def test_c_core_matches_reference(fmt, mode, dtype, seed, rbits):
    rng = np.random.default_rng(seed % 2**32)
    x = random_floats(rng, 3000, dtype)
    fmt_obj = lowprec.formats.as_format(fmt)
    if fmt_obj.bits <= 16:
        x = np.concatenate([x, boundary_inputs(fmt_obj, dtype)])
    rb = rbits if mode == "stochastic" else None
    ours = lowprec.quantize(x, fmt, mode, seed=seed, rbits=rb)
    ref = quantize_reference(x, fmt, mode, seed=seed, rbits=rb)
    assert_same(ours, ref, f"{fmt} {mode}")


def test_block_layout_of_random_bits_spans_blocks():
    # several C blocks and a ragged tail: element i always gets the same draw
    x = np.full(5000, 1.0 + 2**-12, np.float32)
    ours = lowprec.quantize(x, "bf16", "stochastic", seed=5)
    assert_same(ours, quantize_reference(x, "bf16", "stochastic", seed=5))
    assert_same(lowprec.quantize(x[:1000], "bf16", "stochastic", seed=5), ours[:1000])
    assert element_random(10, np.float64, 3).dtype == np.uint64


# nearest even by the input type's own addition (csrc/quantize_impl.h, ne_by_addition_): every binade
# of the input type, where the addend is capped near the top, and the formats at the edges of its use;
# bf16 takes the one-shift rule (LP_FLAT), FloatFormat(8, 1, fnuz) the deep one; FloatFormat(6, 23) the
# shift rule, its smallest binade rounded at the implicit bit (d = 23) where the pattern's bit is an even
# exponent's (the AVX2 pass must take the significand's parity)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", ["fp8_e4m3fn", "fp8_e5m2", "fp16", "bf16", "int8", "q8.8", "uint8",
                                 FloatFormat(7, 2), FloatFormat(7, 2, overflow="saturate"), FloatFormat(6, 21),
                                 FloatFormat(6, 22), FloatFormat(6, 23), FloatFormat(3, 0, specials="fn"),
                                 FloatFormat(8, 1, specials="fnuz")])
def test_nearest_even_in_every_binade_matches_reference(fmt, dtype):
    info = np.finfo(dtype)
    rng = np.random.default_rng(11)
    exps = np.arange(info.minexp - info.nmant, info.maxexp)
    frac = np.concatenate([[1.0, 1.5, 1.25, 1.75, 1.0 + 2.0**-info.nmant], 1 + rng.random(11)])
    x = np.ldexp(frac[None, :], exps[:, None]).ravel()
    x = np.concatenate([x, np.nextafter(x, 0), -x, [0.0, -0.0, np.inf, -np.inf, np.nan]]).astype(dtype)
    ours = lowprec.quantize(x, fmt, "nearest_even")
    assert_same(ours, quantize_reference(x, fmt, "nearest_even"), str(fmt))
