/*  yard_bench.c — yard-bench: main. Parses flags (strictly: a bad flag is
    a message and exit 2), runs every phase in one process so the figures
    share one machine state, and prints the report (text, or one JSON
    object with --json).

    Phase order, and why:
      1. start the ZeroMQ proxy sides first (ROUTER/DEALER, and XSUB/XPUB
         for the events): they are forked, and forking must happen
         before this process owns any ZeroMQ context;
      2. start the Yard side (exec'd: no such constraint);
      3. throughput, then 1x1 latency, each as R rounds in which Yard and
         the proxy take turns (who goes first alternates): this machine
         is shared and noisy, and interleaving makes whatever else runs
         weigh on both sides alike, so the ratios mean something;
      4. the event bus, with a fresh broker of its own (no workers): one
         publisher to 1 and to 4 subscribers, Yard against a plain
         zmq_proxy(XSUB, XPUB) forked in step 1, in alternating rounds;
      5. the circuit breaker, with three fresh brokers of its own: the
         throughput load with breakers on (default settings) and off, and
         the same load against a service whose breaker is open; again R
         rounds, the three taking turns (who goes first rotates);
      6. the cache, with a redis-server and two brokers of its own (one
         with yard-cache processes on default tiers, one with --no-l1):
         a get answered from L1 and one answered from L2 (Redis) through
         Yard, and a plain Redis GET through hiredis, taking turns in R
         rounds; then L1 and Redis 1 client x 1 in flight, likewise;
      7. memory and callgrind last, each with a broker of its own (they
         start and stop brokers and must not disturb the timed phases).
    On any failure every child is stopped and the exit status is 1; the
    whole run is under a hard time bound (SIGALRM kills the children). */
#include "bench.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "yard_config.h"
#include "yard_proto.h"

#define S_THROUGHPUT_TARGET 0.8 /*  yard/proxy tasks/s at least        */
#define S_EVENTS_TARGET 0.8     /*  yard/proxy events/s at least        */
#define S_LATENCY_TARGET 1.3    /*  yard/proxy 1x1 p50 at most          */
#define S_READY_MS 15000        /*  native start-up handshake bound     */
#define S_CACHE_TARGET 1.0      /*  1x1 p50: L1 hit / Redis GET at most */
/*  TTL of the cache phase's entries: outlives any run (--duration is at
    most 600 s per side and phase). */
#define S_CACHE_TTL_MS (24ULL * 3600 * 1000)

/*  A sanitizer build's siblings are instrumented too, and valgrind cannot
    run AddressSanitizer binaries: there the callgrind phase is off unless
    asked for. */
#if defined(__SANITIZE_ADDRESS__)
#define S_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_SANITIZED 1
#endif
#endif
#ifndef S_SANITIZED
#define S_SANITIZED 0
#endif

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: yard-bench [options]\n"
        "\n"
        "Measures Yard (yard-broker + yard-worker echo, through the C\n"
        "client library) against a plain ZeroMQ ROUTER/DEALER proxy with\n"
        "REP echo workers, all in one run: closed-loop throughput and\n"
        "latency, 1x1 latency, the event bus (one publisher to 1 and 4\n"
        "subscribers, against a plain zmq_proxy(XSUB, XPUB)), the circuit\n"
        "breaker's cost (breakers on vs off) and how fast an open breaker\n"
        "answers, the cache (yard.cache gets answered from L1 and from\n"
        "L2 through Yard, against a plain Redis GET), broker bytes per\n"
        "queued task, and broker instructions per task under callgrind.\n"
        "Compare the ratios; the absolute figures depend on the machine.\n"
        "\n"
        "options:\n"
        "  --clients C         load threads, one client each (default 4)\n"
        "  --window K          tasks in flight per client (default 16,\n"
        "                      at most %d)\n"
        "  --workers W         echo workers on each side (default 2)\n"
        "  --payload BYTES     payload size (default 64, %d..%u)\n"
        "  --duration S        measured seconds per side and phase\n"
        "                      (default 3), split over the rounds\n"
        "  --rounds R          Yard and proxy alternate R times per phase,\n"
        "                      each slice after a 0.5 s warm-up, so load\n"
        "                      from elsewhere hits both alike (default 3)\n"
        "  --no-events         skip the event-bus phase\n"
        "  --event-window K    events the publisher may be ahead of the\n"
        "                      slowest subscriber (default %d, %d..%d)\n"
        "  --no-breaker        skip the circuit-breaker phase (breakers\n"
        "                      on vs off, and an open breaker's answers)\n"
        "  --no-cache          skip the cache phase (default: on when\n"
        "                      " BENCH_REDIS_SERVER " exists; it starts its\n"
        "                      own redis-server and yard-cache processes)\n"
        "  --mem-tasks N       tasks queued by the memory phase\n"
        "                      (default 1000000, at most 2000000)\n"
        "  --no-memory         skip the memory phase\n"
        "  --callgrind-tasks N tasks in the callgrind run (default "
        "20000)\n"
        "  --callgrind         require the callgrind phase (default: on\n"
        "                      when valgrind is installed, except in a\n"
        "                      sanitizer build)\n"
        "  --no-callgrind      skip the callgrind phase\n"
        "  --json              print one JSON object on stdout\n"
        "  --verbose           progress on stderr\n"
        "  --keep              keep the run's temp dir (process logs,\n"
        "                      callgrind out files) and print its path\n"
        "  --help              this text\n"
        "\n"
        "yard-broker, yard-worker and yard-cache are taken from this "
        "binary's\ndirectory.\n"
        "\n"
        "load-only mode: yard-bench --load-only --broker EP --service S "
        "[options]\n"
        "\n"
        "Runs only the C client load against a broker (and workers) already\n"
        "running, starts nothing, and prints tasks/s, p50/p99, tasks and\n"
        "errors (with --json one object: tasks_per_s, p50_us, p99_us,\n"
        "tasks, errors, and more). One measured window of --duration seconds\n"
        "after a 0.5 s warm-up. Exit status 1 when a reply was wrong or\n"
        "missing. --clients, --window, --payload, --duration, --json and\n"
        "--verbose apply; the flags of the full run do not.\n"
        "  --load-only         this mode\n"
        "  --broker EP         the broker's tasks endpoint (required)\n"
        "  --service S         the service to load; its workers must echo\n"
        "                      (required)\n"
        "  --rate R            open loop: R tasks/s offered in all, sent on\n"
        "                      a fixed schedule, at most --window in flight\n"
        "                      per client; latency counts from when a task\n"
        "                      was due (default: closed loop)\n"
        "  --broker-pid PID    report the broker's CPU over the window\n"
        "  --worker-pid PID    and the workers' (repeatable, summed)\n",
        BENCH_MAX_WINDOW, BENCH_MIN_PAYLOAD, BENCH_MAX_PAYLOAD,
        BENCH_EVENT_WINDOW, BENCH_EVENT_BATCH, BENCH_EVENT_MAX_WINDOW);
}

static int s_bad(const char *flag, const char *value)
{
    fprintf(stderr, "yard-bench: invalid value for %s: '%s' (see --help)\n",
            flag, value ? value : "");
    return 2;
}

/*  The word of argv that named the option getopt_long just returned
    ("--rounds" of "--rounds 3", or "--rounds=3"). */
static const char *s_flag_word(char **argv, int next)
{
    const char *word = argv[next - 1];
    return optarg && optarg == word && next >= 2 ? argv[next - 2] : word;
}

