"""lowprec.nn.emulate: every op of real models intercepted (checked at torch's dispatcher: no product
runs on unrounded operands, no fused kernel runs unemulated), an all-float32 emulation gives the plain
model's bits, per-GEMM formats match hand-computed products, vector ops follow their documented steps."""

from __future__ import annotations

import copy
import warnings
from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import lowprec  # noqa: E402
import lowprec.nn as lnn  # noqa: E402
from lowprec.nn import composites  # noqa: E402

GEMM_KINDS = ("linear", "matmul", "conv", "conv_transpose")
VECTOR = ("softmax", "layer_norm", "gelu", "silu", "rms_norm")


def _spec(operands: str, grads: str, vector: str | None) -> dict:
    spec = {k: {"input": operands, "weight": operands, "grad": grads} for k in GEMM_KINDS}
    if vector:
        spec.update({k: {"format": vector} for k in VECTOR})
    spec["embedding"] = {"weight": operands}
    return spec


F32 = _spec("fp32", "fp32", "fp32")
FP8 = _spec("fp8_e4m3fn", "fp8_e5m2", "bf16")


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def _first(out):
    if isinstance(out, tuple):
        return out[0]
    for name in ("logits", "last_hidden_state"):
        if hasattr(out, name):
            return getattr(out, name)
    return out


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(16, 12), torch.nn.LayerNorm(12), torch.nn.GELU(), torch.nn.Linear(12, 8),
                               torch.nn.SiLU(), torch.nn.RMSNorm(8), torch.nn.Linear(8, 3))


def _encoder():
    layer = torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0)
    return torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


class _Attention(torch.nn.Module):
    """Attention written as functions (most transformer code): matmul, softmax, sdpa, einsum, bmm."""

    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(16, 48)

    def forward(self, x):
        q, k, v = self.qkv(x).view(4, 7, 3, 2, 8).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) / 8 ** 0.5, -1) @ v
        b = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        c = torch.einsum("bhqd,bhkd->bhqk", q, k).softmax(-1)
        d = torch.bmm(c.reshape(8, 7, 7), v.reshape(8, 7, 8)).reshape(4, 2, 7, 8)
        return a + b + d


class _Convs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv1d(3, 4, 3, padding=1)
        self.c2 = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.c3 = torch.nn.Conv3d(3, 4, 3, padding="same")
        self.t2 = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1)
        self.emb = torch.nn.Embedding(10, 5)

    def forward(self, x):
        ids = torch.arange(6) % 10
        return (self.c1(x.mean(3)).sum() + self.t2(self.c2(x)).sum() + self.c3(x.unsqueeze(2).repeat(1, 1, 3, 1, 1)).sum()
                + self.emb(ids).sum())


def _transformers(name):
    transformers = pytest.importorskip("transformers")
    if name == "gpt2":
        cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=16, resid_pdrop=0.0,
                                      embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
        return transformers.GPT2LMHeadModel(cfg)
    cfg = transformers.BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                                  vocab_size=100, max_position_embeddings=16, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)
    return transformers.BertModel(cfg)


def _resnet():
    from sims.resnet import resnet18

    return resnet18(num_classes=3, width=4, seed=0)


MODELS = {
    "mlp": (_mlp, lambda: (torch.randn(5, 16),)),
    "mha": (lambda: torch.nn.MultiheadAttention(16, 2, batch_first=True),
            lambda: (torch.randn(4, 7, 16),) * 3),
    "encoder": (_encoder, lambda: (torch.randn(4, 7, 16),)),
    "attention-functions": (_Attention, lambda: (torch.randn(4, 7, 16),)),
    "lstm": (lambda: torch.nn.LSTM(16, 8, 2, bidirectional=True, batch_first=True), lambda: (torch.randn(4, 5, 16),)),
    "lstm-proj": (lambda: torch.nn.LSTM(16, 8, 1, proj_size=4), lambda: (torch.randn(5, 4, 16),)),
    "gru": (lambda: torch.nn.GRU(16, 8, 2), lambda: (torch.randn(5, 4, 16),)),
    "rnn": (lambda: torch.nn.RNN(16, 8, 1, nonlinearity="relu"), lambda: (torch.randn(5, 4, 16),)),
    "convs": (_Convs, lambda: (torch.randn(2, 3, 8, 8),)),
    "resnet18": (_resnet, lambda: (torch.randn(2, 3, 16, 16),)),
    "gpt2": (lambda: _transformers("gpt2"), lambda: (torch.randint(0, 100, (2, 9)),)),
    "bert": (lambda: _transformers("bert"), lambda: (torch.randint(0, 100, (2, 9)),)),
}


