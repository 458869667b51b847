/*  test_hist.c — yard_hist: exact below 32, the 6.25% relative error bound
    against a sorted-array truth on random data, percentile rank rules,
    merge, the empty histogram and the extremes of uint64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "yard_hist.h"

static uint64_t s_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int s_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*  The true value at percentile p with the same rank rule. */
static uint64_t s_truth(const uint64_t *sorted, size_t n, double p)
{
    double r = ceil(p / 100.0 * (double)n);
    size_t rank = r < 1 ? 1 : r > (double)n ? n : (size_t)r;
    return sorted[rank - 1];
}

static void test_empty(void **state)
{
    (void)state;
    yard_hist_t h;
    yard_hist_reset(&h);
    assert_int_equal(h.count, 0);
    assert_true(h.min == UINT64_MAX);
    assert_int_equal(h.max, 0);
    assert_int_equal(yard_hist_percentile(&h, 50), 0);
    assert_int_equal(yard_hist_percentile(&h, 100), 0);
    assert_true(yard_hist_mean(&h) == 0.0);
    yard_hist_t e;
    yard_hist_reset(&e);
    yard_hist_merge(&h, &e); /*  empty into empty stays empty */
    assert_int_equal(h.count, 0);
    assert_true(h.min == UINT64_MAX);
}

static void test_exact_small(void **state)
{
    (void)state;
    /*  Every value below 32 has its own bucket. */
    for (uint64_t v = 0; v < 32; v++) {
        yard_hist_t h;
        yard_hist_reset(&h);
        yard_hist_record(&h, v);
        assert_int_equal(yard_hist_percentile(&h, 0), v);
        assert_int_equal(yard_hist_percentile(&h, 50), v);
        assert_int_equal(yard_hist_percentile(&h, 100), v);
    }
    /*  0..31 once each: percentile k*100/32 is value k-1. */
    yard_hist_t h;
    yard_hist_reset(&h);
    for (uint64_t v = 0; v < 32; v++)
        yard_hist_record(&h, v);
    for (uint64_t k = 1; k <= 32; k++)
        assert_int_equal(yard_hist_percentile(&h, (double)k * 100.0 / 32.0),
                         k - 1);
    assert_int_equal(yard_hist_percentile(&h, 0), 0); /*  rank at least 1 */
    assert_int_equal(yard_hist_percentile(&h, -5), 0);
    assert_int_equal(yard_hist_percentile(&h, 1000), 31);
    assert_int_equal(yard_hist_percentile(&h, NAN), 0); /*  NaN */
    assert_true(yard_hist_mean(&h) == 15.5);
    assert_int_equal(h.sum, 31 * 32 / 2);
}

/*  Every value v maps to a bucket whose reported bound r obeys
    v <= r < v * 17/16 (checked with one value recorded, so no clamping
    hides an error, except that max clamps r to v itself). */
static void test_bucket_bounds_sweep(void **state)
{
    (void)state;
    uint64_t rng = 5;
    for (int i = 0; i < 200000; i++) {
        /*  Random magnitude, then random bits below it. */
        unsigned bits = (unsigned)(s_next(&rng) % 64) + 1;
        uint64_t v = s_next(&rng) >> (64 - bits);
        yard_hist_t h;
        yard_hist_reset(&h);
        yard_hist_record(&h, v);
        yard_hist_record(&h, UINT64_MAX); /*  so max does not clamp */
        uint64_t r = yard_hist_percentile(&h, 50);
        assert_true(r >= v);
        /*  r - v < v / 16 in integers; below 32 exact. (d < 2^60, so
            16 * d does not overflow.) */
        uint64_t d = r - v;
        if (v < 32)
            assert_int_equal(d, 0);
        else
            assert_true(16 * d < v);
    }
}

