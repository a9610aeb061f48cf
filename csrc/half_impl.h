/* float16 / bfloat16 <-> float32 for the array API's half-precision inputs (numpy's and ml_dtypes'
 * conversions run at 1-4 ns an element, torch's at about 1.7 on one thread). Integer and float32
 * arithmetic only, branch-free: the loops vectorize on every path. Included by quantize.c after the
 * float32 instantiation (to_bits_f32, from_bits_f32). */

/* Widening, exact: float16 as numpy converts it (NaN payloads kept, not quieted; subnormals m *
 * 2**-24), bfloat16 as the top half of the float32 pattern. */
LP_CLONES void lp_half_widen(const uint16_t *in, float *out, int64_t n, int bf16)
{
    if (bf16) {
        for (int64_t i = 0; i < n; i++)
            out[i] = from_bits_f32((uint32_t)in[i] << 16);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint32_t h = in[i];
        const uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
        const uint32_t normal = sign | ((e + 112u) << 23) | (m << 13);
        const uint32_t special = sign | 0x7F800000u | (m << 13);
        const uint32_t sub = sign | to_bits_f32((float)(int32_t)m * 5.9604644775390625e-8f); /* m * 2**-24: exact */
        out[i] = from_bits_f32(e == 31u ? special : (e == 0u ? sub : normal));
    }
}

/* Narrowing of float32 values that the half type holds exactly, and of Inf and NaN (anything else:
 * undefined; the caller checks that the format fits): the pattern numpy's and torch's conversions
 * give them. NaN keeps its sign and the top payload bits, made nonzero where they are all zero (a
 * NaN never becomes Inf). */
LP_CLONES void lp_half_narrow(const float *in, uint16_t *out, int64_t n, int bf16)
{
    if (bf16) {
        for (int64_t i = 0; i < n; i++) {
            const uint32_t b = to_bits_f32(in[i]), top = b >> 16;
            const uint32_t lost = (b & 0x7FFFFFFFu) > 0x7F800000u && (top & 0x7Fu) == 0; /* a NaN read as Inf */
            out[i] = (uint16_t)(top | (lost ? 0x40u : 0u));
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint32_t b = to_bits_f32(in[i]);
        const uint32_t sign = (b >> 16) & 0x8000u, a = b & 0x7FFFFFFFu, m = (a >> 13) & 0x3FFu;
        const uint32_t normal = (((a >> 23) - 112u) << 10) | m;
        const float tiny = a < 0x38800000u ? from_bits_f32(a) : 0.0f; /* below 2**-14 (else unused) */
        const uint32_t sub = (uint32_t)(int32_t)(tiny * 16777216.0f);  /* |x| * 2**24 < 1024: exact */
        const uint32_t special = 0x7C00u | (a > 0x7F800000u && m == 0 ? 1u : m);
        out[i] = (uint16_t)(sign | (a >= 0x7F800000u ? special : (a >= 0x38800000u ? normal : sub)));
    }
}
