/*  yard_worker.h — the Yard worker runtime: a C library to write a worker.

    A worker connects a DEALER to the broker, announces one service and a
    capacity (READY), runs a handler for every task the broker sends (TASK)
    and sends the results back (RESULT), batching what is ready into one
    message. The runtime does the rest of proto/PROTOCOL.md for you:
    heartbeats, reconnecting with backoff when the broker goes silent or
    says DISCONNECT, CANCEL, and a graceful drain on stop.

        static void echo(yard_job_t *job, void *arg)
        {
            yard_bytes_t p = yard_job_payload(job);
            yard_job_reply(job, p.ptr, p.len);
        }

        yard_worker_config_t cfg;
        yard_worker_config_defaults(&cfg);
        cfg.service = "echo";
        cfg.handler = echo;
        yard_worker_t *worker = yard_worker_new(&cfg);
        int rc = yard_worker_run(worker);   //  until yard_worker_stop()
        yard_worker_destroy(&worker);

    Threads. The thread that calls yard_worker_run is the I/O thread: it
    alone touches the ZeroMQ socket. Handlers run on a pool of handler
    threads (by default one per capacity slot), or inline on the I/O thread
    for handlers that are trivially fast (threads = 0), which is the
    fastest path there is: no thread hand-off, no allocation per task.

    A handler answers its job once, with yard_job_reply (status ok) or
    yard_job_fail (status error). If it returns without answering, the
    runtime answers for it: "cancelled" if the job was cancelled, else an
    error "handler returned no result". A yard_job_t is valid only during
    the handler call that received it.
*/
#ifndef YARD_WORKER_H
#define YARD_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yard_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Tunables and defaults ---------------------------------------------- */

#define YARD_WORKER_DEFAULT_BROKER "tcp://127.0.0.1:5555"
#define YARD_WORKER_DEFAULT_CAPACITY 8
#define YARD_WORKER_DEFAULT_GRACE_MS 10000
#define YARD_WORKER_RECONNECT_BASE_MS 100 /*  first reconnect delay */
#define YARD_WORKER_RECONNECT_MAX_MS 5000 /*  reconnect delay cap */
#define YARD_WORKER_MAX_THREADS 1024      /*  handler threads, at most */
#define YARD_WORKER_THREADS_PER_SLOT (-1) /*  one thread per capacity */
#define YARD_WORKER_THREADS_INLINE 0      /*  run on the I/O thread */

typedef struct _yard_worker_t yard_worker_t;
typedef struct _yard_job_t yard_job_t;

/*  A task handler. Runs on a handler thread (or the I/O thread in inline
    mode) and answers job with yard_job_reply or yard_job_fail. */
typedef void(yard_handler_fn)(yard_job_t *job, void *arg);

/*  One count of what a worker process holds, for its health report
    (cache entries, open files...): name 1..64 bytes of [A-Za-z0-9._:-]. */
typedef struct {
    const char *name;
    uint64_t value;
} yard_object_count_t;

/*  Fills up to max counts into out and returns how many. Called on the I/O
    thread about once a second, while handlers may be running: read shared
    state the thread-safe way. */
typedef size_t(yard_objects_cb)(yard_object_count_t *out, size_t max,
                                void *arg);

/*  Worker settings. Start from yard_worker_config_defaults(); strings are
    copied by yard_worker_new. */
typedef struct {
    const char *broker;       /*  endpoint to connect, default tcp://...:5555 */
    const char *service;      /*  service name, required ([A-Za-z0-9._:-]) */
    const char *name;         /*  human name for logs and stats; NULL gives
                                  "hostname-pid" */
    uint32_t capacity;        /*  tasks held at once, 1..YARD_MAX_CAPACITY */
    int threads;              /*  handler threads: -1 one per capacity slot
                                  (default, capped at YARD_WORKER_MAX_THREADS),
                                  0 inline on the I/O thread, N > 0 exactly N
                                  (at most capacity; jobs beyond N wait in a
                                  local queue, where CANCEL can take them) */
    yard_handler_fn *handler; /*  required */
    void *handler_arg;        /*  passed to every handler call */
    yard_handler_fn *fast;    /*  optional, with handler threads only: runs
                                  first, on the I/O thread, and may answer
                                  a job it can answer at once (it must not
                                  block); a job it leaves unanswered goes
                                  to the handler threads as usual */
    yard_objects_cb *objects; /*  optional: object counts for the health
                                  report every HEARTBEAT carries */
    void *objects_arg;        /*  passed to objects */
    uint32_t heartbeat_ms;    /*  heartbeat interval, default 1000 */
    uint32_t liveness;        /*  silent intervals before reconnect, def. 3 */
    uint32_t grace_ms;        /*  graceful stop budget, default 10000 */
    uint32_t reconnect_base_ms; /*  backoff base, default 100 */
    uint32_t reconnect_max_ms;  /*  backoff cap, default 5000 */
} yard_worker_config_t;

/*  What the worker has done so far; read at any time from any thread. */
typedef struct {
    uint64_t received;   /*  task bodies received */
    uint64_t ok;         /*  results sent with status ok */
    uint64_t failed;     /*  results sent with status error */
    uint64_t cancelled;  /*  results sent with status cancelled */
    uint64_t dropped;    /*  results not sent: their connection was
                             replaced, or the send failed */
    uint64_t reconnects; /*  connections replaced (silence, DISCONNECT) */
} yard_worker_stats_t;

