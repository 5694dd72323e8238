/*
 * volt-spawner: restrict once, spawn many.
 *
 *   volt-spawner SOCKET_FD
 *
 * Started by the library (volt_enforce/spawner.py), never by hand. It reads the
 * sandbox's plan from the socket (the protocol is csrc/spawnclient.h), makes
 * itself non-dumpable, applies the plan to itself with the core's ve_apply
 * (capabilities, no_new_privs, Landlock, seccomp: the ruleset fd and the BPF
 * the library already built), and then starts each requested child with
 * clone(CLONE_VM | CLONE_VFORK | CLONE_PARENT): the child is the caller's own
 * (it gets the spawner's exit signal, SIGCHLD) and inherits the restrictions
 * instead of attaching them again. It shares the caller's cwd, root and umask
 * (the library starts it with CLONE_FS, and it never changes them). Before exec
 * the child takes the rest of the caller's state from the request (stdio and
 * pass_fds, rlimits, signals, and its CPU affinity: the library pins this spawner
 * to the CPU of the thread that calls it),
 * and restricts itself once more with a Landlock layer of its own, so that it
 * is in a domain of its own as on the direct path: it cannot ptrace this
 * spawner or its siblings, nor take their fds.
 *
 * It holds no fd but its socket between requests, and exits at EOF (the
 * sandbox closed, or the caller's process is gone) or when its parent changed.
 * Everything it receives is close-on-exec.
 */
#include "../spawn.h" /* first: enforce.h defines _GNU_SOURCE */
#include "../landlock.h"
#include "../spawnclient.h"
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <linux/close_range.h>

#define STACK_SIZE (64 * 1024)
/* what a terminal sends to the caller's process group: not for the spawner */
static const int ignored_here[] = { SIGINT, SIGQUIT, SIGHUP, SIGPIPE, 0 };

static char msgbuf[VE_SPAWNER_MAX_MSG + 1];
static char *strv[VE_SPAWNER_MAX_MSG + 4];
static char child_stack[STACK_SIZE] __attribute__((aligned(64)));
static struct rlimit own_limits[VE_SPAWNER_NLIMITS];
static struct ve_spawner_slot *slot;
static struct ve_spawner_setup setup;
static int sock_fd = -1;

struct request {
	const struct ve_spawner_req *q;
	const int32_t *targets;
	int *fds;
	int n_fds;
	char **exec_paths, **argv, **envp;
	const char *cwd;
	struct ve_result res;
};

