/* Stochastic rounding of one whole work unit of float32 patterns in one AVX-512 pass, bit for bit the
 * rules of quantize_impl.h (sr_exact_fast_, sr_k_fast_, sr_tiny_inc_, finish_'s fast forms, and the
 * full rule for the exceptional inputs: Inf, NaN, tiny ones where 2**(k - q_exp) is no float; with a
 * byte, fixed-point and integer formats by an integer form of the rule), for formats whose normal
 * range starts within float32's (not deep) and draws of 32 bits or of a byte (rbits <= 8). Against the generic passes (count, draw, round, fix up)
 * it rounds in one pass, a quarter unit at a time after a look at it (flat: one d for all; no
 * exceptional input: no check), and it makes the next unit's Philox words while it rounds this one's,
 * so that the generator's arithmetic overlaps the memory traffic. Included by quantize_impl.h in its
 * float32 instance, where the build carries AVX-512 code, after sr_round_common.h. */

/* A thread's Philox words for its next unit, made while it rounds the current one (valid: they are
 * those of seed and counters ctr .. ctr + nctr - 1), and the current unit's. */
typedef struct {
    int valid, cur;
    uint64_t seed, ctr;
    int64_t nctr;
    uint32_t words[2][LP_WORK_UNIT];
} lp_sr_ahead;
static _Thread_local lp_sr_ahead lp_sr_ahead_words;

/* The loop-invariant vectors of a unit. */
typedef struct {
    __m512i absm, one, zero, c24, c32, ones, drop_sub, drop0_pos, k, topk, tiny_m1, big, lim_pos, lim_neg, ovf_pos,
        ovf_neg, signm;
    __m512i d0, keep0, shift0, s0, half_m1, one_if; /* a flat quarter's d and what follows from it */
    __m512 up, down; /* a fixed grid's (sr_fixed_big): 2**(k - q), 2**q */
    __m128i kc, k32c; /* k and 32 - k, shift counts */
    __m512 tscale;    /* tiny inputs, where tiny_vec: 2**(k - q_exp) (k = 32 with 32-bit draws) */
    __m512i qpat;     /* q's pattern */
    int tiny_vec;
} lp_sr_consts;

/* 16 elements at x into y, draws rnd (the rule reads their top rbits bits); the exceptional ones are
 * rounded by the full rule, lane by lane. Constants after inlining: bytes (the k-bit rule), sym
 * (finish_'s LP_FAST_SYM), flat (no input of the quarter unit below the format's min normal: d =
 * drop0 for all), fixed (sr_fixed_big's integer form for all); check: the quarter may hold tiny or
 * exceptional inputs. */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static inline LP_ALWAYS_INLINE void
