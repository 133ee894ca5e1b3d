// Winograd F(2×2,3×3) transforms of one plane, 16 tiles at a time on AVX-512, 8 with AVX2 (a plain loop elsewhere).
// Each value is the same sum, in the same order, as in the plain loop, so all give the same bits.
#include "Dispatch.h"
#include "Transpose.h"

// Bᵀ·d·B of one 4×4 patch d (rows r0…r3, a row's values one apart); writes o[ξ·stride] for ξ in 0..<16.
#define INPUT_TILE(T, d, o, stride)                                                                               \
    do {                                                                                                          \
        T a0 = d[0][0] - d[2][0], a1 = d[0][1] - d[2][1], a2 = d[0][2] - d[2][2], a3 = d[0][3] - d[2][3];         \
        T b0 = d[1][0] + d[2][0], b1 = d[1][1] + d[2][1], b2 = d[1][2] + d[2][2], b3 = d[1][3] + d[2][3];         \
        T c0 = d[2][0] - d[1][0], c1 = d[2][1] - d[1][1], c2 = d[2][2] - d[1][2], c3 = d[2][3] - d[1][3];         \
        T e0 = d[1][0] - d[3][0], e1 = d[1][1] - d[3][1], e2 = d[1][2] - d[3][2], e3 = d[1][3] - d[3][3];         \
        T out_[16] = {a0 - a2, a1 + a2, a2 - a1, a1 - a3, b0 - b2, b1 + b2, b2 - b1, b1 - b3,                      \
                      c0 - c2, c1 + c2, c2 - c1, c1 - c3, e0 - e2, e1 + e2, e2 - e1, e1 - e3};                     \
        for (int x_ = 0; x_ < 16; x_++) o(x_, out_[x_]);                                                          \
    } while (0)

// Aᵀ·m·A of one tile from its 16 products s[ξ]: the 2×2 outputs before bias.
#define OUTPUT_TILE(T, s, t00, t01, t10, t11)                                                                     \
    T a0 = s[0] + s[4] + s[8], a1 = s[1] + s[5] + s[9], a2 = s[2] + s[6] + s[10], a3 = s[3] + s[7] + s[11];        \
    T b0 = s[4] - s[8] - s[12], b1 = s[5] - s[9] - s[13], b2 = s[6] - s[10] - s[14], b3 = s[7] - s[11] - s[15];    \
    T t00 = a0 + a1 + a2, t01 = a1 - a2 - a3, t10 = b0 + b1 + b2, t11 = b1 - b2 - b3

static void input_generic(const float *plane, int h, int w, int th, int tw, int pt, int pl, float *v, long stride) {
    for (int ty = 0; ty < th; ty++)
        for (int tx = 0; tx < tw; tx++) {
            float d[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    const int y = 2 * ty - pt + i, x = 2 * tx - pl + j;
                    d[i][j] = y >= 0 && y < h && x >= 0 && x < w ? plane[(long)y * w + x] : 0.0f;
                }
            float *o = v + (long)ty * tw + tx;
#define STORE_ONE(x, value) o[(x) * stride] = (value)
            INPUT_TILE(float, d, STORE_ONE, stride);
#undef STORE_ONE
        }
}

static void output_generic(const float *m, long stride, int th, int tw, float bias, const float *residual, float low,
                           float high, float *out, int oh, int ow) {
    for (int ty = 0; ty < th; ty++)
        for (int tx = 0; tx < tw; tx++) {
            float s[16];
            for (int x = 0; x < 16; x++) s[x] = m[x * stride + (long)ty * tw + tx];
            OUTPUT_TILE(float, s, t00, t01, t10, t11);
            const float t[2][2] = {{t00, t01}, {t10, t11}};
            for (int i = 0; i < 2 && 2 * ty + i < oh; i++)
                for (int j = 0; j < 2 && 2 * tx + j < ow; j++) {
                    const long at = (long)(2 * ty + i) * ow + 2 * tx + j;
                    out[at] = wc_clamp(residual ? t[i][j] + bias + residual[at] : t[i][j] + bias, low, high);
                }
        }
}

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f")))

// The lanes k of a vector of 16 values from column s on whose column s + k lies in [0, w).
static inline __mmask16 inside(long s, int w) {
    const long lo = s < 0 ? -s : 0, hi = w - s < 16 ? w - s : 16;
    return hi > lo ? (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1)) : 0;
}

