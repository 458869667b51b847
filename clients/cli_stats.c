/*  cli_stats.c — `yard stats [--json]`, and `yard ping`, which probes every
    worker through the broker (admin "ping") and prints their round trips.

    `yard stats` asks the broker for its metrics
    (service yard.admin, payload "stats"; the JSON layout is in
    proto/PROTOCOL.md section 10) and prints them either as one
    compact JSON object on one line, or as tables for people. The table
    code reads fields leniently ("-" for what is missing) so an older or
    newer broker still prints. */
#include "cli.h"
#include "yard_json.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "yard_config.h"

#define S_DEFAULT_TIMEOUT_MS 5000

static void s_ping_usage(FILE *out);

static void s_stats_usage(FILE *out)
{
    fputs("usage: yard stats [--json] [--timeout MS]\n"
          "\n"
          "Prints the broker's metrics: per service submitted, completed,\n"
          "failed, timeouts, rejected, queued, in flight, workers and "
          "latency\n"
          "percentiles, then the workers.\n"
          "\n"
          "  --json         print the broker's JSON as one line instead\n"
          "  --timeout MS   how long to wait for the broker, 1..86400000\n"
          "                 (default 5000)\n",
          out);
}

/*  Writes an integer field of obj (or "-") right-aligned in width. */
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

/*  Writes a latency in microseconds as a short human figure. */
static void s_latency(const json_t *metrics, const char *key, int width)
{
    const json_t *v =
        json_object_get(json_object_get(metrics, "latency_us"), key);
    char text[32];
    if (!json_is_number(v))
        snprintf(text, sizeof(text), "-");
    else {
        double us = json_number_value(v);
        if (us < 1000)
            snprintf(text, sizeof(text), "%.0fus", us);
        else if (us < 1000000)
            snprintf(text, sizeof(text), "%.1fms", us / 1000);
        else
            snprintf(text, sizeof(text), "%.2fs", us / 1000000);
    }
    printf(" %*s", width, text);
}

static void s_service_row(const char *name, const json_t *m)
{
    printf("%-20.20s", name);
    s_cell(m, "submitted", 10);
    s_cell(m, "completed", 10);
    s_cell(m, "failed", 7);
    s_cell(m, "timed_out", 8);
    s_cell(m, "rejected", 8);
    s_cell(m, "queued", 7);
    s_cell(m, "in_flight", 9);
    s_cell(m, "workers", 7);
    s_latency(m, "p50", 8);
    s_latency(m, "p99", 8);
    s_cell(m, "circuit_open", 8);
    const json_t *breaker = json_object_get(m, "breaker");
    const char *state = json_string_value(json_object_get(breaker, "state"));
    printf(" %-9s", state ? state : "-");
    putchar('\n');
}

static const char *s_text(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "-";
}

