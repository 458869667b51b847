/*  health_events.c — the event thread: one subscriber to every event on
    the broker's events endpoint, kept in a bounded ring (the SSE stream
    reads it), and worker.lost / worker.joined noted for the health rules.
    A slow SSE reader never holds events back: the ring overwrites the
    oldest, and a reader that fell behind is told how many it missed. */
#include "health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yard_clock.h"
#include "yard_json.h"
#include "yard_log.h"
#include "yard_sub.h"

void health_note_lost(health_t *self, const char *service, const char *name)
{
    pthread_mutex_lock(&self->lock);
    if (self->nlost == YARD_HEALTH_MAX_LOST) {
        memmove(&self->lost[0], &self->lost[1],
                (YARD_HEALTH_MAX_LOST - 1) * sizeof self->lost[0]);
        self->nlost--;
    }
    health_lost_t *l = &self->lost[self->nlost++];
    snprintf(l->service, sizeof l->service, "%s", service);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->at_ms = yard_clock_ms();
    pthread_mutex_unlock(&self->lock);
}

void health_note_joined(health_t *self, const char *service)
{
    pthread_mutex_lock(&self->lock);
    size_t keep = 0;
    for (size_t i = 0; i < self->nlost; i++)
        if (strcmp(self->lost[i].service, service) != 0)
            self->lost[keep++] = self->lost[i];
    self->nlost = keep;
    pthread_mutex_unlock(&self->lock);
}

/*  Keeps one event: its SSE frame into the ring; the worker rules. */
static void s_take(health_t *self, const yard_sub_event_t *ev)
{
    json_t *payload = yard_json_from_msgpack(ev->payload, ev->payload_len);
    if (strcmp(ev->type, "worker.lost") == 0 ||
        strcmp(ev->type, "worker.joined") == 0) {
        const char *service =
            json_string_value(json_object_get(payload, "service"));
        const char *name = json_string_value(json_object_get(payload, "name"));
        if (service && ev->type[7] == 'l')
            health_note_lost(self, service, name ? name : "");
        else if (service)
            health_note_joined(self, service);
    }
    json_t *obj = json_pack("{s:s, s:s, s:s, s:I, s:o}", "type", ev->type,
                            "source", ev->source, "trace_id", ev->trace_id,
                            "ts_us", (json_int_t)ev->ts_us, "payload",
                            payload ? payload : json_null());
    char *data = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!data)
        return;
    pthread_mutex_lock(&self->lock);
    uint64_t seq = self->next_seq++;
    health_event_t *slot = &self->ring[seq % YARD_HEALTH_RING];
    free(slot->type);
    free(slot->frame);
    slot->seq = seq;
    slot->type = strdup(ev->type);
    int n = asprintf(&slot->frame, "id: %llu\nevent: %s\ndata: %s\n\n",
                     (unsigned long long)seq, ev->type, data);
    slot->len = n > 0 ? (size_t)n : 0;
    if (n < 0)
        slot->frame = NULL;
    self->events_seen++;
    pthread_cond_broadcast(&self->changed);
    pthread_mutex_unlock(&self->lock);
    free(data);
}

static void *s_events(void *arg)
{
    health_t *self = arg;
    yard_subscriber_t *sub = NULL;
    int64_t retry_at = 0;
    while (!atomic_load(&self->stopping)) {
        if (!sub) {
            if (yard_clock_ms() < retry_at) {
                struct timespec ts = {0, 100 * 1000000L};
                nanosleep(&ts, NULL);
                continue;
            }
            int err = 0;
            sub = yard_subscriber_new(self->cfg.events, NULL, 0, 1000, &err);
            if (!sub) {
                retry_at = yard_clock_ms() + 1000;
                yard_debug("events: cannot subscribe to %s: %s",
                           self->cfg.events, yard_strerror(err));
                continue;
            }
            yard_info("events: subscribed to %s", self->cfg.events);
            pthread_mutex_lock(&self->lock);
            self->subscribed = true;
            pthread_mutex_unlock(&self->lock);
        }
        yard_sub_event_t *ev = NULL;
        int rc = yard_subscriber_next(sub, 200, &ev);
        if (rc == 0) {
            s_take(self, ev);
            yard_sub_event_destroy(&ev);
        } else if (rc != YARD_E_TIMEOUT && rc != YARD_E_INTERRUPTED) {
            yard_warn("events: %s; subscribing again", yard_strerror(rc));
            yard_subscriber_destroy(&sub);
            retry_at = yard_clock_ms() + 1000;
        }
        if (sub) {
            pthread_mutex_lock(&self->lock);
            self->events_missed = yard_subscriber_missed(sub);
            pthread_mutex_unlock(&self->lock);
        }
    }
    yard_subscriber_destroy(&sub);
    return NULL;
}

int health_events_start(health_t *self)
{
    if (pthread_create(&self->events, NULL, s_events, self) != 0)
        return -1;
    self->events_started = true;
    return 0;
}
