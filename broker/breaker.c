/*  breaker.c — a circuit breaker per service, kept in the broker.

    The state machine is common/yard_breaker.c; this file ties it to the
    broker: settings (defaults, per-service overrides, run-time changes),
    admission at SUBMIT, outcomes from results, timeouts and lost workers,
    shedding what waits behind a breaker that opens (to the task's fallback
    service when it names one), the half-open timer, events and the admin
    commands. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "broker.h"
#include "yard_clock.h"
#include "yard_log.h"

/*  The settings a service runs with: the defaults, overlaid with the ones
    it set itself. */
static void s_effective(const broker_t *self, const yard_breaker_config_t *own,
                        uint32_t mask, yard_breaker_config_t *out)
{
    *out = self->config.breaker;
    for (int i = 0; i < YARD_BREAKER_NKEYS; i++)
        if (mask & (1u << i))
            yard_breaker_config_copy_key(out, own, i);
}

static void s_transition(broker_t *self, broker_service_t *service,
                         yard_breaker_transition_t t, int64_t now)
{
    const char *type = yard_breaker_event_name(t);
    if (!type)
        return;
    const yard_breaker_t *b = &service->breaker;
    int64_t now_ms = now / 1000;
    broker_event_field_t fields[] = {
        {.key = "service", .kind = EV_STR, .s = service->name},
        {.key = "state",
         .kind = EV_STR,
         .s = yard_breaker_state_name(b->state)},
        {.key = "consecutive_failures",
         .kind = EV_UINT,
         .u = b->consecutive_failures},
        {.key = "trips", .kind = EV_UINT, .u = b->trips},
        {.key = "retry_in_ms",
         .kind = EV_UINT,
         .u = yard_breaker_retry_in(b, now_ms)},
        {.key = "success_rate",
         .kind = EV_DOUBLE,
         .d = yard_breaker_success_rate(b)},
    };
    broker_emit(self, type, fields, sizeof(fields) / sizeof(fields[0]));
    if (t == YARD_BREAKER_OPENED) {
        yard_warn("breaker opened: service=%s trips=%llu retry in %u ms",
                  service->name, (unsigned long long)b->trips, b->open_ms);
        int64_t wake = b->open_until_ms * 1000;
        if (wake < self->breaker_wake_us)
            self->breaker_wake_us = wake;
        //  Shed what waits, at the end of this turn (a lost worker's
        //  tasks are re-queued after their outcome is recorded).
        broker_want_dispatch(self, service);
    }
}

void breaker_service_init(broker_t *self, broker_service_t *service,
                          int64_t now)
{
    service->breaker_own = self->config.breaker;
    service->breaker_mask = 0;
    yard_breaker_init(&service->breaker, &self->config.breaker, now / 1000);
}

typedef struct {
    broker_t *self;
    const yard_breaker_config_t *defaults; /*  candidate defaults          */
    const char *bad;                       /*  first service they break    */
    char *err;
    size_t errlen;
    int64_t now;
    bool apply;
} s_defaults_t;

static void s_check_or_apply(void *value, void *arg)
{
    broker_service_t *service = value;
    s_defaults_t *d = arg;
    yard_breaker_config_t eff = *d->defaults;
    for (int i = 0; i < YARD_BREAKER_NKEYS; i++)
        if (service->breaker_mask & (1u << i))
            yard_breaker_config_copy_key(&eff, &service->breaker_own, i);
    if (!d->apply) {
        char why[160];
        if (!d->bad && yard_breaker_config_check(&eff, why, sizeof(why))) {
            d->bad = service->name;
            snprintf(d->err, d->errlen, "for service %s: %s", service->name,
                     why);
        }
        return;
    }
    yard_breaker_transition_t t =
        yard_breaker_configure(&service->breaker, &eff, d->now / 1000);
    s_transition(d->self, service, t, d->now);
}

static bool s_name_ok(const char *name, char *err, size_t errlen)
{
    size_t len = strlen(name);
    bool ok = len > 0 && len <= YARD_MAX_SERVICE;
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        ok = isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
    }
    if (!ok) {
        snprintf(err, errlen, "bad service name '%s'", name);
        return false;
    }
    if (strcmp(name, YARD_ADMIN_SERVICE) == 0) {
        snprintf(err, errlen,
                 "service %s is the broker's own: it has no "
                 "breaker",
                 name);
        return false;
    }
    return true;
}

