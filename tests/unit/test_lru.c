/*  test_lru.c — yard_lru, the L1 cache of yard-cache: every operation,
    eviction order by entries and by bytes, TTL and negative TTL on an
    injected clock, incremental expiry (bounded work per call), the tag
    index after evictions, overwrites and deletes, prefix and glob
    invalidation, the stats counters, and thousands of random operations
    checked against a plain-array reference model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "yard_lru.h"

#define SEED 0x5eedULL

/*  Bytes charged for an entry (the formula documented in yard_lru.h). */
static size_t s_charge(size_t klen, size_t vlen, size_t tag_bytes, size_t ntags)
{
    return klen + vlen + tag_bytes + YARD_LRU_ENTRY_OVERHEAD +
           ntags * YARD_LRU_TAG_OVERHEAD;
}

static int s_set(yard_lru_t *c, const char *k, const char *v, int64_t ttl,
                 int64_t now)
{
    return yard_lru_set(c, k, strlen(k), v, strlen(v), NULL, 0, ttl, now);
}

static int s_set_tags(yard_lru_t *c, const char *k, const char *v,
                      const char *const *tags, size_t n, int64_t ttl,
                      int64_t now)
{
    yard_lru_bytes_t t[YARD_LRU_MAX_TAGS + 2];
    for (size_t i = 0; i < n; i++) {
        t[i].ptr = tags[i];
        t[i].len = strlen(tags[i]);
    }
    return yard_lru_set(c, k, strlen(k), v, strlen(v), t, n, ttl, now);
}

static yard_lru_result_t s_get(yard_lru_t *c, const char *k, int64_t now,
                               yard_lru_found_t *out)
{
    return yard_lru_get(c, k, strlen(k), now, out);
}

/*  Asserts k holds value v at now. */
static void s_expect(yard_lru_t *c, const char *k, const char *v, int64_t now)
{
    yard_lru_found_t f;
    assert_int_equal(s_get(c, k, now, &f), YARD_LRU_HIT);
    assert_int_equal(f.len, strlen(v));
    assert_memory_equal(f.value, v, f.len);
}

static void s_expect_miss(yard_lru_t *c, const char *k, int64_t now)
{
    assert_int_equal(s_get(c, k, now, NULL), YARD_LRU_MISS);
}

static yard_lru_stats_t s_stats(yard_lru_t *c)
{
    yard_lru_stats_t st;
    yard_lru_stats(c, &st);
    return st;
}

/* ---- Operations --------------------------------------------------------- */

static void test_new_rejects_bad_limits(void **state)
{
    (void)state;
    assert_null(yard_lru_new(0, 1 << 20, SEED));
    assert_null(yard_lru_new(10, YARD_LRU_ENTRY_OVERHEAD, SEED));
    yard_lru_t *c = yard_lru_new(1, YARD_LRU_ENTRY_OVERHEAD + 1, SEED);
    assert_non_null(c);
    yard_lru_destroy(&c);
    assert_null(c);
    yard_lru_destroy(&c); /*  idempotent */
    yard_lru_destroy(NULL);
}

