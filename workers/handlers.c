/*  handlers.c — the built-in handlers of yard-worker (see handlers.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "yard_clock.h"
#include "yard_config.h"
#include "yard_rand.h"

/*  How long the sleep handler sleeps between looks at its cancel flag. */
#define S_SLEEP_SLICE_US 10000

/*  Copies up to size-1 bytes of a payload for an error message, with
    anything but printable ASCII shown as '?', so the error stays text. */
static void s_printable(char *dst, size_t size, yard_bytes_t src)
{
    size_t n = src.len < size - 1 ? src.len : size - 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = src.ptr[i];
        dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[n] = '\0';
}

/*  echo: the result is the payload. */
static void s_echo(yard_job_t *job, void *arg)
{
    (void)arg;
    yard_bytes_t payload = yard_job_payload(job);
    yard_job_reply(job, payload.ptr, payload.len);
}

/*  sleep: the payload is a number of milliseconds (decimal text); sleeps
    that long, in short slices so a CANCEL stops it quickly, then returns
    the payload. */
static void s_sleep(yard_job_t *job, void *arg)
{
    (void)arg;
    yard_bytes_t payload = yard_job_payload(job);
    char text[16];
    uint32_t ms = 0;
    bool ok = payload.len > 0 && payload.len < sizeof text;
    if (ok) {
        memcpy(text, payload.ptr, payload.len);
        text[payload.len] = '\0';
        ok = yard_parse_u32(text, 0, YARD_SLEEP_MAX_MS, &ms) == 0;
    }
    if (!ok) {
        char shown[40];
        s_printable(shown, sizeof shown, payload);
        yard_job_fail(job,
                      "sleep handler: payload must be milliseconds "
                      "0..%u, got \"%s\"%s",
                      YARD_SLEEP_MAX_MS, shown,
                      payload.len >= sizeof shown ? "..." : "");
        return;
    }
    int64_t end = yard_clock_us() + (int64_t)ms * 1000;
    for (int64_t now = yard_clock_us(); now < end; now = yard_clock_us()) {
        if (yard_job_cancelled(job))
            return; /*  the runtime answers "cancelled" */
        int64_t slice =
            end - now < S_SLEEP_SLICE_US ? end - now : S_SLEEP_SLICE_US;
        struct timespec ts = {0, (long)slice * 1000};
        nanosleep(&ts, NULL); /*  EINTR: the loop recomputes */
    }
    yard_job_reply(job, payload.ptr, payload.len);
}

/*  fail: always an error, to exercise retries and breakers. */
static void s_fail(yard_job_t *job, void *arg)
{
    (void)arg;
    yard_job_fail(job, "fail handler: always fails");
}

/*  flaky: an error with probability fail_rate, else echo. */
static void s_flaky(yard_job_t *job, void *arg)
{
    /*  One generator per handler thread: no lock, no shared state. */
    static _Thread_local yard_rand_t rng;
    static _Thread_local bool seeded;
    const yard_handlers_opts_t *opts = (const yard_handlers_opts_t *)arg;
    if (!seeded) {
        yard_rand_seed_os(&rng);
        seeded = true;
    }
    double rate = opts ? opts->fail_rate : YARD_FLAKY_DEFAULT_RATE;
    if (yard_rand_double(&rng) < rate) {
        yard_job_fail(job, "flaky handler: random failure");
        return;
    }
    s_echo(job, arg);
}

/*  publish: publishes an event whose type is the payload, with the task id
    as its payload (a msgpack str), then returns the payload. */
static void s_publish(yard_job_t *job, void *arg)
{
    (void)arg;
    yard_bytes_t payload = yard_job_payload(job);
    char type[YARD_MAX_SERVICE + 1];
    if (payload.len == 0 || payload.len > YARD_MAX_SERVICE) {
        yard_job_fail(job, "publish handler: payload must be an event type "
                           "of 1..128 bytes");
        return;
    }
    memcpy(type, payload.ptr, payload.len);
    type[payload.len] = '\0';
    const char *id = yard_job_id(job);
    size_t idlen = strlen(id);
    uint8_t body[2 + YARD_MAX_ID];
    size_t n = 0;
    if (idlen < 32)
        body[n++] = (uint8_t)(0xa0 | idlen);
    else {
        body[n++] = 0xd9;
        body[n++] = (uint8_t)idlen;
    }
    memcpy(body + n, id, idlen);
    int rc = yard_job_publish(job, type, body, n + idlen);
    if (rc != 0) {
        yard_job_fail(job, "publish handler: %s", yard_strerror(rc));
        return;
    }
    yard_job_reply(job, payload.ptr, payload.len);
}

static const yard_handler_def_t s_handlers[] = {
    {"echo", s_echo, YARD_WORKER_THREADS_INLINE, "the result is the payload"},
    {"sleep", s_sleep, YARD_WORKER_THREADS_PER_SLOT,
     "sleeps PAYLOAD milliseconds (0..3600000), returns the payload"},
    {"fail", s_fail, YARD_WORKER_THREADS_INLINE,
     "always fails with \"fail handler: always fails\""},
    {"flaky", s_flaky, YARD_WORKER_THREADS_INLINE,
     "fails with probability --fail-rate, else echoes"},
    {"publish", s_publish, YARD_WORKER_THREADS_INLINE,
     "publishes an event of type PAYLOAD (payload: the task id), echoes"},
};

const yard_handler_def_t *yard_handler_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof s_handlers / sizeof s_handlers[0]; i++)
        if (strcmp(s_handlers[i].name, name) == 0)
            return &s_handlers[i];
    return NULL;
}

const yard_handler_def_t *yard_handlers_all(size_t *count)
{
    *count = sizeof s_handlers / sizeof s_handlers[0];
    return s_handlers;
}
