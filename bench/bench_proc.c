/*  bench_proc.c — the bench's own child processes (and the CPU time they
    use, read from /proc, which is how the report splits a task's cost
    between clients, server and workers).

    Every process the bench starts is registered here by PID, with a log
    file in the run's temp dir, so that whatever happens the bench can
    stop exactly its own children and nothing else:

      * normal path: bench_proc_stop(pid) / bench_proc_stop_many() send
        one SIGTERM, wait with a bound, then SIGKILL; for Yard processes
        an unclean end (crash, hang, sanitizer report) is reported;
        bench_proc_stop_all() does that for whatever is left;
      * SIGINT / SIGTERM to the bench, or the hard time bound (SIGALRM):
        the handler SIGKILLs every registered child and _exits, using only
        async-signal-safe calls;
      * the bench itself killed with SIGKILL: each child was started with
        PR_SET_PDEATHSIG = SIGKILL, so the kernel ends it.

    Children are spawned from the main thread only (PDEATHSIG fires when
    the *thread* that forked exits). */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <dirent.h>

#include "yard_clock.h"

#define BENCH_MAX_CHILDREN 64

typedef struct {
    volatile pid_t pid;   /*  0: free slot; read by signal handlers   */
    volatile int running; /*  not yet reaped                           */
    int status;           /*  wait status once reaped                  */
    char name[32];
    char log[PATH_MAX + 64];
} s_child_t;

static s_child_t s_children[BENCH_MAX_CHILDREN];
static char s_dir[PATH_MAX];
static volatile sig_atomic_t s_stop;
static int s_unclean;
static bool s_verbose;

void bench_set_verbose(bool verbose)
{
    s_verbose = verbose;
}

void bench_note(const char *fmt, ...)
{
    if (!s_verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("yard-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool bench_stopping(void)
{
    return s_stop != 0;
}

void bench_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !s_stop)
        ;
}

/*  Async-signal-safe: kill every registered child, say why, leave. The
    temp dir stays, so its logs can be read. */
static void s_kill_all_now(void)
{
    for (int i = 0; i < BENCH_MAX_CHILDREN; i++) {
        pid_t pid = s_children[i].pid;
        if (pid > 0 && s_children[i].running)
            kill(pid, SIGKILL);
    }
}

static void s_on_signal(int sig)
{
    s_stop = 1;
    s_kill_all_now();
    const char *msg = sig == SIGALRM
                          ? "yard-bench: time bound reached; children "
                            "killed, giving up\n"
                          : "yard-bench: interrupted; children killed\n";
    ssize_t w = write(STDERR_FILENO, msg, strlen(msg));
    (void)w;
    _exit(sig == SIGALRM ? 3 : 128 + sig);
}

int bench_proc_init(unsigned budget_s)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    snprintf(s_dir, sizeof(s_dir), "%s/yard-bench.XXXXXX", tmp);
    if (!mkdtemp(s_dir)) {
        fprintf(stderr, "yard-bench: cannot make a temp dir in %s: %s\n", tmp,
                strerror(errno));
        return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    /*  A broker that went away must not kill us through a socket write. */
    signal(SIGPIPE, SIG_IGN);
    alarm(budget_s);
    return 0;
}

const char *bench_proc_dir(void)
{
    return s_dir;
}

void bench_proc_finish(bool keep)
{
    if (!s_dir[0])
        return;
    if (keep) {
        fprintf(stderr, "yard-bench: logs kept in %s\n", s_dir);
        return;
    }
    DIR *d = opendir(s_dir);
    if (d) {
        struct dirent *e;
        char path[PATH_MAX + 256];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", s_dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(s_dir);
}

int bench_bin_dir(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = 0;
    if ((size_t)snprintf(out, cap, "%s", exe) >= cap)
        return -1;
    return 0;
}

bool bench_bin_path(const char *name, char *out, size_t cap)
{
    char dir[PATH_MAX];
    if (bench_bin_dir(dir, sizeof(dir)) != 0)
        return false;
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        return false;
    return access(out, X_OK) == 0;
}

bool bench_which(const char *name, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len > 0 &&
            (size_t)snprintf(out, cap, "%.*s/%s", (int)len, path, name) < cap &&
            access(out, X_OK) == 0)
            return true;
        path += len;
        if (*path == ':')
            path++;
    }
    return false;
}

static s_child_t *s_find(pid_t pid)
{
    for (int i = 0; i < BENCH_MAX_CHILDREN; i++)
        if (s_children[i].pid == pid && pid > 0)
            return &s_children[i];
    return NULL;
}

