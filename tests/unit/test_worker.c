/*  test_worker.c — the worker runtime (workers/yard_worker*.c) against a
    fake broker: a ROUTER socket the test drives by hand with the codec.

    Each test binds the fake broker on tcp://127.0.0.1:* (a free port the
    kernel picks), runs a worker on a background thread, and plays the
    broker's part of PROTOCOL.md: it waits for READY, sends TASK / CANCEL /
    HEARTBEAT / DISCONNECT, and checks what comes back. Every wait has a
    deadline, so a broken worker fails a test instead of hanging it.
*/
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "yard_clock.h"
#include "yard_log.h"
#include "yard_proc.h"
#include "yard_worker.h"

#define T_WAIT_MS 5000 /*  how long anything that must happen may take */
#define T_MAX_RESULTS 64

/* ---- Test handler ------------------------------------------------------- */

typedef enum {
    T_ECHO,      /*  reply with the payload */
    T_SLEEP,     /*  sleep sleep_ms, then echo */
    T_BLOCK,     /*  wait for cancel (return without reply) or release */
    T_FAIL,      /*  yard_job_fail("boom %d", 42) */
    T_REJECT,    /*  yard_job_reject("bad %s", "input") */
    T_NO_RESULT, /*  return without answering */
    T_INFO,      /*  reply with what the job accessors say */
    T_TOO_BIG,   /*  reply with one byte over YARD_MAX_PAYLOAD */
    T_PUBLISH,   /*  publish "t.evt" (payload: the task payload as a
                     msgpack str), check bad events are refused, echo */
} t_mode_t;

/*  Shared between the test and its handler threads. */
typedef struct {
    t_mode_t mode;          /*  what the handler does */
    int sleep_ms;           /*  T_SLEEP duration */
    atomic_int running;     /*  handlers running now */
    atomic_int max_running; /*  most handlers ever running at once */
    atomic_int started;     /*  handler calls so far */
    atomic_int saw_cancel;  /*  handlers that saw yard_job_cancelled */
    atomic_bool release;    /*  lets T_BLOCK handlers reply */
    atomic_int fast_calls;  /*  calls of t_fast */
    pthread_t fast_thread;  /*  the thread t_fast last ran on */
} t_ctx_t;

static void t_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void t_handler(yard_job_t *job, void *arg)
{
    t_ctx_t *t = (t_ctx_t *)arg;
    int now = atomic_fetch_add(&t->running, 1) + 1;
    int max = atomic_load(&t->max_running);
    while (now > max &&
           !atomic_compare_exchange_weak(&t->max_running, &max, now))
        ;
    atomic_fetch_add(&t->started, 1);
    yard_bytes_t payload = yard_job_payload(job);
    switch (t->mode) {
    case T_ECHO:
        yard_job_reply(job, payload.ptr, payload.len);
        break;
    case T_SLEEP:
        t_sleep_ms(t->sleep_ms);
        yard_job_reply(job, payload.ptr, payload.len);
        break;
    case T_BLOCK: {
        int64_t give_up = yard_clock_ms() + 10000; /*  never hang a run */
        while (!yard_job_cancelled(job) && !atomic_load(&t->release) &&
               yard_clock_ms() < give_up)
            t_sleep_ms(1);
        if (yard_job_cancelled(job))
            atomic_fetch_add(&t->saw_cancel, 1);
        else
            yard_job_reply(job, payload.ptr, payload.len);
        break;
    }
    case T_FAIL:
        yard_job_fail(job, "boom %d", 42);
        break;
    case T_REJECT:
        yard_job_reject(job, "bad %s", "input");
        /*  One answer only. */
        if (yard_job_reply(job, "x", 1) != YARD_E_ARG)
            yard_job_fail(job, "WRONG");
        break;
    case T_NO_RESULT:
        break;
    case T_PUBLISH: {
        uint8_t body[64];
        size_t n = payload.len < 31 ? payload.len : 31;
        body[0] = (uint8_t)(0xa0 | n);
        memcpy(body + 1, payload.ptr, n);
        bool ok = yard_job_publish(job, "t.evt", body, n + 1) == 0;
        /*  The broker would refuse these: refused here, nothing sent. */
        ok &= yard_job_publish(job, "", body, n + 1) != 0;
        ok &= yard_job_publish(job, "bad type", body, n + 1) != 0;
        ok &= yard_job_publish(job, "t.evt", "\xc1", 1) != 0;
        ok &= yard_job_publish(job, "t.evt", "\x92\x01", 2) != 0;
        ok &= yard_job_publish(job, "t.evt", body,
                               YARD_MAX_EVENT_PAYLOAD + 1) == YARD_E_TOO_LARGE;
        if (ok)
            yard_job_reply(job, payload.ptr, payload.len);
        else
            yard_job_fail(job, "WRONG: a bad event was accepted");
        break;
    }
    case T_TOO_BIG: {
        size_t big = (size_t)YARD_MAX_PAYLOAD + 1;
        char *data = calloc(1, big);
        if (data && yard_job_reply(job, data, big) != YARD_E_TOO_LARGE)
            yard_job_fail(job, "WRONG: reply accepted");
        free(data);
        break;
    }
    case T_INFO: {
        const char *trace = NULL;
        size_t trace_len = 0;
        bool has = yard_job_header(job, "trace", &trace, &trace_len);
        char text[512];
        int64_t left = yard_job_remaining_ms(job);
        snprintf(text, sizeof text,
                 "id=%s service=%s attempt=%u handle=%llu trace=%.*s "
                 "missing=%d left_ok=%d",
                 yard_job_id(job), yard_job_service(job), yard_job_attempt(job),
                 (unsigned long long)yard_job_handle(job),
                 has ? (int)trace_len : 0, has ? trace : "",
                 yard_job_header(job, "nope", NULL, NULL),
                 left > 4000 && left <= 5000);
        yard_job_reply(job, text, strlen(text));
        /*  A second answer is refused; the first stands. */
        if (yard_job_fail(job, "late") != YARD_E_ARG)
            yard_job_reply(job, "WRONG", 5);
        break;
    }
    }
    atomic_fetch_sub(&t->running, 1);
}

/*  A fast handler: answers payloads that start with 'f' at once ("F" and
    the rest), leaves the others for the handler threads. */
static void t_fast(yard_job_t *job, void *arg)
{
    t_ctx_t *t = (t_ctx_t *)arg;
    atomic_fetch_add(&t->fast_calls, 1);
    t->fast_thread = pthread_self();
    yard_bytes_t p = yard_job_payload(job);
    if (p.len > 0 && p.ptr[0] == 'f') {
        char out[64];
        size_t n = p.len < sizeof out ? p.len : sizeof out;
        memcpy(out, p.ptr, n);
        out[0] = 'F';
        yard_job_reply(job, out, n);
    }
}

/* ---- Fake broker -------------------------------------------------------- */