def _step(model, inputs):
    out = _first(_quiet(model, *inputs))
    out.square().sum().backward()
    return out


@pytest.mark.parametrize("name", MODELS)
def test_float32_emulation_is_the_plain_model(name):
    make, data = MODELS[name]
    torch.manual_seed(0)
    model, inputs = make(), data()
    plain = copy.deepcopy(model)
    expected = _step(plain, inputs)
    lnn.emulate(model, F32)
    got = _step(model, inputs)
    assert torch.equal(got, expected)
    for (n, p), q in zip(model.named_parameters(), plain.parameters()):
        assert (p.grad is None) == (q.grad is None), n
        if p.grad is not None:
            assert torch.equal(p.grad, q.grad), n
    assert sum(lnn.emulation(model).calls.values()) > 0


class _Dispatch(TorchDispatchMode):
    """What reaches torch's kernels: each product's operands, and the fused ops that would hide one."""

    aten = torch.ops.aten
    PRODUCTS = {aten.mm.default: (0, 1), aten.bmm.default: (0, 1), aten.addmm.default: (1, 2),
                aten.baddbmm.default: (1, 2), aten.convolution.default: (0, 1), aten.embedding.default: (0,)}
    FUSED = ("scaled_dot_product", "_softmax", "native_layer_norm", "gelu", "silu", "rms_norm", "lstm", "gru",
             "rnn_tanh", "rnn_relu", "mkldnn_rnn")

    def __init__(self):
        super().__init__()
        self.operands, self.fused, self.products = [], [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.PRODUCTS:
            self.products += 1
            self.operands += [args[i] for i in self.PRODUCTS[func]]
        elif func is self.aten.convolution_backward.default:
            mask = args[10]  # the bias gradient (mask[2]) is a sum, not a product
            self.products += mask[0] + mask[1]
            self.operands += ([args[0], args[2]] if mask[0] else []) + ([args[0], args[1]] if mask[1] else [])
        elif any(part in func.__name__ for part in self.FUSED) and "backward" not in func.__name__:
            self.fused.append(func.__name__)
        return func(*args, **kwargs)


def _in_fp8(t: torch.Tensor) -> bool:
    if not t.is_floating_point():
        return True
    x = t.detach().float().numpy()
    ok = np.zeros(x.shape, bool)
    for fmt in ("fp8_e4m3fn", "fp8_e5m2"):
        ok |= lowprec.quantize(x, fmt) == x
    return bool(ok.all())


@pytest.mark.parametrize("name", MODELS)
def test_every_product_runs_on_rounded_operands(name):
    """Forward and backward, every product torch's kernels compute takes fp8 operands (weights and
    activations e4m3, gradients e5m2), and no fused attention, softmax, norm, activation or recurrent
    kernel runs: the emulation saw every op."""
    make, data = MODELS[name]
    torch.manual_seed(0)
    model, inputs = make(), data()
    lnn.emulate(model, FP8)
    with _Dispatch() as seen:
        _step(model, inputs)
    assert seen.products > 0
    assert not seen.fused
    bad = [tuple(t.shape) for t in seen.operands if not _in_fp8(t)]
    assert not bad, f"{len(bad)} of {len(seen.operands)} product operands not in fp8: {bad[:5]}"


def test_counts_follow_the_model():
    """A 2-layer bidirectional LSTM over 5 steps: per layer and direction one input GEMM for the whole
    sequence and one hidden GEMM per step; an encoder layer: 2 projections, QK^T, softmax, PV, 2 norms
    and 2 feed-forward GEMMs."""
    lstm = lnn.emulate(torch.nn.LSTM(16, 8, 2, bidirectional=True), FP8)
    _quiet(lstm, torch.randn(5, 3, 16))
    em = lnn.emulation(lstm)
    assert em.emulated[("", "linear")] == 2 * 2 * (1 + 5)
    assert em.calls[("", "lstm")] == 1
    enc = lnn.emulate(_encoder(), FP8)
    _quiet(enc, torch.randn(2, 7, 16))
    em = lnn.emulation(enc)
    layer = Counter()
    for (m, k), v in em.emulated.items():
        if m.startswith("layers.0."):
            layer[k] += v
    assert layer == {"linear": 4, "attention.qk": 1, "attention.softmax": 1, "attention.pv": 1, "layer_norm": 2}


def test_recurrent_decomposition_matches_torch_cells():
    """The decomposed recurrences against torch's fused ones (oneDNN on this CPU: float32 rounding
    apart), every kind, two layers, both directions, batch first."""
    torch.manual_seed(1)
    for kind, cls in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU), ("rnn_tanh", torch.nn.RNN)):
        m = cls(6, 5, 2, bidirectional=True, batch_first=True)
        x = torch.randn(3, 4, 6)
        expected = m(x)
        h0 = torch.zeros(4, 3, 5)
        hx = (h0, h0) if kind == "lstm" else h0
        got = composites.rnn(kind, F.linear, (x, hx, m._flat_weights, True, 2, 0.0, False, True, True))
        torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-6)
        finals = expected[1] if kind != "lstm" else expected[1][0]
        torch.testing.assert_close(got[1], finals, rtol=1e-5, atol=1e-6)


