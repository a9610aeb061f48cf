"""Codebooks learned by 1-D k-means (Lloyd's algorithm), as Deep Compression (Han et al., ICLR 2016)
learns weight-sharing codebooks: linear initialisation (K centroids evenly spaced between the data's
min and max), then alternate assignment (each value to its nearest centroid; a value exactly halfway
goes to the lower one) and update (each centroid to the mean of its values; a centroid with no values
keeps its place) until no centroid moves or ``iters`` runs out. Deterministic: the only randomness is
the optional subsample (``sample`` values drawn with ``seed``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _arrays
from .codebook_formats import LUTFormat

__all__ = ["kmeans_codebook", "lloyd"]


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
    arr, _ = _arrays.to_numpy(x)
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
