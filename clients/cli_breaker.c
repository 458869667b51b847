/*  cli_breaker.c — `yard breaker list|show|reset|set`: the broker's
    circuit breakers, through its admin service (service yard.admin,
    payload "breaker ..."; the answers are described in proto/PROTOCOL.md
    section 10). --json prints the broker's JSON as it came, on one line;
    otherwise a table (list) or "key: value" lines (show, reset, set). Like
    `yard stats`, the readable output takes fields leniently ("-" for what
    is missing), so an older or newer broker still prints. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "yard_config.h"

#define S_DEFAULT_TIMEOUT_MS 5000

typedef enum { S_LIST, S_SHOW, S_RESET, S_SET, S_NONE } s_verb_t;

static const char *const s_verbs[] = {"list", "show", "reset", "set"};

static const char s_flags_help[] =
    "  --json         print the broker's JSON as one line instead\n"
    "  --timeout MS   how long to wait for the broker, 1..86400000\n"
    "                 (default 5000)\n";

static void s_usage(FILE *out, s_verb_t verb)
{
    switch (verb) {
    case S_LIST:
        fputs("usage: yard breaker list [--json] [--timeout MS]\n"
              "\n"
              "Prints the breaker defaults and one row per service: state,\n"
              "consecutive failures, outcomes counted, failures, tasks\n"
              "refused, trips, success rate and time until an open breaker\n"
              "lets trial tasks through.\n"
              "\n",
              out);
        break;
    case S_SHOW:
        fputs("usage: yard breaker show SERVICE [--json] [--timeout MS]\n"
              "\n"
              "Prints one service's breaker: state, metrics and settings.\n"
              "\n",
              out);
        break;
    case S_RESET:
        fputs("usage: yard breaker reset SERVICE [--json] [--timeout MS]\n"
              "\n"
              "Closes the service's breaker now, whatever its state, and\n"
              "prints it.\n"
              "\n",
              out);
        break;
    case S_SET:
        fputs("usage: yard breaker set SERVICE|'*' KEY=VALUE... [--json]\n"
              "                        [--timeout MS]\n"
              "\n"
              "Changes breaker settings, all or none: of one service, or\n"
              "with '*' the defaults (followed by every service that did not\n"
              "set that key itself). Prints the service's breaker, or the\n"
              "defaults. KEYs: enabled, fail_threshold, window, min_calls,\n"
              "failure_rate, slow_ms, base_timeout_ms, max_timeout_ms,\n"
              "half_open_test_count, count (a list of error,timeout,lost).\n"
              "\n",
              out);
        break;
    default:
        fputs("usage: yard breaker list [--json] [--timeout MS]\n"
              "       yard breaker show SERVICE [--json] [--timeout MS]\n"
              "       yard breaker reset SERVICE [--json] [--timeout MS]\n"
              "       yard breaker set SERVICE|'*' KEY=VALUE... [--json]\n"
              "                        [--timeout MS]\n"
              "\n"
              "Shows and controls the broker's circuit breakers (one per\n"
              "service). Run 'yard breaker SUBCOMMAND --help' for details.\n"
              "An answer 'invalid' from the broker (unknown service, bad\n"
              "setting) is printed on stderr and exits 1.\n"
              "\n",
              out);
        break;
    }
    fputs(s_flags_help, out);
}

static s_verb_t s_verb_of(const char *word)
{
    for (int i = 0; i < S_NONE; i++)
        if (strcmp(word, s_verbs[i]) == 0)
            return (s_verb_t)i;
    return S_NONE;
}

/* ---- Readable output ------------------------------------------------- */

