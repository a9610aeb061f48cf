"""Quantize, encode and decode block-scaled formats (lowprec.formats.block) along one axis.

Blocks run along ``axis``: elements i*block ... (i+1)*block - 1 of each line along it share a scale.
When the axis length is not a multiple of the block size, the last block of each line is shorter;
it is scaled by its own elements, exactly as if the line were padded with zeros (``pad="zeros"``, the
default), or ``pad="raise"`` refuses such input. Stochastic rounding draws one Philox word per element
in the order of the blocked layout (axis moved last, lines padded), as ``lowprec.quantize`` draws over
that array: e8m0 formats round the float32/float64 scaled values; float-scaled ones (NVFP4) round
float64 quotients.

E8M0 (MX) formats run in the C core, and so do float scales (NVFP4) where the element and scale
formats have at most 22 significant bits (else numpy: float_scale_quantize, the reference); tensors
on a GPU in the Triton kernels (lowprec.array.device), with the same bits.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
import math
from typing import Any, Callable

import numpy as np

from . import adapters as _arrays
from ..kernels.native import ffi, lib
from ..kernels.params import qparams
from .._exact import divide_round_odd
from ..kernels.philox import WORK_UNIT, counter_offset
from ..formats.block import E8M0, E8M0_MIN, E8M0_NAN, SCALE_RULES, BlockFormat
from ..formats import layout
from ..kernels.rounding import check_rbits, mode_index, seed_key
from ..kernels.threads import get_num_threads
from .backend import choose_for_blocks, rounds_through_float32
from .layout import moved as moved_axis
from .rounding_steps import rounding_steps
from .scalar import quantize_at, quantize_scalar

PAD_POLICIES = ("zeros", "raise")


def _check_axis(axis: Any, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if ndim == 0:
        raise ValueError("block-scaled formats need an array with at least one dimension (x is 0-d)")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis must be in [{-ndim}, {ndim - 1}] for a {ndim}-d array, got {axis}")
    return int(axis) % ndim


def padded_length(length: int, block: int, pad: str) -> int:
    """A line's length in whole blocks, by the pad policy (ValueError for pad="raise" on a partial one)."""
    if pad not in PAD_POLICIES:
        raise ValueError(f"pad must be one of {', '.join(map(repr, PAD_POLICIES))}; got {pad!r}")
    if length % block and pad == "raise":
        raise ValueError(f"the axis length {length} is not a multiple of the block size {block} (pad='raise')")
    return -(-length // block) * block


def to_blocks(arr: np.ndarray, axis: int, block: int, pad: str) -> tuple[np.ndarray, Callable]:
    """(C-contiguous (nblocks, block) array of arr's blocks, a function mapping such an array back to
    arr's shape). Padding elements are zeros."""
    last = axis % max(arr.ndim, 1) == arr.ndim - 1  # the common case: no axis to move (np.moveaxis costs us)
    moved = arr if last else np.moveaxis(arr, axis, -1)
    length = moved.shape[-1]
    padded_len = padded_length(length, block, pad)
    if padded_len != length:
        lines = np.zeros(moved.shape[:-1] + (padded_len,), arr.dtype)
        lines[..., :length] = moved
    else:
        lines = _arrays.c_contiguous(arr) if last else moved_axis(arr, axis, -1)
    lead = moved.shape[:-1]

    def back(blocks: np.ndarray) -> np.ndarray:
        lines_back = blocks.reshape(lead + (padded_len,))[..., :length]
        return _arrays.c_contiguous(lines_back) if last else moved_axis(lines_back, -1, axis)

    return lines.reshape(-1, block), back


def scale_shape(shape: tuple, axis: int, block: int) -> tuple:
    """Shape of the scales of an array of `shape` blocked along `axis`."""
    s = list(shape)
    s[axis] = -(-s[axis] // block)
    return tuple(s)


def scale_threshold(fmt: BlockFormat) -> int:
    """The scale rule as one number for float32 input (csrc/block_impl.h's bump_threshold_): the
    exponent is floor(log2 amax) - elem_emax, plus 1 where amax's mantissa field is >= this."""
    full = 1 << 23
    if fmt.rule == "ceil":  # amax not a power of two
        return 1
    if fmt.rule == "rceil":  # amax above elem_max times a power of two
        return (int(np.float32(fmt.element.max).view(np.uint32)) & (full - 1)) + 1
    if fmt.rule == "even":  # rounding to 1 + elem_prec bits carries into the next binade
        return full if fmt.element_precision >= 23 else full - (1 << (22 - fmt.element_precision))
    return full  # floor: never


def _blockparams(fmt: BlockFormat, elements: bool = False):
    bp = ffi.new("lp_blockparams *")
    bp.elements = int(elements)
    bp.block = fmt.block
    bp.rule = SCALE_RULES.index(fmt.rule)
    bp.elem_emax = fmt.element_emax
    bp.elem_max = fmt.element.max
    bp.elem_prec = fmt.element_precision
    return bp


def check_element_range(fmt: BlockFormat, dtype: np.dtype) -> None:
    """The C kernel's premise: every element value times any e8m0 scale is a value of dtype."""
    q_exp = layout(fmt.element)[2]
    lowest = -149 if dtype == np.float32 else -1074
    if q_exp + E8M0_MIN < lowest:
        raise ValueError(f"{fmt!r}: its smallest nonzero element 2**{q_exp} times the smallest scale "
                         f"2**{E8M0_MIN} is below {dtype}'s range; use float64 input")


def e8m0_quantize(blocks: np.ndarray, fmt: BlockFormat, rounding: str, key: int, rbits: int | None,
                  values: np.ndarray | None = None, elements: bool = False, start: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(values, scale exponents) of (nblocks, block) float32/float64 blocks, in the C core; `values`
    (C-contiguous, blocks' shape and dtype, not overlapping blocks) receives the values if given.
    elements=True: the rounded element values instead (not multiplied by their scales). start: the
    blocks are elements from `start` (a multiple of 1024) of a larger blocked layout (stochastic draws)."""
    check_element_range(fmt, blocks.dtype)
    ctype = "float[]" if blocks.dtype == np.float32 else "double[]"
    fn = lib.lp_block_quantize_f32 if blocks.dtype == np.float32 else lib.lp_block_quantize_f64
    exps = np.empty(blocks.shape[0], np.int32)
    if values is None:
        values = np.empty_like(blocks)
    if blocks.size:
        ep = qparams(fmt.element, blocks.dtype, rounding, rbits)
        fn(ffi.from_buffer(ctype, blocks), ffi.from_buffer(ctype, values, require_writable=True), blocks.size,
           _blockparams(fmt, elements), ffi.from_buffer("int32_t[]", exps, require_writable=True), ep,
           mode_index(rounding), key, counter_offset(start, blocks.dtype), get_num_threads())
    return values, exps


# -- float scales (NVFP4): numpy --------------------------------------------------------------------
def _block_amax(x: np.ndarray) -> np.ndarray:
    """The largest magnitude of each row of (nblocks, block) x (NaN where a row holds NaN)."""
    with np.errstate(invalid="ignore"):
        return np.max(np.abs(x), axis=1) if x.size else np.zeros(x.shape[0])


def tensor_scale_of(t_amax: float | None, fmt: BlockFormat) -> float:
    """NVFP4's per-tensor float32 scale from the largest finite block amax (None: no finite block):
    t_amax / (scale max * element max), rounded to float32; 1.0 where that is 0 or not finite."""
    if not fmt.tensor_scale or t_amax is None:
        return 1.0
    g32 = np.float32(t_amax / (fmt.scale.max * fmt.element.max))
    return float(g32) if np.isfinite(g32) and g32 > 0 else 1.0


def float_scale_quantize(blocks: np.ndarray, fmt: BlockFormat, rounding: str, key: int, rbits: int | None,
                         g: float | None = None, start: int = 0) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(values, scale values (float64, NaN for a block with NaN/Inf), tensor scale, element values) of
    blocks whose scale is a float format: scale = round_nearest_even(amax / (element max * tensor
    scale)); values are element * scale * tensor scale, rounded once to the blocks' dtype. g: the
    tensor scale (None: from these blocks); start: as e8m0_quantize's."""

    x = blocks.astype(np.float64)
    amax = _block_amax(x)
    finite = np.isfinite(amax)
    if g is None:
        g = tensor_scale_of(float(np.max(amax[finite])) if finite.any() else None, fmt)
    denom = np.full_like(amax, fmt.element.max * g)  # exact: a 2-bit max times a float32
    raw = divide_round_odd(np.where(finite, amax, 0.0), denom)
    # clamped into the scale's finite positive range (torchao's rule): an amax past max * 448 takes
    # the largest scale (its elements saturate) instead of a NaN scale, and a tiny nonzero block the
    # smallest scale instead of 0 (which would zero the block)
    scales = quantize_scalar(raw, _saturating(fmt.scale), "nearest_even")
    smallest = fmt.scale.min_subnormal or fmt.scale.min_normal
    scales = np.where(amax > 0, np.maximum(scales, smallest), scales)
    scales = np.where(finite, scales, np.nan)
    usable = finite & (scales > 0)
    sg = np.where(usable, scales * g, 1.0)  # exact: 4 + 24 significant bits
    q = divide_round_odd(x, sg[:, None])
    q = np.where(usable[:, None], q, 0.0)
    elements = quantize_at(np.ascontiguousarray(q).reshape(-1), fmt.element, rounding, key, rbits, start).reshape(q.shape)
    values = elements * sg[:, None]
    values = np.where(finite[:, None], values, np.nan)
    return values.astype(blocks.dtype), scales, g, elements


@lru_cache(maxsize=64)
def _saturating(scale: Any) -> Any:
    """The scale format with overflow="saturate" (a scale past its range takes the largest one),
    made once per format: dataclasses.replace costs about 3 us a call."""
    return dataclasses.replace(scale, overflow="saturate")


def _finite_amax(blocks: np.ndarray, block: int) -> float:
    """The largest |x| of the blocks (C-contiguous, float32/float64) without NaN or Inf (0 if none):
    the per-tensor scale's amax, in C."""
    if not blocks.size:
        return 0.0
    blocks = np.ascontiguousarray(blocks)
    ctype, sfx = ("float[]", "f32") if blocks.dtype == np.float32 else ("double[]", "f64")
    return getattr(lib, f"lp_fscale_amax_{sfx}")(ffi.from_buffer(ctype, blocks), blocks.size, block)


def float_scale_quantize_c(blocks: np.ndarray, fmt: BlockFormat, rounding: str, key: int, rbits: int | None,
                           g: float | None = None, start: int = 0, want_values: bool = True,
                           want_elements: bool = False, values: np.ndarray | None = None,
                           want_scales: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, float,
                                                              np.ndarray | None]:
    """float_scale_quantize by the C core (csrc/fscale_impl.h), the same bits, for element and scale
    formats that round through float32 (lowprec.array.backend.rounds_through_float32); values,
    elements and scales only where asked for (None otherwise: a quantize call does not allocate the
    scales). values: as e8m0_quantize's."""
    blocks = np.ascontiguousarray(blocks)
    n = blocks.size
    ctype = "float[]" if blocks.dtype == np.float32 else "double[]"
    sfx = "f32" if blocks.dtype == np.float32 else "f64"
    if g is None:
        t_amax = _finite_amax(blocks, fmt.block)
        g = tensor_scale_of(t_amax if t_amax > 0 else None, fmt)
    if values is None and want_values:
        values = np.empty_like(blocks)
    elements = np.empty(blocks.shape) if want_elements else None
    scales = np.empty(blocks.shape[0]) if want_scales else None
    if n:
        wide = np.float64 if rounding == "stochastic" else np.float32  # the draws' layout is float64's
        ep = qparams(fmt.element, np.dtype(wide), rounding, rbits)
        sp = qparams(_saturating(fmt.scale), np.dtype(np.float32), "nearest_even", None)
        smallest = fmt.scale.min_subnormal or fmt.scale.min_normal
        getattr(lib, f"lp_fscale_quantize_{sfx}")(
            ffi.from_buffer(ctype, blocks), ffi.from_buffer(ctype, values, require_writable=True) if values is not None
            else ffi.NULL, ffi.from_buffer("double[]", elements, require_writable=True) if want_elements else ffi.NULL,
            ffi.from_buffer("double[]", scales, require_writable=True) if want_scales else ffi.NULL, n, fmt.block,
            ep, sp, float(fmt.element.max),
            float(g), float(smallest), mode_index(rounding), key, counter_offset(start, np.dtype(np.float64)),
            rounding_steps(fmt.element, rounding) or ffi.NULL, get_num_threads())
    return values, scales, g, elements


def _float_scaled(blocks, fmt, rounding, key, rbits, g=None, start=0, want_elements=False, values=None,
                  want_scales=True):
    """(values, scales, tensor scale, elements) of float-scaled blocks: the C core where the formats
    round through float32, else float_scale_quantize (numpy). values: as e8m0_quantize's; scales
    may be None where want_scales is False."""
    if rounds_through_float32(fmt.element) and rounds_through_float32(fmt.scale):
        return float_scale_quantize_c(blocks, fmt, rounding, key, rbits, g, start, want_elements=want_elements,
                                      values=values, want_scales=want_scales)
    result = float_scale_quantize(blocks, fmt, rounding, key, rbits, g, start)
    if values is None:
        return result
    values[...] = result[0]
    return (values,) + result[1:]


# -- the public entry points (through lowprec.quantize / encode / decode) -----------------------------
def _tile_axes(axis: Any, ndim: int) -> tuple[int, int]:
    if (not isinstance(axis, (tuple, list)) or len(axis) != 2
            or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axis)):
        raise ValueError(f"a 2-D block (rows, columns) needs axis=(a0, a1), two distinct axes; got axis={axis!r}")
    a0, a1 = (_check_axis(a, ndim) for a in axis)
    if a0 == a1:
        raise ValueError(f"axis must name two distinct axes for a 2-D block, got {tuple(axis)}")
    return a0, a1


def to_tiles(x: Any, axes: tuple[int, int], tile: tuple[int, int], pad: str) -> tuple[Any, Callable]:
    """x (numpy array or torch tensor) as (..., tiles along a0, tiles along a1, r*c): each r x c tile
    of axes (a0, a1) a row (zero-padded to whole tiles), and the function taking such values back."""
    torch_like = not isinstance(x, np.ndarray)
    (a0, a1), (r, c) = axes, tile
    moved = x.movedim((a0, a1), (-2, -1)) if torch_like else np.moveaxis(x, (a0, a1), (-2, -1))
    R, C = moved.shape[-2:]
    R2, C2 = padded_length(R, r, pad), padded_length(C, c, pad)
    if (R2, C2) != (R, C):
        if torch_like:
            import torch.nn.functional as F

            moved = F.pad(moved, (0, C2 - C, 0, R2 - R))
        else:
            moved = np.pad(moved, [(0, 0)] * (moved.ndim - 2) + [(0, R2 - R), (0, C2 - C)])
    lead = moved.shape[:-2]
    grid = moved.reshape(*lead, R2 // r, r, C2 // c, c)
    order = (*range(len(lead)), len(lead), len(lead) + 2, len(lead) + 1, len(lead) + 3)
    tiled = (grid.permute(order) if torch_like else grid.transpose(order)).reshape(*lead, R2 // r, C2 // c, r * c)

    def back(values: Any) -> Any:
        v = values.reshape(*lead, R2 // r, C2 // c, r, c)
        v = (v.permute(order) if torch_like else v.transpose(order)).reshape(*lead, R2, C2)[..., :R, :C]
        v = v.movedim((-2, -1), (a0, a1)) if torch_like else np.moveaxis(v, (-2, -1), (a0, a1))
        return v.contiguous() if torch_like else np.ascontiguousarray(v)

    return tiled, back


def _quantize_tiles(x: Any, fmt: BlockFormat, rounding: str, axis: Any, seed: Any, rbits: int | None, out: Any,
                    pad: str, backend: str | None) -> Any:
    """A 2-D block format: each tile quantized as one block of r*c (stochastic draws in the tiled
    order: tiles row-major, each tile's elements row-major)."""
    tiled, back = to_tiles(x, _tile_axes(axis, x.ndim), fmt.tile, pad)
    values = back(quantize_blocks(tiled, fmt.flat(), rounding, axis=-1, seed=seed, rbits=rbits, out=None,
                                  pad="raise", backend=backend))
    if out is None:
        return values
    out[...] = values
    return out


def quantize_blocks(x: Any, fmt: BlockFormat, rounding: str, *, axis: int, seed: Any, rbits: int | None,
                    out: Any, pad: str, backend: str | None = None) -> Any:
    """lowprec.quantize for a BlockFormat (see the module doc); tensors on a GPU run the Triton
    kernels where they apply (lowprec.array.backend.choose_for_blocks)."""
    if fmt.tile is not None:
        return _quantize_tiles(x, fmt, rounding, axis, seed, rbits, out, pad, backend)
    if choose_for_blocks(backend, x, fmt) == "triton":
        mode_index(rounding)
        check_rbits(rbits)
        if fmt.scale_is_e8m0:
            check_element_range(fmt, np.dtype(np.float32))
        ax = _check_axis(axis, x.dim())
        padded_length(x.shape[ax], fmt.block, pad)  # pad="raise" refuses a partial block
        from .device import quantize_blocks_triton  # imports torch: only for tensors

        return quantize_blocks_triton(x, fmt, rounding, ax, scale_threshold(fmt), seed=seed, rbits=rbits, out=out)
    arr, restore = _arrays.to_numpy(x)
    mode_index(rounding)
    rbits = check_rbits(rbits)
    target = _arrays.out_array(out, x, arr) if out is not None else None
    ax = _check_axis(axis, arr.ndim)
    if rounding != "stochastic" and ax != arr.ndim - 1:
        done = _quantize_inner_axis(arr, fmt, rounding, ax, rbits, target)
        if done is not None:
            return out if target is not None else restore(done)
    blocks, back = to_blocks(arr, ax, fmt.block, pad)
    key = seed_key(seed) if rounding == "stochastic" else 0
    direct = (target is not None and ax == arr.ndim - 1 and target.flags.c_contiguous
              and blocks.size == arr.size and not np.may_share_memory(target, blocks))
    into = target.reshape(blocks.shape) if direct else None
    if fmt.scale == E8M0:
        values, _ = e8m0_quantize(blocks, fmt, rounding, key, rbits, values=into)
    else:
        values = _float_scaled(blocks, fmt, rounding, key, rbits, values=into, want_scales=False)[0]
    if direct:
        return out
    return _arrays.deliver(back(values), out, target, restore)


_PIECE = 1 << 16  # elements the inner-axis path transposes, rounds and puts back at a time (in cache)


def _quantize_inner_axis(arr: np.ndarray, fmt: BlockFormat, rounding: str, ax: int, rbits: int | None,
                         target: np.ndarray | None) -> np.ndarray | None:
    """quantize_blocks along an inner axis in a deterministic mode without moving the axis: E8M0
    scales by the C kernel that reads the blocks down the columns (lp_block_cols), float scales a
    cache-sized piece at a time (the piece's runs of `block` lines transposed (block, columns) ->
    (columns, block) into a scratch, rounded there and put back; NVFP4 along axis 0 of a 2048 x 2048
    float32 array: 7.8 -> 3.2 ns an element). The blocks' order differs from to_blocks', which
    no deterministic result depends on (each block has its own scale; NVFP4's tensor scale is then the
    largest magnitude). The result (target where it is C-contiguous and apart from arr), or None where
    this does not apply: a partial block along the axis, or NVFP4 with NaN or Inf anywhere (its tensor
    scale skips their blocks)."""
    b, length = fmt.block, arr.shape[ax]
    if length % b or not arr.size:
        return None
    g = None
    if fmt.scale != E8M0 and fmt.tensor_scale:
        top = max(float(np.max(arr)), -float(np.min(arr)))  # NaN propagates; no temporary
        if not np.isfinite(top):
            return None
        g = tensor_scale_of(top if top > 0 else None, fmt)
    inner = math.prod(arr.shape[ax + 1:])
    runs = np.ascontiguousarray(arr).reshape(-1, b, inner)
    apart = target is not None and target.flags.c_contiguous and not np.may_share_memory(target, arr)
    result = target if apart else np.empty(arr.shape, arr.dtype)
    res = result.reshape(runs.shape)
    if fmt.scale == E8M0 and b <= WORK_UNIT:  # the C kernel reads the blocks down the columns in place
        check_element_range(fmt, arr.dtype)
        ctype, sfx = ("float[]", "f32") if arr.dtype == np.float32 else ("double[]", "f64")
        getattr(lib, f"lp_block_cols_{sfx}")(
            ffi.from_buffer(ctype, runs), ffi.from_buffer(ctype, res, require_writable=True), runs.shape[0], b, inner,
            _blockparams(fmt), qparams(fmt.element, arr.dtype, rounding, rbits), mode_index(rounding),
            get_num_threads())
    else:
        _round_pieces(runs, res, fmt, rounding, rbits, g)
    if target is not None and not apart:
        target[...] = result
    return result


def _round_pieces(runs: np.ndarray, res: np.ndarray, fmt: BlockFormat, rounding: str, rbits: int | None,
                  g: float | None) -> None:
    """res = the blocks down the columns of runs (slabs, block, columns) rounded, a cache-sized piece at
    a time: each piece transposed into a scratch, rounded as rows of blocks, put back."""
    b, inner = runs.shape[1:]
    cols = min(inner, max(1, _PIECE // b))
    per = max(1, _PIECE // (b * cols))
    for r0 in range(0, runs.shape[0], per):
        for c0 in range(0, inner, cols):
            piece = runs[r0:r0 + per, :, c0:c0 + cols]
            blocks = np.ascontiguousarray(piece.transpose(0, 2, 1)).reshape(-1, b)
            if fmt.scale == E8M0:
                values = e8m0_quantize(blocks, fmt, rounding, 0, rbits)[0]
            else:
                values = _float_scaled(blocks, fmt, rounding, 0, rbits, g=g, want_scales=False)[0]
            res[r0:r0 + per, :, c0:c0 + cols] = values.reshape(piece.shape[0], piece.shape[2], b).transpose(0, 2, 1)


class BlockCodes(tuple):
    """(codes, scales), with ``tensor_scale`` (NVFP4's per-tensor float32 scale; 1.0 otherwise) and
    ``dtype`` (the encoded array's) as attributes: ``codes, scales = lowprec.encode(x, "mxfp8_e4m3")``;
    ``lowprec.decode(enc, fmt)`` gives quantize(x) bit for bit (values in ``dtype``). Unpacking into
    two names drops tensor_scale: pass it to decode (NVFP4 refuses to decode without it)."""

    def __new__(cls, codes: Any, scales: Any, tensor_scale: float = 1.0, dtype: Any = None) -> "BlockCodes":
        self = super().__new__(cls, (codes, scales))
        self.tensor_scale = tensor_scale
        self.dtype = None if dtype is None else np.dtype(dtype)
        return self

    codes = property(lambda self: self[0])
    scales = property(lambda self: self[1])


class _Layout:
    """The blocked layout of an array (axis moved last, each line zero-padded to whole blocks, lines
    one after another) walked in bounded chunks: each chunk is whole blocks starting at a multiple of
    1024 elements of the layout (so stochastic draws match the one-pass kernel's)."""

    def __init__(self, shape: tuple, ax: int, block: int, pad: str):
        self.ax, self.block = ax, block
        self.length = shape[ax]
        self.padded = padded_length(self.length, block, pad)
        self.lead = shape[:ax] + shape[ax + 1:]
        self.total = math.prod(self.lead) * self.padded
        unit = math.lcm(block, WORK_UNIT)  # whole blocks, starting where a work unit starts
        self.step = unit * max(1, _arrays.CHUNK // unit)

    def chunks(self):
        for p0 in range(0, self.total, self.step):
            yield p0, min(p0 + self.step, self.total)

    def _direct(self, arr: np.ndarray) -> bool:  # the layout is arr's own C order
        return self.ax == arr.ndim - 1 and self.padded == self.length and arr.flags.c_contiguous

    def _index(self, p0: int, p1: int, per: int, width: int):
        """(index tuple into the axis-last view, valid mask) for units p0 // per ... of the layout,
        units of `per` layout elements, `width` valid ones a line out of self.padded // per."""
        pos = np.arange(p0 // per, p1 // per)
        line, j = np.divmod(pos, self.padded // per)
        valid = j < width
        lead = np.unravel_index(line[valid], self.lead) if self.lead else ()
        return (*lead, j[valid]), valid

    def gather(self, arr: np.ndarray, p0: int, p1: int) -> np.ndarray:
        """Elements [p0, p1) of the layout of arr as (nblocks, block), zeros in the padding."""
        if self._direct(arr):
            return arr.reshape(-1)[p0:p1].reshape(-1, self.block)
        idx, valid = self._index(p0, p1, 1, self.length)
        out = np.zeros(p1 - p0, arr.dtype)
        out[valid] = np.moveaxis(arr, self.ax, -1)[idx]
        return out.reshape(-1, self.block)

    def scatter(self, dest: np.ndarray, p0: int, p1: int, values: np.ndarray) -> None:
        """Write the layout elements [p0, p1) (padding dropped) into dest (of the array's shape)."""
        if self._direct(dest):
            dest.reshape(-1)[p0:p1] = values.reshape(-1)
            return
        idx, valid = self._index(p0, p1, 1, self.length)
        np.moveaxis(dest, self.ax, -1)[idx] = values.reshape(-1)[valid]

    def block_index(self, p0: int, p1: int):
        """Index tuple into the axis-last view of the scales for the blocks of [p0, p1)."""
        nb = self.padded // self.block
        return self._index(p0, p1, self.block, nb)[0]


def _one_axis(fmt: BlockFormat, what: str) -> None:
    if fmt.tile is not None:
        raise ValueError(f"{what} takes blocks along one axis; {fmt.name or 'this format'} has 2-D blocks "
                         f"{fmt.tile} (quantize takes them)")


def encode_blocks(x: Any, fmt: BlockFormat, rounding: str, *, axis: int = -1, seed: Any = None,
                  rbits: int | None = None, pad: str = "zeros") -> BlockCodes:
    """BlockCodes(element codes of x's shape, scales with the axis shortened to the block count). e8m0
    scales are uint8 codes e + 127 (255: NaN); float scales are their format's codes. NaN blocks have
    element codes 0. Tensors in, tensors out. Works a bounded chunk at a time: the codes and scales
    are the only full-size arrays. Element codes come from the rounded elements themselves, so they do
    not depend on whether element * scale fits x's dtype."""
    _one_axis(fmt, "encode")
    arr, _ = _arrays.to_numpy(x)
    mode_index(rounding)
    rbits = check_rbits(rbits)
    ax = _check_axis(axis, arr.ndim)
    layout = _Layout(arr.shape, ax, fmt.block, pad)
    key = seed_key(seed) if rounding == "stochastic" else 0
    codes = np.empty(arr.shape, fmt.element.code_dtype)
    scale_dtype = np.uint8 if fmt.scale == E8M0 else fmt.scale.code_dtype
    scales_out = np.empty(scale_shape(arr.shape, ax, fmt.block), scale_dtype)
    scales_view = np.moveaxis(scales_out, ax, -1)
    g = 1.0
    if fmt.scale != E8M0 and fmt.tensor_scale:  # a first pass for the per-tensor scale
        t_amax = 0.0
        for p0, p1 in layout.chunks():
            t_amax = max(t_amax, _finite_amax(layout.gather(arr, p0, p1), fmt.block))
        g = tensor_scale_of(t_amax if t_amax > 0 else None, fmt)
    for p0, p1 in layout.chunks():
        blocks = layout.gather(arr, p0, p1)
        if fmt.scale == E8M0:
            elems, exps = e8m0_quantize(blocks, fmt, rounding, key, rbits, elements=True, start=p0)
            nan = exps == lib.LP_E8M0_NAN_EXP  # the kernel's marker of a NaN scale
            scale_codes = np.where(nan, E8M0_NAN, exps + 127).astype(np.uint8)
        else:
            _, scales, _, elems = _float_scaled(blocks, fmt, rounding, key, rbits, g=g, start=p0, want_elements=True)
            nan = np.isnan(scales)
            scale_codes = fmt.scale.encode(scales)
        if nan.any():
            elems = np.where(nan[:, None], 0.0, elems)
        layout.scatter(codes, p0, p1, fmt.element.value_codes(elems))
        scales_view[layout.block_index(p0, p1)] = scale_codes
    if _arrays.is_tensor(x):
        import torch

        return BlockCodes(torch.from_numpy(codes), torch.from_numpy(scales_out), g, arr.dtype)
    return BlockCodes(codes, scales_out, g, arr.dtype)


def decode_blocks(codes: Any, fmt: BlockFormat, scales: Any, *, axis: int = -1, tensor_scale: float = 1.0,
                  dtype: Any = np.float64) -> Any:
    """Values of element codes and their block scales (as encode_blocks returns them), a bounded chunk
    at a time: exact in float64, rounded once to `dtype` (float32: overflow gives Inf, as quantize)."""
    _one_axis(fmt, "decode")
    tensor = _arrays.is_tensor(codes)
    c = codes.detach().cpu().numpy() if tensor else np.asarray(codes)
    s = scales.detach().cpu().numpy() if _arrays.is_tensor(scales) else np.asarray(scales)
    ax = _check_axis(axis, c.ndim)
    expected = scale_shape(c.shape, ax, fmt.block)
    if s.shape != expected:
        raise ValueError(f"scales has shape {s.shape}; codes of shape {c.shape} blocked by {fmt.block} along "
                         f"axis {axis} need {expected}")
    if fmt.scale == E8M0 and (s.dtype.kind not in "iu" or (s.size and (s.min() < 0 or s.max() > 255))):
        raise ValueError("scales must be e8m0 codes: integers in [0, 255]")
    layout = _Layout(c.shape, ax, fmt.block, "zeros")
    scales_view = np.moveaxis(s, ax, -1)
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    values = np.empty(c.shape, dtype)
    for p0, p1 in layout.chunks():
        elem = np.asarray(fmt.element.decode(layout.gather(c, p0, p1)), np.float64)
        sc = scales_view[layout.block_index(p0, p1)]
        if fmt.scale == E8M0:
            sv = np.where(sc == E8M0_NAN, np.nan, np.ldexp(1.0, sc.astype(np.int64) - 127))
        else:
            sv = np.asarray(fmt.scale.decode(sc), np.float64) * tensor_scale
        with np.errstate(over="ignore"):  # float32 overflow is Inf, as quantize gives it
            layout.scatter(values, p0, p1, (elem * sv[:, None]).astype(dtype))
    if tensor:
        import torch

        return torch.from_numpy(values)
    return values
