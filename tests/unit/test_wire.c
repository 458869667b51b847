/*  test_wire.c — unit tests of the frame layer over real ZeroMQ sockets:
    socket options, batches both ways between ROUTER and DEALER, routing
    ids and REQ-style delimiters, bad headers, messages past
    YARD_MAX_BATCH bodies, oversized bodies and frames, send refusals. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "yard_proto.h"

/*  One connected pair per test: a broker-side ROUTER and a DEALER. */
typedef struct {
    void *ctx;
    void *router;
    void *dealer;
    yard_wire_msg_t *m; /*  heap: it is about 16 KiB */
} pair_t;

static int s_counter;

/*  Blocks at most this long in any receive, so a bug fails the test
    instead of hanging it. */
static const int s_timeout_ms = 5000;

static void s_timeouts(void *socket)
{
    zmq_setsockopt(socket, ZMQ_RCVTIMEO, &s_timeout_ms, sizeof s_timeout_ms);
    zmq_setsockopt(socket, ZMQ_SNDTIMEO, &s_timeout_ms, sizeof s_timeout_ms);
}

static int s_setup(void **state)
{
    pair_t *p = calloc(1, sizeof *p);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://wire-%d", s_counter++);
    p->ctx = zmq_ctx_new();
    p->router = zmq_socket(p->ctx, ZMQ_ROUTER);
    p->dealer = zmq_socket(p->ctx, ZMQ_DEALER);
    if (yard_wire_setup(p->router) || yard_wire_setup(p->dealer))
        return -1;
    s_timeouts(p->router);
    s_timeouts(p->dealer);
    zmq_setsockopt(p->dealer, ZMQ_ROUTING_ID, "client-1", 8);
    if (zmq_bind(p->router, ep) || zmq_connect(p->dealer, ep))
        return -1;
    p->m = malloc(sizeof *p->m);
    yard_wire_msg_init(p->m);
    *state = p;
    return 0;
}

static int s_teardown(void **state)
{
    pair_t *p = *state;
    yard_wire_msg_close(p->m);
    free(p->m);
    zmq_close(p->router);
    zmq_close(p->dealer);
    zmq_ctx_term(p->ctx);
    free(p);
    return 0;
}

