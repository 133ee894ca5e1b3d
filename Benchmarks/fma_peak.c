// One thread's peak of fused multiply-adds, AVX-512 where the processor has it, else AVX2: 16 (12) independent
// accumulators, so neither latency nor memory limits it. Run one copy, then two at once, to see whether the cores are independent and what this host gives right now
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

// Sixteen named accumulators in a function of their own that calls nothing, so that both compilers keep all of them
// in registers. In `main`, as an array, GCC -O2 kept them in memory (its loop then waits on store-to-load forwarding:
// 36–44 GFLOP/s) and Clang spilled three around the call to `now` (114–119); here both give 171–173 on this host.
__attribute__((target("avx512f,fma"), noinline)) static float multiply_adds(long n) {
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3),
           a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7),
           a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11),
           a12 = _mm512_set1_ps(12), a13 = _mm512_set1_ps(13), a14 = _mm512_set1_ps(14), a15 = _mm512_set1_ps(15);
    const __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.999999f);
    for (long i = 0; i < n; i++) {
#define STEP(a) a = _mm512_fmadd_ps(a, x, y)
        STEP(a0); STEP(a1); STEP(a2); STEP(a3); STEP(a4); STEP(a5); STEP(a6); STEP(a7);
        STEP(a8); STEP(a9); STEP(a10); STEP(a11); STEP(a12); STEP(a13); STEP(a14); STEP(a15);
    }
    const __m512 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15;
    return s[0];
}
// The same with twelve 8-lane accumulators (AVX2 has sixteen registers; x and y take two).
__attribute__((target("avx2,fma"), noinline)) static float multiply_adds_avx2(long n) {
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3),
           a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7),
           a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    const __m256 x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.999999f);
    for (long i = 0; i < n; i++) {
#define STEP8(a) a = _mm256_fmadd_ps(x, y, a)
        STEP8(a0); STEP8(a1); STEP8(a2); STEP8(a3); STEP8(a4); STEP8(a5);
        STEP8(a6); STEP8(a7); STEP8(a8); STEP8(a9); STEP8(a10); STEP8(a11);
    }
    const __m256 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    return s[0];
}
int main(void) {
    const long n = 100000000;
    const int wide = __builtin_cpu_supports("avx512f");
    double t = now();
    const float sum = wide ? multiply_adds(n) : multiply_adds_avx2(n);
    t = now() - t;
    printf("%.1f GFLOP/s (checksum %g)\n", n * (wide ? 16 * 32.0 : 12 * 16.0) / t / 1e9, sum);
    return 0;
}
