/*  cli_cache.c — `yard cache SUBCOMMAND`: the cache service yard.cache
    (run by yard-cache, PROTOCOL.md section 10a) from the command line.

    Each subcommand is one task to yard.cache: a msgpack map (the request)
    built here with msgpack_packer, answered by a msgpack map (the answer).
    The answer is checked with yard_msgpack_check before msgpack-c sees it
    and every field is type-checked: a malformed answer is a message and
    exit 1, never a crash. The shape of the arguments is checked here
    (exit 2); their limits (key length, number of tags, TTL range ...) are
    the cache's to judge: it answers bad_request (exit 1), so a cache with
    other limits needs no other CLI. --json prints the answer map as one
    JSON line (the conventions of `yard subscribe --help`, but for get's
    value: a string when it is UTF-8, else {"$bin": base64}). */
#include "cli.h"
#include "yard_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "yard_config.h"

#define S_SERVICE "yard.cache"
#define S_DEFAULT_TIMEOUT_MS 5000

/*  getopt_long codes, clear of cli.h's shared ones. */
enum {
    S_OPT_TTL = 0x300,
    S_OPT_TAG,
};

typedef enum {
    S_GET,
    S_SET,
    S_SET_NEGATIVE,
    S_DEL,
    S_INVALIDATE_TAG,
    S_INVALIDATE_PREFIX,
    S_INVALIDATE_GLOB,
    S_CLEAR,
    S_STATS,
    S_NONE
} s_verb_t;

static const struct {
    const char *word;  /*  the subcommand */
    const char *op;    /*  the request's op */
    const char *words; /*  its arguments, for the usage line */
    int min, max;      /*  how many arguments (max -1: any) */
    const char *about; /*  the rest of its --help */
} s_verbs[] = {
    [S_GET] = {"get", "get", "KEY", 1, 1,
               "Prints the value stored under KEY on stdout, exactly its\n"
               "bytes (no newline added), and exits 0. A miss prints\n"
               "'yard cache get: miss' on stderr and exits 1; a remembered\n"
               "miss (set-negative) 'yard cache get: negative ...' and exits "
               "1.\n"
               "With --json prints the answer instead, one JSON line:\n"
               "{\"hit\":true,\"value\":...,\"tier\":\"l1\"|\"l2\","
               "\"ttl_ms\":N}, the value as a\n"
               "string when it is UTF-8, else {\"$bin\":\"<base64>\"} (same "
               "exit codes).\n"},
    [S_SET] = {"set", "set", "[--ttl MS] [--tag T]... KEY VALUE", 2, 2,
               "Stores VALUE under KEY and prints 'stored'. VALUE '-' reads "
               "it\n"
               "from stdin, byte for byte. Exit 1 with 'not stored' when no\n"
               "tier of the cache kept it (too large for L1 while L2 is off "
               "or\n"
               "down).\n"
               "\n"
               "  --ttl MS       time to live; 0 or none: the cache's "
               "default\n"
               "  --tag T        tag the entry (for invalidate-tag); "
               "repeatable\n"},
    [S_SET_NEGATIVE] = {"set-negative", "set_negative", "[--ttl MS] KEY", 1, 1,
                        "Remembers that KEY has no value (a negative entry):\n"
                        "until it expires, get answers 'negative'. Prints\n"
                        "'stored'.\n"
                        "\n"
                        "  --ttl MS       time to live; 0 or none: the "
                        "cache's\n"
                        "                 negative default\n"},
    [S_DEL] = {"del", "del", "KEY", 1, 1,
               "Deletes KEY from both tiers and prints 'deleted N' (N is 1 "
               "if\n"
               "either tier held it, else 0).\n"},
    [S_INVALIDATE_TAG] = {"invalidate-tag", "invalidate_tags", "TAG...", 1, -1,
                          "Deletes every entry carrying any of the TAGs "
                          "(both\n"
                          "tiers) and prints 'deleted N'.\n"},
    [S_INVALIDATE_PREFIX] = {"invalidate-prefix", "invalidate_prefix", "PREFIX",
                             1, 1,
                             "Deletes every entry whose key starts with "
                             "PREFIX (taken\n"
                             "literally) and prints 'deleted N'.\n"},
    [S_INVALIDATE_GLOB] = {"invalidate-glob", "invalidate_glob", "PATTERN", 1,
                           1,
                           "Deletes every entry whose key matches PATTERN "
                           "(fnmatch(3):\n"
                           "*, ?, [...]; quote it from the shell) and prints\n"
                           "'deleted N'.\n"},
    [S_CLEAR] = {"clear", "clear", "", 0, 0,
                 "Deletes every entry of the cache (its Redis keys only) "
                 "and\n"
                 "prints 'deleted N'.\n"},
    [S_STATS] = {"stats", "stats", "", 0, 0,
                 "Prints a summary of the cache's metrics: requests, hits,\n"
                 "misses and hit rates, L1 and L2 entries and bytes, whether\n"
                 "it is degraded (Redis down). With --json the whole answer.\n"
                 "With several yard-cache processes, one of them answers.\n"},
};

