/*  test_vectors.c — runs every byte-exact test vector in proto/vectors/
    (format: proto/vectors/README.md) through the C codec, both ways:
    decode(frames) must equal the JSON bodies, and encode(bodies) must
    equal the frames byte for byte (unless the vector is "decode_only").
    Invalid vectors must fail with their "expect_error". The last test
    fails when a command lacks a byte-exact vector, so the protocol cannot
    grow a message that other-language clients have nothing to test with.

    The field tables below are written independently of the codec's, from
    yard_proto.h, so a drift in either shows up here. The directory is
    proto/vectors under the working directory (CTest runs us from the
    source tree), or $YARD_VECTORS_DIR. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "yard_proto.h"

/* ---- Field tables ------------------------------------------------------ */

typedef enum {
    T_BYTES,   /*  yard_bytes_t, {"utf8"} or {"hex"}; absent = empty      */
    T_PAYLOAD, /*  same, but present-and-empty differs from absent         */
    T_U8,
    T_U32,
    T_U64,
    T_BOOL,
    T_STATUS,  /*  "ok", "error", ...                                      */
    T_HEADERS, /*  [["key","value"], ...] in wire order                    */
    T_RAW,     /*  {"hex": raw msgpack}                                    */
    T_STRLIST, /*  ["prefix", ...]: a raw msgpack array of str             */
} tk_t;

typedef struct {
    const char *key;
    tk_t kind;
    size_t off;
    uint64_t dflt;
} tf_t;

#define TF(type, member, kind)                                                 \
    {                                                                          \
#member, kind, offsetof(type, member), 0                               \
    }

static const tf_t s_submit_f[] = {
    TF(yard_submit_t, id, T_BYTES),
    TF(yard_submit_t, service, T_BYTES),
    TF(yard_submit_t, payload, T_PAYLOAD),
    {"timeout_ms", T_U32, offsetof(yard_submit_t, timeout_ms),
     YARD_DEFAULT_TIMEOUT_MS},
    TF(yard_submit_t, retries, T_U32),
    {"backoff_ms", T_U32, offsetof(yard_submit_t, backoff_ms),
     YARD_DEFAULT_BACKOFF_MS},
    TF(yard_submit_t, priority, T_U8),
    TF(yard_submit_t, headers, T_HEADERS),
    TF(yard_submit_t, cache, T_RAW),
    TF(yard_submit_t, fallback, T_BYTES),
};
static const tf_t s_task_f[] = {
    TF(yard_task_t, job, T_U64),         TF(yard_task_t, id, T_BYTES),
    TF(yard_task_t, service, T_BYTES),   TF(yard_task_t, payload, T_PAYLOAD),
    TF(yard_task_t, timeout_ms, T_U32),  TF(yard_task_t, attempt, T_U32),
    TF(yard_task_t, headers, T_HEADERS),
};
static const tf_t s_result_f[] = {
    TF(yard_result_t, job, T_U64),
    TF(yard_result_t, id, T_BYTES),
    TF(yard_result_t, status, T_STATUS),
    TF(yard_result_t, payload, T_PAYLOAD),
    TF(yard_result_t, error, T_BYTES),
    TF(yard_result_t, cached, T_BOOL),
    TF(yard_result_t, attempts, T_U32),
    TF(yard_result_t, queue_us, T_U64),
    TF(yard_result_t, run_us, T_U64),
    TF(yard_result_t, total_us, T_U64),
    TF(yard_result_t, retry_after_ms, T_U32),
};
static const tf_t s_ready_f[] = {
    TF(yard_ready_t, service, T_BYTES), TF(yard_ready_t, capacity, T_U32),
    TF(yard_ready_t, name, T_BYTES),    TF(yard_ready_t, pid, T_U32),
    TF(yard_ready_t, version, T_BYTES),
};
static const tf_t s_cancel_f[] = {
    TF(yard_cancel_t, id, T_BYTES),
    TF(yard_cancel_t, job, T_U64),
};
static const tf_t s_error_f[] = {
    TF(yard_error_t, code, T_BYTES),
    TF(yard_error_t, message, T_BYTES),
    TF(yard_error_t, id, T_BYTES),
};
/*  One table for both directions of PUBLISH: a publisher (C/W) writes seq
    and ack, the broker writes sn (checked in s_check_valid). */
