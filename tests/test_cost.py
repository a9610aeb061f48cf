"""The cost model: every table point exactly, the scaling laws, monotonicity, tables and bad input."""

import copy
import math

import numpy as np
import pytest

import lowprec
from lowprec import cost
from lowprec.cost.table import COLUMNS, default_table, load_table

ENERGY = {("add", "int8"): 0.03, ("add", "int32"): 0.1, ("mul", "int8"): 0.2, ("mul", "int32"): 3.1,
          ("add", "fp16"): 0.4, ("add", "fp32"): 0.9, ("mul", "fp16"): 1.1, ("mul", "fp32"): 3.7}
AREA = {("add", "int8"): 36, ("add", "int16"): 67, ("add", "int32"): 137, ("add", "fp16"): 1360,
        ("add", "fp32"): 4184, ("mul", "int8"): 282, ("mul", "int32"): 3495, ("mul", "fp16"): 1640,
        ("mul", "fp32"): 7700}


@pytest.mark.parametrize("key", sorted(ENERGY))
def test_every_energy_point(key):
    assert cost.energy(*key) == ENERGY[key]


@pytest.mark.parametrize("key", sorted(AREA))
def test_every_area_point(key):
    assert cost.area(*key) == AREA[key]


def test_memory_points_and_every_row_cites_a_source():
    for size, pj in ((8192, 10), (32768, 20), (1 << 20, 100)):
        assert cost.memory_energy(64, "sram", size_bytes=size) == pj
    assert cost.memory_energy(64, "dram", case="min") == 1300
    assert cost.memory_energy(64, "dram", case="max") == 2600
    assert cost.memory_energy(64, "dram") == 1950
    assert all(len(r.source) > 20 for r in default_table().rows)


def test_integer_multiplier_ratio_8_to_32_bits_is_the_tables():
    assert cost.energy("mul", "int32") / cost.energy("mul", "int8") == pytest.approx(15.5, rel=1e-15)


def test_adder_is_linear_in_bits():
    e = [cost.energy("add", lowprec.FixedFormat(b, 0)) for b in range(8, 33)]
    steps = [b - a for a, b in zip(e, e[1:])]
    assert max(steps) == pytest.approx(min(steps), rel=1e-9)  # one line through 8 and 32 bits
    assert cost.energy("add", lowprec.FixedFormat(20, 0)) == pytest.approx(0.03 + 12 * 0.07 / 24)
    a = [cost.area("add", lowprec.FixedFormat(b, 0)) for b in (8, 12, 16, 24, 32)]
    assert a[1] == pytest.approx((36 + 67) / 2) and a[3] == pytest.approx((67 + 137) / 2)  # piecewise


def test_multiplier_is_quadratic_in_bits():
    k8, k32 = 0.2 / 64, 3.1 / 1024
    k = lambda n: k8 + (k32 - k8) * (n - 8) / 24  # noqa: E731  (the per-cell energy, linear in sqrt(a*b))
    assert cost.energy("mul", lowprec.FixedFormat(16, 0)) == pytest.approx(k(16) * 256)
    assert cost.energy("mul", "int8", "int32") == pytest.approx(k(16) * 256)  # a x b cells
    assert cost.energy("mul", "int4") == pytest.approx(k8 * 16)  # constant k below the table
    assert cost.energy("mul", lowprec.FixedFormat(64, 0)) == pytest.approx(k32 * 4096)


def test_memory_scales_with_log_size_and_sqrt_below():
    assert cost.memory_energy(64, "sram", size_bytes=2048) == pytest.approx(10 * math.sqrt(2048 / 8192))
    assert cost.memory_energy(64, "sram", size_bytes=16384) == pytest.approx(15)  # halfway in log2
    assert cost.memory_energy(128, "sram", size_bytes=8192) == 20  # per bit


