/*  health_main.c — yard-health: flags (flag > environment > default),
    start and stop. The main thread runs the worker runtime of the
    yard.health service (a task gets the current health report as JSON);
    the checker, the event reader and the HTTP daemon run beside it.
    SIGTERM or SIGINT stops it: the worker drains, the HTTP daemon closes
    its connections (SSE streams end), the threads are joined, exit 0. */
#include "health.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yard_clock.h"
#include "yard_config.h"
#include "yard_log.h"

#include <sodium.h>

#define S_PROGRAM "yard-health"
#define S_EXIT_USAGE 2
#define S_DEFAULT_BROKER "tcp://127.0.0.1:5555"
#define S_DEFAULT_EVENTS "tcp://127.0.0.1:5556"
#define S_DEFAULT_HTTP "127.0.0.1:8080"
#define S_DEFAULT_INTERVAL_MS 1000
#define S_DEFAULT_LOST_WINDOW_MS 60000
#define S_DEFAULT_TIMEOUT_MS 2000
#define S_DEFAULT_MEM_GROWTH_MB 256
#define S_MAX_KEY 4096

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: " S_PROGRAM " [options]\n"
        "\n"
        "Watches a Yard deployment and serves the HTTP admin API: the\n"
        "broker's stats, yard.cache's stats and a Redis PING every\n"
        "interval, an overall status (healthy, warning, critical) with\n"
        "its reasons, published as system.health.check events (and\n"
        "system.health.changed on a change), and the service "
        "yard.health.\n"
        "\n"
        "  --broker EP          task endpoint [YARD_BROKER] (default "
        "%s)\n"
        "  --events EP          events endpoint [YARD_EVENTS] (default "
        "%s)\n"
        "  --http ADDR:PORT     HTTP listen address [YARD_HEALTH_HTTP]\n"
        "                       (default %s)\n"
        "  --api-key-file FILE  require this key in X-API-Key on every\n"
        "                       endpoint but /v1/health "
        "[YARD_API_KEY_FILE];\n"
        "                       YARD_API_KEY gives the key itself\n"
        "  --redis URL          Redis to PING, redis://HOST:PORT[/DB]\n"
        "                       [YARD_REDIS] (default: none)\n"
        "  --interval-ms N      check period, 100..600000 "
        "[YARD_HEALTH_INTERVAL_MS]\n"
        "                       (default %d)\n"
        "  --lost-window-ms N   how long a lost worker (unless one of its\n"
        "                       service joins) or an event-loop stall\n"
        "                       keeps the status warning,\n"
        "                       1000..86400000 [YARD_HEALTH_LOST_WINDOW_MS]\n"
        "                       (default %d)\n"
        "  --timeout-ms N       deadline of each check's calls, "
        "100..60000\n"
        "                       (a worker's ping answer: at most 10000)\n"
        "                       [YARD_HEALTH_TIMEOUT_MS] (default %d)\n"
        "  --mem-growth-mb N    flag a process whose resident memory grew\n"
        "                       by N MiB or more over its last 5 minutes,\n"
        "                       1..1048576 [YARD_HEALTH_MEM_GROWTH_MB]\n"
        "                       (default %d)\n"
        "  --name NAME          worker name [YARD_HEALTH_NAME]\n"
        "  --log-level L        error, warn, info, debug "
        "[YARD_LOG_LEVEL]\n"
        "                       (default info)\n"
        "  --help, --version\n",
        S_DEFAULT_BROKER, S_DEFAULT_EVENTS, S_DEFAULT_HTTP,
        S_DEFAULT_INTERVAL_MS, S_DEFAULT_LOST_WINDOW_MS, S_DEFAULT_TIMEOUT_MS,
        S_DEFAULT_MEM_GROWTH_MB);
}

enum {
    O_BROKER = 0x100,
    O_EVENTS,
    O_HTTP,
    O_KEY_FILE,
    O_REDIS,
    O_INTERVAL,
    O_LOST,
    O_TIMEOUT,
    O_NAME,
    O_LOG,
    O_MEM_GROWTH,
};

typedef struct {
    const char *broker, *events, *http, *key_file, *redis, *interval, *lost,
        *timeout, *name, *log, *mem_growth;
} s_flags_t;

static int s_bad(const char *flag, const char *env, const char *value,
                 const char *want)
{
    fprintf(stderr, S_PROGRAM ": %s%s%s wants %s, not '%s'\n", flag,
            env ? " / " : "", env ? env : "", want, value);
    return S_EXIT_USAGE;
}

static int s_u32(const char *flag, const char *env, const char *text,
                 uint32_t def, uint32_t min, uint32_t max, uint32_t *out)
{
    const char *v = yard_config_pick(text, env, NULL, NULL);
    if (!v) {
        *out = def;
        return 0;
    }
    if (yard_parse_u32(v, min, max, out) != 0) {
        char want[64];
        snprintf(want, sizeof want, "a whole number in %u..%u", min, max);
        return s_bad(flag, env, v, want);
    }
    return 0;
}