static const char s_flags_help[] =
    "  --json         print the cache's answer as one JSON line\n"
    "  --timeout MS   how long to wait for the cache, 1..86400000\n"
    "                 (default 5000)\n";

static void s_usage(FILE *out, s_verb_t verb)
{
    if (verb != S_NONE) {
        fprintf(out, "usage: yard cache %s [--json] [--timeout MS]%s%s\n\n%s\n",
                s_verbs[verb].word, s_verbs[verb].words[0] ? " " : "",
                s_verbs[verb].words, s_verbs[verb].about);
        fputs(s_flags_help, out);
        return;
    }
    fputs("usage: yard cache SUBCOMMAND [--json] [--timeout MS] [ARGS]\n"
          "\n"
          "Talks to the cache service yard.cache (run by yard-cache):\n"
          "  get KEY                    print the value (raw bytes)\n"
          "  set [--ttl MS] [--tag T]... KEY VALUE\n"
          "                             store a value (VALUE '-': stdin)\n"
          "  set-negative [--ttl MS] KEY\n"
          "                             remember a miss\n"
          "  del KEY                    delete one key\n"
          "  invalidate-tag TAG...      delete the entries with a tag\n"
          "  invalidate-prefix PREFIX   delete the keys with a prefix\n"
          "  invalidate-glob PATTERN    delete the keys matching a glob\n"
          "  clear                      delete every entry\n"
          "  stats                      print the cache's metrics\n"
          "Run 'yard cache SUBCOMMAND --help' for details. Put '--' before\n"
          "an argument that starts with '-'.\n"
          "\n"
          "Exit codes: 0 ok; 1 get missed, set not stored, or the cache\n"
          "refused the request (bad_request) or failed; 2 usage error;\n"
          "3 timeout (no yard-cache answered in --timeout); 4 rejected or\n"
          "circuit_open; 6 broker unreachable.\n"
          "\n",
          out);
    fputs(s_flags_help, out);
}

static s_verb_t s_verb_of(const char *word)
{
    for (int i = 0; i < S_NONE; i++)
        if (strcmp(word, s_verbs[i].word) == 0)
            return (s_verb_t)i;
    return S_NONE;
}

/* ---- The request ------------------------------------------------------ */

typedef struct {
    bool has_ttl;
    uint64_t ttl_ms;
    const char **tags; /*  --tag values (argc slots) */
    size_t ntags;
    const char *value; /*  set: the value's bytes */
    size_t vlen;
} s_args_t;

