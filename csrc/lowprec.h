/* lowprec C core: the declarations cffi reads (keep this file to plain C declarations).
 *
 * Quantization works on the bit patterns of binary32 / binary64 inputs. One parameter block describes
 * a target format *as seen from one input type* (float32 or float64); Python fills it once per
 * (format, dtype, rounding mode) and caches it. Patterns in the block are magnitudes (sign cleared)
 * unless a name ends in _full. */

typedef struct {
    int32_t drop0;      /* input mantissa bits minus format mantissa bits (may be negative) */
    int32_t sub_exp;    /* biased input exponent of the format's min normal: below it the
                           precision shrinks by one bit per binade (subnormals) */
    uint64_t tiny;      /* magnitudes below this round to 0 or q (no shift fits); 0: no such range */
    uint64_t q;         /* the nonzero result of the tiny range (smallest subnormal or min normal) */
    uint64_t half_q;    /* q / 2, the tie of the tiny range */
    int32_t q_exp;      /* log2(q) */
    uint64_t lim_pos;   /* largest allowed magnitude of a positive result */
    uint64_t lim_neg;   /* largest allowed magnitude of a negative result */
    uint64_t ovf_pos;   /* magnitude written when a positive finite result exceeds lim_pos */
    uint64_t ovf_neg;   /* magnitude written when a negative finite result exceeds lim_neg */
    uint64_t inf_pos_full; /* full pattern written for +Inf input */
    uint64_t inf_neg_full; /* full pattern written for -Inf input */
    uint64_t nan_pos_full; /* full pattern written for a NaN input with sign bit 0 */
    uint64_t nan_neg_full; /* full pattern written for a NaN input with sign bit 1 */
    int32_t keep_neg_zero; /* 0: a zero result is +0 (fnuz, fixed point) */
    uint64_t par_mask;  /* formats without mantissa bits: 1 << input MANT (the code's parity is the
                           exponent's), else 0 */
    uint64_t par_xor;   /* par_mask if the format's and the input's exponent biases differ in parity */
    int32_t rbits;      /* stochastic: random bits per decision, 1..32 (float32) or 1..64 (float64) */
    uint64_t one;       /* 1, as data: GCC does not vectorize a constant shifted by a per-lane count in
                           64-bit lanes, and does a loop-invariant variable (csrc/quantize_impl.h) */
} lp_qparams;

/* Rounding modes (order matters: the Python side uses the same numbers, lowprec.ROUNDING_MODES). */
typedef enum {
    LP_NEAREST_EVEN = 0, /* to nearest, ties to the even code */
    LP_NEAREST_AWAY = 1, /* to nearest, ties away from zero */
    LP_TOWARD_ZERO = 2,  /* truncate */
    LP_UP = 3,           /* toward +Inf */
    LP_DOWN = 4,         /* toward -Inf */
    LP_ODD = 5,          /* truncate, then set the last bit if inexact (no double-rounding error) */
    LP_STOCHASTIC = 6    /* up with probability (x - lower) / spacing, from Philox draws */
} lp_rounding;

/* The work unit: the kernels take elements LP_WORK_UNIT at a time from index 0, and stochastic draws
 * are laid out per unit (below), so that results do not depend on the thread count. Python reads it
 * from here (lowprec._philox). */
enum { LP_WORK_UNIT = 1024 };

/* Stochastic rounding with rbits <= 8 draws a byte an element: a unit takes the first
 * LP_BYTE_DRAW_COUNTERS counters from its base (below), whose 256 words give its 1024 bytes. */
enum { LP_BYTE_DRAW_COUNTERS = 64 }; /* LP_WORK_UNIT / 16: 4 words of 4 bytes a counter */

