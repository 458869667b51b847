/*  yard_client_internal.h — state shared by the client library's files
    (yard_client.c: lifecycle, tasks and sending; yard_client_io.c: the
    receive/timer pump; yard_client_wait.c: the wait family and map;
    yard_client_events.c: publishing events). Not installed, not for
    callers. (The event subscriber, yard_client_sub.c, is a separate
    object; it only borrows yard_cl_err_for_code.)

    Bookkeeping:
      * every task without an answer is a yard_cl_task_t in a list (submission
        order, so re-sends keep order), a map by id, and a heap by local
        give-up time;
      * `unsent` points into that list: tasks from there to the tail have
        not been taken by the socket yet (new tasks, or all of them after a
        reconnect), so a full socket delays sending but loses nothing;
      * answered tasks become yard_cl_done_t replies, in the `ready` FIFO
        plus a map by id (for wait_id) until a wait call hands them out;
        replies of the running map call go to their own FIFO instead, so
        neither the map nor a wait ever scans past the other's replies. */
#ifndef YARD_CLIENT_INTERNAL_H
#define YARD_CLIENT_INTERNAL_H

#include "yard_client.h"

#include <msgpack.h>

#include "yard_heap.h"
#include "yard_map.h"
#include "yard_rand.h"

/*  Heartbeat timing, from proto/PROTOCOL.md 8.3. */
#define YARD_CLIENT_HB_US ((int64_t)YARD_HEARTBEAT_INTERVAL_MS * 1000)
#define YARD_CLIENT_DEAD_US (YARD_CLIENT_HB_US * YARD_HEARTBEAT_LIVENESS)

/*  Tasks whose id+body fit this many bytes are recycled through a free
    list instead of going back to malloc: the benchmark's hot path. */
#define YARD_CLIENT_SMALL_TASK 256
#define YARD_CLIENT_FREELIST_MAX 4096

/*  An outstanding (unanswered) task. One allocation: the struct, then the
    id bytes, a NUL, then the encoded SUBMIT body. */
typedef struct yard_cl_task {
    struct yard_cl_task *prev, *next; /*  submission-order list */
    yard_heap_node_t giveup; /*  in the give-up heap, keyed in us     */
    uint64_t hash;           /*  yard_hash64 of the id                */
    int64_t submit_us;       /*  monotonic time of the submit call    */
    uint64_t tag;            /*  0, or the map call that owns it      */
    size_t index;            /*  index in that map's payloads         */
    bool sent;               /*  the socket took its SUBMIT body      */
    bool cancel_sent;        /*  a CANCEL went out: send it again after
                                 a reconnect re-sends the SUBMIT      */
    size_t capacity;         /*  bytes allocated after the struct     */
    size_t id_len;           /*  bytes in the id                      */
    size_t body_len;         /*  bytes in the encoded body            */
    uint8_t data[];          /*  id, NUL, body                        */
} yard_cl_task_t;

/*  A buffered reply: the public struct plus its place in the FIFO. One
    allocation with the id, payload and error bytes after it, so
    yard_reply_destroy is a single free. */
typedef struct yard_cl_done {
    struct yard_cl_done *prev, *next; /*  FIFO, oldest first */
    uint64_t hash;      /*  hash of the id, for the done map     */
    uint64_t tag;       /*  the owning map call, 0 for none      */
    size_t index;       /*  index in that map's payloads         */
    yard_reply_t reply; /*  what the caller gets                 */
} yard_cl_done_t;

/*  A FIFO of buffered replies. */
typedef struct {
    yard_cl_done_t *head, *tail; /* oldest first                         */
    size_t count;                /* replies in it                        */
} yard_cl_fifo_t;

struct _yard_client_t {
    void *ctx;              /*  ZeroMQ context, ours alone           */
    void *socket;           /*  DEALER to the broker                 */
    void *monitor;          /*  PAIR with the DEALER's connect and
                                disconnect events, or NULL           */
    unsigned monitor_seq;   /*  makes each monitor's inproc name new */
    bool link_lost;         /*  the TCP link dropped; the next connect
                                re-sends everything in flight        */
    char *endpoint;         /*  where we connect (kept to reconnect) */
    uint8_t routing_id[16]; /*  kept across reconnects (dedup key)   */
    yard_rand_t rng;        /*  ids and hash seed                    */
    uint64_t hash_seed;     /*  seeds yard_hash64 for our maps       */
    char id_prefix[12];     /*  random prefix of generated ids       */
    uint64_t id_counter;    /*  suffix of generated ids              */
    uint64_t next_tag;      /*  last map tag handed out              */

