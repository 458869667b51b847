/*  test_log.c — yard_log: the line format, level filtering and parsing,
    one line per record even with newlines in the message, truncation of
    huge messages, errno preserved, and no interleaving between threads.
    stderr is redirected to a temp file for the checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "yard_log.h"

#define LINE_RE                                                                \
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "      \
    "yard-test\\[[0-9]+\\] (ERROR|WARN|INFO|DEBUG) "

static char s_path[64];
static int s_saved_stderr = -1;

/*  Sends stderr to a fresh temp file. */
static void s_capture(void)
{
    strcpy(s_path, "/tmp/yard-test-log-XXXXXX");
    int fd = mkstemp(s_path);
    assert_true(fd >= 0);
    s_saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

/*  Restores stderr and returns what was written (caller frees). */
static char *s_release(void)
{
    dup2(s_saved_stderr, STDERR_FILENO);
    close(s_saved_stderr);
    FILE *f = fopen(s_path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc(1, (size_t)len + 1);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    unlink(s_path);
    return text;
}

static size_t s_count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/*  Checks each line of text against LINE_RE followed by `suffix` (if
    not NULL). Returns the number of lines. */
static size_t s_check_lines(char *text, const char *suffix)
{
    regex_t re;
    assert_int_equal(regcomp(&re, LINE_RE, REG_EXTENDED | REG_NOSUB), 0);
    size_t n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (regexec(&re, line, 0, NULL, 0) != 0)
            fail_msg("bad log line: %s", line);
        if (suffix) {
            size_t ll = strlen(line), sl = strlen(suffix);
            assert_true(ll >= sl);
            assert_string_equal(line + ll - sl, suffix);
        }
        n++;
    }
    regfree(&re);
    return n;
}

static void test_level_parse(void **state)
{
    (void)state;
    yard_log_level_t level = YARD_LOG_INFO;
    assert_int_equal(yard_log_level_parse("error", &level), 0);
    assert_int_equal(level, YARD_LOG_ERROR);
    assert_int_equal(yard_log_level_parse("warn", &level), 0);
    assert_int_equal(level, YARD_LOG_WARN);
    assert_int_equal(yard_log_level_parse("DEBUG", &level), 0);
    assert_int_equal(level, YARD_LOG_DEBUG);
    assert_int_equal(yard_log_level_parse("info", &level), 0);
    assert_int_equal(level, YARD_LOG_INFO);
    assert_int_equal(yard_log_level_parse("warning", &level), -1);
    assert_int_equal(yard_log_level_parse("", &level), -1);
    assert_int_equal(yard_log_level_parse(NULL, &level), -1);
    assert_int_equal(level, YARD_LOG_INFO);
}

static void test_format_and_filter(void **state)
{
    (void)state;
    yard_log_init("/usr/local/bin/yard-test", YARD_LOG_WARN);
    assert_true(yard_log_enabled(YARD_LOG_ERROR));
    assert_true(yard_log_enabled(YARD_LOG_WARN));
    assert_false(yard_log_enabled(YARD_LOG_INFO));
    assert_false(yard_log_enabled(YARD_LOG_DEBUG));
    s_capture();
    yard_error("disk %s", "full");
    yard_warn("slow worker %d", 3);
    yard_info("not shown");
    yard_debug("not shown");
    errno = EAGAIN;
    yard_warn("keeps errno");
    int after = errno;
    char *text = s_release();
    assert_int_equal(after, EAGAIN);
    assert_int_equal(s_count_lines(text), 3);
    char pid[32];
    snprintf(pid, sizeof(pid), "yard-test[%ld] ", (long)getpid());
    assert_non_null(strstr(text, pid));
    assert_non_null(strstr(text, " ERROR disk full\n"));
    assert_non_null(strstr(text, " WARN slow worker 3\n"));
    assert_null(strstr(text, "not shown"));
    assert_int_equal(s_check_lines(text, NULL), 3);
    free(text);

    yard_log_init("yard-test", YARD_LOG_DEBUG);
    assert_true(yard_log_enabled(YARD_LOG_DEBUG));
    s_capture();
    yard_debug("now %s", "shown");
    text = s_release();
    assert_int_equal(s_check_lines(text, " DEBUG now shown"), 1);
    free(text);
}

static void test_one_line_per_record(void **state)
{
    (void)state;
    yard_log_init("yard-test", YARD_LOG_INFO);
    s_capture();
    yard_info("two\nlines\r and a \x1b[31m escape");
    char *big = malloc(10000);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    yard_info("%s", big);
    free(big);
    char *text = s_release();
    assert_int_equal(s_count_lines(text), 2);
    assert_non_null(strstr(text, "two lines  and a ?[31m escape\n"));
    char *second = strchr(text, '\n') + 1;
    size_t len = strlen(second);
    assert_true(len <= 4096 && len > 4000);
    assert_memory_equal(second + len - 4, "...\n", 4);
    assert_int_equal(s_check_lines(text, NULL), 2);
    free(text);
}

enum { THREADS = 8, PER_THREAD = 2000 };

static void *s_spam(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++)
        yard_info("thread %d record %d %s", id, i,
                  "padding-padding-padding-padding-padding-padding-end");
    return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
    (void)state;
    yard_log_init("yard-test", YARD_LOG_INFO);
    s_capture();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, s_spam, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *text = s_release();
    assert_int_equal(s_count_lines(text), THREADS * PER_THREAD);
    assert_int_equal(s_check_lines(text, "padding-padding-end"),
                     THREADS * PER_THREAD);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_format_and_filter),
        cmocka_unit_test(test_one_line_per_record),
        cmocka_unit_test(test_threads_do_not_interleave),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
