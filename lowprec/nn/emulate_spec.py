"""What an emulation spec says: op kinds, their settings, and which settings apply to an op run inside
a given module (most specific key first, as swap specs).

A spec maps op kinds (``OP_KINDS``) to settings, and module names or fnmatch patterns to a dict of op
kinds to settings, e.g.::

    {"linear": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "grad": "fp8_e5m2",
                "wgrad": {"grad": "bf16", "input": "bf16"}},
     "matmul": {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn"},
     "softmax": {"format": "bf16"},
     "lm_head": {"linear": None}}          # this module's linear stays in float32

Settings of ``None`` (or ``{}``) leave the op as it is. Kinds "attention.qk", "attention.pv" and
"attention.softmax" (the parts of a decomposed scaled_dot_product_attention) fall back to "matmul"
and "softmax" where the spec does not name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..formats import BlockFormat, FloatFormat, as_format
from ..mac import MAC
from .layers import FITTED, _format_or_none, _mac_spec, _stored_as
from .scaling import Scaling, as_scaling
from .surgery import _specificity

GEMM_KINDS = ("linear", "conv", "conv_transpose", "matmul", "attention.qk", "attention.pv")
VECTOR_KINDS = ("layer_norm", "rms_norm", "softmax", "attention.softmax", "gelu", "silu")
OP_KINDS = GEMM_KINDS + VECTOR_KINDS + ("embedding", "attention")
FALLBACK = {"attention.qk": "matmul", "attention.pv": "matmul", "attention.softmax": "softmax"}

GEMM_KEYS = ("input", "weight", "output", "grad", "rounding", "grad_rounding", "seed", "mac", "axes", "dgrad", "wgrad")
BACKWARD_KEYS = {"dgrad": ("grad", "weight", "rounding", "mac", "axes"),
                 "wgrad": ("grad", "input", "rounding", "mac", "axes", "hadamard", "hadamard_seed")}
VECTOR_KEYS = ("format", "rounding", "grad", "grad_rounding", "seed")
EMBEDDING_KEYS = ("weight", "output", "grad", "rounding", "grad_rounding", "seed")
ATTENTION_KEYS = ("mode", "input", "rounding", "seed")
ATTENTION_MODES = ("decomposed", "fused")
_FP32 = as_format("fp32")


def _check_keys(settings: dict, allowed: tuple, where: str) -> None:
    unknown = set(settings) - set(allowed)
    if unknown:
        raise ValueError(f"{where}: unknown settings {sorted(unknown)}; allowed: {', '.join(allowed)}")


def _axes(value: Any, operands: tuple, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - set(operands):
        raise ValueError(f"{where}: axes must be a dict with keys among {', '.join(operands)}; got {value!r}")
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{where}: axes[{k!r}] must be an int, got {v!r}")
    return dict(value)


@dataclass(frozen=True)
class BackwardGemm:
    """One backward GEMM's operands: the output gradient's format and the other operand's (None: as
    the forward left it), the MAC (None: fake), block axes overriding the defaults."""
    grad: Any = None
    other: Any = None
    rounding: str = "nearest_even"
    mac: MAC | None = None
    axes: dict = field(default_factory=dict)
    requantize: bool = False  # the other operand re-rounded from its unrounded value (its own format or axis)
    hadamard: int | None = None  # wgrad: a random Hadamard transform of this size along the reduction
    hadamard_seed: int = 0


@dataclass(frozen=True)
class GemmSettings:
    """A product op's formats: forward operands (input: the first, weight: the second), its output,
    and the dgrad (d first operand) and wgrad (d second operand) GEMMs."""
    input: Any = None
    weight: Any = None
    output: Any = None
    rounding: str = "nearest_even"
    grad_rounding: str = "nearest_even"
    seed: Any = None
    mac: MAC | None = None
    axes: dict = field(default_factory=dict)
    dgrad: BackwardGemm = BackwardGemm()
    wgrad: BackwardGemm = BackwardGemm()

    def unchanged(self, dtype) -> bool:
        """Nothing bit-accurate and nothing to round for tensors of `dtype` (every format None, or fp32 on
        float32): the op runs as torch runs it."""
        macs = (self.mac, self.dgrad.mac, self.wgrad.mac)
        fmts = (self.input, self.weight, self.output, self.dgrad.grad, self.dgrad.other, self.wgrad.grad,
                self.wgrad.other)
        return (all(m is None for m in macs) and all(_no_rounding(f, dtype) for f in fmts)
                and self.wgrad.hadamard is None)


@dataclass(frozen=True)
class VectorSettings:
    """An elementwise (vector) op computed with every step rounded to `format`; `grad` rounds the
    gradient at its output."""
    format: Any = None
    rounding: str = "nearest_even"
    grad: Any = None
    grad_rounding: str = "nearest_even"
    seed: Any = None


    def unchanged(self, dtype) -> bool:
        return _no_rounding(self.format, dtype) and _no_rounding(self.grad, dtype)


@dataclass(frozen=True)
class EmbeddingSettings:
    weight: Any = None
    output: Any = None
    grad: Any = None
    rounding: str = "nearest_even"
    grad_rounding: str = "nearest_even"
    seed: Any = None


@dataclass(frozen=True)
class AttentionSettings:
    """scaled_dot_product_attention: "decomposed" into QK^T (attention.qk), softmax (attention.softmax)
    and PV (attention.pv), each resolved from the spec; or "fused": torch's kernel on q, k, v rounded to
    `input`."""
    mode: str = "decomposed"
    input: Any = None
    rounding: str = "nearest_even"
    seed: Any = None


def _fmt(value: Any, name: str, where: str) -> Any:
    if isinstance(value, dict) and "kind" not in value:  # a scaled cast; {"kind": ...}: a format's fields
        return as_scaling(value, f"{where}: {name}")
    if isinstance(value, str) and value in FITTED:
        raise ValueError(f"{where}: {name} {value!r} (fitted per forward pass) is for swapped layers "
                         "(lowprec.nn.swap); emulate takes formats")
    try:
        return _format_or_none(value, name)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _gemm(settings: dict, where: str) -> GemmSettings:
    _check_keys(settings, GEMM_KEYS, where)
    fmts = {k: _fmt(settings.get(k), k, where) for k in ("input", "weight", "output", "grad")}
    stored = (_stored_as(fmts["input"]), _stored_as(fmts["weight"]))  # a matrix unit's operand formats
    try:
        _, mac = _mac_spec(settings.get("mac"), stored)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    rounding = settings.get("rounding", "nearest_even")
    grad_rounding = settings.get("grad_rounding", "nearest_even")
    backward = {}
    for name, keys in BACKWARD_KEYS.items():
        sub = settings.get(name) or {}
        if not isinstance(sub, dict):
            raise ValueError(f"{where}: {name} must be a dict with keys among {', '.join(keys)}; got {sub!r}")
        _check_keys(sub, keys, f"{where}.{name}")
        other = "weight" if name == "dgrad" else "input"
        grad = _fmt(sub["grad"], "grad", f"{where}.{name}") if "grad" in sub else fmts["grad"]
        mine = _fmt(sub[other], other, f"{where}.{name}") if other in sub else fmts[other]
        # a user multiplier (an approximate one, say) trains straight through: the backward GEMMs take
        # exact products (AdaPT's approximation-aware retraining) unless the spec names their MAC
        mac_b = None if mac is not None and mac.user is not None else mac
        if "mac" in sub:
            try:
                _, mac_b = _mac_spec(sub["mac"], stored)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}.{name}: {exc}") from None
        axes = _axes(sub.get("axes"), ("grad", other), f"{where}.{name}")
        # blocks and row scales re-formed along the new reduction, from the unrounded operand
        requantize = other in sub or follows_reduction(mine)
        hadamard = sub.get("hadamard")
        if hadamard is not None and (isinstance(hadamard, bool) or not isinstance(hadamard, int) or hadamard < 2
                                     or hadamard & (hadamard - 1)):
            raise ValueError(f"{where}.{name}: hadamard must be a power of two >= 2 (the transform's size), "
                             f"got {hadamard!r}")
        requantize = requantize or hadamard is not None
        backward[name] = BackwardGemm(grad, mine, sub.get("rounding", grad_rounding), mac_b, axes, requantize,
                                      hadamard, int(sub.get("hadamard_seed", 0)))
    return GemmSettings(fmts["input"], fmts["weight"], fmts["output"], rounding, grad_rounding,
                        settings.get("seed"), mac, _axes(settings.get("axes"), ("input", "weight", "output"), where),
                        backward["dgrad"], backward["wgrad"])


def parse_settings(kind: str, settings: Any, where: str):
    """The settings object of one op kind (None: leave the op as it is)."""
    if settings is None or settings == {}:
        return None
    if not isinstance(settings, dict):
        raise ValueError(f"{where}: settings must be a dict (or None), got {settings!r}")
    if kind in GEMM_KINDS:
        return _gemm(settings, where)
    if kind in VECTOR_KINDS:
        _check_keys(settings, VECTOR_KEYS, where)
        return VectorSettings(_fmt(settings.get("format"), "format", where), settings.get("rounding", "nearest_even"),
                              _fmt(settings.get("grad"), "grad", where), settings.get("grad_rounding", "nearest_even"),
                              settings.get("seed"))
    if kind == "embedding":
        _check_keys(settings, EMBEDDING_KEYS, where)
        return EmbeddingSettings(*(_fmt(settings.get(k), k, where) for k in ("weight", "output", "grad")),
                                 settings.get("rounding", "nearest_even"), settings.get("grad_rounding", "nearest_even"),
                                 settings.get("seed"))
    _check_keys(settings, ATTENTION_KEYS, where)
    mode = settings.get("mode", "decomposed")
    if mode not in ATTENTION_MODES:
        raise ValueError(f"{where}: mode must be one of {', '.join(map(repr, ATTENTION_MODES))}; got {mode!r}")
    return AttentionSettings(mode, _fmt(settings.get("input"), "input", where), settings.get("rounding", "nearest_even"),
                             settings.get("seed"))


def follows_reduction(fmt: Any) -> bool:
    """A format whose scales run along the GEMM's reduction: blocks, row scaling."""
    return isinstance(fmt, BlockFormat) or (isinstance(fmt, Scaling) and fmt.scaling == "row")


