/*  yard_client_events.c — publishing events through the client's task
    socket (proto/PROTOCOL.md 5.11): fire-and-forget PUBLISH, confirmed
    PUBLISH (ack + seq, answered by PUBLISH_ACK), and a HEARTBEAT round
    trip that tells a caller its fire-and-forget events reached the broker.

    Nothing here keeps an event after it is handed to the socket: events
    are not tasks, the library does not re-send them after a reconnect. A
    confirmed publish whose connection is replaced while it waits ends in
    YARD_E_TIMEOUT, and the caller decides whether to publish again. */
#include "yard_client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "yard_clock.h"
#include "yard_log.h"

size_t yard_msgpack_str(void *out, size_t cap, const char *text, size_t len)
{
    uint8_t head[5];
    size_t hl;
    if (len <= 31) {
        head[0] = (uint8_t)(0xa0 | len);
        hl = 1;
    } else if (len <= 0xff) {
        head[0] = 0xd9;
        head[1] = (uint8_t)len;
        hl = 2;
    } else if (len <= 0xffff) {
        head[0] = 0xda;
        head[1] = (uint8_t)(len >> 8);
        head[2] = (uint8_t)len;
        hl = 3;
    } else {
        head[0] = 0xdb;
        head[1] = (uint8_t)(len >> 24);
        head[2] = (uint8_t)(len >> 16);
        head[3] = (uint8_t)(len >> 8);
        head[4] = (uint8_t)len;
        hl = 5;
    }
    size_t need = hl + len;
    if (out && need <= cap) {
        memcpy(out, head, hl);
        if (len)
            memcpy((uint8_t *)out + hl, text, len);
    }
    return need;
}

/*  Encodes one PUBLISH body into self->ev_buf; seq 0 publishes without
    an ack. Returns 0 or why not (nothing is sent then). */
static int s_encode(yard_client_t *self, const char *type, const void *payload,
                    size_t len, const yard_publish_opts_t *opts, uint64_t seq)
{
    static const yard_publish_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    if (!type || (!payload && len))
        return YARD_E_ARG;
    if (len > YARD_MAX_EVENT_PAYLOAD)
        return YARD_E_TOO_LARGE;
    if (len) {
        /*  One msgpack value, whole: the broker copies it unchecked into
            every subscriber's stream, so refuse garbage here. */
        int rc = yard_msgpack_check(payload, len);
        if (rc)
            return rc;
    }
    yard_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = yard_bytes_str(type);
    ev.source = yard_bytes_str(opts->source);
    ev.trace_id = yard_bytes_str(opts->trace_id);
    ev.ts_us = opts->ts_us;
    if (len) {
        ev.payload.ptr = payload;
        ev.payload.len = (uint32_t)len;
    }
    if (opts->meta && opts->meta[0]) {
        int rc = yard_cl_pack_headers(&self->meta_buf, opts->meta);
        if (rc)
            return rc;
        ev.meta.ptr = (const uint8_t *)self->meta_buf.data;
        ev.meta.len = (uint32_t)self->meta_buf.size;
    }
    ev.seq = seq;
    ev.ack = seq != 0;
    msgpack_sbuffer_clear(&self->ev_buf);
    return yard_encode_event(&self->ev_buf, YARD_ROLE_CLIENT, &ev);
}

/*  Hands the encoded body to the socket without blocking. */
static int s_send(yard_client_t *self)
{
    yard_frame_t frame = {self->ev_buf.data, self->ev_buf.size};
    if (yard_wire_send(self->socket, NULL, 0, YARD_ROLE_CLIENT,
                       YARD_CMD_PUBLISH, &frame, 1, ZMQ_DONTWAIT) != 0) {
        yard_debug("client: PUBLISH not sent: %s", zmq_strerror(errno));
        return YARD_E_IO;
    }
    return 0;
}

int yard_client_publish(yard_client_t *self, const char *type,
                        const void *payload, size_t len,
                        const yard_publish_opts_t *opts)
{
    if (!self)
        return YARD_E_ARG;
    int rc = s_encode(self, type, payload, len, opts, 0);
    return rc ? rc : s_send(self);
}

