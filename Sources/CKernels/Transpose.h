#ifndef WC_TRANSPOSE_H
#define WC_TRANSPOSE_H
// Planes to channels last and back, for the kernels that take a vector of channels (or planes) at a time on small
// maps: the depthwise convolution across channels and the max pool across planes. Not part of the module's interface.
#include "Dispatch.h"
#include "RowCopy.h"

// Plane-major to channels-last and back, in tiles of 16 channels × 16 pixels so that both sides stay within a few
// cache lines. Scalar on purpose: vectorised, the compiler turns these loops into gathers and scatters, 5× slower.
static inline void transpose_in(const float *planes, int count, int pixels, int width, float *x) {
    for (int c0 = 0; c0 < count; c0 += 16)
        for (int p0 = 0; p0 < pixels; p0 += 16) {
            int c1 = c0 + 16 < count ? c0 + 16 : count, p1 = p0 + 16 < pixels ? p0 + 16 : pixels;
            for (int c = c0; c < c1; c++) {
                const float *plane = planes + (size_t)c * pixels;
#pragma clang loop vectorize(disable)
                for (int p = p0; p < p1; p++) x[(size_t)p * width + c] = plane[p];
            }
        }
}

// y (channels last) back to planes: + residual, then min(max(v, low), high) as Swift rounds it.
static inline void transpose_out(const float *y, int count, int pixels, int width, float *planes, const float *residual,
                          float low, float high) {
    _Pragma("clang fp contract(off)")
    for (int c0 = 0; c0 < count; c0 += 16)
        for (int p0 = 0; p0 < pixels; p0 += 16) {
            int c1 = c0 + 16 < count ? c0 + 16 : count, p1 = p0 + 16 < pixels ? p0 + 16 : pixels;
            for (int c = c0; c < c1; c++) {
                float *plane = planes + (size_t)c * pixels;
                const float *r = residual ? residual + (size_t)c * pixels : NULL;
#pragma clang loop vectorize(disable)
                for (int p = p0; p < p1; p++) {
                    float v = y[(size_t)p * width + c];
                    if (r) v = v + r[p];
                    v = low >= v ? low : v;
                    plane[p] = high < v ? high : v;
                }
            }
        }
}

#if defined(__x86_64__)
// Eight vectors r[0..7] transposed in place (r[i][j] ↔ r[j][i]).
__attribute__((target("avx2"))) static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

