/*
 * The library's side of the spawner protocol (csrc/spawnclient.h): the
 * caller's fingerprint, the setup message and one spawn request. Called from
 * Python through cffi, which releases the GIL, so threads wait in parallel.
 */
#include "spawn.h" /* first: enforce.h defines _GNU_SOURCE */
#include "spawnclient.h"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <linux/capability.h>

extern char **environ;

static int read_file(const char *path, char *buf, int size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int len = 0;
	while (len < size - 1) {
		ssize_t n = read(fd, buf + len, (size_t)(size - 1 - len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
		if (n == 0)
			break;
		len += (int)n;
	}
	close(fd);
	buf[len] = '\0';
	return len;
}

struct fp {
	char *out;
	int size, len;
};

static void put(struct fp *f, const char *fmt, unsigned long long a, unsigned long long b)
{
	if (f->len < 0)
		return;
	int n = snprintf(f->out + f->len, (size_t)(f->size - f->len), fmt, a, b);
	f->len = (n < 0 || n >= f->size - f->len) ? -ENOBUFS : f->len + n;
}

static void put_bytes(struct fp *f, const char *s, size_t n)
{
	if (f->len < 0)
		return;
	if ((size_t)f->len + n >= (size_t)f->size) {
		f->len = -ENOBUFS;
		return;
	}
	memcpy(f->out + f->len, s, n);
	f->len += (int)n;
}

static int pread_all(int fd, char *buf, int size)
{
	ssize_t n;
	do
		n = pread(fd, buf, (size_t)size - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

/* What a child of this thread inherits and a spawner started earlier might not
 * give it, read with few syscalls (each costs ~0.3 us here, a /proc read 3-10):
 * ids and groups, no_new_privs, seccomp (the filter count from /proc only once a
 * filter is on), capabilities (the bounding set for the rights the plan keeps,
 * the ambient set when the plan keeps them all), securebits, personality,
 * affinity, nice, pid (a fork), from the fd the pool keeps open /proc/self/stat
 * (process group, session, ignored signals), and the thread's own cgroups
 * (/proc/thread-self/cgroup: cgroup v1 moves threads one by one, and
 * /proc/self/cgroup shows the leader's). The cwd, root and umask need no check:
 * the spawner shares them (CLONE_FS); a thread that stopped sharing them (and
 * with them its mount and user namespaces: unshare and setns of those unshare
 * the fs first) is caught by the request's kcmp (ve_spawner_fs_probe). The
 * other namespaces are not read: pidfs's ioctls cost 3-6 us each here, a stat
 * of /proc/thread-self/ns/X as much, 20-50 us a request for the six, which is
 * what the spawner saves. */

static int fingerprint(const struct ve_spawner_call *c, char *out, int size, uint64_t *ignored,
		       cpu_set_t *cpus)
{
	struct fp f = { out, size, 0 };
	uid_t r, e, s;
	gid_t gr, ge, gs;
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	put(&f, "uid %llx %llx", ((unsigned long long)r << 32) | e, s);
	put(&f, " gid %llx %llx", ((unsigned long long)gr << 32) | ge, gs);
	gid_t groups[256];
	int ng = getgroups(256, groups);
	if (ng < 0)
		return -errno;
	for (int i = 0; i < ng; i++)
		put(&f, " %llx%.0llx", groups[i], 0);
	int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	int mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
	put(&f, " pid %llx nnp %llx", (unsigned long long)getpid(), (unsigned long long)nnp);
	put(&f, " seccomp %llx secbits %llx", (unsigned long long)mode,
	    (unsigned long long)prctl(PR_GET_SECUREBITS));
	put(&f, " pers %llx nice %llx", (unsigned long long)(unsigned)personality(0xffffffff),
	    (errno = 0, (unsigned long long)getpriority(PRIO_PROCESS, 0)));
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct caps[2];
	if (syscall(SYS_capget, &hdr, caps) < 0)
		return -errno;
	for (int i = 0; i < 2; i++)
		put(&f, " caps %llx %llx",
		    ((unsigned long long)caps[i].effective << 32) | caps[i].permitted,
		    caps[i].inheritable);
	unsigned long long bnd = 0, amb = 0;
	for (int cap = 0; cap < 64; cap++) {
		if (!((c->cap_check >> cap) & 1))
			continue;
		int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (in < 0)
			break; /* past the last capability */
		if (in)
			bnd |= 1ULL << cap;
		if (c->check_ambient && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0)
			amb |= 1ULL << cap;
	}
	put(&f, " bnd %llx amb %llx", bnd, amb);
	CPU_ZERO(cpus);
	if (sched_getaffinity(0, sizeof(*cpus), cpus) == 0)
		for (size_t i = 0; i < sizeof(*cpus) / sizeof(unsigned long long); i++)
			put(&f, " %llx%.0llx", ((unsigned long long *)cpus)[i], 0);
	char buf[4096];
	int n;
	if (mode == 2) { /* another filter on top shows only here */
		n = read_file("/proc/thread-self/status", buf, sizeof(buf));
		if (n < 0)
			return n;
		char *line = strstr(buf, "\nSeccomp_filters:");
		if (line) {
			char *end = strchr(line + 1, '\n');
			put_bytes(&f, line, end ? (size_t)(end - line) : strlen(line));
		}
	}
	/* /proc/self/stat: "pid (comm) state ppid pgrp session ...", from the fd the
	 * pool opened, if it still is that file (a caller may close fds it does not
	 * own, and the number be reused) */
	struct stat st;
	if (fstat(c->stat_fd, &st) < 0 || (uint64_t)st.st_dev != c->stat_dev ||
	    (uint64_t)st.st_ino != c->stat_ino)
		return -ESTALE;
	n = pread_all(c->stat_fd, buf, sizeof(buf));
	if (n < 0)
		return n;
	char *p = strrchr(buf, ')');
	if (!p)
		return -EPROTO;
	unsigned long long field[40] = { 0 };
	int k = 3; /* the state is field 3 */
	char *save = NULL;
	for (char *tok = strtok_r(p + 2, " ", &save); tok && k < 40;
	     tok = strtok_r(NULL, " ", &save), k++)
		field[k] = strtoull(tok, NULL, 10);
	put(&f, " pgrp %llx sid %llx", field[5], field[6]);
	*ignored = field[33];
	put(&f, "\n", 0, 0);
	n = read_file("/proc/thread-self/cgroup", buf, sizeof(buf));
	if (n < 0)
		return n;
	put_bytes(&f, buf, (size_t)n);
	return f.len;
}

/* The calling thread's fingerprint (see spawnclient.h), or -errno. */
int ve_spawner_fingerprint(const struct ve_spawner_call *c, char *buf, int size)
{
	uint64_t ignored;
	cpu_set_t cpus;
	return fingerprint(c, buf, size, &ignored, &cpus);
}

/* Which of the request's checks this thread cannot make (VE_SPAWNER_CHECK_*
 * bits): the kcmp of the spawner needs CAP_SYS_PTRACE (the spawner is not
 * dumpable) and a filter of the caller's that allows kcmp (asked of this
 * thread's own fs here). */
int ve_spawner_checks(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct caps[2];
	pid_t tid = (pid_t)syscall(SYS_gettid);
	if (syscall(SYS_capget, &hdr, caps) < 0 || !(caps[0].effective & (1u << CAP_SYS_PTRACE)) ||
	    syscall(SYS_kcmp, tid, tid, 3 /* KCMP_FS */, 0, 0) != 0)
		return VE_SPAWNER_CHECK_KCMP;
	return 0;
}

/* ---- starting a spawner -------------------------------------------------------- */

struct start_args {
	const char *path;
	int sock, devnull, err;
};

static int start_child(void *arg)
{
	struct start_args *a = arg;
	/* every signal stays blocked until exec (no handler of the caller may run
	 * here); exec resets the handlers and the spawner clears its mask */
	char num[16];
	snprintf(num, sizeof(num), "%d", a->sock);
	char *argv[] = { (char *)"volt-spawner", num, NULL };
	char *envp[] = { NULL };
	for (int fd = 0; fd < 3; fd++)
		if (dup2(a->devnull, fd) < 0)
			goto out;
	if (fcntl(a->sock, F_SETFD, 0) < 0)
		goto out;
	syscall(SYS_execve, a->path, argv, envp);
out:
	a->err = errno;
	syscall(SYS_exit_group, 127);
	return 127;
}

/* Start volt-spawner on the socket (a number above 2) with CLONE_FS: it shares
 * this process's cwd, root and umask, so that each child it starts has the
 * caller's at call time. Returns its pid or -errno (reaped then). */
int ve_spawner_start(const char *path, int sock, int devnull)
{
	if (sock < 3)
		return -EBADF;
	struct start_args a = { path, sock, devnull, 0 };
	size_t size = 64 * 1024;
	void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
			   -1, 0);
	if (stack == MAP_FAILED)
		return -errno;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	long pid = clone(start_child, (char *)stack + size, CLONE_VM | CLONE_VFORK | CLONE_FS | SIGCHLD,
			 &a);
	int err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	munmap(stack, size);
	if (pid < 0)
		return -err;
	if (a.err) {
		while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
			;
		return -a.err;
	}
	return (int)pid;
}

static long send_with_fds(int sock, const void *data, size_t len, const int *fds, int n_fds)
{
	struct iovec iov = { (void *)data, len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * VE_SPAWNER_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (n_fds > 0) {
		memset(u.buf, 0, CMSG_SPACE(sizeof(int) * (size_t)n_fds));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n_fds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n_fds);
	}
	long r;
	do
		r = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* One reply; 0 at EOF, -errno on error. A signal does not abandon it: the
 * request is in flight and its child must be known. */
static long recv_reply(int sock, struct ve_spawner_reply *rep)
{
	long r;
	do
		r = recv(sock, rep, sizeof(*rep), 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r > 0 && (r != (long)sizeof(*rep) || rep->magic != VE_SPAWNER_MAGIC))
		return -EPROTO;
	return r;
}

/* Send the plan; 0 when the spawner restricted itself, 1 when a step failed
 * (res says which), or -errno. */
int ve_spawner_setup(int sock, const struct ve_plan *plan, int slot_fd,
		     uint64_t child_scopes, uint64_t child_fs, uint32_t child_restrict_flags,
		     int nofile_limit, int stop_child, struct ve_result *res)
{
	size_t bpf_bytes = (size_t)plan->bpf_len * 8;
	size_t len = sizeof(struct ve_spawner_setup) + bpf_bytes;
	char *buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	struct ve_spawner_setup *s = (struct ve_spawner_setup *)buf;
	s->magic = VE_SPAWNER_MAGIC;
	s->kind = VE_SPAWNER_SETUP;
	s->fail_step = plan->fail_step;
	s->drop_caps = plan->drop_caps;
	s->cap_last = plan->cap_last;
	s->cap_keep = plan->cap_keep;
	s->no_new_privs = plan->no_new_privs;
	s->has_ruleset = plan->landlock_fd >= 0;
	s->landlock_flags = plan->landlock_flags;
	s->seccomp_flags = plan->seccomp_flags;
	s->bpf_len = plan->bpf_len;
	s->child_restrict_flags = child_restrict_flags;
	s->child_scopes = child_scopes;
	s->child_fs = child_fs;
	s->nofile_limit = nofile_limit;
	s->stop_child = stop_child;
	if (bpf_bytes)
		memcpy(buf + sizeof(*s), plan->bpf, bpf_bytes);
	int fds[2], n_fds = 0;
	if (plan->landlock_fd >= 0)
		fds[n_fds++] = plan->landlock_fd;
	fds[n_fds++] = slot_fd;
	long r = send_with_fds(sock, buf, len, fds, n_fds);
	free(buf);
	if (r < 0)
		return (int)r;
	struct ve_spawner_reply rep;
	r = recv_reply(sock, &rep);
	if (r <= 0)
		return r == 0 ? -ECONNRESET : (int)r;
	if (rep.kind != VE_SPAWNER_READY)
		return -EPROTO;
	res->step = rep.step;
	res->err = rep.err;
	res->index = rep.index;
	return rep.step ? 1 : 0;
}

static size_t strings_size(char *const *v, uint32_t *count)
{
	size_t n = 0;
	*count = 0;
	for (; *v; v++, (*count)++)
		n += strlen(*v) + 1;
	return n;
}

/* Whether this thread still shares the spawner's fs_struct and may ptrace-read
 * it: 0, 1 when the fs differs (the thread unshared it, or the spawner was
 * started by a thread that had), or -errno. kcmp asks the kernel's ptrace
 * access check, where Landlock refuses a target whose domain is not beneath
 * this thread's. One syscall, where reading the domain is not possible at all. */
int ve_spawner_fs_probe(int spawner_pid)
{
	long r = syscall(SYS_kcmp, (pid_t)syscall(SYS_gettid), spawner_pid, 3 /* KCMP_FS */, 0, 0);
	if (r < 0)
		return -errno;
	return r == 0 ? 0 : 1;
}

/* Start a child through the spawner: its pid (res->step 0, or the step that
 * failed: the child has exited and the caller reaps it), or one of the
 * VE_SPAWNER_R_* results, or -errno. */
int ve_spawner_call(int sock, const struct ve_spawner_call *c, const char *fp, int fp_len,
		    struct ve_spawner_slot *slot, struct ve_result *res)
{
	char fpbuf[VE_SPAWNER_FP_MAX];
	res->step = res->err = res->index = 0;
	uint64_t ignored = 0;
	cpu_set_t cpus;
	int n = fingerprint(c, fpbuf, sizeof(fpbuf), &ignored, &cpus);
	if (n == -ESTALE)
		return VE_SPAWNER_R_PROBE;
	if (n < 0) {
		res->err = -n;
		return VE_SPAWNER_R_UNREADABLE;
	}
	if (n != fp_len || memcmp(fpbuf, fp, (size_t)n) != 0)
		return VE_SPAWNER_R_STALE;
	/* a Landlock domain this thread entered since (no fingerprint shows it), or
	 * an fs_struct (cwd, root, umask) of its own */
	if (c->check_fs && ve_spawner_fs_probe(c->spawner_pid) != 0)
		return VE_SPAWNER_R_STALE;

	int n_fds = 3 + c->n_keep_fds;
	if (c->n_keep_fds < 0 || n_fds > VE_SPAWNER_MAX_FDS)
		return VE_SPAWNER_R_TOO_BIG;
	uint32_t n_env = 0;
	size_t env_bytes = c->n_env < 0 ? strings_size(environ, &n_env) : 0;
	size_t head = sizeof(struct ve_spawner_req) + sizeof(int32_t) * (size_t)c->n_keep_fds;
	size_t len = head + c->strings_len + env_bytes;
	if (len > VE_SPAWNER_MAX_MSG)
		return VE_SPAWNER_R_TOO_BIG;
	char *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	struct ve_spawner_req *q = (struct ve_spawner_req *)buf;
	memset(q, 0, sizeof(*q));
	q->magic = VE_SPAWNER_MAGIC;
	q->kind = VE_SPAWNER_SPAWN;
	q->n_exec_paths = (uint32_t)c->n_exec_paths;
	q->n_argv = (uint32_t)c->n_argv;
	q->n_env = c->n_env < 0 ? n_env : (uint32_t)c->n_env;
	q->strings_len = (uint32_t)(c->strings_len + env_bytes);
	q->has_cwd = c->has_cwd;
	q->umask_value = c->umask_value; /* -1: the shared one (CLONE_FS) */
	q->flags = (c->restore_signals ? VE_SPAWNER_RESTORE_SIGNALS : 0) |
		   (c->new_session ? VE_SPAWNER_NEW_SESSION : 0);
	sigset_t mask;
	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	for (int sig = 1; sig <= 64; sig++)
		if (sigismember(&mask, sig) == 1)
			q->blocked |= 1ULL << (sig - 1);
	q->ignored = ignored; /* dispositions are the process's: /proc/self/stat */
	for (int i = 0; i < VE_SPAWNER_NLIMITS; i++) {
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
		getrlimit((__rlimit_resource_t)i, &rl);
		q->rlim[i][0] = rl.rlim_cur;
		q->rlim[i][1] = rl.rlim_max;
	}
	/* strings: exec paths and argv (and env when given), then environ, then cwd:
	 * the blob has the cwd last, so environ goes in before it */
	char *out = buf + head;
	size_t cwd_len = 0;
	if (c->has_cwd) {
		const char *last = c->strings + c->strings_len - 1; /* the cwd's NUL */
		const char *p = last;
		while (p > c->strings && p[-1] != '\0')
			p--;
		cwd_len = (size_t)(last - p) + 1;
	}
	memcpy(out, c->strings, c->strings_len - cwd_len);
	out += c->strings_len - cwd_len;
	if (c->n_env < 0)
		for (char *const *e = environ; *e; e++) {
			size_t l = strlen(*e) + 1;
			memcpy(out, *e, l);
			out += l;
		}
	memcpy(out, c->strings + c->strings_len - cwd_len, cwd_len);

	int fds[VE_SPAWNER_MAX_FDS], k = 0;
	const int given[3] = { c->fd0, c->fd1, c->fd2 };
	for (int i = 0; i < 3; i++) {
		int fd = given[i];
		if (fd < 0) {
			/* inherited: as the direct path, closed in the child when it is
			 * closed here or close-on-exec */
			int fl = fcntl(i, F_GETFD);
			fd = (fl < 0 || (fl & FD_CLOEXEC)) ? -1 : i;
		}
		q->stdio[i] = fd < 0 ? -1 : k;
		if (fd >= 0)
			fds[k++] = fd;
	}
	q->keep_base = k;
	q->n_keep = c->n_keep_fds;
	int32_t *targets = (int32_t *)(buf + sizeof(*q));
	for (int i = 0; i < c->n_keep_fds; i++) {
		targets[i] = c->keep_fds[i];
		fds[k++] = c->keep_fds[i];
	}

	_Static_assert(sizeof(q->cpus) == sizeof(cpus), "the request carries a whole cpu_set_t");
	memcpy(q->cpus, &cpus, sizeof(cpus));
	int cpu = sched_getcpu();
	if (c->pinned_cpu && cpu >= 0 && cpu != *c->pinned_cpu && CPU_ISSET(cpu, &cpus)) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(c->spawner_pid, sizeof(one), &one) == 0)
			*c->pinned_cpu = cpu;
	}

	slot->pid = 0;
	long r = send_with_fds(sock, buf, len, fds, k);
	free(buf);
	if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN)
		return VE_SPAWNER_R_DEAD; /* never received: safe to restart and retry */
	if (r == -EMSGSIZE || r == -ENOBUFS)
		return VE_SPAWNER_R_TOO_BIG;
	if (r == -EBADF && k > 0)
		return VE_SPAWNER_R_BADFD; /* one of the fds to pass is not open */
	if (r < 0)
		return (int)r;
	struct ve_spawner_reply rep;
	r = recv_reply(sock, &rep);
	if (r <= 0) {
		res->index = slot->pid; /* written by the kernel before the child ran */
		res->err = r == 0 ? ECONNRESET : (int)-r;
		return VE_SPAWNER_R_LOST;
	}
	if (rep.kind == VE_SPAWNER_STALE)
		return VE_SPAWNER_R_STALE;
	if (rep.kind == VE_SPAWNER_ERROR) {
		res->err = rep.err;
		return VE_SPAWNER_R_REFUSED;
	}
	if (rep.kind != VE_SPAWNER_RESULT)
		return -EPROTO;
	res->step = rep.step;
	res->err = rep.err;
	res->index = rep.index;
	return rep.pid;
}
