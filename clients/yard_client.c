/*  yard_client.c — the client object: lifecycle, the socket and its
    reconnects, tasks (staging, sending, answering, cancelling) and the
    submit calls. The receive/timer pump is in yard_client_io.c, the wait
    family and map in yard_client_wait.c, publishing events in
    yard_client_events.c.

    Sending never blocks: a task is first "staged" (encoded, indexed, put at
    the tail of the in-flight list) and then "flushed" (handed to the socket
    with ZMQ_DONTWAIT, YARD_MAX_BATCH bodies per SUBMIT). Whatever the
    socket refuses stays unsent and goes out from the wait loop when the
    socket has room, so a slow or absent broker delays tasks, never loses
    them, and never blocks a call that promised not to wait. */
#include "yard_client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yard_clock.h"
#include "yard_hash.h"
#include "yard_log.h"

/* ---- Replies ----------------------------------------------------------- */

void yard_reply_destroy(yard_reply_t **reply_p)
{
    if (!reply_p || !*reply_p)
        return;
    /*  Every reply lives inside a yard_cl_done_t allocation. */
    yard_cl_done_t *done =
        (yard_cl_done_t *)((char *)*reply_p - offsetof(yard_cl_done_t, reply));
    free(done);
    *reply_p = NULL;
}

static void s_fifo_push(yard_cl_fifo_t *fifo, yard_cl_done_t *done)
{
    done->next = NULL;
    done->prev = fifo->tail;
    if (fifo->tail)
        fifo->tail->next = done;
    else
        fifo->head = done;
    fifo->tail = done;
    fifo->count++;
}

void yard_cl_fifo_unlink(yard_cl_fifo_t *fifo, yard_cl_done_t *done)
{
    if (done->prev)
        done->prev->next = done->next;
    else
        fifo->head = done->next;
    if (done->next)
        done->next->prev = done->prev;
    else
        fifo->tail = done->prev;
    done->prev = done->next = NULL;
    fifo->count--;
}

void yard_cl_done_take(yard_client_t *self, yard_cl_done_t *done)
{
    if (done->tag) {
        yard_cl_fifo_unlink(&self->map_ready, done);
        return;
    }
    yard_cl_fifo_unlink(&self->ready, done);
    yard_map_remove(self->done, done->hash, done);
}

static void s_fifo_free(yard_cl_fifo_t *fifo)
{
    while (fifo->head) {
        yard_cl_done_t *done = fifo->head;
        yard_cl_fifo_unlink(fifo, done);
        free(done);
    }
}

/* ---- Tasks ------------------------------------------------------------- */

uint64_t yard_cl_hash(const yard_client_t *self, const void *id, size_t len)
{
    return yard_hash64(id, len, self->hash_seed);
}

/*  The key looked up in the task and done maps: an id's bytes. */
typedef struct {
    const void *ptr; /*  id bytes                                        */
    size_t len;      /*  id length                                       */
} s_key_t;

static bool s_task_eq(const void *value, const void *key)
{
    const yard_cl_task_t *task = value;
    const s_key_t *k = key;
    return task->id_len == k->len && memcmp(task->data, k->ptr, k->len) == 0;
}

static bool s_done_eq(const void *value, const void *key)
{
    const yard_cl_done_t *done = value;
    const s_key_t *k = key;
    return strlen(done->reply.id) == k->len &&
           memcmp(done->reply.id, k->ptr, k->len) == 0;
}

yard_cl_task_t *yard_cl_task_find(const yard_client_t *self, const void *id,
                                  size_t len, uint64_t hash)
{
    s_key_t key = {id, len};
    return yard_map_get(self->tasks, hash, s_task_eq, &key);
}

yard_cl_done_t *yard_cl_done_find(const yard_client_t *self, const void *id,
                                  size_t len, uint64_t hash)
{
    s_key_t key = {id, len};
    return yard_map_get(self->done, hash, s_done_eq, &key);
}

/*  A task with room for `need` bytes of id + NUL + body, from the free
    list when it is small. */
