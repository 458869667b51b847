/*  yard_worker_job.c — jobs of the worker runtime: the job pool, the local
    queue handler threads take jobs from, the done list they hand answered
    jobs back on, the handler threads themselves, and the yard_job_* API a
    handler uses.

    Hand-off design. The I/O thread fills a mutex+condvar FIFO; a handler
    thread takes a job, runs the handler, encodes the result body itself
    (so encoding runs in parallel, off the I/O thread), and appends the job
    to the done list. Only when that list goes from empty to non-empty does
    it write the done eventfd the I/O thread polls: one wake-up per burst,
    however many jobs finish in it, and the I/O thread then sends the whole
    burst as one RESULT message. (A mutex-guarded list plus an eventfd does
    what an inproc PUSH socket per thread would, without a ZeroMQ socket
    and a message allocation per result, and without a high-water mark
    that could block a handler thread.)
*/
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "yard_clock.h"
#include "yard_log.h"
#include "yard_worker_private.h"

/*  A result buffer that grew past this is freed when its job is recycled,
    so one large result does not pin memory in every pooled job. */
#define S_KEEP_BUFFER_BYTES (64u * 1024)

/* ---- Lists -------------------------------------------------------------- */

static void s_ring_init(yard_job_t *sentinel, bool held)
{
    if (held) {
        sentinel->hprev = sentinel;
        sentinel->hnext = sentinel;
    } else {
        sentinel->qprev = sentinel;
        sentinel->qnext = sentinel;
    }
}

static void s_queue_unlink(yard_job_t *job)
{
    job->worker->nqueued--;
    job->qprev->qnext = job->qnext;
    job->qnext->qprev = job->qprev;
    job->qprev = NULL;
    job->qnext = NULL;
}

static void s_job_free(yard_job_t *job)
{
    zmq_msg_close(&job->frame);
    msgpack_sbuffer_destroy(&job->own_out);
    free(job);
}

/* ---- Pool, queue, threads ----------------------------------------------- */

int yard_worker_jobs_init(yard_worker_t *self)
{
    s_ring_init(&self->held_list, true);
    s_ring_init(&self->queue, false);
    self->free_jobs = NULL;
    self->outstanding = 0;
    self->done_head = NULL;
    self->done_tail = NULL;
    self->ev_head = NULL;
    self->ev_tail = NULL;
    self->ev_queued = 0;
    self->closing = false;
    self->threads = NULL;
    self->threads_started = 0;
    self->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->done_fd < 0)
        return YARD_E_IO;
    if (pthread_mutex_init(&self->lock, NULL) != 0) {
        close(self->done_fd);
        self->done_fd = -1;
        return YARD_E_NOMEM;
    }
    if (pthread_cond_init(&self->wake, NULL) != 0) {
        pthread_mutex_destroy(&self->lock);
        close(self->done_fd);
        self->done_fd = -1;
        return YARD_E_NOMEM;
    }
    return 0;
}

void yard_worker_jobs_fini(yard_worker_t *self)
{
    if (self->done_fd >= 0) /*  events never sent */
        yard_worker_events_send(self, yard_worker_events_take(self), NULL);
    while (self->held_list.hnext != &self->held_list)
        yard_worker_job_recycle(self, self->held_list.hnext);
    while (self->free_jobs) {
        yard_job_t *job = self->free_jobs;
        self->free_jobs = job->qnext;
        s_job_free(job);
    }
    free(self->threads);
    self->threads = NULL;
    if (self->done_fd >= 0) {
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->lock);
        close(self->done_fd);
        self->done_fd = -1;
    }
}

