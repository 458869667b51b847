/*  cache_sync.c — coherence between yard-cache processes.

    Every mutation is published as a `cache.invalidate` event (payload
    {op, key|tags|prefix|pattern, origin}, PROTOCOL.md 10a) through the
    worker runtime. One thread per process subscribes to
    `cache.invalidate` on the broker's events endpoint (clients/yard_sub.h)
    and applies other instances' events to its L1; its own are ignored by
    origin. Coherence is eventual: another instance drops its copy as soon
    as the event reaches it (a broker hop, normally well under a
    millisecond on loopback).

    Lost events would leave stale copies, so the thread clears L1 whenever
    events may have been lost: a gap in the delivery numbers (the broker
    dropped events for a slow subscriber), a re-subscription (the broker
    restarted, or we reconnected), or a subscriber rebuilt after an
    error. L1 is then refilled from L2.

    The same thread sweeps expired L1 entries once a second, so memory
    comes back while the cache is idle. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "yard_backoff.h"
#include "yard_clock.h"
#include "yard_log.h"
#include "yard_rand.h"
#include "yard_sub.h"

#define S_POLL_MS 100           /*  longest wait per loop turn */
#define S_SUBSCRIBE_WAIT_MS 500 /*  per subscription attempt */

struct yard_cache_sync {
    yard_cache_t *cache; /*  the process (L1, lock, config) */
    pthread_t thread;    /*  the subscriber thread */
    atomic_bool stop;    /*  asks the thread to end */
    atomic_bool subscribed;
    atomic_uint_fast64_t received, applied, own, invalid, missed, resets;
};

