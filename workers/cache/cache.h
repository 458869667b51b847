/*  cache.h — yard-cache, the cache service `yard.cache` (PROTOCOL.md 10a):
    the process state shared by its files.

        cache_main.c     flags (flag > environment > default), start, stop
        cache_request.c  the request and event payloads: parse, encode
        cache_ops.c      the task handler: one function per op, L1 then L2
        cache_sync.c     coherence: publish cache.invalidate, and a
                         subscriber thread applying other instances' ones
        cache_l2*.c      the Redis tier (cache_l2.h)

    Threads. The worker runtime's I/O thread never blocks on Redis: with
    L2 on, a get that L1 answers is answered on the I/O thread itself
    (yard_cache_fast: the L1 mutex is held for a hash lookup and a copy),
    and everything else runs on one handler thread per capacity slot (each
    talks to Redis synchronously, bounded by --redis-timeout-ms); with L2
    off there is nothing to wait for, and every handler runs inline. L1 is
    one yard_lru_t behind one mutex, shared by the handlers and the
    subscriber thread. The Redis tier has its own monitor thread.

    Ordering. A mutation writes L2 first, then L1, then publishes its
    cache.invalidate event; L1 changes bump `gen` under the mutex. A get
    that misses L1 notes gen, reads L2, and promotes what it read into L1
    only if gen has not moved meanwhile: so a value read from L2 before a
    concurrent (local or remote) invalidation can never be put back into
    L1 after it. */
#ifndef YARD_CACHE_H
#define YARD_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache_l2.h"
#include "yard_lru.h"
#include "yard_worker.h"

#define YARD_CACHE_SERVICE "yard.cache"
#define YARD_CACHE_MAX_KEY 1024 /*  key, prefix and pattern bytes */
#define YARD_CACHE_MAX_VALUE (YARD_MAX_PAYLOAD - 64u * 1024)
#define YARD_CACHE_MAX_TAG 128                 /*  bytes in a tag */
#define YARD_CACHE_MAX_TTL_MS 1000000000000ULL /*  about 31 years */
#define YARD_CACHE_EVENT_INVALIDATE "cache.invalidate"
#define YARD_CACHE_EVENT_DEGRADED "cache.degraded"
#define YARD_CACHE_EVENT_RECOVERED "cache.recovered"
#define YARD_CACHE_SWEEP_MS 1000     /*  L1 expiry sweep period */
#define YARD_CACHE_SWEEP_BUDGET 4096 /*  expired entries dropped per sweep */

/*  Settings, after flags, environment and defaults. */
typedef struct {
    const char *broker;      /*  tasks endpoint */
    const char *events;      /*  events endpoint (coherence) */
    const char *redis;       /*  Redis URL */
    const char *prefix;      /*  L2 key prefix */
    const char *name;        /*  worker name, NULL: hostname-pid */
    bool l1;                 /*  L1 on */
    bool l2;                 /*  L2 on */
    uint64_t l1_max_entries; /*  L1 limits */
    uint64_t l1_max_bytes;
    uint64_t l1_ttl_ms;        /*  L1 TTL when a set gives none (0 never) */
    uint64_t l2_ttl_ms;        /*  L2 TTL when a set gives none (> 0) */
    uint64_t negative_ttl_ms;  /*  TTL of a negative entry given none */
    uint64_t compress_min;     /*  zlib from this many bytes (0 never) */
    uint32_t redis_timeout_ms; /*  Redis connect and command timeout */
    uint32_t capacity;         /*  tasks held at once */
    uint32_t grace_ms;         /*  stop budget */
} yard_cache_config_t;

typedef struct yard_cache_sync yard_cache_sync_t;

/*  The process. */
typedef struct {
    yard_cache_config_t cfg;
    char instance[17];     /*  random id, hex: the origin of our events */
    yard_worker_t *worker; /*  the runtime (publishes events) */
    int64_t started_ms;    /*  monotonic start time */

    pthread_mutex_t lock; /*  guards l1 and gen */
    yard_lru_t *l1;       /*  NULL with --no-l1 */
    uint64_t gen;         /*  bumped by every L1 invalidation */

    yard_l2_t *l2;           /*  NULL with --no-l2 */
    yard_cache_sync_t *sync; /*  coherence subscriber, NULL without L1 */

    /*  Counters, any thread. */
    atomic_uint_fast64_t requests;       /*  tasks handled */
    atomic_uint_fast64_t bad_requests;   /*  answered bad_request */
    atomic_uint_fast64_t gets;           /*  get requests */
    atomic_uint_fast64_t hits;           /*  gets answered with a value */
    atomic_uint_fast64_t negative_hits;  /*  gets answered negative */
    atomic_uint_fast64_t promotions;     /*  L2 hits copied into L1 */
    atomic_uint_fast64_t fast_answers;   /*  gets answered on the I/O thread */
    atomic_uint_fast64_t published;      /*  cache.invalidate sent */
    atomic_uint_fast64_t publish_failed; /*  ... refused or queue full */
} yard_cache_t;

