// A convolution's output pass over a run of values of one channel (the scatter of a product of several images into
// NCHW, and the clamp after a depthwise plane), a vector at a time: 16 values on AVX-512, 8 elsewhere.
#include "Dispatch.h"

// dst[i] = clamp(src[i] + bias (+ residual[i])): the additions in that order, then min(max(x, low), high) as Swift
// rounds it, by comparison masks on every lane (a NaN stays NaN).
#define DEFINE_EPILOGUE(NAME, ATTR, VEC, IVEC, L)                                                                 \
    ATTR static void NAME(const float *src, float *dst, long count, float bias, const float *residual, float low, \
                          float high) {                                                                           \
        /* x − 0 splats x as it is (0 + x would turn −0 into +0). */                                              \
        const VEC b = bias - (VEC){0}, lo = low - (VEC){0}, hi = high - (VEC){0};                                 \
        long i = 0;                                                                                               \
        for (; i + L <= count; i += L) {                                                                          \
            VEC x, r;                                                                                             \
            memcpy(&x, src + i, sizeof x);                                                                        \
            x = x + b;                                                                                            \
            if (residual) {                                                                                       \
                memcpy(&r, residual + i, sizeof r);                                                               \
                x = x + r;                                                                                        \
            }                                                                                                     \
            VEC_CLAMP(IVEC, x, lo, hi);                                                                           \
            memcpy(dst + i, &x, sizeof x);                                                                        \
        }                                                                                                         \
        for (; i < count; i++) {                                                                                  \
            float x = src[i] + bias;                                                                              \
            if (residual) x += residual[i];                                                                       \
            dst[i] = wc_clamp(x, low, high);                                                                      \
        }                                                                                                         \
    }

typedef float ep8 __attribute__((vector_size(32)));
typedef int epi8 __attribute__((vector_size(32)));
DEFINE_EPILOGUE(epilogue_generic, , ep8, epi8, 8)
#if defined(__x86_64__)
DEFINE_EPILOGUE(epilogue_avx2, __attribute__((target("avx2"))), ep8, epi8, 8)
// AVX-512: the last partial vector through masked loads and stores (short planes, 2×2 to 3×3 maps, are all tail).
__attribute__((target("avx512f"))) static void epilogue_avx512(const float *src, float *dst, long count, float bias,
                                                               const float *residual, float low, float high) {
    const __m512 b = _mm512_set1_ps(bias), lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
    for (long i = 0; i < count; i += 16) {
        const __mmask16 m = count - i >= 16 ? 0xffff : (__mmask16)((1u << (count - i)) - 1);
        __m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(m, src + i), b);
        if (residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, residual + i));
        _mm512_mask_storeu_ps(dst + i, m, wc_clamp512(x, lo, hi));
    }
}
#endif

// The output pass of a product of several images: one call for the whole block, not one per plane (on 2×2 and 3×3
// maps a call per plane cost more than its values).
#define DEFINE_SCATTER(NAME, EPILOGUE)                                                                            \
    static void NAME(const float *product, long cols, int images, int channels, long ohw, float *out,             \
                     long image_stride, const float *bias, const float *residual, float low, float high) {        \
        for (int img = 0; img < images; img++)                                                                    \
            for (int o = 0; o < channels; o++) {                                                                  \
                const long at = img * image_stride + o * ohw;                                                     \
                EPILOGUE(product + o * cols + img * ohw, out + at, ohw, bias ? bias[o] : 0.0f,                    \
                         residual ? residual + at : NULL, low, high);                                             \
            }                                                                                                     \
    }
DEFINE_SCATTER(scatter_generic, epilogue_generic)
#if defined(__x86_64__)
DEFINE_SCATTER(scatter_avx2, epilogue_avx2)
DEFINE_SCATTER(scatter_avx512, epilogue_avx512)
#endif

void wc_conv_scatter(const float *product, long cols, int images, int channels, long ohw, float *out,
                     long image_stride, const float *bias, const float *residual, float low, float high) {
    DISPATCH(scatter, product, cols, images, channels, ohw, out, image_stride, bias, residual, low, high);
}

void wc_conv_epilogue_isa(int isa, const float *src, float *dst, long count, float bias, const float *residual,
                          float low, float high) {
    DISPATCH_ISA(isa, epilogue, src, dst, count, bias, residual, low, high);
}

void wc_conv_epilogue(const float *src, float *dst, long count, float bias, const float *residual, float low,
                      float high) {
    wc_conv_epilogue_isa(wc_kernels_isa(), src, dst, count, bias, residual, low, high);
}
