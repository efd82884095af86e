#include "dl_codecs.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <zlib.h>

// zlib's inflate with automatic gzip/zlib header detection (windowBits 15 + 32).
int dl_gunzip(const uint8_t *data, size_t size, size_t limit,
              uint8_t **out, size_t *out_size, char error[DL_MESSAGE_CAPACITY]) {
    z_stream stream;
    memset(&stream, 0, sizeof(stream));
    error[0] = 0;
    *out = NULL;
    *out_size = 0;
    if (inflateInit2(&stream, 15 + 32) != Z_OK) {
        snprintf(error, DL_MESSAGE_CAPACITY, "zlib could not start: %s", stream.msg ? stream.msg : "out of memory");
        return -1;
    }
    size_t capacity = size * 4 + 1024;
    if (capacity > limit) capacity = limit;
    uint8_t *buffer = malloc(capacity);
    if (!buffer) { inflateEnd(&stream); snprintf(error, DL_MESSAGE_CAPACITY, "out of memory"); return -1; }
    stream.next_in = (Bytef *)data;
    size_t consumed = 0, produced = 0;
    int status = Z_OK;
    while (status != Z_STREAM_END) {
        if (produced == capacity) {
            if (capacity >= limit) {
                snprintf(error, DL_MESSAGE_CAPACITY, "the uncompressed data is larger than %zu bytes", limit);
                free(buffer); inflateEnd(&stream); return -1;
            }
            size_t grown = capacity * 2 > limit ? limit : capacity * 2;
            uint8_t *bigger = realloc(buffer, grown);
            if (!bigger) { free(buffer); inflateEnd(&stream); snprintf(error, DL_MESSAGE_CAPACITY, "out of memory"); return -1; }
            buffer = bigger;
            capacity = grown;
        }
        size_t in_chunk = size - consumed > 0x40000000u ? 0x40000000u : size - consumed;
        size_t out_chunk = capacity - produced > 0x40000000u ? 0x40000000u : capacity - produced;
        stream.next_in = (Bytef *)data + consumed;
        stream.avail_in = (uInt)in_chunk;
        stream.next_out = buffer + produced;
        stream.avail_out = (uInt)out_chunk;
        status = inflate(&stream, Z_NO_FLUSH);
        consumed += in_chunk - stream.avail_in;
        produced += out_chunk - stream.avail_out;
        if (status == Z_BUF_ERROR && consumed == size) status = Z_DATA_ERROR;  // input ended early
        if (status != Z_OK && status != Z_STREAM_END) {
            snprintf(error, DL_MESSAGE_CAPACITY, "%s", status == Z_DATA_ERROR && consumed == size && !stream.msg
                     ? "the compressed data ends early (truncated file)" : (stream.msg ? stream.msg : "corrupt compressed data"));
            free(buffer); inflateEnd(&stream); return -1;
        }
    }
    inflateEnd(&stream);
    *out = buffer;
    *out_size = produced;
    return 0;
}
