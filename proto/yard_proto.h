/*  yard_proto.h — the Yard wire protocol in C: constants, message bodies,
    the codec (msgpack-c underneath) and the frame layer over ZeroMQ.

    proto/PROTOCOL.md is the source of truth; this header mirrors it. Every
    program (broker, workers, clients, CLI, bench) links libyardproto.

    A Yard message is one ZeroMQ multipart message:

        frame 0      header, exactly 4 bytes: 'Y', role, version, command
        frame 1..n   bodies, each one msgpack map (0..YARD_MAX_BATCH of them)

    role is the *sender's* role ('C' client, 'W' worker, 'B' broker). A
    message with several bodies is a batch: SUBMIT, RESULT, TASK and CANCEL
    may carry up to YARD_MAX_BATCH bodies, so the broker can hand a worker
    several tasks, and take several results back, in one message.

    Decoded bodies are views: yard_bytes_t fields point into the frame that
    was decoded and live as long as it does. Nothing in this header asserts
    on input; every decode function returns a yard_err_t.
*/
#ifndef YARD_PROTO_H
#define YARD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <zmq.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Protocol constants ------------------------------------------------ */

#define YARD_MAGIC 'Y'       /*  first byte of every header frame     */
#define YARD_PROTO_VERSION 1 /*  third byte of every header frame     */
#define YARD_HEADER_SIZE 4   /*  header frame is exactly this long    */
#define YARD_VERSION_STRING "0.1.0"

/*  Limits. The broker answers a message that breaks one with ERROR (or a
    RESULT with status "invalid" when the body's id could be read). Frames
    above YARD_MAX_MSGSIZE are refused by libzmq itself (ZMQ_MAXMSGSIZE):
    the connection is dropped, which is the only defence against a peer
    that claims gigabytes. */
#define YARD_MAX_PAYLOAD (4u * 1024 * 1024) /*  payload bytes per task  */
#define YARD_MAX_BODY (YARD_MAX_PAYLOAD + 64u * 1024) /* one body frame */
#define YARD_MAX_MSGSIZE (16u * 1024 * 1024) /*  ZMQ_MAXMSGSIZE          */
#define YARD_MAX_BATCH 256 /*  bodies per message                      */
#define YARD_MAX_FRAMES (1 + YARD_MAX_BATCH) /* header + bodies          */
#define YARD_MAX_ID 128      /*  bytes in a task id                      */
#define YARD_MAX_SERVICE 128 /*  bytes in a service name                 */
#define YARD_MAX_HEADERS 32  /*  entries in the headers map              */
#define YARD_MAX_HEADER_KEY 64
#define YARD_MAX_HEADER_VALUE 1024
#define YARD_MAX_ERROR 4096 /*  bytes of error text                      */
#define YARD_MAX_CAPACITY 10000
#define YARD_MAX_PRIORITY 9
#define YARD_MAX_RETRIES 16
#define YARD_MAX_TIMEOUT_MS 86400000u /*  24 h                           */
#define YARD_MAX_BACKOFF_MS 60000u
#define YARD_MAX_DEPTH 8 /*  msgpack nesting depth accepted by the codec   */
/*  Array items plus map keys and values in one body, all levels together.
    msgpack-c allocates 24 bytes per element before it reads them, so this
    caps what one body can make a decoder allocate (about 100 KiB). */
#define YARD_MAX_ELEMENTS 4096
/*  Event bus. */
#define YARD_MAX_EVENT_PAYLOAD (1024u * 1024) /*  event payload bytes      */
#define YARD_MAX_TYPES 32 /*  type prefixes in one SUBSCRIBE              */

/*  Defaults for optional SUBMIT fields. */
#define YARD_DEFAULT_TIMEOUT_MS 30000u
#define YARD_DEFAULT_BACKOFF_MS 100u
#define YARD_DEFAULT_PRIORITY 0
#define YARD_DEFAULT_RETRIES 0

/*  Heartbeats (PROTOCOL.md "Heartbeating"). */
#define YARD_HEARTBEAT_INTERVAL_MS 1000
#define YARD_HEARTBEAT_LIVENESS 3 /*  intervals of silence = peer dead */

/*  Internal services answered by the broker itself. */
#define YARD_ADMIN_SERVICE "yard.admin"

typedef enum {
    YARD_ROLE_CLIENT = 'C',
    YARD_ROLE_WORKER = 'W',
    YARD_ROLE_BROKER = 'B',
} yard_role_t;

