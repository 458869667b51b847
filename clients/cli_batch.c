/*  cli_batch.c — `yard batch SERVICE`: one task per stdin line, run
    through yard_client_map with a window of tasks in flight, each result
    printed as one JSON line the moment it arrives (completion order; the
    "index" field is the line's 0-based position in the input).

    Payload encoding in the output: a payload that is valid UTF-8 is a JSON
    string (jansson escapes what JSON needs, including NUL as \u0000);
    anything else is {"base64":"..."} so binary results survive exactly,
    never silently mangled. */
#include "cli.h"
#include "yard_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "yard_config.h"

#define S_DEFAULT_WINDOW 64
#define S_MAX_WINDOW 100000

/*  What the map callback needs. */
typedef struct {
    size_t ok;     /*  results with status ok                         */
    size_t failed; /*  results with any other status                   */
    bool io_error; /*  stdout could not be written                     */
} s_batch_t;

static void s_batch_usage(FILE *out)
{
    fputs("usage: yard batch [--timeout MS] [--retries N] [--backoff MS]\n"
          "                  [--priority P] [--header K=V]... [--window N]\n"
          "                  [--cache] [--cache-*]... SERVICE\n"
          "\n"
          "Reads payloads from stdin, one per line (the trailing '\\n' is\n"
          "stripped; an empty line is an empty payload), runs them with at\n"
          "most --window tasks in flight and prints each result as one JSON\n"
          "line as it arrives:\n"
          "  {\"index\":0,\"id\":\"...\",\"status\":\"ok\",\"payload\":\"...\","
          "\"error\":null,\n"
          "   \"attempts\":1,\"cached\":false,\"latency_us\":N}\n"
          "payload is a string when the result is valid UTF-8, else\n"
          "{\"base64\":\"...\"}. latency_us is measured by the client.\n"
          "Exits 0 when every task succeeded, 6 when the broker never\n"
          "answered, else 1.\n"
          "\n"
          "  --timeout MS   per-task deadline, 1..86400000 (default 30000)\n"
          "  --retries N    extra attempts after a handler error, 0..16\n"
          "  --backoff MS   base delay between attempts, 0..60000\n"
          "  --priority P   0..9, 9 first (default 0)\n"
          "  --header K=V   header on every task; repeatable\n"
          "  --window N     tasks in flight at once, 1..100000 (default "
          "64)\n" CLI_CACHE_HELP,
          out);
}

static json_t *s_base64(const uint8_t *data, size_t len)
{
    json_t *b64 = yard_json_base64(data, len);
    return b64 ? json_pack("{s:o}", "base64", b64) : NULL;
}

/*  A payload as JSON: a string if it is valid UTF-8, else base64. */
static json_t *s_payload_json(const uint8_t *data, size_t len)
{
    json_t *s = json_stringn((const char *)data, len);
    return s ? s : s_base64(data, len);
}

