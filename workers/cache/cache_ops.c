/*  cache_ops.c — the yard.cache handler: one function per op of
    PROTOCOL.md 10a, each answering one msgpack map. L1 first for reads;
    for writes L2 first, then L1, then the cache.invalidate event (see the
    ordering note in cache.h). A Redis failure never fails a request: the
    tier degrades and the answer comes from L1 alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "cache.h"
#include "yard_clock.h"
#include "yard_log.h"

/* ---- Answer helpers ----------------------------------------------------- */

static void s_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void s_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    s_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void s_kv_i64(msgpack_packer *pk, const char *k, int64_t v)
{
    s_str(pk, k);
    msgpack_pack_int64(pk, v);
}

static void s_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
    s_str(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

static void s_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    s_str(pk, k);
    s_str(pk, v);
}

static void s_kv_rate(msgpack_packer *pk, const char *k, uint64_t hits,
                      uint64_t total)
{
    s_str(pk, k);
    msgpack_pack_double(pk, total ? (double)hits / (double)total : 0.0);
}

/*  {key: n} for the mutations that delete. */
static void s_answer_deleted(msgpack_packer *pk, uint64_t n)
{
    msgpack_pack_map(pk, 1);
    s_kv_u64(pk, "deleted", n);
}

static int64_t s_now(void)
{
    return yard_clock_ms();
}

/* ---- get ---------------------------------------------------------------- */

/*  The L1 TTL of an entry promoted from L2 with l2_ttl left (0: none). */
static int64_t s_promote_ttl(const yard_cache_t *self, int64_t l2_ttl)
{
    int64_t def = (int64_t)self->cfg.l1_ttl_ms;
    if (l2_ttl <= 0)
        return def;
    return def > 0 && def < l2_ttl ? def : l2_ttl;
}

/*  Looks req's key up in L1 and answers a hit or a negative into pk:
    true. On a miss (or without L1) packs nothing, notes L1's generation
    in *gen and returns false. */
static bool s_get_l1(yard_cache_t *self, const yard_cache_request_t *req,
                     msgpack_packer *pk, uint64_t *gen)
{
    *gen = 0;
    if (self->l1) {
        pthread_mutex_lock(&self->lock);
        yard_lru_found_t f;
        yard_lru_result_t r =
            yard_lru_get(self->l1, req->key, req->klen, s_now(), &f);
        if (r == YARD_LRU_HIT) {
            /*  Copied while the lock holds the view. */
            msgpack_pack_map(pk, 4);
            s_kv_bool(pk, "hit", true);
            s_str(pk, "value");
            msgpack_pack_bin(pk, f.len);
            msgpack_pack_bin_body(pk, f.value, f.len);
            s_kv_str(pk, "tier", "l1");
            s_kv_u64(pk, "ttl_ms", (uint64_t)f.ttl_ms);
            pthread_mutex_unlock(&self->lock);
            atomic_fetch_add(&self->hits, 1);
            return true;
        }
        if (r == YARD_LRU_NEGATIVE) {
            pthread_mutex_unlock(&self->lock);
            msgpack_pack_map(pk, 3);
            s_kv_bool(pk, "hit", false);
            s_kv_bool(pk, "negative", true);
            s_kv_u64(pk, "ttl_ms", (uint64_t)f.ttl_ms);
            atomic_fetch_add(&self->negative_hits, 1);
            return true;
        }
        *gen = self->gen;
        pthread_mutex_unlock(&self->lock);
    }
    return false;
}