/* ---- Requests (cache_request.c) ----------------------------------------- */

typedef enum {
    YARD_CACHE_GET,
    YARD_CACHE_SET,
    YARD_CACHE_SET_NEGATIVE,
    YARD_CACHE_DEL,
    YARD_CACHE_INVALIDATE_TAGS,
    YARD_CACHE_INVALIDATE_PREFIX,
    YARD_CACHE_INVALIDATE_GLOB,
    YARD_CACHE_CLEAR,
    YARD_CACHE_STATS,
} yard_cache_op_t;

/*  A parsed request (or cache.invalidate payload): views into the bytes
    it was parsed from, but for pattern (a NUL-terminated copy). */
typedef struct {
    yard_cache_op_t op;
    const uint8_t *key; /*  get, set, set_negative, del */
    size_t klen;
    const uint8_t *value; /*  set */
    size_t vlen;
    uint64_t ttl_ms; /*  set, set_negative; 0 = default */
    yard_lru_bytes_t tags[YARD_LRU_MAX_TAGS]; /*  set, invalidate_tags */
    size_t ntags;
    const uint8_t *prefix; /*  invalidate_prefix */
    size_t plen;
    char pattern[YARD_CACHE_MAX_KEY + 1]; /*  invalidate_glob */
    const uint8_t *origin; /*  events only: the publishing instance */
    size_t olen;
} yard_cache_request_t;

/*  Name of an op as on the wire ("get", "invalidate_tags", ...). */
const char *yard_cache_op_name(yard_cache_op_t op);

/*  True for the ops that change the cache (published as events). */
bool yard_cache_op_mutates(yard_cache_op_t op);

/*  Parses one request (10a), or with event true a cache.invalidate
    payload (set, set_negative and del then carry only key; origin is
    required). 0, or -1 with why (the text after "bad_request: "). */
int yard_cache_request_parse(const void *data, size_t len, bool event,
                             yard_cache_request_t *req, char *why,
                             size_t whylen);

/*  Encodes the cache.invalidate payload of a mutating request:
    {op, key|tags|prefix|pattern, origin}. The caller frees *out. */
int yard_cache_event_encode(const yard_cache_request_t *req, const char *origin,
                            uint8_t **out, size_t *len);

/* ---- Ops (cache_ops.c) -------------------------------------------------- */

/*  The yard.cache task handler (handler_arg: the yard_cache_t). */
void yard_cache_handle(yard_job_t *job, void *arg);

/*  Its I/O-thread first try: answers L1 hits of gets, leaves the rest. */
void yard_cache_fast(yard_job_t *job, void *arg);

/*  Applies another instance's invalidation to L1 (subscriber thread). */
void yard_cache_apply_remote(yard_cache_t *self,
                             const yard_cache_request_t *req);

/*  Health changes of L2, turned into events (cache_l2.h callback). */
void yard_cache_on_l2_state(yard_l2_t *l2, bool degraded, const char *reason,
                            int64_t down_ms, void *arg);

/* ---- Coherence (cache_sync.c)
 * ------------------------------------------------ */

/*  Counters of the coherence subscriber. */
typedef struct {
    bool subscribed;   /*  acknowledged by the broker now */
    uint64_t received; /*  cache.invalidate events received */
    uint64_t applied;  /*  ... from other instances, applied to L1 */
    uint64_t own;      /*  ... of our own, ignored */
    uint64_t invalid;  /*  ... that did not parse */
    uint64_t missed;   /*  events lost (sn gaps) */
    uint64_t resets;   /*  L1 cleared because events may have been lost */
} yard_cache_sync_stats_t;

/*  Starts the subscriber thread (also sweeps L1 expiry). NULL if the
    thread cannot start. */
yard_cache_sync_t *yard_cache_sync_start(yard_cache_t *cache);

/*  Stops and joins it; nulls *self_p. Idempotent. */
void yard_cache_sync_stop(yard_cache_sync_t **self_p);

/*  Copies its counters (zeros for NULL). */
void yard_cache_sync_stats(yard_cache_sync_t *self,
                           yard_cache_sync_stats_t *out);

/*  Publishes req as a cache.invalidate event, origin = our instance. */
void yard_cache_publish_invalidate(yard_cache_t *self,
                                   const yard_cache_request_t *req);

#endif