def _q(t, fmt, axis=-1):
    blocks = {"axis": axis} if fmt.startswith("mx") else {}
    return torch.from_numpy(lowprec.quantize(t.detach().numpy(), fmt, **blocks))


def test_per_gemm_formats_of_a_linear():
    """dX = q_e5m2(dY) q_e4m3(W); dW from a high-precision wgrad: q_bf16(dY)^T q_bf16(X); the bias
    gradient from the unrounded dY."""
    torch.manual_seed(2)
    lin = torch.nn.Linear(16, 8)
    x = torch.randn(5, 16, requires_grad=True)
    g = torch.randn(5, 8)
    spec = {"linear": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "grad": "fp8_e5m2",
                       "wgrad": {"grad": "bf16", "input": "bf16"}}}
    lnn.emulate(lin, spec)
    y = lin(x)
    y.backward(g)
    xq, wq = _q(x, "fp8_e4m3fn"), _q(lin.weight, "fp8_e4m3fn")
    assert torch.equal(y, F.linear(xq, wq, lin.bias))
    assert torch.equal(x.grad, _q(g, "fp8_e5m2").mm(wq))
    assert torch.equal(lin.weight.grad, _q(g, "bf16").t().mm(_q(x, "bf16")))
    assert torch.equal(lin.bias.grad, g.sum(0))


def test_a_high_precision_weight_gradient():
    """torchao's rowwise_with_gw_hp: wgrad on the unrounded gradient and input (None)."""
    torch.manual_seed(8)
    lin = torch.nn.Linear(16, 8)
    x = torch.randn(5, 16, requires_grad=True)
    g = torch.randn(5, 8)
    spec = {"linear": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "grad": "fp8_e5m2",
                       "wgrad": {"grad": None, "input": None}}}
    lnn.emulate(lin, spec)
    lin(x).backward(g)
    assert torch.equal(x.grad, _q(g, "fp8_e5m2").mm(_q(lin.weight, "fp8_e4m3fn")))
    assert torch.equal(lin.weight.grad, g.t().mm(x.detach()))


def test_block_formats_reblock_along_each_backward_reduction():
    """MXFP8 training: the forward blocks along k, dgrad (dY W) re-blocks W along its rows (n) and dY
    along n, wgrad (dY^T X) re-blocks both along the batch rows, each from the unrounded tensors."""
    torch.manual_seed(3)
    lin = torch.nn.Linear(64, 32, bias=False)
    with torch.no_grad():  # magnitudes varying along both axes, so that blocks along each differ
        lin.weight.mul_(2.0 ** torch.randint(-6, 6, (32, 1))).mul_(2.0 ** torch.randint(-6, 6, (1, 64)))
    x = (torch.randn(64, 64) * 2.0 ** torch.randint(-6, 6, (64, 1))).requires_grad_()
    g = torch.randn(64, 32) * 2.0 ** torch.randint(-6, 6, (1, 32))
    lnn.emulate(lin, {"linear": {"input": "mxfp8_e4m3", "weight": "mxfp8_e4m3", "grad": "mxfp8_e5m2"}})
    y = lin(x)
    y.backward(g)
    assert torch.equal(y, _q(x, "mxfp8_e4m3", -1).mm(_q(lin.weight, "mxfp8_e4m3", -1).t()))
    assert torch.equal(x.grad, _q(g, "mxfp8_e5m2", -1).mm(_q(lin.weight, "mxfp8_e4m3", 0)))
    assert torch.equal(lin.weight.grad, _q(g, "mxfp8_e5m2", 0).t().mm(_q(x, "mxfp8_e4m3", 0)))
    # the reblocked operands differ from the forward's (else this test could not tell)
    assert not torch.equal(_q(lin.weight, "mxfp8_e4m3", 0), _q(lin.weight, "mxfp8_e4m3", -1))


