/*  bench_memory.c — what one queued task costs the broker in memory.

    A broker of its own (--max-queue 2000000, no workers for the service)
    receives N tasks with a long deadline, so every one of them sits in
    its queue and indexes at once. The broker's own stats give its RSS
    (from /proc/self/statm) and how many tasks it holds, before and after;
    the difference over N is bytes per queued task: the task record,
    payload copy, id index, deadline heap entry and allocator overhead.

    Bounded: the phase has its own deadline, and the broker is stopped with
    SIGTERM and --grace 0, so it answers everything "shutdown" at once
    instead of serving out 600 s deadlines. */
#include "bench.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yard_client.h"
#include "yard_clock.h"

#define S_SERVICE "bench-mem"
#define S_CHUNK 8192         /*  tasks per submit_batch call       */
#define S_TIMEOUT_MS 600000u /*  long enough to never expire here  */
#define S_PHASE_MS 90000     /*  bound on submitting and confirming */
#define S_MAX_QUEUE 2000000u

/*  Reads rss_bytes and tasks from the broker's stats. 0 or -1. */
static int s_memory(yard_client_t *c, int timeout_ms, int64_t *rss,
                    int64_t *tasks)
{
    char *json = NULL;
    if (yard_client_stats_json(c, timeout_ms, &json) != 0)
        return -1;
    int rc = bench_json_int(json, "memory.rss_bytes", rss) == 0 &&
                     bench_json_int(json, "memory.tasks", tasks) == 0
                 ? 0
                 : -1;
    if (rc != 0)
        fprintf(stderr, "yard-bench: stats lack memory.rss_bytes / "
                        "memory.tasks\n");
    free(json);
    return rc;
}

/*  Any reply now is a task the broker refused (rejected, invalid): the
    measurement would be wrong, so it is an error. */
static int s_check_no_replies(yard_client_t *c)
{
    yard_reply_t *r = NULL;
    if (yard_client_wait(c, 0, &r) == 0) {
        fprintf(stderr,
                "yard-bench: memory phase: task %s answered early: %s %s\n",
                r->id, yard_status_name(r->status), r->error ? r->error : "");
        yard_reply_destroy(&r);
        return -1;
    }
    return 0;
}

int bench_memory_run(uint32_t n, uint32_t payload, bench_memory_t *out)
{
    memset(out, 0, sizeof(*out));
    bench_yard_t y;
    memset(&y, 0, sizeof(y));
    bench_broker_opts_t o = {S_MAX_QUEUE, 0, NULL, NULL, 10000, NULL};
    if (n > S_MAX_QUEUE)
        return -1;
    if (bench_yard_start_broker(&y, &o) != 0)
        return -1;
    snprintf(y.service, sizeof(y.service), "%s", S_SERVICE);
    int rc = -1;
    uint8_t *buf = malloc(payload);
    yard_frame_t *frames = calloc(S_CHUNK, sizeof(*frames));
    yard_client_t *c = yard_client_new(y.endpoint);
    if (!buf || !frames || !c)
        goto done;
    memset(buf, 'm', payload);
    /*  Every task carries the same bytes; ids (made by the library) make
        them distinct tasks. */
    for (size_t i = 0; i < S_CHUNK; i++) {
        frames[i].data = buf;
        frames[i].len = payload;
    }
    int64_t rss0, tasks0, rss1 = 0, tasks1 = 0;
    if (s_memory(c, 5000, &rss0, &tasks0) != 0)
        goto done;
    int64_t start = yard_clock_ms(), deadline = start + S_PHASE_MS;
    yard_submit_opts_t so;
    memset(&so, 0, sizeof(so));
    so.timeout_ms = S_TIMEOUT_MS;
    for (uint32_t sent = 0; sent < n;) {
        uint32_t k = n - sent < S_CHUNK ? n - sent : S_CHUNK;
        int err = yard_client_submit_batch(c, S_SERVICE, frames, k, &so, NULL);
        if (err != 0) {
            fprintf(stderr, "yard-bench: memory phase: submit_batch: %s\n",
                    yard_strerror(err));
            goto done;
        }
        sent += k;
        /*  Lets the library hand what the socket refused so far to it. */
        if (s_check_no_replies(c) != 0)
            goto done;
        if (yard_clock_ms() > deadline || bench_stopping()) {
            fprintf(stderr, "yard-bench: memory phase: submitting took "
                            "too long\n");
            goto done;
        }
    }
    /*  Done when the broker says it holds them all. */
    for (;;) {
        if (s_check_no_replies(c) != 0)
            goto done;
        if (s_memory(c, 2000, &rss1, &tasks1) == 0 &&
            tasks1 - tasks0 >= (int64_t)n)
            break;
        if (yard_clock_ms() > deadline || bench_stopping() ||
            !bench_proc_alive(y.broker)) {
            fprintf(stderr,
                    "yard-bench: memory phase: broker holds %lld of %u "
                    "tasks\n",
                    (long long)(tasks1 - tasks0), n);
            goto done;
        }
    }
    out->tasks = n;
    out->rss_before = rss0;
    out->rss_after = rss1;
    out->broker_tasks = tasks1;
    out->bytes_per_task = (double)(rss1 - rss0) / n;
    out->seconds = (double)(yard_clock_ms() - start) / 1e3;
    rc = 0;
done:
    /*  Dropping the client first frees the bench's own copy of a million
        tasks; the broker's "shutdown" replies then go nowhere, cheaply. */
    yard_client_destroy(&c);
    free(buf);
    free(frames);
    bench_yard_stop(&y, 30000); /*  an unclean exit is reported there */
    return rc;
}
