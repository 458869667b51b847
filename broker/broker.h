/*  broker.h — yard-broker's internal types, shared by its files.

    The broker is one event loop over one ROUTER socket (clients and workers
    alike; the header frame says which) plus a signalfd. It owns four kinds
    of object, each in its own file:

        broker_task_t     a task from SUBMIT until it is answered  (task.c)
        broker_service_t  per-service queues, workers, metrics      (service.c)
        broker_worker_t   a registered worker and what it holds     (worker.c)
        broker_client_t   a client identity and its reply outbox    (client.c)

    and broker.c ties them together: the loop, message handling, dispatch,
    timers and shutdown. Indexes are yard_map_t tables keyed by seeded
    xxHash of the routing id (and task id), so a peer cannot aim collisions
    at them. Every timer is on the monotonic clock. Nothing here blocks.
*/
#ifndef YARD_BROKER_H
#define YARD_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "yard_breaker.h"
#include "yard_heap.h"
#include "yard_hist.h"
#include "yard_map.h"
#include "yard_proc.h"
#include "yard_proto.h"
#include "yard_rand.h"

/* ---- Tunables ------------------------------------------------------------ */

#define BROKER_DEFAULT_ENDPOINT "tcp://127.0.0.1:5555"
#define BROKER_DEFAULT_EVENTS "tcp://127.0.0.1:5556"
#define BROKER_DEFAULT_MAX_QUEUE 100000u /*  waiting tasks per service     */
#define BROKER_DEFAULT_GRACE_MS 10000u   /*  SIGTERM drain budget          */
#define BROKER_MAX_LOSSES 3       /*  worker losses before a task fails    */
#define BROKER_RETRY_CAP_MS 30000 /*  longest retry backoff                 */
#define BROKER_RETRY_JITTER 0.2   /*  +-20% on retry backoff                */
#define BROKER_RECV_BURST                                                      \
    1024 /*  messages read per loop turn before                                \
             timers and dispatch get their turn   */
#define BROKER_CLIENT_IDLE_MS                                                  \
    60000                           /*  forget a client idle this long with    \
                                        nothing outstanding                */
#define BROKER_REJECT_RETRY_MS 1000 /*  retry_after_ms hint on queue full  */
#define BROKER_PRIORITIES (YARD_MAX_PRIORITY + 1)
#define BROKER_DEFAULT_MAX_SUBSCRIBERS 256 /*  event subscribers at once   */
/*  PUBLISH messages queued per event subscriber before its events are
    dropped (each at most 128 events / 64 KiB). */
#define BROKER_EVENTS_HWM 128
#define BROKER_MAX_EVENT_TYPES 1024 /*  distinct types counted apart     */
#define BROKER_PING_DEFAULT_MS 1000 /*  admin "ping": default wait       */
#define BROKER_PING_MAX_MS 10000    /*  ... and the longest              */
#define BROKER_PING_MAX_WAITERS 64  /*  ping requests waiting at once    */

/* ---- Types ----------------------------------------------------------------
 */

typedef struct broker_task broker_task_t;
typedef struct broker_service broker_service_t;
typedef struct broker_worker broker_worker_t;
typedef struct broker_client broker_client_t;
typedef struct broker_sub broker_sub_t; /*  an event subscriber (events.c) */
typedef struct broker_flight broker_flight_t; /*  one cache key (cache.c)  */
typedef struct broker_ping broker_ping_t;     /*  a ping request (probe.c) */

/*  A worker's last health report (PROTOCOL.md 8.8), copied out of its
    HEARTBEAT: numbers as sent, strings bounded. */
typedef struct {
    yard_report_t r;               /*  numbers; views cleared      */
    char version[YARD_MAX_ID + 1]; /*  r.version, NUL-terminated   */
    size_t nobjects;               /*  entries in objects          */
    struct {
        char name[YARD_MAX_OBJECT_NAME + 1];
        uint64_t value;
    } objects[YARD_MAX_OBJECTS];
    int64_t at_us; /*  when it arrived (monotonic) */
} broker_report_t;

