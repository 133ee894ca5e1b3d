// Max pooling of one plane held inside a −∞ border, a vector of outputs at a time (baseline, AVX2 and AVX-512).
#include "Dispatch.h"
#include <string.h>

// Each output takes its taps in row-major order, keeping a value that is greater or NaN (v > best || v != v), as the
// definition's loop does: the first NaN of a window stays. Rows are taken R at a time for independent chains.
#define DEFINE_MAXPOOL(NAME, ATTR, VEC, IVEC, L, ...)                                                             \
    ATTR static void NAME(const float *plane, long width, int kh, int kw, int dh, int dw, int sh, int sw,          \
                          float *out, int oh, int ow) {                                                           \
        enum { R = 4 };                                                                                           \
        for (int oy0 = 0; oy0 < oh; oy0 += R) {                                                                   \
            const int rows = oh - oy0 < R ? oh - oy0 : R;                                                         \
            for (int ox = 0; ox < ow; ox += L) {                                                                  \
                VEC best[R];                                                                                      \
                for (int r = 0; r < R; r++)                                                                       \
                    for (int i = 0; i < L; i++) best[r][i] = -__builtin_inff();                                   \
                for (int ki = 0; ki < kh; ki++)                                                                   \
                    for (int kj = 0; kj < kw; kj++)                                                               \
                        for (int r = 0; r < R; r++) {                                                             \
                            /* Rows past the last repeat it; they are not stored. */                              \
                            const int oy = oy0 + (r < rows ? r : rows - 1);                                       \
                            const float *p = plane + ((long)oy * sh + (long)ki * dh) * width + kj * dw + (long)ox * sw; \
                            VEC v;                                                                                \
                            ROW_TAP(VEC, L, v, p, sw, __VA_ARGS__);                                               \
                            IVEC take = (v > best[r]) | (v != v);                                                 \
                            best[r] = (VEC)(((IVEC)v & take) | ((IVEC)best[r] & ~take));                          \
                        }                                                                                         \
                ROW_STORE(L, best, rows, out, oy0, ox, ow);                                                       \
            }                                                                                                     \
        }                                                                                                         \
    }

typedef float mp8 __attribute__((vector_size(32)));
typedef int mpi8 __attribute__((vector_size(32)));
DEFINE_MAXPOOL(maxpool_generic, , mp8, mpi8, 8, 0, 2, 4, 6, 8, 10, 12, 14)
#if defined(__x86_64__)
typedef float mp16 __attribute__((vector_size(64)));
typedef int mpi16 __attribute__((vector_size(64)));
DEFINE_MAXPOOL(maxpool_avx2, __attribute__((target("avx2"))), mp8, mpi8, 8, 0, 2, 4, 6, 8, 10, 12, 14)
DEFINE_MAXPOOL(maxpool_avx512, __attribute__((target("avx512f"))), mp16, mpi16, 16,
               0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#endif

void wc_maxpool_plane(const float *plane, long width, int kh, int kw, int dh, int dw, int sh, int sw, float *out,
                      int oh, int ow) {
    DISPATCH(maxpool, plane, width, kh, kw, dh, dw, sh, sw, out, oh, ow);
}