/*  Writes a JSON scalar (or array of scalars) as plain text. */
static void s_value(FILE *out, const json_t *v)
{
    if (json_is_string(v))
        fputs(json_string_value(v), out);
    else if (json_is_integer(v))
        fprintf(out, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        fprintf(out, "%.4g", json_real_value(v));
    else if (json_is_true(v))
        fputs("true", out);
    else if (json_is_false(v))
        fputs("false", out);
    else if (json_is_array(v)) {
        size_t i;
        const json_t *item;
        if (json_array_size(v) == 0)
            fputs("none", out);
        json_array_foreach((json_t *)v, i, item)
        {
            if (i)
                fputc(',', out);
            s_value(out, item);
        }
    } else if (json_is_object(v)) {
        const char *key;
        const json_t *item;
        bool first = true;
        json_object_foreach((json_t *)v, key, item)
        {
            fprintf(out, "%s%s=", first ? "" : " ", key);
            s_value(out, item);
            first = false;
        }
    } else
        fputs("-", out);
}

static bool s_in(const char *key, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

/*  "key: value" lines of obj: the known keys in order, then the others;
    a nested object (other than the ones in `flat`) becomes an indented
    block. */
static void s_lines(const json_t *obj, const char *const *order,
                    const char *indent)
{
    static const char *const flat[] = {"time_in_state_ms", NULL};
    for (size_t i = 0; order[i]; i++) {
        const json_t *v = json_object_get(obj, order[i]);
        if (!v || (json_is_object(v) && !s_in(order[i], flat)))
            continue;
        printf("%s%s: ", indent, order[i]);
        s_value(stdout, v);
        putchar('\n');
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (s_in(key, order) || (json_is_object(v) && !s_in(key, flat)))
            continue;
        printf("%s%s: ", indent, key);
        s_value(stdout, v);
        putchar('\n');
    }
}

static const char *const s_config_keys[] = {"enabled",
                                            "fail_threshold",
                                            "window",
                                            "min_calls",
                                            "failure_rate",
                                            "slow_ms",
                                            "base_timeout_ms",
                                            "max_timeout_ms",
                                            "half_open_test_count",
                                            "count",
                                            NULL};

static void s_print_config(const json_t *cfg, const char *indent)
{
    s_lines(cfg, s_config_keys, indent);
}

static void s_print_breaker(const json_t *b)
{
    static const char *const order[] = {"service",
                                        "state",
                                        "consecutive_failures",
                                        "total",
                                        "successful",
                                        "failed",
                                        "slow",
                                        "rejected",
                                        "trips",
                                        "success_rate",
                                        "recovery_trials",
                                        "recovery_success_rate",
                                        "consecutive_trips",
                                        "half_open_trials",
                                        "retry_in_ms",
                                        "seconds_until_retry",
                                        "time_in_state_ms",
                                        NULL};
    s_lines(b, order, "");
    const json_t *cfg = json_object_get(b, "config");
    if (json_is_object(cfg)) {
        printf("config:\n");
        s_print_config(cfg, "  ");
    }
    //  Any other nested object a newer broker adds.
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)b, key, v)
    {
        if (json_is_object(v) && strcmp(key, "config") != 0 &&
            strcmp(key, "time_in_state_ms") != 0) {
            printf("%s:\n", key);
            s_lines(v, (const char *const[]){NULL}, "  ");
        }
    }
}

/*  An integer field of obj (or "-") right-aligned in width. */
static void s_cell(const json_t *obj, const char *key, int width)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        printf(" %*lld", width, (long long)json_integer_value(v));
    else if (json_is_real(v))
        printf(" %*.0f", width, json_real_value(v));
    else
        printf(" %*s", width, "-");
}

static void s_list_row(const char *name, const json_t *b)
{
    const char *state = json_string_value(json_object_get(b, "state"));
    printf("%-20.20s %-9.9s", name, state ? state : "-");
    s_cell(b, "consecutive_failures", 8);
    s_cell(b, "total", 8);
    s_cell(b, "failed", 8);
    s_cell(b, "rejected", 8);
    s_cell(b, "trips", 6);
    char text[32];
    const json_t *v = json_object_get(b, "success_rate");
    if (json_is_number(v))
        snprintf(text, sizeof(text), "%.1f", 100.0 * json_number_value(v));
    else
        snprintf(text, sizeof(text), "-");
    printf(" %8s", text);
    v = json_object_get(b, "retry_in_ms");
    if (!json_is_number(v) || json_number_value(v) <= 0)
        snprintf(text, sizeof(text), "-");
    else if (json_number_value(v) < 1000)
        snprintf(text, sizeof(text), "%.0fms", json_number_value(v));
    else
        snprintf(text, sizeof(text), "%.1fs", json_number_value(v) / 1000);
    printf(" %9s\n", text);
}

static void s_print_list(const json_t *root)
{
    const json_t *defaults = json_object_get(root, "defaults");
    if (json_is_object(defaults)) {
        printf("defaults: ");
        bool first = true;
        for (size_t i = 0; s_config_keys[i]; i++) {
            const json_t *v = json_object_get(defaults, s_config_keys[i]);
            if (!v)
                continue;
            printf("%s%s=", first ? "" : " ", s_config_keys[i]);
            s_value(stdout, v);
            first = false;
        }
        printf("\n\n");
    }
    printf("%-20s %-9s %8s %8s %8s %8s %6s %8s %9s\n", "SERVICE", "STATE",
           "FAILURES", "TOTAL", "FAILED", "REJECTED", "TRIPS", "SUCCESS%",
           "RETRY-IN");
    const json_t *services = json_object_get(root, "services");
    const char *name;
    const json_t *b;
    json_object_foreach((json_t *)services, name, b) s_list_row(name, b);
    if (json_object_size(services) == 0)
        printf("(no services)\n");
}

/* ---- The command ----------------------------------------------------- */

/*  Checks one KEY=VALUE word locally (its shape only: the broker judges
    the key and the value). */
