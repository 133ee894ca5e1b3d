// Max pooling of one plane held inside a −∞ border, a vector of outputs at a time (baseline, AVX2 and AVX-512).
#include "Dispatch.h"
#include <string.h>

// The row kernel over a bordered plane, R output rows at a time.
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

// Each output takes its taps in row-major order, keeping a value that is greater or NaN (v > best || v != v), as the
// definition's loop does: the first NaN of a window stays. Rows are taken R at a time for independent chains.
#define DEFINE_MAXPOOL(NAME, ATTR, VEC, IVEC, L, ...)                                                             \
    ATTR static void NAME(const float *plane, long width, int kh, int kw, int dh, int dw, int sh, int sw,          \
                          float *out, int oh, int ow) {                                                           \
        enum { R = 4 };                                                                                           \
        for (int oy0 = 0; oy0 < oh; oy0 += R) {                                                                   \
            const int rows = oh - oy0 < R ? oh - oy0 : R;                                                         \
            for (int ox = 0; ox < ow; ox += L) {                                                                  \
                VEC best[R];                                                                                      \
                for (int r = 0; r < R; r++)                                                                       \
                    for (int i = 0; i < L; i++) best[r][i] = -__builtin_inff();                                   \
                for (int ki = 0; ki < kh; ki++)                                                                   \
                    for (int kj = 0; kj < kw; kj++)                                                               \
                        for (int r = 0; r < R; r++) {                                                             \
                            /* Rows past the last repeat it; they are not stored. */                              \
                            const int oy = oy0 + (r < rows ? r : rows - 1);                                       \
                            const float *p = plane + ((long)oy * sh + (long)ki * dh) * width + kj * dw + (long)ox * sw; \
                            VEC v;                                                                                \
                            ROW_TAP(VEC, L, v, p, sw, __VA_ARGS__);                                               \
                            IVEC take = (v > best[r]) | (v != v);                                                 \
                            best[r] = (VEC)(((IVEC)v & take) | ((IVEC)best[r] & ~take));                          \
                        }                                                                                         \
                ROW_STORE(L, best, rows, out, oy0, ox, ow);                                                       \
            }                                                                                                     \
        }                                                                                                         \
    }

typedef float mp8 __attribute__((vector_size(32)));
typedef int mpi8 __attribute__((vector_size(32)));
DEFINE_MAXPOOL(maxpool_generic, , mp8, mpi8, 8, 0, 2, 4, 6, 8, 10, 12, 14)
#if defined(__x86_64__)
typedef float mp16 __attribute__((vector_size(64)));
typedef int mpi16 __attribute__((vector_size(64)));
DEFINE_MAXPOOL(maxpool_avx2, __attribute__((target("avx2"))), mp8, mpi8, 8, 0, 2, 4, 6, 8, 10, 12, 14)
DEFINE_MAXPOOL(maxpool_avx512, __attribute__((target("avx512f"))), mp16, mpi16, 16,
               0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#endif

void wc_maxpool_plane(const float *plane, long width, int kh, int kw, int dh, int dw, int sh, int sw, float *out,
                      int oh, int ow) {
    DISPATCH(maxpool, plane, width, kh, kw, dh, dw, sh, sw, out, oh, ow);
}

// ---- Across planes ------------------------------------------------------------------------------------------------
// Small outputs (3×3, 7×7: SqueezeNet's later pools) fill a fraction of a row vector, so sixteen planes go together
// instead, one per lane: each tap is one gather at the planes' stride, and each output keeps the same value, by the
// same comparisons in the same order, as `wc_maxpool_plane` (taps outside the input are skipped, as its −∞ border
// never wins).
enum { ACROSS_OUTPUTS = 64 };

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static void maxpool_across_avx512(const float *input, long count, int h, int w, const wc_window *win, float *output,
                                  int oh, int ow) {
    const long plane = (long)h * w;
    const int outputs = oh * ow;
    const __m512i lanes = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32((int)plane));
    float results[ACROSS_OUTPUTS * 16];
    for (long p = 0; p < count; p += 16) {
        const int valid = count - p < 16 ? (int)(count - p) : 16;
        const __mmask16 m = valid == 16 ? 0xFFFF : (__mmask16)((1u << valid) - 1);
        const float *base = input + p * plane;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                __m512 best = _mm512_set1_ps(-__builtin_inff());
                for (int ki = 0; ki < win->kh; ki++) {
                    const int iy = oy * win->sh - win->pad_top + ki * win->dh;
                    if (iy < 0 || iy >= h) continue;
                    for (int kj = 0; kj < win->kw; kj++) {
                        const int ix = ox * win->sw - win->pad_left + kj * win->dw;
                        if (ix < 0 || ix >= w) continue;
                        const __m512 v = _mm512_mask_i32gather_ps(best, m, lanes, base + (long)iy * w + ix, 4);
                        const __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                        best = _mm512_mask_mov_ps(best, take, v);
                    }
                }
                _mm512_storeu_ps(results + (oy * ow + ox) * 16, best);
            }
        for (int l = 0; l < valid; l++)
            for (int q = 0; q < outputs; q++) output[(p + l) * outputs + q] = results[q * 16 + l];
    }
}
#endif

int wc_maxpool_across_runs(int h, int w, int oh, int ow) {
#if defined(__x86_64__)
    return wc_kernels_isa() == WC_ISA_AVX512 && oh * ow <= ACROSS_OUTPUTS && (long)h * w * 15 <= 0x7fffffffL;
#else
    return 0;
#endif
}

void wc_maxpool_across(const float *input, long count, int h, int w, const wc_window *window, float *output, int oh,
                       int ow) {
#if defined(__x86_64__)
    if (wc_maxpool_across_runs(h, w, oh, ow)) maxpool_across_avx512(input, count, h, w, window, output, oh, ow);
#endif
}
