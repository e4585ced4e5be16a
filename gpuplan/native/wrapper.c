/* gpuplan-wrapper: the per-attempt wrapper of gpuplan/executor/_wrapper.py, compiled.
 *
 *     gpuplan-wrapper DIR LOG NOTIFY FENCE_PPID STARTED_FD CWD -- ARGV...
 *
 * NOTIFY and CWD are "" for none, FENCE_PPID 0 for no fence, STARTED_FD -1 for none. The spawner
 * (`_wrapper.serve --native=PATH`) starts it with posix_spawn in a session of its own, stdin and
 * stdout on /dev/null, stderr on the spawner's log. It does what the forked Python wrapper does, the
 * same files in the same order (see _wrapper.py, steps 1 to 4):
 *
 * 1. claims DIR/claim exclusively: {"pid", "t", "start"} (start: field 22 of /proc/self/stat);
 *    an existing claim (a restarted executor cancelled the attempt) ends it at once;
 * 2. starts ARGV (PATH searched in its environment, which is the task's), stdin /dev/null, stdout
 *    and stderr appended to LOG, in CWD; writes DIR/started {"child_pid", "t"}; closes STARTED_FD;
 *    a task that cannot start: "gpuplan: cannot start ..." in LOG, exit record rc 127 with "error";
 * 3. waits; SIGTERM and SIGINT reach it through the process group and are caught by a handler that
 *    does nothing (exec resets it: the task keeps the default); with FENCE_PPID, the kernel sends
 *    it SIGRTMAX - 2 when the spawner ends, and then it records rc -9 "fenced" and kills the group;
 * 4. writes DIR/exit atomically and durably (temporary file, fsync, rename): {"rc", "t"}, rc the
 *    exit code or minus the signal; then creates NOTIFY.
 *
 * Why compiled: a Python wrapper forked from the spawner shares the spawner's pages until its task
 * ends, and both of them copy every page they touch meanwhile: some 4 ms of CPU per launch on the
 * benchmarks' 2 cores, where this program, spawned (vfork and exec), costs under 1 ms
 * (benchmarks/README.md, *Task start-up and the compiled wrapper*).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *g_dir;
static const char *g_notify;
static volatile sig_atomic_t g_fence_armed;

/* Unsigned decimal of v into buf (no terminator); its length. Async-signal-safe. */
static size_t put_u(char *buf, unsigned long long v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    return n;
}

/* "s.nnnnnn": the wall-clock time, as Python's time.time() would give it. Async-signal-safe. */
static size_t put_now(char *buf) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = put_u(buf, (unsigned long long)ts.tv_sec);
    unsigned long us = (unsigned long)(ts.tv_nsec / 1000);
    buf[n++] = '.';
    for (unsigned long d = 100000; d; d /= 10) buf[n++] = (char)('0' + (us / d) % 10);
    return n;
}

static size_t put_s(char *buf, const char *s) {
    size_t n = strlen(s);
    memcpy(buf, s, n);
    return n;
}

/* s as a JSON string's contents: quotes, backslashes, control and non-ASCII bytes escaped. */
static size_t put_json(char *buf, size_t cap, const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)*p;
        } else if (*p < 0x20 || *p >= 0x7f) {
            n += put_s(buf + n, "\\u00");
            buf[n++] = hex[*p >> 4];
            buf[n++] = hex[*p & 15];
        } else {
            buf[n++] = (char)*p;
        }
    }
    return n;
}

static size_t join(char *buf, size_t cap, const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    if (a + b + 2 > cap) return 0;
    memcpy(buf, dir, a);
    buf[a] = '/';
    memcpy(buf + a + 1, name, b + 1);
    return a + 1 + b;
}

/* Write data to DIR/name through DIR/name.tmp and a rename; fsync first when durable. 0 or -1.
 * Async-signal-safe (the fence calls it from its handler). */
static int write_atomic(const char *name, const char *data, size_t len, int durable) {
    char path[4096], tmp[4100];
    size_t n = join(path, sizeof path, g_dir, name);
    if (!n) return -1;
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    if (durable && fsync(fd) != 0) {
        close(fd);
        return -1;
    }
    if (close(fd) != 0) return -1;
    return rename(tmp, path);
}

