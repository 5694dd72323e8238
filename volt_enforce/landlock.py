"""Landlock: a policy compiled once in the parent, applied in a child with one C call.

``compile(policy)`` validates the policy, masks it to the running kernel's
Landlock ABI, opens every rule path (``O_PATH|O_CLOEXEC``) and builds the
kernel ruleset. The result, a ``CompiledRuleset``, owns the ruleset fd (the
kernel creates it close-on-exec) and stays valid across any number of forked
children; in each child ``restrict_self()`` is one C call, with no allocation,
that sets ``no_new_privs`` and enforces the ruleset on the calling thread.
``compile_for(config)`` derives the same from an ``IsolationConfig``
(``Landlock``, ``ReadOnlyFS`` and the network mode).

What a policy means
-------------------
* A policy handles every filesystem right the ABI has: what no rule grants is
  denied. Rights that apply only to directories (READ_DIR, REMOVE_*, MAKE_*,
  REFER) are taken off rules whose path is not a directory; the report says so.
* ``bind_tcp``/``connect_tcp``: None leaves that TCP action alone; a list
  (even empty) allows it only on those ports. Landlock controls TCP bind and
  connect only (not UDP, not listen or accept); port 0 in ``bind_tcp`` allows
  binding to an ephemeral port. Network mode ``none`` denies both (unless the
  policy names ports); port forwards of a ``private`` network allow bind on
  their container ports.
* ``scopes`` (ABI 6) are set on the ruleset itself (its ``scoped`` attribute):
  the sandbox may not connect to abstract UNIX sockets created, or send signals
  to processes running, outside its own Landlock domain and the domains nested
  in it. A datagram ``sendto`` counts as a connect. No rule can make an exception.
* ``logging`` (ABI 7) is not part of the ruleset: the flags are passed to
  ``landlock_restrict_self(2)`` (``CompiledRuleset.restrict_flags``) and matter
  only when audit is enabled. Earlier kernels refuse any flag with EINVAL, so
  they are masked to the ABI. LOG_SUBDOMAINS_OFF alone may be applied with
  ruleset fd -1 (nothing else handled); the other flags need a ruleset.
* ``read_only`` (the seed's ReadOnlyFS): every write right (WRITE_FILE,
  TRUNCATE, REMOVE_*, MAKE_*, REFER) is handled and granted nowhere, except
  WRITE_FILE on the runtime device nodes below, which stay writable as they do
  on a read-only mount. Without a policy only the write rights are handled, so
  reads stay free.

Runtime rules
-------------
Added when ``policy.runtime`` is true (the default), and with ``read_only``
without a policy, so that ``sh -c``, coreutils and ``python3 -c`` run under
``server_policy("/")``. Each is skipped, and reported, where the host lacks it:

* ``/dev/null``, ``/dev/zero``, ``/dev/full``, ``/dev/random``,
  ``/dev/urandom``: READ_FILE | WRITE_FILE.
* ``/dev/tty``: READ_FILE | WRITE_FILE | IOCTL_DEV (terminal control of the
  controlling terminal).
* ``/proc``: READ_FILE | READ_DIR. A rule on ``/proc/self`` cannot work: the
  path is resolved when the rule is added, in the parent, and would name the
  parent's ``/proc/<pid>``. Reading ``/proc/<pid>`` of processes outside the
  domain is still limited by Landlock's ptrace restrictions, and reopening
  ``/proc/self/fd/N`` is checked against the file it points to, so it never
  reaches beyond the rules.

Not included: ``/sys``, ``/dev/shm``, ``/dev/pts``; add rules for them when a
workload needs them.

Compatibility (as rust-landlock defines it)
-------------------------------------------
* BEST_EFFORT: drop what the kernel lacks, enforce the rest, report each drop
  with its reason ("TRUNCATE needs ABI 3, kernel has 2").
* SOFT_REQUIREMENT: raise ``CompatibilityError`` when Landlock exists but
  lacks a requested feature; without Landlock at all, return a ruleset with
  fd -1 and status "none" (the child runs unrestricted, and the report says so).
* HARD_REQUIREMENT: raise in both cases.
* FACILITY_REQUIREMENT: raise without Landlock at all; where it exists, drop
  what it lacks as BEST_EFFORT does.

On ABI 1 a cross-directory rename or link is always denied (the kernel
predates REFER), so not handling REFER there is no loss unless a rule grants it.

Errata (``errata()``, bit N-1 set when erratum N is fixed in the running kernel)
-------------------------------------------------------------------------------
* Erratum 1 (ABI 4, TCP socket identification): without the fix, TCP rights
  also restrict other IPv4/IPv6 stream protocols (MPTCP, SCTP, SMC).
* Erratum 2 (ABI 6, scoped signal handling): without the fix, a thread scoped
  for SIGNAL cannot signal threads of its own process that are in another
  domain (``restrict_self`` restricts only the calling thread).
* Erratum 3 (ABI 1, disconnected directories): without the fix, a directory
  moved out of a bind mount could widen rights through rename or link.

The report lists an unfixed erratum in ``notes`` when the policy uses the
feature it affects.
"""

from __future__ import annotations

import errno as _errno
import functools
import os
import stat
from dataclasses import dataclass, field
from enum import Enum, IntFlag
from typing import Any

from ._core import ffi, lib
from .errors import CompatibilityError, EnforcementError, PolicyError
from .model import (
    Compatibility,
    IsolationConfig,
    LandlockAccess,
    LandlockLogging,
    LandlockNetAccess,
    LandlockPolicy,
    LandlockScope,
    MissingPaths,
    NetworkMode,
    flag_value,
)

__all__ = [
    "LandlockNetAccess",
    "RestrictFlag",
    "LandlockStatus",
    "ABI_LINUX",
    "FILE_RIGHTS",
    "DIR_ONLY_RIGHTS",
    "WRITE_RIGHTS",
    "RUNTIME_RULES",
    "ERRATA",
    "kernel_abi",
    "errata",
    "tsync_supported",
    "no_new_privs_flag_supported",
    "features",
    "format_features",
    "effective_abi",
    "fs_rights_for_abi",
    "RuleReport",
    "PortReport",
    "SkippedRule",
    "Dropped",
    "LandlockReport",
    "CompiledRuleset",
    "compile",
    "compile_for",
]


class RestrictFlag(IntFlag):
    """Flags of landlock_restrict_self(2): the logging ones (ABI 7, as LandlockLogging),
    TSYNC (ABI 8: every thread of the process) and NO_NEW_PRIVS (ABI 11: the kernel
    sets no_new_privs iff the restriction succeeds, instead of a prctl before it)."""

    SAME_EXEC_OFF = lib.LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF
    NEW_EXEC_ON = lib.LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
    SUBDOMAINS_OFF = lib.LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF
    TSYNC = lib.LANDLOCK_RESTRICT_SELF_TSYNC
    NO_NEW_PRIVS = lib.LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS


_A = LandlockAccess
_N = LandlockNetAccess

#: The Linux release that brought each Landlock ABI version.
#: 8 (TSYNC) came with 7.0 and 9 (RESOLVE_UNIX) with 7.1; 10 is what Debian's 7.2.13
#: reports, 11 what experimental's 7.3-rc7 reports (the kernel matrix boots both).
ABI_LINUX: dict[int, str] = {1: "5.13", 2: "5.19", 3: "6.2", 4: "6.7", 5: "6.10", 6: "6.12",
                             7: "6.15", 8: "7.0", 9: "7.1", 10: "7.2", 11: "7.3"}

_ALL_FS = int(_A.all()) | int(_A.RESOLVE_UNIX)
_TCP = int(_N.BIND_TCP | _N.CONNECT_TCP)
_UDP = int(_N.BIND_UDP | _N.CONNECT_SEND_UDP)
_ALL_NET = _TCP | _UDP
_ALL_SCOPES = int(LandlockScope.ABSTRACT_UNIX_SOCKET | LandlockScope.SIGNAL)
_ALL_LOGGING = int(LandlockLogging.SAME_EXEC_OFF | LandlockLogging.NEW_EXEC_ON
                   | LandlockLogging.SUBDOMAINS_OFF)

#: Rights that apply to a file itself; every other right applies only to directories.
FILE_RIGHTS = (_A.EXECUTE | _A.WRITE_FILE | _A.READ_FILE | _A.TRUNCATE | _A.IOCTL_DEV
               | _A.RESOLVE_UNIX)
#: Rights the kernel refuses (EINVAL) on a rule whose path is not a directory.
DIR_ONLY_RIGHTS = _A(_ALL_FS & ~int(FILE_RIGHTS))
#: Rights that change the filesystem: none of them is granted under ReadOnlyFS.
WRITE_RIGHTS = (_A.WRITE_FILE | _A.TRUNCATE | _A.REMOVE_DIR | _A.REMOVE_FILE | _A.MAKE_CHAR
                | _A.MAKE_DIR | _A.MAKE_REG | _A.MAKE_SOCK | _A.MAKE_FIFO | _A.MAKE_BLOCK
                | _A.MAKE_SYM | _A.REFER)

# The ABI each right or flag first appeared in (rights not listed: ABI 1).
_FS_ABI = {int(_A.REFER): 2, int(_A.TRUNCATE): 3, int(_A.IOCTL_DEV): 5,
           int(_A.RESOLVE_UNIX): 9}
_NET_ABI = 4
_SCOPE_ABI = 6
_LOGGING_ABI = 7
_TSYNC_ABI = 8
_UDP_ABI = 10
_QUIET_ABI = 10
_NNP_ABI = 11
_RESOLVE_UNIX = int(_A.RESOLVE_UNIX)

_DEV_RW = _A.READ_FILE | _A.WRITE_FILE
#: The runtime rules (see the module docstring): path, rights.
RUNTIME_RULES: tuple[tuple[str, LandlockAccess], ...] = (
    ("/dev/null", _DEV_RW),
    ("/dev/zero", _DEV_RW),
    ("/dev/full", _DEV_RW),
    ("/dev/random", _DEV_RW),
    ("/dev/urandom", _DEV_RW),
    ("/dev/tty", _DEV_RW | _A.IOCTL_DEV),
    ("/proc", _A.READ_FILE | _A.READ_DIR),
)

#: Landlock errata: number -> (ABI it applies to, what goes wrong without the fix).
ERRATA: dict[int, tuple[int, str]] = {
    1: (4, "TCP rights also restrict other IPv4/IPv6 stream protocols (MPTCP, SCTP, SMC)"),
    2: (6, "a thread scoped for SIGNAL cannot signal threads of its own process that are in"
           " another Landlock domain"),
    3: (1, "a directory moved out of a bind mount can widen rights through rename or link"),
}


# ── the running kernel ───────────────────────────────────────────────────────

_errata_raw: int | None = None


@functools.cache
def landlock_result() -> int:
    """The kernel's answer to the Landlock ABI query, once per process (it does
    not change while we run): the ABI version, or -errno (ENOSYS: not built in,
    EOPNOTSUPP: disabled at boot). ``volt_enforce.kernel`` re-exports it."""
    return lib.ve_landlock_abi()


def _kernel_result() -> int:
    return landlock_result()


def kernel_abi() -> int:
    """The running kernel's Landlock ABI; 0 when Landlock is absent or disabled."""
    return max(_kernel_result(), 0)


def _absent_reason() -> str:
    err = -_kernel_result()
    if err == _errno.ENOSYS:
        return "Landlock is not built into this kernel (CONFIG_SECURITY_LANDLOCK)"
    if err == _errno.EOPNOTSUPP:
        return "Landlock is disabled at boot (add landlock to the lsm= kernel parameter)"
    return f"Landlock is unavailable ({os.strerror(err)})"


def errata() -> int:
    """Bitmask of Landlock errata fixed in the running kernel (bit N-1 for erratum N);
    0 before Linux 6.15, which added the query."""
    global _errata_raw
    if _errata_raw is None:
        _errata_raw = max(lib.ve_landlock_errata(), 0) if kernel_abi() else 0
    return _errata_raw


_probed: dict[str, bool] = {}


def _probe_restrict(name: str, need: int, flags: int, with_ruleset: bool) -> bool:
    if name not in _probed:
        _probed[name] = (kernel_abi() >= need
                         and lib.ve_landlock_probe_restrict(flags, int(with_ruleset)) == 0)
    return _probed[name]


def tsync_supported() -> bool:
    """Whether the kernel takes LANDLOCK_RESTRICT_SELF_TSYNC (ABI 8: the domain applies to
    every thread). Probed once, in a forked child, with ruleset fd -1 and
    LOG_SUBDOMAINS_OFF (which kernels with a mature TSYNC accept), not read off the ABI."""
    return _probe_restrict("tsync", _TSYNC_ABI, int(RestrictFlag.TSYNC | RestrictFlag.SUBDOMAINS_OFF),
                           False)


def no_new_privs_flag_supported() -> bool:
    """Whether the kernel takes LANDLOCK_RESTRICT_SELF_NO_NEW_PRIVS (ABI 11) and then sets
    no_new_privs itself; probed once in a forked child on an empty ruleset."""
    return _probe_restrict("no_new_privs", _NNP_ABI, int(RestrictFlag.NO_NEW_PRIVS), True)


