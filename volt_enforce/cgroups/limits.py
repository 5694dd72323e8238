"""The pure cgroup planner: the model's ResourceLimits and a host layout ->
which file gets which value, in which hierarchy.

``plan_limits`` decides once; ``Cgroup.create`` executes the plan and
``init_plan`` serializes it for volt-init. Nothing here writes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import CompatibilityError, EnforcementError, PolicyError
from ..model import ResourceLimits, parse_cpuset
from .layout import V1_NAME, CgroupLayout, CgroupMount, detect, read_text

__all__ = [
    "CPU_PERIOD_USEC",
    "LIMIT_CONTROLLERS",
    "LimitPlan",
    "LimitWrite",
    "base_dir",
    "check_cpuset",
    "controller_versions",
    "cpu_quota_to_max",
    "cpu_weight_to_shares",
    "effective_file",
    "io_weight_to_bfq",
    "io_weight_to_blkio",
    "limit_writes",
    "plan_limits",
]

# ── limits: the model's ResourceLimits as cgroup files ───────────────────────

#: The CPU bandwidth period written with a quota (cpu.max, cpu.cfs_period_us), as systemd's default.
CPU_PERIOD_USEC = 100_000
_CPU_QUOTA_MIN_USEC = 1_000  # the kernel refuses quotas below 1 ms

#: The controllers limits need, by their cgroup v2 name; v1 names "io" blkio.
LIMIT_CONTROLLERS = ("memory", "cpu", "cpuset", "io", "pids")


def cpu_weight_to_shares(weight: int) -> int:
    """cgroup v2 ``cpu.weight`` (1..10000, default 100) as v1 ``cpu.shares``
    (2..262144, default 1024), as systemd converts it: proportional, so that the
    defaults match (100 -> 1024), clamped to the range of cpu.shares."""
    return min(max(weight * 1024 // 100, 2), 262144)


def io_weight_to_blkio(weight: int) -> int:
    """``io.weight`` (1..10000, default 100) as v1 CFQ ``blkio.weight``
    (10..1000, default 500), as systemd converts it: proportional, clamped."""
    return min(max(weight * 500 // 100, 10), 1000)


def io_weight_to_bfq(weight: int) -> int:
    """``io.weight`` (1..10000, default 100) as BFQ's weight (1..1000, default
    100), as systemd maps it: the identity up to the default, then linear from
    100..10000 onto 100..1000."""
    if weight <= 100:
        return max(weight, 1)
    return 100 + (weight - 100) * 900 // 9900


def cpu_quota_to_max(percent: float, period: int = CPU_PERIOD_USEC) -> tuple[int, int]:
    """A CPU quota in percent of one CPU as (quota, period) in microseconds, the
    two numbers of v2 ``cpu.max`` and of v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``."""
    quota = max(round(percent * period / 100), _CPU_QUOTA_MIN_USEC)
    return quota, period


@dataclass(frozen=True)
class LimitWrite:
    """One limit file to write into a cgroup.

    ``version`` is the hierarchy that holds ``controller`` (2 or 1), or 0 when
    no hierarchy does. ``value`` None means "the parent's memory nodes" (cpuset.mems),
    read when the cgroup exists. ``alternatives`` are (file, value) pairs tried,
    in order, when ``file`` does not exist (BFQ's weight files).
    """

    field: str
    controller: str
    version: int
    file: str
    value: str | None
    alternatives: tuple[tuple[str, str], ...] = ()
    #: the value is the kernel's default, so a missing file changes nothing
    is_default: bool = False


def controller_versions(layout: CgroupLayout) -> dict[str, int]:
    """Which hierarchy (2 or 1) holds each limit controller (v2 names) on this
    layout; a controller no hierarchy holds is left out."""
    versions: dict[str, int] = {}
    for ctrl in LIMIT_CONTROLLERS:
        if layout.v2 is not None and ctrl in layout.v2.controllers:
            versions[ctrl] = 2
        elif layout.v1_mount(V1_NAME.get(ctrl, ctrl)) is not None:
            versions[ctrl] = 1
    return versions


def limit_writes(limits: ResourceLimits, versions: Mapping[str, int]) -> list[LimitWrite]:
    """The files and values that enforce ``limits``, in the order to write them.

    ``versions`` maps each controller (v2 names: memory, cpu, cpuset, io, pids) to
    the hierarchy version that holds it; a controller left out is missing
    (version 0). Raises PolicyError for a limit that cannot be expressed there.
    """
    out: list[LimitWrite] = []

    def add(fld: str, ctrl: str, v2: tuple[str, str | None], v1: tuple[str, str | None],
            alt2: tuple[tuple[str, str], ...] = (), alt1: tuple[tuple[str, str], ...] = (),
            is_default: bool = False) -> None:
        v = versions.get(ctrl, 0)
        if v == 1:
            out.append(LimitWrite(fld, V1_NAME.get(ctrl, ctrl), 1, v1[0], v1[1], alt1, is_default))
        else:
            out.append(LimitWrite(fld, ctrl, 2 if v == 2 else 0, v2[0], v2[1], alt2, is_default))

    def size(v: int | None, unlimited: str) -> str:
        return unlimited if v is None else str(v)

    hard = limits.memory_hard_bytes
    if limits.memory_hard:
        add("Resources.MemoryHard", "memory", ("memory.max", size(hard, "max")),
            ("memory.limit_in_bytes", size(hard, "-1")))
    if limits.memory_soft:
        soft = limits.memory_soft_bytes
        # v1's soft limit is a reclaim target under memory pressure, not memory.high's throttle
        add("Resources.MemorySoft", "memory", ("memory.high", size(soft, "max")),
            ("memory.soft_limit_in_bytes", size(soft, "-1")))
    if limits.memory_swap:
        swap = limits.memory_swap_bytes
        if versions.get("memory", 0) == 1 and swap is not None:
            # v1 limits memory plus swap together: memsw = hard + swap
            if hard is None:
                raise PolicyError(
                    "Resources.MemorySwap", limits.memory_swap,
                    "needs a size in Resources.MemoryHard on cgroup v1, where "
                    "memory.memsw.limit_in_bytes limits memory and swap together")
            memsw = str(hard + swap)
        else:
            memsw = "-1"
        add("Resources.MemorySwap", "memory", ("memory.swap.max", size(swap, "max")),
            ("memory.memsw.limit_in_bytes", memsw))
    if limits.cpu_weight > 0:
        add("Resources.CPUWeight", "cpu", ("cpu.weight", str(limits.cpu_weight)),
            ("cpu.shares", str(cpu_weight_to_shares(limits.cpu_weight))))
    if limits.cpu_quota:
        quota, period = cpu_quota_to_max(limits.cpu_quota_percent or 0.0)
        if versions.get("cpu", 0) == 1:
            add("Resources.CPUQuota", "cpu", ("", None), ("cpu.cfs_period_us", str(period)))
            add("Resources.CPUQuota", "cpu", ("", None), ("cpu.cfs_quota_us", str(quota)))
        else:
            add("Resources.CPUQuota", "cpu", ("cpu.max", f"{quota} {period}"), ("", None))
    if limits.cpu_set:
        cpus = _format_cpus(limits.cpus)
        add("Resources.CPUSet", "cpuset", ("cpuset.cpus", cpus), ("cpuset.cpus", cpus))
        add("Resources.CPUSet", "cpuset", ("cpuset.mems", None), ("cpuset.mems", None))
    if limits.io_weight > 0:
        w = limits.io_weight
        add("Resources.IOWeight", "io", ("io.weight", f"default {w}"),
            ("blkio.weight", str(io_weight_to_blkio(w))),
            alt2=(("io.bfq.weight", str(io_weight_to_bfq(w))),),
            alt1=(("blkio.bfq.weight", str(io_weight_to_bfq(w))),),
            # without a weight-aware I/O scheduler every cgroup weighs the default
            is_default=w == 100)
    if limits.pids_max > 0:
        add("Resources.PIDsMax", "pids", ("pids.max", str(limits.pids_max)),
            ("pids.max", str(limits.pids_max)))
    return out


def _format_cpus(cpus: list[int]) -> str:
    """Sorted CPU numbers as the kernel's list format ("0-3,5")."""
    parts: list[str] = []
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)



