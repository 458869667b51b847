/*  test_hash.c — yard_hash: matches XXH3 with seed, seed changes the
    result, pair hashing is length-prefixed and the short (stack) and long
    (streaming) paths compute the same function. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "yard_hash.h"

static void test_hash64(void **state)
{
    (void)state;
    const char *text = "yard";
    assert_true(yard_hash64(text, 4, 0) == XXH3_64bits_withSeed(text, 4, 0));
    assert_true(yard_hash64(text, 4, 9) == XXH3_64bits_withSeed(text, 4, 9));
    assert_true(yard_hash64(text, 4, 1) != yard_hash64(text, 4, 2));
    assert_true(yard_hash64(NULL, 0, 1) == XXH3_64bits_withSeed("", 0, 1));
}

/*  The definition: XXH3 of (alen as 8 LE bytes) || a || b. */
static uint64_t s_pair_ref(const void *a, size_t alen, const void *b,
                           size_t blen, uint64_t seed)
{
    unsigned char *buf = malloc(8 + alen + blen);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)alen >> (8 * i));
    memcpy(buf + 8, a, alen);
    memcpy(buf + 8 + alen, b, blen);
    uint64_t h = XXH3_64bits_withSeed(buf, 8 + alen + blen, seed);
    free(buf);
    return h;
}

static void test_pair(void **state)
{
    (void)state;
    assert_true(yard_hash64_pair("ab", 2, "c", 1, 5) !=
                yard_hash64_pair("a", 1, "bc", 2, 5));
    assert_true(yard_hash64_pair("", 0, "abc", 3, 5) !=
                yard_hash64_pair("abc", 3, "", 0, 5));
    assert_true(yard_hash64_pair(NULL, 0, NULL, 0, 5) ==
                s_pair_ref("", 0, "", 0, 5));
    assert_true(yard_hash64_pair("ab", 2, "c", 1, 5) !=
                yard_hash64_pair("ab", 2, "c", 1, 6));
    /*  Every split of lengths across the stack/stream boundary. */
    enum { MAX = 700 };
    unsigned char *data = malloc(MAX);
    for (int i = 0; i < MAX; i++)
        data[i] = (unsigned char)(i * 131 + 7);
    const size_t lens[] = {0, 1, 7, 100, 200, 247, 248, 249, 256, 300, 350};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            size_t alen = lens[i], blen = lens[j];
            for (uint64_t seed = 0; seed < 3; seed++)
                assert_true(
                    yard_hash64_pair(data, alen, data + 350, blen, seed) ==
                    s_pair_ref(data, alen, data + 350, blen, seed));
        }
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash64),
        cmocka_unit_test(test_pair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