/*  Event counters, per type and in total. */
typedef struct {
    uint64_t published; /*  events accepted                               */
    uint64_t delivered; /*  copies handed to subscribers                  */
    uint64_t dropped;   /*  copies a slow or gone subscriber did not get  */
} broker_event_counters_t;

typedef struct {
    char name[YARD_MAX_SERVICE + 1]; /*  the type, NUL-terminated          */
    size_t len;
    broker_event_counters_t c;
} broker_evtype_t;
typedef struct broker broker_t;

/*  Where a task is in its life. */
typedef enum {
    TASK_QUEUED,   /*  in its service's priority queue                    */
    TASK_DELAYED,  /*  waiting out a retry backoff (timer holds ready_at) */
    TASK_INFLIGHT, /*  held by a worker                                   */
    TASK_ORPHAN,   /*  answered (timeout/cancel) but a worker still holds
                       it: kept only so its slot is freed when the worker
                       reports, and so it is not counted twice            */
    TASK_PARKED,   /*  waiting for a response-cache lookup, or for the
                       identical task ahead of it (cache.c)               */
} broker_task_state_t;

struct broker_task {
    yard_heap_node_t timer;       /*  deadline, or retry ready time if sooner */
    broker_task_t *prev, *next;   /*  links in a service queue                */
    broker_task_t *wprev, *wnext; /*  links in the holding worker's list    */
    broker_client_t *client;      /*  who submitted it (NULL once orphaned)   */
    broker_service_t *service; /*  its service                              */
    broker_worker_t *worker;   /*  holder while in flight / orphaned       */
    uint64_t job;              /*  dispatch handle, 0 when not dispatched  */
    uint64_t id_hash;          /*  hash of (client identity, id)           */
    int64_t accepted_us;       /*  when the broker took it                 */
    int64_t deadline_us;       /*  accepted_us + timeout                   */
    int64_t ready_us;          /*  TASK_DELAYED: when it may run again     */
    int64_t dispatched_us;     /*  when the current attempt was sent       */
    uint64_t queue_us;         /*  total time spent queued, all attempts   */
    uint32_t backoff_ms;       /*  retry base delay                        */
    uint8_t retries;           /*  retries allowed (0..16)                 */
    uint8_t attempts;          /*  dispatches made                         */
    uint8_t losses;            /*  times its worker was lost               */
    uint8_t priority;          /*  0..9                                    */
    uint8_t state;             /*  broker_task_state_t                     */
    uint8_t id_len;            /*  bytes of id (1..128)                    */
    uint32_t payload_len;      /*  bytes of payload                        */
    uint32_t headers_len;      /*  bytes of raw msgpack headers map        */
    uint8_t fallback_len;      /*  bytes of fallback service name, 0 = none */
    uint64_t breaker_gen;      /*  breaker generation it was admitted in   */
    broker_flight_t *flight;   /*  its cache key's flight, or NULL         */
    uint8_t data[]; /*  id, payload, headers, fallback, back to back       */
};

/*  Counters per service (and in total). */
typedef struct {
    uint64_t submitted;    /*  tasks accepted into the service                */
    uint64_t completed;    /*  answered ok                                    */
    uint64_t failed;       /*  answered error after retries                   */
    uint64_t timed_out;    /*  answered timeout                               */
    uint64_t rejected;     /*  answered rejected (queue full)                 */
    uint64_t retried;      /*  re-queued after an error                       */
    uint64_t cancelled;    /*  answered cancelled                             */
    uint64_t lost;         /*  re-dispatches caused by a lost worker          */
    uint64_t shutdown;     /*  answered shutdown                              */
    uint64_t circuit_open; /*  answered circuit_open (breaker refused)     */
    uint64_t fallback;     /*  handed to their fallback service (and counted
                               as submitted there)                        */
    uint64_t cache_hits;   /*  answered from the response cache           */
    uint64_t cache_misses; /*  looked up and not found: ran               */
    uint64_t coalesced;    /*  answered with an identical task's result   */
} broker_counters_t;

