/*  yard_rand.h — a small fast PRNG (xoshiro256** seeded by splitmix64)
    for jitter and ids. Not for secrets. One state per thread. */
#ifndef YARD_RAND_H
#define YARD_RAND_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4]; /*  xoshiro256** state; never all zero */
} yard_rand_t;

/*  Seeds from a value (tests: reproducible sequences). */
void yard_rand_seed(yard_rand_t *self, uint64_t seed);

/*  Seeds from the kernel (getrandom), falling back to time and pid. */
void yard_rand_seed_os(yard_rand_t *self);

/*  Next 64 random bits. */
uint64_t yard_rand_next(yard_rand_t *self);

/*  Uniform double in [0, 1). */
double yard_rand_double(yard_rand_t *self);

/*  Uniform integer in [0, bound) (bound > 0), without modulo bias. */
uint64_t yard_rand_below(yard_rand_t *self, uint64_t bound);

/*  Fills buf with random bytes. */
void yard_rand_bytes(yard_rand_t *self, void *buf, size_t len);

#endif
