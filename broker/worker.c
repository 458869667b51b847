/*  worker.c — the broker's view of a worker: registration (READY), the
    tasks it holds, its results, its loss, and handing it tasks.

    Credit is capacity: a worker never holds more than it announced. The
    spare capacity of every worker is also summed per service, so "is there
    anyone to dispatch to" is O(1) and only the choice of worker scans. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "yard_backoff.h"
#include "yard_clock.h"
#include "yard_hash.h"
#include "yard_log.h"

#define S_JOB_MIX 0x9E3779B97F4A7C15ull /*  spreads sequential job ids */

static inline uint64_t s_job_hash(uint64_t job)
{
    return job * S_JOB_MIX;
}

static bool s_job_eq(const void *value, const void *key)
{
    return ((const broker_task_t *)value)->job == *(const uint64_t *)key;
}

static bool s_worker_eq(const void *value, const void *key)
{
    const broker_worker_t *w = value;
    const yard_wire_msg_t *msg = key;
    return w->identity_len == msg->identity_len &&
           memcmp(w->identity, msg->identity, msg->identity_len) == 0;
}

//  Changes a worker's in-flight count and keeps the service's spare sum in
//  step.
static void s_set_in_flight(broker_worker_t *w, uint32_t in_flight)
{
    uint32_t before = worker_spare(w);
    w->in_flight = in_flight;
    w->service->spare = w->service->spare - before + worker_spare(w);
}

static void s_set_capacity(broker_worker_t *w, uint32_t capacity)
{
    uint32_t before = worker_spare(w);
    w->capacity = capacity;
    w->service->spare = w->service->spare - before + worker_spare(w);
}

static void s_attach(broker_worker_t *w, broker_task_t *task)
{
    task->wprev = NULL;
    task->wnext = w->tasks;
    if (w->tasks)
        w->tasks->wprev = task;
    w->tasks = task;
}

void worker_detach(broker_worker_t *w, broker_task_t *task)
{
    if (task->wprev)
        task->wprev->wnext = task->wnext;
    else
        w->tasks = task->wnext;
    if (task->wnext)
        task->wnext->wprev = task->wprev;
    task->wprev = task->wnext = NULL;
}

void worker_send_simple(broker_t *self, broker_worker_t *w, yard_cmd_t cmd,
                        int64_t now)
{
    yard_wire_send(self->router, w->identity, w->identity_len, YARD_ROLE_BROKER,
                   cmd, NULL, 0, 0);
    w->last_sent_us = now;
}

void worker_send_cancel(broker_t *self, broker_worker_t *w, uint64_t job,
                        int64_t now)
{
    yard_cancel_t cancel = {.job = job};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    if (yard_encode_cancel(&buf, YARD_ROLE_BROKER, &cancel) == 0) {
        yard_frame_t frame = {buf.data, buf.size};
        yard_wire_send(self->router, w->identity, w->identity_len,
                       YARD_ROLE_BROKER, YARD_CMD_CANCEL, &frame, 1, 0);
        w->last_sent_us = now;
    }
    msgpack_sbuffer_destroy(&buf);
}

