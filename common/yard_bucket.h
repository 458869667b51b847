/*  yard_bucket.h — a token bucket for rate limits (issue 9, design in
    proto/design/streaming.md section 2): `rate` tokens a second, at most
    `burst` held. Pure logic on a caller's clock (microseconds), exact
    integer arithmetic (a token is 1,000,000 units and a bucket gains `rate`
    units per microsecond), so a limit holds its rate over any interval
    without drift. Not thread-safe: one owner (the broker's loop). */
#ifndef YARD_BUCKET_H
#define YARD_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

#define YARD_BUCKET_MAX_RATE 1000000000u /*  tokens per second */
#define YARD_BUCKET_MAX_BURST 1000000u   /*  tokens held       */

typedef struct {
    uint32_t rate;  /*  tokens per second; 0: no limit             */
    uint32_t burst; /*  most tokens held, >= 1                     */
    uint64_t units; /*  tokens held, times 1,000,000               */
    int64_t last;   /*  clock (us) of the last refill              */
} yard_bucket_t;

/*  A full bucket. rate 0 admits everything; burst 0 is taken as 1; both
    are clamped to the maxima above. */
void yard_bucket_init(yard_bucket_t *b, uint32_t rate, uint32_t burst,
                      int64_t now_us);

/*  Changes rate and burst at run time, keeping the tokens held (cut to
    the new burst). */
void yard_bucket_set(yard_bucket_t *b, uint32_t rate, uint32_t burst,
                     int64_t now_us);

/*  Takes one token if there is one: true when admitted. */
bool yard_bucket_take(yard_bucket_t *b, int64_t now_us);

/*  Microseconds until a token will be there (0: one is there now). */
int64_t yard_bucket_wait_us(yard_bucket_t *b, int64_t now_us);

/*  Whole tokens held now. */
uint32_t yard_bucket_tokens(yard_bucket_t *b, int64_t now_us);

#endif
