/*  test_breaker.c — the circuit breaker state machine (yard_breaker) with
    an injected clock and a seeded PRNG: settings parsing and checks, the
    consecutive-failure and sliding-window rules (against a reference
    window), which outcomes count, the slow rule, open / half-open /
    closed transitions, the jittered exponential backoff of the open
    timeout, generations, reset, configure, time per state, rates and
    names. The last three tests pin down edge cases where the code does not
    match the documented contract (see their comments). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "yard_breaker.h"
#include "yard_rand.h"

/*  ---- helpers ---------------------------------------------------------- */

/*  Defaults with only the consecutive-failure rule. */
static void s_cfg_threshold(yard_breaker_config_t *cfg, uint32_t threshold)
{
    yard_breaker_config_defaults(cfg);
    cfg->fail_threshold = threshold;
    cfg->window = 0;
}

/*  Defaults with only the sliding-window rule. */
static void s_cfg_window(yard_breaker_config_t *cfg, uint32_t window,
                         uint32_t min_calls, double rate)
{
    yard_breaker_config_defaults(cfg);
    cfg->fail_threshold = 0;
    cfg->window = window;
    cfg->min_calls = min_calls;
    cfg->failure_rate = rate;
}

static void s_init(yard_breaker_t *b, const yard_breaker_config_t *cfg,
                   int64_t now)
{
    char err[256] = "";
    assert_int_equal(yard_breaker_config_check(cfg, err, sizeof(err)), 0);
    yard_breaker_init(b, cfg, now);
}

/*  Admits one call (must be admitted) and records its outcome. */
static yard_breaker_transition_t s_call(yard_breaker_t *b,
                                        yard_breaker_outcome_t outcome,
                                        uint64_t duration, int64_t now,
                                        yard_rand_t *rng)
{
    uint64_t gen = 0;
    uint32_t retry = 12345;
    yard_breaker_transition_t t = YARD_BREAKER_OPENED;
    assert_true(yard_breaker_admit(b, now, &gen, &retry, &t));
    assert_int_equal(retry, 0);
    assert_int_equal(gen, b->gen);
    return yard_breaker_record(b, gen, outcome, duration, now, rng);
}

/*  Records errors until the breaker opens (the threshold rule must be on);
    returns how many it took. */
static uint32_t s_trip(yard_breaker_t *b, int64_t now, yard_rand_t *rng)
{
    uint32_t n = 0;
    assert_int_equal(b->state, YARD_BREAKER_CLOSED);
    while (b->state == YARD_BREAKER_CLOSED) {
        yard_breaker_transition_t t =
            s_call(b, YARD_BREAKER_ERROR, 1, now, rng);
        n++;
        assert_true(n <= 1000000);
        if (b->state == YARD_BREAKER_OPEN)
            assert_int_equal(t, YARD_BREAKER_OPENED);
        else
            assert_int_equal(t, YARD_BREAKER_NONE);
    }
    return n;
}

/*  Moves an OPEN breaker to HALF_OPEN with a tick at open_until_ms;
    returns that time. */
static int64_t s_to_half_open(yard_breaker_t *b)
{
    assert_int_equal(b->state, YARD_BREAKER_OPEN);
    int64_t at = b->open_until_ms;
    assert_int_equal(yard_breaker_tick(b, at), YARD_BREAKER_HALF_OPENED);
    assert_int_equal(b->state, YARD_BREAKER_HALF_OPEN);
    return at;
}

/*  The open timeout after trip n must lie in [0.8, 1.2] * min(base *
    2^(n-1), max), rounded outwards, and never above max. */
static void s_assert_open_ms(uint32_t open_ms, uint32_t base, uint32_t max,
                             uint32_t n)
{
    uint64_t d = base;
    for (uint32_t i = 1; i < n && d < max; i++)
        d <<= 1;
    if (d > max)
        d = max;
    uint64_t lo = d * 8 / 10;
    uint64_t hi = (d * 12 + 9) / 10;
    if (hi > max)
        hi = max;
    if (lo < 1)
        lo = 1;
    assert_in_range(open_ms, lo, hi);
    assert_true(open_ms <= max);
}

/*  Whether setting index i is the same in a and b. */
static bool s_field_equal(const yard_breaker_config_t *a,
                          const yard_breaker_config_t *b, int i)
{
    switch (i) {
    case 0:
        return a->enabled == b->enabled;
    case 1:
        return a->fail_threshold == b->fail_threshold;
    case 2:
        return a->window == b->window;
    case 3:
        return a->min_calls == b->min_calls;
    case 4:
        return a->failure_rate == b->failure_rate;
    case 5:
        return a->slow_ms == b->slow_ms;
    case 6:
        return a->base_timeout_ms == b->base_timeout_ms;
    case 7:
        return a->max_timeout_ms == b->max_timeout_ms;
    case 8:
        return a->half_open_test_count == b->half_open_test_count;
    case 9:
        return a->count == b->count;
    }
    fail_msg("bad setting index %d", i);
    return false;
}

/*  A config whose every setting differs from the defaults. */
static void s_cfg_other(yard_breaker_config_t *cfg)
{
    yard_breaker_config_defaults(cfg);
    cfg->enabled = false;
    cfg->fail_threshold = 9;
    cfg->window = 50;
    cfg->min_calls = 25;
    cfg->failure_rate = 0.75;
    cfg->slow_ms = 300;
    cfg->base_timeout_ms = 700;
    cfg->max_timeout_ms = 9000;
    cfg->half_open_test_count = 7;
    cfg->count = YARD_BREAKER_COUNT_LOST;
}

/*  ---- settings --------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    yard_breaker_config_t cfg;
    memset(&cfg, 0xa5, sizeof(cfg));
    yard_breaker_config_defaults(&cfg);
    assert_true(cfg.enabled);
    assert_int_equal(cfg.fail_threshold, 5);
    assert_int_equal(cfg.window, 20);
    assert_int_equal(cfg.min_calls, 10);
    assert_true(cfg.failure_rate == 0.5);
    assert_int_equal(cfg.slow_ms, 0);
    assert_int_equal(cfg.base_timeout_ms, 5000);
    assert_int_equal(cfg.max_timeout_ms, 60000);
    assert_int_equal(cfg.half_open_test_count, 3);
    assert_int_equal(cfg.count, YARD_BREAKER_COUNT_ERROR |
                                    YARD_BREAKER_COUNT_TIMEOUT |
                                    YARD_BREAKER_COUNT_LOST);
    assert_int_equal(cfg.count, YARD_BREAKER_COUNT_DEFAULT);

    char err[256] = "";
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), 0);

    /*  A fresh breaker: closed, nothing counted. */
    yard_breaker_t b;
    yard_breaker_init(&b, &cfg, 777);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.since_ms, 777);
    assert_int_equal(b.calls, 0);
    assert_int_equal(b.trips, 0);
    assert_int_equal(b.rejected, 0);
    assert_int_equal(b.consecutive_failures, 0);
    assert_int_equal(b.consecutive_trips, 0);
    assert_int_equal(b.ring_len, 0);
    assert_int_equal(b.ring_failures, 0);
    assert_int_equal(b.config.fail_threshold, 5);
    assert_int_equal(yard_breaker_retry_in(&b, 777), 0);
}

typedef struct {
    const char *key;
    const char *value;
} kv_t;

