"""The layout of the C core's stochastic draws, for the Python paths that must draw the same bits
(codebook and binary stochastic rounding, chunked passes over a larger array).

The kernels take elements WORK_UNIT (1024) at a time from index 0. Unit b of a float32 array uses the
Philox4x32-10 counters offset + b * 256 + j, j < 256 (4 words a counter, one word an element): element
i of the unit takes word i // 256 of counter i % 256. A float64 array's unit uses 512 counters (two
words an element: words 2h and 2h + 1, low half first, of counter i % 512, h = i // 512). See
csrc/lowprec.h. Stochastic rounding with rbits <= 8 draws a byte an element instead: element i of a
unit takes byte i // 256 of word (i % 256) // 64 of counter i % 64 from the unit's base (the same base
as above), as its draw's top byte. The words come from the C core (lp_philox_words);
lowprec.reference has an independent numpy Philox the tests hold this to.
"""

from __future__ import annotations

import numpy as np

from .native import ffi, lib

WORK_UNIT = int(lib.LP_WORK_UNIT)  # defined once, in csrc/lowprec.h
BYTE_DRAW_COUNTERS = int(lib.LP_BYTE_DRAW_COUNTERS)  # counters a unit uses for rbits <= 8


def counters_per_unit(dtype) -> int:
    """Philox counters one work unit of a float32 (256) or float64 (512) array uses."""
    return WORK_UNIT // 4 if np.dtype(dtype) == np.float32 else WORK_UNIT // 2


def counter_offset(start: int, dtype) -> int:
    """The counter offset at which element `start` (a multiple of WORK_UNIT) of an array draws: pass it
    to a kernel run on the elements from `start`, and they draw what a run on the whole array draws."""
    if start % WORK_UNIT:
        raise ValueError(f"start must be a multiple of {WORK_UNIT}, got {start}")
    return start // WORK_UNIT * counters_per_unit(dtype)


def words(ncounters: int, key: int, offset: int = 0) -> np.ndarray:
    """The raw stream: uint32 (4, ncounters), word w of counter offset + j at [w, j]."""
    out = np.empty((4, ncounters), np.uint32)
    if ncounters:
        lib.lp_philox_words(ffi.from_buffer("uint32_t[]", out, require_writable=True), ncounters, key, offset)
    return out


def element_random(n: int, dtype, key: int, offset: int = 0, rbits: int | None = None) -> np.ndarray:
    """The draw of each of n elements (from counter `offset`): uint32 for float32 arrays, uint64 for
    float64 ones. rbits <= 8: the byte layout (a byte an element, as the draw's top byte)."""
    per = counters_per_unit(dtype)
    units = -(-n // WORK_UNIT)
    if rbits is not None and rbits <= 8:
        return _byte_draws(n, dtype, key, offset, units, per)
    w = words(units * per, key, offset).reshape(4, units, per)
    if np.dtype(dtype) == np.float32:
        return np.ascontiguousarray(w.transpose(1, 0, 2)).reshape(-1)[:n]
    w = w.astype(np.uint64)
    both = w[0::2] | (w[1::2] << np.uint64(32))  # (2, units, 512): halves h = 0, 1
    return np.ascontiguousarray(both.transpose(1, 0, 2)).reshape(-1)[:n]


def _byte_draws(n: int, dtype, key: int, offset: int, units: int, per: int) -> np.ndarray:
    """rbits <= 8: element i of a unit takes byte i // 256 of word i % 256 of the unit's first
    BYTE_DRAW_COUNTERS counters, word-major (csrc/lowprec.h)."""
    w = words(units * per, key, offset).reshape(4, units, per)[:, :, :BYTE_DRAW_COUNTERS]
    w = np.ascontiguousarray(w.transpose(1, 0, 2)).reshape(units, 1, -1)  # (unit, 1, word j = 64 w + counter)
    shifts = np.arange(4, dtype=np.uint32)[None, :, None] * np.uint32(8)
    b = (w >> shifts) & np.uint32(0xFF)  # (unit, byte h, word j): element h * 256 + j
    width = 32 if np.dtype(dtype) == np.float32 else 64
    top = b.reshape(-1)[:n].astype(np.uint32 if width == 32 else np.uint64)
    return top << (np.uint32(24) if width == 32 else np.uint64(56))