/*  One result body the fake broker received. */
typedef struct {
    uint64_t job;         /*  job handle */
    yard_status_t status; /*  status */
    bool has_payload;     /*  payload field present */
    char payload[256];    /*  payload, NUL-terminated (cut) */
    char error[256];      /*  error text, NUL-terminated (cut) */
} t_result_t;

typedef struct {
    void *ctx;                /*  ZeroMQ context */
    void *router;             /*  the fake broker's socket */
    char endpoint[128];       /*  where it is bound */
    yard_decoder_t *dec;      /*  decodes what the worker sends */
    yard_wire_msg_t *msg;     /*  last message received */
    uint8_t wid[255];         /*  routing id of the last READY's sender */
    size_t wid_len;           /*  its length */
    uint32_t ready_capacity;  /*  capacity in the last READY */
    char ready_service[130];  /*  service in the last READY */
    char ready_name[256];     /*  name in the last READY */
    uint32_t ready_pid;       /*  pid in the last READY */
    int heartbeats;           /*  HEARTBEATs skipped so far */
    int reports;              /*  of them, with a health report */
    yard_report_t report;     /*  the last report (views cleared) */
    char report_objects[512]; /*  its objects, "name=value\n" lines */
    t_result_t results[T_MAX_RESULTS]; /*  results collected */
    size_t nresults;                   /*  how many */
    size_t max_batch;                  /*  most bodies seen in one RESULT */
    size_t result_msgs;                /*  RESULT messages seen */
} t_broker_t;

static void t_copy(char *dst, size_t size, yard_bytes_t src)
{
    size_t n = src.len < size - 1 ? src.len : size - 1;
    if (n)
        memcpy(dst, src.ptr, n);
    dst[n] = '\0';
}

static int t_object_line(const char *name, size_t len, uint64_t value,
                         void *arg)
{
    char *buf = arg;
    size_t at = strlen(buf);
    snprintf(buf + at, 512 - at, "%.*s=%llu\n", (int)len, name,
             (unsigned long long)value);
    return 0;
}