static yard_cl_task_t *s_task_alloc(yard_client_t *self, size_t need)
{
    if (need <= YARD_CLIENT_SMALL_TASK && self->freelist) {
        yard_cl_task_t *task = self->freelist;
        self->freelist = task->next;
        self->freelist_len--;
        return task;
    }
    size_t capacity =
        need <= YARD_CLIENT_SMALL_TASK ? YARD_CLIENT_SMALL_TASK : need;
    yard_cl_task_t *task = malloc(sizeof(yard_cl_task_t) + capacity);
    if (task)
        task->capacity = capacity;
    return task;
}

static void s_task_free(yard_client_t *self, yard_cl_task_t *task)
{
    if (task->capacity == YARD_CLIENT_SMALL_TASK &&
        self->freelist_len < YARD_CLIENT_FREELIST_MAX) {
        task->next = self->freelist;
        self->freelist = task;
        self->freelist_len++;
    } else
        free(task);
}

void yard_cl_task_drop(yard_client_t *self, yard_cl_task_t *task)
{
    if (self->unsent == task)
        self->unsent = task->next;
    if (task->prev)
        task->prev->next = task->next;
    else
        self->head = task->next;
    if (task->next)
        task->next->prev = task->prev;
    else
        self->tail = task->prev;
    yard_map_remove(self->tasks, task->hash, task);
    yard_heap_remove(self->giveups, &task->giveup);
    self->in_flight--;
    if (task->tag)
        self->tagged--;
    s_task_free(self, task);
}

int yard_cl_pack_headers(msgpack_sbuffer *buf, const char *const *headers)
{
    size_t count = 0;
    for (const char *const *h = headers; h[0]; h += 2) {
        if (!h[1])
            return YARD_E_ARG; /*  a key without a value */
        size_t klen = strlen(h[0]), vlen = strlen(h[1]);
        if (klen == 0 || klen > YARD_MAX_HEADER_KEY ||
            vlen > YARD_MAX_HEADER_VALUE)
            return YARD_E_TOO_LARGE;
        if (++count > YARD_MAX_HEADERS)
            return YARD_E_TOO_LARGE;
    }
    msgpack_sbuffer_clear(buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, count);
    for (const char *const *h = headers; rc == 0 && h[0]; h += 2) {
        size_t klen = strlen(h[0]), vlen = strlen(h[1]);
        rc = msgpack_pack_str(&pk, klen);
        rc = rc ? rc : msgpack_pack_str_body(&pk, h[0], klen);
        rc = rc ? rc : msgpack_pack_str(&pk, vlen);
        rc = rc ? rc : msgpack_pack_str_body(&pk, h[1], vlen);
    }
    return rc == 0 ? 0 : YARD_E_NOMEM;
}

/*  Counts a NULL-terminated list (NULL: 0), at most max + 1. */
static size_t s_count_list(const char *const *list, size_t max)
{
    size_t n = 0;
    while (list && list[n] && n <= max)
        n++;
    return n;
}

/*  Packs a str array under name; every entry 1..128 bytes. */
static int s_pack_names(msgpack_packer *pk, const char *name,
                        const char *const *list, size_t n)
{
    int rc = msgpack_pack_str(pk, strlen(name));
    rc = rc ? rc : msgpack_pack_str_body(pk, name, strlen(name));
    rc = rc ? rc : msgpack_pack_array(pk, n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t len = strlen(list[i]);
        rc = msgpack_pack_str(pk, len);
        rc = rc ? rc : msgpack_pack_str_body(pk, list[i], len);
    }
    return rc;
}

/*  Appends the `cache` policy map of PROTOCOL.md 10b to buf. YARD_E_ARG
    for a policy the broker would refuse (too many names, a name of 0 or
    more than 128 bytes, key together with exclude, ttl out of range). */
