/*  yard_worker_private.h — internals shared by yard_worker.c (the I/O
    thread: connection, protocol, timers, batching) and yard_worker_job.c
    (jobs: pool, local queue, handler threads, the yard_job_* API). Not
    installed, not for programs.

    Who touches what. The I/O thread owns the socket, the job pool (free
    list), the held list and every field of the worker not marked
    otherwise. Handler threads touch only a job they have taken, and the
    queue / done list under `lock`. A job's `state` changes only under
    `lock`, which is what lets CANCEL take a queued job back safely.
*/
#ifndef YARD_WORKER_PRIVATE_H
#define YARD_WORKER_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "yard_proc.h"
#include "yard_rand.h"
#include "yard_worker.h"

/*  Where a job is in its life. */
typedef enum {
    YARD_JOB_FREE = 0, /*  on the free list */
    YARD_JOB_IDLE,     /*  held by the I/O thread, not queued */
    YARD_JOB_QUEUED,   /*  in the local queue, waiting for a thread */
    YARD_JOB_RUNNING,  /*  a handler thread is running it */
    YARD_JOB_DONE,     /*  answered; on the done list or with the I/O */
} yard_job_state_t;

struct _yard_job_t {
    yard_worker_t *worker;    /*  owner */
    yard_job_t *qprev;        /*  previous in the local queue (under lock) */
    yard_job_t *qnext;        /*  next in the local queue (under lock), the done
                                  list (under lock) or the free list (I/O) */
    yard_job_t *hprev;        /*  previous on the held list (I/O thread only) */
    yard_job_t *hnext;        /*  next on the held list (I/O thread only) */
    zmq_msg_t frame;          /*  the TASK body this job owns (thread mode:
                                  moved, not copied, out of the message) */
    yard_task_t task;         /*  decoded task; views point into frame (or
                                  into the received message, inline mode) */
    char id[YARD_MAX_ID + 1]; /*  task.id, NUL-terminated */
    char service[YARD_MAX_SERVICE + 1]; /*  task.service, ditto */
    int64_t received_us;     /*  when the TASK arrived: deadline base */
    int64_t started_us;      /*  when the handler started: run_us base */
    atomic_bool cancelled;   /*  set by the I/O thread on CANCEL */
    yard_job_state_t state;  /*  see above; changes under worker->lock */
    uint32_t session;        /*  connection it came on; results of older
                                 connections are dropped, never sent */
    bool counted;            /*  counts against capacity (worker->held) */
    bool answered;           /*  the result body is in *out */
    yard_status_t status;    /*  status answered (for the counters) */
    msgpack_sbuffer *out;    /*  encoded result body: own_out, or a slot of
                                 the inline buffers */
    msgpack_sbuffer own_out; /*  this job's reusable result buffer */
};

/*  One result body waiting in the outgoing batch. */
typedef struct {
    yard_frame_t frame; /*  the encoded body */
    yard_job_t *job;    /*  job to recycle once sent (NULL inline) */
} yard_batch_entry_t;

struct _yard_worker_t {
    /*  Settings (strings owned). */
    char *broker;               /*  endpoint */
    char *service;              /*  service announced in READY */
    char *name;                 /*  human name announced in READY */
    uint32_t capacity;          /*  tasks held at once */
    int nthreads;               /*  handler threads; 0 = inline */
    yard_handler_fn *handler;   /*  the task handler */
    void *handler_arg;          /*  its argument */
    yard_handler_fn *fast;      /*  I/O-thread first try, or NULL */
    yard_objects_cb *objects;   /*  adds object counts to reports, or NULL */
    void *objects_arg;          /*  its argument */
    uint32_t heartbeat_ms;      /*  heartbeat interval */
    uint32_t liveness;          /*  silent intervals before reconnecting */
    uint32_t grace_ms;          /*  graceful stop budget */
    uint32_t reconnect_base_ms; /*  backoff base */
    uint32_t reconnect_max_ms;  /*  backoff cap */

    /*  Resources. */
    void *ctx;               /*  ZeroMQ context (owned) */
    void *dealer;            /*  current connection; NULL between tries */
    int stop_fd;             /*  eventfd written by yard_worker_stop */
    atomic_int stop_calls;   /*  yard_worker_stop calls so far */
    atomic_bool running;     /*  inside yard_worker_run */
    yard_decoder_t *decoder; /*  I/O thread's decoder */
    yard_wire_msg_t *msg;    /*  reused receive buffer (large) */
    msgpack_sbuffer ctl;     /*  reused buffer for READY bodies */
    yard_rand_t rng;         /*  reconnect jitter */

    /*  Connection state. */
    uint32_t session;        /*  bumped per connection */
    bool heard;              /*  heard from the broker on this connection */
    int64_t last_send_ms;    /*  last message sent (heartbeat timer) */
    int64_t last_recv_ms;    /*  last message received (liveness) */
    int64_t reconnect_at_ms; /*  next connection attempt, when no dealer */
    int64_t last_report_ms;  /*  last health report sent */
    yard_proc_t proc;        /*  loop and memory health (I/O thread) */
    uint32_t reconnect_step; /*  attempts since the broker last spoke */
    uint32_t held;           /*  jobs of this connection not yet answered */

