// Packed-weight matrix product: one microkernel written once over GCC/Clang vector types and compiled for three
// instruction sets (baseline, AVX2+FMA, AVX-512), the best chosen at run time; on AVX-512, products of 4 to 31 columns
// with the weights as vectors instead (Vectors16.c), on AVX2 products of 3, 6 or 9 columns four panels × three columns
// a block (`thirds_avx2`).
#include "Dispatch.h"
#include "Vectors16.h"
#include <stdint.h>
#include <stdlib.h>

// FEW_PANELS: up to this many panels of A, B is read in place however wide (one thread, useful GFLOP/s, best of five
// alternated runs: 16×32·32×12544 60 → 91, 24×144·144×3136 99 → 123, 32×192·192×784 110 → 140; 64 rows gained 7%).
// NARROW_GROUP: panels taken together by the narrow kernels (up to four at once) for the last columns of a narrow B;
// TAIL_GROUP: the same for a wide B's last columns, after each group's last block of B.
// KC_IN_PLACE: the columns of A (rows of B) a block of B read in place spans when B has IN_PLACE_WIDE columns or more.
// The block's rows lie a whole row of B apart, often few of L1's sets between them (3,136 floats: every 16th row on the
// same set), and the block, swept by each panel, must stay in L1 (one thread, useful GFLOP/s, best of five alternated
// runs, 256 → 48: 24×144·144×3136 63.6 → 69.8, 16×64·64×3025 66.4 → 73.3, 32×128·128×729 70.8 → 76.6, 24×144·144×784
// 69.6 → 75.1, 8×96·96×3136 67.6 → 72.9, 32×192·192×784 69.7 → 74.8; narrower, about even: 16×64·64×225 76.8 → 74.4,
// 32×192·192×196 84.1 → 85.9; 40 and 56 within a few percent of 48).
// SPREAD_PANELS: with AVX-512, up to this many panels B is read in place too where the block's rows spread over
// L1's sets (`spreads_in_l1`).
enum { MR = 8, KC = 256, KC_IN_PLACE = 48, IN_PLACE_WIDE = 512, CHUNK = 16384, FEW_PANELS = 4, SPREAD_PANELS = 12,
       NARROW_GROUP = 4, TAIL_GROUP = 8 };

// Whether `rows` rows of `width` floats from `b`, `ldb` floats apart, put at most L1_LINES_PER_SET cache lines on any
// of L1's L1_SETS sets (64-byte lines; 48 KB of 12 ways on Zen 5 and recent Intel cores, 32 KB of 8 on older ones), so
// that a block of B read in place stays in L1 while each panel of A sweeps it. With 196 columns (a 14×14 map at batch
// 1: rows 784 bytes apart) a block of 256 rows of 32 floats puts at most 11 lines on a set; with 256 or 64 columns
// (rows a multiple of 256 bytes apart) it piles 16 to 64 on a few sets, and the copy is quicker. One image's 1×1 layers with
// 5 to 12 panels on 14×14 maps, two threads (each worker 6 panels of 576 → 96) / one: 576 → 96 50 → 44.5–48 / 87 → 83
// µs (one-layer models, least of 2 s, alternated rounds). Whole models, batches alternated in one process, least /
// median µs: MobileNetV2 224 px at batch 1 1,765 / 1,858 → 1,748 / 1,843, SqueezeNet 1.1 224 px 1,456 / 1,551 →
// 1,440 / 1,544; EfficientNet-Lite0, and MobileNetV2 and SqueezeNet 1.1 at batch 64, even. Without the check (every
// product of up to 12 panels in place) MobileNetV2 64 px at batch 64 (256 and 64 columns) ran 4–6% slower.
enum { L1_SETS = 64, L1_LINES_PER_SET = 12 };
static int spreads_in_l1(const float *b, long ldb, int rows, int width) {
    unsigned char lines[L1_SETS] = {0};
    for (int r = 0; r < rows; r++) {
        const uintptr_t first = (uintptr_t)(b + (long)r * ldb) >> 6, last = (uintptr_t)(b + (long)r * ldb + width - 1) >> 6;
        for (uintptr_t line = first; line <= last; line++)
            if (++lines[line % L1_SETS] > L1_LINES_PER_SET) return 0;
    }
    return 1;
}
#ifndef PREFETCH
#define PREFETCH 1024
#endif

// The epilogue of one value: + bias, then clamped as Swift's min(max(x, low), high) does (a NaN stays NaN).
static inline float finish(float x, float bias, const wc_epilogue *e) { return wc_clamp(x + bias, e->low, e->high); }
// The epilogue of C's rows from row0 on (its bias from there).
static inline wc_epilogue epilogue_from(const wc_epilogue *e, int row0) {
    wc_epilogue rows = *e;
    if (rows.bias) rows.bias += row0;
    return rows;
}

// WHOLE_DEPTH_FLOATS, NARROW_BLOCKS: a product of up to NARROW_BLOCKS vector blocks of columns whose vector block of B
// over all k rows (k × NV·L floats) is at most WHOLE_DEPTH_FLOATS (192 KB: in L2) takes A's columns in one block
// instead of KC at a time. Inside a model A comes from memory (the other layers' weights and values have pushed it out
// of L3): in KC pieces, one panel's length apart, its reads ran ahead of the prefetchers only within each 8 KB piece;
// whole, the panels lie end to end and A streams as one run. B's block is then read from L2 rather than L1. C harness,
// one thread, AVX2, µs, KC → whole, with L3 flushed before each call (64 MB read and written) / warm: 320×1152·1152×49
// (EfficientNet-Lite0's last projection) 428 → 402 / 394 → 376, 192×1152·1152×49 273 → 244 / 238 → 228,
// 160×960·960×49 205 → 180 / 165 → 160, 112×672·672×196 340 → 326 / 318 → 309, 96×576·576×196 258 → 245 / 236 → 229,
// 1280×320·320×49 469 → 434 / 431 → 418; 80×480·480×196 even. In EfficientNet-Lite0 at batch 1 its projections had
// run 6–15% behind onnxruntime's, and 9–11% behind the same layers alone in a one-layer model (weights in L3). Whole
// models, one thread, batch 1, the sum of each node's least time over 2 alternated rounds, µs: MobileNetV2 224 px
// 8,615 → 8,418 (its 7×7 projection 371 → 336), EfficientNet-Lite0 10,905 → 10,818, SqueezeNet 1.1 224 px 7,685 →
// 7,612, ResNet-18 224 px 31,110 → 30,954; the 64 px models even (their products take other paths).
enum { WHOLE_DEPTH_FLOATS = 48 << 10, NARROW_BLOCKS = 8 };

// A block of A (its rows × KC columns) over L2_FLOATS floats does not stay in L2 (512 KB a core on AMD EPYC) while the
// blocks of B sweep it: there B's columns go CHUNK_B floats at a time (in L2), each panel of A read once per chunk.
enum { L2_FLOATS = 128 << 10, CHUNK_B = 48 << 10 };

// A buffer of at least `floats` floats for the calling thread, kept for its life (grown when asked for more).
static float *thread_buffer(size_t floats) {
    static __thread float *buffer;
    static __thread size_t size;
    if (floats > size) {
        free(buffer);
        buffer = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        if (!buffer) abort();
        size = floats;
    }
    return buffer;
}

