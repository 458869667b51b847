/*  yard_lru.h — the L1 cache of yard-cache: an in-memory key/value store
    with least-recently-used eviction, per-entry TTL, negative entries and
    tags. Pure logic: no I/O, no clock, no locking. Every call that can
    look at time takes the caller's monotonic now_ms, so tests drive it
    with an injected clock; a program that shares it between threads wraps
    it in one mutex.

    Structure:
      * a hash table (yard_map, keyed by a seeded XXH3 of the key) from key
        to entry, and a doubly linked list of the entries in recency order:
        get, set and set_negative move an entry to the front, eviction
        takes from the back;
      * a min-heap (yard_heap) of expiry times over the entries that have a
        TTL. Expired entries are dropped incrementally: each call first
        drops at most YARD_LRU_EXPIRE_BUDGET of them from the top of the
        heap (O(log n) each); get treats an entry past its expiry as a miss
        and drops it; making room for a new entry drops expired entries
        before it evicts live ones. No call ever scans every entry to
        expire, except those that scan by contract (below);
      * a tag index: tag -> list of links, one per entry carrying the tag,
        so invalidate_tag touches exactly those entries, and removing an
        entry unlinks its (at most YARD_LRU_MAX_TAGS) tags in O(1) each.
        A tag disappears from the index with its last entry.

    Size accounting ("bytes"): each entry is charged
        key bytes + value bytes + tag bytes
        + YARD_LRU_ENTRY_OVERHEAD + YARD_LRU_TAG_OVERHEAD per tag,
    an estimate of the entry's real footprint (struct, list and heap
    links, table slot, allocator header). The limits max_entries and
    max_bytes hold after every call.

    Scans: invalidate_prefix, invalidate_glob and clear visit every entry
    (O(n)); everything else is O(1) or O(log n) amortised, plus the
    entries a call removes.

    Expired entries not yet dropped still count in stats().entries and
    .bytes until a call drops them (call yard_lru_expire from a timer to
    free their memory while idle). They are never returned.

    Views returned by get point into the cache and stay valid until the
    next call on it: copy them before letting go of a lock. */
#ifndef YARD_LRU_H
#define YARD_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define YARD_LRU_MAX_TAGS 16            /*  tags per entry, at most */
#define YARD_LRU_MAX_TAG_LEN 255        /*  bytes in one tag, at most */
#define YARD_LRU_ENTRY_OVERHEAD 96      /*  bytes charged per entry */
#define YARD_LRU_TAG_OVERHEAD 48        /*  bytes charged per tag link */
#define YARD_LRU_EXPIRE_BUDGET 8        /*  expired entries dropped per call */
#define YARD_LRU_MAX_TTL_MS (1LL << 50) /*  longer TTLs are capped */

/*  Errors (negative). */
#define YARD_LRU_E_ARG (-1)       /*  empty key, bad tag, bad TTL */
#define YARD_LRU_E_TOO_LARGE (-2) /*  the entry alone exceeds max_bytes */
#define YARD_LRU_E_NOMEM (-3)     /*  out of memory */

typedef struct _yard_lru_t yard_lru_t;

/*  A byte string (a key or a tag). */
typedef struct {
    const void *ptr; /*  may be NULL when len is 0 */
    size_t len;
} yard_lru_bytes_t;

/*  What get found. */
typedef enum {
    YARD_LRU_MISS = 0,     /*  no live entry */
    YARD_LRU_HIT = 1,      /*  a value */
    YARD_LRU_NEGATIVE = 2, /*  a remembered miss */
} yard_lru_result_t;

/*  A hit's details (views valid until the next call on the cache). */
typedef struct {
    const uint8_t *value; /*  the value bytes (NULL for a negative) */
    size_t len;           /*  value length */
    int64_t ttl_ms;       /*  time left, 0 = no expiry */
    size_t ntags;         /*  tags the entry carries */
} yard_lru_found_t;

