/*  test_codec.c — unit tests of the protocol codec: header and status
    helpers, the structural msgpack check, every decoder (good input, each
    required field missing, wrong types, each limit on both sides, depth,
    trailing bytes, the msgpack-c #1013 hazard), every encoder (canonical
    bytes, refusals, round trips), the headers iterator, and the cost of a
    decode (time, and no allocation after warm-up). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "yard_proto.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* ---- Allocation counting ------------------------------------------------

    To prove "no malloc per message after warm-up" we interpose malloc,
    calloc and realloc for this executable (glibc exports the real ones as
    __libc_*). Sanitizer runtimes interpose them already, so under ASan the
    counter is compiled out and the allocation assertions are skipped. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define S_SANITIZED 1
#endif

static volatile long s_allocs;
#ifndef S_SANITIZED
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
void *malloc(size_t n)
{
    s_allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    s_allocs++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    s_allocs++;
    return __libc_realloc(p, n);
}
#endif

/* ---- Building bodies -------------------------------------------------- */

typedef enum {
    V_STR,
    V_BIN,
    V_UINT,
    V_NEG,
    V_TRUE,
    V_NIL,
    V_FLOAT,
    V_RAW
} vk_t;

/*  One key/value of a hand-built body. */
typedef struct {
    const char *key;
    vk_t kind;
    const void *p; /*  str/bin/raw bytes */
    size_t n;      /*  their length      */
    uint64_t u;    /*  V_UINT / V_NEG    */
} kv_t;

#define STR(k, v)                                                              \
    {                                                                          \
        k, V_STR, v, sizeof(v) - 1, 0                                          \
    }
#define STRN(k, v, len)                                                        \
    {                                                                          \
        k, V_STR, v, len, 0                                                    \
    }
#define BIN(k, v)                                                              \
    {                                                                          \
        k, V_BIN, v, sizeof(v) - 1, 0                                          \
    }
#define BINN(k, v, len)                                                        \
    {                                                                          \
        k, V_BIN, v, len, 0                                                    \
    }
#define UINT(k, v)                                                             \
    {                                                                          \
        k, V_UINT, NULL, 0, v                                                  \
    }
#define NEG(k, v)                                                              \
    {                                                                          \
        k, V_NEG, NULL, 0, v                                                   \
    }
#define TRUE(k)                                                                \
    {                                                                          \
        k, V_TRUE, NULL, 0, 0                                                  \
    }
#define NIL(k)                                                                 \
    {                                                                          \
        k, V_NIL, NULL, 0, 0                                                   \
    }
#define FLT(k)                                                                 \
    {                                                                          \
        k, V_FLOAT, NULL, 0, 0                                                 \
    }
#define RAW(k, v, len)                                                         \
    {                                                                          \
        k, V_RAW, v, len, 0                                                    \
    }
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void s_pack_kv(msgpack_sbuffer *sb, msgpack_packer *pk, const kv_t *kv)
{
    msgpack_pack_str_with_body(pk, kv->key, strlen(kv->key));
    switch (kv->kind) {
    case V_STR:
        msgpack_pack_str_with_body(pk, kv->p, kv->n);
        break;
    case V_BIN:
        msgpack_pack_bin_with_body(pk, kv->p, kv->n);
        break;
    case V_UINT:
        msgpack_pack_uint64(pk, kv->u);
        break;
    case V_NEG:
        msgpack_pack_int64(pk, -(int64_t)kv->u);
        break;
    case V_TRUE:
        msgpack_pack_true(pk);
        break;
    case V_NIL:
        msgpack_pack_nil(pk);
        break;
    case V_FLOAT:
        msgpack_pack_double(pk, 1.5);
        break;
    case V_RAW:
        msgpack_sbuffer_write(sb, kv->p, kv->n);
        break;
    }
}

/*  Packs kvs as a map into sb (cleared first), leaving out the key omit
    and using *repl instead of the entry with the same key (or appending
    it when there is none). */
static void s_build(msgpack_sbuffer *sb, const kv_t *kvs, size_t n,
                    const char *omit, const kv_t *repl)
{
    msgpack_packer pk;
    size_t count = 0;
    bool replaced = false;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < n; i++) {
        if (omit && strcmp(kvs[i].key, omit) == 0)
            continue;
        count++;
    }
    if (repl) {
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found |= strcmp(kvs[i].key, repl->key) == 0;
        if (!found)
            count++;
    }
    msgpack_pack_map(&pk, count);
    for (size_t i = 0; i < n; i++) {
        if (omit && strcmp(kvs[i].key, omit) == 0)
            continue;
        if (repl && strcmp(kvs[i].key, repl->key) == 0) {
            s_pack_kv(sb, &pk, repl);
            replaced = true;
        } else {
            s_pack_kv(sb, &pk, &kvs[i]);
        }
    }
    if (repl && !replaced)
        s_pack_kv(sb, &pk, repl);
}

/*  Decodes with the decoder for message kind which. */
typedef enum { M_SUBMIT, M_TASK, M_RESULT, M_READY, M_CANCEL, M_ERROR } m_t;

typedef union {
    yard_submit_t submit;
    yard_task_t task;
    yard_result_t result;
    yard_ready_t ready;
    yard_cancel_t cancel;
    yard_error_t error;
} any_t;

static yard_decoder_t *s_dec;

static int s_decode(m_t which, const void *data, size_t len, any_t *out)
{
    switch (which) {
    case M_SUBMIT:
        return yard_decode_submit(s_dec, data, len, &out->submit);
    case M_TASK:
        return yard_decode_task(s_dec, data, len, &out->task);
    case M_RESULT:
        return yard_decode_result(s_dec, data, len, &out->result);
    case M_READY:
        return yard_decode_ready(s_dec, data, len, &out->ready);
    case M_CANCEL:
        return yard_decode_cancel(s_dec, data, len, &out->cancel);
    case M_ERROR:
        return yard_decode_error(s_dec, data, len, &out->error);
    }
    return -999;
}

