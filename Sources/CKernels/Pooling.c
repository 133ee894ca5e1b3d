// Max pooling of one plane: held inside a −∞ border, a vector of outputs at a time (baseline, and AVX2 and AVX-512 at
// strides over 2), or separable (AVX2 and AVX-512 at strides 1 and 2); or many planes a call: straight from the input
// (AVX-512 at strides 1 and 2 along the rows, windows up to 4 wide; AVX2 for 3×3 windows at stride 2, and on planes 8
// to 16 wide), or for small outputs one plane per lane (sixteen with AVX-512, eight with AVX2).
#include "Dispatch.h"
#include "RowCopy.h"
#include "Transpose.h"
#include <stdint.h>
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
        long tapAt[ROWS_TAPS];                                                                                    \
        const int tabled = row_copy_taps(g, win, tapAt);                                                          \
        for (int oy0 = 0; oy0 < oh; oy0 += ROWS) {                                                                \
            const int rows = oh - oy0 < ROWS ? oh - oy0 : ROWS;                                                   \
            const float *base = copy + oy0 * step;                                                                \
            for (int ox = 0; ox < ow; ox += L) {                                                                  \
                VEC best[ROWS];                                                                                   \
                for (int r = 0; r < ROWS; r++) best[r] = -__builtin_inff() - (VEC){0};                            \
                for (int ki = 0, t = 0; ki < win->kh; ki++)                                                       \
                    for (int kj = 0; kj < win->kw; kj++, t++) {                                                   \
                        const float *p = base + (tabled ? tapAt[t] : row_copy_tap(g, win, ki, kj)) + ox;          \
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

// ---- Separable, AVX-512 and AVX2 at strides 1 and 2 -----------------------------------------------------------------
// A max over a window is the max along its columns of the maxima down its rows. For a block of SEP_ROWS output rows,
// each one's maxima down its window's rows go into a row of the scratch (its input columns at pad_left, −∞ around
// them), all of the block first: a load right after the masked store it overlaps waits for that store. Then the
// maxima along each row, sixteen outputs at a time: at stride 2 each tap's sixteen inputs are the even columns of two
// vectors, one permute. Every input value is read once per output row that covers it, with no copy of the plane (the
// phase copy above writes and reads a plane that fits in L2 only at small sizes).
// The maxima come from vrangeps (AVX-512DQ, imm 5: the greater, signed), which drops a quiet NaN. Beside them the
// inputs are summed; where a sum is NaN (a NaN among them, or infinities of both signs) the vector is taken again by
// the other kernels' rule, so a NaN is propagated as there (which one, when a window holds several, may differ).
// One thread, 3×3 stride 2, ns per plane against the kernel above (inputs resident in L2, best of 5, two runs):
// 31×31 → 15×15 310–441 / 488–533; 15×15 → 7×7 86–98 / 168–238; 55×55 → 27×27 754–807 / 955–978; 111×111 → 55×55
// 2,880–2,952 / 5,546–5,598. In SqueezeNet 64 px at batch 64 the pools read their inputs from memory and gain nothing.
enum { SEP_ROWS = 8 };

static long sep_pitch(int w, const wc_window *win, int ow) {
    // Columns read by ⌈ow/16⌉·16 outputs, the second vector of the last stride-2 load included, and the plane's.
    long cols = (long)(ow + 15) / 16 * 16 * win->sw + (long)(win->kw - 1) * win->dw + 16;
    if (cols < (long)win->pad_left + w + 16) cols = (long)win->pad_left + w + 16;
    return (cols + 15) / 16 * 16;
}

// The rows of output row oy's window inside the plane: first, first + dh, … below last. Returns the window's first row
// (negative in the top padding).
static inline int window_rows(const wc_window *win, int h, int oy, int *first, int *last) {
    const int y0 = oy * win->sh - win->pad_top;
    *first = y0;
    *last = y0 + (win->kh - 1) * win->dh + 1;
    if (*first < 0) *first += (-*first + win->dh - 1) / win->dh * win->dh;
    if (*last > h) *last = h;
    return y0;
}

#if defined(__x86_64__)
static int has_dq(void) {
    static volatile int dq = -1;  // a race between first callers only computes the same value twice
    if (dq < 0) dq = __builtin_cpu_supports("avx512dq");
    return dq;
}
#endif

static int separable_runs(const wc_window *win) {
#if defined(__x86_64__)
    return ((wc_kernels_isa() == WC_ISA_AVX512 && has_dq()) || wc_kernels_isa() == WC_ISA_AVX2) && win->sw <= 2;
#else
    (void)win;
    return 0;
#endif
}

// Whether the AVX2 separable kernel takes two output rows at once from the five input rows they cover (3×3 windows at
// vertical stride 2: consecutive output rows share an input row).
static int two_rows_at_once(const wc_window *win) {
    return wc_kernels_isa() == WC_ISA_AVX2 && separable_runs(win) && win->kh == 3 && win->sh == 2 && win->dh == 1;
}

#if defined(__x86_64__)
// The kept value or v, where v is greater or NaN (the other kernels' rule).
__attribute__((target("avx512f"))) static inline __m512 max_or_nan(__m512 best, __m512 v) {
    return _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
}

__attribute__((target("avx512f,avx512dq")))
static void maxpool_separable(const float *plane, int h, int w, const wc_window *win, float *out, int oh, int ow,
                              float *rows) {
    const long pitch = sep_pitch(w, win, ow);
    const __m512 lowest = _mm512_set1_ps(-__builtin_inff()), zero = _mm512_setzero_ps();
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    for (int oy0 = 0; oy0 < oh; oy0 += SEP_ROWS) {
        const int block = oh - oy0 < SEP_ROWS ? oh - oy0 : SEP_ROWS;
        for (int r = 0; r < block; r++) {
            int first, last;
            window_rows(win, h, oy0 + r, &first, &last);
            float *row = rows + r * pitch + win->pad_left;
            for (int x = 0; x < w; x += 16) {
                const __mmask16 m = wc_first_lanes(w - x);
                __m512 best = lowest, sum = zero;
                for (int y = first; y < last; y += win->dh) {
                    const __m512 v = _mm512_mask_loadu_ps(lowest, m, plane + (long)y * w + x);
                    best = _mm512_range_ps(best, v, 5);
                    sum = _mm512_add_ps(sum, v);
                }
                if (_mm512_cmp_ps_mask(sum, sum, _CMP_UNORD_Q) & m) {
                    best = lowest;
                    for (int y = first; y < last; y += win->dh)
                        best = max_or_nan(best, _mm512_mask_loadu_ps(lowest, m, plane + (long)y * w + x));
                }
                _mm512_mask_storeu_ps(row + x, m, best);
            }
        }
        for (int r = 0; r < block; r++) {
            const float *row = rows + r * pitch;
            float *o = out + (long)(oy0 + r) * ow;
            // Tap kj's inputs under outputs ox … ox + 15.
#define TAP(kj) (win->sw == 1 ? _mm512_loadu_ps(row + ox + (kj) * win->dw)                                            \
                              : _mm512_permutex2var_ps(_mm512_loadu_ps(row + 2L * ox + (kj) * win->dw), even,          \
                                                       _mm512_loadu_ps(row + 2L * ox + (kj) * win->dw + 16)))
            for (int ox = 0; ox < ow; ox += 16) {
                const __mmask16 m = wc_first_lanes(ow - ox);
                __m512 best = lowest, sum = zero;
                for (int kj = 0; kj < win->kw; kj++) {
                    const __m512 v = TAP(kj);
                    best = _mm512_range_ps(best, v, 5);
                    sum = _mm512_add_ps(sum, v);
                }
                if (_mm512_cmp_ps_mask(sum, sum, _CMP_UNORD_Q) & m) {
                    best = lowest;
                    for (int kj = 0; kj < win->kw; kj++) best = max_or_nan(best, TAP(kj));
                }
                _mm512_mask_storeu_ps(o + ox, m, best);
            }
#undef TAP
        }
    }
}

// The same with AVX2, eight outputs at a time: the maxima from vmaxps (v > best ? v : best, which drops a NaN in v);
// where the plane holds a NaN it is taken again by the other kernels' rule (see the pass below). At stride 2 each tap's
// eight inputs are the even columns of two vectors, by one in-lane shuffle, which leaves them in the order 0 1 4 5 2 3
// 6 7; every tap the same, so one permute puts the maxima in order before the store.
// One thread (AMD EPYC, C harness, planes from L3 as in a network), µs per plane, bordered copy / separable, three
// alternated runs: 111×111 → 55×55 4.83–4.89 / 3.13–3.22; 55×55 → 27×27 1.34–1.36 / 0.93–0.99; 27×27 → 13×13
// 0.46–0.47 / 0.33–0.34 (SqueezeNet 1.1's 3×3 stride-2 pools at 224 px); 2×2 stride 2 32×32 → 16×16 0.31–0.41 /
// 0.32–0.52, 16×16 → 8×8 0.12–0.19 / 0.10–0.13. In the networks (two threads, each node's least time of 3 × 10
// batches): SqueezeNet 1.1 224 px batch 1, 111 → 55 177 → 118 µs, 55 → 27 89 → 64; VGG-16 FMNIST batch 64, its first
// 2×2 pool (until now the plain loop in Pooling.swift) 1,370 → 870 µs; AlexNet FMNIST batch 64, 1,241 → 755.
// Partial vectors are stored by wc_store_lanes8, not vmaskmovps (microcoded on Zen): ns per plane, 31×31 → 15×15
// 571–701 → 489–596, 55×55 → 27×27 983 → 845, 111×111 → 55×55 3,499 → 3,242.
// Down the columns, a window's rows unrolled when all of them lie inside the plane, and at 3×3 stride 2 two output rows
// at once from the five input rows they cover (the middle one is both rows' last and first). The same harness, planes
// from L2 / from L3 (64 planes), ns per plane, before → after: 111×111 → 55×55 2,645 → 1,663 / 2,746 → 1,892;
// 55×55 → 27×27 761 → 461 / 801 → 525; 27×27 → 13×13 280 → 180; planes from memory (1,024 of 111×111) even, 4,119 →
// 4,485 and 4,083 → 4,202. SqueezeNet 1.1 224 px at batch 1, one thread, the three pools' least of 3 × 10 batches:
// 413 → 341 µs (111 → 55 187 → 173, 55 → 27 107 → 73, 27 → 13 72 → 47; onnxruntime 91, 45, 23).
__attribute__((target("avx2"))) static inline __m256i first_lanes8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2"))) static inline __m256 max_or_nan8(__m256 best, __m256 v) {
    const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_blendv_ps(best, v, take);
}

// The maxima down the columns of two output rows from their five input rows a … e (the second row's window starts at
// c), and whether any of the five holds a NaN (or infinities of both signs) added to `nan`.
__attribute__((target("avx2"))) static inline void pair_maxima(__m256 a, __m256 b, __m256 c, __m256 d, __m256 e,
                                                               __m256 *nan, __m256 *first, __m256 *second) {
    const __m256 sum = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(d, e)), c);
    *nan = _mm256_or_ps(*nan, _mm256_cmp_ps(sum, sum, _CMP_UNORD_Q));
    *first = _mm256_max_ps(c, _mm256_max_ps(b, a));
    *second = _mm256_max_ps(e, _mm256_max_ps(d, c));
}

