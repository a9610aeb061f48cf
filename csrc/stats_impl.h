/* Operand statistics template (lp_operand_stats_SFX): what the MAC's choice of kernel path reads of
 * an operand, in one pass over it (lowprec/mac/operand_stats.py holds the numpy rule it equals).
 * Integer arithmetic on the bit patterns, so that the loops vectorize; the row sums of |x| in double,
 * eight partial sums a row. quantize.c includes it once per working type. */

static inline LP_ALWAYS_INLINE void CAT(stats_row_, SFX)(const FT *x, int64_t cols, UT *sig_or, UT *min_mag,
                                                        UT *max_mag, UT *special, double *abs_sum,
                                                        int64_t *nonzeros, int64_t *col_nonzeros)
{
    const UT exp_mask = ((UT)1 << (WBITS - 1)) - ((UT)1 << MANT), frac_mask = ((UT)1 << MANT) - 1;
    const UT abs_mask = ((UT)1 << (WBITS - 1)) - 1;
    UT o = 0, lo = abs_mask, hi = 0, sp = 0;
    int64_t nz = 0;
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        LP_UNROLL_ALL
        for (int u = 0; u < 8; u++) {
            const FT v = x[j + u];
            part[u] += (double)(v < 0 ? -v : v);
        }
    }
    for (; j < cols; j++) {
        const FT v = x[j];
        part[0] += (double)(v < 0 ? -v : v);
    }
    for (j = 0; j < cols; j++) {
        const UT bits = CAT(to_bits_, SFX)(x[j]), mag = bits & abs_mask, e = bits & exp_mask;
        const UT is_special = (UT)0 - (UT)(e == exp_mask), is_zero = (UT)0 - (UT)(mag == 0);
        o |= (bits & frac_mask) | (e != 0 ? (UT)1 << MANT : 0);
        sp |= is_special;
        const UT finite_mag = mag & ~is_special; /* Inf and NaN count in neither extreme */
        hi = finite_mag > hi ? finite_mag : hi;
        const UT for_min = finite_mag | is_zero | is_special; /* zero and specials: all ones, never least */
        lo = for_min < lo ? for_min : lo;
        nz += mag != 0 ? 1 : 0;
        col_nonzeros[j] += mag != 0 ? 1 : 0;
    }
    *sig_or |= o;
    *min_mag = lo < *min_mag ? lo : *min_mag;
    *max_mag = hi > *max_mag ? hi : *max_mag;
    *special |= sp;
    *abs_sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    *nonzeros = nz;
}

/* (cloned per instruction set as the MAC kernels are: the pass is on every MAC call's path) */
MAC_CLONES int CAT(lp_operand_stats_, SFX)(const FT *x, int64_t rows, int64_t cols, int64_t ld, lp_opstats *st,
                                           double *row_abs_sums, int64_t *row_nonzeros, int64_t *col_nonzeros)
{
    if (rows < 0 || cols < 0 || !st || !row_abs_sums || !row_nonzeros || !col_nonzeros)
        return -1;
    const UT none = ((UT)1 << (WBITS - 1)) - 1; /* the least magnitude while no finite nonzero is seen */
    UT sig_or = 0, lo = none, hi = 0, special = 0;
    for (int64_t i = 0; i < rows; i++) {
        double sum;
        int64_t nz;
        CAT(stats_row_, SFX)(x + i * ld, cols, &sig_or, &lo, &hi, &special, &sum, &nz, col_nonzeros);
        row_abs_sums[i] += sum;
        row_nonzeros[i] += nz;
    }
    st->finite = st->finite && special == 0;
    st->sig_or |= sig_or;
    const double top = (double)CAT(from_bits_, SFX)(hi);
    st->max_abs = top > st->max_abs ? top : st->max_abs;
    if (lo != none) { /* a finite nonzero element */
        const double least = (double)CAT(from_bits_, SFX)(lo);
        st->min_nonzero = least < st->min_nonzero ? least : st->min_nonzero;
    }
    return 0;
}
