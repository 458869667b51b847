/*  yard_config.c — settings: precedence (flag > environment > file >
    default), strict number and boolean parsing, "key = value" files and
    the "is this endpoint local" check that guards unauthenticated binds.

    Everything here reads input from outside (flags, environment, files),
    so nothing asserts: bad text is a -1 the caller turns into a message. */
#include "yard_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *yard_config_pick(const char *flag, const char *env,
                             const char *file_value, const char *def)
{
    if (flag && *flag)
        return flag;
    const char *value = env ? getenv(env) : NULL;
    if (value && *value)
        return value;
    if (file_value && *file_value)
        return file_value;
    return def;
}

/*  Digits only, no sign, no spaces, at least one digit, no overflow. */
static int s_parse_decimal(const char *text, uint64_t *out)
{
    if (!text || !*text)
        return -1;
    uint64_t value = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned digit = (unsigned)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return -1;
        value = value * 10 + digit;
    }
    *out = value;
    return 0;
}

int yard_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t value;
    if (!out || s_parse_decimal(text, &value) != 0 || value < min ||
        value > max)
        return -1;
    *out = value;
    return 0;
}

int yard_parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t value;
    if (!out || yard_parse_u64(text, min, max, &value) != 0)
        return -1;
    *out = (uint32_t)value;
    return 0;
}

int yard_parse_double(const char *text, double min, double max, double *out)
{
    if (!text || !*text || !out)
        return -1;
    /*  strtod alone would accept leading spaces, hex, "inf" and "nan";
        allow only the characters of a plain decimal number. */
    if (strspn(text, "0123456789+-.eE") != strlen(text))
        return -1;
    if (!isdigit((unsigned char)text[0]) && text[0] != '-' && text[0] != '+' &&
        text[0] != '.')
        return -1;
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || *end != '\0')
        return -1;
    if (errno == ERANGE && (value == HUGE_VAL || value == -HUGE_VAL))
        return -1; /*  overflow; underflow to ~0 is accepted */
    if (!isfinite(value) || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

int yard_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    if (!text || !out)
        return -1;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static void s_error(char *errbuf, size_t errlen, const char *path, size_t line,
                    const char *reason)
{
    if (!errbuf || errlen == 0)
        return;
    if (line)
        snprintf(errbuf, errlen, "%s:%zu: %s", path, line, reason);
    else
        snprintf(errbuf, errlen, "%s: %s", path, reason);
}

static bool s_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

/*  Trims spaces on both sides in place; returns the new start. */
static char *s_trim(char *text)
{
    while (s_is_space(*text))
        text++;
    size_t len = strlen(text);
    while (len > 0 && s_is_space(text[len - 1]))
        text[--len] = '\0';
    return text;
}

/*  Keys are identifiers such as "heartbeat_ms" or "broker.endpoint". */
static bool s_valid_key(const char *key)
{
    if (!*key)
        return false;
    for (const char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return false;
    return true;
}

int yard_config_file_each(const char *path, yard_config_line_fn *fn, void *arg,
                          char *errbuf, size_t errlen)
{
    if (!path || !fn) {
        s_error(errbuf, errlen, path ? path : "(null)", 0, "no file");
        return -1;
    }
    FILE *file = fopen(path, "r");
    if (!file) {
        s_error(errbuf, errlen, path, 0, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    size_t lineno = 0;
    int rc = 0;
    ssize_t n;
    while ((n = getline(&buf, &cap, file)) >= 0) {
        lineno++;
        if (memchr(buf, '\0', (size_t)n)) {
            s_error(errbuf, errlen, path, lineno, "NUL byte in line");
            rc = -1;
            break;
        }
        char *line = s_trim(buf);
        if (*line == '\0' || *line == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            s_error(errbuf, errlen, path, lineno, "expected key = value");
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = s_trim(line);
        char *value = s_trim(eq + 1);
        if (!s_valid_key(key)) {
            s_error(errbuf, errlen, path, lineno,
                    *key ? "bad key (use letters, digits, _ - .)"
                         : "missing key before '='");
            rc = -1;
            break;
        }
        rc = fn(key, value, arg);
        if (rc != 0)
            break;
    }
    if (rc == 0 && ferror(file)) {
        s_error(errbuf, errlen, path, lineno + 1, "read error");
        rc = -1;
    }
    free(buf);
    fclose(file);
    return rc;
}

static bool s_has_prefix(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

/*  A port is digits in 0..65535, or "*" (ZeroMQ: any free port). */
static bool s_valid_port(const char *port)
{
    if (strcmp(port, "*") == 0)
        return true;
    uint32_t value;
    return yard_parse_u32(port, 0, 65535, &value) == 0;
}

bool yard_endpoint_is_local(const char *endpoint)
{
    if (!endpoint)
        return false;
    if (s_has_prefix(endpoint, "ipc://") || s_has_prefix(endpoint, "inproc://"))
        return true;
    if (!s_has_prefix(endpoint, "tcp://"))
        return false;
    const char *host = endpoint + strlen("tcp://");
    const char *colon;
    char name[64];
    size_t len;
    if (*host == '[') {
        const char *close = strchr(host, ']');
        if (!close || close[1] != ':')
            return false;
        host++;
        len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(host, ':');
        if (!colon)
            return false;
        len = (size_t)(colon - host);
    }
    if (len == 0 || len >= sizeof(name) || !s_valid_port(colon + 1))
        return false;
    memcpy(name, host, len);
    name[len] = '\0';
    if (strcasecmp(name, "localhost") == 0)
        return true;
    /*  inet_pton accepts only canonical dotted quads and IPv6 text, so
        "127.1", "0x7f.0.0.1" and interface names are not local. */
    struct in_addr v4;
    if (inet_pton(AF_INET, name, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    struct in6_addr v6;
    if (host[-1] == '[' && inet_pton(AF_INET6, name, &v6) == 1)
        return memcmp(&v6, &in6addr_loopback, sizeof(v6)) == 0;
    return false;
}
