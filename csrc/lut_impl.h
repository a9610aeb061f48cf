/* Lookup-table (codebook) quantization, included by quantize.c per input type (FT, SFX as for
 * quantize_impl.h). The Python side turns the sorted codebook and the rounding mode into sorted
 * thresholds t[0..K-2] of the input type: an input x takes index #{j : t[j] <= x}, so every mode is
 * one search. Small tables are scanned (a compare and a select per entry, vectorized across
 * elements); larger ones are searched by a branch-free binary search. NaN stays NaN (index 0). */

#include <math.h>

#ifndef LP_LUT_SCAN_MAX
#define LP_LUT_SCAN_MAX 64
#endif

#define LP_LUT_TILE 256

/* Tiles of LP_LUT_TILE elements, thresholds in the outer loop: the inner loop over elements is a
 * compare and a select per lane. */
LP_CLONES static void CAT(lut_scan_, SFX)(const FT *restrict in, int64_t n, const FT *restrict thr, int32_t nthr,
                                          const FT *restrict table, FT *restrict out, uint16_t *restrict idx)
{
    for (int64_t s = 0; s < n; s += LP_LUT_TILE) {
        const int64_t len = n - s < LP_LUT_TILE ? n - s : LP_LUT_TILE;
        const FT *restrict x = in + s;
        if (out) {
            FT v[LP_LUT_TILE];
            for (int64_t i = 0; i < len; i++)
                v[i] = table[0];
            for (int32_t j = 0; j < nthr; j++) {
                const FT t = thr[j], tv = table[j + 1];
                for (int64_t i = 0; i < len; i++)
                    v[i] = x[i] >= t ? tv : v[i];
            }
            for (int64_t i = 0; i < len; i++)
                out[s + i] = x[i] != x[i] ? x[i] : v[i];
        }
        if (idx) {
            uint16_t k[LP_LUT_TILE];
            for (int64_t i = 0; i < len; i++)
                k[i] = 0;
            for (int32_t j = 0; j < nthr; j++) {
                const FT t = thr[j];
                for (int64_t i = 0; i < len; i++)
                    k[i] += (uint16_t)(x[i] >= t);
            }
            for (int64_t i = 0; i < len; i++)
                idx[s + i] = k[i];
        }
    }
}

/* The binary search tile by tile, one halving step for every element of a tile at a time: the steps
 * depend only on the table's size, so each is a gather, a compare and a select per lane (vectorized),
 * and every element takes the path the one-at-a-time search takes. */
LP_CLONES static void CAT(lut_search_, SFX)(const FT *restrict in, int64_t n, const FT *restrict thr, int32_t nthr,
                                            const FT *restrict table, FT *restrict out, uint16_t *restrict idx)
{
    int32_t halves[32], nsteps = 0, len = nthr;
    while (len > 1) { /* invariant: the answer lies in [base, base + len] */
        halves[nsteps++] = len / 2;
        len -= len / 2;
    }
    for (int64_t s = 0; s < n; s += LP_LUT_TILE) {
        const int64_t m = n - s < LP_LUT_TILE ? n - s : LP_LUT_TILE;
        const FT *restrict x = in + s;
        int32_t base[LP_LUT_TILE];
        for (int64_t i = 0; i < m; i++)
            base[i] = 0;
        for (int32_t st = 0; st < nsteps; st++) {
            const int32_t half = halves[st];
            for (int64_t i = 0; i < m; i++) {
                const int32_t b = base[i];
                base[i] = thr[b + half - 1] <= x[i] ? b + half : b;
            }
        }
        for (int64_t i = 0; i < m; i++) {
            const int32_t k = base[i] + (len == 1 && thr[base[i]] <= x[i]);
            if (out)
                out[s + i] = x[i] != x[i] ? x[i] : table[k];
            if (idx)
                idx[s + i] = (uint16_t)k;
        }
    }
}

#if WBITS == 32
/* Large float32 tables through a bucket index: a float's bits, mapped to an order-preserving key, name
 * one of 65536 buckets (1/128 of a binade each), which holds lo | hi << 16 | t << 32: lo and hi the counts
 * of thresholds <= the bucket's smallest and largest value, t the bits of the first threshold it may hold,
 * thr[min(lo, nthr - 1)] (lowprec.array.codebook builds it). Most buckets hold no threshold (lo == hi);
 * one is a compare with t, read with lo (one gather); more (rare) are counted one by one. */