static void reply(int sock, uint32_t kind, int pid, int step, int err, int index)
{
	struct ve_spawner_reply r = { VE_SPAWNER_MAGIC, kind, pid, step, err, index };
	while (send(sock, &r, sizeof(r), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

static long recv_msg(int sock, size_t *len, int *fds, int *n_fds, int *flags)
{
	struct iovec iov = { msgbuf, VE_SPAWNER_MAX_MSG };
	union {
		char buf[CMSG_SPACE(sizeof(int) * VE_SPAWNER_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	long r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	*n_fds = 0;
	if (r < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (*n_fds + n > VE_SPAWNER_MAX_FDS)
			n = VE_SPAWNER_MAX_FDS - *n_fds;
		memcpy(fds + *n_fds, CMSG_DATA(cm), sizeof(int) * (size_t)n);
		*n_fds += n;
	}
	*len = (size_t)r;
	*flags = msg.msg_flags;
	return r;
}

static void close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* ---- setup: restrict this process ------------------------------------------------ */

static int restrict_self(int sock)
{
	int fds[VE_SPAWNER_MAX_FDS], n_fds, flags;
	size_t len;
	long r = recv_msg(sock, &len, fds, &n_fds, &flags);
	if (r <= 0)
		return -1;
	memcpy(&setup, msgbuf, len < sizeof(setup) ? len : sizeof(setup));
	int want_fds = (setup.has_ruleset ? 1 : 0) + 1;
	if (len < sizeof(setup) || setup.magic != VE_SPAWNER_MAGIC || setup.kind != VE_SPAWNER_SETUP ||
	    setup.bpf_len > VE_MAX_BPF_INSNS || len != sizeof(setup) + (size_t)setup.bpf_len * 8 ||
	    n_fds != want_fds || (flags & (MSG_TRUNC | MSG_CTRUNC))) {
		close_all(fds, n_fds);
		reply(sock, VE_SPAWNER_READY, 0, VE_STEP_NONE, EPROTO, 0);
		return -1;
	}
	int memfd = fds[want_fds - 1];
	slot = mmap(NULL, sizeof(*slot), PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	close(memfd);
	if (slot == MAP_FAILED) {
		reply(sock, VE_SPAWNER_READY, 0, VE_STEP_NONE, errno, 0);
		return -1;
	}
	if (setup.nofile_limit > 0) {
		struct rlimit rl;
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = (rlim_t)setup.nofile_limit;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	struct ve_plan plan;
	memset(&plan, 0, sizeof(plan));
	plan.fail_step = setup.fail_step;
	plan.drop_caps = setup.drop_caps;
	plan.cap_last = setup.cap_last;
	plan.cap_keep = setup.cap_keep;
	plan.no_new_privs = setup.no_new_privs;
	plan.landlock_fd = setup.has_ruleset ? fds[0] : -1;
	plan.landlock_flags = setup.landlock_flags;
	plan.bpf = setup.bpf_len ? msgbuf + sizeof(setup) : NULL;
	plan.bpf_len = setup.bpf_len;
	plan.seccomp_flags = setup.seccomp_flags;
	struct ve_result res = { 0, 0, 0 };
	int rc = ve_apply(&plan, &res);
	if (plan.landlock_fd >= 0)
		close(plan.landlock_fd);
	if (rc < 0) {
		reply(sock, VE_SPAWNER_READY, 0, res.step ? res.step : VE_STEP_NONE,
		      res.err ? res.err : EPERM, res.index);
		return -1;
	}
	reply(sock, VE_SPAWNER_READY, 0, VE_STEP_NONE, 0, 0);
	return 0;
}

/* ---- the child ------------------------------------------------------------------ */

static int fail(struct request *rq, int step, int err, int index)
{
	rq->res.step = step;
	rq->res.err = err;
	rq->res.index = index;
	return -1;
}

static void set_signals(const struct ve_spawner_req *q)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	for (int i = 0; ignored_here[i]; i++) {
		int sig = ignored_here[i];
		int keep_ign = (q->ignored >> (sig - 1)) & 1;
		if ((q->flags & VE_SPAWNER_RESTORE_SIGNALS) && sig == SIGPIPE)
			keep_ign = 0;
		sa.sa_handler = keep_ign ? SIG_IGN : SIG_DFL;
		sigaction(sig, &sa, NULL);
	}
	for (int sig = 1; sig <= 64; sig++) {
		if (!((q->ignored >> (sig - 1)) & 1) || sig == SIGKILL || sig == SIGSTOP)
			continue;
		if ((q->flags & VE_SPAWNER_RESTORE_SIGNALS) && (sig == SIGPIPE || sig == SIGXFSZ))
			continue;
		sa.sa_handler = SIG_IGN;
		sigaction(sig, &sa, NULL);
	}
}

/* The caller's fds at their numbers: stdio on 0..2, pass_fds on their own.
 * Sources are first moved above every target, so that no dup2 overwrites a
 * source still to be placed. What is not placed stays close-on-exec. */
static int place_fds(struct request *rq, int *fds)
{
	const struct ve_spawner_req *q = rq->q;
	int top = 2;
	for (int i = 0; i < q->n_keep; i++)
		if (rq->targets[i] > top)
			top = rq->targets[i];
	for (int i = 0; i < rq->n_fds; i++) {
		fds[i] = rq->fds[i];
		if (fds[i] <= top) {
			int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, top + 1);
			if (moved < 0)
				return fail(rq, VE_STEP_STDIO, errno, 0);
			fds[i] = moved;
		}
	}
	for (int i = 0; i < 3; i++) {
		if (q->stdio[i] < 0)
			close(i);
		else if (dup2(fds[q->stdio[i]], i) < 0)
			return fail(rq, VE_STEP_STDIO, errno, i);
	}
	for (int i = 0; i < q->n_keep; i++)
		if (dup2(fds[q->keep_base + i], rq->targets[i]) < 0)
			return fail(rq, VE_STEP_CLOSE_FDS, errno, i);
	return 0;
}

/* A Landlock domain of the child's own, nested in the spawner's: the plan's
 * scopes again (siblings are then outside each other's scope, as on the direct
 * path), or, for a plan without scopes, one right handled and granted beneath
 * "/", which restricts nothing but makes the domain. */
static int own_domain(struct request *rq)
{
	int rs = ve_landlock_create_ruleset(setup.child_scopes ? 0 : setup.child_fs, 0,
					    setup.child_scopes);
	if (rs < 0)
		return fail(rq, VE_STEP_LANDLOCK, -rs, 1);
	if (!setup.child_scopes) {
		struct ve_landlock_path_rule out;
		int r = ve_landlock_add_path_rule(rs, "/", setup.child_fs, 0, &out);
		if (r < 0) {
			close(rs);
			return fail(rq, VE_STEP_LANDLOCK, -r, 1);
		}
	}
	int r = ve_landlock_restrict_self(rs, setup.child_restrict_flags, 0);
	close(rs);
	if (r < 0)
		return fail(rq, VE_STEP_LANDLOCK, -r, 1);
	return 0;
}

static int child_main(void *arg)
{
	struct request *rq = arg;
	const struct ve_spawner_req *q = rq->q;

	/* the fd numbers in this child's own table (it shares the spawner's memory,
	 * not its fds: the spawner closes the originals afterwards) */
	int fds[VE_SPAWNER_MAX_FDS];

	/* this copy of the socket would keep the caller from seeing the spawner die */
	close(sock_fd);
	set_signals(q);
	if (place_fds(rq, fds) < 0)
		goto out;
	/* the cwd and umask are the caller's (CLONE_FS), copied at clone */
	if (rq->cwd && chdir(rq->cwd) < 0) {
		fail(rq, VE_STEP_CHDIR, errno, 0);
		goto out;
	}
	if (q->umask_value >= 0)
		umask((mode_t)q->umask_value);
	for (int i = 0; i < VE_SPAWNER_NLIMITS; i++) {
		struct rlimit rl = { (rlim_t)q->rlim[i][0], (rlim_t)q->rlim[i][1] };
		if (rl.rlim_cur == own_limits[i].rlim_cur && rl.rlim_max == own_limits[i].rlim_max)
			continue;
		if (setrlimit(i, &rl) < 0) { /* no raise: checked before */
			fail(rq, VE_STEP_CLONE, errno, i);
			goto out;
		}
	}
	if ((q->flags & VE_SPAWNER_NEW_SESSION) && setsid() < 0) {
		fail(rq, VE_STEP_SETSID, errno, 0);
		goto out;
	}
	if (own_domain(rq) < 0)
		goto out;
	/* the caller's affinity: this spawner runs pinned to the caller's CPU */
	if (sched_setaffinity(0, sizeof(q->cpus), (const cpu_set_t *)q->cpus) < 0) {
		fail(rq, VE_STEP_CLONE, errno, 0);
		goto out;
	}
	sigset_t mask;
	sigemptyset(&mask);
	for (int sig = 1; sig <= 64; sig++)
		if ((q->blocked >> (sig - 1)) & 1)
			sigaddset(&mask, sig);
	if (sigprocmask(SIG_SETMASK, &mask, NULL) < 0) {
		fail(rq, VE_STEP_SIGNALS, errno, 0);
		goto out;
	}
	if (setup.stop_child)
		kill(getpid(), SIGSTOP);
	/* the PATH search of os._execvpe: the first error that is not ENOENT or
	 * ENOTDIR, else the last */
	int saved = 0, idx = 0;
	for (uint32_t i = 0; i < q->n_exec_paths; i++) {
		syscall(SYS_execve, rq->exec_paths[i], rq->argv, rq->envp);
		if (saved == 0 && errno != ENOENT && errno != ENOTDIR) {
			saved = errno;
			idx = (int)i;
		}
		if (saved == 0)
			idx = (int)i;
	}
	fail(rq, VE_STEP_EXEC, saved ? saved : errno, idx);
out:
	syscall(SYS_exit_group, 127);
	return 127;
}

/* ---- requests ------------------------------------------------------------------- */

/* Split the strings into the vectors; 0, or -1 when they do not add up. */
static int parse_strings(struct request *rq, size_t len)
{
	const struct ve_spawner_req *q = rq->q;
	size_t off = sizeof(*q) + sizeof(int32_t) * (size_t)q->n_keep;
	if (off > len || len - off != q->strings_len)
		return -1;
	uint64_t want = (uint64_t)q->n_exec_paths + q->n_argv + q->n_env + (q->has_cwd ? 1 : 0);
	if (want > VE_SPAWNER_MAX_MSG || q->n_exec_paths == 0 || q->n_argv == 0)
		return -1;
	char *p = msgbuf + off, *end = msgbuf + len;
	if (q->strings_len && end[-1] != '\0')
		return -1;
	size_t k = 0;
	char **v = strv;
	rq->exec_paths = v;
	for (uint32_t i = 0; i < q->n_exec_paths; i++, k++) {
		if (p >= end)
			return -1;
		v[k] = p;
		p += strlen(p) + 1;
	}
	v[k++] = NULL;
	rq->argv = v + k;
	for (uint32_t i = 0; i < q->n_argv; i++, k++) {
		if (p >= end)
			return -1;
		v[k] = p;
		p += strlen(p) + 1;
	}
	v[k++] = NULL;
	rq->envp = v + k;
	for (uint32_t i = 0; i < q->n_env; i++, k++) {
		if (p >= end)
			return -1;
		v[k] = p;
		p += strlen(p) + 1;
	}
	v[k++] = NULL;
	rq->cwd = NULL;
	if (q->has_cwd) {
		if (p >= end)
			return -1;
		rq->cwd = p;
		p += strlen(p) + 1;
	}
	return p == end ? 0 : -1;
}

static int valid_request(const struct ve_spawner_req *q, size_t len, int n_fds)
{
	if (len < sizeof(*q) || q->magic != VE_SPAWNER_MAGIC || q->kind != VE_SPAWNER_SPAWN)
		return 0;
	if (q->n_keep < 0 || q->n_keep > VE_SPAWNER_MAX_FDS || q->keep_base < 0 ||
	    q->keep_base + q->n_keep != n_fds)
		return 0;
	for (int i = 0; i < 3; i++)
		if (q->stdio[i] >= n_fds || q->stdio[i] < -1)
			return 0;
	if (q->umask_value < -1 || q->umask_value > 0777)
		return 0;
	return 1;
}

static void serve(int sock, struct request *rq, size_t len, int *fds, int n_fds, int flags)
{
	const struct ve_spawner_req *q = (const struct ve_spawner_req *)msgbuf;
	if (flags & MSG_CTRUNC) { /* this process is out of fds (or the limit is low) */
		close_all(fds, n_fds);
		reply(sock, VE_SPAWNER_ERROR, 0, 0, EMFILE, 0);
		return;
	}
	if ((flags & MSG_TRUNC) || !valid_request(q, len, n_fds)) {
		close_all(fds, n_fds);
		reply(sock, VE_SPAWNER_ERROR, 0, 0, EPROTO, 0);
		return;
	}
	const int32_t *targets = (const int32_t *)(msgbuf + sizeof(*q));
	memset(rq, 0, sizeof(*rq));
	rq->q = q;
	rq->targets = targets;
	rq->fds = fds;
	rq->n_fds = n_fds;
	for (int i = 0; i < q->n_keep; i++)
		if (targets[i] < 3) {
			close_all(fds, n_fds);
			reply(sock, VE_SPAWNER_ERROR, 0, 0, EPROTO, 0);
			return;
		}
	if (parse_strings(rq, len) < 0) {
		close_all(fds, n_fds);
		reply(sock, VE_SPAWNER_ERROR, 0, 0, EPROTO, 0);
		return;
	}
	/* a hard limit above this spawner's own needs a privilege the child lacks:
	 * the caller raised it since, and a new spawner inherits it */
	for (int i = 0; i < VE_SPAWNER_NLIMITS; i++) {
		rlim_t want = (rlim_t)q->rlim[i][1];
		if (own_limits[i].rlim_max != RLIM_INFINITY &&
		    (want == RLIM_INFINITY || want > own_limits[i].rlim_max)) {
			close_all(fds, n_fds);
			reply(sock, VE_SPAWNER_STALE, 0, 0, 0, i);
			return;
		}
	}
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	long pid = clone(child_main, child_stack + STACK_SIZE,
			 CLONE_VM | CLONE_VFORK | CLONE_PARENT | CLONE_PARENT_SETTID, rq,
			 &slot->pid);
	int err = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close_all(fds, n_fds);
	if (pid < 0)
		reply(sock, VE_SPAWNER_RESULT, -err, VE_STEP_CLONE, err, 0);
	else
		reply(sock, VE_SPAWNER_RESULT, (int)pid, rq->res.step, rq->res.err, rq->res.index);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	char *end;
	long sock_l = strtol(argv[1], &end, 10);
	if (*end || sock_l < 3 || sock_l > 65535)
		return 2;
	int sock = (int)sock_l;
	sock_fd = sock;
	/* nothing but the socket, close-on-exec; a child can neither ptrace this
	 * process (its own Landlock domain) nor read it (not dumpable) */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return 1;
	if (fcntl(sock, F_SETFD, FD_CLOEXEC) < 0)
		return 1;
	for (int fd = 0; fd < 3; fd++)
		close(fd);
	if (sock > 3)
		syscall(__NR_close_range, 3, sock - 1, 0);
	syscall(__NR_close_range, sock + 1, ~0U, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	for (int i = 0; ignored_here[i]; i++)
		sigaction(ignored_here[i], &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	pid_t parent = getppid();

	if (restrict_self(sock) < 0)
		return 1;
	for (int i = 0; i < VE_SPAWNER_NLIMITS; i++)
		getrlimit(i, &own_limits[i]);
	/* wake up now and then to see whether the caller's process is still there
	 * (a fork of it may hold the other end of the socket) */
	struct timeval tv = { 1, 0 };
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	static struct request rq;
	for (;;) {
		int fds[VE_SPAWNER_MAX_FDS], n_fds, flags;
		size_t len;
		long r = recv_msg(sock, &len, fds, &n_fds, &flags);
		if (r == 0)
			return 0; /* the sandbox closed, or its process is gone */
		if (r < 0) {
			if (r == -EINTR)
				continue;
			if (r == -EAGAIN || r == -EWOULDBLOCK) {
				if (getppid() != parent)
					return 0;
				continue;
			}
			return 1;
		}
		serve(sock, &rq, len, fds, n_fds, flags);
		if (getppid() != parent)
			return 0;
	}
}