static int s_try(m_t which, const kv_t *kvs, size_t n, const char *omit,
                 const kv_t *repl)
{
    msgpack_sbuffer sb;
    any_t out;
    msgpack_sbuffer_init(&sb);
    s_build(&sb, kvs, n, omit, repl);
    int rc = s_decode(which, sb.data, sb.size, &out);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static bool s_eq(yard_bytes_t b, const char *s)
{
    return b.ptr && b.len == strlen(s) && memcmp(b.ptr, s, b.len) == 0;
}

/*  A raw headers map {"trace":"t1","tenant":"acme"}. */
static const uint8_t s_headers[] = {0x82, 0xa5, 't',  'r', 'a', 'c', 'e', 0xa2,
                                    't',  '1',  0xa6, 't', 'e', 'n', 'a', 'n',
                                    't',  0xa4, 'a',  'c', 'm', 'e'};
/*  A raw cache map {"ttl": 60}. */
static const uint8_t s_cache[] = {0x81, 0xa3, 't', 't', 'l', 0x3c};

static const kv_t s_submit_good[] = {
    STR("id", "task-1"),
    STR("service", "echo"),
    BIN("payload", "hello"),
    UINT("timeout_ms", 5000),
    UINT("retries", 2),
    UINT("backoff_ms", 250),
    UINT("priority", 5),
    RAW("headers", s_headers, sizeof s_headers),
    RAW("cache", s_cache, sizeof s_cache),
    STR("fallback", "echo.backup"),
};
static const kv_t s_task_good[] = {
    UINT("job", 42),
    STR("id", "task-1"),
    STR("service", "echo"),
    BIN("payload", "hello"),
    UINT("timeout_ms", 4000),
    UINT("attempt", 1),
    RAW("headers", s_headers, sizeof s_headers),
};
static const kv_t s_result_good[] = {
    UINT("job", 42),         STR("id", "task-1"),       STR("status", "ok"),
    BIN("payload", "world"), STR("error", "none"),      TRUE("cached"),
    UINT("attempts", 1),     UINT("queue_us", 10),      UINT("run_us", 20),
    UINT("total_us", 40),    UINT("retry_after_ms", 7),
};
static const kv_t s_ready_good[] = {
    STR("service", "echo"), UINT("capacity", 4),     STR("name", "w1"),
    UINT("pid", 1234),      STR("version", "0.1.0"),
};
static const kv_t s_cancel_good[] = {STR("id", "task-1"), UINT("job", 42)};
static const kv_t s_error_good[] = {STR("code", "malformed"),
                                    STR("message", "bad msgpack"),
                                    STR("id", "task-1")};

/*  Per message: its good body, required keys, and a wrong-typed value for
    each key. */
typedef struct {
    m_t which;
    const kv_t *good;
    size_t ngood;
    const char *required[4];
} desc_t;

static const desc_t s_descs[] = {
    {M_SUBMIT, s_submit_good, N(s_submit_good), {"id", "service"}},
    {M_TASK, s_task_good, N(s_task_good), {"job", "id", "service"}},
    {M_RESULT, s_result_good, N(s_result_good), {"status"}},
    {M_READY, s_ready_good, N(s_ready_good), {"service", "capacity"}},
    {M_CANCEL, s_cancel_good, N(s_cancel_good), {NULL}},
    {M_ERROR, s_error_good, N(s_error_good), {"code"}},
};

/* ---- Status, header, command table ------------------------------------ */

static void test_status_names(void **state)
{
    (void)state;
    const char *names[] = {"ok",           "error",     "timeout",  "rejected",
                           "circuit_open", "cancelled", "shutdown", "invalid"};
    for (int i = 0; i < YARD_STATUS_COUNT; i++) {
        yard_status_t s;
        assert_string_equal(yard_status_name((yard_status_t)i), names[i]);
        assert_int_equal(yard_status_parse(names[i], strlen(names[i]), &s), 0);
        assert_int_equal(s, i);
    }
    yard_status_t s;
    assert_string_equal(yard_status_name(YARD_STATUS_COUNT), "unknown");
    assert_string_equal(yard_status_name((yard_status_t)-1), "unknown");
    assert_int_equal(yard_status_parse("OK", 2, &s), YARD_E_RANGE);
    assert_int_equal(yard_status_parse("ok ", 3, &s), YARD_E_RANGE);
    assert_int_equal(yard_status_parse("o", 1, &s), YARD_E_RANGE);
    assert_int_equal(yard_status_parse("", 0, &s), YARD_E_RANGE);
    assert_int_equal(yard_status_parse(NULL, 0, &s), YARD_E_RANGE);
}

static void test_strerror_errcode(void **state)
{
    (void)state;
    for (int e = 0; e >= YARD_E_INTERRUPTED; e--) {
        assert_non_null(yard_strerror(e));
        assert_string_not_equal(yard_strerror(e), "unknown error");
    }
    assert_string_equal(yard_strerror(-999), "unknown error");
    assert_string_equal(yard_strerror(5), "unknown error");
    assert_string_equal(yard_errcode_for(YARD_E_MALFORMED), "malformed");
    assert_string_equal(yard_errcode_for(YARD_E_HEADER), "malformed");
    assert_string_equal(yard_errcode_for(YARD_E_ROLE), "malformed");
    assert_string_equal(yard_errcode_for(YARD_E_TOO_LARGE), "too_large");
    assert_string_equal(yard_errcode_for(YARD_E_VERSION), "bad_version");
    assert_string_equal(yard_errcode_for(YARD_E_UNKNOWN_CMD),
                        "unknown_command");
    assert_string_equal(yard_errcode_for(YARD_E_TYPE), "bad_field");
    assert_string_equal(yard_errcode_for(YARD_E_RANGE), "bad_field");
    assert_string_equal(yard_errcode_for(YARD_E_MISSING), "bad_field");
    assert_string_equal(yard_errcode_for(YARD_E_FRAMES), "bad_frames");
}

static void test_cmd_names(void **state)
{
    (void)state;
    assert_string_equal(yard_cmd_name(YARD_CMD_SUBMIT), "SUBMIT");
    assert_string_equal(yard_cmd_name(YARD_CMD_RESULT), "RESULT");
    assert_string_equal(yard_cmd_name(YARD_CMD_CANCEL), "CANCEL");
    assert_string_equal(yard_cmd_name(YARD_CMD_READY), "READY");
    assert_string_equal(yard_cmd_name(YARD_CMD_TASK), "TASK");
    assert_string_equal(yard_cmd_name(YARD_CMD_HEARTBEAT), "HEARTBEAT");
    assert_string_equal(yard_cmd_name(YARD_CMD_DISCONNECT), "DISCONNECT");
    assert_string_equal(yard_cmd_name(YARD_CMD_ERROR), "ERROR");
    assert_string_equal(yard_cmd_name(YARD_CMD_STREAM_END), "STREAM_END");
    assert_string_equal(yard_cmd_name((yard_cmd_t)0), "UNKNOWN");
    assert_string_equal(yard_cmd_name((yard_cmd_t)0xff), "UNKNOWN");
}

static void test_header(void **state)
{
    (void)state;
    uint8_t h[YARD_HEADER_SIZE];
    yard_role_t role;
    yard_cmd_t cmd;
    yard_header_make(h, YARD_ROLE_CLIENT, YARD_CMD_SUBMIT);
    assert_memory_equal(h, "\x59\x43\x01\x01", 4);
    assert_int_equal(yard_header_parse(h, 4, &role, &cmd), 0);
    assert_int_equal(role, YARD_ROLE_CLIENT);
    assert_int_equal(cmd, YARD_CMD_SUBMIT);

    /*  Unknown commands still parse: yard_cmd_check judges them. */
    assert_int_equal(yard_header_parse("YB\x01\x77", 4, &role, &cmd), 0);
    assert_int_equal(cmd, 0x77);

    assert_int_equal(yard_header_parse("YC\x01", 3, &role, &cmd),
                     YARD_E_HEADER);
    assert_int_equal(yard_header_parse("YC\x01\x01\x00", 5, &role, &cmd),
                     YARD_E_HEADER);
    assert_int_equal(yard_header_parse("", 0, &role, &cmd), YARD_E_HEADER);
    assert_int_equal(yard_header_parse(NULL, 4, &role, &cmd), YARD_E_HEADER);
    assert_int_equal(yard_header_parse("XC\x01\x01", 4, &role, &cmd),
                     YARD_E_HEADER);
    assert_int_equal(yard_header_parse("YX\x01\x01", 4, &role, &cmd),
                     YARD_E_ROLE);
    assert_int_equal(yard_header_parse("Yc\x01\x01", 4, &role, &cmd),
                     YARD_E_ROLE);
    assert_int_equal(yard_header_parse("YC\x02\x01", 4, &role, &cmd),
                     YARD_E_VERSION);
    assert_int_equal(yard_header_parse("YC\x00\x01", 4, &role, &cmd),
                     YARD_E_VERSION);
    /*  Version is judged before role (a later version may add roles). */
    assert_int_equal(yard_header_parse("YX\x02\x01", 4, &role, &cmd),
                     YARD_E_VERSION);
}

static void test_cmd_check(void **state)
{
    (void)state;
    const yard_role_t C = YARD_ROLE_CLIENT, W = YARD_ROLE_WORKER,
                      B = YARD_ROLE_BROKER;
    struct {
        yard_role_t role;
        yard_cmd_t cmd;
        size_t min, max; /*  max + 1 > YARD_MAX_BATCH means unknown */
    } ok[] = {
        {C, YARD_CMD_SUBMIT, 1, 256},      {C, YARD_CMD_CANCEL, 1, 256},
        {C, YARD_CMD_HEARTBEAT, 0, 0},     {C, YARD_CMD_DISCONNECT, 0, 1},
        {C, YARD_CMD_PUBLISH, 1, 256},     {C, YARD_CMD_SUBSCRIBE, 1, 1},
        {W, YARD_CMD_READY, 1, 1},         {W, YARD_CMD_RESULT, 1, 256},
        {W, YARD_CMD_HEARTBEAT, 0, 1},     {W, YARD_CMD_DISCONNECT, 0, 1},
        {W, YARD_CMD_PUBLISH, 1, 256},     {B, YARD_CMD_RESULT, 1, 256},
        {B, YARD_CMD_TASK, 1, 256},        {B, YARD_CMD_CANCEL, 1, 256},
        {B, YARD_CMD_HEARTBEAT, 0, 1},     {B, YARD_CMD_DISCONNECT, 0, 1},
        {B, YARD_CMD_ERROR, 1, 1},         {B, YARD_CMD_PUBLISH, 1, 256},
        {B, YARD_CMD_PUBLISH_ACK, 1, 256},
    };
    for (size_t i = 0; i < N(ok); i++) {
        for (size_t n = 0; n <= 300; n++) {
            int want = (n >= ok[i].min && n <= ok[i].max) ? 0 : YARD_E_FRAMES;
            assert_int_equal(yard_cmd_check(ok[i].role, ok[i].cmd, n), want);
        }
    }
    /*  Everything else is unknown for the role, whatever the count. */
    const yard_role_t roles[] = {C, W, B};
    for (size_t r = 0; r < 3; r++) {
        for (int cmd = 0; cmd < 256; cmd++) {
            bool listed = false;
            for (size_t i = 0; i < N(ok); i++)
                listed |= ok[i].role == roles[r] && (int)ok[i].cmd == cmd;
            if (!listed)
                assert_int_equal(yard_cmd_check(roles[r], (yard_cmd_t)cmd, 1),
                                 YARD_E_UNKNOWN_CMD);
        }
    }
    const yard_cmd_t reserved[] = {YARD_CMD_CHUNK, YARD_CMD_CREDIT,
                                   YARD_CMD_STREAM_END};
    for (size_t i = 0; i < N(reserved); i++)
        for (size_t r = 0; r < 3; r++)
            assert_int_equal(yard_cmd_check(roles[r], reserved[i], 1),
                             YARD_E_UNKNOWN_CMD);
    assert_int_equal(yard_cmd_check((yard_role_t)'X', YARD_CMD_SUBMIT, 1),
                     YARD_E_ROLE);
}

/* ---- Structural check ------------------------------------------------- */

/*  Checks hex-given bytes from a heap buffer of exactly their size, so
    that ASan sees any read past the end. */
static int s_check_hex(const char *hex)
{
    size_t n = strlen(hex) / 2;
    uint8_t *buf = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        buf[i] = (uint8_t)v;
    }
    int rc = yard_msgpack_check(n ? buf : NULL, n);
    free(buf);
    return rc;
}

