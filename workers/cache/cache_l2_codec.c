/*  cache_l2_codec.c — encoding of yard-cache entries in Redis (see
    cache_l2_codec.h). */
#include "cache_l2_codec.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#define S_KNOWN_FLAGS                                                          \
    (YARD_L2_FLAG_ZLIB | YARD_L2_FLAG_NEGATIVE | YARD_L2_FLAG_TAGS)

uint8_t *yard_l2_encode(const void *value, size_t vlen, bool negative,
                        const yard_lru_bytes_t *tags, size_t ntags,
                        size_t compress_min, size_t *out_len, size_t *saved)
{
    *saved = 0;
    if (negative)
        vlen = 0;
    if (ntags > YARD_LRU_MAX_TAGS)
        ntags = YARD_LRU_MAX_TAGS;
    size_t head = 1 + (ntags ? 1 : 0);
    for (size_t i = 0; i < ntags; i++)
        head += 1 + (tags[i].len > 255 ? 255 : tags[i].len);
    bool try_zlib = !negative && compress_min > 0 && vlen >= compress_min;
    size_t room = try_zlib ? compressBound((uLong)vlen) : vlen;
    if (room < vlen)
        room = vlen;
    uint8_t *out = malloc(head + room);
    if (!out)
        return NULL;
    uint8_t flags = 0;
    size_t n = 1;
    if (negative)
        flags |= YARD_L2_FLAG_NEGATIVE;
    if (ntags) {
        flags |= YARD_L2_FLAG_TAGS;
        out[n++] = (uint8_t)ntags;
        for (size_t i = 0; i < ntags; i++) {
            size_t tl = tags[i].len > 255 ? 255 : tags[i].len;
            out[n++] = (uint8_t)tl;
            memcpy(out + n, tags[i].ptr, tl);
            n += tl;
        }
    }
    if (try_zlib) {
        uLongf clen = (uLongf)room;
        if (compress2(out + n, &clen, value, (uLong)vlen, YARD_L2_ZLIB_LEVEL) ==
                Z_OK &&
            clen < vlen) {
            flags |= YARD_L2_FLAG_ZLIB;
            *saved = vlen - clen;
            out[0] = flags;
            *out_len = n + clen;
            return out;
        }
    }
    if (vlen)
        memcpy(out + n, value, vlen);
    out[0] = flags;
    *out_len = n + vlen;
    return out;
}

/*  Inflates src into a malloc'd buffer of at most max bytes. */
static int s_inflate(const uint8_t *src, size_t len, size_t max, uint8_t **out,
                     size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK)
        return -1;
    size_t cap = len * 4 < 4096 ? 4096 : len * 4;
    if (cap > max + 1)
        cap = max + 1;
    uint8_t *buf = malloc(cap);
    int rc = buf ? Z_OK : Z_MEM_ERROR;
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)len;
    size_t have = 0;
    while (rc == Z_OK) {
        if (have == cap) {
            if (cap > max) { /*  more than max: refuse */
                rc = Z_DATA_ERROR;
                break;
            }
            size_t grown = cap * 2 > max + 1 ? max + 1 : cap * 2;
            uint8_t *bigger = realloc(buf, grown);
            if (!bigger) {
                rc = Z_MEM_ERROR;
                break;
            }
            buf = bigger;
            cap = grown;
        }
        z.next_out = buf + have;
        z.avail_out = (uInt)(cap - have);
        rc = inflate(&z, Z_NO_FLUSH);
        have = cap - z.avail_out;
        if (rc == Z_BUF_ERROR)
            break; /*  no progress possible: a truncated stream */
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END || z.avail_in != 0 || have > max) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = have;
    return 0;
}

int yard_l2_decode(const void *data, size_t len, size_t max_value,
                   yard_l2_got_t *out)
{
    const uint8_t *p = data;
    out->hit = out->negative = false;
    out->value = NULL;
    out->len = 0;
    out->ntags = 0;
    if (len < 1 || (p[0] & ~S_KNOWN_FLAGS))
        return -1;
    uint8_t flags = p[0];
    size_t n = 1;
    if (flags & YARD_L2_FLAG_TAGS) {
        if (n >= len || p[n] == 0 || p[n] > YARD_LRU_MAX_TAGS)
            return -1;
        size_t count = p[n++];
        size_t used = 0;
        for (size_t i = 0; i < count; i++) {
            if (n >= len || p[n] == 0 || n + 1 + p[n] > len)
                return -1;
            size_t tl = p[n++];
            memcpy(out->tagbuf + used, p + n, tl);
            out->tags[i].ptr = out->tagbuf + used;
            out->tags[i].len = tl;
            used += tl;
            n += tl;
        }
        out->ntags = count;
    }
    if (flags & YARD_L2_FLAG_NEGATIVE) {
        if (n != len || (flags & YARD_L2_FLAG_ZLIB))
            return -1;
        out->negative = true;
        return 0;
    }
    const uint8_t *body = p + n;
    size_t blen = len - n;
    if (flags & YARD_L2_FLAG_ZLIB) {
        if (s_inflate(body, blen, max_value, &out->value, &out->len) != 0) {
            out->ntags = 0;
            return -1;
        }
    } else {
        if (blen > max_value) {
            out->ntags = 0;
            return -1;
        }
        if (blen) {
            out->value = malloc(blen);
            if (!out->value) {
                out->ntags = 0;
                return -1;
            }
            memcpy(out->value, body, blen);
        }
        out->len = blen;
    }
    out->hit = true;
    return 0;
}