/*  Sends raw frames (for shapes yard_wire_send will not produce). */
static void s_send_raw(void *socket, const char *const *frames,
                       const size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_true(zmq_send(socket, frames[i], lens[i],
                             i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
}

static void s_body_is(zmq_msg_t *frame, const char *text)
{
    assert_int_equal(zmq_msg_size(frame), strlen(text));
    assert_memory_equal(zmq_msg_data(frame), text, strlen(text));
}

static void test_setup_options(void **state)
{
    pair_t *p = *state;
    int64_t maxmsg = 0;
    int linger = -2, sndhwm = 0, rcvhwm = 0;
    size_t l64 = sizeof maxmsg, li = sizeof linger;
    assert_int_equal(zmq_getsockopt(p->router, ZMQ_MAXMSGSIZE, &maxmsg, &l64),
                     0);
    assert_int_equal(maxmsg, YARD_MAX_MSGSIZE);
    assert_int_equal(zmq_getsockopt(p->router, ZMQ_LINGER, &linger, &li), 0);
    assert_int_equal(linger, 0);
    li = sizeof sndhwm;
    assert_int_equal(zmq_getsockopt(p->dealer, ZMQ_SNDHWM, &sndhwm, &li), 0);
    li = sizeof rcvhwm;
    assert_int_equal(zmq_getsockopt(p->dealer, ZMQ_RCVHWM, &rcvhwm, &li), 0);
    assert_int_equal(sndhwm, 100000);
    assert_int_equal(rcvhwm, 100000);
    assert_int_equal(yard_wire_setup(NULL), YARD_E_IO);
}

static void test_batch_both_ways(void **state)
{
    pair_t *p = *state;
    yard_wire_msg_t *m = p->m;
    yard_frame_t bodies[3] = {{"one", 3}, {"", 0}, {"three", 5}};

    assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_SUBMIT, bodies, 3, 0),
                     0);
    assert_int_equal(yard_wire_recv(p->router, true, m, 0), 0);
    assert_int_equal(m->header_err, 0);
    assert_int_equal(m->role, YARD_ROLE_CLIENT);
    assert_int_equal(m->cmd, YARD_CMD_SUBMIT);
    assert_int_equal(m->identity_len, 8);
    assert_memory_equal(m->identity, "client-1", 8);
    assert_int_equal(m->nframes, 3);
    assert_int_equal(m->nbodies, 3);
    s_body_is(&m->bodies[0], "one");
    s_body_is(&m->bodies[1], "");
    s_body_is(&m->bodies[2], "three");

    /*  And back, to the routing id we got. */
    uint8_t id[255];
    size_t idlen = m->identity_len;
    memcpy(id, m->identity, idlen);
    yard_frame_t results[2] = {{"r1", 2}, {"r2", 2}};
    assert_int_equal(yard_wire_send(p->router, id, idlen, YARD_ROLE_BROKER,
                                    YARD_CMD_RESULT, results, 2, 0),
                     0);
    assert_int_equal(yard_wire_recv(p->dealer, false, m, 0), 0);
    assert_int_equal(m->header_err, 0);
    assert_int_equal(m->identity_len, 0);
    assert_int_equal(m->role, YARD_ROLE_BROKER);
    assert_int_equal(m->cmd, YARD_CMD_RESULT);
    assert_int_equal(m->nbodies, 2);
    s_body_is(&m->bodies[0], "r1");
    s_body_is(&m->bodies[1], "r2");

    /*  A body-less message, and the full batch of YARD_MAX_BATCH. */
    assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_HEARTBEAT, NULL, 0, 0),
                     0);
    assert_int_equal(yard_wire_recv(p->router, true, m, 0), 0);
    assert_int_equal(m->cmd, YARD_CMD_HEARTBEAT);
    assert_int_equal(m->nbodies, 0);
    assert_int_equal(m->nframes, 0);

    yard_frame_t many[YARD_MAX_BATCH];
    char text[YARD_MAX_BATCH][8];
    for (int i = 0; i < YARD_MAX_BATCH; i++) {
        snprintf(text[i], sizeof text[i], "b%d", i);
        many[i].data = text[i];
        many[i].len = strlen(text[i]);
    }
    assert_int_equal(yard_wire_send(p->router, id, idlen, YARD_ROLE_BROKER,
                                    YARD_CMD_TASK, many, YARD_MAX_BATCH, 0),
                     0);
    assert_int_equal(yard_wire_recv(p->dealer, false, m, 0), 0);
    assert_int_equal(m->nbodies, YARD_MAX_BATCH);
    assert_int_equal(m->nframes, YARD_MAX_BATCH);
    for (int i = 0; i < YARD_MAX_BATCH; i++)
        s_body_is(&m->bodies[i], text[i]);
    assert_int_equal(yard_cmd_check(m->role, m->cmd, m->nframes), 0);
}

