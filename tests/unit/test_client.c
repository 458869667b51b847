/*  test_client.c — the C client library against a fake broker: a ROUTER
    on tcp://127.0.0.1:* run by a thread of this test with the real codec,
    scripted per test (echo, hold, reverse, silent, error, ...). The fake
    only records what it saw; every assertion runs on the main thread,
    after the fake has stopped. Every wait is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yard_client.h"
#include "yard_clock.h"
#include "yard_proto.h"

/* ---- The fake broker --------------------------------------------------- */

typedef enum {
    FAKE_ECHO,        /*  answer every task ok with its payload           */
    FAKE_REVERSE,     /*  hold `hold_count` tasks, answer them reversed in
                          one RESULT                                      */
    FAKE_SILENT,      /*  answer nothing, not even heartbeats              */
    FAKE_ERROR,       /*  answer each task with ERROR naming its id        */
    FAKE_CANCEL,      /*  hold tasks; answer one "cancelled" on CANCEL     */
    FAKE_HOLD,        /*  answer heartbeats; answer each task hold_ms after
                          it arrived, one RESULT per task                  */
    FAKE_DISCONNECT,  /*  first SUBMIT: drop it, send DISCONNECT; then echo */
    FAKE_SILENT_ONCE, /* silent until a task id comes a second time
                         (the client's re-send), then echo                */
    FAKE_RESTART,     /*  first SUBMIT: drop it, close the socket and bind
                          a new one (new context) on the same endpoint,
                          then echo                                       */
} fake_mode_t;

#define FAKE_MAX_PENDING 1024
#define FAKE_STATS_JSON "{\"broker\":{\"version\":\"0.1.0\"},\"total\":{}}"

/*  A task the fake holds. */
typedef struct {
    char id[YARD_CLIENT_ID_MAX]; /*  the client's id                     */
    uint8_t *payload;            /*  copy of its payload                 */
    size_t len;                  /*  payload bytes                       */
    bool admin;                  /*  addressed to yard.admin             */
    int64_t at_us;               /*  when it arrived                     */
} fake_task_t;

typedef struct {
    void *ctx;          /*  the fake's own context          */
    void *router;       /*  its ROUTER                      */
    char endpoint[128]; /*  where it is bound               */
    pthread_t thread;   /*  runs s_fake_run                 */
    atomic_bool stop;   /*  set by the main thread          */
    fake_mode_t mode;   /*  behaviour, fixed before start   */
    int hold_count;     /*  FAKE_REVERSE                    */
    int hold_ms;        /*  FAKE_HOLD                       */
    int quiet_ms;       /*  FAKE_ECHO: answer only after this
                            long without input (0: at once) */
    fake_task_t pending[FAKE_MAX_PENDING]; /* tasks held                 */
    int npending;       /*  how many                        */
    int64_t last_in_us; /*  last message received           */
    /*  What it saw (read by the main thread after join). */
    int submit_msgs, submit_bodies, max_batch, cancels, heartbeats;
    int max_outstanding;                /*  tasks held at once, at most     */
    int resends;                        /*  ids seen twice                  */
    char first_id[YARD_CLIENT_ID_MAX];  /* id of the first task            */
    char cancel_id[YARD_CLIENT_ID_MAX]; /* id of the last CANCEL          */
    uint8_t identity[255];              /*  first client routing id         */
    size_t identity_len;
    bool identity_changed;          /*  a later message had another id  */
    int64_t first_hb_us, resend_us; /*  when those happened             */
    uint32_t timeout_ms, retries, backoff_ms; /* first task's options    */
    uint8_t priority;
    int nheaders;               /*  first task's header count       */
    yard_cache_policy_t policy; /*  first task's cache policy (parsed) */
    int policy_rc;              /*  what parsing it returned           */
    char policy_tag1[16];       /*  its second tag, copied             */
    bool restarted;             /*  FAKE_RESTART done               */
    bool disconnected;          /*  FAKE_DISCONNECT done            */
    int errors;                 /*  failures inside the fake thread  */
    bool joined;                /*  the thread has been joined       */
    yard_decoder_t *decoder;
    yard_wire_msg_t msg;
} fake_t;

/*  Binds a new context's ROUTER on endpoint. No cmocka asserts: the fake
    thread calls this too. Returns 0 or -1. */
static int s_fake_bind(fake_t *f, const char *endpoint)
{
    size_t len = sizeof(f->endpoint);
    f->ctx = zmq_ctx_new();
    f->router = f->ctx ? zmq_socket(f->ctx, ZMQ_ROUTER) : NULL;
    if (!f->router || yard_wire_setup(f->router) != 0 ||
        zmq_bind(f->router, endpoint) != 0 ||
        zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->endpoint, &len) != 0)
        return -1;
    return 0;
}

static void s_send(fake_t *f, yard_cmd_t cmd, const yard_frame_t *bodies,
                   size_t n)
{
    yard_wire_send(f->router, f->identity, f->identity_len, YARD_ROLE_BROKER,
                   cmd, bodies, n, 0);
}

/*  Answers tasks[0..n) (in reverse when asked) in RESULT messages of up
    to YARD_MAX_BATCH bodies and frees their payloads. */