//  A worker registers, or changes its capacity, with READY.
static void s_handle_ready(broker_t *self, broker_worker_t *w,
                           yard_wire_msg_t *msg, int64_t now)
{
    yard_ready_t ready;
    zmq_msg_t *body = &msg->bodies[0];
    int rc = yard_decode_ready(self->decoder, zmq_msg_data(body),
                               zmq_msg_size(body), &ready);
    if (rc != 0) {
        self->malformed++;
        broker_send_error(self, msg->identity, msg->identity_len, rc,
                          "READY body refused", NULL);
        return;
    }
    static const char admin[] = YARD_ADMIN_SERVICE;
    if (ready.service.len == sizeof(admin) - 1 &&
        memcmp(ready.service.ptr, admin, sizeof(admin) - 1) == 0) {
        self->malformed++;
        broker_send_error(self, msg->identity, msg->identity_len, YARD_E_RANGE,
                          "READY refused: yard.admin is the broker's own "
                          "service",
                          NULL);
        return;
    }
    if (w &&
        (w->service->name_len != ready.service.len ||
         memcmp(w->service->name, ready.service.ptr, ready.service.len) != 0)) {
        //  PROTOCOL.md 5.5: a connection serves one service for its life.
        self->malformed++;
        broker_send_error(self, msg->identity, msg->identity_len, YARD_E_RANGE,
                          "READY refused: this connection is registered for "
                          "another service (reconnect to serve a new one)",
                          NULL);
        return;
    }
    if (!w) {
        broker_service_t *service =
            service_require(self, ready.service.ptr, ready.service.len);
        w = service ? calloc(1, sizeof(*w)) : NULL;
        if (!w) {
            broker_send_error(self, msg->identity, msg->identity_len,
                              YARD_E_NOMEM, "out of memory", NULL);
            return;
        }
        memcpy(w->identity, msg->identity, msg->identity_len);
        w->identity_len = msg->identity_len;
        w->hash = yard_hash64(msg->identity, msg->identity_len, self->seed);
        w->service = service;
        size_t nlen = ready.name.len < sizeof(w->name) - 1
                          ? ready.name.len
                          : sizeof(w->name) - 1;
        if (nlen)
            memcpy(w->name, ready.name.ptr, nlen);
        w->pid = ready.pid;
        w->capacity = 0;
        w->last_sent_us = now;
        if (service_add_worker(service, w) != 0 ||
            yard_map_put(self->workers, w->hash, w) != 0) {
            service_remove_worker(service, w);
            free(w);
            broker_send_error(self, msg->identity, msg->identity_len,
                              YARD_E_NOMEM, "out of memory", NULL);
            return;
        }
        yard_info("worker joined: service=%s name=%s pid=%u capacity=%u",
                  service->name, w->name, w->pid, ready.capacity);
        broker_event_field_t f[] = {
            {.key = "service", .kind = EV_STR, .s = service->name},
            {.key = "name", .kind = EV_STR, .s = w->name},
            {.key = "pid", .kind = EV_UINT, .u = w->pid},
            {.key = "capacity", .kind = EV_UINT, .u = ready.capacity},
        };
        broker_emit(self, "worker.joined", f, 4);
    } else if (ready.capacity != w->capacity)
        yard_info("worker capacity: service=%s name=%s %u -> %u",
                  w->service->name, w->name, w->capacity, ready.capacity);
    s_set_capacity(w, ready.capacity);
    w->last_seen_us = now;
    //  The acknowledgement: a worker knows it is registered (and resets its
    //  reconnect backoff) when this arrives, before any TASK.
    worker_send_simple(self, w, YARD_CMD_HEARTBEAT, now);
    broker_want_dispatch(self, w->service);
}

