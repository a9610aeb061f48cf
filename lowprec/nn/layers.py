"""The emulated layers: QLinear, QConv1d, QConv2d, QMatmul (torch's layers with formats for weight,
input, output and grad and a MAC spec) and QAct (see lowprec.nn)."""

from __future__ import annotations

import difflib
import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F

from .. import ste
from ..formats import FixedFormat, FloatFormat, as_format
from ..mac import MAC
from .autograd import conv_mac, mac_matmul

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


def _check_unit_formats(unit, input, weight, grad) -> None:
    """A layer on a matrix unit: its input, weight and gradient formats are operands of the unit's
    GEMMs (forward: input x weight; backward: grad x weight, input x grad). The MAC checked input and
    weight (its inputs); the gradient is checked here."""
    missing = [name for name, fmt in (("input", input), ("weight", weight), ("grad", grad)) if fmt is None]
    if missing:
        raise ValueError(f"mac unit {unit.name!r}: the layer needs {', '.join(missing)} formats among the unit's "
                         "operands (the forward and backward GEMMs run on the unit)")
    unit.check_operands(grad, grad)


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
               grad_rounding="nearest_even", seed=None, axes=None, **unknown: Any) -> None:
        if unknown:  # a misspelt key: name the layer and its keys (not this helper)
            keys = LAYER_KEYS + ("seed",)
            close = {k: difflib.get_close_matches(k, keys, n=1) for k in unknown}
            guesses = [f"{c[0]!r} for {k!r}" for k, c in close.items() if c]
            hint = f"; did you mean {', '.join(guesses)}?" if guesses else ""
            raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s) {', '.join(map(repr, unknown))}"
                            f"{hint} (its quantization keys: {', '.join(keys)})")
        self.q_weight = _format_or_none(weight, "weight")
        self.q_input = _format_or_none(input, "input")
        self.q_output = _format_or_none(output, "output")
        self.q_grad = _format_or_none(grad, "grad")
        self.q_rounding, self.q_grad_rounding, self.q_seed = rounding, grad_rounding, seed
        self.q_axes = _axes(axes, self.BLOCK_AXES)
        for fmt in (self.q_weight, self.q_input, self.q_output, self.q_grad):
            if fmt is not None and not isinstance(fmt, str):
                ste.format_key(fmt)  # known to torch.compile's graphs (lowprec::quantize takes keys)
        # q_mac.inputs: (input, weight) formats, so cost.report(layer.q_mac.counts) prices the layer
        self.q_mode, self.q_mac = _mac_spec(mac, (_stored_as(self.q_input), _stored_as(self.q_weight)))
        if self.q_mac is not None and self.q_mac.unit is not None:
            _check_unit_formats(self.q_mac.unit, self.q_input, self.q_weight, self.q_grad)
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
        (more only when it looks wrong), until it has warned. On a GPU the reduction's sync would stall
        the queue every layer: there the first 8 calls are checked, then every 64th."""
        if torch.compiler.is_compiling():  # the check's sync would break the graph; so might the bookkeeping
            return q
        warned = self.__dict__.setdefault("_q_warned", set())
        if operand in warned:
            return q
        if q.device.type != "cpu":
            calls = self.__dict__.setdefault("_q_calls", {})
            calls[operand] = n = calls.get(operand, 0) + 1
            if n > 8 and n % 64:
                return q
        # one pass and one sync: sum |q| is 0 exactly when q is all zeros, not finite when q holds NaN or
        # Inf (or when the sum overflows: counted below before any warning)
        total = float(torch.linalg.vector_norm(q.detach(), 1))
        problem = None
        if not math.isfinite(total):
            bad = int((~torch.isfinite(q.detach())).sum()) - int((~torch.isfinite(x.detach())).sum())
            if bad > 0:
                problem = (f"{bad} of {q.numel()} values became NaN or Inf (beyond the format's range); use a "
                           "scaled format (e.g. mxfp8_e4m3) or one with overflow='saturate'")
        elif total == 0 and bool(x.detach().any()):
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
            y = mac_matmul(flat, wq.t(), self.q_mac, self.q_grad).reshape(*xq.shape[:-1], self.out_features)
            if self.bias is not None:
                y = y + self.bias
        return self._out(y)


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
            y = conv_mac(xq, wq, self.bias, self.q_mac, self.stride, self.padding, self.dilation, self.groups,
                         self.q_grad)
        return self._out(y)


class QConv1d(_QConv, torch.nn.Conv1d):
    """torch.nn.Conv1d with emulated formats and a MAC spec, as QConv2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, wq = self._in(x), self._w(self.weight)
        if self.q_mode == "fake":
            y = F.conv1d(xq, wq, self.bias, self.stride, self.padding, self.dilation, self.groups)
        else:
            y = conv_mac(xq.unsqueeze(2), wq.unsqueeze(2), self.bias, self.q_mac, (1, self.stride[0]),
                          (0, self.padding[0]), (1, self.dilation[0]), self.groups, self.q_grad)
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
            y = torch.stack([mac_matmul(x, z, self.q_mac, self.q_grad) for x, z in zip(a3, b3)]).reshape(
                *batch, aq.shape[-2], bq.shape[-1])
        else:
            y = mac_matmul(aq, bq, self.q_mac, self.q_grad)
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
