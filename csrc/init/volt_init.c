/*
 * volt-init: apply a compiled plan to this process and exec a command.
 *
 *   volt-init PLAN -- CMD [ARGS...]
 *   volt-init run PLAN -- CMD [ARGS...]
 *
 * run: supervise CMD as `volt-enforce run` does, instead of becoming it: CMD is
 * started restricted by the plan (PID 1 of a PID namespace when the plan has a
 * pidns record), in cgroups of this run's own (the plan's directories with
 * ".PID" appended) that are killed and removed when it ended; SIGINT, SIGTERM,
 * SIGHUP and SIGQUIT are passed on; the exit status is CMD's, 128+N when it died
 * of signal N.
 *
 * Options before "--" (the plan cache's launcher, volt_enforce/plancache.py):
 *   --plan-fd N    read the plan from fd N, a sealed memfd (F_SEAL_WRITE), instead
 *                  of a file: nothing can change it between the check and the read
 *   --prog NAME    the name messages start with
 *   --exec FILE    the file to execute (CMD is its argv; default: CMD, by PATH)
 *   --quiet        no warning for a working directory outside the view
 *
 * For container images without Python: `volt-enforce compile ... -o PLAN`
 * writes the plan (Landlock rules, seccomp bytes, cgroup settings,
 * namespaces, capabilities). The steps run in the library's order through the
 * same C core (ve_apply); any failure exits 125 before CMD runs. Exit status:
 * 125 plan or enforcement error, 126 CMD cannot be executed, 127 not found.
 *
 * Plan format (text, one record per line, fields separated by one space,
 * numbers in hex, strings hex-encoded bytes):
 *   volt-plan 1                       first line
 *   nnp 0|1                           set no_new_privs
 *   caps KEEP_HEX                     reduce capabilities to the KEEP mask
 *   session 0|1                       a new session (or give the terminal up)
 *   unshare FLAGS_HEX                 CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC |
 *                                     CLONE_NEWUTS
 *   userns UID_HEX GID_HEX COUNT_HEX  the user namespace maps 0.. to these host ids:
 *                                     made by this process (a holder, csrc/users.c),
 *                                     which then joins it as its root
 *   netns PATH                        join the pinned private network PATH
 *                                     ('volt-enforce net up NAME' made it)
 *   resolv SRC DST FLAGS_HEX          bind SRC read-only over DST in a mount
 *                                     namespace of its own (FLAGS: SRC's MS_*)
 *   cgroup-dir PATH                   mkdir (if absent)
 *   cgroup-set FILE VALUE [FILE2 VALUE2]
 *                                     write VALUE to FILE, or VALUE2 to FILE2
 *                                     when FILE does not exist
 *   cgroup-try FILE VALUE [FILE2 VALUE2]
 *                                     the same, skipped when neither exists
 *   cgroup-join DIR                   join DIR (write 0 to DIR/cgroup.procs)
 *   landlock FS_HEX NET_HEX SCOPED_HEX FLAGS_HEX [QFS_HEX QNET_HEX QSCOPED_HEX]
 *                                     the ruleset (handled rights, scopes, the quiet_*
 *                                     fields of ABI 10 when any is set) and the
 *                                     landlock_restrict_self flags (logging, TSYNC,
 *                                     NO_NEW_PRIVS: then the kernel sets no_new_privs)
 *   path ACCESS_HEX DIRONLY_HEX PATH [RULEFLAGS_HEX]
 *                                     DIRONLY rights are dropped for non-directories;
 *                                     RULEFLAGS: landlock_add_rule flags (QUIET)
 *   port ACCESS_HEX PORT_HEX          TCP and UDP rights (BIND_UDP, CONNECT_SEND_UDP)
 *   seccomp FLAGS_HEX BPF_HEX         struct sock_filter[], at most 4096
 *   kernel-landlock ABI_HEX ERRATA_HEX
 *                                     the plan is for this Landlock ABI and errata
 *                                     (the plan cache's): refused on another kernel
 *   pidns MEMFD_NOEXEC_HEX            run only: CMD is PID 1 of a new PID namespace
 *                                     (volt-pidinit), with this vm.memfd_noexec
 *   view-op WHERE OP SLOT REC MODE ATTR PATH [DATA]
 *                                     the filesystem view (csrc/view.h): WHERE 0 an
 *                                     operation of the template, 1 of this process's
 *                                     own mounts; PATH and DATA hex strings
 *   view-ll FS NET SCOPED QFS QNET QSCOPED DIRONLY
 *                                     the Landlock ruleset built inside the view
 *   view-rule ACCESS FLAGS PATH       a rule of it, PATH in the view
 *   view-port ACCESS PORT             a port rule of it
 *   end                               last line: a plan without it is truncated
 *
 * The whole plan is checked, the ruleset built and the filter decoded before
 * anything changes; cgroups are made last, and a failure after that removes
 * the cgroup directories this run made (unless Landlock already forbids it).
 */
#include "../spawn.h" /* first: enforce.h defines _GNU_SOURCE */
#include "../landlock.h"
#include "../pidns.h"
#include "../users.h"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define MAX_PLAN (8 << 20)
#define MAX_FIELDS 9

