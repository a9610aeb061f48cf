/* The Philox4x32-10 counter-based generator behind stochastic rounding (portable, and an AVX2 twin
 * chosen at run time with the same output). Included once, by quantize.c, after platform.h. */
#ifndef LP_PHILOX_H
#define LP_PHILOX_H

/* Philox4x32-10 (Salmon et al., SC'11), key = seed, counters (ctr0 + j, 0) for j < nctr, written
 * word-major: out[w * nctr + j] is word w of counter j (so the loop vectorizes across counters).
 * The *_at variants take the counters from an array instead: counter j is (ctrs[j], 0). */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline LP_ALWAYS_INLINE void philox_fill_at(uint32_t *out, int64_t nctr, uint64_t seed, uint64_t ctr0,
                                                    const uint64_t *ctrs)
{
    for (int64_t j = 0; j < nctr; j++) {
        uint64_t c = ctrs ? ctrs[j] : ctr0 + (uint64_t)j;
        uint32_t c0 = (uint32_t)c, c1 = (uint32_t)(c >> 32), c2 = 0, c3 = 0;
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
        for (int r = 0; r < 10; r++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
            uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
            c1 = (uint32_t)p1;
            c3 = (uint32_t)p0;
            c0 = n0;
            c2 = n2;
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        out[j] = c0;
        out[nctr + j] = c1;
        out[2 * nctr + j] = c2;
        out[3 * nctr + j] = c3;
    }
}

static inline LP_ALWAYS_INLINE void philox_fill(uint32_t *out, int64_t nctr, uint64_t seed, uint64_t ctr0)
{
    philox_fill_at(out, nctr, seed, ctr0, NULL);
}

#ifdef LP_X86_DISPATCH
/* The same stream with AVX2. Each 32-bit state word of a counter lives in a 64-bit lane, so one
 * vpmuludq gives the whole 32 x 32 -> 64-bit product (high half by a shift, low half in place; the
 * upper halves of the lanes carry junk that vpmuludq never reads). Vector v of a pair holds counters
 * first + 2l + v in lane l, so packing the pair gives 8 consecutive counters. One pair (8 counters)
 * is in flight: its state and constants fit the 16 registers (with 4 or 8 vectors in flight the state
 * spilled to the stack: 0.62 -> 0.56 ns a word on Zen 4; 0.67 -> 0.86 with 4 on Zen 3). */

/* The ten rounds on the pair c[0], c[1] (a counter a 64-bit lane), packed: out[w] holds word w of the
 * 8 counters, in counter order. */
__attribute__((target("avx2"))) static inline LP_ALWAYS_INLINE void philox_rounds_avx2(const __m256i *c, uint64_t seed,
                                                                                       __m256i *out)
{
    const __m256i m0 = _mm256_set1_epi64x(PHILOX_M0), m1 = _mm256_set1_epi64x(PHILOX_M1);
    __m256i c0[2], c1[2], c2[2], c3[2];
    for (int v = 0; v < 2; v++) {
        c0[v] = c[v];
        c1[v] = _mm256_srli_epi64(c[v], 32);
        c2[v] = c3[v] = _mm256_setzero_si256();
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        const __m256i key0 = _mm256_set1_epi64x(k0), key1 = _mm256_set1_epi64x(k1);
        for (int v = 0; v < 2; v++) {
            __m256i p0 = _mm256_mul_epu32(c0[v], m0), p1 = _mm256_mul_epu32(c2[v], m1);
            c0[v] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1[v]), key0);
            c2[v] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3[v]), key1);
            c1[v] = p1;
            c3[v] = p0;
        }
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
#define LP_PACK(c) _mm256_blend_epi32(c[0], _mm256_slli_epi64(c[1], 32), 0xAA)
    out[0] = LP_PACK(c0);
    out[1] = LP_PACK(c1);
    out[2] = LP_PACK(c2);
    out[3] = LP_PACK(c3);
#undef LP_PACK
}

/* philox_rounds_avx2's pair for the 8 consecutive counters from `first`. */
__attribute__((target("avx2"))) static inline LP_ALWAYS_INLINE void philox_counters_avx2(uint64_t first, __m256i *c)
{
    const __m256i lanes = _mm256_setr_epi64x(0, 2, 4, 6);
    c[0] = _mm256_add_epi64(_mm256_set1_epi64x((long long)first), lanes);
    c[1] = _mm256_add_epi64(_mm256_set1_epi64x((long long)(first + 1)), lanes);
}

