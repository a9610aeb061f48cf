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
 * and scale formats of at most 22 significant bits, whose rounding that preserves), or, given the
 * element rounding as steps (lp_fscale_steps), compare |x| with thresholds times scale * g; stochastic
 * rounding rounds the doubles as the float64 block routine does, whose draws follow lp_quantize_f64's
 * layout over the n quotients from `offset` (by steps, lp_sr_steps, where they describe it; for float32
 * values alone, the same rule in one AVX-512 pass, fscale_sr_unit_avx512). The
 * input is the blocked layout: n a multiple of the block size, block b holding elements b * block ...
 * (b + 1) * block - 1. */

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

/* Stochastic rounding of a work unit's quotients to an element format of few magnitudes (steps,
 * mode LP_STOCHASTIC: code[0] = 0 < ... < code[n], n = steps, a float grid whose gap above code[j] is
 * the format's quantum there, a power of two; saturating above code[n]), as the core quantizer rounds
 * them with 64 random bits: |q| in [code[j], code[j + 1]) goes up by lp_sr_pick on p = (|q| - code[j])
 * / gap (exact: Sterbenz, a power of two); a zero result keeps q's sign where neg_zero. up[j] and
 * inv[j]: code[j + 1] and 1 / gap, code[n] and 0 for j = n. The draws: lp_sr_integers' layout (w). */
static inline LP_ALWAYS_INLINE void lp_sr_steps(const double *quot, double *whole, int64_t len, const uint32_t *w,
                                                const double *code, const double *up, const double *inv,
                                                const int steps, const int64_t neg_zero)
{
    const int64_t C = LP_WORK_UNIT / 2;
    double cl[16], ul[16], il[16]; /* local copies: the stores to whole cannot alias them (it vectorizes) */
    memcpy(cl, code, sizeof cl);
    memcpy(ul, up, sizeof ul);
    memcpy(il, inv, sizeof il);
    for (int64_t h = 0; h < 2; h++) {
        const uint32_t *lo = w + 2 * h * C, *hi = w + (2 * h + 1) * C;
        const int64_t m = len - h * C < C ? len - h * C : C;
        LP_KEEP_LOOP
        for (int64_t j = 0; j < m; j++) {
            const double q = quot[h * C + j], a = fabs(q);
            double low = 0.0, high = ul[0], ig = il[0];
            LP_UNROLL_ALL
            for (int s = 1; s <= steps; s++) { /* selects on the comparison itself: 0/1 ints stop GCC */
                low = a >= cl[s] ? cl[s] : low;
                high = a >= cl[s] ? ul[s] : high;
                ig = a >= cl[s] ? il[s] : ig;
            }
            const double r = lp_sr_pick((a - low) * ig, lo[j], hi[j], low, high);
            const int64_t sign = (int64_t)(to_bits_f64(q) & 0x8000000000000000ull);
            const int64_t keep = (r != 0.0) | neg_zero ? sign : 0;
            whole[h * C + j] = from_bits_f64(to_bits_f64(r) | (uint64_t)keep);
        }
    }
}

/* a / b rounded to odd (b > 0 finite): affine_impl.h's rule */
static inline double lp_odd_quotient(double a, double b)
{
    double q = a / b;
    return lp_odd_fix(q, fma(-q, b, a));
}
#endif

#if WBITS == 32 && defined(LP_SR_AVX512) && !defined(LP_FSCALE_SR_AVX512)
#define LP_FSCALE_SR_AVX512
/* Stochastic rounding of float32 float-scaled blocks (lp_sr_steps' rule, 64 random bits) fused into
 * one AVX-512 pass over a work unit, 8 lanes of double a step, nothing stored between the steps: the
 * quotient |x| / sg rounded to odd (lp_odd_quotient_avx512: no division where lp_sr_divisor_ok(sg),
 * which sg = scale * g with a float32 g always is), the grid step by a binary search of permutes over
 * code16 (padded with +Inf), its bounds and 1 / gap * 2**64 (inv64) by permutes, the draw's decision
 * by lp_sr_up_avx512. An unusable block (bkeep 0) is (float)(0 * sg) throughout: +0, or NaN for one
 * holding NaN or Inf. Blocks of a multiple of 8 elements (vectors never straddle two). */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static inline LP_ALWAYS_INLINE void
