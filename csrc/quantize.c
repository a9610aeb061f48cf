/* lowprec C core: quantization of binary32/binary64 arrays to any float or fixed-point format,
 * every rounding mode, and the Philox4x32-10 counter-based generator behind stochastic rounding. */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "lowprec.h"

#if defined(__GNUC__)
#define LP_ALWAYS_INLINE __attribute__((always_inline))
#else
#define LP_ALWAYS_INLINE
#endif

/* Runtime dispatch: x86-64 builds carry an AVX2 and an AVX-512 clone of the hot loops next to the
 * baseline one; the loader picks by CPU. Elsewhere the baseline (e.g. NEON on aarch64) is used. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(LP_NO_CLONES)
#define LP_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define LP_CLONES
#endif

/* Philox4x32-10 (Salmon et al., SC'11), key = seed, counters (ctr0 + j, 0) for j < nctr, written
 * word-major: out[w * nctr + j] is word w of counter j (so the loop vectorizes across counters). */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline LP_ALWAYS_INLINE void philox_fill(uint32_t *out, int64_t nctr, uint64_t seed, uint64_t ctr0)
{
    for (int64_t j = 0; j < nctr; j++) {
        uint64_t c = ctr0 + (uint64_t)j;
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

void lp_philox_words(uint32_t *out, int64_t nctr, uint64_t seed, uint64_t offset)
{
    philox_fill(out, nctr, seed, offset);
}

int lp_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

#define UT uint32_t
#define FT float
#define MANT 23
#define WBITS 32
#define PER_CTR 4
#define SFX f32
#include "quantize_impl.h"
#undef UT
#undef FT
#undef MANT
#undef WBITS
#undef PER_CTR
#undef SFX

#define UT uint64_t
#define FT double
#define MANT 52
#define WBITS 64
#define PER_CTR 2
#define SFX f64
#include "quantize_impl.h"
