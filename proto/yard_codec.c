/*  yard_codec.c — msgpack bodies <-> the C structs of yard_proto.h.

    One table per message lists its fields in canonical wire order with
    their kind and limits. The same table drives decoding (type, range,
    required, duplicate checks), encoding (which fields to write, in which
    order: canonical order is what makes the vectors byte-exact) and the
    validation an encoder does before it writes, so decoder and encoder
    cannot drift apart.

    Decoding trusts nothing: yard_msgpack_check walks the bytes first (no
    allocation, bounded counts and depth), then one cursor walks the top
    map and reads each value in place. No object tree is built (an earlier
    version used msgpack_unpack into a zone: building and then reading the
    tree was the largest single cost of a task in the broker). str and bin
    values, and the yard_bytes_t fields we hand out, are views into the
    caller's buffer. */
#include "yard_proto.h"

#include <stdlib.h>
#include <string.h>

/*  The decoder keeps no state today; the handle stays in the API so that
    a future decoder may cache (a zone, interned keys) without an API
    change. */
struct _yard_decoder_t {
    int unused;
};

/* ---- Field tables ------------------------------------------------------ */

typedef enum {
    K_STR,     /*  msgpack str, length min..max (else RANGE)              */
    K_SERVICE, /*  K_STR limited to [A-Za-z0-9._:-]                        */
    K_TEXT,    /*  msgpack str, length <= max (else TOO_LARGE)            */
    K_PAYLOAD, /*  bin or str on decode, bin on encode; present if ptr    */
    K_U8,      /*  unsigned integer min..max into a uint8_t               */
    K_U32,     /*  ... into a uint32_t                                    */
    K_U64,     /*  ... into a uint64_t                                    */
    K_BOOL,    /*  msgpack bool; written only when true                   */
    K_STATUS,  /*  str, one of the wire status names                      */
    K_HEADERS, /*  map str->str, kept as the raw bytes of the map         */
    K_MAP,     /*  any map, kept as raw bytes (reserved fields)           */
    K_RAW,     /*  any one msgpack value, kept as raw bytes (event payload) */
    K_STRLIST, /*  array of str, kept as raw bytes (SUBSCRIBE types)      */
} s_kind_t;

/*  Encoder role bits: which encoder writes a field (RESULT and CANCEL
    write different fields for different senders). */
#define S_CLIENT 1u
#define S_WORKER 2u
#define S_BROKER 4u
#define S_ANY (S_CLIENT | S_WORKER | S_BROKER)

typedef struct {
    const char *key;   /*  wire key                                        */
    uint8_t klen;      /*  strlen(key)                                     */
    uint8_t kind;      /*  s_kind_t                                        */
    uint8_t required;  /*  role bits for which the field must be present:  */
                       /*  S_ANY also makes the decoder require it         */
    uint8_t roles;     /*  role bits whose encoder writes the field        */
    uint16_t offset;   /*  offsetof the field in the struct                */
    uint64_t min, max; /*  length (str kinds) or value (numbers) limits    */
    uint64_t dflt;     /*  value when absent (SUBMIT numbers); not written */
} s_field_t;

typedef struct {
    const s_field_t *fields;
    size_t nfields;
    size_t size;   /*  sizeof the struct                               */
    int either[2]; /*  field indices of which one at least is required */
                   /*  on decode, or -1                                */
} s_msg_t;

#define F(key, kind, req, roles, type, member, min, max, dflt)                 \
    {                                                                          \
        key, sizeof(key) - 1, kind, req, roles,                                \
            (uint16_t)offsetof(type, member), (min), (max), (dflt)             \
    }

static const s_field_t s_submit_fields[] = {
    F("id", K_STR, S_ANY, S_ANY, yard_submit_t, id, 1, YARD_MAX_ID, 0),
    F("service", K_SERVICE, S_ANY, S_ANY, yard_submit_t, service, 1,
      YARD_MAX_SERVICE, 0),
    F("payload", K_PAYLOAD, 0, S_ANY, yard_submit_t, payload, 0,
      YARD_MAX_PAYLOAD, 0),
    F("timeout_ms", K_U32, 0, S_ANY, yard_submit_t, timeout_ms, 1,
      YARD_MAX_TIMEOUT_MS, YARD_DEFAULT_TIMEOUT_MS),
    F("retries", K_U32, 0, S_ANY, yard_submit_t, retries, 0, YARD_MAX_RETRIES,
      YARD_DEFAULT_RETRIES),
    F("backoff_ms", K_U32, 0, S_ANY, yard_submit_t, backoff_ms, 0,
      YARD_MAX_BACKOFF_MS, YARD_DEFAULT_BACKOFF_MS),
    F("priority", K_U8, 0, S_ANY, yard_submit_t, priority, 0, YARD_MAX_PRIORITY,
      YARD_DEFAULT_PRIORITY),
    F("headers", K_HEADERS, 0, S_ANY, yard_submit_t, headers, 0, 0, 0),
    F("cache", K_MAP, 0, S_ANY, yard_submit_t, cache, 0, 0, 0),
    F("fallback", K_SERVICE, 0, S_ANY, yard_submit_t, fallback, 1,
      YARD_MAX_SERVICE, 0),
};

static const s_field_t s_task_fields[] = {
    F("job", K_U64, S_ANY, S_ANY, yard_task_t, job, 1, UINT64_MAX, 0),
    F("id", K_STR, S_ANY, S_ANY, yard_task_t, id, 1, YARD_MAX_ID, 0),
    F("service", K_SERVICE, S_ANY, S_ANY, yard_task_t, service, 1,
      YARD_MAX_SERVICE, 0),
    F("payload", K_PAYLOAD, 0, S_ANY, yard_task_t, payload, 0, YARD_MAX_PAYLOAD,
      0),
    F("timeout_ms", K_U32, 0, S_ANY, yard_task_t, timeout_ms, 0,
      YARD_MAX_TIMEOUT_MS, 0),
    F("attempt", K_U32, 0, S_ANY, yard_task_t, attempt, 0, UINT32_MAX, 0),
    F("headers", K_HEADERS, 0, S_ANY, yard_task_t, headers, 0, 0, 0),
};

