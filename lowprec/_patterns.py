"""How specifically a spec key (an exact name or an fnmatch pattern) matches a qualified module name:
the rule every spec shares (swap, emulate, profile)."""

from __future__ import annotations

import fnmatch


def specificity(key: str, qualified: str) -> tuple[int, int] | None:
    """How specifically a key matches a module name: exact name (2, len), pattern (1, literals)."""
    if key == qualified:
        return (2, len(key))
    if any(ch in key for ch in "*?[") and fnmatch.fnmatchcase(qualified, key):
        return (1, sum(ch not in "*?[]" for ch in key))
    return None
