"""cgroup detection: the host's layout (v2, v1 or hybrid), read from
/proc/self/mountinfo and /proc/self/cgroup. Writes nothing."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CgroupMount", "CgroupLayout", "LayoutKind", "detect", "read_text", "V1_NAME"]


class LayoutKind(str, enum.Enum):
    """How a host mounts its cgroup hierarchies."""

    V2 = "v2"
    V1 = "v1"
    HYBRID = "hybrid"
    NONE = "none"

    def __str__(self) -> str:
        return self.value


#: v1 names of the v2 controllers that differ ("io" is blkio on v1).
V1_NAME = {"io": "blkio"}


def read_text(path: str) -> str:
    """A cgroup or proc file's text, stripped; "" when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


_V1_CONTROLLERS = {
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio",
    "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc",
}


@dataclass(frozen=True)
class CgroupMount:
    """One mounted cgroup hierarchy."""

    version: int  # 1 or 2
    path: str  # mount point
    root: str  # the hierarchy path that is mounted there (usually "/")
    controllers: tuple[str, ...]  # v1: from the mount options; v2: cgroup.controllers
    #: the current process's cgroup in this hierarchy, relative to its root
    current: str | None = None

    @property
    def current_path(self) -> str | None:
        """Filesystem path of the current process's cgroup, when it is visible."""
        if self.current is None:
            return None
        # ".." appears where the cgroup (or the mounted subtree) lies outside
        # our cgroup namespace; normalizing it away would name another cgroup
        if ".." in self.current.split("/") or ".." in self.root.split("/"):
            return None
        root = self.root.rstrip("/")
        if self.current != root and not self.current.startswith(root + "/"):
            return None
        rel = self.current[len(root):].strip("/")
        return os.path.join(self.path, rel) if rel else self.path

    @property
    def current_writable(self) -> bool:
        """Whether a child cgroup may be created below the current one."""
        p = self.current_path
        return bool(p) and os.access(p, os.W_OK)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CgroupLayout:
    """The cgroup hierarchies of this host, as this process sees them."""

    kind: LayoutKind
    v2: CgroupMount | None
    v1: tuple[CgroupMount, ...] = field(default_factory=tuple)

    def v1_mount(self, controller: str) -> CgroupMount | None:
        for m in self.v1:
            if controller in m.controllers:
                return m
        return None

    def controller_version(self, controller: str) -> int | None:
        """Which hierarchy holds a controller: 2, 1 or None."""
        if self.v2 is not None and controller in self.v2.controllers:
            return 2
        if self.v1_mount(controller) is not None:
            return 1
        return None

    def to_dict(self) -> dict[str, Any]:
        def mount(m: CgroupMount) -> dict[str, Any]:
            return {
                "version": m.version, "path": m.path, "controllers": list(m.controllers),
                "current": m.current_path, "writable": m.current_writable,
            }

        return {
            "kind": self.kind.value,
            "v2": mount(self.v2) if self.v2 else None,
            "v1": [mount(m) for m in self.v1],
        }


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 4 <= len(s) and all(c in "01234567" for c in s[i + 1 : i + 4]):
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def detect(mountinfo: str | None = None, self_cgroup: str | None = None) -> CgroupLayout:
    """Detect the cgroup layout from mountinfo and /proc/self/cgroup (or given texts)."""
    if mountinfo is None:
        mountinfo = read_text("/proc/self/mountinfo")
    if self_cgroup is None:
        self_cgroup = read_text("/proc/self/cgroup")

    current_v2: str | None = None
    current_v1: dict[str, str] = {}
    for line in self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, ctrls, path = parts
        if hid == "0" and ctrls == "":
            current_v2 = path
        else:
            for c in ctrls.split(","):
                if c:
                    current_v1[c] = path

    v2: CgroupMount | None = None
    v1: list[CgroupMount] = []
    seen_v1: set[tuple[str, ...]] = set()
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        fstype, opts = rf[0], rf[2].split(",")
        root, point = _unescape(lf[3]), _unescape(lf[4])
        if fstype == "cgroup2":
            if v2 is not None:
                continue  # the first mount wins; bind mounts of it repeat it
            v2 = CgroupMount(2, point, root,
                             tuple(read_text(os.path.join(point, "cgroup.controllers")).split()),
                             current_v2)
        elif fstype == "cgroup":
            v1_ctrls = tuple(sorted(o for o in opts if o in _V1_CONTROLLERS))
            named = [o[5:] for o in opts if o.startswith("name=")]
            key = v1_ctrls or tuple("name=" + n for n in named)
            if not key or key in seen_v1:
                continue
            seen_v1.add(key)
            cur = None
            for c in v1_ctrls:
                cur = current_v1.get(c, cur)
            for n in named:
                cur = current_v1.get("name=" + n, cur)
            v1.append(CgroupMount(1, point, root, key, cur))

    has_v1_ctrls = any(not m.controllers[0].startswith("name=") for m in v1 if m.controllers)
    if v2 is not None and has_v1_ctrls:
        kind = LayoutKind.HYBRID
    elif v2 is not None:
        kind = LayoutKind.V2
    elif has_v1_ctrls:
        kind = LayoutKind.V1
    else:
        kind = LayoutKind.NONE
    return CgroupLayout(kind, v2, tuple(v1))

