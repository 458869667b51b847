/*  yard_json.h — msgpack -> JSON (jansson), the conventions of
    `yard subscribe --help`: maps are objects (a key that is not a string
    is written as its JSON text), strings are strings, bin (and a string
    that is not UTF-8) is {"$bin": "<base64>"}, ext is {"$ext": TYPE,
    "$data": "<base64>"}, integers above 2^63-1 are decimal strings, NaN
    and infinities null. Each returns a new reference, NULL when out of
    memory. */
#ifndef YARD_JSON_H
#define YARD_JSON_H

#include <stddef.h>

#include <jansson.h>
#include <msgpack.h>

/*  "<base64>" of the bytes. */
json_t *yard_json_base64(const void *data, size_t len);

/*  {"$bin": "<base64>"}. */
json_t *yard_json_bin(const void *data, size_t len);

/*  A JSON string, or {"$bin": ...} when the bytes are not UTF-8. */
json_t *yard_json_text(const void *data, size_t len);

/*  One msgpack object. */
json_t *yard_json_from_mp(const msgpack_object *o);

/*  One encoded msgpack value (the whole of data); NULL when it is not
    exactly one value (or out of memory); JSON null for no bytes. */
json_t *yard_json_from_msgpack(const void *data, size_t len);

#endif
