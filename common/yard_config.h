/*  yard_config.h — settings and strict parsing of flags and environment.
    Precedence everywhere: flag > environment > config file > default. */
#ifndef YARD_CONFIG_H
#define YARD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*  Returns the first non-NULL, non-empty of: flag, getenv(env) (env may be
    NULL), file_value, def. */
const char *yard_config_pick(const char *flag, const char *env,
                             const char *file_value, const char *def);

/*  Strict number parsing: the whole string must be a decimal number in
    [min, max]. Returns 0 and sets *out, or -1 (out untouched). */
int yard_parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out);
int yard_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);
int yard_parse_double(const char *text, double min, double max, double *out);

/*  Parses 1/0, true/false, yes/no, on/off (any case). 0 or -1. */
int yard_parse_bool(const char *text, bool *out);

/*  Reads "key = value" lines from a file (# comments, blank lines
    ignored, surrounding spaces trimmed) and calls fn for each. fn returns
    0 to go on or non-zero to stop with that value. Returns 0, the first
    non-zero from fn, or -1 if the file cannot be read or a line is not
    key = value (errbuf gets "path:line: reason"). */
typedef int(yard_config_line_fn)(const char *key, const char *value, void *arg);
int yard_config_file_each(const char *path, yard_config_line_fn *fn, void *arg,
                          char *errbuf, size_t errlen);

/*  True if an endpoint ("tcp://127.0.0.1:5555", "ipc://...",
    "inproc://...") names a loopback or local address. */
bool yard_endpoint_is_local(const char *endpoint);

#endif
