/*  yard_log.c — process-wide logging to stderr.

    Each record is formatted into a stack buffer and written with a single
    write(2), so lines from threads, and from processes sharing one pipe,
    never interleave (a write of up to PIPE_BUF bytes to a pipe is atomic;
    records are capped below that). Line shape:
        2026-11-23T09:00:00.123Z yard-broker[1234] INFO message
    Control characters in the message are replaced, so text that came
    from the network cannot forge extra log lines. */
#include "yard_log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define S_LINE_MAX 4096  /*  one record, newline included (<= PIPE_BUF) */
#define S_PROGRAM_MAX 64 /*  program name as shown                      */

/*  Set once by yard_log_init at startup; the level is atomic so another
    thread may read it (or a signal handler may change it) safely. */
static char s_program[S_PROGRAM_MAX] = "yard";
static atomic_int s_level = YARD_LOG_INFO;

static const char *const s_names[] = {"error", "warn", "info", "debug"};
static const char *const s_labels[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void yard_log_init(const char *program, yard_log_level_t level)
{
    if (program && *program) {
        /*  Show the base name, as the program may be run by full path. */
        const char *slash = strrchr(program, '/');
        if (slash && slash[1])
            program = slash + 1;
        snprintf(s_program, sizeof(s_program), "%s", program);
    }
    if ((int)level < YARD_LOG_ERROR)
        level = YARD_LOG_ERROR;
    if ((int)level > YARD_LOG_DEBUG)
        level = YARD_LOG_DEBUG;
    atomic_store(&s_level, (int)level);
}

int yard_log_level_parse(const char *text, yard_log_level_t *level)
{
    if (!text || !level)
        return -1;
    for (int i = 0; i <= YARD_LOG_DEBUG; i++)
        if (strcasecmp(text, s_names[i]) == 0) {
            *level = (yard_log_level_t)i;
            return 0;
        }
    return -1;
}

int yard_log_enabled(yard_log_level_t level)
{
    return (int)level >= YARD_LOG_ERROR &&
           (int)level <= atomic_load_explicit(&s_level, memory_order_relaxed);
}

/*  Writes all of buf to stderr, retrying short writes and EINTR. */
static void s_write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /*  nowhere to report a failure to log */
        }
        buf += n;
        len -= (size_t)n;
    }
}

void yard_log(yard_log_level_t level, const char *fmt, ...)
{
    if (!yard_log_enabled(level) || !fmt)
        return;
    int saved_errno = errno; /*  callers may log then inspect errno */

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);

    char line[S_LINE_MAX];
    size_t max = sizeof(line) - 1; /*  room kept for the newline */
    size_t len = strftime(line, max, "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(line + len, max - len, ".%03dZ %s[%ld] %s ",
                     (int)(ts.tv_nsec / 1000000), s_program, (long)getpid(),
                     s_labels[level]);
    if (n > 0)
        len += (size_t)n < max - len ? (size_t)n : max - len - 1;

    size_t start = len;
    va_list args;
    va_start(args, fmt);
    n = vsnprintf(line + len, max - len, fmt, args);
    va_end(args);
    if (n > 0) {
        if ((size_t)n >= max - len) {
            /*  Truncated: say so rather than cut silently. */
            len = max - 1;
            memcpy(line + len - 3, "...", 3);
        } else {
            len += (size_t)n;
        }
    }
    for (size_t i = start; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == '\n' || c == '\r')
            line[i] = ' ';
        else if ((c < 0x20 && c != '\t') || c == 0x7f)
            line[i] = '?';
    }
    line[len++] = '\n';
    s_write_all(line, len);
    errno = saved_errno;
}