static void fb_init(t_broker_t *fb)
{
    memset(fb, 0, sizeof *fb);
    fb->ctx = zmq_ctx_new();
    assert_non_null(fb->ctx);
    fb->router = zmq_socket(fb->ctx, ZMQ_ROUTER);
    assert_non_null(fb->router);
    assert_int_equal(yard_wire_setup(fb->router), 0);
    assert_int_equal(zmq_bind(fb->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fb->endpoint;
    assert_int_equal(
        zmq_getsockopt(fb->router, ZMQ_LAST_ENDPOINT, fb->endpoint, &len), 0);
    fb->dec = yard_decoder_new();
    assert_non_null(fb->dec);
    fb->msg = malloc(sizeof *fb->msg);
    assert_non_null(fb->msg);
    yard_wire_msg_init(fb->msg);
}

static void fb_fini(t_broker_t *fb)
{
    yard_wire_msg_close(fb->msg);
    free(fb->msg);
    yard_decoder_destroy(&fb->dec);
    zmq_close(fb->router);
    zmq_ctx_term(fb->ctx);
}

/*  Receives the next message within timeout_ms, skipping HEARTBEATs when
    asked. Returns its command, or -1 on timeout. READY messages update
    the fake broker's idea of the worker's identity. */
static int fb_next(t_broker_t *fb, int timeout_ms, bool skip_heartbeats)
{
    int64_t end = yard_clock_ms() + timeout_ms;
    while (true) {
        int64_t left = end - yard_clock_ms();
        if (left < 0)
            return -1;
        zmq_pollitem_t item = {fb->router, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, (long)left);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            return -1;
        assert_int_equal(yard_wire_recv(fb->router, true, fb->msg, 0), 0);
        assert_int_equal(fb->msg->header_err, 0);
        assert_int_equal(fb->msg->role, YARD_ROLE_WORKER);
        if (fb->msg->cmd == YARD_CMD_HEARTBEAT) {
            assert_true(fb->msg->nbodies <= 1);
            if (fb->msg->nbodies == 1) {
                /*  Every report the runtime sends must decode. */
                yard_report_t r;
                assert_int_equal(yard_decode_report(
                                     fb->dec, zmq_msg_data(&fb->msg->bodies[0]),
                                     zmq_msg_size(&fb->msg->bodies[0]), &r),
                                 0);
                fb->report_objects[0] = '\0';
                assert_int_equal(yard_objects_each(&r.objects, t_object_line,
                                                   fb->report_objects),
                                 0);
                memset(&r.version, 0, sizeof r.version);
                memset(&r.objects, 0, sizeof r.objects);
                fb->report = r;
                fb->reports++;
            }
            fb->heartbeats++;
            if (skip_heartbeats)
                continue;
        }
        if (fb->msg->cmd == YARD_CMD_READY) {
            assert_int_equal(fb->msg->nbodies, 1);
            yard_ready_t ready;
            assert_int_equal(
                yard_decode_ready(fb->dec, zmq_msg_data(&fb->msg->bodies[0]),
                                  zmq_msg_size(&fb->msg->bodies[0]), &ready),
                0);
            memcpy(fb->wid, fb->msg->identity, fb->msg->identity_len);
            fb->wid_len = fb->msg->identity_len;
            fb->ready_capacity = ready.capacity;
            fb->ready_pid = ready.pid;
            t_copy(fb->ready_service, sizeof fb->ready_service, ready.service);
            t_copy(fb->ready_name, sizeof fb->ready_name, ready.name);
        }
        if (fb->msg->cmd == YARD_CMD_RESULT) {
            fb->result_msgs++;
            if (fb->msg->nbodies > fb->max_batch)
                fb->max_batch = fb->msg->nbodies;
            for (size_t i = 0; i < fb->msg->nbodies; i++) {
                yard_result_t r;
                assert_int_equal(yard_decode_result(
                                     fb->dec, zmq_msg_data(&fb->msg->bodies[i]),
                                     zmq_msg_size(&fb->msg->bodies[i]), &r),
                                 0);
                assert_true(fb->nresults < T_MAX_RESULTS);
                t_result_t *out = &fb->results[fb->nresults++];
                out->job = r.job;
                out->status = r.status;
                out->has_payload = r.payload.ptr != NULL;
                t_copy(out->payload, sizeof out->payload, r.payload);
                t_copy(out->error, sizeof out->error, r.error);
            }
        }
        return (int)fb->msg->cmd;
    }
}

/*  Waits for a message with command cmd, skipping HEARTBEATs. Fails the
    test on timeout or on any other command. */
static void fb_expect(t_broker_t *fb, yard_cmd_t cmd, int timeout_ms)
{
    int got = fb_next(fb, timeout_ms, true);
    if (got != (int)cmd)
        fail_msg("expected %s, got %s", yard_cmd_name(cmd),
                 got < 0 ? "nothing (timeout)"
                         : yard_cmd_name((yard_cmd_t)got));
}

/*  Collects RESULT messages until n results are in (since the last
    reset). Any other command but HEARTBEAT fails the test. */
static void fb_collect(t_broker_t *fb, size_t n, int timeout_ms)
{
    int64_t end = yard_clock_ms() + timeout_ms;
    while (fb->nresults < n) {
        int64_t left = end - yard_clock_ms();
        if (left <= 0)
            fail_msg("got %zu results of %zu", fb->nresults, n);
        fb_expect(fb, YARD_CMD_RESULT, (int)left);
    }
}

static const t_result_t *fb_result(const t_broker_t *fb, uint64_t job)
{
    for (size_t i = 0; i < fb->nresults; i++)
        if (fb->results[i].job == job)
            return &fb->results[i];
    fail_msg("no result for job %llu", (unsigned long long)job);
    return NULL;
}

/*  Sends raw frames (header and bodies as given) to the worker. */
static void fb_send_raw(t_broker_t *fb, const void *const *parts,
                        const size_t *sizes, size_t n)
{
    assert_true(zmq_send(fb->router, fb->wid, fb->wid_len, ZMQ_SNDMORE) >= 0);
    for (size_t i = 0; i < n; i++)
        assert_true(zmq_send(fb->router, parts[i], sizes[i],
                             i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
}

static void fb_send(t_broker_t *fb, yard_cmd_t cmd, const yard_frame_t *bodies,
                    size_t n)
{
    assert_int_equal(yard_wire_send(fb->router, fb->wid, fb->wid_len,
                                    YARD_ROLE_BROKER, cmd, bodies, n, 0),
                     0);
}

/*  Sends one TASK message with n tasks: job handles first..first+n-1,
    payload "p<job>" (or the given payloads). */
static void fb_send_tasks(t_broker_t *fb, uint64_t first, size_t n,
                          const char *const *payloads)
{
    msgpack_sbuffer bufs[16];
    yard_frame_t frames[16];
    assert_true(n <= 16);
    char id[32], payload[32];
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer_init(&bufs[i]);
        yard_task_t task;
        memset(&task, 0, sizeof task);
        task.job = first + i;
        snprintf(id, sizeof id, "task-%llu", (unsigned long long)task.job);
        snprintf(payload, sizeof payload, "p%llu",
                 (unsigned long long)task.job);
        task.id = yard_bytes_str(id);
        task.service = yard_bytes_str("svc");
        task.payload = yard_bytes_str(payloads ? payloads[i] : payload);
        if (task.payload.ptr == NULL || task.payload.len == 0)
            task.payload.ptr = (const uint8_t *)"";
        task.timeout_ms = 30000;
        task.attempt = 1;
        assert_int_equal(yard_encode_task(&bufs[i], &task), 0);
        frames[i].data = bufs[i].data;
        frames[i].len = bufs[i].size;
    }
    fb_send(fb, YARD_CMD_TASK, frames, n);
    for (size_t i = 0; i < n; i++)
        msgpack_sbuffer_destroy(&bufs[i]);
}

static void fb_send_cancel(t_broker_t *fb, uint64_t job)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    yard_cancel_t cancel = {{NULL, 0}, job};
    assert_int_equal(yard_encode_cancel(&buf, YARD_ROLE_BROKER, &cancel), 0);
    yard_frame_t frame = {buf.data, buf.size};
    fb_send(fb, YARD_CMD_CANCEL, &frame, 1);
    msgpack_sbuffer_destroy(&buf);
}

/* ---- Worker on a thread ------------------------------------------------- */

typedef struct {
    t_broker_t fb;            /*  the fake broker */
    t_ctx_t ctx;              /*  the handler's state */
    yard_worker_config_t cfg; /*  the worker's config */
    yard_worker_t *worker;    /*  the worker */
    pthread_t thread;         /*  runs yard_worker_run */
    bool started;             /*  thread running */
    int rc;                   /*  what yard_worker_run returned */
} t_env_t;

static void *t_run(void *arg)
{
    t_env_t *env = (t_env_t *)arg;
    env->rc = yard_worker_run(env->worker);
    return NULL;
}

/*  Fake broker up, config with test defaults (the caller adjusts it). */
static t_env_t *t_env_new(void)
{
    t_env_t *env = calloc(1, sizeof *env);
    assert_non_null(env);
    fb_init(&env->fb);
    yard_worker_config_defaults(&env->cfg);
    env->cfg.broker = env->fb.endpoint;
    env->cfg.service = "svc";
    env->cfg.name = "t-worker";
    env->cfg.handler = t_handler;
    env->cfg.handler_arg = &env->ctx;
    env->cfg.capacity = 4;
    env->cfg.reconnect_base_ms = 10;
    env->cfg.reconnect_max_ms = 50;
    env->ctx.mode = T_ECHO;
    return env;
}

/*  Starts the worker and waits for its READY. */
static void t_env_start(t_env_t *env)
{
    env->worker = yard_worker_new(&env->cfg);
    assert_non_null(env->worker);
    assert_int_equal(pthread_create(&env->thread, NULL, t_run, env), 0);
    env->started = true;
    fb_expect(&env->fb, YARD_CMD_READY, T_WAIT_MS);
}

/*  Waits for the run thread to end; fails the test after timeout_ms. */
static void t_env_join(t_env_t *env, int timeout_ms)
{
    if (!env->started)
        return;
    struct timespec abs;
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_sec += timeout_ms / 1000;
    abs.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (abs.tv_nsec >= 1000000000L) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000L;
    }
    int rc = pthread_timedjoin_np(env->thread, NULL, &abs);
    if (rc != 0)
        fail_msg("yard_worker_run did not return within %d ms", timeout_ms);
    env->started = false;
}

static void t_env_destroy(t_env_t *env)
{
    if (env->started) {
        atomic_store(&env->ctx.release, true);
        yard_worker_stop(env->worker);
        yard_worker_stop(env->worker); /*  no grace: end now */
        t_env_join(env, T_WAIT_MS);
    }
    yard_worker_destroy(&env->worker);
    fb_fini(&env->fb);
    free(env);
}

/*  Waits until the handler has been called n times. */
static void t_wait_started(t_env_t *env, int n)
{
    int64_t end = yard_clock_ms() + T_WAIT_MS;
    while (atomic_load(&env->ctx.started) < n) {
        if (yard_clock_ms() > end)
            fail_msg("only %d of %d handlers started",
                     atomic_load(&env->ctx.started), n);
        t_sleep_ms(1);
    }
}

/* ---- Tests -------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    yard_worker_config_t cfg;
    yard_worker_config_defaults(&cfg);
    assert_string_equal(cfg.broker, YARD_WORKER_DEFAULT_BROKER);
    assert_int_equal(cfg.capacity, YARD_WORKER_DEFAULT_CAPACITY);
    assert_int_equal(cfg.threads, YARD_WORKER_THREADS_PER_SLOT);
    assert_int_equal(cfg.heartbeat_ms, YARD_HEARTBEAT_INTERVAL_MS);
    assert_int_equal(cfg.liveness, YARD_HEARTBEAT_LIVENESS);
    assert_int_equal(cfg.grace_ms, YARD_WORKER_DEFAULT_GRACE_MS);
    char err[128];
    /*  No service, no handler. */
    assert_int_equal(yard_worker_config_check(&cfg, err, sizeof err),
                     YARD_E_ARG);
    assert_non_null(strstr(err, "service"));
    cfg.service = "bad service!";
    cfg.handler = t_handler;
    assert_int_equal(yard_worker_config_check(&cfg, err, sizeof err),
                     YARD_E_ARG);
    cfg.service = "svc";
    assert_int_equal(yard_worker_config_check(&cfg, err, sizeof err), 0);
    cfg.capacity = 0;
    assert_int_equal(yard_worker_config_check(&cfg, NULL, 0), YARD_E_ARG);
    cfg.capacity = YARD_MAX_CAPACITY + 1;
    assert_int_equal(yard_worker_config_check(&cfg, NULL, 0), YARD_E_ARG);
    cfg.capacity = 4;
    cfg.threads = -2;
    assert_int_equal(yard_worker_config_check(&cfg, NULL, 0), YARD_E_ARG);
    cfg.threads = 0;
    cfg.heartbeat_ms = 0;
    assert_int_equal(yard_worker_config_check(&cfg, NULL, 0), YARD_E_ARG);
    assert_null(yard_worker_new(&cfg));
    assert_null(yard_worker_new(NULL));
    yard_worker_destroy(NULL);
    yard_worker_stop(NULL);
}

