"""Rounding modes (DESIGN.md section 3) and the seeds of stochastic rounding."""

from __future__ import annotations

import numpy as np

#: Every rounding mode, in the numbering the C core uses.
ROUNDING_MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic")
#: Modes that are symmetric under negation: q(-x) == -q(x).
SYMMETRIC_MODES = ("nearest_even", "nearest_away", "toward_zero", "odd")
DIRECTED_MODES = ("toward_zero", "up", "down")


def mode_index(rounding: str) -> int:
    """The C enum value of a rounding mode; ValueError naming the allowed ones otherwise."""
    try:
        return ROUNDING_MODES.index(rounding)
    except ValueError:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}; got {rounding!r}") from None


def check_rbits(rbits) -> int | None:
    """rbits: None (exact probability) or the number of random bits per decision, 1..64."""
    if rbits is None:
        return None
    if isinstance(rbits, bool) or not isinstance(rbits, (int, np.integer)):
        raise TypeError(f"rbits must be None or an int in [1, 64], got {rbits!r}")
    if not 1 <= rbits <= 64:
        raise ValueError(f"rbits must be None or in [1, 64], got {rbits}")
    return int(rbits)


def seed_key(seed) -> int:
    """The 64-bit Philox key for a seed: an int in [0, 2**64), a numpy Generator (one draw), or None
    (fresh entropy)."""
    if seed is None:
        return int(np.random.default_rng().integers(0, 2**64, dtype=np.uint64))
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**64, dtype=np.uint64))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be None, an int in [0, 2**64) or a numpy Generator, got {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return int(seed)
