#ifndef VE_USERS_H
#define VE_USERS_H
#include "enforce.h"

/* A user namespace with the given maps, written by this (the parent) process;
 * returns an O_CLOEXEC fd of it (/proc/PID/ns/user of a short-lived holder), or
 * -errno with *step naming what failed: 0 clone, 1 uid_map, 2 gid_map, 3 open. */
int ve_userns_open(const char *uid_map, const char *gid_map, int *step);

/* A detached copy of the mount tree at path (open_tree OPEN_TREE_CLONE,
 * recursive), idmapped through the user namespace userns_fd: files owned by id
 * N on disk appear owned by whatever N maps to there. Returns its fd or -errno. */
int ve_idmapped_tree(const char *path, int userns_fd);
#endif
