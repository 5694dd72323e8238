"""The built-in profiles: ``default`` (Docker's decisions and ``containment_rules``) and
``strict``, and ``port_rule_guard``, the rules to add when Landlock has TCP port rules.

``containment_rules`` is what a root child without a user namespace must not do even
where Docker lets it: push input into a terminal (ioctl TIOCSTI) or drive the virtual
console (TIOCLINUX), create files or directories with the setuid or setgid bit or set
them on existing ones (chmod family, open/openat/creat, mkdir, mknod: EPERM when the mode
has 06000), call ``openat2`` (its mode is in a struct the filter cannot read: ENOSYS, so
that libc falls back to openat), or use io_uring (EPERM; Docker's profile already
leaves it out). File capabilities (``security.capability`` xattrs) cannot be told apart
by name here (a pointer): they are stopped by dropping CAP_SETFCAP.

``strict`` is an allowlist for untrusted server workloads: files, memory, processes
and threads, signals, time, polling, sockets of the families servers use (AF_UNIX,
AF_INET, AF_INET6, AF_NETLINK), SysV and POSIX IPC. Everything else returns EPERM,
notably ptrace and process_vm_*, the mount family (with listmount and statmount),
namespace creation and listing (unshare, setns, listns, clone with CLONE_NEW* flags;
clone3 gets ENOSYS so libc falls back to clone, where the flags can be checked),
chroot and fchroot, ``containment_rules``, io_uring, bpf, perf_event_open, the keyring,
userfaultfd, fanotify, clock and time setting, swap, quotas, syslog, personality
values other than Docker's. Loading kernel modules and kexec kill the process: no
workload has a reason to try them.
"""

from __future__ import annotations

import errno as _errno
import socket as _socket
import stat as _stat
import termios as _termios
from importlib import resources
from typing import Any

from .._core import lib
from ..model import DOCKER_DEFAULT_CAPABILITIES
from . import oci
from .policy import ALLOW, KILL_PROCESS, Action, Arg, Op, Policy, Rule

__all__ = ["default_policy", "docker_policy", "strict_policy", "containment_rules",
           "port_rule_guard", "DOCKER_PROFILE", "STRICT_ALLOWED", "DENIED_IOCTLS", "MODE_ARGS"]

#: The shipped copy of Docker's default profile (moby/profiles seccomp/default.json,
#: Apache-2.0); tests check it against the project's fixture.
DOCKER_PROFILE = "docker-default.json"


def docker_profile() -> dict[str, Any]:
    import json

    text = resources.files(__package__).joinpath(DOCKER_PROFILE).read_text()
    profile: dict[str, Any] = json.loads(text)
    return profile


def docker_policy(arch: str) -> Policy:
    """Docker's default profile, resolved for a container with Docker's default
    capabilities on ``arch`` and the running kernel: Docker's decisions alone."""
    return oci.parse(docker_profile(), name="default", arch=arch, caps=DOCKER_DEFAULT_CAPABILITIES)


def default_policy(arch: str) -> Policy:
    """``default``: Docker's decisions (``docker_policy``) plus ``containment_rules``."""
    return docker_policy(arch).with_rules(containment_rules())


#: ioctl requests denied by ``strict`` and ``default`` (compared on the 32 bits of
#: ``unsigned int cmd``): TIOCSTI pushes input into a terminal (a host shell's, if its
#: tty leaked in), TIOCLINUX drives the virtual console (selection paste, console dump).
DENIED_IOCTLS: dict[str, int] = {"TIOCSTI": _termios.TIOCSTI, "TIOCLINUX": _termios.TIOCLINUX}

#: Syscalls that take a file mode -> the index of the mode argument (a ``umode_t``).
MODE_ARGS: dict[str, int] = {
    "chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "open": 2, "openat": 3,
    "creat": 1, "mkdir": 1, "mkdirat": 2, "mknod": 1, "mknodat": 2,
}

IO_URING: tuple[str, ...] = ("io_uring_setup", "io_uring_enter", "io_uring_register")


