/*  bench_callgrind.c — the broker's CPU cost per task, in instructions.

    Wall-clock figures on a shared 2-core machine wander; instruction
    counts do not. The broker runs under valgrind --tool=callgrind (all of
    its threads, ZeroMQ's I/O thread included, counted together) twice:

        I_0  start, one worker registers, stats handshakes, SIGTERM
        I_N  the same, plus N echo tasks (1 client, 16 in flight)

    and (I_N - I_0) / N is what one task costs: decode, queue, dispatch,
    result, reply encode, and the socket work around them. The worker and
    client run natively: only the broker is measured.

    Readiness is a handshake (the broker answers stats; stats list the
    worker), with a generous bound because valgrind starts slowly. */
#include "bench.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "yard_clock.h"

#define S_SERVICE "bench-cg"
#define S_READY_MS 60000 /*  valgrind start + first stats answer       */
#define S_STOP_MS 60000  /*  SIGTERM to callgrind's file written        */

/*  First number after "summary:" or "totals:" in a callgrind out file. */
static int s_read_total(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "yard-bench: no callgrind output %s\n", path);
        return -1;
    }
    char line[4096];
    int rc = -1;
    while (fgets(line, sizeof(line), f)) {
        const char *v = NULL;
        if (strncmp(line, "summary:", 8) == 0)
            v = line + 8;
        else if (strncmp(line, "totals:", 7) == 0)
            v = line + 7;
        if (v && sscanf(v, "%" SCNu64, out) == 1) {
            rc = 0;
            break;
        }
    }
    fclose(f);
    if (rc != 0)
        fprintf(stderr, "yard-bench: no summary/totals line in %s\n", path);
    return rc;
}

/*  One measured broker life with `tasks` tasks; total instructions. */
static int s_run(const char *valgrind, uint32_t tasks, uint32_t payload,
                 uint64_t *instr)
{
    char out[PATH_MAX];
    snprintf(out, sizeof(out), "%s/callgrind.%u.out", bench_proc_dir(), tasks);
    bench_yard_t y;
    memset(&y, 0, sizeof(y));
    bench_broker_opts_t o = {0, 1000, out, valgrind, S_READY_MS, NULL};
    if (bench_yard_start_broker(&y, &o) != 0)
        return -1;
    int rc = -1;
    if (bench_yard_start_workers(&y, S_SERVICE, "echo", 1, S_READY_MS) != 0)
        goto stop;
    if (tasks > 0) {
        bench_load_t load = {.clients = 1,
                             .window = 16,
                             .payload = payload,
                             .tasks = tasks,
                             .expect = YARD_OK};
        bench_result_t r;
        bench_result_init(&r);
        int64_t t0 = yard_clock_ms();
        if (bench_yard_load(&y, &load, &r) != 0)
            goto stop;
        bench_note("callgrind: %u tasks in %.1f s", tasks,
                   (double)(yard_clock_ms() - t0) / 1e3);
    }
    rc = 0;
stop:;
    /*  The broker first: its SIGTERM path is part of both runs alike, and
        valgrind writes the out file as it exits. */
    int status = bench_proc_stop(y.broker, S_STOP_MS, true);
    y.broker = 0;
    bench_yard_stop(&y, 5000);
    if (rc != 0)
        return -1;
    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1; /*  said why already; its file may be incomplete */
    return s_read_total(out, instr);
}

int bench_callgrind_run(const char *valgrind, uint32_t tasks, uint32_t payload,
                        bench_callgrind_t *out)
{
    memset(out, 0, sizeof(*out));
    out->tasks = tasks;
    if (s_run(valgrind, 0, payload, &out->instr_base) != 0 ||
        s_run(valgrind, tasks, payload, &out->instr_tasks) != 0)
        return -1;
    out->per_task =
        ((double)out->instr_tasks - (double)out->instr_base) / tasks;
    return 0;
}