static int s_on_reply(size_t index, yard_reply_t *reply, void *arg)
{
    s_batch_t *b = arg;
    /*  A signal that missed zmq_poll is noticed here. */
    bool stop = cli_interrupted();
    if (reply->status == YARD_OK)
        b->ok++;
    else
        b->failed++;
    json_t *line = json_object();
    json_t *payload = s_payload_json(reply->payload, reply->payload_len);
    json_t *error = reply->error
                        ? json_stringn(reply->error, strlen(reply->error))
                        : json_null();
    if (reply->error && !error) /*  not UTF-8: keep it readable */
        error =
            s_payload_json((const uint8_t *)reply->error, strlen(reply->error));
    int rc = -1;
    if (line && payload && error) {
        json_object_set_new(line, "index", json_integer((json_int_t)index));
        json_object_set_new(line, "id", json_string(reply->id));
        json_object_set_new(line, "status",
                            json_string(yard_status_name(reply->status)));
        json_object_set_new(line, "payload", payload);
        json_object_set_new(line, "error", error);
        json_object_set_new(line, "attempts",
                            json_integer((json_int_t)reply->attempts));
        json_object_set_new(line, "cached", json_boolean(reply->cached));
        json_object_set_new(line, "latency_us",
                            json_integer((json_int_t)reply->latency_us));
        payload = error = NULL;
        rc = json_dumpf(line, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    json_decref(payload);
    json_decref(error);
    json_decref(line);
    yard_reply_destroy(&reply);
    if (rc != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        b->io_error = true;
        return 1; /*  stop: nobody is reading (closed pipe, full disk) */
    }
    return stop ? YARD_E_INTERRUPTED : 0;
}

/*  Reads stdin and splits it into lines (without their '\n'), pointing
    into *buf. Returns 0 or an exit code after printing why. */
static int s_read_lines(char **buf, yard_frame_t **lines, size_t *n)
{
    size_t cap = 64 * 1024, len = 0;
    char *data = malloc(cap);
    if (!data)
        goto nomem;
    for (;;) {
        if (len == cap) {
            char *bigger = realloc(data, cap * 2);
            if (!bigger)
                goto nomem;
            data = bigger;
            cap *= 2;
        }
        size_t got = fread(data + len, 1, cap - len, stdin);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(data);
        fprintf(stderr, "yard batch: cannot read stdin: %s\n", strerror(errno));
        return CLI_EXIT_FAILED;
    }
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        count += data[i] == '\n';
    if (len && data[len - 1] != '\n')
        count++; /*  a last line without its newline */
    yard_frame_t *frames = calloc(count ? count : 1, sizeof(*frames));
    if (!frames)
        goto nomem;
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len && k < count; i++) {
        if (i == len || data[i] == '\n') {
            frames[k].data = data + start;
            frames[k].len = i - start;
            k++;
            start = i + 1;
        }
    }
    *buf = data;
    *lines = frames;
    *n = count;
    return 0;
nomem:
    free(data);
    fprintf(stderr, "yard batch: out of memory reading stdin\n");
    return CLI_EXIT_FAILED;
}

int cli_batch(const cli_global_t *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},
        {"retries", required_argument, NULL, CLI_OPT_RETRIES},
        {"backoff", required_argument, NULL, CLI_OPT_BACKOFF},
        {"priority", required_argument, NULL, CLI_OPT_PRIORITY},
        {"header", required_argument, NULL, CLI_OPT_HEADER},
        {"window", required_argument, NULL, CLI_OPT_WINDOW},
        CLI_CACHE_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    cli_task_flags_t flags;
    memset(&flags, 0, sizeof(flags));
    uint32_t window = S_DEFAULT_WINDOW;
    char *data = NULL;
    yard_frame_t *lines = NULL;
    size_t n = 0;
    yard_client_t *client = NULL;
    int rc = 0, opt;
    optind = 0; /*  glibc: full re-initialisation for a new argv */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            s_batch_usage(stdout);
            goto done;
        }
        if (opt == '?' || opt == ':') {
            rc = cli_bad_option("batch", argv, opt);
            goto done;
        }
        if (opt == CLI_OPT_WINDOW) {
            if (yard_parse_u32(optarg, 1, S_MAX_WINDOW, &window) != 0) {
                fprintf(stderr,
                        "yard batch: --window wants a whole number in "
                        "1..%d, not '%s'\n",
                        S_MAX_WINDOW, optarg);
                rc = CLI_EXIT_USAGE;
                goto done;
            }
            continue;
        }
        if ((rc = cli_task_flag("batch", opt, optarg, &flags)) != 0)
            goto done;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "yard batch: expected SERVICE\n");
        s_batch_usage(stderr);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    const char *service = argv[optind];
    if ((rc = cli_check_service("batch", service)) != 0)
        goto done;
    if ((rc = s_read_lines(&data, &lines, &n)) != 0)
        goto done;
    if (!(client = cli_client_new(g))) {
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    s_batch_t b = {0, 0, false};
    int err = yard_client_map(client, service, lines, n, window, &flags.opts,
                              s_on_reply, &b);
    if (b.io_error) {
        fprintf(stderr, "yard batch: cannot write stdout\n");
        rc = CLI_EXIT_FAILED;
    } else if (err == YARD_E_INTERRUPTED) {
        fprintf(stderr, "yard batch: interrupted after %zu of %zu results\n",
                b.ok + b.failed, n);
        rc = CLI_EXIT_INTERRUPTED;
    } else if (err) {
        /*  Refused before anything ran: a bad service name, say. */
        fprintf(stderr, "yard batch: cannot submit to '%s': %s\n", service,
                yard_strerror(err));
        rc = b.ok + b.failed ? CLI_EXIT_FAILED : CLI_EXIT_USAGE;
    } else if (b.failed == 0)
        rc = CLI_EXIT_OK;
    else if (!yard_client_broker_seen(client)) {
        fprintf(stderr, "yard: broker unreachable: no reply from %s\n",
                g->broker);
        rc = CLI_EXIT_UNREACHABLE;
    } else
        rc = CLI_EXIT_FAILED;
done:
    yard_client_destroy(&client);
    free(lines);
    free(data);
    cli_task_flags_free(&flags);
    return rc;
}
