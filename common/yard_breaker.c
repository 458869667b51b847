/*  yard_breaker.c — the circuit breaker state machine (see the header). */
#include "yard_breaker.h"

#include <stdio.h>
#include <string.h>

#include "yard_backoff.h"
#include "yard_config.h"

static const char *const s_keys[YARD_BREAKER_NKEYS] = {
    "enabled",         "fail_threshold", "window",
    "min_calls",       "failure_rate",   "slow_ms",
    "base_timeout_ms", "max_timeout_ms", "half_open_test_count",
    "count",
};

void yard_breaker_config_defaults(yard_breaker_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->enabled = true;
    cfg->fail_threshold = 5;
    cfg->window = 20;
    cfg->min_calls = 10;
    cfg->failure_rate = 0.5;
    cfg->slow_ms = 0;
    cfg->base_timeout_ms = 5000;
    cfg->max_timeout_ms = 60000;
    cfg->half_open_test_count = 3;
    cfg->count = YARD_BREAKER_COUNT_DEFAULT;
}

const char *yard_breaker_config_key(int i)
{
    return i >= 0 && i < YARD_BREAKER_NKEYS ? s_keys[i] : NULL;
}

static int s_parse_count(const char *value, unsigned *out)
{
    unsigned bits = 0;
    if (!value || !*value)
        return -1;
    if (strcmp(value, "none") == 0) {
        *out = 0;
        return 0;
    }
    const char *p = value;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 5 && memcmp(p, "error", 5) == 0)
            bits |= YARD_BREAKER_COUNT_ERROR;
        else if (n == 7 && memcmp(p, "timeout", 7) == 0)
            bits |= YARD_BREAKER_COUNT_TIMEOUT;
        else if (n == 4 && memcmp(p, "lost", 4) == 0)
            bits |= YARD_BREAKER_COUNT_LOST;
        else
            return -1;
        if (!end)
            break;
        p = end + 1;
        if (!*p)
            return -1; /*  trailing comma */
    }
    if (!bits)
        return -1;
    *out = bits;
    return 0;
}

int yard_breaker_config_set(yard_breaker_config_t *cfg, const char *key,
                            const char *value, char *err, size_t errlen)
{
    int i;
    for (i = 0; i < YARD_BREAKER_NKEYS; i++)
        if (strcmp(key, s_keys[i]) == 0)
            break;
    if (i == YARD_BREAKER_NKEYS) {
        snprintf(err, errlen,
                 "unknown breaker setting '%s' (known: enabled, "
                 "fail_threshold, window, min_calls, failure_rate, slow_ms, "
                 "base_timeout_ms, max_timeout_ms, half_open_test_count, "
                 "count)",
                 key);
        return -1;
    }
    int rc = 0;
    const char *range = "";
    switch (i) {
    case 0:
        rc = yard_parse_bool(value, &cfg->enabled);
        range = "true or false";
        break;
    case 1:
        rc = yard_parse_u32(value, 0, 1000000, &cfg->fail_threshold);
        range = "0..1000000 (0 turns the rule off)";
        break;
    case 2:
        rc = yard_parse_u32(value, 0, YARD_BREAKER_MAX_WINDOW, &cfg->window);
        range = "0..1024 calls (0 turns the rule off)";
        break;
    case 3:
        rc = yard_parse_u32(value, 1, YARD_BREAKER_MAX_WINDOW, &cfg->min_calls);
        range = "1..1024 calls";
        break;
    case 4:
        rc = yard_parse_double(value, 0.01, 1.0, &cfg->failure_rate);
        range = "0.01..1";
        break;
    case 5:
        rc = yard_parse_u32(value, 0, 86400000, &cfg->slow_ms);
        range = "0..86400000 ms (0 turns the rule off)";
        break;
    case 6:
        rc = yard_parse_u32(value, 1, 86400000, &cfg->base_timeout_ms);
        range = "1..86400000 ms";
        break;
    case 7:
        rc = yard_parse_u32(value, 1, 86400000, &cfg->max_timeout_ms);
        range = "1..86400000 ms";
        break;
    case 8:
        rc = yard_parse_u32(value, 1, 1000, &cfg->half_open_test_count);
        range = "1..1000";
        break;
    case 9:
        rc = s_parse_count(value, &cfg->count);
        range = "a list of error, timeout, lost (e.g. error,timeout), or none";
        break;
    }
    if (rc != 0) {
        snprintf(err, errlen, "bad value '%s' for breaker setting %s: %s",
                 value, key, range);
        return -1;
    }
    return i;
}