def test_batched_matmul_gradients_sum_over_broadcast():
    torch.manual_seed(4)
    a = torch.randn(3, 4, 5, 6, requires_grad=True)
    b = torch.randn(4, 6, 2, requires_grad=True)  # broadcast over a's first axis
    g = torch.randn(3, 4, 5, 2)
    with lnn.emulating({"matmul": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "grad": "fp8_e5m2"}}):
        y = a @ b
    y.backward(g)
    aq, bq, gq = _q(a, "fp8_e4m3fn"), _q(b, "fp8_e4m3fn"), _q(g, "fp8_e5m2")
    assert torch.equal(y, aq @ bq)
    torch.testing.assert_close(a.grad, gq @ bq.transpose(-1, -2), rtol=0, atol=0)
    torch.testing.assert_close(b.grad, (aq.transpose(-1, -2) @ gq).sum(0), rtol=1e-6, atol=1e-6)


def test_mac_mode_products_are_the_mac_s():
    torch.manual_seed(5)
    mac = {"mode": "mac", "acc": "fp16", "chunk": 4}
    lin = torch.nn.Linear(16, 6)
    x = torch.randn(3, 16, requires_grad=True)
    lnn.emulate(lin, {"linear": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "grad": "fp8_e5m2", "mac": mac}})
    y = lin(x)
    g = torch.randn(3, 6)
    y.backward(g)
    unit = lowprec.MAC(acc="fp16", chunk=4)
    xq, wq, gq = _q(x, "fp8_e4m3fn"), _q(lin.weight, "fp8_e4m3fn"), _q(g, "fp8_e5m2")
    assert torch.equal(y, unit.matmul(xq, wq.t().contiguous()) + lin.bias)
    assert torch.equal(x.grad, unit.matmul(gq, wq))
    assert torch.equal(lin.weight.grad, unit.matmul(gq.t().contiguous(), xq))


FP16_MAC = {"mode": "mac", "acc": "fp16", "chunk": 8, "chunk_acc": "fp32"}


def test_mac_mode_convolutions_are_the_mac_s():
    """conv2d through the MAC's patches: MAC.conv2d's bits forward, the swapped layer's weight gradient
    (the same products in the same order); a transposed convolution is MAC.conv2d of the zero-inserted,
    padded input with the flipped, swapped kernel."""
    torch.manual_seed(9)
    unit = lowprec.MAC(acc="fp16", chunk=8, chunk_acc="fp32")
    conv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    x = torch.randn(2, 4, 7, 7)
    spec = {"conv": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "grad": "fp8_e5m2", "mac": FP16_MAC}}
    layer = torch.nn.Sequential(copy.deepcopy(conv))
    lnn.swap(layer, {"Conv2d": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "grad": "fp8_e5m2",
                                "mac": FP16_MAC}})
    lnn.emulate(conv, spec)
    xe, xl = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = conv(xe)
    xq, wq = _q(x, "fp8_e4m3fn"), _q(conv.weight, "fp8_e4m3fn")
    assert torch.equal(y, unit.conv2d(xq, wq, 2, 1, 1, 2) + conv.bias.reshape(1, -1, 1, 1))
    g = torch.randn_like(y)
    y.backward(g)
    yl = layer(xl)
    assert torch.equal(yl, y)
    yl.backward(g)
    assert torch.equal(conv.weight.grad, layer[0].weight.grad)
    torch.testing.assert_close(xe.grad, xl.grad, rtol=1e-6, atol=1e-6)  # the overlaps' float32 sums
    t = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    lnn.emulate(t, {"conv_transpose": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "mac": FP16_MAC}})
    xs = torch.randn(2, 4, 5, 5)
    z = torch.zeros(2, 4, 9, 9)
    z[:, :, ::2, ::2] = _q(xs, "fp8_e4m3fn")
    z = F.pad(z, (1, 2, 1, 2))
    wt = _q(t.weight, "fp8_e4m3fn").reshape(2, 2, 3, 3, 3).transpose(1, 2).reshape(6, 2, 3, 3).flip([2, 3])
    assert torch.equal(t(xs), unit.conv2d(z, wt, 1, 0, 1, 2) + t.bias.reshape(1, -1, 1, 1))


