/*  test_clock.c — yard_clock: monotonic clocks never go back and agree
    with each other; the wall clock is in a plausible epoch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "yard_clock.h"

static void test_monotonic(void **state)
{
    (void)state;
    int64_t prev_us = yard_clock_us(), prev_ms = yard_clock_ms();
    for (int i = 0; i < 100000; i++) {
        int64_t us = yard_clock_us(), ms = yard_clock_ms();
        assert_true(us >= prev_us);
        assert_true(ms >= prev_ms);
        prev_us = us;
        prev_ms = ms;
    }
    /*  Same clock in two units: within a few ms of each other. */
    int64_t us = yard_clock_us();
    int64_t ms = yard_clock_ms();
    assert_true(ms - us / 1000 >= 0 && ms - us / 1000 < 50);
}

static void test_wallclock(void **state)
{
    (void)state;
    int64_t now = yard_wallclock_ms();
    assert_true(now > 1577836800000LL);  /*  2020-01-01 */
    assert_true(now < 32503680000000LL); /*  3000-01-01 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotonic),
        cmocka_unit_test(test_wallclock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
