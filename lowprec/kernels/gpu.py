"""The Triton kernels' Python face: load them (compiled for CUDA tensors, interpreted for CPU ones),
pack a parameter block for the device, launch.

Triton fixes a kernel's mode (compiled or interpreted) when its decorator runs, from the environment
variable TRITON_INTERPRET; so each kernel module is loaded once per mode under its own name, with the
variable set for the load only. CPU tensors therefore run the interpreter (slow, for tests) without
the caller setting anything, and CUDA tensors in the same process the compiled kernel.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from .philox import WORK_UNIT

__all__ = ["available", "quantize_float", "quantize_e8m0", "quantize_fscale", "quantize_binary", "quantize_ternary",
           "quantize_affine", "quantize_lut", "mac_matmul", "mac_fused"]

_PARAM_FIELDS = ("drop0", "sub_exp", "q_exp", "tiny", "q", "half_q", "lim_pos", "lim_neg", "ovf_pos", "ovf_neg",
                 "inf_pos_full", "inf_neg_full", "nan_pos_full", "nan_neg_full", "keep_neg_zero", "par_mask",
                 "par_xor", "rbits")  # the order of the P_* indices in triton_float.py
# launch shape, from bench/gpu.py's sweep on an H200 (float32 fp8_e4m3fn, x a copy): deterministic 2 work
# units a program with 4 warps (0.78; 1 unit: 0.70), stochastic 2 warps without join (0.49; 4 warps: 0.40)
_TUNED = {"units": 2, "num_warps": 4, "stochastic_warps": 2, "join": False}
_WIDTHS = {32: (23, 127, 4), 64: (52, 1023, 2)}  # mantissa bits, bias, elements per Philox counter


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether Triton can be imported."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=None)
def _module(name: str, interpret: bool) -> ModuleType:
    """Kernel module `name` (a file beside this one) loaded compiled or for the interpreter."""
    if not available():
        raise ModuleNotFoundError("the Triton backend needs the triton package: pip install 'lowprec[gpu]' "
                                  "(PyTorch's CUDA builds ship it)")
    if name != "triton_float":  # the other kernels reuse its rounding, loaded in the same mode
        sys.modules["lowprec.kernels.triton_float_loaded"] = _module("triton_float", interpret)
    spec = importlib.util.spec_from_file_location(f"lowprec.kernels._{name}_{'interpreted' if interpret else 'compiled'}",
                                                  Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("lowprec.kernels.triton_float_loaded", None)
        if before is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = before
    return module


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


_ON_DEVICE: dict = {}  # (id(params), device) -> (params, tensor): holding params keeps its id unique


def _params_on(params, device):
    """An lp_qparams block as an int64 tensor on the device (cached: a lookup per launch)."""
    hit = _ON_DEVICE.get((id(params), device))
    if hit is None:
        if len(_ON_DEVICE) > 1024:
            _ON_DEVICE.clear()
        values = tuple(_signed64(int(getattr(params, f))) for f in _PARAM_FIELDS)
        hit = _ON_DEVICE[(id(params), device)] = (params, _values_on(values, device))
    return hit[1]


@lru_cache(maxsize=512)
def _values_on(values: tuple, device):
    import torch

    return torch.tensor(values, dtype=torch.int64, device=device)


def _halves(value: int) -> tuple[int, int]:
    """A 64-bit value as two 32-bit halves moved into int32 range (see quantize_float's doc)."""
    return (value & 0xFFFFFFFF) - (1 << 31), (value >> 32) - (1 << 31)


def byte_draws(params, mode: int) -> bool:
    """Whether a launch draws a byte an element (stochastic with rbits <= 8, lowprec.kernels.philox)."""
    return mode == 6 and int(params.rbits) <= 8


@lru_cache(maxsize=256)
def _launch_settings(width: int, mode: int, deep: bool, units: int | None, num_warps: int | None,
                     join: bool | None, byte_draws: bool = False) -> tuple[int, dict]:
    """(elements per program, the kernel's constexpr and launch keywords) of one launch shape."""
    mant, bias, per_counter = _WIDTHS[width]
    stochastic = mode == 6
    units = 1 if stochastic else (units or _TUNED["units"])
    warps = num_warps or _TUNED["stochastic_warps" if stochastic else "num_warps"]
    rows, cols = (16, 64) if byte_draws else (per_counter * units, WORK_UNIT // per_counter)
    return WORK_UNIT * units, dict(WIDTH=width, MANT=mant, BIAS=bias, ROWS=rows, COLS=cols, MODE=mode, DEEP=deep,
                                   JOIN=_TUNED["join"] if join is None else join, BYTES=byte_draws,
                                   num_warps=warps)


def quantize_float(src, dst, params, mode: int, width: int, key: int, offset: int = 0, *, units: int | None = None,
                   num_warps: int | None = None, join: bool | None = None) -> None:
    """Round the contiguous tensor src into the contiguous tensor dst (same shape and device; dtypes
    float32 / float16 / bfloat16 with width 32, float64 with width 64) by the parameter block `params`
    (for float32 or float64 input, matching width). Stochastic draws as the C kernel's from counter
    `offset` (lowprec.kernels.philox.counter_offset). units (work units per program, deterministic
    modes only), num_warps and join (see triton_float.quantize_float) override the tuned defaults."""
    n = src.numel()
    if n == 0:
        return
    per_program, settings = _launch_settings(width, mode, params.sub_exp < 1, units, num_warps, join,
                                             byte_draws(params, mode))
    kernel = _module("triton_float", src.device.type == "cpu").quantize_float
    key_lo, key_hi = _halves(key)
    ctr_lo, ctr_hi = _halves(offset)
    kernel[(-(-n // per_program),)](src, dst, _params_on(params, src.device), n, key_lo, key_hi, ctr_lo, ctr_hi,
                                    **settings)


def _pow2_at_least(v: int) -> int:
    return 1 << max(0, (v - 1).bit_length())


def _block_geometry(shape: tuple, block: int, units: int = 1) -> tuple[tuple, dict, tuple]:
    """(grid, tile constexprs, (total blocks, blocks a line, L, inner, B)) of a block kernel over an
    (outer, L, inner) tensor blocked by `block` along L, about `units` work units a program."""
    outer, length, inner = shape
    nbl = -(-length // block)
    bp = _pow2_at_least(block)
    it = 1 if inner == 1 else min(_pow2_at_least(inner), 64)
    nb = max(1, units * WORK_UNIT // (bp * it))
    total = outer * nbl
    return (-(-total // nb), -(-inner // it)), dict(NB=nb, BP=bp, IT=it), (total, nbl, length, inner, block)


def quantize_e8m0(src, dst, params, mode: int, key: int, *, block: int, elem_emax: int, threshold: int,
                  units: int = 1, num_warps: int = 4) -> None:
    """Quantize the contiguous float32 tensor src, seen as (outer, L, inner) and blocked by `block`
    along L, into dst (same shape) by an e8m0 block format: `params` the element format's block (for
    float32 input), elem_emax and threshold the scale rule's numbers (lowprec.array.block). Stochastic
    draws over the blocked layout (axis last, lines padded to whole blocks), as the C core's. units
    (work units a program) and num_warps: the launch shape (bench/gpu.py --sweep mx)."""
    if src.numel() == 0:
        return
    grid, tile, geometry = _block_geometry(src.shape, block, units)
    kernel = _module("triton_block", src.device.type == "cpu").quantize_e8m0
    key_lo, key_hi = _halves(key)
    kernel[grid](src, dst, _params_on(params, src.device), *geometry, elem_emax, threshold, key_lo, key_hi,
                 MODE=mode, DEEP=params.sub_exp < 1, BYTES=byte_draws(params, mode), num_warps=num_warps, **tile)


def quantize_fscale(src, dst, element_params, scale_params, mode: int, key: int, *, block: int,
                    constants: tuple, tensor_scale: bool) -> None:
    """Quantize the contiguous float32/float64 tensor src, seen as (outer, L, inner) and blocked by
    `block` along L, into dst by a float-scaled block format (NVFP4): element_params / scale_params
    the element's (in `mode`; for float64 when stochastic, else float32) and the saturating scale
    format's (nearest even, float32) blocks;
    constants (element max, scale max * element max, the scale's smallest positive value);
    tensor_scale: a per-tensor scale from the largest finite block amax (a first pass). Stochastic
    draws (64 bits) over the blocked layout, as lowprec.array.block's."""
    if src.numel() == 0:
        return
    import torch

    grid, tile, geometry = _block_geometry(src.shape, block)
    module = _module("triton_block", src.device.type == "cpu")
    amax = torch.zeros(1, dtype=torch.int64, device=src.device)
    if tensor_scale:
        module.finite_amax[grid](src, amax, *geometry, num_warps=4, **tile)
    key_lo, key_hi = _halves(key)
    module.quantize_fscale[grid](src, dst, _params_on(element_params, src.device), _params_on(scale_params, src.device),
                                 _constants_on(constants, src.device), amax, *geometry, key_lo, key_hi, MODE=mode,
                                 EDEEP=element_params.sub_exp < 1, SDEEP=scale_params.sub_exp < 1,
                                 TENSOR_SCALE=tensor_scale, BYTES=byte_draws(element_params, mode), num_warps=4,
                                 **tile)


@lru_cache(maxsize=512)
def _constants_on(values: tuple, device):
    import torch

    return torch.tensor(values, dtype=torch.float64, device=device)


_SCALED_BLOCK = 1024


def quantize_binary(src, dst, alpha, inner: int, key: int | None) -> None:
    """dst = src (contiguous float32/float64) rounded to +-alpha (a float64 tensor on src's device, one
    entry or one per channel; channel of element i: (i // inner) % len(alpha)): the sign, or with a
    key BinaryConnect's stochastic rounding (lowprec.array.scaled)."""
    n = src.numel()
    if n == 0:
        return
    key_lo, key_hi = _halves(key or 0)
    kernel = _module("triton_scaled", src.device.type == "cpu").binary
    kernel[(-(-n // _SCALED_BLOCK),)](src, dst, alpha, n, inner, alpha.numel(), key_lo, key_hi, BLOCK=_SCALED_BLOCK,
                                      STOCHASTIC=key is not None)


def quantize_ternary(src, dst, w_p, w_n, delta, inner: int) -> None:
    """dst = src rounded to {-w_n, 0, +w_p} by the thresholds +-delta (float64 tensors, as alpha in
    quantize_binary, all of one length)."""
    n = src.numel()
    if n == 0:
        return
    kernel = _module("triton_scaled", src.device.type == "cpu").ternary
    kernel[(-(-n // _SCALED_BLOCK),)](src, dst, w_p, w_n, delta, n, inner, w_p.numel(), BLOCK=_SCALED_BLOCK)


def quantize_affine(src, dst, scale, zero_point, params, mode: int, key: int, inner: int, *, qmin: int,
                    qmax: int) -> None:
    """dst = src (contiguous float32/float64) in an integer-affine format: scale (float64) and
    zero_point (int64) tensors on src's device, one entry or one per channel (as quantize_binary's
    alpha); params: rounding to a 64-bit integer from float64 in `mode` (stochastic: 64-bit draws in
    the float64 layout, as the C core's)."""
    n = src.numel()
    if n == 0:
        return
    key_lo, key_hi = _halves(key)
    kernel = _module("triton_scaled", src.device.type == "cpu").affine
    kernel[(-(-n // _SCALED_BLOCK),)](src, dst, scale, zero_point, _params_on(params, src.device), n, inner,
                                      scale.numel(), qmin, qmax, key_lo, key_hi, BLOCK=_SCALED_BLOCK, MODE=mode,
                                      DEEP=params.sub_exp < 1)


def quantize_lut(src, dst, thresholds, table, book, inner: int, key: int | None) -> None:
    """dst = src (contiguous float32/float64) rounded to a codebook: thresholds (channels x (K - 1))
    and table (channels x K) of src's dtype, book the float64 codebook (channels x K), all on src's
    device; channel of element i: (i // inner) % channels. key: stochastic rounding (thresholds then
    the "down" ones)."""
    n = src.numel()
    if n == 0:
        return
    channels, entries = table.shape
    key_lo, key_hi = _halves(key or 0)
    kernel = _module("triton_codebook", src.device.type == "cpu").lut
    kernel[(-(-n // _SCALED_BLOCK),)](src, dst, thresholds, table, book, n, inner, channels, entries, key_lo, key_hi,
                                      BLOCK=_SCALED_BLOCK, LOG=(entries - 1).bit_length(), STOCHASTIC=key is not None)


_MAC_TILE = (16, 32)  # outputs a program (rows x columns)


def mac_matmul(a, b, c, params: dict, mode: int, *, chunk: int, key: int, offset: int, acc_native: bool,
               chunk_native: bool, b_broadcast: bool, halves: frozenset = frozenset(), init=None) -> None:
    """c = a @ b by the sequential MAC engine (csrc/mac_impl.h's rules and draws): a (m x k), b (k x
    n, or 1 x n standing for every row with b_broadcast) and c (m x n) contiguous tensors of one
    dtype (float32 or float64: the working type) on one device; params: "acc" and "out" (and "mul",
    "chunk_acc" where used) parameter blocks for that dtype; output (i, j) draws as offset + i * n + j.
    halves: the roles ("mul", "acc", "chunk_acc", "out") whose format is IEEE binary16 under nearest
    even with float32 operands (rounded by the hardware's conversion). init: None or the initial
    accumulator (m x n, c's dtype and device): the sum (the chunk total when chunking) starts from it."""
    m, k = a.shape
    n = c.shape[1]
    if m * n == 0:
        return
    width = 32 if str(a.dtype) == "torch.float32" else 64
    key_lo, key_hi = _halves(key)
    off_lo, off_hi = _halves(offset)
    acc = _params_on(params["acc"], a.device)
    vectors = [_params_on(params[f], a.device) if params.get(f) is not None else acc
               for f in ("mul", "acc", "chunk_acc", "out")]
    kernel = _module("triton_mac", a.device.type == "cpu").mac_sequential
    bm, bn = _MAC_TILE
    kernel[(-(-m // bm), -(-n // bn))](a, b, c, c if init is None else init, *vectors, m, k, n, max(chunk, 1), key_lo,
                                       key_hi, off_lo, off_hi, HAS_INIT=init is not None,
                                       WIDTH=width, MODE=mode, HAS_MUL=params.get("mul") is not None,
                                       CHUNKED=chunk > 0, ACC_NATIVE=acc_native, CHUNK_NATIVE=chunk_native,
                                       B_BROADCAST=b_broadcast, BM=bm, BN=bn, MUL_HALF="mul" in halves,
                                       ACC_HALF="acc" in halves, CHUNK_HALF="chunk_acc" in halves,
                                       OUT_HALF="out" in halves, num_warps=4)


def mac_fused(a, b, c, d, acc_params, mode: int, *, group: int, kept_bits: int, a_emin: int, b_emin: int,
              acc_emax: int, ref_min: int, chunk: int = 0, chunk_params=None) -> None:
    """d (float64, m x n) = a @ b (+ c) as a matrix unit computes it (triton_mac.mac_fused; the C
    engine csrc/fused_impl.h): float32 a (m x k), b (k x n), c (m x n) or None, contiguous on one
    device; acc_params: the accumulator's parameter block for float64 (the unit's mode); chunk > 0
    (a multiple of group): promotion to the chunk accumulator (chunk_params, nearest even, float64)
    every chunk products; ref_min: the unit's floor under the reference exponent (MatrixUnit.engine_ref_min)."""
    m, k = a.shape
    n = b.shape[1]
    if m * n == 0:
        return
    acc = _params_on(acc_params, a.device)
    kernel = _module("triton_mac", a.device.type == "cpu").mac_fused
    bm, bn = _MAC_TILE
    kernel[(-(-m // bm), -(-n // bn))](a, b, c if c is not None else a, d, acc,
                                       _params_on(chunk_params, a.device) if chunk else acc, m, k, n, group,
                                       kept_bits, a_emin, b_emin, acc_emax, max(chunk, 1), ref_min, MODE=mode,
                                       HAS_C=c is not None, CHUNKED=chunk > 0, BM=bm, BN=bn, num_warps=4)
