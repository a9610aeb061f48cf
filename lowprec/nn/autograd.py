"""Bit-accurate products in autograd: a @ b through a lowprec.MAC forward and backward (dX = dY B^T
and dW = A^T dY by the same MAC), and convolutions through MAC.conv2d (backward: the same MAC on
its patches)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..mac import MAC
from ..mac.unit import patches

class _MACMatmul(torch.autograd.Function):
    """a (m, k) @ b (k, n) through a lowprec.MAC, forward and backward."""

    @staticmethod
    def forward(ctx, a, b, mac, grad):
        ctx.save_for_backward(a, b)
        ctx.macs = _backward_macs(mac, grad)
        return mac.matmul(_wide(a.detach()), _wide(b.detach())).to(a.dtype)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        g = _wide(g)
        mac_ga, mac_gb = ctx.macs
        ga = mac_ga.matmul(g, _wide(b.t())).to(a.dtype) if ctx.needs_input_grad[0] else None
        gb = mac_gb.matmul(_wide(a.t()), g).to(b.dtype) if ctx.needs_input_grad[1] else None
        return ga, gb, None, None


_EXACT = MAC(acc=None)  # exact products and sums, rounded once to float64


def _backward_macs(mac: MAC, grad) -> tuple[MAC, MAC]:
    """The MACs of dA = dY B^T and dB = A^T dY: the forward's; for a matrix unit, the same unit with
    the gradient's format in place of the operand it replaces (the layer checked that it takes it)."""
    if mac.user is not None:  # a user multiplier: straight through, exact products backward (AdaPT)
        return _EXACT, _EXACT
    if mac.unit is None or mac.inputs is None:
        return mac, mac
    return mac.with_inputs(grad, mac.inputs[1]), mac.with_inputs(mac.inputs[0], grad)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """Contiguous, and float32 for float16/bfloat16 (exact): the MAC takes float32/float64; a half
    model's layer outputs are then in its own dtype, as torch's half layers give them."""
    return (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).contiguous()


def mac_matmul(a: torch.Tensor, b: torch.Tensor, mac: MAC, grad=None) -> torch.Tensor:
    """2-D a @ b, bit-accurate through mac, differentiable (the backward products through mac too;
    grad: the incoming gradient's format, which a matrix unit's backward GEMMs take as an operand).
    Tensors on a GPU: the MAC's Triton engine where it applies (lowprec.MAC's backend)."""
    return _MACMatmul.apply(a, b, mac, grad)


class _MACConv2d(torch.autograd.Function):
    """conv2d through MAC.conv2d forward; backward, per group, dW = patches^T dY and dpatches = dY W
    through the same MAC (the patches from lowprec.mac.patches, the forward's own), dX their sum over
    overlapping patches (torch's fold, the adjoint of taking patches)."""

    @staticmethod
    def forward(ctx, x, w, mac, stride, padding, dilation, groups, grad):
        ctx.save_for_backward(x, w)
        ctx.macs, ctx.settings = _backward_macs(mac, grad), (stride, padding, dilation, groups)
        return mac.conv2d(_wide(x.detach()), _wide(w.detach()), stride, padding, dilation, groups).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.settings
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        og, k = o // groups, cg * kh * kw
        # the forward's patches (n, ho, wo, c, kh, kw), made on the host as MAC.conv2d makes them; the
        # products on the tensors' device (a GPU: the MAC's Triton engine)
        cols = torch.from_numpy(patches(_wide(x.detach()).cpu().numpy(), (kh, kw), stride, padding, dilation))
        cols = cols.to(x.device)
        rows = cols.shape[0] * cols.shape[1] * cols.shape[2]
        dy = _wide(g).permute(0, 2, 3, 1).reshape(rows, o)
        wide_w = _wide(w.detach())
        dw, dcols = [], []
        for grp in range(groups):
            a = cols[:, :, :, grp * cg:(grp + 1) * cg].reshape(rows, k)
            dy_g = dy[:, grp * og:(grp + 1) * og].contiguous()
            if ctx.needs_input_grad[1]:
                dw.append(ctx.macs[1].matmul(a.t().contiguous(), dy_g).t().reshape(og, cg, kh, kw))
            if ctx.needs_input_grad[0]:
                dcols.append(ctx.macs[0].matmul(dy_g, wide_w[grp * og:(grp + 1) * og].reshape(og, k)).reshape(n, -1, k))
        gx = gw = None
        if dcols:
            folded = torch.cat(dcols, dim=2).permute(0, 2, 1)  # (n, c*kh*kw, L)
            gx = F.fold(folded, (h, wd), (kh, kw), dilation=dilation, padding=padding, stride=stride).to(x.dtype)
        if dw:
            gw = torch.cat(dw).to(w.dtype)
        return gx, gw, None, None, None, None, None, None


def conv_mac(x: torch.Tensor, w: torch.Tensor, bias, mac: MAC, stride, padding, dilation, groups,
             grad=None) -> torch.Tensor:
    """conv2d through mac (MAC.conv2d), differentiable (the backward products through mac too; grad:
    as mac_matmul's). Tensors on a GPU: as mac_matmul's."""
    y = _MACConv2d.apply(x, w, mac, tuple(stride), tuple(padding), tuple(dilation), groups, grad)
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)