static int s_pack_cache(msgpack_sbuffer *buf, const yard_cache_opts_t *c)
{
    const struct {
        const char *name;
        const char *const *list;
        size_t max;
    } lists[] = {
        {"tags", c->tags, YARD_CACHE_MAX_TAGS},
        {"key", c->key, YARD_CACHE_MAX_NAMES},
        {"exclude", c->exclude, YARD_CACHE_MAX_NAMES},
        {"headers", c->headers, YARD_CACHE_MAX_NAMES},
    };
    size_t counts[4], entries = c->ttl_ms ? 1 : 0;
    if (c->ttl_ms > YARD_CACHE_POLICY_MAX_TTL_MS || (c->key && c->exclude))
        return YARD_E_ARG;
    for (size_t i = 0; i < 4; i++) {
        counts[i] = s_count_list(lists[i].list, lists[i].max);
        if (counts[i] > lists[i].max)
            return YARD_E_ARG;
        for (size_t j = 0; j < counts[i]; j++) {
            size_t len = strlen(lists[i].list[j]);
            if (len == 0 || len > YARD_CACHE_MAX_NAME)
                return YARD_E_ARG;
        }
        entries += lists[i].list ? 1 : 0;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, entries);
    if (rc == 0 && c->ttl_ms) {
        rc = msgpack_pack_str(&pk, 6);
        rc = rc ? rc : msgpack_pack_str_body(&pk, "ttl_ms", 6);
        rc = rc ? rc : msgpack_pack_uint32(&pk, c->ttl_ms);
    }
    for (size_t i = 0; rc == 0 && i < 4; i++)
        if (lists[i].list)
            rc = s_pack_names(&pk, lists[i].name, lists[i].list, counts[i]);
    return rc == 0 ? 0 : YARD_E_NOMEM;
}

int yard_cl_resolve(msgpack_sbuffer *hdr_buf, const char *service,
                    const yard_submit_opts_t *opts, yard_cl_opts_t *out)
{
    static const yard_submit_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    if (!service)
        return YARD_E_ARG;
    memset(out, 0, sizeof(*out));
    out->id = opts->id;
    yard_submit_t *s = &out->submit;
    s->service = yard_bytes_str(service);
    s->timeout_ms =
        opts->timeout_ms ? opts->timeout_ms : YARD_DEFAULT_TIMEOUT_MS;
    s->retries = opts->retries;
    s->backoff_ms = opts->backoff_ms == YARD_BACKOFF_NONE ? 0
                    : opts->backoff_ms                    ? opts->backoff_ms
                                       : YARD_DEFAULT_BACKOFF_MS;
    s->priority = opts->priority;
    /*  Both maps go into hdr_buf, headers first; the views are taken once
        both are packed (packing may move the buffer). */
    msgpack_sbuffer_clear(hdr_buf);
    size_t hlen = 0;
    if (opts->headers && opts->headers[0]) {
        int rc = yard_cl_pack_headers(hdr_buf, opts->headers);
        if (rc)
            return rc;
        hlen = hdr_buf->size;
    }
    if (opts->cache) {
        int rc = s_pack_cache(hdr_buf, opts->cache);
        if (rc)
            return rc;
        s->cache.ptr = (const uint8_t *)hdr_buf->data + hlen;
        s->cache.len = (uint32_t)(hdr_buf->size - hlen);
    }
    if (hlen) {
        s->headers.ptr = (const uint8_t *)hdr_buf->data;
        s->headers.len = (uint32_t)hlen;
    }
    return 0;
}

size_t yard_cl_new_id(yard_client_t *self, char *buf)
{
    /*  Unique within this client's routing id, which is all the broker's
        de-duplication needs; a clash with a caller-chosen id is skipped. */
    static const char hex[] = "0123456789abcdef";
    size_t plen = strlen(self->id_prefix);
    memcpy(buf, self->id_prefix, plen);
    buf[plen] = '-';
    for (;;) {
        /*  "<prefix>-<counter in hex>", written by hand: snprintf was a
            visible share of a small task's client-side cost. */
        char digits[16];
        size_t nd = 0;
        uint64_t v = ++self->id_counter;
        do {
            digits[nd++] = hex[v & 15];
            v >>= 4;
        } while (v);
        size_t n = plen + 1;
        while (nd)
            buf[n++] = digits[--nd];
        buf[n] = '\0';
        if (!yard_cl_task_find(self, buf, n, yard_cl_hash(self, buf, n)))
            return n;
    }
}

