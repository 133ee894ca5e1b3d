// Direct convolution on packed weights (AVX-512; AVX2 where DirectConvolution.applies allows it): no im2col matrix, no
// product buffer, no scatter. Each block of eight output channels × 48 outputs (AVX2: 24, four channels at a time) is
// summed in registers over every (channel, tap), its inputs read straight from a zero-bordered copy of the images,
// then stored into the NCHW output with the bias, residual and clamp.
//
// The copy holds a group of images side by side: row Y of every image in one row, image g's bordered columns from
// g·S on, where S leaves each image's right border as the next one's left border. The outputs of one row of every
// image in the group are then consecutive there, S apart, so a 16-lane vector of outputs spans several images on
// small maps (7×7 maps, S = 8: two images' 14 outputs in 16 lanes) instead of one row's few outputs. For a stride of 2 each
// row is kept as its even and odd columns, so the inputs under consecutive outputs are consecutive there too.
#include "Dispatch.h"
#include <stdlib.h>

enum { PANEL = 8, GROUP_BYTES = 16 << 10 };

// For each channel and each bordered row Y, `phases` (the stride sw) rows of `width` values; phase φ holds the row's
// columns X ≡ φ (mod sw) at X / sw. `segment` is S / sw: how far apart the images' outputs are in a phase row.
typedef struct {
    int rows, width, phases, segment;
} layout;

static layout layout_of(int w, const wc_window *win, int oh, int ow, int images) {
    layout l;
    const int s = win->sw;
    // The last output reads bordered column (ow − 1)·sw + (kw − 1)·dw: past the image's own columns it must read the
    // next image's left border (zeros), so S > that column − pad_left, and S ≥ w + pad_left so the images do not overlap.
    int span = w + win->pad_left, reach = (ow - 1) * s + (win->kw - 1) * win->dw + 1 - win->pad_left;
    span = span > reach ? span : reach;
    span = (span + s - 1) / s * s;
    l.phases = s;
    l.segment = span / s;
    l.rows = (oh - 1) * win->sh + (win->kh - 1) * win->dh + 1;
    // Vectors of 16 outputs run past the last image's, and read at most (kw − 1)·dw / sw further.
    l.width = ((long)images * l.segment + 15) / 16 * 16 + (win->kw - 1) * win->dw / s + 1;
    l.width = (l.width + 15) / 16 * 16;
    return l;
}

// Outputs a vector holds: 16 on AVX-512, else 8 (AVX2).
static int vector_lanes(void) { return wc_kernels_isa() == WC_ISA_AVX512 ? 16 : 8; }

int wc_conv_direct_runs(const wc_window *win) {
#if defined(__x86_64__)
    return (wc_kernels_isa() == WC_ISA_AVX512 || wc_kernels_isa() == WC_ISA_AVX2) && (win->sw == 1 || win->sw == 2);
#else
    (void)win;
    return 0;
#endif
}

size_t wc_conv_padded_count(int c, int w, const wc_window *win, int oh, int ow, int images) {
    layout l = layout_of(w, win, oh, ow, images);
    return (size_t)c * l.rows * l.phases * l.width;
}

int wc_conv_padded_rows(const wc_window *win, int oh) { return layout_of(1, win, oh, 1, 1).rows; }

// Positions of a phase row the output vectors cover: every image's segment, the last one only up to its outputs.
static long covered(layout l, int ow, int images) { return (long)(images - 1) * l.segment + ow; }

double wc_conv_direct_useful(int w, const wc_window *win, int oh, int ow, int images) {
    const int l = vector_lanes();
    const long lanes = (covered(layout_of(w, win, oh, ow, images), ow, images) + l - 1) / l * l;
    return (double)images * ow / lanes;
}

int wc_conv_direct_images(int w, const wc_window *win, int oh, int ow, int most) {
    const int segment = layout_of(w, win, oh, ow, 1).segment, widest = (64 + segment - 1) / segment;
    int best = 1;
    for (int g = 2; g <= widest && g <= most; g++)
        if (wc_conv_direct_useful(w, win, oh, ow, g) > wc_conv_direct_useful(w, win, oh, ow, best)) best = g;
    return best;
}