@pytest.mark.parametrize("metric", [cost.energy, cost.area])
@pytest.mark.parametrize("op", ["add", "mul"])
def test_floats_are_monotonic_in_exponent_and_mantissa_bits(metric, op):
    for e in range(2, 12):
        values = [metric(op, lowprec.FloatFormat(e, m, specials="fn" if m == 0 else "ieee")) for m in range(0, 53)]
        assert all(b > a for a, b in zip(values, values[1:])), (e, values)
    for m in (1, 3, 10, 23):
        values = [metric(op, lowprec.FloatFormat(e, m)) for e in range(2, 12)]
        assert all(b > a for a, b in zip(values, values[1:])), (m, values)


def test_integers_are_monotonic_in_bits():
    for metric in (cost.energy, cost.area):
        for op in ("add", "mul"):
            values = [metric(op, lowprec.FixedFormat(b, 0)) for b in range(1, 65)]
            assert all(v > 0 for v in values) and all(b > a for a, b in zip(values, values[1:]))


def test_composite_and_other_families():
    assert cost.energy("mac", "fp8_e4m3fn", "fp16") == cost.energy("mul", "fp8_e4m3fn") + 0.4
    assert cost.energy("fma", "fp32") == 3.7 + 0.9
    assert cost.energy("mul", lowprec.LogFormat(5)) == cost.energy("add", lowprec.FixedFormat(4, 0))
    assert cost.energy("mul", "mxfp8_e4m3") == cost.energy("mul", "fp8_e4m3fn")  # elements
    assert cost.energy("mul", lowprec.IntAffineFormat(8, 0.1)) == 0.2
    assert cost.energy("mul", lowprec.BinaryFormat(1.0)) < cost.energy("mul", lowprec.TernaryFormat(1, 1, 0.1))
    lut = lowprec.LUTFormat(range(16))
    assert cost.energy("mul", lut) == cost.memory_energy(16, "sram", size_bytes=16 * 16 * 2)
    assert cost.energy("register", "int16") == pytest.approx(cost.energy("mac", "int16"))  # Eyeriss: 1x a MAC


def test_mixed_family_multiplies_follow_the_stated_rules():
    """Each pair of MIXED_RULES written out from the integer laws and the table."""
    int_mul = lambda a, b: cost.model.int_cost("energy", "mul", a, b, cost.default_table())  # noqa: E731
    int_add = lambda b: cost.model.int_cost("energy", "add", b, None, cost.default_table())  # noqa: E731
    # weight-only quantization: fp16 activations x int4 weights, an 11 x 4 multiplier and a 5-bit exponent add
    assert cost.energy("mul", "fp16", "int4") == int_mul(11, 4) + int_add(5)
    assert cost.energy("mul", "int4", "fp16") == cost.energy("mul", "fp16", "int4")  # either order
    assert cost.energy("mul", "int8", lowprec.LogFormat(4)) == int_add(8)  # a shift of the int8
    assert cost.energy("mul", "bf16", lowprec.LogFormat(4)) == int_add(8)  # an add to bf16's 8-bit exponent
    lut = lowprec.LUTFormat(range(16))
    assert cost.energy("mul", lut, "int8") == cost.memory_energy(16, "sram", size_bytes=16 * 256 * 2)
    ternary = lowprec.fit_twn(np.linspace(-1, 1, 16))
    assert cost.energy("mul", ternary, "int8") == int_add(8)  # a conditional negation
    assert cost.energy("mul", ternary, "fp16") == cost.energy("mul", ternary)  # sign flip, zero gate
    assert cost.area("mul", "fp8_e4m3fn", "int8") == cost.model.int_cost("area", "mul", 4, 8, cost.default_table()) \
        + cost.model.int_cost("area", "add", 4, None, cost.default_table())
    # an fp16 x int8 multiplier costs less than fp16 x fp16 and more than int8 x int8
    assert cost.energy("mul", "int8") < cost.energy("mul", "fp16", "int8") < cost.energy("mul", "fp16")


