/*  bench_cache.c — the cache phase's pieces: the bench's own redis-server,
    brokers serving yard.cache through yard-cache processes, the get
    request and the check of every answer, and the floor, a plain Redis
    GET through hiredis.

    The Yard side reuses the closed loop of bench_yard.c: every task is
    the same encoded {op: "get", key} (kept by task id, since an answer
    carries no stamp), and bench_cache_check reads each answer without
    allocating: one msgpack map that must say hit true, the value set
    before, byte for byte, and the tier the load is about ("l1" against a
    yard-cache with its memory tier, "l2" against one started --no-l1).

    The Redis side has the same shape: `clients` threads, each with its
    own connection keeping `window` GETs in flight. Like the Yard loop it
    blocks for one reply, takes every reply already there (parsed, or
    readable on the socket), and sends that many GETs again in one write
    (redisAppendCommand, then the output buffer flushed at once). Redis
    answers in order, so a ring of send times per thread gives every
    reply its latency: the same clock, from just before the send to the
    moment the reply is parsed and handed over. Every reply must be the
    bulk string set before. */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <msgpack.h>

#include "yard_client.h"
#include "yard_clock.h"

#define S_STARTS 3          /*  tries with a fresh port if redis dies */
#define S_POLL_MS 20        /*  readiness polls ask again this often  */
#define S_CONNECT_MS 2000   /*  hiredis connect timeout               */
#define S_CALL_MS 10000     /*  bound on one set / settle batch       */
#define S_MAX_CACHE_ARGS 16 /*  extra yard-cache flags                */
/*  Gets per settle batch: YARD_MAX_BATCH, more than one instance holds
    at once at any capacity below 256, so the broker spreads a batch over
    every instance. */
#define S_SETTLE_BATCH 256

/* ---- redis-server ------------------------------------------------------- */