static const s_field_t s_result_fields[] = {
    F("job", K_U64, S_WORKER, S_WORKER, yard_result_t, job, 1, UINT64_MAX, 0),
    F("id", K_STR, S_BROKER, S_BROKER, yard_result_t, id, 1, YARD_MAX_ID, 0),
    F("status", K_STATUS, S_ANY, S_ANY, yard_result_t, status, 0, 0, 0),
    F("payload", K_PAYLOAD, 0, S_ANY, yard_result_t, payload, 0,
      YARD_MAX_PAYLOAD, 0),
    F("error", K_TEXT, 0, S_ANY, yard_result_t, error, 0, YARD_MAX_ERROR, 0),
    F("cached", K_BOOL, 0, S_BROKER, yard_result_t, cached, 0, 1, 0),
    F("attempts", K_U32, 0, S_BROKER, yard_result_t, attempts, 0, UINT32_MAX,
      0),
    F("queue_us", K_U64, 0, S_BROKER, yard_result_t, queue_us, 0, UINT64_MAX,
      0),
    F("run_us", K_U64, 0, S_ANY, yard_result_t, run_us, 0, UINT64_MAX, 0),
    F("total_us", K_U64, 0, S_BROKER, yard_result_t, total_us, 0, UINT64_MAX,
      0),
    F("retry_after_ms", K_U32, 0, S_BROKER, yard_result_t, retry_after_ms, 0,
      UINT32_MAX, 0),
};

static const s_field_t s_ready_fields[] = {
    F("service", K_SERVICE, S_ANY, S_ANY, yard_ready_t, service, 1,
      YARD_MAX_SERVICE, 0),
    F("capacity", K_U32, S_ANY, S_ANY, yard_ready_t, capacity, 0,
      YARD_MAX_CAPACITY, 0),
    /*  name and version are free text, but bounded: the broker keeps
        them for as long as the worker lives and shows them in stats. */
    F("name", K_STR, 0, S_ANY, yard_ready_t, name, 0, YARD_MAX_ID, 0),
    F("pid", K_U32, 0, S_ANY, yard_ready_t, pid, 0, UINT32_MAX, 0),
    F("version", K_STR, 0, S_ANY, yard_ready_t, version, 0, YARD_MAX_ID, 0),
};

static const s_field_t s_cancel_fields[] = {
    F("id", K_STR, S_CLIENT, S_CLIENT, yard_cancel_t, id, 1, YARD_MAX_ID, 0),
    F("job", K_U64, S_BROKER, S_BROKER, yard_cancel_t, job, 1, UINT64_MAX, 0),
};

static const s_field_t s_error_fields[] = {
    F("code", K_STR, S_ANY, S_ANY, yard_error_t, code, 1, YARD_MAX_HEADER_KEY,
      0),
    F("message", K_TEXT, 0, S_ANY, yard_error_t, message, 0, YARD_MAX_ERROR, 0),
    F("id", K_STR, 0, S_ANY, yard_error_t, id, 1, YARD_MAX_ID, 0),
};

#define S_PUBLISHER (S_CLIENT | S_WORKER)

static const s_field_t s_event_fields[] = {
    F("type", K_SERVICE, S_ANY, S_ANY, yard_event_t, type, 1, YARD_MAX_SERVICE,
      0),
    F("source", K_STR, 0, S_ANY, yard_event_t, source, 0, YARD_MAX_ID, 0),
    F("ts_us", K_U64, 0, S_ANY, yard_event_t, ts_us, 0, UINT64_MAX, 0),
    F("payload", K_RAW, 0, S_ANY, yard_event_t, payload, 0,
      YARD_MAX_EVENT_PAYLOAD, 0),
    F("trace_id", K_STR, 0, S_ANY, yard_event_t, trace_id, 0, YARD_MAX_ID, 0),
    F("meta", K_HEADERS, 0, S_ANY, yard_event_t, meta, 0, 0, 0),
    F("seq", K_U64, 0, S_PUBLISHER, yard_event_t, seq, 0, UINT64_MAX, 0),
    F("ack", K_BOOL, 0, S_PUBLISHER, yard_event_t, ack, 0, 1, 0),
    F("sn", K_U64, 0, S_BROKER, yard_event_t, sn, 0, UINT64_MAX, 0),
};

static const s_field_t s_publish_ack_fields[] = {
    F("seq", K_U64, S_ANY, S_ANY, yard_publish_ack_t, seq, 0, UINT64_MAX, 0),
    F("status", K_STATUS, S_ANY, S_ANY, yard_publish_ack_t, status, 0, 0, 0),
    F("error", K_TEXT, 0, S_ANY, yard_publish_ack_t, error, 0, YARD_MAX_ERROR,
      0),
};

static const s_field_t s_subscribe_fields[] = {
    F("types", K_STRLIST, S_ANY, S_ANY, yard_subscribe_t, types, 0, 0, 0),
};

/*  Worker reports: flat, every field optional, numbers unbounded (a
    report is informational; the broker only shows it). */
#define R64(key, member)                                                       \
    F(key, K_U64, 0, S_ANY, yard_report_t, member, 0, UINT64_MAX, 0)