typedef enum {
    YARD_CMD_SUBMIT = 0x01,     /*  C->B  1..256 task bodies             */
    YARD_CMD_RESULT = 0x02,     /*  B->C, W->B  1..256 result bodies     */
    YARD_CMD_CANCEL = 0x03,     /*  C->B, B->W  1..256 cancel bodies     */
    YARD_CMD_READY = 0x04,      /*  W->B  1 ready body                   */
    YARD_CMD_TASK = 0x05,       /*  B->W  1..256 task bodies             */
    YARD_CMD_HEARTBEAT = 0x06,  /*  any   0 bodies; W/B: 0 or 1 report  */
    YARD_CMD_DISCONNECT = 0x07, /*  any   0 or 1 body                    */
    YARD_CMD_ERROR = 0x08,      /*  B->any  1 error body                 */
    /*  The event bus (PROTOCOL.md 5.11). */
    YARD_CMD_PUBLISH = 0x10,     /*  C/W->B, B->subscriber: 1..256 events */
    YARD_CMD_PUBLISH_ACK = 0x11, /*  B->C/W: 1..256 publish acks          */
    YARD_CMD_SUBSCRIBE = 0x12,   /*  subscriber->B (events endpoint): 1   */
    /*  Reserved for streaming; the broker answers ERROR
        "unknown_command" to them. */
    YARD_CMD_CHUNK = 0x20,      /*  streaming: partial result            */
    YARD_CMD_CREDIT = 0x21,     /*  streaming: flow-control credit       */
    YARD_CMD_STREAM_END = 0x22, /*  streaming: end of stream             */
} yard_cmd_t;

/*  Task outcome, as on the wire ("status" string) and in every API.
    Order is fixed: it indexes yard_status_name(). */
typedef enum {
    YARD_OK = 0,           /*  "ok"            handler succeeded          */
    YARD_ERROR = 1,        /*  "error"         handler failed, retries spent */
    YARD_TIMEOUT = 2,      /*  "timeout"       deadline passed            */
    YARD_REJECTED = 3,     /*  "rejected"      queue full / not accepted  */
    YARD_CIRCUIT_OPEN = 4, /*  "circuit_open"  breaker open (issue 4)     */
    YARD_CANCELLED = 5,    /*  "cancelled"     cancelled by the client    */
    YARD_SHUTDOWN = 6,     /*  "shutdown"      broker stopped before done */
    YARD_INVALID = 7,      /*  "invalid"       the task body was invalid  */
    YARD_STATUS_COUNT
} yard_status_t;

/*  Library error codes: 0 is success, failures are negative. */
typedef enum {
    YARD_E_OK = 0,
    YARD_E_MALFORMED = -1,    /*  not valid msgpack / not a map / trailing */
    YARD_E_TOO_LARGE = -2,    /*  a size limit was exceeded                */
    YARD_E_VERSION = -3,      /*  unsupported protocol version             */
    YARD_E_UNKNOWN_CMD = -4,  /*  command not valid for this role          */
    YARD_E_TYPE = -5,         /*  a field has the wrong msgpack type       */
    YARD_E_RANGE = -6,        /*  a field's value is out of range          */
    YARD_E_MISSING = -7,      /*  a required field is absent               */
    YARD_E_FRAMES = -8,       /*  wrong number of body frames              */
    YARD_E_HEADER = -9,       /*  header frame not 4 bytes / bad magic     */
    YARD_E_ROLE = -10,        /*  unknown role byte                        */
    YARD_E_NOMEM = -11,       /*  allocation failed                        */
    YARD_E_IO = -12,          /*  ZeroMQ send/recv failed (see errno)      */
    YARD_E_TIMEOUT = -13,     /*  an API wait ran out of time              */
    YARD_E_ARG = -14,         /*  bad argument passed to an API            */
    YARD_E_NOTFOUND = -15,    /*  no such task / entry                     */
    YARD_E_INTERRUPTED = -16, /*  a signal or stop request interrupted    */
    YARD_E_LIMIT = -17,       /*  a broker limit was reached (subscribers) */
} yard_err_t;

/*  Returns a constant human-readable string for a yard_err_t. */
const char *yard_strerror(int err);

/*  Wire name of a status ("ok", "circuit_open", ...); "unknown" if out of
    range. */
