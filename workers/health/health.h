/*  health.h — yard-health: the yard.health service and the HTTP admin API.
    The process state shared by its files.

        health_main.c   flags (flag > environment > default), start, stop;
                        the worker runtime (service yard.health) on the
                        main thread
        health_check.c  the checker thread: every interval it asks the
                        broker for its stats, yard.cache for its stats and
                        Redis for PONG, derives the overall status, keeps
                        the snapshot the HTTP API serves, and publishes
                        system.health.check (every check) and
                        system.health.changed (on a change)
        health_events.c the event thread: one subscriber to every event,
                        a bounded ring of the recent ones for the SSE
                        stream, and worker.lost / worker.joined tracking
        health_http.c   the HTTP API on libmicrohttpd (a thread per
                        connection, so an SSE stream may block its own)
        health_prom.c   the Prometheus text of a snapshot

    Threads and locks. Each thread that talks to the broker has its own
    yard_client_t (a client belongs to one thread): the checker's, and
    one for the HTTP actions (breaker reset, cache clear ...) behind
    `action_lock`. The snapshot (broker stats, cache stats, status) is
    replaced whole under `lock`; readers take a reference (json_incref)
    under it and use it after. */
#ifndef YARD_HEALTH_H
#define YARD_HEALTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "yard_client.h"
#include "yard_worker.h"

#define YARD_HEALTH_SERVICE "yard.health"
#define YARD_HEALTH_MAX_BODY 65536 /*  request body bytes at most */
#define YARD_HEALTH_RING 4096      /*  recent events kept for SSE */
#define YARD_HEALTH_MAX_LOST 64    /*  lost workers remembered */
#define YARD_HEALTH_SSE_KEEPALIVE_MS 15000
#define YARD_HEALTH_MAX_CONNECTIONS 256

typedef enum {
    HEALTH_HEALTHY = 0,
    HEALTH_WARNING = 1,
    HEALTH_CRITICAL = 2,
} health_status_t;

/*  Settings, after flags, environment and defaults. */
typedef struct {
    const char *broker;      /*  task endpoint */
    const char *events;      /*  events endpoint */
    const char *http;        /*  ADDR:PORT to listen on */
    const char *redis;       /*  Redis URL to ping, or NULL */
    const char *name;        /*  worker name, NULL: hostname-pid */
    char *api_key;           /*  NULL: no authentication (malloc'd) */
    uint32_t interval_ms;    /*  check period */
    uint32_t lost_window_ms; /*  a lost worker warns this long at most */
    uint32_t timeout_ms;     /*  broker / cache / Redis answer deadline */
    uint32_t mem_growth_mb;  /*  memory growth that flags a process */
} health_config_t;

/*  One event kept for the SSE stream: its frame, ready to send. */
typedef struct {
    uint64_t seq; /*  1, 2, ... (the SSE id) */
    char *type;   /*  event type */
    char *frame;  /*  "id: N\nevent: TYPE\ndata: JSON\n\n" */
    size_t len;
} health_event_t;

/*  A worker the broker reported lost, until one of its service joins. */
typedef struct {
    char service[YARD_MAX_SERVICE + 1];
    char name[128];
    int64_t at_ms; /*  monotonic time of the worker.lost event */
} health_lost_t;

typedef struct health health_t;

struct health {
    health_config_t cfg;
    int64_t started_ms;    /*  monotonic */
    yard_worker_t *worker; /*  the yard.health worker runtime */
    atomic_bool stopping;  /*  set once: threads end */

    /*  The snapshot, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t changed; /*  signalled on a new event or a stop */
    json_t *stats;          /*  broker stats (NULL: unreachable) */
    json_t *cache_stats;    /*  yard.cache stats, or NULL */
    json_t *report;         /*  the /v1/health object */
    json_t *processes;      /*  every process's health (array), or NULL */
    health_status_t status;
    bool checked;          /*  a first check is done */
    int64_t broker_rtt_us; /*  of the last stats call */
    uint64_t checks;       /*  checks done */

    /*  Events, under lock. */
    health_event_t ring[YARD_HEALTH_RING];
    uint64_t next_seq;      /*  seq of the next event (from 1) */
    uint64_t events_seen;   /*  received in all */
    uint64_t events_missed; /*  lost by the broker on the way to us */
    bool subscribed;
    health_lost_t lost[YARD_HEALTH_MAX_LOST];
    size_t nlost;

    /*  HTTP actions' client, under action_lock. */
    pthread_mutex_t action_lock;
    yard_client_t *action_client;

    /*  HTTP counters. */
    atomic_uint_fast64_t http_requests;
    atomic_uint_fast64_t http_unauthorized;
    atomic_uint_fast64_t sse_clients;

    pthread_t checker, events;
    bool checker_started, events_started;
    struct MHD_Daemon *httpd;
};

/* ---- health_check.c ----------------------------------------------------- */

/*  Starts the checker thread. 0 or -1. */
int health_checker_start(health_t *self);

/*  Runs one check now (the checker's loop body), with client. Used by the
    checker and by HTTP actions that want fresh figures. */
void health_check_once(health_t *self, yard_client_t *client);

/*  "healthy", "warning", "critical". */
const char *health_status_name(health_status_t status);

/*  Takes references to the current snapshot (each may be NULL); the
    caller json_decrefs them. */
void health_snapshot(health_t *self, json_t **stats, json_t **cache_stats,
                     json_t **report);

/*  The processes array of the snapshot (a reference, or NULL). */
json_t *health_processes(health_t *self);

/* ---- health_events.c ---------------------------------------------------- */

/*  Starts the event thread. 0 or -1. */
int health_events_start(health_t *self);

/*  Notes a worker.lost / worker.joined (also used by tests of the rules). */
void health_note_lost(health_t *self, const char *service, const char *name);
void health_note_joined(health_t *self, const char *service);

/* ---- health_http.c ------------------------------------------------------ */

/*  Starts the HTTP daemon on cfg.http. 0, or -1 after logging why. */
int health_http_start(health_t *self);
void health_http_stop(health_t *self);

/* ---- health_prom.c ------------------------------------------------------ */

/*  The Prometheus text (format 0.0.4) of a snapshot; malloc'd, *len set. */
char *health_prometheus(health_t *self, size_t *len);

#endif
