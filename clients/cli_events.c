/*  cli_events.c — the event bus from the command line:

      yard publish   one event through the task endpoint (fire-and-forget
                     followed by a HEARTBEAT round trip, or --confirm);
      yard subscribe events from the events endpoint, one JSON line each.

    JSON <-> msgpack: publish --json turns JSON into msgpack (objects to
    maps, arrays, strings, integers, reals, true/false/null); subscribe
    turns each event's msgpack payload back into JSON, with the
    conventions in s_subscribe_usage (bin as {"$bin": base64}, ...). */
#include "cli.h"
#include "yard_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "yard_clock.h"
#include "yard_config.h"
#include "yard_sub.h"

#define S_DEFAULT_TIMEOUT_MS 5000
#define S_SLICE_MS 250 /*  waits are cut into slices to see signals */
#define S_MAX_COUNT 1000000000u

/*  getopt_long codes, clear of cli.h's shared ones. */
enum {
    S_OPT_SOURCE = 0x200,
    S_OPT_TRACE,
    S_OPT_META,
    S_OPT_JSON,
    S_OPT_CONFIRM,
    S_OPT_TIMEOUT,
    S_OPT_COUNT,
};

static bool s_type_ok(const char *s, size_t min)
{
    size_t len = strlen(s);
    return len >= min && len <= YARD_MAX_SERVICE &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789._:-") == len;
}

static int s_timeout_flag(const char *cmd, const char *arg, uint32_t *out)
{
    if (yard_parse_u32(arg, 1, YARD_MAX_TIMEOUT_MS, out) == 0)
        return 0;
    fprintf(stderr,
            "yard %s: --timeout wants a whole number in 1..%u, not "
            "'%s'\n",
            cmd, (unsigned)YARD_MAX_TIMEOUT_MS, arg);
    return CLI_EXIT_USAGE;
}

/* ---- yard publish ------------------------------------------------------ */

static void s_publish_usage(FILE *out)
{
    fputs("usage: yard publish [--source S] [--trace-id T] [--meta K=V]...\n"
          "                    [--json] [--confirm] [--timeout MS] TYPE "
          "PAYLOAD\n"
          "\n"
          "Publishes one event of type TYPE (1..128 characters of\n"
          "A-Z a-z 0-9 . _ : -, e.g. 'deploy.done') through the broker's\n"
          "task endpoint. PAYLOAD is text, sent as a msgpack string; with\n"
          "--json it is parsed as JSON and sent as the msgpack equivalent\n"
          "(objects become maps). PAYLOAD '-' reads it from stdin. At most\n"
          "1048576 bytes once encoded.\n"
          "\n"
          "Without --confirm the event is fire-and-forget; yard then makes\n"
          "one HEARTBEAT round trip with the broker, which proves the event\n"
          "reached it (exit 6 when the broker does not answer in --timeout).\n"
          "With --confirm the broker acknowledges the event: exit 1 with its\n"
          "reason when it refuses it, 3 when no acknowledgement comes in\n"
          "--timeout. A bad flag, type or payload is refused before anything\n"
          "is sent (exit 2). Put '--' before a PAYLOAD that starts with '-'.\n"
          "\n"
          "  --source S     who publishes (0..128 bytes)\n"
          "  --trace-id T   correlation id (0..128 bytes)\n"
          "  --meta K=V     string metadata; repeatable (at most 32)\n"
          "  --json         PAYLOAD is JSON\n"
          "  --confirm      ask the broker to acknowledge the event\n"
          "  --timeout MS   how long to wait for the broker, 1..86400000\n"
          "                 (default 5000)\n",
          out);
}

/*  Packs a JSON value as msgpack. 0, or -1 when out of memory. */
static int s_json_to_mp(msgpack_packer *pk, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (msgpack_pack_map(pk, json_object_size(v)))
            return -1;
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            const char *key = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            if (msgpack_pack_str_with_body(pk, key, klen) ||
                s_json_to_mp(pk, json_object_iter_value(it)))
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (msgpack_pack_array(pk, n))
            return -1;
        for (size_t i = 0; i < n; i++)
            if (s_json_to_mp(pk, json_array_get(v, i)))
                return -1;
        return 0;
    }
    case JSON_STRING:
        return msgpack_pack_str_with_body(pk, json_string_value(v),
                                          json_string_length(v));
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(v));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v));
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    }
    return -1;
}