int yard_cl_stage(yard_client_t *self, const yard_cl_opts_t *r, const char *id,
                  size_t id_len, const void *payload, size_t len, uint64_t tag,
                  size_t index, yard_cl_task_t **task_p)
{
    if (id_len == 0 || id_len > YARD_MAX_ID)
        return YARD_E_ARG;
    if (len > YARD_MAX_PAYLOAD)
        return YARD_E_TOO_LARGE;
    uint64_t hash = yard_cl_hash(self, id, id_len);
    if (yard_cl_task_find(self, id, id_len, hash))
        return YARD_E_ARG; /*  the broker would merge the two */

    yard_submit_t s = r->submit;
    s.id.ptr = (const uint8_t *)id;
    s.id.len = (uint32_t)id_len;
    s.payload.ptr = payload;
    s.payload.len = (uint32_t)len;
    msgpack_sbuffer_clear(&self->body_buf);
    int rc = yard_encode_submit(&self->body_buf, &s);
    if (rc)
        return rc;

    size_t body_len = self->body_buf.size;
    yard_cl_task_t *task = s_task_alloc(self, id_len + 1 + body_len);
    if (!task)
        return YARD_E_NOMEM;
    int64_t now = yard_clock_us();
    yard_heap_node_init(&task->giveup);
    task->hash = hash;
    task->submit_us = now;
    task->tag = tag;
    task->index = index;
    task->sent = false;
    task->cancel_sent = false;
    task->id_len = id_len;
    task->body_len = body_len;
    memcpy(task->data, id, id_len);
    task->data[id_len] = '\0';
    memcpy(task->data + id_len + 1, self->body_buf.data, body_len);

    int64_t giveup =
        now + ((int64_t)s.timeout_ms + YARD_CLIENT_GIVEUP_MS) * 1000;
    if (yard_map_put(self->tasks, hash, task) != 0) {
        s_task_free(self, task);
        return YARD_E_NOMEM;
    }
    if (yard_heap_push(self->giveups, &task->giveup, giveup) != 0) {
        yard_map_remove(self->tasks, hash, task);
        s_task_free(self, task);
        return YARD_E_NOMEM;
    }
    if (self->in_flight == 0) {
        /*  Silence is measured from when we start expecting an answer. */
        self->last_recv_us = now;
        self->probe_us = 0;
    }
    task->next = NULL;
    task->prev = self->tail;
    if (self->tail)
        self->tail->next = task;
    else
        self->head = task;
    self->tail = task;
    if (!self->unsent)
        self->unsent = task;
    self->in_flight++;
    if (tag)
        self->tagged++;
    if (task_p)
        *task_p = task;
    return 0;
}

void yard_cl_flush(yard_client_t *self)
{
    while (self->unsent) {
        size_t n = 0;
        yard_cl_task_t *task = self->unsent;
        for (; task && n < YARD_MAX_BATCH; task = task->next) {
            self->frames[n].data = task->data + task->id_len + 1;
            self->frames[n].len = task->body_len;
            n++;
        }
        if (yard_wire_send(self->socket, NULL, 0, YARD_ROLE_CLIENT,
                           YARD_CMD_SUBMIT, self->frames, n,
                           ZMQ_DONTWAIT) != 0) {
            if (errno != EAGAIN)
                yard_warn("client: SUBMIT send failed: %s",
                          zmq_strerror(errno));
            return; /*  retried from the wait loop */
        }
        for (yard_cl_task_t *t = self->unsent; t != task; t = t->next)
            t->sent = true;
        self->unsent = task;
    }
}

/*  Sends CANCEL for tasks[0..n), YARD_MAX_BATCH bodies per message, best
    effort (a full socket drops them: the broker's own deadline still
    ends those tasks). */