#define DEFINE_PAD(NAME, ATTR, ROW)                                                                               \
    ATTR static void NAME(const float *image, long image_stride, int images, int c, int h, int w,                 \
                          const wc_window *win, layout l, int first_row, int rows, float *padded) {               \
        const int s = l.phases, span = l.segment * s;                                                             \
        for (int ch = 0; ch < c; ch++)                                                                            \
            for (int y = first_row; y < first_row + rows; y++) {                                                  \
                const int iy = y - win->pad_top;                                                                  \
                float *dst = padded + ((long)ch * l.rows + y) * s * l.width;                                      \
                memset(dst, 0, sizeof(float) * s * l.width);                                                      \
                if (iy < 0 || iy >= h) continue;                                                                  \
                /* Image g's input column ix sits at bordered column g·S + pad_left + ix. */                      \
                for (int g = 0; g < images; g++)                                                                  \
                    ROW(image + g * image_stride + ((long)ch * h + iy) * w, w, g * span + win->pad_left, s, dst, l.width); \
            }                                                                                                     \
    }
DEFINE_PAD(pad_generic, , wc_row_phases_generic)
#if defined(__x86_64__)
DEFINE_PAD(pad_avx512, __attribute__((target("avx512f"))), wc_row_phases_avx512)
DEFINE_PAD(pad_avx2, __attribute__((target("avx2"))), wc_row_phases_avx2)
#endif

void wc_conv_pad(const float *image, long image_stride, int images, int c, int h, int w, const wc_window *win, int oh,
                 int ow, int first_row, int rows, float *padded) {
    const layout l = layout_of(w, win, oh, ow, images);
#if defined(__x86_64__)
    if (wc_kernels_isa() == WC_ISA_AVX512) {
        pad_avx512(image, image_stride, images, c, h, w, win, l, first_row, rows, padded);
        return;
    }
    if (wc_kernels_isa() == WC_ISA_AVX2) {
        pad_avx2(image, image_stride, images, c, h, w, win, l, first_row, rows, padded);
        return;
    }
#endif
    pad_generic(image, image_stride, images, c, h, w, win, l, first_row, rows, padded);
}

#if defined(__x86_64__)
// A vector of L consecutive outputs of a phase row (L = 16 on AVX-512, 8 on AVX2): where its inputs under the first
// tap start in the copy, and the pieces it stores (one per image it spans: lanes [from, to), lane 0 at `out` in the
// group's output).
enum { MAX_PIECES = 17 };
typedef struct {
    long in;
    int pieces;
    long out[MAX_PIECES];
    unsigned char from[MAX_PIECES], to[MAX_PIECES];
} run;

// offsets[kk]: where (channel, ki, kj)'s input under the group's first output sits in the copy. Then every output row
// of every image, L phase-row positions at a time (position i is output i mod seg of image i / seg, an output when
// i mod seg < ow), into runs; returns their count.
static int plan_runs(layout l, int c, const wc_window *win, int ow, int images, int first_row, int rows,
                     long image_stride, int lanes_per_vector, int *offsets, run *runs) {
    const int s = l.phases, seg = l.segment;
    for (int ch = 0, kk = 0; ch < c; ch++)
        for (int ki = 0; ki < win->kh; ki++)
            for (int kj = 0; kj < win->kw; kj++, kk++) {
                const int x = kj * win->dw;
                offsets[kk] = (((ch * l.rows + ki * win->dh) * s + x % s) * l.width) + x / s;
            }
    int count_runs = 0;
    const int lanes = (int)covered(l, ow, images);
    for (int oy = first_row; oy < first_row + rows; oy++)
        for (int i0 = 0; i0 < lanes; i0 += lanes_per_vector) {
            run *r = &runs[count_runs++];
            r->in = (long)oy * win->sh * s * l.width + i0;
            r->pieces = 0;
            for (int g = i0 / seg; g < images && g * seg < i0 + lanes_per_vector; g++) {
                const int from = g * seg > i0 ? g * seg : i0;
                const int to = g * seg + ow < i0 + lanes_per_vector ? g * seg + ow : i0 + lanes_per_vector;
                if (from >= to) continue;
                r->from[r->pieces] = (unsigned char)(from - i0);
                r->to[r->pieces] = (unsigned char)(to - i0);
                r->out[r->pieces++] = g * image_stride + (long)oy * ow + i0 - (long)g * seg;
            }
        }
    return count_runs;
}

