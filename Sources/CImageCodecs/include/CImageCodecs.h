#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>

/// An image decoded to 8-bit RGB, row after row, 3 bytes a pixel (`pixels` is malloc'ed: free with wc_image_free).
typedef struct {
    int width;
    int height;
    uint8_t *pixels;
} wc_rgb_image;

/// Decodes a JPEG or PNG file held in memory (`data`, `size` bytes) to 8-bit RGB. Grayscale, palette and 16-bit
/// images are converted to 8-bit RGB and alpha is dropped, as PIL's `convert("RGB")` does. The header's width and
/// height are checked (width × height × 3 ≤ max_values) before any pixel memory is allocated.
/// Returns 0 on success; otherwise a non-zero code with a one-line reason in `error` (never exits, never prints).
int wc_decode_rgb(const uint8_t *data, size_t size, size_t max_values, wc_rgb_image *image, char *error, size_t error_size);

void wc_image_free(wc_rgb_image *image);

#endif
