/*  yard_sub.h — event subscriber: receive the events published on a Yard
    broker (proto/PROTOCOL.md 5.11 and 8.7) from its events endpoint.

    A yard_subscriber_t owns one ZeroMQ DEALER (and its own context),
    connected to the broker's events ROUTER; it is not a client and shares
    nothing with yard_client_t. Like the client it never starts a thread:
    all network work (receiving, liveness, re-subscribing) happens inside
    the calls, and it belongs to one thread at a time.

    Model:
      * yard_subscriber_new sends SUBSCRIBE with the type prefixes and
        returns once the broker acknowledged it (HEARTBEAT): every event
        published after that reaches this subscriber (or is counted as
        missed).
      * The broker sends events batched (up to 128 per message); they are
        copied and buffered, and next hands them out one at a time. Only
        one message is read ahead, so a slow reader pushes back on the
        broker, which drops (and numbers) what does not fit: see
        yard_subscriber_missed.
      * Liveness: the broker heartbeats an idle subscriber every interval.
        After 2 intervals without a word the subscriber probes with a
        HEARTBEAT; after YARD_HEARTBEAT_LIVENESS intervals it reconnects
        (new socket, same routing id) and sends SUBSCRIBE again. A
        DISCONNECT from the broker (it restarted and forgot us) re-sends
        SUBSCRIBE at once. Either way the delivery numbers are allowed to
        start over, so a restarted broker's sn 1 is not taken for a gap.

    Errors are negative yard_err_t values (yard_strerror). Timeouts are in
    milliseconds: -1 waits without limit, 0 only looks at what has
    already arrived.

    Typical use:

        const char *types[] = {"task.", "worker."};
        int err;
        yard_subscriber_t *sub =
            yard_subscriber_new("tcp://127.0.0.1:5556", types, 2, 5000, &err);
        yard_sub_event_t *ev;
        while (sub && yard_subscriber_next(sub, -1, &ev) == 0) {
            printf("%s from %s\n", ev->type, ev->source);
            yard_sub_event_destroy(&ev);
        }
        yard_subscriber_destroy(&sub);
*/
#ifndef YARD_SUB_H
#define YARD_SUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yard_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/*  yard_subscriber_destroy waits at most this long for its DISCONNECT to
    leave. */
#define YARD_SUB_LINGER_MS 100

typedef struct _yard_subscriber_t yard_subscriber_t;

/*  What a filter sees: the decoded event, as views into the received
    frame (valid during the call only). sn is set; seq and ack are not. */
typedef yard_event_t yard_event_view_t;

/*  A client-side filter: return true to keep the event. */
typedef bool(yard_sub_filter_fn)(const yard_event_view_t *ev, void *arg);

/*  One received event, owned by the caller. Made in a single allocation;
    free it with yard_sub_event_destroy (and only that). */
typedef struct {
    char *type;         /*  NUL-terminated, never NULL                     */
    char *source;       /*  NUL-terminated, "" when absent                 */
    char *trace_id;     /*  NUL-terminated, "" when absent                 */
    uint64_t ts_us;     /*  wall clock, us since the Unix epoch            */
    uint64_t sn;        /*  this subscriber's delivery number              */
    uint8_t *payload;   /*  one raw msgpack value; NULL when absent        */
    size_t payload_len; /*  its bytes; 0 when absent                       */
    uint8_t *meta;      /*  raw msgpack map str -> str (walk it with
                            yard_headers_each); NULL when empty            */
    size_t meta_len;    /*  its bytes                                      */
} yard_sub_event_t;

/*  Frees an event and nulls *ev_p. Idempotent. */
void yard_sub_event_destroy(yard_sub_event_t **ev_p);

/*  Connects to the broker's events endpoint, subscribes to the events
    whose type starts with one of types[0..ntypes) (ntypes 0, or an empty
    prefix: every event; at most YARD_MAX_TYPES prefixes of 0..128 bytes
    of [A-Za-z0-9._:-]) and waits up to timeout_ms for the broker's
    acknowledgement. On failure returns NULL and, when err is not NULL,
    sets *err: YARD_E_ARG (bad arguments or prefixes), YARD_E_TIMEOUT (no
    acknowledgement in time: no broker there?), YARD_E_LIMIT (the broker
    has as many subscribers as it allows), the error another ERROR code
    maps to, YARD_E_IO (the endpoint: errno from zmq_connect),
    YARD_E_NOMEM, YARD_E_INTERRUPTED. *err is 0 on success. */
yard_subscriber_t *yard_subscriber_new(const char *events_endpoint,
                                       const char *const *types, size_t ntypes,
                                       int timeout_ms, int *err);

/*  Sends DISCONNECT, closes the socket (waiting at most
    YARD_SUB_LINGER_MS for the DISCONNECT to leave), frees every buffered
    event and nulls *self_p. Idempotent. */
void yard_subscriber_destroy(yard_subscriber_t **self_p);

/*  Replaces the subscription's prefixes (as for new) and waits up to
    timeout_ms for the acknowledgement. Buffered events that match none of
    the new prefixes are dropped. Errors as for new; after an error the
    broker may or may not have taken the new set (the next re-subscribe
    sends the new one). */
int yard_subscriber_set_types(yard_subscriber_t *self, const char *const *types,
                              size_t ntypes, int timeout_ms);

/*  Sets (fn) or clears (NULL) a client-side filter, called once per
    received event before it is buffered; events it rejects are skipped
    (they still count for sn, so they are not "missed"). Already buffered
    events are filtered at once. */
void yard_subscriber_set_filter(yard_subscriber_t *self, yard_sub_filter_fn *fn,
                                void *arg);

/*  Takes the next event, waiting up to timeout_ms. 0 and *ev set (the
    caller destroys it); YARD_E_TIMEOUT when none came in time;
    YARD_E_LIMIT (or another mapped error) once, when the broker refused a
    re-subscription; YARD_E_INTERRUPTED when a signal broke the wait;
    YARD_E_IO. */
int yard_subscriber_next(yard_subscriber_t *self, int timeout_ms,
                         yard_sub_event_t **ev);

/*  Takes the next event whose type starts with one of types[0..n) (n 0:
    any), waiting up to timeout_ms in all. Events of other types that
    arrive meanwhile are DISCARDED (not kept for a later call): use it to
    wait for one kind of event, not to read a stream. Returns as next. */
int yard_subscriber_wait(yard_subscriber_t *self, const char *const *types,
                         size_t n, int timeout_ms, yard_sub_event_t **ev);

/*  Events the broker meant for this subscriber that never arrived, from
    the gaps in their delivery numbers (sn) so far. */
uint64_t yard_subscriber_missed(const yard_subscriber_t *self);

/*  Times this subscriber sent SUBSCRIBE again after silence or a
    DISCONNECT from the broker. */
uint64_t yard_subscriber_resubscribes(const yard_subscriber_t *self);

#ifdef __cplusplus
}
#endif

#endif
