/*  health_http.c — the HTTP admin API on libmicrohttpd (README "Admin HTTP
    API"). A thread per connection: the SSE stream blocks its own thread
    while it waits for events, nothing else. GET answers come from the
    checker's snapshot (at most one interval old); actions (breaker reset,
    cache clear and invalidations) go to the broker at once on the action
    client, then refresh the snapshot. */
#include "health.h"
#include "yard_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <stdarg.h>

#include <microhttpd.h>
#include <msgpack.h>
#include <sodium.h>

#include "yard_clock.h"
#include "yard_json.h"
#include "yard_log.h"

/*  One request in progress: its body. */
typedef struct {
    char *body;
    size_t len;
    bool too_large;
} s_req_t;

/* ---- Responses ---------------------------------------------------------- */

static enum MHD_Result s_send(struct MHD_Connection *conn, unsigned code,
                              const char *type, char *text, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return rc;
}

/*  Sends json (taking the reference) with code. */
static enum MHD_Result s_json(struct MHD_Connection *conn, unsigned code,
                              json_t *json)
{
    char *text = json ? json_dumps(json, JSON_COMPACT) : NULL;
    json_decref(json);
    if (!text)
        return MHD_NO;
    size_t len = strlen(text);
    return s_send(conn, code, "application/json", text, len);
}

static enum MHD_Result s_error(struct MHD_Connection *conn, unsigned code,
                               const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum MHD_Result s_error(struct MHD_Connection *conn, unsigned code,
                               const char *error, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return s_json(conn, code,
                  json_pack("{s:s, s:s}", "error", error, "message", message));
}

/* ---- Auth --------------------------------------------------------------- */

/*  Constant time: the two SHA-256 digests are compared, so neither the
    key's length nor its first differing byte shows in the timing. */
static bool s_key_ok(const health_t *self, struct MHD_Connection *conn)
{
    if (!self->cfg.api_key)
        return true;
    const char *given =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-API-Key");
    if (!given)
        return false;
    uint8_t a[crypto_hash_sha256_BYTES], b[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(a, (const uint8_t *)given, strlen(given));
    crypto_hash_sha256(b, (const uint8_t *)self->cfg.api_key,
                       strlen(self->cfg.api_key));
    return sodium_memcmp(a, b, sizeof a) == 0;
}

/* ---- Calls to the broker and yard.cache --------------------------------- */

/*  One task on the action client: 0 and *reply, or -1 (no answer). */
static int s_action(health_t *self, const char *service, const void *payload,
                    size_t len, yard_reply_t **reply)
{
    yard_submit_opts_t o = {.timeout_ms = self->cfg.timeout_ms};
    pthread_mutex_lock(&self->action_lock);
    int rc =
        yard_client_call(self->action_client, service, payload, len, &o, reply);
    pthread_mutex_unlock(&self->action_lock);
    return rc == 0 ? 0 : -1;
}

/*  Refreshes the snapshot after an action. */
static void s_refresh(health_t *self)
{
    pthread_mutex_lock(&self->action_lock);
    health_check_once(self, self->action_client);
    pthread_mutex_unlock(&self->action_lock);
}

/*  Workers serving service, from the snapshot (-1: broker unknown). */
static json_int_t s_workers_of(health_t *self, const char *service)
{
    json_t *stats;
    health_snapshot(self, &stats, NULL, NULL);
    json_int_t n = -1;
    if (stats)
        n = json_integer_value(json_object_get(
            json_object_get(json_object_get(stats, "services"), service),
            "workers"));
    json_decref(stats);
    return n;
}

/*  Sends a yard.cache request (msgpack) and answers with its result. */
static enum MHD_Result s_cache_call(health_t *self, struct MHD_Connection *conn,
                                    msgpack_sbuffer *req)
{
    if (s_workers_of(self, "yard.cache") <= 0)
        return s_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                       "no yard.cache worker is registered with the broker");
    yard_reply_t *reply = NULL;
    if (s_action(self, "yard.cache", req->data, req->size, &reply) != 0)
        return s_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                       "the broker did not take the request");
    enum MHD_Result rc;
    if (reply->status == YARD_OK) {
        json_t *j = yard_json_from_msgpack(reply->payload, reply->payload_len);
        rc = j ? s_json(conn, MHD_HTTP_OK, j)
               : s_error(conn, MHD_HTTP_BAD_GATEWAY, "unavailable",
                         "yard.cache answered something unreadable");
    } else if (reply->status == YARD_INVALID)
        rc = s_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", "%s",
                     reply->error ? reply->error : "invalid");
    else
        rc = s_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "yard.cache: %s: %s", yard_status_name(reply->status),
                     reply->error ? reply->error : "");
    yard_reply_destroy(&reply);
    return rc;
}