static void s_fake_reply(fake_t *f, fake_task_t *tasks, int n, bool reversed,
                         yard_status_t status)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    size_t offsets[YARD_MAX_BATCH + 1];
    yard_frame_t frames[YARD_MAX_BATCH];
    for (int done = 0; done < n;) {
        int count = n - done < YARD_MAX_BATCH ? n - done : YARD_MAX_BATCH;
        msgpack_sbuffer_clear(&buf);
        offsets[0] = 0;
        for (int i = 0; i < count; i++) {
            fake_task_t *t = &tasks[reversed ? n - 1 - (done + i) : done + i];
            yard_result_t r;
            memset(&r, 0, sizeof(r));
            r.id = yard_bytes_str(t->id);
            r.status = status;
            if (t->admin) {
                r.payload.ptr = (const uint8_t *)FAKE_STATS_JSON;
                r.payload.len = (uint32_t)strlen(FAKE_STATS_JSON);
            } else {
                r.payload.ptr = t->payload ? t->payload : (const uint8_t *)"";
                r.payload.len = (uint32_t)t->len;
            }
            r.attempts = 1;
            r.total_us = 42;
            if (status != YARD_OK)
                r.error = yard_bytes_str("fake says no");
            if (yard_encode_result(&buf, YARD_ROLE_BROKER, &r) != 0)
                f->errors++;
            offsets[i + 1] = buf.size;
        }
        for (int i = 0; i < count; i++) {
            frames[i].data = buf.data + offsets[i];
            frames[i].len = offsets[i + 1] - offsets[i];
        }
        s_send(f, YARD_CMD_RESULT, frames, (size_t)count);
        done += count;
    }
    for (int i = 0; i < n; i++)
        free(tasks[i].payload);
    msgpack_sbuffer_destroy(&buf);
}

/*  Answers every pending task. */
static void s_fake_answer(fake_t *f, bool reversed, yard_status_t status)
{
    s_fake_reply(f, f->pending, f->npending, reversed, status);
    f->npending = 0;
}

/*  Answers and removes the pending task with this id, if held. */
static void s_fake_answer_one(fake_t *f, const char *id, yard_status_t st)
{
    for (int i = 0; i < f->npending; i++) {
        if (strcmp(f->pending[i].id, id) != 0)
            continue;
        fake_task_t t = f->pending[i];
        memmove(&f->pending[i], &f->pending[i + 1],
                (size_t)(f->npending - i - 1) * sizeof(fake_task_t));
        f->npending--;
        s_fake_reply(f, &t, 1, false, st);
        return;
    }
}

static int s_count_header(const char *k, size_t kl, const char *v, size_t vl,
                          void *arg)
{
    (void)k, (void)kl, (void)v, (void)vl;
    (*(int *)arg)++;
    return 0;
}

/*  Takes one SUBMIT body into pending. Returns false for a re-sent id. */
static bool s_fake_take(fake_t *f, const zmq_msg_t *frame)
{
    yard_submit_t s;
    memset(&s, 0, sizeof(s));
    if (yard_decode_submit(f->decoder, zmq_msg_data((zmq_msg_t *)frame),
                           zmq_msg_size((zmq_msg_t *)frame), &s) != 0)
        return true;
    char id[YARD_CLIENT_ID_MAX];
    snprintf(id, sizeof(id), "%.*s", (int)s.id.len, (const char *)s.id.ptr);
    if (f->first_id[0] == '\0') {
        strcpy(f->first_id, id);
        f->timeout_ms = s.timeout_ms;
        f->retries = s.retries;
        f->backoff_ms = s.backoff_ms;
        f->priority = s.priority;
        yard_headers_each(&s.headers, s_count_header, &f->nheaders);
        f->policy_rc = yard_cache_policy_parse(&s.cache, &f->policy);
        if (f->policy_rc == 0 && f->policy.ntags > 1)
            snprintf(f->policy_tag1, sizeof(f->policy_tag1), "%.*s",
                     (int)f->policy.tags[1].len,
                     (const char *)f->policy.tags[1].ptr);
    } else if (strcmp(f->first_id, id) == 0) {
        f->resends++;
        if (!f->resend_us)
            f->resend_us = yard_clock_us();
    }
    if (f->npending == FAKE_MAX_PENDING)
        return true;
    fake_task_t *t = &f->pending[f->npending++];
    strcpy(t->id, id);
    t->len = s.payload.len;
    t->payload = NULL;
    if (s.payload.len) {
        t->payload = malloc(s.payload.len);
        memcpy(t->payload, s.payload.ptr, s.payload.len);
    }
    t->admin = s.service.len == strlen(YARD_ADMIN_SERVICE) &&
               memcmp(s.service.ptr, YARD_ADMIN_SERVICE, s.service.len) == 0;
    t->at_us = yard_clock_us();
    if (f->npending > f->max_outstanding)
        f->max_outstanding = f->npending;
    return true;
}

static void s_fake_drop_pending(fake_t *f)
{
    for (int i = 0; i < f->npending; i++)
        free(f->pending[i].payload);
    f->npending = 0;
}

