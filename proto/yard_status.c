/*  yard_status.c — names and checks that need no msgpack: error strings,
    wire status names, ERROR codes, command names, and the 4-byte header
    frame with the table of which role may send which command with how
    many bodies.

    Everything here is a pure function over small tables, so the broker can
    call it on every message without thinking about cost. */
#include "yard_proto.h"

#include <string.h>

/*  Indexed by yard_status_t; the order is fixed by the enum. */
static const char *const s_status_names[YARD_STATUS_COUNT] = {
    "ok",           "error",     "timeout",  "rejected",
    "circuit_open", "cancelled", "shutdown", "invalid",
};

const char *yard_strerror(int err)
{
    switch (err) {
    case YARD_E_OK:
        return "success";
    case YARD_E_MALFORMED:
        return "malformed message (not valid msgpack, not a map, or "
               "trailing bytes)";
    case YARD_E_TOO_LARGE:
        return "size limit exceeded";
    case YARD_E_VERSION:
        return "unsupported protocol version";
    case YARD_E_UNKNOWN_CMD:
        return "command not valid for this role";
    case YARD_E_TYPE:
        return "field has the wrong type";
    case YARD_E_RANGE:
        return "field value out of range";
    case YARD_E_MISSING:
        return "required field missing";
    case YARD_E_FRAMES:
        return "wrong number of body frames";
    case YARD_E_HEADER:
        return "bad header frame (length or magic)";
    case YARD_E_ROLE:
        return "unknown sender role";
    case YARD_E_NOMEM:
        return "out of memory";
    case YARD_E_IO:
        return "ZeroMQ send/receive failed";
    case YARD_E_TIMEOUT:
        return "timed out";
    case YARD_E_ARG:
        return "invalid argument";
    case YARD_E_NOTFOUND:
        return "not found";
    case YARD_E_INTERRUPTED:
        return "interrupted";
    case YARD_E_LIMIT:
        return "a broker limit was reached";
    }
    return "unknown error";
}

const char *yard_status_name(yard_status_t status)
{
    /*  Compare as unsigned so a negative value from a bad cast is caught. */
    if ((unsigned)status >= (unsigned)YARD_STATUS_COUNT)
        return "unknown";
    return s_status_names[status];
}

int yard_status_parse(const char *name, size_t len, yard_status_t *status)
{
    if (!name)
        return YARD_E_RANGE;
    for (int i = 0; i < YARD_STATUS_COUNT; i++) {
        const char *candidate = s_status_names[i];
        if (strlen(candidate) == len && memcmp(candidate, name, len) == 0) {
            if (status)
                *status = (yard_status_t)i;
            return 0;
        }
    }
    return YARD_E_RANGE;
}

const char *yard_errcode_for(int err)
{
    switch (err) {
    case YARD_E_TOO_LARGE:
        return YARD_ERRCODE_TOO_LARGE;
    case YARD_E_VERSION:
        return YARD_ERRCODE_VERSION;
    case YARD_E_UNKNOWN_CMD:
        return YARD_ERRCODE_UNKNOWN_CMD;
    case YARD_E_TYPE:
    case YARD_E_RANGE:
    case YARD_E_MISSING:
        return YARD_ERRCODE_BAD_FIELD;
    case YARD_E_FRAMES:
        return YARD_ERRCODE_FRAMES;
    case YARD_E_LIMIT:
        return YARD_ERRCODE_LIMIT;
    default:
        /*  Header, role and msgpack failures, and anything that is not a
            wire problem at all, are reported to the peer as "malformed":
            the peer cannot act on finer detail than that. */
        return YARD_ERRCODE_MALFORMED;
    }
}

const char *yard_cmd_name(yard_cmd_t cmd)
{
    switch (cmd) {
    case YARD_CMD_SUBMIT:
        return "SUBMIT";
    case YARD_CMD_RESULT:
        return "RESULT";
    case YARD_CMD_CANCEL:
        return "CANCEL";
    case YARD_CMD_READY:
        return "READY";
    case YARD_CMD_TASK:
        return "TASK";
    case YARD_CMD_HEARTBEAT:
        return "HEARTBEAT";
    case YARD_CMD_DISCONNECT:
        return "DISCONNECT";
    case YARD_CMD_ERROR:
        return "ERROR";
    case YARD_CMD_PUBLISH:
        return "PUBLISH";
    case YARD_CMD_PUBLISH_ACK:
        return "PUBLISH_ACK";
    case YARD_CMD_SUBSCRIBE:
        return "SUBSCRIBE";
    case YARD_CMD_CHUNK:
        return "CHUNK";
    case YARD_CMD_CREDIT:
        return "CREDIT";
    case YARD_CMD_STREAM_END:
        return "STREAM_END";
    }
    return "UNKNOWN";
}

