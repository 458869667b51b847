/*  health_check.c — the checker thread: the broker's stats, yard.cache's
    stats, a Redis PING; the overall status and its reasons; the events
    system.health.check and system.health.changed. */
#include "health.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <msgpack.h>

#include "yard_clock.h"
#include "yard_json.h"
#include "yard_log.h"

const char *health_status_name(health_status_t status)
{
    switch (status) {
    case HEALTH_HEALTHY:
        return "healthy";
    case HEALTH_WARNING:
        return "warning";
    default:
        return "critical";
    }
}

void health_snapshot(health_t *self, json_t **stats, json_t **cache_stats,
                     json_t **report)
{
    pthread_mutex_lock(&self->lock);
    if (stats)
        *stats = json_incref(self->stats);
    if (cache_stats)
        *cache_stats = json_incref(self->cache_stats);
    if (report)
        *report = json_incref(self->report);
    pthread_mutex_unlock(&self->lock);
}

json_t *health_processes(health_t *self)
{
    pthread_mutex_lock(&self->lock);
    json_t *p = json_incref(self->processes);
    pthread_mutex_unlock(&self->lock);
    return p;
}

/* ---- Redis -------------------------------------------------------------- */

/*  The Redis connection. Checks run on the checker thread and, after an
    HTTP action, on that request's thread: s_redis_lock serialises them. */
static pthread_mutex_t s_redis_lock = PTHREAD_MUTEX_INITIALIZER;
static redisContext *s_redis;

