// The weights as vectors (AVX-512), for products with few columns and convolutions on small maps (one image's 4, 9 or
// 49 outputs), where the kernels whose vectors run along the outputs leave lanes idle (9 outputs: 9 of 16). A block of
// J outputs × NP vectors of sixteen output channels: for each kk (a row of B, or an input channel and tap), vector p is
// the eight weights of panel 2p and the eight of panel 2p + 1 of the wc_pack_rows form (one vector of eight where a
// group of channels ends within a panel), and output j's input is broadcast to all lanes. The sums go to row j of a
// tile (TILE16 outputs × WIDE16 channels), which `store_tile16` turns sixteen by sixteen into the outputs: each value
// the same sum, in the same order, with the same epilogue, as the packed product gives, so the same bits. J = 9 or 8 ×
// NP ≤ 3 down to J = 4 × NP ≤ 6: 27 sums at most, the weight vectors and the broadcast in the 32 registers.
#include "Vectors16.h"
#include "Transpose.h"
#include <math.h>
#include <stdlib.h>

#if defined(__x86_64__)
// PANEL16: rows of a panel of the packed form (MR in PackedGEMM.c). AHEAD16: how many kk ahead a block that reads a
// group's weights first asks for them (with the group's first AHEAD16 asked for before its first block): from memory,
// the twelve half-panel streams waited on each line (C harness, one thread, 1000 × 512 by 9 from memory, µs, the
// packed product / here without / with: 84 / 88 / 71; 256 × 256 by 4 9.3 / 8.8 / 7.0).
enum { TILE16 = 16, WIDE16 = 96, PANEL16 = 8, AHEAD16 = 32 };

// NEXT: output 0's input for kk, from x and either ldx (a row of B each) or offsets (a bordered copy's).
#define DEFINE_SUMS16(NAME, J, NP, NEXT)                                                                          \
    __attribute__((target("avx512f"), noinline)) static void NAME(                                                \
        long k, const float *a, long panel, const float *x, long ldx, const int *offsets, float *acc,             \
        const float *ahead) {                                                                                     \
        (void)ldx; (void)offsets;                                                                                 \
        __m512 s[J][NP];                                                                                          \
        _Pragma("clang loop unroll(full)") for (int j = 0; j < J; j++)                                            \
            _Pragma("clang loop unroll(full)") for (int p = 0; p < NP; p++) s[j][p] = _mm512_setzero_ps();        \
        for (long kk = 0; kk < k; kk++, a += PANEL16) {                                                           \
            const float *xk = NEXT;                                                                               \
            __m512 w[NP];                                                                                         \
            if (ahead && (kk & 1) == 0 && kk + AHEAD16 < k)                                                       \
                _Pragma("clang loop unroll(full)") for (int p = 0; p < 2 * NP; p++)                               \
                    _mm_prefetch((const char *)(a + p * panel + AHEAD16 * PANEL16), _MM_HINT_T0);                 \
            _Pragma("clang loop unroll(full)") for (int p = 0; p < NP; p++)                                       \
                w[p] = _mm512_castpd_ps(_mm512_insertf64x4(                                                       \
                    _mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(a + 2 * p * panel))),                 \
                    _mm256_castps_pd(_mm256_loadu_ps(a + (2 * p + 1) * panel)), 1));                              \
            _Pragma("clang loop unroll(full)") for (int j = 0; j < J; j++) {                                      \
                const __m512 v = _mm512_set1_ps(xk[j]);                                                           \
                _Pragma("clang loop unroll(full)") for (int p = 0; p < NP; p++)                                   \
                    s[j][p] = _mm512_fmadd_ps(v, w[p], s[j][p]);                                                  \
            }                                                                                                     \
        }                                                                                                         \
        _Pragma("clang loop unroll(full)") for (int j = 0; j < J; j++)                                            \
            _Pragma("clang loop unroll(full)") for (int p = 0; p < NP; p++)                                       \
                _mm512_storeu_ps(acc + j * WIDE16 + p * 16, s[j][p]);                                             \
    }
