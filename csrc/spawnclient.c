/*
 * The library's side of the spawner protocol (csrc/spawnclient.h): the
 * caller's fingerprint, the setup message and one spawn request. Called from
 * Python through cffi, which releases the GIL, so threads wait in parallel.
 */
#include "spawn.h" /* first: enforce.h defines _GNU_SOURCE */
#include "spawnclient.h"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

extern char **environ;

struct caller_state {
	int umask_value;
	uint64_t blocked, ignored;
};

static int read_file(const char *path, char *buf, int size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, (size_t)(size - 1 - len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
		if (n == 0 || len + n >= size - 1) {
			len += (int)(n > 0 ? n : 0);
			break;
		}
		len += (int)n;
	}
	close(fd);
	buf[len] = '\0';
	return len;
}

static int append(char *out, int size, int len, const char *s, size_t n)
{
	if (len < 0 || (size_t)len + n >= (size_t)size)
		return -ENOBUFS;
	memcpy(out + len, s, n);
	out[len + n] = '\0';
	return len + (int)n;
}

/* The status lines that decide what a child of this thread inherits. */
static const char *const status_keys[] = {
	"Uid:", "Gid:", "Groups:", "NoNewPrivs:", "Seccomp:", "Seccomp_filters:", "CapInh:",
	"CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "Cpus_allowed:", "Mems_allowed:", NULL,
};
static const char *const namespaces[] = {
	"cgroup", "ipc", "mnt", "net", "pid_for_children", "time_for_children", "user", "uts", NULL,
};

static int state_and_fingerprint(char *fp, int size, struct caller_state *st)
{
	char buf[4096], line[160];
	int n = read_file("/proc/thread-self/status", buf, sizeof(buf));
	if (n < 0)
		return n;
	int len = 0;
	st->umask_value = -1;
	st->blocked = st->ignored = 0;
	for (char *p = buf; p && *p;) {
		char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) + 1 : strlen(p);
		if (!strncmp(p, "Umask:", 6))
			st->umask_value = (int)strtol(p + 6, NULL, 8);
		else if (!strncmp(p, "SigBlk:", 7))
			st->blocked = strtoull(p + 7, NULL, 16);
		else if (!strncmp(p, "SigIgn:", 7))
			st->ignored = strtoull(p + 7, NULL, 16);
		else
			for (int k = 0; status_keys[k]; k++)
				if (!strncmp(p, status_keys[k], strlen(status_keys[k]))) {
					len = append(fp, size, len, p, ll);
					break;
				}
		p = nl ? nl + 1 : NULL;
	}
	if (st->umask_value < 0)
		return -ENODATA; /* a kernel without Umask in status (< 4.7) */
	for (int k = 0; namespaces[k]; k++) {
		struct stat sb;
		char path[64];
		snprintf(path, sizeof(path), "/proc/thread-self/ns/%s", namespaces[k]);
		if (stat(path, &sb) < 0) {
			sb.st_ino = 0; /* a namespace type this kernel lacks */
			sb.st_dev = 0;
		}
		int m = snprintf(line, sizeof(line), "ns %s %lx:%lx\n", namespaces[k],
				 (unsigned long)sb.st_dev, (unsigned long)sb.st_ino);
		len = append(fp, size, len, line, (size_t)m);
	}
	int m = snprintf(line, sizeof(line), "pid %d pgrp %d sid %d pers %x secbits %x nice %d\n",
			 (int)getpid(), (int)getpgrp(), (int)getsid(0),
			 (unsigned)personality(0xffffffff), (unsigned)prctl(PR_GET_SECUREBITS),
			 (errno = 0, getpriority(PRIO_PROCESS, 0)));
	len = append(fp, size, len, line, (size_t)m);
	n = read_file("/proc/thread-self/cgroup", buf, sizeof(buf));
	if (n < 0)
		return n;
	return append(fp, size, len, buf, (size_t)n);
}

/* The calling thread's fingerprint (see spawnclient.h), or -errno. */
int ve_spawner_fingerprint(char *buf, int size)
{
	struct caller_state st;
	return state_and_fingerprint(buf, size, &st);
}