// Sixteen vectors r[0..15] transposed in place (r[i][j] ↔ r[j][i]): pairs of rows interleaved, then pairs of pairs,
// then the 128-bit lanes gathered in two steps (64 shuffles).
__attribute__((target("avx512f"))) static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    // u[4g + m]: rows 4g … 4g + 3 of columns m, m + 4, m + 8, m + 12 (one column a 128-bit lane).
    for (int g = 0; g < 16; g += 4) {
        const __m512d a = _mm512_castps_pd(t[g]), b = _mm512_castps_pd(t[g + 1]);
        const __m512d c = _mm512_castps_pd(t[g + 2]), d = _mm512_castps_pd(t[g + 3]);
        u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int m = 0; m < 4; m++) {
        const __m512 x0 = _mm512_shuffle_f32x4(u[m], u[4 + m], _MM_SHUFFLE(2, 0, 2, 0));
        const __m512 x1 = _mm512_shuffle_f32x4(u[m], u[4 + m], _MM_SHUFFLE(3, 1, 3, 1));
        const __m512 y0 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], _MM_SHUFFLE(2, 0, 2, 0));
        const __m512 y1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], _MM_SHUFFLE(3, 1, 3, 1));
        r[m] = _mm512_shuffle_f32x4(x0, y0, _MM_SHUFFLE(2, 0, 2, 0));
        r[m + 8] = _mm512_shuffle_f32x4(x0, y0, _MM_SHUFFLE(3, 1, 3, 1));
        r[m + 4] = _mm512_shuffle_f32x4(x1, y1, _MM_SHUFFLE(2, 0, 2, 0));
        r[m + 12] = _mm512_shuffle_f32x4(x1, y1, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

// transpose_in and transpose_out with whole 8 × 8 tiles through registers (the rest as the scalar ones do): the
// scalar copies took most of a depthwise layer's time on 8×8 and smaller maps.
__attribute__((target("avx2"))) static inline void transpose_in_avx2(const float *planes, int count, int pixels,
                                                                     int width, float *x) {
    const int c8 = count / 8 * 8, p8 = pixels / 8 * 8;
    for (int c0 = 0; c0 < c8; c0 += 8)
        for (int p0 = 0; p0 < p8; p0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(planes + (size_t)(c0 + i) * pixels + p0);
            transpose8(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(x + (size_t)(p0 + i) * width + c0, r[i]);
        }
    for (int c = 0; c < count; c++) {
        const float *plane = planes + (size_t)c * pixels;
#pragma clang loop vectorize(disable)
        for (int p = c < c8 ? p8 : 0; p < pixels; p++) x[(size_t)p * width + c] = plane[p];
    }
}

__attribute__((target("avx2"))) static inline void transpose_out_avx2(const float *y, int count, int pixels,
                                                                      int width, float *planes, const float *residual,
                                                                      float low, float high) {
    _Pragma("clang fp contract(off)")
    const int c8 = count / 8 * 8, p8 = pixels / 8 * 8;
    const __m256 lo = _mm256_set1_ps(low), hi = _mm256_set1_ps(high);
    for (int c0 = 0; c0 < c8; c0 += 8)
        for (int p0 = 0; p0 < p8; p0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(y + (size_t)(p0 + i) * width + c0);
            transpose8(r);
            for (int i = 0; i < 8; i++) {
                __m256 v = r[i];
                if (residual) v = _mm256_add_ps(v, _mm256_loadu_ps(residual + (size_t)(c0 + i) * pixels + p0));
                VEC_CLAMP(rowi8, v, lo, hi);
                _mm256_storeu_ps(planes + (size_t)(c0 + i) * pixels + p0, v);
            }
        }
    for (int c = 0; c < count; c++) {
        float *plane = planes + (size_t)c * pixels;
        const float *r = residual ? residual + (size_t)c * pixels : NULL;
#pragma clang loop vectorize(disable)
        for (int p = c < c8 ? p8 : 0; p < pixels; p++) {
            float v = y[(size_t)p * width + c];
            if (r) v = v + r[p];
            plane[p] = wc_clamp(v, low, high);
        }
    }
}

// Values [p0, p0 + n) (n ≤ 16) of up to sixteen planes of `pixels` values each, one after another, as r[j]: value
// p0 + j of every plane, lane i plane i (lanes past `count` hold 0).
__attribute__((target("avx512f"))) static inline void load_transposed16(const float *planes, int count, long pixels,
                                                                        long p0, int n, __m512 r[16]) {
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    for (int i = 0; i < 16; i++)
        r[i] = i < count ? _mm512_maskz_loadu_ps(m, planes + (size_t)i * pixels + p0) : _mm512_setzero_ps();
    transpose16(r);
}

// transpose_in and transpose_out for up to sixteen planes through 16 × 16 transposes in registers (AVX-512): planes
// to x (sixteen floats a pixel, lane i plane i; lanes past `count` hold 0), and y (sixteen floats an output) back to
// the first `count` planes.
__attribute__((target("avx512f"))) static inline void transpose_in16(const float *planes, int count, int pixels,
                                                                     float *x) {
    for (int p0 = 0; p0 < pixels; p0 += 16) {
        const int n = pixels - p0 < 16 ? pixels - p0 : 16;
        __m512 r[16];
        load_transposed16(planes, count, pixels, p0, n, r);
        for (int j = 0; j < n; j++) _mm512_store_ps(x + (size_t)(p0 + j) * 16, r[j]);
    }
}

__attribute__((target("avx512f"))) static inline void transpose_out16(const float *y, int count, int outputs,
                                                                      float *planes) {
    for (int q0 = 0; q0 < outputs; q0 += 16) {
        const int n = outputs - q0 < 16 ? outputs - q0 : 16;
        const __mmask16 m = (__mmask16)((1u << n) - 1);
        __m512 r[16];
        for (int j = 0; j < 16; j++) r[j] = j < n ? _mm512_load_ps(y + (size_t)(q0 + j) * 16) : _mm512_setzero_ps();
        transpose16(r);
        for (int i = 0; i < count; i++) _mm512_mask_storeu_ps(planes + (size_t)i * outputs + q0, m, r[i]);
    }
}
#endif

#endif
