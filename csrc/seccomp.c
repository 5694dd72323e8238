/* seccomp: probe and load precompiled filters. */
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