/*  Flags into cfg. Returns -1 to go on, else an exit status. */
static int s_parse(int argc, char **argv, bench_config_t *cfg)
{
    enum {
        O_CLIENTS = 256,
        O_WINDOW,
        O_WORKERS,
        O_PAYLOAD,
        O_DURATION,
        O_ROUNDS,
        O_NO_BREAKER,
        O_NO_CACHE,
        O_NO_EVENTS,
        O_EVENT_WINDOW,
        O_MEM_TASKS,
        O_NO_MEMORY,
        O_CG_TASKS,
        O_CALLGRIND,
        O_NO_CALLGRIND,
        O_JSON,
        O_VERBOSE,
        O_KEEP,
        O_HELP,
        O_LOAD_ONLY, /*  from here on: load-only mode's own flags    */
        O_BROKER,
        O_SERVICE,
        O_RATE,
        O_BROKER_PID,
        O_WORKER_PID,
    };
    static const struct option options[] = {
        {"clients", required_argument, NULL, O_CLIENTS},
        {"window", required_argument, NULL, O_WINDOW},
        {"workers", required_argument, NULL, O_WORKERS},
        {"payload", required_argument, NULL, O_PAYLOAD},
        {"duration", required_argument, NULL, O_DURATION},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"no-breaker", no_argument, NULL, O_NO_BREAKER},
        {"no-cache", no_argument, NULL, O_NO_CACHE},
        {"no-events", no_argument, NULL, O_NO_EVENTS},
        {"event-window", required_argument, NULL, O_EVENT_WINDOW},
        {"mem-tasks", required_argument, NULL, O_MEM_TASKS},
        {"no-memory", no_argument, NULL, O_NO_MEMORY},
        {"callgrind-tasks", required_argument, NULL, O_CG_TASKS},
        {"callgrind", no_argument, NULL, O_CALLGRIND},
        {"no-callgrind", no_argument, NULL, O_NO_CALLGRIND},
        {"json", no_argument, NULL, O_JSON},
        {"verbose", no_argument, NULL, O_VERBOSE},
        {"keep", no_argument, NULL, O_KEEP},
        {"help", no_argument, NULL, O_HELP},
        {"load-only", no_argument, NULL, O_LOAD_ONLY},
        {"broker", required_argument, NULL, O_BROKER},
        {"service", required_argument, NULL, O_SERVICE},
        {"rate", required_argument, NULL, O_RATE},
        {"broker-pid", required_argument, NULL, O_BROKER_PID},
        {"worker-pid", required_argument, NULL, O_WORKER_PID},
        {NULL, 0, NULL, 0},
    };
    int opt;
    opterr = 0;
    /*  A flag of one mode given in the other is refused (named here). */
    const char *full_flag = NULL, *load_flag = NULL;
    uint32_t pid;
    /*  "+": no argument permutation, so a stray word is reported. */
    while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
        switch (opt) {
        case O_WORKERS:
        case O_ROUNDS:
        case O_NO_BREAKER:
        case O_NO_CACHE:
        case O_NO_EVENTS:
        case O_EVENT_WINDOW:
        case O_MEM_TASKS:
        case O_NO_MEMORY:
        case O_CG_TASKS:
        case O_CALLGRIND:
        case O_NO_CALLGRIND:
        case O_KEEP:
            full_flag = s_flag_word(argv, optind);
            break;
        case O_BROKER:
        case O_SERVICE:
        case O_RATE:
        case O_BROKER_PID:
        case O_WORKER_PID:
            load_flag = s_flag_word(argv, optind);
            break;
        default:
            break;
        }
        switch (opt) {
        case O_CLIENTS:
            if (yard_parse_u32(optarg, 1, BENCH_MAX_CLIENTS, &cfg->clients))
                return s_bad("--clients", optarg);
            break;
        case O_WINDOW:
            if (yard_parse_u32(optarg, 1, BENCH_MAX_WINDOW, &cfg->window))
                return s_bad("--window", optarg);
            break;
        case O_WORKERS:
            if (yard_parse_u32(optarg, 1, BENCH_MAX_WORKERS, &cfg->workers))
                return s_bad("--workers", optarg);
            break;
        case O_PAYLOAD:
            if (yard_parse_u32(optarg, BENCH_MIN_PAYLOAD, BENCH_MAX_PAYLOAD,
                               &cfg->payload))
                return s_bad("--payload", optarg);
            break;
        case O_DURATION:
            if (yard_parse_double(optarg, 0.1, 600, &cfg->duration_s))
                return s_bad("--duration", optarg);
            break;
        case O_ROUNDS:
            if (yard_parse_u32(optarg, 1, 100, &cfg->rounds))
                return s_bad("--rounds", optarg);
            break;
        case O_NO_BREAKER:
            cfg->breaker = false;
            break;
        case O_NO_CACHE:
            cfg->cache = false;
            break;
        case O_NO_EVENTS:
            cfg->events = false;
            break;
        case O_EVENT_WINDOW:
            if (yard_parse_u32(optarg, BENCH_EVENT_BATCH,
                               BENCH_EVENT_MAX_WINDOW, &cfg->event_window))
                return s_bad("--event-window", optarg);
            break;
        case O_MEM_TASKS:
            if (yard_parse_u32(optarg, 1, 2000000, &cfg->mem_tasks))
                return s_bad("--mem-tasks", optarg);
            break;
        case O_NO_MEMORY:
            cfg->memory = false;
            break;
        case O_CG_TASKS:
            if (yard_parse_u32(optarg, 1, 10000000, &cfg->callgrind_tasks))
                return s_bad("--callgrind-tasks", optarg);
            break;
        case O_CALLGRIND:
            cfg->callgrind = 1;
            break;
        case O_NO_CALLGRIND:
            cfg->callgrind = 0;
            break;
        case O_JSON:
            cfg->json = true;
            break;
        case O_VERBOSE:
            cfg->verbose = true;
            break;
        case O_KEEP:
            cfg->keep = true;
            break;
        case O_HELP:
            s_usage(stdout);
            return 0;
        case O_LOAD_ONLY:
            cfg->load_only = true;
            break;
        case O_BROKER:
            if (!*optarg || strlen(optarg) >= sizeof(cfg->broker))
                return s_bad("--broker", optarg);
            snprintf(cfg->broker, sizeof(cfg->broker), "%s", optarg);
            break;
        case O_SERVICE:
            if (!*optarg || strlen(optarg) >= sizeof(cfg->service))
                return s_bad("--service", optarg);
            snprintf(cfg->service, sizeof(cfg->service), "%s", optarg);
            break;
        case O_RATE:
            if (yard_parse_double(optarg, 1, 10000000, &cfg->rate))
                return s_bad("--rate", optarg);
            break;
        case O_BROKER_PID:
            if (yard_parse_u32(optarg, 1, INT_MAX, &pid))
                return s_bad("--broker-pid", optarg);
            cfg->broker_pid = (pid_t)pid;
            break;
        case O_WORKER_PID:
            if (yard_parse_u32(optarg, 1, INT_MAX, &pid) ||
                cfg->nworker_pids == BENCH_MAX_WORKERS)
                return s_bad("--worker-pid", optarg);
            cfg->worker_pids[cfg->nworker_pids++] = (pid_t)pid;
            break;
        default:
            if (optopt >= O_CLIENTS)
                fprintf(stderr,
                        "yard-bench: option '%s' needs a value "
                        "(see --help)\n",
                        argv[optind - 1]);
            else
                fprintf(stderr,
                        "yard-bench: unknown option '%s' (see "
                        "--help)\n",
                        argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "yard-bench: unexpected argument '%s' (see --help)\n",
                argv[optind]);
        return 2;
    }
    if (cfg->load_only && full_flag) {
        fprintf(stderr,
                "yard-bench: %s is not a flag of --load-only (see --help)\n",
                full_flag);
        return 2;
    }
    if (!cfg->load_only && load_flag) {
        fprintf(stderr, "yard-bench: %s needs --load-only (see --help)\n",
                load_flag);
        return 2;
    }
    if (cfg->load_only && (!cfg->broker[0] || !cfg->service[0])) {
        fprintf(stderr, "yard-bench: --load-only needs --broker and --service "
                        "(see --help)\n");
        return 2;
    }
    return -1;
}

static double s_ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

void bench_result_init(bench_result_t *r)
{
    memset(r, 0, sizeof(*r));
    yard_hist_reset(&r->hist);
}

void bench_result_add(bench_result_t *r, const yard_hist_t *hist,
                      uint64_t completed, uint64_t errors, double seconds)
{
    yard_hist_merge(&r->hist, hist);
    r->completed += completed;
    r->errors += errors;
    r->seconds += seconds;
    r->tasks_per_s = r->seconds > 0 ? (double)r->completed / r->seconds : 0;
    r->p50_us = yard_hist_percentile(&r->hist, 50);
    r->p99_us = yard_hist_percentile(&r->hist, 99);
    r->max_us = r->hist.count ? r->hist.max : 0;
    r->mean_us = yard_hist_mean(&r->hist);
}

void bench_result_add_cpu(bench_result_t *r, const bench_cpu_t *a,
                          const bench_cpu_t *b, uint64_t tasks)
{
    r->cpu_clients_us += b->clients_us - a->clients_us;
    r->cpu_server_us += b->server_us - a->server_us;
    r->cpu_workers_us += b->workers_us - a->workers_us;
    r->cpu_system_us += b->system_us - a->system_us;
    r->cpu_tasks += tasks;
}

