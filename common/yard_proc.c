/*  yard_proc.c — loop and memory accounting for process reports. */
#include "yard_proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t s_env_ms(const char *name, int64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 1 || n > 3600000)
        return dflt;
    return n;
}

void yard_proc_init(yard_proc_t *self, int64_t now_us)
{
    memset(self, 0, sizeof(*self));
    self->slow_us =
        s_env_ms("YARD_LOOP_SLOW_MS", YARD_PROC_DEFAULT_SLOW_MS) * 1000;
    self->stall_us =
        s_env_ms("YARD_LOOP_STALL_MS", YARD_PROC_DEFAULT_STALL_MS) * 1000;
    self->started_us = now_us;
    self->busy_since = now_us;
    yard_proc_sample(self, now_us);
}

static void s_stall(yard_proc_t *self, uint64_t len_us, int64_t now_us)
{
    self->stalls++;
    self->last_stall_us = len_us;
    self->last_stall_at = now_us;
}

void yard_proc_poll_enter(yard_proc_t *self, int64_t now_us, long timeout_ms)
{
    if (self->busy_since) {
        uint64_t busy = now_us > self->busy_since
                            ? (uint64_t)(now_us - self->busy_since)
                            : 0;
        self->busy_us += busy;
        if (busy > self->max_busy_us)
            self->max_busy_us = busy;
        if ((int64_t)busy >= self->slow_us)
            self->slow++;
        if ((int64_t)busy >= self->stall_us)
            s_stall(self, busy, now_us);
    }
    self->busy_since = 0;
    self->wake_due = timeout_ms >= 0 ? now_us + (int64_t)timeout_ms * 1000 : 0;
}

void yard_proc_poll_leave(yard_proc_t *self, int64_t now_us)
{
    self->iterations++;
    if (self->wake_due && now_us > self->wake_due) {
        uint64_t lag = (uint64_t)(now_us - self->wake_due);
        if (lag > self->max_lag_us)
            self->max_lag_us = lag;
        if ((int64_t)lag >= self->stall_us)
            s_stall(self, lag, now_us);
    }
    self->wake_due = 0;
    self->busy_since = now_us ? now_us : 1;
}

void yard_proc_add_rss(yard_proc_t *self, uint64_t rss_bytes)
{
    self->rss = rss_bytes;
    if (rss_bytes > self->rss_peak)
        self->rss_peak = rss_bytes;
    uint64_t kib = rss_bytes / 1024;
    self->ring[self->ring_pos] = kib > UINT32_MAX ? UINT32_MAX : (uint32_t)kib;
    self->ring_pos = (self->ring_pos + 1) % YARD_PROC_WINDOW_S;
    if (self->ring_len < YARD_PROC_WINDOW_S)
        self->ring_len++;
}

void yard_proc_sample(yard_proc_t *self, int64_t now_us)
{
    if (now_us < self->next_sample)
        return;
    self->next_sample = now_us + (int64_t)YARD_PROC_SAMPLE_MS * 1000;
    yard_proc_add_rss(self, yard_proc_read_rss());
}

uint64_t yard_proc_rss_growth(const yard_proc_t *self)
{
    if (self->ring_len == 0)
        return 0;
    uint32_t low = UINT32_MAX;
    for (size_t i = 0; i < self->ring_len; i++)
        if (self->ring[i] < low)
            low = self->ring[i];
    uint64_t now_kib = self->rss / 1024;
    return now_kib > low ? (now_kib - low) * 1024 : 0;
}

uint64_t yard_proc_window_ms(const yard_proc_t *self)
{
    return self->ring_len ? (uint64_t)(self->ring_len - 1) * YARD_PROC_SAMPLE_MS
                          : 0;
}

uint64_t yard_proc_stall_age_ms(const yard_proc_t *self, int64_t now_us)
{
    if (!self->last_stall_at)
        return UINT64_MAX;
    return now_us > self->last_stall_at
               ? (uint64_t)(now_us - self->last_stall_at) / 1000
               : 0;
}

uint64_t yard_proc_read_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}