// Planes of at most FLAT_TILES tiles a row: sixteen consecutive tiles a vector, over as many rows as they take (a 7×7
// map's 4 × 4 tiles in one vector instead of four of four lanes); each row of tiles' patch columns moved into its
// lanes from the input rows they read. One-layer models (3×3 + ReLU), batch 16, one thread, least of 2 s, alternated
// rounds, µs: 32 → 128 on 7×7 258–263 → 229 (onnxruntime 232), 16 → 64 on 15×15 273–277 → 233–237 (281). Whole
// models, two threads: SqueezeNet 1.1 64 px at batch 64 7,724–7,940 → 7,466–7,559, VGG-16 (Fashion-MNIST) 65.6–69.5 →
// 62.9–64.7 ms; ResNet-18 64 px at batch 1 1,156–1,175 → 1,090–1,104 µs.
enum { FLAT_TILES = 8 };

// The run of a vector's tiles (from tile t0, `lanes` of them) that starts at tile a: tiles [a, return value) of row
// *ty of tiles, from its column *tx.
static inline int row_run(int a, int t0, int lanes, int tw, int *ty, int *tx) {
    *ty = a / tw;
    *tx = a % tw;
    return (*ty + 1) * tw < t0 + lanes ? (*ty + 1) * tw : t0 + lanes;
}

AVX512 static void input_flat_avx512(const float *plane, int h, int w, int th, int tw, int pt, int pl, float *v,
                                     long stride) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const int tiles = th * tw;
    for (int t0 = 0; t0 < tiles; t0 += 16) {
        const int lanes = tiles - t0 < 16 ? tiles - t0 : 16;
        __m512 d[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) d[i][j] = _mm512_setzero_ps();
        // Each run of the vector's tiles within one row of tiles: tiles [a, b) of row ty, lanes from a − t0.
        for (int a = t0, b, ty, tx; a < t0 + lanes; a = b) {
            b = row_run(a, t0, lanes, tw, &ty, &tx);
            const __mmask16 run = (__mmask16)(((1u << (b - t0)) - 1) & ~((1u << (a - t0)) - 1));
            // Lane l's patch column j is column base + 2(l − (a − t0)) + j.
            const long base = 2L * tx - pl;
            for (int i = 0; i < 4; i++) {
                const int y = 2 * ty - pt + i;
                if (y < 0 || y >= h) continue;
                const float *row = plane + (long)y * w;
                const __m512 p0 = _mm512_maskz_loadu_ps(inside(base, w), row + base);
                const __m512 p1 = _mm512_maskz_loadu_ps(inside(base + 16, w), row + base + 16);
                for (int j = 0; j < 4; j++) {
                    const __m512i from = _mm512_add_epi32(even, _mm512_set1_epi32(j - 2 * (a - t0)));
                    d[i][j] = _mm512_mask_mov_ps(d[i][j], run, _mm512_permutex2var_ps(p0, from, p1));
                }
            }
        }
        float *o = v + t0;
        const __mmask16 keep = (__mmask16)((1u << lanes) - 1);
#define STORE_VECTOR(x, value) _mm512_mask_storeu_ps(o + (x) * stride, keep, (value))
        INPUT_TILE(__m512, d, STORE_VECTOR, stride);
#undef STORE_VECTOR
    }
}

AVX512 static void input_avx512(const float *plane, int h, int w, int th, int tw, int pt, int pl, float *v,
                                long stride) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    if (tw <= FLAT_TILES) {
        input_flat_avx512(plane, h, w, th, tw, pt, pl, v, stride);
        return;
    }
    for (int ty = 0; ty < th; ty++)
        for (int tx0 = 0; tx0 < tw; tx0 += 16) {
            const int lanes = tw - tx0 < 16 ? tw - tx0 : 16;
            // Lane l is tile tx0 + l; its patch column j is input column base + 2l + j.
            const long base = 2L * tx0 - pl;
            __m512 d[4][4];
            for (int i = 0; i < 4; i++) {
                const int y = 2 * ty - pt + i;
                if (y < 0 || y >= h) {
                    for (int j = 0; j < 4; j++) d[i][j] = _mm512_setzero_ps();
                    continue;
                }
                const float *row = plane + (long)y * w;
                const __m512 p0 = _mm512_maskz_loadu_ps(inside(base, w), row + base);
                const __m512 p1 = _mm512_maskz_loadu_ps(inside(base + 16, w), row + base + 16);
                const __m512 q0 = _mm512_maskz_loadu_ps(inside(base + 2, w), row + base + 2);
                const __m512 q1 = _mm512_maskz_loadu_ps(inside(base + 18, w), row + base + 18);
                d[i][0] = _mm512_permutex2var_ps(p0, even, p1);
                d[i][1] = _mm512_permutex2var_ps(p0, odd, p1);
                d[i][2] = _mm512_permutex2var_ps(q0, even, q1);
                d[i][3] = _mm512_permutex2var_ps(q0, odd, q1);
            }
            float *o = v + (long)ty * tw + tx0;
            const __mmask16 keep = (__mmask16)((1u << lanes) - 1);
#define STORE_VECTOR(x, value) _mm512_mask_storeu_ps(o + (x) * stride, keep, (value))
            INPUT_TILE(__m512, d, STORE_VECTOR, stride);
#undef STORE_VECTOR
        }
}

