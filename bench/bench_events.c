/*  bench_events.c — the event bus, next to its floor, in the same run:

        Yard:   publisher DEALER --PUBLISH, 256 events--> yard-broker
                --PUBLISH, up to 128 events each, with sn--> N subscriber
                DEALERs (events endpoint, SUBSCRIBE {types: ["bench."]})
        floor:  publisher PUB --[topic][payload] per event--> XSUB
                [zmq_proxy] XPUB --> N SUB sockets (subscribed "bench.")

    Publisher and subscribers are threads of the bench, each with its own
    ZeroMQ context and socket, the same on both sides. Every event carries
    a 64-byte payload (for Yard a msgpack bin of 64 bytes) whose first 16
    bytes are the bench's stamp: a sequence number and the send time, so
    latency is taken by the bench's own clock, from the moment the
    publisher stamps a batch to the moment a subscriber has the event
    decoded, on both sides alike.

    Load model: the publisher is an application with an unbounded backlog
    that publishes as fast as it may, under a flow-control window so that
    the comparison is lossless (the XPUB and the broker both drop for a
    slow subscriber rather than wait). Each subscriber publishes how many
    events it has taken in a counter of its own (an atomic, on its own
    cache line); the publisher may be at most `window` events ahead of
    the slowest one. When it is not at least one batch (256 events) below
    that, it sleeps on a condition variable that the slowest subscriber
    signals once it has caught up by a batch. So every send is a whole
    batch: for Yard one PUBLISH of 256 events (the protocol's maximum),
    for the proxy 256 zmq_send of [topic][payload] (ZeroMQ has no
    application-level batch; it batches on the wire by itself).

    Checks: every subscriber must take every event, in order (sequence
    numbers 0, 1, 2, ... without a hole), and for Yard the broker's sn
    must grow by one per event (a gap is events the broker dropped).
    Anything else (a broker ERROR, a missing event when the drain bound
    passes) fails the load.

    The XSUB/XPUB proxy is forked, so it must be forked before this
    process creates any ZeroMQ context. Its sockets, and the bench's PUB
    and SUBs, get 100000-message high-water marks, as yard_wire_setup
    gives every Yard peer; the broker's own events ROUTER keeps its
    setting (BROKER_EVENTS_HWM messages per subscriber): the bench does
    not tune the broker. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "yard_clock.h"
#include "yard_rand.h"

#define S_TYPE "bench.event" /*  event type (Yard) and topic (proxy)     */
#define S_PREFIX "bench."    /*  what subscribers ask for                 */
#define S_HWM 100000         /*  the proxy side's high-water marks        */
#define S_PROBE UINT64_MAX   /*  sequence of the proxy's probe messages   */
#define S_PROBE_MS 5         /*  between probes while subscribers join    */
#define S_READY_MS 10000     /*  bound on every handshake                 */
#define S_WAIT_MS 5          /*  bound of one wait for room (stop checks) */
#define S_BIN_HEAD 2         /*  msgpack bin 8 header: 0xc4, length       */

/* ---- the XSUB/XPUB proxy process ---------------------------------------- */

static int s_set_hwm(void *sock)
{
    int hwm = S_HWM, zero = 0;
    return zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm)) ||
                   zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm)) ||
                   zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero))
               ? -1
               : 0;
}