static void test_mpcheck_basic(void **state)
{
    (void)state;
    assert_int_equal(s_check_hex("80"), 0);
    assert_int_equal(s_check_hex("c0"), 0);
    assert_int_equal(s_check_hex("81a161c3"), 0);
    assert_int_equal(s_check_hex("93010203"), 0);
    assert_int_equal(s_check_hex("cf0000000000000001"), 0);
    assert_int_equal(s_check_hex("c70101ff"), 0);     /*  ext8      */
    assert_int_equal(s_check_hex("d6ff00000000"), 0); /*  timestamp */
    assert_int_equal(s_check_hex("cb3ff8000000000000"), 0);
    assert_int_equal(s_check_hex("c40100"), 0);
    assert_int_equal(s_check_hex(""), YARD_E_MALFORMED);
    assert_int_equal(yard_msgpack_check(NULL, 0), YARD_E_MALFORMED);
    assert_int_equal(yard_msgpack_check(NULL, 5), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("c1"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("81a161c1"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("8080"), YARD_E_MALFORMED); /*  trailing */
    assert_int_equal(s_check_hex("81a161"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("92c0"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("a3616263"), 0);
    assert_int_equal(s_check_hex("a36162"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("cd01"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("d9"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("c70201ff"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("d8ff00"), YARD_E_MALFORMED);
    /*  Found by fuzz_decode: an element that fits the buffer but eats the
        bytes its siblings need (the walk read one past the end). */
    assert_int_equal(s_check_hex("92a26162"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("81a26162"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("81a16161"), 0);
    assert_int_equal(s_check_hex("93cd0001c0"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("9291c4026162"), YARD_E_MALFORMED);
    assert_int_equal(s_check_hex("9291c40261620a"), 0);
}

/*  msgpack-c #1013: a few bytes claiming 2^32 elements (or bytes) must be
    refused before anything trusts the count. */
static void test_mpcheck_1013(void **state)
{
    (void)state;
    const char *hazards[] = {
        "ddffffffff",       "dfffffffff",
        "deffff",           "dcffff",
        "c6ffffffff",       "dbffffffff",
        "c9ffffffff01",     "c8ffff01",
        "81a178ddffffffff", "9fc0c0c0c0c0c0c0c0c0c0c0c0c0c0",
        "92ddffffffff00", /*  the 00 is spoken for by the outer array */
        "dd00000002c0",     "df00000001c0",
    };
    for (size_t i = 0; i < N(hazards); i++)
        assert_int_equal(s_check_hex(hazards[i]), YARD_E_MALFORMED);

    /*  And the decoders refuse them without allocating. */
    for (size_t i = 0; i < N(hazards); i++) {
        size_t n = strlen(hazards[i]) / 2;
        uint8_t *buf = malloc(n); /*  exact size: ASan sees over-reads */
        for (size_t j = 0; j < n; j++) {
            unsigned v;
            sscanf(hazards[i] + 2 * j, "%2x", &v);
            buf[j] = (uint8_t)v;
        }
        long before = s_allocs;
        for (m_t m = M_SUBMIT; m <= M_ERROR; m++) {
            any_t out;
            assert_int_equal(s_decode(m, buf, n, &out), YARD_E_MALFORMED);
        }
        assert_int_equal(s_allocs, before);
        free(buf);
    }
}

static void test_mpcheck_depth(void **state)
{
    (void)state;
    uint8_t buf[32];
    /*  YARD_MAX_DEPTH nested one-element arrays around a nil: accepted. */
    for (int depth = 1; depth <= YARD_MAX_DEPTH + 2; depth++) {
        memset(buf, 0x91, (size_t)depth);
        buf[depth] = 0xc0;
        int want = depth <= YARD_MAX_DEPTH ? 0 : YARD_E_TOO_LARGE;
        assert_int_equal(yard_msgpack_check(buf, (size_t)depth + 1), want);
        /*  An empty container counts as a level too. */
        buf[depth - 1] = 0x90;
        assert_int_equal(yard_msgpack_check(buf, (size_t)depth), want);
    }
    /*  Depth is the nesting, not the total: siblings do not add up. */
    memset(buf, 0, sizeof buf);
    size_t n = 0;
    buf[n++] = 0x92;
    for (int i = 0; i < YARD_MAX_DEPTH - 1; i++)
        buf[n++] = 0x91;
    buf[n++] = 0xc0;
    for (int i = 0; i < YARD_MAX_DEPTH - 1; i++)
        buf[n++] = 0x91;
    buf[n++] = 0xc0;
    assert_int_equal(yard_msgpack_check(buf, n), 0);
}

static void test_mpcheck_limits(void **state)
{
    (void)state;
    /*  Elements: an array of YARD_MAX_ELEMENTS nils passes, one more not. */
    static uint8_t buf[8 + YARD_MAX_ELEMENTS + 1];
    buf[0] = 0xdc;
    buf[1] = (uint8_t)(YARD_MAX_ELEMENTS >> 8);
    buf[2] = (uint8_t)YARD_MAX_ELEMENTS;
    memset(buf + 3, 0xc0, YARD_MAX_ELEMENTS + 1);
    assert_int_equal(yard_msgpack_check(buf, 3 + YARD_MAX_ELEMENTS), 0);
    buf[1] = (uint8_t)((YARD_MAX_ELEMENTS + 1) >> 8);
    buf[2] = (uint8_t)(YARD_MAX_ELEMENTS + 1);
    assert_int_equal(yard_msgpack_check(buf, 4 + YARD_MAX_ELEMENTS),
                     YARD_E_TOO_LARGE);
    /*  A map counts keys and values (nil keys: structure only). */
    static uint8_t map[3 + YARD_MAX_ELEMENTS + 2];
    map[0] = 0xde;
    map[1] = (uint8_t)((YARD_MAX_ELEMENTS / 2 + 1) >> 8);
    map[2] = (uint8_t)(YARD_MAX_ELEMENTS / 2 + 1);
    memset(map + 3, 0xc0, YARD_MAX_ELEMENTS + 2);
    assert_int_equal(yard_msgpack_check(map, sizeof map), YARD_E_TOO_LARGE);

    /*  Size: YARD_MAX_BODY passes the size rule, one byte more does not. */
    uint8_t *big = malloc(YARD_MAX_BODY + 1);
    assert_non_null(big);
    big[0] = 0xc6;
    uint32_t n = YARD_MAX_BODY - 5;
    big[1] = (uint8_t)(n >> 24);
    big[2] = (uint8_t)(n >> 16);
    big[3] = (uint8_t)(n >> 8);
    big[4] = (uint8_t)n;
    memset(big + 5, 'x', n + 1);
    assert_int_equal(yard_msgpack_check(big, YARD_MAX_BODY), 0);
    assert_int_equal(yard_msgpack_check(big, YARD_MAX_BODY + 1),
                     YARD_E_TOO_LARGE);
    free(big);
}

static void test_mpcheck_skip(void **state)
{
    (void)state;
    const uint8_t buf[] = {0x81, 0xa1, 'h',  0x82, 0xa1, 'a', 0x01,
                           0xa1, 'b',  0x92, 0x01, 0x02, 0xc3};
    size_t off = 3;
    assert_int_equal(yard_msgpack_skip(buf, sizeof buf, &off), 0);
    assert_int_equal(off, 12); /*  just past the inner map */
    off = 12;
    assert_int_equal(yard_msgpack_skip(buf, sizeof buf, &off), 0);
    assert_int_equal(off, 13);
    off = 13;
    assert_int_equal(yard_msgpack_skip(buf, sizeof buf, &off),
                     YARD_E_MALFORMED);
    assert_int_equal(off, 13);
    off = 3;
    assert_int_equal(yard_msgpack_skip(buf, 10, &off), YARD_E_MALFORMED);
    assert_int_equal(off, 3);
    assert_int_equal(yard_msgpack_skip(buf, sizeof buf, NULL),
                     YARD_E_MALFORMED);
}

/* ---- Decoders: generic table-driven checks ----------------------------- */

static void test_decode_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(s_descs); i++)
        assert_int_equal(s_try(s_descs[i].which, s_descs[i].good,
                               s_descs[i].ngood, NULL, NULL),
                         0);
}

static void test_decode_missing(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(s_descs); i++) {
        const desc_t *d = &s_descs[i];
        for (size_t r = 0; r < 4 && d->required[r]; r++)
            assert_int_equal(
                s_try(d->which, d->good, d->ngood, d->required[r], NULL),
                YARD_E_MISSING);
        /*  Every optional field may be left out alone. */
        for (size_t k = 0; k < d->ngood; k++) {
            bool req = false;
            for (size_t r = 0; r < 4 && d->required[r]; r++)
                req |= strcmp(d->required[r], d->good[k].key) == 0;
            if (!req)
                assert_int_equal(
                    s_try(d->which, d->good, d->ngood, d->good[k].key, NULL),
                    0);
        }
    }
    /*  RESULT and CANCEL need at least one of job / id. */
    kv_t only_status[] = {STR("status", "ok")};
    assert_int_equal(s_try(M_RESULT, only_status, 1, NULL, NULL),
                     YARD_E_MISSING);
    kv_t with_job[] = {UINT("job", 1), STR("status", "ok")};
    assert_int_equal(s_try(M_RESULT, with_job, 2, NULL, NULL), 0);
    kv_t with_id[] = {STR("id", "x"), STR("status", "error")};
    assert_int_equal(s_try(M_RESULT, with_id, 2, NULL, NULL), 0);
    kv_t nothing[] = {STR("other", "x")};
    assert_int_equal(s_try(M_CANCEL, nothing, 1, NULL, NULL), YARD_E_MISSING);
    assert_int_equal(s_try(M_CANCEL, s_cancel_good, 2, "id", NULL), 0);
    assert_int_equal(s_try(M_CANCEL, s_cancel_good, 2, "job", NULL), 0);
}

/*  A wrong-typed value for a key, given the type the key wants. */
static kv_t s_wrong(const kv_t *good, int variant)
{
    kv_t w = {good->key, V_NIL, NULL, 0, 0};
    if (variant == 0)
        return w; /*  nil is never accepted */
    switch (good->kind) {
    case V_STR:
        w.kind = variant == 1 ? V_UINT : V_BIN;
        w.p = "abc";
        w.n = 3;
        w.u = 1;
        break;
    case V_BIN: /*  payload: str is fine, so give a number / float */
        w.kind = variant == 1 ? V_UINT : V_FLOAT;
        w.u = 1;
        break;
    case V_UINT:
        w.kind = variant == 1 ? V_STR : V_FLOAT;
        w.p = "1";
        w.n = 1;
        break;
    case V_TRUE:
        w.kind = variant == 1 ? V_UINT : V_STR;
        w.u = 1;
        w.p = "true";
        w.n = 4;
        break;
    case V_RAW: /*  maps */
        w.kind = variant == 1 ? V_STR : V_RAW;
        w.p = variant == 1 ? (const void *)"{}" : (const void *)"\x90";
        w.n = variant == 1 ? 2 : 1;
        break;
    default:
        break;
    }
    return w;
}

static void test_decode_types(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(s_descs); i++) {
        const desc_t *d = &s_descs[i];
        for (size_t k = 0; k < d->ngood; k++) {
            for (int v = 0; v < 3; v++) {
                kv_t w = s_wrong(&d->good[k], v);
                int rc = s_try(d->which, d->good, d->ngood, NULL, &w);
                if (rc != YARD_E_TYPE)
                    fail_msg("message %zu key %s variant %d: rc %d", i, w.key,
                             v, rc);
            }
        }
    }
    /*  Negative integers are integers out of range, not a wrong type. */
    kv_t neg = NEG("retries", 1);
    assert_int_equal(
        s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &neg),
        YARD_E_RANGE);
    /*  payload may be a str on the wire. */
    kv_t spay = STR("payload", "text");
    assert_int_equal(
        s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &spay), 0);
}

/*  Each numeric limit, on both sides. */
static void test_decode_number_ranges(void **state)
{
    (void)state;
    struct {
        m_t which;
        const kv_t *good;
        size_t ngood;
        const char *key;
        uint64_t lo, hi; /*  inclusive valid range; lo-1 / hi+1 fail */
    } r[] = {
        {M_SUBMIT, s_submit_good, N(s_submit_good), "timeout_ms", 1,
         YARD_MAX_TIMEOUT_MS},
        {M_SUBMIT, s_submit_good, N(s_submit_good), "retries", 0,
         YARD_MAX_RETRIES},
        {M_SUBMIT, s_submit_good, N(s_submit_good), "backoff_ms", 0,
         YARD_MAX_BACKOFF_MS},
        {M_SUBMIT, s_submit_good, N(s_submit_good), "priority", 0,
         YARD_MAX_PRIORITY},
        {M_TASK, s_task_good, N(s_task_good), "job", 1, UINT64_MAX},
        {M_TASK, s_task_good, N(s_task_good), "timeout_ms", 0,
         YARD_MAX_TIMEOUT_MS},
        {M_TASK, s_task_good, N(s_task_good), "attempt", 0, UINT32_MAX},
        {M_RESULT, s_result_good, N(s_result_good), "job", 1, UINT64_MAX},
        {M_RESULT, s_result_good, N(s_result_good), "attempts", 0, UINT32_MAX},
        {M_RESULT, s_result_good, N(s_result_good), "queue_us", 0, UINT64_MAX},
        {M_RESULT, s_result_good, N(s_result_good), "run_us", 0, UINT64_MAX},
        {M_RESULT, s_result_good, N(s_result_good), "total_us", 0, UINT64_MAX},
        {M_RESULT, s_result_good, N(s_result_good), "retry_after_ms", 0,
         UINT32_MAX},
        {M_READY, s_ready_good, N(s_ready_good), "capacity", 0,
         YARD_MAX_CAPACITY},
        {M_READY, s_ready_good, N(s_ready_good), "pid", 0, UINT32_MAX},
        {M_CANCEL, s_cancel_good, N(s_cancel_good), "job", 1, UINT64_MAX},
    };
    for (size_t i = 0; i < N(r); i++) {
        kv_t v = UINT(r[i].key, r[i].lo);
        assert_int_equal(s_try(r[i].which, r[i].good, r[i].ngood, NULL, &v), 0);
        v.u = r[i].hi;
        assert_int_equal(s_try(r[i].which, r[i].good, r[i].ngood, NULL, &v), 0);
        if (r[i].lo > 0) {
            v.u = r[i].lo - 1;
            assert_int_equal(s_try(r[i].which, r[i].good, r[i].ngood, NULL, &v),
                             YARD_E_RANGE);
        }
        if (r[i].hi < UINT64_MAX) {
            v.u = r[i].hi + 1;
            assert_int_equal(s_try(r[i].which, r[i].good, r[i].ngood, NULL, &v),
                             YARD_E_RANGE);
        }
        kv_t neg = NEG(r[i].key, 1);
        assert_int_equal(s_try(r[i].which, r[i].good, r[i].ngood, NULL, &neg),
                         YARD_E_RANGE);
    }
}

static char s_big[YARD_MAX_ERROR + 2];

/*  Each length limit, on both sides. */
static void test_decode_string_ranges(void **state)
{
    (void)state;
    memset(s_big, 'a', sizeof s_big);
    struct {
        m_t which;
        const kv_t *good;
        size_t ngood;
        const char *key;
        size_t lo, hi; /*  inclusive valid length range */
        int over;      /*  error for hi + 1 */
    } r[] = {
        {M_SUBMIT, s_submit_good, N(s_submit_good), "id", 1, YARD_MAX_ID,
         YARD_E_RANGE},
        {M_SUBMIT, s_submit_good, N(s_submit_good), "service", 1,
         YARD_MAX_SERVICE, YARD_E_RANGE},
        {M_SUBMIT, s_submit_good, N(s_submit_good), "fallback", 1,
         YARD_MAX_SERVICE, YARD_E_RANGE},
        {M_TASK, s_task_good, N(s_task_good), "id", 1, YARD_MAX_ID,
         YARD_E_RANGE},
        {M_TASK, s_task_good, N(s_task_good), "service", 1, YARD_MAX_SERVICE,
         YARD_E_RANGE},
        {M_RESULT, s_result_good, N(s_result_good), "id", 1, YARD_MAX_ID,
         YARD_E_RANGE},
        {M_RESULT, s_result_good, N(s_result_good), "error", 0, YARD_MAX_ERROR,
         YARD_E_TOO_LARGE},
        {M_READY, s_ready_good, N(s_ready_good), "service", 1, YARD_MAX_SERVICE,
         YARD_E_RANGE},
        {M_READY, s_ready_good, N(s_ready_good), "name", 0, YARD_MAX_ID,
         YARD_E_RANGE},
        {M_READY, s_ready_good, N(s_ready_good), "version", 0, YARD_MAX_ID,
         YARD_E_RANGE},
        {M_CANCEL, s_cancel_good, N(s_cancel_good), "id", 1, YARD_MAX_ID,
         YARD_E_RANGE},
        {M_ERROR, s_error_good, N(s_error_good), "code", 1, YARD_MAX_HEADER_KEY,
         YARD_E_RANGE},
        {M_ERROR, s_error_good, N(s_error_good), "message", 0, YARD_MAX_ERROR,
         YARD_E_TOO_LARGE},
        {M_ERROR, s_error_good, N(s_error_good), "id", 1, YARD_MAX_ID,
         YARD_E_RANGE},
    };
    for (size_t i = 0; i < N(r); i++) {
        kv_t v = STRN(r[i].key, s_big, r[i].lo);
        assert_int_equal(s_try(r[i].which, r[i].good, r[i].ngood, NULL, &v), 0);
        v.n = r[i].hi;
        assert_int_equal(s_try(r[i].which, r[i].good, r[i].ngood, NULL, &v), 0);
        if (r[i].lo > 0) {
            v.n = r[i].lo - 1;
            assert_int_equal(s_try(r[i].which, r[i].good, r[i].ngood, NULL, &v),
                             YARD_E_RANGE);
        }
        v.n = r[i].hi + 1;
        assert_int_equal(s_try(r[i].which, r[i].good, r[i].ngood, NULL, &v),
                         r[i].over);
    }
    /*  Service names: only [A-Za-z0-9._:-]. */
    const char *good[] = {"a", "Echo.v2", "llm:gpt-4_o", "0", "a.b:c-d_e"};
    const char *bad[] = {"a b",
                         "a/b",
                         "é",
                         "a\n",
                         "a*",
                         ("a\x00"
                          "b")};
    for (size_t i = 0; i < N(good); i++) {
        kv_t v = STRN("service", good[i], strlen(good[i]));
        assert_int_equal(
            s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &v), 0);
    }
    for (size_t i = 0; i < N(bad); i++) {
        kv_t v = STRN("service", bad[i], i == 5 ? 3 : strlen(bad[i]));
        assert_int_equal(
            s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &v),
            YARD_E_RANGE);
        assert_int_equal(
            s_try(M_READY, s_ready_good, N(s_ready_good), NULL, &v),
            YARD_E_RANGE);
    }
    /*  ids are any bytes. */
    kv_t bin_id = STRN("id", "\x00\xff\n", 3);
    assert_int_equal(
        s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &bin_id), 0);
    /*  Status: only the wire names. */
    kv_t st = STR("status", "OK");
    assert_int_equal(
        s_try(M_RESULT, s_result_good, N(s_result_good), NULL, &st),
        YARD_E_RANGE);
    kv_t st2 = STR("status", "circuit_open");
    assert_int_equal(
        s_try(M_RESULT, s_result_good, N(s_result_good), NULL, &st2), 0);
}

static void test_decode_payload_size(void **state)
{
    (void)state;
    uint8_t *p = calloc(1, YARD_MAX_PAYLOAD + 1);
    assert_non_null(p);
    const m_t which[] = {M_SUBMIT, M_TASK, M_RESULT};
    const desc_t *d[] = {&s_descs[0], &s_descs[1], &s_descs[2]};
    for (size_t i = 0; i < 3; i++) {
        kv_t v = BINN("payload", p, YARD_MAX_PAYLOAD);
        assert_int_equal(s_try(which[i], d[i]->good, d[i]->ngood, NULL, &v), 0);
        v.n = YARD_MAX_PAYLOAD + 1;
        assert_int_equal(s_try(which[i], d[i]->good, d[i]->ngood, NULL, &v),
                         YARD_E_TOO_LARGE);
        v.kind = V_STR;
        assert_int_equal(s_try(which[i], d[i]->good, d[i]->ngood, NULL, &v),
                         YARD_E_TOO_LARGE);
        v.n = 0;
        assert_int_equal(s_try(which[i], d[i]->good, d[i]->ngood, NULL, &v), 0);
    }
    free(p);

    /*  A body over YARD_MAX_BODY is refused before anything else. */
    size_t n = YARD_MAX_BODY + 1;
    uint8_t *body = calloc(1, n);
    assert_non_null(body);
    body[0] = 0x80;
    any_t out;
    assert_int_equal(s_decode(M_SUBMIT, body, n, &out), YARD_E_TOO_LARGE);
    free(body);
}

static void test_decode_headers(void **state)
{
    (void)state;
    char key[YARD_MAX_HEADER_KEY + 2], val[YARD_MAX_HEADER_VALUE + 2];
    memset(key, 'k', sizeof key);
    memset(val, 'v', sizeof val);
    msgpack_sbuffer hb;
    msgpack_sbuffer_init(&hb);
    struct {
        size_t entries, klen, vlen;
        int want;
    } cases[] = {
        {0, 1, 0, 0},
        {1, 1, 0, 0},
        {1, YARD_MAX_HEADER_KEY, YARD_MAX_HEADER_VALUE, 0},
        {YARD_MAX_HEADERS, 2, 10, 0},
        {YARD_MAX_HEADERS + 1, 2, 10, YARD_E_TOO_LARGE},
        {1, YARD_MAX_HEADER_KEY + 1, 1, YARD_E_TOO_LARGE},
        {1, 1, YARD_MAX_HEADER_VALUE + 1, YARD_E_TOO_LARGE},
        {1, 0, 1, YARD_E_RANGE},
    };
    for (size_t c = 0; c < N(cases); c++) {
        msgpack_packer pk;
        msgpack_sbuffer_clear(&hb);
        msgpack_packer_init(&pk, &hb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, cases[c].entries);
        for (size_t e = 0; e < cases[c].entries; e++) {
            char k[YARD_MAX_HEADER_KEY + 2];
            memcpy(k, key, sizeof k);
            if (cases[c].klen >= 2) /*  make keys distinct */
                k[0] = (char)('A' + e % 26), k[1] = (char)('A' + e / 26);
            msgpack_pack_str_with_body(&pk, k, cases[c].klen);
            msgpack_pack_str_with_body(&pk, val, cases[c].vlen);
        }
        kv_t h = RAW("headers", hb.data, hb.size);
        assert_int_equal(
            s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &h),
            cases[c].want);
        assert_int_equal(s_try(M_TASK, s_task_good, N(s_task_good), NULL, &h),
                         cases[c].want);
    }
    msgpack_sbuffer_destroy(&hb);

    struct {
        const char *raw;
        size_t n;
        int want;
    } raw[] = {
        {"\x81\x01\xa1v", 4, YARD_E_TYPE},               /*  int key        */
        {"\x81\xa1k\x01", 4, YARD_E_TYPE},               /*  int value      */
        {"\x81\xa1k\xc4\x01v", 6, YARD_E_TYPE},          /*  bin value      */
        {"\x81\xa1k\x80", 4, YARD_E_TYPE},               /*  nested map     */
        {"\x82\xa1k\xa0\xa1k\xa0", 7, YARD_E_MALFORMED}, /*  same key   */
        {"\x90", 1, YARD_E_TYPE},                        /*  not a map      */
    };
    for (size_t i = 0; i < N(raw); i++) {
        kv_t h = RAW("headers", raw[i].raw, raw[i].n);
        assert_int_equal(
            s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &h),
            raw[i].want);
    }
    /*  A headers map over str8/str16 encodings is still fine. */
    kv_t h16 = RAW("headers", "\x81\xd9\x01k\xda\x00\x01v", 8);
    assert_int_equal(
        s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &h16), 0);
    /*  cache: any map, refused otherwise. */
    kv_t c = RAW("cache", "\x81\xa1t\x92\x01\x80", 6);
    assert_int_equal(s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &c),
                     0);
}