static void s_send_cancels(yard_client_t *self, yard_cl_task_t **tasks,
                           size_t n)
{
    size_t offsets[YARD_MAX_BATCH + 1];
    for (size_t start = 0; start < n; start += YARD_MAX_BATCH) {
        size_t count = n - start < YARD_MAX_BATCH ? n - start : YARD_MAX_BATCH;
        msgpack_sbuffer_clear(&self->body_buf);
        size_t kept = 0;
        offsets[0] = 0;
        for (size_t i = 0; i < count; i++) {
            yard_cl_task_t *task = tasks[start + i];
            yard_cancel_t cancel = {.id = {task->data, (uint32_t)task->id_len}};
            if (yard_encode_cancel(&self->body_buf, YARD_ROLE_CLIENT,
                                   &cancel) != 0)
                continue;
            offsets[++kept] = self->body_buf.size;
        }
        /*  Frames point into body_buf only now that it stopped growing. */
        for (size_t i = 0; i < kept; i++) {
            self->frames[i].data = self->body_buf.data + offsets[i];
            self->frames[i].len = offsets[i + 1] - offsets[i];
        }
        if (kept && yard_wire_send(self->socket, NULL, 0, YARD_ROLE_CLIENT,
                                   YARD_CMD_CANCEL, self->frames, kept,
                                   ZMQ_DONTWAIT) != 0)
            yard_debug("client: CANCEL not sent: %s", zmq_strerror(errno));
    }
}

int yard_cl_answer(yard_client_t *self, yard_cl_task_t *task,
                   const yard_result_t *result, bool local)
{
    size_t id_len = task->id_len;
    size_t payload_len = result->payload.len;
    size_t error_len = result->error.len;
    bool has_error = result->error.ptr != NULL;
    size_t size = sizeof(yard_cl_done_t) + id_len + 1 + payload_len + 1 +
                  (has_error ? error_len + 1 : 0);
    yard_cl_done_t *done = malloc(size);
    if (!done)
        return YARD_E_NOMEM;
    char *p = (char *)(done + 1);
    yard_reply_t *reply = &done->reply;
    memset(reply, 0, sizeof(*reply));
    reply->id = p;
    memcpy(p, task->data, id_len + 1);
    p += id_len + 1;
    reply->payload = (uint8_t *)p;
    if (payload_len)
        memcpy(p, result->payload.ptr, payload_len);
    p[payload_len] = '\0';
    reply->payload_len = payload_len;
    p += payload_len + 1;
    if (has_error) {
        reply->error = p;
        if (error_len)
            memcpy(p, result->error.ptr, error_len);
        p[error_len] = '\0';
    }
    reply->status = result->status;
    reply->cached = result->cached;
    reply->local = local;
    reply->attempts = result->attempts;
    reply->queue_us = result->queue_us;
    reply->run_us = result->run_us;
    reply->total_us = result->total_us;
    reply->retry_after_ms = result->retry_after_ms;
    int64_t elapsed = yard_clock_us() - task->submit_us;
    reply->latency_us = elapsed > 0 ? (uint64_t)elapsed : 0;

    done->hash = task->hash;
    done->tag = task->tag;
    done->index = task->index;
    if (task->tag)
        s_fifo_push(&self->map_ready, done);
    else {
        if (yard_map_put(self->done, done->hash, done) != 0) {
            free(done);
            return YARD_E_NOMEM;
        }
        s_fifo_push(&self->ready, done);
    }
    yard_cl_task_drop(self, task);
    return 0;
}

int yard_cl_answer_status(yard_client_t *self, yard_cl_task_t *task,
                          yard_status_t status, const char *error, bool local)
{
    yard_result_t result;
    memset(&result, 0, sizeof(result));
    result.status = status;
    if (error)
        result.error = yard_bytes_str(error);
    return yard_cl_answer(self, task, &result, local);
}

