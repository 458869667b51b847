/*  test_sub.c — the event bus in the C client library: publishing through
    yard_client_t (fire-and-forget, confirmed, sync) and the subscriber of
    yard_sub.h, each against a fake broker: a ROUTER on tcp://127.0.0.1:*
    run by a thread of this test with the real codec, scripted per test.
    The fake records what it saw; assertions run on the main thread, on
    atomics while it runs or on anything after it stopped. Every wait is
    bounded. */
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
#include <time.h>

#include "yard_client.h"
#include "yard_clock.h"
#include "yard_proto.h"
#include "yard_sub.h"

/* ---- The fake broker --------------------------------------------------- */

typedef enum {
    ACK_OK,          /*  PUBLISH_ACK ok for every event asking for one   */
    ACK_INVALID,     /*  PUBLISH_ACK invalid, error `invalid_text`       */
    ACK_STALE_FIRST, /*  an ack for another seq (ok), then ACK_INVALID   */
    ACK_NONE,        /*  never acknowledge                               */
} ack_mode_t;

typedef enum {
    SUB_ACK,    /*  answer SUBSCRIBE with HEARTBEAT (after ack_delay_ms) */
    SUB_LIMIT,  /*  answer SUBSCRIBE with ERROR "limit"                  */
    SUB_SILENT, /*  answer nothing                                       */
} sub_mode_t;

/*  An event the fake sends to its subscriber. */
typedef struct {
    const char *type;
    const char *source;
    const char *payload; /*  sent as a msgpack str; NULL: no payload     */
    uint64_t sn;
} fev_t;

#define FAKE_MAX_EV 16
#define FAKE_MAX_SUBS 8

typedef struct {
    fev_t ev[FAKE_MAX_EV];
    int n;
} fbatch_t;

typedef struct {
    void *ctx, *router;
    char endpoint[128];
    pthread_t thread;
    atomic_bool stop;
    bool joined;
    /*  Script, fixed before s_fake_go. */
    ack_mode_t ack_mode;
    const char *invalid_text;
    sub_mode_t sub_mode;
    int limit_from;      /*  refuse the k-th SUBSCRIBE on (1-based) with
                             ERROR "limit"; 0: never                   */
    int ack_delay_ms;    /*  SUB_ACK: wait this long before acking     */
    bool answer_hb;      /*  answer HEARTBEAT with HEARTBEAT           */
    bool hold_tasks;     /*  keep SUBMITs; answer them before the next
                             PUBLISH_ACK (RESULT ok, payload echoed)   */
    fbatch_t batches[4]; /*  events to send                  */
    int batch_after_sub[FAKE_MAX_SUBS]; /* k-th SUBSCRIBE: batch + 1  */
    /*  Commands from the main thread: n > 0 sends batches[n - 1], -1
        sends DISCONNECT; the fake sets it back to 0. */
    atomic_int trigger;
    /*  Live counters (main thread may poll them). */
    atomic_int publishes, subscribes, heartbeats_in, disconnects_in;
    /*  Observations, read after s_fake_halt. */
    char pub_type[YARD_MAX_SERVICE + 1], pub_source[YARD_MAX_ID + 1],
        pub_trace[YARD_MAX_ID + 1];
    uint8_t pub_payload[64];
    size_t pub_payload_len;
    int pub_meta; /*  meta entries of the last event                     */
    char pub_meta_kv[64];
    uint64_t pub_seq, pub_ts;
    bool pub_ack;
    int sub_ntypes[FAKE_MAX_SUBS];
    char sub_types[FAKE_MAX_SUBS][4][YARD_MAX_SERVICE + 1];
    int64_t sub_at_us[FAKE_MAX_SUBS];
    uint8_t sub_id[FAKE_MAX_SUBS][255];
    size_t sub_id_len[FAKE_MAX_SUBS];
    char held[16][YARD_CLIENT_ID_MAX];
    int nheld;
    /*  Plumbing. */
    uint8_t peer[255]; /*  last sender's routing id                     */
    size_t peer_len;
    int64_t ack_due_us; /*  a delayed SUBSCRIBE ack, 0 if none          */
    int ack_due_k;
    int errors; /*  failures inside the fake thread                    */
    yard_decoder_t *decoder;
    yard_wire_msg_t msg;
    msgpack_sbuffer buf;
} fake_t;

static void s_send(fake_t *f, yard_cmd_t cmd, const yard_frame_t *bodies,
                   size_t n)
{
    if (yard_wire_send(f->router, f->peer, f->peer_len, YARD_ROLE_BROKER, cmd,
                       bodies, n, 0) != 0)
        f->errors++;
}

static void s_send_body(fake_t *f, yard_cmd_t cmd)
{
    yard_frame_t frame = {f->buf.data, f->buf.size};
    s_send(f, cmd, &frame, 1);
}

static void s_send_batch(fake_t *f, int index)
{
    const fbatch_t *b = &f->batches[index];
    msgpack_sbuffer_clear(&f->buf);
    size_t ends[FAKE_MAX_EV];
    uint8_t payload[64];
    for (int i = 0; i < b->n; i++) {
        const fev_t *e = &b->ev[i];
        yard_event_t ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = yard_bytes_str(e->type);
        ev.source = yard_bytes_str(e->source);
        ev.trace_id = yard_bytes_str("trace-1");
        ev.ts_us = 1000 + e->sn;
        ev.sn = e->sn;
        if (e->payload) {
            ev.payload.ptr = payload;
            ev.payload.len = (uint32_t)yard_msgpack_str(
                payload, sizeof(payload), e->payload, strlen(e->payload));
        }
        /*  meta {"k": "v"} */
        static const uint8_t meta[] = {0x81, 0xa1, 'k', 0xa1, 'v'};
        ev.meta.ptr = meta;
        ev.meta.len = sizeof(meta);
        if (yard_encode_event(&f->buf, YARD_ROLE_BROKER, &ev) != 0)
            f->errors++;
        ends[i] = f->buf.size;
    }
    yard_frame_t frames[FAKE_MAX_EV];
    for (int i = 0; i < b->n; i++) {
        size_t start = i ? ends[i - 1] : 0;
        frames[i].data = f->buf.data + start;
        frames[i].len = ends[i] - start;
    }
    s_send(f, YARD_CMD_PUBLISH, frames, (size_t)b->n);
}

