"""Low-precision training: an optimizer wrapper that keeps weights, gradients, optimizer states and
updates in given formats, with loss scaling.

``LowPrecisionOptimizer(optimizer, weight=..., grad=..., state=..., update=..., master=True,
weight_rounding="nearest_even", loss_scale="dynamic", seed=None)`` wraps any torch optimizer:

1. ``opt.scale_loss(loss).backward()`` backpropagates loss * S (S: the loss scale);
2. ``opt.step()`` rounds each gradient to ``grad`` (the scaled value, where a low-precision backward
   pass would hold it: Micikevicius et al., ICLR 2018), skips the step if any is Inf or NaN (halving a
   dynamic S; S doubles after ``growth_interval`` good steps), unscales by S, and runs the inner
   optimizer on the fp32 master weights (``master=True``) or on the low-precision weights themselves;
   the change of each weight is rounded to ``update``, the weights to ``weight`` (in
   ``weight_rounding``: "stochastic" is Wang et al. 2018's rounding of the weight update, unbiased
   where nearest rounding would swamp small updates), and every floating tensor of the optimizer's
   state (momentum, Adam's moments) to ``state``.

Each format may be None (kept in float32). ``step`` returns True if it updated the weights.
"""

from __future__ import annotations

from typing import Any

import torch

from .formats import as_format
from .array import quantize

__all__ = ["LowPrecisionOptimizer"]


class LowPrecisionOptimizer:
    def __init__(self, optimizer: torch.optim.Optimizer, *, weight: Any = None, grad: Any = None, state: Any = None,
                 update: Any = None, master: bool = True, weight_rounding: str = "nearest_even",
                 loss_scale: Any = "dynamic", init_scale: float = 2.0**16, growth_interval: int = 2000,
                 seed: int | None = None) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.weight, self.grad, self.state, self.update = (as_format(f) if f is not None else None
                                                           for f in (weight, grad, state, update))
        self.weight_rounding = weight_rounding
        if loss_scale == "dynamic":
            self.dynamic, self.scale = True, float(init_scale)
        elif loss_scale is None:
            self.dynamic, self.scale = False, 1.0
        elif isinstance(loss_scale, (int, float)) and loss_scale > 0:
            self.dynamic, self.scale = False, float(loss_scale)
        else:
            raise ValueError(f"loss_scale must be 'dynamic', None or a positive number; got {loss_scale!r}")
        if growth_interval < 1:
            raise ValueError(f"growth_interval must be >= 1, got {growth_interval}")
        self.growth_interval = growth_interval
        self.good_steps = 0
        self.skipped = 0
        self._seed = seed if seed is not None else 0
        self._step = 0
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.masters = {p: p.detach().clone() for p in self.params} if master else None
        with torch.no_grad():
            for p in self.params:
                self._set_weight(p, p.detach().clone())

    # -- the training loop's calls ------------------------------------------------------------------------
    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.scale

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def _round(self, t: torch.Tensor, fmt, rounding: str = "nearest_even") -> torch.Tensor:
        if fmt is None:
            return t
        self._step += 1
        return quantize(t.contiguous(), fmt, rounding, seed=(self._seed * 1000003 + self._step) % 2**64)

    def _set_weight(self, p: torch.Tensor, value: torch.Tensor) -> None:
        if self.masters is not None:
            self.masters[p].copy_(value)
        p.copy_(self._round(value, self.weight, self.weight_rounding))

    @torch.no_grad()
    def step(self) -> bool:
        grads = {}
        finite = True
        for p in self.params:
            if p.grad is None:
                continue
            g = self._round(p.grad.detach().float(), self.grad)
            finite &= bool(torch.isfinite(g).all())
            grads[p] = g
        if not finite:
            self.skipped += 1
            self.good_steps = 0
            if self.dynamic:
                self.scale /= 2
            return False
        before = {}
        for p, g in grads.items():
            p.grad.copy_(g / self.scale)
            before[p] = (self.masters[p] if self.masters is not None else p.detach()).clone()
            if self.masters is not None:
                p.copy_(self.masters[p])  # the inner optimizer updates the master copy
        self.optimizer.step()
        for p in grads:
            delta = self._round(p.detach() - before[p], self.update)
            self._set_weight(p, before[p] + delta)
            for value in self.optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.is_floating_point() and value.dim() > 0:
                    value.copy_(self._round(value, self.state))
        self.good_steps += 1
        if self.dynamic and self.good_steps % self.growth_interval == 0:
            self.scale *= 2
        return True
