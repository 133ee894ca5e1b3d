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
/// Whether `wc_gemm_packed` takes an m×k by k×n product with the weights as vectors (AVX-512, few columns: one image's
/// small maps), where its usual kernel leaves lanes idle. The same values either way.
int wc_gemm_vectors(int m, int n, int k);
void wc_gemm_packed(int m, int n, int k, const float *packed, const float *b, long ldb, float *c, long ldc,
                    const wc_epilogue *epilogue);
/// `wc_gemm_packed` for one of a Winograd layer's sixteen per-point products: 16 columns (the 16 tiles of an 8×8 map)
/// stay on the panel kernel, which reads its weights one stream at a time (see `wc_gemm_vectors`). The same values.
void wc_gemm_packed_per_point(int m, int n, int k, const float *packed, const float *b, long ldb, float *c, long ldc,
                              const wc_epilogue *epilogue);
/// C = A·B as `wc_gemm_packed`, with A as it stands: m rows of k values, row stride lda (a fully-connected layer's
/// weight, never copied). Each C value is the same sum, in the same order, as `wc_gemm_packed` gives on A packed.
void wc_gemm_rows(int m, int n, int k, const float *a, long lda, const float *b, long ldb, float *c, long ldc,
                  const wc_epilogue *epilogue);
void wc_gemm_rows_isa(int isa, int m, int n, int k, const float *a, long lda, const float *b, long ldb, float *c,
                      long ldc, const wc_epilogue *epilogue);
/// y[r·incy] = alpha·(row r of A · x) + beta·y[r·incy] for rows 0..<rows of A (k values each, row stride lda) and x
/// (k contiguous values); y is not read where beta is 0. Each row's sum in one order whatever the rows (so rows split
/// over threads give the same values). AVX-512 and AVX2 (`wc_dot_rows_runs`); runs on the calling thread.
int wc_dot_rows_runs(void);
void wc_dot_rows(int rows, int k, const float *a, long lda, const float *x, float alpha, float beta, float *y,
                 long incy);
/// dst[j][i] = src[i][j] for a rows×cols matrix src (row stride lds) into dst (row stride ldd).
void wc_transpose(int rows, int cols, const float *src, long lds, float *dst, long ldd);

/// The same with a given variant (which this processor must support).
void wc_gemm_packed_isa(int isa, int m, int n, int k, const float *packed, const float *b, long ldb, float *c, long ldc,
                        const wc_epilogue *epilogue);

/// A convolution's output pass over `count` values of one channel: dst[i] = min(max(src[i] + bias (+ residual[i]),
/// low), high), the additions in that order and the clamp as Swift rounds it (a NaN stays NaN); `src` may be `dst`.
/// A bias of −0 leaves every value as it is, −0 included (values that already hold their bias).
void wc_conv_epilogue(const float *src, float *dst, long count, float bias, const float *residual, float low,
                      float high);
/// The same for a product of `images` images' columns (`product`: `channels` rows of row stride `cols`, image i's
/// ohw values of a row at i·ohw) into NCHW: out[i·image_stride + o·ohw + j] (and residual, or NULL, at the same index)
/// for channel o with bias[o] (0 when `bias` is NULL).
void wc_conv_scatter(const float *product, long cols, int images, int channels, long ohw, float *out,
                     long image_stride, const float *bias, const float *residual, float low, float high);
/// wc_conv_epilogue with the variant for `isa` (one that wc_kernels_supported), for tests.
void wc_conv_epilogue_isa(int isa, const float *src, float *dst, long count, float bias, const float *residual,
                          float low, float high);

/// A convolution window: kernel, strides, dilations, and the padding before the first row and column.
typedef struct {
    int kh, kw, sh, sw, dh, dw, pad_top, pad_left;
} wc_window;