static void test_config_set_valid(void **state)
{
    (void)state;
    yard_breaker_config_t cfg;
    char err[256];
    yard_breaker_config_defaults(&cfg);

#define SET_OK(key, value, index)                                              \
    do {                                                                       \
        err[0] = '\0';                                                         \
        assert_int_equal(                                                      \
            yard_breaker_config_set(&cfg, key, value, err, sizeof(err)),       \
            index);                                                            \
    } while (0)

    SET_OK("enabled", "false", 0);
    assert_false(cfg.enabled);
    SET_OK("enabled", "true", 0);
    assert_true(cfg.enabled);
    SET_OK("enabled", "0", 0);
    assert_false(cfg.enabled);
    SET_OK("enabled", "on", 0);
    assert_true(cfg.enabled);

    SET_OK("fail_threshold", "7", 1);
    assert_int_equal(cfg.fail_threshold, 7);
    SET_OK("fail_threshold", "0", 1);
    assert_int_equal(cfg.fail_threshold, 0);
    SET_OK("fail_threshold", "1000000", 1);
    assert_int_equal(cfg.fail_threshold, 1000000);

    SET_OK("window", "0", 2);
    assert_int_equal(cfg.window, 0);
    SET_OK("window", "1024", 2);
    assert_int_equal(cfg.window, 1024);
    SET_OK("window", "64", 2);
    assert_int_equal(cfg.window, 64);

    SET_OK("min_calls", "1", 3);
    assert_int_equal(cfg.min_calls, 1);
    SET_OK("min_calls", "1024", 3);
    assert_int_equal(cfg.min_calls, 1024);
    SET_OK("min_calls", "12", 3);
    assert_int_equal(cfg.min_calls, 12);

    SET_OK("failure_rate", "0.25", 4);
    assert_true(cfg.failure_rate == 0.25);
    SET_OK("failure_rate", "0.01", 4);
    assert_true(cfg.failure_rate == 0.01);
    SET_OK("failure_rate", "1", 4);
    assert_true(cfg.failure_rate == 1.0);
    SET_OK("failure_rate", ".6", 4);
    assert_true(cfg.failure_rate == 0.6);

    SET_OK("slow_ms", "250", 5);
    assert_int_equal(cfg.slow_ms, 250);
    SET_OK("slow_ms", "86400000", 5);
    assert_int_equal(cfg.slow_ms, 86400000);
    SET_OK("slow_ms", "0", 5);
    assert_int_equal(cfg.slow_ms, 0);

    SET_OK("base_timeout_ms", "1", 6);
    assert_int_equal(cfg.base_timeout_ms, 1);
    SET_OK("base_timeout_ms", "86400000", 6);
    assert_int_equal(cfg.base_timeout_ms, 86400000);
    SET_OK("base_timeout_ms", "100", 6);
    assert_int_equal(cfg.base_timeout_ms, 100);

    SET_OK("max_timeout_ms", "1", 7);
    assert_int_equal(cfg.max_timeout_ms, 1);
    SET_OK("max_timeout_ms", "86400000", 7);
    assert_int_equal(cfg.max_timeout_ms, 86400000);
    SET_OK("max_timeout_ms", "120000", 7);
    assert_int_equal(cfg.max_timeout_ms, 120000);

    SET_OK("half_open_test_count", "1", 8);
    assert_int_equal(cfg.half_open_test_count, 1);
    SET_OK("half_open_test_count", "1000", 8);
    assert_int_equal(cfg.half_open_test_count, 1000);
    SET_OK("half_open_test_count", "4", 8);
    assert_int_equal(cfg.half_open_test_count, 4);

    SET_OK("count", "error,timeout", 9);
    assert_int_equal(cfg.count,
                     YARD_BREAKER_COUNT_ERROR | YARD_BREAKER_COUNT_TIMEOUT);
    SET_OK("count", "lost", 9);
    assert_int_equal(cfg.count, YARD_BREAKER_COUNT_LOST);
    SET_OK("count", "none", 9);
    assert_int_equal(cfg.count, 0);
    SET_OK("count", "timeout,lost,error", 9);
    assert_int_equal(cfg.count, YARD_BREAKER_COUNT_DEFAULT);
    SET_OK("count", "error", 9);
    assert_int_equal(cfg.count, YARD_BREAKER_COUNT_ERROR);

#undef SET_OK
}

static void test_config_set_invalid(void **state)
{
    (void)state;
    static const kv_t bad[] = {
        {"enabled", "maybe"},
        {"enabled", ""},
        {"enabled", "2"},
        {"fail_threshold", "1000001"},
        {"fail_threshold", "-1"},
        {"fail_threshold", "abc"},
        {"fail_threshold", "5x"},
        {"fail_threshold", " 5"},
        {"fail_threshold", ""},
        {"fail_threshold", "99999999999999999999999"},
        {"window", "1025"},
        {"window", "-1"},
        {"window", "x"},
        {"window", ""},
        {"min_calls", "0"},
        {"min_calls", "1025"},
        {"min_calls", "ten"},
        {"min_calls", ""},
        {"failure_rate", "0"},
        {"failure_rate", "0.009"},
        {"failure_rate", "1.01"},
        {"failure_rate", "-0.5"},
        {"failure_rate", "nan"},
        {"failure_rate", "inf"},
        {"failure_rate", "0x1p-1"},
        {"failure_rate", " 0.5"},
        {"failure_rate", "0.5x"},
        {"failure_rate", "abc"},
        {"failure_rate", ""},
        {"slow_ms", "86400001"},
        {"slow_ms", "1.5"},
        {"slow_ms", ""},
        {"base_timeout_ms", "0"},
        {"base_timeout_ms", "86400001"},
        {"base_timeout_ms", "fast"},
        {"base_timeout_ms", ""},
        {"max_timeout_ms", "0"},
        {"max_timeout_ms", "86400001"},
        {"max_timeout_ms", "abc"},
        {"max_timeout_ms", ""},
        {"half_open_test_count", "0"},
        {"half_open_test_count", "1001"},
        {"half_open_test_count", "three"},
        {"half_open_test_count", ""},
        {"count", "error,,x"},
        {"count", "error,,timeout"},
        {"count", "error,"},
        {"count", ",error"},
        {"count", "error,bogus"},
        {"count", "bogus"},
        {"count", "none,error"},
        {"count", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        yard_breaker_config_t cfg, before;
        /*  Non-default values, so "untouched" is not just "defaults". */
        s_cfg_other(&cfg);
        memcpy(&before, &cfg, sizeof(cfg));
        char err[256] = "";
        int rc = yard_breaker_config_set(&cfg, bad[i].key, bad[i].value, err,
                                         sizeof(err));
        if (rc != -1)
            fail_msg("%s='%s' accepted (rc %d)", bad[i].key, bad[i].value, rc);
        assert_memory_equal(&cfg, &before, sizeof(cfg));
        assert_true(strlen(err) > 0);
        assert_non_null(strstr(err, bad[i].key));
    }

    /*  Unknown names, and a name differing only by case or a suffix. */
    static const char *const unknown[] = {"nonsense", "Enabled", "window_ms",
                                          "", "count "};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        yard_breaker_config_t cfg, before;
        yard_breaker_config_defaults(&cfg);
        memcpy(&before, &cfg, sizeof(cfg));
        char err[256] = "";
        assert_int_equal(
            yard_breaker_config_set(&cfg, unknown[i], "1", err, sizeof(err)),
            -1);
        assert_memory_equal(&cfg, &before, sizeof(cfg));
        assert_true(strlen(err) > 0);
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "'%s'", unknown[i]);
        assert_non_null(strstr(err, quoted));
    }
}

static void test_config_keys(void **state)
{
    (void)state;
    static const char *const names[YARD_BREAKER_NKEYS] = {
        "enabled",         "fail_threshold", "window",
        "min_calls",       "failure_rate",   "slow_ms",
        "base_timeout_ms", "max_timeout_ms", "half_open_test_count",
        "count",
    };
    /*  A valid value for each index, different from the default. */
    static const char *const values[YARD_BREAKER_NKEYS] = {
        "false", "9", "50", "25", "0.75", "300", "700", "9000", "7", "lost",
    };
    yard_breaker_config_t want;
    s_cfg_other(&want);
    for (int i = 0; i < YARD_BREAKER_NKEYS; i++) {
        const char *key = yard_breaker_config_key(i);
        assert_non_null(key);
        assert_string_equal(key, names[i]);
        yard_breaker_config_t cfg, dflt;
        yard_breaker_config_defaults(&cfg);
        yard_breaker_config_defaults(&dflt);
        char err[256] = "";
        assert_int_equal(
            yard_breaker_config_set(&cfg, key, values[i], err, sizeof(err)), i);
        /*  Exactly setting i changed, to the value given. */
        for (int j = 0; j < YARD_BREAKER_NKEYS; j++) {
            if (j == i) {
                assert_true(s_field_equal(&cfg, &want, j));
                assert_false(s_field_equal(&cfg, &dflt, j));
            } else {
                assert_true(s_field_equal(&cfg, &dflt, j));
            }
        }
    }
    assert_null(yard_breaker_config_key(-1));
    assert_null(yard_breaker_config_key(YARD_BREAKER_NKEYS));
    assert_null(yard_breaker_config_key(1000));
}

static void test_config_copy_key(void **state)
{
    (void)state;
    yard_breaker_config_t src, dflt;
    s_cfg_other(&src);
    yard_breaker_config_defaults(&dflt);
    for (int i = 0; i < YARD_BREAKER_NKEYS; i++) {
        yard_breaker_config_t dst;
        yard_breaker_config_defaults(&dst);
        yard_breaker_config_copy_key(&dst, &src, i);
        for (int j = 0; j < YARD_BREAKER_NKEYS; j++) {
            if (j == i)
                assert_true(s_field_equal(&dst, &src, j));
            else
                assert_true(s_field_equal(&dst, &dflt, j));
        }
    }
    /*  All of them, one by one, make a full copy. */
    yard_breaker_config_t all;
    yard_breaker_config_defaults(&all);
    for (int i = 0; i < YARD_BREAKER_NKEYS; i++)
        yard_breaker_config_copy_key(&all, &src, i);
    for (int j = 0; j < YARD_BREAKER_NKEYS; j++)
        assert_true(s_field_equal(&all, &src, j));
    /*  Out-of-range indices copy nothing. */
    yard_breaker_config_t dst, before;
    yard_breaker_config_defaults(&dst);
    memcpy(&before, &dst, sizeof(dst));
    yard_breaker_config_copy_key(&dst, &src, -1);
    yard_breaker_config_copy_key(&dst, &src, YARD_BREAKER_NKEYS);
    assert_memory_equal(&dst, &before, sizeof(dst));
}