static int s_pack_str(msgpack_packer *pk, const char *s)
{
    return msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int s_pack_bin(msgpack_packer *pk, const void *data, size_t len)
{
    return msgpack_pack_bin_with_body(pk, data, len);
}

/*  "tags": [str...] */
static int s_pack_tags(msgpack_packer *pk, const char *const *tags, size_t n)
{
    if (s_pack_str(pk, "tags") || msgpack_pack_array(pk, n))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (s_pack_str(pk, tags[i]))
            return -1;
    return 0;
}

/*  The request map of a subcommand with its words. 0, or -1 when out of
    memory. Keys, prefixes and values go as bin (bytes); tags and
    patterns as str, as PROTOCOL.md 10a wants them. */
static int s_pack_request(msgpack_packer *pk, s_verb_t verb, char **words,
                          int nwords, const s_args_t *a)
{
    size_t n = 1;
    switch (verb) {
    case S_SET:
        n += 2 + (a->has_ttl ? 1 : 0) + (a->ntags ? 1 : 0);
        break;
    case S_SET_NEGATIVE:
        n += 1 + (a->has_ttl ? 1 : 0);
        break;
    case S_GET:
    case S_DEL:
    case S_INVALIDATE_TAG:
    case S_INVALIDATE_PREFIX:
    case S_INVALIDATE_GLOB:
        n += 1;
        break;
    default:
        break;
    }
    if (msgpack_pack_map(pk, n) || s_pack_str(pk, "op") ||
        s_pack_str(pk, s_verbs[verb].op))
        return -1;
    switch (verb) {
    case S_GET:
    case S_DEL:
    case S_SET:
    case S_SET_NEGATIVE:
        if (s_pack_str(pk, "key") || s_pack_bin(pk, words[0], strlen(words[0])))
            return -1;
        if (verb == S_SET &&
            (s_pack_str(pk, "value") || s_pack_bin(pk, a->value, a->vlen)))
            return -1;
        if (a->has_ttl &&
            (s_pack_str(pk, "ttl_ms") || msgpack_pack_uint64(pk, a->ttl_ms)))
            return -1;
        if (verb == S_SET && a->ntags && s_pack_tags(pk, a->tags, a->ntags))
            return -1;
        return 0;
    case S_INVALIDATE_TAG:
        return s_pack_tags(pk, (const char *const *)words, (size_t)nwords);
    case S_INVALIDATE_PREFIX:
        return s_pack_str(pk, "prefix") ||
                       s_pack_bin(pk, words[0], strlen(words[0]))
                   ? -1
                   : 0;
    case S_INVALIDATE_GLOB:
        return s_pack_str(pk, "pattern") || s_pack_str(pk, words[0]) ? -1 : 0;
    default:
        return 0;
    }
}

/* ---- The answer ------------------------------------------------------- */

/*  The value under key in map, or NULL. */
static const msgpack_object *s_field(const msgpack_object *map, const char *key)
{
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static int s_malformed(const char *word, const char *why)
{
    fprintf(stderr, "yard cache %s: malformed answer from " S_SERVICE ": %s\n",
            word, why);
    return CLI_EXIT_FAILED;
}

/*  A uint field, or -1 (and the message) when absent or of another type. */
static int s_uint_field(const char *word, const msgpack_object *map,
                        const char *key, uint64_t *out)
{
    const msgpack_object *v = s_field(map, key);
    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        char why[64];
        snprintf(why, sizeof(why), "no unsigned integer '%s'", key);
        return s_malformed(word, why);
    }
    *out = v->via.u64;
    return 0;
}

/*  A bool field, or an exit code (and the message). */
static int s_bool_field(const char *word, const msgpack_object *map,
                        const char *key, bool *out)
{
    const msgpack_object *v = s_field(map, key);
    if (!v || v->type != MSGPACK_OBJECT_BOOLEAN) {
        char why[64];
        snprintf(why, sizeof(why), "no boolean '%s'", key);
        return s_malformed(word, why);
    }
    *out = v->via.boolean;
    return 0;
}

/*  Prints the answer as one JSON line (get's value as text when it is
    UTF-8). 0, or CLI_EXIT_FAILED. */
static int s_print_json(s_verb_t verb, const msgpack_object *answer)
{
    json_t *root = yard_json_from_mp(answer);
    const msgpack_object *v = verb == S_GET ? s_field(answer, "value") : NULL;
    if (root && v &&
        (v->type == MSGPACK_OBJECT_BIN || v->type == MSGPACK_OBJECT_STR)) {
        const char *p =
            v->type == MSGPACK_OBJECT_BIN ? v->via.bin.ptr : v->via.str.ptr;
        uint32_t n =
            v->type == MSGPACK_OBJECT_BIN ? v->via.bin.size : v->via.str.size;
        if (json_object_set_new(root, "value", yard_json_text(p, n)) != 0)
            json_decref(root), root = NULL;
    }
    if (!root) {
        fprintf(stderr, "yard cache %s: cannot format the answer as JSON\n",
                s_verbs[verb].word);
        return CLI_EXIT_FAILED;
    }
    int rc = json_dumpf(root, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc != 0 || fputc('\n', stdout) == EOF)
        return CLI_EXIT_FAILED;
    return 0;
}

/* ---- stats, for people ------------------------------------------------ */

/*  A number field of obj as text ("-" when missing). */
static const char *s_num(const json_t *obj, const char *key, char *buf,
                         size_t cap)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.0f", json_real_value(v));
    else if (json_is_string(v)) /*  a uint64 above 2^63-1 */
        snprintf(buf, cap, "%s", json_string_value(v));
    else
        snprintf(buf, cap, "-");
    return buf;
}