void yard_breaker_config_copy_key(yard_breaker_config_t *dst,
                                  const yard_breaker_config_t *src, int i)
{
    switch (i) {
    case 0:
        dst->enabled = src->enabled;
        break;
    case 1:
        dst->fail_threshold = src->fail_threshold;
        break;
    case 2:
        dst->window = src->window;
        break;
    case 3:
        dst->min_calls = src->min_calls;
        break;
    case 4:
        dst->failure_rate = src->failure_rate;
        break;
    case 5:
        dst->slow_ms = src->slow_ms;
        break;
    case 6:
        dst->base_timeout_ms = src->base_timeout_ms;
        break;
    case 7:
        dst->max_timeout_ms = src->max_timeout_ms;
        break;
    case 8:
        dst->half_open_test_count = src->half_open_test_count;
        break;
    case 9:
        dst->count = src->count;
        break;
    default:
        break;
    }
}

int yard_breaker_config_check(const yard_breaker_config_t *cfg, char *err,
                              size_t errlen)
{
    if (cfg->window && cfg->min_calls > cfg->window) {
        snprintf(err, errlen, "min_calls (%u) is larger than window (%u)",
                 cfg->min_calls, cfg->window);
        return -1;
    }
    if (cfg->base_timeout_ms > cfg->max_timeout_ms) {
        snprintf(err, errlen,
                 "base_timeout_ms (%u) is larger than max_timeout_ms (%u)",
                 cfg->base_timeout_ms, cfg->max_timeout_ms);
        return -1;
    }
    if (cfg->enabled && !cfg->fail_threshold && !cfg->window) {
        snprintf(err, errlen,
                 "fail_threshold and window are both 0: the breaker could "
                 "never open (set enabled=false instead)");
        return -1;
    }
    if (!(cfg->failure_rate >= 0.01 && cfg->failure_rate <= 1)) {
        snprintf(err, errlen, "failure_rate must be in 0.01..1");
        return -1;
    }
    if (cfg->half_open_test_count == 0) {
        snprintf(err, errlen,
                 "half_open_test_count must be at least 1 (a half-open "
                 "breaker with no trials could never close)");
        return -1;
    }
    return 0;
}

static void s_ring_clear(yard_breaker_t *self)
{
    memset(self->ring, 0, sizeof(self->ring));
    self->ring_pos = self->ring_len = self->ring_failures = 0;
}

static void s_ring_push(yard_breaker_t *self, bool failed)
{
    uint32_t n = self->config.window;
    if (n == 0)
        return;
    uint32_t pos = self->ring_pos;
    uint64_t bit = 1ull << (pos % 64);
    uint64_t *word = &self->ring[pos / 64];
    if (self->ring_len == n) {
        if (*word & bit)
            self->ring_failures--;
    } else {
        self->ring_len++;
    }
    if (failed) {
        *word |= bit;
        self->ring_failures++;
    } else {
        *word &= ~bit;
    }
    self->ring_pos = (pos + 1) % n;
}

static void s_enter(yard_breaker_t *self, yard_breaker_state_t state,
                    int64_t now_ms)
{
    if (now_ms > self->since_ms)
        self->time_ms[self->state] += (uint64_t)(now_ms - self->since_ms);
    self->state = state;
    self->since_ms = now_ms;
    self->gen++;
    self->trials = 0;
    self->trial_successes = 0;
}

