/*  cache_request.c — the payloads of yard.cache (PROTOCOL.md 10a): parsing
    a request or a cache.invalidate event, and encoding the event.

    The bytes come from any client: yard_msgpack_check walks them first
    (one object spanning them, bounded depth and counts, lengths within
    the bytes), then a small reader takes the fields as views, without
    allocating. Unknown keys are skipped; a key given twice is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "cache.h"

static const char *S_OPS[] = {
    [YARD_CACHE_GET] = "get",
    [YARD_CACHE_SET] = "set",
    [YARD_CACHE_SET_NEGATIVE] = "set_negative",
    [YARD_CACHE_DEL] = "del",
    [YARD_CACHE_INVALIDATE_TAGS] = "invalidate_tags",
    [YARD_CACHE_INVALIDATE_PREFIX] = "invalidate_prefix",
    [YARD_CACHE_INVALIDATE_GLOB] = "invalidate_glob",
    [YARD_CACHE_CLEAR] = "clear",
    [YARD_CACHE_STATS] = "stats",
};
#define S_NOPS (sizeof S_OPS / sizeof S_OPS[0])
#define S_KNOWN_OPS                                                            \
    "get, set, set_negative, del, invalidate_tags, invalidate_prefix, "        \
    "invalidate_glob, clear, stats"

const char *yard_cache_op_name(yard_cache_op_t op)
{
    return (size_t)op < S_NOPS ? S_OPS[op] : "unknown";
}

bool yard_cache_op_mutates(yard_cache_op_t op)
{
    return op != YARD_CACHE_GET && op != YARD_CACHE_STATS;
}

/* ---- A minimal reader over checked msgpack ------------------------------ */

typedef struct {
    const uint8_t *p; /*  the bytes (already checked) */
    size_t len;       /*  their length */
    size_t off;       /*  read position */
} s_rd_t;

static int s_need(const s_rd_t *r, size_t n)
{
    return r->off + n <= r->len ? 0 : -1;
}

static uint64_t s_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*  A container header: map (want_map) or array. Sets *n. */
static int s_container(s_rd_t *r, bool want_map, uint32_t *n)
{
    if (s_need(r, 1))
        return -1;
    uint8_t b = r->p[r->off];
    uint8_t fix = want_map ? 0x80 : 0x90;
    uint8_t b16 = want_map ? 0xde : 0xdc;
    if ((b & 0xf0) == fix) {
        *n = b & 0x0f;
        r->off++;
        return 0;
    }
    size_t w = b == b16 ? 2 : b == b16 + 1 ? 4 : 0;
    if (!w || s_need(r, 1 + w))
        return -1;
    *n = (uint32_t)s_be(r->p + r->off + 1, w);
    r->off += 1 + w;
    return 0;
}

/*  A str or bin: sets the view and whether it was a str. */
static int s_bytes(s_rd_t *r, const uint8_t **ptr, size_t *len, bool *is_str)
{
    if (s_need(r, 1))
        return -1;
    uint8_t b = r->p[r->off];
    size_t w;
    if ((b & 0xe0) == 0xa0) {
        *len = b & 0x1f;
        r->off++;
        *is_str = true;
    } else {
        switch (b) {
        case 0xd9:
        case 0xc4:
            w = 1;
            break;
        case 0xda:
        case 0xc5:
            w = 2;
            break;
        case 0xdb:
        case 0xc6:
            w = 4;
            break;
        default:
            return -1;
        }
        if (s_need(r, 1 + w))
            return -1;
        *len = (size_t)s_be(r->p + r->off + 1, w);
        *is_str = b >= 0xd9;
        r->off += 1 + w;
    }
    if (s_need(r, *len))
        return -1;
    *ptr = r->p + r->off;
    r->off += *len;
    return 0;
}

/*  A non-negative integer. */
static int s_uint(s_rd_t *r, uint64_t *v)
{
    if (s_need(r, 1))
        return -1;
    uint8_t b = r->p[r->off];
    if (b <= 0x7f) {
        *v = b;
        r->off++;
        return 0;
    }
    size_t w = b == 0xcc   ? 1
               : b == 0xcd ? 2
               : b == 0xce ? 4
               : b == 0xcf ? 8
                           : 0;
    if (b == 0xd0 || b == 0xd1 || b == 0xd2 || b == 0xd3) {
        /*  a signed encoding of a non-negative value is fine */
        w = (size_t)1 << (b - 0xd0);
        if (s_need(r, 1 + w) || (r->p[r->off + 1] & 0x80))
            return -1;
    }
    if (!w || s_need(r, 1 + w))
        return -1;
    *v = s_be(r->p + r->off + 1, w);
    r->off += 1 + w;
    return 0;
}

static int s_skip(s_rd_t *r)
{
    return yard_msgpack_skip(r->p, r->len, &r->off) == 0 ? 0 : -1;
}

/* ---- Requests ----------------------------------------------------------- */

