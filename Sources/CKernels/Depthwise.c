// Depthwise convolution, compiled for baseline, AVX2 and AVX-512: along the rows of one plane (a vector of outputs at a
// time; at stride 2 on AVX2 and outputs 7 to 15 wide, without the bordered copy), or across channels (a vector of
// channels at a time) for maps too narrow to fill a vector along a row.
#include "CKernels.h"
#include <stdint.h>
#include <string.h>

#include "Dispatch.h"
#include "RowCopy.h"
#include "Transpose.h"

// ---- Along the rows of a plane -------------------------------------------------------------------------------------
//
// The plane is copied inside a zero border, each row as its stride phases (RowCopy.h), so that every tap reads L
// consecutive values for L outputs of a row: a strip at a time, the rows that eight output rows read, so that the copy
// stays in L1 (a whole 112×112 plane's copy did not, and was written to L2 and read back: 3×3, one thread, µs per
// plane, stride 2 5.9 → 3.3, stride 1 7.7 → 6.2). Eight output rows are summed at once, a vector of each, so that
// eight independent chains of fused multiply-adds hide their latency. Each output is bias, then fma(input, tap, sum) for
// every tap in row-major order (a tap over the border adds 0·tap, which leaves a finite sum as it is), then + residual
// and min(max(x, low), high) as Swift rounds it, stored once.

// One vector of sums stored at out + at (its first `left` lanes): + residual, then min(max(x, low), high) — the row
// kernel's `out`, `residual`, `lo` and `hi`.
#define ROWS_FINISH(VEC, IVEC, L, LOAD, STORE, sums, at, left)                                                    \
    do {                                                                                                          \
        const long at_ = (at);                                                                                    \
        VEC x_ = (sums);                                                                                          \
        if (residual) {                                                                                           \
            VEC add_;                                                                                             \
            LOAD(VEC, L, add_, residual + at_, (left));                                                           \
            x_ = x_ + add_;                                                                                       \
        }                                                                                                         \
        VEC_CLAMP(IVEC, x_, lo, hi);                                                                              \
        STORE(VEC, L, out + at_, x_, (left));                                                                     \
    } while (0)
// NAME##_body for a K×K window at stride S (no dilation), every size but the padding a constant.
#define ROWS_FIXED(NAME, K, S)                                                                                    \
    do {                                                                                                          \
        const wc_window fixed_ = {K, K, S, S, 1, 1, win->pad_top, win->pad_left};                                 \
        NAME##_body(plane, h, w, &fixed_, taps, bias, out, oh, ow, residual, low, high, copy, 1);                 \
    } while (0)
#define DEFINE_ROWS(NAME, ATTR, VEC, IVEC, L, WIDE, COPY, LOAD, STORE)                                            \
    ATTR static inline __attribute__((always_inline)) void NAME##_body(                                          \
        const float *plane, int h, int w, const wc_window *win, const float *taps, float bias, float *out, int oh,  \
        int ow, const float *residual, float low, float high, float *copy, int fixed) {                          \
        const row_copy g = row_copy_of(h, w, win, oh, ow);                                                        \
        const long step = win->sh * g.pitch;                                                                      \
        /* Bordered rows read by one group of ROWS output rows. */                                                \
        const long strip = (long)(ROWS - 1) * win->sh + (long)(win->kh - 1) * win->dh + 1;                        \
        /* x − 0 splats x as it is (0 + x would turn −0 into +0). */                                              \
        const VEC b = bias - (VEC){0}, lo = low - (VEC){0}, hi = high - (VEC){0};                                 \
        long tapAt[ROWS_TAPS];                                                                                    \
        const int tabled = !fixed && row_copy_taps(g, win, tapAt);                                                \
        for (int oy0 = 0; oy0 < oh; oy0 += ROWS) {                                                                \
            const int rows = oh - oy0 < ROWS ? oh - oy0 : ROWS;                                                   \
            COPY(plane, h, w, win, g, (long)oy0 * win->sh, strip, copy);                                          \
            const float *base = copy;                                                                             \
            int ox = 0;                                                                                           \
            /* WIDE vectors of each row at once, four rows at a time (12 chains of multiply-adds on AVX2 instead */ \
            /* of 8, each with a load as its operand), for whole runs of WIDE·L outputs; the rest as below. One  */ \
            /* thread, 3×3 on 112×112 and 56×56, 5×5 on 28×28 at stride 1: 8.8–11.0 → 12.1–14.0 multiply-adds  */ \
            /* per ns (C harness, alternated builds).                                                           */ \
            for (; WIDE && ox + WIDE * L <= ow; ox += WIDE * L)                                                   \
                for (int q = 0; q < rows; q += 4) {                                                               \
                    VEC acc[4][WIDE + !WIDE];                                                                     \
                    for (int r = 0; r < 4; r++)                                                                   \
                        for (int v = 0; v < WIDE; v++) acc[r][v] = b;                                             \
                    for (int ki = 0, t = 0; ki < win->kh; ki++)                                                   \
                        for (int kj = 0; kj < win->kw; kj++, t++) {                                               \
                            const float *p =                                                                      \
                                base + (tabled ? tapAt[t] : row_copy_tap(g, win, ki, kj)) + ox + q * step;        \
                            const VEC k = taps[ki * win->kw + kj] - (VEC){0};                                     \
                            for (int r = 0; r < 4; r++)                                                           \
                                for (int v = 0; v < WIDE; v++) {                                                  \
                                    VEC x;                                                                        \
                                    memcpy(&x, p + r * step + v * L, sizeof x);                                   \
                                    acc[r][v] = __builtin_elementwise_fma(x, k, acc[r][v]);                       \
                                }                                                                                 \
                        }                                                                                         \
                    for (int r = 0; r < 4 && q + r < rows; r++)                                                   \
                        for (int v = 0; v < WIDE; v++)                                                            \
                            ROWS_FINISH(VEC, IVEC, L, LOAD, STORE, acc[r][v],                                     \
                                        (long)(oy0 + q + r) * ow + ox + v * L, L);                                \
                }                                                                                                 \
            for (; ox < ow; ox += L) {                                                                            \
                VEC acc[ROWS];                                                                                    \
                for (int r = 0; r < ROWS; r++) acc[r] = b;                                                        \
                for (int ki = 0, t = 0; ki < win->kh; ki++)                                                       \
                    for (int kj = 0; kj < win->kw; kj++, t++) {                                                   \
                        const float *p = base + (tabled ? tapAt[t] : row_copy_tap(g, win, ki, kj)) + ox;          \
                        const VEC k = taps[ki * win->kw + kj] - (VEC){0};                                         \
                        for (int r = 0; r < ROWS; r++) {                                                          \
                            VEC v;                                                                                \
                            memcpy(&v, p + r * step, sizeof v);                                                   \
                            acc[r] = __builtin_elementwise_fma(v, k, acc[r]);                                     \
                        }                                                                                         \
                    }                                                                                             \
                for (int r = 0; r < rows; r++)                                                                    \
                    ROWS_FINISH(VEC, IVEC, L, LOAD, STORE, acc[r], (long)(oy0 + r) * ow + ox, ow - ox);           \
            }                                                                                                     \
        }                                                                                                         \
    }                                                                                                             \
    ATTR static void NAME(const float *plane, int h, int w, const wc_window *win, const float *taps, float bias,   \
                          float *out, int oh, int ow, const float *residual, float low, float high, float *copy) { \
        /* 3×3 and 5×5 at strides 1 and 2 with their sizes as constants (loops unrolled, taps' offsets folded). */ \
        if (win->kh == win->kw && (win->kh == 3 || win->kh == 5) && win->dh == 1 && win->dw == 1 &&               \
            win->sh == win->sw && win->sh <= 2) {                                                                 \
            if (win->kh == 3 && win->sh == 1) ROWS_FIXED(NAME, 3, 1);                                             \
            else if (win->kh == 3) ROWS_FIXED(NAME, 3, 2);                                                        \
            else if (win->sh == 1) ROWS_FIXED(NAME, 5, 1);                                                        \
            else ROWS_FIXED(NAME, 5, 2);                                                                          \
            return;                                                                                               \
        }                                                                                                         \
        NAME##_body(plane, h, w, win, taps, bias, out, oh, ow, residual, low, high, copy, 0);                     \
    }

DEFINE_ROWS(rows_generic, , row8, rowi8, 8, 0, copy_strip_generic, PART_LOAD, PART_STORE)
#if defined(__x86_64__)
DEFINE_ROWS(rows_avx2, __attribute__((target("avx2,fma"))), row8, rowi8, 8, 3, copy_strip_avx2, PART_LOAD, PART_STORE)
DEFINE_ROWS(rows_avx512, __attribute__((target("avx512f"))), row16, rowi16, 16, 0, copy_strip_avx512, MASK_LOAD,
            MASK_STORE)
#endif

// ---- Stride 2 along the rows, AVX2, without the copy ----------------------------------------------------------------
//
// At stride 2 the bordered copy above split every row into its two phases, a shuffle, a permute and a store for each
// eight inputs, and took about 40% of the layer (perf; the stores straddle cache lines). Here the eight inputs of tap
// kj under eight outputs are the even values of the sixteen from column 2·ox − pad_left + kj, read from the plane: one
// in-lane shuffle of two loads, with taps kj and kj + 1 sharing the loads (the odd values). The shuffle leaves the
// outputs in the lane order 0 1 4 5 2 3 6 7 in every sum alike; one permute puts them back before the residual, clamp
// and store. The few vectors whose inputs reach past either end of a row (the first, the last one or two) read them
// from zero-filled copies of those stretches of every row, made once per plane; a row above or below the plane reads a
// row of zeros, so that every tap adds 0·tap there as the bordered copy does: the same sums, in the same order, as the
// kernel above. Four output rows at once, for four independent chains of multiply-adds. One thread, C harness, µs,
// bordered copy / this kernel (across channels), one image's planes: 576 channels 14×14 → 7×7 135–145 / 91–103
// (104–109); 672 channels 5×5 14 → 7 212–219 / 140–153 (193–198); 192 channels 28 → 14 113–118 / 91–97 (87–89); four
// images' planes: 144 channels 16 → 8 108–110 / 76–79; 5×5 158–160 / 104–105. In MobileNetV2 at 224 px, batch 64,
// two threads, minimum of 3 alternated rounds: 192 channels 28 → 14 5.66 → 3.53 ms. Wider maps stay on the copy, where
// this kernel measured slower (96 channels 112 → 56 331 / 434–501; 144 channels 56 → 28 187 / 205–226; 96 channels
// 32 → 16 in MobileNetV2 at 64 px, batch 64: 1.71 → 2.55 ms), perhaps from its loads at odd columns straddling cache
// lines and its nine rows read at once; narrower ones run across channels (`depthwiseConv2d`'s caller: there this
// kernel lost, 4 → 2 and 8 → 4 by 2–3×).
enum { S2_ROWS = 4, S2_MAX_KW = 7, S2_MAX_PAD = 8, S2_MIN_OW = 7, S2_MAX_OW = 15 };
enum { S2_EDGES = 4, S2_PITCH = 24, S2_ZEROS = 32 };  // edge stretches per plane, floats per row of one, zeros

// The windows and widths the stride-2 kernels without the copy take (no ISA test).
static int stride2_fits(const wc_window *win, int ow) {
    return win->sw == 2 && win->dw == 1 && win->kh <= S2_MAX_KW && win->kw <= S2_MAX_KW &&
           win->pad_left <= S2_MAX_PAD && ow >= S2_MIN_OW && ow <= S2_MAX_OW;
}

int wc_depthwise_stride2_runs(const wc_window *win, int ow) {
#if defined(__x86_64__)
    return wc_kernels_isa() == WC_ISA_AVX2 && stride2_fits(win, ow);
#else
    return 0;
#endif
}

// Outputs at most eight wide at stride 2 (`small_stride2_avx2`): each row of the bordered plane that a tap reads, as its
// even and its odd columns, SMALL_PITCH floats each.
enum { SMALL_MAX_OW = 8, SMALL_PITCH = 16 };

// Whether `small_stride2_avx2` takes outputs 7 wide at stride 2 on AVX-512 too, ahead of the sixteen-lane kernel
// without the copy, which fills under half of its lanes there. Each node's least over 4 alternated rounds, µs,
// sixteen-lane rows → split rows: MobileNetV2 224 px's 14 → 7 at batch 1, one thread, 34 → 32; EfficientNet-Lite0's
// 5×5 onto 7×7 67 → 51, and at batch 64 on two threads 2,220 → 1,840.
static int small_stride2_avx512(const wc_window *win, int ow) {
#if defined(__x86_64__)
    return wc_kernels_isa() == WC_ISA_AVX512 && stride2_fits(win, ow) && ow < SMALL_MAX_OW;
#else
    (void)win; (void)ow;
    return 0;
#endif
}

static int uncopied_avx512_runs(int h, int w, const wc_window *win, int oh, int ow);

size_t wc_depthwise_rows_scratch_count(int h, int w, const wc_window *window, int oh, int ow) {
    // The AVX-512 kernel without the copy reads the plane as it stands (the split rows come first, below).
    if (!small_stride2_avx512(window, ow) && uncopied_avx512_runs(h, w, window, oh, ow)) return 1;
    const size_t copy = wc_row_copy_count(h, w, window, oh, ow);
    if (!wc_depthwise_stride2_runs(window, ow) && !small_stride2_avx512(window, ow)) return copy;
    // Outputs up to SMALL_MAX_OW wide: the rows split, with those that the last block's rows past the plane's last
    // read (summed, not stored). Wider: the edge stretches.
    const int rows = (oh + SMALL_MAX_OW - 1) / SMALL_MAX_OW * SMALL_MAX_OW;
    const size_t own = S2_ZEROS + (ow <= SMALL_MAX_OW ? (size_t)(2 * (rows - 1) + window->kh) * 2 * SMALL_PITCH
                                                      : (size_t)S2_EDGES * h * S2_PITCH);
    return own > copy ? own : copy;
}

#if defined(__x86_64__)
// Eight outputs of S2_ROWS rows into acc; line[ki][r] is the input row under output row r for tap row ki, from the
// column under the first output (kw a constant where the caller passes one).
__attribute__((target("avx2,fma"), always_inline))
static inline void stride2_sums(__m256 acc[S2_ROWS], const float *const *line, const float *k, int kh, int kw) {
    for (int ki = 0; ki < kh; ki++)
        for (int kj = 0; kj < kw; kj += 2) {
            const __m256 even = _mm256_set1_ps(k[ki * kw + kj]);
            const __m256 odd = _mm256_set1_ps(kj + 1 < kw ? k[ki * kw + kj + 1] : 0.0f);
            for (int r = 0; r < S2_ROWS; r++) {
                const float *p = line[ki * S2_ROWS + r] + kj;
                const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
                acc[r] = _mm256_fmadd_ps(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), even, acc[r]);
                if (kj + 1 < kw)
                    acc[r] = _mm256_fmadd_ps(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)), odd, acc[r]);
            }
        }
}

// Whether the eight outputs from ox read only columns [0, w) of a row (`span` from column 2·ox − pad).
static inline int stride2_inside(int ox, int pad, int span, int w) {
    return 2 * ox - pad >= 0 && 2 * ox - pad + span <= w;
}

