"""PTQ tools: GPTQ against the paper's per-column update written out, its error below round-to-nearest,
batch-norm folding, bias correction and calibrate's exempt layers."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lowprec  # noqa: E402
from lowprec import nn as lnn  # noqa: E402
from lowprec.nn import ptq  # noqa: E402


def _obs_in_order(W, X, fmt, damp=0.01):
    """The paper's section 3 update, column by column in the given order, with the inverse Hessian of
    the columns left updated by Gaussian elimination (its eq. 3) instead of GPTQ's Cholesky form."""
    W = W.copy()
    H = 2 * X.T @ X
    H += damp * np.mean(np.diag(H)) * np.eye(H.shape[0])
    Hinv = np.linalg.inv(H)
    Q = np.zeros_like(W)
    for q in range(W.shape[1]):
        Q[:, q] = np.asarray(lowprec.quantize(W[:, q], fmt))
        err = (W[:, q] - Q[:, q]) / Hinv[q, q]
        W[:, q:] -= np.outer(err, Hinv[q, q:])
        Hinv = Hinv - np.outer(Hinv[:, q], Hinv[q, :]) / Hinv[q, q]  # remove q from the problem
    return Q


@pytest.mark.parametrize("fmt", ["int4", "fp4_e2m1fn", "int3"])
def test_gptq_is_the_papers_update_and_beats_round_to_nearest(fmt):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((12, 40))
    X = rng.standard_normal((300, 40)) @ rng.standard_normal((40, 40)) * 0.3  # correlated inputs
    Q = ptq.gptq(W, X, fmt, block=16)  # blocks smaller than the columns: the lazy updates matter
    qfmt = ptq._column_format(fmt, W)
    ref = _obs_in_order(W, X, qfmt)
    assert np.mean(Q == ref) > 0.99  # the same rounding decisions (an exact tie may go either way)
    rtn = np.asarray(lowprec.quantize(W, qfmt)) if not fmt.startswith("int") else np.asarray(
        lowprec.quantize(W, lowprec.formats.IntAffineFormat(int(fmt[3:]), qfmt.scale, 0, signed=True, axis=0)))
    err = lambda A: np.linalg.norm(X @ (A - W).T)  # noqa: E731
    assert err(Q) < 0.85 * err(rtn)
    assert np.array_equal(np.asarray(lowprec.quantize(Q[:, 0], qfmt)), Q[:, 0])  # values of the format


def test_gptq_on_a_convolution_and_bad_input():
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(3, 6, 3, padding=1)
    x = [torch.randn(4, 3, 8, 8) for _ in range(3)]
    plain = copy.deepcopy(conv)
    ptq.gptq_layer(conv, x, "int4")
    rtn = copy.deepcopy(plain)
    fmt = ptq._column_format("int4", plain.weight.detach().double().reshape(6, -1).numpy())
    with torch.no_grad():
        w = plain.weight.detach().double().reshape(6, -1).numpy()
        rtn.weight.copy_(torch.from_numpy(np.asarray(lowprec.quantize(w, fmt))).reshape(rtn.weight.shape))
    with torch.no_grad():
        err = lambda m: float(sum(((m(b) - plain(b)) ** 2).sum() for b in x))  # noqa: E731
        assert err(conv) < err(rtn)
    with pytest.raises(ValueError, match="gptq rounds one column at a time: a block-scaled format"):
        ptq.gptq(np.ones((2, 4)), np.ones((3, 4)), "mxfp4_e2m1")
    with pytest.raises(ValueError, match=r"gptq needs weight \(out, in\) and inputs \(n, in\)"):
        ptq.gptq(np.ones((2, 4)), np.ones((3, 5)), "int4")
    with pytest.raises(ValueError, match="batches was empty"):
        ptq.gptq_layer(torch.nn.Linear(2, 2), [], "int4")


def _trained_bn(model, shape):
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(shape) * 2 + 1)  # running statistics away from 0 and 1
    return model.eval()


def test_batch_norm_folding_keeps_the_outputs():
    torch.manual_seed(3)
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 36, 5), torch.nn.BatchNorm1d(5))
    _trained_bn(seq, (8, 3, 8, 8))
    x = torch.randn(6, 3, 8, 8)
    before = seq(x)
    pairs = lnn.fold_batchnorm(seq)
    assert pairs == [("0", "1"), ("4", "5")]
    assert isinstance(seq[1], torch.nn.Identity) and seq[0].bias is not None
    torch.testing.assert_close(seq(x), before, rtol=1e-5, atol=1e-5)
    from sims.resnet import resnet18

    net = _trained_bn(resnet18(num_classes=3, width=4, seed=0), (4, 3, 16, 16))
    x = torch.randn(2, 3, 16, 16)
    before = net(x)
    pairs = lnn.fold_batchnorm(net)
    assert len(pairs) == sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-4)


