"""The subprocess-shaped API over the C spawn path: ``SandboxedPopen`` and
``run_in``, for any prepared sandbox (``volt_enforce.Sandbox``)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from typing import Any, Protocol

from .child import spawn
from .report import EnforcementReport

__all__ = ["SandboxedPopen", "SpawnTarget", "run_in"]

_EXEC_PARAMS = list(inspect.signature(
    subprocess.Popen._execute_child).parameters)[1:]  # type: ignore[attr-defined]


class SpawnTarget(Protocol):
    """What SandboxedPopen spawns under: a prepared sandbox."""

    report: EnforcementReport
    cgroup: Any

    def spawn_kwargs(self) -> dict[str, Any]: ...
    def close(self) -> None: ...
    def stats(self) -> Any: ...


class SandboxedPopen(subprocess.Popen[Any]):
    """``subprocess.Popen`` whose child is spawned in C under a prepared sandbox.

    ``own_sandbox``: close the sandbox once the child has been waited for. Pipes,
    cwd, env, pass_fds, text, timeout, communicate, wait and kill work as in
    subprocess; ``preexec_fn`` is refused (no Python runs in the child).
    """

    def __init__(self, args: Any, *, sandbox: SpawnTarget, own_sandbox: bool = False,
                 **kwargs: Any) -> None:
        if kwargs.get("preexec_fn") is not None:
            raise ValueError("volt_enforce.Popen runs no Python in the child: "
                             "use subprocess.Popen(preexec_fn=sandbox.preexec) instead")
        if getattr(sandbox, "contained", False) and kwargs.get("process_group") is not None:
            raise ValueError("process_group: a contained child starts a session of its own; "
                             "pass contain=False to keep it in a process group")
        self._own_sandbox = own_sandbox
        self.sandbox = sandbox
        #: the cwd, when the filesystem view lacks it and the child started in "/"
        self.cwd_outside_view: str | None = None
        self.report = sandbox.report
        try:
            super().__init__(args, **kwargs)
        except BaseException:
            if self._own_sandbox:
                self.sandbox.close()
            raise

    def _execute_child(self, *params: Any) -> None:
        p = dict(zip(_EXEC_PARAMS, params, strict=False))
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
        info: dict[str, Any] = {}
        # a Sandbox chooses between its spawner and the direct path (spawner.py)
        spawn_fn = getattr(self.sandbox, "spawn_child", None)
        try:
            self.pid, self.spawn_path = (spawn_fn or _direct(self.sandbox))(
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
                info=info,
            )
            self._child_created = True
            self.cwd_outside_view = info.get("cwd_outside_view")
        finally:
            close = self._close_pipe_fds  # type: ignore[attr-defined]
            close(p["p2cread"], p["p2cwrite"], p["c2pread"], p["c2pwrite"],
                                 p["errread"], p["errwrite"])

    def _handle_exitstatus(self, *a: Any, **kw: Any) -> None:
        super()._handle_exitstatus(*a, **kw)  # type: ignore[misc]
        if self._own_sandbox:
            self.sandbox.close()


def _direct(sandbox: SpawnTarget) -> Any:
    def spawn_direct(args: Any, **kwargs: Any) -> tuple[int, str]:
        return spawn(args, **kwargs, **sandbox.spawn_kwargs()), "direct"

    return spawn_direct


def run_in(args: Any, *, sandbox: SpawnTarget, with_stats: bool = False, input: Any = None,
         capture_output: bool = False,
         timeout: float | None = None, check: bool = False,
         **kwargs: Any) -> subprocess.CompletedProcess[Any]:
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
    with SandboxedPopen(args, sandbox=sandbox, **kwargs) as process:
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
    assert retcode is not None  # communicate() waited for it
    cp = subprocess.CompletedProcess(process.args, retcode, stdout, stderr)
    cp.report = sandbox.report  # type: ignore[attr-defined]
    # read only for a cgroup of this child's own, before it is removed; a shared
    # sandbox's cgroup is read when asked (Sandbox.stats), not after every child
    cp.stats = sandbox.stats() if with_stats and sandbox.cgroup is not None else None  # type: ignore[attr-defined]
    return cp