static int s_xproxy_main(void *arg)
{
    int fd = *(const int *)arg;
    void *ctx = zmq_ctx_new();
    void *front = ctx ? zmq_socket(ctx, ZMQ_XSUB) : NULL;
    void *back = ctx ? zmq_socket(ctx, ZMQ_XPUB) : NULL;
    if (!front || !back || s_set_hwm(front) || s_set_hwm(back)) {
        fprintf(stderr, "xproxy: socket: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    if (zmq_bind(front, "tcp://127.0.0.1:*") != 0 ||
        zmq_bind(back, "tcp://127.0.0.1:*") != 0) {
        fprintf(stderr, "xproxy: bind: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    char fe[64], be[64], line[160];
    size_t fl = sizeof(fe), bl = sizeof(be);
    if (zmq_getsockopt(front, ZMQ_LAST_ENDPOINT, fe, &fl) != 0 ||
        zmq_getsockopt(back, ZMQ_LAST_ENDPOINT, be, &bl) != 0)
        return 1;
    int len = snprintf(line, sizeof(line), "%s %s\n", fe, be);
    if (write(fd, line, (size_t)len) != len)
        return 1;
    close(fd);
    zmq_proxy(front, back, NULL); /*  returns only when the context ends */
    return 0;
}

int bench_xproxy_start(bench_xproxy_t *p, int ready_ms)
{
    memset(p, 0, sizeof(*p));
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0)
        return -1;
    int rc = -1;
    if (bench_proc_fork("zmq-xproxy", s_xproxy_main, &report[1], &p->proxy) !=
        0)
        goto done;
    close(report[1]);
    report[1] = -1;
    char line[160];
    if (bench_read_line(report[0], line, sizeof(line), ready_ms) != 0 ||
        sscanf(line, "%63s %63s", p->frontend, p->backend) != 2) {
        fprintf(stderr,
                "yard-bench: XSUB/XPUB proxy did not report its endpoints "
                "(log: %s)\n",
                bench_proc_log(p->proxy));
        bench_proc_tail(p->proxy, 8);
        goto done;
    }
    bench_note("zmq XSUB/XPUB proxy: %s -> %s", p->frontend, p->backend);
    rc = 0;
done:
    for (int i = 0; i < 2; i++)
        if (report[i] >= 0)
            close(report[i]);
    return rc;
}

void bench_xproxy_stop(bench_xproxy_t *p, int term_ms)
{
    if (p->proxy > 0)
        bench_proc_stop(p->proxy, term_ms, false);
    p->proxy = 0;
}

/* ---- shared state of one load ------------------------------------------- */

/*  A subscriber's progress, alone on its cache line: written by its
    thread, read by the publisher. */
typedef struct {
    alignas(64) _Atomic uint64_t taken; /*  events taken, in order        */
} s_progress_t;

typedef struct s_run s_run_t;

typedef struct {
    s_run_t *run;
    uint32_t index;
    bool probed;        /*  proxy: a probe got through               */
    uint64_t next;      /*  sequence number due next                 */
    uint64_t sn;        /*  Yard: last delivery number               */
    uint64_t in_window; /*  events taken in the measured window      */
    yard_hist_t hist;   /*  their latency                            */
    char error[256];
} s_sub_t;

struct s_run {
    bool yard;
    const char *pub_ep, *sub_ep;
    uint32_t nsubs;
    uint64_t window;
    uint32_t batch;
    int64_t warmup_us, duration_us;
    s_progress_t *progress;
    s_sub_t *subs;
    _Atomic uint32_t ready;         /*  subscribers that may get events     */
    _Atomic bool failed;            /*  someone failed: everyone stops      */
    _Atomic int64_t from_us, to_us; /*  measured window                   */
    _Atomic bool done;              /*  the publisher sent its last event   */
    _Atomic uint64_t total;         /*  events sent, once done              */
    _Atomic int64_t done_us;
    pthread_mutex_t mu; /*  the publisher waiting for room          */
    pthread_cond_t cv;
    _Atomic int waiting_on;    /*  subscriber that wakes it, or -1     */
    _Atomic uint64_t wake_at;  /*  once it has taken this many         */
    uint64_t published;        /*  events sent in the measured window  */
    uint64_t publish_messages; /*  zmq messages the publisher sent     */
    char error[256];           /*  the publisher's                     */
};

/*  Records the first failure of a thread and stops the load. */
static void s_fail(s_run_t *run, char *error, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void s_fail(s_run_t *run, char *error, size_t cap, const char *fmt, ...)
{
    if (!error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(error, cap, fmt, ap);
        va_end(ap);
    }
    atomic_store(&run->failed, true);
}

#define S_SUB_FAIL(s, ...)                                                     \
    s_fail((s)->run, (s)->error, sizeof((s)->error), __VA_ARGS__)
#define S_PUB_FAIL(run, ...)                                                   \
    s_fail((run), (run)->error, sizeof((run)->error), __VA_ARGS__)

/*  A random 16-byte routing id (first byte non-zero), as clients use. */
static int s_routing_id(void *sock)
{
    yard_rand_t rnd;
    yard_rand_seed_os(&rnd);
    uint8_t id[16];
    yard_rand_bytes(&rnd, id, sizeof(id));
    id[0] |= 0x80;
    return zmq_setsockopt(sock, ZMQ_ROUTING_ID, id, sizeof(id));
}

/* ---- subscribers -------------------------------------------------------- */

/*  Publishes the subscriber's progress; wakes the publisher if it waits
    for exactly this. */
static void s_progress(s_sub_t *s)
{
    s_run_t *run = s->run;
    atomic_store(&run->progress[s->index].taken, s->next);
    int me = (int)s->index;
    if (atomic_load(&run->waiting_on) == me &&
        s->next >= atomic_load(&run->wake_at) &&
        atomic_compare_exchange_strong(&run->waiting_on, &me, -1)) {
        pthread_mutex_lock(&run->mu);
        pthread_cond_signal(&run->cv);
        pthread_mutex_unlock(&run->mu);
    }
}

/*  One event's payload (64 bytes, the stamp first). 0, or -1 (failed). */
static int s_take(s_sub_t *s, const uint8_t *payload)
{
    s_run_t *run = s->run;
    uint64_t seq;
    int64_t sent;
    bench_unstamp(payload, &seq, &sent);
    if (seq == S_PROBE) {
        if (s->next > 0) {
            S_SUB_FAIL(s, "a probe came after event %llu",
                       (unsigned long long)s->next);
            return -1;
        }
        if (!s->probed) {
            s->probed = true;
            atomic_fetch_add(&run->ready, 1);
        }
        return 0;
    }
    if (seq != s->next) {
        S_SUB_FAIL(s,
                   "got event %llu where %llu was due (lost or out of order)",
                   (unsigned long long)seq, (unsigned long long)s->next);
        return -1;
    }
    int64_t now = yard_clock_us();
    s->next++;
    if (now >= atomic_load_explicit(&run->from_us, memory_order_relaxed) &&
        now < atomic_load_explicit(&run->to_us, memory_order_relaxed)) {
        s->in_window++;
        yard_hist_record(&s->hist, (uint64_t)(now - sent));
    }
    return 0;
}

/*  Takes one message from the broker if one is waiting: 1 taken, 0 none,
    -1 failed. */
static int s_yard_recv(s_sub_t *s, void *sock, yard_wire_msg_t *m,
                       yard_decoder_t *dec)
{
    if (yard_wire_recv(sock, false, m, ZMQ_DONTWAIT) != 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        S_SUB_FAIL(s, "recv: %s", zmq_strerror(errno));
        return -1;
    }
    if (m->header_err) {
        S_SUB_FAIL(s, "bad header from the broker: %s",
                   yard_strerror(m->header_err));
        return -1;
    }
    if (m->cmd == YARD_CMD_HEARTBEAT)
        return 1;
    if (m->cmd != YARD_CMD_PUBLISH || m->nframes != m->nbodies) {
        yard_error_t e;
        memset(&e, 0, sizeof(e));
        if (m->cmd == YARD_CMD_ERROR && m->nbodies == 1)
            yard_decode_error(dec, zmq_msg_data(&m->bodies[0]),
                              zmq_msg_size(&m->bodies[0]), &e);
        S_SUB_FAIL(s, "the broker sent %s %.*s", yard_cmd_name(m->cmd),
                   (int)e.message.len, (const char *)e.message.ptr);
        return -1;
    }
    for (size_t i = 0; i < m->nbodies; i++) {
        yard_event_t ev;
        int rc = yard_decode_event(dec, zmq_msg_data(&m->bodies[i]),
                                   zmq_msg_size(&m->bodies[i]), &ev);
        if (rc != 0) {
            S_SUB_FAIL(s, "undecodable event: %s", yard_strerror(rc));
            return -1;
        }
        if (ev.sn != s->sn + 1) {
            S_SUB_FAIL(s,
                       "sn %llu after %llu: the broker dropped %llu "
                       "event(s) for this subscriber (with %llu at most in "
                       "flight)",
                       (unsigned long long)ev.sn, (unsigned long long)s->sn,
                       (unsigned long long)(ev.sn - s->sn - 1),
                       (unsigned long long)s->run->window);
            return -1;
        }
        s->sn = ev.sn;
        if (ev.type.len != sizeof(S_TYPE) - 1 ||
            memcmp(ev.type.ptr, S_TYPE, ev.type.len) != 0 ||
            ev.payload.len != S_BIN_HEAD + BENCH_EVENT_PAYLOAD ||
            ev.payload.ptr[0] != 0xc4 ||
            ev.payload.ptr[1] != BENCH_EVENT_PAYLOAD) {
            S_SUB_FAIL(s, "event sn %llu: not a %s with a %d-byte bin",
                       (unsigned long long)ev.sn, S_TYPE, BENCH_EVENT_PAYLOAD);
            return -1;
        }
        if (s_take(s, ev.payload.ptr + S_BIN_HEAD) != 0)
            return -1;
    }
    s_progress(s);
    return 1;
}

/*  Takes one [topic][payload] message if one is waiting: 1, 0 or -1. */
static int s_proxy_recv(s_sub_t *s, void *sock, uint8_t *buf, size_t cap)
{
    int n = zmq_recv(sock, buf, cap, ZMQ_DONTWAIT);
    if (n < 0) {
        if (zmq_errno() == EAGAIN || zmq_errno() == EINTR)
            return 0;
        S_SUB_FAIL(s, "recv: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    int more = 0;
    size_t ml = sizeof(more);
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
    if (!more || n != (int)sizeof(S_TYPE) - 1 || memcmp(buf, S_TYPE, n) != 0) {
        S_SUB_FAIL(s, "bad topic frame (%d bytes)", n);
        return -1;
    }
    n = zmq_recv(sock, buf, cap, 0);
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
    if (n != BENCH_EVENT_PAYLOAD || more) {
        S_SUB_FAIL(s, "bad payload frame (%d bytes)", n);
        return -1;
    }
    if (s_take(s, buf) != 0)
        return -1;
    s_progress(s);
    return 1;
}

/*  Subscribes on the events endpoint and waits for the broker's
    acknowledgement (a HEARTBEAT): events published after it reach us.
    0 or -1. */
static int s_yard_subscribe(s_sub_t *s, void *sock, yard_wire_msg_t *m)
{
    const char *prefixes[] = {S_PREFIX};
    msgpack_sbuffer types, body;
    msgpack_sbuffer_init(&types);
    msgpack_sbuffer_init(&body);
    int rc = -1;
    yard_subscribe_t req;
    if (yard_encode_strlist(&types, prefixes, 1) != 0)
        goto done;
    req.types.ptr = (const uint8_t *)types.data;
    req.types.len = (uint32_t)types.size;
    if (yard_encode_subscribe(&body, &req) != 0)
        goto done;
    yard_frame_t f = {body.data, body.size};
    if (yard_wire_send(sock, NULL, 0, YARD_ROLE_CLIENT, YARD_CMD_SUBSCRIBE, &f,
                       1, 0) != 0)
        goto done;
    int64_t deadline = yard_clock_ms() + S_READY_MS;
    while (!atomic_load(&s->run->failed) && !bench_stopping()) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) > 0 &&
            yard_wire_recv(sock, false, m, ZMQ_DONTWAIT) == 0) {
            if (!m->header_err && m->cmd == YARD_CMD_HEARTBEAT) {
                rc = 0;
                break;
            }
            S_SUB_FAIL(s, "SUBSCRIBE answered with %s",
                       m->header_err ? "a bad header" : yard_cmd_name(m->cmd));
            break;
        }
        if (yard_clock_ms() >= deadline) {
            S_SUB_FAIL(s, "no answer to SUBSCRIBE in %d ms", S_READY_MS);
            break;
        }
    }
done:
    if (rc != 0 && !s->error[0] && !atomic_load(&s->run->failed))
        S_SUB_FAIL(s, "SUBSCRIBE could not be sent");
    msgpack_sbuffer_destroy(&types);
    msgpack_sbuffer_destroy(&body);
    return rc;
}

static void *s_sub_main(void *arg)
{
    s_sub_t *s = arg;
    s_run_t *run = s->run;
    pthread_setname_np(pthread_self(), run->yard ? "yard-sub" : "proxy-sub");
    void *ctx = zmq_ctx_new();
    void *sock = NULL;
    yard_wire_msg_t *m = NULL;
    yard_decoder_t *dec = NULL;
    uint8_t buf[BENCH_EVENT_PAYLOAD + 64];
    if (!ctx) {
        S_SUB_FAIL(s, "zmq_ctx_new failed");
        goto out;
    }
    if (run->yard) {
        sock = zmq_socket(ctx, ZMQ_DEALER);
        m = malloc(sizeof(*m));
        dec = yard_decoder_new();
        if (m)
            yard_wire_msg_init(m);
        if (!sock || !m || !dec || yard_wire_setup(sock) != 0 ||
            s_routing_id(sock) != 0 || zmq_connect(sock, run->sub_ep) != 0) {
            S_SUB_FAIL(s, "socket setup failed");
            goto out;
        }
        if (s_yard_subscribe(s, sock, m) != 0)
            goto out;
        atomic_fetch_add(&run->ready, 1);
    } else {
        /*  Ready once one of the publisher's probes got through. */
        sock = zmq_socket(ctx, ZMQ_SUB);
        if (!sock || s_set_hwm(sock) != 0 ||
            zmq_connect(sock, run->sub_ep) != 0 ||
            zmq_setsockopt(sock, ZMQ_SUBSCRIBE, S_PREFIX,
                           sizeof(S_PREFIX) - 1) != 0) {
            S_SUB_FAIL(s, "socket setup failed");
            goto out;
        }
    }
    for (;;) {
        if (atomic_load(&run->failed) || bench_stopping())
            break;
        int r = run->yard ? s_yard_recv(s, sock, m, dec)
                          : s_proxy_recv(s, sock, buf, sizeof(buf));
        if (r < 0)
            break;
        if (r > 0)
            continue;
        if (atomic_load(&run->done)) {
            uint64_t total = atomic_load(&run->total);
            if (s->next >= total)
                break; /*  every event, in order                        */
            if (yard_clock_us() >=
                atomic_load(&run->done_us) + (int64_t)BENCH_DRAIN_MS * 1000) {
                S_SUB_FAIL(s,
                           "only %llu of %llu events arrived within %d ms "
                           "of the last send",
                           (unsigned long long)s->next,
                           (unsigned long long)total, BENCH_DRAIN_MS);
                break;
            }
        }
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 10);
    }
out:
    if (sock && run->yard) {
        /*  Leaving: the broker forgets us at once (a bounded linger, so
            that the DISCONNECT does go out). */
        int linger = 200;
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
        yard_wire_send(sock, NULL, 0, YARD_ROLE_CLIENT, YARD_CMD_DISCONNECT,
                       NULL, 0, ZMQ_DONTWAIT);
    }
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    if (m) {
        yard_wire_msg_close(m);
        free(m);
    }
    yard_decoder_destroy(&dec);
    return NULL;
}

/* ---- the publisher ------------------------------------------------------ */

/*  Waits until the publisher, having sent `sent` events, is at least
    `need` events below the window ahead of the slowest subscriber, and
    returns how many it may send (>= need); 0 when until_us passed or the
    load failed first. Sleeps on the condition variable, which the
    slowest subscriber signals when it reaches the mark. */
static uint64_t s_room(s_run_t *run, uint64_t sent, uint64_t need,
                       int64_t until_us)
{
    for (;;) {
        uint32_t slow = 0;
        uint64_t min = UINT64_MAX;
        for (uint32_t i = 0; i < run->nsubs; i++) {
            uint64_t t = atomic_load(&run->progress[i].taken);
            if (t < min) {
                min = t;
                slow = i;
            }
        }
        uint64_t ahead = sent - min;
        if (ahead + need <= run->window)
            return run->window - ahead;
        int64_t now = yard_clock_us();
        if (now >= until_us || atomic_load(&run->failed) || bench_stopping())
            return 0;
        uint64_t want = sent + need - run->window;
        int64_t wait_us = until_us - now;
        if (wait_us > S_WAIT_MS * 1000)
            wait_us = S_WAIT_MS * 1000;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)(wait_us * 1000);
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&run->mu);
        atomic_store(&run->wake_at, want);
        atomic_store(&run->waiting_on, (int)slow);
        /*  Checked again after saying what we wait for: a subscriber that
            got there in between either is seen now or sees us waiting. */
        if (atomic_load(&run->progress[slow].taken) < want)
            pthread_cond_timedwait(&run->cv, &run->mu, &ts);
        atomic_store(&run->waiting_on, -1);
        pthread_mutex_unlock(&run->mu);
    }
}