static void s_get(yard_cache_t *self, const yard_cache_request_t *req,
                  msgpack_packer *pk)
{
    atomic_fetch_add(&self->gets, 1);
    uint64_t gen;
    if (s_get_l1(self, req, pk, &gen))
        return;
    yard_l2_got_t *got = self->l2 ? malloc(sizeof *got) : NULL;
    if (got && yard_l2_get(self->l2, req->key, req->klen, got) == YARD_L2_OK &&
        (got->hit || got->negative)) {
        if (self->l1) {
            /*  Promote, unless an invalidation ran since the L1 miss:
                what L2 gave may be older than it. */
            pthread_mutex_lock(&self->lock);
            if (self->gen == gen) {
                int64_t ttl = s_promote_ttl(self, got->ttl_ms);
                int rc = got->hit
                             ? yard_lru_set(self->l1, req->key, req->klen,
                                            got->value, got->len, got->tags,
                                            got->ntags, ttl, s_now())
                             : yard_lru_set_negative(
                                   self->l1, req->key, req->klen,
                                   ttl > 0 ? ttl
                                           : (int64_t)self->cfg.negative_ttl_ms,
                                   s_now());
                if (rc == 0)
                    atomic_fetch_add(&self->promotions, 1);
            }
            pthread_mutex_unlock(&self->lock);
        }
        if (got->hit) {
            msgpack_pack_map(pk, 4);
            s_kv_bool(pk, "hit", true);
            s_str(pk, "value");
            msgpack_pack_bin(pk, got->len);
            msgpack_pack_bin_body(pk, got->value, got->len);
            s_kv_str(pk, "tier", "l2");
            s_kv_u64(pk, "ttl_ms", (uint64_t)got->ttl_ms);
            atomic_fetch_add(&self->hits, 1);
        } else {
            msgpack_pack_map(pk, 3);
            s_kv_bool(pk, "hit", false);
            s_kv_bool(pk, "negative", true);
            s_kv_u64(pk, "ttl_ms", (uint64_t)got->ttl_ms);
            atomic_fetch_add(&self->negative_hits, 1);
        }
        yard_l2_got_free(got);
        free(got);
        return;
    }
    if (got)
        yard_l2_got_free(got);
    free(got);
    msgpack_pack_map(pk, 1);
    s_kv_bool(pk, "hit", false);
}

/* ---- Mutations ---------------------------------------------------------- */

static void s_set(yard_cache_t *self, const yard_cache_request_t *req,
                  msgpack_packer *pk)
{
    bool negative = req->op == YARD_CACHE_SET_NEGATIVE;
    bool stored = false;
    if (self->l2) {
        uint64_t ttl = req->ttl_ms ? req->ttl_ms
                       : negative  ? self->cfg.negative_ttl_ms
                                   : self->cfg.l2_ttl_ms;
        stored =
            yard_l2_set(self->l2, req->key, req->klen, req->value, req->vlen,
                        negative, req->tags, req->ntags, ttl) == YARD_L2_OK;
    }
    if (self->l1) {
        int64_t now = s_now();
        pthread_mutex_lock(&self->lock);
        self->gen++;
        int rc =
            negative
                ? yard_lru_set_negative(
                      self->l1, req->key, req->klen,
                      (int64_t)(req->ttl_ms ? req->ttl_ms
                                            : self->cfg.negative_ttl_ms),
                      now)
                : yard_lru_set(self->l1, req->key, req->klen, req->value,
                               req->vlen, req->tags, req->ntags,
                               (int64_t)(req->ttl_ms ? req->ttl_ms
                                                     : self->cfg.l1_ttl_ms),
                               now);
        pthread_mutex_unlock(&self->lock);
        if (rc == 0)
            stored = true;
        else if (rc == YARD_LRU_E_NOMEM)
            yard_warn("cache: out of memory storing a %zu-byte value in L1",
                      req->vlen);
    }
    msgpack_pack_map(pk, 1);
    s_kv_bool(pk, "stored", stored);
}

static void s_del(yard_cache_t *self, const yard_cache_request_t *req,
                  msgpack_packer *pk)
{
    uint64_t l2 = 0, l1 = 0;
    if (self->l2)
        yard_l2_del(self->l2, req->key, req->klen, &l2);
    if (self->l1) {
        pthread_mutex_lock(&self->lock);
        self->gen++;
        l1 = (uint64_t)yard_lru_del(self->l1, req->key, req->klen, s_now());
        pthread_mutex_unlock(&self->lock);
    }
    s_answer_deleted(pk, l1 || l2 ? 1 : 0);
}

/*  Applies an invalidation (tags, prefix, glob, clear) to L1; returns the
    live entries removed. Also used for other instances' events. */
