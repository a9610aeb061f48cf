"""The cost of one inference of a torch model, layer by layer, by counting hooks.

``profile(model, example, spec=None)`` runs `example` through `model` once (its outputs are untouched)
and, for every nn.Linear, nn.Conv1d and nn.Conv2d, records: MACs; the products with a zero operand
actually seen, with the weights and inputs quantized to the layer's formats (ternary weights, ReLU
outputs); weight and activation bits moved; compute energy (multiplies and per-step adds, skipped zero
products left out when the unit skips them); memory energy (weights from ``weight_memory``,
activations through an SRAM of ``sram_bytes``); and the area of a MAC array of ``array`` = (rows,
cols) units of the first layer's formats.

Each layer's formats are its own: a swapped layer's (QLinear/QConv: weight, input, the MAC's
accumulator; fake mode sums in fp32), an emulated model's (lowprec.nn.emulate: the spec's settings
for the layer's linear/conv op), else fp32. A spec overrides them: ``{"weight": fmt, "input": fmt,
"acc": fmt, "skip_zeros": bool}`` for every layer, and ``"layers": {name or fnmatch pattern: {...}}``
per layer (the most specific key, as swap specs). Formats are names or objects; "binary" and
"ternary" name BWN and TWN weights fitted per layer (fit_binary / fit_twn). A callable entry is called
with each layer's tensor (numpy) and returns its format: ``calibrated(8)`` fits a per-tensor
IntAffineFormat by min-max. ``skip_zeros`` defaults to True for ternary weights and False otherwise.
Multiplies of two format families follow lowprec.cost.model's MIXED_RULES. A format that rounds a
layer's whole nonzero weight or input to zero warns (its energy would read as a saving).
``"mul_as": (op, format)`` prices every product as that operation, for a user multiplier the table
has no row for (Mitchell's logarithmic multiplier: ("add", "int8") for 8-bit operands).
``compare(model, example, specs)`` profiles several specs side by side.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..formats import as_format
from ..array import quantize
from ..formats import BinaryFormat, TernaryFormat, fit_binary, fit_twn
from .._patterns import specificity
from . import timing
from .model import area, energy, memory_energy, priced_as
from .storage import speedup_rate
from .table import CostTable, default_table

__all__ = ["profile", "compare", "calibrated", "ModelCost", "LayerCost"]

COLUMNS = ("layer", "kind", "mul", "add", "macs", "zero_products", "executed", "weight_bits", "activation_bits",
           "compute_pj", "memory_pj", "total_pj")
TIME_COLUMNS = ("arithmetic", "latency_s", "bound")


@dataclass
class LayerCost:
    layer: str
    kind: str
    mul: str  # the multiplier's operand formats
    add: str  # the accumulator's format
    macs: int
    zero_products: int
    executed: int
    weight_bits: int
    activation_bits: int
    compute_pj: float
    memory_pj: float
    arithmetic: str = ""  # with a device: the arithmetic it runs in, its roofline latency and bound
    latency_s: float = 0.0
    bound: str = ""

    @property
    def total_pj(self) -> float:
        return self.compute_pj + self.memory_pj

    def row(self) -> dict:
        out = {c: getattr(self, c) for c in COLUMNS}
        if self.arithmetic:
            out.update({c: getattr(self, c) for c in TIME_COLUMNS})
        return out


@dataclass
class ModelCost:
    spec: dict
    layers: list[LayerCost] = field(default_factory=list)
    array_area_um2: float = 0.0
    device: Any = None  # a lowprec.cost.timing.Device when timed

    def total(self, key: str) -> float:
        return sum(getattr(layer, key) for layer in self.layers)

    @property
    def total_pj(self) -> float:
        return self.total("total_pj")

    @property
    def latency_s(self) -> float:
        """Seconds per inference on the device (the layers' rooflines, one after another)."""
        return self.total("latency_s")

    @property
    def throughput(self) -> float:
        """Inferences per second on the device."""
        return 1.0 / self.latency_s if self.latency_s else float("inf")

    @property
    def inferences_per_s_per_w(self) -> float | None:
        """Throughput over the device's power (TDP; None where the table gives none)."""
        power = getattr(self.device, "power", None)
        return self.throughput / power if power else None

    def __str__(self) -> str:
        cols = COLUMNS + (TIME_COLUMNS if self.device is not None else ())
        rows = [cols] + [tuple(_fmt(v) for v in layer.row().values()) for layer in self.layers]
        total = ("total", "", "", "") + tuple(_fmt(self.total(c)) for c in COLUMNS[4:])
        if self.device is not None:
            total += ("", _fmt(self.latency_s), "")
        rows.append(total)
        widths = [max(len(str(r[k])) for r in rows) for k in range(len(cols))]
        body = "\n".join("  ".join(str(c).rjust(w) if k > 3 else str(c).ljust(w) for k, (c, w) in enumerate(zip(r, widths)))
                         for r in rows)
        text = f"{body}\nMAC array area: {self.array_area_um2:,.0f} um^2"
        if self.device is not None:
            per_w = self.inferences_per_s_per_w
            text += (f"\non {self.device.name}: {self.latency_s * 1e6:,.3f} us per inference, "
                     f"{self.throughput:,.0f} inferences/s" + (f", {per_w:,.1f} inferences/s/W" if per_w else ""))
        return text

    def to_dict(self) -> dict:
        out = {"spec": {k: str(v) for k, v in self.spec.items()}, "layers": [layer.row() for layer in self.layers],
               "total_pj": self.total_pj, "array_area_um2": self.array_area_um2}
        if self.device is not None:
            out.update(device=self.device.name, latency_s=self.latency_s, throughput=self.throughput,
                       inferences_per_s_per_w=self.inferences_per_s_per_w)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS + (TIME_COLUMNS if self.device is not None else ()))
        w.writeheader()
        for layer in self.layers:
            w.writerow(layer.row())
        return buf.getvalue()


