/* Binary and ternary quantization (lowprec.array.scaled's rules, in double as there), included by
 * quantize.c per input type (FT, SFX, WBITS). Parameters per tensor (one entry) or per channel: the
 * channel of element i of a contiguous array is (i / inner) % channels. NaN stays NaN.
 *
 * Binary: +-alpha by the sign (x >= 0: +alpha), or BinaryConnect's stochastic rounding: +alpha with
 * probability clip((x / alpha + 1) / 2, 0, 1), against a 32-bit Philox draw per element laid out as
 * lp_quantize_f32's (word-major within each 1024-element unit, counters from `offset`).
 * Ternary: +w_p above delta, -w_n below -delta, else 0. */

/* len elements: one channel's parameters (pe 0, a constant after inlining) or each element's (pe 1:
 * channels of short runs), the values selected among ones converted to FT first ((FT)-a is -(FT)a)
 * and every branch a select, so that the loops vectorize (GCC does not if-convert a conversion inside
 * a conditional) */
static inline LP_ALWAYS_INLINE void CAT(binary_run_, SFX)(const FT *in, FT *out, int64_t len, const double *al,
                                                           const uint32_t *rnd, const int pe)
{
    const double a0 = al[0]; /* a local: stores to out (double for float64 input) cannot change it */
    if (rnd) {
        for (int64_t i = 0; i < len; i++) {
            const double a = pe ? al[i] : a0;
            const FT plus = (FT)a, minus = (FT)-a;
            const FT xf = in[i];
            const double x = (double)xf;
            double p = (x / a + 1.0) / 2.0;
            p = p < 0.0 ? 0.0 : p;
            p = p > 1.0 ? 1.0 : p;
            const FT v = (double)rnd[i] * (1.0 / 4294967296.0) < p ? plus : minus;
            out[i] = xf != xf ? xf : v;
        }
    } else {
        for (int64_t i = 0; i < len; i++) {
            const double a = pe ? al[i] : a0;
            const FT plus = (FT)a, minus = (FT)-a;
            const FT xf = in[i];
            const FT v = xf >= 0 ? plus : minus;
            out[i] = xf != xf ? xf : v;
        }
    }
}

static inline LP_ALWAYS_INLINE void CAT(ternary_run_, SFX)(const FT *in, FT *out, int64_t len, const double *wp,
                                                            const double *wn, const double *dl, const int pe)
{
    const double p0 = wp[0], n0 = wn[0], d0 = dl[0]; /* locals, as binary_run_'s */
    for (int64_t i = 0; i < len; i++) {
        const double delta = pe ? dl[i] : d0;
        const FT up = (FT)(pe ? wp[i] : p0), down = (FT)-(pe ? wn[i] : n0);
        const FT xf = in[i];
        const double x = (double)xf;
        FT v = x > delta ? up : (FT)0;
        v = x < -delta ? down : v;
        out[i] = xf != xf ? xf : v;
    }
}

LP_CLONES void CAT(lp_binary_, SFX)(const FT *in, FT *out, int64_t n, const double *alpha, int64_t channels,
                                    int64_t inner, int stochastic, uint64_t seed, uint64_t offset, int nthreads)
{
    const int64_t nchunks = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nchunks; c++) {
        uint32_t rnd[LP_WORK_UNIT];
        const int64_t start = c * LP_WORK_UNIT;
        const int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        if (stochastic)
            philox_fill_best(rnd, LP_WORK_UNIT / 4, seed, offset + (uint64_t)c * (LP_WORK_UNIT / 4));
        if (channels > 1 && inner < LP_SHORT_RUN) { /* short runs: each element's alpha */
            double al[LP_WORK_UNIT];
            lp_channel_fill(al, alpha, start, len, inner, channels);
            CAT(binary_run_, SFX)(in + start, out + start, len, al, stochastic ? rnd : NULL, 1);
            continue;
        }
#define LP_BINARY_RUN(s, l, ch) CAT(binary_run_, SFX)(in + start + (s), out + start + (s), (l), alpha + (ch), \
                                                      stochastic ? rnd + (s) : NULL, 0)
        LP_CHANNEL_RUNS(start, len, inner, channels, LP_BINARY_RUN)
#undef LP_BINARY_RUN
    }
}

LP_CLONES void CAT(lp_ternary_, SFX)(const FT *in, FT *out, int64_t n, const double *w_p, const double *w_n,
                                     const double *delta, int64_t channels, int64_t inner, int nthreads)
{
    const int64_t nchunks = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t start = c * LP_WORK_UNIT;
        const int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        if (channels > 1 && inner < LP_SHORT_RUN) { /* short runs: each element's parameters */
            double wp[LP_WORK_UNIT], wn[LP_WORK_UNIT], dl[LP_WORK_UNIT];
            lp_channel_fill(wp, w_p, start, len, inner, channels);
            lp_channel_fill(wn, w_n, start, len, inner, channels);
            lp_channel_fill(dl, delta, start, len, inner, channels);
            CAT(ternary_run_, SFX)(in + start, out + start, len, wp, wn, dl, 1);
            continue;
        }
#define LP_TERNARY_RUN(s, l, ch) CAT(ternary_run_, SFX)(in + start + (s), out + start + (s), (l), w_p + (ch), \
                                                       w_n + (ch), delta + (ch), 0)
        LP_CHANNEL_RUNS(start, len, inner, channels, LP_TERNARY_RUN)
#undef LP_TERNARY_RUN
    }
}