size_t wc_packed_count(int m, int k) { return (size_t)((m + MR - 1) / MR) * MR * (size_t)k; }

void wc_pack_rows(int m, int k, const float *a, long lda, float *packed) {
    for (int p = 0; p < m; p += MR) {
        float *dst = packed + (size_t)p * k;
        int rows = m - p < MR ? m - p : MR;
        for (int kk = 0; kk < k; kk++)
            for (int r = 0; r < MR; r++) dst[(size_t)kk * MR + r] = r < rows ? a[(size_t)(p + r) * lda + kk] : 0.0f;
    }
}

// One block of C: `rows` (≤ MR) rows × NV·L columns, over kc columns of A (a: that panel's first column) and kc rows
// of B. With `accumulate`, the block adds to C's values (a later block of columns of A).
// RB: rows summed at once (MR, or MR / 2 with the panel's two halves one after the other, for a wider NV where the
// registers hold RB·NV accumulators but not MR·NV: AVX2's sixteen hold 4 × 3 vectors and the B and A operands). PART:
// `inline`, or noinline where Clang allocated the RB-row loop's registers worse inlined into its callers (AVX2, one
// thread, 5–15% slower).
#define DEFINE_BLOCK(NAME, ATTR, VEC, IVEC, L, NV, RB, PART) DEFINE_BLOCK_A(NAME, ATTR, VEC, IVEC, L, NV, RB, PART, PACKED_A, 1, NO_LOOP)
// AINDEX(ak, r): A's value in row r of the block, ak its column (packed panels, or rows of stride lda); PREFETCHING: ask
// for A PREFETCH floats ahead (one stream: packed panels only).
#define PACKED_A(ak, r) (ak)[r]
// LOOP: a kernel's k loop written by hand for one instruction set (it runs the loop and gives 1), or NO_LOOP (0: the
// C loop below runs).
#define NO_LOOP(kc, a, b, ldb, ahead, acc) 0
#define ROWS_A(ak, r) (ak)[(long)((r) < rows ? (r) : rows - 1) * lda]
// From one column of A to the next, and where row h of the panel starts, for each AINDEX.
#define PACKED_A_STEP MR
#define ROWS_A_STEP 1
#define PACKED_A_ROW(h) (h)
#define ROWS_A_ROW(h) ((long)(h) * lda)
// finish() on every lane of a block's sums, as min(max(x, low), high) does (high too when low > high), with the
// bounds' comparisons where LOW and HIGH say (constants). Both loops unrolled: see DEFINE_BLOCK_A.
#define FINISH_BLOCK(IVEC, acc, bias, RB, NV, LOW, HIGH)                                                          \
    do {                                                                                                          \
        _Pragma("clang loop unroll(full)")                                                                        \
        for (int r = 0; r < RB; r++)                                                                              \
            _Pragma("clang loop unroll(full)")                                                                    \
            for (int v = 0; v < NV; v++) {                                                                        \
                __typeof__(acc[0][0]) x = acc[r][v] + bias[r];                                                    \
                if (LOW) VEC_CLAMP_LOW(IVEC, x, low);                                                             \
                if (HIGH) VEC_CLAMP_HIGH(IVEC, x, high);                                                          \
                acc[r][v] = x;                                                                                    \
            }                                                                                                     \
    } while (0)
#define DEFINE_BLOCK_A(NAME, ATTR, VEC, IVEC, L, NV, RB, PART, AINDEX, PREFETCHING, LOOP)                         \
    /* RB rows from the panel's row h (a, c and the bias offset there). */                                        \
    ATTR static PART void NAME##_part(int kc, const float *a, long lda, const float *b, long ldb, float *c,       \
                                      long ldc, int rows, int accumulate, const wc_epilogue *e, int row0,         \
                                      long ahead) {                                                               \
        VEC acc[RB][NV];                                                                                          \
        for (int r = 0; r < RB; r++)                                                                              \
            for (int v = 0; v < NV; v++) {                                                                        \
                if (accumulate && r < rows) memcpy(&acc[r][v], c + r * ldc + v * L, sizeof(VEC));                 \
                else acc[r][v] = (VEC){0};                                                                        \
            }                                                                                                     \
        const float *ak = a, *bk = b;                                                                             \
        if (!LOOP(kc, ak, bk, ldb, ahead, acc))                                                                   \
        for (int kk = 0; kk < kc; kk++, ak += AINDEX##_STEP, bk += ldb) {                                         \
            /* A streams from memory at batch 1: ask for it PREFETCH floats ahead. */                             \
            if (PREFETCHING && RB == MR && !(kk & 1)) __builtin_prefetch(ak + PREFETCH);                          \
            /* B read in place from memory: the same row of the next block of columns, `ahead` floats on. */      \
            if (ahead) {                                                                                          \
                __builtin_prefetch(bk + ahead);                                                                   \
                __builtin_prefetch(bk + ahead + 16);                                                              \
                __builtin_prefetch(bk + ahead + NV * L - 1);                                                      \
            }                                                                                                     \
            VEC bv[NV];                                                                                           \
            for (int v = 0; v < NV; v++) memcpy(&bv[v], bk + v * L, sizeof(VEC));                                 \
            for (int r = 0; r < RB; r++) {                                                                        \
                if (RB < MR) {                                                                                    \
                    /* Every register an accumulator or an operand (AVX2: 12 + 3 + 1): B's last vector is read  */ \
                    /* again for each row, from L1, as an operand of the multiply-add. Otherwise Clang spilled */ \
                    /* an accumulator and copied the others around the loop (one thread, 40 → 78 GFLOP/s).    */  \
                    __asm__ volatile("" ::: "memory");                                                            \
                    memcpy(&bv[NV - 1], bk + (NV - 1) * L, sizeof(VEC));                                          \
                }                                                                                                 \
                for (int v = 0; v < NV; v++) acc[r][v] += bv[v] * AINDEX(ak, r);                                  \
            }                                                                                                     \
        }                                                                                                         \
        if (e) {                                                                                                  \
            /* Each row's bias and the bounds read first and both loops unrolled, so that acc stays            */ \
            /* in registers: read inside them, Clang kept all of acc on the stack, stored after the            */ \
            /* sums and loaded back (one thread, GFLOP/s, best of 5 alternated runs: 64×16·16×225              */ \
            /* 71 → 98, 16×128·128×225 106 → 131). x − 0 splats x as it is (0 + x would turn a                 */ \
            /* bound of −0 into +0).                                                                           */ \
            const VEC low = e->low - (VEC){0}, high = e->high - (VEC){0};                                         \
            float bias[RB];                                                                                       \
            for (int r = 0; r < RB; r++) bias[r] = e->bias && r < rows ? e->bias[row0 + r] : 0.0f;                \
            /* A bound of +∞ above or −∞ below leaves every value as it is: its comparisons are skipped (ReLU: */ \
            /* two of the four, on the multiply-add ports).                                                      */ \
            if (e->high == __builtin_inff()) {                                                                    \
                if (e->low == -__builtin_inff()) FINISH_BLOCK(IVEC, acc, bias, RB, NV, 0, 0);                     \
                else FINISH_BLOCK(IVEC, acc, bias, RB, NV, 1, 0);                                                 \
            } else {                                                                                              \
                FINISH_BLOCK(IVEC, acc, bias, RB, NV, 1, 1);                                                      \
            }                                                                                                     \
        }                                                                                                         \
        /* Every index into acc a constant, so that it stays in registers; a partial panel stores row by row. */  \
        if (rows >= RB)                                                                                           \
            for (int r = 0; r < RB; r++)                                                                          \
                for (int v = 0; v < NV; v++) memcpy(c + r * ldc + v * L, &acc[r][v], sizeof(VEC));                \
        else                                                                                                      \
            for (int r = 0; r < RB; r++)                                                                          \
                if (r < rows)                                                                                     \
                    for (int v = 0; v < NV; v++) memcpy(c + r * ldc + v * L, &acc[r][v], sizeof(VEC));            \
    }                                                                                                             \
    /* ahead: see NAME##_part (0: no prefetching of B); asked for by the first RB rows only. */                   \
    ATTR static inline void NAME(int kc, const float *a, long lda, const float *b, long ldb, float *c, long ldc,  \
                                 int rows, int accumulate, const wc_epilogue *e, int row0, long ahead) {          \
        for (int h = 0; h < rows; h += RB)                                                                        \
            NAME##_part(kc, a + AINDEX##_ROW(h), lda, b, ldb, c + h * ldc, ldc, rows - h, accumulate, e,          \
                        row0 + h, h ? 0 : ahead);                                                                 \
    }

