/* Integer accumulators in float32 lanes (lp_fixed_sums_f32): lowprec/mac/fixed.py's rule for
 * products on the accumulator's grid. Every value is an integer: the caller guarantees that every
 * product, partial sum and out-of-range sum is below 2**24 in magnitude (float32 holds each exactly,
 * so s + a * b is exact however it is evaluated) and, when wrapping, that no product exceeds the span
 * (one step of +-span brings a sum back into range). Each output's steps run in k order; a tile of
 * LP_FIXED_ROWS rows x LP_FIXED_COLS columns advances one k-step at a time, its accumulators and
 * counts in registers. quantize.c includes it once. */

enum { LP_FIXED_ROWS = 6, LP_FIXED_COLS = 8 }; /* 12 of AVX2's 16 registers */

/* s + a * b as one fused multiply-add where the clone has FMA (1.2-1.4x here): the same value, every
 * operation being exact; the build's -ffp-contract=off stays in force everywhere else */
#if defined(__GNUC__) && !defined(__clang__)
#define LP_FIXED_CONTRACT __attribute__((optimize("fp-contract=fast")))
#else
#define LP_FIXED_CONTRACT
#endif

/* Rows i0 .. i0 + R - 1, columns j0 .. j0 + tw - 1 (R, tw constants where the tile is whole). */
static inline LP_ALWAYS_INLINE void lp_fixed_tile(const float *a, const float *b, double *out, int64_t *overflows,
                                                  int64_t i0, int64_t k, int64_t n, int64_t j0, float lo, float hi,
                                                  float span, const int saturate, const int R, const int tw)
{
    float s[LP_FIXED_ROWS][LP_FIXED_COLS];
    /* the steps that stayed in range (at most k < 2**24), counted by integer compares: the floating-
       point pipes have the multiply-add and the clamp */
    int32_t c[LP_FIXED_ROWS][LP_FIXED_COLS];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < tw; j++) {
            s[r][j] = 0.0f;
            c[r][j] = 0;
        }
    for (int64_t t = 0; t < k; t++) {
        const float *brow = b + t * n + j0;
        for (int r = 0; r < R; r++) {
            const float av = a[(i0 + r) * k + t];
            LP_VECTOR_LOOP
            for (int j = 0; j < tw; j++) {
                const float v = s[r][j] + av * brow[j];
                float w;
                if (saturate) {
                    w = v < lo ? lo : v;
                    w = w > hi ? hi : w;
                } else {
                    w = v > hi ? v - span : v;
                    w = v < lo ? v + span : w;
                }
                c[r][j] += to_bits_f32(w) == to_bits_f32(v);
                s[r][j] = w;
            }
        }
    }
    for (int r = 0; r < R; r++) {
        int64_t events = 0;
        for (int j = 0; j < tw; j++) {
            out[(i0 + r) * n + j0 + j] = (double)s[r][j];
            events += k - c[r][j];
        }
        overflows[i0 + r] += events;
    }
}

/* rows i0 .. i0 + R - 1, every column: whole tiles, then the remaining columns */
#define LP_FIXED_ROW_BLOCK(R, SATURATE)                                                             \
    {                                                                                               \
        int64_t j0 = 0;                                                                             \
        for (; j0 + LP_FIXED_COLS <= n; j0 += LP_FIXED_COLS)                                        \
            lp_fixed_tile(a, b, out, overflows, i0, k, n, j0, lo, hi, span, SATURATE, R, LP_FIXED_COLS); \
        if (j0 < n)                                                                                 \
            lp_fixed_tile(a, b, out, overflows, i0, k, n, j0, lo, hi, span, SATURATE, R, (int)(n - j0)); \
    }

LP_CLONES LP_FIXED_CONTRACT static void lp_fixed_rows(const float *a, const float *b, double *out, int64_t *overflows, int64_t i0,
                                    int64_t rows, int64_t k, int64_t n, float lo, float hi, float span, int saturate)
{
    if (rows == LP_FIXED_ROWS && saturate)
        LP_FIXED_ROW_BLOCK(LP_FIXED_ROWS, 1)
    else if (rows == LP_FIXED_ROWS)
        LP_FIXED_ROW_BLOCK(LP_FIXED_ROWS, 0)
    else
        for (int64_t e = i0 + rows; i0 < e; i0++) {
            if (saturate)
                LP_FIXED_ROW_BLOCK(1, 1)
            else
                LP_FIXED_ROW_BLOCK(1, 0)
        }
}
#undef LP_FIXED_ROW_BLOCK

int lp_fixed_sums_f32(const float *a, const float *b, double *out, int64_t *overflows, int64_t m, int64_t k,
                      int64_t n, float lo, float hi, float span, int saturate, int nthreads)
{
    if (m < 0 || k < 0 || n < 0 || k >= ((int64_t)1 << 24) || !(lo <= 0.0f && hi >= 0.0f && span > 0.0f))
        return -1;
    for (int64_t i = 0; i < m; i++)
        overflows[i] = 0;
    nthreads = lp_team(m * n * k, nthreads);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
#endif
    for (int64_t i0 = 0; i0 < m; i0 += LP_FIXED_ROWS)
        lp_fixed_rows(a, b, out, overflows, i0, m - i0 < LP_FIXED_ROWS ? m - i0 : LP_FIXED_ROWS, k, n, lo, hi, span,
                      saturate);
    return 0;
}
