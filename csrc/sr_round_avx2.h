/* Stochastic rounding with a byte a draw (rbits <= 8), and nearest even (the byte rule with k = 0 and
 * no draw, or float32's own addition where ne_by_addition_ holds), of one whole work unit of float32
 * patterns in one AVX2 pass: sr_round_avx512.h's fused pass on 8 lanes (the same rules, bit for bit;
 * masks as vectors of all-ones lanes, unsigned comparisons through the sign flip), for CPUs without
 * AVX-512. With 32-bit draws it gained nothing here (Zen 3: the rounding took what the generic passes
 * take, 0.6 ns an element, beside Philox's 0.7 ns a word, and making the next unit's words between the
 * quarters overlapped nothing), so those stay with the generic passes. Zen 3, 1 thread, 2**24 values,
 * ns an element: with a byte, q8.8 1.54 -> 1.13, fp8_e4m3fn 1.29 -> 1.05, fp16 0.93 -> 0.81; nearest
 * even fp8_e4m3fn 0.80 -> 0.57, fp8_e5m2 0.81 -> 0.50, q8.8 0.80 -> 0.55, fp4_e2m1fn 0.81 -> 0.66.
 * Included by quantize_impl.h in its float32 instance, where the build carries x86 vector code, after
 * sr_round_common.h. */

/* Whether the CPU runs this pass (the build carries it where LP_MAX_ISA >= 3). */
static inline int lp_sr_avx2_ok(void)
{
    static int ok = -1;
    if (ok < 0)
        ok = __builtin_cpu_supports("avx2");
    return ok;
}

/* Whether nearest even takes this pass: AVX2 CPUs without AVX-512 (whose clone of the generic pass
 * runs at about the copy's speed). */
static inline int lp_ne_avx2_ok(void)
{
    static int ok = -1;
    if (ok < 0)
        ok = lp_sr_avx2_ok() && !(LP_MAX_ISA >= 4 && __builtin_cpu_supports("avx512f"));
    return ok;
}

/* The loop-invariant vectors of a unit (sr_round_avx512.h's; unsigned bounds pre-flipped: "_x"). */
typedef struct {
    __m256i absm, one, zero, c24, c32, ones, drop_sub, drop0_pos, k, topk, signm, hidden;
    __m256i inf, sub, cap, cadd; /* LP_FORM_ADD's */
    __m256i tiny_m1_x, big_m1, lim_pos_x, lim_neg_x, ovf_pos, ovf_neg;
    __m256i d0, keep0, shift0, s0, half_m1, one_if;
    __m256 up, down, tscale;
    __m128i kc, k32c;
    __m256i qpat;
    int tiny_vec;
} lp_sr_consts2;

/* The magnitude's rounding: the shift rule (flat: one d for all), sr_fixed_big's integer form, or
 * (nearest even where ne_by_addition_ holds) float32's own addition of a constant of the input's binade. */
enum { LP_FORM_SHIFT, LP_FORM_FIXED, LP_FORM_ADD };

/* 8 elements at x into y, draws rnd (their top k bits), as sr_vec_avx512_f32 has it with bytes; nearest:
 * nearest even (k = 0, rnd 0). */