static yard_breaker_transition_t s_open(yard_breaker_t *self, int64_t now_ms,
                                        yard_rand_t *rng)
{
    self->consecutive_trips++;
    self->trips++;
    self->open_ms =
        yard_backoff_ms(self->config.base_timeout_ms, self->consecutive_trips,
                        self->config.max_timeout_ms, YARD_BREAKER_JITTER, rng);
    if (self->open_ms == 0)
        self->open_ms = 1;
    self->open_until_ms = now_ms + self->open_ms;
    s_enter(self, YARD_BREAKER_OPEN, now_ms);
    s_ring_clear(self);
    return YARD_BREAKER_OPENED;
}

static yard_breaker_transition_t s_close(yard_breaker_t *self, int64_t now_ms)
{
    s_enter(self, YARD_BREAKER_CLOSED, now_ms);
    self->consecutive_failures = 0;
    self->consecutive_trips = 0;
    self->open_until_ms = 0;
    self->open_ms = 0;
    s_ring_clear(self);
    return YARD_BREAKER_CLOSED_AGAIN;
}

void yard_breaker_init(yard_breaker_t *self, const yard_breaker_config_t *cfg,
                       int64_t now_ms)
{
    memset(self, 0, sizeof(*self));
    self->config = *cfg;
    self->state = YARD_BREAKER_CLOSED;
    self->since_ms = now_ms;
    self->gen = 1;
}

yard_breaker_transition_t
yard_breaker_configure(yard_breaker_t *self, const yard_breaker_config_t *cfg,
                       int64_t now_ms)
{
    self->config = *cfg;
    s_ring_clear(self);
    self->consecutive_failures = 0; /*  the run starts over with the rules */
    if (!cfg->enabled && self->state != YARD_BREAKER_CLOSED)
        return s_close(self, now_ms);
    return YARD_BREAKER_NONE;
}

yard_breaker_transition_t yard_breaker_tick(yard_breaker_t *self,
                                            int64_t now_ms)
{
    if (self->state == YARD_BREAKER_OPEN && now_ms >= self->open_until_ms) {
        s_enter(self, YARD_BREAKER_HALF_OPEN, now_ms);
        return YARD_BREAKER_HALF_OPENED;
    }
    return YARD_BREAKER_NONE;
}

bool yard_breaker_admit(yard_breaker_t *self, int64_t now_ms, uint64_t *gen,
                        uint32_t *retry_after_ms, yard_breaker_transition_t *t)
{
    yard_breaker_transition_t tr = yard_breaker_tick(self, now_ms);
    if (t)
        *t = tr;
    *retry_after_ms = 0;
    *gen = self->gen;
    switch (self->state) {
    case YARD_BREAKER_CLOSED:
        return true;
    case YARD_BREAKER_HALF_OPEN:
        if (self->trials < self->config.half_open_test_count) {
            self->trials++;
            return true;
        }
        /*  The trials are out; their verdict decides. Until then, come
            back after about a trial's worth of time. */
        self->rejected++;
        *retry_after_ms = self->config.base_timeout_ms;
        return false;
    case YARD_BREAKER_OPEN:
        self->rejected++;
        *retry_after_ms = yard_breaker_retry_in(self, now_ms); /*  > 0 */
        return false;
    }
    return true;
}