enum {
    F_OP = 1 << 0,
    F_KEY = 1 << 1,
    F_VALUE = 1 << 2,
    F_TTL = 1 << 3,
    F_TAGS = 1 << 4,
    F_PREFIX = 1 << 5,
    F_PATTERN = 1 << 6,
    F_ORIGIN = 1 << 7,
};

static const struct {
    const char *name;
    unsigned bit;
} S_FIELDS[] = {
    {"op", F_OP},           {"key", F_KEY},       {"value", F_VALUE},
    {"ttl_ms", F_TTL},      {"tags", F_TAGS},     {"prefix", F_PREFIX},
    {"pattern", F_PATTERN}, {"origin", F_ORIGIN},
};

#define S_BAD(...)                                                             \
    do {                                                                       \
        snprintf(why, whylen, __VA_ARGS__);                                    \
        return -1;                                                             \
    } while (0)

/*  Reads the tags array into req. */
static int s_tags(s_rd_t *r, yard_cache_request_t *req, char *why,
                  size_t whylen)
{
    uint32_t n;
    if (s_container(r, false, &n) != 0)
        S_BAD("'tags' must be an array of strings");
    if (n > YARD_LRU_MAX_TAGS)
        S_BAD("'tags' holds %u tags, at most %d", n, YARD_LRU_MAX_TAGS);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *ptr;
        size_t len;
        bool is_str;
        if (s_bytes(r, &ptr, &len, &is_str) != 0 || !is_str)
            S_BAD("'tags' must be an array of strings");
        if (len < 1 || len > YARD_CACHE_MAX_TAG)
            S_BAD("each tag must be 1..%d bytes", YARD_CACHE_MAX_TAG);
        req->tags[i].ptr = ptr;
        req->tags[i].len = len;
    }
    req->ntags = n;
    return 0;
}

/*  Reads a key-like bytes field (bin or str, 1..YARD_CACHE_MAX_KEY). */
static int s_key_field(s_rd_t *r, const char *name, const uint8_t **ptr,
                       size_t *len, char *why, size_t whylen)
{
    bool is_str;
    if (s_bytes(r, ptr, len, &is_str) != 0)
        S_BAD("'%s' must be bin or str", name);
    if (*len < 1 || *len > YARD_CACHE_MAX_KEY)
        S_BAD("'%s' must be 1..%d bytes", name, YARD_CACHE_MAX_KEY);
    return 0;
}

