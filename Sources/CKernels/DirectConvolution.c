// Direct convolution on packed weights (AVX-512; AVX2 where DirectConvolution.applies allows it): no im2col matrix, no
// product buffer, no scatter. Each block of eight output channels × 48 outputs (AVX2: 24, four channels at a time) is
// summed in registers over every (channel, tap), its inputs read straight from a zero-bordered copy of the images,
// then stored into the NCHW output with the bias, residual and clamp. With AVX2 and many weights per output
// (`wc_conv_direct_vectors`) the roles turn: each vector holds eight output channels' weights, and a block is three
// panels × four outputs or four panels × three outputs, each output's input broadcast from the copy.
//
// The copy holds a group of images side by side: row Y of every image in one row, image g's bordered columns from
// g·S on, where S leaves each image's right border as the next one's left border. The outputs of one row of every
// image in the group are then consecutive there, S apart, so a 16-lane vector of outputs spans several images on
// small maps (7×7 maps, S = 8: two images' 14 outputs in 16 lanes) instead of one row's few outputs (with AVX2's
// weights as vectors on small maps, a block takes one position of several images of the copy instead: `vectors_plane`).
// For a stride of 2 each row is kept as its even and odd columns, so the inputs under consecutive outputs are
// consecutive there too.
#include "Dispatch.h"
#include "Transpose.h"
#include "Vectors16.h"
#include <stddef.h>
#include <stdlib.h>

enum { PANEL = 8, GROUP_BYTES = 16 << 10 };
// The weights-as-vectors kernel's tile of sums: TILE outputs (a multiple of 3, 4 and 8) × up to 32 channels.
enum { TILE = 24, TILE_WIDTH = 32 };

// For each channel and each bordered row Y, `phases` (the stride sw) rows of `width` values; phase φ holds the row's
// columns X ≡ φ (mod sw) at X / sw. `segment` is S / sw: how far apart the images' outputs are in a phase row.
// `flat`: one image at stride 1 whose rows lie S apart (width = S), so that the outputs of consecutive rows follow one
// another along the copy as the images of a group do along a row (`flat_pays`).
typedef struct {
    int rows, width, phases, segment, flat;
} layout;

// Outputs a vector holds: 16 on AVX-512, else 8 (AVX2).
static int vector_lanes(void) { return wc_kernels_isa() == WC_ISA_AVX512 ? 16 : 8; }

static layout layout_with(int w, const wc_window *win, int oh, int ow, int images, int flat) {
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
    l.flat = flat;
    if (flat) l.width = l.segment;
    return l;
}

// Positions of a phase row the output vectors cover: every image's segment, the last one only up to its outputs (with
// flat rows, every row's: `images` is then the rows).
static long covered(layout l, int ow, int images) { return (long)(images - 1) * l.segment + ow; }

// The share of the output vectors' lanes that are outputs (every row's vectors apart, or along the flat rows).
static double useful_of(layout l, int oh, int ow, int images) {
    const int v = vector_lanes();
    const long lanes = (covered(l, ow, l.flat ? oh : images) + v - 1) / v * v;
    return (double)(l.flat ? oh : images) * ow / lanes;
}

// Whether one image's rows run flat (`layout`): AVX-512, strides of 1, from FLAT_LEAST_K weights an output, where that
// makes at least 2% more of the lanes outputs than vectors along each row. A vector then often holds the end of one row and the start of
// the next, stored as two pieces. One-layer models (3×3 or 5×5 + ReLU), batch 1, two threads, least µs of 1 s,
// alternated rounds, the weights as vectors → flat rows: 8 → 32 on 55×55 70 → 52–55, 32 → 64 5×5 on 28×28 276 → 259;
// 16 → 64 on 55×55 (one thread) 445–448 → 358–360 (Winograd takes that layer: `Winograd.pays`); but 1 → 64 on 28×28 (9
// weights an output, the direct kernel's rows) 10.8–10.9 → 11.9–12.0, its two pieces' stores per nine multiply-adds.
enum { FLAT_LEAST_K = 64 };
static int flat_pays(int c, int w, const wc_window *win, int oh, int ow, int images) {
    if (images != 1 || win->sw != 1 || win->sh != 1 || wc_kernels_isa() != WC_ISA_AVX512
        || (long)c * win->kh * win->kw < FLAT_LEAST_K || oh < 2)
        return 0;
    return useful_of(layout_with(w, win, oh, ow, 1, 1), oh, ow, 1)
        > useful_of(layout_with(w, win, oh, ow, 1, 0), oh, ow, 1) + 0.02;
}

static layout layout_of(int c, int w, const wc_window *win, int oh, int ow, int images) {
    return layout_with(w, win, oh, ow, images, flat_pays(c, w, win, oh, ow, images));
}

int wc_conv_direct_runs(const wc_window *win) {
#if defined(__x86_64__)
    return (wc_kernels_isa() == WC_ISA_AVX512 || wc_kernels_isa() == WC_ISA_AVX2) && (win->sw == 1 || win->sw == 2);
#else
    (void)win;
    return 0;
#endif
}

// The weights as vectors (AVX2) from VECTORS_LEAST_K weights per output, where the weights stay in half of L2 or each
// image has VECTORS_LEAST_OUTPUTS outputs to spread their reading over: each image reads all of them once. C harness,
// one thread, GFLOP/s, 3×3, least of 40 alternated runs, bordered rows / weights as vectors / im2col + product: 48 → 192
// channels on 13×13 (k = 432) 60 / 80 / 78, 64 → 256 on 13×13 63 / 84 / 71, 64 → 64 on 56×56 71 / 86 / 71, 256 → 256
// on 14×14 60 / 85 / 76, stride 2 64 → 128 on 56×56 49 / 68 / 68. With the blocks of four panels and the tile of sums
// (`vectors_plane`), from 100 weights per output (k = 144: 16 → 64 on 15×15 73 / 86 / 76, on 55×55 79 / 88 / 83; k =
// 108: 12 → 48 on 28×28 68 / 86 / 71; k = 72 even: 8 → 32 on 32×32 75 / 75 / 55). In the models (two threads,
// batches alternated in one process, least ms):
// SqueezeNet 1.1 224 px batch 16 80.3 → 77.2, batch 1 5.42 → 5.21; ResNet-18 224 px's 256 → 512 stride-2 layer on
// 7×7 outputs (4.7 MB of weights, read again for each image) was 12.4 → 18.2–19.4 ms before the outputs' rule.
enum { VECTORS_LEAST_K = 100, VECTORS_WEIGHT_BYTES = 256 << 10, VECTORS_LEAST_OUTPUTS = 256 };
enum { VECTORS16_LEAST_K = 64, VECTORS16_MOST_WEIGHTS = 256 << 10 };

