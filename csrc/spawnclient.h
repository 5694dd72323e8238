/*
 * The spawner's protocol, and the library's side of it.
 *
 * volt-spawner (csrc/spawner/spawner.c) is a small static program that a
 * Sandbox starts once: it restricts itself with the sandbox's plan (ve_apply),
 * then starts each child on request with clone(CLONE_PARENT), so that the child
 * is the caller's own and inherits the restrictions instead of attaching them
 * again. Requests and replies are SOCK_SEQPACKET messages over a socketpair;
 * fds travel as SCM_RIGHTS. One spawner serves one request at a time; the
 * library keeps a pool of them for threads spawning at once.
 *
 * The spawner shares the caller's fs_struct (CLONE_FS): its cwd, root and umask
 * are the caller's at call time. A request carries the rest of the caller's
 * state (argv, env, rlimits, blocked and ignored signals, stdio and pass_fds).
 * The caller's fingerprint (credentials, capabilities, no_new_privs, seccomp,
 * the thread's cgroups, process group, affinity) is compared with the one it had when the
 * spawner started: a mismatch is VE_SPAWNER_STALE, and the library starts a new
 * spawner, so that a child never has fewer restrictions than its caller.
 */
#ifndef VE_SPAWNCLIENT_H
#define VE_SPAWNCLIENT_H
#include "enforce.h"

#define VE_SPAWNER_MAGIC 0x31505356u /* "VSP1" */
/* the largest message: argv, env and paths must fit, else the direct path */
#define VE_SPAWNER_MAX_MSG (192 * 1024)
/* fds per request (SCM_MAX_FD is 253): cwd, stdio, pass_fds */
#define VE_SPAWNER_MAX_FDS 200
#define VE_SPAWNER_NLIMITS 16 /* RLIM_NLIMITS */
#define VE_SPAWNER_FP_MAX 8192

/* message kinds */
#define VE_SPAWNER_SETUP 1  /* library -> spawner: the plan; fds: ruleset, slot memfd */
#define VE_SPAWNER_SPAWN 2  /* library -> spawner: a child to start */
#define VE_SPAWNER_READY 3  /* spawner -> library: restricted (or step/err of the failure) */
#define VE_SPAWNER_RESULT 4 /* spawner -> library: pid, and step/err/index if it failed */
#define VE_SPAWNER_STALE 5  /* spawner -> library: it cannot give this caller's state */
#define VE_SPAWNER_ERROR 6  /* spawner -> library: request refused (err: EMFILE, ...) */

/* request flags */
#define VE_SPAWNER_RESTORE_SIGNALS 1
#define VE_SPAWNER_NEW_SESSION 2

/* ve_spawner_call's own results besides a pid (all negative, below -4095) */
#define VE_SPAWNER_R_STALE (-10001)  /* fingerprint or rlimit mismatch: restart, retry */
#define VE_SPAWNER_R_DEAD (-10002)   /* the spawner was gone before the request: restart */
#define VE_SPAWNER_R_LOST (-10003)   /* it died during the request (res->index: the
				      * child's pid, 0 if none was started) */
#define VE_SPAWNER_R_REFUSED (-10004) /* VE_SPAWNER_ERROR: res->err says why */
#define VE_SPAWNER_R_TOO_BIG (-10005) /* the request does not fit: use the direct path */
#define VE_SPAWNER_R_BADFD (-10006) /* an fd to pass is not open: the direct path says so */
#define VE_SPAWNER_R_PROBE (-10007) /* the pool's /proc/self/stat fd is another file now */
#define VE_SPAWNER_R_UNREADABLE (-10008) /* this thread's state cannot be read (res->err):
					   * the direct path */

/* ve_spawner_checks: the checks this thread cannot make */
#define VE_SPAWNER_CHECK_KCMP 1 /* the fs_struct and Landlock domain (kcmp) */

