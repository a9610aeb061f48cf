"""Post-training quantization: calibrate a model's layers to frozen integer formats with observers."""

from __future__ import annotations

from typing import Any

import torch

from .. import observers
from ..formats import fit_groupwise
from .layers import QConv1d, QConv2d, QLinear
from .ptq import correct_bias, feed
from .surgery import _SWAPS, swap

def _make_observer(observer: Any):
    named = {"minmax": observers.MinMaxObserver, "moving_average": observers.MovingAverageMinMaxObserver,
             "percentile": observers.PercentileObserver, "mse": observers.MSEObserver, "kl": observers.KLObserver}
    if isinstance(observer, str):
        if observer not in named:
            raise ValueError(f"observer must be one of {', '.join(map(repr, named))} or a factory; got {observer!r}")
        return named[observer]()
    if callable(observer):
        return observer()
    raise TypeError(f"observer must be a name or a factory, got {observer!r}")


def observe_formats(model: torch.nn.Module, batches: Any, *, observer: Any = "minmax", bits: int = 8,
                    weight_bits: int = 8, per_channel_weights: bool = True,
                    weight_group: int | None = None) -> dict[str, tuple]:
    """{layer name: (input format, weight format)} for every Linear/Conv1d/Conv2d of `model`, fitted as
    `calibrate` fits them (the model is run on `batches`, not changed)."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, tuple(_SWAPS))]
    if not layers:
        raise ValueError("the model has no Linear/Conv layer to calibrate")
    watchers = {n: _make_observer(observer) for n, _ in layers}

    def watch(name):
        def hook(module, args):
            watchers[name].update(args[0].detach().cpu())  # returns None: the input goes on unchanged
        return hook

    if not feed(model, batches, {n: m for n, m in layers}, watch):
        raise ValueError("batches was empty: calibration needs data")
    out = {}
    for n, m in layers:
        obs = watchers[n]
        fin = obs.format(bits, signed=False, symmetric=False) if isinstance(obs, observers.MinMaxObserver) \
            else obs.format(bits)
        w = m.weight.detach().cpu().double()
        if weight_group:
            out[n] = (fin, fit_groupwise(w.numpy(), weight_bits, weight_group))
            continue
        wobs = observers.MinMaxObserver(axis=0 if per_channel_weights else None).update(w)
        out[n] = (fin, wobs.format(weight_bits, signed=True, symmetric=True))
    return out


def calibrate(model: torch.nn.Module, batches: Any, *, observer: Any = "minmax", bits: int = 8,
              weight_bits: int = 8, per_channel_weights: bool = True, weight_group: int | None = None,
              exempt: Any = (), bias_correction: bool = False) -> torch.nn.Module:
    """Post-training quantization: plain Linear/Conv layers are swapped for emulated ones (fake mode),
    an observer per layer watches its inputs over `batches` (an iterable of model inputs), then every
    layer's formats are frozen: inputs to the observer's IntAffineFormat (asymmetric unsigned for
    min-max observers, which sees ReLU outputs >= 0 as [0, max]; the others are symmetric signed),
    weights to symmetric signed `weight_bits`-bit integers per output channel (or per tensor), or with
    `weight_group` G asymmetric per output channel and group of G inputs (GroupAffineFormat).
    `exempt`: layer names or fnmatch patterns left as they are (first and last layers, say);
    `bias_correction`: then lowprec.nn.ptq.correct_bias on the same batches."""
    import fnmatch

    if isinstance(exempt, str):
        exempt = (exempt,)
    names = [n for n, m in model.named_modules() if type(m) in _SWAPS]
    unmatched = [p for p in exempt if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise ValueError(f"exempt patterns matched no layer: {unmatched}; layers: {names}")
    kept = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in exempt)}
    todo = {n: {} for n in names if n not in kept}
    if todo:
        swap(model, todo)
    batches = list(batches)
    formats = observe_formats(model, batches, observer=observer, bits=bits, weight_bits=weight_bits,
                              per_channel_weights=per_channel_weights, weight_group=weight_group)
    for n, m in model.named_modules():
        if isinstance(m, (QLinear, QConv1d, QConv2d)) and n not in kept:
            m.q_input, m.q_weight = formats[n]
    if bias_correction:
        correct_bias(model, batches)
    return model
