"""The child plan and the C spawn path.

``ChildPlan`` holds a ``struct ve_plan`` and every object it points into: what
a child must do to restrict itself, prepared in the parent from a ``Compiled``
(volt_enforce.compile). ``spawn()`` starts a child with
clone3(CLONE_VM | CLONE_VFORK [| CLONE_INTO_CGROUP]), which applies the plan and
execs, with no Python in the child. ``ChildPlan.preexec_fn`` is the same
sequence for a child that subprocess forked.

Step names, the capability count and the uid/gid map format come from the C
core (csrc/enforce.h, csrc/util.c): they are defined once, for the library and
volt-init alike.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._core import ffi, lib
from .errors import EnforcementError
from .model import CAPABILITIES

__all__ = ["ChildPlan", "spawn", "STEPS", "ENFORCEMENT_STEPS", "step_number", "clone3_supported"]

#: Step names, as EnforcementError.step reports them, by number (from the C core).
STEPS: dict[int, str] = {
    i: ffi.string(lib.ve_step_name(i)).decode() for i in range(1, lib.VE_STEP_COUNT)
}
_STEP_BY_NAME = {v: k for k, v in STEPS.items()}

#: The steps of the enforcement sequence (ve_apply), in order.
ENFORCEMENT_STEPS = tuple(STEPS[i] for i in range(lib.VE_FIRST_ENFORCEMENT_STEP,
                                                  lib.VE_LAST_ENFORCEMENT_STEP + 1))


def step_number(name: str) -> int:
    try:
        return _STEP_BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown step {name!r}; steps: {', '.join(_STEP_BY_NAME)}") from None


_CGROUP, _UID_MAP, _CAPS = step_number("cgroup"), step_number("uid_map"), step_number("capabilities")
_LANDLOCK, _SECCOMP, _LOOPBACK = step_number("landlock"), step_number("seccomp"), step_number("loopback")
_EXEC, _CHDIR = step_number("exec"), step_number("chdir")
_VIEW = step_number("view")
_NETNS, _RESOLV = step_number("namespaces"), step_number("resolv_conf")
_CAP_NAMES = {v: k for k, v in CAPABILITIES.items()}


def clone3_supported() -> bool:
    """Whether spawns use clone3 (and so CLONE_INTO_CGROUP) on this machine."""
    return bool(lib.ve_clone3_supported())


@dataclass
class _Details:
    """What each step was applied to, for error messages."""

    procs_paths: tuple[str, ...] = ()
    landlock: str = ""
    seccomp: str = ""
    resolv: str = ""


class ChildPlan:
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
        other_namespaces: int = 0,
        new_session: bool = False,
        cap_keep: Sequence[int] | None = None,
        no_new_privs: bool = True,
        landlock_fd: int = -1,
        landlock_flags: int = 0,
        landlock_detail: str = "",
        bpf: bytes = b"",
        seccomp_flags: int = 0,
        seccomp_detail: str = "",
        view: Any = None,
        net_fd: int = -1,
        resolv: tuple[str, str, int] | None = None,
    ) -> None:
        if len(procs_fds) > lib.VE_MAX_PROCS_FDS:
            raise ValueError(f"at most {lib.VE_MAX_PROCS_FDS} cgroup.procs fds")
        if len(bpf) % 8:
            raise ValueError("bpf is not a whole number of struct sock_filter (8 bytes each)")
        if len(bpf) // 8 > lib.VE_MAX_BPF_INSNS:
            raise ValueError(f"seccomp filter has {len(bpf) // 8} instructions; "
                             f"the kernel allows {lib.VE_MAX_BPF_INSNS}")
        c = ffi.new("struct ve_plan *")
        c.n_procs_fds = len(procs_fds)
        for i, fd in enumerate(procs_fds):
            c.procs_fds[i] = fd
        flags = 0
        if new_user_ns:
            flags |= lib.CLONE_NEWUSER
            lib.ve_format_id_map(c.uid_map, ffi.sizeof(c.uid_map), 0, os.geteuid(), 1)
            lib.ve_format_id_map(c.gid_map, ffi.sizeof(c.gid_map), 0, os.getegid(), 1)
        if new_net_ns:
            flags |= lib.CLONE_NEWNET
            c.loopback_up = 1
        if other_namespaces & (lib.CLONE_NEWUSER | lib.CLONE_NEWNET):
            raise ValueError("other_namespaces: user and network namespaces have flags of their own")
        c.unshare_flags = flags | other_namespaces
        if net_fd >= 0:  # the private network, prepared in the parent (volt_enforce.net)
            if new_net_ns:
                raise ValueError("net_fd: a prepared network namespace is joined, not unshared")
            c.join_net, c.net_fd = 1, net_fd
        if resolv is not None:
            src, dst, mount_flags = (os.fsencode(resolv[0]), os.fsencode(resolv[1]), resolv[2])
            for path in (src, dst):
                if not path or b"\0" in path or len(path) >= ffi.sizeof(c.resolv_src):
                    raise ValueError(f"resolv: {path!r} is not a path of at most "
                                     f"{ffi.sizeof(c.resolv_src) - 1} bytes")
            c.resolv_src, c.resolv_dst, c.resolv_flags = src, dst, mount_flags
        c.new_session = 1 if new_session else 0
        if cap_keep is not None:
            mask = 0
            for cap in cap_keep:
                mask |= 1 << cap
            c.drop_caps = 1
            c.cap_last = lib.ve_cap_last()
            c.cap_keep = mask
        c.no_new_privs = 1 if no_new_privs else 0
        c.landlock_fd = landlock_fd
        c.landlock_flags = landlock_flags
        self._bpf = ffi.from_buffer(bpf) if bpf else ffi.NULL
        c.bpf = self._bpf
        c.bpf_len = len(bpf) // 8
        c.seccomp_flags = seccomp_flags
        #: the prepared filesystem view (volt_enforce.view.View), kept alive with the plan
        self.view = view
        c.view = view.c if view is not None else ffi.NULL
        self.c = c
        self.cap_keep = None if cap_keep is None else tuple(cap_keep)
        self.details = _Details(tuple(procs_paths), landlock_detail, seccomp_detail,
                                resolv[1] if resolv is not None else "")
        self._res = ffi.new("struct ve_result *")

    # ---- errors -----------------------------------------------------------

    def _inject_failure(self, step: str) -> None:
        """Fault injection for the tests: make enforcement ``step`` fail with EPERM."""
        if step not in ENFORCEMENT_STEPS:
            raise ValueError(f"{step!r} is not one of {', '.join(ENFORCEMENT_STEPS)}")
        self.c.fail_step = step_number(step)

    def error(self, step: int, err: int, index: int) -> EnforcementError:
        """The EnforcementError for a failed step, naming what it was applied to."""
        name = STEPS.get(step, f"step {step}")
        detail = None
        if step == _CGROUP:
            paths = self.details.procs_paths
            detail = paths[index] if 0 <= index < len(paths) else None
        elif step == _UID_MAP:
            detail = ("/proc/self/setgroups", "/proc/self/uid_map", "/proc/self/gid_map")[index]
        elif step == _CAPS and index >= 0:
            detail = f"dropping CAP_{_CAP_NAMES.get(index, index)}"
        elif step == _LANDLOCK:
            detail = self.details.landlock or None
        elif step == _SECCOMP:
            detail = self.details.seccomp or None
            if err == _errno.ESRCH and self.c.seccomp_flags & lib.SECCOMP_FILTER_FLAG_TSYNC:
                detail = ((detail + "; ") if detail else "") + (
                    "TSYNC: another thread could not be synchronized (it has a filter of its "
                    "own); nothing was installed")
        elif step == _LOOPBACK:
            detail = "lo"
        elif step == _VIEW and self.view is not None:
            detail = self.view.describe_failure(index)
        elif step == _NETNS and index == 1:
            detail = "setns into the private network's namespace"
        elif step == _RESOLV:
            what = ("unshare(CLONE_NEWNS)", "making the mounts private", "bind",
                    "read-only remount")[index] if 0 <= index < 4 else ""
            detail = f"{what} of {self.details.resolv}"
        if self.c.fail_step == step:
            detail = (detail + "; " if detail else "") + "failure injected by the test hook"
        return EnforcementError(err, name, detail)

    # ---- this process -----------------------------------------------------

    def apply(self) -> None:
        """Apply the plan to the calling thread (init shims: apply_self)."""
        res = ffi.new("struct ve_result *")
        if lib.ve_apply(self.c, res) < 0:
            raise self.error(res.step, res.err, res.index)
        self.cwd_outside_view = bool(res.flags & lib.VE_RESULT_CWD_OUTSIDE_VIEW)

    # ---- subprocess's preexec_fn --------------------------------------------

    def preexec_fn(self, report_fd: int) -> Callable[[], None]:
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


_INT_MAX = (1 << 31) - 1
_INT_MIN = -(1 << 31)
#: (uid_t)-1 and (gid_t)-1 mean "unchanged" to setresuid/setresgid: never an id.
_ID_MAX = (1 << 32) - 2


def _int_arg(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    return value


def _check_spawn_args(pass_fds: Sequence[int], umask: int | None, uid: int | None,
                      gid: int | None, extra_groups: Sequence[int] | None,
                      process_group: int | None) -> None:
    """subprocess's checks, with the argument named, before anything reaches C
    (where an out-of-range value would be an OverflowError or truncated)."""
    for fd in pass_fds:
        if not 0 <= _int_arg("pass_fds", int(fd)) <= _INT_MAX:
            raise ValueError(f"bad value(s) in fds_to_keep: pass_fds has {fd!r}, "
                             f"not a file descriptor (0..{_INT_MAX})")
    # negative umask and process_group mean "leave it", as in subprocess
    if umask is not None and not _INT_MIN <= _int_arg("umask", umask) <= 0o777:
        raise ValueError(f"umask {umask:#o} is not a file mode mask (0..0o777, or -1 for unset)")
    for name, value in (("uid (user)", uid), ("gid (group)", gid)):
        if value is not None and not 0 <= _int_arg(name, value) <= _ID_MAX:
            raise ValueError(f"{name} {value} is not a user or group id (0..{_ID_MAX})")
    for g in extra_groups or ():
        if not 0 <= _int_arg("extra_groups", g) <= _ID_MAX:
            raise ValueError(f"extra_groups has {g!r}, not a group id (0..{_ID_MAX})")
    if process_group is not None and not _INT_MIN <= _int_arg("process_group", process_group) <= _INT_MAX:
        raise ValueError(f"process_group {process_group} is not a process group id "
                         f"(0..{_INT_MAX}, or -1 for unset)")


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
            cwd_bytes = os.fsencode(cwd)
            if b"\0" in cwd_bytes:  # C would stop at it and chdir to a prefix
                raise ValueError("embedded null byte")
            cb = ffi.new("char[]", cwd_bytes)
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
    plan: ChildPlan | None = None,
    info: dict[str, Any] | None = None,
) -> int:
    """Start ``argv`` in a new process under ``plan`` and return its pid.

    The child is placed in the cgroup2 directory ``cgroup_fd`` by clone3 when
    the kernel allows (else it writes itself into ``cgroup_procs_fd``), applies
    the plan, and execs. ``info``, when given, gets "cwd_outside_view" (the cwd)
    when the plan's view lacks the cwd and the child started in its "/".
    Errors raise in the caller after the child was reaped:
    ``EnforcementError`` for an enforcement step, ``OSError`` (FileNotFoundError,
    PermissionError, ...) for the exec, as subprocess does.
    """
    argv = list(argv)
    if not argv:
        raise ValueError("argv is empty")
    if executable is None:
        executable = argv[0]
    _check_spawn_args(pass_fds, umask, uid, gid, extra_groups, process_group)
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
    if pid < 0 and res.step == 0:
        raise OSError(-pid, os.strerror(-pid))
    if res.step != 0:
        if pid > 0:
            _reap(pid)
        raise spawn_error(res.step, res.err, res.index, ca.exec_paths, executable, cwd, plan)
    if info is not None and res.flags & lib.VE_RESULT_CWD_OUTSIDE_VIEW:
        # the view lacks the cwd: the child started in "/" of its view
        info["cwd_outside_view"] = os.path.abspath(os.fsdecode(cwd)) if cwd is not None \
            else os.getcwd()
    return pid


def spawn_error(step: int, err: int, index: int, exec_paths: Sequence[bytes], executable: Any,
                cwd: Any, plan: ChildPlan | None) -> OSError:
    """The exception for a child that failed at ``step`` (after it was reaped), as
    subprocess raises it for the exec and the cwd: shared by the direct path and
    the spawner (volt_enforce.spawner)."""
    if step == _EXEC:
        path = exec_paths[index] if 0 <= index < len(exec_paths) else executable
        filename = os.fsdecode(path) if os.path.dirname(os.fsencode(executable)) else executable
        return OSError(err, os.strerror(err), filename)
    if step == _CHDIR:
        return OSError(err, os.strerror(err), os.fsdecode(cwd) if cwd is not None else None)
    if step == _CGROUP and index < 0:
        detail = ("cgroup2 placement by clone3(CLONE_INTO_CGROUP)" if index == -2
                  else "cgroup2 cgroup.procs (clone3 refused)")
        return EnforcementError(err, "cgroup", detail)
    if plan is not None and step >= lib.VE_FIRST_ENFORCEMENT_STEP:
        return plan.error(step, err, index)
    return EnforcementError(err, STEPS.get(step, str(step)))


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
