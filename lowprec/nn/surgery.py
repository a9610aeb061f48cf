"""Model surgery: swap plain Linear/Conv1d/Conv2d modules for the emulated layers by a spec (type
names and fnmatch patterns on qualified names; a dict or a TOML/YAML file), and unswap them back."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from .._patterns import specificity
from .layers import LAYER_KEYS, QConv1d, QConv2d, QLinear

_SWAPS = {torch.nn.Linear: QLinear, torch.nn.Conv2d: QConv2d, torch.nn.Conv1d: QConv1d}
_PLAIN = {QLinear: torch.nn.Linear, QConv2d: torch.nn.Conv2d, QConv1d: torch.nn.Conv1d}


def load_spec(spec: Any) -> dict:
    """A swap spec from a dict, or from a .toml / .yaml / .yml file."""
    if isinstance(spec, dict):
        return spec
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"spec file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"spec file {path}: not valid TOML ({exc})") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError("YAML spec files need PyYAML (pip install pyyaml); or use TOML") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"spec file {path}: not valid YAML ({exc})") from None
    raise ValueError(f"spec file {path}: use .toml, .yaml or .yml")


_specificity = specificity  # the name the layers' modules use



def _new_module(old: torch.nn.Module, settings: dict) -> torch.nn.Module:
    cls = _SWAPS[type(old)]
    unknown = set(settings) - set(LAYER_KEYS) - {"seed"}
    if unknown:
        raise ValueError(f"unknown layer settings {sorted(unknown)}; allowed: {', '.join(LAYER_KEYS)}")
    if cls is QLinear:
        new = QLinear(old.in_features, old.out_features, old.bias is not None, device="meta", **settings)
    else:
        new = cls(old.in_channels, old.out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
                  dilation=old.dilation, groups=old.groups, bias=old.bias is not None, padding_mode=old.padding_mode,
                  device="meta", **settings)
    new.weight = old.weight  # the same Parameter: optimizers and tied weights keep working
    new.bias = old.bias
    for name, buf in old.named_buffers(recurse=False):
        new.register_buffer(name, buf)
    new.train(old.training)
    _carry_hooks(old, new)
    return new


_HOOKS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
          "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks")


def _carry_hooks(old: torch.nn.Module, new: torch.nn.Module) -> None:
    """The hooks registered on a module go with it into its replacement (as torch.ao's swap does)."""
    for name in _HOOKS:
        if hasattr(old, name) and hasattr(new, name):
            getattr(new, name).update(getattr(old, name))


def swap(model: torch.nn.Module, spec: Any, *, strict: bool = False) -> tuple[torch.nn.Module, list]:
    """Replace matching Linear/Conv1d/Conv2d modules by their emulated twins (see the module doc).
    Returns (model, [(qualified name, old type, new type), ...]). Nothing is changed if anything fails."""
    spec = load_spec(spec)
    if not isinstance(spec, dict):
        raise ValueError("spec must map module type names or name patterns to layer settings")
    modules = dict(model.named_modules())
    type_names = {cls.__name__ for cls in _SWAPS}
    plan, used = {}, set()
    for qualified, module in modules.items():
        if type(module) not in _SWAPS:
            continue
        best, best_key = None, None
        for key in spec:
            rank = _specificity(key, qualified)
            if rank is None and key == type(module).__name__:
                rank = (0, 0)
            if rank is not None and (best is None or rank > best):
                best, best_key = rank, key
        if best_key is not None:
            used.add(best_key)
            settings = spec[best_key]
            if not isinstance(settings, dict):
                raise ValueError(f"spec[{best_key!r}] must be a dict of layer settings, got {settings!r}")
            plan[qualified] = _new_module(module, settings)  # builds and validates; nothing swapped yet
    unused = [k for k in spec if k not in used]
    if unused:
        swappable = sorted(n for n, m in modules.items() if type(m) in _SWAPS)
        msg = (f"swap spec keys matched nothing: {unused}; swappable modules: {swappable}; "
               f"types: {sorted(type_names)}")
        emulated = sorted(n for n, m in modules.items() if type(m) in _PLAIN)
        if emulated:
            msg = (f"the model is already swapped ({len(emulated)} emulated layers: {emulated[:5]}"
                   f"{' ...' if len(emulated) > 5 else ''}); call lowprec.nn.unswap(model) first. ({msg})")
        if strict:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=2)
    replaced = []
    for qualified, new in plan.items():
        new.q_name = qualified  # for the layer's warnings
        parent_name, _, child = qualified.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        replaced.append((qualified, type(modules[qualified]).__name__, type(new).__name__))
        setattr(parent, child, new)
    return model, replaced


def unswap(model: torch.nn.Module) -> torch.nn.Module:
    """Replace every emulated layer by the plain torch layer, sharing its parameters."""
    for qualified, module in list(model.named_modules()):
        plain = _PLAIN.get(type(module))
        if plain is None:
            continue
        if plain is torch.nn.Linear:
            new = torch.nn.Linear(module.in_features, module.out_features, module.bias is not None, device="meta")
        else:
            new = plain(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                        padding=module.padding, dilation=module.dilation, groups=module.groups,
                        bias=module.bias is not None, padding_mode=module.padding_mode, device="meta")
        new.weight, new.bias = module.weight, module.bias
        new.train(module.training)
        _carry_hooks(module, new)
        parent_name, _, child = qualified.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    return model


# -- post-training quantization ---------------------------------------------------------------------------------