def test_technology_scaling_is_classical():
    assert cost.scale_to_node(1.0, "area", 22.5) == 0.25
    assert cost.scale_to_node(1.0, "energy", 22.5) == 0.125


@pytest.mark.parametrize("call, match", [
    (lambda: cost.energy("div", "fp16"), "op must be one of"),
    (lambda: cost.energy("add", lowprec.LogFormat(4)), "cannot price add"),
    (lambda: cost.energy("mul", lowprec.LUTFormat(range(16)), "fp32"), "product table indexed by a 32-bit operand"),
    (lambda: cost.area("mul", lowprec.LUTFormat(range(4))), "area"),
    (lambda: cost.area("register", "int8"), "energy only"),
    (lambda: cost.energy("add", object()), "cannot price a object"),
    (lambda: cost.memory_energy(-1), "bits"),
    (lambda: cost.memory_energy(8, "flash"), "memory"),
    (lambda: cost.memory_energy(8, "dram", case="typ"), "case"),
    (lambda: cost.scale_to_node(1.0, "power", 7), "metric"),
])
def test_bad_calls(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


GOOD = "energy,0.5,pJ,add,int,8,,,,a source\n"


@pytest.mark.parametrize("text, match", [
    ("metric,value,unit,op,kind,bits,format,size_bytes,source\n" + GOOD, "missing column"),
    (",".join(COLUMNS) + "\nenergy,nan,pJ,add,int,8,,,,src\n", "line 2: value must be finite"),
    (",".join(COLUMNS) + "\nenergy,-1,pJ,add,int,8,,,,src\n", "line 2: value must be finite and > 0"),
    (",".join(COLUMNS) + "\nenergy,1,nJ,add,int,8,,,,src\n", "line 2: unit 'nJ'"),
    (",".join(COLUMNS) + "\nenergy,1,pJ,add,int,0,,,,src\n", "line 2: bits must be > 0"),
    (",".join(COLUMNS) + "\nenergy,1,pJ,add,int,8,,,,\n", "line 2: every row cites a source"),
    (",".join(COLUMNS) + "\nenergy,1,pJ,add,quantum,8,,,,src\n", "line 2: kind"),
    (",".join(COLUMNS) + "\nenergy,1,pJ,read,sram,64,,,,src\n", "size_bytes"),
])
def test_bad_tables(tmp_path, text, match):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_table(path)


def test_a_users_table_prices_by_its_own_points(tmp_path):
    path = tmp_path / "node7.csv"
    path.write_text(",".join(COLUMNS) + "\n" + "energy,0.01,pJ,add,int,8,,,,my measurement\n"
                    "energy,0.05,pJ,mul,int,8,,,,my measurement\n")
    t = load_table(path)
    assert cost.energy("add", "int8", table=t) == 0.01
    assert cost.energy("add", "int16", table=t) == 0.02  # one point: proportional
    with pytest.raises(ValueError, match="no energy rows for op='add', kind='float'"):
        cost.energy("add", "fp16", table=t)


# -- reports -------------------------------------------------------------------------------------------
def test_report_of_a_mac_is_its_counts_times_the_unit_costs():

    a = np.array([[1.0, 0.0, 2.0, 0.5]], np.float32)  # one zero operand
    b = np.array([[1.0], [3.0], [0.0], [2.0]], np.float32)  # and one more zero product
    mac = lowprec.MAC(mul="fp8_e4m3fn", acc="fp16", inputs="fp8_e4m3fn")
    mac.matmul(a, b)
    r = cost.report(mac.counts)
    mul, add = cost.energy("mul", "fp8_e4m3fn"), 0.4
    assert r.compute_pj == pytest.approx(4 * mul + 4 * add)
    bits = 8 * (4 + 4) + 16 * 1  # operands read in fp8, one fp16 result written
    assert r.memory_pj == pytest.approx(bits * 20 / 64)  # a 32 KB SRAM: 20 pJ per 64 bits
    skipping = cost.report(mac.counts, skip_zeros=True)
    assert skipping.compute_pj == pytest.approx(2 * mul + 2 * add)  # two products have a zero operand
    assert {line["item"] for line in r.to_dict()["lines"]} == {"mul fp8_e4m3fn", "add fp16", "bits moved (sram 32768 B)"}
    assert r.to_csv().splitlines()[0] == "item,count,pj_each,pj_total"
    assert "total" in str(r)


def test_report_prices_lut_log_and_exact_products_or_says_it_cannot():

    from lowprec.codemac import log_matmul, lut_matmul

    book = lowprec.LUTFormat(np.linspace(-1, 1, 16))
    mac = lowprec.MAC(acc="fp16")
    lut_matmul(np.zeros((2, 3), int), np.zeros((3, 2), int), book, book, mac=mac)
    r = cost.report(mac.counts)
    assert r.lines[0][0] == "mul lut4x4" and r.lines[0][2] == cost.energy("mul", book)
    log = lowprec.LogFormat(4)
    mac = lowprec.MAC(acc="fp16")
    log_matmul(np.ones((2, 3), int), np.ones((3, 2), int), log, log, mac=mac)
    assert cost.report(mac.counts).lines[0][2] == cost.energy("mul", log)
    exact = lowprec.MAC(acc="fp32")
    exact.matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="operands"):
        cost.report(exact.counts)
    assert cost.report(exact.counts, operands="bf16").lines[0][2] == cost.energy("mul", "bf16")
    with pytest.raises(ValueError, match="counts has no"):
        cost.report({"mul": {}})