static void say(const char *a, const char *b, const char *c) {
    char msg[8192];
    size_t n = 0;
    msg[0] = '\0';
    if (strlen(a) + strlen(b) + strlen(c) + 1 < sizeof msg) {
        n = put_s(msg, a);
        n += put_s(msg + n, b);
        n += put_s(msg + n, c);
    }
    while (n && write(2, msg, n) < 0 && errno == EINTR) {
    }
}

/* Step 4: the exit record, then the end announced at NOTIFY (a failure said on stderr).
 * `extra` is appended to the record's fields (",\"fenced\": true", or an error). Async-signal-safe
 * with an empty or constant `extra`. */
static void record_exit(long rc, const char *extra) {
    char rec[8192];
    size_t n = put_s(rec, "{\"rc\": ");
    if (rc < 0) rec[n++] = '-';
    n += put_u(rec + n, (unsigned long long)(rc < 0 ? -rc : rc));
    n += put_s(rec + n, ", \"t\": ");
    n += put_now(rec + n);
    if (strlen(extra) + n + 2 < sizeof rec) n += put_s(rec + n, extra);
    rec[n++] = '}';
    if (write_atomic("exit", rec, n, 1) != 0) say("gpuplan wrapper: cannot record the exit of ", g_dir, "\n");
    if (g_notify[0]) {
        int fd = open(g_notify, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
            say("gpuplan wrapper: cannot announce the end of ", g_dir, "\n");
        else
            close(fd);
    }
}

static void on_term(int sig) { (void)sig; }

/* The spawner is gone: record the fence and kill the task's group, this wrapper included. */
static void on_fence(int sig) {
    (void)sig;
    if (!g_fence_armed) return;
    g_fence_armed = 0;
    record_exit(-9, ", \"fenced\": true");
    killpg(getpgrp(), SIGKILL);
}

/* Field 22 of /proc/self/stat (start time in clock ticks since boot) as text, or "null". */
static void start_time(char *out, size_t cap) {
    char buf[2048];
    snprintf(out, cap, "null");
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return;
    char *save = NULL;
    char *tok = strtok_r(p + 1, " ", &save);
    for (int i = 0; tok && i < 19; i++) tok = strtok_r(NULL, " ", &save);
    if (tok) snprintf(out, cap, "%s", tok);
}

int main(int argc, char **argv) {
    if (argc < 9 || strcmp(argv[7], "--") != 0) {
        say("usage: gpuplan-wrapper DIR LOG NOTIFY FENCE_PPID STARTED_FD CWD -- ARGV...", "", "\n");
        return 2;
    }
    g_dir = argv[1];
    const char *log_path = argv[2];
    g_notify = argv[3];
    pid_t fence_ppid = (pid_t)atol(argv[4]);
    int started_fd = atoi(argv[5]);
    const char *cwd = argv[6];
    char **cmd = argv + 8;

    /* Dispositions and mask as a fresh process has them: the spawner ignores SIGCHLD and SIGINT,
     * and its interpreter SIGPIPE and SIGXFSZ; the task must not inherit those. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &sa, NULL);
#ifdef SYS_rt_sigaction
    /* glibc's sigaction refuses its internal signals (32 and 33, under SIGRTMIN), and its posix_spawn
     * leaves them ignored in the child: the kernel's call resets them (every field after the handler
     * zero, whatever the architecture's layout). */
    for (int s = 32; s < SIGRTMIN; s++) {
        struct {
            void (*handler)(int);
            unsigned long rest[3];
        } k = {SIG_DFL, {0, 0, 0}};
        syscall(SYS_rt_sigaction, s, &k, NULL, (size_t)8);
    }
#endif
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (started_fd >= 0) fcntl(started_fd, F_SETFD, FD_CLOEXEC);

    /* 1. the claim */
    char path[4096], rec[8192], start[32];
    if (!join(path, sizeof path, g_dir, "claim")) return 1;
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EEXIST) return 0; /* cancelled by a restarted executor before it started */
        say("gpuplan wrapper: cannot claim ", g_dir, "\n");
        return 1;
    }
    start_time(start, sizeof start);
    size_t n = put_s(rec, "{\"pid\": ");
    n += put_u(rec + n, (unsigned long long)getpid());
    n += put_s(rec + n, ", \"t\": ");
    n += put_now(rec + n);
    n += put_s(rec + n, ", \"start\": ");
    n += put_s(rec + n, start);
    rec[n++] = '}';
    if (write(fd, rec, n) != (ssize_t)n) say("gpuplan wrapper: short claim in ", g_dir, "\n");
    close(fd);

    sa.sa_handler = on_term; /* no SA_RESTART: the wait below retries by itself */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* 2. the start */
    int log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (log_fd < 0) {
        say("gpuplan wrapper: cannot open the log ", log_path, "\n");
        return 1;
    }
    int err_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        say("gpuplan wrapper: no pipe for ", g_dir, "\n");
        return 1;
    }
    pid_t child = fork();
    if (child == 0) {
        int what = 'e';
        sa.sa_handler = SIG_DFL;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) what = 'o';
        if (null > 2) close(null);
        if (what == 'e' && cwd[0] && chdir(cwd) != 0) what = 'c';
        if (what == 'e') execvp(cmd[0], cmd);
        int e[2] = {errno, what};
        while (write(err_pipe[1], e, sizeof e) < 0 && errno == EINTR) {
        }
        _exit(127);
    }
    int failed[2] = {0, 0};
    if (child < 0) {
        failed[0] = errno;
        failed[1] = 'f';
    } else {
        close(err_pipe[1]);
        ssize_t r;
        while ((r = read(err_pipe[0], failed, sizeof failed)) < 0 && errno == EINTR) {
        }
        if (r != (ssize_t)sizeof failed) failed[1] = 0; /* end of file: the exec succeeded */
    }
    if (failed[1]) {
        if (child > 0)
            while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
            }
        /* as Python words an OSError: [Errno N] text: 'name' */
        const char *name = failed[1] == 'c' ? cwd : cmd[0];
        char text[4096], msg[8192], field[8192];
        if (failed[1] == 'f' || failed[1] == 'o')
            snprintf(text, sizeof text, "[Errno %d] %s", failed[0], strerror(failed[0]));
        else
            snprintf(text, sizeof text, "[Errno %d] %s: '%s'", failed[0], strerror(failed[0]), name);
        int m = snprintf(msg, sizeof msg, "gpuplan: cannot start '%s': %s\n", cmd[0], text);
        if (m > 0 && write(log_fd, msg, (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1) < 0)
            say("gpuplan wrapper: cannot write the log ", log_path, "\n");
        size_t k = put_s(field, ", \"error\": \"");
        k += put_json(field + k, sizeof field - k - 2, text);
        field[k++] = '"';
        field[k] = '\0';
        record_exit(127, field);
        return 0;
    }
    n = put_s(rec, "{\"child_pid\": ");
    n += put_u(rec + n, (unsigned long long)child);
    n += put_s(rec + n, ", \"t\": ");
    n += put_now(rec + n);
    rec[n++] = '}';
    if (write_atomic("started", rec, n, 0) != 0) say("gpuplan wrapper: cannot record the start of ", g_dir, "\n");
    if (started_fd >= 0) close(started_fd); /* the spawner's wait for this batch's starts */

    /* 3. the wait, fenced: the kernel signals this process when its parent ends */
    int polled = 0;
    int fence_sig = SIGRTMAX - 2;
    if (fence_ppid > 0) {
        sa.sa_handler = on_fence;
        sigaction(fence_sig, &sa, NULL);
        g_fence_armed = 1;
        if (prctl(PR_SET_PDEATHSIG, fence_sig, 0, 0, 0) != 0) {
            say("gpuplan wrapper: no parent-death signal (", strerror(errno), "); fence checks every 0.5 s\n");
            polled = 1;
        }
        if (getppid() != fence_ppid) on_fence(fence_sig);
    }
    int status = 0;
    for (;;) {
        pid_t r = waitpid(child, &status, polled ? WNOHANG : 0);
        if (r == child) break;
        if (r < 0 && errno != EINTR) {
            say("gpuplan wrapper: cannot wait for the task of ", g_dir, "\n");
            return 1;
        }
        if (polled && r == 0) {
            if (getppid() != fence_ppid) on_fence(fence_sig);
            struct timespec half = {0, 500000000L};
            nanosleep(&half, NULL);
        }
    }
    g_fence_armed = 0;
    signal(fence_sig, SIG_IGN); /* the task has ended: its exit code is what to record */

    /* 4. the exit record */
    long rc = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
    record_exit(rc, "");
    return 0;
}
