"""Emulated-precision layers and model surgery: fake vs mac modes, MAC equality, swap/unswap."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lowprec  # noqa: E402
from lowprec import nn as lnn  # noqa: E402


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 10), torch.nn.ReLU(), torch.nn.Linear(10, 3))


def test_fp32_swap_is_bit_identical_and_unswap_restores():
    net, x = _net(), torch.randn(5, 1, 6, 6)
    before = net(x)
    params = [id(p) for p in net.parameters()]
    net, replaced = lnn.swap(net, {"Linear": {"weight": "fp32", "input": "fp32"},
                                   "Conv2d": {"weight": "fp32", "input": "fp32", "output": "fp32"}})
    assert [r[0] for r in replaced] == ["0", "3", "5"]
    assert isinstance(net[3], lnn.QLinear) and [id(p) for p in net.parameters()] == params
    assert torch.equal(net(x), before)
    lnn.unswap(net)
    assert type(net[3]) is torch.nn.Linear and [id(p) for p in net.parameters()] == params


def test_fake_and_mac_agree_when_the_accumulator_is_exact():
    torch.manual_seed(1)
    x = torch.randn(6, 20)
    fake = lnn.QLinear(20, 7, weight="int4", input="int4")
    mac = lnn.QLinear(20, 7, weight="int4", input="int4", mac={"mode": "mac", "acc": None})
    mac.load_state_dict(fake.state_dict())
    with torch.no_grad():
        fake.weight.mul_(4)
        mac.weight.copy_(fake.weight)
    assert torch.equal(fake(x * 3), mac(x * 3))  # small integers: float32 sums are exact too


def test_mac_mode_equals_lowprec_mac_forward_and_backward():
    torch.manual_seed(2)
    spec = {"mode": "mac", "acc": "fp16", "chunk": 8, "chunk_acc": "fp32"}
    layer = lnn.QLinear(40, 5, bias=False, weight="fp8_e4m3fn", input="fp8_e4m3fn", mac=spec)
    x = torch.randn(3, 40, requires_grad=True)
    y = layer(x)
    mac = lowprec.MAC(acc="fp16", chunk=8, chunk_acc="fp32")
    xq = lowprec.quantize(x.detach(), "fp8_e4m3fn")
    wq = lowprec.quantize(layer.weight.detach(), "fp8_e4m3fn")
    assert torch.equal(y.detach(), mac.matmul(xq, wq.t().contiguous()))
    g = lowprec.quantize(torch.randn(3, 5), "fp8_e5m2")
    y.backward(g)
    assert torch.equal(x.grad, mac.matmul(g, wq))  # dX = dY W through the same MAC
    assert torch.equal(layer.weight.grad, mac.matmul(g.t().contiguous(), xq))


def test_conv_mac_mode_backward_goes_through_the_mac():
    """dW = cols^T dY and dcols = dY W through the layer's MAC (cols: the input's patches), dX the sum
    of dcols over overlapping patches (torch's fold), per group; strides, padding and dilation."""
    torch.manual_seed(4)
    mac_spec = {"mode": "mac", "acc": "fp16", "chunk": 4, "chunk_acc": "fp32"}
    conv = lnn.QConv2d(4, 6, (3, 2), padding=(1, 2), stride=(2, 1), dilation=(1, 2), bias=True, groups=2,
                       weight="fp8_e4m3fn", input="fp8_e4m3fn", mac=mac_spec)
    x = torch.randn(2, 4, 7, 6, requires_grad=True)
    y = conv(x)
    g = lowprec.quantize(torch.randn(y.shape), "fp8_e5m2")
    y.backward(g)
    mac = lowprec.MAC(acc="fp16", chunk=4, chunk_acc="fp32")
    xq = lowprec.quantize(x.detach(), "fp8_e4m3fn")
    wq = lowprec.quantize(conv.weight.detach(), "fp8_e4m3fn")
    cols = torch.nn.functional.unfold(xq, (3, 2), dilation=(1, 2), padding=(1, 2), stride=(2, 1))  # (n, c*k, L)
    n, L = cols.shape[0], cols.shape[2]
    dx_cols, dw = [], []
    for grp in range(2):
        a = cols[:, grp * 12:(grp + 1) * 12].permute(0, 2, 1).reshape(n * L, 12)  # 2 channels x 3 x 2
        dy = g[:, grp * 3:(grp + 1) * 3].permute(0, 2, 3, 1).reshape(n * L, 3)
        wg = wq[grp * 3:(grp + 1) * 3].reshape(3, 12)
        dw.append(mac.matmul(a.t().contiguous(), dy).t().reshape(3, 2, 3, 2))
        dx_cols.append(mac.matmul(dy, wg).reshape(n, L, 12).permute(0, 2, 1))
    dx = torch.nn.functional.fold(torch.cat(dx_cols, 1), (7, 6), (3, 2), dilation=(1, 2), padding=(1, 2), stride=(2, 1))
    assert torch.equal(conv.weight.grad, torch.cat(dw))
    assert torch.equal(x.grad, dx)
    assert torch.equal(conv.bias.grad, g.sum((0, 2, 3)))


def test_conv_mac_mode_equals_the_mac_conv():
    torch.manual_seed(3)
    conv = lnn.QConv2d(2, 4, 3, padding=1, stride=2, bias=False, groups=2, weight="fp8_e4m3fn",
                       input="fp8_e4m3fn", mac={"mode": "mac", "acc": "bf16"})
    x = torch.randn(2, 2, 7, 7)
    xq = lowprec.quantize(x, "fp8_e4m3fn")
    wq = lowprec.quantize(conv.weight.detach(), "fp8_e4m3fn")
    expected = lowprec.MAC(acc="bf16").conv2d(xq, wq, stride=2, padding=1, groups=2)
    assert torch.equal(conv(x).detach(), expected)
    c1 = lnn.QConv1d(3, 2, 3, bias=False, mac={"mode": "mac", "acc": "fp16"})
    x1 = lowprec.quantize(torch.randn(2, 3, 9), "fp8_e4m3fn")
    w1 = lowprec.quantize(c1.weight.detach(), "fp8_e4m3fn")
    with torch.no_grad():
        c1.weight.copy_(w1)
    assert torch.equal(c1(x1).detach(), lowprec.MAC(acc="fp16").conv1d(x1, w1))


def test_gradient_format_rounds_the_incoming_gradient():
    layer = lnn.QLinear(3, 2, bias=False, grad="fp8_e5m2")
    x = torch.randn(4, 3, requires_grad=True)
    g = torch.randn(4, 2)
    layer(x).backward(g)
    gq = lowprec.quantize(g, "fp8_e5m2")
    assert torch.allclose(x.grad, gq @ layer.weight.detach())


def test_swap_specificity_strictness_and_atomicity(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)))
    _, replaced = lnn.swap(net, {"Linear": {"weight": "fp16"}, "1.*": {"weight": "bf16"}, "1.1": {"weight": "fp8_e4m3fn"}})
    assert [r[0] for r in replaced] == ["0", "1.0", "1.1"]
    assert net[0].q_weight.name == "fp16" and net[1][0].q_weight.name == "bf16"
    assert net[1][1].q_weight.name == "fp8_e4m3fn"
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    with pytest.warns(UserWarning, match="matched nothing"):
        lnn.swap(fresh, {"Conv2d": {"weight": "fp16"}})
    with pytest.raises(ValueError, match="swappable modules"):
        lnn.swap(fresh, {"head.*": {"weight": "fp16"}}, strict=True)
    with pytest.raises(ValueError, match="unknown format name"):
        lnn.swap(fresh, {"0": {"weight": "fp16"}, "1": {"weight": "fp17"}})
    assert all(type(m) is torch.nn.Linear for m in fresh)  # nothing half-swapped
    with pytest.raises(ValueError, match="mac mode"):
        lnn.swap(fresh, {"Linear": {"mac": {"mode": "exact"}}})
    path = tmp_path / "spec.toml"
    path.write_text('[Linear]\nweight = "fp8_e4m3fn"\ninput = "fp8_e4m3fn"\n[Linear.mac]\nmode = "mac"\nacc = "fp16"\n')
    lnn.swap(fresh, str(path))
    assert fresh[1].q_mode == "mac" and fresh[1].q_mac.acc.name == "fp16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lnn.unswap(fresh)