// SMALL_MAX_OW output rows into acc, output row i's first split row (row 2·i of the bordered plane from `first`) at
// first + 4·SMALL_PITCH·i, every tap in row-major order (kh, kw constants where the caller passes them).
__attribute__((target("avx2,fma"), always_inline))
static inline void small_sums(__m256 acc[SMALL_MAX_OW], const float *first, const float *taps, int kh, int kw) {
    for (int ki = 0; ki < kh; ki++)
        for (int kj = 0; kj < kw; kj++) {
            const __m256 t = _mm256_set1_ps(taps[ki * kw + kj]);
            // Even columns from kj / 2, odd ones from SMALL_PITCH + (kj − 1) / 2, of row 2·oy + ki.
            const long at = (long)ki * 2 * SMALL_PITCH + (kj & 1 ? SMALL_PITCH + (kj - 1) / 2 : kj / 2);
            for (int i = 0; i < SMALL_MAX_OW; i++)
                acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(first + 4 * SMALL_PITCH * i + at), t, acc[i]);
        }
}

// Outputs at most eight wide (ow ≤ SMALL_MAX_OW: 14 → 7 at 3×3 with padding 1, TensorFlow's 5×5 "same" 17 → 7 after
// its Pad): each row of the bordered plane that a tap reads is split once into its even and its odd columns
// (2·(ow − 1) + kw ≤ 21 of them: three loads, a shuffle and a permute each way), so that the inputs of tap
// (ki, kj) under a row's outputs are eight consecutive values of one of the two, and each output row is one vector:
// kh·kw loads and multiply-adds, eight rows at once. A row above or below the plane is split as zeros. Each output is
// bias, then fma(input, tap, sum) for every tap in row-major order, 0 over the border: the sums of the kernels above.
// One thread, C harness, bit-equal, ns per plane, before (the stride-2 kernel below, or the 3×3 one) / this one: 5×5
// 17 → 7 207–212 / 124, 16 → 8 at padding 2 176–193 / 116; 7×7 15 → 8 261 / 163; 3×3 14 → 7 at padding 1 83–85 /
// 72–80 (with a residual 135 / 77), at padding (0, 1) 170 / 92. EfficientNet-Lite0 at batch 16, one thread, its
// 672-channel 5×5 14 → 7 layer 2,588 → 1,253 µs (onnxruntime 897).
__attribute__((target("avx2,fma")))
static void small_stride2_avx2(const float *plane, int h, int w, const wc_window *win, const float *taps, float bias,
                               float *out, int oh, int ow, const float *residual, float low, float high,
                               float *scratch) {
    const int kh = win->kh, kw = win->kw, rows = 2 * (oh - 1) + kh;
    const row8 lo = low - (row8){0}, hi = high - (row8){0};
    // scratch: S2_ZEROS zeros (left so by the caller), then bordered row R's even columns at S2_ZEROS + 2·SMALL_PITCH·R,
    // its odd ones SMALL_PITCH further.
    float *split = scratch + S2_ZEROS;
    __m256i inside[3];
    for (int j = 0; j < 3; j++) inside[j] = wc_lanes_inside8(8 * j - win->pad_left, w);
    for (int r = 0; r < rows; r++) {
        const int y = r - win->pad_top;
        __m256 v[3] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        const long start = (long)y * w - win->pad_left;  // the first column's place in the plane
        if (y < 0 || y >= h) {
            // Above or below the plane: zeros.
        } else if (start >= 0 && start + 24 <= (long)h * w) {
            // Inside the plane: plain loads, the lanes past the row's ends (the next row's values) cleared.
            for (int j = 0; j < 3; j++)
                v[j] = _mm256_and_ps(_mm256_loadu_ps(plane + start + 8 * j), _mm256_castsi256_ps(inside[j]));
        } else {
            // Masked loads (a fifth slower here): addresses formed as integers, they may lie outside the plane.
            const uintptr_t from = (uintptr_t)(plane + (long)y * w) - sizeof(float) * (uintptr_t)win->pad_left;
            for (int j = 0; j < 3; j++) v[j] = _mm256_maskload_ps((const float *)(from + 32 * j), inside[j]);
        }
        float *even = split + (size_t)r * 2 * SMALL_PITCH, *odd = even + SMALL_PITCH;
        const __m256 zero = _mm256_setzero_ps();
        _mm256_storeu_ps(even, wc_even8(v[0], v[1]));
        _mm256_storeu_ps(odd, wc_odd8(v[0], v[1]));
        _mm256_storeu_ps(even + 8, wc_even8(v[2], zero));
        _mm256_storeu_ps(odd + 8, wc_odd8(v[2], zero));
    }
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(ow), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int oy0 = 0; oy0 < oh; oy0 += SMALL_MAX_OW) {
        const int n = oh - oy0 < SMALL_MAX_OW ? oh - oy0 : SMALL_MAX_OW;
        // Rows past the plane's last are summed from the scratch past the split rows, and not stored.
        const float *first = split + (size_t)(2 * oy0) * 2 * SMALL_PITCH;
        __m256 acc[SMALL_MAX_OW];
        for (int i = 0; i < SMALL_MAX_OW; i++) acc[i] = _mm256_set1_ps(bias);
        if (kh == 3 && kw == 3) small_sums(acc, first, taps, 3, 3);
        else if (kh == 5 && kw == 5) small_sums(acc, first, taps, 5, 5);
        else small_sums(acc, first, taps, kh, kw);
        // + residual, then min(max(x, low), high), as ROWS_FINISH does; every row's residual read before any store
        // (the output may be the residual). A row shorter than a vector is stored whole, its last lanes over the
        // start of the next row, stored after it; the block's last row through a mask (a masked store is slow here:
        // one a row took a fifth of the kernel's time).
        row8 x[SMALL_MAX_OW];
        for (int i = 0; i < n; i++) {
            x[i] = (row8)acc[i];
            if (residual) x[i] = x[i] + (row8)_mm256_maskload_ps(residual + (long)(oy0 + i) * ow, mask);
            VEC_CLAMP(rowi8, x[i], lo, hi);
        }
        for (int i = 0; i < n; i++) {
            float *to = out + (long)(oy0 + i) * ow;
            if (i + 1 < n || ow == 8) _mm256_storeu_ps(to, (__m256)x[i]);
            else _mm256_maskstore_ps(to, mask, (__m256)x[i]);
        }
    }
}

__attribute__((target("avx2,fma")))
static void rows_stride2_avx2(const float *plane, int h, int w, const wc_window *win, const float *taps, float bias,
                              float *out, int oh, int ow, const float *residual, float low, float high,
                              float *scratch) {
    const int kh = win->kh, kw = win->kw;
    // Columns [s, s + span) of a row feed the eight outputs from the one whose window starts at column s.
    const int span = ((kw - 1) & ~1) + 16;
    const row8 lo = low - (row8){0}, hi = high - (row8){0};
    // scratch: S2_ZEROS zeros (left so by the caller), then the edge vectors' stretches, S2_PITCH floats a row.
    const float *zeros = scratch;
    for (int ox = 0, edges = 0; ox < ow; ox += 8) {
        if (stride2_inside(ox, win->pad_left, span, w)) continue;
        const int s = 2 * ox - win->pad_left;
        // Three masked loads a row (lanes outside [0, w) read as 0, their addresses formed as integers: they may lie
        // before the plane).
        float *strip = scratch + S2_ZEROS + (size_t)edges * h * S2_PITCH;
        __m256i inside[3];
        for (int j = 0; j < 3; j++) inside[j] = wc_lanes_inside8(s + 8 * j, w);
        for (int y = 0; y < h; y++) {
            const uintptr_t from = (uintptr_t)(plane + (long)y * w) + sizeof(float) * (uintptr_t)(intptr_t)s;
            for (int j = 0; j < 3; j++)
                _mm256_storeu_ps(strip + (size_t)y * S2_PITCH + 8 * j,
                                 _mm256_maskload_ps((const float *)(from + 32 * j), inside[j]));
        }
        edges++;
    }
    const float *line[S2_MAX_KW * S2_ROWS];
    for (int oy0 = 0; oy0 < oh; oy0 += S2_ROWS) {
        const int rows = oh - oy0 < S2_ROWS ? oh - oy0 : S2_ROWS;
        const int top = oy0 * win->sh - win->pad_top;
        for (int ox = 0, edge = 0; ox < ow; ox += 8) {
            const float *source;
            long pitch = w;
            if (!stride2_inside(ox, win->pad_left, span, w)) {  // the edge stretches, in order
                source = scratch + S2_ZEROS + (size_t)edge++ * h * S2_PITCH;
                pitch = S2_PITCH;
            } else {
                source = plane + (2 * ox - win->pad_left);
            }
            for (int ki = 0; ki < kh; ki++)
                for (int r = 0; r < S2_ROWS; r++) {
                    const int iy = top + r * win->sh + ki * win->dh;
                    line[ki * S2_ROWS + r] = r < rows && iy >= 0 && iy < h ? source + iy * pitch : zeros;
                }
            __m256 acc[S2_ROWS];
            for (int r = 0; r < S2_ROWS; r++) acc[r] = _mm256_set1_ps(bias);
            if (kh == 3 && kw == 3) stride2_sums(acc, line, taps, 3, 3);
            else if (kh == 5 && kw == 5) stride2_sums(acc, line, taps, 5, 5);
            else stride2_sums(acc, line, taps, kh, kw);
            for (int r = 0; r < rows; r++) {
                const row8 sums = (row8)_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc[r]), 0xd8));
                ROWS_FINISH(row8, rowi8, 8, PART_LOAD, PART_STORE, sums, (long)(oy0 + r) * ow + ox, ow - ox);
            }
        }
    }
}

// ---- 3×3 at stride 1 along the rows, AVX2, without the copy ------------------------------------------------------
//
// The 3×3 "same" layers of MobileNetV2 and EfficientNet-Lite0 on maps 12 or more wide (112, 56, 32, 28, 16, 14):
// the nine taps stay in registers, and each input row's three vectors under eight outputs (columns ox − 1, ox, ox + 1)
// feed the four output rows of a block that read it. Inside a row those are three loads; at the row's ends the vector
// is shifted one lane with a zero coming in, and a row above or below the plane is a row of zeros, so each output is
// bias, then fma(input, tap, sum) for all nine taps in row-major order with 0 over the border — the sums of the
// bordered copy above, bit for bit, without the copy. A row not a whole number of vectors wide ends with a vector
// over its last eight outputs, which stores only those the vectors before it did not (the same values: with the output
// in place of the residual, the lanes stored already are not read back as residual). One thread, C harness, ns per
// plane, 3×3 on planes read from memory, bordered copy / this kernel, bit-equal: 16×16 437–468 / 199–213; 32×32
// 1,022–1,092 / 644–674; 28×28 1,258 / 730; 56×56 2,872–3,475 / 1,823–2,348; 112×112 9,758 / 6,749 (six rows a
// block instead of four: 16×16 0.51 of the copy's time against 0.46, wider maps slower). AVX2 only: the AVX-512 row
// kernel has sixteen lanes and was not measured against it. From 12 wide it also beats the flattened kernel (below;
// sixteen images' planes, 14×14 157–160 against 254–263, 12×12 125–188 against 152–205; 10×10 115–172 against
// 88–147).
static int rows_3x3_runs(int h, int w, const wc_window *win, int oh, int ow) {
    if (wc_kernels_isa() != WC_ISA_AVX2 || win->kh != 3 || win->kw != 3 || win->dh != 1 || win->dw != 1) return 0;
    if (win->sh == 1 && win->sw == 1) return win->pad_top == 1 && win->pad_left == 1 && oh == h && ow == w && w >= 12;
    return win->sh == 2 && win->sw == 2 && win->pad_left <= 1 && w == 2 * ow && (ow >= 8 || win->pad_left == 1 && ow >= 6);
}

// Output rows a block: four at stride 1, three at stride 2 (its seven input rows' loads and shuffles with the nine taps
// fit the sixteen registers better than nine rows'). Each block's sums are kept in registers before its stores
// (WC_KEEP): Clang had sunk each row's nine multiply-adds into that row's store branch, one chain after another. C
// harness, one thread, ns a plane, before → after: stride 1 112×112 4,967–5,048 → 3,828–4,929, 56×56 1,305 → 1,029,
// 28×28 426 → 361; stride 2 112 → 56 2,282 → 2,024 (three rows: 1,807), 56 → 28 678 → 618 (577), 28 → 14 233 → 210
// (182). MobileNetV2 224 px, batch 1, one thread, its depthwise layers' least µs summed 1,524 → 1,380 (112 → 56 240 →
// 199, 56×56 207 → 169); EfficientNet-Lite0's 2,455 → 2,334 (its 5×5 layers, on the bordered copy, unchanged).
enum { D3_ROWS = 4, D3S2_ROWS = 3 };

// Input row `row`'s three vectors under outputs [ox, ox + 8): columns ox − 1, ox, ox + 1, with a zero for column −1
// at the left end (EDGE 1) and for column w at the right end (EDGE 2).
#define D3_VECTORS(EDGE, row, ox, x0, x1, x2)                                                                  \
    do {                                                                                                          \
        x1 = _mm256_loadu_ps((row) + (ox));                                                                       \
        if ((EDGE) == 1)                                                                                          \
            x0 = _mm256_blend_ps(_mm256_permutevar8x32_ps(x1, _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6)),         \
                                 _mm256_setzero_ps(), 1);                                                         \
        else                                                                                                      \
            x0 = _mm256_loadu_ps((row) + (ox) - 1);                                                               \
        if ((EDGE) == 2)                                                                                          \
            x2 = _mm256_blend_ps(_mm256_permutevar8x32_ps(x1, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7)),         \
                                 _mm256_setzero_ps(), 0x80);                                                      \
        else                                                                                                      \
            x2 = _mm256_loadu_ps((row) + (ox) + 1);                                                               \
    } while (0)

// The first `rows` rows of a stride-1 block's sums at columns [ox, ox + 8): + residual, clamped, lanes [from, 8) stored.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
s1_store(const __m256 *acc, int rows, int ox, int from, int w, float *out, const float *residual, __m256 lo, __m256 hi) {
    for (int r = 0; r < rows; r++) {
        __m256 y = acc[r];
        if (residual) y = _mm256_add_ps(y, _mm256_loadu_ps(residual + (long)r * w + ox));
        wc_store_lanes8(out + (long)r * w + ox, wc_clamp256(y, lo, hi), from, 8);
    }
}

