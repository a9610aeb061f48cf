"""Whole-model emulation without rewriting the model: every product, attention, embedding and vector
op a forward pass calls goes through lowprec with the formats a spec gives its op kind and module.

``emulate(model, spec)`` (in place; ``unemulate(model)`` undoes it) enters a TorchFunctionMode for
each forward pass of the model and tracks which submodule is running; ``with emulating(spec):`` does
the same for code that is not a module. Intercepted, by op kind (see lowprec.nn.emulate_spec):

- linear: F.linear (nn.Linear, and the gate GEMMs of nn.LSTM/GRU/RNN, decomposed);
- conv, conv_transpose: conv1d/2d/3d and conv_transpose1d/2d/3d;
- matmul: torch.matmul and @, mm, bmm, addmm, baddbmm, two-operand einsum;
- attention: F.scaled_dot_product_attention, decomposed into attention.qk, attention.softmax and
  attention.pv (or fused on rounded q, k, v); nn.MultiheadAttention's products are seen one by one;
- embedding; layer_norm, rms_norm, softmax, gelu, silu (vector ops, every step rounded).

`emulation(model).calls` counts the intercepted ops by (module, kind); `.emulated` those a spec
changed. Spec keys that matched no op of the first forward pass are reported then (a warning, or a
ValueError with strict=True).
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .. import ste
from . import composites, recipes, vector_ops
from .emulate_spec import AttentionSettings, Spec
from .gemm import AddmmOp, ConvOp, EinsumOp, LinearOp, MatmulOp, Plan, run
from .surgery import load_spec

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_MHA = composites.unguarded(F.multi_head_attention_forward)


def _bind(args: tuple, kwargs: dict, names: tuple, defaults: dict) -> dict:
    bound = dict(defaults)
    bound.update(zip(names, args))
    bound.update(kwargs)
    return bound


def _floating(*tensors) -> bool:
    return all(isinstance(t, torch.Tensor) and t.dtype in _FLOATS for t in tensors if t is not None)


class Emulation(TorchFunctionMode):
    """The mode: a parsed spec, the stack of running module names, and the counts."""

    def __init__(self, spec: Spec, strict: bool = False) -> None:
        super().__init__()
        self.spec, self.strict = spec, strict
        self.stack: list[str] = []
        self.calls: Counter = Counter()
        self.emulated: Counter = Counter()
        self.reported = False

    # -- which module runs -------------------------------------------------------------------------
    @property
    def module(self) -> str:
        return self.stack[-1] if self.stack else ""

    def settings(self, kind: str) -> Any:
        module = self.module
        self.calls[(module, kind)] += 1
        found = self.spec.lookup(module, kind)
        if found is not None:
            self.emulated[(module, kind)] += 1
        return found

    def report_unused(self) -> None:
        """After the first pass: the spec's keys that matched nothing the model ran."""
        if self.reported:
            return
        self.reported = True
        unused = self.spec.unused()
        if unused:
            ran = sorted({f"{m or '<top>'}:{k}" for m, k in self.calls})
            msg = f"emulation spec keys matched no op the model ran: {unused}; ops run (module:kind): {ran[:20]}"
            if len(ran) > 20:
                msg += f" ... ({len(ran)} in all)"
            if self.strict:
                raise ValueError(msg)
            warnings.warn(msg, stacklevel=3)

    # -- dispatch -----------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = _HANDLERS.get(func)
        if handler is None or "out" in kwargs:
            return func(*args, **kwargs)
        return handler(self, func, args, kwargs)

    def gemm(self, kind: str, op: Any, a, b, c=None, fallback=None):
        """Run one product op under the settings for `kind` here (fallback(): the op as it is)."""
        s = self.settings(kind)
        if s is None or not _floating(a, b, c) or s.unchanged(a.dtype):
            return fallback()
        plan = Plan(op, s, kind, self.module)
        with _named(plan.where()):
            return run(plan, a, b, c)


@contextlib.contextmanager
def _named(where: str) -> Iterator[None]:
    """A bad format or shape surfaces naming the op and the module."""
    try:
        yield
    except ValueError as exc:
        if str(exc).startswith(where):
            raise
        raise ValueError(f"{where}: {exc}") from exc


# -- handlers: (emulation, func, args, kwargs) -> result ------------------------------------------------

