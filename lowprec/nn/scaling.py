"""Scaled casts of an operand into an element format, as FP8 training recipes make them: a scale s
maps the tensor into the format's range, the cast rounds x * s (float32) to the format (saturating),
and the emulated operand is the cast times 1/s (float32), which is what a GEMM scaled by 1/s computes
with it.

- "current": s = fmax / amax(x) / 2**margin from the tensor itself (Transformer Engine's
  Float8CurrentScaling);
- "delayed": s from a history of the last `history` amaxes, their maximum ("max") or the latest
  ("most_recent"): each cast uses the scale the previous casts left, then records its own amax and
  computes the next (Transformer Engine's DelayedScaling: scale = fmax / amax / 2**margin, kept as it
  was while the amax is 0 or not finite; the first cast uses s = 1);
- "row": one scale per line along the reduction axis (torchao's rowwise).

`power_of_two` rounds s down to a power of two (exact scaling: x * s only shifts exponents).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..formats import FloatFormat, as_format

KINDS = ("current", "delayed", "row")
ALGOS = ("max", "most_recent")
KEYS = ("format", "scaling", "margin", "history", "algo", "power_of_two")


@dataclass(eq=False)
class Scaling:
    """A scaled cast (see the module doc); `state` holds each tensor's amax history and scale, keyed
    by where it is cast (module, op kind, operand)."""
    format: Any
    scaling: str = "current"
    margin: int = 0
    history: int = 1024
    algo: str = "max"
    power_of_two: bool = False
    state: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        fmt = as_format(self.format)
        if not isinstance(fmt, FloatFormat):
            raise ValueError(f"format: a scaled cast takes a float element format (e.g. fp8_e4m3fn), got {fmt!r}")
        self.format = fmt if fmt.overflow == "saturate" else replace(fmt, overflow="saturate", name=None)
        if self.scaling not in KINDS:
            raise ValueError(f"scaling must be one of {', '.join(map(repr, KINDS))}; got {self.scaling!r}")
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {', '.join(map(repr, ALGOS))}; got {self.algo!r}")
        if isinstance(self.history, bool) or not isinstance(self.history, int) or self.history < 1:
            raise ValueError(f"history must be an int >= 1, got {self.history!r}")
        if isinstance(self.margin, bool) or not isinstance(self.margin, int):
            raise ValueError(f"margin must be an int, got {self.margin!r}")

    @property
    def name(self) -> str:
        return f"{self.format.name} ({self.scaling} scaling)"

    def scale_of(self, amax: torch.Tensor, previous: torch.Tensor | float = 1.0) -> torch.Tensor:
        """fmax / amax / 2**margin (float32), `previous` where amax is 0 or not finite."""
        amax = amax.to(torch.float32)
        s = (torch.tensor(self.format.max, dtype=torch.float32) / amax) / (2.0 ** self.margin)
        if self.power_of_two:
            s = torch.exp2(torch.floor(torch.log2(s)))
        keep = (amax > 0) & torch.isfinite(amax) & torch.isfinite(s)
        return torch.where(keep, s, torch.as_tensor(previous, dtype=torch.float32))

    def cast(self, x: torch.Tensor, scale: torch.Tensor, rounding: str, seed: Any) -> torch.Tensor:
        from .. import ste

        scaled = (x.detach().to(torch.float32) * scale)
        q = ste._q(scaled, self.format, rounding, seed)
        return (q * (1.0 / scale)).to(x.dtype)

    def round(self, x: torch.Tensor, axis: int, key: Any, rounding: str = "nearest_even", seed: Any = None) -> torch.Tensor:
        """x cast through its scale (see the module doc)."""
        if self.scaling == "row":
            amax = x.detach().abs().amax(axis, keepdim=True) if x.numel() else torch.zeros(())
            return self.cast(x, self.scale_of(amax), rounding, seed)
        amax = x.detach().abs().amax() if x.numel() else torch.zeros(())
        if self.scaling == "current":
            return self.cast(x, self.scale_of(amax), rounding, seed)
        st = self.state.setdefault(key, {"scale": torch.tensor(1.0), "amaxes": []})
        out = self.cast(x, st["scale"], rounding, seed)
        st["amaxes"] = (st["amaxes"] + [float(amax)])[-self.history:]
        chosen = max(st["amaxes"]) if self.algo == "max" else st["amaxes"][-1]
        st["scale"] = self.scale_of(torch.tensor(chosen), st["scale"])
        return out


def as_scaling(value: dict, where: str) -> Scaling:
    """A spec's operand given as a dict: {"format": ..., "scaling": ..., ...}."""
    unknown = set(value) - set(KEYS)
    if unknown or "format" not in value:
        raise ValueError(f"{where}: a scaled operand is a dict with 'format' and keys among {', '.join(KEYS)}; "
                         f"got {sorted(value)}")
    try:
        return Scaling(**value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
