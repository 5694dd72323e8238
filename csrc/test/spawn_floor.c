/* Raw C floors of a sandboxed spawn, for benchmarks/test_bench_floors.py; not part
 * of the library. Each does the kernel work of one of the library's spawn paths
 * in the plainest way, with nothing the library adds (no Python, no checks, no
 * error reports, no view beyond the mounts a PID namespace needs), so that a
 * figure can be read as "what the kernel charges here" against "what we add".
 *
 * - ve_bench_contained_floor: the contained default's kernel work per child. A
 *   clone into new PID, mount, IPC and UTS namespaces; in it, the mounts a PID
 *   namespace and a private /tmp and devpts need, a session, the capability
 *   drop, no_new_privs and the Landlock ruleset; the target started with
 *   clone(CLONE_VM | CLONE_VFORK), loading the seccomp filter and exec'ing; then
 *   the init exec'd from its memfd, as the library does (volt-pidinit, which waits for the target and exits with its
 *   status). The read-only view of the host the library builds is left out, so
 *   this is below what any implementation of the default can do.
 * - ve_bench_helper_*: the spawner's design at its plainest. A helper (a raw fork
 *   of the caller) restricts itself once (capabilities, no_new_privs, Landlock,
 *   seccomp); per spawn the caller sends one byte, the helper starts the target
 *   with clone(CLONE_VM | CLONE_VFORK | CLONE_PARENT), the target enters a
 *   Landlock domain of its own (the spawner's child layer) and execs, the helper replies with its
 *   pid, and the caller reaps it.
 */
#include "testcore.h" /* first: enforce.h sets _GNU_SOURCE */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define FLOOR_STACK (64 * 1024)

extern char **environ;

static char pid1_stack[FLOOR_STACK] __attribute__((aligned(64)));
static char target_stack[FLOOR_STACK] __attribute__((aligned(64)));

struct floor_ctx {
	const struct ve_bench_floor *f;
	int fate_fd;
};

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Capabilities, no_new_privs and the Landlock ruleset, as bare syscalls. */
static int restrict_plain(const struct ve_bench_floor *f)
{
	if (f->drop_caps) {
		for (int cap = 0; cap <= f->cap_last; cap++)
			if (!((f->cap_keep >> cap) & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
				return -1;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
			return -1;
		struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];
		if (syscall(SYS_capget, &hdr, d) < 0)
			return -1;
		for (int i = 0; i < 2; i++) {
			uint32_t keep = (uint32_t)(f->cap_keep >> (32 * i));
			d[i].effective &= keep;
			d[i].permitted &= keep;
			d[i].inheritable &= keep;
		}
		if (syscall(SYS_capset, &hdr, d) < 0)
			return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	if (f->ruleset_fd >= 0 && syscall(__NR_landlock_restrict_self, f->ruleset_fd, 0) < 0)
		return -1;
	return 0;
}

static int load_filter(const struct ve_bench_floor *f)
{
	if (!f->n_insns)
		return 0;
	struct sock_fprog prog = { (unsigned short)f->n_insns, (struct sock_filter *)f->bpf };
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static int target_main(void *arg)
{
	const struct ve_bench_floor *f = arg;
	char *argv[] = { (char *)f->target, NULL };
	if (load_filter(f) == 0)
		execve(f->target, argv, environ);
	_exit(127);
}

static int pid1_main(void *arg)
{
	struct floor_ctx *c = arg;
	const struct ve_bench_floor *f = c->f;
	/* the host's mounts stay out of reach before anything is mounted */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ||
	    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0 ||
	    mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "newinstance,ptmxmode=0666,mode=0620") < 0)
		_exit(120);
	if (setsid() < 0 || restrict_plain(f) < 0)
		_exit(121);
	long t = clone(target_main, target_stack + FLOOR_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD,
		       (void *)f);
	if (t < 0 || fcntl(c->fate_fd, F_SETFD, 0) < 0)
		_exit(122);
	char fate[16], target[16];
	snprintf(fate, sizeof(fate), "%d", c->fate_fd);
	snprintf(target, sizeof(target), "%ld", t);
	char *argv[] = { (char *)"volt-pidinit", fate, (char *)"-1", target, NULL };
	syscall(SYS_execveat, f->init_fd, "", argv, environ, AT_EMPTY_PATH);
	_exit(123);
}

/* One contained spawn of f->target to its reaping: the ns it took, or -errno, or
 * -(1000 + status) when the child did not exit 0. */
long long ve_bench_contained_floor(const struct ve_bench_floor *f)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	struct floor_ctx c = { f, p[1] };
	int64_t t0 = now_ns();
	long pid = clone(pid1_main, pid1_stack + FLOOR_STACK,
			 CLONE_VM | CLONE_VFORK | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC |
			 CLONE_NEWUTS | SIGCHLD, &c);
	int err = errno;
	int st = 0;
	if (pid > 0)
		while (waitpid((pid_t)pid, &st, 0) < 0 && errno == EINTR)
			;
	int64_t t1 = now_ns();
	close(p[0]);
	close(p[1]);
	if (pid < 0)
		return -err;
	if (st != 0)
		return -(1000 + st);
	return t1 - t0;
}

