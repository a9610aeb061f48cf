"""The MAC simulator against the per-operation exact reference, Berkeley SoftFloat, exact integers,
and hand-computed counts."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lowprec
from lowprec import MAC
from lowprec.mac_reference import mac_dot_reference, rto64
from fp16_oracles import MPFR_MODES, SOFTFLOAT_MODES, fp16_oracle

OPERANDS = ["fp8_e4m3fn", "fp8_e5m2", "bf16", "fp16", "fp4_e2m1fn"]
ACCS = ["fp16", "bf16", "fp32", "dlfloat16", "fp8_e5m2", "tf32"]


def _operands(draw, m, k, n, fmt):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.01, 1.0, 30.0]))
    a = lowprec.quantize(rng.standard_normal((m, k)) * scale, fmt)
    b = lowprec.quantize(rng.standard_normal((k, n)), fmt)
    return a, b


@settings(max_examples=40)
@given(data=st.data(), operand=st.sampled_from(OPERANDS), acc=st.sampled_from(ACCS),
       mul=st.sampled_from([None, "bf16", "fp16"]), chunk=st.sampled_from([None, 1, 3, 16]),
       rounding=st.sampled_from(lowprec.ROUNDING_MODES), shape=st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 20)),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_matmul_matches_the_per_operation_reference(data, operand, acc, mul, chunk, rounding, shape, dtype):
    m, k, n = shape
    a, b = _operands(data.draw, m, k, n, operand)
    mac = MAC(mul=mul, acc=acc, chunk=chunk, rounding=rounding, seed=11)
    c = None
    if data.draw(st.booleans()):  # an initial accumulator (D = A @ B + C), zeros of both signs among it
        c = lowprec.quantize(np.random.default_rng(m * k + n).standard_normal((m, n)) * 4, acc)
        c.reshape(-1)[::3] = data.draw(st.sampled_from([0.0, -0.0]))
    got = mac.matmul(a.astype(dtype), b.astype(dtype), c)
    assert got.dtype == dtype and got.shape == (m, n)
    for i in range(m):
        for j in range(n):
            ref = mac_dot_reference(a[i], b[:, j], mul=mul, acc=acc, chunk=chunk, rounding=rounding, seed=11,
                                    output_index=i * n + j, initial=0.0 if c is None else float(c[i, j]))
            g = float(got[i, j])
            assert (g == ref and math.copysign(1, g) == math.copysign(1, ref)) or (math.isnan(g) and math.isnan(ref)), \
                (i, j, g, ref)


@settings(max_examples=60)
@given(data=st.data(), acc=st.sampled_from(["fp16", "bf16", "fp8_e5m2"]), chunk_acc=st.sampled_from(["fp32", "fp16", "bf16"]),
       rounding=st.sampled_from(["nearest_even", "toward_zero", "up"]), scale=st.sampled_from([2.0**-20, 2.0**-12, 1.0, 2.0**6]),
       chunk=st.sampled_from([1, 4, 16]))
def test_chunked_sums_with_a_finer_chunk_accumulator_match_the_reference(data, acc, chunk_acc, rounding, scale, chunk):
    """The fast kernel's proof (no tiny value, no overflow) holds each format to what feeds it: a finer
    chunk_acc (fp32 over fp16 chunks) no longer disqualifies it; near tiny and huge sums the bits still
    follow the reference."""
    from lowprec.mac_reference import mac_dot_reference

    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a = lowprec.quantize(rng.standard_normal((2, 40)) * scale, "fp8_e4m3fn")
    b = lowprec.quantize(rng.standard_normal((40, 3)), "fp8_e4m3fn")
    got = MAC(acc=acc, chunk=chunk, chunk_acc=chunk_acc, rounding=rounding).matmul(a.astype(np.float32), b.astype(np.float32))
    for i in range(2):
        for j in range(3):
            ref = mac_dot_reference(a[i], b[:, j], acc=acc, chunk=chunk, chunk_acc=chunk_acc, rounding=rounding,
                                    output_index=i * 3 + j)
            assert (got[i, j] == ref and math.copysign(1, got[i, j]) == math.copysign(1, ref)) or \
                (math.isnan(got[i, j]) and math.isnan(ref)), (i, j, got[i, j], ref)


@pytest.mark.parametrize("kw", [{"acc": "fp16"}, {"acc": "bf16", "rounding": "toward_zero"},
                                {"mul": "bf16", "acc": "fp16", "chunk": 7, "chunk_acc": "fp32"}, {"acc": "fp16", "fused": True}])
def test_narrow_products_are_summed_as_wide_ones(kw):
    """Few output columns (a 10-channel layer): the engine sums the transposed problem (whole tiles),
    each output the same products in the same order; initial accumulators follow it."""
    from lowprec.mac_reference import mac_dot_reference

    rng = np.random.default_rng(21)
    a = lowprec.quantize(rng.standard_normal((40, 30)) * 8, "fp8_e4m3fn").astype(np.float32)
    b = lowprec.quantize(rng.standard_normal((30, 5)), "fp8_e4m3fn").astype(np.float32)
    c = lowprec.quantize(rng.standard_normal((40, 5)), kw["acc"]).astype(np.float32)
    fused = kw.get("fused", False)
    for init in (None, c) if not fused and "chunk" not in kw else (None,):
        got = MAC(**kw).matmul(a, b, init)
        ref_kw = {key: v for key, v in kw.items() if key != "fused"}
        for i in range(40):
            for j in range(5):
                ref = mac_dot_reference(a[i], b[:, j], **ref_kw, output_index=i * 5 + j,
                                        initial=0.0 if init is None else float(init[i, j]))
                assert got[i, j] == ref, (i, j, got[i, j], ref)


@pytest.mark.parametrize("rounding", lowprec.ROUNDING_MODES)
def test_zero_sums_keep_ieee_signs(rounding):
    """c + a*b of zeros: two zeros of one sign sum to it (-0 + -0 = -0 in every mode), opposite signs to
    +0 (-0 under rounding down), as float arithmetic says; the engine and the reference agree."""
    from lowprec.mac_reference import mac_dot_reference

    for c, a, b in [(-0.0, 0.0, -1.0), (-0.0, 0.0, 1.0), (0.0, -0.0, 1.0), (0.0, 0.0, 1.0), (-0.0, -0.0, -1.0)]:
        ieee = np.float32(c) + np.float32(a) * np.float32(b)
        want = -0.0 if rounding == "down" and np.signbit(c) != np.signbit(np.float32(a) * np.float32(b)) else float(ieee)
        got = MAC(acc="fp16", rounding=rounding, seed=1).matmul(np.float32([[a]]), np.float32([[b]]), np.float32([[c]]))
        ref = mac_dot_reference([a], [b], acc="fp16", rounding=rounding, seed=1, initial=c)
        assert math.copysign(1, got[0, 0]) == math.copysign(1, ref) == math.copysign(1, want), (c, a, b)


def test_rto64_is_round_to_odd():
    from fractions import Fraction

    assert rto64(Fraction(1) + Fraction(1, 2**60)) == 1 + 2**-52  # inexact, even truncation -> odd
    assert rto64(Fraction(1)) == 1.0
    assert rto64(-(Fraction(1) + Fraction(1, 2**60))) == -(1 + 2**-52)
    assert rto64(Fraction(1) + Fraction(3, 2**53)) == 1 + 2**-52  # truncates to 1 + 2**-52, odd already


# -- Berkeley SoftFloat (fp16), or MPFR where SoftFloat is not installed ------------------------------
def _fp16_vectors(seed, n=300):
    rng = np.random.default_rng(seed)
    a = lowprec.quantize(rng.standard_normal(n) * rng.choice([1e-3, 1, 100], n), "fp16")
    b = lowprec.quantize(rng.standard_normal(n), "fp16")
    return a, b


@pytest.mark.parametrize("mode", sorted(SOFTFLOAT_MODES))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fp16_sums_fma_chains_and_dots_match_softfloat(mode, seed):
    with fp16_oracle(mode) as f16:
        a, b = _fp16_vectors(seed)
        s = 0.0
        for x in a:
            s = f16.add(s, x)
        assert MAC(acc="fp16", rounding=mode).sum(a) == s, f16.name
        s = 0.0
        for x, y in zip(a, b):
            s = f16.fma(x, y, s)
        assert MAC(acc="fp16", fused=True, rounding=mode).dot(a, b) == s, f16.name
        s = 0.0
        for x, y in zip(a, b):
            s = f16.add(s, f16.mul(x, y))
        assert MAC(mul="fp16", acc="fp16", rounding=mode).dot(a, b) == s, f16.name


def test_the_float64_trap_of_the_issue():
    # SoftFloat's fma(2**-24, 2**-24, 1024) rounded up is 1025: a float64 intermediate would say 1024
    with fp16_oracle("up") as f16:
        r = f16.fma(2.0**-24, 2.0**-24, 1024.0)
    mac = MAC(acc="fp16", fused=True, rounding="up")
    assert r == 1025.0
    assert mac.dot(np.array([1024.0, 2.0**-24]), np.array([1.0, 2.0**-24])) == 1025.0


def test_mpfr_oracle_agrees_with_softfloat_where_both_exist():
    sf = pytest.importorskip("softfloat")
    gmpy2 = pytest.importorskip("gmpy2")
    from fp16_oracles import Mpfr16, SoftFloat16

    a, b = _fp16_vectors(7, 200)
    c = lowprec.quantize(np.random.default_rng(8).standard_normal(200) * 1e-4, "fp16")
    for mode in MPFR_MODES:
        with SoftFloat16(sf, mode) as s, Mpfr16(gmpy2, mode) as m:
            for x, y, z in zip(a, b, c):
                assert (s.add(x, y), s.mul(x, y), s.fma(x, y, z)) == (m.add(x, y), m.mul(x, y), m.fma(x, y, z)), mode


# -- orders, chunks, the swamping examples -------------------------------------------------------------
def test_swamping_examples():
    ones = np.ones(4096, np.float32)
    assert MAC(acc="fp16").sum(ones) == 2048
    assert MAC(acc="fp16", chunk=64).sum(ones) == 4096
    assert MAC(acc="fp16", order="pairwise").sum(ones) == 4096
    assert MAC(acc="fp16", order="kahan").sum(ones) == 4096
    assert MAC(acc=None, out="fp32").sum(ones) == 4096


def _pairwise_ref(values, acc, rounding):
    from fractions import Fraction

    level = [float(lowprec.quantize(np.array([v]), acc, rounding)[0]) for v in values]
    while len(level) > 1:
        nxt = [float(lowprec.quantize(np.array([rto64(Fraction(level[i]) + Fraction(level[i + 1]))]), acc, rounding)[0])
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


@pytest.mark.parametrize("rounding", ["nearest_even", "toward_zero", "up", "odd"])
@pytest.mark.parametrize("k", [1, 2, 7, 64, 100])
def test_pairwise_matches_its_definition(rounding, k):
    rng = np.random.default_rng(k)
    x = lowprec.quantize(rng.uniform(0, 1, k), "fp16")
    got = MAC(acc="fp16", order="pairwise", rounding=rounding).sum(x)
    assert got == _pairwise_ref(x, "fp16", rounding)


def test_kahan_beats_sequential_in_bf16():
    x = lowprec.quantize(np.random.default_rng(0).uniform(0, 1, 5000), "bf16")
    exact = math.fsum(x)
    seq = MAC(acc="bf16").sum(x)
    kahan = MAC(acc="bf16", order="kahan").sum(x)
    assert abs(kahan - exact) < abs(seq - exact) / 10


def test_stochastic_accumulation_is_seeded_and_thread_independent():
    rng = np.random.default_rng(0)
    a = lowprec.quantize(rng.standard_normal((64, 256)), "fp8_e4m3fn")
    b = lowprec.quantize(rng.standard_normal((256, 48)), "fp8_e4m3fn")
    lowprec.set_num_threads(1)
    one = MAC(acc="bf16", rounding="stochastic", seed=3).matmul(a, b)
    lowprec.set_num_threads(2)
    two = MAC(acc="bf16", rounding="stochastic", seed=3).matmul(a, b)
    np.testing.assert_array_equal(one, two)
    assert (MAC(acc="bf16", rounding="stochastic", seed=4).matmul(a, b) != one).any()
    # unbiased: the mean over seeds of a long ones-sum in bf16 approaches the exact sum
    sums = [MAC(acc="bf16", rounding="stochastic", seed=s).sum(np.full(2048, np.float32(0.1))) for s in range(40)]
    assert abs(np.mean(sums) - 204.8) < 3  # sequential nearest gives 256 or less: far off


def test_batched_matmul_and_vectors_follow_numpy_semantics():
    rng = np.random.default_rng(2)
    a = lowprec.quantize(rng.standard_normal((3, 1, 4, 5)), "bf16")
    b = lowprec.quantize(rng.standard_normal((2, 5, 6)), "bf16")
    mac = MAC(acc=None)
    got = mac.matmul(a, b)
    np.testing.assert_array_equal(got, np.matmul(a, b))  # exact accumulation of exact products
    assert got.shape == (3, 2, 4, 6)
    v = lowprec.quantize(rng.standard_normal(5), "bf16")
    assert mac.matmul(a[0, 0], v).shape == (4,)
    assert mac.matmul(v, b[0]).shape == (6,)
    assert np.isscalar(mac.dot(v, v)) or mac.dot(v, v).shape == ()


def test_conv2d_and_conv1d_match_torch_with_exact_accumulation():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = lowprec.quantize(rng.standard_normal((2, 4, 9, 8)), "fp8_e4m3fn").astype(np.float32)
    w = lowprec.quantize(rng.standard_normal((6, 2, 3, 2)), "fp8_e4m3fn").astype(np.float32)
    mac = MAC(acc=None, out="fp32")
    got = mac.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), stride=(2, 1),
                                     padding=1, dilation=(1, 2), groups=2).float()
    assert isinstance(got, torch.Tensor) and torch.equal(got, ref)
    x1 = x[:, :, 0, :]
    w1 = w[:, :, 0, :]
    got1 = mac.conv1d(x1, w1, stride=2, padding=1, groups=2)
    ref1 = torch.nn.functional.conv1d(torch.from_numpy(x1).double(), torch.from_numpy(w1).double(), stride=2,
                                      padding=1, groups=2).float().numpy()
    np.testing.assert_array_equal(got1, ref1)


# -- integer MACs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
@pytest.mark.parametrize("width", [16, 24, 32])
def test_int8_products_into_narrow_accumulators(overflow, width):
    rng = np.random.default_rng(width)
    a = rng.integers(-128, 128, (3, 600)).astype(np.float64)
    b = rng.integers(-128, 128, (600, 4)).astype(np.float64)
    acc = lowprec.FixedFormat(width, 0, overflow=overflow)
    mac = MAC(acc=acc)
    got = mac.matmul(a, b)
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    events = 0
    for i in range(3):
        for j in range(4):
            s = 0
            for t in range(600):
                s += int(a[i, t]) * int(b[t, j])
                if s > hi or s < lo:
                    events += 1
                    s = ((s - lo) % 2**width + lo) if overflow == "wrap" else min(max(s, lo), hi)
            assert got[i, j] == s
    assert mac.counts["overflows"] == events
    if width == 16:
        assert events > 0


def test_stochastic_integer_accumulation_draws_afresh_at_every_step():
    # 100 steps of +0.5 into an int16 accumulator: each output is Binomial(100, 1/2) (sd 5); draws
    # repeated across steps would make every output 0 or 100 (sd 50)
    mac = MAC(acc=lowprec.FixedFormat(16, 0), rounding="stochastic", seed=5)
    got = mac.matmul(np.full((400, 100), 0.5), np.ones((100, 1)))
    assert abs(got.mean() - 50) < 2 and got.std() < 10


# -- counts -------------------------------------------------------------------------------------------
def test_counts_by_hand():
    a = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    b = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    mac = MAC(mul="bf16", acc="fp16", chunk=2, inputs="fp8_e4m3fn")
    mac.matmul(a, b)
    c = mac.counts
    assert c["mul"]["bf16"] == 12 and c["add"]["fp16"] == 12 + 4 * 2  # 12 MACs; 2 chunk sums for each of 4 outputs
    # nonzero products: column t of a times row t of b: t=0: 1*2, t=1: 0*1, t=2: 2*1 -> 4 of 12
    assert c["zero_products"] == 8
    assert c["round"] == {"bf16": 12, "fp16": 12 + 8 + 4}  # products; steps, chunk sums, outputs
    assert c["elements_read"] == 12 and c["bits_read"] == 12 * 8
    assert c["elements_written"] == 4 and c["bits_written"] == 4 * 16
    mac.reset_counts()
    assert mac.counts["add"] == {}


# -- specials and bad input -----------------------------------------------------------------------------
def test_exact_accumulation_of_a_wide_span_is_rounded_once():
    # 2**60 + 1 - 2**60: float64 partial sums lose the 1; the exact sum is 1
    a = np.array([2.0**30, 1.0, -(2.0**30)])
    b = np.array([2.0**30, 1.0, 2.0**30])
    assert MAC(acc=None, out="fp32").dot(a, b) == 1.0
    assert MAC(acc=None, out="fp16", rounding="up").dot(np.array([1.0, 2.0**-40]), np.array([1.0, 1.0])) == 1 + 2**-10
    # a span of 120 bits: 2**60 + 2**-60 rounded up to fp32 once
    wide = MAC(acc=None, out="fp32", rounding="up").dot(np.array([2.0**30, 2.0**-30]), np.array([2.0**30, 2.0**-30]))
    assert wide == 2.0**60 * (1 + 2**-23)


def test_nan_and_inf_propagate_as_the_accumulator_says():
    assert math.isnan(MAC(acc="fp16").sum(np.array([1.0, np.nan, 2.0])))
    assert MAC(acc="fp16").sum(np.array([60000.0, 60000.0])) == np.inf
    assert math.isnan(MAC(acc="fp16").sum(np.array([np.inf, -np.inf])))
    sat = lowprec.FloatFormat(5, 10, overflow="saturate")
    assert MAC(acc=sat).sum(np.array([60000.0, 60000.0])) == 65504
    assert math.isnan(MAC(acc="fp8_e4m3fn").sum(np.array([400.0, 400.0])))


@pytest.mark.parametrize("kwargs, match", [
    (dict(chunk=0), "chunk"),
    (dict(chunk=2.5), "chunk"),
    (dict(order="tree"), "order"),
    (dict(fused=True, mul="fp16"), "fused"),
    (dict(rounding="nearest"), "rounding"),
    (dict(acc="fp16", chunk_acc="int16"), "chunk_acc"),
    (dict(acc="fp64"), "too wide"),
    (dict(rounding="stochastic", rbits=40), "rbits"),
    (dict(acc=lowprec.FixedFormat(60, 0)), "53 bits"),
])
def test_bad_configurations(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MAC(**kwargs)


def test_shape_mismatches_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        MAC().matmul(np.ones((3, 4)), np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        MAC().dot(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="26 significant bits"):
        MAC(acc="fp32").dot(np.array([1 / 3]), np.array([1.0]))
    with pytest.raises(TypeError):
        MAC().matmul(np.ones((2, 2), int), np.ones((2, 2)))


# -- binary and ternary MACs -----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 7, 8, 9, 64, 100])
def test_binary_matmul_is_the_dot_product_of_the_signs(k):
    rng = np.random.default_rng(k)
    a = rng.choice([-1.0, 1.0], (5, k))
    b = rng.choice([-1.0, 1.0], (k, 3))
    counts = lowprec.mac.Counts()
    got = lowprec.binary_matmul(a, b, counts=counts)
    np.testing.assert_array_equal(got, (a @ b).astype(np.int64))
    assert counts["mul"]["binary"] == 5 * 3 * k and counts["add"][f"q{k.bit_length() + 1}.0"] == 5 * 3 * k
    assert counts["bits_read"] == 8 * (5 + 3) * math.ceil(k / 8)  # packed bits
    r = lowprec.cost.report(counts)  # one schema: priced like any MAC's counts
    assert r.lines[0][0] == "mul binary" and r.lines[0][2] == lowprec.cost.energy("mul", lowprec.BinaryFormat(1.0))


@pytest.mark.parametrize("k", [1, 7, 64, 100])
def test_ternary_matmul_skips_zero_products(k):
    rng = np.random.default_rng(k)
    a = rng.choice([-1.0, 0.0, 1.0], (4, k))
    b = rng.choice([-1.0, 0.0, 1.0], (k, 6))
    counts = lowprec.mac.Counts()
    got = lowprec.ternary_matmul(a, b, counts=counts)
    np.testing.assert_array_equal(got, (a @ b).astype(np.int64))
    executed = int(((a != 0).astype(int) @ (b != 0).astype(int)).sum())
    assert counts["mul"]["ternary"] == 4 * 6 * k and counts["zero_products"] == 4 * 6 * k - executed
    skipping = lowprec.cost.report(counts, skip_zeros=True)
    assert skipping.lines[0][:2] == ("mul ternary", executed)
    with pytest.raises(TypeError, match="Counts"):
        lowprec.ternary_matmul(a, b, counts={})


def test_bit_macs_refuse_other_values():
    with pytest.raises(ValueError, match="only -1, 1"):
        lowprec.binary_matmul(np.array([[0.5, 1.0]]), np.ones((2, 1)))
    with pytest.raises(ValueError, match="only -1, 0, 1"):
        lowprec.ternary_matmul(np.array([[2.0]]), np.ones((1, 1)))
    with pytest.raises(ValueError, match=r"\(1, 2\).*\(3, 1\)"):
        lowprec.binary_matmul(np.ones((1, 2)), np.ones((3, 1)))


def test_swamping_study_writes_complete_results(tmp_path):
    from lowprec.sims import swamping

    assert swamping.main(["--out", str(tmp_path), "--min-log2", "6", "--max-log2", "12", "--dist", "ones",
                          "--acc", "fp16", "bf16", "--chunks", "64", "--quiet"]) == 0
    import csv

    rows = list(csv.DictReader(open(tmp_path / "swamping.csv")))
    by = {(r["acc"], r["order"], int(r["n"])): float(r["sum"]) for r in rows}
    assert by[("fp16", "sequential", 4096)] == 2048 and by[("fp16", "chunk 64", 4096)] == 4096
    assert by[("bf16", "sequential", 4096)] == 256  # bf16 stops at 2**8
    assert (tmp_path / "swamping.png").stat().st_size > 10000
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("order", ["pairwise", "kahan"])
def test_ordered_stochastic_accumulation_is_seeded_and_thread_independent(order):
    rng = np.random.default_rng(1)
    a = lowprec.quantize(rng.standard_normal((6, 300)), "fp8_e4m3fn")
    b = lowprec.quantize(rng.standard_normal((300, 5)), "fp8_e4m3fn")
    lowprec.set_num_threads(1)
    one = MAC(acc="bf16", order=order, rounding="stochastic", seed=9).matmul(a, b)
    lowprec.set_num_threads(2)
    two = MAC(acc="bf16", order=order, rounding="stochastic", seed=9).matmul(a, b)
    np.testing.assert_array_equal(one, two)
    assert (MAC(acc="bf16", order=order, rounding="stochastic", seed=10).matmul(a, b) != one).any()


def test_exact_accumulation_rounds_to_nearest_float64():
    # regression: wide-span exact sums once came back rounded to odd, not to nearest
    import math

    x = np.array([1.0, 2.0**-60, 2.0**-120, -(2.0**-200)] * 3 + [0.1, 0.2])
    assert lowprec.MAC(acc=None).sum(x) == math.fsum(x)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 30)) * np.exp2(rng.integers(-40, 40, (3, 30)))
    got = lowprec.MAC(acc=None).sum(a)
    assert [float(v) for v in got] == [math.fsum(r) for r in a]


@settings(max_examples=80, deadline=None)
@given(data=st.data(), acc=st.sampled_from(["int8", "int16", "int32", "q8.8", "q4.4", "uq8.0", "q12.3"]),
       wrap=st.booleans(), rounding=st.sampled_from(["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd"]),
       operand=st.sampled_from(["int8", "q3.4", "fp8_e4m3fn", "int4"]), k=st.integers(0, 60),
       m=st.integers(1, 9), n=st.integers(1, 19))
def test_compiled_fixed_point_sums_are_the_numpy_rule_s(data, acc, wrap, rounding, operand, k, m, n):
    """lowprec.mac.fixed (float32 lanes in C or exact int64 steps, or BLAS where no partial sum can leave
    the range) gives the numpy rule's values and overflow counts: every mode, wrap and saturate,
    products finer than the grid (rounded each step), coarser (scaled) and on it; shapes with whole C
    tiles (6 rows x 8 columns) and remainders."""
    from dataclasses import replace

    from lowprec.mac import unit

    fmt = lowprec.formats.as_format(acc)
    if wrap:
        fmt = replace(fmt, overflow="wrap")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    scale = data.draw(st.sampled_from([1.0, 8.0, 64.0]))
    a = lowprec.quantize(rng.standard_normal((m, k)) * scale, operand)
    b = lowprec.quantize(rng.standard_normal((k, n)) * scale, operand)
    fast = MAC(acc=fmt, rounding=rounding)
    got = fast.matmul(a, b)
    compiled, unit.fixed_matmul = unit.fixed_matmul, lambda *args: None  # the numpy rule alone
    try:
        slow = MAC(acc=fmt, rounding=rounding)
        want = slow.matmul(a, b)
    finally:
        unit.fixed_matmul = compiled
    assert np.array_equal(got, want) and fast.counts["overflows"] == slow.counts["overflows"]


@pytest.mark.parametrize("acc", ["int32", "int16", "q8.8", "int8"])
@pytest.mark.parametrize("wrap", [False, True])
def test_compiled_fixed_point_sums_of_float32_integer_operands_are_exact(acc, wrap):
    """float32 operands go to the compiled sums without a float64 copy: int8 values whose exact sums
    pass float32's 2**24 (int32: the no-overflow branch, BLAS in float64) or that leave the accumulator's
    range (int16, q8.8 saturate or wrap in float32 lanes; int8 wraps by products over its span: int64
    lanes), against exact integer arithmetic in Python."""
    from dataclasses import replace

    fmt = lowprec.formats.as_format(acc)
    if wrap:
        fmt = replace(fmt, overflow="wrap")
    rng = np.random.default_rng(11)
    k, m, n = 1500, 8, 11  # the C kernel's tiles: one of 6 rows and 8 columns, and the rest
    a = rng.integers(100, 128, (m, k)).astype(np.float32)
    a[1] = -a[1]
    a[2, ::3] = -128
    a[3] = rng.integers(-128, 128, k)
    a[4] = 0
    a[5, 1::2] = -a[5, 1::2]
    a[7] = -128
    b = rng.integers(-128, 128, (k, n)).astype(np.float32)
    b[:, 0] = 127
    b[:, 9] = -128
    mac = MAC(acc=fmt)
    got = mac.matmul(a, b)
    unit = 2 ** -fmt.frac_bits
    lo, hi = round(fmt.min / unit), round(fmt.max / unit)
    want, overflows = np.zeros((m, n)), 0
    for i in range(m):
        for j in range(n):
            s = 0
            for t in range(k):
                v = s + int(a[i, t]) * int(b[t, j]) * round(1 / unit)
                if not lo <= v <= hi:
                    overflows += 1
                    v = min(max(v, lo), hi) if not wrap else (v - lo) % (hi - lo + 1) + lo
                s = v
            want[i, j] = s * unit
    assert got.dtype == np.float32 and np.array_equal(got, want.astype(np.float32))  # the result in a's dtype
    assert mac.counts["overflows"] == overflows
    if acc == "int32":
        assert np.abs(want).max() > 2**24 and overflows == 0
        # products of 29 bits: float32 arithmetic would round them (and does, to -459334080)
        a2 = np.array([[22439, 8765, 712]], np.float32)
        b2 = np.array([[-14734], [-12299], [-29378]], np.float32)
        assert MAC(acc=fmt).matmul(a2, b2)[0, 0] == np.float32(22439 * -14734 + 8765 * -12299 + 712 * -29378)


def test_integer_sums_that_cannot_overflow_are_exact_past_float32s_integers():
    """Where no partial sum can leave the accumulator's range, BLAS sums: in float32 while every partial
    sum is bounded by 2**24 (an integer float32 holds), in float64 past it. At the bound: 1024 products
    of -128 * -128 make 2**24 exactly; one more term of 1 makes 2**24 + 1, which float32 would round."""
    k = 1024
    a = np.full((2, k), -128.0)
    a[1, ::2] = 127.0
    b = np.full((k, 3), -128.0)
    b[:, 1] = 127.0
    b[::3, 2] = 1.0
    want = np.array([[sum(int(x) * int(y) for x, y in zip(a[i], b[:, j])) for j in range(3)] for i in range(2)])
    assert np.abs(a).sum(axis=1).max() * np.abs(b).max() == 2**24 and want[0, 0] == 2**24
    assert np.array_equal(MAC(acc="int32").matmul(a, b), want)
    a1 = np.concatenate([a, np.ones((2, 1))], axis=1)
    b1 = np.concatenate([b, np.ones((1, 3))])
    got = MAC(acc="int32").matmul(a1, b1)
    assert got.dtype == np.float64 and got[0, 0] == 2**24 + 1 and np.array_equal(got, want + 1)


def test_float_sums_of_half_precision_terms_round_to_half_correctly():
    """The premise of the fp16 accumulator's fastest path (lp_macparams.acc_half == 2): for every finite
    fp16 accumulator value s and every product p of two fp8 values (e4m3fn, e5m2, mixed) below fp16's
    overflow threshold, float32's nearest-even sum rounded to fp16 is the exact sum rounded to fp16
    (the sum is exact in float64 here). Exhaustive: 287 million pairs."""
    import ml_dtypes

    h = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    s32 = h[np.isfinite(h)].astype(np.float32)
    s64 = s32.astype(np.float64)

    def finite_values(dtype):
        v = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float64)
        return v[np.isfinite(v)]

    pairs = [(ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fn), (ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2),
             (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2)]
    with np.errstate(over="ignore"):
        for da, db in pairs:
            p = np.unique(np.multiply.outer(finite_values(da), finite_values(db)).ravel())
            p = p[np.abs(p) < 65504]
            for part in np.array_split(p, len(p) // 64):
                want = (s64[None, :] + part[:, None]).astype(np.float16)
                got = (s32[None, :] + part[:, None].astype(np.float32)).astype(np.float16)
                same = np.isinf(want) | (want.view(np.uint16) == got.view(np.uint16))
                assert same.all(), (da, db, part[np.nonzero(~same)[0][0]])


def test_the_kernels_half_rounding_rule_is_binary16_nearest_even():
    """lp_half_rne_f32 (csrc/mac_impl.h), the fp16 accumulator's rounding on the fast path, in numpy:
    big = 1.5 * 2**13 * max(x's binade, 2**-14); (x + big) - big, x's sign kept. Against numpy's
    float32-to-float16 cast on every float32 below fp16's overflow threshold whose 14 low bits are any
    pattern and whose other fraction bits are all zeros, all ones or one of 6 random patterns, in
    every binade, both signs (float32 subnormals included): 37 million values."""
    rng = np.random.default_rng(41)
    low = np.arange(1 << 14, dtype=np.uint32)
    high = np.concatenate([[0, 0x1FF], rng.integers(0, 0x200, 6)]).astype(np.uint32) << np.uint32(14)
    with np.errstate(over="ignore"):
        for binade in range(0, 0x8F):  # up to 2**15's, fp16's top binade
            frac = (high[:, None] | low[None, :]).ravel()
            for sign in (0, 0x80000000):
                u = np.uint32(sign) | (np.uint32(binade) << np.uint32(23)) | frac
                x = u.view(np.float32)
                x = x[np.abs(x) < 65520]  # below the threshold (fp16's max plus half its last step)
                u = x.view(np.uint32)
                e = np.maximum(u & np.uint32(0x7F800000), np.uint32(0x38800000)).view(np.float32)
                big = e * np.float32(1.5 * 2**13)
                got = (((x + big) - big).view(np.uint32) | (u & np.uint32(0x80000000))).view(np.float32)
                want = x.astype(np.float16).astype(np.float32)
                bad = got.view(np.uint32) != want.view(np.uint32)
                assert not bad.any(), (hex(int(u[bad][0])), got[bad][0], want[bad][0])


@pytest.mark.parametrize("operands", [("fp8_e4m3fn", "fp8_e4m3fn"), ("fp8_e5m2", "fp8_e5m2"),
                                      ("fp8_e4m3fn", "fp8_e5m2"), ("fp16", "fp8_e4m3fn")])
@pytest.mark.parametrize("chunk", [None, 16])
def test_fp16_accumulator_fast_paths_equal_the_general_rule(operands, chunk):
    """fp8 operands into an fp16 accumulator take the float kernel's fastest paths (no tiny value or
    overflow provable; float's own sums where products have at most 11 bits); an initial accumulator
    of zeros turns them off. Both give the same bits, on sums that cross fp16's subnormal range and
    reach toward its largest values."""
    rng = np.random.default_rng(5)
    for scale in (2.0**-8, 1.0, 16.0):
        a = lowprec.quantize(rng.standard_normal((9, 300)) * scale, operands[0])
        b = lowprec.quantize(rng.standard_normal((300, 40)), operands[1])
        mac = MAC(acc="fp16", chunk=chunk)
        fast = mac.matmul(a, b)
        general = mac.matmul(a, b, np.zeros((9, 40)))
        assert np.array_equal(fast.view(np.uint64), general.view(np.uint64)), (operands, chunk, scale)
        if chunk is None and scale <= 1:  # the fast kernel took these (else the check compares a path to itself)
            from lowprec.mac.unit import _Operands

            ops = _Operands(a, b)
            assert mac._bounded(ops) and (mac._on_grids(ops) or mac._tiny_safe_half()), (operands, scale)


@pytest.mark.parametrize("mul,chunk", [(None, None), ("bf16", 16)])
def test_stochastic_draws_across_the_kernels_blocks_of_steps(mul, chunk):
    """The C kernel makes its stochastic draws four steps at a time for a whole tile (a Philox counter
    per output and kind, its four words four steps): sums of 150 steps (a ragged last block of two)
    in a tiled, padded shape, with a product rounding and chunks, match the per-operation reference,
    which draws one counter per event."""
    rng = np.random.default_rng(17)
    a = lowprec.quantize(rng.standard_normal((9, 150)), "fp8_e4m3fn")
    b = lowprec.quantize(rng.standard_normal((150, 20)), "fp8_e5m2")
    mac = MAC(mul=mul, acc="fp16", chunk=chunk, rounding="stochastic", seed=23, rbits=11)
    got = mac.matmul(a, b)
    for i in range(9):
        for j in range(0, 20, 3):
            ref = mac_dot_reference(a[i], b[:, j], mul=mul, acc="fp16", chunk=chunk, rounding="stochastic",
                                    seed=23, rbits=11, output_index=i * 20 + j)
            assert got[i, j] == ref, (i, j, got[i, j], ref)


def test_a_product_rounding_that_changes_nothing_is_left_out_with_the_same_bits():
    """fp8 products rounded to fp16 (mul="fp16") are fp16 values where no product is tiny or past
    fp16's range: the kernel then skips that rounding. Same bits as the general path (an initial
    accumulator of zeros turns the fast paths off), and as a product rounding that does change values
    (fp8_e5m2 products into bf16, whose rounding keeps it)."""
    rng = np.random.default_rng(6)
    a = lowprec.quantize(rng.standard_normal((16, 200)), "fp8_e4m3fn")
    b = lowprec.quantize(rng.standard_normal((200, 32)), "fp8_e4m3fn")
    from lowprec.mac.unit import _Operands

    ops = _Operands(a, b)
    for mul, acc in (("fp16", "fp16"), ("fp16", "fp32"), ("bf16", "fp16"), ("fp8_e5m2", "fp16")):
        mac = MAC(mul=mul, acc=acc)
        got = mac.matmul(a, b)
        general = mac.matmul(a, b, np.zeros((16, 32)))
        assert np.array_equal(got.view(np.uint64), general.view(np.uint64)), (mul, acc)
        if (mul, acc) == ("fp16", "fp16"):  # the proof that lets the kernel leave the rounding out holds here
            assert mac._on_grids(ops) and mac._bounded(ops), (mul, acc)


@pytest.mark.parametrize("chunk,chunk_acc", [(16, "fp32"), (64, "fp16"), (None, None)])
def test_long_sums_in_chunks_take_the_fast_paths_with_the_same_bits(chunk, chunk_acc):
    """The no-overflow proof bounds a chunk's partial sums by the growth of its own length (a chunk
    restarts) and chunk totals by the number of chunks: long chunked sums (k = 5000) take the fast
    paths; an initial accumulator of zeros takes the general rule; the bits agree. Narrow outputs
    (8 columns) are padded to a tile, not summed one at a time."""
    rng = np.random.default_rng(9)
    a = lowprec.quantize(rng.standard_normal((9, 5000)), "fp8_e4m3fn")
    b = lowprec.quantize(rng.standard_normal((5000, 8)) * 0.25, "fp8_e4m3fn")
    mac = MAC(acc="fp16", chunk=chunk, chunk_acc=chunk_acc)
    got = mac.matmul(a, b)
    general = mac.matmul(a, b, np.zeros((9, 8)))
    assert np.array_equal(got.view(np.uint64), general.view(np.uint64))
    if chunk:
        from lowprec.mac.unit import _Operands

        ops = _Operands(a, b)
        assert mac._on_grids(ops) and mac._bounded(ops)  # the fast path was open to it


@pytest.mark.parametrize("chunk", [None, 16])
def test_fp16_accumulation_of_products_below_its_grid_takes_the_fast_path(chunk):
    """Gradient-like products (e5m2 x e4m3, many below fp16's smallest subnormal) into an fp16
    accumulator: the fast kernel's half rounding is exact there too, so it needs only the
    no-overflow proof. Same bits as the general rule (initial accumulator of zeros), with sums that
    live in fp16's subnormal range and ties there."""
    rng = np.random.default_rng(13)
    a = lowprec.quantize(rng.standard_normal((16, 300)) * 2.0**-12, "fp8_e5m2")
    b = lowprec.quantize(rng.standard_normal((300, 32)) * 2.0**-6, "fp8_e4m3fn")
    a[0, :4], b[:4, 0] = 2.0**-16, 2.0**-9  # products of 2**-25: half of fp16's smallest subnormal
    mac = MAC(acc="fp16", chunk=chunk, chunk_acc="fp32" if chunk else None)
    from lowprec.mac.unit import _Operands

    ops = _Operands(a, b)
    assert not mac._on_grids(ops) and mac._bounded(ops) and mac._tiny_safe_half()
    got = mac.matmul(a, b)
    general = mac.matmul(a, b, np.zeros((16, 32)))
    assert np.array_equal(got.view(np.uint64), general.view(np.uint64))
    assert np.count_nonzero(np.abs(got) < 2.0**-14) > 0  # some outputs are fp16 subnormals


def _sf32_fma_chain(sf, a, b, init):
    """SoftFloat's f32_mulAdd chain s = a[t] * b[t] + s (one rounding each, nearest even) from init."""
    def f32(x):
        v = sf.float32_t()
        v.v = int(np.array(x, np.float32).view(np.uint32))
        return v

    s = f32(init)
    for x, y in zip(a, b):
        s = sf.f32_mulAdd(f32(x), f32(y), s)
    return float(np.array(s.v, np.uint32).view(np.float32))


@pytest.mark.parametrize("n", [5, 20])  # narrow (summed as the transpose) and tiled
@pytest.mark.parametrize("chunk", [None, 7])
def test_float32_operands_into_fp32_are_fused_multiply_add_chains(n, chunk):
    """float32 operands (24-bit significands: 48-bit products, which float cannot hold) summed into an
    fp32 accumulator in nearest even run in the float kernel by fused multiply-adds, each step the one
    rounding of s + a * b: the exact reference's bits, and SoftFloat's f32_mulAdd chain's (no chunks),
    with products down in float32's subnormal range and below it, cancellations, an initial
    accumulator and partial sums that overflow to Inf."""
    from lowprec.mac.unit import _Operands

    rng = np.random.default_rng(29)
    m, k = 3, 200
    a = (rng.standard_normal((m, k)) * 2.0 ** rng.integers(-60, 60, (m, k))).astype(np.float32)
    b = (rng.standard_normal((k, n)) * 2.0 ** rng.integers(-60, 60, (k, n))).astype(np.float32)
    a[0, :40] = np.float32(1 + 2**-23) * 2.0**-70  # products far below float32's smallest subnormal
    b[:40, 0] = np.float32(1 - 2**-24) * 2.0**-75
    a[1, :4], b[:4, 1] = [3e38, 3e38, -3e38, 1.0], [2.0, 1.0, 1.0, 1.0]  # Inf, then Inf stays
    c = (rng.standard_normal((m, n)) * 1e3).astype(np.float32)
    a[2], b[0, 2], c[2, 2] = 0.0, np.float32(1 - 2**-23), -1.0  # (1 + 2**-23)(1 - 2**-23) - 1: -2**-46, exact;
    a[2, 0] = np.float32(1 + 2**-23)  # a rounded product would give 0
    mac = MAC(acc="fp32", chunk=chunk, chunk_acc="fp32" if chunk else None)
    assert mac._fma_float32(_Operands(a.astype(np.float64), b.astype(np.float64)))  # the path under test
    got = mac.matmul(a, b, c)
    sf = None if chunk else _softfloat()
    for i in range(m):
        for j in range(n):
            ref = mac_dot_reference(a[i], b[:, j], acc="fp32", chunk=chunk, chunk_acc="fp32" if chunk else None,
                                    initial=float(c[i, j]))
            g = float(got[i, j])
            assert g == ref and math.copysign(1, g) == math.copysign(1, ref), (i, j, g, ref)
            if sf is not None:
                assert g == _sf32_fma_chain(sf, a[i], b[:, j], c[i, j]), (i, j)
    assert math.isinf(got[1, 1])  # the overflow happened
    # the cancellation: in one chain the fused step keeps -2**-46; in chunks the chunk's sum (1.0, the
    # product rounded once) meets the initial -1 in the chunk total
    assert got[2, 2] == (0.0 if chunk else -(2.0**-46))


def _softfloat():
    try:
        import softfloat
    except ImportError:
        return None
    return softfloat


@pytest.mark.parametrize("kwargs,exact,draw_grid", [
    (dict(acc="fp16"), True, True),
    (dict(acc="fp16", rbits=2), True, False),  # sums with bits below 2**-2 of fp16's spacing
    (dict(mul="bf16", acc="fp16", chunk=16), True, True),  # a finer product format: still on the grids
    (dict(acc="fp32", rbits=13), True, True),
    (dict(acc="fp32"), False, False),  # operands spanning 2**-24 .. 2**15: sums past 53 bits of 2**L
])
def test_stochastic_fast_paths_equal_the_reference(kwargs, exact, draw_grid):
    """Stochastic rounding's fast kernel (no tiny value or overflow provable) with float64's own sums
    where every one is provably exact (rounded in double arithmetic, lp_sr_float_round, where the
    format allows: without its RNE step where every sum is on the draw's grid), and with sums rounded
    to odd where not: the per-operation reference's bits, on sums that cross fp16's subnormal range.
    The paths are asserted taken."""
    from lowprec.mac.unit import _Operands

    rng = np.random.default_rng(8)
    if exact:
        a = lowprec.quantize(rng.standard_normal((9, 70)) * 2.0**-8, "fp8_e4m3fn")
        b = lowprec.quantize(rng.standard_normal((70, 20)), "fp8_e5m2")
    else:
        a = lowprec.quantize(rng.standard_normal((9, 70)), "fp16")
        a[:, 0] = 2.0**-24
        a[:, 1] = 2.0**15
        b = lowprec.quantize(rng.standard_normal((70, 20)), "fp8_e4m3fn")
    mac = MAC(rounding="stochastic", seed=12, **kwargs)
    ops = _Operands(a, b)
    assert mac._bounded(ops) and mac._on_grids(ops) and mac._exact_in_double(ops) == exact
    assert mac._on_draw_grid(ops, mac.rbits) == draw_grid
    got = mac.matmul(a, b)
    for i in range(0, 9, 2):
        for j in range(0, 20, 3):
            ref = mac_dot_reference(a[i], b[:, j], rounding="stochastic", seed=12, output_index=i * 20 + j, **kwargs)
            assert got[i, j] == ref, (i, j, got[i, j], ref)


@pytest.mark.parametrize("mode", ["nearest_even", "up"])
def test_a_finer_product_format_keeps_the_fast_kernel(mode):
    """Products of fp16 and fp8 values (15 bits) rounded to bf16 (whose grid reaches far below fp16's)
    into fp16: every value is a multiple of the products' least bit, so no rounding meets a tiny value
    and the fast kernel runs; an initial accumulator of zeros turns it off. Same bits."""
    from lowprec.mac.unit import _Operands

    rng = np.random.default_rng(9)
    sign = rng.choice([-1.0, 1.0], (9, 200))
    a = lowprec.quantize(sign * rng.uniform(0.5, 1.0, (9, 200)), "fp16")  # least bit 2**-11
    b = lowprec.quantize(rng.uniform(-2.0, 2.0, (200, 40)), "fp8_e4m3fn")
    mac = MAC(mul="bf16", acc="fp16", rounding=mode)
    assert mac._on_grids(_Operands(a, b))
    got = mac.matmul(a, b)
    assert np.array_equal(got.view(np.uint64), mac.matmul(a, b, np.zeros((9, 40))).view(np.uint64))


def _sr_float_rule(x: np.ndarray, p, draws: np.ndarray) -> np.ndarray:
    """lp_sr_float_round (csrc/mac_impl.h) in numpy float64, from the kernel's parameter block p."""
    k, d = int(p.rbits), int(p.drop0)
    u = x.view(np.uint64)
    binade = u & np.uint64(0x7FF0000000000000)
    bs = (np.maximum(binade, np.uint64(int(p.sub_exp) << 52)) | (u & np.uint64(1 << 63))).view(np.float64)
    top = np.uint32(0xFFFFFFFF if k == 32 else ~((1 << (32 - k)) - 1) & 0xFFFFFFFF)
    big = bs * math.ldexp(1.5, d - k)
    signed = ((draws & top) ^ np.uint32(0x80000000)).view(np.int32)  # D 2**32 - 2**31
    y = ((x + big) - big) + signed.astype(np.float64) * (bs * math.ldexp(1.0, d - 84))
    big2 = bs * math.ldexp(1.5, d)
    return ((y + bs * math.ldexp(1.0, d - 53 - k)) + big2) - big2


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "fp32"])
@pytest.mark.parametrize("rbits", [1, 3, 8, 13, 32])
def test_the_kernels_double_stochastic_rule_is_the_k_bit_rule(fmt, rbits):
    """The MAC's stochastic rounding in double arithmetic (lp_sr_float_round: RNE of |x| at q 2**-k,
    plus the draw times q, floored to q by a nearest-even rounding that never meets a tie) against
    the reference quantizer with the same explicit draws, where the kernel takes it
    (lp_sr_float_ok: drop0 >= k + 2): float64 values of every significance from the format's smallest
    through its largest binade (subnormal range included, on the grid and between), exact ties of
    the k-bit remainder, and draws 0, all ones and random."""
    from lowprec.kernels.params import qparams
    from lowprec.reference import quantize_reference

    f = lowprec.formats.get(fmt)
    p = qparams(f, np.dtype(np.float64), "stochastic", rbits)
    if int(p.drop0) < rbits + 2:
        pytest.skip(f"{fmt} with {rbits} random bits: the kernel keeps the integer rule (drop0 {int(p.drop0)})")
    m, emin, q_exp = lowprec.formats.layout(f)
    rng = np.random.default_rng(rbits)
    exps = rng.integers(q_exp, int(math.log2(f.max)) + 1, 40000)
    x = np.ldexp(rng.uniform(1.0, 2.0, exps.size), exps)
    # values on the format's grid and just off it, and remainders that are exact ties at k bits
    on = lowprec.quantize(x, f, "toward_zero")
    q = np.ldexp(1.0, np.maximum(np.frexp(on)[1] - 1, emin) - m)
    tie = on + q * (rng.integers(0, 1 << min(rbits, 20), x.size) * 2 + 1) * 2.0**-(rbits + 1)
    x = np.concatenate([x, on, np.nextafter(on, np.inf), tie])
    x = x[(x >= 2.0**q_exp) & (x <= f.max)]
    x = np.concatenate([[0.0], np.where(rng.random(x.size) < 0.5, -x, x)])  # +0 (the rule's only zero)
    for draws in (np.zeros(x.size, np.uint32), np.full(x.size, 0xFFFFFFFF, np.uint32),
                  rng.integers(0, 1 << 32, x.size, dtype=np.uint64).astype(np.uint32)):
        got = _sr_float_rule(x, p, draws)
        want = quantize_reference(x, f, "stochastic", rbits=rbits, random=draws.astype(np.uint64) << np.uint64(32))
        bad = got.view(np.uint64) != want.view(np.uint64)
        assert not bad.any(), (x[bad][:3], draws[bad][:3], got[bad][:3], want[bad][:3])


