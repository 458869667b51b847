/*  yard_client.h — the C client library: submit tasks to a Yard broker and
    collect their results.

    A yard_client_t owns one ZeroMQ DEALER socket (and its own context) and,
    like a ZeroMQ socket, belongs to one thread at a time. It never starts a
    thread: all network work (receiving results, heartbeats, re-sends,
    reconnects, local give-ups) happens inside the calls that wait, so a
    program that submits and then waits is all the client needs.

    Model:
      * submit / submit_batch send at once and return the task ids; the
        library keeps every task it has not had an answer for ("in flight"),
        with its encoded SUBMIT body, so it can re-send them after a
        reconnect (proto/PROTOCOL.md 8.3).
      * Results arrive batched; they wait in a FIFO until a wait call hands
        them out. wait takes the oldest, wait_id a given task's (results for
        other tasks that arrive meanwhile stay buffered for later waits).
      * Every task gets exactly one reply: the broker's, or one the library
        makes itself (reply->local) when it gives up on the broker at the
        task's timeout + YARD_CLIENT_GIVEUP_MS.
      * Events (proto/PROTOCOL.md 5.11) are published through the same
        socket: yard_client_publish (fire-and-forget) and
        yard_client_publish_confirmed (waits for the broker's PUBLISH_ACK).
        Receiving events is the subscriber's job (yard_sub.h).

    Errors are values: functions return 0 or a negative yard_err_t (see
    yard_strerror in proto/yard_proto.h); task outcomes are yard_status_t
    values in yard_reply_t. Timeouts given to wait calls are in
    milliseconds: -1 waits without limit (a reply always comes, at worst the
    local give-up), 0 only looks at what has already arrived.

    Typical use:

        yard_client_t *client = yard_client_new("tcp://127.0.0.1:5555");
        yard_reply_t *reply;
        if (yard_client_call(client, "echo", "hi", 2, NULL, &reply) == 0) {
            if (reply->status == YARD_OK)
                fwrite(reply->payload, 1, reply->payload_len, stdout);
            yard_reply_destroy(&reply);
        }
        yard_client_destroy(&client);
*/
#ifndef YARD_CLIENT_H
#define YARD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yard_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/*  Size of a buffer that holds any task id and its NUL. */
#define YARD_CLIENT_ID_MAX (YARD_MAX_ID + 1)

/*  The library answers a task itself ("timeout", error "no reply from
    broker") this long after the task's own timeout has passed without a
    reply, so a dead broker never hangs a caller. */
#define YARD_CLIENT_GIVEUP_MS 2000

/*  yard_client_destroy waits at most this long for queued messages. */
#define YARD_CLIENT_LINGER_MS 100

typedef struct _yard_client_t yard_client_t;

/*  A response-cache policy (PROTOCOL.md 10b): the task's successful
    result is stored in yard.cache and an identical later task is answered
    from it (reply->cached) without running. Every list is NULL or
    NULL-terminated. A zero-initialised policy caches the whole payload
    with the cache's default TTL. */
typedef struct {
    uint32_t ttl_ms;            /*  0..86400000; 0: the cache's default   */
    const char *const *tags;    /*  0..16 tags, for invalidate_tags       */
    const char *const *key;     /*  only these payload fields make up the
                                    key (the payload is a msgpack map)    */
    const char *const *exclude; /*  or every field but these (not with key)*/
    const char *const *headers; /*  header names whose values count too   */
} yard_cache_opts_t;

/*  yard_submit_opts_t.backoff_ms asking for retries without delay (an
    explicit backoff_ms 0 on the wire), since 0 there means the default. */
#define YARD_BACKOFF_NONE UINT32_MAX

/*  Options of a submission. A NULL pointer or a zero-initialised struct
    means the protocol defaults (proto/yard_proto.h YARD_DEFAULT_*). */