/*  Splits redis://HOST:PORT[/DB] (the yard-cache form). 0 or -1. */
static int s_redis_addr(const char *url, char *host, size_t cap, int *port)
{
    const char *p = strncmp(url, "redis://", 8) == 0 ? url + 8 : url;
    const char *colon = strrchr(p, ':');
    const char *slash = strchr(p, '/');
    if (!colon || (slash && slash < colon) || (size_t)(colon - p) >= cap ||
        colon == p)
        return -1;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || (*end && *end != '/') || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/*  PING; true on PONG. why gets the reason otherwise. */
static bool s_redis_ping(health_t *self, int64_t *rtt_us, char *why, size_t cap)
{
    int64_t t0 = yard_clock_us();
    if (!s_redis) {
        char host[256];
        int port;
        if (s_redis_addr(self->cfg.redis, host, sizeof host, &port) != 0) {
            snprintf(why, cap, "bad Redis URL");
            return false;
        }
        struct timeval tv = {self->cfg.timeout_ms / 1000,
                             (long)(self->cfg.timeout_ms % 1000) * 1000};
        s_redis = redisConnectWithTimeout(host, port, tv);
        if (!s_redis || s_redis->err) {
            snprintf(why, cap, "%s",
                     s_redis ? s_redis->errstr : "out of memory");
            redisFree(s_redis);
            s_redis = NULL;
            return false;
        }
        redisSetTimeout(s_redis, tv);
    }
    redisReply *r = redisCommand(s_redis, "PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS && r->str &&
              strcmp(r->str, "PONG") == 0;
    if (!ok) {
        snprintf(why, cap, "%s",
                 s_redis->err  ? s_redis->errstr
                 : r && r->str ? r->str
                               : "no PONG");
        redisFree(s_redis);
        s_redis = NULL; /*  reconnect next time */
    }
    freeReplyObject(r);
    *rtt_us = yard_clock_us() - t0;
    return ok;
}

/* ---- Rules -------------------------------------------------------------- */

/*  Adds a reason and raises *status to at least level. */
static void s_reason(json_t *reasons, health_status_t *status,
                     health_status_t level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void s_reason(json_t *reasons, health_status_t *status,
                     health_status_t level, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_array_append_new(reasons, json_string(text));
    if (level > *status)
        *status = level;
}

static json_int_t s_int(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

/*  The rules over the broker's stats. */
static void s_broker_rules(json_t *stats, json_t *reasons,
                           health_status_t *status)
{
    const char *name;
    json_t *svc;
    json_object_foreach(json_object_get(stats, "services"), name, svc)
    {
        json_int_t queued = s_int(svc, "queued");
        json_int_t workers = s_int(svc, "workers");
        if (queued > 0 && workers == 0)
            s_reason(reasons, status, HEALTH_CRITICAL,
                     "service %s: %lld task(s) queued and no workers", name,
                     (long long)queued);
        const char *state = json_string_value(
            json_object_get(json_object_get(svc, "breaker"), "state"));
        if (state && strcmp(state, "closed") != 0)
            s_reason(reasons, status, HEALTH_WARNING,
                     "service %s: circuit breaker %s", name, state);
    }
}

/*  Lost workers not yet replaced, within the window. Under self->lock. */
static void s_lost_rules(health_t *self, int64_t now, json_t *reasons,
                         health_status_t *status)
{
    size_t keep = 0;
    for (size_t i = 0; i < self->nlost; i++) {
        health_lost_t *l = &self->lost[i];
        if (now - l->at_ms >= (int64_t)self->cfg.lost_window_ms)
            continue;
        s_reason(reasons, status, HEALTH_WARNING,
                 "service %s: worker %s lost %lld s ago", l->service, l->name,
                 (long long)((now - l->at_ms) / 1000));
        self->lost[keep++] = *l;
    }
    self->nlost = keep;
}

/* ---- Processes ---------------------------------------------------------- */

/*  How long a worker has to answer a ping. */
static uint32_t s_ping_wait(const health_t *self)
{
    return self->cfg.timeout_ms < 1000 ? self->cfg.timeout_ms : 1000;
}

/*  Asks the broker to probe every worker ("ping"); the answer, or NULL.
 *reached is false when the broker did not answer at all. */
static json_t *s_ping_workers(health_t *self, yard_client_t *client,
                              bool *reached)
{
    uint32_t wait = s_ping_wait(self);
    char cmd[32];
    int n = snprintf(cmd, sizeof cmd, "ping %u", wait);
    (void)n;
    char *text = NULL;
    int rc = yard_client_admin_json(client, cmd,
                                    (int)(wait + self->cfg.timeout_ms), &text);
    *reached = rc != YARD_E_TIMEOUT;
    json_t *out = rc == 0 ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return out;
}

/*  The flags of one process from its loop and memory figures; adds the
    reasons. who names it in them ("broker", "service echo: worker w1"). */
static void s_process_rules(health_t *self, const char *who, json_t *loop,
                            json_t *memory, json_t *flags, json_t *reasons,
                            health_status_t *status)
{
    json_t *age = json_object_get(loop, "stall_age_ms");
    if (json_is_integer(age) &&
        json_integer_value(age) < (json_int_t)self->cfg.lost_window_ms) {
        json_array_append_new(flags, json_string("loop_stall"));
        s_reason(reasons, status, HEALTH_WARNING,
                 "%s: event loop stalled %lld ms, %lld s ago (%lld stalls)",
                 who, (long long)(s_int(loop, "last_stall_us") / 1000),
                 (long long)(json_integer_value(age) / 1000),
                 (long long)s_int(loop, "stalls"));
    }
    json_int_t growth = s_int(memory, "rss_growth_bytes");
    if (growth >= (json_int_t)self->cfg.mem_growth_mb * 1024 * 1024) {
        json_array_append_new(flags, json_string("memory_growth"));
        s_reason(reasons, status, HEALTH_WARNING,
                 "%s: memory grew %lld MiB in %lld s (now %lld MiB)", who,
                 (long long)(growth >> 20),
                 (long long)(s_int(memory, "growth_window_ms") / 1000),
                 (long long)(s_int(memory, "rss_bytes") >> 20));
    }
}

/*  Finds a worker's entry in the ping answer by its id. */
static json_t *s_ping_entry(json_t *ping, const char *id)
{
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(ping, "workers"), i, w)
    {
        const char *wid = json_string_value(json_object_get(w, "id"));
        if (wid && id && strcmp(wid, id) == 0)
            return w;
    }
    return NULL;
}

/*  Every process: the broker (from its stats) and each worker (from the
    report its HEARTBEAT carried and its answer to the ping). */
static json_t *s_processes(health_t *self, json_t *stats, int64_t stats_rtt,
                           json_t *ping, json_t *reasons,
                           health_status_t *status)
{
    json_t *list = json_array();
    json_t *b = json_object_get(stats, "broker");
    json_t *total = json_object_get(stats, "total");
    json_t *mem = json_object_get(stats, "memory");
    json_t *ev = json_object_get(stats, "events");
    json_t *flags = json_array();
    s_process_rules(self, "broker", json_object_get(stats, "loop"), mem, flags,
                    reasons, status);
    json_t *bp = json_pack(
        "{s:s, s:n, s:s, s:n, s:O, s:O, s:O, s:o, s:{s:b, s:I}, s:O, "
        "s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}}",
        "kind", "broker", "service", "name", "yard-broker", "id", "pid",
        json_object_get(b, "pid"), "version", json_object_get(b, "version"),
        "uptime_ms", json_object_get(b, "uptime_ms"), "flags", flags, "ping",
        "answered", 1, "rtt_us", (json_int_t)stats_rtt, "loop",
        json_object_get(stats, "loop"), "memory", "rss_bytes",
        s_int(mem, "rss_bytes"), "rss_peak_bytes", s_int(mem, "rss_peak_bytes"),
        "rss_growth_bytes", s_int(mem, "rss_growth_bytes"), "growth_window_ms",
        s_int(mem, "growth_window_ms"), "index_bytes",
        s_int(mem, "index_bytes"), "timers", s_int(mem, "timers"), "objects",
        "tasks", s_int(mem, "tasks"), "queued", s_int(total, "queued"),
        "in_flight", s_int(total, "in_flight"), "sessions",
        s_int(mem, "clients") + s_int(total, "workers") +
            s_int(ev, "subscribers"));
    if (bp)
        json_array_append_new(list, bp);

    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(stats, "workers"), i, w)
    {
        const char *service = json_string_value(json_object_get(w, "service"));
        const char *name = json_string_value(json_object_get(w, "name"));
        const char *id = json_string_value(json_object_get(w, "id"));
        json_t *rep = json_object_get(w, "report");
        json_t *pe = s_ping_entry(ping, id);
        char who[300];
        snprintf(who, sizeof who, "service %s: worker %s",
                 service ? service : "",
                 name && *name ? name
                 : id          ? id
                               : "?");
        json_t *wf = json_array();
        bool answered = json_is_true(json_object_get(pe, "answered"));
        if (ping && pe && !answered) {
            json_array_append_new(wf, json_string("unresponsive"));
            s_reason(reasons, status, HEALTH_WARNING,
                     "%s: did not answer a ping within %u ms", who,
                     s_ping_wait(self));
        }
        if (json_is_object(rep))
            s_process_rules(self, who, json_object_get(rep, "loop"),
                            json_object_get(rep, "memory"), wf, reasons,
                            status);
        const char *kind = !service                             ? "worker"
                           : strcmp(service, "yard.cache") == 0 ? "cache"
                           : strcmp(service, YARD_HEALTH_SERVICE) == 0
                               ? "health"
                               : "worker";
        json_t *po = json_pack(
            "{s:s, s:O, s:O, s:O, s:O, s:o, s:{s:b, s:O}, s:O, s:O, s:O}",
            "kind", kind, "service", json_object_get(w, "service"), "name",
            json_object_get(w, "name"), "id", json_object_get(w, "id"), "pid",
            json_object_get(w, "pid"), "flags", wf, "ping", "answered",
            answered, "rtt_us",
            pe && answered ? json_object_get(pe, "rtt_us") : json_null(),
            "in_flight", json_object_get(w, "in_flight"), "capacity",
            json_object_get(w, "capacity"), "last_seen_ms",
            json_object_get(w, "last_seen_ms"));
        if (!po)
            continue;
        if (json_is_object(rep)) {
            const char *keys[] = {"version", "uptime_ms", "loop",  "memory",
                                  "pending", "objects",   "age_ms"};
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
                json_object_set(po,
                                strcmp(keys[k], "age_ms") == 0 ? "report_age_ms"
                                                               : keys[k],
                                json_object_get(rep, keys[k]));
        } else
            json_object_set_new(po, "report_age_ms", json_null());
        json_array_append_new(list, po);
    }
    return list;
}

/* ---- Events ------------------------------------------------------------- */

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void s_pack_reasons(msgpack_packer *pk, json_t *reasons)
{
    msgpack_pack_array(pk, json_array_size(reasons));
    size_t i;
    json_t *r;
    json_array_foreach(reasons, i, r) s_pack_str(pk, json_string_value(r));
}

static void s_publish(yard_client_t *client, health_status_t prev,
                      health_status_t now, bool first, json_t *reasons)
{
    yard_publish_opts_t o = {.source = YARD_HEALTH_SERVICE};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    s_pack_str(&pk, "status");
    s_pack_str(&pk, health_status_name(now));
    s_pack_str(&pk, "reasons");
    s_pack_reasons(&pk, reasons);
    if (buf.data)
        yard_client_publish(client, "system.health.check", buf.data, buf.size,
                            &o);
    if (!first && prev != now) {
        msgpack_sbuffer_clear(&buf);
        msgpack_pack_map(&pk, 3);
        s_pack_str(&pk, "from");
        s_pack_str(&pk, health_status_name(prev));
        s_pack_str(&pk, "to");
        s_pack_str(&pk, health_status_name(now));
        s_pack_str(&pk, "reasons");
        s_pack_reasons(&pk, reasons);
        if (buf.data)
            yard_client_publish(client, "system.health.changed", buf.data,
                                buf.size, &o);
    }
    msgpack_sbuffer_destroy(&buf);
}

/* ---- The check ---------------------------------------------------------- */

/*  yard.cache's stats as JSON, or NULL. */
static json_t *s_cache_stats(health_t *self, yard_client_t *client)
{
    static const uint8_t req[] = {0x81, 0xa2, 'o', 'p', 0xa5,
                                  's',  't',  'a', 't', 's'};
    yard_submit_opts_t o = {.timeout_ms = self->cfg.timeout_ms};
    yard_reply_t *reply = NULL;
    json_t *out = NULL;
    if (yard_client_call(client, "yard.cache", req, sizeof req, &o, &reply) ==
            0 &&
        reply->status == YARD_OK)
        out = yard_json_from_msgpack(reply->payload, reply->payload_len);
    yard_reply_destroy(&reply);
    return out;
}

void health_check_once(health_t *self, yard_client_t *client)
{
    /*  Probe the workers first, so the stats carry their fresh reports. */
    bool reached = false;
    json_t *ping = s_ping_workers(self, client, &reached);
    int64_t t0 = yard_clock_us();
    char *text = NULL;
    json_t *stats = NULL;
    if (reached &&
        yard_client_stats_json(client, (int)self->cfg.timeout_ms, &text) == 0) {
        stats = json_loads(text, 0, NULL);
        free(text);
    }
    int64_t rtt = yard_clock_us() - t0;

    json_t *reasons = json_array();
    health_status_t status = HEALTH_HEALTHY;
    json_t *checks = json_object();
    json_object_set_new(checks, "broker",
                        json_pack("{s:b, s:I, s:s}", "ok", stats != NULL,
                                  "latency_us", (json_int_t)rtt, "endpoint",
                                  self->cfg.broker));
    json_t *cache = NULL;
    json_t *processes = NULL;
    if (!stats)
        s_reason(reasons, &status, HEALTH_CRITICAL, "broker unreachable at %s",
                 self->cfg.broker);
    else {
        s_broker_rules(stats, reasons, &status);
        processes = s_processes(self, stats, rtt, ping, reasons, &status);
        json_t *yc =
            json_object_get(json_object_get(stats, "services"), "yard.cache");
        if (s_int(yc, "workers") > 0) {
            int64_t c0 = yard_clock_us();
            cache = s_cache_stats(self, client);
            json_t *deg = json_object_get(cache, "degraded");
            json_object_set_new(checks, "cache",
                                json_pack("{s:b, s:b, s:I, s:I}", "ok",
                                          cache != NULL, "degraded",
                                          json_is_true(deg), "latency_us",
                                          (json_int_t)(yard_clock_us() - c0),
                                          "workers", s_int(yc, "workers")));
            if (!cache)
                s_reason(reasons, &status, HEALTH_WARNING,
                         "yard.cache does not answer");
            else if (json_is_true(deg))
                s_reason(reasons, &status, HEALTH_WARNING,
                         "yard.cache degraded: its Redis is unreachable");
        }
    }
    if (!json_object_get(checks, "cache"))
        json_object_set_new(checks, "cache", json_null());
    if (self->cfg.redis) {
        char why[256] = "";
        int64_t rrtt = 0;
        pthread_mutex_lock(&s_redis_lock);
        bool ok = s_redis_ping(self, &rrtt, why, sizeof why);
        pthread_mutex_unlock(&s_redis_lock);
        json_t *r = json_pack("{s:b, s:I, s:s}", "ok", ok, "latency_us",
                              (json_int_t)rrtt, "url", self->cfg.redis);
        if (!ok) {
            json_object_set_new(r, "error", json_string(why));
            s_reason(reasons, &status, HEALTH_WARNING,
                     "redis unreachable at %s: %s", self->cfg.redis, why);
        }
        json_object_set_new(checks, "redis", r);
    } else
        json_object_set_new(checks, "redis", json_null());

    pthread_mutex_lock(&self->lock);
    s_lost_rules(self, yard_clock_ms(), reasons, &status);
    json_t *report = json_pack(
        "{s:s, s:O, s:I, s:o, s:I, s:s, s:I}", "status",
        health_status_name(status), "reasons", reasons, "checked_at_ms",
        (json_int_t)yard_wallclock_ms(), "checks", checks, "uptime_ms",
        (json_int_t)(yard_clock_ms() - self->started_ms), "version",
        YARD_VERSION_STRING, "events_missed", (json_int_t)self->events_missed);
    health_status_t prev = self->status;
    bool first = !self->checked;
    json_decref(self->stats);
    json_decref(self->cache_stats);
    json_decref(self->report);
    json_decref(self->processes);
    self->processes = processes;
    self->stats = stats;
    self->cache_stats = cache;
    self->report = report;
    self->status = status;
    self->checked = true;
    self->broker_rtt_us = rtt;
    self->checks++;
    pthread_mutex_unlock(&self->lock);

    if (first || prev != status) {
        yard_info("status %s%s", health_status_name(status),
                  json_array_size(reasons) ? ":" : "");
        size_t i;
        json_t *r;
        json_array_foreach(reasons, i, r)
            yard_info("  %s", json_string_value(r));
    }
    if (stats)
        s_publish(client, prev, status, first, reasons);
    json_decref(reasons);
    json_decref(ping);
}

static void *s_checker(void *arg)
{
    health_t *self = arg;
    yard_client_t *client = yard_client_new(self->cfg.broker);
    if (!client) {
        yard_error("checker: cannot use broker endpoint %s", self->cfg.broker);
        return NULL;
    }
    while (!atomic_load(&self->stopping)) {
        int64_t next = yard_clock_ms() + self->cfg.interval_ms;
        health_check_once(self, client);
        /*  Sleep to the next check, waking for a stop. */
        pthread_mutex_lock(&self->lock);
        while (!atomic_load(&self->stopping) && yard_clock_ms() < next) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t left = next - yard_clock_ms();
            if (left > 100)
                left = 100;
            ts.tv_nsec += (long)left * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&self->changed, &self->lock, &ts);
        }
        pthread_mutex_unlock(&self->lock);
    }
    yard_client_destroy(&client);
    pthread_mutex_lock(&s_redis_lock);
    if (s_redis) {
        redisFree(s_redis);
        s_redis = NULL;
    }
    pthread_mutex_unlock(&s_redis_lock);
    return NULL;
}

int health_checker_start(health_t *self)
{
    if (pthread_create(&self->checker, NULL, s_checker, self) != 0)
        return -1;
    self->checker_started = true;
    return 0;
}
