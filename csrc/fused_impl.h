/* Matrix units (tensor cores) as fused multi-term adders: d = a @ b + c, K taken `group` products at a
 * time; per step and output the reference exponent is the largest of the products' exponent sums
 * (operand exponents, a subnormal operand's being its format's minimum) and the accumulator's, and
 * at least the unit's floor ref_min; every
 * product and the accumulator are truncated toward zero to a multiple of 2**(ref - kept_bits); the
 * exact sum of those integers is rounded into the accumulator format (round_one_f64, the step's
 * mode); a sum beyond the accumulator's largest binade is Inf; a zero result is +0. The oracle is
 * lowprec/mma_reference.py. Included by quantize.c after the float64 instantiation.
 *
 * Exact in double: operands are float32 values of at most 24 significant bits, so products are
 * exact; a term is below 2**(kept_bits + 2) units and a step sums at most group + 1 of them, which the
 * Python side keeps below 2**53. Inf and NaN propagate as IEEE sums do. Columns go LP_FUSED_LANES at
 * a time so that the loops vectorize. */

#define LP_FUSED_LANES 16
#define LP_FUSED_ROWS 4
#define LP_FUSED_NONE (-(1 << 24)) /* the exponent of a zero: below every real one */

/* floor(log2 |x|) of a float32 pattern, at least emin; LP_FUSED_NONE for zero */
static int32_t lp_fused_exponent(float x, int32_t emin)
{
    uint32_t bits = to_bits_f32(x) & 0x7FFFFFFFu;
    if (bits == 0)
        return LP_FUSED_NONE;
    int32_t e = (int32_t)(bits >> 23) - 127;
    if ((bits >> 23) == 0) { /* a float32 subnormal: its leading bit */
        int32_t lead = 22;
        while (!((bits >> lead) & 1))
            lead--;
        e = -149 + lead;
    }
    return e > emin ? e : emin;
}

/* 2**k as a double, for -1022 <= k <= 1023 */
static inline double lp_fused_pow2(int32_t k)
{
    return from_bits_f64((uint64_t)(k + 1023) << 52);
}

/* A step's exact sums into the accumulator format (round_one_f64; fast: the caller has proved every
 * one zero or of a finite magnitude the format's normal range holds); a sum beyond the format's
 * largest binade is Inf, whatever the rounding; a zero result is +0. */
static inline LP_ALWAYS_INLINE void lp_fused_round(const double *exact, double *acc, const lp_qparams *p,
                                                   const int mode, const int fast, double overflow)
{
    for (int64_t t = 0; t < LP_FUSED_LANES; t++) {
        double v = from_bits_f64(round_one_f64(to_bits_f64(exact[t]), p, mode, 0, fast, 0));
        v = (exact[t] >= overflow) ? __builtin_inf() : ((exact[t] <= -overflow) ? -__builtin_inf() : v);
        acc[t] = v + 0.0;
    }
}

/* Rows i0 .. i0 + R - 1 and LP_FUSED_LANES columns from j0 (R a constant: the rows share each step's
 * loads and conversions of b); full (a constant): every lane a real column, so the loops read without
 * a per-lane test and vectorize (with the tests GCC unrolled them lane by lane). */
