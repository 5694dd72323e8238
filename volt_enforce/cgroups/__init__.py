"""cgroups: the host's layout (``layout``), the pure planner of the model's
resource limits (``limits``), and ``Cgroup``, a cgroup made for one sandbox from
such a plan (``cgroup``)."""

from __future__ import annotations

from .cgroup import SUBTREE, V2, Cgroup, CgroupStats, _fs_path, _parent_rel, _write
from .layout import V1_NAME, CgroupLayout, CgroupMount, LayoutKind, _unescape, detect, read_text
from .limits import (
    CPU_PERIOD_USEC,
    LIMIT_CONTROLLERS,
    LimitPlan,
    LimitWrite,
    _format_cpus,
    base_dir,
    check_cpuset,
    controller_versions,
    cpu_quota_to_max,
    cpu_weight_to_shares,
    effective_file,
    io_weight_to_bfq,
    io_weight_to_blkio,
    limit_writes,
    plan_limits,
)

__all__ = [
    "CPU_PERIOD_USEC",
    "LIMIT_CONTROLLERS",
    "SUBTREE",
    "V1_NAME",
    "V2",
    "Cgroup",
    "CgroupLayout",
    "CgroupMount",
    "CgroupStats",
    "LayoutKind",
    "LimitPlan",
    "LimitWrite",
    "base_dir",
    "check_cpuset",
    "controller_versions",
    "cpu_quota_to_max",
    "cpu_weight_to_shares",
    "detect",
    "effective_file",
    "io_weight_to_bfq",
    "io_weight_to_blkio",
    "limit_writes",
    "plan_limits",
    "read_text",
]

# kept importable for the tests of these internals
_ = (_fs_path, _parent_rel, _write, _unescape, _format_cpus)
