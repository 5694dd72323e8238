"""User namespaces: a contained child's root is an unprivileged host range.

``PrivateUsers=True`` maps the child's ids 0-65535 to 65536 host ids that nothing
else uses (never 0 to 0):

* The ranges are root's lines of ``/etc/subuid`` and ``/etc/subgid`` (by name or
  by uid 0), cut into slots of 65536 ids; a slot holding host id 0 is never used.
  Without such lines the slots start at ``DEFAULT_BASE`` (0x70000000,
  1879048192): ``DEFAULT_SLOTS`` (256) of them, past systemd's container range
  (0x00080000-0x6FFFFFFF) and below its foreign range (0x7FFE0000).
* volt-init plans use the first slot (``plan_idmap``), shared by every
  volt-init workload; a ``Sandbox`` allocates one of the others under a lock (``flock`` on ``lock`` in the
  state directory, ``/run/volt-enforce/idmap``) and releases it when closed. A
  slot file names its owner (pid and start time): a slot whose owner is gone is
  free again.
* The parent makes the user namespace once per Sandbox and writes its maps
  (``ve_userns_open``, csrc/users.c); children ``setns`` into it by fd.

``VOLT_ENFORCE_SUBUID``, ``VOLT_ENFORCE_SUBGID`` and ``VOLT_ENFORCE_IDMAP_DIR``
name other files and another state directory (the tests' stand-ins).

A writable directory that the mapped root cannot write (host root's 0755, say)
is bound idmapped in the filesystem view (``check_writable`` with ``can_idmap``,
``owner_userns``, ``probe_idmap``): the mount's idmapping is a user namespace of
its own that maps only the directory's owner (uid and gid) to the child's root,
so the child's root writes there and its files land owned by that owner; every
other id on that mount is unmapped (the overflow id), which nothing in the
child can chown, chmod or override. Such a bind needs a seccomp filter that
denies setuid/setgid mode bits (``strict``, ``default``) and costs the child
CAP_SETFCAP: what it makes there is the owner's on the host (host root's, for a
directory of root). Where the filesystem (or the kernel, before 5.12) has no
idmapped mounts, or there is no view (``contain=False``), the directory is
refused, naming it, its filesystem and the uid it needs.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import os
import stat as _stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._core import ffi, lib
from .errors import EnforcementError, PolicyError
from .model import IsolationConfig, LandlockAccess, LandlockRule

__all__ = ["COUNT", "DEFAULT_BASE", "DEFAULT_SLOTS", "IdMap", "Allocation", "parse_subid",
           "slots", "allocate", "plan_idmap", "open_userns", "check_writable", "idmapped_tree",
           "owner_userns", "probe_idmap", "fs_type", "IDMAP_SECCOMP"]

COUNT = 65536
DEFAULT_BASE = 0x70000000
DEFAULT_SLOTS = 256
STATE_DIR = "/run/volt-enforce/idmap"

#: Rights that make a rule a writable one.
_WRITE = (LandlockAccess.WRITE_FILE | LandlockAccess.MAKE_REG | LandlockAccess.MAKE_DIR
          | LandlockAccess.REMOVE_FILE | LandlockAccess.REMOVE_DIR)


@dataclass(frozen=True)
class IdMap:
    """Child ids 0..count-1 are host ids uid.. and gid.. (``source`` says from where)."""

    uid: int
    gid: int
    count: int = COUNT
    source: str = "default base"

    def uid_map(self) -> str:
        return f"0 {self.uid} {self.count}\n"

    def gid_map(self) -> str:
        return f"0 {self.gid} {self.count}\n"

    def maps_uid(self, host_uid: int) -> bool:
        return self.uid <= host_uid < self.uid + self.count

    def maps_gid(self, host_gid: int) -> bool:
        return self.gid <= host_gid < self.gid + self.count

    def describe(self) -> str:
        return (f"user namespace: root is host uid {self.uid} and gid {self.gid}, "
                f"{self.count} ids from {self.source}")


def parse_subid(text: str, user: str = "root", uid: int = 0) -> list[tuple[int, int]]:
    """The (start, count) ranges of ``user`` (or its uid) in subuid(5) text."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 3 or fields[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if start >= 0 and count > 0 and start + count <= 1 << 32:
            out.append((start, count))
    return out


def slots(ranges: Iterable[tuple[int, int]]) -> list[int]:
    """The bases of whole 65536-id slots in ``ranges``, in order, without host id 0."""
    out: list[int] = []
    for start, count in ranges:
        for i in range(count // COUNT):
            base = start + i * COUNT
            if base != 0 and base not in out:
                out.append(base)
    return out


def _read_ranges(path: str) -> list[tuple[int, int]]:
    try:
        with open(path) as f:
            return parse_subid(f.read())
    except FileNotFoundError:
        return []


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_alive(path: str) -> bool:
    try:
        with open(path) as f:
            pid_s, start = f.read().split()[:2]
    except (OSError, ValueError):
        return False  # unreadable or torn: a crashed allocation, free again
    return _start_time(int(pid_s)) == start


class Allocation:
    """A slot of this process's, released (once) by ``release``."""

    def __init__(self, idmap: IdMap, state_dir: str, name: str) -> None:
        self.idmap = idmap
        self._state_dir = state_dir
        self._name = name
        self._pid = os.getpid()

    def release(self) -> None:
        if self._pid != os.getpid() or not self._name:
            return  # a forked process does not give its parent's slot away
        with _locked(self._state_dir):
            path = os.path.join(self._state_dir, self._name)
            try:
                with open(path) as f:
                    mine = f.read().split()[:1] == [str(self._pid)]
            except FileNotFoundError:
                mine = False
            if mine:
                os.unlink(path)
        self._name = ""


class _locked:
    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "lock")

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock


def _state_dir(path: str) -> str:
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not _stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise EnforcementError(_errno.EPERM, "user_namespace",
                               f"{path}: the id allocation directory must be a directory of "
                               f"uid {os.geteuid()} that nobody else can write")
    return path


def allocate(*, subuid: str | None = None, subgid: str | None = None,
             state_dir: str | None = None) -> Allocation:
    """A free slot of ids for one Sandbox, marked as this process's under the lock."""
    subuid = subuid or os.environ.get("VOLT_ENFORCE_SUBUID", "/etc/subuid")
    subgid = subgid or os.environ.get("VOLT_ENFORCE_SUBGID", "/etc/subgid")
    state = _state_dir(state_dir or os.environ.get("VOLT_ENFORCE_IDMAP_DIR", STATE_DIR))
    uids, gids = slots(_read_ranges(subuid)), slots(_read_ranges(subgid))
    if uids and gids:
        source = f"{subuid} and {subgid}"
    else:
        if uids or gids or _read_ranges(subuid) or _read_ranges(subgid):
            raise EnforcementError(_errno.ERANGE, "user_namespace",
                                   f"{subuid} and {subgid} must both give root whole ranges of "
                                   f"{COUNT} ids (besides host id 0)")
        uids = gids = [DEFAULT_BASE + i * COUNT for i in range(DEFAULT_SLOTS)]
        source = f"the default base {DEFAULT_BASE} (no root lines in {subuid})"
    pairs = list(zip(uids, gids, strict=False))  # subgid may give more than subuid
    if len(pairs) > 1:
        pairs = pairs[1:]  # the first is volt-init's (plan_idmap)
    with _locked(state):
        for uid, gid in pairs:
            name = f"{uid}-{gid}"
            path = os.path.join(state, name)
            if os.path.exists(path):
                if _owner_alive(path):
                    continue
                os.unlink(path)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {_start_time(os.getpid())}\n")
            return Allocation(IdMap(uid, gid, COUNT, source), state, name)
    raise EnforcementError(_errno.EBUSY, "user_namespace",
                           f"all {len(pairs)} ranges of {COUNT} ids from {source} are in use")


def plan_idmap(*, subuid: str | None = None, subgid: str | None = None) -> IdMap:
    """The ids of a volt-init plan: the first slot of the range, without an
    allocation (a plan outlives any lock; volt-init restricts itself and keeps
    nothing to release). Every volt-init workload of one host shares it."""
    subuid = subuid or os.environ.get("VOLT_ENFORCE_SUBUID", "/etc/subuid")
    subgid = subgid or os.environ.get("VOLT_ENFORCE_SUBGID", "/etc/subgid")
    uids, gids = slots(_read_ranges(subuid)), slots(_read_ranges(subgid))
    if uids and gids:
        return IdMap(uids[0], gids[0], COUNT, f"{subuid} and {subgid}")
    return IdMap(DEFAULT_BASE, DEFAULT_BASE, COUNT, f"the default base {DEFAULT_BASE}")


def open_userns(idmap: IdMap) -> int:
    """A user namespace with ``idmap``'s maps, written by this process: its fd."""
    step = ffi.new("int *")
    fd = lib.ve_userns_open(idmap.uid_map().encode(), idmap.gid_map().encode(), step)
    if fd < 0:
        what = ("clone(CLONE_NEWUSER)", "uid_map", "gid_map", "/proc/PID/ns/user")[step[0]]
        raise EnforcementError(-fd, "user_namespace", f"preparing it: {what}")
    return int(fd)


def idmapped_tree(path: str, userns_fd: int) -> int:
    """A detached, recursive copy of the mount tree at ``path``, idmapped through
    ``userns_fd``: for the filesystem view to mount where a writable directory
    belongs to host ids the namespace does not map. OSError where the
    filesystem (or the kernel, before 5.12) has no idmapped mounts."""
    fd = lib.ve_idmapped_tree(os.fsencode(path), userns_fd)
    if fd < 0:
        raise OSError(-fd, os.strerror(-fd), path)
    return int(fd)


def _preset_rules() -> set[tuple[str, int]]:
    from .model import desktop_policy, server_policy

    return {(r.path, int(r.access)) for p in (server_policy("/"), desktop_policy("/"))
            for r in p.rules if r.access & _WRITE}


