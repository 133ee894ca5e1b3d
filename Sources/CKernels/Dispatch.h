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
// The same on every lane of a vector x, through comparison masks of the integer vector type IVEC; its two steps
// (low where low >= x, then high where high < x) also one at a time.
#define VEC_CLAMP_LOW(IVEC, x, low)                                                                               \
    do {                                                                                                          \
        IVEC below_ = (low) >= (x);                                                                               \
        (x) = (__typeof__(x))(((IVEC)(low) & below_) | ((IVEC)(x) & ~below_));                                   \
    } while (0)
#define VEC_CLAMP_HIGH(IVEC, x, high)                                                                             \
    do {                                                                                                          \
        IVEC above_ = (high) < (x);                                                                               \
        (x) = (__typeof__(x))(((IVEC)(high) & above_) | ((IVEC)(x) & ~above_));                                  \
    } while (0)
#define VEC_CLAMP(IVEC, x, low, high)                                                                             \
    do {                                                                                                          \
        VEC_CLAMP_LOW(IVEC, x, low);                                                                              \
        VEC_CLAMP_HIGH(IVEC, x, high);                                                                            \
    } while (0)
// Makes the compiler compute vector x by this point (an empty asm that takes and gives it in a register). Before a loop
// that stores only a block's first `rows` rows, Clang sank each row's chain of multiply-adds into that row's branch,
// so that the chains ran one after another, each waiting out its own latency, instead of side by side.
#define WC_KEEP(x) __asm__ volatile("" : "+v"(x))
// The taps [lo, hi) of one axis that land inside the input for output position o, and the input position of tap 0.
static inline void tap_span(int o, int kernel, int stride, int dilation, int pad, int size, int *lo, int *hi,
                            int *start) {
    int s = o * stride - pad, l = 0, h = kernel;
    while (l < kernel && s + l * dilation < 0) l++;
    while (h > l && s + (h - 1) * dilation >= size) h--;
    *lo = l; *hi = h; *start = s;
}
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static inline __m512 wc_clamp512(__m512 x, __m512 low, __m512 high) {
    x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(low, x, _CMP_GE_OQ), low);
    return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(high, x, _CMP_LT_OQ), high);
}
// The lanes l whose column first + l lies in [0, w), all bits set (AVX2's masked loads' lanes inside a row).
__attribute__((target("avx2"))) static inline __m256i wc_lanes_inside8(int first, int w) {
    const __m256i c = _mm256_add_epi32(_mm256_set1_epi32(first), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), c),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(w), c));
}
// Lanes [from, to) of y to out + from (AVX2): shifted down to lane 0, then stored 4, 2 and 1 at a time — a masked
// store (vmaskmovps) is microcoded on AMD Zen, many times slower.
__attribute__((target("avx2"))) static inline void wc_store_lanes8(float *out, __m256 y, int from, int to) {
    const int n = to - from;
    if (n == 8) { _mm256_storeu_ps(out, y); return; }
    y = _mm256_permutevar8x32_ps(y, _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(from)));
    out += from;
    __m128 x = _mm256_castps256_ps128(y);
    if (n & 4) { _mm_storeu_ps(out, x); x = _mm256_extractf128_ps(y, 1); out += 4; }
    if (n & 2) { _mm_storel_pi((__m64 *)out, x); x = _mm_movehl_ps(x, x); out += 2; }
    if (n & 1) _mm_store_ss(out, x);
}
__attribute__((target("avx2"))) static inline __m256 wc_clamp256(__m256 x, __m256 low, __m256 high) {
    x = _mm256_blendv_ps(x, low, _mm256_cmp_ps(low, x, _CMP_GE_OQ));
    return _mm256_blendv_ps(x, high, _mm256_cmp_ps(high, x, _CMP_LT_OQ));
}
#endif

// One input row into a bordered row kept as its s phases (the direct convolution's and the depthwise kernel's copies):
// src[x] (x < w) to row[(X % s)·phase + X / s], X = x + offset. At s = 1 a plain copy; at s = 2 on AVX-512 the even and
// odd values of 32 inputs at a time through two permutes; otherwise value by value.
// At s = 2 the even inputs x (from x0, even) land at p0[x / 2] and the odd ones at p1[x / 2]: no division per value.
static inline void wc_row_pairs_scalar(const float *src, int x0, int w, float *p0, float *p1) {
#pragma clang loop vectorize(disable)
    for (int x = x0; x < w; x += 2) {
        p0[x / 2] = src[x];
        if (x + 1 < w) p1[x / 2] = src[x + 1];
    }
}
// The two phase rows' starts at s = 2: inputs 0, 2, 4, … go to the first, 1, 3, 5, … to the second.
#define WC_ROW_PAIRS(row, offset, phase)                                                                          \
    float *p0 = (row) + ((offset) & 1) * (phase) + (offset) / 2, *p1 = (row) + (((offset) + 1) & 1) * (phase) + ((offset) + 1) / 2
