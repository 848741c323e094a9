/* nubo-agent: what crosses the agent's files (vmd style, grouped by file). The agent turns a
 * host into a node: it watches its assignments, pulls images, boots guests through libvirt. */
#ifndef NUBO_AGENT_CORE_H
#define NUBO_AGENT_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <event2/event.h>
#include <libvirt/libvirt.h>

#include "agent.h" /* proto/agent.h: the controller protocol types */
#include "error.h"
#include "http.h"
#include "oci_image.h" /* common/: NUBO_IMAGE_USER_MAX */
#include "registry.h"
#include "util.h"

#define AGENT_VERSION "0.1.0"
#define AGENT_PATH_MAX 512
#define AGENT_TAP_MAX 16          /* IFNAMSIZ */
#define AGENT_LINE_MAX 512        /* console line kept for marker matching */
#define AGENT_MSG_MAX 512         /* instance message */
#define AGENT_CMDLINE_MAX 2047    /* x86 COMMAND_LINE_SIZE - 1 */
#define AGENT_STATE_MAX (64u << 20)
#define AGENT_METADATA_NS "https://nubo.dev/xmlns/agent/1"

/* config.c */
enum agent_accel { AGENT_ACCEL_AUTO = 0, AGENT_ACCEL_KVM, AGENT_ACCEL_TCG };
/* [network] egress: none = guests reach nothing beyond the node; nat = masqueraded egress */
enum agent_egress { AGENT_EGRESS_NONE = 0, AGENT_EGRESS_NAT };
#define AGENT_INGRESS_FROM_MAX 16 /* [network] ingress_from addresses */
#define AGENT_SLOT_SHAPES_MAX 8   /* [slots] shapes */
#define AGENT_SLOT_POOL_MAX 64    /* [slots] size, per shape */
struct agent_slot_shape {
    int64_t memory_mb, vcpus;
};

struct agent_config {
    char node_name[NUBO_NAME_MAX + 1];
    char metro[NUBO_NAME_MAX + 1];
    /* controller: URL (the Host) and optionally a unix socket carrying the HTTP; each a
     * comma-separated list when several controllers share the store (http.h) */
    char controller_url[1024];
    char controller_socket[1024];
    char controller_ca[AGENT_PATH_MAX]; /* https: the CA the controller's certificate is from */
    char join_token_file[AGENT_PATH_MAX];
    /* standalone mode (no controller): desired set read from a watch-response JSON file,
     * observed state written to a status JSON file */
    char assignments_file[AGENT_PATH_MAX];
    char status_file[AGENT_PATH_MAX];
    char subnet[NUBO_CIDR_STR_MAX]; /* standalone: the bridge's subnet, e.g. 10.64.9.0/24 */
    char gateway[NUBO_IP_STR_MAX];
    char dns[NUBO_IP_STR_MAX];
    char libvirt_uri[256];
    struct nubo_registry registry;
    char cache_dir[AGENT_PATH_MAX];
    int64_t cache_size_mb;
    int64_t max_image_mb;
    char state_dir[AGENT_PATH_MAX];
    char bridge[AGENT_TAP_MAX];
    char netns[64];             /* named netns of the bridge ("" = the agent's own) */
    char libvirt_netns[AGENT_PATH_MAX]; /* netns path where libvirtd opens taps ("" = own) */
    enum agent_egress egress;
    /* hosts (other than the node itself) that may open connections to guests: the ingress */
    char ingress_from[AGENT_INGRESS_FROM_MAX][NUBO_CIDR_STR_MAX];
    size_t n_ingress_from;
    enum agent_accel accel;
    int64_t memory_reserve_mb;
    int64_t vcpu_reserve;
    int64_t shutdown_timeout_ms; /* ACPI shutdown grace before destroy */
    int64_t console_ring_kb;
    int64_t watch_timeout_ms;
    int64_t net_probe_timeout_ms;
    char volume_dir[AGENT_PATH_MAX]; /* "" = <state_dir>/volumes */
    int64_t volume_budget_mb;        /* -1 = half the free space at start */
    /* [slots]: warm slots kept per shape (0 = off) and the shapes (memory_mb x vcpus) */
    int64_t slot_pool_size;
    struct agent_slot_shape slot_shapes[AGENT_SLOT_SHAPES_MAX];
    size_t n_slot_shapes;
    char slot_firmware[AGENT_PATH_MAX]; /* "" = slotfw.bin next to the agent's binary */
};

void agent_config_defaults(struct agent_config *c);
int agent_config_load(struct agent_config *c, const char *path, struct nubo_err *err);
const char *agent_accel_name(enum agent_accel a);
/* Resolve auto: kvm only on hardware KVM (kvm_intel/kvm_amd loaded), never kvm_pvm. */
enum agent_accel agent_accel_resolve(enum agent_accel want, const char *sysfs_module_dir);