static const char *prog = "volt-init";
static int run_mode;      /* volt-init run: supervise */
static int want_pidns;    /* a pidns record: CMD is PID 1 of a PID namespace */
static int memfd_noexec;  /* its vm.memfd_noexec */
static int quiet;
static char view_cwd[4096]; /* the working directory before the view was entered */

/* cgroup directories this run made, and their parents' cgroup.procs (to
 * step out of them again before removing them) */
static char *made_dirs[VE_MAX_PROCS_FDS];
static int made_parent_fds[VE_MAX_PROCS_FDS];
/* the directory each was made in, held open: after the filesystem view was
 * entered the cgroup paths are not there to rmdir by name */
static int made_in_fds[VE_MAX_PROCS_FDS];
static int n_made;

static void undo_cgroups(void)
{
	for (int i = n_made - 1; i >= 0; i--) {
		int fd = made_parent_fds[i];
		if (fd >= 0 && write(fd, "0", 1) < 0)
			continue; /* still inside: rmdir would fail with EBUSY */
		const char *name = strrchr(made_dirs[i], '/');
		if (made_in_fds[i] >= 0 && name)
			unlinkat(made_in_fds[i], name + 1, AT_REMOVEDIR);
		else
			rmdir(made_dirs[i]);
	}
	n_made = 0;
}

static void die(int code, const char *what, const char *detail, int err)
{
	undo_cgroups();
	fprintf(stderr, "%s: %s%s%s%s%s\n", prog, what, detail ? " " : "", detail ? detail : "",
		err ? ": " : "", err ? strerror(err) : "");
	exit(code);
}

static void die_at(const char *what, int line)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "line %d", line);
	die(125, what, buf, 0);
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
	for (const char *p = s; *p; p++)
		if (hexval(*p) < 0) /* strtoull would take signs, spaces and 0x */
			die_at("bad number in plan at", line);
	errno = 0;
	unsigned long long v = strtoull(s, &end, 16);
	if (errno || *end || !*s)
		die_at("bad number in plan at", line);
	return v;
}

static char *read_plan(const char *path, int plan_fd, size_t *len_out)
{
	int fd = plan_fd;
	if (fd >= 0) {
		/* sealed against writes: what the launcher checked is what is read here */
		int seals = fcntl(fd, F_GET_SEALS);
		if (seals < 0 || !(seals & F_SEAL_WRITE) || !(seals & F_SEAL_SHRINK))
			die(125, "--plan-fd: not a memfd sealed against writes:", path,
			    seals < 0 ? errno : 0);
		if (lseek(fd, 0, SEEK_SET) < 0)
			die(125, "cannot read plan", path, errno);
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
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
			die(125, "plan too large:", path, 0);
	}
	close(fd);
	buf[len] = '\0';
	*len_out = len;
	return buf;
}

struct record {
	char *f[MAX_FIELDS];
	long len[MAX_FIELDS]; /* decoded length of hex fields */
	int nf;
	int line;
};

static int is_cgroup_write(const char *name)
{
	return !strcmp(name, "cgroup-set") || !strcmp(name, "cgroup-try");
}

/* Which fields of a record are hex strings. */
static int is_hex_field(const char *name, int i)
{
	if (!strcmp(name, "cgroup-dir") || !strcmp(name, "cgroup-join") || is_cgroup_write(name))
		return i >= 1;
	if (!strcmp(name, "path"))
		return i == 3;
	if (!strcmp(name, "seccomp"))
		return i == 2;
	if (!strcmp(name, "view-op"))
		return i >= 7;
	if (!strcmp(name, "view-rule"))
		return i == 3;
	if (!strcmp(name, "netns"))
		return i == 1;
	if (!strcmp(name, "resolv"))
		return i == 1 || i == 2;
	return 0;
}

/* Which fields are hex numbers (checked in pass 1, so a bad one changes nothing). */
static int is_num_field(const char *name, int i)
{
	return !is_hex_field(name, i) && i >= 1 && !is_cgroup_write(name) &&
	       strcmp(name, "cgroup-dir") && strcmp(name, "cgroup-join");
}

/* Each record's name and field count, checked before anything is done, so a
 * malformed plan changes nothing. */
static int well_formed(const struct record *r)
{
	static const struct { const char *name; int nf; } kinds[] = {
		{ "end", 1 }, { "nnp", 2 }, { "caps", 2 }, { "unshare", 2 }, { "session", 2 },
		{ "userns", 4 },
		{ "cgroup-dir", 2 }, { "cgroup-join", 2 },
		{ "landlock", 5 }, { "path", 4 }, { "port", 3 }, { "seccomp", 3 },
		{ "view-ll", 8 }, { "view-rule", 4 }, { "view-port", 3 },
		{ "netns", 2 }, { "resolv", 4 }, { "kernel-landlock", 3 }, { "pidns", 2 },
	};
	if (is_cgroup_write(r->f[0]))
		return r->nf == 3 || r->nf == 5;
	if (!strcmp(r->f[0], "view-op"))
		return r->nf == 8 || r->nf == 9;
	if (!strcmp(r->f[0], "landlock") && r->nf == 8)
		return 1; /* with the quiet fields */
	if (!strcmp(r->f[0], "path") && r->nf == 5)
		return 1; /* with rule flags */
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(r->f[0], kinds[i].name))
			return r->nf == kinds[i].nf;
	return 0;
}

