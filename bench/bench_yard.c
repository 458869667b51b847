/*  bench_yard.c — the Yard side of the bench: start yard-broker and
    workers on free loopback ports, know they are ready by handshake only
    (a stats call answered; the stats listing the workers), open a
    service's circuit breaker on purpose, and drive a closed-loop load
    through the C client library.

    The load loop is the efficient way to use the library, the way a user
    who cares about throughput would: block for one reply, drain every
    reply already there with wait(..., 0), then resubmit that many tasks
    with ONE submit_batch (one SUBMIT message), so the per-message costs
    are shared by a batch exactly as they are on the broker side.

    A load expecting circuit_open gets replies without payload, so the
    stamp cannot come back: there submit_batch hands out the task ids,
    and each thread keeps its in-flight tasks' ids with their stamp time
    (at most `window`, found by a linear scan). The times are the same
    clock at the same points; the bookkeeping costs the clients a little
    more than the echo load's, which only lowers the rejection rate.
    A load of one fixed request (the cache phase's gets) goes by id the
    same way, and its check looks at every answer.

    An open-loop load (load->rate > 0, for yard-bench --load-only --rate)
    sends on a fixed schedule instead of on replies: each thread its share
    of the rate, task k due at t0 + k / share, in batches of whatever is
    due, at most `window` in flight. The stamp is the due time, so a task
    sent late counts from when it should have left (no coordinated
    omission). Between sends the thread takes replies without blocking and
    sleeps at most S_OPEN_NAP_US, which bounds how late a reply is seen;
    when the next send is further away it blocks in wait instead. */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "yard_client.h"
#include "yard_clock.h"

/*  How often readiness polls ask again; the condition is the handshake. */
#define S_POLL_MS 20
#define S_STARTS 3      /*  tries with fresh ports if a broker dies at start */
#define S_MAX_SPECS 8   /*  --breaker specs a broker start may pass          */
#define S_TRIP_MS 10000 /*  deadline of the task that trips a breaker */
/*  Open loop: longest nap between looks at the socket while a send is
    due soon (bounds how late a reply's arrival is noticed). */
#define S_OPEN_NAP_US 100

/*  The node at a dotted path of root, or NULL. */
static json_t *s_json_at(json_t *root, const char *path)
{
    json_t *node = root;
    char key[256];
    const char *p = path;
    while (node && *p) {
        size_t len = strcspn(p, ".");
        if (len >= sizeof(key)) {
            node = NULL;
            break;
        }
        memcpy(key, p, len);
        key[len] = 0;
        node = json_is_object(node) ? json_object_get(node, key) : NULL;
        p += len;
        if (*p == '.')
            p++;
    }
    return node;
}

int bench_json_int(const char *json, const char *path, int64_t *out)
{
    json_error_t err;
    json_t *root = json_loads(json, 0, &err);
    if (!root)
        return -1;
    json_t *node = s_json_at(root, path);
    int rc = -1;
    if (node && json_is_integer(node)) {
        *out = (int64_t)json_integer_value(node);
        rc = 0;
    }
    json_decref(root);
    return rc;
}

int bench_json_str(const char *json, const char *path, char *out, size_t cap)
{
    json_error_t err;
    json_t *root = json_loads(json, 0, &err);
    if (!root)
        return -1;
    json_t *node = s_json_at(root, path);
    int rc = -1;
    if (node && json_is_string(node) && cap > 0) {
        snprintf(out, cap, "%s", json_string_value(node));
        rc = 0;
    }
    json_decref(root);
    return rc;
}

int bench_yard_stats(const char *endpoint, int timeout_ms, char **json_out)
{
    yard_client_t *c = yard_client_new(endpoint);
    if (!c)
        return -1;
    int rc = yard_client_stats_json(c, timeout_ms, json_out);
    yard_client_destroy(&c);
    return rc == 0 ? 0 : -1;
}

static void s_broker_failed(pid_t pid, const char *why)
{
    fprintf(stderr, "yard-bench: yard-broker %s (log: %s)\n", why,
            bench_proc_log(pid));
    bench_proc_tail(pid, 8);
}

/*  Waits until the broker answers a stats call. Each call waits up to
    call_ms: a long wait per call keeps a slow (valgrind) broker from
    being sent a pile of abandoned requests it would then answer. */