def _fmt(v: Any) -> str:
    if isinstance(v, float) and 0 < abs(v) < 1e-3:
        return f"{v:.3g}"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, (int, np.integer)):
        return f"{v:,}"
    return str(v)


def _resolve(entry: Any, t: np.ndarray):
    """The format a spec entry gives for tensor t: fitted (binary, ternary, a callable) or fixed."""
    if isinstance(entry, str) and entry == "ternary":
        return fit_twn(t)
    if isinstance(entry, str) and entry == "binary":
        return fit_binary(t)
    if callable(entry) and not isinstance(entry, str):
        return as_format(entry(t))
    return as_format(entry)


def calibrated(bits: int = 8, **kwargs: Any):
    """A spec entry: per tensor, the IntAffineFormat a MinMaxObserver fits to it (symmetric signed
    by default; kwargs go to its .format)."""
    from ..observers import MinMaxObserver

    return lambda t: MinMaxObserver().update(t).format(bits, **kwargs)


def _label(fmt: Any) -> str:
    name = getattr(fmt, "name", None)
    if name:
        return name
    if isinstance(fmt, (TernaryFormat, BinaryFormat)):
        return type(fmt).__name__.replace("Format", "").lower()
    return f"{type(fmt).__name__}({fmt.bits} bits)"


def _bits(fmt: Any) -> float:
    return float(getattr(fmt, "bits"))