/* Quantize n contiguous values. Stochastic rounding draws Philox4x32-10 words keyed by `seed`.
 * Elements go in blocks of LP_WORK_UNIT = 1024 from index 0; block b uses the counters
 * offset + b * C + j, j < C, with C = 256 (float32: 4 words a counter, one word an element) or
 * C = 512 (float64: two words an element). In-block element i takes, for float32, word i / 256 of
 * counter j = i % 256; for float64, words 2h (low half) and 2h + 1 (high half), h = i / 512, of
 * counter j = i % 512. With rbits <= 8 element i takes byte i / 256 of word (i % 256) / 64 of counter
 * j = i % 64 (the byte as its draw's top bits). Results therefore do not depend on the thread count.
 * in == out is allowed. */
void lp_quantize_f32(const float *in, float *out, int64_t n, const lp_qparams *p, lp_rounding mode,
                        uint64_t seed, uint64_t offset, int nthreads);
void lp_quantize_f64(const double *in, double *out, int64_t n, const lp_qparams *p, lp_rounding mode,
                        uint64_t seed, uint64_t offset, int nthreads);

/* The raw Philox4x32-10 stream, word-major: out[w * nctr + j] = word w (0..3) of
 * philox(key = seed, counter = (offset + j, 0)). For tests and for reproducing stochastic rounding. */
void lp_philox_words(uint32_t *out, int64_t nctr, uint64_t seed, uint64_t offset);
/* The fused stochastic kernels' quotient (csrc/sr_avx512.h): a[i] / b rounded to odd for magnitudes a
 * (float32's range) and b > 0, into out; 0 (nothing done) where the build or the CPU lacks AVX-512.
 * For tests. */
int lp_odd_quotients_avx512(const double *a, int64_t n, double b, double *out);
/* Their 64-bit draw's decision (lp_sr_up_avx512): up[i] = 1 iff round_half_even(p64[i]) + hi[i] * 2**32 +
 * lo[i] >= 2**64; 0 (nothing done) without AVX-512. For tests. */
int lp_sr_ups_avx512(const double *p64, const uint32_t *lo, const uint32_t *hi, int64_t n, uint8_t *up);

/* float16 (bf16 = 0) or bfloat16 (bf16 = 1) patterns <-> float32 (csrc/half_impl.h): widening exact;
 * narrowing for values the half type holds, Inf and NaN. */
void lp_half_widen(const uint16_t *in, float *out, int64_t n, int bf16);
void lp_half_narrow(const float *in, uint16_t *out, int64_t n, int bf16);

/* A MAC unit: how products and sums are rounded (DESIGN.md section 4). mul may be NULL (exact
 * products); chunk <= 0 means no chunks; every rounding uses `mode`; stochastic draws come from
 * Philox(seed) (see csrc/mac_impl.h), output indices counted from `offset`. */
typedef struct {
    const lp_qparams *mul;
    const lp_qparams *acc;
    const lp_qparams *chunk_acc;
    const lp_qparams *out;
    int64_t chunk;
    lp_rounding mode;
    uint64_t seed;
    uint64_t offset;
    int fast; /* 1: the caller proved that no tiny nonzero value, Inf or NaN can occur: the roundings
                 leave out those rules (deterministic modes; stochastic in the double kernel only) */
    int chunk_native; /* 1: chunk_acc is the working type's own format (IEEE, Inf on overflow) and the
                         mode nearest even: chunk totals are FT's own sums, correctly rounded */
    int acc_native;   /* 1: the same for acc: every accumulation is FT's own sum */
    int acc_fma;      /* 1 (with acc_native, float kernel, no product rounding): products need not be exact in
                         float; each step is float's fused multiply-add, the one rounding of s + a * b */
    int acc_half;     /* 1: acc is IEEE binary16 itself, nearest even, fast set: the float kernel rounds its
                         sums to half precision by bit arithmetic (the same values as the general rule);
                         2: besides, every product has at most 11 significant bits, so float's own sum
                         rounded to half is the correct rounding (see csrc/mac_impl.h) */
    int b_broadcast;  /* 1: B is one row (1 x n) standing for all k rows (a sum's ones: no k-long copy) */
    int exact_sums;   /* 1 (stochastic rounding, fast set, the double kernel): every product, partial sum
                         and chunk total is a multiple of one power of two and below 2**52 of it, so the
                         working type's own sums are exact (no rounding to odd needed); 2: besides,
                         every sum acc rounds is a multiple of 2**-rbits of acc's spacing at it */
    int ops_f32;      /* 1 (the double kernel's fast stochastic variants only; others refuse it): a and b
                         hold float32 values (passed as double pointers), converted as they are read */
    const void *init; /* NULL, or the initial accumulator (D = A @ B + C): m x n in C's layout and the
                         working type; the sum starts from it (the chunk total, when chunking) */
} lp_macparams;