static int s_wait_broker(pid_t pid, const char *endpoint, int ready_ms,
                         int call_ms, bool *died)
{
    *died = false;
    yard_client_t *c = yard_client_new(endpoint);
    if (!c) {
        fprintf(stderr, "yard-bench: cannot make a client for %s\n", endpoint);
        return -1;
    }
    int64_t deadline = yard_clock_ms() + ready_ms;
    int rc = -1;
    while (!bench_stopping()) {
        if (!bench_proc_alive(pid)) {
            *died = true;
            break;
        }
        char *json = NULL;
        if (yard_client_stats_json(c, call_ms, &json) == 0) {
            free(json);
            rc = 0;
            break;
        }
        if (yard_clock_ms() >= deadline) {
            s_broker_failed(pid, "did not answer stats in time");
            break;
        }
    }
    yard_client_destroy(&c);
    return rc;
}

int bench_yard_start_broker(bench_yard_t *y, const bench_broker_opts_t *o)
{
    char broker_path[PATH_MAX];
    if (!bench_bin_path("yard-broker", broker_path, sizeof(broker_path))) {
        fprintf(stderr, "yard-bench: %s is missing or not executable\n",
                broker_path);
        return -1;
    }
    for (int attempt = 1; attempt <= S_STARTS; attempt++) {
        int port = bench_free_port(), events = bench_free_port();
        if (port == 0 || events == 0 || port == events) {
            fprintf(stderr, "yard-bench: no free loopback port\n");
            return -1;
        }
        char ev[64], mq[32], grace[32], cgout[PATH_MAX + 32];
        snprintf(y->endpoint, sizeof(y->endpoint), "tcp://127.0.0.1:%d", port);
        snprintf(ev, sizeof(ev), "tcp://127.0.0.1:%d", events);
        snprintf(y->events, sizeof(y->events), "%s", ev);
        char *argv[24 + 2 * S_MAX_SPECS];
        int n = 0;
        if (o->callgrind) {
            snprintf(cgout, sizeof(cgout), "--callgrind-out-file=%s",
                     o->callgrind);
            argv[n++] = (char *)o->valgrind;
            argv[n++] = "--tool=callgrind";
            argv[n++] = cgout;
        }
        argv[n++] = broker_path;
        argv[n++] = "--broker";
        argv[n++] = y->endpoint;
        argv[n++] = "--events";
        argv[n++] = ev;
        if (o->max_queue) {
            snprintf(mq, sizeof(mq), "%u", o->max_queue);
            argv[n++] = "--max-queue";
            argv[n++] = mq;
        }
        if (o->grace_ms >= 0) {
            snprintf(grace, sizeof(grace), "%d", o->grace_ms);
            argv[n++] = "--grace";
            argv[n++] = grace;
        }
        for (int i = 0; o->breaker && o->breaker[i]; i++) {
            if (i == S_MAX_SPECS) {
                fprintf(stderr, "yard-bench: more than %d --breaker specs\n",
                        S_MAX_SPECS);
                return -1;
            }
            argv[n++] = "--breaker";
            argv[n++] = (char *)o->breaker[i];
        }
        argv[n] = NULL;
        char name[32];
        snprintf(name, sizeof(name), "broker-%d", port);
        if (bench_proc_spawn(name, argv, &y->broker) != 0)
            return -1;
        bool died;
        /*  Under valgrind a stats call can take a second on its own. */
        int call_ms = o->callgrind ? 1000 : 200;
        if (s_wait_broker(y->broker, y->endpoint, o->ready_ms, call_ms,
                          &died) == 0) {
            bench_note("broker ready on %s", y->endpoint);
            return 0;
        }
        if (!died || attempt == S_STARTS) {
            if (died)
                s_broker_failed(y->broker, "exited at start");
            bench_proc_stop(y->broker, 2000, false);
            y->broker = 0;
            return -1;
        }
        /*  Most likely someone took the port between our probe and its
            bind: try again with fresh ports. */
        bench_note("broker exited at start; retrying with new ports");
        bench_proc_stop(y->broker, 1000, false);
        y->broker = 0;
    }
    return -1;
}

