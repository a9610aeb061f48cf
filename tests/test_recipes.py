"""Training recipes (lowprec.nn.recipes) and their parts against hand-computed cases: delayed and
current scaling (amax history, margin, scale choice), 2-D blocks, re-blocking, the random Hadamard
transform."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import lowprec  # noqa: E402
import lowprec.nn as lnn  # noqa: E402
from lowprec import BlockFormat  # noqa: E402
from lowprec.nn.gemm import hadamard, hadamard_matrix  # noqa: E402
from lowprec.nn.scaling import Scaling  # noqa: E402


def _q(t, fmt, **kw):
    return torch.from_numpy(lowprec.quantize(t.detach().numpy(), fmt, **kw))


def _cast(x, scale, fmt="fp8_e4m3fn"):
    """The scaled cast written out: round(x * s) to the saturating format, times 1/s (float32)."""
    sat = lowprec.FloatFormat(exp_bits=4, man_bits=3, specials="fn", overflow="saturate") if fmt == "fp8_e4m3fn" \
        else lowprec.FloatFormat(exp_bits=5, man_bits=2, specials="ieee", overflow="saturate")
    s = torch.tensor(scale, dtype=torch.float32)
    return _q(x * s, sat) * (1.0 / s)


def test_delayed_scaling_follows_its_amax_history():
    """history 2, amaxes 2, 8, 4: the casts use scales 1 (none recorded), 448/2, 448/max(2, 8); then
    448/max(8, 4) ('max') or 448/4 ('most_recent')."""
    xs = [torch.tensor([2.0, -1.0, 0.3]), torch.tensor([-8.0, 0.1, 5.0]), torch.tensor([4.0, 3.3, -0.02])]
    for algo, last in (("max", 448 / 8), ("most_recent", 448 / 4)):
        sc = Scaling("fp8_e4m3fn", "delayed", history=2, algo=algo)
        outs = [sc.round(x, -1, "k") for x in xs]
        for out, x, scale in zip(outs, xs, (1.0, 448 / 2, 448 / 8)):
            assert torch.equal(out, _cast(x, scale))
        assert float(sc.state["k"]["scale"]) == pytest.approx(last, rel=1e-7)
        assert sc.state["k"]["amaxes"] == [8.0, 4.0]


def test_delayed_scaling_keeps_its_scale_through_a_zero_amax_and_applies_the_margin():
    sc = Scaling("fp8_e4m3fn", "delayed", history=1, margin=2)
    sc.round(torch.tensor([7.0]), -1, "k")
    assert float(sc.state["k"]["scale"]) == pytest.approx(448 / 7 / 4, rel=1e-7)
    sc.round(torch.zeros(3), -1, "k")
    assert float(sc.state["k"]["scale"]) == pytest.approx(448 / 7 / 4, rel=1e-7)


def test_current_and_row_scaling():
    x = torch.tensor([[1.0, -3.0, 0.25], [100.0, 2.0, -0.5]])
    cur = Scaling("fp8_e4m3fn", "current", margin=1)
    assert torch.equal(cur.round(x, -1, None), _cast(x, 448 / 100 / 2))
    row = Scaling("fp8_e4m3fn", "row")
    expected = torch.cat([_cast(x[:1], 448 / 3), _cast(x[1:], 448 / 100)])
    assert torch.equal(row.round(x, -1, None), expected)
    pow2 = Scaling("fp8_e4m3fn", "current", power_of_two=True)
    assert torch.equal(pow2.round(x, -1, None), _cast(x, 4.0))  # 448/100 = 4.48 -> 4


def test_te_current_recipe_in_a_linear_layer():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True) * 10
    x.retain_grad()
    lnn.emulate(lin, recipe="te_current")
    y = lin(x)
    g = torch.randn(3, 4) * 1e-3
    y.backward(g)
    xa, wa, ga = x.detach().abs().max(), lin.weight.detach().abs().max(), g.abs().max()
    xq, wq = _cast(x.detach(), 448 / float(xa)), _cast(lin.weight.detach(), 448 / float(wa))
    gq = _cast(g, float(torch.tensor(57344.0) / ga), "fp8_e5m2")
    assert torch.equal(y, F.linear(xq, wq, lin.bias))
    assert torch.equal(x.grad, gq.mm(wq))
    assert torch.equal(lin.weight.grad, gq.t().mm(xq))


def test_two_dimensional_blocks_in_quantize():
    """Each r x c tile scaled as one block of r*c (partial tiles zero-padded), along the two axes given."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 10, 12)) * 2.0 ** rng.integers(-8, 8, (3, 10, 12))).astype(np.float32)
    tile = BlockFormat("fp8_e4m3fn", block=(4, 8), scale="fp32")
    flat = BlockFormat("fp8_e4m3fn", block=32, scale="fp32")
    got = lowprec.quantize(x, tile, axis=(2, 1))  # tiles of 4 along axis 2 and 8 along axis 1
    expected = np.empty_like(x)
    for b in range(3):
        for j in range(0, 12, 4):
            for i in range(0, 10, 8):
                t = x[b, i:i + 8, j:j + 4].T
                row = np.zeros(32, np.float32)
                row[:t.size] = t.reshape(-1)
                expected[b, i:i + 8, j:j + 4] = lowprec.quantize(row, flat)[:t.size].reshape(t.shape).T
    assert np.array_equal(got, expected)
    assert torch.equal(lowprec.quantize(torch.from_numpy(x), tile, axis=(2, 1)), torch.from_numpy(expected))
    assert tile.bits == 8 + 32 / 32
    with pytest.raises(ValueError, match=r"needs axis=\(a0, a1\)"):
        lowprec.quantize(x, tile)
    with pytest.raises(ValueError, match="two distinct axes"):
        lowprec.quantize(x, tile, axis=(1, 1))
    with pytest.raises(ValueError, match="encode takes blocks along one axis"):
        lowprec.encode(x, tile, axis=(1, 2))
    with pytest.raises(ValueError, match="block must be an int or a pair"):
        BlockFormat("fp8_e4m3fn", block=(2, 2, 2))