yard_breaker_transition_t yard_breaker_record(yard_breaker_t *self,
                                              uint64_t gen,
                                              yard_breaker_outcome_t outcome,
                                              uint64_t duration_ms,
                                              int64_t now_ms, yard_rand_t *rng)
{
    if (gen != self->gen || self->state == YARD_BREAKER_OPEN)
        return YARD_BREAKER_NONE; /*  admitted under an earlier state */
    unsigned count = self->config.count;
    bool failed;
    switch (outcome) {
    case YARD_BREAKER_SUCCESS:
        failed = self->config.slow_ms && duration_ms > self->config.slow_ms;
        if (failed)
            self->slow++;
        break;
    case YARD_BREAKER_ERROR:
        failed = true;
        if (!(count & YARD_BREAKER_COUNT_ERROR))
            outcome = YARD_BREAKER_NEUTRAL;
        break;
    case YARD_BREAKER_TIMEOUT:
        failed = true;
        if (!(count & YARD_BREAKER_COUNT_TIMEOUT))
            outcome = YARD_BREAKER_NEUTRAL;
        break;
    case YARD_BREAKER_LOST:
        failed = true;
        if (!(count & YARD_BREAKER_COUNT_LOST))
            outcome = YARD_BREAKER_NEUTRAL;
        break;
    default:
        outcome = YARD_BREAKER_NEUTRAL;
        failed = false;
        break;
    }
    if (outcome == YARD_BREAKER_NEUTRAL) {
        /*  No verdict: a half-open breaker may admit another trial. */
        if (self->state == YARD_BREAKER_HALF_OPEN && self->trials > 0)
            self->trials--;
        return YARD_BREAKER_NONE;
    }
    self->calls++;
    if (failed)
        self->failures++;
    else
        self->successes++;
    if (!self->config.enabled)
        return YARD_BREAKER_NONE;

    if (self->state == YARD_BREAKER_HALF_OPEN) {
        self->recovery_trials++;
        if (failed)
            return s_open(self, now_ms, rng);
        self->recovery_successes++;
        self->trial_successes++;
        if (self->trial_successes >= self->config.half_open_test_count)
            return s_close(self, now_ms);
        return YARD_BREAKER_NONE;
    }
    /*  CLOSED */
    s_ring_push(self, failed);
    if (failed)
        self->consecutive_failures++;
    else
        self->consecutive_failures = 0;
    if (failed && self->config.fail_threshold &&
        self->consecutive_failures >= self->config.fail_threshold)
        return s_open(self, now_ms, rng);
    /*  Checked after every call, successes too: the call that fills the
        window up to min_calls may be a success. Divided, not multiplied:
        55 failures of 100 against 0.55 must open (0.55 * 100 rounds to
        55.000000000000007). */
    if (self->config.window && self->ring_len >= self->config.min_calls &&
        (double)self->ring_failures / (double)self->ring_len >=
            self->config.failure_rate)
        return s_open(self, now_ms, rng);
    return YARD_BREAKER_NONE;
}

yard_breaker_transition_t yard_breaker_reset(yard_breaker_t *self,
                                             int64_t now_ms)
{
    if (self->state == YARD_BREAKER_CLOSED) {
        /*  Already closed: start the counts over, but keep the generation
            so the outcomes of calls in flight still count. */
        self->consecutive_failures = 0;
        self->consecutive_trips = 0;
        s_ring_clear(self);
        return YARD_BREAKER_NONE;
    }
    return s_close(self, now_ms);
}

uint64_t yard_breaker_time_in(const yard_breaker_t *self,
                              yard_breaker_state_t state, int64_t now_ms)
{
    uint64_t t = self->time_ms[state];
    if (self->state == state && now_ms > self->since_ms)
        t += (uint64_t)(now_ms - self->since_ms);
    return t;
}

uint32_t yard_breaker_retry_in(const yard_breaker_t *self, int64_t now_ms)
{
    if (self->state != YARD_BREAKER_OPEN || now_ms >= self->open_until_ms)
        return 0;
    return (uint32_t)(self->open_until_ms - now_ms);
}

double yard_breaker_success_rate(const yard_breaker_t *self)
{
    return self->calls ? (double)self->successes / (double)self->calls : 1.0;
}

double yard_breaker_recovery_rate(const yard_breaker_t *self)
{
    return self->recovery_trials ? (double)self->recovery_successes /
                                       (double)self->recovery_trials
                                 : 1.0;
}

const char *yard_breaker_state_name(yard_breaker_state_t state)
{
    switch (state) {
    case YARD_BREAKER_CLOSED:
        return "closed";
    case YARD_BREAKER_OPEN:
        return "open";
    case YARD_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}

const char *yard_breaker_event_name(yard_breaker_transition_t t)
{
    switch (t) {
    case YARD_BREAKER_OPENED:
        return "breaker.opened";
    case YARD_BREAKER_HALF_OPENED:
        return "breaker.half_open";
    case YARD_BREAKER_CLOSED_AGAIN:
        return "breaker.closed";
    default:
        return NULL;
    }
}