def _linear(em, func, args, kwargs):
    p = _bind(args, kwargs, ("input", "weight", "bias"), {"bias": None})
    a, b, c = p["input"], p["weight"], p["bias"]
    return em.gemm("linear", LinearOp(func, a.shape, b.shape), a, b, c, lambda: func(*args, **kwargs))


def _conv(transposed: bool):
    names = (("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation") if transposed
             else ("input", "weight", "bias", "stride", "padding", "dilation", "groups"))
    defaults = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1, "output_padding": 0}
    kind = "conv_transpose" if transposed else "conv"

    def handler(em, func, args, kwargs):
        p = _bind(args, kwargs, names, defaults)
        a, b, c = p["input"], p["weight"], p["bias"]
        op = ConvOp(func, transposed, a.shape, b.shape, p["stride"], p["padding"], p["dilation"], p["groups"],
                    p["output_padding"])
        return em.gemm(kind, op, a, b, c, lambda: func(*args, **kwargs))

    return handler


def _matmul(em, func, args, kwargs):
    a, b = (args[1], args[0]) if func is torch.Tensor.__rmatmul__ else (args[0], args[1])
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.dim() == 0 or b.dim() == 0:
        return func(*args, **kwargs)
    return em.gemm("matmul", MatmulOp(torch.matmul if func is torch.Tensor.__rmatmul__ else func, a.shape, b.shape),
                   a, b, None, lambda: func(*args, **kwargs))


def _addmm(em, func, args, kwargs):
    p = _bind(args, kwargs, ("input", "mat1", "mat2"), {"beta": 1, "alpha": 1})
    c, a, b = p["input"], p["mat1"], p["mat2"]
    op = AddmmOp(func, a.shape, b.shape, p["beta"], p["alpha"])
    return em.gemm("matmul", op, a, b, c, lambda: func(*args, **kwargs))


def _einsum(em, func, args, kwargs):
    equation, operands = args[0], args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if len(operands) != 2 or not isinstance(equation, str):
        s = em.settings("matmul")
        if s is not None and len(operands) > 2 and not s.unchanged(torch.float32):
            raise ValueError(f"matmul in module {em.module!r}: einsum with {len(operands)} operands ({equation!r}); "
                             "emulation rounds two-operand products: split it into pairs")
        return func(*args, **kwargs)
    a, b = operands
    return em.gemm("matmul", EinsumOp(equation, a.shape, b.shape), a, b, None, lambda: func(*args, **kwargs))


def _sdpa(em, func, args, kwargs):
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    p = _bind(args, kwargs, names, {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None,
                                     "enable_gqa": False})
    s = em.settings("attention")
    if isinstance(s, AttentionSettings) and s.mode == "fused":
        if s.input is None:
            return func(*args, **kwargs)
        q, k, v = (ste.quantize(p[n], s.input, s.rounding, seed=s.seed) for n in ("query", "key", "value"))
        return func(q, k, v, **{n: p[n] for n in names[3:] if n in p})
    parts = [em.spec.lookup(em.module, k) for k in ("attention.qk", "attention.softmax", "attention.pv")]
    if not _floating(p["query"], p["key"], p["value"]) or all(
            part is None or part.unchanged(p["query"].dtype) for part in parts):
        return func(*args, **kwargs)
    return _attention(em, p)


def _attention(em, p):
    """softmax(Q K^T * scale + mask) V, each step an op of its own kind (as torch's math reference)."""
    q, k, v = p["query"], p["key"], p["value"]
    scale = p["scale"] if p["scale"] is not None else q.shape[-1] ** -0.5
    if p["enable_gqa"] and q.shape[-3] != k.shape[-3]:
        rep = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(rep, -3), v.repeat_interleave(rep, -3)
    kt = k.transpose(-2, -1)
    scores = em.gemm("attention.qk", MatmulOp(torch.matmul, q.shape, kt.shape), q, kt, None,
                     lambda: torch.matmul(q, kt)) * scale
    L, S = q.shape[-2], k.shape[-2]
    if p["is_causal"]:
        keep = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    mask = p["attn_mask"]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    probs = _vector(em, "attention.softmax", lambda s: vector_ops.softmax(scores, -1, s),
                    lambda: torch.softmax(scores, -1))
    if p["dropout_p"] > 0:
        probs = F.dropout(probs, p["dropout_p"], True)
    return em.gemm("attention.pv", MatmulOp(torch.matmul, probs.shape, v.shape), probs, v, None,
                   lambda: torch.matmul(probs, v))