struct broker_service {
    char name[YARD_MAX_SERVICE + 1]; /*  NUL-terminated service name      */
    size_t name_len;                 /*  its length                        */
    uint64_t hash;                   /*  hash of the name                  */
    broker_task_t *head[BROKER_PRIORITIES]; /*  FIFO per priority          */
    broker_task_t *tail[BROKER_PRIORITIES];
    size_t queued;             /*  tasks in the queues                       */
    size_t delayed;            /*  tasks waiting out a retry backoff         */
    size_t parked;             /*  tasks waiting for the response cache      */
    size_t in_flight;          /*  tasks held by workers (not orphans)       */
    broker_worker_t **workers; /*  registered workers of this service        */
    size_t nworkers;           /*  how many                                  */
    size_t workers_cap;        /*  allocated slots                           */
    size_t spare;              /*  sum of spare capacity over its workers    */
    bool dispatch_pending;     /*  on the broker's dispatch list             */
    broker_service_t *next_dispatch; /*  dispatch list link                  */
    broker_counters_t counters;      /*  its metrics                         */
    yard_hist_t latency;             /*  submit-to-reply of ok tasks, in us  */
    yard_breaker_t breaker;          /*  its circuit breaker                 */
    yard_breaker_config_t breaker_own; /*  settings set for this service     */
    uint32_t breaker_mask; /*  which of breaker_own's settings are set (bit
                               per YARD_BREAKER key); the rest follow the
                               broker's defaults                         */
};

struct broker_worker {
    uint8_t identity[255];     /*  ROUTER routing id                        */
    size_t identity_len;       /*  its length                               */
    uint64_t hash;             /*  hash of the identity                     */
    broker_service_t *service; /*  the service it serves                    */
    char name[64];             /*  human name from READY, may be empty      */
    uint32_t pid;              /*  pid from READY, 0 if not given           */
    uint32_t capacity;         /*  tasks it may hold (0 = draining)         */
    uint32_t in_flight;        /*  tasks it holds, orphans included         */
    int64_t last_seen_us;      /*  last message from it                     */
    int64_t last_sent_us;      /*  last message to it                       */
    broker_task_t *tasks;      /*  list of tasks it holds (wnext links)     */
    uint64_t done;             /*  results received from it                 */
    broker_report_t *report;   /*  last health report, NULL before one      */
    uint64_t probe_sent;       /*  last probe sent to it, 0 = none          */
    int64_t probe_sent_us;     /*  when                                     */
    uint64_t probe_answered;   /*  last probe it answered                   */
    uint64_t ping_rtt_us;      /*  round trip of that answer                */
    int64_t pong_at_us;        /*  when it came, 0 = never                  */
};

struct broker_client {
    uint8_t identity[255];  /*  ROUTER routing id                          */
    size_t identity_len;    /*  its length                                 */
    uint64_t hash;          /*  hash of the identity                       */
    size_t tasks;           /*  tasks of this client not yet answered      */
    int64_t last_seen_us;   /*  last message from it                       */
    msgpack_sbuffer outbox; /*  encoded RESULT bodies waiting to be sent   */
    size_t out_count;       /*  bodies in the outbox                       */
    size_t out_ends[YARD_MAX_BATCH]; /*  end offset of each body            */
    broker_client_t *next_dirty;     /*  link in the flush list             */
    bool dirty;                      /*  on the flush list                  */
    bool fresh;    /*  created by the message being handled: a HEARTBEAT from
                       a client we never saw means we restarted under it     */
    bool internal; /*  the broker itself (response-cache requests)      */
};