static void s_fake_on_submit(fake_t *f, yard_wire_msg_t *m)
{
    f->submit_msgs++;
    f->submit_bodies += (int)m->nbodies;
    if ((int)m->nbodies > f->max_batch)
        f->max_batch = (int)m->nbodies;
    int resends_before = f->resends;
    for (size_t i = 0; i < m->nbodies; i++)
        s_fake_take(f, &m->bodies[i]);
    switch (f->mode) {
    case FAKE_ECHO:
        if (f->quiet_ms == 0)
            s_fake_answer(f, false, YARD_OK);
        break;
    case FAKE_REVERSE:
        if (f->npending >= f->hold_count)
            s_fake_answer(f, true, YARD_OK);
        break;
    case FAKE_ERROR: {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init(&buf);
        for (int i = 0; i < f->npending; i++) {
            yard_error_t e = {yard_bytes_str(YARD_ERRCODE_BAD_FIELD),
                              yard_bytes_str("payload not allowed"),
                              yard_bytes_str(f->pending[i].id)};
            msgpack_sbuffer_clear(&buf);
            if (yard_encode_error(&buf, &e) != 0)
                f->errors++;
            yard_frame_t frame = {buf.data, buf.size};
            s_send(f, YARD_CMD_ERROR, &frame, 1);
        }
        msgpack_sbuffer_destroy(&buf);
        s_fake_drop_pending(f);
        break;
    }
    case FAKE_DISCONNECT:
        if (!f->disconnected) {
            f->disconnected = true;
            s_fake_drop_pending(f);
            s_send(f, YARD_CMD_DISCONNECT, NULL, 0);
        } else
            s_fake_answer(f, false, YARD_OK);
        break;
    case FAKE_SILENT_ONCE:
        if (f->resends > resends_before)
            f->mode = FAKE_ECHO, s_fake_answer(f, false, YARD_OK);
        break;
    case FAKE_RESTART:
        if (!f->restarted) {
            /*  Forget everything, like a broker that crashed. */
            f->restarted = true;
            s_fake_drop_pending(f);
            char endpoint[128];
            strcpy(endpoint, f->endpoint);
            zmq_close(f->router);
            zmq_ctx_term(f->ctx); /*  returns once the port is free */
            if (s_fake_bind(f, endpoint) != 0)
                f->errors++;
        } else
            s_fake_answer(f, false, YARD_OK);
        break;
    default:
        break;
    }
}

static void s_fake_on_message(fake_t *f, yard_wire_msg_t *m)
{
    f->last_in_us = yard_clock_us();
    if (m->header_err || m->role != YARD_ROLE_CLIENT)
        return;
    if (f->identity_len == 0) {
        memcpy(f->identity, m->identity, m->identity_len);
        f->identity_len = m->identity_len;
    } else if (m->identity_len != f->identity_len ||
               memcmp(m->identity, f->identity, f->identity_len) != 0)
        f->identity_changed = true;
    switch (m->cmd) {
    case YARD_CMD_SUBMIT:
        s_fake_on_submit(f, m);
        break;
    case YARD_CMD_HEARTBEAT:
        f->heartbeats++;
        if (!f->first_hb_us)
            f->first_hb_us = yard_clock_us();
        if (f->mode != FAKE_SILENT && f->mode != FAKE_SILENT_ONCE)
            s_send(f, YARD_CMD_HEARTBEAT, NULL, 0);
        break;
    case YARD_CMD_CANCEL:
        for (size_t i = 0; i < m->nbodies; i++) {
            yard_cancel_t c;
            memset(&c, 0, sizeof(c));
            if (yard_decode_cancel(f->decoder, zmq_msg_data(&m->bodies[i]),
                                   zmq_msg_size(&m->bodies[i]), &c) != 0)
                continue;
            f->cancels++;
            snprintf(f->cancel_id, sizeof(f->cancel_id), "%.*s", (int)c.id.len,
                     (const char *)c.id.ptr);
            if (f->mode == FAKE_CANCEL)
                s_fake_answer_one(f, f->cancel_id, YARD_CANCELLED);
        }
        break;
    default:
        break;
    }
}

static void *s_fake_run(void *arg)
{
    fake_t *f = arg;
    while (!atomic_load(&f->stop)) {
        zmq_pollitem_t item = {f->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 2) < 0)
            continue;
        while (yard_wire_recv(f->router, true, &f->msg, ZMQ_DONTWAIT) == 0)
            s_fake_on_message(f, &f->msg);
        int64_t now = yard_clock_us();
        if (f->mode == FAKE_ECHO && f->npending &&
            now - f->last_in_us >= (int64_t)f->quiet_ms * 1000)
            s_fake_answer(f, false, YARD_OK);
        for (int i = 0; f->mode == FAKE_HOLD && i < f->npending;) {
            fake_task_t *t = &f->pending[i];
            bool forever = t->len == 4 && memcmp(t->payload, "hold", 4) == 0;
            if (forever || now - t->at_us < (int64_t)f->hold_ms * 1000) {
                i++;
                continue;
            }
            char id[YARD_CLIENT_ID_MAX];
            strcpy(id, t->id);
            s_fake_answer_one(f, id, YARD_OK);
        }
    }
    return NULL;
}

/*  A fake bound on a fresh port, not yet running: the test may set
    its knobs, then s_fake_go. */
static fake_t *s_fake_start(fake_mode_t mode)
{
    fake_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->mode = mode;
    f->decoder = yard_decoder_new();
    assert_non_null(f->decoder);
    yard_wire_msg_init(&f->msg);
    assert_int_equal(s_fake_bind(f, "tcp://127.0.0.1:*"), 0);
    return f;
}

static void s_fake_go(fake_t *f)
{
    assert_int_equal(pthread_create(&f->thread, NULL, s_fake_run, f), 0);
}

