/*
 * volt-init: apply a compiled plan to this process and exec a command.
 *
 *   volt-init PLAN -- CMD [ARGS...]
 *
 * For container images without Python: `volt-enforce compile ... -o PLAN`
 * writes the plan (Landlock rules, seccomp bytes, cgroup settings,
 * namespaces, capabilities). The steps run in the library's order through the
 * same C core (ve_apply); any failure exits 125 before CMD runs. Exit status:
 * 125 plan or enforcement error, 126 CMD cannot be executed, 127 not found.
 *
 * Plan format (text, one record per line, strings hex-encoded):
 *   volt-plan 1
 *   nnp 0|1
 *   caps KEEP_HEX                     reduce capabilities to KEEP
 *   unshare FLAGS_HEX                 CLONE_NEWUSER | CLONE_NEWNET
 *   cgroup-dir PATH                   mkdir (if absent)
 *   cgroup-set FILE VALUE             write VALUE to FILE
 *   cgroup-join DIR                   join DIR (write 0 to DIR/cgroup.procs)
 *   landlock FS_HEX NET_HEX SCOPED_HEX FLAGS_HEX
 *   path ACCESS_HEX DIRONLY_HEX PATH
 *   port ACCESS_HEX PORT
 *   seccomp FLAGS_HEX BPF_HEX
 *   end
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../spawn.h"
#include "../landlock.h"

#define MAX_PLAN (8 << 20)

static const char *prog = "volt-init";

static void die(int code, const char *what, const char *detail, int err)
{
	fprintf(stderr, "%s: %s%s%s%s%s\n", prog, what, detail ? " " : "", detail ? detail : "",
		err ? ": " : "", err ? strerror(err) : "");
	exit(code);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode hex in place; returns the byte count or -1. */
static long unhex(char *s)
{
	size_t n = strlen(s);
	if (n % 2)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		s[i] = (char)(hi << 4 | lo);
	}
	s[n / 2] = '\0';
	return (long)(n / 2);
}

static uint64_t num(const char *s, int line)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 16);
	if (errno || *end || !*s) {
		char buf[64];
		snprintf(buf, sizeof(buf), "line %d", line);
		die(125, "bad number in plan", buf, 0);
	}
	return v;
}

static char *read_plan(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(125, "cannot open plan", path, errno);
	char *buf = malloc(MAX_PLAN + 1);
	if (!buf)
		die(125, "out of memory", NULL, ENOMEM);
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, MAX_PLAN - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(125, "cannot read plan", path, errno);
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == MAX_PLAN)
			die(125, "plan too large", path, 0);
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

static void write_value(const char *file, const char *value)
{
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die(125, "cgroup: cannot open", file, errno);
	size_t len = strlen(value);
	ssize_t n = write(fd, value, len);
	if (n < 0 || (size_t)n != len) {
		int err = n < 0 ? errno : EIO;
		char buf[4200];
		snprintf(buf, sizeof(buf), "%s = %s", file, value);
		die(125, "cgroup: cannot write", buf, err);
	}
	close(fd);
}

static const char *step_name(int step)
{
	static const char *const names[VE_STEP_COUNT] = {
		[VE_STEP_CGROUP] = "cgroup", [VE_STEP_USERNS] = "user_namespace",
		[VE_STEP_UID_MAP] = "uid_map", [VE_STEP_NETNS] = "network_namespace",
		[VE_STEP_LOOPBACK] = "loopback", [VE_STEP_CAPS] = "capabilities",
		[VE_STEP_NO_NEW_PRIVS] = "no_new_privs", [VE_STEP_LANDLOCK] = "landlock",
		[VE_STEP_SECCOMP] = "seccomp",
	};
	return step > 0 && step < VE_STEP_COUNT && names[step] ? names[step] : "step";
}

struct record {
	char *f[6];
	long len[6]; /* decoded length of hex fields */
	int nf;
	int line;
};