static void test_delimiter_and_identity(void **state)
{
    pair_t *p = *state;
    yard_wire_msg_t *m = p->m;

    /*  REQ-style envelope: an empty frame before the header is skipped. */
    const char *f1[] = {"", "YW\x01\x04", "body"};
    size_t l1[] = {0, 4, 4};
    s_send_raw(p->dealer, f1, l1, 3);
    assert_int_equal(yard_wire_recv(p->router, true, m, 0), 0);
    assert_int_equal(m->header_err, 0);
    assert_int_equal(m->cmd, YARD_CMD_READY);
    assert_int_equal(m->role, YARD_ROLE_WORKER);
    assert_int_equal(m->nbodies, 1);
    s_body_is(&m->bodies[0], "body");

    /*  An empty frame that is the last one is the header: refused. */
    const char *f2[] = {""};
    size_t l2[] = {0};
    s_send_raw(p->dealer, f2, l2, 1);
    assert_int_equal(yard_wire_recv(p->router, true, m, 0), 0);
    assert_int_equal(m->header_err, YARD_E_HEADER);
    assert_int_equal(m->nbodies, 0);
    assert_int_equal(m->identity_len, 8);

    /*  No header frame at all: a one-frame message read as a router sees
        only the routing id. */
    const char *f3[] = {"YB\x01\x06"};
    size_t l3[] = {4};
    s_send_raw(p->router, (const char *[]){"client-1", f3[0]},
               (size_t[]){8, l3[0]}, 2);
    assert_int_equal(yard_wire_recv(p->dealer, true, m, 0), 0);
    assert_int_equal(m->header_err, YARD_E_HEADER);
    assert_int_equal(m->identity_len, 4);
    assert_int_equal(m->nbodies, 0);

    /*  The socket is still in step: the next message reads fine. */
    assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_HEARTBEAT, NULL, 0, 0),
                     0);
    assert_int_equal(yard_wire_recv(p->router, true, m, 0), 0);
    assert_int_equal(m->header_err, 0);
    assert_int_equal(m->cmd, YARD_CMD_HEARTBEAT);
}

static void test_bad_headers(void **state)
{
    pair_t *p = *state;
    yard_wire_msg_t *m = p->m;
    struct {
        const char *header;
        size_t len;
        int want;
    } cases[] = {
        {"YC\x01", 3, YARD_E_HEADER},      {"YC\x01\x01\x01", 5, YARD_E_HEADER},
        {"ZC\x01\x01", 4, YARD_E_HEADER},  {"YQ\x01\x01", 4, YARD_E_ROLE},
        {"YC\x02\x01", 4, YARD_E_VERSION}, {"YC\x01\x01", 4, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *f[] = {cases[i].header, "body1", "body2"};
        size_t l[] = {cases[i].len, 5, 5};
        s_send_raw(p->dealer, f, l, 3);
        assert_int_equal(yard_wire_recv(p->router, true, m, 0), 0);
        assert_int_equal(m->header_err, cases[i].want);
        /*  Bodies are still received, so the caller can name the task. */
        assert_int_equal(m->nbodies, 2);
        s_body_is(&m->bodies[1], "body2");
    }
}

static void test_too_many_bodies(void **state)
{
    pair_t *p = *state;
    yard_wire_msg_t *m = p->m;
    const int total = YARD_MAX_BATCH + 44;

    /*  yard_wire_send refuses to build such a message ... */
    yard_frame_t dummy[YARD_MAX_BATCH + 1];
    memset(dummy, 0, sizeof dummy);
    errno = 0;
    assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_SUBMIT, dummy, YARD_MAX_BATCH + 1,
                                    0),
                     YARD_E_IO);
    assert_int_equal(errno, EINVAL);

    /*  ... but a peer may send one: kept up to the limit, rest dropped. */
    assert_true(zmq_send(p->dealer, "YC\x01\x01", 4, ZMQ_SNDMORE) == 4);
    for (int i = 0; i < total; i++) {
        char b[8];
        int n = snprintf(b, sizeof b, "%d", i);
        assert_true(zmq_send(p->dealer, b, (size_t)n,
                             i + 1 < total ? ZMQ_SNDMORE : 0) == n);
    }
    assert_int_equal(yard_wire_recv(p->router, true, m, 0), 0);
    assert_int_equal(m->header_err, 0);
    assert_int_equal(m->nframes, total);
    assert_int_equal(m->nbodies, YARD_MAX_BATCH);
    s_body_is(&m->bodies[0], "0");
    s_body_is(&m->bodies[YARD_MAX_BATCH - 1], "255");
    assert_int_equal(yard_cmd_check(m->role, m->cmd, m->nframes),
                     YARD_E_FRAMES);

    /*  In step afterwards. */
    yard_frame_t one = {"next", 4};
    assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_CANCEL, &one, 1, 0),
                     0);
    assert_int_equal(yard_wire_recv(p->router, true, m, 0), 0);
    assert_int_equal(m->cmd, YARD_CMD_CANCEL);
    assert_int_equal(m->nframes, 1);
    s_body_is(&m->bodies[0], "next");
}