// One pass over the plane: with `exact`, every value by the other kernels' rule (max_or_nan8); without, by vmaxps,
// each vector of a column's inputs summed on the side. Every input under a window is read once down the columns, so
// the plane holds a NaN only if one of those sums is NaN (or infinities of both signs meet): then it returns 1 and the
// caller takes the plane again, exactly.
// KH, KW and SW: the window's (constants where the caller specialises it, so that the taps' loops unroll).
__attribute__((target("avx2,fma"), always_inline))
static inline int maxpool_separable_avx2_pass(const float *plane, int h, int w, const wc_window *win, float *out,
                                              int oh, int ow, float *rows, int exact, const int KH, const int KW,
                                              const int SW) {
    const long pitch = sep_pitch(w, win, ow);
    const __m256 lowest = _mm256_set1_ps(-__builtin_inff()), zero = _mm256_setzero_ps();
    const int pairs = KH == 3 && two_rows_at_once(win);
    __m256 nan = zero;
#define TAPS(TAPS_, LOAD)                                                                                             \
    do {                                                                                                              \
        __m256 sum = zero;                                                                                            \
        for (int t = 0; t < TAPS_; t++) {                                                                             \
            const float *p = top + t * down;                                                                          \
            const __m256 v = LOAD;                                                                                    \
            if (exact) best = max_or_nan8(best, v);                                                                   \
            else best = _mm256_max_ps(v, best), sum = _mm256_add_ps(sum, v);                                          \
        }                                                                                                             \
        if (!exact) nan = _mm256_or_ps(nan, _mm256_cmp_ps(sum, sum, _CMP_UNORD_Q));                                   \
    } while (0)
#define DOWN(LOAD)                                                                                                    \
    do {                                                                                                              \
        const float *top = plane + (long)first * w + x;                                                               \
        if (whole) TAPS(KH, LOAD);                                                                                    \
        else TAPS(taps, LOAD);                                                                                        \
    } while (0)
    for (int oy0 = 0; oy0 < oh; oy0 += SEP_ROWS) {
        const int block = oh - oy0 < SEP_ROWS ? oh - oy0 : SEP_ROWS;
        for (int r = 0; r < block; r++) {
            int first, last;
            const int y0 = window_rows(win, h, oy0 + r, &first, &last);
            const int whole = first == y0 && last == y0 + (KH - 1) * win->dh + 1;  // all KH rows inside the plane
            const int taps = (last - first + win->dh - 1) / win->dh;
            const long down = (long)win->dh * w;
            float *row = rows + r * pitch + win->pad_left;
            int x = 0;
            if (pairs && !exact && whole && r + 1 < block && y0 + 5 <= h) {
                // Rows r and r + 1 share the input row between them: five rows read for both.
                const float *top = plane + (long)y0 * w;
                __m256 one, two;
                for (; x + 8 <= w; x += 8) {
                    const float *p = top + x;
                    pair_maxima(_mm256_loadu_ps(p), _mm256_loadu_ps(p + w), _mm256_loadu_ps(p + 2 * w),
                                _mm256_loadu_ps(p + 3 * w), _mm256_loadu_ps(p + 4 * w), &nan, &one, &two);
                    _mm256_storeu_ps(row + x, one);
                    _mm256_storeu_ps(row + pitch + x, two);
                }
                if (x < w) {
                    const __m256i m = first_lanes8(w - x);
                    const float *p = top + x;
                    pair_maxima(_mm256_maskload_ps(p, m), _mm256_maskload_ps(p + w, m), _mm256_maskload_ps(p + 2 * w, m),
                                _mm256_maskload_ps(p + 3 * w, m), _mm256_maskload_ps(p + 4 * w, m), &nan, &one, &two);
                    wc_store_lanes8(row + x, one, 0, w - x);
                    wc_store_lanes8(row + pitch + x, two, 0, w - x);
                }
                r++;
                continue;
            }
            for (; x + 8 <= w; x += 8) {
                __m256 best = lowest;
                DOWN(_mm256_loadu_ps(p));
                _mm256_storeu_ps(row + x, best);
            }
            if (x < w) {
                const __m256i m = first_lanes8(w - x);
                __m256 best = lowest;
                DOWN(_mm256_maskload_ps(p, m));
                wc_store_lanes8(row + x, best, 0, w - x);
            }
        }
        for (int r = 0; r < block; r++) {
            const float *row = rows + r * pitch;
            float *o = out + (long)(oy0 + r) * ow;
            for (int ox = 0; ox < ow; ox += 8) {
                __m256 best = lowest;
                for (int kj = 0; kj < KW; kj++) {
                    const float *p = row + (long)SW * ox + kj * win->dw;
                    const __m256 v = SW == 1 ? _mm256_loadu_ps(p)
                                                  : _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88);
                    best = exact ? max_or_nan8(best, v) : _mm256_max_ps(v, best);
                }
                if (SW == 2) best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), 0xd8));
                if (ow - ox >= 8) _mm256_storeu_ps(o + ox, best);
                else wc_store_lanes8(o + ox, best, 0, ow - ox);
            }
        }
    }
#undef DOWN
#undef TAPS
    return !exact && _mm256_movemask_ps(nan);
}

// The common windows with their sizes as constants: 3×3 at strides 2 and 1, 2×2 at stride 2.
#define SEPARABLE_AVX2(NAME, KH, KW, SW)                                                                              \
    __attribute__((target("avx2,fma"))) static int NAME(const float *plane, int h, int w, const wc_window *win,       \
                                                        float *out, int oh, int ow, float *rows, int exact) {         \
        return exact ? maxpool_separable_avx2_pass(plane, h, w, win, out, oh, ow, rows, 1, KH, KW, SW)                \
                     : maxpool_separable_avx2_pass(plane, h, w, win, out, oh, ow, rows, 0, KH, KW, SW);               \
    }
SEPARABLE_AVX2(separable_avx2_3x3s2, 3, 3, 2)
SEPARABLE_AVX2(separable_avx2_3x3s1, 3, 3, 1)
SEPARABLE_AVX2(separable_avx2_2x2s2, 2, 2, 2)
SEPARABLE_AVX2(separable_avx2_s2, win->kh, win->kw, 2)
SEPARABLE_AVX2(separable_avx2_s1, win->kh, win->kw, 1)

__attribute__((target("avx2,fma")))
static void maxpool_separable_avx2(const float *plane, int h, int w, const wc_window *win, float *out, int oh, int ow,
                                   float *rows) {
    const int square = win->kh == win->kw && win->dh == 1 && win->dw == 1;
    int (*pass)(const float *, int, int, const wc_window *, float *, int, int, float *, int) =
        square && win->kh == 3 ? (win->sw == 2 ? separable_avx2_3x3s2 : separable_avx2_3x3s1)
        : square && win->kh == 2 && win->sw == 2 ? separable_avx2_2x2s2
        : win->sw == 2 ? separable_avx2_s2 : separable_avx2_s1;
    if (pass(plane, h, w, win, out, oh, ow, rows, 0)) pass(plane, h, w, win, out, oh, ow, rows, 1);
}
#endif