# ── the plan ─────────────────────────────────────────────────────────────────


def effective_file(file: str, version: int) -> str:
    """The parent file that says which CPUs or memory nodes a child may use."""
    if version == 2:
        return file + ".effective"
    return {"cpuset.cpus": "cpuset.effective_cpus", "cpuset.mems": "cpuset.effective_mems"}[file]


def check_cpuset(w: LimitWrite, parent_dir: str,
                 read: Callable[[str], str] = read_text) -> str:
    """The value to write for a cpuset file ``w`` below ``parent_dir``: the parent's
    effective memory nodes for cpuset.mems (``w.value`` None), else ``w.value``
    after checking that it names only CPUs the parent may use."""
    eff_path = os.path.join(parent_dir, effective_file(w.file, w.version))
    eff = read(eff_path).strip()
    if w.value is None:
        if not eff:
            raise CompatibilityError(f"cgroup file {w.file}", f"{eff_path} is unreadable or empty")
        return eff
    if w.file == "cpuset.cpus":
        have = set(parse_cpuset(eff)) if eff else set()
        if not set(parse_cpuset(w.value)) <= have:
            raise PolicyError(w.field, w.value,
                              f"names CPUs outside the parent's {eff_path} ({eff or 'empty'})")
    return w.value


def base_dir(mount: CgroupMount) -> str:
    """Where this process makes cgroups in ``mount``: below its own cgroup when that
    is writable (delegated), else, as root, below the hierarchy's root."""
    cur = mount.current_path
    if cur is not None and mount.current_writable:
        return cur
    if os.geteuid() == 0:
        return mount.path
    raise EnforcementError(errno.EACCES, "cgroup parent",
                           f"{cur or mount.path} is not writable (not delegated to this user), "
                           f"and this process is not root; pass parent=")


