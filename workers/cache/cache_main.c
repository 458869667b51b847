/*  cache_main.c — yard-cache: a worker of service `yard.cache` with an
    in-memory L1 (common/yard_lru) and a shared Redis L2 (cache_l2.c),
    kept coherent across processes by cache.invalidate events.

        yard-cache [--redis URL] [--no-l1 | --no-l2] [options]

    Settings: flag > environment > default. Bad input (an unknown flag, a
    number that does not parse or is out of range, a bad Redis URL) is a
    message on stderr and exit status 2. SIGTERM / SIGINT stop gracefully
    (finish what is held, up to --grace ms); a second signal cuts the
    grace short. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cache.h"
#include "yard_clock.h"
#include "yard_config.h"
#include "yard_log.h"
#include "yard_rand.h"

#define S_PROGRAM "yard-cache"
#define S_EXIT_USAGE 2
#define S_DEFAULT_EVENTS "tcp://127.0.0.1:5556"
#define S_DEFAULT_REDIS "redis://127.0.0.1:6379/0"
#define S_DEFAULT_PREFIX "yard"
#define S_DEFAULT_CAPACITY 64
#define S_DEFAULT_L1_MAX_ENTRIES 100000
#define S_DEFAULT_L1_MAX_BYTES (64ULL * 1024 * 1024)
#define S_DEFAULT_L1_TTL_MS 60000
#define S_DEFAULT_L2_TTL_MS 3600000
#define S_DEFAULT_NEGATIVE_TTL_MS 5000
#define S_DEFAULT_COMPRESS_MIN 1024
#define S_DEFAULT_REDIS_TIMEOUT_MS 500
#define S_MAX_PREFIX 64

/*  The flags as given (NULL when absent). */
typedef struct {
    const char *broker, *events, *redis, *prefix, *name, *log_level;
    const char *l1_max_entries, *l1_max_bytes, *l1_ttl, *l2_ttl;
    const char *negative_ttl, *compress_min, *redis_timeout, *capacity;
    const char *grace;
    bool no_l1, no_l2;
} s_flags_t;

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: " S_PROGRAM " [options]\n"
        "\n"
        "Serves the yard.cache service (PROTOCOL.md 10a): an in-memory L1\n"
        "and a shared Redis L2, coherent across yard-cache processes.\n"
        "Settings: flag > environment variable > default.\n"
        "\n"
        "  --broker EP              broker tasks endpoint (YARD_BROKER; "
        "default\n"
        "                           tcp://127.0.0.1:5555)\n"
        "  --events EP              broker events endpoint (YARD_EVENTS; "
        "default\n"
        "                           " S_DEFAULT_EVENTS ")\n"
        "  --redis URL              redis://[[user]:pass@]host[:port][/db], "
        "host:port\n"
        "                           or unix:///path[?db=N] (YARD_REDIS or\n"
        "                           YARD_REDIS_URL; default " S_DEFAULT_REDIS
        ")\n"
        "  --no-l1                  no in-memory tier (YARD_CACHE_NO_L1=1)\n"
        "  --no-l2                  no Redis tier (YARD_CACHE_NO_L2=1)\n"
        "  --l1-max-entries N       L1 entry limit "
        "(YARD_CACHE_L1_MAX_ENTRIES; default %d)\n"
        "  --l1-max-bytes N         L1 byte limit, key + value + tags + "
        "overhead\n"
        "                           (YARD_CACHE_L1_MAX_BYTES; default %llu)\n"
        "  --l1-ttl-ms MS           L1 TTL when a set gives none, 0 = none\n"
        "                           (YARD_CACHE_L1_TTL_MS; default %d)\n"
        "  --l2-ttl-ms MS           L2 TTL when a set gives none, >= 1\n"
        "                           (YARD_CACHE_L2_TTL_MS; default %d)\n"
        "  --negative-ttl-ms MS     TTL of a negative entry when the "
        "request gives\n"
        "                           none (YARD_CACHE_NEGATIVE_TTL_MS; default "
        "%d)\n"
        "  --prefix P               L2 key prefix, 1..%d of "
        "[A-Za-z0-9._:-]\n"
        "                           (YARD_CACHE_PREFIX; "
        "default " S_DEFAULT_PREFIX ")\n"
        "  --compress-min-bytes N   zlib-compress L2 values of at least N "
        "bytes,\n"
        "                           0 = never (YARD_CACHE_COMPRESS_MIN_BYTES; "
        "default %d)\n"
        "  --redis-timeout-ms MS    Redis connect and command timeout\n"
        "                           (YARD_CACHE_REDIS_TIMEOUT_MS; default %d)\n"
        "  --capacity N             requests held at once, 1..%u\n"
        "                           (YARD_CACHE_CAPACITY; default %d)\n"
        "  --name NAME              worker name in stats and events "
        "(YARD_CACHE_NAME;\n"
        "                           default hostname-pid)\n"
        "  --grace MS               graceful stop budget on SIGTERM "
        "(YARD_CACHE_GRACE_MS;\n"
        "                           default %u)\n"
        "  --log-level L            error|warn|info|debug (YARD_LOG_LEVEL; "
        "default info)\n"
        "  --help                   this text\n"
        "  --version                print the version\n",
        S_DEFAULT_L1_MAX_ENTRIES, (unsigned long long)S_DEFAULT_L1_MAX_BYTES,
        S_DEFAULT_L1_TTL_MS, S_DEFAULT_L2_TTL_MS, S_DEFAULT_NEGATIVE_TTL_MS,
        S_MAX_PREFIX, S_DEFAULT_COMPRESS_MIN, S_DEFAULT_REDIS_TIMEOUT_MS,
        (unsigned)YARD_MAX_CAPACITY, S_DEFAULT_CAPACITY,
        (unsigned)YARD_WORKER_DEFAULT_GRACE_MS);
}