__attribute__((target("avx2"))) static inline LP_ALWAYS_INLINE void
sr_vec_avx2_f32(const uint32_t *x, uint32_t *y, __m256i rnd, const lp_sr_consts2 *c, const lp_qparams *p,
                const int nearest, const int sym, const int flat, const int form, const int check)
{
    const __m256i bits = _mm256_loadu_si256((const __m256i *)x);
    const __m256i a = _mm256_and_si256(bits, c->absm);
    __m256i r;
    if (form == LP_FORM_ADD) { /* round_in_mode_'s LP_NEAREST_EVEN_ADD */
        const __m256i eb = _mm256_min_epu32(_mm256_max_epu32(_mm256_and_si256(a, c->inf), c->sub), c->cap);
        const __m256 cv = _mm256_castsi256_ps(_mm256_add_epi32(eb, c->cadd));
        r = _mm256_castps_si256(_mm256_sub_ps(_mm256_add_ps(_mm256_castsi256_ps(a), cv), cv));
    } else if (form == LP_FORM_FIXED) { /* sr_fixed_big's; the conversion's rounding named, not MXCSR's */
        const __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_castsi256_ps(a), c->up),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256i m = _mm256_srl_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(v), _mm256_srl_epi32(rnd, c->k32c)),
                                           c->kc);
        r = _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(m), c->down));
    } else {
        __m256i d = c->d0;
        if (!flat) {
            const __m256i ec = _mm256_max_epi32(_mm256_srli_epi32(a, 23), c->one);
            d = _mm256_min_epi32(_mm256_max_epi32(_mm256_sub_epi32(c->drop_sub, ec), c->drop0_pos), c->c24);
        }
        const __m256i keep = flat ? c->keep0 : _mm256_sllv_epi32(c->ones, d);
        const __m256i shift = flat ? c->shift0 : _mm256_sub_epi32(c->c32, d); /* a count of 32 gives 0 */
        __m256i bias; /* a rounded to nearest even at bit s = d - k first, where that is above 0 */
        if (flat) {
            bias = _mm256_add_epi32(c->half_m1, _mm256_and_si256(_mm256_srlv_epi32(a, c->s0), c->one_if));
        } else { /* half = 2**(s - 1) or 0; bias = half, less 1 where half is nonzero and bit s is 0: a's,
                    or (nearest, where s = d may be 23) the significand's with its implicit 1 */
            const __m256i half = _mm256_srlv_epi32(c->signm, _mm256_add_epi32(shift, c->k));
            const __m256i sig =
                nearest ? _mm256_or_si256(a, _mm256_and_si256(_mm256_min_epu32(a, c->hidden), c->hidden)) : a;
            const __m256i even = _mm256_cmpeq_epi32(_mm256_and_si256(sig, _mm256_add_epi32(half, half)), c->zero);
            bias = _mm256_add_epi32(half, _mm256_andnot_si256(_mm256_cmpeq_epi32(half, c->zero), even));
        }
        r = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(a, bias), _mm256_srlv_epi32(rnd, shift)), keep);
    }
    /* tiny inputs (nonzero below q; a - 1 wraps zero out) */
    __m256i tiny_lanes = c->zero;
    if (check) {
        tiny_lanes = _mm256_cmpgt_epi32(c->tiny_m1_x, _mm256_xor_si256(_mm256_sub_epi32(a, c->one), c->signm));
        if (c->tiny_vec) { /* the fraction: at most 2**k; no branch on the lanes (a narrow format's
                              range makes it unpredictable: fp6_e2m3fn nearest 1.7 -> 0.9 ns an element) */
            const __m256i frac = _mm256_cvttps_epi32(_mm256_round_ps(
                _mm256_mul_ps(_mm256_castsi256_ps(a), c->tscale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            const __m256i carry = _mm256_cmpeq_epi32(
                _mm256_srl_epi32(_mm256_add_epi32(frac, _mm256_srl_epi32(rnd, c->k32c)), c->kc), c->zero);
            r = _mm256_blendv_epi8(r, _mm256_andnot_si256(carry, c->qpat), tiny_lanes);
            tiny_lanes = c->zero;
        }
    }
    __m256i out;
    if (sym) {
        const __m256i over = _mm256_cmpgt_epi32(_mm256_xor_si256(r, c->signm), c->lim_pos_x);
        r = _mm256_blendv_epi8(r, c->ovf_pos, over);
        out = _mm256_or_si256(r, _mm256_and_si256(bits, c->signm));
    } else {
        const __m256i neg = _mm256_cmpgt_epi32(c->zero, bits);
        const __m256i lim_x = _mm256_blendv_epi8(c->lim_pos_x, c->lim_neg_x, neg);
        const __m256i ovf = _mm256_blendv_epi8(c->ovf_pos, c->ovf_neg, neg);
        r = _mm256_blendv_epi8(r, ovf, _mm256_cmpgt_epi32(_mm256_xor_si256(r, c->signm), lim_x));
        const __m256i signed_lanes =
            p->keep_neg_zero ? neg : _mm256_andnot_si256(_mm256_cmpeq_epi32(r, c->zero), neg);
        out = _mm256_or_si256(r, _mm256_and_si256(signed_lanes, c->signm));
    }
    _mm256_storeu_si256((__m256i *)y, out);
    if (!check)
        return;
    /* tiny ones left, at or above big (Inf, NaN; a and big below 2**31: a signed comparison) */
    const int exc = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_or_si256(tiny_lanes, _mm256_cmpgt_epi32(a, c->big_m1))));
    if (__builtin_expect(exc != 0, 0)) {
        uint32_t draws[8];
        _mm256_storeu_si256((__m256i *)draws, rnd);
        for (int l = 0; l < 8; l++)
            if (exc >> l & 1)
                y[l] = round_one_f32(x[l], p, nearest ? LP_NEAREST_EVEN : LP_STOCHASTIC, 0, 0, draws[l]);
    }
}

