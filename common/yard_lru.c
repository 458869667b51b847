/*  yard_lru.c — the L1 cache: hash table + recency list + expiry heap +
    tag index (see yard_lru.h for the contract).

    One allocation per entry holds the entry struct, its tag links, the
    key (followed by a NUL so fnmatch can read it) and the value. Tags are
    records of their own in a second table, each heading a doubly linked
    list of the links of the entries that carry it. Every way out of the
    cache goes through s_remove, which undoes all four structures. */
#include "yard_lru.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "yard_hash.h"
#include "yard_heap.h"
#include "yard_map.h"

typedef struct s_entry s_entry_t;
typedef struct s_tag s_tag_t;

/*  One entry's membership in one tag's list. */
typedef struct s_link {
    s_entry_t *entry;    /*  the entry carrying the tag */
    s_tag_t *tag;        /*  the tag */
    struct s_link *prev; /*  neighbours in the tag's list */
    struct s_link *next;
} s_link_t;

struct s_tag {
    uint64_t hash;  /*  table hash of the name */
    size_t count;   /*  links in the list (entries carrying it) */
    s_link_t *head; /*  first link */
    size_t len;     /*  name length */
    uint8_t name[]; /*  the tag bytes */
};

struct s_entry {
    s_entry_t *newer;        /*  recency list: towards the front */
    s_entry_t *older;        /*  recency list: towards the back */
    yard_heap_node_t expiry; /*  in the heap iff expires_ms > 0 */
    uint64_t hash;           /*  table hash of the key */
    int64_t expires_ms;      /*  absolute expiry, 0 = never */
    size_t charged;          /*  bytes charged for it */
    size_t klen;             /*  key length */
    size_t vlen;             /*  value length */
    bool negative;           /*  a remembered miss (no value) */
    uint8_t ntags;           /*  links in use */
    s_link_t *links;         /*  ntags links, inside this allocation */
    uint8_t *key;            /*  klen bytes + NUL, inside this allocation */
    uint8_t *value;          /*  vlen bytes, inside this allocation */
};

struct _yard_lru_t {
    yard_map_t *entries; /*  key hash -> s_entry_t */
    yard_map_t *tags;    /*  tag hash -> s_tag_t */
    yard_heap_t *heap;   /*  expiry times of entries with a TTL */
    s_entry_t *newest;   /*  front of the recency list */
    s_entry_t *oldest;   /*  back: the next to evict */
    uint64_t seed;       /*  hash seed */
    yard_lru_stats_t st; /*  counters, entries and bytes */
};

/*  What the tables' eq callbacks compare against. */
typedef struct {
    const void *ptr;
    size_t len;
} s_key_t;

static bool s_entry_eq(const void *value, const void *key)
{
    const s_entry_t *e = value;
    const s_key_t *k = key;
    return e->klen == k->len && memcmp(e->key, k->ptr, k->len) == 0;
}

static bool s_tag_eq(const void *value, const void *key)
{
    const s_tag_t *t = value;
    const s_key_t *k = key;
    return t->len == k->len && memcmp(t->name, k->ptr, k->len) == 0;
}

static s_entry_t *s_find(const yard_lru_t *self, const void *key, size_t klen,
                         uint64_t *hash)
{
    *hash = yard_hash64(key, klen, self->seed);
    s_key_t k = {key, klen};
    return yard_map_get(self->entries, *hash, s_entry_eq, &k);
}

static bool s_expired(const s_entry_t *e, int64_t now_ms)
{
    return e->expires_ms > 0 && e->expires_ms <= now_ms;
}

/* ---- Recency list ------------------------------------------------------- */