static inline uint32_t lp_order_key_f32(float x)
{
    const uint32_t u = to_bits_f32(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

LP_CLONES static void lut_bucket_tile_f32(const float *restrict x, int64_t m, const float *restrict thr,
                                          int32_t nthr, const uint64_t *restrict buckets,
                                          const float *restrict table, float *restrict out, uint16_t *restrict idx)
{
    (void)nthr;
    int32_t k[LP_LUT_TILE];
    uint8_t w[LP_LUT_TILE + 8]; /* 1 where the bucket holds more thresholds, zero-padded to whole words */
    for (int64_t i = 0; i < m; i++) {
        const uint64_t b = buckets[lp_order_key_f32(x[i]) >> 16]; /* one gather: the counts and t */
        const int32_t lo = (int32_t)(b & 0xFFFFu), hi = (int32_t)((b >> 16) & 0xFFFFu);
        const float t0 = from_bits_f32((uint32_t)(b >> 32));
        k[i] = lo + ((hi > lo) & (t0 <= x[i]));
        w[i] = (uint8_t)(hi - lo > 1);
    }
    memset(w + m, 0, 8);
    /* buckets with more thresholds (most tiles of a random 256-entry codebook hold an element or two
       in one): those elements' thresholds counted, looked for eight at a time */
    for (int64_t c = 0; c < m; c += 8) {
        uint64_t any;
        memcpy(&any, w + c, 8);
        if (any)
            for (int64_t i = c; i < c + 8 && i < m; i++)
                if (w[i]) {
                    const uint64_t b = buckets[lp_order_key_f32(x[i]) >> 16];
                    int32_t n = (int32_t)(b & 0xFFFFu);
                    for (int32_t t = (int32_t)(b & 0xFFFFu); t < (int32_t)((b >> 16) & 0xFFFFu); t++)
                        n += thr[t] <= x[i];
                    k[i] = n;
                }
    }
    for (int64_t i = 0; i < m; i++)
        k[i] = x[i] != x[i] ? 0 : k[i];
    if (out)
        for (int64_t i = 0; i < m; i++) {
            const float v = table[k[i]]; /* unconditional: a gather */
            out[i] = x[i] != x[i] ? x[i] : v;
        }
    if (idx)
        for (int64_t i = 0; i < m; i++)
            idx[i] = (uint16_t)k[i];
}

#if defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 4
/* k = #{j : thr[j] <= x} of 16 elements (v, the live lanes of x) by the bucket index, with AVX-512
 * gathers (GCC emulates gathers lane by lane in portable loops); NaN takes 0; the rare buckets with
 * more than two thresholds are counted one by one. */
__attribute__((target("avx512f"))) static inline LP_ALWAYS_INLINE __m512i lut_bucket_k_avx512(const float *x, __mmask16 live,
                                                                                            __m512 v, const float *thr,
                                                                                            int32_t nthr,
                                                                                            const uint64_t *buckets)
{
    const __m512i last = _mm512_set1_epi32(nthr - 1), low16 = _mm512_set1_epi32(0xFFFF), one = _mm512_set1_epi32(1);
    const __m512i top = _mm512_set1_epi32((int)0x80000000u), two = _mm512_set1_epi32(2);
    const __m512i u = _mm512_castps_si512(v);
    const __m512i key = _mm512_xor_si512(u, _mm512_or_si512(_mm512_srai_epi32(u, 31), top));
    /* the whole entries (lo | hi << 16 | t << 32), two 64-bit gathers, split into their low words and
       their t (the first threshold, thr[j0], no gather of its own) by two permutes */
    const __m512i idx = _mm512_srli_epi32(key, 16);
    const __m512i e0 = _mm512_mask_i32gather_epi64(_mm512_setzero_si512(), (__mmask8)live,
                                                   _mm512_castsi512_si256(idx), (const long long *)buckets, 8);
    const __m512i e1 = _mm512_mask_i32gather_epi64(_mm512_setzero_si512(), (__mmask8)(live >> 8),
                                                   _mm512_extracti64x4_epi64(idx, 1), (const long long *)buckets, 8);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i b = _mm512_permutex2var_epi32(e0, even, e1);
    const __m512 t0 = _mm512_castsi512_ps(_mm512_permutex2var_epi32(e0, _mm512_add_epi32(even, one), e1));
    const __m512i lo = _mm512_and_si512(b, low16), hi = _mm512_srli_epi32(b, 16);
    const __m512i j1 = _mm512_min_epi32(_mm512_add_epi32(lo, one), last);
    const __m512i width = _mm512_sub_epi32(hi, lo);
    /* only the lanes whose bucket holds a second threshold (rare) load it */
    const __mmask16 has0 = _mm512_mask_cmpgt_epi32_mask(live, width, _mm512_setzero_si512());
    const __mmask16 has1 = _mm512_mask_cmpgt_epi32_mask(has0, width, one);
    const __mmask16 c0 = _mm512_mask_cmp_ps_mask(has0, t0, v, _CMP_LE_OQ);
    __mmask16 c1 = 0;
    if (has1) {
        const __m512 t1 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), has1, j1, thr, 4);
        c1 = _mm512_mask_cmp_ps_mask(has1, t1, v, _CMP_LE_OQ);
    }
    __m512i k = _mm512_mask_add_epi32(lo, c0, lo, one);
    k = _mm512_mask_add_epi32(k, c1, k, one);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    k = _mm512_mask_mov_epi32(k, nan, _mm512_setzero_si512());
    __mmask16 wide = _mm512_cmpgt_epi32_mask(width, two) & live & (__mmask16)~nan;
    if (wide) { /* more than two thresholds in the bucket: count them */
        int32_t kk[16];
        _mm512_storeu_si512((void *)kk, k);
        while (wide) {
            const int l = __builtin_ctz(wide);
            const uint32_t bb = (uint32_t)buckets[lp_order_key_f32(x[l]) >> 16];
            int32_t c = (int32_t)(bb & 0xFFFFu);
            for (int32_t t = (int32_t)(bb & 0xFFFFu); t < (int32_t)(bb >> 16); t++)
                c += thr[t] <= x[l];
            kk[l] = c;
            wide &= (__mmask16)(wide - 1);
        }
        k = _mm512_loadu_si512((const void *)kk);
    }
    return k;
}