/*  Reads the key file: its first line, trailing whitespace cut. */
static int s_read_key(const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, S_PROGRAM ": cannot read --api-key-file %s: %s\n", path,
                strerror(errno));
        return S_EXIT_USAGE;
    }
    char *buf = calloc(1, S_MAX_KEY + 2);
    size_t n = buf ? fread(buf, 1, S_MAX_KEY + 1, f) : 0;
    fclose(f);
    if (!buf)
        return 1;
    char *nl = memchr(buf, '\n', n);
    if (nl)
        n = (size_t)(nl - buf);
    while (n && (buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    if (n == 0 || n > S_MAX_KEY || strlen(buf) != n) {
        fprintf(stderr,
                S_PROGRAM ": --api-key-file %s: the key must be 1..%d bytes "
                          "on the first line\n",
                path, S_MAX_KEY);
        free(buf);
        return S_EXIT_USAGE;
    }
    *out = buf;
    return 0;
}

static int s_configure(const s_flags_t *f, health_config_t *cfg,
                       yard_log_level_t *level)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->broker =
        yard_config_pick(f->broker, "YARD_BROKER", NULL, S_DEFAULT_BROKER);
    cfg->events =
        yard_config_pick(f->events, "YARD_EVENTS", NULL, S_DEFAULT_EVENTS);
    cfg->http =
        yard_config_pick(f->http, "YARD_HEALTH_HTTP", NULL, S_DEFAULT_HTTP);
    cfg->redis = yard_config_pick(f->redis, "YARD_REDIS", NULL, NULL);
    cfg->name = yard_config_pick(f->name, "YARD_HEALTH_NAME", NULL, NULL);
    int rc;
    if ((rc = s_u32("--interval-ms", "YARD_HEALTH_INTERVAL_MS", f->interval,
                    S_DEFAULT_INTERVAL_MS, 100, 600000, &cfg->interval_ms)) ||
        (rc = s_u32("--lost-window-ms", "YARD_HEALTH_LOST_WINDOW_MS", f->lost,
                    S_DEFAULT_LOST_WINDOW_MS, 1000, 86400000,
                    &cfg->lost_window_ms)) ||
        (rc = s_u32("--timeout-ms", "YARD_HEALTH_TIMEOUT_MS", f->timeout,
                    S_DEFAULT_TIMEOUT_MS, 100, 60000, &cfg->timeout_ms)) ||
        (rc = s_u32("--mem-growth-mb", "YARD_HEALTH_MEM_GROWTH_MB",
                    f->mem_growth, S_DEFAULT_MEM_GROWTH_MB, 1, 1048576,
                    &cfg->mem_growth_mb)))
        return rc;
    const char *lv = yard_config_pick(f->log, "YARD_LOG_LEVEL", NULL, "info");
    if (yard_log_level_parse(lv, level) != 0)
        return s_bad("--log-level", "YARD_LOG_LEVEL", lv,
                     "error, warn, info or debug");
    const char *key_file =
        yard_config_pick(f->key_file, "YARD_API_KEY_FILE", NULL, NULL);
    if (key_file)
        return s_read_key(key_file, &cfg->api_key);
    const char *key = getenv("YARD_API_KEY");
    if (key && *key) {
        if (strlen(key) > S_MAX_KEY)
            return s_bad("YARD_API_KEY", NULL, "(too long)",
                         "at most 4096 bytes");
        cfg->api_key = strdup(key);
        if (!cfg->api_key)
            return 1;
    }
    return 0;
}

static int s_parse_flags(int argc, char **argv, s_flags_t *f)
{
    static const struct option longopts[] = {
        {"broker", required_argument, NULL, O_BROKER},
        {"events", required_argument, NULL, O_EVENTS},
        {"http", required_argument, NULL, O_HTTP},
        {"api-key-file", required_argument, NULL, O_KEY_FILE},
        {"redis", required_argument, NULL, O_REDIS},
        {"interval-ms", required_argument, NULL, O_INTERVAL},
        {"lost-window-ms", required_argument, NULL, O_LOST},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"name", required_argument, NULL, O_NAME},
        {"log-level", required_argument, NULL, O_LOG},
        {"mem-growth-mb", required_argument, NULL, O_MEM_GROWTH},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    memset(f, 0, sizeof *f);
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case O_BROKER:
            f->broker = optarg;
            break;
        case O_EVENTS:
            f->events = optarg;
            break;
        case O_HTTP:
            f->http = optarg;
            break;
        case O_KEY_FILE:
            f->key_file = optarg;
            break;
        case O_REDIS:
            f->redis = optarg;
            break;
        case O_INTERVAL:
            f->interval = optarg;
            break;
        case O_LOST:
            f->lost = optarg;
            break;
        case O_TIMEOUT:
            f->timeout = optarg;
            break;
        case O_NAME:
            f->name = optarg;
            break;
        case O_LOG:
            f->log = optarg;
            break;
        case O_MEM_GROWTH:
            f->mem_growth = optarg;
            break;
        case 'h':
            s_usage(stdout);
            exit(0);
        case 'V':
            printf(S_PROGRAM " %s\n", YARD_VERSION_STRING);
            exit(0);
        case ':':
            fprintf(stderr, S_PROGRAM ": option '%s' needs a value\n",
                    argv[optind - 1]);
            return S_EXIT_USAGE;
        default:
            fprintf(stderr, S_PROGRAM ": unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return S_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, S_PROGRAM ": unexpected argument '%s'\n", argv[optind]);
        return S_EXIT_USAGE;
    }
    return 0;
}