/* C = A @ B for row-major contiguous A (m x k), B (k x n), C (m x n), sequential order (with chunks
 * if mp->chunk > 0), arithmetic in float or double: the caller checks that products are exact in it
 * and that every format is at least two bits narrower (see csrc/mac_impl.h). Unless n < lp_mac_tile(1)
 * (one output at a time), m must be a multiple of lp_mac_tile(0) and n of lp_mac_tile(1) (pad with zeros); output (i, j) draws random bits as output offset + i * ldo + j.
 * Returns 0, -1 for shapes it does not take, -2 when memory runs out (stochastic draw buffers). */
int lp_mac_matmul_f32(const float *a, const float *b, float *c, int64_t m, int64_t k, int64_t n, int64_t ldo,
                      const lp_macparams *mp, int nthreads);
int lp_mac_matmul_f64(const double *a, const double *b, double *c, int64_t m, int64_t k, int64_t n, int64_t ldo,
                      const lp_macparams *mp, int nthreads);

/* Block-scaled quantization with a power-of-two (E8M0) scale per block (see csrc/block_impl.h). */
enum { LP_RULE_FLOOR = 0, LP_RULE_CEIL = 1, LP_RULE_RCEIL = 2, LP_RULE_EVEN = 3 };
enum { LP_E8M0_MIN = -127, LP_E8M0_MAX = 127, LP_E8M0_NAN_EXP = 128 };
typedef struct {
    int64_t block;      /* elements per block */
    int32_t rule;       /* LP_RULE_* */
    int32_t elem_emax;  /* exponent of the element format's largest power of two */
    double elem_max;    /* the element format's largest value */
    int32_t elem_prec;  /* its significand bits after the leading one (rule 'even') */
    int32_t elements;   /* nonzero: out gets the rounded elements, not scaled back (for codes, which
                           must not depend on whether element * 2**e fits the input type) */
} lp_blockparams;

/* Block-scaled quantization of n contiguous elements in blocks of bp->block (the last may be
 * shorter): scale_exp[b] gets block b's exponent, e in [-127, 127], or LP_E8M0_NAN_EXP for a block
 * holding a NaN or an Inf; out = 2**e * round(in * 2**-e) (bp->elements: round(in * 2**-e)) with the element params ep and mode, the
 * stochastic draws laid out as lp_quantize's over the n elements (offset likewise); NaN throughout a
 * NaN-scaled block. in == out is allowed only when bp->block divides 1024. */
void lp_block_quantize_f32(const float *in, float *out, int64_t n, const lp_blockparams *bp, int32_t *scale_exp,
                           const lp_qparams *ep, lp_rounding mode, uint64_t seed, uint64_t offset, int nthreads);
void lp_block_quantize_f64(const double *in, double *out, int64_t n, const lp_blockparams *bp, int32_t *scale_exp,
                           const lp_qparams *ep, lp_rounding mode, uint64_t seed, uint64_t offset, int nthreads);

/* The same rounding (deterministic modes; bp->elements 0) with the blocks down the columns of slabs
 * of b rows by cols (row-major, slab after slab): a block format along an inner axis of an array
 * viewed as (slabs, b, cols), with no axis moved. in == out is allowed. */
