"""One emulated product op (linear, matmul/mm/bmm/addmm/baddbmm, conv/conv_transpose, einsum) with its
own formats in each of its three GEMMs: forward (y = a * b), dgrad (da from the output gradient and b)
and wgrad (db from a and the output gradient), fake (float32 arithmetic on rounded operands) or
bit-accurate through a lowprec.MAC.

The backward GEMMs take the output gradient rounded to their `grad` format, and the forward's rounded
operand, or (when their own format is given, or the format is block-scaled) the unrounded operand
rounded again along the backward reduction: MXFP8 training re-forms blocks of transposed operands so.
Bias (and addmm's/baddbmm's added tensor) gradients sum the unrounded output gradient. Each op's
products are torch's own calls on rounded operands, in the order torch's autograd makes them, so an
emulation in float32 gives the plain model's bits.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .. import ste
from ..formats import BlockFormat
from .autograd import _wide
from .conv_gemm import ConvGeometry, conv_backward, conv_forward
from .emulate_spec import BackwardGemm, GemmSettings, follows_reduction
from .scaling import Scaling


def _batched(mac, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x @ y through a MAC, 2-D or batched (3-D) operands, in the operands' dtype."""
    if x.dim() == 2:
        return mac.matmul(_wide(x), _wide(y)).to(x.dtype)
    return torch.stack([mac.matmul(_wide(p), _wide(r)) for p, r in zip(x, y)]).to(x.dtype)