// The same rows of tiles (FLAT_TILES): each run's outputs moved to the front of a vector and stored.

AVX512 static void output_flat_avx512(const float *m, long stride, int th, int tw, __m512 biasv, const float *residual,
                                      __m512 lowv, __m512 highv, float *out, int oh, int ow) {
    const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int tiles = th * tw;
    for (int t0 = 0; t0 < tiles; t0 += 16) {
        const int lanes = tiles - t0 < 16 ? tiles - t0 : 16;
        const __mmask16 keep = (__mmask16)((1u << lanes) - 1);
        __m512 s[16];
        for (int x = 0; x < 16; x++) s[x] = _mm512_maskz_loadu_ps(keep, m + x * stride + t0);
        OUTPUT_TILE(__m512, s, t00, t01, t10, t11);
        // Lanes 2l and 2l + 1 of the pair (low, high) of row i: tile t0 + l's two columns.
        const __m512 low[2] = {_mm512_permutex2var_ps(t00, first, t01), _mm512_permutex2var_ps(t10, first, t11)};
        const __m512 high[2] = {_mm512_permutex2var_ps(t00, second, t01), _mm512_permutex2var_ps(t10, second, t11)};
        // Each run of the vector's tiles within one row of tiles: tiles [a, b) of row ty.
        for (int a = t0, b, ty, tx; a < t0 + lanes; a = b) {
            b = row_run(a, t0, lanes, tw, &ty, &tx);
            const int columns = ow - 2 * tx < 2 * (b - a) ? ow - 2 * tx : 2 * (b - a);
            const __mmask16 mask = (__mmask16)((1u << columns) - 1);
            const __m512i from = _mm512_add_epi32(iota, _mm512_set1_epi32(2 * (a - t0)));
            for (int i = 0; i < 2 && 2 * ty + i < oh; i++) {
                const long at = (long)(2 * ty + i) * ow + 2L * tx;
                __m512 x = _mm512_add_ps(_mm512_permutex2var_ps(low[i], from, high[i]), biasv);
                if (residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, residual + at));
                _mm512_mask_storeu_ps(out + at, mask, wc_clamp512(x, lowv, highv));
            }
        }
    }
}

AVX512 static void output_avx512(const float *m, long stride, int th, int tw, float bias, const float *residual,
                                 float low, float high, float *out, int oh, int ow) {
    const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512 lowv = _mm512_set1_ps(low), highv = _mm512_set1_ps(high), biasv = _mm512_set1_ps(bias);
    if (tw <= FLAT_TILES) {
        output_flat_avx512(m, stride, th, tw, biasv, residual, lowv, highv, out, oh, ow);
        return;
    }
    for (int ty = 0; ty < th; ty++)
        for (int tx0 = 0; tx0 < tw; tx0 += 16) {
            const int lanes = tw - tx0 < 16 ? tw - tx0 : 16;
            const __mmask16 keep = (__mmask16)((1u << lanes) - 1);
            __m512 s[16];
            for (int x = 0; x < 16; x++) s[x] = _mm512_maskz_loadu_ps(keep, m + x * stride + (long)ty * tw + tx0);
            OUTPUT_TILE(__m512, s, t00, t01, t10, t11);
            // Output columns 2·tx0 …: the tiles' two columns interleaved, as many as the row still has.
            const int columns = ow - 2 * tx0 < 2 * lanes ? ow - 2 * tx0 : 2 * lanes;
            const __mmask16 left = (__mmask16)(columns >= 16 ? 0xffff : (1u << columns) - 1);
            const __mmask16 right = (__mmask16)(columns <= 16 ? 0 : (1u << (columns - 16)) - 1);
            const __m512 rows[2][2] = {{_mm512_permutex2var_ps(t00, first, t01), _mm512_permutex2var_ps(t00, second, t01)},
                                       {_mm512_permutex2var_ps(t10, first, t11), _mm512_permutex2var_ps(t10, second, t11)}};
            for (int i = 0; i < 2 && 2 * ty + i < oh; i++) {
                const long at = (long)(2 * ty + i) * ow + 2L * tx0;
                for (int half = 0; half < 2; half++) {
                    const __mmask16 mask = half ? right : left;
                    if (!mask) continue;
                    __m512 x = _mm512_add_ps(rows[i][half], biasv);
                    if (residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, residual + at + 16 * half));
                    _mm512_mask_storeu_ps(out + at + 16 * half, mask, wc_clamp512(x, lowv, highv));
                }
            }
        }
}
#endif