/* Which fields of a record are hex strings. */
static int is_hex_field(const char *name, int i)
{
	if (!strcmp(name, "cgroup-dir") || !strcmp(name, "cgroup-join") ||
	    !strcmp(name, "cgroup-set"))
		return i >= 1;
	if (!strcmp(name, "path"))
		return i == 3;
	if (!strcmp(name, "seccomp"))
		return i == 2;
	return 0;
}

/* Each record's name and field count, checked before anything is done, so a
 * malformed plan changes nothing. */
static int well_formed(const struct record *r)
{
	static const struct { const char *name; int nf; } kinds[] = {
		{ "end", 1 }, { "nnp", 2 }, { "caps", 2 }, { "unshare", 2 },
		{ "cgroup-dir", 2 }, { "cgroup-set", 3 }, { "cgroup-join", 2 },
		{ "landlock", 5 }, { "path", 4 }, { "port", 3 }, { "seccomp", 3 },
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(r->f[0], kinds[i].name))
			return r->nf == kinds[i].nf;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4 || strcmp(argv[2], "--") != 0) {
		fprintf(stderr, "usage: %s PLAN -- CMD [ARGS...]\n", prog);
		return 125;
	}
	char *text = read_plan(argv[1]);
	size_t cap = 64, n = 0;
	struct record *recs = malloc(cap * sizeof(*recs));
	char *save = NULL;
	int line_no = 0, seen_end = 0;
	if (!recs)
		die(125, "out of memory", NULL, ENOMEM);

	/* pass 1: split and check every record */
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct record r = { { 0 }, { 0 }, 0, ++line_no };
		char *s2 = NULL;
		for (char *w = strtok_r(line, " ", &s2); w; w = strtok_r(NULL, " ", &s2)) {
			if (r.nf == 6)
				die(125, "malformed plan record in", argv[1], 0);
			r.f[r.nf++] = w;
		}
		if (r.nf == 0)
			continue;
		if (line_no == 1) {
			if (r.nf != 2 || strcmp(r.f[0], "volt-plan") || strcmp(r.f[1], "1"))
				die(125, "not a version 1 plan:", argv[1], 0);
			continue;
		}
		if (seen_end || !well_formed(&r)) {
			char buf[80];
			snprintf(buf, sizeof(buf), "line %d (%.32s)", line_no, r.f[0]);
			die(125, seen_end ? "data after the end record at" :
				"unknown or malformed plan record at", buf, 0);
		}
		for (int i = 1; i < r.nf; i++) {
			if (!is_hex_field(r.f[0], i))
				continue;
			r.len[i] = unhex(r.f[i]);
			if (r.len[i] < 0 || (r.len[i] > 0 && memchr(r.f[i], 0, (size_t)r.len[i]) &&
					     strcmp(r.f[0], "seccomp"))) {
				char buf[64];
				snprintf(buf, sizeof(buf), "line %d", line_no);
				die(125, "bad hex string in plan at", buf, 0);
			}
		}
		if (!strcmp(r.f[0], "seccomp") &&
		    (r.len[2] <= 0 || r.len[2] % 8 || r.len[2] > 4096 * 8)) {
			char buf[64];
			snprintf(buf, sizeof(buf), "line %d", line_no);
			die(125, "bad seccomp filter length in plan at", buf, 0);
		}
		if (!strcmp(r.f[0], "end"))
			seen_end = 1;
		if (n == cap) {
			cap *= 2;
			recs = realloc(recs, cap * sizeof(*recs));
			if (!recs)
				die(125, "out of memory", NULL, ENOMEM);
		}
		recs[n++] = r;
	}
	if (!seen_end)
		die(125, "plan is truncated (no end record):", argv[1], 0);

	/* pass 2: prepare (cgroups, the ruleset, the filter), then apply */
	struct ve_plan plan;
	memset(&plan, 0, sizeof(plan));
	int ruleset = -1;
	uint32_t ll_flags = 0;
	for (size_t k = 0; k < n; k++) {
		char **f = recs[k].f;
		int ln = recs[k].line;
		if (!strcmp(f[0], "nnp")) {
			plan.no_new_privs = (int)num(f[1], ln);
		} else if (!strcmp(f[0], "caps")) {
			plan.drop_caps = 1;
			plan.cap_keep = num(f[1], ln);
			plan.cap_last = 40;
			FILE *cl = fopen("/proc/sys/kernel/cap_last_cap", "re");
			if (cl) {
				if (fscanf(cl, "%d", &plan.cap_last) != 1)
					plan.cap_last = 40;
				fclose(cl);
			}
		} else if (!strcmp(f[0], "unshare")) {
			plan.unshare_flags = (int)num(f[1], ln);
			if (plan.unshare_flags & CLONE_NEWUSER) {
				snprintf(plan.uid_map, sizeof(plan.uid_map), "0 %u 1\n", geteuid());
				snprintf(plan.gid_map, sizeof(plan.gid_map), "0 %u 1\n", getegid());
			}
			plan.loopback_up = !!(plan.unshare_flags & CLONE_NEWNET);
		} else if (!strcmp(f[0], "cgroup-dir")) {
			if (mkdir(f[1], 0755) < 0 && errno != EEXIST)
				die(125, "cgroup: cannot create", f[1], errno);
		} else if (!strcmp(f[0], "cgroup-set")) {
			write_value(f[1], f[2]);
		} else if (!strcmp(f[0], "cgroup-join")) {
			char path[4200];
			if (plan.n_procs_fds >= VE_MAX_PROCS_FDS)
				die(125, "too many cgroups in plan", NULL, 0);
			snprintf(path, sizeof(path), "%s/cgroup.procs", f[1]);
			int fd = open(path, O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				die(125, "cgroup: cannot open", path, errno);
			plan.procs_fds[plan.n_procs_fds++] = fd;
		} else if (!strcmp(f[0], "landlock")) {
			if (ruleset >= 0)
				die(125, "plan has two landlock records", NULL, 0);
			ruleset = ve_landlock_create_ruleset(num(f[1], ln), num(f[2], ln),
							     num(f[3], ln));
			if (ruleset < 0)
				die(125, "landlock: cannot create the ruleset", NULL, -ruleset);
			ll_flags = (uint32_t)num(f[4], ln);
		} else if (!strcmp(f[0], "path")) {
			struct ve_landlock_path_rule out;
			if (ruleset < 0)
				die(125, "plan has a path before its landlock record", NULL, 0);
			int r = ve_landlock_add_path_rule(ruleset, f[3], num(f[1], ln),
							  num(f[2], ln), &out);
			if (r < 0)
				die(125, "landlock: cannot add a rule for", f[3], -r);
		} else if (!strcmp(f[0], "port")) {
			if (ruleset < 0)
				die(125, "plan has a port before its landlock record", NULL, 0);
			int r = ve_landlock_add_port_rule(ruleset, num(f[1], ln), num(f[2], ln));
			if (r < 0)
				die(125, "landlock: cannot add a rule for port", f[2], -r);
		} else if (!strcmp(f[0], "seccomp")) {
			plan.seccomp_flags = (uint32_t)num(f[1], ln);
			plan.bpf = f[2]; /* decoded in place by pass 1 */
			plan.bpf_len = (uint32_t)(recs[k].len[2] / 8);
		}
	}
	free(recs);

	plan.landlock_fd = ruleset;
	plan.landlock_flags = ll_flags;
	struct ve_result res = { 0, 0, 0 };
	if (ve_apply(&plan, &res) < 0)
		die(125, "enforcement failed at", step_name(res.step), res.err);
	if (ruleset >= 0)
		close(ruleset);
	for (int i = 0; i < plan.n_procs_fds; i++)
		close(plan.procs_fds[i]);

	execvp(argv[3], argv + 3);
	int err = errno;
	die(err == ENOENT ? 127 : 126, "cannot execute", argv[3], err);
	return 126;
}
