"""Sandbox: one object from an IsolationConfig, applied three ways.

Everything is prepared in the parent, once: the Landlock ruleset, the seccomp
bytes, the cgroup, the capabilities to keep, the namespaces to enter. Then

* ``Sandbox.popen``/``run`` and the module's ``Popen``/``run`` spawn in C
  (clone3 with CLONE_VM|CLONE_VFORK, CLONE_INTO_CGROUP on cgroup v2), with no
  Python in the child: safe in threaded programs and close to a plain spawn;
* ``Sandbox.preexec`` is a ``preexec_fn`` for plain ``subprocess`` (one C call);
* ``apply_self`` restricts the calling process (init shims).

The child's steps run in DESIGN.md's order: join the cgroup (unless clone3
placed it), namespaces, capabilities, no_new_privs, Landlock, seccomp last. If
any step fails the target is not executed and the caller gets an
``EnforcementError`` naming the step, the errno and what it was applied to.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterator

from . import spawn as _spawn
from ._core import lib
from .errors import EnforcementError, PolicyError
from .kernel import unshare_error
from .model import (
    CAPABILITIES,
    DOCKER_DEFAULT_CAPABILITIES,
    IsolationConfig,
    NetworkMode,
    SeccompProfile,
)

__all__ = ["Sandbox", "EnforcementReport", "Popen", "run", "apply_self", "clear_cache"]


@dataclass
class EnforcementReport:
    """What was enforced for a sandbox, and what was dropped and why.

    ``landlock`` is the ruleset's ``LandlockReport`` and ``seccomp`` the
    ``SeccompFilter``'s summary; ``to_dict()`` gives the whole report as JSON-able
    data (built on demand: spawning never pays for formatting it).
    """

    landlock: Any = None  # volt_enforce.landlock.LandlockReport
    seccomp_filter: Any = None  # volt_enforce.seccomp.SeccompFilter
    cgroup: dict[str, Any] | None = None
    namespaces: list[str] = field(default_factory=list)
    capabilities: list[str] | None = None  # kept; None: not reduced
    no_new_privs: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def seccomp(self) -> dict[str, Any] | None:
        """The seccomp filter's summary (profile, instructions, cacheable, ...)."""
        return self.seccomp_filter.summary() if self.seccomp_filter is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "landlock": self.landlock.to_dict() if self.landlock is not None else None,
            "seccomp": self.seccomp,
            "cgroup": self.cgroup,
            "namespaces": list(self.namespaces),
            "capabilities": self.capabilities,
            "no_new_privs": self.no_new_privs,
            "notes": list(self.notes),
        }


_PREPARED: "OrderedDict[tuple, Sandbox]" = OrderedDict()
_PREPARED_MAX = 32
_PREPARED_LOCK = threading.Lock()
#: (id(config), abi, effective abi) -> (a copy of that config, its presets, its sandbox)
_BY_ID: dict[tuple, tuple[IsolationConfig, tuple, "Sandbox"]] = {}


def _prepared(config: IsolationConfig, abi: int | None = None) -> "Sandbox":
    """A prepared Sandbox for a config without resource limits, from a small LRU
    cache keyed by the config's content.

    Such a sandbox holds only immutable parts (the ruleset, the filter, the
    plan), so any number of threads may spawn from it at once. An entry dropped
    from the cache is closed when the last user lets go of it (__del__).
    """
    from . import landlock

    try:
        presets = tuple(r.preset for r in config.landlock.rules) if config.landlock else ()
        ident = (id(config), abi, landlock.effective_abi(abi))
        # fast path: the same object as last time, unchanged (compared with a copy)
        seen = _BY_ID.get(ident)
        if seen is not None and seen[1] == presets and seen[0] == config and not seen[2]._closed:
            return seen[2]
        key = (config.to_json(), presets, ident[1], ident[2])
    except Exception:
        config.validate()  # a malformed config: say what is wrong with it
        raise
    with _PREPARED_LOCK:
        hit = _PREPARED.get(key)
        if hit is not None and not hit._closed:
            _PREPARED.move_to_end(key)
    if hit is None or hit._closed:
        hit = Sandbox(config, landlock_abi=abi)
        with _PREPARED_LOCK:
            _PREPARED[key] = hit
            while len(_PREPARED) > _PREPARED_MAX:
                _PREPARED.popitem(last=False)
    with _PREPARED_LOCK:
        if len(_BY_ID) >= _PREPARED_MAX:
            _BY_ID.clear()
        _BY_ID[ident] = (copy.deepcopy(config), presets, hit)
    return hit