def features(abi: int | None = None) -> dict[str, dict[str, Any]]:
    """What the running kernel's Landlock offers, by feature (for ``check`` and
    ``explain``): name -> {"available", "abi" (the ABI that brought it), "linux" (its
    release, when known), "how" (what it is)}. ``abi`` caps as in compile()."""
    n = effective_abi(abi)
    table: list[tuple[str, int, str, bool | None]] = [
        ("landlock", 1, "filesystem rules", None),
        ("REFER", 2, "rename and link across directories", None),
        ("TRUNCATE", 3, "truncate", None),
        ("TCP", _NET_ABI, "BIND_TCP, CONNECT_TCP port rules", None),
        ("IOCTL_DEV", 5, "ioctl on devices", None),
        ("SCOPES", _SCOPE_ABI, "abstract UNIX sockets and signals scoped", None),
        ("LOGGING", _LOGGING_ABI, "audit logging flags of landlock_restrict_self", None),
        ("TSYNC", _TSYNC_ABI, "restrict every thread of the process",
         tsync_supported() if n >= _TSYNC_ABI else False),
        ("RESOLVE_UNIX", 9, "connect/sendmsg to pathname UNIX sockets", None),
        ("UDP", _UDP_ABI, "BIND_UDP, CONNECT_SEND_UDP port rules", None),
        ("QUIET", _QUIET_ABI, "quiet rules and quiet_* ruleset fields", None),
        ("NO_NEW_PRIVS", _NNP_ABI, "no_new_privs set by landlock_restrict_self",
         no_new_privs_flag_supported() if n >= _NNP_ABI else False),
    ]
    out: dict[str, dict[str, Any]] = {}
    for name, need, how, probed in table:
        out[name] = {"available": n >= need if probed is None else probed, "abi": need,
                     "linux": ABI_LINUX.get(need), "how": how}
    return out


def format_features(table: dict[str, dict[str, Any]]) -> list[str]:
    """``features()`` as two lines for people: what the kernel has, and what it lacks
    with the ABI and Linux release that bring it."""
    has = [name for name, f in table.items() if f["available"] and name != "landlock"]
    lacks = [f"{name} (ABI {f['abi']}" + (f", Linux {f['linux']})" if f["linux"] else ")")
             for name, f in table.items() if not f["available"]]
    return [f"has    {', '.join(has) or 'nothing beyond ABI 1'}",
            f"lacks  {', '.join(lacks) or 'nothing this library knows'}"]


def _check_abi(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(name, value, "is not a Landlock ABI version (an integer >= 0)")
    return value


def effective_abi(abi: int | None = None) -> int:
    """The ABI compile() uses: the kernel's, capped by ``abi``."""
    n = kernel_abi()
    if abi is not None:
        n = min(n, _check_abi("abi", abi))
    return n


def fs_rights_for_abi(abi: int) -> LandlockAccess:
    """The filesystem rights an ABI version knows."""
    v = 0
    for name in _names(_A, _ALL_FS):
        bit = int(_A.__members__[name])
        if _FS_ABI.get(bit, 1) <= abi:
            v |= bit
    return _A(v)


def _names(flag_cls: type[IntFlag], value: int) -> list[str]:
    return [m.name for m in flag_cls
            if m.name is not None and m.value & value and m.value & (m.value - 1) == 0]


def _lower(flag_cls: type[IntFlag], value: int) -> list[str]:
    return [n.lower() for n in _names(flag_cls, value)]


def _join(flag_cls: type[IntFlag], value: int) -> str:
    return "|".join(_names(flag_cls, value)) or "none"


# ── the report ───────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class RuleReport:
    """A path rule as added to the ruleset."""

    path: str
    access: LandlockAccess
    kind: str  # "directory", "file", "device" or "other" (what the path resolved to)
    source: str  # "policy", "preset", "runtime" or "unix_socket"
    quiet: bool = False  # added with LANDLOCK_ADD_RULE_QUIET

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "access": _lower(_A, self.access),
                             "kind": self.kind, "source": self.source}
        if self.quiet:
            d["quiet"] = True
        return d


@dataclass(frozen=True)
class PortReport:
    """A TCP or UDP port rule as added to the ruleset."""

    port: int
    access: LandlockNetAccess

    def to_dict(self) -> dict[str, Any]:
        return {"port": self.port, "access": _lower(_N, self.access)}


@dataclass(frozen=True)
class SkippedRule:
    """A path rule that was not added, and why."""

    path: str
    reason: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "source": self.source}


@dataclass(frozen=True)
class Dropped:
    """Something requested that is not enforced as asked.

    ``kind``: "fs", "net", "scope", "logging", "restrict" (TSYNC, NO_NEW_PRIVS) or
    "quiet" (the kernel lacks it), "port"
    (a port rule the kernel cannot take), "rule" (rights taken off one rule,
    ``path`` names it). ``weakens``: whether the sandbox allows more than asked
    (False when only a grant or an option was lost).
    """

    kind: str
    name: str
    reason: str
    path: str | None = None
    port: int | None = None
    weakens: bool = True
    abi: int | None = None  # the ABI that has it, when the kernel's ABI is the reason

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "name": self.name, "reason": self.reason,
                             "weakens": self.weakens}
        for key in ("path", "port", "abi"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d


class LandlockStatus(str, Enum):
    """How much of a requested Landlock policy the kernel enforces (a str, so that
    ``status == "full"`` and the JSON report keep their values)."""

    FULL = "full"  # everything requested is enforced, perhaps more strictly
    PARTIAL = "partial"  # a restriction was dropped for the running kernel
    NONE = "none"  # nothing is enforced

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class LandlockReport:
    """What a compiled ruleset enforces (``CompiledRuleset.report``).

    ``status``: "full" (everything requested is enforced, perhaps more strictly),
    "partial" (a restriction was dropped for the running kernel: see ``dropped``)
    or "none" (nothing is enforced).
    """

    status: LandlockStatus
    abi: int
    kernel_abi: int
    errata: int
    compatibility: str
    handled_fs: LandlockAccess
    handled_net: LandlockNetAccess
    scopes: LandlockScope
    restrict_flags: RestrictFlag
    rules: tuple[RuleReport, ...] = ()
    ports: tuple[PortReport, ...] = ()
    skipped: tuple[SkippedRule, ...] = ()
    dropped: tuple[Dropped, ...] = ()
    notes: tuple[str, ...] = ()
    #: what enforcement adds on its own (RESOLVE_UNIX) and the kernel lacks: dropped
    #: whatever the compatibility level, and not counted in ``status``
    best_effort: tuple[Dropped, ...] = ()
    quiet_access_fs: LandlockAccess = _A(0)
    quiet_access_net: LandlockNetAccess = _N(0)
    quiet_scoped: LandlockScope = LandlockScope(0)

    @property
    def enforced(self) -> bool:
        return self.status is not LandlockStatus.NONE

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "abi": self.abi,
            "kernel_abi": self.kernel_abi,
            "errata": self.errata,
            "compatibility": self.compatibility,
            "handled_fs": _lower(_A, self.handled_fs),
            "handled_net": _lower(_N, self.handled_net),
            "scopes": _lower(LandlockScope, self.scopes),
            "restrict_flags": _lower(RestrictFlag, self.restrict_flags),
            "quiet_access_fs": _lower(_A, self.quiet_access_fs),
            "quiet_access_net": _lower(_N, self.quiet_access_net),
            "quiet_scoped": _lower(LandlockScope, self.quiet_scoped),
            "rules": [r.to_dict() for r in self.rules],
            "ports": [p.to_dict() for p in self.ports],
            "skipped": [s.to_dict() for s in self.skipped],
            "dropped": [d.to_dict() for d in self.dropped],
            "best_effort_dropped": [d.to_dict() for d in self.best_effort],
            "notes": list(self.notes),
        }

    def format(self) -> str:
        """A few lines for people."""
        lines = [f"landlock {self.status} (ABI {self.abi}, kernel ABI {self.kernel_abi},"
                 f" {self.compatibility})"]
        if self.handled_fs:
            lines.append(f"  handled fs: {_join(_A, self.handled_fs)}")
        if self.handled_net:
            lines.append(f"  handled net: {_join(_N, self.handled_net)}")
        if self.scopes:
            lines.append(f"  scopes: {_join(LandlockScope, self.scopes)}")
        if self.restrict_flags:
            lines.append(f"  restrict flags: {_join(RestrictFlag, self.restrict_flags)}")
        for label, cls, value in (("fs", _A, self.quiet_access_fs), ("net", _N, self.quiet_access_net),
                                  ("scopes", LandlockScope, self.quiet_scoped)):
            if value:
                lines.append(f"  quiet {label}: {_join(cls, value)}")
        lines += [f"  allow {r.path}: {_join(_A, r.access)}" + (" (quiet)" if r.quiet else "")
                  for r in self.rules]
        lines += [f"  allow {_proto(p.access)} {p.port}: {_join(_N, p.access)}" for p in self.ports]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped]
        lines += [f"  dropped {d.kind} {d.name}"
                  + (f" ({d.path})" if d.path else "") + f": {d.reason}" for d in self.dropped]
        lines += [f"  dropped (best effort) {d.kind} {d.name}: {d.reason}" for d in self.best_effort]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _proto(access: int) -> str:
    tcp, udp = bool(access & _TCP), bool(access & _UDP)
    return "tcp/udp" if tcp and udp else "udp" if udp else "tcp"


