/*  bench_loadonly.c — yard-bench --load-only: the C client side of a load
    on its own, against a broker (and workers) that someone else started,
    so that other load generators (bench/lang: the Python and Node
    clients) and this one can take turns on one and the same broker.

    The load is bench_yard_load's, unchanged: C threads, one yard_client_t
    each, every payload stamped, latency from the stamp to the moment
    yard_client_wait hands the reply over, intact echoes checked. Closed
    loop (K in flight per thread) by default; with --rate R an open loop
    at R tasks/s offered, stamped with each task's due time. One measured
    window of --duration seconds after a 0.5 s warm-up.

    CPU: this process always; the broker and workers when their PIDs are
    given (--broker-pid, --worker-pid), from /proc/PID/stat, sampled when
    the measured window opens and closes. Reported as percent of one core
    over that window.

    Nothing is spawned; the hard time bound (SIGALRM) and SIGINT/SIGTERM
    end the process as in a full run. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/*  Percent of one core over the measured window. */
static double s_pct(int64_t us, double seconds)
{
    return seconds > 0 ? 100.0 * (double)us / (seconds * 1e6) : 0;
}

static int s_print_json(const bench_config_t *cfg, const bench_result_t *r)
{
    double secs = r->win_cpu_seconds;
    json_t *cpu = json_pack(
        "{s:f, s:o, s:o}", "client", s_pct(r->win_cpu.clients_us, secs),
        "broker",
        cfg->broker_pid ? json_real(s_pct(r->win_cpu.server_us, secs))
                        : json_null(),
        "workers",
        cfg->nworker_pids ? json_real(s_pct(r->win_cpu.workers_us, secs))
                          : json_null());
    json_t *root = json_pack(
        "{s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:o, s:o, s:{s:s, "
        "s:s, s:I, s:I, s:I, s:f, s:f}}",
        "tasks_per_s", r->tasks_per_s, "p50_us", (json_int_t)r->p50_us,
        "p99_us", (json_int_t)r->p99_us, "max_us", (json_int_t)r->max_us,
        "tasks", (json_int_t)r->completed, "errors",
        (json_int_t)(r->errors + r->unanswered), "unanswered",
        (json_int_t)r->unanswered, "mean_us", r->mean_us, "seconds", r->seconds,
        "offered_per_s", cfg->rate > 0 ? json_real(cfg->rate) : json_null(),
        "cpu_pct", cpu, "config", "broker", cfg->broker, "service",
        cfg->service, "clients", (json_int_t)cfg->clients, "window",
        (json_int_t)cfg->window, "payload", (json_int_t)cfg->payload,
        "duration_s", cfg->duration_s, "warmup_s", BENCH_WARMUP_US / 1e6);
    if (!root)
        return -1;
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        return -1;
    puts(text);
    free(text);
    return 0;
}

static void s_print_text(const bench_config_t *cfg, const bench_result_t *r)
{
    double secs = r->win_cpu_seconds;
    if (cfg->rate > 0)
        printf("open loop, %.0f tasks/s offered, %u client(s), at most %u in "
               "flight each, %u B, %s on %s\n",
               cfg->rate, cfg->clients, cfg->window, cfg->payload, cfg->service,
               cfg->broker);
    else
        printf("closed loop, %u client(s) x %u in flight, %u B, %s on %s\n",
               cfg->clients, cfg->window, cfg->payload, cfg->service,
               cfg->broker);
    printf("  %.0f tasks/s over %.1f s (%llu tasks), p50 %llu us, p99 %llu "
           "us, max %llu us\n",
           r->tasks_per_s, r->seconds, (unsigned long long)r->completed,
           (unsigned long long)r->p50_us, (unsigned long long)r->p99_us,
           (unsigned long long)r->max_us);
    printf("  errors %llu (unanswered %llu)\n",
           (unsigned long long)(r->errors + r->unanswered),
           (unsigned long long)r->unanswered);
    printf("  CPU over the window: client %.0f%%",
           s_pct(r->win_cpu.clients_us, secs));
    if (cfg->broker_pid)
        printf(", broker %.0f%%", s_pct(r->win_cpu.server_us, secs));
    if (cfg->nworker_pids)
        printf(", workers %.0f%%", s_pct(r->win_cpu.workers_us, secs));
    printf(" (of one core)\n");
}

int bench_load_only(const bench_config_t *cfg)
{
    /*  Warm-up, the window, the drain bound, and slack for the start. */
    unsigned budget = (unsigned)(cfg->duration_s + BENCH_WARMUP_US / 1e6 +
                                 BENCH_DRAIN_MS / 1e3 + 30);
    if (bench_proc_init(budget) != 0)
        return 1;
    /*  Its temp dir holds children's logs, and this mode has no children:
        gone at once, so that even a run cut short leaves nothing behind. */
    bench_proc_finish(false);
    bench_yard_t y;
    memset(&y, 0, sizeof(y));
    snprintf(y.endpoint, sizeof(y.endpoint), "%s", cfg->broker);
    snprintf(y.service, sizeof(y.service), "%s", cfg->service);
    y.broker = cfg->broker_pid;
    for (uint32_t i = 0; i < cfg->nworker_pids; i++)
        y.workers[i] = cfg->worker_pids[i];
    y.nworkers = cfg->nworker_pids;
    bench_load_t load = {.clients = cfg->clients,
                         .window = cfg->window,
                         .payload = cfg->payload,
                         .warmup_us = BENCH_WARMUP_US,
                         .duration_us = (int64_t)(cfg->duration_s * 1e6),
                         .tasks = 0,
                         .expect = YARD_OK,
                         .rate = cfg->rate,
                         .window_cpu = true};
    bench_result_t *r = malloc(sizeof(*r)); /*  a histogram: large */
    if (!r)
        return 1;
    bench_result_init(r);
    int rc = bench_yard_load(&y, &load, r);
    /*  Printed whatever happened, if anything was measured: a caller
        reads "errors". */
    if (r->seconds > 0) {
        if (cfg->json) {
            if (s_print_json(cfg, r) != 0)
                rc = -1;
        } else {
            s_print_text(cfg, r);
        }
    }
    fflush(stdout);
    free(r);
    return rc == 0 ? 0 : 1;
}