static const s_field_t s_report_fields[] = {
    R64("probe", probe),
    R64("uptime_ms", uptime_ms),
    F("version", K_STR, 0, S_ANY, yard_report_t, version, 0, YARD_MAX_ID, 0),
    R64("rss", rss),
    R64("rss_peak", rss_peak),
    R64("rss_growth", rss_growth),
    R64("growth_window_ms", growth_window_ms),
    R64("loop_iterations", loop_iterations),
    R64("loop_busy_us", loop_busy_us),
    R64("loop_max_us", loop_max_us),
    R64("loop_max_lag_us", loop_max_lag_us),
    R64("loop_slow", loop_slow),
    R64("loop_stalls", loop_stalls),
    R64("loop_last_stall_us", loop_last_stall_us),
    R64("loop_stall_age_ms", loop_stall_age_ms),
    R64("loop_slow_ms", loop_slow_ms),
    R64("loop_stall_ms", loop_stall_ms),
    F("in_flight", K_U32, 0, S_ANY, yard_report_t, in_flight, 0, UINT32_MAX, 0),
    F("pending", K_U32, 0, S_ANY, yard_report_t, pending, 0, UINT32_MAX, 0),
    F("objects", K_MAP, 0, S_ANY, yard_report_t, objects, 0, 0, 0),
};
#undef R64

static const s_field_t s_probe_fields[] = {
    F("probe", K_U64, S_ANY, S_ANY, yard_probe_t, probe, 1, UINT64_MAX, 0),
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static const s_msg_t s_report_msg = {
    s_report_fields, NFIELDS(s_report_fields), sizeof(yard_report_t), {-1, -1}};
static const s_msg_t s_probe_msg = {
    s_probe_fields, NFIELDS(s_probe_fields), sizeof(yard_probe_t), {-1, -1}};

static const s_msg_t s_submit_msg = {
    s_submit_fields, NFIELDS(s_submit_fields), sizeof(yard_submit_t), {-1, -1}};
static const s_msg_t s_task_msg = {
    s_task_fields, NFIELDS(s_task_fields), sizeof(yard_task_t), {-1, -1}};
/*  RESULT: job (from a worker) or id (from the broker), at least one. */
static const s_msg_t s_result_msg = {
    s_result_fields, NFIELDS(s_result_fields), sizeof(yard_result_t), {0, 1}};
static const s_msg_t s_ready_msg = {
    s_ready_fields, NFIELDS(s_ready_fields), sizeof(yard_ready_t), {-1, -1}};
/*  CANCEL: id (from a client) or job (from the broker), at least one. */
static const s_msg_t s_cancel_msg = {
    s_cancel_fields, NFIELDS(s_cancel_fields), sizeof(yard_cancel_t), {0, 1}};
static const s_msg_t s_error_msg = {
    s_error_fields, NFIELDS(s_error_fields), sizeof(yard_error_t), {-1, -1}};
static const s_msg_t s_event_msg = {
    s_event_fields, NFIELDS(s_event_fields), sizeof(yard_event_t), {-1, -1}};
static const s_msg_t s_publish_ack_msg = {s_publish_ack_fields,
                                          NFIELDS(s_publish_ack_fields),
                                          sizeof(yard_publish_ack_t),
                                          {-1, -1}};
static const s_msg_t s_subscribe_msg = {s_subscribe_fields,
                                        NFIELDS(s_subscribe_fields),
                                        sizeof(yard_subscribe_t),
                                        {-1, -1}};

/* ---- Small readers over raw msgpack ------------------------------------ */

static uint32_t s_be(const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*  Reads a map header at p[*pos]: TYPE if it is not a map. */
static int s_read_map(const uint8_t *p, size_t len, size_t *pos, uint32_t *n)
{
    if (*pos >= len)
        return YARD_E_MALFORMED;
    uint8_t b = p[*pos];
    size_t lb;
    if (b >= 0x80 && b <= 0x8f) {
        *n = b & 0x0fu;
        *pos += 1;
        return 0;
    }
    if (b == 0xde)
        lb = 2;
    else if (b == 0xdf)
        lb = 4;
    else
        return YARD_E_TYPE;
    if (len - *pos < 1 + lb)
        return YARD_E_MALFORMED;
    *n = s_be(p + *pos + 1, lb);
    *pos += 1 + lb;
    return 0;
}

/*  Reads a str at p[*pos] into a view: TYPE if it is not a str. */
static int s_read_str(const uint8_t *p, size_t len, size_t *pos,
                      yard_bytes_t *out)
{
    if (*pos >= len)
        return YARD_E_MALFORMED;
    uint8_t b = p[*pos];
    size_t lb, hdr;
    uint32_t n;
    if (b >= 0xa0 && b <= 0xbf) {
        n = b & 0x1fu;
        hdr = 1;
    } else {
        if (b == 0xd9)
            lb = 1;
        else if (b == 0xda)
            lb = 2;
        else if (b == 0xdb)
            lb = 4;
        else
            return YARD_E_TYPE;
        if (len - *pos < 1 + lb)
            return YARD_E_MALFORMED;
        n = s_be(p + *pos + 1, lb);
        hdr = 1 + lb;
    }
    if (len - *pos - hdr < n)
        return YARD_E_MALFORMED;
    out->ptr = p + *pos + hdr;
    out->len = n;
    *pos += hdr + n;
    return 0;
}

/*  Validates a raw headers map (str keys 1..64 bytes, str values up to
    1024, at most 32 entries, no key twice, nothing after the map) and,
    when fn is given, calls it per entry once all of it is known good. */
static int s_headers_scan(const uint8_t *p, size_t len, yard_headers_fn *fn,
                          void *arg)
{
    yard_bytes_t keys[YARD_MAX_HEADERS], vals[YARD_MAX_HEADERS];
    size_t pos = 0;
    uint32_t n;
    int rc = s_read_map(p, len, &pos, &n);
    if (rc)
        return rc;
    if (n > YARD_MAX_HEADERS)
        return YARD_E_TOO_LARGE;
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = s_read_str(p, len, &pos, &keys[i])))
            return rc;
        if (keys[i].len == 0)
            return YARD_E_RANGE;
        if (keys[i].len > YARD_MAX_HEADER_KEY)
            return YARD_E_TOO_LARGE;
        for (uint32_t j = 0; j < i; j++)
            if (keys[j].len == keys[i].len &&
                memcmp(keys[j].ptr, keys[i].ptr, keys[i].len) == 0)
                return YARD_E_MALFORMED;
        if ((rc = s_read_str(p, len, &pos, &vals[i])))
            return rc;
        if (vals[i].len > YARD_MAX_HEADER_VALUE)
            return YARD_E_TOO_LARGE;
    }
    if (pos != len)
        return YARD_E_MALFORMED;
    for (uint32_t i = 0; fn && i < n; i++)
        if (fn((const char *)keys[i].ptr, keys[i].len,
               (const char *)vals[i].ptr, vals[i].len, arg))
            break;
    return 0;
}