sr_vec_avx512_f32(const uint32_t *x, uint32_t *y, __m512i rnd, const lp_sr_consts *c, const lp_qparams *p,
                  const int bytes, const int sym, const int flat, const int fixed, const int check)
{
    const __m512i bits = _mm512_loadu_si512((const void *)x);
    const __m512i a = _mm512_and_si512(bits, c->absm);
    __m512i r;
    if (fixed) { /* sr_fixed_big's integer form */
        const __m512i n = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_castsi512_ps(a), c->up),
                                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512i m = _mm512_srl_epi32(_mm512_add_epi32(n, _mm512_srl_epi32(rnd, c->k32c)), c->kc);
        r = _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(m), c->down));
    } else {
        /* d: bits dropped, drop0 plus the binades below the format's min normal, clamped to 0..24 */
        __m512i d = c->d0;
        if (!flat) { /* as min(max(C1 - ec, max(drop0, 0)), 24), C1 = drop0 + sub_exp, ec = max(exponent, 1) */
            const __m512i ec = _mm512_max_epu32(_mm512_srli_epi32(a, 23), c->one);
            d = _mm512_min_epi32(_mm512_max_epi32(_mm512_sub_epi32(c->drop_sub, ec), c->drop0_pos), c->c24);
        }
        const __m512i keep = flat ? c->keep0 : _mm512_sllv_epi32(c->ones, d); /* ~(2**d - 1) */
        /* the draw's top bits at bit d: (rnd >> 1) >> (31 - d), as one shift (a count of 32 gives 0) */
        const __m512i shift = flat ? c->shift0 : _mm512_sub_epi32(c->c32, d);
        if (!bytes) {
            r = _mm512_add_epi32(a, _mm512_srlv_epi32(rnd, shift));
        } else { /* a rounded to nearest even at bit s = d - k first, where that is above 0 */
            __m512i bias;
            if (flat) {
                bias = _mm512_add_epi32(c->half_m1, _mm512_and_si512(_mm512_srlv_epi32(a, c->s0), c->one_if));
            } else { /* half = 2**(s - 1) (0 where s <= 0: a count of 32 - s >= 32); bias = half - 1 + a's
                        bit s, or 0 */
                const __m512i half = _mm512_srlv_epi32(c->signm, _mm512_add_epi32(shift, c->k));
                const __mmask16 odd_not = _mm512_mask_testn_epi32_mask(_mm512_test_epi32_mask(half, half), a,
                                                                       _mm512_add_epi32(half, half));
                bias = _mm512_mask_sub_epi32(half, odd_not, half, c->one);
            }
            r = _mm512_add_epi32(_mm512_add_epi32(a, bias), _mm512_srlv_epi32(rnd, shift));
        }
        r = _mm512_and_si512(r, keep);
    }
    /* tiny inputs (nonzero below q; a - 1 wraps zero out): 0 or q as sr_tiny_inc_ has it, where
       tiny_vec: |x| 2**(k - q_exp) rounded to an integer (nearest even; exact below 2**k), plus the
       draw's top k bits, carries out of k bits; else the full rule's, lane by lane */
    __mmask16 tiny_lanes = 0;
    if (check) {
        tiny_lanes = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(a, c->one), c->tiny_m1);
        if (c->tiny_vec && tiny_lanes) {
            const __m512i frac = _mm512_cvt_roundps_epu32(_mm512_mul_ps(_mm512_castsi512_ps(a), c->tscale),
                                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            const __mmask16 carry =
                bytes ? _mm512_test_epi32_mask(
                            _mm512_srl_epi32(_mm512_add_epi32(frac, _mm512_srl_epi32(rnd, c->k32c)), c->kc), c->ones)
                      : _mm512_cmpgt_epu32_mask(rnd, _mm512_xor_si512(frac, c->ones)); /* rnd + frac >= 2**32 */
            r = _mm512_mask_mov_epi32(r, tiny_lanes, _mm512_maskz_mov_epi32(carry, c->qpat));
            tiny_lanes = 0;
        }
    }
    __m512i out;
    if (sym) {
        r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epu32_mask(r, c->lim_pos), c->ovf_pos);
        out = _mm512_ternarylogic_epi32(r, bits, c->signm, 0xF8); /* r | (bits & sign) */
    } else {
        const __mmask16 neg = _mm512_cmplt_epi32_mask(bits, c->zero);
        const __m512i lim = _mm512_mask_mov_epi32(c->lim_pos, neg, c->lim_neg);
        const __m512i ovf = _mm512_mask_mov_epi32(c->ovf_pos, neg, c->ovf_neg);
        r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epu32_mask(r, lim), ovf);
        const __mmask16 signed_lanes = p->keep_neg_zero ? neg : (__mmask16)(neg & _mm512_test_epi32_mask(r, r));
        out = _mm512_mask_or_epi32(r, signed_lanes, r, c->signm);
    }
    _mm512_storeu_si512((void *)y, out);
    if (!check)
        return;
    /* tiny ones left, at or above big (Inf, NaN) */
    const __mmask16 exc = tiny_lanes | _mm512_cmpge_epu32_mask(a, c->big);
    if (__builtin_expect(exc != 0, 0)) {
        uint32_t draws[16];
        _mm512_storeu_si512((void *)draws, rnd);
        for (int l = 0; l < 16; l++)
            if (exc >> l & 1)
                y[l] = round_one_f32(x[l], p, LP_STOCHASTIC, 0, 0, draws[l]);
    }
}

/* Elements m0..m1 of a quarter unit (256 elements) at src into dst, its draws' words at words (bytes:
 * byte b of them). */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static inline LP_ALWAYS_INLINE void