# -- a torch model, layer by layer ---------------------------------------------------------------------------
def _tiny_net():
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv2d(1, 2, 3, bias=False)
    lin = torch.nn.Linear(8, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1, 0, -2], [0, 3, 0], [1, 1, 0]]], [[[0, 0, 0], [2, 0, 0], [0, 0, -1]]]]))
        lin.weight.copy_(torch.tensor([[1, 0, 0, 2, 0, 0, 1, 0], [0] * 8, [1, 1, 1, 1, -1, -1, -1, -1]]))
    net = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.Flatten(), lin)
    x = torch.tensor([[[[1, 0, 2, 0], [0, 3, 0, 1], [4, 0, 0, 0], [1, 2, 0, 5]]]], dtype=torch.float32)
    return net, x


def _hand_counts(net, x):
    """MACs and zero-operand products by explicit loops over every product."""
    torch = pytest.importorskip("torch")
    w1 = net[0].weight.detach()
    img = x[0, 0]
    macs1 = zeros1 = 0
    for o in range(2):
        for i in range(2):
            for j in range(2):
                for u in range(3):
                    for v in range(3):
                        macs1 += 1
                        zeros1 += int(img[i + u, j + v] == 0 or w1[o, 0, u, v] == 0)
    h = torch.relu(net[0](x)).flatten().detach()
    w2 = net[3].weight.detach()
    macs2 = zeros2 = 0
    for o in range(3):
        for k in range(8):
            macs2 += 1
            zeros2 += int(h[k] == 0 or w2[o, k] == 0)
    return (macs1, zeros1), (macs2, zeros2)


