/*  test_config.c — yard_config: precedence of pick, strict number and
    boolean parsing, config files (good lines, comments, errors that name
    path:line, callback stop values) and the local-endpoint check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "yard_config.h"

static void test_pick(void **state)
{
    (void)state;
    setenv("YARD_TEST_PICK", "env", 1);
    assert_string_equal(
        yard_config_pick("flag", "YARD_TEST_PICK", "file", "def"), "flag");
    assert_string_equal(yard_config_pick(NULL, "YARD_TEST_PICK", "file", "def"),
                        "env");
    assert_string_equal(yard_config_pick("", "YARD_TEST_PICK", "file", "def"),
                        "env");
    unsetenv("YARD_TEST_PICK");
    assert_string_equal(yard_config_pick(NULL, "YARD_TEST_PICK", "file", "def"),
                        "file");
    setenv("YARD_TEST_PICK", "", 1); /*  empty env counts as unset */
    assert_string_equal(yard_config_pick(NULL, "YARD_TEST_PICK", "", "def"),
                        "def");
    unsetenv("YARD_TEST_PICK");
    assert_string_equal(yard_config_pick(NULL, NULL, NULL, "def"), "def");
    assert_null(yard_config_pick(NULL, NULL, NULL, NULL));
}

static void test_parse_u32(void **state)
{
    (void)state;
    uint32_t v = 77;
    assert_int_equal(yard_parse_u32("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(yard_parse_u32("4294967295", 0, UINT32_MAX, &v), 0);
    assert_true(v == UINT32_MAX);
    assert_int_equal(yard_parse_u32("007", 0, 10, &v), 0);
    assert_int_equal(v, 7);
    v = 77;
    const char *bad[] = {"",
                         "12x",
                         "-1",
                         " 1",
                         "1 ",
                         "+1",
                         "0x10",
                         "1e3",
                         "1.0",
                         "4294967296",
                         "99999999999999999999999",
                         "\t5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(yard_parse_u32(bad[i], 0, UINT32_MAX, &v), -1);
        assert_int_equal(v, 77); /*  untouched */
    }
    assert_int_equal(yard_parse_u32(NULL, 0, 10, &v), -1);
    assert_int_equal(yard_parse_u32("11", 0, 10, &v), -1); /*  range */
    assert_int_equal(yard_parse_u32("4", 5, 10, &v), -1);
    assert_int_equal(yard_parse_u32("5", 5, 10, &v), 0);
    assert_int_equal(yard_parse_u32("10", 5, 10, &v), 0);
}

static void test_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 77;
    assert_int_equal(yard_parse_u64("18446744073709551615", 0, UINT64_MAX, &v),
                     0);
    assert_true(v == UINT64_MAX);
    v = 77;
    assert_int_equal(yard_parse_u64("18446744073709551616", 0, UINT64_MAX, &v),
                     -1);
    assert_int_equal(yard_parse_u64("18446744073709551620", 0, UINT64_MAX, &v),
                     -1);
    assert_int_equal(yard_parse_u64("-1", 0, UINT64_MAX, &v), -1);
    assert_int_equal(yard_parse_u64("", 0, UINT64_MAX, &v), -1);
    assert_int_equal(v, 77);
    assert_int_equal(yard_parse_u64("1000", 1, 1000, &v), 0);
    assert_int_equal(v, 1000);
}

static void test_parse_double(void **state)
{
    (void)state;
    double v = 9;
    assert_int_equal(yard_parse_double("0.5", 0, 1, &v), 0);
    assert_true(v == 0.5);
    assert_int_equal(yard_parse_double("-2.5e1", -100, 100, &v), 0);
    assert_true(v == -25.0);
    assert_int_equal(yard_parse_double(".25", 0, 1, &v), 0);
    assert_true(v == 0.25);
    assert_int_equal(yard_parse_double("1", 0, 1, &v), 0);
    v = 9;
    const char *bad[] = {"",      " 1",    "1 ",  "1x", "nan", "inf",
                         "0x1p3", "1e999", "--1", "1e", "."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(yard_parse_double(bad[i], -1e300, 1e300, &v), -1);
        assert_true(v == 9);
    }
    assert_int_equal(yard_parse_double("1.5", 0, 1, &v), -1);
    assert_int_equal(yard_parse_double(NULL, 0, 1, &v), -1);
}

static void test_parse_bool(void **state)
{
    (void)state;
    const char *yes[] = {"1", "true", "TRUE", "Yes", "on", "ON"};
    const char *no[] = {"0", "false", "False", "NO", "off", "Off"};
    bool b;
    for (size_t i = 0; i < 6; i++) {
        b = false;
        assert_int_equal(yard_parse_bool(yes[i], &b), 0);
        assert_true(b);
        assert_int_equal(yard_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    b = true;
    const char *bad[] = {"", "2", "y", "n", "truee", " true", "enabled"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(yard_parse_bool(bad[i], &b), -1);
    assert_int_equal(yard_parse_bool(NULL, &b), -1);
    assert_true(b);
}

/*  Writes text to a fresh temp file; path receives its name. */
static void s_temp_file(char *path, const char *text)
{
    strcpy(path, "/tmp/yard-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

typedef struct {
    char seen[16][2][64]; /*  keys and values in order */
    int count;
    int stop_at; /*  return 7 on this call (1-based), 0 = never */
} collect_t;

static int s_collect(const char *key, const char *value, void *arg)
{
    collect_t *c = arg;
    snprintf(c->seen[c->count][0], 64, "%s", key);
    snprintf(c->seen[c->count][1], 64, "%s", value);
    c->count++;
    return c->count == c->stop_at ? 7 : 0;
}

static void test_file_good(void **state)
{
    (void)state;
    char path[64];
    s_temp_file(path, "# Yard broker settings\n"
                      "\n"
                      "endpoint = tcp://127.0.0.1:5555\n"
                      "  heartbeat_ms=2500  \n"
                      "\t# indented comment\n"
                      "empty =\n"
                      "name = a = b\r\n"
                      "log.level = debug"); /*  no final newline */
    collect_t c = {.count = 0};
    char err[256] = "";
    assert_int_equal(
        yard_config_file_each(path, s_collect, &c, err, sizeof(err)), 0);
    assert_int_equal(c.count, 5);
    assert_string_equal(c.seen[0][0], "endpoint");
    assert_string_equal(c.seen[0][1], "tcp://127.0.0.1:5555");
    assert_string_equal(c.seen[1][0], "heartbeat_ms");
    assert_string_equal(c.seen[1][1], "2500");
    assert_string_equal(c.seen[2][0], "empty");
    assert_string_equal(c.seen[2][1], "");
    assert_string_equal(c.seen[3][0], "name");
    assert_string_equal(c.seen[3][1], "a = b"); /*  split at first = */
    assert_string_equal(c.seen[4][0], "log.level");
    assert_string_equal(c.seen[4][1], "debug");

    /*  The callback's non-zero value stops the walk and is returned. */
    collect_t stop = {.stop_at = 2};
    assert_int_equal(
        yard_config_file_each(path, s_collect, &stop, err, sizeof(err)), 7);
    assert_int_equal(stop.count, 2);
    unlink(path);
}

static void s_expect_error(const char *text, int line, const char *reason)
{
    char path[64];
    s_temp_file(path, text);
    collect_t c = {.count = 0};
    char err[256] = "";
    assert_int_equal(
        yard_config_file_each(path, s_collect, &c, err, sizeof(err)), -1);
    char want[256];
    snprintf(want, sizeof(want), "%s:%d: ", path, line);
    assert_true(strncmp(err, want, strlen(want)) == 0);
    assert_non_null(strstr(err, reason));
    /*  No errbuf: still -1, no crash. */
    assert_int_equal(yard_config_file_each(path, s_collect, &c, NULL, 0), -1);
    unlink(path);
}

static void test_file_errors(void **state)
{
    (void)state;
    s_expect_error("a = 1\n# c\nno equals sign here\n", 3, "key = value");
    s_expect_error("= 1\n", 1, "missing key");
    s_expect_error("a = 1\nbad key = 2\n", 2, "bad key");
    s_expect_error("a\0b = 1\n", 1, "key = value"); /*  NUL cuts text */

    char err[256] = "";
    collect_t c = {.count = 0};
    assert_int_equal(yard_config_file_each("/nonexistent/yard.conf", s_collect,
                                           &c, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "/nonexistent/yard.conf: "));
    /*  A tiny errbuf truncates, never overruns. */
    char tiny[8];
    assert_int_equal(yard_config_file_each("/nonexistent/yard.conf", s_collect,
                                           &c, tiny, sizeof(tiny)),
                     -1);
    assert_int_equal(strlen(tiny), 7);
}

static void test_file_nul_byte(void **state)
{
    (void)state;
    char path[64];
    strcpy(path, "/tmp/yard-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "a = 1\nb = x\0y\n", 14), 14);
    close(fd);
    char err[256] = "";
    collect_t c = {.count = 0};
    assert_int_equal(
        yard_config_file_each(path, s_collect, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":2: NUL byte"));
    unlink(path);
}

static void test_endpoint_is_local(void **state)
{
    (void)state;
    const char *local[] = {"tcp://127.0.0.1:5555",     "tcp://127.1.2.3:1",
                           "tcp://localhost:80",       "tcp://LOCALHOST:80",
                           "tcp://[::1]:5555",         "tcp://127.0.0.1:*",
                           "tcp://127.0.0.1:0",        "ipc:///tmp/yard.sock",
                           "ipc://@abstract",          "inproc://broker",
                           "tcp://[0:0:0:0:0:0:0:1]:9"};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
        assert_true(yard_endpoint_is_local(local[i]));
    const char *remote[] = {"tcp://*:5555",
                            "tcp://0.0.0.0:5555",
                            "tcp://10.0.0.1:5555",
                            "tcp://[::]:5555",
                            "tcp://[::2]:5555",
                            "tcp://128.0.0.1:5555",
                            "tcp://127.0.0.1",
                            "tcp://127.0.0.1:",
                            "tcp://127.0.0.1:65536",
                            "tcp://127.0.0.1:55x",
                            "tcp://127.1:5555",
                            "tcp://127.0.0.1.evil.com:5555",
                            "tcp://localhost.evil.com:5555",
                            "tcp://eth0:5555",
                            "tcp://::1:5555",
                            "tcp://[::1:5555",
                            "tcp://[::1]5555",
                            "tcp://10.0.0.1:0;127.0.0.1:5555",
                            "tcp://:5555",
                            "udp://127.0.0.1:5555",
                            "pgm://127.0.0.1;239.0.0.1:5555",
                            "TCP://127.0.0.1:5555",
                            "127.0.0.1:5555",
                            "",
                            NULL};
    for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
        if (yard_endpoint_is_local(remote[i]))
            fail_msg("%s should not be local", remote[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick),
        cmocka_unit_test(test_parse_u32),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_parse_double),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_file_good),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_file_nul_byte),
        cmocka_unit_test(test_endpoint_is_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
