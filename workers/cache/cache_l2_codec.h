/*  cache_l2_codec.h — the bytes of one yard-cache entry in Redis (the
    value of PREFIX:k:<key>; format in cache_l2.h and PROTOCOL.md 10a):
    a flags byte, the tags, the value raw or zlib-compressed. Pure
    functions, no I/O: decoding never trusts its input (Redis is shared,
    anyone may have written there). */
#ifndef YARD_CACHE_L2_CODEC_H
#define YARD_CACHE_L2_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache_l2.h"

/*  Encodes an entry into a malloc'd buffer (*out_len bytes). Values of at
    least compress_min bytes (compress_min 0: never) are zlib-compressed
    when that makes them smaller; *saved gets the bytes saved (0 when
    stored raw). A negative entry has no value. NULL if out of memory. */
uint8_t *yard_l2_encode(const void *value, size_t vlen, bool negative,
                        const yard_lru_bytes_t *tags, size_t ntags,
                        size_t compress_min, size_t *out_len, size_t *saved);

/*  Decodes data[0..len) into out (hit or negative, value malloc'd, tags
    into out->tagbuf), refusing values that inflate beyond max_value.
    Returns 0, or -1 for bytes that are not a valid entry (out is then a
    miss with nothing to free). */
int yard_l2_decode(const void *data, size_t len, size_t max_value,
                   yard_l2_got_t *out);

#endif