/*  Reserves a slot and opens the child's log before forking, so that the
    child does nothing between fork and exec but async-signal-safe calls. */
static s_child_t *s_prepare(const char *name, int *log_fd)
{
    s_child_t *c = NULL;
    for (int i = 0; i < BENCH_MAX_CHILDREN && !c; i++)
        if (s_children[i].pid == 0)
            c = &s_children[i];
    if (!c) {
        fprintf(stderr, "yard-bench: too many child processes\n");
        return NULL;
    }
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->log, sizeof(c->log), "%s/%s.log", s_dir, name);
    *log_fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (*log_fd < 0) {
        fprintf(stderr, "yard-bench: cannot open %s: %s\n", c->log,
                strerror(errno));
        return NULL;
    }
    /*  Buffered output would otherwise be written twice (parent and
        forked child). */
    fflush(stdout);
    fflush(stderr);
    return c;
}

/*  In the child: die with the parent, logs to the file, no stdin, default
    signal dispositions (ours kill our siblings; SIG_IGN would be
    inherited across exec). */
static void s_child_setup(pid_t parent, int log_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    alarm(0);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
        dup2(null_fd, STDIN_FILENO);
        if (null_fd != STDIN_FILENO)
            close(null_fd);
    }
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
}

static void s_child_registered(s_child_t *c, pid_t pid)
{
    c->running = 1;
    c->pid = pid; /*  last: the handlers look at pid */
}

int bench_proc_spawn(const char *name, char *const argv[], pid_t *pid_out)
{
    int log_fd;
    s_child_t *c = s_prepare(name, &log_fd);
    if (!c)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "yard-bench: fork: %s\n", strerror(errno));
        close(log_fd);
        return -1;
    }
    if (pid == 0) {
        s_child_setup(parent, log_fd);
        execv(argv[0], argv);
        static const char msg[] = "yard-bench: exec failed\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(127);
    }
    close(log_fd);
    s_child_registered(c, pid);
    *pid_out = pid;
    bench_note("started %s (pid %d)", name, (int)pid);
    return 0;
}

int bench_proc_fork(const char *name, int (*fn)(void *arg), void *arg,
                    pid_t *pid_out)
{
    int log_fd;
    s_child_t *c = s_prepare(name, &log_fd);
    if (!c)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "yard-bench: fork: %s\n", strerror(errno));
        close(log_fd);
        return -1;
    }
    if (pid == 0) {
        s_child_setup(parent, log_fd);
        close(log_fd);
        /*  Its own name in ps, top and perf (it is not exec'd). */
        prctl(PR_SET_NAME, name);
        /*  The parent's children are not ours to kill. */
        memset((void *)s_children, 0, sizeof(s_children));
        int rc = fn(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    close(log_fd);
    s_child_registered(c, pid);
    *pid_out = pid;
    bench_note("started %s (pid %d)", name, (int)pid);
    return 0;
}

static bool s_reap(s_child_t *c, int flags)
{
    if (!c->running)
        return true;
    int status;
    pid_t r;
    do
        r = waitpid(c->pid, &status, flags);
    while (r < 0 && errno == EINTR);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->status = r == c->pid ? status : -1;
        c->running = 0;
        return true;
    }
    return false;
}

bool bench_proc_alive(pid_t pid)
{
    s_child_t *c = s_find(pid);
    if (!c)
        return false;
    return !s_reap(c, WNOHANG);
}