void yard_header_make(uint8_t out[YARD_HEADER_SIZE], yard_role_t role,
                      yard_cmd_t cmd)
{
    out[0] = (uint8_t)YARD_MAGIC;
    out[1] = (uint8_t)role;
    out[2] = (uint8_t)YARD_PROTO_VERSION;
    out[3] = (uint8_t)cmd;
}

int yard_header_parse(const void *data, size_t len, yard_role_t *role,
                      yard_cmd_t *cmd)
{
    const uint8_t *h = data;
    if (!h || len != YARD_HEADER_SIZE || h[0] != (uint8_t)YARD_MAGIC)
        return YARD_E_HEADER;
    /*  Version before role: a later version may define new roles, and the
        peer needs to hear "bad_version" rather than "malformed". */
    if (h[2] != YARD_PROTO_VERSION)
        return YARD_E_VERSION;
    if (h[1] != YARD_ROLE_CLIENT && h[1] != YARD_ROLE_WORKER &&
        h[1] != YARD_ROLE_BROKER)
        return YARD_E_ROLE;
    if (role)
        *role = (yard_role_t)h[1];
    if (cmd)
        *cmd = (yard_cmd_t)h[3];
    return 0;
}

/*  Allowed body counts for one (role, command): min..max inclusive. A
    command absent from a role's table is unknown for that role. */
typedef struct {
    yard_cmd_t cmd;
    uint16_t min;
    uint16_t max;
} s_rule_t;

static const s_rule_t s_client_rules[] = {
    {YARD_CMD_SUBMIT, 1, YARD_MAX_BATCH},
    {YARD_CMD_CANCEL, 1, YARD_MAX_BATCH},
    {YARD_CMD_HEARTBEAT, 0, 0},
    {YARD_CMD_DISCONNECT, 0, 1},
    {YARD_CMD_PUBLISH, 1, YARD_MAX_BATCH},
    {YARD_CMD_SUBSCRIBE, 1, 1},
};

static const s_rule_t s_worker_rules[] = {
    {YARD_CMD_READY, 1, 1},
    {YARD_CMD_RESULT, 1, YARD_MAX_BATCH},
    {YARD_CMD_HEARTBEAT, 0, 1},
    {YARD_CMD_DISCONNECT, 0, 1},
    {YARD_CMD_PUBLISH, 1, YARD_MAX_BATCH},
};

static const s_rule_t s_broker_rules[] = {
    {YARD_CMD_RESULT, 1, YARD_MAX_BATCH},
    {YARD_CMD_TASK, 1, YARD_MAX_BATCH},
    {YARD_CMD_CANCEL, 1, YARD_MAX_BATCH},
    {YARD_CMD_HEARTBEAT, 0, 1},
    {YARD_CMD_DISCONNECT, 0, 1},
    {YARD_CMD_ERROR, 1, 1},
    {YARD_CMD_PUBLISH, 1, YARD_MAX_BATCH},
    {YARD_CMD_PUBLISH_ACK, 1, YARD_MAX_BATCH},
};

int yard_cmd_check(yard_role_t role, yard_cmd_t cmd, size_t bodies)
{
    const s_rule_t *rules;
    size_t nrules;
    switch (role) {
    case YARD_ROLE_CLIENT:
        rules = s_client_rules;
        nrules = sizeof s_client_rules / sizeof s_client_rules[0];
        break;
    case YARD_ROLE_WORKER:
        rules = s_worker_rules;
        nrules = sizeof s_worker_rules / sizeof s_worker_rules[0];
        break;
    case YARD_ROLE_BROKER:
        rules = s_broker_rules;
        nrules = sizeof s_broker_rules / sizeof s_broker_rules[0];
        break;
    default:
        return YARD_E_ROLE;
    }
    for (size_t i = 0; i < nrules; i++) {
        if (rules[i].cmd == cmd) {
            if (bodies < rules[i].min || bodies > rules[i].max)
                return YARD_E_FRAMES;
            return 0;
        }
    }
    /*  Reserved commands (streaming) land here too: a peer must answer
        them "unknown_command". */
    return YARD_E_UNKNOWN_CMD;
}
