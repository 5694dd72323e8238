#ifndef VE_SPAWN_H
#define VE_SPAWN_H
#include "enforce.h"
#include "view.h"


#define VE_MAX_PROCS_FDS 16

/* Everything the child needs to restrict itself, prepared by the parent. */
struct ve_plan {
	int fail_step;    /* fault injection for the tests: fail with EPERM at this step */
	int n_procs_fds;  /* cgroup.procs fds to write "0" into (join) */
	int procs_fds[VE_MAX_PROCS_FDS];
	int new_session;   /* setsid(); a session leader gives up its terminal */
	int unshare_flags; /* CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS */
	char uid_map[48];  /* written to /proc/self/uid_map after CLONE_NEWUSER */
	char gid_map[48];
	int loopback_up;   /* bring "lo" up in a new network namespace */
	int join_net;      /* setns(net_fd): the private network the parent prepared */
	int net_fd;
	char resolv_src[256]; /* non-empty: bind this file over resolv_dst, read-only, */
	char resolv_dst[256]; /* in a mount namespace of the child's own */
	unsigned long resolv_flags; /* the source mount's flags (MS_NOSUID, ...) to keep */
	int drop_caps;     /* reduce bounding/ambient/permitted/effective to cap_keep */
	int cap_last;      /* /proc/sys/kernel/cap_last_cap */
	uint64_t cap_keep;
	int no_new_privs;
	int landlock_fd;   /* -1: none */
	uint32_t landlock_flags;
	const void *bpf;   /* struct sock_filter[], precompiled */
	uint32_t bpf_len;  /* instructions; 0: no filter */
	uint32_t seccomp_flags;
	const struct ve_view *view; /* NULL: the caller's filesystem (csrc/view.c) */
};

struct ve_result {
	int step;
	int err;
	int index;
	int flags;  /* VE_RESULT_* (view.h) */
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
