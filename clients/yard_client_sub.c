/*  yard_client_sub.c — the event subscriber (yard_sub.h): a DEALER on the
    broker's events endpoint, SUBSCRIBE and its acknowledgement, a FIFO
    of received events, delivery-number gap counting, and the liveness
    rules of proto/PROTOCOL.md 5.11.

    Receiving reads ahead at most one message once an event is buffered:
    the FIFO holds one broker batch (<= 128 events) plus what arrived
    during an acknowledgement wait, never an unbounded backlog. The rest
    waits in ZeroMQ's pipe, and when that fills the broker drops (and
    numbers) the overflow, which is what yard_subscriber_missed reports. */
#include "yard_sub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yard_client_internal.h"
#include "yard_clock.h"
#include "yard_log.h"
#include "yard_rand.h"

/*  Liveness (PROTOCOL.md 5.11): probe after 2 silent intervals (the
    broker's own heartbeat is due after 1), re-subscribe after
    YARD_HEARTBEAT_LIVENESS. */
#define S_HB_US ((int64_t)YARD_HEARTBEAT_INTERVAL_MS * 1000)
#define S_PROBE_US (2 * S_HB_US)
#define S_DEAD_US (S_HB_US * YARD_HEARTBEAT_LIVENESS)

/*  Messages read per pump before timers get their turn. */
#define S_DRAIN_MAX 1024

/*  A buffered event: the public struct, then its strings and bytes. */
typedef struct s_item {
    struct s_item *next;
    yard_sub_event_t ev;
} s_item_t;

struct _yard_subscriber_t {
    void *ctx;                  /*  ZeroMQ context, ours alone            */
    void *socket;               /*  DEALER to the events endpoint         */
    char *endpoint;             /*  kept to reconnect                     */
    uint8_t routing_id[16];     /*  kept across reconnects                */
    msgpack_sbuffer body;       /*  the SUBSCRIBE body, kept to re-send   */
    msgpack_sbuffer scratch;    /*  encodes a new types list            */
    yard_decoder_t *decoder;    /*  reused to decode bodies             */
    yard_wire_msg_t msg;        /*  reused to receive                   */
    s_item_t *head, *tail;      /*  buffered events, oldest first       */
    size_t count;               /*  how many                            */
    yard_sub_filter_fn *filter; /* client-side filter, or NULL        */
    void *filter_arg;
    uint64_t last_sn;      /*  last delivery number seen, 0: none yet */
    uint64_t missed;       /*  events lost, from sn gaps              */
    uint64_t resubscribes; /*  SUBSCRIBEs re-sent                     */
    bool acked;            /*  the last SUBSCRIBE was acknowledged    */
    int refused;           /*  an ERROR not reported yet, or 0        */
    int64_t last_recv_us;  /*  last message from the broker (or when
                               we started expecting one)            */
    int64_t last_hb_us;    /*  last probe HEARTBEAT we sent           */
};

/* ---- Events ------------------------------------------------------------ */

void yard_sub_event_destroy(yard_sub_event_t **ev_p)
{
    if (!ev_p || !*ev_p)
        return;
    free((char *)*ev_p - offsetof(s_item_t, ev));
    *ev_p = NULL;
}

static void s_item_free(s_item_t *item)
{
    free(item);
}

/*  An owned copy of a decoded event, or NULL when out of memory. */
static s_item_t *s_item_new(const yard_event_t *ev)
{
    size_t size = sizeof(s_item_t) + ev->type.len + 1 + ev->source.len + 1 +
                  ev->trace_id.len + 1 + ev->payload.len + ev->meta.len;
    s_item_t *item = malloc(size);
    if (!item)
        return NULL;
    item->next = NULL;
    yard_sub_event_t *e = &item->ev;
    char *p = (char *)(item + 1);
#define S_COPY_STR(field)                                                      \
    do {                                                                       \
        e->field = p;                                                          \
        if (ev->field.len)                                                     \
            memcpy(p, ev->field.ptr, ev->field.len);                           \
        p[ev->field.len] = '\0';                                               \
        p += ev->field.len + 1;                                                \
    } while (0)
    S_COPY_STR(type);
    S_COPY_STR(source);
    S_COPY_STR(trace_id);
#undef S_COPY_STR
    e->payload = NULL;
    e->payload_len = ev->payload.len;
    if (ev->payload.len) {
        e->payload = (uint8_t *)p;
        memcpy(p, ev->payload.ptr, ev->payload.len);
        p += ev->payload.len;
    }
    e->meta = NULL;
    e->meta_len = ev->meta.len;
    if (ev->meta.len) {
        e->meta = (uint8_t *)p;
        memcpy(p, ev->meta.ptr, ev->meta.len);
    }
    e->ts_us = ev->ts_us;
    e->sn = ev->sn;
    return item;
}