// With AVX2, maps of up to VECTORS_ACROSS_OUTPUTS outputs take their images VECTORS_ACROSS_IMAGES at a time (or an even
// share of the batch under that) into one copy, where a block's outputs at one position of several images sum only the
// taps that read the images (`vectors_plane`): on 3×3 maps with a border of one, 49 of every 81 products. There the
// weights are read once for the copy's images, so beyond VECTORS_WEIGHT_BYTES they need VECTORS_ACROSS_LEAST outputs a
// copy. Against one image a copy (or, past 256 KB of weights, im2col's product), each node's least over 3 alternated
// rounds, SqueezeNet 1.1 64 px at batch 64, µs: one thread, 3×3 maps 1,268 → 849, 1,258 → 843, 2,179 → 1,461,
// 2,191 → 1,525, 7×7 maps 2,936 → 2,496, 2,952 → 2,543; two threads 632 → 435, 624 → 432, 1,082 → 750, 1,076 → 775,
// 1,417 → 1,269, 1,378 → 1,296 (whole batch 19.5 → 18.4 ms). 15×15 maps (225 outputs) gained 2–4% on one thread and
// lost 1.4% on two; copies of 24 images split unevenly over two workers, of 6 fell under VECTORS_ACROSS_LEAST.
enum { VECTORS_ACROSS_OUTPUTS = 64, VECTORS_ACROSS_IMAGES = 12, VECTORS_ACROSS_LEAST = 64 };

int wc_conv_vectors_images(int oh, int ow, int batch) {
    if (wc_kernels_isa() != WC_ISA_AVX2 || (long)oh * ow > VECTORS_ACROSS_OUTPUTS || batch <= 1) return 1;
    const int copies = (batch + VECTORS_ACROSS_IMAGES - 1) / VECTORS_ACROSS_IMAGES;
    return (batch + copies - 1) / copies;
}

int wc_conv_direct_vectors(int k, int oc, int oh, int ow, int images) {
    const long weight_bytes = (long)k * oc * (long)sizeof(float);
    // AVX-512 (Vectors16.c; at batch 1 where the vectors of outputs would leave lanes idle: DirectConvolution.swift):
    // rows of 4 outputs or more, from VECTORS16_LEAST_K weights per output, up to VECTORS16_MOST_WEIGHTS of them (more
    // are read faster by the other paths: AlexNet FMNIST's 2.3 and 3.5 MB layers on 8×8 maps, batch 1, two threads,
    // 122 → 170 and 193 → 258 µs). Batch 1, each node's least over 2 alternated rounds, µs, im2col or the vectors of
    // outputs → here: SqueezeNet 1.1 64 px's 3×3 layers on 7×7 maps, one thread 18.7 → 17.4, two 12.0 → 11.3;
    // SqueezeNet 1.1 224 px's on 55×55, 27×27 and 13×13 maps, one thread 271 → 246, 255 → 234, 145 → 127, two 140 →
    // 131, 134 → 127, 75 → 68.
    if (wc_kernels_isa() == WC_ISA_AVX512)
        return ow >= 4 && k >= VECTORS16_LEAST_K && (long)k * oc <= VECTORS16_MOST_WEIGHTS && oh > 0;
    const long outputs = (long)oh * ow;
    return wc_kernels_isa() == WC_ISA_AVX2 && k >= VECTORS_LEAST_K
        && (weight_bytes <= VECTORS_WEIGHT_BYTES || outputs >= VECTORS_LEAST_OUTPUTS
            || (images > 1 && images * outputs >= VECTORS_ACROSS_LEAST));
}

static size_t padded_count(int c, int w, const wc_window *win, int oh, int ow, int images) {
    layout l = layout_of(c, w, win, oh, ow, images);
    // Flat rows: the last vectors read up to 15 + pad_left values past the last row.
    return (size_t)c * l.rows * l.phases * l.width + (l.flat ? (size_t)(16 + win->pad_left + 15) / 16 * 16 : 0);
}

// Room for a copy of up to `images` images: a last copy of one image may take flat rows.
size_t wc_conv_padded_count(int c, int w, const wc_window *win, int oh, int ow, int images) {
    const size_t group = padded_count(c, w, win, oh, ow, images), one = padded_count(c, w, win, oh, ow, 1);
    return group > one ? group : one;
}

int wc_conv_padded_rows(const wc_window *win, int oh) { return layout_with(1, win, oh, 1, 1, 0).rows; }

double wc_conv_direct_useful(int c, int w, const wc_window *win, int oh, int ow, int images) {
    return useful_of(layout_of(c, w, win, oh, ow, images), oh, ow, images);
}

// Images side by side against one image's rows apart (not flat: a group is chosen as before).
int wc_conv_direct_images(int w, const wc_window *win, int oh, int ow, int most) {
    const int segment = layout_with(w, win, oh, ow, 1, 0).segment, widest = (64 + segment - 1) / segment;
    int best = 1;
    for (int g = 2; g <= widest && g <= most; g++)
        if (useful_of(layout_with(w, win, oh, ow, g, 0), oh, ow, g)
            > useful_of(layout_with(w, win, oh, ow, best, 0), oh, ow, best))
            best = g;
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
    const layout l = layout_of(c, w, win, oh, ow, images);
#if defined(__x86_64__)
    if (wc_kernels_isa() == WC_ISA_AVX512) {
        pad_avx512(image, image_stride, images, c, h, w, win, l, first_row, rows, padded);
        // Flat rows: the last row's right border is the left border of the row after it (the next channel's first
        // row, the rows of another worker's part, or past the planes), which the outputs under it read: zeros.
        if (l.flat)
            for (int ch = 0; ch < c; ch++)
                memset(padded + ((long)ch * l.rows + first_row + rows) * l.width, 0, sizeof(float) * win->pad_left);
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
    // Lanes [from, to) as a mask (AVX-512). Not a char type: a store of an output then cannot change it, so the block
    // keeps it in a register instead of reading it again after every store.
    unsigned short mask[MAX_PIECES];
    // One piece from lane 0 whose lanes past `to` fall on outputs of the same plane that a later run of this call
    // stores (the next rows' first outputs): the whole vector may be stored (AVX2), those lanes written over later.
    int spills;
} run;

// offsets[kk]: where (channel, ki, kj)'s input under the group's first output sits in the copy.
static void plan_offsets(layout l, int c, const wc_window *win, int *offsets) {
    const int s = l.phases;
    for (int ch = 0, kk = 0; ch < c; ch++)
        for (int ki = 0; ki < win->kh; ki++)
            for (int kj = 0; kj < win->kw; kj++, kk++) {
                const int x = kj * win->dw;
                offsets[kk] = (((ch * l.rows + ki * win->dh) * s + x % s) * l.width) + x / s;
            }
}

// Every output row of every image, L phase-row positions at a time (position i is output i mod seg of image i / seg,
// an output when i mod seg < ow), into runs; returns their count.
static int plan_runs(layout l, const wc_window *win, int ow, int images, int first_row, int rows, long image_stride,
                     int lanes_per_vector, run *runs) {
    if (l.flat) {
        // The rows as images of one row each, S apart along row first_row of the copy: output j of row first_row + i
        // at i·ow + j, as image i's would be. Stored by their pieces' masks (AVX-512), never whole (`spills`).
        l.flat = 0;
        const int count = plan_runs(l, win, ow, rows, first_row, 1, ow, lanes_per_vector, runs);
        for (int i = 0; i < count; i++) runs[i].spills = 0;
        return count;
    }
    const int s = l.phases, seg = l.segment;
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
                r->mask[r->pieces] = (unsigned short)(((1u << (to - i0)) - 1) & ~((1u << (from - i0)) - 1));
                r->out[r->pieces++] = g * image_stride + (long)oy * ow + i0 - (long)g * seg;
            }
            // Lane 0 is output oy·ow + i0 − g·seg of image g's plane; the rows this call computes end at
            // (first_row + rows)·ow. Runs go row by row, and a block stores its runs in order, so the outputs under
            // the lanes past `to` are stored again by a later run (or a later vector of the same block).
            const int g = i0 / seg;
            r->spills = r->pieces == 1 && r->from[0] == 0
                && (long)oy * ow + i0 - (long)g * seg + lanes_per_vector <= (long)(first_row + rows) * ow;
        }
    return count_runs;
}