    yard_cl_task_t *head, *tail; /*  in-flight tasks, submission order    */
    yard_cl_task_t *unsent;      /*  first task the socket has not taken  */
    size_t in_flight;            /*  tasks in the list                    */
    size_t tagged;               /*  of which belong to the running map   */
    yard_map_t *tasks;        /*  id hash -> yard_cl_task_t                  */
    yard_heap_t *giveups;     /*  yard_cl_task_t by local give-up time       */
    yard_cl_task_t *freelist; /*  recycled small tasks (via next)      */
    size_t freelist_len;      /*  tasks in the free list               */

    yard_cl_fifo_t ready;     /*  replies for wait calls, oldest first */
    yard_map_t *done;         /*  id hash -> yard_cl_done_t in `ready` */
    yard_cl_fifo_t map_ready; /*  replies for the running map; kept
                                  apart so neither side scans the other */

    bool broker_seen;     /*  anything ever received               */
    int64_t last_recv_us; /*  last sign of life (or start of
                              expecting one)                       */
    int64_t probe_us;     /*  first heartbeat sent since then, 0 if
                              none: we reconnect only after the
                              broker had time to answer one        */
    int64_t last_hb_us;   /*  last heartbeat sent                  */
    bool in_map;          /*  a map call is running (no nesting)   */

    /*  Events (yard_client_events.c). */
    uint64_t pub_seq;         /*  last PUBLISH seq handed out          */
    uint64_t ack_seq;         /*  seq a confirmed publish waits for,
                                  0 when none                          */
    bool ack_done;            /*  its PUBLISH_ACK arrived              */
    int ack_err;              /*  0 (ok) or the error it maps to       */
    uint64_t hb_answers;      /*  HEARTBEAT/DISCONNECT from the broker:
                                  answers to our heartbeats (sync)     */
    msgpack_sbuffer ev_buf;   /*  reused to encode PUBLISH bodies      */
    msgpack_sbuffer meta_buf; /*  reused to pack an event's meta map   */
    char last_error[YARD_MAX_ERROR + 64]; /* yard_client_last_error    */

    msgpack_sbuffer body_buf;    /*  reused to encode bodies              */
    msgpack_sbuffer hdr_buf;     /*  reused to pack the headers map       */
    msgpack_sbuffer map_hdr_buf; /* the same for the running map         */
    yard_decoder_t *decoder;     /*  reused to decode bodies              */
    yard_frame_t frames[YARD_MAX_BATCH]; /* reused to send batches       */
    yard_wire_msg_t msg; /*  reused to receive                    */
};

/*  Options resolved to wire values, with the headers packed. */
typedef struct {
    yard_submit_t submit; /*  fields common to every task of the call    */
    const char *id;       /*  the caller's id, or NULL                   */
} yard_cl_opts_t;

/* ---- yard_client.c ----------------------------------------------------- */

/*  Packs NULL-terminated "key", "value", ... pairs into buf (cleared
    first) as a msgpack map. 0, YARD_E_ARG (a key without a value),
    YARD_E_TOO_LARGE (the headers limits) or YARD_E_NOMEM. */
int yard_cl_pack_headers(msgpack_sbuffer *buf, const char *const *headers);

/*  Resolves opts (NULL = defaults), packing headers into hdr_buf, which
    must then stay untouched while out is used. 0 or YARD_E_ARG /
    YARD_E_TOO_LARGE / YARD_E_NOMEM. */
int yard_cl_resolve(msgpack_sbuffer *hdr_buf, const char *service,
                    const yard_submit_opts_t *opts, yard_cl_opts_t *out);

/*  Writes a fresh id, unique in this client, into buf
    (YARD_CLIENT_ID_MAX bytes); returns its length. */
size_t yard_cl_new_id(yard_client_t *self, char *buf);

/*  Encodes one task and appends it, unsent, to the in-flight list; sets
    *task_p when task_p is not NULL. Call yard_cl_flush to send it.
    YARD_E_ARG for a bad or already in-flight id, else the encoder's
    error or YARD_E_NOMEM. */
