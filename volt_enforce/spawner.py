"""Restrict once, spawn many: the pre-restricted spawner of a Sandbox.

A child spawned on the direct path (``child.spawn``) attaches the sandbox's
seccomp filter and Landlock domain itself, and the kernel frees them again when
it exits: about half of a sandboxed spawn's overhead. A spawner is a small C
program (``volt_enforce/_bin/volt-spawner``, csrc/spawner/spawner.c) that the
sandbox starts the first time it is needed (exec'd, never a fork of this
threaded process). It restricts itself once with the sandbox's plan, through the
core's ``ve_apply`` over the ruleset fd and the BPF this process already built
(the rules are not resolved again, and the steps are the direct path's own),
and then starts each child with ``clone(CLONE_PARENT)``: the child is this
process's own (``Popen``, ``waitpid``, returncodes, signals and ``pass_fds`` as
on the direct path) and inherits the restrictions. Each child enters a Landlock
domain of its own, nested in the spawner's (the plan's scopes again, or one
right handled and granted beneath ``/``), so that, as on the direct path, it
cannot ptrace its siblings or the spawner, nor take their fds, and a scoped
plan keeps siblings from signalling each other.

The spawner is opt-in (``Sandbox(..., spawner=True)``). On the machine measured it
is 5-10% faster than the direct path (its per-request check of the caller and the
round trip to it cost most of what the inherited filter saves), while one lives
the caller shares its filesystem context with it (see the end), and without
CAP_SYS_PTRACE the change check below cannot see a Landlock domain entered by
other code: its semantics are not the direct path's in every case, so it is
never chosen silently. Without ``spawner=True``
every sandbox takes the direct path. With it, a sandbox that cannot use the
spawner is refused (``Sandbox.report.spawn`` says the path, and why):

=============================================  =======================================
config                                         path
=============================================  =======================================
``contain=False``, a Landlock ruleset, no      the spawner
cgroup, no namespace, no_new_privs, kernel
Landlock ABI >= 6, a seccomp filter that
allows what the spawner calls
contained (the default): a session, IPC and    direct (per-child namespaces)
UTS namespaces of each child's own
resource limits (a cgroup), ``cgroup=``        direct (per-child placement)
``network`` none/private, ``private_users``    direct (per-child namespaces, or the
                                               private network each child joins)
no Landlock ruleset                            direct (a nested domain would restrict
                                               ptrace more than the direct path does)
=============================================  =======================================

Per call, ``uid``, ``gid``, ``extra_groups``, ``process_group``,
``close_fds=False``, an fd that is not open, and arguments too large for one
message take the direct path. ``Sandbox(spawner=True)`` refuses a config that
cannot use the spawner (and such a call), ``spawner=False`` never uses it.

Fail closed: each request carries the caller's fingerprint; when this thread's
credentials, capabilities, no_new_privs, seccomp filters, affinity, its own
cgroups (cgroup v1 moves threads one by one), or the process's process group,
session or ignored signals changed since the spawner started (or a hard rlimit
was raised), a new spawner is started from the caller's current state.
``apply_self`` in this process turns the spawner off for good (Landlock binds
threads one by one, which no fingerprint shows). Each request also asks kcmp
whether this thread still shares the spawner's fs_struct and may still
ptrace-read the spawner. The first catches a thread that unshared its fs (and
then changed its cwd, root or umask), and with it one that entered a mount or
user namespace (unshare and setns of those need an fs of the thread's own); the
second, a Landlock domain the thread entered through other code, which
Landlock refuses once the spawner is not beneath it. kcmp needs CAP_SYS_PTRACE
(the spawner is not dumpable; root has it) and a caller's seccomp filter that
allows it; where it cannot be made, ``Sandbox.report.spawn["unchecked"]`` says
so. A thread whose state cannot be read (its Landlock domain denies
/proc/thread-self) takes the direct path. Not compared, because reading them
costs what the spawner saves (pidfs's ioctls or /proc/thread-self/ns, 3-6 us
each, 20-50 us a request): network, IPC, UTS, cgroup, PID and time namespaces
entered after the spawner started; use ``spawner=False`` where a thread does
that. A stale spawner is replaced by a new one, never by another idle one, which
may be as stale. The reverse, a spawner started by a thread more restricted
than the caller, gives children more restrictions than the direct path would,
never fewer. A spawner that died between requests is restarted; one that died
during a request ends it with EnforcementError, its child (whose pid the kernel
wrote into memory shared with this process) killed and reaped. A spawner exits
when the sandbox closes (EOF on its socket) or when this process is gone.

Each request pins the spawner to the CPU the calling thread runs on (when that
changed since the last), and the child takes the caller's affinity again before
exec: on a VM, waking a task on an idle CPU (the request, and the reply back)
costs tens of microseconds each, and a task woken on the running CPU does not.

The spawner shares this process's cwd, root and umask (it is started with
CLONE_FS, and never changes them), so children get the caller's at call time.
While one lives, the kernel treats the fs as shared: a single-threaded caller's
``setns`` into a mount namespace fails with EINVAL, and a set-user-ID program
the caller itself execs gains no privilege (LSM_UNSAFE_SHARE). Close the
sandbox (or use ``spawner=False``) before either.
"""

