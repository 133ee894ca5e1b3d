// im2col. Rows of 16 outputs or more: each output row of each tap copied from its input row in one pass, the columns
// over padding zeroed; on AVX-512 16 outputs at a time through masked loads (lanes over padding are neither read nor
// kept), stride 2 as two loads whose even lanes are taken; on AVX2 stride 2 as 8 outputs from two loads by shuffles;
// elsewhere, and for other strides, a plain loop. Shorter rows (the last layers' 2 to 15 wide maps, where a call per
// row costs more than its copy): a table of each tap's input offset for every output of the plane, shared by every
// channel and image, then one pass along the whole plane, on AVX-512 16 outputs at a time (masked loads where the
// tap's inputs are consecutive, else masked gathers; input planes of at most 32 values by permutes from two registers),
// on AVX2 masked loads of 8 where they are consecutive.
#include "Dispatch.h"
#include <stdlib.h>

// The output columns [*lo, *hi) of a row whose input column ox·sw + x_off lies inside [0, w).
static inline void inside(int ow, int w, int sw, int x_off, int *lo, int *hi) {
    int a = x_off >= 0 ? 0 : (-x_off + sw - 1) / sw;
    int b = w - x_off <= 0 ? 0 : (w - x_off + sw - 1) / sw;
    *lo = a < ow ? a : ow;
    *hi = b < *lo ? *lo : b < ow ? b : ow;
}

// The loops every variant shares: ROW(dst, src, x_off, lo, hi) fills one output row of ow values from the input row
// `src` (the columns [lo, hi) from the input, the others 0). Output rows [oy0, oy1) of each image.
#define DEFINE_IM2COL_ROWS(NAME, ATTR, ROW)                                                                            \
    ATTR static void NAME(const float *input, int c, int h, int w, int first_image, int images, int first_channel,  \
                          int channels, const wc_window *win, int oy0, int oy1, int ow, float *col) {             \
        const int kh = win->kh, kw = win->kw, sh = win->sh, sw = win->sw;                                         \
        const long ohw = (long)(oy1 - oy0) * ow, cols = (long)images * ohw, plane = (long)h * w;                  \
        for (int ch = 0; ch < channels; ch++)                                                                     \
            for (int ki = 0; ki < kh; ki++)                                                                       \
                for (int kj = 0; kj < kw; kj++) {                                                                 \
                    const int x_off = kj * win->dw - win->pad_left;                                               \
                    int lo, hi;                                                                                   \
                    inside(ow, w, sw, x_off, &lo, &hi);                                                           \
                    float *row = col + ((long)(ch * kh + ki) * kw + kj) * cols;                                   \
                    for (int img = 0; img < images; img++) {                                                      \
                        const float *src = input + ((long)(first_image + img) * c + first_channel + ch) * plane;  \
                        for (int oy = oy0; oy < oy1; oy++) {                                                      \
                            float *dst = row + img * ohw + (long)(oy - oy0) * ow;                                 \
                            const int iy = oy * sh + ki * win->dh - win->pad_top;                                 \
                            if (iy < 0 || iy >= h) {                                                              \
                                memset(dst, 0, sizeof(float) * ow);                                               \
                                continue;                                                                         \
                            }                                                                                     \
                            const float *in = src + (long)iy * w;                                                 \
                            ROW(dst, in, x_off, lo, hi);                                                          \
                        }                                                                                         \
                    }                                                                                             \
                }                                                                                                 \
    }

#define PLAIN_ROW(dst, src, x_off, lo, hi)                                                                        \
    do {                                                                                                          \
        for (int ox = 0; ox < lo; ox++) dst[ox] = 0;                                                              \
        if (sw == 1) memcpy(dst + lo, src + lo + x_off, sizeof(float) * (hi - lo));                               \
        else for (int ox = lo; ox < hi; ox++) dst[ox] = src[(long)ox * sw + x_off];                               \
        for (int ox = hi; ox < ow; ox++) dst[ox] = 0;                                                             \
    } while (0)

DEFINE_IM2COL_ROWS(im2col_generic, , PLAIN_ROW)