static redisContext *s_redis_connect(int port, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c)
        return NULL;
    if (c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/*  True when the server on port answers PING with PONG. */
static bool s_redis_ping(int port)
{
    redisContext *c = s_redis_connect(port, 500);
    if (!c)
        return false;
    redisReply *rep = redisCommand(c, "PING");
    bool ok =
        rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return ok;
}

int bench_redis_start(bench_redis_t *r, int ready_ms)
{
    memset(r, 0, sizeof(*r));
    if (access(BENCH_REDIS_SERVER, X_OK) != 0) {
        fprintf(stderr, "yard-bench: %s is missing\n", BENCH_REDIS_SERVER);
        return -1;
    }
    for (int attempt = 1; attempt <= S_STARTS; attempt++) {
        int port = bench_free_port();
        if (port == 0) {
            fprintf(stderr, "yard-bench: no free loopback port\n");
            return -1;
        }
        char ports[16], name[32];
        snprintf(ports, sizeof(ports), "%d", port);
        snprintf(name, sizeof(name), "redis-%d", port);
        /*  No persistence at all; its working dir is the run's temp dir,
            so nothing it might write lands anywhere else. */
        char *argv[] = {BENCH_REDIS_SERVER,
                        "--port",
                        ports,
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        (char *)bench_proc_dir(),
                        NULL};
        if (bench_proc_spawn(name, argv, &r->pid) != 0)
            return -1;
        r->port = port;
        snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d/0", port);
        int64_t deadline = yard_clock_ms() + ready_ms;
        bool died = false;
        while (!bench_stopping()) {
            if (!bench_proc_alive(r->pid)) {
                died = true;
                break;
            }
            if (s_redis_ping(port)) {
                bench_note("redis-server ready on port %d", port);
                return 0;
            }
            if (yard_clock_ms() >= deadline)
                break;
            bench_pause_ms(S_POLL_MS);
        }
        if (!died || attempt == S_STARTS) {
            fprintf(stderr, "yard-bench: redis-server %s (log: %s)\n",
                    died ? "exited at start" : "did not answer PING in time",
                    bench_proc_log(r->pid));
            bench_proc_tail(r->pid, 8);
            bench_proc_stop(r->pid, 2000, false);
            r->pid = 0;
            return -1;
        }
        /*  Most likely the port was taken between probe and bind. */
        bench_note("redis-server exited at start; retrying with a new port");
        bench_proc_stop(r->pid, 1000, false);
        r->pid = 0;
    }
    return -1;
}

void bench_redis_stop(bench_redis_t *r, int term_ms)
{
    if (r->pid > 0)
        bench_proc_stop(r->pid, term_ms, false);
    r->pid = 0;
}

int bench_redis_set(const bench_redis_t *r, const char *key,
                    const uint8_t *value, size_t len)
{
    redisContext *c = s_redis_connect(r->port, S_CONNECT_MS);
    if (!c) {
        fprintf(stderr, "yard-bench: cannot connect to redis on port %d\n",
                r->port);
        return -1;
    }
    redisReply *rep = redisCommand(c, "SET %s %b", key, value, len);
    bool ok =
        rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0;
    if (!ok)
        fprintf(stderr, "yard-bench: redis SET %s failed: %s\n", key,
                rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c->errstr);
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return ok ? 0 : -1;
}

/* ---- requests and answers ----------------------------------------------- */

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

int bench_cache_get_init(bench_cache_get_t *g, const char *key,
                         const uint8_t *value, size_t len, const char *tier)
{
    memset(g, 0, sizeof(*g));
    if (strlen(key) >= sizeof(g->key))
        return -1;
    snprintf(g->key, sizeof(g->key), "%s", key);
    g->value = value;
    g->value_len = len;
    g->tier = tier;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    s_pack_str(&pk, "op");
    s_pack_str(&pk, "get");
    s_pack_str(&pk, "key");
    s_pack_str(&pk, key);
    int rc = -1;
    if (buf.size <= sizeof(g->request)) {
        memcpy(g->request, buf.data, buf.size);
        g->request_len = buf.size;
        rc = 0;
    }
    msgpack_sbuffer_destroy(&buf);
    return rc;
}

/*  A reader over an answer yard_msgpack_check has accepted (so every
    length below is within the bytes). */
typedef struct {
    const uint8_t *p;
    size_t len, off;
} s_rd_t;

static uint32_t s_be(const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*  A map header: its entry count, or -1. */
static int64_t s_map(s_rd_t *r)
{
    uint8_t b = r->p[r->off];
    if ((b & 0xf0) == 0x80) {
        r->off++;
        return b & 0x0f;
    }
    size_t w = b == 0xde ? 2 : b == 0xdf ? 4 : 0;
    if (!w || r->off + 1 + w > r->len)
        return -1;
    uint32_t n = s_be(r->p + r->off + 1, w);
    r->off += 1 + w;
    return n;
}

/*  A str (want_bin false) or bin (true): a view of its bytes. */
static int s_bytes(s_rd_t *r, bool want_bin, const uint8_t **out, size_t *n)
{
    if (r->off >= r->len)
        return -1;
    uint8_t b = r->p[r->off];
    size_t w;
    if (!want_bin && (b & 0xe0) == 0xa0) {
        *n = b & 0x1f;
        w = 0;
    } else {
        uint8_t b8 = want_bin ? 0xc4 : 0xd9;
        w = b == b8 ? 1 : b == b8 + 1 ? 2 : b == b8 + 2 ? 4 : 0;
        if (!w || r->off + 1 + w > r->len)
            return -1;
        *n = s_be(r->p + r->off + 1, w);
    }
    if (r->off + 1 + w + *n > r->len)
        return -1;
    *out = r->p + r->off + 1 + w;
    r->off += 1 + w + *n;
    return 0;
}

static bool s_is(const uint8_t *s, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

bool bench_cache_check(const uint8_t *payload, size_t len, const void *arg,
                       char *why, size_t cap)
{
    const bench_cache_get_t *g = arg;
    if (len == 0 || yard_msgpack_check(payload, len) != 0) {
        snprintf(why, cap, "answer is not one msgpack value (%zu bytes)", len);
        return false;
    }
    s_rd_t r = {payload, len, 0};
    int64_t n = s_map(&r);
    if (n < 0) {
        snprintf(why, cap, "answer is not a map");
        return false;
    }
    int hit = -1; /*  -1 absent, 0 false, 1 true */
    bool value_ok = false, have_value = false, tier_ok = false;
    char tier[16] = "";
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *k, *v;
        size_t kn, vn;
        if (s_bytes(&r, false, &k, &kn) != 0) {
            snprintf(why, cap, "answer has a key that is not a str");
            return false;
        }
        if (s_is(k, kn, "hit") && r.off < r.len &&
            (r.p[r.off] == 0xc2 || r.p[r.off] == 0xc3)) {
            hit = r.p[r.off++] == 0xc3;
        } else if (s_is(k, kn, "value") && s_bytes(&r, true, &v, &vn) == 0) {
            have_value = true;
            value_ok = vn == g->value_len && memcmp(v, g->value, vn) == 0;
        } else if (s_is(k, kn, "tier") && s_bytes(&r, false, &v, &vn) == 0) {
            snprintf(tier, sizeof(tier), "%.*s", (int)(vn < 15 ? vn : 15),
                     (const char *)v);
            tier_ok = s_is(v, vn, g->tier);
        } else if (yard_msgpack_skip(r.p, r.len, &r.off) != 0) {
            snprintf(why, cap, "answer is malformed");
            return false;
        }
    }
    if (hit != 1 || !have_value || !value_ok || !tier_ok) {
        snprintf(why, cap,
                 "get %s answered hit %s, value %s, tier '%s' (expected a "
                 "hit with the value from %s)",
                 g->key,
                 hit < 0    ? "missing"
                 : hit == 1 ? "true"
                            : "false",
                 !have_value ? "missing"
                 : value_ok  ? "right"
                             : "WRONG",
                 tier, g->tier);
        return false;
    }
    return true;
}

/*  The answer of a set: {stored: true}. */
static bool s_stored(const uint8_t *p, size_t len)
{
    if (len == 0 || yard_msgpack_check(p, len) != 0)
        return false;
    s_rd_t r = {p, len, 0};
    int64_t n = s_map(&r);
    bool stored = false;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *k;
        size_t kn;
        if (s_bytes(&r, false, &k, &kn) != 0)
            return false;
        if (s_is(k, kn, "stored") && r.off < r.len && r.p[r.off] == 0xc3) {
            stored = true;
            r.off++;
        } else if (yard_msgpack_skip(r.p, r.len, &r.off) != 0) {
            return false;
        }
    }
    return stored;
}

/* ---- yard-cache stacks -------------------------------------------------- */

/*  How many workers the broker's stats list for yard.cache (the service
    name has a dot, so no dotted path). */
static int64_t s_cache_workers(const char *json)
{
    json_error_t err;
    json_t *root = json_loads(json, 0, &err);
    if (!root)
        return 0;
    json_t *svc =
        json_object_get(json_object_get(root, "services"), BENCH_CACHE_SERVICE);
    json_t *w = json_object_get(svc, "workers");
    int64_t n = json_is_integer(w) ? (int64_t)json_integer_value(w) : 0;
    json_decref(root);
    return n;
}

int bench_cache_start(bench_yard_t *y, const bench_redis_t *r,
                      const char *label, const char *const *flags, uint32_t n,
                      int ready_ms)
{
    char path[PATH_MAX];
    if (!bench_bin_path("yard-cache", path, sizeof(path))) {
        fprintf(stderr, "yard-bench: %s is missing or not executable\n", path);
        return -1;
    }
    if (n > BENCH_MAX_WORKERS)
        return -1;
    bench_broker_opts_t o = {0, -1, NULL, NULL, ready_ms, NULL};
    if (bench_yard_start_broker(y, &o) != 0)
        return -1;
    snprintf(y->service, sizeof(y->service), "%s", BENCH_CACHE_SERVICE);
    for (uint32_t i = 0; i < n; i++) {
        char name[48];
        snprintf(name, sizeof(name), "cache-%s-%u", label, i);
        char *argv[12 + S_MAX_CACHE_ARGS];
        int k = 0;
        argv[k++] = path;
        argv[k++] = "--broker";
        argv[k++] = y->endpoint;
        argv[k++] = "--events";
        argv[k++] = y->events;
        argv[k++] = "--redis";
        argv[k++] = (char *)r->url;
        argv[k++] = "--name";
        argv[k++] = name;
        for (int f = 0; flags && flags[f]; f++) {
            if (f == S_MAX_CACHE_ARGS)
                return -1;
            argv[k++] = (char *)flags[f];
        }
        argv[k] = NULL;
        if (bench_proc_spawn(name, argv, &y->workers[i]) != 0)
            return -1;
        y->nworkers = i + 1;
    }
    yard_client_t *c = yard_client_new(y->endpoint);
    if (!c)
        return -1;
    int64_t deadline = yard_clock_ms() + ready_ms;
    int64_t seen = 0;
    int rc = -1;
    while (!bench_stopping()) {
        for (uint32_t i = 0; i < n; i++) {
            if (!bench_proc_alive(y->workers[i])) {
                fprintf(stderr,
                        "yard-bench: yard-cache exited at start (log: %s)\n",
                        bench_proc_log(y->workers[i]));
                bench_proc_tail(y->workers[i], 8);
                goto done;
            }
        }
        char *json = NULL;
        if (yard_client_stats_json(c, 1000, &json) == 0) {
            seen = s_cache_workers(json);
            free(json);
            if (seen >= (int64_t)n) {
                rc = 0;
                break;
            }
        }
        if (yard_clock_ms() >= deadline) {
            fprintf(stderr,
                    "yard-bench: only %lld of %u yard-cache processes "
                    "registered in %d ms\n",
                    (long long)seen, n, ready_ms);
            break;
        }
        bench_pause_ms(S_POLL_MS);
    }
done:
    yard_client_destroy(&c);
    if (rc == 0)
        bench_note("%u yard-cache (%s) registered on %s", n, label,
                   y->endpoint);
    return rc;
}

/*  Sends one set; 0 when it came back ok {stored: true}. */
static int s_set(yard_client_t *c, const bench_cache_get_t *g, uint64_t ttl_ms)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    s_pack_str(&pk, "op");
    s_pack_str(&pk, "set");
    s_pack_str(&pk, "key");
    s_pack_str(&pk, g->key);
    s_pack_str(&pk, "value");
    msgpack_pack_bin(&pk, g->value_len);
    msgpack_pack_bin_body(&pk, g->value, g->value_len);
    s_pack_str(&pk, "ttl_ms");
    msgpack_pack_uint64(&pk, ttl_ms);
    yard_submit_opts_t opts = {.timeout_ms = S_CALL_MS};
    yard_reply_t *rep = NULL;
    int rc = yard_client_call(c, BENCH_CACHE_SERVICE, buf.data, buf.size, &opts,
                              &rep);
    msgpack_sbuffer_destroy(&buf);
    bool ok = rc == 0 && rep->status == YARD_OK &&
              s_stored(rep->payload, rep->payload_len);
    if (!ok)
        fprintf(stderr,
                "yard-bench: cache set %s came back %s%s%s (expected ok "
                "{stored: true})\n",
                g->key,
                rc != 0 ? yard_strerror(rc) : yard_status_name(rep->status),
                rc == 0 && rep->error ? ": " : "",
                rc == 0 && rep->error ? rep->error : "");
    yard_reply_destroy(&rep);
    return ok ? 0 : -1;
}

