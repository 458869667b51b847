/*  yard_breaker.h — a circuit breaker as a pure state machine.

    No clock, no I/O: every call takes the time (monotonic milliseconds)
    and the PRNG for jitter from the caller, so tests drive it with an
    injected clock and a seeded PRNG, and the broker keeps one per service
    inside its single-threaded loop.

        CLOSED --(fail_threshold consecutive failures, or window failure
                  rate >= failure_rate over >= min_calls calls)--> OPEN
        OPEN   --(open timeout over)--> HALF_OPEN
        HALF_OPEN --(half_open_test_count trial successes)--> CLOSED
        HALF_OPEN --(one trial failure)--> OPEN (next backoff step)
        any    --(reset)--> CLOSED

    The open timeout after the n-th consecutive trip is base_timeout_ms *
    2^(n-1), capped at max_timeout_ms, times a uniform factor in [0.8, 1.2]
    (and capped again). A successful recovery (HALF_OPEN -> CLOSED) or a
    reset starts the sequence over.

    Generations: every transition bumps `gen`. yard_breaker_admit hands the
    caller the generation a call was admitted in, and yard_breaker_record
    ignores outcomes of an older generation, so a call admitted before the
    breaker opened cannot close it, and only trial calls decide a half-open
    breaker. */
#ifndef YARD_BREAKER_H
#define YARD_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yard_rand.h"

#define YARD_BREAKER_MAX_WINDOW 1024 /*  largest sliding window (calls)    */
#define YARD_BREAKER_JITTER 0.2      /*  +-20% on open timeouts            */

typedef enum {
    YARD_BREAKER_CLOSED = 0,
    YARD_BREAKER_OPEN = 1,
    YARD_BREAKER_HALF_OPEN = 2,
} yard_breaker_state_t;

/*  What happened to an admitted call. */
typedef enum {
    YARD_BREAKER_SUCCESS, /*  the worker answered ok                       */
    YARD_BREAKER_ERROR,   /*  the worker answered error                    */
    YARD_BREAKER_TIMEOUT, /*  the deadline passed                          */
    YARD_BREAKER_LOST,    /*  the worker holding it was lost               */
    YARD_BREAKER_NEUTRAL, /*  ended without a verdict on the service
                              (cancelled, shutdown, queue full): never
                              counted; frees a half-open trial slot      */
} yard_breaker_outcome_t;

/*  Which outcomes count as failures (config.count). */
#define YARD_BREAKER_COUNT_ERROR 1u
#define YARD_BREAKER_COUNT_TIMEOUT 2u
#define YARD_BREAKER_COUNT_LOST 4u
#define YARD_BREAKER_COUNT_DEFAULT                                             \
    (YARD_BREAKER_COUNT_ERROR | YARD_BREAKER_COUNT_TIMEOUT |                   \
     YARD_BREAKER_COUNT_LOST)

/*  A transition made by a call, for the caller to publish. */
typedef enum {
    YARD_BREAKER_NONE = 0,
    YARD_BREAKER_OPENED,      /*  -> OPEN                                  */
    YARD_BREAKER_HALF_OPENED, /*  OPEN -> HALF_OPEN                        */
    YARD_BREAKER_CLOSED_AGAIN /*  -> CLOSED                                */
} yard_breaker_transition_t;

typedef struct {
    bool enabled;                  /*  false: admit everything, count calls  */
    uint32_t fail_threshold;       /*  consecutive failures that open; 0 off */
    uint32_t window;               /*  sliding window, last N calls; 0 off   */
    uint32_t min_calls;            /*  calls in the window before the rate
                                       rule applies                        */
    double failure_rate;           /*  window failure share that opens, 0..1 */
    uint32_t slow_ms;              /*  a success slower than this counts as a
                                       failure; 0 off                      */
    uint32_t base_timeout_ms;      /*  first open timeout                    */
    uint32_t max_timeout_ms;       /*  cap of the open timeout               */
    uint32_t half_open_test_count; /*  trial calls; that many successes close */
    unsigned count;                /*  YARD_BREAKER_COUNT_* bits             */
} yard_breaker_config_t;

typedef struct {
    yard_breaker_config_t config;
    yard_breaker_state_t state;
    uint64_t gen;                  /*  bumped at every transition            */
    int64_t since_ms;              /*  when the current state began          */
    int64_t open_until_ms;         /*  OPEN: when it turns HALF_OPEN         */
    uint32_t open_ms;              /*  OPEN: the timeout drawn for this trip */
    uint32_t consecutive_failures; /*  counted failures in a row             */
    uint32_t consecutive_trips;    /*  trips since the last close (backoff)  */
    uint32_t trials;               /*  HALF_OPEN: trial calls admitted       */
    uint32_t trial_successes;      /*  HALF_OPEN: of which succeeded         */
    uint64_t ring[YARD_BREAKER_MAX_WINDOW / 64]; /*  1 bit per call: failed */
    uint32_t ring_pos;      /*  next slot                             */
    uint32_t ring_len;      /*  calls in the window                   */
    uint32_t ring_failures; /*  failures in the window                */
    /*  Metrics since start (reset does not clear them). */
    uint64_t calls;              /*  outcomes recorded (success + failure) */
    uint64_t successes;          /*  successful calls                      */
    uint64_t failures;           /*  calls counted as failures             */
    uint64_t slow;               /*  successes counted as slow failures    */
    uint64_t rejected;           /*  calls refused while open / half-open  */
    uint64_t trips;              /*  times it opened                       */
    uint64_t recovery_trials;    /*  half-open trial outcomes              */
    uint64_t recovery_successes; /*  ... that succeeded                    */
    uint64_t time_ms[3];         /*  time in each state, finished periods  */
} yard_breaker_t;