static const tf_t s_event_f[] = {
    TF(yard_event_t, type, T_BYTES),     TF(yard_event_t, source, T_BYTES),
    TF(yard_event_t, ts_us, T_U64),      TF(yard_event_t, payload, T_RAW),
    TF(yard_event_t, trace_id, T_BYTES), TF(yard_event_t, meta, T_HEADERS),
    TF(yard_event_t, seq, T_U64),        TF(yard_event_t, ack, T_BOOL),
    TF(yard_event_t, sn, T_U64),
};
static const tf_t s_publish_ack_f[] = {
    TF(yard_publish_ack_t, seq, T_U64),
    TF(yard_publish_ack_t, status, T_STATUS),
    TF(yard_publish_ack_t, error, T_BYTES),
};
static const tf_t s_subscribe_f[] = {
    TF(yard_subscribe_t, types, T_STRLIST),
};
static const tf_t s_report_f[] = {
    TF(yard_report_t, probe, T_U64),
    TF(yard_report_t, uptime_ms, T_U64),
    TF(yard_report_t, version, T_BYTES),
    TF(yard_report_t, rss, T_U64),
    TF(yard_report_t, rss_peak, T_U64),
    TF(yard_report_t, rss_growth, T_U64),
    TF(yard_report_t, growth_window_ms, T_U64),
    TF(yard_report_t, loop_iterations, T_U64),
    TF(yard_report_t, loop_busy_us, T_U64),
    TF(yard_report_t, loop_max_us, T_U64),
    TF(yard_report_t, loop_max_lag_us, T_U64),
    TF(yard_report_t, loop_slow, T_U64),
    TF(yard_report_t, loop_stalls, T_U64),
    TF(yard_report_t, loop_last_stall_us, T_U64),
    TF(yard_report_t, loop_stall_age_ms, T_U64),
    TF(yard_report_t, loop_slow_ms, T_U64),
    TF(yard_report_t, loop_stall_ms, T_U64),
    TF(yard_report_t, in_flight, T_U32),
    TF(yard_report_t, pending, T_U32),
    TF(yard_report_t, objects, T_RAW),
};
static const tf_t s_probe_f[] = {
    TF(yard_probe_t, probe, T_U64),
};

typedef union {
    yard_submit_t submit;
    yard_task_t task;
    yard_result_t result;
    yard_ready_t ready;
    yard_cancel_t cancel;
    yard_error_t error;
    yard_event_t event;
    yard_publish_ack_t publish_ack;
    yard_subscribe_t subscribe;
    yard_report_t report;
    yard_probe_t probe;
} any_t;

#define NF(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
    yard_cmd_t cmd;
    char role; /*  0: any sender; HEARTBEAT bodies differ by sender */
    const tf_t *fields;
    size_t nfields;
} tmsg_t;

static const tmsg_t s_msgs[] = {
    {YARD_CMD_SUBMIT, 0, s_submit_f, NF(s_submit_f)},
    {YARD_CMD_TASK, 0, s_task_f, NF(s_task_f)},
    {YARD_CMD_RESULT, 0, s_result_f, NF(s_result_f)},
    {YARD_CMD_READY, 0, s_ready_f, NF(s_ready_f)},
    {YARD_CMD_CANCEL, 0, s_cancel_f, NF(s_cancel_f)},
    {YARD_CMD_ERROR, 0, s_error_f, NF(s_error_f)},
    {YARD_CMD_PUBLISH, 0, s_event_f, NF(s_event_f)},
    {YARD_CMD_PUBLISH_ACK, 0, s_publish_ack_f, NF(s_publish_ack_f)},
    {YARD_CMD_SUBSCRIBE, 0, s_subscribe_f, NF(s_subscribe_f)},
    {YARD_CMD_HEARTBEAT, 'W', s_report_f, NF(s_report_f)},
    {YARD_CMD_HEARTBEAT, 'B', s_probe_f, NF(s_probe_f)},
};

static const tmsg_t *s_msg_for(yard_cmd_t cmd, yard_role_t role)
{
    for (size_t i = 0; i < NF(s_msgs); i++)
        if (s_msgs[i].cmd == cmd &&
            (s_msgs[i].role == 0 || s_msgs[i].role == (char)role))
            return &s_msgs[i];
    return NULL;
}

