/*  test_bucket.c — yard_bucket: a burst admitted at once and then no more,
    the wait until the next token, the exact rate over simulated time with
    regular and random demand, run-time changes, rate 0, a clock going
    backwards, and no overflow after a long idle time at the maximum rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "yard_bucket.h"
#include "yard_rand.h"

static void test_burst_then_wait(void **state)
{
    (void)state;
    yard_bucket_t b;
    yard_bucket_init(&b, 100, 5, 1000);
    assert_int_equal(yard_bucket_tokens(&b, 1000), 5);
    for (int i = 0; i < 5; i++)
        assert_true(yard_bucket_take(&b, 1000));
    assert_false(yard_bucket_take(&b, 1000));
    /*  100 tokens/s: one every 10 ms. */
    assert_int_equal(yard_bucket_wait_us(&b, 1000), 10000);
    assert_int_equal(yard_bucket_wait_us(&b, 6000), 5000);
    assert_false(yard_bucket_take(&b, 10999));
    assert_true(yard_bucket_take(&b, 11000));
    assert_false(yard_bucket_take(&b, 11000));
    /*  A long pause fills it to the burst, not beyond. */
    assert_int_equal(yard_bucket_tokens(&b, 11000 + 60 * 1000000LL), 5);
}

/*  Demand far above the rate for 10 s of simulated time: exactly burst +
    rate * 10 s admitted (the rate holds with no drift). */
static void test_rate_holds_exactly(void **state)
{
    (void)state;
    const uint32_t rates[] = {1, 7, 100, 333, 1000, 12345, 1000000};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        yard_bucket_t b;
        yard_bucket_init(&b, rates[r], 10, 0);
        uint64_t admitted = 0;
        int64_t step = rates[r] >= 100000 ? 1 : 37; /*  demand > rate */
        for (int64_t t = 0; t <= 10 * 1000000LL; t += step)
            while (yard_bucket_take(&b, t))
                admitted++;
        while (yard_bucket_take(&b, 10 * 1000000LL)) /*  the last instant */
            admitted++;
        assert_int_equal(admitted, 10 + (uint64_t)rates[r] * 10);
    }
}

/*  Random arrival times: never more than burst + rate * T admitted in T,
    and, with demand coming before the bucket fills, never fewer than
    rate * T. */
static void test_random_demand(void **state)
{
    (void)state;
    yard_rand_t rng;
    yard_rand_seed(&rng, 42);
    for (int round = 0; round < 50; round++) {
        uint32_t rate = 1 + yard_rand_below(&rng, 5000);
        uint32_t burst = 2 + yard_rand_below(&rng, 100);
        yard_bucket_t b;
        yard_bucket_init(&b, rate, burst, 0);
        uint64_t admitted = 0;
        int64_t t = 0;
        /*  Gaps no longer than it takes to earn burst - 1 tokens (less
            than one is left after a take), so no token is lost to the
            burst cap while nobody asks. */
        uint64_t gap = (uint64_t)(burst - 1) * 1000000 / rate;
        if (gap > 2000)
            gap = 2000;
        while (t < 3 * 1000000LL) {
            t += (int64_t)yard_rand_below(&rng, gap + 1);
            while (yard_bucket_take(&b, t))
                admitted++;
            int64_t wait = yard_bucket_wait_us(&b, t);
            assert_true(wait > 0);
            assert_true(wait <= (1000000 + rate - 1) / rate);
        }
        uint64_t most = burst + (uint64_t)rate * (uint64_t)t / 1000000;
        uint64_t least = (uint64_t)rate * (uint64_t)t / 1000000;
        if (!(admitted <= most && admitted + 1 >= least))
            print_error("rate %u burst %u t %lld admitted %llu [%llu, %llu]\n",
                        rate, burst, (long long)t, (unsigned long long)admitted,
                        (unsigned long long)least, (unsigned long long)most);
        assert_true(admitted <= most);
        assert_true(admitted + 1 >= least);
    }
}

static void test_set_at_run_time(void **state)
{
    (void)state;
    yard_bucket_t b;
    yard_bucket_init(&b, 10, 100, 0);
    assert_int_equal(yard_bucket_tokens(&b, 0), 100);
    /*  A smaller burst cuts what is held. */
    yard_bucket_set(&b, 10, 3, 0);
    assert_int_equal(yard_bucket_tokens(&b, 0), 3);
    for (int i = 0; i < 3; i++)
        assert_true(yard_bucket_take(&b, 0));
    assert_false(yard_bucket_take(&b, 0));
    /*  A faster rate applies from now on. */
    yard_bucket_set(&b, 1000, 3, 0);
    assert_int_equal(yard_bucket_wait_us(&b, 0), 1000);
    assert_true(yard_bucket_take(&b, 1000));
    /*  Rate 0: no limit, whatever the tokens; back to a limit later. */
    yard_bucket_set(&b, 0, 3, 1000);
    for (int i = 0; i < 1000; i++)
        assert_true(yard_bucket_take(&b, 1000));
    assert_int_equal(yard_bucket_wait_us(&b, 1000), 0);
    yard_bucket_set(&b, 1, 1, 2000); /*  starts full, as at init */
    assert_true(yard_bucket_take(&b, 2000));
    assert_false(yard_bucket_take(&b, 2000));
    assert_int_equal(yard_bucket_wait_us(&b, 2000), 1000000);
}

static void test_clock_and_limits(void **state)
{
    (void)state;
    yard_bucket_t b;
    /*  A clock that goes backwards earns nothing and takes nothing away. */
    yard_bucket_init(&b, 1000, 1, 5000);
    assert_true(yard_bucket_take(&b, 5000));
    assert_false(yard_bucket_take(&b, 4000));
    assert_false(yard_bucket_take(&b, 5999));
    assert_true(yard_bucket_take(&b, 6000));
    /*  The maximum rate after a year idle: full, no overflow. */
    yard_bucket_init(&b, UINT32_MAX, UINT32_MAX, 0);
    assert_int_equal(b.rate, YARD_BUCKET_MAX_RATE);
    assert_int_equal(b.burst, YARD_BUCKET_MAX_BURST);
    for (uint32_t i = 0; i < YARD_BUCKET_MAX_BURST; i++)
        assert_true(yard_bucket_take(&b, 0));
    assert_false(yard_bucket_take(&b, 0));
    int64_t year = 365LL * 24 * 3600 * 1000000;
    assert_int_equal(yard_bucket_tokens(&b, year), YARD_BUCKET_MAX_BURST);
    /*  Burst 0 is taken as 1. */
    yard_bucket_init(&b, 5, 0, 0);
    assert_true(yard_bucket_take(&b, 0));
    assert_false(yard_bucket_take(&b, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_wait),
        cmocka_unit_test(test_rate_holds_exactly),
        cmocka_unit_test(test_random_demand),
        cmocka_unit_test(test_set_at_run_time),
        cmocka_unit_test(test_clock_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
