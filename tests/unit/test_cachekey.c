/*  test_cachekey.c — the response-cache policy parser and the cache key
    (PROTOCOL.md 10b). Expected keys were computed independently, with
    python3-msgpack and hashlib, from the canonical array [service, P, H]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "yard_proto.h"

static size_t s_unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static yard_bytes_t s_bytes(const uint8_t *p, size_t n)
{
    yard_bytes_t b = {p, (uint32_t)n};
    return b;
}

static void s_key_hex(const char *service, yard_bytes_t payload,
                      yard_bytes_t headers, const yard_cache_policy_t *pol,
                      char *hex)
{
    uint8_t key[YARD_CACHE_KEY_BYTES];
    yard_bytes_t svc = yard_bytes_str(service);
    assert_int_equal(yard_cache_key(&svc, &payload, &headers, pol, key), 0);
    yard_cache_key_hex(key, hex);
}

static void test_policy_parse(void **state)
{
    (void)state;
    uint8_t raw[256];
    /*  {"ttl_ms":60000,"tags":["a","b"],"key":["prompt","model"],
         "headers":["tenant"],"zz":[1]} */
    size_t n = s_unhex("85a674746c5f6d73cdea60a47461677392a161a162a36b6579"
                       "92a670726f6d7074a56d6f64656ca7686561646572739"
                       "1a674656e616e74a27a7a9101",
                       raw, sizeof raw);
    yard_bytes_t b = s_bytes(raw, n);
    yard_cache_policy_t pol;
    assert_int_equal(yard_cache_policy_parse(&b, &pol), 0);
    assert_int_equal(pol.ttl_ms, 60000);
    assert_int_equal(pol.ntags, 2);
    assert_memory_equal(pol.tags[1].ptr, "b", 1);
    assert_true(pol.has_key);
    assert_int_equal(pol.nkey, 2);
    assert_memory_equal(pol.key[0].ptr, "prompt", 6);
    assert_int_equal(pol.nheaders, 1);
    assert_int_equal(pol.nexclude, 0);

    yard_bytes_t none = {NULL, 0};
    assert_int_equal(yard_cache_policy_parse(&none, &pol), YARD_E_NOTFOUND);

    struct {
        const char *hex;
        int err;
    } bad[] = {
        {"91a161", YARD_E_TYPE},               /*  not a map            */
        {"81a674746c5f6d73a131", YARD_E_TYPE}, /*  ttl_ms "1"           */
        {"81a674746c5f6d73ff", YARD_E_TYPE},   /*  ttl_ms -1            */
        {"81a474616773a161", YARD_E_TYPE},     /*  tags "a"             */
        {"81a47461677391a0", YARD_E_RANGE},    /*  tags [""]            */
        {"81a47461677391c3", YARD_E_TYPE},     /*  tags [true]          */
        /*  key and exclude together */
        {"82a36b657991a161a76578636c75646591a162", YARD_E_RANGE},
        /*  key twice */
        {"82a36b657991a161a36b657991a162", YARD_E_MALFORMED},
        {"81a674746c5f6d73ce05265c01", YARD_E_RANGE}, /*  ttl over 24 h  */
        {"c1", YARD_E_MALFORMED},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = s_unhex(bad[i].hex, raw, sizeof raw);
        b = s_bytes(raw, n);
        if (yard_cache_policy_parse(&b, &pol) != bad[i].err)
            fail_msg("policy %s: expected %d, got %d", bad[i].hex, bad[i].err,
                     yard_cache_policy_parse(&b, &pol));
    }
    /*  16 tags are fine, 17 too many. */
    for (int count = 16; count <= 17; count++) {
        uint8_t many[64];
        size_t m = 0;
        many[m++] = 0x81;
        many[m++] = 0xa4;
        memcpy(many + m, "tags", 4);
        m += 4;
        many[m++] = 0xdc; /*  array 16 */
        many[m++] = 0;
        many[m++] = (uint8_t)count;
        for (int i = 0; i < count; i++) {
            many[m++] = 0xa1;
            many[m++] = (uint8_t)('a' + i);
        }
        b = s_bytes(many, m);
        assert_int_equal(yard_cache_policy_parse(&b, &pol),
                         count == 16 ? 0 : YARD_E_TOO_LARGE);
    }
}

