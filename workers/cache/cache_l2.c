/*  cache_l2.c — the Redis tier of yard-cache (see cache_l2.h): the URL,
    the connection pool, health (degraded / recovered) and the monitor
    thread, the journal of mutations made while down, and the public
    calls. The Redis commands are in cache_l2_cmd.c, the entry encoding
    (header byte, tags, zlib) in cache_l2_codec.c. */
#include "cache_l2_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "yard_backoff.h"
#include "yard_clock.h"
#include "yard_log.h"
#include "yard_rand.h"

/* ---- URL ---------------------------------------------------------------- */

static char *s_strndup(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = 0;
    }
    return out;
}

static int s_parse_uint(const char *s, size_t n, unsigned max, unsigned *out)
{
    if (n == 0 || n > 9)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/*  redis://[[user]:pass@]host[:port][/db] | unix:///path[?db=N] |
    host[:port]. Hosts may be [v6]. */
static int s_parse_url(yard_l2_t *self, const char *url, char *err,
                       size_t errlen)
{
    self->port = 6379;
    const char *p = url;
    if (strncmp(p, "unix://", 7) == 0) {
        p += 7;
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || p[0] != '/') {
            snprintf(err, errlen, "unix socket path must be absolute");
            return -1;
        }
        self->unix_path = s_strndup(p, n);
        if (q && (strncmp(q, "?db=", 4) != 0 ||
                  s_parse_uint(q + 4, strlen(q + 4), 1000000, &self->db))) {
            snprintf(err, errlen, "expected ?db=N after the socket path");
            return -1;
        }
        return self->unix_path ? 0 : -1;
    }
    bool scheme = strncmp(p, "redis://", 8) == 0;
    if (scheme)
        p += 8;
    else if (strstr(p, "://")) {
        snprintf(err, errlen, "scheme must be redis:// or unix://");
        return -1;
    }
    const char *at = strrchr(p, '@');
    if (at) {
        if (!scheme) {
            snprintf(err, errlen, "credentials need a redis:// URL");
            return -1;
        }
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                self->user = s_strndup(p, (size_t)(colon - p));
            self->password = s_strndup(colon + 1, (size_t)(at - colon - 1));
        } else {
            self->password = s_strndup(p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
    if (slash && slash[1] &&
        s_parse_uint(slash + 1, strlen(slash + 1), 1000000, &self->db)) {
        snprintf(err, errlen, "bad database number '%s'", slash + 1);
        return -1;
    }
    const char *host = p, *port = NULL;
    size_t hlen = hostport;
    if (hostport > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', hostport);
        if (!close) {
            snprintf(err, errlen, "unclosed '[' in the host");
            return -1;
        }
        host = p + 1;
        hlen = (size_t)(close - p - 1);
        if (close + 1 < p + hostport) {
            if (close[1] != ':') {
                snprintf(err, errlen, "expected ':' after ']'");
                return -1;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', hostport);
        if (colon) {
            hlen = (size_t)(colon - p);
            port = colon + 1;
        }
    }
    if (hlen == 0) {
        snprintf(err, errlen, "no host");
        return -1;
    }
    if (port) {
        unsigned v;
        if (s_parse_uint(port, (size_t)(p + hostport - port), 65535, &v) ||
            v == 0) {
            snprintf(err, errlen, "bad port");
            return -1;
        }
        self->port = (int)v;
    }
    self->host = s_strndup(host, hlen);
    return self->host ? 0 : -1;
}

static void s_make_shown_url(yard_l2_t *self)
{
    char buf[512];
    if (self->unix_path)
        snprintf(buf, sizeof buf, "unix://%s?db=%u", self->unix_path, self->db);
    else
        snprintf(buf, sizeof buf, "redis://%s%s%s%s:%d/%u",
                 self->user ? self->user : "", self->password ? ":***" : "",
                 self->user || self->password ? "@" : "", self->host,
                 self->port, self->db);
    self->url_shown = strdup(buf);
}

/* ---- Connections and health --------------------------------------------- */

/*  One command, its reply checked for an I/O error. NULL with why set. */
static redisReply *s_command(redisContext *c, char *why, size_t whylen,
                             int argc, const char **argv, const size_t *lens)
{
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (!r)
        snprintf(why, whylen, "%s: %s", argv[0],
                 c->errstr[0] ? c->errstr : "no reply");
    return r;
}

/*  Connects, sets timeouts, authenticates, selects the db. With ping,
    also checks that Redis answers. NULL with why set. */
static redisContext *s_connect(yard_l2_t *self, bool ping, char *why,
                               size_t whylen)
{
    redisContext *c =
        self->unix_path
            ? redisConnectUnixWithTimeout(self->unix_path, self->tv)
            : redisConnectWithTimeout(self->host, self->port, self->tv);
    if (!c) {
        snprintf(why, whylen, "connect: out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(why, whylen, "connect: %s", c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, self->tv) != REDIS_OK) {
        snprintf(why, whylen, "set timeout: %s", c->errstr);
        goto fail;
    }
    if (!self->unix_path)
        redisEnableKeepAlive(c);
    char dbtext[16];
    snprintf(dbtext, sizeof dbtext, "%u", self->db);
    const char *argv[3];
    size_t lens[3];
    int n = 0;
    if (self->password) {
        argv[n++] = "AUTH";
        if (self->user)
            argv[n++] = self->user;
        argv[n++] = self->password;
    }
    for (int step = 0; step < 3; step++) {
        if (step == 0 && n == 0)
            continue;
        if (step == 1 && self->db == 0)
            continue;
        if (step == 2 && !ping)
            continue;
        if (step == 1) {
            argv[0] = "SELECT";
            argv[1] = dbtext;
            n = 2;
        } else if (step == 2) {
            argv[0] = "PING";
            n = 1;
        }
        for (int i = 0; i < n; i++)
            lens[i] = strlen(argv[i]);
        redisReply *r = s_command(c, why, whylen, n, argv, lens);
        if (!r)
            goto fail;
        bool bad = r->type == REDIS_REPLY_ERROR;
        if (bad)
            snprintf(why, whylen, "%s: %.*s", argv[0], (int)r->len, r->str);
        freeReplyObject(r);
        if (bad)
            goto fail;
    }
    return c;
fail:
    redisFree(c);
    return NULL;
}

/*  Marks the tier down (once per outage) and wakes the monitor. Returns
    true if this call made the transition (the caller notifies). */
static bool s_fail_locked(yard_l2_t *self, const char *why)
{
    atomic_fetch_add(&self->errors, 1);
    if (self->degraded)
        return false;
    self->degraded = true;
    self->gen++;
    self->down_since_ms = yard_clock_ms();
    /*  Truncated on purpose (snprintf would warn under -O3 builds). */
    size_t n = strnlen(why, sizeof self->reason - 1);
    memcpy(self->reason, why, n);
    self->reason[n] = '\0';
    while (self->nidle > 0)
        redisFree(self->idle[--self->nidle]);
    atomic_fetch_add(&self->degradations, 1);
    pthread_cond_signal(&self->wake);
    return true;
}

static void s_fail(yard_l2_t *self, const char *why)
{
    pthread_mutex_lock(&self->lock);
    bool changed = s_fail_locked(self, why);
    pthread_mutex_unlock(&self->lock);
    if (changed) {
        yard_warn("cache: Redis %s unusable (%s): degraded to L1 only",
                  self->url_shown, why);
        if (self->on_state)
            self->on_state(self, true, why, 0, self->arg);
    }
}

/*  A connection lent to one call. */
typedef struct {
    redisContext *c;
    uint64_t gen;
} s_conn_t;

/*  Lends a connection (pooled or new). False while degraded or when the
    connect fails (which degrades). */
static bool s_acquire(yard_l2_t *self, s_conn_t *conn)
{
    pthread_mutex_lock(&self->lock);
    if (self->degraded) {
        pthread_mutex_unlock(&self->lock);
        return false;
    }
    conn->gen = self->gen;
    conn->c = self->nidle > 0 ? self->idle[--self->nidle] : NULL;
    pthread_mutex_unlock(&self->lock);
    if (conn->c)
        return true;
    char why[300];
    conn->c = s_connect(self, false, why, sizeof why);
    if (!conn->c) {
        s_fail(self, why);
        return false;
    }
    return true;
}

/*  Gives the connection back; a broken one (ok false, or hiredis saw an
    error) is closed and the tier degraded with why. */
static void s_release(yard_l2_t *self, s_conn_t *conn, bool ok, const char *why)
{
    if (!conn->c)
        return;
    if (!ok || conn->c->err) {
        char text[300];
        snprintf(text, sizeof text, "%s", why && *why ? why : conn->c->errstr);
        redisFree(conn->c);
        conn->c = NULL;
        s_fail(self, text);
        return;
    }
    pthread_mutex_lock(&self->lock);
    if (!self->degraded && conn->gen == self->gen &&
        self->nidle < YARD_L2_POOL_MAX) {
        self->idle[self->nidle++] = conn->c;
        conn->c = NULL;
    }
    pthread_mutex_unlock(&self->lock);
    if (conn->c)
        redisFree(conn->c);
    conn->c = NULL;
}

/* ---- Journal ------------------------------------------------------------ */

/*  Remembers a mutation Redis missed, for the replay. Without force,
    only while degraded: returns false (nothing kept) when the tier has
    recovered meanwhile, so the caller tries the mutation again. */
static bool s_journal(yard_l2_t *self, yard_l2_jkind_t kind, const void *data,
                      size_t len, bool force)
{
    yard_l2_jentry_t *e = malloc(sizeof *e + len + 1);
    pthread_mutex_lock(&self->lock);
    if (!force && !self->degraded) {
        pthread_mutex_unlock(&self->lock);
        free(e);
        return false;
    }
    if (kind == J_CLEAR || self->jclear || !e ||
        self->jcount >= YARD_L2_JOURNAL_MAX) {
        /*  A clear, or too much to remember: forget the details, clear
            everything on replay. */
        while (self->jhead) {
            yard_l2_jentry_t *next = self->jhead->next;
            free(self->jhead);
            self->jhead = next;
        }
        self->jtail = NULL;
        self->jcount = 0;
        self->jclear = true;
        pthread_mutex_unlock(&self->lock);
        free(e);
        return true;
    }
    e->next = NULL;
    e->kind = kind;
    e->len = len;
    if (len)
        memcpy(e->data, data, len);
    e->data[len] = 0;
    if (self->jtail)
        self->jtail->next = e;
    else
        self->jhead = e;
    self->jtail = e;
    self->jcount++;
    pthread_mutex_unlock(&self->lock);
    return true;
}

/*  Replays one journal entry on c. */
static int s_replay_one(yard_l2_t *self, redisContext *c,
                        const yard_l2_jentry_t *e)
{
    uint64_t ignored = 0;
    switch (e->kind) {
    case J_KEY:
        return yard_l2_cmd_del(self, c, e->data, e->len, &ignored);
    case J_TAG:
        return yard_l2_cmd_tag(self, c, e->data, e->len, &ignored);
    case J_PREFIX:
        return yard_l2_cmd_pattern(self, c, 'p', e->data, e->len, &ignored);
    case J_GLOB:
        return yard_l2_cmd_pattern(self, c, 'g', e->data, e->len, &ignored);
    case J_CLEAR:
        return yard_l2_cmd_pattern(self, c, 'c', NULL, 0, &ignored);
    }
    return 0;
}

/*  Replays the journal on c until it is empty. Returns 0 when Redis has
    it all, -1 on an I/O error (what was not replayed is put back in
    front of what came meanwhile). */
static int s_replay(yard_l2_t *self, redisContext *c)
{
    for (;;) {
        pthread_mutex_lock(&self->lock);
        yard_l2_jentry_t *list = self->jhead;
        bool clear = self->jclear;
        self->jhead = self->jtail = NULL;
        self->jcount = 0;
        self->jclear = false;
        pthread_mutex_unlock(&self->lock);
        if (!list && !clear)
            return 0;
        uint64_t ignored = 0;
        int rc = 0;
        if (clear) {
            /*  Everything goes: the entries are subsumed. */
            rc = yard_l2_cmd_pattern(self, c, 'c', NULL, 0, &ignored);
            if (rc == 0) {
                atomic_fetch_add(&self->replayed, 1);
                clear = false;
            }
        }
        while (rc == 0 && list) {
            yard_l2_jentry_t *e = list;
            rc = s_replay_one(self, c, e);
            if (rc != 0)
                break;
            list = e->next;
            free(e);
            atomic_fetch_add(&self->replayed, 1);
        }
        if (rc == 0)
            continue;
        pthread_mutex_lock(&self->lock);
        size_t n = 0;
        yard_l2_jentry_t *tail = NULL;
        for (yard_l2_jentry_t *e = list; e; e = e->next) {
            tail = e;
            n++;
        }
        if (tail) {
            tail->next = self->jhead;
            if (!self->jhead)
                self->jtail = tail;
            self->jhead = list;
            self->jcount += n;
        }
        self->jclear = self->jclear || clear;
        pthread_mutex_unlock(&self->lock);
        return -1;
    }
}

/* ---- Monitor thread ----------------------------------------------------- */

/*  Waits on the condition for up to ms (lock held). */
static void s_wait(yard_l2_t *self, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&self->wake, &self->lock, &ts);
}

static bool s_ping(redisContext *c, char *why, size_t whylen)
{
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    redisReply *r = s_command(c, why, whylen, 1, argv, lens);
    if (!r)
        return false;
    bool ok = r->type == REDIS_REPLY_STATUS;
    if (!ok)
        snprintf(why, whylen, "PING: %.*s", (int)r->len, r->str ? r->str : "");
    freeReplyObject(r);
    return ok;
}

static void *s_monitor(void *arg)
{
    yard_l2_t *self = arg;
    yard_rand_t rng;
    yard_rand_seed_os(&rng);
    redisContext *c = NULL; /*  the monitor's own connection */
    uint32_t step = 0;
    char why[300];
    pthread_mutex_lock(&self->lock);
    while (!self->stop) {
        if (!self->degraded) {
            step = 0;
            s_wait(self, YARD_L2_CHECK_MS);
            if (self->stop || self->degraded)
                continue;
            pthread_mutex_unlock(&self->lock);
            bool ok = true;
            if (!c)
                c = s_connect(self, false, why, sizeof why);
            ok = c && s_ping(c, why, sizeof why);
            if (!ok && c) {
                redisFree(c);
                c = NULL;
            }
            pthread_mutex_lock(&self->lock);
            if (!ok && s_fail_locked(self, why)) {
                pthread_mutex_unlock(&self->lock);
                yard_warn("cache: Redis %s unusable (%s): degraded to L1 "
                          "only",
                          self->url_shown, why);
                if (self->on_state)
                    self->on_state(self, true, why, 0, self->arg);
                pthread_mutex_lock(&self->lock);
            }
            continue;
        }
        /*  Degraded: reconnect with backoff, replay, recover. */
        if (step > 0)
            s_wait(self, yard_backoff_ms(YARD_L2_BACKOFF_BASE_MS, step,
                                         YARD_L2_BACKOFF_MAX_MS, 0.2, &rng));
        if (self->stop)
            break;
        step++;
        pthread_mutex_unlock(&self->lock);
        if (c)
            redisFree(c);
        c = s_connect(self, true, why, sizeof why);
        bool ok = c && s_replay(self, c) == 0;
        if (!ok && c) {
            redisFree(c);
            c = NULL;
        }
        if (!ok)
            yard_debug("cache: Redis %s still down: %s", self->url_shown,
                       c ? "replay failed" : why);
        pthread_mutex_lock(&self->lock);
        if (ok && !self->jhead && !self->jclear) {
            int64_t down = yard_clock_ms() - self->down_since_ms;
            self->degraded = false;
            self->down_since_ms = 0;
            atomic_fetch_add(&self->reconnects, 1);
            pthread_mutex_unlock(&self->lock);
            yard_info("cache: Redis %s back after %lld ms", self->url_shown,
                      (long long)down);
            if (self->on_state)
                self->on_state(self, false, "reconnected", down, self->arg);
            pthread_mutex_lock(&self->lock);
        }
    }
    pthread_mutex_unlock(&self->lock);
    if (c)
        redisFree(c);
    return NULL;
}

/* ---- Public ------------------------------------------------------------- */

yard_l2_t *yard_l2_new(const yard_l2_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg || !cfg->url || !cfg->prefix || !*cfg->prefix) {
        snprintf(err, errlen, "Redis URL and prefix are required");
        return NULL;
    }
    yard_l2_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init(&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (s_parse_url(self, cfg->url, err, errlen) != 0) {
        yard_l2_destroy(&self);
        return NULL;
    }
    s_make_shown_url(self);
    self->prefix = strdup(cfg->prefix);
    size_t plen = strlen(cfg->prefix);
    self->prefix_esc = malloc(2 * plen + 1);
    if (!self->url_shown || !self->prefix || !self->prefix_esc) {
        snprintf(err, errlen, "out of memory");
        yard_l2_destroy(&self);
        return NULL;
    }
    self->prefix_esc[yard_l2_escape(self->prefix_esc, cfg->prefix, plen)] = 0;
    self->tv.tv_sec = cfg->timeout_ms / 1000;
    self->tv.tv_usec = (suseconds_t)(cfg->timeout_ms % 1000) * 1000;
    self->compress_min = cfg->compress_min;
    self->max_value = cfg->max_value;
    self->on_state = cfg->on_state;
    self->arg = cfg->arg;

    /*  One attempt now, so a healthy Redis is in use from the first
        request; a failure starts degraded (the monitor keeps trying). */
    char why[300];
    redisContext *c = s_connect(self, true, why, sizeof why);
    if (c) {
        self->idle[self->nidle++] = c;
        yard_info("cache: L2 Redis %s, prefix %s", self->url_shown,
                  self->prefix);
    } else {
        s_fail(self, why);
    }
    if (pthread_create(&self->monitor, NULL, s_monitor, self) != 0) {
        snprintf(err, errlen, "cannot start the Redis monitor thread");
        yard_l2_destroy(&self);
        return NULL;
    }
    self->monitor_running = true;
    return self;
}

void yard_l2_destroy(yard_l2_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    yard_l2_t *self = *self_p;
    if (self->monitor_running) {
        pthread_mutex_lock(&self->lock);
        self->stop = true;
        pthread_cond_signal(&self->wake);
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->monitor, NULL);
    }
    while (self->nidle > 0)
        redisFree(self->idle[--self->nidle]);
    while (self->jhead) {
        yard_l2_jentry_t *next = self->jhead->next;
        free(self->jhead);
        self->jhead = next;
    }
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self->host);
    free(self->unix_path);
    free(self->user);
    free(self->password);
    free(self->url_shown);
    free(self->prefix);
    free(self->prefix_esc);
    free(self);
    *self_p = NULL;
}

const char *yard_l2_url(const yard_l2_t *self)
{
    return self->url_shown;
}

bool yard_l2_healthy(yard_l2_t *self)
{
    pthread_mutex_lock(&self->lock);
    bool ok = !self->degraded;
    pthread_mutex_unlock(&self->lock);
    return ok;
}

int yard_l2_get(yard_l2_t *self, const void *key, size_t klen,
                yard_l2_got_t *out)
{
    out->hit = out->negative = false;
    out->value = NULL;
    out->len = 0;
    out->ttl_ms = 0;
    out->ntags = 0;
    s_conn_t conn;
    if (!s_acquire(self, &conn))
        return YARD_L2_DOWN; /*  not asked: not counted */
    int rc = yard_l2_cmd_get(self, conn.c, key, klen, out);
    s_release(self, &conn, rc == 0, NULL);
    if (out->hit)
        atomic_fetch_add(&self->hits, 1);
    else if (out->negative)
        atomic_fetch_add(&self->negative_hits, 1);
    else
        atomic_fetch_add(&self->misses, 1);
    return rc == 0 ? YARD_L2_OK : YARD_L2_FAILED;
}

void yard_l2_got_free(yard_l2_got_t *out)
{
    free(out->value);
    out->value = NULL;
    out->len = 0;
}

/*  Runs one mutation: on a healthy tier through a pooled connection;
    when down or failing, journals it (jkind/jdata) for the replay. */
typedef int(s_mutation_fn)(yard_l2_t *self, redisContext *c, void *arg);

static int s_mutate(yard_l2_t *self, s_mutation_fn *fn, void *arg,
                    yard_l2_jkind_t jkind, const void *jdata, size_t jlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        s_conn_t conn;
        if (s_acquire(self, &conn)) {
            int r = fn(self, conn.c, arg);
            if (r == 0) {
                s_release(self, &conn, true, NULL);
                return YARD_L2_OK;
            }
            /*  Journal before the tier is marked down, so a recovery
                cannot slip between the two and miss this entry. */
            s_journal(self, jkind, jdata, jlen, true);
            s_release(self, &conn, false, NULL);
            return YARD_L2_FAILED;
        }
        if (s_journal(self, jkind, jdata, jlen, attempt == 1))
            return YARD_L2_DOWN;
        /*  Recovered between the check and the journal: try again. */
    }
    return YARD_L2_DOWN;
}

typedef struct {
    const void *key, *value, *arg;
    size_t klen, vlen, len;
    bool negative;
    const yard_lru_bytes_t *tags;
    size_t ntags;
    uint64_t ttl_ms;
    uint64_t *deleted;
} s_args_t;

static int s_m_set(yard_l2_t *self, redisContext *c, void *arg)
{
    s_args_t *a = arg;
    return yard_l2_cmd_set(self, c, a->key, a->klen, a->value, a->vlen,
                           a->negative, a->tags, a->ntags, a->ttl_ms);
}

static int s_m_del(yard_l2_t *self, redisContext *c, void *arg)
{
    s_args_t *a = arg;
    return yard_l2_cmd_del(self, c, a->key, a->klen, a->deleted);
}

static int s_m_tag(yard_l2_t *self, redisContext *c, void *arg)
{
    s_args_t *a = arg;
    return yard_l2_cmd_tag(self, c, a->arg, a->len, a->deleted);
}

static int s_m_prefix(yard_l2_t *self, redisContext *c, void *arg)
{
    s_args_t *a = arg;
    return yard_l2_cmd_pattern(self, c, 'p', a->arg, a->len, a->deleted);
}

static int s_m_glob(yard_l2_t *self, redisContext *c, void *arg)
{
    s_args_t *a = arg;
    return yard_l2_cmd_pattern(self, c, 'g', a->arg, a->len, a->deleted);
}

static int s_m_clear(yard_l2_t *self, redisContext *c, void *arg)
{
    s_args_t *a = arg;
    return yard_l2_cmd_pattern(self, c, 'c', NULL, 0, a->deleted);
}

int yard_l2_set(yard_l2_t *self, const void *key, size_t klen,
                const void *value, size_t vlen, bool negative,
                const yard_lru_bytes_t *tags, size_t ntags, uint64_t ttl_ms)
{
    s_args_t a = {.key = key,
                  .klen = klen,
                  .value = value,
                  .vlen = vlen,
                  .negative = negative,
                  .tags = tags,
                  .ntags = ntags,
                  .ttl_ms = ttl_ms ? ttl_ms : 1};
    /*  A set Redis missed leaves its old value there: delete it later. */
    return s_mutate(self, s_m_set, &a, J_KEY, key, klen);
}

int yard_l2_del(yard_l2_t *self, const void *key, size_t klen,
                uint64_t *deleted)
{
    uint64_t n = 0;
    s_args_t a = {.key = key, .klen = klen, .deleted = &n};
    int rc = s_mutate(self, s_m_del, &a, J_KEY, key, klen);
    atomic_fetch_add(&self->deletes, n);
    *deleted = n;
    return rc;
}

int yard_l2_invalidate_tags(yard_l2_t *self, const yard_lru_bytes_t *tags,
                            size_t ntags, uint64_t *deleted)
{
    uint64_t n = 0;
    int rc = YARD_L2_OK;
    for (size_t i = 0; i < ntags; i++) {
        s_args_t a = {.arg = tags[i].ptr, .len = tags[i].len, .deleted = &n};
        int r = s_mutate(self, s_m_tag, &a, J_TAG, tags[i].ptr, tags[i].len);
        if (r != YARD_L2_OK)
            rc = r;
    }
    atomic_fetch_add(&self->deletes, n);
    *deleted = n;
    return rc;
}

int yard_l2_invalidate_prefix(yard_l2_t *self, const void *prefix, size_t len,
                              uint64_t *deleted)
{
    uint64_t n = 0;
    s_args_t a = {.arg = prefix, .len = len, .deleted = &n};
    int rc = s_mutate(self, s_m_prefix, &a, J_PREFIX, prefix, len);
    atomic_fetch_add(&self->deletes, n);
    *deleted = n;
    return rc;
}

int yard_l2_invalidate_glob(yard_l2_t *self, const char *pattern,
                            uint64_t *deleted)
{
    uint64_t n = 0;
    size_t len = strlen(pattern);
    s_args_t a = {.arg = pattern, .len = len, .deleted = &n};
    int rc = s_mutate(self, s_m_glob, &a, J_GLOB, pattern, len);
    atomic_fetch_add(&self->deletes, n);
    *deleted = n;
    return rc;
}

int yard_l2_clear(yard_l2_t *self, uint64_t *deleted)
{
    uint64_t n = 0;
    s_args_t a = {.deleted = &n};
    int rc = s_mutate(self, s_m_clear, &a, J_CLEAR, NULL, 0);
    atomic_fetch_add(&self->deletes, n);
    *deleted = n;
    return rc;
}

/*  The number after "\r\nfield" (or at the start) in an INFO text. */
static int64_t s_info_field(const char *text, size_t len, const char *field)
{
    size_t flen = strlen(field);
    for (size_t i = 0; i + flen < len; i++) {
        if ((i == 0 || text[i - 1] == '\n') &&
            memcmp(text + i, field, flen) == 0) {
            int64_t v = 0;
            size_t j = i + flen;
            if (j >= len || text[j] < '0' || text[j] > '9')
                return -1;
            while (j < len && text[j] >= '0' && text[j] <= '9')
                v = v * 10 + (text[j++] - '0');
            return v;
        }
    }
    return -1;
}

void yard_l2_stats(yard_l2_t *self, bool server, yard_l2_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->db_keys = out->used_memory = out->evicted_keys = out->expired_keys =
        -1;
    pthread_mutex_lock(&self->lock);
    out->degraded = self->degraded;
    out->journal = self->jcount + (self->jclear ? 1 : 0);
    out->down_ms = self->degraded ? yard_clock_ms() - self->down_since_ms : 0;
    pthread_mutex_unlock(&self->lock);
    out->hits = atomic_load(&self->hits);
    out->misses = atomic_load(&self->misses);
    out->negative_hits = atomic_load(&self->negative_hits);
    out->sets = atomic_load(&self->sets);
    out->deletes = atomic_load(&self->deletes);
    out->errors = atomic_load(&self->errors);
    out->reconnects = atomic_load(&self->reconnects);
    out->degradations = atomic_load(&self->degradations);
    out->compressed = atomic_load(&self->compressed);
    out->bytes_saved = atomic_load(&self->bytes_saved);
    out->corrupt = atomic_load(&self->corrupt);
    out->replayed = atomic_load(&self->replayed);
    s_conn_t conn;
    if (!server || !s_acquire(self, &conn))
        return;
    const char *argv[1] = {"INFO"};
    size_t lens[1] = {4};
    redisReply *r = redisCommandArgv(conn.c, 1, argv, lens);
    if (r && r->type == REDIS_REPLY_STRING) {
        out->used_memory = s_info_field(r->str, r->len, "used_memory:");
        out->evicted_keys = s_info_field(r->str, r->len, "evicted_keys:");
        out->expired_keys = s_info_field(r->str, r->len, "expired_keys:");
        char dbfield[32];
        snprintf(dbfield, sizeof dbfield, "db%u:keys=", self->db);
        out->db_keys = s_info_field(r->str, r->len, dbfield);
        if (out->db_keys < 0)
            out->db_keys = 0; /*  an empty db is not listed */
    }
    if (r)
        freeReplyObject(r);
    s_release(self, &conn, r != NULL, NULL);
}