static void test_config_check(void **state)
{
    (void)state;
    yard_breaker_config_t cfg;
    char err[256];

    /*  min_calls > window */
    yard_breaker_config_defaults(&cfg);
    cfg.window = 10;
    cfg.min_calls = 11;
    err[0] = '\0';
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    cfg.min_calls = 10; /*  equal is fine */
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), 0);
    /*  min_calls does not matter when the window rule is off. */
    cfg.window = 0;
    cfg.min_calls = 500;
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), 0);

    /*  base > max */
    yard_breaker_config_defaults(&cfg);
    cfg.base_timeout_ms = 60001;
    err[0] = '\0';
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    cfg.base_timeout_ms = 60000; /*  equal is fine */
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), 0);

    /*  no opening rule while enabled */
    yard_breaker_config_defaults(&cfg);
    cfg.fail_threshold = 0;
    cfg.window = 0;
    err[0] = '\0';
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    /*  ... is fine when disabled */
    cfg.enabled = false;
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), 0);
    /*  one rule is enough */
    cfg.enabled = true;
    cfg.fail_threshold = 1;
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), 0);
    cfg.fail_threshold = 0;
    cfg.window = 10;
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), 0);

    /*  failure_rate out of range (set directly, not through config_set) */
    yard_breaker_config_defaults(&cfg);
    cfg.failure_rate = 0;
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), -1);
    cfg.failure_rate = 1.5;
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), -1);
    cfg.failure_rate = 1.0;
    assert_int_equal(yard_breaker_config_check(&cfg, err, sizeof(err)), 0);
}

/*  ---- closed: the opening rules ---------------------------------------- */

static void test_consecutive_failures(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    yard_breaker_t b;

    /*  Exactly fail_threshold, for several thresholds. */
    for (uint32_t th = 1; th <= 12; th++) {
        s_cfg_threshold(&cfg, th);
        s_init(&b, &cfg, 0);
        for (uint32_t i = 1; i < th; i++) {
            assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                             YARD_BREAKER_NONE);
            assert_int_equal(b.state, YARD_BREAKER_CLOSED);
            assert_int_equal(b.consecutive_failures, i);
        }
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                         YARD_BREAKER_OPENED);
        assert_int_equal(b.state, YARD_BREAKER_OPEN);
        assert_int_equal(b.trips, 1);
        assert_int_equal(b.consecutive_trips, 1);
        assert_int_equal(b.calls, th);
        assert_int_equal(b.failures, th);
    }

    /*  Defaults (window rule on too, but min_calls 10 is not reached): the
        5th failure in a row opens, a success in between starts over. */
    yard_breaker_config_defaults(&cfg);
    s_init(&b, &cfg, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 10, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.consecutive_failures, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.consecutive_failures, 4);
    assert_int_equal(s_call(&b, YARD_BREAKER_TIMEOUT, 1, 10, &rng),
                     YARD_BREAKER_OPENED);
    assert_int_equal(b.state, YARD_BREAKER_OPEN);
    assert_int_equal(b.calls, 10);
    assert_int_equal(b.successes, 1);
    assert_int_equal(b.failures, 9);

    /*  Only the threshold rule: many failures interleaved with successes
        never open it. */
    s_cfg_threshold(&cfg, 3);
    s_init(&b, &cfg, 0);
    for (int i = 0; i < 500; i++) {
        yard_breaker_outcome_t o =
            i % 3 == 2 ? YARD_BREAKER_SUCCESS : YARD_BREAKER_ERROR;
        assert_int_equal(s_call(&b, o, 1, 10, &rng), YARD_BREAKER_NONE);
    }
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.trips, 0);
}

static void test_window_min_calls(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    yard_breaker_t b;

    /*  100% failures: nothing before min_calls, open at min_calls. */
    s_cfg_window(&cfg, 10, 5, 0.5);
    s_init(&b, &cfg, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                         YARD_BREAKER_NONE);
        assert_int_equal(b.ring_len, (uint32_t)i + 1);
        assert_int_equal(b.ring_failures, (uint32_t)i + 1);
    }
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                     YARD_BREAKER_OPENED);
    assert_int_equal(b.calls, 5);
    /*  Opening clears the window. */
    assert_int_equal(b.ring_len, 0);
    assert_int_equal(b.ring_failures, 0);

    /*  Opens at the first call where failures / len >= rate:
        S S S F F (2/5 = 0.4) then F (3/6 = 0.5). */
    s_init(&b, &cfg, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 10, &rng),
                         YARD_BREAKER_NONE);
    for (int i = 0; i < 2; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(b.ring_len, 5);
    assert_int_equal(b.ring_failures, 2);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                     YARD_BREAKER_OPENED);

    /*  Rate 1.0: opens only when every call in the window failed. */
    s_cfg_window(&cfg, 4, 4, 1.0);
    s_init(&b, &cfg, 0);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 10, &rng),
                     YARD_BREAKER_NONE);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                         YARD_BREAKER_NONE);
    /*  The success slides out with the 5th call. */
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                     YARD_BREAKER_OPENED);
}

static void test_window_slides(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    yard_breaker_t b;

    /*  Window 10, min 10, rate 0.5. F x4, S x6, F x4: the last 10 calls
        never hold more than 4 failures, though 8 of 14 calls failed over
        the breaker's life (and a cumulative count would reach 6/12 at the
        12th call). The 15th failure makes it 5 of the last 10. */
    s_cfg_window(&cfg, 10, 10, 0.5);
    s_init(&b, &cfg, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                         YARD_BREAKER_NONE);
    for (int i = 0; i < 6; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 10, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(b.ring_len, 10);
    assert_int_equal(b.ring_failures, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                         YARD_BREAKER_NONE);
        assert_int_equal(b.ring_len, 10);
        assert_int_equal(b.ring_failures, 4);
    }
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.calls, 14);
    assert_int_equal(b.failures, 8);
    assert_true(b.failures * 2 > b.calls); /*  lifetime rate above 0.5 */
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                     YARD_BREAKER_OPENED);

    /*  A long history of failures followed by a full window of successes
        leaves nothing of them (window across two ring words). */
    s_cfg_window(&cfg, 100, 100, 0.5);
    s_init(&b, &cfg, 0);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 49; i++)
            assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 10, &rng),
                             YARD_BREAKER_NONE);
        for (int i = 0; i < 100; i++)
            assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 10, &rng),
                             YARD_BREAKER_NONE);
        assert_int_equal(b.ring_failures, 0);
        assert_int_equal(b.ring_len, 100);
    }
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
}

/*  The window against a reference model: random outcomes hovering near the
    rate, many window sizes (one call, within a word, a word exactly, across
    words, the largest), opening when failures * den >= num * len. */
static void test_window_reference(void **state)
{
    (void)state;
    static const struct {
        uint32_t window, min_calls, num, den;
    } cases[] = {
        {1, 1, 1, 2},       {7, 3, 1, 2},    {63, 20, 1, 4},  {64, 10, 1, 4},
        {65, 65, 3, 4},     {100, 20, 1, 2}, {129, 50, 1, 2}, {1024, 100, 1, 4},
        {1024, 1024, 1, 2}, {200, 1, 3, 4},
    };
    static bool hist[YARD_BREAKER_MAX_WINDOW];
    uint64_t total_opens = 0;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            yard_rand_t rng, out;
            yard_rand_seed(&rng, 42);
            yard_rand_seed(&out, seed * 1000 + c);
            yard_breaker_config_t cfg;
            double rate = (double)cases[c].num / (double)cases[c].den;
            s_cfg_window(&cfg, cases[c].window, cases[c].min_calls, rate);
            yard_breaker_t b;
            s_init(&b, &cfg, 0);
            uint32_t w = cases[c].window, pos = 0, len = 0, fails = 0;
            memset(hist, 0, sizeof(hist));
            int64_t now = 0;
            for (int i = 0; i < 6000; i++) {
                /*  Failure probability slowly drifting around the rate. */
                double p = rate + 0.15 * ((i / 500) % 3 - 1);
                bool failed = yard_rand_double(&out) < p;
                /*  A success that brings the window to min_calls while the
                    share is already at the rate is the case of
                    test_window_rate_reached_by_success; steer clear of it
                    here (make that call a failure) so this test checks
                    the ring whichever way that case goes. */
                if (!failed && len + 1 == cases[c].min_calls &&
                    (uint64_t)fails * cases[c].den >=
                        (uint64_t)cases[c].num * cases[c].min_calls)
                    failed = true;
                if (len == w)
                    fails -= hist[pos];
                else
                    len++;
                hist[pos] = failed;
                fails += failed;
                pos = (pos + 1) % w;
                bool expect = len >= cases[c].min_calls &&
                              (uint64_t)fails * cases[c].den >=
                                  (uint64_t)cases[c].num * len;
                yard_breaker_transition_t t = s_call(
                    &b, failed ? YARD_BREAKER_ERROR : YARD_BREAKER_SUCCESS, 1,
                    now, &rng);
                if (expect != (t == YARD_BREAKER_OPENED))
                    fail_msg(
                        "window %u min %u rate %u/%u seed %u call %d: "
                        "%u of %u failed, transition %d (ring %u/%u state %d)",
                        w, cases[c].min_calls, cases[c].num, cases[c].den,
                        (unsigned)seed, i, fails, len, (int)t, b.ring_failures,
                        b.ring_len, (int)b.state);
                if (expect) {
                    total_opens++;
                    now++;
                    assert_int_equal(yard_breaker_reset(&b, now),
                                     YARD_BREAKER_CLOSED_AGAIN);
                    pos = len = fails = 0;
                    memset(hist, 0, sizeof(hist));
                } else {
                    assert_int_equal(t, YARD_BREAKER_NONE);
                    assert_int_equal(b.ring_len, len);
                    assert_int_equal(b.ring_failures, fails);
                }
                now++;
            }
        }
    }
    assert_true(total_opens > 100);
}

