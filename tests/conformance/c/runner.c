/*  runner.c — yard-conformance, the C runner of the conformance suite
    (tests/conformance/README.md is its contract).

        yard-conformance worker --broker EP --service NAME --capacity N
                                --lang LANG
        yard-conformance client --broker EP --events EP < program.json

    The worker serves the ops of the README's worker table on libyard's
    worker runtime (yard_worker.h). The client reads a program of steps as
    JSON on stdin, runs them on libyard's client (yard_client.h) and
    subscriber (yard_sub.h), and prints one JSON object per observation.
    Only libyard's public headers and jansson are used. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "yard_client.h"
#include "yard_sub.h"
#include "yard_worker.h"

/*  How long a confirmed publish and a subscription wait for the broker
    unless the step says otherwise. */
#define S_PUBLISH_TIMEOUT_MS 5000
#define S_SUBSCRIBE_TIMEOUT_MS 5000

/*  The longest slice a next_event step waits on its subscriber before it
    lets the client take results (and heartbeat) again. */
#define S_EVENT_SLICE_MS 50

/*  A sleeping handler checks for cancellation this often. */
#define S_SLEEP_POLL_MS 5

/*  The oversize op answers this many bytes: one over the limit. */
#define S_OVERSIZE_LEN ((size_t)YARD_MAX_PAYLOAD + 1)

static const char *s_usage =
    "usage: yard-conformance worker --broker EP --service NAME "
    "--capacity N --lang LANG\n"
    "       yard-conformance client --broker EP --events EP < program.json\n"
    "\n"
    "The conformance runner of libyard (tests/conformance/README.md).\n";