static int s_bad(const char *what, const char *origin, const char *value,
                 const char *expected)
{
    fprintf(stderr, S_PROGRAM ": bad %s '%s' (from %s): expected %s\n", what,
            value, origin, expected);
    return S_EXIT_USAGE;
}

/*  Where a setting came from, for error messages. */
static const char *s_origin(const char *flag_value, const char *flag,
                            const char *env)
{
    if (flag_value && *flag_value)
        return flag;
    const char *value = env ? getenv(env) : NULL;
    return value && *value ? env : "default";
}

static int s_parse_flags(int argc, char **argv, s_flags_t *f)
{
    enum {
        O_BROKER = 1000,
        O_EVENTS,
        O_REDIS,
        O_NO_L1,
        O_NO_L2,
        O_L1_MAX_ENTRIES,
        O_L1_MAX_BYTES,
        O_L1_TTL,
        O_L2_TTL,
        O_NEGATIVE_TTL,
        O_PREFIX,
        O_COMPRESS_MIN,
        O_REDIS_TIMEOUT,
        O_CAPACITY,
        O_NAME,
        O_GRACE,
        O_LOG_LEVEL,
        O_HELP,
        O_VERSION
    };
    static const struct option options[] = {
        {"broker", required_argument, NULL, O_BROKER},
        {"events", required_argument, NULL, O_EVENTS},
        {"redis", required_argument, NULL, O_REDIS},
        {"no-l1", no_argument, NULL, O_NO_L1},
        {"no-l2", no_argument, NULL, O_NO_L2},
        {"l1-max-entries", required_argument, NULL, O_L1_MAX_ENTRIES},
        {"l1-max-bytes", required_argument, NULL, O_L1_MAX_BYTES},
        {"l1-ttl-ms", required_argument, NULL, O_L1_TTL},
        {"l2-ttl-ms", required_argument, NULL, O_L2_TTL},
        {"negative-ttl-ms", required_argument, NULL, O_NEGATIVE_TTL},
        {"prefix", required_argument, NULL, O_PREFIX},
        {"compress-min-bytes", required_argument, NULL, O_COMPRESS_MIN},
        {"redis-timeout-ms", required_argument, NULL, O_REDIS_TIMEOUT},
        {"capacity", required_argument, NULL, O_CAPACITY},
        {"name", required_argument, NULL, O_NAME},
        {"grace", required_argument, NULL, O_GRACE},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    memset(f, 0, sizeof *f);
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case O_BROKER:
            f->broker = optarg;
            break;
        case O_EVENTS:
            f->events = optarg;
            break;
        case O_REDIS:
            f->redis = optarg;
            break;
        case O_NO_L1:
            f->no_l1 = true;
            break;
        case O_NO_L2:
            f->no_l2 = true;
            break;
        case O_L1_MAX_ENTRIES:
            f->l1_max_entries = optarg;
            break;
        case O_L1_MAX_BYTES:
            f->l1_max_bytes = optarg;
            break;
        case O_L1_TTL:
            f->l1_ttl = optarg;
            break;
        case O_L2_TTL:
            f->l2_ttl = optarg;
            break;
        case O_NEGATIVE_TTL:
            f->negative_ttl = optarg;
            break;
        case O_PREFIX:
            f->prefix = optarg;
            break;
        case O_COMPRESS_MIN:
            f->compress_min = optarg;
            break;
        case O_REDIS_TIMEOUT:
            f->redis_timeout = optarg;
            break;
        case O_CAPACITY:
            f->capacity = optarg;
            break;
        case O_NAME:
            f->name = optarg;
            break;
        case O_GRACE:
            f->grace = optarg;
            break;
        case O_LOG_LEVEL:
            f->log_level = optarg;
            break;
        case O_HELP:
            s_usage(stdout);
            exit(0);
        case O_VERSION:
            printf(S_PROGRAM " %s (protocol %d)\n", YARD_VERSION_STRING,
                   YARD_PROTO_VERSION);
            exit(0);
        default: /*  getopt has printed what was wrong */
            fprintf(stderr, "try '" S_PROGRAM " --help'\n");
            return S_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, S_PROGRAM ": unexpected argument '%s'\n", argv[optind]);
        fprintf(stderr, "try '" S_PROGRAM " --help'\n");
        return S_EXIT_USAGE;
    }
    return 0;
}

