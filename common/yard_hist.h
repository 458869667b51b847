/*  yard_hist.h — a fixed-size log-linear latency histogram (HdrHistogram
    style): 16 linear sub-buckets per power of two, so any recorded value
    is reported within 1/16 (6.25%) of its true value. Constant memory, no
    allocation, O(1) record, mergeable. Values are microseconds by
    convention but any uint64 works. */
#ifndef YARD_HIST_H
#define YARD_HIST_H

#include <stdint.h>

#define YARD_HIST_SUB 16            /*  sub-buckets per power of two   */
#define YARD_HIST_BUCKETS (64 * 16) /*  covers all of uint64           */

typedef struct {
    uint64_t count;                      /*  values recorded            */
    uint64_t sum;                        /*  their sum (saturating)     */
    uint64_t min;                        /*  smallest, UINT64_MAX if none */
    uint64_t max;                        /*  largest, 0 if none         */
    uint64_t buckets[YARD_HIST_BUCKETS]; /*  counts per bucket          */
} yard_hist_t;

/*  Empties the histogram. */
void yard_hist_reset(yard_hist_t *self);

/*  Records one value. */
void yard_hist_record(yard_hist_t *self, uint64_t value);

/*  The value at percentile p (0..100): the upper bound of the bucket
    holding that rank, clamped to [min, max]. 0 when empty. */
uint64_t yard_hist_percentile(const yard_hist_t *self, double p);

/*  Mean of recorded values, 0 when empty. */
double yard_hist_mean(const yard_hist_t *self);

/*  Adds every count of src into dst. */
void yard_hist_merge(yard_hist_t *dst, const yard_hist_t *src);

#endif
