/*  yard_hash.c — 64-bit table hashing on XXH3 (libxxhash). The seed is
    the caller's per-process random value, so a remote peer that picks
    routing ids or job names cannot aim them at one bucket. */
#include "yard_hash.h"

#include <assert.h>
#include <string.h>

/*  Compile XXH3 into this file: the one-shot hash inlines into the table
    lookups, and XXH3_state_t may live on the stack without depending on
    the shared library's private struct layout. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define S_PAIR_STACK 256 /*  pairs up to this (with prefix) hash in one go */

uint64_t yard_hash64(const void *data, size_t len, uint64_t seed)
{
    assert(data || len == 0);
    return XXH3_64bits_withSeed(data, len, seed);
}

uint64_t yard_hash64_pair(const void *a, size_t alen, const void *b,
                          size_t blen, uint64_t seed)
{
    assert(a || alen == 0);
    assert(b || blen == 0);
    /*  Hash of prefix || a || b, where prefix is alen as 8 little-endian
        bytes: the prefix fixes where a ends, so ("ab","c") != ("a","bc"). */
    unsigned char buf[S_PAIR_STACK];
    uint64_t n = alen;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(n >> (8 * i));
    if (alen <= sizeof(buf) - 8 && blen <= sizeof(buf) - 8 - alen) {
        /*  Short keys (routing ids, names): copy and hash once; cheaper
            than the streaming setup, which derives a secret per seed. */
        if (alen)
            memcpy(buf + 8, a, alen);
        if (blen)
            memcpy(buf + 8 + alen, b, blen);
        return XXH3_64bits_withSeed(buf, 8 + alen + blen, seed);
    }
    /*  Long keys: stream. XXH3 guarantees the streaming digest equals the
        one-shot hash of the concatenation, so both paths are one function. */
    XXH3_state_t state;
    XXH3_INITSTATE(&state);
    XXH3_64bits_reset_withSeed(&state, seed);
    XXH3_64bits_update(&state, buf, 8);
    if (alen)
        XXH3_64bits_update(&state, a, alen);
    if (blen)
        XXH3_64bits_update(&state, b, blen);
    return XXH3_64bits_digest(&state);
}