def test_profile_of_a_tiny_network_equals_the_hand_computation():
    net, x = _tiny_net()
    (m1, z1), (m2, z2) = _hand_counts(net, x)
    assert (m1, m2) == (72, 24)
    spec = {"weight": "int8", "input": "int8", "acc": "int32", "skip_zeros": True}
    r = cost.profile(net, x, spec, weight_memory="sram", sram_bytes=8192, array=(4, 4))
    conv, lin = r.layers
    assert (conv.macs, conv.zero_products, conv.executed) == (72, z1, 72 - z1)
    assert (lin.macs, lin.zero_products, lin.executed) == (24, z2, 24 - z2)
    unit = 0.2 + 0.1  # int8 multiply + int32 add
    assert conv.compute_pj == pytest.approx((72 - z1) * unit)
    assert lin.compute_pj == pytest.approx((24 - z2) * unit)
    assert conv.weight_bits == 18 * 8 and conv.activation_bits == 16 * 8 + 8 * 32
    assert lin.weight_bits == 24 * 8 and lin.activation_bits == 8 * 8 + 3 * 32
    per_bit = 10 / 64  # the 8 KB SRAM
    assert conv.memory_pj == pytest.approx((18 * 8 + 16 * 8 + 8 * 32) * per_bit)
    assert r.array_area_um2 == pytest.approx(16 * (282 + 137))
    assert r.total_pj == pytest.approx(conv.total_pj + lin.total_pj)
    assert len(r.to_csv().splitlines()) == 3  # header and two layers
    import json

    assert json.loads(r.to_json())["total_pj"] == pytest.approx(r.total_pj)
    assert "MAC array area" in str(r)


def test_profile_ternary_skips_zero_weights_and_compare_lists_every_spec():
    net, x = _tiny_net()
    dense = cost.profile(net, x, {"weight": "fp16", "input": "fp16", "acc": "fp32"})
    tern = cost.profile(net, x, {"weight": "ternary", "input": "int8", "acc": "int32"})
    assert all(layer.executed == layer.macs for layer in dense.layers)
    assert all(layer.executed == layer.macs - layer.zero_products for layer in tern.layers)
    assert tern.total("compute_pj") < dense.total("compute_pj")
    table = cost.compare(net, x, {"fp32": {"weight": "fp32", "input": "fp32", "acc": "fp32"},
                                  "int8": {"weight": "int8", "input": "int8", "acc": "int32"}})
    assert table.splitlines()[1].startswith("fp32") and table.splitlines()[2].startswith("int8")
    with pytest.raises(ValueError, match=r"spec\['layers'\]\['0'\] must be a dict with keys among weight"):
        cost.profile(net, x, {"layers": {"0": {"format": "fp16"}}})


def test_profile_prices_each_layer_in_its_own_formats():
    """Two layers, two format choices (the conv int8 x int8 into int32, the linear fp16 activations x
    int4 weights into fp32: a mixed multiplier), written out number for number."""
    net, x = _tiny_net()
    (m1, _), (m2, _) = _hand_counts(net, x)
    spec = {"weight": "int8", "input": "int8", "acc": "int32",
            "layers": {"3": {"weight": "int4", "input": "fp16", "acc": "fp32"}}}
    r = cost.profile(net, x, spec, weight_memory="sram", sram_bytes=8192)
    conv, lin = r.layers
    assert (conv.mul, conv.add, lin.mul, lin.add) == ("int8 x int8", "int32", "fp16 x int4", "fp32")
    assert conv.compute_pj == pytest.approx(m1 * (0.2 + 0.1))
    mixed = cost.energy("mul", "fp16", "int4")
    assert lin.compute_pj == pytest.approx(m2 * (mixed + cost.energy("add", "fp32")))
    per_bit = 10 / 64  # the 8 KB SRAM
    assert lin.memory_pj == pytest.approx((24 * 4 + 8 * 16 + 3 * 32) * per_bit)
    with pytest.warns(UserWarning, match=r"spec\['layers'\] keys matched no layer: \['head'\]"):
        cost.profile(net, x, {"layers": {"head": {"weight": "int4"}}})