const char *yard_status_name(yard_status_t status);

/*  Parses a wire status name; returns 0 and sets *status, or
    YARD_E_RANGE for an unknown name. len is the name's length. */
int yard_status_parse(const char *name, size_t len, yard_status_t *status);

/*  Wire error codes carried by ERROR bodies ("code" field). */
#define YARD_ERRCODE_MALFORMED "malformed"
#define YARD_ERRCODE_TOO_LARGE "too_large"
#define YARD_ERRCODE_VERSION "bad_version"
#define YARD_ERRCODE_UNKNOWN_CMD "unknown_command"
#define YARD_ERRCODE_BAD_FIELD "bad_field"
#define YARD_ERRCODE_FRAMES "bad_frames"
#define YARD_ERRCODE_NOT_READY "not_ready" /* worker sent work before READY */
#define YARD_ERRCODE_LIMIT "limit" /*  a broker limit (subscribers) reached */

/*  Maps a yard_err_t to the ERROR "code" string the broker sends. */
const char *yard_errcode_for(int err);

/* ---- Message bodies ---------------------------------------------------- */

/*  A view of bytes inside a decoded frame (not NUL-terminated). */
typedef struct {
    const uint8_t *ptr; /*  NULL when absent                               */
    uint32_t len;       /*  0 when absent or empty                         */
} yard_bytes_t;

/*  SUBMIT body, client -> broker. */
typedef struct {
    yard_bytes_t id;       /*  str 1..128, required; client-chosen        */
    yard_bytes_t service;  /*  str 1..128 of [A-Za-z0-9._:-], required    */
    yard_bytes_t payload;  /*  bin or str 0..YARD_MAX_PAYLOAD             */
    uint32_t timeout_ms;   /*  1..24h, default 30000; whole-task deadline */
    uint32_t retries;      /*  0..16, default 0; extra attempts on error  */
    uint32_t backoff_ms;   /*  0..60000, default 100; base retry delay    */
    uint8_t priority;      /*  0..9, default 0; 9 is served first         */
    yard_bytes_t headers;  /*  raw msgpack map str->str, or empty         */
    yard_bytes_t cache;    /*  raw msgpack map, reserved (issue 6)        */
    yard_bytes_t fallback; /*  str like service: where to go when its
                               breaker is open                       */
} yard_submit_t;

/*  TASK body, broker -> worker. */
typedef struct {
    uint64_t job;         /*  broker's handle; echoed in the RESULT      */
    yard_bytes_t id;      /*  the client's task id (for logs)            */
    yard_bytes_t service; /*  service name                               */
    yard_bytes_t payload; /*  task payload                               */
    uint32_t timeout_ms;  /*  time left until the task's deadline        */
    uint32_t attempt;     /*  1 on first dispatch                        */
    yard_bytes_t headers; /*  raw msgpack map str->str, or empty         */
} yard_task_t;

/*  RESULT body. From a worker: job, status (ok|error|cancelled), payload
    or error, run_us. From the broker to a client: id, status, payload or
    error, cached, attempts, timings, retry_after_ms. */
typedef struct {
    uint64_t job;            /*  W->B: the TASK's job; B->C: absent (0)   */
    yard_bytes_t id;         /*  B->C: the client's task id               */
    yard_status_t status;    /*  required                                 */
    yard_bytes_t payload;    /*  bin, result bytes                        */
    yard_bytes_t error;      /*  str, error text when status != ok        */
    bool cached;             /*  B->C: answered from the response cache   */
    uint32_t attempts;       /*  B->C: attempts made                      */
    uint64_t queue_us;       /*  B->C: time spent queued                  */
    uint64_t run_us;         /*  time spent in the worker                 */
    uint64_t total_us;       /*  B->C: submit to reply, in the broker     */
    uint32_t retry_after_ms; /* B->C: hint for rejected / circuit_open   */
} yard_result_t;

/*  READY body, worker -> broker. Sent once to register and again to change
    capacity (0 = drain: send me nothing more). */
typedef struct {
    yard_bytes_t service; /*  str, required                              */
    uint32_t capacity;    /*  0..10000, required                         */
    yard_bytes_t name;    /*  str, optional: a human name for the worker */
    uint32_t pid;         /*  optional                                   */
    yard_bytes_t version; /*  str, optional                              */
} yard_ready_t;

