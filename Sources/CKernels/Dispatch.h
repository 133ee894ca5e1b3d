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

// Row kernels (depthwise, max pool) over a bordered plane, R output rows at a time.
//
// ROW_TAP: the inputs of one tap under L consecutive outputs into `v`: L values from p on, one apart (sw 1) or two
// apart (sw 2: the even lanes of 2L values, which the shuffle indices after the arguments pick).
#define ROW_TAP(VEC, L, v, p, sw, ...)                                                                            \
    do {                                                                                                          \
        if ((sw) == 1) memcpy(&(v), (p), sizeof(VEC));                                                            \
        else {                                                                                                    \
            VEC lo_, hi_;                                                                                         \
            memcpy(&lo_, (p), sizeof lo_);                                                                        \
            memcpy(&hi_, (p) + (L), sizeof hi_);                                                                  \
            (v) = __builtin_shufflevector(lo_, hi_, __VA_ARGS__);                                                 \
        }                                                                                                         \
    } while (0)
// ROW_STORE: the first `rows` of the accumulators `acc` to output rows oy0… at column ox (a partial vector at the end
// of a row value by value: a copy of a variable size would be a call to memcpy for every vector).
#define ROW_STORE(L, acc, rows, out, oy0, ox, ow)                                                                 \
    for (int r_ = 0; r_ < (rows); r_++) {                                                                         \
        float *d_ = (out) + (long)((oy0) + r_) * (ow) + (ox);                                                     \
        if ((ow) - (ox) >= (L)) memcpy(d_, &(acc)[r_], sizeof((acc)[r_]));                                        \
        else                                                                                                      \
            for (int i_ = 0; i_ < (ow) - (ox); i_++) d_[i_] = (acc)[r_][i_];                                      \
    }

#endif
