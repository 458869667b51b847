/*  yard_hash.h — non-cryptographic 64-bit hashing for tables, on xxHash
    (XXH3, Debian libxxhash-dev). Keyed by a per-process random seed so a
    remote peer cannot aim collisions at the broker's tables. */
#ifndef YARD_HASH_H
#define YARD_HASH_H

#include <stddef.h>
#include <stdint.h>

/*  XXH3 64-bit hash of data with a seed. */
uint64_t yard_hash64(const void *data, size_t len, uint64_t seed);

/*  Hash of the concatenation of two byte strings, length-prefixed so
    ("ab","c") and ("a","bc") differ. */
uint64_t yard_hash64_pair(const void *a, size_t alen, const void *b,
                          size_t blen, uint64_t seed);

#endif