/*  Yard: the publisher's handshake, a HEARTBEAT answered (HEARTBEAT, or
    DISCONNECT from a broker that has not seen us yet). 0 or -1. */
static int s_yard_hello(s_run_t *run, void *sock, yard_wire_msg_t *m)
{
    if (yard_wire_send(sock, NULL, 0, YARD_ROLE_CLIENT, YARD_CMD_HEARTBEAT,
                       NULL, 0, 0) != 0) {
        S_PUB_FAIL(run, "send: %s", zmq_strerror(errno));
        return -1;
    }
    int64_t deadline = yard_clock_ms() + S_READY_MS;
    while (!atomic_load(&run->failed) && !bench_stopping()) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) > 0 &&
            yard_wire_recv(sock, false, m, ZMQ_DONTWAIT) == 0) {
            if (!m->header_err &&
                (m->cmd == YARD_CMD_HEARTBEAT || m->cmd == YARD_CMD_DISCONNECT))
                return 0;
            S_PUB_FAIL(run, "HEARTBEAT answered with %s",
                       m->header_err ? "a bad header" : yard_cmd_name(m->cmd));
            return -1;
        }
        if (yard_clock_ms() >= deadline) {
            S_PUB_FAIL(run, "the broker did not answer in %d ms", S_READY_MS);
            return -1;
        }
    }
    return -1;
}