/* Split one line into fields and check them; returns 0 for an empty line. */
static int parse_record(char *line, int line_no, struct record *r)
{
	char *save = NULL;
	memset(r, 0, sizeof(*r));
	r->line = line_no;
	for (char *w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (r->nf == MAX_FIELDS)
			die_at("malformed plan record at", line_no);
		r->f[r->nf++] = w;
	}
	if (r->nf == 0)
		return 0;
	if (!well_formed(r))
		die_at("unknown or malformed plan record at", line_no);
	for (int i = 1; i < r->nf; i++) {
		if (is_num_field(r->f[0], i))
			num(r->f[i], line_no);
		if (!is_hex_field(r->f[0], i))
			continue;
		r->len[i] = unhex(r->f[i]);
		if (r->len[i] < 0)
			die_at("bad hex string in plan at", line_no);
		/* a path or value with a NUL would be cut short */
		if (strcmp(r->f[0], "seccomp") && memchr(r->f[i], 0, (size_t)r->len[i]))
			die_at("NUL byte in a plan string at", line_no);
	}
	if (!strcmp(r->f[0], "seccomp") &&
	    (r->len[2] <= 0 || r->len[2] % 8 || r->len[2] > VE_MAX_BPF_INSNS * 8))
		die_at("bad seccomp filter length in plan at", line_no);
	return 1;
}

/* Pass 1: every line checked, the version first and the end record last. */
static struct record *parse_plan(char *text, size_t len, const char *path, size_t *n_out)
{
	size_t cap = 64, n = 0;
	int line_no = 0, seen_end = 0;
	char *save = NULL;
	struct record *recs = malloc(cap * sizeof(*recs));
	if (!recs)
		die(125, "out of memory", NULL, ENOMEM);
	if (memchr(text, 0, len))
		die(125, "not a plan (it has NUL bytes):", path, 0);
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		++line_no;
		if (line_no == 1) {
			if (strcmp(line, "volt-plan 1"))
				die(125, "not a version 1 plan:", path, 0);
			continue;
		}
		if (seen_end)
			die_at("data after the end record at", line_no);
		if (n == cap) {
			cap *= 2;
			recs = realloc(recs, cap * sizeof(*recs));
			if (!recs)
				die(125, "out of memory", NULL, ENOMEM);
		}
		if (!parse_record(line, line_no, &recs[n]))
			continue;
		seen_end = !strcmp(recs[n].f[0], "end");
		n++;
	}
	if (!seen_end)
		die(125, "plan is truncated (no end record):", path, 0);
	*n_out = n;
	return recs;
}

static void once(unsigned *seen, unsigned bit, const char *name, int line)
{
	if (*seen & bit) {
		char buf[64];
		snprintf(buf, sizeof(buf), "second %s record at", name);
		die_at(buf, line);
	}
	*seen |= bit;
}

static void set_caps(struct ve_plan *plan, uint64_t keep)
{
	plan->drop_caps = 1;
	plan->cap_keep = keep;
	plan->cap_last = ve_cap_last();
}

static void set_unshare(struct ve_plan *plan, uint64_t flags, int line)
{
	if (flags & ~(uint64_t)(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS))
		die_at("unsupported unshare flags at", line);
	plan->unshare_flags = (int)flags;
	if (flags & CLONE_NEWUSER) {
		ve_format_id_map(plan->uid_map, sizeof(plan->uid_map), 0, geteuid(), 1);
		ve_format_id_map(plan->gid_map, sizeof(plan->gid_map), 0, getegid(), 1);
	}
	plan->loopback_up = !!(flags & CLONE_NEWNET);
}

static void add_path(int ruleset, char **f, int nf, int line)
{
	struct ve_landlock_path_rule out;
	if (ruleset < 0)
		die_at("path before the landlock record at", line);
	uint64_t flags = nf == 5 ? num(f[4], line) : 0;
	if (flags & ~(uint64_t)LANDLOCK_ADD_RULE_QUIET)
		die_at("unsupported rule flags at", line);
	int r = ve_landlock_add_path_rule_flags(ruleset, f[3], num(f[1], line), num(f[2], line),
						(uint32_t)flags, &out);
	if (r < 0)
		die(125, "landlock: cannot add a rule for", f[3], -r);
}

static void add_port(int ruleset, char **f, int line)
{
	if (ruleset < 0)
		die_at("port before the landlock record at", line);
	uint64_t port = num(f[2], line);
	if (port > 65535)
		die_at("bad port in plan at", line);
	int r = ve_landlock_add_port_rule(ruleset, num(f[1], line), port);
	if (r < 0 && r != -EAFNOSUPPORT) /* no TCP in the kernel: nothing to allow */
		die(125, "landlock: cannot add a rule for port", f[2], -r);
}

