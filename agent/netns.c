/* The bridge's network namespace seen from the host: its path, running host commands in it, and
 * the address parsing both the bridge (net.c) and the firewall (firewall.c) need. Below both. */
#include "agent_core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run argv (no shell) with its network namespace switched to netns_path when given. Output
 * goes to /dev/null; the exit status decides. */
int agent_run(const char *netns_path, char *const argv[], struct nubo_err *err)
{
    pid_t pid = fork();
    if (pid < 0)
        return nubo_error(err, errno, "cannot fork for %s", argv[0]);
    if (pid == 0) {
        if (netns_path && netns_path[0]) {
            int fd = open(netns_path, O_RDONLY | O_CLOEXEC);
            if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
                _exit(126);
        }
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            if (getenv("NUBO_AGENT_DEBUG_CMDS") == NULL)
                dup2(devnull, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return nubo_error(err, errno, "waitpid %s", argv[0]);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    char cmd[512] = "";
    size_t off = 0;
    for (size_t i = 0; argv[i] && off < sizeof(cmd) - 1; i++)
        off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, "%s%s", i ? " " : "", argv[i]);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 126)
        return nubo_error(err, 0, "cannot enter network namespace %s for '%s'", netns_path, cmd);
    return nubo_error(err, 0, "'%s' failed (status %d)", cmd,
                      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

void agent_net_bridge_ns_path(const struct agent_config *c, char *out, size_t size)
{
    if (c->netns[0])
        snprintf(out, size, "/run/netns/%s", c->netns);
    else
        out[0] = '\0';
}

int agent_prefix_parse(const char *cidr, char *ip_out, size_t ip_size, int *prefix)
{
    const char *slash = strchr(cidr, '/');
    if (!slash || (size_t)(slash - cidr) >= ip_size)
        return -1;
    memcpy(ip_out, cidr, (size_t)(slash - cidr));
    ip_out[slash - cidr] = '\0';
    char *end;
    long p = strtol(slash + 1, &end, 10);
    if (*end || p < 1 || p > 32)
        return -1;
    *prefix = (int)p;
    return 0;
}
