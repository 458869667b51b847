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
            "                    log_level, max_subscribers, task_events,\n"
            "                    breaker.[SERVICE.]SETTING\n"
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
            "  --max-subscribers N  event subscribers at once\n"
            "                    (YARD_MAX_SUBSCRIBERS, default %u)\n"
            "  --task-events on|off  emit task.* events to subscribers that\n"
            "                    want them (YARD_TASK_EVENTS, default on)\n"
            "  --help            this text\n"
            "  --version         print the version\n",
            BROKER_DEFAULT_MAX_QUEUE, BROKER_DEFAULT_GRACE_MS,
            YARD_HEARTBEAT_INTERVAL_MS, YARD_HEARTBEAT_LIVENESS,
            BROKER_DEFAULT_MAX_SUBSCRIBERS);
}

/*  One setting from each source: flag, environment variable, file key. */
enum {
    S_BROKER,
    S_EVENTS,
    S_MAX_QUEUE,
    S_GRACE,
    S_HEARTBEAT,
    S_LOG,
    S_MAX_SUBS,
    S_TASK_EVENTS,
    S_NSETTINGS
};

static const struct {
    const char *flag; /*  long option                                   */
    const char *env;  /*  environment variable                          */
    const char *key;  /*  config file key                               */
} s_settings[S_NSETTINGS] = {
    {"broker", "YARD_BROKER", "broker"},
    {"events", "YARD_EVENTS", "events"},
    {"max-queue", "YARD_MAX_QUEUE", "max_queue"},
    {"grace", "YARD_GRACE_MS", "grace_ms"},
    {"heartbeat", "YARD_HEARTBEAT_MS", "heartbeat_ms"},
    {"log-level", "YARD_LOG_LEVEL", "log_level"},
    {"max-subscribers", "YARD_MAX_SUBSCRIBERS", "max_subscribers"},
    {"task-events", "YARD_TASK_EVENTS", "task_events"},
};

typedef struct {
    const char *flags[S_NSETTINGS]; /*  from the command line            */
    char *file[S_NSETTINGS];        /*  from the config file             */
    const char *config;             /*  --config                         */
    const char **specs;             /*  --breaker, in order              */
    size_t nspecs;
    char **file_specs; /*  breaker.* lines of the file, as specs   */
    size_t nfile_specs;
    char err[256];
} s_args_t;

static int s_file_line(const char *key, const char *value, void *arg)
{
    s_args_t *a = arg;
    for (int i = 0; i < S_NSETTINGS; i++) {
        if (strcmp(key, s_settings[i].key) == 0) {
            free(a->file[i]);
            a->file[i] = strdup(value);
            return a->file[i] ? 0 : 1;
        }
    }
    if (strncmp(key, "breaker.", 8) == 0 && key[8]) {
        char **grown =
            realloc(a->file_specs, (a->nfile_specs + 1) * sizeof(*grown));
        size_t n = strlen(key + 8) + strlen(value) + 2;
        char *spec = malloc(n);
        if (grown)
            a->file_specs = grown;
        if (!grown || !spec) {
            free(spec);
            return 1;
        }
        snprintf(spec, n, "%s=%s", key + 8, value);
        a->file_specs[a->nfile_specs++] = spec;
        return 0;
    }
    snprintf(a->err, sizeof(a->err),
             "unknown key '%s' (known: broker, events, max_queue, grace_ms, "
             "heartbeat_ms, log_level, max_subscribers, task_events, "
             "breaker.[SERVICE.]SETTING)",
             key);
    return 2;
}

static void s_args_free(s_args_t *a)
{
    for (int i = 0; i < S_NSETTINGS; i++)
        free(a->file[i]);
    for (size_t i = 0; i < a->nfile_specs; i++)
        free(a->file_specs[i]);
    free(a->file_specs);
    free(a->specs);
}