static uint64_t s_l1_invalidate(yard_cache_t *self,
                                const yard_cache_request_t *req)
{
    if (!self->l1)
        return 0;
    uint64_t n = 0;
    int64_t now = s_now();
    pthread_mutex_lock(&self->lock);
    self->gen++;
    switch (req->op) {
    case YARD_CACHE_SET:
    case YARD_CACHE_SET_NEGATIVE:
    case YARD_CACHE_DEL:
        n = (uint64_t)yard_lru_del(self->l1, req->key, req->klen, now);
        break;
    case YARD_CACHE_INVALIDATE_TAGS:
        for (size_t i = 0; i < req->ntags; i++)
            n += yard_lru_invalidate_tag(self->l1, req->tags[i].ptr,
                                         req->tags[i].len, now);
        break;
    case YARD_CACHE_INVALIDATE_PREFIX:
        n = yard_lru_invalidate_prefix(self->l1, req->prefix, req->plen, now);
        break;
    case YARD_CACHE_INVALIDATE_GLOB:
        n = yard_lru_invalidate_glob(self->l1, req->pattern, now);
        break;
    case YARD_CACHE_CLEAR:
        n = yard_lru_clear(self->l1, now);
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&self->lock);
    return n;
}

/*  invalidate_tags / _prefix / _glob / clear. `deleted` is the larger of
    the two tiers' counts: L2 normally holds every L1 entry too, so that
    is the number of distinct entries removed (a sum would count most of
    them twice). */
static void s_invalidate(yard_cache_t *self, const yard_cache_request_t *req,
                         msgpack_packer *pk)
{
    uint64_t l2 = 0;
    if (self->l2) {
        switch (req->op) {
        case YARD_CACHE_INVALIDATE_TAGS:
            yard_l2_invalidate_tags(self->l2, req->tags, req->ntags, &l2);
            break;
        case YARD_CACHE_INVALIDATE_PREFIX:
            yard_l2_invalidate_prefix(self->l2, req->prefix, req->plen, &l2);
            break;
        case YARD_CACHE_INVALIDATE_GLOB:
            yard_l2_invalidate_glob(self->l2, req->pattern, &l2);
            break;
        default:
            yard_l2_clear(self->l2, &l2);
            break;
        }
    }
    uint64_t l1 = s_l1_invalidate(self, req);
    s_answer_deleted(pk, l1 > l2 ? l1 : l2);
}

void yard_cache_apply_remote(yard_cache_t *self,
                             const yard_cache_request_t *req)
{
    s_l1_invalidate(self, req);
}

/* ---- stats -------------------------------------------------------------- */

