#ifndef VE_SPAWN_H
#define VE_SPAWN_H
#include "enforce.h"

/* Steps of the child sequence, in the order they run. A failure reports the
 * step, the errno and an index (which fd, which rule) in struct ve_result. */
enum {
	VE_STEP_NONE = 0,
	VE_STEP_SIGNALS,
	VE_STEP_STDIO,
	VE_STEP_CHDIR,
	VE_STEP_UMASK,
	VE_STEP_SETSID,
	VE_STEP_SETPGID,
	VE_STEP_SETGROUPS,
	VE_STEP_SETGID,
	VE_STEP_SETUID,
	VE_STEP_CLOSE_FDS,
	/* enforcement (ve_apply), DESIGN.md's order */
	VE_STEP_CGROUP,
	VE_STEP_USERNS,
	VE_STEP_UID_MAP,
	VE_STEP_NETNS,
	VE_STEP_LOOPBACK,
	VE_STEP_CAPS,
	VE_STEP_NO_NEW_PRIVS,
	VE_STEP_LANDLOCK,
	VE_STEP_SECCOMP,
	VE_STEP_EXEC,
	VE_STEP_CLONE,
	VE_STEP_COUNT
};

#define VE_MAX_PROCS_FDS 16

/* Everything the child needs to restrict itself, prepared by the parent. */
struct ve_plan {
	int fail_step;    /* test hook: fail with EPERM at this step */
	int n_procs_fds;  /* cgroup.procs fds to write "0" into (join) */
	int procs_fds[VE_MAX_PROCS_FDS];
	int unshare_flags; /* CLONE_NEWUSER | CLONE_NEWNET ... */
	char uid_map[48];  /* written to /proc/self/uid_map after CLONE_NEWUSER */
	char gid_map[48];
	int loopback_up;   /* bring "lo" up in a new network namespace */
	int drop_caps;     /* reduce bounding/ambient/permitted/effective to cap_keep */
	int cap_last;      /* /proc/sys/kernel/cap_last_cap */
	uint64_t cap_keep;
	int no_new_privs;
	int landlock_fd;   /* -1: none */
	uint32_t landlock_flags;
	const void *bpf;   /* struct sock_filter[], precompiled */
	uint32_t bpf_len;  /* instructions; 0: no filter */
	uint32_t seccomp_flags;
};

struct ve_result {
	int step;
	int err;
	int index;
};

struct ve_spawn_args {
	const char *const *exec_paths; /* candidates, NULL-terminated (PATH search done) */
	char *const *argv;
	char *const *envp;             /* NULL: inherit environ */
	const char *cwd;               /* NULL: keep */
	int fd0, fd1, fd2;             /* child's stdio, -1: inherit */
	int close_fds;
	const int *keep_fds;           /* sorted, made inheritable */
	int n_keep_fds;
	int restore_signals;           /* SIGPIPE, SIGXFSZ back to default */
	int new_session;
	int pgid;                      /* -1: none */
	int umask_value;               /* -1: keep */
	int gid, uid;                  /* -1: keep */
	const uint32_t *groups;
	int n_groups;                  /* -1: keep */
	int cgroup_fd;                 /* CLONE_INTO_CGROUP target, -1: none */
	int cgroup_procs_fd;           /* fallback when clone3 is refused, -1: none */
};

int ve_apply(const struct ve_plan *plan, struct ve_result *res);
int ve_preexec(const struct ve_plan *plan, struct ve_result *res, int report_fd);
int ve_spawn(const struct ve_spawn_args *args, const struct ve_plan *plan,
	     struct ve_result *res);
int ve_clone3_supported(void);
#endif