/*  The filter's view of a buffered event. */
static void s_view(const yard_sub_event_t *e, yard_event_view_t *v)
{
    memset(v, 0, sizeof(*v));
    v->type = yard_bytes_str(e->type);
    v->source = yard_bytes_str(e->source);
    v->trace_id = yard_bytes_str(e->trace_id);
    v->ts_us = e->ts_us;
    v->sn = e->sn;
    v->payload.ptr = e->payload;
    v->payload.len = (uint32_t)e->payload_len;
    v->meta.ptr = e->meta;
    v->meta.len = (uint32_t)e->meta_len;
}

/*  Removes from the FIFO every event keep() refuses. */
static void s_fifo_prune(yard_subscriber_t *self,
                         bool (*keep)(const yard_sub_event_t *, void *),
                         void *arg)
{
    s_item_t **pp = &self->head;
    self->tail = NULL;
    while (*pp) {
        s_item_t *item = *pp;
        if (keep(&item->ev, arg)) {
            self->tail = item;
            pp = &item->next;
        } else {
            *pp = item->next;
            self->count--;
            s_item_free(item);
        }
    }
}

static bool s_has_prefix(const char *type, const char *const *types, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strncmp(type, types[i], strlen(types[i])) == 0)
            return true;
    return false;
}

/* ---- Socket ------------------------------------------------------------ */

/*  A connected DEALER with our routing id, or NULL (errno set). */
static void *s_socket_open(yard_subscriber_t *self)
{
    void *socket = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!socket)
        return NULL;
    if (yard_wire_setup(socket) != 0 ||
        zmq_setsockopt(socket, ZMQ_ROUTING_ID, self->routing_id,
                       sizeof(self->routing_id)) != 0 ||
        zmq_connect(socket, self->endpoint) != 0) {
        int saved = errno;
        zmq_close(socket);
        errno = saved;
        return NULL;
    }
    return socket;
}

static int s_send(yard_subscriber_t *self, yard_cmd_t cmd,
                  const msgpack_sbuffer *body)
{
    yard_frame_t frame = {body ? body->data : NULL, body ? body->size : 0};
    if (yard_wire_send(self->socket, NULL, 0, YARD_ROLE_CLIENT, cmd, &frame,
                       body ? 1 : 0, ZMQ_DONTWAIT) != 0) {
        yard_debug("subscriber: %s not sent: %s", yard_cmd_name(cmd),
                   zmq_strerror(errno));
        return YARD_E_IO;
    }
    return 0;
}

/*  Sends the SUBSCRIBE body (again) and restarts the silence clock. */
static int s_subscribe(yard_subscriber_t *self)
{
    self->acked = false;
    self->last_recv_us = yard_clock_us();
    self->last_hb_us = 0;
    return s_send(self, YARD_CMD_SUBSCRIBE, &self->body);
}

/*  After silence: a new connection (same routing id), then SUBSCRIBE. A
    broker that restarted numbers our events from 1 again, which the gap
    count tolerates (s_track_sn). */
static void s_resubscribe(yard_subscriber_t *self, bool reconnect,
                          const char *why)
{
    self->resubscribes++;
    if (reconnect) {
        void *socket = s_socket_open(self);
        if (socket) {
            zmq_close(self->socket);
            self->socket = socket;
        } else
            yard_warn("subscriber: reconnect to %s failed: %s", self->endpoint,
                      zmq_strerror(errno));
    }
    yard_info("subscriber: %s; subscribing again to %s", why, self->endpoint);
    s_subscribe(self);
}

/* ---- Receiving --------------------------------------------------------- */

/*  Counts the events lost before one numbered sn. Numbers grow by one per
    event the broker meant for us; a number not above the last one means
    the numbering started over (a restarted broker), so only the events
    before it in the new numbering count. */
static void s_track_sn(yard_subscriber_t *self, uint64_t sn)
{
    if (sn == 0)
        return; /*  not numbered: nothing to learn */
    if (sn > self->last_sn)
        self->missed += sn - self->last_sn - 1;
    else
        self->missed += sn - 1;
    self->last_sn = sn;
}