/*  Yard: anything the broker sent the publisher is a refusal (ERROR);
    HEARTBEATs aside. 0 or -1. */
static int s_yard_check(s_run_t *run, void *sock, yard_wire_msg_t *m,
                        yard_decoder_t *dec)
{
    while (yard_wire_recv(sock, false, m, ZMQ_DONTWAIT) == 0) {
        if (!m->header_err && m->cmd == YARD_CMD_HEARTBEAT)
            continue;
        yard_error_t e;
        memset(&e, 0, sizeof(e));
        if (!m->header_err && m->cmd == YARD_CMD_ERROR && m->nbodies == 1)
            yard_decode_error(dec, zmq_msg_data(&m->bodies[0]),
                              zmq_msg_size(&m->bodies[0]), &e);
        S_PUB_FAIL(run, "the broker answered PUBLISH with %s %.*s",
                   m->header_err ? "a bad header" : yard_cmd_name(m->cmd),
                   (int)e.message.len, (const char *)e.message.ptr);
        return -1;
    }
    return 0;
}

/*  The bodies the publisher sends, made once: `batch` copies of one event
    (Yard: an encoded PUBLISH body; proxy: the bare payload), and where
    in each the 64 payload bytes start. */
typedef struct {
    uint8_t *bodies;
    size_t len; /*  bytes of one body                            */
    size_t off; /*  offset of the payload in it                  */
    yard_frame_t frames[BENCH_EVENT_BATCH];
} s_template_t;