/* Quarter unit b at src into dst, its draws byte b of the unit's words (nearest: none). */
__attribute__((target("avx2"))) static inline LP_ALWAYS_INLINE void
sr_quarter_avx2_f32(const uint32_t *src, uint32_t *dst, const uint32_t *words, int b, const lp_qparams *p,
                    const lp_sr_consts2 *c, const int nearest, const int sym, const int flat, const int form,
                    int check)
{
    const __m128i up = _mm_cvtsi32_si128(24 - 8 * b);
    for (int64_t m = 0; m < 256; m += 8) {
        const __m256i rnd =
            nearest ? c->zero
                    : _mm256_and_si256(_mm256_sll_epi32(_mm256_loadu_si256((const __m256i *)(words + m)), up), c->topk);
        sr_vec_avx2_f32(src + m, dst + m, rnd, c, p, nearest, sym, flat, form, check);
    }
}

/* Nearest even of a piece by the generic rule, out of line (a quarter unit with many exceptional
 * inputs), in the generic passes' instruction-set clones, on a local copy of the parameters. */
LP_CLONES __attribute__((noinline)) static void ne_piece_call_f32(const uint32_t *src, uint32_t *dst, int64_t len,
                                                                  const lp_qparams *p)
{
    const lp_qparams params = *p;
    for (int64_t i = 0; i < len; i++)
        dst[i] = round_one_f32(src[i], &params, LP_NEAREST_EVEN, 0, 0, 0);
}

__attribute__((target("avx2"))) static inline uint32_t lp_hmin_epu32_avx2(__m256i v)
{
    __m128i m = _mm_min_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_min_epu32(m, _mm_shuffle_epi32(m, 0x4E));
    m = _mm_min_epu32(m, _mm_shuffle_epi32(m, 0xB1));
    return (uint32_t)_mm_cvtsi128_si32(m);
}

__attribute__((target("avx2"))) static inline uint32_t lp_hmax_epu32_avx2(__m256i v)
{
    __m128i m = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0x4E));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0xB1));
    return (uint32_t)_mm_cvtsi128_si32(m);
}

/* The unit at src into dst with a byte a draw, as sr_unit_avx512_f32 has it (the same layout, the same
 * look at each quarter unit; its words made first), or (nearest) rounded to nearest even. */