static const struct {
    const char *name;
    int code;
} s_errs[] = {
    {"YARD_E_MALFORMED", YARD_E_MALFORMED},
    {"YARD_E_TOO_LARGE", YARD_E_TOO_LARGE},
    {"YARD_E_VERSION", YARD_E_VERSION},
    {"YARD_E_UNKNOWN_CMD", YARD_E_UNKNOWN_CMD},
    {"YARD_E_TYPE", YARD_E_TYPE},
    {"YARD_E_RANGE", YARD_E_RANGE},
    {"YARD_E_MISSING", YARD_E_MISSING},
    {"YARD_E_FRAMES", YARD_E_FRAMES},
    {"YARD_E_HEADER", YARD_E_HEADER},
    {"YARD_E_ROLE", YARD_E_ROLE},
};

static const char *s_err_name(int code)
{
    for (size_t i = 0; i < NF(s_errs); i++)
        if (s_errs[i].code == code)
            return s_errs[i].name;
    return code == 0 ? "success" : "other";
}

/* ---- Per-vector state: what to free at the end -------------------------- */

typedef struct {
    void *keep[512]; /*  allocations the views point into */
    size_t nkeep;
} arena_t;

static void *s_keep(arena_t *a, void *p)
{
    assert_non_null(p);
    assert_true(a->nkeep < NF(a->keep));
    a->keep[a->nkeep++] = p;
    return p;
}

static void s_arena_free(arena_t *a)
{
    for (size_t i = 0; i < a->nkeep; i++)
        free(a->keep[i]);
    a->nkeep = 0;
}

static yard_bytes_t s_hex(arena_t *a, const char *hex)
{
    size_t n = strlen(hex);
    if (n % 2)
        fail_msg("odd-length hex \"%s\"", hex);
    uint8_t *p = s_keep(a, malloc(n / 2 + 1));
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            fail_msg("bad hex \"%s\"", hex);
        p[i] = (uint8_t)v;
    }
    return (yard_bytes_t){p, (uint32_t)(n / 2)};
}

/*  A bytes value: {"utf8": "..."} or {"hex": "..."}. */
static yard_bytes_t s_json_bytes(arena_t *a, json_t *v, const char *key)
{
    json_t *u = json_object_get(v, "utf8"), *h = json_object_get(v, "hex");
    if (json_is_string(u) && !h)
        return (yard_bytes_t){(const uint8_t *)json_string_value(u),
                              (uint32_t)json_string_length(u)};
    if (json_is_string(h) && !u)
        return s_hex(a, json_string_value(h));
    fail_msg("field %s: want {\"utf8\": ...} or {\"hex\": ...}", key);
    return (yard_bytes_t){NULL, 0};
}

/*  Packs [["k","v"], ...] into a raw msgpack map. */
static yard_bytes_t s_json_headers(arena_t *a, json_t *v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_true(json_is_array(v));
    msgpack_pack_map(&pk, json_array_size(v));
    size_t i;
    json_t *pair;
    json_array_foreach(v, i, pair)
    {
        json_t *k = json_array_get(pair, 0), *val = json_array_get(pair, 1);
        assert_true(json_array_size(pair) == 2 && json_is_string(k) &&
                    json_is_string(val));
        msgpack_pack_str_with_body(&pk, json_string_value(k),
                                   json_string_length(k));
        msgpack_pack_str_with_body(&pk, json_string_value(val),
                                   json_string_length(val));
    }
    s_keep(a, sb.data);
    return (yard_bytes_t){(const uint8_t *)sb.data, (uint32_t)sb.size};
}

/*  Packs ["a", "b", ...] into a raw msgpack array of str. */
static yard_bytes_t s_json_strlist(arena_t *a, json_t *v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_true(json_is_array(v));
    msgpack_pack_array(&pk, json_array_size(v));
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s)
    {
        assert_true(json_is_string(s));
        msgpack_pack_str_with_body(&pk, json_string_value(s),
                                   json_string_length(s));
    }
    s_keep(a, sb.data);
    return (yard_bytes_t){(const uint8_t *)sb.data, (uint32_t)sb.size};
}

