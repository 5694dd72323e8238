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

import hashlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._core import lib
from ._paths import installed
from .compile import Compiled, Namespace, compile_config
from .errors import EnforcementError, PolicyError
from .model import IsolationConfig, ResourceLimits

if TYPE_CHECKING:
    from .cgroups import CgroupLayout, LimitPlan

__all__ = [
    "PLAN_VERSION",
    "CgroupDirectory",
    "CgroupWrite",
    "cgroup_directories",
    "compile_plan",
    "run_init",
    "volt_init_path",
    "write_plan",
]

PLAN_VERSION = 1


@dataclass(frozen=True)
class CgroupWrite:
    """A cgroup file write with choices: the first (file, value) whose file exists
    is written; when none exists volt-init fails, unless ``optional`` (best
    effort, or a value that is the kernel's default)."""

    choices: tuple[tuple[str, str], ...]
    optional: bool = False


#: A cgroup directory volt-init creates, writes and joins: (path, {file: value}).
#: A file may be an absolute path (the parent's cgroup.subtree_control on cgroup v2).
CgroupDirectory = tuple[str, Mapping[str, "str | CgroupWrite"]]

def _hex(text: str) -> str:
    return os.fsencode(text).hex()


def compile_plan(config: IsolationConfig | Compiled, *, best_effort: bool = False,
                 cgroup_dirs: Sequence[CgroupDirectory] | None = None,
                 contain: bool = True, netns: str | None = None,
                 unix_sockets: Sequence[str] | None = None, run: bool = False,
                 kernel_check: bool = False) -> str:
    """The plan text for ``config`` (or its ``Compiled``) on this kernel.

    ``cgroup_dirs`` is a list of (directory, {file: value}) the shim creates,
    writes and joins; by default ``cgroup_directories`` derives it from the
    compiled limit plan for this host's layout, named after a hash of the rest
    of the plan (so running one plan again reuses its cgroups). ``contain``
    False: no session, IPC/UTS namespaces or contained capability drops (as
    ``--no-contain``): then no filesystem view either.

    ``netns``: for a private network, the name of the network that
    ``volt-enforce net up NAME`` made and pinned; volt-init joins it (and binds
    its resolv.conf), since it can make and clean up none itself. ``unix_sockets``
    as for ``compile_config``.

    ``run``: a plan for ``volt-init run`` (which supervises a child): a contained
    config's PID namespace is in it (a ``pidns`` record, which plain volt-init
    refuses). ``kernel_check``: the plan names the Landlock ABI and errata it was
    compiled for, and volt-init refuses it on another kernel (the plan cache's plans).
    """
    if isinstance(config, Compiled):
        return _plan_text(config, cgroup_dirs, netns, run, kernel_check)
    with compile_config(config, best_effort=best_effort, contain=contain,
                        unix_sockets=unix_sockets) as compiled:
        return _plan_text(compiled, cgroup_dirs, netns, run, kernel_check)


def _network_lines(compiled: Compiled, netns: str | None,
                   resolv_bind: list[tuple[str, str]] | None = None) -> list[str]:
    """The plan's network records. ``resolv_bind``, when given (a filesystem view),
    gets the resolv.conf bind (source, target) instead of a ``resolv`` record: the
    view binds it, since the source is not inside the view."""
    if not compiled.private_network:
        if netns is not None:
            raise PolicyError("netns", netns, "names a pinned private network, but the config's "
                                              "network is not private")
        return []
    if netns is None:
        raise PolicyError("netns", None, "a private network for volt-init is made beforehand by "
                                         "'volt-enforce net up NAME': compile with --netns NAME")
    from .net import dns, lease, pin

    lines = [f"netns {_hex(pin.pin_path(netns))}"]
    network = compiled.config.network
    if network is not None and network.dns:
        src = pin.resolv_path(netns)
        # the flags of the mount that will hold the file (the run directory's, or /run's)
        where = next(p for p in (os.path.dirname(src), lease.RUN_DIR, "/run", "/")
                     if os.path.isdir(p))
        if resolv_bind is not None:
            resolv_bind.append((src, dns.bind_target()))
        else:
            lines.append(f"resolv {_hex(src)} {_hex(dns.bind_target())} "
                         f"{dns.mount_flags(where):x}")
    return lines


