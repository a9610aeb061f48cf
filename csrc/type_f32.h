/* The float instantiation's type constants (binary32), then the bit-pattern views every template uses.
 * quantize.c includes this, the *_impl.h templates, then type_macros_end.h. */
#define UT uint32_t
#define SIGNED_T int32_t
#define IT int32_t /* per-element integer temporaries: as wide as UT, so lanes stay aligned */
#define FT float
#define MANT 23
#define WBITS 32
#define PER_CTR 4 /* elements per Philox counter: 4 words a counter, one an element */
#define SFX f32

#include "type_views.h"