// D3_ROWS output rows from oy0 (the first `rows` stored) at columns [ox, ox + 8), lanes [from, 8) stored; in[i] is
// input row oy0 − 1 + i.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
d3_block(int edge, const float *const in[D3_ROWS + 2], int ox, int from, int w, const __m256 t[9], __m256 b, float *out,
         const float *residual, int rows, __m256 lo, __m256 hi) {
    __m256 acc[D3_ROWS];
    for (int r = 0; r < D3_ROWS; r++) acc[r] = b;
    for (int i = 0; i < D3_ROWS + 2; i++) {
        __m256 x0, x1, x2;
        if (edge == 1) D3_VECTORS(1, in[i], ox, x0, x1, x2);
        else if (edge == 2) D3_VECTORS(2, in[i], ox, x0, x1, x2);
        else D3_VECTORS(0, in[i], ox, x0, x1, x2);
        // Input row i is tap row ki = i − r of output row r.
        for (int r = 0; r < D3_ROWS; r++) {
            const int ki = i - r;
            if (ki < 0 || ki > 2) continue;
            acc[r] = _mm256_fmadd_ps(x0, t[3 * ki], acc[r]);
            acc[r] = _mm256_fmadd_ps(x1, t[3 * ki + 1], acc[r]);
            acc[r] = _mm256_fmadd_ps(x2, t[3 * ki + 2], acc[r]);
        }
    }
    for (int r = 0; r < D3_ROWS; r++) WC_KEEP(acc[r]);
    s1_store(acc, rows, ox, from, w, out, residual, lo, hi);
}

// ---- 3×3 at stride 2 along the rows, AVX2, without the copy ------------------------------------------------------
//
// The stride-2 3×3 layers whose outputs are half their input's width, left padding 1 (torchvision) or 0 (TensorFlow's
// "same"), 8 or more outputs wide (MobileNetV2's 112 → 56, 56 → 28, 32 → 16, 16 → 8; 6 or 7 at padding 1, its 14 → 7):
// each input row's inputs under eight outputs for the three taps are the even or odd values of sixteen consecutive
// ones, split by one in-lane shuffle of two loads, the nine taps in registers, four output rows at a time. The shuffle
// leaves the outputs in the lane order 0 1 4 5 2 3 6 7 in every sum alike; one permute puts them back before the residual, clamp and store. A tap's input
// left of column 0 or right of column w − 1 (only at padding 0, the last vector) comes in as a zero through a permute of
// the vector inside the row, and a row above or below the plane is a row of zeros: the same sums, in the same order, as
// the bordered copy. Same harness, the copy (for outputs 7 to 15 wide the stride-2 kernel without it) / this kernel:
// 32 → 16 706 / 349; 56 → 28 1,219–1,938 / 695–1,055; 112 → 56 3,331 / 2,748; 16 → 8 129–193 / 76–108; 28 → 14
// 463–705 / 234–395. Outputs 6 or 7 wide at left padding 1 take one vector a row (EDGE 3), the inputs past the row
// masked off; against the kernel across channels that took them at any batch (sixteen images' planes, ns per plane):
// 14 → 7 85–128 / 186–261, 12 → 6 75–108 / 81–117; at 5 and 4 wide across channels stays faster (10 → 5 68–113 /
// 62–88, 8 → 4 54–73 / 44–62).

// The even (EVEN 1) or odd values of the sixteen from p, in the lane order 0 1 4 5 2 3 6 7.
#define D3S2_SPLIT(a, b, EVEN)                                                                                    \
    ((EVEN) ? _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)) : _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)))

// Input row `row`'s inputs of taps 0, 1, 2 under outputs [ox, ox + 8): columns 2·ox − pad + kj + 2j. EDGE 1: the first
// vector at padding 1 (column −1 is a zero); EDGE 2: the last vector at padding 0 (column w is a zero); EDGE 3: both
// ends of a row under 16 wide at padding 1.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
d3s2_vectors(int edge, int pad, const float *row, int ox, int w, __m256 x[3]) {
    const float *p = row + 2 * ox;
    // EDGE 3: a row 8 to 15 wide, the only vector (padding 1): the values past the row come in as zeros (masked
    // loads), and reach only the lanes past the outputs.
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 a = _mm256_loadu_ps(p);
    const __m256 b = edge == 3 ? _mm256_maskload_ps(p + 8, _mm256_cmpgt_epi32(_mm256_set1_epi32(w - 8), lane))
                               : _mm256_loadu_ps(p + 8);
    if (pad == 1) {
        // Columns 2·ox − 1 + 2j: the odd values of the sixteen from 2·ox − 2.
        __m256 a2;
        if (edge == 1 || edge == 3)
            a2 = _mm256_blend_ps(_mm256_permutevar8x32_ps(a, _mm256_setr_epi32(0, 0, 0, 1, 2, 3, 4, 5)),
                                 _mm256_setzero_ps(), 0x03);
        else
            a2 = _mm256_loadu_ps(p - 2);
        const __m256 a6 = edge == 3 ? _mm256_maskload_ps(p + 6, _mm256_cmpgt_epi32(_mm256_set1_epi32(w - 6), lane))
                                    : _mm256_loadu_ps(p + 6);
        x[0] = D3S2_SPLIT(a2, a6, 0);
        x[1] = D3S2_SPLIT(a, b, 1);
        x[2] = D3S2_SPLIT(a, b, 0);
    } else {
        x[0] = D3S2_SPLIT(a, b, 1);
        x[1] = D3S2_SPLIT(a, b, 0);
        // Columns 2·ox + 2 + 2j: the even values of the sixteen from 2·ox + 2.
        __m256 b2;
        if (edge == 2)
            b2 = _mm256_blend_ps(_mm256_permutevar8x32_ps(b, _mm256_setr_epi32(2, 3, 4, 5, 6, 7, 7, 7)),
                                 _mm256_setzero_ps(), 0xc0);
        else
            b2 = _mm256_loadu_ps(p + 10);
        x[2] = D3S2_SPLIT(_mm256_loadu_ps(p + 2), b2, 1);
    }
}

// The first `rows` of a stride-2 block's `n` rows of sums (lanes in the order 0 1 4 5 2 3 6 7) at outputs
// [ox, ox + 8): put in order, + residual, clamped, lanes [from, to) stored.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
s2_store(const __m256 *acc, int n, int rows, int ox, int from, int to, int ow, float *out, const float *residual,
         __m256 lo, __m256 hi) {
    for (int r = 0; r < n && r < rows; r++) {
        __m256 y = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc[r]), 0xd8));
        if (residual && to == 8) y = _mm256_add_ps(y, _mm256_loadu_ps(residual + (long)r * ow + ox));
        else if (residual) {
            float part[8] = {0};
            memcpy(part, residual + (long)r * ow + ox, sizeof(float) * (size_t)to);
            y = _mm256_add_ps(y, _mm256_loadu_ps(part));
        }
        wc_store_lanes8(out + (long)r * ow + ox, wc_clamp256(y, lo, hi), from, to);
    }
}

// in[i] = input row first + i for i < count, or `zeros` (a row of zeros) where that row lies above or below the plane.
static inline __attribute__((always_inline)) void input_rows(const float *plane, int h, int w, const float *zeros,
                                                              int first, int count, const float **in) {
    for (int i = 0; i < count; i++) in[i] = first + i >= 0 && first + i < h ? plane + (long)(first + i) * w : zeros;
}

// D3S2_ROWS output rows from oy0 (the first `rows` stored) at outputs [ox, ox + 8), lanes [from, to) stored; in[i] is
// input row 2·oy0 − pad_top + i.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
d3s2_block(int edge, int pad, const float *const in[2 * D3S2_ROWS + 1], int ox, int from, int to, int ow,
           const __m256 t[9], __m256 b, float *out, const float *residual, int rows, __m256 lo, __m256 hi) {
    __m256 acc[D3S2_ROWS];
    for (int r = 0; r < D3S2_ROWS; r++) acc[r] = b;
    for (int i = 0; i < 2 * D3S2_ROWS + 1; i++) {
        __m256 x[3];
        d3s2_vectors(edge, pad, in[i], ox, 2 * ow, x);
        // Input row i is tap row ki = i − 2r of output row r.
        for (int r = 0; r < D3S2_ROWS; r++) {
            const int ki = i - 2 * r;
            if (ki < 0 || ki > 2) continue;
            for (int kj = 0; kj < 3; kj++) acc[r] = _mm256_fmadd_ps(x[kj], t[3 * ki + kj], acc[r]);
        }
    }
    for (int r = 0; r < D3S2_ROWS; r++) WC_KEEP(acc[r]);
    s2_store(acc, D3S2_ROWS, rows, ox, from, to, ow, out, residual, lo, hi);
}

// Both kernels above over a plane (S the stride); `zeros`: w floats of scratch, the rows above and below the plane.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
rows_3x3(int S, const float *plane, int h, int w, const wc_window *win, const float *taps, float bias, float *out,
         int oh, int ow, const float *residual, float low, float high, float *zeros) {
    memset(zeros, 0, sizeof(float) * (size_t)w);
    __m256 t[9];
    for (int i = 0; i < 9; i++) t[i] = _mm256_set1_ps(taps[i]);
    const __m256 b = _mm256_set1_ps(bias), lo = _mm256_set1_ps(low), hi = _mm256_set1_ps(high);
    const int block = S == 1 ? D3_ROWS : D3S2_ROWS;
    for (int oy0 = 0; oy0 < oh; oy0 += block) {
        const int rows = oh - oy0 < block ? oh - oy0 : block;
        const float *in[D3_ROWS + 2 > 2 * D3S2_ROWS + 1 ? D3_ROWS + 2 : 2 * D3S2_ROWS + 1];
        input_rows(plane, h, w, zeros, S * oy0 - win->pad_top, S * (block - 1) + 3, in);
        float *o = out + (long)oy0 * ow;
        const float *res = residual ? residual + (long)oy0 * ow : NULL;
        // The first vector, the inside ones, then one over the last eight outputs storing those not yet stored.
        int ox = 8;
        if (S == 2 && ow < 8) {
            // Outputs 6 or 7 wide (padding 1): one vector a row (EDGE 3).
            d3s2_block(3, 1, in, 0, 0, ow, ow, t, b, o, res, rows, lo, hi);
        } else if (S == 1) {
            d3_block(1, in, 0, 0, w, t, b, o, res, rows, lo, hi);
            for (; ox < w - 8; ox += 8) d3_block(0, in, ox, 0, w, t, b, o, res, rows, lo, hi);
            d3_block(2, in, w - 8, ox - (w - 8), w, t, b, o, res, rows, lo, hi);
        } else if (win->pad_left == 1) {
            d3s2_block(1, 1, in, 0, 0, 8, ow, t, b, o, res, rows, lo, hi);
            for (; ox < ow - 8; ox += 8) d3s2_block(0, 1, in, ox, 0, 8, ow, t, b, o, res, rows, lo, hi);
            if (ow > 8) d3s2_block(0, 1, in, ow - 8, ox - (ow - 8), 8, ow, t, b, o, res, rows, lo, hi);
        } else {
            d3s2_block(ow == 8 ? 2 : 0, 0, in, 0, 0, 8, ow, t, b, o, res, rows, lo, hi);
            for (; ox < ow - 8; ox += 8) d3s2_block(0, 0, in, ox, 0, 8, ow, t, b, o, res, rows, lo, hi);
            if (ow > 8) d3s2_block(2, 0, in, ow - 8, ox - (ow - 8), 8, ow, t, b, o, res, rows, lo, hi);
        }
    }
}
__attribute__((target("avx2,fma"))) static void rows_3x3_avx2(const float *plane, int h, int w, const wc_window *win,
                                                              const float *taps, float bias, float *out, int oh,
                                                              int ow, const float *residual, float low, float high,
                                                              float *zeros) {
    if (win->sh == 1) rows_3x3(1, plane, h, w, win, taps, bias, out, oh, ow, residual, low, high, zeros);
    else rows_3x3(2, plane, h, w, win, taps, bias, out, oh, ow, residual, low, high, zeros);
}

// ---- 5×5 at stride 2 along the rows, AVX2, without the copy ------------------------------------------------------
//
// 5×5 stride-2 layers with left padding 2 (PyTorch's) or 1 (TensorFlow's "same", EfficientNet-Lite0's 56 → 28 once
// its Pad is folded in) onto outputs half the input's width and 16 or more wide (narrower ones take
// `rows_stride2_avx2`): as in the 3×3 kernel above, each input row's inputs under eight outputs for taps kj = 0 … 4
// are the even or odd values of sixteen consecutive ones from columns 2·ox − 2, 2·ox and 2·ox + 2 (an in-lane shuffle
// of two loads each), in the lane order 0 1 4 5 2 3 6 7; four output rows a block (eleven input rows), the 25 taps
// read as operands, the loops unrolled in full (rolled, Clang kept the rows' tests at run time). Columns −2 and −1
// under the first vector and w and w + 1 under the last come in as zeros through a permute of a vector inside the
// row, and a row above or below the plane is a row of zeros: each output is bias, then fma(input, tap, sum) for every
// tap in row-major order, 0 over the border — the bordered copy's sums, bit for bit. C harness, one
// thread, ns a plane, bordered copy → this kernel (two / three / four rows a block): 56 → 28 1,714 → 1,599 / 1,412 /
// 1,292 (at left padding 1, 144 planes: 2,696 → 1,735); 32 → 16 591 → 378 (four rows); 112 → 56 4,553 → 4,283.
// EfficientNet-Lite0's 56 → 28 on 144 channels, node least: batch 1, one thread, 257 → 201 µs; batch 16, two threads,
// 2,181 → 1,682.
enum { D5S2_ROWS = 4 };
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
d5s2_vectors(int edge, int pad, const float *row, int ox, __m256 x[5]) {
    const float *p = row + 2 * ox;
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    __m256 a2;  // columns 2·ox − 2 … 2·ox + 5
    if (edge == 1)
        a2 = _mm256_blend_ps(_mm256_permutevar8x32_ps(a, _mm256_setr_epi32(0, 0, 0, 1, 2, 3, 4, 5)),
                             _mm256_setzero_ps(), 0x03);
    else
        a2 = _mm256_loadu_ps(p - 2);
    const __m256 a6 = _mm256_loadu_ps(p + 6);
    __m256 b2;  // columns 2·ox + 10 … 2·ox + 17 (only the even ones are used)
    if (edge == 2)
        b2 = _mm256_blend_ps(_mm256_permutevar8x32_ps(b, _mm256_setr_epi32(2, 3, 4, 5, 6, 7, 7, 7)),
                             _mm256_setzero_ps(), 0xc0);
    else
        b2 = _mm256_loadu_ps(p + 10);
    const __m256 c = _mm256_loadu_ps(p + 2);
    if (pad == 2) {  // columns 2·ox − 2 + kj + 2j
        x[0] = D3S2_SPLIT(a2, a6, 1);
        x[1] = D3S2_SPLIT(a2, a6, 0);
        x[2] = D3S2_SPLIT(a, b, 1);
        x[3] = D3S2_SPLIT(a, b, 0);
        x[4] = D3S2_SPLIT(c, b2, 1);
    } else {  // 2·ox − 1 + kj + 2j
        x[0] = D3S2_SPLIT(a2, a6, 0);
        x[1] = D3S2_SPLIT(a, b, 1);
        x[2] = D3S2_SPLIT(a, b, 0);
        x[3] = D3S2_SPLIT(c, b2, 1);
        x[4] = D3S2_SPLIT(c, b2, 0);
    }
}
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
d5s2_block(int edge, int pad, const float *const in[2 * D5S2_ROWS + 3], int ox, int from, int ow, const float *taps,
           __m256 b, float *out, const float *residual, int rows, __m256 lo, __m256 hi) {
    __m256 acc[D5S2_ROWS];
    for (int r = 0; r < D5S2_ROWS; r++) acc[r] = b;
    _Pragma("clang loop unroll(full)") for (int i = 0; i < 2 * D5S2_ROWS + 3; i++) {
        __m256 x[5];
        d5s2_vectors(edge, pad, in[i], ox, x);
        _Pragma("clang loop unroll(full)") for (int r = 0; r < D5S2_ROWS; r++) {
            const int ki = i - 2 * r;
            if (ki < 0 || ki > 4) continue;
            _Pragma("clang loop unroll(full)") for (int kj = 0; kj < 5; kj++)
                acc[r] = _mm256_fmadd_ps(x[kj], _mm256_broadcast_ss(taps + 5 * ki + kj), acc[r]);
        }
    }
    for (int r = 0; r < D5S2_ROWS; r++) WC_KEEP(acc[r]);
    s2_store(acc, D5S2_ROWS, rows, ox, from, 8, ow, out, residual, lo, hi);
}
// A block of rows: the first vector, the inside ones, then one over the last eight outputs storing those not yet
// stored (`pad` a constant where the caller passes one).
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
d5s2_rows(int pad, const float *const in[2 * D5S2_ROWS + 3], int ow, const float *taps, __m256 b, float *out,
          const float *residual, int rows, __m256 lo, __m256 hi) {
    d5s2_block(1, pad, in, 0, 0, ow, taps, b, out, residual, rows, lo, hi);
    int ox = 8;
    for (; ox < ow - 8; ox += 8) d5s2_block(0, pad, in, ox, 0, ow, taps, b, out, residual, rows, lo, hi);
    d5s2_block(2, pad, in, ow - 8, ox - (ow - 8), ow, taps, b, out, residual, rows, lo, hi);
}
static int rows_5x5s2_runs(int w, const wc_window *win, int ow) {
    return wc_kernels_isa() == WC_ISA_AVX2 && win->kh == 5 && win->kw == 5 && win->dh == 1 && win->dw == 1 &&
           win->sh == 2 && win->sw == 2 && (win->pad_left == 1 || win->pad_left == 2) && w == 2 * ow && ow >= 16;
}
__attribute__((target("avx2,fma"))) static void rows_5x5s2_avx2(const float *plane, int h, int w, const wc_window *win,
                                                                const float *taps, float bias, float *out, int oh,
                                                                int ow, const float *residual, float low, float high,
                                                                float *zeros) {
    memset(zeros, 0, sizeof(float) * (size_t)w);
    const __m256 b = _mm256_set1_ps(bias), lo = _mm256_set1_ps(low), hi = _mm256_set1_ps(high);
    for (int oy0 = 0; oy0 < oh; oy0 += D5S2_ROWS) {
        const int rows = oh - oy0 < D5S2_ROWS ? oh - oy0 : D5S2_ROWS;
        const float *in[2 * D5S2_ROWS + 3];
        input_rows(plane, h, w, zeros, 2 * oy0 - win->pad_top, 2 * D5S2_ROWS + 3, in);
        float *o = out + (long)oy0 * ow;
        const float *res = residual ? residual + (long)oy0 * ow : NULL;
        if (win->pad_left == 2) d5s2_rows(2, in, ow, taps, b, o, res, rows, lo, hi);
        else d5s2_rows(1, in, ow, taps, b, o, res, rows, lo, hi);
    }
}