/*  Validates a raw SUBSCRIBE types array (at most YARD_MAX_TYPES str
    prefixes of 0..YARD_MAX_SERVICE bytes of the service alphabet, nothing
    after the array) and, when fn is given, calls it per entry. */
static bool s_service_char(uint8_t c);
static int s_strlist_scan(const uint8_t *p, size_t len, yard_strlist_fn *fn,
                          void *arg)
{
    if (len == 0)
        return YARD_E_TYPE;
    size_t pos = 1;
    uint32_t n;
    uint8_t b = p[0];
    if (b >= 0x90 && b <= 0x9f)
        n = b & 0x0fu;
    else if (b == 0xdc && len >= 3) {
        n = s_be(p + 1, 2);
        pos = 3;
    } else if (b == 0xdd && len >= 5) {
        n = s_be(p + 1, 4);
        pos = 5;
    } else
        return (b == 0xdc || b == 0xdd) ? YARD_E_MALFORMED : YARD_E_TYPE;
    if (n > YARD_MAX_TYPES)
        return YARD_E_TOO_LARGE;
    yard_bytes_t items[YARD_MAX_TYPES];
    for (uint32_t i = 0; i < n; i++) {
        int rc = s_read_str(p, len, &pos, &items[i]);
        if (rc)
            return rc;
        if (items[i].len > YARD_MAX_SERVICE)
            return YARD_E_TOO_LARGE;
        for (uint32_t j = 0; j < items[i].len; j++)
            if (!s_service_char(items[i].ptr[j]))
                return YARD_E_RANGE;
    }
    if (pos != len)
        return YARD_E_MALFORMED;
    for (uint32_t i = 0; fn && i < n; i++) {
        int rc = fn((const char *)items[i].ptr, items[i].len, arg);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- Field values: one set of rules for decode and encode -------------- */

static bool s_service_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
           c == '-';
}

/*  Checks a bytes value against its field's rules. */
static int s_check_bytes(const s_field_t *f, const yard_bytes_t *b)
{
    if (!b->ptr && b->len)
        return YARD_E_ARG;
    switch ((s_kind_t)f->kind) {
    case K_STR:
    case K_SERVICE:
        if (b->len < f->min || b->len > f->max)
            return YARD_E_RANGE;
        for (uint32_t i = 0; f->kind == K_SERVICE && i < b->len; i++)
            if (!s_service_char(b->ptr[i]))
                return YARD_E_RANGE;
        return 0;
    case K_TEXT:
    case K_PAYLOAD:
        return b->len > f->max ? YARD_E_TOO_LARGE : 0;
    case K_HEADERS:
        return s_headers_scan(b->ptr, b->len, NULL, NULL);
    case K_MAP: {
        size_t pos = 0;
        uint32_t n;
        int rc = s_read_map(b->ptr, b->len, &pos, &n);
        return rc ? rc : yard_msgpack_check(b->ptr, b->len);
    }
    case K_RAW:
        if (b->len > f->max)
            return YARD_E_TOO_LARGE;
        return b->len ? yard_msgpack_check(b->ptr, b->len) : 0;
    case K_STRLIST:
        return s_strlist_scan(b->ptr, b->len, NULL, NULL);
    default:
        return YARD_E_ARG; /*  not a bytes kind: our bug */
    }
}

static int s_check_number(const s_field_t *f, uint64_t v)
{
    return (v < f->min || v > f->max) ? YARD_E_RANGE : 0;
}

static void s_store_number(const s_field_t *f, void *st, uint64_t v)
{
    char *at = (char *)st + f->offset;
    switch ((s_kind_t)f->kind) {
    case K_U8:
        *(uint8_t *)at = (uint8_t)v;
        break;
    case K_U32:
        *(uint32_t *)at = (uint32_t)v;
        break;
    case K_U64:
        *(uint64_t *)at = v;
        break;
    default:
        break;
    }
}

static uint64_t s_load_number(const s_field_t *f, const void *st)
{
    const char *at = (const char *)st + f->offset;
    switch ((s_kind_t)f->kind) {
    case K_U8:
        return *(const uint8_t *)at;
    case K_U32:
        return *(const uint32_t *)at;
    case K_U64:
        return *(const uint64_t *)at;
    default:
        return 0;
    }
}

/* ---- Decoding ---------------------------------------------------------- */

yard_decoder_t *yard_decoder_new(void)
{
    yard_decoder_t *self = calloc(1, sizeof *self);
    return self;
}

void yard_decoder_destroy(yard_decoder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

/*  One msgpack value read in place. */
typedef enum { V_UINT, V_NEG, V_BOOL, V_STR, V_BIN, V_MAP, V_OTHER } s_vtype_t;

typedef struct {
    s_vtype_t type;
    uint64_t u;        /*  V_UINT                                          */
    bool b;            /*  V_BOOL                                          */
    yard_bytes_t raw;  /*  V_STR, V_BIN: the data; V_MAP: the whole map    */
    yard_bytes_t span; /*  the whole value, header included (s_decode)    */
} s_val_t;

static uint64_t s_be64(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*  Reads the value at p[*pos] and moves *pos past it. Integers are
    normalised as msgpack-c does: any format holding a value >= 0 is
    V_UINT. Containers other than maps, nil, floats and ext are V_OTHER
    and skipped whole. */
static int s_read_val(const uint8_t *p, size_t len, size_t *pos, s_val_t *v)
{
    if (*pos >= len)
        return YARD_E_MALFORMED;
    uint8_t b = p[*pos];
    size_t avail = len - *pos - 1, lb = 0;
    if (b <= 0x7f) {
        v->type = V_UINT;
        v->u = b;
        *pos += 1;
        return 0;
    }
    if (b >= 0xe0) {
        v->type = V_NEG;
        *pos += 1;
        return 0;
    }
    if (b == 0xc2 || b == 0xc3) {
        v->type = V_BOOL;
        v->b = b == 0xc3;
        *pos += 1;
        return 0;
    }
    if (b >= 0xcc && b <= 0xd3) {
        lb = (size_t)1 << ((b - 0xcc) & 3);
        if (avail < lb)
            return YARD_E_MALFORMED;
        uint64_t u = s_be64(p + *pos + 1, lb);
        bool neg = false;
        if (b >= 0xd0) { /*  int 8..64: sign-extend */
            uint64_t sign = (uint64_t)1 << (lb * 8 - 1);
            neg = (u & sign) != 0;
        }
        v->type = neg ? V_NEG : V_UINT;
        v->u = u;
        *pos += 1 + lb;
        return 0;
    }
    if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) {
        v->type = V_STR;
        return s_read_str(p, len, pos, &v->raw);
    }
    if (b >= 0xc4 && b <= 0xc6) {
        lb = (size_t)1 << (b - 0xc4);
        if (avail < lb)
            return YARD_E_MALFORMED;
        uint64_t n = s_be64(p + *pos + 1, lb);
        if (avail - lb < n)
            return YARD_E_MALFORMED;
        v->type = V_BIN;
        v->raw.ptr = p + *pos + 1 + lb;
        v->raw.len = (uint32_t)n;
        *pos += 1 + lb + (size_t)n;
        return 0;
    }
    size_t start = *pos;
    int rc = yard_msgpack_skip(p, len, pos);
    if (rc)
        return rc;
    v->type =
        ((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf) ? V_MAP : V_OTHER;
    v->raw.ptr = p + start;
    v->raw.len = (uint32_t)(*pos - start);
    return 0;
}

/*  Decodes one field's value into st. */
static int s_decode_field(const s_field_t *f, const s_val_t *val, void *st)
{
    char *at = (char *)st + f->offset;
    int rc;
    switch ((s_kind_t)f->kind) {
    case K_STR:
    case K_SERVICE:
    case K_TEXT:
    case K_PAYLOAD:
        if (val->type != V_STR && !(f->kind == K_PAYLOAD && val->type == V_BIN))
            return YARD_E_TYPE;
        if ((rc = s_check_bytes(f, &val->raw)))
            return rc;
        *(yard_bytes_t *)at = val->raw;
        return 0;
    case K_U8:
    case K_U32:
    case K_U64:
        if (val->type == V_NEG)
            return YARD_E_RANGE;
        if (val->type != V_UINT)
            return YARD_E_TYPE;
        if ((rc = s_check_number(f, val->u)))
            return rc;
        s_store_number(f, st, val->u);
        return 0;
    case K_BOOL:
        if (val->type != V_BOOL)
            return YARD_E_TYPE;
        *(bool *)at = val->b;
        return 0;
    case K_STATUS: {
        yard_status_t status;
        if (val->type != V_STR)
            return YARD_E_TYPE;
        if ((rc = yard_status_parse((const char *)val->raw.ptr, val->raw.len,
                                    &status)))
            return rc;
        *(yard_status_t *)at = status;
        return 0;
    }
    case K_HEADERS:
    case K_MAP:
        if (val->type != V_MAP)
            return YARD_E_TYPE;
        if ((rc = s_check_bytes(f, &val->raw)))
            return rc;
        *(yard_bytes_t *)at = val->raw;
        return 0;
    case K_RAW:
    case K_STRLIST:
        if ((rc = s_check_bytes(f, &val->span)))
            return rc;
        *(yard_bytes_t *)at = val->span;
        return 0;
    }
    return YARD_E_ARG; /*  unreachable: every kind is handled above */
}

/*  The generic decoder: check, then walk the top-level map once, matching
    keys against the message's table. A bad field does not stop the walk,
    so that an id after it is still read for the broker's reply; the first
    error in map order is returned. */
static int s_decode(yard_decoder_t *self, const s_msg_t *msg, const void *data,
                    size_t len, void *out)
{
    if (!out)
        return YARD_E_ARG;
    memset(out, 0, msg->size);
    for (size_t i = 0; i < msg->nfields; i++)
        if (msg->fields[i].dflt)
            s_store_number(&msg->fields[i], out, msg->fields[i].dflt);
    if (!self || (!data && len))
        return YARD_E_ARG;

    int rc = yard_msgpack_check(data, len);
    if (rc)
        return rc;
    const uint8_t *p = data;
    size_t pos = 0;
    uint32_t nkeys;
    rc = s_read_map(p, len, &pos, &nkeys);
    if (rc)
        return YARD_E_MALFORMED; /*  a body is a map (D1) */

    uint32_t seen = 0;
    int err = 0;
    for (uint32_t i = 0; i < nkeys; i++) {
        s_val_t key, val;
        if ((rc = s_read_val(p, len, &pos, &key)))
            return YARD_E_MALFORMED; /*  cannot happen after the check */
        size_t vstart = pos;
        if ((rc = s_read_val(p, len, &pos, &val)))
            return YARD_E_MALFORMED;
        val.span.ptr = p + vstart;
        val.span.len = (uint32_t)(pos - vstart);
        if (key.type != V_STR) {
            err = err ? err : YARD_E_MALFORMED;
            continue;
        }
        size_t idx;
        for (idx = 0; idx < msg->nfields; idx++) {
            const s_field_t *f = &msg->fields[idx];
            if (f->klen == key.raw.len &&
                memcmp(f->key, key.raw.ptr, f->klen) == 0)
                break;
        }
        if (idx == msg->nfields)
            continue; /*  unknown keys are for later versions: ignore */
        if (seen & (1u << idx)) {
            err = err ? err : YARD_E_MALFORMED;
            continue;
        }
        seen |= 1u << idx;
        rc = s_decode_field(&msg->fields[idx], &val, out);
        if (rc && !err)
            err = rc;
    }
    if (pos != len)
        return YARD_E_MALFORMED; /*  cannot happen after the check */
    if (err)
        return err;
    for (size_t i = 0; i < msg->nfields; i++)
        if (msg->fields[i].required == S_ANY && !(seen & (1u << i)))
            return YARD_E_MISSING;
    if (msg->either[0] >= 0 &&
        !(seen & ((1u << msg->either[0]) | (1u << msg->either[1]))))
        return YARD_E_MISSING;
    return 0;
}

int yard_decode_submit(yard_decoder_t *self, const void *data, size_t len,
                       yard_submit_t *out)
{
    return s_decode(self, &s_submit_msg, data, len, out);
}

int yard_decode_task(yard_decoder_t *self, const void *data, size_t len,
                     yard_task_t *out)
{
    return s_decode(self, &s_task_msg, data, len, out);
}

int yard_decode_result(yard_decoder_t *self, const void *data, size_t len,
                       yard_result_t *out)
{
    return s_decode(self, &s_result_msg, data, len, out);
}

int yard_decode_ready(yard_decoder_t *self, const void *data, size_t len,
                      yard_ready_t *out)
{
    return s_decode(self, &s_ready_msg, data, len, out);
}

int yard_decode_cancel(yard_decoder_t *self, const void *data, size_t len,
                       yard_cancel_t *out)
{
    return s_decode(self, &s_cancel_msg, data, len, out);
}

int yard_decode_error(yard_decoder_t *self, const void *data, size_t len,
                      yard_error_t *out)
{
    return s_decode(self, &s_error_msg, data, len, out);
}

int yard_decode_event(yard_decoder_t *self, const void *data, size_t len,
                      yard_event_t *out)
{
    int rc = s_decode(self, &s_event_msg, data, len, out);
    if (rc == 0 && out->ack && out->seq == 0)
        rc = YARD_E_MISSING; /*  an ack needs a seq to name the event */
    return rc;
}

int yard_decode_publish_ack(yard_decoder_t *self, const void *data, size_t len,
                            yard_publish_ack_t *out)
{
    return s_decode(self, &s_publish_ack_msg, data, len, out);
}

int yard_decode_subscribe(yard_decoder_t *self, const void *data, size_t len,
                          yard_subscribe_t *out)
{
    return s_decode(self, &s_subscribe_msg, data, len, out);
}

/*  Checks a report's objects map (at most YARD_MAX_OBJECTS entries, names
    1..YARD_MAX_OBJECT_NAME bytes of the service alphabet, unsigned values,
    no name twice) and, when fn is given, calls it per entry once all of it
    is known good. */
static int s_objects_scan(const uint8_t *p, size_t len, yard_objects_fn *fn,
                          void *arg)
{
    yard_bytes_t names[YARD_MAX_OBJECTS];
    uint64_t values[YARD_MAX_OBJECTS];
    size_t pos = 0;
    uint32_t n;
    int rc = s_read_map(p, len, &pos, &n);
    if (rc)
        return rc;
    if (n > YARD_MAX_OBJECTS)
        return YARD_E_TOO_LARGE;
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = s_read_str(p, len, &pos, &names[i])))
            return rc;
        if (names[i].len == 0 || names[i].len > YARD_MAX_OBJECT_NAME)
            return YARD_E_RANGE;
        for (uint32_t k = 0; k < names[i].len; k++)
            if (!s_service_char(names[i].ptr[k]))
                return YARD_E_RANGE;
        for (uint32_t j = 0; j < i; j++)
            if (names[j].len == names[i].len &&
                memcmp(names[j].ptr, names[i].ptr, names[i].len) == 0)
                return YARD_E_MALFORMED;
        s_val_t v;
        if ((rc = s_read_val(p, len, &pos, &v)))
            return rc;
        if (v.type != V_UINT)
            return v.type == V_NEG ? YARD_E_RANGE : YARD_E_TYPE;
        values[i] = v.u;
    }
    if (pos != len)
        return YARD_E_MALFORMED;
    for (uint32_t i = 0; fn && i < n; i++)
        if ((rc = fn((const char *)names[i].ptr, names[i].len, values[i], arg)))
            return rc;
    return 0;
}