static void s_stats(yard_cache_t *self, msgpack_packer *pk)
{
    yard_lru_stats_t l1;
    memset(&l1, 0, sizeof l1);
    if (self->l1) {
        pthread_mutex_lock(&self->lock);
        yard_lru_stats(self->l1, &l1);
        pthread_mutex_unlock(&self->lock);
    }
    yard_l2_stats_t l2;
    memset(&l2, 0, sizeof l2);
    if (self->l2)
        yard_l2_stats(self->l2, true, &l2);
    yard_cache_sync_stats_t sy;
    yard_cache_sync_stats(self->sync, &sy);
    /*  Read hits first: a get counts in gets when it starts and in hits
        when it ends, so reading gets last keeps hits <= gets. */
    uint64_t hits = atomic_load(&self->hits);
    uint64_t neg = atomic_load(&self->negative_hits);
    uint64_t gets = atomic_load(&self->gets);
    if (hits + neg > gets) /*  cannot happen with the order above */
        gets = hits + neg;

    msgpack_pack_map(pk, 17);
    s_kv_str(pk, "instance", self->instance);
    s_kv_str(pk, "service", YARD_CACHE_SERVICE);
    s_kv_str(pk, "version", YARD_VERSION_STRING);
    s_kv_i64(pk, "uptime_ms", s_now() - self->started_ms);
    s_kv_bool(pk, "degraded", self->l2 && l2.degraded);
    s_kv_u64(pk, "requests", atomic_load(&self->requests));
    s_kv_u64(pk, "bad_requests", atomic_load(&self->bad_requests));
    s_kv_u64(pk, "gets", gets);
    s_kv_u64(pk, "hits", hits);
    s_kv_u64(pk, "negative_hits", neg);
    s_kv_u64(pk, "misses", gets - hits - neg);
    s_kv_rate(pk, "hit_rate", hits, gets);
    s_kv_u64(pk, "promotions", atomic_load(&self->promotions));
    s_kv_u64(pk, "fast_answers", atomic_load(&self->fast_answers));

    s_str(pk, "l1");
    msgpack_pack_map(pk, 14);
    s_kv_bool(pk, "enabled", self->l1 != NULL);
    s_kv_u64(pk, "entries", l1.entries);
    s_kv_u64(pk, "bytes", l1.bytes);
    s_kv_u64(pk, "max_entries", l1.max_entries);
    s_kv_u64(pk, "max_bytes", l1.max_bytes);
    s_kv_u64(pk, "tags", l1.tags);
    s_kv_u64(pk, "hits", l1.hits);
    s_kv_u64(pk, "misses", l1.misses);
    s_kv_u64(pk, "negative_hits", l1.negative_hits);
    s_kv_u64(pk, "sets", l1.sets);
    s_kv_u64(pk, "evictions", l1.evictions);
    s_kv_u64(pk, "expirations", l1.expirations);
    s_kv_rate(pk, "hit_rate", l1.hits, l1.hits + l1.misses + l1.negative_hits);
    s_kv_u64(pk, "default_ttl_ms", self->cfg.l1_ttl_ms);

    s_str(pk, "l2");
    msgpack_pack_map(pk, 25);
    s_kv_bool(pk, "enabled", self->l2 != NULL);
    s_kv_bool(pk, "connected", self->l2 && !l2.degraded);
    s_kv_bool(pk, "degraded", self->l2 && l2.degraded);
    s_kv_str(pk, "url", self->l2 ? yard_l2_url(self->l2) : "");
    s_kv_str(pk, "prefix", self->cfg.prefix);
    s_kv_u64(pk, "hits", l2.hits);
    s_kv_u64(pk, "misses", l2.misses);
    s_kv_u64(pk, "negative_hits", l2.negative_hits);
    s_kv_u64(pk, "sets", l2.sets);
    s_kv_u64(pk, "deletes", l2.deletes);
    s_kv_rate(pk, "hit_rate", l2.hits, l2.hits + l2.misses + l2.negative_hits);
    s_kv_u64(pk, "errors", l2.errors);
    s_kv_u64(pk, "degradations", l2.degradations);
    s_kv_u64(pk, "reconnects", l2.reconnects);
    s_kv_i64(pk, "down_ms", l2.down_ms);
    s_kv_u64(pk, "journal", l2.journal);
    s_kv_u64(pk, "replayed", l2.replayed);
    s_kv_u64(pk, "compressed", l2.compressed);
    s_kv_u64(pk, "bytes_saved", l2.bytes_saved);
    s_kv_u64(pk, "corrupt", l2.corrupt);
    s_kv_u64(pk, "default_ttl_ms", self->cfg.l2_ttl_ms);
    s_kv_i64(pk, "db_keys", l2.db_keys);
    s_kv_i64(pk, "used_memory_bytes", l2.used_memory);
    s_kv_i64(pk, "evictions", l2.evicted_keys);
    s_kv_i64(pk, "expirations", l2.expired_keys);

    s_str(pk, "coherence");
    msgpack_pack_map(pk, 9);
    s_kv_bool(pk, "subscribed", sy.subscribed);
    s_kv_u64(pk, "published", atomic_load(&self->published));
    s_kv_u64(pk, "publish_failed", atomic_load(&self->publish_failed));
    s_kv_u64(pk, "received", sy.received);
    s_kv_u64(pk, "applied", sy.applied);
    s_kv_u64(pk, "own", sy.own);
    s_kv_u64(pk, "invalid", sy.invalid);
    s_kv_u64(pk, "missed", sy.missed);
    s_kv_u64(pk, "resets", sy.resets);
}

/* ---- Handler ------------------------------------------------------------ */

