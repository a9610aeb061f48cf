"""Lookup-table (codebook) formats: every value is one entry of a sorted table of K values, per tensor
or one table per channel. Codes are table indices.

Rounding picks an entry by the mode: "nearest_even" (ties to the even index), "nearest_away" (ties to
the entry of larger magnitude; a tie at 0 goes up), "up", "down" (the nearest entry above / below),
"stochastic" (one of the two neighbours, the upper with probability (x - lo) / (hi - lo), computed in
float64 against 32 random bits). Inputs beyond the ends take the end entries; NaN stays NaN
(``encode`` raises on NaN: no code holds it). The decision is exact: the C core compares x with
thresholds of x's dtype derived from the codebook with rational arithmetic; the values written are the
entries rounded to x's dtype.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from . import adapters as _arrays
from ..kernels.native import ffi, lib
from ..kernels.philox import counter_offset, element_random
from ..kernels.rounding import seed_key
from ..kernels.threads import get_num_threads
from .backend import choose_for_codebook
from .layout import moved

from ..formats.codebook import LUT_MODES, LogFormat, LUTFormat

__all__ = ["LUTFormat", "LUT_MODES", "quantize_lut", "encode_lut", "decode_lut"]

# -- thresholds: the exact decision rule in the input dtype ------------------------------------------------
def _first_where(guess: float, ok, dtype: np.dtype) -> Any:
    """The smallest dtype value z with ok(z), for a predicate monotone in z (False then True), starting
    the walk at guess (which must be near the answer); +inf if no finite value qualifies."""
    t = dtype.type
    up, down = t(np.inf), t(-np.inf)
    with np.errstate(over="ignore"):
        c = t(guess)
    if np.isinf(c):
        c = np.nextafter(c, down) if c > 0 else np.nextafter(c, up)
    while np.isfinite(c) and not ok(c):
        c = np.nextafter(c, up)
    while np.isfinite(np.nextafter(c, down)) and ok(np.nextafter(c, down)):
        c = np.nextafter(c, down)
    return c if ok(c) else t(np.inf)


def _smallest_at_least(v: Fraction, dtype: np.dtype, strict: bool) -> Any:
    """The smallest dtype value >= v (> v if strict)."""
    ok = (lambda z: Fraction(float(z)) > v) if strict else (lambda z: Fraction(float(z)) >= v)
    return _first_where(float(v), ok, dtype)


def _above_power(num: int, den: int, negative: bool, dtype: np.dtype) -> Any:
    """The smallest dtype value z with z > 2**(num/den) (z >= -2**(num/den) if negative): exact, by
    comparing z**den with 2**num in rationals."""
    def beyond(z) -> bool:  # |z| > 2**(num/den)
        a = abs(Fraction(float(z)))
        return a != 0 and a**den > Fraction(2) ** num

    guess = 2.0 ** (num / den)
    if negative:  # -b is irrational or the boundary itself: z >= -b  <=>  not |z| > b for z < 0
        return _first_where(-guess, lambda z: z >= 0 or not beyond(z), dtype)
    return _first_where(guess, lambda z: z > 0 and beyond(z), dtype)


def _log_threshold(fmt: LogFormat, i: int, dtype: np.dtype) -> Any:
    """The boundary between entries i and i + 1 of a LogFormat, rounding in the log domain."""
    book = fmt.codebook
    lo, hi = book[i], book[i + 1]
    k = fmt.k
    if lo == 0 or hi == 0:  # zero against the smallest magnitude: 2**((e_min - 1/2) / k)
        num, den = 2 * fmt.e_min - 1, 2 * k
        return _above_power(num, den, negative=hi == 0, dtype=dtype)
    # neighbours 2**(e/k) and 2**((e+1)/k): the geometric mean 2**((2e + 1) / 2k)
    e = int(round(np.log2(min(abs(lo), abs(hi))) * k))
    return _above_power(2 * e + 1, 2 * k, negative=hi < 0, dtype=dtype)


def thresholds(row: np.ndarray, dtype: np.dtype, rounding: str, fmt: LUTFormat | None = None) -> np.ndarray:
    """t[0..K-2] of dtype: x takes index #{j : t[j] <= x} (the rule of csrc/lut_impl.h)."""
    log = isinstance(fmt, LogFormat) and fmt.domain == "log" and rounding in ("nearest_even", "nearest_away")
    out = []
    for i in range(row.size - 1):
        if log:
            out.append(_log_threshold(fmt, i, dtype))
            continue
        lo, hi = Fraction(float(row[i])), Fraction(float(row[i + 1]))
        if rounding == "up":
            out.append(_smallest_at_least(lo, dtype, strict=True))
        elif rounding in ("down", "stochastic"):
            out.append(_smallest_at_least(hi, dtype, strict=False))
        else:
            mid = (lo + hi) / 2
            tie_up = (i + 1) % 2 == 0 if rounding == "nearest_even" else mid >= 0
            out.append(_smallest_at_least(mid, dtype, strict=not tie_up))
    return np.array(out, dtype)