def test_bias_correction_by_hand():
    """b' = b + (W - Q(W)) E[x]: afterwards the quantized layer's mean output is the float layer's."""
    torch.manual_seed(4)
    lin = torch.nn.Sequential(torch.nn.Linear(8, 3))
    batches = [torch.rand(16, 8) + 0.5 for _ in range(4)]  # inputs of nonzero mean
    plain = copy.deepcopy(lin)
    lnn.swap(lin, {"Linear": {"weight": "int4"}})
    lin[0].q_weight = ptq._column_format("int4", lin[0].weight.detach().double().numpy())
    b0 = lin[0].bias.detach().clone()
    fixes = lnn.correct_bias(lin, batches)
    mean = torch.cat(batches).double().mean(0)
    w = plain[0].weight.detach().double()
    wq = torch.from_numpy(np.asarray(lowprec.quantize(w.numpy(), lin[0].q_weight)))
    expected = b0.double() + (w - wq) @ mean
    torch.testing.assert_close(lin[0].bias.detach().double(), expected, rtol=1e-6, atol=1e-6)
    assert fixes["0"] > 0
    x = torch.cat(batches)
    with torch.no_grad():
        torch.testing.assert_close(lin(x).mean(0), plain(x).mean(0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="correct_bias needs swapped layers with weight formats"):
        lnn.correct_bias(torch.nn.Sequential(torch.nn.Linear(2, 2)), batches)


def test_calibrate_leaves_exempt_layers_plain():
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    batches = [torch.randn(16, 4) for _ in range(2)]
    lnn.calibrate(model, batches, exempt=["0"], bias_correction=True)
    assert type(model[0]) is torch.nn.Linear and type(model[2]).__name__ == "QLinear"
    with pytest.raises(ValueError, match=r"exempt patterns matched no layer: \['head'\]"):
        lnn.calibrate(torch.nn.Sequential(torch.nn.Linear(4, 2)), batches, exempt=["head"])


def test_group_wise_asymmetric_weights_by_hand():
    """(clip(round(w / s) + z, 0, 15) - z) * s with s, z per row and group of 4 (the last group short)."""
    from lowprec.formats import GroupAffineFormat, fit_groupwise
    from lowprec.formats import from_fields, to_fields

    rng = np.random.default_rng(6)
    w = rng.standard_normal((3, 10))
    f = fit_groupwise(w, 4, 4)
    assert f.scale.shape == (3, 3)
    expected = np.empty_like(w)
    for r in range(3):
        for g in range(3):
            seg = w[r, g * 4:(g + 1) * 4]
            lo, hi = min(seg.min(), 0), max(seg.max(), 0)
            s = (hi - lo) / 15
            z = np.clip(np.round(-lo / s), 0, 15)
            assert f.scale[r, g] == s and f.zero_point[r, g] == z
            expected[r, g * 4:(g + 1) * 4] = (np.clip(np.round(seg / s) + z, 0, 15) - z) * s
    got = lowprec.quantize(w, f)
    assert np.array_equal(got, expected)
    codes = lowprec.encode(w, f)
    assert codes.dtype == np.uint8 and codes.max() <= 15 and np.array_equal(lowprec.decode(codes, f), got)
    assert torch.equal(lowprec.quantize(torch.from_numpy(w), f), torch.from_numpy(got))
    back = from_fields(to_fields(f))
    assert isinstance(back, GroupAffineFormat) and np.array_equal(lowprec.quantize(w, back), got)
    conv_w = rng.standard_normal((4, 2, 3, 3))  # a convolution's weight: groups along in * kernel
    cf = fit_groupwise(conv_w, 4, 6)
    assert cf.scale.shape == (4, 3) and lowprec.quantize(conv_w, cf).shape == conv_w.shape
    with pytest.raises(ValueError, match=r"scale has shape \(3, 3\); this tensor needs \(3, 2\)"):
        lowprec.quantize(w[:, :8], f)


def test_group_wise_gptq_and_calibration():
    rng = np.random.default_rng(7)
    W = rng.standard_normal((16, 64))
    X = rng.standard_normal((512, 64)) @ rng.standard_normal((64, 64)) * 0.5
    err = lambda A: np.linalg.norm(X @ (A - W).T)  # noqa: E731
    Q = ptq.gptq(W, X, "int4", group=16)
    assert err(Q) < 0.85 * err(lowprec.quantize(W, lowprec.formats.fit_groupwise(W, 4, 16)))
    for g in range(4):  # each group: at most 16 levels per row
        assert max(len(np.unique(row)) for row in Q[:, g * 16:(g + 1) * 16]) <= 16
    with pytest.raises(ValueError, match="group takes fmt 'int<b>'"):
        ptq.gptq(W, X, "fp4_e2m1fn", group=16)
    model = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    lnn.calibrate(model, [torch.randn(16, 64)], weight_bits=4, weight_group=16)
    assert type(model[0].q_weight).__name__ == "GroupAffineFormat" and model[0].q_weight.scale.shape == (8, 4)
