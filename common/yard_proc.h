/*  yard_proc.h — how healthy this process is: its event loop (iteration
    time, slow iterations, stalls) and its memory (resident size and its
    growth), for the reports every Yard process sends (PROTOCOL.md 8.8).

    The loop that owns a yard_proc_t calls yard_proc_poll_enter just before
    it blocks in zmq_poll (with the timeout it passes) and
    yard_proc_poll_leave just after. The time between leave and the next
    enter is the iteration's busy time. Two things count as a stall:
      - an iteration busy for stall_us or more (a handler or a lock that
        blocked the loop);
      - a poll that returned stall_us or more past its own deadline (the
        process did not run at all: stopped, swapped out, starved).
    The second is what catches a SIGSTOP or a machine that froze.

    Memory is sampled at most once per YARD_PROC_SAMPLE_MS by
    yard_proc_sample; growth is the resident size now minus the smallest
    sample of the last YARD_PROC_WINDOW_S seconds, so a process that grew
    once and then held steady stops showing growth after one window.

    Not thread-safe: one loop owns it; others read a copy made by that
    loop. */
#ifndef YARD_PROC_H
#define YARD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define YARD_PROC_DEFAULT_SLOW_MS 50   /*  an iteration this long is slow */
#define YARD_PROC_DEFAULT_STALL_MS 500 /*  this long is a stall */
#define YARD_PROC_SAMPLE_MS 1000       /*  memory sample period */
#define YARD_PROC_WINDOW_S 300         /*  memory growth window */

typedef struct {
    /*  Settings. */
    int64_t slow_us;  /*  YARD_LOOP_SLOW_MS, default 50 ms */
    int64_t stall_us; /*  YARD_LOOP_STALL_MS, default 500 ms */

    int64_t started_us; /*  monotonic, at init */

    /*  Loop. */
    uint64_t iterations;    /*  polls returned */
    uint64_t busy_us;       /*  total time between polls */
    uint64_t max_busy_us;   /*  longest iteration */
    uint64_t slow;          /*  iterations >= slow_us */
    uint64_t stalls;        /*  stalls (see above) */
    uint64_t max_lag_us;    /*  most a poll returned past its deadline */
    uint64_t last_stall_us; /*  length of the last stall */
    int64_t last_stall_at;  /*  monotonic us when it ended, 0 = none */
    int64_t busy_since;     /*  current iteration's start, 0 in poll */
    int64_t wake_due;       /*  the poll's deadline, 0 = none */

    /*  Memory. */
    uint64_t rss;                      /*  last sample, bytes */
    uint64_t rss_peak;                 /*  largest sample */
    int64_t next_sample;               /*  monotonic us of the next sample */
    uint32_t ring[YARD_PROC_WINDOW_S]; /*  samples in KiB, oldest first */
    size_t ring_len;                   /*  samples held */
    size_t ring_pos;                   /*  where the next one goes */
} yard_proc_t;

/*  Starts the counters at now_us; reads YARD_LOOP_SLOW_MS and
    YARD_LOOP_STALL_MS from the environment (bad values: the defaults).
    Takes a first memory sample. */
void yard_proc_init(yard_proc_t *self, int64_t now_us);

/*  The loop is about to block for up to timeout_ms (< 0: no deadline). */
void yard_proc_poll_enter(yard_proc_t *self, int64_t now_us, long timeout_ms);

/*  The poll returned. */
void yard_proc_poll_leave(yard_proc_t *self, int64_t now_us);

/*  Samples the resident size when a sample is due (cheap otherwise). */
void yard_proc_sample(yard_proc_t *self, int64_t now_us);

/*  Records one resident-size sample (what yard_proc_sample does with the
    value it reads; tests feed their own). */
void yard_proc_add_rss(yard_proc_t *self, uint64_t rss_bytes);

/*  Bytes the resident size grew over the window (0 if it shrank). */
uint64_t yard_proc_rss_growth(const yard_proc_t *self);

/*  Milliseconds the window covers so far (up to YARD_PROC_WINDOW_S s). */
uint64_t yard_proc_window_ms(const yard_proc_t *self);

/*  Milliseconds since the last stall ended, or UINT64_MAX if none. */
uint64_t yard_proc_stall_age_ms(const yard_proc_t *self, int64_t now_us);

/*  This process's resident set in bytes, from /proc/self/statm (0 when
    it cannot be read). */
uint64_t yard_proc_read_rss(void);

#endif
