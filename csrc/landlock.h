#ifndef VE_LANDLOCK_H
#define VE_LANDLOCK_H
#include "enforce.h"

/* Which step of ve_landlock_add_path_rule failed (out->step). */
#define VE_LANDLOCK_STEP_OPEN 1
#define VE_LANDLOCK_STEP_FSTAT 2
#define VE_LANDLOCK_STEP_ADD_RULE 3

/* Result of ve_landlock_add_path_rule. */
struct ve_landlock_path_rule {
	uint64_t allowed; /* rights added; 0 when none was left and no rule was added */
	uint32_t mode;    /* st_mode of the file the path resolved to */
	int32_t step;     /* on error: the VE_LANDLOCK_STEP_* that failed */
};

int ve_landlock_abi(void);
int ve_landlock_errata(void);
int ve_landlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped);
int ve_landlock_add_path_rule(int ruleset_fd, const char *path, uint64_t access,
			      uint64_t dir_only, struct ve_landlock_path_rule *out);
int ve_landlock_add_port_rule(int ruleset_fd, uint64_t access, uint64_t port);
int ve_landlock_restrict_self(int ruleset_fd, uint32_t flags, int set_no_new_privs);
int ve_landlock_create_ruleset_quiet(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped,
				     uint64_t quiet_fs, uint64_t quiet_net, uint64_t quiet_scoped);
int ve_landlock_add_beneath(int ruleset_fd, int fd, uint64_t access, uint32_t rule_flags);
int ve_landlock_add_path_rule_flags(int ruleset_fd, const char *path, uint64_t access,
				    uint64_t dir_only, uint32_t rule_flags,
				    struct ve_landlock_path_rule *out);
int ve_landlock_add_port_rule_flags(int ruleset_fd, uint64_t access, uint64_t port,
				    uint32_t rule_flags);
int ve_landlock_probe_restrict(uint32_t flags, int with_ruleset);
#endif