int yard_decode_report(yard_decoder_t *self, const void *data, size_t len,
                       yard_report_t *out)
{
    int rc = s_decode(self, &s_report_msg, data, len, out);
    if (rc == 0 && out->objects.len)
        rc = s_objects_scan(out->objects.ptr, out->objects.len, NULL, NULL);
    return rc;
}

int yard_decode_probe(yard_decoder_t *self, const void *data, size_t len,
                      yard_probe_t *out)
{
    return s_decode(self, &s_probe_msg, data, len, out);
}

int yard_objects_each(const yard_bytes_t *objects, yard_objects_fn *fn,
                      void *arg)
{
    if (!objects || !fn || (!objects->ptr && objects->len))
        return YARD_E_ARG;
    if (objects->len == 0)
        return 0;
    return s_objects_scan(objects->ptr, objects->len, fn, arg);
}

int yard_strlist_each(const yard_bytes_t *list, yard_strlist_fn *fn, void *arg)
{
    if (!list || !fn || (!list->ptr && list->len))
        return YARD_E_ARG;
    if (list->len == 0)
        return 0;
    return s_strlist_scan(list->ptr, list->len, fn, arg);
}

int yard_headers_each(const yard_bytes_t *headers, yard_headers_fn *fn,
                      void *arg)
{
    if (!headers || !fn || (!headers->ptr && headers->len))
        return YARD_E_ARG;
    if (headers->len == 0)
        return 0; /*  no headers */
    return s_headers_scan(headers->ptr, headers->len, fn, arg);
}

