"""lowprec.quantize, encode and decode: one dispatch over the format kinds.

Each kind (float and fixed point, block-scaled, codebook, binary/ternary/affine) has its module in
lowprec.array and one row in KINDS: the functions that do the work and the keywords each of them
honours. A keyword given (not at its default) to a kind that does not honour it is refused with a
ValueError naming the keyword and the kind, never ignored. float16/bfloat16 tensors go through
float32 (which holds them exactly) and come back in their own dtype where the format's values fit it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..formats import SCALED_KINDS, BlockFormat, GroupAffineFormat, FixedFormat, FloatFormat, Format, LUTFormat, as_format, layout
from . import adapters as _arrays
from .backend import choose
from .block import BlockCodes, decode_blocks, encode_blocks, quantize_blocks
from .codebook import decode_lut, encode_lut, quantize_lut
from .scalar import decode_scalar, encode_scalar, quantize_scalar
from .scaled import decode_scaled, encode_scaled, quantize_scaled

__all__ = ["quantize", "encode", "decode", "KINDS", "BlockCodes"]


@dataclass(frozen=True)
class Kind:
    """A family of formats: its name in messages, its format classes, and per operation the function
    and the keywords it honours (beyond x, fmt and rounding)."""

    name: str
    types: tuple
    quantize: Callable
    encode: Callable
    decode: Callable
    quantize_keywords: frozenset
    encode_keywords: frozenset
    decode_keywords: frozenset


def _blocks_quantize(x, fmt, rounding, *, seed=None, rbits=None, out=None, axis=-1, pad="zeros", backend=None):
    return quantize_blocks(x, fmt, rounding, axis=axis, seed=seed, rbits=rbits, out=out, pad=pad, backend=backend)


def _blocks_decode(codes, fmt, *, scales=None, axis=-1, tensor_scale=None, dtype=None):
    if isinstance(codes, BlockCodes):
        given = codes
        codes, scales = given.codes, given.scales
        tensor_scale = given.tensor_scale if tensor_scale is None else tensor_scale
        dtype = given.dtype if dtype is None else dtype
    if scales is None:
        raise TypeError(f"decode of the block-scaled {fmt!r} needs scales= (or the pair encode returned)")
    if tensor_scale is None and fmt.tensor_scale:
        raise TypeError(f"decode of {fmt.name or fmt!r} needs tensor_scale= (encode(...).tensor_scale): "
                        "its values are element * block scale * tensor scale")
    return decode_blocks(codes, fmt, scales, axis=axis, tensor_scale=1.0 if tensor_scale is None else tensor_scale,
                         dtype=np.float64 if dtype is None else dtype)


def _lut_quantize(x, fmt, rounding, *, seed=None, out=None, backend=None):
    return quantize_lut(x, fmt, rounding, seed, out, backend)


def _group_quantize(x, fmt, rounding, *, seed=None, out=None):
    rows, back = fmt.view(x)
    values = back(quantize_scaled(rows, fmt.rows, rounding, seed=seed))
    if out is None:
        return values
    out[...] = values
    return out


def _group_encode(x, fmt, rounding, *, seed=None):
    rows, back = fmt.view(x)
    return back(encode_scaled(rows, fmt.rows, rounding, seed=seed))


def _group_decode(codes, fmt):
    rows, back = fmt.view(codes)
    return back(decode_scaled(rows, fmt.rows))


KINDS = (
    Kind("float and fixed-point", (FloatFormat, FixedFormat), quantize_scalar, encode_scalar, decode_scalar,
         frozenset({"seed", "rbits", "out", "nan", "backend"}), frozenset({"seed", "rbits", "nan"}), frozenset()),
    Kind("block-scaled", (BlockFormat,), _blocks_quantize, encode_blocks, _blocks_decode,
         frozenset({"seed", "rbits", "out", "axis", "pad", "backend"}), frozenset({"seed", "rbits", "axis", "pad"}),
         frozenset({"scales", "axis", "tensor_scale", "dtype"})),
    Kind("codebook (LUT, log)", (LUTFormat,), _lut_quantize, encode_lut, decode_lut,
         frozenset({"seed", "out", "backend"}), frozenset({"seed"}), frozenset()),
    Kind("binary, ternary and integer-affine", SCALED_KINDS, quantize_scaled, encode_scaled, decode_scaled,
         frozenset({"seed", "out", "backend"}), frozenset({"seed"}), frozenset()),
    Kind("group-wise integer affine", (GroupAffineFormat,), _group_quantize, _group_encode, _group_decode,
         frozenset({"seed", "out"}), frozenset({"seed"}), frozenset()),
)

_DEFAULTS = {"seed": None, "rbits": None, "out": None, "nan": "default", "axis": -1, "pad": "zeros",
             "scales": None, "tensor_scale": None, "dtype": None, "backend": None}


def kind_of(fmt: Format) -> Kind:
    """The row of KINDS a format object belongs to."""
    for kind in KINDS:
        if isinstance(fmt, kind.types):
            return kind
    raise TypeError(f"no array operations are registered for {type(fmt).__name__}")


def _is_default(key: str, value: Any) -> bool:
    default = _DEFAULTS[key]
    if value is default:
        return True
    return isinstance(value, (str, int)) and not isinstance(value, bool) and type(value) is type(default) \
        and value == default


def _keywords(kind: Kind, fmt: Format, op: str, allowed: frozenset, given: dict) -> dict:
    """The keywords this kind honours; ValueError for one it does not that is not at its default."""
    for key, value in given.items():
        if key not in allowed and not _is_default(key, value):
            takes = ", ".join(f"{k}=" for k in sorted(allowed)) or "no keywords"
            raise ValueError(f"{key}= does not apply to {kind.name} formats ({fmt.name or fmt!r}): their "
                             f"{op} takes {takes}")
    return {k: v for k, v in given.items() if k in allowed}


def quantize(x: Any, fmt: Format | str, rounding: str = "nearest_even", *, seed: Any = None,
             rbits: int | None = None, out: Any = None, nan: str = "default", axis: int = -1,
             pad: str = "zeros", backend: str | None = None) -> Any:
    """Round every element of x to a value of `fmt` (a name or a format object).

    x: float32/float64 numpy array (any strides, either byte order), numpy float scalar, Python
    float, or torch tensor (float16/bfloat16 too). The result has x's type, dtype and shape; x itself
    is never written unless it is passed as `out`. float64 input is rounded once, directly.

    rounding: one of lowprec.ROUNDING_MODES, or a function rule(x, lo, hi) -> lo or hi that numba
    compiles (float and fixed-point formats; lowprec.array.user_rounding). "stochastic" rounds away from zero with probability
    (distance to the lower neighbour) / spacing; `seed` (int or numpy Generator) fixes the random
    bits, whatever the thread count; `rbits=k` uses k random bits with the remainder rounded to k bits
    first (gfloat's RoundMode.Stochastic). rbits=None uses 32 random bits for float32 input and 64
    for float64, which is exact whenever the remainder fits in them (always, for inputs no more than
    ~8 (float32) / ~11 (float64) binades below the format's smallest nonzero value).

    Formats wider than x's dtype (e.g. fp64, int32 from float32): results are the values of the
    format that x's dtype holds; saturation stops at the largest such value.

    nan (float and fixed point): "default" follows the format's convention (see its docstring);
    "raise" raises ValueError when a NaN meets a format without NaN.

    Block-scaled formats (lowprec.formats.block, e.g. "mxfp8_e4m3"): blocks run along `axis`; `pad`
    says what a partial last block does ("zeros": it is scaled by its own elements; "raise"). See
    lowprec.array.block. Codebook formats (LUTFormat, LogFormat): lowprec.array.codebook. Binary,
    ternary and integer-affine formats: lowprec.array.scaled. A keyword a kind does not take (rbits
    for a codebook, axis for a float format, ...) raises ValueError.

    backend: None chooses (numpy and CPU tensors: the C core; CUDA tensors: Triton kernels, or for
    float and fixed-point formats torch operations without Triton); "c", "triton" or "torch" (float
    and fixed point only) names one, with the same bits. See lowprec.array.backend.
    """
    fmt = as_format(fmt)
    kind = kind_of(fmt)
    if callable(rounding):  # a user's rule, compiled (lowprec.array.user_rounding)
        from .user_rounding import quantize_user

        _keywords(kind, fmt, "quantize", frozenset({"out"}),
                  dict(seed=seed, rbits=rbits, out=out, nan=nan, axis=axis, pad=pad, backend=backend))
        return quantize_user(x, fmt, rounding, quantize, out=out)
    kw = _keywords(kind, fmt, "quantize", kind.quantize_keywords,
                   dict(seed=seed, rbits=rbits, out=out, nan=nan, axis=axis, pad=pad, backend=backend))
    if _arrays.is_half_tensor(x) or _arrays.is_half_array(x):
        return _quantize_half(x, fmt, rounding, **kw)
    return kind.quantize(x, fmt, rounding, **kw)


def encode(x: Any, fmt: Format | str, rounding: str = "nearest_even", *, seed: Any = None,
           rbits: int | None = None, nan: str = "default", axis: int = -1, pad: str = "zeros") -> Any:
    """Round x to `fmt` (as quantize, the same keywords but out) and return the codes: an unsigned
    integer array of x's shape (a torch tensor for tensor input, a Python int for a Python float);
    block-scaled formats give BlockCodes (codes, scales, .tensor_scale, .dtype). Memory: the codes
    plus a bounded scratch, whatever x's size."""
    fmt = as_format(fmt)
    kind = kind_of(fmt)
    kw = _keywords(kind, fmt, "encode", kind.encode_keywords, dict(seed=seed, rbits=rbits, nan=nan, axis=axis, pad=pad))
    return kind.encode(x, fmt, rounding, **kw)


def decode(codes: Any, fmt: Format | str, scales: Any = None, *, axis: int = -1,
           tensor_scale: float | None = None, dtype: Any = None) -> Any:
    """Values of codes of `fmt`: float32, or float64 for formats float32 cannot hold (see
    ``fmt.decode_dtype``). Codes must be integers in [0, 2**bits).

    Block-scaled formats: pass the pair ``encode`` returned as `codes` (values in the encoded array's
    dtype: decode(encode(x)) is quantize(x) bit for bit), or the element codes and their `scales`
    (values exact, float64: E8M0 scales reach beyond float32), blocked along `axis`; NVFP4 also needs
    `tensor_scale` (``encode(...).tensor_scale``). `dtype` (float32/float64) overrides the values'
    dtype (rounded once)."""
    fmt = as_format(fmt)
    kind = kind_of(fmt)
    if scales is not None and "scales" not in kind.decode_keywords:
        raise TypeError(f"scales= is for block-scaled formats; {fmt!r} has none")
    kw = _keywords(kind, fmt, "decode", kind.decode_keywords,
                   dict(scales=scales, axis=axis, tensor_scale=tensor_scale, dtype=dtype))
    return kind.decode(codes, fmt, **kw)


_HALF_LIMITS = {"float16": (10, 65504.0, -24), "bfloat16": (7, 3.3895313892515355e38, -133)}  # man, max, q_exp


def fits(fmt: Format, dtype_name: str) -> bool:
    """Whether every value of a float or fixed-point format is exact in torch's float16/bfloat16."""
    man, top, q_exp = _HALF_LIMITS[dtype_name]
    fq = layout(fmt)[2]
    width = fmt.man_bits + 1 if isinstance(fmt, FloatFormat) else fmt.bits - int(fmt.signed)  # significant bits
    return width <= man + 1 and fmt.max <= top and -fmt.min <= top and fq >= q_exp


def _quantize_half(x: Any, fmt: Format, rounding: str, *, out: Any, **kwargs: Any) -> Any:
    """float16/bfloat16 tensors and numpy arrays (bfloat16: ml_dtypes'): exact in float32, quantized
    there, the result in x's dtype, which must hold every value of the format (else a clear error,
    never a second rounding)."""
    tensor = _arrays.is_tensor(x)
    dtype_name = str(x.dtype).rsplit(".", 1)[-1] if tensor else _arrays.half_dtype_name(x.dtype)
    kind = f"{dtype_name} tensor" if tensor else f"{dtype_name} array"
    widen = "x.float()" if tensor else "x.astype(np.float32)"
    elementwise = isinstance(fmt, (FloatFormat, FixedFormat))  # values x's half type holds (checked here)
    if elementwise:
        if not fits(fmt, dtype_name):
            raise TypeError(f"x is a {kind} and {fmt.name or fmt!r} has values {dtype_name} cannot "
                            f"hold; pass {widen} (the result is then float32)")
        if tensor and choose(kwargs.get("backend"), x, fmt) == "triton":  # the kernel reads and writes halves itself
            return quantize_scalar(x, fmt, rounding, out=out, **kwargs)
    if tensor:
        import torch  # a tensor came in: torch is loaded

        wide = _arrays.widened(x)
        into = {"out": wide} if elementwise and x.device.type == "cpu" else {}
        q = quantize(wide, fmt, rounding, **into, **kwargs)
        result = _arrays.narrowed(q, x.dtype) if elementwise else q.to(x.dtype)
        exact = elementwise or bool(((result.float() == q) | torch.isnan(q)).all())
    else:
        wide = _arrays.widened_half(x) if isinstance(x, np.ndarray) else x.astype(np.float32)
        # a new array of ours: float and fixed-point results go into it (one full-size array fewer)
        into = {"out": wide} if elementwise and isinstance(wide, np.ndarray) else {}
        q = quantize(wide, fmt, rounding, **into, **kwargs)
        if elementwise and isinstance(q, np.ndarray):  # exact: the C narrowing
            result = _arrays.narrowed_half(q, dtype_name == "bfloat16").view(x.dtype)
        else:
            result = q.astype(x.dtype)  # NaN signs kept (numpy's and ml_dtypes' conversions)
        with np.errstate(invalid="ignore"):
            exact = elementwise or bool(
                ((np.asarray(result, np.float32) == q) | np.isnan(q)).all())
    if not exact:  # scaled, block, codebook values: checked
        raise TypeError(f"x is a {kind} and its values in {fmt!r} are not all {dtype_name} "
                        f"values; pass {widen} (the result is then float32)")
    if out is not None:
        if tensor:
            if not _arrays.is_tensor(out) or out.shape != x.shape or out.dtype != x.dtype:
                raise TypeError("out must be a tensor of x's shape and dtype")
            out.copy_(result)
        else:
            if not isinstance(out, np.ndarray) or out.shape != np.shape(x) or out.dtype != x.dtype:
                raise TypeError("out must be a numpy array of x's shape and dtype")
            if not out.flags.writeable:
                raise ValueError("out is read-only")
            np.copyto(out, result)
        return out
    return result
