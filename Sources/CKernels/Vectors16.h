#ifndef WC_VECTORS16_H
#define WC_VECTORS16_H
// The weights as vectors on AVX-512 (Vectors16.c), for the packed product (PackedGEMM.c) and the direct convolution
// (DirectConvolution.c). Not part of the module's interface.
#include "CKernels.h"

// C = A·B as the packed product gives it (A in wc_pack_rows form, B k×n with row stride ldb, C m×n with row stride
// ldc, `e` or none), for 4 ≤ n ≤ 31 (`wc_gemm_vectors`). AVX-512 only.
void wc_vectors16_product(int m, int n, int k, const float *packed, const float *b, long ldb, float *c, long ldc,
                          const wc_epilogue *e);

// Output rows [first_row, first_row + rows) of one image's plane, 4 to 16 outputs wide, for `count` channels from a
// direct convolution's bordered copy: output (oy, ox) reads base + oy·row_step + ox + offsets[kk] for kk < k, with the
// panels at `a` (its first channel); `out` and `residual` (or NULL) point at that channel's plane, `bias` (or NULL) at
// its bias. Each output the same sum, bias, residual and clamp as the im2col path's. AVX-512 only.
void wc_vectors16_plane(const float *base, long row_step, int ow, long plane, int first_row, int rows, int k,
                        const float *a, const int *offsets, int count, const float *bias, const float *residual,
                        float low, float high, float *out);

#endif