@lru_cache(maxsize=256)
def _tables(fmt: LUTFormat, dtype: np.dtype, rounding: str) -> list[tuple[np.ndarray, np.ndarray]]:
    rows = fmt.codebook if fmt.per_channel else fmt.codebook[None]
    return [(thresholds(r, dtype, rounding, fmt), r.astype(dtype)) for r in rows]


_SCAN_MAX = 64  # csrc/lut_impl.h's LP_LUT_SCAN_MAX: larger float32 tables may use a bucket index
_BUCKET_MIN = 1 << 20  # elements in a call that pay for building one (about 5 ms; then cached)
_BUCKETS: dict = {}
_SR_PIECE = 1 << 18  # elements a stochastic rounding searches and steps at a time (a multiple of 1024)


def bucket_index(thr: np.ndarray) -> np.ndarray:
    """For float32 thresholds: per bucket of 2**16 consecutive order keys (the float's bits, negatives
    flipped), lo | hi << 16 | t << 32 (uint64) with lo, hi the counts of thresholds <= its smallest and
    largest value (NaN patterns stand for the infinity beside them: NaN inputs are handled apart) and t
    the bits of thr[min(lo, thr.size - 1)], the first threshold it may hold."""
    key = thr.tobytes()
    if key not in _BUCKETS:
        first = np.arange(65536, dtype=np.uint64) << np.uint64(16)
        ends = []
        for keys in (first, first | np.uint64(0xFFFF)):
            keys = keys.astype(np.uint32)
            bits = np.where(keys & np.uint32(0x80000000), keys & np.uint32(0x7FFFFFFF), ~keys)
            values = bits.view(np.float32)
            values = np.where(np.isnan(values), np.where(keys & np.uint32(0x80000000), np.inf, -np.inf), values)
            ends.append(np.searchsorted(thr, values.astype(np.float32), side="right").astype(np.uint64))
        t = np.ascontiguousarray(thr, np.float32).view(np.uint32)[np.minimum(ends[0], thr.size - 1)].astype(np.uint64)
        _BUCKETS[key] = np.ascontiguousarray(ends[0] | (ends[1] << np.uint64(16)) | (t << np.uint64(32)))
        if len(_BUCKETS) > 64:  # a bounded cache (512 KiB each)
            _BUCKETS.pop(next(iter(_BUCKETS)))
    return _BUCKETS[key]


def _index_for(thr: np.ndarray, dtype: np.dtype, size: int, scan_max: int = _SCAN_MAX) -> np.ndarray | None:
    """The bucket index a search of `size` elements of dtype uses, or None (it scans or searches): float32
    tables past scan_max thresholds, where the call pays for building one or it is built already (small
    per-channel rows would each build one: they search)."""
    if dtype == np.float32 and thr.size > scan_max and (size >= _BUCKET_MIN or thr.tobytes() in _BUCKETS):
        return bucket_index(thr)
    return None


def _run(x: np.ndarray, thr: np.ndarray, table: np.ndarray, want_values: bool, want_codes: bool,
         values: np.ndarray | None = None, codes: np.ndarray | None = None, index: Any = "auto"):
    """(values, codes) of contiguous x by the C search; `values` and `codes` (contiguous, x's shape), where
    given, receive them. index: _index_for's answer for the array x is a piece of ("auto": for x)."""
    ctype = "float[]" if x.dtype == np.float32 else "double[]"
    if want_values and values is None:
        values = np.empty_like(x)
    if want_codes and codes is None:
        codes = np.empty(x.shape, np.uint16)
    if x.size:
        io = (ffi.from_buffer(ctype, values, require_writable=True) if want_values else ffi.NULL,
              ffi.from_buffer("uint16_t[]", codes, require_writable=True) if want_codes else ffi.NULL, get_num_threads())
        if isinstance(index, str):
            index = _index_for(thr, x.dtype, x.size)
        if index is not None:
            lib.lp_lut_bucket_f32(ffi.from_buffer(ctype, x), x.size, ffi.from_buffer(ctype, thr), thr.size,
                                  ffi.from_buffer("uint64_t[]", index), ffi.from_buffer(ctype, table), *io)
        else:
            fn = lib.lp_lut_f32 if x.dtype == np.float32 else lib.lp_lut_f64
            fn(ffi.from_buffer(ctype, x), x.size, ffi.from_buffer(ctype, thr), thr.size, ffi.from_buffer(ctype, table),
               *io)
    return values, codes