/*  CANCEL body. Client -> broker: id. Broker -> worker: job. */
typedef struct {
    yard_bytes_t id; /*  C->B, required there                           */
    uint64_t job;    /*  B->W, required there                           */
} yard_cancel_t;

/*  ERROR body, broker -> peer: the peer's message was refused. */
typedef struct {
    yard_bytes_t code;    /*  str, one of YARD_ERRCODE_*                 */
    yard_bytes_t message; /*  str, human-readable detail                 */
    yard_bytes_t id;      /*  str, optional: the task id, when known     */
} yard_error_t;

/*  An event: PUBLISH body (C/W -> B: publish; B -> subscriber: delivery). */
typedef struct {
    yard_bytes_t type;     /*  str 1..128 of the service alphabet, dotted
                               ("task.completed"), required             */
    yard_bytes_t source;   /*  str 0..128: who published it             */
    uint64_t ts_us;        /*  wall clock, us since the Unix epoch; 0 from
                               a publisher = let the broker stamp it    */
    yard_bytes_t payload;  /*  one raw msgpack value of any type, or empty
                               (no payload), 0..YARD_MAX_EVENT_PAYLOAD  */
    yard_bytes_t trace_id; /*  str 0..128                               */
    yard_bytes_t meta;     /*  raw msgpack map str->str (header rules)  */
    uint64_t seq;          /*  C/W->B: the publisher's number, echoed in
                               PUBLISH_ACK; required when ack is set    */
    bool ack;              /*  C/W->B: answer with PUBLISH_ACK          */
    uint64_t sn;           /*  B->S: this subscriber's delivery number,
                               1, 2, ...; a gap = events dropped for it */
} yard_event_t;

/*  PUBLISH_ACK body, broker -> publisher, for an event sent with ack. */
typedef struct {
    uint64_t seq;         /*  the event's seq, required                */
    yard_status_t status; /*  ok or invalid, required                  */
    yard_bytes_t error;   /*  str, why when not ok                     */
} yard_publish_ack_t;

/*  SUBSCRIBE body, subscriber -> broker (events endpoint). */
typedef struct {
    yard_bytes_t types; /*  raw msgpack array of 0..YARD_MAX_TYPES str type
                            prefixes (0..128 bytes each); an empty array,
                            or an empty prefix, means every event     */
} yard_subscribe_t;

/*  HEARTBEAT body, worker -> broker: the worker's health report
    (PROTOCOL.md 5.7, 8.8). Every field is optional; absent numbers are 0. */
#define YARD_MAX_OBJECTS 16     /*  entries in a report's objects map       */
#define YARD_MAX_OBJECT_NAME 64 /*  bytes in one object name               */
typedef struct {
    uint64_t probe;              /*  the broker probe this answers, 0 = none */
    uint64_t uptime_ms;          /*  since the process started               */
    yard_bytes_t version;        /*  str 0..128: software version            */
    uint64_t rss;                /*  resident set, bytes                     */
    uint64_t rss_peak;           /*  largest resident set seen, bytes        */
    uint64_t rss_growth;         /*  growth over the window, bytes           */
    uint64_t growth_window_ms;   /*  the window rss_growth covers            */
    uint64_t loop_iterations;    /*  event-loop iterations                   */
    uint64_t loop_busy_us;       /*  total time spent working in the loop    */
    uint64_t loop_max_us;        /*  longest iteration                       */
    uint64_t loop_max_lag_us;    /*  most the loop woke up late              */
    uint64_t loop_slow;          /*  iterations over the slow threshold      */
    uint64_t loop_stalls;        /*  stalls (over the stall threshold)       */
    uint64_t loop_last_stall_us; /*  length of the last stall              */
    uint64_t loop_stall_age_ms;  /*  since the last stall ended            */
    uint64_t loop_slow_ms;       /*  the slow threshold in force             */
    uint64_t loop_stall_ms;      /*  the stall threshold in force            */
    uint32_t in_flight;          /*  tasks held                              */
    uint32_t pending;            /*  tasks held but not started yet          */
    yard_bytes_t objects;        /*  raw msgpack map str -> uint: counts of
                                     what the process holds (entries, ...);
                                     at most YARD_MAX_OBJECTS entries, names
                                     1..64 bytes of the service alphabet   */
} yard_report_t;

/*  HEARTBEAT body, broker -> worker: a probe, answered at once with a
    HEARTBEAT whose report carries the same probe number. */