/* The tile of lut_bucket_tile_f32, 16 elements a step by lut_bucket_k_avx512 */
__attribute__((target("avx512f"))) static inline LP_ALWAYS_INLINE void lut_bucket_tile_avx512(const float *x, int64_t m, const float *thr,
                                                                       int32_t nthr, const uint64_t *buckets,
                                                                       const float *table, float *out, uint16_t *idx)
{
    for (int64_t i = 0; i < m; i += 16) {
        const __mmask16 live = m - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (m - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
        const __m512i k = lut_bucket_k_avx512(x + i, live, v, thr, nthr, buckets);
        if (out) {
            const __m512 val = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, k, table, 4);
            _mm512_mask_storeu_ps(out + i, live, _mm512_mask_mov_ps(val, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v));
        }
        if (idx) {
            uint16_t k16[16];
            _mm256_storeu_si256((__m256i *)k16, _mm512_cvtepi32_epi16(k));
            memcpy(idx + i, k16, (size_t)(m - i < 16 ? m - i : 16) * sizeof(uint16_t));
        }
    }
}

/* A chunk's tiles in one AVX-512 function, the tile inlined (called tile by tile it ran at half the
 * speed: 2.3 against 1.25 ns an element for a 256-entry table, one thread) */
__attribute__((target("avx512f"))) static void lut_bucket_chunk_avx512(const float *in, int64_t s, int64_t len,
                                                                        const float *thr, int32_t nthr,
                                                                        const uint64_t *buckets, const float *table,
                                                                        float *out, uint16_t *idx)
{
    for (int64_t t = s; t < s + len; t += LP_LUT_TILE) {
        const int64_t m = s + len - t < LP_LUT_TILE ? s + len - t : LP_LUT_TILE;
        lut_bucket_tile_avx512(in + t, m, thr, nthr, buckets, table, out ? out + t : 0, idx ? idx + t : 0);
    }
}

