#ifndef WC_ROW_COPY_H
#define WC_ROW_COPY_H
// The bordered copy of one plane that the row kernels (depthwise convolution, max pool) read: every row of the plane
// inside a border (zeros, or −∞ for a max pool, written once by the caller: the copy writes only the interior), each
// row kept as its `sw` phases (phase p holds the bordered columns p, p + sw, p + 2·sw, …), so that at any stride the
// inputs under L consecutive outputs of a row are L consecutive values: one load, no shuffle. Rows go to the kernels
// ROWS at a time. Not part of the module's interface.
#include "Dispatch.h"

enum { ROWS = 8 };
// Windows of up to this many taps have their offsets in the copy (row_copy_tap) worked out once per plane.
enum { ROWS_TAPS = 49 };

typedef struct {
    long pitch, phase, rows;  // floats from one bordered row to the next and from one phase to the next; rows
} row_copy;

static inline row_copy row_copy_of(int h, int w, const wc_window *win, int oh, int ow) {
    row_copy g;
    // Columns read by ⌈ow/16⌉·16 outputs (the widest vector), rows by ⌈oh/ROWS⌉·ROWS (rows past oh are computed from
    // the border and not stored).
    long cols = (long)((ow + 15) / 16 * 16 - 1) * win->sw + (long)(win->kw - 1) * win->dw + 1;
    if (cols < (long)win->pad_left + w) cols = (long)win->pad_left + w;
    g.phase = (cols + win->sw - 1) / win->sw;
    g.pitch = g.phase * win->sw;
    long rows = (long)((oh + ROWS - 1) / ROWS * ROWS - 1) * win->sh + (long)(win->kh - 1) * win->dh + 1;
    g.rows = rows > (long)win->pad_top + h ? rows : (long)win->pad_top + h;
    return g;
}

// Where tap (ki, kj)'s input under output (ROWS·i, 0) of a group of rows sits, from the group's first bordered row.
static inline long row_copy_tap(row_copy g, const wc_window *win, int ki, int kj) {
    const int c = kj * win->dw;  // bordered column of the tap under output column 0: phase c % sw
    return (long)ki * win->dh * g.pitch + (c % win->sw) * g.phase + c / win->sw;
}

// Every tap's row_copy_tap into at[kh·kw] (row-major), once per plane, when the window has at most ROWS_TAPS taps:
// returns whether it did (a division and a remainder by the stride per tap and vector of outputs otherwise).
static inline int row_copy_taps(row_copy g, const wc_window *win, long at[ROWS_TAPS]) {
    if (win->kh * win->kw > ROWS_TAPS) return 0;
    for (int ki = 0, t = 0; ki < win->kh; ki++)
        for (int kj = 0; kj < win->kw; kj++, t++) at[t] = row_copy_tap(g, win, ki, kj);
    return 1;
}

// The plane's rows into the copy, each as its phases.
#define DEFINE_COPY_ROWS(NAME, ATTR, ROW)                                                                         \
    ATTR static void NAME(const float *plane, int h, int w, const wc_window *win, row_copy g, float *copy) {      \
        for (int y = 0; y < h; y++)                                                                               \
            ROW(plane + (long)y * w, w, win->pad_left, win->sw, copy + (long)(win->pad_top + y) * g.pitch, g.phase); \
    }
// Bordered rows [top, top + count) of the plane into rows 0 … count − 1 of the copy: a strip, for kernels that take a
// few output rows at a time from a copy small enough to stay in L1. A row of the border is written as zeros (a row of
// the copy holds different rows of the plane from one strip to the next); the columns of the border are never written.
#define DEFINE_COPY_STRIP(NAME, ATTR, ROW)                                                                        \
    ATTR static void NAME(const float *plane, int h, int w, const wc_window *win, row_copy g, long top, long count, \
                          float *copy) {                                                                          \
        for (long r = 0; r < count; r++) {                                                                        \
            const long y = top + r - win->pad_top;                                                                \
            if (y >= 0 && y < h) ROW(plane + y * w, w, win->pad_left, win->sw, copy + r * g.pitch, g.phase);      \
            else memset(copy + r * g.pitch, 0, sizeof(float) * (size_t)g.pitch);                                  \
        }                                                                                                         \
    }
DEFINE_COPY_ROWS(copy_rows_generic, , wc_row_phases_generic)
DEFINE_COPY_STRIP(copy_strip_generic, , wc_row_phases_generic)
#if defined(__x86_64__)
DEFINE_COPY_ROWS(copy_rows_avx2, __attribute__((target("avx2"))), wc_row_phases_avx2)
DEFINE_COPY_STRIP(copy_strip_avx2, __attribute__((target("avx2"))), wc_row_phases_avx2)
DEFINE_COPY_ROWS(copy_rows_avx512, __attribute__((target("avx512f"))), wc_row_phases_avx512)
DEFINE_COPY_STRIP(copy_strip_avx512, __attribute__((target("avx512f"))), wc_row_phases_avx512)
#endif

// Vectors at the end of a row, n < L values: through a loop (PART_*), or through masks on AVX-512 (MASK_*).
#define PART_LOAD(VEC, L, v, p, n)                                                                                \
    do {                                                                                                          \
        if ((n) >= (L)) memcpy(&(v), (p), sizeof(VEC));                                                          \
        else {                                                                                                    \
            (v) = (VEC){0};                                                                                       \
            for (int i_ = 0; i_ < (n); i_++) (v)[i_] = (p)[i_];                                                   \
        }                                                                                                         \
    } while (0)
#define PART_STORE(VEC, L, p, v, n)                                                                               \
    do {                                                                                                          \
        if ((n) >= (L)) memcpy((p), &(v), sizeof(VEC));                                                           \
        else                                                                                                      \
            for (int i_ = 0; i_ < (n); i_++) (p)[i_] = (v)[i_];                                                   \
    } while (0)
#define MASK_LOAD(VEC, L, v, p, n) ((v) = (VEC)_mm512_maskz_loadu_ps(wc_first_lanes(n), (p)))
#define MASK_STORE(VEC, L, p, v, n) _mm512_mask_storeu_ps((p), wc_first_lanes(n), (__m512)(v))

typedef float row8 __attribute__((vector_size(32)));
typedef int rowi8 __attribute__((vector_size(32)));
typedef float row16 __attribute__((vector_size(64)));
typedef int rowi16 __attribute__((vector_size(64)));

#endif