def test_profile_reads_a_swapped_or_emulated_model_s_formats():
    from lowprec import nn as lnn

    net, x = _tiny_net()
    plain = cost.profile(net, x)
    assert [layer.mul for layer in plain.layers] == ["fp32 x fp32"] * 2
    swapped = copy.deepcopy(net)
    lnn.swap(swapped, {"Conv2d": {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn",
                                  "mac": {"mode": "mac", "acc": "fp16"}},
                       "Linear": {"weight": "fp16", "input": "fp16"}})
    r = cost.profile(swapped, x)
    assert [(layer.mul, layer.add) for layer in r.layers] == [("fp8_e4m3fn x fp8_e4m3fn", "fp16"), ("fp16 x fp16", "fp32")]
    assert r.total_pj < plain.total_pj
    emulated = lnn.emulate(copy.deepcopy(net), {"linear": {"weight": "bf16", "input": "bf16"},
                                                 "0": {"conv": {"weight": "fp8_e5m2", "input": "fp8_e5m2",
                                                               "mac": {"mode": "mac", "acc": "fp16"}}}})
    r = cost.profile(emulated, x)
    assert [(layer.mul, layer.add) for layer in r.layers] == [("fp8_e5m2 x fp8_e5m2", "fp16"), ("bf16 x bf16", "fp32")]
    over = cost.profile(emulated, x, {"acc": "fp32"})  # a spec still overrides
    assert over.layers[0].add == "fp32"


def test_a_format_rounding_a_whole_tensor_to_zero_warns():
    """The plain name int8 is the integers -128..127: inputs in [0, 1) all round to 0."""
    net, x = _tiny_net()
    with pytest.warns(RuntimeWarning, match="layer '0': every input value rounds to 0 in int8"):
        cost.profile(net, x * 0.4 / x.abs().max(), {"weight": "fp16", "input": "int8", "acc": "int32"})


# -- storage ---------------------------------------------------------------------------------------------------
def test_deep_compression_rate_reproduces_the_papers_example():
    assert cost.deep_compression_rate(16, 32, 4) == pytest.approx(3.2)  # Han et al. 2016, Fig. 2


def test_huffman_sizes_equal_a_direct_computation():
    from lowprec.cost.storage import huffman_code_lengths

    # frequencies a:5 b:2 c:1 d:1 -> merge c+d (2), then b+cd (4), then a+bcd: lengths 1, 2, 3, 3
    assert huffman_code_lengths({"a": 5, "b": 2, "c": 1, "d": 1}) == {"a": 1, "b": 2, "c": 3, "d": 3}
    codes = [0] * 5 + [1] * 2 + [2, 3]
    assert cost.huffman_bits(codes) == 5 * 1 + 2 * 2 + 3 + 3
    assert cost.huffman_bits([7] * 10) == 10
    rng = __import__("numpy").random.default_rng(1)
    c = rng.integers(0, 16, 5000)
    assert cost.huffman_bits(c) <= 4 * 5000  # never worse than the fixed-length code here


def test_tensor_bits_count_scales_and_codebooks():
    assert cost.tensor_bits(100, "fp8_e4m3fn") == 800
    assert cost.tensor_bits(100, "mxfp8_e4m3") == 800 + 4 * 8  # ceil(100 / 32) e8m0 scales
    assert cost.tensor_bits(64, "nvfp4") == 64 * 4 + 4 * 8 + 32  # e4m3 block scales and a tensor scale
    assert cost.tensor_bits(100, lowprec.LUTFormat(range(16))) == 400 + 16 * 32
    assert cost.tensor_bits(10, lowprec.IntAffineFormat(4, [0.1, 0.2], [0, 1])) == 40 + 2 * 64
    assert cost.tensor_bits(10, lowprec.BinaryFormat(0.5)) == 10 + 32
    assert cost.tensor_bits(10, lowprec.TernaryFormat(1, 1, 0.5)) == 20 + 96
    assert cost.compression_rate(3200, 800) == 4 and cost.space_saving_rate(3200, 800) == 3
    assert cost.speedup_rate(2.0, 0.5) == 4


