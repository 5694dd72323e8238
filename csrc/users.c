/*
 * User namespaces prepared by the parent (volt_enforce/users.py).
 *
 * The parent cannot unshare a user namespace itself (it may have threads, and it
 * must stay where it is), so a holder process is cloned into a new one, the
 * parent writes its maps (a privileged writer may map a whole range; a process
 * writing its own maps may map only its own uid), opens /proc/PID/ns/user and
 * lets the holder exit: the fd keeps the namespace. Children setns into it.
 */
#include "users.h"
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <linux/mount.h>

#define VE_HOLDER_STACK (16 * 1024)

#ifndef __NR_open_tree
#define __NR_open_tree 428 /* 5.2 */
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442 /* 5.12 */
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000 /* 5.12 */
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

struct ve_mount_attr {
	__u64 attr_set;
	__u64 attr_clr;
	__u64 propagation;
	__u64 userns_fd;
};

/* Waits for the parent to close the pipe, with every signal blocked (it shares
 * the parent's memory: no handler of the parent's may run here). */
static int holder_main(void *arg)
{
	int *p = arg;
	char c;
	syscall(SYS_close, p[1]); /* its copy: the parent's close alone ends the read */
	while (syscall(SYS_read, p[0], &c, 1) < 0 && errno == EINTR)
		;
	syscall(SYS_exit, 0);
	return 0;
}

static long write_map(long pid, const char *name, const char *map)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/%s", pid, name);
	return ve_write_file(path, map);
}

int ve_userns_open(const char *uid_map, const char *gid_map, int *step)
{
	int p[2], err = 0, fd = -1;
	sigset_t all, old;

	*step = 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	void *stack = mmap(NULL, VE_HOLDER_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		err = errno;
		close(p[0]);
		close(p[1]);
		return -err;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	long pid = clone(holder_main, (char *)stack + VE_HOLDER_STACK,
			 CLONE_NEWUSER | CLONE_VM | SIGCHLD, p);
	if (pid < 0)
		err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid > 0) {
		char path[64];
		if (write_map(pid, "uid_map", uid_map) < 0) {
			err = errno;
			*step = 1;
		} else if (write_map(pid, "gid_map", gid_map) < 0) {
			err = errno;
			*step = 2;
		} else {
			snprintf(path, sizeof(path), "/proc/%ld/ns/user", pid);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				err = errno;
				*step = 3;
			}
		}
	}
	close(p[1]); /* the holder's read returns: it exits */
	if (pid > 0)
		while (waitpid((pid_t)pid, NULL, __WALL) < 0 && errno == EINTR)
			;
	close(p[0]);
	munmap(stack, VE_HOLDER_STACK);
	return err ? -err : fd;
}

int ve_idmapped_tree(const char *path, int userns_fd)
{
	int fd = (int)syscall(__NR_open_tree, AT_FDCWD, path,
			      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (fd < 0)
		return -errno;
	struct ve_mount_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.attr_set = MOUNT_ATTR_IDMAP;
	attr.userns_fd = (__u64)userns_fd;
	if (syscall(__NR_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}