#if defined(__x86_64__)
// AVX2: eight tiles at a time. Loads where the patch columns leave the row go through a zero-filled copy, and so do
// the plane's last tiles where a whole vector would run past them, and partial vectors of outputs (masked stores are
// slow here).
// Only on rows of at least AVX2_TILES tiles: on fewer, the zero-filled copies cost more than the plain loop. One
// thread (AMD EPYC, C harness, best of 5, two runs; bit-equal), µs per plane, input / output transform, plain loop →
// AVX2: 56×56 18.5–18.9 / 10.4–11.0 → 8.9–9.1 / 5.7–6.2; 28×28 4.4–4.7 / 2.5–2.6 → 2.6–2.7 / 1.9; 14×14 1.2 /
// 0.7 → 0.8 / 0.6; 13×13 1.0–1.2 / 0.6 → 0.8–1.0 / 0.6; 7×9 (5 tiles a row) 0.45 / 0.25 → 0.6 / 0.4.
enum { AVX2_TILES = 7 };
#define AVX2 __attribute__((target("avx2")))

// Row columns [s, s + 8) with zeros for those outside [0, w).
AVX2 static inline __m256 row8_at(const float *row, long s, int w) {
    if (s >= 0 && s + 8 <= w) return _mm256_loadu_ps(row + s);
    float t[8];
    for (int k = 0; k < 8; k++) t[k] = s + k >= 0 && s + k < w ? row[s + k] : 0.0f;
    return _mm256_loadu_ps(t);
}

AVX2 static void input_avx2(const float *plane, int h, int w, int th, int tw, int pt, int pl, float *v, long stride) {
    for (int ty = 0; ty < th; ty++)
        for (int tx0 = 0; tx0 < tw; tx0 += 8) {
            const int lanes = tw - tx0 < 8 ? tw - tx0 : 8;
            // Lane l is tile tx0 + l; its patch column j is input column base + 2l + j.
            const long base = 2L * tx0 - pl;
            __m256 d[4][4];
            for (int i = 0; i < 4; i++) {
                const int y = 2 * ty - pt + i;
                if (y < 0 || y >= h) {
                    for (int j = 0; j < 4; j++) d[i][j] = _mm256_setzero_ps();
                    continue;
                }
                const float *row = plane + (long)y * w;
                const __m256 p0 = row8_at(row, base, w), p1 = row8_at(row, base + 8, w);
                const __m256 q0 = row8_at(row, base + 2, w), q1 = row8_at(row, base + 10, w);
                d[i][0] = wc_even8(p0, p1);
                d[i][1] = wc_odd8(p0, p1);
                d[i][2] = wc_even8(q0, q1);
                d[i][3] = wc_odd8(q0, q1);
            }
            float *o = v + (long)ty * tw + tx0;
            // Whole vectors where they stay within the plane's tiles: lanes past the row's last tile land on the
            // next rows' first tiles, written after these.
            if (lanes == 8 || (long)ty * tw + tx0 + 8 <= (long)th * tw) {
#define STORE_VECTOR(x, value) _mm256_storeu_ps(o + (x) * stride, (value))
                INPUT_TILE(__m256, d, STORE_VECTOR, stride);
#undef STORE_VECTOR
            } else {
                float t[16][8];
#define STORE_PART(x, value) _mm256_storeu_ps(t[x], (value))
                INPUT_TILE(__m256, d, STORE_PART, stride);
#undef STORE_PART
                for (int x = 0; x < 16; x++)
                    for (int k = 0; k < lanes; k++) o[x * stride + k] = t[x][k];
            }
        }
}

