/*  yard_bucket.c — token bucket (see yard_bucket.h). */
#include "yard_bucket.h"

#define UNITS 1000000u /*  units per token */

static uint32_t s_clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/*  Adds what the time since the last refill earned, up to the burst. A
    clock that goes backwards earns nothing (and is not remembered). */
static void s_refill(yard_bucket_t *b, int64_t now_us)
{
    if (now_us <= b->last)
        return;
    uint64_t full = (uint64_t)b->burst * UNITS;
    uint64_t elapsed = (uint64_t)(now_us - b->last);
    b->last = now_us;
    if (b->units >= full)
        return;
    /*  elapsed * rate may overflow for long idle times: anything past the
        time to fill up just fills up. */
    uint64_t need = full - b->units;
    if (elapsed >= need / b->rate + 1)
        b->units = full;
    else
        b->units += elapsed * b->rate;
    if (b->units > full)
        b->units = full;
}

void yard_bucket_init(yard_bucket_t *b, uint32_t rate, uint32_t burst,
                      int64_t now_us)
{
    b->rate = rate > YARD_BUCKET_MAX_RATE ? YARD_BUCKET_MAX_RATE : rate;
    b->burst = s_clamp(burst, 1, YARD_BUCKET_MAX_BURST);
    b->units = (uint64_t)b->burst * UNITS;
    b->last = now_us;
}

void yard_bucket_set(yard_bucket_t *b, uint32_t rate, uint32_t burst,
                     int64_t now_us)
{
    bool was_limited = b->rate != 0;
    if (was_limited)
        s_refill(b, now_us);
    b->rate = rate > YARD_BUCKET_MAX_RATE ? YARD_BUCKET_MAX_RATE : rate;
    b->burst = s_clamp(burst, 1, YARD_BUCKET_MAX_BURST);
    uint64_t full = (uint64_t)b->burst * UNITS;
    /*  From no limit to a limit: a fresh, full bucket (as at init). */
    if (!was_limited || b->units > full)
        b->units = full;
    if (now_us > b->last)
        b->last = now_us;
}

bool yard_bucket_take(yard_bucket_t *b, int64_t now_us)
{
    if (b->rate == 0)
        return true;
    s_refill(b, now_us);
    if (b->units < UNITS)
        return false;
    b->units -= UNITS;
    return true;
}

int64_t yard_bucket_wait_us(yard_bucket_t *b, int64_t now_us)
{
    if (b->rate == 0)
        return 0;
    s_refill(b, now_us);
    if (b->units >= UNITS)
        return 0;
    uint64_t missing = UNITS - b->units;
    return (int64_t)((missing + b->rate - 1) / b->rate); /*  round up */
}

uint32_t yard_bucket_tokens(yard_bucket_t *b, int64_t now_us)
{
    if (b->rate == 0)
        return b->burst;
    s_refill(b, now_us);
    return (uint32_t)(b->units / UNITS);
}
