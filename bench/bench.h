/*  bench.h — yard-bench's internal interface, shared by its files:

        yard_bench.c     main: flags, phase order, the report (text/JSON)
        bench_proc.c     the bench's own child processes: spawn, track,
                         stop by PID, temp dir, hard time bound, CPU time
        bench_yard.c     the Yard stack (broker + workers), tripping a
                         circuit breaker, and the closed-loop load (or the
                         open loop of --load-only --rate) through the C
                         client library
        bench_proxy.c    the floor: plain zmq_proxy ROUTER/DEALER with REP
                         echo workers, and the same closed-loop load
        bench_events.c   the event bus: one publisher, N subscribers,
                         through yard-broker and through a plain
                         zmq_proxy(XSUB, XPUB), with a flow-control window
        bench_cache.c    the cache phase: its own redis-server, brokers
                         with yard-cache, get requests and their check,
                         and the plain Redis GET load through hiredis
        bench_loadonly.c --load-only: the client load alone against a
                         broker started by someone else
        bench_memory.c   broker bytes per queued task
        bench_callgrind.c broker instructions per task under callgrind

    Both load generators stamp every payload with a sequence number and
    the submit time, and measure latency from that stamp to the moment the
    reply is handed to the caller, so Yard and the proxy are timed by the
    same clock at the same points (no trust in either side's bookkeeping).
    A load that expects circuit_open replies (which carry no payload, so
    no stamp), or one that sends a fixed request (a yard.cache get),
    keeps each task's submit time by task id instead: same clock, same
    points. The cache phase's plain Redis GETs are timed alike.
*/
#ifndef YARD_BENCH_H
#define YARD_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "yard_client.h"
#include "yard_hist.h"
#include "yard_proto.h"

/*  Smallest payload: it must hold the stamp (sequence + submit time). */
#define BENCH_STAMP_SIZE 16
#define BENCH_MIN_PAYLOAD BENCH_STAMP_SIZE
#define BENCH_MAX_PAYLOAD (1u << 20)
#define BENCH_MAX_CLIENTS 64
#define BENCH_MAX_WINDOW 256 /*  one submit_batch = one SUBMIT message   */
#define BENCH_MAX_WORKERS 32
#define BENCH_WARMUP_US 500000 /*  load runs this long before counting  */
#define BENCH_DRAIN_MS 5000    /*  bound on collecting late replies     */

/*  Everything a run was asked to do (the "config" object of --json). */
typedef struct {
    uint32_t clients;         /*  load threads, one client/socket each   */
    uint32_t window;          /*  tasks in flight per client             */
    uint32_t workers;         /*  echo workers                           */
    uint32_t payload;         /*  bytes per task                         */
    double duration_s;        /*  measured seconds per side and phase    */
    uint32_t rounds;          /*  Yard/proxy alternations it is split in */
    uint32_t mem_tasks;       /*  tasks queued by the memory phase       */
    bool memory;              /*  run the memory phase                   */
    bool breaker;             /*  run the circuit-breaker phase          */
    bool events;              /*  run the event-bus phase                */
    bool cache;               /*  run the cache phase (if redis-server)  */
    uint32_t event_window;    /*  events in flight per subscriber at most */
    int callgrind;            /*  -1 auto (if valgrind found), 0 off, 1 on */
    uint32_t callgrind_tasks; /*  tasks run under callgrind              */
    bool json;                /*  one JSON object on stdout              */
    bool verbose;             /*  progress on stderr                     */
    bool keep;                /*  keep the temp dir (logs, callgrind)    */
    /*  --load-only (bench_loadonly.c): the C client load alone, against a
        broker and workers someone else started; nothing is spawned. */
    bool load_only;
    char broker[64];  /*  the broker's tasks endpoint              */
    char service[64]; /*  the service the load submits to          */
    double rate;      /*  tasks/s offered (open loop); 0: closed    */
    pid_t broker_pid; /*  for CPU figures (0: not reported)         */
    pid_t worker_pids[BENCH_MAX_WORKERS]; /*  likewise, summed      */
    uint32_t nworker_pids;
} bench_config_t;

