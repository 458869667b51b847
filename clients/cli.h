/*  cli.h — shared pieces of the `yard` command-line tool: global settings,
    exit codes, the task flags several commands share, and the commands.

    Exit codes (documented in `yard --help`):
        0  success
        1  the task failed: status error or invalid (batch: any task not ok)
        2  usage error: unknown command or flag, bad number, bad input
        3  timeout
        4  rejected or circuit_open
        5  cancelled or shutdown
        6  broker unreachable: not a single message from it
      130  interrupted (SIGINT/SIGTERM); the tasks in flight are cancelled */
#ifndef YARD_CLI_H
#define YARD_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yard_client.h"

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_TIMEOUT = 3,
    CLI_EXIT_REJECTED = 4,
    CLI_EXIT_CANCELLED = 5,
    CLI_EXIT_UNREACHABLE = 6,
    CLI_EXIT_INTERRUPTED = 130,
};

/*  Without any word from the broker for this long, a command that waits
    on one task reports it unreachable (a live broker answers our
    heartbeat within one interval, so this is generous). */
#define CLI_UNREACHABLE_MS 5000

/*  Settings from the global flags and the environment. */
typedef struct {
    const char *broker; /*  task endpoint: --broker > YARD_BROKER > default */
    const char *events; /*  events endpoint: --events > YARD_EVENTS > default */
} cli_global_t;

/*  Task flags shared by submit and batch, parsed into client options. */
typedef struct {
    yard_submit_opts_t opts; /*  what the client library gets           */
    const char *headers[2 * YARD_MAX_HEADERS + 1]; /* key, value, ..., NULL */
    char *header_text[YARD_MAX_HEADERS];           /* copies split at '=' */
    size_t nheaders; /*  --header flags seen                    */
    /*  --cache and --cache-*: the response-cache policy (views of argv). */
    yard_cache_opts_t cache;
    const char *cache_lists[4][YARD_CACHE_MAX_NAMES + 1]; /* tag, key,
                                                    exclude, header; NULL-
                                                    terminated */
    size_t cache_counts[4];
} cli_task_flags_t;

/*  getopt_long codes of the shared task flags. */
enum {
    CLI_OPT_TIMEOUT = 0x100,
    CLI_OPT_RETRIES,
    CLI_OPT_BACKOFF,
    CLI_OPT_PRIORITY,
    CLI_OPT_HEADER,
    CLI_OPT_ID,
    CLI_OPT_WINDOW,
    CLI_OPT_JSON,
    CLI_OPT_CACHE,
    CLI_OPT_CACHE_TTL,
    CLI_OPT_CACHE_TAG,
    CLI_OPT_CACHE_KEY,
    CLI_OPT_CACHE_EXCLUDE,
    CLI_OPT_CACHE_HEADER,
};

/*  The getopt_long entries of the cache flags, and their help text. */
#define CLI_CACHE_LONGOPTS                                                     \
    {"cache", no_argument, NULL, CLI_OPT_CACHE},                               \
        {"cache-ttl", required_argument, NULL, CLI_OPT_CACHE_TTL},             \
        {"cache-tag", required_argument, NULL, CLI_OPT_CACHE_TAG},             \
        {"cache-key", required_argument, NULL, CLI_OPT_CACHE_KEY},             \
        {"cache-exclude", required_argument, NULL, CLI_OPT_CACHE_EXCLUDE},     \
    {                                                                          \
        "cache-header", required_argument, NULL, CLI_OPT_CACHE_HEADER          \
    }
#define CLI_CACHE_HELP                                                         \
    "  --cache        cache the result (PROTOCOL.md 10b): an identical task\n" \
    "                 is answered from yard.cache without running; any\n"      \
    "                 --cache-* flag implies it\n"                             \
    "  --cache-ttl MS how long the result is kept, 1..86400000 (default:\n"    \
    "                 the cache's)\n"                                          \
    "  --cache-tag T  tag the cached result (for invalidate-tag); "            \
    "repeatable\n"                                                             \
    "  --cache-key F  only payload field F (payload: a msgpack map) makes\n"   \
    "                 up the key; repeatable\n"                                \
    "  --cache-exclude F  every payload field but F makes up the key;\n"       \
    "                 repeatable, not with --cache-key\n"                      \
    "  --cache-header H  header H's value is part of the key too; "            \
    "repeatable\n"