void yard_cl_abandon_tag(yard_client_t *self, uint64_t tag)
{
    yard_cl_task_t *batch[YARD_MAX_BATCH];
    size_t n = 0;
    yard_cl_task_t *task = self->head;
    while (task) {
        yard_cl_task_t *next = task->next;
        if (task->tag == tag) {
            if (task->sent)
                batch[n++] = task;
            else
                yard_cl_task_drop(self, task);
            if (n == YARD_MAX_BATCH) {
                s_send_cancels(self, batch, n);
                for (size_t i = 0; i < n; i++)
                    yard_cl_task_drop(self, batch[i]);
                n = 0;
            }
        }
        task = next;
    }
    s_send_cancels(self, batch, n);
    for (size_t i = 0; i < n; i++)
        yard_cl_task_drop(self, batch[i]);
    /*  Replies of the map that were already buffered. */
    if (tag)
        s_fifo_free(&self->map_ready);
}

void yard_cl_abandon(yard_client_t *self, yard_cl_task_t *task)
{
    if (task->sent)
        s_send_cancels(self, &task, 1);
    yard_cl_task_drop(self, task);
}

/* ---- Socket ------------------------------------------------------------ */

/*  Stops and closes a socket's monitor (NULL-safe). */
static void s_monitor_close(void *socket, void **monitor_p)
{
    if (*monitor_p) {
        zmq_socket_monitor(socket, NULL, 0);
        zmq_close(*monitor_p);
        *monitor_p = NULL;
    }
}

/*  A DEALER set up for Yard with our routing id, not yet connected, and a
    PAIR receiving its connect/disconnect events in *monitor_p (NULL if
    the monitor could not be set up: we then rely on heartbeats alone). */
static void *s_socket_new(yard_client_t *self, void **monitor_p)
{
    *monitor_p = NULL;
    void *socket = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!socket)
        return NULL;
    if (yard_wire_setup(socket) != 0 ||
        zmq_setsockopt(socket, ZMQ_ROUTING_ID, self->routing_id,
                       sizeof(self->routing_id)) != 0) {
        zmq_close(socket);
        return NULL;
    }
    char addr[64];
    snprintf(addr, sizeof(addr), "inproc://yard-client-%p-%u", (void *)self,
             ++self->monitor_seq);
    void *monitor = NULL;
    if (zmq_socket_monitor(socket, addr,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) == 0 &&
        (monitor = zmq_socket(self->ctx, ZMQ_PAIR)) != NULL) {
        int linger = 0;
        zmq_setsockopt(monitor, ZMQ_LINGER, &linger, sizeof(linger));
        if (zmq_connect(monitor, addr) == 0)
            *monitor_p = monitor;
        else
            s_monitor_close(socket, &monitor);
    }
    if (!*monitor_p)
        yard_debug("client: no socket monitor (%s)", zmq_strerror(errno));
    return socket;
}

void yard_cl_resend_all(yard_client_t *self)
{
    self->last_recv_us = yard_clock_us();
    self->probe_us = 0;
    for (yard_cl_task_t *task = self->head; task; task = task->next)
        task->sent = false;
    self->unsent = self->head;
    yard_cl_flush(self);

    /*  A CANCEL the old connection may have lost must follow its SUBMIT. */
    yard_cl_task_t *batch[YARD_MAX_BATCH];
    size_t n = 0;
    for (yard_cl_task_t *task = self->head; task; task = task->next) {
        if (!task->cancel_sent || !task->sent)
            continue;
        batch[n++] = task;
        if (n == YARD_MAX_BATCH) {
            s_send_cancels(self, batch, n);
            n = 0;
        }
    }
    s_send_cancels(self, batch, n);
}

