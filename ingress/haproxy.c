/* HAProxy as nubo-ingress's child, in master-worker mode: the master CLI socket reloads it
 * (listeners pass to the new worker: no refused connections), the worker's runtime socket
 * takes server and map changes. PR_SET_PDEATHSIG ends it if nubo-ingress dies. */
#include "ingress_core.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

void ing_haproxy_init(struct ing_haproxy *h, const struct ing_config *cfg)
{
    memset(h, 0, sizeof(*h));
    h->pid = -1;
    snprintf(h->cfg_path, sizeof(h->cfg_path), "%s/haproxy.cfg", cfg->runtime_dir);
    snprintf(h->master_sock, sizeof(h->master_sock), "%s/master.sock", cfg->runtime_dir);
    snprintf(h->runtime_sock, sizeof(h->runtime_sock), "%s/runtime.sock", cfg->runtime_dir);
    snprintf(h->pid_path, sizeof(h->pid_path), "%s/haproxy.pid", cfg->runtime_dir);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int ing_port_probe(const char *addr, int port, struct nubo_err *err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return nubo_error(err, EINVAL, "%s is not an IPv4 address", addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return nubo_error(err, errno, "socket");
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rc = 0;
    /* bind and listen as HAProxy will: a listener already there fails the bind */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
        rc = nubo_error(err, errno, "cannot bind %s:%d", addr, port);
    close(fd);
    return rc;
}

int ing_sock_cmd(const char *path, const char *cmd, int timeout_ms, char **reply,
                 struct nubo_err *err)
{
    *reply = NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return nubo_error(err, 0, "socket path %s is too long", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return nubo_error(err, errno, "socket for %s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return nubo_error(err, e, "cannot connect to HAProxy socket %s", path);
    }
    size_t cl = strlen(cmd);
    char *line = malloc(cl + 2);
    if (!line) {
        close(fd);
        return nubo_error(err, ENOMEM, "command for %s", path);
    }
    memcpy(line, cmd, cl);
    line[cl] = '\n';
    line[cl + 1] = 0;
    ssize_t w = send(fd, line, cl + 1, MSG_NOSIGNAL);
    free(line);
    if (w != (ssize_t)(cl + 1)) {
        int e = errno;
        close(fd);
        return nubo_error(err, e, "cannot send to HAProxy socket %s", path);
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return nubo_error(err, ENOMEM, "reply from %s", path);
    }
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break; /* the master CLI keeps the connection: what came is the answer */
        if (len + 4096 > cap) {
            if (cap >= ING_RT_REPLY_MAX)
                break;
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(fd);
    *reply = buf;
    return 0;
}

static long worker_pid(struct ing_haproxy *h)
{
    char *reply = NULL;
    if (ing_sock_cmd(h->runtime_sock, "show info", 2000, &reply, NULL) < 0)
        return -1;
    long pid = -1;
    char *p = strstr(reply, "\nPid: ");
    if (p)
        pid = strtol(p + 6, NULL, 10);
    free(reply);
    return pid;
}

bool ing_haproxy_alive(struct ing_haproxy *h)
{
    if (h->pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(h->pid, &st, WNOHANG);
    if (r == h->pid) {
        if (WIFEXITED(st))
            log_warnx("haproxy (pid %d) exited with status %d", (int)h->pid, WEXITSTATUS(st));
        else
            log_warnx("haproxy (pid %d) died of signal %d", (int)h->pid, WTERMSIG(st));
        h->pid = -1;
        return false;
    }
    return true;
}

static int run_wait(char *const argv[], struct nubo_err *err)
{
    pid_t pid = fork();
    if (pid < 0)
        return nubo_error(err, errno, "cannot fork %s", argv[0]);
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return nubo_error(err, errno, "waiting for %s", argv[0]);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return nubo_error(err, 0, "%s -c refused the generated configuration (status %d)",
                          argv[0], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

int ing_haproxy_check(const struct ing_config *cfg, const char *cfg_path, struct nubo_err *err)
{
    char *argv[] = {(char *)cfg->haproxy_bin, "-c", "-q", "-f", (char *)cfg_path, NULL};
    return run_wait(argv, err);
}

int ing_haproxy_start(struct ing_haproxy *h, const struct ing_config *cfg, struct nubo_err *err)
{
    char master[ING_PATH_MAX + 64];
    snprintf(master, sizeof(master), "%s,mode,600", h->master_sock);
    unlink(h->master_sock);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return nubo_error(err, errno, "cannot fork haproxy");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *argv[] = {(char *)cfg->haproxy_bin, "-W", "-db", "-S", master, "-f", h->cfg_path,
                        NULL};
        execv(argv[0], argv);
        fprintf(stderr, "nubo-ingress: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    h->pid = pid;
    char pidtext[32];
    snprintf(pidtext, sizeof(pidtext), "%d\n", (int)pid);
    if (nubo_write_file_atomic(h->pid_path, pidtext, strlen(pidtext), 0644, NULL) < 0)
        log_warnx("cannot record haproxy's PID in %s", h->pid_path);
    log_info("haproxy master started (pid %d), config %s", (int)pid, h->cfg_path);
    for (int i = 0; i < 200; i++) {
        if (!ing_haproxy_alive(h))
            return nubo_error(err, 0, "haproxy exited at start (see its messages above; "
                                      "is the listen address in use?)");
        if (worker_pid(h) > 0)
            return 0;
        sleep_ms(50);
    }
    ing_haproxy_stop(h);
    return nubo_error(err, 0, "haproxy's runtime socket %s did not answer within 10 s",
                      h->runtime_sock);
}

int ing_haproxy_reload(struct ing_haproxy *h, struct nubo_err *err)
{
    long before = worker_pid(h);
    char *reply = NULL;
    if (ing_sock_cmd(h->master_sock, "reload", 200, &reply, err) < 0)
        return -1;
    free(reply);
    for (int i = 0; i < 200; i++) {
        if (!ing_haproxy_alive(h))
            return nubo_error(err, 0, "haproxy exited during a reload");
        long now = worker_pid(h);
        if (now > 0 && now != before) {
            log_info("haproxy reloaded: worker %ld replaced %ld", now, before);
            return 0;
        }
        sleep_ms(25);
    }
    return nubo_error(err, 0, "haproxy did not start a new worker within 5 s of a reload");
}

void ing_haproxy_stop(struct ing_haproxy *h)
{
    if (h->pid <= 0)
        return;
    kill(h->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(h->pid, NULL, WNOHANG) == h->pid) {
            h->pid = -1;
            unlink(h->pid_path);
            return;
        }
        sleep_ms(50);
    }
    kill(h->pid, SIGKILL);
    waitpid(h->pid, NULL, 0);
    h->pid = -1;
    unlink(h->pid_path);
}
