/* Float-scaled block quantization (NVFP4 and its kin: an element format, a float scale per block and
 * optionally a per-tensor float32 scale g), included by quantize.c after affine_impl.h per input type
 * (FT, SFX, WBITS); the rule of lowprec.array.block's float_scale_quantize, bit for bit:
 *
 *   scale = round_nearest_even(amax / (element max * g)) in the saturating scale format, at least its
 *           smallest positive value where amax > 0; a block holding NaN or Inf is NaN throughout;
 *   value = round(x / (scale * g)) in the element format, times scale * g, rounded once to FT.
 *
 * Quotients are formed in double and rounded to odd (the residual exact from fma), so one rounding
 * later is the correct rounding of the exact quotient. The deterministic modes round them to odd
 * once more at float precision and then by the float32 block routine (the Python side admits element
 * and scale formats of at most 22 significant bits, whose rounding that preserves); stochastic
 * rounding rounds the doubles by the float64 block routine, whose draws follow lp_quantize_f64's
 * layout over the n quotients from `offset`. The input is the blocked layout: n a multiple of the
 * block size, block b holding elements b * block ... (b + 1) * block - 1. */

#include <math.h>

#ifndef LP_FSCALE_COMMON
#define LP_FSCALE_COMMON
/* q (double) rounded to odd at float precision, as a float: truncated, its last bit set if inexact
 * (branch-free: the element loops vectorize) */
static inline float lp_odd32(double q)
{
    /* signed 32-bit lanes and selects: the form GCC vectorizes */
    const float near = (float)q;
    int32_t bits = (int32_t)to_bits_f32(near);
    bits = fabs((double)near) > fabs(q) ? bits - 1 : bits;
    bits = (double)from_bits_f32((uint32_t)bits) != q ? (bits | 1) : bits;
    return from_bits_f32((uint32_t)bits);
}

/* q (double, rounded to odd at its own precision) rounded to odd at float precision, for |q| in
 * float's normal range or 0 (lp_odd32_outside says where not): its 29 low significand bits dropped,
 * their OR kept in the last bit that stays, which float then holds exactly. Bit arithmetic on the
 * double's pattern: no conversion back and forth (lp_odd32's cost). */
static inline float lp_odd32_normal(double q)
{
    const int64_t bits = (int64_t)to_bits_f64(q), low = (1ll << 29) - 1;
    const int64_t sticky = (bits & low) != 0 ? (1ll << 29) : 0;
    return (float)from_bits_f64((uint64_t)((bits & ~low) | sticky));
}

/* whether q is nonzero and outside float's normal range (1 / 0) */
static inline int64_t lp_odd32_outside(double q)
{
    const int64_t e = ((int64_t)to_bits_f64(q) >> 52) & 0x7FF; /* biased exponent: 897 = 2**-126's */
    return ((e < 897) | (e > 1150)) & (q != 0);
}

/* a / b rounded to odd (b > 0 finite): affine_impl.h's rule */
static inline double lp_odd_quotient(double a, double b)
{
    double q = a / b;
    return lp_odd_fix(q, fma(-q, b, a));
}
#endif

/* Element i's quotient x / (scale * g) rounded to odd, +0 where its block is unusable (keep 0), as
 * the reference has it */
static inline double CAT(fscale_quotient_, SFX)(const FT *src, const double *sgx, const int64_t *keep, int64_t i)
{
    return from_bits_f64(to_bits_f64(lp_odd_quotient((double)src[i], sgx[i])) & (uint64_t)keep[i]);
}

/* The largest |x| of a block as a double (NaN if it holds a NaN, Inf if an Inf and no NaN): a max
 * over magnitude patterns, which order as the values do (below 2**31 / 2**63: signed order is
 * theirs, and vectorizes). */
static inline double CAT(fscale_amax_, SFX)(const FT *blk, int64_t len)
{
    if (sizeof(FT) == 4) {
        const int32_t *bits = (const int32_t *)blk;
        int32_t m = 0;
        for (int64_t i = 0; i < len; i++) {
            const int32_t a = bits[i] & 0x7FFFFFFF;
            m = a > m ? a : m;
        }
        return (double)from_bits_f32((uint32_t)m);
    }
    const int64_t *bits = (const int64_t *)blk;
    int64_t m = 0;
    for (int64_t i = 0; i < len; i++) {
        const int64_t a = bits[i] & 0x7FFFFFFFFFFFFFFFll;
        m = a > m ? a : m;
    }
    return from_bits_f64((uint64_t)m);
}

/* The largest block amax among the blocks without NaN or Inf (0 if none): the per-tensor scale's.
 * Without NaN or Inf anywhere that is the largest magnitude, a vertical max (no per-block
 * reduction) over magnitude patterns, which order as the values do. */
LP_CLONES double CAT(lp_fscale_amax_, SFX)(const FT *in, int64_t n, int64_t block)
{
    if (sizeof(FT) == 4) {
        const int32_t *bits = (const int32_t *)in;
        int32_t m = 0; /* magnitude patterns are below 2**31: signed order is theirs (and vectorizes) */
        for (int64_t i = 0; i < n; i++) {
            const int32_t a = bits[i] & 0x7FFFFFFF;
            m = a > m ? a : m;
        }
        if (m < 0x7F800000)
            return (double)from_bits_f32((uint32_t)m);
    }
    double top = 0.0;
    for (int64_t b = 0; b + block <= n; b += block) {
        double a = CAT(fscale_amax_, SFX)(in + b, block);
        top = (a == a && a != INFINITY && a > top) ? a : top;
    }
    return top;
}

