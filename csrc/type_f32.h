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