int wc_maxpool_separable_runs(const wc_window *window) { return separable_runs(window); }

size_t wc_maxpool_scratch_count(int h, int w, const wc_window *window, int oh, int ow) {
    if (separable_runs(window)) return (size_t)(sep_pitch(w, window, ow) * SEP_ROWS);
    return wc_row_copy_count(h, w, window, oh, ow);
}

void wc_maxpool_rows(const float *plane, int h, int w, const wc_window *window, float *out, int oh, int ow,
                     float *scratch) {
#if defined(__x86_64__)
    if (separable_runs(window)) {
        if (wc_kernels_isa() == WC_ISA_AVX512) maxpool_separable(plane, h, w, window, out, oh, ow, scratch);
        else maxpool_separable_avx2(plane, h, w, window, out, oh, ow, scratch);
        return;
    }
#endif
    DISPATCH(maxpool, plane, h, w, window, out, oh, ow, scratch);
}

// ---- Across planes ------------------------------------------------------------------------------------------------
// Small outputs (3×3, 7×7: SqueezeNet's later pools) fill a fraction of a row vector, so sixteen planes go together
// instead, one per lane, copied channels last: each output keeps the same value, by the same comparisons in the same
// order, as `wc_maxpool_rows` (taps outside the input are skipped, as its −∞ border never wins). With AVX2, eight
// planes at a time (below).
// ACROSS_AVX2_INPUTS bounds the AVX2 kernel's channels-last copy (8 floats a pixel).
// ACROSS_BEFORE_DIRECT: on AVX-512, outputs up to this many a plane go across planes rather than straight (below).
enum { ACROSS_OUTPUTS = 64, ACROSS_OUTPUTS_SEPARABLE = 25, ACROSS_AVX2_INPUTS = 1 << 16, ACROSS_BEFORE_DIRECT = 16 };

#if defined(__x86_64__)
// AVX-512: sixteen planes at a time copied channels last through 16 × 16 transposes (`transpose_in16`), each output
// the running maximum of its taps' vectors of sixteen planes, then transposed back. It replaced a gather per tap, and
// takes outputs up to 4×4 from the kernel straight from the input (C harness, one thread, 3×3 stride 2, 1,024 planes,
// ns per plane, straight / here: 5×5 → 2×2 14.3 / 7.1, 7×7 → 3×3 19.9 / 11.8, 9×9 → 4×4 24.3 / 18.6, 11×11 → 5×5
// 29.8 / 29.0; 15×15 → 7×7, 128 planes, 40.5 / 56.7).
__attribute__((target("avx512f")))
static void maxpool_across_avx512(const float *input, long count, int h, int w, const wc_window *win, float *output,
                                  int oh, int ow) {
    const int pixels = h * w, outputs = oh * ow;
    float *x = aligned_alloc(64, sizeof(float) * 16 * (size_t)(pixels + outputs)), *y = x + 16 * (size_t)pixels;
    if (!x) abort();
    for (long p = 0; p < count; p += 16) {
        const int valid = count - p < 16 ? (int)(count - p) : 16;
        transpose_in16(input + p * pixels, valid, pixels, x);
        for (int oy = 0; oy < oh; oy++) {
            int klo, khi, y0, jlo, jhi, x0;
            tap_span(oy, win->kh, win->sh, win->dh, win->pad_top, h, &klo, &khi, &y0);
            for (int ox = 0; ox < ow; ox++) {
                tap_span(ox, win->kw, win->sw, win->dw, win->pad_left, w, &jlo, &jhi, &x0);
                __m512 best = _mm512_set1_ps(-__builtin_inff());
                for (int ki = klo; ki < khi; ki++) {
                    const float *row = x + 16 * ((long)(y0 + ki * win->dh) * w + x0);
                    for (int kj = jlo; kj < jhi; kj++) {
                        best = max_or_nan(best, _mm512_load_ps(row + 16 * kj * win->dw));
                    }
                }
                _mm512_store_ps(y + 16 * (oy * ow + ox), best);
            }
        }
        transpose_out16(y, valid, outputs, output + p * outputs);
    }
    free(x);
}

// AVX2 (whose gathers ran slower than scalar loads here): eight planes at a time copied channels last, through 8 × 8
// transposes in registers, the outputs taken a vector of eight planes at a time from there, then transposed back.
// One thread (AMD EPYC, C harness, 3×3 stride 2, planes from memory as at batch 64, ns per plane, along rows /
// across, three runs): 7×7 → 3×3 113–201 / 28–58; 13×13 → 6×6 190–376 / 93–185; 15×15 → 7×7 234–455 / 171–402 (the
// next planes asked for ahead: without it 455 / 402); 31×31 → 15×15 822–1,146 / 837–1,349, 27×27 → 13×13 549–976 /
// 631–1,021: there the rows kernel stays.
__attribute__((target("avx2")))
static void maxpool_across_avx2(const float *input, long count, int h, int w, const wc_window *win, float *output,
                                int oh, int ow) {
    const int pixels = h * w, outputs = oh * ow;
    float *x = malloc(sizeof(float) * 8 * (size_t)(pixels + outputs)), *y = x + 8 * (size_t)pixels;
    if (!x) abort();
    for (long p = 0; p < count; p += 8) {
        const int valid = count - p < 8 ? (int)(count - p) : 8;
        transpose_in_avx2(input + p * pixels, valid, pixels, 8, x);
        // The next eight planes (contiguous) asked for while these are pooled, a share of their lines per output row:
        // they come from memory, and the transposes' eight streams of loads waited on each line.
        const long ahead = count - p - 8 < 8 ? count - p - 8 : 8;  // planes after these (none when ≤ 0)
        const char *next = (const char *)(input + (p + (ahead > 0 ? 8 : 0)) * pixels);
        const long lines = ahead > 0 ? (ahead * pixels + 15) / 16 : 0;
        for (int oy = 0; oy < oh; oy++) {
            for (long l = lines * oy / oh; l < lines * (oy + 1) / oh; l++) __builtin_prefetch(next + 64 * l);
            int klo, khi, y0, jlo, jhi, x0;
            tap_span(oy, win->kh, win->sh, win->dh, win->pad_top, h, &klo, &khi, &y0);
            for (int ox = 0; ox < ow; ox++) {
                tap_span(ox, win->kw, win->sw, win->dw, win->pad_left, w, &jlo, &jhi, &x0);
                __m256 best = _mm256_set1_ps(-__builtin_inff());
                for (int ki = klo; ki < khi; ki++) {
                    const float *row = x + 8 * ((long)(y0 + ki * win->dh) * w + x0);
                    for (int kj = jlo; kj < jhi; kj++) {
                        const __m256 v = _mm256_loadu_ps(row + 8 * kj * win->dw);
                        const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),
                                                         _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
                        best = _mm256_blendv_ps(best, v, take);
                    }
                }
                _mm256_storeu_ps(y + 8 * (oy * ow + ox), best);
            }
        }
        transpose_out_avx2(y, valid, outputs, 8, output + p * outputs, NULL, -__builtin_inff(), __builtin_inff());
    }
    free(x);
}
#endif

// ---- Small planes in registers --------------------------------------------------------------------------------
// Planes 8 to 16 wide with up to 8 outputs a row (AVX2): each input row is two vectors, its first eight columns and its
// last eight (they overlap under 16 wide), each output row the vmaxps of its window's rows, then of its taps along
// them, each tap's inputs under the eight outputs picked from the two vectors by permutes (a lane whose input is past
// the plane's edge, or past the outputs, takes −∞). Many planes a call, no scratch. A NaN among a plane's inputs (or
// infinities of both signs: the rows' sums) sends the plane through again by the other kernels' rule.
// One thread (AMD EPYC, C harness, 512 planes in L2 / 8,192 from L3, ns per plane), along rows → here: 15×15 → 7×7
// (SqueezeNet 1.1 64 px) 85 / 85 → 54 / 55; 14×14 → 7×7 at padding 1 159 / 158 → 87 / 88; 2×2 stride 2 16×16 → 8×8
// 136 / 85 → 71 / 47 (across planes 170 / 117). Under 8 wide the kernel across planes is as fast or faster (7×7 → 3×3
// 24 / 25 against 24 / 25; 5×5 → 3×3 at padding 1 34 / 36 against 39 / 41).
enum { SMALL_WIDTH = 16, SMALL_OUTPUTS = 8, SMALL_TAPS = 8 };