/*  A number setting: flag > env > default, in [min, max]. */
static int s_number(const char *flag_value, const char *flag, const char *env,
                    uint64_t def, uint64_t min, uint64_t max, uint64_t *out)
{
    char text[32];
    snprintf(text, sizeof text, "%llu", (unsigned long long)def);
    const char *value = yard_config_pick(flag_value, env, NULL, text);
    if (yard_parse_u64(value, min, max, out) != 0) {
        char expected[96];
        snprintf(expected, sizeof expected, "an integer %llu..%llu",
                 (unsigned long long)min, (unsigned long long)max);
        return s_bad(flag + 2, s_origin(flag_value, flag, env), value,
                     expected);
    }
    return 0;
}

/*  A switch: the flag sets it; else the environment (a boolean). */
static int s_switch(bool flag_set, const char *flag, const char *env, bool *out)
{
    *out = flag_set;
    const char *value = getenv(env);
    if (flag_set || !value || !*value)
        return 0;
    if (yard_parse_bool(value, out) != 0)
        return s_bad(flag + 2, env, value, "1/0, true/false, yes/no, on/off");
    return 0;
}

static bool s_prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n < 1 || n > S_MAX_PREFIX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789._:-",
                    p[i]))
            return false;
    return true;
}

/*  Flags, environment and defaults into cfg. 0 or S_EXIT_USAGE. */
static int s_configure(const s_flags_t *f, yard_cache_config_t *cfg,
                       yard_log_level_t *level)
{
    memset(cfg, 0, sizeof *cfg);
    const char *text =
        yard_config_pick(f->log_level, "YARD_LOG_LEVEL", NULL, "info");
    if (yard_log_level_parse(text, level) != 0)
        return s_bad("log level",
                     s_origin(f->log_level, "--log-level", "YARD_LOG_LEVEL"),
                     text, "error, warn, info or debug");
    cfg->broker = yard_config_pick(f->broker, "YARD_BROKER", NULL,
                                   YARD_WORKER_DEFAULT_BROKER);
    cfg->events =
        yard_config_pick(f->events, "YARD_EVENTS", NULL, S_DEFAULT_EVENTS);
    cfg->redis = yard_config_pick(f->redis, "YARD_REDIS",
                                  getenv("YARD_REDIS_URL"), S_DEFAULT_REDIS);
    cfg->prefix = yard_config_pick(f->prefix, "YARD_CACHE_PREFIX", NULL,
                                   S_DEFAULT_PREFIX);
    if (!s_prefix_ok(cfg->prefix))
        return s_bad("prefix",
                     s_origin(f->prefix, "--prefix", "YARD_CACHE_PREFIX"),
                     cfg->prefix, "1..64 characters of [A-Za-z0-9._:-]");
    cfg->name = yard_config_pick(f->name, "YARD_CACHE_NAME", NULL, NULL);

    bool no_l1, no_l2;
    int rc = s_switch(f->no_l1, "--no-l1", "YARD_CACHE_NO_L1", &no_l1);
    if (rc == 0)
        rc = s_switch(f->no_l2, "--no-l2", "YARD_CACHE_NO_L2", &no_l2);
    if (rc != 0)
        return rc;
    if (no_l1 && no_l2) {
        fprintf(stderr, S_PROGRAM ": --no-l1 and --no-l2 together leave "
                                  "nothing to cache in\n");
        return S_EXIT_USAGE;
    }
    cfg->l1 = !no_l1;
    cfg->l2 = !no_l2;

    uint64_t v;
    if ((rc = s_number(f->l1_max_entries, "--l1-max-entries",
                       "YARD_CACHE_L1_MAX_ENTRIES", S_DEFAULT_L1_MAX_ENTRIES, 1,
                       1000000000ULL, &cfg->l1_max_entries)) ||
        (rc = s_number(f->l1_max_bytes, "--l1-max-bytes",
                       "YARD_CACHE_L1_MAX_BYTES", S_DEFAULT_L1_MAX_BYTES, 1024,
                       1ULL << 40, &cfg->l1_max_bytes)) ||
        (rc = s_number(f->l1_ttl, "--l1-ttl-ms", "YARD_CACHE_L1_TTL_MS",
                       S_DEFAULT_L1_TTL_MS, 0, YARD_CACHE_MAX_TTL_MS,
                       &cfg->l1_ttl_ms)) ||
        (rc = s_number(f->l2_ttl, "--l2-ttl-ms", "YARD_CACHE_L2_TTL_MS",
                       S_DEFAULT_L2_TTL_MS, 1, YARD_CACHE_MAX_TTL_MS,
                       &cfg->l2_ttl_ms)) ||
        (rc = s_number(f->negative_ttl, "--negative-ttl-ms",
                       "YARD_CACHE_NEGATIVE_TTL_MS", S_DEFAULT_NEGATIVE_TTL_MS,
                       1, YARD_CACHE_MAX_TTL_MS, &cfg->negative_ttl_ms)) ||
        (rc = s_number(f->compress_min, "--compress-min-bytes",
                       "YARD_CACHE_COMPRESS_MIN_BYTES", S_DEFAULT_COMPRESS_MIN,
                       0, YARD_CACHE_MAX_VALUE, &cfg->compress_min)))
        return rc;
    if ((rc = s_number(f->redis_timeout, "--redis-timeout-ms",
                       "YARD_CACHE_REDIS_TIMEOUT_MS",
                       S_DEFAULT_REDIS_TIMEOUT_MS, 10, 60000, &v)))
        return rc;
    cfg->redis_timeout_ms = (uint32_t)v;
    if ((rc = s_number(f->capacity, "--capacity", "YARD_CACHE_CAPACITY",
                       S_DEFAULT_CAPACITY, 1, YARD_MAX_CAPACITY, &v)))
        return rc;
    cfg->capacity = (uint32_t)v;
    if ((rc = s_number(f->grace, "--grace", "YARD_CACHE_GRACE_MS",
                       YARD_WORKER_DEFAULT_GRACE_MS, 0, YARD_MAX_TIMEOUT_MS,
                       &v)))
        return rc;
    cfg->grace_ms = (uint32_t)v;
    return 0;
}

