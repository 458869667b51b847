/*  task.c — a task's storage: one allocation holding the bookkeeping and
    copies of the id, payload and headers, so a queued task costs one
    malloc and its bytes sit together. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"

broker_task_t *task_new(const yard_submit_t *submit)
{
    size_t extra = (size_t)submit->id.len + submit->payload.len +
                   submit->headers.len + submit->fallback.len;
    broker_task_t *task = malloc(sizeof(*task) + extra);
    if (!task)
        return NULL;
    memset(task, 0, sizeof(*task));
    yard_heap_node_init(&task->timer);
    task->id_len = (uint8_t)submit->id.len;
    task->payload_len = submit->payload.len;
    task->headers_len = submit->headers.len;
    task->fallback_len = (uint8_t)submit->fallback.len;
    task->priority = submit->priority;
    task->retries = (uint8_t)submit->retries;
    task->backoff_ms = submit->backoff_ms;
    uint8_t *p = task->data;
    memcpy(p, submit->id.ptr, submit->id.len);
    p += submit->id.len;
    if (submit->payload.len)
        memcpy(p, submit->payload.ptr, submit->payload.len);
    p += submit->payload.len;
    if (submit->headers.len)
        memcpy(p, submit->headers.ptr, submit->headers.len);
    p += submit->headers.len;
    if (submit->fallback.len)
        memcpy(p, submit->fallback.ptr, submit->fallback.len);
    return task;
}

void task_free(broker_task_t *task)
{
    free(task);
}

size_t task_memory(const broker_task_t *task)
{
    return sizeof(*task) + task->id_len + task->payload_len +
           task->headers_len + task->fallback_len;
}
