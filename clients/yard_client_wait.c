/*  yard_client_wait.c — the calls that wait: wait, wait_id, wait_all, call,
    map and stats_json. Each is a loop of "is what I want buffered? if
    not, pump once" (yard_client_io.c) bounded by a monotonic deadline. */
#include "yard_client_internal.h"

#include <stdlib.h>
#include <string.h>

#include "yard_clock.h"

/*  True when a wait that started with deadline_us must stop: the deadline
    passed after at least one pump (so timeout 0 still reads the socket). */
static bool s_expired(int64_t deadline_us, bool pumped)
{
    return pumped && deadline_us >= 0 && yard_clock_us() >= deadline_us;
}

int yard_client_wait(yard_client_t *self, int timeout_ms, yard_reply_t **reply)
{
    if (!self || !reply)
        return YARD_E_ARG;
    *reply = NULL;
    int64_t deadline = yard_cl_deadline(timeout_ms);
    for (bool pumped = false;; pumped = true) {
        yard_cl_done_t *done = self->ready.head;
        if (done) {
            yard_cl_done_take(self, done);
            *reply = &done->reply;
            return 0;
        }
        if (self->in_flight == self->tagged)
            return YARD_E_NOTFOUND;
        if (s_expired(deadline, pumped))
            return YARD_E_TIMEOUT;
        int rc = yard_cl_pump(self, deadline);
        if (rc)
            return rc;
    }
}

/*  wait_id with a length, a hash and an absolute deadline. */
static int s_wait_id(yard_client_t *self, const char *id, size_t len,
                     uint64_t hash, int64_t deadline, yard_reply_t **reply)
{
    for (bool pumped = false;; pumped = true) {
        yard_cl_done_t *done = yard_cl_done_find(self, id, len, hash);
        if (done) {
            yard_cl_done_take(self, done);
            *reply = &done->reply;
            return 0;
        }
        if (!yard_cl_task_find(self, id, len, hash))
            return YARD_E_NOTFOUND;
        if (s_expired(deadline, pumped))
            return YARD_E_TIMEOUT;
        int rc = yard_cl_pump(self, deadline);
        if (rc)
            return rc;
    }
}

int yard_client_wait_id(yard_client_t *self, const char *id, int timeout_ms,
                        yard_reply_t **reply)
{
    if (!self || !id || !reply)
        return YARD_E_ARG;
    *reply = NULL;
    size_t len = strlen(id);
    return s_wait_id(self, id, len, yard_cl_hash(self, id, len),
                     yard_cl_deadline(timeout_ms), reply);
}

int yard_client_wait_all(yard_client_t *self, const char *const *ids, size_t n,
                         int timeout_ms, yard_reply_t **replies)
{
    if (!self || (n && (!ids || !replies)))
        return YARD_E_ARG;
    for (size_t i = 0; i < n; i++) {
        if (!ids[i])
            return YARD_E_ARG;
        replies[i] = NULL;
    }
    /*  Refuse unknown ids before taking anything. */
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(ids[i]);
        uint64_t hash = yard_cl_hash(self, ids[i], len);
        if (!yard_cl_done_find(self, ids[i], len, hash) &&
            !yard_cl_task_find(self, ids[i], len, hash))
            return YARD_E_NOTFOUND;
    }
    /*  One id at a time: replies for later ids that arrive meanwhile are
        buffered and found in O(1) when their turn comes. */
    int64_t deadline = yard_cl_deadline(timeout_ms);
    int result = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(ids[i]);
        uint64_t hash = yard_cl_hash(self, ids[i], len);
        int rc;
        if (result == YARD_E_TIMEOUT) {
            /*  Out of time: collect only what is already here. */
            yard_cl_done_t *done = yard_cl_done_find(self, ids[i], len, hash);
            if (done) {
                yard_cl_done_take(self, done);
                replies[i] = &done->reply;
            }
            continue;
        }
        rc = s_wait_id(self, ids[i], len, hash, deadline, &replies[i]);
        if (rc == YARD_E_TIMEOUT || rc == YARD_E_NOTFOUND)
            /*  NOTFOUND here means an id repeated in ids. */
            result = result ? result : rc;
        else if (rc)
            return rc;
    }
    return result;
}

int yard_client_call(yard_client_t *self, const char *service,
                     const void *payload, size_t len,
                     const yard_submit_opts_t *opts, yard_reply_t **reply)
{
    if (!self || !reply)
        return YARD_E_ARG;
    *reply = NULL;
    char id[YARD_CLIENT_ID_MAX];
    int rc =
        yard_client_submit(self, service, payload, len, opts, id, sizeof(id));
    if (rc)
        return rc;
    size_t id_len = strlen(id);
    uint64_t hash = yard_cl_hash(self, id, id_len);
    /*  No deadline: the local give-up guarantees a reply. */
    rc = s_wait_id(self, id, id_len, hash, -1, reply);
    if (rc) {
        /*  Interrupted: nobody will ever ask for this task again. */
        yard_cl_task_t *task = yard_cl_task_find(self, id, id_len, hash);
        if (task)
            yard_cl_abandon(self, task);
    }
    return rc;
}