/*  Defaults: enabled, fail_threshold 5, window 20, min_calls 10,
    failure_rate 0.5, slow_ms 0 (off), base_timeout_ms 5000,
    max_timeout_ms 60000, half_open_test_count 3, count error+timeout+lost. */
void yard_breaker_config_defaults(yard_breaker_config_t *cfg);

/*  Sets one setting by name from text ("fail_threshold", "5"). Names:
    enabled, fail_threshold, window, min_calls, failure_rate, slow_ms,
    base_timeout_ms, max_timeout_ms, half_open_test_count, count (a
    comma-separated list of error, timeout, lost, or "none"). Returns the
    setting's index (0..YARD_BREAKER_NKEYS-1) or -1 with a reason in err
    (unknown name, or a value that is not valid for it; cfg untouched). */
#define YARD_BREAKER_NKEYS 10
int yard_breaker_config_set(yard_breaker_config_t *cfg, const char *key,
                            const char *value, char *err, size_t errlen);

/*  The name of setting index i (for listing), or NULL. */
const char *yard_breaker_config_key(int i);

/*  Copies setting index i from src to dst. */
void yard_breaker_config_copy_key(yard_breaker_config_t *dst,
                                  const yard_breaker_config_t *src, int i);

/*  Checks settings against each other (min_calls <= window, base <= max,
    at least one opening rule). 0, or -1 with a reason in err. */
int yard_breaker_config_check(const yard_breaker_config_t *cfg, char *err,
                              size_t errlen);

/*  Starts closed with the given settings (which must pass the check). */
void yard_breaker_init(yard_breaker_t *self, const yard_breaker_config_t *cfg,
                       int64_t now_ms);

/*  Changes the settings and keeps the state; the window starts over. If
    the breaker is disabled by this, it closes (returned). */
yard_breaker_transition_t
yard_breaker_configure(yard_breaker_t *self, const yard_breaker_config_t *cfg,
                       int64_t now_ms);

/*  OPEN whose timeout is over turns HALF_OPEN. Called by admit; call it
    on a timer to publish the transition without waiting for traffic. */
yard_breaker_transition_t yard_breaker_tick(yard_breaker_t *self,
                                            int64_t now_ms);

/*  May a call go through now? true: *gen is the generation to pass to
    record (a half-open breaker counts it as a trial). false: refused
    (counted in rejected), *retry_after_ms says when to try again. The
    tick's transition, if any, goes to *t (may be NULL). */
bool yard_breaker_admit(yard_breaker_t *self, int64_t now_ms, uint64_t *gen,
                        uint32_t *retry_after_ms, yard_breaker_transition_t *t);

/*  Records the outcome of a call admitted in generation gen; duration_ms
    is how long the call ran (for the slow rule). Outcomes from another
    generation are ignored. */
yard_breaker_transition_t yard_breaker_record(yard_breaker_t *self,
                                              uint64_t gen,
                                              yard_breaker_outcome_t outcome,
                                              uint64_t duration_ms,
                                              int64_t now_ms, yard_rand_t *rng);

/*  Closes the breaker now, whatever its state (an operator's reset). */
yard_breaker_transition_t yard_breaker_reset(yard_breaker_t *self,
                                             int64_t now_ms);

/*  Time spent in a state, the current period included. */
uint64_t yard_breaker_time_in(const yard_breaker_t *self,
                              yard_breaker_state_t state, int64_t now_ms);

/*  Milliseconds until an OPEN breaker turns HALF_OPEN (0 otherwise). */
uint32_t yard_breaker_retry_in(const yard_breaker_t *self, int64_t now_ms);

/*  successes / calls, and recovery_successes / recovery_trials; 1.0 when
    there is nothing to divide. */
double yard_breaker_success_rate(const yard_breaker_t *self);
double yard_breaker_recovery_rate(const yard_breaker_t *self);

/*  "closed", "open", "half_open". */
const char *yard_breaker_state_name(yard_breaker_state_t state);

/*  "breaker.opened", "breaker.half_open", "breaker.closed", or NULL. */
const char *yard_breaker_event_name(yard_breaker_transition_t t);

#endif