/*  Settings, resolved from flags > environment > defaults by main. */
typedef struct {
    const char *endpoint;  /*  ROUTER bind endpoint                         */
    const char *events;    /*  XPUB bind endpoint (event bus issue)         */
    uint32_t max_queue;    /*  waiting tasks per service                    */
    uint32_t grace_ms;     /*  SIGTERM drain budget                         */
    uint32_t heartbeat_ms; /*  heartbeat interval                           */
    uint32_t liveness;     /*  intervals of silence before a worker is lost */
    yard_breaker_config_t breaker; /*  breaker defaults for every service  */
    uint32_t max_subscribers;      /*  event subscribers at once           */
    bool task_events;           /*  emit task.* events (only ever built while a
                                    subscriber wants them)                    */
    const char **breaker_specs; /*  per-service settings, "SERVICE.key=value",
                                    applied in order at start            */
    size_t nbreaker_specs;
} broker_config_t;

struct broker {
    broker_config_t config;   /*  settings                                   */
    void *ctx;                /*  ZeroMQ context                             */
    void *router;             /*  tasks endpoint, clients and workers        */
    void *events_sock;        /*  events endpoint (ROUTER, see events.c)     */
    int signal_fd;            /*  signalfd for SIGTERM/SIGINT, -1 if none    */
    uint64_t seed;            /*  hash seed, random per process              */
    yard_rand_t rng;          /*  jitter                                     */
    yard_decoder_t *decoder;  /*  reused for every body                      */
    yard_wire_msg_t *msg;     /*  reused receive buffer                      */
    msgpack_sbuffer scratch;  /*  reused encode buffer for replies            */
    msgpack_sbuffer taskbuf;  /*  reused encode buffer for TASK batches      */
    yard_map_t *services;     /*  name hash -> broker_service_t              */
    yard_map_t *workers;      /*  identity hash -> broker_worker_t           */
    yard_map_t *clients;      /*  identity hash -> broker_client_t           */
    yard_map_t *tasks_by_id;  /*  (client, id) hash -> live task             */
    yard_map_t *tasks_by_job; /* job -> dispatched task (incl. orphans)     */
    yard_heap_t *timers;      /*  task deadlines and retry times             */
    uint64_t next_job;        /*  next dispatch handle                       */
    broker_service_t *dispatch_list; /*  services with work to hand out     */
    broker_client_t *dirty_clients;  /*  clients with replies to flush      */
    broker_client_t *cache_client;   /*  the broker's own client (cache.c)  */
    yard_map_t *flights;             /*  cache key hash -> broker_flight_t  */
    uint64_t cache_seq;              /*  ids of the broker's cache requests */
    uint64_t cache_errors;           /*  lookups that failed (ran anyway)   */
    uint64_t cache_bypassed;         /*  policies ignored: no yard.cache    */
    broker_counters_t totals;        /*  counters not tied to one service   */
    uint64_t invalid;          /*  bodies answered invalid                    */
    uint64_t malformed;        /*  messages answered ERROR                    */
    uint64_t duplicates;       /*  SUBMITs ignored as duplicates              */
    uint64_t stale_results;    /*  worker results for unknown jobs            */
    int64_t started_us;        /*  monotonic start time                       */
    int64_t next_heartbeat_us; /*  next heartbeat/liveness sweep            */
    int64_t breaker_wake_us;   /*  earliest open breaker's half-open time,
                                   INT64_MAX if none                     */
    uint64_t events;           /*  events the broker emitted itself          */
    yard_map_t *subs;          /*  identity hash -> broker_sub_t             */
    broker_sub_t **sub_list;   /*  every subscriber, dense, for fan-out      */
    size_t nsubs;
    broker_sub_t *dirty_subs; /*  subscribers with events to flush          */
    yard_map_t *ev_types;     /*  type hash -> broker_evtype_t              */
    broker_event_counters_t ev_total; /*  all types                          */
    uint64_t ev_invalid;       /*  PUBLISH bodies refused                    */
    uint64_t ev_refused;       /*  SUBSCRIBEs refused (max subscribers)      */
    bool want_task_events;     /*  task.* events on and wanted by someone    */
    msgpack_sbuffer evbuf;     /*  one event, encoded for fan-out            */
    msgpack_sbuffer evpayload; /*  payload of an event the broker emits      */
    msgpack_sbuffer ackbuf;    /*  PUBLISH_ACK bodies                        */
    msgpack_sbuffer retained;  /*  system.startup, encoded, for new
                                   subscribers (PROTOCOL.md 8.7)          */
    bool draining;             /*  SIGTERM received                           */
    int64_t drain_deadline_us; /*  when draining ends                       */
    bool stop;                 /*  leave the loop                             */
    yard_proc_t proc;          /*  the loop's and the memory's health        */
    broker_ping_t *pings;      /*  ping requests waiting (probe.c)           */
    size_t npings;             /*  how many                                  */
    uint64_t probe;            /*  number of the probe in progress, 0: none  */
    int64_t probe_started_us;  /*  when it was sent                          */
    size_t probe_outstanding;  /*  workers that have not answered it         */
    uint64_t reports;          /*  worker reports received                   */
    uint64_t bad_reports;      /*  worker reports refused                    */
};