int yard_cl_err_for_code(const char *text, size_t len)
{
    static const struct {
        const char *code;
        int err;
    } codes[] = {
        {YARD_ERRCODE_MALFORMED, YARD_E_MALFORMED},
        {YARD_ERRCODE_TOO_LARGE, YARD_E_TOO_LARGE},
        {YARD_ERRCODE_VERSION, YARD_E_VERSION},
        {YARD_ERRCODE_UNKNOWN_CMD, YARD_E_UNKNOWN_CMD},
        {YARD_ERRCODE_BAD_FIELD, YARD_E_RANGE},
        {YARD_ERRCODE_FRAMES, YARD_E_FRAMES},
        {YARD_ERRCODE_LIMIT, YARD_E_LIMIT},
    };
    const char *colon = len ? memchr(text, ':', len) : NULL;
    size_t n = colon ? (size_t)(colon - text) : len;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strlen(codes[i].code) == n && memcmp(codes[i].code, text, n) == 0)
            return codes[i].err;
    return YARD_E_MALFORMED; /*  an unknown code: a generic refusal */
}

void yard_cl_on_publish_ack(yard_client_t *self, const zmq_msg_t *frame)
{
    yard_publish_ack_t ack;
    memset(&ack, 0, sizeof(ack));
    int rc =
        yard_decode_publish_ack(self->decoder, zmq_msg_data((zmq_msg_t *)frame),
                                zmq_msg_size((zmq_msg_t *)frame), &ack);
    if (self->ack_seq == 0 || ack.seq != self->ack_seq || self->ack_done) {
        yard_debug("client: PUBLISH_ACK for seq %llu not awaited, dropped",
                   (unsigned long long)ack.seq);
        return;
    }
    self->ack_done = true;
    if (rc != 0) {
        /*  Our seq, unreadable otherwise: the broker did answer, but we
            cannot tell how. Better a clear failure than a timeout. */
        snprintf(self->last_error, sizeof(self->last_error),
                 "unreadable PUBLISH_ACK from broker: %s", yard_strerror(rc));
        self->ack_err = YARD_E_MALFORMED;
        return;
    }
    if (ack.status == YARD_OK) {
        self->ack_err = 0;
        self->last_error[0] = '\0';
        return;
    }
    if (ack.error.len)
        snprintf(self->last_error, sizeof(self->last_error), "%.*s",
                 (int)ack.error.len, (const char *)ack.error.ptr);
    else
        snprintf(self->last_error, sizeof(self->last_error),
                 "refused by broker (%s)", yard_status_name(ack.status));
    self->ack_err =
        ack.status == YARD_INVALID
            ? yard_cl_err_for_code(self->last_error, strlen(self->last_error))
            : YARD_E_IO;
}

/*  True when a wait that started with deadline_us must stop: the deadline
    passed after at least one pump (so timeout 0 still reads the socket). */
static bool s_expired(int64_t deadline_us, bool pumped)
{
    return pumped && deadline_us >= 0 && yard_clock_us() >= deadline_us;
}

int yard_client_publish_confirmed(yard_client_t *self, const char *type,
                                  const void *payload, size_t len,
                                  const yard_publish_opts_t *opts,
                                  int timeout_ms)
{
    if (!self)
        return YARD_E_ARG;
    if (self->ack_seq) /*  from a callback inside another confirmed wait */
        return YARD_E_ARG;
    self->last_error[0] = '\0';
    uint64_t seq = ++self->pub_seq;
    int rc = s_encode(self, type, payload, len, opts, seq);
    if (rc == 0)
        rc = s_send(self);
    if (rc)
        return rc;
    self->ack_seq = seq;
    self->ack_done = false;
    self->ack_err = 0;
    int64_t deadline = yard_cl_deadline(timeout_ms);
    for (bool pumped = false;; pumped = true) {
        if (self->ack_done) {
            rc = self->ack_err;
            break;
        }
        if (s_expired(deadline, pumped)) {
            rc = YARD_E_TIMEOUT;
            break;
        }
        if ((rc = yard_cl_pump(self, deadline)) != 0)
            break;
    }
    self->ack_seq = 0;
    return rc;
}

const char *yard_client_last_error(const yard_client_t *self)
{
    return self ? self->last_error : "";
}

int yard_client_sync(yard_client_t *self, int timeout_ms)
{
    if (!self)
        return YARD_E_ARG;
    uint64_t before = self->hb_answers;
    if (yard_wire_send(self->socket, NULL, 0, YARD_ROLE_CLIENT,
                       YARD_CMD_HEARTBEAT, NULL, 0, ZMQ_DONTWAIT) != 0)
        return YARD_E_IO;
    int64_t deadline = yard_cl_deadline(timeout_ms);
    for (bool pumped = false;; pumped = true) {
        if (self->hb_answers != before)
            return 0;
        if (s_expired(deadline, pumped))
            return YARD_E_TIMEOUT;
        int rc = yard_cl_pump(self, deadline);
        if (rc)
            return rc;
    }
}