fscale_sr_run_avx512(const float *x, float *y, int64_t lo, int64_t hi, double sg, const uint32_t *w,
                     const __m512d *C, const __m512d *U, const __m512d *I, int levels, int neg_zero, int divide)
{
    const int64_t half = LP_WORK_UNIT / 2;
    const __m512d vsg = _mm512_set1_pd(sg), vinv = _mm512_set1_pd(1.0 / sg), zero = _mm512_setzero_pd();
    const __m512i sign = _mm512_set1_epi64((int64_t)0x8000000000000000ull);
    for (int64_t i = lo; i < hi; i += 8) {
        __builtin_prefetch(x + i + 1024, 0, 3); /* the next page: hardware prefetchers stop at 4 KiB */
        __builtin_prefetch(y + i + 1024, 1, 3);
        const __m512i xd = _mm512_castpd_si512(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
        const __m512i xs = _mm512_and_si512(xd, sign);
        const __m512d a = lp_odd_quotient_avx512(_mm512_castsi512_pd(_mm512_andnot_si512(sign, xd)), vsg, vinv,
                                                 divide);
        /* tables of up to 8 entries (levels <= 3, a constant where it matters): one-source permutes,
           which leave their table registers alone (no copies) */
#define LP_LOOKUP(T, idx) (levels <= 3 ? _mm512_permutexvar_pd(idx, T[0]) : _mm512_permutex2var_pd(T[0], idx, T[1]))
        __m512i k = _mm512_setzero_si512();
        for (int l = levels - 1; l >= 0; l--) {
            const __m512i bit = _mm512_set1_epi64(1ll << l), kb = _mm512_or_si512(k, bit);
            k = _mm512_mask_or_epi64(k, _mm512_cmp_pd_mask(LP_LOOKUP(C, kb), a, _CMP_LE_OQ), k, bit);
        }
        const __m512d low = LP_LOOKUP(C, k), high = LP_LOOKUP(U, k);
        const __m512d p64 = _mm512_mul_pd(_mm512_sub_pd(a, low), LP_LOOKUP(I, k)); /* exact */
#undef LP_LOOKUP
        const uint32_t *wl = w + (i < half ? i : half + i); /* lp_sr_integers' layout: words 2h and 2h + 1 */
        const __m512d r = _mm512_mask_blend_pd(lp_sr_up_avx512(p64, wl, wl + half, 0xFF), low, high);
        __m512i rb = _mm512_castpd_si512(r);
        rb = neg_zero ? _mm512_or_si512(rb, xs)
                      : _mm512_mask_or_epi64(rb, _mm512_cmp_pd_mask(r, zero, _CMP_NEQ_OQ), rb, xs);
        _mm256_storeu_ps(y + i, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_castsi512_pd(rb), vsg)));
    }
}

/* A work unit [start, start + len) of lp_fscale_quantize_f32's stochastic steps path, blocks b0 ...
 * (chunk-relative divisors bsg and masks bkeep), by fscale_sr_run_avx512; w: its Philox block. */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static void fscale_sr_unit_avx512(
    const float *x, float *y, int64_t start, int64_t len, int64_t b0, int64_t block, const double *bsg,
    const int64_t *bkeep, const uint32_t *w, const double *code16, const double *up16, const double *inv16,
    int levels, int neg_zero)
{
    const __m512d C[2] = {_mm512_loadu_pd(code16), _mm512_loadu_pd(code16 + 8)};
    const __m512d U[2] = {_mm512_loadu_pd(up16), _mm512_loadu_pd(up16 + 8)};
    const __m512d I[2] = {_mm512_loadu_pd(inv16), _mm512_loadu_pd(inv16 + 8)};
    for (int64_t b = 0, lo = 0; lo < len; b++) {
        int64_t hi = (b0 + b + 1) * block - start;
        hi = hi < len ? hi : len;
        const double sg = bsg[b];
        if (!bkeep[b]) {
            const float v = (float)(0.0 * sg);
            for (int64_t i = lo; i < hi; i++)
                y[i] = v;
        } else if (!lp_sr_divisor_ok(sg)) {
            fscale_sr_run_avx512(x, y, lo, hi, sg, w, C, U, I, levels, neg_zero, 1);
        } else if (neg_zero && levels == 3) { /* NVFP4's: the search unrolled */
            fscale_sr_run_avx512(x, y, lo, hi, sg, w, C, U, I, 3, 1, 0);
        } else {
            fscale_sr_run_avx512(x, y, lo, hi, sg, w, C, U, I, levels, neg_zero, 0);
        }
        lo = hi;
    }
}
#endif