static inline void wc_row_phases_generic(const float *src, int w, int offset, int s, float *row, long phase) {
    if (s == 1) {
        memcpy(row + offset, src, sizeof(float) * w);
        return;
    }
    if (s == 2) {
        WC_ROW_PAIRS(row, offset, phase);
        wc_row_pairs_scalar(src, 0, w, p0, p1);
        return;
    }
#pragma clang loop vectorize(disable)
    for (int x = 0; x < w; x++) row[((x + offset) % s) * phase + (x + offset) / s] = src[x];
}
#if defined(__x86_64__)
// The even (odd) values of the 16 floats a (first 8) and b (next 8): one shuffle gives a0 a2 b0 b2 | a4 a6 b4 b6 within
// each 128-bit half, one permute of 64-bit pairs reorders them a0 a2 a4 a6 b0 b2 b4 b6. The stride-2 copies (row
// phases, im2col) and Winograd's input transform split their inputs with these.
__attribute__((target("avx2"))) static inline __m256 wc_even8(__m256 a, __m256 b) {
    const __m256 pairs = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(pairs), 0xd8));
}
__attribute__((target("avx2"))) static inline __m256 wc_odd8(__m256 a, __m256 b) {
    const __m256 pairs = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(pairs), 0xd8));
}
// wc_row_phases_generic with AVX2 at s = 2: 16 inputs at a time split into their even and odd values (the scalar split
// ran MobileNetV2's 32 → 16 px depthwise layer at a fifth of the speed of its stride-1 layers).
__attribute__((target("avx2"))) static inline void wc_row_phases_avx2(const float *src, int w, int offset, int s,
                                                                       float *row, long phase) {
    if (s != 2) {
        wc_row_phases_generic(src, w, offset, s, row, phase);
        return;
    }
    WC_ROW_PAIRS(row, offset, phase);
    int x = 0;
    for (; x + 16 <= w; x += 16) {
        const __m256 a = _mm256_loadu_ps(src + x), b = _mm256_loadu_ps(src + x + 8);
        _mm256_storeu_ps(p0 + x / 2, wc_even8(a, b));
        _mm256_storeu_ps(p1 + x / 2, wc_odd8(a, b));
    }
    wc_row_pairs_scalar(src, x, w, p0, p1);
}
#endif
#if defined(__x86_64__)
static inline __mmask16 wc_first_lanes(int n) { return n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }
// The lanes l whose column first + step·l lies in [0, w) (step 1 or 2): masked loads' lanes inside a row.
__attribute__((target("avx512f"))) static inline __mmask16 wc_lanes_inside(int first, int step, int w) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i c = _mm512_add_epi32(step == 1 ? lane : _mm512_slli_epi32(lane, 1), _mm512_set1_epi32(first));
    return _mm512_cmpge_epi32_mask(c, _mm512_setzero_si512()) & _mm512_cmplt_epi32_mask(c, _mm512_set1_epi32(w));
}
__attribute__((target("avx512f"))) static inline void wc_row_phases_avx512(const float *src, int w, int offset, int s,
                                                                           float *row, long phase) {
    if (s > 2) {
        wc_row_phases_generic(src, w, offset, s, row, phase);
        return;
    }
    int x = 0;
    if (s == 1) {
        for (; x + 16 <= w; x += 16) _mm512_storeu_ps(row + offset + x, _mm512_loadu_ps(src + x));
        const __mmask16 m = wc_first_lanes(w - x);
        if (x < w) _mm512_mask_storeu_ps(row + offset + x, m, _mm512_maskz_loadu_ps(m, src + x));
        return;
    }
    // Inputs x + 2i (x even) land at column x + offset + 2i: phase offset & 1, index x / 2 + offset / 2 + i; inputs
    // x + 1 + 2i likewise. Whole blocks of 32 without masks (masked, the copy of a max pool's input ran 1.3× slower).
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    WC_ROW_PAIRS(row, offset, phase);
    for (; x + 32 <= w; x += 32) {
        const __m512 a = _mm512_loadu_ps(src + x), b = _mm512_loadu_ps(src + x + 16);
        _mm512_storeu_ps(p0 + x / 2, _mm512_permutex2var_ps(a, even, b));
        _mm512_storeu_ps(p1 + x / 2, _mm512_permutex2var_ps(a, odd, b));
    }
    if (x < w) {
        const int n = w - x;
        const __m512 a = _mm512_maskz_loadu_ps(wc_first_lanes(n), src + x);
        const __m512 b = _mm512_maskz_loadu_ps(wc_first_lanes(n - 16), src + x + 16);
        _mm512_mask_storeu_ps(p0 + x / 2, wc_first_lanes((n + 1) / 2), _mm512_permutex2var_ps(a, even, b));
        _mm512_mask_storeu_ps(p1 + x / 2, wc_first_lanes(n / 2), _mm512_permutex2var_ps(a, odd, b));
    }
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