# ── the compiled ruleset ─────────────────────────────────────────────────────


class CompiledRuleset:
    """A Landlock ruleset built once in the parent; ``restrict_self()`` in each child.

    Owns its fd (close-on-exec): valid across any number of forked children
    until ``close()`` (or the end of a ``with`` block). ``fd`` is -1 when
    nothing is enforced (Landlock absent under best effort, or nothing asked).
    """

    __slots__ = ("_fd", "_closed", "_restrict", "restrict_flags", "abi", "report",
                 "compatibility")

    def __init__(self, fd: int, restrict_flags: int, abi: int, report: LandlockReport) -> None:
        self._fd = fd
        self._closed = False
        # bound once, so the child's restrict_self() looks nothing up
        self._restrict = lib.ve_landlock_restrict_self
        #: Flags for landlock_restrict_self(2): the logging flags the ABI has, TSYNC
        #: when compiled with all_threads, NO_NEW_PRIVS where the kernel has it (then
        #: ve_landlock_restrict_self makes no prctl: the kernel sets no_new_privs).
        self.restrict_flags = int(restrict_flags)
        self.compatibility = Compatibility(report.compatibility)
        #: The ABI the ruleset was built for.
        self.abi = abi
        #: What is enforced, and what was dropped or skipped and why.
        self.report = report

    @property
    def fd(self) -> int:
        """The ruleset fd, -1 when nothing is enforced or once closed."""
        return self._fd

    @property
    def closed(self) -> bool:
        return self._closed

    def restrict_self(self, *, no_new_privs: bool = True) -> LandlockReport:
        """Set no_new_privs (unless told not to) and enforce the ruleset on the
        calling thread: one C call, no allocation, fit for a child between fork
        and exec (``preexec_fn``). Returns the report. Landlock restricts only
        the calling thread and what it starts; other threads stay unrestricted.
        From ``preexec_fn`` most of the child's time goes to running Python
        after fork; a C spawn path calls ``ve_landlock_restrict_self(fd,
        restrict_flags, 1)`` directly."""
        if self._closed:
            raise ValueError("restrict_self() on a closed CompiledRuleset")
        # the C function skips its prctl when NO_NEW_PRIVS is among the flags
        rc = self._restrict(self._fd, self.restrict_flags, no_new_privs)
        if rc < 0:
            raise EnforcementError(-rc, "landlock_restrict_self", f"ruleset fd {self._fd}")
        return self.report

    def restrict_flags_for(self, *, all_threads: bool | None = None,
                           no_new_privs: bool = True) -> int:
        """The flags to pass ``ve_landlock_restrict_self(fd, flags, no_new_privs)``.

        ``all_threads``: None keeps what compile() decided; True adds TSYNC (every
        thread of the process: for apply_self in a threaded program), where the kernel
        takes it: else it is left out under best effort and CompatibilityError is
        raised under a requirement; False takes TSYNC out. ``no_new_privs`` False
        takes NO_NEW_PRIVS out (nothing then sets no_new_privs)."""
        flags = self.restrict_flags
        if all_threads is False:
            flags &= ~int(RestrictFlag.TSYNC)
        elif all_threads and not flags & int(RestrictFlag.TSYNC):
            if self.abi >= _TSYNC_ABI and tsync_supported():
                flags |= int(RestrictFlag.TSYNC)
            elif self.compatibility != Compatibility.BEST_EFFORT:
                raise CompatibilityError("TSYNC", _tsync_reason(self.abi, kernel_abi()))
        if not no_new_privs:
            flags &= ~int(RestrictFlag.NO_NEW_PRIVS)
        return flags

    def tsync_for_threads(self) -> tuple[int | None, str]:
        """For a process with other threads (``apply_self``): the restrict flags with
        TSYNC added, so that the domain reaches every thread, and ""; or None and why
        not, where this ruleset's ABI or the kernel lacks TSYNC (probed, not read off
        the ABI: ``tsync_supported``)."""
        if self.abi >= _TSYNC_ABI and tsync_supported():
            return self.restrict_flags | int(RestrictFlag.TSYNC), ""
        return None, _tsync_reason(self.abi, kernel_abi())

    def close(self) -> None:
        """Close the ruleset fd; children already restricted stay restricted."""
        if self._closed:
            return
        self._closed = True
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> CompiledRuleset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # never raise from a finalizer (the fd, or os at exit, is gone)
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        return f"<CompiledRuleset {state} abi={self.abi} status={self.report.status}>"


# ── planning: what to ask the kernel for (pure, no system calls) ─────────────


