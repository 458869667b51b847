/*  events.c — the event bus: publishing, subscribers, fan-out, metrics.

    Publishers (any client or worker) send PUBLISH on the task endpoint.
    Subscribers connect a DEALER to the events endpoint (a ROUTER) and send
    SUBSCRIBE with the type prefixes they want. The broker's own events
    (breaker.*, task.*, worker.*, system.*) enter through broker_emit, the
    one place the broker publishes from.

    An event is encoded once. For every subscriber whose prefixes match,
    it is stamped with that subscriber's next delivery number `sn` and
    appended to the subscriber's outbox; every outbox is sent at the end of
    the loop turn as one PUBLISH message (or earlier when full), so a burst
    costs one ZeroMQ message per subscriber, not one per event.

    Why a ROUTER and not an XPUB: an XPUB drops silently for a slow
    subscriber and cannot say for whom, and it cannot cap subscribers. The
    ROUTER is set to ZMQ_ROUTER_MANDATORY and every send is non-blocking,
    so a subscriber whose pipe is full (ZMQ_SNDHWM messages queued) makes
    that send fail with EAGAIN: those events are counted as dropped for
    that subscriber, and the gap shows in its `sn` numbers. Nobody else
    waits, and the broker's memory per subscriber is bounded by the
    high-water mark times the largest batch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "broker.h"
#include "yard_clock.h"
#include "yard_hash.h"
#include "yard_log.h"

#define S_BATCH_EVENTS 128         /*  events per PUBLISH to a subscriber */
#define S_BATCH_BYTES (64 * 1024)  /*  bytes per PUBLISH before sending   */
#define S_OUTBOX_KEEP (256 * 1024) /*  shrink an outbox above this        */
#define S_RETAINED_TYPE "system.startup" /*  kept for new subscribers */
#define S_OTHER_TYPE "(other)" /*  types beyond BROKER_MAX_EVENT_TYPES */

struct broker_sub {
    uint8_t identity[255]; /*  routing id on the events endpoint        */
    size_t identity_len;
    uint64_t hash;
    char prefixes[YARD_MAX_TYPES][YARD_MAX_SERVICE + 1];
    uint8_t plen[YARD_MAX_TYPES];
    size_t nprefixes;
    bool all;               /*  no prefix, or an empty one: everything */
    bool got_retained;      /*  the retained event was queued for it   */
    uint64_t sn;            /*  last delivery number given             */
    msgpack_sbuffer outbox; /*  stamped event bodies waiting            */
    size_t out_count;       /*  how many                                */
    size_t out_ends[S_BATCH_EVENTS];
    broker_evtype_t *out_types[S_BATCH_EVENTS]; /*  for per-type counts    */
    bool dirty;               /*  on the flush list                       */
    broker_sub_t *next_dirty; /*  flush list link                         */
    uint64_t delivered;       /*  events handed to ZeroMQ for it          */
    uint64_t dropped;         /*  events its full pipe refused            */
    int64_t since_us;         /*  when it subscribed                      */
    int64_t last_sent_us;     /*  last message to it (heartbeat timing)   */
    size_t index;             /*  position in self->sub_list              */
};

static bool s_sub_eq(const void *value, const void *key)
{
    const broker_sub_t *s = value;
    const yard_bytes_t *id = key;
    return s->identity_len == id->len &&
           memcmp(s->identity, id->ptr, id->len) == 0;
}

static bool s_type_eq(const void *value, const void *key)
{
    const broker_evtype_t *t = value;
    const yard_bytes_t *name = key;
    return t->len == name->len && memcmp(t->name, name->ptr, name->len) == 0;
}

static uint64_t s_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*  The per-type counters of a type, created on first use; past
    BROKER_MAX_EVENT_TYPES distinct types, new ones share "(other)". */