void lp_block_cols_f32(const float *in, float *out, int64_t slabs, int64_t b, int64_t cols, const lp_blockparams *bp,
                       const lp_qparams *ep, lp_rounding mode, int nthreads);
void lp_block_cols_f64(const double *in, double *out, int64_t slabs, int64_t b, int64_t cols,
                       const lp_blockparams *bp, const lp_qparams *ep, lp_rounding mode, int nthreads);

/* Codebook (lookup-table) quantization of n contiguous values: index k = #{j < nthr : thr[j] <= x}
 * (thr sorted ascending), out[i] = table[k] (NaN stays NaN), idx[i] = k; out or idx may be NULL.
 * nthr <= 65535. */
void lp_lut_f32(const float *in, int64_t n, const float *thr, int32_t nthr, const float *table, float *out,
                uint16_t *idx, int nthreads);
void lp_lut_f64(const double *in, int64_t n, const double *thr, int32_t nthr, const double *table, double *out,
                uint16_t *idx, int nthreads);
/* lp_lut_ per row: nrows rows of rowlen elements, row r with thresholds thr + r * nthr and table
 * table + r * (nthr + 1) (per-channel codebooks, channel-major). */
void lp_lut_rows_f32(const float *in, int64_t nrows, int64_t rowlen, const float *thr, int32_t nthr,
                     const float *table, float *out, uint16_t *idx, int nthreads);
void lp_lut_rows_f64(const double *in, int64_t nrows, int64_t rowlen, const double *thr, int32_t nthr,
                     const double *table, double *out, uint16_t *idx, int nthreads);
/* Stochastic rounding to a codebook from the index of the entry below each value (see csrc/lut_impl.h):
 * codes in and out, cb the codebook (float64, `entries`), gaps cb[k + 1] - cb[k] (float64, `entries`: the last
 * one any finite value), out (nullable) the chosen entries of table. */
void lp_lut_sr_f32(const float *in, int64_t n, uint16_t *codes, const double *cb, const double *gaps, int32_t entries,
                   const float *table, float *out, uint64_t seed, uint64_t offset, int nthreads);
void lp_lut_sr_f64(const double *in, int64_t n, uint16_t *codes, const double *cb, const double *gaps, int32_t entries,
                   const double *table, double *out, uint64_t seed, uint64_t offset, int nthreads);
/* lp_lut_sr_f32 with the search fused in (float32, AVX-512): thr the 'down' thresholds (entries - 1), buckets
 * their bucket index (lowprec.array.codebook.bucket_index; NULL for at most 16 entries, which need none),
 * cb, gaps and table as lp_lut_sr_f32's, igaps the gaps' inverses (NaN where a gap lies outside
 * [2**-1000, 2**1000]). Returns 0, having done nothing, where the machine or the build lacks AVX-512 or
 * a table of more than 16 entries comes without buckets. */
int lp_lut_sr_fused_f32(const float *in, int64_t n, const float *thr, const uint64_t *buckets, const double *cb,
                        const double *gaps, const double *igaps, int32_t entries, const float *table, float *out,
                        uint64_t seed, uint64_t offset, int nthreads);
/* lp_lut_f32 through a bucket index: buckets[65536], lo | hi << 16 | first threshold's bits << 32 (see
 * csrc/lut_impl.h); same results. */
void lp_lut_bucket_f32(const float *in, int64_t n, const float *thr, int32_t nthr, const uint64_t *buckets,
                       const float *table, float *out, uint16_t *idx, int nthreads);

/* Integer-affine quantization of n contiguous values (see csrc/affine_impl.h): out = (q - zp) * scale,
 * q = clamp(round(x / scale) + zp, qmin, qmax), with ip the parameters of 64-bit integers for mode;
 * scale and zp per tensor (channels = 1) or per channel (element i's channel: (i / inner) % channels).
 * out may be in. */
void lp_affine_f32(const float *in, float *out, int64_t n, const double *scale, const int64_t *zp, int64_t channels,
                   int64_t inner, int64_t qmin, int64_t qmax, const lp_qparams *ip, lp_rounding mode, uint64_t seed,
                   uint64_t offset, int nthreads);
