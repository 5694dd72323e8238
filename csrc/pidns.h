/*
 * The PID-namespace init's protocol with the parent (csrc/init/pidinit.c,
 * volt_enforce/pidns.py).
 *
 * A contained child is PID 1 of a new PID namespace. After applying its plan it
 * starts the target (clone(CLONE_VM | CLONE_VFORK), so an exec error reaches the
 * parent as it does without a namespace), then execs volt-pidinit from a sealed
 * memfd. The init forwards signals, reaps, and writes one record on the fate
 * pipe (close-on-exec) when the target ended: VE_INIT_EXITED (index: the exit
 * status) or VE_INIT_SIGNALED (index: the signal); VE_INIT_FAILED (err) when its
 * own setup failed, and the namespace was killed. A record is smaller than
 * PIPE_BUF, so it arrives whole.
 */
#ifndef VE_PIDNS_H
#define VE_PIDNS_H
#include "enforce.h"

#define VE_INIT_FAILED 2
#define VE_INIT_EXITED 3
#define VE_INIT_SIGNALED 4

struct ve_init_record {
	int32_t kind;
	int32_t err;
	int32_t index;
};

#endif
