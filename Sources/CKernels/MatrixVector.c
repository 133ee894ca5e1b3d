// Matrix–vector products on rows as they stand (a fully-connected layer at batch 1, its weight read once, row after
// row): four rows at a time against the vector, each row's sum in sixteen lanes over its values in order (two halves
// of eight on AVX2), then the lanes added, the same order for every row however the rows are grouped or split over
// threads. Measured against OpenBLAS's sgemv in `matrixVectorProduct` (BLAS.swift).
#include "Dispatch.h"

#if defined(__x86_64__)
__attribute__((target("avx512f,fma"))) static void rows_avx512(int rows, int k, const float *a, long lda,
                                                               const float *x, float *sums) {
    const __mmask16 tail = (__mmask16)((1u << (k % 16)) - 1);
    const int whole = k - k % 16;
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *a0 = a + r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int i = 0; i < whole; i += 16) {
            const __m512 v = _mm512_loadu_ps(x + i);
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a0 + i), v, s0);
            s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a1 + i), v, s1);
            s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a2 + i), v, s2);
            s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a3 + i), v, s3);
        }
        if (tail) {
            const __m512 v = _mm512_maskz_loadu_ps(tail, x + whole);
            s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a0 + whole), v, s0);
            s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a1 + whole), v, s1);
            s2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a2 + whole), v, s2);
            s3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a3 + whole), v, s3);
        }
        sums[r] = _mm512_reduce_add_ps(s0);
        sums[r + 1] = _mm512_reduce_add_ps(s1);
        sums[r + 2] = _mm512_reduce_add_ps(s2);
        sums[r + 3] = _mm512_reduce_add_ps(s3);
    }
    for (; r < rows; r++) {
        const float *a0 = a + r * lda;
        __m512 s0 = _mm512_setzero_ps();
        for (int i = 0; i < whole; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a0 + i), _mm512_loadu_ps(x + i), s0);
        if (tail) s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a0 + whole), _mm512_maskz_loadu_ps(tail, x + whole), s0);
        sums[r] = _mm512_reduce_add_ps(s0);
    }
}

// The same sums on AVX2: each row's sixteen lanes as two halves of eight (lanes 0–7 and 8–15 of each group of
// sixteen values), added at the end high half onto low, then by halves again.
__attribute__((target("avx2,fma"))) static inline float sum16_avx2(__m256 low, __m256 high) {
    const __m256 s8 = _mm256_add_ps(low, high);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// One row's sums over the next sixteen values from `p` (x's as vl, vh) into its two halves; the last group of
// fewer than sixteen through masks, the lanes past k read as zeros.
__attribute__((target("avx2,fma"))) static inline void madd16(const float *p, __m256 vl, __m256 vh, __m256 *l,
                                                             __m256 *h) {
    *l = _mm256_fmadd_ps(_mm256_loadu_ps(p), vl, *l);
    *h = _mm256_fmadd_ps(_mm256_loadu_ps(p + 8), vh, *h);
}
__attribute__((target("avx2,fma"))) static inline void madd16_masked(const float *p, __m256 vl, __m256 vh,
                                                                    __m256i low, __m256i high, __m256 *l, __m256 *h) {
    *l = _mm256_fmadd_ps(_mm256_maskload_ps(p, low), vl, *l);
    *h = _mm256_fmadd_ps(_mm256_maskload_ps(p + 8, high), vh, *h);
}

__attribute__((target("avx2,fma"))) static void rows_avx2(int rows, int k, const float *a, long lda, const float *x,
                                                         float *sums) {
    const int whole = k - k % 16, rest = k % 16;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i low = _mm256_cmpgt_epi32(_mm256_set1_epi32(rest), lane);
    const __m256i high = _mm256_cmpgt_epi32(_mm256_set1_epi32(rest - 8), lane);
    const __m256 tl = _mm256_maskload_ps(x + whole, low), th = _mm256_maskload_ps(x + whole + 8, high);
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *a0 = a + r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        __m256 l0 = _mm256_setzero_ps(), l1 = l0, l2 = l0, l3 = l0, h0 = l0, h1 = l0, h2 = l0, h3 = l0;
        for (int i = 0; i < whole; i += 16) {
            const __m256 vl = _mm256_loadu_ps(x + i), vh = _mm256_loadu_ps(x + i + 8);
            madd16(a0 + i, vl, vh, &l0, &h0);
            madd16(a1 + i, vl, vh, &l1, &h1);
            madd16(a2 + i, vl, vh, &l2, &h2);
            madd16(a3 + i, vl, vh, &l3, &h3);
        }
        if (rest) {
            madd16_masked(a0 + whole, tl, th, low, high, &l0, &h0);
            madd16_masked(a1 + whole, tl, th, low, high, &l1, &h1);
            madd16_masked(a2 + whole, tl, th, low, high, &l2, &h2);
            madd16_masked(a3 + whole, tl, th, low, high, &l3, &h3);
        }
        sums[r] = sum16_avx2(l0, h0);
        sums[r + 1] = sum16_avx2(l1, h1);
        sums[r + 2] = sum16_avx2(l2, h2);
        sums[r + 3] = sum16_avx2(l3, h3);
    }
    for (; r < rows; r++) {
        const float *a0 = a + r * lda;
        __m256 l0 = _mm256_setzero_ps(), h0 = l0;
        for (int i = 0; i < whole; i += 16) madd16(a0 + i, _mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8), &l0, &h0);
        if (rest) madd16_masked(a0 + whole, tl, th, low, high, &l0, &h0);
        sums[r] = sum16_avx2(l0, h0);
    }
}
#endif

int wc_dot_rows_runs(void) {
#if defined(__x86_64__)
    return wc_kernels_isa() != WC_ISA_GENERIC;
#else
    return 0;
#endif
}

void wc_dot_rows(int rows, int k, const float *a, long lda, const float *x, float alpha, float beta, float *y,
                 long incy) {
#if defined(__x86_64__)
    enum { CHUNK = 256 };
    float sums[CHUNK];
    for (int first = 0; first < rows; first += CHUNK) {
        const int count = rows - first < CHUNK ? rows - first : CHUNK;
        if (wc_kernels_isa() == WC_ISA_AVX512) rows_avx512(count, k, a + first * lda, lda, x, sums);
        else rows_avx2(count, k, a + first * lda, lda, x, sums);
        for (int r = 0; r < count; r++) {
            float *out = y + (first + r) * incy;
            *out = beta == 0 ? alpha * sums[r] : alpha * sums[r] + beta * *out;
        }
    }
#else
    // Not taken elsewhere (`wc_dot_rows_runs`); a plain loop rather than nothing.
    for (int r = 0; r < rows; r++) {
        float sum = 0;
        for (int i = 0; i < k; i++) sum += a[r * lda + i] * x[i];
        y[r * incy] = beta == 0 ? alpha * sum : alpha * sum + beta * y[r * incy];
    }
#endif
}