int bench_yard_start_workers(bench_yard_t *y, const char *service,
                             const char *handler, uint32_t n, int ready_ms)
{
    char worker_path[PATH_MAX];
    if (!bench_bin_path("yard-worker", worker_path, sizeof(worker_path))) {
        fprintf(stderr, "yard-bench: %s is missing or not executable\n",
                worker_path);
        return -1;
    }
    uint32_t base = y->nworkers; /*  workers started before (yard-cache) */
    if (n > BENCH_MAX_WORKERS - base)
        return -1;
    snprintf(y->service, sizeof(y->service), "%s", service);
    for (uint32_t i = 0; i < n; i++) {
        char *argv[] = {worker_path, "--service",     y->service,
                        "--handler", (char *)handler, "--capacity",
                        "64",        "--threads",     "0",
                        "--broker",  y->endpoint,     NULL};
        char name[48];
        snprintf(name, sizeof(name), "worker-%s-%u", service, i);
        if (bench_proc_spawn(name, argv, &y->workers[base + i]) != 0)
            return -1;
        y->nworkers = base + i + 1;
    }
    /*  Ready when the broker itself lists them: the handshake the workers
        made with it, not a guess about time. */
    char path[128];
    snprintf(path, sizeof(path), "services.%s.workers", service);
    yard_client_t *c = yard_client_new(y->endpoint);
    if (!c)
        return -1;
    int64_t deadline = yard_clock_ms() + ready_ms;
    int rc = -1;
    int64_t seen = 0;
    while (!bench_stopping()) {
        for (uint32_t i = base; i < base + n; i++) {
            if (!bench_proc_alive(y->workers[i])) {
                fprintf(stderr,
                        "yard-bench: yard-worker exited at start "
                        "(log: %s)\n",
                        bench_proc_log(y->workers[i]));
                bench_proc_tail(y->workers[i], 8);
                goto done;
            }
        }
        if (!bench_proc_alive(y->broker)) {
            s_broker_failed(y->broker, "exited");
            goto done;
        }
        char *json = NULL;
        if (yard_client_stats_json(c, 1000, &json) == 0) {
            if (bench_json_int(json, path, &seen) != 0)
                seen = 0;
            free(json);
            if (seen >= (int64_t)n) {
                rc = 0;
                break;
            }
        }
        if (yard_clock_ms() >= deadline) {
            fprintf(stderr,
                    "yard-bench: only %lld of %u workers registered with "
                    "the broker in %d ms\n",
                    (long long)seen, n, ready_ms);
            break;
        }
        bench_pause_ms(S_POLL_MS);
    }
done:
    yard_client_destroy(&c);
    if (rc == 0)
        bench_note("%u workers of %s registered", n, service);
    return rc;
}

int bench_yard_stop(bench_yard_t *y, int term_ms)
{
    /*  Workers first, so the broker does not see them as lost. */
    bench_proc_stop_many(y->workers, (int)y->nworkers, term_ms, true);
    memset(y->workers, 0, sizeof(y->workers));
    y->nworkers = 0;
    int status = -1;
    if (y->broker > 0)
        status = bench_proc_stop(y->broker, term_ms, true);
    y->broker = 0;
    return status;
}

/*  Waits until the broker's stats say y's service has its breaker in
    state `want` ("open", ...). 0 or -1. */
static int s_wait_breaker(const bench_yard_t *y, const char *want, int ready_ms)
{
    char path[128], state[32] = "";
    snprintf(path, sizeof(path), "services.%s.breaker.state", y->service);
    int64_t deadline = yard_clock_ms() + ready_ms;
    while (!bench_stopping()) {
        char *json = NULL;
        if (bench_yard_stats(y->endpoint, 1000, &json) == 0) {
            int rc = bench_json_str(json, path, state, sizeof(state));
            free(json);
            if (rc == 0 && strcmp(state, want) == 0)
                return 0;
        }
        if (yard_clock_ms() >= deadline) {
            fprintf(stderr,
                    "yard-bench: the breaker of %s is '%s', not '%s', "
                    "after %d ms\n",
                    y->service, state, want, ready_ms);
            return -1;
        }
        bench_pause_ms(S_POLL_MS);
    }
    return -1;
}