static void test_stop_before_run_and_bad_endpoint(void **state)
{
    (void)state;
    yard_worker_config_t cfg;
    yard_worker_config_defaults(&cfg);
    cfg.service = "svc";
    cfg.handler = t_handler;
    cfg.broker = "nonsense://nowhere";
    yard_worker_t *worker = yard_worker_new(&cfg);
    assert_non_null(worker);
    assert_int_equal(yard_worker_run(worker), YARD_E_ARG);
    yard_worker_stop(worker);
    assert_int_equal(yard_worker_run(worker), 0); /*  stopped: at once */
    yard_worker_destroy(&worker);
    assert_null(worker);
    yard_worker_destroy(&worker); /*  idempotent */
}

static void t_echo_batch(uint32_t capacity, int threads)
{
    t_env_t *env = t_env_new();
    env->cfg.capacity = capacity;
    env->cfg.threads = threads;
    t_env_start(env);
    assert_int_equal(env->fb.ready_capacity, capacity);
    assert_string_equal(env->fb.ready_service, "svc");
    assert_string_equal(env->fb.ready_name, "t-worker");
    assert_int_equal(env->fb.ready_pid, (uint32_t)getpid());

    const char *payloads[] = {"p1", "", "p3", "p4"};
    fb_send_tasks(&env->fb, 1, 4, payloads);
    fb_collect(&env->fb, 4, T_WAIT_MS);
    for (uint64_t job = 1; job <= 4; job++) {
        const t_result_t *r = fb_result(&env->fb, job);
        assert_int_equal(r->status, YARD_OK);
        assert_true(r->has_payload); /*  even the empty one */
        assert_string_equal(r->payload, payloads[job - 1]);
    }
    if (threads == 0) {
        /*  Inline: one TASK message in, one RESULT message out. */
        assert_int_equal(env->fb.result_msgs, 1);
        assert_int_equal(env->fb.max_batch, 4);
    }
    /*  And again, to use recycled jobs / buffers. */
    env->fb.nresults = 0;
    fb_send_tasks(&env->fb, 10, 4, NULL);
    fb_collect(&env->fb, 4, T_WAIT_MS);
    assert_string_equal(fb_result(&env->fb, 13)->payload, "p13");

    yard_worker_stats_t st;
    yard_worker_stats(env->worker, &st);
    assert_int_equal(st.received, 8);
    assert_int_equal(st.ok, 8);
    assert_int_equal(st.failed, 0);
    t_env_destroy(env);
}

static void test_echo_threads(void **state)
{
    (void)state;
    t_echo_batch(4, YARD_WORKER_THREADS_PER_SLOT);
}

static void test_echo_fewer_threads(void **state)
{
    (void)state;
    t_echo_batch(4, 2);
}

static void test_echo_inline(void **state)
{
    (void)state;
    t_echo_batch(8, YARD_WORKER_THREADS_INLINE);
}

/*  The fast handler runs on the I/O thread first; what it answers never
    reaches a handler thread, the rest does. */
static void test_fast_handler(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.capacity = 4;
    env->cfg.threads = 2;
    env->cfg.fast = t_fast;
    t_env_start(env);
    const char *payloads[] = {"fa", "slow", "fb", "also slow"};
    fb_send_tasks(&env->fb, 1, 4, payloads);
    fb_collect(&env->fb, 4, T_WAIT_MS);
    assert_string_equal(fb_result(&env->fb, 1)->payload, "Fa");
    assert_string_equal(fb_result(&env->fb, 2)->payload, "slow");
    assert_string_equal(fb_result(&env->fb, 3)->payload, "Fb");
    assert_string_equal(fb_result(&env->fb, 4)->payload, "also slow");
    assert_int_equal(atomic_load(&env->ctx.fast_calls), 4);
    assert_int_equal(atomic_load(&env->ctx.started), 2); /*  threads saw 2 */
    assert_true(pthread_equal(env->ctx.fast_thread, env->thread));
    /*  Answered jobs gave their slot back: the full capacity serves again. */
    env->fb.nresults = 0;
    const char *more[] = {"slow1", "slow2", "slow3", "slow4"};
    fb_send_tasks(&env->fb, 10, 4, more);
    fb_collect(&env->fb, 4, T_WAIT_MS);
    assert_string_equal(fb_result(&env->fb, 13)->payload, "slow4");
    yard_worker_stats_t st;
    yard_worker_stats(env->worker, &st);
    assert_int_equal(st.received, 8);
    assert_int_equal(st.ok, 8);
    t_env_destroy(env);
}

/*  Results ready together go out together: a burst of fast jobs yields
    fewer RESULT messages than results. */
static void test_results_batched(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.capacity = 16;
    env->cfg.threads = 16;
    env->ctx.mode = T_BLOCK;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 16, NULL);
    t_wait_started(env, 16);
    atomic_store(&env->ctx.release, true); /*  all finish at once */
    fb_collect(&env->fb, 16, T_WAIT_MS);
    assert_true(env->fb.result_msgs < 16);
    assert_true(env->fb.max_batch > 1);
    t_env_destroy(env);
}

