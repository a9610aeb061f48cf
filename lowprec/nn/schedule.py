"""Format schedules for quantization-aware training (after Distiller's schedules): phases that give
layers formats over ranges of epochs, and bit-width ramps.

A schedule is a dict or a TOML/YAML file with a list of phases::

    [[phase]]                      # epochs [start, end): fp16 everywhere first
    start = 0
    end = 2
    layers = "*"                   # a layer name or fnmatch pattern (default "*")
    weight = "fp16"
    input = "fp16"

    [[phase]]
    start = 2
    end = 6
    layers = "features.*"
    weight_bits = [8, 4]           # a ramp: 8 bits at epoch 2 down to 4 at epoch 5, rounded
    input = "fp8_e4m3fn"

A phase takes any lowprec.nn.swap layer setting (weight, input, output, grad, mac, ...) and
``weight_bits = b`` or ``[from, to]``: symmetric signed integers per output channel fitted by min-max
to the weights as they are when the epoch starts (the bits linear in the epoch between start and
end - 1, rounded). ``schedule.apply(model, epoch)`` at the start of each epoch swaps every layer to its
settings for that epoch (layers no phase covers are plain); parameters stay the same objects, so an
optimizer keeps working. Two phases giving the same setting to a layer over overlapping epochs, or a
phase ending where it starts or before, raise naming them.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

import torch

from .. import observers
from .surgery import _SWAPS, load_spec, swap, unswap

PHASE_KEYS = ("start", "end", "layers", "weight_bits")


class Schedule:
    """A parsed schedule (see the module doc)."""

    def __init__(self, schedule: Any) -> None:
        data = load_spec(schedule)
        phases = data.get("phase") if isinstance(data, dict) else None
        if not isinstance(phases, list) or not phases:
            raise ValueError("a schedule needs a non-empty list 'phase' of tables with start, end and settings")
        from .layers import LAYER_KEYS

        self.phases = []
        for i, phase in enumerate(phases):
            where = f"phase {i}"
            if not isinstance(phase, dict):
                raise ValueError(f"{where}: a phase is a table of settings, got {phase!r}")
            unknown = set(phase) - set(PHASE_KEYS) - set(LAYER_KEYS)
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: "
                                 f"{', '.join(PHASE_KEYS + LAYER_KEYS)}")
            start, end = phase.get("start"), phase.get("end")
            for key, value in (("start", start), ("end", end)):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{where}: {key} must be an int >= 0 (an epoch), got {value!r}")
            if end <= start:
                raise ValueError(f"{where}: end ({end}) must come after start ({start}); epochs run [start, end)")
            bits = phase.get("weight_bits")
            if bits is not None:
                pair = bits if isinstance(bits, list) else [bits, bits]
                if len(pair) != 2 or any(isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= 32 for b in pair):
                    raise ValueError(f"{where}: weight_bits must be an int or [from, to], each in [2, 32]; got {bits!r}")
                if "weight" in phase:
                    raise ValueError(f"{where}: give weight or weight_bits, not both")
            self.phases.append(dict(phase, layers=phase.get("layers", "*")))
        self._check_overlaps()

    def _settings_of(self, phase: dict) -> set:
        keys = set(phase) - set(PHASE_KEYS)
        return keys | ({"weight"} if "weight_bits" in phase else set())

    def _check_overlaps(self) -> None:
        for i, a in enumerate(self.phases):
            for j in range(i + 1, len(self.phases)):
                b = self.phases[j]
                if a["start"] < b["end"] and b["start"] < a["end"]:
                    same = self._settings_of(a) & self._settings_of(b)
                    layers_meet = (a["layers"] == b["layers"] or fnmatch.fnmatchcase(a["layers"], b["layers"])
                                   or fnmatch.fnmatchcase(b["layers"], a["layers"]))
                    if same and layers_meet:
                        raise ValueError(f"phases {i} and {j} overlap: epochs [{a['start']}, {a['end']}) and "
                                         f"[{b['start']}, {b['end']}) both set {sorted(same)} for layers "
                                         f"{a['layers']!r} / {b['layers']!r}")

    def settings(self, name: str, epoch: int) -> dict:
        """The layer settings a layer named `name` has at `epoch` (weight_bits resolved to a bit count)."""
        out: dict = {}
        for phase in self.phases:
            if phase["start"] <= epoch < phase["end"] and fnmatch.fnmatchcase(name, phase["layers"]):
                for key, value in phase.items():
                    if key not in PHASE_KEYS:
                        out[key] = value
                if "weight_bits" in phase:
                    out["weight_bits"] = ramp_bits(phase, epoch)
        return out

    def apply(self, model: torch.nn.Module, epoch: int) -> dict[str, dict]:
        """Swap every layer to its settings at `epoch` (see the module doc); returns them by layer."""
        unswap(model)
        plan = {}
        for name, module in model.named_modules():
            if type(module) not in _SWAPS:
                continue
            settings = self.settings(name, epoch)
            if "weight_bits" in settings:
                bits = settings.pop("weight_bits")
                w = module.weight.detach().cpu().double()
                settings["weight"] = observers.MinMaxObserver(axis=0).update(w).format(bits, signed=True, symmetric=True)
            if settings:
                plan[name] = settings
        if plan:
            swap(model, plan)
        return plan


def ramp_bits(phase: dict, epoch: int) -> int:
    """A phase's weight bits at `epoch`: linear from the first to the last epoch, rounded half up."""
    bits = phase["weight_bits"]
    first, last = (bits, bits) if isinstance(bits, int) else bits
    span = phase["end"] - 1 - phase["start"]
    t = 0.0 if span == 0 else (epoch - phase["start"]) / span
    return math.floor(first + (last - first) * t + 0.5)
