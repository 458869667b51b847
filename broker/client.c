/*  client.c — the broker's view of a client: SUBMIT (validation, de-dup,
    queue bound, admin service), CANCEL, HEARTBEAT, and the reply outbox.

    Replies are not sent one by one: each client has an outbox of encoded
    RESULT bodies that is flushed once per loop turn (or when it holds
    YARD_MAX_BATCH bodies), so a burst of results for one client costs one
    ZeroMQ message instead of hundreds. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "yard_hash.h"
#include "yard_log.h"

#define S_OUTBOX_KEEP (1024 * 1024) /*  shrink an outbox above this size */

typedef struct {
    const broker_client_t *client; /*  who                                */
    const uint8_t *id;             /*  the task id                         */
    size_t id_len;                 /*  its length                          */
} s_task_key_t;

static bool s_task_eq(const void *value, const void *key)
{
    const broker_task_t *task = value;
    const s_task_key_t *k = key;
    return task->client == k->client && task->id_len == k->id_len &&
           memcmp(task_id(task), k->id, k->id_len) == 0;
}

static bool s_client_eq(const void *value, const void *key)
{
    const broker_client_t *c = value;
    const yard_bytes_t *identity = key;
    return c->identity_len == identity->len &&
           memcmp(c->identity, identity->ptr, identity->len) == 0;
}