int yard_cache_request_parse(const void *data, size_t len, bool event,
                             yard_cache_request_t *req, char *why,
                             size_t whylen)
{
    memset(req, 0, sizeof *req);
    if (len == 0)
        S_BAD("empty payload: expected a msgpack map with 'op'");
    if (yard_msgpack_check(data, len) != 0)
        S_BAD("payload is not one well-formed msgpack value");
    s_rd_t r = {data, len, 0};
    uint32_t n;
    if (s_container(&r, true, &n) != 0)
        S_BAD("payload must be a msgpack map");
    unsigned seen = 0;
    const uint8_t *op = NULL, *pattern = NULL;
    size_t oplen = 0, patlen = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *name;
        size_t nlen;
        bool is_str;
        if (s_bytes(&r, &name, &nlen, &is_str) != 0 || !is_str)
            S_BAD("map keys must be strings");
        unsigned bit = 0;
        for (size_t f = 0; f < sizeof S_FIELDS / sizeof S_FIELDS[0]; f++)
            if (strlen(S_FIELDS[f].name) == nlen &&
                memcmp(S_FIELDS[f].name, name, nlen) == 0)
                bit = S_FIELDS[f].bit;
        if (bit & seen)
            S_BAD("'%.*s' given twice", (int)nlen, (const char *)name);
        seen |= bit;
        int rc = 0;
        switch (bit) {
        case F_OP:
            if (s_bytes(&r, &op, &oplen, &is_str) != 0 || !is_str)
                S_BAD("'op' must be a string");
            break;
        case F_KEY:
            rc = s_key_field(&r, "key", &req->key, &req->klen, why, whylen);
            break;
        case F_VALUE:
            if (s_bytes(&r, &req->value, &req->vlen, &is_str) != 0)
                S_BAD("'value' must be bin or str");
            if (req->vlen > YARD_CACHE_MAX_VALUE)
                S_BAD("'value' is %zu bytes, at most %u", req->vlen,
                      (unsigned)YARD_CACHE_MAX_VALUE);
            break;
        case F_TTL:
            if (s_uint(&r, &req->ttl_ms) != 0 ||
                req->ttl_ms > YARD_CACHE_MAX_TTL_MS)
                S_BAD("'ttl_ms' must be an integer 0..%llu",
                      (unsigned long long)YARD_CACHE_MAX_TTL_MS);
            break;
        case F_TAGS:
            rc = s_tags(&r, req, why, whylen);
            break;
        case F_PREFIX:
            rc = s_key_field(&r, "prefix", &req->prefix, &req->plen, why,
                             whylen);
            break;
        case F_PATTERN:
            if (s_bytes(&r, &pattern, &patlen, &is_str) != 0 || !is_str)
                S_BAD("'pattern' must be a string");
            if (patlen < 1 || patlen > YARD_CACHE_MAX_KEY ||
                memchr(pattern, 0, patlen))
                S_BAD("'pattern' must be 1..%d bytes without NUL",
                      YARD_CACHE_MAX_KEY);
            memcpy(req->pattern, pattern, patlen);
            req->pattern[patlen] = 0;
            break;
        case F_ORIGIN:
            if (s_bytes(&r, &req->origin, &req->olen, &is_str) != 0)
                S_BAD("'origin' must be a string");
            break;
        default:
            if (s_skip(&r) != 0)
                S_BAD("payload is not one well-formed msgpack value");
        }
        if (rc != 0)
            return -1;
    }
    if (!op)
        S_BAD("missing 'op' (one of: " S_KNOWN_OPS ")");
    size_t which = S_NOPS;
    for (size_t i = 0; i < S_NOPS; i++)
        if (strlen(S_OPS[i]) == oplen && memcmp(S_OPS[i], op, oplen) == 0)
            which = i;
    if (which == S_NOPS) {
        char shown[40];
        size_t m = oplen < 32 ? oplen : 32;
        for (size_t i = 0; i < m; i++)
            shown[i] = op[i] >= 0x20 && op[i] < 0x7f ? (char)op[i] : '?';
        shown[m] = 0;
        S_BAD("unknown op '%s%s' (known: " S_KNOWN_OPS ")", shown,
              oplen > m ? "..." : "");
    }
    req->op = (yard_cache_op_t)which;
    if (event && !(seen & F_ORIGIN))
        S_BAD("missing 'origin'");
    switch (req->op) {
    case YARD_CACHE_SET:
        if (!event && !(seen & F_VALUE))
            S_BAD("set needs 'value'");
        /*  fallthrough */
    case YARD_CACHE_GET:
    case YARD_CACHE_SET_NEGATIVE:
    case YARD_CACHE_DEL:
        if (!(seen & F_KEY))
            S_BAD("%s needs 'key'", S_OPS[which]);
        break;
    case YARD_CACHE_INVALIDATE_TAGS:
        if (req->ntags == 0)
            S_BAD("invalidate_tags needs 'tags' (1..%d strings)",
                  YARD_LRU_MAX_TAGS);
        break;
    case YARD_CACHE_INVALIDATE_PREFIX:
        if (!(seen & F_PREFIX))
            S_BAD("invalidate_prefix needs 'prefix'");
        break;
    case YARD_CACHE_INVALIDATE_GLOB:
        if (!(seen & F_PATTERN))
            S_BAD("invalidate_glob needs 'pattern'");
        break;
    case YARD_CACHE_CLEAR:
    case YARD_CACHE_STATS:
        break;
    }
    return 0;
}

/* ---- Events ------------------------------------------------------------- */

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

int yard_cache_event_encode(const yard_cache_request_t *req, const char *origin,
                            uint8_t **out, size_t *len)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    bool has_arg = req->op != YARD_CACHE_CLEAR;
    msgpack_pack_map(&pk, has_arg ? 3 : 2);
    s_pack_str(&pk, "op");
    s_pack_str(&pk, yard_cache_op_name(req->op));
    switch (req->op) {
    case YARD_CACHE_SET:
    case YARD_CACHE_SET_NEGATIVE:
    case YARD_CACHE_DEL:
        s_pack_str(&pk, "key");
        msgpack_pack_bin(&pk, req->klen);
        msgpack_pack_bin_body(&pk, req->key, req->klen);
        break;
    case YARD_CACHE_INVALIDATE_TAGS:
        s_pack_str(&pk, "tags");
        msgpack_pack_array(&pk, req->ntags);
        for (size_t i = 0; i < req->ntags; i++) {
            msgpack_pack_str(&pk, req->tags[i].len);
            msgpack_pack_str_body(&pk, req->tags[i].ptr, req->tags[i].len);
        }
        break;
    case YARD_CACHE_INVALIDATE_PREFIX:
        s_pack_str(&pk, "prefix");
        msgpack_pack_bin(&pk, req->plen);
        msgpack_pack_bin_body(&pk, req->prefix, req->plen);
        break;
    case YARD_CACHE_INVALIDATE_GLOB:
        s_pack_str(&pk, "pattern");
        s_pack_str(&pk, req->pattern);
        break;
    default:
        break;
    }
    s_pack_str(&pk, "origin");
    s_pack_str(&pk, origin);
    if (!buf.data) {
        msgpack_sbuffer_destroy(&buf);
        return -1;
    }
    *len = buf.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&buf);
    return 0;
}