/*  One closed-loop load: `clients` threads, each keeping `window` tasks
    in flight. Stops after duration_us of measurement (after warmup_us),
    or, when tasks > 0, once that many replies came (no warm-up then). */
typedef struct {
    uint32_t clients;
    uint32_t window;
    uint32_t payload;
    int64_t warmup_us;
    int64_t duration_us;
    uint64_t tasks; /*  0: time-bound                                  */
    /*  What every reply must be (Yard loads only; the proxy echoes):
        YARD_OK, an intact echo; YARD_CIRCUIT_OPEN, that status (the
        service's breaker is open). Anything else is an error. */
    yard_status_t expect;
    /*  Yard loads only. NULL: payloads of `payload` bytes carrying the
        stamp. Else every task's payload is these request_len bytes (a
        yard.cache get): no stamp comes back, so the tasks are kept by
        id (as for circuit_open), and an ok reply must pass check. */
    const uint8_t *request;
    size_t request_len;
    /*  True when an ok reply's payload is the right answer; else false
        with why. NULL: any ok reply is. */
    bool (*check)(const uint8_t *payload, size_t len, const void *arg,
                  char *why, size_t cap);
    const void *check_arg;
    /*  Yard loads only: submit options (a cache policy), or NULL. */
    const yard_submit_opts_t *opts;
    /*  Yard stamped echo loads only. 0: the closed loop above. Else an
        open loop: `rate` tasks/s offered by all threads together, each
        thread sending its share on a fixed schedule (the threads' phases
        staggered), with at most `window` in flight per thread. The stamp
        is the time a task was *due*, not the time it left, so a send made
        late (a full window, a slow loop) counts in its latency: no
        coordinated omission. Time-bound loads only. */
    double rate;
    /*  Time-bound loads: also sample CPU (this process, y->broker,
        y->workers) when the measured window opens and when it closes,
        into the result's win_cpu. */
    bool window_cpu;
} bench_load_t;

/*  CPU time of a slice, summed into a result by bench_result_add_cpu. */
typedef struct {
    int64_t clients_us, server_us, workers_us;
    int64_t system_us; /*  kernel share of the three               */
} bench_cpu_t;

/*  What one or more loads measured (rounds add up). Latency in
    microseconds. */
typedef struct {
    uint64_t completed; /*  replies inside the measured windows        */
    uint64_t errors;    /*  replies that were not what the load expects */
    double seconds;     /*  total length of the measured windows       */
    double tasks_per_s; /*  derived: completed / seconds               */
    uint64_t p50_us, p99_us, max_us; /*  derived from hist              */
    double mean_us;
    /*  CPU spent over whole slices (warm-up included), per process role,
        and the replies those slices saw: what a task costs in CPU. On a
        saturated 2-core machine, tasks/s ~ 2 s / (CPU s per task). */
    int64_t cpu_clients_us; /*  this process: load threads + their I/O  */
    int64_t cpu_server_us;  /*  yard-broker, or the zmq_proxy process   */
    int64_t cpu_workers_us; /*  all echo workers together               */
    int64_t cpu_system_us;  /*  of all that, time in the kernel         */
    uint64_t cpu_tasks;     /*  replies in those slices                 */
    yard_hist_t hist;    /*  every measured reply of every round            */
    uint64_t unanswered; /*  tasks still in flight after the drain bound */
    /*  CPU inside the measured windows only (loads with window_cpu):
        sampled when each window opens and closes, and their length. */
    bench_cpu_t win_cpu;
    double win_cpu_seconds;
} bench_result_t;

/* ---- payload stamps (both load generators) ------------------------------ */

/*  Writes sequence and submit time into the first 16 bytes of a payload;
    the rest keeps whatever filler it had. memcpy: no alignment needed. */
static inline void bench_stamp(uint8_t *payload, uint64_t seq, int64_t now_us)
{
    memcpy(payload, &seq, 8);
    memcpy(payload + 8, &now_us, 8);
}

static inline void bench_unstamp(const uint8_t *payload, uint64_t *seq,
                                 int64_t *sent_us)
{
    memcpy(seq, payload, 8);
    memcpy(sent_us, payload + 8, 8);
}

