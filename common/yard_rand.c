/*  yard_rand.c — xoshiro256** (Blackman and Vigna, 2018) seeded through
    splitmix64, which turns any 64-bit seed, even 0, into a well-mixed
    state that is never all zero. Fast and good enough for jitter and ids;
    not for anything an attacker must not predict. */
#include "yard_rand.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t s_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void yard_rand_seed(yard_rand_t *self, uint64_t seed)
{
    assert(self);
    for (int i = 0; i < 4; i++)
        self->s[i] = s_splitmix64(&seed);
    /*  splitmix64 is a bijection of distinct counters, so four outputs
        are never all zero; keep the invariant explicit anyway. */
    if (!(self->s[0] | self->s[1] | self->s[2] | self->s[3]))
        self->s[0] = 1;
}

void yard_rand_seed_os(yard_rand_t *self)
{
    assert(self);
    uint64_t seed = 0;
    size_t got = 0;
    /*  8 bytes from getrandom never come back short once the pool is
        initialised, but retry EINTR and accept partial reads anyway. */
    while (got < sizeof(seed)) {
        ssize_t n = getrandom((char *)&seed + got, sizeof(seed) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    if (got < sizeof(seed)) {
        /*  No getrandom (old kernel, seccomp): mix time and pid, so
            processes started together still differ. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t mix =
            (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        mix ^= s_rotl((uint64_t)ts.tv_nsec, 32);
        mix ^= (uint64_t)getpid() << 16;
        seed ^= mix;
    }
    yard_rand_seed(self, seed);
}

uint64_t yard_rand_next(yard_rand_t *self)
{
    assert(self);
    uint64_t *s = self->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

double yard_rand_double(yard_rand_t *self)
{
    /*  The top 53 bits fill a double's mantissa exactly: every value is
        a multiple of 2^-53 in [0, 1). */
    return (double)(yard_rand_next(self) >> 11) * 0x1.0p-53;
}

uint64_t yard_rand_below(yard_rand_t *self, uint64_t bound)
{
    assert(self);
    if (bound <= 1)
        return 0; /*  bound 0 is a caller bug; 0 is the only safe answer */
    /*  Reject the low 2^64 mod bound raw values, so each residue has the
        same number of preimages. The threshold is (2^64 - bound) % bound,
        computed in 64 bits; rejection happens with probability < 1/2. */
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t r = yard_rand_next(self);
        if (r >= threshold)
            return r % bound;
    }
}

void yard_rand_bytes(yard_rand_t *self, void *buf, size_t len)
{
    assert(self);
    assert(buf || len == 0);
    unsigned char *out = buf;
    while (len >= 8) {
        uint64_t r = yard_rand_next(self);
        memcpy(out, &r, 8);
        out += 8;
        len -= 8;
    }
    if (len) {
        uint64_t r = yard_rand_next(self);
        memcpy(out, &r, len);
    }
}
