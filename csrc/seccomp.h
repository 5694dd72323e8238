#ifndef VE_SECCOMP_H
#define VE_SECCOMP_H
#include "enforce.h"

int ve_seccomp_mode(void);
int ve_seccomp_action_avail(uint32_t action);
#endif