static broker_evtype_t *s_type(broker_t *self, const uint8_t *name, size_t len)
{
    yard_bytes_t key = {name, (uint32_t)len};
    uint64_t hash = yard_hash64(name, len, self->seed);
    broker_evtype_t *t = yard_map_get(self->ev_types, hash, s_type_eq, &key);
    if (t)
        return t;
    bool other =
        len == sizeof(S_OTHER_TYPE) - 1 && memcmp(name, S_OTHER_TYPE, len) == 0;
    if (yard_map_size(self->ev_types) >= BROKER_MAX_EVENT_TYPES && !other)
        return s_type(self, (const uint8_t *)S_OTHER_TYPE,
                      sizeof(S_OTHER_TYPE) - 1);
    //  ("(other)" itself must get in: the cap is soft by one.)
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    memcpy(t->name, name, len);
    t->len = len;
    if (yard_map_put(self->ev_types, hash, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

static bool s_matches(const broker_sub_t *sub, const uint8_t *type, size_t len)
{
    if (sub->all)
        return true;
    for (size_t i = 0; i < sub->nprefixes; i++)
        if (sub->plen[i] <= len &&
            memcmp(sub->prefixes[i], type, sub->plen[i]) == 0)
            return true;
    return false;
}

/*  Whether some subscriber wants events of the family `family` ("task."):
    a prefix of it, or a prefix starting with it. */
static bool s_family_wanted(broker_t *self, const char *family)
{
    size_t flen = strlen(family);
    for (size_t i = 0; i < self->nsubs; i++) {
        broker_sub_t *sub = self->sub_list[i];
        if (sub->all)
            return true;
        for (size_t j = 0; j < sub->nprefixes; j++) {
            size_t n = sub->plen[j] < flen ? sub->plen[j] : flen;
            if (memcmp(sub->prefixes[j], family, n) == 0)
                return true;
        }
    }
    return false;
}

static void s_subscriptions_changed(broker_t *self)
{
    self->want_task_events =
        self->config.task_events && s_family_wanted(self, "task.");
}

static void s_sub_remove(broker_t *self, broker_sub_t *sub, const char *why)
{
    //  Events still in its outbox are lost with it.
    for (size_t i = 0; i < sub->out_count; i++) {
        if (sub->out_types[i])
            sub->out_types[i]->c.dropped++;
        self->ev_total.dropped++;
    }
    sub->dropped += sub->out_count;
    sub->out_count = 0;
    if (sub->dirty) {
        //  Unlink from the flush list.
        broker_sub_t **pp = &self->dirty_subs;
        while (*pp && *pp != sub)
            pp = &(*pp)->next_dirty;
        if (*pp)
            *pp = sub->next_dirty;
    }
    yard_map_remove(self->subs, sub->hash, sub);
    size_t last = self->nsubs - 1;
    self->sub_list[sub->index] = self->sub_list[last];
    self->sub_list[sub->index]->index = sub->index;
    self->nsubs = last;
    yard_info("subscriber left: %s (delivered %llu, dropped %llu)", why,
              (unsigned long long)sub->delivered,
              (unsigned long long)sub->dropped);
    msgpack_sbuffer_destroy(&sub->outbox);
    free(sub);
    s_subscriptions_changed(self);
}

/*  Sends a message to a subscriber without blocking. libzmq learns that a
    pipe drained from commands its I/O thread sends, and a socket reads
    those only now and then while it sends in a burst, so the pipe may look
    full (EAGAIN) when it is not: asking for ZMQ_EVENTS processes them,
    then one more try decides. */
static int s_send(broker_t *self, broker_sub_t *sub, yard_cmd_t cmd,
                  const yard_frame_t *frames, size_t n)
{
    int rc = yard_wire_send(self->events_sock, sub->identity, sub->identity_len,
                            YARD_ROLE_BROKER, cmd, frames, n, ZMQ_DONTWAIT);
    if (rc != 0 && errno == EAGAIN) {
        int events = 0;
        size_t size = sizeof(events);
        zmq_getsockopt(self->events_sock, ZMQ_EVENTS, &events, &size);
        rc = yard_wire_send(self->events_sock, sub->identity, sub->identity_len,
                            YARD_ROLE_BROKER, cmd, frames, n, ZMQ_DONTWAIT);
    }
    return rc;
}

/*  Sends a subscriber's outbox as one PUBLISH message. A full pipe drops
    the batch (counted); an unreachable peer is removed. Returns false if
    the subscriber was removed. */
static bool s_sub_flush(broker_t *self, broker_sub_t *sub, int64_t now)
{
    if (sub->out_count == 0)
        return true;
    yard_frame_t frames[S_BATCH_EVENTS];
    size_t start = 0;
    for (size_t i = 0; i < sub->out_count; i++) {
        frames[i].data = sub->outbox.data + start;
        frames[i].len = sub->out_ends[i] - start;
        start = sub->out_ends[i];
    }
    int rc = s_send(self, sub, YARD_CMD_PUBLISH, frames, sub->out_count);
    int err = rc ? errno : 0;
    for (size_t i = 0; i < sub->out_count; i++) {
        broker_evtype_t *t = sub->out_types[i];
        if (rc == 0) {
            if (t)
                t->c.delivered++;
        } else if (t)
            t->c.dropped++;
    }
    if (rc == 0) {
        sub->delivered += sub->out_count;
        self->ev_total.delivered += sub->out_count;
        sub->last_sent_us = now;
    } else {
        sub->dropped += sub->out_count;
        self->ev_total.dropped += sub->out_count;
    }
    sub->out_count = 0;
    sub->outbox.size = 0;
    if (sub->outbox.alloc > S_OUTBOX_KEEP) {
        msgpack_sbuffer_destroy(&sub->outbox);
        msgpack_sbuffer_init(&sub->outbox);
    }
    if (rc != 0 && err == EHOSTUNREACH) {
        s_sub_remove(self, sub, "unreachable");
        return false;
    }
    return true;
}

void events_flush_all(broker_t *self, int64_t now)
{
    broker_sub_t *sub = self->dirty_subs;
    self->dirty_subs = NULL;
    while (sub) {
        broker_sub_t *next = sub->next_dirty;
        sub->dirty = false;
        sub->next_dirty = NULL;
        s_sub_flush(self, sub, now);
        sub = next;
    }
}

/*  Queues one encoded event (without sn) for a subscriber, stamped with
    its next sn; sends the batch when it is full. false if the subscriber
    was removed (unreachable). */
static bool s_deliver(broker_t *self, broker_sub_t *sub, const char *body,
                      size_t len, broker_evtype_t *t, int64_t now)
{
    if (yard_event_stamp_sn(&sub->outbox, body, len, sub->sn + 1) != 0) {
        sub->sn++; //  the gap tells the subscriber
        sub->dropped++;
        self->ev_total.dropped++;
        if (t)
            t->c.dropped++;
        return true;
    }
    sub->sn++;
    sub->out_types[sub->out_count] = t;
    sub->out_ends[sub->out_count++] = sub->outbox.size;
    if (!sub->dirty) {
        sub->dirty = true;
        sub->next_dirty = self->dirty_subs;
        self->dirty_subs = sub;
    }
    if (sub->out_count == S_BATCH_EVENTS || sub->outbox.size >= S_BATCH_BYTES)
        return s_sub_flush(self, sub, now); //  full: send now
    return true;
}

/*  Fans one event out: encoded once (without sn), stamped per subscriber.
    ev->ts_us and ev->source must be final. */
static void s_fan_out(broker_t *self, const yard_event_t *ev, int64_t now)
{
    broker_evtype_t *t = s_type(self, ev->type.ptr, ev->type.len);
    if (t)
        t->c.published++;
    self->ev_total.published++;
    msgpack_sbuffer *buf = &self->evbuf;
    bool encoded = false; //  only once a subscriber wants it
    for (size_t i = 0; i < self->nsubs; i++) {
        broker_sub_t *sub = self->sub_list[i];
        if (!s_matches(sub, ev->type.ptr, ev->type.len))
            continue;
        if (!encoded) {
            yard_event_t out = *ev;
            out.seq = 0;
            out.ack = false;
            out.sn = 0;
            buf->size = 0;
            if (yard_encode_event(buf, YARD_ROLE_BROKER, &out) != 0) {
                yard_warn("event %.*s could not be encoded", (int)ev->type.len,
                          (const char *)ev->type.ptr);
                return;
            }
            encoded = true;
        }
        if (!s_deliver(self, sub, buf->data, buf->size, t, now))
            i--; //  removed: the last one moved into slot i
    }
}

void broker_emit(broker_t *self, const char *type,
                 const broker_event_field_t *fields, size_t nfields)
{
    msgpack_sbuffer *pb = &self->evpayload;
    pb->size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, pb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, nfields);
    for (size_t i = 0; i < nfields; i++) {
        const broker_event_field_t *f = &fields[i];
        msgpack_pack_str_with_body(&pk, f->key, strlen(f->key));
        switch (f->kind) {
        case EV_STR: {
            const char *s = f->s ? f->s : "";
            msgpack_pack_str_with_body(&pk, s, strlen(s));
            break;
        }
        case EV_BYTES:
            msgpack_pack_str_with_body(&pk, f->s ? f->s : "", f->n);
            break;
        case EV_UINT:
            msgpack_pack_uint64(&pk, f->u);
            break;
        case EV_DOUBLE:
            msgpack_pack_double(&pk, f->d);
            break;
        }
    }
    yard_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = yard_bytes_str(type);
    ev.source = yard_bytes_str("yard-broker");
    ev.ts_us = s_wall_us();
    ev.payload.ptr = (const uint8_t *)pb->data;
    ev.payload.len = (uint32_t)pb->size;
    self->events++;
    if (strcmp(type, S_RETAINED_TYPE) == 0) {
        //  Retained: every new subscriber that wants it gets it first.
        self->retained.size = 0;
        if (yard_encode_event(&self->retained, YARD_ROLE_BROKER, &ev) != 0)
            self->retained.size = 0;
    }
    yard_debug("event %s", type);
    s_fan_out(self, &ev, yard_clock_us());
}

void broker_emit_task(broker_t *self, const char *type,
                      const broker_task_t *task,
                      const broker_event_field_t *extra, size_t nextra)
{
    if (!self->want_task_events)
        return; //  nobody listens: build nothing
    broker_event_field_t f[8] = {
        {.key = "id",
         .kind = EV_BYTES,
         .s = (const char *)task_id(task),
         .n = task->id_len},
        {.key = "service", .kind = EV_STR, .s = task->service->name},
    };
    size_t n = 2;
    for (size_t i = 0; i < nextra && n < 8; i++)
        f[n++] = extra[i];
    broker_emit(self, type, f, n);
}

/* ---- Publishing -------------------------------------------------------- */

void events_publish(broker_t *self, const uint8_t *identity,
                    size_t identity_len, yard_wire_msg_t *msg, int64_t now)
{
    yard_frame_t acks[YARD_MAX_BATCH];
    size_t nacks = 0;
    msgpack_sbuffer *ab = &self->ackbuf;
    ab->size = 0;
    size_t ends[YARD_MAX_BATCH];
    for (size_t i = 0; i < msg->nbodies; i++) {
        yard_event_t ev;
        zmq_msg_t *body = &msg->bodies[i];
        int rc = yard_decode_event(self->decoder, zmq_msg_data(body),
                                   zmq_msg_size(body), &ev);
        yard_publish_ack_t ack;
        memset(&ack, 0, sizeof(ack));
        ack.seq = ev.seq;
        char why[160];
        if (rc != 0) {
            self->ev_invalid++;
            snprintf(why, sizeof(why), "%s: PUBLISH body %zu: %s",
                     yard_errcode_for(rc), i, yard_strerror(rc));
            if (ev.ack && ev.seq) {
                ack.status = YARD_INVALID;
                ack.error = yard_bytes_str(why);
            } else {
                broker_send_error(self, identity, identity_len, rc, why, NULL);
                continue;
            }
        } else {
            if (ev.ts_us == 0)
                ev.ts_us = s_wall_us();
            s_fan_out(self, &ev, now);
            if (!ev.ack)
                continue;
            ack.status = YARD_OK;
        }
        if (yard_encode_publish_ack(ab, &ack) == 0)
            ends[nacks++] = ab->size;
    }
    if (nacks == 0)
        return;
    size_t start = 0;
    for (size_t i = 0; i < nacks; i++) {
        acks[i].data = ab->data + start;
        acks[i].len = ends[i] - start;
        start = ends[i];
    }
    yard_wire_send(self->router, identity, identity_len, YARD_ROLE_BROKER,
                   YARD_CMD_PUBLISH_ACK, acks, nacks, 0);
}

/* ---- Subscribers ------------------------------------------------------- */

typedef struct {
    broker_sub_t *sub;
} s_prefix_ctx_t;

static int s_add_prefix(const char *s, size_t len, void *arg)
{
    broker_sub_t *sub = ((s_prefix_ctx_t *)arg)->sub;
    if (len == 0) {
        sub->all = true;
        return 0;
    }
    memcpy(sub->prefixes[sub->nprefixes], s, len);
    sub->prefixes[sub->nprefixes][len] = 0;
    sub->plen[sub->nprefixes++] = (uint8_t)len;
    return 0;
}

static void s_subscribe(broker_t *self, yard_wire_msg_t *msg, int64_t now)
{
    yard_subscribe_t req;
    zmq_msg_t *body = &msg->bodies[0];
    int rc = yard_decode_subscribe(self->decoder, zmq_msg_data(body),
                                   zmq_msg_size(body), &req);
    if (rc != 0) {
        char why[160];
        snprintf(why, sizeof(why), "SUBSCRIBE refused: %s", yard_strerror(rc));
        broker_send_error_on(self, self->events_sock, msg->identity,
                             msg->identity_len, rc, why);
        return;
    }
    yard_bytes_t key = {msg->identity, (uint32_t)msg->identity_len};
    uint64_t hash = yard_hash64(msg->identity, msg->identity_len, self->seed);
    broker_sub_t *sub = yard_map_get(self->subs, hash, s_sub_eq, &key);
    if (!sub) {
        if (self->nsubs >= self->config.max_subscribers) {
            char why[96];
            snprintf(why, sizeof(why), "too many subscribers (max %u)",
                     self->config.max_subscribers);
            broker_send_error_on(self, self->events_sock, msg->identity,
                                 msg->identity_len, YARD_E_LIMIT, why);
            self->ev_refused++;
            return;
        }
        sub = calloc(1, sizeof(*sub));
        broker_sub_t **grown =
            sub ? realloc(self->sub_list,
                          (self->nsubs + 1) * sizeof(*self->sub_list))
                : NULL;
        if (!grown || yard_map_put(self->subs, hash, sub) != 0) {
            free(sub);
            if (grown)
                self->sub_list = grown;
            broker_send_error_on(self, self->events_sock, msg->identity,
                                 msg->identity_len, YARD_E_NOMEM,
                                 "out of memory");
            return;
        }
        self->sub_list = grown;
        memcpy(sub->identity, msg->identity, msg->identity_len);
        sub->identity_len = msg->identity_len;
        sub->hash = hash;
        sub->since_us = now;
        msgpack_sbuffer_init(&sub->outbox);
        sub->index = self->nsubs;
        self->sub_list[self->nsubs++] = sub;
    }
    //  A new SUBSCRIBE replaces the set.
    sub->nprefixes = 0;
    sub->all = false;
    s_prefix_ctx_t ctx = {sub};
    yard_strlist_each(&req.types, s_add_prefix, &ctx);
    if (sub->nprefixes == 0)
        sub->all = true;
    s_subscriptions_changed(self);
    yard_info("subscriber: %zu prefix(es)%s, %zu subscriber(s)", sub->nprefixes,
              sub->all ? " (everything)" : "", self->nsubs);
    //  The acknowledgement: events published after this reach it.
    s_send(self, sub, YARD_CMD_HEARTBEAT, NULL, 0);
    sub->last_sent_us = now;
    //  Then the retained system.startup, once, if it wants it: it tells
    //  when (and which process) the broker started, so a subscriber sees
    //  a restart even though it could not subscribe before it.
    static const char rt[] = S_RETAINED_TYPE;
    if (!sub->got_retained && self->retained.size &&
        s_matches(sub, (const uint8_t *)rt, sizeof(rt) - 1)) {
        sub->got_retained = true;
        s_deliver(self, sub, self->retained.data, self->retained.size,
                  s_type(self, (const uint8_t *)rt, sizeof(rt) - 1), now);
    }
}

void events_handle(broker_t *self, yard_wire_msg_t *msg, int64_t now)
{
    if (msg->identity_len == 0)
        return;
    int rc = msg->header_err;
    if (rc == 0 && msg->role != YARD_ROLE_CLIENT)
        rc = YARD_E_UNKNOWN_CMD;
    if (rc == 0 && msg->nframes > msg->nbodies)
        rc = YARD_E_FRAMES;
    if (rc == 0)
        rc = yard_cmd_check(msg->role, msg->cmd, msg->nbodies);
    if (rc == 0 && msg->cmd != YARD_CMD_SUBSCRIBE &&
        msg->cmd != YARD_CMD_HEARTBEAT && msg->cmd != YARD_CMD_DISCONNECT)
        rc = YARD_E_UNKNOWN_CMD;
    if (rc != 0) {
        self->malformed++;
        char why[128];
        snprintf(why, sizeof(why),
                 "message refused on the events endpoint: %s (it takes "
                 "SUBSCRIBE, HEARTBEAT, DISCONNECT from role C)",
                 yard_strerror(rc));
        broker_send_error_on(self, self->events_sock, msg->identity,
                             msg->identity_len, rc, why);
        return;
    }
    yard_bytes_t key = {msg->identity, (uint32_t)msg->identity_len};
    uint64_t hash = yard_hash64(msg->identity, msg->identity_len, self->seed);
    broker_sub_t *sub = yard_map_get(self->subs, hash, s_sub_eq, &key);
    switch (msg->cmd) {
    case YARD_CMD_SUBSCRIBE:
        s_subscribe(self, msg, now);
        return;
    case YARD_CMD_DISCONNECT:
        if (sub && s_sub_flush(self, sub, now))
            s_sub_remove(self, sub, "disconnected");
        return;
    default:
        //  HEARTBEAT: a subscriber we do not know (we restarted) is told
        //  to subscribe again with DISCONNECT, as clients are.
        yard_wire_send(self->events_sock, msg->identity, msg->identity_len,
                       YARD_ROLE_BROKER,
                       sub ? YARD_CMD_HEARTBEAT : YARD_CMD_DISCONNECT, NULL, 0,
                       ZMQ_DONTWAIT);
        if (sub)
            sub->last_sent_us = now;
        return;
    }
}

void events_heartbeat(broker_t *self, int64_t now)
{
    int64_t interval = (int64_t)self->config.heartbeat_ms * 1000;
    for (size_t i = 0; i < self->nsubs;) {
        broker_sub_t *sub = self->sub_list[i];
        if (now - sub->last_sent_us >= interval) {
            int rc = s_send(self, sub, YARD_CMD_HEARTBEAT, NULL, 0);
            if (rc != 0 && errno == EHOSTUNREACH) {
                s_sub_remove(self, sub, "unreachable");
                continue; //  slot i now holds another subscriber
            }
            sub->last_sent_us = now;
        }
        i++;
    }
}

static void s_free_sub(void *value, void *arg)
{
    (void)arg;
    broker_sub_t *sub = value;
    msgpack_sbuffer_destroy(&sub->outbox);
    free(sub);
}

static void s_free_type(void *value, void *arg)
{
    (void)arg;
    free(value);
}

void events_destroy(broker_t *self)
{
    if (self->subs)
        yard_map_each(self->subs, s_free_sub, NULL);
    if (self->ev_types)
        yard_map_each(self->ev_types, s_free_type, NULL);
    yard_map_destroy(&self->subs);
    yard_map_destroy(&self->ev_types);
    free(self->sub_list);
    self->sub_list = NULL;
    self->nsubs = 0;
    msgpack_sbuffer_destroy(&self->evbuf);
    msgpack_sbuffer_destroy(&self->evpayload);
    msgpack_sbuffer_destroy(&self->ackbuf);
    msgpack_sbuffer_destroy(&self->retained);
}

int events_init(broker_t *self)
{
    msgpack_sbuffer_init(&self->evbuf);
    msgpack_sbuffer_init(&self->evpayload);
    msgpack_sbuffer_init(&self->ackbuf);
    msgpack_sbuffer_init(&self->retained);
    self->subs = yard_map_new(64);
    self->ev_types = yard_map_new(64);
    return self->subs && self->ev_types ? 0 : -1;
}

/* ---- Stats ------------------------------------------------------------- */

typedef struct {
    json_t *types;
} s_types_walk_t;

static void s_type_json(void *value, void *arg)
{
    broker_evtype_t *t = value;
    s_types_walk_t *w = arg;
    json_object_set_new(w->types, t->name,
                        json_pack("{s:I, s:I, s:I}", "published",
                                  (json_int_t)t->c.published, "delivered",
                                  (json_int_t)t->c.delivered, "dropped",
                                  (json_int_t)t->c.dropped));
}

json_t *events_stats(broker_t *self, int64_t now)
{
    json_t *types = json_object();
    s_types_walk_t w = {types};
    yard_map_each(self->ev_types, s_type_json, &w);
    json_t *subs = json_array();
    for (size_t i = 0; i < self->nsubs; i++) {
        broker_sub_t *sub = self->sub_list[i];
        json_t *prefixes = json_array();
        for (size_t j = 0; j < sub->nprefixes; j++)
            json_array_append_new(prefixes, json_string(sub->prefixes[j]));
        char hex[2 * sizeof(sub->identity) + 1];
        sodium_bin2hex(hex, sizeof(hex), sub->identity, sub->identity_len);
        json_array_append_new(
            subs,
            json_pack("{s:s, s:o, s:b, s:I, s:I, s:I, s:I}", "id", hex, "types",
                      prefixes, "all", sub->all, "delivered",
                      (json_int_t)sub->delivered, "dropped",
                      (json_int_t)sub->dropped, "sn", (json_int_t)sub->sn,
                      "age_ms", (json_int_t)((now - sub->since_us) / 1000)));
    }
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o}", "published",
        (json_int_t)self->ev_total.published, "delivered",
        (json_int_t)self->ev_total.delivered, "dropped",
        (json_int_t)self->ev_total.dropped, "invalid",
        (json_int_t)self->ev_invalid, "subscribers", (json_int_t)self->nsubs,
        "max_subscribers", (json_int_t)self->config.max_subscribers, "refused",
        (json_int_t)self->ev_refused, "task_events", self->config.task_events,
        "types", types, "subscriber_list", subs);
}
