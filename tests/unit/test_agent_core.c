/* Unit tests of the agent's pure parts: console markers and ring, kernel command line, domain
 * XML escaping, restart back-off, accelerator choice and the config file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_core.h"

static void test_console_match(void **state)
{
    (void)state;
    int code = -1;
    const char *text = NULL;
    assert_int_equal(agent_console_match("NUBO_READY", &code, &text), AGENT_MARK_READY);
    assert_int_equal(agent_console_match("\r NUBO_READY ", &code, &text), AGENT_MARK_READY);
    assert_int_equal(agent_console_match("NUBO_READYX", &code, &text), AGENT_MARK_NONE);
    assert_int_equal(agent_console_match("xx NUBO_READY", &code, &text), AGENT_MARK_NONE);
    assert_int_equal(agent_console_match("NUBO_EXIT 42", &code, &text), AGENT_MARK_EXIT);
    assert_int_equal(code, 42);
    assert_int_equal(agent_console_match("NUBO_EXIT -3", &code, &text), AGENT_MARK_EXIT);
    assert_int_equal(code, -3);
    assert_int_equal(agent_console_match("NUBO_EXIT junk", &code, &text), AGENT_MARK_EXIT);
    assert_int_equal(code, 0);
    assert_int_equal(agent_console_match("NUBO_EXITED", &code, &text), AGENT_MARK_NONE);
    assert_int_equal(agent_console_match("NUBO_CRASH page fault at 0x0", &code, &text),
                     AGENT_MARK_CRASH);
    assert_string_equal(text, "page fault at 0x0");
    assert_int_equal(agent_console_match("NUBO_S2Z_DISABLE 3", &code, &text),
                     AGENT_MARK_S2Z_DISABLE);
    assert_int_equal(code, 3);
    assert_int_equal(agent_console_match("NUBO_S2Z_DISABLE -1", &code, &text), AGENT_MARK_NONE);
    assert_int_equal(agent_console_match("NUBO_S2Z_DISABLE x", &code, &text), AGENT_MARK_NONE);
}

struct marks {
    int ready, exit, crash, code;
    char text[64];
};

static void on_mark(void *opaque, enum agent_marker m, int code, const char *text)
{
    struct marks *mk = opaque;
    if (m == AGENT_MARK_READY)
        mk->ready++;
    if (m == AGENT_MARK_EXIT) {
        mk->exit++;
        mk->code = code;
    }
    if (m == AGENT_MARK_CRASH) {
        mk->crash++;
        snprintf(mk->text, sizeof(mk->text), "%s", text);
    }
}

static void append(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
    close(fd);
}

static void test_console_ring(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_agent_con.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char log[256], rot[256];
    snprintf(log, sizeof(log), "%s/console.log", dir);
    snprintf(rot, sizeof(rot), "%s/console.log.1", dir);
    struct agent_console c;
    struct nubo_err err = {0};
    assert_int_equal(agent_console_open(&c, dir, 64, &err), 0);
    struct marks mk = {0};
    assert_int_equal(agent_console_pump(&c, on_mark, &mk), 0); /* no file yet */
    append(log, "booting\nNUBO_REA");
    assert_int_equal(agent_console_pump(&c, on_mark, &mk), 1);
    assert_int_equal(mk.ready, 0); /* half a line is not a marker */
    append(log, "DY\r\n");
    agent_console_pump(&c, on_mark, &mk);
    assert_int_equal(mk.ready, 1);
    /* virtlogd-style rotation: the old file is renamed, a new one created */
    append(log, "tail of old ");
    assert_int_equal(rename(log, rot), 0);
    append(log, "file\nNUBO_EXIT 5\n");
    agent_console_pump(&c, on_mark, &mk);
    assert_int_equal(mk.exit, 1);
    assert_int_equal(mk.code, 5);
    uint64_t total = strlen("booting\nNUBO_READY\r\ntail of old file\nNUBO_EXIT 5\n");
    assert_int_equal(c.total, total);
    /* the ring keeps only the last 64 bytes, in order */
    for (int i = 0; i < 10; i++)
        append(log, "0123456789\n");
    agent_console_pump(&c, on_mark, &mk);
    unsigned char *data;
    size_t len;
    uint64_t start;
    assert_int_equal(agent_console_read_since(&c, 0, &data, &len, &start, 1 << 20), 0);
    assert_int_equal(len, 64);
    assert_int_equal(start, c.total - 64);
    assert_memory_equal(data + len - 11, "0123456789\n", 11);
    free(data);
    /* a reopened ring resumes where it was: nothing is re-read, no marker repeats */
    uint64_t t = c.total;
    agent_console_close(&c);
    assert_int_equal(agent_console_open(&c, dir, 64, &err), 0);
    assert_int_equal(c.total, t);
    agent_console_pump(&c, on_mark, &mk);
    assert_int_equal(c.total, t);
    assert_int_equal(mk.exit, 1);
    append(log, "NUBO_CRASH boom\n");
    agent_console_pump(&c, on_mark, &mk);
    assert_int_equal(mk.crash, 1);
    assert_string_equal(mk.text, "boom");
    /* a chatty guest: the log file is cut back once consumed, the stream offset goes on */
    char *big = malloc((1u << 20) + 2);
    memset(big, 'x', 1u << 20);
    big[1u << 20] = '\n';
    big[(1u << 20) + 1] = '\0';
    uint64_t before = c.total;
    append(log, big);
    free(big);
    agent_console_pump(&c, on_mark, &mk);
    struct stat st;
    assert_int_equal(stat(log, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(c.total, before + (1u << 20) + 1);
    append(log, "NUBO_EXIT 9\n");
    agent_console_pump(&c, on_mark, &mk);
    assert_int_equal(mk.exit, 2);
    assert_int_equal(mk.code, 9);
    agent_console_close(&c);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_cmdline(void **state)
{
    (void)state;
    struct nubo_assignment a = {0};
    snprintf(a.private_ip, sizeof(a.private_ip), "10.64.3.7");
    a.prefix = 24;
    snprintf(a.gateway, sizeof(a.gateway), "10.64.3.1");
    snprintf(a.dns, sizeof(a.dns), "10.64.3.1");
    struct nubo_kv env[2] = {{"PORT", "8080"}, {"MSG", "say \"hi\""}};
    a.env = env;
    a.n_env = 2;
    char *args[] = {"/app", "two words", ""};
    a.args = args;
    a.n_args = 3;
    struct agent_image img = {0};
    char *labels[] = {"org.nubo.kernel.args=console=ttyS0 quiet", NULL};
    char *ienv[] = {"PORT=1", "HOME=/", NULL};
    char *icmd[] = {"/default", NULL};
    img.labels = labels;
    img.env = ienv;
    img.cmd = icmd;
    img.linux_kernel = true;
    char *c = agent_build_cmdline(&a, &img, 2100000);
    assert_string_equal(c, "console=ttyS0 quiet tsc_early_khz=2100000 "
                           "netdev.ip=10.64.3.7/24:10.64.3.1:10.64.3.1 "
                           "env.vars=[\"HOME=/\",\"PORT=8080\",\"MSG=say \\\"hi\\\"\"] "
                           "-- /app \"two words\" \"\"");
    free(c);
    /* not Linux (a unikernel): the spaced array, and no Linux-only tsc_early_khz */
    img.linux_kernel = false;
    c = agent_build_cmdline(&a, &img, 2100000);
    assert_string_equal(c, "console=ttyS0 quiet netdev.ip=10.64.3.7/24:10.64.3.1:10.64.3.1 "
                           "env.vars=[ \"HOME=/\" \"PORT=8080\" \"MSG=say \\\"hi\\\"\" ] "
                           "-- /app \"two words\" \"\"");
    free(c);
    img.linux_kernel = true;
    /* no args given: the image's cmd; no ip, no env, no tsc */
    struct nubo_assignment b = {0};
    img.env = NULL;
    img.linux_kernel = false;
    c = agent_build_cmdline(&b, &img, 0);
    assert_string_equal(c, "console=ttyS0 quiet -- /default");
    free(c);
    /* a Linux kernel gets the compact array: one token, not one boot env var per element */
    img.env = ienv;
    img.linux_kernel = true;
    c = agent_build_cmdline(&b, &img, 0);
    assert_string_equal(c, "console=ttyS0 quiet env.vars=[\"PORT=1\",\"HOME=/\"] -- /default");
    free(c);
    /* nubo's runtimes (org.nubo.env=fw_cfg): no env on the command line (`ps` shows it to every
     * local user); the fw_cfg file holds it, overrides applied, values as they are */
    char *rt_labels[] = {"org.nubo.kernel.args=console=ttyS0", "org.nubo.env=fw_cfg", NULL};
    img.labels = rt_labels;
    c = agent_build_cmdline(&a, &img, 0);
    assert_string_equal(c, "console=ttyS0 netdev.ip=10.64.3.7/24:10.64.3.1:10.64.3.1 "
                           "-- /app \"two words\" \"\"");
    free(c);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(agent_build_env_file(&a, &img, &data, &len), 0);
    static const char want[] = "HOME=/\0PORT=8080\0MSG=say \"hi\"\0";
    assert_int_equal(len, sizeof(want) - 1);
    assert_memory_equal(data, want, len);
    free(data);
    assert_int_equal(agent_build_env_file(&b, &(struct agent_image){0}, &data, &len), 0);
    assert_int_equal(len, 0);
    free(data);
    /* the image's config.User reaches nubo's Linux /init; a unikernel is not told */
    snprintf(img.user, sizeof(img.user), "root");
    c = agent_build_cmdline(&b, &img, 0);
    assert_string_equal(c, "console=ttyS0 nubo.user=root -- /default");
    free(c);
    img.linux_kernel = false;
    img.env = NULL;
    c = agent_build_cmdline(&b, &img, 0);
    assert_string_equal(c, "console=ttyS0 -- /default");
    free(c);
}

static void test_domain_xml(void **state)
{
    (void)state;
    char *e = agent_xml_escape("a<b>&'\"\x01z");
    assert_string_equal(e, "a&lt;b&gt;&amp;&apos;&quot; z");
    free(e);
    struct agent_domain_spec s = {
        .uuid = "11111111-2222-4333-8444-555555555555",
        .node = "n1",
        .kernel = "/c/k",
        .initrd = "/c/i",
        .cmdline = "-- </cmdline><devices><hostdev/></devices>",
        .console_path = "/s/console.log",
        .tap = "nt1234",
        .mac = "02:6e:0a:40:01:02",
        .memory_mb = 128,
        .vcpus = 2,
        .accel = AGENT_ACCEL_TCG,
    };
    char *x = agent_domain_xml(&s);
    assert_non_null(x);
    assert_non_null(strstr(x, "<domain type='qemu'>"));
    assert_non_null(strstr(x, "machine='microvm'"));
    assert_non_null(strstr(x, "<memory unit='MiB'>128</memory>"));
    assert_non_null(strstr(x, "<vcpu>2</vcpu>"));
    assert_non_null(strstr(x, "<features><acpi/></features>"));
    assert_non_null(strstr(x, "<controller type='usb' model='none'/>"));
    assert_non_null(strstr(x, "<memballoon model='none'/>"));
    assert_non_null(strstr(x, "<interface type='ethernet'><mac address='02:6e:0a:40:01:02'/>"
                              "<target dev='nt1234' managed='no'/>"));
    assert_non_null(strstr(x, "<address type='virtio-mmio'/>"));
    assert_non_null(strstr(x, "<on_crash>destroy</on_crash>"));
    assert_null(strstr(x, "<hostdev"));
    assert_non_null(strstr(x, "&lt;/cmdline&gt;"));
    free(x);
    s.accel = AGENT_ACCEL_KVM;
    s.tap = NULL;
    s.initrd = NULL;
    x = agent_domain_xml(&s);
    assert_non_null(strstr(x, "<domain type='kvm'>"));
    assert_non_null(strstr(x, "<cpu mode='host-passthrough'/>"));
    assert_null(strstr(x, "<interface"));
    assert_null(strstr(x, "<initrd>"));
    assert_null(strstr(x, "<sysinfo"));
    free(x);
    /* the environment as a fw_cfg file: qemu's command line names the file, not the values */
    s.env_file = "/s/inst/env'<x>";
    x = agent_domain_xml(&s);
    assert_non_null(strstr(x, "<sysinfo type='fwcfg'><entry name='opt/org.nubo/env' "
                              "file='/s/inst/env&apos;&lt;x&gt;'/></sysinfo>"));
    free(x);
    /* a Multiboot kernel (Unikraft's qemu platform): pc, PCI virtio, pvpanic; TCG's CPU
     * carries RDRAND, and RDSEED only where this qemu emulates it */
    s.accel = AGENT_ACCEL_TCG;
    s.boot = AGENT_BOOT_MULTIBOOT;
    s.tap = "nt1234";
    x = agent_domain_xml(&s);
    assert_non_null(strstr(x, "machine='pc'"));
    assert_null(strstr(x, "virtio-mmio"));
    assert_non_null(strstr(x, "<panic model='isa'><address type='isa' iobase='0x505'/></panic>"));
    assert_non_null(strstr(x, "<model fallback='forbid'>qemu64</model>"
                              "<feature policy='require' name='rdrand'/></cpu>"));
    assert_null(strstr(x, "rdseed"));
    free(x);
    s.rdseed = true;
    s.boot = AGENT_BOOT_PVH;
    x = agent_domain_xml(&s);
    assert_non_null(strstr(x, "machine='microvm'"));
    assert_non_null(strstr(x, "<feature policy='require' name='rdseed'/>"));
    assert_null(strstr(x, "<panic"));
    free(x);
}

static void test_restart_delay(void **state)
{
    (void)state;
    assert_int_equal(agent_restart_delay_ms(0), 0);
    assert_int_equal(agent_restart_delay_ms(1), 5000);
    assert_int_equal(agent_restart_delay_ms(2), 10000);
    assert_int_equal(agent_restart_delay_ms(3), 20000);
    assert_int_equal(agent_restart_delay_ms(4), 40000);
    assert_int_equal(agent_restart_delay_ms(7), 300000);
    assert_int_equal(agent_restart_delay_ms(1000), 300000);
}

static void test_accel(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_agent_sys.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[300];
    snprintf(p, sizeof(p), "%s/kvm_pvm", dir);
    mkdir(p, 0755);
    /* PVM's /dev/kvm is not hardware KVM */
    assert_int_equal(agent_accel_resolve(AGENT_ACCEL_AUTO, dir), AGENT_ACCEL_TCG);
    assert_int_equal(agent_accel_resolve(AGENT_ACCEL_KVM, dir), AGENT_ACCEL_KVM);
    snprintf(p, sizeof(p), "%s/kvm_intel", dir);
    mkdir(p, 0755);
    enum agent_accel want = access("/dev/kvm", R_OK | W_OK) == 0 ? AGENT_ACCEL_KVM
                                                                 : AGENT_ACCEL_TCG;
    assert_int_equal(agent_accel_resolve(AGENT_ACCEL_AUTO, dir), want);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_config(void **state)
{
    (void)state;
    char path[] = "/tmp/test_agent_cfg.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, "[node]\nname = node-b\nmetro = fra\nmemory_reserve = 1Gi\n"
                     "[controller]\nsocket = /run/c.sock\n"
                     "[libvirt]\naccel = tcg\nshutdown_timeout = 2s\n"
                     "[images]\ncache_size = 2Gi\n"
                     "[network]\nbridge = br7\nnetns = ns7\negress = nat\n"
                     "ingress_from = 192.0.2.7, 198.51.100.0/24\n");
    struct agent_config c;
    agent_config_defaults(&c);
    struct nubo_err err = {0};
    assert_int_equal(agent_config_load(&c, path, &err), 0);
    assert_string_equal(c.node_name, "node-b");
    assert_string_equal(c.metro, "fra");
    assert_int_equal(c.memory_reserve_mb, 1024);
    assert_string_equal(c.controller_socket, "/run/c.sock");
    assert_int_equal(c.accel, AGENT_ACCEL_TCG);
    assert_int_equal(c.shutdown_timeout_ms, 2000);
    assert_int_equal(c.cache_size_mb, 2048);
    assert_string_equal(c.bridge, "br7");
    assert_string_equal(c.netns, "ns7");
    assert_int_equal(c.egress, AGENT_EGRESS_NAT);
    assert_int_equal(c.n_ingress_from, 2);
    assert_string_equal(c.ingress_from[0], "192.0.2.7/32");
    assert_string_equal(c.ingress_from[1], "198.51.100.0/24");
    agent_config_defaults(&c);
    assert_int_equal(c.egress, AGENT_EGRESS_NONE); /* the default: guests reach nothing out */

    write_file(path, "[libvirt]\naccel = fast\n");
    agent_config_defaults(&c);
    assert_int_equal(agent_config_load(&c, path, &err), -1);
    assert_non_null(strstr(err.msg, "accel"));
    write_file(path, "[node]\ncolour = blue\n");
    assert_int_equal(agent_config_load(&c, path, &err), -1);
    assert_non_null(strstr(err.msg, ":2: unknown setting [node] colour"));
    write_file(path, "[network]\nnetns = ../../etc\n");
    assert_int_equal(agent_config_load(&c, path, &err), -1);
    write_file(path, "[network]\nbridge = a-bridge-name-too-long\n");
    assert_int_equal(agent_config_load(&c, path, &err), -1);
    write_file(path, "[network]\negress = open\n");
    assert_int_equal(agent_config_load(&c, path, &err), -1);
    assert_non_null(strstr(err.msg, "use none or nat"));
    write_file(path, "[network]\ningress_from = 10.0.0.0/33\n");
    assert_int_equal(agent_config_load(&c, path, &err), -1);
    assert_non_null(strstr(err.msg, "ingress_from"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_console_match), cmocka_unit_test(test_console_ring),
        cmocka_unit_test(test_cmdline),       cmocka_unit_test(test_domain_xml),
        cmocka_unit_test(test_restart_delay), cmocka_unit_test(test_accel),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