int breaker_set_many(broker_t *self, const char *name, const breaker_kv_t *kv,
                     size_t n, char *err, size_t errlen)
{
    int64_t now = yard_clock_us();
    if (!name) {
        yard_breaker_config_t cfg = self->config.breaker;
        for (size_t i = 0; i < n; i++)
            if (yard_breaker_config_set(&cfg, kv[i].key, kv[i].value, err,
                                        errlen) < 0)
                return -1;
        if (yard_breaker_config_check(&cfg, err, errlen) != 0)
            return -1;
        s_defaults_t d = {self, &cfg, NULL, err, errlen, now, false};
        yard_map_each(self->services, s_check_or_apply, &d);
        if (d.bad)
            return -1;
        self->config.breaker = cfg;
        d.apply = true;
        yard_map_each(self->services, s_check_or_apply, &d);
        return 0;
    }
    if (!s_name_ok(name, err, errlen))
        return -1;
    size_t len = strlen(name);
    broker_service_t *service =
        service_lookup(self, (const uint8_t *)name, len);
    yard_breaker_config_t own =
        service ? service->breaker_own : self->config.breaker;
    uint32_t mask = service ? service->breaker_mask : 0;
    for (size_t i = 0; i < n; i++) {
        int k =
            yard_breaker_config_set(&own, kv[i].key, kv[i].value, err, errlen);
        if (k < 0)
            return -1;
        mask |= 1u << k;
    }
    yard_breaker_config_t eff;
    s_effective(self, &own, mask, &eff);
    if (yard_breaker_config_check(&eff, err, errlen) != 0)
        return -1;
    if (!service)
        service = service_require(self, (const uint8_t *)name, len);
    if (!service) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    service->breaker_own = own;
    service->breaker_mask = mask;
    s_transition(self, service,
                 yard_breaker_configure(&service->breaker, &eff, now / 1000),
                 now);
    return 0;
}

int breaker_configure_start(broker_t *self, char *err, size_t errlen)
{
    //  Every spec lands first, then everything is checked: the order of
    //  the settings does not matter (window=5 then min_calls=3 is fine).
    for (size_t i = 0; i < self->config.nbreaker_specs; i++) {
        const char *spec = self->config.breaker_specs[i];
        const char *name, *key, *value;
        char buf[512];
        if (breaker_spec_split(spec, buf, sizeof(buf), &name, &key, &value, err,
                               errlen) != 0)
            return -1;
        if (!name) {
            if (yard_breaker_config_set(&self->config.breaker, key, value, err,
                                        errlen) < 0)
                return -1;
            continue;
        }
        if (!s_name_ok(name, err, errlen))
            return -1;
        broker_service_t *service =
            service_require(self, (const uint8_t *)name, strlen(name));
        if (!service) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int k = yard_breaker_config_set(&service->breaker_own, key, value, err,
                                        errlen);
        if (k < 0)
            return -1;
        service->breaker_mask |= 1u << k;
    }
    if (yard_breaker_config_check(&self->config.breaker, err, errlen) != 0)
        return -1;
    s_defaults_t d = {self,   &self->config.breaker, NULL, err,
                      errlen, yard_clock_us(),       false};
    yard_map_each(self->services, s_check_or_apply, &d);
    if (d.bad)
        return -1;
    d.apply = true;
    yard_map_each(self->services, s_check_or_apply, &d);
    return 0;
}

int breaker_spec_split(const char *spec, char *buf, size_t buflen,
                       const char **service, const char **key,
                       const char **value, char *err, size_t errlen)
{
    size_t len = strlen(spec);
    if (len + 1 > buflen) {
        snprintf(err, errlen, "breaker setting too long");
        return -1;
    }
    memcpy(buf, spec, len + 1);
    char *eq = strchr(buf, '=');
    if (!eq || eq == buf) {
        snprintf(err, errlen, "breaker setting '%s' is not [SERVICE.]key=value",
                 spec);
        return -1;
    }
    *eq = 0;
    *value = eq + 1;
    char *dot = strrchr(buf, '.');
    if (dot) {
        *dot = 0;
        *service = buf;
        *key = dot + 1;
    } else {
        *service = NULL;
        *key = buf;
    }
    if (!**key || (*service && !**service) || !**value) {
        snprintf(err, errlen, "breaker setting '%s' is not [SERVICE.]key=value",
                 spec);
        return -1;
    }
    return 0;
}

bool breaker_admit(broker_t *self, broker_service_t *service, int64_t now,
                   uint64_t *gen, uint32_t *retry_after_ms)
{
    yard_breaker_transition_t t = YARD_BREAKER_NONE;
    bool ok = yard_breaker_admit(&service->breaker, now / 1000, gen,
                                 retry_after_ms, &t);
    s_transition(self, service, t, now);
    return ok;
}