// Table[tap][p]: the input offset, in its plane, of output p's value under the tap; −1 over padding. Then, per tap,
// its shift: d where every such offset is p + d (stride 1 on a map as wide as its input), else NOT_SHIFTED.
enum { NOT_SHIFTED = -0x7fffffff };
static int *plane_table(const wc_window *win, int h, int w, int oh, int ow) {
    const int taps = win->kh * win->kw, ohw = oh * ow;
    int *table = malloc(sizeof(int) * (size_t)taps * (ohw + 1));
    if (!table) return NULL;
    int *shifts = table + (size_t)taps * ohw;
    for (int t = 0; t < taps; t++) {
        shifts[t] = NOT_SHIFTED;
        int found = 0, same = 1;
        for (int p = 0; p < ohw; p++) {
            const int iy = (p / ow) * win->sh + (t / win->kw) * win->dh - win->pad_top;
            const int ix = (p % ow) * win->sw + (t % win->kw) * win->dw - win->pad_left;
            const int at = iy >= 0 && iy < h && ix >= 0 && ix < w ? iy * w + ix : -1;
            table[t * ohw + p] = at;
            if (at < 0) continue;
            if (!found) shifts[t] = at - p, found = 1;
            same = same && at == p + shifts[t];
        }
        if (!same) shifts[t] = NOT_SHIFTED;
    }
    return table;
}

// PLANE(dst, src, offsets, count, shift) fills one tap's outputs of one plane (shift: the tap's, see plane_table).
#define DEFINE_IM2COL_PLANES(NAME, ATTR, PLANE)                                                                    \
    ATTR static void NAME(const float *input, int c, int h, int w, int first_image, int images, int first_channel,  \
                          int channels, int taps, const int *table, int ohw, float *col) {                        \
        const long cols = (long)images * ohw, plane = (long)h * w;                                                \
        const int *shifts = table + (long)taps * ohw;                                                             \
        for (int ch = 0; ch < channels; ch++)                                                                     \
            for (int t = 0; t < taps; t++)                                                                        \
                for (int img = 0; img < images; img++) {                                                          \
                    const float *src = input + ((long)(first_image + img) * c + first_channel + ch) * plane;      \
                    PLANE(col + ((long)ch * taps + t) * cols + (long)img * ohw, src, table + (long)t * ohw, ohw,  \
                          shifts[t]);                                                                             \
                }                                                                                                 \
    }

#define PLAIN_PLANE(dst, src, offsets, count, shift)                                                              \
    for (int p = 0; p < (count); p++) (dst)[p] = (offsets)[p] >= 0 ? (src)[(offsets)[p]] : 0.0f

DEFINE_IM2COL_PLANES(planes_generic, , PLAIN_PLANE)

#if defined(__x86_64__)
// AVX2 at stride 2 (the stems, the downsampling convolutions): 8 outputs at a time, the even values of the 16 inputs
// under them (wc_even8), where those inputs lie inside the row; the edges value by value.
#define AVX2_ROW(dst, src, x_off, lo, hi)                                                                         \
    do {                                                                                                          \
        if (sw != 2) {                                                                                            \
            PLAIN_ROW(dst, src, x_off, lo, hi);                                                                   \
            break;                                                                                                \
        }                                                                                                         \
        int ox = 0;                                                                                               \
        for (; ox < lo; ox++) dst[ox] = 0;                                                                        \
        for (; ox + 8 <= hi && 2L * ox + x_off + 16 <= w; ox += 8) {                                              \
            const float *p = src + 2L * ox + x_off;                                                               \
            _mm256_storeu_ps(dst + ox, wc_even8(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)));                     \
        }                                                                                                         \
        for (; ox < hi; ox++) dst[ox] = src[2L * ox + x_off];                                                     \
        for (; ox < ow; ox++) dst[ox] = 0;                                                                        \
    } while (0)
DEFINE_IM2COL_ROWS(im2col_avx2, __attribute__((target("avx2"))), AVX2_ROW)