static void test_decode_structure(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    any_t out;

    /*  Not a map, empty, trailing bytes, truncated. */
    const char *notmap[] = {"\x90", "\xa1x", "\xc0", "\x01"};
    for (size_t i = 0; i < N(notmap); i++)
        for (m_t m = M_SUBMIT; m <= M_ERROR; m++)
            assert_int_equal(s_decode(m, notmap[i], 1 + (i == 1), &out),
                             YARD_E_MALFORMED);
    assert_int_equal(s_decode(M_SUBMIT, "", 0, &out), YARD_E_MALFORMED);
    assert_int_equal(s_decode(M_SUBMIT, NULL, 0, &out), YARD_E_MALFORMED);
    assert_int_equal(yard_decode_submit(NULL, "\x80", 1, &out.submit),
                     YARD_E_ARG);
    assert_int_equal(yard_decode_submit(s_dec, "\x80", 1, NULL), YARD_E_ARG);

    s_build(&sb, s_submit_good, N(s_submit_good), NULL, NULL);
    assert_int_equal(s_decode(M_SUBMIT, sb.data, sb.size, &out), 0);
    msgpack_sbuffer_write(&sb, "\xc0", 1);
    assert_int_equal(s_decode(M_SUBMIT, sb.data, sb.size, &out),
                     YARD_E_MALFORMED);
    assert_int_equal(s_decode(M_SUBMIT, sb.data, sb.size - 2, &out),
                     YARD_E_MALFORMED);

    /*  A non-str key. */
    assert_int_equal(s_decode(M_SUBMIT, "\x81\x01\x02", 3, &out),
                     YARD_E_MALFORMED);
    /*  A known key twice, even with the same value. */
    kv_t dup[] = {STR("id", "a"), STR("service", "s"), STR("id", "a")};
    assert_int_equal(s_try(M_SUBMIT, dup, 3, NULL, NULL), YARD_E_MALFORMED);
    /*  Unknown keys are ignored, whatever they hold, and twice too. */
    kv_t unk[] = {STR("id", "a"), STR("x", "1"), STR("service", "s"),
                  RAW("x", "\x92\x80\x91\xc3", 4), FLT("y")};
    assert_int_equal(s_try(M_SUBMIT, unk, N(unk), NULL, NULL), 0);
    /*  Keys are case-sensitive. */
    kv_t upper[] = {STR("ID", "a"), STR("service", "s")};
    assert_int_equal(s_try(M_SUBMIT, upper, 2, NULL, NULL), YARD_E_MISSING);

    /*  Nesting: the body map is level 1, so an unknown value may nest
        YARD_MAX_DEPTH - 1 levels, not one more. */
    for (int levels = YARD_MAX_DEPTH - 1; levels <= YARD_MAX_DEPTH; levels++) {
        char nest[16];
        memset(nest, 0x91, (size_t)levels);
        nest[levels] = (char)0xc0;
        kv_t deep = RAW("deep", nest, (size_t)levels + 1);
        int want = levels < YARD_MAX_DEPTH ? 0 : YARD_E_TOO_LARGE;
        assert_int_equal(
            s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &deep),
            want);
    }
    /*  Element limit through an unknown key. */
    static char arr[3 + YARD_MAX_ELEMENTS];
    arr[0] = (char)0xdc;
    arr[1] = (char)(YARD_MAX_ELEMENTS >> 8);
    arr[2] = (char)(YARD_MAX_ELEMENTS & 0xff);
    memset(arr + 3, 0xc0, YARD_MAX_ELEMENTS);
    kv_t many = RAW("many", arr, sizeof arr);
    assert_int_equal(
        s_try(M_SUBMIT, s_submit_good, N(s_submit_good), NULL, &many),
        YARD_E_TOO_LARGE);
    msgpack_sbuffer_destroy(&sb);
}