static void s_ack(fake_t *f, uint64_t seq, yard_status_t status,
                  const char *error)
{
    yard_publish_ack_t ack = {seq, status, yard_bytes_str(error)};
    msgpack_sbuffer_clear(&f->buf);
    if (yard_encode_publish_ack(&f->buf, &ack) != 0)
        f->errors++;
    s_send_body(f, YARD_CMD_PUBLISH_ACK);
}

static void s_answer_held(fake_t *f)
{
    for (int i = 0; i < f->nheld; i++) {
        yard_result_t r;
        memset(&r, 0, sizeof(r));
        r.id = yard_bytes_str(f->held[i]);
        r.status = YARD_OK;
        r.payload = yard_bytes_str("done");
        msgpack_sbuffer_clear(&f->buf);
        if (yard_encode_result(&f->buf, YARD_ROLE_BROKER, &r) != 0)
            f->errors++;
        s_send_body(f, YARD_CMD_RESULT);
    }
    f->nheld = 0;
}

static int s_count_meta(const char *k, size_t kl, const char *v, size_t vl,
                        void *arg)
{
    fake_t *f = arg;
    f->pub_meta++;
    snprintf(f->pub_meta_kv + strlen(f->pub_meta_kv),
             sizeof(f->pub_meta_kv) - strlen(f->pub_meta_kv), "%.*s=%.*s;",
             (int)kl, k, (int)vl, v);
    return 0;
}

static void s_on_publish(fake_t *f, yard_wire_msg_t *m)
{
    for (size_t i = 0; i < m->nbodies; i++) {
        yard_event_t ev;
        if (yard_decode_event(f->decoder, zmq_msg_data(&m->bodies[i]),
                              zmq_msg_size(&m->bodies[i]), &ev) != 0) {
            f->errors++;
            continue;
        }
        snprintf(f->pub_type, sizeof(f->pub_type), "%.*s", (int)ev.type.len,
                 (const char *)ev.type.ptr);
        snprintf(f->pub_source, sizeof(f->pub_source), "%.*s",
                 (int)ev.source.len, (const char *)ev.source.ptr);
        snprintf(f->pub_trace, sizeof(f->pub_trace), "%.*s",
                 (int)ev.trace_id.len, (const char *)ev.trace_id.ptr);
        f->pub_payload_len = ev.payload.len;
        if (ev.payload.len && ev.payload.len <= sizeof(f->pub_payload))
            memcpy(f->pub_payload, ev.payload.ptr, ev.payload.len);
        f->pub_meta = 0;
        f->pub_meta_kv[0] = '\0';
        yard_headers_each(&ev.meta, s_count_meta, f);
        f->pub_seq = ev.seq;
        f->pub_ack = ev.ack;
        f->pub_ts = ev.ts_us;
        atomic_fetch_add(&f->publishes, 1);
        if (!ev.ack)
            continue;
        if (f->hold_tasks)
            s_answer_held(f);
        switch (f->ack_mode) {
        case ACK_OK:
            s_ack(f, ev.seq, YARD_OK, NULL);
            break;
        case ACK_STALE_FIRST:
            s_ack(f, ev.seq + 100, YARD_OK, NULL);
            /* fall through */
        case ACK_INVALID:
            s_ack(f, ev.seq, YARD_INVALID, f->invalid_text);
            break;
        case ACK_NONE:
            break;
        }
    }
}

static int s_take_type(const char *s, size_t len, void *arg)
{
    fake_t *f = arg;
    int k = atomic_load(&f->subscribes);
    if (k < FAKE_MAX_SUBS && f->sub_ntypes[k] < 4)
        snprintf(f->sub_types[k][f->sub_ntypes[k]++], YARD_MAX_SERVICE + 1,
                 "%.*s", (int)len, s);
    return 0;
}

static void s_sub_ack(fake_t *f, int k)
{
    s_send(f, YARD_CMD_HEARTBEAT, NULL, 0);
    if (k < FAKE_MAX_SUBS && f->batch_after_sub[k])
        s_send_batch(f, f->batch_after_sub[k] - 1);
}

