"""Block-scaled formats: a block of elements shares one scale (OCP MX, block floating point, NVFP4).

A ``BlockFormat`` is an element format, a block size and a scale format. The value of element i of a
block is ``scale * element_i``. Two kinds of scale:

- ``"e8m0"`` (OCP MX v1.0, section 5.4): a power of two 2**e, e in [-127, 127], stored as the 8-bit
  code e + 127; the code 255 is NaN. The exponent is chosen from the block's largest magnitude amax
  by ``rule`` (see ``SCALE_RULES``); an all-zero block gets e = -127 (gfloat's convention).
- a float format (NVFP4: ``fp8_e4m3fn``): the scale is amax / max_element rounded to nearest even in
  that format (NVIDIA's recipe), optionally after a per-tensor float32 scale
  ``tensor_amax / (scale_max * element_max)`` (``tensor_scale=True``, NVFP4's second level).

Elements are rounded to the element format with saturation (+-max instead of Inf/NaN), in the caller's
rounding mode. A block holding a NaN or an Inf gets a NaN scale and decodes to NaN throughout (as
microxcaling and torchao do; the MX spec leaves the Inf case to the implementation).

Named ones live in ``formats/mx.toml``; ``bfp(w)`` builds generic block floating point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from .._checks import check_choice, check_int
from .registry import as_scalar_format, register
from .scalar import PARAM_BITS, FixedFormat, FloatFormat

__all__ = ["BlockFormat", "SCALE_RULES", "E8M0", "bfp"]

#: How an e8m0 scale exponent follows from the block's largest magnitude amax (emax: the exponent of
#: the element format's largest power of two; max: its largest value):
#: - "floor": floor(log2 amax) - emax (OCP MX v1.0 section 6.3; the block max may saturate: a 957 in a
#:   block whose max is 960 becomes 896 in MXFP8-E4M3, since 960 / 2 = 480 > 448)
#: - "ceil": ceil(log2 amax) - emax
#: - "rceil": ceil(log2(amax / max)), the smallest scale under which amax does not saturate (NVIDIA's
#:   MXFP8 recipe)
#: - "even": floor(log2 of amax rounded, ties away, to the element's significand precision) - emax
#:   (torchao's ScaleCalculationMode.EVEN)
SCALE_RULES = ("floor", "ceil", "rceil", "even")
E8M0 = "e8m0"
E8M0_MIN, E8M0_MAX = -127, 127
E8M0_NAN = 255


def _saturating(element: Any) -> FloatFormat | FixedFormat:
    if isinstance(element, (FloatFormat, FixedFormat)):
        if element.overflow == "saturate":
            return element
        return replace(element, overflow="saturate", name=f"{element.name} (saturating)" if element.name else None)
    raise TypeError(f"element must be a FloatFormat or FixedFormat (or a name of one), got {type(element).__name__}")


@dataclass(frozen=True)
class BlockFormat:
    """``block`` consecutive elements (along the axis given to quantize/encode) share one scale; a
    2-D block ``block=(r, c)``: an r x c tile of the two axes given as ``axis=(a0, a1)`` shares one
    (DeepSeek-V3's 128 x 128 weight tiles; NVFP4 training's 16 x 16), the tile's r*c elements
    scaled as one block of r*c."""

    element: FloatFormat | FixedFormat
    block: int | tuple = 32
    scale: str | FloatFormat = E8M0
    rule: str = "floor"
    tensor_scale: bool = False
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        element = self.element
        if isinstance(element, str):
            element = as_scalar_format(element, "element")
        object.__setattr__(self, "element", _saturating(element))
        if isinstance(self.block, (tuple, list)):
            if len(self.block) != 2:
                raise ValueError(f"block must be an int or a pair (rows, columns) of a 2-D tile, got {self.block!r}")
            for side in self.block:
                check_int("block", side, 1, 2**20)
            object.__setattr__(self, "block", tuple(int(v) for v in self.block))
        else:
            check_int("block", self.block, 1, 2**20)
        scale = self.scale
        if isinstance(scale, str) and scale != E8M0:
            scale = as_scalar_format(scale, "scale")
        if scale != E8M0 and not isinstance(scale, FloatFormat):
            raise ValueError(f"scale must be 'e8m0' or a float format (e.g. 'fp8_e4m3fn'), got {scale!r}")
        object.__setattr__(self, "scale", scale)
        check_choice("rule", self.rule, SCALE_RULES)
        if self.element.max < 1:
            raise ValueError(f"element must reach 1 (its largest value is {self.element.max}); scale it into "
                             f"the block scale instead")
        if scale != E8M0 and self.rule != "floor":
            raise ValueError("rule applies to e8m0 scales only; a float scale is amax / element max, rounded")
        if scale == E8M0 and self.tensor_scale:
            raise ValueError("tensor_scale applies to float scales (NVFP4), not to e8m0")
        if not isinstance(self.tensor_scale, bool):
            raise TypeError(f"tensor_scale must be a bool, got {self.tensor_scale!r}")

    @property
    def tile(self) -> tuple | None:
        """(rows, columns) of a 2-D block; None for blocks along one axis."""
        return self.block if isinstance(self.block, tuple) else None

    @property
    def block_size(self) -> int:
        """Elements sharing one scale."""
        return self.block[0] * self.block[1] if self.tile else self.block

    def flat(self) -> "BlockFormat":
        """A 2-D block's format as blocks of rows*columns along one axis (the tile's elements in a row)."""
        return replace(self, block=self.block_size, name=None) if self.tile else self

    # -- the element format's landmarks used by the scale rules --------------------------------------
    @property
    def element_emax(self) -> int:
        """Exponent of the largest power of two of the element format."""
        return math.frexp(self.element.max)[1] - 1

    @property
    def element_precision(self) -> int:
        """Significand bits after the leading one that the element keeps at its top ("even" rule)."""
        if isinstance(self.element, FloatFormat):
            return self.element.man_bits
        return self.element_emax + self.element.frac_bits

    @property
    def bits(self) -> float:
        """Storage bits per element, the scale's share included."""
        return self.element.bits + self.scale_bits / self.block_size

    @property
    def scale_bits(self) -> int:
        """Bits of one block scale."""
        return 8 if self.scale_is_e8m0 else self.scale.bits

    @property
    def scale_is_e8m0(self) -> bool:
        """Whether the scales are powers of two (OCP MX's E8M0), not a float format (NVFP4)."""
        return self.scale == E8M0

    @property
    def arithmetic(self) -> tuple:
        """The element format's arithmetic (the per-element operations; scales are priced apart)."""
        return self.element.arithmetic

    def stored_bits(self, numel: int) -> int:
        """Bits of numel elements with their block scales (and the tensor scale, if any)."""
        return (numel * self.element.bits + math.ceil(numel / self.block_size) * self.scale_bits
                + (PARAM_BITS if self.tensor_scale else 0))

    @property
    def max(self) -> float:
        """Largest finite value."""
        if self.scale == E8M0:
            return math.ldexp(self.element.max, E8M0_MAX)
        return self.element.max * self.scale.max

    @property
    def min(self) -> float:
        return -self.max

    has_inf = False
    has_nan = True
    has_negative_zero = property(lambda self: self.element.has_negative_zero)

    def __repr__(self) -> str:
        label = f" {self.name}:" if self.name else ""
        scale = self.scale if self.scale == E8M0 else (self.scale.name or repr(self.scale))
        extra = f", rule={self.rule!r}" if self.scale == E8M0 else (", tensor_scale" if self.tensor_scale else "")
        return f"<BlockFormat{label} {self.element.name or self.element!r} x {self.block}, scale {scale}{extra}>"

    def with_(self, **changes: Any) -> "BlockFormat":
        """A copy with some fields changed, e.g. ``get("mxfp8_e4m3").with_(rule="rceil", block=16)``."""
        return replace(self, name=None, **changes)


def bfp(mantissa_bits: int, block: int = 16, rule: str = "floor") -> BlockFormat:
    """Generic block floating point: one shared power-of-two exponent (e8m0) per block of ``block``
    elements, each a ``mantissa_bits``-bit two's complement integer k with value k * 2**(2 -
    mantissa_bits) (in [-2, 2), MXINT8's layout; ``bfp(8, 32)`` is mxint8)."""
    check_int("mantissa_bits", mantissa_bits, 2, 24)
    return BlockFormat(FixedFormat(2, mantissa_bits - 2), block=block, rule=rule)


register(BlockFormat, kind="block")
