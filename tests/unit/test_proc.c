/*  test_proc.c — the loop and memory accounting of process reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "yard_proc.h"

#define MS 1000
#define S (1000 * MS)

static void s_fresh(yard_proc_t *p, int64_t now)
{
    unsetenv("YARD_LOOP_SLOW_MS");
    unsetenv("YARD_LOOP_STALL_MS");
    yard_proc_init(p, now);
}

/*  Busy time between polls: iterations, totals, slow and stalled ones. */
static void test_busy_iterations(void **state)
{
    (void)state;
    yard_proc_t p;
    int64_t t = 10 * S;
    s_fresh(&p, t);
    assert_int_equal(p.slow_us, YARD_PROC_DEFAULT_SLOW_MS * MS);
    assert_int_equal(p.stall_us, YARD_PROC_DEFAULT_STALL_MS * MS);
    /*  A quick turn: 2 ms busy, poll returns on time. */
    t += 2 * MS;
    yard_proc_poll_enter(&p, t, 100);
    t += 50 * MS;
    yard_proc_poll_leave(&p, t);
    /*  A slow turn: 60 ms. */
    t += 60 * MS;
    yard_proc_poll_enter(&p, t, 0);
    yard_proc_poll_leave(&p, t);
    /*  A stalled turn: 700 ms busy. */
    t += 700 * MS;
    yard_proc_poll_enter(&p, t, -1);
    assert_int_equal(p.iterations, 2);
    assert_int_equal(p.busy_us, (2 + 60 + 700) * MS);
    assert_int_equal(p.max_busy_us, 700 * MS);
    assert_int_equal(p.slow, 2);
    assert_int_equal(p.stalls, 1);
    assert_int_equal(p.last_stall_us, 700 * MS);
    assert_int_equal(yard_proc_stall_age_ms(&p, t + 3 * S), 3000);
    /*  No deadline (-1): a late return is not lag. */
    t += 10 * S;
    yard_proc_poll_leave(&p, t);
    assert_int_equal(p.stalls, 1);
    assert_int_equal(p.max_lag_us, 0);
}

/*  A poll that returns long after its deadline is a stall (the process
    did not run: SIGSTOP, a frozen machine). */
static void test_lag(void **state)
{
    (void)state;
    yard_proc_t p;
    int64_t t = 5 * S;
    s_fresh(&p, t);
    assert_true(yard_proc_stall_age_ms(&p, t) == UINT64_MAX);
    yard_proc_poll_enter(&p, t, 1000);
    t += 1300 * MS; /*  300 ms late: lag, not a stall */
    yard_proc_poll_leave(&p, t);
    assert_int_equal(p.max_lag_us, 300 * MS);
    assert_int_equal(p.stalls, 0);
    yard_proc_poll_enter(&p, t, 1000);
    t += 3 * S; /*  2 s late */
    yard_proc_poll_leave(&p, t);
    assert_int_equal(p.stalls, 1);
    assert_int_equal(p.last_stall_us, 2 * S);
    assert_int_equal(p.max_lag_us, 2 * S);
    assert_int_equal(yard_proc_stall_age_ms(&p, t), 0);
    /*  Returning early (an event) is no lag at all. */
    yard_proc_poll_enter(&p, t, 5000);
    t += 1 * MS;
    yard_proc_poll_leave(&p, t);
    yard_proc_poll_enter(&p, t, 5000);
    assert_int_equal(p.stalls, 1);
    assert_int_equal(p.slow, 0);
}

static void test_thresholds_from_env(void **state)
{
    (void)state;
    yard_proc_t p;
    setenv("YARD_LOOP_SLOW_MS", "5", 1);
    setenv("YARD_LOOP_STALL_MS", "20", 1);
    yard_proc_init(&p, 1);
    assert_int_equal(p.slow_us, 5 * MS);
    assert_int_equal(p.stall_us, 20 * MS);
    /*  Bad values: the defaults. */
    setenv("YARD_LOOP_SLOW_MS", "0", 1);
    setenv("YARD_LOOP_STALL_MS", "12x", 1);
    yard_proc_init(&p, 1);
    assert_int_equal(p.slow_us, YARD_PROC_DEFAULT_SLOW_MS * MS);
    assert_int_equal(p.stall_us, YARD_PROC_DEFAULT_STALL_MS * MS);
    unsetenv("YARD_LOOP_SLOW_MS");
    unsetenv("YARD_LOOP_STALL_MS");
}

/*  Growth is now minus the smallest sample of the window: a process that
    grew once and then held steady stops showing growth after a window. */
static void test_rss_growth(void **state)
{
    (void)state;
    yard_proc_t p;
    s_fresh(&p, 1);
    assert_true(p.rss > 0); /*  /proc/self/statm was read */
    assert_int_equal(p.ring_len, 1);
    /*  Reset to known samples. */
    p.ring_len = 0;
    p.ring_pos = 0;
    p.rss_peak = 0;
    yard_proc_add_rss(&p, 100u << 20);
    assert_int_equal(yard_proc_rss_growth(&p), 0);
    assert_int_equal(yard_proc_window_ms(&p), 0);
    yard_proc_add_rss(&p, 90u << 20);
    assert_int_equal(yard_proc_rss_growth(&p), 0); /*  shrank */
    yard_proc_add_rss(&p, 150u << 20);
    assert_int_equal(yard_proc_rss_growth(&p), 60u << 20);
    assert_int_equal(p.rss_peak, 150u << 20);
    assert_int_equal(yard_proc_window_ms(&p), 2 * YARD_PROC_SAMPLE_MS);
    /*  Steady for a whole window: the growth is gone. */
    for (int i = 0; i < YARD_PROC_WINDOW_S; i++)
        yard_proc_add_rss(&p, 150u << 20);
    assert_int_equal(yard_proc_rss_growth(&p), 0);
    assert_int_equal(p.ring_len, YARD_PROC_WINDOW_S);
    assert_int_equal(yard_proc_window_ms(&p),
                     (YARD_PROC_WINDOW_S - 1) * YARD_PROC_SAMPLE_MS);
    /*  yard_proc_sample reads at most once per period. */
    yard_proc_t q;
    s_fresh(&q, 1000);
    yard_proc_sample(&q, 1000 + 10 * MS);
    assert_int_equal(q.ring_len, 1);
    yard_proc_sample(&q, 1000 + YARD_PROC_SAMPLE_MS * MS);
    assert_int_equal(q.ring_len, 2);
    assert_true(yard_proc_read_rss() > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_busy_iterations),
        cmocka_unit_test(test_lag),
        cmocka_unit_test(test_thresholds_from_env),
        cmocka_unit_test(test_rss_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