broker_client_t *client_require(broker_t *self, const uint8_t *identity,
                                size_t len, int64_t now)
{
    yard_bytes_t key = {identity, (uint32_t)len};
    uint64_t hash = yard_hash64(identity, len, self->seed);
    broker_client_t *c = yard_map_get(self->clients, hash, s_client_eq, &key);
    if (c) {
        c->last_seen_us = now;
        return c;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    memcpy(c->identity, identity, len);
    c->identity_len = len;
    c->hash = hash;
    c->last_seen_us = now;
    c->fresh = true;
    msgpack_sbuffer_init(&c->outbox);
    if (yard_map_put(self->clients, hash, c) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void client_free(broker_client_t *c)
{
    if (!c)
        return;
    msgpack_sbuffer_destroy(&c->outbox);
    free(c);
}

static void s_flush(broker_t *self, broker_client_t *c)
{
    if (c->out_count) {
        yard_frame_t frames[YARD_MAX_BATCH];
        size_t start = 0;
        for (size_t i = 0; i < c->out_count; i++) {
            frames[i].data = c->outbox.data + start;
            frames[i].len = c->out_ends[i] - start;
            start = c->out_ends[i];
        }
        yard_wire_send(self->router, c->identity, c->identity_len,
                       YARD_ROLE_BROKER, YARD_CMD_RESULT, frames, c->out_count,
                       0);
    }
    c->out_count = 0;
    c->outbox.size = 0;
    if (c->outbox.alloc > S_OUTBOX_KEEP) {
        msgpack_sbuffer_destroy(&c->outbox);
        msgpack_sbuffer_init(&c->outbox);
    }
}

void client_queue_body(broker_t *self, broker_client_t *c, const void *data,
                       size_t len)
{
    if (c->out_count == YARD_MAX_BATCH)
        s_flush(self, c);
    msgpack_sbuffer_write(&c->outbox, data, len);
    c->out_ends[c->out_count++] = c->outbox.size;
    if (!c->dirty) {
        c->dirty = true;
        c->next_dirty = self->dirty_clients;
        self->dirty_clients = c;
    }
}

void client_flush_all(broker_t *self)
{
    broker_client_t *c = self->dirty_clients;
    while (c) {
        broker_client_t *next = c->next_dirty;
        s_flush(self, c);
        c->dirty = false;
        c->next_dirty = NULL;
        c = next;
    }
    self->dirty_clients = NULL;
}

static void s_reply_status(broker_t *self, broker_client_t *c,
                           const yard_bytes_t *id, yard_status_t status,
                           const char *error, uint32_t retry_after_ms)
{
    yard_result_t result;
    memset(&result, 0, sizeof(result));
    result.id = *id;
    result.status = status;
    result.error = yard_bytes_str(error);
    result.retry_after_ms = retry_after_ms;
    broker_reply(self, c, &result);
}

//  An admin answer: ok with a JSON payload (freed here), or an error if
//  building it ran out of memory.
static void s_reply_json(broker_t *self, broker_client_t *c,
                         const yard_bytes_t *id, char *json)
{
    if (!json) {
        s_reply_status(self, c, id, YARD_ERROR, "out of memory", 0);
        return;
    }
    yard_result_t result;
    memset(&result, 0, sizeof(result));
    result.id = *id;
    result.status = YARD_OK;
    result.payload = yard_bytes_str(json);
    result.attempts = 1;
    broker_reply(self, c, &result);
    free(json);
}

//  True if the payload is the word `word`, alone or followed by a space.
static bool s_is_command(const yard_bytes_t *payload, const char *word)
{
    size_t n = strlen(word);
    return payload->len >= n && memcmp(payload->ptr, word, n) == 0 &&
           (payload->len == n || payload->ptr[n] == ' ');
}

//  The internal admin service: the broker answers it itself.
static void s_admin(broker_t *self, broker_client_t *c,
                    const yard_submit_t *submit, int64_t now)
{
    const yard_bytes_t *p = &submit->payload;
    if (p->len == 5 && memcmp(p->ptr, "stats", 5) == 0) {
        s_reply_json(self, c, &submit->id, stats_json(self, now));
        return;
    }
    if (s_is_command(p, "ping")) {
        probe_admin(self, c, &submit->id, (const char *)p->ptr + 4, p->len - 4,
                    now);
        return;
    }
    if (s_is_command(p, "breaker")) {
        char err[320] = "out of memory", why[340];
        char *json = breaker_admin(self, (const char *)p->ptr + 7, p->len - 7,
                                   now, err, sizeof(err));
        if (!json) {
            snprintf(why, sizeof(why), "bad_field: %s", err);
            s_reply_status(self, c, &submit->id, YARD_INVALID, why, 0);
            return;
        }
        s_reply_json(self, c, &submit->id, json);
        return;
    }
    s_reply_status(
        self, c, &submit->id, YARD_INVALID,
        "bad_field: unknown admin command (known: stats, ping, breaker)", 0);
}

static void s_submit(broker_t *self, broker_client_t *c,
                     const yard_submit_t *submit, int64_t now)
{
    //  Order matters (PROTOCOL.md 8.3): admin first (answered even while
    //  draining), then duplicate, then draining, then the queue bound.
    static const char admin[] = YARD_ADMIN_SERVICE;
    if (submit->service.len == sizeof(admin) - 1 &&
        memcmp(submit->service.ptr, admin, sizeof(admin) - 1) == 0) {
        s_admin(self, c, submit, now);
        return;
    }
    s_task_key_t key = {c, submit->id.ptr, submit->id.len};
    uint64_t id_hash =
        yard_hash64_pair(c->identity, c->identity_len, submit->id.ptr,
                         submit->id.len, self->seed);
    if (yard_map_get(self->tasks_by_id, id_hash, s_task_eq, &key)) {
        //  A re-send (the client heard nothing and tried again) or a
        //  client bug: either way the task runs once and is answered once.
        self->duplicates++;
        return;
    }
    //  A response-cache policy: its key now, so a bad one is refused
    //  like a bad body, before anything is counted (PROTOCOL.md 10b).
    yard_cache_policy_t policy;
    uint8_t cache_key[YARD_CACHE_KEY_BYTES];
    int crc = yard_cache_policy_parse(&submit->cache, &policy);
    if (crc == 0)
        crc = yard_cache_key(&submit->service, &submit->payload,
                             &submit->headers, &policy, cache_key);
    if (crc != 0 && crc != YARD_E_NOTFOUND) {
        self->invalid++;
        char why[160];
        snprintf(why, sizeof(why), "%s: cache policy: %s",
                 yard_errcode_for(crc), yard_strerror(crc));
        s_reply_status(self, c, &submit->id, YARD_INVALID, why, 0);
        return;
    }
    broker_service_t *service =
        service_require(self, submit->service.ptr, submit->service.len);
    broker_counters_t *counters = service ? &service->counters : &self->totals;
    counters->submitted++;
    if (self->draining) {
        counters->shutdown++;
        s_reply_status(self, c, &submit->id, YARD_SHUTDOWN,
                       "broker is shutting down", 0);
        return;
    }
    if (!service) {
        counters->rejected++;
        s_reply_status(self, c, &submit->id, YARD_REJECTED, "out of memory",
                       BROKER_REJECT_RETRY_MS);
        return;
    }
    //  The breaker: an open one answers at once (or hands the task to its
    //  fallback service); nothing queues behind it.
    uint64_t gen = 0;
    uint32_t retry = 0;
    if (!breaker_admit(self, service, now, &gen, &retry)) {
        uint64_t fb_gen = 0;
        broker_service_t *fb =
            breaker_fallback(self, service, submit->fallback.ptr,
                             submit->fallback.len, now, &fb_gen);
        if (fb) {
            service->counters.fallback++;
            service = fb;
            gen = fb_gen;
            counters = &service->counters;
            counters->submitted++;
        } else {
            counters->circuit_open++;
            char why[192];
            snprintf(why, sizeof(why), "circuit open for %s: retry in %u ms",
                     service->name, retry);
            s_reply_status(self, c, &submit->id, YARD_CIRCUIT_OPEN, why, retry);
            return;
        }
    }
    if (service->queued + service->delayed >= self->config.max_queue) {
        yard_breaker_record(&service->breaker, gen, YARD_BREAKER_NEUTRAL, 0,
                            now / 1000, &self->rng);
        counters->rejected++;
        char why[96];
        snprintf(why, sizeof(why), "queue full (%zu waiting)",
                 service->queued + service->delayed);
        s_reply_status(self, c, &submit->id, YARD_REJECTED, why,
                       BROKER_REJECT_RETRY_MS);
        return;
    }
    broker_task_t *task = task_new(submit);
    if (!task || yard_map_put(self->tasks_by_id, id_hash, task) != 0) {
        task_free(task);
        yard_breaker_record(&service->breaker, gen, YARD_BREAKER_NEUTRAL, 0,
                            now / 1000, &self->rng);
        counters->rejected++;
        s_reply_status(self, c, &submit->id, YARD_REJECTED, "out of memory",
                       BROKER_REJECT_RETRY_MS);
        return;
    }
    task->client = c;
    task->service = service;
    task->breaker_gen = gen;
    task->id_hash = id_hash;
    task->accepted_us = now;
    task->ready_us = now;
    task->deadline_us = now + (int64_t)submit->timeout_ms * 1000;
    yard_heap_push(self->timers, &task->timer, task->deadline_us);
    c->tasks++;
    if (crc == 0 && cache_park(self, task, cache_key, &policy, now)) {
        broker_event_field_t f[] = {
            {.key = "priority", .kind = EV_UINT, .u = task->priority}};
        broker_emit_task(self, "task.submitted", task, f, 1);
        return; //  waits for the cache, or for the same task ahead of it
    }
    service_enqueue(service, task, false);
    broker_want_dispatch(self, service);
    broker_event_field_t f[] = {
        {.key = "priority", .kind = EV_UINT, .u = task->priority}};
    broker_emit_task(self, "task.submitted", task, f, 1);
}

static void s_cancel(broker_t *self, broker_client_t *c,
                     const yard_cancel_t *cancel, int64_t now)
{
    s_task_key_t key = {c, cancel->id.ptr, cancel->id.len};
    uint64_t id_hash =
        yard_hash64_pair(c->identity, c->identity_len, cancel->id.ptr,
                         cancel->id.len, self->seed);
    broker_task_t *task =
        yard_map_get(self->tasks_by_id, id_hash, s_task_eq, &key);
    if (!task)
        return; //  already answered, or never known: nothing to do
    broker_service_t *service = task->service;
    if (!broker_detach(self, task, now))
        return; //  an orphan: already answered
    service->counters.cancelled++;
    breaker_record(self, task, YARD_BREAKER_NEUTRAL, 0, now);
    broker_emit_task(self, "task.cancelled", task, NULL, 0);
    broker_answer(self, task, YARD_CANCELLED, NULL, 0, "cancelled by client",
                  19, 0);
}

typedef struct {
    broker_client_t *client; /*  whose tasks                             */
    broker_task_t **list;    /*  collected tasks                          */
    size_t count;            /*  how many                                 */
    size_t cap;              /*  room in list                             */
} s_mine_t;

static void s_collect_mine(void *value, void *arg)
{
    broker_task_t *task = value;
    s_mine_t *mine = arg;
    if (task->client == mine->client && mine->count < mine->cap)
        mine->list[mine->count++] = task;
}

//  Cancels every unanswered task of a client without replying to it.
static void s_cancel_all(broker_t *self, broker_client_t *c, int64_t now)
{
    if (c->tasks == 0)
        return;
    s_mine_t mine = {c, calloc(c->tasks, sizeof(broker_task_t *)), 0, c->tasks};
    if (!mine.list)
        return;
    yard_map_each(self->tasks_by_id, s_collect_mine, &mine);
    for (size_t i = 0; i < mine.count; i++) {
        broker_task_t *task = mine.list[i];
        broker_service_t *service = task->service;
        broker_detach(self, task, now);
        service->counters.cancelled++;
        broker_forget(self, task);
    }
    free(mine.list);
}

void client_handle(broker_t *self, broker_client_t *c, yard_wire_msg_t *msg,
                   int64_t now)
{
    if (msg->cmd != YARD_CMD_HEARTBEAT)
        c->fresh = false;
    switch (msg->cmd) {
    case YARD_CMD_SUBMIT:
        for (size_t i = 0; i < msg->nbodies; i++) {
            yard_submit_t submit;
            memset(&submit, 0, sizeof(submit));
            zmq_msg_t *body = &msg->bodies[i];
            int rc = yard_decode_submit(self->decoder, zmq_msg_data(body),
                                        zmq_msg_size(body), &submit);
            if (rc == 0) {
                s_submit(self, c, &submit, now);
                continue;
            }
            self->invalid++;
            char why[160];
            snprintf(why, sizeof(why), "%s: SUBMIT body %zu: %s",
                     yard_errcode_for(rc), i, yard_strerror(rc));
            if (submit.id.len)
                s_reply_status(self, c, &submit.id, YARD_INVALID, why, 0);
            else
                broker_send_error(self, c->identity, c->identity_len, rc, why,
                                  NULL);
        }
        return;
    case YARD_CMD_CANCEL:
        for (size_t i = 0; i < msg->nbodies; i++) {
            yard_cancel_t cancel;
            memset(&cancel, 0, sizeof(cancel));
            zmq_msg_t *body = &msg->bodies[i];
            int rc = yard_decode_cancel(self->decoder, zmq_msg_data(body),
                                        zmq_msg_size(body), &cancel);
            if (rc == 0 && cancel.id.len == 0)
                rc = YARD_E_MISSING;
            if (rc != 0) {
                self->malformed++;
                broker_send_error(self, c->identity, c->identity_len, rc,
                                  "CANCEL body refused", NULL);
                continue;
            }
            s_cancel(self, c, &cancel, now);
        }
        return;
    case YARD_CMD_HEARTBEAT:
        //  A client only heartbeats while it waits for tasks. If we have
        //  never seen it, we restarted and lost them: DISCONNECT tells it
        //  to re-send now instead of waiting for silence.
        yard_wire_send(
            self->router, c->identity, c->identity_len, YARD_ROLE_BROKER,
            c->fresh ? YARD_CMD_DISCONNECT : YARD_CMD_HEARTBEAT, NULL, 0, 0);
        c->fresh = false;
        return;
    case YARD_CMD_PUBLISH:
        events_publish(self, c->identity, c->identity_len, msg, now);
        return;
    case YARD_CMD_SUBSCRIBE:
        self->malformed++;
        broker_send_error(self, c->identity, c->identity_len,
                          YARD_E_UNKNOWN_CMD,
                          "SUBSCRIBE goes to the events endpoint", NULL);
        return;
    case YARD_CMD_DISCONNECT:
        //  The client is going away: nobody wants its results, so stop
        //  spending workers on them (PROTOCOL.md 8.2).
        s_cancel_all(self, c, now);
        return;
    default:
        self->malformed++;
        broker_send_error(self, c->identity, c->identity_len,
                          YARD_E_UNKNOWN_CMD, "command not valid for a client",
                          NULL);
        return;
    }
}

typedef struct {
    int64_t now;               /*  sweep time                              */
    broker_client_t **victims; /*  collected idle clients                  */
    size_t count;              /*  how many collected                      */
    size_t cap;                /*  room in victims                         */
} s_sweep_t;

static void s_collect_idle(void *value, void *arg)
{
    broker_client_t *c = value;
    s_sweep_t *sweep = arg;
    if (c->tasks == 0 && !c->dirty &&
        sweep->now - c->last_seen_us > (int64_t)BROKER_CLIENT_IDLE_MS * 1000 &&
        sweep->count < sweep->cap)
        sweep->victims[sweep->count++] = c;
}

void client_sweep(broker_t *self, int64_t now)
{
    broker_client_t *victims[256];
    s_sweep_t sweep = {now, victims, 0, 256};
    yard_map_each(self->clients, s_collect_idle, &sweep);
    for (size_t i = 0; i < sweep.count; i++) {
        yard_map_remove(self->clients, victims[i]->hash, victims[i]);
        client_free(victims[i]);
    }
}