/// Direct convolution on packed weights (AVX-512 or AVX2): no im2col matrix and no product buffer. `wc_conv_pad` copies a group
/// of `images` images (image g at image + g·image_stride: c planes of h×w) side by side inside zero borders into
/// `padded` (wc_conv_padded_count floats; for a stride of 2 each row as its even and odd columns), its bordered rows
/// [first_row, first_row + rows) of wc_conv_padded_rows (with one image's rows flat, also the left border of the row
/// after them, which the last outputs' right taps read); `c` and `images` must be the same in wc_conv_padded_count,
/// `wc_conv_pad` and `wc_conv_direct`, which choose the layout from them; `wc_conv_direct` then computes output rows [first_row,
/// first_row + rows) of output channels [first, first + count) (first a multiple of 8) of those images into `out` (image g's
/// [channels, oh, ow] planes at out + g·out_image_stride; `residual`, or NULL, the same), from the weights in `packed`
/// (the wc_pack_rows form of [channels, c·kh·kw]). Each output is the sum over (channel, ki, kj) in order of fused
/// multiply-adds, as `wc_gemm_packed` sums an im2col matrix (with AVX2's weights as vectors, less the rows and columns
/// of taps that read only the border: their products are zeros, which leave the sum's bits as they are for finite
/// weights), then + bias (0 when NULL), + residual, then min(max(x, low), high) as Swift rounds it. Only where
/// `wc_conv_direct_runs`: the AVX-512 or AVX2 variant is chosen and the horizontal stride is 1 or 2. `h` is the
/// images' height (the rows of the copy past pad_top + h are the bottom border).
int wc_conv_direct_runs(const wc_window *window);
/// Whether `wc_conv_direct` should sum a layer of `oc` channels of k = c·kh·kw weights each, on oh×ow outputs, with
/// the weights as vectors (`vectors`: AVX2; AVX-512 for one image's rows of 4 outputs or more, up to 1 MB of weights),
/// its copies holding `images` images each (`wc_conv_vectors_images`).
int wc_conv_direct_vectors(int k, int oc, int oh, int ow, int images);
/// The images a copy holds when the weights are vectors, for a batch of `batch`: several on small maps with AVX2 (a
/// block then takes one position of several images, and sums only the taps that read them), else one.
int wc_conv_vectors_images(int oh, int ow, int batch);
/// A 1×1 convolution (stride 1, no padding) of `images` images with the weights as vectors (AVX2 only): output
/// channels [first, first + count) (first a multiple of 8) of the c input planes of `plane` values at input + i·in_image
/// for image i, into out + i·out_image (the image's channel 0; `residual`, or NULL, the same), from the wc_pack_rows
/// form of [channels, c]: each output the same sum, with the same bias, residual and clamp, as `wc_conv_direct` gives.
/// c·plane < 2³¹.
void wc_conv_pointwise_vectors(const float *input, long in_image, int images, int c, long plane, const float *packed,
                               int first, int count, const float *bias, const float *residual, long out_image,
                               float low, float high, float *out);
/// The share of the output vectors' lanes that are outputs when a copy holds `images` images of `c` channels (one
/// image's rows run flat where that leaves fewer lanes idle: AVX-512, strides of 1, 64 weights an output or more), and
/// the number of images (at most `most`, and no more than fill 64 lanes of a row) with the largest share side by side,
/// the fewest of equals.
double wc_conv_direct_useful(int c, int w, const wc_window *window, int oh, int ow, int images);
int wc_conv_direct_images(int w, const wc_window *window, int oh, int ow, int most);
/// Floats for a copy of up to `images` images (a last copy of one image may lay its rows flat).
size_t wc_conv_padded_count(int c, int w, const wc_window *window, int oh, int ow, int images);
int wc_conv_padded_rows(const wc_window *window, int oh);
void wc_conv_pad(const float *image, long image_stride, int images, int c, int h, int w, const wc_window *window,
                 int oh, int ow, int first_row, int rows, float *padded);
void wc_conv_direct(const float *padded, int images, int c, int h, int w, const wc_window *window, int oh, int ow,
                    const float *packed, int first, int count, int first_row, int rows, const float *bias,
                    const float *residual, long out_image_stride, float low, float high, int vectors, float *out);

