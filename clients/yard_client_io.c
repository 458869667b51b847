/*  yard_client_io.c — the client's network pump: receive and apply what the
    broker sends, and run the timers of proto/PROTOCOL.md 8.3:

      * heartbeat: with tasks in flight and 1 interval without a word from
        the broker, send HEARTBEAT (again every interval while silent);
      * reconnect: after 3 intervals of silence, and at least 2 intervals
        after our first unanswered heartbeat (so a caller that did not wait
        for a while does not mistake its own absence for the broker's),
        close the socket, open a new one with the same routing id and
        re-send every in-flight SUBMIT body;
      * re-send on reconnect: when libzmq re-establishes a dropped TCP
        link (a broker restart, say), everything in flight is sent again
        (this goes beyond the draft; see s_drain_monitor);
      * give-up: a task with no reply by its timeout + YARD_CLIENT_GIVEUP_MS
        is answered locally "timeout", "no reply from broker".

    There is no thread: the pump runs inside the wait calls, which is
    enough, since a task's outcome matters only to someone waiting for it.
    Every timer uses the monotonic clock. */
#include "yard_client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "yard_clock.h"
#include "yard_log.h"

/*  Messages taken per pump before timers and sends get their turn, so a
    flood of results cannot starve heartbeats or re-sends. */
#define S_DRAIN_MAX 1024

/*  How long to wait before retrying a give-up that ran out of memory. */
#define S_RETRY_US 100000

int64_t yard_cl_deadline(int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    return yard_clock_us() + (int64_t)timeout_ms * 1000;
}

/*  Applies one RESULT body. */
static void s_on_result(yard_client_t *self, const zmq_msg_t *frame)
{
    yard_result_t result;
    memset(&result, 0, sizeof(result));
    int rc = yard_decode_result(self->decoder, zmq_msg_data((zmq_msg_t *)frame),
                                zmq_msg_size((zmq_msg_t *)frame), &result);
    if (result.id.len == 0) {
        yard_warn("client: RESULT without a readable id dropped (%s)",
                  yard_strerror(rc));
        return;
    }
    uint64_t hash = yard_cl_hash(self, result.id.ptr, result.id.len);
    yard_cl_task_t *task =
        yard_cl_task_find(self, result.id.ptr, result.id.len, hash);
    if (!task) {
        /*  A duplicate (after a re-send), or a task we gave up on. */
        yard_debug("client: result for unknown task %.*s dropped",
                   (int)result.id.len, (const char *)result.id.ptr);
        return;
    }
    if (rc != 0) {
        /*  The task is answered, just unreadably: say so rather than
            leave the caller to the give-up. */
        char text[128];
        snprintf(text, sizeof(text), "unreadable result from broker: %s",
                 yard_strerror(rc));
        yard_cl_answer_status(self, task, YARD_ERROR, text, false);
        return;
    }
    if (yard_cl_answer(self, task, &result, false) != 0)
        yard_warn("client: out of memory keeping a reply");
}

/*  Applies one ERROR body: if it names one of our tasks, that task was
    refused and is answered "invalid"; otherwise it is only logged. */
static void s_on_error(yard_client_t *self, const zmq_msg_t *frame)
{
    yard_error_t error;
    memset(&error, 0, sizeof(error));
    int rc = yard_decode_error(self->decoder, zmq_msg_data((zmq_msg_t *)frame),
                               zmq_msg_size((zmq_msg_t *)frame), &error);
    if (rc != 0 && error.id.len == 0) {
        yard_warn("client: unreadable ERROR from broker (%s)",
                  yard_strerror(rc));
        return;
    }
    yard_cl_task_t *task = NULL;
    if (error.id.len)
        task =
            yard_cl_task_find(self, error.id.ptr, error.id.len,
                              yard_cl_hash(self, error.id.ptr, error.id.len));
    if (!task) {
        yard_warn("client: broker refused a message: %.*s: %.*s",
                  (int)error.code.len, (const char *)error.code.ptr,
                  (int)error.message.len, (const char *)error.message.ptr);
        return;
    }
    char text[YARD_MAX_ERROR + 64];
    snprintf(text, sizeof(text), "%.*s%s%.*s", (int)error.code.len,
             (const char *)error.code.ptr,
             error.code.len && error.message.len ? ": " : "",
             (int)error.message.len, (const char *)error.message.ptr);
    yard_cl_answer_status(self, task, YARD_INVALID,
                          text[0] ? text : "refused by broker", false);
}

