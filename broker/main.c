/*  main.c — yard-broker: flags, environment, config file, then the loop.
    Precedence for every setting: flag > environment > file > default. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "yard_config.h"
#include "yard_log.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: yard-broker [options]\n"
            "\n"
            "Routes tasks from clients to workers of named services.\n"
            "\n"
            "options (flag > environment > config file > default):\n"
            "  --config FILE     settings file, 'key = value' lines\n"
            "                    (YARD_CONFIG); keys: broker, events,\n"
            "                    max_queue, grace_ms, heartbeat_ms,\n"
            "                    log_level, breaker.[SERVICE.]SETTING\n"
            "  --broker EP       tasks endpoint to bind (YARD_BROKER,\n"
            "                    default " BROKER_DEFAULT_ENDPOINT ")\n"
            "  --events EP       events endpoint to bind (YARD_EVENTS,\n"
            "                    default " BROKER_DEFAULT_EVENTS ")\n"
            "  --max-queue N     waiting tasks per service before new ones\n"
            "                    are rejected (YARD_MAX_QUEUE, default %u)\n"
            "  --grace MS        on SIGTERM, time to finish work before the\n"
            "                    rest is answered 'shutdown' (YARD_GRACE_MS,\n"
            "                    default %u)\n"
            "  --heartbeat MS    heartbeat interval (YARD_HEARTBEAT_MS,\n"
            "                    default %d); a worker silent for %d\n"
            "                    intervals is lost\n"
            "  --log-level L     error|warn|info|debug (YARD_LOG_LEVEL,\n"
            "                    default info)\n"
            "  --breaker SPEC    a circuit-breaker setting, repeatable:\n"
            "                    [SERVICE.]SETTING=VALUE, e.g.\n"
            "                    fail_threshold=3 or llm.window=50\n"
            "                    (YARD_BREAKER: specs separated by\n"
            "                    spaces). SETTINGs: enabled, fail_threshold,\n"
            "                    window, min_calls, failure_rate, slow_ms,\n"
            "                    base_timeout_ms, max_timeout_ms,\n"
            "                    half_open_test_count, count\n"
            "  --help            this text\n"
            "  --version         print the version\n",
            BROKER_DEFAULT_MAX_QUEUE, BROKER_DEFAULT_GRACE_MS,
            YARD_HEARTBEAT_INTERVAL_MS, YARD_HEARTBEAT_LIVENESS);
}

/*  Settings read from the config file; breaker.* lines become specs. */
typedef struct {
    char *broker, *events, *max_queue, *grace, *heartbeat, *log;
    char **specs;
    size_t nspecs;
    char err[256];
} s_file_t;

static int s_file_line(const char *key, const char *value, void *arg)
{
    s_file_t *f = arg;
    char **slot = NULL;
    if (strcmp(key, "broker") == 0)
        slot = &f->broker;
    else if (strcmp(key, "events") == 0)
        slot = &f->events;
    else if (strcmp(key, "max_queue") == 0)
        slot = &f->max_queue;
    else if (strcmp(key, "grace_ms") == 0)
        slot = &f->grace;
    else if (strcmp(key, "heartbeat_ms") == 0)
        slot = &f->heartbeat;
    else if (strcmp(key, "log_level") == 0)
        slot = &f->log;
    if (slot) {
        free(*slot);
        *slot = strdup(value);
        return *slot ? 0 : 1;
    }
    if (strncmp(key, "breaker.", 8) == 0 && key[8]) {
        char **grown = realloc(f->specs, (f->nspecs + 1) * sizeof(*grown));
        size_t n = strlen(key + 8) + strlen(value) + 2;
        char *spec = malloc(n);
        if (!grown || !spec) {
            free(spec);
            if (grown)
                f->specs = grown;
            return 1;
        }
        snprintf(spec, n, "%s=%s", key + 8, value);
        f->specs = grown;
        f->specs[f->nspecs++] = spec;
        return 0;
    }
    snprintf(f->err, sizeof(f->err),
             "unknown key '%s' (known: broker, events, max_queue, grace_ms, "
             "heartbeat_ms, log_level, breaker.[SERVICE.]SETTING)",
             key);
    return 2;
}