/* ---- Encoding ---------------------------------------------------------- */

static bool s_is_bytes(const s_field_t *f)
{
    return f->kind == K_STR || f->kind == K_SERVICE || f->kind == K_TEXT ||
           f->kind == K_PAYLOAD || f->kind == K_HEADERS || f->kind == K_MAP ||
           f->kind == K_RAW || f->kind == K_STRLIST;
}

/*  Whether the encoder for role writes field f of st. */
static bool s_present(const s_field_t *f, unsigned role, const void *st)
{
    const char *at = (const char *)st + f->offset;
    if (!(f->roles & role))
        return false;
    if (f->required & role)
        return true;
    switch ((s_kind_t)f->kind) {
    case K_PAYLOAD:
        /*  An empty payload is still a payload: "present, zero bytes". */
        return ((const yard_bytes_t *)at)->ptr != NULL;
    case K_STR:
    case K_SERVICE:
    case K_TEXT:
    case K_HEADERS:
    case K_MAP:
    case K_RAW:
        return ((const yard_bytes_t *)at)->len > 0;
    case K_STRLIST:
        return true; /*  required where it appears */
    case K_U8:
    case K_U32:
    case K_U64: {
        /*  E2: left out when equal to the default (0 for every number but
            the SUBMIT ones with a stated default). A 0 where 0 is out of
            range (timeout_ms) means "unset" in the C struct and is left
            out too; a 0 that is a real value other than the default
            (backoff_ms, default 100) is written. */
        uint64_t v = s_load_number(f, st);
        return v != f->dflt && (v != 0 || f->min == 0);
    }
    case K_BOOL:
        return *(const bool *)at;
    case K_STATUS:
        return true;
    }
    return false;
}