//  One result body from a worker.
static void s_handle_result(broker_t *self, broker_worker_t *w,
                            const yard_result_t *result, int64_t now)
{
    uint64_t job = result->job;
    broker_task_t *task =
        yard_map_get(self->tasks_by_job, s_job_hash(job), s_job_eq, &job);
    if (!task || task->worker != w) {
        //  A result from before a broker restart, or for a task the broker
        //  already re-dispatched after declaring this worker lost.
        self->stale_results++;
        return;
    }
    yard_map_remove(self->tasks_by_job, s_job_hash(job), task);
    worker_detach(w, task);
    s_set_in_flight(w, w->in_flight - 1);
    w->done++;
    broker_service_t *service = task->service;
    broker_want_dispatch(self, service);
    task->worker = NULL;
    task->job = 0;
    if (task->state == TASK_ORPHAN) {
        task_free(task);
        return;
    }
    task->state = TASK_QUEUED; //  no longer held; answered or re-queued next
    service->in_flight--;
    uint64_t run_us =
        result->run_us ? result->run_us : (uint64_t)(now - task->dispatched_us);
    switch (result->status) {
    case YARD_OK:
        breaker_record(self, task, YARD_BREAKER_SUCCESS, run_us, now);
        service->counters.completed++;
        yard_hist_record(&service->latency,
                         (uint64_t)(now - task->accepted_us));
        if (self->want_task_events) {
            broker_event_field_t f[] = {
                {.key = "attempts", .kind = EV_UINT, .u = task->attempts},
                {.key = "total_us",
                 .kind = EV_UINT,
                 .u = (uint64_t)(now - task->accepted_us)},
                {.key = "run_us", .kind = EV_UINT, .u = run_us},
            };
            broker_emit_task(self, "task.completed", task, f, 3);
        }
        broker_answer(self, task, YARD_OK, result->payload.ptr,
                      result->payload.len, NULL, 0, run_us);
        return;
    case YARD_INVALID: {
        //  The worker says the request itself is bad: the client's
        //  mistake, not the service's. No retry, and the breaker does not
        //  count it (PROTOCOL.md 5.3, 8.6).
        breaker_record(self, task, YARD_BREAKER_NEUTRAL, run_us, now);
        service->counters.failed++;
        const char *err = result->error.len ? (const char *)result->error.ptr
                                            : "invalid request";
        size_t err_len = result->error.len ? result->error.len : strlen(err);
        broker_event_field_t f[] = {
            {.key = "attempts", .kind = EV_UINT, .u = task->attempts},
            {.key = "error", .kind = EV_BYTES, .s = err, .n = err_len},
        };
        broker_emit_task(self, "task.failed", task, f, 2);
        broker_answer(self, task, YARD_INVALID, result->payload.ptr,
                      result->payload.len, err, err_len, run_us);
        return;
    }
    default: {
        //  "cancelled" that the broker did not ask for (an asked-for one
        //  finds the task orphaned above) counts as a failure too.
        //  Worker errors (and any other status a worker should not send)
        //  are failures; retry while retries and time remain. Losses do
        //  not spend retries. An open breaker sheds the retry at once.
        breaker_record(self, task, YARD_BREAKER_ERROR, run_us, now);
        uint32_t errors = (uint32_t)task->attempts - task->losses;
        if (errors <= task->retries && now < task->deadline_us) {
            uint32_t delay =
                yard_backoff_ms(task->backoff_ms, errors, BROKER_RETRY_CAP_MS,
                                BROKER_RETRY_JITTER, &self->rng);
            service->counters.retried++;
            broker_event_field_t f[] = {
                {.key = "attempt", .kind = EV_UINT, .u = task->attempts + 1u},
                {.key = "delay_ms", .kind = EV_UINT, .u = delay},
            };
            broker_emit_task(self, "task.retried", task, f, 2);
            task->state = TASK_DELAYED;
            task->ready_us = now + (int64_t)delay * 1000;
            service->delayed++;
            int64_t key = task->ready_us < task->deadline_us
                              ? task->ready_us
                              : task->deadline_us;
            yard_heap_update(self->timers, &task->timer, key);
            return;
        }
        service->counters.failed++;
        const char *err = (const char *)result->error.ptr;
        size_t err_len = result->error.len;
        if (!err_len) {
            err = "handler failed";
            err_len = strlen(err);
        }
        broker_event_field_t f[] = {
            {.key = "attempts", .kind = EV_UINT, .u = task->attempts},
            {.key = "error", .kind = EV_BYTES, .s = err, .n = err_len},
        };
        broker_emit_task(self, "task.failed", task, f, 2);
        broker_answer(self, task, YARD_ERROR, result->payload.ptr,
                      result->payload.len, err, err_len, run_us);
        return;
    }
    }
}

