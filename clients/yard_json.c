/*  yard_json.c — msgpack to JSON (jansson), shared by the yard CLI and
    yard-health. */
#include "yard_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

json_t *yard_json_base64(const void *bytes, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(cap);
    if (!out)
        return NULL;
    sodium_bin2base64(out, cap, bytes, len, sodium_base64_VARIANT_ORIGINAL);
    json_t *s = json_string(out);
    free(out);
    return s;
}

json_t *yard_json_bin(const void *data, size_t len)
{
    return json_pack("{s:o}", "$bin", yard_json_base64(data, len));
}

json_t *yard_json_text(const void *data, size_t len)
{
    json_t *s = json_stringn(len ? data : "", len);
    return s ? s : yard_json_bin(data, len);
}

json_t *yard_json_from_mp(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 <= (uint64_t)INT64_MAX)
            return json_integer((json_int_t)o->via.u64);
        char digits[24];
        snprintf(digits, sizeof(digits), "%" PRIu64, o->via.u64);
        return json_string(digits);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        json_t *r = json_real(o->via.f64);
        return r ? r : json_null(); /*  NaN, infinities */
    }
    case MSGPACK_OBJECT_STR:
        return yard_json_text(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return yard_json_bin(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_EXT:
        return json_pack("{s:i, s:o}", "$ext", (int)o->via.ext.type, "$data",
                         yard_json_base64(o->via.ext.ptr, o->via.ext.size));
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++)
            if (json_array_append_new(a,
                                      yard_json_from_mp(&o->via.array.ptr[i])))
                json_decref(a), a = NULL;
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            json_t *v = yard_json_from_mp(&o->via.map.ptr[i].val);
            /*  A UTF-8 string key as is; any other key as its JSON text.
                (The set calls take v, even when they fail.) */
            json_t *kj =
                k->type == MSGPACK_OBJECT_STR
                    ? json_stringn(k->via.str.size ? k->via.str.ptr : "",
                                   k->via.str.size)
                    : NULL;
            int rc;
            if (kj) {
                rc = json_object_setn_new(m, json_string_value(kj),
                                          json_string_length(kj), v);
            } else {
                kj = yard_json_from_mp(k);
                char *text =
                    kj ? json_dumps(kj, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
                rc = text ? json_object_set_new(m, text, v) : -1;
                if (!text)
                    json_decref(v);
                free(text);
            }
            json_decref(kj);
            if (rc)
                json_decref(m), m = NULL;
        }
        return m;
    }
    default:
        return json_null();
    }
}

json_t *yard_json_from_msgpack(const void *data, size_t len)
{
    if (!data || len == 0)
        return json_null();
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    json_t *out = NULL;
    if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        off == len)
        out = yard_json_from_mp(&u.data);
    msgpack_unpacked_destroy(&u);
    return out;
}
