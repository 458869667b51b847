/*  cli.c — `yard`, the command-line tool: global flags, the command
    dispatch, the helpers the commands share, and `yard submit`.
    `yard batch` is in cli_batch.c, `yard stats` in cli_stats.c,
    `yard breaker` in cli_breaker.c, `yard publish` and `yard subscribe`
    in cli_events.c, `yard cache` in cli_cache.c. The msgpack -> JSON
    conversion several commands print with is here too.

    Every bad input (unknown flag, a number that is not strictly a number
    in range, a payload too large) is a one-line message on stderr and exit
    code 2, never a crash; the exit codes are listed in cli.h and in
    `yard --help`. */
#include "cli.h"

#include <jansson.h>
#include <sodium.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yard_config.h"
#include "yard_log.h"

#define S_DEFAULT_BROKER "tcp://127.0.0.1:5555"
#define S_DEFAULT_EVENTS "tcp://127.0.0.1:5556"

/*  Waits are cut into slices this long to look at the signal flag. */
#define S_SLICE_MS 250

static volatile sig_atomic_t s_signalled = 0;

static void s_on_signal(int sig)
{
    (void)sig;
    s_signalled = 1;
}

bool cli_interrupted(void)
{
    return s_signalled != 0;
}

static void s_usage(FILE *out)
{
    fputs("usage: yard [--broker EP] [--events EP] [--log-level L] COMMAND "
          "[ARGS]\n"
          "\n"
          "Talks to a Yard broker.\n"
          "\n"
          "Commands:\n"
          "  submit SERVICE PAYLOAD  run one task and print its result\n"
          "  batch SERVICE           run one task per stdin line, print JSON "
          "lines\n"
          "  stats                   print the broker's metrics\n"
          "  ping                    probe every worker, print round trips\n"
          "  breaker SUBCOMMAND      list, show, reset or set circuit "
          "breakers\n"
          "  publish TYPE PAYLOAD    publish one event\n"
          "  subscribe [TYPE...]     print events as JSON lines as they "
          "arrive\n"
          "  cache SUBCOMMAND        get, set, delete or invalidate entries "
          "of\n"
          "                          yard.cache, or print its stats\n"
          "Run 'yard COMMAND --help' for a command's flags.\n"
          "\n"
          "Global flags:\n"
          "  --broker EP      task endpoint (env YARD_BROKER, "
          "default " S_DEFAULT_BROKER ")\n"
          "  --events EP      event endpoint (env YARD_EVENTS, "
          "default " S_DEFAULT_EVENTS ")\n"
          "  --log-level L    error|warn|info|debug (env YARD_LOG_LEVEL, "
          "default warn)\n"
          "  -h, --help       this text\n"
          "  --version        print the version\n"
          "\n"
          "Exit codes: 0 ok; 1 task failed (error, invalid; batch: any task "
          "not ok;\n"
          "publish: event refused); 2 usage error; 3 timeout; 4 rejected or\n"
          "circuit_open (subscribe: too many subscribers); 5 cancelled or "
          "shutdown;\n"
          "6 broker unreachable (no reply at all); 130 interrupted.\n",
          out);
}

/* ---- Shared helpers ---------------------------------------------------- */

int cli_exit_for_status(yard_status_t status)
{
    switch (status) {
    case YARD_OK:
        return CLI_EXIT_OK;
    case YARD_TIMEOUT:
        return CLI_EXIT_TIMEOUT;
    case YARD_REJECTED:
    case YARD_CIRCUIT_OPEN:
        return CLI_EXIT_REJECTED;
    case YARD_CANCELLED:
    case YARD_SHUTDOWN:
        return CLI_EXIT_CANCELLED;
    default:
        return CLI_EXIT_FAILED;
    }
}

