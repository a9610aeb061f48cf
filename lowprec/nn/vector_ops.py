"""Elementwise ("vector") ops computed in a low-precision format, every step rounded, as microxcaling's
vector ops and a vector unit without wider intermediates compute them. The steps (each result rounded
to the format, straight-through gradients; the reductions sum in float32 and round the sum):

- softmax: x, x - max, exp, the sum, the quotient;
- layer_norm: x, the mean, x - mean, its square, the variance, 1/sqrt(var + eps), the normalised
  value, times the weight, plus the bias;
- rms_norm: x, x^2, its mean, 1/sqrt(mean + eps), the normalised value, times the weight;
- gelu: x, Phi(x) (exact, or the tanh form's tanh and 0.5 (1 + tanh)), x Phi(x);
- silu: x, sigmoid(x), x sigmoid(x).

`grad` rounds the gradient arriving at the op's output.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .. import ste
from .emulate_spec import VectorSettings


def _rounder(s: VectorSettings) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: ste.quantize(t, s.format, s.rounding, seed=s.seed)


def _out(y: torch.Tensor, s: VectorSettings) -> torch.Tensor:
    return y if s.grad is None else ste.quantize_grad(y, s.grad, s.grad_rounding, seed=s.seed)


def softmax(x: torch.Tensor, dim: int, s: VectorSettings) -> torch.Tensor:
    q = _rounder(s)
    x = q(x)
    d = q(x - x.detach().amax(dim, keepdim=True))
    e = q(torch.exp(d))
    return _out(q(e / q(e.sum(dim, keepdim=True))), s)


def layer_norm(x: torch.Tensor, shape, weight, bias, eps: float, s: VectorSettings) -> torch.Tensor:
    q = _rounder(s)
    dims = tuple(range(-len(shape), 0))
    x = q(x)
    d = q(x - q(x.mean(dims, keepdim=True)))
    var = q(q(d * d).mean(dims, keepdim=True))
    y = q(d * q(torch.rsqrt(var + eps)))
    if weight is not None:
        y = q(y * weight)
    if bias is not None:
        y = q(y + bias)
    return _out(y, s)


def rms_norm(x: torch.Tensor, shape, weight, eps, s: VectorSettings) -> torch.Tensor:
    q = _rounder(s)
    dims = tuple(range(-len(shape), 0))
    if eps is None:
        eps = torch.finfo(x.dtype).eps
    x = q(x)
    ms = q(q(x * x).mean(dims, keepdim=True))
    y = q(x * q(torch.rsqrt(ms + eps)))
    if weight is not None:
        y = q(y * weight)
    return _out(y, s)


def gelu(x: torch.Tensor, approximate: str, s: VectorSettings) -> torch.Tensor:
    q = _rounder(s)
    x = q(x)
    if approximate == "tanh":
        t = q(torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))
        phi = q(0.5 * (1 + t))
    else:
        phi = q(0.5 * (1 + torch.erf(x * (1 / math.sqrt(2)))))
    return _out(q(x * phi), s)


def silu(x: torch.Tensor, s: VectorSettings) -> torch.Tensor:
    q = _rounder(s)
    x = q(x)
    return _out(q(x * q(torch.sigmoid(x))), s)