@dataclass(frozen=True)
class LimitPlan:
    """The cgroup files that enforce ``limits`` on ``layout``, decided once.

    ``entries`` are all of them, in the order to write them; ``writes`` the ones
    whose controller a hierarchy here holds, ``missing`` the ones whose
    controller none holds (a CompatibilityError unless best effort skips them).
    """

    limits: ResourceLimits
    layout: CgroupLayout
    entries: tuple[LimitWrite, ...]

    @property
    def writes(self) -> tuple[LimitWrite, ...]:
        return tuple(w for w in self.entries if w.version != 0)

    @property
    def missing(self) -> tuple[LimitWrite, ...]:
        return tuple(w for w in self.entries if w.version == 0)

    def mount_of(self, w: LimitWrite) -> CgroupMount:
        """The hierarchy that holds ``w``'s controller."""
        mount = self.layout.v2 if w.version == 2 else self.layout.v1_mount(w.controller)
        assert mount is not None, w
        return mount

    def missing_reason(self, w: LimitWrite) -> str:
        return f"no cgroup hierarchy here has the {w.controller} controller ({self.layout.kind} host)"

    def missing_error(self, w: LimitWrite) -> CompatibilityError:
        return CompatibilityError(f"cgroup controller {w.controller}",
                                  f"{w.field} needs {w.file}; {self.missing_reason(w)}")


def plan_limits(limits: ResourceLimits, layout: CgroupLayout | None = None) -> LimitPlan:
    """Plan the cgroup files for ``limits`` on ``layout`` (default: this host's).
    Raises PolicyError for a limit that cannot be expressed there."""
    if not isinstance(limits, ResourceLimits):
        raise PolicyError("Resources", limits, "is not a ResourceLimits")
    limits.validate()
    if layout is None:
        layout = detect()
    writes = limit_writes(limits, controller_versions(layout))
    return LimitPlan(limits, layout, tuple(w for w in writes if w.file))