/* console.c: follow the serial log file libvirt (virtlogd) writes, keep a ring on disk,
 * find the marker lines. */
struct agent_console {
    char dir[AGENT_PATH_MAX];  /* instance dir holding console.log and console.ring */
    int fd;                    /* console.log, -1 when not open */
    uint64_t file_ino;
    uint64_t file_off;         /* bytes of console.log consumed */
    uint64_t total;            /* bytes seen since the instance was created */
    uint64_t shipped;          /* bytes shipped to the controller */
    int ring_fd;
    uint64_t ring_cap;
    char line[AGENT_LINE_MAX];
    size_t line_len;
    int wd;                    /* inotify watch on dir, -1 = none */
};

/* OUTPUT: the guest wrote bytes (text ""); LINE: any other complete line (text = the line). */
enum agent_marker {
    AGENT_MARK_NONE = 0,
    AGENT_MARK_READY,
    AGENT_MARK_EXIT,
    AGENT_MARK_CRASH,
    AGENT_MARK_OUTPUT,
    AGENT_MARK_LINE,
    AGENT_MARK_S2Z_DISABLE, /* NUBO_S2Z_DISABLE <n>: the guest's disable counter is n */
};
typedef void (*agent_marker_fn)(void *opaque, enum agent_marker m, int exit_code,
                                const char *text);

int agent_console_open(struct agent_console *c, const char *dir, uint64_t ring_cap,
                       struct nubo_err *err);
/* Read what is new (handles virtlogd's rotation), append to the ring, report markers. */
int agent_console_pump(struct agent_console *c, agent_marker_fn fn, void *opaque);
/* Bytes [from, total) still in the ring: returns malloc'd data and its start offset. */
int agent_console_read_since(struct agent_console *c, uint64_t from, unsigned char **data,
                             size_t *len, uint64_t *start, size_t max_len);
void agent_console_close(struct agent_console *c);
/* Pure line matcher (unit-tested). */
enum agent_marker agent_console_match(const char *line, int *exit_code, const char **text);

/* net.c: the node bridge and per-instance taps, via ip(8) run in the right namespace. */
int agent_net_bridge_setup(const struct agent_config *c, const char *gateway, int prefix,
                           struct nubo_err *err);
int agent_net_tap_create(const struct agent_config *c, const char *tap, struct nubo_err *err);
/* After the domain started: move the tap to the bridge's netns, enslave it, bring it up. */
int agent_net_tap_attach(const struct agent_config *c, const char *tap, struct nubo_err *err);
/* Before attach: the guest's own rules (source MAC/IP from its private IP). */
int agent_net_tap_rules(const struct agent_config *c, const char *tap, const char *ip,
                        const char *mac, struct nubo_err *err);
void agent_net_tap_remove(const struct agent_config *c, const char *tap);
void agent_net_tap_name(const char *uuid, char out[AGENT_TAP_MAX]);
/* Connect to ip:port from inside the bridge's namespace until it works or timeout. */
int agent_net_probe(const struct agent_config *c, const char *ip, const int64_t *ports,
                    size_t n_ports, int64_t timeout_ms, struct nubo_err *err);
int agent_run(const char *netns_path, char *const argv[], struct nubo_err *err);
void agent_net_bridge_ns_path(const struct agent_config *c, char *out, size_t size);
int agent_prefix_parse(const char *cidr, char *ip_out, size_t ip_size, int *prefix);

/* firewall.c: the nftables ruleset guests live under (agent/README.md), via libnftables. */
#define AGENT_MAC_STR_MAX 18
struct agent_fw_node {
    const char *bridge, *gateway, *subnet;
    enum agent_egress egress;
    const char (*ingress_from)[NUBO_CIDR_STR_MAX];
    size_t n_ingress_from;
};
struct agent_fw_guest {
    char tap[AGENT_TAP_MAX];
    char ip[NUBO_IP_STR_MAX];
    char mac[AGENT_MAC_STR_MAX]; /* "" = derived from ip (agent_net_guest_mac); a slot's is
                                  * fixed when it is launched */
};
const char *agent_egress_name(enum agent_egress e);
/* The guest NIC's MAC, derived from its private IP (02:6e:<ip bytes>). */
void agent_net_guest_mac(const char *ip, char out[AGENT_MAC_STR_MAX]);
/* Parse "a.b.c.d[/n], ..." into out (a bare address becomes /32). */
int agent_fw_cidrs_parse(const char *list, char out[][NUBO_CIDR_STR_MAX], size_t max, size_t *n_out,
                         struct nubo_err *err);