static void s_print_tables(const json_t *root)
{
    const json_t *broker = json_object_get(root, "broker");
    if (json_is_object(broker)) {
        printf("broker %s pid", s_text(broker, "version"));
        s_cell(broker, "pid", 0);
        printf(" uptime_ms");
        s_cell(broker, "uptime_ms", 0);
        const json_t *mem = json_object_get(root, "memory");
        const json_t *loop = json_object_get(root, "loop");
        printf(" rss_bytes");
        s_cell(mem, "rss_bytes", 0);
        printf(" loop_stalls");
        s_cell(loop, "stalls", 0);
        if (json_is_true(json_object_get(broker, "draining")))
            printf(" DRAINING");
        printf("\n\n");
    }
    printf("%-20s %10s %10s %7s %8s %8s %7s %9s %7s %8s %8s %8s %-9s\n",
           "SERVICE", "SUBMITTED", "COMPLETED", "FAILED", "TIMEOUTS",
           "REJECTED", "QUEUED", "IN-FLIGHT", "WORKERS", "P50", "P99",
           "CIRCUIT", "BREAKER");
    const json_t *services = json_object_get(root, "services");
    const char *name;
    const json_t *m;
    json_object_foreach((json_t *)services, name, m) s_service_row(name, m);
    const json_t *total = json_object_get(root, "total");
    if (json_is_object(total))
        s_service_row("(total)", total);

    const json_t *workers = json_object_get(root, "workers");
    printf("\n%-20s %-32s %-20s %8s %9s %9s\n", "WORKER SERVICE", "ID", "NAME",
           "CAPACITY", "IN-FLIGHT", "SEEN(ms)");
    size_t i;
    const json_t *w;
    json_array_foreach(workers, i, w)
    {
        printf("%-20.20s %-32.32s %-20.20s", s_text(w, "service"),
               s_text(w, "id"), s_text(w, "name"));
        s_cell(w, "capacity", 8);
        s_cell(w, "in_flight", 9);
        s_cell(w, "last_seen_ms", 9);
        putchar('\n');
    }
    if (json_array_size(workers) == 0)
        printf("(no workers)\n");

    const json_t *yc = json_object_get(root, "yard_cache");
    if (json_is_object(yc)) {
        const json_t *l1 = json_object_get(yc, "l1");
        const json_t *l2 = json_object_get(yc, "l2");
        printf("\nCACHE           GETS       HITS     MISSES HIT-RATE  "
               "L1-ENTRIES   L2-HITS DEGRADED\n%-9s",
               "(one)");
        s_cell(yc, "gets", 10);
        s_cell(yc, "hits", 10);
        s_cell(yc, "misses", 10);
        const json_t *rate = json_object_get(yc, "hit_rate");
        printf(" %7.1f%%",
               json_is_number(rate) ? 100 * json_number_value(rate) : 0.0);
        s_cell(l1, "entries", 11);
        s_cell(l2, "hits", 9);
        printf(" %s\n",
               json_is_true(json_object_get(yc, "degraded")) ? "yes" : "no");
    }

    const json_t *events = json_object_get(root, "events");
    if (json_is_object(events)) {
        printf("\nEVENTS    PUBLISHED  DELIVERED    DROPPED    INVALID "
               "SUBSCRIBERS\n%-9s",
               "(total)");
        s_cell(events, "published", 10);
        s_cell(events, "delivered", 10);
        s_cell(events, "dropped", 10);
        s_cell(events, "invalid", 10);
        s_cell(events, "subscribers", 11);
        putchar('\n');
    }
}

/*  When yard-cache processes are registered, asks one for its stats and
    adds them to the broker's as "yard_cache" (null when it does not
    answer), so `yard stats` shows the cache next to the broker. */
static void s_add_cache_stats(const cli_global_t *g, json_t *root,
                              uint32_t timeout_ms)
{
    const json_t *svc =
        json_object_get(json_object_get(root, "services"), "yard.cache");
    if (json_integer_value(json_object_get(svc, "workers")) <= 0)
        return;
    static const char req[] = "\x81\xa2op\xa5stats"; /*  {op: "stats"} */
    yard_submit_opts_t opts = {.timeout_ms = timeout_ms};
    yard_reply_t *reply = NULL;
    json_t *cache = NULL;
    //  Quietly (no cli_call): the broker's stats are what was asked for.
    yard_client_t *client = yard_client_new(g->broker);
    int rc = client ? yard_client_call(client, "yard.cache", req,
                                       sizeof(req) - 1, &opts, &reply)
                    : YARD_E_IO;
    yard_client_destroy(&client);
    if (rc == 0 && reply->status == YARD_OK &&
        yard_msgpack_check(reply->payload, reply->payload_len) == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, (const char *)reply->payload,
                                reply->payload_len,
                                NULL) == MSGPACK_UNPACK_SUCCESS)
            cache = yard_json_from_mp(&u.data);
        msgpack_unpacked_destroy(&u);
    }
    yard_reply_destroy(&reply);
    json_object_set_new(root, "yard_cache", cache ? cache : json_null());
}

/*  The flags `yard stats` and `yard ping` share: --json, --timeout MS
    (1..max), --help (usage). Returns -1 to go on, or an exit code. */