#define S_MAX_ROUNDS 100

typedef struct {
    bench_result_t yard, proxy;         /*  throughput phase, all rounds */
    bench_result_t yard_lat, proxy_lat; /*  1x1 latency phase            */
    double round_yard[S_MAX_ROUNDS];    /*  tasks/s of each round        */
    double round_proxy[S_MAX_ROUNDS];
    uint32_t rounds;
    bool have_breaker;
    bench_result_t brk_on, brk_off; /*  breaker phase: the echo load   */
    bench_result_t brk_open;        /*  and rejections by an open one   */
    bench_result_t brk_open_lat;    /*  ... 1x1: one hop, the broker only */
    bool have_events;
    bench_events_result_t ev_yard[2], ev_proxy[2]; /*  1 and 4 subscribers */
    double ev_round_yard[2][S_MAX_ROUNDS];         /*  events/s per round  */
    double ev_round_proxy[2][S_MAX_ROUNDS];
    bool have_cache;
    const char *cache_skipped; /*  why the cache phase did not run       */
    bench_result_t c_l1, c_l2, c_redis;   /*  clients x window              */
    bench_result_t c_l1_lat, c_redis_lat; /*  1 client, 1 in flight      */
    /*  What a cache policy costs a task it cannot serve: echo without a
        policy vs echo with one, every task a miss (lookup, run, store). */
    bench_result_t c_plain, c_miss, c_plain_lat, c_miss_lat;
    double c_round_l1[S_MAX_ROUNDS]; /*  per s of each round          */
    double c_round_l2[S_MAX_ROUNDS];
    double c_round_redis[S_MAX_ROUNDS];
    bool have_memory;
    bench_memory_t memory;
    bool have_callgrind;
    bench_callgrind_t callgrind;
    long cpus;
} s_report_t;

/*  CPU microseconds per task of one role. */
static double s_per_task(int64_t us, const bench_result_t *r)
{
    return r->cpu_tasks ? (double)us / (double)r->cpu_tasks : 0;
}

static json_t *s_cpu_json(const bench_result_t *r)
{
    return json_pack(
        "{s:f, s:f, s:f, s:f, s:f}", "clients",
        s_per_task(r->cpu_clients_us, r), "server",
        s_per_task(r->cpu_server_us, r), "workers",
        s_per_task(r->cpu_workers_us, r), "total",
        s_per_task(r->cpu_clients_us + r->cpu_server_us + r->cpu_workers_us, r),
        "system", s_per_task(r->cpu_system_us, r));
}

static json_t *s_side_json(const bench_result_t *r)
{
    json_t *o =
        json_pack("{s:f, s:I, s:I, s:I, s:f, s:I}", "tasks_per_s",
                  r->tasks_per_s, "p50_us", (json_int_t)r->p50_us, "p99_us",
                  (json_int_t)r->p99_us, "max_us", (json_int_t)r->max_us,
                  "mean_us", r->mean_us, "completed", (json_int_t)r->completed);
    if (o)
        json_object_set_new(o, "cpu_us_per_task", s_cpu_json(r));
    return o;
}

/*  The "breaker" object: on and off as the throughput sides are, the
    open breaker's rejections, and the two ratios. */
static json_t *s_breaker_json(const s_report_t *rep)
{
    const bench_result_t *on = &rep->brk_on, *off = &rep->brk_off;
    const bench_result_t *open = &rep->brk_open;
    json_t *o =
        json_pack("{s:I, s:I, s:I, s:f, s:I}", "p50_us",
                  (json_int_t)open->p50_us, "p99_us", (json_int_t)open->p99_us,
                  "max_us", (json_int_t)open->max_us, "rejections_per_s",
                  open->tasks_per_s, "rejections", (json_int_t)open->completed);
    if (o) {
        json_object_set_new(o, "cpu_us_per_task", s_cpu_json(open));
        json_object_set_new(o, "p50_us_1x1",
                            json_integer((json_int_t)rep->brk_open_lat.p50_us));
        json_object_set_new(o, "p99_us_1x1",
                            json_integer((json_int_t)rep->brk_open_lat.p99_us));
    }
    return json_pack("{s:o, s:o, s:f, s:o, s:f}", "on", s_side_json(on), "off",
                     s_side_json(off), "ratio_on_off",
                     s_ratio(on->tasks_per_s, off->tasks_per_s), "open", o,
                     "ratio_rejections_to_tasks",
                     s_ratio(open->tasks_per_s, on->tasks_per_s));
}

/*  The "cache" object: the two Yard sides as the throughput sides are,
    the plain Redis GET (ops_per_s for tasks_per_s), the ratios to Redis,
    and the 1x1 latencies of an L1 hit and a Redis GET. */
static json_t *s_cache_json(const bench_config_t *cfg, const s_report_t *rep)
{
    const bench_result_t *l1 = &rep->c_l1, *l2 = &rep->c_l2;
    const bench_result_t *rd = &rep->c_redis;
    json_t *redis = json_pack("{s:f, s:I, s:I, s:I, s:f, s:I}", "ops_per_s",
                              rd->tasks_per_s, "p50_us", (json_int_t)rd->p50_us,
                              "p99_us", (json_int_t)rd->p99_us, "max_us",
                              (json_int_t)rd->max_us, "mean_us", rd->mean_us,
                              "completed", (json_int_t)rd->completed);
    if (redis)
        json_object_set_new(redis, "cpu_us_per_op", s_cpu_json(rd));
    json_t *rounds = json_array();
    for (uint32_t i = 0; i < rep->rounds; i++)
        json_array_append_new(
            rounds,
            json_real(s_ratio(rep->c_round_l1[i], rep->c_round_redis[i])));
    const bench_result_t *a = &rep->c_l1_lat, *b = &rep->c_redis_lat;
    const bench_result_t *pl = &rep->c_plain, *mi = &rep->c_miss;
    json_t *lookup =
        json_pack("{s:o, s:o, s:f, s:I, s:I, s:f}", "plain", s_side_json(pl),
                  "miss", s_side_json(mi), "ratio_miss_plain",
                  s_ratio(mi->tasks_per_s, pl->tasks_per_s), "plain_p50_us_1x1",
                  (json_int_t)rep->c_plain_lat.p50_us, "miss_p50_us_1x1",
                  (json_int_t)rep->c_miss_lat.p50_us, "ratio_1x1",
                  s_ratio((double)rep->c_miss_lat.p50_us,
                          (double)rep->c_plain_lat.p50_us));
    return json_pack(
        "{s:o, s:o, s:o, s:f, s:f, s:o, s:{s:I, s:I, s:I, s:I, s:f}, s:I, "
        "s:I, s:o}",
        "l1", s_side_json(l1), "l2", s_side_json(l2), "redis", redis,
        "ratio_l1_redis", s_ratio(l1->tasks_per_s, rd->tasks_per_s),
        "ratio_l2_redis", s_ratio(l2->tasks_per_s, rd->tasks_per_s),
        "ratio_rounds", rounds, "latency_1x1", "l1_p50_us",
        (json_int_t)a->p50_us, "l1_p99_us", (json_int_t)a->p99_us,
        "redis_p50_us", (json_int_t)b->p50_us, "redis_p99_us",
        (json_int_t)b->p99_us, "ratio",
        s_ratio((double)a->p50_us, (double)b->p50_us), "value_bytes",
        (json_int_t)cfg->payload, "caches", (json_int_t)cfg->workers,
        "lookup_cost", lookup);
}

/*  Subscribers of the two event loads. */
static const uint32_t s_ev_subs[2] = {1, 4};

static double s_per_event(int64_t us, const bench_events_result_t *r)
{
    return r->cpu_events ? (double)us / (double)r->cpu_events : 0;
}

static json_t *s_ev_side_json(const bench_events_result_t *r)
{
    return json_pack("{s:f, s:f, s:I, s:I, s:f, s:I, s:I, s:I, s:{s:f, s:f}}",
                     "events_per_s", r->events_per_s, "deliveries_per_s",
                     r->deliveries_per_s, "p50_us", (json_int_t)r->p50_us,
                     "p99_us", (json_int_t)r->p99_us, "published_per_s",
                     r->published_per_s, "max_us", (json_int_t)r->max_us,
                     "events", (json_int_t)r->events, "deliveries",
                     (json_int_t)r->deliveries, "cpu_us_per_event", "clients",
                     s_per_event(r->cpu_clients_us, r), "server",
                     s_per_event(r->cpu_server_us, r));
}

