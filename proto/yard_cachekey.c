/*  yard_cachekey.c — the response-cache policy of a SUBMIT and the cache
    key computed from it (PROTOCOL.md 10b), so that every client and the
    broker compute the same key for the same request.

    The key is SHA-256 (libsodium) over a canonical msgpack array
    [service, P, H]: P is the payload as bin, or, when the policy names
    payload fields, a map of those fields in byte order of their names
    with their values as sent; H is a map of the chosen headers in byte
    order. Input is trusted to be checked by the decoder already (the
    SUBMIT body passed yard_decode_submit), but every read is still
    bounds-checked. */
#include <msgpack.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "yard_proto.h"

/*  One name = value pair of a msgpack map, as raw spans. */
typedef struct {
    yard_bytes_t name;  /*  the key's str bytes */
    yard_bytes_t value; /*  the value's whole msgpack encoding */
} s_pair_t;

static uint32_t s_be(const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*  Reads a str header and body at p[*pos]. */
static int s_str(const uint8_t *p, size_t len, size_t *pos, yard_bytes_t *out)
{
    if (*pos >= len)
        return YARD_E_MALFORMED;
    uint8_t b = p[*pos];
    size_t hdr, n;
    if (b >= 0xa0 && b <= 0xbf) {
        hdr = 1;
        n = b & 0x1fu;
    } else if (b >= 0xd9 && b <= 0xdb) {
        size_t lb = (size_t)1 << (b - 0xd9);
        if (len - *pos < 1 + lb)
            return YARD_E_MALFORMED;
        hdr = 1 + lb;
        n = s_be(p + *pos + 1, lb);
    } else {
        return YARD_E_TYPE;
    }
    if (len - *pos - hdr < n)
        return YARD_E_MALFORMED;
    out->ptr = p + *pos + hdr;
    out->len = (uint32_t)n;
    *pos += hdr + n;
    return 0;
}

/*  Reads a map header at p[*pos]: YARD_E_TYPE if not a map. */
static int s_map(const uint8_t *p, size_t len, size_t *pos, uint32_t *n)
{
    if (*pos >= len)
        return YARD_E_MALFORMED;
    uint8_t b = p[*pos];
    if (b >= 0x80 && b <= 0x8f) {
        *n = b & 0x0fu;
        *pos += 1;
        return 0;
    }
    size_t lb = b == 0xde ? 2 : b == 0xdf ? 4 : 0;
    if (!lb)
        return YARD_E_TYPE;
    if (len - *pos < 1 + lb)
        return YARD_E_MALFORMED;
    *n = s_be(p + *pos + 1, lb);
    *pos += 1 + lb;
    return 0;
}

/*  Reads an array header at p[*pos]: YARD_E_TYPE if not an array. */
static int s_array(const uint8_t *p, size_t len, size_t *pos, uint32_t *n)
{
    if (*pos >= len)
        return YARD_E_MALFORMED;
    uint8_t b = p[*pos];
    if (b >= 0x90 && b <= 0x9f) {
        *n = b & 0x0fu;
        *pos += 1;
        return 0;
    }
    size_t lb = b == 0xdc ? 2 : b == 0xdd ? 4 : 0;
    if (!lb)
        return YARD_E_TYPE;
    if (len - *pos < 1 + lb)
        return YARD_E_MALFORMED;
    *n = s_be(p + *pos + 1, lb);
    *pos += 1 + lb;
    return 0;
}

/*  A list of up to YARD_CACHE_MAX_NAMES str (1..128 bytes each). */
static int s_names(const uint8_t *p, size_t len, size_t *pos, yard_bytes_t *out,
                   uint8_t *count)
{
    uint32_t n;
    int rc = s_array(p, len, pos, &n);
    if (rc)
        return rc;
    if (n > YARD_CACHE_MAX_NAMES)
        return YARD_E_TOO_LARGE;
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = s_str(p, len, pos, &out[i])))
            return rc;
        if (out[i].len == 0 || out[i].len > YARD_CACHE_MAX_NAME)
            return YARD_E_RANGE;
    }
    *count = (uint8_t)n;
    return 0;
}