static void test_set_get_del_overwrite(void **state)
{
    (void)state;
    yard_lru_t *c = yard_lru_new(100, 1 << 20, SEED);
    assert_non_null(c);
    s_expect_miss(c, "a", 0);
    assert_int_equal(s_set(c, "a", "one", 0, 0), 0);
    s_expect(c, "a", "one", 1);
    yard_lru_found_t f;
    assert_int_equal(s_get(c, "a", 5, &f), YARD_LRU_HIT);
    assert_int_equal(f.ttl_ms, 0); /*  no TTL */
    assert_int_equal(f.ntags, 0);

    /*  Overwrite replaces the value and the size. */
    assert_int_equal(s_set(c, "a", "a longer value", 0, 2), 0);
    s_expect(c, "a", "a longer value", 3);
    assert_int_equal(yard_lru_size(c), 1);
    assert_int_equal(s_stats(c).bytes, s_charge(1, 14, 0, 0));

    /*  Empty value is a value, not a miss. */
    assert_int_equal(yard_lru_set(c, "e", 1, NULL, 0, NULL, 0, 0, 4), 0);
    assert_int_equal(s_get(c, "e", 4, &f), YARD_LRU_HIT);
    assert_int_equal(f.len, 0);

    /*  Binary keys with NUL bytes are distinct keys. */
    assert_int_equal(yard_lru_set(c, "x\0y", 3, "1", 1, NULL, 0, 0, 4), 0);
    assert_int_equal(yard_lru_set(c, "x\0z", 3, "2", 1, NULL, 0, 0, 4), 0);
    assert_int_equal(yard_lru_get(c, "x\0y", 3, 4, &f), YARD_LRU_HIT);
    assert_memory_equal(f.value, "1", 1);
    assert_int_equal(yard_lru_get(c, "x", 1, 4, &f), YARD_LRU_MISS);

    assert_int_equal(yard_lru_del(c, "a", 1, 5), 1);
    assert_int_equal(yard_lru_del(c, "a", 1, 5), 0);
    s_expect_miss(c, "a", 6);
    assert_int_equal(yard_lru_del(c, "nothere", 7, 6), 0);

    /*  Bad arguments. */
    assert_int_equal(yard_lru_set(c, "", 0, "v", 1, NULL, 0, 0, 0),
                     YARD_LRU_E_ARG);
    assert_int_equal(yard_lru_set(c, NULL, 3, "v", 1, NULL, 0, 0, 0),
                     YARD_LRU_E_ARG);
    assert_int_equal(yard_lru_set(c, "k", 1, "v", 1, NULL, 0, -1, 0),
                     YARD_LRU_E_ARG);
    yard_lru_bytes_t empty_tag = {"", 0};
    assert_int_equal(yard_lru_set(c, "k", 1, "v", 1, &empty_tag, 1, 0, 0),
                     YARD_LRU_E_ARG);
    yard_lru_bytes_t many[YARD_LRU_MAX_TAGS + 1];
    for (size_t i = 0; i <= YARD_LRU_MAX_TAGS; i++)
        many[i] = (yard_lru_bytes_t){"t", 1};
    assert_int_equal(
        yard_lru_set(c, "k", 1, "v", 1, many, YARD_LRU_MAX_TAGS + 1, 0, 0),
        YARD_LRU_E_ARG);
    /*  16 copies of one tag are one tag. */
    assert_int_equal(
        yard_lru_set(c, "k", 1, "v", 1, many, YARD_LRU_MAX_TAGS, 0, 0), 0);
    assert_int_equal(s_get(c, "k", 0, &f), YARD_LRU_HIT);
    assert_int_equal(f.ntags, 1);
    assert_int_equal(s_stats(c).tags, 1);
    assert_int_equal(yard_lru_set_negative(c, "n", 1, 0, 0), YARD_LRU_E_ARG);
    assert_int_equal(s_get(c, "", 0, NULL), YARD_LRU_MISS);
    yard_lru_destroy(&c);
}

/* ---- Eviction ----------------------------------------------------------- */

static void test_eviction_order_by_entries(void **state)
{
    (void)state;
    yard_lru_t *c = yard_lru_new(3, 1 << 20, SEED);
    assert_non_null(c);
    assert_int_equal(s_set(c, "a", "1", 0, 0), 0);
    assert_int_equal(s_set(c, "b", "2", 0, 1), 0);
    assert_int_equal(s_set(c, "c", "3", 0, 2), 0);
    s_expect(c, "a", "1", 3); /*  a is now the most recent: b is oldest */
    assert_int_equal(s_set(c, "d", "4", 0, 4), 0);
    s_expect_miss(c, "b", 5);
    s_expect(c, "a", "1", 5);
    s_expect(c, "c", "3", 5);
    s_expect(c, "d", "4", 5);
    assert_int_equal(s_stats(c).evictions, 1);
    /*  Order now (oldest first): a c d. An overwrite refreshes too. */
    assert_int_equal(s_set(c, "a", "1b", 0, 6), 0);
    assert_int_equal(s_set(c, "e", "5", 0, 7), 0); /*  evicts c */
    s_expect_miss(c, "c", 8);
    assert_int_equal(s_set(c, "f", "6", 0, 9), 0); /*  evicts d */
    s_expect_miss(c, "d", 10);
    s_expect(c, "a", "1b", 10);
    assert_int_equal(yard_lru_size(c), 3);
    assert_int_equal(s_stats(c).evictions, 3);
    yard_lru_destroy(&c);
}