static void s_on_subscribe(fake_t *f, yard_wire_msg_t *m)
{
    int k = atomic_load(&f->subscribes);
    yard_subscribe_t sub;
    if (m->nbodies != 1 ||
        yard_decode_subscribe(f->decoder, zmq_msg_data(&m->bodies[0]),
                              zmq_msg_size(&m->bodies[0]), &sub) != 0) {
        f->errors++;
        return;
    }
    if (k < FAKE_MAX_SUBS) {
        f->sub_ntypes[k] = 0;
        yard_strlist_each(&sub.types, s_take_type, f);
        f->sub_at_us[k] = yard_clock_us();
        memcpy(f->sub_id[k], m->identity, m->identity_len);
        f->sub_id_len[k] = m->identity_len;
    }
    atomic_fetch_add(&f->subscribes, 1);
    sub_mode_t mode = f->sub_mode;
    if (f->limit_from && k + 1 >= f->limit_from)
        mode = SUB_LIMIT;
    switch (mode) {
    case SUB_ACK:
        if (f->ack_delay_ms) {
            f->ack_due_us = yard_clock_us() + f->ack_delay_ms * 1000;
            f->ack_due_k = k;
        } else
            s_sub_ack(f, k);
        break;
    case SUB_LIMIT: {
        yard_error_t e = {yard_bytes_str(YARD_ERRCODE_LIMIT),
                          yard_bytes_str("too many subscribers (max 0)"),
                          {NULL, 0}};
        msgpack_sbuffer_clear(&f->buf);
        if (yard_encode_error(&f->buf, &e) != 0)
            f->errors++;
        s_send_body(f, YARD_CMD_ERROR);
        break;
    }
    case SUB_SILENT:
        break;
    }
}

static void s_on_message(fake_t *f, yard_wire_msg_t *m)
{
    if (m->header_err || m->role != YARD_ROLE_CLIENT) {
        f->errors++;
        return;
    }
    memcpy(f->peer, m->identity, m->identity_len);
    f->peer_len = m->identity_len;
    switch (m->cmd) {
    case YARD_CMD_PUBLISH:
        s_on_publish(f, m);
        break;
    case YARD_CMD_SUBSCRIBE:
        s_on_subscribe(f, m);
        break;
    case YARD_CMD_SUBMIT:
        for (size_t i = 0; i < m->nbodies && f->nheld < 16; i++) {
            yard_submit_t s;
            if (yard_decode_submit(f->decoder, zmq_msg_data(&m->bodies[i]),
                                   zmq_msg_size(&m->bodies[i]), &s) != 0) {
                f->errors++;
                continue;
            }
            snprintf(f->held[f->nheld++], YARD_CLIENT_ID_MAX, "%.*s",
                     (int)s.id.len, (const char *)s.id.ptr);
        }
        if (!f->hold_tasks)
            s_answer_held(f);
        break;
    case YARD_CMD_HEARTBEAT:
        atomic_fetch_add(&f->heartbeats_in, 1);
        if (f->answer_hb)
            s_send(f, YARD_CMD_HEARTBEAT, NULL, 0);
        break;
    case YARD_CMD_DISCONNECT:
        atomic_fetch_add(&f->disconnects_in, 1);
        break;
    default:
        f->errors++;
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
            s_on_message(f, &f->msg);
        if (f->ack_due_us && yard_clock_us() >= f->ack_due_us) {
            f->ack_due_us = 0;
            s_sub_ack(f, f->ack_due_k);
        }
        int t = atomic_exchange(&f->trigger, 0);
        if (t > 0)
            s_send_batch(f, t - 1);
        else if (t < 0)
            s_send(f, YARD_CMD_DISCONNECT, NULL, 0);
    }
    return NULL;
}

static fake_t *s_fake_new(void)
{
    fake_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->decoder = yard_decoder_new();
    assert_non_null(f->decoder);
    yard_wire_msg_init(&f->msg);
    msgpack_sbuffer_init(&f->buf);
    f->invalid_text = "bad_field: PUBLISH body 0: nope";
    size_t len = sizeof(f->endpoint);
    f->ctx = zmq_ctx_new();
    f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
    assert_non_null(f->router);
    assert_int_equal(yard_wire_setup(f->router), 0);
    assert_int_equal(zmq_bind(f->router, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(
        zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->endpoint, &len), 0);
    return f;
}

static void s_fake_go(fake_t *f)
{
    assert_int_equal(pthread_create(&f->thread, NULL, s_fake_run, f), 0);
}

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
    yard_wire_msg_close(&f->msg);
    yard_decoder_destroy(&f->decoder);
    msgpack_sbuffer_destroy(&f->buf);
    zmq_close(f->router);
    zmq_ctx_term(f->ctx);
    free(f);
    *f_p = NULL;
}

/*  Sends batch index (0-based) from the fake and waits until it has. */
static void s_trigger(fake_t *f, int value)
{
    atomic_store(&f->trigger, value);
    int64_t until = yard_clock_us() + 2000000;
    while (atomic_load(&f->trigger) != 0 && yard_clock_us() < until) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&f->trigger), 0);
}

/*  Waits until *counter reaches want (bounded). */
static void s_await(atomic_int *counter, int want)
{
    int64_t until = yard_clock_us() + 5000000;
    while (atomic_load(counter) < want && yard_clock_us() < until) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(counter), want);
}

#define WAIT_MS 5000

static int64_t s_ms_since(int64_t start_us)
{
    return (yard_clock_us() - start_us) / 1000;
}

/* ---- Publishing -------------------------------------------------------- */

static void test_msgpack_str(void **state)
{
    (void)state;
    uint8_t buf[300];
    assert_int_equal(yard_msgpack_str(buf, sizeof(buf), "hi", 2), 3);
    assert_memory_equal(buf, "\xa2hi", 3);
    assert_int_equal(yard_msgpack_str(buf, sizeof(buf), "", 0), 1);
    assert_int_equal(buf[0], 0xa0);
    char text[256];
    memset(text, 'x', sizeof(text));
    assert_int_equal(yard_msgpack_str(buf, sizeof(buf), text, 32), 34);
    assert_int_equal(buf[0], 0xd9);
    assert_int_equal(buf[1], 32);
    assert_int_equal(yard_msgpack_str(buf, sizeof(buf), text, 256), 259);
    assert_int_equal(buf[0], 0xda);
    assert_int_equal(buf[1], 1);
    assert_int_equal(buf[2], 0);
    assert_int_equal(yard_msgpack_check(buf, 259), 0);
    /*  Too small: the size, nothing written. */
    buf[0] = 0;
    assert_int_equal(yard_msgpack_str(buf, 2, "hi", 2), 3);
    assert_int_equal(buf[0], 0);
    assert_int_equal(yard_msgpack_str(NULL, 0, text, 70000), 70005);
}