static int s_check_setting(const char *word)
{
    const char *eq = strchr(word, '=');
    if (!eq || eq == word || !eq[1] || strpbrk(word, " \t\r\n")) {
        fprintf(stderr,
                "yard breaker set: expected KEY=VALUE (no spaces), not "
                "'%s'\n",
                word);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/*  Builds "breaker VERB [SERVICE [KEY=VALUE...]]" from words. */
static char *s_command(s_verb_t verb, char **words, int nwords)
{
    size_t len = strlen("breaker ") + strlen(s_verbs[verb]) + 1;
    for (int i = 0; i < nwords; i++)
        len += strlen(words[i]) + 1;
    char *text = malloc(len);
    if (!text)
        return NULL;
    int n = snprintf(text, len, "breaker %s", s_verbs[verb]);
    for (int i = 0; i < nwords; i++)
        n += snprintf(text + n, len - (size_t)n, " %s", words[i]);
    return text;
}

int cli_breaker(const cli_global_t *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, CLI_OPT_JSON},
        {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    bool as_json = false, help = false;
    uint32_t timeout_ms = S_DEFAULT_TIMEOUT_MS;
    yard_reply_t *reply = NULL;
    json_t *root = NULL;
    char *command = NULL;
    int rc = 0, opt;
    optind = 0; /*  glibc: full re-initialisation for a new argv */
    opterr = 0;
    //  Flags may come before or after the subcommand and its words.
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (opt == 'h')
            help = true;
        else if (opt == CLI_OPT_JSON)
            as_json = true;
        else if (opt == CLI_OPT_TIMEOUT) {
            if (yard_parse_u32(optarg, 1, YARD_MAX_TIMEOUT_MS, &timeout_ms)) {
                fprintf(stderr,
                        "yard breaker: --timeout wants a whole number in "
                        "1..%u, not '%s'\n",
                        (unsigned)YARD_MAX_TIMEOUT_MS, optarg);
                return CLI_EXIT_USAGE;
            }
        } else
            return cli_bad_option("breaker", argv, opt);
    }
    char **words = argv + optind;
    int nwords = argc - optind;
    s_verb_t verb = nwords > 0 ? s_verb_of(words[0]) : S_NONE;
    if (help) {
        s_usage(stdout, verb);
        return CLI_EXIT_OK;
    }
    if (nwords == 0) {
        fprintf(stderr, "yard breaker: no subcommand given\n");
        s_usage(stderr, S_NONE);
        return CLI_EXIT_USAGE;
    }
    if (verb == S_NONE) {
        fprintf(stderr,
                "yard breaker: unknown subcommand '%s' (known: list, show, "
                "reset, set)\ntry 'yard breaker --help'\n",
                words[0]);
        return CLI_EXIT_USAGE;
    }
    words++;
    nwords--;
    switch (verb) {
    case S_LIST:
        if (nwords != 0) {
            fprintf(stderr, "yard breaker list: unexpected argument '%s'\n",
                    words[0]);
            return CLI_EXIT_USAGE;
        }
        break;
    case S_SHOW:
    case S_RESET:
        if (nwords != 1) {
            fprintf(stderr, "yard breaker %s: expected one SERVICE\n",
                    s_verbs[verb]);
            s_usage(stderr, verb);
            return CLI_EXIT_USAGE;
        }
        if ((rc = cli_check_service("breaker", words[0])) != 0)
            return rc;
        break;
    case S_SET:
        if (nwords < 2) {
            fprintf(stderr,
                    "yard breaker set: expected SERVICE|'*' and at least one "
                    "KEY=VALUE\n");
            s_usage(stderr, verb);
            return CLI_EXIT_USAGE;
        }
        if (strcmp(words[0], "*") != 0 &&
            (rc = cli_check_service("breaker", words[0])) != 0)
            return rc;
        for (int i = 1; i < nwords; i++)
            if ((rc = s_check_setting(words[i])) != 0)
                return rc;
        break;
    default:
        return CLI_EXIT_USAGE;
    }
    if (!(command = s_command(verb, words, nwords))) {
        fprintf(stderr, "yard breaker: out of memory\n");
        return CLI_EXIT_FAILED;
    }
    if (strlen(command) > YARD_MAX_PAYLOAD) {
        fprintf(stderr, "yard breaker: command too long\n");
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if ((rc = cli_admin_call(g, "breaker", command, timeout_ms, &reply,
                             &root)) != 0)
        goto done;
    if (as_json) {
        //  The broker's text as it came (compact: one line).
        if (fwrite(reply->payload, 1, reply->payload_len, stdout) !=
                reply->payload_len ||
            fputc('\n', stdout) == EOF)
            rc = CLI_EXIT_FAILED;
    } else if (verb == S_LIST)
        s_print_list(root);
    else if (verb == S_SET && strcmp(words[0], "*") == 0) {
        printf("defaults:\n");
        s_print_config(root, "  ");
    } else
        s_print_breaker(root);
    if (fflush(stdout) != 0)
        rc = CLI_EXIT_FAILED;
done:
    json_decref(root);
    yard_reply_destroy(&reply);
    free(command);
    return rc;
}