/*  The "events" object: per subscriber count, both sides and the ratio
    of events/s (yard / proxy), overall and per round. */
static json_t *s_events_json(const s_report_t *rep)
{
    json_t *o = json_object();
    for (int c = 0; c < 2; c++) {
        const bench_events_result_t *y = &rep->ev_yard[c];
        const bench_events_result_t *p = &rep->ev_proxy[c];
        json_t *rounds = json_array();
        for (uint32_t i = 0; i < rep->rounds; i++)
            json_array_append_new(
                rounds, json_real(s_ratio(rep->ev_round_yard[c][i],
                                          rep->ev_round_proxy[c][i])));
        char key[16];
        snprintf(key, sizeof(key), "%u", s_ev_subs[c]);
        json_object_set_new(
            o, key,
            json_pack("{s:o, s:o, s:f, s:f, s:o}", "yard", s_ev_side_json(y),
                      "proxy", s_ev_side_json(p), "ratio",
                      s_ratio(y->events_per_s, p->events_per_s), "ratio_p50",
                      s_ratio((double)y->p50_us, (double)p->p50_us),
                      "ratio_rounds", rounds));
    }
    return o;
}

static void s_print_cpu(const char *name, const bench_result_t *r)
{
    int64_t total = r->cpu_clients_us + r->cpu_server_us + r->cpu_workers_us;
    printf("  %-18s %8.1f  %8.1f  %8.1f  %8.1f  %8.0f%%\n", name,
           s_per_task(r->cpu_clients_us, r), s_per_task(r->cpu_server_us, r),
           s_per_task(r->cpu_workers_us, r), s_per_task(total, r),
           total > 0 ? 100.0 * (double)r->cpu_system_us / (double)total : 0);
}

static int s_print_json(const bench_config_t *cfg, const s_report_t *rep)
{
    json_t *root = json_object();
    json_object_set_new(
        root, "config",
        json_pack("{s:I, s:I, s:I, s:I, s:f, s:I, s:f, s:I, s:I, s:I, s:I}",
                  "clients", (json_int_t)cfg->clients, "window",
                  (json_int_t)cfg->window, "workers", (json_int_t)cfg->workers,
                  "payload", (json_int_t)cfg->payload, "duration_s",
                  cfg->duration_s, "rounds", (json_int_t)cfg->rounds,
                  "warmup_s", BENCH_WARMUP_US / 1e6, "mem_tasks",
                  (json_int_t)(cfg->memory ? cfg->mem_tasks : 0),
                  "callgrind_tasks",
                  (json_int_t)(rep->have_callgrind ? cfg->callgrind_tasks : 0),
                  "cpus", (json_int_t)rep->cpus, "event_window",
                  (json_int_t)(rep->have_events ? cfg->event_window : 0)));
    json_object_set_new(root, "yard", s_side_json(&rep->yard));
    json_object_set_new(root, "proxy", s_side_json(&rep->proxy));
    json_t *rounds = json_array();
    for (uint32_t i = 0; i < rep->rounds; i++)
        json_array_append_new(rounds, json_real(s_ratio(rep->round_yard[i],
                                                        rep->round_proxy[i])));
    json_object_set_new(
        root, "ratio",
        json_pack("{s:f, s:f, s:f, s:o}", "throughput",
                  s_ratio(rep->yard.tasks_per_s, rep->proxy.tasks_per_s), "p50",
                  s_ratio(rep->yard.p50_us, rep->proxy.p50_us), "p99",
                  s_ratio(rep->yard.p99_us, rep->proxy.p99_us),
                  "throughput_rounds", rounds));
    json_object_set_new(
        root, "latency",
        json_pack("{s:{s:I, s:I}, s:{s:I, s:I}, s:f}", "yard", "p50_us",
                  (json_int_t)rep->yard_lat.p50_us, "p99_us",
                  (json_int_t)rep->yard_lat.p99_us, "proxy", "p50_us",
                  (json_int_t)rep->proxy_lat.p50_us, "p99_us",
                  (json_int_t)rep->proxy_lat.p99_us, "ratio_p50",
                  s_ratio(rep->yard_lat.p50_us, rep->proxy_lat.p50_us)));
    json_object_set_new(root, "events",
                        rep->have_events ? s_events_json(rep) : json_null());
    json_object_set_new(root, "breaker",
                        rep->have_breaker ? s_breaker_json(rep) : json_null());
    json_object_set_new(root, "cache",
                        rep->have_cache ? s_cache_json(cfg, rep) : json_null());
    if (rep->have_memory)
        json_object_set_new(
            root, "memory",
            json_pack("{s:I, s:f, s:I, s:I, s:I}", "tasks",
                      (json_int_t)rep->memory.tasks, "bytes_per_task",
                      rep->memory.bytes_per_task, "rss_before",
                      (json_int_t)rep->memory.rss_before, "rss_after",
                      (json_int_t)rep->memory.rss_after, "broker_tasks",
                      (json_int_t)rep->memory.broker_tasks));
    else
        json_object_set_new(root, "memory", json_null());
    if (rep->have_callgrind)
        json_object_set_new(
            root, "callgrind",
            json_pack("{s:f, s:I, s:I, s:I}", "instructions_per_task",
                      rep->callgrind.per_task, "tasks",
                      (json_int_t)rep->callgrind.tasks, "instructions_base",
                      (json_int_t)rep->callgrind.instr_base,
                      "instructions_with_tasks",
                      (json_int_t)rep->callgrind.instr_tasks));
    else
        json_object_set_new(root, "callgrind", json_null());
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        return -1;
    puts(text);
    free(text);
    return 0;
}

static void s_print_breaker_row(const char *name, double rate,
                                const bench_result_t *r, const char *tail)
{
    printf("  %-22s%10.0f  %8llu  %8llu  %8.1f%s\n", name, rate,
           (unsigned long long)r->p50_us, (unsigned long long)r->p99_us,
           s_per_task(r->cpu_server_us, r), tail);
}

static void s_print_breaker(const s_report_t *rep)
{
    const bench_result_t *on = &rep->brk_on, *off = &rep->brk_off;
    const bench_result_t *open = &rep->brk_open;
    printf("breaker                      per s    p50 us    p99 us "
           "broker us\n");
    s_print_breaker_row("on: tasks", on->tasks_per_s, on, "");
    s_print_breaker_row("off: tasks", off->tasks_per_s, off, "");
    printf("  on / off              %9.2fx %8.2fx %8.2fx %8.2fx\n",
           s_ratio(on->tasks_per_s, off->tasks_per_s),
           s_ratio(on->p50_us, off->p50_us), s_ratio(on->p99_us, off->p99_us),
           s_ratio(s_per_task(on->cpu_server_us, on),
                   s_per_task(off->cpu_server_us, off)));
    char tail[32];
    snprintf(tail, sizeof(tail), "  (%.2fx on)",
             s_ratio(open->tasks_per_s, on->tasks_per_s));
    s_print_breaker_row("open: rejections", open->tasks_per_s, open, tail);
    printf(
        "  open, 1 client x 1 in flight: p50 %llu us, p99 %llu us (one hop)\n",
        (unsigned long long)rep->brk_open_lat.p50_us,
        (unsigned long long)rep->brk_open_lat.p99_us);
    printf("  (the closed loop above, against fresh brokers taking turns: on:"
           " default\n   settings; off: --breaker enabled=false; open: a "
           "tripped breaker answers\n   every task circuit_open; broker us: "
           "yard-broker CPU per reply)\n\n");
}

static const char *s_verdict(bool ok)
{
    return ok ? "met" : "MISSED";
}

static void s_print_cache_row(const char *name, const bench_result_t *r)
{
    printf("  %-22s%10.0f  %8llu  %8llu\n", name, r->tasks_per_s,
           (unsigned long long)r->p50_us, (unsigned long long)r->p99_us);
}