typedef struct {
    uint64_t probe; /*  1..2^64-1, required                                */
} yard_probe_t;

/* ---- Header frame ------------------------------------------------------ */

/*  Writes the 4-byte header. */
void yard_header_make(uint8_t out[YARD_HEADER_SIZE], yard_role_t role,
                      yard_cmd_t cmd);

/*  Parses and validates a header frame: length, magic, role, version.
    Does not check that cmd suits the role (see yard_cmd_check). */
int yard_header_parse(const void *data, size_t len, yard_role_t *role,
                      yard_cmd_t *cmd);

/*  Checks that a command is valid for a sender role and a body count:
    YARD_E_UNKNOWN_CMD or YARD_E_FRAMES when not. */
int yard_cmd_check(yard_role_t role, yard_cmd_t cmd, size_t bodies);

/*  Name of a command ("SUBMIT", ...), or "UNKNOWN". */
const char *yard_cmd_name(yard_cmd_t cmd);

/* ---- Decoding ---------------------------------------------------------- */

/*  A decoder holds the msgpack zone reused across calls (no allocation per
    message after warm-up). Not thread-safe: one per thread. */
typedef struct _yard_decoder_t yard_decoder_t;

yard_decoder_t *yard_decoder_new(void);
void yard_decoder_destroy(yard_decoder_t **self_p);

/*  Structural pre-check of untrusted msgpack, before msgpack-c sees it:
    exactly one object spanning all len bytes, depth <= YARD_MAX_DEPTH, and
    every array/map/str/bin/ext count checked against the bytes that remain
    (msgpack-c issue #1013: a 5-byte header may claim 2^32 elements). No
    allocation. Returns 0 or YARD_E_MALFORMED / YARD_E_TOO_LARGE (len over
    YARD_MAX_BODY, depth over YARD_MAX_DEPTH, over YARD_MAX_ELEMENTS). */
int yard_msgpack_check(const void *data, size_t len);

/*  Walks the one msgpack object that starts at data[*off], with the checks
    of yard_msgpack_check (bounds, depth, counts, 0xc1) except that bytes
    after it are allowed, and sets *off just past it (unchanged on failure).
    The codec uses it to find the byte span of a nested map. Returns 0 or
    YARD_E_MALFORMED / YARD_E_TOO_LARGE. */
int yard_msgpack_skip(const void *data, size_t len, size_t *off);

/*  Each decoder validates every field (type, range, required, size) and
    ignores unknown keys. Views in *out point into data. On failure, *out
    may be partly filled; out->id (where the body has one) is set when it
    could be read, so the broker can name the task in its reply. */
int yard_decode_submit(yard_decoder_t *self, const void *data, size_t len,
                       yard_submit_t *out);
int yard_decode_task(yard_decoder_t *self, const void *data, size_t len,
                     yard_task_t *out);
int yard_decode_result(yard_decoder_t *self, const void *data, size_t len,
                       yard_result_t *out);
int yard_decode_ready(yard_decoder_t *self, const void *data, size_t len,
                      yard_ready_t *out);
int yard_decode_cancel(yard_decoder_t *self, const void *data, size_t len,
                       yard_cancel_t *out);
int yard_decode_error(yard_decoder_t *self, const void *data, size_t len,
                      yard_error_t *out);
int yard_decode_event(yard_decoder_t *self, const void *data, size_t len,
                      yard_event_t *out);
int yard_decode_publish_ack(yard_decoder_t *self, const void *data, size_t len,
                            yard_publish_ack_t *out);
int yard_decode_subscribe(yard_decoder_t *self, const void *data, size_t len,
                          yard_subscribe_t *out);
/*  The report's objects map is checked too (YARD_E_TOO_LARGE over
    YARD_MAX_OBJECTS entries, YARD_E_RANGE / YARD_E_TYPE for a bad name or
    value). */
int yard_decode_report(yard_decoder_t *self, const void *data, size_t len,
                       yard_report_t *out);
int yard_decode_probe(yard_decoder_t *self, const void *data, size_t len,
                      yard_probe_t *out);

/*  Calls fn(name, len, value, arg) for each entry of a report's objects
    map (checked here); stops when fn returns non-zero. 0, fn's value or
    an error. */
typedef int(yard_objects_fn)(const char *name, size_t len, uint64_t value,
                             void *arg);