@pytest.mark.parametrize("cls, kind, shape", [(torch.nn.Conv3d, "conv", (2, 3, 5, 6, 4)),
                                               (torch.nn.ConvTranspose3d, "conv_transpose", (1, 3, 3, 4, 3)),
                                               (torch.nn.ConvTranspose1d, "conv_transpose", (2, 3, 6))])
def test_mac_mode_convolutions_of_any_dimension(cls, kind, shape):
    """Through a float32 accumulator, forward and backward equal torch's to float32 rounding."""
    torch.manual_seed(10)
    extra = {"stride": 2, "padding": 1, "output_padding": 1} if kind == "conv_transpose" else {"padding": 1, "dilation": 2}
    m = cls(3, 4, 3, **extra)
    x = torch.randn(shape)
    xr, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    plain = copy.deepcopy(m)
    y0 = plain(xr)
    lnn.emulate(m, {kind: {"input": "fp32", "mac": {"mode": "mac", "acc": "fp32"}}})
    y = m(xe)
    g = torch.randn_like(y0)
    y0.backward(g)
    y.backward(g)
    torch.testing.assert_close(y, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xe.grad, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-5)
    assert torch.equal(m.bias.grad, plain.bias.grad)


def test_mac_mode_einsum_is_one_batched_product():
    torch.manual_seed(11)
    q, k = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 6, 5)
    unit = lowprec.MAC(acc="fp16", chunk=8, chunk_acc="fp32")
    with lnn.emulating({"matmul": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "mac": FP16_MAC}}):
        s = torch.einsum("bhqd,bhkd->bhqk", q, k)
    qq, kq = _q(q, "fp8_e4m3fn"), _q(k, "fp8_e4m3fn")
    expected = torch.stack([unit.matmul(a, b.t().contiguous()) for a, b in zip(qq.reshape(6, 4, 5), kq.reshape(6, 6, 5))])
    assert torch.equal(s, expected.reshape(2, 3, 4, 6))


def _r(t, fmt="bf16"):
    return torch.from_numpy(lowprec.quantize(t.numpy(), fmt))


def test_vector_ops_round_every_step():
    """Each vector op against its documented steps, written out with lowprec.quantize."""
    torch.manual_seed(6)
    x = torch.randn(3, 10) * 3
    w, b = torch.randn(10), torch.randn(10)
    spec = {k: {"format": "bf16"} for k in VECTOR}
    with lnn.emulating(spec):
        sm = torch.softmax(x, -1)
        ln = F.layer_norm(x, (10,), w, b, 1e-5)
        rms = F.rms_norm(x, (10,), w, 1e-6)
        ge = F.gelu(x)
        gt = F.gelu(x, approximate="tanh")
        si = F.silu(x)
    r = _r
    xr = r(x)
    e = r(torch.exp(r(xr - xr.amax(-1, keepdim=True))))
    assert torch.equal(sm, r(e / r(e.sum(-1, keepdim=True))))
    d = r(xr - r(xr.mean(-1, keepdim=True)))
    n = r(d * r(torch.rsqrt(r(r(d * d).mean(-1, keepdim=True)) + 1e-5)))
    assert torch.equal(ln, r(r(n * w) + b))
    assert torch.equal(rms, r(r(xr * r(torch.rsqrt(r(r(xr * xr).mean(-1, keepdim=True)) + 1e-6))) * w))
    assert torch.equal(ge, r(xr * r(0.5 * (1 + torch.erf(xr * (1 / 2 ** 0.5))))))
    t = r(torch.tanh((2 / np.pi) ** 0.5 * (xr + 0.044715 * xr * xr * xr)))
    assert torch.equal(gt, r(xr * r(0.5 * (1 + t))))
    assert torch.equal(si, r(xr * r(torch.sigmoid(xr))))
    assert not torch.equal(sm, torch.softmax(x, -1))


def test_module_patterns_override_op_kinds():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
    spec = {"linear": {"input": "fp8_e4m3fn"}, "1": {"linear": None}}
    lnn.emulate(model, spec)
    x = torch.randn(2, 8)
    y = model(x)
    hidden = F.linear(_q(x, "fp8_e4m3fn"), model[0].weight, model[0].bias)
    assert torch.equal(y, F.linear(hidden, model[1].weight, model[1].bias))
    em = lnn.emulation(model)
    assert em.emulated == {("0", "linear"): 1}


def test_unemulate_restores_the_model():
    torch.manual_seed(7)
    model = _mlp()
    x = torch.randn(4, 16)
    before = model(x)
    lnn.emulate(model, FP8)
    assert not torch.equal(_quiet(model, x), before)
    lnn.unemulate(model)
    assert torch.equal(model(x), before)
    with pytest.raises(ValueError, match="not emulated"):
        lnn.unemulate(model)


