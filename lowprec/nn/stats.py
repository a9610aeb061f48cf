"""Per-layer tensor statistics during training (after Distiller's collectors): for every Linear/Conv
layer (plain or swapped), at each forward pass, its input, weight and output: min, max, mean, std,
the fraction of zeros, and where the layer has a format for the tensor, the fraction saturated (beyond
the format's representable range: clipped) and flushed (nonzero values the format rounds to 0).

``stats = TensorStats(model, csv="stats.csv", tensorboard="runs/x")``; call ``stats.step(step)`` after
each training step: it writes one CSV row per layer and tensor (appending to the file, a header first)
and, with `tensorboard`, scalars ``<layer>/<tensor>/<statistic>`` through torch.utils.tensorboard (it
needs the tensorboard package). ``stats.close()`` removes the hooks and closes the writers.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import quantize, ste

FIELDS = ("step", "layer", "tensor", "min", "max", "mean", "std", "zeros", "saturated", "flushed")
_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)


def tensor_stats(t: torch.Tensor, fmt: Any = None) -> dict:
    """The statistics of one tensor (saturated and flushed: NaN without a format)."""
    x = t.detach().float()
    row = {"min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()),
           "std": float(x.std()) if x.numel() > 1 else 0.0, "zeros": float((x == 0).float().mean()),
           "saturated": float("nan"), "flushed": float("nan")}
    if fmt is not None and not isinstance(fmt, str):
        lo, hi = ste.representable_range(fmt, x)
        row["saturated"] = float(((x < lo) | (x > hi)).float().mean())
        q = np.asarray(quantize(x.cpu().numpy(), fmt))
        nz = x.cpu().numpy() != 0
        row["flushed"] = float(np.mean((q == 0) & nz))
    return row


class TensorStats:
    """Forward hooks that collect, and step() that writes (see the module doc)."""

    def __init__(self, model: torch.nn.Module, *, csv: str | Path | None = None, tensorboard: str | Path | None = None,
                 tensors: tuple = ("input", "weight", "output")) -> None:
        bad = set(tensors) - {"input", "weight", "output"}
        if bad:
            raise ValueError(f"tensors must be among 'input', 'weight', 'output'; got {sorted(bad)}")
        self.tensors, self.rows, self.pending = tensors, [], {}
        self.csv = Path(csv) if csv is not None else None
        self.writer = None
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError("tensorboard= needs the tensorboard package (pip install tensorboard); or log to "
                                 "csv= only") from None
            self.writer = SummaryWriter(str(tensorboard))
        self.hooks = [m.register_forward_hook(self._hook(n)) for n, m in model.named_modules() if isinstance(m, _LAYERS)]
        if not self.hooks:
            raise ValueError("the model has no Linear/Conv layer to watch")

    def _hook(self, name: str):
        def hook(module, args, output):
            seen = {"input": (args[0], getattr(module, "q_input", None)),
                    "weight": (module.weight, getattr(module, "q_weight", None)),
                    "output": (output, getattr(module, "q_output", None))}
            for tensor in self.tensors:
                t, fmt = seen[tensor]
                self.pending[(name, tensor)] = tensor_stats(t, fmt)
        return hook

    def step(self, step: int) -> list[dict]:
        """Write the statistics of the last forward pass of each layer, tagged with `step`."""
        rows = [dict(step=step, layer=layer, tensor=tensor, **values) for (layer, tensor), values in self.pending.items()]
        self.pending = {}
        if self.csv is not None and rows:
            new = not self.csv.exists() or self.csv.stat().st_size == 0
            with open(self.csv, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=FIELDS)
                if new:
                    w.writeheader()
                w.writerows(rows)
        if self.writer is not None:
            for r in rows:
                for key in FIELDS[3:]:
                    if r[key] == r[key]:  # not NaN
                        self.writer.add_scalar(f"{r['layer']}/{r['tensor']}/{key}", r[key], step)
        self.rows.extend(rows)
        return rows

    def close(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks = []
        if self.writer is not None:
            self.writer.close()
