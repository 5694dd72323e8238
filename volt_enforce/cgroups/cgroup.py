"""``Cgroup``: a cgroup made for one sandbox from a ``LimitPlan``, with its limits
written, fds for placing a child at spawn, statistics, and removal that leaves
nothing."""

from __future__ import annotations

import errno
import os
import secrets
import select
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import CompatibilityError, EnforcementError, PolicyError
from ..model import ResourceLimits
from .layout import CgroupLayout, CgroupMount, LayoutKind, read_text
from .limits import LimitPlan, LimitWrite, base_dir, check_cpuset, plan_limits

__all__ = ["Cgroup", "CgroupStats", "SUBTREE", "V2"]

# ── statistics ───────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class CgroupStats:
    """Resource use of a cgroup, from v2 files or their v1 counterparts.

    A field is None when no file of this host provides it.
    """

    memory_peak: int | None = None  # bytes: memory.peak / memory.max_usage_in_bytes
    memory_current: int | None = None  # bytes: memory.current / memory.usage_in_bytes
    cpu_usec: int | None = None  # cpu.stat usage_usec / cpuacct.usage
    cpu_user_usec: int | None = None
    cpu_system_usec: int | None = None
    cpu_throttled_usec: int | None = None  # cpu.stat throttled_usec / throttled_time
    pids_current: int | None = None
    pids_peak: int | None = None
    oom_kills: int | None = None  # memory.events / memory.oom_control oom_kill

    def to_dict(self) -> dict[str, int | None]:
        return dict(self.__dict__)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(" ")
                try:
                    out[k] = int(v)
                except ValueError:
                    continue
    except OSError:
        pass
    return out


# ── the cgroup of a sandbox ──────────────────────────────────────────────────

#: The key of the cgroup2 hierarchy in ``Cgroup.paths``; v1 hierarchies are keyed by
#: their controllers as /proc/self/cgroup lists them ("memory", "cpu,cpuacct").
V2 = "cgroup2"
#: The subtree below the current cgroup in which sandboxes' cgroups are made.
SUBTREE = "volt"

_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)
_WAIT_TIMEOUT = 10.0  # seconds for the processes of a cgroup to die after SIGKILL
_RMDIR_TIMEOUT = 2.0  # seconds of retrying rmdir on EBUSY