typedef struct {
    const char *id;      /*  task id, 1..YARD_MAX_ID bytes; NULL: the library
                             makes one unique to this client. Must be NULL
                             for submit_batch and map (one id per task). */
    uint32_t timeout_ms; /*  whole-task deadline; 0: 30000                */
    uint32_t retries;    /*  extra attempts after a handler error; 0..16  */
    uint32_t backoff_ms; /*  base retry delay; 0: the default (100);
                             YARD_BACKOFF_NONE: retry without delay     */
    uint8_t priority;    /*  0..9, 9 is served first                     */
    const char *const *headers;     /*  NULL, or NULL-terminated "key", "value",
                                        ... pairs (trace ids, metadata)       */
    const yard_cache_opts_t *cache; /*  NULL: not cached                  */
} yard_submit_opts_t;

/*  One task's outcome. Made by the library in a single allocation; free
    it with yard_reply_destroy (and only that). */
typedef struct {
    char *id;                /*  the task id (NUL-terminated)               */
    yard_status_t status;    /*  YARD_OK, YARD_ERROR, YARD_TIMEOUT, ...     */
    uint8_t *payload;        /*  result bytes; never NULL, and NUL-terminated
                                 past payload_len for convenience          */
    size_t payload_len;      /*  bytes in payload                           */
    char *error;             /*  error text (NUL-terminated), NULL if none  */
    bool cached;             /*  answered from the broker's response cache  */
    bool local;              /*  made by this library, not the broker: local
                                 give-up, cancel before sending, or a payload
                                 the encoder refused in map               */
    uint32_t attempts;       /*  dispatches the broker made                 */
    uint64_t queue_us;       /*  broker: time spent queued                  */
    uint64_t run_us;         /*  broker: time spent in the worker           */
    uint64_t total_us;       /*  broker: accept to reply                    */
    uint64_t latency_us;     /*  client: submit call to reply received      */
    uint32_t retry_after_ms; /* broker hint for rejected / circuit_open   */
} yard_reply_t;

/*  Frees a reply and nulls *reply_p. Idempotent. */
void yard_reply_destroy(yard_reply_t **reply_p);

/*  Creates a client connected (asynchronously, as ZeroMQ does) to the
    broker's task endpoint, with a fresh random routing id it keeps across
    reconnects. NULL on a bad endpoint (errno from zmq_connect) or when
    out of memory. */
yard_client_t *yard_client_new(const char *endpoint);

/*  Closes the socket, drops every outstanding task and buffered reply,
    and nulls *self_p. Waits at most YARD_CLIENT_LINGER_MS for messages
    already handed to the socket (a last CANCEL) to leave. Idempotent. */
void yard_client_destroy(yard_client_t **self_p);

/*  Submits one task and sends it at once (or as soon as the socket takes
    it). Copies the task id, NUL-terminated, into id_out when that is not
    NULL (id_cap >= YARD_CLIENT_ID_MAX always suffices). YARD_E_ARG for bad
    arguments, an option out of range (priority 10, say) or an id this
    client already has in flight; YARD_E_TOO_LARGE for a payload, headers
    or cache policy over the protocol's limits. Nothing is sent on
    error. */
int yard_client_submit(yard_client_t *self, const char *service,
                       const void *payload, size_t len,
                       const yard_submit_opts_t *opts, char *id_out,
                       size_t id_cap);

/*  Submits n tasks with the same options (opts->id must be NULL), in
    SUBMIT messages of up to YARD_MAX_BATCH bodies. All or nothing: on
    error no task is kept. When ids_out is not NULL it must hold n
    pointers and receives n malloc'd ids the caller frees. */
int yard_client_submit_batch(yard_client_t *self, const char *service,
                             const yard_frame_t *payloads, size_t n,
                             const yard_submit_opts_t *opts, char **ids_out);