static void s_on_publish(yard_subscriber_t *self, yard_wire_msg_t *msg)
{
    for (size_t i = 0; i < msg->nbodies; i++) {
        yard_event_t ev;
        int rc = yard_decode_event(self->decoder, zmq_msg_data(&msg->bodies[i]),
                                   zmq_msg_size(&msg->bodies[i]), &ev);
        if (rc != 0) {
            yard_warn("subscriber: undecodable event dropped (%s)",
                      yard_strerror(rc));
            continue;
        }
        s_track_sn(self, ev.sn);
        if (self->filter && !self->filter(&ev, self->filter_arg))
            continue;
        s_item_t *item = s_item_new(&ev);
        if (!item) {
            yard_warn("subscriber: out of memory, event dropped");
            self->missed++;
            continue;
        }
        if (self->tail)
            self->tail->next = item;
        else
            self->head = item;
        self->tail = item;
        self->count++;
    }
}

static void s_on_error(yard_subscriber_t *self, yard_wire_msg_t *msg)
{
    yard_error_t error;
    memset(&error, 0, sizeof(error));
    int rc =
        msg->nbodies
            ? yard_decode_error(self->decoder, zmq_msg_data(&msg->bodies[0]),
                                zmq_msg_size(&msg->bodies[0]), &error)
            : YARD_E_FRAMES;
    if (rc != 0) {
        yard_warn("subscriber: unreadable ERROR from broker (%s)",
                  yard_strerror(rc));
        self->refused = YARD_E_MALFORMED;
        return;
    }
    yard_warn("subscriber: broker refused: %.*s: %.*s", (int)error.code.len,
              (const char *)error.code.ptr, (int)error.message.len,
              (const char *)error.message.ptr);
    self->refused =
        yard_cl_err_for_code((const char *)error.code.ptr, error.code.len);
}

static void s_on_message(yard_subscriber_t *self, yard_wire_msg_t *msg)
{
    self->last_recv_us = yard_clock_us();
    if (msg->header_err != 0 || msg->role != YARD_ROLE_BROKER) {
        yard_debug("subscriber: ignoring a message with a bad header (%s)",
                   yard_strerror(msg->header_err));
        return;
    }
    switch (msg->cmd) {
    case YARD_CMD_PUBLISH:
        s_on_publish(self, msg);
        break;
    case YARD_CMD_HEARTBEAT:
        /*  The acknowledgement of a SUBSCRIBE, or an idle heartbeat: the
            protocol does not tell them apart (see yard_subscriber_new). */
        self->acked = true;
        break;
    case YARD_CMD_DISCONNECT:
        /*  The broker does not know us (it restarted): numbering starts
            over with the new subscription. */
        self->last_sn = 0;
        s_resubscribe(self, false, "broker sent DISCONNECT");
        break;
    case YARD_CMD_ERROR:
        s_on_error(self, msg);
        break;
    default:
        yard_debug("subscriber: ignoring %s from broker",
                   yard_cmd_name(msg->cmd));
        break;
    }
}

/*  Reads what is readable, stopping once an event is buffered (read
    ahead is one message; greedy: read on, to find an acknowledgement
    behind events) or an ERROR waits to be reported. Returns how many
    messages were taken. */
static size_t s_drain(yard_subscriber_t *self, bool greedy)
{
    size_t n = 0;
    while (n < S_DRAIN_MAX && (greedy || !self->head) && !self->refused &&
           !(greedy && self->acked)) {
        if (yard_wire_recv(self->socket, false, &self->msg, ZMQ_DONTWAIT) != 0)
            break;
        n++;
        s_on_message(self, &self->msg);
    }
    return n;
}

/*  Runs the liveness timers. */
static void s_timers(yard_subscriber_t *self, int64_t now)
{
    int64_t silent = now - self->last_recv_us;
    if (silent >= S_DEAD_US)
        s_resubscribe(self, true, "no word from broker for 3 heartbeats");
    else if (silent >= S_PROBE_US && now - self->last_hb_us >= S_HB_US) {
        /*  The broker answers HEARTBEAT, or DISCONNECT if it forgot us. */
        s_send(self, YARD_CMD_HEARTBEAT, NULL);
        self->last_hb_us = now;
    }
}

static int64_t s_next_timer(const yard_subscriber_t *self)
{
    int64_t probe = self->last_recv_us + S_PROBE_US;
    if (self->last_hb_us + S_HB_US > probe)
        probe = self->last_hb_us + S_HB_US;
    int64_t dead = self->last_recv_us + S_DEAD_US;
    return probe < dead ? probe : dead;
}

/*  One round: take what is readable; if nothing, run the timers and poll
    until deadline_us (-1: none) or the next timer. greedy as s_drain.
    Returns 0, YARD_E_INTERRUPTED or YARD_E_IO. */