int bench_yard_open_breaker(bench_yard_t *y, int ready_ms)
{
    yard_client_t *c = yard_client_new(y->endpoint);
    if (!c)
        return -1;
    yard_submit_opts_t opts = {.timeout_ms = S_TRIP_MS};
    yard_reply_t *r = NULL;
    int rc = yard_client_call(c, y->service, "trip", 4, &opts, &r);
    if (rc != 0 || r->status != YARD_ERROR) {
        fprintf(stderr,
                "yard-bench: the task meant to trip the breaker of %s "
                "came back %s (expected error)\n",
                y->service,
                rc != 0 ? yard_strerror(rc) : yard_status_name(r->status));
        rc = -1;
    }
    yard_reply_destroy(&r);
    yard_client_destroy(&c);
    if (rc != 0 || s_wait_breaker(y, "open", ready_ms) != 0)
        return -1;
    /*  Nothing may serve the service while the load runs: every reply
        must then come from the open breaker itself. */
    bench_proc_stop_many(y->workers, (int)y->nworkers, 2000, true);
    memset(y->workers, 0, sizeof(y->workers));
    y->nworkers = 0;
    if (s_wait_breaker(y, "open", ready_ms) != 0)
        return -1;
    bench_note("breaker of %s open, its workers stopped", y->service);
    return 0;
}

/* ---- the closed loop ---------------------------------------------------- */

/*  A task in flight whose reply carries no stamp (by-id loads). */
typedef struct {
    char *id; /*  from submit_batch (the thread frees it); NULL: free  */
    int64_t sent_us;
} s_sent_t;

typedef struct {
    const bench_yard_t *y;
    const bench_load_t *load;
    yard_client_t *client;
    uint64_t quota; /*  count-bound: tasks this thread submits          */
    int64_t start_us;
    bench_tally_t tally;
    uint64_t unanswered; /*  still in flight when the drain bound passed */
    char error[256];     /*  first failure, "" if none                  */
    char **ids;          /*  by-id loads: submit_batch's ids (window)   */
    s_sent_t *sent;      /*  by-id loads: tasks in flight (window slots) */
    uint32_t index;      /*  0..clients-1                              */
} s_thread_t;

/*  Replies of this load carry the echoed stamp; else go by task id. */
static bool s_stamped(const bench_load_t *load)
{
    return load->expect == YARD_OK && !load->request;
}

/*  Keeps the n ids submit_batch just handed out, with their send time,
    in free slots (there are enough: at most `window` are in flight, and
    every reply frees its task's slot). False, with every id not kept
    freed, if there were not. */
static bool s_keep_ids(s_thread_t *t, uint32_t n, int64_t now)
{
    uint32_t slot = 0, i = 0;
    for (; i < n; i++) {
        while (slot < t->load->window && t->sent[slot].id)
            slot++;
        if (slot == t->load->window)
            break;
        t->sent[slot].id = t->ids[i];
        t->sent[slot].sent_us = now;
    }
    for (uint32_t k = i; k < n; k++)
        free(t->ids[k]);
    return i == n;
}

/*  Finds and forgets a kept id; false if it is not in flight. */
static bool s_forget_id(s_thread_t *t, const char *id, int64_t *sent)
{
    for (uint32_t i = 0; i < t->load->window; i++) {
        if (t->sent[i].id && strcmp(t->sent[i].id, id) == 0) {
            *sent = t->sent[i].sent_us;
            free(t->sent[i].id);
            t->sent[i].id = NULL;
            return true;
        }
    }
    return false;
}

static void s_take(s_thread_t *t, yard_reply_t *r, int64_t now)
{
    bench_tally_t *tl = &t->tally;
    const bench_load_t *load = t->load;
    int64_t sent = 0;
    bool good;
    if (s_stamped(load)) {
        good = r->status == YARD_OK && r->payload_len == load->payload;
        uint64_t seq;
        if (good)
            bench_unstamp(r->payload, &seq, &sent);
    } else {
        /*  Forgotten whatever the status: the task is no longer in flight. */
        good = s_forget_id(t, r->id, &sent) && r->status == load->expect;
        /*  A request load measures the worker: never the broker's
            response cache (which these tasks do not ask for). */
        if (load->request && r->cached)
            good = false;
        char why[160];
        if (good && load->check &&
            !load->check(r->payload, r->payload_len, load->check_arg, why,
                         sizeof(why))) {
            if (!t->error[0])
                snprintf(t->error, sizeof(t->error), "reply %s: %s", r->id,
                         why);
            tl->errors++;
            return;
        }
    }
    if (!good) {
        if (!t->error[0])
            snprintf(t->error, sizeof(t->error),
                     "reply %s: status %s (expected %s), %zu bytes, "
                     "error '%s'",
                     r->id, yard_status_name(r->status),
                     yard_status_name(load->expect), r->payload_len,
                     r->error ? r->error : "");
        tl->errors++;
        return;
    }
    tl->total++;
    if (now >= tl->measure_from_us && now < tl->measure_to_us) {
        tl->completed++;
        yard_hist_record(&tl->hist, (uint64_t)(now - sent));
    }
}