def test_model_storage_of_the_tiny_net():
    net, _ = _tiny_net()
    s = cost.model_storage(net, {"weight": "int8"})
    assert s["bits"] == (18 + 24) * 8 and s["alpha"] == 4.0 and s["beta"] == 3.0
    t = cost.model_storage(net, {"weight": "ternary"})
    assert t["bits"] == 2 * (18 + 24) + 2 * 96
    assert all(layer["huffman_bits"] <= 2 * layer["numel"] for layer in t["layers"])


# -- the time model -------------------------------------------------------------------------------------------
def test_roofline_of_a_two_layer_model_by_hand(tmp_path):
    """Layer by layer max(2 MACs / peak, bytes / bandwidth), on a shipped device and on a user's table
    slow enough to make the product compute-bound."""
    net, x = _tiny_net()
    spec = {"weight": "int8", "input": "int8", "acc": "int32", "layers": {"3": {"weight": "fp8_e4m3fn",
                                                                                "input": "fp8_e4m3fn"}}}
    r = cost.profile(net, x, spec, device="h100_sxm")
    conv, lin = r.layers
    assert (conv.arithmetic, lin.arithmetic) == ("int8", "fp8")
    conv_bytes = (18 * 8 + 16 * 8 + 8 * 32) / 8
    lin_bytes = (24 * 8 + 8 * 8 + 3 * 32) / 8
    assert conv.latency_s == max(2 * 72 / 1979e12, conv_bytes / 3350e9) and conv.bound == "memory"
    assert lin.latency_s == max(2 * 24 / 1979e12, lin_bytes / 3350e9)
    assert r.latency_s == conv.latency_s + lin.latency_s
    assert r.throughput == 1 / r.latency_s and r.inferences_per_s_per_w == r.throughput / 700
    table = tmp_path / "slow.csv"
    table.write_text("device,quantity,format,value,unit,source\n"
                     "slow,peak,int8,1e-9,TFLOPS,a test row\nslow,peak,fp16,2e-9,TFLOPS,a test row\n"
                     "slow,bandwidth,,1,GB/s,a test row\n")
    devices = cost.load_devices(table)
    s = cost.profile(net, x, spec, device="slow", devices=devices)
    conv, lin = s.layers
    assert (conv.arithmetic, lin.arithmetic) == ("int8", "fp16")  # no fp8 there: the next that holds it
    assert conv.latency_s == pytest.approx(2 * 72 / 1e3, rel=1e-12) and conv.bound == "compute"
    assert lin.latency_s == pytest.approx(2 * 24 / 2e3, rel=1e-12)
    assert s.inferences_per_s_per_w is None  # no power row
    text = cost.compare(net, x, {"int8": {"weight": "int8", "input": "int8", "acc": "int32"},
                                 "fp32": {"weight": "fp32", "input": "fp32", "acc": "fp32"}}, device="h100_sxm")
    header, int8_row, fp32_row = text.splitlines()
    assert "speedup" in header and "1.00x" in int8_row and fp32_row.split()[-2].endswith("x")


@pytest.mark.parametrize("a, b, device, expected", [
    ("fp8_e4m3fn", "fp8_e5m2", "h100_sxm", "fp8"), ("fp8_e4m3fn", "fp8_e4m3fn", "a100_sxm_80gb", "fp16"),
    ("fp16", "bf16", "h100_sxm", "tf32"), ("int4", "int4", "h100_sxm", "int8"), ("int4", "int4", "a100_sxm_80gb", "int4"),
    ("fp16", "int4", "h100_sxm", "fp16"), ("fp32", "fp32", "h100_sxm", "fp32"), ("mxfp4_e2m1", "mxfp4_e2m1", "h100_sxm", "fp8"),
    ("bf16", "bf16", "tpu_v5e", "bf16"), ("fp16", "fp16", "tpu_v5e", None),
])
def test_the_arithmetic_a_product_runs_in(a, b, device, expected):
    dev = cost.timing.device(device)
    if expected is None:  # fp16 needs 10 mantissa bits: a TPU v5e has none wider than bf16's 7
        with pytest.raises(ValueError, match="no arithmetic holds"):
            cost.timing.arithmetic(a, b, dev)
    else:
        assert cost.timing.arithmetic(a, b, dev) == expected