/*  The broker names a task in its "invalid" reply when it can. */
static void test_decode_id_on_error(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    yard_submit_t s;
    kv_t after[] = {STR("service", "bad service"), STR("id", "t-9")};
    s_build(&sb, after, 2, NULL, NULL);
    assert_int_equal(yard_decode_submit(s_dec, sb.data, sb.size, &s),
                     YARD_E_RANGE);
    assert_true(s_eq(s.id, "t-9"));

    kv_t before[] = {STR("id", "t-8"), UINT("priority", 99)};
    s_build(&sb, before, 2, NULL, NULL);
    assert_int_equal(yard_decode_submit(s_dec, sb.data, sb.size, &s),
                     YARD_E_RANGE);
    assert_true(s_eq(s.id, "t-8"));

    kv_t noservice[] = {STR("id", "t-7")};
    s_build(&sb, noservice, 1, NULL, NULL);
    assert_int_equal(yard_decode_submit(s_dec, sb.data, sb.size, &s),
                     YARD_E_MISSING);
    assert_true(s_eq(s.id, "t-7"));

    kv_t badid[] = {UINT("id", 7), STR("service", "x")};
    s_build(&sb, badid, 2, NULL, NULL);
    assert_int_equal(yard_decode_submit(s_dec, sb.data, sb.size, &s),
                     YARD_E_TYPE);
    assert_null(s.id.ptr);

    yard_error_t e;
    kv_t err[] = {STR("id", "t-6"), UINT("code", 1)};
    s_build(&sb, err, 2, NULL, NULL);
    assert_int_equal(yard_decode_error(s_dec, sb.data, sb.size, &e),
                     YARD_E_TYPE);
    assert_true(s_eq(e.id, "t-6"));
    msgpack_sbuffer_destroy(&sb);
}