/* Rule text (malloc'd; NULL on a bad name/address or no memory): the whole node ruleset
 * (replaces any earlier one atomically), one guest's chain added or replaced, one removed. */
char *agent_fw_ruleset(const struct agent_fw_node *node, const struct agent_fw_guest *guests,
                       size_t n_guests);
char *agent_fw_guest_add(const struct agent_fw_guest *g);
char *agent_fw_guest_del(const char *tap);
/* Run rule text through libnftables inside netns_path ("" = the agent's own namespace). */
int agent_fw_apply(const char *netns_path, const char *text, struct nubo_err *err);
/* The same without waiting (takes TEXT): queued in call order behind earlier texts, applied by
 * the next caller or a thread of its own; a failure is logged. For the main thread. */
void agent_fw_apply_async(const char *netns_path, char *text);
struct agent;
/* Reconcile: replace the node ruleset with one for every guest the agent holds. */
int agent_fw_sync(struct agent *ag, struct nubo_err *err);

/* kernel.c: what a kernel file is and how (whether) nubo boots it. */
enum agent_boot {
    AGENT_BOOT_UNKNOWN = 0,
    AGENT_BOOT_BZIMAGE,   /* Linux x86 boot protocol ("HdrS"): microvm */
    AGENT_BOOT_PVH,       /* ELF with a Xen PVH entry note (our guests, vmlinux): microvm */
    AGENT_BOOT_MULTIBOOT, /* Multiboot v1 header (Unikraft's qemu platform): pc */
    AGENT_BOOT_LINUX64,   /* 64-bit ELF with neither (Unikraft's fc platform): refused */
};
struct agent_kernel_info {
    enum agent_boot boot;
    bool linux_kernel;    /* bzImage, or an ELF with a "Linux" note */
    bool pvh;
};
int agent_kernel_probe(const char *path, struct agent_kernel_info *ki, struct nubo_err *err);
bool agent_kernel_is_linux(const char *path);
const char *agent_boot_name(enum agent_boot b);
/* 0 when nubo can boot it; else -1 and a one-line reason naming what it needs. */
int agent_kernel_refusal(const struct agent_kernel_info *ki, const char *platform, char *why,
                         size_t why_size);
/* The file contains the bytes NUBO_READY (our guests print that marker). */
bool agent_file_has_marker(const char *path);
/* When an instance counts as running (label org.nubo.ready, see README). */
enum agent_ready { AGENT_READY_MARKER = 0, AGENT_READY_OUTPUT, AGENT_READY_PORT, AGENT_READY_LINE };
enum agent_ready agent_ready_rule(const char *label, bool has_marker, const char **pattern);
const char *agent_ready_name(enum agent_ready r);

/* images.c: content-addressed cache of pulled images, concurrent pulls coalesce. */
struct agent;
struct agent_image {
    char digest[80];
    char dir[AGENT_PATH_MAX];
    char kernel[AGENT_PATH_MAX];
    char initrd[AGENT_PATH_MAX]; /* "" when none */
    char **cmd, **env, **labels; /* NULL-terminated */
    char user[NUBO_IMAGE_USER_MAX + 1]; /* config.User, "" = the runtime's default */
    bool linux_kernel;           /* a Linux kernel: env.vars goes in the compact form */
    enum agent_boot boot;        /* how qemu boots it (kernel.c) */
    char platform[32];           /* the config's "os" (kraftkit: Unikraft platform) */
    bool has_marker;             /* kernel or initrd carries NUBO_READY: one of ours */
    uint64_t size_bytes;
    int refs;                    /* instances using it */
    int64_t last_used_us;
    bool ready, pulling;
    char error[AGENT_MSG_MAX];
    LIST_HEAD(, agent_image_waiter) waiters;
    LIST_ENTRY(agent_image) link;
};
typedef void (*agent_image_fn)(struct agent *ag, void *opaque, struct agent_image *img,
                               const char *error);
struct agent_image_waiter {
    agent_image_fn fn;
    void *opaque;
    LIST_ENTRY(agent_image_waiter) link;
};
int agent_images_init(struct agent *ag, struct nubo_err *err);
/* Calls fn once (maybe synchronously) with the ready image (ref taken) or an error. */
void agent_image_get(struct agent *ag, const char *image_ref, agent_image_fn fn, void *opaque);
void agent_image_unref(struct agent *ag, struct agent_image *img);
struct agent_image *agent_image_find(struct agent *ag, const char *digest);
void agent_images_free(struct agent *ag);
const char *agent_image_label(const struct agent_image *img, const char *key);
/* Bytes a file takes on disk (its size, or its blocks when more). */
uint64_t agent_file_disk_bytes(const char *path);
/* Blocking pull into the cache directory (worker thread); exposed for tests. */
int agent_image_pull_blocking(const struct agent_config *c, const char *repo,
                              const char *digest, const char *final_dir, struct nubo_err *err);

