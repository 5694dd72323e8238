/*
 * volt-enforce C core: shared definitions.
 *
 * Every C file includes this header. Kernel constants come from the installed
 * kernel headers; the ones that older headers lack are defined here once, each
 * with the kernel version that introduced it. Functions return >= 0 on success
 * or -errno, with errno saved right after the failing call.
 */
#ifndef VOLT_ENFORCE_H
#define VOLT_ENFORCE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/types.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <linux/filter.h>
#include <linux/audit.h>
#include <linux/sched.h>

/* ---- syscall numbers ---------------------------------------------------- */
#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444 /* 5.13, same number on every arch */
#endif
#ifndef __NR_landlock_add_rule
#define __NR_landlock_add_rule 445
#endif
#ifndef __NR_landlock_restrict_self
#define __NR_landlock_restrict_self 446
#endif
#ifndef __NR_clone3
#define __NR_clone3 435 /* 5.3 */
#endif
#ifndef __NR_close_range
#define __NR_close_range 436 /* 5.9 */
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434 /* 5.3 */
#endif

/* ---- Landlock ------------------------------------------------------------ */
#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0) /* 5.13 */
#endif
#ifndef LANDLOCK_CREATE_RULESET_ERRATA
#define LANDLOCK_CREATE_RULESET_ERRATA (1U << 1) /* 6.15 */
#endif
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13) /* 5.19, ABI 2 */
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* 6.2, ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) /* 6.10, ABI 5 */
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0) /* 6.7, ABI 4 */
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* 6.12, ABI 6 */
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif
#ifndef LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF
#define LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF (1U << 0) /* 6.15, ABI 7 */
#define LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON (1U << 1)
#define LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF (1U << 2)
#endif
/* ABI 8 to 11: values from include/uapi/linux/landlock.h of Linux 7.3-rc7 (Debian's
 * linux-libc-dev 7.3~rc7-1~exp1; the same in sid's 7.2.13-1 but NO_NEW_PRIVS). */
#ifndef LANDLOCK_RESTRICT_SELF_TSYNC
#define LANDLOCK_RESTRICT_SELF_TSYNC (1U << 3) /* ABI 8 */
#endif
#ifndef LANDLOCK_ACCESS_FS_RESOLVE_UNIX
#define LANDLOCK_ACCESS_FS_RESOLVE_UNIX (1ULL << 16) /* ABI 9 */
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_UDP
#define LANDLOCK_ACCESS_NET_BIND_UDP (1ULL << 2) /* ABI 10, Linux 7.2 */
#define LANDLOCK_ACCESS_NET_CONNECT_SEND_UDP (1ULL << 3)
#endif
#ifndef LANDLOCK_ADD_RULE_QUIET
#define LANDLOCK_ADD_RULE_QUIET (1U << 0) /* ABI 10, Linux 7.2 */
#endif
#ifndef LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS
#define LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS (1U << 4) /* ABI 11, Linux 7.3 */
#endif
#define VE_LANDLOCK_RULE_PATH_BENEATH 1 /* enum landlock_rule_type, 5.13 */
#define VE_LANDLOCK_RULE_NET_PORT 2     /* 6.7 */

/* The full ABI 10 attribute (48 bytes, as in 7.2's UAPI); older headers only have
 * handled_access_fs. The kernel reads as many bytes as the size argument says, and
 * refuses (E2BIG) a size beyond what it knows unless the extra bytes are zero. */
struct ve_landlock_ruleset_attr {
	__u64 handled_access_fs;
	__u64 handled_access_net; /* ABI 4 */
	__u64 scoped;             /* ABI 6 */
	__u64 quiet_access_fs;    /* ABI 10 */
	__u64 quiet_access_net;   /* ABI 10 */
	__u64 quiet_scoped;       /* ABI 10 */
};

struct ve_landlock_path_beneath_attr {
	__u64 allowed_access;
	__s32 parent_fd;
} __attribute__((packed));

struct ve_landlock_net_port_attr { /* ABI 4 */
	__u64 allowed_access;
	__u64 port;
};

/* ---- seccomp --------------------------------------------------------------- */
#ifndef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH (1UL << 4) /* 5.7 */
#endif
#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U /* 4.14 */
#endif
#ifndef SECCOMP_RET_LOG
#define SECCOMP_RET_LOG 0x7ffc0000U /* 4.14 */
#endif

/* ---- clone3 ---------------------------------------------------------------- */
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL /* 5.7 */
#endif
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL /* 5.5 */
#endif

/* Save errno as a negative result right after a failed call. */
#define VE_ERR(x) ((x) < 0 ? -errno : (x))

/* ---- the steps of the child sequence ------------------------------------------
 * One list, in the order they run: the enum, the names Python reports
 * (EnforcementError.step, via ve_step_name) and volt-init's messages all come
 * from it. A failure reports the step, the errno and an index (which fd, which
 * rule) in struct ve_result. */
#define VE_STEPS(X)                                                        \
	X(NONE, "none")                                                    \
	X(SIGNALS, "signals")                                              \
	X(STDIO, "stdio")                                                  \
	X(CHDIR, "chdir")                                                  \
	X(UMASK, "umask")                                                  \
	X(SETSID, "setsid")                                                \
	X(SETPGID, "setpgid")                                              \
	X(SETGROUPS, "setgroups")                                          \
	X(SETGID, "setgid")                                                \
	X(SETUID, "setuid")                                                \
	X(CLOSE_FDS, "close_fds")                                          \
	/* enforcement (ve_apply), DESIGN.md's order */                    \
	X(CGROUP, "cgroup")                                                \
	X(SESSION, "session")                                              \
	X(VIEW, "view")                                                    \
	X(USERNS, "user_namespace")                                        \
	X(UID_MAP, "uid_map")                                              \
	X(NETNS, "namespaces")                                             \
	X(LOOPBACK, "loopback")                                            \
	X(RESOLV, "resolv_conf")                                           \
	X(CAPS, "capabilities")                                            \
	X(NO_NEW_PRIVS, "no_new_privs")                                    \
	X(LANDLOCK, "landlock")                                            \
	X(SECCOMP, "seccomp")                                              \
	X(EXEC, "exec")                                                    \
	X(CLONE, "clone")

enum {
#define VE_STEP_ENUM(id, name) VE_STEP_##id,
	VE_STEPS(VE_STEP_ENUM)
#undef VE_STEP_ENUM
	VE_STEP_COUNT
};
#define VE_FIRST_ENFORCEMENT_STEP VE_STEP_CGROUP
#define VE_LAST_ENFORCEMENT_STEP VE_STEP_SECCOMP

/* The kernel's limit on a seccomp program (BPF_MAXINSNS, linux/filter.h). */
#define VE_MAX_BPF_INSNS BPF_MAXINSNS

/* ---- helpers shared by the library and volt-init (csrc/util.c) ------------------ */
const char *ve_step_name(int step);
int ve_cap_last(void);
int ve_format_id_map(char *buf, size_t size, uint32_t inside, uint32_t outside, uint32_t count);
long ve_write_all(int fd, const char *buf, size_t len);
long ve_write_file(const char *path, const char *buf);

#endif /* VOLT_ENFORCE_H */
