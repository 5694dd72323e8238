/* Landlock: probe, ruleset, rules, restrict. */
#include "landlock.h" /* first: enforce.h sets _GNU_SOURCE */
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

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
 * so that kernels of every ABI accept it: 48 bytes only with a quiet field
 * (ABI 10), which an older kernel refuses with E2BIG. */
int ve_landlock_create_ruleset_quiet(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped,
				     uint64_t quiet_fs, uint64_t quiet_net, uint64_t quiet_scoped)
{
	struct ve_landlock_ruleset_attr attr = {
		.handled_access_fs = handled_fs,
		.handled_access_net = handled_net,
		.scoped = scoped,
		.quiet_access_fs = quiet_fs,
		.quiet_access_net = quiet_net,
		.quiet_scoped = quiet_scoped,
	};
	size_t size = offsetof(struct ve_landlock_ruleset_attr, handled_access_net);
	if (quiet_fs || quiet_net || quiet_scoped)
		size = sizeof(attr);
	else if (scoped)
		size = offsetof(struct ve_landlock_ruleset_attr, quiet_access_fs);
	else if (handled_net)
		size = offsetof(struct ve_landlock_ruleset_attr, scoped);
	long fd = syscall(__NR_landlock_create_ruleset, &attr, size, 0);
	return fd < 0 ? -errno : (int)fd;
}

int ve_landlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped)
{
	return ve_landlock_create_ruleset_quiet(handled_fs, handled_net, scoped, 0, 0, 0);
}

/* Allow `access` beneath `path`: open it O_PATH|O_CLOEXEC (following
 * symlinks), fstat, drop the `dir_only` rights when it is not a directory
 * (the kernel refuses them there with EINVAL), add the rule, close.
 * Returns 0 (out->allowed says what was added, 0 if nothing was left) or
 * -errno with out->step naming the step that failed. */
int ve_landlock_add_path_rule(int ruleset_fd, const char *path, uint64_t access,
			      uint64_t dir_only, struct ve_landlock_path_rule *out)
{
	return ve_landlock_add_path_rule_flags(ruleset_fd, path, access, dir_only, 0, out);
}

/* One path-beneath rule on the open fd: 0 or -errno. */
int ve_landlock_add_beneath(int ruleset_fd, int fd, uint64_t access, uint32_t rule_flags)
{
	struct ve_landlock_path_beneath_attr attr = {
		.allowed_access = access,
		.parent_fd = fd,
	};
	if (syscall(__NR_landlock_add_rule, ruleset_fd, VE_LANDLOCK_RULE_PATH_BENEATH, &attr,
		    rule_flags) < 0)
		return -errno;
	return 0;
}

/* As ve_landlock_add_path_rule, with landlock_add_rule(2) flags (ABI 10:
 * LANDLOCK_ADD_RULE_QUIET, which may mark a path with no right at all). */
int ve_landlock_add_path_rule_flags(int ruleset_fd, const char *path, uint64_t access,
				    uint64_t dir_only, uint32_t rule_flags,
				    struct ve_landlock_path_rule *out)
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
	if (access || rule_flags) {
		out->step = VE_LANDLOCK_STEP_ADD_RULE;
		err = ve_landlock_add_beneath(ruleset_fd, fd, access, rule_flags);
		if (err < 0)
			goto out;
		out->allowed = access;
	}
	out->step = 0;
out:
	close(fd);
	return err;
}

/* Allow `access` (LANDLOCK_ACCESS_NET_*) on TCP or UDP `port`: 0 or -errno
 * (EAFNOSUPPORT: the kernel has no TCP, so nothing needs allowing). */
int ve_landlock_add_port_rule_flags(int ruleset_fd, uint64_t access, uint64_t port,
				    uint32_t rule_flags)
{
	struct ve_landlock_net_port_attr attr = {
		.allowed_access = access,
		.port = port,
	};
	long r = syscall(__NR_landlock_add_rule, ruleset_fd, VE_LANDLOCK_RULE_NET_PORT, &attr,
			 rule_flags);
	return r < 0 ? -errno : 0;
}

int ve_landlock_add_port_rule(int ruleset_fd, uint64_t access, uint64_t port)
{
	return ve_landlock_add_port_rule_flags(ruleset_fd, access, port, 0);
}

/* The only step a child runs: no_new_privs, then enforce the ruleset on the
 * calling thread (on every thread with LANDLOCK_RESTRICT_SELF_TSYNC). This is
 * the one place that decides how no_new_privs is set: with
 * LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS in `flags` (ABI 11, needs a ruleset) the
 * kernel sets it iff the restriction succeeds and no prctl is made; otherwise
 * prctl(PR_SET_NO_NEW_PRIVS) first when `set_no_new_privs`. With
 * set_no_new_privs 0 the flag is taken out, so nothing sets no_new_privs.
 * A ruleset fd of -1 with no flags means nothing is enforced; -1 with
 * LOG_SUBDOMAINS_OFF (and TSYNC, where the kernel allows it) is valid.
 * No allocation: safe between fork and exec. 0 or -errno. */
int ve_landlock_restrict_self(int ruleset_fd, uint32_t flags, int set_no_new_privs)
{
	if (!set_no_new_privs)
		flags &= ~LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS;
	if (set_no_new_privs && !(flags & LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS) &&
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (ruleset_fd < 0 && flags == 0)
		return 0;
	if (syscall(__NR_landlock_restrict_self, ruleset_fd, flags) < 0)
		return -errno;
	return 0;
}

/* Whether the kernel accepts landlock_restrict_self(2) `flags`: tried in a
 * forked child, so the caller's own threads and logging stay as they are.
 * with_ruleset: on an empty ruleset (handling READ_FILE only), else fd -1.
 * With LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS the child makes no prctl and
 * checks that the kernel set no_new_privs. 0, or -errno the child got. */
int ve_landlock_probe_restrict(uint32_t flags, int with_ruleset)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = -1;
		if (with_ruleset) {
			fd = ve_landlock_create_ruleset(LANDLOCK_ACCESS_FS_READ_FILE, 0, 0);
			if (fd < 0)
				_exit(-fd);
		}
		if (!(flags & LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS) &&
		    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(errno);
		if (syscall(__NR_landlock_restrict_self, fd, flags) < 0)
			_exit(errno);
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
			_exit(ENOTSUP);
		_exit(0);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status))
		return -ECHILD;
	return -WEXITSTATUS(status);
}
