#ifndef VE_UTIL_H
#define VE_UTIL_H
/* The helpers are declared in enforce.h, which every C file includes; this header
 * only gives util.cdef a header of its own for the cffi builder. */
#include "enforce.h"
#endif