/* Element i's quotient x / (scale * g) rounded to odd, +0 where its block is unusable (keep 0), as
 * the reference has it */
static inline double CAT(fscale_quotient_, SFX)(const FT *src, const double *sgx, const int64_t *keep, int64_t i)
{
    return from_bits_f64(to_bits_f64(lp_odd_quotient((double)src[i], sgx[i])) & (uint64_t)keep[i]);
}

/* The input's patterns as signed integers of its width: magnitude patterns (below 2**31 / 2**63) order
 * as the values do, in signed order (which vectorizes). */
#if WBITS == 32
#define FS_SI int32_t
#define FS_UT uint32_t
#define FS_ABS INT32_MAX
#define FS_MIN INT32_MIN
#define FS_INF 0x7F800000
#else
#define FS_SI int64_t
#define FS_UT uint64_t
#define FS_ABS INT64_MAX
#define FS_MIN INT64_MIN
#define FS_INF 0x7FF0000000000000ll
#endif

/* The largest |x| of a block as a double (NaN if it holds a NaN, Inf if an Inf and no NaN) */
static inline double CAT(fscale_amax_, SFX)(const FT *blk, int64_t len)
{
    const FS_SI *bits = (const FS_SI *)blk;
    FS_SI m = 0;
    for (int64_t i = 0; i < len; i++) {
        const FS_SI a = bits[i] & FS_ABS;
        m = a > m ? a : m;
    }
    return (double)CAT(from_bits_, SFX)((FS_UT)m);
}

/* fscale_amax_ of nb (at most LP_WORK_UNIT / 16 + 2) whole blocks of 16 at blk: adjacent pairs
 * reduced in four halving passes over all the blocks at once (contiguous pairs: the loops vectorize,
 * where one reduction per block would not). */
#define LP_PAIR_MAX(dst, src, count)                                                     \
    for (int64_t i = 0; i < (count); i++)                                                \
        dst[i] = src[2 * i] > src[2 * i + 1] ? src[2 * i] : src[2 * i + 1];
static inline void CAT(fscale_amax16_, SFX)(const FT *blk, int64_t nb, double *amax)
{
    const FS_SI *bits = (const FS_SI *)blk;
    FS_SI h8[LP_WORK_UNIT / 2 + 16], h4[LP_WORK_UNIT / 4 + 8], h2[LP_WORK_UNIT / 8 + 4], h1[LP_WORK_UNIT / 16 + 2];
    for (int64_t i = 0; i < nb * 8; i++) {
        const FS_SI a = bits[2 * i] & FS_ABS, b = bits[2 * i + 1] & FS_ABS;
        h8[i] = a > b ? a : b;
    }
    LP_PAIR_MAX(h4, h8, nb * 4)
    LP_PAIR_MAX(h2, h4, nb * 2)
    LP_PAIR_MAX(h1, h2, nb)
    for (int64_t b = 0; b < nb; b++)
        amax[b] = (double)CAT(from_bits_, SFX)((FS_UT)h1[b]);
}
#undef LP_PAIR_MAX

/* The largest block amax among the blocks without NaN or Inf (0 if none): the per-tensor scale's.
 * Without NaN or Inf anywhere that is the largest magnitude, a vertical max (no per-block
 * reduction); else block by block. */
