/*  cache_l2.h — yard-cache's second tier: a shared Redis, through
    synchronous hiredis with short connect and command timeouts.

    Keys (PROTOCOL.md 10a): PREFIX:k:<key> holds an encoded entry,
    PREFIX:t:<tag> is a set listing the keys that carry the tag. An
    encoded entry is one header byte, then (flag TAGS) the entry's tags,
    then the value, raw or (flag ZLIB) a zlib stream:

        byte 0      flags: 0x01 ZLIB, 0x02 NEGATIVE (a remembered miss, no
                    value), 0x04 TAGS; any other bit set = not ours
        TAGS        1 byte n (1..16), then n x (1 byte len 1..255, bytes)
        rest        the value (raw, or zlib-compressed when ZLIB)

    Every entry is written with PX (the request's TTL or the L2 default),
    and every tag set's expiry is pushed to at least its members' (PEXPIRE
    NX, then GT), so nothing is left behind in Redis forever.

    Failures. Handler threads share a small pool of connections. Any I/O
    error or timeout flips the tier to DEGRADED at once: every call
    returns YARD_L2_DOWN without touching the network until a background
    thread has reconnected (with backoff) and answered PING. While
    degraded, every mutation is remembered in a bounded journal (keys to
    delete, tags, prefixes, globs to invalidate; past its bound: "clear
    everything") and replayed before the tier is declared healthy again,
    so an outage never leaves a stale entry in Redis. The monitor thread
    also PINGs a healthy Redis every YARD_L2_CHECK_MS, so a dead Redis is
    noticed even when every request is an L1 hit.

    Thread-safe: every call may come from any thread. */
#ifndef YARD_CACHE_L2_H
#define YARD_CACHE_L2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yard_lru.h"

#define YARD_L2_CHECK_MS 500        /*  PING period while healthy */
#define YARD_L2_BACKOFF_BASE_MS 100 /*  first reconnect delay */
#define YARD_L2_BACKOFF_MAX_MS 5000 /*  reconnect delay cap */
#define YARD_L2_JOURNAL_MAX 4096    /*  mutations remembered while down */
#define YARD_L2_SCAN_COUNT 1000     /*  SCAN / SSCAN COUNT hint */
#define YARD_L2_ZLIB_LEVEL 1        /*  fast compression */

/*  Return codes of the data calls. */
#define YARD_L2_OK 0
#define YARD_L2_DOWN (-1)   /*  degraded: not tried */
#define YARD_L2_FAILED (-2) /*  tried and failed: now degraded */

/*  Entry flags (byte 0 of an encoded entry). */
#define YARD_L2_FLAG_ZLIB 0x01
#define YARD_L2_FLAG_NEGATIVE 0x02
#define YARD_L2_FLAG_TAGS 0x04

typedef struct _yard_l2_t yard_l2_t;

/*  Called on every change of health, from whichever thread saw it:
    degraded true with the reason, or false (recovered) with how long the
    tier was down. It may read the tier (yard_l2_url, yard_l2_stats with
    server false), nothing else of it. */
typedef void(yard_l2_state_fn)(yard_l2_t *l2, bool degraded, const char *reason,
                               int64_t down_ms, void *arg);

typedef struct {
    const char *url;            /*  redis://[[user]:pass@]host[:port][/db],
                                    unix:///path[?db=N], or host[:port] */
    const char *prefix;         /*  key prefix, e.g. "yard" */
    uint32_t timeout_ms;        /*  connect and command timeout */
    size_t compress_min;        /*  compress values of at least this size */
    size_t max_value;           /*  longest value accepted when decoding */
    yard_l2_state_fn *on_state; /*  may be NULL */
    void *arg;                  /*  passed to on_state */
} yard_l2_config_t;

/*  What a get found. value is malloc'd (free it with yard_l2_got_free);
    tags point into tagbuf. */
typedef struct {
    bool hit;       /*  a value */
    bool negative;  /*  a remembered miss */
    uint8_t *value; /*  the value (NULL when none or empty) */
    size_t len;     /*  its length */
    int64_t ttl_ms; /*  time left, 0 = none */
    size_t ntags;   /*  tags the entry carries */
    yard_lru_bytes_t tags[YARD_LRU_MAX_TAGS];
    uint8_t tagbuf[YARD_LRU_MAX_TAGS * 256];
} yard_l2_got_t;

