#ifndef VE_PROBE_H
#define VE_PROBE_H
#include "enforce.h"

int ve_no_new_privs(void);
int ve_probe_unshare(int flags);
#endif