void breaker_record(broker_t *self, broker_task_t *task,
                    yard_breaker_outcome_t outcome, uint64_t run_us,
                    int64_t now)
{
    broker_service_t *service = task->service;
    yard_breaker_transition_t t =
        yard_breaker_record(&service->breaker, task->breaker_gen, outcome,
                            run_us / 1000, now / 1000, &self->rng);
    s_transition(self, service, t, now);
}

typedef struct {
    broker_t *self;
    int64_t now;
    int64_t next; /*  earliest half-open time still ahead */
} s_tick_t;

static void s_tick_one(void *value, void *arg)
{
    broker_service_t *service = value;
    s_tick_t *tick = arg;
    s_transition(tick->self, service,
                 yard_breaker_tick(&service->breaker, tick->now / 1000),
                 tick->now);
    if (service->breaker.state == YARD_BREAKER_OPEN) {
        int64_t at = service->breaker.open_until_ms * 1000;
        if (at < tick->next)
            tick->next = at;
    }
}

void breaker_tick(broker_t *self, int64_t now)
{
    if (now < self->breaker_wake_us)
        return;
    s_tick_t tick = {self, now, INT64_MAX};
    self->breaker_wake_us = INT64_MAX;
    yard_map_each(self->services, s_tick_one, &tick);
    if (tick.next < self->breaker_wake_us)
        self->breaker_wake_us = tick.next;
}

broker_service_t *breaker_fallback(broker_t *self, broker_service_t *service,
                                   const uint8_t *name, size_t len, int64_t now,
                                   uint64_t *gen)
{
    static const char admin[] = YARD_ADMIN_SERVICE;
    if (len == 0 || (len == sizeof(admin) - 1 && memcmp(name, admin, len) == 0))
        return NULL; //  the broker's own service runs no tasks
    broker_service_t *fb = service_require(self, name, len);
    if (!fb || fb == service ||
        fb->queued + fb->delayed >= self->config.max_queue)
        return NULL;
    uint32_t retry;
    return breaker_admit(self, fb, now, gen, &retry) ? fb : NULL;
}

//  One waiting task of a service whose breaker is open: to its fallback
//  if it names one that will take it, else answered circuit_open.
static void s_shed_task(broker_t *self, broker_service_t *service,
                        broker_task_t *task, int64_t now)
{
    bool delayed = task->state == TASK_DELAYED;
    if (task->fallback_len) {
        uint64_t gen = 0;
        broker_service_t *fb = breaker_fallback(
            self, service, task_fallback(task), task->fallback_len, now, &gen);
        if (fb) {
            service->counters.fallback++;
            fb->counters.submitted++;
            task->service = fb;
            task->breaker_gen = gen;
            if (delayed) {
                fb->delayed++;
            } else {
                service_enqueue(fb, task, false);
                broker_want_dispatch(self, fb);
            }
            return;
        }
    }
    uint32_t retry = yard_breaker_retry_in(&service->breaker, now / 1000);
    char why[192];
    snprintf(why, sizeof(why), "circuit open for %s: retry in %u ms",
             service->name, retry);
    service->counters.circuit_open++;
    broker_answer_retry(self, task, YARD_CIRCUIT_OPEN, why, retry ? retry : 1);
}

typedef struct {
    broker_service_t *service;
    broker_task_t **list;
    size_t count, cap;
} s_delayed_t;

static void s_collect_delayed(void *value, void *arg)
{
    broker_task_t *task = value;
    s_delayed_t *d = arg;
    if (task->service == d->service && task->state == TASK_DELAYED &&
        d->count < d->cap)
        d->list[d->count++] = task;
}

void breaker_shed(broker_t *self, broker_service_t *service, int64_t now)
{
    if (service->breaker.state != YARD_BREAKER_OPEN)
        return;
    broker_task_t *task;
    while ((task = service_pop(service)))
        s_shed_task(self, service, task, now);
    if (service->delayed) {
        //  Tasks waiting out a retry backoff are only on the timer heap:
        //  find them in the task index (this runs once per trip).
        s_delayed_t d = {service, calloc(service->delayed, sizeof(task)), 0,
                         service->delayed};
        if (d.list)
            yard_map_each(self->tasks_by_id, s_collect_delayed, &d);
        for (size_t i = 0; i < d.count; i++) {
            service->delayed--;
            s_shed_task(self, service, d.list[i], now);
        }
        free(d.list);
    }
}