/*  Per-thread tally shared by both generators: counts and records a reply
    when it lands inside the measured window. */
typedef struct {
    int64_t measure_from_us; /*  start of the measured window           */
    int64_t measure_to_us;   /*  its end (INT64_MAX for count-bound)    */
    uint64_t completed;
    uint64_t errors;
    uint64_t total; /*  every good reply, warm-up included           */
    yard_hist_t hist;
} bench_tally_t;

/*  Empties a result. */
void bench_result_init(bench_result_t *r);

/*  Adds one load's tallies (over `seconds` of measurement) to a result
    and recomputes its derived figures. */
void bench_result_add(bench_result_t *r, const yard_hist_t *hist,
                      uint64_t completed, uint64_t errors, double seconds);

/*  Adds b - a CPU and `tasks` replies to a result. */
void bench_result_add_cpu(bench_result_t *r, const bench_cpu_t *a,
                          const bench_cpu_t *b, uint64_t tasks);

/* ---- bench_proc.c ------------------------------------------------------ */

/*  Directory of the running binary (/proc/self/exe), where yard-broker
    and yard-worker live. 0 or -1. */
int bench_bin_dir(char *out, size_t cap);

/*  Full path of a sibling binary; false if it is not executable. */
bool bench_bin_path(const char *name, char *out, size_t cap);

/*  Finds an executable on PATH (for valgrind); false if absent. */
bool bench_which(const char *name, char *out, size_t cap);

/*  Makes the run's temp dir (logs, callgrind files) and installs the
    handlers that kill every child on SIGINT/SIGTERM and on the hard time
    bound (SIGALRM after budget_s seconds). 0 or -1. */
int bench_proc_init(unsigned budget_s);

/*  The temp dir made by bench_proc_init. */
const char *bench_proc_dir(void);

/*  Removes the temp dir (on success) or leaves it and says where. */
void bench_proc_finish(bool keep);

/*  Starts argv[0] (a path) with stdout and stderr to <dir>/<name>.log and
    SIGKILL on the bench's death. 0 and *pid, or -1. */
int bench_proc_spawn(const char *name, char *const argv[], pid_t *pid);

/*  Forks a child that runs fn(arg) and exits with its value; same log and
    death rules. Call it before this process creates any ZeroMQ context
    (the child must not inherit I/O threads it cannot have). */
int bench_proc_fork(const char *name, int (*fn)(void *arg), void *arg,
                    pid_t *pid);

/*  True while the child runs (reaps it when it has exited). */
bool bench_proc_alive(pid_t pid);

/*  Stops one child: SIGTERM, wait up to term_ms, then SIGKILL. Returns
    its wait status, or -1 if it was unknown. With check, anything but a
    clean exit 0 (a crash, a sanitizer report, a hang) is reported on
    stderr with the log's tail and counted by bench_proc_unclean(). */
int bench_proc_stop(pid_t pid, int term_ms, bool check);

/*  Stops several children in parallel, each as bench_proc_stop does
    (one SIGTERM each, never two). Returns the wait status when n is 1,
    else -1. */
int bench_proc_stop_many(const pid_t *pids, int n, int term_ms, bool check);

/*  Children checked at stop that did not exit cleanly. */
int bench_proc_unclean(void);

/*  Stops every child still running (SIGTERM all, bounded wait, SIGKILL). */
void bench_proc_stop_all(void);

/*  Log path of a child, for error messages; "" if unknown. */
const char *bench_proc_log(pid_t pid);

/*  Prints the last lines of a child's log on stderr. */
void bench_proc_tail(pid_t pid, int lines);

/*  A free loopback TCP port (bind 127.0.0.1:0, read it, close). 0 on error. */
int bench_free_port(void);

/*  CPU time (user + system, all threads) of a child, from
    /proc/PID/stat, adding its system part to *system_us; -1 if
    unreadable. */
int64_t bench_proc_cpu_us(pid_t pid, int64_t *system_us);

/*  CPU time of this process (all threads), likewise. */
int64_t bench_self_cpu_us(int64_t *system_us);

/*  Samples the CPU of this process, a server and its workers. */
void bench_cpu_sample(bench_cpu_t *out, pid_t server, const pid_t *workers,
                      uint32_t nworkers);

