"""Named matrix units (lowprec.mac_units) and their exact model (lowprec.mma_reference) against the
outputs of real NVIDIA H200 tensor cores recorded in ../shared/oracles/h200-mma (skipped, with a
message, where that folder is absent)."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowprec
from lowprec.mma_reference import fused_matmul_reference
from lowprec.testing import strategies as lst

from helpers import assert_same

ORACLES = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "h200-mma"
FILES = {  # recording -> (unit, a's format, b's format)
    "tc_fp16xfp16_acc32": ("h200_fp16", "fp16", "fp16"),
    "tc_fp16xfp16_acc16": ("h200_fp16_acc16", "fp16", "fp16"),
    "tc_bf16xbf16_acc32": ("h200_bf16", "bf16", "bf16"),
    "tc_tf32xtf32_acc32": ("h200_tf32", "tf32", "tf32"),
    "tc_e4m3xe4m3_acc32": ("h200_fp8", "fp8_e4m3fn", "fp8_e4m3fn"),
    "tc_e5m2xe5m2_acc32": ("h200_fp8", "fp8_e5m2", "fp8_e5m2"),
    "tc_e4m3xe5m2_acc32": ("h200_fp8", "fp8_e4m3fn", "fp8_e5m2"),
}
try:
    import triton  # noqa: F401

    TRITON = True  # the Triton engine is checked too (CI installs triton)
except ImportError:
    TRITON = False
needs_recordings = pytest.mark.skipif(not ORACLES.is_dir(), reason=f"the H200 recordings are not at {ORACLES}")


@needs_recordings
@pytest.mark.parametrize("folder", ["", "probes", "specials"])
@pytest.mark.parametrize("recording", sorted(FILES))
def test_every_recorded_output_is_reproduced(recording, folder):
    """Every output of every case, bit for bit (zero signs compared; NaN as NaN): ordinary values,
    wide exponents, cancellation, swamping, sparse rows, c = -(sum), and the specials (signed zeros,
    subnormal operands and sums, overflow, Inf, NaN)."""
    path = ORACLES / folder / f"{recording}.npz"
    name, fa, fb = FILES[recording]
    unit = lowprec.mac_units.unit(name)
    unit.check_operands(fa, fb)
    data = np.load(path)
    cases = sorted({key.rsplit("_", 1)[0] for key in data.files})
    assert cases
    for case in cases:
        a, b, c, d = (data[f"{case}_{part}"] for part in "abcd")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # Inf - Inf in the specials: NaN, as the hardware
            ours = fused_matmul_reference(a, b, c, unit, fa, fb)
        assert_same(ours.astype(np.float32), d, f"{folder}/{recording} {case} (reference)")
        mac = lowprec.mac_units.get(name, inputs=(fa, fb))  # the C core's engine
        assert_same(mac.matmul(a, b, c), d, f"{folder}/{recording} {case} (MAC)")
        if TRITON and folder == "specials" and case == cases[0]:  # the Triton engine (interpreted: ~6 s a case)
            mac = lowprec.mac_units.get(name, inputs=(fa, fb), backend="triton")
            assert_same(mac.matmul(a, b, c), d, f"{folder}/{recording} {case} (Triton)")


def test_rounding_the_exact_sum_is_not_what_the_hardware_does():
    """The point of the model: a correctly rounded dot product differs from the unit's. 1 - 2**-25
    is a tie in fp32 (nearest even: 1); the unit truncates the sum toward zero: 1 - 2**-24."""
    unit = lowprec.mac_units.unit("h100_fp16")
    a = np.array([[1.0, 2.0**-13]])
    b = np.array([[1.0], [-(2.0**-12)]])
    d = fused_matmul_reference(a, b, np.zeros((1, 1)), unit)
    assert d[0, 0] == 1 - 2.0**-24
    assert np.float32(1 - 2.0**-25) == 1.0


def test_k_not_a_multiple_of_the_group_pads_with_zero_products():
    unit = lowprec.mac_units.unit("h100_bf16")
    rng = np.random.default_rng(0)
    a = lowprec.quantize(rng.standard_normal((3, 20)), "bf16")
    b = lowprec.quantize(rng.standard_normal((20, 4)), "bf16")
    c = lowprec.quantize(rng.standard_normal((3, 4)), "fp32")
    padded = fused_matmul_reference(np.pad(a, ((0, 0), (0, 12))), np.pad(b, ((0, 12), (0, 0))), c, unit)
    assert_same(fused_matmul_reference(a, b, c, unit), padded)


def test_unit_registry():
    names = lowprec.mac_units.names()
    for name in ("h100_fp16", "h100_fp16_acc16", "h100_bf16", "h100_tf32", "h100_fp8", "h200_fp16", "h200_fp8"):
        assert name in names
    unit = lowprec.mac_units.unit("h200_fp8")
    assert unit is lowprec.mac_units.unit("h100_fp8") and unit.source
    assert (unit.group, unit.kept_bits, unit.acc.man_bits, unit.acc_rounding) == (32, 13, 13, "toward_zero")
    with pytest.raises(ValueError, match="unknown matrix unit 'v100'; known: a100_bf16, a100_fp16"):
        lowprec.mac_units.unit("v100")
    with pytest.raises(ValueError, match="unit h100_fp8 takes operands in fp8_e4m3fn, fp8_e5m2; got 'fp16'"):
        unit.check_operands("fp16", "fp8_e5m2")
    from lowprec.mac.units import _build

    entry = {"operands": ["bf16"], "acc": "fp32", "group": 8, "kept_bits": 24, "acc_rounding": "toward_zero",
             "source": "test"}
    assert _build("u", {**entry, "ref_exp_min": -20}, "t.toml").ref_exp_min == -20
    for bad in (-1074, 1.5, "low", True):
        with pytest.raises(ValueError, match=r"t.toml: \[u\] ref_exp_min must be an integer in -512..512"):
            _build("u", {**entry, "ref_exp_min": bad}, "t.toml")


@pytest.mark.skipif(not (ORACLES / "long-k").is_dir(), reason=f"the long-K recordings are not at {ORACLES / 'long-k'}")
@pytest.mark.parametrize("kind", ["normal", "positive"])
def test_long_reductions_chain_and_cublas(kind):
    """fp8 GEMMs with K up to 4096: the unit chained over K is the matrix unit's own accumulation
    (Triton's one-accumulator chain), and promoting its partial sums to fp32 every 128 products is
    what cuBLAS computes (torch._scaled_mm); other intervals are not."""
    data = np.load(ORACLES / "long-k" / f"longk_e4m3_{kind}.npz")
    for case in sorted({key.rsplit("_", 1)[0] for key in data.files}):
        a, b = data[f"{case}_a"], data[f"{case}_b"]
        chained = lowprec.mac_units.get("h100_fp8", inputs="fp8_e4m3fn")
        assert_same(chained.matmul(a, b), data[f"{case}_chain"], f"{case} chain")
        promoted = lowprec.mac_units.get("h100_fp8", inputs="fp8_e4m3fn", chunk=128, chunk_acc="fp32")
        assert_same(promoted.matmul(a, b), data[f"{case}_cublas"], f"{case} cuBLAS")
        other = lowprec.mac_units.get("h100_fp8", inputs="fp8_e4m3fn", chunk=256, chunk_acc="fp32")
        assert not np.array_equal(other.matmul(a, b), data[f"{case}_cublas"])


UNITS = ["h100_fp16", "h100_fp16_acc16", "h100_bf16", "h100_tf32", "h100_fp8", "h100_fp8_acc16", "v100_fp16",
         "v100_fp16_acc16",
         "a100_fp16", "a100_fp16_acc16", "a100_bf16", "a100_tf32", "b200_fp16", "b200_fp16_acc16", "b200_bf16",
         "b200_tf32", "b200_fp8"]


def test_other_generations_carry_their_published_parameters():
    """V100, A100 and B200 as Khattak and Mikaitis's models set them (formats/mac_units/nvidia.toml):
    products per step, bits kept below the reference (23 + their extra alignment bits), rounding."""
    want = {"v100_fp16": (4, 23, "toward_zero"), "v100_fp16_acc16": (4, 23, "nearest_even"),
            "a100_fp16": (8, 24, "toward_zero"), "a100_fp16_acc16": (8, 24, "nearest_even"),
            "a100_bf16": (8, 24, "toward_zero"), "a100_tf32": (4, 24, "toward_zero"),
            "b200_fp16": (16, 25, "toward_zero"), "b200_fp16_acc16": (16, 25, "nearest_even"),
            "b200_bf16": (16, 25, "toward_zero"),
            "b200_tf32": (8, 25, "toward_zero"), "b200_fp8": (32, 25, "toward_zero"),
            "h100_fp8_acc16": (32, 13, "nearest_even")}
    for name, params in want.items():
        spec = lowprec.mac_units.unit(name)
        assert (spec.group, spec.kept_bits, spec.acc_rounding) == params and "2512.07004" in spec.source
        assert spec.acc.name == ("fp16" if name.endswith("acc16") else "fp32")
    assert lowprec.mac_units.unit("b200_fp8").operands == lowprec.mac_units.unit("h100_fp8").operands
    floors = {name: lowprec.mac_units.unit(name).ref_exp_min for name in UNITS}  # their min_exp_limit
    assert floors == {**dict.fromkeys(UNITS), "b200_fp16_acc16": -15, "b200_bf16": -133, "b200_tf32": -133,
                      "h100_bf16": -133, "h100_tf32": -133}


def test_the_floor_under_the_reference_exponent_truncates_tiny_steps():
    """B200 into fp16 aligns a step to at least 2**-15 (min_exp_limit): with products 2**-25 and 2**-48
    (fp16 subnormals 2**-24 squared), 2**-48 falls below the 25 kept bits and the sum is the tie
    2**-25, which rounds to even 0; without the floor it is kept and the sum rounds up to 2**-24.
    The same for bf16 with the floor 2**-133: 2**-140 - 2**-160 keeps its small term on A100 (rounded
    toward zero: 2**-140 - 2**-149), not on B200 or H100 (2**-140)."""
    a = np.array([[2.0**-12, 2.0**-24]], np.float32)
    b = np.array([[2.0**-13, 2.0**-24]], np.float32).T
    for name, want in (("b200_fp16_acc16", 0.0), ("h100_fp16_acc16", 2.0**-24), ("a100_fp16_acc16", 2.0**-24),
                       ("v100_fp16_acc16", 2.0**-24)):
        spec = lowprec.mac_units.unit(name)
        got = lowprec.mac_units.get(name).matmul(a, b)
        assert got[0, 0] == fused_matmul_reference(a, b, np.zeros((1, 1)), spec)[0, 0] == want, name
        if TRITON:
            assert lowprec.MAC(unit=name, backend="triton").matmul(a, b)[0, 0] == want, name
    a = np.array([[2.0**-70, -(2.0**-80)]], np.float32)
    b = np.array([[2.0**-70, 2.0**-80]], np.float32).T
    for name, want in (("b200_bf16", 2.0**-140), ("h100_bf16", 2.0**-140), ("a100_bf16", 2.0**-140 - 2.0**-149)):
        spec = lowprec.mac_units.unit(name)
        got = lowprec.mac_units.get(name).matmul(a, b)
        assert got[0, 0] == fused_matmul_reference(a, b, np.zeros((1, 1)), spec)[0, 0] == np.float32(want), name
        if TRITON:
            assert lowprec.MAC(unit=name, backend="triton").matmul(a, b)[0, 0] == np.float32(want), name


T24, T25, T26 = 2.0**-24, 2.0**-25, 2.0**-26
# (operand pairs (a_t, b_t) of one dot product, in k order; the result on V100, A100, B200 and H100),
# worked by hand from the units' rules: c = 0; a step aligns its products and accumulator to the
# largest exponent and truncates each below 2**-kept_bits of it, sums exactly, rounds into acc
FEATURE_VECTORS = {
    # extra alignment bits: two products of 2**-24 beside 1 survive 24 kept bits, not 23
    "alignment 2**-24": ([(1, 1), (2**-12, 2**-12), (2**-12, 2**-12)], (1.0, 1 + 2 * T24, 1 + 2 * T24, 1 + 2 * T24)),
    # ... four of 2**-25 survive 25, not 24
    "alignment 2**-25": ([(1, 1)] + [(2**-12, 2**-13)] * 4, (1.0, 1.0, 1 + 4 * T25, 1 + 4 * T25)),
    # products per step: small terms summed in a step of their own before 1 arrives survive (V100's 4)
    "group of 4": ([(2**-12, 2**-13)] * 4 + [(1, 1)], (1 + 4 * T25, 1.0, 1 + 4 * T25, 1 + 4 * T25)),
    # ... eight of them (V100 in two steps, A100 in one, B200 and H100 with 1 in theirs: truncated)
    "group of 8": ([(2**-13, 2**-13)] * 8 + [(1, 1)], (1 + 8 * T26, 1 + 8 * T26, 1.0, 1.0)),
    # the sum into fp32 toward zero: 1 + 1.5 ulp is 1 + 1 ulp
    "toward zero": ([(1, 1)] + [(2**-12, 2**-12)] * 3, (1.0, 1 + 2 * T24, 1 + 2 * T24, 1 + 2 * T24)),
}


@pytest.mark.parametrize("case", sorted(FEATURE_VECTORS))
def test_generations_differ_where_their_features_say(case):
    """Test vectors in the papers' method (one feature at a time), on fp16 operands into fp32, through
    the C engine and the numpy oracle; the worked results above."""
    pairs, results = FEATURE_VECTORS[case]
    a = np.array([[p[0] for p in pairs]], np.float32)
    b = np.array([[p[1] for p in pairs]], np.float32).T
    for name, want in zip(("v100_fp16", "a100_fp16", "b200_fp16", "h100_fp16"), results):
        spec = lowprec.mac_units.unit(name)
        got = lowprec.mac_units.get(name).matmul(a, b)
        ref = fused_matmul_reference(a, b, np.zeros((1, 1)), spec)
        assert got[0, 0] == ref[0, 0] == np.float32(want), (case, name, float(got[0, 0]), want)


def test_fp16_accumulators_round_to_nearest_and_b200_keeps_fp8_bits_h100_drops():
    """acc16 units round a step's sum to nearest even (1 + 0.75 ulp of fp16 is 1 + 1 ulp; toward zero
    would give 1); B200's fp8 unit keeps 25 bits below the reference where H100's keeps 13."""
    a = np.array([[1.0, 2.0**-6, 2.0**-6]], np.float32)
    b = np.array([[1.0, 2.0**-5, 2.0**-6]], np.float32).T  # products 1, 2**-11, 2**-12
    for name in ("v100_fp16_acc16", "a100_fp16_acc16", "h100_fp16_acc16"):
        assert lowprec.mac_units.get(name).matmul(a, b)[0, 0] == 1 + 2.0**-10, name
    assert lowprec.mac_units.get("h100_fp8_acc16", inputs="fp8_e4m3fn").matmul(a, b)[0, 0] == 1 + 2.0**-10
    for name in ("v100_fp16", "a100_fp16", "b200_fp16"):
        assert lowprec.mac_units.get(name).matmul(a, b)[0, 0] == 1 + 3 * 2.0**-12, name
    a8 = np.array([[1.0, 2.0**-7, 2.0**-7]], np.float32)  # fp8_e4m3fn values; products 1, 2**-14, 2**-14
    assert lowprec.mac_units.get("b200_fp8", inputs="fp8_e4m3fn").matmul(a8, a8.T)[0, 0] == 1 + 2.0**-13
    assert lowprec.mac_units.get("h100_fp8", inputs="fp8_e4m3fn").matmul(a8, a8.T)[0, 0] == 1.0


def _published_case(name, pairs, c=0.0):
    """One dot product on `name`: (a_t, b_t) pairs in k order (zero-padded to a group) plus c, through
    the C engine and the numpy oracle, which must agree; the C result."""
    spec = lowprec.mac_units.unit(name)
    k = max(len(pairs), spec.group)
    a, b = np.zeros((1, k), np.float32), np.zeros((k, 1), np.float32)
    for t, (x, y) in enumerate(pairs):
        a[0, t], b[t, 0] = x, y
    fmt = next(f for f in spec.operands if f.name != "fp8_e4m3fn")  # one with Inf
    cc = np.array([[c]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = fused_matmul_reference(a, b, cc, spec, fmt, fmt)
        got = lowprec.mac_units.get(name, inputs=fmt).matmul(a, b, cc)
    assert_same(got, ref.astype(np.float32), name)
    return float(got[0, 0])


def test_the_published_exceptional_cases():
    """The Inf and NaN test vectors of Khattak and Mikaitis's models (model_validation/
    ExceptionalCasesTest.m in github.com/north-numerical-computing/MATLAB-tensor-core), on every unit
    whose formats they fit: a sum past fp32 (c = 2**127 plus 2**127 * 1) is +Inf; (+Inf) x (-Inf) is
    -Inf; -Inf + Inf is NaN; two products of the operand format's largest value (fp16's, e5m2's) overflow
    an fp16 accumulator to Inf of their sign."""
    inf = float("inf")
    for name in UNITS:
        spec = lowprec.mac_units.unit(name)
        if spec.acc.name == "fp32" and all(f.name in ("bf16", "tf32") for f in spec.operands):
            assert _published_case(name, [(2.0**127, 1.0)], c=2.0**127) == inf, name
        assert _published_case(name, [(inf, -inf)]) == -inf, name
        assert np.isnan(_published_case(name, [(-inf, 1.0), (inf, 1.0)])), name
        if spec.acc.name == "fp16":
            big = next(f for f in spec.operands if f.name != "fp8_e4m3fn").max
            assert _published_case(name, [(big, 1.0), (big, 1.0)]) == inf, name
            assert _published_case(name, [(big, -1.0), (big, -1.0)]) == -inf, name


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(UNITS), st.integers(1, 5), st.integers(0, 70), st.integers(1, 5), st.data())
def test_the_c_engine_is_the_reference(name, m, k, n, data):
    """Random shapes (K not a multiple of the group included), values near every exponent of the
    operand formats and an accumulator c: the C core's engine and the numpy oracle agree bit for bit."""
    spec = lowprec.mac_units.unit(name)
    fa = data.draw(st.sampled_from(spec.operands))
    fb = data.draw(st.sampled_from(spec.operands))
    near = {f: lst.floats_near(f, width=32) if f.bits <= 16 else st.floats(-2.0**100, 2.0**100, width=32) for f in (fa, fb)}
    a = data.draw(hnp.arrays(np.float32, (m, k), elements=near[fa]))
    b = data.draw(hnp.arrays(np.float32, (k, n), elements=near[fb]))
    a, b = lowprec.quantize(a, fa), lowprec.quantize(b, fb)
    c = lowprec.quantize(data.draw(hnp.arrays(np.float32, (m, n), elements=st.floats(-1e4, 1e4, width=32))), spec.acc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = fused_matmul_reference(a, b, c, spec, fa, fb)
    got = lowprec.MAC(unit=spec, inputs=(fa, fb)).matmul(a, b, c)
    assert_same(got, expected.astype(np.float32), f"{name} {fa.name} x {fb.name}")
    if TRITON:
        got = lowprec.MAC(unit=spec, inputs=(fa, fb), backend="triton").matmul(a, b, c)
        assert_same(got, expected.astype(np.float32), f"{name} {fa.name} x {fb.name} (Triton)")


def test_promotion_composes_the_unit_with_fp32_adds():
    rng = np.random.default_rng(3)
    a = lowprec.quantize(rng.standard_normal((4, 96)), "fp8_e4m3fn")
    b = lowprec.quantize(rng.standard_normal((96, 5)), "fp8_e5m2")
    c = lowprec.quantize(rng.standard_normal((4, 5)), "fp32")
    spec = lowprec.mac_units.unit("h100_fp8")
    total = c.astype(np.float64)
    for k0 in range(0, 96, 32):
        part = fused_matmul_reference(a[:, k0:k0 + 32], b[k0:k0 + 32], np.zeros((4, 5)), spec, "fp8_e4m3fn", "fp8_e5m2")
        total = lowprec.quantize(total + part, "fp32")
    mac = lowprec.MAC(unit="h100_fp8", inputs=("fp8_e4m3fn", "fp8_e5m2"), chunk=32, chunk_acc="fp32")
    assert_same(mac.matmul(a, b, c), total)
    if TRITON:
        assert_same(lowprec.MAC(unit="h100_fp8", inputs=("fp8_e4m3fn", "fp8_e5m2"), chunk=32, chunk_acc="fp32",
                                backend="triton").matmul(a, b, c), total)
    assert mac.counts["add"]["fp32"] == 4 * 5 * 3  # the promotions; the unit adds in e8m13
    assert mac.counts["round"]["fp32"] == 4 * 5 * 3 + 4 * 5  # and the result, rounded to out


def test_unit_macs_refuse_what_they_cannot_run():
    with pytest.raises(ValueError, match="unknown matrix unit 'b300'; known:"):
        lowprec.MAC(unit="b300")
    with pytest.raises(ValueError, match="fixes the products, the order, the accumulator and the rounding"):
        lowprec.MAC(unit="h100_fp16", acc="fp16")
    with pytest.raises(ValueError, match="unit h100_fp16 takes operands in fp16; got 'bf16'"):
        lowprec.MAC(unit="h100_fp16", inputs="bf16")
    with pytest.raises(ValueError, match="chunk must be a multiple of the unit's group"):
        lowprec.MAC(unit="h100_fp8", chunk=100)
    mac = lowprec.MAC(unit="h100_fp16")
    with pytest.raises(ValueError, match="a holds values that are not 'fp16' values .* quantize them first"):
        mac.matmul(np.full((2, 3), 0.1), np.ones((3, 2)))
    with pytest.raises(ValueError, match="c holds values that are not 'fp32' values"):
        mac.matmul(np.ones((2, 3)), np.ones((3, 2)), np.full((2, 2), 0.1))
    with pytest.raises(ValueError, match="c of shape"):
        mac.matmul(np.ones((2, 3)), np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="c= .* applies to sequential float accumulators and matrix units; .*pairwise"):
        lowprec.MAC(acc="fp16", order="pairwise").matmul(np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"c holds values that are not fp16 values \(e.g. \[0.1"):
        lowprec.MAC(acc="fp16").matmul(np.ones((2, 3)), np.ones((3, 2)), np.full((2, 2), 0.1))


def test_the_long_k_study(tmp_path):
    from lowprec.sims import matrix_units

    assert matrix_units.main(["--out", str(tmp_path), "--min-log2", "7", "--max-log2", "8", "--quiet"]) == 0
    rows = (tmp_path / "matrix_units.csv").read_text().splitlines()
    assert rows[0].startswith("distribution,k,configuration,median_rel_error")
    assert any("promoted to fp32 every 128" in r for r in rows) and (tmp_path / "matrix_units.png").stat().st_size > 0
    model = [r for r in rows[1:] if r.endswith(",model")]
    assert len(model) == 2 * 2 * 4  # distributions x K x configurations
    if (ORACLES / "long-k").is_dir():
        _, matches = matrix_units.recorded(ORACLES / "long-k")
        assert matches == {"chain": True, 32: False, 128: True, 512: False}
        assert "every 128 products reproduces the recorded cuBLAS outputs" in matrix_units.summary(matches)


def test_the_long_k_study_refuses_bad_settings(tmp_path, capsys):
    from lowprec.sims import matrix_units

    with pytest.raises(SystemExit):
        matrix_units.main(["--out", str(tmp_path), "--max-log2", "17"])
    assert "--max-log2 <= 16" in capsys.readouterr().err


def test_layers_in_mac_mode_run_on_a_unit_forward_and_backward():
    torch = pytest.importorskip("torch")
    from lowprec import nn as lnn

    torch.manual_seed(0)
    spec = {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2",
            "mac": {"mode": "mac", "unit": "h100_fp8", "chunk": 128, "chunk_acc": "fp32"}}
    layer = lnn.QLinear(300, 7, bias=False, **spec)
    x = torch.randn(5, 300, requires_grad=True)
    y = layer(x)
    g = lowprec.quantize(torch.randn(5, 7), "fp8_e5m2")
    y.backward(g)
    mac = lowprec.mac_units.get("h100_fp8", inputs="fp8_e4m3fn", chunk=128, chunk_acc="fp32")
    xq = lowprec.quantize(x.detach(), "fp8_e4m3fn")
    wq = lowprec.quantize(layer.weight.detach(), "fp8_e4m3fn")
    assert torch.equal(y.detach(), mac.matmul(xq, wq.t().contiguous()))
    assert torch.equal(x.grad, mac.with_inputs("fp8_e5m2", "fp8_e4m3fn").matmul(g, wq))  # dX = dY W on the unit
    dw = mac.with_inputs("fp8_e4m3fn", "fp8_e5m2").matmul(xq.t().contiguous(), g).t()  # dW^T = X^T dY on the unit
    assert torch.equal(layer.weight.grad, dw)
    assert layer.q_mac.counts["calls"] == 3  # forward and both backward GEMMs, recorded in one place
    with pytest.raises(ValueError, match="mac unit 'h100_fp8': the layer needs grad formats among the unit's operands"):
        lnn.QLinear(3, 2, weight="fp8_e4m3fn", input="fp8_e4m3fn", mac={"mode": "mac", "unit": "h100_fp8"})
    with pytest.raises(ValueError, match="unit h100_fp16 takes operands in fp16; got 'bf16'"):
        lnn.QLinear(3, 2, weight="fp16", input="fp16", grad="bf16", mac={"mode": "mac", "unit": "h100_fp16"})
    with pytest.raises(ValueError, match="unit h100_fp16 takes operands in fp16; got 'bf16'"):
        lnn.QLinear(3, 2, weight="fp16", input="bf16", grad="fp16", mac={"mode": "mac", "unit": "h100_fp16"})


def test_units_serve_sum_dot_conv_and_can_round_their_operands():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 70))
    unit = lowprec.mac_units.get("h100_bf16", quantize_inputs=True)
    xq = lowprec.quantize(x, "bf16")
    expected = fused_matmul_reference(xq, np.ones((70, 1)), np.zeros((3, 1)), lowprec.mac_units.unit("h100_bf16"))
    assert_same(unit.sum(x), expected[:, 0])  # each term a product x * 1; x rounded to bf16 first
    assert_same(unit.dot(x[0], np.ones(70)), expected[0, 0])
    strict = lowprec.mac_units.get("h100_bf16")
    with pytest.raises(ValueError, match="quantize them first"):
        strict.sum(x)
    img = lowprec.quantize(rng.standard_normal((2, 3, 5, 5)), "bf16")
    w = lowprec.quantize(rng.standard_normal((4, 3, 3, 3)), "bf16")
    cols = np.lib.stride_tricks.sliding_window_view(img, (3, 3), axis=(2, 3))  # (2, 3, 3, 3, 3, 3)
    patches = cols.transpose(0, 2, 3, 1, 4, 5).reshape(-1, 27)
    ref = fused_matmul_reference(patches, w.reshape(4, 27).T, np.zeros((patches.shape[0], 4)),
                                 lowprec.mac_units.unit("h100_bf16"))
    assert_same(strict.conv2d(img, w), ref.reshape(2, 3, 3, 4).transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="quantize_inputs=True is for matrix units"):
        lowprec.MAC(quantize_inputs=True)
