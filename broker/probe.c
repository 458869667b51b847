/*  probe.c — worker health reports and the admin "ping".

    A worker's HEARTBEAT may carry its health report (PROTOCOL.md 5.7,
    8.8): loop timing, memory, what it holds. The broker keeps the last
    one per worker and shows it in stats.

    "ping" asks every worker at once: the broker sends each a HEARTBEAT
    with a probe number, a worker answers with a report carrying it, and
    the request is answered when every worker probed has answered (or
    gone), or when its timeout passes. One probe is in progress at a time;
    a ping that arrives during one waits for the same answers. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "broker.h"
#include "yard_log.h"

struct broker_ping {
    broker_ping_t *next;
    uint8_t identity[255]; /*  the asking client's routing id */
    size_t identity_len;
    char id[YARD_MAX_ID]; /*  its task id */
    size_t id_len;
    uint64_t probe;      /*  the probe it waits for */
    int64_t started_us;  /*  when it asked */
    int64_t deadline_us; /*  when it is answered anyway */
};

/* ---- Reports ------------------------------------------------------------ */

typedef struct {
    broker_report_t *rep;
} s_objects_t;

static int s_copy_object(const char *name, size_t len, uint64_t value,
                         void *arg)
{
    broker_report_t *rep = ((s_objects_t *)arg)->rep;
    if (rep->nobjects == YARD_MAX_OBJECTS)
        return 1;
    memcpy(rep->objects[rep->nobjects].name, name, len);
    rep->objects[rep->nobjects].name[len] = '\0';
    rep->objects[rep->nobjects].value = value;
    rep->nobjects++;
    return 0;
}

static void s_answer_waiters(broker_t *self, int64_t now);

void probe_on_report(broker_t *self, broker_worker_t *w, yard_wire_msg_t *msg,
                     int64_t now)
{
    yard_report_t r;
    zmq_msg_t *body = &msg->bodies[0];
    int rc = yard_decode_report(self->decoder, zmq_msg_data(body),
                                zmq_msg_size(body), &r);
    if (rc != 0) {
        //  Informational: a bad report costs the worker its report, not
        //  its registration, and draws no ERROR (a busy worker would get
        //  one per heartbeat).
        if (self->bad_reports++ == 0)
            yard_warn("worker %s sent a bad report: %s (counted in "
                      "broker.bad_reports; logged once)",
                      w->name, yard_strerror(rc));
        return;
    }
    if (!w->report && !(w->report = calloc(1, sizeof(*w->report))))
        return;
    broker_report_t *rep = w->report;
    rep->r = r;
    memset(&rep->r.version, 0, sizeof(rep->r.version));
    memset(&rep->r.objects, 0, sizeof(rep->r.objects));
    memcpy(rep->version, r.version.ptr, r.version.len);
    rep->version[r.version.len] = '\0';
    rep->nobjects = 0;
    s_objects_t o = {rep};
    yard_objects_each(&r.objects, s_copy_object, &o);
    rep->at_us = now;
    self->reports++;
    if (r.probe && r.probe == w->probe_sent && w->probe_answered != r.probe) {
        w->probe_answered = r.probe;
        w->ping_rtt_us = (uint64_t)(now - w->probe_sent_us);
        w->pong_at_us = now;
        if (r.probe == self->probe && self->probe_outstanding > 0 &&
            --self->probe_outstanding == 0)
            s_answer_waiters(self, now);
    }
}

void probe_worker_gone(broker_t *self, broker_worker_t *w)
{
    if (self->probe && w->probe_sent == self->probe &&
        w->probe_answered != self->probe && self->probe_outstanding > 0)
        self->probe_outstanding--;
    //  The answer goes out on the next tick (not from inside worker_lost).
}

/* ---- Ping --------------------------------------------------------------- */

typedef struct {
    broker_t *self;
    int64_t now;
    uint64_t probe;
    msgpack_sbuffer *buf;
    size_t sent;
} s_probe_walk_t;

static void s_probe_one(void *value, void *arg)
{
    broker_worker_t *w = value;
    s_probe_walk_t *walk = arg;
    yard_frame_t frame = {walk->buf->data, walk->buf->size};
    yard_wire_send(walk->self->router, w->identity, w->identity_len,
                   YARD_ROLE_BROKER, YARD_CMD_HEARTBEAT, &frame, 1, 0);
    w->last_sent_us = walk->now;
    w->probe_sent = walk->probe;
    w->probe_sent_us = walk->now;
    walk->sent++;
}