void worker_handle(broker_t *self, yard_wire_msg_t *msg, int64_t now)
{
    uint64_t hash = yard_hash64(msg->identity, msg->identity_len, self->seed);
    broker_worker_t *w = yard_map_get(self->workers, hash, s_worker_eq, msg);
    if (w)
        w->last_seen_us = now;

    switch (msg->cmd) {
    case YARD_CMD_READY:
        s_handle_ready(self, w, msg, now);
        return;
    case YARD_CMD_DISCONNECT:
        if (w)
            worker_lost(self, w, "disconnected");
        return;
    case YARD_CMD_PUBLISH:
        events_publish(self, msg->identity, msg->identity_len, msg, now);
        return;
    case YARD_CMD_RESULT:
    case YARD_CMD_HEARTBEAT:
        break;
    default:
        self->malformed++;
        broker_send_error(self, msg->identity, msg->identity_len,
                          YARD_E_UNKNOWN_CMD, "command not valid for a worker",
                          NULL);
        return;
    }
    if (!w) {
        //  Work from a worker we do not know (we restarted, or it never
        //  sent READY): tell it to register again.
        yard_error_t why = {.code = yard_bytes_str(YARD_ERRCODE_NOT_READY),
                            .message = yard_bytes_str("send READY first")};
        msgpack_sbuffer buf;
        msgpack_sbuffer_init(&buf);
        if (yard_encode_error(&buf, &why) == 0) {
            yard_frame_t frame = {buf.data, buf.size};
            yard_wire_send(self->router, msg->identity, msg->identity_len,
                           YARD_ROLE_BROKER, YARD_CMD_DISCONNECT, &frame, 1, 0);
        }
        msgpack_sbuffer_destroy(&buf);
        return;
    }
    if (msg->cmd == YARD_CMD_HEARTBEAT) {
        if (msg->nbodies == 1)
            probe_on_report(self, w, msg, now);
        return;
    }
    for (size_t i = 0; i < msg->nbodies; i++) {
        yard_result_t result;
        memset(&result, 0, sizeof(result));
        zmq_msg_t *body = &msg->bodies[i];
        int rc = yard_decode_result(self->decoder, zmq_msg_data(body),
                                    zmq_msg_size(body), &result);
        if (rc != 0) {
            self->malformed++;
            yard_warn("worker %s sent a bad result: %s", w->name,
                      yard_strerror(rc));
            broker_send_error(self, msg->identity, msg->identity_len, rc,
                              "RESULT body refused", NULL);
            if (result.job == 0)
                continue;
            //  The job is known: fail that task rather than leak the slot.
            static const char why[] = "invalid result from worker";
            result.status = YARD_ERROR;
            result.payload.ptr = NULL;
            result.payload.len = 0;
            result.error.ptr = (const uint8_t *)why;
            result.error.len = sizeof(why) - 1;
        }
        s_handle_result(self, w, &result, now);
    }
}

void worker_free(broker_worker_t *w)
{
    if (w) {
        free(w->report);
        free(w);
    }
}

