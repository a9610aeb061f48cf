"""Train and evaluate a small CNN on scikit-learn's bundled digits (8x8 images, 1797 of them; no
download) under a lowprec swap spec: the accuracy study's embedded default.

``train(spec, epochs, seed)`` returns a dict with the test accuracy, the loss per epoch and the seconds
taken; the split (75/25, stratified, seeded), the model's initial weights and the batch order depend
only on the seed, so a run repeats exactly.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def load(seed: int = 0):
    """(x_train, y_train, x_test, y_test): images scaled to [0, 1], shape (n, 1, 8, 8), float32."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.25, random_state=seed, stratify=d.target)
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


def cnn(seed: int = 0, side: int = 8):
    """conv 1->8 (3x3, pad 1), ReLU, max-pool 2, conv 8->16 (3x3, pad 1), ReLU, max-pool 2, linear -> 10,
    for side x side images (8: digits; 28: MNIST)."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * (side // 4) ** 2, 10))


def mlp(seed: int = 0, width: int = 256):
    """A 4-layer MLP on the flattened 8x8 images."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                               torch.nn.ReLU(), torch.nn.Linear(width, 10))


FP8_SPEC = {kind: {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2",
                   "mac": {"mode": "mac", "acc": "fp16", "chunk": 16, "chunk_acc": "fp32"}}
            for kind in ("Conv2d", "Linear")}


def train(spec: dict | None = None, *, epochs: int = 15, batch: int = 32, lr: float = 0.05, seed: int = 0,
          model: Any = None, data: tuple | None = None) -> dict[str, Any]:
    """Train the CNN (or `model`) with SGD + momentum under `spec` (None: plain fp32) on the digits
    split of `seed` (or `data`: (x_train, y_train, x_test, y_test) shaped like load's)."""
    import torch

    from lowprec import nn as lnn

    torch.set_num_threads(1)
    xtr, ytr, xte, yte = data if data is not None else load(seed)
    net = model if model is not None else cnn(seed, side=xtr.shape[-1])
    if spec:
        lnn.swap(net, spec)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    losses = []
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(xtr_t), generator=gen)
        total = 0.0
        net.train()
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xtr_t[idx]), ytr_t[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(order))
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(xte)).argmax(dim=1).numpy()
    return {"accuracy": float(np.mean(pred == yte)), "losses": losses, "seconds": time.perf_counter() - t0,
            "model": net}