def clear_cache() -> None:
    """Drop the sandboxes ``run``/``Popen(isolation=...)`` keep prepared for reuse
    (after a rule's path was replaced, for instance)."""
    with _PREPARED_LOCK:
        _PREPARED.clear()
        _BY_ID.clear()


#: why unshare(flag) fails here, probed once per process (spawns must not fork twice more)
_namespace_error = functools.lru_cache(maxsize=None)(unshare_error)


def _kept_capabilities(config: IsolationConfig) -> list[str] | None:
    """The capabilities a child keeps: the config's list, else by profile."""
    if config.capabilities is not None:
        return list(config.capabilities)
    if config.seccomp == SeccompProfile.STRICT:
        return []
    if config.seccomp == SeccompProfile.DEFAULT:
        return list(DOCKER_DEFAULT_CAPABILITIES)
    return None


class Sandbox:
    """Isolation prepared once, for any number of children.

    ``config`` is the model (``IsolationConfig``); ``cgroup_parent`` is where the
    cgroup for ``config.resources`` is created (default: below this process's
    cgroup); ``cgroup`` is an existing ``volt_enforce.cgroups.Cgroup`` to place
    children in instead (the caller keeps owning it); ``best_effort`` lets cgroup limits and namespaces the kernel lacks
    be skipped and reported instead of failing (Landlock follows its policy's
    ``compatibility``). ``no_new_privs`` is set in children unless False.
    ``fail_step`` (tests only) makes that enforcement step fail in the child.
    ``share_compiled`` takes the Landlock ruleset and the seccomp filter from a
    process-wide cache of identical configs (what ``volt_enforce.run`` and
    ``Popen(isolation=...)`` do): the paths of such a ruleset were resolved when
    it was first built.
    """

    def __init__(
        self,
        config: IsolationConfig | None = None,
        *,
        cgroup_parent: str | None = None,
        cgroup: Any = None,
        best_effort: bool = False,
        no_new_privs: bool = True,
        landlock_abi: int | None = None,
        fail_step: str | None = None,
        share_compiled: bool = False,
    ) -> None:
        config = config if config is not None else IsolationConfig()
        if not isinstance(config, IsolationConfig):
            raise PolicyError("isolation", config, "is not an IsolationConfig")
        config.validate()
        if fail_step is not None and fail_step not in _spawn.ENFORCEMENT_STEPS:
            raise ValueError(
                f"fail_step {fail_step!r} is not one of {', '.join(_spawn.ENFORCEMENT_STEPS)}"
            )
        self.config = config
        self.report = EnforcementReport()
        self._closed = False
        self._own_cgroup = True
        self._share_compiled = share_compiled
        self._lock = threading.Lock()
        self._report_r = self._report_w = -1
        self.ruleset: Any = None
        self.seccomp: Any = None
        self.cgroup: Any = None
        with contextlib.ExitStack() as undo:
            self._prepare(config, cgroup_parent, cgroup, best_effort, no_new_privs,
                          landlock_abi, fail_step, undo)
            undo.pop_all()

    # ---- preparation, in the parent --------------------------------------------

    def _prepare(self, config: IsolationConfig, cgroup_parent: str | None, cgroup: Any,
                 best_effort: bool, no_new_privs: bool, landlock_abi: int | None, fail_step: str | None,
                 undo: contextlib.ExitStack) -> None:
        from . import landlock, seccomp

        rep = self.report

        # seccomp: compiled (and cached) in the parent; the child loads bytes
        bpf, sc_detail, sc_flags = b"", "", 0
        if config.seccomp is not None:
            self.seccomp = seccomp.compile(config.seccomp)
            bpf = self.seccomp.bpf
            sc_flags = self.seccomp.flags  # the profile's OCI flags (LOG, SPEC_ALLOW)
            rep.seccomp_filter = self.seccomp
            sc_detail = f"profile {self.seccomp.name}, {self.seccomp.instructions} instructions"

        # Landlock: the ruleset is built once; children only restrict_self
        if self._share_compiled:
            base = config.replace(resources=None) if config.resources is not None else config
            self._base = _prepared(base, landlock_abi)  # keeps the borrowed ruleset open
            self.ruleset = self._base.ruleset
        else:
            self.ruleset = landlock.compile_for(config, abi=landlock_abi)
        ll_fd, ll_flags, ll_detail = -1, 0, ""
        if self.ruleset is not None and not self._share_compiled:
            undo.callback(self.ruleset.close)
        if self.ruleset is not None:
            rep.landlock = self.ruleset.report
            ll_fd, ll_flags = self.ruleset.fd, self.ruleset.restrict_flags
            ll_detail = f"ruleset of {len(self.ruleset.report.rules)} rules"

        # namespaces
        new_user = bool(config.private_users)
        mode = config.network.effective_mode if config.network is not None else None
        new_net = mode in (NetworkMode.NONE, NetworkMode.PRIVATE)
        new_user = new_user and self._namespace(lib.CLONE_NEWUSER, "user", best_effort)
        new_net = new_net and self._namespace(lib.CLONE_NEWNET, "network", best_effort)
        if new_net and mode == NetworkMode.PRIVATE:
            bridge = config.network.bridge or "voltbr0"  # type: ignore[union-attr]
            rep.notes.append(f"network private: own namespace with loopback only; "
                             f"no veth was attached to bridge {bridge!r}")

        # capabilities
        keep = _kept_capabilities(config)
        rep.capabilities = keep
        rep.no_new_privs = no_new_privs

        # cgroup, last: the only preparation that changes the system
        procs_fds: tuple[int, ...] = ()
        procs_paths: tuple[str, ...] = ()
        self._own_cgroup = cgroup is None
        if cgroup is not None:
            if config.resources is not None and not config.resources.is_empty():
                raise PolicyError("Resources", config.resources,
                                  "cannot be applied: an existing cgroup was given")
            self.cgroup = cgroup
        elif config.resources is not None and not config.resources.is_empty():
            from .cgroups import Cgroup

            self.cgroup = Cgroup.create(config.resources, parent=cgroup_parent,
                                        best_effort=best_effort)
            undo.callback(self.cgroup.close)
        if self.cgroup is not None:
            procs_fds = tuple(self.cgroup.procs_fds)
            procs_paths = tuple(self.cgroup.procs_paths)
            rep.cgroup = {"paths": dict(self.cgroup.paths), **self.cgroup.report}

        self.plan = _spawn.Plan(
            procs_fds=procs_fds,
            procs_paths=procs_paths,
            new_user_ns=new_user,
            new_net_ns=new_net,
            cap_keep=[CAPABILITIES[c] for c in keep] if keep is not None else None,
            no_new_privs=no_new_privs,
            landlock_fd=ll_fd,
            landlock_flags=ll_flags,
            landlock_detail=ll_detail,
            bpf=bpf,
            seccomp_flags=sc_flags,
            seccomp_detail=sc_detail,
            fail_step=fail_step,
        )

    def _namespace(self, flag: int, name: str, best_effort: bool) -> bool:
        """Whether the child can enter a new ``name`` namespace; if not, fail, or
        under best effort drop it and say so."""
        error = _namespace_error(flag)
        if error is None:
            self.report.namespaces.append(name)
            return True
        if not best_effort:
            raise EnforcementError(0, f"{name}_namespace", f"not available: {error}")
        self.report.notes.append(f"{name} namespace dropped: {error}")
        return False

    # ---- the three ways to apply ----------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the sandbox is closed")

    def spawn_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of volt_enforce.spawn.spawn for this sandbox."""
        cg = self.cgroup
        return {
            "plan": self.plan,
            "cgroup_fd": cg.clone_fd if cg is not None else -1,
            "cgroup_procs_fd": cg.v2_procs_fd if cg is not None else -1,
        }

    def popen(self, args: Any, **kwargs: Any) -> "Popen":
        """``subprocess.Popen`` of ``args`` in this sandbox (C spawn path)."""
        self._check_open()
        return Popen(args, sandbox=self, **kwargs)

    def run(self, args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        """``subprocess.run`` of ``args`` in this sandbox (C spawn path)."""
        self._check_open()
        return _run(args, sandbox=self, **kwargs)

    @property
    def preexec(self):
        """A ``preexec_fn`` for ``subprocess``: one C call in the child.

        ``subprocess`` reports a failing preexec_fn without detail; wrap the call
        in ``with sandbox.child_errors():`` (or use the sandbox as a context
        manager) to get the ``EnforcementError`` naming the step instead.
        """
        self._check_open()
        with self._lock:
            if self._report_r < 0:
                r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                self._report_r, self._report_w = r, w
        return self.plan.preexec_fn(self._report_w)

    @contextlib.contextmanager
    def child_errors(self) -> Iterator[None]:
        """Turn subprocess's error for a failed preexec into EnforcementError."""
        try:
            yield
        except (subprocess.SubprocessError, OSError) as exc:
            err = self._pending_preexec_error()
            if err is not None:
                raise err from exc
            raise

    def _pending_preexec_error(self) -> EnforcementError | None:
        if self._report_r < 0:
            return None
        rec = _spawn.read_preexec_failure(self._report_r)
        if rec is None:
            return None
        return self.plan.error(*rec)

    def apply_self(self, *, allow_threads: bool = False) -> EnforcementReport:
        """Restrict the calling process with this sandbox (init shims).

        Landlock binds only the calling thread, so with other threads alive this
        refuses unless ``allow_threads``; seccomp then synchronizes all threads.
        The cgroup stays in place (removing it would kill this process).
        """
        self._check_open()
        return _apply_plan_to_self(self, allow_threads)

    # ---- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the ruleset fd, remove the cgroup (killing what is left in it)."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        for closer in (
            None if self._share_compiled else getattr(self.ruleset, "close", None),
            getattr(self.cgroup, "close", None) if self._own_cgroup else None,
        ):
            if closer is not None:
                try:
                    closer()
                except Exception as exc:  # close everything, then raise the first
                    errors.append(exc)
        for fd in (self._report_r, self._report_w):
            if fd >= 0:
                os.close(fd)
        self._report_r = self._report_w = -1
        if errors:
            raise errors[0]

    def stats(self) -> Any:
        """cgroup statistics (peak memory, CPU time, PIDs, OOM kills), or None."""
        return self.cgroup.stats() if self.cgroup is not None else None

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        pending = None
        if exc is not None and isinstance(exc, (subprocess.SubprocessError, OSError)):
            pending = self._pending_preexec_error()
        self.close()
        if pending is not None:
            raise pending from exc

    def __del__(self) -> None:
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass


