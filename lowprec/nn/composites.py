"""Ops torch runs as one call whose products an emulation must see one by one: recurrent layers
(torch's lstm, gru, rnn_tanh, rnn_relu, decomposed here into their gate GEMMs and elementwise steps, in
ATen's own order, so float32 gives torch's bits) and Python functions that dispatch as a whole (multi-
head attention), run again with their inner calls visible."""

from __future__ import annotations

import types
from typing import Callable

import torch
import torch.nn.functional as F

RNN_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def unguarded(fn: Callable) -> Callable:
    """fn with its `has_torch_function*` checks false: run inside a TorchFunctionMode, it executes its
    own body (whose torch calls the mode then sees) instead of handing itself to the mode whole."""
    never = lambda *args, **kwargs: False  # noqa: E731
    scope = dict(fn.__globals__, has_torch_function=never, has_torch_function_unary=never,
                 has_torch_function_variadic=never)
    twin = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__kwdefaults__ = fn.__kwdefaults__
    return twin


def is_packed(kind: str, args: tuple) -> bool:
    """torch's packed-sequence overloads: lstm(data, batch_sizes, hx, ...), gru(data, batch_sizes, hx, ...)."""
    return isinstance(args[1], torch.Tensor) if kind == "lstm" else isinstance(args[2], torch.Tensor)


def rnn(kind: str, linear: Callable, args: tuple):
    """torch.<kind>(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
    batch_first) decomposed; linear(x, w, b) computes every gate GEMM (the emulation's linear)."""
    x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first = args
    dirs = 2 if bidirectional else 1
    per = len(params) // (num_layers * dirs)
    if batch_first:
        x = x.transpose(0, 1)
    h0, c0 = hx if kind == "lstm" else (hx, None)
    finals_h, finals_c = [], []
    for layer in range(num_layers):
        outputs = []
        for d in range(dirs):
            idx = layer * dirs + d
            p = params[idx * per:(idx + 1) * per]
            w_ih, w_hh = p[0], p[1]
            b_ih, b_hh = (p[2], p[3]) if has_biases else (None, None)
            w_hr = p[-1] if kind == "lstm" and per == (5 if has_biases else 3) else None
            seq = x.flip(0) if d == 1 else x
            state = (h0[idx], c0[idx]) if kind == "lstm" else h0[idx]
            out, state = _layer(kind, linear, seq, state, w_ih, w_hh, b_ih, b_hh, w_hr)
            outputs.append(out.flip(0) if d == 1 else out)
            finals_h.append(state[0] if kind == "lstm" else state)
            if kind == "lstm":
                finals_c.append(state[1])
        x = torch.cat(outputs, -1) if dirs == 2 else outputs[0]
        if dropout and train and layer < num_layers - 1:
            x = F.dropout(x, dropout, True)
    if batch_first:
        x = x.transpose(0, 1)
    if kind == "lstm":
        return x, torch.stack(finals_h), torch.stack(finals_c)
    return x, torch.stack(finals_h)


def _layer(kind, linear, seq, state, w_ih, w_hh, b_ih, b_hh, w_hr):
    """One layer in one direction, as ATen's FullLayer on the CPU: the input GEMM for every step at
    once, then per step the hidden GEMM and the gates (ATen's cell code, in its order)."""
    pre = linear(seq, w_ih, b_ih)
    outs = []
    for t in range(seq.shape[0]):
        if kind == "lstm":
            hx, cx = state
            gates = linear(hx, w_hh, b_hh) + pre[t]
            i, f, g, o = gates.chunk(4, 1)
            cy = f.sigmoid() * cx + i.sigmoid() * g.tanh()
            hy = o.sigmoid() * cy.tanh()
            if w_hr is not None:
                hy = linear(hy, w_hr, None)
            state, out = (hy, cy), hy
        elif kind == "gru":
            ig = pre[t].chunk(3, 1)
            hg = linear(state, w_hh, b_hh).chunk(3, 1)
            reset = (hg[0] + ig[0]).sigmoid()
            update = (hg[1] + ig[1]).sigmoid()
            new = (ig[2] + hg[2] * reset).tanh()
            state = out = (state - new) * update + new
        else:
            z = linear(state, w_hh, b_hh) + pre[t]
            state = out = z.tanh() if kind == "rnn_tanh" else z.relu()
        outs.append(out)
    return torch.stack(outs), state
