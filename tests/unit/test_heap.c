/*  test_heap.c — yard_heap against a brute-force reference: random
    push/pop/remove/update sequences with many equal keys, checking after
    each step that the minimum and every node->index are right; plus the
    edge cases of the API (double push, foreign nodes, empty heap). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "yard_heap.h"

typedef struct {
    yard_heap_node_t node; /*  embedded, as callers do */
    int id;
} task_t;

static uint64_t s_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/*  Smallest key among nodes in the heap, per the reference (the nodes'
    own index fields are checked separately). */
static int64_t s_ref_min(const task_t *tasks, const bool *in, size_t n,
                         size_t *count)
{
    int64_t best = INT64_MAX;
    *count = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i]) {
            (*count)++;
            if (tasks[i].node.key < best)
                best = tasks[i].node.key;
        }
    return best;
}

static void s_check(yard_heap_t *heap, task_t *tasks, bool *in, size_t n)
{
    size_t count;
    int64_t min = s_ref_min(tasks, in, n, &count);
    assert_int_equal(yard_heap_size(heap), count);
    bool *used = calloc(count + 1, 1);
    for (size_t i = 0; i < n; i++) {
        if (in[i]) {
            /*  indexes are a permutation of 0..count-1 */
            assert_true(tasks[i].node.index < count);
            assert_false(used[tasks[i].node.index]);
            used[tasks[i].node.index] = true;
        } else {
            assert_true(tasks[i].node.index == YARD_HEAP_NONE);
        }
    }
    free(used);
    yard_heap_node_t *top = yard_heap_peek(heap);
    if (count == 0) {
        assert_null(top);
    } else {
        assert_non_null(top);
        assert_int_equal(top->key, min);
        assert_int_equal(top->index, 0);
    }
}

static void s_random_run(size_t n, int64_t key_range, size_t ops, uint64_t seed)
{
    task_t *tasks = calloc(n, sizeof(*tasks));
    bool *in = calloc(n, sizeof(*in));
    assert_non_null(tasks);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++) {
        yard_heap_node_init(&tasks[i].node);
        tasks[i].id = (int)i;
    }
    yard_heap_t *heap = yard_heap_new();
    assert_non_null(heap);
    uint64_t rng = seed;
    for (size_t op = 0; op < ops; op++) {
        size_t i = s_next(&rng) % n;
        int64_t key = (int64_t)(s_next(&rng) % (uint64_t)key_range) -
                      key_range / 2; /*  negative keys too */
        switch (s_next(&rng) % 5) {
        case 0: { /*  push; a node already in keeps its key */
            int64_t before = tasks[i].node.key;
            assert_int_equal(yard_heap_push(heap, &tasks[i].node, key),
                             in[i] ? -1 : 0);
            assert_int_equal(tasks[i].node.key, in[i] ? before : key);
            in[i] = true;
            break;
        }
        case 1: { /*  pop */
            size_t count;
            int64_t min = s_ref_min(tasks, in, n, &count);
            yard_heap_node_t *top = yard_heap_pop(heap);
            if (count == 0) {
                assert_null(top);
            } else {
                assert_non_null(top);
                assert_int_equal(top->key, min); /*  ties: any of them */
                assert_true(top->index == YARD_HEAP_NONE);
                in[((task_t *)top)->id] = false;
            }
            break;
        }
        case 2: /*  remove (no-op when absent) */
            yard_heap_remove(heap, &tasks[i].node);
            in[i] = false;
            break;
        default: /*  update (inserts when absent) */
            assert_int_equal(yard_heap_update(heap, &tasks[i].node, key), 0);
            in[i] = true;
            assert_int_equal(tasks[i].node.key, key);
            break;
        }
        s_check(heap, tasks, in, n);
    }
    /*  Drain: keys come out in non-decreasing order. */
    int64_t prev = INT64_MIN;
    size_t left = yard_heap_size(heap);
    for (size_t k = 0; k < left; k++) {
        yard_heap_node_t *top = yard_heap_pop(heap);
        assert_non_null(top);
        assert_true(top->key >= prev);
        prev = top->key;
        in[((task_t *)top)->id] = false;
    }
    assert_null(yard_heap_pop(heap));
    s_check(heap, tasks, in, n);
    yard_heap_destroy(&heap);
    assert_null(heap);
    yard_heap_destroy(&heap);
    free(in);
    free(tasks);
}

