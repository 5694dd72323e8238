/* seccomp: probe and load precompiled filters. */
#include <time.h>
#include <sys/prctl.h>
#include "seccomp.h"

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

/* Test only: getpid through the i386 entry (int $0x80), which a filter sees with
 * arch AUDIT_ARCH_I386. The result, or -errno, or -ENOSYS off x86_64. */
long ve_test_int80_getpid(void)
{
#if defined(__x86_64__)
	long ret = 20; /* __NR_getpid in asm/unistd_32.h */
	__asm__ volatile("int $0x80" : "+a"(ret) : : "memory", "r8", "r9", "r10", "r11");
	return ret;
#else
	return -ENOSYS;
#endif
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Benchmark only: nanoseconds to set no_new_privs and load a filter, or -errno. */
long long ve_bench_load_ns(const void *bpf, unsigned int n_insns, unsigned int flags)
{
	long long t0 = now_ns();
	int r = ve_seccomp_set_no_new_privs();
	if (r == 0)
		r = ve_seccomp_load(bpf, n_insns, flags);
	long long t1 = now_ns();
	return r < 0 ? r : t1 - t0;
}

/* Benchmark only: nanoseconds that fn(arg) takes (such as libseccomp's
 * seccomp_load), or its negative result. */
long long ve_bench_call_ns(int (*fn)(void *), void *arg)
{
	long long t0 = now_ns();
	int r = fn(arg);
	long long t1 = now_ns();
	return r < 0 ? r : t1 - t0;
}

/* Benchmark only: total nanoseconds of iters calls of syscall nr(a0, a1). */
long long ve_bench_syscall_ns(long nr, unsigned long a0, unsigned long a1,
			      unsigned long iters)
{
	long long t0 = now_ns();
	for (unsigned long i = 0; i < iters; i++)
		syscall(nr, a0, a1, 0, 0, 0, 0);
	return now_ns() - t0;
}
