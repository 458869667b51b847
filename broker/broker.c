/*  broker.c — yard-broker's event loop.

    One turn of the loop:
      1. zmq_poll on the ROUTER and the signalfd, until the next timer;
      2. read up to BROKER_RECV_BURST messages and handle each (client or
         worker by the header's role);
      3. fire due timers (deadlines, retry backoffs);
      4. dispatch: every service that gained tasks or free capacity hands
         out work, several tasks per TASK message;
      5. flush every client's reply outbox, one RESULT message each;
      6. once per heartbeat interval: heartbeat idle workers, declare
         silent ones lost, forget idle clients;
      7. when draining after SIGTERM: stop once nothing is left or the
         grace period is over.
    Steps 4 and 5 after reading a burst are what turn many small messages
    into a few large ones under load, without adding latency at low load
    (a lone message is handled, dispatched and flushed in the same turn). */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "broker.h"
#include "yard_clock.h"
#include "yard_hash.h"
#include "yard_log.h"

#define S_TASK_OF(node)                                                        \
    ((broker_task_t *)((char *)(node)-offsetof(broker_task_t, timer)))

static void s_free_service(void *value, void *arg)
{
    (void)arg;
    service_destroy(value);
}
static void s_free_worker(void *value, void *arg)
{
    (void)arg;
    worker_free(value);
}
static void s_free_client(void *value, void *arg)
{
    (void)arg;
    client_free(value);
}
static void s_free_task(void *value, void *arg)
{
    (void)arg;
    task_free(value);
}
static void s_free_orphan(void *value, void *arg)
{
    (void)arg;
    broker_task_t *task = value;
    if (task->state == TASK_ORPHAN)
        task_free(task);
}

static int s_signal_fd(void)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0)
        return -1;
    return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

