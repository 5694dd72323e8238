/* Test and benchmark helpers for seccomp (tests/test_seccomp_kernel.py,
 * benchmarks/test_bench_seccomp.py), not part of the library. */
#include "testcore.h"
#include <time.h>

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