/* Tables of at most 64 entries, float32: the scan's count #{j : thr[j] <= x} by a binary search of
 * permutes over the sorted thresholds NaN-padded to 16 * R (a NaN threshold passes no x, and a NaN x
 * passes none: index 0), the entry by a permute; every table in registers, R of them each (1, 2 or 4:
 * up to 16, 32 or 64 entries; R a constant after inlining; lut_permute_search_avx512). */
#define LP_LUT_LOOKUP(T, idx)                                                                               \
    (R == 1 ? _mm512_permutexvar_ps(idx, T[0])                                                              \
     : R == 2 ? _mm512_permutex2var_ps(T[0], idx, T[1])                                                     \
              : _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)),                     \
                                     _mm512_permutex2var_ps(T[0], idx, T[1]), _mm512_permutex2var_ps(T[2], idx, T[3])))
/* k = #{j : t[j] <= v} of 16 lanes for sorted thresholds t NaN-padded to 16 R in registers T */
__attribute__((target("avx512f"))) static inline LP_ALWAYS_INLINE __m512i lut_permute_search_avx512(__m512 v,
                                                                                                 const __m512 *T,
                                                                                                 const int R)
{
    __m512i k = _mm512_setzero_si512();
    for (int half = 8 * R; half >= 1; half /= 2) {
        const __m512 t = LP_LUT_LOOKUP(T, _mm512_add_epi32(k, _mm512_set1_epi32(half - 1)));
        k = _mm512_mask_add_epi32(k, _mm512_cmp_ps_mask(t, v, _CMP_LE_OQ), k, _mm512_set1_epi32(half));
    }
    return k;
}

__attribute__((target("avx512f"))) static inline LP_ALWAYS_INLINE void lut64_avx512(const float *x, int64_t n,
                                                                                   const float *thr64,
                                                                                   const float *table64, float *out,
                                                                                   uint16_t *idx, const int R)
{
    __m512 T[4], V[4];
    for (int r = 0; r < R; r++) {
        T[r] = _mm512_loadu_ps(thr64 + 16 * r);
        V[r] = _mm512_loadu_ps(table64 + 16 * r);
    }
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 live = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
        __builtin_prefetch(x + i + 1024, 0, 3); /* the next page, as LP_PREFETCH_NEXT_PAGE (out may be NULL) */
        const __m512i k = lut_permute_search_avx512(v, T, R);
        if (out) {
            __builtin_prefetch(out + i + 1024, 1, 3);
            const __m512 val = LP_LUT_LOOKUP(V, k);
            _mm512_mask_storeu_ps(out + i, live, _mm512_mask_mov_ps(val, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v));
        }
        if (idx)
            _mm512_mask_cvtepi32_storeu_epi16(idx + i, live, k);
    }
}

#undef LP_LUT_LOOKUP

__attribute__((target("avx512f"))) static void lut64_chunk_avx512(const float *x, int64_t n, const float *thr64,
                                                                   const float *table64, float *out, uint16_t *idx,
                                                                   int32_t nthr)
{
    if (nthr < 16)
        lut64_avx512(x, n, thr64, table64, out, idx, 1);
    else if (nthr < 32)
        lut64_avx512(x, n, thr64, table64, out, idx, 2);
    else
        lut64_avx512(x, n, thr64, table64, out, idx, 4);
}

/* lut64_avx512's padded tables of a table of at most 64 entries whose thresholds are sorted (as
 * lowprec.array.codebook makes them; the binary search needs it), on a CPU with AVX-512; 0 where
 * not (the scan then runs). lut64_run: lp_lut_f32 by them; returns whether it ran. */
static int lut64_pad(const float *thr, int32_t nthr, const float *table, float *thr64, float *table64)
{
    if (nthr > 63 || !__builtin_cpu_supports("avx512f"))
        return 0;
    for (int j = 0; j < 64; j++) {
        if (j > 0 && j < nthr && !(thr[j - 1] <= thr[j]))
            return 0;
        thr64[j] = j < nthr ? thr[j] : NAN;
        table64[j] = table[j <= nthr ? j : nthr];
    }
    return 1;
}