@pytest.mark.parametrize("kwargs", [dict(acc="fp16"), dict(mul="bf16", acc="fp16", chunk=16), dict(acc="fp32", rbits=13),
                                    dict(acc="bf16", rbits=5)])
def test_float32_operands_of_the_stochastic_kernel_are_read_as_they_are(kwargs):
    """The double kernel's fast stochastic variants read float32 operands in place (converting each
    as it reads it, mp.ops_f32): the same bits as the same values in float64, in a tiled shape with
    padding and in a narrow one."""
    rng = np.random.default_rng(10)
    a = lowprec.quantize(rng.standard_normal((13, 70)).astype(np.float32) * 0.25, "fp8_e4m3fn")
    b = lowprec.quantize(rng.standard_normal((70, 37)).astype(np.float32), "fp8_e5m2")
    assert a.dtype == np.float32 and b.dtype == np.float32
    for bb in (b, b[:, :3]):  # (a MAC's draws go on from call to call: a fresh one for each)
        got = np.asarray(MAC(rounding="stochastic", seed=31, **kwargs).matmul(a, bb), np.float64)
        want = np.asarray(MAC(rounding="stochastic", seed=31, **kwargs).matmul(a.astype(np.float64),
                                                                             bb.astype(np.float64)), np.float64)
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