int yard_cl_stage(yard_client_t *self, const yard_cl_opts_t *r, const char *id,
                  size_t id_len, const void *payload, size_t len, uint64_t tag,
                  size_t index, yard_cl_task_t **task_p);

/*  Hands every unsent task to the socket, YARD_MAX_BATCH per message,
    without blocking; what the socket refuses stays unsent. */
void yard_cl_flush(yard_client_t *self);

/*  Hash of an id under this client's seed. */
uint64_t yard_cl_hash(const yard_client_t *self, const void *id, size_t len);

/*  The in-flight task with this id, or NULL. */
yard_cl_task_t *yard_cl_task_find(const yard_client_t *self, const void *id,
                                  size_t len, uint64_t hash);

/*  A buffered reply (for wait calls, not map) with this id, or NULL. */
yard_cl_done_t *yard_cl_done_find(const yard_client_t *self, const void *id,
                                  size_t len, uint64_t hash);

/*  Removes a task from every index and frees (or recycles) it. */
void yard_cl_task_drop(yard_client_t *self, yard_cl_task_t *task);

/*  Turns a task into a buffered reply built from a result view (copied),
    then drops the task. local marks replies the library made itself.
    0 or YARD_E_NOMEM (the task is then kept). */
int yard_cl_answer(yard_client_t *self, yard_cl_task_t *task,
                   const yard_result_t *result, bool local);

/*  Same, with a status and an error text (NULL for none) only. */
int yard_cl_answer_status(yard_client_t *self, yard_cl_task_t *task,
                          yard_status_t status, const char *error, bool local);

/*  Unlinks a reply from a FIFO. */
void yard_cl_fifo_unlink(yard_cl_fifo_t *fifo, yard_cl_done_t *done);

/*  Takes a buffered reply out of its FIFO (and the done map); the caller
    owns it afterwards. */
void yard_cl_done_take(yard_client_t *self, yard_cl_done_t *done);

/*  Forgets a task nobody will wait for: CANCEL to the broker if it has
    the task, then drop it, so a late reply is ignored. */
void yard_cl_abandon(yard_client_t *self, yard_cl_task_t *task);

/*  Abandons every task of map call `tag` (CANCELs batched) and frees the
    map's buffered replies. */
void yard_cl_abandon_tag(yard_client_t *self, uint64_t tag);

/*  Marks every in-flight task unsent and sends them again (then the
    CANCELs already sent), and restarts the silence clock. */
void yard_cl_resend_all(yard_client_t *self);

/*  Opens a new socket with the same routing id, closes the old one,
    connects, and re-sends every in-flight task (and the CANCELs already
    sent). why is logged. 0 or YARD_E_IO (the client stays usable and retries
   later). */
int yard_cl_reconnect(yard_client_t *self, const char *why);

/* ---- yard_client_events.c ---------------------------------------------- */

/*  The yard_err_t an ERROR code or an error text maps to, read up to the
    first ':' of text[0..len) (PROTOCOL.md 6.2, 6.3): malformed
    YARD_E_MALFORMED, too_large YARD_E_TOO_LARGE, bad_field YARD_E_RANGE,
    limit YARD_E_LIMIT, ...; an unknown code YARD_E_MALFORMED. Shared with
    the subscriber (yard_client_sub.c). */
int yard_cl_err_for_code(const char *text, size_t len);

/*  Applies one PUBLISH_ACK body: completes the confirmed publish waiting
    for its seq; any other ack (late, after a timeout) is dropped. */
void yard_cl_on_publish_ack(yard_client_t *self, const zmq_msg_t *frame);

/* ---- yard_client_io.c -------------------------------------------------- */

/*  One round of network work: take what is readable, run due timers
    (give-ups, heartbeat, reconnect), send what is unsent; if none of that
    made progress, poll until deadline_us (monotonic us, -1 = none) or the
    next timer, whichever is first, and do the round again. Returns 0,
    YARD_E_INTERRUPTED when a signal broke the poll, or YARD_E_IO. */
int yard_cl_pump(yard_client_t *self, int64_t deadline_us);

/*  Absolute monotonic deadline (us) of a wait of timeout_ms; -1 for a
    negative timeout (no deadline). */
int64_t yard_cl_deadline(int timeout_ms);

#endif
