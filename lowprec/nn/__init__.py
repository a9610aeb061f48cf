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

from .autograd import conv_mac, mac_matmul
from .calibration import calibrate, observe_formats
from .ptq import correct_bias, fold_batchnorm, gptq, gptq_layer
from .schedule import Schedule
from .stats import TensorStats, tensor_stats
from . import recipes
from .emulate import emulate, emulating, emulation, unemulate
from .emulate_spec import OP_KINDS
from .layers import LAYER_KEYS, MODES, QAct, QConv1d, QConv2d, QLinear, QMatmul
from .surgery import load_spec, swap, unswap

__all__ = ["QLinear", "QConv1d", "QConv2d", "QMatmul", "QAct", "swap", "unswap", "load_spec", "calibrate", "MODES",
           "mac_matmul", "conv_mac", "LAYER_KEYS", "emulate", "unemulate", "emulating", "emulation", "OP_KINDS", "recipes", "observe_formats", "fold_batchnorm", "correct_bias", "gptq", "gptq_layer", "Schedule", "TensorStats", "tensor_stats"]
