"""A hand-written saturating FP8 E4M3 quantizer, as a user might write one, with switchable classic
bugs: the subject of lowprec.testing's tests and of the README's guide."""

import numpy as np

BUGS = ("ties_away", "truncate", "no_subnormals", "wrong_max", "overflow_inf", "lose_neg_zero", "double_rounding")


def fp8_e4m3_saturating(x, bug=None):
    """Round to OCP E4M3 (bias 7, max 448, subnormals down to 2**-9), saturating at +-448."""
    x = np.asarray(x)
    v = x.astype(np.float32) if bug == "double_rounding" else x  # the bug: round via float32 first
    v = v.astype(np.float64)
    a = np.abs(v)
    safe = np.where((a > 0) & np.isfinite(a), a, 1.0)
    e = np.floor(np.log2(safe))
    if bug != "no_subnormals":
        e = np.maximum(e, -6)  # below 2**-6 the spacing stays 2**-9
    spacing = 2.0 ** (e - 3)
    s = a / spacing
    if bug == "ties_away":
        r = np.floor(s + 0.5)
    elif bug == "truncate":
        r = np.floor(s)
    else:
        r = np.rint(s)  # round half to even
    q = r * spacing
    if bug == "no_subnormals":
        q = np.where(a < 2.0**-6, 0.0, q)
    q = np.where(np.isinf(a), np.inf, q)  # Inf saturates below, like any overflow
    top = 480.0 if bug == "wrong_max" else 448.0
    q = np.where(q > top, np.inf if bug == "overflow_inf" else top, q)
    q = np.where(np.isnan(a), np.nan, q)
    q = np.where(v < 0, -q, q) if bug == "lose_neg_zero" else np.copysign(q, v)
    return q.astype(x.dtype)