/*  Fills *out from a JSON body: defaults first, then every key (an
    unknown key is a mistake in the vector). */
static void s_from_json(arena_t *a, const tmsg_t *msg, json_t *body, void *out)
{
    memset(out, 0, sizeof(any_t));
    for (size_t i = 0; i < msg->nfields; i++)
        if (msg->fields[i].dflt)
            *(uint32_t *)((char *)out + msg->fields[i].off) =
                (uint32_t)msg->fields[i].dflt;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        const tf_t *f = NULL;
        for (size_t i = 0; i < msg->nfields; i++)
            if (strcmp(msg->fields[i].key, key) == 0)
                f = &msg->fields[i];
        if (!f)
            fail_msg("unknown field \"%s\" for %s", key,
                     yard_cmd_name(msg->cmd));
        char *at = (char *)out + f->off;
        switch (f->kind) {
        case T_BYTES:
        case T_PAYLOAD:
            *(yard_bytes_t *)at = s_json_bytes(a, v, key);
            if (!((yard_bytes_t *)at)->ptr)
                *(yard_bytes_t *)at = (yard_bytes_t){(const uint8_t *)"", 0};
            break;
        case T_U8:
            assert_true(json_is_integer(v));
            *(uint8_t *)at = (uint8_t)json_integer_value(v);
            break;
        case T_U32:
            assert_true(json_is_integer(v));
            *(uint32_t *)at = (uint32_t)json_integer_value(v);
            break;
        case T_U64:
            assert_true(json_is_integer(v));
            *(uint64_t *)at = (uint64_t)json_integer_value(v);
            break;
        case T_BOOL:
            assert_true(json_is_boolean(v));
            *(bool *)at = json_is_true(v);
            break;
        case T_STATUS: {
            yard_status_t s;
            assert_true(json_is_string(v));
            assert_int_equal(yard_status_parse(json_string_value(v),
                                               json_string_length(v), &s),
                             0);
            *(yard_status_t *)at = s;
            break;
        }
        case T_HEADERS:
            *(yard_bytes_t *)at = s_json_headers(a, v);
            break;
        case T_RAW:
            *(yard_bytes_t *)at = s_json_bytes(a, v, key);
            break;
        case T_STRLIST:
            *(yard_bytes_t *)at = s_json_strlist(a, v);
            break;
        }
    }
}

/*  Collects headers as "k=v\n" lines, for comparing maps by content. */
static int s_hdr_line(const char *k, size_t kl, const char *v, size_t vl,
                      void *arg)
{
    char *buf = arg;
    size_t at = strlen(buf);
    snprintf(buf + at, 8192 - at, "%.*s=%.*s\n", (int)kl, k, (int)vl, v);
    return 0;
}

static void s_headers_text(const yard_bytes_t *h, char *buf)
{
    buf[0] = 0;
    assert_int_equal(yard_headers_each(h, s_hdr_line, buf), 0);
}

/*  Collects a types array as "len:prefix\n" lines, so that [] and [""]
    differ. */
static int s_strlist_line(const char *s, size_t len, void *arg)
{
    char *buf = arg;
    size_t at = strlen(buf);
    snprintf(buf + at, 8192 - at, "%zu:%.*s\n", len, (int)len, s);
    return 0;
}

static void s_strlist_text(const yard_bytes_t *l, char *buf)
{
    buf[0] = 0;
    assert_int_equal(yard_strlist_each(l, s_strlist_line, buf), 0);
}