def _write(path: str, value: str, fld: str | None = None) -> None:
    """Write ``value`` to a cgroup file in one write(2), checked; errors name the file."""
    data = value.encode()
    where = f"{path} <- {value!r}" + (f" ({fld})" if fld else "")
    step = "write " + os.path.basename(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise EnforcementError(exc.errno or errno.EIO, step, where) from None
    try:
        n = os.write(fd, data)
    except OSError as exc:
        raise EnforcementError(exc.errno or errno.EIO, step, where) from None
    finally:
        os.close(fd)
    if n != len(data):
        raise EnforcementError(errno.EIO, step, f"{where}: short write, {n} of {len(data)} bytes")


def _name(name: str | None) -> str:
    if name is None:
        return "volt-" + secrets.token_hex(6)
    if not isinstance(name, str):
        raise PolicyError("name", name, "is not a string")
    if not name or name in (".", "..") or "/" in name or "\0" in name or "\n" in name:
        raise PolicyError("name", name, "is not a cgroup directory name")
    if len(os.fsencode(name)) > 255:
        raise PolicyError("name", name, "is longer than 255 bytes")
    return name


def _parent_rel(parent: str, layout: CgroupLayout) -> str:
    """A parent given as a cgroup path ("/a/b") or as a directory under a cgroup
    mount ("/sys/fs/cgroup/memory/a/b"), as a hierarchy path ("/a/b")."""
    if not isinstance(parent, str):
        raise PolicyError("parent", parent, "is not a string")
    if "\0" in parent or not parent.startswith("/"):
        raise PolicyError("parent", parent, "is not an absolute cgroup path")
    parts = [p for p in parent.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise PolicyError("parent", parent, "has '.' or '..' components")
    clean = "/" + "/".join(parts)
    mounts = ([layout.v2] if layout.v2 else []) + list(layout.v1)
    for m in sorted(mounts, key=lambda m: -len(m.path)):
        if clean == m.path or clean.startswith(m.path.rstrip("/") + "/"):
            rel = clean[len(m.path):] or "/"
            return os.path.join(m.root, rel.lstrip("/")) if m.root != "/" else rel
    return clean


def _fs_path(mount: CgroupMount, rel: str) -> str | None:
    """The directory of hierarchy path ``rel`` under ``mount``, or None if it is not visible."""
    if mount.root != "/":
        if rel != mount.root and not rel.startswith(mount.root.rstrip("/") + "/"):
            return None
        rel = rel[len(mount.root):]
    rel = rel.strip("/")
    return os.path.join(mount.path, rel) if rel else mount.path


class Cgroup:
    """A cgroup made for one sandbox: limits written, placement fds, stats, removal.

    Make one with ``Cgroup.create(limits)``; use it as a context manager, or call
    ``close()``, which kills whatever still runs in it and removes it.

    On a hybrid host it is one cgroup in the cgroup2 hierarchy (for placement by
    ``clone3(CLONE_INTO_CGROUP)``) and one in each v1 hierarchy a limit needs,
    plus memory and pids (and cpuacct without cgroup2) for statistics. On pure
    v2 it is one cgroup, on pure v1 the v1 ones.

    Attributes:
        paths: hierarchy key (``"cgroup2"``, or a v1 mount's controllers such as
            ``"memory"``) -> directory.
        path: the main directory: the cgroup2 one when there is one.
        clone_fd: the cgroup2 directory, opened O_RDONLY|O_DIRECTORY|O_CLOEXEC for
            CLONE_INTO_CGROUP; -1 without a cgroup2 cgroup.
        v2_procs_fd: the cgroup2 ``cgroup.procs`` (O_WRONLY|O_CLOEXEC), for a child
            to join by writing "0" where clone3 is refused; -1 without one.
        procs_fds: ``cgroup.procs`` of every v1 cgroup (O_WRONLY|O_CLOEXEC); the
            child writes "0" into each to join.
        procs_paths: the paths of ``procs_fds``, in the same order.
        report: ``{"written": {file: value}, "skipped": {file: reason}}``.
    """

    paths: dict[str, str]
    path: str
    clone_fd: int
    v2_procs_fd: int
    procs_fds: tuple[int, ...]
    procs_paths: tuple[str, ...]
    report: dict[str, dict[str, str]]

    def __init__(self) -> None:
        # Cgroup.create builds instances; a bare one owns nothing
        self.paths = {}
        self.path = ""
        self.clone_fd = -1
        self.v2_procs_fd = -1
        self.procs_fds = ()
        self.procs_paths = ()
        self.report = {"written": {}, "skipped": {}}
        self.best_effort = False
        self._created: list[str] = []  # our sandbox cgroups, in creation order
        self._made_parents: list[str] = []  # "volt" subtrees this object made
        self._freezer: str | None = None  # the v1 freezer cgroup, for killing without cgroup.kill
        self._closed = False
        self._detached = False
        self._lock = threading.Lock()

    # ---- creation ----------------------------------------------------------

    @classmethod
    def create(
        cls,
        limits: ResourceLimits | LimitPlan,
        parent: str | None = None,
        name: str | None = None,
        *,
        best_effort: bool = False,
        statistics: bool = True,
        layout: CgroupLayout | None = None,
    ) -> Cgroup:
        """Make the cgroup(s) for ``limits`` (or a ``LimitPlan`` of them) and write them.

        ``parent``: a cgroup path as /proc/self/cgroup spells it ("/a/b"), or a
        directory under a cgroup mount, which names the same path in every
        hierarchy; it must exist in each hierarchy used. By default the cgroups
        are made in a ``volt`` subtree below this process's cgroup when that is
        writable, else below the hierarchy's root (as root).
        ``name``: the directory name (default ``volt-<random>``).
        ``best_effort``: a limit whose controller or file this host lacks is skipped
        and reported in ``report["skipped"]`` instead of raising CompatibilityError.
        ``statistics``: also join memory and pids (v1: and cpuacct without cgroup2)
        for ``stats()``, where the host has them; each is one more write at spawn.
        ``layout``: the host's layout (default: ``detect()``).

        Raises PolicyError for bad arguments and limits the host cannot express,
        CompatibilityError for missing controllers or files, EnforcementError for
        a refused mkdir or write; whatever was made is removed first.
        """
        if isinstance(limits, LimitPlan):
            plan = limits
            if layout is not None and layout != plan.layout:
                raise PolicyError("layout", layout, "differs from the plan's layout")
        elif isinstance(limits, ResourceLimits):
            plan = plan_limits(limits, layout)
        else:
            raise PolicyError("limits", limits, "is not a ResourceLimits")
        layout = plan.layout
        name = _name(name)
        rel_parent = _parent_rel(parent, layout) if parent is not None else None
        if layout.kind == LayoutKind.NONE:
            raise CompatibilityError("cgroups", "no cgroup hierarchy is mounted (/proc/self/mountinfo)")
        self = cls()
        self.best_effort = bool(best_effort)
        try:
            self._build(plan, rel_parent, parent, name, statistics)
        except BaseException:
            self._rollback()
            raise
        return self

    def _skip(self, key: str, reason: str, exc: Exception) -> None:
        if not self.best_effort:
            raise exc
        self.report["skipped"][key] = reason

    def _build(self, plan: LimitPlan, rel_parent: str | None, parent: str | None, name: str,
               statistics: bool) -> None:
        layout = plan.layout
        for w in plan.missing:
            self._skip(w.file, plan.missing_reason(w), plan.missing_error(w))
        usable: list[LimitWrite] = list(plan.writes)

        # which hierarchies: (mount, controllers needed by limits, optional controllers)
        v2_need = sorted({w.controller for w in usable if w.version == 2})
        v2_stats = [c for c in ("memory", "pids") if statistics and layout.v2 is not None
                    and c in layout.v2.controllers and c not in v2_need]
        v1_mounts: list[tuple[CgroupMount, bool]] = []  # (mount, required)

        def want_v1(ctrl: str, required: bool) -> None:
            m = layout.v1_mount(ctrl)
            if m is None:
                return
            for i, (have, req) in enumerate(v1_mounts):
                if have is m:
                    v1_mounts[i] = (m, req or required)
                    return
            v1_mounts.append((m, required))

        for w in usable:
            if w.version == 1:
                want_v1(w.controller, True)
        if statistics:
            for ctrl in ("memory", "pids") + (("cpuacct",) if layout.v2 is None else ()):
                want_v1(ctrl, False)

        dirs: dict[str, str] = {}  # hierarchy key -> our cgroup directory
        parents: dict[str, str] = {}
        if layout.v2 is not None:
            try:
                p, enabled = self._v2_parent(layout.v2, rel_parent, parent, v2_need, v2_stats)
                for w in usable:
                    if w.version == 2 and w.controller not in enabled:
                        self.report["skipped"][w.file] = self.report["skipped"][w.controller]
                usable = [w for w in usable if w.version != 2 or w.controller in enabled]
                dirs[V2] = self._mkdir(p, name, layout.v2, rel_parent)
                parents[V2] = p
            except EnforcementError as exc:
                # on a hybrid host cgroup2 only places the child: best effort may go without
                if v2_need or not self.best_effort or exc.errno not in _NOT_ALLOWED:
                    raise
                self.report["skipped"][V2] = f"no cgroup2 cgroup for placement: {exc}"
            # cgroup.kill (5.14) kills atomically; without it the v1 freezer helps
            if V2 in dirs and not os.path.exists(os.path.join(dirs[V2], "cgroup.kill")):
                want_v1("freezer", False)
        else:
            want_v1("freezer", False)

        for m, required in v1_mounts:
            key = ",".join(m.controllers)
            try:
                p = self._parent_dir(m, rel_parent, parent, key)
                dirs[key] = self._mkdir(p, name, m, rel_parent)
                parents[key] = p
            except EnforcementError as exc:
                # a hierarchy joined only for statistics may be closed to us (not delegated)
                if required or exc.errno not in _NOT_ALLOWED:
                    raise
                self.report["skipped"][key] = f"not joined for statistics: {exc}"
                continue
            if "freezer" in m.controllers:
                self._freezer = dirs[key]
        if not dirs:
            why = "; ".join(f"{k}: {v}" for k, v in self.report["skipped"].items())
            raise CompatibilityError("cgroups", f"no cgroup could be made ({layout.kind} host)"
                                     + (f": {why}" if why else ""))

        for w in usable:
            key = V2 if w.version == 2 else ",".join(layout.v1_mount(w.controller).controllers)  # type: ignore[union-attr]
            d = dirs.get(key)
            if d is None:
                continue
            self._apply(w, d, parents[key])

        self.paths = dirs
        self.path = dirs.get(V2) or next(
            (dirs[k] for k in ("memory", "pids") if k in dirs), next(iter(dirs.values())))
        if V2 in dirs:
            self.clone_fd = os.open(dirs[V2], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self.v2_procs_fd = os.open(os.path.join(dirs[V2], "cgroup.procs"),
                                       os.O_WRONLY | os.O_CLOEXEC)
        fds, paths = [], []
        for key, d in dirs.items():
            if key != V2:
                paths.append(os.path.join(d, "cgroup.procs"))
                fds.append(os.open(paths[-1], os.O_WRONLY | os.O_CLOEXEC))
                self.procs_fds = tuple(fds)  # at once, so a rollback closes what is open
        self.procs_paths = tuple(paths)

    def _parent_dir(self, mount: CgroupMount, rel_parent: str | None, parent: str | None,
                    key: str) -> str:
        """The directory to make our cgroup in (making the ``volt`` subtree when default)."""
        if rel_parent is not None:
            d = _fs_path(mount, rel_parent)
            if d is None or not os.path.isdir(d):
                raise PolicyError("parent", parent, f"is not a cgroup in the {key} hierarchy "
                                  f"({d or 'outside ' + mount.path + ' (mounted root ' + mount.root + ')'} "
                                  f"does not exist)")
            return d
        base = base_dir(mount)
        return os.path.join(base, SUBTREE)

    def _make_subtree(self, d: str, mount: CgroupMount) -> None:
        try:
            os.mkdir(d, 0o755)
            self._made_parents.append(d)
        except FileExistsError:
            pass
        except OSError as exc:
            raise EnforcementError(exc.errno or errno.EIO, "mkdir", d) from None
        if "cpuset" in mount.controllers and mount.version == 1:
            # a v1 cpuset child starts with no CPUs and no memory nodes: give it the parent's
            up = os.path.dirname(d)
            for f, src in (("cpuset.cpus", "cpuset.effective_cpus"),
                           ("cpuset.mems", "cpuset.effective_mems")):
                if not read_text(os.path.join(d, f)).strip():
                    _write(os.path.join(d, f), read_text(os.path.join(up, src)).strip() or "\n")

    def _mkdir(self, parent_dir: str, name: str, mount: CgroupMount,
               rel_parent: str | None) -> str:
        path = os.path.join(parent_dir, name)
        for _ in range(5):
            if rel_parent is None:
                self._make_subtree(parent_dir, mount)
            try:
                os.mkdir(path, 0o755)
            except FileNotFoundError:
                if rel_parent is None:
                    continue  # another Cgroup removed the empty subtree meanwhile: make it again
                raise EnforcementError(errno.ENOENT, "mkdir", path) from None
            except OSError as exc:
                raise EnforcementError(exc.errno or errno.EIO, "mkdir", path) from None
            self._created.append(path)
            return path
        raise EnforcementError(errno.ENOENT, "mkdir", f"{path}: its parent keeps disappearing")

    def _v2_parent(self, mount: CgroupMount, rel_parent: str | None, parent: str | None,
                   need: Sequence[str], optional: Sequence[str]) -> tuple[str, set[str]]:
        """The cgroup2 parent directory, with the controllers enabled for its children.

        Below a current cgroup that has processes no controller can be enabled (the
        "no internal processes" rule); as root, the default then moves to the
        ``volt`` subtree below the hierarchy's root, which is exempt from it."""
        p = self._parent_dir(mount, rel_parent, parent, V2)
        errors = self._enable(mount, p, need)
        top = os.path.join(mount.path, SUBTREE)
        if errors and rel_parent is None and p != top and os.geteuid() == 0:
            top_errors = self._enable(mount, top, need)
            if len(top_errors) < len(errors):
                p, errors = top, top_errors
        for ctrl, exc in errors.items():
            self._skip(ctrl, str(exc), exc)
        opt_errors = self._enable(mount, p, optional)
        for ctrl, exc in opt_errors.items():
            self.report["skipped"][ctrl] = f"not enabled for statistics: {exc}"
        return p, (set(need) - set(errors)) | (set(optional) - set(opt_errors))

    def _enable(self, mount: CgroupMount, d: str,
                ctrls: Sequence[str]) -> dict[str, EnforcementError]:
        """Enable controllers for the children of ``d`` (cgroup2), along the path
        from the mount down; the ones that could not be, with why."""
        errors: dict[str, EnforcementError] = {}
        if not ctrls:
            return errors
        if not os.path.isdir(d):
            self._make_subtree(d, mount)
        for c in ctrls:
            try:
                self._enable_one(mount, d, c)
            except EnforcementError as exc:
                errors[c] = exc
        return errors

    def _enable_one(self, mount: CgroupMount, d: str, ctrl: str) -> None:
        subtree = os.path.join(d, "cgroup.subtree_control")
        if ctrl in read_text(subtree).split():
            return
        if ctrl not in read_text(os.path.join(d, "cgroup.controllers")).split():
            if os.path.normpath(d) == os.path.normpath(mount.path):
                raise CompatibilityError(f"cgroup v2 controller {ctrl}",
                                         f"{mount.path}/cgroup.controllers does not offer it")
            self._enable_one(mount, os.path.dirname(d), ctrl)
        try:
            _write(subtree, "+" + ctrl)
        except EnforcementError as exc:
            if exc.errno == errno.EBUSY and read_text(os.path.join(d, "cgroup.procs")).strip():
                raise EnforcementError(
                    errno.EBUSY, "enable controller",
                    f"{subtree} <- '+{ctrl}': {d} has processes of its own, and cgroup v2 "
                    f"lets only a cgroup without processes enable controllers for its children "
                    f"(the 'no internal processes' rule); pass parent= a cgroup without "
                    f"processes, or move this process into a leaf cgroup first") from None
            raise

    def _apply(self, w: LimitWrite, d: str, parent_dir: str) -> None:
        value = w.value
        if w.file in ("cpuset.cpus", "cpuset.mems"):
            value = check_cpuset(w, parent_dir)
        assert value is not None
        for f, v in ((w.file, value),) + w.alternatives:
            path = os.path.join(d, f)
            if os.path.exists(path):
                _write(path, v, w.field)
                self.report["written"][f] = v
                return
        tried = ", ".join([w.file] + [f for f, _ in w.alternatives])
        reason = f"{d} has no {tried} (the kernel or its I/O scheduler lacks it)"
        if w.is_default:
            self.report["skipped"][w.file] = f"{reason}; {value} is the default, nothing to change"
            return
        self._skip(w.file, reason, CompatibilityError(f"cgroup file {w.file}", f"{w.field}: {reason}"))

    # ---- statistics ----------------------------------------------------------

    def stats(self) -> CgroupStats:
        """Resource use so far (after a run: peak memory, CPU time, PIDs, OOM kills)."""
        vals: dict[str, int | None] = {}

        def put(k: str, v: int | None) -> None:
            if vals.get(k) is None and v is not None:
                vals[k] = v

        def us(ns: int | None) -> int | None:
            return None if ns is None else ns // 1000

        v2 = self.paths.get(V2)
        if v2:
            put("memory_peak", _read_int(os.path.join(v2, "memory.peak")))
            put("memory_current", _read_int(os.path.join(v2, "memory.current")))
            cs = _read_keyed(os.path.join(v2, "cpu.stat"))
            put("cpu_usec", cs.get("usage_usec"))
            put("cpu_user_usec", cs.get("user_usec"))
            put("cpu_system_usec", cs.get("system_usec"))
            put("cpu_throttled_usec", cs.get("throttled_usec"))
            put("pids_current", _read_int(os.path.join(v2, "pids.current")))
            put("pids_peak", _read_int(os.path.join(v2, "pids.peak")))
            put("oom_kills", _read_keyed(os.path.join(v2, "memory.events")).get("oom_kill"))
        for key, d in self.paths.items():
            if key == V2:
                continue
            ctrls = key.split(",")
            if "memory" in ctrls:
                put("memory_peak", _read_int(os.path.join(d, "memory.max_usage_in_bytes")))
                put("memory_current", _read_int(os.path.join(d, "memory.usage_in_bytes")))
                put("oom_kills", _read_keyed(os.path.join(d, "memory.oom_control")).get("oom_kill"))
            if "cpuacct" in ctrls:
                put("cpu_usec", us(_read_int(os.path.join(d, "cpuacct.usage"))))
                put("cpu_user_usec", us(_read_int(os.path.join(d, "cpuacct.usage_user"))))
                put("cpu_system_usec", us(_read_int(os.path.join(d, "cpuacct.usage_sys"))))
            if "cpu" in ctrls:
                put("cpu_throttled_usec",
                    us(_read_keyed(os.path.join(d, "cpu.stat")).get("throttled_time")))
            if "pids" in ctrls:
                put("pids_current", _read_int(os.path.join(d, "pids.current")))
                put("pids_peak", _read_int(os.path.join(d, "pids.peak")))
        return CgroupStats(**vals)

    def pids(self) -> list[int]:
        """The processes in any of this object's cgroups (and cgroups made inside them)."""
        return sorted(_members(list(self.paths.values())))

    # ---- removal ---------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL every process in the cgroups (does not wait for them to die)."""
        if self._detached:
            raise ValueError("the cgroup is detached: this process lives in it")
        self._kill_listed(self._v2_kill())

    def _v2_kill(self) -> bool:
        """cgroup.kill (5.14): kills atomically, forks included. False where it is missing."""
        v2 = self.paths.get(V2)
        if not v2 or not os.path.exists(os.path.join(v2, "cgroup.kill")):
            return False
        try:
            _write(os.path.join(v2, "cgroup.kill"), "1")
        except EnforcementError as exc:
            if exc.errno != errno.ENOENT:
                raise
        return True

    def _kill_listed(self, skip_v2: bool) -> None:
        """SIGKILL what cgroup.procs lists (the v1 cgroups, and cgroup2 unless
        cgroup.kill did it); under the v1 freezer, frozen first so nothing forks
        between the read and the kill."""
        dirs = [d for k, d in self.paths.items() if k != V2 or not skip_v2]
        if self._freezer is not None and _members([self._freezer]):
            state = os.path.join(self._freezer, "freezer.state")
            _write(state, "FROZEN")
            try:
                deadline = time.monotonic() + 1.0
                delay = 0.0002
                while read_text(state).strip() != "FROZEN" and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.01)
                _kill_members(dirs)
            finally:
                _write(state, "THAWED")  # killed tasks die only once thawed
        _kill_members(dirs)

    def _wait_empty(self, timeout: float) -> None:
        """Wait until no process is left: ``populated 0`` in cgroup2's cgroup.events
        (woken by POLLPRI), and empty v1 cgroup.procs (killing again what is listed)."""
        deadline = time.monotonic() + timeout
        v2 = self.paths.get(V2)
        if v2:
            has_kill = os.path.exists(os.path.join(v2, "cgroup.kill"))
            try:
                fd = os.open(os.path.join(v2, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                fd = -1
            if fd >= 0:
                try:
                    poller = select.poll()
                    poller.register(fd, select.POLLPRI)
                    while True:
                        ev = os.pread(fd, 4096, 0).decode()
                        if "populated 0" in ev.splitlines():
                            break
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise EnforcementError(errno.EBUSY, "cgroup removal",
                                                   f"{v2}: processes still running after "
                                                   f"{timeout:g} s ({ev.split(chr(10))[0]})")
                        if not has_kill:
                            self._kill_listed(False)
                        poller.poll(min(left, 0.05 if not has_kill else left) * 1000)
                finally:
                    os.close(fd)
        delay = 0.0002
        while True:
            left_pids = sorted(_members([d for key, d in self.paths.items() if key != V2]))
            if not left_pids:
                return
            if time.monotonic() >= deadline:
                raise EnforcementError(errno.EBUSY, "cgroup removal",
                                       f"processes {' '.join(map(str, left_pids[:10]))} still "
                                       f"running after {timeout:g} s")
            self._kill_listed(True)
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def close(self, timeout: float = _WAIT_TIMEOUT) -> None:
        """Kill what is left, wait for it to be gone, remove the cgroups and close
        the fds. Idempotent; a failure leaves the object open for another try."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._created:
                    self._kill_listed(self._v2_kill())
                    self._wait_empty(timeout)
            finally:
                self._close_fds()
            failed = self._remove_dirs()
            if failed:
                raise EnforcementError(errno.EBUSY, "rmdir", ", ".join(failed))
            self._closed = True

    def detach(self) -> None:
        """Keep the cgroups for good: this process joined them (applying a sandbox to
        itself), so ``close()`` must neither kill what is inside nor remove them;
        it only closes the fds."""
        with self._lock:
            self._detached = True
            self._created = []
            self._made_parents = []

    def _close_fds(self) -> None:
        for fd in (self.clone_fd, self.v2_procs_fd) + self.procs_fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.clone_fd = self.v2_procs_fd = -1
        self.procs_fds = ()

    def _remove_dirs(self) -> list[str]:
        failed = []
        # children first: cgroups the workload made inside ours, deepest first
        doomed = [d for top in reversed(self._created) for d in reversed(_tree(top))]
        for path in doomed:
            deadline = time.monotonic() + _RMDIR_TIMEOUT
            delay = 0.0005
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # EBUSY while the last tasks finish exiting; bounded
                    if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                        failed.append(f"{path}: {exc.strerror}")
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
        self._created = [p for p in self._created if os.path.isdir(p)]
        for d in reversed(self._made_parents):
            try:
                os.rmdir(d)  # only when empty: other sandboxes may still use the subtree
            except OSError:
                pass
        self._made_parents = [d for d in self._made_parents if os.path.isdir(d)]
        return failed

    def _rollback(self) -> None:
        self._close_fds()
        self._remove_dirs()
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Cgroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Cgroup {self.path or '-'} ({state})>"


def _tree(top: str) -> list[str]:
    """A cgroup and the cgroups below it, parents before children."""
    out = [top]
    for dirpath, dirnames, _ in os.walk(top):
        out.extend(os.path.join(dirpath, d) for d in dirnames)
    return out


def _members(dirs: list[str]) -> set[int]:
    """The processes in ``dirs`` and below (v1's cgroup.procs lists only its own)."""
    return {int(tok) for top in dirs for d in _tree(top)
            for tok in read_text(os.path.join(d, "cgroup.procs")).split()}


def _kill_members(dirs: list[str]) -> None:
    """SIGKILL the processes listed in the cgroup.procs of ``dirs``.

    Each pid is pinned with a pidfd and signalled only if it is still listed
    after that, so a pid reused by a process outside is never signalled."""
    fds: dict[int, int] = {}
    try:
        for pid in _members(dirs):
            try:
                fds[pid] = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
        still = _members(dirs) if fds else set()
        for pid, fd in fds.items():
            if pid in still:
                try:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    finally:
        for fd in fds.values():
            os.close(fd)