/* The pinned private network (joined by ve_apply) and its resolv.conf. */
static void set_netns(struct ve_plan *plan, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(125, "network: cannot open the pinned namespace", path, errno);
	plan->join_net = 1;
	plan->net_fd = fd;
}

static void set_resolv(struct ve_plan *plan, char **f, int line)
{
	if (strlen(f[1]) >= sizeof(plan->resolv_src) || strlen(f[2]) >= sizeof(plan->resolv_dst))
		die_at("resolv path too long at", line);
	strcpy(plan->resolv_src, f[1]);
	strcpy(plan->resolv_dst, f[2]);
	plan->resolv_flags = (unsigned long)num(f[3], line);
}

/* The plan cache's plans are for one kernel's Landlock: refused elsewhere. */
static void check_kernel(uint64_t abi, uint64_t errata)
{
	int have = ve_landlock_abi();
	uint64_t have_abi = have > 0 ? (uint64_t)have : 0;
	int e = have_abi ? ve_landlock_errata() : 0;
	uint64_t have_errata = e > 0 ? (uint64_t)e : 0;
	if (abi != have_abi || errata != have_errata) {
		char buf[160];
		snprintf(buf, sizeof(buf), "ABI %llu errata %llx, this kernel has ABI %llu errata %llx",
			 (unsigned long long)abi, (unsigned long long)errata,
			 (unsigned long long)have_abi, (unsigned long long)have_errata);
		die(125, "the plan is for another kernel's Landlock:", buf, 0);
	}
}

/* Pass 2: everything but cgroups into the plan; nothing changes yet. */
static int prepare(struct record *recs, size_t n, struct ve_plan *plan)
{
	int ruleset = -1;
	unsigned seen = 0;
	for (size_t k = 0; k < n; k++) {
		char **f = recs[k].f;
		int ln = recs[k].line;
		if (!strcmp(f[0], "nnp")) {
			once(&seen, 1, f[0], ln);
			plan->no_new_privs = num(f[1], ln) != 0;
		} else if (!strcmp(f[0], "caps")) {
			once(&seen, 2, f[0], ln);
			set_caps(plan, num(f[1], ln));
		} else if (!strcmp(f[0], "session")) {
			once(&seen, 32, f[0], ln);
			plan->new_session = num(f[1], ln) != 0;
		} else if (!strcmp(f[0], "unshare")) {
			once(&seen, 4, f[0], ln);
			set_unshare(plan, num(f[1], ln), ln);
		} else if (!strcmp(f[0], "userns")) {
			once(&seen, 64, f[0], ln);
			uint64_t uid = num(f[1], ln), gid = num(f[2], ln), count = num(f[3], ln);
			if (uid == 0 || gid == 0 || count == 0 || uid + count > 1ULL << 32 ||
			    gid + count > 1ULL << 32)
				die_at("bad userns ids in plan at", ln);
			ve_format_id_map(plan->uid_map, sizeof(plan->uid_map), 0, (uint32_t)uid,
					 (uint32_t)count);
			ve_format_id_map(plan->gid_map, sizeof(plan->gid_map), 0, (uint32_t)gid,
					 (uint32_t)count);
			plan->join_userns = 1; /* the namespace itself is made after the cgroups */
		} else if (!strcmp(f[0], "landlock")) {
			once(&seen, 8, f[0], ln);
			int quiet = recs[k].nf == 8;
			ruleset = ve_landlock_create_ruleset_quiet(
				num(f[1], ln), num(f[2], ln), num(f[3], ln), quiet ? num(f[5], ln) : 0,
				quiet ? num(f[6], ln) : 0, quiet ? num(f[7], ln) : 0);
			if (ruleset == -E2BIG && quiet)
				die(125, "landlock: the kernel refused the quiet_* ruleset fields (needs"
				    " ABI 10)", NULL, E2BIG);
			if (ruleset < 0)
				die(125, "landlock: cannot create the ruleset", NULL, -ruleset);
			plan->landlock_flags = (uint32_t)num(f[4], ln);
		} else if (!strcmp(f[0], "path")) {
			add_path(ruleset, f, recs[k].nf, ln);
		} else if (!strcmp(f[0], "port")) {
			add_port(ruleset, f, ln);
		} else if (!strcmp(f[0], "netns")) {
			once(&seen, 64, f[0], ln);
			set_netns(plan, f[1]);
		} else if (!strcmp(f[0], "resolv")) {
			once(&seen, 128, f[0], ln);
			set_resolv(plan, f, ln);
		} else if (!strcmp(f[0], "kernel-landlock")) {
			once(&seen, 256, f[0], ln);
			check_kernel(num(f[1], ln), num(f[2], ln));
		} else if (!strcmp(f[0], "pidns")) {
			once(&seen, 512, f[0], ln);
			if (!run_mode)
				die_at("a pidns record is for 'volt-init run' only, at", ln);
			want_pidns = 1;
			memfd_noexec = (int)(num(f[1], ln) & 3);
		} else if (!strcmp(f[0], "seccomp")) {
			once(&seen, 16, f[0], ln);
			plan->seccomp_flags = (uint32_t)num(f[1], ln);
			plan->bpf = f[2]; /* decoded in place by pass 1 */
			plan->bpf_len = (uint32_t)(recs[k].len[2] / 8);
		}
	}
	return ruleset;
}