/*  True once SIGINT/SIGTERM asked the bench to stop. The handler ends
    the process itself; loops check this as well so that none can outlive
    a stop request should that ever change. */
bool bench_stopping(void);

/*  Sleeps ms milliseconds (polling pauses only, never for readiness). */
void bench_pause_ms(int ms);

/*  Progress on stderr when verbose. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_set_verbose(bool verbose);

/* ---- bench_yard.c ------------------------------------------------------- */

/*  A running broker and its workers. */
typedef struct {
    pid_t broker; /*  0 when not running                          */
    pid_t workers[BENCH_MAX_WORKERS];
    uint32_t nworkers;
    char endpoint[64]; /*  tcp://127.0.0.1:PORT of the task ROUTER     */
    char events[64];   /*  and of the events ROUTER (subscribers)      */
    char service[64];  /*  service the workers serve                   */
} bench_yard_t;

/*  Options of a broker start. */
typedef struct {
    uint32_t max_queue;         /*  0: the broker's default                 */
    int grace_ms;               /*  -1: the broker's default                */
    const char *callgrind;      /*  NULL, or out file: run under valgrind   */
    const char *valgrind;       /*  path of valgrind when callgrind is set  */
    int ready_ms;               /*  bound on the readiness handshake        */
    const char *const *breaker; /*  NULL, or NULL-terminated --breaker
                                    specs ("enabled=false", ...)       */
} bench_broker_opts_t;

/*  Starts yard-broker on free loopback ports and waits until it answers a
    stats call. 0 or -1 (message printed). */
int bench_yard_start_broker(bench_yard_t *y, const bench_broker_opts_t *o);

/*  Starts n workers running a built-in handler ("echo", "fail"; capacity
    64, handler inline) for service and waits until the broker's stats
    show all of them. 0 or -1. */
int bench_yard_start_workers(bench_yard_t *y, const char *service,
                             const char *handler, uint32_t n, int ready_ms);

/*  Opens the circuit breaker of y's service, which y's workers serve
    with the fail handler on a broker that opens it at the first failure:
    sends one task (it must fail), waits until the stats say the breaker
    is "open", stops the workers and checks it still is. 0 or -1. */
int bench_yard_open_breaker(bench_yard_t *y, int ready_ms);

/*  Asks the broker for stats; 0 and *json_out (malloc'd), or -1. */
int bench_yard_stats(const char *endpoint, int timeout_ms, char **json_out);

/*  Reads an integer at a dotted path ("memory.rss_bytes") of a stats
    JSON text. 0 or -1. */
int bench_json_int(const char *json, const char *path, int64_t *out);

/*  Copies the string at a dotted path into out (truncated to cap - 1
    bytes). 0 or -1. */
int bench_json_str(const char *json, const char *path, char *out, size_t cap);

/*  Runs a closed-loop load through the C client library and adds what
    it measured to *out. 0 or -1. */
int bench_yard_load(const bench_yard_t *y, const bench_load_t *load,
                    bench_result_t *out);

/*  Stops workers, then the broker (SIGTERM, bounded). Returns the
    broker's wait status (or -1). */
int bench_yard_stop(bench_yard_t *y, int term_ms);

/* ---- bench_proxy.c ------------------------------------------------------ */

typedef struct {
    pid_t proxy;
    pid_t workers[BENCH_MAX_WORKERS];
    uint32_t nworkers;
    char frontend[64]; /*  clients connect here (ROUTER)              */
    char backend[64];  /*  REP workers connect here (DEALER)          */
} bench_proxy_t;

/*  Forks the proxy and n REP echo workers, then checks by handshake that
    every worker answers through the proxy. Must run before this process
    creates any ZeroMQ context. 0 or -1. */
int bench_proxy_start(bench_proxy_t *p, uint32_t n, int ready_ms);

/*  Runs the same closed-loop load over DEALER sockets; adds to *out.
    0 or -1. */
int bench_proxy_load(const bench_proxy_t *p, const bench_load_t *load,
                     bench_result_t *out);

void bench_proxy_stop(bench_proxy_t *p, int term_ms);