AVX2 static void output_avx2(const float *m, long stride, int th, int tw, float bias, const float *residual,
                             float low, float high, float *out, int oh, int ow) {
    const __m256 lowv = _mm256_set1_ps(low), highv = _mm256_set1_ps(high), biasv = _mm256_set1_ps(bias);
    for (int ty = 0; ty < th; ty++)
        for (int tx0 = 0; tx0 < tw; tx0 += 8) {
            const int lanes = tw - tx0 < 8 ? tw - tx0 : 8;
            __m256 s[16];
            for (int x = 0; x < 16; x++) {
                const float *src = m + x * stride + (long)ty * tw + tx0;
                if (lanes == 8 || (long)ty * tw + tx0 + 8 <= (long)th * tw) {  // lanes past the row: unused
                    s[x] = _mm256_loadu_ps(src);
                } else {
                    float t[8] = {0};
                    for (int k = 0; k < lanes; k++) t[k] = src[k];
                    s[x] = _mm256_loadu_ps(t);
                }
            }
            OUTPUT_TILE(__m256, s, t00, t01, t10, t11);
            // Output columns 2·tx0 …: the tiles' two columns interleaved, as many as the row still has.
            const int columns = ow - 2 * tx0 < 2 * lanes ? ow - 2 * tx0 : 2 * lanes;
            const __m256 lo0 = _mm256_unpacklo_ps(t00, t01), hi0 = _mm256_unpackhi_ps(t00, t01);
            const __m256 lo1 = _mm256_unpacklo_ps(t10, t11), hi1 = _mm256_unpackhi_ps(t10, t11);
            const __m256 rows[2][2] = {
                {_mm256_permute2f128_ps(lo0, hi0, 0x20), _mm256_permute2f128_ps(lo0, hi0, 0x31)},
                {_mm256_permute2f128_ps(lo1, hi1, 0x20), _mm256_permute2f128_ps(lo1, hi1, 0x31)}};
            for (int i = 0; i < 2 && 2 * ty + i < oh; i++) {
                const long at = (long)(2 * ty + i) * ow + 2L * tx0;
                for (int half = 0; half < 2; half++) {
                    const int n = columns - 8 * half < 8 ? columns - 8 * half : 8;
                    if (n <= 0) continue;
                    __m256 x = _mm256_add_ps(rows[i][half], biasv);
                    if (residual && n == 8) {
                        x = _mm256_add_ps(x, _mm256_loadu_ps(residual + at + 8 * half));
                    } else if (residual) {
                        float r[8] = {0};
                        for (int k = 0; k < n; k++) r[k] = residual[at + 8 * half + k];
                        x = _mm256_add_ps(x, _mm256_loadu_ps(r));
                    }
                    x = wc_clamp256(x, lowv, highv);  // as wc_clamp
                    if (n == 8) {
                        _mm256_storeu_ps(out + at + 8 * half, x);
                    } else {
                        float t[8];
                        _mm256_storeu_ps(t, x);
                        for (int k = 0; k < n; k++) out[at + 8 * half + k] = t[k];
                    }
                }
            }
        }
}
#endif

void wc_winograd_input(const float *plane, int h, int w, int th, int tw, int pt, int pl, float *v, long stride) {
#if defined(__x86_64__)
    if (wc_kernels_isa() == WC_ISA_AVX512) { input_avx512(plane, h, w, th, tw, pt, pl, v, stride); return; }
    if (wc_kernels_isa() == WC_ISA_AVX2 && tw >= AVX2_TILES) {
        input_avx2(plane, h, w, th, tw, pt, pl, v, stride);
        return;
    }
#endif
    input_generic(plane, h, w, th, tw, pt, pl, v, stride);
}

void wc_winograd_output(const float *m, long stride, int th, int tw, float bias, const float *residual, float low,
                        float high, float *out, int oh, int ow) {
#if defined(__x86_64__)
    if (wc_kernels_isa() == WC_ISA_AVX512) { output_avx512(m, stride, th, tw, bias, residual, low, high, out, oh, ow); return; }
    if (wc_kernels_isa() == WC_ISA_AVX2 && tw >= AVX2_TILES) {
        output_avx2(m, stride, th, tw, bias, residual, low, high, out, oh, ow);
        return;
    }
#endif
    output_generic(m, stride, th, tw, bias, residual, low, high, out, oh, ow);
}

