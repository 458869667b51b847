/*  test_backoff.c — yard_backoff_ms: doubling from base, the cap, jitter
    bounds over many draws, huge steps without overflow, degenerate
    arguments (base 0, step 0, NULL rng, out-of-range jitter). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>

#include <cmocka.h>

#include "yard_backoff.h"

static void test_doubling_and_cap(void **state)
{
    (void)state;
    assert_int_equal(yard_backoff_ms(100, 1, 10000, 0, NULL), 100);
    assert_int_equal(yard_backoff_ms(100, 2, 10000, 0, NULL), 200);
    assert_int_equal(yard_backoff_ms(100, 3, 10000, 0, NULL), 400);
    assert_int_equal(yard_backoff_ms(100, 7, 10000, 0, NULL), 6400);
    assert_int_equal(yard_backoff_ms(100, 8, 10000, 0, NULL), 10000);
    assert_int_equal(yard_backoff_ms(100, 0, 10000, 0, NULL), 100);
    /*  Monotonic non-decreasing in step, never above cap. */
    uint32_t prev = 0;
    for (uint32_t step = 1; step < 200; step++) {
        uint32_t d = yard_backoff_ms(3, step, 50000, 0, NULL);
        assert_true(d >= prev);
        assert_true(d <= 50000);
        prev = d;
    }
    assert_int_equal(prev, 50000);
    /*  Cap below base: the cap wins. */
    assert_int_equal(yard_backoff_ms(500, 1, 100, 0, NULL), 100);
}

static void test_no_overflow(void **state)
{
    (void)state;
    const uint32_t steps[] = {31, 32, 33, 63, 64, 65, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        assert_int_equal(yard_backoff_ms(1, steps[i], 60000, 0, NULL), 60000);
        assert_true(yard_backoff_ms(UINT32_MAX, steps[i], UINT32_MAX, 0,
                                    NULL) == UINT32_MAX);
        /*  3 * 2^30 still fits; from step 32 on the cap applies. */
        assert_true(yard_backoff_ms(3, steps[i], UINT32_MAX, 0, NULL) ==
                    (steps[i] == 31 ? 3u << 30 : UINT32_MAX));
    }
    assert_true(yard_backoff_ms(UINT32_MAX, 1, UINT32_MAX, 1.0, NULL) ==
                UINT32_MAX);
}

static void test_base_zero(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 1);
    assert_int_equal(yard_backoff_ms(0, 1, 1000, 0.5, &rng), 0);
    assert_int_equal(yard_backoff_ms(0, 1000, 1000, 0.5, &rng), 0);
    assert_int_equal(yard_backoff_ms(10, 5, 0, 0.5, &rng), 0); /*  cap 0 */
}

static void test_jitter_bounds(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 2);
    const double jitters[] = {0.1, 0.25, 0.5, 1.0};
    for (size_t k = 0; k < 4; k++) {
        double j = jitters[k];
        uint32_t lo = UINT32_MAX, hi = 0;
        for (int i = 0; i < 20000; i++) {
            /*  1000 * 2^2 = 4000, cap far above */
            uint32_t d = yard_backoff_ms(1000, 3, 100000, j, &rng);
            assert_true(d >= (uint32_t)floor(4000 * (1 - j)));
            assert_true(d <= (uint32_t)ceil(4000 * (1 + j)));
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /*  The draws really spread over the range. */
        assert_true(lo < 4000 * (1 - j / 2));
        assert_true(hi > 4000 * (1 + j / 2));
        /*  At the cap, jitter only goes down. */
        for (int i = 0; i < 2000; i++) {
            uint32_t d = yard_backoff_ms(1000, 20, 5000, j, &rng);
            assert_true(d <= 5000);
            assert_true(d >= (uint32_t)floor(5000 * (1 - j)));
        }
    }
}

static void test_bad_jitter(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 3);
    /*  Negative or NaN jitter means none; above 1 is clamped to 1. */
    assert_int_equal(yard_backoff_ms(100, 2, 1000, -0.5, &rng), 200);
    assert_int_equal(yard_backoff_ms(100, 2, 1000, NAN, &rng), 200);
    for (int i = 0; i < 1000; i++)
        assert_true(yard_backoff_ms(100, 2, 1000, 7.0, &rng) <= 400);
    assert_int_equal(yard_backoff_ms(100, 2, 1000, 0.5, NULL), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubling_and_cap),
        cmocka_unit_test(test_no_overflow),
        cmocka_unit_test(test_base_zero),
        cmocka_unit_test(test_jitter_bounds),
        cmocka_unit_test(test_bad_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