/*  What yard-cache holds, for its health report. */
static size_t s_objects(yard_object_count_t *out, size_t max, void *arg)
{
    yard_cache_t *self = arg;
    if (max < 3 || !self->l1)
        return 0;
    yard_lru_stats_t st;
    pthread_mutex_lock(&self->lock);
    yard_lru_stats(self->l1, &st);
    pthread_mutex_unlock(&self->lock);
    out[0] = (yard_object_count_t){"l1_entries", st.entries};
    out[1] = (yard_object_count_t){"l1_bytes", st.bytes};
    out[2] = (yard_object_count_t){"l1_tags", st.tags};
    return 3;
}

/*  Builds the process around cfg. 0, S_EXIT_USAGE (bad Redis URL) or 1. */
static int s_start(yard_cache_t *self)
{
    yard_rand_t rng;
    yard_rand_seed_os(&rng);
    uint8_t id[8];
    yard_rand_bytes(&rng, id, sizeof id);
    sodium_bin2hex(self->instance, 2 * sizeof id + 1, id, sizeof id);
    self->started_ms = yard_clock_ms();
    pthread_mutex_init(&self->lock, NULL);

    yard_worker_config_t wc;
    yard_worker_config_defaults(&wc);
    wc.broker = self->cfg.broker;
    wc.service = YARD_CACHE_SERVICE;
    wc.name = self->cfg.name;
    wc.capacity = self->cfg.capacity;
    /*  Redis calls block (boundedly): never on the I/O thread. */
    wc.threads = self->cfg.l2 ? YARD_WORKER_THREADS_PER_SLOT
                              : YARD_WORKER_THREADS_INLINE;
    wc.handler = yard_cache_handle;
    wc.fast = self->cfg.l2 ? yard_cache_fast : NULL;
    wc.handler_arg = self;
    wc.objects = s_objects;
    wc.objects_arg = self;
    wc.grace_ms = self->cfg.grace_ms;
    char why[300];
    if (yard_worker_config_check(&wc, why, sizeof why) != 0) {
        fprintf(stderr, S_PROGRAM ": %s\n", why);
        return S_EXIT_USAGE;
    }
    self->worker = yard_worker_new(&wc);
    if (!self->worker)
        return 1;
    if (self->cfg.l1) {
        self->l1 = yard_lru_new(self->cfg.l1_max_entries,
                                self->cfg.l1_max_bytes, yard_rand_next(&rng));
        if (!self->l1)
            return 1;
    }
    if (self->cfg.l2) {
        yard_l2_config_t lc = {
            .url = self->cfg.redis,
            .prefix = self->cfg.prefix,
            .timeout_ms = self->cfg.redis_timeout_ms,
            .compress_min = self->cfg.compress_min,
            .max_value = YARD_CACHE_MAX_VALUE,
            .on_state = yard_cache_on_l2_state,
            .arg = self,
        };
        self->l2 = yard_l2_new(&lc, why, sizeof why);
        if (!self->l2) {
            fprintf(stderr, S_PROGRAM ": bad Redis URL '%s': %s\n",
                    self->cfg.redis, why);
            return S_EXIT_USAGE;
        }
    }
    if (self->l1) {
        self->sync = yard_cache_sync_start(self);
        if (!self->sync)
            return 1;
    }
    return 0;
}

