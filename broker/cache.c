/*  cache.c — response caching in the broker (PROTOCOL.md 10b).

    A task whose SUBMIT carries a cache policy gets a key (SHA-256, see
    proto/yard_cachekey.c). The broker keeps one *flight* per key in use:

      * the first task with the key is the flight's leader: it is parked
        while the broker asks yard.cache for the key, as a client of its own
        (a "get" task of priority 9 with a short deadline);
      * a hit answers the leader and every task that joined meanwhile,
        cached: true, and no worker runs;
      * a miss (or no answer in time) sends the leader to its queue; tasks
        with the same key that arrive while it runs join the flight
        instead of running too (single flight);
      * when the leader succeeds its result is stored ("set") and handed to
        everyone waiting; when it fails they run on their own.

    Everything here is asynchronous: the broker never waits for the cache.
    With no yard.cache worker registered, policies are ignored and tasks run
    as usual (counted in cache_bypassed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "broker.h"
#include "yard_hash.h"
#include "yard_log.h"

#define S_CACHE_SERVICE "yard.cache"
#define S_LOOKUP_MS 500 /*  a lookup slower than this counts as a miss */
#define S_GET_PREFIX "rc-get:"
#define S_SET_PREFIX "rc-set:"

struct broker_flight {
    uint8_t key[YARD_CACHE_KEY_BYTES];
    char name[3 + 2 * YARD_CACHE_KEY_BYTES + 1]; /*  "rc:<hex>"          */
    uint64_t hash;
    broker_task_t *leader;
    broker_task_t **waiting; /*  tasks with the same key, parked          */
    size_t nwaiting, cap;
    bool lookup_pending;  /*  the "get" is out                            */
    uint32_t ttl_ms;      /*  from the leader's policy                    */
    msgpack_sbuffer tags; /*  the leader's tags, an encoded str array     */
};

static bool s_flight_eq(const void *value, const void *key)
{
    return memcmp(((const broker_flight_t *)value)->key, key,
                  YARD_CACHE_KEY_BYTES) == 0;
}

int cache_init(broker_t *self)
{
    self->flights = yard_map_new(64);
    broker_client_t *c = calloc(1, sizeof(*c));
    if (!self->flights || !c) {
        free(c);
        return -1;
    }
    static const char id[] = "yard-broker-cache";
    memcpy(c->identity, id, sizeof(id) - 1);
    c->identity_len = sizeof(id) - 1;
    c->internal = true;
    msgpack_sbuffer_init(&c->outbox);
    self->cache_client = c;
    return 0;
}

static void s_flight_free(broker_flight_t *f)
{
    free(f->waiting);
    msgpack_sbuffer_destroy(&f->tags);
    free(f);
}

static void s_free_flight(void *value, void *arg)
{
    (void)arg;
    s_flight_free(value);
}

void cache_destroy(broker_t *self)
{
    if (self->flights)
        yard_map_each(self->flights, s_free_flight, NULL);
    yard_map_destroy(&self->flights);
    client_free(self->cache_client);
    self->cache_client = NULL;
}

/*  Submits one of the broker's own requests to yard.cache. false when it
    cannot go out now (no cache worker, breaker open, queue full). */
static bool s_request(broker_t *self, const char *prefix,
                      const msgpack_sbuffer *body, uint32_t timeout_ms,
                      int64_t now)
{
    broker_service_t *svc = service_lookup(
        self, (const uint8_t *)S_CACHE_SERVICE, sizeof(S_CACHE_SERVICE) - 1);
    if (!svc || svc->nworkers == 0 ||
        svc->queued + svc->delayed >= self->config.max_queue)
        return false;
    uint64_t gen;
    uint32_t retry;
    if (!breaker_admit(self, svc, now, &gen, &retry))
        return false;
    char id[96];
    int n = snprintf(id, sizeof(id), "%s%llx", prefix,
                     (unsigned long long)++self->cache_seq);
    yard_submit_t sub;
    memset(&sub, 0, sizeof(sub));
    sub.id.ptr = (const uint8_t *)id;
    sub.id.len = (uint32_t)n;
    sub.service = yard_bytes_str(S_CACHE_SERVICE);
    sub.payload.ptr = (const uint8_t *)body->data;
    sub.payload.len = (uint32_t)body->size;
    sub.priority = YARD_MAX_PRIORITY;
    broker_client_t *c = self->cache_client;
    broker_task_t *task = task_new(&sub);
    uint64_t id_hash = yard_hash64_pair(c->identity, c->identity_len,
                                        sub.id.ptr, sub.id.len, self->seed);
    if (!task || yard_map_put(self->tasks_by_id, id_hash, task) != 0) {
        task_free(task);
        return false;
    }
    task->client = c;
    task->service = svc;
    task->id_hash = id_hash;
    task->breaker_gen = gen;
    task->accepted_us = now;
    task->ready_us = now;
    task->deadline_us = now + (int64_t)timeout_ms * 1000;
    yard_heap_push(self->timers, &task->timer, task->deadline_us);
    c->tasks++;
    svc->counters.submitted++;
    service_enqueue(svc, task, false);
    broker_want_dispatch(self, svc);
    return true;
}