#if defined(__x86_64__)
__attribute__((target("avx2"), always_inline))
static inline int maxpool_small_plane(const float *plane, int h, int w, const wc_window *win, float *out, int oh,
                                      int ow, const __m256i *at, const __m256 *high, const __m256 *none, int exact) {
    const __m256 lowest = _mm256_set1_ps(-__builtin_inff());
    __m256 nan = _mm256_setzero_ps();
    for (int oy = 0; oy < oh; oy++) {
        int first, last;
        window_rows(win, h, oy, &first, &last);
        __m256 a = lowest, b = lowest;
        for (int y = first; y < last; y += win->dh) {
            const float *row = plane + (long)y * w;
            const __m256 u = _mm256_loadu_ps(row), v = _mm256_loadu_ps(row + w - 8);
            if (exact) a = max_or_nan8(a, u), b = max_or_nan8(b, v);
            else {
                a = _mm256_max_ps(u, a), b = _mm256_max_ps(v, b);
                const __m256 sum = _mm256_add_ps(u, v);
                nan = _mm256_or_ps(nan, _mm256_cmp_ps(sum, sum, _CMP_UNORD_Q));
            }
        }
        __m256 best = lowest;
        for (int kj = 0; kj < win->kw; kj++) {
            __m256 v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(a, at[kj]), _mm256_permutevar8x32_ps(b, at[kj]), high[kj]);
            v = _mm256_blendv_ps(v, lowest, none[kj]);
            best = exact ? max_or_nan8(best, v) : _mm256_max_ps(v, best);
        }
        wc_store_lanes8(out + (long)oy * ow, best, 0, ow);
    }
    return !exact && _mm256_movemask_ps(nan);
}

__attribute__((target("avx2")))
static void maxpool_small_avx2(const float *input, long count, int h, int w, const wc_window *win, float *output,
                               int oh, int ow) {
    // Per tap kj: each output lane's input column (within its vector), whether it is in the second vector, and
    // whether it has none (outside the plane's columns, or a lane past the outputs).
    __m256i at[SMALL_TAPS];
    __m256 high[SMALL_TAPS], none[SMALL_TAPS];
    for (int kj = 0; kj < win->kw; kj++) {
        int index[8], upper[8], outside[8];
        for (int ox = 0; ox < 8; ox++) {
            const int x = ox * win->sw + kj * win->dw - win->pad_left;
            const int inside = ox < ow && x >= 0 && x < w;
            index[ox] = !inside ? 0 : x < 8 ? x : x - (w - 8);
            upper[ox] = inside && x >= 8 ? -1 : 0;
            outside[ox] = inside ? 0 : -1;
        }
        at[kj] = _mm256_loadu_si256((const __m256i *)index);
        high[kj] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)upper));
        none[kj] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)outside));
    }
    const long in_plane = (long)h * w, out_plane = (long)oh * ow;
    for (long p = 0; p < count; p++) {
        const float *plane = input + p * in_plane;
        float *out = output + p * out_plane;
        if (maxpool_small_plane(plane, h, w, win, out, oh, ow, at, high, none, 0))
            maxpool_small_plane(plane, h, w, win, out, oh, ow, at, high, none, 1);
    }
}
#endif

// ---- Many planes straight from the input, AVX-512 (strides 1 and 2 along the rows, windows up to 4 wide) ------------
// Sixteen outputs of a row at a time: first the maxima along every input row under them (masked loads with −∞ outside
// the plane; at stride 2 the even and odd columns of two vectors by two-source permutes), kept in a column of
// sixteen-float rows; then, for each output row, the maximum down its window's rows of that column. No copy of the
// plane, no division per value. The maxima come from vmaxps (which drops a NaN); the inputs are summed beside them, and
// a plane whose sum is NaN (a NaN in it, or infinities of both signs) is taken again keeping a NaN at each step.
enum { DIRECT_ROWS = 512, DIRECT_TAPS = 4 };
// Small planes one after another (a map of up to 32×32) are asked for PREFETCH_PLANE floats ahead: the hardware's
// prefetch, within a plane of a few lines, fell behind. One layer, one thread, sixteen images, least of 2 s, alternated
// rounds, µs: SqueezeNet 1.1 64 px's 31×31 → 15×15 on 64 channels 72–74 → 59–61, 15×15 → 7×7 on 128 38.6–40.0 →
// 34.5–35.5, 7×7 → 3×3 on 256 39.5 → 37.6–38.5; on 111×111 planes (batch 1) it cost 8–12%, so not past this size.
enum { PREFETCH_PLANE = 1024 };

#if defined(__x86_64__)
// A plane of up to PREFETCH_PLANE floats asks for the lines PREFETCH_PLANE floats past its own (`remaining`: the
// planes from this one to the last of the call).
static inline void prefetch_ahead(const float *plane, long in_plane, long remaining) {
    if (in_plane > PREFETCH_PLANE) return;
    for (long at = PREFETCH_PLANE; at < PREFETCH_PLANE + in_plane && at < remaining * in_plane; at += 16)
        _mm_prefetch((const char *)(plane + at), _MM_HINT_T0);
}
#endif

// Whether a 3×3 window at stride 2 on a plane at most 16 wide runs `pool3s2_narrow`.
static int narrow3s2_runs(const wc_window *win, int w, int ow) {
    return win->kh == 3 && win->kw == 3 && win->sh == 2 && win->sw == 2 && win->dh == 1 && win->dw == 1 && w <= 16 &&
           ow <= 16;
}

static int direct_runs(int h, int w, const wc_window *win, int oh, int ow) {
#if defined(__x86_64__)
    return wc_kernels_isa() == WC_ISA_AVX512 && (win->sw == 1 || win->sw == 2) && win->dw == 1 &&
           win->kw <= DIRECT_TAPS && h <= DIRECT_ROWS && w > 0 && oh > 0 && ow > 0;
#else
    (void)h; (void)w; (void)win; (void)oh; (void)ow;
    return 0;
#endif
}

#if defined(__x86_64__)
// One plane (S the stride along the rows, a constant); returns whether the plane's sum was NaN (`exact` 0).
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) int
direct_plane(const int S, const int kw, const float *plane, int h, int w, const wc_window *win, float *out, int oh,
             int ow, float *column, int exact) {
    const __m512 lowest = _mm512_set1_ps(-__builtin_inff());
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const int loads = S == 1 ? kw : 2 * ((kw + 1) / 2);
    __m512 sum[DIRECT_TAPS];  // one per load: independent chains
    for (int i = 0; i < DIRECT_TAPS; i++) sum[i] = _mm512_setzero_ps();
    for (int ox = 0; ox < ow; ox += 16) {
        const int s = ox * S - win->pad_left;  // the column of tap 0 under output ox
        // Each load's lanes inside the row: at stride 1 load kj from s + kj; at stride 2 pair q's two from s + 2q.
        __mmask16 inside[DIRECT_TAPS];
        for (int i = 0; i < loads; i++) inside[i] = wc_lanes_inside(S == 1 ? s + i : s + 2 * (i / 2) + 16 * (i % 2), 1, w);
        for (int y = 0; y < h; y++) {
            const float *row = plane + (long)y * w + s;
            __m512 x[DIRECT_TAPS];
            if (S == 1) {
                for (int kj = 0; kj < kw; kj++) {
                    x[kj] = _mm512_mask_loadu_ps(lowest, inside[kj], row + kj);
                    if (!exact) sum[kj] = _mm512_add_ps(sum[kj], x[kj]);
                }
            } else {
                for (int q = 0; 2 * q < kw; q++) {
                    const __m512 a = _mm512_mask_loadu_ps(lowest, inside[2 * q], row + 2 * q);
                    const __m512 b = _mm512_mask_loadu_ps(lowest, inside[2 * q + 1], row + 2 * q + 16);
                    if (!exact) {
                        sum[2 * q] = _mm512_add_ps(sum[2 * q], a);
                        sum[2 * q + 1] = _mm512_add_ps(sum[2 * q + 1], b);
                    }
                    x[2 * q] = _mm512_permutex2var_ps(a, even, b);
                    if (2 * q + 1 < kw) x[2 * q + 1] = _mm512_permutex2var_ps(a, odd, b);
                }
            }
            __m512 best = x[0];
            for (int kj = 1; kj < kw; kj++) best = exact ? max_or_nan(best, x[kj]) : _mm512_max_ps(x[kj], best);
            _mm512_store_ps(column + 16 * y, best);
        }
        const __mmask16 stored = wc_first_lanes(ow - ox);
        for (int oy = 0; oy < oh; oy++) {
            int first, last;
            window_rows(win, h, oy, &first, &last);
            __m512 best = lowest;
            for (int y = first; y < last; y += win->dh) {
                const __m512 v = _mm512_load_ps(column + 16 * y);
                best = exact ? max_or_nan(best, v) : _mm512_max_ps(v, best);
            }
            _mm512_mask_storeu_ps(out + (long)oy * ow + ox, stored, best);
        }
    }
    __mmask16 nan = 0;
    for (int i = 0; i < loads; i++) nan |= _mm512_cmp_ps_mask(sum[i], sum[i], _CMP_UNORD_Q);
    return !exact && nan;
}

