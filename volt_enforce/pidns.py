"""The PID namespace of a contained child, and the init that is its PID 1.

A contained child (run, Popen, Sandbox, the CLI; not ``apply_self``, ``preexec``
or volt-init, which restrict themselves) is cloned into a new PID namespace.
After applying its plan it execs ``volt-pidinit`` (csrc/init/pidinit.c) from a
sealed memfd, made once per process. Before that it starts the target with
clone(CLONE_VM | CLONE_VFORK), so the target's exec error reaches the parent
before ``Popen`` returns, the same ``OSError`` as without a namespace. The init
forwards the signals sent to it from outside, reaps, and reports the target's
fate on the *fate pipe* (csrc/pidns.h): exited with a status, or killed by
signal N (``returncode`` -N, as subprocess), read when the init is reaped.

The seccomp filter is the target's alone (the target loads it, last, before its
exec): a profile that denies clone or execveat must not keep the init from
starting the target. The init has everything else: no_new_privs, Landlock, the
namespaces, and no capability at all.

The init holds a pidfd of this process and exits when the process exits (a
thread that spawned and then exited does not matter), and the kernel then kills
everything left in the namespace.

``vm.memfd_noexec`` of the new namespace is set by the child before anything
else (it needs the caller's CAP_SYS_ADMIN): 2 from Linux 6.6, 1 on 6.3 to 6.5
(where 2 refused every memfd_create without MFD_NOEXEC_SEAL). Below 6.3 there
is no such setting, and the seccomp filter denies memfd_create instead
(``memfd_noexec_level``, ``compile``).
"""

from __future__ import annotations

import errno as _errno
import fcntl
import os
import platform
import re
import threading
from typing import Any

from ._core import ffi, lib
from ._paths import executable
from .errors import EnforcementError, InstallationError

__all__ = ["Fate", "Launch", "init_memfd", "memfd_noexec_level", "INIT_PATH"]

INIT_PATH = executable("volt-pidinit")

#: memfd_create flags and seals newer than some headers (6.3)
_MFD_EXEC = 0x0010
_F_SEAL_EXEC = 0x0020
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE

_lock = threading.Lock()
_memfd = -1
_pidfd: tuple[int, int] = (-1, -1)  # (pid it was opened in, fd)

_RECORD = ffi.sizeof("struct ve_init_record")


def kernel_version(release: str | None = None) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release if release is not None else platform.release())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def memfd_noexec_level(release: str | None = None) -> int:
    """The vm.memfd_noexec a contained child's PID namespace gets on this kernel:
    2 on 6.6+, 1 on 6.3-6.5, 0 below (no such sysctl: seccomp denies memfd_create)."""
    v = kernel_version(release)
    return 2 if v >= (6, 6) else 1 if v >= (6, 3) else 0


def current_memfd_noexec() -> int:
    """This process's PID namespace's vm.memfd_noexec (0 where there is none). A new
    namespace starts with it, and may only raise it."""
    try:
        with open("/proc/sys/vm/memfd_noexec") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def init_memfd() -> int:
    """A sealed, close-on-exec memfd holding volt-pidinit, made once per process
    (a forked process shares it: nobody can write it)."""
    global _memfd
    with _lock:
        if _memfd >= 0:
            return _memfd
        try:
            with open(INIT_PATH, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise InstallationError("volt-pidinit", INIT_PATH) from None
        base = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
        try:
            fd = os.memfd_create("volt-pidinit", base | _MFD_EXEC)
        except OSError as exc:
            if exc.errno != _errno.EINVAL:  # before 6.3: no MFD_EXEC, memfds are executable
                raise EnforcementError(exc.errno or _errno.EPERM, "pid_init",
                                       "memfd_create for the init (vm.memfd_noexec of the "
                                       "caller's PID namespace refuses executable memfds)") from None
            fd = os.memfd_create("volt-pidinit", base)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, 0o555)
            try:
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS | _F_SEAL_EXEC)
            except OSError:
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)  # before 6.3: no F_SEAL_EXEC
        except BaseException:
            os.close(fd)
            raise
        _memfd = fd
        return fd