static void test_publish_fire_and_forget(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->answer_hb = true;
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    assert_non_null(c);
    uint8_t payload[16];
    size_t n = yard_msgpack_str(payload, sizeof(payload), "hello", 5);
    const char *meta[] = {"k1", "v1", "k2", "", NULL};
    yard_publish_opts_t opts = {
        .source = "unit", .trace_id = "tr-9", .meta = meta, .ts_us = 123456};
    assert_int_equal(yard_client_publish(c, "demo.a", payload, n, &opts), 0);
    /*  The round trip proves the broker has it. */
    assert_int_equal(yard_client_sync(c, WAIT_MS), 0);
    assert_int_equal(atomic_load(&f->publishes), 1);
    /*  No payload at all, no options. */
    assert_int_equal(yard_client_publish(c, "demo.empty", NULL, 0, NULL), 0);
    assert_int_equal(yard_client_sync(c, WAIT_MS), 0);
    assert_int_equal(atomic_load(&f->publishes), 2);
    assert_int_equal(atomic_load(&f->heartbeats_in), 2);
    yard_client_destroy(&c);

    /*  Published, then destroyed at once: the linger lets it leave. */
    c = yard_client_new(f->endpoint);
    assert_int_equal(yard_client_publish(c, "demo.last", payload, n, NULL), 0);
    yard_client_destroy(&c);
    s_await(&f->publishes, 3);
    s_fake_halt(f);
    assert_string_equal(f->pub_type, "demo.last");
    assert_int_equal(f->pub_payload_len, n);
    assert_memory_equal(f->pub_payload, payload, n);
    assert_false(f->pub_ack);
    assert_int_equal(f->pub_seq, 0);
    s_fake_stop(&f);
}

static void test_publish_fields_on_the_wire(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->answer_hb = true;
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    const uint8_t payload[] = {0x92, 0x01, 0xa1, 'x'}; /* [1, "x"] */
    const char *meta[] = {"k1", "v1", "k2", "", NULL};
    yard_publish_opts_t opts = {
        .source = "unit", .trace_id = "tr-9", .meta = meta, .ts_us = 123456};
    assert_int_equal(
        yard_client_publish(c, "demo.a", payload, sizeof(payload), &opts), 0);
    assert_int_equal(yard_client_sync(c, WAIT_MS), 0);
    yard_client_destroy(&c);
    s_fake_halt(f);
    assert_string_equal(f->pub_type, "demo.a");
    assert_string_equal(f->pub_source, "unit");
    assert_string_equal(f->pub_trace, "tr-9");
    assert_int_equal(f->pub_ts, 123456);
    assert_int_equal(f->pub_meta, 2);
    assert_string_equal(f->pub_meta_kv, "k1=v1;k2=;");
    assert_int_equal(f->pub_payload_len, sizeof(payload));
    assert_memory_equal(f->pub_payload, payload, sizeof(payload));
    s_fake_stop(&f);
}

