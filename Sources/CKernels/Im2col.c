// im2col for short rows: a table of input offsets per tap and output position, built once per call and shared by
// every channel and image, instead of one copy per output row (a call of memmove for 2 or 4 floats on the last
// layers of a network).
#include "CKernels.h"
#include <stdlib.h>

int wc_im2col_short(const float *input, int c, int h, int w, int first_image, int images, int first_channel,
                    int channels, const wc_window *win, int oh, int ow, float *col) {
    const int taps = win->kh * win->kw, ohw = oh * ow;
    const long cols = (long)images * ohw, plane = (long)h * w;
    int *table = malloc(sizeof(int) * (size_t)taps * ohw);
    if (!table) return 0;
    for (int t = 0; t < taps; t++) {
        const int ki = t / win->kw, kj = t % win->kw;
        for (int p = 0; p < ohw; p++) {
            const int iy = (p / ow) * win->sh + ki * win->dh - win->pad_top;
            const int ix = (p % ow) * win->sw + kj * win->dw - win->pad_left;
            table[t * ohw + p] = iy >= 0 && iy < h && ix >= 0 && ix < w ? iy * w + ix : -1;
        }
    }
    for (int ch = 0; ch < channels; ch++)
        for (int t = 0; t < taps; t++) {
            const int *offsets = table + t * ohw;
            float *row = col + ((long)ch * taps + t) * cols;
            for (int img = 0; img < images; img++) {
                const float *src = input + ((long)(first_image + img) * c + first_channel + ch) * plane;
                float *dst = row + (long)img * ohw;
                for (int p = 0; p < ohw; p++) dst[p] = offsets[p] >= 0 ? src[offsets[p]] : 0.0f;
            }
        }
    free(table);
    return 1;
}
