// JPEG (libjpeg-turbo) and PNG (libpng) decoding to 8-bit RGB for image-folder datasets.
// Both libraries report errors by calling a handler that must not return; the handlers here copy the message and
// longjmp back to the decode call, which frees what it allocated and returns the message. Nothing exits or prints.
#include "CImageCodecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

static void set_error(char *error, size_t error_size, const char *message) {
    if (error_size == 0) return;
    snprintf(error, error_size, "%s", message);
}

/// Checks width × height × 3 against the limit without overflow.
static int too_many_values(size_t width, size_t height, size_t max_values) {
    if (width == 0 || height == 0) return 0;
    return width > max_values / 3 / height;
}

// MARK: JPEG

typedef struct {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_error_context;

static void jpeg_fail(j_common_ptr cinfo) {
    jpeg_error_context *context = (jpeg_error_context *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, context->message);
    longjmp(context->jump, 1);
}

/// Warnings are ignored (libjpeg recovers from them, as PIL does), except a premature end of data: a truncated
/// file would otherwise decode with its missing rows filled with grey.
static void jpeg_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_fail(cinfo);
    }
}

static int decode_jpeg(const uint8_t *data, size_t size, size_t max_values, wc_rgb_image *image, char *error, size_t error_size) {
    struct jpeg_decompress_struct cinfo;
    jpeg_error_context context;
    uint8_t *volatile pixels = NULL;
    cinfo.err = jpeg_std_error(&context.manager);
    context.manager.error_exit = jpeg_fail;
    context.manager.emit_message = jpeg_message;
    context.message[0] = 0;
    if (setjmp(context.jump)) {
        char text[JMSG_LENGTH_MAX + 32];
        snprintf(text, sizeof text, "corrupt or truncated JPEG (%s)", context.message);
        set_error(error, error_size, text);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return 2;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        set_error(error, error_size, "CMYK JPEGs are not supported; convert the file to RGB");
        jpeg_destroy_decompress(&cinfo);
        return 3;
    }
    if (too_many_values(cinfo.image_width, cinfo.image_height, max_values)) {
        char text[160];
        snprintf(text, sizeof text, "%u×%u pixels × 3 channels is more than the %zu-value limit", cinfo.image_width,
                 cinfo.image_height, max_values);
        set_error(error, error_size, text);
        jpeg_destroy_decompress(&cinfo);
        return 4;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t width = cinfo.output_width, height = cinfo.output_height, stride = width * 3;
    pixels = malloc(stride * height > 0 ? stride * height : 1);
    if (pixels == NULL) {
        set_error(error, error_size, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return 5;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    image->width = (int)width;
    image->height = (int)height;
    image->pixels = pixels;
    return 0;
}

// MARK: PNG

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
    char message[200];
} png_context;

static void png_fail(png_structp png, png_const_charp message) {
    png_context *context = (png_context *)png_get_error_ptr(png);
    snprintf(context->message, sizeof context->message, "%s", message);
    png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp message) { (void)png; (void)message; }

static void png_read_memory(png_structp png, png_bytep out, png_size_t count) {
    png_context *context = (png_context *)png_get_io_ptr(png);
    if (count > context->size - context->offset) {
        png_error(png, "unexpected end of file");
    }
    memcpy(out, context->data + context->offset, count);
    context->offset += count;
}

static int decode_png(const uint8_t *data, size_t size, size_t max_values, wc_rgb_image *image, char *error, size_t error_size) {
    png_context context = { data, size, 0, "" };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_fail, png_warn);
    if (png == NULL) {
        set_error(error, error_size, "out of memory");
        return 5;
    }
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile pixels = NULL;
    png_bytepp volatile rows = NULL;
    if (info == NULL || setjmp(png_jmpbuf(png))) {
        char text[240];
        snprintf(text, sizeof text, "corrupt or truncated PNG (%s)", info == NULL ? "out of memory" : context.message);
        set_error(error, error_size, text);
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        return 2;
    }
    png_set_read_fn(png, &context, png_read_memory);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if (too_many_values(width, height, max_values)) {
        snprintf(error, error_size, "%u×%u pixels × 3 channels is more than the %zu-value limit", width, height, max_values);
        png_destroy_read_struct(&png, &info, NULL);
        return 4;
    }
    // To 8-bit RGB as PIL's convert("RGB") does: 16-bit samples keep their high byte, palettes and low bit depths
    // expand, grey is copied to R, G and B, alpha is dropped (not composited); no gamma correction.
    png_set_strip_16(png);
    png_set_palette_to_rgb(png);
    png_set_expand_gray_1_2_4_to_8(png);
    png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8) {
        png_error(png, "cannot convert this PNG to 8-bit RGB");
    }
    size_t stride = png_get_rowbytes(png, info);
    if (stride != (size_t)width * 3) {
        png_error(png, "unexpected row size");
    }
    pixels = malloc(stride * height > 0 ? stride * height : 1);
    rows = malloc(sizeof(png_bytep) * (height > 0 ? height : 1));
    if (pixels == NULL || rows == NULL) {
        png_error(png, "out of memory");
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * stride;
    png_read_image(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    image->width = (int)width;
    image->height = (int)height;
    image->pixels = pixels;
    return 0;
}

int wc_decode_rgb(const uint8_t *data, size_t size, size_t max_values, wc_rgb_image *image, char *error, size_t error_size) {
    image->width = 0;
    image->height = 0;
    image->pixels = NULL;
    static const uint8_t png_signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n' };
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
        return decode_jpeg(data, size, max_values, image, error, error_size);
    }
    if (size >= 8 && memcmp(data, png_signature, 8) == 0) {
        return decode_png(data, size, max_values, image, error, error_size);
    }
    set_error(error, error_size, "not a JPEG or PNG file (no JPEG or PNG signature)");
    return 1;
}

void wc_image_free(wc_rgb_image *image) {
    free(image->pixels);
    image->pixels = NULL;
}
