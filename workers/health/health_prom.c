/*  health_prom.c — the Prometheus text exposition format (0.0.4) of the
    snapshot: every family with # HELP and # TYPE, per-service labels,
    label values escaped as the format says. */
#include "health.h"
#include "yard_proc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yard_clock.h"

typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} s_out_t;

static void s_printf(s_out_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_printf(s_out_t *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = (o->cap + (size_t)n + 1) * 2;
        char *nb = realloc(o->buf, ncap);
        if (!nb) {
            o->failed = true;
            return;
        }
        o->buf = nb;
        o->cap = ncap;
    }
}

/*  A sample value: whole numbers exactly, fractions to 9 significant
    digits ("0.021", not "0.021000000000000001"). */
static void s_value(s_out_t *o, double v)
{
    if (v == (double)(int64_t)v && v > -9007199254740992.0 &&
        v < 9007199254740992.0)
        s_printf(o, "%lld", (long long)v);
    else
        s_printf(o, "%.9g", v);
}

/*  A label value, escaped (backslash, quote, newline). */
static void s_label(s_out_t *o, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\' || *v == '"')
            s_printf(o, "\\%c", *v);
        else if (*v == '\n')
            s_printf(o, "\\n");
        else
            s_printf(o, "%c", *v);
    }
}