def containment_rules() -> tuple[Rule, ...]:
    """Rules ``strict`` and ``default`` add so that a root child without a user
    namespace cannot leave setuid files, inject terminal input or use io_uring."""
    eperm = Action.errno(_errno.EPERM)
    rules = [Rule(("ioctl",), eperm, (Arg(1, Op.EQ, cmd),)) for cmd in DENIED_IOCTLS.values()]
    by_index: dict[int, list[str]] = {}
    for name, index in MODE_ARGS.items():
        by_index.setdefault(index, []).append(name)
    for index, names in sorted(by_index.items()):
        # (mode & 06000) != 0 as two single-bit tests (OCI has no "masked not equal")
        for bit in (_stat.S_ISUID, _stat.S_ISGID):
            rules.append(Rule(tuple(names), eperm, (Arg(index, Op.MASKED_EQ, bit, bit),)))
    rules.append(Rule(("openat2",), Action.errno(_errno.ENOSYS)))
    rules.append(Rule(IO_URING, eperm))
    return tuple(rules)


#: include/linux/socket.h (4.11); include/uapi/linux/in.h (6.11): SMC over AF_INET sockets.
AF_SMC = 43
IPPROTO_SMC = 256
#: The protocols of AF_INET/AF_INET6 stream sockets that Landlock's TCP port rules
#: (plain TCP only) do not cover.
UNGUARDED_PROTOCOLS: dict[str, int] = {
    "IPPROTO_MPTCP": _socket.IPPROTO_MPTCP, "IPPROTO_SCTP": _socket.IPPROTO_SCTP,
    "IPPROTO_SMC": IPPROTO_SMC,
}


def port_rule_guard() -> tuple[Rule, ...]:
    """Rules to add when a config has Landlock TCP port rules: sockets that bind and
    connect without Landlock's TCP hooks get EACCES (what Landlock itself returns).
    ``socket(AF_INET/AF_INET6, any type, IPPROTO_MPTCP/IPPROTO_SCTP/IPPROTO_SMC)`` and
    any ``socket(AF_SMC, ...)``; family and protocol compared on their 32 bits.
    ``compile(profile, extra_rules=port_rule_guard())`` adds them to a profile."""
    eacces = Action.errno(_errno.EACCES)
    rules = [Rule(("socket",), eacces, (Arg(0, Op.EQ, family), Arg(2, Op.EQ, proto)))
             for family in (lib.AF_INET, lib.AF_INET6) for proto in UNGUARDED_PROTOCOLS.values()]
    rules.append(Rule(("socket",), eacces, (Arg(0, Op.EQ, AF_SMC),)))
    return tuple(rules)


