/*  yard_worker.c — the worker runtime's I/O thread: one zmq_poll loop over
    the DEALER connected to the broker, the stop eventfd and the done
    eventfd of the handler threads (yard_worker_job.c).

    The worker peer as a state machine (PROTOCOL.md "Worker"):

        CONNECTED --silence for liveness x heartbeat--+
            | --DISCONNECT from the broker-----------+
            |                                        v
            |                             WAITING (no socket; backoff)
            |                                        | timer
            |<----- new DEALER, connect, READY ------+
            | yard_worker_stop
            v
        DRAINING (READY capacity 0 sent; jobs finish, results go out)
            | nothing held, or grace over
            v
        DONE (DISCONNECT sent; run returns)

    A new connection is a new session: jobs from an older one are
    cancelled, and their results are dropped rather than sent, because a
    restarted broker numbers its jobs afresh and could take an old result
    for a new job of the same number.
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "yard_backoff.h"
#include "yard_clock.h"
#include "yard_log.h"
#include "yard_worker_private.h"

/*  Reconnect delays get +-S_RECONNECT_JITTER of random spread so a fleet
    of workers does not reconnect in lock step after a broker restart. */
#define S_RECONNECT_JITTER 0.2
/*  Messages read from the socket per loop turn, so results and timers are
    served even under a flood of input. */
#define S_RECV_BURST 256
/*  Linger on the last close, so the final RESULTs and DISCONNECT reach the
    broker; sockets dropped for a reconnect linger 0 (yard_wire_setup). */
#define S_FINAL_LINGER_MS 1000
/*  A busy worker, which sends no idle heartbeats, still reports its
    health at least this many heartbeat intervals apart. */
#define S_REPORT_EVERY 5
/*  Inline result buffers larger than this are freed after use. */
#define S_KEEP_BUFFER_BYTES (64u * 1024)

_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "yard_worker_stop must be async-signal-safe");

/* ---- Config ------------------------------------------------------------- */

void yard_worker_config_defaults(yard_worker_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->broker = YARD_WORKER_DEFAULT_BROKER;
    cfg->capacity = YARD_WORKER_DEFAULT_CAPACITY;
    cfg->threads = YARD_WORKER_THREADS_PER_SLOT;
    cfg->heartbeat_ms = YARD_HEARTBEAT_INTERVAL_MS;
    cfg->liveness = YARD_HEARTBEAT_LIVENESS;
    cfg->grace_ms = YARD_WORKER_DEFAULT_GRACE_MS;
    cfg->reconnect_base_ms = YARD_WORKER_RECONNECT_BASE_MS;
    cfg->reconnect_max_ms = YARD_WORKER_RECONNECT_MAX_MS;
}

static int s_config_error(char *err, size_t errlen, const char *what)
{
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", what);
    return YARD_E_ARG;
}

/*  True for a name the broker accepts: 1..128 of [A-Za-z0-9._:-]. */
static bool s_service_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > YARD_MAX_SERVICE)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                  c == '-';
        if (!ok)
            return false;
    }
    return true;
}

int yard_worker_config_check(const yard_worker_config_t *cfg, char *err,
                             size_t errlen)
{
    if (!cfg)
        return s_config_error(err, errlen, "no configuration");
    if (!cfg->broker || !*cfg->broker)
        return s_config_error(err, errlen, "broker endpoint is empty");
    if (!cfg->service || !s_service_valid(cfg->service))
        return s_config_error(err, errlen,
                              "service must be 1..128 characters of "
                              "A-Z a-z 0-9 . _ : -");
    if (cfg->name && strlen(cfg->name) > 255)
        return s_config_error(err, errlen, "name is longer than 255 bytes");
    if (cfg->capacity < 1 || cfg->capacity > YARD_MAX_CAPACITY)
        return s_config_error(err, errlen, "capacity must be 1..10000");
    if (cfg->threads < -1 || cfg->threads > YARD_WORKER_MAX_THREADS)
        return s_config_error(err, errlen,
                              "threads must be -1 (one per slot), 0 "
                              "(inline) or 1..1024");
    if (!cfg->handler)
        return s_config_error(err, errlen, "no handler");
    if (cfg->heartbeat_ms < 1 || cfg->heartbeat_ms > 3600000)
        return s_config_error(err, errlen, "heartbeat must be 1..3600000 ms");
    if (cfg->liveness < 1 || cfg->liveness > 1000)
        return s_config_error(err, errlen, "liveness must be 1..1000");
    if (cfg->grace_ms > YARD_MAX_TIMEOUT_MS)
        return s_config_error(err, errlen, "grace must be at most 24 h");
    if (cfg->reconnect_max_ms < cfg->reconnect_base_ms ||
        cfg->reconnect_max_ms > 3600000)
        return s_config_error(err, errlen,
                              "reconnect backoff must have base <= cap <= "
                              "3600000 ms");
    return 0;
}