/* ---- broker.c ------------------------------------------------------------ */

/*  Creates a broker bound to config's endpoints. NULL if the breaker
    settings are inconsistent (reason in err) or a socket cannot be bound
    (reason logged, err empty). */
broker_t *broker_new(const broker_config_t *config, char *err, size_t errlen);

/*  Destroys the broker, freeing every object. Idempotent. */
void broker_destroy(broker_t **self_p);

/*  Runs the event loop until shutdown completes. Returns 0. */
int broker_run(broker_t *self);

/*  Marks a service as having work to dispatch at the end of this turn. */
void broker_want_dispatch(broker_t *self, broker_service_t *service);

/*  Queues a reply body for a task's client (sent at the end of the turn)
    and frees the task. status/error/payload describe the outcome. */
void broker_answer(broker_t *self, broker_task_t *task, yard_status_t status,
                   const void *payload, size_t payload_len, const char *error,
                   size_t error_len, uint64_t run_us);

/*  broker_answer for a result that came from the response cache (or from
    an identical task): status ok, cached true, no worker ran. */
void broker_answer_cached(broker_t *self, broker_task_t *task,
                          const void *payload, size_t payload_len);

/*  broker_answer with a retry_after_ms hint (circuit_open answers). */
void broker_answer_retry(broker_t *self, broker_task_t *task,
                         yard_status_t status, const char *error,
                         uint32_t retry_after_ms);

/*  Takes a live task out of wherever it waits or runs before it is
    answered early (deadline, cancel, drain): its queue, its retry backoff,
    its worker (which gets CANCEL {job}), or its cache parking. false for
    an orphan, which has nothing to leave. */
bool broker_detach(broker_t *self, broker_task_t *task, int64_t now);

/*  Unlinks an answered (or silently cancelled) task from the id index,
    the timers and its client, and frees it -- or, if a worker still holds
    it, keeps it as an orphan until the worker reports. */
void broker_forget(broker_t *self, broker_task_t *task);

/*  Queues a reply to a client for a task that never became a broker_task_t
    (rejected, invalid, shutdown, admin). */
void broker_reply(broker_t *self, broker_client_t *client,
                  const yard_result_t *result);

/* ---- task.c ----------------------------------------------------------------
 */

/*  Allocates a task holding copies of id, payload and headers. */
broker_task_t *task_new(const yard_submit_t *submit);

/*  Frees a task (must be unlinked from every structure). */
void task_free(broker_task_t *task);

/*  Accessors for the variable part. */
static inline const uint8_t *task_id(const broker_task_t *t)
{
    return t->data;
}
static inline const uint8_t *task_payload(const broker_task_t *t)
{
    return t->data + t->id_len;
}
static inline const uint8_t *task_headers(const broker_task_t *t)
{
    return t->data + t->id_len + t->payload_len;
}
static inline const uint8_t *task_fallback(const broker_task_t *t)
{
    return t->data + t->id_len + t->payload_len + t->headers_len;
}