// Whether a run's vector may be stored whole: one whole vector of one image's outputs, or one whose lanes past its
// outputs are stored again later (`spills`).
static inline int run_whole(const run *r, int lanes) {
    return r->pieces == 1 && r->from[0] == 0 && (r->to[0] == lanes || r->spills);
}

// out[at] = clamp(x + residual[at]) (without a residual, clamp(x)) in the lanes of m.
__attribute__((target("avx512f"))) static inline void store_lanes16(float *out, const float *residual, long at,
                                                                    __mmask16 m, __m512 x, __m512 low, __m512 high) {
    if (residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, residual + at));
    _mm512_mask_storeu_ps(out + at, m, wc_clamp512(x, low, high));
}

// One block: `rows` (≤ 8) output channels × NV runs, summed over every (channel, tap) in order, then stored with the
// bias, residual and clamp. Where each run is one image's (one piece), its mask and place are read once for the eight
// rows: with the pieces' lanes read again after every store (chars, which any store may change), a stem's stores
// (27 weights an output) took a third of the kernel's samples. SqueezeNet 1.1 64 px's stem as a one-layer model
// (3 → 64, 3×3 stride 2 on 31×31 outputs), batch 16, one thread, least of 2 s, alternated rounds: 292–294 → 263–273 µs;
// in the models, two threads: SqueezeNet 1.1 224 px at batch 1 1,537–1,552 → 1,446–1,458, 64 px at batch 64
// 7,723–7,896 → 7,540–7,638.
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
        /* Each run one image's outputs (one piece): its mask and place read once, not per row.               */ \
        int single = 1;                                                                                           \
        for (int v = 0; v < NV; v++) single &= runs[v].pieces == 1;                                               \
        __mmask16 m[NV];                                                                                          \
        long at[NV];                                                                                              \
        for (int v = 0; v < NV; v++) (m[v] = (__mmask16)runs[v].mask[0], at[v] = runs[v].out[0]);                \
        if (single)                                                                                               \
            _Pragma("clang loop unroll(full)") for (int r = 0; r < PANEL; r++) {                                  \
                const __m512 bv = _mm512_set1_ps(bias && r < rows ? bias[r] : 0.0f);                              \
                _Pragma("clang loop unroll(full)") for (int v = 0; v < NV; v++)                                   \
                    if (r < rows) store_lanes16(out, residual, r * plane + at[v], m[v], _mm512_add_ps(acc[r][v], bv), low, high); \
            }                                                                                                     \
        else                                                                                                      \
            _Pragma("clang loop unroll(full)") for (int r = 0; r < PANEL; r++) {                                  \
                const __m512 bv = _mm512_set1_ps(bias && r < rows ? bias[r] : 0.0f);                              \
                _Pragma("clang loop unroll(full)") for (int v = 0; v < NV; v++)                                   \
                    for (int i = 0; r < rows && i < runs[v].pieces; i++)                                          \
                        store_lanes16(out, residual, r * plane + runs[v].out[i], (__mmask16)runs[v].mask[i],      \
                                      _mm512_add_ps(acc[r][v], bv), low, high);                                   \
            }                                                                                                     \
    }
DEFINE_DIRECT_BLOCK(direct_block3, 3)
DEFINE_DIRECT_BLOCK(direct_block2, 2)
DEFINE_DIRECT_BLOCK(direct_block1, 1)

