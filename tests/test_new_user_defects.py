"""Defects a new user hit (issue 13): each test failed before its fix."""

import tracemalloc
import warnings

import numpy as np
import pytest

import lowprec
from lowprec import formats
from lowprec.sims import swamping

from helpers import assert_same

RNG = np.random.default_rng(13)


# -- 1. long sums in narrow accumulators ---------------------------------------------------------------
@pytest.mark.parametrize("acc, expected", [("fp16", 2048.0), ("bf16", 256.0), ("fp8_e5m2", 8.0), ("fp8_e4m3fn", 16.0)])
def test_long_sum_of_ones_swamps_instead_of_crashing(acc, expected):
    # the growth bound (1 + 2**-m) ** (K + 2) overflowed a Python float
    assert lowprec.MAC(acc=acc).sum(np.ones(2**20, np.float32)) == expected
    assert lowprec.MAC(acc=acc, chunk=16).sum(np.ones(2**20, np.float32)) > expected


def test_long_matmul_in_fp16():
    a = lowprec.quantize(RNG.uniform(0, 1, (2, 5000)).astype(np.float32), "fp8_e4m3fn")
    c = lowprec.MAC(acc="fp16").matmul(a, np.ones((5000, 3), np.float32))
    assert c.shape == (2, 3) and np.isfinite(c).all() and (c > 1000).all()


def test_swamping_runs_every_order_at_full_length_in_narrow_accumulators():
    accs = ("fp16", "bf16", "fp8_e5m2", "fp8_e4m3fn")
    rows = swamping.run(22, 22, accumulators=accs, progress=False)
    assert len(rows) == 3 * len(accs) * len(swamping.configurations())
    ones = {(r["acc"], r["order"]): r["sum"] for r in rows if r["distribution"] == "ones"}
    assert ones["fp16", "sequential"] == 2048.0 and ones["bf16", "sequential"] == 256.0
    assert ones["fp8_e5m2", "sequential"] == 8.0 and ones["fp8_e4m3fn", "sequential"] == 16.0
    # pairwise sums of ones are exact while they fit: 2**22 overflows fp16 (max 65504), not bf16
    assert ones["bf16", "pairwise"] == 2.0**22 and ones["fp16", "pairwise"] == np.inf
    assert np.isnan(ones["fp8_e4m3fn", "pairwise"])  # e4m3fn overflows to NaN


# -- 2. bounded memory ----------------------------------------------------------------------------------
def _peak(fn):
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _nbytes(r):
    return sum(_nbytes(v) for v in r) if isinstance(r, tuple) else np.asarray(r).nbytes


MEMORY_CASES = ["fp8_e5m2", "bf16", "q3.12", "mxfp8_e4m3", "mxfp4_e2m1", "nvfp4",
                lowprec.LUTFormat(np.linspace(-2, 2, 16)), lowprec.LogFormat(4),
                lowprec.IntAffineFormat(8, 0.05, 0), lowprec.IntAffineFormat(8, np.full(64, 0.05), 0, axis=1),
                lowprec.BinaryFormat(0.8), lowprec.TernaryFormat(0.8, 0.8, 0.5)]


@pytest.mark.parametrize("fmt", MEMORY_CASES, ids=str)
def test_encode_and_decode_memory_is_the_output_plus_bounded_scratch(fmt):
    x = RNG.standard_normal((2**16, 64)).astype(np.float32)  # 16 MiB in: scratch would show
    scratch = 8 * 2**20  # bounded chunks: far below a copy of x
    codes, top = _peak(lambda: lowprec.encode(x, fmt))
    assert top <= _nbytes(codes) + scratch, (top, _nbytes(codes))
    values, top = _peak(lambda: lowprec.decode(codes, fmt))
    assert top <= _nbytes(values) + scratch, (top, _nbytes(values))


@pytest.mark.parametrize("kw, copies", [(dict(acc="fp16"), 0), (dict(acc="fp32"), 0),
                                        (dict(acc="fp16", chunk=64, chunk_acc="fp32"), 0),
                                        (dict(acc="bf16", rounding="up"), 2)], ids=str)
