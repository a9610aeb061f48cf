"""Storage: the bits a tensor or a model's weights take in a format, scales and codebooks included;
compression rates; Deep Compression's weight-sharing rate; Huffman-coded sizes of weight codes.

Rates (as the compression survey of Cheng, Wang, Zhou, Zhang, arXiv:1710.09282, defines them): the
compression rate alpha = a / a* (original size over compressed size), the space-saving rate
beta = (a - a*) / a*, and, where timings exist, the speedup rate delta = s / s*.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from typing import Any

import numpy as np

from ..array import encode
from ..formats import fit_binary, fit_twn
from ..formats import as_format

__all__ = ["tensor_bits", "sparse_bits", "SPARSE_SCHEMES", "model_storage", "compression_rate", "space_saving_rate", "speedup_rate",
           "deep_compression_rate", "huffman_code_lengths", "huffman_bits"]

def tensor_bits(numel: int, fmt: Any) -> int:
    """Bits of `numel` values in `fmt`, with the format's own parameters: block scales, a codebook,
    affine scale and zero point, binary/ternary scales."""
    if numel < 0:
        raise ValueError(f"numel must be >= 0, got {numel}")
    return as_format(fmt).stored_bits(numel)


SPARSE_SCHEMES = ("rle", "csr", "bitmap")


def sparse_bits(values: Any, value_bits: float, scheme: str, *, index_bits: int = 4) -> int:
    """Bits of a tensor stored sparsely, its nonzero values at `value_bits` each:

    - "rle": Deep Compression's relative indexing (Han, Mao, Dally, ICLR 2016, section 2): each nonzero
      with an `index_bits` count of the zeros before it; a gap of 2**index_bits or more inserts a
      filler (a stored zero) per 2**index_bits - 1 zeros (the flattened tensor, row-major);
    - "csr": compressed sparse rows of the tensor seen as (first axis, the rest): values, a column index
      of ceil(log2 columns) bits each, and rows + 1 row pointers of ceil(log2(nonzeros + 1)) bits;
    - "bitmap": a presence bit per element and the nonzero values.
    """
    if scheme not in SPARSE_SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(map(repr, SPARSE_SCHEMES))}; got {scheme!r}")
    x = np.asarray(values)
    nonzero = x.reshape(-1) != 0
    nnz = int(nonzero.sum())
    if scheme == "bitmap":
        return int(x.size + math.ceil(nnz * value_bits))
    if scheme == "csr":
        rows = x.shape[0] if x.ndim else 1
        cols = x.size // max(rows, 1)
        col_bits = max(1, math.ceil(math.log2(max(cols, 2))))
        ptr_bits = max(1, math.ceil(math.log2(nnz + 1)))
        return int(math.ceil(nnz * value_bits) + nnz * col_bits + (rows + 1) * ptr_bits)
    check = int(index_bits)
    if check < 1:
        raise ValueError(f"index_bits must be >= 1, got {index_bits}")
    longest = 2**check - 1
    positions = np.flatnonzero(nonzero)
    gaps = np.diff(np.concatenate([[-1], positions])) - 1  # zeros before each nonzero
    fillers = int(np.sum(gaps // (longest + 1)))
    return int((nnz + fillers) * (value_bits + check))


def compression_rate(original_bits: float, compressed_bits: float) -> float:
    """alpha = a / a*."""
    if compressed_bits <= 0 or original_bits < 0:
        raise ValueError(f"sizes must be positive, got {original_bits} and {compressed_bits}")
    return original_bits / compressed_bits


def space_saving_rate(original_bits: float, compressed_bits: float) -> float:
    """beta = (a - a*) / a*."""
    return compression_rate(original_bits, compressed_bits) - 1.0


def speedup_rate(original_seconds: float, compressed_seconds: float) -> float:
    """delta = s / s*."""
    if compressed_seconds <= 0 or original_seconds < 0:
        raise ValueError(f"times must be positive, got {original_seconds} and {compressed_seconds}")
    return original_seconds / compressed_seconds


def deep_compression_rate(n: int, b: int, k: int) -> float:
    """Weight sharing (Han, Mao, Dally, ICLR 2016, eq. 1): n connections of b bits each, shared among
    k centroids: r = n*b / (n*log2(k) + k*b)."""
    if n <= 0 or b <= 0 or k <= 0:
        raise ValueError(f"n, b and k must be positive, got n={n}, b={b}, k={k}")
    return n * b / (n * math.log2(k) + k * b)


def huffman_code_lengths(frequencies: dict) -> dict:
    """Code length in bits of each symbol of a Huffman code for the given counts (one symbol: 1 bit)."""
    items = [(f, i, sym) for i, (sym, f) in enumerate(frequencies.items()) if f > 0]
    if not items:
        return {}
    if len(items) == 1:
        return {items[0][2]: 1}
    lengths = {sym: 0 for _, _, sym in items}
    heap = [(f, i, [sym]) for f, i, sym in items]
    heapq.heapify(heap)
    tie = len(items)
    while len(heap) > 1:
        f1, _, s1 = heapq.heappop(heap)
        f2, _, s2 = heapq.heappop(heap)
        for sym in s1 + s2:
            lengths[sym] += 1
        heapq.heappush(heap, (f1 + f2, tie, s1 + s2))
        tie += 1
    return lengths


def huffman_bits(codes: Any) -> int:
    """Bits of the Huffman-coded stream of integer codes (the code table not counted)."""
    arr = np.asarray(codes).ravel()
    freq = Counter(arr.tolist())
    lengths = huffman_code_lengths(freq)
    return int(sum(freq[s] * lengths[s] for s in freq))


def model_storage(model, spec: dict) -> dict:
    """Per weight tensor of every Linear/Conv layer and in total: bits in spec["weight"] (a format, or
    "binary"/"ternary" fitted per layer), the fp32 size, alpha and beta against it, and the
    Huffman-coded size of the weight codes where the format has codes."""
    import torch


    rows = []
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
            w = module.weight.detach().double().numpy()
            fmt = spec["weight"]
            fmt = fit_twn(w) if fmt == "ternary" else fit_binary(w) if fmt == "binary" else as_format(fmt)
            bits = tensor_bits(w.size, fmt)
            codes = encode(w, fmt)
            codes = codes[0] if isinstance(codes, tuple) else codes
            rows.append({"layer": name, "numel": int(w.size), "bits": bits, "fp32_bits": 32 * w.size,
                         "alpha": compression_rate(32 * w.size, bits),
                         "beta": space_saving_rate(32 * w.size, bits), "huffman_bits": huffman_bits(codes)})
    total_bits = sum(r["bits"] for r in rows)
    fp32 = sum(r["fp32_bits"] for r in rows)
    return {"layers": rows, "bits": total_bits, "bytes": math.ceil(total_bits / 8), "fp32_bits": fp32,
            "alpha": compression_rate(fp32, total_bits), "beta": space_saving_rate(fp32, total_bits)}