def test_every_device_row_cites_a_source_and_bad_tables_name_row_and_field(tmp_path):
    for dev in cost.default_devices().values():
        assert dev.peak and dev.bandwidth and all(dev.sources)
    bad = tmp_path / "bad.csv"
    bad.write_text("device,quantity,format,value,unit,source\nx,peak,fp8,10,TFLOPS,\n")
    with pytest.raises(ValueError, match="bad.csv, line 2: field 'source' is empty"):
        cost.load_devices(bad)
    bad.write_text("device,quantity,format,value,unit,source\nx,peak,fp9,10,TFLOPS,s\n")
    with pytest.raises(ValueError, match="line 2: field 'format' of a peak row must be one of int4"):
        cost.load_devices(bad)
    bad.write_text("device,quantity,format,value,unit,source\nx,peak,fp8,10,TFLOPS,s\n")
    with pytest.raises(ValueError, match="device 'x' needs a bandwidth row"):
        cost.load_devices(bad)
    with pytest.raises(ValueError, match="unknown device 'h300'; devices: a100_sxm_80gb, h100_sxm"):
        cost.profile(*_linear(), device="h300")


def _linear():
    import torch

    return torch.nn.Linear(2, 2), torch.ones(1, 2)


# -- sparse storage --------------------------------------------------------------------------------------------
def test_sparse_sizes_by_hand():
    x = np.zeros(40)
    x[[2, 3, 25]] = 1.0
    # rle: gaps 2, 0, 21 zeros; 21 >= 16 takes one filler: 4 entries of 8 + 4 bits
    assert cost.sparse_bits(x, 8, "rle") == 4 * 12
    assert cost.sparse_bits(x, 8, "rle", index_bits=5) == 3 * 13
    # csr of (4, 10): 3 values, 3 column indices of 4 bits, 5 row pointers of 2 bits
    assert cost.sparse_bits(x.reshape(4, 10), 8, "csr") == 24 + 12 + 10
    assert cost.sparse_bits(x, 8, "bitmap") == 40 + 24
    with pytest.raises(ValueError, match="scheme must be one of 'rle', 'csr', 'bitmap'"):
        cost.sparse_bits(x, 8, "coo")


def test_profile_moves_the_sparse_bytes():
    """With sparse inputs the memory energy follows the stored bits (ReLU outputs: half zeros)."""
    net, x = _tiny_net()
    dense = cost.profile(net, x, {"weight": "int8", "input": "int8", "acc": "int32"})
    sparse = cost.profile(net, x, {"weight": "int8", "input": "int8", "acc": "int32", "sparse_inputs": "bitmap",
                                   "sparse_weights": "rle"})
    lin_d, lin_s = dense.layers[1], sparse.layers[1]
    h = torch_relu_input(net, x)
    assert lin_s.activation_bits == cost.sparse_bits(h, 8, "bitmap") + 3 * 32
    w = net[3].weight.detach().numpy()
    wq = np.asarray(lowprec.quantize(w.astype(np.float64), "int8"))
    assert lin_s.weight_bits == cost.sparse_bits(wq, 8, "rle")
    assert lin_s.compute_pj == lin_d.compute_pj
    assert (lin_s.memory_pj < lin_d.memory_pj) == (lin_s.weight_bits + lin_s.activation_bits
                                                    < lin_d.weight_bits + lin_d.activation_bits)


def torch_relu_input(net, x):
    import torch

    with torch.no_grad():
        h = torch.relu(net[0](x)).flatten(1).double().numpy()
    return np.asarray(lowprec.quantize(h, "int8")).reshape(h.shape[0], -1)
