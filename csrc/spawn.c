/*
 * The child sequence and the spawn path.
 *
 * ve_apply() runs the enforcement steps over a plan the parent prepared: raw
 * syscalls on data already in memory, no allocation, no locks, so it is safe
 * between fork and exec (and in a CLONE_VM child).
 *
 * ve_spawn() starts a child with clone3(CLONE_VM | CLONE_VFORK), optionally
 * straight into a cgroup (CLONE_INTO_CGROUP), applies the plan and execs. The
 * parent is suspended until the exec or the child's exit, so the child writes
 * its failure (step, errno) directly into the parent's struct ve_result.
 */
#include "spawn.h" /* first: it defines _GNU_SOURCE */
#include "landlock.h"
#include "seccomp.h"
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/capability.h>
#include <linux/close_range.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2) /* 5.11 */
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47 /* 4.3 */
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define VE_CHILD_STACK (64 * 1024)

static inline long fail(struct ve_result *res, int step, int err, int index)
{
	volatile struct ve_result *r = res;
	r->step = step;
	r->err = err;
	r->index = index;
	return -err;
}

/* A step whose call returns -1 and sets errno. */
#define CHECK(step, call, index)                                    \
	do {                                                        \
		if (plan->fail_step == (step))                      \
			return fail(res, (step), EPERM, (index));   \
		if ((call) < 0)                                     \
			return fail(res, (step), errno, (index));   \
	} while (0)

/* A step whose call is one of the core's helpers: >= 0, or -errno. */
#define CHECK_RC(step, call, index)                                 \
	do {                                                        \
		if (plan->fail_step == (step))                      \
			return fail(res, (step), EPERM, (index));   \
		long rc_ = (call);                                  \
		if (rc_ < 0)                                        \
			return fail(res, (step), (int)-rc_, (index)); \
	} while (0)

static long loopback_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	long r = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (r == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		r = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	int saved = errno;
	close(s);
	errno = saved;
	return r;
}

/* The private network's resolv.conf: a mount namespace of the child's own in
 * which the parent's file is bound, read-only, over the host's (never written).
 * Index: 0 unshare, 1 making mounts private, 2 the bind, 3 read-only. */
