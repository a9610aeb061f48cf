"""Emulated-precision torch layers and model surgery.

``QLinear``, ``QConv1d``, ``QConv2d`` (subclasses of the torch layers, same parameters) and
``QMatmul`` take formats for ``weight``, ``input``, ``output`` and ``grad`` (the gradient arriving at
the layer's output, e.g. fp8_e5m2 with stochastic rounding), each None (kept as is) or a format
(weights also "ternary": TWN, or "binary": XNOR/BWN per output channel, refitted every forward pass,
straight-through), and a MAC spec ``mac``:

- ``{"mode": "fake"}`` (the default): operands and outputs quantized with straight-through gradients,
  the arithmetic in float32 (torch's kernels: fast, and on any device);
- ``{"mode": "mac", "acc": "fp16", "chunk": 64, ...}`` (any lowprec.MAC keyword): the products and sums
  bit-accurate through lowprec.MAC, forward and backward (dX = dY W and dW = dY^T X by the same MAC;
  the bias and its gradient in float32). Convolutions go through unfold (im2col).

``swap(model, spec)`` replaces modules by type name ("Linear", "Conv2d", "Conv1d") and by fnmatch
patterns on qualified names, keeping their parameters (the same Parameter objects), buffers and
device; the most specific key wins: an exact qualified name, then the pattern with the most literal
characters, then the type name. ``unswap`` restores the plain modules. A spec is a dict or a TOML (or,
with PyYAML, YAML) file of the same shape, e.g.::

    {"Linear": {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2",
                "mac": {"mode": "mac", "acc": "fp16", "chunk": 64}},
     "classifier.*": {"weight": "fp32"}}
"""

from __future__ import annotations

import fnmatch
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import ste
from .formats import FixedFormat, FloatFormat, as_format
from .mac import MAC

__all__ = ["QLinear", "QConv1d", "QConv2d", "QMatmul", "QAct", "swap", "unswap", "load_spec", "calibrate", "MODES"]

MODES = ("fake", "mac")
LAYER_KEYS = ("weight", "input", "output", "grad", "grad_rounding", "rounding", "mac", "axes")
OPERANDS = ("weight", "input", "output", "grad")


FITTED = ("binary", "ternary")  # weights fitted per forward pass: XNOR/BWN sign, TWN, straight-through