// One block: `rows` (≤ 8) output channels × NV runs, summed over every (channel, tap) in order, then stored with the
// bias, residual and clamp.
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
        /* Both loops unrolled, every index into acc a constant, so that acc stays in registers (with a break  */ \
        /* out of the rows, Clang stored all of it to the stack after the sums and loaded it back).             */ \
        _Pragma("clang loop unroll(full)")                                                                        \
        for (int r = 0; r < PANEL; r++) {                                                                         \
            const __m512 bv = _mm512_set1_ps(bias && r < rows ? bias[r] : 0.0f);                                  \
            _Pragma("clang loop unroll(full)")                                                                    \
            for (int v = 0; v < NV; v++) {                                                                        \
                const __m512 x = _mm512_add_ps(acc[r][v], bv);                                                    \
                for (int i = 0; r < rows && i < runs[v].pieces; i++) {                                            \
                    const __mmask16 m = (__mmask16)(((1u << runs[v].to[i]) - 1) & ~((1u << runs[v].from[i]) - 1)); \
                    const long at = r * plane + runs[v].out[i];                                                   \
                    __m512 y = x;                                                                                 \
                    if (residual) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, residual + at));                  \
                    _mm512_mask_storeu_ps(out + at, m, wc_clamp512(y, low, high));                                \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
    }
DEFINE_DIRECT_BLOCK(direct_block3, 3)
DEFINE_DIRECT_BLOCK(direct_block2, 2)
DEFINE_DIRECT_BLOCK(direct_block1, 1)

