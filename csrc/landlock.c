/* Landlock: probe, ruleset, rules, restrict. */
#include "landlock.h" /* first: enforce.h sets _GNU_SOURCE */
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>

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

/* A new ruleset fd (the kernel always sets O_CLOEXEC), or -errno. The
 * attribute is passed with the smallest size that holds its non-zero fields,
 * so that kernels of every ABI accept it. */
int ve_landlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped)
{
	struct ve_landlock_ruleset_attr attr = {
		.handled_access_fs = handled_fs,
		.handled_access_net = handled_net,
		.scoped = scoped,
	};
	size_t size = offsetof(struct ve_landlock_ruleset_attr, handled_access_net);
	if (scoped)
		size = sizeof(attr);
	else if (handled_net)
		size = offsetof(struct ve_landlock_ruleset_attr, scoped);
	long fd = syscall(__NR_landlock_create_ruleset, &attr, size, 0);
	return fd < 0 ? -errno : (int)fd;
}

/* Allow `access` beneath `path`: open it O_PATH|O_CLOEXEC (following
 * symlinks), fstat, drop the `dir_only` rights when it is not a directory
 * (the kernel refuses them there with EINVAL), add the rule, close.
 * Returns 0 (out->allowed says what was added, 0 if nothing was left) or
 * -errno with out->step naming the step that failed. */
int ve_landlock_add_path_rule(int ruleset_fd, const char *path, uint64_t access,
			      uint64_t dir_only, struct ve_landlock_path_rule *out)
{
	struct stat st;
	int err = 0;

	out->allowed = 0;
	out->mode = 0;
	out->step = VE_LANDLOCK_STEP_OPEN;
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	out->step = VE_LANDLOCK_STEP_FSTAT;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	out->mode = st.st_mode;
	if (!S_ISDIR(st.st_mode))
		access &= ~dir_only;
	if (access) {
		struct ve_landlock_path_beneath_attr attr = {
			.allowed_access = access,
			.parent_fd = fd,
		};
		out->step = VE_LANDLOCK_STEP_ADD_RULE;
		if (syscall(__NR_landlock_add_rule, ruleset_fd, VE_LANDLOCK_RULE_PATH_BENEATH,
			    &attr, 0) < 0) {
			err = -errno;
			goto out;
		}
		out->allowed = access;
	}
	out->step = 0;
out:
	close(fd);
	return err;
}

/* Allow `access` (LANDLOCK_ACCESS_NET_*) on TCP `port`: 0 or -errno
 * (EAFNOSUPPORT: the kernel has no TCP, so nothing needs allowing). */
int ve_landlock_add_port_rule(int ruleset_fd, uint64_t access, uint64_t port)
{
	struct ve_landlock_net_port_attr attr = {
		.allowed_access = access,
		.port = port,
	};
	long r = syscall(__NR_landlock_add_rule, ruleset_fd, VE_LANDLOCK_RULE_NET_PORT, &attr, 0);
	return r < 0 ? -errno : 0;
}

/* The only step a child runs: set no_new_privs when asked, then enforce the
 * ruleset on the calling thread. A ruleset fd of -1 with no flags means
 * nothing is enforced; -1 with LOG_SUBDOMAINS_OFF is valid on ABI 7.
 * No allocation: safe between fork and exec. 0 or -errno. */
int ve_landlock_restrict_self(int ruleset_fd, uint32_t flags, int set_no_new_privs)
{
	if (set_no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (ruleset_fd < 0 && flags == 0)
		return 0;
	if (syscall(__NR_landlock_restrict_self, ruleset_fd, flags) < 0)
		return -errno;
	return 0;
}