static void s_pk_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* ---- Views of the snapshot ---------------------------------------------- */

static json_t *s_get(json_t *o, const char *k)
{
    return json_object_get(o, k);
}

static json_int_t s_int(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/*  The checker's entry for the worker with this id, or NULL. */
static json_t *s_process_of(json_t *procs, json_t *id)
{
    size_t i;
    json_t *p;
    json_array_foreach(procs, i, p)
    {
        if (json_equal(s_get(p, "id"), id))
            return p;
    }
    return NULL;
}

static json_t *s_workers_view(health_t *self, json_t *stats)
{
    json_t *procs = health_processes(self);
    json_t *out = json_array();
    size_t i;
    json_t *w;
    json_array_foreach(s_get(stats, "workers"), i, w)
    {
        const char *service = json_string_value(s_get(w, "service"));
        json_t *svc = s_get(s_get(stats, "services"), service ? service : "");
        json_t *lat = s_get(svc, "latency_us");
        json_int_t cap = s_int(w, "capacity"), inf = s_int(w, "in_flight");
        const char *status = inf == 0 ? "idle" : inf >= cap ? "full" : "busy";
        json_array_append_new(
            out, json_pack("{s:O, s:O, s:O, s:O, s:s, s:I, s:I, s:I, s:I, "
                           "s:{s:I, s:I}}",
                           "service", s_get(w, "service"), "id", s_get(w, "id"),
                           "name", s_get(w, "name"), "pid", s_get(w, "pid"),
                           "status", status, "capacity", cap, "in_flight", inf,
                           "done", s_int(w, "done"), "last_heartbeat_ms",
                           s_int(w, "last_seen_ms"), "latency_us", "p50",
                           s_int(lat, "p50"), "p99", s_int(lat, "p99")));
        json_t *entry = json_array_get(out, json_array_size(out) - 1);
        json_t *p = s_process_of(procs, s_get(w, "id"));
        static const char *const keys[] = {"flags",     "ping",   "version",
                                           "uptime_ms", "loop",   "memory",
                                           "objects",   "pending"};
        for (size_t k = 0; entry && k < sizeof keys / sizeof keys[0]; k++) {
            json_t *v = s_get(p, keys[k]);
            json_object_set(entry, keys[k], v ? v : json_null());
        }
    }
    json_decref(procs);
    return out;
}

static json_t *s_breakers_view(json_t *stats)
{
    json_t *out = json_object();
    const char *name;
    json_t *svc;
    json_object_foreach(s_get(stats, "services"), name, svc)
    {
        json_t *b = s_get(svc, "breaker");
        if (b)
            json_object_set(out, name, b);
    }
    return out;
}

static json_t *s_performance(health_t *self, json_t *stats, json_t *cache)
{
    json_t *procs = health_processes(self);
    json_int_t workers = 0, capacity = 0, in_flight = 0, queued = 0;
    json_t *services = json_object();
    const char *name;
    json_t *svc;
    json_object_foreach(s_get(stats, "services"), name, svc)
    {
        workers += s_int(svc, "workers");
        capacity += s_int(svc, "capacity");
        in_flight += s_int(svc, "in_flight");
        queued += s_int(svc, "queued");
        json_t *copy = json_deep_copy(svc);
        json_object_del(copy, "breaker");
        json_object_set_new(services, name, copy);
    }
    json_t *ev = s_get(stats, "events");
    return json_pack(
        "{s:{s:I, s:I, s:I, s:I, s:f}, s:o, s:{s:I, s:I, s:I, s:I, s:I}, "
        "s:{s:O, s:O}, s:o, s:o, s:{s:I, s:I, s:I}}",
        "worker_pool", "workers", workers, "capacity", capacity, "in_flight",
        in_flight, "queued", queued, "utilization",
        capacity > 0 ? (double)in_flight / (double)capacity : 0.0, "services",
        services, "event_bus", "published", s_int(ev, "published"), "delivered",
        s_int(ev, "delivered"), "dropped", s_int(ev, "dropped"), "subscribers",
        s_int(ev, "subscribers"), "invalid", s_int(ev, "invalid"), "cache",
        "broker", s_get(stats, "cache") ? s_get(stats, "cache") : json_null(),
        "yard_cache", cache ? cache : json_null(), "breakers",
        s_breakers_view(stats), "processes", procs ? procs : json_array(),
        "http", "requests", (json_int_t)atomic_load(&self->http_requests),
        "unauthorized", (json_int_t)atomic_load(&self->http_unauthorized),
        "sse_clients", (json_int_t)atomic_load(&self->sse_clients));
}

/* ---- Server-Sent Events ------------------------------------------------- */

#define S_MAX_PREFIXES 16

typedef struct {
    health_t *health;
    uint64_t next; /*  seq of the next event to look at */
    char *pending; /*  frame bytes not yet written */
    size_t pending_len, pending_off;
    char *prefixes[S_MAX_PREFIXES];
    size_t nprefixes;
    int64_t last_write_ms;
} s_sse_t;

static bool s_sse_wants(const s_sse_t *s, const char *type)
{
    if (s->nprefixes == 0)
        return true;
    for (size_t i = 0; i < s->nprefixes; i++)
        if (strncmp(type, s->prefixes[i], strlen(s->prefixes[i])) == 0)
            return true;
    return false;
}

/*  Fills s->pending with what is there for this reader (under lock):
    the matching events from s->next on, or a note of the ones it lost
    when the ring moved past it. */
static void s_sse_collect(s_sse_t *s)
{
    health_t *h = s->health;
    size_t cap = 0;
    char *buf = NULL;
    size_t len = 0;
    if (h->next_seq > YARD_HEALTH_RING &&
        s->next < h->next_seq - YARD_HEALTH_RING) {
        uint64_t lost = h->next_seq - YARD_HEALTH_RING - s->next;
        s->next = h->next_seq - YARD_HEALTH_RING;
        cap = 128;
        buf = malloc(cap);
        if (buf)
            len = (size_t)snprintf(buf, cap,
                                   "event: dropped\ndata: {\"dropped\":%llu}"
                                   "\n\n",
                                   (unsigned long long)lost);
    }
    for (; s->next < h->next_seq && len < 256 * 1024; s->next++) {
        const health_event_t *e = &h->ring[s->next % YARD_HEALTH_RING];
        if (!e->frame || e->seq != s->next || !s_sse_wants(s, e->type))
            continue;
        if (len + e->len > cap) {
            size_t ncap = (len + e->len) * 2;
            char *nb = realloc(buf, ncap);
            if (!nb)
                break;
            buf = nb;
            cap = ncap;
        }
        memcpy(buf + len, e->frame, e->len);
        len += e->len;
    }
    if (len) {
        s->pending = buf;
        s->pending_len = len;
        s->pending_off = 0;
    } else
        free(buf);
}

static ssize_t s_sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    s_sse_t *s = cls;
    health_t *h = s->health;
    while (!s->pending) {
        if (atomic_load(&h->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&h->lock);
        s_sse_collect(s);
        if (!s->pending && !atomic_load(&h->stopping)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250 * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&h->changed, &h->lock, &ts);
            s_sse_collect(s);
        }
        pthread_mutex_unlock(&h->lock);
        if (!s->pending && yard_clock_ms() - s->last_write_ms >=
                               YARD_HEALTH_SSE_KEEPALIVE_MS) {
            static const char ka[] = ": keepalive\n\n";
            s->last_write_ms = yard_clock_ms();
            memcpy(out, ka, sizeof ka - 1 < max ? sizeof ka - 1 : max);
            return (ssize_t)(sizeof ka - 1 < max ? sizeof ka - 1 : max);
        }
    }
    size_t n = s->pending_len - s->pending_off;
    if (n > max)
        n = max;
    memcpy(out, s->pending + s->pending_off, n);
    s->pending_off += n;
    if (s->pending_off == s->pending_len) {
        free(s->pending);
        s->pending = NULL;
    }
    s->last_write_ms = yard_clock_ms();
    return (ssize_t)n;
}

