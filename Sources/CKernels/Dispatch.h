#ifndef WC_DISPATCH_H
#define WC_DISPATCH_H
// Shared by the kernels' sources (not part of the module's interface).
#include "CKernels.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// min(max(x, low), high) as Swift computes it: low where low >= x, then high where high < x (a NaN stays NaN).
static inline float wc_clamp(float x, float low, float high) {
    x = low >= x ? low : x;
    return high < x ? high : x;
}
// The same on every lane of a vector x, through comparison masks of the integer vector type IVEC.
#define VEC_CLAMP(IVEC, x, low, high)                                                                             \
    do {                                                                                                          \
        IVEC below_ = (low) >= (x);                                                                               \
        (x) = (__typeof__(x))(((IVEC)(low) & below_) | ((IVEC)(x) & ~below_));                                   \
        IVEC above_ = (high) < (x);                                                                               \
        (x) = (__typeof__(x))(((IVEC)(high) & above_) | ((IVEC)(x) & ~above_));                                  \
    } while (0)
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static inline __m512 wc_clamp512(__m512 x, __m512 low, __m512 high) {
    x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(low, x, _CMP_GE_OQ), low);
    return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(high, x, _CMP_LT_OQ), high);
}
#endif

// Calls NAME_avx512, NAME_avx2 or NAME_generic with the arguments: the variant for `isa` (DISPATCH_ISA), or the one
// wc_kernels_isa() chooses (DISPATCH).
#if defined(__x86_64__)
#define DISPATCH_ISA(isa, NAME, ...)                                                                              \
    do {                                                                                                          \
        if ((isa) == WC_ISA_AVX512) NAME##_avx512(__VA_ARGS__);                                                   \
        else if ((isa) == WC_ISA_AVX2) NAME##_avx2(__VA_ARGS__);                                                  \
        else NAME##_generic(__VA_ARGS__);                                                                         \
    } while (0)
#else
#define DISPATCH_ISA(isa, NAME, ...) NAME##_generic(__VA_ARGS__)
#endif
#define DISPATCH(NAME, ...) DISPATCH_ISA(wc_kernels_isa(), NAME, __VA_ARGS__)

#endif