/*  Values land where they should, views point into the input buffer. */
static void test_decode_values(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_build(&sb, s_submit_good, N(s_submit_good), NULL, NULL);
    yard_submit_t s;
    assert_int_equal(yard_decode_submit(s_dec, sb.data, sb.size, &s), 0);
    assert_true(s_eq(s.id, "task-1"));
    assert_true(s_eq(s.service, "echo"));
    assert_true(s_eq(s.payload, "hello"));
    assert_true(s_eq(s.fallback, "echo.backup"));
    assert_int_equal(s.timeout_ms, 5000);
    assert_int_equal(s.retries, 2);
    assert_int_equal(s.backoff_ms, 250);
    assert_int_equal(s.priority, 5);
    assert_int_equal(s.headers.len, sizeof s_headers);
    assert_memory_equal(s.headers.ptr, s_headers, sizeof s_headers);
    assert_int_equal(s.cache.len, sizeof s_cache);
    assert_memory_equal(s.cache.ptr, s_cache, sizeof s_cache);
    const yard_bytes_t *views[] = {&s.id,      &s.service, &s.payload,
                                   &s.headers, &s.cache,   &s.fallback};
    for (size_t i = 0; i < N(views); i++) {
        const uint8_t *lo = (const uint8_t *)sb.data;
        assert_true(views[i]->ptr >= lo &&
                    views[i]->ptr + views[i]->len <= lo + sb.size);
    }

    /*  Defaults for a minimal SUBMIT; payload absent is a NULL view. */
    kv_t min[] = {STR("id", "a"), STR("service", "s")};
    s_build(&sb, min, 2, NULL, NULL);
    assert_int_equal(yard_decode_submit(s_dec, sb.data, sb.size, &s), 0);
    assert_int_equal(s.timeout_ms, YARD_DEFAULT_TIMEOUT_MS);
    assert_int_equal(s.backoff_ms, YARD_DEFAULT_BACKOFF_MS);
    assert_int_equal(s.retries, YARD_DEFAULT_RETRIES);
    assert_int_equal(s.priority, YARD_DEFAULT_PRIORITY);
    assert_null(s.payload.ptr);
    assert_null(s.headers.ptr);
    assert_null(s.cache.ptr);
    /*  An empty payload is present: a non-NULL view of zero bytes. */
    kv_t empty[] = {STR("id", "a"), STR("service", "s"), BIN("payload", "")};
    s_build(&sb, empty, 3, NULL, NULL);
    assert_int_equal(yard_decode_submit(s_dec, sb.data, sb.size, &s), 0);
    assert_non_null(s.payload.ptr);
    assert_int_equal(s.payload.len, 0);

    yard_result_t r;
    s_build(&sb, s_result_good, N(s_result_good), NULL, NULL);
    assert_int_equal(yard_decode_result(s_dec, sb.data, sb.size, &r), 0);
    assert_int_equal(r.job, 42);
    assert_int_equal(r.status, YARD_OK);
    assert_true(r.cached);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.queue_us, 10);
    assert_int_equal(r.run_us, 20);
    assert_int_equal(r.total_us, 40);
    assert_int_equal(r.retry_after_ms, 7);
    assert_true(s_eq(r.error, "none"));

    kv_t big[] = {UINT("job", UINT64_MAX), STR("status", "timeout"),
                  UINT("queue_us", UINT64_MAX)};
    s_build(&sb, big, N(big), NULL, NULL);
    assert_int_equal(yard_decode_result(s_dec, sb.data, sb.size, &r), 0);
    assert_true(r.job == UINT64_MAX && r.queue_us == UINT64_MAX);
    assert_int_equal(r.status, YARD_TIMEOUT);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- Encoders ---------------------------------------------------------- */

static void test_encode_canonical(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    yard_submit_t s = {0};
    s.id = yard_bytes_str("t1");
    s.service = yard_bytes_str("echo");
    s.payload = yard_bytes_str("hi");
    s.timeout_ms = YARD_DEFAULT_TIMEOUT_MS; /*  default: not written */
    s.backoff_ms = YARD_DEFAULT_BACKOFF_MS;
    s.priority = 9;
    assert_int_equal(yard_encode_submit(&sb, &s), 0);
    const uint8_t want[] = {0x84, 0xa2, 'i',  'd', 0xa2, 't',  '1',  0xa7, 's',
                            'e',  'r',  'v',  'i', 'c',  'e',  0xa4, 'e',  'c',
                            'h',  'o',  0xa7, 'p', 'a',  'y',  'l',  'o',  'a',
                            'd',  0xc4, 0x02, 'h', 'i',  0xa8, 'p',  'r',  'i',
                            'o',  'r',  'i',  't', 'y',  0x09};
    assert_int_equal(sb.size, sizeof want);
    assert_memory_equal(sb.data, want, sizeof want);

    /*  Appends: a second body goes after the first. */
    assert_int_equal(yard_encode_submit(&sb, &s), 0);
    assert_int_equal(sb.size, 2 * sizeof want);

    /*  backoff_ms 0 differs from its default (100), so it is written, and
        it decodes as 0, not as the default (E2, D13). */
    msgpack_sbuffer_clear(&sb);
    s.backoff_ms = 0;
    assert_int_equal(yard_encode_submit(&sb, &s), 0);
    const uint8_t backoff0[] = {0xaa, 'b', 'a', 'c', 'k', 'o',
                                'f',  'f', '_', 'm', 's', 0x00};
    assert_int_equal(sb.size, sizeof want + sizeof backoff0);
    assert_int_equal(((const uint8_t *)sb.data)[0], 0x85);
    assert_memory_equal((const uint8_t *)sb.data + 32, backoff0,
                        sizeof backoff0);
    yard_decoder_t *dec = yard_decoder_new();
    yard_submit_t back;
    assert_int_equal(yard_decode_submit(dec, sb.data, sb.size, &back), 0);
    assert_int_equal(back.backoff_ms, 0);
    assert_int_equal(back.timeout_ms, YARD_DEFAULT_TIMEOUT_MS);
    yard_decoder_destroy(&dec);
    s.backoff_ms = YARD_DEFAULT_BACKOFF_MS;
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(yard_encode_submit(&sb, &s), 0);

    /*  Worker and broker results write different fields. */
    yard_result_t r = {0};
    r.job = 7;
    r.id = yard_bytes_str("t1");
    r.status = YARD_OK;
    r.cached = true;
    r.run_us = 3;
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(yard_encode_result(&sb, YARD_ROLE_WORKER, &r), 0);
    const uint8_t want_w[] = {0x83, 0xa3, 'j', 'o', 'b', 0x07, 0xa6, 's',
                              't',  'a',  't', 'u', 's', 0xa2, 'o',  'k',
                              0xa6, 'r',  'u', 'n', '_', 'u',  's',  0x03};
    assert_int_equal(sb.size, sizeof want_w);
    assert_memory_equal(sb.data, want_w, sizeof want_w);
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(yard_encode_result(&sb, YARD_ROLE_BROKER, &r), 0);
    const uint8_t want_b[] = {
        0x84, 0xa2, 'i',  'd',  0xa2, 't', '1',  0xa6, 's', 't', 'a',
        't',  'u',  's',  0xa2, 'o',  'k', 0xa6, 'c',  'a', 'c', 'h',
        'e',  'd',  0xc3, 0xa6, 'r',  'u', 'n',  '_',  'u', 's', 0x03};
    assert_int_equal(sb.size, sizeof want_b);
    assert_memory_equal(sb.data, want_b, sizeof want_b);

    /*  READY writes capacity 0 (drain): it is required, not optional. */
    yard_ready_t rd = {0};
    rd.service = yard_bytes_str("echo");
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(yard_encode_ready(&sb, &rd), 0);
    const uint8_t want_r[] = {0x82, 0xa7, 's', 'e', 'r', 'v', 'i',  'c',
                              'e',  0xa4, 'e', 'c', 'h', 'o', 0xa8, 'c',
                              'a',  'p',  'a', 'c', 'i', 't', 'y',  0x00};
    assert_int_equal(sb.size, sizeof want_r);
    assert_memory_equal(sb.data, want_r, sizeof want_r);
    msgpack_sbuffer_destroy(&sb);
}

static void test_encode_refusals(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "keep", 4);
    yard_submit_t good = {0};
    good.id = yard_bytes_str("t1");
    good.service = yard_bytes_str("echo");
    yard_submit_t s;