__attribute__((target("avx2"))) static void philox_fill_avx2(uint32_t *out, int64_t nctr, uint64_t seed,
                                                              uint64_t ctr0, const uint64_t *ctrs)
{
    int64_t j = 0;
    for (; j + 8 <= nctr; j += 8) {
        __m256i c[2], w[4];
        if (ctrs) { /* counters j + 2l (+ 1) of the array: the even or odd ones of eight */
            const __m256i lo = _mm256_loadu_si256((const __m256i *)(ctrs + j)),
                          hi = _mm256_loadu_si256((const __m256i *)(ctrs + j + 4));
            c[0] = _mm256_permute4x64_epi64(_mm256_unpacklo_epi64(lo, hi), 0xD8);
            c[1] = _mm256_permute4x64_epi64(_mm256_unpackhi_epi64(lo, hi), 0xD8);
        } else {
            philox_counters_avx2(ctr0 + (uint64_t)j, c);
        }
        philox_rounds_avx2(c, seed, w);
        for (int k = 0; k < 4; k++)
            _mm256_storeu_si256((__m256i *)(out + k * nctr + j), w[k]);
    }
    if (j < nctr) { /* a ragged end: the portable loop, into a scratch block laid out the same way */
        uint32_t tail[4 * 8];
        int64_t rest = nctr - j;
        philox_fill_at(tail, rest, seed, ctr0 + (uint64_t)j, ctrs ? ctrs + j : NULL);
        for (int w = 0; w < 4; w++)
            memcpy(out + w * nctr + j, tail + w * rest, (size_t)rest * sizeof(uint32_t));
    }
}
#endif

#if defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 4
/* The AVX2 routine on 512-bit vectors: 8 counters a vector, vector v of a group holding counters
 * first + 2l + (v & 1) in lane l, so a packed pair holds 16 consecutive counters. Four vectors are in
 * flight, all in registers (eight spilled: 0.54 -> 0.36 ns a word on Zen 4). */
#define LP_PHILOX_VECS512 4

/* The ten rounds on LP_PHILOX_VECS512 vectors of counters c[v] (a counter a 64-bit lane), packed:
 * out[4 (v / 2) + w] holds word w of the 16 counters of vectors v and v + 1, in counter order. */