@lru_cache(maxsize=64)
def _stacked(fmt: LUTFormat, dtype: np.dtype, rounding: str) -> tuple[np.ndarray, np.ndarray]:
    """Every channel's thresholds and table, one row a channel (C-contiguous): lp_lut_rows_'s input."""
    tables = _tables(fmt, dtype, rounding)
    return (np.ascontiguousarray(np.stack([t for t, _ in tables]), dtype),
            np.ascontiguousarray(np.stack([v for _, v in tables]), dtype))


def _run_rows(rows: np.ndarray, fmt: LUTFormat, rounding: str, values: np.ndarray | None,
              codes: np.ndarray | None) -> None:
    """_run for every channel's row (rows: C-contiguous (channels, n), a channel's codebook a row) in
    one C call, into values and codes (rows' shape, where given)."""
    if not rows.size:
        return
    thr, table = _stacked(fmt, rows.dtype, rounding)
    ctype, sfx = ("float[]", "f32") if rows.dtype == np.float32 else ("double[]", "f64")
    getattr(lib, f"lp_lut_rows_{sfx}")(
        ffi.from_buffer(ctype, rows), rows.shape[0], rows.shape[1], ffi.from_buffer(ctype, thr), thr.shape[1],
        ffi.from_buffer(ctype, table), ffi.from_buffer(ctype, values, require_writable=True) if values is not None
        else ffi.NULL, ffi.from_buffer("uint16_t[]", codes, require_writable=True) if codes is not None else ffi.NULL,
        get_num_threads())


def _check_mode(rounding: str) -> None:
    if rounding not in LUT_MODES:
        raise ValueError(f"rounding for a LUTFormat must be one of {', '.join(LUT_MODES)}; got {rounding!r}")


def _channel_axis(shape: tuple, fmt: LUTFormat) -> int:
    """The (nonnegative) channel axis of an array of `shape` for a per-channel codebook, checked."""
    if len(shape) == 0:
        raise ValueError("a per-channel codebook needs an array with a channel axis (x is 0-d)")
    if not -len(shape) <= fmt.axis < len(shape):
        raise ValueError(f"axis {fmt.axis} is out of range for a {len(shape)}-d array")
    ax = fmt.axis % len(shape)
    if shape[ax] != fmt.codebook.shape[0]:
        raise ValueError(f"x has {shape[ax]} channels along axis {fmt.axis}; the codebook has "
                         f"{fmt.codebook.shape[0]} rows")
    return ax


def _channels(arr: np.ndarray, fmt: LUTFormat) -> tuple[np.ndarray, int]:
    """arr with the channel axis first (C-contiguous), and that axis (or -1 per tensor)."""
    if not fmt.per_channel:
        return np.ascontiguousarray(arr).reshape(1, -1), -1
    ax = _channel_axis(arr.shape, fmt)
    return moved(arr, ax, 0).reshape(arr.shape[ax], -1), ax


_BLOCK = 1 << 18  # elements of a per-channel array moved channel-major at a time (deterministic modes)


