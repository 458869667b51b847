/*  cache_l2_cmd.c — the Redis commands behind each yard-cache operation
    (see cache_l2_private.h): binary-safe argv commands through hiredis,
    pipelined where one operation needs several, SCAN / SSCAN loops with
    UNLINK in chunks for the invalidations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_l2_codec.h"
#include "cache_l2_private.h"
#include "yard_log.h"

#define S_CHUNK 256 /*  keys per UNLINK command */

/*  PREFIX:<kind>:<bytes> in a malloc'd buffer. */
static char *s_name(const yard_l2_t *self, char kind, const void *bytes,
                    size_t len, size_t *out_len)
{
    size_t plen = strlen(self->prefix);
    char *name = malloc(plen + 3 + len + 1);
    if (!name)
        return NULL;
    memcpy(name, self->prefix, plen);
    name[plen] = ':';
    name[plen + 1] = kind;
    name[plen + 2] = ':';
    if (len)
        memcpy(name + plen + 3, bytes, len);
    name[plen + 3 + len] = 0;
    *out_len = plen + 3 + len;
    return name;
}

/*  Reads one pipelined reply. -1 on I/O error (c->err set). */
static int s_reply(redisContext *c, redisReply **r)
{
    void *reply = NULL;
    if (redisGetReply(c, &reply) != REDIS_OK || !reply) {
        *r = NULL;
        return -1;
    }
    *r = reply;
    return 0;
}

bool yard_l2_reply_error(yard_l2_t *self, const redisReply *r, const char *what)
{
    if (r->type != REDIS_REPLY_ERROR)
        return false;
    atomic_fetch_add(&self->errors, 1);
    yard_warn("cache: Redis %s: %.*s", what, (int)r->len, r->str);
    return true;
}

/*  UNLINKs n names (argv/lens), in chunks; adds what Redis removed. */
static int s_unlink(yard_l2_t *self, redisContext *c, const char **names,
                    const size_t *lens, size_t n, uint64_t *deleted)
{
    const char *argv[S_CHUNK + 1];
    size_t argl[S_CHUNK + 1];
    for (size_t i = 0; i < n; i += S_CHUNK) {
        size_t m = n - i < S_CHUNK ? n - i : S_CHUNK;
        argv[0] = "UNLINK";
        argl[0] = 6;
        memcpy(argv + 1, names + i, m * sizeof *argv);
        memcpy(argl + 1, lens + i, m * sizeof *argl);
        redisReply *r = redisCommandArgv(c, (int)m + 1, argv, argl);
        if (!r)
            return -1;
        if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
            *deleted += (uint64_t)r->integer;
        else
            yard_l2_reply_error(self, r, "UNLINK");
        freeReplyObject(r);
    }
    return 0;
}

/*  UNLINKs PREFIX:k:<member> for each member of an array reply. */
static int s_unlink_members(yard_l2_t *self, redisContext *c,
                            const redisReply *members, uint64_t *deleted)
{
    size_t n = members->elements;
    if (n == 0)
        return 0;
    const char **names = calloc(n, sizeof *names);
    size_t *lens = calloc(n, sizeof *lens);
    size_t m = 0;
    int rc = names && lens ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const redisReply *e = members->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        char *name = s_name(self, 'k', e->str, e->len, &lens[m]);
        if (!name)
            rc = -1;
        else
            names[m++] = name;
    }
    if (rc == 0)
        rc = s_unlink(self, c, names, lens, m, deleted);
    for (size_t i = 0; names && i < m; i++)
        free((char *)names[i]);
    free(names);
    free(lens);
    return rc;
}

int yard_l2_cmd_get(yard_l2_t *self, redisContext *c, const void *key,
                    size_t klen, yard_l2_got_t *out)
{
    size_t nlen;
    char *name = s_name(self, 'k', key, klen, &nlen);
    if (!name)
        return 0; /*  out of memory: a miss */
    const char *argv[2] = {"GET", name};
    size_t lens[2] = {3, nlen};
    redisAppendCommandArgv(c, 2, argv, lens);
    argv[0] = "PTTL";
    lens[0] = 4;
    redisAppendCommandArgv(c, 2, argv, lens);
    free(name);
    redisReply *value = NULL, *ttl = NULL;
    if (s_reply(c, &value) != 0 || s_reply(c, &ttl) != 0) {
        if (value)
            freeReplyObject(value);
        return -1;
    }
    if (value->type == REDIS_REPLY_STRING) {
        if (yard_l2_decode(value->str, value->len, self->max_value, out) == 0) {
            if (ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0)
                out->ttl_ms = ttl->integer;
            if (ttl->type == REDIS_REPLY_INTEGER && ttl->integer == -2) {
                yard_l2_got_free(out); /*  expired between the two */
                out->hit = out->negative = false;
            }
        } else {
            atomic_fetch_add(&self->corrupt, 1);
        }
    } else {
        yard_l2_reply_error(self, value, "GET");
    }
    freeReplyObject(value);
    freeReplyObject(ttl);
    return 0;
}