def _vector(em, kind, emulated, plain, x=None):
    s = em.settings(kind)
    if s is None or (x is not None and not _floating(x)) or s.unchanged(torch.float32 if x is None else x.dtype):
        return plain()  # every step rounded to float32 on float32 is the fused op's arithmetic
    with _named(f"{kind} in module {em.module!r}"):
        return emulated(s)


def _softmax(em, func, args, kwargs):
    p = _bind(args, kwargs, ("input", "dim"), {"dim": None, "dtype": None})
    x, dim = p["input"], p["dim"]
    if dim is None or p.get("dtype") is not None:
        return func(*args, **kwargs)
    return _vector(em, "softmax", lambda s: vector_ops.softmax(x, dim, s), lambda: func(*args, **kwargs), x)


def _layer_norm(em, func, args, kwargs):
    p = _bind(args, kwargs, ("input", "normalized_shape", "weight", "bias", "eps"),
              {"weight": None, "bias": None, "eps": 1e-5})
    return _vector(em, "layer_norm", lambda s: vector_ops.layer_norm(p["input"], p["normalized_shape"], p["weight"],
                                                                     p["bias"], p["eps"], s),
                   lambda: func(*args, **kwargs), p["input"])


def _rms_norm(em, func, args, kwargs):
    p = _bind(args, kwargs, ("input", "normalized_shape", "weight", "eps"), {"weight": None, "eps": None})
    return _vector(em, "rms_norm", lambda s: vector_ops.rms_norm(p["input"], p["normalized_shape"], p["weight"],
                                                                 p["eps"], s),
                   lambda: func(*args, **kwargs), p["input"])


def _gelu(em, func, args, kwargs):
    p = _bind(args, kwargs, ("input", "approximate"), {"approximate": "none"})
    return _vector(em, "gelu", lambda s: vector_ops.gelu(p["input"], p["approximate"], s),
                   lambda: func(*args, **kwargs), p["input"])


def _silu(em, func, args, kwargs):
    p = _bind(args, kwargs, ("input", "inplace"), {"inplace": False})
    return _vector(em, "silu", lambda s: vector_ops.silu(p["input"], s), lambda: func(*args, **kwargs), p["input"])


def _embedding(em, func, args, kwargs):
    names = ("input", "weight", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse")
    p = _bind(args, kwargs, names, {})
    s = em.settings("embedding")
    if s is None or not _floating(p["weight"]) or (s.weight is None and s.output is None and s.grad is None):
        return func(*args, **kwargs)
    with _named(f"embedding in module {em.module!r}"):
        w = p["weight"] if s.weight is None else ste.quantize(p["weight"], s.weight, s.rounding, seed=s.seed)
        y = func(p["input"], w, *[p[n] for n in names[2:] if n in p])
        if s.grad is not None:
            y = ste.quantize_grad(y, s.grad, s.grad_rounding, seed=s.seed)
        if s.output is not None:
            y = ste.quantize(y, s.output, s.rounding, seed=s.seed)
        return y


def _mha(em, func, args, kwargs):
    """nn.MultiheadAttention's function, run again with this mode active: its projections, products and
    softmax reach the handlers one by one."""
    with em:
        return _MHA(*args, **kwargs)


def _rnn(kind: str):
    def handler(em, func, args, kwargs):
        if kwargs or composites.is_packed(kind, args):
            s = em.spec.lookup(em.module, "linear")
            if s is not None and not s.unchanged(args[0].dtype):
                raise ValueError(f"{kind} in module {em.module!r}: packed sequences are not emulated; "
                                 "pass padded tensors (and mask the loss)")
            return func(*args, **kwargs)
        s = em.spec.lookup(em.module, "linear")
        if s is None or s.unchanged(args[0].dtype):
            em.calls[(em.module, kind)] += 1
            return func(*args, **kwargs)
        em.calls[(em.module, kind)] += 1

        def linear(x, w, b):
            return em.gemm("linear", LinearOp(F.linear, x.shape, w.shape), x, w, b, lambda: F.linear(x, w, b))

        return composites.rnn(kind, linear, args)

    return handler


_HANDLERS: dict = {F.linear: _linear}
for _f in (torch.conv1d, torch.conv2d, torch.conv3d):
    _HANDLERS[_f] = _conv(False)
for _f in (torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d):
    _HANDLERS[_f] = _conv(True)
for _f in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.Tensor.__rmatmul__, torch.mm,
           torch.Tensor.mm, torch.bmm, torch.Tensor.bmm):
    _HANDLERS[_f] = _matmul
