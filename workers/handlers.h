/*  handlers.h — the built-in handlers of yard-worker: echo, sleep, fail
    and flaky. They exist to demo, test and benchmark Yard, and double as
    examples of handlers written against yard_worker.h. */
#ifndef YARD_HANDLERS_H
#define YARD_HANDLERS_H

#include "yard_worker.h"

#define YARD_SLEEP_MAX_MS                                                      \
    3600000u /*  longest sleep the sleep handler takes                         \
              */
#define YARD_FLAKY_DEFAULT_RATE 0.5

/*  Settings every built-in handler receives as its handler_arg. */
typedef struct {
    double fail_rate; /*  flaky: probability of an error, 0..1 */
} yard_handlers_opts_t;

/*  One built-in handler. */
typedef struct {
    const char *name;    /*  --handler NAME, also the default service */
    yard_handler_fn *fn; /*  the handler */
    int threads;         /*  default --threads: 0 (inline) for handlers
                             that never block, -1 (one per slot) else */
    const char *help;    /*  one line for --help */
} yard_handler_def_t;

/*  The handler named name, or NULL. */
const yard_handler_def_t *yard_handler_find(const char *name);

/*  All built-in handlers; *count gets their number. */
const yard_handler_def_t *yard_handlers_all(size_t *count);

#endif