int yard_cl_reconnect(yard_client_t *self, const char *why)
{
    /*  Open the new socket before closing the old one, so a failure (out
        of file descriptors) leaves us with a socket; connect only after
        the close, so the broker is less likely to see both connections
        holding one routing id at once. */
    void *monitor;
    void *socket = s_socket_new(self, &monitor);
    if (!socket) {
        yard_warn("client: reconnect failed: %s", zmq_strerror(errno));
        return YARD_E_IO;
    }
    s_monitor_close(self->socket, &self->monitor);
    zmq_close(self->socket);
    self->socket = socket;
    self->monitor = monitor;
    self->link_lost = false;
    if (zmq_connect(socket, self->endpoint) != 0) {
        yard_warn("client: reconnect to %s failed: %s", self->endpoint,
                  zmq_strerror(errno));
        return YARD_E_IO;
    }
    yard_info("client: %s; reconnected to %s, re-sending %zu task(s)", why,
              self->endpoint, self->in_flight);
    yard_cl_resend_all(self);
    return 0;
}

/* ---- Lifecycle --------------------------------------------------------- */

yard_client_t *yard_client_new(const char *endpoint)
{
    if (!endpoint || !*endpoint) {
        errno = EINVAL;
        return NULL;
    }
    yard_client_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    yard_rand_seed_os(&self->rng);
    self->hash_seed = yard_rand_next(&self->rng);
    yard_rand_bytes(&self->rng, self->routing_id, sizeof(self->routing_id));
    /*  ZeroMQ reserves routing ids that start with a zero byte. */
    if (self->routing_id[0] == 0)
        self->routing_id[0] = 1;
    snprintf(self->id_prefix, sizeof(self->id_prefix), "%08" PRIx32,
             (uint32_t)yard_rand_next(&self->rng));
    msgpack_sbuffer_init(&self->body_buf);
    msgpack_sbuffer_init(&self->hdr_buf);
    msgpack_sbuffer_init(&self->map_hdr_buf);
    msgpack_sbuffer_init(&self->ev_buf);
    msgpack_sbuffer_init(&self->meta_buf);
    yard_wire_msg_init(&self->msg);
    self->endpoint = strdup(endpoint);
    self->tasks = yard_map_new(0);
    self->done = yard_map_new(0);
    self->giveups = yard_heap_new();
    self->decoder = yard_decoder_new();
    self->ctx = zmq_ctx_new();
    if (!self->endpoint || !self->tasks || !self->done || !self->giveups ||
        !self->decoder || !self->ctx)
        goto fail;
    self->socket = s_socket_new(self, &self->monitor);
    if (!self->socket)
        goto fail;
    if (zmq_connect(self->socket, endpoint) != 0)
        goto fail;
    return self;
fail:;
    int saved = errno;
    yard_client_destroy(&self);
    errno = saved;
    return NULL;
}

