// Matrix–vector products on rows as they stand (a fully-connected layer at batch 1, its weight read once, row after
// row): four rows at a time against the vector, each row's sum in sixteen lanes over its values in order, then the
// lanes added, the same order for every row however the rows are grouped or split over threads. Measured against
// OpenBLAS's sgemv in `matrixVectorProduct` (BLAS.swift).
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
#endif

int wc_dot_rows_runs(void) {
#if defined(__x86_64__)
    return wc_kernels_isa() == WC_ISA_AVX512;
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
        rows_avx512(count, k, a + first * lda, lda, x, sums);
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
