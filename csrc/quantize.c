/* lowprec C core: quantization of binary32/binary64 arrays to any float or fixed-point format, every
 * rounding mode, block-scaled, codebook and integer-affine kernels and (mac_impl.h) the MAC-unit kernel.
 * This file instantiates the per-type templates: a type header (type_f32.h, type_f64.h) sets the
 * type's macros, the *_impl.h templates follow, type_macros_end.h clears them. */
#include "platform.h" /* first: the standard headers lowprec.h's types need */
#include "lowprec.h"
#include "philox.h"
#include "sr_avx512.h" /* the fused stochastic kernels' AVX-512 steps */

/* internal modes: stochastic rounding split by random width, tiny inputs handled apart; nearest even
 * by the input type's own addition (quantize_impl.h) */
enum { LP_SR_EXACT_FAST = 100, LP_SR_K_FAST = 101, LP_NEAREST_EVEN_ADD = 102, LP_SR_EXACT_TINY = 103, LP_SR_K_TINY = 104 };
/* grid_of_'s `deep` (a constant): where the format's normal range starts against FT's. LP_DEEP: below FT's
 * normal range (sub_exp < 1); LP_FLAT: at FT's smallest normal (sub_exp == 1: every input is rounded at
 * the same bit); 0: above it. */
enum { LP_DEEP = 1, LP_FLAT = 2 };
/* finish_'s `fast` (a constant): 0 the whole rule; 1 a fast pass (tiny, Inf and NaN inputs fixed up after);
 * LP_FAST_SYM a fast pass for a format whose limits are alike for both signs and that keeps -0. */
enum { LP_FAST_SYM = 2 };

void lp_philox_words(uint32_t *out, int64_t nctr, uint64_t seed, uint64_t offset)
{
    philox_fill_best(out, nctr, seed, offset);
}

int lp_mac_tile(int which)
{
    return which ? LP_MAC_TILE_COLS : LP_MAC_TILE_ROWS;
}

int lp_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

#include "type_f32.h"
#include "half_impl.h" /* before quantize_impl.h: lp_quantize_f32 takes its fp16/bf16 routines */
#include "quantize_impl.h"
#include "block_impl.h"
#include "lut_impl.h"
#define MAC_CLONES LP_CLONES
#define MAC_FAST 1
#include "mac_impl.h"
#include "stats_impl.h"
#include "type_macros_end.h"

#include "type_f64.h"
#include "quantize_impl.h"
#include "block_impl.h"
#include "lut_impl.h"
#define MAC_CLONES LP_CLONES
#define MAC_FAST 0
#include "mac_impl.h"
#include "stats_impl.h"

#include "type_macros_end.h"

#include "fused_impl.h" /* matrix units: double arithmetic on float32 operands, round_one_f64 */

/* Integer-affine kernels (affine_impl.h): both input types use the float64 block routine above. */
#define FT float
#define SFX f32
#define WBITS 32
#include "affine_impl.h"
#include "type_macros_end.h"
#define FT double
#define SFX f64
#define WBITS 64
#include "affine_impl.h"
#include "type_macros_end.h"

/* Float-scaled block kernels (fscale_impl.h): the float32 and float64 block routines above; binary
 * and ternary ones (scaled_impl.h). */
#define FT float
#define SFX f32
#define WBITS 32
#include "fscale_impl.h"
#include "scaled_impl.h"
#include "type_macros_end.h"
#define FT double
#define SFX f64
#define WBITS 64
#include "fscale_impl.h"
#include "scaled_impl.h"
#include "type_macros_end.h"

#include "fixed_impl.h" /* integer accumulators in float32 lanes */