    /*  Stopping. */
    bool stopping;        /*  READY 0 sent; draining */
    bool finished;        /*  run's loop is done */
    int64_t grace_end_ms; /*  when the drain gives up */

    /*  Outgoing RESULT batch (I/O thread). */
    yard_batch_entry_t batch[YARD_MAX_BATCH]; /*  bodies waiting */
    size_t batch_len;                         /*  entries used */
    size_t batch_bytes;                       /*  their total size */
    yard_frame_t frames[YARD_MAX_BATCH];      /*  scratch for yard_wire_send */

    /*  Inline mode: one job reused for every task, one result buffer per
        body of a TASK message. */
    yard_job_t inline_job;                      /*  the reused job */
    msgpack_sbuffer inline_out[YARD_MAX_BATCH]; /*  result buffers */

    /*  Thread mode (yard_worker_job.c). */
    yard_job_t *free_jobs; /*  recycled jobs (I/O thread) */
    yard_job_t held_list;  /*  sentinel: every job not free (I/O) */
    size_t outstanding;    /*  jobs on the held list */
    pthread_mutex_t lock;  /*  guards queue, done list, job states */
    pthread_cond_t wake;   /*  handler threads wait for work here */
    yard_job_t queue;      /*  sentinel of the local FIFO (under lock) */
    size_t nqueued;        /*  jobs in it (under lock) */
    yard_job_t *done_head; /*  answered jobs for the I/O (under lock) */
    yard_job_t *done_tail; /*  last of them, for FIFO order */
    struct yard_worker_event *ev_head; /*  events to publish (under lock) */
    struct yard_worker_event *ev_tail;
    size_t ev_queued;    /*  how many (under lock)         */
    bool closing;        /*  threads must exit (under lock) */
    int done_fd;         /*  eventfd: done list became non-empty */
    pthread_t *threads;  /*  handler threads */
    int threads_started; /*  how many are running */

    /*  Counters (relaxed atomics: read by yard_worker_stats anywhere). */
    atomic_uint_fast64_t n_received;   /*  yard_worker_stats_t.received */
    atomic_uint_fast64_t n_ok;         /*  ... .ok */
    atomic_uint_fast64_t n_failed;     /*  ... .failed */
    atomic_uint_fast64_t n_cancelled;  /*  ... .cancelled */
    atomic_uint_fast64_t n_dropped;    /*  ... .dropped */
    atomic_uint_fast64_t n_reconnects; /*  ... .reconnects */
};

/* ---- yard_worker_job.c -------------------------------------------------- */

/*  Prepares the pool, queue and done list; 0 or YARD_E_NOMEM / YARD_E_IO. */
int yard_worker_jobs_init(yard_worker_t *self);

/*  Frees every job and the pool (threads must be stopped). */
void yard_worker_jobs_fini(yard_worker_t *self);

/*  Starts the handler threads; 0 or YARD_E_NOMEM (none left running). */
int yard_worker_jobs_start(yard_worker_t *self);

/*  Tells the threads to exit and joins them (waits for running
    handlers); jobs still queued stay held, for the caller to recycle. */
void yard_worker_jobs_stop(yard_worker_t *self);

/*  A fresh job on the held list (state IDLE), or NULL out of memory. */
yard_job_t *yard_worker_job_alloc(yard_worker_t *self);

/*  Takes a job off the held list and back to the free list. */
void yard_worker_job_recycle(yard_worker_t *self, yard_job_t *job);

/*  Queues a job for the handler threads. */
void yard_worker_job_enqueue(yard_worker_t *self, yard_job_t *job);

/*  Cancels a job: a queued one is taken out of the queue, and one never
    queued is left as it is (both state IDLE; returns true: the caller
    answers or drops it); otherwise its cancel flag is set for the
    handler to see (returns false). */
bool yard_worker_job_cancel(yard_worker_t *self, yard_job_t *job);

/*  Takes every event queued by yard_worker_publish (FIFO). */
struct yard_worker_event *yard_worker_events_take(yard_worker_t *self);

/*  Sends taken events as PUBLISH messages of up to YARD_MAX_BATCH bodies
    through send (NULL: drop them), and frees them. */
void yard_worker_events_send(yard_worker_t *self,
                             struct yard_worker_event *head,
                             int (*send)(yard_worker_t *, const yard_frame_t *,
                                         size_t));

/*  Takes the whole done list (FIFO, linked by qnext); NULL if empty. */
yard_job_t *yard_worker_jobs_take_done(yard_worker_t *self);

/*  Sets up job->id / job->service / times from a decoded task. */
void yard_worker_job_prepare(yard_job_t *job, int64_t now_us);

/*  Answers a job: encodes its result body into *job->out. error is a
    NUL-terminated message (ignored when status is ok). */
void yard_worker_job_answer(yard_job_t *job, yard_status_t status,
                            const void *payload, size_t len, const char *error);

/*  Answers a job the handler left unanswered ("cancelled" when cancelled,
    else error "handler returned no result"). */
void yard_worker_job_answer_default(yard_job_t *job);

#endif