static void s_family(s_out_t *o, const char *name, const char *type,
                     const char *help)
{
    s_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*  A family of one unlabelled sample. */
static void s_scalar(s_out_t *o, const char *name, const char *type,
                     const char *help, double value)
{
    s_family(o, name, type, help);
    s_printf(o, "%s ", name);
    s_value(o, value);
    s_printf(o, "\n");
}

static double s_num(json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

/*  One family with a sample per service: key read from each service. */
static void s_per_service(s_out_t *o, json_t *services, const char *name,
                          const char *type, const char *help, const char *key)
{
    s_family(o, name, type, help);
    const char *svc;
    json_t *s;
    json_object_foreach(services, svc, s)
    {
        s_printf(o, "%s{service=\"", name);
        s_label(o, svc);
        s_printf(o, "\"} ");
        s_value(o, s_num(s, key));
        s_printf(o, "\n");
    }
}

/*  A value of a process entry: key, or "object.key". */
static json_t *s_path(json_t *proc, const char *path)
{
    const char *dot = strchr(path, '.');
    if (!dot)
        return json_object_get(proc, path);
    char head[32];
    size_t n = (size_t)(dot - path);
    if (n >= sizeof head)
        return NULL;
    memcpy(head, path, n);
    head[n] = '\0';
    return json_object_get(json_object_get(proc, head), dot + 1);
}

/*  The labels that name a process: kind, service, name, id (open brace
    written, closing one not). */
static void s_process_labels(s_out_t *o, const char *family, json_t *p)
{
    static const char *const keys[] = {"kind", "service", "name", "id"};
    s_printf(o, "%s{", family);
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        s_printf(o, "%s%s=\"", k ? "," : "", keys[k]);
        s_label(o, json_string_value(json_object_get(p, keys[k])));
        s_printf(o, "\"");
    }
}

/*  One family with a sample per process that has the value; scale
    converts units (us -> s). */
static void s_per_process(s_out_t *o, json_t *procs, const char *name,
                          const char *type, const char *help, const char *path,
                          double scale)
{
    s_family(o, name, type, help);
    size_t i;
    json_t *p;
    json_array_foreach(procs, i, p)
    {
        json_t *v = s_path(p, path);
        if (!json_is_number(v) && !json_is_boolean(v))
            continue;
        double value = json_is_boolean(v) ? (json_is_true(v) ? 1 : 0)
                                          : json_number_value(v) * scale;
        s_process_labels(o, name, p);
        s_printf(o, "} ");
        s_value(o, value);
        s_printf(o, "\n");
    }
}

static void s_processes(s_out_t *o, json_t *procs)
{
    s_per_process(o, procs, "yard_process_up", "gauge",
                  "1 when the process answered its last ping", "ping.answered",
                  1);
    s_per_process(o, procs, "yard_process_ping_seconds", "gauge",
                  "Round trip of the process's last ping answer", "ping.rtt_us",
                  1e-6);
    s_per_process(o, procs, "yard_process_uptime_seconds", "gauge",
                  "Seconds since the process started", "uptime_ms", 1e-3);
    s_per_process(o, procs, "yard_process_resident_memory_bytes", "gauge",
                  "Resident memory of the process", "memory.rss_bytes", 1);
    s_per_process(o, procs, "yard_process_memory_growth_bytes", "gauge",
                  "Resident memory growth over the last 5 minutes",
                  "memory.rss_growth_bytes", 1);
    s_per_process(o, procs, "yard_process_loop_iterations_total", "counter",
                  "Event-loop iterations", "loop.iterations", 1);
    s_per_process(o, procs, "yard_process_loop_busy_seconds_total", "counter",
                  "Time the event loop spent working", "loop.busy_us", 1e-6);
    s_per_process(o, procs, "yard_process_loop_slow_total", "counter",
                  "Event-loop iterations over the slow threshold", "loop.slow",
                  1);
    s_per_process(o, procs, "yard_process_loop_stalls_total", "counter",
                  "Event-loop stalls (busy or late past the stall threshold)",
                  "loop.stalls", 1);
    s_per_process(o, procs, "yard_process_loop_max_seconds", "gauge",
                  "Longest event-loop iteration", "loop.max_us", 1e-6);
    s_family(o, "yard_process_flagged", "gauge",
             "1 for each flag raised on the process (loop_stall, "
             "memory_growth, unresponsive)");
    size_t i;
    json_t *p;
    json_array_foreach(procs, i, p)
    {
        size_t k;
        json_t *flag;
        json_array_foreach(json_object_get(p, "flags"), k, flag)
        {
            s_process_labels(o, "yard_process_flagged", p);
            s_printf(o, ",flag=\"");
            s_label(o, json_string_value(flag));
            s_printf(o, "\"} 1\n");
        }
    }
}

char *health_prometheus(health_t *self, size_t *len)
{
    json_t *stats, *cache, *report;
    health_snapshot(self, &stats, &cache, &report);
    s_out_t o = {malloc(16384), 0, 16384, false};
    if (!o.buf) {
        json_decref(stats);
        json_decref(cache);
        json_decref(report);
        return NULL;
    }

    s_family(&o, "yard_up", "gauge", "1 when the broker answers yard-health");
    s_printf(&o, "yard_up %d\n", stats ? 1 : 0);
    health_status_t st = HEALTH_CRITICAL;
    const char *sname = json_string_value(json_object_get(report, "status"));
    if (sname && strcmp(sname, "healthy") == 0)
        st = HEALTH_HEALTHY;
    else if (sname && strcmp(sname, "warning") == 0)
        st = HEALTH_WARNING;
    s_family(&o, "yard_health_status", "gauge",
             "Overall status: 0 healthy, 1 warning, 2 critical");
    s_printf(&o, "yard_health_status %d\n", (int)st);

    json_t *services = json_object_get(stats, "services");
    s_per_service(&o, services, "yard_tasks_submitted_total", "counter",
                  "Tasks accepted by the broker", "submitted");
    s_per_service(&o, services, "yard_tasks_completed_total", "counter",
                  "Tasks answered ok", "completed");
    s_per_service(&o, services, "yard_tasks_failed_total", "counter",
                  "Tasks answered error", "failed");
    s_per_service(&o, services, "yard_tasks_timed_out_total", "counter",
                  "Tasks answered timeout", "timed_out");
    s_per_service(&o, services, "yard_tasks_rejected_total", "counter",
                  "Tasks refused (queue full)", "rejected");
    s_per_service(&o, services, "yard_tasks_retried_total", "counter",
                  "Attempts re-queued after a worker error", "retried");
    s_per_service(&o, services, "yard_tasks_circuit_open_total", "counter",
                  "Tasks answered circuit_open", "circuit_open");
    s_per_service(&o, services, "yard_response_cache_hits_total", "counter",
                  "Tasks answered from the response cache", "cache_hits");
    s_per_service(&o, services, "yard_queue_depth", "gauge",
                  "Tasks waiting in the service's queue", "queued");
    s_per_service(&o, services, "yard_tasks_in_flight", "gauge",
                  "Tasks held by workers", "in_flight");
    s_per_service(&o, services, "yard_workers", "gauge", "Registered workers",
                  "workers");
    s_per_service(&o, services, "yard_worker_capacity", "gauge",
                  "Sum of the workers' capacities", "capacity");

    s_family(&o, "yard_task_latency_us", "gauge",
             "Task latency, submit to answer, in microseconds");
    const char *svc;
    json_t *s;
    json_object_foreach(services, svc, s)
    {
        json_t *lat = json_object_get(s, "latency_us");
        static const char *const q[][2] = {
            {"0.5", "p50"}, {"0.95", "p95"}, {"0.99", "p99"}};
        for (size_t i = 0; i < 3; i++) {
            s_printf(&o, "yard_task_latency_us{service=\"");
            s_label(&o, svc);
            s_printf(&o, "\",quantile=\"%s\"} ", q[i][0]);
            s_value(&o, s_num(lat, q[i][1]));
            s_printf(&o, "\n");
        }
    }

    s_family(&o, "yard_breaker_state", "gauge",
             "Circuit breaker state: 1 for the current state");
    json_object_foreach(services, svc, s)
    {
        const char *state = json_string_value(
            json_object_get(json_object_get(s, "breaker"), "state"));
        if (!state)
            continue;
        static const char *const states[] = {"closed", "open", "half_open"};
        for (size_t i = 0; i < 3; i++) {
            s_printf(&o, "yard_breaker_state{service=\"");
            s_label(&o, svc);
            s_printf(&o, "\",state=\"%s\"} %d\n", states[i],
                     strcmp(state, states[i]) == 0);
        }
    }
    s_family(&o, "yard_breaker_trips_total", "counter",
             "Times the breaker opened");
    json_object_foreach(services, svc, s)
    {
        json_t *b = json_object_get(s, "breaker");
        if (!b)
            continue;
        s_printf(&o, "yard_breaker_trips_total{service=\"");
        s_label(&o, svc);
        s_printf(&o, "\"} ");
        s_value(&o, s_num(b, "trips"));
        s_printf(&o, "\n");
    }

    json_t *ev = json_object_get(stats, "events");
    s_scalar(&o, "yard_events_published_total", "counter",
             "Events published on the bus", s_num(ev, "published"));
    s_scalar(&o, "yard_events_delivered_total", "counter",
             "Event deliveries to subscribers", s_num(ev, "delivered"));
    s_scalar(&o, "yard_events_dropped_total", "counter",
             "Event deliveries dropped (slow subscribers)",
             s_num(ev, "dropped"));
    s_scalar(&o, "yard_event_subscribers", "gauge", "Subscribers connected",
             s_num(ev, "subscribers"));

    json_t *mem = json_object_get(stats, "memory");
    json_t *broker = json_object_get(stats, "broker");
    s_scalar(&o, "yard_broker_rss_bytes", "gauge",
             "Resident memory of yard-broker", s_num(mem, "rss_bytes"));
    s_scalar(&o, "yard_broker_tasks_held", "gauge",
             "Tasks the broker holds (queued, in flight, delayed)",
             s_num(mem, "tasks"));
    s_family(&o, "yard_broker_uptime_seconds", "gauge",
             "Seconds since yard-broker started");
    s_printf(&o, "yard_broker_uptime_seconds %.3f\n",
             s_num(broker, "uptime_ms") / 1000.0);
    s_family(&o, "yard_health_rss_bytes", "gauge",
             "Resident memory of yard-health");
    s_printf(&o, "yard_health_rss_bytes %llu\n",
             (unsigned long long)yard_proc_read_rss());

    json_t *procs = health_processes(self);
    if (procs)
        s_processes(&o, procs);
    json_decref(procs);

    if (cache) {
        json_t *l1 = json_object_get(cache, "l1");
        json_t *l2 = json_object_get(cache, "l2");
        s_scalar(&o, "yard_cache_hits_total", "counter",
                 "yard-cache gets answered with a value", s_num(cache, "hits"));
        s_scalar(&o, "yard_cache_misses_total", "counter",
                 "yard-cache gets answered without one",
                 s_num(cache, "misses"));
        s_scalar(&o, "yard_cache_hit_rate", "gauge",
                 "Hits over gets since yard-cache started",
                 s_num(cache, "hit_rate"));
        s_family(&o, "yard_cache_entries", "gauge", "Entries held, per tier");
        s_printf(&o, "yard_cache_entries{tier=\"l1\"} ");
        s_value(&o, s_num(l1, "entries"));
        s_printf(&o, "\n");
        s_family(&o, "yard_cache_bytes", "gauge", "Bytes held in L1");
        s_printf(&o, "yard_cache_bytes{tier=\"l1\"} ");
        s_value(&o, s_num(l1, "bytes"));
        s_printf(&o, "\n");
        s_family(&o, "yard_cache_degraded", "gauge",
                 "1 while yard-cache's Redis is unreachable");
        s_printf(&o, "yard_cache_degraded %d\n",
                 json_is_true(json_object_get(cache, "degraded")));
        s_scalar(&o, "yard_cache_redis_errors_total", "counter",
                 "Redis errors seen by yard-cache", s_num(l2, "errors"));
    }
    json_decref(stats);
    json_decref(cache);
    json_decref(report);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}
