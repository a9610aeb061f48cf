"""Bit-accurate products in autograd: a @ b through a lowprec.MAC forward and backward (dX = dY B^T
and dW = A^T dY by the same MAC), and convolutions through unfold (im2col) and that matmul."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..mac import MAC

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


def conv_mac(x: torch.Tensor, w: torch.Tensor, bias, mac: MAC, stride, padding, dilation, groups) -> torch.Tensor:
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
