/*
 * paddock pause: the infrastructure ("pause") container of every pod.
 *
 * It holds the pod's namespaces open, so it only has to:
 *   - sleep forever without using CPU (pause());
 *   - reap children, because with a shared PID namespace it is PID 1 and
 *     inherits orphans (SIGCHLD -> waitpid(WNOHANG) loop);
 *   - exit 0 on SIGTERM/SIGINT, so the runtime stops it promptly.
 * Built static (-static -Os) so the image holds nothing but /pause.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PAUSE_VERSION
#define PAUSE_VERSION "3.10"
#endif

static void write_fd(int fd, const char *s) {
    /* write(2) is async-signal-safe; stdio is not. */
    ssize_t ignored = write(fd, s, strlen(s));
    (void)ignored;
}

static void on_terminate(int sig) {
    write_fd(STDERR_FILENO, sig == SIGTERM ? "pause: got SIGTERM, exiting\n" : "pause: got SIGINT, exiting\n");
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    int saved_errno = errno;
    /* One SIGCHLD may stand for several exited children: reap them all. */
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved_errno;
}

static int install(int sig, void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
        write_fd(STDOUT_FILENO, "paddock-pause " PAUSE_VERSION "\n");
        return 0;
    }
    if (getpid() != 1) {
        /* Still useful outside a PID namespace (tests), so only warn. */
        write_fd(STDERR_FILENO, "pause: warning: not running as PID 1\n");
    }
    if (install(SIGINT, on_terminate, 0) < 0 || install(SIGTERM, on_terminate, 0) < 0 ||
        install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
        write_fd(STDERR_FILENO, "pause: sigaction failed\n");
        return 1;
    }
    for (;;) {
        pause();
    }
    write_fd(STDERR_FILENO, "pause: error: infinite loop terminated\n");
    return 42;
}
