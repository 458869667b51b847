/*  cache_l2_private.h — the insides of yard_l2_t, shared by cache_l2.c
    (pool, health, journal, monitor, public calls) and cache_l2_cmd.c (the
    Redis commands of each operation). Not for other files. */
#ifndef YARD_CACHE_L2_PRIVATE_H
#define YARD_CACHE_L2_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "cache_l2.h"

#define YARD_L2_POOL_MAX 64 /*  idle connections kept, at most */

/*  A mutation to replay on Redis once it is back. */
typedef enum { J_KEY, J_TAG, J_PREFIX, J_GLOB, J_CLEAR } yard_l2_jkind_t;

typedef struct yard_l2_jentry {
    struct yard_l2_jentry *next;
    yard_l2_jkind_t kind;
    size_t len;
    uint8_t data[]; /*  key, tag, prefix or glob (NUL-terminated too) */
} yard_l2_jentry_t;

struct _yard_l2_t {
    /*  Where Redis is (parsed from the URL). */
    char *host;          /*  TCP host, or NULL with unix_path */
    int port;            /*  TCP port */
    char *unix_path;     /*  unix socket path, or NULL */
    char *user;          /*  AUTH user (Redis 6 ACL), or NULL */
    char *password;      /*  AUTH password, or NULL */
    unsigned db;         /*  SELECT db */
    char *url_shown;     /*  the URL without the password */
    char *prefix;        /*  key prefix */
    char *prefix_esc;    /*  the prefix with glob characters escaped */
    struct timeval tv;   /*  connect and command timeout */
    size_t compress_min; /*  compress values this long or longer */
    size_t max_value;    /*  refuse to inflate beyond this */
    yard_l2_state_fn *on_state;
    void *arg;

    pthread_mutex_t lock; /*  guards everything below */
    pthread_cond_t wake;  /*  wakes the monitor: degraded, or stop */
    bool degraded;        /*  down: calls are not tried */
    uint64_t gen;         /*  bumped on each degradation: pooled
                              connections of older generations are dropped */
    int64_t down_since_ms;
    char reason[256];                     /*  why it went down */
    redisContext *idle[YARD_L2_POOL_MAX]; /*  idle pooled connections */
    size_t nidle;
    yard_l2_jentry_t *jhead, *jtail; /*  journal, oldest first */
    size_t jcount;                   /*  entries in it */
    bool jclear;                     /*  overflowed: clear PREFIX:* on replay */
    bool stop;                       /*  destroy asked the monitor to end */
    pthread_t monitor;
    bool monitor_running;

    /*  Counters, any thread. */
    atomic_uint_fast64_t hits, misses, negative_hits, sets, deletes, errors,
        reconnects, degradations, compressed, bytes_saved, corrupt, replayed;
};

/* ---- Commands (cache_l2_cmd.c) -------------------------------------------

    Each runs one operation on connection c and returns 0, or -1 when the
    connection failed (I/O error, timeout: c->err is set and the caller
    degrades the tier). Error replies from Redis are counted and logged,
    not fatal. Counts removed keys into *deleted. */

/*  GET + PTTL of PREFIX:k:key into *out (a miss when absent or garbage). */
int yard_l2_cmd_get(yard_l2_t *self, redisContext *c, const void *key,
                    size_t klen, yard_l2_got_t *out);

/*  SADD + PEXPIRE NX/GT per tag, then SET PX (pipelined). */
int yard_l2_cmd_set(yard_l2_t *self, redisContext *c, const void *key,
                    size_t klen, const void *value, size_t vlen, bool negative,
                    const yard_lru_bytes_t *tags, size_t ntags,
                    uint64_t ttl_ms);

/*  UNLINK PREFIX:k:key. */
int yard_l2_cmd_del(yard_l2_t *self, redisContext *c, const void *key,
                    size_t klen, uint64_t *deleted);

/*  SSCAN PREFIX:t:tag, UNLINK its keys, then the set. */
int yard_l2_cmd_tag(yard_l2_t *self, redisContext *c, const void *tag,
                    size_t len, uint64_t *deleted);

/*  SCAN MATCH + UNLINK: kind 'p' keys starting with arg, 'g' keys
    matching the fnmatch glob arg, 'c' everything under the prefix. */
int yard_l2_cmd_pattern(yard_l2_t *self, redisContext *c, char kind,
                        const void *arg, size_t len, uint64_t *deleted);

/*  Writes src to dst with Redis glob characters (* ? [ ] \) escaped;
    dst needs 2 x len bytes. Returns the bytes written. */
size_t yard_l2_escape(char *dst, const void *src, size_t len);

/*  Counts and logs r if it is an error reply; true then. */
bool yard_l2_reply_error(yard_l2_t *self, const redisReply *r,
                         const char *what);

#endif