/*  A rate in 0..1 as a percentage ("-" when missing). */
static const char *s_rate(const json_t *obj, const char *key, char *buf,
                          size_t cap)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_number(v))
        snprintf(buf, cap, "%.1f%%", 100.0 * json_number_value(v));
    else
        snprintf(buf, cap, "-");
    return buf;
}

static bool s_true(const json_t *obj, const char *key)
{
    return json_is_true(json_object_get(obj, key));
}

static const char *s_text(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "-";
}

/*  hits, misses, negative hits and hit rate of obj on one line. */
static void s_hits_line(const json_t *obj)
{
    char a[32], b[32], c[32], d[32];
    printf("  hits %s  misses %s  negative %s  hit rate %s\n",
           s_num(obj, "hits", a, sizeof(a)), s_num(obj, "misses", b, sizeof(b)),
           s_num(obj, "negative_hits", c, sizeof(c)),
           s_rate(obj, "hit_rate", d, sizeof(d)));
}

static void s_print_stats(const json_t *st)
{
    char a[32], b[32], c[32], d[32], e[32];
    const json_t *up = json_object_get(st, "uptime_ms");
    printf("instance   %s (%s %s", s_text(st, "instance"),
           s_text(st, "service"), s_text(st, "version"));
    if (json_is_number(up))
        printf(", up %.1fs", json_number_value(up) / 1000);
    printf(")\n");
    printf("degraded   %s\n",
           s_true(st, "degraded") ? "yes (Redis down)" : "no");
    printf("requests   %s (bad requests %s)\n",
           s_num(st, "requests", a, sizeof(a)),
           s_num(st, "bad_requests", b, sizeof(b)));
    printf("gets       %s: hits %s  misses %s  negative %s  hit rate %s\n",
           s_num(st, "gets", a, sizeof(a)), s_num(st, "hits", b, sizeof(b)),
           s_num(st, "misses", c, sizeof(c)),
           s_num(st, "negative_hits", d, sizeof(d)),
           s_rate(st, "hit_rate", e, sizeof(e)));

    const json_t *l1 = json_object_get(st, "l1");
    if (json_is_object(l1)) {
        bool on = s_true(l1, "enabled");
        printf("L1         %s\n", on ? "on" : "off");
        if (on) {
            printf("  entries %s of %s  bytes %s of %s\n",
                   s_num(l1, "entries", a, sizeof(a)),
                   s_num(l1, "max_entries", b, sizeof(b)),
                   s_num(l1, "bytes", c, sizeof(c)),
                   s_num(l1, "max_bytes", d, sizeof(d)));
            s_hits_line(l1);
            printf("  evictions %s  expirations %s\n",
                   s_num(l1, "evictions", a, sizeof(a)),
                   s_num(l1, "expirations", b, sizeof(b)));
        }
    }
    const json_t *l2 = json_object_get(st, "l2");
    if (json_is_object(l2)) {
        bool on = s_true(l2, "enabled");
        printf("L2         %s", !on                       ? "off"
                                : s_true(l2, "degraded")  ? "degraded"
                                : s_true(l2, "connected") ? "connected"
                                                          : "disconnected");
        if (on)
            printf(" %s, prefix '%s'", s_text(l2, "url"), s_text(l2, "prefix"));
        printf("\n");
        if (on) {
            /*  Redis's own figures: every key of the database and the
                server's memory, not only this cache's entries. */
            printf("  entries %s (keys in the Redis db)  bytes %s (Redis "
                   "memory)\n",
                   s_num(l2, "db_keys", a, sizeof(a)),
                   s_num(l2, "used_memory_bytes", b, sizeof(b)));
            s_hits_line(l2);
            printf("  sets %s  deletes %s  errors %s  degradations %s  "
                   "reconnects %s\n",
                   s_num(l2, "sets", a, sizeof(a)),
                   s_num(l2, "deletes", b, sizeof(b)),
                   s_num(l2, "errors", c, sizeof(c)),
                   s_num(l2, "degradations", d, sizeof(d)),
                   s_num(l2, "reconnects", e, sizeof(e)));
        }
    }
    const json_t *co = json_object_get(st, "coherence");
    if (json_is_object(co))
        printf("coherence  %s: published %s  applied %s  missed %s  resets "
               "%s\n",
               s_true(co, "subscribed") ? "subscribed" : "not subscribed",
               s_num(co, "published", a, sizeof(a)),
               s_num(co, "applied", b, sizeof(b)),
               s_num(co, "missed", c, sizeof(c)),
               s_num(co, "resets", d, sizeof(d)));
}