static void s_sleep_ms(uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*  Clears L1 because events may have been lost. */
static void s_reset_l1(yard_cache_sync_t *self, const char *why)
{
    yard_cache_t *cache = self->cache;
    pthread_mutex_lock(&cache->lock);
    cache->gen++;
    size_t n = yard_lru_clear(cache->l1, yard_clock_ms());
    pthread_mutex_unlock(&cache->lock);
    atomic_fetch_add(&self->resets, 1);
    if (n)
        yard_info("cache: L1 cleared (%zu entries): %s", n, why);
}

static void s_on_event(yard_cache_sync_t *self, const yard_sub_event_t *ev)
{
    atomic_fetch_add(&self->received, 1);
    yard_cache_request_t *req = malloc(sizeof *req);
    if (!req)
        return;
    char why[256];
    if (!ev->payload ||
        yard_cache_request_parse(ev->payload, ev->payload_len, true, req, why,
                                 sizeof why) != 0 ||
        !yard_cache_op_mutates(req->op)) {
        atomic_fetch_add(&self->invalid, 1);
        yard_debug("cache: ignored a malformed cache.invalidate from '%s'",
                   ev->source);
        free(req);
        return;
    }
    size_t ilen = strlen(self->cache->instance);
    if (req->olen == ilen &&
        memcmp(req->origin, self->cache->instance, ilen) == 0) {
        atomic_fetch_add(&self->own, 1);
    } else {
        yard_cache_apply_remote(self->cache, req);
        atomic_fetch_add(&self->applied, 1);
    }
    free(req);
}

static void *s_run(void *arg)
{
    yard_cache_sync_t *self = arg;
    yard_cache_t *cache = self->cache;
    yard_rand_t rng;
    yard_rand_seed_os(&rng);
    const char *types[] = {YARD_CACHE_EVENT_INVALIDATE};
    yard_subscriber_t *sub = NULL;
    uint64_t missed = 0, resubscribes = 0;
    uint32_t step = 0;
    bool ever = false;
    int64_t next_sweep = yard_clock_ms() + YARD_CACHE_SWEEP_MS;
    while (!atomic_load(&self->stop)) {
        int64_t now = yard_clock_ms();
        if (now >= next_sweep) {
            pthread_mutex_lock(&cache->lock);
            yard_lru_expire(cache->l1, now, YARD_CACHE_SWEEP_BUDGET);
            pthread_mutex_unlock(&cache->lock);
            next_sweep = now + YARD_CACHE_SWEEP_MS;
        }
        if (!sub) {
            int err = 0;
            sub = yard_subscriber_new(cache->cfg.events, types, 1,
                                      S_SUBSCRIBE_WAIT_MS, &err);
            if (!sub) {
                step++;
                uint32_t delay = yard_backoff_ms(100, step, 2000, 0.2, &rng);
                yard_debug("cache: cannot subscribe on %s (%s): retry in %u "
                           "ms",
                           cache->cfg.events, yard_strerror(err), delay);
                for (uint32_t waited = 0;
                     waited < delay && !atomic_load(&self->stop);
                     waited += S_POLL_MS)
                    s_sleep_ms(S_POLL_MS);
                continue;
            }
            step = 0;
            missed = resubscribes = 0;
            atomic_store(&self->subscribed, true);
            /*  Events published while we were not subscribed are gone. */
            if (ever)
                s_reset_l1(self, "subscribed again");
            ever = true;
            yard_info("cache: coherence: subscribed to %s on %s",
                      YARD_CACHE_EVENT_INVALIDATE, cache->cfg.events);
        }
        yard_sub_event_t *ev = NULL;
        int rc = yard_subscriber_next(sub, S_POLL_MS, &ev);
        if (rc == 0) {
            s_on_event(self, ev);
            yard_sub_event_destroy(&ev);
        } else if (rc != YARD_E_TIMEOUT && rc != YARD_E_INTERRUPTED) {
            yard_warn("cache: coherence subscriber: %s; subscribing again",
                      yard_strerror(rc));
            yard_subscriber_destroy(&sub);
            atomic_store(&self->subscribed, false);
            continue;
        }
        uint64_t m = yard_subscriber_missed(sub);
        uint64_t r = yard_subscriber_resubscribes(sub);
        if (m != missed) {
            atomic_fetch_add(&self->missed, m - missed);
            missed = m;
            s_reset_l1(self, "invalidation events were lost");
        }
        if (r != resubscribes) {
            resubscribes = r;
            s_reset_l1(self, "the broker forgot our subscription");
        }
    }
    yard_subscriber_destroy(&sub);
    atomic_store(&self->subscribed, false);
    return NULL;
}

yard_cache_sync_t *yard_cache_sync_start(yard_cache_t *cache)
{
    yard_cache_sync_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cache = cache;
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

void yard_cache_sync_stop(yard_cache_sync_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    yard_cache_sync_t *self = *self_p;
    atomic_store(&self->stop, true);
    pthread_join(self->thread, NULL);
    free(self);
    *self_p = NULL;
}

void yard_cache_sync_stats(yard_cache_sync_t *self,
                           yard_cache_sync_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self)
        return;
    out->subscribed = atomic_load(&self->subscribed);
    out->received = atomic_load(&self->received);
    out->applied = atomic_load(&self->applied);
    out->own = atomic_load(&self->own);
    out->invalid = atomic_load(&self->invalid);
    out->missed = atomic_load(&self->missed);
    out->resets = atomic_load(&self->resets);
}

void yard_cache_publish_invalidate(yard_cache_t *self,
                                   const yard_cache_request_t *req)
{
    uint8_t *payload;
    size_t len;
    if (yard_cache_event_encode(req, self->instance, &payload, &len) != 0) {
        atomic_fetch_add(&self->publish_failed, 1);
        return;
    }
    int rc = yard_worker_publish(self->worker, YARD_CACHE_EVENT_INVALIDATE,
                                 payload, len);
    free(payload);
    if (rc == 0) {
        atomic_fetch_add(&self->published, 1);
    } else {
        atomic_fetch_add(&self->publish_failed, 1);
        yard_warn("cache: could not publish %s: %s",
                  YARD_CACHE_EVENT_INVALIDATE, yard_strerror(rc));
    }
}