// AVX2 (sixteen registers): a panel's eight channels as two halves of four, each half's 4 × NV accumulators summed
// over every (channel, tap), the inputs read again from L1 for the second half — the packed product's 4 × 3 block.
#define DEFINE_DIRECT_BLOCK8(NAME, NV)                                                                            \
    __attribute__((target("avx2,fma"))) static inline void NAME(                                                  \
        int k, const float *a, const float *padded, const int *offsets, const run *runs, float *out, long plane,  \
        int rows, const float *bias, const float *residual, __m256 low, __m256 high) {                            \
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                                           \
        const float *base[NV];                                                                                    \
        for (int v = 0; v < NV; v++) base[v] = padded + runs[v].in;                                               \
        for (int h = 0; h < rows; h += 4) {                                                                       \
            __m256 acc[4][NV];                                                                                    \
            for (int r = 0; r < 4; r++)                                                                           \
                for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();                                     \
            const float *ah = a + h;                                                                              \
            for (int kk = 0; kk < k; kk++, ah += PANEL) {                                                         \
                const int at = offsets[kk];                                                                       \
                __m256 bv[NV];                                                                                    \
                for (int v = 0; v < NV; v++) bv[v] = _mm256_loadu_ps(base[v] + at);                               \
                for (int r = 0; r < 4; r++) {                                                                     \
                    /* Every register an accumulator or an operand (12 + 3 + 1): the last input vector read again  */ \
                    /* for each row, from L1, as the packed product does (else Clang spilled an accumulator).      */ \
                    __asm__ volatile("" ::: "memory");                                                            \
                    bv[NV - 1] = _mm256_loadu_ps(base[NV - 1] + at);                                              \
                    const __m256 av = _mm256_broadcast_ss(ah + r);                                                \
                    for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(bv[v], av, acc[r][v]);               \
                }                                                                                                 \
            }                                                                                                     \
            _Pragma("clang loop unroll(full)")                                                                    \
            for (int r = 0; r < 4; r++) {                                                                         \
                const __m256 bv = _mm256_set1_ps(bias && h + r < rows ? bias[h + r] : 0.0f);                      \
                _Pragma("clang loop unroll(full)")                                                                \
                for (int v = 0; v < NV; v++) {                                                                    \
                    const __m256 x = _mm256_add_ps(acc[r][v], bv);                                                \
                    for (int i = 0; h + r < rows && i < runs[v].pieces; i++) {                                    \
                        const long at = (h + r) * plane + runs[v].out[i];                                         \
                        __m256 y = x;                                                                             \
                        if (residual) {                                                                           \
                            const __m256i m = _mm256_andnot_si256(                                                \
                                _mm256_cmpgt_epi32(_mm256_set1_epi32(runs[v].from[i]), lane),                     \
                                _mm256_cmpgt_epi32(_mm256_set1_epi32(runs[v].to[i]), lane));                      \
                            y = _mm256_add_ps(y, _mm256_maskload_ps(residual + at, m));                           \
                        }                                                                                         \
                        wc_store_lanes8(out + at, wc_clamp256(y, low, high), runs[v].from[i], runs[v].to[i]);     \
                    }                                                                                             \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
    }
DEFINE_DIRECT_BLOCK8(direct8_block3, 3)
DEFINE_DIRECT_BLOCK8(direct8_block2, 2)
DEFINE_DIRECT_BLOCK8(direct8_block1, 1)

// Panels in groups whose weights fit in a third of L1, each group swept over the runs three at a time, every panel of
// the group on the same runs: their inputs are then read from L1 by every panel of the group (it was panel by panel,
// each sweeping the whole copy from L2). AVX-512, C harness, one thread, best of 3 runs of 7, GFLOP/s, panel by panel
// → in groups: 16 → 64 3×3 on 55×55 102 → 117, on 15×15 102 → 134; 64 → 256 on 13×13 89 → 93; 32 → 128 on 27×27
// 117 → 111 (this machine's runs moved by 20%).
#define DEFINE_DIRECT(NAME, ATTR, VEC, SPLAT, BLOCK3, BLOCK2, BLOCK1)                                             \
    ATTR static void NAME(const float *padded, int k, int count_runs, const int *offsets, const run *runs,       \
                          const float *packed, int first, int count, const float *bias, const float *residual,    \
                          long plane, float low, float high, float *out) {                                        \
        const VEC lo = SPLAT(low), hi = SPLAT(high);                                                              \
        const int bytes = k * PANEL * (int)sizeof(float);                                                         \
        const int group = bytes >= GROUP_BYTES ? 1 : GROUP_BYTES / bytes;                                         \
        for (int g0 = first; g0 < first + count; g0 += group * PANEL) {                                           \
            const int g1 = first + count < g0 + group * PANEL ? first + count : g0 + group * PANEL;               \
            for (int i = 0; i < count_runs; i += 3)                                                               \
                for (int p = g0; p < g1; p += PANEL) {                                                            \
                    const int channels = first + count - p < PANEL ? first + count - p : PANEL;                   \
                    const float *a = packed + (long)p * k, *pb = bias ? bias + p : NULL;                          \
                    const float *res = residual ? residual + p * plane : NULL;                                    \
                    float *o = out + p * plane;                                                                   \
                    if (count_runs - i >= 3) BLOCK3(k, a, padded, offsets, runs + i, o, plane, channels, pb, res, lo, hi); \
                    else if (count_runs - i == 2) BLOCK2(k, a, padded, offsets, runs + i, o, plane, channels, pb, res, lo, hi); \
                    else BLOCK1(k, a, padded, offsets, runs + i, o, plane, channels, pb, res, lo, hi);            \
                }                                                                                                 \
        }                                                                                                         \
    }
DEFINE_DIRECT(direct_avx512, __attribute__((target("avx512f"))), __m512, _mm512_set1_ps, direct_block3, direct_block2,
              direct_block1)
DEFINE_DIRECT(direct_avx2, __attribute__((target("avx2,fma"))), __m256, _mm256_set1_ps, direct8_block3, direct8_block2,
              direct8_block1)
#endif

void wc_conv_direct(const float *padded, int images, int c, int w, const wc_window *win, int oh, int ow,
                    const float *packed, int first, int count, int first_row, int rows, const float *bias,
                    const float *residual, long image_stride, float low, float high, float *out) {
#if defined(__x86_64__)
    const layout l = layout_of(w, win, oh, ow, images);
    const int k = c * win->kh * win->kw, lanes = vector_lanes();
    int *offsets = malloc(sizeof(int) * (size_t)k);
    run *runs = malloc(sizeof(run) * (size_t)rows * ((covered(l, ow, images) + lanes - 1) / lanes));
    if (!offsets || !runs) abort();
    const int count_runs = plan_runs(l, c, win, ow, images, first_row, rows, image_stride, lanes, offsets, runs);
    const long plane = (long)oh * ow;
    if (lanes == 16)
        direct_avx512(padded, k, count_runs, offsets, runs, packed, first, count, bias, residual, plane, low, high, out);
    else
        direct_avx2(padded, k, count_runs, offsets, runs, packed, first, count, bias, residual, plane, low, high, out);
    free(offsets);
    free(runs);
#else
    (void)padded; (void)images; (void)c; (void)w; (void)win; (void)oh; (void)ow; (void)packed; (void)first;
    (void)count; (void)first_row; (void)rows; (void)bias; (void)residual; (void)image_stride; (void)low; (void)high; (void)out;
    abort();
#endif
}