def test_deepseek_blockwise_tiles():
    """Weights in 128 x 128 blocks, activations in 1 x 128 along k, and in wgrad 128 x 1 (re-formed)."""
    torch.manual_seed(2)
    lin = torch.nn.Linear(256, 128, bias=False)
    x = (torch.randn(256, 256) * 2.0 ** torch.randint(-5, 5, (256, 1))).requires_grad_()
    g = torch.randn(256, 128) * 2.0 ** torch.randint(-5, 5, (1, 128))
    lnn.emulate(lin, recipe="deepseek_blockwise")
    y = lin(x)
    y.backward(g)
    rows = BlockFormat("fp8_e4m3fn", block=128, scale="fp32")
    blocks = BlockFormat("fp8_e4m3fn", block=(128, 128), scale="fp32")
    wq = _q(lin.weight, blocks, axis=(0, 1))
    assert torch.equal(y, _q(x, rows, axis=-1).mm(wq.t()))
    assert torch.equal(x.grad, _q(g, rows, axis=-1).mm(wq))
    assert torch.equal(lin.weight.grad, _q(g, rows, axis=0).t().mm(_q(x, rows, axis=0)))


def test_hadamard_transform_is_orthogonal_and_cancels_in_wgrad():
    for size in (2, 16, 64):
        h = hadamard_matrix(size, seed=3)
        torch.testing.assert_close(h @ h.t(), torch.eye(size), rtol=0, atol=1e-6)
        assert set(np.unique(np.abs(h.numpy()) * size ** 0.5).round(6)) == {1.0}
    t = torch.randn(20, 5)
    rotated = hadamard(t, 0, 16, 0)  # 20 rows padded to 32
    assert rotated.shape == (32, 5)
    h = hadamard_matrix(16, 0)
    back = torch.cat([h.t() @ rotated[:16], h.t() @ rotated[16:]])
    torch.testing.assert_close(back[:20], t, rtol=0, atol=1e-5)
    torch.testing.assert_close(back[20:], torch.zeros(12, 5), rtol=0, atol=1e-5)
    # in a layer: the rotated wgrad in float32 is the plain one (to float32 rounding)
    torch.manual_seed(4)
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(20, 8)
    g = torch.randn(20, 4)
    lnn.emulate(lin, {"linear": {"wgrad": {"hadamard": 16}}})
    lin(x).backward(g)
    torch.testing.assert_close(lin.weight.grad, g.t().mm(x), rtol=1e-5, atol=1e-5)