static void test_eviction_order_by_bytes(void **state)
{
    (void)state;
    /*  Room for exactly 4 entries of key 1 byte + value 100 bytes. */
    size_t one = s_charge(1, 100, 0, 0);
    yard_lru_t *c = yard_lru_new(1000, 4 * one, SEED);
    assert_non_null(c);
    char v[1024];
    memset(v, 'v', sizeof v);
    const char *keys[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(yard_lru_set(c, keys[i], 1, v, 100, NULL, 0, 0, i), 0);
    assert_int_equal(s_stats(c).bytes, 4 * one);
    assert_int_equal(s_stats(c).evictions, 0);
    assert_int_equal(s_get(c, "a", 10, NULL), YARD_LRU_HIT); /*  b oldest */
    /*  One entry worth two: evicts b and c, the two least recently used. */
    size_t two_value = 2 * one - YARD_LRU_ENTRY_OVERHEAD - 1;
    assert_int_equal(yard_lru_set(c, "e", 1, v, two_value, NULL, 0, 0, 11), 0);
    assert_int_equal(s_get(c, "b", 12, NULL), YARD_LRU_MISS);
    assert_int_equal(s_get(c, "c", 12, NULL), YARD_LRU_MISS);
    assert_int_equal(s_get(c, "a", 12, NULL), YARD_LRU_HIT);
    assert_int_equal(s_get(c, "d", 12, NULL), YARD_LRU_HIT);
    assert_int_equal(s_get(c, "e", 12, NULL), YARD_LRU_HIT);
    assert_int_equal(s_stats(c).evictions, 2);
    assert_int_equal(s_stats(c).bytes, 4 * one);

    /*  An entry that can never fit is refused, and the key's old value
        goes too (no stale value is served after a failed set). */
    static char huge[8192];
    assert_int_equal(yard_lru_set(c, "a", 1, huge, sizeof huge, NULL, 0, 0, 13),
                     YARD_LRU_E_TOO_LARGE);
    assert_int_equal(s_get(c, "a", 13, NULL), YARD_LRU_MISS);
    assert_int_equal(s_get(c, "d", 13, NULL), YARD_LRU_HIT);
    /*  Tags are charged: a tagged entry of a 1-byte value needs more than
        the room of one untagged 100-byte value, so it evicts e (the
        least recently used left: d was read after e), not only a's
        freed room. */
    const char *tags[] = {"tag-one", "tag-two"};
    assert_true(s_charge(1, 1, 14, 2) > one);
    assert_int_equal(s_set_tags(c, "t", "x", tags, 2, 0, 14), 0);
    assert_int_equal(s_stats(c).evictions, 3);
    assert_int_equal(s_stats(c).bytes, one + s_charge(1, 1, 14, 2));
    assert_int_equal(s_get(c, "e", 15, NULL), YARD_LRU_MISS);
    assert_int_equal(s_get(c, "d", 15, NULL), YARD_LRU_HIT);
    yard_lru_destroy(&c);
}

/* ---- TTL and negative entries ------------------------------------------- */

static void test_ttl_with_injected_clock(void **state)
{
    (void)state;
    yard_lru_t *c = yard_lru_new(100, 1 << 20, SEED);
    assert_non_null(c);
    assert_int_equal(s_set(c, "k", "v", 100, 1000), 0);
    yard_lru_found_t f;
    assert_int_equal(s_get(c, "k", 1000, &f), YARD_LRU_HIT);
    assert_int_equal(f.ttl_ms, 100);
    assert_int_equal(s_get(c, "k", 1099, &f), YARD_LRU_HIT);
    assert_int_equal(f.ttl_ms, 1);
    assert_int_equal(s_get(c, "k", 1100, &f), YARD_LRU_MISS); /*  at expiry */
    yard_lru_stats_t st = s_stats(c);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);

    /*  A get does not refresh the TTL (only a set does). */
    assert_int_equal(s_set(c, "k", "v", 50, 2000), 0);
    assert_int_equal(s_get(c, "k", 2040, NULL), YARD_LRU_HIT);
    assert_int_equal(s_get(c, "k", 2050, NULL), YARD_LRU_MISS);
    assert_int_equal(s_set(c, "k", "v", 50, 3000), 0);
    assert_int_equal(s_set(c, "k", "v2", 50, 3040), 0); /*  re-set: new TTL */
    s_expect(c, "k", "v2", 3080);
    /*  del of an expired entry: not a deletion, an expiration. */
    uint64_t exp_before = s_stats(c).expirations;
    assert_int_equal(yard_lru_del(c, "k", 1, 3090), 0);
    assert_int_equal(s_stats(c).expirations, exp_before + 1);
    /*  ttl 0 never expires; huge TTLs are capped, not overflowed. */
    assert_int_equal(s_set(c, "forever", "v", 0, 0), 0);
    assert_int_equal(s_set(c, "long", "v", INT64_MAX, 10), 0);
    assert_int_equal(s_get(c, "long", 1000000, &f), YARD_LRU_HIT);
    assert_true(f.ttl_ms > 0 && f.ttl_ms <= YARD_LRU_MAX_TTL_MS);
    s_expect(c, "forever", "v", INT64_MAX / 4);
    yard_lru_destroy(&c);
}