/*  One batch of gets; 1 when every answer passed the check, 0 when some
    did not (first reason in why), -1 when the batch itself failed. */
static int s_settle_batch(yard_client_t *c, const bench_cache_get_t *g,
                          char *why, size_t cap)
{
    yard_frame_t frames[S_SETTLE_BATCH];
    for (int i = 0; i < S_SETTLE_BATCH; i++) {
        frames[i].data = g->request;
        frames[i].len = g->request_len;
    }
    yard_submit_opts_t opts = {.timeout_ms = S_CALL_MS};
    int rc = yard_client_submit_batch(c, BENCH_CACHE_SERVICE, frames,
                                      S_SETTLE_BATCH, &opts, NULL);
    if (rc != 0) {
        snprintf(why, cap, "submit_batch: %s", yard_strerror(rc));
        return -1;
    }
    int all = 1;
    for (int i = 0; i < S_SETTLE_BATCH; i++) {
        yard_reply_t *rep = NULL;
        rc = yard_client_wait(c, S_CALL_MS + YARD_CLIENT_GIVEUP_MS, &rep);
        if (rc != 0) {
            snprintf(why, cap, "wait: %s", yard_strerror(rc));
            return -1;
        }
        char w[160];
        if (rep->status != YARD_OK) {
            snprintf(why, cap, "get came back %s",
                     yard_status_name(rep->status));
            all = 0;
        } else if (!bench_cache_check(rep->payload, rep->payload_len, g, w,
                                      sizeof(w))) {
            if (all)
                snprintf(why, cap, "%s", w);
            all = 0;
        }
        yard_reply_destroy(&rep);
    }
    return all;
}