LP_CLONES double CAT(lp_fscale_amax_, SFX)(const FT *in, int64_t n, int64_t block)
{
    const FS_SI *bits = (const FS_SI *)in;
    FS_SI m = 0;
    for (int64_t i = 0; i < n; i++) {
        const FS_SI a = bits[i] & FS_ABS;
        m = a > m ? a : m;
    }
    if (m < FS_INF)
        return (double)CAT(from_bits_, SFX)((FS_UT)m);
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
    if (block == 16) /* NVFP4's */
        CAT(fscale_amax16_, SFX)(in + b0 * 16, nb, amax);
    else
        for (int64_t j = 0; j < nb; j++)
            amax[j] = CAT(fscale_amax_, SFX)(in + (b0 + j) * block, block);
    const double denom = elem_max * g;
    for (int64_t j = 0; j < nb; j++) {
        const double a = amax[j];
        const int finite = a == a && a != INFINITY;
        raw[j] = lp_odd32(lp_odd_quotient(finite ? a : 0.0, denom));
    }
    block_f32(raw, sc, nb, sp, LP_NEAREST_EVEN, 0, 0, 0);
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

/* -- deterministic modes as steps: |x| against threshold * scale * g, no division ------------------- */
#define LP_FSCALE_NB (LP_WORK_UNIT / 8 + 2) /* the blocks a chunk touches, blocks of at least 8 */

/* The smallest magnitude pattern v of FT with |x| >= v exactly where the quotient |x| / sg >= t (excl:
 * > t), for a usable block: t * sg is exact in double (rounding_steps admits thresholds of at most 24
 * bits; sg has at most 28), "> d" is ">= the next double", and ">= d" for a float x is ">= the
 * smallest float at or above d". Patterns of nonnegative values order as the values do. */
static inline FS_SI CAT(fscale_step_bound_, SFX)(double t, double sg, int32_t excl)
{
    const int64_t db = (int64_t)to_bits_f64(t * sg);
    const double d = from_bits_f64((uint64_t)(excl ? db + 1 : db));
#if WBITS == 32
    const float f = (float)d;
    const int32_t fb = (int32_t)to_bits_f32(f);
    return (double)f < d ? fb + 1 : fb;
#else
    return (int64_t)to_bits_f64(d);
#endif
}

/* A row of the steps path for one divisor sg = scale * g: [0, 15) the bounds for positive inputs,
 * [16, 31) for negative ones, [32, 48) the FT patterns of code[k] * sg. An unusable block (usable = 0;
 * sg 1.0 for an all-zero block, NaN for one holding NaN or Inf) passes no bound and has the value of
 * 0 * sg throughout: +0 or NaN, as the division path gives. */
#define LP_FSCALE_ROW 48
static void CAT(fscale_row_, SFX)(FS_SI *row, double sg, int usable, const lp_fscale_steps *st)
{
    for (int j = 0; j < 15; j++) {
        const int on = usable && j < st->steps;
        row[j] = on ? CAT(fscale_step_bound_, SFX)(st->pos[j], sg, st->pos_excl[j]) : FS_ABS;
        row[16 + j] = on ? CAT(fscale_step_bound_, SFX)(st->neg[j], sg, st->neg_excl[j]) : FS_ABS;
    }
    row[15] = row[31] = FS_ABS;
    for (int k = 0; k < 16; k++) {
        const FT v = (FT)((usable && k <= st->steps ? st->code[k] : 0.0) * sg);
        row[32 + k] = (FS_SI)CAT(to_bits_, SFX)(v);
    }
}

/* The rows of every scale value, indexed by key: a positive scale's float32 pattern >> shift, less
 * kmin (the smallest scale's); then the all-zero and the NaN block's rows. NULL where the scale
 * format's keys span more than 1024 rows or memory runs out (the chunks then build their blocks'
 * rows). */
static FS_SI *CAT(fscale_rows_, SFX)(const lp_qparams *sp, double smallest, double g, const lp_fscale_steps *st,
                                     int *shift, int64_t *kmin, int64_t *span)
{
    *shift = sp->drop0; /* float32's mantissa bits less the scale format's */
    if (*shift < 0 || *shift > 23)
        return NULL;
    *kmin = (int64_t)(to_bits_f32((float)smallest) >> *shift);
    *span = (int64_t)(sp->lim_pos >> *shift) - *kmin + 1;
    if (*span < 1 || *span > 1024)
        return NULL;
    FS_SI *rows = (FS_SI *)malloc((size_t)(*span + 2) * LP_FSCALE_ROW * sizeof(FS_SI));
    if (!rows)
        return NULL;
    for (int64_t k = 0; k < *span; k++) {
        const double scale = (double)from_bits_f32((uint32_t)((k + *kmin) << *shift));
        CAT(fscale_row_, SFX)(rows + k * LP_FSCALE_ROW, scale * g, 1, st);
    }
    CAT(fscale_row_, SFX)(rows + *span * LP_FSCALE_ROW, 1.0, 0, st);
    CAT(fscale_row_, SFX)(rows + (*span + 1) * LP_FSCALE_ROW, NAN, 0, st);
    return rows;
}

/* One chunk by steps: each element's count of its block's bounds passed, its value by a select per
 * step, the sign OR-ed in (a zero result keeps it where neg_zero); row[b] is block b0 + b's row.
 * steps, sym, blk (16, or 0 for any block size) and neg_zero (st's) are constants after inlining
 * where the caller names them. */
static inline LP_ALWAYS_INLINE void CAT(fscale_steps_chunk_, SFX)(const FT *src, FT *dst, double *elements,
                                                                   int64_t start, int64_t len, int64_t b0,
                                                                   int64_t nb, int64_t block,
                                                                   const FS_SI *const *row, const int64_t *bkeep,
                                                                   const lp_fscale_steps *st, const int steps,
                                                                   const int sym, const int blk,
                                                                   const FS_SI neg_zero)
{
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = (b0 + b) * block - start, hi = lo + block;
        lo = lo > 0 ? lo : 0;
        hi = hi < len ? hi : len;
        FS_SI r[LP_FSCALE_ROW]; /* a local copy (a few vector moves): the element loop then vectorizes */
        memcpy(r, row[b], sizeof r);
        const FS_SI *tb = r, *ub = r + 16, *wb = r + 32;
        const FS_SI sm = bkeep[b] ? FS_MIN : 0;
        const int64_t m = blk ? blk : hi - lo; /* blk: whole blocks aligned with the chunk */
        const FT *x = src + lo;
        if (dst) {
            FT *y = dst + lo;
            LP_KEEP_LOOP
            for (int64_t i = 0; i < m; i++) { /* the lanes are the elements, the steps unrolled */
                const FS_SI xb = (FS_SI)CAT(to_bits_, SFX)(x[i]), a = xb & FS_ABS;
                FS_SI v = wb[0], k = 0;
                LP_UNROLL_ALL
                for (int j = 0; j < steps; j++) {
                    const FS_SI c = a >= (sym ? tb[j] : (xb < 0 ? ub[j] : tb[j]));
                    v = c ? wb[j + 1] : v;
                    k += c;
                }
                y[i] = CAT(from_bits_, SFX)((FS_UT)(v | ((k | neg_zero) ? xb & sm : 0)));
            }
        }
        if (elements)
            for (int64_t i = 0; i < m; i++) {
                const FS_SI xb = (FS_SI)CAT(to_bits_, SFX)(x[i]), a = xb & FS_ABS;
                FS_SI k = 0;
                for (int j = 0; j < steps; j++)
                    k += a >= (xb < 0 ? ub[j] : tb[j]);
                const uint64_t e = to_bits_f64(sm ? st->code[k] : 0.0);
                const uint64_t neg = ((xb & sm) && (k | neg_zero)) ? (1ull << 63) : 0;
                elements[lo + i] = from_bits_f64(e | neg);
            }
    }
}

