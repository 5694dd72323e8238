"""What this kernel and this process offer: ``volt_enforce.probe()``."""

from __future__ import annotations

import errno
import functools
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ._core import lib
from .landlock import features as _landlock_features, format_features, landlock_result

if TYPE_CHECKING:
    from .cgroups import CgroupLayout

__all__ = ["Probe", "probe", "landlock_abi", "landlock_result", "namespace_errno", "unshare_error"]

_SECCOMP_ACTIONS = {
    "kill_process": lib.SECCOMP_RET_KILL_PROCESS,
    "kill_thread": lib.SECCOMP_RET_KILL_THREAD,
    "trap": lib.SECCOMP_RET_TRAP,
    "errno": lib.SECCOMP_RET_ERRNO,
    "user_notif": lib.SECCOMP_RET_USER_NOTIF,
    "trace": lib.SECCOMP_RET_TRACE,
    "log": lib.SECCOMP_RET_LOG,
    "allow": lib.SECCOMP_RET_ALLOW,
}

def landlock_abi() -> int:
    """The Landlock ABI version of the running kernel; 0 when Landlock is absent
    or disabled."""
    return max(landlock_result(), 0)


@functools.cache
def namespace_errno(flags: int) -> int:
    """The errno of unshare(flags) in a short-lived child, probed once per process
    (spawns must not fork twice more); 0 when it works."""
    return -lib.ve_probe_unshare(flags)


def unshare_error(flags: int) -> str | None:
    """Why unshare(flags) fails in a short-lived child now, or None when it works
    (probed live, for ``probe()``)."""
    r = lib.ve_probe_unshare(flags)
    return None if r == 0 else os.strerror(-r)


@dataclass(frozen=True)
class Probe:
    """The result of ``probe()``. ``to_dict()`` gives the JSON form."""

    kernel: str
    machine: str
    landlock_abi: int
    landlock_errata: int
    landlock_status: str  # "enabled", "disabled at boot", "not built in"
    seccomp: bool
    seccomp_mode: int  # of this thread: 0 none, 1 strict, 2 filter
    seccomp_actions: tuple[str, ...]
    cgroups: CgroupLayout
    user_namespaces: bool
    user_namespaces_error: str | None
    network_namespaces: bool
    network_namespaces_error: str | None
    no_new_privs: bool
    euid: int
    threads: int = field(default=1)
    #: ``landlock.features()``: each Landlock feature, whether this kernel has it, and
    #: the ABI and Linux release that brought it (empty without Landlock).
    landlock_features: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seccomp_actions"] = list(self.seccomp_actions)
        d["cgroups"] = self.cgroups.to_dict()
        return d

    def format(self) -> str:
        """A few lines for people (``volt-enforce check``)."""
        ll = f"ABI {self.landlock_abi}" if self.landlock_abi else self.landlock_status
        if self.landlock_abi:
            ll += f", errata {self.landlock_errata:#x}"
        cg = self.cgroups
        lines = [
            f"kernel          {self.kernel} ({self.machine})",
            f"landlock        {ll}",
            *(f"  {ln}" for ln in (format_features(self.landlock_features)
                                   if self.landlock_features else ())),
            "seccomp         "
            + (f"filters; actions: {', '.join(self.seccomp_actions)}" if self.seccomp else "absent"),
            f"cgroups         {cg.kind}",
        ]
        if cg.v2 is not None:
            w = "writable" if cg.v2.current_writable else "read-only"
            lines.append(
                f"  cgroup2       {cg.v2.path}: {' '.join(cg.v2.controllers) or '(no controllers)'}"
                f"; current {cg.v2.current_path} ({w})"
            )
        for m in cg.v1:
            w = "writable" if m.current_writable else "read-only"
            lines.append(f"  v1 {','.join(m.controllers):<10} {m.path}; current {m.current_path} ({w})")
        lines += [
            "user namespaces " + ("yes" if self.user_namespaces else f"no ({self.user_namespaces_error})"),
            "net namespaces  "
            + ("yes" if self.network_namespaces else f"no ({self.network_namespaces_error})"),
            f"no_new_privs    {'set' if self.no_new_privs else 'not set'} on this process",
            f"euid            {self.euid}",
        ]
        return "\n".join(lines)


def probe() -> Probe:
    """Probe the running kernel and process. Takes a few hundred microseconds
    (two short-lived children test namespace creation)."""
    from .cgroups import detect

    abi = lib.ve_landlock_abi()  # live: the probe reports what the kernel says now
    if abi > 0:
        status = "enabled"
        errata = lib.ve_landlock_errata()
        errata = errata if errata >= 0 else 0
    else:
        status = {errno.EOPNOTSUPP: "disabled at boot", errno.ENOSYS: "not built in"}.get(
            -abi, os.strerror(-abi)
        )
        abi, errata = 0, 0
    actions = tuple(name for name, act in _SECCOMP_ACTIONS.items()
                    if lib.ve_seccomp_action_avail(act) == 0)
    mode = lib.ve_seccomp_mode()
    userns_err = unshare_error(lib.CLONE_NEWUSER)
    netns_err = unshare_error(lib.CLONE_NEWNET)
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        threads = 1
    uname = platform.uname()
    return Probe(
        kernel=uname.release,
        machine=uname.machine,
        landlock_abi=abi,
        landlock_errata=errata,
        landlock_status=status,
        seccomp="allow" in actions,
        seccomp_mode=max(mode, 0),
        seccomp_actions=actions,
        cgroups=detect(),
        user_namespaces=userns_err is None,
        user_namespaces_error=userns_err,
        network_namespaces=netns_err is None,
        network_namespaces_error=netns_err,
        no_new_privs=lib.ve_no_new_privs() == 1,
        euid=os.geteuid(),
        threads=threads,
        landlock_features=_landlock_features() if abi > 0 else {},
    )