def test_emulating_outside_modules():
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    with lnn.emulating({"matmul": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "output": "bf16"}}) as em:
        y = a @ b
    assert torch.equal(y, _r(_q(a, "fp8_e4m3fn") @ _q(b, "fp8_e4m3fn")))
    assert em.emulated == {("", "matmul"): 1}
    assert torch.equal(a @ b, torch.matmul(a, b))  # the mode left with the block


# -- bad input --------------------------------------------------------------------------------------------

def test_bad_specs_name_the_key_and_the_allowed_values():
    m = torch.nn.Linear(4, 4)
    with pytest.raises(ValueError, match=r"spec\['linear'\]: unknown settings \['format'\]; allowed: input"):
        lnn.emulate(m, {"linear": {"format": "bf16"}})
    with pytest.raises(ValueError, match=r"spec\['softmax'\]: format: "):
        lnn.emulate(m, {"softmax": {"format": "fp9"}})
    with pytest.raises(ValueError, match=r"spec\['enc\.\*'\]: unknown op kinds \['lineer'\]; op kinds: linear"):
        lnn.emulate(m, {"enc.*": {"lineer": {}}})
    with pytest.raises(ValueError, match=r"'Linear' is not an op kind .* needs a dict of op kinds"):
        lnn.emulate(m, {"Linear": "fp8_e4m3fn"})
    with pytest.raises(ValueError, match=r"spec\['attention'\]: mode must be one of 'decomposed', 'fused'"):
        lnn.emulate(m, {"attention": {"mode": "flash"}})
    with pytest.raises(ValueError, match=r"spec\['linear'\]\.wgrad: unknown settings \['weight'\]"):
        lnn.emulate(m, {"linear": {"wgrad": {"weight": "bf16"}}})
    with pytest.raises(ValueError, match="fitted per forward pass"):
        lnn.emulate(m, {"linear": {"weight": "ternary"}})
    assert not hasattr(m, "_lowprec_emulation")


def test_already_emulated_and_unused_keys():
    m = torch.nn.Sequential(torch.nn.Linear(4, 4))
    lnn.emulate(m, {"linear": {"input": "bf16"}, "softmax": {"format": "bf16"}})
    with pytest.raises(ValueError, match="already emulated"):
        lnn.emulate(m, {})
    with pytest.warns(UserWarning, match=r"matched no op the model ran: \['softmax'\]"):
        m(torch.randn(2, 4))
    strict = lnn.emulate(torch.nn.Sequential(torch.nn.Linear(4, 4)), {"conv": {"input": "bf16"}}, strict=True)
    with pytest.raises(ValueError, match=r"matched no op the model ran: \['conv'\]"):
        strict(torch.randn(2, 4))


def test_formats_an_op_cannot_take_name_the_op_and_module():
    model = torch.nn.Sequential(torch.nn.Linear(1, 4))
    lnn.emulate(model, {"linear": {"input": "mxfp8_e4m3"}})
    with pytest.raises(ValueError, match=r"linear in module '0': block format mxfp8_e4m3 along a reduction of 1"):
        model(torch.randn(3, 1))
    lstm = lnn.emulate(torch.nn.LSTM(4, 3), {"linear": {"input": "bf16"}})
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 4), [5, 3])
    with pytest.raises(ValueError, match="lstm in module '': packed sequences are not emulated"):
        lstm(packed)
    with lnn.emulating({"matmul": {"input": "bf16"}}):
        with pytest.raises(ValueError, match="einsum with 3 operands"):
            torch.einsum("ij,jk,kl->il", torch.randn(2, 2), torch.randn(2, 2), torch.randn(2, 2))
    with lnn.emulating({"matmul": {"input": "bf16", "mac": {"mode": "mac", "acc": "fp32"}}}):
        with pytest.raises(ValueError, match="matmul in module '': mac mode runs einsum without ellipses"):
            torch.einsum("...j,jk->...k", torch.randn(2, 2), torch.randn(2, 2))
    conv = lnn.emulate(torch.nn.Conv2d(2, 2, 2, padding="same"), {"conv": {"input": "bf16", "mac": {"mode": "mac"}}})
    with pytest.raises(ValueError, match="conv in module '': mac mode: padding='same' pads unevenly"):
        conv(torch.randn(1, 2, 4, 4))