sr_quarter_avx512_f32(const uint32_t *src, uint32_t *dst, const uint32_t *words, int b, int64_t m0, int64_t m1,
                      const lp_qparams *p, const lp_sr_consts *c, const int bytes, const int sym, const int flat,
                      const int fixed, int check)
{
    const __m512i up = _mm512_set1_epi32(24 - 8 * b);
    for (int64_t m = m0; m < m1; m += 16) {
        __m512i rnd = _mm512_loadu_si512((const void *)(words + m));
        if (bytes)
            rnd = _mm512_and_si512(_mm512_sllv_epi32(rnd, up), c->topk);
        sr_vec_avx512_f32(src + m, dst + m, rnd, c, p, bytes, sym, flat, fixed, check);
    }
}

/* The unit at src (LP_WORK_UNIT elements) into dst, counters from ctr0, laid out as lp_quantize_f32's
 * (lowprec.h): with 32-bit draws element 256 w + j takes word w of counter j; with bytes element
 * 256 b + 64 w + j byte b of word w of counter j. The unit's words are made first (unless the
 * thread made them while rounding the unit before), then a quarter unit at a time is looked at (the
 * least a - 1 and the largest a: whether it is flat and whether it may hold tiny or exceptional
 * inputs, so that most take neither a per-lane d nor the check; a quarter with more than
 * LP_SR_FIX_MAX exceptional inputs goes to sr_piece_'s passes) and rounded, in element order (words made 32
 * counters at a time and used at once, in the order they come, ran 1.4x slower on 2**24 values).
 * more: the thread's next unit is likely the whole one at ctr0 + 256, whose words are made between
 * the half quarters. */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static void sr_unit_avx512_f32(const uint32_t *src, uint32_t *dst,
                                                                                  const lp_qparams *p, uint64_t seed,
                                                                                  uint64_t ctr0, int more)
{
    const lp_sr_plan pl = sr_plan_f32(p, 0);
    const int bytes = pl.bytes, k = pl.k, d0 = pl.d0, s0 = pl.s0, gq = pl.gq, fixed = pl.fixed, tiny_k = pl.tiny_k,
              tiny_vec = pl.tiny_vec, sym = pl.sym;
    const uint32_t tiny_m1 = pl.tiny_m1, big = pl.big, low_m1 = pl.low_m1;
    const int64_t nctr = pl.nctr;
    const lp_sr_consts c = {
        _mm512_set1_epi32(0x7FFFFFFF), _mm512_set1_epi32(1), _mm512_setzero_si512(), _mm512_set1_epi32(24),
        _mm512_set1_epi32(32), _mm512_set1_epi32(-1), _mm512_set1_epi32(p->drop0 + p->sub_exp),
        _mm512_set1_epi32(p->drop0 > 0 ? p->drop0 : 0),
        _mm512_set1_epi32(k), _mm512_set1_epi32((int)~((1u << (32 - k)) - 1)),
        _mm512_set1_epi32((int)tiny_m1), _mm512_set1_epi32((int)big),
        _mm512_set1_epi32((int)(uint32_t)p->lim_pos), _mm512_set1_epi32((int)(uint32_t)p->lim_neg),
        _mm512_set1_epi32((int)(uint32_t)p->ovf_pos), _mm512_set1_epi32((int)(uint32_t)p->ovf_neg),
        _mm512_set1_epi32((int)0x80000000u), _mm512_set1_epi32(d0), _mm512_set1_epi32((int)(~0u << d0)),
        _mm512_set1_epi32(32 - d0), _mm512_set1_epi32(s0),
        _mm512_set1_epi32(s0 > 0 ? (int)((1u << (s0 - 1)) - 1) : 0), _mm512_set1_epi32(s0 > 0),
        _mm512_set1_ps(ldexpf(1.0f, k - gq)), _mm512_set1_ps(ldexpf(1.0f, gq)),
        _mm_cvtsi32_si128(k), _mm_cvtsi32_si128(32 - k),
        _mm512_set1_ps(tiny_vec ? ldexpf(1.0f, tiny_k - p->q_exp) : 0.0f),
        _mm512_set1_epi32((int)(uint32_t)p->q), tiny_vec};
    lp_sr_ahead *ahead = &lp_sr_ahead_words;
    const uint32_t *words = ahead->words[ahead->cur];
    if (!(ahead->valid && ahead->seed == seed && ahead->ctr == ctr0 && ahead->nctr == nctr))
        philox_fill_avx512(ahead->words[ahead->cur], nctr, seed, ctr0, NULL);
    ahead->valid = 0;
    uint32_t *next = ahead->words[ahead->cur ^ 1];
    const int64_t batches = more ? nctr / (8 * LP_PHILOX_VECS512) : 0; /* the next unit's words */
    int64_t batch = 0;
    for (int q = 0; q < 4; q++) {
        const uint32_t *x = src + 256 * q;
        uint32_t *y = dst + 256 * q;
        __m512i least = _mm512_set1_epi32(-1), most = _mm512_setzero_si512();
        for (int64_t i = 0; i < 256; i += 16) {
            __builtin_prefetch(x + i + LP_WORK_UNIT, 0, 3); /* the next page: hardware prefetchers stop at 4 KiB */
            __builtin_prefetch(y + i + LP_WORK_UNIT, 1, 3);
            const __m512i a = _mm512_and_si512(_mm512_loadu_si512((const void *)(x + i)), c.absm);
            least = _mm512_min_epu32(least, _mm512_sub_epi32(a, c.one));
            most = _mm512_max_epu32(most, a);
        }
        const uint32_t least_m1 = _mm512_reduce_min_epu32(least), largest = _mm512_reduce_max_epu32(most);
        const int flat = least_m1 >= low_m1;
        const int check = least_m1 < tiny_m1 || largest >= big;
        const uint32_t *w = bytes ? words : words + 256 * q;
        int nexc = 0;
        for (int64_t i = 0; check && i < 256; i += 16) {
            const __m512i a = _mm512_and_si512(_mm512_loadu_si512((const void *)(x + i)), c.absm);
            const __mmask16 tiny_lanes = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(a, c.one), c.tiny_m1);
            nexc += __builtin_popcount((tiny_vec ? 0 : tiny_lanes) | _mm512_cmpge_epu32_mask(a, c.big));
        }
        const int generic = nexc > LP_SR_FIX_MAX; /* many: sr_piece_'s passes */
        uint32_t draws[256];
        if (generic && bytes)
            for (int64_t m = 0; m < 256; m++)
                draws[m] = (w[m] << (24 - 8 * q)) & 0xFF000000u;
        for (int half = 0; half < 2; half++) {
            const int64_t m0 = 128 * half, m1 = m0 + 128;
            if (generic) {
                sr_piece_call_f32(x + m0, y + m0, 128, p, (bytes ? draws : w) + m0);
            } else {
#define LP_SR_Q(B, S)                                                       \
    if (flat)                                                               \
        sr_quarter_avx512_f32(x, y, w, q, m0, m1, p, &c, B, S, 1, 0, check); \
    else if (B && fixed)                                                    \
        sr_quarter_avx512_f32(x, y, w, q, m0, m1, p, &c, B, S, 0, B, check); \
    else                                                                    \
        sr_quarter_avx512_f32(x, y, w, q, m0, m1, p, &c, B, S, 0, 0, check);
                if (bytes && sym) {
                    LP_SR_Q(1, 1)
                } else if (bytes) {
                    LP_SR_Q(1, 0)
                } else if (sym) {
                    LP_SR_Q(0, 1)
                } else {
                    LP_SR_Q(0, 0)
                }
#undef LP_SR_Q
            }
            if (batch < batches) { /* independent of the rounding: the two overlap */
                const int64_t j = 8 * LP_PHILOX_VECS512 * batch++;
                __m512i ctr[LP_PHILOX_VECS512], wv[2 * LP_PHILOX_VECS512];
                philox_counters_avx512(ctr0 + LP_WORK_UNIT / 4 + (uint64_t)j, ctr);
                philox_rounds_avx512(ctr, seed, wv);
                for (int h = 0; h < LP_PHILOX_VECS512 / 2; h++)
                    for (int wd = 0; wd < 4; wd++)
                        _mm512_storeu_si512((void *)(next + wd * nctr + j + 16 * h), wv[4 * h + wd]);
            }
        }
    }
    if (more) {
        ahead->valid = 1;
        ahead->seed = seed;
        ahead->ctr = ctr0 + LP_WORK_UNIT / 4;
        ahead->nctr = nctr;
        ahead->cur ^= 1;
    }
}
