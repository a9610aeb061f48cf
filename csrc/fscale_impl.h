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

/* a / b rounded to odd (b > 0 finite): affine_impl.h's rule */
static inline double lp_odd_quotient(double a, double b)
{
    double q = a / b;
    return lp_odd_fix(q, fma(-q, b, a));
}
#endif

/* The largest |x| of a block as a double (NaN if it holds a NaN, Inf if an Inf and no NaN). */
static inline double CAT(fscale_amax_, SFX)(const FT *blk, int64_t len)
{
    int64_t m = 0; /* magnitude patterns are below 2**63: signed order is theirs (and vectorizes) */
    for (int64_t i = 0; i < len; i++) {
        const int64_t a = (int64_t)(to_bits_f64((double)blk[i]) & 0x7FFFFFFFFFFFFFFFull);
        m = a > m ? a : m;
    }
    return from_bits_f64((uint64_t)m);
}

/* The largest block amax among the blocks without NaN or Inf (0 if none): the per-tensor scale's. */
double CAT(lp_fscale_amax_, SFX)(const FT *in, int64_t n, int64_t block)
{
    double top = 0.0;
    for (int64_t b = 0; b + block <= n; b += block) {
        double a = CAT(fscale_amax_, SFX)(in + b, block);
        top = (a == a && a != INFINITY && a > top) ? a : top;
    }
    return top;
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
        double quot[LP_WORK_UNIT], whole[LP_WORK_UNIT], bsg[LP_WORK_UNIT + 2];
        float q32[LP_WORK_UNIT], r32[LP_WORK_UNIT];
        unsigned char bfinite[LP_WORK_UNIT + 2], busable[LP_WORK_UNIT + 2];
        const int64_t start = c * LP_WORK_UNIT;
        const int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        const int64_t b0 = start / block, b1 = (start + len - 1) / block;
        for (int64_t b = b0; b <= b1; b++) { /* the scales of the blocks this chunk touches */
            const double amax = CAT(fscale_amax_, SFX)(in + b * block, block);
            const int finite = amax == amax && amax != INFINITY;
            float raw = lp_odd32(lp_odd_quotient(finite ? amax : 0.0, elem_max * g));
            double scale = (double)from_bits_f32(round_one_f32(to_bits_f32(raw), sp, LP_NEAREST_EVEN, 0, 0, 0));
            scale = (amax > 0 && scale < smallest) ? smallest : scale;
            bfinite[b - b0] = (unsigned char)finite;
            busable[b - b0] = (unsigned char)(finite && scale > 0);
            bsg[b - b0] = busable[b - b0] ? scale * g : 1.0;
            if (scales && b * block >= start) /* stored by the chunk the block starts in */
                scales[b] = finite ? scale : NAN;
        }
        for (int64_t s = 0; s < len;) { /* segments of one block each: the quotients */
            const int64_t b = (start + s) / block, seg_end = (b + 1) * block - start < len ? (b + 1) * block - start : len;
            const double sgb = bsg[b - b0];
            if (busable[b - b0])
                for (int64_t i = s; i < seg_end; i++)
                    quot[i] = lp_odd_quotient((double)in[start + i], sgb);
            else
                for (int64_t i = s; i < seg_end; i++)
                    quot[i] = 0.0;
            s = seg_end;
        }
        if (stochastic) {
            if (ep->sub_exp < 1)
                block_deep_f64(quot, whole, len, ep, mode, seed, offset + (uint64_t)c * (LP_WORK_UNIT / 2));
            else
                block_f64(quot, whole, len, ep, mode, seed, offset + (uint64_t)c * (LP_WORK_UNIT / 2));
        } else {
            for (int64_t i = 0; i < len; i++)
                q32[i] = lp_odd32(quot[i]);
            if (ep->sub_exp < 1)
                block_deep_f32(q32, r32, len, ep, mode, 0, 0);
            else
                block_f32(q32, r32, len, ep, mode, 0, 0);
            for (int64_t i = 0; i < len; i++)
                whole[i] = (double)r32[i];
        }
        if (elements)
            for (int64_t i = 0; i < len; i++)
                elements[start + i] = whole[i];
        if (out)
            for (int64_t s = 0; s < len;) { /* value = element * scale * g, rounded once to FT */
                const int64_t b = (start + s) / block, seg_end = (b + 1) * block - start < len ? (b + 1) * block - start : len;
                const double sgb = bsg[b - b0];
                if (bfinite[b - b0])
                    for (int64_t i = s; i < seg_end; i++)
                        out[start + i] = (FT)(whole[i] * sgb);
                else
                    for (int64_t i = s; i < seg_end; i++)
                        out[start + i] = (FT)NAN;
                s = seg_end;
            }
    }
}