void lp_affine_f64(const double *in, double *out, int64_t n, const double *scale, const int64_t *zp, int64_t channels,
                   int64_t inner, int64_t qmin, int64_t qmax, const lp_qparams *ip, lp_rounding mode, uint64_t seed,
                   uint64_t offset, int nthreads);

/* The element rounding of a deterministic mode as steps (lp_fscale_quantize_f32 below); for stochastic
 * rounding (64 random bits) only steps, neg_zero and code: a float grid, saturating (lp_sr_steps). */
typedef struct {
    int32_t steps;        /* element magnitudes above 0 (1..15) */
    int32_t sym;          /* neg and neg_excl equal pos and pos_excl */
    int32_t neg_zero;     /* a negative input rounding to 0 gives -0 */
    double code[16];      /* the element magnitudes, code[0] = 0 < code[1] < ... < code[steps] */
    double pos[15];       /* a positive quotient q takes at least code[j + 1] where q >= pos[j] ... */
    int32_t pos_excl[15]; /* ... or q > pos[j] where pos_excl[j] */
    double neg[15];       /* the same for the magnitude of a negative quotient */
    int32_t neg_excl[15];
} lp_fscale_steps;

/* Float-scaled block quantization (NVFP4: an element format, a float scale per block, a per-tensor
 * float32 scale g; see csrc/fscale_impl.h) of n elements in the blocked layout (n a multiple of
 * block): out (nullable) the values in the input type, elements (nullable, n) the rounded element
 * values, scales (nullable, n / block) each block's scale (NaN for a block with NaN or Inf). ep: the
 * element format's parameters (float32's for deterministic modes, float64's for stochastic), sp: the
 * saturating scale format's for float32, nearest even. lp_fscale_amax: the largest amax among the
 * blocks without NaN or Inf (0 if none). steps (nullable; deterministic modes, blocks of at least 8):
 * the element rounding as thresholds on the quotient (lowprec.array.block.rounding_steps derives them by
 * probing the element rounding), |x| compared with threshold * scale * g (exact in double): no division;
 * (stochastic, ep's rbits 64) the element grid, the quotient rounded without the core's block routine. */
void lp_fscale_quantize_f32(const float *in, float *out, double *elements, double *scales, int64_t n, int64_t block,
                            const lp_qparams *ep, const lp_qparams *sp, double elem_max, double g, double smallest,
                            lp_rounding mode, uint64_t seed, uint64_t offset, const lp_fscale_steps *steps,
                            int nthreads);
void lp_fscale_quantize_f64(const double *in, double *out, double *elements, double *scales, int64_t n,
                            int64_t block, const lp_qparams *ep, const lp_qparams *sp, double elem_max, double g,
                            double smallest, lp_rounding mode, uint64_t seed, uint64_t offset,
                            const lp_fscale_steps *steps, int nthreads);
double lp_fscale_amax_f32(const float *in, int64_t n, int64_t block);
double lp_fscale_amax_f64(const double *in, int64_t n, int64_t block);

/* Binary and ternary quantization of n contiguous values (see csrc/scaled_impl.h): parameters (double)
 * per tensor (channels = 1) or per channel (element i's channel: (i / inner) % channels); binary's
 * stochastic rounding draws 32 bits per element as lp_quantize_f32 lays them out from offset. */
void lp_binary_f32(const float *in, float *out, int64_t n, const double *alpha, int64_t channels, int64_t inner,
                   int stochastic, uint64_t seed, uint64_t offset, int nthreads);
void lp_binary_f64(const double *in, double *out, int64_t n, const double *alpha, int64_t channels, int64_t inner,
                   int stochastic, uint64_t seed, uint64_t offset, int nthreads);
void lp_ternary_f32(const float *in, float *out, int64_t n, const double *w_p, const double *w_n, const double *delta,
                    int64_t channels, int64_t inner, int nthreads);