/*  Bytes a task occupies (for memory reports). */
size_t task_memory(const broker_task_t *task);

/* ---- service.c -------------------------------------------------------------
 */

/*  Finds or creates a service by name; NULL if out of memory. */
broker_service_t *service_require(broker_t *self, const uint8_t *name,
                                  size_t len);

/*  Finds a service; NULL if unknown. */
broker_service_t *service_lookup(broker_t *self, const uint8_t *name,
                                 size_t len);

/*  Destroys a service (its queues must be empty). */
void service_destroy(broker_service_t *service);

/*  Appends (or, with front, prepends) a task to its priority queue. */
void service_enqueue(broker_service_t *service, broker_task_t *task,
                     bool front);

/*  Removes a queued task from its queue. */
void service_unlink(broker_service_t *service, broker_task_t *task);

/*  Pops the highest-priority, oldest task; NULL if none. */
broker_task_t *service_pop(broker_service_t *service);

/*  Adds / removes a worker to / from a service's list. */
int service_add_worker(broker_service_t *service, broker_worker_t *worker);
void service_remove_worker(broker_service_t *service, broker_worker_t *worker);

/*  The least-loaded worker with spare capacity, and how many workers have
    spare capacity; NULL if none. */
broker_worker_t *service_pick_worker(broker_service_t *service,
                                     size_t *with_spare);

/* ---- worker.c --------------------------------------------------------------
 */

/*  Spare capacity of a worker. */
static inline uint32_t worker_spare(const broker_worker_t *w)
{
    return w->capacity > w->in_flight ? w->capacity - w->in_flight : 0;
}

/*  Handles one message from a worker (already header-checked). */
void worker_handle(broker_t *self, yard_wire_msg_t *msg, int64_t now);

/*  Declares a worker gone: re-queues or fails every task it held, unlinks
    and frees it. reason is for the log. */
void worker_lost(broker_t *self, broker_worker_t *worker, const char *reason);

/*  Sends a worker a bodiless command (HEARTBEAT, DISCONNECT). */
void worker_send_simple(broker_t *self, broker_worker_t *worker, yard_cmd_t cmd,
                        int64_t now);

/*  Sends CANCEL {job} for a task the worker holds. */
void worker_send_cancel(broker_t *self, broker_worker_t *worker, uint64_t job,
                        int64_t now);

/*  Detaches a task from its worker's list (not touching counters). */
void worker_detach(broker_worker_t *worker, broker_task_t *task);

/*  Sends up to n tasks from the service queue to a worker in one TASK
    message. Returns how many were sent. */
size_t worker_dispatch(broker_t *self, broker_worker_t *worker, size_t n,
                       int64_t now);

/*  Frees a worker record (already unlinked). */
void worker_free(broker_worker_t *worker);

/* ---- probe.c --------------------------------------------------------------
 */

/*  A worker's HEARTBEAT with a body: its health report (stored; a probe
    answer is matched). A bad report is counted and ignored. */
void probe_on_report(broker_t *self, broker_worker_t *worker,
                     yard_wire_msg_t *msg, int64_t now);

/*  Admin "ping [TIMEOUT_MS]": probes every worker and answers once all
    have answered or the timeout passed (probe_tick). */
void probe_admin(broker_t *self, broker_client_t *client,
                 const yard_bytes_t *id, const char *args, size_t len,
                 int64_t now);

/*  Answers ping requests that are complete or past their timeout. */
void probe_tick(broker_t *self, int64_t now);

/*  Earliest ping deadline, INT64_MAX if none. */
int64_t probe_wake(const broker_t *self);

/*  A worker is going: it will not answer the probe in progress. */
void probe_worker_gone(broker_t *self, broker_worker_t *worker);

/*  Frees waiting ping requests (at exit). */
void probe_destroy(broker_t *self);