/* The view records: the template is built here (a mount namespace held by fd,
 * nothing persistent), ve_apply enters it. */
static struct ve_view view;

static void *grow(void *p, int n, size_t size)
{
	if (n % 16 == 0) {
		p = realloc(p, (size_t)(n + 16) * size);
		if (!p)
			die(125, "out of memory", NULL, ENOMEM);
	}
	return p;
}

static void prepare_view(struct record *recs, size_t n, struct ve_plan *plan)
{
	struct ve_view_op *tmpl = NULL, *own = NULL;
	struct ve_view_rule *rules = NULL;
	struct ve_view_port *ports = NULL;
	int n_tmpl = 0, n_own = 0, n_rules = 0, n_ports = 0, ll = 0;
	for (size_t k = 0; k < n; k++) {
		char **f = recs[k].f;
		int ln = recs[k].line;
		if (!strcmp(f[0], "view-op")) {
			int where = (int)num(f[1], ln);
			struct ve_view_op op = {
				.op = (int)num(f[2], ln), .slot = (int)num(f[3], ln) - 1,
				.recursive = (int)num(f[4], ln), .mode = (uint32_t)num(f[5], ln),
				.attr_set = num(f[6], ln), .path = f[7],
				.data = recs[k].nf == 9 ? f[8] : NULL,
			};
			if (where == 0) {
				tmpl = grow(tmpl, n_tmpl, sizeof(*tmpl));
				tmpl[n_tmpl++] = op;
			} else {
				own = grow(own, n_own, sizeof(*own));
				own[n_own++] = op;
			}
		} else if (!strcmp(f[0], "view-ll")) {
			ll = 1;
			view.handled_fs = num(f[1], ln);
			view.handled_net = num(f[2], ln);
			view.scoped = num(f[3], ln);
			view.quiet_fs = num(f[4], ln);
			view.quiet_net = num(f[5], ln);
			view.quiet_scoped = num(f[6], ln);
			view.dir_only = num(f[7], ln);
		} else if (!strcmp(f[0], "view-rule")) {
			rules = grow(rules, n_rules, sizeof(*rules));
			rules[n_rules++] = (struct ve_view_rule){ f[3], num(f[1], ln),
								  (uint32_t)num(f[2], ln) };
		} else if (!strcmp(f[0], "view-port")) {
			ports = grow(ports, n_ports, sizeof(*ports));
			ports[n_ports++] = (struct ve_view_port){ num(f[1], ln), num(f[2], ln) };
		}
	}
	if (n_tmpl == 0)
		return;
	int failed = -1;
	int fd = ve_view_prepare(tmpl, n_tmpl, &failed);
	if (fd < 0) {
		char buf[64];
		snprintf(buf, sizeof(buf), "(operation %d)", failed);
		die(125, "view: cannot prepare the template", buf, -fd);
	}
	free(tmpl);
	view.ns_fd = fd;
	view.ops = own;
	view.n_ops = n_own;
	view.ll = ll;
	view.rules = rules;
	view.n_rules = n_rules;
	view.ports = ports;
	view.n_ports = n_ports;
	plan->view = &view;
}

static void make_dir(const char *dir)
{
	if (mkdir(dir, 0755) == 0) {
		if (n_made == VE_MAX_PROCS_FDS)
			die(125, "too many cgroups in plan", NULL, 0);
		made_parent_fds[n_made] = -1;
		char parent[4200];
		snprintf(parent, sizeof(parent), "%s/..", dir);
		made_in_fds[n_made] = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
		made_dirs[n_made++] = (char *)dir;
	} else if (errno != EEXIST) {
		die(125, "cgroup: cannot create", dir, errno);
	}
}

static void cgroup_write(char **f, int nf)
{
	int optional = !strcmp(f[0], "cgroup-try");
	for (int i = 1; i + 1 < nf; i += 2) {
		if (ve_write_file(f[i], f[i + 1]) == 0)
			return;
		if (errno != ENOENT) {
			char buf[4200];
			snprintf(buf, sizeof(buf), "%s = %s", f[i], f[i + 1]);
			die(125, "cgroup: cannot write", buf, errno);
		}
	}
	if (!optional)
		die(125, "cgroup: no such file:", f[1], ENOENT);
}

/* Open DIR/cgroup.procs for ve_apply; for a cgroup this run made, also its
 * parent's, to leave it again if a later step fails. */
static void join_dir(struct ve_plan *plan, const char *dir)
{
	char path[4200];
	if (plan->n_procs_fds >= VE_MAX_PROCS_FDS)
		die(125, "too many cgroups in plan", NULL, 0);
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die(125, "cgroup: cannot open", path, errno);
	plan->procs_fds[plan->n_procs_fds++] = fd;
	for (int i = 0; i < n_made; i++) {
		if (strcmp(made_dirs[i], dir) || made_parent_fds[i] >= 0)
			continue;
		snprintf(path, sizeof(path), "%s/../cgroup.procs", dir);
		made_parent_fds[i] = open(path, O_WRONLY | O_CLOEXEC);
	}
}

