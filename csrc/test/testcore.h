#ifndef VE_TESTCORE_H
#define VE_TESTCORE_H
/* Test-only C for tests/ and benchmarks/ (the _volt_testcore extension, built by
 * tests/build_testcore.py): floors the benchmarks measure against and probes the
 * tests need. Never part of the shipped volt_enforce._core. */
#include "landlock.h" /* first: enforce.h sets _GNU_SOURCE */
#include "seccomp.h"

/* landlock_bench.c: how ve_bench_fork_apply applies the ruleset */
#define VE_BENCH_APPLY_RAW 0 /* inline prctl + landlock_restrict_self: the C floor */
#define VE_BENCH_APPLY_LIB 1 /* ve_landlock_restrict_self: what the library runs */
int ve_bench_build_ruleset(uint64_t handled_fs, const char *const *paths,
			   const uint64_t *access, int n);
int64_t ve_bench_fork_apply(int ruleset_fd, uint32_t flags, int how);

/* seccomp_test.c: a child measures itself with these */
long ve_test_int80_getpid(void);
long long ve_bench_load_ns(const void *bpf, unsigned int n_insns, unsigned int flags);
long long ve_bench_call_ns(int (*fn)(void *), void *arg);
long long ve_bench_syscall_ns(long nr, unsigned long a0, unsigned long a1,
			      unsigned long iters);
#endif