from __future__ import annotations

import errno
import mmap
import os
import signal
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._core import ffi, lib
from ._paths import installed
from .child import ChildPlan, _env_list, _fsencode_list, _reap, exec_candidates, spawn_error
from .errors import EnforcementError, InstallationError, PolicyError

if TYPE_CHECKING:
    from .cgroups import Cgroup
    from .compile import Compiled

__all__ = ["SpawnerPool", "eligibility", "spawner_path", "disable_for_process", "unchecked"]

#: Set by apply_self: this process's threads may now differ in their Landlock domains.
_DISABLED: list[str] = []

#: What the spawner and its children call after the spawner restricted itself:
#: a seccomp filter must allow each, or the sandbox takes the direct path.
_CLONE_FLAGS = (0x00000100 | 0x00004000 | 0x00008000 | 0x00100000)  # VM VFORK PARENT PARENT_SETTID
_NEEDED_SYSCALLS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("recvmsg", ()), ("sendto", ()), ("getppid", ()), ("rt_sigprocmask", ()),
    ("clone", (_CLONE_FLAGS,)), ("close", ()), ("setsockopt", ()), ("prlimit64", ()),
    ("rt_sigaction", ()), ("fcntl", ()), ("dup2", ()), ("fchdir", ()), ("chdir", ()),
    ("umask", ()), ("setsid", ()), ("landlock_create_ruleset", ()), ("openat", ()),
    ("fstat", ()), ("newfstatat", ()), ("landlock_add_rule", ()),
    ("landlock_restrict_self", ()), ("sched_setaffinity", ()), ("execve", ()), ("exit_group", ()),
)
_LOG_FLAGS = (lib.LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF | lib.LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
              | lib.LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF)


def spawner_path() -> str:
    """Where the volt-spawner executable of this installation is."""
    return installed("volt-spawner")


def disable_for_process(why: str) -> None:
    """Never use a spawner again in this process (apply_self calls it)."""
    if not _DISABLED:
        _DISABLED.append(why)