//  Sends a new probe to every worker. Returns how many were probed.
static size_t s_probe_all(broker_t *self, int64_t now)
{
    uint64_t probe = self->probe + 1;
    if (probe == 0)
        probe = 1;
    yard_probe_t body = {.probe = probe};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    s_probe_walk_t walk = {self, now, probe, &buf, 0};
    if (yard_encode_probe(&buf, &body) == 0)
        yard_map_each(self->workers, s_probe_one, &walk);
    msgpack_sbuffer_destroy(&buf);
    self->probe = probe;
    self->probe_started_us = now;
    self->probe_outstanding = walk.sent;
    return walk.sent;
}

typedef struct {
    json_t *list;
    uint64_t probe;
    size_t answered;
} s_answer_walk_t;

static void s_worker_answer(void *value, void *arg)
{
    broker_worker_t *w = value;
    s_answer_walk_t *walk = arg;
    if (w->probe_sent != walk->probe)
        return; //  joined after the probe went out
    char hex[2 * sizeof(w->identity) + 1];
    sodium_bin2hex(hex, sizeof(hex), w->identity, w->identity_len);
    bool answered = w->probe_answered == walk->probe;
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:b}", "id", hex, "service",
                          w->service->name, "name", w->name, "pid",
                          (json_int_t)w->pid, "answered", answered);
    if (!o)
        return;
    json_object_set_new(o, "rtt_us",
                        answered ? json_integer((json_int_t)w->ping_rtt_us)
                                 : json_null());
    json_array_append_new(walk->list, o);
    walk->answered += answered;
}

static void s_answer_one(broker_t *self, broker_ping_t *p, int64_t now)
{
    s_answer_walk_t walk = {json_array(), p->probe, 0};
    yard_map_each(self->workers, s_worker_answer, &walk);
    json_t *root = json_pack(
        "{s:I, s:I, s:I, s:I, s:b, s:o}", "probe", (json_int_t)p->probe,
        "probed", (json_int_t)json_array_size(walk.list), "answered",
        (json_int_t)walk.answered, "elapsed_us",
        (json_int_t)(now - self->probe_started_us), "complete",
        walk.answered == json_array_size(walk.list), "workers", walk.list);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    broker_client_t *c =
        client_require(self, p->identity, p->identity_len, now);
    if (c) {
        yard_result_t result;
        memset(&result, 0, sizeof(result));
        result.id.ptr = (const uint8_t *)p->id;
        result.id.len = (uint32_t)p->id_len;
        result.attempts = 1;
        if (text) {
            result.status = YARD_OK;
            result.payload = yard_bytes_str(text);
        } else {
            result.status = YARD_ERROR;
            result.error = yard_bytes_str("out of memory");
        }
        broker_reply(self, c, &result);
    }
    free(text);
}

//  Answers the waiters whose probe is complete or past their deadline.
static void s_answer_waiters(broker_t *self, int64_t now)
{
    broker_ping_t **pp = &self->pings;
    while (*pp) {
        broker_ping_t *p = *pp;
        if (p->probe == self->probe && self->probe_outstanding > 0 &&
            now < p->deadline_us) {
            pp = &p->next;
            continue;
        }
        s_answer_one(self, p, now);
        *pp = p->next;
        free(p);
        self->npings--;
    }
}

void probe_tick(broker_t *self, int64_t now)
{
    if (self->pings)
        s_answer_waiters(self, now);
}

int64_t probe_wake(const broker_t *self)
{
    int64_t wake = INT64_MAX;
    for (const broker_ping_t *p = self->pings; p; p = p->next)
        if (p->deadline_us < wake)
            wake = p->deadline_us;
    if (self->pings && self->probe_outstanding == 0)
        wake = 0; //  a worker left: answer at once
    return wake;
}

void probe_admin(broker_t *self, broker_client_t *c, const yard_bytes_t *id,
                 const char *args, size_t len, int64_t now)
{
    uint32_t timeout_ms = BROKER_PING_DEFAULT_MS;
    while (len && *args == ' ')
        args++, len--;
    if (len) {
        uint64_t v = 0;
        size_t i = 0;
        for (; i < len && args[i] >= '0' && args[i] <= '9' && v <= 1000000; i++)
            v = v * 10 + (uint64_t)(args[i] - '0');
        if (i != len || v < 1 || v > BROKER_PING_MAX_MS) {
            yard_result_t bad;
            memset(&bad, 0, sizeof(bad));
            bad.id = *id;
            bad.status = YARD_INVALID;
            bad.error = yard_bytes_str("bad_field: ping takes a timeout in ms, "
                                       "1..10000");
            broker_reply(self, c, &bad);
            return;
        }
        timeout_ms = (uint32_t)v;
    }
    if (self->npings >= BROKER_PING_MAX_WAITERS) {
        yard_result_t busy;
        memset(&busy, 0, sizeof(busy));
        busy.id = *id;
        busy.status = YARD_REJECTED;
        busy.error = yard_bytes_str("too many ping requests waiting");
        busy.retry_after_ms = BROKER_PING_DEFAULT_MS;
        broker_reply(self, c, &busy);
        return;
    }
    broker_ping_t *p = calloc(1, sizeof(*p));
    if (!p) {
        yard_result_t oom;
        memset(&oom, 0, sizeof(oom));
        oom.id = *id;
        oom.status = YARD_ERROR;
        oom.error = yard_bytes_str("out of memory");
        broker_reply(self, c, &oom);
        return;
    }
    memcpy(p->identity, c->identity, c->identity_len);
    p->identity_len = c->identity_len;
    memcpy(p->id, id->ptr, id->len);
    p->id_len = id->len;
    //  Join the probe in progress, or (after answering whoever waited for
    //  a finished one) send a new one.
    if (!self->pings || self->probe_outstanding == 0) {
        s_answer_waiters(self, now);
        s_probe_all(self, now);
    }
    p->probe = self->probe;
    p->started_us = now;
    p->deadline_us = now + (int64_t)timeout_ms * 1000;
    p->next = self->pings;
    self->pings = p;
    self->npings++;
    if (self->probe_outstanding == 0)
        s_answer_waiters(self, now); //  no workers: nothing to wait for
}