def test_mac_sum_memory_is_bounded(kw, copies):
    x = RNG.standard_normal(2**22).astype(np.float32)  # 16 MiB
    mac = lowprec.MAC(**kw)
    s, top = _peak(lambda: mac.sum(x))
    # was ~6x the input (a ones vector, float64 copies); the double path (bf16's range reaches float's
    # top) still copies the operand to float64
    assert top <= copies * x.nbytes + 4 * 2**20, top
    assert s == lowprec.MAC(**kw).matmul(x[None, :], np.ones((x.size, 1), np.float32))[0, 0]


@pytest.mark.parametrize("fmt", ["fp8_e4m3fn", "bf16", "q1.6", "mxfp6_e2m3", "nvfp4",
                                 lowprec.BinaryFormat(np.linspace(0.5, 1, 5), axis=1),
                                 lowprec.IntAffineFormat(4, np.linspace(0.1, 0.2, 5), 1, axis=1),
                                 lowprec.LUTFormat(np.linspace(-2, 2, 16))], ids=str)
def test_chunked_encode_matches_one_pass_stochastic_draws(fmt):
    x = RNG.standard_normal((40000, 5)).astype(np.float32)[::-1]  # several chunks, not contiguous
    axis = {"axis": 0} if isinstance(fmt, str) and fmt.startswith(("mx", "nv")) else {}
    codes = lowprec.encode(x, fmt, "stochastic", seed=3, **axis)
    values = lowprec.quantize(x, fmt, "stochastic", seed=3, **axis)
    decoded = lowprec.decode(codes, fmt, **({"axis": 0} if axis else {}))
    assert_same(np.asarray(decoded, np.float64).astype(np.float32), values)


# -- 3. empty sums ---------------------------------------------------------------------------------------
def test_empty_sum_is_zero_and_minus_zero_rounding_down():
    empty = np.array([], np.float32)
    z = lowprec.MAC(acc="fp16").sum(empty)
    assert z == 0 and not np.signbit(z)
    assert np.signbit(lowprec.MAC(acc="fp16", rounding="down").sum(empty))
    assert lowprec.MAC(acc="fp16").sum(np.zeros((3, 0), np.float32)).shape == (3,)


# -- 6, 13. NVFP4 ----------------------------------------------------------------------------------------
def test_nvfp4_decode_needs_the_tensor_scale_and_round_trips():
    w = RNG.standard_normal((64, 64)).astype(np.float32) * 100
    codes, scales = lowprec.encode(w, "nvfp4")  # unpacking drops tensor_scale
    with pytest.raises(TypeError, match="tensor_scale"):
        lowprec.decode(codes, "nvfp4", scales)
    enc = lowprec.encode(w, "nvfp4")
    assert_same(lowprec.decode(enc, "nvfp4"), lowprec.quantize(w, "nvfp4"))
    assert_same(lowprec.decode(codes, "nvfp4", scales, tensor_scale=enc.tensor_scale, dtype=np.float32),
                lowprec.quantize(w, "nvfp4"))


def test_nvfp4_one_level_scale_is_clamped_not_nan_or_zero():
    one_level = formats.get("nvfp4").with_(tensor_scale=False)
    x = np.full(16, 3000.0, np.float32)
    assert (lowprec.quantize(x, one_level) == 6.0 * 448).all()  # torchao's clamp to the largest scale
    assert_same(lowprec.decode(lowprec.encode(x, one_level), one_level), lowprec.quantize(x, one_level))
    tiny = np.full(16, 1e-3, np.float32)  # amax / 6 rounds to 0 in e4m3: the smallest scale 2**-9 instead
    assert lowprec.decode(lowprec.encode(tiny, one_level).scales, "fp8_e4m3fn").min() == 2.0**-9
    assert (lowprec.quantize(tiny, one_level) == np.float32(0.5 * 2.0**-9)).all()  # a zero scale gave 0
    assert_same(lowprec.decode(lowprec.encode(tiny, one_level), one_level), lowprec.quantize(tiny, one_level))


# -- 12. MX element codes do not depend on the input dtype -------------------------------------------------
def test_mx_codes_when_element_times_scale_overflows_float32():
    big = np.full(32, np.finfo(np.float32).max, np.float32)
    rceil = formats.get("mxfp8_e4m3").with_(rule="rceil")
    codes, scales = lowprec.encode(big, rceil)
    assert scales[0] == 247 and (codes == 0x78).all()  # 256 * 2**120: both representable
    assert (codes == lowprec.encode(big.astype(np.float64), rceil).codes).all()
    ceil = formats.get("mxfp8_e5m2").with_(rule="ceil")
    codes, _ = lowprec.encode(big, ceil)
    assert (codes == lowprec.encode(big.astype(np.float64), ceil).codes).all() and (codes != 0x7C).all()