static void s_stop(yard_cache_t *self)
{
    yard_cache_sync_stop(&self->sync);
    yard_l2_destroy(&self->l2); /*  before the worker: it publishes */
    yard_lru_destroy(&self->l1);
    yard_worker_destroy(&self->worker);
    pthread_mutex_destroy(&self->lock);
}

int main(int argc, char **argv)
{
    s_flags_t flags;
    int rc = s_parse_flags(argc, argv, &flags);
    if (rc != 0)
        return rc;
    static yard_cache_t cache;
    yard_log_level_t level;
    rc = s_configure(&flags, &cache.cfg, &level);
    if (rc != 0)
        return rc;
    yard_log_init(S_PROGRAM, level);
    /*  hiredis writes with write(2): a Redis that went away must be an
        error, not a SIGPIPE that kills the process. */
    signal(SIGPIPE, SIG_IGN);

    rc = s_start(&cache);
    if (rc != 0) {
        s_stop(&cache);
        return rc;
    }
    yard_worker_stop_on_signals(cache.worker);

    yard_info("instance %s serving " YARD_CACHE_SERVICE ", capacity %u (%s); "
              "L1 %s; L2 %s; broker %s, events %s",
              cache.instance, cache.cfg.capacity,
              cache.cfg.l2 ? "one thread per slot" : "inline",
              cache.l1 ? "on" : "off", cache.l2 ? yard_l2_url(cache.l2) : "off",
              cache.cfg.broker, cache.cfg.events);
    rc = yard_worker_run(cache.worker);

    yard_worker_stop_on_signals(NULL);
    s_stop(&cache);
    if (rc != 0) {
        fprintf(stderr, S_PROGRAM ": %s\n", yard_strerror(rc));
        return 1;
    }
    return 0;
}