static void s_compare(const tmsg_t *msg, const void *want, const void *got,
                      const char *vname, size_t body)
{
    for (size_t i = 0; i < msg->nfields; i++) {
        const tf_t *f = &msg->fields[i];
        const char *w = (const char *)want + f->off;
        const char *g = (const char *)got + f->off;
        bool same = true;
        switch (f->kind) {
        case T_PAYLOAD:
        case T_BYTES:
        case T_RAW: {
            const yard_bytes_t *bw = (const void *)w, *bg = (const void *)g;
            same = bw->len == bg->len &&
                   (bw->len == 0 || memcmp(bw->ptr, bg->ptr, bw->len) == 0);
            /*  For a payload, present-and-empty is not absent. */
            if (f->kind == T_PAYLOAD)
                same = same && (bw->ptr == NULL) == (bg->ptr == NULL);
            break;
        }
        case T_U8:
            same = *(const uint8_t *)w == *(const uint8_t *)g;
            break;
        case T_U32:
            same = *(const uint32_t *)w == *(const uint32_t *)g;
            break;
        case T_U64:
            same = *(const uint64_t *)w == *(const uint64_t *)g;
            break;
        case T_BOOL:
            same = *(const bool *)w == *(const bool *)g;
            break;
        case T_STATUS:
            same = *(const yard_status_t *)w == *(const yard_status_t *)g;
            break;
        case T_HEADERS: {
            static char tw[8192], tg[8192];
            s_headers_text((const yard_bytes_t *)w, tw);
            s_headers_text((const yard_bytes_t *)g, tg);
            same = strcmp(tw, tg) == 0;
            break;
        }
        case T_STRLIST: {
            static char tw[8192], tg[8192];
            s_strlist_text((const yard_bytes_t *)w, tw);
            s_strlist_text((const yard_bytes_t *)g, tg);
            /*  An absent list is not an empty one. */
            same = strcmp(tw, tg) == 0 &&
                   (((const yard_bytes_t *)w)->len == 0) ==
                       (((const yard_bytes_t *)g)->len == 0);
            break;
        }
        }
        if (!same)
            fail_msg("%s body %zu: decoded field \"%s\" differs from the "
                     "JSON",
                     vname, body, f->key);
    }
}

/* ---- Coverage ---------------------------------------------------------- */

/*  (role, command) pairs that must each have a byte-exact vector; for
    HEARTBEAT and DISCONNECT any role will do. PUBLISH has two
    encodings: a publisher's (C or W: seq, ack) and the broker's delivery
    to a subscriber (B: sn). */
static const struct {
    char role; /*  0: any */
    yard_cmd_t cmd;
} s_required[] = {
    {'C', YARD_CMD_SUBMIT},    {'B', YARD_CMD_RESULT},
    {'W', YARD_CMD_RESULT},    {'C', YARD_CMD_CANCEL},
    {'B', YARD_CMD_CANCEL},    {'W', YARD_CMD_READY},
    {'B', YARD_CMD_TASK},      {0, YARD_CMD_HEARTBEAT},
    {0, YARD_CMD_DISCONNECT},  {'B', YARD_CMD_ERROR},
    {'C', YARD_CMD_PUBLISH},   {'W', YARD_CMD_PUBLISH},
    {'B', YARD_CMD_PUBLISH},   {'B', YARD_CMD_PUBLISH_ACK},
    {'C', YARD_CMD_SUBSCRIBE}, {'W', YARD_CMD_HEARTBEAT},
    {'B', YARD_CMD_HEARTBEAT},
};
static bool s_covered[NF(s_required)];
static int s_vectors_run;

static void s_cover(char role, yard_cmd_t cmd, size_t nbodies)
{
    for (size_t i = 0; i < NF(s_required); i++) {
        if (s_required[i].cmd != cmd)
            continue;
        if (cmd == YARD_CMD_HEARTBEAT) {
            /*  {0, HEARTBEAT}: a bodiless one; {W|B, HEARTBEAT}: that
                sender's body (report, probe). */
            if (nbodies == 0 ? s_required[i].role == 0
                             : s_required[i].role == role)
                s_covered[i] = true;
        } else if (s_required[i].role == 0 || s_required[i].role == role)
            s_covered[i] = true;
    }
}

/* ---- One vector -------------------------------------------------------- */

static yard_decoder_t *s_dec;