static inline LP_ALWAYS_INLINE void lp_fused_tile_body(const float *a, const float *b, const float *c, double *out,
                                                       const int32_t *ea, const int32_t *eb, int64_t i0, int64_t j0,
                                                       int64_t k, int64_t n, const lp_fusedparams *fp, const int R,
                                                       const int full)
{
    double acc[LP_FUSED_ROWS][LP_FUSED_LANES], sum[LP_FUSED_ROWS][LP_FUSED_LANES];
    double scale[LP_FUSED_ROWS][LP_FUSED_LANES], unscale[LP_FUSED_ROWS][LP_FUSED_LANES];
    int32_t ref[LP_FUSED_ROWS][LP_FUSED_LANES];
    const int64_t lanes = full ? LP_FUSED_LANES : (n - j0 < LP_FUSED_LANES ? n - j0 : LP_FUSED_LANES);
    const double overflow = lp_fused_pow2(fp->acc_emax + 1);
    const lp_qparams accp = *fp->acc; /* a local copy: fields the compiler knows cannot change */
    for (int r = 0; r < R; r++)
        for (int64_t t = 0; t < LP_FUSED_LANES; t++)
            acc[r][t] = (c != NULL && t < lanes) ? (double)c[(i0 + r) * n + j0 + t] : 0.0;
    for (int64_t g0 = 0; g0 < k; g0 += fp->group) {
        const int64_t g1 = g0 + fp->group < k ? g0 + fp->group : k;
        for (int r = 0; r < R; r++)
            for (int64_t t = 0; t < LP_FUSED_LANES; t++) { /* the accumulator's exponent */
                uint64_t bits = to_bits_f64(acc[r][t]) & 0x7FFFFFFFFFFFFFFFull;
                const int32_t e = bits ? (int32_t)(bits >> 52) - 1023 : 2 * LP_FUSED_NONE;
                ref[r][t] = e > fp->ref_min ? e : fp->ref_min; /* the unit's floor, if any */
            }
        for (int64_t kk = g0; kk < g1; kk++) {
            const int32_t *e_b = eb + kk * n + j0;
            int32_t eb_row[LP_FUSED_LANES];
            for (int64_t t = 0; t < LP_FUSED_LANES; t++)
                eb_row[t] = (full || t < lanes) ? e_b[t] : LP_FUSED_NONE;
            for (int r = 0; r < R; r++) {
                const int32_t e_a = ea[(i0 + r) * k + kk];
                LP_VECTOR_LOOP
                for (int64_t t = 0; t < LP_FUSED_LANES; t++) {
                    int32_t e = e_a + eb_row[t];
                    ref[r][t] = e > ref[r][t] ? e : ref[r][t];
                }
            }
        }
        for (int r = 0; r < R; r++)
            for (int64_t t = 0; t < LP_FUSED_LANES; t++) { /* no nonzero term: nothing to add */
                int32_t shift = ref[r][t] > LP_FUSED_NONE / 2 ? fp->kept_bits - ref[r][t] : 0;
                scale[r][t] = lp_fused_pow2(shift);
                unscale[r][t] = lp_fused_pow2(-shift);
                sum[r][t] = __builtin_trunc(acc[r][t] * scale[r][t]);
            }
        for (int64_t kk = g0; kk < g1; kk++) {
            const float *brow = b + kk * n + j0;
            double bd[LP_FUSED_LANES];
            for (int64_t t = 0; t < LP_FUSED_LANES; t++)
                bd[t] = (double)((full || t < lanes) ? brow[t] : 0.0f);
            for (int r = 0; r < R; r++) {
                const double x = (double)a[(i0 + r) * k + kk];
                LP_VECTOR_LOOP
                for (int64_t t = 0; t < LP_FUSED_LANES; t++) {
                    double p = x * bd[t];
                    sum[r][t] += __builtin_trunc(p * scale[r][t]);
                }
            }
        }
        for (int r = 0; r < R; r++) {
            double exact[LP_FUSED_LANES];
            int64_t normal = fp->fast_min > 0; /* every lane's sum 0 or of a finite normal magnitude */
            for (int64_t t = 0; t < LP_FUSED_LANES; t++) {
                exact[t] = sum[r][t] * unscale[r][t];
                const double mag = exact[t] < 0 ? -exact[t] : exact[t];
                normal &= ((mag >= fp->fast_min) & (mag < overflow)) | (exact[t] == 0);
            }
            /* a matmul's usual steps: the rounding's fast form with its mode a constant (it vectorizes) */
            if (normal && fp->mode == LP_TOWARD_ZERO)
                lp_fused_round(exact, acc[r], &accp, LP_TOWARD_ZERO, 1, overflow);
            else if (normal)
                lp_fused_round(exact, acc[r], &accp, LP_NEAREST_EVEN, 1, overflow);
            else
                lp_fused_round(exact, acc[r], &accp, fp->mode, 0, overflow);
        }
    }
    for (int r = 0; r < R; r++)
        for (int64_t t = 0; t < lanes; t++)
            out[(i0 + r) * n + j0 + t] = acc[r][t];
}