# -- 15, 16. the top of the range ------------------------------------------------------------------------
def test_wide_format_saturates_to_its_own_largest_float32_value():
    e8m7 = lowprec.FloatFormat(8, 7, specials="none")
    x = np.array([np.inf, np.finfo(np.float32).max, -np.inf], np.float32)
    top = np.float32((2 - 2.0**-7) * 2.0**127)
    assert_same(lowprec.quantize(x, e8m7), np.array([top, top, -top], np.float32))
    from lowprec.reference import quantize_reference
    assert_same(quantize_reference(x, e8m7), lowprec.quantize(x, e8m7))
    assert (lowprec.decode(lowprec.encode(x, e8m7), e8m7) == lowprec.quantize(x, e8m7)).all()


def test_decode_of_fp64_codes_at_the_top_warns_nothing():
    codes = np.array([0x7FEFFFFFFFFFFFFF, 0x7FF0000000000000, 0xFFF8000000000000], np.uint64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = lowprec.decode(codes, "fp64")
    assert v[0] == np.finfo(np.float64).max and v[1] == np.inf and np.isnan(v[2])


# -- 8. check_quantizer tries NaN payloads ---------------------------------------------------------------
@pytest.mark.parametrize("pattern, into", [(0x7F800001, np.inf), (0x7FFFFFFF, -0.0), (0xFFBFFFFF, 1.0)])
def test_check_quantizer_catches_nan_payload_bugs(pattern, into):
    from lowprec import testing

    def buggy_bf16(x):
        q = lowprec.quantize(x, "bf16")
        q[x.view(np.uint32) == pattern] = into
        return q

    report = testing.check_quantizer(buggy_bf16, "bf16", "nearest_even")
    assert not report and f"input 0x{pattern:08x}" in str(report), str(report)


# -- torch: layers, costs, warnings ----------------------------------------------------------------------
torch = pytest.importorskip("torch")
from lowprec import cost, ste  # noqa: E402
from lowprec import nn as lnn  # noqa: E402


def _cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(4, 64, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(64 * 6 * 6, 10))


def test_swapped_layers_block_mx_along_the_reduction_axis():
    net = _cnn()
    x = torch.randn(2, 4, 8, 8)
    ref = [net[0].weight.detach().clone(), net[3].weight.detach().clone()]
    lnn.swap(net, {"Conv2d": {"weight": "mxfp4_e2m1", "input": "mxfp8_e4m3"},
                   "Linear": {"weight": "mxfp4_e2m1", "input": "mxfp8_e4m3"}})
    conv, lin = net[0], net[3]
    assert conv._w(conv.weight).detach().numpy().tobytes() == lowprec.quantize(ref[0].numpy(), "mxfp4_e2m1", axis=1).tobytes()
    assert conv._in(x).numpy().tobytes() == lowprec.quantize(x.numpy(), "mxfp8_e4m3", axis=1).tobytes()
    assert lin._w(lin.weight).detach().numpy().tobytes() == lowprec.quantize(ref[1].numpy(), "mxfp4_e2m1", axis=1).tobytes()
    # the old behaviour (blocks of 3 along the kernel width) differs: the test can fail
    assert conv._w(conv.weight).detach().numpy().tobytes() != lowprec.quantize(ref[0].numpy(), "mxfp4_e2m1", axis=-1).tobytes()
    lnn.unswap(net)
    lnn.swap(net, {"Conv2d": {"weight": "mxfp4_e2m1", "axes": {"weight": -1}}})
    assert net[0]._w(net[0].weight).detach().numpy().tobytes() == lowprec.quantize(ref[0].numpy(), "mxfp4_e2m1", axis=-1).tobytes()
    y = net(x)
    y.sum().backward()
    assert net[0].weight.grad is not None


def test_swapped_layer_prices_its_operands_at_their_widths():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 16))
    mac = {"mode": "mac", "acc": "fp16"}
    lnn.swap(net, {"Linear": {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "mac": mac}})
    net(torch.randn(4, 256))
    counts = net[0].q_mac.counts
    assert counts["bits_read"] == 8 * (4 * 256 + 256 * 16)  # fp8 operands, not float32
    fp8 = cost.report(counts)
    wide = cost.report(counts, operands=("fp32", "fp32"))
    assert fp8.memory_pj == wide.memory_pj and fp8.compute_pj < wide.compute_pj
    manual = lowprec.MAC(acc="fp16")  # without inputs=: float32 traffic
    manual.matmul(np.zeros((4, 256), np.float32), np.zeros((256, 16), np.float32))
    assert manual.counts["bits_read"] == 4 * counts["bits_read"]