static void test_oversized_body(void **state)
{
    pair_t *p = *state;
    yard_wire_msg_t *m = p->m;
    /*  Over YARD_MAX_BODY but under ZMQ_MAXMSGSIZE: it arrives, and the
        codec refuses it, so the broker can answer "too_large". */
    size_t n = YARD_MAX_BODY + 1;
    char *big = calloc(1, n);
    assert_non_null(big);
    big[0] = (char)0x80;
    yard_frame_t body = {big, n};
    assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_SUBMIT, &body, 1, 0),
                     0);
    free(big);
    assert_int_equal(yard_wire_recv(p->router, true, m, 0), 0);
    assert_int_equal(m->nbodies, 1);
    assert_int_equal(zmq_msg_size(&m->bodies[0]), n);
    yard_decoder_t *dec = yard_decoder_new();
    yard_submit_t s;
    assert_int_equal(yard_decode_submit(dec, zmq_msg_data(&m->bodies[0]),
                                        zmq_msg_size(&m->bodies[0]), &s),
                     YARD_E_TOO_LARGE);
    yard_decoder_destroy(&dec);

    /*  A frame libzmq would refuse by dropping the connection is not
        even sent. */
    yard_frame_t huge = {"", (size_t)YARD_MAX_MSGSIZE + 1};
    errno = 0;
    assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_SUBMIT, &huge, 1, 0),
                     YARD_E_IO);
    assert_int_equal(errno, EMSGSIZE);
}

/*  Over TCP, a frame above ZMQ_MAXMSGSIZE makes libzmq drop the sender's
    connection; the message never reaches the application, and the peer's
    later messages (after it reconnects) do. inproc has no such limit. */
static void test_maxmsgsize_tcp(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(yard_wire_setup(router), 0);
    assert_int_equal(yard_wire_setup(dealer), 0);
    s_timeouts(dealer);
    assert_int_equal(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
    char ep[128];
    size_t eplen = sizeof ep;
    assert_int_equal(zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &eplen), 0);
    assert_int_equal(zmq_connect(dealer, ep), 0);

    size_t n = (size_t)YARD_MAX_MSGSIZE + 1;
    char *huge = calloc(1, n);
    assert_non_null(huge);
    assert_true(zmq_send(dealer, "YC\x01\x01", 4, ZMQ_SNDMORE) == 4);
    assert_true(zmq_send(dealer, huge, n, 0) == (int)n);
    free(huge);

    yard_wire_msg_t *m = malloc(sizeof *m);
    yard_wire_msg_init(m);
    int got = 0;
    for (int tries = 0; tries < 100 && !got; tries++) {
        yard_frame_t ping = {"ping", 4};
        assert_int_equal(yard_wire_send(dealer, NULL, 0, YARD_ROLE_CLIENT,
                                        YARD_CMD_SUBMIT, &ping, 1,
                                        ZMQ_DONTWAIT) == 0 ||
                             errno == EAGAIN,
                         1);
        zmq_pollitem_t item = {router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 100) > 0) {
            while (yard_wire_recv(router, true, m, ZMQ_DONTWAIT) == 0) {
                /*  Only the small messages ever arrive. */
                assert_int_equal(m->header_err, 0);
                assert_int_equal(m->nbodies, 1);
                s_body_is(&m->bodies[0], "ping");
                got++;
            }
            assert_int_equal(errno, EAGAIN);
        }
    }
    assert_true(got > 0);
    yard_wire_msg_close(m);
    free(m);
    zmq_close(router);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
}

