/*  service.c — a service: ten FIFO queues (one per priority), its workers,
    and its metrics. Queues are intrusive doubly linked lists so a cancel or
    a timeout unlinks a task in O(1). */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "yard_clock.h"
#include "yard_hash.h"

static bool s_service_eq(const void *value, const void *key)
{
    const broker_service_t *service = value;
    const yard_bytes_t *name = key;
    return service->name_len == name->len &&
           memcmp(service->name, name->ptr, name->len) == 0;
}

broker_service_t *service_lookup(broker_t *self, const uint8_t *name,
                                 size_t len)
{
    yard_bytes_t key = {name, (uint32_t)len};
    return yard_map_get(self->services, yard_hash64(name, len, self->seed),
                        s_service_eq, &key);
}

broker_service_t *service_require(broker_t *self, const uint8_t *name,
                                  size_t len)
{
    broker_service_t *service = service_lookup(self, name, len);
    if (service || len > YARD_MAX_SERVICE)
        return service;
    service = calloc(1, sizeof(*service));
    if (!service)
        return NULL;
    memcpy(service->name, name, len);
    service->name[len] = 0;
    service->name_len = len;
    service->hash = yard_hash64(name, len, self->seed);
    yard_hist_reset(&service->latency);
    breaker_service_init(self, service, yard_clock_us());
    if (yard_map_put(self->services, service->hash, service) != 0) {
        free(service);
        return NULL;
    }
    return service;
}

void service_destroy(broker_service_t *service)
{
    if (!service)
        return;
    free(service->workers);
    free(service);
}

void service_enqueue(broker_service_t *service, broker_task_t *task, bool front)
{
    int p = task->priority;
    task->state = TASK_QUEUED;
    if (front) {
        task->prev = NULL;
        task->next = service->head[p];
        if (service->head[p])
            service->head[p]->prev = task;
        else
            service->tail[p] = task;
        service->head[p] = task;
    } else {
        task->next = NULL;
        task->prev = service->tail[p];
        if (service->tail[p])
            service->tail[p]->next = task;
        else
            service->head[p] = task;
        service->tail[p] = task;
    }
    service->queued++;
}

void service_unlink(broker_service_t *service, broker_task_t *task)
{
    int p = task->priority;
    if (task->prev)
        task->prev->next = task->next;
    else
        service->head[p] = task->next;
    if (task->next)
        task->next->prev = task->prev;
    else
        service->tail[p] = task->prev;
    task->prev = task->next = NULL;
    service->queued--;
}

broker_task_t *service_pop(broker_service_t *service)
{
    for (int p = BROKER_PRIORITIES - 1; p >= 0; p--) {
        broker_task_t *task = service->head[p];
        if (task) {
            service_unlink(service, task);
            return task;
        }
    }
    return NULL;
}

int service_add_worker(broker_service_t *service, broker_worker_t *worker)
{
    if (service->nworkers == service->workers_cap) {
        size_t cap = service->workers_cap ? service->workers_cap * 2 : 8;
        broker_worker_t **grown =
            realloc(service->workers, cap * sizeof(*grown));
        if (!grown)
            return -1;
        service->workers = grown;
        service->workers_cap = cap;
    }
    service->workers[service->nworkers++] = worker;
    service->spare += worker_spare(worker);
    return 0;
}

void service_remove_worker(broker_service_t *service, broker_worker_t *worker)
{
    for (size_t i = 0; i < service->nworkers; i++) {
        if (service->workers[i] == worker) {
            service->workers[i] = service->workers[--service->nworkers];
            service->spare -= worker_spare(worker);
            return;
        }
    }
}

broker_worker_t *service_pick_worker(broker_service_t *service,
                                     size_t *with_spare)
{
    //  Least loaded = lowest in_flight / capacity, compared by cross
    //  multiplication so no division and no float.
    broker_worker_t *best = NULL;
    size_t count = 0;
    for (size_t i = 0; i < service->nworkers; i++) {
        broker_worker_t *w = service->workers[i];
        if (worker_spare(w) == 0)
            continue;
        count++;
        if (!best || (uint64_t)w->in_flight * best->capacity <
                         (uint64_t)best->in_flight * w->capacity)
            best = w;
    }
    *with_spare = count;
    return best;
}
