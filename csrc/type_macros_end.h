/* Ends one per-type instantiation in quantize.c: undefines the macros a type section sets. */
#undef MAC_CLONES
#undef MAC_FAST
#undef UT
#undef SIGNED_T
#undef IT
#undef FT
#undef MANT
#undef WBITS
#undef PER_CTR
#undef SFX
