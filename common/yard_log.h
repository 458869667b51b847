/*  yard_log.h — process-wide logging to stderr: one line per record with
    a UTC timestamp, the program name, pid and level. The level comes from
    --log-level / YARD_LOG_LEVEL (error|warn|info|debug), default info. */
#ifndef YARD_LOG_H
#define YARD_LOG_H

typedef enum {
    YARD_LOG_ERROR = 0,
    YARD_LOG_WARN = 1,
    YARD_LOG_INFO = 2,
    YARD_LOG_DEBUG = 3,
} yard_log_level_t;

/*  Sets the program name shown on each line and the minimum level. */
void yard_log_init(const char *program, yard_log_level_t level);

/*  Parses "error", "warn", "info", "debug"; returns 0 or -1. */
int yard_log_level_parse(const char *text, yard_log_level_t *level);

/*  True when records of this level are written (skip costly formatting). */
int yard_log_enabled(yard_log_level_t level);

/*  Writes one record if level is enabled. */
void yard_log(yard_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define yard_error(...) yard_log(YARD_LOG_ERROR, __VA_ARGS__)
#define yard_warn(...) yard_log(YARD_LOG_WARN, __VA_ARGS__)
#define yard_info(...) yard_log(YARD_LOG_INFO, __VA_ARGS__)
#define yard_debug(...) yard_log(YARD_LOG_DEBUG, __VA_ARGS__)

#endif