/*  Takes the oldest reply for any outstanding task, waiting up to
    timeout_ms. YARD_E_TIMEOUT if none came in time, YARD_E_NOTFOUND if
    there is nothing to wait for, YARD_E_INTERRUPTED if a signal broke the
    wait. */
int yard_client_wait(yard_client_t *self, int timeout_ms, yard_reply_t **reply);

/*  Takes the reply for task id, waiting up to timeout_ms; replies for other
    tasks arriving meanwhile stay buffered. YARD_E_NOTFOUND if id is neither
    in flight nor answered-and-buffered. */
int yard_client_wait_id(yard_client_t *self, const char *id, int timeout_ms,
                        yard_reply_t **reply);

/*  Waits up to timeout_ms (in all) for the replies of n tasks: replies[i]
    answers ids[i]. On return replies[i] is set for every task answered and
    NULL for the rest (which stay in flight); the caller destroys what it
    got. 0 when all came, YARD_E_TIMEOUT when some did not, YARD_E_NOTFOUND
    (nothing taken) when an id is unknown. */
int yard_client_wait_all(yard_client_t *self, const char *const *ids, size_t n,
                         int timeout_ms, yard_reply_t **replies);

/*  Submits one task and waits for its reply, which always comes (at the
    latest the local give-up at timeout + YARD_CLIENT_GIVEUP_MS). Returns
    what submit returns, or YARD_E_INTERRUPTED. */
int yard_client_call(yard_client_t *self, const char *service,
                     const void *payload, size_t len,
                     const yard_submit_opts_t *opts, yard_reply_t **reply);

/*  Called by map once per task, in completion order, with the task's index
    in payloads. The callback owns reply. It may submit, wait for and cancel
    other tasks on this client, but not start another map. Returning
    non-zero stops the map. */
typedef int(yard_client_map_fn)(size_t index, yard_reply_t *reply, void *arg);

/*  Runs n tasks (opts->id must be NULL) keeping at most `window` of them in
    flight (window 0: YARD_MAX_BATCH), refilling in batches as replies
    arrive, and calls fn for every reply. A payload the encoder refuses
    becomes a local "invalid" reply instead of failing the run. Returns 0
    when fn has seen all n; otherwise fn's non-zero value, or a
    yard_err_t, after cancelling the map's tasks still in flight. Replies of
    tasks submitted outside the map stay buffered. */
int yard_client_map(yard_client_t *self, const char *service,
                    const yard_frame_t *payloads, size_t n, size_t window,
                    const yard_submit_opts_t *opts, yard_client_map_fn *fn,
                    void *arg);

/*  Asks the broker to cancel task id; its reply (status "cancelled", or
    the result if it finished first) still comes through a wait call. A
    task not yet handed to the socket is answered "cancelled" at once.
    YARD_E_NOTFOUND if id is not in flight; YARD_E_IO if the socket would
    not take the CANCEL now. */
int yard_client_cancel(yard_client_t *self, const char *id);

/*  Tasks submitted whose reply a wait call has not handed out yet (in
    flight plus buffered). */
size_t yard_client_outstanding(const yard_client_t *self);

/*  True once any message from the broker has reached this client: tells
    "broker unreachable" from "broker slow". */
bool yard_client_broker_seen(const yard_client_t *self);

/*  Asks the broker for its metrics (service yard.admin, payload "stats")
    and returns its JSON text in *json_out (malloc'd, caller frees). Waits
    up to timeout_ms (> 0). YARD_E_TIMEOUT when no answer came in time (the
    request is then abandoned), YARD_E_IO when the broker answered with a
    status other than ok. */
int yard_client_stats_json(yard_client_t *self, int timeout_ms,
                           char **json_out);

/*  The same for any admin command ("ping 500", "breaker list", ...):
    its JSON answer in *json_out. YARD_E_IO also when the broker refused
    the command (invalid). */
int yard_client_admin_json(yard_client_t *self, const char *command,
                           int timeout_ms, char **json_out);