// ---- One image's rows of tiles, the transforms and products together (AVX2) --------------------------------------
//
// For shallow layers (few input channels) the three-step path passes every tile's 16 products for every output channel
// through memory between its steps: 3.2 MB of sums for a 16 → 64 layer on 55×55, from L3 or, when another tenant of
// the host takes the cache, from DRAM. Here each row of tiles is transformed (16 × C × row values, in L1 or L2), then
// for each group of three panels of eight output channels each ξ's products run over the row's blocks of four tiles
// (that ξ's weights for the group, C · 24 floats, staying in L1) into the row's sums (16 × row × 24 floats, in L2),
// whose output transforms are transposed (8 × 8) into the channels' rows and stored with the bias, residual and clamp.
// Each product is the same chain of fused multiply-adds over the input channels in order, from zero, as the packed
// product's, and the transforms are this file's, so the outputs are the three-step path's bits. C harness, one
// thread, least µs of 400 alternated calls, three steps / rows: 16 → 64 on 55×55 573–588 / 516–542 (each block's
// products over all 16 ξ at once instead, the weights from L2: 535–577); deeper layers lose, the products' share
// larger and the packed product's output transform needing no transposes: 32 → 128 on 27×27 454–629 / 483–681, 48 →
// 192 on 13×13 247–248 / 256–263, 64 → 256 on 13×13 400–452 / 422–520.

// A block of tiles and one group of panels: four tiles × three panels of eight output channels (96 floats of sums a ξ).
enum { ROWS_TILES = 4, ROWS_PANELS = 3, ROWS_BLOCK = ROWS_TILES * ROWS_PANELS * 8 };

#if defined(__x86_64__)
// One ξ's products for every block of four tiles of a row × three panels: m[b][t][p·8 + r] = Σ_ic U[p][ic][r] ·
// V[ic][4b + t] (v: V at the row's first tile, ic `tw` floats apart; u: the group's first panel, panels `pb` floats
// apart; m: ROWS_BLOCK floats a block). The group's weights for this ξ (c · 24 floats) stay in L1 over the row's blocks. In assembly:
// the twelve sums, three weight vectors and the broadcast fill the sixteen registers (as the direct convolution's
// `vector_sums3`).
__attribute__((target("avx2,fma"))) static void rows_products3(const float *v, long tw, const float *u, long pb, long c,
                                                                long blocks, float *m) {
    const long tw_bytes = tw * (long)sizeof(float), pb_bytes = pb * (long)sizeof(float);
    __asm__ volatile(
        "2:\n\t"
        "vxorps %%ymm0, %%ymm0, %%ymm0\n\t vxorps %%ymm1, %%ymm1, %%ymm1\n\t vxorps %%ymm2, %%ymm2, %%ymm2\n\t"
        "vxorps %%ymm3, %%ymm3, %%ymm3\n\t vxorps %%ymm4, %%ymm4, %%ymm4\n\t vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
        "vxorps %%ymm6, %%ymm6, %%ymm6\n\t vxorps %%ymm7, %%ymm7, %%ymm7\n\t vxorps %%ymm8, %%ymm8, %%ymm8\n\t"
        "vxorps %%ymm9, %%ymm9, %%ymm9\n\t vxorps %%ymm10, %%ymm10, %%ymm10\n\t vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
        "movq %[c], %%rax\n\t movq %[v], %%r10\n\t movq %[u], %%r9\n\t .p2align 4\n"
        "1:\n\t"
        "vmovups (%%r9), %%ymm12\n\t vmovups (%%r9,%[pb],1), %%ymm13\n\t vmovups (%%r9,%[pb],2), %%ymm14\n\t"
        "vbroadcastss (%%r10), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm0\n\t vfmadd231ps %%ymm13, %%ymm15, %%ymm1\n\t"
        "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\t"
        "vbroadcastss 4(%%r10), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm3\n\t vfmadd231ps %%ymm13, %%ymm15, %%ymm4\n\t"
        "vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
        "vbroadcastss 8(%%r10), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
        "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\t"
        "vbroadcastss 12(%%r10), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm9\n\t vfmadd231ps %%ymm13, %%ymm15, %%ymm10\n\t"
        "vfmadd231ps %%ymm14, %%ymm15, %%ymm11\n\t"
        "addq $32, %%r9\n\t addq %[tw], %%r10\n\t decq %%rax\n\t jnz 1b\n\t"
        "vmovups %%ymm0, 0(%[m])\n\t vmovups %%ymm1, 32(%[m])\n\t vmovups %%ymm2, 64(%[m])\n\t"
        "vmovups %%ymm3, 96(%[m])\n\t vmovups %%ymm4, 128(%[m])\n\t vmovups %%ymm5, 160(%[m])\n\t"
        "vmovups %%ymm6, 192(%[m])\n\t vmovups %%ymm7, 224(%[m])\n\t vmovups %%ymm8, 256(%[m])\n\t"
        "vmovups %%ymm9, 288(%[m])\n\t vmovups %%ymm10, 320(%[m])\n\t vmovups %%ymm11, 352(%[m])\n\t"
        "addq $16, %[v]\n\t addq $384, %[m]\n\t decq %[blocks]\n\t jnz 2b\n\t"
        : [v] "+r"(v), [m] "+r"(m), [blocks] "+r"(blocks)
        : [tw] "r"(tw_bytes), [u] "r"(u), [pb] "r"(pb_bytes), [c] "r"(c)
        : "rax", "r9", "r10", "memory", "cc", "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7",
          "ymm8", "ymm9", "ymm10", "ymm11", "ymm12", "ymm13", "ymm14", "ymm15");
}

