#ifndef VE_NETNS_H
#define VE_NETNS_H
#include "enforce.h"

/* Namespaces the parent prepares for a child (volt_enforce/net): made here,
 * configured from Python, joined by the child with one setns (ve_plan.net_fd). */

/* A new network namespace, as an O_CLOEXEC fd in the caller's fd table. With
 * userns_fd >= 0 it is owned by that user namespace: a CLONE_VM|CLONE_VFORK
 * child sharing the fd table joins the user namespace, unshares and opens
 * /proc/self/ns/net (a thread cannot join a user namespace). Else it is owned
 * by the caller's. Returns the fd, or -errno. */
int ve_netns_new(int userns_fd);
/* setns(2): 0 or -errno (for the calling thread). */
int ve_setns(int fd, int nstype);
#endif