LP_CLONES void CAT(lp_fscale_quantize_, SFX)(const FT *in, FT *out, double *elements, double *scales, int64_t n,
                                             int64_t block,
                                   const lp_qparams *ep, const lp_qparams *sp, double elem_max, double g,
                                   double smallest, lp_rounding mode, uint64_t seed, uint64_t offset,
                                   const lp_fscale_steps *steps, int nthreads)
{
    const int64_t nchunks = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
    const int stochastic = mode == LP_STOCHASTIC;
    const int by_steps = steps && !stochastic && block >= 8 && steps->steps >= 1 && steps->steps <= 15;
    int shift = 0;
    int64_t kmin = 0, span = 0;
    FS_SI *rows = by_steps ? CAT(fscale_rows_, SFX)(sp, smallest, g, steps, &shift, &kmin, &span) : NULL;
    /* stochastic rounding by steps (64 random bits): lp_sr_steps' tables */
    const int by_sr = steps && stochastic && ep->rbits == 64 && steps->steps >= 1 && steps->steps <= 15;
    double sr_up[16] = {0}, sr_inv[16] = {0};
    for (int j = 0; by_sr && j <= steps->steps; j++) {
        sr_up[j] = j < steps->steps ? steps->code[j + 1] : steps->code[j];
        sr_inv[j] = j < steps->steps ? 1.0 / (steps->code[j + 1] - steps->code[j]) : 0.0;
    }
#if WBITS == 32 && defined(LP_SR_AVX512)
    /* values only, by fscale_sr_unit_avx512: its tables (the grid padded with +Inf) */
    const int sr_fused = by_sr && out && !elements && block % 8 == 0 && lp_sr_avx512_ok();
    int sr_levels = 1;
    while (by_sr && (1 << sr_levels) < steps->steps + 1)
        sr_levels++;
    double sr_code16[16], sr_inv64[16];
    for (int j = 0; j < 16; j++) {
        sr_code16[j] = by_sr && j <= steps->steps ? steps->code[j] : INFINITY;
        sr_inv64[j] = sr_inv[j] * 18446744073709551616.0; /* exact: a power of two, or 0 */
    }
#endif
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
        const FT *src = in + start;
        if (by_steps) { /* no per-element divisors */
            double *el = elements ? elements + start : 0;
            FT *dst = out ? out + start : 0;
            const int64_t nb = b1 - b0 + 1;
            const FS_SI *row[LP_WORK_UNIT + 2];
            FS_SI local[LP_FSCALE_NB * LP_FSCALE_ROW];
            if (rows)
                for (int64_t b = 0; b < nb; b++) {
                    const int64_t key = (int64_t)(to_bits_f32((float)bscale[b]) >> shift) - kmin;
                    const int64_t at = bkeep[b] ? key : (bscale[b] == bscale[b] ? span : span + 1);
                    row[b] = rows + at * LP_FSCALE_ROW;
                }
            else
                for (int64_t b = 0; b < nb; b++) {
                    CAT(fscale_row_, SFX)(local + b * LP_FSCALE_ROW, bsg[b], bkeep[b] != 0, steps);
                    row[b] = local + b * LP_FSCALE_ROW;
                }
            if (block == 16 && steps->steps == 7 && steps->neg_zero && steps->sym) /* NVFP4's nearest, toward 0 */
                CAT(fscale_steps_chunk_, SFX)(src, dst, el, start, len, b0, nb, 16, row, bkeep, steps, 7, 1, 16, 1);
            else if (block == 16 && steps->steps == 7 && steps->neg_zero) /* up, down */
                CAT(fscale_steps_chunk_, SFX)(src, dst, el, start, len, b0, nb, 16, row, bkeep, steps, 7, 0, 16, 1);
            else
                CAT(fscale_steps_chunk_, SFX)(src, dst, el, start, len, b0, nb, block, row, bkeep, steps,
                                              steps->steps, 0, 0, steps->neg_zero);
            continue;
        }
#if WBITS == 32 && defined(LP_SR_AVX512)
        if (sr_fused) { /* values only: one fused pass (fscale_sr_unit_avx512) */
            uint32_t w[2 * LP_WORK_UNIT];
            philox_fill_best(w, LP_WORK_UNIT / 2, seed, offset + (uint64_t)c * (LP_WORK_UNIT / 2));
            fscale_sr_unit_avx512(src, out + start, start, len, b0, block, bsg, bkeep, w, sr_code16, sr_up,
                                  sr_inv64, sr_levels, (int)steps->neg_zero);
            continue;
        }
#endif
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
        if (stochastic) {
            for (int64_t i = 0; i < len; i++)
                quot[i] = CAT(fscale_quotient_, SFX)(src, sgx, keep, i);
            const uint64_t ctr = offset + (uint64_t)c * (LP_WORK_UNIT / 2);
            if (by_sr) {
                uint32_t w[2 * LP_WORK_UNIT];
                philox_fill_best(w, LP_WORK_UNIT / 2, seed, ctr);
                if (steps->steps == 7) /* fp4_e2m1: a constant trip count */
                    lp_sr_steps(quot, whole, len, w, steps->code, sr_up, sr_inv, 7, steps->neg_zero);
                else
                    lp_sr_steps(quot, whole, len, w, steps->code, sr_up, sr_inv, steps->steps, steps->neg_zero);
            } else if (ep->sub_exp < 1) {
                block_deep_f64(quot, whole, len, ep, mode, seed, ctr, 0);
            } else {
                block_f64(quot, whole, len, ep, mode, seed, ctr, 0);
            }
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
                block_deep_f32(q32, r32, len, ep, mode, 0, 0, 0);
            else
                block_f32(q32, r32, len, ep, mode, 0, 0, 0);
            for (int64_t i = 0; i < len; i++)
                whole[i] = (double)r32[i];
        }
        if (elements)
            memcpy(elements + start, whole, (size_t)len * sizeof(double));
        if (out) /* value = element * scale * g, rounded once to FT; NaN for a block with NaN or Inf */
            for (int64_t i = 0; i < len; i++)
                out[start + i] = (FT)(whole[i] * sgx[i]);
    }
    free(rows);
}
#undef FS_SI
#undef FS_UT
#undef FS_ABS
#undef FS_MIN
#undef FS_INF
#undef LP_FSCALE_NB
#undef LP_FSCALE_ROW