/* volumes.c: the node's volumes (raw files formatted ext4; see the file for why raw). */
#define AGENT_VOLUME_SERIAL_MAX 20 /* virtio-blk serial: the guest finds its volume by it */
struct agent_disk {
    char path[AGENT_PATH_MAX + 64];
    char serial[AGENT_VOLUME_SERIAL_MAX + 1];
    bool readonly;
};
struct agent_volume;
int agent_volumes_init(struct agent *ag, struct nubo_err *err);
void agent_volumes_free(struct agent *ag);
/* The node's full volume set from the controller: make what is new, delete what is gone. */
void agent_volumes_apply(struct agent *ag, const struct nubo_volume_spec *s, size_t n);
/* Delete what the last desired set dropped and no domain holds any more. */
void agent_volumes_sweep(struct agent *ag);
/* Reports (malloc'd) of every volume (all) or of those changed since the last call. */
size_t agent_volumes_report(struct agent *ag, bool all, struct nubo_volume_report **out);
bool agent_volumes_dirty(struct agent *ag);
/* The disks of a's volumes: 0 ready, 1 not made yet (wait), -1 unusable (why). */
int agent_volumes_disks(struct agent *ag, const struct nubo_assignment *a,
                        struct agent_disk *disks, char *why, size_t why_size);
/* The serial a volume's disk carries: its uuid's first 20 hex digits. */
void agent_volume_serial(const char *uuid, char out[AGENT_VOLUME_SERIAL_MAX + 1]);

/* stats.c: the running domains' rss and CPU time for the status batches. */
void agent_stats_collect(struct agent *ag); /* each heartbeat; a worker asks libvirt */
size_t agent_stats_report(struct agent *ag, struct nubo_instance_stats **out); /* malloc'd */

/* virt.c: one long-lived libvirt connection with its event loop thread. */
struct agent_virt {
    virConnectPtr conn;          /* NULL while disconnected */
    pthread_t thread;
    bool thread_started;
    int lifecycle_cb;
    int64_t backoff_ms;
    struct event *reconnect_ev;
    unsigned long lib_version, hv_version;
    bool tcg_rdseed;             /* this qemu's TCG emulates RDSEED (libvirt domcapabilities) */
    bool closing;
};
int agent_virt_start(struct agent *ag, struct nubo_err *err);
void agent_virt_stop(struct agent *ag);
/* Domain XML for an instance (every string escaped). Returns malloc'd text. */
struct agent_domain_spec {
    const char *uuid, *node, *kernel, *initrd, *cmdline, *console_path, *tap, *mac;
    const char *env_file; /* fw_cfg AGENT_FWCFG_ENV, NULL = none */
    const struct agent_disk *disks; /* volumes, virtio-blk vda, vdb, ... */
    size_t n_disks;
    /* A warm slot: this firmware (agent/slotfw/) instead of kernel/initrd/cmdline, guest RAM
     * in a shared memfd the agent writes the guest into at take time (slots.c). */
    const char *firmware;
    const char *slot_shape; /* a slot's metadata: "<mb>x<vcpus>" */
    int64_t memory_mb, vcpus;
    enum agent_accel accel;
    enum agent_boot boot;        /* multiboot -> pc, else microvm */
    bool rdseed;                 /* TCG: offer RDSEED too */
};
/* The guest CPU model per accelerator, as reported in the node's capabilities. */
const char *agent_guest_cpu(enum agent_accel accel, bool rdseed);
char *agent_domain_xml(const struct agent_domain_spec *s);
char *agent_xml_escape(const char *s);
/* Is this domain ours (metadata names this node)? */
bool agent_domain_is_ours(virDomainPtr dom, const char *node);
/* Ours, and what its metadata says: a slot of shape "<mb>x<vcpus>" (slot != "") and the
 * instance that took it (instance != ""). */
bool agent_domain_meta(virDomainPtr dom, const char *node, char slot[32],
                       char instance[NUBO_UUID_STR_LEN + 1]);
/* Rewrite a taken slot's metadata so a re-adopting agent maps it to its instance. */
int agent_domain_meta_take(virDomainPtr dom, const char *node, const char *slot,
                           const char *instance);