for _f in (torch.addmm, torch.Tensor.addmm, torch.baddbmm, torch.Tensor.baddbmm):
    _HANDLERS[_f] = _addmm
_HANDLERS.update({torch.einsum: _einsum, F.scaled_dot_product_attention: _sdpa, F.embedding: _embedding,
                  F.layer_norm: _layer_norm, F.rms_norm: _rms_norm, F.gelu: _gelu, F.silu: _silu,
                  F.softmax: _softmax, torch.softmax: _softmax, torch.Tensor.softmax: _softmax,
                  F.multi_head_attention_forward: _mha})
for _kind in composites.RNN_GATES:
    _HANDLERS[getattr(torch._VF, _kind)] = _rnn(_kind)
    _HANDLERS[getattr(torch, _kind)] = _rnn(_kind)


# -- the public API -------------------------------------------------------------------------------------

class _Attached:
    """An emulation attached to a model: its mode and the hooks that enter it and track module names."""

    def __init__(self, mode: Emulation, handles: list) -> None:
        self.mode, self.handles = mode, handles


def emulate(model: torch.nn.Module, spec: Any = None, *, recipe: Any = None, strict: bool = False) -> torch.nn.Module:
    """Emulate every op of `model`'s forward passes (and their backward) by `spec` (a dict or a TOML/YAML
    file; see lowprec.nn.emulate_spec) and/or a training recipe (lowprec.nn.recipes: a name, or a dict
    with "name" and its options; the spec's keys override the recipe's). In place; returns the model."""
    if getattr(model, "_lowprec_emulation", None) is not None:
        raise ValueError("the model is already emulated (lowprec.nn.emulate); call lowprec.nn.unemulate(model) first")
    mode = Emulation(_parsed(spec, recipe), strict)
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(_enter(mode, name, module is model)))
        handles.append(module.register_forward_hook(_exit(mode, module is model), always_call=True))
    model._lowprec_emulation = _Attached(mode, handles)
    return model


def _parsed(spec: Any, recipe: Any) -> Spec:
    if spec is None and recipe is None:
        raise ValueError("emulate needs a spec, a recipe or both; recipes: " + ", ".join(recipes.names()))
    spec = load_spec(spec) if spec is not None else {}
    return Spec(recipes.merged(recipe, spec) if recipe is not None else spec)


def _enter(mode: Emulation, name: str, root: bool):
    def hook(module, args):
        if root:
            mode.__enter__()
        mode.stack.append(name)

    return hook


def _exit(mode: Emulation, root: bool):
    def hook(module, args, output):
        mode.stack.pop()
        if root:
            mode.__exit__(None, None, None)
            mode.report_unused()

    return hook


def unemulate(model: torch.nn.Module) -> torch.nn.Module:
    """Undo emulate: the model runs torch's ops again."""
    attached = getattr(model, "_lowprec_emulation", None)
    if attached is None:
        raise ValueError("the model is not emulated (lowprec.nn.emulate)")
    for handle in attached.handles:
        handle.remove()
    del model._lowprec_emulation
    return model


def emulation(model: torch.nn.Module) -> Emulation:
    """The emulation attached to a model (its spec and counts)."""
    attached = getattr(model, "_lowprec_emulation", None)
    if attached is None:
        raise ValueError("the model is not emulated (lowprec.nn.emulate)")
    return attached.mode


@contextlib.contextmanager
def emulating(spec: Any = None, *, recipe: Any = None, strict: bool = False) -> Iterator[Emulation]:
    """Emulate the ops run inside the block (module names: those of emulated models, else '')."""
    mode = Emulation(_parsed(spec, recipe), strict)
    with mode:
        yield mode
    mode.report_unused()
