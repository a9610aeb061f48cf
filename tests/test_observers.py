"""Calibration observers against numpy, torch.ao and direct transcriptions of the published rules."""

import math

import numpy as np
import pytest

import lowprec
from lowprec.observers import (KLObserver, MinMaxObserver, MovingAverageMinMaxObserver, MSEObserver,
                               PercentileObserver, kl_threshold)

RNG = np.random.default_rng(17)
BATCHES = [RNG.standard_normal(3000) * s + m for s, m in ((1.0, 0.3), (2.0, -0.1), (0.5, 1.0))]


@pytest.mark.parametrize("symmetric, signed", [(True, True), (False, True), (False, False), (True, False)])
def test_min_max_matches_numpy_and_torch_ao(symmetric, signed):
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import MinMaxObserver as TorchMinMax

    obs = MinMaxObserver()
    theirs = TorchMinMax(dtype=torch.qint8 if signed else torch.quint8,
                         qscheme=torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine)
    for b in BATCHES:
        obs.update(b)
        theirs(torch.from_numpy(b.astype(np.float32)))
    allx = np.concatenate(BATCHES)
    assert obs.min == allx.min() and obs.max == allx.max()
    fmt = obs.format(8, signed=signed, symmetric=symmetric)
    scale, zp = theirs.calculate_qparams()
    assert fmt.scale == pytest.approx(float(scale), rel=1e-6)
    assert fmt.zero_point == int(zp)


def test_per_channel_min_max_and_moving_average():
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import MovingAverageMinMaxObserver as TorchMA

    w = RNG.standard_normal((4, 50))
    obs = MinMaxObserver(axis=0).update(w)
    np.testing.assert_array_equal(obs.min, w.min(axis=1))
    fmt = obs.format(8)
    assert fmt.scale.shape == (4,) and fmt.axis == 0
    q = lowprec.quantize(w, fmt)
    assert np.abs(q - w).max() <= fmt.scale.max() / 2 + 1e-12
    ma, theirs = MovingAverageMinMaxObserver(0.1), TorchMA(averaging_constant=0.1)
    for b in BATCHES:
        ma.update(b)
        theirs(torch.from_numpy(b.astype(np.float64)))
    assert float(ma.min) == pytest.approx(float(theirs.min_val), rel=1e-6)
    assert float(ma.max) == pytest.approx(float(theirs.max_val), rel=1e-6)


def test_percentile_is_numpys():
    obs = PercentileObserver(99.9)
    for b in BATCHES:
        obs.update(b)
    c = np.percentile(np.abs(np.concatenate(BATCHES)), 99.9)
    assert obs.threshold() == c
    assert obs.format(8).scale == pytest.approx(c / 127.5, rel=1e-15)


def test_mse_search_is_the_direct_one():
    obs = MSEObserver(candidates=40, bits=4)
    for b in BATCHES:
        obs.update(b)
    a = np.abs(np.concatenate(BATCHES))
    best = None
    for k in range(1, 41):  # the transcription: quantize to [-c, c] with 16 levels, mean squared error
        c = a.max() * k / 40
        scale = c / 7.5
        q = np.clip(np.round(a / scale), -8, 7) * scale
        err = np.mean((q - a) ** 2)
        if best is None or err < best[1]:
            best = (c, err)
    assert obs.threshold() == pytest.approx(best[0], rel=1e-15)


def _kl_transcription(data, bins=2048, levels=128):
    """The GTC 2017 slides' pseudocode, loop by loop."""
    hist, edges = np.histogram(data, bins=bins, range=(0, data.max()))
    width = edges[1] - edges[0]
    divergence = {}
    for i in range(levels, bins):
        p = [float(v) for v in hist[:i]]
        p[i - 1] += float(sum(hist[i:]))
        n = i // levels
        q = [0.0] * i
        for g in range(levels):
            lo, hi = g * n, (g + 1) * n if g < levels - 1 else i
            chunk = hist[lo:hi]
            nonzero = sum(1 for v in chunk if v > 0)
            for j in range(lo, hi):
                q[j] = float(sum(chunk)) / nonzero if hist[j] > 0 else 0.0
        if any(pj > 0 and qj == 0 for pj, qj in zip(p, q)):
            continue
        sp, sq = sum(p), sum(q)
        divergence[i] = sum((pj / sp) * math.log((pj / sp) / (qj / sq)) for pj, qj in zip(p, q) if pj > 0)
    m = min(divergence, key=divergence.get)
    return (m + 0.5) * width


def test_kl_picks_the_transcriptions_threshold():
    data = np.abs(RNG.laplace(size=20000))
    expected = _kl_transcription(data, bins=512, levels=32)
    assert kl_threshold(data, bins=512, levels=32) == pytest.approx(expected, rel=1e-12)
    obs = KLObserver(bins=512, levels=32).update(data)
    assert obs.threshold() == pytest.approx(expected, rel=1e-12)
    assert obs.threshold() < 0.9 * data.max()  # clips the sparse tail of a Laplace distribution


def test_observers_take_torch_and_keep_a_bounded_sample():
    torch = pytest.importorskip("torch")
    obs = PercentileObserver(50, max_samples=1000, seed=1)
    for _ in range(5):
        obs.update(torch.randn(600))
    assert obs.magnitudes.size == 1000
    assert 0.5 < obs.threshold() < 0.9  # the median of |N(0,1)| is 0.674


@pytest.mark.parametrize("obs", [MinMaxObserver(), MovingAverageMinMaxObserver(), PercentileObserver(),
                                 MSEObserver(), KLObserver()])
def test_asking_before_data_and_bad_batches(obs):
    with pytest.raises(ValueError, match="seen no data"):
        obs.format(8)
    with pytest.raises(ValueError, match="NaN"):
        obs.update(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="empty"):
        obs.update(np.zeros(0))


def test_bad_observer_parameters():
    with pytest.raises(ValueError, match="averaging_constant"):
        MovingAverageMinMaxObserver(0.0)
    with pytest.raises(ValueError, match="percentile"):
        PercentileObserver(0)
    with pytest.raises(ValueError, match="channels"):
        MinMaxObserver(axis=0).update(np.ones((3, 2))).update(np.ones((4, 2)))
    with pytest.raises(ValueError, match="levels"):
        kl_threshold(np.ones(10), bins=16, levels=32)
