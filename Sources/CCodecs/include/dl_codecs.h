// Thin C wrappers over libjpeg(-turbo) and libpng for Dropline's Imaging module.
//
// Why C: libjpeg reports fatal errors through a callback that must not return (its default calls
// exit()), and libpng's classic API longjmps. Swift cannot call setjmp, so the decoders run here,
// where a longjmp only ever crosses C frames, and every failure comes back as a return code and a
// message. Nothing here allocates the output image: Swift checks the pixel limit against the header
// and owns the buffers.
#ifndef DL_CODECS_H
#define DL_CODECS_H

#include <stddef.h>
#include <stdint.h>

#define DL_MESSAGE_CAPACITY 200

/// Colour spaces as libjpeg reports them in the file.
enum {
    DL_JPEG_CS_UNKNOWN = 0,
    DL_JPEG_CS_GRAY = 1,
    DL_JPEG_CS_RGB = 2,
    DL_JPEG_CS_YCBCR = 3,
    DL_JPEG_CS_CMYK = 4,
    DL_JPEG_CS_YCCK = 5,
};

/// What a JPEG header and decode told us.
typedef struct {
    int width, height;          // as stored
    int components;             // as stored
    int color_space;            // DL_JPEG_CS_*
    int progressive;            // 1 when progressive (multi-scan)
    int saw_adobe;              // an APP14 Adobe marker was present (CMYK is then stored inverted)
    int out_width, out_height;  // after DCT scaling
    int out_components;         // 3 (RGB) or 4 (CMYK, converted by the caller)
    int warnings;               // number of recoverable warnings
    int premature_end;          // the data ended before the image did (truncated file)
    int error_code;             // libjpeg message code of the fatal error, 0 when none
    char warning[DL_MESSAGE_CAPACITY];  // first warning, libjpeg's own words
    char error[DL_MESSAGE_CAPACITY];    // fatal error, libjpeg's own words
} dl_jpeg_result;

/// Reads the JPEG header. `scale_denom` (1, 2, 4 or 8) sets out_width/out_height. Returns 0 or -1.
int dl_jpeg_header(const uint8_t *data, size_t size, int scale_denom, dl_jpeg_result *result);

/// Decodes into `out` (out_width * out_height * out_components bytes, rows packed). Returns 0, or -1
/// on a fatal error. Warnings do not fail the call; they are counted in `result`.
int dl_jpeg_decode(const uint8_t *data, size_t size, int scale_denom,
                   uint8_t *out, size_t out_capacity, dl_jpeg_result *result);

/// Encodes packed 8-bit RGB. On success `*out` is a malloc'd buffer the caller frees with dl_free.
int dl_jpeg_encode_rgb(const uint8_t *rgb, int width, int height, int quality,
                       uint8_t **out, size_t *out_size, char error[DL_MESSAGE_CAPACITY]);

/// What libpng's simplified API told us about a PNG.
typedef struct {
    int width, height;
    int has_alpha;              // an alpha channel or a tRNS chunk
    int is_linear16;            // 16 bits per sample
    int has_colormap;
    char error[DL_MESSAGE_CAPACITY];
} dl_png_result;

/// Reads the PNG header. Returns 0 or -1.
int dl_png_header(const uint8_t *data, size_t size, dl_png_result *result);

/// Decodes to 8-bit RGB (channels = 3) or RGBA (channels = 4). 16-bit samples are taken as sRGB-encoded
/// and reduced to 8 bits (not treated as linear light). Returns 0 or -1.
int dl_png_decode(const uint8_t *data, size_t size, int channels,
                  uint8_t *out, size_t out_capacity, dl_png_result *result);

/// Encodes packed 8-bit RGB into a malloc'd buffer (free with dl_free). Returns 0 or -1.
int dl_png_encode_rgb(const uint8_t *rgb, int width, int height,
                      uint8_t **out, size_t *out_size, char error[DL_MESSAGE_CAPACITY]);

/// Inflates a gzip (or zlib) stream with zlib into a malloc'd buffer (free with dl_free), refusing to
/// grow past `limit` bytes. Returns 0, or -1 with the reason in `error`.
int dl_gunzip(const uint8_t *data, size_t size, size_t limit,
              uint8_t **out, size_t *out_size, char error[DL_MESSAGE_CAPACITY]);

void dl_free(void *pointer);

#endif
