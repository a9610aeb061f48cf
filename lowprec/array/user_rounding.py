"""A rounding rule of the user's, compiled by numba: ``lowprec.quantize(x, fmt, rounding=rule)`` with
rule(x, lo, hi) -> lo or hi, given each value x (float64) and its two neighbours in a float or
fixed-point format (lo: x rounded down, hi: x rounded up; the rule is not called where they agree,
x is then a value of the format or NaN). Past the largest finite value the missing neighbour is the
next step of the format's grid (max + its spacing there); a rule choosing it gets the format's
overflow (Inf, NaN or the saturated value, as its convention says). A rule returning anything else,
or one numba cannot compile, raises naming it."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..formats import FixedFormat, FloatFormat
from ..kernels import jit
from . import adapters as _arrays

_TEMPLATE = """
def apply(x, lo, hi, out):
    for i in range(x.size):
        out[i] = lo[i] if lo[i] == hi[i] or lo[i] != lo[i] else _rule(x[i], lo[i], hi[i])
"""


def _kernel(rule: Callable) -> Callable:
    """The rounding loop specialised to the rule (compiled by numba, cached on disk)."""
    return jit.specialise(_TEMPLATE, {"_rule": rule}, {"apply": {}}).apply


def _beyond(fmt: Any) -> float:
    """One grid step past the format's largest finite value."""
    if isinstance(fmt, FixedFormat):
        return float(fmt.max) + 2.0 ** -fmt.frac_bits
    top = float(fmt.max)
    return top + 2.0 ** (np.floor(np.log2(top)) - fmt.man_bits)


def quantize_user(x: Any, fmt: Any, rule: Callable, quantize: Callable, *, out: Any = None) -> Any:
    """x rounded to fmt by `rule` (see the module doc); `quantize` is lowprec.quantize."""
    name = getattr(rule, "__name__", repr(rule))
    if not isinstance(fmt, (FloatFormat, FixedFormat)):
        raise ValueError(f"rounding={name}: a rounding function applies to float and fixed-point formats; "
                         f"{fmt!r} rounds by its own kind")
    arr, restore = _arrays.to_numpy(x)
    wide = np.ascontiguousarray(arr, np.float64).reshape(-1)
    lo = np.ascontiguousarray(quantize(arr, fmt, "down"), np.float64).reshape(-1)
    hi = np.ascontiguousarray(quantize(arr, fmt, "up"), np.float64).reshape(-1)
    beyond = _beyond(fmt)  # the grid's next step past the largest value: the missing neighbour
    over_hi = np.isfinite(wide) & ~np.isfinite(hi) & (wide > 0)
    over_lo = np.isfinite(wide) & ~np.isfinite(lo) & (wide < 0)
    rule_hi, rule_lo = np.where(over_hi, beyond, hi), np.where(over_lo, -beyond, lo)
    res = np.empty_like(wide)
    try:
        _kernel(rule)(wide, rule_lo, rule_hi, res)
    except Exception as exc:  # numba's typing and lowering errors  # noqa: BLE001
        if not type(exc).__module__.startswith("numba"):
            raise
        raise ValueError(f"rounding={name}: numba cannot compile it ({str(exc).splitlines()[0]})") from None
    res = np.where(over_hi & (res == beyond), hi, np.where(over_lo & (res == -beyond), lo, res))
    bad = ~((res == lo) | (res == hi) | (np.isnan(res) & (np.isnan(lo) | np.isnan(hi))))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"rounding={name} returned {res[i]!r} for x={wide[i]!r}, not one of its neighbours "
                         f"{lo[i]!r} and {hi[i]!r} in {fmt.name or fmt!r}")
    values = res.reshape(arr.shape).astype(arr.dtype)
    target = _arrays.out_array(out, x, arr) if out is not None else None
    return _arrays.deliver(values, out, target, restore)
