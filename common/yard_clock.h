/*  yard_clock.h — clocks. Every timer in Yard uses the monotonic clock;
    wall time is only for timestamps shown to people. */
#ifndef YARD_CLOCK_H
#define YARD_CLOCK_H

#include <stdint.h>

/*  Monotonic time in microseconds (CLOCK_MONOTONIC). */
int64_t yard_clock_us(void);

/*  Monotonic time in milliseconds. */
int64_t yard_clock_ms(void);

/*  Wall-clock time in milliseconds since the Unix epoch. */
int64_t yard_wallclock_ms(void);

#endif