/*  The value of a setting: flag > environment > file > NULL. */
static const char *s_pick(const s_args_t *a, int i)
{
    return yard_config_pick(a->flags[i], s_settings[i].env, a->file[i], NULL);
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

static int s_bad(int i, const char *value)
{
    fprintf(stderr, "yard-broker: invalid --%s / %s: '%s' (see --help)\n",
            s_settings[i].flag, s_settings[i].env, value ? value : "");
    return 2;
}

/*  Resolves every setting and runs the broker. */
static int s_run(s_args_t *a)
{
    broker_config_t config;
    memset(&config, 0, sizeof(config));
    config.endpoint = s_pick(a, S_BROKER);
    if (!config.endpoint)
        config.endpoint = BROKER_DEFAULT_ENDPOINT;
    config.events = s_pick(a, S_EVENTS);
    if (!config.events)
        config.events = BROKER_DEFAULT_EVENTS;
    const char *v = s_pick(a, S_MAX_QUEUE);
    config.max_queue = BROKER_DEFAULT_MAX_QUEUE;
    if (v && yard_parse_u32(v, 1, 100000000, &config.max_queue) != 0)
        return s_bad(S_MAX_QUEUE, v);
    v = s_pick(a, S_GRACE);
    config.grace_ms = BROKER_DEFAULT_GRACE_MS;
    if (v && yard_parse_u32(v, 0, 3600000, &config.grace_ms) != 0)
        return s_bad(S_GRACE, v);
    v = s_pick(a, S_HEARTBEAT);
    config.heartbeat_ms = YARD_HEARTBEAT_INTERVAL_MS;
    if (v && yard_parse_u32(v, 10, 60000, &config.heartbeat_ms) != 0)
        return s_bad(S_HEARTBEAT, v);
    config.liveness = YARD_HEARTBEAT_LIVENESS;
    v = s_pick(a, S_MAX_SUBS);
    config.max_subscribers = BROKER_DEFAULT_MAX_SUBSCRIBERS;
    if (v && yard_parse_u32(v, 0, 100000, &config.max_subscribers) != 0)
        return s_bad(S_MAX_SUBS, v);
    v = s_pick(a, S_TASK_EVENTS);
    config.task_events = true;
    if (v && yard_parse_bool(v, &config.task_events) != 0)
        return s_bad(S_TASK_EVENTS, v);
    yard_log_level_t level = YARD_LOG_INFO;
    v = s_pick(a, S_LOG);
    if (v && yard_log_level_parse(v, &level) != 0)
        return s_bad(S_LOG, v);

    //  Breaker settings: defaults, then file, environment and flags in
    //  that order, so the later (stronger) one wins for each setting.
    yard_breaker_config_defaults(&config.breaker);
    const char *env = getenv("YARD_BREAKER");
    char *env_copy = env ? strdup(env) : NULL;
    size_t cap = a->nfile_specs + a->nspecs + (env ? strlen(env) / 2 + 1 : 0);
    const char **specs = calloc(cap ? cap : 1, sizeof(*specs));
    size_t n = 0;
    int rc = 2;
    if (!specs || (env && !env_copy)) {
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < a->nfile_specs; i++) {
        if (s_check_spec(a->file_specs[i], "breaker setting in config file"))
            goto out;
        specs[n++] = a->file_specs[i];
    }
    char *save = NULL;
    for (char *tok = env_copy ? strtok_r(env_copy, " \t", &save) : NULL; tok;
         tok = strtok_r(NULL, " \t", &save)) {
        if (s_check_spec(tok, "YARD_BREAKER"))
            goto out;
        specs[n++] = tok;
    }
    for (size_t i = 0; i < a->nspecs; i++) {
        if (s_check_spec(a->specs[i], "--breaker"))
            goto out;
        specs[n++] = a->specs[i];
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

int main(int argc, char **argv)
{
    s_args_t a;
    memset(&a, 0, sizeof(a));
    a.specs = calloc((size_t)argc + 1, sizeof(*a.specs));
    if (!a.specs)
        return 1;
    struct option options[S_NSETTINGS + 5];
    for (int i = 0; i < S_NSETTINGS; i++)
        options[i] = (struct option){s_settings[i].flag, required_argument,
                                     NULL, 0x100 + i};
    options[S_NSETTINGS] =
        (struct option){"config", required_argument, NULL, 'c'};
    options[S_NSETTINGS + 1] =
        (struct option){"breaker", required_argument, NULL, 'B'};
    options[S_NSETTINGS + 2] = (struct option){"help", no_argument, NULL, 'h'};
    options[S_NSETTINGS + 3] =
        (struct option){"version", no_argument, NULL, 'V'};
    options[S_NSETTINGS + 4] = (struct option){NULL, 0, NULL, 0};
    int opt, rc = -1;
    opterr = 0;
    while (rc < 0 && (opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt >= 0x100 && opt < 0x100 + S_NSETTINGS) {
            a.flags[opt - 0x100] = optarg;
            continue;
        }
        switch (opt) {
        case 'c':
            a.config = optarg;
            break;
        case 'B':
            a.specs[a.nspecs++] = optarg;
            break;
        case 'h':
            s_usage(stdout);
            rc = 0;
            break;
        case 'V':
            printf("yard-broker %s\n", YARD_VERSION_STRING);
            rc = 0;
            break;
        default:
            fprintf(stderr,
                    "yard-broker: unknown or incomplete option '%s' "
                    "(see --help)\n",
                    argv[optind - 1]);
            rc = 2;
            break;
        }
    }
    if (rc < 0 && optind < argc) {
        fprintf(stderr, "yard-broker: unexpected argument '%s'\n",
                argv[optind]);
        rc = 2;
    }
    const char *path = yard_config_pick(a.config, "YARD_CONFIG", NULL, NULL);
    if (rc < 0 && path) {
        char err[256];
        int frc =
            yard_config_file_each(path, s_file_line, &a, err, sizeof(err));
        if (frc != 0) {
            fprintf(stderr, "yard-broker: config file %s: %s\n", path,
                    frc == 2   ? a.err
                    : frc == 1 ? "out of memory"
                               : err);
            rc = 2;
        }
    }
    if (rc < 0)
        rc = s_run(&a);
    s_args_free(&a);
    return rc;
}