int yard_cache_policy_parse(const yard_bytes_t *raw, yard_cache_policy_t *out)
{
    if (!raw || !out || (!raw->ptr && raw->len))
        return YARD_E_ARG;
    memset(out, 0, sizeof *out);
    if (raw->len == 0)
        return YARD_E_NOTFOUND; /*  no policy: do not cache */
    int rc = yard_msgpack_check(raw->ptr, raw->len);
    if (rc)
        return rc;
    const uint8_t *p = raw->ptr;
    size_t len = raw->len, pos = 0;
    uint32_t n;
    if ((rc = s_map(p, len, &pos, &n)))
        return rc == YARD_E_TYPE ? YARD_E_TYPE : rc;
    unsigned seen = 0;
    for (uint32_t i = 0; i < n; i++) {
        yard_bytes_t k;
        if ((rc = s_str(p, len, &pos, &k)))
            return rc == YARD_E_TYPE ? YARD_E_MALFORMED : rc;
        unsigned bit = 0;
        if (k.len == 6 && memcmp(k.ptr, "ttl_ms", 6) == 0) {
            bit = 1;
            size_t start = pos;
            if ((rc = yard_msgpack_skip(p, len, &pos)))
                return rc;
            uint8_t b = p[start];
            uint64_t v;
            if (b <= 0x7f)
                v = b;
            else if (b >= 0xcc && b <= 0xcf)
                v = b == 0xcf ? ((uint64_t)s_be(p + start + 1, 4) << 32) |
                                    s_be(p + start + 5, 4)
                              : s_be(p + start + 1, (size_t)1 << (b - 0xcc));
            else
                return YARD_E_TYPE;
            if (v > YARD_CACHE_POLICY_MAX_TTL_MS)
                return YARD_E_RANGE;
            out->ttl_ms = (uint32_t)v;
        } else if (k.len == 4 && memcmp(k.ptr, "tags", 4) == 0) {
            bit = 2;
            if ((rc = s_names(p, len, &pos, out->tags, &out->ntags)))
                return rc;
            if (out->ntags > YARD_CACHE_MAX_TAGS)
                return YARD_E_TOO_LARGE;
        } else if (k.len == 3 && memcmp(k.ptr, "key", 3) == 0) {
            bit = 4;
            if ((rc = s_names(p, len, &pos, out->key, &out->nkey)))
                return rc;
            out->has_key = true;
        } else if (k.len == 7 && memcmp(k.ptr, "exclude", 7) == 0) {
            bit = 8;
            if ((rc = s_names(p, len, &pos, out->exclude, &out->nexclude)))
                return rc;
        } else if (k.len == 7 && memcmp(k.ptr, "headers", 7) == 0) {
            bit = 16;
            if ((rc = s_names(p, len, &pos, out->headers, &out->nheaders)))
                return rc;
        } else if ((rc = yard_msgpack_skip(p, len, &pos))) {
            return rc; /*  unknown keys are ignored */
        }
        if (bit && (seen & bit))
            return YARD_E_MALFORMED;
        seen |= bit;
    }
    if (out->has_key && out->nexclude)
        return YARD_E_RANGE; /*  one or the other */
    return 0;
}