void probe_destroy(broker_t *self)
{
    while (self->pings) {
        broker_ping_t *p = self->pings;
        self->pings = p->next;
        free(p);
    }
    self->npings = 0;
}

/* ---- JSON --------------------------------------------------------------- */

static json_t *s_loop(const yard_report_t *r)
{
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "iterations",
        (json_int_t)r->loop_iterations, "busy_us", (json_int_t)r->loop_busy_us,
        "max_us", (json_int_t)r->loop_max_us, "max_lag_us",
        (json_int_t)r->loop_max_lag_us, "slow", (json_int_t)r->loop_slow,
        "stalls", (json_int_t)r->loop_stalls, "last_stall_us",
        (json_int_t)r->loop_last_stall_us, "slow_ms",
        (json_int_t)r->loop_slow_ms, "stall_ms", (json_int_t)r->loop_stall_ms);
    if (o)
        json_object_set_new(o, "stall_age_ms",
                            r->loop_stalls
                                ? json_integer((json_int_t)r->loop_stall_age_ms)
                                : json_null());
    return o;
}

static json_t *s_memory(const yard_report_t *r)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "rss_bytes", (json_int_t)r->rss,
                     "rss_peak_bytes", (json_int_t)r->rss_peak,
                     "rss_growth_bytes", (json_int_t)r->rss_growth,
                     "growth_window_ms", (json_int_t)r->growth_window_ms);
}

json_t *probe_report_json(const broker_worker_t *w, int64_t now)
{
    const broker_report_t *rep = w->report;
    if (!rep)
        return NULL;
    json_t *objects = json_object();
    for (size_t i = 0; i < rep->nobjects; i++)
        json_object_set_new(objects, rep->objects[i].name,
                            json_integer((json_int_t)rep->objects[i].value));
    //  The report's ages count from when it was sent.
    uint64_t since = (uint64_t)(now - rep->at_us) / 1000;
    yard_report_t r = rep->r;
    if (r.loop_stalls)
        r.loop_stall_age_ms += since;
    return json_pack("{s:s, s:I, s:I, s:o, s:o, s:I, s:I, s:o}", "version",
                     rep->version, "uptime_ms",
                     (json_int_t)(r.uptime_ms + since), "age_ms",
                     (json_int_t)since, "loop", s_loop(&r), "memory",
                     s_memory(&r), "in_flight", (json_int_t)r.in_flight,
                     "pending", (json_int_t)r.pending, "objects", objects);
}

json_t *probe_ping_json(const broker_worker_t *w, int64_t now)
{
    if (!w->pong_at_us)
        return NULL;
    return json_pack("{s:I, s:I}", "rtt_us", (json_int_t)w->ping_rtt_us,
                     "age_ms", (json_int_t)((now - w->pong_at_us) / 1000));
}

json_t *probe_loop_json(const yard_proc_t *proc, int64_t now)
{
    uint64_t age = yard_proc_stall_age_ms(proc, now);
    yard_report_t r = {
        .loop_iterations = proc->iterations,
        .loop_busy_us = proc->busy_us,
        .loop_max_us = proc->max_busy_us,
        .loop_max_lag_us = proc->max_lag_us,
        .loop_slow = proc->slow,
        .loop_stalls = proc->stalls,
        .loop_last_stall_us = proc->last_stall_us,
        .loop_stall_age_ms = age == UINT64_MAX ? 0 : age,
        .loop_slow_ms = (uint64_t)proc->slow_us / 1000,
        .loop_stall_ms = (uint64_t)proc->stall_us / 1000,
    };
    return s_loop(&r);
}