def _torch_mm(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x.mm(y) if x.dim() == 2 else x.bmm(y)


class LinearOp:
    """F.linear(a, b, c): a (..., k), b (n, k). Blocks: forward along k; dgrad (dY W) along n; wgrad
    (dY^T X) along the rows (the flattened batch)."""
    dgrad_axes = (-1, 0)  # (grad, weight)
    wgrad_axes = (0, 0)  # (input, grad)
    wgrad_order = ("grad", "input")  # dW = dY^T X

    def __init__(self, func: Callable, a_shape, b_shape) -> None:
        self.func, self.a_shape, self.b_shape = func, tuple(a_shape), tuple(b_shape)
        self.forward_axes = (-1, -1)

    def forward(self, a, b, c):
        return self.func(a, b, c)

    def forward_mac(self, mac, a, b, c):
        y = _batched(mac, a.reshape(-1, a.shape[-1]), b.t()).reshape(*a.shape[:-1], b.shape[0])
        return y if c is None else y + c

    def grad_view(self, g):
        return g.reshape(-1, g.shape[-1])

    def dgrad_operand(self, b):
        return b

    def wgrad_operand(self, a):
        return a.reshape(-1, a.shape[-1])

    def dgrad(self, mm, g, b):
        return mm(g, b).reshape(self.a_shape)

    def wgrad(self, mm, a, g):
        return mm(g.t(), a)

    def extra_grad(self, g, c):
        return g.reshape(-1, g.shape[-1]).sum(0)


class MatmulOp:
    """a @ b (torch.matmul, mm, bmm, @): a (..., m, k), b (..., k, n), 1-D operands promoted as torch
    promotes them; a 2-D b folds a's batch into its rows, as torch's matmul does. Blocks: forward along
    k (a's last axis, b's second to last); dgrad (dY B^T) along n; wgrad (A^T dY) along m."""
    dgrad_axes = (-1, -1)
    wgrad_axes = (-2, -2)
    wgrad_order = ("input", "grad")  # dB = A^T dY

    def __init__(self, func: Callable, a_shape, b_shape, alpha: float = 1.0) -> None:
        self.func, self.alpha = func, alpha
        self.a_shape, self.b_shape = tuple(a_shape), tuple(b_shape)
        self.a2 = (1,) + self.a_shape if len(a_shape) == 1 else self.a_shape
        self.b2 = self.b_shape + (1,) if len(b_shape) == 1 else self.b_shape
        self.fold = len(self.b2) == 2
        self.batch = () if self.fold else tuple(torch.broadcast_shapes(self.a2[:-2], self.b2[:-2]))
        rows = self.a2[:-1] if self.fold else (*self.batch, self.a2[-2])
        self.g2 = (*rows, self.b2[-1])
        self.forward_axes = (-1, -2 if len(b_shape) >= 2 else -1)

    def forward(self, a, b, c):
        return self.func(a, b)

    def _A(self, a):
        a = a.reshape(self.a2)
        return a.reshape(-1, self.a2[-1]) if self.fold else a.expand(*self.batch, *self.a2[-2:]).reshape(-1, *self.a2[-2:])

    def _B(self, b):
        b = b.reshape(self.b2)
        return b if self.fold else b.expand(*self.batch, *self.b2[-2:]).reshape(-1, *self.b2[-2:])

    def grad_view(self, g):
        g = g.reshape(self.g2)
        return g.reshape(-1, self.g2[-1]) if self.fold else g.reshape(-1, *self.g2[-2:])

    dgrad_operand = _B
    wgrad_operand = _A

    def forward_mac(self, mac, a, b, c):
        y = _batched(mac, self._A(a), self._B(b))
        return y.reshape(*self.g2).reshape(self._out_shape())

    def _out_shape(self):
        shape = list(self.g2)
        if len(self.b_shape) == 1:
            shape.pop(-1)
        if len(self.a_shape) == 1:
            shape.pop(-2 if len(self.b_shape) > 1 else -1)
        return shape

    def dgrad(self, mm, g, b):
        if self.fold:
            return self._scaled(mm(g, b.t()).reshape(self.a_shape))
        da = mm(g, b.transpose(1, 2)).reshape(*self.batch, *self.a2[-2:]).sum_to_size(self.a2)
        return self._scaled(da.reshape(self.a_shape))

    def wgrad(self, mm, a, g):
        if self.fold:
            return self._scaled(mm(a.t(), g).reshape(self.b_shape))
        db = mm(a.transpose(1, 2), g).reshape(*self.batch, *self.b2[-2:]).sum_to_size(self.b2)
        return self._scaled(db.reshape(self.b_shape))

    def _scaled(self, t):
        return t if self.alpha == 1 else t * self.alpha

    def extra_grad(self, g, c):
        return None


class AddmmOp(MatmulOp):
    """beta * c + alpha * (a @ b): torch.addmm and torch.baddbmm (their own kernels forward)."""

    def __init__(self, func: Callable, a_shape, b_shape, beta: float, alpha: float) -> None:
        super().__init__(func, a_shape, b_shape, alpha)
        self.beta = beta

    def forward(self, a, b, c):
        return self.func(c, a, b, beta=self.beta, alpha=self.alpha)

    def forward_mac(self, mac, a, b, c):
        return self.beta * c + self.alpha * super().forward_mac(mac, a, b, None)

    def extra_grad(self, g, c):
        gc = g if self.beta == 1 else g * self.beta
        return gc.sum_to_size(c.shape)


class _WholeOperands:
    """The backward GEMMs take the gradient and the operands as they are (no reshaping)."""

    def grad_view(self, g):
        return g

    def dgrad_operand(self, b):
        return b

    def wgrad_operand(self, a):
        return a


class ConvOp(_WholeOperands):
    """conv1d/2d/3d and conv_transpose1d/2d/3d (torch's convolution_backward computes the dgrad and
    wgrad products and the bias gradient, as autograd does). Blocks: forward along the input channels
    (the input's axis 1; the weight's axis 1, or 0 transposed); dgrad along the output channels; wgrad
    along the last spatial axis."""
    wgrad_axes = (-1, -1)
    wgrad_order = ("grad", "input")  # dW = dY^T patches

    def __init__(self, func: Callable, transposed: bool, a_shape, b_shape, stride, padding, dilation, groups,
                 output_padding=0) -> None:
        self.func, self.transposed = func, transposed
        self.a_shape, self.b_shape = tuple(a_shape), tuple(b_shape)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.output_padding = groups, output_padding
        self.forward_axes = (1, 0) if transposed else (1, 1)
        self.dgrad_axes = (1, 1) if transposed else (1, 0)
        if isinstance(padding, str):
            self.padding = _numeric_padding(padding, self.b_shape[2:], self._n(dilation))


    def forward(self, a, b, c):
        if self.transposed:
            return self.func(a, b, c, self.stride, self.padding, self.output_padding, self.groups, self.dilation)
        return self.func(a, b, c, self.stride, self.padding, self.dilation, self.groups)

    def _geometry(self) -> ConvGeometry:
        if isinstance(self.padding, str):
            raise ValueError(f"mac mode: padding={self.padding!r} pads unevenly here; give numeric padding")
        return ConvGeometry(self.transposed, self.b_shape, self.stride, self.padding, self.dilation, self.groups,
                            self.output_padding)

    def forward_mac(self, mac, a, b, c):
        y = conv_forward(self._geometry(), lambda x, w: _batched(mac, x, w), a, b)
        return y if c is None else y + c.reshape(1, -1, *[1] * (y.dim() - 2))

    def _n(self, value):
        dims = len(self.a_shape) - 2
        return list(value) if isinstance(value, (tuple, list)) else [value] * dims

    def _backward(self, g, a, b, mask):
        if isinstance(self.padding, str):  # 'same'/'valid': torch's autograd of the op itself
            with torch.enable_grad():
                a_ = a.detach().requires_grad_(mask[0])
                b_ = b.detach().requires_grad_(mask[1])
                y = self.forward(a_, b_, None)
                return torch.autograd.grad(y, a_ if mask[0] else b_, g)[0]
        out = torch.ops.aten.convolution_backward(
            g, a, b, [g.shape[1]] if mask[2] else None, self._n(self.stride), self._n(self.padding),
            self._n(self.dilation), self.transposed, self._n(self.output_padding), self.groups, list(mask))
        return out[mask.index(True)]

    def _empty(self, shape, g):
        return torch.empty(shape, dtype=g.dtype, device=g.device)

    def dgrad(self, mm, g, b):
        if mm is not _torch_mm:  # through a MAC
            return conv_backward(self._geometry(), mm, g, self._empty(self.a_shape, g), b, "input")
        return self._backward(g, self._empty(self.a_shape, g), b, (True, False, False))

    def wgrad(self, mm, a, g):
        if mm is not _torch_mm:
            return conv_backward(self._geometry(), mm, g, a, self._empty(self.b_shape, g), "weight")
        return self._backward(g, a, self._empty(self.b_shape, g), (False, True, False))

    def extra_grad(self, g, c):
        if isinstance(self.padding, str):
            return g.sum([0] + list(range(2, g.dim())))
        return self._backward(g, self._empty(self.a_shape, g), self._empty(self.b_shape, g), (False, False, True))


def _numeric_padding(padding: str, kernel, dilation):
    """'valid' as 0 and 'same' as the symmetric padding torch uses where one exists (an odd extent
    dilation * (k - 1)); an asymmetric 'same' stays a string (its backward by autograd of the op)."""
    if padding == "valid":
        return [0] * len(kernel)
    total = [d * (k - 1) for d, k in zip(dilation, kernel)]
    return [t // 2 for t in total] if all(t % 2 == 0 for t in total) else padding


class EinsumOp(_WholeOperands):
    """torch.einsum of two operands; the backward products by torch's autograd of the same einsum on
    the rounded operands. Blocks along the last index each GEMM sums away (the last axis where the
    equation has an ellipsis)."""

    wgrad_order = ("input", "grad")

    def __init__(self, equation: str, a_shape, b_shape) -> None:
        self.equation = equation.replace(" ", "")
        self.a_shape, self.b_shape = tuple(a_shape), tuple(b_shape)
        lhs, arrow, out = self.equation.partition("->")
        sa, sb = lhs.split(",")
        if not arrow:
            out = "".join(sorted(ch for ch in set(sa + sb) if (sa + sb).count(ch) == 1))
        self.sa, self.sb, self.out = sa, sb, out
        if "." in self.equation:
            self.forward_axes = self.dgrad_axes = self.wgrad_axes = (-1, -1)
        else:
            self.forward_axes = (self._axis(sa, sb, out), self._axis(sb, sa, out))
            self.dgrad_axes = (self._axis(out, sb, sa), self._axis(sb, out, sa))
            self.wgrad_axes = (self._axis(sa, out, sb), self._axis(out, sa, sb))

    @staticmethod
    def _axis(mine: str, other: str, result: str) -> int:
        """The axis of `mine` holding the last index summed away (in mine and other, not in the result)."""
        summed = [i for i, ch in enumerate(mine) if ch in other and ch not in result]
        return summed[-1] if summed else -1

    def forward(self, a, b, c):
        return torch.einsum(self.equation, a, b)

    def forward_mac(self, mac, a, b, c):
        return self._through(self.sa, self.sb, self.out, a, b, lambda x, y: _batched(mac, x, y))

    def _through(self, sx: str, sy: str, out: str, x, y, mm):
        """The two-operand einsum sx,sy->out as one batched product through mm: x as (batch, free, summed),
        y as (batch, summed, free); indices of one operand alone are summed first (float32), indices of
        the result in neither operand broadcast."""
        if "." in sx + sy + out or len(set(sx)) != len(sx) or len(set(sy)) != len(sy):
            raise ValueError(f"mac mode runs einsum without ellipses or repeated indices; got {self.equation!r}")
        for ch in set(sx) - set(sy) - set(out):
            x, sx = x.sum(sx.index(ch)), sx.replace(ch, "")
        for ch in set(sy) - set(sx) - set(out):
            y, sy = y.sum(sy.index(ch)), sy.replace(ch, "")
        size = {ch: max(x.shape[sx.index(ch)] if ch in sx else 1, y.shape[sy.index(ch)] if ch in sy else 1)
                for ch in set(sx + sy)}
        size.update({ch: n for ch, n in zip(self.sa + self.sb, self.a_shape + self.b_shape) if ch not in size})
        batch = [ch for ch in sx if ch in sy and ch in out]
        summed = [ch for ch in sx if ch in sy and ch not in out]
        fx, fy = [ch for ch in sx if ch not in sy], [ch for ch in sy if ch not in sx]

        def arrange(t, sub, order):
            t = t.permute([sub.index(ch) for ch in order])
            return t.expand(*[size[ch] for ch in order])

        prod = lambda chars: int(torch.tensor([size[ch] for ch in chars]).prod()) if chars else 1  # noqa: E731
        X = arrange(x, sx, batch + fx + summed).reshape(prod(batch), prod(fx), prod(summed))
        Y = arrange(y, sy, batch + summed + fy).reshape(prod(batch), prod(summed), prod(fy))
        z = mm(X.contiguous(), Y.contiguous()).reshape(*[size[ch] for ch in batch + fx + fy])
        have = batch + fx + fy
        for ch in out:
            if ch not in have:  # an index of the result neither operand holds: broadcast along it
                z, have = z.unsqueeze(-1).expand(*z.shape, size[ch]), have + [ch]
        return z.permute([have.index(ch) for ch in out]).contiguous()

    def _grad(self, g, a, b, which):
        with torch.enable_grad():
            a_ = a.detach().requires_grad_(which == 0)
            b_ = b.detach().requires_grad_(which == 1)
            y = torch.einsum(self.equation, a_, b_)
            return torch.autograd.grad(y, a_ if which == 0 else b_, g)[0]

    def dgrad(self, mm, g, b):
        if mm is not _torch_mm:  # through a MAC
            return self._through(self.out, self.sb, self.sa, g, b, mm)
        return self._grad(g, torch.zeros(self.a_shape, dtype=g.dtype, device=g.device), b, 0)

    def wgrad(self, mm, a, g):
        if mm is not _torch_mm:
            return self._through(self.sa, self.out, self.sb, a, g, mm)
        return self._grad(g, a, torch.zeros(self.b_shape, dtype=g.dtype, device=g.device), 1)

    def extra_grad(self, g, c):
        return None


class Plan:
    """An op to run: its geometry, settings, and where it runs (for errors and counts)."""

    def __init__(self, op: Any, settings: GemmSettings, kind: str, module: str) -> None:
        self.op, self.settings, self.kind, self.module = op, settings, kind, module

    def where(self) -> str:
        return f"{self.kind} in module {self.module!r}"


def _round(x: torch.Tensor, fmt: Any, rounding: str, seed: Any, axis: int, plan: Plan, operand: str) -> torch.Tensor:
    if fmt is None:
        return x
    if isinstance(fmt, Scaling):
        return fmt.round(x, axis, (plan.module, plan.kind, operand), rounding, seed)
    if isinstance(fmt, BlockFormat) and fmt.tile is not None:  # 2-D blocks tile the operand's last two axes
        if x.dim() < 2:
            raise ValueError(f"{plan.where()}: 2-D blocks {fmt.tile} on a {x.dim()}-d {operand}")
        return ste._q(x, fmt, rounding, seed, (-2, -1))
    if isinstance(fmt, BlockFormat) and x.dim() and x.shape[axis] == 1:
        raise ValueError(f"{plan.where()}: block format {fmt.name} along a reduction of 1 element ({operand}, "
                         f"axis {axis} of shape {tuple(x.shape)}); use an element format for it")
    return ste._q(x, fmt, rounding, seed, axis)


class Gemm(torch.autograd.Function):
    """The three GEMMs of one product op with their own formats (see the module doc)."""

    @staticmethod
    def forward(ctx, a, b, c, plan: Plan):
        s, op = plan.settings, plan.op
        if s.wgrad.hadamard and not isinstance(op, (LinearOp, MatmulOp)):
            raise ValueError(f"{plan.where()}: wgrad's hadamard applies to linear and matmul products")
        aq = _round(a, s.input, s.rounding, s.seed, s.axes.get("input", op.forward_axes[0]), plan, "input")
        bq = _round(b, s.weight, s.rounding, s.seed, s.axes.get("weight", op.forward_axes[1]), plan, "weight")
        y = op.forward(aq, bq, c) if s.mac is None else op.forward_mac(s.mac, aq, bq, c)
        ctx.plan, ctx.shapes, ctx.has_c = plan, (a.shape, b.shape), c is not None
        ctx.save_for_backward(aq, bq, a if s.wgrad.requantize else None, b if s.dgrad.requantize else None, c)
        return y

    @staticmethod
    def backward(ctx, g):
        plan = ctx.plan
        s, op = plan.settings, plan.op
        aq, bq, a_raw, b_raw, c = ctx.saved_tensors
        macs = _macs(s, op)
        da = db = dc = None
        rounded: dict = {}  # an element format's gradient rounded once for both GEMMs (the same draws)
        if ctx.needs_input_grad[0]:
            d = s.dgrad
            gq = _grad_rounded(g, op, d, op.dgrad_axes[0], s, plan, rounded)
            b2 = op.dgrad_operand(b_raw if d.requantize else bq)
            if d.requantize:
                b2 = _round(b2, d.other, s.rounding, s.seed, d.axes.get("weight", op.dgrad_axes[1]), plan, "dgrad weight")
            da = op.dgrad(macs[0], gq, b2)
        if ctx.needs_input_grad[1]:
            w = s.wgrad
            a2 = op.wgrad_operand(a_raw if w.requantize else aq)
            if w.hadamard:  # both operands rotated along the reduction before rounding: (Ha)^T (Hg) = a^T g
                axis = op.wgrad_axes[0]
                a2 = hadamard(a2, axis, w.hadamard, w.hadamard_seed)
                gq = hadamard(op.grad_view(g), axis, w.hadamard, w.hadamard_seed)
                gq = _round(gq, w.grad, w.rounding, s.seed, w.axes.get("grad", op.wgrad_axes[1]), plan, "wgrad grad")
            else:
                gq = _grad_rounded(g, op, w, op.wgrad_axes[1], s, plan, rounded)
            if w.requantize:
                a2 = _round(a2, w.other, s.rounding, s.seed, w.axes.get("input", op.wgrad_axes[0]), plan, "wgrad input")
            db = op.wgrad(macs[1], a2, gq)
        if ctx.has_c and ctx.needs_input_grad[2]:
            dc = op.extra_grad(g, c)
        return da, db, dc, None


def _grad_rounded(g, op, d: BackwardGemm, default_axis, s: GemmSettings, plan, rounded):
    """The output gradient as one backward GEMM takes it: an element format rounds the whole gradient
    once (shared by dgrad and wgrad when they agree); a block format rounds this GEMM's view along its
    reduction."""
    if d.grad is None:
        return op.grad_view(g)
    if not follows_reduction(d.grad):
        key = (d.grad, d.rounding)
        if key not in rounded:
            rounded[key] = op.grad_view(_round(g, d.grad, d.rounding, s.seed, -1, plan, "grad"))
        return rounded[key]
    return _round(op.grad_view(g), d.grad, d.rounding, s.seed, d.axes.get("grad", default_axis), plan, "grad")


def hadamard_matrix(size: int, seed: int) -> torch.Tensor:
    """A random Hadamard transform: Sylvester's Hadamard matrix of `size` (a power of two) times a
    diagonal of random signs (numpy's default_rng(seed)), over sqrt(size): orthogonal, float32."""
    h = torch.ones(1, 1)
    while h.shape[0] < size:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    signs = torch.from_numpy(np.random.default_rng(seed).choice([-1.0, 1.0], size)).float()
    return h * signs / size ** 0.5


def hadamard(t: torch.Tensor, axis: int, size: int, seed: int) -> torch.Tensor:
    """t with each run of `size` entries along `axis` rotated by the random Hadamard transform (the
    axis zero-padded to whole runs, and kept padded: the GEMM sums the padding's rotated zeros too)."""
    if not t.is_floating_point():
        raise ValueError("hadamard: takes floating-point tensors")
    moved = t.movedim(axis, -1)
    n = moved.shape[-1]
    padded = -(-n // size) * size
    if padded != n:
        moved = torch.nn.functional.pad(moved, (0, padded - n))
    runs = moved.reshape(*moved.shape[:-1], padded // size, size)
    h = hadamard_matrix(size, seed).to(t.dtype).to(t.device)
    return (runs @ h.t()).reshape(moved.shape).movedim(-1, axis)


def _macs(s: GemmSettings, op) -> tuple:
    """The products of the dgrad and wgrad GEMMs: torch's (fake) or their MACs' (for a matrix unit:
    the unit with the gradient's format in place of the operand it replaces, in the order the op
    multiplies them)."""
    out = []
    for d, operands in ((s.dgrad, ("grad", "weight")), (s.wgrad, op.wgrad_order)):
        if d.mac is None:
            out.append(_torch_mm)
            continue
        mac = d.mac
        if mac.unit is not None and mac.inputs is not None and d.grad is not None:
            fmts = {"grad": d.grad, "weight": mac.inputs[1], "input": mac.inputs[0]}
            mac = mac.with_inputs(*(fmts[o] for o in operands))
        out.append(lambda x, y, mac=mac: _batched(mac, x, y))
    return tuple(out)


def run(plan: Plan, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    """The op's output, rounded to the output format (straight-through) when the settings name one."""
    s = plan.settings
    y = Gemm.apply(a, b, c, plan)
    if s.output is not None:
        y = ste.quantize(y, s.output, s.rounding, seed=s.seed, axis=s.axes.get("output", -1))
    return y