static void s_print_cache(const bench_config_t *cfg, const s_report_t *rep)
{
    const bench_result_t *l1 = &rep->c_l1, *l2 = &rep->c_l2;
    const bench_result_t *rd = &rep->c_redis;
    const bench_result_t *a = &rep->c_l1_lat, *b = &rep->c_redis_lat;
    printf("cache (get of a %u B value; %u clients x %u in flight; %u "
           "yard-cache per broker)\n",
           cfg->payload, cfg->clients, cfg->window, cfg->workers);
    printf("                             per s    p50 us    p99 us\n");
    s_print_cache_row("yard, L1 hit", l1);
    s_print_cache_row("yard, L2 hit (--no-l1)", l2);
    s_print_cache_row("redis GET (floor)", rd);
    printf("  L1 / redis            %9.2fx %8.2fx %8.2fx\n",
           s_ratio(l1->tasks_per_s, rd->tasks_per_s),
           s_ratio(l1->p50_us, rd->p50_us), s_ratio(l1->p99_us, rd->p99_us));
    printf("  L2 / redis            %9.2fx %8.2fx %8.2fx\n",
           s_ratio(l2->tasks_per_s, rd->tasks_per_s),
           s_ratio(l2->p50_us, rd->p50_us), s_ratio(l2->p99_us, rd->p99_us));
    printf("  per round, L1 / redis:");
    for (uint32_t i = 0; i < rep->rounds; i++)
        printf(" %.2fx", s_ratio(rep->c_round_l1[i], rep->c_round_redis[i]));
    printf("\n");
    printf("  CPU per get, us      clients    server   workers     total    "
           "kernel\n");
    s_print_cpu("yard, L1 hit", l1);
    s_print_cpu("yard, L2 hit", l2);
    s_print_cpu("redis GET", rd);
    printf("  latency (1 client, 1 in flight)  p50 us    p99 us\n");
    printf("  yard, L1 hit                 %8llu  %8llu\n",
           (unsigned long long)a->p50_us, (unsigned long long)a->p99_us);
    printf("  redis GET                    %8llu  %8llu\n",
           (unsigned long long)b->p50_us, (unsigned long long)b->p99_us);
    printf("  L1 / redis                   %7.2fx %8.2fx\n",
           s_ratio(a->p50_us, b->p50_us), s_ratio(a->p99_us, b->p99_us));
    printf("  (for scale, 1x1 p50 of an echo above: %llu us through "
           "yard-broker,\n   %llu us through the zmq proxy)\n",
           (unsigned long long)rep->yard_lat.p50_us,
           (unsigned long long)rep->proxy_lat.p50_us);
    if (rep->have_breaker)
        printf("  (one hop, client -> yard-broker -> client, an open breaker's"
               "\n   answer: %llu us; a Redis GET is one hop with no "
               "thread hand-off)\n",
               (unsigned long long)rep->brk_open_lat.p50_us);
    const bench_result_t *pl = &rep->c_plain, *mi = &rep->c_miss;
    printf("  what a cache policy adds to a task it cannot serve (every key "
           "new:\n   look up, miss, run, store)\n");
    printf("                             per s    p50 us    p99 us  1x1 p50\n");
    printf("  %-22s%10.0f  %8llu  %8llu  %7llu\n", "echo, no policy",
           pl->tasks_per_s, (unsigned long long)pl->p50_us,
           (unsigned long long)pl->p99_us,
           (unsigned long long)rep->c_plain_lat.p50_us);
    printf("  %-22s%10.0f  %8llu  %8llu  %7llu\n", "echo, cache miss",
           mi->tasks_per_s, (unsigned long long)mi->p50_us,
           (unsigned long long)mi->p99_us,
           (unsigned long long)rep->c_miss_lat.p50_us);
    printf("  miss / plain          %9.2fx %8.2fx %8.2fx %7.2fx\n",
           s_ratio(mi->tasks_per_s, pl->tasks_per_s),
           s_ratio(mi->p50_us, pl->p50_us), s_ratio(mi->p99_us, pl->p99_us),
           s_ratio(rep->c_miss_lat.p50_us, rep->c_plain_lat.p50_us));
    printf("  CPU per task, us     clients    server   workers     total    "
           "kernel\n");
    s_print_cpu("echo, no policy", pl);
    s_print_cpu("echo, cache miss", mi);
    printf("  (yard: C clients -> yard-broker -> yard-cache, answers checked "
           "hit, value\n   and tier; L1: default tiers, L2: --no-l1, every "
           "get a Redis GET; redis:\n   hiredis, each client pipelining its "
           "GETs; server: yard-broker /\n   redis-server, workers: "
           "yard-cache)\n\n");
}

static void s_print_ev_row(const char *label, const char *name,
                           const bench_events_result_t *r)
{
    printf("  %-8s%-12s%10.0f  %12.0f  %8llu  %8llu  %9.2f\n", label, name,
           r->events_per_s, r->deliveries_per_s, (unsigned long long)r->p50_us,
           (unsigned long long)r->p99_us, s_per_event(r->cpu_server_us, r));
}

static void s_print_events(const bench_config_t *cfg, const s_report_t *rep)
{
    printf("events (1 publisher, %d B payloads, at most %u in flight per "
           "subscriber)\n",
           BENCH_EVENT_PAYLOAD, cfg->event_window);
    printf("                        events/s  deliveries/s    p50 us    p99 "
           "us  server us\n");
    for (int c = 0; c < 2; c++) {
        const bench_events_result_t *y = &rep->ev_yard[c];
        const bench_events_result_t *p = &rep->ev_proxy[c];
        char label[16];
        snprintf(label, sizeof(label), "%u sub%s", s_ev_subs[c],
                 s_ev_subs[c] > 1 ? "s" : "");
        s_print_ev_row(label, "yard", y);
        s_print_ev_row("", "zmq proxy", p);
        printf("  %-20s%9.2fx  %12s  %7.2fx  %7.2fx  %8.2fx\n", "yard / proxy",
               s_ratio(y->events_per_s, p->events_per_s), "",
               s_ratio((double)y->p50_us, (double)p->p50_us),
               s_ratio((double)y->p99_us, (double)p->p99_us),
               s_ratio(s_per_event(y->cpu_server_us, y),
                       s_per_event(p->cpu_server_us, p)));
        printf("  per round:          ");
        for (uint32_t i = 0; i < rep->rounds; i++)
            printf(" %.2fx", s_ratio(rep->ev_round_yard[c][i],
                                     rep->ev_round_proxy[c][i]));
        printf("\n");
    }
    printf("  (events/s: events every subscriber took; Yard: %d events per "
           "PUBLISH;\n   proxy: zmq_proxy(XSUB, XPUB), one [topic][payload] "
           "message per event;\n   every subscriber took every event, in "
           "order; latency: send stamp to\n   the subscriber's decode; "
           "server us: broker / proxy CPU per event)\n\n",
           BENCH_EVENT_BATCH);
}