def _nonzero_pairs(module, xnz, wnz) -> int:
    """Products whose operands are both nonzero: the layer applied to the indicator tensors."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        if isinstance(module, torch.nn.Linear):
            out = F.linear(xnz, wnz)
        elif isinstance(module, torch.nn.Conv1d):
            out = F.conv1d(xnz, wnz, None, module.stride, module.padding, module.dilation, module.groups)
        else:
            out = F.conv2d(xnz, wnz, None, module.stride, module.padding, module.dilation, module.groups)
    return int(round(float(out.sum())))


SPEC_KEYS = ("weight", "input", "acc", "skip_zeros", "sparse_weights", "sparse_inputs", "mul_as", "layers")
LAYER_KEYS = ("weight", "input", "acc", "skip_zeros", "sparse_weights", "sparse_inputs", "mul_as")


def _own_formats(name: str, module: Any, emulation: Any) -> dict:
    """The formats a swapped layer or an emulated model gives this layer (None: none of its own)."""
    mac = None
    if hasattr(module, "q_weight"):  # a swapped layer
        own = {"weight": module.q_weight, "input": module.q_input}
        mac = module.q_mac
    elif emulation is not None:
        import torch

        kind = "linear" if isinstance(module, torch.nn.Linear) else "conv"
        settings = emulation.spec.lookup(name, kind)
        if settings is None:
            return {}
        own = {"weight": _element(settings.weight), "input": _element(settings.input)}
        mac = settings.mac
    else:
        return {}
    own["acc"] = (mac.acc or "fp32") if mac is not None else None
    return {k: v for k, v in own.items() if v is not None}


def _element(fmt: Any) -> Any:
    """A scaled cast's element format (its scale is per tensor: no storage of its own)."""
    return getattr(fmt, "format", fmt) if type(fmt).__name__ == "Scaling" else fmt


def _layer_spec(name: str, own: dict, spec: dict, used: set) -> dict:
    settings = {"weight": "fp32", "input": "fp32", "acc": "fp32", **own}
    settings.update({k: v for k, v in spec.items() if k in LAYER_KEYS})
    best, found = None, None
    for key, value in (spec.get("layers") or {}).items():
        rank = specificity(key, name)
        if rank is not None and (best is None or rank > best):
            best, found = rank, key
    if found is not None:
        used.add(found)
        settings.update(spec["layers"][found])
    return settings


def _check_spec(spec: dict) -> None:
    unknown = set(spec) - set(SPEC_KEYS)
    if unknown:
        raise ValueError(f"spec: unknown keys {sorted(unknown)}; allowed: {', '.join(SPEC_KEYS)}")
    layers = spec.get("layers") or {}
    if not isinstance(layers, dict):
        raise ValueError(f"spec['layers'] must map layer names or patterns to settings; got {layers!r}")
    for key, value in layers.items():
        if not isinstance(value, dict) or set(value) - set(LAYER_KEYS):
            raise ValueError(f"spec['layers'][{key!r}] must be a dict with keys among {', '.join(LAYER_KEYS)}; "
                             f"got {value!r}")


def _stored(q: np.ndarray, bits: float, scheme: Any) -> int:
    """Bits a rounded tensor moves: dense, or in a sparse scheme (lowprec.cost.storage.sparse_bits)."""
    if scheme is None:
        return int(q.size * bits)
    from .storage import sparse_bits

    return sparse_bits(q.reshape(q.shape[0], -1) if q.ndim > 1 else q, bits, scheme)


def _warn_zeros(name: str, what: str, t: np.ndarray, q: np.ndarray, fmt: Any) -> None:
    if t.size and not q.any() and t.any():
        warnings.warn(f"layer {name!r}: every {what} value rounds to 0 in {_label(fmt)} (the format's smallest "
                      "value is above them): its energy here is not a saving; use a scaled or calibrated format",
                      RuntimeWarning, stacklevel=4)