/* ---- Life cycle --------------------------------------------------------- */

yard_worker_t *yard_worker_new(const yard_worker_config_t *cfg)
{
    char why[128];
    if (yard_worker_config_check(cfg, why, sizeof why) != 0) {
        yard_error("worker: bad configuration: %s", why);
        return NULL;
    }
    yard_worker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->stop_fd = -1;
    self->done_fd = -1;

    char default_name[300];
    if (!cfg->name || !*cfg->name) {
        char host[256];
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "worker");
        host[sizeof host - 1] = '\0';
        snprintf(default_name, sizeof default_name, "%.200s-%ld", host,
                 (long)getpid());
    }
    self->broker = strdup(cfg->broker);
    self->service = strdup(cfg->service);
    self->name = strdup(cfg->name && *cfg->name ? cfg->name : default_name);
    self->capacity = cfg->capacity;
    if (cfg->threads < 0)
        self->nthreads = cfg->capacity < YARD_WORKER_MAX_THREADS
                             ? (int)cfg->capacity
                             : YARD_WORKER_MAX_THREADS;
    else
        self->nthreads = (uint32_t)cfg->threads > cfg->capacity
                             ? (int)cfg->capacity
                             : cfg->threads;
    self->handler = cfg->handler;
    self->handler_arg = cfg->handler_arg;
    self->fast = cfg->fast;
    self->objects = cfg->objects;
    self->objects_arg = cfg->objects_arg;
    self->heartbeat_ms = cfg->heartbeat_ms;
    self->liveness = cfg->liveness;
    self->grace_ms = cfg->grace_ms;
    self->reconnect_base_ms = cfg->reconnect_base_ms;
    self->reconnect_max_ms = cfg->reconnect_max_ms;
    atomic_init(&self->stop_calls, 0);
    atomic_init(&self->running, false);
    yard_rand_seed_os(&self->rng);
    msgpack_sbuffer_init(&self->ctl);
    for (size_t i = 0; i < YARD_MAX_BATCH; i++)
        msgpack_sbuffer_init(&self->inline_out[i]);
    self->inline_job.worker = self;
    zmq_msg_init(&self->inline_job.frame);
    atomic_init(&self->inline_job.cancelled, false);

    self->ctx = zmq_ctx_new();
    self->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    self->decoder = yard_decoder_new();
    self->msg = malloc(sizeof *self->msg);
    if (self->msg)
        yard_wire_msg_init(self->msg);
    if (!self->broker || !self->service || !self->name || !self->ctx ||
        self->stop_fd < 0 || !self->decoder || !self->msg ||
        yard_worker_jobs_init(self) != 0) {
        yard_error("worker: out of resources creating the worker");
        yard_worker_destroy(&self);
        return NULL;
    }
    return self;
}

void yard_worker_destroy(yard_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    yard_worker_t *self = *self_p;
    yard_worker_jobs_stop(self);
    yard_worker_jobs_fini(self);
    if (self->dealer)
        zmq_close(self->dealer);
    if (self->msg) {
        yard_wire_msg_close(self->msg);
        free(self->msg);
    }
    yard_decoder_destroy(&self->decoder);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    if (self->stop_fd >= 0)
        close(self->stop_fd);
    msgpack_sbuffer_destroy(&self->ctl);
    for (size_t i = 0; i < YARD_MAX_BATCH; i++)
        msgpack_sbuffer_destroy(&self->inline_out[i]);
    zmq_msg_close(&self->inline_job.frame);
    free(self->broker);
    free(self->service);
    free(self->name);
    free(self);
    *self_p = NULL;
}

void yard_worker_stop(yard_worker_t *self)
{
    if (!self)
        return;
    int saved_errno = errno; /*  may run in a signal handler */
    atomic_fetch_add(&self->stop_calls, 1);
    uint64_t one = 1;
    ssize_t n = write(self->stop_fd, &one, sizeof one);
    (void)n;
    errno = saved_errno;
}

/*  The worker a SIGTERM / SIGINT stops: a signal handler can reach
    nothing else, and yard_worker_stop is async-signal-safe. */
static yard_worker_t *_Atomic s_signal_target;

