"""A small decoder-only (GPT-style) character transformer, written the way most transformer code is:
attention through F.scaled_dot_product_attention, norms and activations as functions; and its text,
the Python standard library's own source files (on every machine that runs Python: no download)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VOCAB = 128  # ASCII; any other byte reads as '?'


def stdlib_text(chars: int = 2_000_000) -> np.ndarray:
    """The first `chars` bytes of the standard library's .py files in sorted path order, as ASCII ids."""
    root = Path(os.__file__).parent
    out, total = [], 0
    for path in sorted(root.glob("*.py")):
        data = np.frombuffer(path.read_bytes(), np.uint8)
        out.append(data)
        total += data.size
        if total >= chars:
            break
    ids = np.concatenate(out)[:chars].astype(np.int64)
    ids[ids >= VOCAB] = ord("?")
    return ids


def batches(ids: np.ndarray, batch: int, context: int, seed: int):
    """An endless stream of (inputs, next-character targets), windows drawn uniformly."""
    rng = np.random.default_rng(seed)
    while True:
        start = rng.integers(0, ids.size - context - 1, batch)
        window = ids[start[:, None] + np.arange(context + 1)]
        yield torch.from_numpy(window[:, :-1]), torch.from_numpy(window[:, 1:])


class Block(torch.nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.qkv, self.proj = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
        self.fc1, self.fc2 = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, c))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class CharTransformer(torch.nn.Module):
    """Token and position embeddings, `layers` pre-norm blocks, a final norm and the output head."""

    def __init__(self, width: int = 128, layers: int = 2, heads: int = 4, context: int = 64, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.tok, self.pos = torch.nn.Embedding(VOCAB, width), torch.nn.Embedding(context, width)
        self.blocks = torch.nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next character, nats."""
    return F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
