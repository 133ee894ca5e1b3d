#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>

/// Matrix products whose left operand, a weight matrix, is packed once ahead of time (OpenBLAS has no packing API
/// and repacks it on every call: at batch 1 that copy took more time than the product itself).
///
/// The packed form of an m×k matrix is ⌈m/8⌉ panels of 8 rows; a panel holds, for each column kk in order, its 8 rows'
/// values side by side (rows past m are 0). Panel p starts at p·8·k, so the panels [p, q) of a packed matrix are
/// themselves the packed form of rows [8p, 8q).

/// Floats in the packed form of an m×k matrix.
size_t wc_packed_count(int m, int k);

/// Packs the m×k row-major matrix `a` (row stride `lda`) into `packed` (wc_packed_count(m, k) floats).
void wc_pack_rows(int m, int k, const float *a, long lda, float *packed);

/// Instruction sets the product has a variant for; `wc_kernels_isa()` is the one chosen for this machine (the best
/// the processor supports, or the one named by the environment variable WEIGHTCLUSTER_KERNELS=generic|avx2|avx512).
enum { WC_ISA_GENERIC = 0, WC_ISA_AVX2 = 1, WC_ISA_AVX512 = 2 };
int wc_kernels_isa(void);
/// Whether this processor can run the variant `isa`.
int wc_kernels_supported(int isa);
/// The name of `isa` ("generic", "avx2", "avx512").
const char *wc_kernels_name(int isa);

/// What the product does to each value of C before storing it: add bias[row] (when bias is not NULL; else 0), then
/// clamp to [low, high] as min(max(x, low), high) in Swift (a NaN stays NaN) — a convolution's bias and fused
/// Relu/Clip, rounded as the separate nodes round them.
typedef struct {
    const float *bias;
    float low, high;
} wc_epilogue;

/// C = A·B, with A m×k in packed form, B k×n row-major (row stride ldb) and C m×n row-major (row stride ldc).
/// Each C value is the sum over kk in order, in blocks of 256, of A·B products (fused multiply-adds where the
/// variant has them), then `epilogue` (when not NULL). Runs on the calling thread with the variant `wc_kernels_isa()`.
void wc_gemm_packed(int m, int n, int k, const float *packed, const float *b, long ldb, float *c, long ldc,
                    const wc_epilogue *epilogue);
/// The same with a given variant (which this processor must support).
void wc_gemm_packed_isa(int isa, int m, int n, int k, const float *packed, const float *b, long ldb, float *c, long ldc,
                        const wc_epilogue *epilogue);

/// Depthwise convolution of one plane held inside a border (`plane`: row stride `width`, the window of output (oy, ox)
/// starting at oy·sh rows and ox·sw columns in), k×k `taps` in row-major order, stride sw of 1 or 2. Outputs are
/// computed 16 (AVX-512) or 8 at a time, so every row must be readable for ⌈ow/16⌉·16 outputs (stride 2: twice that;
/// `PaddedPlane` leaves that room). Each output sums bias, then tap·input in row-major order, products rounded first:
/// bit-identical to the definition.
void wc_depthwise_plane(const float *plane, long width, int kh, int kw, int dh, int dw, int sh, int sw,
                        const float *taps, float bias, float *out, int oh, int ow);

#endif