// The same for NP ≤ 2 panels, in C (at most 8 + 2 + 1 registers).
#define DEFINE_ROWS_PRODUCTS(NAME, NP)                                                                            \
    __attribute__((target("avx2,fma"))) static void NAME(const float *v, long tw, const float *u, long pb, long c,    \
                                                         long blocks, float *m) {                                 \
        for (long b = 0; b < blocks; b++, v += ROWS_TILES, m += ROWS_BLOCK) {                                     \
            __m256 s[ROWS_TILES][NP];                                                                             \
            for (int t = 0; t < ROWS_TILES; t++)                                                                  \
                for (int p = 0; p < NP; p++) s[t][p] = _mm256_setzero_ps();                                       \
            for (long ic = 0; ic < c; ic++) {                                                                     \
                __m256 wv[NP];                                                                                    \
                for (int p = 0; p < NP; p++) wv[p] = _mm256_loadu_ps(u + p * pb + ic * 8);                        \
                for (int t = 0; t < ROWS_TILES; t++) {                                                            \
                    const __m256 x = _mm256_broadcast_ss(v + ic * tw + t);                                        \
                    for (int p = 0; p < NP; p++) s[t][p] = _mm256_fmadd_ps(wv[p], x, s[t][p]);                    \
                }                                                                                                 \
            }                                                                                                     \
            for (int t = 0; t < ROWS_TILES; t++)                                                                  \
                for (int p = 0; p < NP; p++) _mm256_storeu_ps(m + t * ROWS_PANELS * 8 + p * 8, s[t][p]);          \
        }                                                                                                         \
    }
DEFINE_ROWS_PRODUCTS(rows_products2, 2)
DEFINE_ROWS_PRODUCTS(rows_products1, 1)
#endif