def _apply_plan_to_self(sb: Sandbox, allow_threads: bool) -> EnforcementReport:
    threads = len(os.listdir("/proc/self/task"))
    plan = sb.plan
    if threads > 1:
        if sb.ruleset is not None and sb.ruleset.fd >= 0 and not allow_threads:
            raise EnforcementError(
                0, "landlock",
                f"this process has {threads} threads and Landlock would restrict only the "
                "calling one; pass allow_threads=True to accept that",
            )
        if sb.seccomp is not None and sb.seccomp.instructions:
            plan.c.seccomp_flags |= lib.SECCOMP_FILTER_FLAG_TSYNC
            sb.report.notes.append(f"seccomp synchronized to all {threads} threads (TSYNC)")
    if sb.cgroup is not None:
        sb.cgroup.detach()  # the process lives in it now: never remove it under us
    plan.apply()
    return sb.report


# ---- subprocess-shaped API ------------------------------------------------------

_EXEC_PARAMS = list(inspect.signature(subprocess.Popen._execute_child).parameters)[1:]


class Popen(subprocess.Popen):
    """``subprocess.Popen`` whose child is spawned in C under a sandbox.

    ``Popen(args, isolation=config, **subprocess_kwargs)`` prepares a Sandbox
    for this one child (closed when the child has been waited for);
    ``Popen(args, sandbox=sb, ...)`` reuses a prepared one. Pipes, cwd, env,
    pass_fds, text, timeout, communicate, wait and kill work as in subprocess;
    ``preexec_fn`` is refused (no Python runs in the child).
    """

    def __init__(self, args: Any, *, isolation: IsolationConfig | None = None,
                 sandbox: Sandbox | None = None, **kwargs: Any) -> None:
        if kwargs.get("preexec_fn") is not None:
            raise ValueError("volt_enforce.Popen runs no Python in the child: "
                             "use subprocess.Popen(preexec_fn=sandbox.preexec) instead")
        if sandbox is not None and isolation is not None:
            raise ValueError("pass isolation= or sandbox=, not both")
        self._own_sandbox = sandbox is None
        if sandbox is None and _limitless(isolation):
            sandbox, self._own_sandbox = _prepared(isolation or IsolationConfig()), False
        self.sandbox = sandbox if sandbox is not None else Sandbox(isolation, share_compiled=True)
        self.report = self.sandbox.report
        try:
            super().__init__(args, **kwargs)
        except BaseException:
            if self._own_sandbox:
                self.sandbox.close()
            raise

    def _execute_child(self, *params: Any) -> None:  # type: ignore[override]
        p = dict(zip(_EXEC_PARAMS, params))
        args, executable, shell = p["args"], p["executable"], p["shell"]
        if isinstance(args, (str, bytes)):
            args = [args]
        elif isinstance(args, os.PathLike):
            if shell:
                raise TypeError("path-like args is not allowed when shell is true")
            args = [args]
        else:
            args = list(args)
        if shell:
            args = ["/bin/sh", "-c"] + args
            if executable:
                args[0] = executable
        if executable is None:
            executable = args[0]
        sys.audit("subprocess.Popen", executable, args, p["cwd"], p["env"])
        try:
            self.pid = _spawn.spawn(
                args,
                executable=executable,
                env=p["env"],
                cwd=p["cwd"],
                stdin=p["p2cread"],
                stdout=p["c2pwrite"],
                stderr=p["errwrite"],
                pass_fds=p["pass_fds"],
                close_fds=p["close_fds"],
                restore_signals=p["restore_signals"],
                start_new_session=p["start_new_session"],
                process_group=p.get("process_group", -1),
                umask=p["umask"],
                uid=p["uid"],
                gid=p["gid"],
                extra_groups=p["gids"],
                **self.sandbox.spawn_kwargs(),
            )
            self._child_created = True
        finally:
            self._close_pipe_fds(p["p2cread"], p["p2cwrite"], p["c2pread"], p["c2pwrite"],
                                 p["errread"], p["errwrite"])

    def _handle_exitstatus(self, *a: Any, **kw: Any) -> None:  # type: ignore[override]
        super()._handle_exitstatus(*a, **kw)
        if self._own_sandbox:
            self.sandbox.close()