int bench_cache_prepare(const bench_yard_t *y, const bench_cache_get_t *g,
                        uint64_t ttl_ms, int ready_ms)
{
    yard_client_t *c = yard_client_new(y->endpoint);
    if (!c)
        return -1;
    int rc = -1;
    if (s_set(c, g, ttl_ms) != 0)
        goto done;
    /*  The instance that took the set has the value in its L1; another
        one takes it from L2 at its first get (an answer from "l2") and
        keeps it in L1 from then on. Ready once three batches in a row
        (S_SETTLE_BATCH gets each) all came from the tier the load
        expects. */
    int64_t deadline = yard_clock_ms() + ready_ms;
    int good = 0, batches = 0;
    char why[256] = "";
    while (!bench_stopping() && good < 3) {
        int b = s_settle_batch(c, g, why, sizeof(why));
        if (b < 0)
            break;
        batches++;
        good = b ? good + 1 : 0;
        if (good < 3 && yard_clock_ms() >= deadline)
            break;
    }
    if (good == 3) {
        bench_note("cache %s: every get answered from %s after %d batches",
                   g->key, g->tier, batches);
        rc = 0;
    } else {
        fprintf(stderr,
                "yard-bench: the cache did not settle on %s hits for %s in "
                "%d ms: %s\n",
                g->tier, g->key, ready_ms, why);
    }
done:
    yard_client_destroy(&c);
    return rc;
}