/*  Counters since creation (entries and bytes: now). */
typedef struct {
    uint64_t entries;       /*  entries stored, negatives included */
    uint64_t bytes;         /*  bytes charged (see above) */
    uint64_t max_entries;   /*  the limit */
    uint64_t max_bytes;     /*  the limit */
    uint64_t tags;          /*  distinct tags in the index */
    uint64_t hits;          /*  gets that found a value */
    uint64_t misses;        /*  gets that found nothing live */
    uint64_t negative_hits; /*  gets that found a negative entry */
    uint64_t sets;          /*  entries stored by set / set_negative */
    uint64_t evictions;     /*  live entries dropped to make room */
    uint64_t expirations;   /*  entries dropped because their TTL ran out */
} yard_lru_stats_t;

/*  Creates a cache holding at most max_entries entries (>= 1) and
    max_bytes bytes (>= YARD_LRU_ENTRY_OVERHEAD + 1); seed keys the hash
    so remote peers cannot aim collisions. NULL on bad limits or out of
    memory. */
yard_lru_t *yard_lru_new(size_t max_entries, size_t max_bytes, uint64_t seed);

/*  Frees every entry and the cache; nulls *self_p. Idempotent. */
void yard_lru_destroy(yard_lru_t **self_p);

/*  Stores value under key (replacing any entry, tags and all), carrying
    tags[0..ntags) (duplicates count once; each 1..YARD_LRU_MAX_TAG_LEN
    bytes), expiring ttl_ms after now_ms (0: never). Evicts expired, then
    least recently used entries until it fits. Returns 0;
    YARD_LRU_E_ARG (empty key, ntags > YARD_LRU_MAX_TAGS, bad tag,
    negative ttl); YARD_LRU_E_TOO_LARGE (the entry alone is over
    max_bytes; any previous entry of the key is removed all the same, so
    a stale value is never served); YARD_LRU_E_NOMEM. */
int yard_lru_set(yard_lru_t *self, const void *key, size_t klen,
                 const void *value, size_t vlen, const yard_lru_bytes_t *tags,
                 size_t ntags, int64_t ttl_ms, int64_t now_ms);

/*  Remembers that key has no value, for ttl_ms (> 0) from now_ms: get
    answers YARD_LRU_NEGATIVE until then. Replaces any entry. Errors as
    for set. */
int yard_lru_set_negative(yard_lru_t *self, const void *key, size_t klen,
                          int64_t ttl_ms, int64_t now_ms);

/*  Looks key up at now_ms. A live entry becomes the most recently used.
    Returns what was found; on YARD_LRU_HIT and YARD_LRU_NEGATIVE fills
    *out when out is not NULL. */
yard_lru_result_t yard_lru_get(yard_lru_t *self, const void *key, size_t klen,
                               int64_t now_ms, yard_lru_found_t *out);

/*  Removes key. Returns 1 if a live entry (value or negative) was
    removed, else 0 (an expired one is dropped and counted as expired). */
int yard_lru_del(yard_lru_t *self, const void *key, size_t klen,
                 int64_t now_ms);

/*  Removes every entry carrying tag (through the tag index: touches only
    those entries). Returns the live entries removed. */
size_t yard_lru_invalidate_tag(yard_lru_t *self, const void *tag, size_t len,
                               int64_t now_ms);

/*  Removes every entry whose key starts with prefix[0..len) (len 0: every
    entry). Scans all entries. Returns the live entries removed. */
size_t yard_lru_invalidate_prefix(yard_lru_t *self, const void *prefix,
                                  size_t len, int64_t now_ms);

/*  Removes every entry whose key matches pattern, a NUL-terminated
    fnmatch(3) glob (flags 0: `*`, `?`, `[...]`, `[!...]`, backslash
    escapes). Keys that contain a NUL byte never match. Scans all
    entries. Returns the live entries removed. */
size_t yard_lru_invalidate_glob(yard_lru_t *self, const char *pattern,
                                int64_t now_ms);

/*  Removes every entry. Returns the live entries removed (entries past
    their expiry at now_ms count as expirations). */
size_t yard_lru_clear(yard_lru_t *self, int64_t now_ms);

/*  Drops up to max entries whose expiry is <= now_ms (from a timer, so
    memory comes back while the cache is idle). Returns how many. */
size_t yard_lru_expire(yard_lru_t *self, int64_t now_ms, size_t max);

/*  Copies the counters into *out. */
void yard_lru_stats(const yard_lru_t *self, yard_lru_stats_t *out);

/*  Entries stored now (expired ones not yet dropped included). */
size_t yard_lru_size(const yard_lru_t *self);

#endif