/*  The "report" and "ping" members of a worker in stats (each may be
    NULL: none yet). */
struct json_t *probe_report_json(const broker_worker_t *worker, int64_t now);
struct json_t *probe_ping_json(const broker_worker_t *worker, int64_t now);

/*  The broker's own loop and memory figures ("loop" in stats). */
struct json_t *probe_loop_json(const yard_proc_t *proc, int64_t now);

/* ---- client.c --------------------------------------------------------------
 */

/*  Finds or creates the client record for a routing id. */
broker_client_t *client_require(broker_t *self, const uint8_t *identity,
                                size_t len, int64_t now);

/*  Handles one message from a client (already header-checked). */
void client_handle(broker_t *self, broker_client_t *client,
                   yard_wire_msg_t *msg, int64_t now);

/*  Appends an encoded body to a client's outbox (flushing if full). */
void client_queue_body(broker_t *self, broker_client_t *client,
                       const void *data, size_t len);

/*  Sends every dirty client's outbox as one RESULT message each. */
void client_flush_all(broker_t *self);

/*  Frees a client record (caller unlinks it from the map). */
void client_free(broker_client_t *client);

/*  Drops clients idle past BROKER_CLIENT_IDLE_MS with nothing pending. */
void client_sweep(broker_t *self, int64_t now);

/* ---- stats.c ---------------------------------------------------------------
 */

/*  Builds the admin "stats" JSON; returns a malloc'd string or NULL. */
char *stats_json(broker_t *self, int64_t now);

/*  The JSON object describing a service's breaker (state, metrics,
    settings), and the one for a breaker config. */
struct json_t;
struct json_t *stats_breaker(broker_t *self, broker_service_t *service,
                             int64_t now);
struct json_t *stats_breaker_config(const yard_breaker_config_t *cfg);

/*  Sends an ERROR body to a peer on a given socket. */
void broker_send_error_on(broker_t *self, void *socket, const uint8_t *identity,
                          size_t identity_len, int err, const char *message);

/*  Sends an ERROR body to a peer. */
void broker_send_error(broker_t *self, const uint8_t *identity,
                       size_t identity_len, int err, const char *message,
                       const yard_bytes_t *id);

/* ---- breaker.c -------------------------------------------------------------
 */

/*  Applies breaker settings together: to the defaults (service NULL;
    services that did not set a key themselves follow), or to one service
    (created if unknown). Either all apply or, with a reason in err and -1,
    none: the result must pass yard_breaker_config_check. */
typedef struct {
    const char *key;
    const char *value;
} breaker_kv_t;
int breaker_set_many(broker_t *self, const char *service,
                     const breaker_kv_t *kv, size_t n, char *err,
                     size_t errlen);

/*  Applies config.breaker_specs at start, then checks every breaker's
    settings. 0, or -1 with a reason in err. */
int breaker_configure_start(broker_t *self, char *err, size_t errlen);

/*  Splits "[SERVICE.]key=value" into its parts in buf (service NULL for
    the defaults). The key is the text after the last '.' before '=', so
    service names may contain dots. 0, or -1 with a reason in err. */
int breaker_spec_split(const char *spec, char *buf, size_t buflen,
                       const char **service, const char **key,
                       const char **value, char *err, size_t errlen);

/*  Gives a new service its breaker (the defaults). */
void breaker_service_init(broker_t *self, broker_service_t *service,
                          int64_t now);

/*  May a task for this service go through? true: *gen is its generation.
    false: *retry_after_ms says when to try again. */
bool breaker_admit(broker_t *self, broker_service_t *service, int64_t now,
                   uint64_t *gen, uint32_t *retry_after_ms);

/*  The fallback service named name for a task of service, if it will take
    the task now: not the admin service, not service itself, queue not
    full, its own breaker admitting it (*gen set). NULL otherwise. */
broker_service_t *breaker_fallback(broker_t *self, broker_service_t *service,
                                   const uint8_t *name, size_t len, int64_t now,
                                   uint64_t *gen);

