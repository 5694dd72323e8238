/*
 * The filesystem view (see view.h): raw syscalls on data the parent prepared,
 * no allocation, so that ve_view_enter is safe in a CLONE_VM child between
 * clone and exec, as the rest of ve_apply.
 */
#include "view.h" /* first: enforce.h defines _GNU_SOURCE */
#include "landlock.h"
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#ifndef __GLIBC__
#include <linux/mount.h> /* struct mount_attr, MOUNT_ATTR_*: glibc has them in sys/mount.h */
#endif

#ifndef __NR_open_tree
#define __NR_open_tree 428 /* 5.2 */
#endif
#ifndef __NR_move_mount
#define __NR_move_mount 429 /* 5.2 */
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442 /* 5.12 */
#endif
#ifndef __NR_pivot_root
#define __NR_pivot_root 155
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000 /* 5.12 */
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

#define VE_VIEW_STACK (64 * 1024)

/* mkdir -p: every component of `path` (relative or absolute); the last gets
 * `mode`, the others 0755. An existing component is fine. */
static long mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf)) {
		errno = n ? ENAMETOOLONG : EINVAL;
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, c ? 0755 : mode) < 0 && errno != EEXIST)
			return -1;
		buf[i] = c;
	}
	return 0;
}

static long mkdir_parent(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, n + 1);
	char *slash = strrchr(buf, '/');
	if (slash == NULL || slash == buf)
		return 0;
	*slash = '\0';
	return mkdir_p(buf, 0755);
}

static long set_attr(int dfd, const char *path, uint64_t attr_set, int recursive)
{
	if (!attr_set)
		return 0;
	struct mount_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.attr_set = attr_set;
	unsigned int flags = (recursive ? AT_RECURSIVE : 0) | (path[0] ? 0 : AT_EMPTY_PATH);
	return syscall(__NR_mount_setattr, dfd, path, flags, &attr, sizeof(attr));
}

static unsigned long ms_flags(uint64_t attr)
{
	unsigned long f = 0;
	if (attr & MOUNT_ATTR_RDONLY)
		f |= MS_RDONLY;
	if (attr & MOUNT_ATTR_NOSUID)
		f |= MS_NOSUID;
	if (attr & MOUNT_ATTR_NODEV)
		f |= MS_NODEV;
	if (attr & MOUNT_ATTR_NOEXEC)
		f |= MS_NOEXEC;
	return f;
}

/* The mount point for a detached mount: a directory, or an empty file for a
 * file or device. An existing one is used as it is. */
static long make_mountpoint(int fd, const char *path)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISDIR(st.st_mode))
		return mkdir_p(path, 0755);
	if (mkdir_parent(path) < 0)
		return -1;
	int f = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (f < 0) {
		if (errno != EEXIST && errno != EROFS && errno != EISDIR)
			return -1;
		return 0; /* an existing mount point (a read-only mount holds it) */
	}
	close(f);
	return 0;
}

/* A filesystem mounted on path; its mount point made (mode) only when missing. */
static long mount_at(const char *path, mode_t mode, const char *src, const char *type,
		     unsigned long flags, const void *data)
{
	if (mount(src, path, type, flags, data) == 0)
		return 0;
	if (errno != ENOENT || (mkdir_p(path, mode) < 0 && errno != EROFS))
		return -1;
	return mount(src, path, type, flags, data);
}