def _writable(st: os.stat_result, idmap: IdMap, dac_override: bool) -> bool:
    if dac_override and idmap.maps_uid(st.st_uid) and idmap.maps_gid(st.st_gid):
        return True  # root of the namespace, over an inode it maps
    if st.st_uid == idmap.uid:
        return st.st_mode & 0o300 == 0o300
    if st.st_gid == idmap.gid:
        return st.st_mode & 0o030 == 0o030
    return st.st_mode & 0o003 == 0o003


def _writable_idmapped(st: os.stat_result, dac_override: bool) -> bool:
    """Whether the child's root writes the directory once its owner is mapped to it."""
    return dac_override or st.st_mode & 0o300 == 0o300


#: The seccomp profiles whose filter denies setuid/setgid mode bits (the
#: containment rules): an idmapped bind needs one (what the child makes there is
#: the directory owner's on the host).
IDMAP_SECCOMP = ("strict", "default")


def _refusal(path: str, st: os.stat_result, idmap: IdMap, why: str) -> PolicyError:
    return PolicyError(
        "PrivateUsers", path,
        f"is writable by the policy but not by the user namespace's root, host uid "
        f"{idmap.uid} (gid {idmap.gid}): it belongs to {st.st_uid}:{st.st_gid} with "
        f"mode {_stat.S_IMODE(st.st_mode):o}{why}; give uid {idmap.uid} write access to it, "
        f"or turn PrivateUsers off")


def check_writable(config: IsolationConfig, idmap: IdMap, capabilities: Sequence[str] | None,
                   *, can_idmap: bool = False,
                   named_writable: Sequence[str] = ()) -> list[str]:
    """The writable directories of ``config`` (its own rules, and preset rules the
    caller named writable, ``named_writable``: those are bound, not private) that
    the namespace's root cannot write. With ``can_idmap`` (a filesystem view) they
    are returned, to be bound idmapped; without, the first one raises PolicyError
    naming it and the uid it needs. One that an idmapped bind would not make
    writable either (mode without u+w, no CAP_DAC_OVERRIDE) is refused as well."""
    policy = config.landlock
    if policy is None:
        return []
    presets = _preset_rules()
    named = {os.path.normpath(p) for p in named_writable}
    dac = capabilities is None or "DAC_OVERRIDE" in capabilities
    out = []
    for rule in policy.rules:
        if not isinstance(rule, LandlockRule) or not rule.access & _WRITE:
            continue
        if (rule.path, int(rule.access)) in presets and os.path.normpath(rule.path) not in named:
            continue
        try:
            st = os.stat(rule.path)
        except OSError:
            continue  # Landlock's compile stage reports a missing path
        if not _stat.S_ISDIR(st.st_mode) or _writable(st, idmap, dac):
            continue
        if not can_idmap:
            raise _refusal(rule.path, st, idmap, "")
        if not _writable_idmapped(st, dac):
            raise _refusal(rule.path, st, idmap, " (without u+w, an idmapped bind would not "
                           "make it writable either)")
        if rule.path not in out:
            out.append(rule.path)
    return out


def fs_type(path: str) -> str:
    """The type of the filesystem ``path`` is on (the last mount over it in
    /proc/self/mountinfo), or "unknown"."""
    real = os.path.realpath(path)
    best, kind = -1, "unknown"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) < 5 or not right:
                    continue
                point = fields[4].replace("\\040", " ")
                inside = point == "/" or real == point or real.startswith(point + "/")
                if inside and len(point) >= best:
                    best, kind = len(point), right.split()[0]
    except OSError:
        pass
    return kind


def owner_userns(st: os.stat_result, idmap: IdMap) -> int:
    """The user namespace of an idmapped bind of a directory with ``st``: its owner
    uid and gid (only they) map to the child's root, ``idmap.uid`` and ``idmap.gid``.
    Its fd (the mount keeps the namespace once idmapped; the caller closes it)."""
    step = ffi.new("int *")
    fd = lib.ve_userns_open(f"{st.st_uid} {idmap.uid} 1\n".encode(),
                            f"{st.st_gid} {idmap.gid} 1\n".encode(), step)
    if fd < 0:
        what = ("clone(CLONE_NEWUSER)", "uid_map", "gid_map", "/proc/PID/ns/user")[step[0]]
        raise EnforcementError(-fd, "user_namespace", f"preparing the idmapped bind's: {what}")
    return int(fd)


def probe_idmap(path: str, userns_fd: int, idmap: IdMap) -> None:
    """Refuse ``path`` (PolicyError naming it, its filesystem and the uid it needs)
    where its mount cannot be idmapped: the filesystem has no idmapped mounts
    (EINVAL), the kernel predates them (ENOSYS), or the mount is refused (EPERM)."""
    try:
        os.close(idmapped_tree(path, userns_fd))
    except OSError as exc:
        st = os.stat(path)
        raise _refusal(path, st, idmap, f", and its filesystem ({fs_type(path)}) cannot be "
                       f"bound idmapped ({exc.strerror})") from None