static void s_on_signal(int sig)
{
    (void)sig;
    yard_worker_stop(atomic_load(&s_signal_target));
}

void yard_worker_stop_on_signals(yard_worker_t *self)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    if (self) {
        atomic_store(&s_signal_target, self);
        sa.sa_handler = s_on_signal;
    } else
        sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (!self)
        atomic_store(&s_signal_target, NULL);
}

void yard_worker_stats(yard_worker_t *self, yard_worker_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self)
        return;
    out->received =
        atomic_load_explicit(&self->n_received, memory_order_relaxed);
    out->ok = atomic_load_explicit(&self->n_ok, memory_order_relaxed);
    out->failed = atomic_load_explicit(&self->n_failed, memory_order_relaxed);
    out->cancelled =
        atomic_load_explicit(&self->n_cancelled, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&self->n_dropped, memory_order_relaxed);
    out->reconnects =
        atomic_load_explicit(&self->n_reconnects, memory_order_relaxed);
}

static void s_count(atomic_uint_fast64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

/* ---- Sending ------------------------------------------------------------ */

/*  Sends one message on the current connection without ever blocking the
    loop. Returns 0 or YARD_E_IO (logged; the caller decides). */
static int s_send(yard_worker_t *self, yard_cmd_t cmd,
                  const yard_frame_t *bodies, size_t nbodies)
{
    if (!self->dealer)
        return YARD_E_IO;
    int rc = yard_wire_send(self->dealer, NULL, 0, YARD_ROLE_WORKER, cmd,
                            bodies, nbodies, ZMQ_DONTWAIT);
    if (rc != 0) {
        yard_warn("worker: cannot send %s to %s: %s", yard_cmd_name(cmd),
                  self->broker, zmq_strerror(errno));
        return rc;
    }
    self->last_send_ms = yard_clock_ms();
    return 0;
}

static void s_send_ready(yard_worker_t *self, uint32_t capacity)
{
    yard_ready_t ready;
    memset(&ready, 0, sizeof ready);
    ready.service = yard_bytes_str(self->service);
    ready.capacity = capacity;
    ready.name = yard_bytes_str(self->name);
    ready.pid = (uint32_t)getpid();
    ready.version = yard_bytes_str(YARD_VERSION_STRING);
    msgpack_sbuffer_clear(&self->ctl);
    int rc = yard_encode_ready(&self->ctl, &ready);
    if (rc != 0) {
        yard_error("worker: cannot encode READY: %s", yard_strerror(rc));
        return;
    }
    yard_frame_t body = {self->ctl.data, self->ctl.size};
    s_send(self, YARD_CMD_READY, &body, 1);
}

/*  Sends a HEARTBEAT carrying this process's health report (PROTOCOL.md
    8.8); probe is the broker probe it answers, 0 for none. */
static void s_send_report(yard_worker_t *self, uint64_t probe)
{
    int64_t now_us = yard_clock_us();
    yard_proc_t *p = &self->proc;
    yard_proc_sample(p, now_us);
    yard_report_t r;
    memset(&r, 0, sizeof r);
    r.probe = probe;
    r.uptime_ms = (uint64_t)(now_us - p->started_us) / 1000;
    r.version = yard_bytes_str(YARD_VERSION_STRING);
    r.rss = p->rss;
    r.rss_peak = p->rss_peak;
    r.rss_growth = yard_proc_rss_growth(p);
    r.growth_window_ms = yard_proc_window_ms(p);
    r.loop_iterations = p->iterations;
    r.loop_busy_us = p->busy_us;
    r.loop_max_us = p->max_busy_us;
    r.loop_max_lag_us = p->max_lag_us;
    r.loop_slow = p->slow;
    r.loop_stalls = p->stalls;
    r.loop_last_stall_us = p->last_stall_us;
    uint64_t age = yard_proc_stall_age_ms(p, now_us);
    r.loop_stall_age_ms = age == UINT64_MAX ? 0 : age;
    r.loop_slow_ms = (uint64_t)p->slow_us / 1000;
    r.loop_stall_ms = (uint64_t)p->stall_us / 1000;
    r.in_flight = self->held;
    pthread_mutex_lock(&self->lock);
    r.pending = (uint32_t)self->nqueued;
    uint64_t events_waiting = self->ev_queued;
    pthread_mutex_unlock(&self->lock);

    /*  objects: the runtime's own count, then the program's. */
    yard_object_count_t counts[YARD_MAX_OBJECTS];
    size_t n = 0;
    counts[n++] = (yard_object_count_t){"events_waiting", events_waiting};
    if (self->objects)
        n += self->objects(counts + n, YARD_MAX_OBJECTS - n, self->objects_arg);
    msgpack_sbuffer objs;
    msgpack_sbuffer_init(&objs);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &objs, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        const char *name = counts[i].name ? counts[i].name : "";
        msgpack_pack_str_with_body(&pk, name, strlen(name));
        msgpack_pack_uint64(&pk, counts[i].value);
    }
    r.objects.ptr = (const uint8_t *)objs.data;
    r.objects.len = (uint32_t)objs.size;

    msgpack_sbuffer_clear(&self->ctl);
    int rc = yard_encode_report(&self->ctl, &r);
    if (rc != 0) {
        /*  A bad object name from the program: report without them. */
        yard_warn("worker: health report refused (%s): bad object counts?",
                  yard_strerror(rc));
        r.objects.ptr = NULL;
        r.objects.len = 0;
        msgpack_sbuffer_clear(&self->ctl);
        rc = yard_encode_report(&self->ctl, &r);
    }
    msgpack_sbuffer_destroy(&objs);
    if (rc == 0) {
        yard_frame_t body = {self->ctl.data, self->ctl.size};
        s_send(self, YARD_CMD_HEARTBEAT, &body, 1);
    } else
        s_send(self, YARD_CMD_HEARTBEAT, NULL, 0);
    self->last_report_ms = now_us / 1000;
}

