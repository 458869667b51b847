/*  fuzz_decode.c — libFuzzer target for everything in libyardproto that
    reads bytes from a peer: header parse, command check, the structural
    msgpack check, every body decoder and the headers iterator.

    Input layout: the first 4 bytes (or fewer) are the header frame; the
    rest, if any, is split into body frames at each 0xc1 0xc1 (0xc1 is
    never valid msgpack, so a separator cannot hide inside a valid body
    except in str/bin data). Every body goes to every decoder, whatever
    the header says, for coverage.

    Each body is copied into a buffer of exactly its size, so ASan catches
    any read past its end. A body that decodes is encoded again, and that
    must succeed, decode again to the same values, and encode again to the
    same bytes (the canonical form is a fixed point). Any mismatch aborts:
    it is a codec bug. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yard_proto.h"

#define S_MAX_BODIES (YARD_MAX_BATCH + 8)

static yard_decoder_t *s_dec;

static void s_die(const char *what)
{
    fprintf(stderr, "fuzz_decode: %s\n", what);
    abort();
}

/*  Same bytes, where an absent view and an empty one are the same. */
static bool s_same(yard_bytes_t a, yard_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/*  Same payload: present-and-empty is not the same as absent. */
static bool s_same_payload(yard_bytes_t a, yard_bytes_t b)
{
    return (a.ptr == NULL) == (b.ptr == NULL) && s_same(a, b);
}

static int s_count(const char *k, size_t kl, const char *v, size_t vl,
                   void *arg)
{
    /*  Touch every byte so ASan checks the views. */
    size_t sum = 0;
    for (size_t i = 0; i < kl; i++)
        sum += (unsigned char)k[i];
    for (size_t i = 0; i < vl; i++)
        sum += (unsigned char)v[i];
    *(size_t *)arg += sum + 1;
    return 0;
}

static void s_check_headers(yard_bytes_t h)
{
    size_t n = 0;
    if (yard_headers_each(&h, s_count, &n) != 0)
        s_die("decoded headers do not iterate");
}

/*  Encodes, checks the second decode and the second encode. `encode`
    appends to sb; the caller passes a decode function for the message. */
typedef struct {
    msgpack_sbuffer first;
    msgpack_sbuffer second;
} bufs_t;

static void s_bufs_reset(bufs_t *b)
{
    msgpack_sbuffer_clear(&b->first);
    msgpack_sbuffer_clear(&b->second);
}

static void s_fixed_point(bufs_t *b)
{
    if (b->first.size != b->second.size ||
        memcmp(b->first.data, b->second.data, b->first.size) != 0)
        s_die("encode(decode(encode(x))) != encode(x)");
}

static void s_submit(const uint8_t *p, size_t n, bufs_t *b)
{
    yard_submit_t a, c;
    if (yard_decode_submit(s_dec, p, n, &a) != 0)
        return;
    s_check_headers(a.headers);
    s_bufs_reset(b);
    if (yard_encode_submit(&b->first, &a) != 0)
        s_die("SUBMIT: a decoded body does not encode");
    if (yard_decode_submit(s_dec, b->first.data, b->first.size, &c) != 0)
        s_die("SUBMIT: an encoded body does not decode");
    /*  backoff_ms 0 cannot be encoded (0 means "default"): see the note
        on yard_submit_t in the report. */
    uint32_t backoff = a.backoff_ms ? a.backoff_ms : YARD_DEFAULT_BACKOFF_MS;
    if (!s_same(a.id, c.id) || !s_same(a.service, c.service) ||
        !s_same_payload(a.payload, c.payload) || a.timeout_ms != c.timeout_ms ||
        a.retries != c.retries || backoff != c.backoff_ms ||
        a.priority != c.priority || !s_same(a.headers, c.headers) ||
        !s_same(a.cache, c.cache) || !s_same(a.fallback, c.fallback))
        s_die("SUBMIT: round trip changed a field");
    if (yard_encode_submit(&b->second, &c) != 0)
        s_die("SUBMIT: second encode failed");
    s_fixed_point(b);
}

static void s_task(const uint8_t *p, size_t n, bufs_t *b)
{
    yard_task_t a, c;
    if (yard_decode_task(s_dec, p, n, &a) != 0)
        return;
    s_check_headers(a.headers);
    s_bufs_reset(b);
    if (yard_encode_task(&b->first, &a) != 0)
        s_die("TASK: a decoded body does not encode");
    if (yard_decode_task(s_dec, b->first.data, b->first.size, &c) != 0)
        s_die("TASK: an encoded body does not decode");
    if (a.job != c.job || !s_same(a.id, c.id) ||
        !s_same(a.service, c.service) ||
        !s_same_payload(a.payload, c.payload) || a.timeout_ms != c.timeout_ms ||
        a.attempt != c.attempt || !s_same(a.headers, c.headers))
        s_die("TASK: round trip changed a field");
    if (yard_encode_task(&b->second, &c) != 0)
        s_die("TASK: second encode failed");
    s_fixed_point(b);
}

static void s_result(const uint8_t *p, size_t n, bufs_t *b)
{
    yard_result_t a, c;
    if (yard_decode_result(s_dec, p, n, &a) != 0)
        return;
    if (a.id.len > 0) { /*  as the broker sends it */
        s_bufs_reset(b);
        if (yard_encode_result(&b->first, YARD_ROLE_BROKER, &a) != 0)
            s_die("RESULT(B): a decoded body does not encode");
        if (yard_decode_result(s_dec, b->first.data, b->first.size, &c))
            s_die("RESULT(B): an encoded body does not decode");
        if (c.job != 0 || !s_same(a.id, c.id) || a.status != c.status ||
            !s_same_payload(a.payload, c.payload) ||
            !s_same(a.error, c.error) || a.cached != c.cached ||
            a.attempts != c.attempts || a.queue_us != c.queue_us ||
            a.run_us != c.run_us || a.total_us != c.total_us ||
            a.retry_after_ms != c.retry_after_ms)
            s_die("RESULT(B): round trip changed a field");
        if (yard_encode_result(&b->second, YARD_ROLE_BROKER, &c) != 0)
            s_die("RESULT(B): second encode failed");
        s_fixed_point(b);
    }
    bool worker_status = a.status == YARD_OK || a.status == YARD_ERROR ||
                         a.status == YARD_CANCELLED;
    s_bufs_reset(b);
    int rc = yard_encode_result(&b->first, YARD_ROLE_WORKER, &a);
    if (a.job == 0 || !worker_status) {
        if (rc != YARD_E_ARG || b->first.size != 0)
            s_die("RESULT(W): encoder accepted what a worker cannot send");
        return;
    }
    if (rc != 0)
        s_die("RESULT(W): a decoded body does not encode");
    if (yard_decode_result(s_dec, b->first.data, b->first.size, &c))
        s_die("RESULT(W): an encoded body does not decode");
    if (a.job != c.job || c.id.len != 0 || a.status != c.status ||
        !s_same_payload(a.payload, c.payload) || !s_same(a.error, c.error) ||
        a.run_us != c.run_us || c.cached || c.attempts || c.queue_us ||
        c.total_us || c.retry_after_ms)
        s_die("RESULT(W): round trip changed a field");
    if (yard_encode_result(&b->second, YARD_ROLE_WORKER, &c) != 0)
        s_die("RESULT(W): second encode failed");
    s_fixed_point(b);
}

static void s_ready(const uint8_t *p, size_t n, bufs_t *b)
{
    yard_ready_t a, c;
    if (yard_decode_ready(s_dec, p, n, &a) != 0)
        return;
    s_bufs_reset(b);
    if (yard_encode_ready(&b->first, &a) != 0)
        s_die("READY: a decoded body does not encode");
    if (yard_decode_ready(s_dec, b->first.data, b->first.size, &c) != 0)
        s_die("READY: an encoded body does not decode");
    if (!s_same(a.service, c.service) || a.capacity != c.capacity ||
        !s_same(a.name, c.name) || a.pid != c.pid ||
        !s_same(a.version, c.version))
        s_die("READY: round trip changed a field");
    if (yard_encode_ready(&b->second, &c) != 0)
        s_die("READY: second encode failed");
    s_fixed_point(b);
}

static void s_cancel(const uint8_t *p, size_t n, bufs_t *b)
{
    yard_cancel_t a, c;
    if (yard_decode_cancel(s_dec, p, n, &a) != 0)
        return;
    if (a.id.len == 0 && a.job == 0)
        s_die("CANCEL: decoded with neither id nor job");
    const yard_role_t roles[2] = {YARD_ROLE_CLIENT, YARD_ROLE_BROKER};
    for (int r = 0; r < 2; r++) {
        bool can = r == 0 ? a.id.len > 0 : a.job != 0;
        s_bufs_reset(b);
        int rc = yard_encode_cancel(&b->first, roles[r], &a);
        if (!can) {
            if (rc != YARD_E_ARG)
                s_die("CANCEL: encoder accepted an empty cancel");
            continue;
        }
        if (rc != 0)
            s_die("CANCEL: a decoded body does not encode");
        if (yard_decode_cancel(s_dec, b->first.data, b->first.size, &c))
            s_die("CANCEL: an encoded body does not decode");
        if (r == 0 ? (!s_same(a.id, c.id) || c.job != 0)
                   : (a.job != c.job || c.id.len != 0))
            s_die("CANCEL: round trip changed a field");
        if (yard_encode_cancel(&b->second, roles[r], &c) != 0)
            s_die("CANCEL: second encode failed");
        s_fixed_point(b);
    }
}

static void s_error(const uint8_t *p, size_t n, bufs_t *b)
{
    yard_error_t a, c;
    if (yard_decode_error(s_dec, p, n, &a) != 0)
        return;
    s_bufs_reset(b);
    if (yard_encode_error(&b->first, &a) != 0)
        s_die("ERROR: a decoded body does not encode");
    if (yard_decode_error(s_dec, b->first.data, b->first.size, &c) != 0)
        s_die("ERROR: an encoded body does not decode");
    if (!s_same(a.code, c.code) || !s_same(a.message, c.message) ||
        !s_same(a.id, c.id))
        s_die("ERROR: round trip changed a field");
    if (yard_encode_error(&b->second, &c) != 0)
        s_die("ERROR: second encode failed");
    s_fixed_point(b);
}

static int s_object(const char *name, size_t len, uint64_t value, void *arg)
{
    (void)name;
    (void)value;
    *(size_t *)arg += len;
    return 0;
}

/*  HEARTBEAT bodies: a worker's report and the broker's probe. */
static void s_report(const uint8_t *p, size_t n, bufs_t *b)
{
    yard_report_t a, c;
    if (yard_decode_report(s_dec, p, n, &a) == 0) {
        size_t names = 0;
        if (yard_objects_each(&a.objects, s_object, &names) != 0)
            s_die("REPORT: decoded objects do not iterate");
        s_bufs_reset(b);
        if (yard_encode_report(&b->first, &a) != 0)
            s_die("REPORT: a decoded body does not encode");
        if (yard_decode_report(s_dec, b->first.data, b->first.size, &c) != 0)
            s_die("REPORT: an encoded body does not decode");
        if (a.probe != c.probe || a.rss != c.rss ||
            a.loop_stalls != c.loop_stalls || a.in_flight != c.in_flight ||
            a.pending != c.pending || !s_same(a.version, c.version) ||
            !s_same(a.objects, c.objects))
            s_die("REPORT: round trip changed a field");
        if (yard_encode_report(&b->second, &c) != 0)
            s_die("REPORT: second encode failed");
        s_fixed_point(b);
    }
    yard_probe_t pa, pc;
    if (yard_decode_probe(s_dec, p, n, &pa) == 0) {
        if (pa.probe == 0)
            s_die("PROBE: decoded probe 0");
        s_bufs_reset(b);
        if (yard_encode_probe(&b->first, &pa) != 0 ||
            yard_decode_probe(s_dec, b->first.data, b->first.size, &pc) != 0 ||
            pc.probe != pa.probe)
            s_die("PROBE: round trip failed");
    }
}

static void s_body(const uint8_t *data, size_t len, bufs_t *b)
{
    /*  An exact-size copy: reading one byte past it is an ASan report. */
    uint8_t *p = malloc(len ? len : 1);
    if (!p)
        return;
    if (len)
        memcpy(p, data, len);

    int rc = yard_msgpack_check(p, len);
    size_t off = 0;
    int src = yard_msgpack_skip(p, len, &off);
    if (rc == 0 && (src != 0 || off != len))
        s_die("check and skip disagree");
    yard_bytes_t raw = {p, (uint32_t)len};
    size_t count = 0;
    (void)yard_headers_each(&raw, s_count, &count);
    yard_status_t st;
    (void)yard_status_parse((const char *)p, len, &st);

    s_submit(p, len, b);
    s_task(p, len, b);
    s_result(p, len, b);
    s_ready(p, len, b);
    s_cancel(p, len, b);
    s_error(p, len, b);
    s_report(p, len, b);
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_dec && !(s_dec = yard_decoder_new()))
        return 0;
    static bufs_t bufs;
    static bool init;
    if (!init) {
        msgpack_sbuffer_init(&bufs.first);
        msgpack_sbuffer_init(&bufs.second);
        init = true;
    }

    size_t hlen = size < YARD_HEADER_SIZE ? size : YARD_HEADER_SIZE;
    uint8_t *hdr = malloc(hlen ? hlen : 1);
    if (!hdr)
        return 0;
    memcpy(hdr, data, hlen);
    yard_role_t role;
    yard_cmd_t cmd;
    int hrc = yard_header_parse(hdr, hlen, &role, &cmd);
    free(hdr);

    /*  Split the rest into bodies. */
    const uint8_t *body[S_MAX_BODIES];
    size_t blen[S_MAX_BODIES], nbodies = 0, nframes = 0;
    size_t pos = hlen;
    while (pos < size) {
        const uint8_t *sep = memmem(data + pos, size - pos, "\xc1\xc1", 2);
        size_t end = sep ? (size_t)(sep - data) : size;
        if (nbodies < S_MAX_BODIES) {
            body[nbodies] = data + pos;
            blen[nbodies++] = end - pos;
        }
        nframes++;
        pos = sep ? end + 2 : size;
    }

    if (hrc == 0) {
        int crc = yard_cmd_check(role, cmd, nframes);
        (void)yard_cmd_name(cmd);
        (void)yard_errcode_for(crc);
        (void)yard_strerror(crc);
    }
    (void)yard_errcode_for(hrc);
    for (size_t i = 0; i < nbodies; i++)
        s_body(body[i], blen[i], &bufs);
    return 0;
}