/*  Applies one shared task flag. Returns 0, or CLI_EXIT_USAGE after
    printing why on stderr (cmd names the command in the message). */
int cli_task_flag(const char *cmd, int opt, const char *arg,
                  cli_task_flags_t *flags);

/*  Frees the copies made by cli_task_flag. */
void cli_task_flags_free(cli_task_flags_t *flags);

/*  Prints "yard <cmd>: unknown option ..." for the getopt_long failure at
    argv[optind - 1] and returns CLI_EXIT_USAGE. */
int cli_bad_option(const char *cmd, char **argv, int opt);

/*  Checks a service name (1..YARD_MAX_SERVICE of [A-Za-z0-9._:-]); prints
    why not and returns CLI_EXIT_USAGE, or returns 0. */
int cli_check_service(const char *cmd, const char *service);

/*  Exit code for a task status (0 for YARD_OK). */
int cli_exit_for_status(yard_status_t status);

/*  Creates a client on g->broker, or prints why not and returns NULL. */
yard_client_t *cli_client_new(const cli_global_t *g);

/*  True once SIGINT or SIGTERM arrived (handlers installed by main). */
bool cli_interrupted(void);

/*  The commands: argv[0] is the command name. Each returns an exit code. */
int cli_submit(const cli_global_t *g, int argc, char **argv);
int cli_batch(const cli_global_t *g, int argc, char **argv);
int cli_stats(const cli_global_t *g, int argc, char **argv);
int cli_ping(const cli_global_t *g, int argc, char **argv);
int cli_breaker(const cli_global_t *g, int argc, char **argv);
int cli_publish(const cli_global_t *g, int argc, char **argv);
int cli_subscribe(const cli_global_t *g, int argc, char **argv);
int cli_cache(const cli_global_t *g, int argc, char **argv);

/*  Shared by submit and stats: waits for task id's reply, telling an
    unreachable broker (CLI_EXIT_UNREACHABLE after CLI_UNREACHABLE_MS of
    total silence) from a slow one. Sets *reply or returns an exit code
    after printing why. */
int cli_wait_one(yard_client_t *client, const cli_global_t *g, const char *id,
                 yard_reply_t **reply);

/*  One task, start to end: submits payload to service on a new client
    (opts may be NULL), waits with cli_wait_one, and reports a status
    other than ok with cli_report_failure. On 0, *reply (status ok) is the
    caller's to free; otherwise the failure was printed (prefixed
    "yard <cmd>" when the task could not be submitted: exit 2, or 1 when
    the socket failed) and its exit code is returned. */
int cli_call(const cli_global_t *g, const char *cmd, const char *service,
             const void *payload, size_t len, const yard_submit_opts_t *opts,
             yard_reply_t **reply);

/*  Reads all of stdin, at most max bytes, into *out (malloc'd, the
    caller frees it; *len bytes). 0, or an exit code after printing why:
    "yard <cmd>: <what> on stdin exceeds <max> bytes" (CLI_EXIT_USAGE),
    a read error or no memory (CLI_EXIT_FAILED). */
int cli_read_stdin(const char *cmd, const char *what, size_t max, char **out,
                   size_t *len);

/*  One admin command (PROTOCOL.md section 10): submits `command` to
    yard.admin on a new client, waits, and parses the answer as a JSON
    object. On 0, *reply and *root are the caller's to free; otherwise
    the failure was printed (prefixed "yard <cmd>") and its exit code is
    returned. */
struct json_t;
int cli_admin_call(const cli_global_t *g, const char *cmd, const char *command,
                   uint32_t timeout_ms, yard_reply_t **reply,
                   struct json_t **root);

/*  Prints "yard: <status>: <error>" for a failed reply and returns its
    exit code. */
int cli_report_failure(const yard_reply_t *reply);

#endif
