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
/* spawn_floor.c: the raw C floors of a sandboxed spawn */
struct ve_bench_floor {
	const char *target;   /* exec'd with argv { target } and this process's environ */
	int init_fd;          /* contained: volt-pidinit's sealed memfd (pidns.init_memfd) */
	int ruleset_fd;       /* -1: no Landlock */
	const void *bpf;      /* struct sock_filter[] */
	unsigned int n_insns; /* 0: no seccomp filter */
	int drop_caps;
	int cap_last;
	uint64_t cap_keep;
	uint64_t child_scopes; /* the helper's children's own Landlock layer: these scopes, */
	uint64_t child_fs;     /* or (none) this right handled and granted beneath / */
};
long long ve_bench_contained_floor(const struct ve_bench_floor *f);
int ve_bench_helper_start(const struct ve_bench_floor *f, int *sock);
long long ve_bench_helper_spawn(int sock);
int ve_bench_helper_stop(int sock, int pid);
#endif