def test_qmatmul_and_qact():
    torch.manual_seed(4)
    a, b = torch.randn(2, 3, 5), torch.randn(2, 5, 4)
    qm = lnn.QMatmul(input="fp8_e4m3fn", weight="fp8_e4m3fn", mac={"mode": "mac", "acc": "fp16"})
    aq, bq = lowprec.quantize(a, "fp8_e4m3fn"), lowprec.quantize(b, "fp8_e4m3fn")
    assert torch.equal(qm(a, b), lowprec.MAC(acc="fp16").matmul(aq, bq))
    act = lnn.QAct(pact_bits=4, alpha=2.0)
    y = act(torch.tensor([-1.0, 0.5, 3.0]))
    assert y.tolist() == pytest.approx([0.0, 0.5333333, 2.0], rel=1e-6)
    with pytest.raises(ValueError, match="exactly one"):
        lnn.QAct()


def test_ptq_calibration_freezes_observer_formats_and_keeps_accuracy():
    pytest.importorskip("sklearn")
    from lowprec.observers import MinMaxObserver
    from lowprec.sims import digits

    result = digits.train(None, epochs=6)
    net = result["model"]
    xtr, _, xte, yte = digits.load()
    batches = [torch.from_numpy(xtr[i:i + 128]) for i in range(0, 512, 128)]
    lnn.calibrate(net, batches)
    assert isinstance(net[0], lnn.QConv2d)
    expected = MinMaxObserver()
    for b in batches:
        expected.update(b)
    fmt = expected.format(8, signed=False, symmetric=False)
    assert (net[0].q_input.scale, net[0].q_input.zero_point) == (fmt.scale, fmt.zero_point)
    w = MinMaxObserver(axis=0).update(net[0].weight.detach().double()).format(8)
    assert np.array_equal(net[0].q_weight.scale, w.scale)
    acc = float((net(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
    assert acc >= result["accuracy"] - 0.01
    with pytest.raises(ValueError, match="empty"):
        lnn.calibrate(net, [])


def test_swap_and_unswap_carry_the_modules_hooks():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    seen = []
    net[0].register_forward_hook(lambda m, i, o: seen.append(("forward", type(m).__name__)))
    net[0].register_forward_pre_hook(lambda m, i: seen.append(("pre", type(m).__name__)))
    lnn.swap(net, {"Linear": {"weight": "fp8_e4m3fn"}})
    net(torch.ones(2, 4))
    assert seen == [("pre", "QLinear"), ("forward", "QLinear")]
    lnn.unswap(net)
    net(torch.ones(2, 4))
    assert seen[2:] == [("pre", "Linear"), ("forward", "Linear")]


@pytest.mark.parametrize("formats", [{"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2"},
                                     {"weight": "mxfp8_e4m3", "input": "mxfp8_e4m3"}], ids=["fp8", "mxfp8"])
def test_torch_compile_of_a_swapped_model_matches_eager_in_one_graph(formats):
    """Under torch.compile the quantizers are the custom operators lowprec::quantize / quantize_grad:
    no graph break (fullgraph=True), one graph for every call, the same values and gradients."""
    import torch._dynamo

    def build():
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        lnn.swap(m, {"Linear": dict(formats)})
        return m

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager, traced = build(), build()
    compiled = torch.compile(traced, backend="aot_eager", fullgraph=True)
    for _ in range(3):
        x = torch.randn(5, 32)
        ye, yc = eager(x), compiled(x)
        assert torch.equal(ye, yc)
        ye.sum().backward()
        yc.sum().backward()
        for a, b in zip(eager.parameters(), traced.parameters()):
            assert torch.equal(a.grad, b.grad)
            a.grad = b.grad = None
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert hasattr(torch.ops.lowprec, "quantize") and hasattr(torch.ops.lowprec, "quantize_grad")


def test_the_clipped_estimator_under_torch_compile():
    from lowprec import ste

    x = torch.tensor([-1000.0, -3.0, 0.5, 500.0], requires_grad=True)
    f = torch.compile(lambda t: (ste.quantize(t, "fp8_e4m3fn", estimator="clipped") * 2).sum(), backend="aot_eager",
                      fullgraph=True)
    f(x).backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 2.0, 2.0, 0.0]))  # e4m3fn's range is +-448