/// Max pooling of the `count` h×w planes at `input` (one after another) into their oh×ow outputs at `output`, sixteen
/// planes at a time, one per lane (AVX-512 gathers; with AVX2 eight planes copied channels last). Each output is the
/// value `wc_maxpool_rows` gives (a NaN of the window where it holds one). Only where `wc_maxpool_across_runs` says so:
/// this processor's variant has the kernel and oh·ow is at most 64 (25 where the separable kernel of `wc_maxpool_rows`
/// runs with AVX-512, and with AVX2 for 3×3 windows at stride 2).
int wc_maxpool_across_runs(int h, int w, const wc_window *window, int oh, int ow);
/// Max pooling of `count` planes straight from the input, one after another, no copy: with AVX-512 at strides 1 and 2
/// along the rows, windows up to 4 wide and undilated along them, planes of up to 512 rows (each row's maxima under
/// sixteen outputs, then each output row's maximum down its window); with AVX2 planes 8 to 16 wide into outputs up to
/// 8 wide (each plane in registers). Each output is the value `wc_maxpool_rows` gives (a NaN of the window where it
/// holds one). Only where `wc_maxpool_planes_runs`.
int wc_maxpool_planes_runs(int h, int w, const wc_window *window, int oh, int ow);
void wc_maxpool_planes(const float *input, long count, int h, int w, const wc_window *window, float *output, int oh,
                       int ow);
void wc_maxpool_across(const float *input, long count, int h, int w, const wc_window *window, float *output, int oh,
                       int ow);
/// Global average pooling of `planes` planes of `size` values each (one after another) into one value each: the plane's
/// values summed in order from 0, then divided by `size` (AVX-512 and AVX2: `wc_global_average_runs`; sixteen or eight
/// planes a vector, each lane one plane's sum).
int wc_global_average_runs(void);
void wc_global_average(const float *input, long planes, long size, float *output);

/// The row kernels: depthwise convolution and max pooling of one h×w plane (`window`: any strides, dilations and
/// padding) into oh×ow outputs, from a bordered copy in `scratch` that they make (wc_depthwise_rows_scratch_count(…) and
/// wc_maxpool_scratch_count(…) floats, at least wc_row_copy_count(…)). Its border must hold 0 for wc_depthwise_rows and
/// −∞ for wc_maxpool_rows before the first call; later calls for planes of the same shape reuse it as they leave it.
size_t wc_row_copy_count(int h, int w, const wc_window *window, int oh, int ow);
/// Depthwise: k×k `taps` in row-major order; each output is bias, then fma(input, tap, sum) for every tap in row-major
/// order, then + residual[i] (when `residual` is not NULL) and min(max(x, low), high) as Swift rounds it.
void wc_depthwise_rows(const float *plane, int h, int w, const wc_window *window, const float *taps, float bias,
                       float *out, int oh, int ow, const float *residual, float low, float high, float *scratch);
/// Whether wc_depthwise_rows runs its stride-2 kernel without the bordered copy for `window` and outputs `ow` wide
/// (AVX2, stride 2 along the rows, no dilation along them, kernels up to 7×7, outputs 7 to 15 wide).
int wc_depthwise_stride2_runs(const wc_window *window, int ow);
/// Whether wc_depthwise_rows runs one of its kernels without the bordered copy (no dilation): with AVX2 3×3 at stride 1
/// with padding 1 on outputs as large as the input and 12 or more wide, or at stride 2 with left padding 0 or 1 on
/// outputs half the input's width and 8 or more wide (6 or more at left padding 1), 5×5 at stride 1 with padding 2 on
/// outputs as large as the input and 12 or more wide, or 5×5 at stride 2 with left padding 1 or 2 on outputs half the
/// input's width and 16 or more wide; with AVX-512 3×3 and 5×5 at strides 1 and 2, any padding, on planes of more
/// than 64 values.
int wc_depthwise_uncopied_runs(int h, int w, const wc_window *window, int oh, int ow);
/// The scratch wc_depthwise_rows needs, zeros before its first call: the bordered copy (wc_row_copy_count), or at
/// stride 2 with AVX2 the zeros and edge stretches of its kernel without the copy, whichever is larger.
size_t wc_depthwise_rows_scratch_count(int h, int w, const wc_window *window, int oh, int ow);
/// Max pool: each output is the greatest value of its window, or a NaN of the window if it holds one (a border cell
/// never wins). Its scratch is wc_maxpool_scratch_count(…) floats, −∞ before the first call.
size_t wc_maxpool_scratch_count(int h, int w, const wc_window *window, int oh, int ow);
/// Whether wc_maxpool_rows runs its separable kernel for `window` (AVX-512 with DQ, or AVX2; strides 1 and 2).
int wc_maxpool_separable_runs(const wc_window *window);
void wc_maxpool_rows(const float *plane, int h, int w, const wc_window *window, float *out, int oh, int ow,
                     float *scratch);