/* Pass 3: the cgroups, the only preparation that changes the system. */
static void setup_cgroups(struct record *recs, size_t n, struct ve_plan *plan)
{
	for (size_t k = 0; k < n; k++) {
		char **f = recs[k].f;
		if (!strcmp(f[0], "cgroup-dir"))
			make_dir(f[1]);
		else if (is_cgroup_write(f[0]))
			cgroup_write(f, recs[k].nf);
		else if (!strcmp(f[0], "cgroup-join"))
			join_dir(plan, f[1]);
	}
}


/* run: this run's own cgroups, the plan's directories with ".PID" appended, so
 * that two runs of one plan never share (or remove) each other's. */
static void own_cgroups(struct record *recs, size_t n)
{
	char suffix[24];
	snprintf(suffix, sizeof(suffix), ".%d", (int)getpid());
	const char *dirs[VE_MAX_PROCS_FDS];
	int n_dirs = 0;
	for (size_t k = 0; k < n; k++)
		if (!strcmp(recs[k].f[0], "cgroup-dir")) {
			if (n_dirs == VE_MAX_PROCS_FDS)
				die(125, "too many cgroups in plan", NULL, 0);
			dirs[n_dirs++] = recs[k].f[1];
		}
	for (size_t j = 0; j < n; j++) {
		char **f = recs[j].f;
		int dir_rec = !strcmp(f[0], "cgroup-dir") || !strcmp(f[0], "cgroup-join");
		if (!dir_rec && !is_cgroup_write(f[0]))
			continue;
		for (int i = 1; i < recs[j].nf; i++) {
			if (!dir_rec && i % 2 == 0)
				continue; /* a value, not a file */
			for (int d = 0; d < n_dirs; d++) {
				size_t dl = strlen(dirs[d]);
				if (strncmp(f[i], dirs[d], dl) || (f[i][dl] != '\0' && f[i][dl] != '/'))
					continue;
				size_t len = strlen(f[i]) + strlen(suffix) + 1;
				char *p = malloc(len);
				if (!p)
					die(125, "out of memory", NULL, ENOMEM);
				snprintf(p, len, "%.*s%s%s", (int)dl, f[i], suffix, f[i] + dl);
				f[i] = p;
				break;
			}
		}
	}
}

static volatile sig_atomic_t child_pid;
static volatile sig_atomic_t pending[NSIG];
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

static void forward(int sig)
{
	if (child_pid > 0)
		kill((pid_t)child_pid, sig);
	else
		pending[sig] = 1;
}