/*  Applies one received message. */
static void s_on_message(yard_client_t *self, yard_wire_msg_t *msg)
{
    /*  Any message at all is a sign of life. */
    self->broker_seen = true;
    self->last_recv_us = yard_clock_us();
    self->probe_us = 0;
    if (msg->header_err != 0 || msg->role != YARD_ROLE_BROKER) {
        yard_debug("client: ignoring a message with a bad header (%s)",
                   yard_strerror(msg->header_err));
        return;
    }
    switch (msg->cmd) {
    case YARD_CMD_RESULT:
        for (size_t i = 0; i < msg->nbodies; i++)
            s_on_result(self, &msg->bodies[i]);
        break;
    case YARD_CMD_ERROR:
        for (size_t i = 0; i < msg->nbodies; i++)
            s_on_error(self, &msg->bodies[i]);
        break;
    case YARD_CMD_PUBLISH_ACK:
        for (size_t i = 0; i < msg->nbodies; i++)
            yard_cl_on_publish_ack(self, &msg->bodies[i]);
        break;
    case YARD_CMD_HEARTBEAT:
        /*  The broker never heartbeats a client unprompted: this answers
            one of ours (yard_client_sync counts them). */
        self->hb_answers++;
        break;
    case YARD_CMD_DISCONNECT:
        /*  The broker forgot us (restart) or is leaving: start over with
            whatever is still in flight. It answers a heartbeat, too. */
        self->hb_answers++;
        if (self->in_flight)
            yard_cl_reconnect(self, "broker sent DISCONNECT");
        break;
    default:
        yard_debug("client: ignoring %s from broker", yard_cmd_name(msg->cmd));
        break;
    }
}

/*  Receives and applies what is readable, up to S_DRAIN_MAX messages.
    Returns how many were taken. */
static size_t s_drain(yard_client_t *self)
{
    size_t n = 0;
    while (n < S_DRAIN_MAX) {
        if (yard_wire_recv(self->socket, false, &self->msg, ZMQ_DONTWAIT) != 0)
            break;
        n++;
        s_on_message(self, &self->msg);
    }
    return n;
}

/*  Applies the DEALER's connection events. libzmq reconnects a dropped
    TCP link by itself, and whatever was in flight on it (our SUBMITs,
    the broker's RESULTs) is lost; after a broker restart the new broker
    even answers our heartbeats, so silence would never tell us. Hence:
    re-send everything in flight on every reconnect. The broker ignores a
    re-sent id it still holds, so this is safe. */
static void s_drain_monitor(yard_client_t *self)
{
    zmq_msg_t frame;
    while (self->monitor) {
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frame);
            return;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&frame) >= sizeof(event))
            memcpy(&event, zmq_msg_data(&frame), sizeof(event));
        bool more = zmq_msg_more(&frame);
        zmq_msg_close(&frame);
        while (more) { /*  the endpoint frame: not needed */
            zmq_msg_init(&frame);
            if (zmq_msg_recv(&frame, self->monitor, 0) < 0) {
                zmq_msg_close(&frame);
                return;
            }
            more = zmq_msg_more(&frame);
            zmq_msg_close(&frame);
        }
        if (event == ZMQ_EVENT_DISCONNECTED)
            self->link_lost = true;
        else if (event == ZMQ_EVENT_CONNECTED && self->link_lost) {
            self->link_lost = false;
            if (self->in_flight) {
                yard_info("client: reconnected to %s; re-sending %zu "
                          "task(s)",
                          self->endpoint, self->in_flight);
                yard_cl_resend_all(self);
            }
        }
    }
}