/// Depthwise convolution of `count` channels of one image, vectorised across channels (16 or 8 at a time): `input`
/// holds the channels' h×w planes one after another, `weights` their kh×kw filters, `bias` their biases (or NULL);
/// `output` (and `residual`, or NULL) their oh×ow planes. Each output is bias, then fma(input, tap, sum) for the taps
/// inside the input in row-major order; then + residual, then the clamp min(max(v, low), high) as Swift rounds it —
/// bit-identical to wc_depthwise_rows followed by the separate Add and Clip. `scratch` holds
/// wc_depthwise_channels_scratch(count, h, w, kh, kw, oh, ow) floats.
void wc_depthwise_channels(const float *input, int count, int h, int w, const float *weights, const float *bias,
                           const wc_window *window, float *output, int oh, int ow, const float *residual, float low,
                           float high, float *scratch);
size_t wc_depthwise_channels_scratch(int count, int h, int w, int kh, int kw, int oh, int ow);
/// Whether wc_depthwise_channels is the quickest path for one image's planes with this window and these sizes on this
/// processor (AVX-512: 5×5 windows onto outputs 5 to 8 wide; 3×3 onto outputs up to 2 wide, and at stride 2 onto 5
/// to 8 wide).
int wc_depthwise_across16_pays(const wc_window *window, int h, int w, int oh, int ow);

/// Depthwise convolution of the NCHW planes [first, first + count) (plane p is channel p % channels of image
/// p / channels; `input`, `output` and `residual` (or NULL) point at plane 0), each plane's outputs taken a vector at a
/// time in row-major order: masked loads where a tap's inputs are consecutive; with AVX-512 also permutes of the plane
/// held in registers on planes of up to 64 floats, else gathers; with AVX2 only where every tap's inputs are consecutive
/// (stride 1, ow == w). Each output is bias, then fma(input, tap, sum) for the taps inside the input in row-major
/// order; then + residual, then min(max(v, low), high) as Swift rounds it, as wc_depthwise_channels computes it.
/// `scratch` holds wc_depthwise_flat_scratch(oh, ow, kh, kw) bytes. Returns 0, doing nothing, where
/// `wc_depthwise_flat_runs` is 0 (the chosen kernels have no such path).
int wc_depthwise_flat_runs(int h, int w, const wc_window *window, int oh, int ow);
int wc_depthwise_flat(const float *input, int channels, long first, long count, int h, int w, const float *weights,
                      const float *bias, const wc_window *window, float *output, int oh, int ow, const float *residual,
                      float low, float high, void *scratch);
size_t wc_depthwise_flat_scratch(int oh, int ow, int kh, int kw);

/// The weight and bias gradients of a depthwise convolution for channels [first, first + count): dweight[ch][tap] =
/// Σ dY·X under the tap over every image and output, dbias[ch] = Σ dY (`x` [n, c, h, w], `dy` [n, c, oh, ow]; the
/// sums in vector lanes, in an order of their own). `scratch` holds wc_depthwise_weight_gradient_scratch(…) floats.
void wc_depthwise_weight_gradient(const float *x, const float *dy, int n, int c, int h, int w, const wc_window *window,
                                  int oh, int ow, int first, int count, float *dweight, float *dbias, float *scratch);
size_t wc_depthwise_weight_gradient_scratch(int h, int w, const wc_window *window, int oh, int ow);

/// im2col of channels [first_channel, first_channel + channels) of images [first_image, first_image + images) of an
/// NCHW input with c channels of h×w: row (ch·kh·kw + tap) of `col` holds, for every image in order, the oh·ow inputs
/// under that tap (0 over padding). Any window: rows of 16 outputs or more copied row by row, shorter ones through a
/// table of offsets shared by every channel and image.
void wc_im2col(const float *input, int c, int h, int w, int first_image, int images, int first_channel, int channels,
               const wc_window *window, int oh, int ow, float *col);
/// Output rows [first_row, first_row + rows) of wc_im2col, row by row whatever ow: row (ch·kh·kw + tap) of `col` holds,
/// for every image in order, the rows·ow inputs under that tap.
void wc_im2col_rows(const float *input, int c, int h, int w, int first_image, int images, int first_channel,
                    int channels, const wc_window *window, int first_row, int rows, int ow, float *col);
/// wc_im2col with the variant for `isa` (one that wc_kernels_supported), for tests.
void wc_im2col_isa(int isa, const float *input, int c, int h, int w, int first_image, int images, int first_channel,
                   int channels, const wc_window *window, int oh, int ow, float *col);