/*  Counters (read with yard_l2_stats). */
typedef struct {
    bool degraded;          /*  down now */
    uint64_t hits;          /*  gets that found a value */
    uint64_t misses;        /*  gets that found nothing (or garbage) */
    uint64_t negative_hits; /*  gets that found a negative entry */
    uint64_t sets;          /*  entries written (set, set_negative) */
    uint64_t deletes;       /*  keys deleted by del and invalidations */
    uint64_t errors;        /*  failed Redis calls (I/O, timeout, error
                                replies) */
    uint64_t reconnects;    /*  recoveries after a degradation */
    uint64_t degradations;  /*  times the tier went down */
    uint64_t compressed;    /*  values stored compressed */
    uint64_t bytes_saved;   /*  raw bytes - compressed bytes, summed */
    uint64_t corrupt;       /*  entries that did not decode (misses) */
    uint64_t journal;       /*  mutations waiting for replay */
    uint64_t replayed;      /*  mutations replayed after recoveries */
    int64_t down_ms;        /*  how long down now, 0 when healthy */
    /*  From Redis INFO when asked and reachable, else -1 (whole server /
        selected db, not only this prefix). */
    int64_t db_keys;      /*  keys in the selected db */
    int64_t used_memory;  /*  used_memory */
    int64_t evicted_keys; /*  evicted_keys (maxmemory policy) */
    int64_t expired_keys; /*  expired_keys */
} yard_l2_stats_t;

/*  Parses cfg->url (err gets why on failure), tries to connect once
    (bounded by timeout_ms; a failure leaves the tier degraded, not an
    error) and starts the monitor thread. NULL on a bad URL or prefix, or
    out of resources. */
yard_l2_t *yard_l2_new(const yard_l2_config_t *cfg, char *err, size_t errlen);

/*  Stops the monitor thread, closes every connection, frees; nulls
 *self_p. Idempotent. */
void yard_l2_destroy(yard_l2_t **self_p);

/*  The URL without its password, for logs and stats. */
const char *yard_l2_url(const yard_l2_t *self);

/*  True while healthy. */
bool yard_l2_healthy(yard_l2_t *self);

/*  Reads key. YARD_L2_OK with *out filled (hit, negative, or neither);
    YARD_L2_DOWN / YARD_L2_FAILED (treat as a miss). */
int yard_l2_get(yard_l2_t *self, const void *key, size_t klen,
                yard_l2_got_t *out);

/*  Frees out->value. */
void yard_l2_got_free(yard_l2_got_t *out);

/*  Writes key = value with tags and ttl_ms (> 0). negative: a remembered
    miss (value ignored). YARD_L2_OK / DOWN / FAILED (then journaled). */
int yard_l2_set(yard_l2_t *self, const void *key, size_t klen,
                const void *value, size_t vlen, bool negative,
                const yard_lru_bytes_t *tags, size_t ntags, uint64_t ttl_ms);

/*  Deletes key; *deleted = 0 or 1. */
int yard_l2_del(yard_l2_t *self, const void *key, size_t klen,
                uint64_t *deleted);

/*  Deletes every key listed in the tag sets, and the sets. */
int yard_l2_invalidate_tags(yard_l2_t *self, const yard_lru_bytes_t *tags,
                            size_t ntags, uint64_t *deleted);

/*  Deletes every key starting with prefix (SCAN MATCH, glob characters
    escaped). */
int yard_l2_invalidate_prefix(yard_l2_t *self, const void *prefix, size_t len,
                              uint64_t *deleted);

/*  Deletes every key matching an fnmatch glob (SCAN MATCH; `[!` is
    passed to Redis as `[^`). */
int yard_l2_invalidate_glob(yard_l2_t *self, const char *pattern,
                            uint64_t *deleted);

/*  Deletes every PREFIX:* key (SCAN + UNLINK; never FLUSHDB). *deleted
    counts entries (PREFIX:k:*), not tag sets. */
int yard_l2_clear(yard_l2_t *self, uint64_t *deleted);

/*  Copies the counters; with server true and the tier healthy, also asks
    Redis INFO (one round trip). */
void yard_l2_stats(yard_l2_t *self, bool server, yard_l2_stats_t *out);

#endif
