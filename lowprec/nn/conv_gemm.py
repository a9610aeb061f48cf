"""Convolutions of any dimension as GEMMs over their patches (im2col), for products that go through a
lowprec.MAC: y = patches(x) W^T per group, the reduction over (channel, kernel positions) in that
order, as MAC.conv2d. A transposed convolution is the convolution of the input with zeros inserted
between its elements (stride - 1 of them) and padded by dilation * (k - 1) - padding, with the
kernel flipped and its channel axes swapped: every output's products in one reduction, as a direct
implementation sums them (the inserted zeros are products too, and counted).

Backward: dW = dY^T patches and dpatches = dY W through the given products; dX sums dpatches over
overlapping patches (the adjoint of taking patches, by torch's autograd of the patch view; float32).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def _n(value, dims: int) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [int(value)] * dims


class ConvGeometry:
    """Stride, padding and dilation of a (transposed) convolution with weight shape `w_shape`, and the
    maps between its operands and the GEMM's."""

    def __init__(self, transposed: bool, w_shape, stride, padding, dilation, groups: int, output_padding=0) -> None:
        dims = len(w_shape) - 2
        self.dims, self.groups, self.transposed = dims, groups, transposed
        self.kernel = list(w_shape[2:])
        self.stride, self.dilation = _n(stride, dims), _n(dilation, dims)
        pad = _n(padding, dims)
        if transposed:
            out_pad = _n(output_padding, dims)
            self.insert = self.stride  # zeros between input elements
            self.pads = [(d * (k - 1) - p, d * (k - 1) - p + op)
                         for d, k, p, op in zip(self.dilation, self.kernel, pad, out_pad)]
            self.stride = [1] * dims
        else:
            self.insert = [1] * dims
            self.pads = [(p, p) for p in pad]

    # -- operands as the equivalent plain convolution takes them ---------------------------------------
    def input(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed and any(s > 1 for s in self.insert):
            shape = [(n - 1) * s + 1 for n, s in zip(x.shape[2:], self.insert)]
            z = x.new_zeros(*x.shape[:2], *shape)
            z[(slice(None), slice(None), *(slice(None, None, s) for s in self.insert))] = x
            x = z
        if any(lo < 0 or hi < 0 for lo, hi in self.pads):
            raise ValueError("mac mode: a transposed convolution whose padding exceeds dilation * (kernel - 1)")
        flat = [v for lo, hi in reversed(self.pads) for v in (lo, hi)]
        return F.pad(x, flat) if any(flat) else x

    def weight(self, w: torch.Tensor) -> torch.Tensor:
        """(O, C/groups, *k): a transposed convolution's (C_in, C_out/groups, *k) flipped and swapped."""
        if not self.transposed:
            return w
        g = self.groups
        cin, cog = w.shape[:2]
        w = w.reshape(g, cin // g, cog, *w.shape[2:]).transpose(1, 2).reshape(g * cog, cin // g, *w.shape[2:])
        return w.flip(list(range(2, w.dim())))

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *out, C, *k) of the prepared (padded) input: a view where strides allow."""
        for d in range(self.dims):
            extent = self.dilation[d] * (self.kernel[d] - 1) + 1
            x = x.unfold(2 + d, extent, self.stride[d])
        if any(d > 1 for d in self.dilation):
            x = x[(Ellipsis, *(slice(None, None, d) for d in self.dilation))]
        dims = self.dims
        order = [0] + list(range(2, 2 + dims)) + [1] + list(range(2 + dims, 2 + 2 * dims))
        return x.permute(order)


def conv_forward(geo: ConvGeometry, mm: Callable, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The convolution through mm (x @ y of 2-D operands), per group."""
    cols = geo.patches(geo.input(x))
    wk = geo.weight(w)
    n, out = cols.shape[0], list(cols.shape[1:1 + geo.dims])
    o, cg = wk.shape[:2]
    og = o // geo.groups
    rows = cols.reshape(-1, *cols.shape[1 + geo.dims:])  # (rows, C, *k)
    parts = [mm(rows[:, g * cg:(g + 1) * cg].reshape(rows.shape[0], -1).contiguous(),
                wk[g * og:(g + 1) * og].reshape(og, -1).t().contiguous()) for g in range(geo.groups)]
    y = torch.cat(parts, 1).reshape(n, *out, o)
    return y.movedim(-1, 1)


def conv_backward(geo: ConvGeometry, mm: Callable, g: torch.Tensor, x: torch.Tensor, w: torch.Tensor,
                  which: str) -> torch.Tensor:
    """dX (which="input") or dW (which="weight") of conv_forward, the products through mm."""
    wk = geo.weight(w)
    o, cg = wk.shape[:2]
    og = o // geo.groups
    dy = g.movedim(1, -1).reshape(-1, o)
    if which == "weight":
        with torch.enable_grad():
            w_ = w.detach().requires_grad_()
            wk_ = geo.weight(w_)  # the adjoint of the flip and swap, by autograd
        cols = geo.patches(geo.input(x)).reshape(dy.shape[0], -1)
        c = cols.shape[1] // geo.groups
        dwk = torch.cat([mm(dy[:, i * og:(i + 1) * og].t().contiguous(), cols[:, i * c:(i + 1) * c].contiguous())
                         for i in range(geo.groups)]).reshape(wk.shape)
        return torch.autograd.grad(wk_, w_, dwk)[0] if geo.transposed else dwk
    with torch.enable_grad():
        x_ = torch.zeros_like(x).requires_grad_()
        cols_ = geo.patches(geo.input(x_))
    dcols = torch.cat([mm(dy[:, i * og:(i + 1) * og].contiguous(), wk[i * og:(i + 1) * og].reshape(og, -1).contiguous())
                       for i in range(geo.groups)], 1)
    return torch.autograd.grad(cols_, x_, dcols.reshape(cols_.shape))[0]
