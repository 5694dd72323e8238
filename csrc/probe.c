/* Probes of process state and namespace support. */
#include "probe.h" /* first: it defines _GNU_SOURCE */
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/* 1 when no_new_privs is set on the calling thread, 0 when not, or -errno. */
int ve_no_new_privs(void)
{
	int r = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	return r < 0 ? -errno : r;
}

/* Try unshare(flags) in a short-lived child: 0 when it worked, else -errno.
 * The child makes one syscall and exits; nothing in this process changes. */
int ve_probe_unshare(int flags)
{
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		long r = syscall(SYS_unshare, flags);
		syscall(SYS_exit_group, r < 0 ? errno : 0);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (!WIFEXITED(status))
		return -ECHILD;
	return -WEXITSTATUS(status);
}