/* ---- Events (proto/PROTOCOL.md 5.11; yard_client_events.c) ------------ */

/*  Options of a published event. A NULL pointer or a zero-initialised
    struct means: no source, no trace id, no meta, broker-stamped time. */
typedef struct {
    const char *source;      /*  who publishes, 0..128 bytes; NULL: none      */
    const char *trace_id;    /*  correlation id, 0..128 bytes; NULL: none     */
    const char *const *meta; /*  NULL, or NULL-terminated "key", "value", ...
                                 pairs (the headers rules: at most 32, key
                                 1..64 bytes, value 0..1024 bytes)         */
    uint64_t ts_us;          /*  wall clock, us since the epoch; 0: the broker
                                 stamps the time it took the event             */
} yard_publish_opts_t;

/*  Publishes one event on the task endpoint, fire-and-forget: nothing
    comes back, and an event the broker refuses is only logged there
    (ERROR to this client, which the library logs). type is 1..128 bytes
    of [A-Za-z0-9._:-]; payload is ONE encoded msgpack value of any type
    (at most YARD_MAX_EVENT_PAYLOAD bytes; see yard_msgpack_str) or
    NULL/0 for none. Returns 0 once the socket took the message (see
    yard_client_sync to know the broker has it), YARD_E_ARG for a bad
    type, bad options or NULL payload with len > 0, YARD_E_MALFORMED /
    YARD_E_TOO_LARGE for a payload that is not one msgpack value within
    the limits (the encoder's error otherwise), YARD_E_IO if the socket
    would not take it now. Nothing is sent on error. */
int yard_client_publish(yard_client_t *self, const char *type,
                        const void *payload, size_t len,
                        const yard_publish_opts_t *opts);

/*  Publishes one event asking for a PUBLISH_ACK (a fresh seq), and waits
    up to timeout_ms (-1: no limit) for it, doing the client's other work
    meanwhile (results, heartbeats, re-sends), as the wait calls do.
    Returns 0 when the broker accepted and fanned it out; YARD_E_TIMEOUT
    when no ack came in time (the event may still have been published: a
    late ack is ignored); for an ack with status "invalid", the error the
    broker's code maps to (malformed: YARD_E_MALFORMED, too_large:
    YARD_E_TOO_LARGE, bad_field: YARD_E_RANGE, limit: YARD_E_LIMIT, ...;
    another status: YARD_E_IO), with the broker's text in
    yard_client_last_error. Local refusals as yard_client_publish. */
int yard_client_publish_confirmed(yard_client_t *self, const char *type,
                                  const void *payload, size_t len,
                                  const yard_publish_opts_t *opts,
                                  int timeout_ms);

/*  The broker's reason when it refused the last confirmed publish (its
    PUBLISH_ACK error text, e.g. "bad_field: PUBLISH body 0: ..."); ""
    when the last one did not end in a refusal (success, local error,
    timeout) or before any. Non-empty exactly when the broker said no.
    Valid until the next yard_client_publish_confirmed. */
const char *yard_client_last_error(const yard_client_t *self);

/*  Round trip with the broker: sends HEARTBEAT and waits up to timeout_ms
    (-1: no limit) for its answer. The broker handles one connection's
    messages in order, so 0 means everything this client sent before
    (fire-and-forget events included) has reached the broker.
    YARD_E_TIMEOUT when no answer came, YARD_E_IO when the socket would
    not take the HEARTBEAT, YARD_E_INTERRUPTED on a signal. */
int yard_client_sync(yard_client_t *self, int timeout_ms);

/*  Encodes text[0..len) as one msgpack str (the shortest form) into
    out[0..cap), for a payload from text. Returns the encoded size; when
    that exceeds cap nothing is written (call again with a buffer that
    large), like snprintf. At most len + 5. */
size_t yard_msgpack_str(void *out, size_t cap, const char *text, size_t len);

#ifdef __cplusplus
}
#endif

#endif