int yard_objects_each(const yard_bytes_t *objects, yard_objects_fn *fn,
                      void *arg);

/*  Calls fn for each prefix of a SUBSCRIBE types array (already checked
    by the decoder, or checked here). 0, fn's non-zero value, or an
    error. */
typedef int(yard_strlist_fn)(const char *s, size_t len, void *arg);
int yard_strlist_each(const yard_bytes_t *list, yard_strlist_fn *fn, void *arg);

/*  Iterates a validated headers map (raw msgpack, as in yard_submit_t):
    calls fn(key, klen, value, vlen, arg) per entry; stops early when fn
    returns non-zero. Returns 0 or a yard_err_t. */
typedef int(yard_headers_fn)(const char *key, size_t klen, const char *value,
                             size_t vlen, void *arg);
int yard_headers_each(const yard_bytes_t *headers, yard_headers_fn *fn,
                      void *arg);

/* ---- Encoding ---------------------------------------------------------- */

/*  Each encoder appends one body (a msgpack map) to buf, which the caller
    has initialised with msgpack_sbuffer_init and clears as it likes.
    Optional fields are written only when set (non-empty bytes, non-zero
    numbers different from the default). Returns 0 or YARD_E_NOMEM /
    YARD_E_TOO_LARGE / YARD_E_ARG. Encoders validate what they write, so a
    program cannot emit a body its peers would refuse. */
int yard_encode_submit(msgpack_sbuffer *buf, const yard_submit_t *submit);
int yard_encode_task(msgpack_sbuffer *buf, const yard_task_t *task);
/*  role selects which fields are written: YARD_ROLE_WORKER writes
    job/status/payload/error/run_us; YARD_ROLE_BROKER writes id/status/
    payload/error/cached/attempts/queue_us/run_us/total_us/retry_after_ms. */
int yard_encode_result(msgpack_sbuffer *buf, yard_role_t role,
                       const yard_result_t *result);
int yard_encode_ready(msgpack_sbuffer *buf, const yard_ready_t *ready);
int yard_encode_cancel(msgpack_sbuffer *buf, yard_role_t role,
                       const yard_cancel_t *cancel);
int yard_encode_error(msgpack_sbuffer *buf, const yard_error_t *error);
/*  role: YARD_ROLE_CLIENT or _WORKER (publisher: seq, ack) or
    YARD_ROLE_BROKER (delivery: sn). */
int yard_encode_event(msgpack_sbuffer *buf, yard_role_t role,
                      const yard_event_t *event);
int yard_encode_publish_ack(msgpack_sbuffer *buf,
                            const yard_publish_ack_t *ack);
int yard_encode_subscribe(msgpack_sbuffer *buf, const yard_subscribe_t *sub);
int yard_encode_report(msgpack_sbuffer *buf, const yard_report_t *report);
int yard_encode_probe(msgpack_sbuffer *buf, const yard_probe_t *probe);

/*  Encodes an array of n C strings as a SUBSCRIBE types array into buf. */
int yard_encode_strlist(msgpack_sbuffer *buf, const char *const *items,
                        size_t n);

/*  Appends to out a copy of an event body encoded by the broker (no sn)
    with "sn": sn added as its last entry, without decoding it: the broker
    encodes an event once and stamps it per subscriber. YARD_E_ARG if body
    is not a map of fewer than 15 entries. */
int yard_event_stamp_sn(msgpack_sbuffer *out, const void *body, size_t len,
                        uint64_t sn);

/*  Convenience: a yard_bytes_t over a C string (NULL gives an empty view). */
yard_bytes_t yard_bytes_str(const char *s);

/* ---- Response cache key (PROTOCOL.md 10b) ------------------------------ */

#define YARD_CACHE_KEY_BYTES 32 /*  SHA-256                              */
#define YARD_CACHE_MAX_NAMES 32 /*  names in key / exclude / headers     */
#define YARD_CACHE_MAX_TAGS 16  /*  tags of a cached result              */
#define YARD_CACHE_MAX_NAME 128 /*  bytes in one tag or name             */
#define YARD_CACHE_POLICY_MAX_TTL_MS                                           \
    YARD_MAX_TIMEOUT_MS /*  policy ttl_ms at most */