static void test_expiry_is_incremental(void **state)
{
    (void)state;
    yard_lru_t *c = yard_lru_new(1000, 1 << 24, SEED);
    assert_non_null(c);
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        assert_int_equal(s_set(c, key, "v", 10 + i % 5, 0), 0);
    }
    assert_int_equal(s_set(c, "live", "v", 0, 0), 0);
    assert_int_equal(yard_lru_size(c), 101);
    /*  Everything but "live" has expired at 100; one call drops at most
        the budget, never the whole lot. */
    s_expect(c, "live", "v", 100);
    assert_int_equal(yard_lru_size(c), 101 - YARD_LRU_EXPIRE_BUDGET);
    assert_int_equal(s_stats(c).expirations, YARD_LRU_EXPIRE_BUDGET);
    s_expect(c, "live", "v", 100);
    assert_int_equal(yard_lru_size(c), 101 - 2 * YARD_LRU_EXPIRE_BUDGET);
    /*  Expired entries are never returned, dropped or not. */
    s_expect_miss(c, "k099", 100);
    /*  expire() bounded by max, then the rest. */
    size_t left = yard_lru_size(c) - 1;
    assert_int_equal(yard_lru_expire(c, 100, 5), 5);
    assert_int_equal(yard_lru_expire(c, 100, SIZE_MAX), left - 5);
    assert_int_equal(yard_lru_size(c), 1);
    assert_int_equal(yard_lru_expire(c, 100, SIZE_MAX), 0);
    assert_int_equal(s_stats(c).expirations, 100);
    assert_int_equal(s_stats(c).bytes, s_charge(4, 1, 0, 0));
    yard_lru_destroy(&c);
}

static void test_room_comes_from_expired_before_live(void **state)
{
    (void)state;
    /*  31 small entries fill the cache: "old" (no TTL, least recently
        used) and 30 that expire at 10. A big entry set at 20 needs the
        room of 20 small ones: the per-call budget drops 8 expired ones,
        making room must drop 12 more expired ones and evict nothing. */
    size_t small = s_charge(3, 1, 0, 0);
    yard_lru_t *c = yard_lru_new(1000, 31 * small, SEED);
    assert_non_null(c);
    assert_int_equal(s_set(c, "old", "v", 0, 0), 0);
    char key[8];
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof key, "e%02d", i);
        assert_int_equal(s_set(c, key, "v", 10, 1), 0);
    }
    assert_int_equal(s_stats(c).bytes, 31 * small);
    static char big[4096];
    size_t vlen = 20 * small - 3 - YARD_LRU_ENTRY_OVERHEAD;
    assert_int_equal(yard_lru_set(c, "big", 3, big, vlen, NULL, 0, 0, 20), 0);
    yard_lru_stats_t st = s_stats(c);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.expirations, 20);
    assert_int_equal(st.entries, 12); /*  old, big and 10 expired left */
    s_expect(c, "old", "v", 21);
    assert_int_equal(s_get(c, "big", 21, NULL), YARD_LRU_HIT);
    yard_lru_destroy(&c);
}

static void test_negative_entries(void **state)
{
    (void)state;
    yard_lru_t *c = yard_lru_new(10, 1 << 20, SEED);
    assert_non_null(c);
    assert_int_equal(yard_lru_set_negative(c, "n", 1, 30, 0), 0);
    yard_lru_found_t f;
    assert_int_equal(s_get(c, "n", 10, &f), YARD_LRU_NEGATIVE);
    assert_null(f.value);
    assert_int_equal(f.ttl_ms, 20);
    assert_int_equal(s_get(c, "n", 30, &f), YARD_LRU_MISS);
    yard_lru_stats_t st = s_stats(c);
    assert_int_equal(st.negative_hits, 1);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.sets, 1);
    /*  A value replaces a negative, and a negative a value. */
    assert_int_equal(yard_lru_set_negative(c, "n", 1, 30, 40), 0);
    assert_int_equal(s_set(c, "n", "now there", 0, 41), 0);
    s_expect(c, "n", "now there", 42);
    assert_int_equal(yard_lru_set_negative(c, "n", 1, 5, 43), 0);
    assert_int_equal(s_get(c, "n", 44, NULL), YARD_LRU_NEGATIVE);
    assert_int_equal(s_stats(c).bytes, s_charge(1, 0, 0, 0));
    /*  del removes a negative (it is live). */
    assert_int_equal(yard_lru_del(c, "n", 1, 45), 1);
    assert_int_equal(s_get(c, "n", 45, NULL), YARD_LRU_MISS);
    /*  Negatives take part in LRU eviction like values. */
    yard_lru_t *small = yard_lru_new(2, 1 << 20, SEED);
    assert_non_null(small);
    assert_int_equal(yard_lru_set_negative(small, "a", 1, 1000, 0), 0);
    assert_int_equal(s_set(small, "b", "v", 0, 1), 0);
    assert_int_equal(s_get(small, "a", 2, NULL), YARD_LRU_NEGATIVE);
    assert_int_equal(s_set(small, "c", "v", 0, 3), 0); /*  evicts b */
    assert_int_equal(s_get(small, "b", 4, NULL), YARD_LRU_MISS);
    assert_int_equal(s_get(small, "a", 4, NULL), YARD_LRU_NEGATIVE);
    yard_lru_destroy(&small);
    yard_lru_destroy(&c);
}