void yard_cache_handle(yard_job_t *job, void *arg)
{
    yard_cache_t *self = arg;
    atomic_fetch_add(&self->requests, 1);
    yard_bytes_t payload = yard_job_payload(job);
    yard_cache_request_t *req = malloc(sizeof *req);
    if (!req) {
        yard_job_fail(job, "out of memory");
        return;
    }
    char why[256];
    if (yard_cache_request_parse(payload.ptr, payload.len, false, req, why,
                                 sizeof why) != 0) {
        atomic_fetch_add(&self->bad_requests, 1);
        yard_job_reject(job, "bad_request: %s", why);
        free(req);
        return;
    }
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    switch (req->op) {
    case YARD_CACHE_GET:
        s_get(self, req, &pk);
        break;
    case YARD_CACHE_SET:
    case YARD_CACHE_SET_NEGATIVE:
        s_set(self, req, &pk);
        break;
    case YARD_CACHE_DEL:
        s_del(self, req, &pk);
        break;
    case YARD_CACHE_INVALIDATE_TAGS:
    case YARD_CACHE_INVALIDATE_PREFIX:
    case YARD_CACHE_INVALIDATE_GLOB:
    case YARD_CACHE_CLEAR:
        s_invalidate(self, req, &pk);
        break;
    case YARD_CACHE_STATS:
        s_stats(self, &pk);
        break;
    }
    if (yard_cache_op_mutates(req->op))
        yard_cache_publish_invalidate(self, req);
    if (buf.data)
        yard_job_reply(job, buf.data, buf.size);
    else
        yard_job_fail(job, "out of memory");
    msgpack_sbuffer_destroy(&buf);
    free(req);
}

/*  The I/O thread's first try (yard_worker_config_t.fast): a get that L1
    answers is answered here, without the hand-off to a handler thread
    (which costs more than the lookup). Anything else, or an L1 miss,
    is left unanswered for yard_cache_handle on a handler thread. */
void yard_cache_fast(yard_job_t *job, void *arg)
{
    yard_cache_t *self = arg;
    if (!self->l1)
        return;
    yard_bytes_t payload = yard_job_payload(job);
    yard_cache_request_t req;
    char why[256];
    if (yard_cache_request_parse(payload.ptr, payload.len, false, &req, why,
                                 sizeof why) != 0 ||
        req.op != YARD_CACHE_GET)
        return; /*  errors too are answered by the handler */
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    uint64_t gen;
    if (s_get_l1(self, &req, &pk, &gen)) {
        atomic_fetch_add(&self->requests, 1);
        atomic_fetch_add(&self->gets, 1);
        atomic_fetch_add(&self->fast_answers, 1);
        if (buf.data)
            yard_job_reply(job, buf.data, buf.size);
        else
            yard_job_fail(job, "out of memory");
    }
    msgpack_sbuffer_destroy(&buf);
}

/* ---- L2 health events --------------------------------------------------- */

void yard_cache_on_l2_state(yard_l2_t *l2, bool degraded, const char *reason,
                            int64_t down_ms, void *arg)
{
    yard_cache_t *self = arg;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    yard_l2_stats_t st;
    memset(&st, 0, sizeof st);
    yard_l2_stats(l2, false, &st);
    msgpack_pack_map(&pk, 4);
    s_kv_str(&pk, "instance", self->instance);
    s_kv_str(&pk, "redis", yard_l2_url(l2));
    if (degraded) {
        s_kv_str(&pk, "reason", reason);
        s_kv_u64(&pk, "errors", st.errors);
    } else {
        s_kv_i64(&pk, "down_ms", down_ms);
        s_kv_u64(&pk, "reconnects", st.reconnects);
    }
    if (buf.data) {
        int rc = yard_worker_publish(self->worker,
                                     degraded ? YARD_CACHE_EVENT_DEGRADED
                                              : YARD_CACHE_EVENT_RECOVERED,
                                     buf.data, buf.size);
        if (rc != 0)
            yard_warn("cache: could not publish %s: %s",
                      degraded ? YARD_CACHE_EVENT_DEGRADED
                               : YARD_CACHE_EVENT_RECOVERED,
                      yard_strerror(rc));
    }
    msgpack_sbuffer_destroy(&buf);
}