/*  A HEARTBEAT from the broker with a body is a probe: answer at once. */
static void s_on_probe(yard_worker_t *self, yard_wire_msg_t *msg)
{
    if (msg->nbodies != 1)
        return;
    yard_probe_t probe;
    zmq_msg_t *body = &msg->bodies[0];
    int rc = yard_decode_probe(self->decoder, zmq_msg_data(body),
                               zmq_msg_size(body), &probe);
    if (rc != 0) {
        yard_warn("worker: bad probe from the broker: %s", yard_strerror(rc));
        return;
    }
    s_send_report(self, probe.probe);
}

/*  Sends the batch as one RESULT message and recycles its jobs. */
static void s_flush(yard_worker_t *self)
{
    if (self->batch_len == 0)
        return;
    for (size_t i = 0; i < self->batch_len; i++)
        self->frames[i] = self->batch[i].frame;
    if (s_send(self, YARD_CMD_RESULT, self->frames, self->batch_len) != 0)
        s_count(&self->n_dropped, self->batch_len);
    for (size_t i = 0; i < self->batch_len; i++) {
        yard_job_t *job = self->batch[i].job;
        if (job)
            yard_worker_job_recycle(self, job);
    }
    self->batch_len = 0;
    self->batch_bytes = 0;
}

/*  Adds an answered job's result to the batch, or drops it when it
    belongs to an older connection (see the banner). job is recycled with
    the batch; in inline mode pass owned = false. */
static void s_batch_add(yard_worker_t *self, yard_job_t *job, bool owned)
{
    bool stale = job->session != self->session || !self->dealer;
    if (stale || job->out->size == 0) {
        if (!stale)
            yard_error("worker: no result could be encoded for job %llu",
                       (unsigned long long)job->task.job);
        s_count(&self->n_dropped, 1);
        if (owned)
            yard_worker_job_recycle(self, job);
        return;
    }
    size_t size = job->out->size;
    if (self->batch_len == YARD_MAX_BATCH ||
        (self->batch_len > 0 && self->batch_bytes + size > YARD_MAX_MSGSIZE))
        s_flush(self);
    switch (job->status) {
    case YARD_OK:
        s_count(&self->n_ok, 1);
        break;
    case YARD_CANCELLED:
        s_count(&self->n_cancelled, 1);
        break;
    default:
        s_count(&self->n_failed, 1);
        break;
    }
    yard_batch_entry_t *entry = &self->batch[self->batch_len++];
    entry->frame.data = job->out->data;
    entry->frame.len = size;
    entry->job = owned ? job : NULL;
    self->batch_bytes += size;
}

/* ---- Connection --------------------------------------------------------- */

/*  Opens a new DEALER, connects it and sends READY. Returns 0, or
    YARD_E_ARG when the endpoint is refused, YARD_E_IO otherwise. */