/*  The flight's tasks leave it to run (or to be answered) on their own. */
static void s_unpark(broker_t *self, broker_task_t *task)
{
    task->flight = NULL;
    if (task->state == TASK_PARKED) {
        task->service->parked--;
        service_enqueue(task->service, task, false);
        broker_want_dispatch(self, task->service);
    }
}

static void s_flight_end(broker_t *self, broker_flight_t *f)
{
    yard_map_remove(self->flights, f->hash, f);
    s_flight_free(f);
}

/*  The leader runs (a miss, or no answer from the cache). */
static void s_run_leader(broker_t *self, broker_flight_t *f)
{
    broker_task_t *leader = f->leader;
    if (leader->state == TASK_PARKED) {
        leader->service->parked--;
        service_enqueue(leader->service, leader, false);
        broker_want_dispatch(self, leader->service);
    }
}

/*  Answers a parked task from a cached (or coalesced) result. */
static void s_answer_cached(broker_t *self, broker_task_t *task,
                            const void *value, size_t len, bool coalesced)
{
    task->flight = NULL;
    if (task->state == TASK_PARKED)
        task->service->parked--;
    if (coalesced)
        task->service->counters.coalesced++;
    else
        task->service->counters.cache_hits++;
    task->service->counters.completed++;
    broker_answer_cached(self, task, value, len);
}

bool cache_park(broker_t *self, broker_task_t *task,
                const uint8_t key[YARD_CACHE_KEY_BYTES],
                const yard_cache_policy_t *policy, int64_t now)
{
    uint64_t hash = yard_hash64(key, YARD_CACHE_KEY_BYTES, self->seed);
    broker_flight_t *f = yard_map_get(self->flights, hash, s_flight_eq, key);
    if (f) {
        //  The same request is being looked up or run: wait for it.
        if (f->nwaiting == f->cap) {
            size_t cap = f->cap ? f->cap * 2 : 4;
            broker_task_t **grown = realloc(f->waiting, cap * sizeof(*grown));
            if (!grown)
                return false; //  run it on its own
            f->waiting = grown;
            f->cap = cap;
        }
        f->waiting[f->nwaiting++] = task;
        task->flight = f;
        task->state = TASK_PARKED;
        task->service->parked++;
        return true;
    }
    f = calloc(1, sizeof(*f));
    if (!f)
        return false;
    memcpy(f->key, key, YARD_CACHE_KEY_BYTES);
    memcpy(f->name, "rc:", 3);
    yard_cache_key_hex(key, f->name + 3);
    f->hash = hash;
    f->leader = task;
    f->ttl_ms = policy->ttl_ms;
    msgpack_sbuffer_init(&f->tags);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f->tags, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, policy->ntags);
    for (size_t i = 0; i < policy->ntags; i++)
        msgpack_pack_str_with_body(&pk, policy->tags[i].ptr,
                                   policy->tags[i].len);
    if (yard_map_put(self->flights, hash, f) != 0) {
        s_flight_free(f);
        return false;
    }
    task->flight = f;
    //  Ask the cache; the leader waits for the answer.
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, "get", 3);
    msgpack_pack_str_with_body(&pk, "key", 3);
    msgpack_pack_str_with_body(&pk, f->name, strlen(f->name));
    char prefix[96];
    snprintf(prefix, sizeof(prefix), S_GET_PREFIX "%s:", f->name + 3);
    f->lookup_pending = s_request(self, prefix, &body, S_LOOKUP_MS, now);
    msgpack_sbuffer_destroy(&body);
    if (!f->lookup_pending) {
        self->cache_bypassed++;
        return false; //  leader queues as usual; later ones still join
    }
    task->state = TASK_PARKED;
    task->service->parked++;
    return true;
}

/*  Finds hit and value in a yard.cache "get" answer. */
static bool s_parse_hit(const yard_bytes_t *payload, const uint8_t **value,
                        size_t *len)
{
    if (payload->len == 0 ||
        yard_msgpack_check(payload->ptr, payload->len) != 0)
        return false;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    bool hit = false;
    if (msgpack_unpack_next(&u, (const char *)payload->ptr, payload->len,
                            NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        bool got_hit = false, got_value = false;
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            const msgpack_object *k = &u.data.via.map.ptr[i].key;
            const msgpack_object *v = &u.data.via.map.ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR)
                continue;
            if (k->via.str.size == 3 && memcmp(k->via.str.ptr, "hit", 3) == 0)
                got_hit = v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
            else if (k->via.str.size == 5 &&
                     memcmp(k->via.str.ptr, "value", 5) == 0) {
                if (v->type == MSGPACK_OBJECT_BIN) {
                    *value = (const uint8_t *)v->via.bin.ptr;
                    *len = v->via.bin.size;
                    got_value = true;
                } else if (v->type == MSGPACK_OBJECT_STR) {
                    *value = (const uint8_t *)v->via.str.ptr;
                    *len = v->via.str.size;
                    got_value = true;
                }
            }
        }
        hit = got_hit && got_value;
    }
    //  The value points into payload (msgpack-c refers to str/bin in
    //  place), so it outlives u.
    msgpack_unpacked_destroy(&u);
    return hit;
}

