#ifndef VE_LANDLOCK_H
#define VE_LANDLOCK_H
#include "enforce.h"

int ve_landlock_abi(void);
int ve_landlock_errata(void);
#endif