@pytest.mark.parametrize("name", ["fp8_e4m3fn", "mxfp8_e4m3"])
def test_the_operators_give_the_fakes_strides_even_on_size_one_dimensions(name):
    """A compiled graph plans layouts from the fake's strides (cuDNN's convolution backward picks its
    output layout from them, size-1 dimensions included: a ResNet's 1x1 feature maps): the operators
    return exactly torch.empty(x.shape)'s strides, whatever x's (torch.library.opcheck agrees)."""
    from lowprec import ste

    key = ste.format_key(lowprec.formats.get(name))
    axis = {"axis": 1} if name.startswith("mx") else {}
    for x in (torch.randn(4, 64, 1, 1).to(memory_format=torch.channels_last),  # strides (64, 1, 64, 64)
              torch.randn(2, 64, 3, 3).to(memory_format=torch.channels_last), torch.randn(2, 64, 3, 3)[:, :, 1:]):
        expected = torch.empty(x.shape).stride()
        for out in (torch.ops.lowprec.quantize(x, key, "nearest_even", "ste", 1, 1),
                    torch.ops.lowprec.quantize_grad_backward(x, key, "nearest_even", 1, 1)):
            assert out.stride() == expected and torch.equal(out, lowprec.quantize(x, name, **axis))
        torch.library.opcheck(torch.ops.lowprec.quantize.default, (x, key, "nearest_even", "ste", 1, 1),
                              test_utils=("test_schema", "test_faketensor"))