/* ---- Tags --------------------------------------------------------------- */

static void test_tag_index(void **state)
{
    (void)state;
    yard_lru_t *c = yard_lru_new(4, 1 << 20, SEED);
    assert_non_null(c);
    const char *ab[] = {"a", "b"};
    const char *b[] = {"b"};
    const char *cc[] = {"c"};
    assert_int_equal(s_set_tags(c, "k1", "v", ab, 2, 0, 0), 0);
    assert_int_equal(s_set_tags(c, "k2", "v", b, 1, 0, 1), 0);
    assert_int_equal(s_set_tags(c, "k3", "v", cc, 1, 0, 2), 0);
    assert_int_equal(s_set(c, "k4", "v", 0, 3), 0);
    assert_int_equal(s_stats(c).tags, 3);

    /*  Overwrite drops the old tags: k1 no longer carries a. */
    assert_int_equal(s_set_tags(c, "k1", "v2", cc, 1, 0, 4), 0);
    assert_int_equal(s_stats(c).tags, 2); /*  a had only k1 */
    assert_int_equal(yard_lru_invalidate_tag(c, "a", 1, 5), 0);
    s_expect(c, "k1", "v2", 5);

    /*  Delete unlinks: k2 gone, tag b gone with it. */
    assert_int_equal(yard_lru_del(c, "k2", 2, 6), 1);
    assert_int_equal(s_stats(c).tags, 1);
    assert_int_equal(yard_lru_invalidate_tag(c, "b", 1, 6), 0);

    /*  Eviction unlinks: fill so k3 (oldest) is evicted. */
    s_expect(c, "k1", "v2", 7);
    s_expect(c, "k4", "v", 7);
    assert_int_equal(s_set(c, "k5", "v", 0, 8), 0);
    assert_int_equal(s_set(c, "k6", "v", 0, 9), 0); /*  evicts k3 */
    s_expect_miss(c, "k3", 10);
    assert_int_equal(s_stats(c).tags, 1); /*  c still on k1 */
    assert_int_equal(yard_lru_invalidate_tag(c, "c", 1, 10), 1);
    s_expect_miss(c, "k1", 10);
    assert_int_equal(s_stats(c).tags, 0);
    s_expect(c, "k4", "v", 10);

    /*  A tag on many entries, one of them expired: the live ones count. */
    yard_lru_t *big = yard_lru_new(1000, 1 << 24, SEED);
    assert_non_null(big);
    const char *t[] = {"many", "other"};
    char key[16];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "m%d", i);
        assert_int_equal(
            s_set_tags(big, key, "v", t, i % 2 ? 2 : 1, i == 8 ? 5 : 0, 0), 0);
    }
    assert_int_equal(s_set(big, "untagged", "v", 0, 0), 0);
    assert_int_equal(yard_lru_invalidate_tag(big, "other", 5, 1), 100);
    assert_int_equal(yard_lru_invalidate_tag(big, "many", 4, 10), 99);
    assert_int_equal(s_stats(big).expirations, 1);
    assert_int_equal(s_stats(big).tags, 0);
    assert_int_equal(yard_lru_size(big), 1);
    assert_int_equal(yard_lru_invalidate_tag(big, "many", 4, 10), 0);
    assert_int_equal(yard_lru_invalidate_tag(big, "", 0, 10), 0);
    yard_lru_destroy(&big);
    yard_lru_destroy(&c);
}

/* ---- Prefix, glob, clear ------------------------------------------------ */