static void test_counted_outcomes(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    yard_breaker_t b;

    /*  Defaults: error, timeout and lost all count, and mixed they make a
        run. */
    s_cfg_threshold(&cfg, 3);
    s_init(&b, &cfg, 0);
    assert_int_equal(s_call(&b, YARD_BREAKER_LOST, 1, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_TIMEOUT, 1, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng),
                     YARD_BREAKER_OPENED);
    assert_int_equal(b.failures, 3);
    const yard_breaker_outcome_t fails[] = {
        YARD_BREAKER_ERROR, YARD_BREAKER_TIMEOUT, YARD_BREAKER_LOST};
    for (size_t k = 0; k < 3; k++) {
        s_init(&b, &cfg, 0);
        for (int i = 0; i < 2; i++)
            assert_int_equal(s_call(&b, fails[k], 1, 0, &rng),
                             YARD_BREAKER_NONE);
        assert_int_equal(s_call(&b, fails[k], 1, 0, &rng), YARD_BREAKER_OPENED);
    }

    /*  count = error: timeouts and lost neither open it nor count, in
        either rule. */
    char err[256] = "";
    s_cfg_threshold(&cfg, 3);
    cfg.window = 10;
    cfg.min_calls = 2;
    assert_int_equal(
        yard_breaker_config_set(&cfg, "count", "error", err, sizeof(err)), 9);
    s_init(&b, &cfg, 0);
    for (int i = 0; i < 100; i++) {
        yard_breaker_outcome_t o =
            i % 2 ? YARD_BREAKER_TIMEOUT : YARD_BREAKER_LOST;
        assert_int_equal(s_call(&b, o, 1, 0, &rng), YARD_BREAKER_NONE);
    }
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.calls, 0);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.successes, 0);
    assert_int_equal(b.ring_len, 0);
    assert_int_equal(b.consecutive_failures, 0);
    /*  ... while errors still do. */
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng),
                     YARD_BREAKER_OPENED); /*  1/2 >= 0.5 over min_calls 2 */
    assert_int_equal(b.calls, 2);

    /*  count = none: nothing opens it. */
    s_cfg_threshold(&cfg, 1);
    cfg.count = 0;
    s_init(&b, &cfg, 0);
    for (size_t k = 0; k < 3; k++)
        for (int i = 0; i < 10; i++)
            assert_int_equal(s_call(&b, fails[k], 1, 0, &rng),
                             YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.calls, 0);

    /*  NEUTRAL never counts: not in calls, not in the window, and it does
        not break a run of failures either. */
    s_cfg_threshold(&cfg, 3);
    cfg.window = 4;
    cfg.min_calls = 4;
    s_init(&b, &cfg, 0);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng),
                     YARD_BREAKER_NONE);
    for (int i = 0; i < 50; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_NEUTRAL, 100000, 0, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(b.calls, 2);
    assert_int_equal(b.successes, 0);
    assert_int_equal(b.failures, 2);
    assert_int_equal(b.ring_len, 2);
    assert_int_equal(b.consecutive_failures, 2);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng),
                     YARD_BREAKER_OPENED);
}

static void test_slow_rule(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    yard_breaker_t b;

    s_cfg_threshold(&cfg, 2);
    cfg.slow_ms = 100;
    s_init(&b, &cfg, 0);
    /*  Exactly slow_ms is not slow. */
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 100, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.successes, 1);
    assert_int_equal(b.slow, 0);
    assert_int_equal(b.failures, 0);
    /*  One more is. */
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 101, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.successes, 1);
    assert_int_equal(b.slow, 1);
    assert_int_equal(b.failures, 1);
    assert_int_equal(b.consecutive_failures, 1);
    /*  A second slow success in a row opens it (threshold 2). */
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 5000, 0, &rng),
                     YARD_BREAKER_OPENED);
    assert_int_equal(b.slow, 2);
    assert_int_equal(b.failures, 2);
    assert_int_equal(b.calls, 3);

    /*  A fast success breaks a run of slow ones. */
    s_init(&b, &cfg, 0);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 101, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 0, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 101, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);

    /*  slow_ms 0: the rule is off whatever the duration. */
    cfg.slow_ms = 0;
    s_init(&b, &cfg, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(
            s_call(&b, YARD_BREAKER_SUCCESS, UINT64_MAX / 2, 0, &rng),
            YARD_BREAKER_NONE);
    assert_int_equal(b.slow, 0);
    assert_int_equal(b.successes, 10);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);

    /*  Slow successes count in the window too. */
    s_cfg_window(&cfg, 4, 4, 0.5);
    cfg.slow_ms = 10;
    s_init(&b, &cfg, 0);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 10, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 11, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 0, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.ring_failures, 1);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 11, 0, &rng),
                     YARD_BREAKER_OPENED);
}

/*  ---- open and half-open ----------------------------------------------- */