static int s_template(s_template_t *t, bool yard, uint32_t batch)
{
    uint8_t value[S_BIN_HEAD + BENCH_EVENT_PAYLOAD];
    value[0] = 0xc4;
    value[1] = BENCH_EVENT_PAYLOAD;
    memset(value + S_BIN_HEAD, 'e', BENCH_EVENT_PAYLOAD);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const uint8_t *one = value + S_BIN_HEAD;
    t->len = BENCH_EVENT_PAYLOAD;
    t->off = 0;
    if (yard) {
        yard_event_t ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = yard_bytes_str(S_TYPE);
        ev.payload.ptr = value;
        ev.payload.len = sizeof(value);
        const uint8_t *at = NULL;
        if (yard_encode_event(&sb, YARD_ROLE_CLIENT, &ev) == 0)
            at = memmem(sb.data, sb.size, value, sizeof(value));
        if (!at) {
            msgpack_sbuffer_destroy(&sb);
            return -1;
        }
        one = (const uint8_t *)sb.data;
        t->len = sb.size;
        t->off = (size_t)(at - one) + S_BIN_HEAD;
    }
    t->bodies = malloc(batch * t->len);
    for (uint32_t i = 0; t->bodies && i < batch; i++) {
        memcpy(t->bodies + i * t->len, one, t->len);
        t->frames[i].data = t->bodies + i * t->len;
        t->frames[i].len = t->len;
    }
    msgpack_sbuffer_destroy(&sb);
    return t->bodies ? 0 : -1;
}

