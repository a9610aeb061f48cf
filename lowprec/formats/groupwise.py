"""Group-wise integer affine weights: b-bit integers q with value (q - zero_point) * scale, a scale and
a zero point per channel (``axis``) and per group of ``group`` consecutive elements along
``group_axis`` (GPTQ's and AWQ's int4 with groups of 128: one pair per output row and 128 input
columns). ``scale`` and ``zero_point`` have shape (channels, groups); the last group of a length that
is no multiple of ``group`` is shorter. Quantize, encode and decode work as IntAffineFormat's on the
tensor seen as (channels * groups) rows of ``group`` elements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import check_int
from .registry import register
from .scalar import PARAM_BITS
from .scaled import IntAffineFormat


@dataclass(frozen=True, eq=False)
class GroupAffineFormat:
    bits: int
    group: int
    scale: Any
    zero_point: Any = 0
    signed: bool = False
    axis: int = 0
    group_axis: int = 1
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_int("group", self.group, 1, 2**20)
        scale = np.asarray(self.scale, np.float64)
        if scale.ndim != 2:
            raise ValueError(f"scale must have shape (channels, groups), got shape {scale.shape}")
        zp = np.broadcast_to(np.asarray(self.zero_point), scale.shape)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", np.array(zp))
        if self.axis == self.group_axis:
            raise ValueError(f"axis and group_axis must differ, both are {self.axis}")
        self.rows  # checks the scales and zero points as IntAffineFormat does

    @property
    def rows(self) -> IntAffineFormat:
        """The format of the (channels * groups, group) view: per-channel along its axis 0."""
        return IntAffineFormat(self.bits, self.scale.reshape(-1), self.zero_point.reshape(-1), signed=self.signed,
                               axis=0)

    @property
    def arithmetic(self) -> tuple:
        return ("int", self.bits)

    @property
    def bits_per_element(self) -> float:
        return self.bits + 2 * PARAM_BITS / self.group

    def stored_bits(self, numel: int) -> int:
        return numel * self.bits + self.scale.size * 2 * PARAM_BITS

    def view(self, x: Any) -> tuple[Any, Any]:
        """(the (channels * groups, group) view of x, zero-padded, and the function taking it back)."""
        torch_like = not isinstance(x, np.ndarray)
        shape = tuple(x.shape)
        if x.ndim > 2 and (self.axis, self.group_axis) == (0, 1):  # a convolution's weight: (out, in * kernel)
            x = x.reshape(shape[0], -1)
        if x.ndim != 2:
            raise ValueError(f"a group-wise format takes 2-D tensors (channels, elements), got {x.ndim}-D")
        t = x if (self.axis % 2, self.group_axis % 2) == (0, 1) else (x.T if not torch_like else x.t())
        channels, length = t.shape
        groups = -(-length // self.group)
        if (channels, groups) != self.scale.shape:
            raise ValueError(f"scale has shape {self.scale.shape}; this tensor needs ({channels}, {groups}) "
                             f"(channels, groups of {self.group})")
        pad = groups * self.group - length
        if pad:
            if torch_like:
                import torch.nn.functional as F

                t = F.pad(t, (0, pad))
            else:
                t = np.pad(t, [(0, 0), (0, pad)])
        rows = t.reshape(channels * groups, self.group)

        def back(v: Any) -> Any:
            v = v.reshape(channels, groups * self.group)[:, :length]
            v = v if (self.axis % 2, self.group_axis % 2) == (0, 1) else v.T
            v = v.reshape(shape)
            return v.contiguous() if torch_like else np.ascontiguousarray(v)

        return rows, back


def fit_groupwise(w: Any, bits: int, group: int, *, symmetric: bool = False) -> GroupAffineFormat:
    """A GroupAffineFormat fitted to a 2-D weight (out, in) by min-max per row and group: asymmetric
    unsigned (scale = (max - min) / (2**bits - 1), zero point round(-min / scale)) or symmetric signed
    (scale = max |w| / (2**(bits-1) - 1))."""
    w = np.asarray(w, np.float64)
    if w.ndim > 2:
        w = w.reshape(w.shape[0], -1)  # a convolution's weight: groups along in * kernel
    if w.ndim != 2:
        raise ValueError(f"fit_groupwise takes a weight (out, in, ...), got shape {w.shape}")
    out, n = w.shape
    groups = -(-n // group)
    padded = np.full((out, groups * group), np.nan)
    padded[:, :n] = w
    g = padded.reshape(out, groups, group)
    if symmetric:
        amax = np.nanmax(np.abs(g), axis=2)
        scale = np.where(amax > 0, amax / (2 ** (bits - 1) - 1), 1.0)
        return GroupAffineFormat(bits, group, scale, 0, signed=True)
    lo, hi = np.minimum(np.nanmin(g, axis=2), 0.0), np.maximum(np.nanmax(g, axis=2), 0.0)
    scale = np.where(hi > lo, (hi - lo) / (2**bits - 1), 1.0)
    zp = np.clip(np.round(-lo / scale), 0, 2**bits - 1).astype(np.int64)
    return GroupAffineFormat(bits, group, scale, zp, signed=False)


register(GroupAffineFormat)
