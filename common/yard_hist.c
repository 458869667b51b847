/*  yard_hist.c — fixed-size log-linear histogram.

    Bucket scheme (every uint64 maps to one of 976 buckets, all below
    YARD_HIST_BUCKETS = 1024):
      v < 16:   bucket v (exact).
      v >= 16:  msb = 63 - clz(v) (4..63), group = msb - 3 (1..60),
                sub = (v >> (msb - 4)) & 15, bucket = group * 16 + sub.
    Group g >= 1 covers [2^(g+3), 2^(g+4)) in 16 equal sub-buckets of width
    2^(g-1); group 1 has width 1, so every value below 32 is exact. A value
    v >= 32 is reported as its bucket's upper bound, which is above v by
    less than one width, and the width is at most v / 16: the reported
    value r satisfies v <= r < v * (1 + 1/16), i.e. relative error below
    6.25% (before clamping to [min, max], which only moves r towards v).
    The largest bucket is 60 * 16 + 15 = 975, for v = UINT64_MAX. */
#include "yard_hist.h"

#include <assert.h>
#include <math.h>
#include <string.h>

_Static_assert(60 * YARD_HIST_SUB + 15 < YARD_HIST_BUCKETS,
               "buckets must cover UINT64_MAX");

static inline unsigned s_bucket(uint64_t v)
{
    if (v < YARD_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63 - (unsigned)__builtin_clzll(v);
    unsigned group = msb - 3;
    unsigned sub = (unsigned)(v >> (msb - 4)) & (YARD_HIST_SUB - 1);
    return group * YARD_HIST_SUB + sub;
}

/*  Largest value that maps to bucket b (the inverse of s_bucket). */
static inline uint64_t s_upper(unsigned b)
{
    if (b < YARD_HIST_SUB)
        return b;
    unsigned group = b / YARD_HIST_SUB;
    unsigned sub = b % YARD_HIST_SUB;
    unsigned width_bits = group - 1; /*  msb - 4 */
    uint64_t lower = (uint64_t)(YARD_HIST_SUB + sub) << width_bits;
    /*  For the top bucket this is exactly UINT64_MAX, no overflow. */
    return lower + (((uint64_t)1 << width_bits) - 1);
}

static inline uint64_t s_add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void yard_hist_reset(yard_hist_t *self)
{
    assert(self);
    memset(self, 0, sizeof(*self));
    self->min = UINT64_MAX;
}

void yard_hist_record(yard_hist_t *self, uint64_t value)
{
    assert(self);
    self->buckets[s_bucket(value)]++;
    self->count++;
    self->sum = s_add_sat(self->sum, value);
    if (value < self->min)
        self->min = value;
    if (value > self->max)
        self->max = value;
}

uint64_t yard_hist_percentile(const yard_hist_t *self, double p)
{
    assert(self);
    if (self->count == 0)
        return 0;
    if (!(p > 0)) /*  also catches NaN */
        p = 0;
    if (p > 100)
        p = 100;
    /*  Rank of the wanted value, 1-based: ceil(p% of count), at least 1.
        Compare in double before converting, as a huge count times 1.0
        may round above count. */
    double r = ceil(p / 100.0 * (double)self->count);
    uint64_t rank = r < 1                      ? 1
                    : r >= (double)self->count ? self->count
                                               : (uint64_t)r;
    uint64_t seen = 0;
    uint64_t value = self->max; /*  if the counts were inconsistent */
    for (unsigned b = 0; b < YARD_HIST_BUCKETS; b++) {
        seen += self->buckets[b];
        if (seen >= rank) {
            value = s_upper(b);
            break;
        }
    }
    if (value < self->min)
        value = self->min;
    if (value > self->max)
        value = self->max;
    return value;
}

double yard_hist_mean(const yard_hist_t *self)
{
    assert(self);
    if (self->count == 0)
        return 0.0;
    return (double)self->sum / (double)self->count;
}

void yard_hist_merge(yard_hist_t *dst, const yard_hist_t *src)
{
    assert(dst);
    assert(src);
    if (src->count == 0)
        return;
    for (unsigned b = 0; b < YARD_HIST_BUCKETS; b++)
        dst->buckets[b] += src->buckets[b];
    dst->count += src->count;
    dst->sum = s_add_sat(dst->sum, src->sum);
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}