static int s_connect(yard_worker_t *self)
{
    void *dealer = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!dealer) {
        yard_error("worker: cannot create a socket: %s", zmq_strerror(errno));
        return YARD_E_IO;
    }
    if (yard_wire_setup(dealer) != 0 || zmq_connect(dealer, self->broker)) {
        int err = errno;
        yard_error("worker: cannot connect to %s: %s", self->broker,
                   zmq_strerror(err));
        zmq_close(dealer);
        return err == EINVAL || err == EPROTONOSUPPORT || err == ENOCOMPATPROTO
                   ? YARD_E_ARG
                   : YARD_E_IO;
    }
    self->dealer = dealer;
    self->session++;
    self->held = 0;
    self->heard = false;
    int64_t now = yard_clock_ms();
    self->last_recv_ms = now;
    self->last_send_ms = now;
    yard_info("worker: connecting to %s as service %s (capacity %u, %s)",
              self->broker, self->service, self->stopping ? 0u : self->capacity,
              self->nthreads ? "threads" : "inline");
    s_send_ready(self, self->stopping ? 0 : self->capacity);
    return 0;
}

/*  Cancels every job held: queued ones are dropped at once, running ones
    see their cancel flag. Their results will not be sent. */
static void s_cancel_all(yard_worker_t *self)
{
    yard_job_t *job = self->held_list.hnext;
    while (job != &self->held_list) {
        yard_job_t *next = job->hnext;
        if (yard_worker_job_cancel(self, job)) {
            s_count(&self->n_dropped, 1);
            yard_worker_job_recycle(self, job);
        }
        job = next;
    }
}

/*  Drops the connection (the broker is silent, or said DISCONNECT) and
    schedules the next attempt with backoff; none while stopping. */
static void s_reconnect(yard_worker_t *self, const char *why)
{
    s_flush(self);
    if (self->dealer) {
        zmq_close(self->dealer);
        self->dealer = NULL;
    }
    self->session++; /*  every job held is now from an older session */
    self->held = 0;
    s_cancel_all(self);
    s_count(&self->n_reconnects, 1);
    if (self->stopping) {
        yard_warn("worker: %s; stopping, so not reconnecting", why);
        return;
    }
    self->reconnect_step++;
    uint32_t delay =
        yard_backoff_ms(self->reconnect_base_ms, self->reconnect_step,
                        self->reconnect_max_ms, S_RECONNECT_JITTER, &self->rng);
    self->reconnect_at_ms = yard_clock_ms() + delay;
    yard_warn("worker: %s; reconnecting to %s in %u ms (attempt %u)", why,
              self->broker, delay, self->reconnect_step);
}

/* ---- Receiving ---------------------------------------------------------- */

/*  Runs the handler for every task of a TASK message on this thread and
    answers them all in one RESULT: the inline fast path (no allocation
    once the result buffers have grown). */
static void s_on_task_inline(yard_worker_t *self, yard_wire_msg_t *msg)
{
    yard_job_t *job = &self->inline_job;
    for (size_t i = 0; i < msg->nbodies; i++) {
        s_count(&self->n_received, 1);
        memset(&job->task, 0, sizeof job->task);
        job->session = self->session;
        job->answered = false;
        job->out = &self->inline_out[i];
        msgpack_sbuffer_clear(job->out);
        int rc = yard_decode_task(self->decoder, zmq_msg_data(&msg->bodies[i]),
                                  zmq_msg_size(&msg->bodies[i]), &job->task);
        yard_worker_job_prepare(job, yard_clock_us());
        if (rc != 0) {
            yard_warn("worker: bad TASK body %zu: %s", i, yard_strerror(rc));
            if (job->task.job == 0)
                continue; /*  nothing to answer it by */
            char why[96];
            snprintf(why, sizeof why, "worker refused the task: %s",
                     yard_strerror(rc));
            yard_worker_job_answer(job, YARD_ERROR, NULL, 0, why);
        } else if (i >= self->capacity)
            yard_worker_job_answer(job, YARD_ERROR, NULL, 0,
                                   "worker over capacity");
        else {
            self->handler(job, self->handler_arg);
            if (!job->answered)
                yard_worker_job_answer_default(job);
        }
        s_batch_add(self, job, false);
    }
    s_flush(self);
    /*  Buffers that grew for a large result are released, as in the pool,
        so one big answer does not pin memory for the life of the worker. */
    for (size_t i = 0; i < msg->nbodies; i++)
        if (self->inline_out[i].alloc > S_KEEP_BUFFER_BYTES) {
            msgpack_sbuffer_destroy(&self->inline_out[i]);
            msgpack_sbuffer_init(&self->inline_out[i]);
        }
}

/*  Takes every task of a TASK message into a job of its own and queues it
    for the handler threads. */