static void test_open_rejects_and_ticks(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    s_cfg_threshold(&cfg, 1);
    cfg.base_timeout_ms = 1000;
    cfg.max_timeout_ms = 10000;

    yard_breaker_t b;
    s_init(&b, &cfg, 0);
    const int64_t t0 = 5000;
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, t0, &rng),
                     YARD_BREAKER_OPENED);
    assert_int_equal(b.state, YARD_BREAKER_OPEN);
    s_assert_open_ms(b.open_ms, 1000, 10000, 1);
    assert_int_equal(b.open_until_ms, t0 + (int64_t)b.open_ms);
    const int64_t until = b.open_until_ms;
    const uint32_t open_ms = b.open_ms;

    /*  Refused all the way to open_until - 1, with the right retry. */
    const int64_t probes[] = {t0, t0 + 1, t0 + 10, until - 2, until - 1};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        int64_t now = probes[i];
        uint64_t gen = 0;
        uint32_t retry = 0;
        yard_breaker_transition_t t = YARD_BREAKER_OPENED;
        assert_false(yard_breaker_admit(&b, now, &gen, &retry, &t));
        assert_int_equal(t, YARD_BREAKER_NONE);
        assert_int_equal(retry, (uint32_t)(until - now));
        assert_true(retry > 0);
        assert_int_equal(yard_breaker_retry_in(&b, now), retry);
        assert_int_equal(b.rejected, i + 1);
        assert_int_equal(yard_breaker_tick(&b, now), YARD_BREAKER_NONE);
        assert_int_equal(b.state, YARD_BREAKER_OPEN);
    }
    assert_int_equal(yard_breaker_retry_in(&b, t0), open_ms);
    /*  NULL for the transition is allowed. */
    {
        uint64_t gen;
        uint32_t retry;
        assert_false(yard_breaker_admit(&b, t0 + 3, &gen, &retry, NULL));
        assert_int_equal(retry, (uint32_t)(until - t0 - 3));
    }
    /*  An outcome recorded for a refused call changes nothing. */
    uint64_t calls = b.calls;
    assert_int_equal(
        yard_breaker_record(&b, b.gen, YARD_BREAKER_SUCCESS, 1, t0 + 5, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(b.calls, calls);
    assert_int_equal(b.state, YARD_BREAKER_OPEN);

    /*  The copy goes half-open through admit, the original through tick. */
    yard_breaker_t c = b;
    uint64_t open_gen = b.gen;
    assert_int_equal(yard_breaker_tick(&b, until), YARD_BREAKER_HALF_OPENED);
    assert_int_equal(b.state, YARD_BREAKER_HALF_OPEN);
    assert_true(b.gen > open_gen);
    assert_int_equal(yard_breaker_retry_in(&b, until), 0);
    assert_int_equal(yard_breaker_tick(&b, until), YARD_BREAKER_NONE);
    assert_int_equal(yard_breaker_tick(&b, until + 100000), YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_HALF_OPEN);

    uint64_t gen = 0;
    uint32_t retry = 99;
    yard_breaker_transition_t t = YARD_BREAKER_NONE;
    uint64_t rejected = c.rejected;
    assert_true(yard_breaker_admit(&c, until, &gen, &retry, &t));
    assert_int_equal(t, YARD_BREAKER_HALF_OPENED);
    assert_int_equal(retry, 0);
    assert_int_equal(c.state, YARD_BREAKER_HALF_OPEN);
    assert_int_equal(gen, c.gen);
    assert_int_equal(c.trials, 1);
    assert_int_equal(c.rejected, rejected);
    /*  The next admit reports no transition. */
    t = YARD_BREAKER_OPENED;
    assert_true(yard_breaker_admit(&c, until + 1, &gen, &retry, &t));
    assert_int_equal(t, YARD_BREAKER_NONE);

    /*  Long after the timeout, admit still turns it half-open. */
    yard_breaker_t d;
    s_init(&d, &cfg, 0);
    assert_int_equal(s_call(&d, YARD_BREAKER_ERROR, 1, 0, &rng),
                     YARD_BREAKER_OPENED);
    t = YARD_BREAKER_NONE;
    assert_true(yard_breaker_admit(&d, 1000000, &gen, &retry, &t));
    assert_int_equal(t, YARD_BREAKER_HALF_OPENED);

    /*  Closed: retry_in is 0, ticks do nothing. */
    yard_breaker_t e;
    s_init(&e, &cfg, 0);
    assert_int_equal(yard_breaker_retry_in(&e, 0), 0);
    assert_int_equal(yard_breaker_tick(&e, 1000000), YARD_BREAKER_NONE);
    assert_int_equal(e.state, YARD_BREAKER_CLOSED);
}

static void test_backoff_sequence(void **state)
{
    (void)state;
    static const struct {
        uint32_t base, max;
    } cases[] = {
        {1000, 60000}, {5000, 60000}, {1, 86400000}, {300, 300}, {7, 1000},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const uint32_t base = cases[c].base, max = cases[c].max;
        for (uint64_t seed = 42; seed < 42 + 8; seed++) {
            yard_rand_t rng;
            yard_rand_seed(&rng, seed);
            yard_breaker_config_t cfg;
            s_cfg_threshold(&cfg, 2);
            cfg.base_timeout_ms = base;
            cfg.max_timeout_ms = max;
            cfg.half_open_test_count = 2;
            yard_breaker_t b;
            s_init(&b, &cfg, 0);
            int64_t now = 0;
            uint32_t at_max_lo = UINT32_MAX, at_max_hi = 0;
            for (int cycle = 0; cycle < 3; cycle++) {
                assert_int_equal(s_trip(&b, now, &rng), 2);
                /*  Re-open from half-open with one trial failure, 60
                    times: the timeout doubles to the cap. */
                for (uint32_t n = 1; n <= 60; n++) {
                    assert_int_equal(b.state, YARD_BREAKER_OPEN);
                    assert_int_equal(b.consecutive_trips, n);
                    s_assert_open_ms(b.open_ms, base, max, n);
                    assert_int_equal(b.open_until_ms, now + b.open_ms);
                    if (n >= 40) {
                        at_max_lo =
                            b.open_ms < at_max_lo ? b.open_ms : at_max_lo;
                        at_max_hi =
                            b.open_ms > at_max_hi ? b.open_ms : at_max_hi;
                    }
                    now = s_to_half_open(&b);
                    now += 3;
                    yard_breaker_transition_t r = s_call(
                        &b, n % 2 ? YARD_BREAKER_ERROR : YARD_BREAKER_TIMEOUT,
                        1, now, &rng);
                    assert_int_equal(r, YARD_BREAKER_OPENED);
                }
                assert_int_equal(b.consecutive_trips, 61);
                s_assert_open_ms(b.open_ms, base, max, 61);
                /*  Recover: two trial successes close and reset the
                    sequence. */
                now = s_to_half_open(&b);
                assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, now, &rng),
                                 YARD_BREAKER_NONE);
                assert_int_equal(
                    s_call(&b, YARD_BREAKER_SUCCESS, 1, now + 1, &rng),
                    YARD_BREAKER_CLOSED_AGAIN);
                now += 1;
                assert_int_equal(b.state, YARD_BREAKER_CLOSED);
                assert_int_equal(b.consecutive_trips, 0);
                assert_int_equal(b.trips, (uint64_t)(cycle + 1) * 61);
                /*  ... so the next trip is back at base (checked at the top
                    of the next cycle, n = 1). */
            }
            assert_true(at_max_hi <= max);
            /*  At the cap the upper jitter is cut off, the lower is not
                (given enough draws). */
            if (max >= 100) {
                assert_int_equal(at_max_hi, max);
                assert_true(at_max_lo < max);
            }
        }
    }

    /*  The jitter really varies between seeds: the first timeout with base
        10000 takes many different values, all within +-20%. */
    uint32_t lo = UINT32_MAX, hi = 0, distinct = 0, prev = 0;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        yard_rand_t rng;
        yard_rand_seed(&rng, seed);
        yard_breaker_config_t cfg;
        s_cfg_threshold(&cfg, 1);
        cfg.base_timeout_ms = 10000;
        cfg.max_timeout_ms = 100000;
        yard_breaker_t b;
        s_init(&b, &cfg, 0);
        assert_int_equal(s_trip(&b, 0, &rng), 1);
        s_assert_open_ms(b.open_ms, 10000, 100000, 1);
        lo = b.open_ms < lo ? b.open_ms : lo;
        hi = b.open_ms > hi ? b.open_ms : hi;
        distinct += b.open_ms != prev;
        prev = b.open_ms;
    }
    assert_true(distinct > 100);
    assert_true(lo < 9000);
    assert_true(hi > 11000);

    /*  Same seed, same sequence. */
    uint32_t seq[2][10];
    for (int r = 0; r < 2; r++) {
        yard_rand_t rng;
        yard_rand_seed(&rng, 42);
        yard_breaker_config_t cfg;
        s_cfg_threshold(&cfg, 1);
        yard_breaker_t b;
        s_init(&b, &cfg, 0);
        s_trip(&b, 0, &rng);
        for (int n = 0; n < 10; n++) {
            seq[r][n] = b.open_ms;
            int64_t now = s_to_half_open(&b);
            s_call(&b, YARD_BREAKER_LOST, 1, now, &rng);
        }
    }
    assert_memory_equal(seq[0], seq[1], sizeof(seq[0]));
}