static int lut64_run(const float *in, int64_t n, const float *thr, int32_t nthr, const float *table, float *out,
                     uint16_t *idx, int nthreads)
{
    float thr64[64], table64[64];
    if (!lut64_pad(thr, nthr, table, thr64, table64))
        return 0;
    const int64_t chunk = 16384, nchunks = (n + chunk - 1) / chunk;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t s = c * chunk, len = n - s < chunk ? n - s : chunk;
        lut64_chunk_avx512(in + s, len, thr64, table64, out ? out + s : 0, idx ? idx + s : 0, nthr);
    }
    return 1;
}
#endif

void lp_lut_bucket_f32(const float *in, int64_t n, const float *thr, int32_t nthr, const uint64_t *buckets,
                       const float *table, float *out, uint16_t *idx, int nthreads)
{
#if defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 4
    static int avx512 = -1;
    if (avx512 < 0)
        avx512 = __builtin_cpu_supports("avx512f") ? 1 : 0;
#endif
    const int64_t chunk = 16384;
    const int64_t nchunks = (n + chunk - 1) / chunk;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t s = c * chunk, len = n - s < chunk ? n - s : chunk;
#if defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 4
        if (avx512) {
            lut_bucket_chunk_avx512(in, s, len, thr, nthr, buckets, table, out, idx);
            continue;
        }
#endif
        for (int64_t t = s; t < s + len; t += LP_LUT_TILE) {
            const int64_t m = s + len - t < LP_LUT_TILE ? s + len - t : LP_LUT_TILE;
            lut_bucket_tile_f32(in + t, m, thr, nthr, buckets, table, out ? out + t : 0, idx ? idx + t : 0);
        }
    }
}
#endif

void CAT(lp_lut_, SFX)(const FT *in, int64_t n, const FT *thr, int32_t nthr, const FT *table, FT *out,
                       uint16_t *idx, int nthreads)
{
#if WBITS == 32 && defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 4
    if (lut64_run(in, n, thr, nthr, table, out, idx, nthreads))
        return;
#endif
    const int64_t chunk = 16384;
    const int64_t nchunks = (n + chunk - 1) / chunk;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t s = c * chunk, len = n - s < chunk ? n - s : chunk;
        if (nthr <= LP_LUT_SCAN_MAX)
            CAT(lut_scan_, SFX)(in + s, len, thr, nthr, table, out ? out + s : 0, idx ? idx + s : 0);
        else
            CAT(lut_search_, SFX)(in + s, len, thr, nthr, table, out ? out + s : 0, idx ? idx + s : 0);
    }
}

/* lp_lut_ for each of nrows rows of rowlen elements with the row's own thresholds (thr + r * nthr)
 * and table (table + r * (nthr + 1)): per-channel codebooks in one call (a call per channel from
 * Python cost about 10 us each). The rows share the threads: a parallel loop over (row, chunk). */
void CAT(lp_lut_rows_, SFX)(const FT *in, int64_t nrows, int64_t rowlen, const FT *thr, int32_t nthr,
                            const FT *table, FT *out, uint16_t *idx, int nthreads)
{
    const int64_t chunk = 16384;
    const int64_t per_row = (rowlen + chunk - 1) / chunk, items = nrows * per_row;
    nthreads = lp_team(nrows * rowlen, nthreads);
    LP_PARALLEL_FOR
    for (int64_t t = 0; t < items; t++) {
        const int64_t r = t / per_row, s = (t % per_row) * chunk, len = rowlen - s < chunk ? rowlen - s : chunk;
        const int64_t at = r * rowlen + s;
        const FT *th = thr + r * nthr, *tb = table + r * (nthr + 1);
#if WBITS == 32 && defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 4
        float thr64[64], table64[64];
        if (lut64_pad(th, nthr, tb, thr64, table64)) {
            lut64_chunk_avx512(in + at, len, thr64, table64, out ? out + at : 0, idx ? idx + at : 0, nthr);
            continue;
        }
#endif
        if (nthr <= LP_LUT_SCAN_MAX)
            CAT(lut_scan_, SFX)(in + at, len, th, nthr, tb, out ? out + at : 0, idx ? idx + at : 0);
        else
            CAT(lut_search_, SFX)(in + at, len, th, nthr, tb, out ? out + at : 0, idx ? idx + at : 0);
    }
}

