/*  test_map.c — yard_map against a plain-array reference: random
    put/remove/get sequences (thousands of operations) with real hashes,
    with many values forced onto few hashes, and in a tiny table so probe
    runs wrap around the end; plus sizing, growth and memory(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "yard_map.h"

typedef struct {
    uint64_t key;  /*  unique per item; what eq compares */
    uint64_t hash; /*  the hash it is stored under       */
    bool in;       /*  reference: is it in the map now   */
} item_t;

static bool s_eq(const void *value, const void *key)
{
    return ((const item_t *)value)->key == *(const uint64_t *)key;
}

/*  A small deterministic PRNG so the test needs nothing else. */
static uint64_t s_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void s_count(void *value, void *arg)
{
    item_t *item = value;
    assert_true(item->in);
    (*(size_t *)arg)++;
}

typedef struct {
    uint64_t hash; /*  the hash each_hash was asked for */
    size_t *count; /*  values visited                   */
} s_hash_arg_t;

static void s_count_hash(void *value, void *arg)
{
    s_hash_arg_t *a = arg;
    item_t *item = value;
    assert_true(item->in);
    assert_true(item->hash == a->hash);
    (*a->count)++;
}

/*  Checks every item against the reference. */
static void s_check_all(yard_map_t *map, item_t *items, size_t n, size_t size)
{
    assert_int_equal(yard_map_size(map), size);
    for (size_t i = 0; i < n; i++) {
        void *got = yard_map_get(map, items[i].hash, s_eq, &items[i].key);
        if (items[i].in)
            assert_ptr_equal(got, &items[i]);
        else
            assert_null(got);
    }
    size_t seen = 0;
    yard_map_each(map, s_count, &seen);
    assert_int_equal(seen, size);
    /*  each_hash visits exactly the stored values under that hash. */
    for (size_t i = 0; i < n; i += 1 + n / 64) {
        size_t want = 0, got = 0;
        for (size_t k = 0; k < n; k++)
            want += items[k].in && items[k].hash == items[i].hash;
        s_hash_arg_t arg = {.hash = items[i].hash, .count = &got};
        yard_map_each_hash(map, items[i].hash, s_count_hash, &arg);
        assert_int_equal(got, want);
    }
}

/*  Runs `ops` random operations over n items whose hashes come from
    `distinct` values (0 = full 64-bit random hashes). */
static void s_random_run(size_t expected, size_t n, uint64_t distinct,
                         size_t ops, uint64_t seed)
{
    item_t *items = calloc(n, sizeof(*items));
    assert_non_null(items);
    uint64_t rng = seed;
    uint64_t *pool = NULL;
    if (distinct) {
        pool = calloc(distinct, sizeof(*pool));
        assert_non_null(pool);
        for (uint64_t i = 0; i < distinct; i++)
            pool[i] = s_next(&rng);
    }
    for (size_t i = 0; i < n; i++) {
        items[i].key = i;
        items[i].hash = distinct ? pool[s_next(&rng) % distinct] : s_next(&rng);
    }
    yard_map_t *map = yard_map_new(expected);
    assert_non_null(map);
    size_t size = 0;
    for (size_t op = 0; op < ops; op++) {
        item_t *item = &items[s_next(&rng) % n];
        unsigned kind = (unsigned)(s_next(&rng) % 10);
        if (kind < 5) {
            /*  put if absent, else remove: keeps the map about half full */
            if (!item->in) {
                assert_int_equal(yard_map_put(map, item->hash, item), 0);
                item->in = true;
                size++;
            } else {
                assert_int_equal(yard_map_remove(map, item->hash, item), 0);
                item->in = false;
                size--;
            }
        } else if (kind < 7) {
            /*  remove something that may be absent */
            int rc = yard_map_remove(map, item->hash, item);
            assert_int_equal(rc, item->in ? 0 : -1);
            if (item->in) {
                item->in = false;
                size--;
            }
        } else if (kind < 8) {
            /*  right value under the wrong hash is not found */
            assert_int_equal(yard_map_remove(map, item->hash ^ 1, item), -1);
        } else {
            void *got = yard_map_get(map, item->hash, s_eq, &item->key);
            assert_ptr_equal(got, item->in ? item : NULL);
            /*  eq NULL: some value under that hash, if any */
            item_t *any = yard_map_get(map, item->hash, NULL, NULL);
            if (item->in)
                assert_non_null(any);
            if (any)
                assert_true(any->in && any->hash == item->hash);
        }
        assert_int_equal(yard_map_size(map), size);
        if (op % 997 == 0)
            s_check_all(map, items, n, size);
    }
    s_check_all(map, items, n, size);
    /*  Drain in random order; the table must end empty and consistent. */
    for (size_t i = 0; i < n; i++) {
        item_t *item = &items[(i * 7919) % n];
        if (item->in) {
            assert_int_equal(yard_map_remove(map, item->hash, item), 0);
            item->in = false;
            size--;
        }
    }
    s_check_all(map, items, n, 0);
    yard_map_destroy(&map);
    assert_null(map);
    yard_map_destroy(&map); /*  idempotent */
    free(pool);
    free(items);
}