static void test_publish_refused_locally(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->answer_hb = true;
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    const uint8_t ok[] = {0xc0}; /*  nil */
    char long_text[YARD_MAX_SERVICE + 2];
    memset(long_text, 'a', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';

    assert_int_equal(yard_client_publish(NULL, "a", ok, 1, NULL), YARD_E_ARG);
    assert_int_equal(yard_client_publish(c, NULL, ok, 1, NULL), YARD_E_ARG);
    assert_int_equal(yard_client_publish(c, "", ok, 1, NULL), YARD_E_ARG);
    assert_int_equal(yard_client_publish(c, "bad type", ok, 1, NULL),
                     YARD_E_ARG);
    assert_int_equal(yard_client_publish(c, long_text, ok, 1, NULL),
                     YARD_E_ARG);
    assert_int_equal(yard_client_publish(c, "a", NULL, 1, NULL), YARD_E_ARG);
    /*  Not one msgpack value: 0xc1 is never valid; two values; cut. */
    assert_int_equal(yard_client_publish(c, "a", "\xc1", 1, NULL),
                     YARD_E_MALFORMED);
    assert_int_equal(yard_client_publish(c, "a", "\x01\x02", 2, NULL),
                     YARD_E_MALFORMED);
    assert_int_equal(yard_client_publish(c, "a", "\xa5hi", 3, NULL),
                     YARD_E_MALFORMED);
    static uint8_t big[YARD_MAX_EVENT_PAYLOAD + 8];
    static char text[YARD_MAX_EVENT_PAYLOAD];
    size_t n = yard_msgpack_str(big, sizeof(big), text, YARD_MAX_EVENT_PAYLOAD);
    assert_true(n > YARD_MAX_EVENT_PAYLOAD);
    assert_int_equal(yard_client_publish(c, "a", big, n, NULL),
                     YARD_E_TOO_LARGE);
    const char *odd[] = {"key-without-value", NULL};
    yard_publish_opts_t bad_meta = {.meta = odd};
    assert_int_equal(yard_client_publish(c, "a", ok, 1, &bad_meta), YARD_E_ARG);
    yard_publish_opts_t bad_source = {.source = long_text};
    assert_int_equal(yard_client_publish(c, "a", ok, 1, &bad_source),
                     YARD_E_ARG);
    assert_int_equal(
        yard_client_publish_confirmed(c, "bad type", ok, 1, NULL, WAIT_MS),
        YARD_E_ARG);
    assert_string_equal(yard_client_last_error(c), "");
    /*  Nothing of that reached the broker. */
    assert_int_equal(yard_client_sync(c, WAIT_MS), 0);
    assert_int_equal(atomic_load(&f->publishes), 0);
    yard_client_destroy(&c);
    s_fake_stop(&f);
}

static void test_publish_confirmed_ok(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->ack_mode = ACK_OK;
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    assert_int_equal(
        yard_client_publish_confirmed(c, "demo.ok", "\xa1x", 2, NULL, WAIT_MS),
        0);
    assert_string_equal(yard_client_last_error(c), "");
    assert_int_equal(atomic_load(&f->publishes), 1);
    assert_int_equal(
        yard_client_publish_confirmed(c, "demo.ok", NULL, 0, NULL, WAIT_MS), 0);
    yard_client_destroy(&c);
    s_fake_halt(f);
    assert_true(f->pub_ack);
    assert_int_equal(f->pub_seq, 2); /*  a fresh seq per event */
    s_fake_stop(&f);
}

static void test_publish_confirmed_invalid(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    /*  An ack for another seq comes first: it must not be taken. */
    f->ack_mode = ACK_STALE_FIRST;
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    assert_int_equal(
        yard_client_publish_confirmed(c, "demo.bad", "\xa1x", 2, NULL, WAIT_MS),
        YARD_E_RANGE);
    assert_string_equal(yard_client_last_error(c),
                        "bad_field: PUBLISH body 0: nope");
    yard_client_destroy(&c);
    s_fake_stop(&f);

    /*  Another code maps to its own error. */
    f = s_fake_new();
    f->ack_mode = ACK_INVALID;
    f->invalid_text = "too_large: PUBLISH body 0: payload";
    s_fake_go(f);
    c = yard_client_new(f->endpoint);
    assert_int_equal(
        yard_client_publish_confirmed(c, "demo.bad", NULL, 0, NULL, WAIT_MS),
        YARD_E_TOO_LARGE);
    assert_string_equal(yard_client_last_error(c),
                        "too_large: PUBLISH body 0: payload");
    yard_client_destroy(&c);
    s_fake_stop(&f);
}

static void test_publish_confirmed_timeout(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->ack_mode = ACK_NONE;
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    int64_t t0 = yard_clock_us();
    assert_int_equal(
        yard_client_publish_confirmed(c, "demo.slow", NULL, 0, NULL, 300),
        YARD_E_TIMEOUT);
    int64_t ms = s_ms_since(t0);
    assert_true(ms >= 300);
    assert_true(ms < 2000);
    assert_string_equal(yard_client_last_error(c), "");
    assert_int_equal(atomic_load(&f->publishes), 1);
    yard_client_destroy(&c);
    s_fake_stop(&f);
}

static void test_publish_confirmed_keeps_results(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->ack_mode = ACK_OK;
    f->hold_tasks = true; /*  RESULTs come during the ack wait */
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    char id[YARD_CLIENT_ID_MAX];
    assert_int_equal(
        yard_client_submit(c, "echo", "x", 1, NULL, id, sizeof(id)), 0);
    assert_int_equal(
        yard_client_publish_confirmed(c, "demo.ok", NULL, 0, NULL, WAIT_MS), 0);
    /*  The result that arrived while waiting for the ack was kept. */
    yard_reply_t *r = NULL;
    assert_int_equal(yard_client_wait(c, 0, &r), 0);
    assert_string_equal(r->id, id);
    assert_int_equal(r->status, YARD_OK);
    assert_string_equal((const char *)r->payload, "done");
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    s_fake_stop(&f);
}

static void test_sync_timeout(void **state)
{
    (void)state;
    fake_t *f = s_fake_new(); /*  answer_hb false: silent */
    s_fake_go(f);
    yard_client_t *c = yard_client_new(f->endpoint);
    int64_t t0 = yard_clock_us();
    assert_int_equal(yard_client_sync(c, 200), YARD_E_TIMEOUT);
    assert_true(s_ms_since(t0) >= 200);
    assert_int_equal(yard_client_sync(NULL, 200), YARD_E_ARG);
    yard_client_destroy(&c);
    s_await(&f->heartbeats_in, 1);
    s_fake_stop(&f);
}

/* ---- Subscribing ------------------------------------------------------- */

static void test_subscribe_types_and_ack(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->ack_delay_ms = 200;
    s_fake_go(f);
    const char *types[] = {"task.", "worker."};
    int err = -1;
    int64_t t0 = yard_clock_us();
    yard_subscriber_t *s =
        yard_subscriber_new(f->endpoint, types, 2, WAIT_MS, &err);
    assert_non_null(s);
    assert_int_equal(err, 0);
    /*  It returned only once the acknowledgement came. */
    assert_true(s_ms_since(t0) >= 200);
    assert_int_equal(atomic_load(&f->subscribes), 1);
    /*  No types: the empty array, everything. */
    yard_subscriber_t *all =
        yard_subscriber_new(f->endpoint, NULL, 0, WAIT_MS, NULL);
    assert_non_null(all);
    yard_sub_event_t *ev = NULL;
    assert_int_equal(yard_subscriber_next(s, 0, &ev), YARD_E_TIMEOUT);
    assert_null(ev);
    yard_subscriber_destroy(&s);
    assert_null(s);
    yard_subscriber_destroy(&s); /*  idempotent */
    yard_subscriber_destroy(&all);
    s_await(&f->disconnects_in, 2); /*  destroy says goodbye */
    s_fake_halt(f);
    assert_int_equal(f->sub_ntypes[0], 2);
    assert_string_equal(f->sub_types[0][0], "task.");
    assert_string_equal(f->sub_types[0][1], "worker.");
    assert_int_equal(f->sub_ntypes[1], 0);
    /*  Two subscribers, two routing ids. */
    assert_false(f->sub_id_len[0] == f->sub_id_len[1] &&
                 memcmp(f->sub_id[0], f->sub_id[1], f->sub_id_len[0]) == 0);
    s_fake_stop(&f);
}

static void test_subscribe_refused_or_silent(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->sub_mode = SUB_LIMIT;
    s_fake_go(f);
    int err = 0;
    int64_t t0 = yard_clock_us();
    assert_null(yard_subscriber_new(f->endpoint, NULL, 0, WAIT_MS, &err));
    assert_int_equal(err, YARD_E_LIMIT);
    assert_true(s_ms_since(t0) < 2000);
    s_fake_stop(&f);

    f = s_fake_new();
    f->sub_mode = SUB_SILENT;
    s_fake_go(f);
    t0 = yard_clock_us();
    assert_null(yard_subscriber_new(f->endpoint, NULL, 0, 300, &err));
    assert_int_equal(err, YARD_E_TIMEOUT);
    int64_t ms = s_ms_since(t0);
    assert_true(ms >= 300 && ms < 2000);
    assert_int_equal(atomic_load(&f->subscribes), 1);
    s_fake_stop(&f);

    /*  Bad arguments, refused before anything is sent. */
    const char *bad[] = {"has space"};
    assert_null(yard_subscriber_new(NULL, NULL, 0, 100, &err));
    assert_int_equal(err, YARD_E_ARG);
    assert_null(yard_subscriber_new("tcp://127.0.0.1:1", bad, 1, 100, &err));
    assert_int_equal(err, YARD_E_ARG);
    assert_null(yard_subscriber_new("tcp://127.0.0.1:1", NULL, 1, 100, &err));
    assert_int_equal(err, YARD_E_ARG);
    const char *many[YARD_MAX_TYPES + 1];
    for (size_t i = 0; i <= YARD_MAX_TYPES; i++)
        many[i] = "x.";
    assert_null(yard_subscriber_new("tcp://127.0.0.1:1", many,
                                    YARD_MAX_TYPES + 1, 100, &err));
    assert_int_equal(err, YARD_E_ARG);
    assert_null(yard_subscriber_new("nonsense://x", NULL, 0, 100, &err));
    assert_int_equal(err, YARD_E_IO);
}

static void test_next_batched(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->batches[0] = (fbatch_t){{{"task.submitted", "yard-broker", "p1", 1},
                                {"task.completed", "yard-broker", "p2", 2},
                                {"worker.joined", "w", NULL, 3},
                                {"task.failed", "yard-broker", "p4", 4},
                                {"task.timeout", "", "p5", 5}},
                               5};
    f->batch_after_sub[0] = 1;
    s_fake_go(f);
    yard_subscriber_t *s =
        yard_subscriber_new(f->endpoint, NULL, 0, WAIT_MS, NULL);
    assert_non_null(s);
    const fbatch_t *b = &f->batches[0];
    for (int i = 0; i < b->n; i++) {
        yard_sub_event_t *ev = NULL;
        assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
        assert_string_equal(ev->type, b->ev[i].type);
        assert_string_equal(ev->source, b->ev[i].source);
        assert_string_equal(ev->trace_id, "trace-1");
        assert_int_equal(ev->sn, b->ev[i].sn);
        assert_int_equal(ev->ts_us, 1000 + b->ev[i].sn);
        if (b->ev[i].payload) {
            uint8_t want[16];
            size_t n = yard_msgpack_str(want, sizeof(want), b->ev[i].payload,
                                        strlen(b->ev[i].payload));
            assert_int_equal(ev->payload_len, n);
            assert_memory_equal(ev->payload, want, n);
        } else {
            assert_null(ev->payload);
            assert_int_equal(ev->payload_len, 0);
        }
        assert_int_equal(ev->meta_len, 5);
        assert_memory_equal(ev->meta, "\x81\xa1k\xa1v", 5);
        yard_sub_event_destroy(&ev);
        assert_null(ev);
        yard_sub_event_destroy(&ev); /*  idempotent */
    }
    yard_sub_event_t *ev = NULL;
    assert_int_equal(yard_subscriber_next(s, 100, &ev), YARD_E_TIMEOUT);
    assert_null(ev);
    assert_int_equal(yard_subscriber_missed(s), 0);
    assert_int_equal(yard_subscriber_resubscribes(s), 0);
    assert_int_equal(yard_subscriber_next(s, 0, NULL), YARD_E_ARG);
    assert_int_equal(yard_subscriber_next(NULL, 0, &ev), YARD_E_ARG);
    yard_subscriber_destroy(&s);
    s_fake_stop(&f);
}

static bool s_source_keep(const yard_event_view_t *ev, void *arg)
{
    int *calls = arg;
    (*calls)++;
    return ev->source.len == 4 && memcmp(ev->source.ptr, "keep", 4) == 0;
}

static bool s_reject_all(const yard_event_view_t *ev, void *arg)
{
    (void)ev;
    (void)arg;
    return false;
}

static void test_filter(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->batches[0] = (fbatch_t){{{"a.1", "keep", "x", 1},
                                {"a.2", "drop", "x", 2},
                                {"a.3", "keep", "x", 3},
                                {"a.4", "dropped-too", NULL, 4}},
                               4};
    f->batches[1] =
        (fbatch_t){{{"b.1", "keep", NULL, 5}, {"b.2", "keep", NULL, 6}}, 2};
    s_fake_go(f);
    yard_subscriber_t *s =
        yard_subscriber_new(f->endpoint, NULL, 0, WAIT_MS, NULL);
    assert_non_null(s);
    int calls = 0;
    yard_subscriber_set_filter(s, s_source_keep, &calls);
    s_trigger(f, 1);
    yard_sub_event_t *ev = NULL;
    assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
    assert_string_equal(ev->type, "a.1");
    yard_sub_event_destroy(&ev);
    assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
    assert_string_equal(ev->type, "a.3");
    yard_sub_event_destroy(&ev);
    assert_int_equal(yard_subscriber_next(s, 100, &ev), YARD_E_TIMEOUT);
    assert_int_equal(calls, 4);
    /*  Skipped by the filter is not missed. */
    assert_int_equal(yard_subscriber_missed(s), 0);

    /*  A new filter applies to what is already buffered. */
    yard_subscriber_set_filter(s, NULL, NULL);
    s_trigger(f, 2);
    assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
    assert_string_equal(ev->type, "b.1"); /*  b.2 is buffered now */
    yard_sub_event_destroy(&ev);
    yard_subscriber_set_filter(s, s_reject_all, NULL);
    assert_int_equal(yard_subscriber_next(s, 100, &ev), YARD_E_TIMEOUT);
    yard_subscriber_destroy(&s);
    s_fake_stop(&f);
}

static void test_wait_by_type(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->batches[0] = (fbatch_t){{{"a.x", "s", NULL, 1},
                                {"b.y", "s", NULL, 2},
                                {"c.w", "s", NULL, 3},
                                {"a.z", "s", NULL, 4}},
                               4};
    f->batch_after_sub[0] = 1;
    s_fake_go(f);
    yard_subscriber_t *s =
        yard_subscriber_new(f->endpoint, NULL, 0, WAIT_MS, NULL);
    assert_non_null(s);
    const char *want[] = {"zz.", "c."};
    yard_sub_event_t *ev = NULL;
    assert_int_equal(yard_subscriber_wait(s, want, 2, WAIT_MS, &ev), 0);
    assert_string_equal(ev->type, "c.w");
    assert_int_equal(ev->sn, 3);
    yard_sub_event_destroy(&ev);
    /*  a.x and b.y were discarded; a.z, after it, is still there. */
    assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
    assert_string_equal(ev->type, "a.z");
    yard_sub_event_destroy(&ev);
    int64_t t0 = yard_clock_us();
    assert_int_equal(yard_subscriber_wait(s, want, 2, 200, &ev),
                     YARD_E_TIMEOUT);
    assert_null(ev);
    assert_true(s_ms_since(t0) >= 200);
    assert_int_equal(yard_subscriber_wait(s, NULL, 1, 0, &ev), YARD_E_ARG);
    yard_subscriber_destroy(&s);
    s_fake_stop(&f);
}

static void test_missed_from_gaps(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->batches[0] = (fbatch_t){{{"e.1", "s", NULL, 3},
                                {"e.2", "s", NULL, 4},
                                {"e.3", "s", NULL, 7},
                                {"e.4", "s", NULL, 8},
                                {"e.5", "s", NULL, 12}},
                               5};
    f->batch_after_sub[0] = 1;
    s_fake_go(f);
    yard_subscriber_t *s =
        yard_subscriber_new(f->endpoint, NULL, 0, WAIT_MS, NULL);
    assert_non_null(s);
    yard_sub_event_t *ev = NULL;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
        yard_sub_event_destroy(&ev);
    }
    /*  1, 2 before the first; 5, 6; 9, 10, 11. */
    assert_int_equal(yard_subscriber_missed(s), 7);
    yard_subscriber_destroy(&s);
    s_fake_stop(&f);
}