static void s_on_task_threads(yard_worker_t *self, yard_wire_msg_t *msg)
{
    for (size_t i = 0; i < msg->nbodies; i++) {
        s_count(&self->n_received, 1);
        yard_job_t *job = yard_worker_job_alloc(self);
        if (!job) {
            yard_error("worker: out of memory taking a task; dropped");
            s_count(&self->n_dropped, 1);
            continue;
        }
        /*  The job takes the frame itself: no copy of the payload. */
        zmq_msg_move(&job->frame, &msg->bodies[i]);
        int rc = yard_decode_task(self->decoder, zmq_msg_data(&job->frame),
                                  zmq_msg_size(&job->frame), &job->task);
        yard_worker_job_prepare(job, yard_clock_us());
        if (rc != 0) {
            yard_warn("worker: bad TASK body %zu: %s", i, yard_strerror(rc));
            if (job->task.job == 0) {
                yard_worker_job_recycle(self, job);
                continue;
            }
            char why[96];
            snprintf(why, sizeof why, "worker refused the task: %s",
                     yard_strerror(rc));
            yard_worker_job_answer(job, YARD_ERROR, NULL, 0, why);
            s_batch_add(self, job, true);
        } else if (self->held >= self->capacity) {
            /*  The broker must never send this; answering keeps our
                memory bounded and frees its slot. */
            yard_warn("worker: broker sent task %llu beyond capacity %u",
                      (unsigned long long)job->task.job, self->capacity);
            yard_worker_job_answer(job, YARD_ERROR, NULL, 0,
                                   "worker over capacity");
            s_batch_add(self, job, true);
        } else if (self->fast &&
                   (self->fast(job, self->handler_arg), job->answered)) {
            /*  Answered at once on this thread: no hand-off. */
            s_batch_add(self, job, true);
        } else {
            job->counted = true;
            self->held++;
            yard_worker_job_enqueue(self, job);
        }
    }
    s_flush(self);
}

/*  CANCEL: a queued job is answered "cancelled" now; a running one gets
    its flag set and answers when its handler returns. */
static void s_on_cancel(yard_worker_t *self, yard_wire_msg_t *msg)
{
    for (size_t i = 0; i < msg->nbodies; i++) {
        yard_cancel_t cancel;
        memset(&cancel, 0, sizeof cancel);
        int rc =
            yard_decode_cancel(self->decoder, zmq_msg_data(&msg->bodies[i]),
                               zmq_msg_size(&msg->bodies[i]), &cancel);
        if (rc != 0) {
            yard_warn("worker: bad CANCEL body: %s", yard_strerror(rc));
            continue;
        }
        /*  O(jobs held), on CANCEL only: no index to keep up per task. */
        for (yard_job_t *job = self->held_list.hnext; job != &self->held_list;
             job = job->hnext) {
            if (job->task.job != cancel.job || job->session != self->session ||
                !job->counted)
                continue;
            if (yard_worker_job_cancel(self, job)) {
                yard_worker_job_answer(job, YARD_CANCELLED, NULL, 0,
                                       "cancelled before it started");
                s_batch_add(self, job, true);
            }
            break;
        }
    }
    s_flush(self);
}

static void s_on_error(yard_worker_t *self, yard_wire_msg_t *msg)
{
    yard_error_t error;
    memset(&error, 0, sizeof error);
    if (msg->nbodies < 1 ||
        yard_decode_error(self->decoder, zmq_msg_data(&msg->bodies[0]),
                          zmq_msg_size(&msg->bodies[0]), &error) != 0) {
        yard_warn("worker: broker sent an unreadable ERROR");
        return;
    }
    yard_warn("worker: broker refused a message: %.*s: %.*s",
              (int)error.code.len, (const char *)error.code.ptr,
              (int)error.message.len, (const char *)error.message.ptr);
}

/*  Handles one message from the broker. Returns false when the connection
    was dropped (stop reading from it). */
