/* What the fused stochastic passes of float32 (sr_round_avx512.h, sr_round_avx2.h) share: the integer
 * form of the byte rule for fixed grids, a unit's scalar plan, and the generic passes out of line.
 * Included by quantize_impl.h in its float32 instance, where the build carries x86 vector code. */
#ifndef LP_SR_ROUND_COMMON_H
#define LP_SR_ROUND_COMMON_H
#include <math.h>

enum { LP_SR_FIX_MAX = 4 }; /* exceptional inputs of a quarter unit fixed up lane by lane; more: sr_piece_ */

/* With bytes (or nearest even: k = 0, the rule without a draw), a format whose finite results all lie
 * below twice its min normal and whose smallest result is its grid's step (fixed point, integers; not a
 * float without subnormals, whose tiny inputs go to 0 or the min normal) rounds every input below that
 * on one grid, multiples of 2**q, and
 * overflows above it: the byte rule is then, in integers, (rint(|x| 2**(k - q)) + R) >> k times 2**q
 * (R the draw's top k bits; the conversion rounds to nearest even at bit s = d - k, exact where
 * s <= 0; the products by powers of two are exact, or round to 0 where the rule gives 0 too), for
 * every input below V = 2**(30 - k + q) (n + R < 2**31), tiny ones too; those at or above V, Inf and
 * NaN are the exceptional ones. Returns V's pattern, or 0 where this does not apply. */
static inline uint32_t sr_fixed_big(const lp_qparams *p, int k, int *q)
{
    const uint64_t two_low = (uint64_t)(p->sub_exp + 1) << 23;
    *q = p->sub_exp - 150 + p->drop0;
    const int v = 30 - k + *q;
    if (p->sub_exp < 1 || p->sub_exp > 253 || p->lim_pos >= two_low || p->lim_neg >= two_low ||
        *q < -100 || *q > 60 || v + 127 < 1 || v + 127 > 254 || p->q_exp != *q) /* q_exp: no subnormals */
        return 0;
    return (uint32_t)(v + 127) << 23;
}

/* A unit's scalars, from the format alone. Exceptional inputs: nonzero a below tiny_m1 + 1, a at or
 * above big. */
typedef struct {
    uint32_t tiny_m1, big;
    uint32_t low_m1; /* a - 1 at or above it: the input is at or above the format's min normal (flat) */
    int bytes;       /* rbits <= 8: a byte a draw, the k-bit rule */
    int k;           /* the draw's bits with bytes (8 otherwise: topk is for bytes alone; 0: nearest) */
    int tiny_k;      /* the rule's k: the draw's bits */
    int d0, s0;      /* a flat quarter's bits dropped (clamped to 0..24) and the byte rule's s = d0 - k */
    int fixed, gq;   /* sr_fixed_big's integer form applies, on multiples of 2**gq */
    int tiny_vec;    /* tiny inputs rounded in the vectors: 2**(tiny_k - q_exp) a normal float */
    int sym;         /* finish_'s LP_FAST_SYM */
    int64_t nctr;    /* the unit's Philox counters */
} lp_sr_plan;

/* nearest: nearest even, as the byte rule with k = 0 and no draw (the remainder rounded to nearest even
 * at bit d, nothing added): sr_round_avx2.h's deterministic use. */
static inline lp_sr_plan sr_plan_f32(const lp_qparams *p, const int nearest)
{
    lp_sr_plan pl;
    const uint32_t tiny = (uint32_t)p->tiny;
    pl.bytes = nearest || p->rbits != 32;
    pl.k = nearest ? 0 : pl.bytes ? p->rbits : 8;
    pl.d0 = p->drop0 < 0 ? 0 : (p->drop0 > 24 ? 24 : p->drop0);
    pl.s0 = pl.d0 - pl.k > 0 ? pl.d0 - pl.k : 0;
    int gq;
    const uint32_t fixed_big = pl.bytes ? sr_fixed_big(p, pl.k, &gq) : 0;
    pl.fixed = fixed_big != 0;
    pl.gq = pl.fixed ? gq : 0;
    pl.tiny_m1 = pl.fixed || !tiny ? 0 : tiny - 1;
    pl.big = pl.fixed ? fixed_big : 0x7F800000u;
    pl.tiny_k = pl.bytes ? pl.k : 32;
    pl.tiny_vec = pl.tiny_m1 && pl.tiny_k - p->q_exp >= 0 && pl.tiny_k - p->q_exp <= 127;
    pl.low_m1 = ((uint32_t)(p->sub_exp < 255 ? p->sub_exp : 255) << 23) - 1; /* as sr_piece_'s */
    pl.sym = fast_sym_f32(p);
    pl.nctr = pl.bytes ? LP_BYTE_DRAW_COUNTERS : LP_WORK_UNIT / 4;
    return pl;
}

/* sr_piece_ out of line (inlined, it left the fused loops fewer registers: 0.97 -> 0.88 ns an element
 * on 2**24 values), in the generic passes' instruction-set clones, on a local copy of the parameters
 * (else stores to dst might alias them and its loops stay scalar: MX stochastic of fp4 5x slower). */
LP_CLONES __attribute__((noinline)) static void sr_piece_call_f32(const uint32_t *src, uint32_t *dst, int64_t len,
                                                                  const lp_qparams *p, const uint32_t *draw)
{
    const lp_qparams params = *p; /* a local copy: stores to dst cannot alias it (the loops vectorize) */
    sr_piece_f32(src, dst, len, &params, draw, 0);
}

#endif