def _blocked_round(arr: np.ndarray, fmt: LUTFormat, rounding: str, want_values: bool,
                   want_codes: bool) -> tuple[np.ndarray | None, np.ndarray | None] | None:
    """lut_round of per-channel codebooks in a deterministic mode where channels are not the outermost
    axis: blocks of the axes before the channel axis moved channel-major one at a time (a transpose in
    cache instead of two of the whole array; no draws tie the result to the whole array's layout).
    None where the channel axis is outermost (its rows are contiguous as they are)."""
    ax = _channel_axis(arr.shape, fmt)
    outer, channels = math.prod(arr.shape[:ax]), arr.shape[ax]
    if outer == 1 or not arr.size:
        return None
    a3 = np.ascontiguousarray(arr).reshape(outer, channels, -1)
    vals = np.empty(a3.shape, arr.dtype) if want_values else None
    codes = np.empty(a3.shape, np.uint16) if want_codes else None
    step = max(1, _BLOCK // (channels * a3.shape[2]))
    for o in range(0, outer, step):
        rows = np.ascontiguousarray(a3[o:o + step].transpose(1, 0, 2)).reshape(channels, -1)
        v = np.empty_like(rows) if want_values else None
        k = np.empty(rows.shape, np.uint16) if want_codes else None
        _run_rows(rows, fmt, rounding, v, k)
        if want_values:  # back to the array's layout: one transpose of the block, in cache
            vals[o:o + step] = v.reshape(channels, -1, a3.shape[2]).transpose(1, 0, 2)
        if want_codes:
            codes[o:o + step] = k.reshape(channels, -1, a3.shape[2]).transpose(1, 0, 2)
    return (vals.reshape(arr.shape) if want_values else None,
            codes.astype(fmt.code_dtype).reshape(arr.shape) if want_codes else None)


def lut_round(arr: np.ndarray, fmt: LUTFormat, rounding: str, seed: Any, want_values: bool,
              want_codes: bool, start: int = 0) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(values, codes) of a float32/float64 array; the channel layout is undone. start (per-tensor
    codebooks): arr is the elements from `start` (a multiple of 1024) of a larger array."""
    _check_mode(rounding)
    if fmt.per_channel and rounding != "stochastic":
        blocked = _blocked_round(arr, fmt, rounding, want_values, want_codes)
        if blocked is not None:
            return blocked
    rows, ax = _channels(arr, fmt)
    tables = _tables(fmt, arr.dtype, rounding)
    sr = rounding == "stochastic"
    vals = np.empty_like(rows) if want_values else None
    codes = np.empty(rows.shape, np.uint16) if (want_codes or sr) else None
    if fmt.per_channel:  # every channel in one call
        _run_rows(rows, fmt, rounding, vals if want_values and not sr else None, codes)
    else:
        _run(rows[0], tables[0][0], tables[0][1], want_values and not sr, want_codes or sr,
             values=vals[0] if want_values and not sr else None, codes=codes[0] if codes is not None else None)
    if sr and not fmt.per_channel:  # the C kernel: codes in place, values straight from the table
        _stochastic_step_c(rows[0], codes[0], fmt, tables[0][1], vals[0] if want_values else None, seed, start)
    elif sr and rows.size and fmt.codebook.size <= 65536:  # every channel's step in one C call
        codes = _stochastic_step_rows_c(rows, codes, fmt, tables, vals if want_values else None, seed, start)
    elif sr:
        codes = _stochastic_step(rows, codes, fmt, seed, start)
        if want_values:
            for c, (_, table) in enumerate(tables):
                vals[c] = np.where(np.isnan(rows[c]), rows[c], table[codes[c]])

    def back(a):
        if a is None:
            return None
        if ax < 0:
            return a.reshape(arr.shape)
        return moved(a.reshape((arr.shape[ax],) + tuple(np.delete(arr.shape, ax))), 0, ax)

    return back(vals), back(codes.astype(fmt.code_dtype) if want_codes else None)


def _stochastic_step(rows: np.ndarray, down: np.ndarray, fmt: LUTFormat, seed: Any, start: int = 0) -> np.ndarray:
    """From the 'down' index, move up with probability (x - lo) / (hi - lo) (float64, 32 random bits
    per element, Philox draws laid out as lowprec.quantize lays them out over float32 input)."""
    key = seed_key(seed)
    cb = fmt.codebook if fmt.per_channel else fmt.codebook[None]
    k = down.astype(np.int64)
    top = cb.shape[1] - 1
    lo = np.take_along_axis(cb, k, axis=1)
    hi = np.take_along_axis(cb, np.minimum(k + 1, top), axis=1)
    x = rows.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(k < top, (x - lo) / np.where(k < top, hi - lo, 1.0), 0.0)
    r = element_random(rows.size, np.float32, key, counter_offset(start, np.float32)).reshape(rows.shape).astype(np.float64)
    up = (r < p * 2.0**32) & (k < top) & (x > lo)
    return (k + up).astype(np.uint16)


def _step_book(fmt: LUTFormat) -> tuple[np.ndarray, np.ndarray]:
    """The C step's codebook (float64) and gaps hi - lo as the rule rounds them (the top entry has none)."""
    cb = np.ascontiguousarray(fmt.codebook, np.float64)
    return cb, np.append(np.diff(cb), 1.0)


def _stochastic_step_c(x: np.ndarray, codes: np.ndarray, fmt: LUTFormat, table: np.ndarray,
                       values: np.ndarray | None, seed: Any, start: int = 0, book: tuple | None = None) -> None:
    """_stochastic_step for a per-tensor codebook by the C kernel (csrc/lut_impl.h), the same draws:
    x contiguous 1-D, codes (uint16, the 'down' indices) updated in place, values (x's shape and dtype,
    or None) receive the entries."""
    if not x.size:
        return
    sfx, ctype = ("f32", "float[]") if x.dtype == np.float32 else ("f64", "double[]")
    cb, gaps = book if book is not None else _step_book(fmt)
    getattr(lib, f"lp_lut_sr_{sfx}")(
        ffi.from_buffer(ctype, x), x.size, ffi.from_buffer("uint16_t[]", codes, require_writable=True),
        ffi.from_buffer("double[]", cb), ffi.from_buffer("double[]", gaps), cb.size, ffi.from_buffer(ctype, table),
        ffi.from_buffer(ctype, values, require_writable=True) if values is not None else ffi.NULL,
        seed_key(seed), counter_offset(start, np.float32), get_num_threads())


FUSED_SR = True  # stochastic rounding searched and stepped in one pass where the C build allows (tests turn it off)


def _sr_fused(flat: np.ndarray, into: np.ndarray, fmt: LUTFormat, thr: np.ndarray, table: np.ndarray,
              seed: Any) -> bool:
    """Stochastic rounding of float32 `flat` to a per-tensor codebook by the fused C kernel
    (lp_lut_sr_fused_f32: the search and _stochastic_step_c's step in one pass, the same draws) into
    `into` (flat's size, not overlapping it): tables of at most 16 entries in registers, larger ones
    through their bucket index where the call pays for one (as _index_for decides, scans included).
    False where it does not apply (or the machine or the build lacks AVX-512): the caller takes the
    two-pass path."""
    k = fmt.codebook.shape[-1]
    if not FUSED_SR or flat.dtype != np.float32 or not flat.size or k > 65536:
        return False
    buckets = _index_for(thr, flat.dtype, flat.size, scan_max=15) if k > 16 else None
    if k > 16 and buckets is None:
        return False
    cb, gaps = _step_book(fmt)
    with np.errstate(divide="ignore", over="ignore"):  # NaN where a gap is outside [2**-1000, 2**1000]: it divides
        inv = np.where((gaps >= 2.0**-1000) & (gaps <= 2.0**1000), 1.0 / gaps, np.nan)
    done = lib.lp_lut_sr_fused_f32(
        ffi.from_buffer("float[]", flat), flat.size, ffi.from_buffer("float[]", thr),
        ffi.from_buffer("uint64_t[]", buckets) if buckets is not None else ffi.NULL,
        ffi.from_buffer("double[]", cb), ffi.from_buffer("double[]", gaps), ffi.from_buffer("double[]", inv), k,
        ffi.from_buffer("float[]", table), ffi.from_buffer("float[]", into, require_writable=True),
        seed_key(seed), counter_offset(0, np.float32), get_num_threads())
    return bool(done)


def _stochastic_step_rows_c(rows: np.ndarray, codes: np.ndarray, fmt: LUTFormat, tables: list, values: np.ndarray | None,
                            seed: Any, start: int = 0) -> np.ndarray:
    """_stochastic_step of per-channel codebooks by one call of the C step: the channels' codebooks one
    after another (channel c's entry k is entry c K + k of one table), each channel's top entry given a
    NaN gap so that no element steps up into the next channel's first entry; rows (channel-major,
    C-contiguous) draw as _stochastic_step's do. values (rows' shape, or None) receive the entries;
    returns the chosen codes (uint16, channel by channel)."""
    channels, k = fmt.codebook.shape
    book = np.ascontiguousarray(fmt.codebook, np.float64)
    gaps = np.concatenate([np.diff(book, axis=1), np.full((channels, 1), np.nan)], axis=1)
    first = (np.arange(channels, dtype=np.uint16) * np.uint16(k))[:, None]  # fits: channels * K <= 65536
    glob = np.add(codes, first, dtype=np.uint16)
    table = np.concatenate([t for _, t in tables]).astype(rows.dtype)
    out = values.reshape(-1) if values is not None else None
    _stochastic_step_c(np.ascontiguousarray(rows).reshape(-1), glob.reshape(-1), fmt, table, out, seed, start,
                       (book.reshape(-1), gaps.reshape(-1)))
    glob -= first
    return glob


# -- array API ----------------------------------------------------------------------------------------
def quantize_lut(x: Any, fmt: LUTFormat, rounding: str, seed: Any, out: Any, backend: str | None = None) -> Any:
    """lowprec.quantize for a LUTFormat (tensors on a GPU: the Triton kernel, lowprec.array.backend)."""
    if choose_for_codebook(backend, x, fmt) == "triton":
        _check_mode(rounding)
        if fmt.per_channel:
            _channel_axis(tuple(x.shape), fmt)
        from .device import quantize_lut_triton  # imports torch: only for tensors

        return quantize_lut_triton(x, fmt, rounding, seed, lambda dtype: _tables(fmt, dtype, rounding), out=out)
    arr, restore = _arrays.to_numpy(x)
    target = _arrays.out_array(out, x, arr) if out is not None else None
    _check_mode(rounding)
    if not fmt.per_channel:  # one search (and a stochastic step), straight into the result
        src = np.ascontiguousarray(arr)
        direct = target is not None and target.flags.c_contiguous and not np.may_share_memory(target, src)
        thr, table = _tables(fmt, arr.dtype, rounding)[0]
        into = target.reshape(-1) if direct else None
        if rounding == "stochastic":
            flat = src.reshape(-1)
            values = into if direct else np.empty(src.size, src.dtype)
            if not _sr_fused(flat, values, fmt, thr, table, seed):  # else: the search and the step in pieces
                codes = np.empty(min(flat.size, _SR_PIECE), np.uint16)  # (their codes stay in cache)
                index, book = _index_for(thr, flat.dtype, flat.size), _step_book(fmt)  # once, not per piece
                for s in range(0, flat.size, _SR_PIECE):
                    piece, k = flat[s:s + _SR_PIECE], codes[:flat.size - s]
                    _run(piece, thr, table, False, True, codes=k, index=index)
                    _stochastic_step_c(piece, k, fmt, table, values[s:s + _SR_PIECE], seed, s, book)
        else:
            values, _ = _run(src.reshape(-1), thr, table, True, False, values=into)
        if direct:
            return out
        values = values.reshape(arr.shape)
    else:
        values, _ = lut_round(arr, fmt, rounding, seed, True, False)
    return _arrays.deliver(values, out, target, restore)


def encode_lut(x: Any, fmt: LUTFormat, rounding: str = "nearest_even", *, seed: Any = None) -> Any:
    if fmt.per_channel:
        arr = _arrays.without_nan(x, fmt)
        return _arrays.codes_like(lut_round(arr, fmt, rounding, seed, False, True)[1], x)
    arr, _ = _arrays.to_numpy(x)
    _check_mode(rounding)
    key = seed_key(seed) if rounding == "stochastic" else 0
    codes = np.empty(arr.shape, fmt.code_dtype)
    flat = codes.reshape(-1)
    for start, stop, chunk in _arrays.flat_chunks(arr):  # bounded scratch: the codes are the one full array
        if np.isnan(chunk).any():
            raise ValueError(f"x holds NaN, which no code of {fmt!r} represents")
        flat[start:stop] = lut_round(chunk, fmt, rounding, key, False, True, start)[1]
    return _arrays.codes_like(codes, x)


def decode_lut(codes: Any, fmt: LUTFormat) -> Any:
    c, tensor = _arrays.read_codes(codes)
    if tensor and c.dtype == np.int16:
        c = c.view(np.uint16)
    if c.size and (c.min() < 0 or c.max() >= fmt.entries):
        raise ValueError(f"codes must be in [0, {fmt.entries}) for {fmt!r}; got values in [{c.min()}, {c.max()}]")
    if fmt.per_channel:
        ax = _channel_axis(c.shape, fmt)
        rows = np.moveaxis(c, ax, 0).reshape(c.shape[ax], -1).astype(np.intp)
        vals = np.take_along_axis(fmt.codebook, rows, axis=1)
        moved_shape = (c.shape[ax],) + tuple(np.delete(c.shape, ax))
        values = np.ascontiguousarray(np.moveaxis(vals.reshape(moved_shape), 0, ax))
    else:
        values = np.empty(c.shape, fmt.codebook.dtype)
        flat = values.reshape(-1)
        for start, stop, chunk in _arrays.flat_chunks(c):  # bounded scratch
            flat[start:stop] = fmt.codebook[chunk.astype(np.intp)]
    if tensor:
        import torch

        return torch.from_numpy(values)
    return values