static void test_prefix_glob_clear(void **state)
{
    (void)state;
    yard_lru_t *c = yard_lru_new(100, 1 << 20, SEED);
    assert_non_null(c);
    const char *keys[] = {"user:1",  "user:2", "user:10", "item:1",
                          "item:22", "u",      "[x]",     "a*b"};
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(s_set(c, keys[i], "v", 0, 0), 0);
    assert_int_equal(yard_lru_set(c, "nul\0key", 7, "v", 1, NULL, 0, 0, 0), 0);

    assert_int_equal(yard_lru_invalidate_prefix(c, "user:1", 6, 1), 2);
    s_expect_miss(c, "user:1", 1);
    s_expect_miss(c, "user:10", 1);
    s_expect(c, "user:2", "v", 1);
    s_expect(c, "u", "v", 1); /*  shorter than the prefix: untouched */
    assert_int_equal(yard_lru_invalidate_prefix(c, "zzz", 3, 1), 0);

    assert_int_equal(yard_lru_invalidate_glob(c, "item:?", 2), 1);
    s_expect_miss(c, "item:1", 2);
    s_expect(c, "item:22", "v", 2);
    assert_int_equal(yard_lru_invalidate_glob(c, "[!i]*:[0-9]", 2), 1);
    s_expect_miss(c, "user:2", 2);
    /*  Escapes: a literal '[' and '*'. */
    assert_int_equal(yard_lru_invalidate_glob(c, "\\[x]", 2), 1);
    assert_int_equal(yard_lru_invalidate_glob(c, "a\\*b", 2), 1);
    s_expect(c, "u", "v", 2);
    /*  A key with a NUL never matches a glob, even "*". */
    assert_int_equal(yard_lru_invalidate_glob(c, "*", 3), 2); /*  u, item:22 */
    assert_int_equal(yard_lru_get(c, "nul\0key", 7, 3, NULL), YARD_LRU_HIT);
    /*  ... but a prefix does. */
    assert_int_equal(yard_lru_invalidate_prefix(c, "nul", 3, 3), 1);
    assert_int_equal(yard_lru_size(c), 0);

    /*  clear: live ones counted, expired ones are expirations. */
    const char *tg[] = {"t"};
    assert_int_equal(s_set_tags(c, "a", "v", tg, 1, 0, 10), 0);
    assert_int_equal(s_set(c, "b", "v", 5, 10), 0);
    assert_int_equal(yard_lru_set_negative(c, "n", 1, 100, 10), 0);
    assert_int_equal(yard_lru_clear(c, 20), 2);
    yard_lru_stats_t st = s_stats(c);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.tags, 0);
    assert_int_equal(st.expirations, 1);
    s_expect_miss(c, "a", 20);
    /*  Usable after clear. */
    assert_int_equal(s_set(c, "a", "again", 0, 21), 0);
    s_expect(c, "a", "again", 21);
    yard_lru_destroy(&c);
}

static void test_stats_counters(void **state)
{
    (void)state;
    yard_lru_t *c = yard_lru_new(2, 1 << 20, SEED);
    assert_non_null(c);
    assert_int_equal(s_set(c, "a", "1", 0, 0), 0);
    assert_int_equal(s_set(c, "b", "22", 10, 0), 0);
    assert_int_equal(yard_lru_set_negative(c, "n", 1, 100, 0),
                     0);     /*  evicts a */
    s_get(c, "a", 1, NULL);  /*  miss */
    s_get(c, "b", 1, NULL);  /*  hit */
    s_get(c, "n", 1, NULL);  /*  negative hit */
    s_get(c, "b", 11, NULL); /*  miss, expired */
    yard_lru_stats_t st = s_stats(c);
    assert_int_equal(st.sets, 3);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.negative_hits, 1);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, s_charge(1, 0, 0, 0));
    assert_int_equal(st.max_entries, 2);
    assert_int_equal(st.max_bytes, 1 << 20);
    yard_lru_destroy(&c);
}

/* ---- Random operations against a reference model ------------------------ */

#define R_KEYS 40
#define R_TAGS 6
#define R_MAX_ENTRIES 16
#define R_MAX_BYTES 5000

typedef struct {
    bool in;       /*  a live entry (the model purges expired at once) */
    bool negative; /*  a remembered miss */
    uint8_t value[300];
    size_t vlen;
    unsigned tags;   /*  bit i: carries tag i */
    int64_t expires; /*  0 = never */
    uint64_t used;   /*  recency stamp: bigger = more recent */
    size_t charged;
} r_entry_t;

typedef struct {
    r_entry_t e[R_KEYS];
    uint64_t clock; /*  recency counter */
    size_t entries, bytes;
    uint64_t hits, misses, neg, sets, evictions, expirations;
} r_model_t;

static const char *R_TAG_NAMES[R_TAGS] = {"red",  "green", "blue",
                                          "cyan", "pink",  "gray"};

static uint64_t s_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void r_key(int i, char *out)
{
    snprintf(out, 8, "k%02d", i);
}

static void r_drop(r_model_t *m, int i)
{
    m->e[i].in = false;
    m->entries--;
    m->bytes -= m->e[i].charged;
}

