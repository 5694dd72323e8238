/* seccomp: probe and load precompiled filters. */
#include "seccomp.h" /* first: enforce.h defines _GNU_SOURCE */
#include <sys/prctl.h>

/* The calling thread's seccomp mode (0 none, 1 strict, 2 filter) or -errno. */
int ve_seccomp_mode(void)
{
	int r = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
	return r < 0 ? -errno : r;
}

/* 0 when the kernel supports the filter return action, else -errno
 * (EOPNOTSUPP: unknown action; EINVAL/ENOSYS: no seccomp(2)). */
int ve_seccomp_action_avail(uint32_t action)
{
	long r = syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
	return r < 0 ? -errno : 0;
}

/* Set no_new_privs on the calling thread: required to load a filter without
 * CAP_SYS_ADMIN, and harmless with it. */
int ve_seccomp_set_no_new_privs(void)
{
	int r = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	return r < 0 ? -errno : 0;
}

/* Load a compiled filter: n_insns struct sock_filter entries at bpf, flags
 * SECCOMP_FILTER_FLAG_*. No allocation: safe between fork and exec. */
int ve_seccomp_load(const void *bpf, unsigned int n_insns, unsigned int flags)
{
	if (n_insns == 0 || n_insns > BPF_MAXINSNS)
		return -EINVAL;
	struct sock_fprog prog = {
		.len = (unsigned short)n_insns,
		.filter = (struct sock_filter *)bpf,
	};
	long r = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
	if (r < 0)
		return -errno;
	/* with TSYNC (and without TSYNC_ESRCH) r is a thread that could not sync */
	return r > 0 ? -ESRCH : 0;
}