struct ve_spawner_setup {
	uint32_t magic, kind;
	int32_t fail_step;     /* the plan's fault injection */
	int32_t drop_caps, cap_last;
	uint64_t cap_keep;
	int32_t no_new_privs;
	int32_t has_ruleset;   /* the ruleset is the first fd; the slot memfd follows */
	uint32_t landlock_flags;
	uint32_t seccomp_flags;
	uint32_t bpf_len;      /* instructions; the program follows this struct */
	uint32_t child_restrict_flags;
	uint64_t child_scopes; /* the per-child layer: these scopes, or else */
	uint64_t child_fs;     /*   this fs right handled and granted beneath "/" */
	int32_t nofile_limit;  /* test hook: the spawner's RLIMIT_NOFILE soft limit; 0: keep */
	int32_t stop_child;    /* test hook: each child stops itself (SIGSTOP) before exec */
};

/* Shared between the library and one spawner (a memfd both map): the kernel
 * writes the child's pid here (CLONE_PARENT_SETTID) before the child runs, so
 * that a spawner killed during a request leaves no child the caller cannot reap. */
struct ve_spawner_slot {
	volatile int32_t pid;
};

struct ve_spawner_req {
	uint32_t magic, kind;
	uint32_t n_exec_paths, n_argv, n_env; /* strings, in that order, then cwd */
	uint32_t strings_len;
	int32_t has_cwd;       /* a cwd string after env (relative to the shared cwd) */
	int32_t stdio[3];      /* index into the fds, -1: closed in the child */
	int32_t keep_base;     /* index of the first pass_fd */
	int32_t n_keep;        /* pass_fds: target numbers follow this struct */
	int32_t umask_value;   /* -1: the one shared with the caller (CLONE_FS) */
	uint32_t flags;
	uint64_t blocked;      /* the calling thread's signal mask (signals 1..64) */
	uint64_t ignored;      /* signals the caller ignores */
	uint64_t rlim[VE_SPAWNER_NLIMITS][2]; /* cur, max */
	uint64_t cpus[16];     /* the calling thread's affinity (the spawner runs pinned) */
};

struct ve_spawner_reply {
	uint32_t magic, kind;
	int32_t pid, step, err, index;
};

/* What the library asks for; strings are one NUL-separated blob. */
struct ve_spawner_call {
	const char *strings;   /* exec paths, argv, env (unless n_env < 0), cwd (if has_cwd) */
	uint32_t strings_len;
	int32_t n_exec_paths, n_argv, n_env; /* n_env -1: the caller's environ */
	int32_t has_cwd;
	int32_t fd0, fd1, fd2; /* -1: the caller's own 0, 1, 2 */
	const int *keep_fds;
	int32_t n_keep_fds;
	int32_t restore_signals, new_session;
	int32_t umask_value;   /* -1: the caller's */
	/* what the fingerprint reads: the fd of /proc/self/stat the pool keeps open
	 * (and its st_dev and st_ino, checked), the capabilities whose bounding bit
	 * matters (those the plan keeps), and whether the ambient set does (the plan
	 * keeps all) */
	int32_t stat_fd;
	uint64_t stat_dev, stat_ino;
	uint64_t cap_check;
	int32_t check_ambient;
	/* the spawner's pid, and the CPU it was last pinned to (-1: none yet): it is
	 * pinned to the caller's CPU, so that the request and the reply wake a task
	 * on the CPU that is running, not an idle one */
	int32_t spawner_pid;
	int32_t *pinned_cpu;
	/* check that this thread still shares the spawner's fs_struct (its cwd, root
	 * and umask) and may still ptrace-read it (kcmp): Landlock refuses that once
	 * this thread entered a domain the spawner is not beneath, i.e. when this
	 * thread is more restricted than the spawner's children would be. Only where
	 * ve_spawner_fs_probe succeeded when the spawner started (it needs
	 * CAP_SYS_PTRACE: the spawner is not dumpable) */
	int32_t check_fs;
};

int ve_spawner_fingerprint(const struct ve_spawner_call *call, char *buf, int size);
int ve_spawner_start(const char *path, int sock, int devnull);
int ve_spawner_setup(int sock, const struct ve_plan *plan, int slot_fd,
		     uint64_t child_scopes, uint64_t child_fs, uint32_t child_restrict_flags,
		     int nofile_limit, int stop_child, struct ve_result *res);
int ve_spawner_fs_probe(int spawner_pid);
int ve_spawner_checks(void);
int ve_spawner_call(int sock, const struct ve_spawner_call *call, const char *fp, int fp_len,
		    struct ve_spawner_slot *slot, struct ve_result *res);
#endif
