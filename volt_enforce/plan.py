"""Compiled plans for volt-init, the init shim without Python.

``volt-enforce compile ... -o PLAN`` writes everything a container's first
process needs to restrict itself: the Landlock rules after masking to this
kernel's ABI, the seccomp filter's bytes, the cgroup directories and limit
files, the namespaces and the capabilities to keep. ``volt-init PLAN -- CMD``
(C, csrc/init/volt_init.c) applies it in the library's order and execs CMD.

The format is text, one record per line, strings hex-encoded; it is
documented at the top of csrc/init/volt_init.c.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence

from ._core import lib
from .errors import PolicyError
from .model import CAPABILITIES, IsolationConfig, NetworkMode

__all__ = ["compile_plan", "write_plan", "volt_init_path", "PLAN_VERSION"]

PLAN_VERSION = 1


def _hex(text: str) -> str:
    return os.fsencode(text).hex()


def compile_plan(config: IsolationConfig, *, best_effort: bool = False,
                 cgroup_dirs: Sequence[tuple[str, dict[str, str]]] | None = None) -> str:
    """The plan text for ``config`` on this kernel.

    ``cgroup_dirs`` is a list of (directory, {file: value}) the shim creates,
    writes and joins; by default it is derived from ``config.resources`` for
    this host's cgroup layout (a ``volt`` directory below the hierarchy roots).
    """
    from . import landlock, seccomp
    from .sandbox import _kept_capabilities

    config.validate()
    out = [f"volt-plan {PLAN_VERSION}", "nnp 1"]

    keep = _kept_capabilities(config)
    if keep is not None:
        mask = 0
        for name in keep:
            mask |= 1 << CAPABILITIES[name]
        out.append(f"caps {mask:x}")

    flags = 0
    if config.private_users:
        flags |= lib.CLONE_NEWUSER
    if config.network is not None and config.network.effective_mode in (NetworkMode.NONE,
                                                                          NetworkMode.PRIVATE):
        flags |= lib.CLONE_NEWNET
    if flags:
        out.append(f"unshare {flags:x}")

    if cgroup_dirs is None:
        cgroup_dirs = _cgroup_dirs(config, best_effort)
    for directory, files in cgroup_dirs:
        out.append(f"cgroup-dir {_hex(directory)}")
        for name, value in files.items():
            out.append(f"cgroup-set {_hex(os.path.join(directory, name))} {_hex(value)}")
        out.append(f"cgroup-join {_hex(directory)}")

    ruleset = landlock.compile_for(config)
    if ruleset is not None:
        with ruleset:
            rep = ruleset.report
            if ruleset.fd >= 0:
                out.append(f"landlock {int(rep.handled_fs):x} {int(rep.handled_net):x} "
                           f"{int(rep.scopes):x} {int(ruleset.restrict_flags):x}")
                for rule in rep.rules:
                    out.append(f"path {int(rule.access):x} 0 {_hex(rule.path)}")
                for port in rep.ports:
                    out.append(f"port {int(port.access):x} {port.port:x}")

    if config.seccomp is not None:
        filt = seccomp.compile(config.seccomp)
        if filt.instructions:
            out.append(f"seccomp 0 {filt.bpf.hex()}")
    out.append("end")
    return "\n".join(out) + "\n"


def _cgroup_dirs(config: IsolationConfig, best_effort: bool) -> list[tuple[str, dict[str, str]]]:
    if config.resources is None or config.resources.is_empty():
        return []
    from . import cgroups

    return cgroups.plan_directories(config.resources, best_effort=best_effort)


def write_plan(config: IsolationConfig, path: str, *, best_effort: bool = False) -> None:
    """Write the plan for ``config`` to ``path`` (atomically)."""
    text = compile_plan(config, best_effort=best_effort)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def volt_init_path() -> str:
    """Where the volt-init executable of this installation is."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "volt-init")
    if not os.access(path, os.X_OK):
        raise PolicyError("volt-init", path, "is not built (reinstall the package)")
    return path


def init_main() -> None:
    """The ``volt-init`` console script: runs the C executable in place."""
    path = volt_init_path()
    os.execv(path, [path, *sys.argv[1:]])


def run_init(plan_path: str, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``volt-init plan_path -- argv`` (tests, benchmarks)."""
    return subprocess.run([volt_init_path(), plan_path, "--", *argv], **kwargs)