static int s_decode(yard_cmd_t cmd, yard_role_t role, const yard_bytes_t *b,
                    any_t *out)
{
    switch (cmd) {
    case YARD_CMD_HEARTBEAT:
        if (role == YARD_ROLE_WORKER)
            return yard_decode_report(s_dec, b->ptr, b->len, &out->report);
        if (role == YARD_ROLE_BROKER)
            return yard_decode_probe(s_dec, b->ptr, b->len, &out->probe);
        return yard_msgpack_check(b->ptr, b->len);
    case YARD_CMD_SUBMIT:
        return yard_decode_submit(s_dec, b->ptr, b->len, &out->submit);
    case YARD_CMD_TASK:
        return yard_decode_task(s_dec, b->ptr, b->len, &out->task);
    case YARD_CMD_RESULT:
        return yard_decode_result(s_dec, b->ptr, b->len, &out->result);
    case YARD_CMD_READY:
        return yard_decode_ready(s_dec, b->ptr, b->len, &out->ready);
    case YARD_CMD_CANCEL:
        return yard_decode_cancel(s_dec, b->ptr, b->len, &out->cancel);
    case YARD_CMD_ERROR:
        return yard_decode_error(s_dec, b->ptr, b->len, &out->error);
    case YARD_CMD_PUBLISH:
        return yard_decode_event(s_dec, b->ptr, b->len, &out->event);
    case YARD_CMD_PUBLISH_ACK:
        return yard_decode_publish_ack(s_dec, b->ptr, b->len,
                                       &out->publish_ack);
    case YARD_CMD_SUBSCRIBE:
        return yard_decode_subscribe(s_dec, b->ptr, b->len, &out->subscribe);
    default:
        /*  HEARTBEAT / DISCONNECT bodies have no fields yet: they only
            have to be well-formed msgpack. */
        return yard_msgpack_check(b->ptr, b->len);
    }
}

static int s_encode(msgpack_sbuffer *sb, yard_cmd_t cmd, yard_role_t role,
                    const any_t *in)
{
    switch (cmd) {
    case YARD_CMD_SUBMIT:
        return yard_encode_submit(sb, &in->submit);
    case YARD_CMD_TASK:
        return yard_encode_task(sb, &in->task);
    case YARD_CMD_RESULT:
        return yard_encode_result(sb, role, &in->result);
    case YARD_CMD_READY:
        return yard_encode_ready(sb, &in->ready);
    case YARD_CMD_CANCEL:
        return yard_encode_cancel(sb, role, &in->cancel);
    case YARD_CMD_ERROR:
        return yard_encode_error(sb, &in->error);
    case YARD_CMD_PUBLISH:
        /*  The role picks the encoding: C/W publisher, B delivery. */
        return yard_encode_event(sb, role, &in->event);
    case YARD_CMD_PUBLISH_ACK:
        return yard_encode_publish_ack(sb, &in->publish_ack);
    case YARD_CMD_SUBSCRIBE:
        return yard_encode_subscribe(sb, &in->subscribe);
    case YARD_CMD_HEARTBEAT:
        return role == YARD_ROLE_WORKER ? yard_encode_report(sb, &in->report)
                                        : yard_encode_probe(sb, &in->probe);
    default:
        return -999;
    }
}

static yard_cmd_t s_cmd_named(const char *name)
{
    for (int c = 0; c < 256; c++)
        if (strcmp(yard_cmd_name((yard_cmd_t)c), name) == 0)
            return (yard_cmd_t)c;
    fail_msg("unknown command name \"%s\"", name);
    return (yard_cmd_t)0;
}