/*  Sleeps until the monotonic time `until_us` (no-op when past). */
static void s_sleep_until(int64_t until_us)
{
    int64_t left = until_us - yard_clock_us();
    if (left <= 0)
        return;
    struct timespec ts = {(time_t)(left / 1000000),
                          (long)(left % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !bench_stopping())
        ;
}

/*  Takes every reply already there (at least one when `block_ms` > 0 and
    one comes in time). False, with t->error set, on a failed wait. */
static bool s_take_ready(s_thread_t *t, int block_ms, uint64_t *in_flight)
{
    yard_reply_t *r = NULL;
    int rc = yard_client_wait(t->client, block_ms, &r);
    while (rc == 0) {
        s_take(t, r, yard_clock_us());
        yard_reply_destroy(&r);
        (*in_flight)--;
        if (*in_flight == 0)
            return true;
        rc = yard_client_wait(t->client, 0, &r);
    }
    if (rc == YARD_E_TIMEOUT || rc == YARD_E_INTERRUPTED)
        return true;
    snprintf(t->error, sizeof(t->error), "wait: %s", yard_strerror(rc));
    return false;
}

/*  The open loop of one thread (see the top of this file). bufs and
    frames hold `window` stamped payloads. */
static void s_open_loop(s_thread_t *t, uint8_t *bufs, yard_frame_t *frames)
{
    const bench_load_t *load = t->load;
    bench_tally_t *tl = &t->tally;
    uint32_t window = load->window;
    double interval = 1e6 * load->clients / load->rate; /*  us per task  */
    /*  Staggered: thread i starts i / clients of an interval later. */
    double t0 = (double)t->start_us + interval * t->index / load->clients;
    uint64_t k = 0, in_flight = 0;
    int64_t drain_until = 0;
    bool stopping = false;
    for (;;) {
        int64_t now = yard_clock_us();
        int64_t due = (int64_t)(t0 + interval * (double)k);
        if (!stopping) {
            /*  Everything due by now, as far as the window allows. */
            uint32_t n = 0;
            while (n < window - in_flight && due <= now) {
                bench_stamp(bufs + (size_t)n * load->payload, k, due);
                n++;
                k++;
                due = (int64_t)(t0 + interval * (double)k);
            }
            if (n > 0) {
                int rc = yard_client_submit_batch(t->client, t->y->service,
                                                  frames, n, load->opts, NULL);
                if (rc != 0) {
                    snprintf(t->error, sizeof(t->error), "submit_batch: %s",
                             yard_strerror(rc));
                    return;
                }
                in_flight += n;
            }
            /*  Tasks due after the measured window are not sent. */
            if (due >= tl->measure_to_us || bench_stopping()) {
                stopping = true;
                drain_until = now + (int64_t)BENCH_DRAIN_MS * 1000;
            }
        }
        if (stopping) {
            if (in_flight == 0)
                return;
            if (yard_clock_us() >= drain_until) {
                t->unanswered = in_flight;
                return;
            }
            if (!s_take_ready(t, 100, &in_flight))
                return;
            continue;
        }
        /*  Until the next send: block when it is far or the window is
            full (a reply is then what lets it go), else look and nap. */
        now = yard_clock_us();
        int64_t gap = in_flight == window ? INT64_MAX : due - now;
        if (in_flight == 0) {
            s_sleep_until(due); /*  nothing to take meanwhile */
        } else if (gap >= 2000) {
            int64_t ms = gap == INT64_MAX ? 100 : gap / 1000 - 1;
            if (!s_take_ready(t, (int)ms, &in_flight))
                return;
        } else {
            if (!s_take_ready(t, 0, &in_flight))
                return;
            if (gap > 0)
                s_sleep_until(now +
                              (gap < S_OPEN_NAP_US ? gap : S_OPEN_NAP_US));
        }
    }
}

static void *s_thread_main(void *arg)
{
    s_thread_t *t = arg;
    pthread_setname_np(pthread_self(), "yard-load"); /*  for perf and top */
    const bench_load_t *load = t->load;
    uint32_t window = load->window;
    uint8_t *bufs = malloc((size_t)window * load->payload);
    yard_frame_t *frames = calloc(window, sizeof(*frames));
    if (!s_stamped(load)) {
        t->ids = calloc(window, sizeof(*t->ids));
        t->sent = calloc(window, sizeof(*t->sent));
    }
    if (!bufs || !frames || (!s_stamped(load) && (!t->ids || !t->sent))) {
        snprintf(t->error, sizeof(t->error), "out of memory");
        goto out;
    }
    memset(bufs, 'y', (size_t)window * load->payload);
    for (uint32_t i = 0; i < window; i++) {
        /*  A request load sends the same bytes every time. */
        frames[i].data =
            load->request ? load->request : bufs + (size_t)i * load->payload;
        frames[i].len = load->request ? load->request_len : load->payload;
    }
    if (load->rate > 0) {
        s_open_loop(t, bufs, frames);
        goto out;
    }
    bench_tally_t *tl = &t->tally;
    uint64_t seq = 0, submitted = 0, in_flight = 0;
    int64_t drain_until = 0;
    bool stopping = false;
    uint32_t n = window;
    for (;;) {
        /*  Refill: what came back goes out again, as one batch. */
        if (!stopping && n > 0) {
            if (load->tasks && n > t->quota - submitted)
                n = (uint32_t)(t->quota - submitted);
            int64_t now = yard_clock_us();
            for (uint32_t i = 0; !load->request && i < n; i++)
                bench_stamp(bufs + (size_t)i * load->payload, seq++, now);
            if (n > 0) {
                int rc = yard_client_submit_batch(
                    t->client, t->y->service, frames, n, load->opts, t->ids);
                if (rc != 0) {
                    snprintf(t->error, sizeof(t->error), "submit_batch: %s",
                             yard_strerror(rc));
                    break;
                }
                if (t->ids && !s_keep_ids(t, n, now)) {
                    snprintf(t->error, sizeof(t->error),
                             "more tasks in flight than the window");
                    break;
                }
                submitted += n;
                in_flight += n;
            }
        }
        int64_t now = yard_clock_us();
        if (!stopping &&
            ((load->tasks && submitted >= t->quota) ||
             (!load->tasks && now >= tl->measure_to_us) || bench_stopping())) {
            stopping = true;
            drain_until = now + (int64_t)BENCH_DRAIN_MS * 1000;
        }
        if (in_flight == 0)
            break;
        if (stopping && now >= drain_until) {
            t->unanswered = in_flight;
            break;
        }
        yard_reply_t *r = NULL;
        int rc = yard_client_wait(t->client, 100, &r);
        if (rc == YARD_E_TIMEOUT || rc == YARD_E_INTERRUPTED) {
            n = 0;
            continue;
        }
        if (rc != 0) {
            snprintf(t->error, sizeof(t->error), "wait: %s", yard_strerror(rc));
            break;
        }
        n = 0;
        do {
            s_take(t, r, yard_clock_us());
            yard_reply_destroy(&r);
            n++;
            in_flight--;
        } while (n < window && yard_client_wait(t->client, 0, &r) == 0);
    }
out:
    for (uint32_t i = 0; t->sent && i < window; i++)
        free(t->sent[i].id);
    free(t->sent);
    free(t->ids);
    free(bufs);
    free(frames);
    return NULL;
}

int bench_yard_load(const bench_yard_t *y, const bench_load_t *load,
                    bench_result_t *out)
{
    uint32_t nc = load->clients;
    s_thread_t *ts = calloc(nc, sizeof(*ts));
    pthread_t *tids = calloc(nc, sizeof(*tids));
    yard_hist_t *hist = malloc(sizeof(*hist));
    int rc = -1;
    uint32_t started = 0;
    if (!ts || !tids || !hist)
        goto done;
    yard_hist_reset(hist);
    /*  Clients are made here, before the clock starts, so connecting is
        not measured; each then belongs to its thread alone. */
    for (uint32_t i = 0; i < nc; i++) {
        ts[i].y = y;
        ts[i].load = load;
        ts[i].client = yard_client_new(y->endpoint);
        if (!ts[i].client) {
            fprintf(stderr, "yard-bench: yard_client_new(%s) failed\n",
                    y->endpoint);
            goto done;
        }
        ts[i].quota = load->tasks / nc + (i < load->tasks % nc ? 1 : 0);
        ts[i].index = i;
    }
    bench_cpu_t cpu0, cpu1;
    bench_cpu_sample(&cpu0, y->broker, y->workers, y->nworkers);
    int64_t start = yard_clock_us();
    for (uint32_t i = 0; i < nc; i++) {
        bench_tally_t *tl = &ts[i].tally;
        yard_hist_reset(&tl->hist);
        ts[i].start_us = start;
        if (load->tasks) {
            tl->measure_from_us = start;
            tl->measure_to_us = INT64_MAX;
        } else {
            tl->measure_from_us = start + load->warmup_us;
            tl->measure_to_us = tl->measure_from_us + load->duration_us;
        }
    }
    for (; started < nc; started++) {
        if (pthread_create(&tids[started], NULL, s_thread_main, &ts[started]) !=
            0) {
            fprintf(stderr, "yard-bench: pthread_create failed\n");
            break;
        }
    }
    /*  CPU inside the measured window, when asked for: sampled by this
        thread while the load threads run. */
    bench_cpu_t win0, win1;
    bool win = load->window_cpu && !load->tasks && started == nc;
    if (win) {
        s_sleep_until(start + load->warmup_us);
        bench_cpu_sample(&win0, y->broker, y->workers, y->nworkers);
        s_sleep_until(start + load->warmup_us + load->duration_us);
        bench_cpu_sample(&win1, y->broker, y->workers, y->nworkers);
    }
    for (uint32_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    bench_cpu_sample(&cpu1, y->broker, y->workers, y->nworkers);
    int64_t end = yard_clock_us();
    if (started < nc)
        goto done;
    uint64_t completed = 0, errors = 0, unanswered = 0, all = 0;
    for (uint32_t i = 0; i < nc; i++) {
        completed += ts[i].tally.completed;
        errors += ts[i].tally.errors;
        unanswered += ts[i].unanswered;
        all += ts[i].tally.total;
        yard_hist_merge(hist, &ts[i].tally.hist);
        if (ts[i].error[0]) {
            fprintf(stderr, "yard-bench: yard client %u: %s\n", i, ts[i].error);
            errors += ts[i].tally.errors ? 0 : 1;
        }
    }
    double seconds = load->tasks ? (double)(end - start) / 1e6
                                 : (double)load->duration_us / 1e6;
    bench_result_add_cpu(out, &cpu0, &cpu1, all);
    bench_result_add(out, hist, completed, errors, seconds);
    out->unanswered += unanswered;
    if (win) {
        out->win_cpu.clients_us += win1.clients_us - win0.clients_us;
        out->win_cpu.server_us += win1.server_us - win0.server_us;
        out->win_cpu.workers_us += win1.workers_us - win0.workers_us;
        out->win_cpu.system_us += win1.system_us - win0.system_us;
        out->win_cpu_seconds += (double)load->duration_us / 1e6;
    }
    if (errors || unanswered) {
        fprintf(stderr,
                "yard-bench: yard load failed: %llu bad replies, %llu "
                "tasks unanswered after %d ms\n",
                (unsigned long long)errors, (unsigned long long)unanswered,
                BENCH_DRAIN_MS);
        goto done;
    }
    if (load->tasks && completed != load->tasks) {
        fprintf(stderr, "yard-bench: %llu of %llu tasks completed\n",
                (unsigned long long)completed, (unsigned long long)load->tasks);
        goto done;
    }
    rc = 0;
done:
    for (uint32_t i = 0; ts && i < nc; i++)
        yard_client_destroy(&ts[i].client);
    free(ts);
    free(tids);
    free(hist);
    return rc;
}