/*  Reads a line (up to '\n') from fd within ms. 0 or -1. */
int bench_read_line(int fd, char *buf, size_t cap, int ms);

/* ---- bench_events.c ----------------------------------------------------- */

/*  Events the publisher may be ahead of the slowest subscriber. Not
    more by default: the broker's events ROUTER drops for a subscriber
    (BROKER_EVENTS_HWM, 32 messages) when a burst of more than about 1500
    events reaches it at once, even one that keeps up (README.md). */
#define BENCH_EVENT_WINDOW 1024
#define BENCH_EVENT_MAX_WINDOW 50000 /*  half the bench's own sockets' HWMs */
#define BENCH_EVENT_PAYLOAD 64       /*  bytes of every event's payload     */
#define BENCH_EVENT_BATCH 256        /*  events per PUBLISH (YARD_MAX_BATCH) */
#define BENCH_MAX_SUBSCRIBERS 16

/*  The event floor: zmq_proxy(XSUB, XPUB) in a forked process. */
typedef struct {
    pid_t proxy;
    char frontend[64]; /*  XSUB: the publisher's PUB connects here   */
    char backend[64];  /*  XPUB: the subscribers' SUBs connect here  */
} bench_xproxy_t;

/*  Forks the XSUB/XPUB proxy and reads its endpoints. Must run before
    this process creates any ZeroMQ context. (Readiness of the path
    through it is each load's own handshake.) 0 or -1. */
int bench_xproxy_start(bench_xproxy_t *p, int ready_ms);
void bench_xproxy_stop(bench_xproxy_t *p, int term_ms);

/*  One event load: a publisher thread sends as fast as the window lets
    it for warmup_us + duration_us; subscriber threads take every event
    and check it is the next one. */
typedef struct {
    uint32_t subscribers;
    uint32_t window; /*  events the publisher may be ahead of the
                         slowest subscriber                         */
    int64_t warmup_us;
    int64_t duration_us;
} bench_events_load_t;

/*  What event loads measured (rounds add up). */
typedef struct {
    uint64_t events;     /*  events every subscriber took in the windows */
    uint64_t deliveries; /*  copies taken in the windows, all subscribers */
    uint64_t published;  /*  events sent in the windows                  */
    double seconds;
    double events_per_s;     /*  events / seconds                        */
    double deliveries_per_s; /*  deliveries / seconds                    */
    double published_per_s;  /*  published / seconds                     */
    uint64_t p50_us, p99_us, max_us; /*  send stamp to subscriber, every
                                         delivery in the windows         */
    int64_t cpu_clients_us; /*  this process: publisher + subscribers   */
    int64_t cpu_server_us;  /*  yard-broker, or the zmq_proxy process    */
    uint64_t cpu_events;    /*  events sent in those slices              */
    yard_hist_t hist;
} bench_events_result_t;

void bench_events_result_init(bench_events_result_t *r);

/*  Runs one event load through yard-broker (y->endpoint to publish,
    y->events to subscribe) and adds to *out. Fails (-1, message
    printed) when any subscriber misses an event or gets one out of
    order, an sn has a gap, or the broker refuses anything. */
int bench_events_yard(const bench_yard_t *y, const bench_events_load_t *load,
                      bench_events_result_t *out);

/*  The same load through the XSUB/XPUB proxy. */
int bench_events_proxy(const bench_xproxy_t *p, const bench_events_load_t *load,
                       bench_events_result_t *out);

/* ---- bench_cache.c ----------------------------------------------------- */

#define BENCH_REDIS_SERVER "/usr/bin/redis-server"
#define BENCH_CACHE_SERVICE "yard.cache" /*  what yard-cache serves      */
#define BENCH_CACHE_MAX_KEY 64
#define BENCH_CACHE_MAX_REQUEST 128 /*  an encoded get request, at most */

/*  The bench's own redis-server, on a free loopback port. */
typedef struct {
    pid_t pid; /*  0 when not running                          */
    int port;
    char url[64]; /*  redis://127.0.0.1:PORT/0, for yard-cache      */
} bench_redis_t;

/*  Starts redis-server (no persistence) and waits until it answers PING.
    0 or -1 (message printed). */