// Few columns (batch 1 on maps up to 3×3): vectors run down panels' rows instead, one accumulator per column of B,
// all n columns at once (a kernel for each n, so that A streams once and every accumulator stays in a register); a
// vector PV holds PW panels' eight rows (AVX-512: two panels in one 16-lane vector, else one in 8 lanes), and with
// fewer columns more panels go together (eight vectors for one column, four for two, two for three or four), for
// enough independent sums to hide the latency of each multiply-add. A block of kc columns of A (`stride` floats a row
// of the panels) may add to C's sums (`accumulate`): a wide B's last few columns go so with each group of panels'
// blocks (below), while that group's block of A is in cache, instead of in a sweep of their own that read A again from
// L3 (one thread, C harness, µs, before → after: 1280×320·320×49 464–477 → 454–457, 48 columns 425–445;
// 512×4608·4608×49 3,100 → 2,880; MobileNetV2 224 px at batch 1, its 1×1 layers on 7×7 maps, least of ten rounds,
// 320 → 1280 502 → 457, 160 → 960 185–190 → 168, 960 → 320 369 → 353). The next panels are asked for ahead only from
// three columns: with one or two (a matrix-vector product) it was slower (1000×512·512×1 45 → 32, ·512×2 48 → 33–41;
// nine columns 115 → 120 without). Each C value is the same sum, in the same order, as in the blocks above.
#define LOAD_PANELS_1(av, first, second) memcpy(&(av), (first), sizeof(rows8))
#define LOAD_PANELS_2(av, first, second)                                                                          \
    do {                                                                                                          \
        rows8 lo_, hi_;                                                                                           \
        memcpy(&lo_, (first), sizeof lo_);                                                                        \
        memcpy(&hi_, (second), sizeof hi_);                                                                       \
        (av) = __builtin_shufflevector(lo_, hi_, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);           \
    } while (0)
#define DEFINE_NARROW(NAME, ATTR, PV, PW, NN)                                                                     \
    ATTR static void NAME(int m, int k, long stride, const float *packed, const float *b, long ldb, float *c,     \
                          long ldc, int accumulate, const wc_epilogue *e) {                                       \
        enum { PN = NN == 1 ? 8 / PW : NN == 2 ? 4 / PW : NN <= 4 ? 2 : 1, PANELS = PN * PW };                   \
        for (int p = 0; p < m; p += PANELS * MR) {                                                                \
            const float *a[PANELS];                                                                               \
            PV acc[PN][NN];                                                                                       \
            /* Panels past the last run the first again; they are not stored. */                                  \
            for (int q = 0; q < PANELS; q++) a[q] = packed + (size_t)(p + q * MR < m ? p + q * MR : p) * stride;  \
            for (int q = 0; q < PN; q++)                                                                          \
                for (int j = 0; j < NN; j++) acc[q][j] = (PV){0};                                                 \
            /* Accumulating: each sum starts from C (its rows within m). */                                      \
            for (int q = 0; accumulate && q < PN; q++)                                                            \
                for (int j = 0; j < NN; j++)                                                                      \
                    for (int l = 0; l < PW * MR && p + q * PW * MR + l < m; l++)                                  \
                        acc[q][j][l] = c[(p + q * PW * MR + l) * ldc + j];                                        \
            for (int kk = 0; kk < k; kk++) {                                                                      \
                PV av[PN];                                                                                        \
                for (int q = 0; q < PN; q++) {                                                                    \
                    if (NN > 2 && !(kk & 1))                                                                      \
                        for (int h = 0; h < PW; h++) __builtin_prefetch(a[q * PW + h] + kk * MR + PREFETCH);      \
                    LOAD_PANELS_##PW(av[q], a[q * PW] + (size_t)kk * MR, a[q * PW + PW - 1] + (size_t)kk * MR);   \
                }                                                                                                 \
                for (int j = 0; j < NN; j++)                                                                      \
                    for (int q = 0; q < PN; q++) acc[q][j] += av[q] * b[kk * ldb + j];                            \
            }                                                                                                     \
            for (int q = 0; q < PANELS; q++) {                                                                    \
                const int first = p + q * MR, rows = m - first < MR ? m - first : MR;                             \
                if (first >= m) break;                                                                            \
                for (int j = 0; j < NN; j++)                                                                      \
                    for (int r = 0; r < rows; r++) {                                                              \
                        const float x = acc[q / PW][j][(q % PW) * MR + r];                                        \
                        c[(first + r) * ldc + j] = e ? finish(x, e->bias ? e->bias[first + r] : 0.0f, e) : x;     \
                    }                                                                                             \
            }                                                                                                     \
        }                                                                                                         \
    }