int yard_l2_cmd_set(yard_l2_t *self, redisContext *c, const void *key,
                    size_t klen, const void *value, size_t vlen, bool negative,
                    const yard_lru_bytes_t *tags, size_t ntags, uint64_t ttl_ms)
{
    size_t enclen, saved = 0;
    uint8_t *enc = yard_l2_encode(value, vlen, negative, tags, ntags,
                                  self->compress_min, &enclen, &saved);
    size_t nlen;
    char *name = s_name(self, 'k', key, klen, &nlen);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    if (!enc || !name) {
        free(enc);
        free(name);
        return 0; /*  out of memory: not stored, nothing broken */
    }
    /*  Tag sets first: a crash between the two can leave a tag listing a
        key that is not there (harmless), never a tagged key that
        invalidate_tags cannot find. */
    size_t replies = 0;
    for (size_t i = 0; i < ntags; i++) {
        size_t tlen;
        char *tname = s_name(self, 't', tags[i].ptr, tags[i].len, &tlen);
        if (!tname)
            continue;
        const char *sadd[3] = {"SADD", tname, (const char *)key};
        size_t sl[3] = {4, tlen, klen};
        redisAppendCommandArgv(c, 3, sadd, sl);
        const char *px[4] = {"PEXPIRE", tname, ttl, "NX"};
        size_t pl[4] = {7, tlen, strlen(ttl), 2};
        redisAppendCommandArgv(c, 4, px, pl);
        px[3] = "GT";
        redisAppendCommandArgv(c, 4, px, pl);
        replies += 3;
        free(tname);
    }
    const char *set[5] = {"SET", name, (const char *)enc, "PX", ttl};
    size_t setl[5] = {3, nlen, enclen, 2, strlen(ttl)};
    redisAppendCommandArgv(c, 5, set, setl);
    replies++;
    free(enc);
    int rc = 0;
    bool stored = false;
    for (size_t i = 0; i < replies; i++) {
        redisReply *r;
        if (s_reply(c, &r) != 0) {
            rc = -1;
            break;
        }
        bool last = i + 1 == replies;
        bool is_pexpire = !last && i % 3 != 0;
        if (last)
            stored = !yard_l2_reply_error(self, r, "SET");
        else if (!is_pexpire)
            yard_l2_reply_error(self, r, "SADD");
        /*  PEXPIRE NX / GT need Redis 7: an error there is not fatal. */
        freeReplyObject(r);
    }
    if (rc == 0 && !stored) {
        /*  Refused (maxmemory, wrong type): do not leave the old one. */
        const char *del[2] = {"UNLINK", name};
        size_t dl[2] = {6, nlen};
        redisReply *r = redisCommandArgv(c, 2, del, dl);
        if (r)
            freeReplyObject(r);
        else
            rc = -1;
    }
    if (rc == 0 && stored) {
        atomic_fetch_add(&self->sets, 1);
        if (saved) {
            atomic_fetch_add(&self->compressed, 1);
            atomic_fetch_add(&self->bytes_saved, saved);
        }
    }
    free(name);
    return rc;
}

int yard_l2_cmd_del(yard_l2_t *self, redisContext *c, const void *key,
                    size_t klen, uint64_t *deleted)
{
    size_t nlen;
    char *name = s_name(self, 'k', key, klen, &nlen);
    if (!name)
        return 0;
    const char *names[1] = {name};
    int rc = s_unlink(self, c, names, &nlen, 1, deleted);
    free(name);
    return rc;
}

/*  One SCAN / SSCAN step (argv[0] names it; the cursor is in argv and is
    replaced by the next one, at most 31 characters). The reply, whose
    element[1] is the page of names, for the caller to free; NULL when
    Redis is gone (*rc = -1) or answered something else (logged). */
static redisReply *s_scan_step(yard_l2_t *self, redisContext *c, int argc,
                               const char **argv, const size_t *lens,
                               char cursor[32], int *rc)
{
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (!r) {
        *rc = -1;
        return NULL;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        yard_l2_reply_error(self, r, argv[0]);
        freeReplyObject(r);
        return NULL;
    }
    snprintf(cursor, 32, "%.*s", (int)r->element[0]->len, r->element[0]->str);
    return r;
}