/*  Validates a field the encoder is about to write. Bad values are the
    caller's bug (YARD_E_ARG), except sizes, which a caller may not know
    in advance (YARD_E_TOO_LARGE). */
static int s_check_field(const s_field_t *f, const void *st)
{
    const char *at = (const char *)st + f->offset;
    int rc;
    switch ((s_kind_t)f->kind) {
    case K_U8:
    case K_U32:
    case K_U64:
        rc = s_check_number(f, s_load_number(f, st));
        break;
    case K_BOOL:
        rc = 0;
        break;
    case K_STATUS: {
        yard_status_t s = *(const yard_status_t *)at;
        rc = (unsigned)s < (unsigned)YARD_STATUS_COUNT ? 0 : YARD_E_ARG;
        break;
    }
    default:
        rc = s_check_bytes(f, (const yard_bytes_t *)at);
        break;
    }
    return (rc == 0 || rc == YARD_E_TOO_LARGE) ? rc : YARD_E_ARG;
}

static int s_pack_field(msgpack_packer *pk, const s_field_t *f, const void *st)
{
    const char *at = (const char *)st + f->offset;
    const yard_bytes_t *b = (const yard_bytes_t *)at;
    if (msgpack_pack_str_with_body(pk, f->key, f->klen))
        return -1;
    switch ((s_kind_t)f->kind) {
    case K_STR:
    case K_SERVICE:
    case K_TEXT:
        return msgpack_pack_str_with_body(pk, b->ptr, b->len);
    case K_PAYLOAD:
        return msgpack_pack_bin_with_body(pk, b->ptr, b->len);
    case K_U8:
    case K_U32:
    case K_U64:
        return msgpack_pack_uint64(pk, s_load_number(f, st));
    case K_BOOL:
        return *(const bool *)at ? msgpack_pack_true(pk)
                                 : msgpack_pack_false(pk);
    case K_STATUS: {
        const char *name = yard_status_name(*(const yard_status_t *)at);
        return msgpack_pack_str_with_body(pk, name, strlen(name));
    }
    case K_HEADERS:
    case K_MAP:
    case K_RAW:
    case K_STRLIST:
        /*  Already validated msgpack: copied as is, which keeps the
            caller's bytes (and so the vectors) exact. */
        return msgpack_sbuffer_write(pk->data, (const char *)b->ptr, b->len);
    }
    return -1;
}

/*  The generic encoder: validate everything first, then write; on any
    failure the buffer is left as it was. */
static int s_encode(msgpack_sbuffer *buf, const s_msg_t *msg, unsigned role,
                    const void *st)
{
    if (!buf || !st)
        return YARD_E_ARG;
    uint32_t write = 0, n = 0;
    bool raw = false;
    for (size_t i = 0; i < msg->nfields; i++) {
        const s_field_t *f = &msg->fields[i];
        if (s_is_bytes(f) && (f->roles & role)) {
            /*  {NULL, n > 0} is no value at all: refuse it rather than
                guess whether the caller meant "absent" or "n bytes". */
            const yard_bytes_t *b =
                (const yard_bytes_t *)((const char *)st + f->offset);
            if (!b->ptr && b->len)
                return YARD_E_ARG;
        }
        if (!s_present(f, role, st))
            continue;
        int rc = s_check_field(f, st);
        if (rc)
            return rc;
        write |= 1u << i;
        n++;
        raw |= f->kind == K_HEADERS || f->kind == K_MAP || f->kind == K_RAW ||
               f->kind == K_STRLIST;
    }

    size_t start = buf->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, n))
        goto nomem;
    for (size_t i = 0; i < msg->nfields; i++)
        if ((write & (1u << i)) && s_pack_field(&pk, &msg->fields[i], st))
            goto nomem;

    /*  What we wrote must pass the decoder's structural check too: the
        raw maps count against the body's depth, element and size limits.
        Without them the body is one flat map whose field limits keep it
        under YARD_MAX_BODY, so the hot path (TASK, RESULT) skips the walk. */
    int rc = raw ? yard_msgpack_check(buf->data + start, buf->size - start) : 0;
    if (rc) {
        buf->size = start;
        return rc == YARD_E_TOO_LARGE ? rc : YARD_E_ARG;
    }
    return 0;
nomem:
    buf->size = start;
    return YARD_E_NOMEM;
}

