/* Lookup-table (codebook) quantization, included by quantize.c per input type (FT, SFX as for
 * quantize_impl.h). The Python side turns the sorted codebook and the rounding mode into sorted
 * thresholds t[0..K-2] of the input type: an input x takes index #{j : t[j] <= x}, so every mode is
 * one search. Small tables are scanned (a compare and a select per entry, vectorized across
 * elements); larger ones are searched by a branch-free binary search. NaN stays NaN (index 0). */

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

LP_CLONES static void CAT(lut_search_, SFX)(const FT *in, int64_t n, const FT *thr, int32_t nthr, const FT *table,
                                            FT *out, uint16_t *idx)
{
    for (int64_t i = 0; i < n; i++) {
        FT x = in[i];
        int32_t base = 0, len = nthr;
        while (len > 1) { /* invariant: the answer lies in [base, base + len] */
            int32_t half = len / 2;
            base = thr[base + half - 1] <= x ? base + half : base;
            len -= half;
        }
        int32_t k = base + (len == 1 && thr[base] <= x);
        if (out)
            out[i] = x != x ? x : table[k];
        if (idx)
            idx[i] = (uint16_t)k;
    }
}

void CAT(lp_lut_, SFX)(const FT *in, int64_t n, const FT *thr, int32_t nthr, const FT *table, FT *out,
                       uint16_t *idx, int nthreads)
{
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