static void s_unlink(yard_lru_t *self, s_entry_t *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        self->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        self->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void s_push_front(yard_lru_t *self, s_entry_t *e)
{
    e->newer = NULL;
    e->older = self->newest;
    if (self->newest)
        self->newest->newer = e;
    self->newest = e;
    if (!self->oldest)
        self->oldest = e;
}

/* ---- Tags --------------------------------------------------------------- */

/*  Finds or creates the tag record. NULL if out of memory. */
static s_tag_t *s_tag_get(yard_lru_t *self, const void *name, size_t len)
{
    uint64_t hash = yard_hash64(name, len, self->seed ^ 0x7461677321ULL);
    s_key_t k = {name, len};
    s_tag_t *tag = yard_map_get(self->tags, hash, s_tag_eq, &k);
    if (tag)
        return tag;
    tag = malloc(sizeof *tag + len);
    if (!tag)
        return NULL;
    tag->hash = hash;
    tag->count = 0;
    tag->head = NULL;
    tag->len = len;
    memcpy(tag->name, name, len);
    if (yard_map_put(self->tags, hash, tag) != 0) {
        free(tag);
        return NULL;
    }
    self->st.tags++;
    return tag;
}

static void s_tag_drop_if_empty(yard_lru_t *self, s_tag_t *tag)
{
    if (tag->count > 0)
        return;
    yard_map_remove(self->tags, tag->hash, tag);
    self->st.tags--;
    free(tag);
}

static void s_link_add(s_tag_t *tag, s_link_t *link, s_entry_t *e)
{
    link->entry = e;
    link->tag = tag;
    link->prev = NULL;
    link->next = tag->head;
    if (tag->head)
        tag->head->prev = link;
    tag->head = link;
    tag->count++;
}

static void s_link_remove(yard_lru_t *self, s_link_t *link)
{
    s_tag_t *tag = link->tag;
    if (link->prev)
        link->prev->next = link->next;
    else
        tag->head = link->next;
    if (link->next)
        link->next->prev = link->prev;
    tag->count--;
    s_tag_drop_if_empty(self, tag);
}

/* ---- Removal ------------------------------------------------------------ */

typedef enum {
    S_GONE_DELETED, /*  asked for: del, invalidate, replace */
    S_GONE_EVICTED, /*  to make room */
    S_GONE_EXPIRED, /*  its TTL ran out */
} s_gone_t;

/*  Takes e out of every structure, counts why, frees it. */
static void s_remove(yard_lru_t *self, s_entry_t *e, s_gone_t why)
{
    s_unlink(self, e);
    yard_map_remove(self->entries, e->hash, e);
    yard_heap_remove(self->heap, &e->expiry);
    for (uint8_t i = 0; i < e->ntags; i++)
        s_link_remove(self, &e->links[i]);
    self->st.entries--;
    self->st.bytes -= e->charged;
    if (why == S_GONE_EVICTED)
        self->st.evictions++;
    else if (why == S_GONE_EXPIRED)
        self->st.expirations++;
    free(e);
}

/*  Removes e as asked; returns 1 if it was live, 0 if it had expired
    (then counted as an expiration). */
static size_t s_remove_asked(yard_lru_t *self, s_entry_t *e, int64_t now_ms)
{
    bool dead = s_expired(e, now_ms);
    s_remove(self, e, dead ? S_GONE_EXPIRED : S_GONE_DELETED);
    return dead ? 0 : 1;
}

/*  Drops up to max expired entries from the top of the heap. */
static size_t s_expire(yard_lru_t *self, int64_t now_ms, size_t max)
{
    size_t n = 0;
    while (n < max) {
        yard_heap_node_t *top = yard_heap_peek(self->heap);
        if (!top || top->key > now_ms)
            break;
        s_entry_t *e = (s_entry_t *)((char *)top - offsetof(s_entry_t, expiry));
        s_remove(self, e, S_GONE_EXPIRED);
        n++;
    }
    return n;
}

/*  Frees room for one more entry of `bytes`: expired entries first (the
    earliest expiry first), then the least recently used. */
static void s_make_room(yard_lru_t *self, size_t bytes, int64_t now_ms)
{
    while (self->oldest && (self->st.entries + 1 > self->st.max_entries ||
                            self->st.bytes + bytes > self->st.max_bytes)) {
        if (s_expire(self, now_ms, 1) == 1)
            continue;
        s_remove(self, self->oldest, S_GONE_EVICTED);
    }
}

/* ---- Public ------------------------------------------------------------- */

yard_lru_t *yard_lru_new(size_t max_entries, size_t max_bytes, uint64_t seed)
{
    if (max_entries < 1 || max_bytes < YARD_LRU_ENTRY_OVERHEAD + 1)
        return NULL;
    yard_lru_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    size_t expected = max_entries < 1024 ? max_entries : 1024;
    self->entries = yard_map_new(expected);
    self->tags = yard_map_new(0);
    self->heap = yard_heap_new();
    if (!self->entries || !self->tags || !self->heap) {
        yard_lru_destroy(&self);
        return NULL;
    }
    self->seed = seed;
    self->st.max_entries = max_entries;
    self->st.max_bytes = max_bytes;
    return self;
}

void yard_lru_destroy(yard_lru_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    yard_lru_t *self = *self_p;
    while (self->oldest)
        s_remove(self, self->oldest, S_GONE_DELETED);
    yard_map_destroy(&self->entries);
    yard_map_destroy(&self->tags);
    yard_heap_destroy(&self->heap);
    free(self);
    *self_p = NULL;
}

/*  Shared by set and set_negative. tags were checked by the caller. */
static int s_store(yard_lru_t *self, const void *key, size_t klen,
                   const void *value, size_t vlen, bool negative,
                   const yard_lru_bytes_t *tags, size_t ntags, int64_t ttl_ms,
                   int64_t now_ms)
{
    if (!key || klen == 0 || ttl_ms < 0 || (vlen > 0 && !value))
        return YARD_LRU_E_ARG;
    if (ntags > YARD_LRU_MAX_TAGS || (ntags > 0 && !tags))
        return YARD_LRU_E_ARG;
    /*  Distinct tags only: an entry links to a tag at most once. */
    size_t uniq[YARD_LRU_MAX_TAGS];
    size_t nuniq = 0, tag_bytes = 0;
    for (size_t i = 0; i < ntags; i++) {
        if (tags[i].len == 0 || tags[i].len > YARD_LRU_MAX_TAG_LEN ||
            !tags[i].ptr)
            return YARD_LRU_E_ARG;
        bool dup = false;
        for (size_t j = 0; j < nuniq && !dup; j++)
            dup = tags[uniq[j]].len == tags[i].len &&
                  memcmp(tags[uniq[j]].ptr, tags[i].ptr, tags[i].len) == 0;
        if (!dup) {
            uniq[nuniq++] = i;
            tag_bytes += tags[i].len;
        }
    }
    s_expire(self, now_ms, YARD_LRU_EXPIRE_BUDGET);

    uint64_t hash;
    s_entry_t *old = s_find(self, key, klen, &hash);
    if (old)
        s_remove(self, old,
                 s_expired(old, now_ms) ? S_GONE_EXPIRED : S_GONE_DELETED);

    size_t charged = klen + vlen + tag_bytes + YARD_LRU_ENTRY_OVERHEAD +
                     nuniq * YARD_LRU_TAG_OVERHEAD;
    if (charged > self->st.max_bytes || charged < klen + vlen)
        return YARD_LRU_E_TOO_LARGE;
    s_make_room(self, charged, now_ms);

    size_t links = nuniq * sizeof(s_link_t);
    s_entry_t *e = malloc(sizeof *e + links + klen + 1 + vlen);
    if (!e)
        return YARD_LRU_E_NOMEM;
    memset(e, 0, sizeof *e);
    e->links = (s_link_t *)(e + 1);
    e->key = (uint8_t *)e->links + links;
    e->value = e->key + klen + 1;
    memcpy(e->key, key, klen);
    e->key[klen] = 0;
    if (vlen)
        memcpy(e->value, value, vlen);
    e->klen = klen;
    e->vlen = vlen;
    e->negative = negative;
    e->hash = hash;
    e->charged = charged;
    yard_heap_node_init(&e->expiry);
    if (ttl_ms > 0) {
        if (ttl_ms > YARD_LRU_MAX_TTL_MS)
            ttl_ms = YARD_LRU_MAX_TTL_MS;
        e->expires_ms = now_ms + ttl_ms;
    }
    if (yard_map_put(self->entries, hash, e) != 0) {
        free(e);
        return YARD_LRU_E_NOMEM;
    }
    if (e->expires_ms > 0 &&
        yard_heap_push(self->heap, &e->expiry, e->expires_ms) != 0) {
        yard_map_remove(self->entries, hash, e);
        free(e);
        return YARD_LRU_E_NOMEM;
    }
    s_push_front(self, e);
    self->st.entries++;
    self->st.bytes += charged;
    for (size_t i = 0; i < nuniq; i++) {
        const yard_lru_bytes_t *t = &tags[uniq[i]];
        s_tag_t *tag = s_tag_get(self, t->ptr, t->len);
        if (!tag) {
            s_remove(self, e, S_GONE_DELETED);
            return YARD_LRU_E_NOMEM;
        }
        s_link_add(tag, &e->links[i], e);
        e->ntags++;
    }
    self->st.sets++;
    return 0;
}

int yard_lru_set(yard_lru_t *self, const void *key, size_t klen,
                 const void *value, size_t vlen, const yard_lru_bytes_t *tags,
                 size_t ntags, int64_t ttl_ms, int64_t now_ms)
{
    return s_store(self, key, klen, value, vlen, false, tags, ntags, ttl_ms,
                   now_ms);
}

int yard_lru_set_negative(yard_lru_t *self, const void *key, size_t klen,
                          int64_t ttl_ms, int64_t now_ms)
{
    if (ttl_ms <= 0)
        return YARD_LRU_E_ARG;
    return s_store(self, key, klen, NULL, 0, true, NULL, 0, ttl_ms, now_ms);
}

yard_lru_result_t yard_lru_get(yard_lru_t *self, const void *key, size_t klen,
                               int64_t now_ms, yard_lru_found_t *out)
{
    s_expire(self, now_ms, YARD_LRU_EXPIRE_BUDGET);
    uint64_t hash;
    s_entry_t *e = key && klen ? s_find(self, key, klen, &hash) : NULL;
    if (e && s_expired(e, now_ms)) {
        s_remove(self, e, S_GONE_EXPIRED);
        e = NULL;
    }
    if (!e) {
        self->st.misses++;
        return YARD_LRU_MISS;
    }
    s_unlink(self, e);
    s_push_front(self, e);
    if (out) {
        out->value = e->negative ? NULL : e->value;
        out->len = e->vlen;
        out->ttl_ms = e->expires_ms > 0 ? e->expires_ms - now_ms : 0;
        out->ntags = e->ntags;
    }
    if (e->negative) {
        self->st.negative_hits++;
        return YARD_LRU_NEGATIVE;
    }
    self->st.hits++;
    return YARD_LRU_HIT;
}

int yard_lru_del(yard_lru_t *self, const void *key, size_t klen, int64_t now_ms)
{
    s_expire(self, now_ms, YARD_LRU_EXPIRE_BUDGET);
    uint64_t hash;
    s_entry_t *e = key && klen ? s_find(self, key, klen, &hash) : NULL;
    return e ? (int)s_remove_asked(self, e, now_ms) : 0;
}

size_t yard_lru_invalidate_tag(yard_lru_t *self, const void *tag, size_t len,
                               int64_t now_ms)
{
    s_expire(self, now_ms, YARD_LRU_EXPIRE_BUDGET);
    if (!tag || len == 0)
        return 0;
    uint64_t hash = yard_hash64(tag, len, self->seed ^ 0x7461677321ULL);
    s_key_t k = {tag, len};
    s_tag_t *t = yard_map_get(self->tags, hash, s_tag_eq, &k);
    if (!t)
        return 0;
    size_t removed = 0;
    /*  Removing the last entry frees the tag record: read the next link
        before each removal and stop on NULL, never touching t after. */
    s_link_t *link = t->head;
    while (link) {
        s_link_t *next = link->next;
        removed += s_remove_asked(self, link->entry, now_ms);
        link = next;
    }
    return removed;
}

/*  Removes every entry for which match(e, arg) holds (a full scan). */
static size_t s_remove_matching(yard_lru_t *self, int64_t now_ms,
                                bool (*match)(const s_entry_t *, const void *),
                                const void *arg)
{
    size_t removed = 0;
    s_entry_t *e = self->newest;
    while (e) {
        s_entry_t *next = e->older;
        if (match(e, arg))
            removed += s_remove_asked(self, e, now_ms);
        e = next;
    }
    return removed;
}

static bool s_match_prefix(const s_entry_t *e, const void *arg)
{
    const s_key_t *p = arg;
    return e->klen >= p->len && memcmp(e->key, p->ptr, p->len) == 0;
}

static bool s_match_glob(const s_entry_t *e, const void *arg)
{
    return memchr(e->key, 0, e->klen) == NULL &&
           fnmatch((const char *)arg, (const char *)e->key, 0) == 0;
}

static bool s_match_all(const s_entry_t *e, const void *arg)
{
    (void)e;
    (void)arg;
    return true;
}

size_t yard_lru_invalidate_prefix(yard_lru_t *self, const void *prefix,
                                  size_t len, int64_t now_ms)
{
    if (len > 0 && !prefix)
        return 0;
    s_key_t p = {prefix, len};
    return s_remove_matching(self, now_ms, s_match_prefix, &p);
}

size_t yard_lru_invalidate_glob(yard_lru_t *self, const char *pattern,
                                int64_t now_ms)
{
    if (!pattern)
        return 0;
    return s_remove_matching(self, now_ms, s_match_glob, pattern);
}

size_t yard_lru_clear(yard_lru_t *self, int64_t now_ms)
{
    return s_remove_matching(self, now_ms, s_match_all, NULL);
}

size_t yard_lru_expire(yard_lru_t *self, int64_t now_ms, size_t max)
{
    return s_expire(self, now_ms, max);
}

void yard_lru_stats(const yard_lru_t *self, yard_lru_stats_t *out)
{
    *out = self->st;
}

size_t yard_lru_size(const yard_lru_t *self)
{
    return (size_t)self->st.entries;
}