int cli_bad_option(const char *cmd, char **argv, int opt)
{
    const char *arg = argv[optind - 1];
    if (opt == ':')
        fprintf(stderr, "yard %s: option '%s' needs a value\n", cmd, arg);
    else if (optopt && optopt < 0x100)
        fprintf(stderr, "yard %s: unknown option '-%c'\n", cmd, optopt);
    else
        fprintf(stderr, "yard %s: unknown option '%s'\n", cmd, arg);
    fprintf(stderr, "try 'yard %s --help'\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_check_service(const char *cmd, const char *service)
{
    size_t len = strlen(service);
    if (len >= 1 && len <= YARD_MAX_SERVICE &&
        strspn(service, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789._:-") == len)
        return 0;
    fprintf(stderr,
            "yard %s: bad service name '%s': 1..%d characters of "
            "A-Z a-z 0-9 . _ : -\n",
            cmd, service, YARD_MAX_SERVICE);
    return CLI_EXIT_USAGE;
}

/*  Parses a flag's number strictly, or explains and returns usage. */
static int s_number(const char *cmd, const char *flag, const char *arg,
                    uint32_t min, uint32_t max, uint32_t *out)
{
    if (yard_parse_u32(arg, min, max, out) == 0)
        return 0;
    fprintf(stderr, "yard %s: %s wants a whole number in %u..%u, not '%s'\n",
            cmd, flag, (unsigned)min, (unsigned)max, arg);
    return CLI_EXIT_USAGE;
}

int cli_task_flag(const char *cmd, int opt, const char *arg,
                  cli_task_flags_t *flags)
{
    yard_submit_opts_t *o = &flags->opts;
    uint32_t value;
    int rc;
    switch (opt) {
    case CLI_OPT_TIMEOUT:
        rc = s_number(cmd, "--timeout", arg, 1, YARD_MAX_TIMEOUT_MS,
                      &o->timeout_ms);
        return rc;
    case CLI_OPT_RETRIES:
        return s_number(cmd, "--retries", arg, 0, YARD_MAX_RETRIES,
                        &o->retries);
    case CLI_OPT_BACKOFF:
        rc = s_number(cmd, "--backoff", arg, 0, YARD_MAX_BACKOFF_MS,
                      &o->backoff_ms);
        if (rc == 0 && o->backoff_ms == 0)
            o->backoff_ms = YARD_BACKOFF_NONE; /*  retry at once */
        return rc;
    case CLI_OPT_PRIORITY:
        rc = s_number(cmd, "--priority", arg, 0, YARD_MAX_PRIORITY, &value);
        o->priority = (uint8_t)value;
        return rc;
    case CLI_OPT_ID: {
        size_t len = strlen(arg);
        if (len == 0 || len > YARD_MAX_ID) {
            fprintf(stderr, "yard %s: --id wants 1..%d bytes\n", cmd,
                    YARD_MAX_ID);
            return CLI_EXIT_USAGE;
        }
        o->id = arg;
        return 0;
    }
    case CLI_OPT_HEADER: {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg) {
            fprintf(stderr, "yard %s: --header wants KEY=VALUE, not '%s'\n",
                    cmd, arg);
            return CLI_EXIT_USAGE;
        }
        size_t klen = (size_t)(eq - arg), vlen = strlen(eq + 1);
        if (klen > YARD_MAX_HEADER_KEY || vlen > YARD_MAX_HEADER_VALUE) {
            fprintf(stderr,
                    "yard %s: --header key must be 1..%d bytes and value "
                    "at most %d\n",
                    cmd, YARD_MAX_HEADER_KEY, YARD_MAX_HEADER_VALUE);
            return CLI_EXIT_USAGE;
        }
        if (flags->nheaders == YARD_MAX_HEADERS) {
            fprintf(stderr, "yard %s: at most %d --header flags\n", cmd,
                    YARD_MAX_HEADERS);
            return CLI_EXIT_USAGE;
        }
        char *copy = strdup(arg);
        if (!copy) {
            fprintf(stderr, "yard %s: out of memory\n", cmd);
            return CLI_EXIT_FAILED;
        }
        copy[klen] = '\0';
        size_t n = flags->nheaders++;
        flags->header_text[n] = copy;
        flags->headers[2 * n] = copy;
        flags->headers[2 * n + 1] = copy + klen + 1;
        flags->headers[2 * n + 2] = NULL;
        o->headers = flags->headers;
        return 0;
    }
    case CLI_OPT_CACHE:
        o->cache = &flags->cache;
        return 0;
    case CLI_OPT_CACHE_TTL:
        o->cache = &flags->cache;
        return s_number(cmd, "--cache-ttl", arg, 1,
                        YARD_CACHE_POLICY_MAX_TTL_MS, &flags->cache.ttl_ms);
    case CLI_OPT_CACHE_TAG:
    case CLI_OPT_CACHE_KEY:
    case CLI_OPT_CACHE_EXCLUDE:
    case CLI_OPT_CACHE_HEADER: {
        static const char *const names[] = {
            "--cache-tag", "--cache-key", "--cache-exclude", "--cache-header"};
        size_t i = (size_t)(opt - CLI_OPT_CACHE_TAG);
        size_t max = i == 0 ? YARD_CACHE_MAX_TAGS : YARD_CACHE_MAX_NAMES;
        size_t len = strlen(arg);
        if (len == 0 || len > YARD_CACHE_MAX_NAME) {
            fprintf(stderr, "yard %s: %s wants 1..%d bytes\n", cmd, names[i],
                    YARD_CACHE_MAX_NAME);
            return CLI_EXIT_USAGE;
        }
        if (flags->cache_counts[i] == max) {
            fprintf(stderr, "yard %s: at most %zu %s flags\n", cmd, max,
                    names[i]);
            return CLI_EXIT_USAGE;
        }
        const char **list = flags->cache_lists[i];
        list[flags->cache_counts[i]++] = arg;
        list[flags->cache_counts[i]] = NULL;
        const char *const **slot[] = {&flags->cache.tags, &flags->cache.key,
                                      &flags->cache.exclude,
                                      &flags->cache.headers};
        *slot[i] = list;
        if (flags->cache.key && flags->cache.exclude) {
            fprintf(stderr,
                    "yard %s: --cache-key and --cache-exclude do not go "
                    "together\n",
                    cmd);
            return CLI_EXIT_USAGE;
        }
        o->cache = &flags->cache;
        return 0;
    }
    default:
        return CLI_EXIT_USAGE;
    }
}

void cli_task_flags_free(cli_task_flags_t *flags)
{
    for (size_t i = 0; i < flags->nheaders; i++)
        free(flags->header_text[i]);
    flags->nheaders = 0;
}

yard_client_t *cli_client_new(const cli_global_t *g)
{
    yard_client_t *client = yard_client_new(g->broker);
    if (!client)
        fprintf(stderr, "yard: cannot use broker endpoint '%s': %s\n",
                g->broker, zmq_strerror(errno));
    return client;
}

int cli_call(const cli_global_t *g, const char *cmd, const char *service,
             const void *payload, size_t len, const yard_submit_opts_t *opts,
             yard_reply_t **reply)
{
    *reply = NULL;
    yard_client_t *client = cli_client_new(g);
    if (!client)
        return CLI_EXIT_USAGE;
    char id[YARD_CLIENT_ID_MAX];
    int rc =
        yard_client_submit(client, service, payload, len, opts, id, sizeof(id));
    if (rc) {
        /*  The encoder refused it: a bad service name, too large ... */
        fprintf(stderr, "yard %s: cannot submit to '%s': %s\n", cmd, service,
                yard_strerror(rc));
        rc = rc == YARD_E_IO ? CLI_EXIT_FAILED : CLI_EXIT_USAGE;
    } else if ((rc = cli_wait_one(client, g, id, reply)) == 0 &&
               (*reply)->status != YARD_OK) {
        rc = cli_report_failure(*reply);
    }
    yard_client_destroy(&client);
    if (rc)
        yard_reply_destroy(reply);
    return rc;
}

int cli_admin_call(const cli_global_t *g, const char *cmd, const char *command,
                   uint32_t timeout_ms, yard_reply_t **reply, json_t **root)
{
    *root = NULL;
    yard_submit_opts_t opts = {.timeout_ms = timeout_ms};
    int rc = cli_call(g, cmd, YARD_ADMIN_SERVICE, command, strlen(command),
                      &opts, reply);
    if (rc == 0) {
        json_error_t jerr;
        *root = json_loadb((const char *)(*reply)->payload,
                           (*reply)->payload_len, 0, &jerr);
        if (!json_is_object(*root)) {
            fprintf(stderr,
                    "yard %s: the broker's answer is not a JSON object: %s\n",
                    cmd, *root ? "another JSON value" : jerr.text);
            rc = CLI_EXIT_FAILED;
        }
    }
    if (rc) {
        json_decref(*root);
        *root = NULL;
        yard_reply_destroy(reply);
    }
    return rc;
}

int cli_report_failure(const yard_reply_t *reply)
{
    fprintf(stderr, "yard: %s: %s", yard_status_name(reply->status),
            reply->error && reply->error[0] ? reply->error : "no detail");
    if (reply->attempts > 1)
        fprintf(stderr, " (after %u attempts)", (unsigned)reply->attempts);
    if (reply->retry_after_ms)
        fprintf(stderr, " (retry after %u ms)",
                (unsigned)reply->retry_after_ms);
    fputc('\n', stderr);
    return cli_exit_for_status(reply->status);
}

int cli_read_stdin(const char *cmd, const char *what, size_t max, char **out,
                   size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        goto nomem;
    for (;;) {
        if (n == cap) {
            if (cap > max)
                break;
            cap *= 2;
            char *bigger = realloc(buf, cap);
            if (!bigger)
                goto nomem;
            buf = bigger;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        fprintf(stderr, "yard %s: cannot read stdin: %s\n", cmd,
                strerror(errno));
        return CLI_EXIT_FAILED;
    }
    if (n > max) {
        free(buf);
        fprintf(stderr, "yard %s: %s on stdin exceeds %zu bytes\n", cmd, what,
                max);
        return CLI_EXIT_USAGE;
    }
    *out = buf;
    *len = n;
    return 0;
nomem:
    free(buf);
    fprintf(stderr, "yard %s: out of memory\n", cmd);
    return CLI_EXIT_FAILED;
}

int cli_wait_one(yard_client_t *client, const cli_global_t *g, const char *id,
                 yard_reply_t **reply)
{
    /*  Short slices, so a signal that lands outside zmq_poll is seen too.
        With no word at all from the broker after CLI_UNREACHABLE_MS it is
        not there (a live one answers our heartbeat within one interval);
        otherwise wait as long as the task may take: the library's local
        give-up ends it. */
    int64_t waited_ms = 0;
    for (;;) {
        int rc = yard_client_wait_id(client, id, S_SLICE_MS, reply);
        if (rc == 0)
            break;
        if (rc == YARD_E_INTERRUPTED ||
            (rc == YARD_E_TIMEOUT && cli_interrupted())) {
            yard_client_cancel(client, id);
            fprintf(stderr, "yard: interrupted\n");
            return CLI_EXIT_INTERRUPTED;
        }
        if (rc != YARD_E_TIMEOUT) {
            fprintf(stderr, "yard: %s\n", yard_strerror(rc));
            return CLI_EXIT_FAILED;
        }
        waited_ms += S_SLICE_MS;
        if (waited_ms >= CLI_UNREACHABLE_MS &&
            !yard_client_broker_seen(client)) {
            yard_client_cancel(client, id);
            fprintf(stderr, "yard: broker unreachable: no reply from %s\n",
                    g->broker);
            return CLI_EXIT_UNREACHABLE;
        }
    }
    if ((*reply)->local && !yard_client_broker_seen(client)) {
        /*  The library gave up without ever hearing from the broker. */
        fprintf(stderr, "yard: broker unreachable: no reply from %s\n",
                g->broker);
        yard_reply_destroy(reply);
        return CLI_EXIT_UNREACHABLE;
    }
    return 0;
}

/* ---- yard submit ------------------------------------------------------- */

static void s_submit_usage(FILE *out)
{
    fputs("usage: yard submit [--timeout MS] [--retries N] [--backoff MS]\n"
          "                   [--priority P] [--id ID] [--header K=V]...\n"
          "                   [--cache] [--cache-ttl MS] [--cache-tag T]...\n"
          "                   [--cache-key F | --cache-exclude F]...\n"
          "                   [--cache-header H]... SERVICE PAYLOAD\n"
          "\n"
          "Runs one task and prints its result payload (raw bytes, then a\n"
          "newline). PAYLOAD '-' reads the payload from stdin, byte for "
          "byte.\n"
          "On failure prints 'yard: <status>: <error>' on stderr and exits\n"
          "with the status's code (see 'yard --help'). Put '--' before a\n"
          "PAYLOAD that starts with '-'.\n"
          "\n"
          "  --timeout MS   whole-task deadline, 1..86400000 (default 30000)\n"
          "  --retries N    extra attempts after a handler error, 0..16 "
          "(default 0)\n"
          "  --backoff MS   base delay between attempts, 0..60000 (default "
          "100)\n"
          "  --priority P   0..9, 9 first (default 0)\n"
          "  --id ID        task id, 1..128 bytes (default: generated)\n"
          "  --header K=V   task header (trace id, metadata); "
          "repeatable\n" CLI_CACHE_HELP,
          out);
}

int cli_submit(const cli_global_t *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},
        {"retries", required_argument, NULL, CLI_OPT_RETRIES},
        {"backoff", required_argument, NULL, CLI_OPT_BACKOFF},
        {"priority", required_argument, NULL, CLI_OPT_PRIORITY},
        {"id", required_argument, NULL, CLI_OPT_ID},
        {"header", required_argument, NULL, CLI_OPT_HEADER},
        CLI_CACHE_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    cli_task_flags_t flags;
    memset(&flags, 0, sizeof(flags));
    char *stdin_buf = NULL;
    yard_reply_t *reply = NULL;
    int rc = 0, opt;
    optind = 0; /*  glibc: full re-initialisation for a new argv */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            s_submit_usage(stdout);
            goto done;
        }
        if (opt == '?' || opt == ':') {
            rc = cli_bad_option("submit", argv, opt);
            goto done;
        }
        if ((rc = cli_task_flag("submit", opt, optarg, &flags)) != 0)
            goto done;
    }
    if (argc - optind != 2) {
        fprintf(stderr, "yard submit: expected SERVICE PAYLOAD\n");
        s_submit_usage(stderr);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    const char *service = argv[optind];
    const char *payload = argv[optind + 1];
    if ((rc = cli_check_service("submit", service)) != 0)
        goto done;
    size_t len = strlen(payload);
    if (strcmp(payload, "-") == 0) {
        if ((rc = cli_read_stdin("submit", "payload", YARD_MAX_PAYLOAD,
                                 &stdin_buf, &len)) != 0)
            goto done;
        payload = stdin_buf;
    }
    if (len > YARD_MAX_PAYLOAD) {
        fprintf(stderr, "yard submit: payload exceeds %u bytes\n",
                (unsigned)YARD_MAX_PAYLOAD);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if ((rc = cli_call(g, "submit", service, payload, len, &flags.opts,
                       &reply)) != 0)
        goto done;
    fwrite(reply->payload, 1, reply->payload_len, stdout);
    fputc('\n', stdout);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "yard submit: cannot write stdout: %s\n",
                strerror(errno));
        rc = CLI_EXIT_FAILED;
    }
done:
    yard_reply_destroy(&reply);
    free(stdin_buf);
    cli_task_flags_free(&flags);
    return rc;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"broker", required_argument, NULL, 'b'},
        {"events", required_argument, NULL, 'e'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char *broker = NULL, *events = NULL, *level_text = NULL;
    int opt;
    opterr = 0;
    /*  '+': stop at the command; its flags are its own. */
    while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            broker = optarg;
            break;
        case 'e':
            events = optarg;
            break;
        case 'l':
            level_text = optarg;
            break;
        case 'h':
            s_usage(stdout);
            return CLI_EXIT_OK;
        case 'V':
            printf("yard %s\n", YARD_VERSION_STRING);
            return CLI_EXIT_OK;
        default:
            if (opt == ':')
                fprintf(stderr, "yard: option '%s' needs a value\n",
                        argv[optind - 1]);
            else
                fprintf(stderr, "yard: unknown option '%s'\n",
                        argv[optind - 1]);
            fprintf(stderr, "try 'yard --help'\n");
            return CLI_EXIT_USAGE;
        }
    }
    cli_global_t g = {
        .broker =
            yard_config_pick(broker, "YARD_BROKER", NULL, S_DEFAULT_BROKER),
        .events =
            yard_config_pick(events, "YARD_EVENTS", NULL, S_DEFAULT_EVENTS),
    };
    yard_log_level_t level = YARD_LOG_WARN;
    level_text = yard_config_pick(level_text, "YARD_LOG_LEVEL", NULL, "warn");
    if (yard_log_level_parse(level_text, &level) != 0) {
        fprintf(stderr,
                "yard: log level must be error, warn, info or debug, not "
                "'%s'\n",
                level_text);
        return CLI_EXIT_USAGE;
    }
    yard_log_init("yard", level);
    if (optind >= argc) {
        fprintf(stderr, "yard: no command given\n");
        s_usage(stderr);
        return CLI_EXIT_USAGE;
    }

    /*  No SA_RESTART: a signal must break zmq_poll so the command can
        cancel what it has in flight and exit. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const char *cmd = argv[optind];
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    if (strcmp(cmd, "submit") == 0)
        return cli_submit(&g, sub_argc, sub_argv);
    if (strcmp(cmd, "batch") == 0)
        return cli_batch(&g, sub_argc, sub_argv);
    if (strcmp(cmd, "stats") == 0)
        return cli_stats(&g, sub_argc, sub_argv);
    if (strcmp(cmd, "ping") == 0)
        return cli_ping(&g, sub_argc, sub_argv);
    if (strcmp(cmd, "breaker") == 0)
        return cli_breaker(&g, sub_argc, sub_argv);
    if (strcmp(cmd, "publish") == 0)
        return cli_publish(&g, sub_argc, sub_argv);
    if (strcmp(cmd, "subscribe") == 0)
        return cli_subscribe(&g, sub_argc, sub_argv);
    if (strcmp(cmd, "cache") == 0)
        return cli_cache(&g, sub_argc, sub_argv);
    if (strcmp(cmd, "help") == 0) {
        s_usage(stdout);
        return CLI_EXIT_OK;
    }
    fprintf(stderr, "yard: unknown command '%s'\ntry 'yard --help'\n", cmd);
    return CLI_EXIT_USAGE;
}