def _format_or_none(value: Any, name: str):
    if value is None or (name == "weight" and value in FITTED):
        return value
    try:
        return as_format(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: {exc}") from None


def _stored_as(fmt: Any) -> Any:
    """The per-element format an operand is stored in, for the MAC's bits-read counts (float32 when it
    is kept as is; None where no per-element format says it: block-scaled, codebooks, fitted)."""
    if fmt is None:
        return "fp32"
    return fmt if isinstance(fmt, (FloatFormat, FixedFormat)) else None


def _mac_spec(mac: Any, inputs: tuple = (None, None)) -> tuple[str, MAC | None]:
    if mac is None:
        return "fake", None
    if isinstance(mac, MAC):
        return "mac", mac
    if not isinstance(mac, dict):
        raise TypeError(f"mac must be None, a dict with 'mode', or a lowprec.MAC; got {type(mac).__name__}")
    kwargs = dict(mac)
    mode = kwargs.pop("mode", "fake")
    if mode not in MODES:
        raise ValueError(f"mac mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
    if mode == "fake":
        if kwargs:
            raise ValueError(f"mac mode 'fake' takes no MAC parameters; got {sorted(kwargs)}")
        return "fake", None
    if "inputs" not in kwargs and None not in inputs:
        kwargs["inputs"] = inputs  # the operands' formats: memory traffic priced at their widths
    try:
        return "mac", MAC(**kwargs)
    except TypeError as exc:
        raise ValueError(f"mac: {exc}") from None


def _axes(axes: Any, defaults: dict[str, int]) -> dict[str, int]:
    """The blocks' axis of each operand: the layer's reduction axes, overridden by a spec's `axes`."""
    if axes is None:
        return dict(defaults)
    if not isinstance(axes, dict) or set(axes) - set(OPERANDS):
        raise ValueError(f"axes must be a dict with keys among {', '.join(OPERANDS)}; got {axes!r}")
    for k, v in axes.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"axes[{k!r}] must be an int, got {v!r}")
    return {**defaults, **axes}


class _QMixin:
    """The quantization settings every emulated layer carries. Block-scaled formats (MX, NVFP4, bfp)
    take their blocks along the reduction dimension, as MX hardware and microxcaling do (the class's
    ``BLOCK_AXES``: in_features for Linear weights and inputs, channels (axis 1) for convolutions);
    a spec's ``axes`` (e.g. ``{"input": -1}``) overrides them."""

    BLOCK_AXES = {"weight": -1, "input": -1, "output": -1, "grad": -1}

    def _setup(self, weight=None, input=None, output=None, grad=None, mac=None, rounding="nearest_even",
               grad_rounding="nearest_even", seed=None, axes=None) -> None:
        self.q_weight = _format_or_none(weight, "weight")
        self.q_input = _format_or_none(input, "input")
        self.q_output = _format_or_none(output, "output")
        self.q_grad = _format_or_none(grad, "grad")
        self.q_rounding, self.q_grad_rounding, self.q_seed = rounding, grad_rounding, seed
        self.q_axes = _axes(axes, self.BLOCK_AXES)
        # q_mac.inputs: (input, weight) formats, so cost.report(layer.q_mac.counts) prices the layer
        self.q_mode, self.q_mac = _mac_spec(mac, (_stored_as(self.q_input), _stored_as(self.q_weight)))
        self.q_spec = dict(weight=weight, input=input, output=output, grad=grad, mac=mac, rounding=rounding,
                           grad_rounding=grad_rounding, axes=axes)

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        if self.q_input is None:
            return x
        q = ste.quantize(x, self.q_input, self.q_rounding, seed=self.q_seed, axis=self.q_axes["input"])
        return self._watch(x, q, "input", self.q_input)

    def _watch(self, x: torch.Tensor, q: torch.Tensor, operand: str, fmt: Any) -> torch.Tensor:
        """Warn once per layer and operand when quantizing turned a nonzero tensor into zeros, or made
        NaN/Inf that x did not hold: training then goes nowhere without a word. One reduction per call
        (more only when it looks wrong)."""
        warned = self.__dict__.setdefault("_q_warned", set())
        if operand in warned:
            return q
        total = q.detach().sum()
        problem = None
        if not bool(torch.isfinite(total)) and bool(torch.isfinite(x.detach()).all()):
            bad = int((~torch.isfinite(q.detach())).sum())
            problem = (f"{bad} of {q.numel()} values became NaN or Inf (beyond the format's range); use a "
                       "scaled format (e.g. mxfp8_e4m3) or one with overflow='saturate'")
        elif total == 0 and not bool(q.detach().any()) and bool(x.detach().any()):
            problem = (f"every value rounded to 0 (0 of {int(torch.count_nonzero(x.detach()))} nonzero values "
                       "survive): the values lie below the format's smallest; use a scaled format (e.g. "
                       "mxfp4_e2m1, nvfp4, an int affine format) or rescale")
        if problem is not None:
            warned.add(operand)
            name = getattr(fmt, "name", None) or fmt
            where = f"layer {self.q_name!r}" if getattr(self, "q_name", None) else type(self).__name__
            warnings.warn(f"{where}: {operand} in {name}: {problem}", RuntimeWarning, stacklevel=3)
        return q

    def _w(self, w: torch.Tensor) -> torch.Tensor:
        if self.q_weight is None:
            return w
        if self.q_weight == "ternary":
            return ste.twn(w)
        if self.q_weight == "binary":
            return ste.xnor_sign(w, axis=0)
        q = ste.quantize(w, self.q_weight, self.q_rounding, seed=self.q_seed, axis=self.q_axes["weight"])
        return self._watch(w, q, "weight", self.q_weight)

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        if self.q_grad is not None:
            y = ste.quantize_grad(y, self.q_grad, self.q_grad_rounding, seed=self.q_seed, axis=self.q_axes["grad"])
        if self.q_output is not None:
            q = ste.quantize(y, self.q_output, self.q_rounding, seed=self.q_seed, axis=self.q_axes["output"])
            y = self._watch(y, q, "output", self.q_output)
        return y

    def extra_repr(self) -> str:
        base = super().extra_repr()
        parts = [f"{k}={getattr(getattr(self, 'q_' + k), 'name', None) or getattr(self, 'q_' + k)!r}"
                 for k in ("weight", "input", "output", "grad") if getattr(self, "q_" + k) is not None]
        parts.append(f"mode={self.q_mode!r}" + (f", {self.q_mac!r}" if self.q_mac is not None else ""))
        return ", ".join([base] + parts) if base else ", ".join(parts)


class _MACMatmul(torch.autograd.Function):
    """a (m, k) @ b (k, n) through a lowprec.MAC, forward and backward."""

    @staticmethod
    def forward(ctx, a, b, mac):
        ctx.save_for_backward(a, b)
        ctx.mac = mac
        return mac.matmul(_wide(a.detach()), _wide(b.detach())).to(a.dtype)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        g = _wide(g)
        ga = ctx.mac.matmul(g, _wide(b.t())).to(a.dtype) if ctx.needs_input_grad[0] else None
        gb = ctx.mac.matmul(_wide(a.t()), g).to(b.dtype) if ctx.needs_input_grad[1] else None
        return ga, gb, None


def _wide(t: torch.Tensor) -> torch.Tensor:
    """Contiguous, and float32 for float16/bfloat16 (exact): the MAC takes float32/float64; a half
    model's layer outputs are then in its own dtype, as torch's half layers give them."""
    return (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).contiguous()


def mac_matmul(a: torch.Tensor, b: torch.Tensor, mac: MAC) -> torch.Tensor:
    """2-D a @ b, bit-accurate through mac, differentiable (the backward products through mac too)."""
    if a.device.type != "cpu":
        raise ValueError(f"mac mode runs on the CPU (the MAC simulator); the tensors are on {a.device}")
    return _MACMatmul.apply(a, b, mac)


class QLinear(_QMixin, torch.nn.Linear):
    """torch.nn.Linear with emulated formats (see the module doc). Block-scaled formats block along
    in_features: the weight's axis 1 and the input's last axis (outputs and gradients: the last)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, device=None, dtype=None,
                 **q: Any) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._setup(**q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, wq = self._in(x), self._w(self.weight)
        if self.q_mode == "fake":
            y = F.linear(xq, wq, self.bias)
        else:
            flat = xq.reshape(-1, xq.shape[-1])
            y = mac_matmul(flat, wq.t(), self.q_mac).reshape(*xq.shape[:-1], self.out_features)
            if self.bias is not None:
                y = y + self.bias
        return self._out(y)


def _conv_mac(x: torch.Tensor, w: torch.Tensor, bias, mac: MAC, stride, padding, dilation, groups) -> torch.Tensor:
    """conv2d through unfold and mac_matmul, per group."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # (n, c*kh*kw, L)
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // groups
    outs = []
    for g in range(groups):
        cols_g = cols[:, g * cg * kh * kw:(g + 1) * cg * kh * kw, :]  # (n, cg*k, L)
        a = cols_g.permute(0, 2, 1).reshape(-1, cg * kh * kw)  # (n*L, cg*k)
        wg = w[g * og:(g + 1) * og].reshape(og, -1)
        outs.append(mac_matmul(a, wg.t(), mac).reshape(n, oh * ow, og))
    y = torch.cat(outs, dim=2).permute(0, 2, 1).reshape(n, o, oh, ow)
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


class _QConv(_QMixin):
    """The constructor of the emulated convolutions: torch's arguments plus the quantization ones.
    Block-scaled formats block along the channels: axis 1 of weights, inputs, outputs and gradients."""

    BLOCK_AXES = {"weight": 1, "input": 1, "output": 1, "grad": 1}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        q = {k: kwargs.pop(k) for k in LAYER_KEYS + ("seed",) if k in kwargs}
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError(f"{type(self).__name__} supports numeric zero padding (padding_mode='zeros')")
        self._setup(**q)


class QConv2d(_QConv, torch.nn.Conv2d):
    """torch.nn.Conv2d with emulated formats for weight, input, output and grad and a MAC spec (see
    the module doc); mac mode goes through unfold (im2col), reduction order (channel, row, column)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, wq = self._in(x), self._w(self.weight)
        if self.q_mode == "fake":
            y = F.conv2d(xq, wq, self.bias, self.stride, self.padding, self.dilation, self.groups)
        else:
            y = _conv_mac(xq, wq, self.bias, self.q_mac, self.stride, self.padding, self.dilation, self.groups)
        return self._out(y)


class QConv1d(_QConv, torch.nn.Conv1d):
    """torch.nn.Conv1d with emulated formats and a MAC spec, as QConv2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, wq = self._in(x), self._w(self.weight)
        if self.q_mode == "fake":
            y = F.conv1d(xq, wq, self.bias, self.stride, self.padding, self.dilation, self.groups)
        else:
            y = _conv_mac(xq.unsqueeze(2), wq.unsqueeze(2), self.bias, self.q_mac, (1, self.stride[0]),
                          (0, self.padding[0]), (1, self.dilation[0]), self.groups)
            y = y.squeeze(2)
        return self._out(y)


class QMatmul(_QMixin, torch.nn.Module):
    """a @ b for attention-style products: `input` quantizes a, `weight` quantizes b. Block-scaled
    formats block along the reduction: a's last axis, b's second to last."""

    BLOCK_AXES = {"weight": -2, "input": -1, "output": -1, "grad": -1}

    def __init__(self, **q: Any) -> None:
        super().__init__()
        self._setup(**q)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        aq, bq = self._in(a), self._w(b)
        if self.q_mode == "fake":
            return self._out(aq @ bq)
        if aq.dim() != 2 or bq.dim() != 2:
            batch = torch.broadcast_shapes(aq.shape[:-2], bq.shape[:-2])
            a3 = aq.expand(*batch, *aq.shape[-2:]).reshape(-1, *aq.shape[-2:])
            b3 = bq.expand(*batch, *bq.shape[-2:]).reshape(-1, *bq.shape[-2:])
            y = torch.stack([mac_matmul(x, z, self.q_mac) for x, z in zip(a3, b3)]).reshape(*batch, aq.shape[-2], bq.shape[-1])
        else:
            y = mac_matmul(aq, bq, self.q_mac)
        return self._out(y)


class QAct(torch.nn.Module):
    """An activation quantizer: a format with a straight-through estimator, or PACT with a learned
    clipping level (``pact_bits=k``, ``alpha`` its initial value)."""

    def __init__(self, fmt: Any = None, *, rounding: str = "nearest_even", estimator: str = "ste",
                 pact_bits: int | None = None, alpha: float = 6.0) -> None:
        super().__init__()
        if (fmt is None) == (pact_bits is None):
            raise ValueError("QAct needs exactly one of fmt (a format) and pact_bits")
        self.fmt = _format_or_none(fmt, "fmt")
        self.rounding, self.estimator, self.pact_bits = rounding, estimator, pact_bits
        self.alpha = torch.nn.Parameter(torch.tensor(float(alpha))) if pact_bits else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pact_bits:
            return ste.pact(x, self.alpha, self.pact_bits)
        return ste.quantize(x, self.fmt, self.rounding, estimator=self.estimator)


# -- model surgery ----------------------------------------------------------------------------------------
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


def _specificity(key: str, qualified: str) -> tuple[int, int] | None:
    """How specifically a key matches a module name: exact name (2, len), pattern (1, literals)."""
    if key == qualified:
        return (2, len(key))
    if any(ch in key for ch in "*?[") and fnmatch.fnmatchcase(qualified, key):
        return (1, sum(ch not in "*?[]" for ch in key))
    return None


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
    if new.q_mode == "mac" and old.weight.device.type != "cpu":
        raise ValueError(f"mac mode runs on the CPU; this layer's weight is on {old.weight.device}")
    new.weight = old.weight  # the same Parameter: optimizers and tied weights keep working
    new.bias = old.bias
    for name, buf in old.named_buffers(recurse=False):
        new.register_buffer(name, buf)
    new.train(old.training)
    return new


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
        parent_name, _, child = qualified.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    return model


# -- post-training quantization ---------------------------------------------------------------------------------
def _make_observer(observer: Any):
    from . import observers

    named = {"minmax": observers.MinMaxObserver, "moving_average": observers.MovingAverageMinMaxObserver,
             "percentile": observers.PercentileObserver, "mse": observers.MSEObserver, "kl": observers.KLObserver}
    if isinstance(observer, str):
        if observer not in named:
            raise ValueError(f"observer must be one of {', '.join(map(repr, named))} or a factory; got {observer!r}")
        return named[observer]()
    if callable(observer):
        return observer()
    raise TypeError(f"observer must be a name or a factory, got {observer!r}")


def calibrate(model: torch.nn.Module, batches: Any, *, observer: Any = "minmax", bits: int = 8,
              weight_bits: int = 8, per_channel_weights: bool = True) -> torch.nn.Module:
    """Post-training quantization: plain Linear/Conv layers are swapped for emulated ones (fake mode),
    an observer per layer watches its inputs over `batches` (an iterable of model inputs), then every
    layer's formats are frozen: inputs to the observer's IntAffineFormat (asymmetric unsigned for
    min-max observers, which sees ReLU outputs >= 0 as [0, max]; the others are symmetric signed),
    weights to symmetric signed `weight_bits`-bit integers per output channel (or per tensor)."""
    from .observers import MinMaxObserver

    present = {type(m).__name__ for m in model.modules() if type(m) in _SWAPS}
    if present:
        swap(model, {name: {} for name in present})
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (QLinear, QConv1d, QConv2d))]
    if not layers:
        raise ValueError("the model has no Linear/Conv layer to calibrate")
    watchers = {n: _make_observer(observer) for n, _ in layers}
    def watch(name):
        def hook(module, args):
            watchers[name].update(args[0].detach().cpu())  # returns None: the input goes on unchanged
        return hook

    hooks = [m.register_forward_pre_hook(watch(n)) for n, m in layers]
    seen = 0
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
                seen += 1
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise ValueError("batches was empty: calibration needs data")
    for n, m in layers:
        obs = watchers[n]
        if isinstance(obs, MinMaxObserver):
            m.q_input = obs.format(bits, signed=False, symmetric=False)
        else:
            m.q_input = obs.format(bits)
        w = m.weight.detach().cpu().double()
        wobs = MinMaxObserver(axis=0 if per_channel_weights else None).update(w)
        m.q_weight = wobs.format(weight_bits, signed=True, symmetric=True)
    return model
