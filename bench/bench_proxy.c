/*  bench_proxy.c — the floor: the same load through a plain ZeroMQ
    ROUTER/DEALER proxy with no protocol, no queue and no bookkeeping.

        client threads: DEALER --> ROUTER [zmq_proxy] DEALER <-- REP workers

    This is what any broker built on ZeroMQ pays just for the extra hop
    (two more socket traversals, one more process), so Yard's figures are
    read as ratios against it. Everything mirrors the Yard side: one
    context and one socket per client thread (the Yard client owns its own
    context too), the same window, payload stamps and refill pattern; the
    proxy and its workers are separate processes like the broker and
    yard-worker.

    The proxy and workers are forked, not exec'd, so they must be forked
    before this process creates any ZeroMQ context: a child may not
    inherit a context's I/O threads. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "yard_clock.h"

/* ---- child processes ---------------------------------------------------- */

typedef struct {
    int report_fd;       /*  proxy: where to write its two endpoints      */
    int ready_fd;        /*  worker: where to write its index on 1st task */
    uint32_t index;      /*  worker number                                */
    const char *backend; /*  worker: the proxy's DEALER endpoint           */
} s_child_arg_t;

/*  The proxy process: bind both sides on free ports (the kernel picks,
    ZMQ_LAST_ENDPOINT tells), report them, then zmq_proxy until killed. */