static void r_purge(r_model_t *m, int64_t now)
{
    for (int i = 0; i < R_KEYS; i++)
        if (m->e[i].in && m->e[i].expires && m->e[i].expires <= now) {
            r_drop(m, i);
            m->expirations++;
        }
}

static void r_store(r_model_t *m, int i, const uint8_t *v, size_t vlen,
                    bool negative, unsigned tags, int64_t ttl, int64_t now)
{
    if (m->e[i].in)
        r_drop(m, i);
    size_t tag_bytes = 0, ntags = 0;
    for (int t = 0; t < R_TAGS; t++)
        if (tags & (1u << t)) {
            tag_bytes += strlen(R_TAG_NAMES[t]);
            ntags++;
        }
    size_t charged = s_charge(3, vlen, tag_bytes, ntags);
    if (charged > R_MAX_BYTES)
        return;
    while (m->entries + 1 > R_MAX_ENTRIES || m->bytes + charged > R_MAX_BYTES) {
        int oldest = -1;
        for (int k = 0; k < R_KEYS; k++)
            if (m->e[k].in && (oldest < 0 || m->e[k].used < m->e[oldest].used))
                oldest = k;
        r_drop(m, oldest);
        m->evictions++;
    }
    r_entry_t *e = &m->e[i];
    e->in = true;
    e->negative = negative;
    if (vlen)
        memcpy(e->value, v, vlen);
    e->vlen = vlen;
    e->tags = tags;
    e->expires = ttl ? now + ttl : 0;
    e->used = ++m->clock;
    e->charged = charged;
    m->entries++;
    m->bytes += charged;
    m->sets++;
}

static void r_compare_stats(yard_lru_t *c, r_model_t *m, int64_t now)
{
    /*  The cache drops expired entries lazily: drop them all, then the
        two must agree exactly. */
    yard_lru_expire(c, now, SIZE_MAX);
    yard_lru_stats_t st = s_stats(c);
    assert_int_equal(st.entries, m->entries);
    assert_int_equal(st.bytes, m->bytes);
    assert_int_equal(st.hits, m->hits);
    assert_int_equal(st.misses, m->misses);
    assert_int_equal(st.negative_hits, m->neg);
    assert_int_equal(st.sets, m->sets);
    assert_int_equal(st.evictions, m->evictions);
    assert_int_equal(st.expirations, m->expirations);
    unsigned used_tags = 0;
    for (int i = 0; i < R_KEYS; i++)
        if (m->e[i].in)
            used_tags |= m->e[i].tags;
    assert_int_equal(st.tags, __builtin_popcount(used_tags));
}