// A tap whose outputs all read at one shift d (stride 1 on a map as wide as its input: SqueezeNet's 3×3 layers on
// 15×15 and 7×7 maps): 8 outputs at a time, one masked load each (lanes whose offset is −1 are not read, 0); the last
// 1–7 outputs, and other taps (a gather was slower than this loop), value by value. One thread, 64 images, µs, value
// by value / masked loads (AMD EPYC, best of 7, three runs): 16 channels of 15×15 under a 3×3 window 1,703–2,002 /
// 770–839, 32 of 7×7 426–873 / 218–264, 64 of 3×3 180–428 / 153–220.
__attribute__((target("avx2"))) static inline void shifted_plane(float *dst, const float *src, const int *offsets,
                                                                  int count, int shift) {
    int p = 0;
    for (; shift != NOT_SHIFTED && p + 8 <= count; p += 8) {
        const __m256i live = _mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)(offsets + p)), _mm256_set1_epi32(-1));
        _mm256_storeu_ps(dst + p, _mm256_maskload_ps(src + p + shift, live));
    }
    for (; p < count; p++) dst[p] = offsets[p] >= 0 ? src[offsets[p]] : 0.0f;
}
#define SHIFTED_PLANE(dst, src, offsets, count, shift) shifted_plane(dst, src, offsets, count, shift)
DEFINE_IM2COL_PLANES(planes_avx2, __attribute__((target("avx2"))), SHIFTED_PLANE)

// 16 outputs at a time: lanes outside [lo, hi) are masked off the load (never read, 0 in the register) and every
// lane up to ow stored. Stride 2 loads the 32 inputs under 16 outputs and keeps the even ones.
#define VECTOR_ROW(dst, src, x_off, lo, hi)                                                                       \
    do {                                                                                                          \
        for (int ox = 0; ox < ow; ox += 16) {                                                                     \
            const int lanes = ow - ox < 16 ? ow - ox : 16;                                                        \
            const int a = lo - ox > 0 ? lo - ox : 0, b = hi - ox < lanes ? hi - ox : lanes;                       \
            const unsigned live = b > a ? ((1u << b) - 1) & ~((1u << a) - 1) : 0;                                 \
            const float *p = src + (long)ox * sw + x_off;                                                         \
            __m512 v;                                                                                             \
            if (sw == 1) v = _mm512_maskz_loadu_ps((__mmask16)live, p);                                           \
            else {                                                                                                \
                __m512 first = _mm512_maskz_loadu_ps((__mmask16)_pdep_u32(live & 0xff, 0x5555), p);               \
                __m512 second = _mm512_maskz_loadu_ps((__mmask16)_pdep_u32(live >> 8, 0x5555), p + 16);           \
                __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);       \
                v = _mm512_permutex2var_ps(first, even, second);                                                  \
            }                                                                                                     \
            _mm512_mask_storeu_ps(dst + ox, (__mmask16)((1u << lanes) - 1), v);                                   \
        }                                                                                                         \
    } while (0)

#define AVX512_ROW(dst, src, x_off, lo, hi)                                                                       \
    do {                                                                                                          \
        if (sw <= 2) VECTOR_ROW(dst, src, x_off, lo, hi);                                                         \
        else PLAIN_ROW(dst, src, x_off, lo, hi);                                                                  \
    } while (0)

DEFINE_IM2COL_ROWS(im2col_avx512, __attribute__((target("avx512f,bmi2"))), AVX512_ROW)

// 16 outputs at a time: the lanes whose offset is −1 are masked off the gather (0 in the register), or, for a tap
// whose inputs are consecutive (`plane_table`'s shift), off a plain load. Planes of fewer than 8 outputs are copied
// value by value, faster than a gather of a few lanes (input planes of at most 32 values: `planes_permute_avx512`).
// The plain loads in place of gathers: SqueezeNet 1.1 at 64 px, batch 1, one thread, each node's least time over 2 alternated rounds, µs: its 3×3 layers on 7×7 maps
// 22.6 → 18.8, on 3×3 maps 16.2 → 14.4 and 10.3 → 8.9.
#define GATHER_PLANE(dst, src, offsets, count, shift)                                                             \
    if ((count) < 8) PLAIN_PLANE(dst, src, offsets, count, shift);                                                \
    else for (int p = 0; p < (count); p += 16) {                                                                  \
        const __mmask16 lanes = (__mmask16)((count) - p >= 16 ? 0xffff : (1u << ((count) - p)) - 1);               \
        const __m512i at = _mm512_maskz_loadu_epi32(lanes, (offsets) + p);                                        \
        const __mmask16 live = _mm512_mask_cmpge_epi32_mask(lanes, at, _mm512_setzero_si512());                   \
        const __m512 v = (shift) != NOT_SHIFTED ? _mm512_maskz_loadu_ps(live, (src) + p + (shift))                \
                                                : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, at, (src), 4); \
        _mm512_mask_storeu_ps((dst) + p, lanes, v);                                                               \
    }