static int s_pump(yard_subscriber_t *self, int64_t deadline_us, bool greedy)
{
    /*  What already arrived first: a caller back from a pause must not
        mistake its own absence for the broker's silence. */
    if (s_drain(self, greedy))
        return 0;
    s_timers(self, yard_clock_us());
    int64_t now = yard_clock_us();
    int64_t wake = s_next_timer(self);
    if (deadline_us >= 0 && deadline_us < wake)
        wake = deadline_us;
    int64_t us = wake - now;
    long timeout = us <= 0 ? 0 : (long)((us + 999) / 1000);
    zmq_pollitem_t item = {self->socket, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout) < 0) {
        if (errno == EINTR)
            return YARD_E_INTERRUPTED;
        yard_warn("subscriber: zmq_poll failed: %s", zmq_strerror(errno));
        return YARD_E_IO;
    }
    if (item.revents & ZMQ_POLLIN)
        s_drain(self, greedy);
    return 0;
}

/*  True when a wait that started with deadline_us must stop: the deadline
    passed after at least one pump (so timeout 0 still reads the socket). */
static bool s_expired(int64_t deadline_us, bool pumped)
{
    return pumped && deadline_us >= 0 && yard_clock_us() >= deadline_us;
}

/*  Waits for the acknowledgement of the SUBSCRIBE just sent. Events that
    arrive meanwhile are buffered. */
static int s_wait_ack(yard_subscriber_t *self, int timeout_ms)
{
    int64_t deadline = yard_cl_deadline(timeout_ms);
    for (bool pumped = false;; pumped = true) {
        if (self->refused) {
            int rc = self->refused;
            self->refused = 0;
            return rc;
        }
        if (self->acked)
            return 0;
        if (s_expired(deadline, pumped))
            return YARD_E_TIMEOUT;
        /*  Greedy: the HEARTBEAT may come behind buffered events. */
        int rc = s_pump(self, deadline, true);
        if (rc)
            return rc;
    }
}

/*  Encodes a SUBSCRIBE body for types into *out (cleared first). */
static int s_encode_subscribe(yard_subscriber_t *self, const char *const *types,
                              size_t n, msgpack_sbuffer *out)
{
    if ((n && !types) || n > YARD_MAX_TYPES)
        return YARD_E_ARG;
    for (size_t i = 0; i < n; i++)
        if (!types[i])
            return YARD_E_ARG;
    msgpack_sbuffer_clear(&self->scratch);
    int rc = yard_encode_strlist(&self->scratch, types, n);
    if (rc)
        return rc;
    yard_subscribe_t sub = {.types = {(const uint8_t *)self->scratch.data,
                                      (uint32_t)self->scratch.size}};
    msgpack_sbuffer_clear(out);
    return yard_encode_subscribe(out, &sub);
}

/* ---- API --------------------------------------------------------------- */

yard_subscriber_t *yard_subscriber_new(const char *events_endpoint,
                                       const char *const *types, size_t ntypes,
                                       int timeout_ms, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = 0;
    if (!events_endpoint || !*events_endpoint) {
        *err = YARD_E_ARG;
        return NULL;
    }
    yard_subscriber_t *self = calloc(1, sizeof(*self));
    if (!self) {
        *err = YARD_E_NOMEM;
        return NULL;
    }
    msgpack_sbuffer_init(&self->body);
    msgpack_sbuffer_init(&self->scratch);
    yard_wire_msg_init(&self->msg);
    int rc = s_encode_subscribe(self, types, ntypes, &self->body);
    if (rc) {
        *err = rc == YARD_E_NOMEM ? rc : YARD_E_ARG;
        goto fail;
    }
    yard_rand_t rng;
    yard_rand_seed_os(&rng);
    yard_rand_bytes(&rng, self->routing_id, sizeof(self->routing_id));
    if (self->routing_id[0] == 0) /*  reserved by ZeroMQ */
        self->routing_id[0] = 1;
    self->endpoint = strdup(events_endpoint);
    self->decoder = yard_decoder_new();
    self->ctx = zmq_ctx_new();
    if (!self->endpoint || !self->decoder || !self->ctx) {
        *err = YARD_E_NOMEM;
        goto fail;
    }
    if (!(self->socket = s_socket_open(self))) {
        *err = YARD_E_IO;
        goto fail;
    }
    if ((rc = s_subscribe(self)) != 0 ||
        (rc = s_wait_ack(self, timeout_ms)) != 0) {
        *err = rc;
        goto fail;
    }
    return self;
fail:;
    int saved = errno;
    yard_subscriber_destroy(&self);
    errno = saved;
    return NULL;
}