/*  A yard.health task: the current report, as JSON. */
static void s_handle(yard_job_t *job, void *arg)
{
    health_t *self = arg;
    json_t *report;
    health_snapshot(self, NULL, NULL, &report);
    char *text = report ? json_dumps(report, JSON_COMPACT) : NULL;
    json_decref(report);
    if (text)
        yard_job_reply(job, text, strlen(text));
    else
        yard_job_fail(job, "no health report yet");
    free(text);
}

/*  What yard-health holds, for its health report. */
static size_t s_objects(yard_object_count_t *out, size_t max, void *arg)
{
    health_t *self = arg;
    if (max < 2)
        return 0;
    pthread_mutex_lock(&self->lock);
    uint64_t kept = self->next_seq - 1;
    pthread_mutex_unlock(&self->lock);
    out[0] =
        (yard_object_count_t){"sse_clients", atomic_load(&self->sse_clients)};
    out[1] = (yard_object_count_t){
        "events_kept", kept < YARD_HEALTH_RING ? kept : YARD_HEALTH_RING};
    return 2;
}

static void s_stop(health_t *self)
{
    atomic_store(&self->stopping, true);
    pthread_mutex_lock(&self->lock);
    pthread_cond_broadcast(&self->changed);
    pthread_mutex_unlock(&self->lock);
    health_http_stop(self);
    if (self->checker_started)
        pthread_join(self->checker, NULL);
    if (self->events_started)
        pthread_join(self->events, NULL);
    yard_client_destroy(&self->action_client);
    yard_worker_destroy(&self->worker);
    json_decref(self->stats);
    json_decref(self->cache_stats);
    json_decref(self->report);
    json_decref(self->processes);
    for (size_t i = 0; i < YARD_HEALTH_RING; i++) {
        free(self->ring[i].type);
        free(self->ring[i].frame);
    }
    free(self->cfg.api_key);
    pthread_mutex_destroy(&self->action_lock);
    pthread_cond_destroy(&self->changed);
    pthread_mutex_destroy(&self->lock);
}

int main(int argc, char **argv)
{
    s_flags_t flags;
    int rc = s_parse_flags(argc, argv, &flags);
    if (rc != 0)
        return rc;
    static health_t health;
    yard_log_level_t level;
    rc = s_configure(&flags, &health.cfg, &level);
    if (rc != 0)
        return rc;
    yard_log_init(S_PROGRAM, level);
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0) {
        fprintf(stderr, S_PROGRAM ": libsodium failed to start\n");
        return 1;
    }

    health_t *self = &health;
    self->started_ms = yard_clock_ms();
    self->next_seq = 1;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->changed, NULL);
    pthread_mutex_init(&self->action_lock, NULL);

    yard_worker_config_t wc;
    yard_worker_config_defaults(&wc);
    wc.broker = self->cfg.broker;
    wc.service = YARD_HEALTH_SERVICE;
    wc.name = self->cfg.name;
    wc.capacity = 4;
    wc.threads = YARD_WORKER_THREADS_INLINE; /*  a snapshot copy */
    wc.handler = s_handle;
    wc.handler_arg = self;
    wc.objects = s_objects;
    wc.objects_arg = self;
    char why[300];
    if (yard_worker_config_check(&wc, why, sizeof why) != 0) {
        fprintf(stderr, S_PROGRAM ": %s\n", why);
        s_stop(self);
        return S_EXIT_USAGE;
    }
    self->worker = yard_worker_new(&wc);
    self->action_client = yard_client_new(self->cfg.broker);
    if (!self->worker || !self->action_client) {
        fprintf(stderr, S_PROGRAM ": cannot use broker endpoint %s\n",
                self->cfg.broker);
        s_stop(self);
        return S_EXIT_USAGE;
    }
    /*  From here a SIGTERM stops the worker, and yard_worker_run then
        returns at once: the first check below may take --timeout-ms. */
    yard_worker_stop_on_signals(self->worker);
    /*  A first check before the API opens, so /v1/health has an answer. */
    health_check_once(self, self->action_client);
    if (health_events_start(self) != 0 || health_checker_start(self) != 0 ||
        health_http_start(self) != 0) {
        yard_worker_stop_on_signals(NULL);
        s_stop(self);
        return 1;
    }
    yard_info("watching broker %s, events %s%s%s; every %u ms",
              self->cfg.broker, self->cfg.events,
              self->cfg.redis ? ", redis " : "",
              self->cfg.redis ? self->cfg.redis : "", self->cfg.interval_ms);
    rc = yard_worker_run(self->worker);
    yard_worker_stop_on_signals(NULL);
    s_stop(self);
    if (rc != 0) {
        fprintf(stderr, S_PROGRAM ": %s\n", yard_strerror(rc));
        return 1;
    }
    return 0;
}