#define NARROW_CASE(NAME, NN) case NN: NAME##_narrow##NN(m, k, stride, packed, b, ldb, c, ldc, accumulate, e); return;
#define DEFINE_NARROWS_TO_3(NAME, ATTR, PV, PW)                                                                   \
    DEFINE_NARROW(NAME##_narrow1, ATTR, PV, PW, 1)                                                                \
    DEFINE_NARROW(NAME##_narrow2, ATTR, PV, PW, 2)                                                                \
    DEFINE_NARROW(NAME##_narrow3, ATTR, PV, PW, 3)
#define CASES_TO_3(NAME) NARROW_CASE(NAME, 1) NARROW_CASE(NAME, 2) NARROW_CASE(NAME, 3)
#define DEFINE_NARROWS_TO_7(NAME, ATTR, PV, PW)                                                                   \
    DEFINE_NARROWS_TO_3(NAME, ATTR, PV, PW)                                                                       \
    DEFINE_NARROW(NAME##_narrow4, ATTR, PV, PW, 4)                                                                \
    DEFINE_NARROW(NAME##_narrow5, ATTR, PV, PW, 5)                                                                \
    DEFINE_NARROW(NAME##_narrow6, ATTR, PV, PW, 6)                                                                \
    DEFINE_NARROW(NAME##_narrow7, ATTR, PV, PW, 7)
#define CASES_TO_7(NAME) CASES_TO_3(NAME) NARROW_CASE(NAME, 4) NARROW_CASE(NAME, 5) NARROW_CASE(NAME, 6) NARROW_CASE(NAME, 7)
#define DEFINE_NARROWS_TO_10(NAME, ATTR, PV, PW)                                                                  \
    DEFINE_NARROWS_TO_7(NAME, ATTR, PV, PW)                                                                       \
    DEFINE_NARROW(NAME##_narrow8, ATTR, PV, PW, 8)                                                                \
    DEFINE_NARROW(NAME##_narrow9, ATTR, PV, PW, 9)                                                                \
    DEFINE_NARROW(NAME##_narrow10, ATTR, PV, PW, 10)
#define CASES_TO_10(NAME) CASES_TO_7(NAME) NARROW_CASE(NAME, 8) NARROW_CASE(NAME, 9) NARROW_CASE(NAME, 10)
// NAME_narrow for n = 1 … UPTO (NARROW_L for the variant's vector width L; expanded to a number before it is pasted).
#define DEFINE_NARROWS(NAME, ATTR, UPTO, PV, PW) DEFINE_NARROWS_UPTO(NAME, ATTR, UPTO, PV, PW)
#define DEFINE_NARROWS_UPTO(NAME, ATTR, UPTO, PV, PW)                                                             \
    DEFINE_NARROWS_TO_##UPTO(NAME, ATTR, PV, PW)                                                                  \
    ATTR static void NAME##_narrow(int m, int n, int k, long stride, const float *packed, const float *b,         \
                                   long ldb, float *c, long ldc, int accumulate, const wc_epilogue *e) {          \
        switch (n) { CASES_TO_##UPTO(NAME) }                                                                      \
    }

// The whole product. Columns past the last whole vector, if more than the narrow kernels take, are copied once,
// zero-padded to a vector, for every kk.
// A narrow B (at most four vectors wide: batch 1 on small maps) stays in cache, so each panel of A is read once, in
// memory order, over all its columns before the next. A wide B is taken in blocks of KC columns of A and NV·L of B
// copied contiguous (rows of B a power-of-two apart fall in one set of L1), with every panel of A in each, so B's
// block stays in L1 while A's block streams from L2.
// NT: where a run of columns ends NT vectors before its end (NT > NV), those columns go in one block of NT vectors
// (the registers hold NT·MR accumulators) instead of a wide block and a one-vector block at half the rate: 48 columns
// on AVX-512, a 7×7 map at batch 1.
#define DEFINE_GEMM(NAME, ATTR, VEC, IVEC, L, NV, RB, PART, PV, PW, NT, WIDE_LOOP)                                \
    DEFINE_NARROWS(NAME, ATTR, NARROW_##L, PV, PW)                                                                \
    DEFINE_BLOCK_A(NAME##_wide, ATTR, VEC, IVEC, L, NV, RB, PART, PACKED_A, 1, WIDE_LOOP)                         \
    DEFINE_BLOCK(NAME##_one, ATTR, VEC, IVEC, L, 1, MR, inline)                                                   \
    DEFINE_BLOCK(NAME##_last, ATTR, VEC, IVEC, L, NT, MR, inline)                                                 \
    DEFINE_BLOCK(NAME##_two, ATTR, VEC, IVEC, L, 2, RB, PART)                                                     \
    /* The columns the next block takes when `left` remain (a multiple of L): NT vectors if exactly that many   */ \
    /* remain, else NV vectors while they last, then two where NV > 2, then one. Two (AVX2: 16 columns, 4 × 2    */ \
    /* accumulators, 6 loads per 8 multiply-adds against 9 in the one-vector block): one thread, GFLOP/s,       */ \
    /* 576×96·96×16 (a 1×1 layer on a 4×4 map, one image) 28–30 → 36–53, 576×96·96×64 42–52 → 54–81;           */ \
    /* MobileNetV2 64 px at batch 64, two threads, its 96 → 576 1×1 layers on 4×4 maps 1.9 → 0.92 ms.           */ \
    static inline int NAME##_width(int left) {                                                                    \
        return NT > NV && left == NT * L ? NT * L : left >= NV * L ? NV * L : NV > 2 && left >= 2 * L ? 2 * L : L; \
    }                                                                                                             \
    /* kc rows of `width` columns of B (a width NAME##_width gives) one after another at dst; each width's copy */ \
    /* a constant size, so a few vector moves: a call to memmove per row took 7% of a 3×3 layer's time (perf);  */ \
    /* SqueezeNet 64 px at batch 64, two threads, its 3×3 and classifier layers 23.4 → 18.2 ms (min of 4).       */ \
    ATTR static inline void NAME##_copy(int kc, const float *b, long ldb, int width, float *dst) {                \
        if (width == NV * L)                                                                                      \
            for (int kk = 0; kk < kc; kk++) memcpy(dst + kk * NV * L, b + kk * ldb, sizeof(float) * NV * L);     \
        else if (width == L)                                                                                      \
            for (int kk = 0; kk < kc; kk++) memcpy(dst + kk * L, b + kk * ldb, sizeof(float) * L);               \
        else if (NV > 2 && width == 2 * L)                                                                        \
            for (int kk = 0; kk < kc; kk++) memcpy(dst + kk * 2 * L, b + kk * ldb, sizeof(float) * 2 * L);       \
        else                                                                                                      \
            for (int kk = 0; kk < kc; kk++) memcpy(dst + kk * NT * L, b + kk * ldb, sizeof(float) * NT * L);     \
    }                                                                                                             \
    ATTR static inline void NAME##_block(int width, int kc, const float *a, const float *b, long ldb, float *c,    \
                                         long ldc, int rows, int accumulate, const wc_epilogue *e, int row0,      \
                                         long ahead) {                                                            \
        if (NT > NV && width == NT * L) NAME##_last(kc, a, 0, b, ldb, c, ldc, rows, accumulate, e, row0, ahead);  \
        else if (width == NV * L) NAME##_wide(kc, a, 0, b, ldb, c, ldc, rows, accumulate, e, row0, ahead);        \
        else if (NV > 2 && width == 2 * L) NAME##_two(kc, a, 0, b, ldb, c, ldc, rows, accumulate, e, row0, ahead); \
        else NAME##_one(kc, a, 0, b, ldb, c, ldc, rows, accumulate, e, row0, ahead);                              \
    }                                                                                                             \
    ATTR static void NAME##_tail(int m, int k, int kb, int kc, const float *packed, const float *tailB, int tail, \
                                 float *c, long ldc, int p, const wc_epilogue *e) {                               \
        float tailC[MR * L];                                                                                      \
        int rows = m - p < MR ? m - p : MR;                                                                       \
        if (kb > 0)                                                                                               \
            for (int r = 0; r < rows; r++) memcpy(tailC + r * L, c + (p + r) * ldc, sizeof(float) * tail);        \
        NAME##_one(kc, packed + (size_t)p * k + (size_t)kb * MR, 0, tailB + (size_t)kb * L, L, tailC, L, rows,    \
                   kb > 0, kb + kc == k ? e : NULL, p, 0);                                                        \
        for (int r = 0; r < rows; r++) memcpy(c + (p + r) * ldc, tailC + r * L, sizeof(float) * tail);            \
    }                                                                                                             \
    /* Columns [n0, n1) of B read in place against one panel (rows p…) over kc columns of A from kb: NV·L at a    */ \
    /* time, then L at a time.                                                                                   */ \
    ATTR static inline void NAME##_in_place(int m, int k, int kb, int kc, const float *packed, const float *b,     \
                                            long ldb, float *c, long ldc, int p, int n0, int n1,                  \
                                            const wc_epilogue *e, long ahead) {                                   \
        const float *a = packed + (size_t)p * k + (size_t)kb * MR;                                                \
        const int rows = m - p < MR ? m - p : MR;                                                                 \
        const wc_epilogue *last = kb + kc == k ? e : NULL;                                                        \
        for (int width; n0 < n1; n0 += width) {                                                                   \
            width = NAME##_width(n1 - n0);                                                                        \
            NAME##_block(width, kc, a, b + kb * ldb + n0, ldb, c + p * ldc + n0, ldc, rows, kb > 0, last, p, ahead); \
        }                                                                                                         \
    }                                                                                                             \
    ATTR static void NAME(int m, int n, int k, const float *packed, const float *b, long ldb, float *c, long ldc, \
                          const wc_epilogue *e) {                                                                 \
        /* Few columns: down the panel's rows (a zero-padded vector block would leave L − n of each vector's   */ \
        /* lanes idle: 7 of 16 on a 3×3 map).                                                                    */ \
        if (n <= NARROW_##L) { NAME##_narrow(m, n, k, k, packed, b, ldb, c, ldc, 0, e); return; }                 \
        int whole = n / L * L, tail = n - whole;                                                                  \
        /* A few columns past the last whole vector (one on 7×7, 15×15 and 31×31 maps at batch 1): down the      */ \
        /* rows too, not in a zero-padded vector (15 of its 16 lanes idle, and a copy of those columns of B).    */ \
        /* They go with each group of panels while those are in cache (below); with few panels in a sweep of     */ \
        /* their own over A, which is small.                                                                     */ \
        int narrowTail = 0;                                                                                       \
        if (tail && tail <= NARROW_##L) {                                                                         \
            narrowTail = tail;                                                                                    \
            tail = 0;                                                                                             \
        }                                                                                                         \
        float *tailB = tail ? malloc(sizeof(float) * L * (size_t)k) : NULL;                                       \
        if (tail && !tailB) abort();                                                                              \
        for (int kk = 0; tail && kk < k; kk++) {                                                                  \
            memcpy(tailB + (size_t)kk * L, b + kk * ldb + whole, sizeof(float) * tail);                           \
            memset(tailB + (size_t)kk * L + tail, 0, sizeof(float) * (L - tail));                                 \
        }                                                                                                         \
        const int inPlaceSpan = n >= IN_PLACE_WIDE ? KC_IN_PLACE : KC;                                            \
        if (n > 4 * L && (m <= FEW_PANELS * MR ? (L < 16 ? ldb % 1024 != 0 : 1)                                 \
                          : L == 16 && m <= SPREAD_PANELS * MR && spreads_in_l1(b, ldb, k < inPlaceSpan ? k : inPlaceSpan, NV * L))) { \
            /* Few panels of A (a 1×1 layer into few channels; up to SPREAD_PANELS where B's rows spread over L1): */ \
            /* B read in place, each block of its columns swept by every panel while it is in L1 — a copy of B     */ \
            /* would cost more than the few products that reuse it.                                                */ \
            /* Not on AVX2 when B's rows are a multiple of 4 KB apart: they then share L1's sets, and the block,    */ \
            /* read twice per panel there, does not stay (one thread, 24×1024·1024×96 40 → 69 GFLOP/s copied,      */ \
            /* 16×4096·4096×32 29 → 59; OpenBLAS 71–74 and 56–60).                                                  */ \
            for (int kb = 0; kb < k; kb += inPlaceSpan) {                                                         \
                const int kc = k - kb < inPlaceSpan ? k - kb : inPlaceSpan;                                       \
                for (int n0 = 0, n1; n0 < whole; n0 = n1) {                                                       \
                    n1 = n0 + NAME##_width(whole - n0);                                                           \
                    for (int p = 0; p < m; p += MR)                                                               \
                        NAME##_in_place(m, k, kb, kc, packed, b, ldb, c, ldc, p, n0, n1, e,                       \
                                        p == 0 && n1 < whole ? n1 - n0 : 0);                                      \
                }                                                                                                 \
                for (int p = 0; tail && p < m; p += MR) NAME##_tail(m, k, kb, kc, packed, tailB, tail, c + whole, ldc, p, e); \
            }                                                                                                     \
            if (narrowTail) NAME##_narrow(m, narrowTail, k, k, packed, b + whole, ldb, c + whole, ldc, 0, e);     \
            free(tailB);                                                                                          \
            return;                                                                                               \
        }                                                                                                         \
        if (n <= 4 * L) {                                                                                         \
            /* A is read once: on 7×7 maps at batch 1 (MobileNetV2's last layers, 1.6 MB of weights for 320 →    */ \
            /* 1280 channels) a sweep of its own for the last column read it from memory a second time.          */ \
            for (int p0 = 0; p0 < m; p0 += NARROW_GROUP * MR) {                                                   \
                const int p1 = m - p0 < NARROW_GROUP * MR ? m : p0 + NARROW_GROUP * MR;                           \
                for (int p = p0; p < p1; p += MR)                                                                 \
                    for (int kb = 0; kb < k; kb += KC) {                                                          \
                        const int kc = k - kb < KC ? k - kb : KC;                                                 \
                        NAME##_in_place(m, k, kb, kc, packed, b, ldb, c, ldc, p, 0, whole, e, 0);                 \
                        if (tail) NAME##_tail(m, k, kb, kc, packed, tailB, tail, c + whole, ldc, p, e);           \
                    }                                                                                             \
                if (narrowTail) {                                                                                 \
                    const wc_epilogue group = e ? epilogue_from(e, p0) : (wc_epilogue){0};                        \
                    NAME##_narrow(p1 - p0, narrowTail, k, k, packed + (size_t)p0 * k, b + whole, ldb,             \
                                  c + (long)p0 * ldc + whole, ldc, 0, e ? &group : NULL);                         \
                }                                                                                                 \
            }                                                                                                     \
            free(tailB);                                                                                          \
            return;                                                                                               \
        }                                                                                                         \
        /* B is copied contiguous a block of columns at a time, then every panel of A sweeps the block. With a    */ \
        /* shallow A (kc ≤ 64: 1×1 convolutions on large maps, bound by writing C) the block spans up to 64 KiB,  */ \
        /* so each row of C is written in long runs instead of 32-column pieces on as many pages as C has rows;   */ \
        /* deeper, one vector block (kc × NV·L), which stays in L1 while A streams from L2. Where A's block does  */ \
        /* not fit in L2 (L2_FLOATS) and B has three blocks or more, B goes CHUNK_B floats at a time instead, so   */ \
        /* each panel of A is read from L3 once per chunk, not once per block: two threads, least of 3 rounds,     */ \
        /* SqueezeNet 1.1 224 px's 512 → 1000 classifier on 13×13 at batch 64 73.1 → 66.1 ms, at batch 1 1,173 → */ \
        /* 1,027 µs; MobileNetV2 64 px at batch 64 its 320 → 1280 layer on 2×2 maps 1,779 → 1,588 µs. With two   */ \
        /* blocks (ResNet-18's layer 4 at batch 1, 7×7) it was slower (1,419 → 1,510 µs).                         */ \
        /* A's columns KC at a time, or all in one block where B has few columns (WHOLE_DEPTH_FLOATS).           */ \
        const int depth = whole <= NARROW_BLOCKS * NV * L && (long)k * NV * L <= WHOLE_DEPTH_FLOATS ? k : KC;      \
        float blockB[CHUNK];                                                                                      \
        for (int kb = 0; kb < k; kb += depth) {                                                                   \
            int kc = k - kb < depth ? k - kb : depth, accumulate = kb > 0;                                        \
            const wc_epilogue *last = kb + kc == k ? e : NULL;                                                    \
            int span = kc <= 64 ? CHUNK / kc / (NV * L) * (NV * L) : NV * L;                                      \
            if (kc > 64 && (long)m * kc > L2_FLOATS && whole >= 3 * NV * L) {                                     \
                span = CHUNK_B / kc / (NV * L) * (NV * L);                                                        \
                if (span < NV * L) span = NV * L;                                                                 \
            }                                                                                                     \
            /* A chunk is span columns, or the last NT·L where those are more (AVX-512: 48 against 32).         */ \
            const int widest = span > NT * L ? span : NT * L;                                                     \
            float *chunkB = widest * kc > CHUNK ? thread_buffer((size_t)widest * kc) : blockB;                    \
            for (int nc = 0, end; nc < whole; nc = end) {                                                         \
                end = whole - nc <= span || NAME##_width(whole - nc) > span ? whole : nc + span;                  \
                float *dst = chunkB;                                                                              \
                for (int n0 = nc, step; n0 < end; n0 += step) {                                                   \
                    step = NAME##_width(end - n0);                                                                \
                    NAME##_copy(kc, b + kb * ldb + n0, ldb, step, dst);                                           \
                    dst += kc * step;                                                                             \
                }                                                                                                 \
                for (int p = 0; p < m; p += MR) {                                                                 \
                    int rows = m - p < MR ? m - p : MR;                                                           \
                    const float *a = packed + (size_t)p * k + (size_t)kb * MR, *src = chunkB;                     \
                    for (int n0 = nc, width; n0 < end; n0 += width) {                                             \
                        width = NAME##_width(end - n0);                                                           \
                        NAME##_block(width, kc, a, src, width, c + p * ldc + n0, ldc, rows, accumulate, last, p, 0); \
                        src += kc * width;                                                                        \
                    }                                                                                             \
                    /* The narrow tail of each TAIL_GROUP panels after the last chunk, their block of A in cache. */  \
                    if (narrowTail && end == whole && (p + MR >= m || (p / MR + 1) % TAIL_GROUP == 0)) {           \
                        const int p0 = p / (TAIL_GROUP * MR) * (TAIL_GROUP * MR), p1 = p + MR < m ? p + MR : m;     \
                        const wc_epilogue group = last ? epilogue_from(last, p0) : (wc_epilogue){0};              \
                        NAME##_narrow(p1 - p0, narrowTail, kc, k, packed + (size_t)p0 * k + (size_t)kb * MR,      \
                                      b + kb * ldb + whole, ldb, c + (long)p0 * ldc + whole, ldc, accumulate,     \
                                      last ? &group : NULL);                                                      \
                    }                                                                                             \
                }                                                                                                 \
            }                                                                                                     \
            for (int p = 0; tail && p < m; p += MR) NAME##_tail(m, k, kb, kc, packed, tailB, tail, c + whole, ldc, p, e); \
        }                                                                                                         \
        free(tailB);                                                                                              \
    }                                                                                                             \
    DEFINE_BLOCK_A(NAME##_rwide, ATTR, VEC, IVEC, L, NV, RB, PART, ROWS_A, 0, NO_LOOP)                            \
    DEFINE_BLOCK_A(NAME##_rone, ATTR, VEC, IVEC, L, 1, MR, inline, ROWS_A, 0, NO_LOOP)                            \
    /* A as it stands (rows of stride lda): for each panel of eight rows and each block of KC columns of A, that */ \
    /* piece of A stays in L1 while B's columns sweep it, B read in place (from L2) and its last partial vector */ \
    /* from a zero-padded copy. */                                                                                \
    ATTR static void NAME##_rows(int m, int n, int k, const float *a, long lda, const float *b, long ldb, float *c, \
                                 long ldc, const wc_epilogue *e) {                                                \
        int whole = n / L * L, tail = n - whole;                                                                  \
        float *tailB = tail ? malloc(sizeof(float) * L * (size_t)k) : NULL, tailC[MR * L];                        \
        if (tail && !tailB) abort();                                                                              \
        for (int kk = 0; tail && kk < k; kk++) {                                                                  \
            memcpy(tailB + (size_t)kk * L, b + kk * ldb + whole, sizeof(float) * tail);                           \
            memset(tailB + (size_t)kk * L + tail, 0, sizeof(float) * (L - tail));                                 \
        }                                                                                                         \
        for (int p = 0; p < m; p += MR) {                                                                         \
            int rows = m - p < MR ? m - p : MR;                                                                   \
            for (int kb = 0; kb < k; kb += KC) {                                                                  \
                int kc = k - kb < KC ? k - kb : KC;                                                               \
                const wc_epilogue *last = kb + kc == k ? e : NULL;                                                \
                const float *ap = a + (size_t)p * lda + kb;                                                       \
                int n0 = 0;                                                                                       \
                for (; n0 + NV * L <= whole; n0 += NV * L)                                                        \
                    NAME##_rwide(kc, ap, lda, b + kb * ldb + n0, ldb, c + p * ldc + n0, ldc, rows, kb > 0, last, p, 0); \
                for (; n0 < whole; n0 += L)                                                                       \
                    NAME##_rone(kc, ap, lda, b + kb * ldb + n0, ldb, c + p * ldc + n0, ldc, rows, kb > 0, last, p, 0); \
                if (tail) {                                                                                       \
                    for (int r = 0; kb > 0 && r < rows; r++)                                                      \
                        memcpy(tailC + r * L, c + (p + r) * ldc + whole, sizeof(float) * tail);                   \
                    NAME##_rone(kc, ap, lda, tailB + (size_t)kb * L, L, tailC, L, rows, kb > 0, last, p, 0);      \
                    for (int r = 0; r < rows; r++) memcpy(c + (p + r) * ldc + whole, tailC + r * L, sizeof(float) * tail); \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
        free(tailB);                                                                                              \
    }

// The most columns taken down the rows, for each vector width L: up to L − 1 on the baseline, 10 with AVX2 and AVX-512.
// AVX-512: with 12 or 15 columns one zero-padded 16-lane block measured faster (69 and 80 against 56 and 63 GFLOP/s on
// one thread: the narrow kernel's broadcasts of B saturate the load ports); with 9, slower (56–61 against 75). AVX2
// (Zen 3, three loads a cycle): 9 and 10 columns (batch 1 on 3×3 maps) down the rows instead of an 8-column block and
// a one-column sweep, one thread, GFLOP/s, two alternated runs, 1000×512·512×9 39/26 → 56/51, 256×576·576×9 36/27 →
// 76/51, 192×432·432×9 43/28 → 76/50, 1000×512·512×10 48/31 → 74/48.
#define NARROW_4 3
#define NARROW_8 10
#define NARROW_16 10
typedef float vec4 __attribute__((vector_size(16)));
typedef int ivec4 __attribute__((vector_size(16)));
typedef float rows8 __attribute__((vector_size(32)));
DEFINE_GEMM(gemm_generic, , vec4, ivec4, 4, 1, MR, inline, rows8, 1, 1, NO_LOOP)

#if defined(__x86_64__)
typedef float vec8 __attribute__((vector_size(32)));
typedef float vec16 __attribute__((vector_size(64)));
typedef int ivec8 __attribute__((vector_size(32)));
typedef int ivec16 __attribute__((vector_size(64)));
// AVX2's wide block (4 rows × 3 vectors) summed over kc columns of A in assembly: twelve accumulators, B's three
// vectors and A's broadcast take all sixteen registers, each B vector loaded once per column of A. Clang's loop, given
// the same, spilled an accumulator (hence the reload of B's last vector in the C loop: 10 loads per 12 multiply-adds
// instead of 7).
#define FMA_ROW(r, off)                                                                                           \
    "vbroadcastss " #off "(%[a]), %%ymm15\n\t"                                                                    \
    "vfmadd231ps %%ymm12, %%ymm15, %[c" #r "0]\n\t"                                                               \
    "vfmadd231ps %%ymm13, %%ymm15, %[c" #r "1]\n\t"                                                               \
    "vfmadd231ps %%ymm14, %%ymm15, %[c" #r "2]\n\t"
#define WIDE_STEP                                                                                                 \
    "vmovups (%[b]), %%ymm12\n\t"                                                                                 \
    "vmovups 32(%[b]), %%ymm13\n\t"                                                                               \
    "vmovups 64(%[b]), %%ymm14\n\t"                                                                               \
    FMA_ROW(0, 0) FMA_ROW(1, 4) FMA_ROW(2, 8) FMA_ROW(3, 12)                                                      \
    "add $32, %[a]\n\t"                                                                                           \
    "add %[step], %[b]\n\t"                                                                                       \
    "dec %[k]\n\t"
#define WIDE_OPERANDS                                                                                             \
    [c00] "+x"(c00), [c01] "+x"(c01), [c02] "+x"(c02), [c10] "+x"(c10), [c11] "+x"(c11), [c12] "+x"(c12),         \
    [c20] "+x"(c20), [c21] "+x"(c21), [c22] "+x"(c22), [c30] "+x"(c30), [c31] "+x"(c31), [c32] "+x"(c32),         \
    [a] "+r"(a), [b] "+r"(b), [k] "+r"(k)
__attribute__((target("avx2,fma"), always_inline)) static inline void avx2_wide_loop(int kc, const float *a,
        const float *b, long ldb, long ahead, vec8 acc[4][3]) {
    if (kc <= 0) return;
    vec8 c00 = acc[0][0], c01 = acc[0][1], c02 = acc[0][2], c10 = acc[1][0], c11 = acc[1][1], c12 = acc[1][2];
    vec8 c20 = acc[2][0], c21 = acc[2][1], c22 = acc[2][2], c30 = acc[3][0], c31 = acc[3][1], c32 = acc[3][2];
    long k = kc, step = ldb * (long)sizeof(float), far = ahead * (long)sizeof(float);
    if (ahead) {
        // B read in place: the same row of the next block of columns asked for, as in the C loop.
        __asm__("1:\n\t"
                "prefetcht0 (%[b], %[far])\n\t"
                "prefetcht0 64(%[b], %[far])\n\t"
                "prefetcht0 92(%[b], %[far])\n\t"
                WIDE_STEP
                "jnz 1b\n\t"
                : WIDE_OPERANDS
                : [step] "r"(step), [far] "r"(far)
                : "ymm12", "ymm13", "ymm14", "ymm15", "cc", "memory");
    } else {
        __asm__("1:\n\t"
                WIDE_STEP
                "jnz 1b\n\t"
                : WIDE_OPERANDS
                : [step] "r"(step)
                : "ymm12", "ymm13", "ymm14", "ymm15", "cc", "memory");
    }
    acc[0][0] = c00; acc[0][1] = c01; acc[0][2] = c02; acc[1][0] = c10; acc[1][1] = c11; acc[1][2] = c12;
    acc[2][0] = c20; acc[2][1] = c21; acc[2][2] = c22; acc[3][0] = c30; acc[3][1] = c31; acc[3][2] = c32;
}
#define AVX2_WIDE_LOOP(kc, a, b, ldb, ahead, acc) (avx2_wide_loop(kc, a, b, ldb, ahead, acc), 1)
DEFINE_GEMM(gemm_avx2, __attribute__((target("avx2,fma"))), vec8, ivec8, 8, 3, 4, __attribute__((noinline)), rows8, 1, 1,
            AVX2_WIDE_LOOP)
DEFINE_GEMM(gemm_avx512, __attribute__((target("avx512f,fma"))), vec16, ivec16, 16, 2, MR, inline, vec16, 2, 3, NO_LOOP)

// AVX2, three, six or nine columns (batch 1 on 3×3 maps: SqueezeNet 1.1 64 px's classifier and its later 3×3 and 1×1
// layers): four panels (32 rows) × three columns a block, as onnxruntime's NCHWc kernel blocks them, twelve sums, four
// loads of A and three broadcasts of B for twelve multiply-adds (the narrow kernel: one load of A and nine broadcasts for
// nine). Each group of four panels goes THIRDS_KC columns of A at a time (16 KB of it, in L1 for the second and third
// columns' blocks), each block's sums kept in `sums` between them. The same sums, in the same order, as the narrow
// kernel's. C harness, one thread, A from L3, µs, narrow → here: 192×432·432×9 17.8–18.3 → 16.2–16.7, 64×512·512×9
// 7.2 → 6.5, 256×576·576×9 32.0 → 29.9, 1000×512·512×9 117–122 → 114–121 (bound by reading A from L3). Returns the
// rows done (a multiple of 32); the rest go to the narrow kernel.
enum { THIRDS_KC = 128 };
__attribute__((target("avx2,fma"))) static int thirds_avx2(int m, int n, int k, const float *packed, const float *b,
                                                            long ldb, float *c, long ldc, const wc_epilogue *e) {
    if (n % 3 || n > 9 || m < 4 * MR) return 0;
    const int groups = n / 3, done = m / (4 * MR) * (4 * MR);
    vec8 sums[3][4][3];
    for (int p = 0; p < done; p += 4 * MR) {
        const float *a0 = packed + (size_t)p * k;
        for (int k0 = 0; k0 < k; k0 += THIRDS_KC) {
            const int k1 = k - k0 < THIRDS_KC ? k : k0 + THIRDS_KC;
            for (int g = 0; g < groups; g++) {
                vec8 s[4][3];
                for (int q = 0; q < 4; q++)
                    for (int j = 0; j < 3; j++) s[q][j] = k0 ? sums[g][q][j] : (vec8){0};
                const float *bg = b + 3 * g;
                for (int kk = k0; kk < k1; kk++) {
                    const float *bk = bg + kk * ldb;
                    const vec8 x0 = _mm256_broadcast_ss(bk), x1 = _mm256_broadcast_ss(bk + 1),
                               x2 = _mm256_broadcast_ss(bk + 2);
                    for (int q = 0; q < 4; q++) {
                        const vec8 w = _mm256_loadu_ps(a0 + ((size_t)q * k + kk) * MR);
                        s[q][0] = _mm256_fmadd_ps(w, x0, s[q][0]);
                        s[q][1] = _mm256_fmadd_ps(w, x1, s[q][1]);
                        s[q][2] = _mm256_fmadd_ps(w, x2, s[q][2]);
                    }
                }
                for (int q = 0; q < 4; q++)
                    for (int j = 0; j < 3; j++) sums[g][q][j] = s[q][j];
            }
        }
        for (int g = 0; g < groups; g++)
            for (int q = 0; q < 4; q++)
                for (int j = 0; j < 3; j++) {
                    float *to = c + (long)(p + q * MR) * ldc + 3 * g + j;
                    if (!e)
                        for (int r = 0; r < MR; r++) to[r * ldc] = sums[g][q][j][r];
                    else
                        for (int r = 0; r < MR; r++)
                            to[r * ldc] = finish(sums[g][q][j][r], e->bias ? e->bias[p + q * MR + r] : 0.0f, e);
                }
    }
    return done;
}
#endif

int wc_kernels_supported(int isa) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (isa == WC_ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == WC_ISA_AVX512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
    return isa == WC_ISA_GENERIC;
}

const char *wc_kernels_name(int isa) {
    return isa == WC_ISA_AVX512 ? "avx512" : isa == WC_ISA_AVX2 ? "avx2" : "generic";
}

static int chooseISA(void) {
    const char *forced = getenv("WEIGHTCLUSTER_KERNELS");
    if (forced)
        for (int isa = WC_ISA_GENERIC; isa <= WC_ISA_AVX512; isa++)
            if (strcmp(forced, wc_kernels_name(isa)) == 0 && wc_kernels_supported(isa)) return isa;
    for (int isa = WC_ISA_AVX512; isa > WC_ISA_GENERIC; isa--)
        if (wc_kernels_supported(isa)) return isa;
    return WC_ISA_GENERIC;
}

int wc_kernels_isa(void) {
    // Chosen once; a race between first callers only computes the same value twice.
    static volatile int chosen = -1;
    if (chosen < 0) chosen = chooseISA();
    return chosen;
}

// Nothing to multiply: no C at all, or k = 0 (each value the epilogue of 0). Returns whether C is done.
static int trivial(int m, int n, int k, float *c, long ldc, const wc_epilogue *e) {
    if (m <= 0 || n <= 0) return 1;
    if (k > 0) return 0;
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) c[r * ldc + j] = e ? finish(0.0f, e->bias ? e->bias[r] : 0.0f, e) : 0.0f;
    return 1;
}

static void packed_product(int isa, int vectors, int m, int n, int k, const float *packed, const float *b, long ldb,
                           float *c, long ldc, const wc_epilogue *e) {
    if (trivial(m, n, k, c, ldc, e)) return;
#if defined(__x86_64__)
    if (isa == WC_ISA_AVX512 && vectors) wc_vectors16_product(m, n, k, packed, b, ldb, c, ldc, e);
    else if (isa == WC_ISA_AVX512) gemm_avx512(m, n, k, packed, b, ldb, c, ldc, e);
    else if (isa == WC_ISA_AVX2) {
        const int done = thirds_avx2(m, n, k, packed, b, ldb, c, ldc, e);
        if (done == m) return;
        wc_epilogue rest = e ? *e : (wc_epilogue){0};
        if (e && e->bias) rest.bias = e->bias + done;
        gemm_avx2(m - done, n, k, packed + (size_t)done * k, b, ldb, c + (long)done * ldc, ldc, e ? &rest : NULL);
    }
    else
#endif
    gemm_generic(m, n, k, packed, b, ldb, c, ldc, e);
}

void wc_gemm_packed_isa(int isa, int m, int n, int k, const float *packed, const float *b, long ldb, float *c, long ldc,
                        const wc_epilogue *e) {
    packed_product(isa, wc_gemm_vectors(m, n, k), m, n, k, packed, b, ldb, c, ldc, e);
}

void wc_gemm_packed(int m, int n, int k, const float *packed, const float *b, long ldb, float *c, long ldc,
                    const wc_epilogue *e) {
    wc_gemm_packed_isa(wc_kernels_isa(), m, n, k, packed, b, ldb, c, ldc, e);
}

void wc_gemm_packed_per_point(int m, int n, int k, const float *packed, const float *b, long ldb, float *c, long ldc,
                              const wc_epilogue *e) {
    packed_product(wc_kernels_isa(), n != 16 && wc_gemm_vectors(m, n, k), m, n, k, packed, b, ldb, c, ldc, e);
}

void wc_gemm_rows_isa(int isa, int m, int n, int k, const float *a, long lda, const float *b, long ldb, float *c,
                      long ldc, const wc_epilogue *e) {
    if (trivial(m, n, k, c, ldc, e)) return;
#if defined(__x86_64__)
    if (isa == WC_ISA_AVX512) gemm_avx512_rows(m, n, k, a, lda, b, ldb, c, ldc, e);
    else if (isa == WC_ISA_AVX2) gemm_avx2_rows(m, n, k, a, lda, b, ldb, c, ldc, e);
    else
#endif
    gemm_generic_rows(m, n, k, a, lda, b, ldb, c, ldc, e);
}

void wc_gemm_rows(int m, int n, int k, const float *a, long lda, const float *b, long ldb, float *c, long ldc,
                  const wc_epilogue *e) {
    wc_gemm_rows_isa(wc_kernels_isa(), m, n, k, a, lda, b, ldb, c, ldc, e);
}

void wc_transpose(int rows, int cols, const float *src, long lds, float *dst, long ldd) {
    // 8×8 tiles: both sides touch eight lines at a time.
    for (int i0 = 0; i0 < rows; i0 += 8)
        for (int j0 = 0; j0 < cols; j0 += 8) {
            const int i1 = rows - i0 < 8 ? rows : i0 + 8, j1 = cols - j0 < 8 ? cols : j0 + 8;
            for (int j = j0; j < j1; j++)
                for (int i = i0; i < i1; i++) dst[(long)j * ldd + i] = src[(long)i * lds + j];
        }
}