static void s_random_run(uint64_t seed, int ops)
{
    uint64_t rng = seed;
    r_model_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    yard_lru_t *c = yard_lru_new(R_MAX_ENTRIES, R_MAX_BYTES, seed);
    assert_non_null(c);
    int64_t now = 1000;
    char key[8];
    uint8_t v[300];
    for (int op = 0; op < ops; op++) {
        int i = (int)(s_rng(&rng) % R_KEYS);
        r_key(i, key);
        unsigned kind = (unsigned)(s_rng(&rng) % 100);
        if (kind < 30) { /*  set */
            size_t vlen = (size_t)(s_rng(&rng) % 300);
            for (size_t b = 0; b < vlen; b++)
                v[b] = (uint8_t)s_rng(&rng);
            unsigned tags = (unsigned)(s_rng(&rng) % (1u << R_TAGS));
            if (s_rng(&rng) % 2)
                tags &= tags - 1; /*  fewer tags more often */
            int64_t ttl = s_rng(&rng) % 3 ? (int64_t)(s_rng(&rng) % 60) : 0;
            yard_lru_bytes_t tv[R_TAGS + 1];
            size_t n = 0;
            for (int t = 0; t < R_TAGS; t++)
                if (tags & (1u << t))
                    tv[n++] = (yard_lru_bytes_t){R_TAG_NAMES[t],
                                                 strlen(R_TAG_NAMES[t])};
            if (n && s_rng(&rng) % 4 == 0)
                tv[n++] = tv[0]; /*  a duplicate counts once */
            r_purge(m, now);
            r_store(m, i, v, vlen, false, tags, ttl, now);
            assert_int_equal(yard_lru_set(c, key, 3, v, vlen, tv, n, ttl, now),
                             0);
        } else if (kind < 38) { /*  set_negative */
            int64_t ttl = 1 + (int64_t)(s_rng(&rng) % 60);
            r_purge(m, now);
            r_store(m, i, NULL, 0, true, 0, ttl, now);
            assert_int_equal(yard_lru_set_negative(c, key, 3, ttl, now), 0);
        } else if (kind < 70) { /*  get */
            r_purge(m, now);
            yard_lru_found_t f;
            yard_lru_result_t got = yard_lru_get(c, key, 3, now, &f);
            r_entry_t *e = &m->e[i];
            if (!e->in) {
                m->misses++;
                assert_int_equal(got, YARD_LRU_MISS);
            } else {
                e->used = ++m->clock;
                int64_t ttl = e->expires ? e->expires - now : 0;
                assert_int_equal(f.ttl_ms, ttl);
                if (e->negative) {
                    m->neg++;
                    assert_int_equal(got, YARD_LRU_NEGATIVE);
                } else {
                    m->hits++;
                    assert_int_equal(got, YARD_LRU_HIT);
                    assert_int_equal(f.len, e->vlen);
                    if (e->vlen)
                        assert_memory_equal(f.value, e->value, e->vlen);
                    assert_int_equal(f.ntags, __builtin_popcount(e->tags));
                }
            }
        } else if (kind < 78) { /*  del */
            r_purge(m, now);
            int want = m->e[i].in;
            if (want)
                r_drop(m, i);
            assert_int_equal(yard_lru_del(c, key, 3, now), want);
        } else if (kind < 84) { /*  invalidate_tag */
            int t = (int)(s_rng(&rng) % R_TAGS);
            r_purge(m, now);
            size_t want = 0;
            for (int k = 0; k < R_KEYS; k++)
                if (m->e[k].in && (m->e[k].tags & (1u << t))) {
                    r_drop(m, k);
                    want++;
                }
            assert_int_equal(yard_lru_invalidate_tag(c, R_TAG_NAMES[t],
                                                     strlen(R_TAG_NAMES[t]),
                                                     now),
                             want);
        } else if (kind < 87) { /*  invalidate_prefix: "k1" or "k0" */
            char p[3] = {'k', (char)('0' + s_rng(&rng) % 4), 0};
            r_purge(m, now);
            size_t want = 0;
            for (int k = 0; k < R_KEYS; k++)
                if (m->e[k].in && k / 10 == p[1] - '0') {
                    r_drop(m, k);
                    want++;
                }
            assert_int_equal(yard_lru_invalidate_prefix(c, p, 2, now), want);
        } else if (kind < 90) { /*  invalidate_glob: "k?D" */
            int d = (int)(s_rng(&rng) % 10);
            char pat[8];
            snprintf(pat, sizeof pat, "k?%d", d);
            r_purge(m, now);
            size_t want = 0;
            for (int k = 0; k < R_KEYS; k++)
                if (m->e[k].in && k % 10 == d) {
                    r_drop(m, k);
                    want++;
                }
            assert_int_equal(yard_lru_invalidate_glob(c, pat, now), want);
        } else if (kind < 91) { /*  clear */
            r_purge(m, now);
            size_t want = m->entries;
            for (int k = 0; k < R_KEYS; k++)
                if (m->e[k].in)
                    r_drop(m, k);
            assert_int_equal(yard_lru_clear(c, now), want);
        } else { /*  time passes */
            now += (int64_t)(s_rng(&rng) % 12);
        }
        if (op % 101 == 0) {
            r_purge(m, now);
            r_compare_stats(c, m, now);
        }
        /*  The limits hold after every call. */
        assert_true(yard_lru_size(c) <= R_MAX_ENTRIES);
        assert_true(s_stats(c).bytes <= R_MAX_BYTES);
    }
    r_purge(m, now);
    r_compare_stats(c, m, now);
    /*  Every operation kind ran (the mix is not degenerate). */
    assert_true(m->evictions > 0);
    assert_true(m->expirations > 0);
    assert_true(m->hits > 0 && m->neg > 0 && m->misses > 0);
    yard_lru_destroy(&c);
    free(m);
}

static void test_random_against_reference(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 8; seed++)
        s_random_run(seed * 7919, 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_bad_limits),
        cmocka_unit_test(test_set_get_del_overwrite),
        cmocka_unit_test(test_eviction_order_by_entries),
        cmocka_unit_test(test_eviction_order_by_bytes),
        cmocka_unit_test(test_ttl_with_injected_clock),
        cmocka_unit_test(test_expiry_is_incremental),
        cmocka_unit_test(test_room_comes_from_expired_before_live),
        cmocka_unit_test(test_negative_entries),
        cmocka_unit_test(test_tag_index),
        cmocka_unit_test(test_prefix_glob_clear),
        cmocka_unit_test(test_stats_counters),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
