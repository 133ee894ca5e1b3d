// A convolution's output pass over a run of values of one channel (the scatter of a product of several images into
// NCHW, and the clamp after a depthwise plane), a vector at a time: 16 values on AVX-512, 8 elsewhere.
#include "Dispatch.h"

// dst[i] = clamp(src[i] + bias (+ residual[i])): the additions in that order, then min(max(x, low), high) as Swift
// rounds it, by comparison masks on every lane (a NaN stays NaN).
#define DEFINE_EPILOGUE(NAME, ATTR, VEC, IVEC, L)                                                                 \
    ATTR static void NAME(const float *src, float *dst, long count, float bias, const float *residual, float low,  \
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
            IVEC below = lo >= x;                                                                                 \
            x = (VEC)(((IVEC)lo & below) | ((IVEC)x & ~below));                                                   \
            IVEC above = hi < x;                                                                                  \
            x = (VEC)(((IVEC)hi & above) | ((IVEC)x & ~above));                                                   \
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
typedef float ep16 __attribute__((vector_size(64)));
typedef int epi16 __attribute__((vector_size(64)));
DEFINE_EPILOGUE(epilogue_avx2, __attribute__((target("avx2"))), ep8, epi8, 8)
DEFINE_EPILOGUE(epilogue_avx512, __attribute__((target("avx512f"))), ep16, epi16, 16)
#endif

void wc_conv_epilogue_isa(int isa, const float *src, float *dst, long count, float bias, const float *residual,
                          float low, float high) {
    DISPATCH_ISA(isa, epilogue, src, dst, count, bias, residual, low, high);
}

void wc_conv_epilogue(const float *src, float *dst, long count, float bias, const float *residual, float low,
                      float high) {
    wc_conv_epilogue_isa(wc_kernels_isa(), src, dst, count, bias, residual, low, high);
}
