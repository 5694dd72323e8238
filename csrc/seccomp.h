#ifndef VE_SECCOMP_H
#define VE_SECCOMP_H
#include "enforce.h"
#include <sys/personality.h>
#include <sys/socket.h>

/* x32 syscalls carry this bit in nr on x86_64 (asm/unistd.h, 3.4); the same value
 * is used on hosts whose headers lack it, so filters compile the same anywhere. */
#ifdef __X32_SYSCALL_BIT
#define VE_X32_SYSCALL_BIT ((uint32_t)__X32_SYSCALL_BIT)
#else
#define VE_X32_SYSCALL_BIT 0x40000000U
#endif

/* personality(0xffffffff) only reads the persona (kernel/exec_domain.c); no header names it. */
#define VE_PER_QUERY 0xffffffffU

#ifndef SECCOMP_RET_ACTION_FULL
#define SECCOMP_RET_ACTION_FULL 0xffff0000U /* 4.14 */
#endif

int ve_seccomp_mode(void);
int ve_seccomp_action_avail(uint32_t action);
int ve_seccomp_set_no_new_privs(void);
int ve_seccomp_load(const void *bpf, unsigned int n_insns, unsigned int flags);
#endif
