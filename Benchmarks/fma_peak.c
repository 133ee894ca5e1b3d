// One thread's peak of AVX-512 fused multiply-adds: 16 independent accumulators, so neither latency nor memory limits
// it. Run one copy, then two at once, to see whether the cores are independent and what this host gives right now
// (docs/RESULTS.md "Session 16"):
//   cc -O2 -o /tmp/fma_peak Benchmarks/fma_peak.c && /tmp/fma_peak && (/tmp/fma_peak & /tmp/fma_peak; wait)
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

__attribute__((target("avx512f,fma"))) int main(void) {
    __m512 acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
    const __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.999999f);
    const long n = 100000000;
    double t = now();
    for (long i = 0; i < n; i++)
        for (int j = 0; j < 16; j++) acc[j] = _mm512_fmadd_ps(acc[j], x, y);
    t = now() - t;
    float sum = 0;
    for (int i = 0; i < 16; i++) sum += acc[i][0];
    printf("%.1f GFLOP/s (checksum %g)\n", n * 16 * 32.0 / t / 1e9, sum);
    return 0;
}