static bool s_on_message(yard_worker_t *self, yard_wire_msg_t *msg)
{
    self->last_recv_ms = yard_clock_ms(); /*  any message is a sign of life */
    if (msg->header_err != 0) {
        yard_warn("worker: bad message from the broker: %s",
                  yard_strerror(msg->header_err));
        return true;
    }
    int rc = msg->role == YARD_ROLE_BROKER
                 ? yard_cmd_check(msg->role, msg->cmd, msg->nframes)
                 : YARD_E_ROLE;
    if (rc != 0) {
        yard_warn("worker: refused %s (%zu bodies) from the broker: %s",
                  yard_cmd_name(msg->cmd), msg->nframes, yard_strerror(rc));
        return true;
    }
    if (msg->cmd != YARD_CMD_DISCONNECT) {
        if (!self->heard)
            yard_info("worker: joined %s as service %s", self->broker,
                      self->service);
        self->heard = true;
        self->reconnect_step = 0;
    }
    switch (msg->cmd) {
    case YARD_CMD_TASK:
        if (self->nthreads == 0)
            s_on_task_inline(self, msg);
        else
            s_on_task_threads(self, msg);
        break;
    case YARD_CMD_CANCEL:
        s_on_cancel(self, msg);
        break;
    case YARD_CMD_HEARTBEAT:
        s_on_probe(self, msg);
        break;
    case YARD_CMD_ERROR:
        s_on_error(self, msg);
        break;
    case YARD_CMD_DISCONNECT:
        s_reconnect(self, "broker sent DISCONNECT");
        return false;
    default:
        yard_warn("worker: ignored %s from the broker",
                  yard_cmd_name(msg->cmd));
        break;
    }
    return true;
}

static void s_recv_all(yard_worker_t *self)
{
    for (int n = 0; n < S_RECV_BURST && self->dealer; n++) {
        if (yard_wire_recv(self->dealer, false, self->msg, ZMQ_DONTWAIT) != 0) {
            if (errno != EAGAIN && errno != EINTR)
                yard_warn("worker: receive failed: %s", zmq_strerror(errno));
            break;
        }
        bool keep = s_on_message(self, self->msg);
        yard_wire_msg_close(self->msg);
        if (!keep)
            break;
    }
}

static int s_send_events(yard_worker_t *self, const yard_frame_t *frames,
                         size_t n)
{
    return s_send(self, YARD_CMD_PUBLISH, frames, n);
}

/*  Publishes what yard_worker_publish queued, while connected (until then
    the events wait, up to YARD_WORKER_MAX_EVENTS). */
static void s_publish_events(yard_worker_t *self)
{
    if (self->dealer)
        yard_worker_events_send(self, yard_worker_events_take(self),
                                s_send_events);
}

/*  Sends what the handler threads have finished, as few RESULTs as fit,
    and the events they published. */
static void s_collect(yard_worker_t *self)
{
    uint64_t count;
    ssize_t n = read(self->done_fd, &count, sizeof count);
    (void)n; /*  reset the eventfd before taking the list */
    yard_job_t *job = yard_worker_jobs_take_done(self);
    while (job) {
        yard_job_t *next = job->qnext;
        job->qnext = NULL;
        s_batch_add(self, job, true);
        job = next;
    }
    s_flush(self);
    s_publish_events(self);
}

/* ---- Stopping and timers ------------------------------------------------ */

static void s_on_stop(yard_worker_t *self, int64_t now)
{
    uint64_t count;
    ssize_t n = read(self->stop_fd, &count, sizeof count);
    (void)n;
    int calls = atomic_load(&self->stop_calls);
    if (!self->stopping && calls > 0) {
        self->stopping = true;
        self->grace_end_ms = now + self->grace_ms;
        yard_info("worker: stopping: finishing %zu job(s) within %u ms",
                  self->outstanding, self->grace_ms);
        if (self->dealer)
            s_send_ready(self, 0);
    }
    if (calls > 1 && self->grace_end_ms > now) {
        yard_info("worker: second stop request: cutting the grace short");
        self->grace_end_ms = now;
    }
}

/*  Ends the run: DISCONNECT once nothing is held, or once grace is over
    (what is still held is cancelled and the broker re-queues it). */