static void test_send_refusals(void **state)
{
    pair_t *p = *state;
    yard_frame_t body = {"x", 1};
    yard_frame_t nulbody = {NULL, 3};
    errno = 0;
    assert_int_equal(yard_wire_send(p->router, "", 0, YARD_ROLE_BROKER,
                                    YARD_CMD_RESULT, &body, 1, 0),
                     YARD_E_IO);
    assert_int_equal(errno, EINVAL);
    char longid[256];
    memset(longid, 'i', sizeof longid);
    assert_int_equal(yard_wire_send(p->router, longid, 256, YARD_ROLE_BROKER,
                                    YARD_CMD_RESULT, &body, 1, 0),
                     YARD_E_IO);
    assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_SUBMIT, NULL, 1, 0),
                     YARD_E_IO);
    assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_SUBMIT, &nulbody, 1, 0),
                     YARD_E_IO);
    assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_SUBMIT, &body, 1, ZMQ_SNDMORE),
                     YARD_E_IO);
    assert_int_equal(errno, EINVAL);

    /*  An unroutable reply on a ROUTER is dropped, never blocks: 0. */
    assert_int_equal(yard_wire_send(p->router, "nobody", 6, YARD_ROLE_BROKER,
                                    YARD_CMD_RESULT, &body, 1, 0),
                     0);
    /*  Nothing was queued anywhere: the dealer has nothing to read. */
    assert_int_equal(yard_wire_recv(p->dealer, false, p->m, ZMQ_DONTWAIT),
                     YARD_E_IO);
    assert_int_equal(errno, EAGAIN);
}

static void test_dealer_dontwait(void **state)
{
    (void)state;
    /*  A DEALER with no peer cannot send: with ZMQ_DONTWAIT it says so. */
    void *ctx = zmq_ctx_new();
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(yard_wire_setup(dealer), 0);
    errno = 0;
    assert_int_equal(yard_wire_send(dealer, NULL, 0, YARD_ROLE_CLIENT,
                                    YARD_CMD_HEARTBEAT, NULL, 0, ZMQ_DONTWAIT),
                     YARD_E_IO);
    assert_int_equal(errno, EAGAIN);
    yard_wire_msg_t *m = malloc(sizeof *m);
    yard_wire_msg_init(m);
    assert_int_equal(yard_wire_recv(dealer, false, m, ZMQ_DONTWAIT), YARD_E_IO);
    assert_int_equal(errno, EAGAIN);
    yard_wire_msg_close(m);
    yard_wire_msg_close(m); /*  idempotent */
    free(m);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
}

/*  A reused message releases what it held: run many big messages through
    one yard_wire_msg_t (ASan / valgrind would see a leak otherwise). */
static void test_reuse(void **state)
{
    pair_t *p = *state;
    yard_wire_msg_t *m = p->m;
    char *blob = calloc(1, 65536);
    assert_non_null(blob);
    yard_frame_t bodies[4] = {
        {blob, 65536}, {blob, 1}, {blob, 65536}, {blob, 2}};
    for (int i = 0; i < 50; i++) {
        assert_int_equal(yard_wire_send(p->dealer, NULL, 0, YARD_ROLE_WORKER,
                                        YARD_CMD_RESULT, bodies, 4, 0),
                         0);
        assert_int_equal(yard_wire_recv(p->router, true, m, 0), 0);
        assert_int_equal(m->nbodies, 4);
        assert_int_equal(zmq_msg_size(&m->bodies[2]), 65536);
    }
    free(blob);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_setup_options),
        T(test_batch_both_ways),
        T(test_delimiter_and_identity),
        T(test_bad_headers),
        T(test_too_many_bodies),
        T(test_oversized_body),
        cmocka_unit_test(test_maxmsgsize_tcp),
        T(test_send_refusals),
        cmocka_unit_test(test_dealer_dontwait),
        T(test_reuse),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
