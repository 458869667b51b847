/*  yard_worker_main.c — yard-worker: a Yard worker process running one of
    the built-in handlers (handlers.c) for one service.

        yard-worker --handler echo|sleep|fail|flaky [--service NAME] ...

    Settings: flag > environment > default. Bad input (an unknown flag or
    handler, a number that does not parse or is out of range) is a message
    on stderr and exit status 2. SIGTERM / SIGINT stop gracefully (finish
    what is held, up to --grace ms); a second signal cuts the grace short.
*/
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "yard_config.h"
#include "yard_log.h"
#include "yard_worker.h"

#define S_PROGRAM "yard-worker"
#define S_DEFAULT_EVENTS "tcp://127.0.0.1:5556"
#define S_EXIT_USAGE 2

/*  The flags as given (NULL when absent). */
typedef struct {
    const char *service;   /*  --service */
    const char *handler;   /*  --handler */
    const char *capacity;  /*  --capacity */
    const char *threads;   /*  --threads */
    const char *fail_rate; /*  --fail-rate */
    const char *name;      /*  --name */
    const char *broker;    /*  --broker */
    const char *events;    /*  --events */
    const char *grace;     /*  --grace */
    const char *log_level; /*  --log-level */
} s_flags_t;

static void s_usage(FILE *out)
{
    fprintf(out, "usage: " S_PROGRAM " --handler NAME [options]\n"
                 "\n"
                 "Serves one Yard service with a built-in handler.\n"
                 "\n"
                 "  --handler NAME    handler to run (required):\n");
    size_t count;
    const yard_handler_def_t *all = yard_handlers_all(&count);
    for (size_t i = 0; i < count; i++)
        fprintf(out, "                      %-6s %s\n", all[i].name,
                all[i].help);
    fprintf(out,
            "  --service NAME    service to serve (default: the handler's "
            "name)\n"
            "  --capacity N      tasks held at once, 1..%u (env "
            "YARD_WORKER_CAPACITY,\n"
            "                    default %u)\n"
            "  --threads N       handler threads: N, 'inline' (0: run on the "
            "I/O thread)\n"
            "                    or 'auto' (-1: one per capacity slot); "
            "default inline\n"
            "                    for echo, fail, flaky and auto for sleep\n"
            "  --fail-rate P     flaky: probability of failure, 0..1 "
            "(default %.1f)\n"
            "  --name NAME       worker name shown in stats (default "
            "hostname-pid)\n"
            "  --broker EP       broker endpoint (env YARD_BROKER, default "
            "%s)\n"
            "  --events EP       event endpoint (env YARD_EVENTS, default "
            "%s)\n"
            "  --grace MS        graceful stop budget on SIGTERM (default "
            "%u)\n"
            "  --log-level L     error|warn|info|debug (env YARD_LOG_LEVEL, "
            "default info)\n"
            "  --help            this text\n"
            "  --version         print the version\n",
            (unsigned)YARD_MAX_CAPACITY, (unsigned)YARD_WORKER_DEFAULT_CAPACITY,
            YARD_FLAKY_DEFAULT_RATE, YARD_WORKER_DEFAULT_BROKER,
            S_DEFAULT_EVENTS, (unsigned)YARD_WORKER_DEFAULT_GRACE_MS);
}

/*  Where a setting came from, for error messages. */
static const char *s_origin(const char *flag_value, const char *flag,
                            const char *env)
{
    if (flag_value && *flag_value)
        return flag;
    const char *value = env ? getenv(env) : NULL;
    if (value && *value)
        return env;
    return "default";
}

static int s_bad(const char *what, const char *origin, const char *value,
                 const char *expected)
{
    fprintf(stderr, S_PROGRAM ": bad %s '%s' (from %s): expected %s\n", what,
            value, origin, expected);
    return S_EXIT_USAGE;
}