static void s_finish(yard_worker_t *self)
{
    if (self->outstanding > 0) {
        yard_warn("worker: grace over with %zu job(s) unfinished; "
                  "cancelling them",
                  self->outstanding);
        s_cancel_all(self);
    }
    if (self->dealer) {
        s_publish_events(self);
        s_send(self, YARD_CMD_DISCONNECT, NULL, 0);
        int linger = S_FINAL_LINGER_MS;
        zmq_setsockopt(self->dealer, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(self->dealer);
        self->dealer = NULL;
        yard_info("worker: left %s", self->broker);
    }
    self->finished = true;
}

static void s_timers(yard_worker_t *self, int64_t now)
{
    if (self->stopping) {
        if (self->outstanding == 0 || now >= self->grace_end_ms)
            s_finish(self);
        if (self->finished)
            return;
    }
    if (self->dealer) {
        int64_t silent_for = now - self->last_recv_ms;
        if (silent_for >= (int64_t)self->heartbeat_ms * self->liveness) {
            char why[96];
            snprintf(why, sizeof why, "broker silent for %lld ms",
                     (long long)silent_for);
            s_reconnect(self, why);
        } else if (now - self->last_send_ms >= self->heartbeat_ms ||
                   now - self->last_report_ms >=
                       (int64_t)self->heartbeat_ms * S_REPORT_EVERY) {
            /*  Counted as sent even if it failed: no retry storm. */
            s_send_report(self, 0);
            self->last_send_ms = now;
        }
    } else if (!self->stopping && now >= self->reconnect_at_ms) {
        if (s_connect(self) != 0)
            s_reconnect(self, "connect failed");
    }
}

/*  Milliseconds until the next timer is due (0 if one is due now). */
static long s_poll_timeout(const yard_worker_t *self, int64_t now)
{
    int64_t next = now + 60000;
    if (self->dealer) {
        int64_t hb = self->last_send_ms + self->heartbeat_ms;
        int64_t report =
            self->last_report_ms + (int64_t)self->heartbeat_ms * S_REPORT_EVERY;
        hb = report < hb ? report : hb;
        int64_t dead =
            self->last_recv_ms + (int64_t)self->heartbeat_ms * self->liveness;
        next = hb < next ? hb : next;
        next = dead < next ? dead : next;
    } else if (!self->stopping && self->reconnect_at_ms < next)
        next = self->reconnect_at_ms;
    if (self->stopping && self->grace_end_ms < next)
        next = self->grace_end_ms;
    return next > now ? (long)(next - now) : 0;
}

/* ---- Run ---------------------------------------------------------------- */

int yard_worker_run(yard_worker_t *self)
{
    if (!self)
        return YARD_E_ARG;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&self->running, &expected, true))
        return YARD_E_ARG;
    if (atomic_load(&self->stop_calls) > 0) {
        atomic_store(&self->running, false);
        return 0;
    }
    self->stopping = false;
    self->finished = false;
    self->reconnect_step = 0;
    yard_proc_init(&self->proc, yard_clock_us());
    self->last_report_ms = yard_clock_ms();
    int rc = yard_worker_jobs_start(self);
    if (rc == 0)
        rc = s_connect(self);
    if (rc != 0) {
        yard_worker_jobs_stop(self);
        atomic_store(&self->running, false);
        return rc;
    }
    while (!self->finished) {
        int64_t now = yard_clock_ms();
        zmq_pollitem_t items[3];
        memset(items, 0, sizeof items);
        items[0].fd = self->stop_fd;
        items[0].events = ZMQ_POLLIN;
        items[1].fd = self->done_fd;
        items[1].events = ZMQ_POLLIN;
        int nitems = 2;
        if (self->dealer) {
            items[2].socket = self->dealer;
            items[2].events = ZMQ_POLLIN;
            nitems = 3;
        }
        long timeout = s_poll_timeout(self, now);
        yard_proc_poll_enter(&self->proc, now * 1000, timeout);
        int n = zmq_poll(items, nitems, timeout);
        yard_proc_poll_leave(&self->proc, yard_clock_us());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            yard_error("worker: poll failed: %s", zmq_strerror(errno));
            rc = YARD_E_IO;
            break;
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_on_stop(self, yard_clock_ms());
        if (items[1].revents & ZMQ_POLLIN)
            s_collect(self);
        if (nitems == 3 && (items[2].revents & ZMQ_POLLIN))
            s_recv_all(self);
        s_timers(self, yard_clock_ms());
    }
    if (!self->finished) /*  left on an error: still say goodbye */
        s_finish(self);
    /*  Handlers past the grace have their cancel flag; wait for them, then
        drop what they answered (the connection is gone). */
    yard_worker_jobs_stop(self);
    yard_worker_jobs_take_done(self);
    while (self->held_list.hnext != &self->held_list) {
        s_count(&self->n_dropped, 1);
        yard_worker_job_recycle(self, self->held_list.hnext);
    }
    yard_worker_stats_t st;
    yard_worker_stats(self, &st);
    yard_info("worker: stopped: %llu received, %llu ok, %llu failed, "
              "%llu cancelled, %llu dropped, %llu reconnects",
              (unsigned long long)st.received, (unsigned long long)st.ok,
              (unsigned long long)st.failed, (unsigned long long)st.cancelled,
              (unsigned long long)st.dropped,
              (unsigned long long)st.reconnects);
    atomic_store(&self->running, false);
    return rc;
}