void yard_subscriber_destroy(yard_subscriber_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    yard_subscriber_t *self = *self_p;
    while (self->head) {
        s_item_t *item = self->head;
        self->head = item->next;
        s_item_free(item);
    }
    if (self->socket) {
        /*  Tell the broker to forget us now rather than at its next
            failed send; give the message a moment to leave. */
        s_send(self, YARD_CMD_DISCONNECT, NULL);
        int linger = YARD_SUB_LINGER_MS;
        zmq_setsockopt(self->socket, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(self->socket);
    }
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    yard_wire_msg_close(&self->msg);
    yard_decoder_destroy(&self->decoder);
    msgpack_sbuffer_destroy(&self->body);
    msgpack_sbuffer_destroy(&self->scratch);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

typedef struct {
    const char *const *types;
    size_t n;
} s_types_t;

static bool s_keep_types(const yard_sub_event_t *ev, void *arg)
{
    const s_types_t *t = arg;
    return s_has_prefix(ev->type, t->types, t->n);
}

int yard_subscriber_set_types(yard_subscriber_t *self, const char *const *types,
                              size_t ntypes, int timeout_ms)
{
    if (!self)
        return YARD_E_ARG;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    int rc = s_encode_subscribe(self, types, ntypes, &body);
    if (rc) {
        msgpack_sbuffer_destroy(&body);
        return rc == YARD_E_NOMEM ? rc : YARD_E_ARG;
    }
    msgpack_sbuffer_destroy(&self->body);
    self->body = body; /*  the set a re-subscribe sends from now on */
    self->refused = 0;
    if ((rc = s_subscribe(self)) == 0)
        rc = s_wait_ack(self, timeout_ms);
    s_types_t t = {types, ntypes};
    s_fifo_prune(self, s_keep_types, &t);
    return rc;
}

static bool s_keep_filtered(const yard_sub_event_t *ev, void *arg)
{
    yard_subscriber_t *self = arg;
    yard_event_view_t view;
    s_view(ev, &view);
    return self->filter(&view, self->filter_arg);
}

void yard_subscriber_set_filter(yard_subscriber_t *self, yard_sub_filter_fn *fn,
                                void *arg)
{
    if (!self)
        return;
    self->filter = fn;
    self->filter_arg = arg;
    if (fn)
        s_fifo_prune(self, s_keep_filtered, self);
}

int yard_subscriber_next(yard_subscriber_t *self, int timeout_ms,
                         yard_sub_event_t **ev)
{
    if (!self || !ev)
        return YARD_E_ARG;
    *ev = NULL;
    int64_t deadline = yard_cl_deadline(timeout_ms);
    for (bool pumped = false;; pumped = true) {
        if (self->head) {
            s_item_t *item = self->head;
            self->head = item->next;
            if (!self->head)
                self->tail = NULL;
            self->count--;
            item->next = NULL;
            *ev = &item->ev;
            return 0;
        }
        if (self->refused) {
            int rc = self->refused;
            self->refused = 0;
            return rc;
        }
        if (s_expired(deadline, pumped))
            return YARD_E_TIMEOUT;
        int rc = s_pump(self, deadline, false);
        if (rc)
            return rc;
    }
}

int yard_subscriber_wait(yard_subscriber_t *self, const char *const *types,
                         size_t n, int timeout_ms, yard_sub_event_t **ev)
{
    if (!self || !ev || (n && !types))
        return YARD_E_ARG;
    for (size_t i = 0; i < n; i++)
        if (!types[i])
            return YARD_E_ARG;
    *ev = NULL;
    int64_t deadline = yard_cl_deadline(timeout_ms);
    for (;;) {
        int left = -1;
        if (deadline >= 0) {
            int64_t us = deadline - yard_clock_us();
            left = us <= 0 ? 0 : (int)((us + 999) / 1000);
        }
        int rc = yard_subscriber_next(self, left, ev);
        if (rc)
            return rc;
        if (s_has_prefix((*ev)->type, types, n))
            return 0;
        yard_sub_event_destroy(ev); /*  not wanted by this call */
        if (deadline >= 0 && yard_clock_us() >= deadline)
            return YARD_E_TIMEOUT; /*  a stream of others: stop anyway */
    }
}

uint64_t yard_subscriber_missed(const yard_subscriber_t *self)
{
    return self ? self->missed : 0;
}

uint64_t yard_subscriber_resubscribes(const yard_subscriber_t *self)
{
    return self ? self->resubscribes : 0;
}