static void s_check_random(uint64_t (*gen)(uint64_t *), size_t n, uint64_t seed)
{
    uint64_t *values = malloc(n * sizeof(*values));
    assert_non_null(values);
    yard_hist_t h;
    yard_hist_reset(&h);
    uint64_t rng = seed;
    for (size_t i = 0; i < n; i++) {
        values[i] = gen(&rng);
        yard_hist_record(&h, values[i]);
    }
    qsort(values, n, sizeof(*values), s_cmp);
    const double ps[] = {0, 1, 10, 50, 90, 95, 99, 99.9, 100};
    for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
        uint64_t truth = s_truth(values, n, ps[k]);
        uint64_t got = yard_hist_percentile(&h, ps[k]);
        assert_true(got >= truth);
        assert_true((double)(got - truth) <= (double)truth / 16.0);
    }
    assert_int_equal(h.min, values[0]);
    assert_int_equal(h.max, values[n - 1]);
    assert_int_equal(yard_hist_percentile(&h, 100), values[n - 1]);
    free(values);
}

static uint64_t s_gen_latency(uint64_t *rng)
{
    /*  Log-uniform 1us..10s, like real latencies. */
    unsigned bits = (unsigned)(s_next(rng) % 24);
    return (s_next(rng) >> (64 - bits - 1)) + 1;
}

static uint64_t s_gen_uniform(uint64_t *rng)
{
    return s_next(rng) % 100000;
}

static uint64_t s_gen_wide(uint64_t *rng)
{
    return s_next(rng); /*  the whole uint64 range */
}

static void test_random_percentiles(void **state)
{
    (void)state;
    s_check_random(s_gen_latency, 100000, 1);
    s_check_random(s_gen_uniform, 100000, 2);
    s_check_random(s_gen_wide, 50000, 3);
    s_check_random(s_gen_latency, 7, 4); /*  few values */
}

static void test_merge(void **state)
{
    (void)state;
    yard_hist_t a, b, all;
    yard_hist_reset(&a);
    yard_hist_reset(&b);
    yard_hist_reset(&all);
    uint64_t rng = 11;
    for (int i = 0; i < 10000; i++) {
        uint64_t v = s_gen_latency(&rng);
        yard_hist_record(i % 3 ? &a : &b, v);
        yard_hist_record(&all, v);
    }
    yard_hist_merge(&a, &b);
    assert_memory_equal(&a, &all, sizeof(a));
    yard_hist_t e;
    yard_hist_reset(&e);
    yard_hist_merge(&a, &e); /*  merging empty changes nothing */
    assert_memory_equal(&a, &all, sizeof(a));
    yard_hist_merge(&e, &all); /*  into empty: a copy */
    assert_memory_equal(&e, &all, sizeof(e));
}

static void test_extremes(void **state)
{
    (void)state;
    yard_hist_t h;
    yard_hist_reset(&h);
    yard_hist_record(&h, UINT64_MAX);
    assert_true(yard_hist_percentile(&h, 50) == UINT64_MAX);
    assert_true(h.sum == UINT64_MAX);
    yard_hist_record(&h, UINT64_MAX); /*  sum saturates */
    assert_true(h.sum == UINT64_MAX);
    yard_hist_record(&h, 0);
    assert_int_equal(h.min, 0);
    assert_int_equal(yard_hist_percentile(&h, 0), 0);
    assert_true(yard_hist_percentile(&h, 100) == UINT64_MAX);
    /*  Top of each power of two, and one above. */
    for (unsigned b = 4; b < 64; b++) {
        uint64_t v = ((uint64_t)1 << b) - 1;
        yard_hist_reset(&h);
        yard_hist_record(&h, v);
        yard_hist_record(&h, v + 1);
        assert_int_equal(yard_hist_percentile(&h, 50), v);
        assert_int_equal(yard_hist_percentile(&h, 100), v + 1);
    }
    /*  Merge saturates the sum too. */
    yard_hist_t a, b;
    yard_hist_reset(&a);
    yard_hist_reset(&b);
    yard_hist_record(&a, UINT64_MAX - 1);
    yard_hist_record(&b, 2);
    yard_hist_merge(&a, &b);
    assert_true(a.sum == UINT64_MAX);
    assert_int_equal(a.count, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_exact_small),
        cmocka_unit_test(test_bucket_bounds_sweep),
        cmocka_unit_test(test_random_percentiles),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