/* instance.c: lifecycle FSM and reconcile. */
/* SAVE: a stateful standby's virDomainSave is under way (the domain ends when it returns) */
enum agent_op { AGENT_OP_NONE = 0, AGENT_OP_PULL, AGENT_OP_CREATE, AGENT_OP_DESTROY, AGENT_OP_SAVE };
/* A stateful standby's saved guest memory, in the instance's directory. */
#define AGENT_SAVE_FILE "memory.save"

struct agent_instance {
    struct agent *ag_back;       /* the agent, for timer callbacks */
    char uuid[NUBO_UUID_STR_LEN + 1];
    struct nubo_assignment a;
    bool assigned;               /* false: absent from the desired set -> delete */
    struct nubo_status_report r; /* what we report (message kept in msg) */
    char msg[AGENT_MSG_MAX];
    int64_t start_seq_done;      /* last start_seq acted on; -1 = never */
    enum agent_op op;
    uint64_t op_gen;             /* bumps on every op so stale completions are dropped */
    bool domain;                 /* a libvirt domain exists */
    bool want_stop, stop_force, stop_user;
    bool saved;                  /* AGENT_SAVE_FILE holds the guest: the next start restores it */
    bool exit_seen, crash_seen, guest_shutdown;
    int exit_code;
    /* readiness rule and what a stock (foreign) kernel's console said, set per boot */
    enum agent_ready ready_rule;
    char ready_pattern[128];
    bool foreign;                /* not one of ours: no NUBO_* markers to expect */
    bool main_returned;          /* Unikraft's "main returned N" (printk info level) */
    bool guest_poweroff;         /* the guest powered itself off (not our destroy) */
    int main_code;
    char crash_text[128];
    int64_t t0_mono_us, t0_real_us; /* just before virDomainCreateXML */
    int64_t t_image_us;          /* image phase of the current start */
    char tap[AGENT_TAP_MAX];
    char mac[AGENT_MAC_STR_MAX]; /* the NIC's, "" = derived from the private IP */
    /* The libvirt domain's name: the uuid, or the warm slot's name the guest runs in (a
     * slot is launched before its instance is known). Saved: re-adoption maps by it. */
    char dom[NUBO_UUID_STR_LEN + 1];
    bool no_slot;                /* this start: a slot take failed, take the plain path */
    char image_digest[NUBO_DIGEST_STR_LEN + 1];
    struct agent_image *img;
    struct agent_console con;
    struct event *timer;         /* drain/shutdown/restart timer */
    enum { AGENT_TIMER_NONE, AGENT_TIMER_DRAIN, AGENT_TIMER_SHUTDOWN, AGENT_TIMER_RESTART } timer_kind;
    struct event *healthy_timer;
    bool restart_due;
    bool pending_create;         /* image ready, waiting for libvirt to come back */
    bool ready_seen;
    bool check_after_create;     /* a STOPPED event arrived while creating */
    char stop_why[32];           /* what libvirt's STOPPED event said */
    int64_t t1_mono_us;          /* virDomainCreateXML returned */
    int64_t t_prep_mono_us;      /* image ready, preparing the domain */
    int64_t t_pull_mono_us;
    bool dirty;                  /* report changed since last status sent */
    int64_t rss_bytes, cpu_time_ms; /* stats.c: libvirt's last measure of the domain */
    LIST_ENTRY(agent_instance) link;
};

struct agent_instance *agent_instance_find(struct agent *ag, const char *uuid);
/* The instance whose guest runs in the libvirt domain of that name. */
struct agent_instance *agent_instance_find_dom(struct agent *ag, const char *name);
struct agent_instance *agent_instance_new(struct agent *ag, const char *uuid);
void agent_instance_free(struct agent *ag, struct agent_instance *in);
/* Apply a full desired set (level-triggered). */
void agent_apply_assignments(struct agent *ag, const struct nubo_watch_resp *w);
void agent_reconcile(struct agent *ag, struct agent_instance *in);
void agent_reconcile_all(struct agent *ag);
void agent_instance_rearm(struct agent *ag, struct agent_instance *in);
/* Readiness rule and stock-kernel handling of the instance's image (per boot, and again for a
 * guest re-adopted after an agent restart). */
void agent_instance_boot_rules(struct agent_instance *in);
/* libvirt lifecycle event, delivered on the main thread. */
void agent_on_domain_event(struct agent *ag, const char *uuid, int event, int detail);
/* After (re)connecting: compare libvirt's domains with the table. */
void agent_resync_domains(struct agent *ag);
void agent_on_console(struct agent *ag, struct agent_instance *in);
char *agent_build_cmdline(const struct nubo_assignment *a, const struct agent_image *img,
                          int64_t tsc_khz);
