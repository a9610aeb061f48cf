"""Low-precision training: loss scaling, overflow skips, master copies, stochastic weight updates,
rounded optimizer states."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lowprec  # noqa: E402
from lowprec.optim import LowPrecisionOptimizer  # noqa: E402


def _param(values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))


def test_loss_scaling_keeps_small_gradients_that_fp16_would_flush():
    for scale, expect_moved in ((None, False), (2.0**16, True)):
        p = _param([1.0])
        opt = LowPrecisionOptimizer(torch.optim.SGD([p], lr=1e4), grad="fp16", loss_scale=scale)
        opt.scale_loss((p * 1e-8).sum()).backward()  # gradient 1e-8: below fp16's smallest subnormal
        assert opt.step()
        assert (p.item() != 1.0) == expect_moved


def test_overflow_skips_the_step_and_halves_a_dynamic_scale():
    p = _param([1.0, 2.0])
    opt = LowPrecisionOptimizer(torch.optim.SGD([p], lr=0.1), grad="fp16", init_scale=2.0**16, growth_interval=2)
    opt.scale_loss((p * 10.0).sum()).backward()  # 10 * 65536 overflows fp16
    assert not opt.step() and p.tolist() == [1.0, 2.0] and opt.scale == 2.0**15 and opt.skipped == 1
    for _ in range(2):
        opt.zero_grad()
        opt.scale_loss((p * 0.001).sum()).backward()
        assert opt.step()
    assert opt.scale == 2.0**16  # doubled after growth_interval good steps


def test_master_copy_and_stochastic_rounding_against_swamping():
    lr, steps = 1e-4, 200  # each update 1e-4: below half a bf16 ulp of 1.0 (2**-8)
    runs = {}
    for label, kwargs in {"nearest": dict(master=False), "master": dict(master=True),
                          "stochastic": dict(master=False, weight_rounding="stochastic", seed=3)}.items():
        p = _param(np.ones(1000))
        opt = LowPrecisionOptimizer(torch.optim.SGD([p], lr=lr), weight="bf16", loss_scale=None, **kwargs)
        for _ in range(steps):
            opt.zero_grad()
            opt.scale_loss(-p.sum()).backward()  # gradient -1: every step adds lr
            opt.step()
        runs[label] = (p.detach().double(), opt)
    assert (runs["nearest"][0] == 1.0).all()  # swamped: no update survives rounding
    assert runs["master"][1].masters is not None
    master = next(iter(runs["master"][1].masters.values()))
    assert float(master[0]) == pytest.approx(1 + lr * steps, rel=1e-5)
    assert float(runs["stochastic"][0].mean()) == pytest.approx(1 + lr * steps, rel=2e-3)  # unbiased
    w = runs["stochastic"][0].numpy()
    assert np.array_equal(w, lowprec.quantize(w, "bf16"))  # the weights themselves stay bf16 values


def test_states_are_rounded():
    p = _param([0.3, -1.7])
    opt = LowPrecisionOptimizer(torch.optim.Adam([p], lr=0.01), state="fp8_e5m2", grad="fp16", loss_scale=None)
    (p ** 2).sum().backward()
    opt.step()
    for name in ("exp_avg", "exp_avg_sq"):
        v = opt.optimizer.state[p][name]
        assert torch.equal(v, lowprec.quantize(v, "fp8_e5m2"))


def test_bad_arguments():
    p = _param([1.0])
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        LowPrecisionOptimizer([p])
    with pytest.raises(ValueError, match="loss_scale"):
        LowPrecisionOptimizer(torch.optim.SGD([p], lr=0.1), loss_scale=-1)
    with pytest.raises(ValueError, match="unknown format"):
        LowPrecisionOptimizer(torch.optim.SGD([p], lr=0.1), weight="fp7")