static void test_set_types(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->batches[0] = (fbatch_t){
        {{"a.1", "s", NULL, 1}, {"a.2", "s", NULL, 2}, {"b.1", "s", NULL, 3}},
        3};
    f->batch_after_sub[0] = 1;
    s_fake_go(f);
    const char *a[] = {"a."};
    yard_subscriber_t *s =
        yard_subscriber_new(f->endpoint, a, 1, WAIT_MS, NULL);
    assert_non_null(s);
    yard_sub_event_t *ev = NULL;
    assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
    assert_string_equal(ev->type, "a.1");
    yard_sub_event_destroy(&ev);
    /*  Bad prefixes: refused, nothing sent. */
    const char *bad[] = {"no way"};
    assert_int_equal(yard_subscriber_set_types(s, bad, 1, WAIT_MS), YARD_E_ARG);
    const char *bc[] = {"b.", "c."};
    assert_int_equal(yard_subscriber_set_types(s, bc, 2, WAIT_MS), 0);
    /*  a.2 was buffered but no longer matches. */
    assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
    assert_string_equal(ev->type, "b.1");
    yard_sub_event_destroy(&ev);
    assert_int_equal(yard_subscriber_next(s, 100, &ev), YARD_E_TIMEOUT);
    yard_subscriber_destroy(&s);
    s_fake_halt(f);
    assert_int_equal(atomic_load(&f->subscribes), 2);
    assert_int_equal(f->sub_ntypes[1], 2);
    assert_string_equal(f->sub_types[1][0], "b.");
    assert_string_equal(f->sub_types[1][1], "c.");
    s_fake_stop(&f);
}