/* Unikraft's console lines that tell how a stock kernel ended (unit-tested):
 * 1 "main returned N" (*code = N), 2 a boot failure or crash (CRIT/"Init function ...
 * returned error"), 0 anything else. */
int agent_unikraft_line(const char *line, int *code);
/* Images labelled org.nubo.env=fw_cfg (nubo's Linux runtimes) read their environment from
 * the fw_cfg file opt/org.nubo/env ("K=V\0" entries) instead of env.vars on the command
 * line, which every local user sees in `ps`. */
#define AGENT_LABEL_ENV "org.nubo.env"
#define AGENT_FWCFG_ENV "opt/org.nubo/env"
bool agent_image_env_via_fw_cfg(const struct agent_image *img);
int agent_build_env_file(const struct nubo_assignment *a, const struct agent_image *img,
                         char **data, size_t *len);
int64_t agent_restart_delay_ms(int64_t attempt);
void agent_mark_dirty(struct agent *ag, struct agent_instance *in);
void agent_report_fill(struct agent_instance *in, struct nubo_status_report *out);

/* state.c: the node's state file, written atomically. */
int agent_state_save(struct agent *ag, struct nubo_err *err);
int agent_state_load(struct agent *ag, struct nubo_err *err);

/* ctl.c: the controller session (register, watch, status, log) or standalone files. */
struct agent_ctl {
    struct nu_http_targets targets; /* the controllers ([controller] url and socket) */
    char token[NUBO_AGENT_TOKEN_MAX];
    char join_token[NUBO_AGENT_TOKEN_MAX];
    /* The node's own credential (<state_dir>/node-token, 0600): a known node registers with
     * it, never with the join token, which only brings a new name. "" = none yet. */
    char node_token[NUBO_AGENT_TOKEN_MAX];
    /* Made once, kept in <state_dir>/register-key (0600) before the first register and sent
     * with every one: a join-token register whose reply was lost is retried as this node. */
    char register_key[NUBO_REGISTER_KEY_MAX];
    bool registered, registering;
    uint64_t gen;                /* bumps on every (re)register: stale replies are dropped */
    int64_t version;             /* assignment version applied */
    int64_t heartbeat_ms;
    int64_t backoff_ms;
    bool watch_inflight, status_inflight, log_inflight;
    struct event *hb_ev, *retry_ev, *kick_ev;
    int assign_wd;
};
int agent_ctl_start(struct agent *ag, struct nubo_err *err);
void agent_ctl_kick(struct agent *ag); /* something changed: report soon */
void agent_ctl_stop(struct agent *ag);
/* Points reg's token requests at the controller's token service over the controller
 * connection, with the node's credential (main thread; reg is then a worker's copy). */
void agent_ctl_registry_cred(struct agent *ag, struct nubo_registry *reg);
void agent_ctl_on_inotify(struct agent *ag, int wd);

/* agent.c: the context, the main loop and the worker/post machinery. */
typedef void (*agent_main_fn)(struct agent *ag, void *arg);
struct agent_post {
    agent_main_fn fn;
    void *arg;
    TAILQ_ENTRY(agent_post) link;
};

/* How a lower floor reaches the modules above it (set by agent_init; a NULL hook does nothing):
 * the report loop (ctl.c), the instance reconciler (instance.c) and the state file (state.c). */
struct agent_events {
    void (*kick)(struct agent *ag); /* something changed: report soon */
    /* reg gets a pointer to the controller list (its current one is shared): not const */
    void (*registry_cred)(struct agent *ag, struct nubo_registry *reg);
    void (*domain_event)(struct agent *ag, const char *uuid, int event, int detail);
    void (*domains_resync)(struct agent *ag);
    void (*reconcile_all)(struct agent *ag);
    int (*save)(struct agent *ag, struct nubo_err *err);
};

struct agent {
    struct agent_config cfg;
    struct event_base *base;
    enum agent_accel accel;       /* resolved */
    int64_t tsc_khz;
    int64_t memory_mb, vcpus;     /* offered */
    struct nubo_node_info node;
    bool have_node;
    LIST_HEAD(, agent_instance) instances;
    LIST_HEAD(, agent_image) images;
    LIST_HEAD(, agent_volume) volumes; /* volumes.c */
    char volume_dir[AGENT_PATH_MAX];
    int64_t volume_mb; /* offered to volumes */
    bool stats_inflight, stats_dirty; /* stats.c */
    struct nubo_volume_spec *vol_want; /* volumes.c: the last desired volume set */
    size_t n_vol_want;
    bool have_vol_want;
    struct agent_virt virt;
    struct agent_ctl ctl;
    struct agent_slots *slots;    /* slotpool.c */
    int inotify_fd;
    struct event *inotify_ev;
    pthread_mutex_t post_mu;
    TAILQ_HEAD(, agent_post) posts;
    struct event *post_ev;
    struct event *save_ev;
    bool save_pending;
    bool bridge_ready;
    bool have_assignments;        /* a desired set arrived since start */
    int workers;                  /* worker threads in flight */
    pthread_mutex_t work_mu;
    pthread_cond_t work_cv;
    bool stopping;
    struct event *sig_ev[3];
    struct agent_events events;
};

