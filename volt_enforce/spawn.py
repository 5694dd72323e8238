"""The C spawn path and the plan the child applies.

``Plan`` holds a ``struct ve_plan`` and every object it points into; it is
built once in the parent. ``spawn()`` starts a child with
clone3(CLONE_VM | CLONE_VFORK [| CLONE_INTO_CGROUP]), which applies the plan and
execs, with no Python in the child. ``Plan.preexec`` is the same sequence for a
child that subprocess forked.
"""

from __future__ import annotations

import errno as _errno
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ._core import ffi, lib
from .errors import EnforcementError

__all__ = ["Plan", "spawn", "STEPS", "step_number", "clone3_supported"]

#: Step names, as EnforcementError.step reports them.
STEPS: dict[int, str] = {
    lib.VE_STEP_SIGNALS: "signals",
    lib.VE_STEP_STDIO: "stdio",
    lib.VE_STEP_CHDIR: "chdir",
    lib.VE_STEP_UMASK: "umask",
    lib.VE_STEP_SETSID: "setsid",
    lib.VE_STEP_SETPGID: "setpgid",
    lib.VE_STEP_SETGROUPS: "setgroups",
    lib.VE_STEP_SETGID: "setgid",
    lib.VE_STEP_SETUID: "setuid",
    lib.VE_STEP_CLOSE_FDS: "close_fds",
    lib.VE_STEP_CGROUP: "cgroup",
    lib.VE_STEP_USERNS: "user_namespace",
    lib.VE_STEP_UID_MAP: "uid_map",
    lib.VE_STEP_NETNS: "network_namespace",
    lib.VE_STEP_LOOPBACK: "loopback",
    lib.VE_STEP_CAPS: "capabilities",
    lib.VE_STEP_NO_NEW_PRIVS: "no_new_privs",
    lib.VE_STEP_LANDLOCK: "landlock",
    lib.VE_STEP_SECCOMP: "seccomp",
    lib.VE_STEP_EXEC: "exec",
    lib.VE_STEP_CLONE: "clone",
}
_STEP_BY_NAME = {v: k for k, v in STEPS.items()}

#: The enforcement steps a test may make fail (``Plan(fail_step=...)``).
ENFORCEMENT_STEPS = ("cgroup", "user_namespace", "uid_map", "network_namespace", "loopback",
                     "capabilities", "no_new_privs", "landlock", "seccomp")


def step_number(name: str) -> int:
    try:
        return _STEP_BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown step {name!r}; steps: {', '.join(_STEP_BY_NAME)}") from None


def clone3_supported() -> bool:
    """Whether spawns use clone3 (and so CLONE_INTO_CGROUP) on this machine."""
    return bool(lib.ve_clone3_supported())


def _cap_last() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


_CAP_LAST = _cap_last()


@dataclass
class _Details:
    """What each step was applied to, for error messages."""

    procs_paths: tuple[str, ...] = ()
    landlock: str = ""
    seccomp: str = ""


