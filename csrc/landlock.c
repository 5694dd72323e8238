/* Landlock: probe, ruleset, rules, restrict. */
#include "landlock.h"

/* Highest ABI version the kernel supports, or -errno (ENOSYS: not built in,
 * EOPNOTSUPP: built in but disabled at boot). */
int ve_landlock_abi(void)
{
	long r = syscall(__NR_landlock_create_ruleset, NULL, 0,
			 LANDLOCK_CREATE_RULESET_VERSION);
	return r < 0 ? -errno : (int)r;
}

/* Bitmask of fixed errata (6.15+), or -errno (EINVAL on older kernels). */
int ve_landlock_errata(void)
{
	long r = syscall(__NR_landlock_create_ruleset, NULL, 0,
			 LANDLOCK_CREATE_RULESET_ERRATA);
	return r < 0 ? -errno : (int)r;
}