/*  Waits for every child in cs[] to be reaped, up to ms. */
static bool s_wait_all(s_child_t **cs, int n, int ms)
{
    int64_t deadline = yard_clock_ms() + ms;
    for (;;) {
        bool all = true;
        for (int i = 0; i < n; i++)
            if (!s_reap(cs[i], WNOHANG))
                all = false;
        if (all)
            return true;
        if (yard_clock_ms() >= deadline)
            return false;
        struct timespec ts = {0, 2 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void s_release(s_child_t *c)
{
    c->pid = 0;
}

/*  Says why a checked child's end was not clean, if it was not. */
static void s_check_exit(s_child_t *c, bool killed)
{
    int status = c->running ? -1 : c->status;
    if (!killed && status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return;
    s_unclean++;
    if (killed)
        fprintf(stderr, "yard-bench: warning: %s (pid %d) had to be killed\n",
                c->name, (int)c->pid);
    else if (status >= 0 && WIFSIGNALED(status))
        fprintf(stderr, "yard-bench: warning: %s (pid %d) died of signal %d\n",
                c->name, (int)c->pid, WTERMSIG(status));
    else
        fprintf(stderr,
                "yard-bench: warning: %s (pid %d) exited with "
                "status %d\n",
                c->name, (int)c->pid,
                status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    bench_proc_tail(c->pid, 12);
}

int bench_proc_stop_many(const pid_t *pids, int n, int term_ms, bool check)
{
    s_child_t *cs[BENCH_MAX_CHILDREN];
    int m = 0;
    /*  One SIGTERM each, all at once so they stop in parallel. Never a
        second one: programs commonly take a second SIGTERM as "die now",
        which would turn a clean stop into a kill. */
    for (int i = 0; i < n && m < BENCH_MAX_CHILDREN; i++) {
        s_child_t *c = s_find(pids[i]);
        if (!c)
            continue;
        if (c->running)
            kill(c->pid, SIGTERM);
        cs[m++] = c;
    }
    bool killed[BENCH_MAX_CHILDREN] = {false};
    if (!s_wait_all(cs, m, term_ms)) {
        for (int i = 0; i < m; i++) {
            if (!cs[i]->running)
                continue;
            fprintf(stderr,
                    "yard-bench: %s (pid %d) did not stop in %d ms; "
                    "SIGKILL\n",
                    cs[i]->name, (int)cs[i]->pid, term_ms);
            kill(cs[i]->pid, SIGKILL);
            killed[i] = true;
        }
        s_wait_all(cs, m, 5000);
    }
    int status = m == 1 && !cs[0]->running ? cs[0]->status : -1;
    for (int i = 0; i < m; i++) {
        if (check)
            s_check_exit(cs[i], killed[i]);
        if (!cs[i]->running)
            s_release(cs[i]);
    }
    return status;
}

int bench_proc_stop(pid_t pid, int term_ms, bool check)
{
    return s_find(pid) ? bench_proc_stop_many(&pid, 1, term_ms, check) : -1;
}

int bench_proc_unclean(void)
{
    return s_unclean;
}

void bench_proc_stop_all(void)
{
    s_child_t *cs[BENCH_MAX_CHILDREN];
    int n = 0;
    for (int i = 0; i < BENCH_MAX_CHILDREN; i++) {
        s_child_t *c = &s_children[i];
        if (c->pid > 0 && c->running) {
            kill(c->pid, SIGTERM);
            cs[n++] = c;
        }
    }
    if (n == 0)
        return;
    if (!s_wait_all(cs, n, 3000)) {
        for (int i = 0; i < n; i++)
            if (cs[i]->running)
                kill(cs[i]->pid, SIGKILL);
        s_wait_all(cs, n, 5000);
    }
    for (int i = 0; i < n; i++)
        if (!cs[i]->running)
            s_release(cs[i]);
}

const char *bench_proc_log(pid_t pid)
{
    s_child_t *c = s_find(pid);
    return c ? c->log : "";
}

void bench_proc_tail(pid_t pid, int lines)
{
    s_child_t *c = s_find(pid);
    if (!c)
        return;
    FILE *f = fopen(c->log, "r");
    if (!f)
        return;
    /*  Logs are small; keep a ring of the last `lines` lines. */
    char ring[16][256];
    if (lines > 16)
        lines = 16;
    int count = 0;
    char buf[256];
    while (fgets(buf, sizeof(buf), f))
        snprintf(ring[count++ % lines], sizeof(ring[0]), "%s", buf);
    fclose(f);
    fprintf(stderr, "--- last lines of %s ---\n", c->log);
    int first = count > lines ? count - lines : 0;
    for (int i = first; i < count; i++)
        fputs(ring[i % lines], stderr);
}

int bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof(a);
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int64_t bench_proc_cpu_us(pid_t pid, int64_t *system_us)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /*  The command name may hold spaces and parentheses: fields are
        counted from the last ')'. utime and stime are fields 14 and 15,
        the 12th and 13th after it, in clock ticks. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime, stime;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &utime, &stime) != 2)
        return -1;
    unsigned long long hz = (unsigned long long)sysconf(_SC_CLK_TCK);
    *system_us += (int64_t)(stime * 1000000ULL / hz);
    return (int64_t)((utime + stime) * 1000000ULL / hz);
}

int64_t bench_self_cpu_us(int64_t *system_us)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    *system_us += (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    return (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
           (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

void bench_cpu_sample(bench_cpu_t *out, pid_t server, const pid_t *workers,
                      uint32_t nworkers)
{
    out->system_us = 0;
    out->clients_us = bench_self_cpu_us(&out->system_us);
    out->server_us = bench_proc_cpu_us(server, &out->system_us);
    out->workers_us = 0;
    for (uint32_t i = 0; i < nworkers; i++)
        out->workers_us += bench_proc_cpu_us(workers[i], &out->system_us);
}