/* The scales of blocks b0 .. b0 + nb - 1 (whole, in `in`): per block, bsg (the divisor scale * g;
 * 1.0 where the block is unusable, NaN where it holds NaN or Inf), bkeep (all ones where its
 * quotients are used, else 0) and bscale (the scale; NaN for NaN or Inf). Vector loops over the
 * blocks, the scale's rounding by the float32 block routine. */
static inline LP_ALWAYS_INLINE void CAT(fscale_scales_, SFX)(const FT *in, int64_t b0, int64_t nb, int64_t block,
                                                              const lp_qparams *sp, double elem_max, double g,
                                                              double smallest, double *bsg, int64_t *bkeep,
                                                              double *bscale)
{
    double amax[LP_WORK_UNIT + 2];
    float raw[LP_WORK_UNIT + 2], sc[LP_WORK_UNIT + 2];
    if (block == 16) /* NVFP4's: a constant length, each block's max one vector and a reduction */
        for (int64_t j = 0; j < nb; j++)
            amax[j] = CAT(fscale_amax_, SFX)(in + (b0 + j) * 16, 16);
    else
        for (int64_t j = 0; j < nb; j++)
            amax[j] = CAT(fscale_amax_, SFX)(in + (b0 + j) * block, block);
    const double denom = elem_max * g;
    for (int64_t j = 0; j < nb; j++) {
        const double a = amax[j];
        const int finite = a == a && a != INFINITY;
        raw[j] = lp_odd32(lp_odd_quotient(finite ? a : 0.0, denom));
    }
    block_f32(raw, sc, nb, sp, LP_NEAREST_EVEN, 0, 0);
    for (int64_t j = 0; j < nb; j++) {
        const double a = amax[j];
        const int finite = a == a && a != INFINITY;
        double scale = (double)sc[j];
        scale = (a > 0 && scale < smallest) ? smallest : scale;
        const int usable = finite && scale > 0;
        bkeep[j] = usable ? -1 : 0;
        bsg[j] = usable ? scale * g : (finite ? 1.0 : NAN);
        bscale[j] = finite ? scale : NAN;
    }
}

LP_CLONES void CAT(lp_fscale_quantize_, SFX)(const FT *in, FT *out, double *elements, double *scales, int64_t n,
                                             int64_t block,
                                   const lp_qparams *ep, const lp_qparams *sp, double elem_max, double g,
                                   double smallest, lp_rounding mode, uint64_t seed, uint64_t offset, int nthreads)
{
    const int64_t nchunks = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
    const int stochastic = mode == LP_STOCHASTIC;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nchunks; c++) {
        double quot[LP_WORK_UNIT], whole[LP_WORK_UNIT], sgx[LP_WORK_UNIT], bsg[LP_WORK_UNIT + 2],
            bscale[LP_WORK_UNIT + 2];
        int64_t keep[LP_WORK_UNIT], bkeep[LP_WORK_UNIT + 2];
        float q32[LP_WORK_UNIT], r32[LP_WORK_UNIT];
        const int64_t start = c * LP_WORK_UNIT;
        const int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        const int64_t b0 = start / block, b1 = (start + len - 1) / block;
        /* the scales of the blocks this chunk touches; each is stored by the chunk it starts in */
        CAT(fscale_scales_, SFX)(in, b0, b1 - b0 + 1, block, sp, elem_max, g, smallest, bsg, bkeep, bscale);
        if (scales)
            for (int64_t b = b0 * block >= start ? b0 : b0 + 1; b <= b1; b++)
                scales[b] = bscale[b - b0];
        for (int64_t b = b0; b <= b1; b++) { /* each element's divisor and keep mask, a block at a time */
            const int64_t lo = b * block > start ? b * block - start : 0;
            const int64_t hi = (b + 1) * block - start < len ? (b + 1) * block - start : len;
            const double sgb = bsg[b - b0];
            const int64_t kb = bkeep[b - b0];
            for (int64_t i = lo; i < hi; i++) {
                sgx[i] = sgb;
                keep[i] = kb;
            }
        }
        const FT *src = in + start;
        if (stochastic) {
            for (int64_t i = 0; i < len; i++)
                quot[i] = CAT(fscale_quotient_, SFX)(src, sgx, keep, i);
            if (ep->sub_exp < 1)
                block_deep_f64(quot, whole, len, ep, mode, seed, offset + (uint64_t)c * (LP_WORK_UNIT / 2));
            else
                block_f64(quot, whole, len, ep, mode, seed, offset + (uint64_t)c * (LP_WORK_UNIT / 2));
        } else {
            int64_t outside = 0; /* quotients beyond float's normal range (rare): lp_odd32's pass */
            for (int64_t i = 0; i < len; i++) {
                const double q = CAT(fscale_quotient_, SFX)(src, sgx, keep, i);
                q32[i] = lp_odd32_normal(q);
                outside += lp_odd32_outside(q);
            }
            for (int64_t i = 0; outside && i < len; i++) { /* the quotient again: not stored on the hot path */
                const double q = CAT(fscale_quotient_, SFX)(src, sgx, keep, i);
                if (lp_odd32_outside(q))
                    q32[i] = lp_odd32(q);
            }
            if (ep->sub_exp < 1)
                block_deep_f32(q32, r32, len, ep, mode, 0, 0);
            else
                block_f32(q32, r32, len, ep, mode, 0, 0);
            for (int64_t i = 0; i < len; i++)
                whole[i] = (double)r32[i];
        }
        if (elements)
            memcpy(elements + start, whole, (size_t)len * sizeof(double));
        if (out) /* value = element * scale * g, rounded once to FT; NaN for a block with NaN or Inf */
            for (int64_t i = 0; i < len; i++)
                out[start + i] = (FT)(whole[i] * sgx[i]);
    }
}