/*  Reports the outcome of a task's attempt to its service's breaker. */
void breaker_record(broker_t *self, broker_task_t *task,
                    yard_breaker_outcome_t outcome, uint64_t run_us,
                    int64_t now);

/*  Turns open breakers whose time is up half-open (timer step). */
void breaker_tick(broker_t *self, int64_t now);

/*  Answers (or hands to their fallback) every task waiting for a service
    whose breaker is open: nothing waits behind an open breaker. */
void breaker_shed(broker_t *self, broker_service_t *service, int64_t now);

/*  Operator commands: "list", "show SERVICE", "reset SERVICE",
    "set SERVICE|* key=value...". Returns a malloc'd JSON answer, or NULL
    with a reason in err. */
char *breaker_admin(broker_t *self, const char *args, size_t len, int64_t now,
                    char *err, size_t errlen);

/* ---- cache.c ------------------------------------------------------------- */

/*  Sets up / frees the response cache state. 0 or -1. */
int cache_init(broker_t *self);
void cache_destroy(broker_t *self);

/*  A task with a cache key (from its SUBMIT's policy): parks it behind a
    cache lookup or behind the identical task already in flight. false:
    queue it as usual (it may still lead a flight). */
bool cache_park(broker_t *self, broker_task_t *task,
                const uint8_t key[YARD_CACHE_KEY_BYTES],
                const yard_cache_policy_t *policy, int64_t now);

/*  A reply for the broker's own client (a cache request): consumed. */
void cache_on_reply(broker_t *self, const yard_result_t *result, int64_t now);

/*  A task with a flight is being answered: a leader's ok result is
    stored and handed to the tasks waiting on it; otherwise they run. */
void cache_on_answer(broker_t *self, broker_task_t *task, yard_status_t status,
                     const void *payload, size_t len, int64_t now);

/*  A task with a flight is forgotten without an answer through
    broker_answer (client gone): its flight lets go of it. */
void cache_detach(broker_t *self, broker_task_t *task, int64_t now);

/*  The "cache" object of stats. */
struct json_t *cache_stats(broker_t *self);

/* ---- events.c ------------------------------------------------------------ */

/*  One field of an event's payload. */
typedef struct {
    const char *key;
    enum { EV_STR, EV_BYTES, EV_UINT, EV_DOUBLE } kind;
    const char *s; /*  EV_STR (NUL-terminated), EV_BYTES (n bytes)      */
    size_t n;
    uint64_t u;
    double d;
} broker_event_field_t;

/*  The one place the broker emits its own events (system.*, worker.*,
    task.*, breaker.*): a payload map of the fields, source "yard-broker",
    published to every subscriber that wants the type. */
void broker_emit(broker_t *self, const char *type,
                 const broker_event_field_t *fields, size_t nfields);

/*  A task.* event: id and service, then the extra fields. Costs a branch
    when no subscriber wants task events. */
void broker_emit_task(broker_t *self, const char *type,
                      const broker_task_t *task,
                      const broker_event_field_t *extra, size_t nextra);

/*  Sets up / frees the event state (maps, buffers). 0 or -1. */
int events_init(broker_t *self);
void events_destroy(broker_t *self);

/*  A message on the events endpoint (SUBSCRIBE, HEARTBEAT, DISCONNECT). */
void events_handle(broker_t *self, yard_wire_msg_t *msg, int64_t now);

/*  PUBLISH from a client or worker on the task endpoint. */
void events_publish(broker_t *self, const uint8_t *identity,
                    size_t identity_len, yard_wire_msg_t *msg, int64_t now);

/*  Sends every subscriber's waiting events (end of each loop turn). */
void events_flush_all(broker_t *self, int64_t now);

/*  Heartbeats idle subscribers; forgets unreachable ones. */
void events_heartbeat(broker_t *self, int64_t now);

/*  The "events" object of the stats. */
struct json_t *events_stats(broker_t *self, int64_t now);

#endif