/*  Stops the fake's thread so its observations can be read. Idempotent. */
static void s_fake_halt(fake_t *f)
{
    if (f->joined)
        return;
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    f->joined = true;
    assert_int_equal(f->errors, 0);
}

static void s_fake_stop(fake_t **f_p)
{
    fake_t *f = *f_p;
    s_fake_halt(f);
    s_fake_drop_pending(f);
    yard_wire_msg_close(&f->msg);
    yard_decoder_destroy(&f->decoder);
    zmq_close(f->router);
    zmq_ctx_term(f->ctx);
    free(f);
    *f_p = NULL;
}

/* ---- Tests ------------------------------------------------------------- */

#define WAIT_MS 5000 /*  bound on any wait that should succeed quickly */

static int64_t s_ms_since(int64_t start_us)
{
    return (yard_clock_us() - start_us) / 1000;
}

static void test_submit_wait(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_ECHO);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    assert_non_null(c);

    char id[YARD_CLIENT_ID_MAX];
    assert_int_equal(
        yard_client_submit(c, "echo", "hello", 5, NULL, id, sizeof(id)), 0);
    assert_int_equal(yard_client_outstanding(c), 1);
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_wait(c, WAIT_MS, &r), 0);
    assert_non_null(r);
    assert_string_equal(r->id, id);
    assert_int_equal(r->status, YARD_OK);
    assert_int_equal(r->payload_len, 5);
    assert_memory_equal(r->payload, "hello", 5);
    assert_int_equal(r->payload[5], '\0');
    assert_null(r->error);
    assert_false(r->local);
    assert_int_equal(r->attempts, 1);
    assert_int_equal(r->total_us, 42);
    yard_reply_destroy(&r);
    assert_null(r);
    yard_reply_destroy(&r); /*  idempotent */
    assert_int_equal(yard_client_outstanding(c), 0);
    assert_true(yard_client_broker_seen(c));

    /*  call, with a caller-chosen id and an empty payload. */
    yard_submit_opts_t named = {.id = "my-task"};
    assert_int_equal(yard_client_call(c, "echo", NULL, 0, &named, &r), 0);
    assert_string_equal(r->id, "my-task");
    assert_int_equal(r->status, YARD_OK);
    assert_int_equal(r->payload_len, 0);
    yard_reply_destroy(&r);
    assert_int_equal(yard_client_wait(c, 0, &r), YARD_E_NOTFOUND);

    yard_client_destroy(&c);
    assert_null(c);
    yard_client_destroy(&c); /*  idempotent */
    s_fake_stop(&f);
}

static void test_options_on_the_wire(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_ECHO);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    const char *headers[] = {"trace", "t-1", "user", "ann", NULL};
    const char *tags[] = {"docs", "v2", NULL};
    const char *fields[] = {"prompt", NULL};
    const char *names[] = {"user", NULL};
    yard_cache_opts_t cache = {
        .ttl_ms = 5000, .tags = tags, .key = fields, .headers = names};
    yard_submit_opts_t opts = {.timeout_ms = 1234,
                               .retries = 2,
                               .backoff_ms = 50,
                               .priority = 7,
                               .headers = headers,
                               .cache = &cache};
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_call(c, "echo", "x", 1, &opts, &r), 0);
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_halt(f);
    /*  The options arrived as given. */
    assert_int_equal(f->timeout_ms, 1234);
    assert_int_equal(f->retries, 2);
    assert_int_equal(f->backoff_ms, 50);
    assert_int_equal(f->priority, 7);
    assert_int_equal(f->nheaders, 2);
    /*  And the cache policy, as the broker parses it. */
    assert_int_equal(f->policy_rc, 0);
    assert_int_equal(f->policy.ttl_ms, 5000);
    assert_int_equal(f->policy.ntags, 2);
    assert_string_equal(f->policy_tag1, "v2");
    assert_true(f->policy.has_key);
    assert_int_equal(f->policy.nkey, 1);
    assert_int_equal(f->policy.nexclude, 0);
    assert_int_equal(f->policy.nheaders, 1);
    s_fake_stop(&f);
}

static void test_batched_replies(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_REVERSE);
    f->hold_count = 10;
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    yard_frame_t payloads[10];
    char text[10][8];
    for (int i = 0; i < 10; i++) {
        snprintf(text[i], sizeof(text[i]), "p%d", i);
        payloads[i].data = text[i];
        payloads[i].len = strlen(text[i]);
    }
    char *ids[10];
    assert_int_equal(
        yard_client_submit_batch(c, "echo", payloads, 10, NULL, ids), 0);
    assert_int_equal(yard_client_outstanding(c), 10);
    /*  One RESULT with 10 bodies, reversed: wait hands them out in
        arrival order. */
    for (int i = 9; i >= 0; i--) {
        yard_reply_t *r = NULL;
        assert_int_equal(yard_client_wait(c, WAIT_MS, &r), 0);
        assert_string_equal(r->id, ids[i]);
        assert_int_equal(r->payload_len, strlen(text[i]));
        assert_memory_equal(r->payload, text[i], r->payload_len);
        yard_reply_destroy(&r);
    }
    for (int i = 0; i < 10; i++)
        free(ids[i]);
    yard_client_destroy(&c);
    s_fake_halt(f);
    assert_int_equal(f->submit_msgs, 1);
    assert_int_equal(f->max_batch, 10);
    s_fake_stop(&f);
}