size_t wc_winograd_rows_scratch_count(int c, int ow) {
    const long tw4 = ((ow + 1) / 2 + ROWS_TILES - 1) / ROWS_TILES * ROWS_TILES;
    return (size_t)(16 * (long)c * tw4 + 16 * tw4 * ROWS_PANELS * 8);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void rows_avx2(const float *input, int c, int h, int w, int pt, int pl,
                                                          const float *u, long u_stride, int first, int count,
                                                          const float *bias, const float *residual, float low,
                                                          float high, float *out, int oh, int ow, int r0, int r1,
                                                          float *scratch) {
    const int tw = (ow + 1) / 2, tw4 = (tw + ROWS_TILES - 1) / ROWS_TILES * ROWS_TILES;
    const long vs = (long)c * tw4, plane = (long)oh * ow;
    float *const v = scratch;
    // The tiles past the row's last (a block's unused lanes): zeros, never stored.
    for (long at = 0; at < 16 * vs; at += tw4) memset(v + at + tw, 0, sizeof(float) * (size_t)(tw4 - tw));
    // The row's products for one group of panels: m[ξ][tile][24], ξ `ms` floats apart.
    const long ms = (long)tw4 * ROWS_PANELS * 8;
    float *const m = scratch + 16 * vs;
    const __m256 lo = _mm256_set1_ps(low), hi = _mm256_set1_ps(high);
    const int end = first + count, panels = (end + 7) / 8;
    for (int r = r0; r < r1; r++) {
        // Row r of tiles reads input rows from 2r − pt: that row is row 0 of a one-row call with 2r rows less padding.
        for (int ch = 0; ch < c; ch++) wc_winograd_input(input + (long)ch * h * w, h, w, 1, tw, pt - 2 * r, pl, v + (long)ch * tw4, vs);
        const int y0 = 2 * r, rows = oh - y0 < 2 ? oh - y0 : 2;
        for (int p = first / 8; p < panels; p += ROWS_PANELS) {
            const int np = panels - p < ROWS_PANELS ? panels - p : ROWS_PANELS;
            for (int xi = 0; xi < 16; xi++) {
                const float *up = u + xi * u_stride + (long)p * 8 * c;
                void (*const products)(const float *, long, const float *, long, long, long, float *) =
                    np == 3 ? rows_products3 : np == 2 ? rows_products2 : rows_products1;
                products(v + xi * vs, tw4, up, (long)c * 8, c, tw4 / ROWS_TILES, m + xi * ms);
            }
            for (int t0 = 0; t0 < tw; t0 += ROWS_TILES) {
                const int valid = ow - 2 * t0 < 8 ? ow - 2 * t0 : 8;
                for (int j = 0; j < np; j++) {
                    // row[y][x]: the eight channels of output (y0 + y, 2·t0 + x), then transposed to each channel's
                    // eight outputs.
                    __m256 row[2][8];
                    for (int t = 0; t < ROWS_TILES; t++) {
                        __m256 s[16];
                        for (int xi = 0; xi < 16; xi++) s[xi] = _mm256_loadu_ps(m + xi * ms + (t0 + t) * ROWS_PANELS * 8 + j * 8);
                        OUTPUT_TILE(__m256, s, t00, t01, t10, t11);
                        row[0][2 * t] = t00, row[0][2 * t + 1] = t01, row[1][2 * t] = t10, row[1][2 * t + 1] = t11;
                    }
                    for (int y = 0; y < rows; y++) {
                        transpose8(row[y]);
                        for (int i = 0; i < 8 && (p + j) * 8 + i < end; i++) {
                            const int o = (p + j) * 8 + i;
                            const long at = o * plane + (long)(y0 + y) * ow + 2L * t0;
                            __m256 x = _mm256_add_ps(row[y][i], _mm256_set1_ps(bias ? bias[o] : 0.0f));
                            if (residual && valid == 8) {
                                x = _mm256_add_ps(x, _mm256_loadu_ps(residual + at));
                            } else if (residual) {
                                float e[8] = {0};
                                memcpy(e, residual + at, sizeof(float) * (size_t)valid);
                                x = _mm256_add_ps(x, _mm256_loadu_ps(e));
                            }
                            wc_store_lanes8(out + at, wc_clamp256(x, lo, hi), 0, valid);  // as wc_clamp
                        }
                    }
                }
            }
        }
    }
}
#endif

// Without AVX2: the same sums one at a time (each product's chain over ic in order, Winograd.c's plain transforms).
static void rows_generic(const float *input, int c, int h, int w, int pt, int pl, const float *u, long u_stride,
                         int first, int count, const float *bias, const float *residual, float low, float high,
                         float *out, int oh, int ow, int r0, int r1, float *scratch) {
    const int tw = (ow + 1) / 2, tw4 = (tw + ROWS_TILES - 1) / ROWS_TILES * ROWS_TILES;
    const long vs = (long)c * tw4;
    for (int r = r0; r < r1; r++) {
        for (int ch = 0; ch < c; ch++) input_generic(input + (long)ch * h * w, h, w, 1, tw, pt - 2 * r, pl, scratch + (long)ch * tw4, vs);
        for (int o = first; o < first + count; o++)
            for (int t = 0; t < tw; t++) {
                float s[16];
                for (int xi = 0; xi < 16; xi++) {
                    const float *a = u + xi * u_stride + (long)(o / 8) * 8 * c + o % 8;
                    float sum = 0.0f;
                    for (int ic = 0; ic < c; ic++) sum = __builtin_fmaf(a[ic * 8], scratch[xi * vs + (long)ic * tw4 + t], sum);
                    s[xi] = sum;
                }
                OUTPUT_TILE(float, s, t00, t01, t10, t11);
                const float y[2][2] = {{t00, t01}, {t10, t11}};
                for (int i = 0; i < 2 && 2 * r + i < oh; i++)
                    for (int j = 0; j < 2 && 2 * t + j < ow; j++) {
                        const long at = (long)o * oh * ow + (long)(2 * r + i) * ow + 2 * t + j;
                        const float b = bias ? bias[o] : 0.0f;
                        out[at] = wc_clamp(residual ? y[i][j] + b + residual[at] : y[i][j] + b, low, high);
                    }
            }
    }
}

void wc_winograd_rows(const float *input, int c, int h, int w, int pt, int pl, const float *u, long u_stride,
                      int first, int count, const float *bias, const float *residual, float low, float high,
                      float *out, int oh, int ow, int r0, int r1, float *scratch) {
#if defined(__x86_64__)
    if (wc_kernels_isa() != WC_ISA_GENERIC) {
        rows_avx2(input, c, h, w, pt, pl, u, u_stride, first, count, bias, residual, low, high, out, oh, ow, r0, r1, scratch);
        return;
    }
#endif
    rows_generic(input, c, h, w, pt, pl, u, u_stride, first, count, bias, residual, low, high, out, oh, ow, r0, r1, scratch);
}