def test_qat_warns_once_when_a_weight_rounds_to_all_zeros_or_inputs_overflow():
    net = _cnn()
    lnn.swap(net, {"Conv2d": {"weight": "fp4_e2m1fn"}, "Linear": {"input": "fp8_e4m3fn"}})
    with pytest.warns(RuntimeWarning, match=r"layer '0': weight in fp4_e2m1fn: every value rounded to 0"):
        net(torch.randn(2, 4, 8, 8))
    net2 = _cnn()
    lnn.swap(net2, {"Linear": {"input": "fp8_e4m3fn"}})
    with pytest.warns(RuntimeWarning, match=r"became NaN or Inf"):
        net2(torch.randn(2, 4, 8, 8) * 1e4)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net2(torch.randn(2, 4, 8, 8) * 1e4)  # once per layer and operand
        quiet = _cnn()
        lnn.swap(quiet, {"Conv2d": {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn"}})
        quiet(torch.randn(2, 4, 8, 8))


@pytest.mark.parametrize("fmt, lo, hi", [
    (lowprec.IntAffineFormat(4, 0.5, 2), (-8 - 2) * 0.5, (7 - 2) * 0.5),
    (lowprec.BinaryFormat(0.75), -0.75, 0.75),
    (lowprec.TernaryFormat(0.5, 0.25, 0.1), -0.25, 0.5),
])
def test_clipped_estimator_for_scaled_formats(fmt, lo, hi):
    x = torch.tensor([lo - 0.01, lo, 0.0, hi, hi + 0.01], dtype=torch.float32, requires_grad=True)
    ste.quantize(x, fmt, estimator="clipped").sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_clipped_estimator_per_channel_affine():
    fmt = lowprec.IntAffineFormat(4, np.array([0.5, 1.0]), 0, axis=0)
    x = torch.tensor([[3.6, 3.4], [7.6, 7.4]], requires_grad=True)  # channel 0 max 3.5, channel 1 max 7
    ste.quantize(x, fmt, estimator="clipped").sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_half_precision_models_swap_and_run():
    torch.manual_seed(0)
    x = torch.randn(4, 64, dtype=torch.float16)
    q = lowprec.quantize(x, "fp8_e4m3fn")
    assert q.dtype == torch.float16
    assert (q.float() == lowprec.quantize(x.float(), "fp8_e4m3fn")).all()
    assert lowprec.quantize(x.bfloat16(), "mxfp8_e4m3").dtype == torch.bfloat16
    with pytest.raises(TypeError, match="bfloat16 cannot hold"):
        lowprec.quantize(x.bfloat16(), "fp16")
    for mac in ({"mode": "fake"}, {"mode": "mac", "acc": "fp16"}):
        net = torch.nn.Sequential(torch.nn.Linear(64, 8)).half()
        lnn.swap(net, {"Linear": {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "mac": mac}})
        y = net(x)
        y.float().sum().backward()
        assert y.dtype == torch.float16 and net[0].weight.grad.dtype == torch.float16


def test_swap_twice_says_the_model_is_already_swapped():
    net = _cnn()
    lnn.swap(net, {"Linear": {"weight": "fp8_e4m3fn"}})
    with pytest.raises(ValueError, match="already swapped"):
        lnn.swap(net, {"Linear": {"weight": "fp8_e4m3fn"}}, strict=True)


# -- 4, 7. the accuracy study's arguments and --resume ---------------------------------------------------
def test_accuracy_refuses_bad_epochs_before_any_work(tmp_path):
    from lowprec.sims import accuracy

    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="epochs must be an int >= 1"):
            accuracy.run_grid(["fp32"], tmp_path, epochs=bad)
    assert not (tmp_path / "cells").exists()


def test_resume_recomputes_cells_written_with_other_settings(tmp_path):
    from lowprec.sims import accuracy

    first = accuracy.run_grid(["fp32"], tmp_path, epochs=1, workers=1, progress=False)[0]
    again = accuracy.run_grid(["fp32"], tmp_path, epochs=1, resume=True, workers=1, progress=False)[0]
    assert again == first  # same settings: reused
    longer = accuracy.run_grid(["fp32"], tmp_path, epochs=2, resume=True, workers=1, progress=False)[0]
    assert longer["epochs"] == 2 and len(longer["losses"]) == 2
    reseeded = accuracy.run_grid(["fp32"], tmp_path, epochs=2, seed=1, resume=True, workers=1, progress=False)[0]
    assert reseeded["seed"] == 1


def test_corrupt_yaml_spec_names_the_file(tmp_path):
    pytest.importorskip("yaml")
    bad = tmp_path / "spec.yaml"
    bad.write_text("Linear: {weight: [fp8\n")
    with pytest.raises(ValueError, match=r"spec\.yaml: not valid YAML"):
        lnn.swap(_cnn(), bad)


# -- swamping: friction ---------------------------------------------------------------------------------
def test_swamping_takes_custom_and_fixed_accumulators_and_plots_them(tmp_path):
    pytest.importorskip("matplotlib")
    rc = swamping.main(["--out", str(tmp_path), "--max-log2", "10", "--dist", "ones", "--chunks", "16", "--quiet",
                        "--acc", "fp16", "e5m2", "FloatFormat(4, 3, specials='fn')", "FixedFormat(16, 8)"])
    assert rc == 0
    import csv

    rows = list(csv.DictReader(open(tmp_path / "swamping.csv")))
    assert {r["acc"] for r in rows} == {"fp16", "e5m2", "e4m3fn", "q16.8"}
    assert {r["order"] for r in rows if r["acc"] == "q16.8"} == {"sequential"}  # fixed point: sequential only
    assert (tmp_path / "swamping.png").stat().st_size > 10000


def test_swamping_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    assert swamping.main(["--out", str(tmp_path / "a"), "--acc", "fp99", "--quiet"]) == 2
    assert not (tmp_path / "a").exists()
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # a folder cannot be made under a file, not even by root
    assert swamping.main(["--out", str(blocked / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("lowprec swamping: error:") == 2 and "cannot write to --out" in err


def test_swamping_without_matplotlib_writes_the_csv(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert swamping.main(["--out", str(tmp_path), "--max-log2", "8", "--dist", "ones", "--acc", "fp16"]) == 0
    assert (tmp_path / "swamping.csv").exists() and not (tmp_path / "swamping.png").exists()
    assert "no plot" in capsys.readouterr().out


# -- chunked accumulation into a float32 chunk accumulator: the float path, and out = chunk_acc ----------------
@pytest.mark.parametrize("rounding", ["nearest_even", "toward_zero", "up", "odd"])
def test_fp32_chunk_accumulator_matches_the_reference(rounding):
    from lowprec.mac_reference import mac_dot_reference

    a = lowprec.quantize(RNG.uniform(0, 1, (3, 700)).astype(np.float32), "fp8_e4m3fn")
    b = lowprec.quantize(RNG.standard_normal((700, 9)).astype(np.float32), "fp8_e4m3fn")
    mac = lowprec.MAC(acc="fp16", chunk=16, chunk_acc="fp32", rounding=rounding)
    got = mac.matmul(a, b)
    for i in range(3):
        for j in range(9):
            ref = mac_dot_reference(a[i].astype(np.float64), b[:, j].astype(np.float64), acc="fp16", chunk=16,
                                    chunk_acc="fp32", rounding=rounding)
            assert got[i, j] == np.float32(ref), (rounding, i, j)


def test_chunked_sum_is_returned_in_the_chunk_accumulator():
    x = lowprec.quantize(RNG.uniform(0, 1, 2**16).astype(np.float32), "fp8_e4m3fn")
    mac = lowprec.MAC(acc="fp16", chunk=64, chunk_acc="fp32")
    assert mac.out == formats.get("fp32")
    s = float(mac.sum(x))
    assert s != float(lowprec.quantize(np.float32(s), "fp16"))  # not rounded back to fp16
    assert lowprec.MAC(acc="fp16", chunk=64, chunk_acc="fp32", out="fp16").sum(x) == lowprec.quantize(np.float32(s), "fp16")