__attribute__((target("avx2"))) static inline LP_ALWAYS_INLINE void
unit_avx2_f32(const uint32_t *src, uint32_t *dst, const lp_qparams *p, uint64_t seed, uint64_t ctr0, const int nearest)
{
    const lp_sr_plan pl = sr_plan_f32(p, nearest);
    const int k = pl.k, sym = pl.sym;
    const uint32_t sflip = 0x80000000u;
    const lp_sr_consts2 c = {
        .absm = _mm256_set1_epi32(0x7FFFFFFF), .one = _mm256_set1_epi32(1), .zero = _mm256_setzero_si256(),
        .c24 = _mm256_set1_epi32(24), .c32 = _mm256_set1_epi32(32), .ones = _mm256_set1_epi32(-1),
        .drop_sub = _mm256_set1_epi32(p->drop0 + p->sub_exp), .drop0_pos = _mm256_set1_epi32(p->drop0 > 0 ? p->drop0 : 0),
        .k = _mm256_set1_epi32(k), .topk = _mm256_set1_epi32(k ? (int)~((1u << (32 - k)) - 1) : 0),
        .signm = _mm256_set1_epi32((int)sflip), .hidden = _mm256_set1_epi32(1 << 23),
        .inf = _mm256_set1_epi32(0x7F800000), .sub = _mm256_set1_epi32((int)((uint32_t)p->sub_exp << 23)),
        .cap = _mm256_set1_epi32((int)((uint32_t)(254 - p->drop0) << 23)),
        .cadd = _mm256_set1_epi32((int)((uint32_t)p->drop0 * (1u << 23) + (1u << 22))),
        .tiny_m1_x = _mm256_set1_epi32((int)(pl.tiny_m1 ^ sflip)), .big_m1 = _mm256_set1_epi32((int)(pl.big - 1)),
        .lim_pos_x = _mm256_set1_epi32((int)((uint32_t)p->lim_pos ^ sflip)),
        .lim_neg_x = _mm256_set1_epi32((int)((uint32_t)p->lim_neg ^ sflip)),
        .ovf_pos = _mm256_set1_epi32((int)(uint32_t)p->ovf_pos), .ovf_neg = _mm256_set1_epi32((int)(uint32_t)p->ovf_neg),
        .d0 = _mm256_set1_epi32(pl.d0), .keep0 = _mm256_set1_epi32((int)(~0u << pl.d0)),
        .shift0 = _mm256_set1_epi32(32 - pl.d0), .s0 = _mm256_set1_epi32(pl.s0),
        .half_m1 = _mm256_set1_epi32(pl.s0 > 0 ? (int)((1u << (pl.s0 - 1)) - 1) : 0),
        .one_if = _mm256_set1_epi32(pl.s0 > 0),
        .up = _mm256_set1_ps(ldexpf(1.0f, k - pl.gq)), .down = _mm256_set1_ps(ldexpf(1.0f, pl.gq)),
        .tscale = _mm256_set1_ps(pl.tiny_vec ? ldexpf(1.0f, pl.tiny_k - p->q_exp) : 0.0f),
        .kc = _mm_cvtsi32_si128(k), .k32c = _mm_cvtsi32_si128(32 - k),
        .qpat = _mm256_set1_epi32((int)(uint32_t)p->q), .tiny_vec = pl.tiny_vec};
    const int ne_add = nearest && ne_by_addition_f32(p);
    uint32_t words[4 * LP_BYTE_DRAW_COUNTERS];
    if (!nearest)
        philox_fill_avx2(words, LP_BYTE_DRAW_COUNTERS, seed, ctr0, NULL);
    for (int q = 0; q < 4; q++) {
        const uint32_t *x = src + 256 * q;
        uint32_t *y = dst + 256 * q;
        __m256i least = c.ones, most = c.zero;
        for (int64_t i = 0; i < 256; i += 8) {
            if (i % 16 == 0) /* a line at a time */
                LP_PREFETCH_NEXT_PAGE(x + i, y + i)
            const __m256i a = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)), c.absm);
            least = _mm256_min_epu32(least, _mm256_sub_epi32(a, c.one));
            most = _mm256_max_epu32(most, a);
        }
        const uint32_t least_m1 = lp_hmin_epu32_avx2(least), largest = lp_hmax_epu32_avx2(most);
        const int flat = least_m1 >= pl.low_m1;
        const int check = least_m1 < pl.tiny_m1 || largest >= pl.big;
        int nexc = 0;
        for (int64_t i = 0; check && i < 256; i += 8) {
            const __m256i a = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)), c.absm);
            const __m256i tiny_lanes =
                _mm256_cmpgt_epi32(c.tiny_m1_x, _mm256_xor_si256(_mm256_sub_epi32(a, c.one), c.signm));
            const __m256i e = _mm256_or_si256(pl.tiny_vec ? c.zero : tiny_lanes, _mm256_cmpgt_epi32(a, c.big_m1));
            nexc += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(e)));
        }
        if (nexc > LP_SR_FIX_MAX && nearest) { /* many: the generic rule */
            ne_piece_call_f32(x, y, 256, p);
        } else if (nexc > LP_SR_FIX_MAX) { /* many: sr_piece_'s passes */
            uint32_t draws[256];
            for (int64_t m = 0; m < 256; m++)
                draws[m] = (words[m] << (24 - 8 * q)) & 0xFF000000u;
            sr_piece_call_f32(x, y, 256, p, draws);
        } else {
#define LP_Q(FLAT, FORM)                                                              \
    if (sym)                                                                          \
        sr_quarter_avx2_f32(x, y, words, q, p, &c, nearest, 1, FLAT, FORM, check);    \
    else                                                                              \
        sr_quarter_avx2_f32(x, y, words, q, p, &c, nearest, 0, FLAT, FORM, check);
            if (ne_add) {
                LP_Q(0, LP_FORM_ADD)
            } else if (flat) {
                LP_Q(1, LP_FORM_SHIFT)
            } else if (pl.fixed) {
                LP_Q(0, LP_FORM_FIXED)
            } else {
                LP_Q(0, LP_FORM_SHIFT)
            }
#undef LP_Q
        }
    }
}

__attribute__((target("avx2"))) static void sr_unit_avx2_f32(const uint32_t *src, uint32_t *dst, const lp_qparams *p,
                                                              uint64_t seed, uint64_t ctr0)
{
    unit_avx2_f32(src, dst, p, seed, ctr0, 0);
}

/* Nearest even of a unit: formats whose ties are their significand's (not the exponent's: par_mask). */
__attribute__((target("avx2"))) static void ne_unit_avx2_f32(const uint32_t *src, uint32_t *dst, const lp_qparams *p)
{
    unit_avx2_f32(src, dst, p, 0, 0, 1);
}
