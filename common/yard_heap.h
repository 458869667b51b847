/*  yard_heap.h — an intrusive indexed binary min-heap on int64 keys, for
    deadlines. The caller embeds a yard_heap_node_t in its own struct, so a
    node can be removed or re-keyed in O(log n) when its task completes
    (no lazy deletion: the heap never holds dead entries). */
#ifndef YARD_HEAP_H
#define YARD_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define YARD_HEAP_NONE SIZE_MAX /*  index of a node not in any heap */

typedef struct {
    int64_t key;  /*  ordering key (e.g. a monotonic deadline in us) */
    size_t index; /*  position in the heap, YARD_HEAP_NONE if absent */
} yard_heap_node_t;

typedef struct _yard_heap_t yard_heap_t;

/*  Creates an empty heap; NULL if out of memory. */
yard_heap_t *yard_heap_new(void);

/*  Destroys the heap (not the nodes) and nulls *self_p. Idempotent. */
void yard_heap_destroy(yard_heap_t **self_p);

/*  Marks a node as not in any heap; call before first use. */
void yard_heap_node_init(yard_heap_node_t *node);

/*  Inserts node with its key. Returns 0, or -1 if out of memory or the
    node is already in a heap. */
int yard_heap_push(yard_heap_t *self, yard_heap_node_t *node, int64_t key);

/*  The node with the smallest key, or NULL when empty. */
yard_heap_node_t *yard_heap_peek(const yard_heap_t *self);

/*  Removes and returns the smallest node, or NULL when empty. */
yard_heap_node_t *yard_heap_pop(yard_heap_t *self);

/*  Removes node if it is in the heap; no-op otherwise. */
void yard_heap_remove(yard_heap_t *self, yard_heap_node_t *node);

/*  Changes node's key (inserting it if absent). Returns 0 or -1. */
int yard_heap_update(yard_heap_t *self, yard_heap_node_t *node, int64_t key);

/*  Number of nodes. */
size_t yard_heap_size(const yard_heap_t *self);

#endif
