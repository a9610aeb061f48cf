"""The Triton MAC engines (lowprec.kernels.triton_mac) give the C engines' bits and counts: every
rounding mode, product rounding, chunks with their own accumulator, the float32 and float64 working
types, specials, stochastic draws across calls, matrix units (also in tests/test_matrix_units.py,
against the oracle and the recordings); on CPU operands through Triton's interpreter (every CI run),
on CUDA tensors where a GPU is present."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import need_triton

torch = pytest.importorskip("torch")
need_triton()  # skipped without triton, except under CI

import lowprec  # noqa: E402
from lowprec import MAC  # noqa: E402
from lowprec.testing import strategies as lst  # noqa: E402

from helpers import assert_same  # noqa: E402

RNG = np.random.default_rng(61)
CUDA = torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])


def _operands(fmt="fp8_e4m3fn", shape=(5, 23, 9), scale=4.0):
    m, k, n = shape
    a = lowprec.quantize((RNG.standard_normal((m, k)) * scale).astype(np.float32), fmt)
    b = lowprec.quantize(RNG.standard_normal((k, n)).astype(np.float32), fmt)
    return a, b


def _both(kwargs, a, b, device="cpu", calls=1):
    """(C results, Triton results, C counts, Triton counts) of `calls` matmuls by one MAC each."""
    host, dev = MAC(backend="c", **kwargs), MAC(backend="triton", **kwargs)
    ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
    expected = [host.matmul(a, b) for _ in range(calls)]
    got = [dev.matmul(ta, tb).cpu().numpy() for _ in range(calls)]
    return expected, got, host.counts, dev.counts


CONFIGS = [dict(acc="fp16"), dict(acc="fp16", chunk=4, chunk_acc="fp32"), dict(acc="bf16", mul="fp16", chunk=5),
           dict(acc="fp8_e5m2", mul="bf16", chunk=3, chunk_acc="fp16", out="bf16"), dict(acc="fp32"),
           dict(acc="fp32", chunk=7), dict(acc="e6m5", out="fp16")]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", lowprec.ROUNDING_MODES)
def test_every_mode_and_configuration(mode, device):
    """fp8 operands (the float32 working type; stochastic: float64), every configuration: the C
    engine's bits, over three calls (stochastic draws continue from call to call), and its counts."""
    a, b = _operands()
    for kwargs in CONFIGS:
        expected, got, c_counts, t_counts = _both(dict(kwargs, rounding=mode, seed=5), a, b, device, calls=2)
        for e, g in zip(expected, got):
            assert_same(g, e, f"{kwargs} {mode}")
        assert c_counts == t_counts


@pytest.mark.parametrize("device", DEVICES)
def test_float64_working_type_specials_and_sums(device):
    """Operands of 20 significant bits (the float64 working type), Inf and NaN operands, overflow
    into Inf, tiny sums below the accumulator's range, -0 under rounding down; sums (one row of B
    standing for all) and 1-D operands."""
    a = lowprec.quantize(RNG.standard_normal((6, 17)).astype(np.float32) * 1e3, lowprec.FloatFormat(8, 19))
    b = lowprec.quantize(RNG.standard_normal((17, 5)).astype(np.float32), lowprec.FloatFormat(8, 19))
    special_a = a.copy()
    special_a[0, 3], special_a[1, 0], special_a[2, :] = np.inf, np.nan, 1e-30
    special_a[3, :] = 6e4  # overflows fp16
    for mode in ("nearest_even", "down", "up", "stochastic"):
        for kwargs in (dict(acc="fp16"), dict(acc="bf16", chunk=4, chunk_acc="fp32"), dict(acc="fp16", mul="fp16")):
            for x in (a, special_a):
                expected, got, _, _ = _both(dict(kwargs, rounding=mode, seed=2), x, b, device)
                assert_same(got[0], expected[0], f"{kwargs} {mode}")
    c = lowprec.quantize(RNG.standard_normal((6, 5)) * 100, "fp32")
    for kwargs in (dict(acc="fp32"), dict(acc="bf16", chunk=4, chunk_acc="fp32"), dict(acc="fp16", mul="fp16")):
        fmt = kwargs.get("chunk_acc", kwargs["acc"]) if "chunk" in kwargs else kwargs["acc"]
        start = lowprec.quantize(c, fmt)
        assert_same(MAC(backend="triton", **kwargs).matmul(torch.from_numpy(a).to(device), torch.from_numpy(b).to(device),
                                                           torch.from_numpy(start)).cpu().numpy(),
                    MAC(**kwargs).matmul(a, b, start), f"c= {kwargs}")
    zeros = np.zeros((2, 4), np.float32)
    assert_same(MAC(acc="fp16", rounding="down", backend="triton").matmul(zeros, zeros.T),
                MAC(acc="fp16", rounding="down").matmul(zeros, zeros.T), "-0 under down")
    x = torch.from_numpy(a).to(device)
    assert_same(MAC(acc="fp16", chunk=4, backend="triton").sum(x).cpu().numpy(),
                MAC(acc="fp16", chunk=4).sum(a), "sum")
    assert_same(MAC(acc="bf16", backend="triton").dot(x[0], x[1]).cpu().numpy(), MAC(acc="bf16").dot(a[0], a[1]),
                "dot")


