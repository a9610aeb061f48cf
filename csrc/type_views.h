/* What every type instantiation shares, written once: the token pasting of per-type names and the
 * one view of a value as its bit pattern and back (the templates' only type pun). Included by
 * type_f32.h and type_f64.h after they set UT, FT and SFX. */
#ifndef CAT
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#endif

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