static void test_capacity(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.capacity = 3;
    env->ctx.mode = T_BLOCK;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 3, NULL);
    t_wait_started(env, 3);
    /*  A broker that oversteps gets the extra task refused at once. */
    fb_send_tasks(&env->fb, 4, 1, NULL);
    fb_collect(&env->fb, 1, T_WAIT_MS);
    assert_int_equal(env->fb.results[0].job, 4);
    assert_int_equal(env->fb.results[0].status, YARD_ERROR);
    assert_string_equal(env->fb.results[0].error, "worker over capacity");
    atomic_store(&env->ctx.release, true);
    fb_collect(&env->fb, 4, T_WAIT_MS);
    for (uint64_t job = 1; job <= 3; job++)
        assert_int_equal(fb_result(&env->fb, job)->status, YARD_OK);
    /*  Slots are free again once answered. */
    env->fb.nresults = 0;
    fb_send_tasks(&env->fb, 5, 3, NULL);
    fb_collect(&env->fb, 3, T_WAIT_MS);
    for (uint64_t job = 5; job <= 7; job++)
        assert_int_equal(fb_result(&env->fb, job)->status, YARD_OK);
    assert_true(atomic_load(&env->ctx.max_running) <= 3);
    t_env_destroy(env);
}

static void test_capacity_inline(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.capacity = 2;
    env->cfg.threads = 0;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 3, NULL);
    fb_collect(&env->fb, 3, T_WAIT_MS);
    assert_int_equal(fb_result(&env->fb, 1)->status, YARD_OK);
    assert_int_equal(fb_result(&env->fb, 2)->status, YARD_OK);
    assert_int_equal(fb_result(&env->fb, 3)->status, YARD_ERROR);
    assert_string_equal(fb_result(&env->fb, 3)->error, "worker over capacity");
    t_env_destroy(env);
}

static void test_threads_bound_concurrency(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.capacity = 6;
    env->cfg.threads = 2;
    env->ctx.mode = T_SLEEP;
    env->ctx.sleep_ms = 20;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 6, NULL);
    fb_collect(&env->fb, 6, T_WAIT_MS);
    assert_int_equal(atomic_load(&env->ctx.max_running), 2);
    t_env_destroy(env);
}

static void test_cancel(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.capacity = 2;
    env->cfg.threads = 1;
    env->ctx.mode = T_BLOCK;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 2, NULL);
    t_wait_started(env, 1);       /*  job 1 runs, job 2 waits in the queue */
    fb_send_cancel(&env->fb, 99); /*  unknown: ignored */
    fb_send_cancel(&env->fb, 2);
    fb_collect(&env->fb, 1, T_WAIT_MS);
    assert_int_equal(env->fb.results[0].job, 2);
    assert_int_equal(env->fb.results[0].status, YARD_CANCELLED);
    assert_int_equal(atomic_load(&env->ctx.started), 1); /*  never ran */
    /*  The running one sees its flag; the runtime answers "cancelled". */
    fb_send_cancel(&env->fb, 1);
    fb_collect(&env->fb, 2, T_WAIT_MS);
    assert_int_equal(env->fb.results[1].job, 1);
    assert_int_equal(env->fb.results[1].status, YARD_CANCELLED);
    assert_int_equal(atomic_load(&env->ctx.saw_cancel), 1);
    yard_worker_stats_t st;
    yard_worker_stats(env->worker, &st);
    assert_int_equal(st.cancelled, 2);
    t_env_destroy(env);
}

static void test_heartbeats_when_idle(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.heartbeat_ms = 50;
    env->cfg.liveness = 100; /*  silent fake broker: no reconnect here */
    t_env_start(env);
    int64_t end = yard_clock_ms() + 500;
    int beats = 0;
    while (yard_clock_ms() < end) {
        int cmd = fb_next(&env->fb, (int)(end - yard_clock_ms()), false);
        if (cmd == YARD_CMD_HEARTBEAT)
            beats++;
        else if (cmd >= 0)
            fail_msg("unexpected %s", yard_cmd_name((yard_cmd_t)cmd));
    }
    assert_true(beats >= 4);
    assert_true(beats <= 12);
    t_env_destroy(env);
}

static void test_no_heartbeat_while_busy(void **state)
{
    (void)state;
    /*  Results count as traffic: a worker sending them does not also
        send HEARTBEAT within the interval. */
    t_env_t *env = t_env_new();
    env->cfg.heartbeat_ms = 200;
    env->cfg.liveness = 100;
    t_env_start(env);
    int64_t end = yard_clock_ms() + 600;
    uint64_t job = 1;
    while (yard_clock_ms() < end) {
        fb_send_tasks(&env->fb, job++, 1, NULL);
        int cmd = fb_next(&env->fb, T_WAIT_MS, false);
        assert_int_equal(cmd, YARD_CMD_RESULT);
        t_sleep_ms(20);
    }
    assert_int_equal(env->fb.heartbeats, 0);
    t_env_destroy(env);
}

static size_t t_objects(yard_object_count_t *out, size_t max, void *arg)
{
    (void)arg;
    assert_true(max >= 2);
    out[0] = (yard_object_count_t){"widgets", 7};
    out[1] = (yard_object_count_t){"gadgets.open", 0};
    return 2;
}

/*  A probe (the broker's HEARTBEAT with a body) is answered at once with
    a report carrying its number, the runtime's figures and the program's
    object counts. A bad probe draws nothing. */
static void test_probe_answered_with_report(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.heartbeat_ms = 1000;
    env->cfg.objects = t_objects;
    t_env_start(env);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    yard_probe_t probe = {.probe = 42};
    assert_int_equal(yard_encode_probe(&sb, &probe), 0);
    yard_frame_t body = {sb.data, sb.size};
    int64_t t0 = yard_clock_ms();
    fb_send(&env->fb, YARD_CMD_HEARTBEAT, &body, 1);
    assert_int_equal(fb_next(&env->fb, T_WAIT_MS, false), YARD_CMD_HEARTBEAT);
    assert_true(yard_clock_ms() - t0 < 500); /*  at once, not at the beat */
    assert_int_equal(env->fb.reports, 1);
    assert_int_equal(env->fb.report.probe, 42);
    assert_true(env->fb.report.rss > 0);
    assert_true(env->fb.report.rss_peak >= env->fb.report.rss);
    assert_true(env->fb.report.loop_iterations > 0);
    assert_int_equal(env->fb.report.loop_slow_ms, YARD_PROC_DEFAULT_SLOW_MS);
    assert_int_equal(env->fb.report.loop_stall_ms, YARD_PROC_DEFAULT_STALL_MS);
    assert_int_equal(env->fb.report.in_flight, 0);
    assert_string_equal(env->fb.report_objects,
                        "events_waiting=0\nwidgets=7\ngadgets.open=0\n");
    /*  A bad probe: logged and ignored. */
    msgpack_sbuffer_clear(&sb);
    static const char bad[] = "\x81\xa5probe\xa1x"; /*  {"probe": "x"} */
    yard_frame_t badf = {bad, sizeof bad - 1};
    fb_send(&env->fb, YARD_CMD_HEARTBEAT, &badf, 1);
    assert_int_equal(fb_next(&env->fb, 300, true), -1);
    assert_int_equal(env->fb.reports, 1);
    /*  A task in hand shows in the next report. */
    env->ctx.mode = T_BLOCK;
    fb_send_tasks(&env->fb, 5, 1, NULL);
    t_wait_started(env, 1);
    probe.probe = 43;
    assert_int_equal(yard_encode_probe(&sb, &probe), 0);
    body = (yard_frame_t){sb.data, sb.size};
    fb_send(&env->fb, YARD_CMD_HEARTBEAT, &body, 1);
    assert_int_equal(fb_next(&env->fb, T_WAIT_MS, false), YARD_CMD_HEARTBEAT);
    assert_int_equal(env->fb.report.probe, 43);
    assert_int_equal(env->fb.report.in_flight, 1);
    msgpack_sbuffer_destroy(&sb);
    t_env_destroy(env);
}