static void test_random_real_hashes(void **state)
{
    (void)state;
    s_random_run(0, 2000, 0, 50000, 1);
    s_random_run(5000, 3001, 0, 50000, 2);
}

static void test_random_forced_collisions(void **state)
{
    (void)state;
    s_random_run(0, 1000, 8, 40000, 3);   /*  ~125 values per hash */
    s_random_run(0, 500, 1, 20000, 4);    /*  every value one hash */
    s_random_run(0, 2000, 300, 40000, 5); /*  mixed short and long runs */
}

static void test_random_tiny_table_wraps(void **state)
{
    (void)state;
    /*  Few items in a 16-slot table: runs wrap past the last slot. */
    for (uint64_t seed = 10; seed < 60; seed++)
        s_random_run(0, 11, seed % 3 ? 0 : 4, 3000, seed);
}

static void test_growth_and_memory(void **state)
{
    (void)state;
    yard_map_t *map = yard_map_new(0);
    assert_non_null(map);
    size_t small = yard_map_memory(map);
    assert_true(small > 0 && small < 4096);
    enum { N = 100000 };
    item_t *items = calloc(N, sizeof(*items));
    assert_non_null(items);
    uint64_t rng = 99;
    size_t last = small;
    for (size_t i = 0; i < N; i++) {
        items[i].key = i;
        items[i].hash = s_next(&rng);
        assert_int_equal(yard_map_put(map, items[i].hash, &items[i]), 0);
        items[i].in = true;
        size_t mem = yard_map_memory(map);
        assert_true(mem >= last); /*  grows, never shrinks */
        last = mem;
    }
    /*  At most 70% load: at least N / 0.7 slots of 16 bytes each, and a
        power of two, so at most twice that. */
    size_t min_bytes = (size_t)N * 10 / 7 * 16;
    assert_true(last >= min_bytes);
    assert_true(last <= 2 * min_bytes + 4096);
    s_check_all(map, items, N, N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(yard_map_remove(map, items[i].hash, &items[i]), 0);
    assert_int_equal(yard_map_size(map), 0);
    assert_int_equal(yard_map_memory(map), last); /*  shrinks never */
    yard_map_destroy(&map);

    /*  Sized up front: no growth for `expected` entries. */
    map = yard_map_new(N);
    assert_non_null(map);
    size_t sized = yard_map_memory(map);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(yard_map_put(map, items[i].hash, &items[i]), 0);
    assert_int_equal(yard_map_memory(map), sized);
    yard_map_destroy(&map);
    free(items);
}

static void test_duplicates_and_sequential_hashes(void **state)
{
    (void)state;
    /*  Sequential hashes (a weak caller hash) still work. */
    yard_map_t *map = yard_map_new(0);
    item_t items[64];
    for (size_t i = 0; i < 64; i++) {
        items[i] = (item_t){.key = i, .hash = i / 2, .in = true};
        assert_int_equal(yard_map_put(map, items[i].hash, &items[i]), 0);
    }
    for (size_t i = 0; i < 64; i++) {
        assert_ptr_equal(yard_map_get(map, i / 2, s_eq, &items[i].key),
                         &items[i]);
        uint64_t other = i ^ 1; /*  same hash, different key */
        assert_ptr_equal(yard_map_get(map, i / 2, s_eq, &other), &items[other]);
        uint64_t missing = 1000;
        assert_null(yard_map_get(map, i / 2, s_eq, &missing));
    }
    assert_null(yard_map_get(map, 12345, NULL, NULL));
    /*  The same pointer twice under one hash is two entries. */
    assert_int_equal(yard_map_put(map, 7, &items[0]), 0);
    assert_int_equal(yard_map_put(map, 7, &items[0]), 0);
    assert_int_equal(yard_map_size(map), 66);
    assert_int_equal(yard_map_remove(map, 7, &items[0]), 0);
    assert_int_equal(yard_map_remove(map, 7, &items[0]), 0);
    assert_int_equal(yard_map_remove(map, 7, &items[0]), -1);
    assert_int_equal(yard_map_remove(map, 0, NULL), -1);
    assert_int_equal(yard_map_size(map), 64);
    yard_map_destroy(&map);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_real_hashes),
        cmocka_unit_test(test_random_forced_collisions),
        cmocka_unit_test(test_random_tiny_table_wraps),
        cmocka_unit_test(test_growth_and_memory),
        cmocka_unit_test(test_duplicates_and_sequential_hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
