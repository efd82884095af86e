#include "dl_codecs.h"

#include <stdio.h>   // jpeglib.h needs FILE
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

/// libjpeg error manager that records instead of exiting.
typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf escape;
    dl_jpeg_result *result;
} dl_error_mgr;

static void dl_error_exit(j_common_ptr cinfo) {
    dl_error_mgr *mgr = (dl_error_mgr *)cinfo->err;
    mgr->result->error_code = mgr->base.msg_code;
    (*cinfo->err->format_message)(cinfo, mgr->result->error);
    longjmp(mgr->escape, 1);
}

static void dl_emit_message(j_common_ptr cinfo, int level) {
    dl_error_mgr *mgr = (dl_error_mgr *)cinfo->err;
    if (level >= 0) return;  // trace messages
    mgr->base.num_warnings++;
    mgr->result->warnings++;
    if (mgr->base.msg_code == JWRN_JPEG_EOF) mgr->result->premature_end = 1;
    if (mgr->result->warning[0] == 0) (*cinfo->err->format_message)(cinfo, mgr->result->warning);
}

static void dl_output_message(j_common_ptr cinfo) { (void)cinfo; }

static int map_color_space(J_COLOR_SPACE cs) {
    switch (cs) {
    case JCS_GRAYSCALE: return DL_JPEG_CS_GRAY;
    case JCS_RGB: return DL_JPEG_CS_RGB;
    case JCS_YCbCr: return DL_JPEG_CS_YCBCR;
    case JCS_CMYK: return DL_JPEG_CS_CMYK;
    case JCS_YCCK: return DL_JPEG_CS_YCCK;
    default: return DL_JPEG_CS_UNKNOWN;
    }
}

/// Shared set-up: error manager, memory source, header, output colour space and scale.
/// Must be called inside the setjmp scope of the caller.
static void read_header(struct jpeg_decompress_struct *cinfo, const uint8_t *data, size_t size,
                        int scale_denom, dl_jpeg_result *result) {
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    result->width = (int)cinfo->image_width;
    result->height = (int)cinfo->image_height;
    result->components = cinfo->num_components;
    result->color_space = map_color_space(cinfo->jpeg_color_space);
    result->progressive = jpeg_has_multiple_scans(cinfo) ? 1 : 0;
    result->saw_adobe = cinfo->saw_Adobe_marker ? 1 : 0;
    if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
        cinfo->out_color_space = JCS_CMYK;
    } else {
        cinfo->out_color_space = JCS_RGB;
    }
    cinfo->scale_num = 1;
    cinfo->scale_denom = (unsigned int)(scale_denom > 0 ? scale_denom : 1);
    cinfo->dct_method = JDCT_ISLOW;
    cinfo->do_fancy_upsampling = TRUE;
    jpeg_calc_output_dimensions(cinfo);
    result->out_width = (int)cinfo->output_width;
    result->out_height = (int)cinfo->output_height;
    result->out_components = cinfo->out_color_components;
}

static void init_error(struct jpeg_decompress_struct *cinfo, dl_error_mgr *mgr, dl_jpeg_result *result) {
    memset(result, 0, sizeof(*result));
    cinfo->err = jpeg_std_error(&mgr->base);
    mgr->base.error_exit = dl_error_exit;
    mgr->base.emit_message = dl_emit_message;
    mgr->base.output_message = dl_output_message;
    mgr->result = result;
}

int dl_jpeg_header(const uint8_t *data, size_t size, int scale_denom, dl_jpeg_result *result) {
    struct jpeg_decompress_struct cinfo;
    dl_error_mgr mgr;
    init_error(&cinfo, &mgr, result);
    if (setjmp(mgr.escape)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    read_header(&cinfo, data, size, scale_denom, result);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

int dl_jpeg_decode(const uint8_t *data, size_t size, int scale_denom,
                   uint8_t *out, size_t out_capacity, dl_jpeg_result *result) {
    struct jpeg_decompress_struct cinfo;
    dl_error_mgr mgr;
    init_error(&cinfo, &mgr, result);
    if (setjmp(mgr.escape)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    read_header(&cinfo, data, size, scale_denom, result);
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    if (stride * cinfo.output_height > out_capacity) {
        snprintf(result->error, DL_MESSAGE_CAPACITY, "output buffer too small (%zu < %zu)",
                 out_capacity, stride * cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[4];
        int n = 0;
        for (; n < 4 && cinfo.output_scanline + (JDIMENSION)n < cinfo.output_height; n++) {
            rows[n] = out + (size_t)(cinfo.output_scanline + (JDIMENSION)n) * stride;
        }
        jpeg_read_scanlines(&cinfo, rows, (JDIMENSION)n);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

int dl_jpeg_encode_rgb(const uint8_t *rgb, int width, int height, int quality,
                       uint8_t **out, size_t *out_size, char error[DL_MESSAGE_CAPACITY]) {
    struct jpeg_compress_struct cinfo;
    dl_error_mgr mgr;
    dl_jpeg_result scratch;
    memset(&scratch, 0, sizeof(scratch));
    cinfo.err = jpeg_std_error(&mgr.base);
    mgr.base.error_exit = dl_error_exit;
    mgr.base.emit_message = dl_emit_message;
    mgr.base.output_message = dl_output_message;
    mgr.result = &scratch;
    unsigned char *buffer = NULL;
    unsigned long buffer_size = 0;
    if (setjmp(mgr.escape)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        strncpy(error, scratch.error, DL_MESSAGE_CAPACITY - 1);
        error[DL_MESSAGE_CAPACITY - 1] = 0;
        return -1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &buffer_size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    cinfo.optimize_coding = TRUE;
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * 3;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buffer;
    *out_size = buffer_size;
    return 0;
}

void dl_free(void *pointer) { free(pointer); }
