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

#ifndef CAT
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#endif

/* The one view of a value as its bit pattern and back (the templates' only type pun). */
static inline UT CAT(to_bits_, SFX)(FT f)
{
    union { UT u; FT f; } pun;
    pun.f = f;
    return pun.u;
}

static inline FT CAT(from_bits_, SFX)(UT u)
{
    union { UT u; FT f; } pun;
    pun.u = u;
    return pun.f;
}
