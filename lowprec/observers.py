"""Calibration observers: they see data in batches (``update(x)``, numpy arrays or torch tensors) and
produce the parameters of an integer-affine format (``format(bits=8, ...)`` -> IntAffineFormat).

- ``MinMaxObserver(axis=None)``: running min and max (per channel along ``axis`` if given).
- ``MovingAverageMinMaxObserver(averaging_constant=0.01)``: the first batch sets min/max, later ones
  move them by c * (batch value - current) (torch.ao's rule).
- ``PercentileObserver(percentile=99.99)``: clips at that percentile of |x| (numpy's linear
  interpolation) over all data seen.
- ``MSEObserver(candidates=100)``: the clipping threshold c among k/candidates * max|x|, k = 1..candidates,
  minimising the mean squared error of quantizing the data seen with range [-c, c] (the smallest c on
  ties).
- ``KLObserver(bins=2048, levels=128)``: TensorRT's entropy calibration (Migacz, "8-bit Inference with
  TensorRT", GTC 2017): a histogram of |x| in ``bins`` bins over [0, max|x|]; for each i in [levels,
  bins], P = the first i bins with the mass beyond added to bin i-1, Q = those i bins merged into
  ``levels`` groups (i // levels bins each, the last group taking the remainder) and each group's mass
  spread evenly over its nonzero bins; the threshold is (m + 0.5) * bin width, as the slides state, for
  the i = m minimising
  KL(P || Q) (sum over P > 0 of P log(P / Q), both normalised; a candidate whose Q is 0 where P is not is
  skipped: its divergence is infinite).

The last three keep the data they see (up to ``max_samples`` values, then a seeded reservoir sample) and
give a symmetric range [-c, c]. Asymmetric formats from min/max observers include 0 in the range
(torch.ao's convention), so that 0 is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .array import adapters as _arrays
from .array import quantize
from .formats import IntAffineFormat

__all__ = ["MinMaxObserver", "MovingAverageMinMaxObserver", "PercentileObserver", "MSEObserver", "KLObserver",
           "kl_threshold"]

_TINY_SCALE = float(np.finfo(np.float32).eps)  # torch.ao's floor on the scale


def _batch(x: Any) -> np.ndarray:
    arr, _ = _arrays.to_numpy(x)
    if not np.isfinite(arr).all():
        raise ValueError("x holds NaN or Inf; observers calibrate on finite data")
    return arr


def _range_format(lo: np.ndarray | float, hi: np.ndarray | float, bits: int, signed: bool, symmetric: bool,
                  narrow: bool, axis: int) -> IntAffineFormat:
    """IntAffineFormat covering [lo, hi] (0 included), torch.ao's formulas."""
    probe = IntAffineFormat(bits, 1.0, 0, signed=signed, narrow=narrow)
    qmin, qmax = probe.qmin, probe.qmax
    lo = np.minimum(np.asarray(lo, np.float64), 0.0)
    hi = np.maximum(np.asarray(hi, np.float64), 0.0)
    if symmetric:
        amax = np.maximum(-lo, hi)
        scale = np.maximum(amax / ((qmax - qmin) / 2), _TINY_SCALE)
        zp = np.zeros_like(scale, np.int64) if signed else np.full(scale.shape, (qmin + qmax + 1) // 2, np.int64)
    else:
        scale = np.maximum((hi - lo) / (qmax - qmin), _TINY_SCALE)
        zp = np.clip(qmin - np.round(lo / scale), qmin, qmax).astype(np.int64)
    if scale.ndim == 0:
        return IntAffineFormat(bits, float(scale), int(zp), signed=signed, narrow=narrow)
    return IntAffineFormat(bits, scale, zp, signed=signed, narrow=narrow, axis=axis)


class _Observer:
    seen = 0

    def _require_data(self) -> None:
        if not self.seen:
            raise ValueError(f"{type(self).__name__} has seen no data; call update(x) first")


class MinMaxObserver(_Observer):
    def __init__(self, axis: int | None = None) -> None:
        self.axis = axis
        self.min = self.max = None

    def _batch_range(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if arr.size == 0:
            raise ValueError("x is empty")
        if self.axis is None:
            return arr.min(), arr.max()
        if not -arr.ndim <= self.axis < arr.ndim:
            raise ValueError(f"axis {self.axis} is out of range for x of shape {arr.shape}")
        rows = np.moveaxis(arr, self.axis, 0).reshape(arr.shape[self.axis], -1)
        if self.min is not None and np.shape(self.min) != (rows.shape[0],):
            raise ValueError(f"x has {rows.shape[0]} channels along axis {self.axis}; earlier batches had {np.shape(self.min)[0]}")
        return rows.min(axis=1), rows.max(axis=1)

    def update(self, x: Any) -> "MinMaxObserver":
        lo, hi = self._batch_range(_batch(x))
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        self.min = lo if self.min is None else np.minimum(self.min, lo)
        self.max = hi if self.max is None else np.maximum(self.max, hi)
        self.seen += 1
        return self

    def format(self, bits: int = 8, *, signed: bool = True, symmetric: bool = True,
               narrow: bool = False) -> IntAffineFormat:
        self._require_data()
        return _range_format(self.min, self.max, bits, signed, symmetric, narrow, self.axis or 0)


class MovingAverageMinMaxObserver(MinMaxObserver):
    def __init__(self, averaging_constant: float = 0.01, axis: int | None = None) -> None:
        if not 0 < averaging_constant <= 1:
            raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant}")
        super().__init__(axis)
        self.averaging_constant = averaging_constant

    def update(self, x: Any) -> "MovingAverageMinMaxObserver":
        lo, hi = self._batch_range(_batch(x))
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        c = self.averaging_constant
        if self.min is None:
            self.min, self.max = lo, hi
        else:
            self.min = self.min + c * (lo - self.min)
            self.max = self.max + c * (hi - self.max)
        self.seen += 1
        return self


class _SampleObserver(_Observer):
    """Keeps the magnitudes seen (a seeded reservoir sample beyond max_samples)."""

    def __init__(self, max_samples: int = 2**22, seed: int = 0) -> None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be positive, got {max_samples}")
        self.max_samples = max_samples
        self._rng = np.random.default_rng(seed)
        self._kept: list[np.ndarray] = []
        self._count = 0  # values seen

    def update(self, x: Any) -> "_SampleObserver":
        a = np.abs(_batch(x).astype(np.float64).ravel())
        if a.size == 0:
            raise ValueError("x is empty")
        kept = np.concatenate(self._kept + [a]) if self._kept else a
        self._count += a.size
        if kept.size > self.max_samples:
            kept = self._rng.choice(kept, self.max_samples, replace=False)
        self._kept = [kept]
        self.seen += 1
        return self

    @property
    def magnitudes(self) -> np.ndarray:
        self._require_data()
        return self._kept[0]

    def threshold(self) -> float:
        raise NotImplementedError

    def format(self, bits: int = 8, *, signed: bool = True, narrow: bool = False) -> IntAffineFormat:
        """Symmetric range [-c, c] (signed) or [0, c] (unsigned) for the observer's threshold c."""
        c = self.threshold()
        return _range_format(-c if signed else 0.0, c, bits, signed, signed, narrow, 0)


class PercentileObserver(_SampleObserver):
    def __init__(self, percentile: float = 99.99, **kwargs: Any) -> None:
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        super().__init__(**kwargs)
        self.percentile = percentile

    def threshold(self) -> float:
        return float(np.percentile(self.magnitudes, self.percentile))


class MSEObserver(_SampleObserver):
    def __init__(self, candidates: int = 100, bits: int = 8, signed: bool = True, **kwargs: Any) -> None:
        if candidates < 1:
            raise ValueError(f"candidates must be positive, got {candidates}")
        super().__init__(**kwargs)
        self.candidates, self.bits, self.signed = candidates, bits, signed

    def threshold(self) -> float:

        a = self.magnitudes
        amax = float(a.max())
        if amax == 0:
            return 0.0
        best, best_err = amax, np.inf
        for k in range(1, self.candidates + 1):
            c = amax * k / self.candidates
            fmt = _range_format(-c if self.signed else 0.0, c, self.bits, self.signed, self.signed, False, 0)
            err = float(np.mean((quantize(a, fmt) - a) ** 2))
            if err < best_err:
                best, best_err = c, err
        return best

    def format(self, bits: int | None = None, *, signed: bool | None = None, narrow: bool = False) -> IntAffineFormat:
        """As the other observers'; bits and signed default to those the search used."""
        return super().format(self.bits if bits is None else bits, signed=self.signed if signed is None else signed,
                              narrow=narrow)


def kl_threshold(magnitudes: np.ndarray, bins: int = 2048, levels: int = 128) -> float:
    """TensorRT's entropy-calibration threshold of nonnegative data (see the module doc)."""
    if levels < 2 or bins < levels:
        raise ValueError(f"need 2 <= levels <= bins; got levels={levels}, bins={bins}")
    amax = float(magnitudes.max())
    if amax == 0:
        return 0.0
    hist, edges = np.histogram(magnitudes, bins=bins, range=(0.0, amax))
    hist = hist.astype(np.float64)
    width = edges[1] - edges[0]
    best_i, best_kl = bins, np.inf
    for i in range(levels, bins):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        q = _merge_and_expand(hist[:i], levels)
        if ((p > 0) & (q == 0)).any() or p.sum() == 0:
            continue
        pn, qn = p / p.sum(), q / q.sum()
        nz = pn > 0
        kl = float(np.sum(pn[nz] * np.log(pn[nz] / qn[nz])))
        if kl < best_kl:
            best_i, best_kl = i, kl
    return (best_i + 0.5) * width if best_i < bins else amax


def _merge_and_expand(h: np.ndarray, levels: int) -> np.ndarray:
    """h merged into `levels` groups of len(h) // levels bins (the last takes the rest), each group's
    sum spread evenly over its nonzero bins."""
    size = h.size // levels
    group = np.minimum(np.arange(h.size) // size, levels - 1)
    starts = np.arange(levels) * size
    sums = np.add.reduceat(h, starts)
    nonzero = np.add.reduceat((h > 0).astype(np.float64), starts)
    share = np.where(nonzero > 0, sums / np.maximum(nonzero, 1), 0.0)
    return np.where(h > 0, share[group], 0.0)


class KLObserver(_SampleObserver):
    def __init__(self, bins: int = 2048, levels: int = 128, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bins, self.levels = bins, levels

    def threshold(self) -> float:
        return kl_threshold(self.magnitudes, self.bins, self.levels)
