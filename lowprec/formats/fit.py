"""Fitting formats to data: the published rules for binary, ternary and codebook weights.

- fit_binary (BWN / XNOR-Net), fit_twn (Ternary Weight Networks), fit_ttq (Trained Ternary
  Quantization): their parameters from a weight tensor.
- kmeans_codebook: codebooks learned by 1-D k-means (Lloyd's algorithm), as Deep Compression (Han et al., ICLR 2016)
learns weight-sharing codebooks: linear initialisation (K centroids evenly spaced between the data's
min and max), then alternate assignment (each value to its nearest centroid; a value exactly halfway
goes to the lower one) and update (each centroid to the mean of its values; a centroid with no values
keeps its place) until no centroid moves or ``iters`` runs out. Deterministic: the only randomness is
the optional subsample (``sample`` values drawn with ``seed``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .codebook import LUTFormat
from .scaled import BinaryFormat, TernaryFormat

__all__ = ["kmeans_codebook", "lloyd", "fit_binary", "fit_twn", "fit_ttq"]


def _float_array(x: Any, name: str = "x") -> np.ndarray:
    """x (a numpy array, a list, or a torch tensor on any device) as a float ndarray."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here; half types as float32
        t = x.detach().cpu()
        x = (t.float() if t.is_floating_point() and t.element_size() == 2 else t).numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold numbers, got {arr.dtype}")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def lloyd(values: np.ndarray, k: int, iters: int = 50) -> np.ndarray:
    """K sorted centroids of 1-D float64 values (at most the number of distinct values)."""
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return np.array([lo])
    c = np.linspace(lo, hi, k)
    for _ in range(iters):
        mids = (c[1:] + c[:-1]) / 2
        assign = np.searchsorted(mids, values, side="left")  # x == mid goes to the lower centroid
        sums = np.bincount(assign, weights=values, minlength=k)
        counts = np.bincount(assign, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        new.sort()
        if np.array_equal(new, c):
            break
        c = new
    return np.unique(c)


def kmeans_codebook(x: Any, bits: int, *, axis: int | None = None, iters: int = 50, sample: int | None = None,
                    seed: int = 0) -> LUTFormat:
    """A LUTFormat of at most 2**bits entries learned from x (numpy array or tensor): one codebook, or
    one per channel along ``axis``. A channel with fewer distinct values than entries gets its extra
    entries just above its largest value (never nearer any of its values than a real entry)."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an int in [1, 16], got {bits!r}")
    if isinstance(iters, bool) or not isinstance(iters, (int, np.integer)) or iters < 1:
        raise ValueError(f"iters must be a positive int, got {iters!r}")
    arr = _float_array(x)
    if arr.size == 0:
        raise ValueError("x is empty: k-means needs data")
    if not np.isfinite(arr).all():
        raise ValueError("x holds NaN or Inf: k-means needs finite data")
    k = 2**bits
    rng = np.random.default_rng(seed)

    def learn(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.float64).ravel()
        if sample is not None and v.size > sample:
            v = rng.choice(v, sample, replace=False)
        return lloyd(v, k, iters)

    if axis is None:
        return LUTFormat(learn(arr))
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis must be in [{-arr.ndim}, {arr.ndim - 1}] or None, got {axis}")
    rows = np.moveaxis(arr, axis, 0).reshape(arr.shape[axis], -1)
    books = []
    for r in rows:
        c = learn(r)
        while c.size < k:  # pad above the top: those entries are never the nearest to r's values
            c = np.append(c, np.nextafter(c[-1], np.inf) if c[-1] != 0 else 2.0**-1074)
        books.append(c)
    return LUTFormat(np.stack(books), axis=axis)


def _abs_mean(w: np.ndarray, axis: int | None, where: np.ndarray | None = None) -> np.ndarray | float:
    a = np.abs(np.asarray(w, np.float64))
    if axis is not None and not -a.ndim <= axis < a.ndim:
        raise ValueError(f"axis must be None or in [{-a.ndim}, {a.ndim - 1}] for w of shape {a.shape}, got {axis}")
    if axis is None:
        return float(a.mean() if where is None else a[where].mean())
    rows = np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)
    if where is None:
        return rows.mean(axis=1)
    mask = np.moveaxis(where, axis, 0).reshape(rows.shape)
    return (rows * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)


def fit_binary(w: Any, axis: int | None = None) -> BinaryFormat:
    """BWN / XNOR-Net: alpha = mean |W| (per tensor, or per channel along `axis`)."""
    return BinaryFormat(_abs_mean(np.asarray(w), axis), axis=0 if axis is None else axis)


def fit_twn(w: Any, axis: int | None = None) -> TernaryFormat:
    """Ternary Weight Networks (Li, Zhang, Liu 2016): delta = 0.7 * mean |W|, w_p = w_n = mean of the
    |W| above delta (per tensor, or per channel along `axis`)."""
    w = np.asarray(w, np.float64)
    if w.size == 0 or not np.abs(w).max() > 0:
        raise ValueError("w must hold a nonzero finite weight: TWN's w_p and w_n are means of magnitudes")
    delta = 0.7 * np.asarray(_abs_mean(w, axis))
    d = delta if axis is None else np.expand_dims(delta, tuple(i for i in range(w.ndim) if i != axis % w.ndim))
    alpha = _abs_mean(w, axis, where=np.abs(w) > d)
    return TernaryFormat(alpha, alpha, delta if np.ndim(delta) else float(delta), axis=0 if axis is None else axis)


def fit_ttq(w: Any, w_p: Any, w_n: Any, t: float = 0.05, axis: int | None = None) -> TernaryFormat:
    """Trained Ternary Quantization (Zhu, Han, Mao, Dally 2017): the caller's scales w_p, w_n (learned
    elsewhere) and delta = t * max |W| (per tensor, or per channel along `axis`)."""
    w = np.abs(np.asarray(w, np.float64))
    if axis is None:
        delta = t * float(w.max())
    else:
        delta = t * np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1).max(axis=1)
    return TernaryFormat(w_p, w_n, delta, axis=0 if axis is None else axis)
