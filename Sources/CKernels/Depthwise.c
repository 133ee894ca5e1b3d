// Depthwise convolution of one plane, a vector of outputs at a time, compiled for baseline, AVX2 and AVX-512.
#include "CKernels.h"
#include <string.h>

// Each output is bias, then + tap·input for every tap in row-major order, with the product rounded before the sum
// (no fused multiply-add), as the definition computes it: the result is bit-identical to the naive loop.
#define DEFINE_DEPTHWISE(NAME, ATTR, VEC, L, ...)                                                                 \
    ATTR static void NAME(const float *plane, long width, int kh, int kw, int dh, int dw, int sh, int sw,          \
                          const float *taps, float bias, float *out, int oh, int ow) {                             \
        _Pragma("clang fp contract(off)")                                                                         \
        for (int oy = 0; oy < oh; oy++) {                                                                         \
            const float *line = plane + (long)oy * sh * width;                                                    \
            float *row = out + (long)oy * ow;                                                                     \
            for (int ox = 0; ox < ow; ox += L) {                                                                  \
                VEC acc;                                                                                          \
                for (int i = 0; i < L; i++) acc[i] = bias;                                                        \
                for (int ki = 0; ki < kh; ki++)                                                                   \
                    for (int kj = 0; kj < kw; kj++) {                                                             \
                        const float *p = line + (long)ki * dh * width + kj * dw + (long)ox * sw;                   \
                        VEC v;                                                                                    \
                        if (sw == 1) memcpy(&v, p, sizeof v);                                                     \
                        else {                                                                                    \
                            VEC lo, hi;                                                                           \
                            memcpy(&lo, p, sizeof lo);                                                            \
                            memcpy(&hi, p + L, sizeof hi);                                                        \
                            v = __builtin_shufflevector(lo, hi, __VA_ARGS__);                                    \
                        }                                                                                         \
                        VEC product = v * taps[ki * kw + kj];                                                     \
                        acc = acc + product;                                                                      \
                    }                                                                                             \
                if (ow - ox >= L) memcpy(row + ox, &acc, sizeof acc);                                             \
                else memcpy(row + ox, &acc, sizeof(float) * (ow - ox));                                           \
            }                                                                                                     \
        }                                                                                                         \
    }

typedef float dw8 __attribute__((vector_size(32)));
DEFINE_DEPTHWISE(depthwise_generic, , dw8, 8, 0, 2, 4, 6, 8, 10, 12, 14)
#if defined(__x86_64__)
typedef float dw16 __attribute__((vector_size(64)));
DEFINE_DEPTHWISE(depthwise_avx2, __attribute__((target("avx2"))), dw8, 8, 0, 2, 4, 6, 8, 10, 12, 14)
DEFINE_DEPTHWISE(depthwise_avx512, __attribute__((target("avx512f"))), dw16, 16,
                 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#endif

void wc_depthwise_plane(const float *plane, long width, int kh, int kw, int dh, int dw, int sh, int sw,
                        const float *taps, float bias, float *out, int oh, int ow) {
#if defined(__x86_64__)
    int isa = wc_kernels_isa();
    if (isa == WC_ISA_AVX512) { depthwise_avx512(plane, width, kh, kw, dh, dw, sh, sw, taps, bias, out, oh, ow); return; }
    if (isa == WC_ISA_AVX2) { depthwise_avx2(plane, width, kh, kw, dh, dw, sh, sw, taps, bias, out, oh, ow); return; }
#endif
    depthwise_generic(plane, width, kh, kw, dh, dw, sh, sw, taps, bias, out, oh, ow);
}