void cache_on_reply(broker_t *self, const yard_result_t *result, int64_t now)
{
    (void)now;
    size_t plen = sizeof(S_GET_PREFIX) - 1;
    if (result->id.len < plen + 2 * YARD_CACHE_KEY_BYTES ||
        memcmp(result->id.ptr, S_GET_PREFIX, plen) != 0)
        return; //  a "set": nothing to do
    uint8_t key[YARD_CACHE_KEY_BYTES];
    size_t got = 0;
    if (sodium_hex2bin(key, sizeof(key), (const char *)result->id.ptr + plen,
                       2 * YARD_CACHE_KEY_BYTES, NULL, &got, NULL) != 0 ||
        got != sizeof(key))
        return;
    uint64_t hash = yard_hash64(key, YARD_CACHE_KEY_BYTES, self->seed);
    broker_flight_t *f = yard_map_get(self->flights, hash, s_flight_eq, key);
    if (!f || !f->lookup_pending)
        return; //  the leader is gone, or this is a stale lookup
    f->lookup_pending = false;
    const uint8_t *value = NULL;
    size_t len = 0;
    if (result->status == YARD_OK &&
        s_parse_hit(&result->payload, &value, &len)) {
        //  A hit: everyone is answered, no worker runs.
        broker_task_t *leader = f->leader;
        broker_task_t **waiting = f->waiting;
        size_t n = f->nwaiting;
        f->waiting = NULL;
        f->nwaiting = 0;
        s_flight_end(self, f);
        s_answer_cached(self, leader, value, len, false);
        for (size_t i = 0; i < n; i++)
            s_answer_cached(self, waiting[i], value, len, false);
        free(waiting);
        return;
    }
    if (result->status != YARD_OK)
        self->cache_errors++;
    f->leader->service->counters.cache_misses++;
    s_run_leader(self, f);
}

void cache_on_answer(broker_t *self, broker_task_t *task, yard_status_t status,
                     const void *payload, size_t len, int64_t now)
{
    broker_flight_t *f = task->flight;
    if (!f)
        return;
    task->flight = NULL;
    if (task != f->leader) {
        //  A waiting task answered on its own (deadline, cancel).
        for (size_t i = 0; i < f->nwaiting; i++)
            if (f->waiting[i] == task) {
                f->waiting[i] = f->waiting[--f->nwaiting];
                break;
            }
        return;
    }
    broker_task_t **waiting = f->waiting;
    size_t n = f->nwaiting;
    f->waiting = NULL;
    f->nwaiting = 0;
    if (status == YARD_OK) {
        //  Store it, and everyone waiting gets it.
        msgpack_sbuffer body;
        msgpack_sbuffer_init(&body);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, f->ttl_ms ? 5 : 4);
        msgpack_pack_str_with_body(&pk, "op", 2);
        msgpack_pack_str_with_body(&pk, "set", 3);
        msgpack_pack_str_with_body(&pk, "key", 3);
        msgpack_pack_str_with_body(&pk, f->name, strlen(f->name));
        msgpack_pack_str_with_body(&pk, "value", 5);
        msgpack_pack_bin_with_body(&pk, payload ? payload : "", len);
        msgpack_pack_str_with_body(&pk, "tags", 4);
        msgpack_sbuffer_write(&body, f->tags.data, f->tags.size);
        if (f->ttl_ms) {
            msgpack_pack_str_with_body(&pk, "ttl_ms", 6);
            msgpack_pack_uint32(&pk, f->ttl_ms);
        }
        if (!s_request(self, S_SET_PREFIX, &body, 5000, now))
            self->cache_errors++;
        msgpack_sbuffer_destroy(&body);
        s_flight_end(self, f);
        for (size_t i = 0; i < n; i++)
            s_answer_cached(self, waiting[i], payload, len, true);
    } else {
        //  No result to share: the others run on their own.
        s_flight_end(self, f);
        for (size_t i = 0; i < n; i++)
            s_unpark(self, waiting[i]);
    }
    free(waiting);
}

void cache_detach(broker_t *self, broker_task_t *task, int64_t now)
{
    cache_on_answer(self, task, YARD_CANCELLED, NULL, 0, now);
}

json_t *cache_stats(broker_t *self)
{
    return json_pack("{s:I, s:I, s:I}", "flights",
                     (json_int_t)yard_map_size(self->flights), "errors",
                     (json_int_t)self->cache_errors, "bypassed",
                     (json_int_t)self->cache_bypassed);
}