// ---- 5×5 at stride 1 along the rows, AVX2, without the copy ------------------------------------------------------
//
// The 5×5 "same" layers (padding 2) on maps 12 or more wide: EfficientNet-Lite0's 28×28 and 14×14. Each input row's
// vector under eight outputs for tap column kj (columns ox − 2 + kj, loaded once) feeds every output row of the block
// that reads it; the 25 taps are read as operands. Inside a row those are loads; at the row's ends the vector is
// shifted one or two lanes with zeros coming in, and a row above or below the plane is a row of zeros, so each output
// is bias, then fma(input, tap, sum) for all 25 taps in row-major order with 0 over the border — the bordered copy's
// sums, bit for bit. A row not a whole number of vectors wide ends with a vector over its last eight outputs that
// stores only those not stored yet, as in the 3×3 kernel. Rows 16 or more wide take two vectors at a time, four rows a
// block (eight chains of multiply-adds, each tap read once for both); narrower ones one vector at a time, seven rows a
// block where the map's height makes that less work than four. One thread, C harness, planes in L2, µs a layer,
// bit-equal, bordered copy (28×28 and wider) or flattened plane (14×14) → one vector at a time → two: 240 channels
// 28×28 269–273 → 212–227 → 182–197; 32 channels 56×56 96–115 → 84–112; 16 channels 112×112 194–207 → 159–164;
// 480 channels 14×14 179–180 → 125 (two at a time, three rows a block: 121–122); 672 channels 14×14 248 → 172–216;
// sixteen images' 672 planes (from L3) 4,019–4,026 → 2,835–2,899. One vector at a time with four rows a block instead
// of seven: 28×28 226, 672 × 14×14 210; six 232 / 216; eight 245–277 / 190–217. In EfficientNet-Lite0 (one vector at
// a time), batch 1, each node's least over 3 alternated rounds, µs, one thread / two: 28×28 283–288 → 224–226 /
// 143.5 → 116.4 (onnxruntime 124 on two); 672 channels on 14×14 233–239 → 184–186 / 123.6–124.1 → 95.4–96.4 (112);
// 480 channels 171–172 → 133 / 92.5 → 69.1 (83). Stride 2 (56 → 28, `rows_5x5s2_avx2`) did not gain from more rows a
// block (five, six or seven: 193–216 against 200–220 µs).
enum { D5_MAX_ROWS = 7, D5_PAIR_ROWS = 4 };
// Input row `row`'s inputs under outputs [ox, ox + 8) for tap column kj: columns ox − 2 + kj. EDGE 1: the first vector
// (columns −2 and −1 come in as zeros); EDGE 2: the last one, at ox = w − 8 (columns w and w + 1 likewise). `edge` and
// kj constants.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) __m256
d5_vector(int edge, const float *row, int ox, int kj) {
    const __m256 zero = _mm256_setzero_ps(), x = _mm256_loadu_ps(row + ox);
    if (edge == 1 && kj == 0)
        return _mm256_blend_ps(_mm256_permutevar8x32_ps(x, _mm256_setr_epi32(0, 0, 0, 1, 2, 3, 4, 5)), zero, 0x03);
    if (edge == 1 && kj == 1)
        return _mm256_blend_ps(_mm256_permutevar8x32_ps(x, _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6)), zero, 0x01);
    if (edge == 2 && kj == 3)
        return _mm256_blend_ps(_mm256_permutevar8x32_ps(x, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7)), zero, 0x80);
    if (edge == 2 && kj == 4)
        return _mm256_blend_ps(_mm256_permutevar8x32_ps(x, _mm256_setr_epi32(2, 3, 4, 5, 6, 7, 7, 7)), zero, 0xc0);
    return kj == 2 ? x : _mm256_loadu_ps(row + ox - 2 + kj);
}
// The five of them, kj = 0 … 4.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
d5_vectors(int edge, const float *row, int ox, __m256 x[5]) {
    for (int kj = 0; kj < 5; kj++) x[kj] = d5_vector(edge, row, ox, kj);
}
// The column of a row's inside vector once the outputs before `done` are stored: `done`, or w − 10 where that would
// read past column w − 1 (17 wide takes 0, 7 and 9).
static inline int d5_inside(int done, int w) { return done < w - 10 ? done : w - 10; }
// R output rows from oy0 (the first `rows` stored) at columns [ox, ox + 8), lanes [from, 8) stored; in[i] is input
// row oy0 − 2 + i (R and `edge` constants).
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
d5_block(const int R, int edge, const float *const in[D5_MAX_ROWS + 4], int ox, int from, int w, const float *taps,
         __m256 b, float *out, const float *residual, int rows, __m256 lo, __m256 hi) {
    __m256 acc[D5_MAX_ROWS];
    for (int r = 0; r < R; r++) acc[r] = b;
    _Pragma("clang loop unroll(full)") for (int i = 0; i < R + 4; i++) {
        __m256 x[5];
        d5_vectors(edge, in[i], ox, x);
        // Input row i is tap row ki = i − r of output row r; each row's 5 multiply-adds in turn (taking the five
        // columns in turn instead, each over the rows, ran 480 channels of 14×14 in 125–142 µs against 122).
        _Pragma("clang loop unroll(full)") for (int r = 0; r < R; r++) {
            const int ki = i - r;
            if (ki < 0 || ki > 4) continue;
            _Pragma("clang loop unroll(full)") for (int kj = 0; kj < 5; kj++)
                acc[r] = _mm256_fmadd_ps(x[kj], _mm256_broadcast_ss(taps + 5 * ki + kj), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) WC_KEEP(acc[r]);
    s1_store(acc, rows, ox, from, w, out, residual, lo, hi);
}
static int rows_5x5_runs(int h, int w, const wc_window *win, int oh, int ow) {
    return wc_kernels_isa() == WC_ISA_AVX2 && win->kh == 5 && win->kw == 5 && win->dh == 1 && win->dw == 1 &&
           win->sh == 1 && win->sw == 1 && win->pad_top == 2 && win->pad_left == 2 && oh == h && ow == w && w >= 12;
}
// Two vectors of outputs at once (columns oxa and oxb, edges ea and eb), R rows: each tap's broadcast serves both.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
d5_pair(const int R, int ea, int eb, const float *const in[D5_MAX_ROWS + 4], int oxa, int froma, int oxb, int fromb,
        int w, const float *taps, __m256 b, float *out, const float *residual, int rows, __m256 lo, __m256 hi) {
    __m256 acca[D5_PAIR_ROWS], accb[D5_PAIR_ROWS];
    for (int r = 0; r < R; r++) acca[r] = accb[r] = b;
    _Pragma("clang loop unroll(full)") for (int i = 0; i < R + 4; i++) {
        _Pragma("clang loop unroll(full)") for (int kj = 0; kj < 5; kj++) {
            const __m256 xa = d5_vector(ea, in[i], oxa, kj), xb = d5_vector(eb, in[i], oxb, kj);
            _Pragma("clang loop unroll(full)") for (int r = 0; r < R; r++) {
                const int ki = i - r;
                if (ki < 0 || ki > 4) continue;
                const __m256 t = _mm256_broadcast_ss(taps + 5 * ki + kj);
                acca[r] = _mm256_fmadd_ps(xa, t, acca[r]);
                accb[r] = _mm256_fmadd_ps(xb, t, accb[r]);
            }
        }
    }
    for (int r = 0; r < R; r++) WC_KEEP(acca[r]);
    for (int r = 0; r < R; r++) WC_KEEP(accb[r]);
    s1_store(acca, rows, oxa, froma, w, out, residual, lo, hi);
    s1_store(accb, rows, oxb, fromb, w, out, residual, lo, hi);
}
// The plane in blocks of R output rows (a constant), a row's vectors one at a time: the first (edge 1), inside ones
// (`d5_inside`), then one over the last eight outputs; each stores the outputs not stored yet, from `done`.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
rows_5x5(const int R, const float *plane, int h, int w, int pad_top, const float *taps, float bias, float *out,
         const float *residual, float low, float high, const float *zeros) {
    const __m256 b = _mm256_set1_ps(bias), lo = _mm256_set1_ps(low), hi = _mm256_set1_ps(high);
    for (int oy0 = 0; oy0 < h; oy0 += R) {
        const int rows = h - oy0 < R ? h - oy0 : R;
        const float *in[D5_MAX_ROWS + 4];
        input_rows(plane, h, w, zeros, oy0 - pad_top, R + 4, in);
        float *o = out + (long)oy0 * w;
        const float *res = residual ? residual + (long)oy0 * w : NULL;
        d5_block(R, 1, in, 0, 0, w, taps, b, o, res, rows, lo, hi);
        int done = 8;
        while (done < w - 8) {
            const int ox = d5_inside(done, w);
            d5_block(R, 0, in, ox, done - ox, w, taps, b, o, res, rows, lo, hi);
            done = ox + 8;
        }
        d5_block(R, 2, in, w - 8, done - (w - 8), w, taps, b, o, res, rows, lo, hi);
    }
}
// The same, 16 or more wide, four rows a block, the row's vectors two at a time (the first with the next, the inside
// ones in pairs, the last with the one before or alone).
__attribute__((target("avx2,fma"))) static void rows_5x5_paired(const float *plane, int h, int w, int pad_top,
                                                                const float *taps, float bias, float *out,
                                                                const float *residual, float low, float high,
                                                                const float *zeros) {
    const int R = D5_PAIR_ROWS;
    const __m256 b = _mm256_set1_ps(bias), lo = _mm256_set1_ps(low), hi = _mm256_set1_ps(high);
    for (int oy0 = 0; oy0 < h; oy0 += R) {
        const int rows = h - oy0 < R ? h - oy0 : R;
        const float *in[D5_MAX_ROWS + 4];
        input_rows(plane, h, w, zeros, oy0 - pad_top, R + 4, in);
        float *o = out + (long)oy0 * w;
        const float *res = residual ? residual + (long)oy0 * w : NULL;
        // `rows_5x5`'s vectors, each storing from where the one before ended.
        if (w == 16) {
            d5_pair(R, 1, 2, in, 0, 0, 8, 0, w, taps, b, o, res, rows, lo, hi);
            continue;
        }
        const int second = d5_inside(8, w);
        d5_pair(R, 1, 0, in, 0, 0, second, 8 - second, w, taps, b, o, res, rows, lo, hi);
        int done = second + 8;
        while (done < w - 8) {
            const int ox = d5_inside(done, w), from = done - ox;
            done = ox + 8;
            if (done < w - 8) {  // another inside vector follows
                const int next = d5_inside(done, w);
                d5_pair(R, 0, 0, in, ox, from, next, done - next, w, taps, b, o, res, rows, lo, hi);
                done = next + 8;
            } else {  // the last one follows
                d5_pair(R, 0, 2, in, ox, from, w - 8, done - (w - 8), w, taps, b, o, res, rows, lo, hi);
                done = w;
            }
        }
        if (done < w) d5_block(R, 2, in, w - 8, done - (w - 8), w, taps, b, o, res, rows, lo, hi);
    }
}
__attribute__((target("avx2,fma"))) static void rows_5x5_avx2(const float *plane, int h, int w, const wc_window *win,
                                                              const float *taps, float bias, float *out,
                                                              const float *residual, float low, float high,
                                                              float *zeros) {
    memset(zeros, 0, sizeof(float) * (size_t)w);
    // Rows 16 or more wide, two vectors at a time (four rows a block: eight sums); narrower ones, one vector at a time,
    // seven rows a block where that takes less work, counted as 25 multiply-adds an output row and 5 vectors an input
    // row, than four (the rows past the plane are summed too): 14 rows in 2 blocks of seven, 12 in 3 of four.
    if (w >= 16) {
        rows_5x5_paired(plane, h, w, win->pad_top, taps, bias, out, residual, low, high, zeros);
        return;
    }
    const int seven = (h + 6) / 7 * (25 * 7 + 5 * 11), four = (h + 3) / 4 * (25 * 4 + 5 * 8);
    if (seven <= four) rows_5x5(7, plane, h, w, win->pad_top, taps, bias, out, residual, low, high, zeros);
    else rows_5x5(4, plane, h, w, win->pad_top, taps, bias, out, residual, low, high, zeros);
}
#endif

// ---- 3×3 and 5×5 at strides 1 and 2 along the rows, AVX-512, without the copy ----------------------------------
//
// Sixteen outputs of a row a vector, eight output rows at once (eight independent chains of multiply-adds, each
// output's taps in row-major order). An input row's values under tap kj are read with masked loads: at stride 1 the
// sixteen from column ox − pad + kj; at stride 2 the even or odd values of the thirty-two from column
// 2·ox − pad + kj − kj % 2, split by a two-source permute. A lane whose input lies outside the plane (its column, or a
// whole row above or below) is neither read nor added: each output is bias, then fma(input, tap, sum) for the taps
// inside the input in row-major order, as the flattened and across-channel kernels sum it. No copy, no table. Planes
// of at most 64 values stay with `small_depthwise_avx512` (in registers). MobileNetV2 at 224 px, batch 1, one thread,
// µs, flattened (tables of offsets, gathers at stride 2) or bordered copy → this kernel: 56×56 187 → 93, 112 → 56
// 168 → 115, 28 → 14 79 → 20, 14 → 7 59 → 33 (with the loops unrolled in full; `convolve` in Convolution.swift).
enum { RK_ROWS = 8, RK_PLANE = 64 };

static int uncopied_avx512_runs(int h, int w, const wc_window *win, int oh, int ow) {
    return wc_kernels_isa() == WC_ISA_AVX512 && win->kh == win->kw && (win->kh == 3 || win->kh == 5) &&
           win->sh == win->sw && (win->sw == 1 || win->sw == 2) && win->dh == 1 && win->dw == 1 &&
           h * w > RK_PLANE;
}

#if defined(__x86_64__)
// Output rows [oy0, oy0 + RK_ROWS) ∩ [0, oh) at outputs [ox, ox + 16) ∩ [0, ow); K and S constants.
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
rk_block(const int K, const int S, const float *plane, int h, int w, const wc_window *win, const float *taps,
         const __m512 *tv, __m512 b, float *out, int oy0, int oh, int ox, int ow, const float *residual, __m512 lo,
         __m512 hi) {
    const int s = ox * S - win->pad_left;  // the column of tap 0 under output ox
    // The lanes whose input under tap kj lies inside the row, and at stride 2 the loads' lanes inside it.
    __mmask16 m[5], load[6];
    for (int kj = 0; kj < K; kj++) m[kj] = wc_lanes_inside(s + kj, S, w);
    if (S == 2)
        for (int q = 0; q < K / 2 + 1; q++)
            for (int half = 0; half < 2; half++) load[2 * q + half] = wc_lanes_inside(s + 2 * q + 16 * half, 1, w);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    __m512 acc[RK_ROWS];
    for (int r = 0; r < RK_ROWS; r++) acc[r] = b;
    const int top = oy0 * S - win->pad_top;
#pragma clang loop unroll(full)
    for (int i = 0; i < S * (RK_ROWS - 1) + K; i++) {
        const int y = top + i;
        if (y < 0 || y >= h) continue;
        const float *row = plane + (long)y * w + s;
        __m512 x[5];
        if (S == 1) {
            for (int kj = 0; kj < K; kj++) x[kj] = _mm512_maskz_loadu_ps(m[kj], row + kj);
        } else {
            for (int q = 0; q < K / 2 + 1; q++) {
                const __m512 a = _mm512_maskz_loadu_ps(load[2 * q], row + 2 * q);
                const __m512 c = _mm512_maskz_loadu_ps(load[2 * q + 1], row + 2 * q + 16);
                x[2 * q] = _mm512_permutex2var_ps(a, even, c);
                if (2 * q + 1 < K) x[2 * q + 1] = _mm512_permutex2var_ps(a, odd, c);
            }
        }
        // Input row i is tap row ki = i − S·r of output row r.
#pragma clang loop unroll(full)
        for (int r = 0; r < RK_ROWS; r++) {
            const int ki = i - S * r;
            if (ki < 0 || ki >= K) continue;
#pragma clang loop unroll(full)
            for (int kj = 0; kj < K; kj++)
                acc[r] = _mm512_mask3_fmadd_ps(x[kj], K == 3 ? tv[ki * K + kj] : _mm512_set1_ps(taps[ki * K + kj]), acc[r],
                                               m[kj]);
        }
    }
    const __mmask16 stored = wc_first_lanes(ow - ox);
    for (int r = 0; r < RK_ROWS && oy0 + r < oh; r++) {
        const long at = (long)(oy0 + r) * ow + ox;
        __m512 v = acc[r];
        if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(stored, residual + at));
        _mm512_mask_storeu_ps(out + at, stored, wc_clamp512(v, lo, hi));
    }
}

__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
rows_kxk(const int K, const int S, const float *plane, int h, int w, const wc_window *win, const float *taps,
         float bias, float *out, int oh, int ow, const float *residual, float low, float high) {
    const __m512 b = _mm512_set1_ps(bias), lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
    // 3×3: the taps in registers (9, with 8 sums and 3 inputs), not broadcast from memory by each multiply-add: a
    // third fewer loads. Same values. One layer alone, batch 1, one thread, least of 3 alternated runs, µs: 28×28,
    // 192 channels 33.3 → 29.8; 14×14, 480 26.6 → 24.5. 5×5 taps (25 registers) ran 3% slower so: from memory.
    __m512 tv[9];
    if (K == 3)
        for (int t = 0; t < 9; t++) tv[t] = _mm512_set1_ps(taps[t]);
    for (int oy0 = 0; oy0 < oh; oy0 += RK_ROWS) {
        // The next block's new input rows, ahead of their loads (each block reads S·RK_ROWS rows it has not read):
        // each node's least over 4 alternated rounds, batch 1, µs, MobileNetV2 224 px's 112 → 56 layer 151 → 117 on
        // one thread, 66 → 63 on two; EfficientNet-Lite0's 3×3 on 112×112 86 → 56 on two.
        const int next = (oy0 + RK_ROWS) * S - win->pad_top + K - S, end = next + S * RK_ROWS < h ? next + S * RK_ROWS : h;
        for (const char *p = (const char *)(plane + (long)(next > 0 ? next : 0) * w),
                        *stop = (const char *)(plane + (long)end * w); p < stop; p += 64)
            _mm_prefetch(p, _MM_HINT_T0);
        for (int ox = 0; ox < ow; ox += 16)
            rk_block(K, S, plane, h, w, win, taps, tv, b, out, oy0, oh, ox, ow, residual, lo, hi);
    }
}

__attribute__((target("avx512f"))) static void uncopied_avx512(const float *plane, int h, int w, const wc_window *win,
                                                           const float *taps, float bias, float *out, int oh, int ow,
                                                           const float *residual, float low, float high) {
    if (win->kh == 3 && win->sh == 1) rows_kxk(3, 1, plane, h, w, win, taps, bias, out, oh, ow, residual, low, high);
    else if (win->kh == 3) rows_kxk(3, 2, plane, h, w, win, taps, bias, out, oh, ow, residual, low, high);
    else if (win->sh == 1) rows_kxk(5, 1, plane, h, w, win, taps, bias, out, oh, ow, residual, low, high);
    else rows_kxk(5, 2, plane, h, w, win, taps, bias, out, oh, ow, residual, low, high);
}
#endif

int wc_depthwise_uncopied_runs(int h, int w, const wc_window *window, int oh, int ow) {
#if defined(__x86_64__)
    return rows_3x3_runs(h, w, window, oh, ow) || rows_5x5s2_runs(w, window, ow) ||
           rows_5x5_runs(h, w, window, oh, ow) || uncopied_avx512_runs(h, w, window, oh, ow);
#else
    return 0;
#endif
}

void wc_depthwise_rows(const float *plane, int h, int w, const wc_window *window, const float *taps, float bias,
                       float *out, int oh, int ow, const float *residual, float low, float high, float *scratch) {
#if defined(__x86_64__)
    const int three = rows_3x3_runs(h, w, window, oh, ow), stride2 = wc_depthwise_stride2_runs(window, ow);
    // Stride-2 outputs 7 wide, or 8 wide where the 3×3 kernel does not run, on the split rows; the 3×3 kernel kept
    // 16 → 8 at padding 1 (73 against 82 ns a plane).
    if (small_stride2_avx512(window, ow)) {
        small_stride2_avx2(plane, h, w, window, taps, bias, out, oh, ow, residual, low, high, scratch);
        return;
    }
    if (uncopied_avx512_runs(h, w, window, oh, ow)) {
        uncopied_avx512(plane, h, w, window, taps, bias, out, oh, ow, residual, low, high);
        return;
    }
    if (stride2 && (ow < SMALL_MAX_OW || (ow == SMALL_MAX_OW && !three))) {
        small_stride2_avx2(plane, h, w, window, taps, bias, out, oh, ow, residual, low, high, scratch);
        return;
    }
    if (three) {
        rows_3x3_avx2(plane, h, w, window, taps, bias, out, oh, ow, residual, low, high, scratch);
        return;
    }
    if (stride2) {
        rows_stride2_avx2(plane, h, w, window, taps, bias, out, oh, ow, residual, low, high, scratch);
        return;
    }
    if (rows_5x5_runs(h, w, window, oh, ow)) {
        rows_5x5_avx2(plane, h, w, window, taps, bias, out, residual, low, high, scratch);
        return;
    }
    if (rows_5x5s2_runs(w, window, ow)) {
        rows_5x5s2_avx2(plane, h, w, window, taps, bias, out, oh, ow, residual, low, high, scratch);
        return;
    }
#endif
    DISPATCH(rows, plane, h, w, window, taps, bias, out, oh, ow, residual, low, high, scratch);
}

// ---- Across channels ----------------------------------------------------------------------------------------------

size_t wc_depthwise_channels_scratch(int count, int h, int w, int kh, int kw, int oh, int ow) {
    size_t width = ((size_t)count + 15) / 16 * 16;
    const size_t all = width * ((size_t)h * w + (size_t)oh * ow + (size_t)kh * kw + 1);
    // AVX-512's sixteen channels at a time in a copy bordered by kh − 1 pixels (`across_avx512`).
    const size_t border = kh > 1 ? (size_t)kh - 1 : 0;
    const size_t one =
        16 * (((size_t)h + 2 * border) * ((size_t)w + 2 * border) + (size_t)oh * ow + (size_t)kh * kw + 1);
    return all > one ? all : one;
}


// Each output is bias, then fma(input, tap, sum) for the taps inside the input in row-major order; then + residual and
// the clamp, as ConvolutionEpilogue does.
// Outputs of one row summed together where their windows lie inside the input in x (any kernel but 3×3, whose taps
// stay in registers, and 3×3 on rows cut by the border).
enum { ACROSS_GROUP = 4 };
#define DEFINE_ACROSS(NAME, ATTR, VEC, L, TRANSPOSE_IN, TRANSPOSE_OUT)                                            \
    ATTR static void NAME(const float *input, int count, int h, int w, const float *weights, const float *bias,     \
                          const wc_window *win, float *output, int oh, int ow, const float *residual, float low,    \
                          float high, float *scratch) {                                                            \
        _Pragma("clang fp contract(off)")                                                                         \
        const int width = (count + L - 1) / L * L, taps = win->kh * win->kw;                                      \
        float *x = scratch, *y = x + (size_t)width * h * w, *k = y + (size_t)width * oh * ow, *b = k + (size_t)width * taps; \
        /* Channels last: x[pixel][channel], k[tap][channel], b[channel]; lanes past `count` hold 0. */            \
        if (width > count) memset(x, 0, sizeof(float) * width * h * w);                                           \
        TRANSPOSE_IN(input, count, h * w, width, x);                                                              \
        memset(k, 0, sizeof(float) * width * (taps + 1));                                                         \
        for (int c = 0; c < count; c++) {                                                                         \
            for (int t = 0; t < taps; t++) k[(size_t)t * width + c] = weights[(size_t)c * taps + t];              \
            b[c] = bias ? bias[c] : 0.0f;                                                                         \
        }                                                                                                         \
        const int three = win->kh == 3 && win->kw == 3;                                                           \
        /* Outputs [oxIn, oxOut) have every column of their window inside the input. */                           \
        int oxIn = 0, oxOut = 0;                                                                                  \
        while (oxIn < ow && oxIn * win->sw - win->pad_left < 0) oxIn++;                                           \
        for (oxOut = oxIn; oxOut < ow && oxOut * win->sw - win->pad_left + (win->kw - 1) * win->dw < w; oxOut++); \
        for (int lane = 0; lane < width; lane += L) {                                                             \
            /* 3×3 taps: the nine held in registers for the outputs whose window lies inside the input. */        \
            VEC t3[9];                                                                                            \
            for (int t = 0; t < 9; t++) memcpy(&t3[t], k + (size_t)(three ? t : 0) * width + lane, sizeof(VEC));  \
            for (int oy = 0; oy < oh; oy++) {                                                                     \
                int kiLo, kiHi, iy0;                                                                              \
                tap_span(oy, win->kh, win->sh, win->dh, win->pad_top, h, &kiLo, &kiHi, &iy0);                     \
                float *row = y + (size_t)oy * ow * width + lane;                                                  \
                /* Other windows, or rows cut by the border: ACROSS_GROUP outputs of a row at once, inside    */  \
                /* the input in x, each tap's weights loaded once for all of them (two loads per multiply-add */  \
                /* before: EfficientNet-Lite0's 5×5 layers on 14×14 maps ran at about 2.7 multiply-adds per ns). */\
                int ox = 0;                                                                                       \
                if (!(three && kiLo == 0 && kiHi == 3))                                                           \
                    for (ox = oxIn; ox + ACROSS_GROUP <= oxOut; ox += ACROSS_GROUP) {                             \
                        VEC acc[ACROSS_GROUP];                                                                    \
                        for (int g = 0; g < ACROSS_GROUP; g++) memcpy(&acc[g], b + lane, sizeof(VEC));            \
                        const int ix = ox * win->sw - win->pad_left;                                              \
                        const size_t next = (size_t)win->sw * width;                                              \
                        for (int ki = kiLo; ki < kiHi; ki++) {                                                    \
                            const float *line = x + ((size_t)(iy0 + ki * win->dh) * w + ix) * width + lane;       \
                            const float *kk = k + (size_t)ki * win->kw * width + lane;                            \
                            for (int kj = 0; kj < win->kw; kj++) {                                                \
                                VEC t;                                                                            \
                                memcpy(&t, kk + (size_t)kj * width, sizeof t);                                    \
                                const float *in = line + (size_t)kj * win->dw * width;                            \
                                for (int g = 0; g < ACROSS_GROUP; g++) {                                          \
                                    VEC v;                                                                        \
                                    memcpy(&v, in + g * next, sizeof v);                                          \
                                    acc[g] = __builtin_elementwise_fma(v, t, acc[g]);                             \
                                }                                                                                 \
                            }                                                                                     \
                        }                                                                                         \
                        for (int g = 0; g < ACROSS_GROUP; g++)                                                    \
                            memcpy(row + (size_t)(ox + g) * width, &acc[g], sizeof(VEC));                         \
                    }                                                                                             \
                const int skipFrom = ox > oxIn ? oxIn : ow, skipTo = ox > oxIn ? ox : ow;                         \
                for (ox = 0; ox < ow; ox++) {                                                                     \
                    if (ox == skipFrom) ox = skipTo;                                                              \
                    if (ox >= ow) break;                                                                          \
                    int kjLo, kjHi, ix0;                                                                          \
                    tap_span(ox, win->kw, win->sw, win->dw, win->pad_left, w, &kjLo, &kjHi, &ix0);                \
                    VEC acc;                                                                                      \
                    memcpy(&acc, b + lane, sizeof acc);                                                           \
                    if (three && kiLo == 0 && kiHi == 3 && kjLo == 0 && kjHi == 3) {                              \
                        const float *at = x + ((size_t)iy0 * w + ix0) * width + lane;                             \
                        const size_t down = (size_t)win->dh * w * width, right = (size_t)win->dw * width;         \
                        _Pragma("clang loop unroll(full)")                                                        \
                        for (int t = 0; t < 9; t++) {                                                             \
                            VEC v;                                                                                \
                            memcpy(&v, at + (t / 3) * down + (t % 3) * right, sizeof v);                          \
                            acc = __builtin_elementwise_fma(v, t3[t], acc);                                       \
                        }                                                                                         \
                    } else                                                                                        \
                        for (int ki = kiLo; ki < kiHi; ki++) {                                                    \
                            const float *line = x + ((size_t)(iy0 + ki * win->dh) * w + ix0) * width + lane;      \
                            const float *kk = k + (size_t)ki * win->kw * width + lane;                            \
                            for (int kj = kjLo; kj < kjHi; kj++) {                                                \
                                VEC v, t;                                                                         \
                                memcpy(&v, line + (size_t)kj * win->dw * width, sizeof v);                        \
                                memcpy(&t, kk + (size_t)kj * width, sizeof t);                                    \
                                acc = __builtin_elementwise_fma(v, t, acc);                                       \
                            }                                                                                     \
                        }                                                                                         \
                    memcpy(row + (size_t)ox * width, &acc, sizeof acc);                                           \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
        /* Back to NCHW planes through the epilogue: + residual, then min(max(v, low), high) as Swift rounds it. */ \
        const int pixels = oh * ow;                                                                               \
        TRANSPOSE_OUT(y, count, pixels, width, output, residual, low, high);                                      \
    }

DEFINE_ACROSS(across_generic, , row8, 8, transpose_in, transpose_out)
#if defined(__x86_64__)
DEFINE_ACROSS(across_avx2, __attribute__((target("avx2,fma"))), row8, 8, transpose_in_avx2, transpose_out_avx2)
DEFINE_ACROSS(across_any_avx512, __attribute__((target("avx512f"))), row16, 16, transpose_in, transpose_out)
#endif

// AVX-512, 3×3 and 5×5 undilated windows with outputs up to 16 wide: sixteen channels a vector through 16 × 16
// transposes in registers (the scalar copies of `DEFINE_ACROSS` took most of its time), into a copy with a border of
// K − 1 zero pixels so that no load leaves it. Eight outputs of a row at once (independent chains of multiply-adds),
// each tap's sixteen weights loaded once for them; a tap outside the input adds nothing to an output (masked off, or
// over the border's zeros where that is exact), so each output is bias, then its taps inside the input in row-major
// order, as every other kernel sums it. + residual and the clamp on the way back to the planes. One image, one
// thread, µs, through `wc-inference-bench` on a one-layer model, the path before → here: 7×7 5×5 1,152 channels
// 52 → 29 (flattened plane before; onnxruntime 32), 14 → 7 5×5 672 40 → 29 (along rows), 14 → 7 3×3 576 24 → 21,
// 16 → 8 3×3 144 7.5 → 7.0, 2×2 3×3 960 6.7 → 6.0; 7×7 3×3 960 even (21 → 20), 8×8 3×3 and 4×4 lose (5.4 → 5.7,
// 4.5 → 5.8), and 14-wide outputs (14×14 3×3 384: 32 against 21 along rows, C harness).
enum { ACROSS16_GROUP = 8, ACROSS16_WIDEST = 2 * ACROSS16_GROUP };

static int across16_runs(const wc_window *win, int h, int w, int oh, int ow) {
    const int K = win->kh, B = K - 1;
    return wc_kernels_isa() == WC_ISA_AVX512 && win->kh == win->kw && (K == 3 || K == 5) && win->dh == 1 &&
           win->dw == 1 && ow <= ACROSS16_WIDEST && win->pad_top <= B && win->pad_left <= B &&
           (oh - 1) * win->sh - win->pad_top + K - 1 <= h - 1 + B &&
           (ow - 1) * win->sw - win->pad_left + K - 1 <= w - 1 + B;
}

int wc_depthwise_across16_pays(const wc_window *window, int h, int w, int oh, int ow) {
    const int five_to_eight = ow >= 5 && ow <= ACROSS16_GROUP;
    return across16_runs(window, h, w, oh, ow) &&
           (window->kh == 5 ? five_to_eight : ow <= 2 || (window->sw == 2 && five_to_eight));
}

#if defined(__x86_64__)
// Output rows of one block of sixteen channels, eight outputs at a time; with `masked`, each tap only where it lies
// inside the input (else over the border's zeros too: see `across16_block`).
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
across16_rows(const int K, const int masked, int h, int w, const wc_window *win, int oh, int ow, __m512 b,
              const float *x, float *y, const float *k, const __mmask16 (*inside)[ACROSS16_GROUP][5]) {
    const int B = K - 1, pw = w + 2 * B, sw = win->sw;
    for (int oy = 0; oy < oh; oy++) {
        int kiLo, kiHi, iy0;
        tap_span(oy, K, win->sh, 1, win->pad_top, h, &kiLo, &kiHi, &iy0);
        for (int ox0 = 0, group = 0; ox0 < ow; ox0 += ACROSS16_GROUP, group++) {
            __m512 acc[ACROSS16_GROUP];
            for (int g = 0; g < ACROSS16_GROUP; g++) acc[g] = b;
            // Tap (0, 0) of output ox0. A group's outputs past `ow` read past their row (within the scratch) and are
            // never stored.
            const float *first = x + ((long)(iy0 + B) * pw + ox0 * sw - win->pad_left + B) * 16;
            for (int ki = kiLo; ki < kiHi; ki++) {
                const float *row = first + (long)ki * pw * 16;
#pragma clang loop unroll(full)
                for (int kj = 0; kj < K; kj++) {
                    const __m512 t = _mm512_loadu_ps(k + (size_t)(ki * K + kj) * 16);
#pragma clang loop unroll(full)
                    for (int g = 0; g < ACROSS16_GROUP; g++) {
                        const __m512 v = _mm512_loadu_ps(row + (long)(g * sw + kj) * 16);
                        acc[g] = masked ? _mm512_mask3_fmadd_ps(v, t, acc[g], inside[group][g][kj])
                                        : _mm512_fmadd_ps(v, t, acc[g]);
                    }
                }
            }
            for (int g = 0; g < ACROSS16_GROUP && ox0 + g < ow; g++)
                _mm512_storeu_ps(y + (size_t)(oy * ow + ox0 + g) * 16, acc[g]);
        }
    }
}

__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
across16_block(const int K, const float *in, int n, int h, int w, const float *weights, const float *bias,
               const wc_window *win, float *out, int oh, int ow, const float *residual, __m512 lo, __m512 hi, float *x,
               float *y, float *k, const __mmask16 (*inside)[ACROSS16_GROUP][5]) {
    const int B = K - 1, pw = w + 2 * B, hw = h * w, ohw = oh * ow, taps = K * K;
    for (int p0 = 0, py = B, px = B; p0 < hw; p0 += 16) {
        const int cnt = hw - p0 < 16 ? hw - p0 : 16;
        const __mmask16 m = wc_first_lanes(cnt);
        __m512 r[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < n ? _mm512_maskz_loadu_ps(m, in + (size_t)i * hw + p0) : _mm512_setzero_ps();
        transpose16(r);
        for (int j = 0; j < cnt; j++) {
            _mm512_storeu_ps(x + ((size_t)py * pw + px) * 16, r[j]);
            if (++px == w + B) px = B, py++;
        }
    }
    // The taps, sixteen channels a tap; whether every one is finite (see below).
    __mmask16 finite = 0xffff;
    const __m512 infinity = _mm512_set1_ps(__builtin_inff());
    for (int t0 = 0; t0 < taps; t0 += 16) {
        const __mmask16 m = wc_first_lanes(taps - t0);
        __m512 r[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < n ? _mm512_maskz_loadu_ps(m, weights + (size_t)i * taps + t0) : _mm512_setzero_ps();
        transpose16(r);
        for (int j = 0; j < 16 && t0 + j < taps; j++) {
            finite &= _mm512_cmp_ps_mask(_mm512_abs_ps(r[j]), infinity, _CMP_LT_OQ);
            _mm512_storeu_ps(k + (size_t)(t0 + j) * 16, r[j]);
        }
    }
    const __m512 b = bias ? _mm512_maskz_loadu_ps(wc_first_lanes(n), bias) : _mm512_setzero_ps();
    // Where every tap is finite and no bias is −0, a tap over the padding (a zero of the border) adds exactly nothing:
    // 0 · w is ±0, and a sum that starts at bias ≠ −0 is never −0 (x + y is −0 only when both are). Then the border is
    // summed unmasked (C harness, one thread, 7×7 5×5, 1,152 channels: 39 → 28 µs; 14 → 7 5×5, 672: 35 → 29).
    const __mmask16 negativeZero =
        _mm512_cmpeq_epi32_mask(_mm512_castps_si512(b), _mm512_set1_epi32((int)0x80000000u));
    if (finite == 0xffff && !negativeZero) across16_rows(K, 0, h, w, win, oh, ow, b, x, y, k, inside);
    else across16_rows(K, 1, h, w, win, oh, ow, b, x, y, k, inside);
    for (int q0 = 0; q0 < ohw; q0 += 16) {
        const int cnt = ohw - q0 < 16 ? ohw - q0 : 16;
        const __mmask16 m = wc_first_lanes(cnt);
        __m512 r[16];
        for (int j = 0; j < 16; j++) r[j] = j < cnt ? _mm512_loadu_ps(y + (size_t)(q0 + j) * 16) : _mm512_setzero_ps();
        transpose16(r);
        for (int i = 0; i < n; i++) {
            __m512 v = r[i];
            if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, residual + (size_t)i * ohw + q0));
            _mm512_mask_storeu_ps(out + (size_t)i * ohw + q0, m, wc_clamp512(v, lo, hi));
        }
    }
}

__attribute__((target("avx512f"))) static void across_avx512(const float *input, int count, int h, int w,
                                                             const float *weights, const float *bias,
                                                             const wc_window *win, float *output, int oh, int ow,
                                                             const float *residual, float low, float high,
                                                             float *scratch) {
    if (!across16_runs(win, h, w, oh, ow)) {
        across_any_avx512(input, count, h, w, weights, bias, win, output, oh, ow, residual, low, high, scratch);
        return;
    }
    const int K = win->kh, B = K - 1;
    const __m512 lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
    // Within `wc_depthwise_channels_scratch`'s floats, from its first 64-byte boundary (misaligned, every load of
    // sixteen floats spans two cache lines: 7×7 5×5, 1,152 channels, 50 against 40 µs): the bordered copy (its border
    // zero throughout), the outputs, the taps, each sixteen channels a pixel.
    const size_t bordered = (size_t)16 * (h + 2 * B) * (w + 2 * B);
    float *x = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float *y = x + bordered, *k = y + (size_t)16 * oh * ow;
    memset(x, 0, sizeof(float) * bordered);
    // Whether output ox0 + g's tap column kj lies inside the input: all lanes or none.
    __mmask16 inside[ACROSS16_WIDEST / ACROSS16_GROUP][ACROSS16_GROUP][5];
    for (int group = 0; group < ACROSS16_WIDEST / ACROSS16_GROUP; group++)
        for (int g = 0; g < ACROSS16_GROUP; g++) {
            const int ox = group * ACROSS16_GROUP + g;
            int kjLo = 0, kjHi = 0, ix0;
            if (ox < ow) tap_span(ox, K, win->sw, 1, win->pad_left, w, &kjLo, &kjHi, &ix0);
            for (int kj = 0; kj < 5; kj++) inside[group][g][kj] = kj >= kjLo && kj < kjHi ? 0xffff : 0;
        }
    const long hw = (long)h * w, ohw = (long)oh * ow;
    for (int c = 0; c < count; c += 16) {
        const int n = count - c < 16 ? count - c : 16;
        const float *res = residual ? residual + c * ohw : NULL, *b = bias ? bias + c : NULL;
        if (K == 3)
            across16_block(3, input + c * hw, n, h, w, weights + c * 9, b, win, output + c * ohw, oh, ow, res, lo, hi,
                           x, y, k, inside);
        else
            across16_block(5, input + c * hw, n, h, w, weights + c * 25, b, win, output + c * ohw, oh, ow, res, lo, hi,
                           x, y, k, inside);
    }
}
#endif

void wc_depthwise_channels(const float *input, int count, int h, int w, const float *weights, const float *bias,
                           const wc_window *window, float *output, int oh, int ow, const float *residual, float low,
                           float high, float *scratch) {
    DISPATCH(across, input, count, h, w, weights, bias, window, output, oh, ow, residual, low, high, scratch);
}

// ---- Along the flattened plane (AVX-512; AVX2 where every tap's inputs are consecutive) ----------------------------
//
// Each plane's oh·ow outputs are taken 16 at a time in row-major order, whatever the rows' length: a 4×4 map is one
// vector, a 2×2 map a quarter of one. For every vector of outputs and every tap, a table holds the 16 input offsets in
// the plane and a mask of the lanes whose tap lies inside the input. A tap reads its inputs with one masked load when
// they are consecutive (stride 1 inside a row, or a whole map with ow == w), else with a masked gather; masked lanes
// are neither read nor added, so each output sums bias, then tap·input for the taps inside the input in row-major
// order, each a fused multiply-add — as the row and across-channel kernels sum them — then + residual and the clamp.
// No transposes.

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

typedef struct {
    int32_t offsets[16];
    int32_t base;       // offsets[l] == base + l for every masked lane: one load instead of a gather
    uint16_t mask;
    uint16_t consecutive;
} flat_tap;

// Planes are taken G at a time, so that G independent sums hide the latency of each vector add.
#define FLAT_GROUP 4

// The planes [plane, plane + FLAT_GROUP) ∩ [plane, end): each one's input, taps and bias. Lanes past the last plane
// repeat it; only the first `count` are stored.
typedef struct {
    int count;
    const float *in[FLAT_GROUP], *k[FLAT_GROUP];
    float b[FLAT_GROUP];
} plane_group;

// `channel` holds the group's first plane's channel, and on return the next group's (no division per plane).
static inline plane_group group_of(const float *input, long plane, long end, long plane_size, int *channel,
                                   int channels, const float *weights, int taps, const float *bias) {
    plane_group group = {.count = end - plane < FLAT_GROUP ? (int)(end - plane) : FLAT_GROUP};
    int c = *channel;
    for (*channel += FLAT_GROUP; *channel >= channels;) *channel -= channels;
    for (int g = 0; g < FLAT_GROUP; g++) {
        const long p = plane + (g < group.count ? g : group.count - 1);
        if (g > 0 && g < group.count && ++c == channels) c = 0;
        group.in[g] = input + p * plane_size;
        group.k[g] = weights + (size_t)c * taps;
        group.b[g] = bias ? bias[c] : 0.0f;
    }
    return group;
}

// Output vector v of each plane of the group: + residual, the clamp, stored.
__attribute__((target("avx512f"), always_inline))
static inline void store_group(const __m512 *acc, const plane_group *group, long plane, int v, int pixels,
                               const float *residual, float *output, __m512 lo, __m512 hi) {
    const __mmask16 valid = wc_first_lanes(pixels - v * 16);
    for (int g = 0; g < group->count; g++) {
        const long at = (plane + g) * pixels + v * 16;
        __m512 x = acc[g];
        if (residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(valid, residual + at));
        _mm512_mask_storeu_ps(output + at, valid, wc_clamp512(x, lo, hi));
    }
}

__attribute__((target("avx512f")))
static void flat_depthwise_avx512(const float *input, int channels, long first, long count, int h, int w,
                                  const float *weights, const float *bias, int taps, const flat_tap *table,
                                  float *output, int pixels, const float *residual, float low, float high) {
    const int vectors = (pixels + 15) / 16;
    const __m512 lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
    int channel = (int)(first % channels);
    for (long plane = first; plane < first + count; plane += FLAT_GROUP) {
        const plane_group group =
            group_of(input, plane, first + count, (long)h * w, &channel, channels, weights, taps, bias);
        const float *const *in = group.in, *const *k = group.k;
        for (int v = 0; v < vectors; v++) {
            __m512 acc[FLAT_GROUP];
            for (int g = 0; g < FLAT_GROUP; g++) acc[g] = _mm512_set1_ps(group.b[g]);
            const flat_tap *e = table + (size_t)v * taps;
            for (int t = 0; t < taps; t++, e++) {
                const __mmask16 m = e->mask;
                if (!m) continue;
                if (e->consecutive) {
                    for (int g = 0; g < FLAT_GROUP; g++) {
                        __m512 x = _mm512_maskz_loadu_ps(m, in[g] + e->base);
                        acc[g] = _mm512_mask3_fmadd_ps(x, _mm512_set1_ps(k[g][t]), acc[g], m);
                    }
                } else {
                    const __m512i offsets = _mm512_loadu_si512((const void *)e->offsets);
                    for (int g = 0; g < FLAT_GROUP; g++) {
                        __m512 x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, offsets, in[g], 4);
                        acc[g] = _mm512_mask3_fmadd_ps(x, _mm512_set1_ps(k[g][t]), acc[g], m);
                    }
                }
            }
            store_group(acc, &group, plane, v, pixels, residual, output, lo, hi);
        }
    }
}

// Planes of at most 64 floats (maps up to 8×8) are loaded once into up to four vectors, and every tap's inputs are
// permuted out of those registers: one two-source permute per tap for planes up to 32 floats, two for larger ones (one
// per pair of vectors, the lanes of each named by a mask). No table lookups per lane and no gathers.

typedef struct {
    int32_t index[16];     // lane l's input in the plane, modulo 32 (a two-source permute's index)
    uint16_t low, high;    // lanes whose input is in the plane's floats [0, 32) and [32, 64)
    uint16_t mask;         // low | high: lanes whose tap lies inside the input
} small_tap;

enum { SMALL_PLANE = 64 };

__attribute__((target("avx512f")))
static void small_depthwise_avx512(const float *input, int channels, long first, long count, int hw,
                                   const float *weights, const float *bias, int taps, const small_tap *table,
                                   float *output, int pixels, const float *residual, float low, float high) {
    const int vectors = (pixels + 15) / 16, pairs = hw > 32 ? 2 : 1;
    const __m512 lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
    int channel = (int)(first % channels);
    for (long plane = first; plane < first + count; plane += FLAT_GROUP) {
        const plane_group group = group_of(input, plane, first + count, hw, &channel, channels, weights, taps, bias);
        const float *const *k = group.k;
        __m512 x[FLAT_GROUP][4];  // the first 2·pairs of each: the plane, zero past its end
        for (int g = 0; g < FLAT_GROUP; g++)
            for (int i = 0; i < 2 * pairs; i++)
                x[g][i] = _mm512_maskz_loadu_ps(wc_first_lanes(hw - 16 * i), group.in[g] + 16 * i);
        for (int v = 0; v < vectors; v++) {
            __m512 acc[FLAT_GROUP];
            for (int g = 0; g < FLAT_GROUP; g++) acc[g] = _mm512_set1_ps(group.b[g]);
            const small_tap *e = table + (size_t)v * taps;
            if (pairs == 1) {
                for (int t = 0; t < taps; t++, e++) {
                    const __mmask16 m = e->mask;
                    const __m512i index = _mm512_loadu_si512((const void *)e->index);
                    for (int g = 0; g < FLAT_GROUP; g++) {
                        __m512 in = _mm512_maskz_permutex2var_ps(m, x[g][0], index, x[g][1]);
                        acc[g] = _mm512_mask3_fmadd_ps(in, _mm512_set1_ps(k[g][t]), acc[g], m);
                    }
                }
            } else {
                for (int t = 0; t < taps; t++, e++) {
                    const __mmask16 m = e->mask, l = e->low, h = e->high;
                    const __m512i index = _mm512_loadu_si512((const void *)e->index);
                    for (int g = 0; g < FLAT_GROUP; g++) {
                        __m512 in = _mm512_maskz_permutex2var_ps(l, x[g][0], index, x[g][1]);
                        in = _mm512_mask_mov_ps(in, h, _mm512_permutex2var_ps(x[g][2], index, x[g][3]));
                        acc[g] = _mm512_mask3_fmadd_ps(in, _mm512_set1_ps(k[g][t]), acc[g], m);
                    }
                }
            }
            store_group(acc, &group, plane, v, pixels, residual, output, lo, hi);
        }
    }
}

// AVX2, at stride 1 on maps as wide as their input (MobileNetV2's 8×8, 4×4 and 2×2, EfficientNet-Lite0's 7×7): a
// vector of 8 outputs in row-major order reads each tap's inputs at one offset, through a masked load (lanes whose
// tap lies outside the input are not read, and keep their sum: a blend, so each output's sum is the same as along rows).
// The channels-last transposes of the kernel across channels cost more than the sums on such maps.
typedef struct {
    int32_t lanes[8];  // −1 where the lane's output exists and its tap lies inside the input
    int32_t base;      // the input under lane 0 (negative above the first row: those lanes are masked)
    int32_t mask;      // the lanes as bits
} flat8_tap;

static int flat8_runs(int w, const wc_window *win, int ow) {
    return wc_kernels_isa() == WC_ISA_AVX2 && win->sh == 1 && win->sw == 1 && ow == w;
}

static void build_flat8_table(flat8_tap *table, int h, int w, const wc_window *win, int oh, int ow) {
    const int taps = win->kh * win->kw, pixels = oh * ow;
    for (int o0 = 0; o0 < pixels; o0 += 8)
        for (int t = 0; t < taps; t++) {
            flat8_tap *e = table++;
            const int dy = t / win->kw * win->dh - win->pad_top, dx = t % win->kw * win->dw - win->pad_left;
            e->base = o0 + dy * w + dx;
            e->mask = 0;
            for (int l = 0, oy = o0 / ow, ox = o0 % ow; l < 8; l++, ox = ox + 1 == ow ? 0 : ox + 1, oy += ox == 0) {
                const int inside = o0 + l < pixels && oy + dy >= 0 && oy + dy < h && ox + dx >= 0 && ox + dx < w;
                e->lanes[l] = inside ? -1 : 0;
                e->mask |= inside << l;
            }
        }
}

__attribute__((target("avx2,fma")))
static void flat_depthwise_avx2(const float *input, int channels, long first, long count, int h, int w,
                                const float *weights, const float *bias, int taps, const flat8_tap *table,
                                float *output, int pixels, const float *residual, float low, float high) {
    const __m256 lo = _mm256_set1_ps(low), hi = _mm256_set1_ps(high);
    const __m256i ramp = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int channel = (int)(first % channels);
    for (long plane = first; plane < first + count; plane += FLAT_GROUP) {
        const plane_group group =
            group_of(input, plane, first + count, (long)h * w, &channel, channels, weights, taps, bias);
        const float *const *in = group.in, *const *k = group.k;
        // The next group's planes (contiguous) asked for now: these planes come from memory, and the masked loads
        // alone left them to arrive a miss at a time (cold, 64 images × 480 planes of 14×14: 30 against 17 ms along
        // rows).
        const long after = first + count - (plane + FLAT_GROUP);  // planes after this group
        const long ahead = (after < FLAT_GROUP ? (after > 0 ? after : 0) : FLAT_GROUP) * (long)h * w;
        const float *next = input + (ahead ? plane + FLAT_GROUP : plane) * (long)h * w;
        for (long i = 0; i < ahead; i += 16) __builtin_prefetch(next + i);
        for (int o0 = 0; o0 < pixels; o0 += 8) {
            __m256 acc[FLAT_GROUP];
            for (int g = 0; g < FLAT_GROUP; g++) acc[g] = _mm256_set1_ps(group.b[g]);
            const flat8_tap *e = table + (size_t)(o0 / 8) * taps;
            for (int t = 0; t < taps; t++, e++) {
                if (!e->mask) continue;
                const __m256i m = _mm256_loadu_si256((const __m256i *)e->lanes);
                for (int g = 0; g < FLAT_GROUP; g++) {
                    const __m256 x = _mm256_maskload_ps(in[g] + e->base, m);
                    const __m256 sum = _mm256_fmadd_ps(x, _mm256_set1_ps(k[g][t]), acc[g]);
                    acc[g] = e->mask == 0xff ? sum : _mm256_blendv_ps(acc[g], sum, _mm256_castsi256_ps(m));
                }
            }
            const int n = pixels - o0 < 8 ? pixels - o0 : 8;
            const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), ramp);
            for (int g = 0; g < group.count; g++) {
                const long at = (plane + g) * pixels + o0;
                __m256 x = acc[g];
                if (residual) x = _mm256_add_ps(x, _mm256_maskload_ps(residual + at, valid));
                x = wc_clamp256(x, lo, hi);
                if (n == 8) _mm256_storeu_ps(output + at, x);
                else wc_store_lanes8(output + at, x, 0, n);
            }
        }
    }
}

size_t wc_depthwise_flat_scratch(int oh, int ow, int kh, int kw) {
    const size_t entry = sizeof(flat_tap) > sizeof(small_tap) ? sizeof(flat_tap) : sizeof(small_tap);
    const size_t wide = entry * (size_t)((oh * ow + 15) / 16), narrow = sizeof(flat8_tap) * (size_t)((oh * ow + 7) / 8);
    return (wide > narrow ? wide : narrow) * kh * kw;
}

// ---- The tables, per vector of outputs and tap: vectors of lanes, no division per lane ------------------------------
// (Built per call, so at batch 1 once per worker per layer: lane by lane they took 8.6 µs for a 14×14 map's 3×3
// taps, 19 µs for its 5×5 ones, 43 µs for a 32×32 map's, against 62, 132 and 67 µs for the whole one-thread call.)

// The output coordinates of the next 16 outputs in row-major order, scaled by the strides, and which are outputs.
typedef struct {
    int next_y, next_x;        // the coordinates of the next vector's first output
    __m512i y, x;              // oy·sh and ox·sw of each lane
    __mmask16 valid;
    int32_t base;              // the vector's first output
} lane_coordinates;

__attribute__((target("avx512f")))
static void next_lanes(lane_coordinates *lanes, int ow, int pixels, const wc_window *win) {
    int32_t y[16], x[16];
    for (int l = 0; l < 16; l++) {
        y[l] = lanes->next_y * win->sh;
        x[l] = lanes->next_x * win->sw;
        if (++lanes->next_x == ow) { lanes->next_x = 0; lanes->next_y++; }
    }
    lanes->y = _mm512_loadu_si512((const void *)y);
    lanes->x = _mm512_loadu_si512((const void *)x);
    lanes->valid = wc_first_lanes(pixels - lanes->base);
    lanes->base += 16;
}

// The lanes whose input under tap (ki, kj) lies inside the plane, and every such input's offset in it (0 elsewhere).
__attribute__((target("avx512f")))
static __mmask16 tap_inputs(const lane_coordinates *lanes, int ki, int kj, int h, int w, const wc_window *win,
                            __m512i *offsets) {
    const __m512i iy = _mm512_add_epi32(lanes->y, _mm512_set1_epi32(ki * win->dh - win->pad_top));
    const __m512i ix = _mm512_add_epi32(lanes->x, _mm512_set1_epi32(kj * win->dw - win->pad_left));
    const __m512i zero = _mm512_setzero_si512();
    __mmask16 m = lanes->valid & _mm512_cmpge_epi32_mask(iy, zero) & _mm512_cmplt_epi32_mask(iy, _mm512_set1_epi32(h));
    m &= _mm512_cmpge_epi32_mask(ix, zero) & _mm512_cmplt_epi32_mask(ix, _mm512_set1_epi32(w));
    *offsets = _mm512_maskz_add_epi32(m, _mm512_mullo_epi32(iy, _mm512_set1_epi32(w)), ix);
    return m;
}

__attribute__((target("avx512f")))
static void small_entry(small_tap *e, __mmask16 mask, __m512i offsets) {
    memset(e, 0, sizeof *e);
    _mm512_storeu_si512((void *)e->index, _mm512_and_si512(offsets, _mm512_set1_epi32(31)));
    e->mask = mask;
    e->low = mask & _mm512_cmplt_epi32_mask(offsets, _mm512_set1_epi32(32));
    e->high = mask & ~e->low;
}

__attribute__((target("avx512f")))
static void flat_entry(flat_tap *e, __mmask16 mask, __m512i offsets) {
    _mm512_storeu_si512((void *)e->offsets, offsets);
    e->mask = mask;
    e->base = 0;
    e->consecutive = 1;
    if (!mask) return;
    // Consecutive: offset − lane the same in every masked lane.
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i shifted = _mm512_sub_epi32(offsets, lane);
    int32_t d[16];
    _mm512_storeu_si512((void *)d, shifted);
    e->base = d[__builtin_ctz(mask)];
    e->consecutive = (uint16_t)!(_mm512_mask_cmpneq_epi32_mask(mask, shifted, _mm512_set1_epi32(e->base)));
}

// The table of every vector of outputs and tap into `scratch`: small_tap entries when `small`, else flat_tap.
__attribute__((target("avx512f")))
static void build_tables(void *scratch, int small, int h, int w, const wc_window *win, int oh, int ow) {
    const int taps = win->kh * win->kw, pixels = oh * ow, vectors = (pixels + 15) / 16;
    lane_coordinates lanes = {0};
    for (int v = 0; v < vectors; v++) {
        next_lanes(&lanes, ow, pixels, win);
        for (int t = 0; t < taps; t++) {
            __m512i offsets;
            const __mmask16 mask = tap_inputs(&lanes, t / win->kw, t % win->kw, h, w, win, &offsets);
            if (small) small_entry((small_tap *)scratch + (size_t)v * taps + t, mask, offsets);
            else flat_entry((flat_tap *)scratch + (size_t)v * taps + t, mask, offsets);
        }
    }
}

// Output planes of four values (2×2 maps) under 3×3 taps, planes of at most 16 inputs: four planes a vector (lane
// 4g + p: plane g's output p), their inputs one to four loads, each tap one permute of them (`small_tap`, its lanes
// repeated for each plane); the four channels' taps and biases permuted into vectors once per group of channels, for
// every image of the call. Each output the same sum, in the same order, as `small_depthwise_avx512` gives (which
// leaves 12 of 16 lanes idle here). One layer + Clip, one thread, batch 16, least of 2 s, alternated rounds, µs: 960
// channels on 2×2 maps 95–96 → 39 (onnxruntime 59), 576 on 4×4 at stride 2 56–57 → 29–31 (44); MobileNetV2 64 px at
// batch 64, two threads, 11,459–11,632 → 10,960–11,228 µs; at batch 1 even.
enum { QUAD_PIXELS = 4, QUAD_TAPS = 9, QUAD_INPUTS = 16 };

static int quad_runs(int channels, int taps, int hw, int pixels) {
    return pixels == QUAD_PIXELS && taps == QUAD_TAPS && hw <= QUAD_INPUTS && channels % 4 == 0;
}

// The table of each tap for four planes of `hw` inputs a vector: output p's entry repeated in lanes 4g + p, offset by
// g·hw.
__attribute__((target("avx512f")))
static void build_quad_table(small_tap *table, int h, int w, const wc_window *win, int ow) {
    lane_coordinates lanes = {0};
    next_lanes(&lanes, ow, QUAD_PIXELS, win);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i pixel = _mm512_and_si512(lane, _mm512_set1_epi32(3)), plane = _mm512_srli_epi32(lane, 2);
    for (int t = 0; t < QUAD_TAPS; t++) {
        __m512i offsets;
        const unsigned m = tap_inputs(&lanes, t / win->kw, t % win->kw, h, w, win, &offsets) & 0xf;
        offsets = _mm512_add_epi32(_mm512_permutexvar_epi32(pixel, offsets),
                                   _mm512_mullo_epi32(plane, _mm512_set1_epi32(h * w)));
        small_entry(table + t, (__mmask16)(m | m << 4 | m << 8 | m << 12), offsets);
    }
}

__attribute__((target("avx512f")))
static void quad_depthwise_avx512(const float *input, int channels, long first, long count, int hw,
                                  const float *weights, const float *bias, const small_tap *table, float *output,
                                  const float *residual, float low, float high) {
    const __m512 lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
    const __m512i plane_of = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const int loads = (4 * hw + 15) / 16;
    const long end = first + count;
    for (int c = 0; c < channels; c += 4) {
        // Lane l's tap t and bias: channel c + l / 4's.
        const float *k = weights + (size_t)c * QUAD_TAPS;
        const __m512 k0 = _mm512_loadu_ps(k), k1 = _mm512_loadu_ps(k + 16), k2 = _mm512_maskz_loadu_ps(0xf, k + 32);
        __m512 tv[QUAD_TAPS];
        for (int t = 0; t < QUAD_TAPS; t++) {
            const __m512i index = _mm512_add_epi32(_mm512_mullo_epi32(plane_of, _mm512_set1_epi32(QUAD_TAPS)),
                                                   _mm512_set1_epi32(t));
            tv[t] = _mm512_mask_permutexvar_ps(_mm512_permutex2var_ps(k0, index, k1),
                                               _mm512_cmpge_epi32_mask(index, _mm512_set1_epi32(32)), index, k2);
        }
        const __m512 b = bias ? _mm512_permutexvar_ps(plane_of, _mm512_maskz_loadu_ps(0xf, bias + c)) : _mm512_setzero_ps();
        for (long plane = first / channels * channels + c; plane < end; plane += channels) {
            if (plane < first) continue;
            const float *in = input + plane * hw;
            __m512 x[4];
            for (int i = 0; i < loads; i++) x[i] = _mm512_maskz_loadu_ps(wc_first_lanes(4 * hw - 16 * i), in + 16 * i);
            for (int i = loads; i < 4; i++) x[i] = _mm512_setzero_ps();
            __m512 acc = b;
            const small_tap *e = table;
            for (int t = 0; t < QUAD_TAPS; t++, e++) {
                const __m512i index = _mm512_loadu_si512((const void *)e->index);
                __m512 v = _mm512_maskz_permutex2var_ps(e->low, x[0], index, x[1]);
                if (loads > 2) v = _mm512_mask_mov_ps(v, e->high, _mm512_permutex2var_ps(x[2], index, x[3]));
                acc = _mm512_mask3_fmadd_ps(v, tv[t], acc, e->mask);
            }
            const long at = plane * QUAD_PIXELS;
            if (residual) acc = _mm512_add_ps(acc, _mm512_loadu_ps(residual + at));
            _mm512_storeu_ps(output + at, wc_clamp512(acc, lo, hi));
        }
    }
}

int wc_depthwise_flat_runs(int h, int w, const wc_window *window, int oh, int ow) {
    return wc_kernels_isa() == WC_ISA_AVX512 || flat8_runs(w, window, ow);
}

int wc_depthwise_flat(const float *input, int channels, long first, long count, int h, int w, const float *weights,
                      const float *bias, const wc_window *win, float *output, int oh, int ow, const float *residual,
                      float low, float high, void *scratch) {
    const int taps = win->kh * win->kw, pixels = oh * ow;
    if (flat8_runs(w, win, ow)) {
        build_flat8_table(scratch, h, w, win, oh, ow);
        flat_depthwise_avx2(input, channels, first, count, h, w, weights, bias, taps, scratch, output, pixels,
                            residual, low, high);
        return 1;
    }
    if (wc_kernels_isa() != WC_ISA_AVX512) return 0;
    // Every tap's inputs consecutive (stride 1 with ow == w): loads; permutes where some are not, or on maps of up to
    // 32 floats. One thread, ns per plane, loads / permutes: 7×7, 3×3 taps 38 / 41–49, 5×5 taps 70 / 103; 4×4 at
    // stride 1 9.5 / 7.7, at stride 2 (gathered then) 27 / 7.6; 2×2 8.9 / 7.2.
    if (quad_runs(channels, taps, h * w, pixels)) {
        build_quad_table(scratch, h, w, win, ow);
        quad_depthwise_avx512(input, channels, first, count, h * w, weights, bias, scratch, output, residual, low,
                              high);
        return 1;
    }
    const int strided = win->sw != 1 || win->sh != 1 || ow != w;
    const int small = h * w <= SMALL_PLANE && (strided || h * w <= 32);
    build_tables(scratch, small, h, w, win, oh, ow);
    if (small)
        small_depthwise_avx512(input, channels, first, count, h * w, weights, bias, taps, scratch, output, pixels,
                               residual, low, high);
    else
        flat_depthwise_avx512(input, channels, first, count, h, w, weights, bias, taps, scratch, output, pixels,
                              residual, low, high);
    return 1;
}
#else
int wc_depthwise_flat_runs(int h, int w, const wc_window *window, int oh, int ow) { return 0; }
size_t wc_depthwise_flat_scratch(int oh, int ow, int kh, int kw) { return 1; }
int wc_depthwise_flat(const float *input, int channels, long first, long count, int h, int w, const float *weights,
                      const float *bias, const wc_window *win, float *output, int oh, int ow, const float *residual,
                      float low, float high, void *scratch) {
    return 0;
}
#endif

// ---- Weight gradient --------------------------------------------------------------------------------------------
//
// dW[c][tap] = Σ over images and outputs of dY·X under the tap, db[c] = Σ dY. Each image's plane is copied inside a
// zero border (every tap of every output then lands inside it); a row of dY is read a vector at a time and multiplied
// into one accumulator per tap, so the taps' sums run side by side. The lanes are added at the end of each channel.

static void gradient_plane_size(int h, int w, const wc_window *win, int oh, int ow, int lanes, long *rows, long *width) {
    long r = (long)(oh - 1) * win->sh + (long)(win->kh - 1) * win->dh + 1, c = (long)(ow - 1) * win->sw + (long)(win->kw - 1) * win->dw + 1;
    *rows = win->pad_top + h > r ? win->pad_top + h : r;
    // Room for a whole vector (two at stride 2) past the last output.
    *width = (win->pad_left + w > c ? win->pad_left + w : c) + 2L * lanes * (win->sw > 2 ? win->sw : 2);
}

size_t wc_depthwise_weight_gradient_scratch(int h, int w, const wc_window *window, int oh, int ow) {
    long rows, width;
    gradient_plane_size(h, w, window, oh, ow, 16, &rows, &width);
    return (size_t)(rows * width) + 16;
}

// Accumulators held at once (a 3×3 kernel needs 9; a kernel of more taps takes a pass per block of them).
enum { TAP_BLOCK = 25 };

// One image's rows of dY into the sums of the taps [t0, t1) (kh and kw constants where the caller knows them, so that
// the accumulators stay in registers).
// Each image's rows go into the zero-bordered plane through wc_row_phases_* (Dispatch.h) at stride 1: on AVX-512 short
// rows (7 or 14 floats in a Fashion-MNIST network) are one masked load and store each, not a call of memcpy per row.
#define DEFINE_WEIGHT_GRADIENT(NAME, ATTR, VEC, IVEC, L, COPY, ...)                                                          \
    ATTR static inline __attribute__((always_inline)) void NAME##_rows(                                           \
        const float *g, const float *plane, long width, const wc_window *win, int oh, int ow, const int kh,       \
        const int kw, const int t0, const int t1, VEC *sums) {                                                    \
        VEC acc[TAP_BLOCK];                                                                                       \
        for (int t = t0; t < t1; t++) acc[t - t0] = (VEC){0};                                                     \
        for (int oy = 0; oy < oh; oy++) {                                                                         \
            const float *grow = g + (size_t)oy * ow;                                                              \
            for (int ox = 0; ox < ow; ox += L) {                                                                  \
                const int left = ow - ox;                                                                         \
                VEC gv = (VEC){0};                                                                                \
                memcpy(&gv, grow + ox, sizeof(float) * (left < L ? left : L));                                    \
                /* Lanes past the row's end: 0, not the neighbouring inputs (which may be inf). */                \
                IVEC keep;                                                                                        \
                for (int i = 0; i < L; i++) keep[i] = i < left ? -1 : 0;                                          \
                for (int ki = 0; ki < kh; ki++) {                                                                 \
                    const float *line = plane + ((long)oy * win->sh + (long)ki * win->dh) * width + (long)ox * win->sw; \
                    for (int kj = 0; kj < kw; kj++) {                                                             \
                        const int t = ki * kw + kj;                                                               \
                        if (t < t0 || t >= t1) continue;                                                          \
                        const float *p = line + kj * win->dw;                                                     \
                        VEC v;                                                                                    \
                        if (win->sw == 1) memcpy(&v, p, sizeof v);                                                \
                        else if (win->sw == 2) {                                                                  \
                            VEC lo, hi;                                                                           \
                            memcpy(&lo, p, sizeof lo);                                                            \
                            memcpy(&hi, p + L, sizeof hi);                                                        \
                            v = __builtin_shufflevector(lo, hi, __VA_ARGS__);                                    \
                        } else                                                                                    \
                            for (int i = 0; i < L; i++) v[i] = p[(long)i * win->sw];                              \
                        v = (VEC)((IVEC)v & keep);                                                                \
                        acc[t - t0] += gv * v;                                                                    \
                    }                                                                                             \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
        for (int t = t0; t < t1; t++) sums[t - t0] += acc[t - t0];                                                \
    }                                                                                                             \
                                                                                                                  \
    ATTR static void NAME(const float *x, const float *dy, int n, int c, int h, int w, const wc_window *win,      \
                          int oh, int ow, int first, int count, float *dweight, float *dbias, float *scratch) {   \
        long rows, width;                                                                                         \
        gradient_plane_size(h, w, win, oh, ow, 16, &rows, &width);                                                \
        const int taps = win->kh * win->kw;                                                                       \
        memset(scratch, 0, sizeof(float) * rows * width);                                                         \
        VEC sums[TAP_BLOCK];                                                                                      \
        for (int ch = first; ch < first + count; ch++)                                                            \
            for (int t0 = 0; t0 < taps; t0 += TAP_BLOCK) { /* more taps than accumulators: a pass per block */    \
                const int t1 = t0 + TAP_BLOCK < taps ? t0 + TAP_BLOCK : taps;                                     \
                float bias = 0;                                                                                   \
                for (int t = t0; t < t1; t++) sums[t - t0] = (VEC){0};                                            \
                for (int img = 0; img < n; img++) {                                                               \
                    const float *plane = x + ((size_t)img * c + ch) * h * w;                                      \
                    const float *g = dy + ((size_t)img * c + ch) * oh * ow;                                       \
                    for (int y = 0; y < h; y++)                                                                   \
                        COPY(plane + (size_t)y * w, w, win->pad_left, 1, scratch + (win->pad_top + y) * width, 0); \
                    for (int i = 0; i < oh * ow; i++) bias += g[i];                                               \
                    if (win->kh == 3 && win->kw == 3)                                                             \
                        NAME##_rows(g, scratch, width, win, oh, ow, 3, 3, 0, 9, sums);                            \
                    else                                                                                          \
                        NAME##_rows(g, scratch, width, win, oh, ow, win->kh, win->kw, t0, t1, sums);              \
                }                                                                                                 \
                for (int t = t0; t < t1; t++) {                                                                   \
                    float s = 0;                                                                                  \
                    for (int i = 0; i < L; i++) s += sums[t - t0][i];                                             \
                    dweight[(size_t)ch * taps + t] = s;                                                           \
                }                                                                                                 \
                dbias[ch] = bias;                                                                                 \
            }                                                                                                     \
    }

DEFINE_WEIGHT_GRADIENT(weight_gradient_generic, , row8, rowi8, 8, wc_row_phases_generic, 0, 2, 4, 6, 8, 10, 12, 14)
#if defined(__x86_64__)
DEFINE_WEIGHT_GRADIENT(weight_gradient_avx2, __attribute__((target("avx2,fma"))), row8, rowi8, 8, wc_row_phases_avx2,
                       0, 2, 4, 6, 8, 10, 12, 14)
DEFINE_WEIGHT_GRADIENT(weight_gradient_avx512, __attribute__((target("avx512f"))), row16, rowi16, 16, wc_row_phases_avx512,
                       0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#endif

void wc_depthwise_weight_gradient(const float *x, const float *dy, int n, int c, int h, int w, const wc_window *window,
                                  int oh, int ow, int first, int count, float *dweight, float *dbias, float *scratch) {
    DISPATCH(weight_gradient, x, dy, n, c, h, w, window, oh, ow, first, count, dweight, dbias, scratch);
}