// 3×3 windows at stride 2, undilated (SqueezeNet's, ResNet's and AlexNet's pools): each input row's horizontal maxima
// once per 16 outputs (three loads, three permutes: taps 0, 1 and 2 of each output), kept in a register for the next
// output row, which shares that input row; no column buffer. The same operand order as `direct_plane`, so the same
// bits; returns whether an input was NaN (the sums of the permuted inputs), where the caller runs the exact rule
// instead. One thread, C harness, ns per plane, `direct_plane` → here: 31×31 → 15×15 77 → 41, 15×15 → 7×7 38 → 22,
// 55×55 → 27×27 275 → 137, 112×112 padded → 57×57 1,343 → 826.
__attribute__((target("avx512f"))) static inline __m512 row_maxima3s2(const float *row, int whole, __mmask16 ma,
                                                                     __mmask16 mb, __mmask16 mc, __m512 *sum) {
    const __m512 lowest = _mm512_set1_ps(-__builtin_inff());
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i next = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    const __m512 a = whole ? _mm512_loadu_ps(row) : _mm512_mask_loadu_ps(lowest, ma, row);
    const __m512 b = whole ? _mm512_loadu_ps(row + 16) : _mm512_mask_loadu_ps(lowest, mb, row + 16);
    const __m512 c = whole ? _mm512_castps128_ps512(_mm_load_ss(row + 32)) : _mm512_mask_loadu_ps(lowest, mc, row + 32);
    const __m512 e = _mm512_permutex2var_ps(a, even, b), o = _mm512_permutex2var_ps(a, odd, b);
    const __m512 n = _mm512_permutex2var_ps(e, next, c);  // tap 2: the next even input
    *sum = _mm512_add_ps(*sum, _mm512_add_ps(_mm512_add_ps(e, o), n));
    return _mm512_max_ps(n, _mm512_max_ps(o, e));
}

// `pool3s2` on planes at most 16 wide (SqueezeNet's 15×15 and 7×7 pools at 64 px): each input row one vector (a masked
// load, −∞ past the row), each tap's sixteen inputs one permute of it and a −∞ vector (lanes outside the row take
// −∞), instead of three loads and two-source permutes over 48 columns; the NaN check sums the rows as loaded. The same
// operand order as `pool3s2_plane`, so the same bits. One layer, one thread, sixteen images, µs, `pool3s2_plane` →
// here: 15×15 → 7×7 on 128 channels 54.5 → 37.0 (onnxruntime 62). In SqueezeNet 1.1 64 px at batch 16, one thread
// (node least of 20 profiled passes): 59.4 → 40.3, and its 7×7 → 3×3 pool 51.9 → 39.2 (across planes before).
__attribute__((target("avx512f"))) static inline __m512 narrow_row_maxima(const float *row, __mmask16 inside,
                                                                          const __m512i tap[3], __m512 *sum) {
    const __m512 lowest = _mm512_set1_ps(-__builtin_inff());
    const __m512 a = _mm512_mask_loadu_ps(lowest, inside, row);
    *sum = _mm512_add_ps(*sum, a);
    const __m512 e = _mm512_permutex2var_ps(a, tap[0], lowest), o = _mm512_permutex2var_ps(a, tap[1], lowest);
    const __m512 n = _mm512_permutex2var_ps(a, tap[2], lowest);
    return _mm512_max_ps(n, _mm512_max_ps(o, e));
}

// The plane's rows, sixteen outputs at a time (`narrow`, a constant: all of them, by `narrow_row_maxima`).
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) int
pool3s2(const int narrow, const float *plane, int h, int w, const wc_window *win, float *out, int oh, int ow) {
    const __m512 lowest = _mm512_set1_ps(-__builtin_inff());
    const int top_pad = win->pad_top;
    __m512 sum = _mm512_setzero_ps();
    // Narrow: tap t of output ox reads column 2·ox − pad_left + t, that lane of the row or lane 16 (the −∞ vector's).
    __m512i tap[3];
    if (narrow) {
        int lanes[3][16];
        for (int t = 0; t < 3; t++)
            for (int ox = 0; ox < 16; ox++) {
                const int column = 2 * ox - win->pad_left + t;
                lanes[t][ox] = column >= 0 && column < w ? column : 16;
            }
        for (int t = 0; t < 3; t++) tap[t] = _mm512_loadu_si512(lanes[t]);
    }
    for (int ox = 0; ox < (narrow ? 1 : ow); ox += 16) {  // narrow: ow ≤ 16
        const int s = 2 * ox - win->pad_left;
        const __mmask16 ma = narrow ? wc_first_lanes(w) : wc_lanes_inside(s, 1, w), mb = wc_lanes_inside(s + 16, 1, w),
                        mc = wc_lanes_inside(s + 32, 1, w) & 1;
        const __mmask16 stored = wc_first_lanes(ow - ox);
        const float *base = narrow ? plane : plane + s;
        float *o = out + ox;
        // Wide: a group of outputs whose inputs all lie inside the row loads them unmasked, the loop compiled apart.
        // 111×111 → 55×55 on 64 channels (SqueezeNet 1.1 224 px's first pool), one thread, least of 2 s, alternated
        // rounds, µs: batch 1 64.7–65.2 → 51.8–52.1, batch 16 4,423–4,466 → 2,435–2,461; 31×31 even (its one group
        // has a partial vector). Masked loads of every lane cost that much; an unmasked load and a blend instead on
        // the partial groups cost 4–12% on 31×31, 15×15 and 7×7 planes, so those keep their masked loads.
        const int whole = !narrow && ma == 0xffff && mb == 0xffff && mc == 1;
#define ROW(y, WHOLE)                                                                                               \
    ((y) >= 0 && (y) < h ? narrow ? narrow_row_maxima(base + (long)(y) * w, ma, tap, &sum)                         \
                                  : row_maxima3s2(base + (long)(y) * w, WHOLE, ma, mb, mc, &sum)                   \
                         : lowest)
#define COLUMNS(WHOLE)                                                                                              \
    {                                                                                                               \
        __m512 top = ROW(-top_pad, WHOLE);                                                                          \
        for (int oy = 0; oy < oh; oy++, o += ow) {                                                                  \
            const __m512 bottom = ROW(2 * oy - top_pad + 2, WHOLE);                                                 \
            _mm512_mask_storeu_ps(o, stored,                                                                        \
                                  _mm512_max_ps(bottom, _mm512_max_ps(ROW(2 * oy - top_pad + 1, WHOLE), top)));    \
            top = bottom;                                                                                           \
        }                                                                                                           \
    }
        if (whole) COLUMNS(1) else COLUMNS(0)
#undef COLUMNS
#undef ROW
    }
    return _mm512_cmp_ps_mask(sum, sum, _CMP_UNORD_Q) != 0;
}

__attribute__((target("avx512f"))) static int
pool3s2_plane(const float *plane, int h, int w, const wc_window *win, float *out, int oh, int ow) {
    return pool3s2(0, plane, h, w, win, out, oh, ow);
}

__attribute__((target("avx512f"))) static int
pool3s2_narrow(const float *plane, int h, int w, const wc_window *win, float *out, int oh, int ow) {
    return pool3s2(1, plane, h, w, win, out, oh, ow);
}

// `pool3s2` on small planes whose outputs fit one vector (SqueezeNet 1.1 64 px's 7×7 → 3×3): the plane taken as it
// lies in memory, rows end to end. Each used input row's horizontal maxima go to lanes of one of two vectors (rows in
// order, as many as fit 16 lanes whose inputs lie within 32 floats of the group's first: two loads, then each tap one
// permute of them); then each output's three rows' maxima are one permute each of those two vectors. A tap outside the
// plane takes another tap of the same window, which leaves each maximum as the −∞ a border gives would (the operand
// order is `pool3s2`'s, so the same bits; NaN: the caller's exact rule, as there). 7×7 → 3×3: 9 permutes a plane
// against 21 (one per tap and row) in `pool3s2_narrow`. One layer on 256 channels, batch 16, one thread, least of 2 s,
// alternated rounds: 36.8–37.8 → 27.8–29.3 µs; in SqueezeNet 1.1 64 px at batch 16, one thread (node least of 20
// profiled passes) 37.5 → 29.8.
typedef struct {
    int base[2], groups;            // each group's first input (its loads: 32 floats from there)
    __m512i tap[2][3];              // group g, tap t: each lane's input, within the group's 32 floats
    __m512i row[3];                 // output lane, window row r: its row maxima's lane in the two groups (16 + lane: B)
    __mmask16 outputs;
} flat3s2;

// Whether the plane's maxima fit two groups (and then their tables in `f`).
__attribute__((target("avx512f"))) static int flat3s2_plan(int h, int w, const wc_window *win, int oh, int ow, flat3s2 *f) {
    if (oh * ow > 16 || h > 64) return 0;
    int lane_of[64][16];  // (input row, output column) → lane in the two groups (0–31)
    int used[64] = {0};
    for (int oy = 0; oy < oh; oy++)
        for (int r = 0; r < 3; r++) {
            const int y = 2 * oy - win->pad_top + r;
            if (y >= 0 && y < h) used[y] = 1;
        }
    int taps[2][3][16], g = -1, lanes = 0, first = 0;
    for (int y = 0; y < h; y++) {
        if (!used[y]) continue;
        // The row's inputs: columns [lo, hi) under its outputs' windows, clipped to the row.
        int lo = -win->pad_left, hi = 2 * (ow - 1) - win->pad_left + 3;
        if (lo < 0) lo = 0;
        if (hi > w) hi = w;
        if (g < 0 || lanes + ow > 16 || y * w + hi - first > 32) {
            if (++g == 2) return 0;
            lanes = 0;
            first = f->base[g] = y * w + lo;
        }
        for (int ox = 0; ox < ow; ox++) {
            int column[3], inside = -1;
            for (int t = 0; t < 3; t++) {
                column[t] = 2 * ox - win->pad_left + t;
                if (column[t] >= 0 && column[t] < w && inside < 0) inside = column[t];
            }
            if (inside < 0) return 0;
            for (int t = 0; t < 3; t++) {
                const int c = column[t] >= 0 && column[t] < w ? column[t] : inside;
                taps[g][t][lanes] = y * w + c - first;
            }
            lane_of[y][ox] = 16 * g + lanes++;
        }
        for (int t = 0; t < 3; t++)
            for (int l = lanes; l < 16; l++) taps[g][t][l] = 0;
    }
    if (g < 0) return 0;
    f->groups = g + 1;
    for (int gg = 0; gg < f->groups; gg++)
        for (int t = 0; t < 3; t++) f->tap[gg][t] = _mm512_loadu_si512(taps[gg][t]);
    int rows[3][16] = {{0}};
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            int inside = -1;
            for (int r = 0; r < 3 && inside < 0; r++) {
                const int y = 2 * oy - win->pad_top + r;
                if (y >= 0 && y < h) inside = y;
            }
            if (inside < 0) return 0;
            for (int r = 0; r < 3; r++) {
                const int y = 2 * oy - win->pad_top + r;
                rows[r][oy * ow + ox] = lane_of[y >= 0 && y < h ? y : inside][ox];
            }
        }
    for (int r = 0; r < 3; r++) f->row[r] = _mm512_loadu_si512(rows[r]);
    f->outputs = wc_first_lanes(oh * ow);
    return 1;
}

