// Direct convolution on packed weights (AVX-512): no im2col matrix, no product buffer, no scatter. Each block of eight
// output channels × 32 (or 16) consecutive outputs of one row is summed in registers over every (channel, tap), its
// inputs read straight from a zero-bordered copy of the image, then stored into the NCHW output with the bias, residual
// and clamp. For a stride of 2, each bordered row is kept as its even and odd columns, so the inputs under consecutive
// outputs are consecutive there too.
#include "Dispatch.h"
#include <stdlib.h>

enum { PANEL = 8 };

// The bordered copy: for each channel and each row Y of the bordered image, `sw` phase rows of `width` values, phase φ
// holding bordered columns X ≡ φ (mod sw) at X / sw.
typedef struct {
    int rows, width, phases;
} layout;

static layout layout_of(int w, const wc_window *win, int oh, int ow) {
    (void)w;
    layout l;
    l.phases = win->sw;
    l.rows = (oh - 1) * win->sh + (win->kh - 1) * win->dh + 1;
    // Reads run to the end of the last 16-output vector, at most (kw − 1)·dw / sw further.
    l.width = (ow + 15) / 16 * 16 + (win->kw - 1) * win->dw / win->sw + 1;
    l.width = (l.width + 15) / 16 * 16;
    return l;
}

int wc_conv_direct_runs(const wc_window *win) {
#if defined(__x86_64__)
    return wc_kernels_isa() == WC_ISA_AVX512 && (win->sw == 1 || win->sw == 2);
#else
    (void)win;
    return 0;
#endif
}

size_t wc_conv_padded_count(int c, int w, const wc_window *win, int oh, int ow) {
    layout l = layout_of(w, win, oh, ow);
    return (size_t)c * l.rows * l.phases * l.width;
}

void wc_conv_pad(const float *image, int c, int h, int w, const wc_window *win, int oh, int ow, float *padded) {
    layout l = layout_of(w, win, oh, ow);
    const int s = l.phases;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < l.rows; y++) {
            const int iy = y - win->pad_top;
            for (int phase = 0; phase < s; phase++) {
                float *dst = padded + (((long)ch * l.rows + y) * s + phase) * l.width;
                if (iy < 0 || iy >= h) {
                    memset(dst, 0, sizeof(float) * l.width);
                    continue;
                }
                const float *src = image + ((long)ch * h + iy) * w;
                // Columns i with ix = i·s + phase − pad_left inside [0, w): [lo, hi).
                const int first = win->pad_left - phase, lo = first <= 0 ? 0 : (first + s - 1) / s;
                int hi = w - 1 + first < 0 ? 0 : (w - 1 + first) / s + 1;
                hi = hi < l.width ? hi : l.width;
                memset(dst, 0, sizeof(float) * (lo < hi ? lo : l.width));
                if (lo >= hi) continue;
                if (s == 1) memcpy(dst + lo, src + lo - first, sizeof(float) * (hi - lo));
                else
                    for (int i = lo; i < hi; i++) dst[i] = src[i * s - first];
                memset(dst + hi, 0, sizeof(float) * (l.width - hi));
            }
        }
}

#if defined(__x86_64__)
// A vector of up to 16 consecutive outputs of one row: where its inputs under output (0, 0)'s first tap start in the
// bordered copy, where it goes in an output plane, and how many of its lanes are outputs.
typedef struct {
    long in, out;
    int lanes;
} run;