def _no_rounding(fmt: Any, dtype) -> bool:
    """Rounding a tensor of `dtype` to fmt leaves it as it is (no format; fp32 on float32)."""
    return fmt is None or (not isinstance(fmt, Scaling) and isinstance(fmt, FloatFormat) and fmt == _FP32
                           and dtype == torch.float32)


class Spec:
    """A parsed spec: settings by op kind at the top level and per module name or pattern; `lookup`
    resolves (module, kind) once and caches it; `used` records which keys matched an executed op."""

    def __init__(self, spec: dict) -> None:
        if not isinstance(spec, dict):
            raise ValueError("spec must map op kinds or module names/patterns to settings; "
                             f"op kinds: {', '.join(OP_KINDS)}")
        self.top: dict[str, Any] = {}
        self.modules: dict[str, dict[str, Any]] = {}
        for key, value in spec.items():
            if key in OP_KINDS:
                self.top[key] = parse_settings(key, value, f"spec[{key!r}]")
                continue
            if not isinstance(value, dict):
                raise ValueError(f"spec[{key!r}]: {key!r} is not an op kind ({', '.join(OP_KINDS)}), so it names "
                                 f"modules and needs a dict of op kinds to settings; got {value!r}")
            bad = [k for k in value if k not in OP_KINDS]
            if bad:
                raise ValueError(f"spec[{key!r}]: unknown op kinds {bad}; op kinds: {', '.join(OP_KINDS)}")
            self.modules[key] = {k: parse_settings(k, v, f"spec[{key!r}][{k!r}]") for k, v in value.items()}
        self.used: set[tuple[str, ...]] = set()
        self._cache: dict[tuple[str, str], Any] = {}

    def lookup(self, module: str, kind: str) -> Any:
        """The settings for an op of `kind` run inside the module named `module` (None: as it is)."""
        hit = self._cache.get((module, kind), self)
        if hit is not self:
            return hit
        chain = (kind, FALLBACK[kind]) if kind in FALLBACK else (kind,)
        best, found = None, None
        for key, kinds in self.modules.items():
            rank = _specificity(key, module)
            if rank is None:
                continue
            for depth, k in enumerate(chain):
                if k in kinds:
                    score = (rank, -depth)
                    if best is None or score > best:
                        best, found = score, (key, k)
                    break
        if found is None:
            for k in chain:
                if k in self.top:
                    found = (k,)
                    break
        settings = None
        if found is not None:
            self.used.add(found)
            settings = self.modules[found[0]][found[1]] if len(found) == 2 else self.top[found[0]]
        self._cache[(module, kind)] = settings
        return settings

    def unused(self) -> list[str]:
        """The spec's keys that matched no executed op (module keys as 'pattern' or 'pattern:kind')."""
        out = [k for k in self.top if (k,) not in self.used]
        for key, kinds in self.modules.items():
            hits = [k for k in kinds if (key, k) in self.used]
            if not hits:
                out.append(key)
            else:
                out.extend(f"{key}:{k}" for k in kinds if k not in hits)
        return out