static void test_key_whole_payload(void **state)
{
    (void)state;
    yard_cache_policy_t pol;
    memset(&pol, 0, sizeof pol);
    char hex[2 * YARD_CACHE_KEY_BYTES + 1];
    yard_bytes_t none = {NULL, 0};
    s_key_hex("llm", yard_bytes_str("hello"), none, &pol, hex);
    assert_string_equal(
        hex,
        "72c374461c6df1b971d3ae40ce2a48b5329c26996cd4b82313715f44718bbc59");
    s_key_hex("llm", none, none, &pol, hex);
    assert_string_equal(
        hex,
        "eaea6a3f82400525f0489f1100793e4524fd70584b78e9583d2faa79d8845aa8");
    /*  A different service or payload is a different key. */
    char other[2 * YARD_CACHE_KEY_BYTES + 1];
    s_key_hex("llm2", yard_bytes_str("hello"), none, &pol, other);
    assert_string_not_equal(hex, other);
}

static void test_key_fields_and_headers(void **state)
{
    (void)state;
    uint8_t p1[128], p2[128], hd[64];
    /*  {"prompt":"hi","model":"m1","request_id":"r1"} and the same with
        another request_id and the fields in another order. */
    size_t n1 = s_unhex("83a670726f6d7074a26869a56d6f64656ca26d31aa72657175"
                        "6573745f6964a27231",
                        p1, sizeof p1);
    size_t n2 = s_unhex("83aa726571756573745f6964a27232a56d6f64656ca26d31a6"
                        "70726f6d7074a26869",
                        p2, sizeof p2);
    size_t nh =
        s_unhex("82a674656e616e74a461636d65a57472616365a178", hd, sizeof hd);
    yard_bytes_t none = {NULL, 0};
    yard_cache_policy_t pol;
    memset(&pol, 0, sizeof pol);
    pol.has_key = true;
    pol.key[0] = yard_bytes_str("prompt");
    pol.key[1] = yard_bytes_str("model");
    pol.nkey = 2;
    char a[65], b[65];
    s_key_hex("llm", s_bytes(p1, n1), none, &pol, a);
    assert_string_equal(
        a, "e9b7fa9439443ba1d5a438aa297727e6649221244f6419049a219f743553a92b");
    s_key_hex("llm", s_bytes(p2, n2), none, &pol, b);
    assert_string_equal(a, b); /*  order and request_id do not matter */

    memset(&pol, 0, sizeof pol);
    pol.exclude[0] = yard_bytes_str("request_id");
    pol.nexclude = 1;
    s_key_hex("llm", s_bytes(p2, n2), none, &pol, b);
    assert_string_equal(a, b); /*  the same fields, chosen by exclusion */

    pol.headers[0] = yard_bytes_str("tenant");
    pol.nheaders = 1;
    s_key_hex("llm", s_bytes(p1, n1), s_bytes(hd, nh), &pol, b);
    assert_string_equal(
        b, "9fcfca3d5f849fc7b528316b6174a7fe0df869eb648ef1a3f574c74b3c970c47");

    /*  Fields of a payload that is not a map: refused. */
    uint8_t key[YARD_CACHE_KEY_BYTES];
    yard_bytes_t svc = yard_bytes_str("llm");
    yard_bytes_t text = yard_bytes_str("plain text");
    assert_int_equal(yard_cache_key(&svc, &text, &none, &pol, key),
                     YARD_E_TYPE);
    assert_int_equal(yard_cache_key(&svc, &text, &none, NULL, key), YARD_E_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_parse),
        cmocka_unit_test(test_key_whole_payload),
        cmocka_unit_test(test_key_fields_and_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