def test_convolution_and_rbits():
    x = lowprec.quantize(RNG.standard_normal((2, 3, 6, 6)).astype(np.float32), "fp8_e4m3fn")
    w = lowprec.quantize(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "fp8_e4m3fn")
    for kwargs in (dict(acc="fp16", chunk=9), dict(acc="bf16", rounding="stochastic", seed=4, rbits=7)):
        assert_same(MAC(backend="triton", **kwargs).conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy(),
                    MAC(**kwargs).conv2d(x, w, padding=1), f"conv2d {kwargs}")


@settings(max_examples=12, deadline=None)  # the interpreter's ~1 s an example
@given(lst.formats(named=False, max_exp_bits=8, max_man_bits=10, max_fixed_bits=2).filter(
    lambda f: isinstance(f, lowprec.FloatFormat)), st.sampled_from(lowprec.ROUNDING_MODES),
       st.sampled_from([None, 1, 3, 8]), st.integers(1, 12))
def test_generated_accumulators(acc, mode, chunk, k):
    a, b = _operands(shape=(3, k, 4), scale=2.0 ** RNG.integers(-6, 6))
    expected, got, _, _ = _both(dict(acc=acc, chunk=chunk, rounding=mode, seed=9), a, b)
    assert_same(got[0], expected[0], f"{acc} {mode} chunk={chunk} k={k}")


def test_backend_choice_and_refusals():
    with pytest.raises(ValueError, match="backend must be None .automatic., 'c' or 'triton'; got 'cuda'"):
        MAC(acc="fp16", backend="cuda")
    mac = MAC(acc="fp16")
    mac._device = None
    assert mac._engine() == "c"
    mac._device = torch.device("cuda", 0)
    assert mac._engine() == "triton"
    assert MAC(acc="fp16", backend="c")._engine() == "c"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arithmetic", [{"acc": "fp16", "chunk": 8, "chunk_acc": "fp32"},
                                        {"unit": "h100_fp8", "chunk": 32, "chunk_acc": "fp32"}], ids=["fp16", "h100"])
def test_layers_in_mac_mode_forward_and_backward(arithmetic, device):
    """A linear and a convolutional layer in mac mode (fp8 operands; fp16 chunked accumulation, or a
    modelled H100 fp8 unit with promotion): the Triton engine's outputs, gradients and counts are the
    C engine's (on a GPU: the tensors' device)."""
    from lowprec import nn as lnn

    def run(backend):
        torch.manual_seed(3)
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(48, 4))
        mac = dict(arithmetic, mode="mac", backend=backend)
        lnn.swap(net, {k: {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2", "mac": dict(mac)}
                       for k in ("Conv2d", "Linear")})
        net = net.to(device if backend == "triton" else "cpu")
        x = torch.randn(2, 2, 4, 4).to(next(net.parameters()).device)
        y = net(x)
        y.square().sum().backward()
        return [y.detach().cpu()] + [p.grad.cpu() for p in net.parameters()], [m.q_mac.counts for m in (net[0], net[2])]

    (expected, c_counts), (got, t_counts) = run("c"), run("triton")
    for e, g in zip(expected, got):
        assert_same(g.numpy(), e.numpy(), "layer outputs and gradients")
    assert c_counts == t_counts