static void s_sse_free(void *cls)
{
    s_sse_t *s = cls;
    atomic_fetch_sub(&s->health->sse_clients, 1);
    free(s->pending);
    for (size_t i = 0; i < s->nprefixes; i++)
        free(s->prefixes[i]);
    free(s);
}

static enum MHD_Result s_sse(health_t *self, struct MHD_Connection *conn)
{
    s_sse_t *s = calloc(1, sizeof *s);
    if (!s)
        return MHD_NO;
    s->health = self;
    const char *types =
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "type");
    for (const char *p = types; p && *p && s->nprefixes < S_MAX_PREFIXES;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n > 0)
            s->prefixes[s->nprefixes++] = strndup(p, n);
        p = comma ? comma + 1 : p + n;
    }
    /*  From now on (a Last-Event-ID resumes from the ring when it can). */
    const char *last =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    pthread_mutex_lock(&self->lock);
    s->next = self->next_seq;
    if (last) {
        char *end;
        unsigned long long v = strtoull(last, &end, 10);
        if (*last && !*end && v + 1 <= self->next_seq)
            s->next = v + 1;
    }
    pthread_mutex_unlock(&self->lock);
    s->last_write_ms = 0; /*  the first read sends a keepalive at once */
    atomic_fetch_add(&self->sse_clients, 1);
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16 * 1024, s_sse_read, s, s_sse_free);
    if (!r) {
        s_sse_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- Routing ------------------------------------------------------------ */

static bool s_is(const char *method, const char *want)
{
    return strcmp(method, want) == 0;
}

/*  The breaker routes: /v1/breakers[/NAME[/reset]]. */
static enum MHD_Result s_breakers(health_t *self, struct MHD_Connection *conn,
                                  const char *rest, const char *method,
                                  json_t *stats)
{
    if (!*rest) {
        if (!s_is(method, "GET"))
            return s_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                           "method_not_allowed", "%s /v1/breakers", method);
        return s_json(conn, MHD_HTTP_OK,
                      json_pack("{s:o}", "breakers", s_breakers_view(stats)));
    }
    char name[YARD_MAX_SERVICE + 1];
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n > YARD_MAX_SERVICE)
        return s_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
                       "no such breaker");
    memcpy(name, rest, n);
    name[n] = '\0';
    bool reset = slash && strcmp(slash, "/reset") == 0;
    if (slash && !reset)
        return s_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
                       "no such path under /v1/breakers/%s", name);
    if (!reset) {
        if (!s_is(method, "GET"))
            return s_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                           "method_not_allowed", "%s /v1/breakers/%s", method,
                           name);
        json_t *b = s_get(s_get(s_get(stats, "services"), name), "breaker");
        if (!b)
            return s_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
                           "no breaker for service '%s'", name);
        return s_json(conn, MHD_HTTP_OK, json_incref(b));
    }
    if (!s_is(method, "POST"))
        return s_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                       "%s /v1/breakers/%s/reset: use POST", method, name);
    char command[YARD_MAX_SERVICE + 32];
    int len = snprintf(command, sizeof command, "breaker reset %s", name);
    yard_reply_t *reply = NULL;
    if (s_action(self, YARD_ADMIN_SERVICE, command, (size_t)len, &reply) != 0)
        return s_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                       "the broker did not take the request");
    enum MHD_Result rc;
    if (reply->status == YARD_OK) {
        json_t *j = json_loadb((const char *)reply->payload, reply->payload_len,
                               0, NULL);
        yard_reply_destroy(&reply);
        s_refresh(self);
        if (!j)
            return s_error(conn, MHD_HTTP_BAD_GATEWAY, "unavailable",
                           "the broker answered something unreadable");
        return s_json(conn, MHD_HTTP_OK, j);
    }
    if (reply->status == YARD_INVALID)
        rc = s_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "%s",
                     reply->error ? reply->error : "no such breaker");
    else
        rc = s_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "broker: %s", yard_status_name(reply->status));
    yard_reply_destroy(&reply);
    return rc;
}