void yard_client_destroy(yard_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    yard_client_t *self = *self_p;
    while (self->head)
        yard_cl_task_drop(self, self->head);
    while (self->freelist) {
        yard_cl_task_t *task = self->freelist;
        self->freelist = task->next;
        free(task);
    }
    s_fifo_free(&self->ready);
    s_fifo_free(&self->map_ready);
    yard_map_destroy(&self->tasks);
    yard_map_destroy(&self->done);
    yard_heap_destroy(&self->giveups);
    yard_decoder_destroy(&self->decoder);
    yard_wire_msg_close(&self->msg);
    msgpack_sbuffer_destroy(&self->body_buf);
    msgpack_sbuffer_destroy(&self->hdr_buf);
    msgpack_sbuffer_destroy(&self->map_hdr_buf);
    msgpack_sbuffer_destroy(&self->ev_buf);
    msgpack_sbuffer_destroy(&self->meta_buf);
    if (self->socket) {
        /*  Give what the socket already holds (a CANCEL sent just before,
            typically) a moment to leave; yard_wire_setup's linger is 0. */
        int linger = YARD_CLIENT_LINGER_MS;
        zmq_setsockopt(self->socket, ZMQ_LINGER, &linger, sizeof(linger));
        s_monitor_close(self->socket, &self->monitor);
        zmq_close(self->socket);
    }
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

/* ---- Submitting -------------------------------------------------------- */

int yard_client_submit(yard_client_t *self, const char *service,
                       const void *payload, size_t len,
                       const yard_submit_opts_t *opts, char *id_out,
                       size_t id_cap)
{
    if (!self || (!payload && len))
        return YARD_E_ARG;
    yard_cl_opts_t r;
    int rc = yard_cl_resolve(&self->hdr_buf, service, opts, &r);
    if (rc)
        return rc;
    char idbuf[YARD_CLIENT_ID_MAX];
    const char *id = r.id;
    size_t id_len;
    if (id) {
        id_len = strlen(id);
        if (id_len == 0 || id_len > YARD_MAX_ID)
            return YARD_E_ARG;
    } else {
        id_len = yard_cl_new_id(self, idbuf);
        id = idbuf;
    }
    if (id_out && id_cap < id_len + 1)
        return YARD_E_ARG;
    rc = yard_cl_stage(self, &r, id, id_len, payload, len, 0, 0, NULL);
    if (rc)
        return rc;
    if (id_out)
        memcpy(id_out, id, id_len + 1);
    yard_cl_flush(self);
    return 0;
}

int yard_client_submit_batch(yard_client_t *self, const char *service,
                             const yard_frame_t *payloads, size_t n,
                             const yard_submit_opts_t *opts, char **ids_out)
{
    if (!self || (!payloads && n) || (opts && opts->id))
        return YARD_E_ARG;
    yard_cl_opts_t r;
    int rc = yard_cl_resolve(&self->hdr_buf, service, opts, &r);
    if (rc)
        return rc;
    if (ids_out)
        memset(ids_out, 0, n * sizeof(*ids_out));
    /*  The new tasks go at the tail: remember where they start so a
        failure can take exactly them back. */
    yard_cl_task_t *before = self->tail;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!payloads[i].data && payloads[i].len) {
            rc = YARD_E_ARG;
            break;
        }
        char id[YARD_CLIENT_ID_MAX];
        size_t id_len = yard_cl_new_id(self, id);
        rc = yard_cl_stage(self, &r, id, id_len, payloads[i].data,
                           payloads[i].len, 0, 0, NULL);
        if (rc == 0 && ids_out && !(ids_out[i] = strdup(id)))
            rc = YARD_E_NOMEM;
    }
    if (rc) {
        yard_cl_task_t *first = before ? before->next : self->head;
        while (first) {
            yard_cl_task_t *next = first->next;
            yard_cl_task_drop(self, first);
            first = next;
        }
        for (size_t i = 0; ids_out && i < n; i++) {
            free(ids_out[i]);
            ids_out[i] = NULL;
        }
        return rc;
    }
    yard_cl_flush(self);
    return 0;
}

int yard_client_cancel(yard_client_t *self, const char *id)
{
    if (!self || !id)
        return YARD_E_ARG;
    size_t len = strlen(id);
    yard_cl_task_t *task =
        yard_cl_task_find(self, id, len, yard_cl_hash(self, id, len));
    if (!task)
        return YARD_E_NOTFOUND;
    if (!task->sent)
        return yard_cl_answer_status(self, task, YARD_CANCELLED,
                                     "cancelled before it was sent", true);
    if (task->cancel_sent)
        return 0;
    yard_cancel_t cancel = {.id = {task->data, (uint32_t)task->id_len}};
    msgpack_sbuffer_clear(&self->body_buf);
    int rc = yard_encode_cancel(&self->body_buf, YARD_ROLE_CLIENT, &cancel);
    if (rc)
        return rc;
    yard_frame_t frame = {self->body_buf.data, self->body_buf.size};
    if (yard_wire_send(self->socket, NULL, 0, YARD_ROLE_CLIENT, YARD_CMD_CANCEL,
                       &frame, 1, ZMQ_DONTWAIT) != 0)
        return YARD_E_IO;
    task->cancel_sent = true;
    return 0;
}

size_t yard_client_outstanding(const yard_client_t *self)
{
    return self ? self->in_flight - self->tagged + self->ready.count : 0;
}

bool yard_client_broker_seen(const yard_client_t *self)
{
    return self && self->broker_seen;
}