class Plan:
    """The enforcement steps for a child, prepared in the parent.

    The plan borrows fds (cgroup.procs, the Landlock ruleset) from their owners,
    which must stay open while the plan is used.
    """

    def __init__(
        self,
        *,
        procs_fds: Sequence[int] = (),
        procs_paths: Sequence[str] = (),
        new_user_ns: bool = False,
        new_net_ns: bool = False,
        cap_keep: Sequence[int] | None = None,
        no_new_privs: bool = True,
        landlock_fd: int = -1,
        landlock_flags: int = 0,
        landlock_detail: str = "",
        bpf: bytes = b"",
        seccomp_flags: int = 0,
        seccomp_detail: str = "",
        fail_step: str | None = None,
    ) -> None:
        if len(procs_fds) > lib.VE_MAX_PROCS_FDS:
            raise ValueError(f"at most {lib.VE_MAX_PROCS_FDS} cgroup.procs fds")
        if len(bpf) % 8:
            raise ValueError("bpf is not a whole number of struct sock_filter (8 bytes each)")
        if len(bpf) // 8 > 4096:
            raise ValueError(f"seccomp filter has {len(bpf) // 8} instructions; the kernel allows 4096")
        c = ffi.new("struct ve_plan *")
        c.fail_step = step_number(fail_step) if fail_step else 0
        c.n_procs_fds = len(procs_fds)
        for i, fd in enumerate(procs_fds):
            c.procs_fds[i] = fd
        flags = 0
        if new_user_ns:
            flags |= lib.CLONE_NEWUSER
            c.uid_map = f"0 {os.geteuid()} 1\n".encode()
            c.gid_map = f"0 {os.getegid()} 1\n".encode()
        if new_net_ns:
            flags |= lib.CLONE_NEWNET
            c.loopback_up = 1
        c.unshare_flags = flags
        if cap_keep is not None:
            mask = 0
            for cap in cap_keep:
                mask |= 1 << cap
            c.drop_caps = 1
            c.cap_last = _CAP_LAST
            c.cap_keep = mask
        c.no_new_privs = 1 if no_new_privs else 0
        c.landlock_fd = landlock_fd
        c.landlock_flags = landlock_flags
        self._bpf = ffi.from_buffer(bpf) if bpf else ffi.NULL
        c.bpf = self._bpf
        c.bpf_len = len(bpf) // 8
        c.seccomp_flags = seccomp_flags
        self.c = c
        self.cap_keep = None if cap_keep is None else tuple(cap_keep)
        self.details = _Details(tuple(procs_paths), landlock_detail, seccomp_detail)
        self._res = ffi.new("struct ve_result *")

    # ---- errors -----------------------------------------------------------

    def error(self, step: int, err: int, index: int) -> EnforcementError:
        """The EnforcementError for a failed step, naming what it was applied to."""
        name = STEPS.get(step, f"step {step}")
        detail = None
        if step == lib.VE_STEP_CGROUP:
            paths = self.details.procs_paths
            detail = paths[index] if 0 <= index < len(paths) else None
        elif step == lib.VE_STEP_UID_MAP:
            detail = ("/proc/self/setgroups", "/proc/self/uid_map", "/proc/self/gid_map")[index]
        elif step == lib.VE_STEP_CAPS and index >= 0:
            from .model import CAPABILITIES

            names = {v: k for k, v in CAPABILITIES.items()}
            detail = f"dropping CAP_{names.get(index, index)}"
        elif step == lib.VE_STEP_LANDLOCK:
            detail = self.details.landlock or None
        elif step == lib.VE_STEP_SECCOMP:
            detail = self.details.seccomp or None
        elif step == lib.VE_STEP_LOOPBACK:
            detail = "lo"
        if self.c.fail_step == step:
            detail = (detail + "; " if detail else "") + "failure injected by the test hook"
        return EnforcementError(err, name, detail)

    # ---- this process -----------------------------------------------------

    def apply(self) -> None:
        """Apply the plan to the calling thread (init shims: apply_self)."""
        res = ffi.new("struct ve_result *")
        if lib.ve_apply(self.c, res) < 0:
            raise self.error(res.step, res.err, res.index)

    # ---- subprocess's preexec_fn --------------------------------------------

    def preexec_fn(self, report_fd: int):
        """A preexec_fn for subprocess: one C call, no Python work beyond it.

        On failure the C core writes (step, errno, index) to ``report_fd`` and the
        call raises, so subprocess never executes the target.
        """
        apply, plan, res = lib.ve_preexec, self.c, self._res
        failure = _PreexecFailure

        def preexec() -> None:
            if apply(plan, res, report_fd) < 0:
                raise failure

        return preexec


class _PreexecFailure(Exception):
    """Raised in a forked child whose plan failed; never seen by the parent."""


def _fsencode_list(items: Sequence[Any]) -> list[bytes]:
    out = []
    for a in items:
        b = os.fsencode(a)
        if b"\0" in b:
            raise ValueError(f"embedded null byte in {a!r}")
        out.append(b)
    return out


def _env_list(env: Mapping[Any, Any]) -> list[bytes]:
    out = []
    for k, v in env.items():
        kb, vb = os.fsencode(k), os.fsencode(v)
        if b"=" in kb:
            raise ValueError("illegal environment variable name")
        if b"\0" in kb or b"\0" in vb:
            raise ValueError("embedded null byte")
        out.append(kb + b"=" + vb)
    return out


def exec_candidates(executable: Any, env: Mapping[Any, Any] | None) -> list[bytes]:
    """The paths execve is tried on, as subprocess searches PATH."""
    exe = os.fsencode(executable)
    if os.path.dirname(exe):
        return [exe]
    return [os.path.join(os.fsencode(d), exe) for d in os.get_exec_path(env)]


