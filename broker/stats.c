/*  stats.c — the admin service's "stats" answer: broker, totals, per
    service counters with latency percentiles from the histograms, workers
    and memory, as one JSON object (jansson). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "broker.h"

static void s_add_counters(broker_counters_t *sum, const broker_counters_t *c)
{
    sum->submitted += c->submitted;
    sum->completed += c->completed;
    sum->failed += c->failed;
    sum->timed_out += c->timed_out;
    sum->rejected += c->rejected;
    sum->retried += c->retried;
    sum->cancelled += c->cancelled;
    sum->lost += c->lost;
    sum->shutdown += c->shutdown;
    sum->circuit_open += c->circuit_open;
    sum->fallback += c->fallback;
    sum->cache_hits += c->cache_hits;
    sum->cache_misses += c->cache_misses;
    sum->coalesced += c->coalesced;
}

static json_t *s_latency(const yard_hist_t *h)
{
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I}", "avg", (json_int_t)yard_hist_mean(h),
        "p50", (json_int_t)yard_hist_percentile(h, 50), "p95",
        (json_int_t)yard_hist_percentile(h, 95), "p99",
        (json_int_t)yard_hist_percentile(h, 99), "max", (json_int_t)h->max);
}

static json_t *s_block(const broker_counters_t *c, size_t queued,
                       size_t in_flight, size_t workers, const yard_hist_t *h)
{
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "submitted", (json_int_t)c->submitted, "completed",
        (json_int_t)c->completed, "failed", (json_int_t)c->failed, "timed_out",
        (json_int_t)c->timed_out, "rejected", (json_int_t)c->rejected,
        "retried", (json_int_t)c->retried, "cancelled",
        (json_int_t)c->cancelled, "lost", (json_int_t)c->lost, "shutdown",
        (json_int_t)c->shutdown, "queued", (json_int_t)queued, "in_flight",
        (json_int_t)in_flight, "workers", (json_int_t)workers);
    if (o) {
        json_object_set_new(o, "circuit_open",
                            json_integer((json_int_t)c->circuit_open));
        json_object_set_new(o, "fallback",
                            json_integer((json_int_t)c->fallback));
        json_object_set_new(o, "cache_hits",
                            json_integer((json_int_t)c->cache_hits));
        json_object_set_new(o, "cache_misses",
                            json_integer((json_int_t)c->cache_misses));
        json_object_set_new(o, "coalesced",
                            json_integer((json_int_t)c->coalesced));
        json_object_set_new(o, "latency_us", s_latency(h));
    }
    return o;
}

json_t *stats_breaker_config(const yard_breaker_config_t *cfg)
{
    json_t *count = json_array();
    if (cfg->count & YARD_BREAKER_COUNT_ERROR)
        json_array_append_new(count, json_string("error"));
    if (cfg->count & YARD_BREAKER_COUNT_TIMEOUT)
        json_array_append_new(count, json_string("timeout"));
    if (cfg->count & YARD_BREAKER_COUNT_LOST)
        json_array_append_new(count, json_string("lost"));
    return json_pack(
        "{s:b, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:o}", "enabled",
        cfg->enabled, "fail_threshold", (json_int_t)cfg->fail_threshold,
        "window", (json_int_t)cfg->window, "min_calls",
        (json_int_t)cfg->min_calls, "failure_rate", cfg->failure_rate,
        "slow_ms", (json_int_t)cfg->slow_ms, "base_timeout_ms",
        (json_int_t)cfg->base_timeout_ms, "max_timeout_ms",
        (json_int_t)cfg->max_timeout_ms, "half_open_test_count",
        (json_int_t)cfg->half_open_test_count, "count", count);
}

json_t *stats_breaker(broker_t *self, broker_service_t *service, int64_t now)
{
    (void)self;
    const yard_breaker_t *b = &service->breaker;
    int64_t ms = now / 1000;
    uint32_t retry = yard_breaker_retry_in(b, ms);
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, "
        "s:I, s:I, s:f}",
        "service", service->name, "state", yard_breaker_state_name(b->state),
        "consecutive_failures", (json_int_t)b->consecutive_failures, "total",
        (json_int_t)b->calls, "successful", (json_int_t)b->successes, "failed",
        (json_int_t)b->failures, "slow", (json_int_t)b->slow, "rejected",
        (json_int_t)b->rejected, "trips", (json_int_t)b->trips, "success_rate",
        yard_breaker_success_rate(b), "recovery_success_rate",
        yard_breaker_recovery_rate(b), "recovery_trials",
        (json_int_t)b->recovery_trials, "consecutive_trips",
        (json_int_t)b->consecutive_trips, "half_open_trials",
        (json_int_t)(b->state == YARD_BREAKER_HALF_OPEN ? b->trials : 0),
        "retry_in_ms", (json_int_t)retry, "seconds_until_retry",
        (double)retry / 1000.0);
    if (!o)
        return NULL;
    json_object_set_new(
        o, "time_in_state_ms",
        json_pack(
            "{s:I, s:I, s:I}", "closed",
            (json_int_t)yard_breaker_time_in(b, YARD_BREAKER_CLOSED, ms),
            "open", (json_int_t)yard_breaker_time_in(b, YARD_BREAKER_OPEN, ms),
            "half_open",
            (json_int_t)yard_breaker_time_in(b, YARD_BREAKER_HALF_OPEN, ms)));
    json_object_set_new(o, "config", stats_breaker_config(&b->config));
    return o;
}

typedef struct {
    json_t *services;        /*  name -> block                          */
    broker_counters_t total; /*  summed counters                         */
    yard_hist_t *latency;    /*  merged histogram                        */
    size_t queued, in_flight, workers; /*  summed gauges                 */
    broker_t *self;
    int64_t now;
} s_walk_t;

