"""Oracle: matrix units (tensor cores) that add a group of products and the accumulator in one fused
multi-term adder, in exact numpy arithmetic (integer-valued float64 significands).

The model (Fasi, Higham, Mikaitis and Pranesh 2021; Khattak and Mikaitis 2025; fitted to recorded
H200 outputs, ../shared/oracles/h200-mma/README.md): d = a @ b + c is computed over K in consecutive
groups of ``group`` products. For each output and group, the reference exponent is the largest of
the products' exponent sums (exponent of a plus exponent of b, before the product's significand is
normalised) and the accumulator's exponent, and at least the unit's ``ref_exp_min`` where it has one
(Khattak and Mikaitis's min_exp_limit); every product and the accumulator are truncated toward
zero to a multiple of 2**(reference - kept_bits); the truncated terms are summed exactly; the sum is
rounded to the accumulator format (``acc_rounding``) and becomes the accumulator of the next group.
The first group's accumulator is c.

Special values: operand exponents of subnormals are the format's minimum normal exponent (their
significands are not normalised); Inf and NaN operands propagate as in IEEE arithmetic (Inf - Inf
and 0 x Inf give NaN); a step's sum beyond the accumulator's largest binade is Inf (whatever the
rounding), and Inf then stays; a zero result is +0. These rules reproduce every recorded H200 output,
specials/ included (tests/test_matrix_units.py). Production code never imports this module.
"""

from __future__ import annotations

import numpy as np

from .formats import FloatFormat, as_format
from .reference import quantize_reference

__all__ = ["fused_matmul_reference"]

_NO_EXPONENT = -(1 << 20)  # the exponent of a zero term: below every real one


def _exponents(x: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """floor(log2 |x|) of each nonzero x, the format's minimum normal exponent for its subnormals
    (their significands are not normalised), _NO_EXPONENT for zeros."""
    _, e = np.frexp(x)
    e = np.maximum(e.astype(np.int64) - 1, fmt.emin)
    return np.where(x != 0, e, _NO_EXPONENT)


def fused_matmul_reference(a: np.ndarray, b: np.ndarray, c: np.ndarray, unit, a_format=None,
                           b_format=None) -> np.ndarray:
    """d = a (M x K) @ b (K x N) + c (M x N) as `unit` (a lowprec.mac.units.MatrixUnit, or any object
    with acc, group, kept_bits, acc_rounding and operands) computes it: float64 values of the
    accumulator format. a and b hold values of their formats (default: the unit's first operand
    format), c of the accumulator's. K not a multiple of the group: the last group is padded with
    zero products."""
    fa = as_format(a_format or unit.operands[0])
    fb = as_format(b_format or unit.operands[0])
    facc = as_format(unit.acc)
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    acc = np.asarray(c, np.float64).copy()
    ea, eb = _exponents(a, fa), _exponents(b, fb)
    k = a.shape[1]
    for g0 in range(0, k, unit.group):
        ks = slice(g0, min(g0 + unit.group, k))
        products = a[:, None, ks] * b.T[None, :, ks]  # exact: at most 2 x 12 significant bits
        esum = ea[:, None, ks] + eb.T[None, :, ks]
        esum = np.where(products != 0, esum, _NO_EXPONENT)
        e_acc = np.where(acc != 0, np.frexp(acc)[1].astype(np.int64) - 1, _NO_EXPONENT)
        ref = np.maximum(esum.max(axis=-1), e_acc)
        if getattr(unit, "ref_exp_min", None) is not None:  # the unit's floor under the reference
            ref = np.maximum(ref, unit.ref_exp_min)
        shift = unit.kept_bits - ref  # terms in units of 2**(ref - kept_bits)
        terms = np.trunc(np.ldexp(products, shift[..., None]))
        total = terms.sum(axis=-1) + np.trunc(np.ldexp(acc, shift))  # integers below 2**53: exact
        exact = np.ldexp(total, -shift)
        acc = quantize_reference(exact, facc, unit.acc_rounding)
        # a sum beyond the accumulator's largest binade overflows to Inf, whatever the rounding (the
        # unit normalises, then finds the exponent out of range); Inf then stays, as in IEEE sums
        acc = np.where(np.abs(exact) >= 2.0 ** (facc.emax + 1), np.copysign(np.inf, exact), acc)
        acc = acc + 0.0  # a zero result is +0: the recordings hold no -0 (c = -0 and zero products included)
    return acc