yard_job_t *yard_worker_job_alloc(yard_worker_t *self)
{
    yard_job_t *job = self->free_jobs;
    if (job)
        self->free_jobs = job->qnext;
    else {
        job = calloc(1, sizeof *job);
        if (!job)
            return NULL;
        job->worker = self;
        zmq_msg_init(&job->frame);
        msgpack_sbuffer_init(&job->own_out);
    }
    job->qprev = NULL;
    job->qnext = NULL;
    memset(&job->task, 0, sizeof job->task);
    job->id[0] = '\0';
    job->service[0] = '\0';
    job->received_us = 0;
    job->started_us = 0;
    atomic_store_explicit(&job->cancelled, false, memory_order_relaxed);
    job->state = YARD_JOB_IDLE;
    job->session = self->session;
    job->counted = false;
    job->answered = false;
    job->status = YARD_ERROR;
    job->out = &job->own_out;
    msgpack_sbuffer_clear(&job->own_out);
    /*  Held list: every job not on the free list, so CANCEL, reconnects
        and the stop path can find them all. */
    job->hprev = self->held_list.hprev;
    job->hnext = &self->held_list;
    self->held_list.hprev->hnext = job;
    self->held_list.hprev = job;
    self->outstanding++;
    return job;
}

void yard_worker_job_recycle(yard_worker_t *self, yard_job_t *job)
{
    job->hprev->hnext = job->hnext;
    job->hnext->hprev = job->hprev;
    job->hprev = NULL;
    job->hnext = NULL;
    self->outstanding--;
    if (job->counted && job->session == self->session && self->held > 0)
        self->held--;
    job->counted = false;
    /*  Release the task frame now rather than on reuse: it may be large. */
    zmq_msg_close(&job->frame);
    zmq_msg_init(&job->frame);
    if (job->own_out.alloc > S_KEEP_BUFFER_BYTES) {
        msgpack_sbuffer_destroy(&job->own_out);
        msgpack_sbuffer_init(&job->own_out);
    }
    job->state = YARD_JOB_FREE;
    job->qnext = self->free_jobs;
    self->free_jobs = job;
}

void yard_worker_job_enqueue(yard_worker_t *self, yard_job_t *job)
{
    pthread_mutex_lock(&self->lock);
    job->state = YARD_JOB_QUEUED;
    self->nqueued++;
    job->qprev = self->queue.qprev;
    job->qnext = &self->queue;
    self->queue.qprev->qnext = job;
    self->queue.qprev = job;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
}

bool yard_worker_job_cancel(yard_worker_t *self, yard_job_t *job)
{
    bool taken = false;
    pthread_mutex_lock(&self->lock);
    if (job->state == YARD_JOB_QUEUED) {
        s_queue_unlink(job);
        job->state = YARD_JOB_IDLE;
        taken = true;
    } else if (job->state == YARD_JOB_IDLE)
        taken = true; /*  never queued: the I/O thread has it already */
    else
        atomic_store_explicit(&job->cancelled, true, memory_order_relaxed);
    pthread_mutex_unlock(&self->lock);
    return taken;
}

yard_job_t *yard_worker_jobs_take_done(yard_worker_t *self)
{
    pthread_mutex_lock(&self->lock);
    yard_job_t *head = self->done_head;
    self->done_head = NULL;
    self->done_tail = NULL;
    pthread_mutex_unlock(&self->lock);
    return head;
}