def parent_pidfd() -> int:
    """A pidfd of this process (opened again after a fork), or -1 before 5.3."""
    global _pidfd
    pid = os.getpid()
    with _lock:
        opened_in, fd = _pidfd
        if opened_in == pid:
            return fd
        if fd >= 0:
            os.close(fd)  # the parent's, inherited by fork
        try:
            fd = os.pidfd_open(pid)
        except OSError as exc:
            if exc.errno != _errno.ENOSYS:
                raise
            fd = -1
        _pidfd = (pid, fd)
        return fd


def _pipe() -> tuple[int, int]:
    """A close-on-exec, non-blocking pipe whose ends are above stdio (the child dup2s
    onto 0-2). Non-blocking: read once the init was reaped, when its record (if any)
    is there, never waiting on a write end that a process forked meanwhile may still
    hold; the init's one small record always fits."""
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    out = []
    for fd in (r, w):
        if fd < 3:
            high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(fd)
            fd = high
        out.append(fd)
    return out[0], out[1]


def _read_record(fd: int) -> tuple[int, int, int] | None:
    data = b""
    while len(data) < _RECORD:
        try:
            chunk = os.read(fd, _RECORD - len(data))
        except InterruptedError:
            continue
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    if len(data) != _RECORD:
        return None
    rec = ffi.new("struct ve_init_record *")
    ffi.memmove(rec, data, _RECORD)
    return rec.kind, rec.err, rec.index


class Fate:
    """The read end of a contained child's fate pipe: what became of its target."""

    def __init__(self, fd: int = -1) -> None:
        self.fd = fd

    def wait_status(self, status: int) -> int:
        """The target's wait status for the init's ``status``: the init reported
        it (exited N, or killed by signal N), or the init itself was killed."""
        if self.fd < 0:
            return status
        try:
            rec = _read_record(self.fd)
        finally:
            self.close()
        if rec is None:  # the init died first (SIGKILL): its status is the child's
            return status
        kind, _, value = rec
        if kind == lib.VE_INIT_SIGNALED:
            return value & 0x7F
        if kind == lib.VE_INIT_EXITED:
            return (value & 0xFF) << 8
        return status  # VE_INIT_FAILED: the init's own status (125)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


_ARGV0 = ffi.new("char[]", b"volt-pidinit")
_PIDFD_ARG: list[Any] = [None, None]  # the pidfd, its argv string


def _pidfd_arg(pidfd: int) -> Any:
    if _PIDFD_ARG[0] != pidfd:
        _PIDFD_ARG[:] = [pidfd, ffi.new("char[]", b"%d" % pidfd)]
    return _PIDFD_ARG[1]


class Launch:
    """The per-spawn half: the fate pipe and the init's argv, set into a struct
    ve_spawn_args before the clone."""

    def __init__(self, args: Any, memfd_noexec: int) -> None:
        memfd = init_memfd()
        pidfd = parent_pidfd()
        self.fate_r, self.fate_w = _pipe()
        slot = ffi.new("char[]", lib.VE_PID_SLOT)  # TARGET_PID, written by the child
        bufs = [_ARGV0, ffi.new("char[]", b"%d" % self.fate_w), _pidfd_arg(pidfd), slot]
        arr = ffi.new("char *[]", bufs + [ffi.NULL])
        self._keep = (bufs, arr)
        args.init_fd = memfd
        args.init_argv = arr
        args.init_pid_slot = slot
        args.init_fds = [self.fate_w, pidfd]
        args.memfd_noexec = memfd_noexec

    def spawned(self) -> None:
        """After ve_spawn: the parent keeps only the read end."""
        if self.fate_w >= 0:
            os.close(self.fate_w)
            self.fate_w = -1

    def close(self) -> None:
        for name in ("fate_r", "fate_w"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def fate(self) -> Fate:
        fate, self.fate_r = Fate(self.fate_r), -1
        return fate
