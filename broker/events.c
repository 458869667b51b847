/*  events.c — the one place the broker emits events.

    Every event the broker produces (breaker transitions today; task,
    worker and system lifecycle once the event bus lands) goes through
    broker_emit, so the bus only has to wire this function to the events
    endpoint. Until then an event is counted and logged at info level as
    "event TYPE key=value ...". */
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "yard_log.h"

void broker_emit(broker_t *self, const char *type,
                 const broker_event_field_t *fields, size_t nfields)
{
    char line[512];
    size_t used = 0;
    line[0] = 0;
    for (size_t i = 0; i < nfields && used < sizeof(line); i++) {
        const broker_event_field_t *f = &fields[i];
        int n = 0;
        switch (f->kind) {
        case EV_STR:
            n = snprintf(line + used, sizeof(line) - used, " %s=%s", f->key,
                         f->s ? f->s : "");
            break;
        case EV_UINT:
            n = snprintf(line + used, sizeof(line) - used, " %s=%llu", f->key,
                         (unsigned long long)f->u);
            break;
        case EV_DOUBLE:
            n = snprintf(line + used, sizeof(line) - used, " %s=%g", f->key,
                         f->d);
            break;
        }
        if (n < 0)
            break;
        used += (size_t)n;
    }
    self->events++;
    yard_info("event %s%s", type, line);
}