static void s_send_heartbeat(yard_client_t *self, int64_t now)
{
    if (yard_wire_send(self->socket, NULL, 0, YARD_ROLE_CLIENT,
                       YARD_CMD_HEARTBEAT, NULL, 0, ZMQ_DONTWAIT) != 0)
        yard_debug("client: HEARTBEAT not sent: %s", zmq_strerror(errno));
    self->last_hb_us = now;
    if (self->probe_us == 0)
        self->probe_us = now;
}

/*  Runs the timers that are due. Returns how many tasks were answered
    locally. */
static size_t s_timers(yard_client_t *self, int64_t now)
{
    size_t answered = 0;
    yard_heap_node_t *node;
    while ((node = yard_heap_peek(self->giveups)) && node->key <= now) {
        yard_cl_task_t *task =
            (yard_cl_task_t *)((char *)node - offsetof(yard_cl_task_t, giveup));
        if (yard_cl_answer_status(self, task, YARD_TIMEOUT,
                                  "no reply from broker", true) == 0)
            answered++;
        else
            yard_heap_update(self->giveups, node, now + S_RETRY_US);
    }
    if (self->in_flight == 0)
        return answered;
    int64_t silent = now - self->last_recv_us;
    if (silent >= YARD_CLIENT_DEAD_US && self->probe_us &&
        now - self->probe_us >= YARD_CLIENT_DEAD_US - YARD_CLIENT_HB_US)
        yard_cl_reconnect(self, "no word from broker for 3 heartbeats");
    else if (silent >= YARD_CLIENT_HB_US &&
             (self->probe_us == 0 ||
              now - self->last_hb_us >= YARD_CLIENT_HB_US))
        s_send_heartbeat(self, now);
    return answered;
}

/*  The monotonic time of the next timer, or -1 if none. */
static int64_t s_next_timer(const yard_client_t *self)
{
    int64_t next = -1;
    yard_heap_node_t *node = yard_heap_peek(self->giveups);
    if (node)
        next = node->key;
    if (self->in_flight) {
        int64_t t;
        if (self->probe_us == 0)
            t = self->last_recv_us + YARD_CLIENT_HB_US;
        else {
            t = self->last_hb_us + YARD_CLIENT_HB_US;
            int64_t dead = self->last_recv_us + YARD_CLIENT_DEAD_US;
            int64_t probe =
                self->probe_us + YARD_CLIENT_DEAD_US - YARD_CLIENT_HB_US;
            int64_t reconnect = dead > probe ? dead : probe;
            if (reconnect < t)
                t = reconnect;
        }
        if (next < 0 || t < next)
            next = t;
    }
    return next;
}

int yard_cl_pump(yard_client_t *self, int64_t deadline_us)
{
    /*  Anything already there first: a caller back from a long pause
        must see the broker's answers before judging it silent. */
    s_drain_monitor(self);
    size_t progress = s_drain(self);
    progress += s_timers(self, yard_clock_us());
    yard_cl_flush(self);
    if (progress)
        return 0;

    int64_t now = yard_clock_us();
    int64_t wake = s_next_timer(self);
    if (deadline_us >= 0 && (wake < 0 || deadline_us < wake))
        wake = deadline_us;
    long timeout = -1;
    if (wake >= 0) {
        /*  Round up, so we never wake a hair early and spin. */
        int64_t us = wake - now;
        timeout = us <= 0 ? 0 : (long)((us + 999) / 1000);
    }
    zmq_pollitem_t items[2] = {{self->socket, 0, ZMQ_POLLIN, 0},
                               {self->monitor, 0, ZMQ_POLLIN, 0}};
    if (self->unsent)
        items[0].events |= ZMQ_POLLOUT;
    if (zmq_poll(items, self->monitor ? 2 : 1, timeout) < 0) {
        if (errno == EINTR)
            return YARD_E_INTERRUPTED;
        yard_warn("client: zmq_poll failed: %s", zmq_strerror(errno));
        return YARD_E_IO;
    }
    if (items[1].revents & ZMQ_POLLIN)
        s_drain_monitor(self);
    if (items[0].revents & ZMQ_POLLIN)
        s_drain(self);
    s_timers(self, yard_clock_us());
    yard_cl_flush(self);
    return 0;
}