static void test_batch_split_and_wait_all(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_ECHO);
    f->quiet_ms = 20; /*  gather the whole batch before answering */
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    enum { N = 300 };
    yard_frame_t *payloads = calloc(N, sizeof(*payloads));
    char(*text)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(text[i], 16, "item-%d", i);
        payloads[i].data = text[i];
        payloads[i].len = strlen(text[i]);
    }
    char **ids = calloc(N, sizeof(char *));
    assert_int_equal(
        yard_client_submit_batch(c, "echo", payloads, N, NULL, ids), 0);
    yard_reply_t **replies = calloc(N, sizeof(*replies));
    assert_int_equal(
        yard_client_wait_all(c, (const char *const *)ids, N, WAIT_MS, replies),
        0);
    for (int i = 0; i < N; i++) {
        assert_non_null(replies[i]);
        assert_string_equal(replies[i]->id, ids[i]);
        assert_memory_equal(replies[i]->payload, text[i], strlen(text[i]));
        yard_reply_destroy(&replies[i]);
        free(ids[i]);
    }
    assert_int_equal(yard_client_outstanding(c), 0);
    /*  Unknown ids are refused before anything is taken. */
    const char *unknown[] = {"nope"};
    assert_int_equal(yard_client_wait_all(c, unknown, 1, 0, replies),
                     YARD_E_NOTFOUND);
    yard_client_destroy(&c);
    s_fake_halt(f);
    /*  300 tasks: one message of 256 and one of 44. */
    assert_int_equal(f->submit_msgs, 2);
    assert_int_equal(f->submit_bodies, N);
    assert_int_equal(f->max_batch, YARD_MAX_BATCH);
    s_fake_stop(&f);
    free(replies);
    free(ids);
    free(text);
    free(payloads);
}

static void test_wait_id_keeps_others(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_REVERSE);
    f->hold_count = 3;
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    char a[YARD_CLIENT_ID_MAX], b[YARD_CLIENT_ID_MAX], d[YARD_CLIENT_ID_MAX];
    assert_int_equal(yard_client_submit(c, "echo", "a", 1, NULL, a, sizeof a),
                     0);
    assert_int_equal(yard_client_submit(c, "echo", "b", 1, NULL, b, sizeof b),
                     0);
    assert_int_equal(yard_client_submit(c, "echo", "d", 1, NULL, d, sizeof d),
                     0);
    yard_reply_t *r = NULL;
    /*  a arrives last in the batch; d and b stay buffered meanwhile. */
    assert_int_equal(yard_client_wait_id(c, a, WAIT_MS, &r), 0);
    assert_string_equal(r->id, a);
    assert_memory_equal(r->payload, "a", 1);
    yard_reply_destroy(&r);
    assert_int_equal(yard_client_outstanding(c), 2);
    assert_int_equal(yard_client_wait_id(c, a, 0, &r), YARD_E_NOTFOUND);
    /*  The rest come out in arrival order: d, then b, without waiting. */
    assert_int_equal(yard_client_wait(c, 0, &r), 0);
    assert_string_equal(r->id, d);
    yard_reply_destroy(&r);
    assert_int_equal(yard_client_wait_id(c, b, 0, &r), 0);
    assert_string_equal(r->id, b);
    yard_reply_destroy(&r);
    assert_int_equal(yard_client_wait(c, 0, &r), YARD_E_NOTFOUND);
    assert_null(r);
    yard_client_destroy(&c);
    s_fake_stop(&f);
}

/*  What the map callback checks and counts. */
typedef struct {
    const yard_frame_t *payloads; /*  what was submitted           */
    size_t n;                     /*  how many                     */
    int *seen;                    /*  replies per index            */
    size_t calls;                 /*  callbacks so far             */
    size_t stop_after;            /*  return 42 at this call, or 0 */
    size_t ok, invalid;           /*  statuses seen                */
} map_check_t;

static int s_map_cb(size_t index, yard_reply_t *reply, void *arg)
{
    map_check_t *m = arg;
    m->calls++;
    if (index < m->n) {
        m->seen[index]++;
        if (reply->status == YARD_OK &&
            reply->payload_len == m->payloads[index].len &&
            memcmp(reply->payload, m->payloads[index].data,
                   reply->payload_len) == 0)
            m->ok++;
        if (reply->status == YARD_INVALID && reply->local)
            m->invalid++;
    }
    yard_reply_destroy(&reply);
    return m->stop_after && m->calls == m->stop_after ? 42 : 0;
}

static void test_map_window(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_ECHO);
    f->quiet_ms = 3; /*  let a greedy client overfill before answering */
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    enum { N = 200, WINDOW = 8 };
    yard_frame_t payloads[N];
    char text[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof(text[i]), "m%d", i);
        payloads[i].data = text[i];
        payloads[i].len = strlen(text[i]);
    }
    /*  A task submitted before the map is left alone by it. */
    char before[YARD_CLIENT_ID_MAX];
    assert_int_equal(yard_client_submit(c, "echo", "before", 6, NULL, before,
                                        sizeof(before)),
                     0);
    int seen[N] = {0};
    map_check_t m = {.payloads = payloads, .n = N, .seen = seen};
    assert_int_equal(
        yard_client_map(c, "echo", payloads, N, WINDOW, NULL, s_map_cb, &m), 0);
    assert_int_equal(m.calls, N);
    assert_int_equal(m.ok, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(yard_client_outstanding(c), 1);
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_wait(c, WAIT_MS, &r), 0);
    assert_string_equal(r->id, before);
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_halt(f);
    /*  The fake never held more than the window (+1 for "before"). */
    assert_true(f->max_outstanding <= WINDOW + 1);
    assert_true(f->max_outstanding >= 2);
    assert_int_equal(f->submit_bodies, N + 1);
    s_fake_stop(&f);
}