/* ---- Worker ------------------------------------------------------------- */

/*  Fills cfg with the defaults above (service and handler left NULL). */
void yard_worker_config_defaults(yard_worker_config_t *cfg);

/*  Checks cfg; returns 0, or YARD_E_ARG with a reason in err (may be
    NULL) that names the bad field. */
int yard_worker_config_check(const yard_worker_config_t *cfg, char *err,
                             size_t errlen);

/*  Creates a worker from cfg (checked as above; a bad one is logged).
    Does not connect yet. NULL on a bad cfg or out of resources. */
yard_worker_t *yard_worker_new(const yard_worker_config_t *cfg);

/*  Connects and serves until stopped, then returns: 0 after a graceful
    stop, or a yard_err_t (YARD_E_ARG: the broker endpoint cannot be
    used; YARD_E_IO / YARD_E_NOMEM: out of resources). Blocks the calling
    thread, which becomes the I/O thread. Returns at once (0) if stop was
    already requested. Call it at most once at a time. Before it returns
    it joins the handler threads: a handler still running past the grace
    period sees yard_job_cancelled() and should return soon. */
int yard_worker_run(yard_worker_t *self);

/*  Asks yard_worker_run to stop gracefully: READY capacity 0, finish the
    jobs held (running and queued) and send their results for up to
    grace_ms, then DISCONNECT. A second call cuts the grace short (jobs
    still held are cancelled; the broker re-queues them). Thread-safe and
    async-signal-safe (it only writes to an eventfd), so a SIGTERM handler
    may call it. NULL is ignored. */
void yard_worker_stop(yard_worker_t *self);

/*  For a program that is one worker: makes SIGTERM and SIGINT call
    yard_worker_stop(self) (so a second signal cuts the grace short).
    NULL puts the default dispositions back; do that before destroying
    the worker, so a late signal cannot reach a freed one. */
void yard_worker_stop_on_signals(yard_worker_t *self);

/*  Copies the counters into out. Thread-safe. */
void yard_worker_stats(yard_worker_t *self, yard_worker_stats_t *out);

/*  Destroys the worker (not while yard_worker_run is running) and nulls
 *self_p. Idempotent. */
void yard_worker_destroy(yard_worker_t **self_p);

/* ---- Jobs (valid inside the handler call only) -------------------------- */

/*  The task's payload bytes (a view; not NUL-terminated). */
yard_bytes_t yard_job_payload(const yard_job_t *job);

/*  The client's task id, NUL-terminated (cut at an embedded NUL). */
const char *yard_job_id(const yard_job_t *job);

/*  The service the task was sent to, NUL-terminated. */
const char *yard_job_service(const yard_job_t *job);

/*  The broker's handle for this dispatch (unique per dispatch). */
uint64_t yard_job_handle(const yard_job_t *job);

/*  Which dispatch this is: 1 on the first, 2 on the first retry... */
uint32_t yard_job_attempt(const yard_job_t *job);

/*  Milliseconds left before the task's deadline, 0 once it has passed. */
int64_t yard_job_remaining_ms(const yard_job_t *job);

/*  Looks up header key (exact, case-sensitive). Returns true and sets
 *value / *vlen (a view, not NUL-terminated) when present. */
bool yard_job_header(const yard_job_t *job, const char *key, const char **value,
                     size_t *vlen);

/*  Calls fn for every header entry, as yard_headers_each. */
int yard_job_headers_each(const yard_job_t *job, yard_headers_fn *fn,
                          void *arg);

/*  True once the broker has cancelled the job (client cancel, deadline,
    worker stopping past its grace). Cheap (one atomic load): poll it in
    long handlers and return early; the runtime answers "cancelled". */
bool yard_job_cancelled(const yard_job_t *job);

/*  Answers the job with status ok and len bytes of data (copied; len <=
    YARD_MAX_PAYLOAD). Returns 0; YARD_E_TOO_LARGE (the job is then
    answered with an error naming the size); YARD_E_ARG if it was already
    answered (the first answer stands). */
int yard_job_reply(yard_job_t *job, const void *data, size_t len);

/*  Publishes an event on the broker's event bus (PROTOCOL.md 5.11), fire
    and forget: type is a dotted name, payload one encoded msgpack value (or
    NULL, 0 for none), source defaults to the worker's name. Safe from any
    thread, handlers included; the I/O thread sends queued events in
    batches. YARD_E_ARG / YARD_E_RANGE / YARD_E_TOO_LARGE for an event the
    broker would refuse, YARD_E_LIMIT when YARD_WORKER_MAX_EVENTS are
    already waiting (the broker is unreachable). */
#define YARD_WORKER_MAX_EVENTS 10000
int yard_worker_publish(yard_worker_t *self, const char *type,
                        const void *payload, size_t len);

/*  yard_worker_publish from inside a handler. */
int yard_job_publish(yard_job_t *job, const char *type, const void *payload,
                     size_t len);

/*  Answers "invalid": the request itself is bad (unparsable, out of
    range), so retrying or counting it against the service's circuit
    breaker would be wrong. printf-style reason, as yard_job_fail. */
int yard_job_reject(yard_job_t *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*  Answers the job with status error and a printf-formatted message (cut
    to YARD_MAX_ERROR bytes). Returns 0 or YARD_E_ARG if already answered. */
int yard_job_fail(yard_job_t *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
