/* Integer-affine quantization, included by quantize.c after quantize_impl.h per input type (FT, SFX, ...).
 *
 * q = clamp(round(x / s) + zp, qmin, qmax), value = (q - zp) * s, each rounded once: x / s is formed in
 * double and moved to its odd neighbour toward the exact quotient when inexact (the residual comes
 * exactly from fma), which any rounding to an integer treats as the exact quotient; the integer
 * rounding is the core quantizer's block routine on those doubles (params ip: 64-bit integers, so
 * stochastic draws follow lp_quantize_f64's layout over the n quotients); the product (q - zp) * s is
 * rounded to odd likewise before its one rounding to float (float32 input) or is double's own product
 * (float64 input). NaN stays NaN. */

#include <math.h>

#ifndef LP_AFFINE_COMMON
#define LP_AFFINE_COMMON
static inline double lp_odd_fix(double q, double residual_sign)
{
    if (residual_sign == 0 || (to_bits_f64(q) & 1) || q == 0 || !isfinite(q))
        return q;
    return nextafter(q, residual_sign > 0 ? INFINITY : -INFINITY);
}
#endif

void CAT(lp_affine_, SFX)(const FT *in, FT *out, int64_t n, double scale, int64_t zp, int64_t qmin, int64_t qmax,
                          const lp_qparams *ip, lp_rounding mode, uint64_t seed, uint64_t offset, int nthreads)
{
    const int64_t nchunks = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nchunks; c++) {
        double quot[LP_WORK_UNIT], whole[LP_WORK_UNIT];
        const int64_t start = c * LP_WORK_UNIT;
        const int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        for (int64_t i = 0; i < len; i++) {
            double x = (double)in[start + i];
            x = x != x ? 0.0 : x;
            double q = x / scale;
            quot[i] = lp_odd_fix(q, fma(-q, scale, x));
        }
        block_f64(quot, whole, len, ip, mode, seed, offset + (uint64_t)c * (LP_WORK_UNIT / 2));
        for (int64_t i = 0; i < len; i++) {
            double k = whole[i];
            k = k < -4611686018427387904.0 ? -4611686018427387904.0 : (k > 4611686018427387904.0 ? 4611686018427387904.0 : k);
            int64_t qv = (int64_t)k + zp;
            qv = qv < qmin ? qmin : (qv > qmax ? qmax : qv);
            double m = (double)(qv - zp);
            double p = m * scale;
#if WBITS == 32
            p = lp_odd_fix(p, fma(m, scale, -p));
#endif
            FT x = in[start + i];
            out[start + i] = x != x ? x : (FT)p;
        }
    }
}