void worker_lost(broker_t *self, broker_worker_t *w, const char *reason)
{
    int64_t now = yard_clock_us();
    broker_service_t *service = w->service;
    size_t requeued = 0;
    broker_task_t *task = w->tasks;
    while (task) {
        broker_task_t *next = task->wnext;
        yard_map_remove(self->tasks_by_job, s_job_hash(task->job), task);
        task->job = 0;
        task->worker = NULL;
        task->wprev = task->wnext = NULL;
        if (task->state == TASK_ORPHAN)
            task_free(task);
        else {
            task->state = TASK_QUEUED; //  held by nobody now
            service->in_flight--;
            task->losses++;
            service->counters.lost++;
            breaker_record(self, task, YARD_BREAKER_LOST,
                           (uint64_t)(now - task->dispatched_us), now);
            if (task->losses >= BROKER_MAX_LOSSES) {
                static const char why[] = "worker lost 3 times";
                service->counters.failed++;
                broker_event_field_t f[] = {
                    {.key = "attempts", .kind = EV_UINT, .u = task->attempts},
                    {.key = "error", .kind = EV_STR, .s = why},
                };
                broker_emit_task(self, "task.failed", task, f, 2);
                broker_answer(self, task, YARD_ERROR, NULL, 0, why,
                              sizeof(why) - 1, 0);
            } else {
                //  Front of the queue: it has waited longest already.
                task->ready_us = now;
                service_enqueue(service, task, true);
                requeued++;
            }
        }
        task = next;
    }
    w->tasks = NULL;
    s_set_in_flight(w, 0);
    service_remove_worker(service, w);
    yard_map_remove(self->workers, w->hash, w);
    yard_info("worker left: service=%s name=%s pid=%u reason=%s "
              "requeued=%zu",
              service->name, w->name, w->pid, reason, requeued);
    bool left = strcmp(reason, "disconnected") == 0;
    broker_event_field_t f[] = {
        {.key = "service", .kind = EV_STR, .s = service->name},
        {.key = "name", .kind = EV_STR, .s = w->name},
        {.key = "pid", .kind = EV_UINT, .u = w->pid},
        {.key = "requeued", .kind = EV_UINT, .u = requeued},
        {.key = "reason", .kind = EV_STR, .s = reason},
    };
    broker_emit(self, left ? "worker.left" : "worker.lost", f, left ? 4 : 5);
    probe_worker_gone(self, w);
    worker_free(w);
    broker_want_dispatch(self, service);
}

size_t worker_dispatch(broker_t *self, broker_worker_t *w, size_t n,
                       int64_t now)
{
    broker_service_t *service = w->service;
    msgpack_sbuffer *buf = &self->taskbuf;
    size_t ends[YARD_MAX_BATCH];
    size_t count = 0;
    buf->size = 0;
    if (n > YARD_MAX_BATCH)
        n = YARD_MAX_BATCH;
    while (count < n) {
        broker_task_t *task = service_pop(service);
        if (!task)
            break;
        if (now >= task->deadline_us) {
            //  Expired in the queue this very turn: the timer sweep will
            //  answer it; put it back where the sweep finds it.
            service_enqueue(service, task, true);
            break;
        }
        uint64_t job = ++self->next_job;
        yard_task_t body = {
            .job = job,
            .id = {task_id(task), task->id_len},
            .service = {(const uint8_t *)service->name,
                        (uint32_t)service->name_len},
            .payload = {task_payload(task), task->payload_len},
            .timeout_ms = (uint32_t)((task->deadline_us - now + 999) / 1000),
            .attempt = (uint32_t)task->attempts + 1,
            .headers = {task->headers_len ? task_headers(task) : NULL,
                        task->headers_len},
        };
        if (yard_encode_task(buf, &body) != 0 ||
            yard_map_put(self->tasks_by_job, s_job_hash(job), task) != 0) {
            //  Cannot happen for a task we accepted, short of memory.
            service_enqueue(service, task, true);
            break;
        }
        ends[count++] = buf->size;
        task->job = job;
        task->worker = w;
        task->state = TASK_INFLIGHT;
        task->attempts++;
        task->dispatched_us = now;
        task->queue_us += (uint64_t)(now - task->ready_us);
        service->in_flight++;
        s_attach(w, task);
    }
    if (count == 0)
        return 0;
    s_set_in_flight(w, w->in_flight + (uint32_t)count);
    yard_frame_t frames[YARD_MAX_BATCH];
    size_t start = 0;
    for (size_t i = 0; i < count; i++) {
        frames[i].data = buf->data + start;
        frames[i].len = ends[i] - start;
        start = ends[i];
    }
    yard_wire_send(self->router, w->identity, w->identity_len, YARD_ROLE_BROKER,
                   YARD_CMD_TASK, frames, count, 0);
    w->last_sent_us = now;
    return count;
}