// One plane by `f`; `size` its floats (the loads stop there). Returns whether an input it read was NaN.
__attribute__((target("avx512f"))) static inline int pool3s2_flat(const float *plane, long size, const flat3s2 *f,
                                                                   float *out) {
    __m512 maxima[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()}, sum = _mm512_setzero_ps();
    for (int g = 0; g < f->groups; g++) {
        const long b = f->base[g];
        const __m512 a = _mm512_maskz_loadu_ps(wc_first_lanes((int)(size - b)), plane + b);
        const __m512 c = _mm512_maskz_loadu_ps(wc_first_lanes((int)(size - b - 16)), plane + b + 16);
        sum = _mm512_add_ps(sum, _mm512_add_ps(a, c));
        const __m512 e = _mm512_permutex2var_ps(a, f->tap[g][0], c), o = _mm512_permutex2var_ps(a, f->tap[g][1], c);
        const __m512 n = _mm512_permutex2var_ps(a, f->tap[g][2], c);
        maxima[g] = _mm512_max_ps(n, _mm512_max_ps(o, e));
    }
    const __m512 top = _mm512_permutex2var_ps(maxima[0], f->row[0], maxima[1]);
    const __m512 middle = _mm512_permutex2var_ps(maxima[0], f->row[1], maxima[1]);
    const __m512 bottom = _mm512_permutex2var_ps(maxima[0], f->row[2], maxima[1]);
    _mm512_mask_storeu_ps(out, f->outputs, _mm512_max_ps(bottom, _mm512_max_ps(middle, top)));
    return _mm512_cmp_ps_mask(sum, sum, _CMP_UNORD_Q) != 0;
}

__attribute__((target("avx512f")))
static void maxpool_direct_avx512(const float *input, long count, int h, int w, const wc_window *win, float *output,
                                  int oh, int ow) {
    float column[DIRECT_ROWS * 16] __attribute__((aligned(64)));
    const long in_plane = (long)h * w, out_plane = (long)oh * ow;
    const int three_by_three_stride2 = win->kh == 3 && win->kw == 3 && win->sh == 2 && win->sw == 2 && win->dh == 1;
    const int narrow = narrow3s2_runs(win, w, ow);
    flat3s2 flat;
    const int flat_runs = narrow && flat3s2_plan(h, w, win, oh, ow, &flat);
    for (long p = 0; p < count; p++) {
        const float *plane = input + p * in_plane;
        float *out = output + p * out_plane;
        prefetch_ahead(plane, in_plane, count - p);
        if (flat_runs) {
            if (pool3s2_flat(plane, in_plane, &flat, out)) direct_plane(2, 3, plane, h, w, win, out, oh, ow, column, 1);
            continue;
        }
        if (three_by_three_stride2) {
            if (narrow ? pool3s2_narrow(plane, h, w, win, out, oh, ow)
                                    : pool3s2_plane(plane, h, w, win, out, oh, ow))
                direct_plane(2, 3, plane, h, w, win, out, oh, ow, column, 1);
            continue;
        }
        // The stride and the window's width as constants for 2 and 3 wide windows (loops unrolled in full).
#define DIRECT(S, KW)                                                                                             \
    if (direct_plane(S, KW, plane, h, w, win, out, oh, ow, column, 0))                                          \
        direct_plane(S, KW, plane, h, w, win, out, oh, ow, column, 1);
        if (win->sw == 1 && win->kw == 3) { DIRECT(1, 3) }
        else if (win->sw == 1 && win->kw == 2) { DIRECT(1, 2) }
        else if (win->sw == 1) { DIRECT(1, win->kw) }
        else if (win->kw == 3) { DIRECT(2, 3) }
        else if (win->kw == 2) { DIRECT(2, 2) }
        else { DIRECT(2, win->kw) }
#undef DIRECT
    }
}
#endif

// ---- 3×3 windows at stride 2, AVX2, many planes straight from the input -------------------------------------------
// Eight outputs of a row at a time (a group), each input row's horizontal maxima under them once, kept in a register
// for the next output row, which shares that input row: the inputs of taps 0, 1 and 2 are the even, odd and next even
// columns of sixteen from column 2·ox − pad_left, split by one in-lane shuffle each (of two loads, and of two loads
// two columns on), which leaves the outputs in the lane order 0 1 4 5 2 3 6 7 in every vector alike; one permute puts
// them back before the store. Loads inside the row are plain, the rest masked (−∞ outside the row); a row above or
// below the plane is −∞. No copy, no scratch, no division. Without `exact` the maxima come from vmaxps, the inputs
// summed beside them; a plane whose sum is NaN (a NaN in it, or infinities of both signs) is taken again with `exact`,
// each step keeping a value that is greater or NaN (the other kernels' rule). Small planes one after another ask for
// the lines PREFETCH_PLANE floats ahead, as `maxpool_direct_avx512` does (without it, group by group, ResNet-18
// 64 px's 32 → 16 pool at batch 64 ran 616 → 917 µs).
// Against the kernels before it (separable; planes in registers for 15 → 7; across planes for 7 → 3), one-layer
// models at batch 1, one thread, least of 2 s, µs: 31 → 15 on 64 channels 14.9 → 11.7–11.9, 15 → 7 on 128 8.2 →
// 7.2–7.4, 7 → 3 on 256 7.5 → 6.7–7.0, 111 → 55 on 64 135 → 98–99, 55 → 27 on 128 72 → 59–60, 27 → 13 on 256 48 →
// 37–38, 112 → 56 at padding 1 on 64 132 → 105, 32 → 16 at padding 1 on 64 15.5 → 12.2 (onnxruntime with its
// reorders 15–30% slower than either). In the models, each node's least over 2 alternated rounds, µs: SqueezeNet 1.1
// 224 px at batch 1, one thread, 148 → 121, 72 → 61, 46 → 37; at batch 16, two threads, 1,645 → 1,378, 677 → 577,
// 455 → 400; SqueezeNet 1.1 64 px at batch 64, two threads, 659 → 476, 231 → 199, 207 → 174, at batch 1, one thread,
// 14.4 → 10.6 (the others even); ResNet-18 at 64 px, batch 64, 625 → 530, at 224 px, batch 1, two threads, 99 → 78.
#if defined(__x86_64__)
enum { POOL3S2_GROUPS = 32, POOL3S2_COLUMNS = 2048 };  // outputs up to 256 wide; planes taken down the columns
typedef struct {
    __m256i a, b, a2, b2;  // the lanes of each load inside the row (all set: a plain load)
    int whole;             // every lane of the four loads inside the row
} row3s2;

__attribute__((target("avx2"))) static inline row3s2 row3s2_at(int s, int w) {
    const row3s2 r = {wc_lanes_inside8(s, w), wc_lanes_inside8(s + 8, w), wc_lanes_inside8(s + 2, w),
                      wc_lanes_inside8(s + 10, w), s >= 0 && s + 18 <= w};
    return r;
}

// A load of the eight values at address p: plain where every lane lies inside the row, else masked, −∞ outside it
// (addresses as integers: at the row's ends they may lie outside the plane, where no lane is read).
__attribute__((target("avx2"), always_inline)) static inline __m256 load_or_lowest(uintptr_t p, __m256i inside,
                                                                                  int whole) {
    if (whole) return _mm256_loadu_ps((const float *)p);
    return _mm256_blendv_ps(_mm256_set1_ps(-__builtin_inff()), _mm256_maskload_ps((const float *)p, inside),
                            _mm256_castsi256_ps(inside));
}