static void test_map_stop_and_invalid(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_HOLD);
    f->hold_ms = 50;
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    enum { N = 20 };
    yard_frame_t payloads[N];
    for (int i = 0; i < N; i++) {
        payloads[i].data = "x";
        payloads[i].len = 1;
    }
    /*  A payload the encoder refuses becomes a local "invalid" reply. */
    static uint8_t big[YARD_MAX_PAYLOAD + 1];
    payloads[3].data = big;
    payloads[3].len = sizeof(big);
    int seen[N] = {0};
    map_check_t m = {.payloads = payloads, .n = N, .seen = seen};
    assert_int_equal(
        yard_client_map(c, "echo", payloads, N, 4, NULL, s_map_cb, &m), 0);
    assert_int_equal(m.calls, N);
    assert_int_equal(m.invalid, 1);
    assert_int_equal(m.ok, N - 1);

    /*  A callback that stops the run: the rest is cancelled. Index 0 is
        answered, the fake holds the others for ever. */
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < N; i++)
        payloads[i] = (yard_frame_t){"hold", 4};
    payloads[0] = (yard_frame_t){"x", 1};
    map_check_t stop = {
        .payloads = payloads, .n = N, .seen = seen, .stop_after = 1};
    assert_int_equal(
        yard_client_map(c, "echo", payloads, N, 4, NULL, s_map_cb, &stop), 42);
    assert_int_equal(stop.calls, 1);
    assert_int_equal(seen[0], 1);
    assert_int_equal(yard_client_outstanding(c), 0);
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_wait(c, 0, &r), YARD_E_NOTFOUND);
    /*  A round trip on the same connection: the CANCELs went before it. */
    assert_int_equal(yard_client_call(c, "echo", "x", 1, NULL, &r), 0);
    yard_reply_destroy(&r);

    /*  Bad arguments. */
    yard_submit_opts_t named = {.id = "x"};
    assert_int_equal(
        yard_client_map(c, "echo", payloads, N, 4, &named, s_map_cb, &m),
        YARD_E_ARG);
    assert_int_equal(yard_client_map(c, "echo", payloads, N, 4, NULL, NULL, &m),
                     YARD_E_ARG);
    assert_int_equal(yard_client_map(c, "echo", NULL, 0, 4, NULL, s_map_cb, &m),
                     0);
    yard_client_destroy(&c);
    s_fake_halt(f);
    assert_int_equal(f->cancels, 3); /*  the stopped run's tasks */
    s_fake_stop(&f);
}

/*  A map callback that submits a task of its own and tries to nest. */
typedef struct {
    yard_client_t *client;       /*  the client running the map  */
    char id[YARD_CLIENT_ID_MAX]; /*  the task the callback made  */
    int nested_rc;               /*  what a nested map returned  */
    size_t calls;                /*  callbacks so far            */
} reentry_t;

static int s_reentry_cb(size_t index, yard_reply_t *reply, void *arg)
{
    reentry_t *e = arg;
    (void)index;
    yard_reply_destroy(&reply);
    if (e->calls++ == 0) {
        const char *headers[] = {"other", "headers", NULL};
        yard_submit_opts_t opts = {.headers = headers};
        if (yard_client_submit(e->client, "echo", "side", 4, &opts, e->id,
                               sizeof(e->id)) != 0)
            return 1;
        yard_frame_t one = {"n", 1};
        e->nested_rc = yard_client_map(e->client, "echo", &one, 1, 1, NULL,
                                       s_reentry_cb, e);
    }
    return 0;
}

static void test_map_callback_reentry(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_ECHO);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    enum { N = 50 };
    yard_frame_t payloads[N];
    for (int i = 0; i < N; i++)
        payloads[i] = (yard_frame_t){"p", 1};
    const char *headers[] = {"map", "headers", NULL};
    yard_submit_opts_t opts = {.headers = headers};
    reentry_t e = {.client = c};
    assert_int_equal(
        yard_client_map(c, "echo", payloads, N, 4, &opts, s_reentry_cb, &e), 0);
    assert_int_equal(e.calls, N);
    assert_int_equal(e.nested_rc, YARD_E_ARG);
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_wait_id(c, e.id, WAIT_MS, &r), 0);
    assert_memory_equal(r->payload, "side", 4);
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_stop(&f);
}

static void test_cancel(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_CANCEL);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    char id[YARD_CLIENT_ID_MAX];
    assert_int_equal(
        yard_client_submit(c, "slow", "zzz", 3, NULL, id, sizeof(id)), 0);
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_wait_id(c, id, 100, &r), YARD_E_TIMEOUT);
    assert_null(r);
    assert_int_equal(yard_client_cancel(c, id), 0);
    assert_int_equal(yard_client_cancel(c, "unknown"), YARD_E_NOTFOUND);
    assert_int_equal(yard_client_wait_id(c, id, WAIT_MS, &r), 0);
    assert_int_equal(r->status, YARD_CANCELLED);
    assert_false(r->local);
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_halt(f);
    assert_int_equal(f->cancels, 1);
    assert_string_equal(f->cancel_id, id);
    s_fake_stop(&f);
}