def _plan_text(compiled: Compiled, cgroup_dirs: Sequence[CgroupDirectory] | None,
               netns: str | None = None, run: bool = False, kernel_check: bool = False) -> str:
    from . import landlock

    head = [f"volt-plan {PLAN_VERSION}", f"nnp {1 if compiled.no_new_privs else 0}"]
    body: list[str] = []
    if kernel_check:
        body.append(f"kernel-landlock {landlock.kernel_abi():x} {landlock.errata():x}")
    if run and compiled.pid_namespace:
        body.append(f"pidns {compiled.memfd_noexec:x}")
    mask = compiled.capability_mask
    if mask is not None:
        body.append(f"caps {mask:x}")
    if compiled.new_session:
        body.append("session 1")
    resolv_bind: list[tuple[str, str]] = []
    body += _network_lines(compiled, netns, resolv_bind if compiled.view is not None else None)
    if compiled.unshare_flags:
        body.append(f"unshare {compiled.unshare_flags:x}")
    if Namespace.USER in compiled.namespaces:
        from .users import check_writable, plan_idmap

        ids = plan_idmap()
        # a plan carries no idmapped binds (the library's view makes those, with user
        # namespaces of their own): a writable directory of the policy that the plan's
        # root cannot write is refused here, naming it and the uid it needs
        check_writable(compiled.config, ids, compiled.capabilities)
        body.append(f"userns {ids.uid:x} {ids.gid:x} {ids.count:x}")

    tail: list[str] = []
    ruleset = compiled.ruleset
    if ruleset is not None and ruleset.fd >= 0:
        rep = ruleset.report
        # the restrict flags as the library passes them (logging, TSYNC, NO_NEW_PRIVS);
        # the quiet_* fields (ABI 10) only when one is set, so that older kernels take it
        quiet = (int(rep.quiet_access_fs), int(rep.quiet_access_net), int(rep.quiet_scoped))
        tail.append(f"landlock {int(rep.handled_fs):x} {int(rep.handled_net):x} "
                    f"{int(rep.scopes):x} {int(ruleset.restrict_flags):x}"
                    + ("".join(f" {q:x}" for q in quiet) if any(quiet) else ""))
        # directory rights are dropped again if a path is no longer a directory
        dir_only = int(landlock.DIR_ONLY_RIGHTS)
        for rule in rep.rules:
            flags = f" {lib.LANDLOCK_ADD_RULE_QUIET:x}" if rule.quiet else ""
            tail.append(f"path {int(rule.access):x} {dir_only:x} {_hex(rule.path)}{flags}")
        # one rule per port, its TCP and UDP rights together (BIND_UDP, CONNECT_SEND_UDP)
        for port in rep.ports:
            tail.append(f"port {int(port.access):x} {port.port:x}")

    if compiled.view is not None:  # the filesystem view, built and entered by volt-init
        from .view import plan_records

        view = compiled.view
        for src, dst in resolv_bind:
            view = view.with_file_bind(src, "/etc/resolv.conf" if view.rootfs != "/" else dst)
        tail += plan_records(view, ruleset, compiled.view_scopes)

    filt = compiled.seccomp
    if filt is not None and filt.instructions:
        # the profile's OCI flags (LOG, SPEC_ALLOW), as the library passes them
        tail.append(f"seccomp {int(filt.flags):x} {filt.bpf.hex()}")

    cg: list[str] = []
    if cgroup_dirs is None:
        cgroup_dirs = []
        if compiled.limits is not None:
            digest = hashlib.sha256("\n".join(body + tail).encode()
                                    + compiled.limits.limits.to_json().encode()).hexdigest()
            cgroup_dirs = cgroup_directories(compiled.limits, name=f"volt-init-{digest[:12]}",
                                             best_effort=compiled.best_effort)
    for directory, files in cgroup_dirs:
        cg.append(f"cgroup-dir {_hex(directory)}")
        for name, value in files.items():
            w = value if isinstance(value, CgroupWrite) else CgroupWrite(((name, value),))
            fields = " ".join(f"{_hex(os.path.join(directory, f))} {_hex(v)}"
                              for f, v in w.choices)
            cg.append(f"cgroup-{'try' if w.optional else 'set'} {fields}")
        cg.append(f"cgroup-join {_hex(directory)}")
    return "\n".join(head + body + cg + tail + ["end"]) + "\n"