/* ---- the spawner's design ---------------------------------------------------- */

static int helper_child(void *arg)
{
	const struct ve_bench_floor *f = arg;
	struct ve_landlock_ruleset_attr attr = { .scoped = f->child_scopes };
	if (!f->child_scopes)
		attr.handled_access_fs = f->child_fs;
	int rs = (int)syscall(__NR_landlock_create_ruleset, &attr,
			      offsetof(struct ve_landlock_ruleset_attr, quiet_access_fs), 0);
	if (rs < 0)
		_exit(124);
	if (!f->child_scopes) {
		struct ve_landlock_path_beneath_attr pb = { .allowed_access = f->child_fs };
		pb.parent_fd = open("/", O_PATH | O_CLOEXEC);
		if (pb.parent_fd < 0 ||
		    syscall(__NR_landlock_add_rule, rs, VE_LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
			_exit(124);
		close(pb.parent_fd);
	}
	if (syscall(__NR_landlock_restrict_self, rs, 0) < 0)
		_exit(124);
	close(rs);
	char *argv[] = { (char *)f->target, NULL };
	execve(f->target, argv, environ);
	_exit(127);
}

static void helper_main(const struct ve_bench_floor *f, int sock)
{
	if (restrict_plain(f) < 0 || load_filter(f) < 0)
		_exit(1);
	for (;;) {
		char b;
		long n = recv(sock, &b, 1, 0);
		if (n == 0)
			_exit(0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(2);
		}
		int pid = (int)clone(helper_child, target_stack + FLOOR_STACK,
				     CLONE_VM | CLONE_VFORK | CLONE_PARENT, (void *)f);
		if (pid < 0)
			pid = -errno;
		if (send(sock, &pid, sizeof(pid), MSG_NOSIGNAL) != (long)sizeof(pid))
			_exit(3);
	}
}

/* Start the helper: its pid (the caller's child), with *sock the caller's end, or
 * -errno. The floor struct must outlive the helper (it reads its copy of memory). */
int ve_bench_helper_start(const struct ve_bench_floor *f, int *sock)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (pid == 0) {
		close(sv[0]);
		helper_main(f, sv[1]);
	}
	int err = errno;
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -err;
	}
	*sock = sv[0];
	return (int)pid;
}

/* One spawn through the helper to its reaping: ns, or as ve_bench_contained_floor. */
long long ve_bench_helper_spawn(int sock)
{
	char b = 1;
	int pid = 0, st = 0;
	int64_t t0 = now_ns();
	if (send(sock, &b, 1, MSG_NOSIGNAL) != 1)
		return -errno;
	long n = recv(sock, &pid, sizeof(pid), 0);
	if (n != (long)sizeof(pid))
		return n < 0 ? -errno : -EPROTO;
	if (pid < 0)
		return pid;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	int64_t t1 = now_ns();
	if (st != 0)
		return -(1000 + st);
	return t1 - t0;
}

/* EOF ends the helper; reap it. Its exit status, or -errno. */
int ve_bench_helper_stop(int sock, int pid)
{
	close(sock);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return st;
}
