/*  yard_map.c — open-addressing hash table from a 64-bit hash to a pointer.

    Layout: one flat array of {hash, value} slots, capacity a power of two,
    linear probing. A slot is empty when its value is NULL (values are never
    NULL), so no separate occupancy bitmap is needed and a probe touches
    one cache line for the common short run.

    The home slot is (hash * golden) >> (64 - bits) (Fibonacci hashing):
    one multiply spreads the high bits of any hash over the table, so a
    caller's weak hash (sequential ids in a test, say) does not build one
    long cluster. The full hash is stored so growth never rehashes keys and
    most non-matching slots are skipped without calling eq.

    Removal uses backward shift (Knuth 6.4, Algorithm R): after emptying a
    slot, later entries of the same run move back into the hole if that
    does not put them before their home slot. There are no tombstones, so
    lookups in a long-lived table with heavy churn stay as short as in a
    fresh one. */
#include "yard_map.h"

#include <assert.h>
#include <stdlib.h>

#define S_MIN_BITS 4 /*  smallest table: 16 slots  */
#define S_MAX_BITS (unsigned)(sizeof(size_t) * 8 - 5) /*  bytes fit size_t */
#define S_GOLDEN 0x9E3779B97F4A7C15ULL /*  2^64 / phi, odd           */
#define S_LOAD_NUM 7                   /*  grow above 7/10 full      */
#define S_LOAD_DEN 10

typedef struct {
    uint64_t hash; /*  the caller's hash, kept for growth and to skip eq */
    void *value;   /*  the caller's value; NULL marks an empty slot      */
} s_slot_t;

struct _yard_map_t {
    s_slot_t *slots; /*  capacity slots                                  */
    size_t mask;     /*  capacity - 1                                    */
    unsigned shift;  /*  64 - log2(capacity), for the home slot          */
    size_t size;     /*  values stored                                   */
    size_t limit;    /*  grow when size would exceed this (70% of cap)   */
};

/*  Most values a table of this capacity holds: 70%, computed without
    overflow for any capacity. */
static inline size_t s_limit(size_t capacity)
{
    return capacity / S_LOAD_DEN * S_LOAD_NUM +
           capacity % S_LOAD_DEN * S_LOAD_NUM / S_LOAD_DEN;
}

static inline size_t s_home(const yard_map_t *self, uint64_t hash)
{
    return (size_t)((hash * S_GOLDEN) >> self->shift);
}

/*  Allocates an empty slot array of 2^bits and points self at it. */
static int s_alloc(yard_map_t *self, unsigned bits)
{
    size_t capacity = (size_t)1 << bits;
    s_slot_t *slots = calloc(capacity, sizeof(s_slot_t));
    if (!slots)
        return -1;
    self->slots = slots;
    self->mask = capacity - 1;
    self->shift = 64 - bits;
    self->limit = s_limit(capacity);
    return 0;
}

/*  Places an entry known not to be present in a table with room. */
static inline void s_place(yard_map_t *self, uint64_t hash, void *value)
{
    size_t i = s_home(self, hash);
    while (self->slots[i].value)
        i = (i + 1) & self->mask;
    self->slots[i].hash = hash;
    self->slots[i].value = value;
}

/*  Doubles the table; on failure the map is unchanged. */
static int s_grow(yard_map_t *self)
{
    unsigned bits = 64 - self->shift;
    if (bits >= S_MAX_BITS)
        return -1;
    s_slot_t *old = self->slots;
    size_t old_capacity = self->mask + 1;
    if (s_alloc(self, bits + 1) != 0)
        return -1; /*  s_alloc changes nothing when it fails */
    for (size_t i = 0; i < old_capacity; i++)
        if (old[i].value)
            s_place(self, old[i].hash, old[i].value);
    free(old);
    return 0;
}

yard_map_t *yard_map_new(size_t expected)
{
    yard_map_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    unsigned bits = S_MIN_BITS;
    /*  Smallest table that holds `expected` below the load limit. */
    while (bits < S_MAX_BITS && s_limit((size_t)1 << bits) < expected)
        bits++;
    if (s_alloc(self, bits) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

void yard_map_destroy(yard_map_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

int yard_map_put(yard_map_t *self, uint64_t hash, void *value)
{
    assert(self);
    assert(value); /*  NULL marks empty slots; a caller bug, not input */
    if (self->size >= self->limit && s_grow(self) != 0)
        return -1;
    s_place(self, hash, value);
    self->size++;
    return 0;
}

void *yard_map_get(const yard_map_t *self, uint64_t hash, yard_map_eq_fn *eq,
                   const void *key)
{
    assert(self);
    const s_slot_t *slots = self->slots;
    size_t i = s_home(self, hash);
    while (slots[i].value) {
        if (slots[i].hash == hash && (!eq || eq(slots[i].value, key)))
            return slots[i].value;
        i = (i + 1) & self->mask;
    }
    return NULL;
}

int yard_map_remove(yard_map_t *self, uint64_t hash, const void *value)
{
    assert(self);
    if (!value)
        return -1;
    s_slot_t *slots = self->slots;
    size_t mask = self->mask;
    size_t hole = s_home(self, hash);
    while (slots[hole].value != value || slots[hole].hash != hash) {
        if (!slots[hole].value)
            return -1;
        hole = (hole + 1) & mask;
    }
    /*  Backward shift: walk the rest of the run; an entry at j may fill
        the hole if the hole lies between its home and j (cyclically),
        i.e. its distance from home is at least the hole's distance. */
    size_t j = hole;
    for (;;) {
        j = (j + 1) & mask;
        if (!slots[j].value)
            break;
        size_t home = s_home(self, slots[j].hash);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            slots[hole] = slots[j];
            hole = j;
        }
    }
    slots[hole].hash = 0;
    slots[hole].value = NULL;
    self->size--;
    return 0;
}

size_t yard_map_size(const yard_map_t *self)
{
    assert(self);
    return self->size;
}

size_t yard_map_memory(const yard_map_t *self)
{
    assert(self);
    return sizeof(*self) + (self->mask + 1) * sizeof(s_slot_t);
}

void yard_map_each(const yard_map_t *self, void (*fn)(void *value, void *arg),
                   void *arg)
{
    assert(self);
    assert(fn);
    size_t capacity = self->mask + 1;
    for (size_t i = 0; i < capacity; i++)
        if (self->slots[i].value)
            fn(self->slots[i].value, arg);
}

void yard_map_each_hash(const yard_map_t *self, uint64_t hash,
                        void (*fn)(void *value, void *arg), void *arg)
{
    assert(self);
    assert(fn);
    /*  Every entry under hash lies in the run that starts at its home
        slot and ends at the first empty slot. */
    size_t i = s_home(self, hash);
    while (self->slots[i].value) {
        if (self->slots[i].hash == hash)
            fn(self->slots[i].value, arg);
        i = (i + 1) & self->mask;
    }
}
