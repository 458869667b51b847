/*  yard_backoff.c — exponential backoff with jitter. Computed in 64-bit
    integers and doubles with explicit caps, so any step (even 2^32 - 1)
    gives a defined, capped result and never overflows or shifts past the
    width of a type. */
#include "yard_backoff.h"

#include <math.h>

uint32_t yard_backoff_ms(uint32_t base_ms, uint32_t step, uint32_t cap_ms,
                         double jitter, yard_rand_t *rng)
{
    if (base_ms == 0)
        return 0;
    if (step == 0)
        step = 1;
    /*  base * 2^(step-1) capped: once the doubling passes the cap (at most
        32 doublings from base >= 1 to cap < 2^32), stop shifting. */
    uint64_t delay = base_ms;
    for (uint32_t i = 1; i < step && delay < cap_ms; i++)
        delay <<= 1;
    if (delay > cap_ms)
        delay = cap_ms;
    /*  NaN or out-of-range jitter is clamped, not trusted: it may come
        from a config file. */
    if (!(jitter > 0) || !rng)
        return (uint32_t)delay;
    if (jitter > 1)
        jitter = 1;
    double factor = 1.0 - jitter + 2.0 * jitter * yard_rand_double(rng);
    double jittered = floor((double)delay * factor + 0.5);
    if (jittered < 0)
        jittered = 0;
    if (jittered > (double)cap_ms)
        jittered = (double)cap_ms;
    return (uint32_t)jittered;
}