static int s_parse_flags(int argc, char **argv, s_flags_t *flags)
{
    enum {
        O_SERVICE = 1000,
        O_HANDLER,
        O_CAPACITY,
        O_THREADS,
        O_FAIL_RATE,
        O_NAME,
        O_BROKER,
        O_EVENTS,
        O_GRACE,
        O_LOG_LEVEL,
        O_HELP,
        O_VERSION
    };
    static const struct option options[] = {
        {"service", required_argument, NULL, O_SERVICE},
        {"handler", required_argument, NULL, O_HANDLER},
        {"capacity", required_argument, NULL, O_CAPACITY},
        {"threads", required_argument, NULL, O_THREADS},
        {"fail-rate", required_argument, NULL, O_FAIL_RATE},
        {"name", required_argument, NULL, O_NAME},
        {"broker", required_argument, NULL, O_BROKER},
        {"events", required_argument, NULL, O_EVENTS},
        {"grace", required_argument, NULL, O_GRACE},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    memset(flags, 0, sizeof *flags);
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case O_SERVICE:
            flags->service = optarg;
            break;
        case O_HANDLER:
            flags->handler = optarg;
            break;
        case O_CAPACITY:
            flags->capacity = optarg;
            break;
        case O_THREADS:
            flags->threads = optarg;
            break;
        case O_FAIL_RATE:
            flags->fail_rate = optarg;
            break;
        case O_NAME:
            flags->name = optarg;
            break;
        case O_BROKER:
            flags->broker = optarg;
            break;
        case O_EVENTS:
            flags->events = optarg;
            break;
        case O_GRACE:
            flags->grace = optarg;
            break;
        case O_LOG_LEVEL:
            flags->log_level = optarg;
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

/*  Turns the flags, environment and defaults into a worker config.
    Returns 0 or S_EXIT_USAGE (message printed). */
static int s_configure(const s_flags_t *flags, yard_worker_config_t *cfg,
                       yard_handlers_opts_t *opts, yard_log_level_t *level)
{
    const char *text;
    const char *origin;

    text = yard_config_pick(flags->log_level, "YARD_LOG_LEVEL", NULL, "info");
    if (yard_log_level_parse(text, level) != 0)
        return s_bad(
            "log level",
            s_origin(flags->log_level, "--log-level", "YARD_LOG_LEVEL"), text,
            "error, warn, info or debug");

    if (!flags->handler) {
        fprintf(stderr,
                S_PROGRAM ": --handler is required (echo, sleep, fail or "
                          "flaky)\ntry '" S_PROGRAM " --help'\n");
        return S_EXIT_USAGE;
    }
    const yard_handler_def_t *def = yard_handler_find(flags->handler);
    if (!def)
        return s_bad("handler", "--handler", flags->handler,
                     "echo, sleep, fail or flaky");

    yard_worker_config_defaults(cfg);
    cfg->handler = def->fn;
    cfg->handler_arg = opts;
    cfg->service = flags->service ? flags->service : def->name;
    cfg->name = flags->name;
    cfg->broker = yard_config_pick(flags->broker, "YARD_BROKER", NULL,
                                   YARD_WORKER_DEFAULT_BROKER);

    char def_capacity[16];
    snprintf(def_capacity, sizeof def_capacity, "%u",
             (unsigned)YARD_WORKER_DEFAULT_CAPACITY);
    text = yard_config_pick(flags->capacity, "YARD_WORKER_CAPACITY", NULL,
                            def_capacity);
    origin = s_origin(flags->capacity, "--capacity", "YARD_WORKER_CAPACITY");
    if (yard_parse_u32(text, 1, YARD_MAX_CAPACITY, &cfg->capacity) != 0)
        return s_bad("capacity", origin, text, "an integer 1..10000");

    cfg->threads = def->threads;
    if (flags->threads) {
        uint32_t n;
        if (strcmp(flags->threads, "auto") == 0 ||
            strcmp(flags->threads, "-1") == 0)
            cfg->threads = YARD_WORKER_THREADS_PER_SLOT;
        else if (strcmp(flags->threads, "inline") == 0)
            cfg->threads = YARD_WORKER_THREADS_INLINE;
        else if (yard_parse_u32(flags->threads, 0, YARD_WORKER_MAX_THREADS,
                                &n) == 0)
            cfg->threads = (int)n;
        else
            return s_bad("thread count", "--threads", flags->threads,
                         "auto, inline or an integer 0..1024");
    }

    opts->fail_rate = YARD_FLAKY_DEFAULT_RATE;
    if (flags->fail_rate &&
        yard_parse_double(flags->fail_rate, 0.0, 1.0, &opts->fail_rate) != 0)
        return s_bad("fail rate", "--fail-rate", flags->fail_rate,
                     "a number 0..1");

    if (flags->grace &&
        yard_parse_u32(flags->grace, 0, YARD_MAX_TIMEOUT_MS, &cfg->grace_ms))
        return s_bad("grace", "--grace", flags->grace,
                     "milliseconds 0..86400000");

    char why[160];
    if (yard_worker_config_check(cfg, why, sizeof why) != 0) {
        fprintf(stderr, S_PROGRAM ": %s\n", why);
        return S_EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_flags_t flags;
    int rc = s_parse_flags(argc, argv, &flags);
    if (rc != 0)
        return rc;
    yard_worker_config_t cfg;
    yard_handlers_opts_t opts;
    yard_log_level_t level;
    rc = s_configure(&flags, &cfg, &opts, &level);
    if (rc != 0)
        return rc;
    yard_log_init(S_PROGRAM, level);
    /*  The event bus is a later issue: the endpoint is accepted now so
        deployments can set it already. */
    const char *events =
        yard_config_pick(flags.events, "YARD_EVENTS", NULL, S_DEFAULT_EVENTS);
    yard_debug("events endpoint %s (not used yet)", events);

    yard_worker_t *worker = yard_worker_new(&cfg);
    if (!worker)
        return 1;
    yard_worker_stop_on_signals(worker);

    yard_info("handler %s for service %s, capacity %u, %s, broker %s",
              flags.handler, cfg.service, cfg.capacity,
              cfg.threads == 0  ? "inline"
              : cfg.threads < 0 ? "one thread per slot"
                                : "fixed threads",
              cfg.broker);
    rc = yard_worker_run(worker);

    yard_worker_stop_on_signals(NULL);
    yard_worker_destroy(&worker);
    if (rc != 0) {
        fprintf(stderr, S_PROGRAM ": %s\n", yard_strerror(rc));
        return 1;
    }
    return 0;
}