/*  Prints the outcome of one answer (a checked map) and returns the exit
    code. */
static int s_report(s_verb_t verb, const msgpack_object *answer, bool as_json)
{
    const char *word = s_verbs[verb].word;
    int rc = 0;
    switch (verb) {
    case S_GET: {
        bool hit = false, negative = false;
        if ((rc = s_bool_field(word, answer, "hit", &hit)) != 0)
            return rc;
        const msgpack_object *v = s_field(answer, "value");
        if (hit && (!v || (v->type != MSGPACK_OBJECT_BIN &&
                           v->type != MSGPACK_OBJECT_STR)))
            return s_malformed(word, "a hit without a bin or str 'value'");
        const msgpack_object *neg = s_field(answer, "negative");
        if (neg && neg->type != MSGPACK_OBJECT_BOOLEAN)
            return s_malformed(word, "'negative' is not a boolean");
        negative = neg && neg->via.boolean;
        if (as_json)
            rc = s_print_json(verb, answer);
        else if (hit) {
            const char *p =
                v->type == MSGPACK_OBJECT_BIN ? v->via.bin.ptr : v->via.str.ptr;
            uint32_t n = v->type == MSGPACK_OBJECT_BIN ? v->via.bin.size
                                                       : v->via.str.size;
            if (fwrite(p, 1, n, stdout) != n)
                rc = CLI_EXIT_FAILED;
        }
        if (rc == 0 && !hit) {
            const msgpack_object *ttl = s_field(answer, "ttl_ms");
            if (negative && ttl && ttl->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                fprintf(stderr,
                        "yard cache get: negative (a remembered miss, "
                        "%" PRIu64 " ms left)\n",
                        ttl->via.u64);
            else
                fprintf(stderr, "yard cache get: %s\n",
                        negative ? "negative (a remembered miss)" : "miss");
            rc = CLI_EXIT_FAILED;
        }
        return rc;
    }
    case S_SET:
    case S_SET_NEGATIVE: {
        bool stored = false;
        if ((rc = s_bool_field(word, answer, "stored", &stored)) != 0)
            return rc;
        if (as_json)
            rc = s_print_json(verb, answer);
        else if (stored)
            puts("stored");
        if (rc == 0 && !stored) {
            fprintf(stderr,
                    "yard cache %s: not stored: no tier of the cache kept it "
                    "(too large for L1 while L2 is off or down)\n",
                    word);
            rc = CLI_EXIT_FAILED;
        }
        return rc;
    }
    case S_STATS: {
        if (as_json)
            return s_print_json(verb, answer);
        json_t *st = yard_json_from_mp(answer);
        if (!st) {
            fprintf(stderr, "yard cache stats: out of memory\n");
            return CLI_EXIT_FAILED;
        }
        s_print_stats(st);
        json_decref(st);
        return 0;
    }
    default: {
        /*  del, invalidate-*, clear: {deleted: n} */
        uint64_t deleted;
        if ((rc = s_uint_field(word, answer, "deleted", &deleted)) != 0)
            return rc;
        if (as_json)
            return s_print_json(verb, answer);
        printf("deleted %" PRIu64 "\n", deleted);
        return 0;
    }
    }
}

/* ---- The command ------------------------------------------------------ */

int cli_cache(const cli_global_t *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, CLI_OPT_JSON},
        {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},
        {"ttl", required_argument, NULL, S_OPT_TTL},
        {"tag", required_argument, NULL, S_OPT_TAG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    cli_task_flags_t flags;
    memset(&flags, 0, sizeof(flags));
    flags.opts.timeout_ms = S_DEFAULT_TIMEOUT_MS;
    s_args_t a;
    memset(&a, 0, sizeof(a));
    bool as_json = false, help = false;
    char *stdin_buf = NULL;
    msgpack_sbuffer mp;
    msgpack_sbuffer_init(&mp);
    yard_reply_t *reply = NULL;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = 0, opt;
    if (!(a.tags = calloc((size_t)argc + 1, sizeof(*a.tags)))) {
        fprintf(stderr, "yard cache: out of memory\n");
        rc = CLI_EXIT_FAILED;
        goto done;
    }
    optind = 0; /*  glibc: full re-initialisation for a new argv */
    opterr = 0;
    /*  Flags may come before or after the subcommand and its words. */
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            help = true;
            break;
        case CLI_OPT_JSON:
            as_json = true;
            break;
        case CLI_OPT_TIMEOUT:
            if ((rc = cli_task_flag("cache", opt, optarg, &flags)) != 0)
                goto done;
            break;
        case S_OPT_TTL:
            if (yard_parse_u64(optarg, 0, UINT64_MAX, &a.ttl_ms) != 0) {
                fprintf(stderr,
                        "yard cache: --ttl wants a whole number of "
                        "milliseconds (0: the default), not '%s'\n",
                        optarg);
                rc = CLI_EXIT_USAGE;
                goto done;
            }
            a.has_ttl = true;
            break;
        case S_OPT_TAG:
            a.tags[a.ntags++] = optarg;
            break;
        default:
            rc = cli_bad_option("cache", argv, opt);
            goto done;
        }
    }
    char **words = argv + optind;
    int nwords = argc - optind;
    s_verb_t verb = nwords > 0 ? s_verb_of(words[0]) : S_NONE;
    if (help) {
        s_usage(stdout, verb);
        goto done;
    }
    if (nwords == 0) {
        fprintf(stderr, "yard cache: no subcommand given\n");
        s_usage(stderr, S_NONE);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if (verb == S_NONE) {
        fprintf(stderr,
                "yard cache: unknown subcommand '%s' (known: get, set, "
                "set-negative, del, invalidate-tag, invalidate-prefix, "
                "invalidate-glob, clear, stats)\ntry 'yard cache --help'\n",
                words[0]);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    const char *word = s_verbs[verb].word;
    words++;
    nwords--;
    if (nwords < s_verbs[verb].min ||
        (s_verbs[verb].max >= 0 && nwords > s_verbs[verb].max)) {
        if (s_verbs[verb].words[0])
            fprintf(stderr, "yard cache %s: expected %s\n", word,
                    s_verbs[verb].words);
        else
            fprintf(stderr, "yard cache %s: unexpected argument '%s'\n", word,
                    words[0]);
        fprintf(stderr, "try 'yard cache %s --help'\n", word);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if (a.has_ttl && verb != S_SET && verb != S_SET_NEGATIVE) {
        fprintf(stderr, "yard cache %s: --ttl is for set and set-negative\n",
                word);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if (a.ntags && verb != S_SET) {
        fprintf(stderr, "yard cache %s: --tag is for set\n", word);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if (verb == S_SET) {
        a.value = words[1];
        a.vlen = strlen(a.value);
        if (strcmp(a.value, "-") == 0) {
            /*  Any larger could not be sent: the encoder says so. */
            if ((rc = cli_read_stdin("cache set", "value", YARD_MAX_PAYLOAD,
                                     &stdin_buf, &a.vlen)) != 0)
                goto done;
            a.value = stdin_buf;
        }
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &mp, msgpack_sbuffer_write);
    if (s_pack_request(&pk, verb, words, nwords, &a) != 0) {
        fprintf(stderr, "yard cache %s: out of memory\n", word);
        rc = CLI_EXIT_FAILED;
        goto done;
    }
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "cache %s", word);
    if ((rc = cli_call(g, cmd, S_SERVICE, mp.data, mp.size, &flags.opts,
                       &reply)) != 0)
        goto done;
    /*  The answer comes from any worker of yard.cache: checked first. */
    size_t off = 0;
    if (yard_msgpack_check(reply->payload, reply->payload_len) != 0 ||
        msgpack_unpack_next(&u, (const char *)reply->payload,
                            reply->payload_len,
                            &off) != MSGPACK_UNPACK_SUCCESS) {
        rc = s_malformed(word, "not one well-formed msgpack value");
        goto done;
    }
    if (u.data.type != MSGPACK_OBJECT_MAP) {
        rc = s_malformed(word, "not a msgpack map");
        goto done;
    }
    rc = s_report(verb, &u.data, as_json);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "yard cache %s: cannot write stdout: %s\n", word,
                strerror(errno));
        rc = CLI_EXIT_FAILED;
    }
done:
    msgpack_unpacked_destroy(&u);
    yard_reply_destroy(&reply);
    msgpack_sbuffer_destroy(&mp);
    free(stdin_buf);
    free(a.tags);
    cli_task_flags_free(&flags);
    return rc;
}