/*  One map call's progress. */
typedef struct {
    const yard_cl_opts_t *opts;   /*  resolved options, shared by tasks  */
    const yard_frame_t *payloads; /*  the caller's payloads               */
    size_t n;                     /*  how many                            */
    size_t window;                /*  most tasks in flight at once        */
    uint64_t tag;                 /*  marks this call's tasks             */
    size_t submitted;             /*  payloads staged so far              */
    size_t delivered;             /*  replies handed to the callback      */
} s_map_t;

/*  Stages tasks until the window is full. A payload the encoder refuses
    gets a local "invalid" reply so the run goes on. */
static int s_map_refill(yard_client_t *self, s_map_t *m)
{
    while (m->submitted < m->n && m->submitted - m->delivered < m->window) {
        size_t index = m->submitted;
        const yard_frame_t *p = &m->payloads[index];
        char id[YARD_CLIENT_ID_MAX];
        size_t id_len = yard_cl_new_id(self, id);
        yard_cl_task_t *task;
        int rc = YARD_E_ARG;
        if (p->data || p->len == 0)
            rc = yard_cl_stage(self, m->opts, id, id_len, p->data, p->len,
                               m->tag, index, &task);
        if (rc == YARD_E_NOMEM)
            return rc;
        if (rc) {
            /*  Stage a task with an empty payload only to carry the local
                reply (never sent: answered right away). */
            const char *why = yard_strerror(rc);
            int rc2 = yard_cl_stage(self, m->opts, id, id_len, NULL, 0, m->tag,
                                    index, &task);
            if (rc2)
                return rc2;
            rc2 = yard_cl_answer_status(self, task, YARD_INVALID, why, true);
            if (rc2)
                return rc2;
        }
        m->submitted++;
    }
    yard_cl_flush(self);
    return 0;
}

int yard_client_map(yard_client_t *self, const char *service,
                    const yard_frame_t *payloads, size_t n, size_t window,
                    const yard_submit_opts_t *opts, yard_client_map_fn *fn,
                    void *arg)
{
    if (!self || !fn || (!payloads && n) || (opts && opts->id) || self->in_map)
        return YARD_E_ARG;
    /*  Headers go to a buffer of the map's own, so a callback that
        submits other tasks cannot overwrite them. */
    yard_cl_opts_t r;
    int rc = yard_cl_resolve(&self->map_hdr_buf, service, opts, &r);
    if (rc)
        return rc;
    s_map_t m = {.opts = &r,
                 .payloads = payloads,
                 .n = n,
                 .window = window ? window : YARD_MAX_BATCH,
                 .tag = ++self->next_tag};
    self->in_map = true;
    while (m.delivered < n) {
        rc = s_map_refill(self, &m);
        if (rc)
            break;
        bool progress = false;
        yard_cl_done_t *done;
        while (rc == 0 && (done = self->map_ready.head)) {
            yard_cl_done_take(self, done);
            m.delivered++;
            progress = true;
            rc = fn(done->index, &done->reply, arg);
        }
        if (rc || m.delivered == n)
            break;
        if (!progress && (rc = yard_cl_pump(self, -1)) != 0)
            break;
    }
    if (rc)
        yard_cl_abandon_tag(self, m.tag);
    self->in_map = false;
    return rc;
}

int yard_client_stats_json(yard_client_t *self, int timeout_ms, char **json_out)
{
    return yard_client_admin_json(self, "stats", timeout_ms, json_out);
}

int yard_client_admin_json(yard_client_t *self, const char *command,
                           int timeout_ms, char **json_out)
{
    if (!self || !json_out || !command || timeout_ms <= 0)
        return YARD_E_ARG;
    *json_out = NULL;
    yard_submit_opts_t opts = {.timeout_ms = (uint32_t)timeout_ms};
    char id[YARD_CLIENT_ID_MAX];
    int rc = yard_client_submit(self, YARD_ADMIN_SERVICE, command,
                                strlen(command), &opts, id, sizeof(id));
    if (rc)
        return rc;
    size_t len = strlen(id);
    uint64_t hash = yard_cl_hash(self, id, len);
    yard_reply_t *reply = NULL;
    rc = s_wait_id(self, id, len, hash, yard_cl_deadline(timeout_ms), &reply);
    if (rc) {
        yard_cl_task_t *task = yard_cl_task_find(self, id, len, hash);
        if (task)
            yard_cl_abandon(self, task);
        return rc;
    }
    if (reply->status == YARD_OK) {
        *json_out = malloc(reply->payload_len + 1);
        if (*json_out)
            memcpy(*json_out, reply->payload, reply->payload_len + 1);
        else
            rc = YARD_E_NOMEM;
    } else
        rc = reply->status == YARD_TIMEOUT ? YARD_E_TIMEOUT : YARD_E_IO;
    yard_reply_destroy(&reply);
    return rc;
}
