/*  main.c — yard-broker: flags, environment, then the loop.
    Precedence for every setting: flag > environment > default. */
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
            "options (flag > environment > default):\n"
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
            "  --help            this text\n"
            "  --version         print the version\n",
            BROKER_DEFAULT_MAX_QUEUE, BROKER_DEFAULT_GRACE_MS,
            YARD_HEARTBEAT_INTERVAL_MS, YARD_HEARTBEAT_LIVENESS);
}

static int s_bad(const char *what, const char *value)
{
    fprintf(stderr, "yard-broker: invalid %s: '%s' (see --help)\n", what,
            value ? value : "");
    return 2;
}

int main(int argc, char **argv)
{
    const char *f_broker = NULL, *f_events = NULL, *f_max_queue = NULL;
    const char *f_grace = NULL, *f_heartbeat = NULL, *f_log = NULL;
    static const struct option options[] = {
        {"broker", required_argument, NULL, 'b'},
        {"events", required_argument, NULL, 'e'},
        {"max-queue", required_argument, NULL, 'q'},
        {"grace", required_argument, NULL, 'g'},
        {"heartbeat", required_argument, NULL, 'H'},
        {"log-level", required_argument, NULL, 'l'},
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
        case 'h':
            s_usage(stdout);
            return 0;
        case 'V':
            printf("yard-broker %s\n", YARD_VERSION_STRING);
            return 0;
        default:
            fprintf(stderr,
                    "yard-broker: unknown or incomplete option '%s' "
                    "(see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "yard-broker: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    broker_config_t config;
    memset(&config, 0, sizeof(config));
    config.endpoint = yard_config_pick(f_broker, "YARD_BROKER", NULL,
                                       BROKER_DEFAULT_ENDPOINT);
    config.events =
        yard_config_pick(f_events, "YARD_EVENTS", NULL, BROKER_DEFAULT_EVENTS);
    const char *v = yard_config_pick(f_max_queue, "YARD_MAX_QUEUE", NULL, NULL);
    config.max_queue = BROKER_DEFAULT_MAX_QUEUE;
    if (v && yard_parse_u32(v, 1, 100000000, &config.max_queue) != 0)
        return s_bad("--max-queue / YARD_MAX_QUEUE", v);
    v = yard_config_pick(f_grace, "YARD_GRACE_MS", NULL, NULL);
    config.grace_ms = BROKER_DEFAULT_GRACE_MS;
    if (v && yard_parse_u32(v, 0, 3600000, &config.grace_ms) != 0)
        return s_bad("--grace / YARD_GRACE_MS", v);
    v = yard_config_pick(f_heartbeat, "YARD_HEARTBEAT_MS", NULL, NULL);
    config.heartbeat_ms = YARD_HEARTBEAT_INTERVAL_MS;
    if (v && yard_parse_u32(v, 10, 60000, &config.heartbeat_ms) != 0)
        return s_bad("--heartbeat / YARD_HEARTBEAT_MS", v);
    config.liveness = YARD_HEARTBEAT_LIVENESS;
    yard_log_level_t level = YARD_LOG_INFO;
    v = yard_config_pick(f_log, "YARD_LOG_LEVEL", NULL, NULL);
    if (v && yard_log_level_parse(v, &level) != 0)
        return s_bad("--log-level / YARD_LOG_LEVEL", v);
    yard_log_init("yard-broker", level);
    signal(SIGPIPE, SIG_IGN);

    broker_t *broker = broker_new(&config);
    if (!broker)
        return 1;
    int rc = broker_run(broker);
    broker_destroy(&broker);
    return rc;
}