class _CArgs:
    """A struct ve_spawn_args and the buffers it points into."""

    def __init__(self, argv: Sequence[Any], executable: Any, env: Mapping[Any, Any] | None,
                 cwd: Any) -> None:
        keep: list[Any] = []

        def cstrs(items: list[bytes]) -> Any:
            bufs = [ffi.new("char[]", b) for b in items]
            keep.extend(bufs)
            arr = ffi.new("char *[]", bufs + [ffi.NULL])
            keep.append(arr)
            return arr

        self.exec_paths = exec_candidates(executable, env)
        a = ffi.new("struct ve_spawn_args *")
        a.exec_paths = cstrs(self.exec_paths)
        a.argv = cstrs(_fsencode_list(argv))
        a.envp = cstrs(_env_list(env)) if env is not None else ffi.NULL
        if cwd is not None:
            cb = ffi.new("char[]", os.fsencode(cwd))
            keep.append(cb)
            a.cwd = cb
        else:
            a.cwd = ffi.NULL
        self.a = a
        self._keep = keep


def spawn(
    argv: Sequence[Any],
    *,
    executable: Any = None,
    env: Mapping[Any, Any] | None = None,
    cwd: Any = None,
    stdin: int = -1,
    stdout: int = -1,
    stderr: int = -1,
    pass_fds: Sequence[int] = (),
    close_fds: bool = True,
    restore_signals: bool = True,
    start_new_session: bool = False,
    process_group: int = -1,
    umask: int = -1,
    uid: int | None = None,
    gid: int | None = None,
    extra_groups: Sequence[int] | None = None,
    cgroup_fd: int = -1,
    cgroup_procs_fd: int = -1,
    plan: Plan | None = None,
) -> int:
    """Start ``argv`` in a new process under ``plan`` and return its pid.

    The child is placed in the cgroup2 directory ``cgroup_fd`` by clone3 when
    the kernel allows (else it writes itself into ``cgroup_procs_fd``), applies
    the plan, and execs. Errors raise in the caller after the child was reaped:
    ``EnforcementError`` for an enforcement step, ``OSError`` (FileNotFoundError,
    PermissionError, ...) for the exec, as subprocess does.
    """
    argv = list(argv)
    if not argv:
        raise ValueError("argv is empty")
    if executable is None:
        executable = argv[0]
    ca = _CArgs(argv, executable, env, cwd)
    a = ca.a
    a.fd0, a.fd1, a.fd2 = stdin, stdout, stderr
    a.close_fds = 1 if close_fds else 0
    keep = sorted({int(fd) for fd in pass_fds})
    keep_arr = ffi.new("int[]", keep) if keep else ffi.NULL
    a.keep_fds = keep_arr
    a.n_keep_fds = len(keep)
    a.restore_signals = 1 if restore_signals else 0
    a.new_session = 1 if start_new_session else 0
    a.pgid = process_group if process_group is not None else -1
    a.umask_value = umask if umask is not None else -1
    a.uid = -1 if uid is None else uid
    a.gid = -1 if gid is None else gid
    groups = ffi.new("uint32_t[]", list(extra_groups)) if extra_groups else ffi.NULL
    a.groups = groups
    a.n_groups = -1 if extra_groups is None else len(extra_groups)
    a.cgroup_fd = cgroup_fd
    a.cgroup_procs_fd = cgroup_procs_fd
    res = ffi.new("struct ve_result *")
    pid = lib.ve_spawn(a, plan.c if plan is not None else ffi.NULL, res)
    if pid < 0 and res.step == lib.VE_STEP_NONE:
        raise OSError(-pid, os.strerror(-pid))
    if res.step != lib.VE_STEP_NONE:
        if pid > 0:
            _reap(pid)
        step, err, index = res.step, res.err, res.index
        if step == lib.VE_STEP_EXEC:
            path = ca.exec_paths[index] if 0 <= index < len(ca.exec_paths) else executable
            filename = os.fsdecode(path) if os.path.dirname(os.fsencode(executable)) else executable
            raise OSError(err, os.strerror(err), filename) from None
        if step == lib.VE_STEP_CHDIR:
            raise OSError(err, os.strerror(err), os.fsdecode(cwd)) from None
        if step == lib.VE_STEP_CGROUP and index < 0:
            detail = ("cgroup2 placement by clone3(CLONE_INTO_CGROUP)" if index == -2
                      else "cgroup2 cgroup.procs (clone3 refused)")
            raise EnforcementError(err, "cgroup", detail)
        if plan is not None and step >= lib.VE_STEP_CGROUP:
            raise plan.error(step, err, index)
        raise EnforcementError(err, STEPS.get(step, str(step)))
    return pid


def _reap(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def read_preexec_failure(fd: int) -> tuple[int, int, int] | None:
    """Read one failure record that a preexec child wrote, if there is one."""
    size = ffi.sizeof("struct ve_result")
    try:
        data = os.read(fd, size)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno == _errno.EAGAIN:
            return None
        raise
    if len(data) != size:
        return None
    res = ffi.new("struct ve_result *")
    ffi.memmove(res, data, size)
    return res.step, res.err, res.index
