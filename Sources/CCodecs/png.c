#include "dl_codecs.h"

#include <stdlib.h>
#include <string.h>
#include <png.h>

// libpng's simplified API reports errors through return codes and image.message, so no setjmp here.

static void copy_message(char *dst, const char *src) {
    strncpy(dst, src, DL_MESSAGE_CAPACITY - 1);
    dst[DL_MESSAGE_CAPACITY - 1] = 0;
}

static int begin(png_image *image, const uint8_t *data, size_t size, dl_png_result *result) {
    memset(image, 0, sizeof(*image));
    memset(result, 0, sizeof(*result));
    image->version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(image, data, size)) {
        copy_message(result->error, image->message);
        png_image_free(image);
        return -1;
    }
    result->width = (int)image->width;
    result->height = (int)image->height;
    result->has_alpha = (image->format & PNG_FORMAT_FLAG_ALPHA) ? 1 : 0;
    result->is_linear16 = (image->format & PNG_FORMAT_FLAG_LINEAR) ? 1 : 0;
    result->has_colormap = (image->format & PNG_FORMAT_FLAG_COLORMAP) ? 1 : 0;
    return 0;
}

int dl_png_header(const uint8_t *data, size_t size, dl_png_result *result) {
    png_image image;
    if (begin(&image, data, size, result) != 0) return -1;
    png_image_free(&image);
    return 0;
}

int dl_png_decode(const uint8_t *data, size_t size, int channels,
                  uint8_t *out, size_t out_capacity, dl_png_result *result) {
    png_image image;
    if (begin(&image, data, size, result) != 0) return -1;
    // 16-bit PNGs almost always hold sRGB-encoded values; without this flag libpng would treat
    // them as linear light and brighten them when reducing to 8 bits.
    image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    image.format = channels == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
    size_t needed = PNG_IMAGE_SIZE(image);
    if (needed > out_capacity) {
        copy_message(result->error, "output buffer too small");
        png_image_free(&image);
        return -1;
    }
    if (!png_image_finish_read(&image, NULL, out, 0, NULL)) {
        copy_message(result->error, image.message);
        png_image_free(&image);
        return -1;
    }
    return 0;
}

int dl_png_encode_rgb(const uint8_t *rgb, int width, int height,
                      uint8_t **out, size_t *out_size, char error[DL_MESSAGE_CAPACITY]) {
    png_image image;
    memset(&image, 0, sizeof(image));
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = PNG_FORMAT_RGB;
    // Speed over size (zlib's fast settings, no filter search): Dropline's PNGs are working files
    // (drift stages, heatmaps, converted datasets), written in bulk.
    image.flags |= PNG_IMAGE_FLAG_FAST;
    // One pass into a buffer of the documented worst-case size (asking for the size first would
    // compress the image twice).
    png_alloc_size_t size = PNG_IMAGE_PNG_SIZE_MAX(image);
    uint8_t *buffer = malloc(size);
    if (buffer == NULL) {
        copy_message(error, "out of memory");
        return -1;
    }
    if (!png_image_write_to_memory(&image, buffer, &size, 0, rgb, 0, NULL)) {
        copy_message(error, image.message);
        free(buffer);
        return -1;
    }
    uint8_t *fitted = realloc(buffer, size ? size : 1);
    *out = fitted ? fitted : buffer;
    *out_size = size;
    return 0;
}