static long run_op(const struct ve_view_op *o, int *slots)
{
	long r = 0;
	int fd;
	switch (o->op) {
	case VE_VOP_CLONE:
		if (o->slot < 0 || o->slot >= VE_VIEW_MAX_SLOTS) {
			errno = EINVAL;
			return -1;
		}
		fd = (int)syscall(__NR_open_tree, AT_FDCWD, o->path,
				  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (o->recursive ? AT_RECURSIVE : 0));
		if (fd < 0)
			return -1;
		if (set_attr(fd, "", o->attr_set, 1) < 0) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		slots[o->slot] = fd;
		return 0;
	case VE_VOP_ROOT:
		if (o->slot >= 0) {
			fd = slots[o->slot];
		} else {
			/* a tmpfs as the root: no mount API needed for it */
			if (mount("tmpfs", o->path, "tmpfs", MS_NOSUID | MS_NODEV,
				  o->data ? o->data : "mode=0755") < 0)
				return -1;
			return chdir(o->path);
		}
		if (syscall(__NR_move_mount, fd, "", AT_FDCWD, o->path, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			return -1;
		return chdir(o->path);
	case VE_VOP_ATTACH:
		if (o->slot < 0 || o->slot >= VE_VIEW_MAX_SLOTS || slots[o->slot] < 0) {
			errno = EBADF;
			return -1;
		}
		fd = slots[o->slot];
		if (make_mountpoint(fd, o->path) < 0)
			return -1;
		r = syscall(__NR_move_mount, fd, "", AT_FDCWD, o->path, MOVE_MOUNT_F_EMPTY_PATH);
		close(fd);
		slots[o->slot] = -1;
		return r;
	case VE_VOP_TMPFS:
		return mount_at(o->path, 0755, "tmpfs", "tmpfs", ms_flags(o->attr_set), o->data);
	case VE_VOP_PROC:
		return mount_at(o->path, 0555, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	case VE_VOP_DEVPTS:
		return mount_at(o->path, 0755, "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
				"newinstance,ptmxmode=0666,mode=0620");
	case VE_VOP_BIND:
		/* the old API: one call, where a clone and a move take six */
		if (mount(o->data, o->path, NULL, MS_BIND | (o->recursive ? MS_REC : 0), NULL) < 0)
			return -1;
		if (!o->attr_set)
			return 0; /* a bind keeps its source mount's nosuid, nodev, noexec */
		return mount(NULL, o->path, NULL, MS_REMOUNT | MS_BIND | ms_flags(o->attr_set), NULL);
	case VE_VOP_SYMLINK:
		if (symlink(o->data, o->path) == 0 || errno == EEXIST)
			return 0;
		if (errno != ENOENT || mkdir_parent(o->path) < 0)
			return -1;
		if (symlink(o->data, o->path) < 0 && errno != EEXIST)
			return -1;
		return 0;
	case VE_VOP_MKDIR:
		/* the mode as given (1777 for a /tmp): the sequence runs with umask 0 */
		if (mkdir(o->path, o->mode ? o->mode : 0755) == 0 || errno == EEXIST)
			return 0;
		return errno == ENOENT ? mkdir_p(o->path, o->mode ? o->mode : 0755) : -1;
	case VE_VOP_SETATTR:
		return set_attr(AT_FDCWD, o->path, o->attr_set, o->recursive);
	case VE_VOP_UMOUNT:
		if (umount2(o->path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
			return -1;
		return 0;
	case VE_VOP_MKNOD:
		return mknod(o->path, (mode_t)o->mode, (dev_t)o->attr_set);
	case VE_VOP_IDMAP: {
		if (o->slot < 0 || o->slot >= VE_VIEW_MAX_SLOTS || slots[o->slot] < 0) {
			errno = EBADF;
			return -1;
		}
		struct mount_attr attr;
		memset(&attr, 0, sizeof(attr));
		attr.attr_set = MOUNT_ATTR_IDMAP;
		attr.userns_fd = (uint64_t)o->userns_fd;
		/* the top mount only: a submount not idmapped keeps ids the child cannot use */
		return syscall(__NR_mount_setattr, slots[o->slot], "", AT_EMPTY_PATH, &attr,
			       sizeof(attr));
	}
	case VE_VOP_PIVOT:
		/* the old root is stacked on "." and detached at once */
		if (syscall(__NR_pivot_root, ".", ".") < 0)
			return -1;
		if (umount2(".", MNT_DETACH) < 0)
			return -1;
		return chdir("/");
	}
	errno = EINVAL;
	return -1;
}

/* Run a sequence; slots holds the clones between CLONE and ATTACH. On failure
 * *failed_op names the operation and every slot still open is closed. */
long ve_view_run_ops(const struct ve_view_op *ops, int n_ops, int *slots, int *failed_op)
{
	long r = 0;
	/* modes as given (a 1777 /tmp, the host's device modes), whatever the umask */
	mode_t old = umask(0);
	for (int i = 0; i < n_ops; i++) {
		if (run_op(&ops[i], slots) < 0) {
			*failed_op = i;
			r = -errno;
			break;
		}
	}
	umask(old);
	for (int s = 0; s < VE_VIEW_MAX_SLOTS; s++) {
		if (slots[s] >= 0) {
			close(slots[s]);
			slots[s] = -1;
		}
	}
	return r;
}

struct prepare_ctx {
	const struct ve_view_op *ops;
	int n_ops;
	int ns_fd;
	int err;
	int failed_op;
};

static int prepare_main(void *arg)
{
	struct prepare_ctx *c = arg;
	int slots[VE_VIEW_MAX_SLOTS];
	for (int s = 0; s < VE_VIEW_MAX_SLOTS; s++)
		slots[s] = -1;
	c->failed_op = -1;
	if (syscall(SYS_unshare, CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) {
		c->err = errno;
		syscall(SYS_exit, 1);
	}
	/* the fd lands in the caller's table (CLONE_FILES) and holds the namespace */
	int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		c->err = errno;
		syscall(SYS_exit, 1);
	}
	long r = ve_view_run_ops(c->ops, c->n_ops, slots, &c->failed_op);
	if (r < 0) {
		close(fd);
		c->err = (int)-r;
		syscall(SYS_exit, 1);
	}
	c->ns_fd = fd;
	syscall(SYS_exit, 0);
	return 0;
}

/* Build the template in a helper that shares our memory and fd table, but not
 * our filesystem context: it unshares a mount namespace, makes the tree a
 * slave (nothing it mounts reaches the host), runs `ops` and leaves the
 * namespace's fd in our table. Returns that fd (close-on-exec), or -errno
 * with *failed_op the operation (-1: the namespace itself). */
int ve_view_prepare(const struct ve_view_op *ops, int n_ops, int *failed_op)
{
	struct prepare_ctx ctx = { ops, n_ops, -1, 0, -1 };
	sigset_t all, old;
	void *stack = mmap(NULL, VE_VIEW_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	*failed_op = -1;
	if (stack == MAP_FAILED)
		return -errno;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int pid = clone(prepare_main, (char *)stack + VE_VIEW_STACK,
			CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &ctx);
	int err = pid < 0 ? errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid > 0) {
		int status;
		while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR)
			;
	}
	munmap(stack, VE_VIEW_STACK);
	if (err)
		return -err;
	*failed_op = ctx.failed_op;
	if (ctx.ns_fd < 0)
		return -(ctx.err ? ctx.err : ECHILD);
	return ctx.ns_fd;
}

/* A path rule, opened in the view: O_DIRECTORY tells a directory apart without
 * an fstat; anything else loses the rights only a directory takes. */
static long add_rule(int ruleset_fd, const struct ve_view_rule *rule, uint64_t dir_only)
{
	uint64_t access = rule->access;
	int fd = -1;
	if (access & dir_only) {
		fd = open(rule->path, O_PATH | O_CLOEXEC | O_DIRECTORY);
		if (fd < 0 && errno != ENOTDIR)
			return -errno;
	}
	if (fd < 0) {
		access &= ~dir_only;
		fd = open(rule->path, O_PATH | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	long r = access || rule->flags ? ve_landlock_add_beneath(ruleset_fd, fd, access, rule->flags)
				       : 0;
	close(fd);
	return r;
}

/* A child's entry into the view: its cwd is taken first, the template entered
 * and copied, its own mounts made, the cwd resolved inside (else "/", and
 * *cwd_outside says so), and the Landlock ruleset built from paths opened in
 * the view, so that the rules cover what the child mounted. *index: the failed
 * op, or 1000 + the failed rule. 0 or -errno. */
long ve_view_enter(const struct ve_view *v, int *ruleset_fd, int *index, int *cwd_outside)
{
	char cwd[PATH_MAX];
	int slots[VE_VIEW_MAX_SLOTS];
	long r;

	*ruleset_fd = -1;
	*index = -1;
	*cwd_outside = 0;
	for (int s = 0; s < VE_VIEW_MAX_SLOTS; s++)
		slots[s] = -1;
	if (syscall(SYS_getcwd, cwd, sizeof(cwd)) < 0 || cwd[0] != '/')
		cwd[0] = '\0'; /* unreachable from our root: never kept */
	if (syscall(SYS_setns, v->ns_fd, CLONE_NEWNS) < 0)
		return -errno;
	if (syscall(SYS_unshare, CLONE_NEWNS) < 0)
		return -errno;
	if (chdir("/") < 0)
		return -errno;
	r = ve_view_run_ops(v->ops, v->n_ops, slots, index);
	if (r < 0)
		return r;
	*index = -1;
	if (cwd[0] == '\0' || chdir(cwd) < 0) {
		if (chdir("/") < 0)
			return -errno;
		*cwd_outside = 1;
	}
	if (!v->ll)
		return 0;
	int fd = ve_landlock_create_ruleset_quiet(v->handled_fs, v->handled_net, v->scoped,
						  v->quiet_fs, v->quiet_net, v->quiet_scoped);
	if (fd < 0)
		return fd;
	for (int i = 0; i < v->n_ports; i++) {
		r = ve_landlock_add_port_rule(fd, v->ports[i].access, v->ports[i].port);
		if (r < 0 && r != -EAFNOSUPPORT) {
			*index = 2000 + i;
			close(fd);
			return r;
		}
	}
	for (int i = 0; i < v->n_rules; i++) {
		r = add_rule(fd, &v->rules[i], v->dir_only);
		/* absent from the view: nothing there to allow */
		if (r == -ENOENT || r == -ENOTDIR)
			continue;
		if (r < 0) {
			*index = 1000 + i;
			close(fd);
			return r;
		}
	}
	*ruleset_fd = fd;
	return 0;
}
