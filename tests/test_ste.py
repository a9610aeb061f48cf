"""Straight-through quantizers: forward values and the papers' gradients on hand-worked tensors."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lowprec  # noqa: E402
from lowprec import ste  # noqa: E402


def _grad(fn, *tensors):
    out = fn(*tensors)
    out.backward(torch.ones_like(out))
    return out.detach(), [t.grad for t in tensors]


def test_ste_passes_the_gradient_and_clipped_zeroes_it_outside():
    x = torch.tensor([-1000.0, -3.3, 0.1, 2.7, 500.0], requires_grad=True)
    out, (g,) = _grad(lambda t: ste.quantize(t, "fp4_e2m1fn"), x)
    assert out.tolist() == lowprec.quantize(x.detach(), "fp4_e2m1fn").tolist()
    assert g.tolist() == [1, 1, 1, 1, 1]
    x.grad = None
    _, (g,) = _grad(lambda t: ste.quantize(t, "fp4_e2m1fn", estimator="clipped"), x)
    assert g.tolist() == [0, 1, 1, 1, 0]  # fp4 range [-6, 6]
    with pytest.raises(ValueError, match="estimator"):
        ste.quantize(x, "fp16", estimator="hard")


def test_gradient_quantizer_rounds_only_the_gradient():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = ste.quantize_grad(x, "fp8_e5m2")
    assert torch.equal(y.detach(), x.detach())
    y.backward(torch.tensor([0.3, 1000.0]))
    assert x.grad.tolist() == lowprec.quantize(np.array([0.3, 1000.0], np.float32), "fp8_e5m2").tolist()


def test_pact_gradients_are_the_papers():
    x = torch.tensor([-1.0, 0.5, 1.5, 3.0], requires_grad=True)
    alpha = torch.tensor(2.0, requires_grad=True)
    out, (gx, ga) = _grad(lambda a, b: ste.pact(a, b, 2), x, alpha)
    assert out.tolist() == pytest.approx([0.0, 2 / 3, 4 / 3, 2.0])  # 2 bits on [0, 2]: steps of 2/3
    assert gx.tolist() == [0, 1, 1, 0] and ga.item() == 1.0  # only x = 3 >= alpha


def test_lsq_gradients_are_the_papers():
    v = torch.tensor([-10.0, -0.74, 0.3, 1.26, 9.0], requires_grad=True)
    s = torch.tensor(0.5, requires_grad=True)
    out, (gv, gs) = _grad(lambda a, b: ste.lsq(a, b, 3), v, s)  # Qn = 4, Qp = 3
    r = [-20.0, -1.48, 0.6, 2.52, 18.0]
    assert out.tolist() == pytest.approx([-2.0, -0.5, 0.5, 1.5, 1.5])
    assert gv.tolist() == [0, 1, 1, 1, 0]
    expected = (-4 + (round(r[1]) - r[1]) + (round(r[2]) - r[2]) + (round(r[3]) - r[3]) + 3) / math.sqrt(5 * 3)
    assert gs.item() == pytest.approx(expected, rel=1e-6)


def test_sign_and_xnor_gradients():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.7, 3.0], requires_grad=True)
    out, (g,) = _grad(ste.sign, x)
    assert out.tolist() == [-1, -1, 1, 1, 1] and g.tolist() == [0, 1, 1, 1, 0]
    w = torch.tensor([[0.5, -1.5], [2.0, -0.25]], requires_grad=True)
    out, (g,) = _grad(lambda t: ste.xnor_sign(t, axis=0), w)
    assert out.tolist() == [[1.0, -1.0], [1.125, -1.125]]  # alpha per row: 1.0, 1.125
    assert g.tolist() == [[0.5 + 1.0, 0.5 + 0.0], [0.5 + 0.0, 0.5 + 1.125]]  # 1/n + alpha * 1{|w| <= 1}


def test_twn_and_ttq():
    w = torch.tensor([0.9, -0.05, 0.3, -1.2], requires_grad=True)
    out, (g,) = _grad(ste.twn, w)
    fmt = lowprec.fit_twn(w.detach().double().numpy())
    assert out.tolist() == pytest.approx(lowprec.quantize(w.detach().double().numpy(), fmt).tolist())
    assert g.tolist() == [1, 1, 1, 1]
    w = torch.tensor([0.9, -0.05, 0.3, -1.2], requires_grad=True)
    wp, wn = torch.tensor(1.5, requires_grad=True), torch.tensor(0.5, requires_grad=True)
    out = ste.ttq(w, wp, wn, t=0.2)  # delta = 0.24
    assert out.tolist() == [1.5, 0.0, 1.5, -0.5]
    out.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert wp.grad.item() == 4.0 and wn.grad.item() == 4.0  # sums over I_p and I_n (eq. 6)
    assert w.grad.tolist() == [1.5, 2.0, 4.5, 2.0]  # W_p g, g, W_p g, W_n g (eq. 7)


def test_dorefa():
    w = torch.tensor([0.1, -0.4, 0.8, -2.0], requires_grad=True)
    q = ste.dorefa_weight(w, 2)
    t = torch.tanh(w.detach())
    r = t / (2 * t.abs().max()) + 0.5
    assert q.tolist() == pytest.approx((2 * torch.round(r * 3) / 3 - 1).tolist())
    assert ste.dorefa_activation(torch.tensor([-1.0, 0.2, 0.5, 2.0]), 1).tolist() == [0.0, 0.0, 0.0, 1.0]
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    ste.dorefa_grad(x, 4, seed=3).backward(torch.tensor([0.1, -0.7, 0.35]))
    levels = 2 * 0.7 * (torch.arange(16) / 15 - 0.5)
    assert all(min(abs(v - levels)) < 1e-6 for v in x.grad)


def test_gradcheck_where_smooth():
    w = torch.tensor([0.3, -0.2, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ste.quantize(t, "fp64"), (w,))


def test_channels_last_activations_keep_their_layout():
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    q = ste.quantize(x, "fp8_e4m3fn")
    assert q.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(q, lowprec.quantize(x.contiguous(), "fp8_e4m3fn"))