int bench_redis_start(bench_redis_t *r, int ready_ms);

/*  Stops it by PID (SIGTERM, bounded, then SIGKILL). */
void bench_redis_stop(bench_redis_t *r, int term_ms);

/*  SETs key to value directly in Redis (the plain GET's key). 0 or -1. */
int bench_redis_set(const bench_redis_t *r, const char *key,
                    const uint8_t *value, size_t len);

/*  One get every task of a cache load repeats, and what must come back. */
typedef struct {
    char key[BENCH_CACHE_MAX_KEY];
    const uint8_t *value; /*  the value set before                   */
    size_t value_len;
    const char *tier; /*  Yard: "l1" or "l2" in every answer       */
    uint8_t request[BENCH_CACHE_MAX_REQUEST]; /*  {op: "get", key}    */
    size_t request_len;
} bench_cache_get_t;

/*  Fills g: key, expected value and tier, and the encoded request. */
int bench_cache_get_init(bench_cache_get_t *g, const char *key,
                         const uint8_t *value, size_t len, const char *tier);

/*  A bench_load_t check: the answer is {hit: true, value: the value,
    tier: the tier} (arg: the bench_cache_get_t). */
bool bench_cache_check(const uint8_t *payload, size_t len, const void *arg,
                       char *why, size_t cap);

/*  Starts a broker and n yard-cache processes (with the extra flags,
    NULL-terminated, e.g. "--no-l1") using Redis r, and waits until the
    broker lists all n as workers of yard.cache. y->workers are then the
    yard-cache processes. 0 or -1. */
int bench_cache_start(bench_yard_t *y, const bench_redis_t *r,
                      const char *label, const char *const *flags, uint32_t n,
                      int ready_ms);

/*  Stores g's key and value through the cache (op set, ttl_ms), then
    gets it in batches until every answer of `rounds` batches in a row is
    a hit with the value from g's tier (every instance has it where the
    load expects it), within ready_ms. 0 or -1. */
int bench_cache_prepare(const bench_yard_t *y, const bench_cache_get_t *g,
                        uint64_t ttl_ms, int ready_ms);

/*  The plain-Redis side of the cache phase: `clients` threads, each with
    its own hiredis connection, keeping `window` GETs of g's key in
    flight (pipelined), timed and checked like the Yard loads; the
    server CPU is redis-server's. Adds to *out. 0 or -1. */
int bench_redis_load(const bench_redis_t *r, const bench_load_t *load,
                     const bench_cache_get_t *g, bench_result_t *out);

/* ---- bench_loadonly.c -------------------------------------------------- */

/*  yard-bench --load-only: one load (closed loop, or open loop at
    cfg->rate) through the C client library against cfg->broker's
    cfg->service, one measured window of cfg->duration_s after the
    warm-up; prints its figures (one JSON object with cfg->json). Returns
    the exit status: 0, or 1 when a reply was wrong or missing (the
    figures are printed all the same). */
int bench_load_only(const bench_config_t *cfg);

/* ---- bench_memory.c ---------------------------------------------------- */

typedef struct {
    uint64_t tasks;        /*  tasks queued                           */
    int64_t rss_before;    /*  broker RSS before, bytes               */
    int64_t rss_after;     /*  and with every task queued             */
    int64_t broker_tasks;  /*  the broker's own count once queued     */
    double bytes_per_task; /*  (after - before) / tasks                */
    double seconds;        /*  time to submit and confirm them        */
} bench_memory_t;

/*  Starts its own broker (no workers), queues n tasks, reads RSS. */
int bench_memory_run(uint32_t n, uint32_t payload, bench_memory_t *out);

/* ---- bench_callgrind.c ------------------------------------------------- */

typedef struct {
    uint64_t tasks;       /*  N                                        */
    uint64_t instr_base;  /*  I_0: start, handshake, stop               */
    uint64_t instr_tasks; /*  I_N: the same plus N tasks                */
    double per_task;      /*  (I_N - I_0) / N                          */
} bench_callgrind_t;

int bench_callgrind_run(const char *valgrind, uint32_t tasks, uint32_t payload,
                        bench_callgrind_t *out);

#endif