static int s_pair_cmp(const void *a, const void *b)
{
    const s_pair_t *x = a, *y = b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = memcmp(x->name.ptr, y->name.ptr, n);
    if (c)
        return c;
    return (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

static bool s_listed(const yard_bytes_t *names, size_t n, yard_bytes_t name)
{
    for (size_t i = 0; i < n; i++)
        if (names[i].len == name.len &&
            memcmp(names[i].ptr, name.ptr, name.len) == 0)
            return true;
    return false;
}

typedef struct {
    const yard_cache_policy_t *policy;
    s_pair_t *pairs;
    size_t n;
} s_hdr_ctx_t;

static int s_pick_header(const char *key, size_t klen, const char *value,
                         size_t vlen, void *arg)
{
    s_hdr_ctx_t *ctx = arg;
    yard_bytes_t name = {(const uint8_t *)key, (uint32_t)klen};
    if (s_listed(ctx->policy->headers, ctx->policy->nheaders, name)) {
        ctx->pairs[ctx->n].name = name;
        ctx->pairs[ctx->n].value.ptr = (const uint8_t *)value;
        ctx->pairs[ctx->n].value.len = (uint32_t)vlen;
        ctx->n++;
    }
    return 0;
}

int yard_cache_key(const yard_bytes_t *service, const yard_bytes_t *payload,
                   const yard_bytes_t *headers,
                   const yard_cache_policy_t *policy,
                   uint8_t out[YARD_CACHE_KEY_BYTES])
{
    if (!service || !payload || !headers || !policy || !out ||
        service->len == 0)
        return YARD_E_ARG;
    s_pair_t *fields = NULL;
    size_t nfields = 0;
    int rc = 0;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, service->ptr, service->len);

    if (!policy->has_key && policy->nexclude == 0) {
        msgpack_pack_bin_with_body(
            &pk, payload->ptr ? (const void *)payload->ptr : "", payload->len);
    } else {
        /*  Fields of a payload map: the payload must be one. */
        const uint8_t *p = payload->ptr;
        size_t len = payload->len, pos = 0;
        uint32_t n;
        if (len == 0 || yard_msgpack_check(p, len) != 0 ||
            s_map(p, len, &pos, &n) != 0) {
            rc = YARD_E_TYPE;
            goto done;
        }
        fields = calloc(n ? n : 1, sizeof *fields);
        if (!fields) {
            rc = YARD_E_NOMEM;
            goto done;
        }
        for (uint32_t i = 0; i < n; i++) {
            yard_bytes_t name;
            if (s_str(p, len, &pos, &name) != 0) {
                rc = YARD_E_TYPE; /*  a field name that is not a str */
                goto done;
            }
            size_t start = pos;
            if ((rc = yard_msgpack_skip(p, len, &pos)))
                goto done;
            bool take =
                policy->has_key
                    ? s_listed(policy->key, policy->nkey, name)
                    : !s_listed(policy->exclude, policy->nexclude, name);
            if (take) {
                fields[nfields].name = name;
                fields[nfields].value.ptr = p + start;
                fields[nfields].value.len = (uint32_t)(pos - start);
                nfields++;
            }
        }
        qsort(fields, nfields, sizeof *fields, s_pair_cmp);
        for (size_t i = 1; i < nfields; i++)
            if (s_pair_cmp(&fields[i - 1], &fields[i]) == 0) {
                rc = YARD_E_MALFORMED; /*  a field named twice */
                goto done;
            }
        msgpack_pack_map(&pk, nfields);
        for (size_t i = 0; i < nfields; i++) {
            msgpack_pack_str_with_body(&pk, fields[i].name.ptr,
                                       fields[i].name.len);
            msgpack_sbuffer_write(&buf, (const char *)fields[i].value.ptr,
                                  fields[i].value.len);
        }
    }

    s_pair_t hpairs[YARD_MAX_HEADERS];
    s_hdr_ctx_t ctx = {policy, hpairs, 0};
    if (policy->nheaders && headers->len &&
        (rc = yard_headers_each(headers, s_pick_header, &ctx)) != 0)
        goto done;
    qsort(hpairs, ctx.n, sizeof *hpairs, s_pair_cmp);
    msgpack_pack_map(&pk, ctx.n);
    for (size_t i = 0; i < ctx.n; i++) {
        msgpack_pack_str_with_body(&pk, hpairs[i].name.ptr, hpairs[i].name.len);
        msgpack_pack_str_with_body(&pk, hpairs[i].value.ptr,
                                   hpairs[i].value.len);
    }
    crypto_hash_sha256(out, (const unsigned char *)buf.data, buf.size);
done:
    free(fields);
    msgpack_sbuffer_destroy(&buf);
    return rc;
}

void yard_cache_key_hex(const uint8_t key[YARD_CACHE_KEY_BYTES],
                        char out[2 * YARD_CACHE_KEY_BYTES + 1])
{
    sodium_bin2hex(out, 2 * YARD_CACHE_KEY_BYTES + 1, key,
                   YARD_CACHE_KEY_BYTES);
}