static int s_proxy_main(void *arg)
{
    s_child_arg_t *a = arg;
    void *ctx = zmq_ctx_new();
    void *front = ctx ? zmq_socket(ctx, ZMQ_ROUTER) : NULL;
    void *back = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    if (!front || !back) {
        fprintf(stderr, "proxy: socket: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    if (zmq_bind(front, "tcp://127.0.0.1:*") != 0 ||
        zmq_bind(back, "tcp://127.0.0.1:*") != 0) {
        fprintf(stderr, "proxy: bind: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    char fe[64], be[64], line[160];
    size_t fl = sizeof(fe), bl = sizeof(be);
    if (zmq_getsockopt(front, ZMQ_LAST_ENDPOINT, fe, &fl) != 0 ||
        zmq_getsockopt(back, ZMQ_LAST_ENDPOINT, be, &bl) != 0)
        return 1;
    int len = snprintf(line, sizeof(line), "%s %s\n", fe, be);
    if (write(a->report_fd, line, (size_t)len) != len)
        return 1;
    close(a->report_fd);
    zmq_proxy(front, back, NULL); /*  returns only when the context ends */
    return 0;
}

/*  A REP echo worker: receive, send the same message back. */
static int s_worker_main(void *arg)
{
    s_child_arg_t *a = arg;
    void *ctx = zmq_ctx_new();
    void *rep = ctx ? zmq_socket(ctx, ZMQ_REP) : NULL;
    if (!rep || zmq_connect(rep, a->backend) != 0) {
        fprintf(stderr, "worker: connect %s: %s\n", a->backend,
                zmq_strerror(zmq_errno()));
        return 1;
    }
    bool told = false;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    for (;;) {
        if (zmq_msg_recv(&msg, rep, 0) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            break;
        }
        if (!told) {
            /*  The handshake: this worker got work through the proxy. */
            uint8_t b = (uint8_t)a->index;
            if (write(a->ready_fd, &b, 1) != 1)
                return 1;
            close(a->ready_fd);
            told = true;
        }
        if (zmq_msg_send(&msg, rep, 0) < 0 && zmq_errno() != EINTR)
            break;
    }
    zmq_msg_close(&msg);
    return 1;
}

int bench_read_line(int fd, char *buf, size_t cap, int ms)
{
    size_t used = 0;
    int64_t deadline = yard_clock_ms() + ms;
    while (used + 1 < cap) {
        int left = (int)(deadline - yard_clock_ms());
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t got = read(fd, buf + used, cap - 1 - used);
        if (got <= 0)
            return -1;
        used += (size_t)got;
        buf[used] = 0;
        if (memchr(buf, '\n', used))
            return 0;
    }
    return -1;
}

static int s_send_request(void *sock, uint8_t *payload, size_t len)
{
    if (zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0)
        return -1;
    return zmq_send(sock, payload, len, 0) < 0 ? -1 : 0;
}

/*  Receives one [empty][payload] reply without blocking: 1 when one was
    taken, 0 when none was there, -1 on a broken reply. */
static int s_recv_reply(void *sock, uint8_t *buf, size_t cap, size_t *len)
{
    int n = zmq_recv(sock, buf, cap, ZMQ_DONTWAIT);
    if (n < 0)
        return zmq_errno() == EAGAIN || zmq_errno() == EINTR ? 0 : -1;
    int more = 0;
    size_t ml = sizeof(more);
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
    if (n != 0 || !more)
        return -1;
    n = zmq_recv(sock, buf, cap, 0);
    if (n < 0)
        return -1;
    *len = (size_t)n;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
    return more ? -1 : 1;
}

int bench_proxy_start(bench_proxy_t *p, uint32_t n, int ready_ms)
{
    memset(p, 0, sizeof(*p));
    if (n > BENCH_MAX_WORKERS)
        return -1;
    int report[2], ready[2];
    if (pipe2(report, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(ready, O_CLOEXEC) != 0) {
        close(report[0]);
        close(report[1]);
        return -1;
    }
    int rc = -1;
    void *ctx = NULL, *sock = NULL;
    s_child_arg_t pa = {report[1], -1, 0, NULL};
    if (bench_proc_fork("zmq-proxy", s_proxy_main, &pa, &p->proxy) != 0)
        goto done;
    close(report[1]);
    report[1] = -1;
    char line[160];
    if (bench_read_line(report[0], line, sizeof(line), ready_ms) != 0 ||
        sscanf(line, "%63s %63s", p->frontend, p->backend) != 2) {
        fprintf(stderr,
                "yard-bench: zmq proxy did not report its "
                "endpoints (log: %s)\n",
                bench_proc_log(p->proxy));
        bench_proc_tail(p->proxy, 8);
        goto done;
    }
    for (uint32_t i = 0; i < n; i++) {
        s_child_arg_t wa = {-1, ready[1], i, p->backend};
        char name[32];
        snprintf(name, sizeof(name), "rep-worker-%u", i);
        if (bench_proc_fork(name, s_worker_main, &wa, &p->workers[i]) != 0)
            goto done;
        p->nworkers = i + 1;
    }
    close(ready[1]);
    ready[1] = -1;

    /*  Handshake: probe through the proxy, one request at a time, until
        every worker has said it served one. DEALER round-robins over the
        workers connected, so each new connection gets a probe soon. Only
        now does this process make a ZeroMQ context. */
    ctx = zmq_ctx_new();
    sock = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    int zero = 0;
    if (!sock || zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_connect(sock, p->frontend) != 0)
        goto done;
    bool seen[BENCH_MAX_WORKERS] = {false};
    uint32_t nseen = 0;
    int64_t deadline = yard_clock_ms() + ready_ms;
    uint8_t probe[BENCH_STAMP_SIZE] = {0}, buf[256];
    while (nseen < n && !bench_stopping()) {
        if (yard_clock_ms() >= deadline) {
            fprintf(stderr,
                    "yard-bench: only %u of %u REP workers answered "
                    "through the proxy in %d ms\n",
                    nseen, n, ready_ms);
            goto done;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (!bench_proc_alive(p->workers[i]) ||
                !bench_proc_alive(p->proxy)) {
                fprintf(stderr, "yard-bench: proxy side exited at start\n");
                goto done;
            }
        }
        if (s_send_request(sock, probe, sizeof(probe)) != 0)
            goto done;
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 200) > 0) {
            size_t len;
            while (s_recv_reply(sock, buf, sizeof(buf), &len) == 1)
                ;
        }
        uint8_t idx[BENCH_MAX_WORKERS];
        int fl = fcntl(ready[0], F_GETFL);
        fcntl(ready[0], F_SETFL, fl | O_NONBLOCK);
        ssize_t got = read(ready[0], idx, sizeof(idx));
        for (ssize_t i = 0; i < got; i++) {
            if (idx[i] < n && !seen[idx[i]]) {
                seen[idx[i]] = true;
                nseen++;
            }
        }
    }
    if (nseen == n) {
        bench_note("zmq proxy ready: %s -> %s, %u REP workers", p->frontend,
                   p->backend, n);
        rc = 0;
    }
done:
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    for (int i = 0; i < 2; i++) {
        if (report[i] >= 0)
            close(report[i]);
        if (ready[i] >= 0)
            close(ready[i]);
    }
    return rc;
}

void bench_proxy_stop(bench_proxy_t *p, int term_ms)
{
    /*  Default SIGTERM action ends them at once; nothing to flush. */
    bench_proc_stop_many(p->workers, (int)p->nworkers, term_ms, false);
    memset(p->workers, 0, sizeof(p->workers));
    p->nworkers = 0;
    if (p->proxy > 0)
        bench_proc_stop(p->proxy, term_ms, false);
    p->proxy = 0;
}

/* ---- the closed loop ---------------------------------------------------- */

typedef struct {
    const bench_proxy_t *p;
    const bench_load_t *load;
    bench_tally_t tally;
    uint64_t unanswered;
    char error[256];
} s_thread_t;

static void *s_thread_main(void *arg)
{
    s_thread_t *t = arg;
    pthread_setname_np(pthread_self(), "proxy-load"); /*  for perf and top */
    const bench_load_t *load = t->load;
    bench_tally_t *tl = &t->tally;
    size_t plen = load->payload;
    uint8_t *out = malloc(plen), *in = malloc(plen + 1);
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    int zero = 0;
    if (!out || !in || !sock ||
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_connect(sock, t->p->frontend) != 0) {
        snprintf(t->error, sizeof(t->error), "socket setup failed");
        goto out;
    }
    memset(out, 'y', plen);
    uint64_t seq = 0, in_flight = 0;
    int64_t drain_until = 0;
    bool stopping = false;
    uint32_t n = load->window;
    for (;;) {
        if (!stopping && n > 0) {
            int64_t now = yard_clock_us();
            for (uint32_t i = 0; i < n; i++) {
                bench_stamp(out, seq++, now);
                if (s_send_request(sock, out, plen) != 0) {
                    snprintf(t->error, sizeof(t->error), "send: %s",
                             zmq_strerror(zmq_errno()));
                    goto out;
                }
                in_flight++;
            }
        }
        int64_t now = yard_clock_us();
        if (!stopping && (now >= tl->measure_to_us || bench_stopping())) {
            stopping = true;
            drain_until = now + (int64_t)BENCH_DRAIN_MS * 1000;
        }
        if (in_flight == 0)
            break;
        if (stopping && now >= drain_until) {
            t->unanswered = in_flight;
            break;
        }
        n = 0;
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        size_t len = 0;
        int r;
        while (n < load->window &&
               (r = s_recv_reply(sock, in, plen + 1, &len)) != 0) {
            if (r < 0 || len != plen) {
                if (!t->error[0])
                    snprintf(t->error, sizeof(t->error),
                             "broken reply (%zu bytes)", len);
                tl->errors++;
                in_flight--;
                n++;
                continue;
            }
            uint64_t s;
            int64_t sent;
            bench_unstamp(in, &s, &sent);
            int64_t at = yard_clock_us();
            tl->total++;
            if (at >= tl->measure_from_us && at < tl->measure_to_us) {
                tl->completed++;
                yard_hist_record(&tl->hist, (uint64_t)(at - sent));
            }
            in_flight--;
            n++;
        }
    }
out:
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    free(out);
    free(in);
    return NULL;
}

int bench_proxy_load(const bench_proxy_t *p, const bench_load_t *load,
                     bench_result_t *out)
{
    uint32_t nc = load->clients;
    s_thread_t *ts = calloc(nc, sizeof(*ts));
    pthread_t *tids = calloc(nc, sizeof(*tids));
    yard_hist_t *hist = malloc(sizeof(*hist));
    int rc = -1;
    uint32_t started = 0;
    /*  Time-bound echo loads only: the proxy has no breaker to expect. */
    if (!ts || !tids || !hist || load->tasks || load->expect != YARD_OK)
        goto done;
    yard_hist_reset(hist);
    bench_cpu_t cpu0, cpu1;
    bench_cpu_sample(&cpu0, p->proxy, p->workers, p->nworkers);
    int64_t start = yard_clock_us();
    for (uint32_t i = 0; i < nc; i++) {
        ts[i].p = p;
        ts[i].load = load;
        yard_hist_reset(&ts[i].tally.hist);
        ts[i].tally.measure_from_us = start + load->warmup_us;
        ts[i].tally.measure_to_us =
            ts[i].tally.measure_from_us + load->duration_us;
    }
    for (; started < nc; started++)
        if (pthread_create(&tids[started], NULL, s_thread_main, &ts[started]) !=
            0)
            break;
    for (uint32_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    bench_cpu_sample(&cpu1, p->proxy, p->workers, p->nworkers);
    if (started < nc) {
        fprintf(stderr, "yard-bench: pthread_create failed\n");
        goto done;
    }
    uint64_t completed = 0, errors = 0, unanswered = 0, all = 0;
    for (uint32_t i = 0; i < nc; i++) {
        completed += ts[i].tally.completed;
        errors += ts[i].tally.errors;
        unanswered += ts[i].unanswered;
        all += ts[i].tally.total;
        yard_hist_merge(hist, &ts[i].tally.hist);
        if (ts[i].error[0]) {
            fprintf(stderr, "yard-bench: proxy client %u: %s\n", i,
                    ts[i].error);
            errors += ts[i].tally.errors ? 0 : 1;
        }
    }
    bench_result_add_cpu(out, &cpu0, &cpu1, all);
    bench_result_add(out, hist, completed, errors,
                     (double)load->duration_us / 1e6);
    if (errors || unanswered) {
        fprintf(stderr,
                "yard-bench: proxy load failed: %llu bad replies, %llu "
                "requests unanswered after %d ms\n",
                (unsigned long long)errors, (unsigned long long)unanswered,
                BENCH_DRAIN_MS);
        goto done;
    }
    rc = 0;
done:
    free(ts);
    free(tids);
    free(hist);
    return rc;
}