#: The syscalls ``strict`` allows without conditions.
STRICT_ALLOWED: tuple[str, ...] = tuple(sorted(set("""
    read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2
    open openat creat close close_range lseek _llseek dup dup2 dup3 fcntl fcntl64 flock
    fsync fdatasync sync syncfs sync_file_range sync_file_range2 arm_sync_file_range
    truncate truncate64 ftruncate ftruncate64 fallocate fadvise64 fadvise64_64 arm_fadvise64_64
    readahead stat stat64 fstat fstat64 lstat lstat64 newfstatat fstatat64 statx statfs statfs64
    fstatfs fstatfs64 access faccessat faccessat2 readlink readlinkat getdents getdents64 getcwd
    chdir fchdir mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 link linkat
    symlink symlinkat chmod fchmod fchmodat fchmodat2 chown chown32 fchown fchown32 lchown
    lchown32 fchownat umask utime utimes utimensat utimensat_time64 futimesat mknod mknodat
    copy_file_range sendfile sendfile64 splice tee vmsplice cachestat
    getxattr lgetxattr fgetxattr getxattrat listxattr llistxattr flistxattr listxattrat
    setxattr lsetxattr fsetxattr setxattrat removexattr lremovexattr fremovexattr removexattrat
    file_getattr file_setattr
    inotify_init inotify_init1 inotify_add_watch inotify_rm_watch memfd_create
    brk mmap mmap2 munmap mremap mprotect pkey_mprotect pkey_alloc pkey_free madvise mlock
    mlock2 munlock mlockall munlockall mincore msync membarrier mseal map_shadow_stack
    execve execveat exit exit_group wait4 waitid waitpid kill tkill tgkill
    getpid getppid gettid getuid geteuid getgid getegid getresuid getresgid getgroups
    getuid32 geteuid32 getgid32 getegid32 getresuid32 getresgid32 getgroups32
    setuid setgid setreuid setregid setresuid setresgid setgroups setfsuid setfsgid
    setuid32 setgid32 setreuid32 setregid32 setresuid32 setresgid32 setgroups32 setfsuid32
    setfsgid32 capget capset
    getpgid setpgid getpgrp getsid setsid prctl arch_prctl set_tid_address set_thread_area
    get_thread_area set_tls get_tls cacheflush breakpoint
    set_robust_list get_robust_list rseq rseq_slice_yield fork vfork restart_syscall
    sched_yield sched_getaffinity sched_setaffinity sched_getparam sched_setparam
    sched_getscheduler sched_setscheduler sched_get_priority_max sched_get_priority_min
    sched_rr_get_interval sched_rr_get_interval_time64 sched_getattr sched_setattr getcpu
    getpriority setpriority getrlimit setrlimit ugetrlimit prlimit64 getrusage times uname
    sysinfo ioprio_get ioprio_set pidfd_open pidfd_send_signal process_mrelease
    rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend rt_sigpending rt_sigtimedwait
    rt_sigtimedwait_time64 rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack signalfd signalfd4
    sigreturn sigprocmask pause alarm
    nanosleep clock_nanosleep clock_nanosleep_time64 clock_gettime clock_gettime64 clock_getres
    clock_getres_time64 gettimeofday time timer_create timer_settime timer_settime64
    timer_gettime timer_gettime64 timer_getoverrun timer_delete timerfd_create timerfd_settime
    timerfd_settime64 timerfd_gettime timerfd_gettime64 getitimer setitimer
    futex futex_time64 futex_waitv futex_wake futex_wait futex_requeue
    poll ppoll ppoll_time64 select _newselect pselect6 pselect6_time64 epoll_create
    epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2 eventfd eventfd2
    socketpair bind listen accept accept4 connect getsockname getpeername sendto recvfrom
    send recv sendmsg recvmsg sendmmsg recvmmsg recvmmsg_time64 shutdown setsockopt getsockopt
    pipe pipe2 shmget shmat shmdt shmctl semget semop semtimedop semtimedop_time64 semctl
    msgget msgsnd msgrcv msgctl mq_open mq_unlink mq_timedsend mq_timedsend_time64
    mq_timedreceive mq_timedreceive_time64 mq_notify mq_getsetattr
    io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
    getrandom ioctl seccomp landlock_create_ruleset landlock_add_rule landlock_restrict_self
    uretprobe uprobe
""".split())))

#: Denied with KILL_PROCESS in ``strict``.
STRICT_KILLED: tuple[str, ...] = ("init_module", "finit_module", "delete_module",
                                  "kexec_load", "kexec_file_load")

_CLONE_NAMESPACES = (lib.CLONE_NEWNS | lib.CLONE_NEWUTS | lib.CLONE_NEWIPC | lib.CLONE_NEWUSER
                     | lib.CLONE_NEWPID | lib.CLONE_NEWNET | lib.CLONE_NEWCGROUP)


def strict_policy() -> Policy:
    rules = [Rule(STRICT_ALLOWED, ALLOW), Rule(STRICT_KILLED, KILL_PROCESS)]
    # clone without namespace flags (the flags are argument 0 on our architectures)
    rules.append(Rule(("clone",), ALLOW, (Arg(0, Op.MASKED_EQ, _CLONE_NAMESPACES, 0),)))
    # clone3 passes its flags in memory a filter cannot read: ENOSYS sends libc to clone
    rules.append(Rule(("clone3",), Action.errno(_errno.ENOSYS)))
    for family in (lib.AF_UNIX, lib.AF_INET, lib.AF_INET6, lib.AF_NETLINK):
        rules.append(Rule(("socket",), ALLOW, (Arg(0, Op.EQ, family),)))
    # Docker's personality values: Linux, 32-bit Linux, UNAME26 and both, and the query
    for persona in (lib.PER_LINUX, lib.PER_LINUX32, lib.UNAME26, lib.UNAME26 | lib.PER_LINUX32,
                    lib.VE_PER_QUERY):
        rules.append(Rule(("personality",), ALLOW, (Arg(0, Op.EQ, persona),)))
    rules.extend(containment_rules())
    return Policy(name="strict", default_action=Action.errno(_errno.EPERM), rules=tuple(rules))