static void test_half_open(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    s_cfg_threshold(&cfg, 1);
    cfg.base_timeout_ms = 2000;
    cfg.max_timeout_ms = 100000;
    cfg.half_open_test_count = 3;
    yard_breaker_t b;
    uint64_t gen[8];
    uint32_t retry;
    yard_breaker_transition_t t;

    /*  Exactly half_open_test_count trials, then refusals. */
    s_init(&b, &cfg, 0);
    s_trip(&b, 0, &rng);
    int64_t now = s_to_half_open(&b);
    for (int i = 0; i < 3; i++) {
        assert_true(yard_breaker_admit(&b, now, &gen[i], &retry, &t));
        assert_int_equal(gen[i], b.gen);
        assert_int_equal(b.trials, (uint32_t)i + 1);
    }
    uint64_t rejected = b.rejected;
    for (int i = 0; i < 5; i++) {
        retry = 0;
        assert_false(yard_breaker_admit(&b, now + i, &gen[3], &retry, &t));
        assert_int_equal(retry, cfg.base_timeout_ms);
        assert_int_equal(t, YARD_BREAKER_NONE);
        assert_int_equal(b.rejected, rejected + (uint64_t)i + 1);
        assert_int_equal(b.state, YARD_BREAKER_HALF_OPEN);
    }
    assert_int_equal(b.trials, 3);
    /*  All three succeed: the last one closes it. */
    assert_int_equal(yard_breaker_record(&b, gen[0], YARD_BREAKER_SUCCESS, 1,
                                         now + 10, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(yard_breaker_record(&b, gen[1], YARD_BREAKER_SUCCESS, 1,
                                         now + 11, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_HALF_OPEN);
    assert_int_equal(b.trial_successes, 2);
    assert_int_equal(yard_breaker_record(&b, gen[2], YARD_BREAKER_SUCCESS, 1,
                                         now + 12, &rng),
                     YARD_BREAKER_CLOSED_AGAIN);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.since_ms, now + 12);
    assert_int_equal(b.consecutive_trips, 0);
    assert_int_equal(b.consecutive_failures, 0);
    assert_int_equal(b.recovery_trials, 3);
    assert_int_equal(b.recovery_successes, 3);
    assert_true(yard_breaker_admit(&b, now + 13, &gen[4], &retry, &t));

    /*  One trial failure re-opens with the next backoff step, even after
        successes. */
    s_init(&b, &cfg, 0);
    s_trip(&b, 0, &rng);
    now = s_to_half_open(&b);
    for (int i = 0; i < 3; i++)
        assert_true(yard_breaker_admit(&b, now, &gen[i], &retry, &t));
    assert_int_equal(
        yard_breaker_record(&b, gen[0], YARD_BREAKER_SUCCESS, 1, now + 1, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(
        yard_breaker_record(&b, gen[1], YARD_BREAKER_TIMEOUT, 1, now + 2, &rng),
        YARD_BREAKER_OPENED);
    assert_int_equal(b.state, YARD_BREAKER_OPEN);
    assert_int_equal(b.consecutive_trips, 2);
    assert_int_equal(b.trips, 2);
    s_assert_open_ms(b.open_ms, 2000, 100000, 2);
    assert_int_equal(b.open_until_ms, now + 2 + b.open_ms);
    assert_int_equal(b.recovery_trials, 2);
    assert_int_equal(b.recovery_successes, 1);
    /*  The third trial's late outcome belongs to the old half-open period. */
    assert_int_equal(
        yard_breaker_record(&b, gen[2], YARD_BREAKER_SUCCESS, 1, now + 3, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(b.recovery_trials, 2);
    /*  Next half-open, a slow success is a failure too. */
    yard_breaker_config_t slow = cfg;
    slow.slow_ms = 50;
    assert_int_equal(yard_breaker_configure(&b, &slow, now + 4),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_OPEN);
    now = s_to_half_open(&b);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 51, now, &rng),
                     YARD_BREAKER_OPENED);
    assert_int_equal(b.consecutive_trips, 3);
    s_assert_open_ms(b.open_ms, 2000, 100000, 3);

    /*  A NEUTRAL trial frees its slot: one more trial is admitted. */
    s_init(&b, &cfg, 0);
    s_trip(&b, 0, &rng);
    now = s_to_half_open(&b);
    for (int i = 0; i < 3; i++)
        assert_true(yard_breaker_admit(&b, now, &gen[i], &retry, &t));
    assert_false(yard_breaker_admit(&b, now, &gen[3], &retry, &t));
    assert_int_equal(
        yard_breaker_record(&b, gen[1], YARD_BREAKER_NEUTRAL, 1, now, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(b.trials, 2);
    assert_int_equal(b.recovery_trials, 0);
    assert_true(yard_breaker_admit(&b, now, &gen[3], &retry, &t));
    assert_false(yard_breaker_admit(&b, now, &gen[4], &retry, &t));
    /*  Three successes (the neutral one aside) close it. */
    assert_int_equal(
        yard_breaker_record(&b, gen[0], YARD_BREAKER_SUCCESS, 1, now, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(
        yard_breaker_record(&b, gen[2], YARD_BREAKER_SUCCESS, 1, now, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_HALF_OPEN);
    assert_int_equal(
        yard_breaker_record(&b, gen[3], YARD_BREAKER_SUCCESS, 1, now, &rng),
        YARD_BREAKER_CLOSED_AGAIN);

    /*  A failure not counted (count = error, a timeout) is neutral in
        half-open too: it neither re-opens nor holds a slot. */
    cfg.count = YARD_BREAKER_COUNT_ERROR;
    s_init(&b, &cfg, 0);
    s_trip(&b, 0, &rng);
    now = s_to_half_open(&b);
    for (int i = 0; i < 3; i++)
        assert_true(yard_breaker_admit(&b, now, &gen[i], &retry, &t));
    assert_int_equal(
        yard_breaker_record(&b, gen[0], YARD_BREAKER_TIMEOUT, 1, now, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_HALF_OPEN);
    assert_true(yard_breaker_admit(&b, now, &gen[3], &retry, &t));

    /*  half_open_test_count 1: one success closes. */
    cfg.count = YARD_BREAKER_COUNT_DEFAULT;
    cfg.half_open_test_count = 1;
    s_init(&b, &cfg, 0);
    s_trip(&b, 0, &rng);
    now = s_to_half_open(&b);
    assert_true(yard_breaker_admit(&b, now, &gen[0], &retry, &t));
    assert_false(yard_breaker_admit(&b, now, &gen[1], &retry, &t));
    assert_int_equal(
        yard_breaker_record(&b, gen[0], YARD_BREAKER_SUCCESS, 1, now, &rng),
        YARD_BREAKER_CLOSED_AGAIN);
}

static void test_generations(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    s_cfg_threshold(&cfg, 2);
    cfg.base_timeout_ms = 1000;
    cfg.half_open_test_count = 3;
    yard_breaker_t b;
    s_init(&b, &cfg, 0);
    uint32_t retry;
    yard_breaker_transition_t t;

    /*  Six calls admitted while closed. */
    uint64_t old[6];
    for (int i = 0; i < 6; i++) {
        assert_true(yard_breaker_admit(&b, 0, &old[i], &retry, &t));
        assert_int_equal(old[i], old[0]);
    }
    /*  Two of them fail: open. */
    assert_int_equal(
        yard_breaker_record(&b, old[0], YARD_BREAKER_ERROR, 1, 10, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(
        yard_breaker_record(&b, old[1], YARD_BREAKER_ERROR, 1, 10, &rng),
        YARD_BREAKER_OPENED);
    assert_true(b.gen != old[0]);
    /*  The rest land while open: ignored. */
    assert_int_equal(
        yard_breaker_record(&b, old[2], YARD_BREAKER_SUCCESS, 1, 20, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(b.calls, 2);
    assert_int_equal(b.successes, 0);

    int64_t now = s_to_half_open(&b);
    uint64_t half_gen = b.gen;
    assert_true(half_gen != old[0]);
    /*  Late successes from before the trip cannot close it, nor count. */
    for (int i = 3; i < 6; i++)
        assert_int_equal(
            yard_breaker_record(&b, old[i], YARD_BREAKER_SUCCESS, 1, now, &rng),
            YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_HALF_OPEN);
    assert_int_equal(b.calls, 2);
    assert_int_equal(b.successes, 0);
    assert_int_equal(b.trial_successes, 0);
    assert_int_equal(b.recovery_trials, 0);
    /*  ... nor re-open it with a failure. */
    assert_int_equal(
        yard_breaker_record(&b, old[3], YARD_BREAKER_ERROR, 1, now, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_HALF_OPEN);
    assert_int_equal(b.trips, 1);
    assert_int_equal(b.failures, 2);

    /*  The trials, and a stale neutral that must not free a slot. */
    uint64_t trial[3];
    for (int i = 0; i < 3; i++) {
        assert_true(yard_breaker_admit(&b, now, &trial[i], &retry, &t));
        assert_int_equal(trial[i], half_gen);
    }
    uint64_t g;
    assert_false(yard_breaker_admit(&b, now, &g, &retry, &t));
    assert_int_equal(
        yard_breaker_record(&b, old[4], YARD_BREAKER_NEUTRAL, 1, now, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(b.trials, 3);
    assert_false(yard_breaker_admit(&b, now, &g, &retry, &t));
    /*  A made-up future generation is ignored too. */
    assert_int_equal(yard_breaker_record(&b, half_gen + 1, YARD_BREAKER_SUCCESS,
                                         1, now, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.trial_successes, 0);

    /*  Only the trials decide. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(yard_breaker_record(&b, trial[i], YARD_BREAKER_SUCCESS,
                                             1, now, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(
        yard_breaker_record(&b, trial[2], YARD_BREAKER_SUCCESS, 1, now, &rng),
        YARD_BREAKER_CLOSED_AGAIN);
    assert_true(b.gen != half_gen);
    assert_int_equal(b.calls, 5);
    assert_int_equal(b.successes, 3);
    /*  Closed again: a trial generation no longer counts. */
    assert_int_equal(
        yard_breaker_record(&b, trial[0], YARD_BREAKER_ERROR, 1, now + 1, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(b.calls, 5);
    assert_int_equal(b.consecutive_failures, 0);

    /*  Generations only grow, one per transition. */
    uint64_t g0 = b.gen;
    s_trip(&b, now + 2, &rng);
    assert_int_equal(b.gen, g0 + 1);
    s_to_half_open(&b);
    assert_int_equal(b.gen, g0 + 2);
}

static void test_reset(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    s_cfg_threshold(&cfg, 2);
    cfg.window = 10;
    cfg.min_calls = 10;
    yard_breaker_t b;
    s_init(&b, &cfg, 0);

    /*  From open, after two trips in a row. */
    s_trip(&b, 0, &rng);
    int64_t now = s_to_half_open(&b);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, now, &rng),
                     YARD_BREAKER_OPENED);
    assert_int_equal(b.consecutive_trips, 2);
    uint64_t calls = b.calls, trips = b.trips, failures = b.failures;
    uint64_t gen = b.gen;
    assert_int_equal(yard_breaker_reset(&b, now + 5),
                     YARD_BREAKER_CLOSED_AGAIN);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.since_ms, now + 5);
    assert_int_equal(b.consecutive_trips, 0);
    assert_int_equal(b.consecutive_failures, 0);
    assert_int_equal(b.ring_len, 0);
    assert_int_equal(yard_breaker_retry_in(&b, now + 5), 0);
    assert_true(b.gen > gen);
    assert_int_equal(b.calls, calls);
    assert_int_equal(b.trips, trips);
    assert_int_equal(b.failures, failures);
    uint64_t g;
    uint32_t retry;
    assert_true(yard_breaker_admit(&b, now + 6, &g, &retry, NULL));
    /*  The backoff starts over. */
    s_trip(&b, now + 6, &rng);
    assert_int_equal(b.consecutive_trips, 1);
    s_assert_open_ms(b.open_ms, cfg.base_timeout_ms, cfg.max_timeout_ms, 1);

    /*  From half-open. */
    now = s_to_half_open(&b);
    assert_true(yard_breaker_admit(&b, now, &g, &retry, NULL));
    assert_int_equal(yard_breaker_reset(&b, now + 1),
                     YARD_BREAKER_CLOSED_AGAIN);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.consecutive_trips, 0);
    assert_int_equal(b.trials, 0);
    /*  The trial admitted before the reset no longer counts. */
    calls = b.calls;
    assert_int_equal(
        yard_breaker_record(&b, g, YARD_BREAKER_SUCCESS, 1, now + 2, &rng),
        YARD_BREAKER_NONE);
    assert_int_equal(b.calls, calls);

    /*  Already closed: NONE, but the failure run is cleared. */
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, now + 3, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.consecutive_failures, 1);
    trips = b.trips;
    calls = b.calls;
    assert_int_equal(yard_breaker_reset(&b, now + 4), YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.consecutive_failures, 0);
    assert_int_equal(b.trips, trips);
    assert_int_equal(b.calls, calls);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, now + 5, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
}

static void test_time_in_states(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    s_cfg_threshold(&cfg, 1);
    cfg.base_timeout_ms = 1000;
    cfg.max_timeout_ms = 100000;
    cfg.half_open_test_count = 1;
    yard_breaker_t b;
    const int64_t start = 10000;
    s_init(&b, &cfg, start);

#define TIME_IN(s, now) yard_breaker_time_in(&b, YARD_BREAKER_##s, now)
#define ASSERT_TIMES(now, closed, open, half)                                  \
    do {                                                                       \
        assert_int_equal(TIME_IN(CLOSED, now), closed);                        \
        assert_int_equal(TIME_IN(OPEN, now), open);                            \
        assert_int_equal(TIME_IN(HALF_OPEN, now), half);                       \
        assert_int_equal(TIME_IN(CLOSED, now) + TIME_IN(OPEN, now) +           \
                             TIME_IN(HALF_OPEN, now),                          \
                         (uint64_t)((now)-start));                             \
    } while (0)

    ASSERT_TIMES(start, 0, 0, 0);
    ASSERT_TIMES(start + 1500, 1500, 0, 0);

    /*  Closed 2000 ms, then open. */
    int64_t t_open = start + 2000;
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, t_open, &rng),
                     YARD_BREAKER_OPENED);
    ASSERT_TIMES(t_open, 2000, 0, 0);
    ASSERT_TIMES(t_open + 250, 2000, 250, 0);

    /*  Open for open_ms, then half-open. */
    uint32_t open1 = b.open_ms;
    int64_t t_half = s_to_half_open(&b);
    assert_int_equal(t_half, t_open + open1);
    ASSERT_TIMES(t_half, 2000, open1, 0);
    ASSERT_TIMES(t_half + 70, 2000, open1, 70);

    /*  Half-open 400 ms, a failed trial: open again. */
    int64_t t_open2 = t_half + 400;
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, t_open2, &rng),
                     YARD_BREAKER_OPENED);
    uint32_t open2 = b.open_ms;
    ASSERT_TIMES(t_open2 + 1, 2000, open1 + 1, 400);

    /*  Half-open again via admit, a good trial after 30 ms: closed. */
    int64_t t_half2 = b.open_until_ms;
    uint64_t gen;
    uint32_t retry;
    yard_breaker_transition_t t;
    assert_true(yard_breaker_admit(&b, t_half2, &gen, &retry, &t));
    assert_int_equal(t, YARD_BREAKER_HALF_OPENED);
    int64_t t_closed = t_half2 + 30;
    assert_int_equal(
        yard_breaker_record(&b, gen, YARD_BREAKER_SUCCESS, 1, t_closed, &rng),
        YARD_BREAKER_CLOSED_AGAIN);
    ASSERT_TIMES(t_closed, 2000, open1 + open2, 430);
    ASSERT_TIMES(t_closed + 5000, 7000, open1 + open2, 430);

    /*  A reset while closed does not lose closed time. */
    assert_int_equal(yard_breaker_reset(&b, t_closed + 6000),
                     YARD_BREAKER_NONE);
    ASSERT_TIMES(t_closed + 9000, 11000, open1 + open2, 430);

    /*  A reset from open books the open time. */
    int64_t t_open3 = t_closed + 9000;
    assert_int_equal(s_call(&b, YARD_BREAKER_LOST, 1, t_open3, &rng),
                     YARD_BREAKER_OPENED);
    assert_int_equal(yard_breaker_reset(&b, t_open3 + 123),
                     YARD_BREAKER_CLOSED_AGAIN);
    ASSERT_TIMES(t_open3 + 200, 11000 + 77, open1 + open2 + 123, 430);

    /*  Asking about a time before the current period began adds nothing
        for it. */
    assert_int_equal(TIME_IN(CLOSED, t_open3 + 123), 11000);
    assert_int_equal(TIME_IN(CLOSED, 0), 11000);

#undef ASSERT_TIMES
#undef TIME_IN
}

static void test_rates(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    s_cfg_threshold(&cfg, 3);
    cfg.half_open_test_count = 2;
    yard_breaker_t b;
    s_init(&b, &cfg, 0);

    /*  Nothing recorded: 1.0 for both. */
    assert_true(yard_breaker_success_rate(&b) == 1.0);
    assert_true(yard_breaker_recovery_rate(&b) == 1.0);
    /*  Neutral outcomes do not change that. */
    s_call(&b, YARD_BREAKER_NEUTRAL, 1, 0, &rng);
    assert_true(yard_breaker_success_rate(&b) == 1.0);

    /*  3 successes, 1 error: 0.75. */
    for (int i = 0; i < 3; i++)
        s_call(&b, YARD_BREAKER_SUCCESS, 1, 0, &rng);
    s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng);
    assert_float_equal(yard_breaker_success_rate(&b), 0.75, 1e-12);
    assert_true(yard_breaker_recovery_rate(&b) == 1.0);

    /*  Trip (2 more errors): 3 of 6. */
    s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng),
                     YARD_BREAKER_OPENED);
    assert_float_equal(yard_breaker_success_rate(&b), 0.5, 1e-12);

    /*  Trials: success, failure (re-open), success, success (close):
        3 of 4 recovered; calls 10 with 6 successes. */
    int64_t now = s_to_half_open(&b);
    s_call(&b, YARD_BREAKER_SUCCESS, 1, now, &rng);
    assert_float_equal(yard_breaker_recovery_rate(&b), 1.0, 1e-12);
    assert_int_equal(s_call(&b, YARD_BREAKER_TIMEOUT, 1, now, &rng),
                     YARD_BREAKER_OPENED);
    assert_float_equal(yard_breaker_recovery_rate(&b), 0.5, 1e-12);
    now = s_to_half_open(&b);
    s_call(&b, YARD_BREAKER_SUCCESS, 1, now, &rng);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, now, &rng),
                     YARD_BREAKER_CLOSED_AGAIN);
    assert_int_equal(b.recovery_trials, 4);
    assert_int_equal(b.recovery_successes, 3);
    assert_float_equal(yard_breaker_recovery_rate(&b), 0.75, 1e-12);
    assert_int_equal(b.calls, 10);
    assert_int_equal(b.successes, 6);
    assert_float_equal(yard_breaker_success_rate(&b), 0.6, 1e-12);

    /*  Slow successes are not successes. */
    yard_breaker_config_t slow = cfg;
    slow.slow_ms = 5;
    assert_int_equal(yard_breaker_configure(&b, &slow, now), YARD_BREAKER_NONE);
    s_call(&b, YARD_BREAKER_SUCCESS, 6, now, &rng);
    assert_float_equal(yard_breaker_success_rate(&b), 6.0 / 11.0, 1e-12);
    /*  Reset keeps the metrics. */
    yard_breaker_reset(&b, now);
    assert_float_equal(yard_breaker_success_rate(&b), 6.0 / 11.0, 1e-12);
    assert_float_equal(yard_breaker_recovery_rate(&b), 0.75, 1e-12);
}

static void test_configure(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg, off;
    s_cfg_threshold(&cfg, 1);
    yard_breaker_t b;
    s_init(&b, &cfg, 0);

    /*  Disabling an open breaker closes it. */
    s_trip(&b, 0, &rng);
    off = cfg;
    off.enabled = false;
    assert_int_equal(yard_breaker_configure(&b, &off, 10),
                     YARD_BREAKER_CLOSED_AGAIN);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    assert_int_equal(b.consecutive_trips, 0);
    assert_false(b.config.enabled);
    /*  ... and a half-open one. */
    s_init(&b, &cfg, 0);
    s_trip(&b, 0, &rng);
    int64_t now = s_to_half_open(&b);
    assert_int_equal(yard_breaker_configure(&b, &off, now),
                     YARD_BREAKER_CLOSED_AGAIN);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    /*  Disabling a closed one is no transition. */
    s_init(&b, &cfg, 0);
    assert_int_equal(yard_breaker_configure(&b, &off, 0), YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);

    /*  Disabled: everything admitted, nothing opens it, calls counted. */
    for (int i = 0; i < 300; i++) {
        yard_breaker_outcome_t o =
            (yard_breaker_outcome_t)(YARD_BREAKER_ERROR +
                                     i % 3); /*  error, timeout, lost */
        assert_int_equal(s_call(&b, o, 1, i, &rng), YARD_BREAKER_NONE);
        assert_int_equal(b.state, YARD_BREAKER_CLOSED);
    }
    s_call(&b, YARD_BREAKER_SUCCESS, 1, 300, &rng);
    assert_int_equal(b.calls, 301);
    assert_int_equal(b.failures, 300);
    assert_int_equal(b.successes, 1);
    assert_int_equal(b.trips, 0);
    assert_int_equal(b.rejected, 0);
    assert_int_equal(yard_breaker_tick(&b, 1000000), YARD_BREAKER_NONE);
    /*  Disabled from init, with no opening rule at all. */
    off.fail_threshold = 0;
    off.window = 0;
    s_init(&b, &off, 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, i, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(b.calls, 50);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);

    /*  Enabling again: the rules apply. */
    assert_int_equal(yard_breaker_configure(&b, &cfg, 100), YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 100, &rng),
                     YARD_BREAKER_OPENED);

    /*  Reconfiguring an enabled open breaker keeps it open, until its
        timeout. */
    yard_breaker_config_t slower = cfg;
    slower.base_timeout_ms = 100;
    int64_t until = b.open_until_ms;
    assert_int_equal(yard_breaker_configure(&b, &slower, 101),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_OPEN);
    assert_int_equal(b.open_until_ms, until);
    assert_int_equal(b.config.base_timeout_ms, 100);

    /*  A window change clears the ring. */
    yard_breaker_config_t w;
    s_cfg_window(&w, 10, 4, 0.5);
    s_init(&b, &w, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(b.ring_len, 3);
    assert_int_equal(b.ring_failures, 3);
    w.window = 8;
    assert_int_equal(yard_breaker_configure(&b, &w, 1), YARD_BREAKER_NONE);
    assert_int_equal(b.ring_len, 0);
    assert_int_equal(b.ring_failures, 0);
    assert_int_equal(b.ring_pos, 0);
    assert_int_equal(b.config.window, 8);
    /*  Without the clear the 4th failure would open it (4 of 4). */
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 2, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.ring_len, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 2, &rng),
                         YARD_BREAKER_NONE);
    /*  The new window works: wrap it twice with a ratio below 0.5. */
    for (int i = 0; i < 16; i++) {
        yard_breaker_outcome_t o =
            i % 4 == 0 ? YARD_BREAKER_ERROR : YARD_BREAKER_SUCCESS;
        assert_int_equal(s_call(&b, o, 1, 3, &rng), YARD_BREAKER_NONE);
        assert_true(b.ring_len <= 8);
    }
    assert_int_equal(b.ring_len, 8);
    assert_int_equal(b.ring_failures, 2);
    /*  Shrinking the window to 2 and filling it with failures opens. */
    w.window = 2;
    w.min_calls = 2;
    assert_int_equal(yard_breaker_configure(&b, &w, 4), YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 4, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 4, &rng),
                     YARD_BREAKER_OPENED); /*  1 of 2 >= 0.5 */
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(yard_breaker_state_name(YARD_BREAKER_CLOSED), "closed");
    assert_string_equal(yard_breaker_state_name(YARD_BREAKER_OPEN), "open");
    assert_string_equal(yard_breaker_state_name(YARD_BREAKER_HALF_OPEN),
                        "half_open");
    assert_string_equal(yard_breaker_event_name(YARD_BREAKER_OPENED),
                        "breaker.opened");
    assert_string_equal(yard_breaker_event_name(YARD_BREAKER_HALF_OPENED),
                        "breaker.half_open");
    assert_string_equal(yard_breaker_event_name(YARD_BREAKER_CLOSED_AGAIN),
                        "breaker.closed");
    assert_null(yard_breaker_event_name(YARD_BREAKER_NONE));
}

/*  ---- contract edge cases ---------------------------------------------- */

/*  The window rule opens when failures / len >= failure_rate. With
    failure_rate 0.55 and a full window of 100 calls of which 55 failed,
    the share is exactly 0.55 (55.0 / 100.0 == 0.55 in doubles), so it
    must open. yard_breaker.c compares failures >= rate * len instead, and
    0.55 * 100 rounds to 55.00000000000001, so 55 failures are not
    enough. The same happens for e.g. 0.07, 0.14, 0.28, 0.56 with window
    100 and 0.14, 0.28, 0.56 with window 50. */
static void test_window_rate_exact_share(void **state)
{
    (void)state;
    static const struct {
        const char *rate;
        uint32_t window, failures;
    } cases[] = {
        {"0.55", 100, 55}, {"0.07", 100, 7}, {"0.28", 50, 14},
        {"0.5", 100, 50},  {"0.3", 10, 3},
    };
    int missed = 0;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        yard_rand_t rng;
        yard_rand_seed(&rng, 42);
        yard_breaker_config_t cfg;
        char err[256] = "";
        char num[16];
        yard_breaker_config_defaults(&cfg);
        snprintf(num, sizeof(num), "%u", cases[c].window);
        assert_int_equal(yard_breaker_config_set(&cfg, "fail_threshold", "0",
                                                 err, sizeof(err)),
                         1);
        assert_int_equal(
            yard_breaker_config_set(&cfg, "window", num, err, sizeof(err)), 2);
        assert_int_equal(
            yard_breaker_config_set(&cfg, "min_calls", num, err, sizeof(err)),
            3);
        assert_int_equal(yard_breaker_config_set(&cfg, "failure_rate",
                                                 cases[c].rate, err,
                                                 sizeof(err)),
                         4);
        /*  The share at the last call is exactly the configured rate. */
        assert_true((double)cases[c].failures / (double)cases[c].window >=
                    cfg.failure_rate);
        yard_breaker_t b;
        s_init(&b, &cfg, 0);
        uint32_t successes = cases[c].window - cases[c].failures;
        for (uint32_t i = 0; i < successes; i++)
            assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 0, &rng),
                             YARD_BREAKER_NONE);
        for (uint32_t i = 0; i + 1 < cases[c].failures; i++)
            assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng),
                             YARD_BREAKER_NONE);
        yard_breaker_transition_t t =
            s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng);
        if (t != YARD_BREAKER_OPENED) {
            print_error("failure_rate %s, window %u: %u failures of %u "
                        "calls did not open the breaker\n",
                        cases[c].rate, cases[c].window, cases[c].failures,
                        cases[c].window);
            missed++;
        }
    }
    assert_int_equal(missed, 0);
}