#define REFUSE(expr, want)                                                     \
    do {                                                                       \
        assert_int_equal((expr), (want));                                      \
        assert_int_equal(sb.size, 4); /*  nothing appended */                  \
    } while (0)

    s = good, s.id.len = 0, s.id.ptr = NULL;
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.service = yard_bytes_str("bad name");
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.service.ptr = NULL;
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.priority = 10;
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.retries = 17;
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.timeout_ms = YARD_MAX_TIMEOUT_MS + 1;
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.backoff_ms = YARD_MAX_BACKOFF_MS + 1;
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.payload.ptr = NULL, s.payload.len = 3;
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.headers.ptr = NULL, s.headers.len = 3;
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.headers = (yard_bytes_t){(const uint8_t *)"\x81\xa1k\x01", 4};
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.headers = (yard_bytes_t){(const uint8_t *)"\x80\x80", 2};
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.cache = (yard_bytes_t){(const uint8_t *)"\x90", 1};
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    s = good, s.cache = (yard_bytes_t){(const uint8_t *)"\x81\xa1k", 3};
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_ARG);
    /*  The cache map sits at level 2 of the body: its own depth counts. */
    char deep[16];
    deep[0] = (char)0x81, deep[1] = (char)0xa1, deep[2] = 'k';
    memset(deep + 3, 0x91, YARD_MAX_DEPTH - 1);
    deep[3 + YARD_MAX_DEPTH - 1] = (char)0xc0;
    s = good, s.cache = (yard_bytes_t){(const uint8_t *)deep,
                                       (uint32_t)(4 + YARD_MAX_DEPTH - 1)};
    assert_int_equal(yard_msgpack_check(s.cache.ptr, s.cache.len), 0);
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_TOO_LARGE);
    s.cache.len--, deep[3 + YARD_MAX_DEPTH - 2] = (char)0xc0;
    assert_int_equal(yard_encode_submit(&sb, &s), 0);
    sb.size = 4;

    uint8_t *big = calloc(1, YARD_MAX_PAYLOAD + 1);
    assert_non_null(big);
    s = good, s.payload = (yard_bytes_t){big, YARD_MAX_PAYLOAD + 1};
    REFUSE(yard_encode_submit(&sb, &s), YARD_E_TOO_LARGE);
    s.payload.len = YARD_MAX_PAYLOAD;
    assert_int_equal(yard_encode_submit(&sb, &s), 0);
    sb.size = 4;
    free(big);
    assert_int_equal(yard_encode_submit(NULL, &good), YARD_E_ARG);
    REFUSE(yard_encode_submit(&sb, NULL), YARD_E_ARG);

    yard_task_t t = {0};
    t.id = yard_bytes_str("t1");
    t.service = yard_bytes_str("echo");
    REFUSE(yard_encode_task(&sb, &t), YARD_E_ARG); /*  job 0 */
    t.job = 1;
    assert_int_equal(yard_encode_task(&sb, &t), 0);
    sb.size = 4;

    yard_result_t r = {0};
    r.status = YARD_OK;
    REFUSE(yard_encode_result(&sb, YARD_ROLE_WORKER, &r), YARD_E_ARG);
    REFUSE(yard_encode_result(&sb, YARD_ROLE_BROKER, &r), YARD_E_ARG);
    r.job = 1;
    r.id = yard_bytes_str("t1");
    REFUSE(yard_encode_result(&sb, YARD_ROLE_CLIENT, &r), YARD_E_ARG);
    r.status = YARD_TIMEOUT; /*  not a worker's to give */
    REFUSE(yard_encode_result(&sb, YARD_ROLE_WORKER, &r), YARD_E_ARG);
    r.status = YARD_INVALID; /*  a worker may call the request bad */
    assert_int_equal(yard_encode_result(&sb, YARD_ROLE_WORKER, &r), 0);
    sb.size = 4;
    r.status = YARD_TIMEOUT;
    assert_int_equal(yard_encode_result(&sb, YARD_ROLE_BROKER, &r), 0);
    sb.size = 4;
    r.status = YARD_STATUS_COUNT;
    REFUSE(yard_encode_result(&sb, YARD_ROLE_BROKER, &r), YARD_E_ARG);
    char err[YARD_MAX_ERROR + 1];
    memset(err, 'e', sizeof err);
    r.status = YARD_ERROR;
    r.error = (yard_bytes_t){(const uint8_t *)err, sizeof err};
    REFUSE(yard_encode_result(&sb, YARD_ROLE_BROKER, &r), YARD_E_TOO_LARGE);

    yard_ready_t rd = {0};
    rd.service = yard_bytes_str("echo");
    rd.capacity = YARD_MAX_CAPACITY + 1;
    REFUSE(yard_encode_ready(&sb, &rd), YARD_E_ARG);

    yard_cancel_t c = {0};
    REFUSE(yard_encode_cancel(&sb, YARD_ROLE_CLIENT, &c), YARD_E_ARG);
    REFUSE(yard_encode_cancel(&sb, YARD_ROLE_BROKER, &c), YARD_E_ARG);
    c.job = 1;
    c.id = yard_bytes_str("x");
    REFUSE(yard_encode_cancel(&sb, YARD_ROLE_WORKER, &c), YARD_E_ARG);

    yard_error_t e = {0};
    REFUSE(yard_encode_error(&sb, &e), YARD_E_ARG);
    e.code = yard_bytes_str(YARD_ERRCODE_MALFORMED);
    assert_int_equal(yard_encode_error(&sb, &e), 0);
#undef REFUSE
    msgpack_sbuffer_destroy(&sb);
}

/*  Encode every message with every field set, decode, compare. */
static void test_roundtrip(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);

    yard_submit_t s = {0}, s2;
    s.id = (yard_bytes_t){(const uint8_t *)"\x00id\xff", 4};
    s.service = yard_bytes_str("svc.a:b-c_d");
    s.payload = (yard_bytes_t){(const uint8_t *)"\x00\x01\x02", 3};
    s.timeout_ms = YARD_MAX_TIMEOUT_MS;
    s.retries = YARD_MAX_RETRIES;
    s.backoff_ms = YARD_MAX_BACKOFF_MS;
    s.priority = YARD_MAX_PRIORITY;
    s.headers = (yard_bytes_t){s_headers, sizeof s_headers};
    s.cache = (yard_bytes_t){s_cache, sizeof s_cache};
    s.fallback = yard_bytes_str("fb");
    assert_int_equal(yard_encode_submit(&sb, &s), 0);
    assert_int_equal(yard_decode_submit(s_dec, sb.data, sb.size, &s2), 0);
    assert_memory_equal(s2.id.ptr, s.id.ptr, 4);
    assert_true(s_eq(s2.service, "svc.a:b-c_d"));
    assert_memory_equal(s2.payload.ptr, s.payload.ptr, 3);
    assert_int_equal(s2.timeout_ms, s.timeout_ms);
    assert_int_equal(s2.retries, s.retries);
    assert_int_equal(s2.backoff_ms, s.backoff_ms);
    assert_int_equal(s2.priority, s.priority);
    assert_memory_equal(s2.headers.ptr, s_headers, sizeof s_headers);
    assert_memory_equal(s2.cache.ptr, s_cache, sizeof s_cache);
    assert_true(s_eq(s2.fallback, "fb"));

    yard_task_t t = {0}, t2;
    t.job = UINT64_MAX;
    t.id = yard_bytes_str("t");
    t.service = yard_bytes_str("s");
    t.payload = yard_bytes_str("");
    t.timeout_ms = 1;
    t.attempt = 3;
    t.headers = (yard_bytes_t){s_headers, sizeof s_headers};
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(yard_encode_task(&sb, &t), 0);
    assert_int_equal(yard_decode_task(s_dec, sb.data, sb.size, &t2), 0);
    assert_true(t2.job == UINT64_MAX && t2.timeout_ms == 1 && t2.attempt == 3);
    assert_non_null(t2.payload.ptr);
    assert_int_equal(t2.payload.len, 0);
    assert_int_equal(t2.headers.len, sizeof s_headers);

    for (int st = 0; st < YARD_STATUS_COUNT; st++) {
        yard_result_t r = {0}, r2;
        r.id = yard_bytes_str("t");
        r.status = (yard_status_t)st;
        r.payload = yard_bytes_str("p");
        r.error = yard_bytes_str("e");
        r.cached = true;
        r.attempts = 2;
        r.queue_us = 1ull << 40;
        r.run_us = 5;
        r.total_us = 6;
        r.retry_after_ms = 7;
        msgpack_sbuffer_clear(&sb);
        assert_int_equal(yard_encode_result(&sb, YARD_ROLE_BROKER, &r), 0);
        assert_int_equal(yard_decode_result(s_dec, sb.data, sb.size, &r2), 0);
        assert_int_equal(r2.status, st);
        assert_int_equal(r2.job, 0);
        assert_true(r2.cached && r2.attempts == 2 &&
                    r2.queue_us == 1ull << 40 && r2.run_us == 5 &&
                    r2.total_us == 6 && r2.retry_after_ms == 7);
        assert_true(s_eq(r2.error, "e") && s_eq(r2.payload, "p"));
    }

    yard_ready_t rd = {0}, rd2;
    rd.service = yard_bytes_str("echo");
    rd.capacity = YARD_MAX_CAPACITY;
    rd.name = yard_bytes_str("worker-1");
    rd.pid = 99;
    rd.version = yard_bytes_str(YARD_VERSION_STRING);
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(yard_encode_ready(&sb, &rd), 0);
    assert_int_equal(yard_decode_ready(s_dec, sb.data, sb.size, &rd2), 0);
    assert_true(rd2.capacity == YARD_MAX_CAPACITY && rd2.pid == 99);
    assert_true(s_eq(rd2.name, "worker-1") &&
                s_eq(rd2.version, YARD_VERSION_STRING));

    yard_cancel_t c = {0}, c2;
    c.id = yard_bytes_str("t");
    c.job = 5;
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(yard_encode_cancel(&sb, YARD_ROLE_CLIENT, &c), 0);
    assert_int_equal(yard_decode_cancel(s_dec, sb.data, sb.size, &c2), 0);
    assert_true(s_eq(c2.id, "t") && c2.job == 0);
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(yard_encode_cancel(&sb, YARD_ROLE_BROKER, &c), 0);
    assert_int_equal(yard_decode_cancel(s_dec, sb.data, sb.size, &c2), 0);
    assert_true(c2.id.ptr == NULL && c2.job == 5);

    yard_error_t e = {0}, e2;
    e.code = yard_bytes_str(YARD_ERRCODE_FRAMES);
    e.message = yard_bytes_str("3 bodies for READY");
    e.id = yard_bytes_str("t");
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(yard_encode_error(&sb, &e), 0);
    assert_int_equal(yard_decode_error(s_dec, sb.data, sb.size, &e2), 0);
    assert_true(s_eq(e2.code, "bad_frames") &&
                s_eq(e2.message, "3 bodies for READY") && s_eq(e2.id, "t"));
    msgpack_sbuffer_destroy(&sb);
}

/* ---- Headers iterator -------------------------------------------------- */

typedef struct {
    int calls;
    int stop_after;
    char seen[256];
} hctx_t;

static int s_collect(const char *k, size_t kl, const char *v, size_t vl,
                     void *arg)
{
    hctx_t *c = arg;
    size_t at = strlen(c->seen);
    snprintf(c->seen + at, sizeof c->seen - at, "%.*s=%.*s;", (int)kl, k,
             (int)vl, v);
    return ++c->calls == c->stop_after;
}