/*  Waits until every subscriber is ready; the proxy publisher probes
    meanwhile (a PUB sends only to subscriptions it knows, so a probe
    arrives once the whole path is up). 0 or -1. */
static int s_wait_ready(s_run_t *run, void *sock)
{
    uint8_t probe[BENCH_EVENT_PAYLOAD];
    memset(probe, 'p', sizeof(probe));
    bench_stamp(probe, S_PROBE, 0);
    int64_t deadline = yard_clock_ms() + S_READY_MS;
    while (atomic_load(&run->ready) < run->nsubs) {
        if (atomic_load(&run->failed) || bench_stopping())
            return -1;
        if (yard_clock_ms() >= deadline) {
            S_PUB_FAIL(run, "only %u of %u subscribers ready in %d ms",
                       atomic_load(&run->ready), run->nsubs, S_READY_MS);
            return -1;
        }
        if (!run->yard &&
            (zmq_send(sock, S_TYPE, sizeof(S_TYPE) - 1, ZMQ_SNDMORE) < 0 ||
             zmq_send(sock, probe, sizeof(probe), 0) < 0)) {
            S_PUB_FAIL(run, "send: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        bench_pause_ms(run->yard ? 1 : S_PROBE_MS);
    }
    return 0;
}

static void *s_pub_main(void *arg)
{
    s_run_t *run = arg;
    pthread_setname_np(pthread_self(), run->yard ? "yard-pub" : "proxy-pub");
    void *ctx = zmq_ctx_new();
    void *sock = NULL;
    yard_wire_msg_t *m = NULL;
    yard_decoder_t *dec = NULL;
    s_template_t t;
    memset(&t, 0, sizeof(t));
    uint64_t seq = 0;
    if (!ctx) {
        S_PUB_FAIL(run, "zmq_ctx_new failed");
        goto out;
    }
    if (run->yard) {
        sock = zmq_socket(ctx, ZMQ_DEALER);
        m = malloc(sizeof(*m));
        dec = yard_decoder_new();
        if (m)
            yard_wire_msg_init(m);
        if (!sock || !m || !dec || yard_wire_setup(sock) != 0 ||
            s_routing_id(sock) != 0 || zmq_connect(sock, run->pub_ep) != 0) {
            S_PUB_FAIL(run, "socket setup failed");
            goto out;
        }
        if (s_yard_hello(run, sock, m) != 0)
            goto out;
    } else {
        sock = zmq_socket(ctx, ZMQ_PUB);
        if (!sock || s_set_hwm(sock) != 0 ||
            zmq_connect(sock, run->pub_ep) != 0) {
            S_PUB_FAIL(run, "socket setup failed");
            goto out;
        }
    }
    if (s_template(&t, run->yard, run->batch) != 0) {
        S_PUB_FAIL(run, "cannot build the event template");
        goto out;
    }
    if (s_wait_ready(run, sock) != 0)
        goto out;

    int64_t start = yard_clock_us();
    int64_t from = start + run->warmup_us, to = from + run->duration_us;
    atomic_store(&run->from_us, from);
    atomic_store(&run->to_us, to);
    for (;;) {
        uint64_t room = s_room(run, seq, run->batch, to);
        int64_t now = yard_clock_us();
        if (room == 0 || now >= to)
            break;
        uint32_t n = room < run->batch ? (uint32_t)room : run->batch;
        for (uint32_t i = 0; i < n; i++)
            bench_stamp(t.bodies + i * t.len + t.off, seq + i, now);
        if (run->yard) {
            if (yard_wire_send(sock, NULL, 0, YARD_ROLE_CLIENT,
                               YARD_CMD_PUBLISH, t.frames, n, 0) != 0) {
                S_PUB_FAIL(run, "send: %s", zmq_strerror(errno));
                break;
            }
            run->publish_messages++;
            if (s_yard_check(run, sock, m, dec) != 0)
                break;
        } else {
            for (uint32_t i = 0; i < n; i++) {
                if (zmq_send(sock, S_TYPE, sizeof(S_TYPE) - 1, ZMQ_SNDMORE) <
                        0 ||
                    zmq_send(sock, t.bodies + i * t.len, t.len, 0) < 0) {
                    S_PUB_FAIL(run, "send: %s", zmq_strerror(zmq_errno()));
                    break;
                }
            }
            run->publish_messages += n;
        }
        if (now >= from)
            run->published += n;
        seq += n;
    }
    atomic_store(&run->total, seq);
    atomic_store(&run->done_us, yard_clock_us());
    atomic_store(&run->done, true);
    /*  The socket stays until every subscriber has every event: closing
        it (linger 0) would throw away what is still queued. */
    int64_t bound = yard_clock_us() + (int64_t)BENCH_DRAIN_MS * 1000 + 1000000;
    while (!atomic_load(&run->failed) && !bench_stopping() &&
           yard_clock_us() < bound) {
        bool all = true;
        for (uint32_t i = 0; i < run->nsubs; i++)
            all = all && atomic_load(&run->progress[i].taken) >= seq;
        if (all)
            break;
        if (run->yard) {
            zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&it, 1, 2) > 0 && s_yard_check(run, sock, m, dec) != 0)
                break;
        } else {
            bench_pause_ms(2);
        }
    }
out:
    if (!atomic_load(&run->done)) {
        atomic_store(&run->total, seq);
        atomic_store(&run->done_us, yard_clock_us());
        atomic_store(&run->done, true);
    }
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    if (m) {
        yard_wire_msg_close(m);
        free(m);
    }
    yard_decoder_destroy(&dec);
    free(t.bodies);
    return NULL;
}

