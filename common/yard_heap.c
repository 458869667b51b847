/*  yard_heap.c — intrusive indexed binary min-heap for deadlines.

    The heap is an array of pointers to caller-owned nodes; every move of a
    node writes its new position into node->index, so remove and re-key
    find the node in O(1) and restore order in O(log n). The broker keeps
    one node per pending task and removes it when the task completes, so
    the heap holds only live deadlines and its size is the true backlog. */
#include "yard_heap.h"

#include <assert.h>
#include <stdlib.h>

#define S_MIN_CAPACITY 64 /*  first allocation, in node pointers */

struct _yard_heap_t {
    yard_heap_node_t **nodes; /*  the binary heap, nodes[0] is smallest */
    size_t size;              /*  nodes in the heap                     */
    size_t capacity;          /*  slots allocated in nodes              */
};

/*  Stores node at position i and tells it so. */
static inline void s_set(yard_heap_t *self, size_t i, yard_heap_node_t *node)
{
    self->nodes[i] = node;
    node->index = i;
}

/*  Moves the node at i towards the root while it is smaller than its
    parent. Ties stop the move, so equal keys do not churn. */
static void s_sift_up(yard_heap_t *self, size_t i)
{
    yard_heap_node_t *node = self->nodes[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (self->nodes[parent]->key <= node->key)
            break;
        s_set(self, i, self->nodes[parent]);
        i = parent;
    }
    s_set(self, i, node);
}

/*  Moves the node at i towards the leaves while a child is smaller. */
static void s_sift_down(yard_heap_t *self, size_t i)
{
    yard_heap_node_t *node = self->nodes[i];
    size_t size = self->size;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= size)
            break;
        if (child + 1 < size &&
            self->nodes[child + 1]->key < self->nodes[child]->key)
            child++;
        if (node->key <= self->nodes[child]->key)
            break;
        s_set(self, i, self->nodes[child]);
        i = child;
    }
    s_set(self, i, node);
}

/*  True if node sits in this heap (not merely in some heap). */
static inline int s_contains(const yard_heap_t *self,
                             const yard_heap_node_t *node)
{
    return node->index < self->size && self->nodes[node->index] == node;
}

yard_heap_t *yard_heap_new(void)
{
    yard_heap_t *self = calloc(1, sizeof(*self));
    return self; /*  nodes is allocated on first push */
}

void yard_heap_destroy(yard_heap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->nodes);
    free(*self_p);
    *self_p = NULL;
}

void yard_heap_node_init(yard_heap_node_t *node)
{
    assert(node);
    node->key = 0;
    node->index = YARD_HEAP_NONE;
}

int yard_heap_push(yard_heap_t *self, yard_heap_node_t *node, int64_t key)
{
    assert(self);
    assert(node);
    if (node->index != YARD_HEAP_NONE)
        return -1;
    if (self->size == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : S_MIN_CAPACITY;
        if (capacity > SIZE_MAX / sizeof(*self->nodes))
            return -1;
        yard_heap_node_t **nodes =
            realloc(self->nodes, capacity * sizeof(*nodes));
        if (!nodes)
            return -1;
        self->nodes = nodes;
        self->capacity = capacity;
    }
    node->key = key;
    self->nodes[self->size] = node;
    node->index = self->size++;
    s_sift_up(self, node->index);
    return 0;
}

yard_heap_node_t *yard_heap_peek(const yard_heap_t *self)
{
    assert(self);
    return self->size ? self->nodes[0] : NULL;
}

/*  Takes the node at position i out, filling the gap with the last node. */
static void s_remove_at(yard_heap_t *self, size_t i)
{
    yard_heap_node_t *node = self->nodes[i];
    yard_heap_node_t *last = self->nodes[--self->size];
    node->index = YARD_HEAP_NONE;
    if (last == node)
        return; /*  it was the last one */
    s_set(self, i, last);
    /*  The moved node may belong above or below i; one of these is a
        no-op. */
    if (i > 0 && last->key < self->nodes[(i - 1) / 2]->key)
        s_sift_up(self, i);
    else
        s_sift_down(self, i);
}

yard_heap_node_t *yard_heap_pop(yard_heap_t *self)
{
    assert(self);
    if (!self->size)
        return NULL;
    yard_heap_node_t *node = self->nodes[0];
    s_remove_at(self, 0);
    return node;
}

void yard_heap_remove(yard_heap_t *self, yard_heap_node_t *node)
{
    assert(self);
    assert(node);
    if (s_contains(self, node))
        s_remove_at(self, node->index);
}

int yard_heap_update(yard_heap_t *self, yard_heap_node_t *node, int64_t key)
{
    assert(self);
    assert(node);
    if (node->index == YARD_HEAP_NONE)
        return yard_heap_push(self, node, key);
    if (!s_contains(self, node))
        return -1; /*  it is in another heap */
    int64_t old = node->key;
    node->key = key;
    if (key < old)
        s_sift_up(self, node->index);
    else if (key > old)
        s_sift_down(self, node->index);
    return 0;
}

size_t yard_heap_size(const yard_heap_t *self)
{
    assert(self);
    return self->size;
}