static void s_print_text(const bench_config_t *cfg, const s_report_t *rep)
{
    const bench_result_t *y = &rep->yard, *p = &rep->proxy;
    double rt = s_ratio(y->tasks_per_s, p->tasks_per_s);
    double rl = s_ratio(rep->yard_lat.p50_us, rep->proxy_lat.p50_us);
    printf("yard-bench %s: %u clients x %u in flight, %u echo workers, "
           "%u B payloads;\n"
           "  %.1f s measured per side and phase in %u alternating rounds "
           "(each after\n  a %.1f s warm-up); %ld CPUs\n\n",
           YARD_VERSION_STRING, cfg->clients, cfg->window, cfg->workers,
           cfg->payload, cfg->duration_s, cfg->rounds, BENCH_WARMUP_US / 1e6,
           rep->cpus);
    printf("throughput (closed loop)   tasks/s    p50 us    p99 us\n");
    printf("  yard                  %10.0f  %8llu  %8llu\n", y->tasks_per_s,
           (unsigned long long)y->p50_us, (unsigned long long)y->p99_us);
    printf("  zmq proxy (floor)     %10.0f  %8llu  %8llu\n", p->tasks_per_s,
           (unsigned long long)p->p50_us, (unsigned long long)p->p99_us);
    printf("  yard / proxy          %9.2fx %8.2fx %8.2fx\n", rt,
           s_ratio(y->p50_us, p->p50_us), s_ratio(y->p99_us, p->p99_us));
    printf("  per round:           ");
    for (uint32_t i = 0; i < rep->rounds; i++)
        printf(" %.2fx", s_ratio(rep->round_yard[i], rep->round_proxy[i]));
    printf("\n\n");
    printf("CPU per task, us    clients    server   workers     total    "
           "kernel\n");
    s_print_cpu("yard", y);
    s_print_cpu("zmq proxy", p);
    printf("  (clients: this process; server: yard-broker / zmq_proxy; "
           "kernel: share\n   of the total spent in system calls)\n\n");
    printf("latency (1 client, 1 in flight)   p50 us    p99 us\n");
    printf("  yard                          %8llu  %8llu\n",
           (unsigned long long)rep->yard_lat.p50_us,
           (unsigned long long)rep->yard_lat.p99_us);
    printf("  zmq proxy (floor)             %8llu  %8llu\n",
           (unsigned long long)rep->proxy_lat.p50_us,
           (unsigned long long)rep->proxy_lat.p99_us);
    printf("  yard / proxy                  %7.2fx %8.2fx\n\n", rl,
           s_ratio(rep->yard_lat.p99_us, rep->proxy_lat.p99_us));
    if (rep->have_events)
        s_print_events(cfg, rep);
    else
        printf("events: skipped\n\n");
    if (rep->have_breaker)
        s_print_breaker(rep);
    else
        printf("breaker: skipped\n\n");
    if (rep->have_cache)
        s_print_cache(cfg, rep);
    else
        printf("cache: skipped%s%s%s\n\n", rep->cache_skipped ? " (" : "",
               rep->cache_skipped ? rep->cache_skipped : "",
               rep->cache_skipped ? ")" : "");
    if (rep->have_memory) {
        const bench_memory_t *m = &rep->memory;
        printf("memory (%llu tasks of %u B queued, no workers; %.1f s)\n"
               "  broker RSS %.1f MiB -> %.1f MiB: %.0f bytes per queued "
               "task\n\n",
               (unsigned long long)m->tasks, cfg->payload, m->seconds,
               m->rss_before / 1048576.0, m->rss_after / 1048576.0,
               m->bytes_per_task);
    } else {
        printf("memory: skipped\n\n");
    }
    if (rep->have_callgrind) {
        const bench_callgrind_t *c = &rep->callgrind;
        printf("broker CPU (callgrind; %llu tasks, 1 client x 16, 1 worker)\n"
               "  %.0f instructions per task (I_N %llu - I_0 %llu)\n\n",
               (unsigned long long)c->tasks, c->per_task,
               (unsigned long long)c->instr_tasks,
               (unsigned long long)c->instr_base);
    } else {
        printf("broker CPU (callgrind): skipped\n\n");
    }
    printf("targets: throughput >= %.1fx proxy: %s (%.2fx); "
           "1x1 p50 <= %.1fx proxy: %s (%.2fx)\n",
           S_THROUGHPUT_TARGET, s_verdict(rt >= S_THROUGHPUT_TARGET), rt,
           S_LATENCY_TARGET, s_verdict(rl <= S_LATENCY_TARGET), rl);
    if (rep->have_events) {
        double e1 = s_ratio(rep->ev_yard[0].events_per_s,
                            rep->ev_proxy[0].events_per_s);
        double e4 = s_ratio(rep->ev_yard[1].events_per_s,
                            rep->ev_proxy[1].events_per_s);
        printf("         events >= %.1fx proxy: 1 sub: %s (%.2fx); 4 subs: %s "
               "(%.2fx)\n",
               S_EVENTS_TARGET, s_verdict(e1 >= S_EVENTS_TARGET), e1,
               s_verdict(e4 >= S_EVENTS_TARGET), e4);
    }
    if (rep->have_cache) {
        double rc = s_ratio(rep->c_l1_lat.p50_us, rep->c_redis_lat.p50_us);
        printf("         cache: 1x1 p50 of an L1 hit <= %.1fx a Redis GET: %s "
               "(%.2fx)\n",
               S_CACHE_TARGET, s_verdict(rc <= S_CACHE_TARGET), rc);
    }
}

/*  Hard bound on the whole run: generous per phase; a run that passes it
    is broken, and the SIGALRM handler kills the children. */
static unsigned s_budget(const bench_config_t *cfg, bool callgrind)
{
    /*  Per load: warm-up, slack, and the drain bound, for every slice. */
    double per_slice = BENCH_WARMUP_US / 1e6 + BENCH_DRAIN_MS / 1e3 + 2;
    double s = 60 + 4 * (cfg->duration_s + cfg->rounds * per_slice);
    if (cfg->events) /*  two loads, two sides each, and a broker */
        s += 30 + 4 * (cfg->duration_s + cfg->rounds * per_slice);
    if (cfg->breaker) /*  three sides, and three brokers to start */
        s += 30 + 3 * (cfg->duration_s + cfg->rounds * per_slice);
    if (cfg->cache) /*  3 + 2 sides; redis, two brokers, settling */
        s += 60 + 5 * (cfg->duration_s + cfg->rounds * per_slice);
    if (cfg->memory)
        s += 120;
    if (callgrind)
        s += 300 + cfg->callgrind_tasks / 200.0;
    return (unsigned)s;
}

/*  One side of a timed phase: a Yard stack (yard) or the proxy, what its
    replies must be, and where its figures go. */
typedef struct {
    const char *name;
    bench_yard_t *yard;             /*  NULL: the proxy                       */
    bench_proxy_t *proxy;           /*  NULL: the Yard stack                  */
    yard_status_t expect;           /*  YARD_OK (echo) or YARD_CIRCUIT_OPEN   */
    bench_result_t *result;         /*  every round adds to it                */
    double *round;                  /*  rate of each round, or NULL           */
    const bench_redis_t *redis;     /*  set: plain Redis GETs of get->key */
    const bench_cache_get_t *get;   /*  set: yard.cache gets (Yard side)  */
    const yard_submit_opts_t *opts; /*  set: submit options (Yard side) */
} s_side_t;

/*  One phase: the sides take turns, `rounds` slices each, rotating which
    goes first so none always runs on a machine another just warmed (or
    loaded). With two sides the order alternates. */
static int s_phase(const bench_config_t *cfg, const bench_load_t *load,
                   const s_side_t *sides, uint32_t nsides)
{
    for (uint32_t i = 0; i < cfg->rounds; i++) {
        for (uint32_t k = 0; k < nsides; k++) {
            const s_side_t *side = &sides[(i + k) % nsides];
            bench_result_t *r = side->result;
            uint64_t before = r->completed;
            double secs = r->seconds;
            bench_load_t slice = *load;
            slice.duration_us = load->duration_us / cfg->rounds;
            slice.expect = side->expect;
            if (side->opts)
                slice.opts = side->opts;
            if (side->get) {
                slice.request = side->get->request;
                slice.request_len = side->get->request_len;
                slice.check = bench_cache_check;
                slice.check_arg = side->get;
            }
            int rc = side->redis
                         ? bench_redis_load(side->redis, &slice, side->get, r)
                     : side->yard ? bench_yard_load(side->yard, &slice, r)
                                  : bench_proxy_load(side->proxy, &slice, r);
            if (rc != 0)
                return -1;
            double tps = r->seconds > secs ? (double)(r->completed - before) /
                                                 (r->seconds - secs)
                                           : 0;
            if (side->round)
                side->round[i] = tps;
            bench_note("  round %u %s: %.0f/s", i + 1, side->name, tps);
        }
    }
    return 0;
}

/*  The event phase, with a broker of its own (fresh, no workers): one
    publisher to 1 and then to 4 subscribers, Yard and the XSUB/XPUB
    proxy taking turns in R rounds, who goes first alternating. */
static int s_events_phase(const bench_config_t *cfg, const bench_xproxy_t *xp,
                          s_report_t *rep)
{
    bench_yard_t y;
    memset(&y, 0, sizeof(y));
    bench_broker_opts_t o = {0, -1, NULL, NULL, S_READY_MS, NULL};
    int rc = -1;
    if (bench_yard_start_broker(&y, &o) != 0)
        goto stop;
    for (int c = 0; c < 2; c++) {
        bench_events_load_t load = {
            s_ev_subs[c], cfg->event_window, BENCH_WARMUP_US,
            (int64_t)(cfg->duration_s * 1e6) / cfg->rounds};
        bench_note("events: 1 publisher -> %u subscriber(s)", s_ev_subs[c]);
        for (uint32_t i = 0; i < cfg->rounds; i++) {
            for (uint32_t k = 0; k < 2; k++) {
                bool yard = (i + k) % 2 == 0;
                bench_events_result_t *r =
                    yard ? &rep->ev_yard[c] : &rep->ev_proxy[c];
                uint64_t before = r->events;
                double secs = r->seconds;
                if ((yard ? bench_events_yard(&y, &load, r)
                          : bench_events_proxy(xp, &load, r)) != 0)
                    goto stop;
                double eps = r->seconds > secs ? (double)(r->events - before) /
                                                     (r->seconds - secs)
                                               : 0;
                (yard ? rep->ev_round_yard : rep->ev_round_proxy)[c][i] = eps;
                bench_note("  round %u %s: %.0f events/s", i + 1,
                           yard ? "yard" : "proxy", eps);
            }
        }
    }
    rc = 0;
stop:
    bench_yard_stop(&y, 10000);
    return rc;
}