/* ---- Small helpers ------------------------------------------------------ */

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*  Milliseconds left before deadline, clamped to 0..INT_MAX. */
static int s_left_ms(int64_t deadline)
{
    int64_t left = deadline - s_now_ms();
    if (left < 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static void s_sleep_ms(int ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*  Parses a decimal integer in [min, max]; false if text is not one. */
static bool s_parse_long(const char *text, long min, long max, long *out)
{
    if (!text || !*text)
        return false;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/*  Flag parsing shared by both modes: "--name value" or "--name=value".
    Returns the value of flag name at argv[*i] (advancing *i past a
    separate value), or NULL when argv[*i] is not that flag. Sets *missing
    when the flag is there but its value is not. */
static const char *s_flag(int argc, char **argv, int *i, const char *name,
                          bool *missing)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return NULL;
    if (arg[n] == '=')
        return arg + n + 1;
    if (arg[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static int s_bad_flags(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int s_bad_flags(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("yard-conformance: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    fputs(s_usage, stderr);
    return 2;
}

/* ========================================================================
   Worker mode
   ======================================================================== */

typedef struct {
    char *whoami; /*  the exact whoami answer, {"lang":"LANG"} */
} s_worker_ctx_t;

/*  Waits ms milliseconds, polling for cancellation; false if cancelled. */
static bool s_job_sleep(yard_job_t *job, int64_t ms)
{
    int64_t end = s_now_ms() + ms;
    for (;;) {
        if (yard_job_cancelled(job))
            return false;
        int64_t left = end - s_now_ms();
        if (left <= 0)
            return true;
        s_sleep_ms(left < S_SLEEP_POLL_MS ? (int)left : S_SLEEP_POLL_MS);
    }
}

static void s_op_crash_once(yard_job_t *job, json_t *req, yard_bytes_t p)
{
    json_t *marker = json_object_get(req, "marker");
    const char *path = json_string_value(marker);
    if (!path || !*path || strlen(path) != json_string_length(marker)) {
        yard_job_fail(job, "op crash_once needs a \"marker\" path string");
        return;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
        /*  First attempt: leave the marker and die at once, sending
            nothing (no RESULT, no DISCONNECT). */
        close(fd);
        fprintf(stderr,
                "yard-conformance worker: crash_once: marker %s "
                "created, killing myself\n",
                path);
        raise(SIGKILL);
        _exit(137); /*  not reached */
    }
    if (errno != EEXIST) {
        yard_job_fail(job, "op crash_once: cannot create marker %s: %s", path,
                      strerror(errno));
        return;
    }
    yard_job_reply(job, p.ptr, p.len);
}

static void s_op_oversize(yard_job_t *job)
{
    char *big = malloc(S_OVERSIZE_LEN);
    if (!big) {
        yard_job_fail(job, "op oversize: out of memory");
        return;
    }
    memset(big, 'x', S_OVERSIZE_LEN);
    int rc = yard_job_reply(job, big, S_OVERSIZE_LEN);
    free(big);
    if (rc == 0)
        /*  libyard took it as an ok result: nothing more a handler can
            do (the first answer stands). Say so loudly. */
        fprintf(stderr,
                "yard-conformance worker: libyard accepted a %zu-byte "
                "reply (over YARD_MAX_PAYLOAD)\n",
                S_OVERSIZE_LEN);
    else if (rc != YARD_E_TOO_LARGE)
        fprintf(stderr,
                "yard-conformance worker: oversize reply: unexpected %s\n",
                yard_strerror(rc));
    /*  YARD_E_TOO_LARGE: libyard answered the job with an error naming
        the size, which is what the contract asks for. */
}

static void s_worker_handler(yard_job_t *job, void *arg)
{
    const s_worker_ctx_t *ctx = (const s_worker_ctx_t *)arg;
    yard_bytes_t p = yard_job_payload(job);
    json_error_t jerr;
    json_t *req = json_loadb(p.ptr ? (const char *)p.ptr : "", p.len, 0, &jerr);
    if (!req) {
        yard_job_fail(job, "payload is not JSON: %s", jerr.text);
        return;
    }
    if (!json_is_object(req)) {
        yard_job_fail(job, "payload is not a JSON object");
        json_decref(req);
        return;
    }
    json_t *opj = json_object_get(req, "op");
    const char *op = json_string_value(opj);
    if (!op) {
        yard_job_fail(job, "payload has no \"op\" string");
        json_decref(req);
        return;
    }
    if (strcmp(op, "echo") == 0)
        yard_job_reply(job, p.ptr, p.len);
    else if (strcmp(op, "whoami") == 0)
        yard_job_reply(job, ctx->whoami, strlen(ctx->whoami));
    else if (strcmp(op, "fail") == 0) {
        const char *text = json_string_value(json_object_get(req, "error"));
        if (text)
            yard_job_fail(job, "%s", text);
        else
            yard_job_fail(job, "op fail needs an \"error\" string");
    } else if (strcmp(op, "sleep") == 0) {
        json_t *ms = json_object_get(req, "ms");
        if (!json_is_integer(ms) || json_integer_value(ms) < 0)
            yard_job_fail(job, "op sleep needs \"ms\", an integer >= 0");
        else if (s_job_sleep(job, json_integer_value(ms)))
            yard_job_reply(job, p.ptr, p.len);
        /*  Cancelled: return unanswered, the runtime answers it
            "cancelled". */
    } else if (strcmp(op, "crash_once") == 0)
        s_op_crash_once(job, req, p);
    else if (strcmp(op, "oversize") == 0)
        s_op_oversize(job);
    else
        yard_job_fail(job, "unknown op \"%s\"", op);
    json_decref(req);
}

static int s_worker_main(int argc, char **argv)
{
    const char *broker = NULL, *service = NULL, *lang = NULL;
    long capacity = 4;
    for (int i = 0; i < argc; i++) {
        bool missing = false;
        const char *v;
        if ((v = s_flag(argc, argv, &i, "--broker", &missing)))
            broker = v;
        else if ((v = s_flag(argc, argv, &i, "--service", &missing)))
            service = v;
        else if ((v = s_flag(argc, argv, &i, "--lang", &missing)))
            lang = v;
        else if ((v = s_flag(argc, argv, &i, "--capacity", &missing))) {
            if (!s_parse_long(v, 1, YARD_MAX_CAPACITY, &capacity))
                return s_bad_flags("--capacity must be 1..%d, not \"%s\"",
                                   YARD_MAX_CAPACITY, v);
        } else if (missing)
            return s_bad_flags("%s needs a value", argv[i]);
        else
            return s_bad_flags("unknown worker flag \"%s\"", argv[i]);
    }
    if (!broker || !service || !lang)
        return s_bad_flags("worker needs --broker, --service and --lang");

    s_worker_ctx_t ctx;
    json_t *who = json_pack("{s:s}", "lang", lang);
    ctx.whoami = who ? json_dumps(who, JSON_COMPACT) : NULL;
    json_decref(who);
    if (!ctx.whoami) {
        fprintf(stderr, "yard-conformance worker: --lang must be UTF-8\n");
        return 2;
    }

    yard_worker_config_t cfg;
    yard_worker_config_defaults(&cfg);
    cfg.broker = broker;
    cfg.service = service;
    cfg.capacity = (uint32_t)capacity;
    /*  One handler thread per slot: N sleeps run at once. */
    cfg.threads = YARD_WORKER_THREADS_PER_SLOT;
    cfg.handler = s_worker_handler;
    cfg.handler_arg = &ctx;
    cfg.grace_ms = 3000; /*  run.py gives a worker 5 s after SIGTERM */
    char why[256];
    if (yard_worker_config_check(&cfg, why, sizeof why) != 0) {
        free(ctx.whoami);
        return s_bad_flags("bad worker settings: %s", why);
    }
    yard_worker_t *worker = yard_worker_new(&cfg);
    if (!worker) {
        fprintf(stderr, "yard-conformance worker: cannot create the worker\n");
        free(ctx.whoami);
        return 1;
    }
    yard_worker_stop_on_signals(worker);
    int rc = yard_worker_run(worker);
    yard_worker_stop_on_signals(NULL);
    yard_worker_destroy(&worker);
    free(ctx.whoami);
    if (rc != 0) {
        fprintf(stderr, "yard-conformance worker: %s\n", yard_strerror(rc));
        return 1;
    }
    return 0;
}

/* ========================================================================
   Client mode
   ======================================================================== */

typedef enum {
    S_SUBMIT,
    S_WAIT,
    S_CANCEL,
    S_SLEEP,
    S_SUBSCRIBE,
    S_PUBLISH,
    S_NEXT_EVENT,
} s_kind_t;

/*  One step, checked and resolved before anything runs. Strings point
    into the program's JSON, which outlives the steps. */
typedef struct {
    s_kind_t kind;
    size_t ref;              /*  the task or subscriber it is about     */
    const char *service;     /*  submit                                 */
    const char *data;        /*  submit / publish payload               */
    size_t data_len;         /*  its bytes                              */
    const char *type;        /*  publish                                */
    int ms;                  /*  wait / next_event timeout, sleep,
                                 publish timeout                        */
    yard_submit_opts_t opts; /*  submit                                 */
    yard_cache_opts_t cache; /*  submit, when opts.cache is set         */
    const char **lists[3];   /*  cache tags, key, exclude (malloc'd)   */
    const char **prefixes;   /*  subscribe (malloc'd)                   */
    size_t nprefixes;        /*  their count                            */
} s_step_t;

/*  A task of the program (one per submit step). */
typedef struct {
    const char *name;            /*  its "as"                          */
    char id[YARD_CLIENT_ID_MAX]; /*  the library's id, once submitted  */
    bool submitted;              /*  submit ran                        */
    yard_reply_t *reply;         /*  its outcome, once it came         */
    unsigned order;              /*  1-based arrival position, or 0    */
    int refused; /*  the library's error when it refused to send it */
} s_task_t;

/*  A subscriber of the program (one per subscribe step). */
typedef struct {
    const char *name;       /*  its "as"                                 */
    yard_subscriber_t *sub; /*  once subscribe ran                       */
} s_sub_t;

typedef struct {
    const char *broker;
    const char *events;
    json_t *program;
    s_step_t *steps;
    size_t nsteps;
    s_task_t *tasks;
    size_t ntasks;
    s_sub_t *subs;
    size_t nsubs;
    yard_client_t *client;
    unsigned arrivals; /*  outcomes received so far                    */
} s_client_t;

static void s_step_fail(size_t i, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_step_fail(size_t i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "yard-conformance client: step %zu: ", i);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
}

/* ---- Reading the program ------------------------------------------------ */

/*  A required string member without NUL bytes. */
static int s_get_str(size_t i, json_t *step, const char *key, const char **out)
{
    json_t *v = json_object_get(step, key);
    if (!v) {
        s_step_fail(i, "missing \"%s\"", key);
        return -1;
    }
    if (!json_is_string(v) ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        s_step_fail(i, "\"%s\" must be a string (without NUL)", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/*  A required (or optional) integer member in [min, max]. */
static int s_get_int(size_t i, json_t *obj, const char *key, bool opt,
                     json_int_t min, json_int_t max, json_int_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (opt)
            return 0;
        s_step_fail(i, "missing \"%s\"", key);
        return -1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > max) {
        s_step_fail(i, "\"%s\" must be an integer in %lld..%lld", key,
                    (long long)min, (long long)max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/*  A list of strings as a malloc'd NULL-terminated array; its length in
 *count when count is not NULL. */
static int s_get_strlist(size_t i, json_t *obj, const char *key,
                         const char ***out, size_t *count)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_array(v)) {
        s_step_fail(i, "\"%s\" must be a list of strings", key);
        return -1;
    }
    size_t n = json_array_size(v);
    const char **list = calloc(n + 1, sizeof *list);
    if (!list) {
        s_step_fail(i, "out of memory");
        return -1;
    }
    for (size_t j = 0; j < n; j++) {
        json_t *item = json_array_get(v, j);
        if (!json_is_string(item) ||
            strlen(json_string_value(item)) != json_string_length(item)) {
            s_step_fail(i, "\"%s\"[%zu] must be a string (without NUL)", key,
                        j);
            free(list);
            return -1;
        }
        list[j] = json_string_value(item);
    }
    *out = list;
    if (count)
        *count = n;
    return 0;
}

/*  The latest task named name so far (while parsing: defined by an
    earlier step), or ntasks. */
static size_t s_find_task(const s_client_t *c, const char *name)
{
    for (size_t k = c->ntasks; k-- > 0;)
        if (strcmp(c->tasks[k].name, name) == 0)
            return k;
    return c->ntasks;
}

/*  The same for subscribers. */
static size_t s_find_sub(const s_client_t *c, const char *name)
{
    for (size_t k = c->nsubs; k-- > 0;)
        if (strcmp(c->subs[k].name, name) == 0)
            return k;
    return c->nsubs;
}

static int s_parse_cache(size_t i, json_t *cj, s_step_t *st)
{
    memset(&st->cache, 0, sizeof st->cache);
    if (json_is_false(cj))
        return 0;
    if (json_is_true(cj)) {
        st->opts.cache = &st->cache;
        return 0;
    }
    if (!json_is_object(cj)) {
        s_step_fail(i, "\"cache\" must be true, false or an object");
        return -1;
    }
    json_int_t ttl = 0;
    if (s_get_int(i, cj, "ttl_ms", true, 0, UINT32_MAX, &ttl) != 0)
        return -1;
    st->cache.ttl_ms = (uint32_t)ttl;
    static const char *const names[3] = {"tags", "key", "exclude"};
    for (size_t k = 0; k < 3; k++) {
        if (!json_object_get(cj, names[k]))
            continue;
        if (s_get_strlist(i, cj, names[k], &st->lists[k], NULL) != 0)
            return -1;
    }
    st->cache.tags = st->lists[0];
    st->cache.key = st->lists[1];
    st->cache.exclude = st->lists[2];
    st->opts.cache = &st->cache;
    return 0;
}

/*  The step's "payload" string, as the bytes to send. */
static int s_get_payload(size_t i, json_t *sj, s_step_t *st)
{
    json_t *payload = json_object_get(sj, "payload");
    if (!json_is_string(payload)) {
        s_step_fail(i, payload ? "\"payload\" must be a string"
                               : "missing \"payload\"");
        return -1;
    }
    st->data = json_string_value(payload);
    st->data_len = json_string_length(payload);
    return 0;
}

static int s_parse_submit(s_client_t *c, size_t i, json_t *sj, s_step_t *st)
{
    const char *name;
    json_int_t v;
    if (s_get_str(i, sj, "as", &name) != 0 ||
        s_get_str(i, sj, "service", &st->service) != 0)
        return -1;
    if (s_get_payload(i, sj, st) != 0)
        return -1;
    v = 0;
    if (s_get_int(i, sj, "timeout_ms", true, 0, UINT32_MAX, &v) != 0)
        return -1;
    st->opts.timeout_ms = (uint32_t)v;
    v = 0;
    if (s_get_int(i, sj, "retries", true, 0, UINT32_MAX, &v) != 0)
        return -1;
    st->opts.retries = (uint32_t)v;
    v = 0;
    if (s_get_int(i, sj, "backoff_ms", true, 0, UINT32_MAX, &v) != 0)
        return -1;
    st->opts.backoff_ms = (uint32_t)v;
    v = 0;
    if (s_get_int(i, sj, "priority", true, 0, UINT8_MAX, &v) != 0)
        return -1;
    st->opts.priority = (uint8_t)v;
    json_t *cj = json_object_get(sj, "cache");
    if (cj && s_parse_cache(i, cj, st) != 0)
        return -1;
    s_task_t *task = &c->tasks[c->ntasks];
    memset(task, 0, sizeof *task);
    task->name = name;
    st->ref = c->ntasks++;
    return 0;
}

/*  Checks one step and resolves its names. */
static int s_parse_step(s_client_t *c, size_t i, json_t *sj, s_step_t *st)
{
    memset(st, 0, sizeof *st);
    if (!json_is_object(sj)) {
        s_step_fail(i, "a step must be an object");
        return -1;
    }
    const char *what, *name;
    json_int_t v;
    if (s_get_str(i, sj, "do", &what) != 0)
        return -1;
    if (strcmp(what, "submit") == 0) {
        st->kind = S_SUBMIT;
        return s_parse_submit(c, i, sj, st);
    }
    if (strcmp(what, "wait") == 0 || strcmp(what, "cancel") == 0) {
        st->kind = what[0] == 'w' ? S_WAIT : S_CANCEL;
        if (s_get_str(i, sj, "task", &name) != 0)
            return -1;
        st->ref = s_find_task(c, name);
        if (st->ref == c->ntasks) {
            s_step_fail(i, "no task \"%s\" was submitted before", name);
            return -1;
        }
        if (st->kind == S_WAIT) {
            if (s_get_int(i, sj, "timeout_ms", false, 0, INT_MAX, &v) != 0)
                return -1;
            st->ms = (int)v;
        }
        return 0;
    }
    if (strcmp(what, "sleep") == 0) {
        st->kind = S_SLEEP;
        if (s_get_int(i, sj, "ms", false, 0, INT_MAX, &v) != 0)
            return -1;
        st->ms = (int)v;
        return 0;
    }
    if (strcmp(what, "subscribe") == 0) {
        st->kind = S_SUBSCRIBE;
        if (s_get_str(i, sj, "as", &name) != 0)
            return -1;
        if (!json_object_get(sj, "prefixes")) {
            s_step_fail(i, "missing \"prefixes\"");
            return -1;
        }
        if (s_get_strlist(i, sj, "prefixes", &st->prefixes, &st->nprefixes))
            return -1;
        if (!c->events) {
            s_step_fail(i, "subscribe needs --events");
            return -1;
        }
        c->subs[c->nsubs].name = name;
        c->subs[c->nsubs].sub = NULL;
        st->ref = c->nsubs++;
        v = S_SUBSCRIBE_TIMEOUT_MS;
        if (s_get_int(i, sj, "timeout_ms", true, 0, INT_MAX, &v) != 0)
            return -1;
        st->ms = (int)v;
        return 0;
    }
    if (strcmp(what, "publish") == 0) {
        st->kind = S_PUBLISH;
        if (s_get_str(i, sj, "type", &st->type) != 0)
            return -1;
        if (s_get_payload(i, sj, st) != 0)
            return -1;
        v = S_PUBLISH_TIMEOUT_MS;
        if (s_get_int(i, sj, "timeout_ms", true, 0, INT_MAX, &v) != 0)
            return -1;
        st->ms = (int)v;
        return 0;
    }
    if (strcmp(what, "next_event") == 0) {
        st->kind = S_NEXT_EVENT;
        if (s_get_str(i, sj, "sub", &name) != 0)
            return -1;
        st->ref = s_find_sub(c, name);
        if (st->ref == c->nsubs) {
            s_step_fail(i, "no subscription \"%s\" was made before", name);
            return -1;
        }
        if (s_get_int(i, sj, "timeout_ms", false, 0, INT_MAX, &v) != 0)
            return -1;
        st->ms = (int)v;
        return 0;
    }
    s_step_fail(i, "unknown step \"%s\"", what);
    return -1;
}

/*  Parses the whole program before running any of it. */
static int s_parse_program(s_client_t *c)
{
    json_t *steps = json_object_get(c->program, "steps");
    if (!json_is_object(c->program) || !json_is_array(steps)) {
        fprintf(stderr, "yard-conformance client: the program must be an "
                        "object with a \"steps\" list\n");
        return -1;
    }
    size_t n = json_array_size(steps);
    /*  At most one task or subscriber per step. */
    c->steps = calloc(n ? n : 1, sizeof *c->steps);
    c->tasks = calloc(n ? n : 1, sizeof *c->tasks);
    c->subs = calloc(n ? n : 1, sizeof *c->subs);
    if (!c->steps || !c->tasks || !c->subs) {
        fprintf(stderr, "yard-conformance client: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        c->nsteps = i + 1; /*  so a half-parsed step is freed too */
        if (s_parse_step(c, i, json_array_get(steps, i), &c->steps[i]) != 0)
            return -1;
    }
    return 0;
}

/* ---- Printing ----------------------------------------------------------- */

/*  Length of the valid UTF-8 sequence at p[0..len) (as jansson accepts
    it: no overlongs, no surrogates, at most U+10FFFF), or 0. */
static size_t s_utf8_seq(const unsigned char *p, size_t len)
{
    unsigned char b = p[0];
    size_t need;
    uint32_t cp;
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 2;
        cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 3;
        cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4;
        cp = b & 0x07;
    } else
        return 0;
    if (need > len)
        return 0;
    for (size_t k = 1; k < need; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

/*  Bytes as a JSON string: UTF-8 as it is, each invalid byte as U+FFFD. */
static json_t *s_json_text(const void *data, size_t len)
{
    if (!data)
        return json_string("");
    json_t *s = json_stringn((const char *)data, len);
    if (s)
        return s;
    const unsigned char *p = (const unsigned char *)data;
    char *fixed = malloc(len * 3 + 1);
    if (!fixed)
        return NULL;
    size_t o = 0;
    for (size_t k = 0; k < len;) {
        size_t n = s_utf8_seq(p + k, len - k);
        if (n) {
            memcpy(fixed + o, p + k, n);
            o += n;
            k += n;
        } else {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            k++;
        }
    }
    s = json_stringn(fixed, o);
    free(fixed);
    return s;
}

/*  Prints obj as one compact line, flushed, and releases it. */
static int s_emit(json_t *obj)
{
    char *line = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!line) {
        fprintf(stderr, "yard-conformance client: cannot encode an "
                        "observation\n");
        return -1;
    }
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(line);
    return 0;
}

/* ---- Receiving outcomes ------------------------------------------------- */

/*  Files one reply under its task and gives it its arrival position. */
static void s_file_reply(s_client_t *c, yard_reply_t *reply)
{
    for (size_t k = 0; k < c->ntasks; k++) {
        s_task_t *t = &c->tasks[k];
        if (t->submitted && !t->reply && strcmp(t->id, reply->id) == 0) {
            t->reply = reply;
            t->order = ++c->arrivals;
            return;
        }
    }
    fprintf(stderr,
            "yard-conformance client: reply for unknown task %s dropped\n",
            reply->id);
    yard_reply_destroy(&reply);
}

/*  Takes every reply that arrives before deadline, or until task stop
    (when not NULL) has its outcome. -1 on an error the client cannot go
    on from. */
static int s_receive(s_client_t *c, int64_t deadline, const s_task_t *stop)
{
    for (;;) {
        if (stop && stop->reply)
            return 0;
        yard_reply_t *reply = NULL;
        /*  Past the deadline this still takes what has already arrived
            (a wait of 0 reads the socket once). */
        int rc = yard_client_wait(c->client, s_left_ms(deadline), &reply);
        if (rc == 0)
            s_file_reply(c, reply);
        else if (rc == YARD_E_NOTFOUND) {
            /*  Nothing outstanding: nothing can arrive. Pass the time. */
            if (!stop)
                s_sleep_ms(s_left_ms(deadline));
            return 0;
        } else if (rc == YARD_E_TIMEOUT || rc == YARD_E_INTERRUPTED) {
            if (s_left_ms(deadline) == 0)
                return 0;
        } else {
            fprintf(stderr, "yard-conformance client: wait: %s\n",
                    yard_strerror(rc));
            return -1;
        }
    }
}

/* ---- Running steps ------------------------------------------------------ */

static int s_run_submit(s_client_t *c, size_t i, s_step_t *st)
{
    s_task_t *t = &c->tasks[st->ref];
    int rc = yard_client_submit(c->client, st->service, st->data, st->data_len,
                                &st->opts, t->id, sizeof t->id);
    if (rc != 0) {
        /*  The library refused to send it: its outcome is invalid, and
            it is ordered now (README, "The client runner"). */
        (void)i;
        t->refused = rc;
        t->order = ++c->arrivals;
        return 0;
    }
    t->submitted = true;
    return 0;
}

static int s_run_wait(s_client_t *c, size_t i, s_step_t *st)
{
    s_task_t *t = &c->tasks[st->ref];
    if (!t->reply && !t->refused && s_receive(c, s_now_ms() + st->ms, t) != 0)
        return -1;
    json_t *o = json_object();
    json_object_set_new(o, "step", json_integer((json_int_t)i));
    json_object_set_new(o, "task", json_string(t->name));
    if (t->refused) {
        json_object_set_new(o, "status", json_string("invalid"));
        json_object_set_new(o, "payload", json_string(""));
        json_object_set_new(o, "error", json_string(yard_strerror(t->refused)));
        json_object_set_new(o, "attempts", json_integer(0));
        json_object_set_new(o, "cached", json_false());
        json_object_set_new(o, "retry_after_ms", json_integer(0));
        json_object_set_new(o, "order", json_integer(t->order));
        return s_emit(o);
    }
    if (!t->reply) {
        json_object_set_new(o, "status", json_string("no_outcome"));
        return s_emit(o);
    }
    const yard_reply_t *r = t->reply;
    json_object_set_new(o, "status", json_string(yard_status_name(r->status)));
    json_object_set_new(o, "payload", s_json_text(r->payload, r->payload_len));
    json_object_set_new(o, "error",
                        s_json_text(r->error, r->error ? strlen(r->error) : 0));
    json_object_set_new(o, "attempts", json_integer(r->attempts));
    json_object_set_new(o, "cached", json_boolean(r->cached));
    json_object_set_new(o, "retry_after_ms", json_integer(r->retry_after_ms));
    json_object_set_new(o, "order", json_integer(t->order));
    return s_emit(o);
}

static int s_run_cancel(s_client_t *c, size_t i, s_step_t *st)
{
    s_task_t *t = &c->tasks[st->ref];
    if (!t->submitted || t->reply)
        return 0; /*  already answered: nothing to cancel */
    int rc = yard_client_cancel(c->client, t->id);
    if (rc == YARD_E_IO) {
        /*  The socket would not take it now: let the client work a
            moment, then try once more. */
        if (s_receive(c, s_now_ms() + 100, NULL) != 0)
            return -1;
        rc = t->reply ? 0 : yard_client_cancel(c->client, t->id);
    }
    /*  NOTFOUND: its outcome is in and waits in the library's buffer. */
    if (rc != 0 && rc != YARD_E_NOTFOUND) {
        s_step_fail(i, "cancel of \"%s\": %s", t->name, yard_strerror(rc));
        return -1;
    }
    return 0;
}

static int s_run_subscribe(s_client_t *c, size_t i, s_step_t *st)
{
    int err = 0;
    yard_subscriber_t *sub = yard_subscriber_new(c->events, st->prefixes,
                                                 st->nprefixes, st->ms, &err);
    if (!sub) {
        s_step_fail(i, "subscribe to %s: %s", c->events, yard_strerror(err));
        return -1;
    }
    c->subs[st->ref].sub = sub;
    return 0;
}

static int s_run_publish(s_client_t *c, size_t i, s_step_t *st)
{
    size_t cap = st->data_len + 5;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        s_step_fail(i, "out of memory");
        return -1;
    }
    size_t len = yard_msgpack_str(buf, cap, st->data, st->data_len);
    int rc = yard_client_publish_confirmed(c->client, st->type, buf, len, NULL,
                                           st->ms);
    free(buf);
    json_t *o = json_object();
    json_object_set_new(o, "step", json_integer((json_int_t)i));
    json_object_set_new(o, "published", json_boolean(rc == 0));
    if (rc != 0) {
        const char *why = yard_client_last_error(c->client);
        char text[YARD_MAX_ERROR + 64];
        if (why && *why)
            snprintf(text, sizeof text, "%s", why);
        else
            snprintf(text, sizeof text, "%s", yard_strerror(rc));
        json_object_set_new(o, "error", s_json_text(text, strlen(text)));
    }
    return s_emit(o);
}

/*  Decodes an event payload that is one msgpack str; false otherwise. */
static bool s_msgpack_str(const uint8_t *p, size_t len, const uint8_t **s,
                          size_t *slen)
{
    if (!p || len == 0)
        return false;
    size_t head, n;
    if (p[0] >= 0xA0 && p[0] <= 0xBF) {
        head = 1;
        n = p[0] & 0x1F;
    } else if (p[0] == 0xD9 && len >= 2) {
        head = 2;
        n = p[1];
    } else if (p[0] == 0xDA && len >= 3) {
        head = 3;
        n = ((size_t)p[1] << 8) | p[2];
    } else if (p[0] == 0xDB && len >= 5) {
        head = 5;
        n = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) |
            p[4];
    } else
        return false;
    if (head + n != len)
        return false;
    *s = p + head;
    *slen = n;
    return true;
}

static int s_run_next_event(s_client_t *c, size_t i, s_step_t *st)
{
    s_sub_t *s = &c->subs[st->ref];
    int64_t deadline = s_now_ms() + st->ms;
    yard_sub_event_t *ev = NULL;
    for (bool first = true;; first = false) {
        int left = s_left_ms(deadline);
        if (left == 0 && !first)
            break;
        int slice = left < S_EVENT_SLICE_MS ? left : S_EVENT_SLICE_MS;
        int rc = yard_subscriber_next(s->sub, slice, &ev);
        if (rc == 0)
            break;
        if (rc != YARD_E_TIMEOUT && rc != YARD_E_INTERRUPTED) {
            if (rc == YARD_E_IO || rc == YARD_E_ARG || rc == YARD_E_NOMEM) {
                s_step_fail(i, "next event of \"%s\": %s", s->name,
                            yard_strerror(rc));
                return -1;
            }
            /*  A refused re-subscription is reported once; keep going. */
            fprintf(stderr, "yard-conformance client: subscriber %s: %s\n",
                    s->name, yard_strerror(rc));
        }
        /*  Meanwhile, let the client take results and heartbeat. */
        if (yard_client_outstanding(c->client) > 0 &&
            s_receive(c, s_now_ms(), NULL) != 0)
            return -1;
    }
    json_t *o = json_object();
    json_object_set_new(o, "step", json_integer((json_int_t)i));
    json_object_set_new(o, "sub", json_string(s->name));
    if (!ev) {
        json_object_set_new(o, "type", json_null());
        return s_emit(o);
    }
    json_object_set_new(o, "type", s_json_text(ev->type, strlen(ev->type)));
    const uint8_t *text;
    size_t tlen;
    if (s_msgpack_str(ev->payload, ev->payload_len, &text, &tlen))
        json_object_set_new(o, "payload", s_json_text(text, tlen));
    else
        /*  No payload, or one that is not a msgpack str. */
        json_object_set_new(o, "payload", json_null());
    yard_sub_event_destroy(&ev);
    return s_emit(o);
}

static int s_run_step(s_client_t *c, size_t i)
{
    s_step_t *st = &c->steps[i];
    switch (st->kind) {
    case S_SUBMIT:
        return s_run_submit(c, i, st);
    case S_WAIT:
        return s_run_wait(c, i, st);
    case S_CANCEL:
        return s_run_cancel(c, i, st);
    case S_SLEEP:
        /*  Results that arrive meanwhile are taken (and ordered) as they
            come; the client heartbeats inside its wait calls. */
        return s_receive(c, s_now_ms() + st->ms, NULL);
    case S_SUBSCRIBE:
        return s_run_subscribe(c, i, st);
    case S_PUBLISH:
        return s_run_publish(c, i, st);
    case S_NEXT_EVENT:
        return s_run_next_event(c, i, st);
    }
    return -1;
}

static void s_client_free(s_client_t *c)
{
    for (size_t k = 0; k < c->nsubs; k++)
        yard_subscriber_destroy(&c->subs[k].sub);
    yard_client_destroy(&c->client);
    for (size_t k = 0; k < c->ntasks; k++)
        yard_reply_destroy(&c->tasks[k].reply);
    for (size_t i = 0; c->steps && i < c->nsteps; i++) {
        for (size_t k = 0; k < 3; k++)
            free(c->steps[i].lists[k]);
        free(c->steps[i].prefixes);
    }
    free(c->steps);
    free(c->tasks);
    free(c->subs);
    json_decref(c->program);
}

static int s_client_main(int argc, char **argv)
{
    s_client_t c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < argc; i++) {
        bool missing = false;
        const char *v;
        if ((v = s_flag(argc, argv, &i, "--broker", &missing)))
            c.broker = v;
        else if ((v = s_flag(argc, argv, &i, "--events", &missing)))
            c.events = v;
        else if (missing)
            return s_bad_flags("%s needs a value", argv[i]);
        else
            return s_bad_flags("unknown client flag \"%s\"", argv[i]);
    }
    if (!c.broker)
        return s_bad_flags("client needs --broker");

    json_error_t jerr;
    c.program = json_loadf(stdin, JSON_ALLOW_NUL, &jerr);
    if (!c.program) {
        fprintf(stderr,
                "yard-conformance client: the program is not JSON: "
                "line %d: %s\n",
                jerr.line, jerr.text);
        return 1;
    }
    int rc = 1;
    if (s_parse_program(&c) != 0)
        goto done;
    c.client = yard_client_new(c.broker);
    if (!c.client) {
        fprintf(stderr, "yard-conformance client: cannot connect to %s: %s\n",
                c.broker, strerror(errno));
        goto done;
    }
    for (size_t i = 0; i < c.nsteps; i++)
        if (s_run_step(&c, i) != 0)
            goto done;
    rc = 0;
done:
    s_client_free(&c);
    return rc;
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2)
        return s_bad_flags("missing mode: worker or client");
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(s_usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "worker") == 0)
        return s_worker_main(argc - 2, argv + 2);
    if (strcmp(argv[1], "client") == 0) {
        /*  A reader that goes away must not kill us mid-line. */
        signal(SIGPIPE, SIG_IGN);
        return s_client_main(argc - 2, argv + 2);
    }
    return s_bad_flags("unknown mode \"%s\"", argv[1]);
}