/*  The cache routes: /v1/cache/... */
static enum MHD_Result s_cache(health_t *self, struct MHD_Connection *conn,
                               const char *rest, const char *method,
                               const s_req_t *req)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    enum MHD_Result rc;
    if (strcmp(rest, "stats") == 0) {
        if (!s_is(method, "GET"))
            goto not_allowed;
        msgpack_pack_map(&pk, 1);
        s_pk_str(&pk, "op", 2);
        s_pk_str(&pk, "stats", 5);
    } else if (strcmp(rest, "clear") == 0) {
        if (!s_is(method, "POST"))
            goto not_allowed;
        msgpack_pack_map(&pk, 1);
        s_pk_str(&pk, "op", 2);
        s_pk_str(&pk, "clear", 5);
    } else if (strcmp(rest, "invalidate") == 0) {
        if (!s_is(method, "DELETE"))
            goto not_allowed;
        json_error_t jerr;
        json_t *body =
            req->len ? json_loadb(req->body, req->len, 0, &jerr) : NULL;
        const char *pattern =
            json_string_value(json_object_get(body, "pattern"));
        if (!pattern || !*pattern) {
            if (body)
                rc = s_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
                             "the body needs \"pattern\": a non-empty "
                             "string");
            else
                rc = s_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
                             "the body is not JSON: %s",
                             req->len ? jerr.text : "empty body");
            json_decref(body);
            msgpack_sbuffer_destroy(&buf);
            return rc;
        }
        msgpack_pack_map(&pk, 2);
        s_pk_str(&pk, "op", 2);
        s_pk_str(&pk, "invalidate_glob", 15);
        s_pk_str(&pk, "pattern", 7);
        s_pk_str(&pk, pattern, strlen(pattern));
        json_decref(body);
    } else if (strncmp(rest, "tag/", 4) == 0 && rest[4]) {
        if (!s_is(method, "DELETE"))
            goto not_allowed;
        msgpack_pack_map(&pk, 2);
        s_pk_str(&pk, "op", 2);
        s_pk_str(&pk, "invalidate_tags", 15);
        s_pk_str(&pk, "tags", 4);
        msgpack_pack_array(&pk, 1);
        s_pk_str(&pk, rest + 4, strlen(rest + 4));
    } else {
        msgpack_sbuffer_destroy(&buf);
        return s_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
                       "no such path: /v1/cache/%s", rest);
    }
    rc = buf.data ? s_cache_call(self, conn, &buf) : MHD_NO;
    msgpack_sbuffer_destroy(&buf);
    return rc;