static void test_headers_each(void **state)
{
    (void)state;
    yard_bytes_t h = {s_headers, sizeof s_headers};
    hctx_t c = {0};
    assert_int_equal(yard_headers_each(&h, s_collect, &c), 0);
    assert_int_equal(c.calls, 2);
    assert_string_equal(c.seen, "trace=t1;tenant=acme;");

    hctx_t stop = {.stop_after = 1};
    assert_int_equal(yard_headers_each(&h, s_collect, &stop), 0);
    assert_int_equal(stop.calls, 1);

    yard_bytes_t none = {NULL, 0};
    hctx_t z = {0};
    assert_int_equal(yard_headers_each(&none, s_collect, &z), 0);
    assert_int_equal(z.calls, 0);

    /*  An invalid map is refused before fn sees any of it. */
    yard_bytes_t bad = {(const uint8_t *)"\x82\xa1k\xa1v\xa1j\x01", 9};
    hctx_t b = {0};
    assert_int_equal(yard_headers_each(&bad, s_collect, &b), YARD_E_TYPE);
    assert_int_equal(b.calls, 0);
    yard_bytes_t trunc = {s_headers, sizeof s_headers - 1};
    assert_int_equal(yard_headers_each(&trunc, s_collect, &b),
                     YARD_E_MALFORMED);
    assert_int_equal(yard_headers_each(NULL, s_collect, &b), YARD_E_ARG);
    assert_int_equal(yard_headers_each(&h, NULL, &b), YARD_E_ARG);

    yard_bytes_t e = yard_bytes_str(NULL);
    assert_null(e.ptr);
    assert_int_equal(e.len, 0);
    e = yard_bytes_str("");
    assert_non_null(e.ptr);
    assert_int_equal(e.len, 0);
}

/* ---- Cost -------------------------------------------------------------- */

static double s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/*  Collects objects as "name=value\n" lines. */
static int s_object_line(const char *name, size_t len, uint64_t value,
                         void *arg)
{
    char *buf = arg;
    size_t at = strlen(buf);
    snprintf(buf + at, 512 - at, "%.*s=%llu\n", (int)len, name,
             (unsigned long long)value);
    return 0;
}

/*  Health reports and probes (HEARTBEAT bodies): round trip, the objects
    map's rules, and what an encoder refuses. */
static void test_report_probe(void **state)
{
    (void)state;
    yard_decoder_t *dec = yard_decoder_new();
    msgpack_sbuffer sb, ob;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&ob);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &ob, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "entries", 7);
    msgpack_pack_uint64(&pk, 12);
    msgpack_pack_str_with_body(&pk, "bytes", 5);
    msgpack_pack_uint64(&pk, UINT64_MAX);

    yard_report_t r = {
        .probe = 9,
        .uptime_ms = 1234,
        .version = yard_bytes_str("0.1.0"),
        .rss = 1u << 30,
        .loop_stalls = 2,
        .loop_stall_age_ms = 0, /*  just now: absent */
        .in_flight = 3,
        .objects = {(const uint8_t *)ob.data, (uint32_t)ob.size}};
    assert_int_equal(yard_encode_report(&sb, &r), 0);
    yard_report_t got;
    assert_int_equal(yard_decode_report(dec, sb.data, sb.size, &got), 0);
    assert_int_equal(got.probe, 9);
    assert_int_equal(got.uptime_ms, 1234);
    assert_int_equal(got.rss, 1u << 30);
    assert_int_equal(got.loop_stalls, 2);
    assert_int_equal(got.loop_stall_age_ms, 0);
    assert_int_equal(got.in_flight, 3);
    assert_int_equal(got.version.len, 5);
    char lines[512] = "";
    assert_int_equal(yard_objects_each(&got.objects, s_object_line, lines), 0);
    assert_string_equal(lines, "entries=12\nbytes=18446744073709551615\n");

    /*  An empty report is a valid report (an empty map). */
    msgpack_sbuffer_clear(&sb);
    yard_report_t empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(yard_encode_report(&sb, &empty), 0);
    assert_int_equal(sb.size, 1);
    assert_int_equal(yard_decode_report(dec, sb.data, sb.size, &got), 0);

    /*  Bad objects: the encoder refuses them, the decoder too. */
    static const struct {
        const char *hex;
        int err;
    } bad[] = {
        {"81a001", YARD_E_RANGE},             /*  empty name */
        {"81a361206201", YARD_E_RANGE},       /*  "a b" */
        {"81a161ff", YARD_E_RANGE},           /*  -1 */
        {"81a161a131", YARD_E_TYPE},          /*  a string */
        {"82a16101a16102", YARD_E_MALFORMED}, /*  a twice */
    };
    for (size_t i = 0; i < N(bad); i++) {
        uint8_t raw[64];
        size_t n = strlen(bad[i].hex) / 2;
        for (size_t k = 0; k < n; k++) {
            unsigned v;
            sscanf(bad[i].hex + 2 * k, "%2x", &v);
            raw[k] = (uint8_t)v;
        }
        yard_bytes_t objs = {raw, (uint32_t)n};
        assert_int_equal(yard_objects_each(&objs, s_object_line, lines),
                         bad[i].err);
        yard_report_t br = {.objects = objs};
        msgpack_sbuffer_clear(&sb);
        assert_int_equal(yard_encode_report(&sb, &br), YARD_E_ARG);
        /*  Wrapped in a report body on the wire. */
        msgpack_sbuffer_clear(&sb);
        msgpack_packer bp;
        msgpack_packer_init(&bp, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&bp, 1);
        msgpack_pack_str_with_body(&bp, "objects", 7);
        msgpack_sbuffer_write(&sb, (const char *)raw, n);
        assert_int_equal(yard_decode_report(dec, sb.data, sb.size, &got),
                         bad[i].err);
    }
    /*  Unknown keys are ignored (later versions may add figures). */
    msgpack_sbuffer_clear(&sb);
    msgpack_packer up;
    msgpack_packer_init(&up, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&up, 2);
    msgpack_pack_str_with_body(&up, "gpu_mem", 7);
    msgpack_pack_uint64(&up, 5);
    msgpack_pack_str_with_body(&up, "rss", 3);
    msgpack_pack_uint64(&up, 77);
    assert_int_equal(yard_decode_report(dec, sb.data, sb.size, &got), 0);
    assert_int_equal(got.rss, 77);

    /*  Probes: 1..2^64-1, required. */
    yard_probe_t pr = {.probe = 0};
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(yard_encode_probe(&sb, &pr), YARD_E_ARG);
    pr.probe = UINT64_MAX;
    assert_int_equal(yard_encode_probe(&sb, &pr), 0);
    yard_probe_t pg;
    assert_int_equal(yard_decode_probe(dec, sb.data, sb.size, &pg), 0);
    assert_true(pg.probe == UINT64_MAX);
    assert_int_equal(yard_decode_probe(dec, "\x80", 1, &pg), YARD_E_MISSING);

    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&ob);
    yard_decoder_destroy(&dec);
}

static void test_decode_cost(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    kv_t small[] = {STR("id", "0123456789abcdef"), STR("service", "echo"),
                    BIN("payload", "hello world"), UINT("timeout_ms", 5000),
                    UINT("priority", 3)};
    s_build(&sb, small, N(small), NULL, NULL);
    yard_submit_t s;
    /*  Warm up, then no allocation at all per decode, good or bad. */
    assert_int_equal(yard_decode_submit(s_dec, sb.data, sb.size, &s), 0);
    long before = s_allocs;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(yard_decode_submit(s_dec, sb.data, sb.size, &s), 0);
        assert_int_equal(yard_decode_submit(s_dec, sb.data, 3, &s),
                         YARD_E_MALFORMED);
    }
    assert_int_equal(s_allocs, before);

    const int rounds = 200000;
    double t0 = s_now_ns();
    for (int i = 0; i < rounds; i++)
        if (yard_decode_submit(s_dec, sb.data, sb.size, &s))
            fail();
    double per = (s_now_ns() - t0) / rounds;
    print_message("decode of a %zu-byte SUBMIT: %.0f ns\n", sb.size, per);
#ifndef S_SANITIZED
    /*  Generous, so a loaded CI box does not flake; typical is ~150 ns.
        Instrumented runs (sanitizers, valgrind) only report the figure. */
    if (!RUNNING_ON_VALGRIND)
        assert_true(per < 2000.0);
#endif
    msgpack_sbuffer_destroy(&sb);
}

static int s_setup(void **state)
{
    (void)state;
    s_dec = yard_decoder_new();
    return s_dec ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    yard_decoder_destroy(&s_dec);
    yard_decoder_destroy(&s_dec); /*  idempotent */
    return s_dec == NULL ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_strerror_errcode),
        cmocka_unit_test(test_cmd_names),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_cmd_check),
        cmocka_unit_test(test_mpcheck_basic),
        cmocka_unit_test(test_mpcheck_1013),
        cmocka_unit_test(test_mpcheck_depth),
        cmocka_unit_test(test_mpcheck_limits),
        cmocka_unit_test(test_mpcheck_skip),
        cmocka_unit_test(test_decode_good),
        cmocka_unit_test(test_decode_missing),
        cmocka_unit_test(test_decode_types),
        cmocka_unit_test(test_decode_number_ranges),
        cmocka_unit_test(test_decode_string_ranges),
        cmocka_unit_test(test_decode_payload_size),
        cmocka_unit_test(test_decode_headers),
        cmocka_unit_test(test_decode_structure),
        cmocka_unit_test(test_decode_id_on_error),
        cmocka_unit_test(test_decode_values),
        cmocka_unit_test(test_encode_canonical),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_headers_each),
        cmocka_unit_test(test_report_probe),
        cmocka_unit_test(test_decode_cost),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