void lp_ternary_f64(const double *in, double *out, int64_t n, const double *w_p, const double *w_n,
                    const double *delta, int64_t channels, int64_t inner, int nthreads);

/* The MAC kernel's tile: rows (which = 0) and columns (which = 1). */
/* A matrix unit (tensor core) as a fused multi-term adder (csrc/fused_impl.h): d = a @ b + c with
 * `group` products a step, each term truncated to kept_bits bits below the step's largest exponent,
 * the step's sum rounded into acc (for float64 input) by `mode` (deterministic). a (m x k), b (k x n),
 * c (m x n, or NULL: zeros) float32 row-major; out (m x n) float64. Returns 0, or -1 for bad
 * parameters, -2 when memory runs out. */
typedef struct {
    const lp_qparams *acc; /* the accumulator format, for float64 input */
    int32_t group;         /* products per step */
    int32_t kept_bits;     /* bits kept below the reference exponent */
    lp_rounding mode;      /* a step's sum into acc */
    int32_t acc_emax;      /* sums of magnitude >= 2**(acc_emax + 1) are Inf */
    int32_t a_emin;        /* the operand formats' minimum normal exponents */
    int32_t b_emin;
    double fast_min;       /* > 0: acc's smallest normal magnitude, where sums of at least it (or zero)
                              may take the rounding's fast form; 0: never */
    int32_t ref_min;       /* the reference exponent is at least this (a unit's floor, -512..512; -2**25: none) */
} lp_fusedparams;
int lp_fused_matmul(const float *a, const float *b, const float *c, double *out, int64_t m, int64_t k, int64_t n,
                    const lp_fusedparams *fp, int nthreads);

int lp_mac_tile(int which);

/* What the MAC's choice of kernel path reads of an operand x (rows x cols, row i at x + i * ld, its
 * elements contiguous), in one pass (lowprec/mac/operand_stats.py: the numpy rule), combined into what
 * the arrays and st hold already (so that blocks of an operand add up): finite: no Inf or NaN.
 * min_nonzero, max_abs: the least nonzero and the largest magnitude among finite elements (start
 * them at +Inf and 0). sig_or: the OR over every element of its fraction bits and its implicit bit
 * (1 << mantissa bits where the exponent field is nonzero). Per row: the sum of |x| (double; eight
 * partial sums) and the count of nonzero elements; per column: the count of nonzero elements (NaN is
 * nonzero). Returns 0, or -1 for bad arguments. */
typedef struct {
    int32_t finite;
    double min_nonzero;
    double max_abs;
    uint64_t sig_or;
} lp_opstats;
int lp_operand_stats_f32(const float *x, int64_t rows, int64_t cols, int64_t ld, lp_opstats *st,
                         double *row_abs_sums, int64_t *row_nonzeros, int64_t *col_nonzeros);
int lp_operand_stats_f64(const double *x, int64_t rows, int64_t cols, int64_t ld, lp_opstats *st,
                         double *row_abs_sums, int64_t *row_nonzeros, int64_t *col_nonzeros);

/* Integer sums (lowprec/mac/fixed.py's rule for products on the accumulator's grid), in float32
 * lanes: out[i * n + j] = the sum over t of a[i * k + t] * b[t * n + j] in k order, every step wrapped
 * into [lo, hi] (by one +-span) or saturated (saturate = 1), overflows[i] = row i's out-of-range
 * steps. The caller guarantees integers whose products, partial sums and out-of-range sums are below
 * 2**24 (and, wrapping, products of at most span). Returns 0, or -1 for bad arguments (k >= 2**24, lo > 0,
 * hi < 0, span <= 0). */
int lp_fixed_sums_f32(const float *a, const float *b, double *out, int64_t *overflows, int64_t m, int64_t k,
                      int64_t n, float lo, float hi, float span, int saturate, int nthreads);

/* Whether the library was built with OpenMP (1) or runs single-threaded (0). */
int lp_have_openmp(void);