static void test_resubscribe_after_silence(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->batches[0] = (fbatch_t){
        {{"e.1", "s", NULL, 1}, {"e.2", "s", NULL, 2}, {"e.3", "s", NULL, 3}},
        3};
    /*  After the second SUBSCRIBE: numbered anew, as a broker that
        restarted without a word would (its sn 1 was lost). */
    f->batches[1] = (fbatch_t){{{"e.4", "s", NULL, 2}}, 1};
    f->batch_after_sub[0] = 1;
    f->batch_after_sub[1] = 2;
    s_fake_go(f); /*  silent after that: no heartbeats, no answers */
    const char *types[] = {"e."};
    yard_subscriber_t *s =
        yard_subscriber_new(f->endpoint, types, 1, WAIT_MS, NULL);
    assert_non_null(s);
    yard_sub_event_t *ev = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
        yard_sub_event_destroy(&ev);
    }
    int64_t t0 = yard_clock_us();
    assert_int_equal(yard_subscriber_next(s, 6000, &ev), 0);
    int64_t ms = s_ms_since(t0);
    assert_string_equal(ev->type, "e.4");
    assert_int_equal(ev->sn, 2);
    yard_sub_event_destroy(&ev);
    /*  3 silent intervals, counted from the last message. */
    assert_true(ms >= 2500);
    assert_true(ms < 5000);
    assert_int_equal(yard_subscriber_resubscribes(s), 1);
    /*  sn 2 after sn 3: the numbering started over and its sn 1 is
        missing (not 0, and not a wrapped 3 - 2 - 1). */
    assert_int_equal(yard_subscriber_missed(s), 1);
    yard_subscriber_destroy(&s);
    s_fake_halt(f);
    assert_int_equal(atomic_load(&f->subscribes), 2);
    /*  It probed before giving up on the broker. */
    assert_true(atomic_load(&f->heartbeats_in) >= 1);
    assert_true(f->sub_at_us[1] - f->sub_at_us[0] >= 2900000);
    /*  Same routing id, same prefixes. */
    assert_int_equal(f->sub_id_len[0], f->sub_id_len[1]);
    assert_memory_equal(f->sub_id[0], f->sub_id[1], f->sub_id_len[0]);
    assert_int_equal(f->sub_ntypes[1], 1);
    assert_string_equal(f->sub_types[1][0], "e.");
    s_fake_stop(&f);
}