/*  A SUBMIT's `cache` policy. Views point into the SUBMIT body. */
typedef struct {
    uint32_t ttl_ms; /*  0: the cache's default                        */
    yard_bytes_t tags[YARD_CACHE_MAX_NAMES];
    uint8_t ntags;
    bool has_key; /*  `key` given: only these payload fields count  */
    yard_bytes_t key[YARD_CACHE_MAX_NAMES];
    uint8_t nkey;
    yard_bytes_t exclude[YARD_CACHE_MAX_NAMES]; /*  fields left out      */
    uint8_t nexclude;
    yard_bytes_t headers[YARD_CACHE_MAX_NAMES]; /*  headers that count   */
    uint8_t nheaders;
} yard_cache_policy_t;

/*  Parses the raw `cache` map of a SUBMIT. YARD_E_NOTFOUND when there is
    none (the task is not cached); a decoder error for a bad policy. */
int yard_cache_policy_parse(const yard_bytes_t *raw, yard_cache_policy_t *out);

/*  The cache key of a task: SHA-256 over the canonical msgpack array
    [service, P, H] of PROTOCOL.md 10b. YARD_E_TYPE when the policy names
    payload fields and the payload is not a msgpack map with str keys. */
int yard_cache_key(const yard_bytes_t *service, const yard_bytes_t *payload,
                   const yard_bytes_t *headers,
                   const yard_cache_policy_t *policy,
                   uint8_t out[YARD_CACHE_KEY_BYTES]);

/*  Lower-case hex of a key, NUL-terminated. */
void yard_cache_key_hex(const uint8_t key[YARD_CACHE_KEY_BYTES],
                        char out[2 * YARD_CACHE_KEY_BYTES + 1]);

/* ---- Frames over ZeroMQ ------------------------------------------------ */

/*  One received Yard message: the ROUTER routing id of the sender (when
    received on a ROUTER), header fields, and up to YARD_MAX_BATCH body
    frames. Large (about 16 KiB): keep one per socket and reuse it. */
typedef struct {
    uint8_t identity[255]; /*  routing id of the sender (ROUTER side)    */
    size_t identity_len;   /*  0 on a DEALER socket                       */
    int header_err;        /*  0, or why the header frame was refused     */
    yard_role_t role;      /*  sender's role, valid when header_err == 0  */
    yard_cmd_t cmd;        /*  command, valid when header_err == 0        */
    size_t nframes;        /*  body frames received, including dropped    */
    size_t nbodies;        /*  body frames kept (<= YARD_MAX_BATCH)       */
    zmq_msg_t bodies[YARD_MAX_BATCH]; /*  kept body frames                */
} yard_wire_msg_t;

/*  A body to send: bytes the caller owns (copied by ZeroMQ). */
typedef struct {
    const void *data;
    size_t len;
} yard_frame_t;

/*  Sets the socket options every Yard socket uses: ZMQ_MAXMSGSIZE =
    YARD_MAX_MSGSIZE, ZMQ_LINGER = 0, high-water marks. Returns 0 or
    YARD_E_IO. */
int yard_wire_setup(void *socket);

/*  Prepares m for yard_wire_recv (call once). */
void yard_wire_msg_init(yard_wire_msg_t *m);

/*  Releases the frames m holds; m may be reused afterwards. */
void yard_wire_msg_close(yard_wire_msg_t *m);

/*  Receives one whole multipart message into m (closing what m held). With
    router=true the first frame is taken as the routing id (an empty
    delimiter frame after it, as REQ sockets send, is skipped). flags is 0
    or ZMQ_DONTWAIT. A header that fails yard_header_parse still returns 0
    with m->header_err set, so the caller can answer ERROR; frames past
    YARD_MAX_BATCH are received and dropped (m->nframes counts them).
    Returns 0, or YARD_E_IO with errno set (EAGAIN: nothing to read;
    EINTR: interrupted). */
int yard_wire_recv(void *socket, bool router, yard_wire_msg_t *m, int flags);

/*  Sends [identity] header bodies... as one multipart message. identity
    may be NULL for a DEALER socket. Never blocks on a ROUTER (an
    unroutable or full peer drops the message, as ROUTER does); on a
    DEALER it uses flags (0 or ZMQ_DONTWAIT). Returns 0 or YARD_E_IO. */
int yard_wire_send(void *socket, const void *identity, size_t identity_len,
                   yard_role_t role, yard_cmd_t cmd, const yard_frame_t *bodies,
                   size_t nbodies, int flags);

#ifdef __cplusplus
}
#endif

#endif