/*  Runs one job after another until the pool closes. */
static void *s_handler_thread(void *arg)
{
    yard_worker_t *self = (yard_worker_t *)arg;
    pthread_mutex_lock(&self->lock);
    while (true) {
        while (!self->closing && self->queue.qnext == &self->queue)
            pthread_cond_wait(&self->wake, &self->lock);
        if (self->closing)
            break;
        yard_job_t *job = self->queue.qnext;
        s_queue_unlink(job);
        job->state = YARD_JOB_RUNNING;
        pthread_mutex_unlock(&self->lock);

        job->started_us = yard_clock_us();
        self->handler(job, self->handler_arg);
        if (!job->answered)
            yard_worker_job_answer_default(job);

        pthread_mutex_lock(&self->lock);
        job->state = YARD_JOB_DONE;
        job->qnext = NULL;
        bool was_empty = self->done_head == NULL;
        if (was_empty)
            self->done_head = job;
        else
            self->done_tail->qnext = job;
        self->done_tail = job;
        if (was_empty) {
            /*  One wake-up per empty -> non-empty change. The I/O thread
                resets the eventfd before it takes the list, so a job added
                after its take always brings a wake-up of its own. */
            uint64_t one = 1;
            ssize_t n = write(self->done_fd, &one, sizeof one);
            (void)n; /*  EAGAIN only if the counter is full: still set */
        }
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

int yard_worker_jobs_start(yard_worker_t *self)
{
    if (self->nthreads <= 0)
        return 0;
    free(self->threads);
    self->threads = calloc((size_t)self->nthreads, sizeof *self->threads);
    if (!self->threads)
        return YARD_E_NOMEM;
    self->closing = false;
    /*  Handler threads block the process's stop signals so a SIGTERM is
        taken by a thread that is not in the middle of a user handler. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGQUIT);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = 0;
    for (int i = 0; i < self->nthreads; i++) {
        if (pthread_create(&self->threads[i], NULL, s_handler_thread, self)) {
            yard_error("cannot start handler thread %d of %d: %s", i + 1,
                       self->nthreads, strerror(errno));
            rc = YARD_E_NOMEM;
            break;
        }
        self->threads_started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        yard_worker_jobs_stop(self);
    return rc;
}

void yard_worker_jobs_stop(yard_worker_t *self)
{
    if (self->threads_started == 0)
        return;
    pthread_mutex_lock(&self->lock);
    self->closing = true;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    for (int i = 0; i < self->threads_started; i++)
        pthread_join(self->threads[i], NULL);
    self->threads_started = 0;
    pthread_mutex_lock(&self->lock);
    self->closing = false;
    pthread_mutex_unlock(&self->lock);
}

/* ---- Answers ------------------------------------------------------------ */

/*  Copies a view into a NUL-terminated buffer, cutting what does not fit. */
static void s_copy_cstr(char *dst, size_t size, yard_bytes_t src)
{
    size_t n = src.len < size - 1 ? src.len : size - 1;
    if (n > 0)
        memcpy(dst, src.ptr, n);
    dst[n] = '\0';
}

void yard_worker_job_prepare(yard_job_t *job, int64_t now_us)
{
    s_copy_cstr(job->id, sizeof job->id, job->task.id);
    s_copy_cstr(job->service, sizeof job->service, job->task.service);
    job->received_us = now_us;
    job->started_us = now_us;
}

/*  Cuts a string of len bytes back to a whole UTF-8 sequence (after a
    truncation), so the error field stays valid text. Returns the length. */
static size_t s_utf8_trim(char *text, size_t len)
{
    if (len == 0)
        return 0;
    size_t i = len - 1;
    while (i > 0 && ((unsigned char)text[i] & 0xC0) == 0x80)
        i--;
    unsigned char lead = (unsigned char)text[i];
    size_t need = (lead & 0x80) == 0      ? 1
                  : (lead & 0xE0) == 0xC0 ? 2
                  : (lead & 0xF0) == 0xE0 ? 3
                  : (lead & 0xF8) == 0xF0 ? 4
                                          : 1;
    if (i + need > len) {
        text[i] = '\0';
        return i;
    }
    return len;
}

static int s_encode(yard_job_t *job, yard_status_t status, const void *payload,
                    size_t len, const char *error)
{
    yard_result_t r;
    memset(&r, 0, sizeof r);
    r.job = job->task.job;
    r.status = status;
    if (status == YARD_OK) {
        /*  Non-NULL even when empty: "ok, zero bytes", not "no payload". */
        r.payload.ptr =
            payload ? (const uint8_t *)payload : (const uint8_t *)"";
        r.payload.len = (uint32_t)len;
    } else
        r.error = yard_bytes_str(error);
    int64_t now = yard_clock_us();
    r.run_us = now > job->started_us ? (uint64_t)(now - job->started_us) : 0;
    msgpack_sbuffer_clear(job->out);
    return yard_encode_result(job->out, YARD_ROLE_WORKER, &r);
}

void yard_worker_job_answer(yard_job_t *job, yard_status_t status,
                            const void *payload, size_t len, const char *error)
{
    int rc;
    char why[160];
    if (status == YARD_OK && len > YARD_MAX_PAYLOAD) {
        snprintf(why, sizeof why, "result too large: %zu bytes (max %u)", len,
                 (unsigned)YARD_MAX_PAYLOAD);
        status = YARD_ERROR;
        error = why;
    } else if (status != YARD_OK && (!error || !*error))
        error = yard_status_name(status);
    rc = s_encode(job, status, payload, len, error);
    if (rc != 0) {
        /*  Never leave the broker without an answer: a slot would leak. */
        snprintf(why, sizeof why, "worker could not encode its result: %s",
                 yard_strerror(rc));
        status = YARD_ERROR;
        rc = s_encode(job, status, NULL, 0, why);
        if (rc != 0)
            msgpack_sbuffer_clear(job->out); /*  sent as nothing; logged */
    }
    job->status = status;
    job->answered = true;
}

void yard_worker_job_answer_default(yard_job_t *job)
{
    if (yard_job_cancelled(job))
        yard_worker_job_answer(job, YARD_CANCELLED, NULL, 0,
                               "cancelled by the broker");
    else
        yard_worker_job_answer(job, YARD_ERROR, NULL, 0,
                               "handler returned no result");
}

/* ---- Job API ------------------------------------------------------------ */

yard_bytes_t yard_job_payload(const yard_job_t *job)
{
    return job->task.payload;
}

const char *yard_job_id(const yard_job_t *job)
{
    return job->id;
}

const char *yard_job_service(const yard_job_t *job)
{
    return job->service;
}

uint64_t yard_job_handle(const yard_job_t *job)
{
    return job->task.job;
}

uint32_t yard_job_attempt(const yard_job_t *job)
{
    return job->task.attempt;
}

int64_t yard_job_remaining_ms(const yard_job_t *job)
{
    int64_t deadline = job->received_us + (int64_t)job->task.timeout_ms * 1000;
    int64_t left = deadline - yard_clock_us();
    return left > 0 ? left / 1000 : 0;
}

/*  State of a yard_job_header lookup. */
typedef struct {
    const char *key;   /*  wanted key */
    size_t klen;       /*  its length */
    const char *value; /*  found value, NULL until found */
    size_t vlen;       /*  its length */
} s_header_find_t;

static int s_header_match(const char *key, size_t klen, const char *value,
                          size_t vlen, void *arg)
{
    s_header_find_t *find = (s_header_find_t *)arg;
    if (klen != find->klen || memcmp(key, find->key, klen) != 0)
        return 0;
    find->value = value;
    find->vlen = vlen;
    return 1;
}

bool yard_job_header(const yard_job_t *job, const char *key, const char **value,
                     size_t *vlen)
{
    if (!key || job->task.headers.len == 0)
        return false;
    s_header_find_t find = {key, strlen(key), NULL, 0};
    yard_headers_each(&job->task.headers, s_header_match, &find);
    if (!find.value)
        return false;
    if (value)
        *value = find.value;
    if (vlen)
        *vlen = find.vlen;
    return true;
}

int yard_job_headers_each(const yard_job_t *job, yard_headers_fn *fn, void *arg)
{
    if (!fn)
        return YARD_E_ARG;
    if (job->task.headers.len == 0)
        return 0;
    return yard_headers_each(&job->task.headers, fn, arg);
}

bool yard_job_cancelled(const yard_job_t *job)
{
    return atomic_load_explicit(&((yard_job_t *)job)->cancelled,
                                memory_order_relaxed);
}

/* ---- Events ------------------------------------------------------------- */

struct yard_worker_event {
    struct yard_worker_event *next;
    size_t len;
    uint8_t data[]; /*  the encoded event body */
};

int yard_worker_publish(yard_worker_t *self, const char *type,
                        const void *payload, size_t len)
{
    if (!self || !type || (len && !payload))
        return YARD_E_ARG;
    yard_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = yard_bytes_str(type);
    ev.source = yard_bytes_str(self->name);
    ev.payload.ptr = len ? payload : NULL;
    ev.payload.len = (uint32_t)len;
    if (len > YARD_MAX_EVENT_PAYLOAD)
        return YARD_E_TOO_LARGE;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int rc = yard_encode_event(&buf, YARD_ROLE_WORKER, &ev);
    struct yard_worker_event *node =
        rc == 0 ? malloc(sizeof *node + buf.size) : NULL;
    if (rc == 0 && !node)
        rc = YARD_E_NOMEM;
    if (node) {
        node->next = NULL;
        node->len = buf.size;
        memcpy(node->data, buf.data, buf.size);
    }
    msgpack_sbuffer_destroy(&buf);
    if (rc != 0)
        return rc == YARD_E_ARG ? YARD_E_RANGE : rc;
    pthread_mutex_lock(&self->lock);
    if (self->ev_queued >= YARD_WORKER_MAX_EVENTS) {
        pthread_mutex_unlock(&self->lock);
        free(node);
        return YARD_E_LIMIT;
    }
    if (self->ev_tail)
        self->ev_tail->next = node;
    else
        self->ev_head = node;
    self->ev_tail = node;
    self->ev_queued++;
    pthread_mutex_unlock(&self->lock);
    uint64_t one = 1;
    ssize_t n = write(self->done_fd, &one, sizeof one);
    (void)n; /*  a full eventfd counter still wakes the I/O thread */
    return 0;
}

int yard_job_publish(yard_job_t *job, const char *type, const void *payload,
                     size_t len)
{
    return job ? yard_worker_publish(job->worker, type, payload, len)
               : YARD_E_ARG;
}

struct yard_worker_event *yard_worker_events_take(yard_worker_t *self)
{
    pthread_mutex_lock(&self->lock);
    struct yard_worker_event *head = self->ev_head;
    self->ev_head = self->ev_tail = NULL;
    self->ev_queued = 0;
    pthread_mutex_unlock(&self->lock);
    return head;
}

void yard_worker_events_send(yard_worker_t *self,
                             struct yard_worker_event *head,
                             int (*send)(yard_worker_t *, const yard_frame_t *,
                                         size_t))
{
    yard_frame_t frames[YARD_MAX_BATCH];
    while (head) {
        struct yard_worker_event *batch = head;
        size_t n = 0;
        for (struct yard_worker_event *e = head; e && n < YARD_MAX_BATCH;
             e = e->next) {
            frames[n].data = e->data;
            frames[n++].len = e->len;
            head = e->next;
        }
        if (send)
            send(self, frames, n);
        while (batch != head) {
            struct yard_worker_event *next = batch->next;
            free(batch);
            batch = next;
        }
    }
}

int yard_job_reply(yard_job_t *job, const void *data, size_t len)
{
    if (job->answered)
        return YARD_E_ARG;
    if (len > 0 && !data) {
        yard_worker_job_answer(job, YARD_ERROR, NULL, 0,
                               "handler replied with NULL data");
        return YARD_E_ARG;
    }
    yard_worker_job_answer(job, YARD_OK, data, len, NULL);
    return job->status == YARD_OK ? 0 : YARD_E_TOO_LARGE;
}

/*  Formats a handler's reason (trimmed at a UTF-8 boundary) and answers
    with status. */
static int s_answer_text(yard_job_t *job, yard_status_t status,
                         const char *fallback, const char *fmt, va_list ap)
{
    if (job->answered)
        return YARD_E_ARG;
    char text[YARD_MAX_ERROR + 1];
    int n = fmt ? vsnprintf(text, sizeof text, fmt, ap) : -1;
    if (n < 0)
        snprintf(text, sizeof text, "%s", fallback);
    else if ((size_t)n >= sizeof text)
        s_utf8_trim(text, sizeof text - 1);
    yard_worker_job_answer(job, status, NULL, 0, text);
    return 0;
}

int yard_job_fail(yard_job_t *job, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_answer_text(job, YARD_ERROR, "handler failed", fmt, ap);
    va_end(ap);
    return rc;
}

int yard_job_reject(yard_job_t *job, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_answer_text(job, YARD_INVALID, "invalid request", fmt, ap);
    va_end(ap);
    return rc;
}