/* ---- the plain Redis load ----------------------------------------------- */

typedef struct {
    const bench_load_t *load;
    const bench_cache_get_t *g;
    redisContext *c;
    bench_tally_t tally;
    uint64_t unanswered; /*  still in flight when the drain bound passed */
    char error[256];
} s_rthread_t;

/*  Records one reply sent at `sent`; false (with the reason kept) if it
    is not the value. */
static bool s_rtake(s_rthread_t *t, redisReply *rep, int64_t sent, int64_t now)
{
    bench_tally_t *tl = &t->tally;
    const bench_cache_get_t *g = t->g;
    bool good = rep->type == REDIS_REPLY_STRING &&
                (size_t)rep->len == g->value_len &&
                memcmp(rep->str, g->value, g->value_len) == 0;
    if (!good) {
        if (!t->error[0])
            snprintf(t->error, sizeof(t->error),
                     "GET %s: reply type %d, %zu bytes (expected the %zu-byte "
                     "value)%s%s",
                     g->key, rep->type, (size_t)rep->len, g->value_len,
                     rep->type == REDIS_REPLY_ERROR ? ": " : "",
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        tl->errors++;
        return false;
    }
    tl->total++;
    if (now >= tl->measure_from_us && now < tl->measure_to_us) {
        tl->completed++;
        yard_hist_record(&tl->hist, (uint64_t)(now - sent));
    }
    return true;
}

/*  A reply already parsed, or readable on the socket without waiting;
    REDIS_OK with *rep NULL when there is none. */
static int s_ready_reply(redisContext *c, redisReply **rep)
{
    void *r = NULL;
    if (redisGetReplyFromReader(c, &r) != REDIS_OK)
        return REDIS_ERR;
    if (!r) {
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
            if (redisBufferRead(c) != REDIS_OK ||
                redisGetReplyFromReader(c, &r) != REDIS_OK)
                return REDIS_ERR;
        }
    }
    *rep = r;
    return REDIS_OK;
}

static void *s_redis_thread(void *arg)
{
    s_rthread_t *t = arg;
    pthread_setname_np(pthread_self(), "redis-load"); /*  for perf and top */
    const bench_load_t *load = t->load;
    const bench_cache_get_t *g = t->g;
    uint32_t window = load->window;
    int64_t *sent = calloc(window, sizeof(*sent)); /*  ring, in send order */
    if (!sent) {
        snprintf(t->error, sizeof(t->error), "out of memory");
        return NULL;
    }
    bench_tally_t *tl = &t->tally;
    uint32_t head = 0, in_flight = 0, n = window;
    int64_t drain_until = 0;
    bool stopping = false;
    for (;;) {
        /*  Refill: what came back goes out again, in one write. */
        if (!stopping && n > 0) {
            int64_t now = yard_clock_us();
            for (uint32_t i = 0; i < n; i++) {
                if (redisAppendCommand(t->c, "GET %s", g->key) != REDIS_OK) {
                    snprintf(t->error, sizeof(t->error), "append: %s",
                             t->c->errstr);
                    goto out;
                }
                sent[(head + in_flight + i) % window] = now;
            }
            in_flight += n;
            int done = 0;
            do {
                if (redisBufferWrite(t->c, &done) != REDIS_OK) {
                    snprintf(t->error, sizeof(t->error), "write: %s",
                             t->c->errstr);
                    goto out;
                }
            } while (!done);
        }
        int64_t now = yard_clock_us();
        if (!stopping && (now >= tl->measure_to_us || bench_stopping())) {
            stopping = true;
            drain_until = now + (int64_t)BENCH_DRAIN_MS * 1000;
        }
        if (in_flight == 0)
            break;
        if (stopping && now >= drain_until) {
            t->unanswered = in_flight;
            break;
        }
        /*  Blocks (up to the connection's timeout) for one reply. */
        void *r = NULL;
        if (redisGetReply(t->c, &r) != REDIS_OK || !r) {
            snprintf(t->error, sizeof(t->error), "GET: %s",
                     t->c->err ? t->c->errstr : "no reply");
            break;
        }
        redisReply *rep = r;
        n = 0;
        do {
            bool ok = s_rtake(t, rep, sent[head], yard_clock_us());
            freeReplyObject(rep);
            head = (head + 1) % window;
            in_flight--;
            n++;
            if (!ok)
                goto out;
            rep = NULL;
            if (in_flight == 0 || s_ready_reply(t->c, &rep) != REDIS_OK)
                break;
        } while (rep);
    }
out:
    if (in_flight && !t->unanswered)
        t->unanswered = in_flight; /*  left behind by a failure */
    free(sent);
    return NULL;
}