/* ---- Admin commands ------------------------------------------------------ */

typedef struct {
    broker_t *self;
    json_t *services;
    int64_t now;
} s_list_t;

static void s_list_one(void *value, void *arg)
{
    broker_service_t *service = value;
    s_list_t *l = arg;
    json_object_set_new(l->services, service->name,
                        stats_breaker(l->self, service, l->now));
}

//  Next whitespace-separated word of [*p, end) into buf; false at the end.
static bool s_word(const char **p, const char *end, char *buf, size_t cap,
                   bool *too_long)
{
    while (*p < end && isspace((unsigned char)**p))
        (*p)++;
    if (*p == end)
        return false;
    size_t n = 0;
    while (*p < end && !isspace((unsigned char)**p)) {
        if (n + 1 < cap)
            buf[n++] = **p;
        else
            *too_long = true;
        (*p)++;
    }
    buf[n] = 0;
    return true;
}

static char *s_dump(json_t *o)
{
    char *text =
        o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(o);
    return text;
}

char *breaker_admin(broker_t *self, const char *args, size_t len, int64_t now,
                    char *err, size_t errlen)
{
    const char *p = args, *end = args + len;
    char verb[16], name[YARD_MAX_SERVICE + 2], word[256];
    bool too_long = false;
    static const char usage[] =
        "breaker commands: list | show SERVICE | reset SERVICE | "
        "set SERVICE|* key=value...";
    if (!s_word(&p, end, verb, sizeof(verb), &too_long) || too_long) {
        snprintf(err, errlen, "%s", usage);
        return NULL;
    }
    if (strcmp(verb, "list") == 0) {
        json_t *services = json_object();
        s_list_t l = {self, services, now};
        yard_map_each(self->services, s_list_one, &l);
        return s_dump(json_pack("{s:o, s:o}", "defaults",
                                stats_breaker_config(&self->config.breaker),
                                "services", services));
    }
    if (strcmp(verb, "show") != 0 && strcmp(verb, "reset") != 0 &&
        strcmp(verb, "set") != 0) {
        snprintf(err, errlen, "unknown breaker command '%s'; %s", verb, usage);
        return NULL;
    }
    if (!s_word(&p, end, name, sizeof(name), &too_long) || too_long) {
        snprintf(err, errlen, "breaker %s needs a service name", verb);
        return NULL;
    }
    if (strcmp(verb, "set") == 0) {
        enum { S_MAX_KV = 16 };
        char bufs[S_MAX_KV][300];
        breaker_kv_t kv[S_MAX_KV];
        size_t n = 0;
        while (s_word(&p, end, word, sizeof(word), &too_long)) {
            const char *svc;
            if (n == S_MAX_KV) {
                snprintf(err, errlen, "at most %d settings at once", S_MAX_KV);
                return NULL;
            }
            if (too_long ||
                breaker_spec_split(word, bufs[n], sizeof(bufs[n]), &svc,
                                   &kv[n].key, &kv[n].value, err, errlen) != 0)
                return NULL;
            if (svc) {
                snprintf(err, errlen,
                         "breaker set takes key=value, not '%s' (the service "
                         "comes first)",
                         word);
                return NULL;
            }
            n++;
        }
        if (n == 0) {
            snprintf(err, errlen, "breaker set %s needs key=value settings",
                     name);
            return NULL;
        }
        bool all = strcmp(name, "*") == 0;
        if (breaker_set_many(self, all ? NULL : name, kv, n, err, errlen))
            return NULL; //  nothing was changed
        yard_info("breaker settings changed by operator: %s", name);
        if (all)
            return s_dump(stats_breaker_config(&self->config.breaker));
        broker_service_t *service =
            service_lookup(self, (const uint8_t *)name, strlen(name));
        return service ? s_dump(stats_breaker(self, service, now)) : NULL;
    }
    broker_service_t *service =
        service_lookup(self, (const uint8_t *)name, strlen(name));
    if (!service) {
        snprintf(err, errlen, "unknown service '%s'", name);
        return NULL;
    }
    if (s_word(&p, end, word, sizeof(word), &too_long)) {
        snprintf(err, errlen, "breaker %s takes one service name", verb);
        return NULL;
    }
    if (strcmp(verb, "reset") == 0) {
        yard_info("breaker reset by operator: service=%s", service->name);
        s_transition(self, service,
                     yard_breaker_reset(&service->breaker, now / 1000), now);
    }
    return s_dump(stats_breaker(self, service, now));
}