static int s_parse_flags(const char *cmd, int argc, char **argv,
                         void (*usage)(FILE *), uint32_t max, bool *as_json,
                         uint32_t *timeout_ms)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, CLI_OPT_JSON},
        {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int opt;
    optind = 0; /*  glibc: full re-initialisation for a new argv */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        if (opt == CLI_OPT_JSON)
            *as_json = true;
        else if (opt == CLI_OPT_TIMEOUT) {
            if (yard_parse_u32(optarg, 1, max, timeout_ms)) {
                fprintf(stderr,
                        "yard %s: --timeout wants a whole number in "
                        "1..%u, not '%s'\n",
                        cmd, (unsigned)max, optarg);
                return CLI_EXIT_USAGE;
            }
        } else
            return cli_bad_option(cmd, argv, opt);
    }
    if (optind != argc) {
        fprintf(stderr, "yard %s: unexpected argument '%s'\n", cmd,
                argv[optind]);
        return CLI_EXIT_USAGE;
    }
    return -1;
}

int cli_stats(const cli_global_t *g, int argc, char **argv)
{
    bool as_json = false;
    uint32_t timeout_ms = S_DEFAULT_TIMEOUT_MS;
    yard_reply_t *reply = NULL;
    json_t *root = NULL;
    int rc = s_parse_flags("stats", argc, argv, s_stats_usage,
                           YARD_MAX_TIMEOUT_MS, &as_json, &timeout_ms);
    if (rc >= 0)
        return rc;
    rc = 0;
    if ((rc = cli_admin_call(g, "stats", "stats", timeout_ms, &reply, &root)) !=
        0)
        goto done;
    s_add_cache_stats(g, root, timeout_ms);
    if (as_json) {
        if (json_dumpf(root, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
            fputc('\n', stdout) == EOF)
            rc = CLI_EXIT_FAILED;
    } else
        s_print_tables(root);
    if (fflush(stdout) != 0)
        rc = CLI_EXIT_FAILED;
done:
    json_decref(root);
    yard_reply_destroy(&reply);
    return rc;
}

static void s_ping_usage(FILE *out)
{
    fputs("usage: yard ping [--json] [--timeout MS]\n"
          "\n"
          "Probes every worker through the broker and prints each one's\n"
          "round trip, or that it did not answer within the timeout.\n"
          "Exits 0 when every worker answered, 1 when one did not.\n"
          "\n"
          "  --json         print the broker's JSON as one line instead\n"
          "  --timeout MS   how long the workers have, 1..10000 (default\n"
          "                 1000)\n",
          out);
}

int cli_ping(const cli_global_t *g, int argc, char **argv)
{
    bool as_json = false;
    uint32_t timeout_ms = 1000;
    yard_reply_t *reply = NULL;
    json_t *root = NULL;
    int rc = s_parse_flags("ping", argc, argv, s_ping_usage, 10000, &as_json,
                           &timeout_ms);
    if (rc >= 0)
        return rc;
    rc = 0;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "ping %u", timeout_ms);
    if ((rc = cli_admin_call(g, "ping", cmd, timeout_ms + S_DEFAULT_TIMEOUT_MS,
                             &reply, &root)) != 0)
        goto done;
    const json_t *workers = json_object_get(root, "workers");
    if (as_json) {
        if (json_dumpf(root, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
            fputc('\n', stdout) == EOF)
            rc = CLI_EXIT_FAILED;
    } else {
        printf("%-20s %-32s %-20s %8s %12s\n", "SERVICE", "ID", "NAME", "PID",
               "RTT");
        size_t i;
        const json_t *w;
        json_array_foreach(workers, i, w)
        {
            printf("%-20.20s %-32.32s %-20.20s", s_text(w, "service"),
                   s_text(w, "id"), s_text(w, "name"));
            s_cell(w, "pid", 8);
            const json_t *rtt = json_object_get(w, "rtt_us");
            if (json_is_integer(rtt))
                printf(" %10.3fms\n", (double)json_integer_value(rtt) / 1000);
            else
                printf(" %12s\n", "no answer");
        }
        if (json_array_size(workers) == 0)
            printf("(no workers)\n");
    }
    if (!json_is_true(json_object_get(root, "complete")) && rc == 0)
        rc = CLI_EXIT_FAILED;
    if (fflush(stdout) != 0)
        rc = CLI_EXIT_FAILED;
done:
    json_decref(root);
    yard_reply_destroy(&reply);
    return rc;
}