/* One work unit (len <= LP_WORK_UNIT elements, their draws in rnd) of lp_lut_sr_: a function of its own, whose
 * restrict arguments let the loops vectorize (inside the parallel loop's body the pointers were reloaded every
 * element). */
static inline LP_ALWAYS_INLINE void CAT(lut_sr_unit_, SFX)(const FT *restrict x, int64_t len, const uint32_t *restrict rnd,
                                                          uint16_t *restrict codes, const double *restrict book,
                                                          const double *restrict gap, int32_t top,
                                                          const FT *restrict table, FT *restrict out)
{
    int32_t kk[LP_WORK_UNIT]; /* the indices in a local array: no aliasing, the loop vectorizes */
    for (int64_t i = 0; i < len; i++)
        kk[i] = codes[i];
    for (int64_t i = 0; i < len; i++) { /* unconditional gathers and a signed conversion: it vectorizes */
        const int32_t k = kk[i];
        const double xd = (double)x[i], lo = book[k];
        const double r = (double)(int32_t)(rnd[i] ^ 0x80000000u) + 2147483648.0; /* exact */
        const double p = (xd - lo) / gap[k];                                     /* only read where k < top */
        kk[i] = k + ((r < p * 4294967296.0) & (k < top) & (xd > lo));
    }
    for (int64_t i = 0; i < len; i++)
        codes[i] = (uint16_t)kk[i];
    if (out)
        for (int64_t i = 0; i < len; i++) { /* NaN stays NaN: a select, not a branch */
            const FT v = table[kk[i]];
            out[i] = x[i] != x[i] ? x[i] : v;
        }
}

/* Stochastic rounding to a codebook (lowprec.array.codebook's rule): from the index k of the entry
 * below x (codes, in), up to k + 1 where r < (x - lo) / (hi - lo) * 2**32 (float64; r the element's
 * 32-bit Philox draw, laid out as lp_quantize_f32's from counter `offset`) and x > lo (gaps: hi - lo in
 * float64, as the rule computes it, entry by entry; the top entry's is never read); codes receive
 * the chosen index, out (nullable) its table entry (NaN stays NaN). */
LP_CLONES void CAT(lp_lut_sr_, SFX)(const FT *in, int64_t n, uint16_t *codes, const double *cb, const double *gaps,
                                    int32_t entries, const FT *table, FT *out, uint64_t seed, uint64_t offset,
                                    int nthreads)
{
    const int64_t nunits = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nunits; c++) {
        uint32_t rnd[LP_WORK_UNIT];
        const int64_t start = c * LP_WORK_UNIT;
        const int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        philox_fill_best(rnd, LP_WORK_UNIT / 4, seed, offset + (uint64_t)c * (LP_WORK_UNIT / 4));
        CAT(lut_sr_unit_, SFX)(in + start, len, rnd, codes + start, cb, gaps, entries - 1, table,
                               out ? out + start : NULL);
    }
}

#if WBITS == 32 && defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 4
/* lut_sr_unit_'s step for 16 elements (v, the live lanes of x; k the 'down' indices; rnd their draws;
 * lo and ig, per half of 8 lanes, book[k] and the gap's inverse igap[k]): the chosen indices. The
 * step's p * 2**32 = (x - lo) / gap * 2**32 is estimated without a division, as (x - lo) * igap * 2**32:
 * the two differ by at most 3.01 * 2**-53 * 2**32 < 2**-19 (each is within a rounding or two of the
 * exact quotient, at most 1 as lo <= x < hi), so an integer draw r further than 2**-18 from the estimate
 * decides as it would against p; the rest (a draw that near: about one element in 2**31, or a NaN
 * estimate, which a gap outside [2**-1000, 2**1000] forces through a NaN inverse) divide, lane by lane,
 * where x may go up at all. */