def cgroup_directories(limits: ResourceLimits | LimitPlan, *, name: str, best_effort: bool = False,
                       layout: CgroupLayout | None = None) -> list[CgroupDirectory]:
    """The cgroup directories volt-init makes for ``limits`` (or their plan):
    ``name`` below this process's cgroup in each hierarchy that holds a needed
    controller, with the files and values to write, plus the cgroup2 one on
    hybrid hosts (placement only: it keeps the workload's cgroup2 membership
    beside the v1 ones).

    A limit whose controller this host lacks raises CompatibilityError, or is
    left out under ``best_effort``. cpuset.mems is the parent's, read now.
    """
    from .cgroups import LayoutKind, LimitPlan, base_dir, check_cpuset, plan_limits, read_text

    plan = limits if isinstance(limits, LimitPlan) else plan_limits(limits, layout)
    if plan.missing and not best_effort:
        raise plan.missing_error(plan.missing[0])
    by_mount: dict[int, tuple[Any, dict[str, str | CgroupWrite]]] = {}
    order: list[int] = []
    for w in plan.writes:
        mount = plan.mount_of(w)
        if id(mount) not in by_mount:
            by_mount[id(mount)] = (mount, {})
            order.append(id(mount))
        files = by_mount[id(mount)][1]
        value = w.value
        if w.file in ("cpuset.cpus", "cpuset.mems"):
            value = check_cpuset(w, base_dir(mount))
        assert value is not None
        if w.alternatives or w.is_default:
            # which file exists shows only in a child cgroup (the I/O scheduler's)
            files[w.file] = CgroupWrite(((w.file, value),) + tuple(w.alternatives),
                                        optional=w.is_default or best_effort)
        else:
            files[w.file] = value
    out: list[CgroupDirectory] = []
    for key in order:
        mount, files = by_mount[key]
        base = base_dir(mount)
        if mount.version == 2:
            ctrls = sorted({w.controller for w in plan.writes if w.version == 2})
            enabled = read_text(os.path.join(base, "cgroup.subtree_control")).split()
            missing = [c for c in ctrls if c not in enabled]
            if missing:
                files = {os.path.join(base, "cgroup.subtree_control"):
                         " ".join("+" + c for c in missing), **files}
        out.append((os.path.join(base, name), files))
    layout = plan.layout
    if layout.kind == LayoutKind.HYBRID and layout.v2 is not None and id(layout.v2) not in by_mount:
        try:
            out.append((os.path.join(base_dir(layout.v2), name), {}))
        except EnforcementError:
            if not best_effort:
                raise
    return out


def write_plan(config: IsolationConfig, path: str, *, best_effort: bool = False) -> None:
    """Write the plan for ``config`` to ``path`` by the rules of ``fileout``: a regular
    file is replaced atomically, a device or fifo is written through, never replaced."""
    from .fileout import write_text

    write_text(path, compile_plan(config, best_effort=best_effort))


def volt_init_path() -> str:
    """Where the volt-init executable of this installation is."""
    return installed("volt-init")


def run_init(plan_path: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """Run ``volt-init plan_path -- argv`` (tests, benchmarks)."""
    return subprocess.run([volt_init_path(), plan_path, "--", *argv], check=False, **kwargs)