static inline void agent_ev_kick(struct agent *ag)
{
    if (ag->events.kick)
        ag->events.kick(ag);
}
static inline void agent_ev_reconcile_all(struct agent *ag)
{
    if (ag->events.reconcile_all)
        ag->events.reconcile_all(ag);
}

/* slots.c: the warm-slot take path (layout shared with agent/slotfw/slotfw.S). Guest RAM of a
 * slot below the kernel: 0x7000 mailbox {u64 magic, u32 PVH entry, u32 start_info paddr},
 * 0x8000 hvm_start_info + its memory map, 0x9000 command line (NUL-terminated), 0xa000 the
 * ACPI tables (RSDP, XSDT, FADT, DSDT) describing microvm's GED as qemu's own tables do. */
#define AGENT_SLOT_MAILBOX_PADDR 0x7000u
#define AGENT_SLOT_MAILBOX_MAGIC 0x30544c534f42554eull /* "NUBOSLT0" */
#define AGENT_SLOT_START_INFO_PADDR 0x8000u
#define AGENT_SLOT_START_INFO_SIZE 56                  /* struct hvm_start_info, version 1 */
#define AGENT_SLOT_MEMMAP_PADDR (AGENT_SLOT_START_INFO_PADDR + AGENT_SLOT_START_INFO_SIZE)
#define AGENT_SLOT_CMDLINE_PADDR 0x9000u
#define AGENT_SLOT_CMDLINE_MAX 4096
#define AGENT_SLOT_ACPI_PADDR (AGENT_SLOT_CMDLINE_PADDR + AGENT_SLOT_CMDLINE_MAX)
#define AGENT_SLOT_ACPI_SIZE 0x1000
#define AGENT_SLOT_LAYOUT_END (AGENT_SLOT_ACPI_PADDR + AGENT_SLOT_ACPI_SIZE)
#define AGENT_SLOT_KERNEL_MIN 0x100000u   /* the kernel's segments: from 1 MiB ... */
#define AGENT_SLOT_KERNEL_MAX (1u << 30)  /* ... up to 1 GiB (and its RAM) */
#define AGENT_SLOT_SEGMENTS_MAX 16        /* PT_LOAD segments of a kernel a slot takes */
#define AGENT_SLOT_WRITES_MAX (2 * AGENT_SLOT_SEGMENTS_MAX + 4) /* + bss, start_info, cmdline, ACPI, mailbox */
struct agent_slot_write {
    uint64_t gpa;
    const void *data; /* NULL: zeros (a segment's bss) */
    size_t len;
};
struct agent_slot_image {
    char *kernel;
    size_t kernel_len;
    uint32_t entry;
    unsigned char mailbox[16];
    unsigned char start_info[AGENT_SLOT_START_INFO_SIZE + 4 * 24];
    char cmdline[AGENT_SLOT_CMDLINE_MAX];
    unsigned char acpi[AGENT_SLOT_ACPI_SIZE];
    struct agent_slot_write writes[AGENT_SLOT_WRITES_MAX];
    int n_writes; /* in order; the mailbox last */
};
/* What taking a slot writes for this PVH kernel and command line in RAM of memory_mb. */
int agent_slot_image_build(const char *kernel_path, const char *cmdline, int64_t memory_mb,
                           struct agent_slot_image *im, struct nubo_err *err);
void agent_slot_image_free(struct agent_slot_image *im);
typedef int (*agent_slot_write_fn)(void *ctx, uint64_t gpa, const void *data, size_t len,
                                   struct nubo_err *err);
int agent_slot_image_apply(const struct agent_slot_image *im, agent_slot_write_fn fn, void *ctx,
                           struct nubo_err *err);
/* A paused slot's qemu and where its guest RAM (a shared memfd) is mapped in it. */
struct agent_slot_ram {
    pid_t pid;
    uint64_t hva, size;
};
pid_t agent_slot_qemu_pid(const char *domain_name);
int agent_slot_ram_find(pid_t pid, int64_t memory_mb, struct agent_slot_ram *r,
                        struct nubo_err *err);
/* Mark the slot's mailbox "taking" before anything else is written; a slot whose mailbox is
 * not all zero (a take interrupted) is not clean and must be destroyed, never reused. */