static void s_file_free(s_file_t *f)
{
    free(f->broker);
    free(f->events);
    free(f->max_queue);
    free(f->grace);
    free(f->heartbeat);
    free(f->log);
    for (size_t i = 0; i < f->nspecs; i++)
        free(f->specs[i]);
    free(f->specs);
}

/*  Checks one breaker spec on its own (syntax, setting name, value). */
static int s_check_spec(const char *spec, const char *from)
{
    char buf[512], err[256];
    const char *service, *key, *value;
    yard_breaker_config_t scratch;
    yard_breaker_config_defaults(&scratch);
    if (breaker_spec_split(spec, buf, sizeof(buf), &service, &key, &value, err,
                           sizeof(err)) != 0 ||
        yard_breaker_config_set(&scratch, key, value, err, sizeof(err)) < 0) {
        fprintf(stderr, "yard-broker: invalid %s: %s\n", from, err);
        return -1;
    }
    return 0;
}

static int s_bad(const char *what, const char *value)
{
    fprintf(stderr, "yard-broker: invalid %s: '%s' (see --help)\n", what,
            value ? value : "");
    return 2;
}

static int s_main(const char *f_broker, const char *f_events,
                  const char *f_max_queue, const char *f_grace,
                  const char *f_heartbeat, const char *f_log,
                  const char *f_config, const char **f_specs, size_t f_nspecs);
static int s_run(const char *f_broker, const char *f_events,
                 const char *f_max_queue, const char *f_grace,
                 const char *f_heartbeat, const char *f_log, s_file_t *file,
                 const char **f_specs, size_t f_nspecs);

int main(int argc, char **argv)
{
    const char *f_broker = NULL, *f_events = NULL, *f_max_queue = NULL;
    const char *f_grace = NULL, *f_heartbeat = NULL, *f_log = NULL;
    const char *f_config = NULL;
    const char **f_specs = calloc((size_t)argc + 1, sizeof(*f_specs));
    size_t f_nspecs = 0;
    if (!f_specs)
        return 1;
    static const struct option options[] = {
        {"broker", required_argument, NULL, 'b'},
        {"events", required_argument, NULL, 'e'},
        {"max-queue", required_argument, NULL, 'q'},
        {"grace", required_argument, NULL, 'g'},
        {"heartbeat", required_argument, NULL, 'H'},
        {"log-level", required_argument, NULL, 'l'},
        {"config", required_argument, NULL, 'c'},
        {"breaker", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'b':
            f_broker = optarg;
            break;
        case 'e':
            f_events = optarg;
            break;
        case 'q':
            f_max_queue = optarg;
            break;
        case 'g':
            f_grace = optarg;
            break;
        case 'H':
            f_heartbeat = optarg;
            break;
        case 'l':
            f_log = optarg;
            break;
        case 'c':
            f_config = optarg;
            break;
        case 'B':
            f_specs[f_nspecs++] = optarg;
            break;
        case 'h':
            s_usage(stdout);
            free(f_specs);
            return 0;
        case 'V':
            printf("yard-broker %s\n", YARD_VERSION_STRING);
            free(f_specs);
            return 0;
        default:
            fprintf(stderr,
                    "yard-broker: unknown or incomplete option '%s' "
                    "(see --help)\n",
                    argv[optind - 1]);
            free(f_specs);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "yard-broker: unexpected argument '%s'\n",
                argv[optind]);
        free(f_specs);
        return 2;
    }
    int rc = s_main(f_broker, f_events, f_max_queue, f_grace, f_heartbeat,
                    f_log, f_config, f_specs, f_nspecs);
    free(f_specs);
    return rc;
}

static int s_main(const char *f_broker, const char *f_events,
                  const char *f_max_queue, const char *f_grace,
                  const char *f_heartbeat, const char *f_log,
                  const char *f_config, const char **f_specs, size_t f_nspecs)
{
    s_file_t file;
    memset(&file, 0, sizeof(file));
    const char *path = yard_config_pick(f_config, "YARD_CONFIG", NULL, NULL);
    if (path) {
        char err[256];
        int frc =
            yard_config_file_each(path, s_file_line, &file, err, sizeof(err));
        if (frc != 0) {
            fprintf(stderr, "yard-broker: config file %s: %s\n", path,
                    frc == 2   ? file.err
                    : frc == 1 ? "out of memory"
                               : err);
            s_file_free(&file);
            return 2;
        }
    }
    int rc = s_run(f_broker, f_events, f_max_queue, f_grace, f_heartbeat, f_log,
                   &file, f_specs, f_nspecs);
    s_file_free(&file);
    return rc;
}

