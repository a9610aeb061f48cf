/* Platform: compiler attributes, the x86-64 runtime dispatch (AVX2 clones of hot loops), OpenMP
 * thread teams, and the MAC kernel's tile. Included once, by quantize.c. */
#ifndef LP_PLATFORM_H
#define LP_PLATFORM_H
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* the MAC kernel's tile (mac_impl.h): rows x columns of outputs advanced together */
#define LP_MAC_TILE_ROWS 8
#define LP_MAC_TILE_COLS 16
#if defined(__x86_64__) && defined(__GNUC__) && !defined(LP_NO_DISPATCH)
#include <immintrin.h>
#define LP_X86_DISPATCH 1
#endif

/* Before a loop over a small constant count of lanes: GCC would unroll it completely, lane by lane in
 * scalar code, before its vectorizer saw the loop (csrc/fused_impl.h's tile ran so). */
#if defined(__GNUC__)
#define LP_VECTOR_LOOP _Pragma("GCC unroll 1")
#else
#define LP_VECTOR_LOOP
#endif

/* The team for a loop over n elements: one thread below 65536 elements (not worth a team). */
static inline int lp_team(int64_t n, int nthreads)
{
    return (nthreads < 1 || n < 65536) ? 1 : nthreads;
}

/* A parallel loop over chunks, `nthreads` threads, static schedule (results never depend on it). */
#ifdef _OPENMP
#define LP_PARALLEL_FOR _Pragma("omp parallel for num_threads(nthreads) schedule(static)")
#else
#define LP_PARALLEL_FOR
#endif

/* The elements [start, start + len) of a contiguous array whose element i is in channel
 * (i / inner) % channels, in runs of one channel each: calls RUN(offset in the span, its length,
 * channel). One division for the first run; the next runs are `inner` long and step the channel
 * (a division per run had cost about 9 ns an element where each element is its own channel). */
#define LP_CHANNEL_RUNS(start, len, inner, channels, RUN)                                           \
    {                                                                                               \
        const int64_t q_ = (channels) == 1 ? 0 : (start) / (inner);                                 \
        int64_t ch_ = (channels) == 1 ? 0 : q_ % (channels);                                        \
        int64_t e_ = (channels) == 1 ? (len) : (q_ + 1) * (inner) - (start);                        \
        for (int64_t s_ = 0; s_ < (len);) {                                                         \
            const int64_t end_ = e_ < (len) ? e_ : (len);                                           \
            RUN(s_, end_ - s_, ch_);                                                                \
            s_ = end_;                                                                              \
            e_ += (inner);                                                                          \
            ch_ = ch_ + 1 == (channels) ? 0 : ch_ + 1;                                              \
        }                                                                                           \
    }

/* The cache lines of a stream's input and output one page (4 KiB of float32) ahead: hardware
 * prefetchers stop at a page boundary; a prefetch never faults past the end. */
#define LP_PREFETCH_NEXT_PAGE(in, out)          \
    {                                           \
        __builtin_prefetch((in) + 1024, 0, 3);  \
        __builtin_prefetch((out) + 1024, 1, 3); \
    }

/* Runs shorter than this take per-element parameters (LP_CHANNEL_FILL) instead of a loop per run. */
enum { LP_SHORT_RUN = 64 };

/* dst[i] = src[channel of element start + i] as a double, for i < len (channels as LP_CHANNEL_RUNS'),
 * one division in all: each element its own channel (inner 1) copies slices of src, wrapping at
 * `channels` (the loops vectorize); else runs of one value. */
#define LP_DEFINE_CHANNEL_FILL(NAME, ST)                                                            \
    static inline void NAME(double *dst, const ST *src, int64_t start, int64_t len, int64_t inner,  \
                            int64_t channels)                                                       \
    {                                                                                               \
        if (inner == 1 && channels > 1) {                                                           \
            int64_t ch = start % channels;                                                          \
            for (int64_t s = 0; s < len;) {                                                         \
                const int64_t m = len - s < channels - ch ? len - s : channels - ch;                \
                for (int64_t j = 0; j < m; j++)                                                     \
                    dst[s + j] = (double)src[ch + j];                                               \
                s += m;                                                                             \
                ch = 0;                                                                             \
            }                                                                                       \
            return;                                                                                 \
        }                                                                                           \
        LP_CHANNEL_RUNS(start, len, inner, channels, LP_FILL_RUN_)                                  \
    }
#define LP_FILL_RUN_(s, l, ch)                                                                      \
    {                                                                                               \
        const double v_ = (double)src[ch];                                                          \
        for (int64_t i_ = (s); i_ < (s) + (l); i_++)                                                \
            dst[i_] = v_;                                                                           \
    }
LP_DEFINE_CHANNEL_FILL(lp_channel_fill, double)
LP_DEFINE_CHANNEL_FILL(lp_channel_fill_i64, int64_t)
#undef LP_FILL_RUN_
#undef LP_DEFINE_CHANNEL_FILL

#if defined(__GNUC__)
#define LP_ALWAYS_INLINE __attribute__((always_inline))
/* before a loop of a small constant trip count: kept a loop, for the loop vectorizer (GCC unrolls it
 * completely first otherwise, and its straight-line vectorizer misses the select chains) */
#define LP_KEEP_LOOP _Pragma("GCC unroll 1")
#define LP_UNROLL_ALL _Pragma("GCC unroll 16") /* a short inner loop unrolled, its lanes the outer loop's */
#else
#define LP_ALWAYS_INLINE
#define LP_KEEP_LOOP
#define LP_UNROLL_ALL
#endif

/* Runtime dispatch: x86-64 builds carry AVX-512 (x86-64-v4) and AVX2 (x86-64-v3) clones of the hot
 * loops next to the baseline one; the loader picks by CPU. Elsewhere the baseline (e.g. NEON on
 * aarch64) is used. LP_MAX_ISA (4, 3 or 0; a build setting) caps the hand-written Philox routines, so
 * that a build for one instruction set alone (LOWPREC_ISA, csrc/build_ffi.py) runs only its path. */
#ifndef LP_MAX_ISA
#define LP_MAX_ISA 4
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(LP_NO_CLONES)
#define LP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LP_CLONES
#endif

#endif