/*  The breaker phase, with brokers of its own, all fresh so none carries
    another's history: "on" (default breaker settings) and "off"
    (--breaker enabled=false), each with W echo workers, and "open",
    whose service's breaker one failed task opened for 10 minutes (its
    fail worker then stopped). The same load runs against all three. */
static int s_breaker_phase(const bench_config_t *cfg, const bench_load_t *load,
                           const bench_load_t *one, s_report_t *rep)
{
    static const char *const off_specs[] = {"enabled=false", NULL};
    static const char *const trip_specs[] = {"fail_threshold=1",
                                             "base_timeout_ms=600000",
                                             "max_timeout_ms=600000", NULL};
    bench_yard_t on, off, open;
    memset(&on, 0, sizeof(on));
    memset(&off, 0, sizeof(off));
    memset(&open, 0, sizeof(open));
    bench_broker_opts_t o = {0, -1, NULL, NULL, S_READY_MS, NULL};
    int rc = -1;
    if (bench_yard_start_broker(&on, &o) != 0 ||
        bench_yard_start_workers(&on, "bench-echo", "echo", cfg->workers,
                                 S_READY_MS) != 0)
        goto stop;
    o.breaker = off_specs;
    if (bench_yard_start_broker(&off, &o) != 0 ||
        bench_yard_start_workers(&off, "bench-echo", "echo", cfg->workers,
                                 S_READY_MS) != 0)
        goto stop;
    o.breaker = trip_specs;
    if (bench_yard_start_broker(&open, &o) != 0 ||
        bench_yard_start_workers(&open, "bench-fail", "fail", 1, S_READY_MS) !=
            0 ||
        bench_yard_open_breaker(&open, S_READY_MS) != 0)
        goto stop;
    const s_side_t sides[] = {
        {"breaker on", &on, NULL, YARD_OK, &rep->brk_on, NULL, NULL, NULL,
         NULL},
        {"breaker off", &off, NULL, YARD_OK, &rep->brk_off, NULL, NULL, NULL,
         NULL},
        {"breaker open", &open, NULL, YARD_CIRCUIT_OPEN, &rep->brk_open, NULL,
         NULL, NULL, NULL},
    };
    rc = s_phase(cfg, load, sides, 3);
    /*  And 1x1: a rejection is one hop (client, yard-broker, client), the
        floor of any answer through the broker. */
    const s_side_t hop[] = {{"breaker open 1x1", &open, NULL, YARD_CIRCUIT_OPEN,
                             &rep->brk_open_lat, NULL, NULL, NULL, NULL}};
    if (rc == 0)
        rc = s_phase(cfg, one, hop, 1);
stop:
    bench_yard_stop(&on, 10000);
    bench_yard_stop(&off, 10000);
    bench_yard_stop(&open, 10000);
    return rc;
}

/*  The cache phase, with a redis-server and two brokers of its own:
    "l1", W yard-cache processes with their default tiers (L1 and L2),
    and "l2", W started with --no-l1, so every get is a Redis read. Each
    has its key set (through itself) and settled (every instance answers
    from the tier the load is about); a third key is SET in Redis
    directly for the plain GET. The three loads take turns in R rounds
    (who goes first rotating), then L1 and Redis 1 client x 1 in flight,
    alternating. Every answer is checked; any wrong one fails the run.
    The "l1" instances get --l1-ttl-ms 0: an instance that did not take
    the set copies the entry from L2 with the L1 default TTL (60 s), and
    a long run would see it expire and answer from L2 once. */
static int s_cache_phase(const bench_config_t *cfg, const bench_load_t *load,
                         const bench_load_t *one, s_report_t *rep)
{
    static const char *const l1_flags[] = {"--l1-ttl-ms", "0", NULL};
    static const char *const l2_flags[] = {"--no-l1", NULL};
    bench_redis_t redis;
    bench_yard_t l1, l2, rc_yard;
    memset(&redis, 0, sizeof(redis));
    memset(&l1, 0, sizeof(l1));
    memset(&l2, 0, sizeof(l2));
    memset(&rc_yard, 0, sizeof(rc_yard));
    /*  Every payload carries its own stamp: every key is new, every task
        a miss that is looked up, run and stored. */
    static const yard_cache_opts_t policy = {.ttl_ms = 10000};
    static const yard_submit_opts_t cached = {.cache = &policy};
    /*  Large enough for any payload; not compressible to nothing. */
    uint8_t *value = malloc(cfg->payload);
    bench_cache_get_t *g = calloc(3, sizeof(*g));
    int rc = -1;
    if (!value || !g)
        goto stop;
    for (uint32_t i = 0; i < cfg->payload; i++)
        value[i] = (uint8_t)(i * 131u + 17u);
    if (bench_cache_get_init(&g[0], "bench:l1", value, cfg->payload, "l1") ||
        bench_cache_get_init(&g[1], "bench:l2", value, cfg->payload, "l2") ||
        bench_cache_get_init(&g[2], "bench:redis", value, cfg->payload, ""))
        goto stop;
    if (bench_redis_start(&redis, S_READY_MS) != 0 ||
        bench_cache_start(&l1, &redis, "l1", l1_flags, cfg->workers,
                          S_READY_MS) != 0 ||
        bench_cache_start(&l2, &redis, "l2", l2_flags, cfg->workers,
                          S_READY_MS) != 0)
        goto stop;
    if (bench_cache_prepare(&l1, &g[0], S_CACHE_TTL_MS, S_READY_MS) != 0 ||
        bench_cache_prepare(&l2, &g[1], S_CACHE_TTL_MS, S_READY_MS) != 0 ||
        bench_redis_set(&redis, g[2].key, value, cfg->payload) != 0)
        goto stop;
    bench_note("cache: l1 / l2 / redis, %u x %u", cfg->clients, cfg->window);
    const s_side_t thr[] = {
        {"cache l1", &l1, NULL, YARD_OK, &rep->c_l1, rep->c_round_l1, NULL,
         &g[0], NULL},
        {"cache l2", &l2, NULL, YARD_OK, &rep->c_l2, rep->c_round_l2, NULL,
         &g[1], NULL},
        {"redis", NULL, NULL, YARD_OK, &rep->c_redis, rep->c_round_redis,
         &redis, &g[2], NULL},
    };
    if (s_phase(cfg, load, thr, 3) != 0)
        goto stop;
    bench_note("cache: l1 / redis, 1 x 1");
    const s_side_t lat[] = {
        {"cache l1", &l1, NULL, YARD_OK, &rep->c_l1_lat, NULL, NULL, &g[0],
         NULL},
        {"redis", NULL, NULL, YARD_OK, &rep->c_redis_lat, NULL, &redis, &g[2],
         NULL},
    };
    if (s_phase(cfg, one, lat, 2) != 0)
        goto stop;

    /*  The lookup's cost: a broker with W yard-cache and W echo workers. */
    bench_note("cache: echo with and without a cache policy, %u x %u",
               cfg->clients, cfg->window);
    if (bench_cache_start(&rc_yard, &redis, "rc", NULL, cfg->workers,
                          S_READY_MS) != 0 ||
        bench_yard_start_workers(&rc_yard, "bench-echo", "echo", cfg->workers,
                                 S_READY_MS) != 0)
        goto stop;
    const s_side_t miss[] = {
        {"echo", &rc_yard, NULL, YARD_OK, &rep->c_plain, NULL, NULL, NULL,
         NULL},
        {"echo, cache miss", &rc_yard, NULL, YARD_OK, &rep->c_miss, NULL, NULL,
         NULL, &cached},
    };
    if (s_phase(cfg, load, miss, 2) != 0)
        goto stop;
    const s_side_t miss1[] = {
        {"echo", &rc_yard, NULL, YARD_OK, &rep->c_plain_lat, NULL, NULL, NULL,
         NULL},
        {"echo, cache miss", &rc_yard, NULL, YARD_OK, &rep->c_miss_lat, NULL,
         NULL, NULL, &cached},
    };
    rc = s_phase(cfg, one, miss1, 2);
stop:
    /*  The caches before Redis, so none of them sees it go away. */
    bench_yard_stop(&rc_yard, 10000);
    bench_yard_stop(&l1, 10000);
    bench_yard_stop(&l2, 10000);
    bench_redis_stop(&redis, 5000);
    free(g);
    free(value);
    return rc;
}