def eligibility(compiled: Compiled, cgroup: Cgroup | None, plan: ChildPlan | None = None) -> str | None:
    """Why a sandbox must take the direct path, or None when the spawner gives its
    children exactly what the direct path gives them."""
    from . import landlock

    if _DISABLED:
        return _DISABLED[0]
    if compiled.new_session or compiled.contain:
        return "contained: each child gets a session and IPC and UTS namespaces of its own"
    if cgroup is not None:
        return "a cgroup: each child is placed in it"
    if compiled.private_network:
        return "a private network: each child joins its namespace"
    if compiled.unshare_flags:
        return "namespaces of each child's own: " + ", ".join(n.value for n in compiled.namespaces)
    if plan is not None:
        # the spawner applies only caps, no_new_privs, Landlock and seccomp: a plan
        # with any per-child step set (from a config this check does not know) is not
        # for it
        c = plan.c
        if (c.n_procs_fds or c.new_session or c.unshare_flags or c.join_net or c.loopback_up
                or ffi.string(c.resolv_src) or c.view != ffi.NULL):
            return "the child plan has steps of each child's own"
    ruleset = compiled.ruleset
    if ruleset is None or ruleset.fd < 0:
        return ("no Landlock ruleset: the children's own nested domain would restrict ptrace "
                "beyond what the direct path does")
    if landlock.kernel_abi() < 6:
        return f"Landlock ABI {landlock.kernel_abi()} < 6 (the children's own domain needs scopes)"
    if not compiled.no_new_privs:
        return "no_new_privs=False: a child could not enter a domain of its own"
    filt = compiled.seccomp
    if filt is not None and filt.instructions:
        from .seccomp.policy import ALLOW

        for name, args in _NEEDED_SYSCALLS:
            try:
                action = filt.simulate(name, args)
            except PolicyError:
                continue  # a name this architecture does not have
            if action != ALLOW:
                return f"the seccomp filter {filt.name} does not allow {name}, which the spawner calls"
    try:
        spawner_path()
    except InstallationError as exc:
        return str(exc)
    return None


def unchecked() -> list[str]:
    """What the request's check cannot see from this thread (``report.spawn``): a
    Landlock domain entered through other code, and an fs (and with it a mount or
    user namespace) a thread unshared, without kcmp of the spawner (CAP_SYS_PTRACE,
    a filter that allows kcmp)."""
    if lib.ve_spawner_checks() & lib.VE_SPAWNER_CHECK_KCMP:
        return ["a Landlock domain entered through other code, and an fs (cwd, root, "
                "umask; mount and user namespaces) a thread unshared, since the spawner "
                "started (kcmp of the spawner needs CAP_SYS_PTRACE and a filter that "
                "allows kcmp)"]
    return []


def _child_layer(compiled: Compiled) -> tuple[int, int, int]:
    """(scopes, fs right, restrict flags) of each child's own Landlock layer."""
    ruleset = compiled.ruleset
    assert ruleset is not None
    scopes = int(ruleset.report.scopes)
    fs = 0 if scopes else int(lib.LANDLOCK_ACCESS_FS_IOCTL_DEV)
    return scopes, fs, int(ruleset.restrict_flags) & _LOG_FLAGS


class _Unreadable(OSError):
    """The calling thread's fingerprint cannot be read (a /proc file its Landlock
    domain denies, a filter that refuses a probe): the call takes the direct path."""