static long bind_resolv(const struct ve_plan *plan, int *index)
{
	*index = 0;
	if (!(plan->unshare_flags & CLONE_NEWNS) && syscall(SYS_unshare, CLONE_NEWNS) < 0)
		return -1;
	*index = 1;
	if (mount("none", "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return -1;
	*index = 2;
	if (mount(plan->resolv_src, plan->resolv_dst, NULL, MS_BIND, NULL) < 0)
		return -1;
	*index = 3;
	return mount(NULL, plan->resolv_dst, NULL,
		     MS_REMOUNT | MS_BIND | MS_RDONLY | plan->resolv_flags, NULL);
}

/* Bounding set and ambient set first (they need CAP_SETPCAP), then the
 * permitted, effective and inheritable sets. */
static long drop_caps(const struct ve_plan *plan, int *failed_cap)
{
	for (int cap = 0; cap <= plan->cap_last && cap < 64; cap++) {
		if (plan->cap_keep & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
			*failed_cap = cap;
			return -1;
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -1;
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		uint32_t keep = (uint32_t)(plan->cap_keep >> (32 * i));
		data[i].effective &= keep;
		data[i].permitted &= keep;
		data[i].inheritable &= keep;
	}
	return syscall(SYS_capset, &hdr, data);
}

/* A new session, so that the child has no controlling terminal to push input
 * into (TIOCSTI) or to signal the caller's job through. Where setsid is refused
 * (an init shim restricting itself that leads a session or a process group),
 * the process gives its controlling terminal up instead; a session leader
 * ignores the SIGHUP that this sends to its foreground group. */
static long new_session(void)
{
	if (setsid() >= 0)
		return 0;
	if (errno != EPERM)
		return -1;
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* no controlling terminal: nothing to give up */
	struct sigaction ign, old;
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &ign, &old);
	long r = ioctl(fd, TIOCNOTTY);
	int saved = errno;
	sigaction(SIGHUP, &old, NULL);
	close(fd);
	errno = saved;
	return r;
}

int ve_apply(const struct ve_plan *plan, struct ve_result *res)
{
	for (int i = 0; i < plan->n_procs_fds && i < VE_MAX_PROCS_FDS; i++)
		CHECK(VE_STEP_CGROUP, ve_write_all(plan->procs_fds[i], "0", 1), i);
	if (plan->new_session)
		CHECK(VE_STEP_SESSION, new_session(), 0);
	/* before the user namespace: entering the template needs the caller's caps */
	int ruleset_fd = plan->landlock_fd, view_fd = -1;
	if (plan->view) {
		int idx = -1, outside = 0;
		CHECK_RC(VE_STEP_VIEW, ve_view_enter(plan->view, &view_fd, &idx, &outside), idx);
		if (outside)
			((volatile struct ve_result *)res)->flags |= VE_RESULT_CWD_OUTSIDE_VIEW;
		if (view_fd >= 0 || plan->view->ll)
			ruleset_fd = view_fd;
	}

	/* first, as host root: the prepared namespace may belong to the host's user
	 * namespace, which a child of a new user namespace could no longer join */
	if (plan->join_net)
		CHECK(VE_STEP_NETNS, syscall(SYS_setns, plan->net_fd, CLONE_NEWNET), 1);
	if (plan->unshare_flags & CLONE_NEWUSER) {
		CHECK(VE_STEP_USERNS, syscall(SYS_unshare, CLONE_NEWUSER), 0);
		CHECK(VE_STEP_UID_MAP, ve_write_file("/proc/self/setgroups", "deny"), 0);
		CHECK(VE_STEP_UID_MAP, ve_write_file("/proc/self/uid_map", plan->uid_map), 1);
		CHECK(VE_STEP_UID_MAP, ve_write_file("/proc/self/gid_map", plan->gid_map), 2);
	}
	int other_ns = plan->unshare_flags & ~CLONE_NEWUSER;
	if (other_ns)
		CHECK(VE_STEP_NETNS, syscall(SYS_unshare, other_ns), 0);
	if (plan->loopback_up)
		CHECK(VE_STEP_LOOPBACK, loopback_up(), 0);
	if (plan->resolv_src[0]) {
		int where = 0;
		CHECK(VE_STEP_RESOLV, bind_resolv(plan, &where), where);
	}

	if (plan->drop_caps) {
		int cap = -1;
		CHECK(VE_STEP_CAPS, drop_caps(plan, &cap), cap);
	}
	/* with LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS (ABI 11) on a ruleset the kernel sets
	 * no_new_privs iff the restriction succeeds; otherwise prctl does, first */
	int nnp_by_landlock = plan->no_new_privs && ruleset_fd >= 0 &&
			      (plan->landlock_flags & LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS);
	if (plan->no_new_privs && !nnp_by_landlock)
		CHECK(VE_STEP_NO_NEW_PRIVS, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	/* fd -1 with LOG_SUBDOMAINS_OFF alone is valid on ABI 7 */
	if (ruleset_fd >= 0 || plan->landlock_flags)
		CHECK_RC(VE_STEP_LANDLOCK,
			 ve_landlock_restrict_self(ruleset_fd, plan->landlock_flags,
						   nnp_by_landlock), 0);
	if (view_fd >= 0)
		close(view_fd); /* built for this process (apply_self keeps running) */
	/* ve_seccomp_load also fails when TSYNC could not synchronize a thread (the
	 * kernel then returns that thread's id and installs nothing) */
	if (plan->bpf_len > 0)
		CHECK_RC(VE_STEP_SECCOMP,
			 ve_seccomp_load(plan->bpf, plan->bpf_len, plan->seccomp_flags), 0);
	if (plan->fail_step >= VE_FIRST_ENFORCEMENT_STEP &&
	    plan->fail_step <= VE_LAST_ENFORCEMENT_STEP)
		return fail(res, plan->fail_step, EPERM, 0); /* a step that was not planned */
	return 0;
}

/* For a fork()ed child (subprocess's preexec_fn): apply the plan and, on
 * failure, send the result to the parent through report_fd before the
 * caller raises. The record is smaller than PIPE_BUF, so it arrives whole. */
int ve_preexec(const struct ve_plan *plan, struct ve_result *res, int report_fd)
{
	int r = ve_apply(plan, res);
	if (r < 0 && report_fd >= 0) {
		int saved = res->err;
		ve_write_all(report_fd, (const char *)res, sizeof(*res));
		errno = saved;
	}
	return r;
}

/* ---- spawn ---------------------------------------------------------------- */

struct child_ctx {
	const struct ve_spawn_args *args;
	const struct ve_plan *plan;
	struct ve_result *res;
	const sigset_t *old_mask;
	int join_v2_procs;    /* clone3 was refused: join the v2 cgroup by writing */
	int handlers_cleared; /* CLONE_CLEAR_SIGHAND reset the caught signals */
};

static long dup_stdio(int fd, int target)
{
	if (fd < 0)
		return 0;
	if (fd == target) /* dup2 would be a no-op: clear close-on-exec by hand */
		return fcntl(fd, F_SETFD, 0);
	return dup2(fd, target);
}

/* Mark every fd >= 3 close-on-exec except the kept ones, which become
 * inheritable. The plan's own fds stay usable until the exec. */
static long close_fds(const struct ve_spawn_args *a)
{
	unsigned int lo = 3;
	for (int i = 0; i < a->n_keep_fds; i++) {
		unsigned int fd = (unsigned int)a->keep_fds[i];
		if (fd < lo)
			continue;
		if (fd > lo && syscall(__NR_close_range, lo, fd - 1, CLOSE_RANGE_CLOEXEC) < 0)
			return -1;
		if (fcntl((int)fd, F_SETFD, 0) < 0)
			return -1;
		lo = fd + 1;
	}
	return syscall(__NR_close_range, lo, ~0U, CLOSE_RANGE_CLOEXEC);
}

static int child_main(void *arg)
{
	struct child_ctx *c = arg;
	const struct ve_spawn_args *a = c->args;
	const struct ve_plan *plan = c->plan;
	struct ve_result *res = c->res;
	long r;

	/* Handlers point into the parent's memory: reset every caught signal
	 * (clone3's CLONE_CLEAR_SIGHAND did it already when it was used). */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < _NSIG; sig++) {
		struct sigaction cur;
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (c->handlers_cleared && sig != SIGPIPE && sig != SIGXFSZ)
			continue;
		if (sigaction(sig, NULL, &cur) < 0)
			continue;
		if (cur.sa_handler == SIG_IGN && !(a->restore_signals &&
		    (sig == SIGPIPE || sig == SIGXFSZ)))
			continue;
		if (cur.sa_handler != SIG_DFL || (cur.sa_flags & SA_SIGINFO))
			sigaction(sig, &dfl, NULL);
	}
	if (sigprocmask(SIG_SETMASK, c->old_mask, NULL) < 0) {
		fail(res, VE_STEP_SIGNALS, errno, 0);
		goto out;
	}

	if (c->join_v2_procs && ve_write_all(a->cgroup_procs_fd, "0", 1) < 0) {
		fail(res, VE_STEP_CGROUP, errno, -1);
		goto out;
	}

	/* stdio, as CPython's _posixsubprocess: move fds that sit on 0..2 first */
	int fd1 = a->fd1, fd2 = a->fd2;
	if (fd1 == 0 && (fd1 = fcntl(fd1, F_DUPFD_CLOEXEC, 3)) < 0) {
		fail(res, VE_STEP_STDIO, errno, 1);
		goto out;
	}
	if ((fd2 == 0 || fd2 == 1) && (fd2 = fcntl(fd2, F_DUPFD_CLOEXEC, 3)) < 0) {
		fail(res, VE_STEP_STDIO, errno, 2);
		goto out;
	}
	if (dup_stdio(a->fd0, 0) < 0 || dup_stdio(fd1, 1) < 0 || dup_stdio(fd2, 2) < 0) {
		fail(res, VE_STEP_STDIO, errno, 0);
		goto out;
	}
	if (a->cwd && chdir(a->cwd) < 0) {
		fail(res, VE_STEP_CHDIR, errno, 0);
		goto out;
	}
	if (a->umask_value >= 0)
		umask((mode_t)a->umask_value);
	/* a contained plan makes the session itself (ve_apply's session step) */
	if (a->new_session && !(plan && plan->new_session) && setsid() < 0) {
		fail(res, VE_STEP_SETSID, errno, 0);
		goto out;
	}
	if (a->pgid >= 0 && setpgid(0, a->pgid) < 0) {
		fail(res, VE_STEP_SETPGID, errno, 0);
		goto out;
	}
	if (a->n_groups >= 0 && syscall(SYS_setgroups, a->n_groups, a->groups) < 0) {
		fail(res, VE_STEP_SETGROUPS, errno, 0);
		goto out;
	}
	if (a->gid >= 0 && syscall(SYS_setresgid, a->gid, a->gid, a->gid) < 0) {
		fail(res, VE_STEP_SETGID, errno, 0);
		goto out;
	}
	if (a->uid >= 0 && syscall(SYS_setresuid, a->uid, a->uid, a->uid) < 0) {
		fail(res, VE_STEP_SETUID, errno, 0);
		goto out;
	}
	if (a->close_fds && close_fds(a) < 0) {
		fail(res, VE_STEP_CLOSE_FDS, errno, 0);
		goto out;
	}
	if (plan && ve_apply(plan, res) < 0)
		goto out;

	/* The PATH search of os._execvpe: report the first error that is not
	 * ENOENT/ENOTDIR, else the last. */
	int saved = 0, idx = 0;
	for (int i = 0; a->exec_paths[i]; i++) {
		if (a->envp)
			r = syscall(SYS_execve, a->exec_paths[i], a->argv, a->envp);
		else
			r = execv(a->exec_paths[i], a->argv);
		(void)r;
		if (saved == 0 && errno != ENOENT && errno != ENOTDIR) {
			saved = errno;
			idx = i;
		}
		if (saved == 0)
			idx = i;
	}
	fail(res, VE_STEP_EXEC, saved ? saved : errno, idx);
out:
	syscall(SYS_exit_group, 127);
	return 127;
}

#if defined(__x86_64__)
/* clone3 on a new stack, then fn(arg) there. The child returns from the
 * syscall with rsp at the new stack, so it must not touch this frame. */
static long clone3_run(struct clone_args *cl, int (*fn)(void *), void *arg)
{
	long ret;
	register void *r12 __asm__("r12") = (void *)fn;
	register void *r13 __asm__("r13") = arg;
	__asm__ volatile(
		"syscall\n\t"
		"test %%rax, %%rax\n\t"
		"jnz 1f\n\t"
		"xor %%ebp, %%ebp\n\t"
		"and $-16, %%rsp\n\t"
		"mov %%r13, %%rdi\n\t"
		"call *%%r12\n\t"
		"mov %%eax, %%edi\n\t"
		"mov $231, %%eax\n\t" /* exit_group */
		"syscall\n\t"
		"hlt\n"
		"1:\n\t"
		: "=a"(ret)
		: "0"((long)__NR_clone3), "D"(cl), "S"(sizeof(*cl)), "r"(r12), "r"(r13)
		: "rcx", "r11", "memory");
	return ret;
}
#define VE_HAVE_CLONE3 1
#else
#define VE_HAVE_CLONE3 0
#endif

static int clone3_state = 0; /* 0 unknown, 1 works, -1 refused: use clone() */

int ve_clone3_supported(void)
{
	return VE_HAVE_CLONE3 && clone3_state >= 0;
}

int ve_spawn(const struct ve_spawn_args *args, const struct ve_plan *plan,
	     struct ve_result *res)
{
	sigset_t all, old;
	long pid = -1;
	int join_v2 = 0;

	res->step = VE_STEP_NONE;
	res->err = 0;
	res->index = 0;
	res->flags = 0;

	void *stack = mmap(NULL, VE_CHILD_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return fail(res, VE_STEP_CLONE, errno, 0);

	/* No handler may run in the child before it resets them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);

	struct child_ctx ctx = { args, plan, res, &old, 0, 0 };

#if VE_HAVE_CLONE3
	if (clone3_state >= 0) {
		struct clone_args cl;
		memset(&cl, 0, sizeof(cl));
		cl.flags = CLONE_VM | CLONE_VFORK | CLONE_CLEAR_SIGHAND;
		cl.exit_signal = SIGCHLD;
		cl.stack = (uint64_t)(uintptr_t)stack;
		cl.stack_size = VE_CHILD_STACK;
		if (args->cgroup_fd >= 0) {
			cl.flags |= CLONE_INTO_CGROUP;
			cl.cgroup = (uint64_t)args->cgroup_fd;
		}
		ctx.handlers_cleared = 1;
		pid = clone3_run(&cl, child_main, &ctx);
		if (pid < 0) {
			int err = (int)-pid;
			/* ENOSYS: old kernel; EPERM: a seccomp filter refusing clone3 */
			if (err == ENOSYS || err == EPERM || err == E2BIG) {
				clone3_state = -1;
			} else {
				pthread_sigmask(SIG_SETMASK, &old, NULL);
				munmap(stack, VE_CHILD_STACK);
				/* with a target cgroup, the kernel's refusal is about it */
				if (args->cgroup_fd >= 0)
					return fail(res, VE_STEP_CGROUP, err, -2);
				return fail(res, VE_STEP_CLONE, err, 0);
			}
		} else {
			clone3_state = 1;
		}
	}
#endif
	if (pid < 0) {
		if (args->cgroup_fd >= 0) {
			join_v2 = 1;
			if (args->cgroup_procs_fd < 0) {
				pthread_sigmask(SIG_SETMASK, &old, NULL);
				munmap(stack, VE_CHILD_STACK);
				return fail(res, VE_STEP_CGROUP, EOPNOTSUPP, -1);
			}
		}
		ctx.join_v2_procs = join_v2;
		ctx.handlers_cleared = 0;
		pid = clone(child_main, (char *)stack + VE_CHILD_STACK,
			    CLONE_VM | CLONE_VFORK | SIGCHLD, &ctx);
		if (pid < 0)
			pid = -errno;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	munmap(stack, VE_CHILD_STACK);
	if (pid < 0)
		return fail(res, VE_STEP_CLONE, (int)-pid, 0);
	/* the child has exec'd or exited; a recorded step means it failed */
	return (int)pid;
}
