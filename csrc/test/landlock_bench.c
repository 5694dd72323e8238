/* Benchmark helpers for benchmarks/test_bench_landlock.py, not part of the
 * library: they measure the in-child cost of applying a ruleset, timed inside
 * a freshly forked child so that the cost of fork itself is left out. */
#include "testcore.h" /* first: enforce.h sets _GNU_SOURCE */
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/* The baseline ruleset, built the plain way (as the kernel's sandboxer does):
 * create, then open/add/close each path. fd or -errno. */
int ve_bench_build_ruleset(uint64_t handled_fs, const char *const *paths,
			   const uint64_t *access, int n)
{
	struct ve_landlock_ruleset_attr attr = { .handled_access_fs = handled_fs };
	int rfd = (int)syscall(__NR_landlock_create_ruleset, &attr,
			       offsetof(struct ve_landlock_ruleset_attr, handled_access_net), 0);
	if (rfd < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct ve_landlock_path_beneath_attr pb = { .allowed_access = access[i] };
		pb.parent_fd = open(paths[i], O_PATH | O_CLOEXEC);
		if (pb.parent_fd < 0 ||
		    syscall(__NR_landlock_add_rule, rfd, VE_LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0) {
			int err = -errno;
			if (pb.parent_fd >= 0)
				close(pb.parent_fd);
			close(rfd);
			return err;
		}
		close(pb.parent_fd);
	}
	return rfd;
}

static int64_t ns_between(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(b->tv_sec - a->tv_sec) * 1000000000 + (b->tv_nsec - a->tv_nsec);
}

/* Fork (raw clone, no atfork handlers); the child times no_new_privs +
 * landlock_restrict_self done `how` (VE_BENCH_APPLY_*), writes the elapsed
 * ns (or -errno) to a pipe and exits. Returns the child's figure, or -errno. */
int64_t ve_bench_fork_apply(int ruleset_fd, uint32_t flags, int how)
{
	int p[2];
	int64_t result = -EIO;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (pid < 0) {
		result = -errno;
		close(p[0]);
		close(p[1]);
		return result;
	}
	if (pid == 0) {
		struct timespec t0, t1;
		int64_t r;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (how == VE_BENCH_APPLY_LIB) {
			r = ve_landlock_restrict_self(ruleset_fd, flags, 1);
		} else {
			r = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
			if (r == 0)
				r = syscall(__NR_landlock_restrict_self, ruleset_fd, flags);
			if (r < 0)
				r = -errno;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (r == 0)
			r = ns_between(&t0, &t1);
		(void)!write(p[1], &r, sizeof(r));
		syscall(SYS_exit_group, 0);
	}
	close(p[1]);
	if (read(p[0], &result, sizeof(result)) != (ssize_t)sizeof(result))
		result = -EIO;
	close(p[0]);
	while (waitpid(pid, NULL, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return result;
}