__attribute__((target("avx512f"))) static inline LP_ALWAYS_INLINE __m512i lut_sr_step_avx512(
    __m512i k, __m512 v, __mmask16 live, const uint32_t *rnd, const __m512d *lo, const __m512d *ig, int32_t top,
    const float *x, const double *book, const double *gap)
{
    const __m512d two31 = _mm512_set1_pd(2147483648.0), two32 = _mm512_set1_pd(4294967296.0);
    const __m512d lim = _mm512_set1_pd(0x1p-18);
    const __m512i r32 = _mm512_xor_si512(_mm512_maskz_loadu_epi32(live, rnd), _mm512_set1_epi32((int)0x80000000u));
    __mmask8 up[2], near[2], above[2];
    for (int h = 0; h < 2; h++) {
        const __m256 vh = _mm256_castpd_ps(h ? _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)
                                             : _mm512_castpd512_pd256(_mm512_castps_pd(v)));
        const __m256i rh = h ? _mm512_extracti64x4_epi64(r32, 1) : _mm512_castsi512_si256(r32);
        const __m512d xd = _mm512_cvtps_pd(vh);
        const __m512d r = _mm512_add_pd(_mm512_cvtepi32_pd(rh), two31); /* exact */
        const __m512d pp = _mm512_mul_pd(_mm512_mul_pd(_mm512_sub_pd(xd, lo[h]), ig[h]), two32);
        above[h] = _mm512_cmp_pd_mask(xd, lo[h], _CMP_GT_OQ);
        up[h] = _mm512_cmp_pd_mask(r, pp, _CMP_LT_OQ);
        near[h] = _mm512_cmp_pd_mask(_mm512_abs_pd(_mm512_sub_pd(r, pp)), lim, _CMP_NGT_UQ);
    }
    const __mmask16 open = _mm512_kand(_mm512_kunpackb(above[1], above[0]),
                                       _mm512_cmplt_epi32_mask(k, _mm512_set1_epi32(top)));
    const __mmask16 go = _mm512_kand(_mm512_kunpackb(up[1], up[0]), open);
    __mmask16 unsure = _mm512_kand(_mm512_kand(_mm512_kunpackb(near[1], near[0]), open), live);
    __m512i k2 = _mm512_mask_add_epi32(k, go, k, _mm512_set1_epi32(1));
    if (unsure) { /* draws too near to tell: the rule itself */
        int32_t kk[16], k0[16];
        _mm512_storeu_si512((void *)kk, k2);
        _mm512_storeu_si512((void *)k0, k);
        while (unsure) {
            const int l = __builtin_ctz(unsure);
            const double xd = (double)x[l], p = (xd - book[k0[l]]) / gap[k0[l]];
            kk[l] = k0[l] + ((double)rnd[l] < p * 4294967296.0);
            unsure &= (__mmask16)(unsure - 1);
        }
        k2 = _mm512_loadu_si512((const void *)kk);
    }
    return k2;
}

/* LP_PREFETCH_NEXT_PAGE (platform.h) in the loops below: 2.7 -> 1.3 ns an element on a stream of 2**24
 * for the small tables' unit, the speed of cached data */

/* Stochastic rounding of float32 to a codebook of at most 16 entries, the search and the step in one
 * pass, every table in registers (permutes, no gathers): a four-step binary search over the 'down'
 * thresholds NaN-padded to 16 (k = #{j : thr[j] <= x}, the scan's count; NaN passes none), then
 * lut_sr_step_avx512. book16, igap16 and table16 padded to 16 (never selected beyond top). */
__attribute__((target("avx512f"))) static void lut_sr16_unit_avx512(const float *x, int64_t len, const uint32_t *rnd,
                                                                     const float *thr16, const double *book16,
                                                                     const double *igap16, const double *gap,
                                                                     int32_t top, const float *table16, float *out)
{
    const __m512 T = _mm512_loadu_ps(thr16), V = _mm512_loadu_ps(table16);
    const __m512d B0 = _mm512_loadu_pd(book16), B1 = _mm512_loadu_pd(book16 + 8);
    const __m512d G0 = _mm512_loadu_pd(igap16), G1 = _mm512_loadu_pd(igap16 + 8);
    for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 live = len - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (len - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
        LP_PREFETCH_NEXT_PAGE(x + i, out + i)
        const __m512i k = lut_permute_search_avx512(v, &T, 1);
        __m512d lo[2], ig[2];
        for (int h = 0; h < 2; h++) {
            const __m512i k64 = _mm512_cvtepi32_epi64(h ? _mm512_extracti64x4_epi64(k, 1) : _mm512_castsi512_si256(k));
            lo[h] = _mm512_permutex2var_pd(B0, k64, B1);
            ig[h] = _mm512_permutex2var_pd(G0, k64, G1);
        }
        const __m512i k2 = lut_sr_step_avx512(k, v, live, rnd + i, lo, ig, top, x + i, book16, gap);
        const __m512 val = _mm512_permutexvar_ps(k2, V);
        _mm512_mask_storeu_ps(out + i, live, _mm512_mask_mov_ps(val, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v));
    }
}