/* volt-pidinit (beside this executable) in a sealed memfd, as pidns.py makes it. */
static int pidinit_memfd(void)
{
	char self[4096], path[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		die(125, "pid namespace: cannot find this executable", NULL, errno);
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(path, sizeof(path), "%s/volt-pidinit", self);
	int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		die(125, "pid namespace: cannot open", path, errno);
	unsigned base = MFD_CLOEXEC | MFD_ALLOW_SEALING;
	int fd = (int)syscall(SYS_memfd_create, "volt-pidinit", base | 0x0010U /* MFD_EXEC */);
	if (fd < 0 && errno == EINVAL) /* before 6.3: memfds are executable */
		fd = (int)syscall(SYS_memfd_create, "volt-pidinit", base);
	if (fd < 0)
		die(125, "pid namespace: memfd_create for the init", NULL, errno);
	char buf[65536];
	for (;;) {
		ssize_t r = read(in, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die(125, "pid namespace: cannot read", path, errno);
		if (r == 0)
			break;
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(fd, buf + off, (size_t)(r - off));
			if (w < 0)
				die(125, "pid namespace: cannot write the init's memfd", NULL, errno);
			off += w;
		}
	}
	close(in);
	fchmod(fd, 0555);
	int seals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
	if (fcntl(fd, F_ADD_SEALS, seals | 0x0020 /* F_SEAL_EXEC */) < 0 &&
	    fcntl(fd, F_ADD_SEALS, seals) < 0)
		die(125, "pid namespace: cannot seal the init's memfd", NULL, errno);
	return fd;
}

static int high_fd(int fd)
{
	if (fd >= 3)
		return fd;
	int h = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return h;
}

/* Kill what is left in a cgroup this run made, then remove it. */
static void remove_cgroup(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
	int have_kill = ve_write_file(path, "1") == 0;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	for (int tries = 0; tries < 2000; tries++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		if (errno != EBUSY)
			break;
		if (!have_kill) { /* cgroup v1, or before 5.14: one by one */
			FILE *f = fopen(path, "re");
			int pid;
			while (f && fscanf(f, "%d", &pid) == 1)
				kill(pid, SIGKILL);
			if (f)
				fclose(f);
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "%s: cannot remove the cgroup %s: %s\n", prog, dir, strerror(errno));
}

static void not_run(const char *name, int err)
{
	if (err == ENOENT)
		fprintf(stderr, "%s: %s: command not found\n", prog, name);
	else
		fprintf(stderr, "%s: %s: cannot execute: %s\n", prog, name, strerror(err));
}

/* The candidates execvp would try for NAME. */
static char **exec_candidates(const char *name, const char *exec_file)
{
	const char *path_env = getenv("PATH");
	if (!path_env)
		path_env = "/usr/local/bin:/usr/bin:/bin";
	size_t n = 2;
	for (const char *p = path_env; *p; p++)
		n += *p == ':';
	char **out = calloc(n + 1, sizeof(*out));
	if (!out)
		die(125, "out of memory", NULL, ENOMEM);
	if (exec_file || strchr(name, '/')) {
		out[0] = (char *)(exec_file ? exec_file : name);
		return out;
	}
	size_t k = 0;
	const char *p = path_env;
	for (;;) {
		const char *end = strchr(p, ':');
		size_t dl = end ? (size_t)(end - p) : strlen(p);
		size_t len = dl + strlen(name) + 3;
		char *c = malloc(len);
		if (!c)
			die(125, "out of memory", NULL, ENOMEM);
		snprintf(c, len, "%.*s%s%s", (int)dl, dl ? p : ".", "/", name);
		out[k++] = c;
		if (!end)
			break;
		p = end + 1;
	}
	return out;
}

/* volt-init run: start CMD under the plan and supervise it. */
static int supervise(struct ve_plan *plan, char **cmd, const char *exec_file)
{
	/* unrestricted root beside a restricted child: nobody attaches to it */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	char **paths = exec_candidates(cmd[0], exec_file);
	struct ve_spawn_args a;
	memset(&a, 0, sizeof(a));
	a.exec_paths = (const char *const *)paths;
	a.argv = cmd;
	a.envp = NULL;
	a.cwd = NULL;
	a.fd0 = a.fd1 = a.fd2 = -1;
	a.close_fds = 1;
	a.restore_signals = 1;
	a.pgid = -1;
	a.umask_value = -1;
	a.gid = a.uid = -1;
	a.n_groups = -1;
	a.cgroup_fd = a.cgroup_procs_fd = -1;
	a.init_fd = -1;
	a.init_fds[0] = a.init_fds[1] = -1;
	int fate[2] = { -1, -1 }, pidfd = -1;
	char slot[VE_PID_SLOT], fate_w[16], pidfd_s[16];
	char *init_argv[5];
	if (want_pidns) {
		a.init_fd = pidinit_memfd();
		pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
		if (pidfd < 0 && errno != ENOSYS)
			die(125, "pid namespace: pidfd_open of this process", NULL, errno);
		if (pidfd >= 0)
			pidfd = high_fd(pidfd);
		if (pipe2(fate, O_CLOEXEC) < 0)
			die(125, "pid namespace: the fate pipe", NULL, errno);
		fate[0] = high_fd(fate[0]);
		fate[1] = high_fd(fate[1]);
		memset(slot, 0, sizeof(slot));
		snprintf(fate_w, sizeof(fate_w), "%d", fate[1]);
		snprintf(pidfd_s, sizeof(pidfd_s), "%d", pidfd);
		init_argv[0] = "volt-pidinit";
		init_argv[1] = fate_w;
		init_argv[2] = pidfd_s;
		init_argv[3] = slot;
		init_argv[4] = NULL;
		a.init_argv = init_argv;
		a.init_pid_slot = slot;
		a.init_fds[0] = fate[1];
		a.init_fds[1] = pidfd;
		a.memfd_noexec = memfd_noexec;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaction(forwarded[i], &sa, NULL);

	struct ve_result res = { 0, 0, 0, 0 };
	long pid = ve_spawn(&a, plan, &res);
	if (fate[1] >= 0)
		close(fate[1]);
	if (pid > 0 && res.step == VE_STEP_NONE) {
		child_pid = (sig_atomic_t)pid;
		for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
			if (pending[forwarded[i]])
				kill((pid_t)pid, forwarded[i]);
	}
	/* the parts the child took: the supervisor needs none of them */
	if (plan->landlock_fd >= 0)
		close(plan->landlock_fd);
	if (plan->view)
		close(view.ns_fd);
	for (int i = 0; i < plan->n_procs_fds; i++)
		close(plan->procs_fds[i]);
	if (a.init_fd >= 0)
		close(a.init_fd);

	int rc;
	if (pid < 0 && res.step == VE_STEP_NONE) {
		fprintf(stderr, "%s: cannot start %s: %s\n", prog, cmd[0], strerror((int)-pid));
		rc = 125;
	} else if (res.step != VE_STEP_NONE) {
		if (pid > 0)
			while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
				;
		if (res.step == VE_STEP_EXEC) {
			not_run(cmd[0], res.err);
			rc = res.err == ENOENT ? 127 : 126;
		} else {
			const char *step = ve_step_name(res.step);
			fprintf(stderr, "%s: enforcement failed at %s: %s\n", prog,
				step ? step : "an unknown step", strerror(res.err));
			rc = 125;
		}
	} else {
		if ((res.flags & VE_RESULT_CWD_OUTSIDE_VIEW) && !quiet) {
			char cwd[4096];
			fprintf(stderr, "%s: the view lacks the working directory %s: starting in /\n",
				prog, getcwd(cwd, sizeof(cwd)) ? cwd : "(unknown)");
		}
		int st = 0;
		while (waitpid((pid_t)pid, &st, 0) < 0) {
			if (errno != EINTR) {
				st = 125 << 8;
				break;
			}
		}
		child_pid = 0;
		if (fate[0] >= 0) { /* the target's fate, as the init reported it */
			struct ve_init_record rec;
			fcntl(fate[0], F_SETFL, O_NONBLOCK);
			if (read(fate[0], &rec, sizeof(rec)) == (ssize_t)sizeof(rec)) {
				if (rec.kind == VE_INIT_SIGNALED)
					st = rec.index & 0x7f;
				else if (rec.kind == VE_INIT_EXITED)
					st = (rec.index & 0xff) << 8;
			}
		}
		rc = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
	}
	if (fate[0] >= 0)
		close(fate[0]);
	for (int i = n_made - 1; i >= 0; i--)
		remove_cgroup(made_dirs[i]);
	n_made = 0;
	return rc;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: %s PLAN -- CMD [ARGS...]\n"
		"       %s run PLAN -- CMD [ARGS...]\n"
		"Apply the plan written by 'volt-enforce compile ... -o PLAN' to this process,\n"
		"then exec CMD; run: start CMD under the plan and wait for it, as\n"
		"'volt-enforce run' does. Exit status: CMD's own (128+N: killed by signal N);\n"
		"125 plan or enforcement error; 126 CMD cannot be executed; 127 CMD not found.\n",
		prog, prog);
}

int main(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	int i = 1, plan_fd = -1;
	const char *plan_path = NULL, *exec_file = NULL;
	char fd_name[32] = "";
	if (argc > 1 && !strcmp(argv[1], "run")) {
		run_mode = 1;
		i = 2;
	}
	for (; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--plan-fd") && i + 1 < argc && !plan_path && plan_fd < 0) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end || v < 0 || v > 1 << 20 || end == argv[i]) {
				usage(stderr);
				return 125;
			}
			plan_fd = (int)v;
			snprintf(fd_name, sizeof(fd_name), "(fd %d)", plan_fd);
		} else if (!strcmp(argv[i], "--prog") && i + 1 < argc) {
			prog = argv[++i];
		} else if (!strcmp(argv[i], "--exec") && i + 1 < argc) {
			exec_file = argv[++i];
		} else if (!strcmp(argv[i], "--quiet")) {
			quiet = 1;
		} else if (!plan_path && plan_fd < 0) {
			plan_path = argv[i];
		} else {
			usage(stderr);
			return 125;
		}
	}
	if ((!plan_path && plan_fd < 0) || i >= argc || i + 1 >= argc) {
		usage(stderr);
		return 125;
	}
	char **cmd = argv + i + 1;
	size_t len = 0, n = 0;
	const char *name = plan_path ? plan_path : fd_name;
	char *text = read_plan(name, plan_fd, &len);
	struct record *recs = parse_plan(text, len, name, &n);

	struct ve_plan plan;
	memset(&plan, 0, sizeof(plan));
	plan.landlock_fd = prepare(recs, n, &plan);
	prepare_view(recs, n, &plan);
	if (run_mode)
		own_cgroups(recs, n);
	setup_cgroups(recs, n, &plan);
	free(recs);
	if (plan.join_userns) {
		int step = 0;
		plan.userns_fd = ve_userns_open(plan.uid_map, plan.gid_map, &step);
		if (plan.userns_fd < 0)
			die(125, "user namespace: cannot prepare it", NULL, -plan.userns_fd);
	}

	if (run_mode)
		return supervise(&plan, cmd, exec_file);

	if (!getcwd(view_cwd, sizeof(view_cwd)))
		view_cwd[0] = '\0';
	struct ve_result res = { 0, 0, 0, 0 };
	if (ve_apply(&plan, &res) < 0)
		{
		const char *step = ve_step_name(res.step);
		die(125, "enforcement failed at", step ? step : "an unknown step", res.err);
	}
	n_made = 0; /* in force now: the cgroups stay */
	if (plan.landlock_fd >= 0)
		close(plan.landlock_fd);
	if (plan.view)
		close(view.ns_fd);
	if ((res.flags & VE_RESULT_CWD_OUTSIDE_VIEW) && !quiet) {
		if (exec_file) { /* the launcher's: the message volt-enforce exec prints */
			char cwd[4096];
			fprintf(stderr, "%s: the view lacks the working directory %s: starting in /\n",
				prog, view_cwd[0] ? view_cwd : (getcwd(cwd, sizeof(cwd)) ? cwd : "?"));
		} else {
			fprintf(stderr, "%s: the view lacks the working directory: starting in /\n",
				prog);
		}
	}
	for (int k = 0; k < plan.n_procs_fds; k++)
		close(plan.procs_fds[k]);

	if (exec_file)
		execv(exec_file, cmd);
	else
		execvp(cmd[0], cmd);
	int err = errno;
	if (exec_file)
		not_run(cmd[0], err);
	else
		fprintf(stderr, "%s: cannot execute %s: %s\n", prog, cmd[0], strerror(err));
	return err == ENOENT ? 127 : 126;
}
