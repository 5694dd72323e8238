/*
 * A network namespace for the private network, made in the parent. The child
 * that makes it shares the caller's memory and fd table and is gone before
 * ve_netns_new returns; the namespace lives on through the fd.
 */
#include "netns.h" /* first: enforce.h defines _GNU_SOURCE */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define VE_NETNS_STACK (16 * 1024)

struct netns_ctx {
	int userns_fd;
	int fd;  /* the new namespace's fd, in the shared fd table */
	int err; /* errno of the failed call */
};

static int netns_child(void *arg)
{
	struct netns_ctx *c = arg;
	if (c->userns_fd >= 0 && syscall(SYS_setns, c->userns_fd, CLONE_NEWUSER) < 0) {
		c->err = errno;
		syscall(SYS_exit, 1);
	}
	if (syscall(SYS_unshare, CLONE_NEWNET) < 0) {
		c->err = errno;
		syscall(SYS_exit, 1);
	}
	int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		c->err = errno;
	c->fd = fd;
	syscall(SYS_exit, 0);
	return 0;
}

int ve_netns_new(int userns_fd)
{
	struct netns_ctx ctx = { userns_fd, -1, 0 };
	sigset_t all, old;
	void *stack = mmap(NULL, VE_NETNS_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -errno;
	/* no handler of the caller may run on the child's stack */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	/* exit signal 0: no SIGCHLD for the caller's handlers; __WCLONE reaps it */
	int pid = clone(netns_child, (char *)stack + VE_NETNS_STACK,
			CLONE_VM | CLONE_VFORK | CLONE_FILES, &ctx);
	int err = pid < 0 ? errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid > 0) {
		while (waitpid(pid, NULL, __WCLONE) < 0 && errno == EINTR)
			;
	}
	munmap(stack, VE_NETNS_STACK);
	if (pid < 0)
		return -err;
	if (ctx.fd < 0)
		return -(ctx.err ? ctx.err : EIO);
	return ctx.fd;
}

int ve_setns(int fd, int nstype)
{
	return VE_ERR((int)syscall(SYS_setns, fd, nstype));
}