not_allowed:
    msgpack_sbuffer_destroy(&buf);
    return s_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                   "%s /v1/cache/%s", method, rest);
}

static enum MHD_Result s_route(health_t *self, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const s_req_t *req)
{
    bool get = s_is(method, "GET") || s_is(method, "HEAD");
    if (strcmp(url, "/v1/health") == 0) {
        if (!get)
            return s_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                           "method_not_allowed", "%s /v1/health", method);
        json_t *report;
        health_snapshot(self, NULL, NULL, &report);
        if (!report)
            return s_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                           "no check has run yet");
        const char *st = json_string_value(json_object_get(report, "status"));
        return s_json(conn,
                      st && strcmp(st, "critical") == 0
                          ? MHD_HTTP_SERVICE_UNAVAILABLE
                          : MHD_HTTP_OK,
                      report);
    }
    if (!s_key_ok(self, conn)) {
        atomic_fetch_add(&self->http_unauthorized, 1);
        yard_warn("http: %s %s refused: missing or wrong X-API-Key", method,
                  url);
        return s_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                       "missing or wrong X-API-Key header");
    }
    if (req->too_large)
        return s_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
                       "request bodies are limited to %d bytes",
                       YARD_HEALTH_MAX_BODY);
    if (strcmp(url, "/v1/events/stream") == 0) {
        if (!s_is(method, "GET"))
            return s_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                           "method_not_allowed", "%s %s", method, url);
        return s_sse(self, conn);
    }
    if (strncmp(url, "/v1/cache/", 10) == 0)
        return s_cache(self, conn, url + 10, method, req);

    json_t *stats, *cache;
    health_snapshot(self, &stats, &cache, NULL);
    enum MHD_Result rc;
    bool known = strcmp(url, "/metrics") == 0 ||
                 strcmp(url, "/v1/workers") == 0 ||
                 strcmp(url, "/v1/metrics/performance") == 0;
    if (strcmp(url, "/v1/breakers") == 0 ||
        strncmp(url, "/v1/breakers/", 13) == 0) {
        if (!stats)
            rc = s_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                         "the broker does not answer");
        else
            rc = s_breakers(self, conn, url[12] ? url + 13 : "", method, stats);
    } else if (!known)
        rc = s_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such path: %s",
                     url);
    else if (!get)
        rc = s_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                     "%s %s", method, url);
    else if (strcmp(url, "/metrics") == 0) {
        size_t len;
        char *text = health_prometheus(self, &len);
        rc = text
                 ? s_send(conn, MHD_HTTP_OK,
                          "text/plain; version=0.0.4; charset=utf-8", text, len)
                 : MHD_NO;
    } else if (!stats)
        rc = s_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "the broker does not answer");
    else if (strcmp(url, "/v1/workers") == 0)
        rc = s_json(conn, MHD_HTTP_OK,
                    json_pack("{s:o}", "workers", s_workers_view(self, stats)));
    else
        rc = s_json(conn, MHD_HTTP_OK, s_performance(self, stats, cache));
    json_decref(stats);
    json_decref(cache);
    return rc;
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    (void)version;
    health_t *self = cls;
    s_req_t *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!req->too_large) {
            if (req->len + *upload_data_size > YARD_HEALTH_MAX_BODY) {
                req->too_large = true;
                free(req->body);
                req->body = NULL;
                req->len = 0;
            } else {
                char *nb = realloc(req->body, req->len + *upload_data_size);
                if (!nb)
                    return MHD_NO;
                memcpy(nb + req->len, upload_data, *upload_data_size);
                req->body = nb;
                req->len += *upload_data_size;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&self->http_requests, 1);
    return s_route(self, conn, url, method, req);
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    s_req_t *req = *con_cls;
    if (req) {
        free(req->body);
        free(req);
        *con_cls = NULL;
    }
}

/*  Parses ADDR:PORT (IPv4). 0 or -1. */
static int s_listen_addr(const char *text, struct sockaddr_in *out)
{
    const char *colon = strrchr(text, ':');
    char host[64];
    if (!colon || (size_t)(colon - text) >= sizeof host)
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port < 1 || port > 65535)
        return -1;
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

int health_http_start(health_t *self)
{
    struct sockaddr_in addr;
    if (s_listen_addr(self->cfg.http, &addr) != 0) {
        yard_error("http: bad --http address '%s' (want IPv4ADDR:PORT)",
                   self->cfg.http);
        return -1;
    }
    self->httpd = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, s_handle, self, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)YARD_HEALTH_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, self, MHD_OPTION_END);
    if (!self->httpd) {
        yard_error("http: cannot listen on %s: %s", self->cfg.http,
                   strerror(errno));
        return -1;
    }
    yard_info("http: admin API on http://%s/ (%s)", self->cfg.http,
              self->cfg.api_key ? "X-API-Key required" : "no API key");
    return 0;
}

void health_http_stop(health_t *self)
{
    if (self->httpd) {
        MHD_stop_daemon(self->httpd);
        self->httpd = NULL;
    }
}