// One input row's maxima of taps 0, 1, 2 under a group's eight outputs (lane order 0 1 4 5 2 3 6 7), from p = the
// address of the column under the group's first output's tap 0.
__attribute__((target("avx2"), always_inline)) static inline __m256 row_maxima8(uintptr_t p, const row3s2 *r,
                                                                               int exact, __m256 *sum) {
    const __m256 a = load_or_lowest(p, r->a, r->whole), b = load_or_lowest(p + 32, r->b, r->whole);
    const __m256 a2 = load_or_lowest(p + 8, r->a2, r->whole), b2 = load_or_lowest(p + 40, r->b2, r->whole);
    const __m256 e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xdd);
    const __m256 n = _mm256_shuffle_ps(a2, b2, 0x88);
    if (exact) return max_or_nan8(max_or_nan8(e, o), n);
    *sum = _mm256_add_ps(*sum, _mm256_add_ps(_mm256_add_ps(a, b), b2));
    return _mm256_max_ps(n, _mm256_max_ps(o, e));
}

// One plane's groups from g0 (group g: outputs 8·g … 8·g + 7 of each row; with `single`, a constant, only g0), output
// row by output row, each group's maxima of the input row it shares with the next output row kept for that row;
// returns whether the sum of the inputs read was NaN (`exact` 0). The caller takes a small plane one group at a time
// (the running maxima in registers: 7–12% quicker than all groups at once on planes up to 32×32), a larger one whole
// (its rows read in order: group by group, 111×111 planes ran 20–30% slower).
__attribute__((target("avx2"), always_inline)) static inline int pool3s2_avx2_groups(
    const float *plane, int h, int w, const wc_window *win, float *out, int oh, int ow, const row3s2 *r, int g0,
    const int single, const int exact) {
    const int g1 = single ? g0 + 1 : (ow + 7) / 8;
    const __m256 lowest = _mm256_set1_ps(-__builtin_inff());
    __m256 sum = _mm256_setzero_ps(), top[POOL3S2_GROUPS];
    const uintptr_t base = (uintptr_t)plane - sizeof(float) * (uintptr_t)win->pad_left;
    const row3s2 first = r[g0];  // a single group's masks as a local (kept in registers)
#define ROW(y, g)                                                                                                     \
    ((y) >= 0 && (y) < h ? row_maxima8(base + sizeof(float) * (uintptr_t)((long)(y) * w + 16 * (g)),                  \
                                       single ? &first : &r[g], exact, &sum)                                          \
                         : lowest)
    int y = -win->pad_top;
    for (int g = g0; g < g1; g++) top[g - g0] = ROW(y, g);
    for (int oy = 0; oy < oh; oy++, out += ow, y += 2) {
        for (int g = g0; g < g1; g++) {
            const __m256 middle = ROW(y + 1, g), bottom = ROW(y + 2, g);
            __m256 best = exact ? max_or_nan8(max_or_nan8(top[g - g0], middle), bottom)
                                : _mm256_max_ps(bottom, _mm256_max_ps(middle, top[g - g0]));
            best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), 0xd8));
            if (8 * g + 8 <= ow) _mm256_storeu_ps(out + 8 * g, best);
            else wc_store_lanes8(out + 8 * g, best, 0, ow - 8 * g);
            top[g - g0] = bottom;
        }
    }
#undef ROW
    return !exact && _mm256_movemask_ps(_mm256_cmp_ps(sum, sum, _CMP_UNORD_Q));
}

// One plane by vmaxps; returns whether it holds a NaN (then the caller takes it again, `pool3s2_avx2_exact`).
__attribute__((target("avx2"))) static int pool3s2_avx2_fast(const float *plane, int h, int w, const wc_window *win,
                                                            float *out, int oh, int ow, const row3s2 *r) {
    const int groups = (ow + 7) / 8;
    if ((long)h * w > POOL3S2_COLUMNS) return pool3s2_avx2_groups(plane, h, w, win, out, oh, ow, r, 0, 0, 0);
    int nan = 0;
    for (int g = 0; g < groups; g++) nan |= pool3s2_avx2_groups(plane, h, w, win, out, oh, ow, r, g, 1, 0);
    return nan;
}

__attribute__((target("avx2"))) static void pool3s2_avx2_exact(const float *plane, int h, int w, const wc_window *win,
                                                              float *out, int oh, int ow, const row3s2 *r) {
    pool3s2_avx2_groups(plane, h, w, win, out, oh, ow, r, 0, 0, 1);
}

// Planes of up to 8 columns without a top or left border (SqueezeNet 1.1 64 px's 7×7 → 3×3): each input row one
// vector, read once (the kernel above reads four vectors a row, masked, for three outputs). Its maxima of taps 0, 1, 2
// under each output come from the row and the row moved down by one and two lanes, in even lanes; then each output
// row's maximum down its window's rows, its even lanes gathered into its outputs. vmaxps keeps its second operand on a
// tie, so each maximum keeps the earlier tap, as `row_maxima8` does. A row's vector reaches into the next row (and the
// last rows into the next plane): lanes past the row are −∞ where a window reads them, and a NaN there sends the plane
// to `exact` too. Each output row's whole vector is stored, its lanes past the plane's outputs stored again by the
// next rows and planes. Near the end of the call's planes (`inputs` and `outputs` floats from this plane's on) the
// rows are read masked and only the outputs stored. Against `pool3s2_avx2_fast`, ns per plane, C harness, one thread,
// 7×7 → 3×3, least of 200 calls: 256 planes 26.5–26.9 → 18.4–23.8, 16,384 planes 28.5–29.7 → 17.9–18.0; SqueezeNet
// 1.1 64 px's 7×7 → 3×3 on 256 channels as a one-layer model, one thread, least of 1 s, three alternated rounds, µs:
// batch 64 381–382 → 297–298, batch 1 7.3 → 6.0 (onnxruntime at batch 64: 242); in the model at batch 64, two threads,
// profiled, 193–205 → 151–165.
__attribute__((target("avx2"))) static int pool3s2_rows_avx2(const float *plane, int h, int w, float *out, int oh,
                                                             int ow, long inputs, long outputs) {
    const __m256i inside = _mm256_cmpgt_epi32(_mm256_set1_epi32(w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i one = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7), two = _mm256_setr_epi32(2, 3, 4, 5, 6, 7, 7, 7);
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m256 lowest = _mm256_set1_ps(-__builtin_inff());
    const int border = 2 * ow >= w;  // the last output's window reaches lane w or past it
    __m256 nan = _mm256_setzero_ps();
#define ROW_MAXIMA(y)                                                                                                 \
    ({                                                                                                                \
        const float *row = plane + (long)(y) * w;                                                                     \
        __m256 v = (long)(y) * w + 8 > inputs ? _mm256_maskload_ps(row, inside) : _mm256_loadu_ps(row);               \
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));                                                   \
        if (border) v = _mm256_blendv_ps(lowest, v, _mm256_castsi256_ps(inside));                                     \
        _mm256_max_ps(_mm256_permutevar8x32_ps(v, two), _mm256_max_ps(_mm256_permutevar8x32_ps(v, one), v));         \
    })
    __m256 top = ROW_MAXIMA(0);
    for (int oy = 0; oy < oh; oy++) {
        const int y = 2 * oy;
        __m256 best = top;
        if (y + 1 < h) best = _mm256_max_ps(ROW_MAXIMA(y + 1), best);
        if (y + 2 < h) {
            top = ROW_MAXIMA(y + 2);
            best = _mm256_max_ps(top, best);
        }
        best = _mm256_permutevar8x32_ps(best, even);
        if ((long)oy * ow + 8 > outputs) wc_store_lanes8(out + (long)oy * ow, best, 0, ow);
        else _mm256_storeu_ps(out + (long)oy * ow, best);
    }
#undef ROW_MAXIMA
    return _mm256_movemask_ps(nan) != 0;
}

__attribute__((target("avx2")))
static void maxpool_3x3s2_avx2(const float *input, long count, int h, int w, const wc_window *win, float *output,
                               int oh, int ow) {
    const long in_plane = (long)h * w, out_plane = (long)oh * ow;
    row3s2 r[POOL3S2_GROUPS];  // the same for every plane
    for (int g = 0; g < (ow + 7) / 8; g++) r[g] = row3s2_at(16 * g - win->pad_left, w);
    const int rows = w <= 8 && win->pad_top == 0 && win->pad_left == 0 && ow <= 4 && 2 * (ow - 1) < w && 2 * (oh - 1) < h;
    for (long p = 0; p < count; p++) {
        const float *plane = input + p * in_plane;
        float *out = output + p * out_plane;
        prefetch_ahead(plane, in_plane, count - p);
        if (rows ? pool3s2_rows_avx2(plane, h, w, out, oh, ow, (count - p) * in_plane, (count - p) * out_plane)
                 : pool3s2_avx2_fast(plane, h, w, win, out, oh, ow, r))
            pool3s2_avx2_exact(plane, h, w, win, out, oh, ow, r);
    }
}
#endif

// Whether `maxpool_3x3s2_avx2` takes the window.
static int pool3s2_avx2_runs(const wc_window *win, int w, int ow) {
#if defined(__x86_64__)
    return wc_kernels_isa() == WC_ISA_AVX2 && win->kh == 3 && win->kw == 3 && win->sh == 2 && win->sw == 2 &&
           win->dh == 1 && win->dw == 1 && w > 0 && ow > 0 && ow <= 8 * POOL3S2_GROUPS;
#else
    (void)win; (void)w; (void)ow;
    return 0;
#endif
}