static int s_run(const char *f_broker, const char *f_events,
                 const char *f_max_queue, const char *f_grace,
                 const char *f_heartbeat, const char *f_log, s_file_t *file,
                 const char **f_specs, size_t f_nspecs)
{
    broker_config_t config;
    memset(&config, 0, sizeof(config));
    config.endpoint = yard_config_pick(f_broker, "YARD_BROKER", file->broker,
                                       BROKER_DEFAULT_ENDPOINT);
    config.events = yard_config_pick(f_events, "YARD_EVENTS", file->events,
                                     BROKER_DEFAULT_EVENTS);
    const char *v =
        yard_config_pick(f_max_queue, "YARD_MAX_QUEUE", file->max_queue, NULL);
    config.max_queue = BROKER_DEFAULT_MAX_QUEUE;
    if (v && yard_parse_u32(v, 1, 100000000, &config.max_queue) != 0)
        return s_bad("--max-queue / YARD_MAX_QUEUE", v);
    v = yard_config_pick(f_grace, "YARD_GRACE_MS", file->grace, NULL);
    config.grace_ms = BROKER_DEFAULT_GRACE_MS;
    if (v && yard_parse_u32(v, 0, 3600000, &config.grace_ms) != 0)
        return s_bad("--grace / YARD_GRACE_MS", v);
    v = yard_config_pick(f_heartbeat, "YARD_HEARTBEAT_MS", file->heartbeat,
                         NULL);
    config.heartbeat_ms = YARD_HEARTBEAT_INTERVAL_MS;
    if (v && yard_parse_u32(v, 10, 60000, &config.heartbeat_ms) != 0)
        return s_bad("--heartbeat / YARD_HEARTBEAT_MS", v);
    config.liveness = YARD_HEARTBEAT_LIVENESS;
    yard_log_level_t level = YARD_LOG_INFO;
    v = yard_config_pick(f_log, "YARD_LOG_LEVEL", file->log, NULL);
    if (v && yard_log_level_parse(v, &level) != 0)
        return s_bad("--log-level / YARD_LOG_LEVEL", v);

    //  Breaker settings: defaults, then file, environment and flags in
    //  that order, so the later (stronger) one wins for each setting.
    yard_breaker_config_defaults(&config.breaker);
    const char *env = getenv("YARD_BREAKER");
    char *env_copy = env ? strdup(env) : NULL;
    size_t cap = file->nspecs + f_nspecs + (env ? strlen(env) / 2 + 1 : 0);
    const char **specs = calloc(cap ? cap : 1, sizeof(*specs));
    size_t n = 0;
    int rc = 2;
    if (!specs || (env && !env_copy)) {
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < file->nspecs; i++) {
        if (s_check_spec(file->specs[i], "breaker setting in config file"))
            goto out;
        specs[n++] = file->specs[i];
    }
    char *save = NULL;
    for (char *tok = env_copy ? strtok_r(env_copy, " \t", &save) : NULL; tok;
         tok = strtok_r(NULL, " \t", &save)) {
        if (s_check_spec(tok, "YARD_BREAKER"))
            goto out;
        specs[n++] = tok;
    }
    for (size_t i = 0; i < f_nspecs; i++) {
        if (s_check_spec(f_specs[i], "--breaker"))
            goto out;
        specs[n++] = f_specs[i];
    }
    config.breaker_specs = specs;
    config.nbreaker_specs = n;

    yard_log_init("yard-broker", level);
    signal(SIGPIPE, SIG_IGN);

    char err[256];
    broker_t *broker = broker_new(&config, err, sizeof(err));
    if (!broker) {
        if (err[0])
            fprintf(stderr, "yard-broker: invalid breaker settings: %s\n", err);
        rc = err[0] ? 2 : 1;
        goto out;
    }
    rc = broker_run(broker);
    broker_destroy(&broker);
out:
    free(specs);
    free(env_copy);
    return rc;
}