/*  A busy worker sends no idle heartbeats but still reports, every five
    heartbeat intervals. */
static void test_busy_worker_still_reports(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.heartbeat_ms = 40;
    env->cfg.liveness = 100;
    t_env_start(env);
    int64_t end = yard_clock_ms() + 700;
    uint64_t job = 1;
    while (yard_clock_ms() < end) {
        fb_send_tasks(&env->fb, job++, 1, NULL);
        int cmd = fb_next(&env->fb, T_WAIT_MS, true);
        assert_int_equal(cmd, YARD_CMD_RESULT);
        env->fb.nresults = 0; /*  only the reports matter here */
        t_sleep_ms(10);
    }
    /*  Every 200 ms: 3 or so in 700 ms, never one per 40 ms beat. */
    assert_true(env->fb.reports >= 2);
    assert_true(env->fb.reports <= 6);
    assert_int_equal(env->fb.reports, env->fb.heartbeats);
    t_env_destroy(env);
}

static void test_reconnect_on_disconnect(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    t_env_start(env);
    uint8_t old_id[255];
    size_t old_len = env->fb.wid_len;
    memcpy(old_id, env->fb.wid, old_len);
    fb_send(&env->fb, YARD_CMD_DISCONNECT, NULL, 0);
    fb_expect(&env->fb, YARD_CMD_READY, T_WAIT_MS);
    assert_int_equal(env->fb.ready_capacity, 4);
    /*  A new DEALER, so a new routing id. */
    assert_false(env->fb.wid_len == old_len &&
                 memcmp(env->fb.wid, old_id, old_len) == 0);
    fb_send_tasks(&env->fb, 1, 1, NULL);
    fb_collect(&env->fb, 1, T_WAIT_MS);
    assert_int_equal(env->fb.results[0].status, YARD_OK);
    yard_worker_stats_t st;
    yard_worker_stats(env->worker, &st);
    assert_int_equal(st.reconnects, 1);
    t_env_destroy(env);
}

static void test_reconnect_on_silence(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.heartbeat_ms = 50;
    env->cfg.liveness = 3;
    env->ctx.mode = T_BLOCK;
    t_env_start(env);
    fb_send_tasks(&env->fb, 7, 1, NULL);
    t_wait_started(env, 1);
    /*  Say nothing: within 3 x 50 ms (+ backoff) the worker reconnects. */
    int64_t t0 = yard_clock_ms();
    fb_expect(&env->fb, YARD_CMD_READY, T_WAIT_MS);
    int64_t took = yard_clock_ms() - t0;
    assert_true(took >= 100);
    assert_true(took < 2000);
    /*  The job of the old connection is cancelled and its result is not
        sent on the new one (a new broker could mistake its handle). */
    int64_t end = yard_clock_ms() + T_WAIT_MS;
    while (atomic_load(&env->ctx.saw_cancel) < 1 && yard_clock_ms() < end)
        t_sleep_ms(1);
    assert_int_equal(atomic_load(&env->ctx.saw_cancel), 1);
    fb_send(&env->fb, YARD_CMD_HEARTBEAT, NULL, 0); /*  keep it alive */
    int cmd = fb_next(&env->fb, 100, true);
    assert_int_equal(cmd, -1);
    assert_int_equal(env->fb.nresults, 0);
    t_env_destroy(env);
}

static void test_broker_heartbeats_keep_alive(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.heartbeat_ms = 30;
    env->cfg.liveness = 3;
    t_env_start(env);
    int64_t end = yard_clock_ms() + 400;
    while (yard_clock_ms() < end) {
        fb_send(&env->fb, YARD_CMD_HEARTBEAT, NULL, 0);
        int cmd = fb_next(&env->fb, 30, true);
        if (cmd == YARD_CMD_READY)
            fail_msg("worker reconnected although the broker was alive");
    }
    yard_worker_stats_t st;
    yard_worker_stats(env->worker, &st);
    assert_int_equal(st.reconnects, 0);
    t_env_destroy(env);
}

static void test_graceful_stop(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.capacity = 3;
    env->cfg.threads = 2;
    env->ctx.mode = T_SLEEP;
    env->ctx.sleep_ms = 150;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 3, NULL); /*  2 run, 1 waits locally */
    t_wait_started(env, 2);
    yard_worker_stop(env->worker);
    fb_expect(&env->fb, YARD_CMD_READY, T_WAIT_MS);
    assert_int_equal(env->fb.ready_capacity, 0);
    /*  The held jobs, queued one included, finish and are answered... */
    fb_collect(&env->fb, 3, T_WAIT_MS);
    for (uint64_t job = 1; job <= 3; job++)
        assert_int_equal(fb_result(&env->fb, job)->status, YARD_OK);
    /*  ...then DISCONNECT, and run returns 0. */
    fb_expect(&env->fb, YARD_CMD_DISCONNECT, T_WAIT_MS);
    t_env_join(env, T_WAIT_MS);
    assert_int_equal(env->rc, 0);
    t_env_destroy(env);
}

static void test_graceful_stop_takes_in_transit_tasks(void **state)
{
    (void)state;
    /*  A TASK the broker sent before it saw READY 0 is still served. */
    t_env_t *env = t_env_new();
    env->cfg.capacity = 2;
    env->ctx.mode = T_SLEEP;
    env->ctx.sleep_ms = 200;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 1, NULL);
    t_wait_started(env, 1);
    yard_worker_stop(env->worker);
    fb_expect(&env->fb, YARD_CMD_READY, T_WAIT_MS);
    fb_send_tasks(&env->fb, 2, 1, NULL);
    fb_collect(&env->fb, 2, T_WAIT_MS);
    assert_int_equal(fb_result(&env->fb, 1)->status, YARD_OK);
    assert_int_equal(fb_result(&env->fb, 2)->status, YARD_OK);
    fb_expect(&env->fb, YARD_CMD_DISCONNECT, T_WAIT_MS);
    t_env_join(env, T_WAIT_MS);
    t_env_destroy(env);
}

