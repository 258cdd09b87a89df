/*
 * The harness's portability layer: see system.h.
 */
#include "system.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void close_inherited_files(int keep)
{
    for (long fd = 3, last = sysconf(_SC_OPEN_MAX); fd < last && fd < 65536; fd++) {
        if (fd != keep)
            close((int)fd);
    }
}

bool watcher_start(struct watcher *w, pid_t server)
{
    int line[2];

    w->pid = 0;
    w->pipe = -1;
    if (pipe(line) != 0)
        return false;
    pid_t pid = fork();
    if (pid < 0) {
        int error = errno;
        close(line[0]);
        close(line[1]);
        errno = error;
        return false;
    }
    if (pid == 0) {
        char word;
        ssize_t n;
        close_inherited_files(line[0]);
        /* A byte: the test reaped the server itself. The end of the pipe with no byte: the
           test process is gone, and its server must go too. */
        while ((n = read(line[0], &word, 1)) < 0 && errno == EINTR)
            continue;
        if (n == 0)
            kill(server, SIGKILL);
        _exit(0);
    }
    close(line[0]);
    fcntl(line[1], F_SETFD, FD_CLOEXEC);
    w->pid = pid;
    w->pipe = line[1];
    return true;
}

void watcher_stop(struct watcher *w)
{
    if (w->pipe < 0)
        return;
    while (write(w->pipe, "x", 1) < 0 && errno == EINTR)
        continue;
    close(w->pipe);
    w->pipe = -1;
    while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
        continue;
    w->pid = 0;
}

const char *signal_name(int signal)
{
    static const struct {
        int number;
        const char *name;
    } names[] = {
        {SIGABRT, "SIGABRT"}, {SIGALRM, "SIGALRM"},     {SIGBUS, "SIGBUS"},   {SIGCHLD, "SIGCHLD"},
        {SIGCONT, "SIGCONT"}, {SIGFPE, "SIGFPE"},       {SIGHUP, "SIGHUP"},   {SIGILL, "SIGILL"},
        {SIGINT, "SIGINT"},   {SIGKILL, "SIGKILL"},     {SIGPIPE, "SIGPIPE"}, {SIGPROF, "SIGPROF"},
        {SIGQUIT, "SIGQUIT"}, {SIGSEGV, "SIGSEGV"},     {SIGSTOP, "SIGSTOP"}, {SIGSYS, "SIGSYS"},
        {SIGTERM, "SIGTERM"}, {SIGTRAP, "SIGTRAP"},     {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
        {SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"},       {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"},
        {SIGXCPU, "SIGXCPU"}, {SIGVTALRM, "SIGVTALRM"}, {SIGXFSZ, "SIGXFSZ"},
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i].number == signal)
            return names[i].name;
    }
    return NULL;
}

/* ---- Measures: Linux's /proc ------------------------------------------------------------ */

const char SYSTEM_CANNOT_MEASURE[] =
    "Such tests measure the server from outside (its memory, threads, open files, CPU time) "
    "through /proc, which this system does not have; they run on Linux, and in the "
    "repository's dev container.";

/* A field of /proc/PID/status, "VmHWM" or "Threads", as a number. */
static bool status_field(pid_t pid, const char *field, long *value)
{
    char path[64], line[256];
    size_t len = strlen(field);
    bool found = false;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *status = fopen(path, "r");
    if (status == NULL)
        return false;
    while (!found && fgets(line, sizeof line, status) != NULL) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            *value = strtol(line + len + 1, NULL, 10);
            found = true;
        }
    }
    fclose(status);
    return found;
}

bool system_can_measure(void)
{
    long value;
    int files;
    long long ms;
    pid_t self = getpid();

    return status_field(self, "VmHWM", &value) && status_field(self, "Threads", &value) &&
           measure_open_files(self, &files) && measure_cpu_ms(self, &ms);
}

bool measure_peak_memory_kb(pid_t pid, long *kb)
{
    return status_field(pid, "VmHWM", kb);
}

bool measure_memory_kb(pid_t pid, long *kb)
{
    return status_field(pid, "VmRSS", kb);
}

bool measure_threads(pid_t pid, long *threads)
{
    return status_field(pid, "Threads", threads);
}

bool measure_open_files(pid_t pid, int *files)
{
    char path[64];

    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return false;
    *files = 0;
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;)
        *files += entry->d_name[0] != '.';
    closedir(dir);
    return true;
}

bool measure_cpu_ms(pid_t pid, long long *ms)
{
    char path[64], text[1024];
    unsigned long long user, system;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *stat = fopen(path, "r");
    if (stat == NULL)
        return false;
    size_t n = fread(text, 1, sizeof text - 1, stat);
    fclose(stat);
    text[n] = '\0';
    /* The command's name, in parentheses, may hold spaces: count the fields after it. */
    const char *at = strrchr(text, ')');
    if (at == NULL || sscanf(at + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &user,
                             &system) != 2)
        return false;
    *ms = (long long)((user + system) * 1000 / (unsigned long long)sysconf(_SC_CLK_TCK));
    return true;
}