def profile(model, example, spec: dict | None = None, *, table: CostTable | None = None, weight_memory: str = "dram",
            sram_bytes: float = 32768, array: tuple[int, int] = (16, 16), device: Any = None,
            devices: dict | None = None) -> ModelCost:
    """The per-layer and total cost of one inference (see the module doc); with `device` (a name in
    the device table, lowprec.cost.timing, or a Device), each layer's roofline latency too."""
    import torch

    spec = dict(spec or {})
    _check_spec(spec)
    table = table or default_table()
    dev = timing.device(device, devices) if device is not None else None
    emulation = getattr(getattr(model, "_lowprec_emulation", None), "mode", None)
    result = ModelCost(spec=dict(spec), device=dev)
    layers = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)
    hooks, used, first = [], set(), []

    def hook(module, inputs, output, name):
        settings = _layer_spec(name, _own_formats(name, module, emulation), spec, used)
        acc_fmt = as_format(settings["acc"])
        x = inputs[0].detach().double().cpu()
        w = module.weight.detach().double().cpu()
        wfmt = _resolve(settings["weight"], w.numpy())
        input_fmt = _resolve(settings["input"], x.numpy())
        wq_np, xq_np = np.asarray(quantize(w.numpy(), wfmt)), np.asarray(quantize(x.numpy(), input_fmt))
        _warn_zeros(name, "weight", w.numpy(), wq_np, wfmt)
        _warn_zeros(name, "input", x.numpy(), xq_np, input_fmt)
        wq, xq = torch.from_numpy(wq_np), torch.from_numpy(xq_np)
        per_output = w[0].numel()  # in_features, or in_channels / groups * kernel size
        macs = output.numel() * per_output
        nonzero = _nonzero_pairs(module, (xq != 0).double(), (wq != 0).double())
        zeros = macs - nonzero
        skip = settings.get("skip_zeros", isinstance(wfmt, TernaryFormat))
        executed = nonzero if skip else macs
        mul = priced_as(settings["mul_as"], table=table) if "mul_as" in settings else energy("mul", input_fmt, wfmt,
                                                                                          table=table)
        compute = executed * (mul + energy("add", acc_fmt, table=table))
        weight_bits = _stored(wq_np, _bits(wfmt), settings.get("sparse_weights"))
        act_bits = _stored(xq_np, _bits(input_fmt), settings.get("sparse_inputs")) + int(output.numel() * _bits(acc_fmt))
        memory = (memory_energy(weight_bits, weight_memory, size_bytes=sram_bytes, table=table)
                  + memory_energy(act_bits, "sram", size_bytes=sram_bytes, table=table))
        mul_name = f"{_label(input_fmt)} x {_label(wfmt)}"
        if "mul_as" in settings:
            mul_name += f" as {settings['mul_as'][0]} {_label(as_format(settings['mul_as'][1]))}"
        layer = LayerCost(name, type(module).__name__, mul_name, _label(acc_fmt), int(macs), int(zeros),
                          int(executed), weight_bits, act_bits, compute, memory)
        if dev is not None:
            layer.arithmetic = timing.arithmetic(input_fmt, wfmt, dev)
            layer.latency_s, layer.bound = timing.layer_time(macs, (weight_bits + act_bits) / 8, layer.arithmetic, dev)
        result.layers.append(layer)
        if not first:
            first.append((input_fmt, wfmt, acc_fmt))

    for name, module in model.named_modules():
        if isinstance(module, layers):
            hooks.append(module.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name)))
    if not hooks:
        raise ValueError("the model has no Linear, Conv1d or Conv2d layer to price")
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    unused = [k for k in (spec.get("layers") or {}) if k not in used]
    if unused:
        warnings.warn(f"profile spec['layers'] keys matched no layer: {unused}; layers: "
                      f"{[layer.layer for layer in result.layers]}", stacklevel=2)
    in0, wfmt0, acc0 = first[0]  # the array's unit: the first layer's formats
    result.array_area_um2 = array[0] * array[1] * (area("mul", in0, wfmt0, table=table) + area("add", acc0, table=table))
    return result


def compare(model, example, specs: dict[str, dict], **kwargs) -> str:
    """A side-by-side table of total energy (pJ, compute and memory) and MAC-array area per spec; with
    `device`, the roofline latency per inference, the speedup rate over the first spec (its latency
    over this one's) and inferences/s/W."""
    timed = kwargs.get("device") is not None
    rows = [("spec", "compute_pj", "memory_pj", "total_pj", "zero_products", "array_um2")
            + (("latency_us", "speedup", "inf/s/W") if timed else ())]
    first = None
    for label, spec in specs.items():
        r = profile(model, example, spec, **kwargs)
        row = (label, f"{r.total('compute_pj'):,.0f}", f"{r.total('memory_pj'):,.0f}", f"{r.total_pj:,.0f}",
               f"{r.total('zero_products'):,}", f"{r.array_area_um2:,.0f}")
        if timed:
            first = first or r.latency_s
            per_w = r.inferences_per_s_per_w
            row += (f"{r.latency_s * 1e6:,.4f}", f"{speedup_rate(first, r.latency_s):.2f}x",
                    f"{per_w:,.0f}" if per_w else "-")
        rows.append(row)
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)