@dataclass
class _PathRule:
    path: str
    access: int
    source: str  # "policy", "preset", "runtime", "unix_socket"
    skip_missing: bool
    field: str  # for errors: "Landlock.Rules[3].Path"
    requested: int = 0  # the rights the policy gave, before read_only removed any
    quiet: bool = False

    def __post_init__(self) -> None:
        self.requested = self.requested or self.access


@dataclass
class _Request:
    """Everything asked for, before the kernel's ABI is considered."""

    handled_fs: int = 0
    rules: list[_PathRule] = field(default_factory=list)
    bind_tcp: list[int] | None = None
    connect_tcp: list[int] | None = None
    scopes: int = 0
    logging: int = 0
    compatibility: Compatibility = Compatibility.BEST_EFFORT
    read_only: bool = False
    bind_udp: list[int] | None = None
    connect_udp: list[int] | None = None
    quiet_fs: int = 0
    quiet_net: int = 0
    quiet_scoped: int = 0
    #: RESOLVE_UNIX handled at enforcement, best effort (not asked for by the policy)
    implicit_fs: int = 0
    all_threads: bool = False  # TSYNC asked for
    no_new_privs_flag: bool | None = None  # None: where the kernel has it


@dataclass
class _Plan:
    abi: int
    kernel_abi: int
    compatibility: Compatibility
    handled_fs: int = 0
    handled_net: int = 0
    scopes: int = 0
    restrict_flags: int = 0
    quiet_fs: int = 0
    quiet_net: int = 0
    quiet_scoped: int = 0
    rules: list[_PathRule] = field(default_factory=list)
    ports: dict[int, int] = field(default_factory=dict)
    skipped: list[SkippedRule] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    #: drops of what was added at enforcement (best effort whatever the level)
    best_effort: list[Dropped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    absent: str | None = None  # why Landlock cannot be used at all

    @property
    def enforces(self) -> bool:
        return bool(self.handled_fs or self.handled_net or self.scopes or self.restrict_flags)


def _check_unix_sockets(unix_sockets: Any) -> list[str]:
    if unix_sockets is None:
        return []
    if isinstance(unix_sockets, (str, bytes)) or not isinstance(unix_sockets, (list, tuple)):
        raise PolicyError("unix_sockets", unix_sockets, "is not a list of paths")
    for i, path in enumerate(unix_sockets):
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            raise PolicyError(f"unix_sockets[{i}]", path, "is not an absolute path")
    return list(unix_sockets)


def _request(policy: LandlockPolicy | None, read_only: bool,
             unix_sockets: list[str] | None = None) -> _Request:
    req = _Request(read_only=read_only)
    runtime = True
    if policy is not None:
        # RESOLVE_UNIX is not asked for by the policy's JSON: handled at enforcement,
        # best effort, and granted wherever WRITE_FILE is (below)
        req.handled_fs = int(_A.all())
        req.implicit_fs = _RESOLVE_UNIX
        for i, rule in enumerate(policy.rules):
            source = "preset" if rule.preset else "policy"
            skip = rule.preset or rule.optional or policy.missing_paths == MissingPaths.SKIP
            req.rules.append(_PathRule(rule.path, int(rule.access), source, skip,
                                       f"Landlock.Rules[{i}].Path", quiet=rule.quiet))
            if int(rule.access) & _RESOLVE_UNIX:
                req.handled_fs |= _RESOLVE_UNIX  # granted by name: asked for
        req.bind_tcp = None if policy.bind_tcp is None else list(policy.bind_tcp)
        req.connect_tcp = None if policy.connect_tcp is None else list(policy.connect_tcp)
        req.bind_udp = None if policy.bind_udp is None else list(policy.bind_udp)
        req.connect_udp = None if policy.connect_udp is None else list(policy.connect_udp)
        req.quiet_fs = flag_value(policy.quiet_access_fs)
        req.quiet_net = flag_value(policy.quiet_access_net)
        req.quiet_scoped = flag_value(policy.quiet_scoped)
        req.scopes = flag_value(policy.scopes)
        req.logging = flag_value(policy.logging)
        req.compatibility = policy.effective_compatibility
        runtime = policy.runtime
    for i, path in enumerate(unix_sockets or ()):
        # an explicit grant: RESOLVE_UNIX is then asked for, at the policy's level
        req.handled_fs |= _RESOLVE_UNIX
        req.rules.append(_PathRule(path, _RESOLVE_UNIX, "unix_socket", False,
                                   f"unix_sockets[{i}]"))
    if req.handled_fs & _RESOLVE_UNIX:
        req.implicit_fs = 0
    if read_only:
        req.handled_fs |= int(WRITE_RIGHTS)
        for r in req.rules:
            r.access &= ~int(WRITE_RIGHTS)
    for r in req.rules:
        # what may be written to may be connected to (after ReadOnlyFS: it follows WRITE_FILE)
        if r.source in ("policy", "preset") and r.access & int(_A.WRITE_FILE):
            r.access |= _RESOLVE_UNIX
    if runtime and req.handled_fs:
        for path, access in RUNTIME_RULES:
            a = int(access)
            if read_only:
                # device nodes stay writable, as on a read-only mount
                a &= ~int(WRITE_RIGHTS) | int(_A.WRITE_FILE)
            req.rules.append(_PathRule(path, a, "runtime", True, path))
    return req


def _needs(name: str, need: int, abi: int, kernel: int) -> str:
    has = f"kernel has {abi}" if abi == kernel else f"kernel has {abi} (capped from {kernel})"
    return f"{name} needs ABI {need}, {has}"


def _want_net(req: _Request) -> int:
    return ((int(_N.BIND_TCP) if req.bind_tcp is not None else 0)
            | (int(_N.CONNECT_TCP) if req.connect_tcp is not None else 0)
            | (int(_N.BIND_UDP) if req.bind_udp is not None else 0)
            | (int(_N.CONNECT_SEND_UDP) if req.connect_udp is not None else 0))


def _tsync_reason(abi: int, kernel: int) -> str:
    if abi < _TSYNC_ABI:
        return _needs("TSYNC", _TSYNC_ABI, abi, kernel) + ": other threads stay unrestricted"
    return "the kernel refuses LANDLOCK_RESTRICT_SELF_TSYNC: other threads stay unrestricted"


def _plan(req: _Request, abi: int, kernel: int, errata_mask: int = 0,
          absent: str | None = None, probes: dict[str, bool] | None = None) -> _Plan:
    """Mask a request to an ABI. Raises CompatibilityError as the request's
    compatibility level says; otherwise records every drop. ``probes``: what the
    kernel was found to take ("tsync", "no_new_privs"); by default what the ABI says."""
    plan = _Plan(abi=abi, kernel_abi=kernel, compatibility=req.compatibility)
    if probes is None:
        probes = {"tsync": abi >= _TSYNC_ABI, "no_new_privs": abi >= _NNP_ABI}
    if not (req.handled_fs or _want_net(req) or req.scopes or req.logging or req.all_threads):
        plan.notes.append("nothing to enforce")
        return plan
    if abi == 0:
        _plan_absent(plan, req, absent or _absent_reason())
        return plan
    _mask_fs(plan, req)
    _mask_net(plan, req)
    _mask_scopes_and_logging(plan, req)
    _mask_quiet(plan, req)
    _mask_rules(plan, req)
    _mask_restrict(plan, req, probes)
    _errata_notes(plan, errata_mask)
    # oldest missing feature first: the one an error names
    plan.dropped.sort(key=lambda d: d.abi or 0)
    if plan.dropped and not req.compatibility.drops_parts:
        first = plan.dropped[0]
        detail = first.reason
        if first.abi in ABI_LINUX:
            detail += f" (ABI {first.abi} came with Linux {ABI_LINUX[first.abi]})"
        more = "; ".join(d.reason for d in plan.dropped[1:])
        raise CompatibilityError(first.name, detail + (f"; also: {more}" if more else ""))
    return plan


def _plan_absent(plan: _Plan, req: _Request, reason: str) -> None:
    """No Landlock (or the ABI capped to 0): everything asked is dropped."""
    if plan.kernel_abi > 0:
        reason = f"Landlock ABI capped to 0 (kernel has {plan.kernel_abi})"
    if not req.compatibility.runs_without:
        raise CompatibilityError("Landlock", f"{reason}; needs ABI 1 (Linux {ABI_LINUX[1]})")
    plan.absent = reason
    plan.notes.append(f"not enforced: {reason}")
    for kind, cls, value in (("fs", _A, req.handled_fs), ("net", _N, _want_net(req)),
                             ("scope", LandlockScope, req.scopes),
                             ("logging", LandlockLogging, req.logging)):
        for bit in _names(cls, value):
            plan.dropped.append(Dropped(kind, bit, reason, weakens=kind != "logging"))


def _mask_fs(plan: _Plan, req: _Request) -> None:
    abi, kernel = plan.abi, plan.kernel_abi
    granted = 0
    for r in req.rules:
        granted |= r.access
    supported = int(fs_rights_for_abi(abi))
    if req.implicit_fs & ~supported & _RESOLVE_UNIX:
        plan.best_effort.append(Dropped(
            "fs", "RESOLVE_UNIX", _needs("RESOLVE_UNIX", 9, abi, kernel)
            + ": connections to pathname UNIX sockets are not restricted (handled at"
            " enforcement, best effort)", weakens=False, abi=9))
    plan.handled_fs = (req.handled_fs | req.implicit_fs) & supported
    for bit in _names(_A, req.handled_fs & ~supported):
        value = int(_A.__members__[bit])
        need = _FS_ABI.get(value, 1)
        if value != int(_A.REFER):
            plan.dropped.append(Dropped("fs", bit, _needs(bit, need, abi, kernel), abi=need))
        elif granted & value:
            reason = (_needs(bit, need, abi, kernel)
                      + ": rename and link across directories stay denied")
            plan.dropped.append(Dropped("fs", bit, reason, weakens=False, abi=need))
        else:
            plan.notes.append("REFER: on ABI 1 every rename or link across directories is"
                              " denied, as the policy asks")


def _mask_net(plan: _Plan, req: _Request) -> None:
    want = _want_net(req)
    if not want:
        return
    abi, kernel = plan.abi, plan.kernel_abi
    for family, need, rights in (("TCP", _NET_ABI, ((req.bind_tcp, _N.BIND_TCP),
                                                    (req.connect_tcp, _N.CONNECT_TCP))),
                                 ("UDP", _UDP_ABI, ((req.bind_udp, _N.BIND_UDP),
                                                    (req.connect_udp, _N.CONNECT_SEND_UDP)))):
        asked = [(ports, right) for ports, right in rights if ports is not None]
        if not asked:
            continue
        if abi >= need:
            for ports, right in asked:
                plan.handled_net |= int(right)
                for p in ports:
                    plan.ports[p] = plan.ports.get(p, 0) | int(right)
            continue
        for _, right in asked:
            name = right.name or ""
            plan.dropped.append(Dropped("net", name, _needs(name, need, abi, kernel), abi=need))
        for ports, right in asked:
            name = right.name or ""
            for p in ports:
                plan.dropped.append(Dropped(
                    "port", name, _needs(name, need, abi, kernel) + f": {family} is not restricted",
                    port=p, weakens=False, abi=need))


def _mask_scopes_and_logging(plan: _Plan, req: _Request) -> None:
    abi, kernel = plan.abi, plan.kernel_abi
    if abi >= _SCOPE_ABI:
        plan.scopes = req.scopes
    else:
        for bit in _names(LandlockScope, req.scopes):
            plan.dropped.append(Dropped("scope", bit, _needs(bit, _SCOPE_ABI, abi, kernel),
                                        abi=_SCOPE_ABI))
    # logging flags are not in the ruleset: they go to landlock_restrict_self
    if abi >= _LOGGING_ABI:
        plan.restrict_flags = req.logging
    else:
        for bit in _names(LandlockLogging, req.logging):
            plan.dropped.append(Dropped("logging", bit, _needs(bit, _LOGGING_ABI, abi, kernel),
                                        weakens=False, abi=_LOGGING_ABI))
    if not (plan.handled_fs or plan.handled_net or plan.scopes) and plan.restrict_flags:
        # without a ruleset only LOG_SUBDOMAINS_OFF applies (ruleset_fd -1)
        extra = plan.restrict_flags & ~int(LandlockLogging.SUBDOMAINS_OFF)
        for bit in _names(LandlockLogging, extra):
            plan.dropped.append(Dropped("logging", bit, f"{bit} needs a ruleset to apply to",
                                        weakens=False))
        plan.restrict_flags &= int(LandlockLogging.SUBDOMAINS_OFF)


def _mask_quiet(plan: _Plan, req: _Request) -> None:
    """The quiet fields (ABI 10) must be subsets of what is handled."""
    asked = (("quiet_access_fs", _A, req.quiet_fs, plan.handled_fs),
             ("quiet_access_net", _N, req.quiet_net, plan.handled_net),
             ("quiet_scoped", LandlockScope, req.quiet_scoped, plan.scopes))
    quiet_rules = [r for r in req.rules if r.quiet]
    if plan.abi < _QUIET_ABI:
        for name, _, value, _ in asked:
            if value:
                plan.dropped.append(Dropped("quiet", name, _needs(name, _QUIET_ABI, plan.abi,
                                                                  plan.kernel_abi),
                                            weakens=False, abi=_QUIET_ABI))
        for r in quiet_rules:
            plan.dropped.append(Dropped("rule", "QUIET", _needs("QUIET", _QUIET_ABI, plan.abi,
                                                                plan.kernel_abi),
                                        path=r.path, weakens=False, abi=_QUIET_ABI))
            r.quiet = False
        return
    for name, cls, value, handled in asked:
        if value & ~handled:
            plan.notes.append(f"{name}: {_join(cls, value & ~handled)} not handled, so not quiet")
    plan.quiet_fs = req.quiet_fs & plan.handled_fs
    plan.quiet_net = req.quiet_net & plan.handled_net
    plan.quiet_scoped = req.quiet_scoped & plan.scopes


def _mask_restrict(plan: _Plan, req: _Request, probes: dict[str, bool]) -> None:
    """TSYNC (asked with all_threads) and NO_NEW_PRIVS go to landlock_restrict_self."""
    abi, kernel = plan.abi, plan.kernel_abi
    ruleset = bool(plan.handled_fs or plan.handled_net or plan.scopes)
    if req.all_threads:
        tsync_ok = abi >= _TSYNC_ABI and probes.get("tsync", False)
        # without a ruleset TSYNC only carries LOG_SUBDOMAINS_OFF to the other threads
        if tsync_ok and (ruleset or plan.restrict_flags):
            plan.restrict_flags |= int(RestrictFlag.TSYNC)
        elif not tsync_ok:
            plan.dropped.append(Dropped("restrict", "TSYNC", _tsync_reason(abi, kernel),
                                        abi=_TSYNC_ABI))
    if req.no_new_privs_flag is False or not ruleset:
        return
    if abi >= _NNP_ABI and probes.get("no_new_privs", False):
        plan.restrict_flags |= int(RestrictFlag.NO_NEW_PRIVS)
    elif req.no_new_privs_flag:
        plan.dropped.append(Dropped("restrict", "NO_NEW_PRIVS",
                                    _needs("NO_NEW_PRIVS", _NNP_ABI, abi, kernel)
                                    + ": no_new_privs is set by prctl before the restriction",
                                    weakens=False, abi=_NNP_ABI))


def _mask_rules(plan: _Plan, req: _Request) -> None:
    """Rules keep what is handled; a rule left with nothing is skipped."""
    for r in req.rules:
        kept = r.access & plan.handled_fs
        if kept or (r.quiet and r.source != "runtime"):
            plan.rules.append(_PathRule(r.path, kept, r.source, r.skip_missing, r.field,
                                        quiet=r.quiet))
        elif r.source == "runtime":
            continue  # a runtime rule with nothing handled is simply not needed
        elif not r.requested:
            # a quiet rule that grants nothing, its QUIET dropped (_mask_quiet says why)
            plan.skipped.append(SkippedRule(
                r.path, f"it only marks the path quiet, which ABI {plan.abi} lacks", r.source))
        elif not r.access:
            plan.skipped.append(SkippedRule(
                r.path, f"read-only filesystem: it grants only write rights"
                f" ({_join(_A, r.requested)})", r.source))
        else:
            plan.skipped.append(SkippedRule(
                r.path, f"its rights ({_join(_A, r.access)}) are not handled on ABI {plan.abi}",
                r.source))
    if req.read_only:
        plan.notes.append("read-only filesystem: no write right granted (runtime device nodes"
                          " keep WRITE_FILE)")


def _errata_notes(plan: _Plan, mask: int) -> None:
    uses = {1: bool(plan.handled_net & _TCP), 2: bool(plan.scopes & int(LandlockScope.SIGNAL)),
            3: bool(plan.handled_fs & int(_A.REFER))}
    for n, (abi, what) in ERRATA.items():
        if uses[n] and plan.kernel_abi >= abi and not mask & (1 << (n - 1)):
            plan.notes.append(f"erratum {n} is not fixed in this kernel: {what}")


# ── building: the system calls ───────────────────────────────────────────────


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


_MISSING = (_errno.ENOENT, _errno.ENOTDIR)
_STEP = {lib.VE_LANDLOCK_STEP_OPEN: "open", lib.VE_LANDLOCK_STEP_FSTAT: "fstat",
         lib.VE_LANDLOCK_STEP_ADD_RULE: "landlock_add_rule"}


def _build(plan: _Plan) -> CompiledRuleset:
    rules: list[RuleReport] = []
    ports: list[PortReport] = []
    skipped = list(plan.skipped)
    dropped = list(plan.dropped)
    fd = -1
    if plan.handled_fs or plan.handled_net or plan.scopes:
        quiet = (plan.quiet_fs, plan.quiet_net, plan.quiet_scoped)
        fd = lib.ve_landlock_create_ruleset_quiet(plan.handled_fs, plan.handled_net,
                                                  plan.scopes, *quiet)
        if fd == -_errno.E2BIG and any(quiet):
            # a kernel older than ABI 10 takes the 48-byte attribute only with zero quiet_*
            reason = "the kernel refused the quiet_* ruleset fields (E2BIG): needs ABI 10"
            if not plan.compatibility.drops_parts:
                raise CompatibilityError("quiet_access_fs" if quiet[0] else "quiet_access_net"
                                         if quiet[1] else "quiet_scoped", reason)
            for name, value in zip(("quiet_access_fs", "quiet_access_net", "quiet_scoped"),  # noqa: B905
                                   quiet):
                if value:
                    dropped.append(Dropped("quiet", name, reason, weakens=False,
                                           abi=_QUIET_ABI))
            plan.quiet_fs = plan.quiet_net = plan.quiet_scoped = 0
            fd = lib.ve_landlock_create_ruleset(plan.handled_fs, plan.handled_net, plan.scopes)
        if fd < 0:
            raise EnforcementError(
                -fd, "landlock_create_ruleset",
                f"fs {_join(_A, plan.handled_fs)}, net {_join(_N, plan.handled_net)},"
                f" scopes {_join(LandlockScope, plan.scopes)}")
    try:
        out = ffi.new("struct ve_landlock_path_rule *")
        for r in plan.rules:
            rflags = lib.LANDLOCK_ADD_RULE_QUIET if r.quiet and plan.quiet_fs else 0
            rc = lib.ve_landlock_add_path_rule_flags(fd, os.fsencode(r.path), r.access,
                                                     int(DIR_ONLY_RIGHTS), rflags, out)
            if rc < 0:
                err = -rc
                if out.step == lib.VE_LANDLOCK_STEP_OPEN and err in _MISSING:
                    if r.skip_missing:
                        skipped.append(SkippedRule(r.path, "does not exist", r.source))
                        continue
                    if r.source == "unix_socket":  # --unix-socket: no rule to mark Optional
                        raise PolicyError(r.field, r.path, "does not exist: a socket to connect"
                                          " to must exist when the sandbox is prepared")
                    raise PolicyError(r.field, r.path, "does not exist (mark the rule Optional,"
                                      " or set MissingPaths to 'skip', to skip it)")
                raise EnforcementError(err, _STEP.get(out.step, "landlock_add_rule"),
                                       f"{r.path}: {_join(_A, r.access)}")
            removed = r.access & ~int(out.allowed)
            if removed:
                dropped.append(Dropped(
                    "rule", _join(_A, removed),
                    f"not a directory ({_kind(out.mode)}): directory rights do not apply",
                    path=r.path, weakens=False))
            if out.allowed or rflags:
                rules.append(RuleReport(r.path, _A(int(out.allowed)), _kind(out.mode), r.source,
                                        quiet=bool(rflags)))
            else:
                skipped.append(SkippedRule(
                    r.path, f"grants only directory rights ({_join(_A, r.access)}) but is not"
                    f" a directory", r.source))
        for port, access in sorted(plan.ports.items()):
            rc = lib.ve_landlock_add_port_rule(fd, access, port)
            if rc == -_errno.EAFNOSUPPORT:
                dropped.append(Dropped("port", _join(_N, access),
                                       "the kernel has no TCP support (CONFIG_INET)",
                                       port=port, weakens=False))
                continue
            if rc < 0:
                raise EnforcementError(-rc, "landlock_add_rule",
                                       f"{_proto(access).upper()} port {port}: {_join(_N, access)}")
            ports.append(PortReport(port, _N(access)))
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    if fd < 0 and not plan.restrict_flags:
        status = LandlockStatus.NONE
    elif any(d.weakens for d in dropped):
        status = LandlockStatus.PARTIAL
    else:
        status = LandlockStatus.FULL
    report = LandlockReport(
        status=status,
        abi=plan.abi,
        kernel_abi=plan.kernel_abi,
        errata=errata(),
        compatibility=str(plan.compatibility),
        handled_fs=_A(plan.handled_fs),
        handled_net=_N(plan.handled_net),
        scopes=LandlockScope(plan.scopes),
        restrict_flags=RestrictFlag(plan.restrict_flags),
        rules=tuple(rules),
        ports=tuple(ports),
        skipped=tuple(skipped),
        dropped=tuple(dropped),
        notes=tuple(plan.notes),
        best_effort=tuple(plan.best_effort),
        quiet_access_fs=_A(plan.quiet_fs),
        quiet_access_net=_N(plan.quiet_net),
        quiet_scoped=LandlockScope(plan.quiet_scoped),
    )
    return CompiledRuleset(fd, plan.restrict_flags, plan.abi, report)


# ── the public entry points ──────────────────────────────────────────────────


def compile(  # shadows the builtin inside this module only; callers use ll.compile
    policy: LandlockPolicy | None,
    *,
    read_only: bool = False,
    abi: int | None = None,
    all_threads: bool = False,
    unix_sockets: list[str] | None = None,
    no_new_privs_flag: bool | None = None,
) -> CompiledRuleset:
    """Build the kernel ruleset for ``policy`` once, in this process.

    ``read_only``: the seed's ReadOnlyFS (no write right anywhere; without a
    policy only the write rights are handled). ``abi`` caps the ABI the
    library believes the kernel has. ``all_threads``:
    restrict every thread of the process (TSYNC, ABI 8; for apply_self in a threaded
    program). ``unix_sockets``: pathname UNIX sockets the sandbox may connect to
    (RESOLVE_UNIX, ABI 9, asked for at the policy's compatibility level; one rule on
    each socket). ``no_new_privs_flag``: None lets the kernel set no_new_privs
    (NO_NEW_PRIVS, ABI 11) where it can, else prctl does; True asks for it (dropped,
    or refused under a requirement, below ABI 11); False always uses prctl.

    Raises PolicyError (invalid policy, or a rule's path that does not exist),
    CompatibilityError (a requirement the kernel cannot meet) or
    EnforcementError (the kernel refused a step). Nothing leaks on error.
    """
    if policy is not None:
        if not isinstance(policy, LandlockPolicy):
            raise PolicyError("Landlock", policy, "is not a LandlockPolicy")
        policy.validate()
    if not isinstance(read_only, bool):
        raise PolicyError("ReadOnlyFS", read_only, "is not a boolean")
    used = effective_abi(abi)
    req = _request(policy, read_only, _check_unix_sockets(unix_sockets))
    _restrict_request(req, all_threads, no_new_privs_flag)
    return _build(_plan(req, used, kernel_abi(), errata(), probes=_probes(used)))


def _restrict_request(req: _Request, all_threads: Any, no_new_privs_flag: Any) -> None:
    if not isinstance(all_threads, bool):
        raise PolicyError("all_threads", all_threads, "is not a boolean")
    if no_new_privs_flag is not None and not isinstance(no_new_privs_flag, bool):
        raise PolicyError("no_new_privs_flag", no_new_privs_flag, "is not a boolean or None")
    req.all_threads, req.no_new_privs_flag = all_threads, no_new_privs_flag


def _probes(abi: int) -> dict[str, bool]:
    return {"tsync": abi >= _TSYNC_ABI and tsync_supported(),
            "no_new_privs": abi >= _NNP_ABI and no_new_privs_flag_supported()}


def _forwarded_ports(config: IsolationConfig) -> list[int]:
    net = config.network
    if net is None or net.mode != NetworkMode.PRIVATE:
        return []
    return [pf.container_port for pf in net.port_forwards if pf.protocol in ("", "tcp")]


def compile_for(config: IsolationConfig, *, abi: int | None = None, all_threads: bool = False,
                unix_sockets: list[str] | None = None,
                no_new_privs_flag: bool | None = None) -> CompiledRuleset | None:
    """The ruleset an ``IsolationConfig`` asks for: its Landlock policy, its
    ReadOnlyFS, and its network mode (``none`` denies all TCP bind and connect
    unless the policy names ports; port forwards of a ``private`` network allow
    bind on their container ports when bind is otherwise restricted). UDP rules come
    from the policy alone. The keyword arguments are compile()'s.
    None when there is nothing to enforce."""
    if not isinstance(config, IsolationConfig):
        raise PolicyError("config", config, "is not an IsolationConfig")
    config.validate()
    policy = config.landlock
    bind = None if policy is None or policy.bind_tcp is None else list(policy.bind_tcp)
    connect = None if policy is None or policy.connect_tcp is None else list(policy.connect_tcp)
    if config.network is not None and config.network.mode == NetworkMode.NONE:
        bind = [] if bind is None else bind
        connect = [] if connect is None else connect
    if bind is not None:
        bind += [p for p in _forwarded_ports(config) if p not in bind]
    sockets = _check_unix_sockets(unix_sockets)
    if (policy is None and not config.read_only_fs and bind is None and connect is None
            and not sockets):
        return None
    used = effective_abi(abi)
    req = _request(policy, config.read_only_fs, sockets)
    req.bind_tcp, req.connect_tcp = bind, connect
    _restrict_request(req, all_threads, no_new_privs_flag)
    return _build(_plan(req, used, kernel_abi(), errata(), probes=_probes(used)))