int cli_publish(const cli_global_t *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"source", required_argument, NULL, S_OPT_SOURCE},
        {"trace-id", required_argument, NULL, S_OPT_TRACE},
        {"meta", required_argument, NULL, S_OPT_META},
        {"json", no_argument, NULL, S_OPT_JSON},
        {"confirm", no_argument, NULL, S_OPT_CONFIRM},
        {"timeout", required_argument, NULL, S_OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    yard_publish_opts_t opts;
    memset(&opts, 0, sizeof(opts));
    const char *meta[2 * YARD_MAX_HEADERS + 1] = {NULL};
    char *meta_text[YARD_MAX_HEADERS];
    size_t nmeta = 0;
    bool as_json = false, confirm = false;
    uint32_t timeout_ms = S_DEFAULT_TIMEOUT_MS;
    char *stdin_buf = NULL;
    msgpack_sbuffer mp;
    msgpack_sbuffer_init(&mp);
    json_t *root = NULL;
    yard_client_t *client = NULL;
    int rc = 0, opt;
    optind = 0; /*  glibc: full re-initialisation for a new argv */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            s_publish_usage(stdout);
            goto done;
        case S_OPT_SOURCE:
        case S_OPT_TRACE:
            if (strlen(optarg) > YARD_MAX_ID) {
                fprintf(stderr, "yard publish: %s is at most %d bytes\n",
                        opt == S_OPT_SOURCE ? "--source" : "--trace-id",
                        YARD_MAX_ID);
                rc = CLI_EXIT_USAGE;
                goto done;
            }
            if (opt == S_OPT_SOURCE)
                opts.source = optarg;
            else
                opts.trace_id = optarg;
            break;
        case S_OPT_META: {
            const char *eq = strchr(optarg, '=');
            size_t klen = eq ? (size_t)(eq - optarg) : 0;
            if (!eq || klen == 0 || klen > YARD_MAX_HEADER_KEY ||
                strlen(eq + 1) > YARD_MAX_HEADER_VALUE) {
                fprintf(stderr,
                        "yard publish: --meta wants KEY=VALUE (key 1..%d "
                        "bytes, value at most %d), not '%s'\n",
                        YARD_MAX_HEADER_KEY, YARD_MAX_HEADER_VALUE, optarg);
                rc = CLI_EXIT_USAGE;
                goto done;
            }
            for (size_t i = 0; i < nmeta; i++)
                if (strlen(meta[2 * i]) == klen &&
                    memcmp(meta[2 * i], optarg, klen) == 0) {
                    fprintf(stderr,
                            "yard publish: --meta key '%.*s' given "
                            "twice\n",
                            (int)klen, optarg);
                    rc = CLI_EXIT_USAGE;
                    goto done;
                }
            if (nmeta == YARD_MAX_HEADERS) {
                fprintf(stderr, "yard publish: at most %d --meta flags\n",
                        YARD_MAX_HEADERS);
                rc = CLI_EXIT_USAGE;
                goto done;
            }
            char *copy = strdup(optarg);
            if (!copy) {
                fprintf(stderr, "yard publish: out of memory\n");
                rc = CLI_EXIT_FAILED;
                goto done;
            }
            copy[klen] = '\0';
            meta_text[nmeta] = copy;
            meta[2 * nmeta] = copy;
            meta[2 * nmeta + 1] = copy + klen + 1;
            nmeta++;
            meta[2 * nmeta] = NULL;
            opts.meta = meta;
            break;
        }
        case S_OPT_JSON:
            as_json = true;
            break;
        case S_OPT_CONFIRM:
            confirm = true;
            break;
        case S_OPT_TIMEOUT:
            if ((rc = s_timeout_flag("publish", optarg, &timeout_ms)) != 0)
                goto done;
            break;
        default:
            rc = cli_bad_option("publish", argv, opt);
            goto done;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "yard publish: expected TYPE PAYLOAD\n");
        s_publish_usage(stderr);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    const char *type = argv[optind];
    const char *text = argv[optind + 1];
    if (!s_type_ok(type, 1)) {
        fprintf(stderr,
                "yard publish: bad event type '%s': 1..%d characters of "
                "A-Z a-z 0-9 . _ : -\n",
                type, YARD_MAX_SERVICE);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    size_t text_len = strlen(text);
    if (strcmp(text, "-") == 0) {
        /*  JSON text may be longer than its msgpack; 4x is plenty. */
        size_t max = as_json ? 4 * (size_t)YARD_MAX_EVENT_PAYLOAD
                             : YARD_MAX_EVENT_PAYLOAD;
        if ((rc = cli_read_stdin("publish", "payload", max, &stdin_buf,
                                 &text_len)) != 0)
            goto done;
        text = stdin_buf;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &mp, msgpack_sbuffer_write);
    if (as_json) {
        json_error_t jerr;
        root =
            json_loadb(text, text_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!root) {
            fprintf(stderr,
                    "yard publish: PAYLOAD is not JSON: %s (line %d, "
                    "column %d)\n",
                    jerr.text, jerr.line, jerr.column);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        if (s_json_to_mp(&pk, root) != 0) {
            fprintf(stderr, "yard publish: out of memory\n");
            rc = CLI_EXIT_FAILED;
            goto done;
        }
    } else if (msgpack_pack_str_with_body(&pk, text, text_len) != 0) {
        fprintf(stderr, "yard publish: out of memory\n");
        rc = CLI_EXIT_FAILED;
        goto done;
    }
    if (mp.size > YARD_MAX_EVENT_PAYLOAD) {
        fprintf(stderr,
                "yard publish: payload is %zu bytes encoded, more than "
                "%u\n",
                mp.size, (unsigned)YARD_MAX_EVENT_PAYLOAD);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if (!(client = cli_client_new(g))) {
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    int err;
    if (confirm) {
        err = yard_client_publish_confirmed(client, type, mp.data, mp.size,
                                            &opts, (int)timeout_ms);
        if (err == 0)
            goto done;
        const char *why = yard_client_last_error(client);
        if (why[0]) {
            /*  The broker answered: it refused the event. */
            fprintf(stderr, "yard publish: refused by broker: %s\n", why);
            rc = CLI_EXIT_FAILED;
        } else if (err == YARD_E_TIMEOUT) {
            fprintf(stderr,
                    "yard publish: no acknowledgement from %s within %u ms\n",
                    g->broker, (unsigned)timeout_ms);
            rc = CLI_EXIT_TIMEOUT;
        } else if (err == YARD_E_INTERRUPTED) {
            fprintf(stderr, "yard: interrupted\n");
            rc = CLI_EXIT_INTERRUPTED;
        } else if (err == YARD_E_IO) {
            fprintf(stderr, "yard publish: cannot send: %s\n",
                    yard_strerror(err));
            rc = CLI_EXIT_FAILED;
        } else {
            /*  Refused before sending: too deep a JSON payload, ... */
            fprintf(stderr, "yard publish: cannot publish: %s\n",
                    yard_strerror(err));
            rc = CLI_EXIT_USAGE;
        }
        goto done;
    }
    err = yard_client_publish(client, type, mp.data, mp.size, &opts);
    if (err) {
        fprintf(stderr, "yard publish: cannot publish: %s\n",
                yard_strerror(err));
        rc = err == YARD_E_IO ? CLI_EXIT_FAILED : CLI_EXIT_USAGE;
        goto done;
    }
    /*  Fire-and-forget, but not into the void: the broker answers this
        HEARTBEAT only after it took everything sent before it. */
    err = yard_client_sync(client, (int)timeout_ms);
    if (err == YARD_E_INTERRUPTED) {
        fprintf(stderr, "yard: interrupted\n");
        rc = CLI_EXIT_INTERRUPTED;
    } else if (err) {
        fprintf(stderr,
                "yard publish: broker unreachable: no answer from %s within "
                "%u ms; the event may not have been delivered\n",
                g->broker, (unsigned)timeout_ms);
        rc = CLI_EXIT_UNREACHABLE;
    }
done:
    yard_client_destroy(&client);
    json_decref(root);
    msgpack_sbuffer_destroy(&mp);
    free(stdin_buf);
    for (size_t i = 0; i < nmeta; i++)
        free(meta_text[i]);
    return rc;
}

/* ---- yard subscribe ---------------------------------------------------- */

static void s_subscribe_usage(FILE *out)
{
    fputs("usage: yard subscribe [--count N] [--timeout MS] [--source S] "
          "[TYPE...]\n"
          "\n"
          "Subscribes on the broker's events endpoint (--events) to the\n"
          "events whose type starts with one of the TYPE prefixes (none, or\n"
          "'': every event) and prints each as one JSON line as it arrives:\n"
          "  {\"type\":\"...\",\"source\":\"...\",\"ts_us\":N,\"sn\":N,"
          "\"trace_id\":\"...\",\n"
          "   \"meta\":{\"k\":\"v\"},\"payload\":...}\n"
          "payload is the event's msgpack payload as JSON (null when absent):\n"
          "maps are objects (a key that is not a string is written as JSON\n"
          "text), strings are strings, bin (and a string that is not UTF-8)\n"
          "is {\"$bin\":\"<base64>\"}, ext is {\"$ext\":TYPE,\"$data\":"
          "\"<base64>\"},\n"
          "integers above 2^63-1 are decimal strings, NaN and infinities "
          "null.\n"
          "\n"
          "Stops after --count events (exit 0), or when --timeout passes\n"
          "without an event (an idle timeout, restarted by every event):\n"
          "exit 3 if --count was given and not reached, else 0. Without\n"
          "either it runs until interrupted (exit 130). Exit 6 when the\n"
          "events endpoint does not acknowledge the subscription within 5 s\n"
          "(or --timeout when shorter, but at least 1 s), 4 when the broker\n"
          "refuses another subscriber. Events the broker dropped for this\n"
          "subscriber are counted on stderr at the end.\n"
          "\n"
          "  --count N      stop after N events, 1..1000000000\n"
          "  --timeout MS   idle timeout, 1..86400000 (default: none)\n"
          "  --source S     print only events whose source is exactly S\n"
          "                 (filtered here, not by the broker)\n",
          out);
}

/*  A raw msgpack value as JSON (already checked by the decoder). */
static json_t *s_payload_json(const uint8_t *data, size_t len)
{
    if (!data || !len)
        return json_null();
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    json_t *j = NULL;
    if (msgpack_unpack_next(&u, (const char *)data, len, &off) ==
        MSGPACK_UNPACK_SUCCESS)
        j = yard_json_from_mp(&u.data);
    msgpack_unpacked_destroy(&u);
    return j ? j : yard_json_bin(data, len);
}

static int s_meta_entry(const char *key, size_t klen, const char *value,
                        size_t vlen, void *arg)
{
    json_t *meta = arg;
    /*  A key that is not UTF-8 is base64'd rather than lost. */
    json_t *kj = json_stringn(key, klen);
    if (!kj)
        kj = yard_json_base64((const uint8_t *)key, klen);
    if (kj)
        json_object_setn_new(meta, json_string_value(kj),
                             json_string_length(kj),
                             yard_json_text(value, vlen));
    json_decref(kj);
    return 0;
}

/*  Prints one event as a JSON line. false when stdout failed. */
static bool s_print_event(const yard_sub_event_t *ev)
{
    json_t *meta = json_object();
    yard_bytes_t raw = {ev->meta, (uint32_t)ev->meta_len};
    if (meta)
        yard_headers_each(&raw, s_meta_entry, meta);
    json_t *line = json_pack(
        "{s:o, s:o, s:I, s:I, s:o, s:o, s:o}", "type",
        yard_json_text(ev->type, strlen(ev->type)), "source",
        yard_json_text(ev->source, strlen(ev->source)), "ts_us",
        (json_int_t)ev->ts_us, "sn", (json_int_t)ev->sn, "trace_id",
        yard_json_text(ev->trace_id, strlen(ev->trace_id)), "meta", meta,
        "payload", s_payload_json(ev->payload, ev->payload_len));
    if (!line) {
        fprintf(stderr,
                "yard subscribe: cannot format event %s (sn %" PRIu64 ")\n",
                ev->type, ev->sn);
        return true;
    }
    int rc = json_dumpf(line, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    return rc == 0 && fputc('\n', stdout) != EOF && fflush(stdout) == 0;
}

static bool s_source_is(const yard_event_view_t *ev, void *arg)
{
    const char *want = arg;
    size_t len = strlen(want);
    return ev->source.len == len &&
           (len == 0 || memcmp(ev->source.ptr, want, len) == 0);
}

int cli_subscribe(const cli_global_t *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"count", required_argument, NULL, S_OPT_COUNT},
        {"timeout", required_argument, NULL, S_OPT_TIMEOUT},
        {"source", required_argument, NULL, S_OPT_SOURCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    uint32_t count = 0, timeout_ms = 0;
    const char *source = NULL;
    int opt;
    optind = 0; /*  glibc: full re-initialisation for a new argv */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            s_subscribe_usage(stdout);
            return CLI_EXIT_OK;
        case S_OPT_COUNT:
            if (yard_parse_u32(optarg, 1, S_MAX_COUNT, &count) != 0) {
                fprintf(stderr,
                        "yard subscribe: --count wants a whole number in "
                        "1..%u, not '%s'\n",
                        S_MAX_COUNT, optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case S_OPT_TIMEOUT:
            if (s_timeout_flag("subscribe", optarg, &timeout_ms) != 0)
                return CLI_EXIT_USAGE;
            break;
        case S_OPT_SOURCE:
            if (strlen(optarg) > YARD_MAX_ID) {
                fprintf(stderr,
                        "yard subscribe: --source is at most %d "
                        "bytes\n",
                        YARD_MAX_ID);
                return CLI_EXIT_USAGE;
            }
            source = optarg;
            break;
        default:
            return cli_bad_option("subscribe", argv, opt);
        }
    }
    const char *const *types = (const char *const *)argv + optind;
    size_t ntypes = (size_t)(argc - optind);
    if (ntypes > YARD_MAX_TYPES) {
        fprintf(stderr, "yard subscribe: at most %d TYPE prefixes\n",
                YARD_MAX_TYPES);
        return CLI_EXIT_USAGE;
    }
    for (size_t i = 0; i < ntypes; i++)
        if (!s_type_ok(types[i], 0)) {
            fprintf(stderr,
                    "yard subscribe: bad type prefix '%s': 0..%d characters "
                    "of A-Z a-z 0-9 . _ : -\n",
                    types[i], YARD_MAX_SERVICE);
            return CLI_EXIT_USAGE;
        }

    /*  A live broker acknowledges at once; a short --timeout shortens
        the wait for an absent one too, within reason. */
    int handshake_ms = CLI_UNREACHABLE_MS;
    if (timeout_ms && timeout_ms < (uint32_t)handshake_ms)
        handshake_ms = timeout_ms < 1000 ? 1000 : (int)timeout_ms;
    int err = 0;
    yard_subscriber_t *sub =
        yard_subscriber_new(g->events, types, ntypes, handshake_ms, &err);
    if (!sub) {
        switch (err) {
        case YARD_E_TIMEOUT:
            fprintf(stderr,
                    "yard subscribe: events endpoint unreachable: no answer "
                    "from %s\n",
                    g->events);
            return CLI_EXIT_UNREACHABLE;
        case YARD_E_LIMIT:
            fprintf(stderr, "yard subscribe: refused by broker: too many "
                            "subscribers\n");
            return CLI_EXIT_REJECTED;
        case YARD_E_INTERRUPTED:
            fprintf(stderr, "yard: interrupted\n");
            return CLI_EXIT_INTERRUPTED;
        case YARD_E_IO:
            fprintf(stderr,
                    "yard subscribe: cannot use events endpoint '%s': %s\n",
                    g->events, zmq_strerror(errno));
            return CLI_EXIT_USAGE;
        default:
            fprintf(stderr, "yard subscribe: refused by broker: %s\n",
                    yard_strerror(err));
            return CLI_EXIT_FAILED;
        }
    }
    if (source)
        yard_subscriber_set_filter(sub, s_source_is, (void *)source);

    int rc = CLI_EXIT_OK;
    uint32_t got = 0;
    int64_t idle_ms = 0;
    while (count == 0 || got < count) {
        if (cli_interrupted()) {
            rc = CLI_EXIT_INTERRUPTED;
            break;
        }
        int slice = S_SLICE_MS;
        if (timeout_ms && (int64_t)timeout_ms - idle_ms < slice)
            slice = (int)((int64_t)timeout_ms - idle_ms);
        yard_sub_event_t *ev = NULL;
        int64_t t0 = yard_clock_us();
        err = yard_subscriber_next(sub, slice, &ev);
        if (err == 0) {
            idle_ms = 0;
            got++;
            bool ok = s_print_event(ev);
            yard_sub_event_destroy(&ev);
            if (!ok) {
                fprintf(stderr, "yard subscribe: cannot write stdout: %s\n",
                        strerror(errno));
                rc = CLI_EXIT_FAILED;
                break;
            }
            continue;
        }
        if (err == YARD_E_TIMEOUT) {
            idle_ms += (yard_clock_us() - t0) / 1000;
            if (timeout_ms && idle_ms >= (int64_t)timeout_ms) {
                rc = count ? CLI_EXIT_TIMEOUT : CLI_EXIT_OK;
                if (count)
                    fprintf(stderr,
                            "yard subscribe: %u of %u event(s) within the "
                            "%u ms idle timeout\n",
                            (unsigned)got, (unsigned)count,
                            (unsigned)timeout_ms);
                break;
            }
            continue;
        }
        if (err == YARD_E_INTERRUPTED) {
            rc = CLI_EXIT_INTERRUPTED;
            break;
        }
        /*  A re-subscription refused (limit), or a socket failure. */
        fprintf(stderr, "yard subscribe: %s\n", yard_strerror(err));
        rc = err == YARD_E_LIMIT ? CLI_EXIT_REJECTED : CLI_EXIT_FAILED;
        break;
    }
    if (rc == CLI_EXIT_INTERRUPTED)
        fprintf(stderr, "yard: interrupted\n");
    uint64_t missed = yard_subscriber_missed(sub);
    if (missed)
        fprintf(stderr,
                "yard subscribe: %" PRIu64 " event(s) missed (dropped by the "
                "broker for this subscriber)\n",
                missed);
    yard_subscriber_destroy(&sub);
    return rc;
}