/* ---- one load ----------------------------------------------------------- */

void bench_events_result_init(bench_events_result_t *r)
{
    memset(r, 0, sizeof(*r));
    yard_hist_reset(&r->hist);
}

static int s_load(bool yard, const char *pub_ep, const char *sub_ep,
                  pid_t server, const bench_events_load_t *load,
                  bench_events_result_t *out)
{
    const char *side = yard ? "yard" : "proxy";
    uint32_t n = load->subscribers;
    if (n == 0 || n > BENCH_MAX_SUBSCRIBERS ||
        load->window < BENCH_EVENT_BATCH) {
        fprintf(stderr, "yard-bench: bad event load (%u subscribers, %u)\n", n,
                load->window);
        return -1;
    }
    if (!bench_proc_alive(server)) {
        fprintf(stderr, "yard-bench: %s events: the server exited (log: %s)\n",
                side, bench_proc_log(server));
        bench_proc_tail(server, 8);
        return -1;
    }
    s_run_t *run = calloc(1, sizeof(*run));
    s_sub_t *subs = calloc(n, sizeof(*subs));
    s_progress_t *progress =
        aligned_alloc(alignof(s_progress_t), n * sizeof(s_progress_t));
    pthread_t *tids = calloc(n + 1, sizeof(*tids));
    int rc = -1;
    uint32_t started = 0;
    bool pub_started = false, sync = false;
    if (!run || !subs || !progress || !tids)
        goto done;
    run->yard = yard;
    run->pub_ep = pub_ep;
    run->sub_ep = sub_ep;
    run->nsubs = n;
    run->window = load->window;
    run->batch = BENCH_EVENT_BATCH;
    run->warmup_us = load->warmup_us;
    run->duration_us = load->duration_us;
    run->progress = progress;
    run->subs = subs;
    atomic_init(&run->ready, 0);
    atomic_init(&run->failed, false);
    atomic_init(&run->from_us, INT64_MAX);
    atomic_init(&run->to_us, INT64_MAX);
    atomic_init(&run->done, false);
    atomic_init(&run->total, 0);
    atomic_init(&run->done_us, 0);
    atomic_init(&run->waiting_on, -1);
    atomic_init(&run->wake_at, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&run->mu, NULL) != 0 ||
        pthread_cond_init(&run->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        goto done;
    }
    pthread_condattr_destroy(&ca);
    sync = true;
    for (uint32_t i = 0; i < n; i++) {
        atomic_init(&progress[i].taken, 0);
        subs[i].run = run;
        subs[i].index = i;
        yard_hist_reset(&subs[i].hist);
    }
    bench_cpu_t cpu0, cpu1;
    bench_cpu_sample(&cpu0, server, NULL, 0);
    for (; started < n; started++)
        if (pthread_create(&tids[started], NULL, s_sub_main, &subs[started]) !=
            0)
            break;
    if (started == n && pthread_create(&tids[n], NULL, s_pub_main, run) == 0)
        pub_started = true;
    if (!pub_started) {
        fprintf(stderr, "yard-bench: pthread_create failed\n");
        atomic_store(&run->failed, true);
    }
    if (pub_started)
        pthread_join(tids[n], NULL);
    for (uint32_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    bench_cpu_sample(&cpu1, server, NULL, 0);
    if (!pub_started)
        goto done;

    uint64_t total = atomic_load(&run->total), events = UINT64_MAX,
             deliveries = 0;
    bool failed = run->error[0] != 0;
    if (failed)
        fprintf(stderr, "yard-bench: %s events, publisher: %s\n", side,
                run->error);
    for (uint32_t i = 0; i < n; i++) {
        s_sub_t *s = &subs[i];
        if (!s->error[0] && s->next != total && !run->error[0])
            snprintf(s->error, sizeof(s->error), "took %llu of %llu events",
                     (unsigned long long)s->next, (unsigned long long)total);
        if (s->error[0]) {
            fprintf(stderr, "yard-bench: %s events, subscriber %u: %s\n", side,
                    i, s->error);
            failed = true;
        }
        if (s->in_window < events)
            events = s->in_window;
        deliveries += s->in_window;
        yard_hist_merge(&out->hist, &s->hist);
    }
    out->events += events;
    out->deliveries += deliveries;
    out->published += run->published;
    out->seconds += (double)load->duration_us / 1e6;
    out->events_per_s = (double)out->events / out->seconds;
    out->deliveries_per_s = (double)out->deliveries / out->seconds;
    out->published_per_s = (double)out->published / out->seconds;
    out->p50_us = yard_hist_percentile(&out->hist, 50);
    out->p99_us = yard_hist_percentile(&out->hist, 99);
    out->max_us = out->hist.count ? out->hist.max : 0;
    out->cpu_clients_us += cpu1.clients_us - cpu0.clients_us;
    out->cpu_server_us += cpu1.server_us - cpu0.server_us;
    out->cpu_events += total;
    if (failed) {
        fprintf(stderr,
                "yard-bench: %s event load failed (every subscriber must "
                "take every event, in order)\n",
                side);
        goto done;
    }
    bench_note("  %s events, %u sub(s): %llu sent in %llu messages, %llu "
               "taken by each",
               side, n, (unsigned long long)total,
               (unsigned long long)run->publish_messages,
               (unsigned long long)total);
    rc = 0;
done:
    if (sync) {
        pthread_mutex_destroy(&run->mu);
        pthread_cond_destroy(&run->cv);
    }
    free(run);
    free(subs);
    free(progress);
    free(tids);
    return rc;
}

int bench_events_yard(const bench_yard_t *y, const bench_events_load_t *load,
                      bench_events_result_t *out)
{
    return s_load(true, y->endpoint, y->events, y->broker, load, out);
}

int bench_events_proxy(const bench_xproxy_t *p, const bench_events_load_t *load,
                       bench_events_result_t *out)
{
    return s_load(false, p->frontend, p->backend, p->proxy, load, out);
}
