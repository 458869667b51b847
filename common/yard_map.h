/*  yard_map.h — an open-addressing hash table from a 64-bit hash to a
    pointer, for the broker's indexes (tasks by job, by client id; clients
    and workers by routing id). The caller computes the hash (yard_hash.h)
    and keeps the full key in the value; several values may share a hash
    and lookups take an equality callback, so collisions are correct, not
    just unlikely. Grows at 70% load, shrinks never; removal uses backward
    shift (no tombstones), so a long-lived table does not degrade. */
#ifndef YARD_MAP_H
#define YARD_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _yard_map_t yard_map_t;

/*  Tells whether a stored value matches the key the caller looks for. */
typedef bool(yard_map_eq_fn)(const void *value, const void *key);

/*  Creates a map sized for about `expected` entries (0 = small). */
yard_map_t *yard_map_new(size_t expected);

/*  Destroys the map (not the values) and nulls *self_p. Idempotent. */
void yard_map_destroy(yard_map_t **self_p);

/*  Adds value under hash (duplicates of hash allowed; value != NULL).
    Returns 0 or -1 if out of memory. */
int yard_map_put(yard_map_t *self, uint64_t hash, void *value);

/*  Finds a value under hash for which eq(value, key) is true; with eq NULL
    the first value under hash. NULL if none. */
void *yard_map_get(const yard_map_t *self, uint64_t hash, yard_map_eq_fn *eq,
                   const void *key);

/*  Removes exactly this value (pointer equality) stored under hash.
    Returns 0, or -1 if it was not there. */
int yard_map_remove(yard_map_t *self, uint64_t hash, const void *value);

/*  Number of values stored. */
size_t yard_map_size(const yard_map_t *self);

/*  Bytes the table itself uses (for memory reports). */
size_t yard_map_memory(const yard_map_t *self);

/*  Calls fn(value, arg) for every value; fn must not modify the map. */
void yard_map_each(const yard_map_t *self, void (*fn)(void *value, void *arg),
                   void *arg);

/*  Calls fn(value, arg) for every value stored under hash (all entries
    sharing it, e.g. every task of one job; fn filters by key itself);
    fn must not modify the map. Added after the first review. */
void yard_map_each_hash(const yard_map_t *self, uint64_t hash,
                        void (*fn)(void *value, void *arg), void *arg);

#endif