static void test_random_sequences(void **state)
{
    (void)state;
    s_random_run(200, 1000000, 20000, 1); /*  mostly distinct keys */
    s_random_run(300, 5, 20000, 2);       /*  many ties */
    s_random_run(3, 3, 3000, 3);          /*  tiny */
    s_random_run(1000, 100, 10000, 4);    /*  grows past first chunk */
}

static void test_sorted_drain(void **state)
{
    (void)state;
    enum { N = 5000 };
    task_t *tasks = calloc(N, sizeof(*tasks));
    yard_heap_t *heap = yard_heap_new();
    uint64_t rng = 7;
    for (int i = 0; i < N; i++) {
        yard_heap_node_init(&tasks[i].node);
        tasks[i].id = i;
        int64_t key = (int64_t)(s_next(&rng) % 1000);
        assert_int_equal(yard_heap_push(heap, &tasks[i].node, key), 0);
    }
    /*  Remove every third, re-key every fifth to an extreme. */
    for (int i = 0; i < N; i += 3)
        yard_heap_remove(heap, &tasks[i].node);
    size_t expected = N - (N + 2) / 3;
    for (int i = 1; i < N; i += 5) {
        if (i % 3 == 0)
            expected++; /*  update re-inserts a removed node */
        assert_int_equal(yard_heap_update(heap, &tasks[i].node,
                                          i % 2 ? INT64_MIN : INT64_MAX),
                         0);
    }
    int64_t prev = INT64_MIN;
    size_t popped = 0;
    yard_heap_node_t *top;
    while ((top = yard_heap_pop(heap))) {
        assert_true(top->key >= prev);
        prev = top->key;
        popped++;
    }
    assert_int_equal(popped, expected);
    yard_heap_destroy(&heap);
    free(tasks);
}

static void test_edges(void **state)
{
    (void)state;
    yard_heap_t *a = yard_heap_new();
    yard_heap_t *b = yard_heap_new();
    assert_null(yard_heap_peek(a));
    assert_null(yard_heap_pop(a));
    assert_int_equal(yard_heap_size(a), 0);

    task_t x, y;
    yard_heap_node_init(&x.node);
    yard_heap_node_init(&y.node);
    yard_heap_remove(a, &x.node); /*  absent: no-op */
    assert_int_equal(yard_heap_push(a, &x.node, 5), 0);
    assert_int_equal(yard_heap_push(a, &x.node, 6), -1); /*  twice */
    assert_int_equal(x.node.key, 5);
    assert_int_equal(yard_heap_push(b, &x.node, 6), -1); /*  in another */
    /*  A node of heap a is not touched through heap b. */
    assert_int_equal(yard_heap_push(b, &y.node, 1), 0);
    yard_heap_remove(b, &x.node);
    assert_int_equal(yard_heap_size(a), 1);
    assert_int_equal(yard_heap_size(b), 1);
    assert_int_equal(x.node.index, 0);
    yard_heap_remove(a, &y.node); /*  y.index 0 but it is b's */
    assert_int_equal(yard_heap_size(b), 1);
    assert_int_equal(yard_heap_update(a, &y.node, 0), -1);
    /*  Update of the only node, up and down; same key is fine. */
    assert_int_equal(yard_heap_update(a, &x.node, -3), 0);
    assert_int_equal(yard_heap_update(a, &x.node, -3), 0);
    assert_ptr_equal(yard_heap_peek(a), &x.node);
    /*  Pop then push again: a popped node is reusable. */
    assert_ptr_equal(yard_heap_pop(a), &x.node);
    assert_true(x.node.index == YARD_HEAP_NONE);
    assert_int_equal(yard_heap_push(b, &x.node, 0), 0);
    assert_ptr_equal(yard_heap_pop(b), &x.node);
    assert_ptr_equal(yard_heap_pop(b), &y.node);
    yard_heap_destroy(&a);
    yard_heap_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_sequences),
        cmocka_unit_test(test_sorted_drain),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