def _run(args: Any, *, sandbox: Sandbox, with_stats: bool = False, input: Any = None,
         capture_output: bool = False,
         timeout: float | None = None, check: bool = False,
         **kwargs: Any) -> subprocess.CompletedProcess:
    # subprocess.run, spawning through our Popen
    if input is not None:
        if kwargs.get("stdin") is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        kwargs["stdin"] = subprocess.PIPE
    if capture_output:
        if kwargs.get("stdout") is not None or kwargs.get("stderr") is not None:
            raise ValueError("stdout and stderr arguments may not be used with capture_output.")
        kwargs["stdout"] = subprocess.PIPE
        kwargs["stderr"] = subprocess.PIPE
    with Popen(args, sandbox=sandbox, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            exc.stdout, exc.stderr = process.communicate()
            raise
        except BaseException:
            process.kill()
            raise
        retcode = process.poll()
        if check and retcode:
            raise subprocess.CalledProcessError(retcode, process.args, output=stdout,
                                                stderr=stderr)
    cp = subprocess.CompletedProcess(process.args, retcode, stdout, stderr)
    cp.report = sandbox.report  # type: ignore[attr-defined]
    # read only for a cgroup of this child's own, before it is removed; a shared
    # sandbox's cgroup is read when asked (Sandbox.stats), not after every child
    cp.stats = sandbox.stats() if with_stats and sandbox.cgroup is not None else None  # type: ignore[attr-defined]
    return cp


def run(args: Any, *, isolation: IsolationConfig | None = None, sandbox: Sandbox | None = None,
        **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run`` with the child sandboxed (C spawn path).

    Returns a ``CompletedProcess`` with two more attributes: ``report`` (the
    EnforcementReport) and ``stats`` (the statistics of the child's own cgroup,
    made for ``isolation.resources``; None otherwise: for a shared sandbox ask
    ``Sandbox.stats()``).
    """
    if sandbox is not None:
        if isolation is not None:
            raise ValueError("pass isolation= or sandbox=, not both")
        return _run(args, sandbox=sandbox, **kwargs)
    if _limitless(isolation):  # nothing per child to set up or tear down: reuse
        return _run(args, sandbox=_prepared(isolation or IsolationConfig()), **kwargs)
    with Sandbox(isolation, share_compiled=True) as sb:
        return _run(args, sandbox=sb, with_stats=True, **kwargs)


def _limitless(config: IsolationConfig | None) -> bool:
    return config is None or config.resources is None or config.resources.is_empty()


def apply_self(config: IsolationConfig, *, allow_threads: bool = False,
               **sandbox_kwargs: Any) -> EnforcementReport:
    """Restrict the calling process by ``config`` and return the report.

    For init shims that restrict themselves and then exec the workload. See
    ``Sandbox.apply_self`` for threads.
    """
    sb = Sandbox(config, **sandbox_kwargs)
    try:
        report = sb.apply_self(allow_threads=allow_threads)
    except BaseException:
        sb.close()
        raise
    # the restriction is in force; the ruleset fd is no longer needed
    if sb.ruleset is not None:
        sb.ruleset.close()
    sb._closed = True
    for fd in (sb._report_r, sb._report_w):
        if fd >= 0:
            os.close(fd)
    return report