static void test_resubscribe_after_disconnect(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->batches[0] = (fbatch_t){
        {{"e.1", "s", NULL, 1}, {"e.2", "s", NULL, 2}, {"e.3", "s", NULL, 3}},
        3};
    /*  The restarted broker numbers from 1; its sn 1..4 were lost. */
    f->batches[1] =
        (fbatch_t){{{"e.5", "s", NULL, 5}, {"e.6", "s", NULL, 6}}, 2};
    f->batch_after_sub[0] = 1;
    f->batch_after_sub[1] = 2;
    s_fake_go(f);
    yard_subscriber_t *s =
        yard_subscriber_new(f->endpoint, NULL, 0, WAIT_MS, NULL);
    assert_non_null(s);
    yard_sub_event_t *ev = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
        yard_sub_event_destroy(&ev);
    }
    s_trigger(f, -1); /*  DISCONNECT: the broker forgot us */
    int64_t t0 = yard_clock_us();
    assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
    assert_string_equal(ev->type, "e.5");
    yard_sub_event_destroy(&ev);
    assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), 0);
    assert_string_equal(ev->type, "e.6");
    yard_sub_event_destroy(&ev);
    assert_true(s_ms_since(t0) < 1000); /*  at once, not after silence */
    assert_int_equal(yard_subscriber_resubscribes(s), 1);
    /*  Counted in the new numbering: 1..4 (not 1, after the old 3). */
    assert_int_equal(yard_subscriber_missed(s), 4);
    yard_subscriber_destroy(&s);
    s_fake_halt(f);
    assert_int_equal(atomic_load(&f->subscribes), 2);
    s_fake_stop(&f);
}

static void test_resubscribe_refused(void **state)
{
    (void)state;
    fake_t *f = s_fake_new();
    f->limit_from = 2; /*  the restarted broker is full */
    s_fake_go(f);
    yard_subscriber_t *s =
        yard_subscriber_new(f->endpoint, NULL, 0, WAIT_MS, NULL);
    assert_non_null(s);
    /*  After the DISCONNECT, next reports the refusal, once. */
    s_trigger(f, -1);
    yard_sub_event_t *ev = NULL;
    assert_int_equal(yard_subscriber_next(s, WAIT_MS, &ev), YARD_E_LIMIT);
    assert_null(ev);
    assert_int_equal(yard_subscriber_next(s, 100, &ev), YARD_E_TIMEOUT);
    yard_subscriber_destroy(&s);
    s_fake_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msgpack_str),
        cmocka_unit_test(test_publish_fire_and_forget),
        cmocka_unit_test(test_publish_fields_on_the_wire),
        cmocka_unit_test(test_publish_refused_locally),
        cmocka_unit_test(test_publish_confirmed_ok),
        cmocka_unit_test(test_publish_confirmed_invalid),
        cmocka_unit_test(test_publish_confirmed_timeout),
        cmocka_unit_test(test_publish_confirmed_keeps_results),
        cmocka_unit_test(test_sync_timeout),
        cmocka_unit_test(test_subscribe_types_and_ack),
        cmocka_unit_test(test_subscribe_refused_or_silent),
        cmocka_unit_test(test_next_batched),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_wait_by_type),
        cmocka_unit_test(test_missed_from_gaps),
        cmocka_unit_test(test_set_types),
        cmocka_unit_test(test_resubscribe_after_silence),
        cmocka_unit_test(test_resubscribe_after_disconnect),
        cmocka_unit_test(test_resubscribe_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