broker_t *broker_new(const broker_config_t *config, char *err, size_t errlen)
{
    if (errlen)
        err[0] = 0;
    broker_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->config = *config;
    self->signal_fd = -1;
    self->breaker_wake_us = INT64_MAX;
    yard_rand_seed_os(&self->rng);
    self->seed = yard_rand_next(&self->rng);
    //  Job handles start at a random point per boot so a result from a
    //  worker that served a previous broker cannot match a new job; kept
    //  below 2^53 so JavaScript peers echo them exactly.
    self->next_job = (yard_rand_next(&self->rng) & 0x7FFFFFFFull) << 21;
    self->decoder = yard_decoder_new();
    self->msg = malloc(sizeof(*self->msg));
    msgpack_sbuffer_init(&self->scratch);
    msgpack_sbuffer_init(&self->taskbuf);
    self->services = yard_map_new(64);
    self->workers = yard_map_new(64);
    self->clients = yard_map_new(256);
    self->tasks_by_id = yard_map_new(4096);
    self->tasks_by_job = yard_map_new(4096);
    self->timers = yard_heap_new();
    //  Block the signals before ZeroMQ starts its I/O threads, which
    //  inherit the mask: otherwise SIGTERM may land on one of them and
    //  kill the process instead of reaching the signalfd.
    self->signal_fd = s_signal_fd();
    if (self->signal_fd < 0)
        yard_warn("no signalfd: SIGTERM will not drain gracefully");
    self->ctx = zmq_ctx_new();
    if (!self->decoder || !self->msg || !self->services || !self->workers ||
        !self->clients || !self->tasks_by_id || !self->tasks_by_job ||
        !self->timers || !self->ctx) {
        yard_error("out of memory at start");
        broker_destroy(&self);
        return NULL;
    }
    yard_wire_msg_init(self->msg);
    if (breaker_configure_start(self, err, errlen) != 0) {
        broker_destroy(&self);
        return NULL;
    }
    self->router = zmq_socket(self->ctx, ZMQ_ROUTER);
    self->events_sock = zmq_socket(self->ctx, ZMQ_ROUTER);
    if (!self->router || !self->events_sock ||
        yard_wire_setup(self->router) != 0 ||
        yard_wire_setup(self->events_sock) != 0 || events_init(self) != 0 ||
        cache_init(self) != 0) {
        yard_error("cannot create sockets: %s", zmq_strerror(errno));
        broker_destroy(&self);
        return NULL;
    }
    //  Events: a send to a subscriber whose pipe is full fails at once
    //  (EAGAIN, counted as dropped) instead of being dropped silently,
    //  and a send to a gone one fails with EHOSTUNREACH (events.c).
    int one = 1, hwm = BROKER_EVENTS_HWM, linger = 200;
    int hb_ivl = (int)config->heartbeat_ms,
        hb_ttl = (int)(config->heartbeat_ms * YARD_HEARTBEAT_LIVENESS);
    zmq_setsockopt(self->events_sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    zmq_setsockopt(self->events_sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(self->events_sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(self->events_sock, ZMQ_HEARTBEAT_IVL, &hb_ivl,
                   sizeof(hb_ivl));
    zmq_setsockopt(self->events_sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_ttl,
                   sizeof(hb_ttl));
    if (zmq_bind(self->router, config->endpoint) != 0) {
        yard_error("cannot bind tasks endpoint %s: %s", config->endpoint,
                   zmq_strerror(errno));
        broker_destroy(&self);
        return NULL;
    }
    if (zmq_bind(self->events_sock, config->events) != 0) {
        yard_error("cannot bind events endpoint %s: %s", config->events,
                   zmq_strerror(errno));
        broker_destroy(&self);
        return NULL;
    }
    self->started_us = yard_clock_us();
    yard_proc_init(&self->proc, self->started_us);
    self->next_heartbeat_us =
        self->started_us + (int64_t)config->heartbeat_ms * 1000;
    return self;
}

void broker_destroy(broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_t *self = *self_p;
    //  Live tasks are in tasks_by_id; orphans only in tasks_by_job.
    if (self->tasks_by_job)
        yard_map_each(self->tasks_by_job, s_free_orphan, NULL);
    if (self->tasks_by_id)
        yard_map_each(self->tasks_by_id, s_free_task, NULL);
    if (self->services)
        yard_map_each(self->services, s_free_service, NULL);
    if (self->workers)
        yard_map_each(self->workers, s_free_worker, NULL);
    if (self->clients)
        yard_map_each(self->clients, s_free_client, NULL);
    yard_map_destroy(&self->services);
    yard_map_destroy(&self->workers);
    yard_map_destroy(&self->clients);
    yard_map_destroy(&self->tasks_by_id);
    yard_map_destroy(&self->tasks_by_job);
    yard_heap_destroy(&self->timers);
    if (self->msg) {
        yard_wire_msg_close(self->msg);
        free(self->msg);
    }
    yard_decoder_destroy(&self->decoder);
    msgpack_sbuffer_destroy(&self->scratch);
    msgpack_sbuffer_destroy(&self->taskbuf);
    if (self->router) {
        //  Let the final DISCONNECTs to workers leave before closing.
        int linger = 500;
        zmq_setsockopt(self->router, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(self->router);
    }
    events_destroy(self);
    cache_destroy(self);
    probe_destroy(self);
    if (self->events_sock)
        zmq_close(self->events_sock);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    if (self->signal_fd >= 0)
        close(self->signal_fd);
    free(self);
    *self_p = NULL;
}

void broker_want_dispatch(broker_t *self, broker_service_t *service)
{
    if (!service->dispatch_pending) {
        service->dispatch_pending = true;
        service->next_dispatch = self->dispatch_list;
        self->dispatch_list = service;
    }
}

void broker_reply(broker_t *self, broker_client_t *client,
                  const yard_result_t *result)
{
    if (client->internal) {
        cache_on_reply(self, result, yard_clock_us());
        return;
    }
    self->scratch.size = 0;
    if (yard_encode_result(&self->scratch, YARD_ROLE_BROKER, result) != 0) {
        //  Only an over-long error text can fail here: send it without.
        yard_result_t bare = *result;
        bare.error = yard_bytes_str("error text too long");
        self->scratch.size = 0;
        if (yard_encode_result(&self->scratch, YARD_ROLE_BROKER, &bare) != 0)
            return;
    }
    client_queue_body(self, client, self->scratch.data, self->scratch.size);
}

static void s_answer(broker_t *self, broker_task_t *task, yard_status_t status,
                     const void *payload, size_t payload_len, const char *error,
                     size_t error_len, uint64_t run_us, uint32_t retry_after_ms,
                     bool cached)
{
    int64_t now = yard_clock_us();
    if (task->flight)
        cache_on_answer(self, task, status, payload, payload_len, now);
    broker_client_t *client = task->client;
    yard_result_t result;
    memset(&result, 0, sizeof(result));
    result.id.ptr = task_id(task);
    result.id.len = task->id_len;
    result.status = status;
    result.payload.ptr = payload_len ? payload : NULL;
    result.payload.len = (uint32_t)payload_len;
    if (status == YARD_OK && !payload)
        result.payload.ptr = (const uint8_t *)"";
    if (error_len > YARD_MAX_ERROR)
        error_len = YARD_MAX_ERROR;
    result.error.ptr = error_len ? (const uint8_t *)error : NULL;
    result.error.len = (uint32_t)error_len;
    result.attempts = task->attempts;
    result.queue_us = task->queue_us;
    result.run_us = run_us;
    result.total_us = (uint64_t)(now - task->accepted_us);
    result.retry_after_ms = retry_after_ms;
    result.cached = cached;
    broker_reply(self, client, &result);
    broker_forget(self, task);
}

void broker_answer_cached(broker_t *self, broker_task_t *task,
                          const void *payload, size_t payload_len)
{
    s_answer(self, task, YARD_OK, payload ? payload : "", payload_len, NULL, 0,
             0, 0, true);
}

void broker_answer(broker_t *self, broker_task_t *task, yard_status_t status,
                   const void *payload, size_t payload_len, const char *error,
                   size_t error_len, uint64_t run_us)
{
    s_answer(self, task, status, payload, payload_len, error, error_len, run_us,
             0, false);
}

void broker_answer_retry(broker_t *self, broker_task_t *task,
                         yard_status_t status, const char *error,
                         uint32_t retry_after_ms)
{
    s_answer(self, task, status, NULL, 0, error, strlen(error), 0,
             retry_after_ms, false);
}

bool broker_detach(broker_t *self, broker_task_t *task, int64_t now)
{
    broker_service_t *service = task->service;
    switch (task->state) {
    case TASK_QUEUED:
        service_unlink(service, task);
        return true;
    case TASK_DELAYED:
        service->delayed--;
        return true;
    case TASK_INFLIGHT:
        worker_send_cancel(self, task->worker, task->job, now);
        service->in_flight--;
        return true;
    case TASK_PARKED:
        service->parked--;
        return true;
    default:
        return false;
    }
}

void broker_forget(broker_t *self, broker_task_t *task)
{
    if (task->flight)
        cache_detach(self, task, yard_clock_us());
    broker_client_t *client = task->client;
    yard_map_remove(self->tasks_by_id, task->id_hash, task);
    yard_heap_remove(self->timers, &task->timer);
    client->tasks--;
    task->client = NULL;
    if (task->state == TASK_INFLIGHT && task->worker) {
        //  The worker still holds it: keep the task until its result
        //  frees the slot, but it is answered and no longer counted.
        task->state = TASK_ORPHAN;
        return;
    }
    task_free(task);
}

void broker_send_error_on(broker_t *self, void *socket, const uint8_t *identity,
                          size_t identity_len, int err, const char *message)
{
    (void)self;
    yard_error_t body;
    memset(&body, 0, sizeof(body));
    body.code = yard_bytes_str(yard_errcode_for(err));
    body.message = yard_bytes_str(message);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    if (yard_encode_error(&buf, &body) == 0) {
        yard_frame_t frame = {buf.data, buf.size};
        yard_wire_send(socket, identity, identity_len, YARD_ROLE_BROKER,
                       YARD_CMD_ERROR, &frame, 1, ZMQ_DONTWAIT);
    }
    msgpack_sbuffer_destroy(&buf);
}

void broker_send_error(broker_t *self, const uint8_t *identity,
                       size_t identity_len, int err, const char *message,
                       const yard_bytes_t *id)
{
    yard_error_t body;
    memset(&body, 0, sizeof(body));
    body.code = yard_bytes_str(yard_errcode_for(err));
    body.message = yard_bytes_str(message);
    if (id)
        body.id = *id;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    if (yard_encode_error(&buf, &body) == 0) {
        yard_frame_t frame = {buf.data, buf.size};
        yard_wire_send(self->router, identity, identity_len, YARD_ROLE_BROKER,
                       YARD_CMD_ERROR, &frame, 1, 0);
    }
    msgpack_sbuffer_destroy(&buf);
}

//  Header-level checks, then hand the message to the client or worker side.
static void s_handle_message(broker_t *self, yard_wire_msg_t *msg, int64_t now)
{
    if (msg->identity_len == 0)
        return; //  cannot answer without a routing id
    int rc = msg->header_err;
    const char *why = NULL;
    if (rc == 0 && msg->role == YARD_ROLE_BROKER) {
        rc = YARD_E_UNKNOWN_CMD;
        why = "role B is the broker's own";
    }
    if (rc == 0 && msg->nframes > msg->nbodies) {
        rc = YARD_E_FRAMES;
        why = "more than 256 body frames";
    }
    if (rc == 0)
        rc = yard_cmd_check(msg->role, msg->cmd, msg->nbodies);
    if (rc == 0) {
        //  ZMQ_MAXMSGSIZE bounds each frame; this bounds the message.
        size_t total = 0;
        for (size_t i = 0; i < msg->nbodies; i++)
            total += zmq_msg_size(&msg->bodies[i]);
        if (total > YARD_MAX_MSGSIZE) {
            rc = YARD_E_TOO_LARGE;
            why = "bodies exceed 16 MiB in all";
        }
    }
    if (rc != 0) {
        self->malformed++;
        char text[128];
        snprintf(text, sizeof(text), "message refused: %s",
                 why ? why : yard_strerror(rc));
        broker_send_error(self, msg->identity, msg->identity_len, rc, text,
                          NULL);
        return;
    }
    if (msg->role == YARD_ROLE_WORKER) {
        worker_handle(self, msg, now);
        return;
    }
    broker_client_t *client =
        client_require(self, msg->identity, msg->identity_len, now);
    if (!client) {
        broker_send_error(self, msg->identity, msg->identity_len, YARD_E_NOMEM,
                          "out of memory", NULL);
        return;
    }
    client_handle(self, client, msg, now);
}

static void s_fire_timers(broker_t *self, int64_t now)
{
    yard_heap_node_t *node;
    while ((node = yard_heap_peek(self->timers)) && node->key <= now) {
        yard_heap_pop(self->timers);
        broker_task_t *task = S_TASK_OF(node);
        broker_service_t *service = task->service;
        if (task->state == TASK_DELAYED && task->deadline_us > now) {
            //  Retry backoff over: back to the queue, deadline timer again.
            service->delayed--;
            task->ready_us = now;
            service_enqueue(service, task, false);
            yard_heap_push(self->timers, &task->timer, task->deadline_us);
            broker_want_dispatch(self, service);
            continue;
        }
        broker_detach(self, task, now);
        service->counters.timed_out++;
        breaker_record(self, task, YARD_BREAKER_TIMEOUT,
                       (uint64_t)(now - task->accepted_us), now);
        broker_event_field_t f[] = {
            {.key = "attempts", .kind = EV_UINT, .u = task->attempts}};
        broker_emit_task(self, "task.timeout", task, f, 1);
        broker_answer(self, task, YARD_TIMEOUT, NULL, 0, "deadline exceeded",
                      17, 0);
    }
}

static void s_dispatch(broker_t *self, int64_t now)
{
    broker_service_t *service = self->dispatch_list;
    self->dispatch_list = NULL;
    while (service) {
        broker_service_t *next = service->next_dispatch;
        service->dispatch_pending = false;
        service->next_dispatch = NULL;
        if (service->breaker.state == YARD_BREAKER_OPEN &&
            (service->queued || service->delayed))
            breaker_shed(self, service, now);
        while (service->queued && service->spare) {
            size_t with_spare = 0;
            broker_worker_t *w = service_pick_worker(service, &with_spare);
            if (!w)
                break;
            //  Share the queue out across the workers that have room, but
            //  never more than a worker's credit or one message's worth.
            size_t share = (service->queued + with_spare - 1) / with_spare;
            size_t n = worker_spare(w);
            if (n > share)
                n = share;
            if (worker_dispatch(self, w, n, now) == 0)
                break;
        }
        service = next;
    }
}

typedef struct {
    broker_worker_t **list; /*  collected workers                        */
    size_t count;           /*  how many                                 */
    size_t cap;             /*  room                                     */
} s_workers_t;

static void s_collect_worker(void *value, void *arg)
{
    s_workers_t *all = arg;
    if (all->count == all->cap) {
        size_t cap = all->cap ? all->cap * 2 : 64;
        broker_worker_t **grown = realloc(all->list, cap * sizeof(*grown));
        if (!grown)
            return;
        all->list = grown;
        all->cap = cap;
    }
    all->list[all->count++] = value;
}

static void s_heartbeat(broker_t *self, int64_t now)
{
    int64_t interval = (int64_t)self->config.heartbeat_ms * 1000;
    int64_t expiry = interval * self->config.liveness;
    s_workers_t all = {NULL, 0, 0};
    yard_map_each(self->workers, s_collect_worker, &all);
    for (size_t i = 0; i < all.count; i++) {
        broker_worker_t *w = all.list[i];
        if (now - w->last_seen_us > expiry)
            worker_lost(self, w, "silent past its liveness");
        else if (now - w->last_sent_us >= interval)
            worker_send_simple(self, w, YARD_CMD_HEARTBEAT, now);
    }
    free(all.list);
    client_sweep(self, now);
    events_heartbeat(self, now);
    yard_proc_sample(&self->proc, now);
}

typedef struct {
    broker_task_t **list; /*  collected tasks                           */
    size_t count;         /*  how many                                  */
} s_tasks_t;

static void s_collect_task(void *value, void *arg)
{
    s_tasks_t *all = arg;
    all->list[all->count++] = value;
}

//  End of the drain: answer everything still live with "shutdown", tell
//  every worker, and leave the loop.
static void s_finish_drain(broker_t *self, int64_t now)
{
    size_t live = yard_map_size(self->tasks_by_id);
    s_tasks_t all = {calloc(live ? live : 1, sizeof(broker_task_t *)), 0};
    if (all.list)
        yard_map_each(self->tasks_by_id, s_collect_task, &all);
    for (size_t i = 0; i < all.count; i++) {
        broker_task_t *task = all.list[i];
        broker_service_t *service = task->service;
        broker_detach(self, task, now);
        service->counters.shutdown++;
        breaker_record(self, task, YARD_BREAKER_NEUTRAL, 0, now);
        broker_answer(self, task, YARD_SHUTDOWN, NULL, 0,
                      "broker shut down before the task finished", 41, 0);
    }
    free(all.list);
    client_flush_all(self);
    broker_event_field_t f[] = {
        {.key = "pid", .kind = EV_UINT, .u = (uint64_t)getpid()},
        {.key = "answered_shutdown", .kind = EV_UINT, .u = all.count},
        {.key = "uptime_ms",
         .kind = EV_UINT,
         .u = (uint64_t)(now - self->started_us) / 1000},
    };
    broker_emit(self, "system.shutdown", f, sizeof(f) / sizeof(f[0]));
    events_flush_all(self, now);
    s_workers_t workers = {NULL, 0, 0};
    yard_map_each(self->workers, s_collect_worker, &workers);
    for (size_t i = 0; i < workers.count; i++)
        worker_send_simple(self, workers.list[i], YARD_CMD_DISCONNECT, now);
    free(workers.list);
    yard_info("drained: %zu tasks answered shutdown; exiting", all.count);
    self->stop = true;
}

static void s_read_signals(broker_t *self, int64_t now)
{
    struct signalfd_siginfo info;
    while (read(self->signal_fd, &info, sizeof(info)) == sizeof(info)) {
        if (self->draining) {
            yard_info("second signal: stopping now");
            self->drain_deadline_us = now;
            continue;
        }
        self->draining = true;
        self->drain_deadline_us = now + (int64_t)self->config.grace_ms * 1000;
        yard_info("signal %u: draining for up to %u ms (%zu tasks live)",
                  info.ssi_signo, self->config.grace_ms,
                  yard_map_size(self->tasks_by_id));
    }
}

static long s_poll_timeout_ms(broker_t *self, int64_t now)
{
    if (self->dispatch_list)
        return 0; //  work handed on during dispatch (a fallback)
    int64_t until = self->next_heartbeat_us;
    yard_heap_node_t *node = yard_heap_peek(self->timers);
    if (node && node->key < until)
        until = node->key;
    if (self->draining && self->drain_deadline_us < until)
        until = self->drain_deadline_us;
    if (self->breaker_wake_us < until)
        until = self->breaker_wake_us;
    int64_t ping = probe_wake(self);
    if (ping < until)
        until = ping;
    if (until <= now)
        return 0;
    return (long)((until - now + 999) / 1000);
}

int broker_run(broker_t *self)
{
    yard_info("ready: tasks=%s events=%s max-queue=%u grace=%ums",
              self->config.endpoint, self->config.events,
              self->config.max_queue, self->config.grace_ms);
    broker_event_field_t f[] = {
        {.key = "version", .kind = EV_STR, .s = YARD_VERSION_STRING},
        {.key = "pid", .kind = EV_UINT, .u = (uint64_t)getpid()},
        {.key = "endpoint", .kind = EV_STR, .s = self->config.endpoint},
        {.key = "events", .kind = EV_STR, .s = self->config.events},
    };
    //  Nobody can have subscribed yet: this reaches the counters and the
    //  log; subscribers see the restart as the broker asking them to
    //  subscribe again.
    broker_emit(self, "system.startup", f, sizeof(f) / sizeof(f[0]));
    while (!self->stop) {
        int64_t now = yard_clock_us();
        zmq_pollitem_t items[3] = {
            {self->router, 0, ZMQ_POLLIN, 0},
            {self->events_sock, 0, ZMQ_POLLIN, 0},
            {NULL, self->signal_fd, ZMQ_POLLIN, 0},
        };
        int nitems = self->signal_fd >= 0 ? 3 : 2;
        long timeout = s_poll_timeout_ms(self, now);
        yard_proc_poll_enter(&self->proc, now, timeout);
        int rc = zmq_poll(items, nitems, timeout);
        if (rc < 0 && errno != EINTR) {
            yard_error("poll failed: %s", zmq_strerror(errno));
            break;
        }
        now = yard_clock_us();
        yard_proc_poll_leave(&self->proc, now);
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN)) {
            for (int i = 0; i < BROKER_RECV_BURST; i++) {
                if (yard_wire_recv(self->router, true, self->msg,
                                   ZMQ_DONTWAIT) != 0)
                    break;
                s_handle_message(self, self->msg, now);
            }
            yard_wire_msg_close(self->msg);
        }
        if (rc > 0 && (items[1].revents & ZMQ_POLLIN)) {
            for (int i = 0; i < BROKER_RECV_BURST; i++) {
                if (yard_wire_recv(self->events_sock, true, self->msg,
                                   ZMQ_DONTWAIT) != 0)
                    break;
                events_handle(self, self->msg, now);
            }
            yard_wire_msg_close(self->msg);
        }
        if (nitems == 3 && rc > 0 && (items[2].revents & ZMQ_POLLIN))
            s_read_signals(self, now);
        s_fire_timers(self, now);
        breaker_tick(self, now);
        probe_tick(self, now);
        s_dispatch(self, now);
        client_flush_all(self);
        events_flush_all(self, now);
        if (now >= self->next_heartbeat_us) {
            s_heartbeat(self, now);
            self->next_heartbeat_us =
                now + (int64_t)self->config.heartbeat_ms * 1000;
        }
        if (self->draining && (yard_map_size(self->tasks_by_id) == 0 ||
                               now >= self->drain_deadline_us))
            s_finish_drain(self, now);
    }
    return 0;
}