/* The same for larger tables: the search by the bucket index (lut_bucket_k_avx512), book, igap and
 * table read by gathers */
__attribute__((target("avx512f"))) static void lut_sr_bucket_unit_avx512(const float *x, int64_t len,
                                                                          const uint32_t *rnd, const float *thr,
                                                                          int32_t nthr, const uint64_t *buckets,
                                                                          const double *book, const double *igap,
                                                                          const double *gap, const float *table,
                                                                          float *out)
{
    for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 live = len - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (len - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
        LP_PREFETCH_NEXT_PAGE(x + i, out + i)
        const __m512i k = lut_bucket_k_avx512(x + i, live, v, thr, nthr, buckets);
        __m512d lo[2], ig[2];
        for (int h = 0; h < 2; h++) {
            const __m256i kh = h ? _mm512_extracti64x4_epi64(k, 1) : _mm512_castsi512_si256(k);
            lo[h] = _mm512_i32gather_pd(kh, book, 8);
            ig[h] = _mm512_i32gather_pd(kh, igap, 8);
        }
        const __m512i k2 = lut_sr_step_avx512(k, v, live, rnd + i, lo, ig, nthr, x + i, book, gap);
        const __m512 val = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, k2, table, 4);
        _mm512_mask_storeu_ps(out + i, live, _mm512_mask_mov_ps(val, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v));
    }
}
#endif

#if WBITS == 32
/* lp_lut_sr_f32 with the search fused in (lowprec.h); 0 (nothing done) where the machine or the build
 * lacks AVX-512, or a table of more than 16 entries comes without its bucket index. */
int lp_lut_sr_fused_f32(const float *in, int64_t n, const float *thr, const uint64_t *buckets, const double *cb,
                        const double *gaps, const double *igaps, int32_t entries, const float *table, float *out,
                        uint64_t seed, uint64_t offset, int nthreads)
{
#if defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 4
    if (!__builtin_cpu_supports("avx512f") || entries < 1 || entries > 65536 || (entries > 16 && !buckets))
        return 0;
    float thr16[16], table16[16];
    double book16[16], igap16[16];
    for (int j = 0; j < 16 && entries <= 16; j++) { /* the small tables padded to 16 */
        thr16[j] = j < entries - 1 ? thr[j] : NAN;
        book16[j] = cb[j < entries ? j : entries - 1];
        igap16[j] = j < entries ? igaps[j] : 1.0;
        table16[j] = table[j < entries ? j : entries - 1];
    }
    const int64_t nunits = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nunits; c++) {
        uint32_t rnd[LP_WORK_UNIT];
        const int64_t start = c * LP_WORK_UNIT;
        const int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        philox_fill_best(rnd, LP_WORK_UNIT / 4, seed, offset + (uint64_t)c * (LP_WORK_UNIT / 4));
        if (entries <= 16)
            lut_sr16_unit_avx512(in + start, len, rnd, thr16, book16, igap16, gaps, entries - 1, table16, out + start);
        else
            lut_sr_bucket_unit_avx512(in + start, len, rnd, thr, entries - 1, buckets, cb, igaps, gaps, table,
                                      out + start);
    }
    return 1;
#else
    (void)in, (void)n, (void)thr, (void)buckets, (void)cb, (void)gaps, (void)igaps, (void)entries, (void)table;
    (void)out, (void)seed, (void)offset, (void)nthreads;
    return 0;
#endif
}
#endif