int agent_slot_mark_taking(const struct agent_slot_ram *ram, struct nubo_err *err);
bool agent_slot_is_clean(const struct agent_slot_ram *ram);
/* Write the image into the slot's guest RAM (/proc/<pid>/mem); then resume the domain. */
int agent_slot_fill(const struct agent_slot_ram *ram, const struct agent_slot_image *im,
                    struct nubo_err *err);

/* slotpool.c: the pool of warm slots per shape, launched and refilled in the background
 * (workers; bookkeeping on the main thread). */
enum agent_slot_state { AGENT_SLOT_LAUNCHING = 0, AGENT_SLOT_WARM };
struct agent_slot {
    char name[NUBO_UUID_STR_LEN + 1]; /* the domain's name and uuid */
    size_t shape;                     /* index into cfg.slot_shapes */
    enum agent_slot_state state;
    char tap[AGENT_TAP_MAX];
    char mac[AGENT_MAC_STR_MAX];
    struct agent_slot_ram ram;
    LIST_ENTRY(agent_slot) link;
};
LIST_HEAD(agent_slot_list, agent_slot);
struct agent_slots {
    struct agent_slot_list list;
    int launching;               /* launches in flight */
    int taking;                  /* takes in flight (refill waits for them) */
    int64_t last_take_mono_us;   /* the latest take began or ended (refill settles after it) */
    int64_t backoff_ms;          /* after a failed launch */
    struct event *retry_ev;      /* a failed launch's back-off, or the refill's settle time */
    uint64_t launched, taken, replaced; /* counters for the log and tests */
};
/* "16x1, 128x2" -> shapes (memory_mb x vcpus). */
int agent_slot_shapes_parse(const char *list, struct agent_slot_shape *out, size_t max,
                            size_t *n_out, struct nubo_err *err);
void agent_slot_shape_name(const struct agent_slot_shape *s, char out[32]);
/* Pure bookkeeping (unit-tested): the shape index of (memory_mb, vcpus) or -1; slots of a
 * shape counted (warm and launching); a warm slot of that shape or NULL. */
int agent_slot_shape_find(const struct agent_config *c, int64_t memory_mb, int64_t vcpus);
int agent_slot_count(const struct agent_slot_list *l, size_t shape, bool warm_only);
struct agent_slot *agent_slot_pick(struct agent_slot_list *l, size_t shape);
/* Memory (MiB) the configured pool holds: taken off the node's offered capacity. */
int64_t agent_slots_reserved_mb(const struct agent_config *c);
/* The slot's tap and MAC, derived from its name (so re-adoption finds them again). */
void agent_slot_net_names(const char *name, char tap[AGENT_TAP_MAX], char mac[AGENT_MAC_STR_MAX]);
int agent_slots_init(struct agent *ag, struct nubo_err *err);
void agent_slots_free(struct agent *ag);
/* Launch what each shape lacks (no-op while libvirt or the bridge is not there). */
void agent_slots_refill(struct agent *ag);
/* Take a warm slot of the shape out of the pool (NULL: none); the caller owns it then and
 * calls agent_slots_take_done once the take's worker is back (success or not). */
struct agent_slot *agent_slots_take(struct agent *ag, int64_t memory_mb, int64_t vcpus);
void agent_slots_take_done(struct agent *ag);
/* A lifecycle event for a domain no instance holds: 1 when it was a slot of ours. */
int agent_slots_on_event(struct agent *ag, const char *name, int event);
/* Resync: a listed domain that is a slot (paused, metadata shape) -> kept or adopted (1), or
 * destroyed (0); afterwards slots libvirt no longer lists are dropped. */
int agent_slots_adopt(struct agent *ag, virDomainPtr dom, const char *shape);
void agent_slots_resync_done(struct agent *ag, virDomainPtr *doms, int n);

int agent_init(struct agent *ag, const struct agent_config *cfg, struct nubo_err *err);
int agent_run_loop(struct agent *ag);
void agent_fini(struct agent *ag);
/* loop.c: threading plumbing (below every module). */
int agent_loop_init(struct agent *ag, struct nubo_err *err);
void agent_loop_fini(struct agent *ag);
/* Run fn(arg) on the main thread soon (safe from any thread). */
void agent_post_main(struct agent *ag, agent_main_fn fn, void *arg);
/* Run work(arg) on a worker thread, then done(ag, arg) on the main thread. */
int agent_spawn(struct agent *ag, void (*work)(void *arg), agent_main_fn done, void *arg);
void agent_schedule_save(struct agent *ag);
int agent_inotify_add(struct agent *ag, const char *dir, uint32_t mask);

#endif