class _Spawner:
    """One volt-spawner process and its socket; used by one thread at a time."""

    def __init__(self, pool: SpawnerPool) -> None:
        self.pid = -1
        self.sock: socket.socket | None = None
        self.fingerprint = b""
        self.check_fs = 0
        #: the CPU it was last pinned to (ve_spawner_call), -1: none yet
        self.pinned_cpu = ffi.new("int32_t *", -1)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        memfd = -1
        try:
            memfd = os.memfd_create("volt-spawner-slot", os.MFD_CLOEXEC)
            os.ftruncate(memfd, mmap.PAGESIZE)
            self.slot_map = mmap.mmap(memfd, mmap.PAGESIZE)
            self.slot = ffi.cast("struct ve_spawner_slot *", ffi.from_buffer(self.slot_map))
            self.fingerprint = pool.fingerprint()
            path = os.fsencode(spawner_path())
            # O_PATH: no read or write right needed (the spawner closes 0-2 at once)
            devnull = os.open(os.devnull, os.O_PATH | os.O_CLOEXEC)
            try:
                # CLONE_FS: it shares this process's cwd, root and umask
                pid = lib.ve_spawner_start(path, child.fileno(), devnull)
            finally:
                os.close(devnull)
            if pid < 0:
                raise OSError(-pid, os.strerror(-pid), os.fsdecode(path))
            self.pid = pid
            child.close()
            self.sock = parent
            #: whether a request checks that this thread still shares the spawner's
            #: fs and entered no Landlock domain since (ve_spawner_fs_probe; it
            #: needs CAP_SYS_PTRACE)
            self.check_fs = 1 if lib.ve_spawner_fs_probe(pid) == 0 else 0
            res = ffi.new("struct ve_result *")
            rc = lib.ve_spawner_setup(parent.fileno(), pool.plan.c, memfd, pool.child_scopes,
                                      pool.child_fs, pool.child_flags, pool.nofile_limit,
                                      pool.stop_child, res)
            if rc != 0:
                self.close()
                if rc == 1 and res.step:
                    raise pool.plan.error(res.step, res.err, res.index)
                err = res.err if rc == 1 else -rc
                raise EnforcementError(err or errno.EPROTO, "spawner",
                                       "the spawner did not start")
        except BaseException:
            child.close()
            self.close()
            raise
        finally:
            if memfd >= 0:
                os.close(memfd)

    def close(self) -> None:
        """EOF on its socket ends it; then reap it (it is this process's child)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.pid > 0:
            _reap(self.pid)
            self.pid = -1

    def kill(self) -> None:
        if self.pid > 0:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.close()


class SpawnerPool:
    """The spawners of one sandbox: one per thread spawning at once, up to ``size``,
    each started the first time it is needed."""

    def __init__(self, compiled: Compiled, plan: ChildPlan, *, size: int | None = None) -> None:
        self.plan = plan
        self.child_scopes, self.child_fs, self.child_flags = _child_layer(compiled)
        self.size = size or max(4, 2 * (os.cpu_count() or 1))
        #: test hook: the spawners' own RLIMIT_NOFILE soft limit (0: the caller's)
        self.nofile_limit = 0
        #: test hook: each child stops itself before exec (a spawner busy in a request)
        self.stop_child = 0
        self._idle: list[_Spawner] = []
        self._count = 0
        self._closed = False
        self._owner = os.getpid()
        self._cond = threading.Condition()
        #: /proc/self/stat and its (st_dev, st_ino), opened with the first spawner
        self._probe: tuple[int, int, int] = (-1, 0, 0)
        c = plan.c
        # the bounding bits of the rights the plan keeps; all, and ambient, when it keeps all
        self._cap_check = c.cap_keep if c.drop_caps else (1 << 64) - 1
        self._check_ambient = 0 if c.drop_caps else 1
        #: started, restarted (stale, dead), and children spawned, for tests and the report
        self.counts = {"started": 0, "restarted": 0, "spawned": 0}

    def _open_probe(self) -> None:
        """/proc/self/stat, kept open: a pread is cheaper than an open of it on every
        request. Its st_dev and st_ino are checked on each (ve_spawner_call)."""
        fd = os.open("/proc/self/stat", os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(fd)
        self._probe = (fd, st.st_dev, st.st_ino)

    def _close_probe(self, *, ours: bool = True) -> None:
        """Close the probe fd; ``ours=False``: forget it (its number is another
        file's now, closed by code that did not own it)."""
        if self._probe[0] >= 0 and ours:
            os.close(self._probe[0])
        self._probe = (-1, 0, 0)

    def _reopen_probe(self) -> None:
        with self._cond:
            self._close_probe(ours=False)
            self._open_probe()

    def _fill(self, call: Any) -> None:
        call.stat_fd, call.stat_dev, call.stat_ino = self._probe
        call.cap_check = self._cap_check
        call.check_ambient = self._check_ambient

    def fingerprint(self) -> bytes:
        """The calling thread's fingerprint (what a spawner started now is compared by)."""
        call = ffi.new("struct ve_spawner_call *")
        self._fill(call)
        buf = ffi.new("char[]", lib.VE_SPAWNER_FP_MAX)
        n = lib.ve_spawner_fingerprint(call, buf, lib.VE_SPAWNER_FP_MAX)
        if n == -errno.ESTALE:  # the probe fd is another file's: reopened, and again
            self._reopen_probe()
            self._fill(call)
            n = lib.ve_spawner_fingerprint(call, buf, lib.VE_SPAWNER_FP_MAX)
        if n < 0:
            raise _Unreadable(-n, "the calling thread's state cannot be read: " + os.strerror(-n))
        return bytes(ffi.buffer(buf, n))

    # ---- the pool ------------------------------------------------------------------

    def _acquire(self, fresh: bool = False) -> _Spawner:
        """An idle spawner, or a new one; ``fresh``: a new one, in the slot of an idle
        one if need be (the idle ones were started from another thread's state)."""
        replaced = None
        with self._cond:
            while True:
                if self._closed:
                    raise ValueError("the sandbox is closed")
                if self._owner != os.getpid():  # a fork: the spawners are the parent's
                    self._idle, self._count, self._owner = [], 0, os.getpid()
                    self._close_probe()
                    self._open_probe()
                if self._idle and not fresh:
                    return self._idle.pop()
                if self._count < self.size:
                    if self._probe[0] < 0:
                        self._open_probe()
                    self._count += 1
                    break
                if self._idle:
                    replaced = self._idle.pop()  # its slot goes to the new one
                    break
                self._cond.wait()
        if replaced is not None:
            replaced.close()
        try:
            sp = _Spawner(self)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        self._count_event("started")
        return sp

    def _release(self, sp: _Spawner, keep: bool) -> None:
        with self._cond:
            if keep and not self._closed and self._owner == os.getpid():
                self._idle.append(sp)
                self._cond.notify()
                return
            self._count -= 1
            self._cond.notify()
            last = self._closed and self._count == 0
        sp.close()
        if last:
            with self._cond:
                self._close_probe()

    def _count_event(self, name: str) -> None:
        with self._cond:
            self.counts[name] += 1

    def pids(self) -> list[int]:
        """The spawners' pids (tests)."""
        with self._cond:
            return [sp.pid for sp in self._idle]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for sp in idle:
            sp.close()
        with self._cond:
            if self._count == 0:
                self._close_probe()

    # ---- a spawn -------------------------------------------------------------------

    @staticmethod
    def unsupported(*, close_fds: bool, uid: Any, gid: Any, extra_groups: Any,
                    process_group: Any) -> str | None:
        """The argument of this call that the spawner cannot honour, if any."""
        if not close_fds:
            return "close_fds=False"
        for name, value in (("uid", uid), ("gid", gid), ("extra_groups", extra_groups)):
            if value is not None:
                return name
        if process_group is not None and process_group >= 0:
            return "process_group"
        if _DISABLED:
            return _DISABLED[0]
        return None

    def spawn(self, argv: Sequence[Any], *, executable: Any, env: Mapping[Any, Any] | None,
              cwd: Any, stdin: int, stdout: int, stderr: int, pass_fds: Sequence[int],
              restore_signals: bool, start_new_session: bool, umask: int) -> int | str:
        """Start a child through a spawner: its pid, or why this call must take the
        direct path (its arguments do not fit in one message, an fd is not open, the
        calling thread's state cannot be read)."""
        argv = list(argv)
        exec_paths = exec_candidates(executable, env)
        parts = exec_paths + _fsencode_list(argv)
        n_env = -1
        if env is not None:
            env_list = _env_list(env)
            parts += env_list
            n_env = len(env_list)
        cwd_bytes = None
        if cwd is not None:
            cwd_bytes = os.fsencode(cwd)
            if b"\0" in cwd_bytes:
                raise ValueError("embedded null byte")
            parts.append(cwd_bytes)
        blob = b"\0".join(parts) + b"\0"
        keep = sorted({int(fd) for fd in pass_fds if int(fd) > 2})
        call = ffi.new("struct ve_spawner_call *")
        strings = ffi.from_buffer(blob)
        call.strings = strings
        call.strings_len = len(blob)
        call.n_exec_paths = len(exec_paths)
        call.n_argv = len(argv)
        call.n_env = n_env
        call.has_cwd = 1 if cwd_bytes is not None else 0
        call.fd0, call.fd1, call.fd2 = stdin, stdout, stderr
        keep_arr = ffi.new("int[]", keep) if keep else ffi.NULL
        call.keep_fds = keep_arr
        call.n_keep_fds = len(keep)
        call.restore_signals = 1 if restore_signals else 0
        call.new_session = 1 if start_new_session else 0
        call.umask_value = umask if umask is not None and umask >= 0 else -1
        res = ffi.new("struct ve_result *")

        try:
            return self._call(call, res, exec_paths, executable, cwd)
        except _Unreadable as exc:  # read for a new spawner
            return str(exc.strerror)

    def _call(self, call: Any, res: Any, exec_paths: list[bytes], executable: Any,
              cwd: Any) -> int | str:
        fresh = False
        for _attempt in range(3):
            sp = self._acquire(fresh)
            keep_sp = False
            try:
                assert sp.sock is not None
                self._fill(call)  # the probe fds are open once a spawner is
                call.spawner_pid = sp.pid
                call.pinned_cpu = sp.pinned_cpu
                call.check_fs = sp.check_fs
                r = lib.ve_spawner_call(sp.sock.fileno(), call, sp.fingerprint,
                                        len(sp.fingerprint), sp.slot, res)
                if r == lib.VE_SPAWNER_R_PROBE:
                    keep_sp = True  # the spawner is fine: this process's probe fd is not
                    self._reopen_probe()
                    continue
                if r == lib.VE_SPAWNER_R_UNREADABLE:
                    keep_sp = True
                    return ("the calling thread's state cannot be read: "
                            + os.strerror(res.err or errno.EPROTO))
                if r == lib.VE_SPAWNER_R_STALE or r == lib.VE_SPAWNER_R_DEAD:
                    self._count_event("restarted")
                    fresh = True  # not another idle one: it may be as stale
                    continue  # a new spawner from this caller's state
                if r == lib.VE_SPAWNER_R_LOST:
                    child = res.index
                    if child > 0:  # started, maybe exec'd: fail closed, leave nothing
                        try:
                            os.kill(child, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        _reap(child)
                    raise EnforcementError(res.err or errno.ECONNRESET, "spawner",
                                           "the spawner died during the request"
                                           + ("; its child was killed" if child > 0 else ""))
                keep_sp = True
                if r == lib.VE_SPAWNER_R_TOO_BIG:
                    return "arguments too large for one message"
                if r == lib.VE_SPAWNER_R_BADFD:
                    return "an fd to pass is not open"
                if r == lib.VE_SPAWNER_R_REFUSED:
                    err = res.err or errno.EPROTO
                    raise EnforcementError(err, "spawner",
                                           f"the spawner refused the request: {os.strerror(err)}")
                if res.step != 0:
                    if r > 0:
                        _reap(r)
                    raise spawn_error(res.step, res.err, res.index, exec_paths, executable, cwd,
                                      self.plan)
                if r < 0:
                    raise OSError(-r, os.strerror(-r))
                self._count_event("spawned")
                return int(r)
            finally:
                self._release(sp, keep_sp)
        raise EnforcementError(errno.ESTALE, "spawner",
                               "this thread's state kept changing while spawners started")