#define ROWS (x + kk * ldx)
#define AT (x + offsets[kk])
#define DEFINE_SUMS16_BOTH(J, NP)                                                                                 \
    DEFINE_SUMS16(sums16_##J##x##NP, J, NP, ROWS)                                                                 \
    DEFINE_SUMS16(sums16_at_##J##x##NP, J, NP, AT)
DEFINE_SUMS16_BOTH(9, 1) DEFINE_SUMS16_BOTH(9, 2) DEFINE_SUMS16_BOTH(9, 3)
DEFINE_SUMS16_BOTH(8, 1) DEFINE_SUMS16_BOTH(8, 2) DEFINE_SUMS16_BOTH(8, 3)
DEFINE_SUMS16_BOTH(7, 1) DEFINE_SUMS16_BOTH(7, 2) DEFINE_SUMS16_BOTH(7, 3)
DEFINE_SUMS16_BOTH(6, 1) DEFINE_SUMS16_BOTH(6, 2) DEFINE_SUMS16_BOTH(6, 3) DEFINE_SUMS16_BOTH(6, 4)
DEFINE_SUMS16_BOTH(5, 1) DEFINE_SUMS16_BOTH(5, 2) DEFINE_SUMS16_BOTH(5, 3) DEFINE_SUMS16_BOTH(5, 4)
DEFINE_SUMS16_BOTH(4, 1) DEFINE_SUMS16_BOTH(4, 2) DEFINE_SUMS16_BOTH(4, 3) DEFINE_SUMS16_BOTH(4, 4)
DEFINE_SUMS16_BOTH(4, 5) DEFINE_SUMS16_BOTH(4, 6)

typedef void (*sums16)(long, const float *, long, const float *, long, const int *, float *, const float *);
// sums16_by[form][J − 4][NP]: form 0 rows of B, 1 a bordered copy's offsets. most_vectors[J − 4]: the largest NP.
#define SUMS16_TABLE(P)                                                                                           \
    {{NULL, P##4x1, P##4x2, P##4x3, P##4x4, P##4x5, P##4x6},                                                      \
     {NULL, P##5x1, P##5x2, P##5x3, P##5x4},                                                                      \
     {NULL, P##6x1, P##6x2, P##6x3, P##6x4},                                                                      \
     {NULL, P##7x1, P##7x2, P##7x3},                                                                              \
     {NULL, P##8x1, P##8x2, P##8x3},                                                                              \
     {NULL, P##9x1, P##9x2, P##9x3}}
static const sums16 sums16_by[2][6][7] = {SUMS16_TABLE(sums16_), SUMS16_TABLE(sums16_at_)};
static const int most_vectors[6] = {6, 4, 4, 3, 3, 3};

// The tile's first `count` outputs of `rows` channels (tile row j: output j's channels), sixteen channels at a time
// transposed, then (with `epilogue`) + bias (0 without), + residual (none without), clamped, and stored `count`
// values of a channel at a time: channel r's at c + r·ldc (the residual's alike).
__attribute__((target("avx512f"))) static void store_tile16(const float *tile, int count, int rows, const float *bias,
                                                            const float *residual, int epilogue, __m512 low,
                                                            __m512 high, float *c, long ldc) {
    const __mmask16 m = (__mmask16)((1u << count) - 1);
    for (int p = 0; p * 16 < rows; p++) {
        const int many = rows - p * 16 < 16 ? rows - p * 16 : 16;
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = _mm512_load_ps(tile + i * WIDE16 + p * 16);
        transpose16(r);
        for (int i = 0; i < many; i++) {
            const long row = p * 16 + i;
            __m512 y = r[i];
            if (epilogue) {
                y = _mm512_add_ps(y, _mm512_set1_ps(bias ? bias[row] : 0.0f));
                if (residual) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, residual + row * ldc));
                y = wc_clamp512(y, low, high);
            }
            _mm512_mask_storeu_ps(c + row * ldc, m, y);
        }
    }
}

// The columns a block takes (4 to 9): the fewest columns computed, blocks ending at column n − 1 (a plane of 9: one
// block; 49: seven of seven), the widest of equals. Nine a block instead of two blocks of five (ten sums for nine
// outputs): SqueezeNet 1.1 64 px's classifier (1000 × 512 by 9, batch 1, one thread, least of 2 s, 3 alternated rounds)
// 44.5–44.9 → 38.2–39.2 µs, the whole model 232–235 → 220–223 (two threads 152–154 → 144–145).
static int vectors16_block(int n) {
    int best = 9;
    for (int j = 8; j >= 4; j--)
        if ((n + j - 1) / j * j < (n + best - 1) / best * best) best = j;
    return best;
}

// The channels a group takes (a multiple of 16) so that `rows` channels go in as few groups as `widest` allows, as even
// as whole vectors make them: the last group of 64 channels (one worker's half of 128) at seven outputs a block was
// one vector, seven sums, too few to hide the multiply-adds' latency; now two groups of two vectors. A 32 → 128 3×3
// layer on 7×7 maps (SqueezeNet 1.1 64 px's), batch 1, two threads, least of 2 s: 11.3 → 10.5–10.6 µs; whole passes
// (3 alternated rounds) SqueezeNet 1.1 64 px 154.1–156.0 → 153.0–154.9, ResNet-18 64 px 1,042–1,049 → 1,032–1,041,
// MobileNetV2 64 px within noise.
static int group_width(int rows, int widest) {
    const int groups = (rows + widest - 1) / widest;
    const int width = ((rows + groups - 1) / groups + 15) / 16 * 16;
    return width < widest ? width : widest;
}

// A group of `rows` output channels from the panels at `a`: vectors of two panels, then one of a single panel where
// the group ends within one. `group_of` asks for its first AHEAD16 rows of weights; `group_sums` sums one block of
// outputs for the whole group (the block that reads the group's weights first asks for the rest ahead).
typedef struct {
    const float *a;
    int pairs, single;
} group16;

static group16 group_of(const float *a, int rows, long panel, int k) {
    const int rest = rows % 16;
    const group16 g = {a, rows / 16 + (rest > 8), rest > 0 && rest <= 8};
    for (int p = 0; p < 2 * g.pairs + g.single; p++)
        for (int kk = 0; kk < k && kk < AHEAD16; kk += 2) _mm_prefetch((const char *)(a + p * panel + kk * PANEL16), _MM_HINT_T0);
    return g;
}

static inline void group_sums(const sums16 *sums, group16 g, int k, long panel, const float *x, long ldx,
                              const int *offsets, float *acc, int first) {
    if (g.pairs) sums[g.pairs](k, g.a, panel, x, ldx, offsets, acc, first ? g.a : NULL);
    if (g.single) sums[1](k, g.a + (long)g.pairs * 16 * k, 0, x, ldx, offsets, acc + g.pairs * 16, NULL);
}

// C = A·B as the packed product gives it, with the weights as vectors: J columns a block (`vectors16_block`), rows in
// groups of as many vectors as J leaves registers for, as many columns at a time as whole blocks fill sixteen. The last block
// of columns ends at column n − 1, over columns of the block before it again (the same sums, stored again), so that
// every B value read is B's. n ≥ 4.
__attribute__((target("avx512f"))) void wc_vectors16_product(int m, int n, int k, const float *packed, const float *b,
                                                              long ldb, float *c, long ldc, const wc_epilogue *e) {
    const __m512 low = _mm512_set1_ps(e ? e->low : -INFINITY), high = _mm512_set1_ps(e ? e->high : INFINITY);
    const long panel = (long)k * PANEL16;
    const int block = vectors16_block(n), span = TILE16 / block * block;
    const sums16 *sums = sums16_by[0][block - 4];
    const int width = group_width(m, 16 * most_vectors[block - 4]);
    float tile[TILE16 * WIDE16] __attribute__((aligned(64)));
    for (int r0 = 0; r0 < m; r0 += width) {
        const int rows = m - r0 < width ? m - r0 : width;
        const group16 g = group_of(packed + (long)r0 * k, rows, panel, k);
        for (int t0 = 0; t0 < n; t0 += span) {
            if (n - t0 < block) t0 = n - block;
            const int count = n - t0 < span ? n - t0 : span;
            for (int j0 = 0; j0 < count; j0 += block) {
                const int j = j0 + block <= count ? j0 : count - block;
                group_sums(sums, g, k, panel, b + t0 + j, ldb, NULL, tile + j * WIDE16, t0 == 0 && j0 == 0);
            }
            store_tile16(tile, count, rows, e && e->bias ? e->bias + r0 : NULL, NULL, e != NULL, low, high,
                         c + (long)r0 * ldc + t0, ldc);
        }
    }
}

// `wc_vectors16_plane`: J outputs of a row a block (`vectors16_block` of the row's width, the last block of a row back
// over the one before it); rows of up to 16 outputs as many whole rows a tile as fit in sixteen outputs, wider rows
// sixteen (or as many as whole blocks fill) of a row a tile, the last tile of a row back over the one before it.
__attribute__((target("avx512f"))) void wc_vectors16_plane(const float *base, long row_step, int ow, long plane,
                                                            int first_row, int rows, int k, const float *a,
                                                            const int *offsets, int count, const float *bias,
                                                            const float *residual, float low, float high, float *out) {
    const __m512 lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
    const long panel = (long)k * PANEL16;
    const int block = vectors16_block(ow), span = TILE16 / block * block;
    const int per_tile = ow <= TILE16 ? TILE16 / ow : 1, width_of_tile = ow <= TILE16 ? ow : span;
    const sums16 *sums = sums16_by[1][block - 4];
    const int width = group_width(count, 16 * most_vectors[block - 4]);
    float tile[TILE16 * WIDE16] __attribute__((aligned(64)));
    for (int c0 = 0; c0 < count; c0 += width) {
        const int channels = count - c0 < width ? count - c0 : width;
        const group16 g = group_of(a + (long)c0 * k, channels, panel, k);
        for (int oy0 = first_row; oy0 < first_row + rows; oy0 += per_tile) {
            const int n = first_row + rows - oy0 < per_tile ? first_row + rows - oy0 : per_tile;
            // Tiles along the row (one when the tile holds whole rows).
            for (int t0 = 0; t0 < ow; t0 += width_of_tile) {
                if (ow - t0 < block) t0 = ow - block;
                const int along = ow - t0 < width_of_tile ? ow - t0 : width_of_tile;
                for (int r = 0; r < n; r++)
                    for (int j0 = 0; j0 < along; j0 += block) {
                        const int j = j0 + block <= along ? j0 : along - block;
                        group_sums(sums, g, k, panel, base + (long)(oy0 + r) * row_step + t0 + j, 0, offsets,
                                   tile + (r * along + j) * WIDE16, oy0 == first_row && t0 == 0 && r == 0 && j0 == 0);
                    }
                const long at = c0 * plane + (long)oy0 * ow + t0;
                store_tile16(tile, n * along, channels, bias ? bias + c0 : NULL, residual ? residual + at : NULL, 1, lo,
                             hi, out + at, plane);
            }
        }
    }
}
#endif

// Where the packed product runs here: AVX-512, 4 to 31 columns, and weights of at most VECTORS16_MOST_WEIGHTS values;
// 16 columns but in Winograd's per-point products (`wc_gemm_packed_per_point`, below). MobileNetV2 64 px, batch 1, least of
// 3 alternated runs, images/s: with its 1×1 layers on 4×4 maps here too, one thread 2,358–2,449 → 2,482–2,522, two
// 3,751–3,830 → 3,884–3,950. C harness, one thread, weights read from L3 (four copies taken in turn), µs, the packed product's kernels →
// here: 256×576 by n columns: n = 4 7.98 → 5.95, 9 14.9 → 11.9, 16 23.9 → 18.4, 25 39.6 → 29.6, 32 36.3 → 36.4, 49
// 59.1 → 57.7; 192×k by 25, k = 64 4.36 → 2.80, 288 15.4 → 11.3; by 32 columns and k of 16 to 96 it lost 5–30%.
// Weights from memory (512×4608 by 4, 9.4 MB: ResNet-18's 3×3 layers on 2×2 maps) 158 → 219, 128×128 by 16 (its
// Winograd products on 8×8 maps) 2.9 → 3.6: twelve half-panel streams at once are read more slowly than the packed
// product reads its panels one by one. (ResNet-18 64 px, batch 1, one thread: its three such layers 55–57 → 73–76 µs.)
enum { VECTORS16_MOST_COLUMNS = 31, VECTORS16_MOST_WEIGHTS = 1 << 20 };

int wc_gemm_vectors(int m, int n, int k) {
#if defined(__x86_64__)
    return wc_kernels_isa() == WC_ISA_AVX512 && n >= 4 && n <= VECTORS16_MOST_COLUMNS
        && (long)m * k <= VECTORS16_MOST_WEIGHTS;
#else
    (void)m; (void)n; (void)k;
    return 0;
#endif
}

