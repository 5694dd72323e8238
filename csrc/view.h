/*
 * The filesystem view: a mount namespace built from the policy, prepared once
 * (the template, held by fd) and entered by each child, which makes its own
 * /proc, /tmp, /dev/shm, devpts and the other private mounts on top, opens the
 * Landlock rules inside it and starts in its cwd resolved there.
 */
#ifndef VE_VIEW_H
#define VE_VIEW_H
#include "enforce.h"
#include <sys/mount.h>

/* One operation of a view sequence. Before VE_VOP_ROOT (template only) paths
 * are the host's, absolute; after it, and in a child's sequence, they are
 * relative to the view's root. */
enum {
	VE_VOP_CLONE = 1, /* slot <- open_tree(path, OPEN_TREE_CLONE[|AT_RECURSIVE]), attr set */
	VE_VOP_ROOT,      /* template: slot (or a tmpfs, slot -1) attached at `path`, cwd there */
	VE_VOP_ATTACH,    /* move_mount(slot) onto path (made as a directory or an empty file) */
	VE_VOP_TMPFS,     /* tmpfs with options `data` on path, attr set */
	VE_VOP_PROC,      /* a fresh procfs on path */
	VE_VOP_DEVPTS,    /* a private devpts instance on path */
	VE_VOP_SYMLINK,   /* path -> data */
	VE_VOP_MKDIR,     /* mkdir -p path, the last component with `mode` */
	VE_VOP_SETATTR,   /* mount_setattr(path, attr_set[, AT_RECURSIVE]) */
	VE_VOP_UMOUNT,    /* umount2(path, MNT_DETACH); not mounted is fine */
	VE_VOP_PIVOT,     /* template: pivot_root(".", "."), detach the old root, chdir / */
	VE_VOP_MKNOD,     /* a device node: mode (type and permissions), attr_set the dev_t */
	VE_VOP_IDMAP,     /* slot's detached mount idmapped through userns_fd */
	VE_VOP_BIND,      /* bind data onto path ([MS_REC]); attr_set: every flag it then gets */
};

#define VE_VIEW_MAX_SLOTS 64

struct ve_view_op {
	int op;
	int slot;
	int recursive;
	uint32_t mode;
	uint64_t attr_set;
	const char *path;
	const char *data;
	int userns_fd;    /* VE_VOP_IDMAP only */
};

struct ve_view_rule {
	const char *path; /* in the view, opened by the child */
	uint64_t access;
	uint32_t flags;   /* landlock_add_rule flags (QUIET) */
};

struct ve_view_port {
	uint64_t access;
	uint64_t port;
};

/* What a child does to enter the view (ve_view_enter). */
struct ve_view {
	int ns_fd;                       /* the template's mount namespace */
	const struct ve_view_op *ops;    /* the child's own mounts */
	int n_ops;
	/* Landlock, opened inside the view; ll 0: none */
	int ll;
	uint64_t handled_fs, handled_net, scoped, quiet_fs, quiet_net, quiet_scoped;
	uint64_t dir_only;
	const struct ve_view_rule *rules;
	int n_rules;
	const struct ve_view_port *ports;
	int n_ports;
};

/* ve_result.flags */
#define VE_RESULT_CWD_OUTSIDE_VIEW 1

int ve_view_prepare(const struct ve_view_op *ops, int n_ops, int *failed_op);
long ve_view_run_ops(const struct ve_view_op *ops, int n_ops, int *slots, int *failed_op);
long ve_view_enter(const struct ve_view *v, int *ruleset_fd, int *index, int *cwd_outside);
#endif
