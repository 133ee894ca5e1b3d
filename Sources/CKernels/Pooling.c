// Max pooling of one plane held inside a −∞ border, a vector of outputs at a time (baseline, AVX2 and AVX-512).
#include "Dispatch.h"
#include "RowCopy.h"
#include <string.h>

// Along the rows of a plane, from its −∞-bordered copy (RowCopy.h), eight output rows at a time, a vector of each.
// Each output takes its taps in row-major order, keeping a value that is greater or NaN (v > best || v != v), as the
// definition's loop does: the first NaN of a window stays.
#define DEFINE_MAXPOOL(NAME, ATTR, VEC, IVEC, L, COPY, STORE)                                                     \
    ATTR static void NAME(const float *plane, int h, int w, const wc_window *win, float *out, int oh, int ow,     \
                          float *copy) {                                                                          \
        const row_copy g = row_copy_of(h, w, win, oh, ow);                                                        \
        COPY(plane, h, w, win, g, copy);                                                                          \
        const long step = win->sh * g.pitch;                                                                      \
        for (int oy0 = 0; oy0 < oh; oy0 += ROWS) {                                                                \
            const int rows = oh - oy0 < ROWS ? oh - oy0 : ROWS;                                                   \
            const float *base = copy + oy0 * step;                                                                \
            for (int ox = 0; ox < ow; ox += L) {                                                                  \
                VEC best[ROWS];                                                                                   \
                for (int r = 0; r < ROWS; r++) best[r] = -__builtin_inff() - (VEC){0};                            \
                for (int ki = 0; ki < win->kh; ki++)                                                              \
                    for (int kj = 0; kj < win->kw; kj++) {                                                        \
                        const float *p = base + row_copy_tap(g, win, ki, kj) + ox;                                \
                        for (int r = 0; r < ROWS; r++) {                                                          \
                            VEC v;                                                                                \
                            memcpy(&v, p + r * step, sizeof v);                                                   \
                            IVEC take = (v > best[r]) | (v != v);                                                 \
                            best[r] = (VEC)(((IVEC)v & take) | ((IVEC)best[r] & ~take));                          \
                        }                                                                                         \
                    }                                                                                             \
                for (int r = 0; r < rows; r++) STORE(VEC, L, out + (long)(oy0 + r) * ow + ox, best[r], ow - ox);   \
            }                                                                                                     \
        }                                                                                                         \
    }

DEFINE_MAXPOOL(maxpool_generic, , row8, rowi8, 8, copy_rows_generic, PART_STORE)
#if defined(__x86_64__)
DEFINE_MAXPOOL(maxpool_avx2, __attribute__((target("avx2"))), row8, rowi8, 8, copy_rows_avx2, PART_STORE)
DEFINE_MAXPOOL(maxpool_avx512, __attribute__((target("avx512f"))), row16, rowi16, 16, copy_rows_avx512, MASK_STORE)
#endif

void wc_maxpool_rows(const float *plane, int h, int w, const wc_window *window, float *out, int oh, int ow,
                     float *scratch) {
    DISPATCH(maxpool, plane, h, w, window, out, oh, ow, scratch);
}

// ---- Across planes ------------------------------------------------------------------------------------------------
// Small outputs (3×3, 7×7: SqueezeNet's later pools) fill a fraction of a row vector, so sixteen planes go together
// instead, one per lane: each tap is one gather at the planes' stride, and each output keeps the same value, by the
// same comparisons in the same order, as `wc_maxpool_rows` (taps outside the input are skipped, as its −∞ border
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