// One block: `rows` (≤ 8) output channels × NV runs (of one row or of several: a short row fills one run), summed
// over every (channel, tap) in order, then stored with the bias, residual and clamp.
#define DEFINE_DIRECT_BLOCK(NAME, NV)                                                                             \
    __attribute__((target("avx512f"))) static inline void NAME(                                                   \
        int k, const float *a, const float *padded, const int *offsets, const run *runs, float *out, long plane,  \
        int rows, const float *bias, const float *residual, __m512 low, __m512 high) {                            \
        __m512 acc[PANEL][NV];                                                                                    \
        const float *base[NV];                                                                                    \
        for (int v = 0; v < NV; v++) base[v] = padded + runs[v].in;                                               \
        for (int r = 0; r < PANEL; r++)                                                                           \
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();                                         \
        for (int kk = 0; kk < k; kk++) {                                                                          \
            const int at = offsets[kk];                                                                           \
            __m512 bv[NV];                                                                                        \
            for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(base[v] + at);                                   \
            for (int r = 0; r < PANEL; r++) {                                                                     \
                const __m512 av = _mm512_set1_ps(a[kk * PANEL + r]);                                              \
                for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(bv[v], av, acc[r][v]);                   \
            }                                                                                                     \
        }                                                                                                         \
        for (int r = 0; r < PANEL; r++) {                                                                         \
            if (r >= rows) break;                                                                                 \
            const __m512 bv = _mm512_set1_ps(bias ? bias[r] : 0.0f);                                              \
            for (int v = 0; v < NV; v++) {                                                                        \
                const __mmask16 m = runs[v].lanes >= 16 ? 0xffff : (__mmask16)((1u << runs[v].lanes) - 1);        \
                const long at = r * plane + runs[v].out;                                                          \
                __m512 x = _mm512_add_ps(acc[r][v], bv);                                                          \
                if (residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, residual + at));                      \
                _mm512_mask_storeu_ps(out + at, m, wc_clamp512(x, low, high));                                    \
            }                                                                                                     \
        }                                                                                                         \
    }
DEFINE_DIRECT_BLOCK(direct_block3, 3)
DEFINE_DIRECT_BLOCK(direct_block2, 2)
DEFINE_DIRECT_BLOCK(direct_block1, 1)

__attribute__((target("avx512f"))) static void direct_avx512(const float *padded, int c, int w, const wc_window *win,
                                                             int oh, int ow, const float *packed, int first, int count,
                                                             const float *bias, const float *residual, float low,
                                                             float high, float *out, int *offsets, run *runs) {
    layout l = layout_of(w, win, oh, ow);
    const int s = l.phases, kh = win->kh, kw = win->kw, k = c * kh * kw;
    // offsets[kk]: where (channel, ki, kj)'s input under output (0, 0) sits in the bordered copy.
    for (int ch = 0, kk = 0; ch < c; ch++)
        for (int ki = 0; ki < kh; ki++)
            for (int kj = 0; kj < kw; kj++, kk++) {
                const int x = kj * win->dw;
                offsets[kk] = (((ch * l.rows + ki * win->dh) * s + x % s) * l.width) + x / s;
            }
    // Every row's outputs, 16 at a time.
    int count_runs = 0;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox += 16)
            runs[count_runs++] = (run){(long)oy * win->sh * s * l.width + ox, (long)oy * ow + ox, ow - ox < 16 ? ow - ox : 16};
    const long plane = (long)oh * ow;
    const __m512 lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
    for (int p = first; p < first + count; p += PANEL) {
        const int rows = first + count - p < PANEL ? first + count - p : PANEL;
        const float *a = packed + (long)p * k, *pb = bias ? bias + p : NULL;
        const float *res = residual ? residual + p * plane : NULL;
        float *o = out + p * plane;
        int i = 0;
        for (; i + 3 <= count_runs; i += 3) direct_block3(k, a, padded, offsets, runs + i, o, plane, rows, pb, res, lo, hi);
        if (count_runs - i == 2) direct_block2(k, a, padded, offsets, runs + i, o, plane, rows, pb, res, lo, hi);
        if (count_runs - i == 1) direct_block1(k, a, padded, offsets, runs + i, o, plane, rows, pb, res, lo, hi);
    }
}
#endif

void wc_conv_direct(const float *padded, int c, int w, const wc_window *win, int oh, int ow, const float *packed,
                    int first, int count, const float *bias, const float *residual, float low, float high,
                    float *out) {
#if defined(__x86_64__)
    int *offsets = malloc(sizeof(int) * (size_t)c * win->kh * win->kw);
    run *runs = malloc(sizeof(run) * (size_t)oh * ((ow + 15) / 16));
    if (!offsets || !runs) abort();
    direct_avx512(padded, c, w, win, oh, ow, packed, first, count, bias, residual, low, high, out, offsets, runs);
    free(offsets);
    free(runs);
#else
    (void)padded; (void)c; (void)w; (void)win; (void)oh; (void)ow; (void)packed; (void)first; (void)count;
    (void)bias; (void)residual; (void)low; (void)high; (void)out;
    abort();
#endif
}