static void test_grace_expires(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.capacity = 2;
    env->cfg.threads = 1;
    env->cfg.grace_ms = 100;
    env->ctx.mode = T_BLOCK;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 2, NULL);
    t_wait_started(env, 1);
    int64_t t0 = yard_clock_ms();
    yard_worker_stop(env->worker);
    fb_expect(&env->fb, YARD_CMD_READY, T_WAIT_MS);
    assert_int_equal(env->fb.ready_capacity, 0);
    /*  Nothing finishes: after the grace, DISCONNECT (the broker re-queues
        what it held) and the running handler is told to stop. */
    fb_expect(&env->fb, YARD_CMD_DISCONNECT, T_WAIT_MS);
    int64_t took = yard_clock_ms() - t0;
    assert_true(took >= 90);
    assert_true(took < 2000);
    assert_int_equal(env->fb.nresults, 0);
    t_env_join(env, T_WAIT_MS);
    assert_int_equal(env->rc, 0);
    assert_int_equal(atomic_load(&env->ctx.saw_cancel), 1);
    assert_int_equal(atomic_load(&env->ctx.started), 1);
    t_env_destroy(env);
}

static void test_second_stop_cuts_grace(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.grace_ms = 60000;
    env->ctx.mode = T_BLOCK;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 1, NULL);
    t_wait_started(env, 1);
    yard_worker_stop(env->worker);
    fb_expect(&env->fb, YARD_CMD_READY, T_WAIT_MS);
    yard_worker_stop(env->worker);
    fb_expect(&env->fb, YARD_CMD_DISCONNECT, 2000);
    t_env_join(env, T_WAIT_MS);
    t_env_destroy(env);
}

static void test_answers(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.threads = 1;
    env->ctx.mode = T_FAIL;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 1, NULL);
    fb_collect(&env->fb, 1, T_WAIT_MS);
    assert_int_equal(env->fb.results[0].status, YARD_ERROR);
    assert_string_equal(env->fb.results[0].error, "boom 42");

    env->ctx.mode = T_NO_RESULT;
    fb_send_tasks(&env->fb, 2, 1, NULL);
    fb_collect(&env->fb, 2, T_WAIT_MS);
    assert_int_equal(env->fb.results[1].status, YARD_ERROR);
    assert_string_equal(env->fb.results[1].error, "handler returned no result");

    /*  Accessors: a task with headers, attempt 2, 5 s left. */
    env->ctx.mode = T_INFO;
    msgpack_sbuffer hdr, body;
    msgpack_sbuffer_init(&hdr);
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &hdr, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "tenant", 6);
    msgpack_pack_str_with_body(&pk, "t1", 2);
    msgpack_pack_str_with_body(&pk, "trace", 5);
    msgpack_pack_str_with_body(&pk, "abc123", 6);
    yard_task_t task;
    memset(&task, 0, sizeof task);
    task.job = 3;
    task.id = yard_bytes_str("my-id");
    task.service = yard_bytes_str("svc");
    task.payload = yard_bytes_str("x");
    task.timeout_ms = 5000;
    task.attempt = 2;
    task.headers.ptr = (const uint8_t *)hdr.data;
    task.headers.len = (uint32_t)hdr.size;
    assert_int_equal(yard_encode_task(&body, &task), 0);
    yard_frame_t frame = {body.data, body.size};
    fb_send(&env->fb, YARD_CMD_TASK, &frame, 1);
    fb_collect(&env->fb, 3, T_WAIT_MS);
    assert_int_equal(env->fb.results[2].status, YARD_OK);
    assert_string_equal(env->fb.results[2].payload,
                        "id=my-id service=svc attempt=2 handle=3 "
                        "trace=abc123 missing=0 left_ok=1");
    msgpack_sbuffer_destroy(&hdr);
    msgpack_sbuffer_destroy(&body);
    t_env_destroy(env);
}

static void test_bad_input(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.threads = 2;
    t_env_start(env);
    t_broker_t *fb = &env->fb;
    uint8_t task_hdr[4], hb_hdr[4], cancel_hdr[4], err_hdr[4];
    yard_header_make(task_hdr, YARD_ROLE_BROKER, YARD_CMD_TASK);
    yard_header_make(hb_hdr, YARD_ROLE_BROKER, YARD_CMD_HEARTBEAT);
    yard_header_make(cancel_hdr, YARD_ROLE_BROKER, YARD_CMD_CANCEL);
    yard_header_make(err_hdr, YARD_ROLE_BROKER, YARD_CMD_ERROR);
    static const uint8_t junk[] = {0xc1, 0xff, 0x00, 0x93};
    static const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    uint8_t client_hdr[4], bad_ver[4], bad_cmd[4];
    yard_header_make(client_hdr, YARD_ROLE_CLIENT, YARD_CMD_TASK);
    memcpy(bad_ver, task_hdr, 4);
    bad_ver[2] = 99;
    memcpy(bad_cmd, task_hdr, 4);
    bad_cmd[3] = 0x7f;

    /*  A body with a job handle but a bad field: answered as an error. */
    msgpack_sbuffer bad_task;
    msgpack_sbuffer_init(&bad_task);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &bad_task, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "job", 3);
    msgpack_pack_uint64(&pk, 77);
    msgpack_pack_str_with_body(&pk, "service", 7);
    msgpack_pack_int(&pk, -5);

    {
        const void *p[] = {"Y"};
        size_t s[] = {1};
        fb_send_raw(fb, p, s, 1); /*  short header */
    }
    {
        const void *p[] = {"XBZ\x05"};
        size_t s[] = {4};
        fb_send_raw(fb, p, s, 1); /*  bad magic */
    }
    {
        const void *p[] = {client_hdr, junk};
        size_t s[] = {4, sizeof junk};
        fb_send_raw(fb, p, s, 2); /*  wrong role */
    }
    {
        const void *p[] = {bad_ver};
        size_t s[] = {4};
        fb_send_raw(fb, p, s, 1); /*  bad version */
    }
    {
        const void *p[] = {bad_cmd};
        size_t s[] = {4};
        fb_send_raw(fb, p, s, 1); /*  unknown command */
    }
    {
        const void *p[] = {task_hdr};
        size_t s[] = {4};
        fb_send_raw(fb, p, s, 1); /*  TASK without bodies */
    }
    {
        const void *p[] = {hb_hdr, junk};
        size_t s[] = {4, sizeof junk};
        fb_send_raw(fb, p, s, 2); /*  HEARTBEAT with a body */
    }
    {
        const void *p[] = {task_hdr, junk, huge_map, "", bad_task.data};
        size_t s[] = {4, sizeof junk, sizeof huge_map, 0, bad_task.size};
        fb_send_raw(fb, p, s, 5); /*  bad task bodies */
    }
    {
        const void *p[] = {cancel_hdr, junk};
        size_t s[] = {4, sizeof junk};
        fb_send_raw(fb, p, s, 2); /*  bad cancel */
    }
    {
        const void *p[] = {err_hdr, junk};
        size_t s[] = {4, sizeof junk};
        fb_send_raw(fb, p, s, 2); /*  bad error */
    }
    msgpack_sbuffer_destroy(&bad_task);

    /*  Only the body with a readable job got an answer... */
    fb_collect(fb, 1, T_WAIT_MS);
    assert_int_equal(fb->results[0].job, 77);
    assert_int_equal(fb->results[0].status, YARD_ERROR);
    assert_non_null(strstr(fb->results[0].error, "worker refused the task"));
    /*  ...and the worker still serves. */
    fb_send_tasks(fb, 1, 1, NULL);
    fb_collect(fb, 2, T_WAIT_MS);
    assert_int_equal(fb->results[1].job, 1);
    assert_int_equal(fb->results[1].status, YARD_OK);
    t_env_destroy(env);
}