// AVX2 (sixteen registers): a panel's eight channels as two halves of four, each half's 4 × NV accumulators summed
// over every (channel, tap), the inputs read again from L1 for the second half — the packed product's 4 × 3 block.
// A block whose runs are each one whole vector of one image is stored straight, without the pieces' loops: on stems
// (27 weights an output, few multiply-adds per store) the code outside the sums' loop had taken 43% of the kernel's
// samples. C harness, one thread, GFLOP/s, best of 8 alternated runs: 3 → 32 3×3 stride 2 on 32×32 outputs 56.4 →
// 59.2, on 112×112 47.3 → 52.9; 16 → 16 3×3 on 32×32 71.9 → 74.5; 3 → 64 on 31×31 (a partial run in three blocks of
// four) even. MobileNetV2 64 px's stem at batch 64, two threads, least of 3 × 10 batches: 1,096 → 950 µs. Tried: the
// test per run instead of per block (slower: the branch in the unrolled stores), and the whole runs planned before the
// partial ones (31×31 even, 111×111 11% slower: the partial runs read their rows again).
// A partial run is stored whole too where its lanes past the row fall on the next rows' outputs, which later runs store
// again (`spills`): on rows of 31 outputs (SqueezeNet 1.1 64 px's stem) three blocks in four had held a partial run and
// gone through the pieces' loop. C harness, one thread, GFLOP/s, three runs: 3 → 64 on 31×31, four images a copy each,
// 58.0–58.1 → 66.9–67.2; on 111×111, one image, 65.1–65.8 → 66.1–66.9. The model at batch 64, two threads, four
// alternated rounds: the stem profiled 2,484–2,936 → 2,315–2,660 µs, the least batch 17.6–17.9 → 17.2–17.5 ms.
#define DEFINE_DIRECT_BLOCK8(NAME, NV)                                                                            \
    __attribute__((target("avx2,fma"))) static inline void NAME(                                                  \
        int k, const float *a, const float *padded, const int *offsets, const run *runs, float *out, long plane,  \
        int rows, const float *bias, const float *residual, __m256 low, __m256 high) {                            \
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                                           \
        const float *base[NV];                                                                                    \
        /* Every run one whole vector of one image, and no residual: the sums stored straight (below).      */ \
        int whole = !residual;                                                                                    \
        float *to[NV];                                                                                            \
        for (int v = 0; v < NV; v++) {                                                                            \
            base[v] = padded + runs[v].in;                                                                        \
            whole &= run_whole(&runs[v], 8);                                                                      \
            to[v] = out + runs[v].out[0];                                                                         \
        }                                                                                                         \
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
            if (whole && h + 4 <= rows) {                                                                         \
                _Pragma("clang loop unroll(full)")                                                                \
                for (int r = 0; r < 4; r++) {                                                                     \
                    const __m256 bv = _mm256_set1_ps(bias ? bias[h + r] : 0.0f);                                  \
                    _Pragma("clang loop unroll(full)")                                                            \
                    for (int v = 0; v < NV; v++)                                                                  \
                        _mm256_storeu_ps(to[v] + (h + r) * plane, wc_clamp256(_mm256_add_ps(acc[r][v], bv), low, high)); \
                }                                                                                                 \
                continue;                                                                                         \
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

// Which of a block's (channel, tap) pairs it sums, in order: for each of `channels` channels, `rows` runs of `run`
// taps, each followed by `gap` taps passed over, then `skip` more (the weights and offsets given start at the first
// channel's first tap summed). All of k is one channel, one run of k taps. A block sums the rectangle of the window's
// taps that any of its outputs reads inside the image (`block_sweep`): the others read the copy's zero border.
typedef struct {
    long channels, rows, run, gap, skip;  // the assembly reads them at offsets 0, 8, 16, 24, 32
} sweep;
_Static_assert(sizeof(long) == 8 && offsetof(sweep, skip) == 32, "the sums' assembly reads the fields by offset");

// The assembly loops' frame: twelve sums zeroed (with `more`, read from acc[j]: output j's, a panel apart), then for
// each channel (r11) its runs (r9) of taps (rax), each (channel, tap)'s offset read into r10; then the sums stored at
// acc[j].
#define LOAD3(j, r0, r1, r2)                                                                                      \
    "movq " #j "(%[acc]), %%r10\n\t vmovups (%%r10), %%ymm" #r0 "\n\t vmovups 32(%%r10), %%ymm" #r1 "\n\t"         \
    "vmovups 64(%%r10), %%ymm" #r2 "\n\t"
#define LOAD4(j, r0, r1, r2, r3) LOAD3(j, r0, r1, r2) "vmovups 96(%%r10), %%ymm" #r3 "\n\t"
#define SUMS_ZERO                                                                                                 \
    "vxorps %%ymm0, %%ymm0, %%ymm0\n\t vxorps %%ymm1, %%ymm1, %%ymm1\n\t vxorps %%ymm2, %%ymm2, %%ymm2\n\t"        \
    "vxorps %%ymm3, %%ymm3, %%ymm3\n\t vxorps %%ymm4, %%ymm4, %%ymm4\n\t vxorps %%ymm5, %%ymm5, %%ymm5\n\t"        \
    "vxorps %%ymm6, %%ymm6, %%ymm6\n\t vxorps %%ymm7, %%ymm7, %%ymm7\n\t vxorps %%ymm8, %%ymm8, %%ymm8\n\t"        \
    "vxorps %%ymm9, %%ymm9, %%ymm9\n\t vxorps %%ymm10, %%ymm10, %%ymm10\n\t vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
#define SUMS_LOOP_HEAD(LOADS)                                                                                     \
    "cmpq $0, %[more]\n\t je 7f\n\t" LOADS "jmp 8f\n"                                                           \
    "7:\n\t" SUMS_ZERO                                                                                          \
    "8:\n\t movq (%[sw]), %%r11\n"                                                                               \
    "5:\n\t movq 8(%[sw]), %%r9\n"                                                                               \
    "6:\n\t movq 16(%[sw]), %%rax\n\t .p2align 4\n"                                                              \
    "1:\n\t movslq (%[offsets]), %%r10\n\t"
// The taps passed over after a run (FIELD 24: gap) or a channel (32: skip), in r10: 4 bytes each in the offsets, then
// 32 in the weights (%[a], and MORE_A's other pointer).
#define SUMS_PASS(FIELD, MORE_A)                                                                                  \
    "movq " #FIELD "(%[sw]), %%r10\n\t shlq $2, %%r10\n\t addq %%r10, %[offsets]\n\t shlq $3, %%r10\n\t"          \
    "addq %%r10, %[a]\n\t" MORE_A
#define SUMS_LOOP_TAIL(MORE_A)                                                                                    \
    "addq $4, %[offsets]\n\t decq %%rax\n\t jnz 1b\n\t"                                                           \
    SUMS_PASS(24, MORE_A) "decq %%r9\n\t jnz 6b\n\t"                                                              \
    SUMS_PASS(32, MORE_A) "decq %%r11\n\t jnz 5b\n\t"
#define NO_MORE_A ""
#define MORE_A3 "addq %%r10, %[a3]\n\t"
#define SUMS_OPERANDS(s) [sw] "r"(s), [more] "rm"(more)
// Output j's sums (registers r0…) at acc[j], a panel (8 floats) apart.
#define STORE3(j, r0, r1, r2)                                                                                     \
    "movq " #j "(%[acc]), %%r10\n\t vmovups %%ymm" #r0 ", (%%r10)\n\t vmovups %%ymm" #r1 ", 32(%%r10)\n\t"         \
    "vmovups %%ymm" #r2 ", 64(%%r10)\n\t"
#define STORE4(j, r0, r1, r2, r3) STORE3(j, r0, r1, r2) "vmovups %%ymm" #r3 ", 96(%%r10)\n\t"

// AVX2, the weights as vectors: a block of four outputs (any four, each with its own place in the copy) × NP panels
// (8·NP channels). For each (channel, tap) the NP panels' eight weights are one aligned load each and each output's
// input one broadcast: 4 + NP loads for 4·NP multiply-adds, none across a cache line (the input-vector block above
// loads each input vector unaligned and broadcasts each weight: 11 loads for 12). The sums go to a row of the tile per
// output (output j, panel p at acc[j] + p·8; with `more`, they add to the sums there), from which `store_tile` (or,
// on fewer than eight outputs, `store_transposed4`) adds the bias and residual, clamps and stores them: the same sums
// in the same order as the im2col product's, so the same bits.
//
// Three panels in assembly, with the twelve sums, the three weight vectors and the broadcast in the sixteen registers:
// Clang's allocation of the same loop in C moved the sums between registers and spilled two of them on every
// (channel, tap) (33–42 GFLOP/s against 55–75 here).
__attribute__((target("avx2,fma"))) static inline void vector_sums3(const sweep *s, const float *a, long panel_bytes,
                                                                    const float *const in[4], const int *offsets,
                                                                    float *const acc[4], long more) {
    __asm__ volatile(
        SUMS_LOOP_HEAD(LOAD3(0, 0, 1, 2) LOAD3(8, 3, 4, 5) LOAD3(16, 6, 7, 8) LOAD3(24, 9, 10, 11))
        "vmovups (%[a]), %%ymm12\n\t"
        "vmovups (%[a],%[pb],1), %%ymm13\n\t"
        "vmovups (%[a],%[pb],2), %%ymm14\n\t"
        "vbroadcastss (%[i0],%%r10,4), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm0\n\t vfmadd231ps %%ymm13, %%ymm15, %%ymm1\n\t vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\t"
        "vbroadcastss (%[i1],%%r10,4), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm3\n\t vfmadd231ps %%ymm13, %%ymm15, %%ymm4\n\t vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
        "vbroadcastss (%[i2],%%r10,4), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\t"
        "vbroadcastss (%[i3],%%r10,4), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm9\n\t vfmadd231ps %%ymm13, %%ymm15, %%ymm10\n\t vfmadd231ps %%ymm14, %%ymm15, %%ymm11\n\t"
        "addq $32, %[a]\n\t"
        SUMS_LOOP_TAIL(NO_MORE_A)
        STORE3(0, 0, 1, 2) STORE3(8, 3, 4, 5) STORE3(16, 6, 7, 8) STORE3(24, 9, 10, 11)
        : [a] "+r"(a), [offsets] "+r"(offsets)
        : SUMS_OPERANDS(s), [pb] "r"(panel_bytes), [i0] "r"(in[0]), [i1] "r"(in[1]), [i2] "r"(in[2]), [i3] "r"(in[3]),
          [acc] "r"(acc)
        : "rax", "r9", "r10", "r11", "memory", "cc", "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9",
          "ymm10", "ymm11", "ymm12", "ymm13", "ymm14", "ymm15");
}

// The same sums for NP ≤ 2 panels in C (8 + 2 + 1 registers: Clang keeps them).
#define DEFINE_VECTOR_SUMS(NAME, NP)                                                                              \
    __attribute__((target("avx2,fma"))) static inline void NAME(const sweep *sw, const float *a, long panel_bytes,       \
                                                                const float *const in[4], const int *offsets,     \
                                                                float *const acc[4], long more) {                 \
        __m256 s[4][NP];                                                                                          \
        for (int j = 0; j < 4; j++)                                                                               \
            for (int p = 0; p < NP; p++) s[j][p] = more ? _mm256_loadu_ps(acc[j] + p * PANEL) : _mm256_setzero_ps(); \
        const float *in0 = in[0], *in1 = in[1], *in2 = in[2], *in3 = in[3];                                       \
        const long step = panel_bytes / (long)sizeof(float);                                                      \
        for (long ch = 0; ch < sw->channels; ch++, a += sw->skip * PANEL, offsets += sw->skip)                    \
            for (long r = 0; r < sw->rows; r++, a += sw->gap * PANEL, offsets += sw->gap)                         \
            for (long t = 0; t < sw->run; t++, a += PANEL, offsets++) {                                           \
                const int at = *offsets;                                                                          \
                __m256 wv[NP];                                                                                    \
                for (int p = 0; p < NP; p++) wv[p] = _mm256_loadu_ps(a + p * step);                               \
                __m256 x = _mm256_broadcast_ss(in0 + at);                                                         \
                for (int p = 0; p < NP; p++) s[0][p] = _mm256_fmadd_ps(x, wv[p], s[0][p]);                        \
                x = _mm256_broadcast_ss(in1 + at);                                                                \
                for (int p = 0; p < NP; p++) s[1][p] = _mm256_fmadd_ps(x, wv[p], s[1][p]);                        \
                x = _mm256_broadcast_ss(in2 + at);                                                                \
                for (int p = 0; p < NP; p++) s[2][p] = _mm256_fmadd_ps(x, wv[p], s[2][p]);                        \
                x = _mm256_broadcast_ss(in3 + at);                                                                \
                for (int p = 0; p < NP; p++) s[3][p] = _mm256_fmadd_ps(x, wv[p], s[3][p]);                        \
            }                                                                                                     \
        for (int j = 0; j < 4; j++)                                                                               \
            for (int p = 0; p < NP; p++) _mm256_storeu_ps(acc[j] + p * PANEL, s[j][p]);                          \
    }
DEFINE_VECTOR_SUMS(vector_sums2, 2)
DEFINE_VECTOR_SUMS(vector_sums1, 1)

// Three outputs × four panels (32 channels), as onnxruntime's NCHWc kernel blocks them: per (channel, tap) three
// broadcasts and the four panels' weights loaded one after another into the same register, 7 loads for 12
// multiply-adds. Layers whose channels are a multiple of 32 but not of 24 (64, 128, 160, 320, 1280) run on it
// without a remainder of one or two panels (four or eight sums in flight: half the rate or less).
__attribute__((target("avx2,fma"))) static inline void vector_sums34(const sweep *s, const float *a, long panel_bytes,
                                                                     const float *const in[3], const int *offsets,
                                                                     float *const acc[3], long more) {
    const float *a3 = a + 3 * panel_bytes / (long)sizeof(float);
    __asm__ volatile(
        SUMS_LOOP_HEAD(LOAD4(0, 0, 1, 2, 3) LOAD4(8, 4, 5, 6, 7) LOAD4(16, 8, 9, 10, 11))
        "vbroadcastss (%[i0],%%r10,4), %%ymm12\n\t"
        "vbroadcastss (%[i1],%%r10,4), %%ymm13\n\t"
        "vbroadcastss (%[i2],%%r10,4), %%ymm14\n\t"
        "vmovups (%[a]), %%ymm15\n\t"
        "vfmadd231ps %%ymm15, %%ymm12, %%ymm0\n\t vfmadd231ps %%ymm15, %%ymm13, %%ymm4\n\t vfmadd231ps %%ymm15, %%ymm14, %%ymm8\n\t"
        "vmovups (%[a],%[pb],1), %%ymm15\n\t"
        "vfmadd231ps %%ymm15, %%ymm12, %%ymm1\n\t vfmadd231ps %%ymm15, %%ymm13, %%ymm5\n\t vfmadd231ps %%ymm15, %%ymm14, %%ymm9\n\t"
        "vmovups (%[a],%[pb],2), %%ymm15\n\t"
        "vfmadd231ps %%ymm15, %%ymm12, %%ymm2\n\t vfmadd231ps %%ymm15, %%ymm13, %%ymm6\n\t vfmadd231ps %%ymm15, %%ymm14, %%ymm10\n\t"
        "vmovups (%[a3]), %%ymm15\n\t"
        "vfmadd231ps %%ymm15, %%ymm12, %%ymm3\n\t vfmadd231ps %%ymm15, %%ymm13, %%ymm7\n\t vfmadd231ps %%ymm15, %%ymm14, %%ymm11\n\t"
        "addq $32, %[a]\n\t"
        "addq $32, %[a3]\n\t"
        SUMS_LOOP_TAIL(MORE_A3)
        STORE4(0, 0, 1, 2, 3) STORE4(8, 4, 5, 6, 7) STORE4(16, 8, 9, 10, 11)
        : [a] "+r"(a), [a3] "+r"(a3), [offsets] "+r"(offsets)
        : SUMS_OPERANDS(s), [pb] "r"(panel_bytes), [i0] "r"(in[0]), [i1] "r"(in[1]), [i2] "r"(in[2]), [acc] "r"(acc)
        : "rax", "r9", "r10", "r11", "memory", "cc", "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9",
          "ymm10", "ymm11", "ymm12", "ymm13", "ymm14", "ymm15");
}

// Four outputs' eight channels (a0..a3, lane c: channel c) as channel c's four outputs at out + c·plane, the first
// `valid` of them, for the first `rows` channels; + residual (same places), then clamped.
__attribute__((target("avx2"))) static inline void store_transposed4(float *out, const float *residual, long plane,
                                                                     int rows, int valid, __m256 a0, __m256 a1,
                                                                     __m256 a2, __m256 a3, __m256 low, __m256 high) {
    const __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
    const __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
    // u[c]: channel c's four outputs in the low half, channel c + 4's in the high half.
    __m256 u[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xee), _mm256_shuffle_ps(t1, t3, 0x44),
                   _mm256_shuffle_ps(t1, t3, 0xee)};
    for (int c = 0; c < 4; c++) {
        __m256 y = u[c];
        if (residual) {
            float r[8] = {0};
            for (int j = 0; j < valid; j++) {
                r[j] = c < rows ? residual[c * plane + j] : 0;
                r[4 + j] = c + 4 < rows ? residual[(c + 4) * plane + j] : 0;
            }
            y = _mm256_add_ps(y, _mm256_loadu_ps(r));
        }
        y = wc_clamp256(y, low, high);
        if (valid == 4) {
            if (c < rows) _mm_storeu_ps(out + c * plane, _mm256_castps256_ps128(y));
            if (c + 4 < rows) _mm_storeu_ps(out + (c + 4) * plane, _mm256_extractf128_ps(y, 1));
        } else {
            float v[8];
            _mm256_storeu_ps(v, y);
            for (int j = 0; j < valid; j++) {
                if (c < rows) out[c * plane + j] = v[j];
                if (c + 4 < rows) out[(c + 4) * plane + j] = v[4 + j];
            }
        }
    }
}

// A tile's sums, channels last (TILE_WIDTH floats an output, `count` outputs), to the planes: for each panel and
// eight outputs, an 8 × 8 transpose, then + bias, + residual, clamped, and stored eight outputs of a channel at a time
// (the last `count` mod 8 through wc_store_lanes8). `out` and `residual` point at the tile's first output of the
// group's first channel.
__attribute__((target("avx2"))) static inline void store_tile(const float *tile, int count, int channels,
                                                              const float *bias, const float *residual, long plane,
                                                              __m256 low, __m256 high, float *out) {
    for (int pp = 0; pp * PANEL < channels; pp++) {
        const int rows = channels - pp * PANEL < PANEL ? channels - pp * PANEL : PANEL;
        for (int t = 0; t < count; t += 8) {
            const int valid = count - t < 8 ? count - t : 8;
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(tile + (t + i) * TILE_WIDTH + pp * PANEL);
            transpose8(r);
            for (int i = 0; i < rows; i++) {
                const int c = pp * PANEL + i;
                __m256 y = _mm256_add_ps(r[i], _mm256_set1_ps(bias ? bias[c] : 0.0f));
                if (residual) {
                    if (valid == 8) {
                        y = _mm256_add_ps(y, _mm256_loadu_ps(residual + c * plane + t));
                    } else {
                        float v[8] = {0};
                        memcpy(v, residual + c * plane + t, sizeof(float) * (size_t)valid);
                        y = _mm256_add_ps(y, _mm256_loadu_ps(v));
                    }
                }
                wc_store_lanes8(out + c * plane + t, wc_clamp256(y, low, high), 0, valid);
            }
        }
    }
}

// vectors_plane for fewer than eight outputs, four at a time, 24 channels at a time, each block's sums stored through
// `store_transposed4`.
__attribute__((target("avx2,fma"))) static void vectors_few(const float *base, long row_step, int ow, long plane,
                                                            long q0, long q1, int k, const float *a, const int *offsets,
                                                            int count, const float *bias, const float *residual,
                                                            __m256 lo, __m256 hi, float *out) {
    const long panel_bytes = (long)k * PANEL * (long)sizeof(float);
    float acc[4 * TILE_WIDTH] __attribute__((aligned(32)));
    for (int p = 0; p < count; p += 3 * PANEL) {
        const int channels = count - p < 3 * PANEL ? count - p : 3 * PANEL;
        __m256 bv[3];
        for (int pp = 0; pp < 3; pp++) {
            float b8[PANEL] = {0};
            for (int r = 0; bias && r < PANEL && pp * PANEL + r < channels; r++) b8[r] = bias[p + pp * PANEL + r];
            bv[pp] = _mm256_loadu_ps(b8);
        }
        int oy = (int)(q0 / ow), ox = (int)(q0 % ow);
        for (long q = q0; q < q1; q += 4) {
            const int valid = q1 - q < 4 ? (int)(q1 - q) : 4;
            const float *in[4];
            for (int j = 0; j < 4; j++) {
                in[j] = base + oy * row_step + ox;
                if (j + 1 < valid && ++ox == ow) { ox = 0; oy++; }
            }
            if (valid == 4 && ++ox == ow) { ox = 0; oy++; }
            const float *ap = a + (long)p * k;
            const sweep all = {1, 1, k, 0, 0};
            float *const sums[4] = {acc, acc + TILE_WIDTH, acc + 2 * TILE_WIDTH, acc + 3 * TILE_WIDTH};
            if (channels > 2 * PANEL) vector_sums3(&all, ap, panel_bytes, in, offsets, sums, 0);
            else if (channels > PANEL) vector_sums2(&all, ap, panel_bytes, in, offsets, sums, 0);
            else vector_sums1(&all, ap, panel_bytes, in, offsets, sums, 0);
            for (int pp = 0; pp * PANEL < channels; pp++) {
                const long op = (p + pp * PANEL) * plane + q;
                store_transposed4(out + op, residual ? residual + op : NULL, plane, channels - pp * PANEL, valid,
                                  _mm256_add_ps(_mm256_loadu_ps(acc + pp * PANEL), bv[pp]),
                                  _mm256_add_ps(_mm256_loadu_ps(acc + TILE_WIDTH + pp * PANEL), bv[pp]),
                                  _mm256_add_ps(_mm256_loadu_ps(acc + 2 * TILE_WIDTH + pp * PANEL), bv[pp]),
                                  _mm256_add_ps(_mm256_loadu_ps(acc + 3 * TILE_WIDTH + pp * PANEL), bv[pp]), lo, hi);
            }
        }
    }
}

// Blocks (in units of twelve sums a (channel, tap)) that `count` channels × n outputs take in groups of `width`
// channels, `block` outputs a block (TILE outputs a tile), the rest in groups of 24 channels × four outputs, where one
// or two panels (eight or four sums in flight) cost 0.9 and 0.7 of a block.
static double group_cost(int count, long n, int width, int block) {
    const double blocks = (double)(n / TILE * (TILE / block) + (n % TILE + block - 1) / block);
    const double blocks4 = (double)(n / TILE * (TILE / 4) + (n % TILE + 3) / 4);
    double cost = count / width * blocks;
    for (int r = count % width; r > 0; r -= 3 * PANEL) cost += (r > 2 * PANEL ? 1.0 : r > PANEL ? 0.9 : 0.7) * blocks4;
    return cost;
}

// For each output row, the window's rows [rows[2·oy], rows[2·oy + 1]) that read the image (the others read the
// copy's zero border); the same for each output column in `cols`.
typedef struct {
    int kh, kw;
    int *rows, *cols;
} reach;

// The taps a block sums in each channel: the rectangle of window rows and columns that any of its outputs reads
// inside the image, [y0, y1) × [x0, x1), starting `*from` taps into the channel's kh·kw (the caller sets how many
// channels: `vectors_plane`'s passes). The products left out are zeros, and a sum that starts at +0 never becomes −0,
// so the sums keep the bits they have over all of k. All the taps (no gap, no skip) run on into the next channel's.
static inline sweep block_sweep(const reach *r, int y0, int y1, int x0, int x1, int *from) {
    const int taps = r->kh * r->kw;
    *from = 0;
    if (y0 >= y1 || x0 >= x1 || (y0 == 0 && y1 == r->kh && x0 == 0 && x1 == r->kw)) return (sweep){1, 1, taps, 0, 0};
    *from = y0 * r->kw + x0;
    if (x0 == 0 && x1 == r->kw) return (sweep){1, 1, (y1 - y0) * r->kw, 0, taps - (y1 - y0) * r->kw};
    return (sweep){1, y1 - y0, x1 - x0, r->kw - (x1 - x0), (r->kh - (y1 - y0)) * r->kw};
}

// With several images, a tile holds TILE_POSITIONS positions of up to TILE_IMAGES images (a multiple of 3 and 4, so
// that no block mixes two positions): image g's sums from row g·TILE_POSITIONS on.
enum { TILE_POSITIONS = 8, TILE_IMAGES = 12, TILE_SLOTS = TILE_POSITIONS * TILE_IMAGES };
// With several images, a pass over a tile's blocks sums the input channels whose weights (for one group of output
// channels) take up to VECTORS_PASS_BYTES, the sums kept in the tile between passes: each pass's weights are then read
// from L1 by every block of the tile (up to 32), not from L2 by each. C harness, one thread, 11 images, least of 3 × 300
// runs, µs, one pass / passes of 32, 24, 16 KB: 64 → 256 on 3×3 maps 291 / 258 / 242 / 236, 48 → 192 on 3×3 166 / 150 /
// 138 / 136, 32 → 128 on 7×7 567 / 420 / 415 / 409 (the first without the taps left out either). One image's tile of
// 24 outputs gained nothing by them (64 → 256 on 13×13 534 → 543).
enum { VECTORS_PASS_BYTES = 16 << 10 };

// One block of a tile: its outputs' inputs and rows of the tile, and the taps it sums (from `from` on in each channel).
typedef struct {
    const float *in[4];
    float *acc[4];
    sweep sw;
    int from;
} vector_block;

// A tile's blocks: positions [t0, t0 + n) of images [g0, g0 + gs), taken position by position across the images,
// `block` outputs a block (a block past the last output sums that output again into the unused row); returns their
// count.
static int plan_blocks(const float *base, long image_in, int g0, int gs, long row_step, int ow, long t0, int n,
                       int per, int block, const reach *r, float *tile, float *unused, vector_block *blocks) {
    const int outputs = n * gs;
    int oy = (int)(t0 / ow), ox = (int)(t0 % ow), g = 0, count = 0;
    // The position's input in image g0 and its row of the tile; the next output's.
    const float *at = base + (long)g0 * image_in + oy * row_step + ox, *in = at;
    float *slot = tile, *acc = tile;
    const long slot_step = (long)per * TILE_WIDTH;
    // The position's window rows and columns inside the image (all columns without r->cols).
    int ry0 = 0, ry1 = 0, rx0 = 0, rx1 = r ? r->kw : 0;
    if (r) ry0 = r->rows[2 * oy], ry1 = r->rows[2 * oy + 1];
    if (r && r->cols) rx0 = r->cols[2 * ox], rx1 = r->cols[2 * ox + 1];
    for (int j0 = 0; j0 < outputs; j0 += block) {
        vector_block *v = &blocks[count++];
        int y0 = ry0, y1 = ry1, x0 = rx0, x1 = rx1;
        for (int j = 0; j < block; j++) {
            if (j0 + j >= outputs) {
                v->in[j] = v->in[j - 1];
                v->acc[j] = unused;
                continue;
            }
            v->in[j] = in, v->acc[j] = acc;
            if (++g < gs) {
                in += image_in, acc += slot_step;
                continue;
            }
            // The next position (if there is one): its rows and columns join the block's if it has an output there.
            g = 0, at++, slot += TILE_WIDTH, in = at, acc = slot;
            const int more = j0 + j + 1 < outputs;
            if (++ox == ow) {
                ox = 0, oy++, at += row_step - ow, in = at;
                if (r && more) ry0 = r->rows[2 * oy], ry1 = r->rows[2 * oy + 1];
            }
            if (r && r->cols && more) rx0 = r->cols[2 * ox], rx1 = r->cols[2 * ox + 1];
            if (j + 1 < block && more)
                y0 = ry0 < y0 ? ry0 : y0, y1 = ry1 > y1 ? ry1 : y1, x0 = rx0 < x0 ? rx0 : x0, x1 = rx1 > x1 ? rx1 : x1;
        }
        v->from = 0;
        v->sw = r ? block_sweep(r, y0, y1, x0, x1, &v->from) : (sweep){1, 1, 1, 0, 0};
    }
    return count;
}

// Outputs [q0, q1) of the planes (rows ow wide) of `images` images side by side in the copy, for `count` channels from
// the panels at `a`: image g's output (oy, ox) reads its inputs from base + g·image_in + oy·row_step + ox +
// offsets[kk] and goes to out + g·image_out (`residual` the same); `out` and `residual` point at the first image's
// first of these channels. With `r` (else NULL), a block sums only the taps its outputs read inside the image
// (`block_sweep`).
//
// Channels go 24 at a time (four outputs × three panels a block) or 32 at a time (three outputs × four panels),
// whichever takes fewer blocks (`group_cost`: 128 channels are four groups of 32, not five of 24 and one panel; 3×3 maps
// are three blocks of three outputs, not three of four); the rest in groups of 24 or fewer. Outputs go a tile at a
// time: TILE positions of one image, or with several images TILE_POSITIONS of each of up to TILE_IMAGES, the blocks
// then taken position by position across the images (one position's outputs in every image read the same taps: on
// small maps, where the border's share is large, each block sums only its own). A tile's sums are kept channels last
// and then stored a panel and eight outputs at a time (`store_tile`): the block-by-block transposes and 4-wide stores
// before took 6–12% of the time.
__attribute__((target("avx2,fma"))) static void vectors_plane(const float *base, long image_in, int images,
                                                              long row_step, int ow, long plane, long q0, long q1,
                                                              int k, const reach *r, const float *a,
                                                              const int *offsets, int count, const float *bias,
                                                              const float *residual, long image_out, float low,
                                                              float high, float *out) {
    const __m256 lo = _mm256_set1_ps(low), hi = _mm256_set1_ps(high);
    const long panel_bytes = (long)k * PANEL * (long)sizeof(float);
    if (images == 1 && q1 - q0 < PANEL) {
        // Fewer outputs than a transpose takes (1×1 layers on 2×2 maps): each block's sums transposed as they are.
        vectors_few(base, row_step, ow, plane, q0, q1, k, a, offsets, count, bias, residual, lo, hi, out);
        return;
    }
    const int per = images == 1 ? TILE : TILE_POSITIONS;  // positions a tile takes of each image
    const int wide = group_cost(count, (q1 - q0) * images, 32, 3) < group_cost(count, (q1 - q0) * images, 3 * PANEL, 4);
    const int taps = r ? r->kh * r->kw : 1, depth = k / taps;
    // With the rows read past the last output by store_tile's transposes of eight, and the unused outputs' row; zeroed
    // as far as a tile reaches, so that no transpose reads a value never written.
    float tile[(TILE_SLOTS + PANEL + 1) * TILE_WIDTH] __attribute__((aligned(32)));
    float *const unused = tile + (TILE_SLOTS + PANEL) * TILE_WIDTH;
    memset(tile, 0, sizeof(float) * TILE_WIDTH * (size_t)((images < TILE_IMAGES ? images : TILE_IMAGES) * per + PANEL));
    vector_block blocks[TILE_SLOTS / 3 + 1];
    for (int p = 0; p < count; ) {
        const int channels = wide && count - p >= 32 ? 32 : count - p < 3 * PANEL ? count - p : 3 * PANEL;
        const int block = channels == 32 ? 3 : 4;
        const float *ap = a + (long)p * k;
        // Input channels a pass over the tile's blocks takes (several images): their weights for these output channels
        // in L1.
        const long most = images == 1 ? depth : VECTORS_PASS_BYTES / ((long)taps * channels * (long)sizeof(float));
        const int passes = most > 0 ? (int)((depth + most - 1) / most) : depth, pass = (depth + passes - 1) / passes;
        for (int g0 = 0; g0 < images; g0 += TILE_IMAGES) {
            const int gs = images - g0 < TILE_IMAGES ? images - g0 : TILE_IMAGES;
            for (long t0 = q0; t0 < q1; t0 += per) {
                const int n = q1 - t0 < per ? (int)(q1 - t0) : per;
                const int count_blocks = plan_blocks(base, image_in, g0, gs, row_step, ow, t0, n, per, block, r,
                                                     tile, unused, blocks);
                for (int c0 = 0; c0 < depth; c0 += pass) {
                    const int cs = depth - c0 < pass ? depth - c0 : pass;
                    for (int b = 0; b < count_blocks; b++) {
                        const vector_block *v = &blocks[b];
                        sweep sw = v->sw;
                        if (sw.gap == 0 && sw.skip == 0) sw.run = (long)cs * taps;  // all taps: one run
                        else sw.channels = cs;
                        const long at = (long)c0 * taps + v->from;
                        const float *ak = ap + at * PANEL;
                        const int *ok = offsets + at;
                        if (channels == 32) vector_sums34(&sw, ak, panel_bytes, v->in, ok, v->acc, c0 > 0);
                        else if (channels > 2 * PANEL) vector_sums3(&sw, ak, panel_bytes, v->in, ok, v->acc, c0 > 0);
                        else if (channels > PANEL) vector_sums2(&sw, ak, panel_bytes, v->in, ok, v->acc, c0 > 0);
                        else vector_sums1(&sw, ak, panel_bytes, v->in, ok, v->acc, c0 > 0);
                    }
                }
                for (int gg = 0; gg < gs; gg++) {
                    const long o = (long)(g0 + gg) * image_out + p * plane + t0;
                    float *rows = tile + (long)gg * per * TILE_WIDTH;
                    store_tile(rows, n, channels, bias ? bias + p : NULL, residual ? residual + o : NULL, plane, lo,
                               hi, out + o);
                }
            }
        }
        p += channels;
    }
}

// Output rows [first_row, first_row + rows) of every image of the copy, for channels [first, first + count), the
// panels' weights read from L1 (or L2) by every block of outputs (AVX-512: Vectors16.c).
static void direct_vectors(
    layout l, const wc_window *win, int images, int h, int w, int oh, int ow, const float *padded, int k,
    const int *offsets, const float *packed, int first, int count, int first_row, int rows, const float *bias,
    const float *residual, long image_stride, float low, float high, float *out) {
    const long plane = (long)oh * ow, row_step = (long)win->sh * l.phases * l.width;
    if (wc_kernels_isa() == WC_ISA_AVX512) {
        for (int g = 0; g < images; g++) {
            const long o = g * image_stride + first * plane;
            wc_vectors16_plane(padded + (long)g * l.segment, row_step, ow, plane, first_row, rows, k,
                               packed + (long)first * k, offsets, count, bias ? bias + first : NULL,
                               residual ? residual + o : NULL, low, high, out + o);
        }
        return;
    }
    // For each output row and column, the window's rows and columns inside the image (the columns only with several
    // images: one image's blocks of consecutive outputs seldom lie all in one edge column).
    reach r = {win->kh, win->kw, malloc(sizeof(int) * 2 * ((size_t)oh + (size_t)ow)), NULL};
    if (!r.rows) abort();
    r.cols = r.rows + 2 * oh;
    for (int o = 0; o < oh + ow; o++) {
        const int across = o >= oh, at = across ? o - oh : o, size = across ? w : h;
        const int taps = across ? win->kw : win->kh, step = across ? win->sw : win->sh;
        const int dilation = across ? win->dw : win->dh, pad = across ? win->pad_left : win->pad_top;
        int lo = taps, hi = 0;
        for (int t = 0; t < taps; t++) {
            const int y = at * step + t * dilation - pad;
            if (y >= 0 && y < size) { lo = t < lo ? t : lo; hi = t + 1; }
        }
        r.rows[2 * o] = lo, r.rows[2 * o + 1] = hi;
    }
    if (images == 1) r.cols = NULL;
    vectors_plane(padded, l.segment, images, row_step, ow, plane, (long)first_row * ow, (long)(first_row + rows) * ow,
                  k, &r, packed + (long)first * k, offsets, count, bias ? bias + first : NULL,
                  residual ? residual + first * plane : NULL, image_stride, low, high, out + first * plane);
    free(r.rows);
}

void wc_conv_pointwise_vectors(const float *input, long in_image, int images, int c, long plane, const float *packed,
                               int first, int count, const float *bias, const float *residual, long out_image,
                               float low, float high, float *out) {
#if defined(__x86_64__)
    // The planes' offsets on the stack unless the input is very deep, once for the run of images (built per image,
    // they took 1.8% of MobileNetV2 64 px's samples at batch 64).
    int stack[4096];
    int *offsets = c <= 4096 ? stack : malloc(sizeof(int) * (size_t)c);
    if (!offsets) abort();
    for (int ch = 0; ch < c; ch++) offsets[ch] = (int)(ch * plane);
    for (int i = 0; i < images; i++) {
        const long o = i * out_image + first * plane;
        vectors_plane(input + i * in_image, 0, 1, 0, (int)plane, plane, 0, plane, c, NULL, packed + (long)first * c,
                      offsets, count, bias ? bias + first : NULL, residual ? residual + o : NULL, 0, low, high,
                      out + o);
    }
    if (offsets != stack) free(offsets);
#else
    (void)input; (void)in_image; (void)images; (void)c; (void)plane; (void)packed; (void)first; (void)count;
    (void)bias; (void)residual; (void)out_image; (void)low; (void)high; (void)out;
    abort();
#endif
}

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

void wc_conv_direct(const float *padded, int images, int c, int h, int w, const wc_window *win, int oh, int ow,
                    const float *packed, int first, int count, int first_row, int rows, const float *bias,
                    const float *residual, long image_stride, float low, float high, int vectors, float *out) {
#if defined(__x86_64__)
    const layout l = layout_of(c, w, win, oh, ow, images);
    const int k = c * win->kh * win->kw, lanes = vector_lanes();
    int *offsets = malloc(sizeof(int) * (size_t)k);
    if (!offsets) abort();
    plan_offsets(l, c, win, offsets);
    if (vectors) {
        // Any four outputs make a block: no runs to plan.
        direct_vectors(l, win, images, h, w, oh, ow, padded, k, offsets, packed, first, count, first_row, rows, bias,
                       residual, image_stride, low, high, out);
        free(offsets);
        return;
    }
    const long planned = l.flat ? (covered(l, ow, rows) + lanes - 1) / lanes
                                : (long)rows * ((covered(l, ow, images) + lanes - 1) / lanes);
    run *runs = malloc(sizeof(run) * (size_t)planned);
    if (!runs) abort();
    const int count_runs = plan_runs(l, win, ow, images, first_row, rows, image_stride, lanes, runs);
    const long plane = (long)oh * ow;
    if (lanes == 16)
        direct_avx512(padded, k, count_runs, offsets, runs, packed, first, count, bias, residual, plane, low, high, out);
    else
        direct_avx2(padded, k, count_runs, offsets, runs, packed, first, count, bias, residual, plane, low, high, out);
    free(offsets);
    free(runs);
#else
    (void)padded; (void)images; (void)c; (void)h; (void)w; (void)win; (void)oh; (void)ow; (void)packed; (void)first;
    (void)count; (void)first_row; (void)rows; (void)bias; (void)residual; (void)image_stride; (void)low; (void)high; (void)vectors; (void)out;
    abort();
#endif
}