static void s_service(void *value, void *arg)
{
    broker_service_t *s = value;
    s_walk_t *walk = arg;
    uint64_t capacity = 0;
    for (size_t i = 0; i < s->nworkers; i++)
        capacity += s->workers[i]->capacity;
    json_t *o = s_block(&s->counters, s->queued + s->delayed + s->parked,
                        s->in_flight, s->nworkers, &s->latency);
    if (o) {
        json_object_set_new(o, "capacity", json_integer((json_int_t)capacity));
        json_object_set_new(o, "breaker",
                            stats_breaker(walk->self, s, walk->now));
        json_object_set_new(walk->services, s->name, o);
    }
    s_add_counters(&walk->total, &s->counters);
    yard_hist_merge(walk->latency, &s->latency);
    walk->queued += s->queued + s->delayed + s->parked;
    walk->in_flight += s->in_flight;
    walk->workers += s->nworkers;
}

typedef struct {
    json_t *list; /*  array of worker objects */
    int64_t now;  /*  for last_seen_ms        */
} s_wlist_t;

static void s_worker(void *value, void *arg)
{
    broker_worker_t *w = value;
    s_wlist_t *wl = arg;
    char hex[2 * sizeof(w->identity) + 1];
    sodium_bin2hex(hex, sizeof(hex), w->identity, w->identity_len);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "service", w->service->name,
        "id", hex, "name", w->name, "pid", (json_int_t)w->pid, "capacity",
        (json_int_t)w->capacity, "in_flight", (json_int_t)w->in_flight, "done",
        (json_int_t)w->done, "last_seen_ms",
        (json_int_t)((wl->now - w->last_seen_us) / 1000));
    if (!o)
        return;
    json_t *report = probe_report_json(w, wl->now);
    json_object_set_new(o, "report", report ? report : json_null());
    json_t *ping = probe_ping_json(w, wl->now);
    json_object_set_new(o, "ping", ping ? ping : json_null());
    json_array_append_new(wl->list, o);
}

char *stats_json(broker_t *self, int64_t now)
{
    yard_hist_t *latency = malloc(sizeof(*latency));
    json_t *root = json_object();
    json_t *services = json_object();
    json_t *workers = json_array();
    char *text = NULL;
    if (!latency || !root || !services || !workers)
        goto done;
    yard_hist_reset(latency);
    s_walk_t walk;
    memset(&walk, 0, sizeof(walk));
    walk.services = services;
    walk.latency = latency;
    walk.self = self;
    walk.now = now;
    s_add_counters(&walk.total, &self->totals);
    yard_map_each(self->services, s_service, &walk);
    s_wlist_t wl = {workers, now};
    yard_map_each(self->workers, s_worker, &wl);

    json_object_set_new(
        root, "broker",
        json_pack("{s:s, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I}", "version",
                  YARD_VERSION_STRING, "pid", (json_int_t)getpid(), "uptime_ms",
                  (json_int_t)((now - self->started_us) / 1000), "draining",
                  self->draining, "invalid", (json_int_t)self->invalid,
                  "malformed", (json_int_t)self->malformed, "events",
                  (json_int_t)self->events, "duplicates",
                  (json_int_t)self->duplicates, "stale_results",
                  (json_int_t)self->stale_results));
    json_t *b = json_object_get(root, "broker");
    json_object_set_new(b, "reports", json_integer((json_int_t)self->reports));
    json_object_set_new(b, "bad_reports",
                        json_integer((json_int_t)self->bad_reports));
    json_object_set_new(root, "total",
                        s_block(&walk.total, walk.queued, walk.in_flight,
                                walk.workers, latency));
    json_object_set_new(root, "events", events_stats(self, now));
    json_object_set_new(root, "cache", cache_stats(self));
    json_object_set_new(root, "services", services);
    services = NULL;
    json_object_set_new(root, "workers", workers);
    workers = NULL;
    //  A fresh figure for the answer; the growth window keeps its
    //  once-a-second samples.
    self->proc.rss = yard_proc_read_rss();
    if (self->proc.rss > self->proc.rss_peak)
        self->proc.rss_peak = self->proc.rss;
    json_object_set_new(root, "loop", probe_loop_json(&self->proc, now));
    json_object_set_new(
        root, "memory",
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "rss_bytes",
                  (json_int_t)self->proc.rss, "rss_peak_bytes",
                  (json_int_t)self->proc.rss_peak, "rss_growth_bytes",
                  (json_int_t)yard_proc_rss_growth(&self->proc),
                  "growth_window_ms",
                  (json_int_t)yard_proc_window_ms(&self->proc), "tasks",
                  (json_int_t)yard_map_size(self->tasks_by_id), "clients",
                  (json_int_t)yard_map_size(self->clients), "timers",
                  (json_int_t)yard_heap_size(self->timers), "index_bytes",
                  (json_int_t)(yard_map_memory(self->tasks_by_id) +
                               yard_map_memory(self->tasks_by_job))));
    text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6));
done:
    json_decref(services);
    json_decref(workers);
    json_decref(root);
    free(latency);
    return text;
}