DEFINE_IM2COL_PLANES(planes_avx512, __attribute__((target("avx512f"))), GATHER_PLANE)

// Input planes of at most 32 values (ResNet-18 64 px's 4×4 and 2×2 maps), AVX-512: each plane loaded whole into two
// registers, and every output of every tap taken from them by one permute per 16 outputs (lanes over padding zeroed),
// the table's offsets being the permute's indices. With one image a channel's taps are one run of taps·ohw outputs,
// else one permute per tap of each image. The value-by-value copy of 2×2 maps (`GATHER_PLANE`) had taken 3.4% of
// ResNet-18 64 px's samples at batch 1 on two threads, all on the calling thread while the other waited.
__attribute__((target("avx512f"))) static void planes_permute_avx512(
    const float *input, int c, int h, int w, int first_image, int images, int first_channel, int channels, int taps,
    const int *table, int ohw, float *col) {
    const long cols = (long)images * ohw, plane = (long)h * w;
    const __mmask16 low = (__mmask16)(plane >= 16 ? 0xffff : (1u << plane) - 1);
    const __mmask16 high = (__mmask16)(plane <= 16 ? 0 : (1u << (plane - 16)) - 1);
    const long run = images == 1 ? (long)taps * ohw : ohw;
    for (int ch = 0; ch < channels; ch++)
        for (int img = 0; img < images; img++) {
            const float *src = input + ((long)(first_image + img) * c + first_channel + ch) * plane;
            const __m512 a = _mm512_maskz_loadu_ps(low, src), b = _mm512_maskz_loadu_ps(high, src + 16);
            for (int t = 0; t < (images == 1 ? 1 : taps); t++) {
                const int *offsets = table + (long)t * ohw;
                float *dst = col + ((long)ch * taps + t) * cols + (long)img * ohw;
                for (long p = 0; p < run; p += 16) {
                    const __mmask16 lanes = (__mmask16)(run - p >= 16 ? 0xffff : (1u << (run - p)) - 1);
                    const __m512i at = _mm512_maskz_loadu_epi32(lanes, offsets + p);
                    const __mmask16 live = _mm512_mask_cmpge_epi32_mask(lanes, at, _mm512_setzero_si512());
                    _mm512_mask_storeu_ps(dst + p, lanes, _mm512_maskz_permutex2var_ps(live, a, at, b));
                }
            }
        }
}
#endif

void wc_im2col_isa(int isa, const float *input, int c, int h, int w, int first_image, int images, int first_channel,
                   int channels, const wc_window *window, int oh, int ow, float *col) {
    int *table = ow < 16 ? plane_table(window, h, w, oh, ow) : NULL;
    if (table) {
#if defined(__x86_64__)
        if (isa == WC_ISA_AVX512 && (long)h * w <= 32) {
            planes_permute_avx512(input, c, h, w, first_image, images, first_channel, channels,
                                  window->kh * window->kw, table, oh * ow, col);
            free(table);
            return;
        }
#endif
        DISPATCH_ISA(isa, planes, input, c, h, w, first_image, images, first_channel, channels, window->kh * window->kw,
                     table, oh * ow, col);
        free(table);
        return;
    }
    DISPATCH_ISA(isa, im2col, input, c, h, w, first_image, images, first_channel, channels, window, 0, oh, ow, col);
}

void wc_im2col_rows(const float *input, int c, int h, int w, int first_image, int images, int first_channel,
                    int channels, const wc_window *window, int first_row, int rows, int ow, float *col) {
    DISPATCH(im2col, input, c, h, w, first_image, images, first_channel, channels, window, first_row,
             first_row + rows, ow, col);
}

void wc_im2col(const float *input, int c, int h, int w, int first_image, int images, int first_channel, int channels,
               const wc_window *window, int oh, int ow, float *col) {
    wc_im2col_isa(wc_kernels_isa(), input, c, h, w, first_image, images, first_channel, channels, window, oh, ow, col);
}