int bench_redis_load(const bench_redis_t *r, const bench_load_t *load,
                     const bench_cache_get_t *g, bench_result_t *out)
{
    uint32_t nc = load->clients;
    s_rthread_t *ts = calloc(nc, sizeof(*ts));
    pthread_t *tids = calloc(nc, sizeof(*tids));
    yard_hist_t *hist = malloc(sizeof(*hist));
    int rc = -1;
    uint32_t started = 0;
    if (!ts || !tids || !hist || load->tasks)
        goto done;
    yard_hist_reset(hist);
    /*  Connected before the clock starts, as the Yard clients are; the
        command timeout bounds a read (the drain bound is checked between
        replies). */
    for (uint32_t i = 0; i < nc; i++) {
        ts[i].load = load;
        ts[i].g = g;
        ts[i].c = s_redis_connect(r->port, BENCH_DRAIN_MS);
        if (!ts[i].c) {
            fprintf(stderr, "yard-bench: cannot connect to redis on port %d\n",
                    r->port);
            goto done;
        }
    }
    bench_cpu_t cpu0, cpu1;
    bench_cpu_sample(&cpu0, r->pid, NULL, 0);
    int64_t start = yard_clock_us();
    for (uint32_t i = 0; i < nc; i++) {
        bench_tally_t *tl = &ts[i].tally;
        yard_hist_reset(&tl->hist);
        tl->measure_from_us = start + load->warmup_us;
        tl->measure_to_us = tl->measure_from_us + load->duration_us;
    }
    for (; started < nc; started++) {
        if (pthread_create(&tids[started], NULL, s_redis_thread,
                           &ts[started]) != 0) {
            fprintf(stderr, "yard-bench: pthread_create failed\n");
            break;
        }
    }
    for (uint32_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    bench_cpu_sample(&cpu1, r->pid, NULL, 0);
    if (started < nc)
        goto done;
    uint64_t completed = 0, errors = 0, unanswered = 0, all = 0;
    for (uint32_t i = 0; i < nc; i++) {
        completed += ts[i].tally.completed;
        errors += ts[i].tally.errors;
        unanswered += ts[i].unanswered;
        all += ts[i].tally.total;
        yard_hist_merge(hist, &ts[i].tally.hist);
        if (ts[i].error[0]) {
            fprintf(stderr, "yard-bench: redis client %u: %s\n", i,
                    ts[i].error);
            errors += ts[i].tally.errors ? 0 : 1;
        }
    }
    bench_result_add_cpu(out, &cpu0, &cpu1, all);
    bench_result_add(out, hist, completed, errors,
                     (double)load->duration_us / 1e6);
    if (errors || unanswered) {
        fprintf(stderr,
                "yard-bench: redis load failed: %llu bad replies, %llu GETs "
                "unanswered\n",
                (unsigned long long)errors, (unsigned long long)unanswered);
        goto done;
    }
    rc = 0;
done:
    for (uint32_t i = 0; ts && i < nc; i++)
        if (ts[i].c)
            redisFree(ts[i].c);
    free(ts);
    free(tids);
    free(hist);
    return rc;
}