def test_nvfp4_training_recipe():
    """16 x 16 weight blocks, 1 x 16 activations, stochastic gradients, wgrad on Hadamard-rotated
    operands rounded to NVFP4 along the rows."""
    torch.manual_seed(5)
    lin = torch.nn.Linear(32, 16, bias=False)
    x = torch.randn(32, 32, requires_grad=True)
    lnn.emulate(lin, recipe="nvfp4_training")
    y = lin(x)
    nv = lowprec.formats.get("nvfp4")
    w16 = BlockFormat(nv.element, block=(16, 16), scale=nv.scale, tensor_scale=True)
    assert torch.equal(y, _q(x, nv, axis=-1).mm(_q(lin.weight, w16, axis=(0, 1)).t()))
    g = torch.randn(32, 16)
    y.backward(g)
    assert torch.isfinite(lin.weight.grad).all() and torch.isfinite(x.grad).all()
    # stochastic rounding of the gradient: two backward passes differ, the forward does not
    first = lin.weight.grad.clone()
    lin.weight.grad = None
    lin(x).backward(g)
    assert not torch.equal(first, lin.weight.grad)
    # kept modules stay in float32
    model = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.Linear(16, 4))
    lnn.emulate(model, recipe={"name": "nvfp4_training", "keep": ("1",)})
    model(x)
    assert lnn.emulation(model).emulated == {("0", "linear"): 1}


def test_recipe_names_and_bad_input():
    assert lnn.recipes.names() == ["te_delayed", "te_current", "mxfp8", "deepseek_blockwise", "nvfp4_training"]
    for name in lnn.recipes.names():
        assert "linear" in lnn.recipes.get(name)
    with pytest.raises(ValueError, match="unknown recipe 'fp8'; recipes: te_delayed, te_current, mxfp8"):
        lnn.emulate(torch.nn.Linear(2, 2), recipe="fp8")
    with pytest.raises(ValueError, match="recipe 'te_delayed': .*unexpected keyword argument 'tile'"):
        lnn.emulate(torch.nn.Linear(2, 2), recipe={"name": "te_delayed", "tile": 3})
    with pytest.raises(ValueError, match="emulate needs a spec, a recipe or both"):
        lnn.emulate(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="scaling must be one of 'current', 'delayed', 'row'"):
        lnn.emulate(torch.nn.Linear(2, 2), {"linear": {"input": {"format": "fp8_e4m3fn", "scaling": "lazy"}}})
    with pytest.raises(ValueError, match="hadamard must be a power of two"):
        lnn.emulate(torch.nn.Linear(2, 2), {"linear": {"wgrad": {"hadamard": 12}}})
    conv = lnn.emulate(torch.nn.Conv2d(2, 2, 1), {"conv": {"wgrad": {"hadamard": 16}}})
    with pytest.raises(ValueError, match="hadamard applies to linear and matmul"):
        conv(torch.randn(1, 2, 3, 3))
    # a spec beside a recipe overrides its op kinds
    m = lnn.emulate(torch.nn.Linear(4, 4), {"linear": {"input": "bf16"}}, recipe="mxfp8")
    x = torch.randn(2, 4)
    assert torch.equal(m(x), F.linear(_q(x, "bf16"), m.weight, m.bias))