int main(int argc, char **argv)
{
    bench_config_t cfg = {
        .clients = 4,
        .window = 16,
        .workers = 2,
        .payload = 64,
        .duration_s = 3,
        .rounds = 3,
        .mem_tasks = 1000000,
        .memory = true,
        .breaker = true,
        .events = true,
        .cache = true,
        .event_window = BENCH_EVENT_WINDOW,
        .callgrind = -1,
        .callgrind_tasks = 20000,
    };
    int status = s_parse(argc, argv, &cfg);
    if (status >= 0)
        return status;
    bench_set_verbose(cfg.verbose);
    if (cfg.load_only)
        return bench_load_only(&cfg);

    char path[PATH_MAX], valgrind[PATH_MAX];
    const char *needed[] = {"yard-broker", "yard-worker"};
    for (size_t i = 0; i < 2; i++) {
        if (!bench_bin_path(needed[i], path, sizeof(path))) {
            fprintf(stderr,
                    "yard-bench: %s is missing (build it: it must "
                    "sit beside yard-bench)\n",
                    path);
            return 1;
        }
    }
    bool have_valgrind = bench_which("valgrind", valgrind, sizeof(valgrind));
    if (cfg.callgrind == 1 && !have_valgrind) {
        fprintf(stderr, "yard-bench: --callgrind needs valgrind on PATH\n");
        return 1;
    }
    bool callgrind = cfg.callgrind == 1 ||
                     (cfg.callgrind == -1 && have_valgrind && !S_SANITIZED);
    /*  On by default, when there is a Redis to measure against. */
    const char *cache_skipped = cfg.cache ? NULL : "--no-cache";
    if (cfg.cache && access(BENCH_REDIS_SERVER, X_OK) != 0)
        cache_skipped = "no " BENCH_REDIS_SERVER;
    else if (cfg.cache && !bench_bin_path("yard-cache", path, sizeof(path)))
        cache_skipped = "yard-cache is not built";
    cfg.cache = cache_skipped == NULL;
    if (bench_proc_init(s_budget(&cfg, callgrind)) != 0)
        return 1;

    /*  Large (histograms): on the heap. */
    s_report_t *rep = calloc(1, sizeof(*rep));
    if (!rep)
        return 1;
    bench_result_init(&rep->yard);
    bench_result_init(&rep->proxy);
    bench_result_init(&rep->yard_lat);
    bench_result_init(&rep->proxy_lat);
    bench_result_init(&rep->brk_on);
    bench_result_init(&rep->brk_off);
    bench_result_init(&rep->brk_open);
    bench_result_init(&rep->brk_open_lat);
    bench_result_init(&rep->c_l1);
    bench_result_init(&rep->c_l2);
    bench_result_init(&rep->c_redis);
    bench_result_init(&rep->c_l1_lat);
    bench_result_init(&rep->c_plain);
    bench_result_init(&rep->c_miss);
    bench_result_init(&rep->c_plain_lat);
    bench_result_init(&rep->c_miss_lat);
    bench_result_init(&rep->c_redis_lat);
    rep->cache_skipped = cache_skipped;
    for (int c = 0; c < 2; c++) {
        bench_events_result_init(&rep->ev_yard[c]);
        bench_events_result_init(&rep->ev_proxy[c]);
    }
    rep->rounds = cfg.rounds;
    rep->cpus = sysconf(_SC_NPROCESSORS_ONLN);
    bench_proxy_t proxy;
    bench_xproxy_t xproxy;
    bench_yard_t yard;
    memset(&proxy, 0, sizeof(proxy));
    memset(&xproxy, 0, sizeof(xproxy));
    memset(&yard, 0, sizeof(yard));
    bench_broker_opts_t bo = {0, -1, NULL, NULL, S_READY_MS, NULL};
    bench_load_t load = {.clients = cfg.clients,
                         .window = cfg.window,
                         .payload = cfg.payload,
                         .warmup_us = BENCH_WARMUP_US,
                         .duration_us = (int64_t)(cfg.duration_s * 1e6),
                         .tasks = 0,
                         .expect = YARD_OK};
    bench_load_t one = load;
    one.clients = 1;
    one.window = 1;
    int rc = 1;

    /*  Both forked proxies before any ZeroMQ context of ours. */
    if (cfg.events && bench_xproxy_start(&xproxy, S_READY_MS) != 0)
        goto fail;
    if (bench_proxy_start(&proxy, cfg.workers, S_READY_MS) != 0)
        goto fail;
    if (bench_yard_start_broker(&yard, &bo) != 0 ||
        bench_yard_start_workers(&yard, "bench-echo", "echo", cfg.workers,
                                 S_READY_MS) != 0)
        goto fail;

    bench_note("throughput: %u x %u", cfg.clients, cfg.window);
    const s_side_t thr[] = {
        {"yard", &yard, NULL, YARD_OK, &rep->yard, rep->round_yard, NULL, NULL,
         NULL},
        {"proxy", NULL, &proxy, YARD_OK, &rep->proxy, rep->round_proxy, NULL,
         NULL, NULL},
    };
    if (s_phase(&cfg, &load, thr, 2) != 0)
        goto fail;
    bench_note("latency: 1 x 1");
    const s_side_t lat[] = {
        {"yard", &yard, NULL, YARD_OK, &rep->yard_lat, NULL, NULL, NULL, NULL},
        {"proxy", NULL, &proxy, YARD_OK, &rep->proxy_lat, NULL, NULL, NULL,
         NULL},
    };
    if (s_phase(&cfg, &one, lat, 2) != 0)
        goto fail;
    bench_proxy_stop(&proxy, 2000);
    bench_yard_stop(&yard, 10000);

    if (cfg.events) {
        bench_note("events: 1 publisher, %u in flight per subscriber",
                   cfg.event_window);
        if (s_events_phase(&cfg, &xproxy, rep) != 0)
            goto fail;
        rep->have_events = true;
    }
    bench_xproxy_stop(&xproxy, 2000);

    if (cfg.breaker) {
        bench_note("breaker: on / off / open, %u x %u", cfg.clients,
                   cfg.window);
        if (s_breaker_phase(&cfg, &load, &one, rep) != 0)
            goto fail;
        rep->have_breaker = true;
    }

    if (cfg.cache) {
        bench_note("cache: redis-server, yard-cache on L1+L2 and on L2");
        if (s_cache_phase(&cfg, &load, &one, rep) != 0)
            goto fail;
        rep->have_cache = true;
    }

    if (cfg.memory) {
        bench_note("memory: %u tasks", cfg.mem_tasks);
        if (bench_memory_run(cfg.mem_tasks, cfg.payload, &rep->memory) != 0)
            goto fail;
        rep->have_memory = true;
    }
    if (callgrind) {
        bench_note("callgrind: %u tasks", cfg.callgrind_tasks);
        if (bench_callgrind_run(valgrind, cfg.callgrind_tasks, cfg.payload,
                                &rep->callgrind) != 0)
            goto fail;
        rep->have_callgrind = true;
    }
    if (cfg.json) {
        if (s_print_json(&cfg, rep) != 0)
            goto fail;
    } else {
        s_print_text(&cfg, rep);
    }
    fflush(stdout);
    rc = 0;
    if (bench_proc_unclean()) {
        /*  The figures stand, but a Yard process crashed, hung or had a
            sanitizer report at exit: that is a defect to look at. */
        fprintf(stderr,
                "yard-bench: %d Yard process(es) did not exit cleanly "
                "(see above)\n",
                bench_proc_unclean());
        rc = 1;
    }
fail:
    bench_proc_stop_all();
    if (rc != 0 && !bench_proc_unclean())
        fprintf(stderr, "yard-bench: failed\n");
    bench_proc_finish(rc != 0 || cfg.keep);
    free(rep);
    return rc;
}