/*  Every key listed in PREFIX:t:<tag>, then the set itself. */
int yard_l2_cmd_tag(yard_l2_t *self, redisContext *c, const void *tag,
                    size_t len, uint64_t *deleted)
{
    size_t tlen;
    char *tname = s_name(self, 't', tag, len, &tlen);
    if (!tname)
        return 0;
    char cursor[32] = "0";
    char count[16];
    snprintf(count, sizeof count, "%d", YARD_L2_SCAN_COUNT);
    int rc = 0;
    do {
        const char *argv[5] = {"SSCAN", tname, cursor, "COUNT", count};
        size_t lens[5] = {5, tlen, strlen(cursor), 5, strlen(count)};
        redisReply *r = s_scan_step(self, c, 5, argv, lens, cursor, &rc);
        if (!r)
            break;
        rc = s_unlink_members(self, c, r->element[1], deleted);
        freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    if (rc == 0) {
        uint64_t ignored = 0;
        const char *names[1] = {tname};
        rc = s_unlink(self, c, names, &tlen, 1, &ignored);
    }
    free(tname);
    return rc;
}

/*  SCAN MATCH pattern + UNLINK; counts the removed keys that start with
    PREFIX:k: (entries, not tag sets). */
static int s_do_scan_delete(yard_l2_t *self, redisContext *c,
                            const char *pattern, size_t plen, uint64_t *deleted)
{
    size_t kplen;
    char *kprefix = s_name(self, 'k', "", 0, &kplen);
    if (!kprefix)
        return 0;
    char cursor[32] = "0";
    char count[16];
    snprintf(count, sizeof count, "%d", YARD_L2_SCAN_COUNT);
    int rc = 0;
    do {
        const char *argv[6] = {"SCAN",  cursor,  "MATCH",
                               pattern, "COUNT", count};
        size_t lens[6] = {4, strlen(cursor), 5, plen, 5, strlen(count)};
        redisReply *r = s_scan_step(self, c, 6, argv, lens, cursor, &rc);
        if (!r)
            break;
        const redisReply *keys = r->element[1];
        size_t n = keys->elements;
        const char **names = n ? calloc(2 * n, sizeof *names) : NULL;
        size_t *lens2 = n ? calloc(2 * n, sizeof *lens2) : NULL;
        if (n && (!names || !lens2)) {
            free(names);
            free(lens2);
            freeReplyObject(r);
            break;
        }
        /*  Entries in the first half, other keys (tag sets) in the
            second, so only entries are counted. */
        size_t ne = 0, no = 0;
        for (size_t i = 0; i < n; i++) {
            const redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            bool entry = k->len >= kplen && memcmp(k->str, kprefix, kplen) == 0;
            size_t at = entry ? ne++ : n + no++;
            names[at] = k->str;
            lens2[at] = k->len;
        }
        uint64_t others = 0;
        if (n) { /*  an empty SCAN page: no arrays (and no pointer math) */
            rc = s_unlink(self, c, names, lens2, ne, deleted);
            if (rc == 0)
                rc = s_unlink(self, c, names + n, lens2 + n, no, &others);
        }
        free(names);
        free(lens2);
        freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    free(kprefix);
    return rc;
}

/*  Appends src to dst with Redis glob characters escaped. */
size_t yard_l2_escape(char *dst, const void *src, size_t len)
{
    const char *s = src;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (strchr("*?[]\\", s[i]) && s[i])
            dst[n++] = '\\';
        dst[n++] = s[i];
    }
    return n;
}

/*  The SCAN pattern for kind 'p' (a key prefix), 'g' (an fnmatch glob
    over keys) or 'c' (everything under the prefix). malloc'd. */
static char *s_pattern(const yard_l2_t *self, char kind, const void *arg,
                       size_t len, size_t *out_len)
{
    size_t pe = strlen(self->prefix_esc);
    char *pat = malloc(pe + 4 + 2 * len + 2);
    if (!pat)
        return NULL;
    memcpy(pat, self->prefix_esc, pe);
    size_t n = pe;
    if (kind == 'c') {
        memcpy(pat + n, ":*", 2);
        n += 2;
    } else {
        memcpy(pat + n, ":k:", 3);
        n += 3;
        if (kind == 'p') {
            n += yard_l2_escape(pat + n, arg, len);
            pat[n++] = '*';
        } else {
            /*  fnmatch and Redis globs agree but for negation: fnmatch
                writes [!...], Redis [^...]. */
            const char *g = arg;
            for (size_t i = 0; i < len; i++) {
                pat[n++] = g[i];
                if (g[i] == '\\' && i + 1 < len)
                    pat[n++] = g[++i];
                else if (g[i] == '[' && i + 1 < len && g[i + 1] == '!') {
                    pat[n++] = '^';
                    i++;
                }
            }
        }
    }
    pat[n] = 0;
    *out_len = n;
    return pat;
}

int yard_l2_cmd_pattern(yard_l2_t *self, redisContext *c, char kind,
                        const void *arg, size_t len, uint64_t *deleted)
{
    size_t plen;
    char *pat = s_pattern(self, kind, arg, len, &plen);
    if (!pat)
        return 0;
    int rc = s_do_scan_delete(self, c, pat, plen, deleted);
    free(pat);
    return rc;
}