__attribute__((target("avx512f"))) static inline LP_ALWAYS_INLINE void philox_rounds_avx512(const __m512i *c,
                                                                                           uint64_t seed,
                                                                                           __m512i *out)
{
    const __m512i m0 = _mm512_set1_epi64(PHILOX_M0), m1 = _mm512_set1_epi64(PHILOX_M1);
    __m512i c0[LP_PHILOX_VECS512], c1[LP_PHILOX_VECS512], c2[LP_PHILOX_VECS512], c3[LP_PHILOX_VECS512];
    for (int v = 0; v < LP_PHILOX_VECS512; v++) {
        c0[v] = c[v];
        c1[v] = _mm512_srli_epi64(c[v], 32);
        c2[v] = c3[v] = _mm512_setzero_si512();
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        const __m512i key0 = _mm512_set1_epi64(k0), key1 = _mm512_set1_epi64(k1);
        for (int v = 0; v < LP_PHILOX_VECS512; v++) {
            /* the high halves moved down by a shuffle (port 5, beside the multiplies on port 0) and
               the three-way XORs as one vpternlog each: 0.35 -> 0.32 ns a word here */
            __m512i p0 = _mm512_mul_epu32(c0[v], m0), p1 = _mm512_mul_epu32(c2[v], m1);
            c0[v] = _mm512_ternarylogic_epi64(_mm512_shuffle_epi32(p1, (_MM_PERM_ENUM)0xB1), c1[v], key0, 0x96);
            c2[v] = _mm512_ternarylogic_epi64(_mm512_shuffle_epi32(p0, (_MM_PERM_ENUM)0xB1), c3[v], key1, 0x96);
            c1[v] = p1;
            c3[v] = p0;
        }
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    for (int v = 0; v < LP_PHILOX_VECS512; v += 2) {
#define LP_PACK(c) _mm512_mask_blend_epi32((__mmask16)0xAAAA, c[v], _mm512_slli_epi64(c[v + 1], 32))
        out[2 * v] = LP_PACK(c0);
        out[2 * v + 1] = LP_PACK(c1);
        out[2 * v + 2] = LP_PACK(c2);
        out[2 * v + 3] = LP_PACK(c3);
#undef LP_PACK
    }
}

/* philox_rounds_avx512's counter vectors for the 32 consecutive counters from `first`: vector v holds
 * first + 16 (v / 2) + 2l + (v & 1) in lane l. */
__attribute__((target("avx512f"))) static inline LP_ALWAYS_INLINE void philox_counters_avx512(uint64_t first,
                                                                                             __m512i *c)
{
    const __m512i lanes = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    for (int v = 0; v < LP_PHILOX_VECS512; v++)
        c[v] = _mm512_add_epi64(_mm512_set1_epi64((long long)(first + (uint64_t)(16 * (v / 2) + (v & 1)))), lanes);
}

__attribute__((target("avx512f"))) static void philox_fill_avx512(uint32_t *out, int64_t nctr, uint64_t seed,
                                                                   uint64_t ctr0, const uint64_t *ctrs)
{
    const __m512i lanes = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set1_epi64(1);
    const int64_t step = 8 * LP_PHILOX_VECS512;
    int64_t j = 0;
    for (; j + step <= nctr; j += step) {
        __m512i c[LP_PHILOX_VECS512], w[2 * LP_PHILOX_VECS512];
        if (ctrs) { /* counters first + 2l of the array: the even or odd ones of sixteen */
            for (int v = 0; v < LP_PHILOX_VECS512; v++) {
                const uint64_t *at = ctrs + j + 16 * (v / 2);
                c[v] = _mm512_permutex2var_epi64(_mm512_loadu_si512((const void *)at),
                                                 v & 1 ? _mm512_add_epi64(lanes, odd) : lanes,
                                                 _mm512_loadu_si512((const void *)(at + 8)));
            }
        } else {
            philox_counters_avx512(ctr0 + (uint64_t)j, c);
        }
        philox_rounds_avx512(c, seed, w);
        for (int h = 0; h < LP_PHILOX_VECS512 / 2; h++)
            for (int k = 0; k < 4; k++)
                _mm512_storeu_si512((void *)(out + k * nctr + j + 16 * h), w[4 * h + k]);
    }
    if (j < nctr) { /* a ragged end: the portable loop, into a scratch block laid out the same way */
        uint32_t tail[4 * 8 * LP_PHILOX_VECS512];
        int64_t rest = nctr - j;
        philox_fill_at(tail, rest, seed, ctr0 + (uint64_t)j, ctrs ? ctrs + j : NULL);
        for (int w = 0; w < 4; w++)
            memcpy(out + w * nctr + j, tail + w * rest, (size_t)rest * sizeof(uint32_t));
    }
}
#endif

/* philox_fill_at, or its AVX-512 / AVX2 twin where the CPU has them (same output); LP_MAX_ISA (a
 * build setting, lowprec's ISA-path checks) caps the choice. */
static void philox_fill_best_at(uint32_t *out, int64_t nctr, uint64_t seed, uint64_t ctr0, const uint64_t *ctrs)
{
#ifdef LP_X86_DISPATCH
    static int have = -1; /* 2: AVX-512, 1: AVX2, 0: neither */
    if (have < 0)
        have = (LP_MAX_ISA >= 4 && __builtin_cpu_supports("avx512f")) ? 2
               : (LP_MAX_ISA >= 3 && __builtin_cpu_supports("avx2")) ? 1 : 0;
#if LP_MAX_ISA >= 4
    if (have == 2) {
        philox_fill_avx512(out, nctr, seed, ctr0, ctrs);
        return;
    }
#endif
    if (have == 1) {
        philox_fill_avx2(out, nctr, seed, ctr0, ctrs);
        return;
    }
#endif
    philox_fill_at(out, nctr, seed, ctr0, ctrs);
}

static void philox_fill_best(uint32_t *out, int64_t nctr, uint64_t seed, uint64_t ctr0)
{
    philox_fill_best_at(out, nctr, seed, ctr0, NULL);
}

#endif