/* rows i0 .. i0 + rows - 1 (rows <= LP_FUSED_ROWS) of the strip from j0 */
LP_CLONES static void lp_fused_tile(const float *a, const float *b, const float *c, double *out, const int32_t *ea,
                                    const int32_t *eb, int64_t i0, int64_t rows, int64_t j0, int64_t k, int64_t n,
                                    const lp_fusedparams *fp)
{
    const int full = n - j0 >= LP_FUSED_LANES;
    if (rows == LP_FUSED_ROWS && full)
        lp_fused_tile_body(a, b, c, out, ea, eb, i0, j0, k, n, fp, LP_FUSED_ROWS, 1);
    else if (rows == LP_FUSED_ROWS)
        lp_fused_tile_body(a, b, c, out, ea, eb, i0, j0, k, n, fp, LP_FUSED_ROWS, 0);
    else
        for (int64_t i = i0; i < i0 + rows; i++) {
            if (full)
                lp_fused_tile_body(a, b, c, out, ea, eb, i, j0, k, n, fp, 1, 1);
            else
                lp_fused_tile_body(a, b, c, out, ea, eb, i, j0, k, n, fp, 1, 0);
        }
}

int lp_fused_matmul(const float *a, const float *b, const float *c, double *out, int64_t m, int64_t k, int64_t n,
                    const lp_fusedparams *fp, int nthreads)
{
    if (fp->group < 1 || fp->kept_bits < 1 || fp->kept_bits > 45 || fp->mode == LP_STOCHASTIC || !(fp->fast_min >= 0) ||
        (fp->ref_min != 2 * LP_FUSED_NONE && (fp->ref_min < -512 || fp->ref_min > 512)))
        return -1;
    int32_t *ea = malloc(sizeof(int32_t) * (size_t)(m * k + 1));
    int32_t *eb = malloc(sizeof(int32_t) * (size_t)(k * n + 1));
    if (ea == NULL || eb == NULL) {
        free(ea);
        free(eb);
        return -2;
    }
    for (int64_t x = 0; x < m * k; x++)
        ea[x] = lp_fused_exponent(a[x], fp->a_emin);
    for (int64_t x = 0; x < k * n; x++)
        eb[x] = lp_fused_exponent(b[x], fp->b_emin);
    const int64_t tiles = (n + LP_FUSED_LANES - 1) / LP_FUSED_LANES;
    const int64_t blocks = (m + LP_FUSED_ROWS - 1) / LP_FUSED_ROWS;
    const int64_t work = blocks * tiles;
    nthreads = lp_team(m * n * (k + 1), nthreads);
    /* a column strip's row blocks one after another: the strip of b and its exponents (8 bytes x k x
       16 columns) stay in the cache for every row, where row by row they came from memory each time */
    LP_PARALLEL_FOR
    for (int64_t w = 0; w < work; w++) {
        const int64_t i0 = (w % blocks) * LP_FUSED_ROWS;
        lp_fused_tile(a, b, c, out, ea, eb, i0, m - i0 < LP_FUSED_ROWS ? m - i0 : LP_FUSED_ROWS,
                      (w / blocks) * LP_FUSED_LANES, k, n, fp);
    }
    free(ea);
    free(eb);
    return 0;
}

#undef LP_FUSED_LANES
#undef LP_FUSED_ROWS
#undef LP_FUSED_NONE