static void test_resend_after_silence(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_SILENT_ONCE);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    char id[YARD_CLIENT_ID_MAX];
    int64_t start = yard_clock_us();
    yard_submit_opts_t opts = {.timeout_ms = 20000};
    assert_int_equal(
        yard_client_submit(c, "echo", "again", 5, &opts, id, sizeof(id)), 0);
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_wait_id(c, id, 10000, &r), 0);
    int64_t took = s_ms_since(start);
    assert_int_equal(r->status, YARD_OK);
    assert_memory_equal(r->payload, "again", 5);
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_halt(f);
    /*  Heartbeat after 1 s of silence, reconnect and re-send after 3 s,
        on a new connection with the same routing id. */
    assert_true(f->heartbeats >= 1);
    assert_true(f->first_hb_us - start >= 900 * 1000);
    assert_int_equal(f->resends, 1);
    assert_true(f->resend_us - start >= 2900 * 1000);
    assert_false(f->identity_changed);
    assert_true(took >= 2900 && took < 6000);
    s_fake_stop(&f);
}

static void test_resend_after_broker_restart(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_RESTART);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    char id[YARD_CLIENT_ID_MAX];
    yard_submit_opts_t opts = {.timeout_ms = 20000};
    assert_int_equal(
        yard_client_submit(c, "echo", "lost", 4, &opts, id, sizeof(id)), 0);
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_wait_id(c, id, 10000, &r), 0);
    assert_int_equal(r->status, YARD_OK);
    assert_memory_equal(r->payload, "lost", 4);
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_halt(f);
    /*  The new broker got the same task from the same routing id. */
    assert_true(f->restarted);
    assert_int_equal(f->resends, 1);
    assert_false(f->identity_changed);
    s_fake_stop(&f);
}

static void test_heartbeat_keeps_long_task(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_HOLD);
    f->hold_ms = 3500; /*  longer than the 3 s liveness */
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    yard_reply_t *r = NULL;
    yard_submit_opts_t opts = {.timeout_ms = 20000};
    assert_int_equal(yard_client_call(c, "slow", "zz", 2, &opts, &r), 0);
    assert_int_equal(r->status, YARD_OK);
    assert_true(r->latency_us >= 3400 * 1000);
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_halt(f);
    /*  Answered heartbeats: no reconnect, no re-send. */
    assert_true(f->heartbeats >= 2);
    assert_int_equal(f->resends, 0);
    assert_int_equal(f->submit_bodies, 1);
    s_fake_stop(&f);
}

static void test_disconnect_resends(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_DISCONNECT);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_call(c, "echo", "d", 1, NULL, &r), 0);
    assert_int_equal(r->status, YARD_OK);
    assert_true(r->latency_us < 2000 * 1000); /*  not the silence path */
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_halt(f);
    assert_int_equal(f->resends, 1);
    assert_false(f->identity_changed);
    s_fake_stop(&f);
}

static void test_local_giveup(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_SILENT);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    yard_submit_opts_t opts = {.timeout_ms = 200};
    char id[YARD_CLIENT_ID_MAX];
    int64_t start = yard_clock_us();
    assert_int_equal(
        yard_client_submit(c, "echo", "void", 4, &opts, id, sizeof(id)), 0);
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_wait(c, 0, &r), YARD_E_TIMEOUT);
    assert_int_equal(yard_client_wait(c, WAIT_MS, &r), 0);
    int64_t took = s_ms_since(start);
    assert_string_equal(r->id, id);
    assert_int_equal(r->status, YARD_TIMEOUT);
    assert_true(r->local);
    assert_string_equal(r->error, "no reply from broker");
    assert_false(yard_client_broker_seen(c));
    /*  timeout 200 + YARD_CLIENT_GIVEUP_MS. */
    assert_true(took >= 2150 && took < 3000);
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_halt(f);
    assert_true(f->heartbeats >= 1);
    s_fake_stop(&f);
}

static void test_error_with_id(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_ERROR);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_call(c, "echo", "e", 1, NULL, &r), 0);
    assert_int_equal(r->status, YARD_INVALID);
    assert_false(r->local);
    assert_non_null(r->error);
    assert_non_null(strstr(r->error, "payload not allowed"));
    assert_non_null(strstr(r->error, YARD_ERRCODE_BAD_FIELD));
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_stop(&f);
}