/*  The window rule applies once the window holds min_calls calls. When
    the call that brings it to min_calls is a success but the share of
    failures is already at the rate (F F F F F S S S S S, min_calls 10,
    rate 0.5: 5 of 10), the breaker must open; yard_breaker_record only
    evaluates the window rule after a failure (it returns early on a
    success), so it stays closed, and with further successes the share
    drops below the rate again without it ever opening. */
static void test_window_rate_reached_by_success(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg;
    s_cfg_window(&cfg, 20, 10, 0.5);
    yard_breaker_t b;
    s_init(&b, &cfg, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng),
                         YARD_BREAKER_NONE);
    for (int i = 0; i < 4; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 0, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(b.ring_len, 9);
    /*  10th call: 5 failures of 10 >= 0.5. */
    assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 0, &rng),
                     YARD_BREAKER_OPENED);
}

/*  consecutive_failures means failures in a row. Successes recorded while
    the breaker is disabled do not reset the run (yard_breaker_record
    returns before updating it when !enabled), and configure does not
    clear it, so after re-enabling a single failure completes a run that
    was broken by any number of successes in between. */
static void test_run_broken_while_disabled(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    yard_breaker_config_t cfg, off;
    s_cfg_threshold(&cfg, 5);
    off = cfg;
    off.enabled = false;
    yard_breaker_t b;
    s_init(&b, &cfg, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 0, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(yard_breaker_configure(&b, &off, 1), YARD_BREAKER_NONE);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(s_call(&b, YARD_BREAKER_SUCCESS, 1, 2, &rng),
                         YARD_BREAKER_NONE);
    assert_int_equal(yard_breaker_configure(&b, &cfg, 3), YARD_BREAKER_NONE);
    /*  One failure after 1000 successes is not 5 in a row. */
    assert_int_equal(s_call(&b, YARD_BREAKER_ERROR, 1, 4, &rng),
                     YARD_BREAKER_NONE);
    assert_int_equal(b.state, YARD_BREAKER_CLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_config_set_valid),
        cmocka_unit_test(test_config_set_invalid),
        cmocka_unit_test(test_config_keys),
        cmocka_unit_test(test_config_copy_key),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_consecutive_failures),
        cmocka_unit_test(test_window_min_calls),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_window_reference),
        cmocka_unit_test(test_counted_outcomes),
        cmocka_unit_test(test_slow_rule),
        cmocka_unit_test(test_open_rejects_and_ticks),
        cmocka_unit_test(test_backoff_sequence),
        cmocka_unit_test(test_half_open),
        cmocka_unit_test(test_generations),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_time_in_states),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_configure),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_window_rate_exact_share),
        cmocka_unit_test(test_window_rate_reached_by_success),
        cmocka_unit_test(test_run_broken_while_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