/*  A handler that rejects the request answers "invalid" with its reason. */
static void test_reject(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->ctx.mode = T_REJECT;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 2, NULL);
    fb_collect(&env->fb, 2, T_WAIT_MS);
    for (uint64_t job = 1; job <= 2; job++) {
        const t_result_t *r = fb_result(&env->fb, job);
        assert_int_equal(r->status, YARD_INVALID);
        assert_string_equal(r->error, "bad input");
    }
    yard_worker_stats_t st;
    yard_worker_stats(env->worker, &st);
    assert_int_equal(st.failed, 2);
    t_env_destroy(env);
}

/*  Handlers publish events: they leave as PUBLISH messages from the
    worker's socket, with the worker's name as source. */
static void test_publish(void **state)
{
    (void)state;
    t_env_t *env = t_env_new();
    env->cfg.capacity = 4;
    env->cfg.threads = 2;
    env->ctx.mode = T_PUBLISH;
    t_env_start(env);
    fb_send_tasks(&env->fb, 1, 3, NULL);
    size_t events = 0;
    bool seen[3] = {false, false, false};
    int64_t end = yard_clock_ms() + T_WAIT_MS;
    while ((events < 3 || env->fb.nresults < 3) && yard_clock_ms() < end) {
        int cmd = fb_next(&env->fb, T_WAIT_MS, true);
        assert_true(cmd == YARD_CMD_RESULT || cmd == YARD_CMD_PUBLISH);
        if (cmd != YARD_CMD_PUBLISH)
            continue;
        for (size_t i = 0; i < env->fb.msg->nbodies; i++) {
            yard_event_t ev;
            assert_int_equal(
                yard_decode_event(env->fb.dec,
                                  zmq_msg_data(&env->fb.msg->bodies[i]),
                                  zmq_msg_size(&env->fb.msg->bodies[i]), &ev),
                0);
            assert_int_equal(ev.type.len, 5);
            assert_memory_equal(ev.type.ptr, "t.evt", 5);
            assert_int_equal(ev.source.len, strlen("t-worker"));
            assert_memory_equal(ev.source.ptr, "t-worker", ev.source.len);
            /*  payload: a msgpack str "p<job>" (fb_send_tasks, jobs 1..3) */
            assert_true(ev.payload.len >= 2 && ev.payload.ptr[0] > 0xa0);
            char digit = (char)ev.payload.ptr[ev.payload.len - 1];
            assert_true(digit >= '1' && digit <= '3');
            seen[digit - '1'] = true;
            events++;
        }
    }
    assert_int_equal(events, 3);
    assert_true(seen[0] && seen[1] && seen[2]);
    assert_int_equal(env->fb.nresults, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(env->fb.results[i].status, YARD_OK);
    assert_int_equal(yard_worker_publish(NULL, "t.evt", NULL, 0), YARD_E_ARG);
    t_env_destroy(env);
}

static void test_large_result(void **state)
{
    (void)state;
    /*  A result of YARD_MAX_PAYLOAD bytes goes out; one byte more is
        answered with an error instead. */
    t_env_t *env = t_env_new();
    env->cfg.threads = 0;
    env->ctx.mode = T_ECHO;
    t_env_start(env);
    size_t big = YARD_MAX_PAYLOAD;
    char *payload = malloc(big + 1);
    assert_non_null(payload);
    memset(payload, 'a', big);
    payload[big] = '\0';
    const char *payloads[] = {payload};
    fb_send_tasks(&env->fb, 1, 1, payloads);
    fb_collect(&env->fb, 1, T_WAIT_MS);
    assert_int_equal(env->fb.results[0].status, YARD_OK); /*  at the limit */
    assert_true(env->fb.results[0].has_payload);
    env->ctx.mode = T_TOO_BIG;
    fb_send_tasks(&env->fb, 2, 1, NULL);
    fb_collect(&env->fb, 2, T_WAIT_MS);
    assert_int_equal(env->fb.results[1].status, YARD_ERROR);
    assert_non_null(strstr(env->fb.results[1].error, "result too large"));
    free(payload);
    t_env_destroy(env);
}

int main(void)
{
    const char *level_text = getenv("YARD_LOG_LEVEL");
    yard_log_level_t level = YARD_LOG_ERROR;
    if (level_text)
        yard_log_level_parse(level_text, &level);
    yard_log_init("test_worker", level);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_stop_before_run_and_bad_endpoint),
        cmocka_unit_test(test_echo_threads),
        cmocka_unit_test(test_echo_fewer_threads),
        cmocka_unit_test(test_echo_inline),
        cmocka_unit_test(test_results_batched),
        cmocka_unit_test(test_fast_handler),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_capacity_inline),
        cmocka_unit_test(test_threads_bound_concurrency),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_heartbeats_when_idle),
        cmocka_unit_test(test_no_heartbeat_while_busy),
        cmocka_unit_test(test_probe_answered_with_report),
        cmocka_unit_test(test_busy_worker_still_reports),
        cmocka_unit_test(test_reconnect_on_disconnect),
        cmocka_unit_test(test_reconnect_on_silence),
        cmocka_unit_test(test_broker_heartbeats_keep_alive),
        cmocka_unit_test(test_graceful_stop),
        cmocka_unit_test(test_graceful_stop_takes_in_transit_tasks),
        cmocka_unit_test(test_grace_expires),
        cmocka_unit_test(test_second_stop_cuts_grace),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_large_result),
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_reject),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