int wc_maxpool_planes_runs(int h, int w, const wc_window *window, int oh, int ow) {
#if defined(__x86_64__)
    // On AVX-512, outputs of up to 4×4 go across planes instead (`maxpool_across_avx512`), but for 3×3 windows at stride
    // 2 on planes up to 16 wide (`pool3s2_narrow`; one layer, one thread, sixteen images, µs: SqueezeNet 64 px's 7×7 →
    // 3×3 on 256 channels 46.4 across → 35.8, onnxruntime 33.9).
    if (direct_runs(h, w, window, oh, ow))
        return oh * ow > ACROSS_BEFORE_DIRECT || narrow3s2_runs(window, w, ow);
    if (pool3s2_avx2_runs(window, w, ow) && h > 0 && oh > 0 && ow > 0) return 1;
    return wc_kernels_isa() == WC_ISA_AVX2 && w >= 8 && w <= SMALL_WIDTH && ow <= SMALL_OUTPUTS
        && window->kw <= SMALL_TAPS && h > 0 && oh > 0 && ow > 0;
#else
    (void)h; (void)w; (void)window; (void)oh; (void)ow;
    return 0;
#endif
}

void wc_maxpool_planes(const float *input, long count, int h, int w, const wc_window *window, float *output, int oh,
                       int ow) {
#if defined(__x86_64__)
    if (direct_runs(h, w, window, oh, ow)) maxpool_direct_avx512(input, count, h, w, window, output, oh, ow);
    else if (pool3s2_avx2_runs(window, w, ow)) maxpool_3x3s2_avx2(input, count, h, w, window, output, oh, ow);
    else if (wc_maxpool_planes_runs(h, w, window, oh, ow)) maxpool_small_avx2(input, count, h, w, window, output, oh, ow);
#else
    (void)input; (void)count; (void)h; (void)w; (void)window; (void)output; (void)oh; (void)ow;
#endif
}

int wc_maxpool_across_runs(int h, int w, const wc_window *window, int oh, int ow) {
#if defined(__x86_64__)
    // Against the separable kernel, where it runs, only up to 5×5 outputs (one thread, 3×3 stride 2, ns per plane,
    // across / separable: 7×7 → 3×3 21–27 / 38–67; 11×11 → 5×5 60–62 / 63; 13×13 → 6×6 89 / 75–79; 15×15 → 7×7
    // 119–136 / 87–116). With AVX2 up to 64 outputs (see maxpool_across_avx2), against its separable kernel too (µs
    // per plane, 4,096 planes, across / separable: 7×7 → 3×3 0.025 / 0.058; 15×15 → 7×7 0.105 / 0.133; 19×19 → 9×9
    // 0.17 / 0.21; 23×23 → 11×11 0.27 / 0.25), but for 3×3 windows at stride 2 (two output rows at once there) only
    // up to 5×5 outputs too (ns per plane, 4,096 planes, across / separable: 7×7 → 3×3 24 / 44; 9×9 → 4×4 39 / 49;
    // 11×11 → 5×5 57 / 61; 12×12 → 6×6 70 / 75; 13×13 → 6×6 78 / 66; 15×15 → 7×7 102–104 / 77–79; 17×17 → 8×8
    // 131 / 97).
    const int most = has_dq() ? ACROSS_OUTPUTS_SEPARABLE : ACROSS_OUTPUTS;
    if (wc_kernels_isa() == WC_ISA_AVX2)
        return oh * ow <= (two_rows_at_once(window) ? ACROSS_OUTPUTS_SEPARABLE : ACROSS_OUTPUTS)
            && (long)h * w <= ACROSS_AVX2_INPUTS;
    return wc_kernels_isa() == WC_ISA_AVX512 && oh * ow <= most && (long)h * w * 15 <= 0x7fffffffL;
#else
    return 0;
#endif
}

void wc_maxpool_across(const float *input, long count, int h, int w, const wc_window *window, float *output, int oh,
                       int ow) {
#if defined(__x86_64__)
    if (!wc_maxpool_across_runs(h, w, window, oh, ow)) return;
    if (wc_kernels_isa() == WC_ISA_AVX512) maxpool_across_avx512(input, count, h, w, window, output, oh, ow);
    else maxpool_across_avx2(input, count, h, w, window, output, oh, ow);
#endif
}

// ---- Global average pooling ----------------------------------------------------------------------------------------
// AVX-512: sixteen planes at a time, one per lane: each block of sixteen values of the sixteen planes transposed in
// registers (`transpose16`), then added to the lanes' sums in order, so each plane is summed in order from 0 as the
// scalar loop sums it (the same bits), and divided by its size. Two groups at a time, so that two chains of additions
// run side by side. Against the scalar loop's eight chains, node least of 30 profiled passes, µs: SqueezeNet 1.1
// 224 px's 1,000 planes of 13×13 at batch 1 26.6 → 13.9 on one thread, 14.4 → 8.3 on two (onnxruntime, one: 18);
// 64 px at batch 32 (planes of 3×3), one thread, 47.4 → 38.3. AVX2 the same, eight planes a vector (`transpose8`):
// node least of 20 profiled passes, three alternated rounds, µs: SqueezeNet 1.1 224 px at batch 1, one thread 46.6–49.2
// → 30.4–36.7, two 25.9–29.4 → 17.1–17.9 (onnxruntime, one: 24); EfficientNet-Lite0's 1,280 planes of 7×7, one
// thread, 19.4–21.3 → 12.7–14.7; on planes of 3×3 (two blocks of values, one of them a single value) about even.
int wc_global_average_runs(void) {
#if defined(__x86_64__)
    return wc_kernels_isa() == WC_ISA_AVX512 || wc_kernels_isa() == WC_ISA_AVX2;
#else
    return 0;
#endif
}

#if defined(__x86_64__)
// The sums of planes [first, first + count) (count ≤ 16) after the values [p0, p0 + n) of each, added to `sum` in order.
__attribute__((target("avx512f"))) static inline __m512 add_block16(const float *input, long size, int count, long p0,
                                                                    int n, __m512 sum) {
    __m512 r[16];
    load_transposed16(input, count, size, p0, n, r);
    for (int j = 0; j < n; j++) sum = _mm512_add_ps(sum, r[j]);
    return sum;
}

// The same for up to eight planes (AVX2).
__attribute__((target("avx2"))) static inline __m256 add_block8(const float *input, long size, int count, long p0, int n,
                                                                __m256 sum) {
    const __m256i first = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 r[8];
    for (int i = 0; i < 8; i++)
        r[i] = i < count ? _mm256_maskload_ps(input + (size_t)i * size + p0, first) : _mm256_setzero_ps();
    transpose8(r);
    for (int j = 0; j < n; j++) sum = _mm256_add_ps(sum, r[j]);
    return sum;
}

__attribute__((target("avx512f"))) static inline void store_first16(float *out, __m512 x, int count) {
    _mm512_mask_storeu_ps(out, wc_first_lanes(count), x);
}
__attribute__((target("avx2"))) static inline void store_first8(float *out, __m256 x, int count) {
    wc_store_lanes8(out, x, 0, count);
}

// Planes L at a time (one a lane), two vectors of sums side by side.
#define DEFINE_GLOBAL_AVERAGE(NAME, ATTR, VEC, L, SET1, ZERO, DIV, ADD_BLOCK, STORE_FIRST)                       \
    ATTR static void NAME(const float *input, long planes, long size, float *output) {                            \
        const VEC divisor = SET1((float)(size > 0 ? size : 1));                                                   \
        for (long first = 0; first < planes; first += 2 * L) {                                                   \
            const int a = planes - first < L ? (int)(planes - first) : L;                                         \
            const int b = planes - first - L < 0 ? 0 : planes - first - L < L ? (int)(planes - first - L) : L;    \
            const float *x = input + first * size;                                                                \
            VEC sa = ZERO(), sb = ZERO();                                                                         \
            for (long p0 = 0; p0 < size; p0 += L) {                                                               \
                const int n = size - p0 < L ? (int)(size - p0) : L;                                               \
                sa = ADD_BLOCK(x, size, a, p0, n, sa);                                                            \
                if (b) sb = ADD_BLOCK(x + L * size, size, b, p0, n, sb);                                          \
            }                                                                                                     \
            STORE_FIRST(output + first, DIV(sa, divisor), a);                                                     \
            if (b) STORE_FIRST(output + first + L, DIV(sb, divisor), b);                                          \
        }                                                                                                         \
    }
DEFINE_GLOBAL_AVERAGE(global_average_avx512, __attribute__((target("avx512f"))), __m512, 16, _mm512_set1_ps,
                      _mm512_setzero_ps, _mm512_div_ps, add_block16, store_first16)
DEFINE_GLOBAL_AVERAGE(global_average_avx2, __attribute__((target("avx2"))), __m256, 8, _mm256_set1_ps,
                      _mm256_setzero_ps, _mm256_div_ps, add_block8, store_first8)
#endif

void wc_global_average(const float *input, long planes, long size, float *output) {
#if defined(__x86_64__)
    if (wc_kernels_isa() == WC_ISA_AVX512) global_average_avx512(input, planes, size, output);
    else if (wc_global_average_runs()) global_average_avx2(input, planes, size, output);
#else
    (void)input; (void)planes; (void)size; (void)output;
#endif
}