static long send_with_fds(int sock, const void *data, size_t len, const int *fds, int n_fds)
{
	struct iovec iov = { (void *)data, len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * VE_SPAWNER_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (n_fds > 0) {
		memset(u.buf, 0, CMSG_SPACE(sizeof(int) * (size_t)n_fds));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n_fds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n_fds);
	}
	long r;
	do
		r = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* One reply; 0 at EOF, -errno on error. A signal does not abandon it: the
 * request is in flight and its child must be known. */
static long recv_reply(int sock, struct ve_spawner_reply *rep)
{
	long r;
	do
		r = recv(sock, rep, sizeof(*rep), 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r > 0 && (r != (long)sizeof(*rep) || rep->magic != VE_SPAWNER_MAGIC))
		return -EPROTO;
	return r;
}

/* Send the plan; 0 when the spawner restricted itself, 1 when a step failed
 * (res says which), or -errno. */
int ve_spawner_setup(int sock, const struct ve_plan *plan, int slot_fd,
		     uint64_t child_scopes, uint64_t child_fs, uint32_t child_restrict_flags,
		     int nofile_limit, int stop_child, struct ve_result *res)
{
	size_t bpf_bytes = (size_t)plan->bpf_len * 8;
	size_t len = sizeof(struct ve_spawner_setup) + bpf_bytes;
	char *buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	struct ve_spawner_setup *s = (struct ve_spawner_setup *)buf;
	s->magic = VE_SPAWNER_MAGIC;
	s->kind = VE_SPAWNER_SETUP;
	s->fail_step = plan->fail_step;
	s->drop_caps = plan->drop_caps;
	s->cap_last = plan->cap_last;
	s->cap_keep = plan->cap_keep;
	s->no_new_privs = plan->no_new_privs;
	s->has_ruleset = plan->landlock_fd >= 0;
	s->landlock_flags = plan->landlock_flags;
	s->seccomp_flags = plan->seccomp_flags;
	s->bpf_len = plan->bpf_len;
	s->child_restrict_flags = child_restrict_flags;
	s->child_scopes = child_scopes;
	s->child_fs = child_fs;
	s->nofile_limit = nofile_limit;
	s->stop_child = stop_child;
	if (bpf_bytes)
		memcpy(buf + sizeof(*s), plan->bpf, bpf_bytes);
	int fds[2], n_fds = 0;
	if (plan->landlock_fd >= 0)
		fds[n_fds++] = plan->landlock_fd;
	fds[n_fds++] = slot_fd;
	long r = send_with_fds(sock, buf, len, fds, n_fds);
	free(buf);
	if (r < 0)
		return (int)r;
	struct ve_spawner_reply rep;
	r = recv_reply(sock, &rep);
	if (r <= 0)
		return r == 0 ? -ECONNRESET : (int)r;
	if (rep.kind != VE_SPAWNER_READY)
		return -EPROTO;
	res->step = rep.step;
	res->err = rep.err;
	res->index = rep.index;
	return rep.step ? 1 : 0;
}

static size_t strings_size(char *const *v, uint32_t *count)
{
	size_t n = 0;
	*count = 0;
	for (; *v; v++, (*count)++)
		n += strlen(*v) + 1;
	return n;
}

/* Start a child through the spawner: its pid (res->step 0, or the step that
 * failed: the child has exited and the caller reaps it), or one of the
 * VE_SPAWNER_R_* results, or -errno. */
int ve_spawner_call(int sock, const struct ve_spawner_call *c, const char *fp, int fp_len,
		    struct ve_spawner_slot *slot, struct ve_result *res)
{
	char fpbuf[VE_SPAWNER_FP_MAX];
	struct caller_state st;
	res->step = res->err = res->index = 0;
	int n = state_and_fingerprint(fpbuf, sizeof(fpbuf), &st);
	if (n < 0)
		return n;
	if (n != fp_len || memcmp(fpbuf, fp, (size_t)n) != 0)
		return VE_SPAWNER_R_STALE;

	int n_fds = 4 + c->n_keep_fds;
	if (c->n_keep_fds < 0 || n_fds > VE_SPAWNER_MAX_FDS)
		return VE_SPAWNER_R_TOO_BIG;
	uint32_t n_env = 0;
	size_t env_bytes = c->n_env < 0 ? strings_size(environ, &n_env) : 0;
	size_t head = sizeof(struct ve_spawner_req) + sizeof(int32_t) * (size_t)c->n_keep_fds;
	size_t len = head + c->strings_len + env_bytes;
	if (len > VE_SPAWNER_MAX_MSG)
		return VE_SPAWNER_R_TOO_BIG;
	char *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	struct ve_spawner_req *q = (struct ve_spawner_req *)buf;
	memset(q, 0, sizeof(*q));
	q->magic = VE_SPAWNER_MAGIC;
	q->kind = VE_SPAWNER_SPAWN;
	q->n_exec_paths = (uint32_t)c->n_exec_paths;
	q->n_argv = (uint32_t)c->n_argv;
	q->n_env = c->n_env < 0 ? n_env : (uint32_t)c->n_env;
	q->strings_len = (uint32_t)(c->strings_len + env_bytes);
	q->has_cwd = c->has_cwd;
	q->umask_value = c->umask_value >= 0 ? c->umask_value : st.umask_value;
	q->flags = (c->restore_signals ? VE_SPAWNER_RESTORE_SIGNALS : 0) |
		   (c->new_session ? VE_SPAWNER_NEW_SESSION : 0);
	q->blocked = st.blocked;
	q->ignored = st.ignored;
	for (int i = 0; i < VE_SPAWNER_NLIMITS; i++) {
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
		getrlimit((__rlimit_resource_t)i, &rl);
		q->rlim[i][0] = rl.rlim_cur;
		q->rlim[i][1] = rl.rlim_max;
	}
	/* strings: exec paths and argv (and env when given), then environ, then cwd:
	 * the blob has the cwd last, so environ goes in before it */
	char *out = buf + head;
	size_t cwd_len = 0;
	if (c->has_cwd) {
		const char *last = c->strings + c->strings_len - 1; /* the cwd's NUL */
		const char *p = last;
		while (p > c->strings && p[-1] != '\0')
			p--;
		cwd_len = (size_t)(last - p) + 1;
	}
	memcpy(out, c->strings, c->strings_len - cwd_len);
	out += c->strings_len - cwd_len;
	if (c->n_env < 0)
		for (char *const *e = environ; *e; e++) {
			size_t l = strlen(*e) + 1;
			memcpy(out, *e, l);
			out += l;
		}
	memcpy(out, c->strings + c->strings_len - cwd_len, cwd_len);

	int fds[VE_SPAWNER_MAX_FDS], k = 0;
	int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0) {
		int err = errno;
		free(buf);
		return -err;
	}
	q->cwd_fd = k;
	fds[k++] = cwd;
	const int given[3] = { c->fd0, c->fd1, c->fd2 };
	for (int i = 0; i < 3; i++) {
		int fd = given[i];
		if (fd < 0) {
			/* inherited: as the direct path, closed in the child when it is
			 * closed here or close-on-exec */
			int fl = fcntl(i, F_GETFD);
			fd = (fl < 0 || (fl & FD_CLOEXEC)) ? -1 : i;
		}
		q->stdio[i] = fd < 0 ? -1 : k;
		if (fd >= 0)
			fds[k++] = fd;
	}
	q->keep_base = k;
	q->n_keep = c->n_keep_fds;
	int32_t *targets = (int32_t *)(buf + sizeof(*q));
	for (int i = 0; i < c->n_keep_fds; i++) {
		targets[i] = c->keep_fds[i];
		fds[k++] = c->keep_fds[i];
	}

	slot->pid = 0;
	long r = send_with_fds(sock, buf, len, fds, k);
	close(cwd);
	free(buf);
	if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN)
		return VE_SPAWNER_R_DEAD; /* never received: safe to restart and retry */
	if (r == -EMSGSIZE || r == -ENOBUFS)
		return VE_SPAWNER_R_TOO_BIG;
	if (r == -EBADF && k > 1)
		return -EBADF; /* one of the fds to pass is not open */
	if (r < 0)
		return (int)r;
	struct ve_spawner_reply rep;
	r = recv_reply(sock, &rep);
	if (r <= 0) {
		res->index = slot->pid; /* written by the kernel before the child ran */
		res->err = r == 0 ? ECONNRESET : (int)-r;
		return VE_SPAWNER_R_LOST;
	}
	if (rep.kind == VE_SPAWNER_STALE)
		return VE_SPAWNER_R_STALE;
	if (rep.kind == VE_SPAWNER_ERROR) {
		res->err = rep.err;
		return VE_SPAWNER_R_REFUSED;
	}
	if (rep.kind != VE_SPAWNER_RESULT)
		return -EPROTO;
	res->step = rep.step;
	res->err = rep.err;
	res->index = rep.index;
	return rep.pid;
}