static void s_hexdump(const char *label, const void *p, size_t n)
{
    fprintf(stderr, "%s: ", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%02x", ((const uint8_t *)p)[i]);
    fprintf(stderr, "\n");
}

static void s_check_invalid(json_t *v, const char *vname, yard_bytes_t *fr,
                            size_t nfr)
{
    const char *want = json_string_value(json_object_get(v, "expect_error"));
    assert_non_null(want);
    yard_role_t role;
    yard_cmd_t cmd;
    any_t out;
    bool have_out = false;
    int rc = yard_header_parse(fr[0].ptr, fr[0].len, &role, &cmd);
    if (!rc)
        rc = yard_cmd_check(role, cmd, nfr - 1);
    for (size_t i = 1; !rc && i < nfr; i++) {
        rc = s_decode(cmd, role, &fr[i], &out);
        have_out = rc != 0;
    }
    if (strcmp(s_err_name(rc), want) != 0)
        fail_msg("%s: got %s (%d), want %s", vname, s_err_name(rc), rc, want);
    json_t *eid = json_object_get(v, "expect_id");
    if (eid) {
        arena_t a = {0};
        yard_bytes_t id = s_json_bytes(&a, eid, "expect_id");
        const tmsg_t *msg = s_msg_for(cmd, role);
        assert_true(have_out && msg);
        const tf_t *f = NULL;
        for (size_t i = 0; i < msg->nfields; i++)
            if (strcmp(msg->fields[i].key, "id") == 0)
                f = &msg->fields[i];
        assert_non_null(f);
        const yard_bytes_t *got =
            (const yard_bytes_t *)((const char *)&out + f->off);
        if (got->len != id.len || memcmp(got->ptr, id.ptr, id.len) != 0)
            fail_msg("%s: the failing body's id was not reported", vname);
        s_arena_free(&a);
    }
}

/*  The fields of an event depend on its direction: a publisher's (C/W)
    never has sn, a delivery (B) always has sn and never seq or ack. */
static void s_check_event_role(const yard_event_t *ev, yard_role_t role,
                               const char *vname, size_t body)
{
    if (role == YARD_ROLE_BROKER && (ev->sn == 0 || ev->seq || ev->ack))
        fail_msg("%s body %zu: a delivery has sn and no seq or ack", vname,
                 body);
    if (role != YARD_ROLE_BROKER && ev->sn)
        fail_msg("%s body %zu: a publisher's event has no sn", vname, body);
}

/*  The broker encodes an event once, without sn, and stamps sn per
    subscriber: that path must give the vector's bytes too. */
static void s_check_stamp(const yard_event_t *ev, const yard_bytes_t *frame,
                          const char *vname, size_t body)
{
    yard_event_t bare = *ev;
    bare.sn = 0;
    msgpack_sbuffer enc, out;
    msgpack_sbuffer_init(&enc);
    msgpack_sbuffer_init(&out);
    assert_int_equal(yard_encode_event(&enc, YARD_ROLE_BROKER, &bare), 0);
    assert_int_equal(yard_event_stamp_sn(&out, enc.data, enc.size, ev->sn), 0);
    if (out.size != frame->len || memcmp(out.data, frame->ptr, out.size)) {
        s_hexdump("want", frame->ptr, frame->len);
        s_hexdump("got ", out.data, out.size);
        fail_msg("%s body %zu: yard_event_stamp_sn is not byte-exact", vname,
                 body);
    }
    msgpack_sbuffer_destroy(&enc);
    msgpack_sbuffer_destroy(&out);
}

static void s_check_valid(json_t *v, const char *vname, arena_t *a,
                          yard_bytes_t *fr, size_t nfr)
{
    const char *rs = json_string_value(json_object_get(v, "role"));
    const char *cs = json_string_value(json_object_get(v, "command"));
    json_t *bodies = json_object_get(v, "bodies");
    bool decode_only = json_is_true(json_object_get(v, "decode_only"));
    assert_true(rs && strlen(rs) == 1 && cs && json_is_array(bodies));
    yard_role_t role = (yard_role_t)rs[0];
    yard_cmd_t cmd = s_cmd_named(cs);

    /*  The header, both ways. */
    uint8_t h[YARD_HEADER_SIZE];
    yard_header_make(h, role, cmd);
    assert_int_equal(fr[0].len, YARD_HEADER_SIZE);
    assert_memory_equal(fr[0].ptr, h, YARD_HEADER_SIZE);
    yard_role_t prole;
    yard_cmd_t pcmd;
    assert_int_equal(yard_header_parse(fr[0].ptr, fr[0].len, &prole, &pcmd), 0);
    assert_int_equal(prole, role);
    assert_int_equal(pcmd, cmd);
    size_t nbodies = nfr - 1;
    assert_int_equal(json_array_size(bodies), nbodies);
    assert_int_equal(yard_cmd_check(role, cmd, nbodies), 0);

    const tmsg_t *msg = s_msg_for(cmd, role);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (size_t i = 0; i < nbodies; i++) {
        json_t *jb = json_array_get(bodies, i);
        if (!msg) { /*  HEARTBEAT / DISCONNECT with a body */
            assert_int_equal(yard_msgpack_check(fr[i + 1].ptr, fr[i + 1].len),
                             0);
            continue;
        }
        any_t want, got;
        s_from_json(a, msg, jb, &want);
        if (cmd == YARD_CMD_PUBLISH)
            s_check_event_role(&want.event, role, vname, i);
        int rc = s_decode(cmd, role, &fr[i + 1], &got);
        if (rc)
            fail_msg("%s body %zu: decode failed: %s", vname, i,
                     yard_strerror(rc));
        s_compare(msg, &want, &got, vname, i);
        if (decode_only)
            continue;
        msgpack_sbuffer_clear(&sb);
        rc = s_encode(&sb, cmd, role, &want);
        if (rc)
            fail_msg("%s body %zu: encode failed: %s", vname, i,
                     yard_strerror(rc));
        if (sb.size != fr[i + 1].len ||
            memcmp(sb.data, fr[i + 1].ptr, sb.size) != 0) {
            s_hexdump("want", fr[i + 1].ptr, fr[i + 1].len);
            s_hexdump("got ", sb.data, sb.size);
            fail_msg("%s body %zu: encoding is not byte-exact", vname, i);
        }
        if (cmd == YARD_CMD_PUBLISH && role == YARD_ROLE_BROKER)
            s_check_stamp(&want.event, &fr[i + 1], vname, i);
    }
    msgpack_sbuffer_destroy(&sb);
    if (!decode_only)
        s_cover(rs[0], cmd, nbodies);
}

static void test_vector(void **state)
{
    const char *path = *state;
    json_error_t jerr;
    json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        fail_msg("%s:%d: %s", path, jerr.line, jerr.text);
    const char *vname = json_string_value(json_object_get(v, "name"));
    assert_non_null(vname);
    assert_true(json_is_string(json_object_get(v, "description")));

    /*  The file is named after the vector. */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    assert_int_equal(strlen(base), strlen(vname) + 5);
    assert_memory_equal(base, vname, strlen(vname));

    json_t *frames = json_object_get(v, "frames");
    assert_true(json_is_array(frames) && json_array_size(frames) >= 1);
    size_t nfr = json_array_size(frames);
    assert_true(nfr <= YARD_MAX_FRAMES + 1);
    arena_t a = {0};
    yard_bytes_t fr[YARD_MAX_FRAMES + 1];
    for (size_t i = 0; i < nfr; i++) {
        const char *hex = json_string_value(json_array_get(frames, i));
        assert_non_null(hex);
        for (const char *c = hex; *c; c++)
            if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
                fail_msg("%s: frames are lowercase hex, no spaces", vname);
        fr[i] = s_hex(&a, hex);
    }

    if (json_object_get(v, "expect_error"))
        s_check_invalid(v, vname, fr, nfr);
    else
        s_check_valid(v, vname, &a, fr, nfr);
    s_vectors_run++;
    s_arena_free(&a);
    json_decref(v);
}

static void test_coverage(void **state)
{
    (void)state;
    assert_true(s_vectors_run > 0);
    bool ok = true;
    for (size_t i = 0; i < NF(s_required); i++) {
        if (!s_covered[i]) {
            fprintf(stderr, "no byte-exact vector for %s from %c\n",
                    yard_cmd_name(s_required[i].cmd),
                    s_required[i].role ? s_required[i].role : '*');
            ok = false;
        }
    }
    assert_true(ok);
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    const char *dir = getenv("YARD_VECTORS_DIR");
    if (!dir)
        dir = "proto/vectors";
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr,
                "test_vectors: cannot open %s (run from the source "
                "tree or set YARD_VECTORS_DIR)\n",
                dir);
        return 1;
    }
    char **paths = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        paths = realloc(paths, (n + 1) * sizeof *paths);
        size_t plen = strlen(dir) + l + 2;
        paths[n] = malloc(plen);
        snprintf(paths[n], plen, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(paths, n, sizeof *paths, s_cmp);

    struct CMUnitTest *tests = calloc(n + 1, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = strrchr(paths[i], '/') + 1;
        tests[i].test_func = test_vector;
        tests[i].initial_state = paths[i];
    }
    tests[n].name = "coverage";
    tests[n].test_func = test_coverage;

    s_dec = yard_decoder_new();
    int failed = _cmocka_run_group_tests("vectors", tests, n + 1, NULL, NULL);
    yard_decoder_destroy(&s_dec);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(tests);
    return failed;
}