int yard_encode_submit(msgpack_sbuffer *buf, const yard_submit_t *submit)
{
    return s_encode(buf, &s_submit_msg, S_ANY, submit);
}

int yard_encode_task(msgpack_sbuffer *buf, const yard_task_t *task)
{
    return s_encode(buf, &s_task_msg, S_ANY, task);
}

int yard_encode_result(msgpack_sbuffer *buf, yard_role_t role,
                       const yard_result_t *result)
{
    if (!result)
        return YARD_E_ARG;
    if (role == YARD_ROLE_WORKER) {
        /*  A worker reports what its handler did (invalid: the request
            itself was bad); the other statuses are the broker's to give. */
        if (result->status != YARD_OK && result->status != YARD_ERROR &&
            result->status != YARD_CANCELLED && result->status != YARD_INVALID)
            return YARD_E_ARG;
        return s_encode(buf, &s_result_msg, S_WORKER, result);
    }
    if (role == YARD_ROLE_BROKER)
        return s_encode(buf, &s_result_msg, S_BROKER, result);
    return YARD_E_ARG;
}

int yard_encode_ready(msgpack_sbuffer *buf, const yard_ready_t *ready)
{
    return s_encode(buf, &s_ready_msg, S_ANY, ready);
}

int yard_encode_cancel(msgpack_sbuffer *buf, yard_role_t role,
                       const yard_cancel_t *cancel)
{
    if (role == YARD_ROLE_CLIENT)
        return s_encode(buf, &s_cancel_msg, S_CLIENT, cancel);
    if (role == YARD_ROLE_BROKER)
        return s_encode(buf, &s_cancel_msg, S_BROKER, cancel);
    return YARD_E_ARG;
}

int yard_encode_error(msgpack_sbuffer *buf, const yard_error_t *error)
{
    return s_encode(buf, &s_error_msg, S_ANY, error);
}

int yard_encode_event(msgpack_sbuffer *buf, yard_role_t role,
                      const yard_event_t *event)
{
    if (!event)
        return YARD_E_ARG;
    unsigned r = role == YARD_ROLE_BROKER   ? S_BROKER
                 : role == YARD_ROLE_WORKER ? S_WORKER
                 : role == YARD_ROLE_CLIENT ? S_CLIENT
                                            : 0;
    if (!r || (r != S_BROKER && event->ack && event->seq == 0))
        return YARD_E_ARG;
    return s_encode(buf, &s_event_msg, r, event);
}

int yard_encode_publish_ack(msgpack_sbuffer *buf, const yard_publish_ack_t *ack)
{
    return s_encode(buf, &s_publish_ack_msg, S_ANY, ack);
}

int yard_encode_report(msgpack_sbuffer *buf, const yard_report_t *report)
{
    if (report && report->objects.len &&
        (!report->objects.ptr ||
         s_objects_scan(report->objects.ptr, report->objects.len, NULL, NULL)))
        return YARD_E_ARG;
    return s_encode(buf, &s_report_msg, S_ANY, report);
}

int yard_encode_probe(msgpack_sbuffer *buf, const yard_probe_t *probe)
{
    return s_encode(buf, &s_probe_msg, S_ANY, probe);
}

int yard_encode_subscribe(msgpack_sbuffer *buf, const yard_subscribe_t *sub)
{
    if (!sub || !sub->types.len)
        return YARD_E_ARG;
    return s_encode(buf, &s_subscribe_msg, S_ANY, sub);
}

int yard_encode_strlist(msgpack_sbuffer *buf, const char *const *items,
                        size_t n)
{
    if (!buf || (n && !items) || n > YARD_MAX_TYPES)
        return YARD_E_ARG;
    size_t start = buf->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    int rc = msgpack_pack_array(&pk, n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t len = items[i] ? strlen(items[i]) : 0;
        rc = msgpack_pack_str_with_body(&pk, items[i] ? items[i] : "", len);
    }
    if (rc) {
        buf->size = start;
        return YARD_E_NOMEM;
    }
    rc = s_strlist_scan((const uint8_t *)buf->data + start, buf->size - start,
                        NULL, NULL);
    if (rc) {
        buf->size = start;
        return rc == YARD_E_TOO_LARGE ? rc : YARD_E_ARG;
    }
    return 0;
}

int yard_event_stamp_sn(msgpack_sbuffer *out, const void *body, size_t len,
                        uint64_t sn)
{
    const uint8_t *p = body;
    if (!out || !body || len < 1 || p[0] < 0x80 || p[0] >= 0x8f)
        return YARD_E_ARG;
    uint8_t head = (uint8_t)(p[0] + 1);
    uint8_t tail[1 + 2 + 9];
    size_t t = 0;
    tail[t++] = 0xa2;
    tail[t++] = 's';
    tail[t++] = 'n';
    if (sn < 128) {
        tail[t++] = (uint8_t)sn;
    } else {
        int bytes = sn <= 0xff          ? 1
                    : sn <= 0xffff      ? 2
                    : sn <= 0xffffffffu ? 4
                                        : 8;
        tail[t++] = bytes == 1   ? 0xcc
                    : bytes == 2 ? 0xcd
                    : bytes == 4 ? 0xce
                                 : 0xcf;
        for (int i = bytes - 1; i >= 0; i--)
            tail[t++] = (uint8_t)(sn >> (8 * i));
    }
    if (msgpack_sbuffer_write(out, (const char *)&head, 1) ||
        msgpack_sbuffer_write(out, (const char *)p + 1, len - 1) ||
        msgpack_sbuffer_write(out, (const char *)tail, t))
        return YARD_E_NOMEM;
    return 0;
}

yard_bytes_t yard_bytes_str(const char *s)
{
    yard_bytes_t b = {NULL, 0};
    if (s) {
        size_t n = strlen(s);
        b.ptr = (const uint8_t *)s;
        /*  Saturate rather than wrap: a 4 GiB string fails every limit
            check instead of passing as a short one. */
        b.len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
    return b;
}
