/* The double instantiation's type constants (binary64), then the bit-pattern views every template uses.
 * quantize.c includes this, the *_impl.h templates, then type_macros_end.h. */
#define UT uint64_t
#define SIGNED_T int64_t
#define IT int64_t /* per-element integer temporaries: as wide as UT, so lanes stay aligned */
#define FT double
#define MANT 52
#define WBITS 64
#define PER_CTR 2 /* elements per Philox counter: 4 words a counter, two an element */
#define SFX f64

#include "type_views.h"