/// Winograd F(2×2,3×3) input transform of one h×w plane (padding pt rows above, pl columns left): for each of its th×tw
/// output tiles t (row-major), v[ξ·stride + t] = (Bᵀ·d·B)[ξ] of the tile's 4×4 input patch d (0 outside the plane).
void wc_winograd_input(const float *plane, int h, int w, int th, int tw, int pt, int pl, float *v, long stride);

/// Winograd output transform of one oh×ow output plane from its tiles' 16 products m[ξ·stride + t]: Aᵀ·m·A, plus
/// `bias`, plus `residual` (the same plane of a tensor to add, or NULL), clamped to [low, high] as Swift's
/// min(max(x, low), high) does.
void wc_winograd_output(const float *m, long stride, int th, int tw, float bias, const float *residual, float low,
                        float high, float *out, int oh, int ow);

/// One image's Winograd convolution for rows of tiles [r0, r1) and output channels [first, first + count) (`first` a
/// multiple of 8), the transforms and the 16 products a row of tiles at a time (AVX2 only: callers check the kernel
/// set): input [c, h, w] with padding pt, pl; U[ξ] at u + ξ·u_stride in the wc_pack_rows form of [output channels, c];
/// output channel o's plane at out + o·oh·ow (`residual`, or NULL, the same), with bias[o] (bias may be NULL), then
/// clamped to [low, high]. The same bits as wc_winograd_input, wc_gemm_packed_per_point and wc_winograd_output.
/// `scratch`: wc_winograd_rows_scratch_count(c, ow) floats.
void wc_winograd_rows(const float *input, int c, int h, int w, int pt, int pl, const float *u, long u_stride,
                      int first, int count, const float *bias, const float *residual, float low, float high,
                      float *out, int oh, int ow, int r0, int r1, float *scratch);
size_t wc_winograd_rows_scratch_count(int c, int ow);

/// Runs task(context, piece) for every piece in 0..<pieces over `workers` threads: the calling thread and the pool's
/// helper threads (started on first use, kept for the life of the process), each taking the next piece not yet taken,
/// so a slower worker takes fewer; returns when every piece has finished, without waiting for a helper that took none.
/// Idle helpers spin for 0.2 ms before they sleep, so back-to-back regions start without a wake-up. A call made while
/// another region runs (from another thread, or nested in a piece while every other worker still runs one, or inside
/// such a nested region) runs all its pieces on the calling thread; one nested in a piece once another worker has none
/// left to take runs as a region of its own, which that worker joins (`wc_pool_idle_workers`).
/// `first_share`: for two pieces on two workers, the share of the work in piece 0 (which the calling thread runs; 0 where
/// not known): the pool then learns from the two pieces' times how to split the next such region
/// (`wc_pool_caller_share`).
typedef void (*wc_pool_task)(void *context, int piece);
void wc_pool_run_pieces(int workers, long pieces, wc_pool_task task, void *context, double first_share);
/// The share of a two-piece region's work to give its first piece, the calling thread's, so that the two workers finish
/// together, as learnt from the last such regions (0.5 to start with, within 0.2…0.8): the two cores may run at
/// different speeds. 0.5 inside a piece of a region and while `wc_pool_split_by_speed(0)` is in effect.
double wc_pool_caller_share(void);
/// Whether two-piece regions are split by the learnt share, and teach it (on by default). Process-wide.
void wc_pool_split_by_speed(int on);
/// Whether the calling thread is running a piece of a region (nonzero: 1 of a region of the pool, 2 of one started
/// inside such a piece, 3 of one run on the calling thread alone).
int wc_pool_in_part(void);
/// Inside a piece of a region: how many of its workers have no piece left to take and wait for it to end (they take
/// pieces of a region started from this piece); 0 elsewhere, inside a region started from a piece, and while
/// `wc_pool_share_idle(0)` is in effect.
int wc_pool_idle_workers(void);
/// Whether regions started inside a piece take the idle workers (`wc_pool_idle_workers`); on by default.
void wc_pool_share_idle(int on);
/// The most workers the calling thread's regions are planned for (0: no limit; `ComputeThreads.count` reads it), and
/// setting it; returns the previous limit.
int wc_pool_worker_limit(void);
int wc_pool_limit_workers(int workers);

#endif
