/*  yard_backoff.h — exponential backoff with jitter, shared by broker
    retries, client resends, worker reconnects and (later) breakers. */
#ifndef YARD_BACKOFF_H
#define YARD_BACKOFF_H

#include <stdint.h>

#include "yard_rand.h"

/*  Delay before attempt number `step` (1 = first retry):
        base_ms * 2^(step-1), capped at cap_ms, then multiplied by a
        uniform factor in [1 - jitter, 1 + jitter] (jitter in 0..1),
        and capped at cap_ms again.
    base_ms 0 gives 0. step 0 is treated as 1. rng may be NULL for no
    jitter. Never overflows. */
uint32_t yard_backoff_ms(uint32_t base_ms, uint32_t step, uint32_t cap_ms,
                         double jitter, yard_rand_t *rng);

#endif