static void test_stats_json(void **state)
{
    (void)state;
    fake_t *f = s_fake_start(FAKE_ECHO);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    char *json = NULL;
    assert_int_equal(yard_client_stats_json(c, WAIT_MS, &json), 0);
    assert_string_equal(json, FAKE_STATS_JSON);
    free(json);
    assert_int_equal(yard_client_stats_json(c, 0, &json), YARD_E_ARG);
    yard_client_destroy(&c);
    s_fake_stop(&f);

    /*  Nobody there: a bounded wait, then YARD_E_TIMEOUT. */
    f = s_fake_start(FAKE_SILENT);
    s_fake_go(f);
    c = yard_client_new(f->endpoint);
    int64_t start = yard_clock_us();
    assert_int_equal(yard_client_stats_json(c, 300, &json), YARD_E_TIMEOUT);
    assert_true(s_ms_since(start) < 1500);
    assert_null(json);
    assert_int_equal(yard_client_outstanding(c), 0);
    yard_client_destroy(&c);
    s_fake_stop(&f);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null(yard_client_new(NULL));
    assert_null(yard_client_new(""));
    assert_null(yard_client_new("bogus://nowhere"));

    fake_t *f = s_fake_start(FAKE_SILENT);
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    yard_reply_t *r = NULL;
    char id[YARD_CLIENT_ID_MAX];
    assert_int_equal(yard_client_wait(c, 0, &r), YARD_E_NOTFOUND);
    assert_int_equal(yard_client_wait(c, 0, NULL), YARD_E_ARG);
    assert_int_equal(yard_client_wait(NULL, 0, &r), YARD_E_ARG);
    assert_int_equal(yard_client_wait_id(c, "none", 0, &r), YARD_E_NOTFOUND);
    assert_int_equal(yard_client_submit(c, NULL, "x", 1, NULL, id, 64),
                     YARD_E_ARG);
    assert_int_equal(yard_client_submit(c, "echo", NULL, 1, NULL, id, 64),
                     YARD_E_ARG);
    /*  A service name the protocol refuses, a priority out of range. */
    assert_true(yard_client_submit(c, "bad service!", "x", 1, NULL, id, 64) <
                0);
    yard_submit_opts_t prio = {.priority = 10};
    assert_true(yard_client_submit(c, "echo", "x", 1, &prio, id, 64) < 0);
    static uint8_t big[YARD_MAX_PAYLOAD + 1];
    assert_int_equal(
        yard_client_submit(c, "echo", big, sizeof(big), NULL, id, 64),
        YARD_E_TOO_LARGE);
    char long_id[YARD_MAX_ID + 2];
    memset(long_id, 'i', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    yard_submit_opts_t too_long = {.id = long_id};
    assert_int_equal(yard_client_submit(c, "echo", "x", 1, &too_long, NULL, 0),
                     YARD_E_ARG);
    const char *odd[] = {"key-without-value", NULL};
    yard_submit_opts_t bad_headers = {.headers = odd};
    assert_int_equal(
        yard_client_submit(c, "echo", "x", 1, &bad_headers, NULL, 0),
        YARD_E_ARG);
    /*  Cache policies the broker would refuse are refused here. */
    const char *one[] = {"a", NULL}, *empty[] = {"", NULL};
    const char *many[YARD_CACHE_MAX_TAGS + 2];
    for (size_t i = 0; i <= YARD_CACHE_MAX_TAGS; i++)
        many[i] = "t";
    many[YARD_CACHE_MAX_TAGS + 1] = NULL;
    const yard_cache_opts_t bad_policies[] = {
        {.key = one, .exclude = one},
        {.tags = empty},
        {.tags = many},
        {.ttl_ms = YARD_MAX_TIMEOUT_MS + 1},
    };
    for (size_t i = 0; i < sizeof(bad_policies) / sizeof(bad_policies[0]);
         i++) {
        yard_submit_opts_t o = {.cache = &bad_policies[i]};
        assert_int_equal(yard_client_submit(c, "echo", "x", 1, &o, NULL, 0),
                         YARD_E_ARG);
    }
    /*  id_out too small: refused before anything is sent. */
    assert_int_equal(yard_client_submit(c, "echo", "x", 1, NULL, id, 2),
                     YARD_E_ARG);
    assert_int_equal(yard_client_outstanding(c), 0);

    /*  The same id twice while the first is in flight. */
    yard_submit_opts_t dup = {.id = "dup"};
    assert_int_equal(yard_client_submit(c, "echo", "x", 1, &dup, NULL, 0), 0);
    assert_int_equal(yard_client_submit(c, "echo", "x", 1, &dup, NULL, 0),
                     YARD_E_ARG);
    assert_int_equal(yard_client_wait(c, 0, &r), YARD_E_TIMEOUT);
    assert_int_equal(yard_client_wait_id(c, "dup", 50, &r), YARD_E_TIMEOUT);

    /*  submit_batch: all or nothing. */
    yard_frame_t frames[3] = {{"a", 1}, {big, sizeof(big)}, {"c", 1}};
    char *ids[3] = {NULL, NULL, NULL};
    assert_int_equal(yard_client_submit_batch(c, "echo", frames, 3, NULL, ids),
                     YARD_E_TOO_LARGE);
    assert_null(ids[0]);
    assert_int_equal(yard_client_outstanding(c), 1);
    assert_int_equal(yard_client_submit_batch(c, "echo", frames, 1, &dup, NULL),
                     YARD_E_ARG);
    assert_int_equal(yard_client_cancel(c, NULL), YARD_E_ARG);
    yard_client_destroy(&c); /*  with a task still in flight: no leak */
    s_fake_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_wait),
        cmocka_unit_test(test_options_on_the_wire),
        cmocka_unit_test(test_batched_replies),
        cmocka_unit_test(test_batch_split_and_wait_all),
        cmocka_unit_test(test_wait_id_keeps_others),
        cmocka_unit_test(test_map_window),
        cmocka_unit_test(test_map_stop_and_invalid),
        cmocka_unit_test(test_map_callback_reentry),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_error_with_id),
        cmocka_unit_test(test_stats_json),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_disconnect_resends),
        cmocka_unit_test(test_resend_after_broker_restart),
        cmocka_unit_test(test_resend_after_silence),
        cmocka_unit_test(test_heartbeat_keeps_long_task),
        cmocka_unit_test(test_local_giveup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
