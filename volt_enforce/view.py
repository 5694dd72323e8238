"""The filesystem view: a private mount tree built from the policy.

A contained child does not see the host's filesystem. ``plan_view`` decides,
from a config (pure, no system call but ``stat``), what the child's tree holds;
``View`` prepares it once per ``Sandbox`` as a template (a mount namespace held
by fd, built by csrc/view.c), and each child enters it, copies it and mounts
its own /proc, /tmp, /dev/shm, devpts and the other private directories on top.

What the view holds
-------------------
* Every path the Landlock policy grants, bind-mounted at its place: read-only
  unless the rule grants a write right (made read-only recursively, with
  ``mount_setattr(AT_RECURSIVE)``, so submounts follow), always nosuid, nodev
  (device binds under /dev excepted) and noexec unless the rule grants
  EXECUTE. Symbolic links among the granted paths (``/lib -> usr/lib``) are
  links in the view too. Nothing else exists: a denied path is absent (ENOENT).
* With the host as rootfs (``/``), the preset's writable system directories
  (/tmp, /var, /run, /app; /home of the desktop preset) are private, empty
  tmpfs of each child: nothing written there reaches the host. A rule counts as
  a preset rule when its (path, access) is the preset table's for rootfs ``/``,
  so this holds after a JSON round trip. A path the caller names writable
  (``--rw DIR``, a rule of their own) is bound writable, on top. The desktop
  preset's read-write /etc stays the host's, read-only.
* A rule on ``/`` binds the host root read-only (writable only with ``--rw /``,
  ``named_writable=("/",)``).
* Without a filesystem policy the view is the host's root, read-only, with
  private /tmp, /run, /dev and /proc.
* /proc/sys and /proc/sysrq-trigger are read-only (the kernel's settings stay the
  host's to change).
* Always: a minimal /dev (null, zero, full, random, urandom, tty; fd, stdin,
  stdout, stderr links; a private devpts with ptmx; a private /dev/shm), a
  fresh /proc and, where the root is not the host's, a private, empty, writable $HOME
  (with the granted paths below it bound on top).

Landlock stays on top as the second wall: its rules are opened inside each
child's view (csrc/view.c), so they cover the child's own /proc and tmpfs.
Where the view grants a directory writable, Landlock grants what an ordinary
program needs there (making regular files, directories, symlinks, fifos and
sockets, removing, renaming within, truncating): added at enforcement, the
seed's READ_WRITE and the JSON keep their values. The server and desktop
presets are also scoped (signals, abstract UNIX sockets) where the kernel has
scopes (ABI 6), best effort, and reported.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._core import ffi, lib
from ._paths import path_under
from .errors import EnforcementError, PolicyError
from .model import _DESKTOP, _SERVER, IsolationConfig, LandlockAccess, LandlockRule

if TYPE_CHECKING:
    from .landlock import CompiledRuleset

__all__ = ["ViewPlan", "View", "plan_view", "preset_private", "is_preset_policy",
           "WRITABLE_EXTRA"]

_A = LandlockAccess
_RDONLY, _NOSUID = lib.MOUNT_ATTR_RDONLY, lib.MOUNT_ATTR_NOSUID
_NODEV, _NOEXEC = lib.MOUNT_ATTR_NODEV, lib.MOUNT_ATTR_NOEXEC

#: Rights that make a rule writable in the view (a read-write bind).
_WRITES = int(_A.WRITE_FILE | _A.TRUNCATE | _A.REMOVE_DIR | _A.REMOVE_FILE | _A.MAKE_CHAR
              | _A.MAKE_DIR | _A.MAKE_REG | _A.MAKE_SOCK | _A.MAKE_FIFO | _A.MAKE_BLOCK
              | _A.MAKE_SYM | _A.REFER)
#: "Writable means writable": what Landlock grants on a directory the view makes
#: writable, on top of the rule's own rights (enforcement only, never in JSON).
WRITABLE_EXTRA = (_A.MAKE_REG | _A.MAKE_DIR | _A.MAKE_SYM | _A.MAKE_FIFO | _A.MAKE_SOCK
                  | _A.REFER | _A.REMOVE_FILE | _A.REMOVE_DIR | _A.TRUNCATE)

_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
              ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
              ("ptmx", "pts/ptmx"))
#: The preset directories a child gets private on the host's root, with the
#: options of its tmpfs.
_PRIVATE_TMPFS = {"/tmp": "mode=1777", "/var": "mode=0755", "/run": "mode=0755",
                  "/app": "mode=0755", "/home": "mode=0755"}
#: Preset read-write directories the host root keeps read-only instead (an
#: empty /etc would break every program).
_HOST_READ_ONLY = ("/etc",)
_MAX_SLOTS = 64


def _preset_table() -> set[tuple[str, int]]:
    return {("/" + name, int(acc)) for name, acc in _SERVER + _DESKTOP}


def preset_private(rule: LandlockRule) -> bool:
    """Whether ``rule`` is one of the presets' writable system directories for
    rootfs ``/`` (recognized by path and access, so it survives JSON)."""
    return ((rule.path, int(rule.access)) in _preset_table()
            and bool(int(rule.access) & _WRITES) and rule.path in _PRIVATE_TMPFS)


def is_preset_policy(rules: Sequence[LandlockRule], rootfs: str = "/") -> str | None:
    """"server" or "desktop" when ``rules`` hold every rule of that preset for
    ``rootfs`` (by path and access), else None."""
    have = {(r.path, int(r.access)) for r in rules}
    for name, table in (("desktop", _DESKTOP), ("server", _SERVER)):
        want = {(os.path.join(rootfs, n), int(a)) for n, a in table}
        if want <= have:
            return name
    return None


def _depth(path: str) -> int:
    return 0 if path == "/" else path.count("/")


def _rel(path: str) -> str:
    return path.lstrip("/") or "."


def _view_path(path: str) -> str:
    """Where a host path is placed: its parent resolved (symlinks in the
    middle of a path are the host's business), its last component as it is."""
    parent, name = os.path.split(os.path.normpath(path))
    return os.path.join(os.path.realpath(parent), name) if name else "/"


#: An idmapped bind's mapping: (owner uid, owner gid) on disk shown as the child's
#: root (root uid, root gid) on the host: volt_enforce.users.owner_userns.
IdmapSpec = tuple[int, int, int, int]


@dataclass
class _Bind:
    host: str
    view: str
    attr: int
    writable: bool
    idmap: IdmapSpec | None = None


@dataclass
class ViewPlan:
    """What a child's filesystem holds (decided by ``plan_view``)."""

    root: str  # "tmpfs", or the host directory bound as the root
    root_attr: int
    binds: list[_Bind] = field(default_factory=list)
    symlinks: list[tuple[str, str]] = field(default_factory=list)  # view path, target
    private: dict[str, str] = field(default_factory=dict)  # view path -> tmpfs options
    private_exec: set[str] = field(default_factory=set)
    home: str | None = None
    read_only: bool = False
    notes: list[str] = field(default_factory=list)
    #: where the template's root is attached before the pivot (in the helper's own
    #: namespace only): what it hides is cloned first, and rules rarely grant /dev
    scratch: str = "/dev"
    #: the host directory the view's "/" shows (another rootfs), "/" for the host's
    rootfs: str = "/"
    #: each child mounts a procfs of its own (for a PID namespace of its own); without
    #: one the template's procfs shows the same processes, so none is mounted
    fresh_proc: bool = False
    #: the root bind idmapped (``--rw /`` under PrivateUsers), as a bind's ``idmap``
    root_idmap: IdmapSpec | None = None

    def with_idmaps(self, maps: dict[str, IdmapSpec]) -> ViewPlan:
        """A copy whose writable binds of the host paths in ``maps`` are idmapped
        (PrivateUsers: directories the child's root could not write otherwise)."""
        import dataclasses

        binds = [dataclasses.replace(b, idmap=maps[b.host]) if b.host in maps and b.writable
                 else b for b in self.binds]
        root = maps.get(self.root) if self.root != "tmpfs" and not self.root_attr & _RDONLY \
            else None
        return dataclasses.replace(self, binds=binds, root_idmap=root)

    def idmapped(self) -> list[str]:
        """The host paths bound idmapped."""
        out = [self.root] if self.root_idmap is not None else []
        return out + [b.host for b in self.binds if b.idmap is not None]

    def with_file_bind(self, host: str, view: str) -> ViewPlan:
        """A copy that also binds the file ``host`` at ``view``, read-only (the
        private network's resolv.conf)."""
        import dataclasses

        bind = _Bind(host=host, view=view, attr=_RDONLY | _NOSUID | _NODEV | _NOEXEC,
                     writable=False)
        binds = sorted([*(b for b in self.binds if b.view != view), bind],
                       key=lambda b: (_depth(b.view), b.view))
        return dataclasses.replace(self, binds=binds)

    def to_view(self, host_path: str) -> str:
        """Where a host path is in the view (a path inside another rootfs moves to /)."""
        if self.rootfs != "/" and path_under(host_path, self.rootfs):
            rel = os.path.relpath(host_path, self.rootfs)
            return "/" if rel == "." else "/" + rel
        return host_path

    def in_base(self, view_path: str) -> bool:
        """Whether the root mount itself holds ``view_path`` (no directory is made in it)."""
        if self.root == "tmpfs":
            return False
        return os.path.isdir(os.path.join(self.root, view_path.lstrip("/")))

    def writable_dirs(self) -> list[str]:
        """View paths where the view lets a child write (for Landlock's extras)."""
        out = [b.view for b in self.binds if b.writable]
        out += list(self.private)
        if self.home:
            out.append(self.home)
        out.append("/dev/shm")
        if self.root != "tmpfs" and not self.root_attr & _RDONLY:
            out.append("/")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "root_read_only": bool(self.root_attr & _RDONLY),
            "binds": [{"path": b.view, "source": b.host, "writable": b.writable,
                       "exec": not b.attr & _NOEXEC,
                       **({"idmapped": {"owner": list(b.idmap[:2]), "as": list(b.idmap[2:])}}
                          if b.idmap is not None else {})} for b in self.binds],
            "symlinks": [{"path": p, "target": t} for p, t in self.symlinks],
            "private": sorted(self.private) + ([self.home] if self.home else []),
            "rootfs": self.rootfs,
            "notes": list(self.notes),
        }


def _bind_attr(path: str, access: int, read_only: bool, writable_ok: bool = True) -> int:
    attr = _NOSUID
    if not path_under(path, "/dev"):
        attr |= _NODEV
    if read_only or not (access & _WRITES) or not writable_ok:
        attr |= _RDONLY
    if not access & int(_A.EXECUTE):
        attr |= _NOEXEC
    return attr


def plan_view(config: IsolationConfig, *, named_writable: tuple[str, ...] = (),
              home: str | None = None, rootfs: str = "/") -> ViewPlan:
    """The view for ``config`` on the host's root (see the module doc).

    ``named_writable``: host paths the caller named writable (the CLI's ``--rw``):
    bound writable even where a preset rule would make them private, and ``/``
    among them makes the host root writable (a rule on ``/`` alone never does).
    ``home``: the private $HOME (default: this process's $HOME).
    ``rootfs``: another root directory for the child (the seed's container): see
    ``_plan_rootfs``.
    """
    if not isinstance(config, IsolationConfig):
        raise PolicyError("isolation", config, "is not an IsolationConfig")
    if not isinstance(rootfs, str) or not os.path.isabs(rootfs):
        raise PolicyError("rootfs", rootfs, "is not an absolute path")
    if os.path.normpath(rootfs) != "/":
        plan = _plan_rootfs(config, os.path.realpath(rootfs), named_writable)
        _check_slots(plan)
        return plan
    ro = config.read_only_fs
    policy = config.landlock
    named = {os.path.normpath(p) for p in named_writable}
    if policy is None:
        plan = ViewPlan(root="/", root_attr=_RDONLY | _NOSUID | _NODEV, read_only=ro)
        plan.private = {"/tmp": "mode=1777", "/run": "mode=0755"}
        plan.notes.append("no filesystem policy: the host's root, read-only, with private "
                          "/tmp, /run, /dev and /proc")
    else:
        rules = list(policy.rules)
        root_rules = [r for r in rules if os.path.normpath(r.path) == "/"]
        if root_rules:
            access = 0
            for r in root_rules:
                access |= int(r.access)
            writes = bool(access & _WRITES) and "/" in named and not ro
            plan = ViewPlan(root="/", root_attr=_bind_attr("/", access, ro, writes), read_only=ro)
            if not writes:  # as without a policy: the host's root read-only, these private
                plan.private = {"/tmp": "mode=1777", "/run": "mode=0755"}
            if access & _WRITES and not writes and not ro:
                plan.notes.append("a rule on / grants writing: the host's root stays read-only "
                                  "in the view (only --rw / makes it writable)")
        else:
            plan = ViewPlan(root="tmpfs", root_attr=_RDONLY | _NOSUID | _NODEV, read_only=ro)
        _plan_rules(plan, [r for r in rules if r not in root_rules], ro, named)
    h = home if home is not None else os.environ.get("HOME")
    if plan.root == "tmpfs" and h and os.path.isabs(h) and os.path.normpath(h) != "/":
        h = _view_path(h)
        covered = any(path_under(h, b.view) for b in plan.binds) or h in plan.private
        base_has_it = plan.root == "tmpfs" or os.path.isdir(h)
        if not covered and base_has_it and not any(path_under(h, p) and h != p for p in ("/proc", "/dev")):
            plan.home = h
    _check_slots(plan)
    return plan


def _plan_rules(plan: ViewPlan, rules: list[LandlockRule], ro: bool, named: set[str]) -> None:
    explicit_rw = {_view_path(r.path) for r in rules
                   if (not preset_private(r) or os.path.normpath(r.path) in named)
                   and int(r.access) & _WRITES}
    merged: dict[str, int] = {}
    order: list[str] = []
    for r in sorted(rules, key=lambda r: _depth(os.path.normpath(r.path))):
        path = os.path.normpath(r.path)
        if not os.path.lexists(path):
            continue  # Landlock's compile skips it or says it is missing
        view = _view_path(path)
        if path_under(view, "/proc"):
            plan.notes.append(f"{path}: the view has a /proc of its own; the rule applies there")
            continue
        if view == "/dev":
            plan.notes.append("/dev: the view has a minimal /dev of its own; the rule applies "
                              "there")
            continue
        if os.path.islink(view):
            target = os.readlink(view)
            if (view, target) not in plan.symlinks:
                plan.symlinks.append((view, target))
            continue
        if preset_private(r) and view not in explicit_rw and not ro:
            plan.private[view] = _PRIVATE_TMPFS[view]
            if int(r.access) & int(_A.EXECUTE):
                plan.private_exec.add(view)
            continue
        if view in merged:
            merged[view] |= int(r.access)
            continue
        merged[view] = int(r.access)
        order.append(view)
        if view in _HOST_READ_ONLY and (view, int(r.access)) in _preset_table() \
                and int(r.access) & _WRITES and view not in explicit_rw:
            plan.notes.append(f"{view}: the preset grants writing; on the host's root it is "
                              "the host's, read-only in the view")
    for view in order:
        access = merged[view]
        host_ro = view in _HOST_READ_ONLY and view not in explicit_rw and (
            (view, access) in _preset_table())
        attr = _bind_attr(view, access, ro, not host_ro)
        plan.binds.append(_Bind(host=view, view=view, attr=attr, writable=not attr & _RDONLY))


def _plan_rootfs(config: IsolationConfig, rootfs: str, named_writable: tuple[str, ...]) -> ViewPlan:
    """The view of a child pivoted into ``rootfs`` (the seed's container):

    * "/" is ``rootfs`` bound (nosuid, nodev, noexec; read-only under ReadOnlyFS),
      and each rule's path inside it bound at its place with its own rights;
      /tmp and /run of the presets are private per child, as on the host;
    * a path the policy grants outside ``rootfs``, and /dev and /proc when
      ``rootfs`` lacks them, need mount points: then "/" is a tmpfs holding
      ``rootfs``'s entries (bound, links copied) and those mount points, so that
      no directory is ever made inside ``rootfs``.
    """
    if not os.path.isdir(rootfs):
        raise PolicyError("rootfs", rootfs, "is not a directory")
    ro = config.read_only_fs
    root_attr = _NOSUID | _NODEV | _NOEXEC | (_RDONLY if ro else 0)
    plan = ViewPlan(root=rootfs, root_attr=root_attr, read_only=ro, rootfs=rootfs)
    rules = list(config.landlock.rules) if config.landlock is not None else []
    outside: list[str] = []
    inside: list[LandlockRule] = []
    for r in rules:
        path = os.path.normpath(r.path)
        if path_under(path, rootfs):
            inside.append(r)
        elif os.path.lexists(path):
            outside.append(path)
    tops = {"dev", "proc"} | {p.strip("/").split("/")[0] for p in outside} - {"tmp", "run"}
    private_tops = {"tmp", "run"}  # made private below, when the preset grants them
    for p in outside:
        top = p.strip("/").split("/")[0]
        if top in private_tops:
            continue
        if os.path.lexists(os.path.join(rootfs, top)) and not os.path.exists(
                os.path.join(rootfs, p.lstrip("/"))):
            raise PolicyError("Landlock.Rules", p, f"cannot be placed in the view: {rootfs} has "
                              f"/{top} but not {p} (no directory is made inside the rootfs)")
    if any(not os.path.isdir(os.path.join(rootfs, t)) for t in tops):
        plan.root = "tmpfs"
        plan.root_attr = _RDONLY | _NOSUID | _NODEV
        plan.notes.append(f"{rootfs} lacks mount points the view needs: its entries are bound "
                          "on a tmpfs over the root")
        for name in sorted(os.listdir(rootfs)):
            host = os.path.join(rootfs, name)
            if os.path.islink(host):
                plan.symlinks.append(("/" + name, os.readlink(host)))
            elif os.path.isdir(host) or os.path.isfile(host):
                plan.binds.append(_Bind(host=host, view="/" + name, attr=root_attr,
                                        writable=not root_attr & _RDONLY))
    preset_tmp = {os.path.join(rootfs, n): v for n, v in (("tmp", "mode=1777"),
                                                           ("run", "mode=0755"))}
    merged: dict[str, int] = {}
    for r in sorted(inside, key=lambda r: _depth(os.path.normpath(r.path))):
        path = os.path.normpath(r.path)
        if path == rootfs or not os.path.lexists(path) or os.path.islink(path):
            continue  # the root itself, or a link that is there as it is
        view = plan.to_view(path)
        if view in ("/proc", "/dev") or path_under(view, "/proc"):
            continue
        if (path in preset_tmp and int(r.access) & _WRITES and not ro
                and path not in named_writable and (os.path.basename(path), int(r.access))
                in {(n, int(a)) for n, a in _SERVER + _DESKTOP}):
            plan.private[view] = preset_tmp[path]
            continue
        merged[path] = merged.get(path, 0) | int(r.access)
    for path in outside:
        for r in rules:
            if os.path.normpath(r.path) == path:
                merged[path] = merged.get(path, 0) | int(r.access)
    for path, access in merged.items():
        view = plan.to_view(path)
        attr = _bind_attr(view, access, ro)
        plan.binds = [b for b in plan.binds if b.view != view]
        plan.binds.append(_Bind(host=path, view=view, attr=attr, writable=not attr & _RDONLY))
    plan.binds.sort(key=lambda b: (_depth(b.view), b.view))
    if plan.root != "tmpfs":
        nested = {b.view for b in _nested(plan)}
        for b in plan.binds:
            if b.view not in nested and not os.path.lexists(os.path.join(rootfs, b.view[1:])):
                raise PolicyError("Landlock.Rules", b.host, f"cannot be placed in the view: "
                                  f"{rootfs} lacks {b.view} (no directory is made inside the "
                                  "rootfs)")
    return plan


def _check_slots(plan: ViewPlan) -> None:
    early = [b for b in plan.binds if path_under(b.host, plan.scratch)]
    if len(early) + 2 > _MAX_SLOTS:
        raise PolicyError("Landlock.Rules", len(early),
                          f"is too many paths below {plan.scratch} for the view "
                          f"({_MAX_SLOTS - 2} at most)")


# ---- the operations csrc/view.c runs --------------------------------------------------


@dataclass
class _Op:
    op: int
    path: str
    slot: int = -1
    recursive: bool = False
    mode: int = 0
    attr: int = 0
    data: str | None = None
    userns_fd: int = -1


_STASH = "dev/.volt-binds"
_PRIVATE = "dev/.volt-private"
_PRIVATE_ATTR = _NOSUID | _NODEV | _NOEXEC


def _privates(plan: ViewPlan) -> dict[str, tuple[int, str]]:
    """The directories each child mounts a tmpfs of its own on: attr, options."""
    privates: dict[str, tuple[int, str]] = {}
    for path, data in plan.private.items():
        attr = _NOSUID | _NODEV | (0 if path in plan.private_exec else _NOEXEC)
        privates[path] = (attr, data)
    if plan.home:
        privates[plan.home] = (_NOSUID | _NODEV | _NOEXEC, "mode=0700")
    privates["/dev/shm"] = (_NOSUID | _NODEV | _NOEXEC, "mode=1777")
    return privates


def _nested(plan: ViewPlan) -> list[_Bind]:
    """Binds below a private directory: the template keeps them in a stash under its
    /dev (the same directories with the same rights, so nothing more is reachable),
    and each child puts them back on top of its own tmpfs. No mount point is made
    in a directory of the host's or of the rootfs for them."""
    privates = _privates(plan)
    return [b for b in plan.binds if any(path_under(b.view, p) and b.view != p for p in privates)]


def _template_ops(plan: ViewPlan, idmap_fds: dict[str, int] | None = None,
                  proc: bool = True) -> tuple[list[_Op], list[str]]:
    """The template's operations, and what each is about (for errors).
    ``idmap_fds``: the user namespace of each idmapped bind, by host path.
    ``proc``: a procfs in the template; without, a child with a procfs of its own
    mounts it on the bare mount point (it does so as the caller, in the initial
    user namespace, where no other procfs needs to be visible)."""
    ops: list[_Op] = []
    what: list[str] = []

    def add(op: _Op, about: str) -> None:
        ops.append(op)
        what.append(about)

    def idmap(host: str, spec: IdmapSpec | None, slot: int) -> None:
        if spec is None:
            return
        fd = (idmap_fds or {}).get(host, -1)
        if fd < 0:
            raise PolicyError("view", host, "is to be bound idmapped, but no user namespace "
                              "was given for it")
        add(_Op(lib.VE_VOP_IDMAP, "", slot=slot, userns_fd=fd),
            f"idmapping {host} (its owner as the child's root)")

    # Clones are taken before the root is attached at the scratch directory only for
    # what that hides; everything else is cloned and attached in turn (one slot).
    slot = 0
    root_slot = -1
    if plan.root != "tmpfs":
        add(_Op(lib.VE_VOP_CLONE, plan.root, slot=slot, recursive=True, attr=plan.root_attr),
            f"binding {plan.root} as the root")
        idmap(plan.root, plan.root_idmap, slot)
        root_slot, slot = slot, slot + 1
    early: dict[str, int] = {}
    for b in plan.binds:
        if path_under(b.host, plan.scratch):
            add(_Op(lib.VE_VOP_CLONE, b.host, slot=slot, recursive=True, attr=b.attr),
                f"binding {b.host}")
            idmap(b.host, b.idmap, slot)
            early[b.view] = slot
            slot += 1
    turn = slot  # the slot of a clone attached at once

    def bind(b: _Bind, where: str, about: str) -> None:
        if b.view not in early:
            add(_Op(lib.VE_VOP_CLONE, b.host, slot=turn, recursive=True, attr=b.attr), about)
            idmap(b.host, b.idmap, turn)
        add(_Op(lib.VE_VOP_ATTACH, where, slot=early.get(b.view, turn)), about)

    # the device nodes: made in the template's /dev (a mount each would be copied
    # and torn down with every child), as the host's, on a read-only tmpfs
    devs = []
    for name in _DEVICES:
        try:
            st = os.stat("/dev/" + name)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode):
            devs.append((name, stat.S_IFCHR | stat.S_IMODE(st.st_mode), st.st_rdev))
    add(_Op(lib.VE_VOP_ROOT, plan.scratch, slot=root_slot, data="mode=0755"),
        "the view's root")
    if plan.root == "/":
        for sub in ("proc", "dev", "run"):
            add(_Op(lib.VE_VOP_UMOUNT, sub), f"hiding the host's /{sub}")
    nested = {b.view: i for i, b in enumerate(_nested(plan))}
    for b in plan.binds:
        if b.view not in nested:
            bind(b, _rel(b.view), f"binding {b.host}")
    for path, target in plan.symlinks:
        add(_Op(lib.VE_VOP_SYMLINK, _rel(path), data=target), f"the link {path}")
    add(_Op(lib.VE_VOP_TMPFS, "dev", attr=_NOSUID | _NOEXEC, data="mode=0755,size=64k"),
        "the view's /dev")
    for b in plan.binds:
        if b.view in nested:
            bind(b, f"{_STASH}/{nested[b.view]}",
                 f"binding {b.host} (kept for each child's private directory)")
    for name, mode, rdev in devs:
        add(_Op(lib.VE_VOP_MKNOD, "dev/" + name, mode=mode, attr=rdev), f"/dev/{name}")
    for name, target in _DEV_LINKS:
        add(_Op(lib.VE_VOP_SYMLINK, "dev/" + name, data=target), f"the link /dev/{name}")
    for d in ("dev/pts", "dev/shm", _PRIVATE):
        add(_Op(lib.VE_VOP_MKDIR, d), f"/{d}")
    add(_Op(lib.VE_VOP_SETATTR, "dev", attr=_RDONLY), "making /dev read-only")
    if not proc:
        add(_Op(lib.VE_VOP_MKDIR, "proc", mode=0o555), "the mount point /proc")
    else:
        # a full procfs stays visible under each child's own (a user namespace needs one)
        add(_Op(lib.VE_VOP_PROC, "proc"), "the template's /proc")
        # the kernel's settings stay the host's to change, as under Docker
        for sub in [p for p in ("proc/sys", "proc/sysrq-trigger") if os.path.exists("/" + p)]:
            add(_Op(lib.VE_VOP_CLONE, sub, slot=turn, recursive=True,
                    attr=_RDONLY | _NOSUID | _NODEV | _NOEXEC), f"/{sub} read-only")
            add(_Op(lib.VE_VOP_ATTACH, sub, slot=turn), f"/{sub} read-only")
    for path in sorted(plan.private) + ([plan.home] if plan.home else []):
        if plan.root == "tmpfs":
            add(_Op(lib.VE_VOP_MKDIR, _rel(path)), f"the mount point {path}")
        elif not plan.in_base(path):
            raise PolicyError("view", path, f"has no mount point in {plan.root} (no directory "
                              "is made there)")
    add(_Op(lib.VE_VOP_PIVOT, "."), "pivot_root into the view")
    if plan.root == "tmpfs":
        add(_Op(lib.VE_VOP_SETATTR, "/", attr=plan.root_attr), "making the root read-only")
    return ops, what


def _child_ops(plan: ViewPlan) -> tuple[list[_Op], list[str]]:
    """Each child's own mounts: private tmpfs, /dev/shm, devpts, /proc; binds that
    sit below a private directory are cloned first and put back on top."""
    privates = _privates(plan)
    nested = _nested(plan)
    ops: list[_Op] = []
    what: list[str] = []
    # one tmpfs per child holds every private directory (a superblock costs more than
    # a bind): a directory of it for each, bound at its place
    # (noexec, as its directories are: one the policy lets execute gets a tmpfs of its own)
    ops.append(_Op(lib.VE_VOP_TMPFS, _PRIVATE, attr=_PRIVATE_ATTR, data="mode=0700"))
    what.append("the child's private tmpfs")
    own = {p for p, (attr, _) in privates.items() if not attr & _NOEXEC}
    order = {path: k for k, path in enumerate(sorted(set(privates) - own))}
    for path, k in order.items():
        mode = int(privates[path][1].split("mode=", 1)[1].split(",")[0], 8)
        ops.append(_Op(lib.VE_VOP_MKDIR, f"{_PRIVATE}/{k}", mode=mode))
        what.append(f"the private {path}")
        if path == "/var":  # made before the bind: one call, no lookup through it
            ops.append(_Op(lib.VE_VOP_SYMLINK, f"{_PRIVATE}/{k}/tmp", data="/tmp"))
            what.append("the link /var/tmp")
    stash = {b.view: i for i, b in enumerate(nested)}
    items: list[tuple[str, str]] = [(p, "private") for p in privates]
    items += [(b.view, "bind") for b in nested]
    items += [("/dev/pts", "devpts")] + ([("/proc", "proc")] if plan.fresh_proc else [])
    for path, kind in sorted(items, key=lambda it: (_depth(it[0]), it[0])):
        if kind == "private" and path in own:
            attr, data = privates[path]
            ops.append(_Op(lib.VE_VOP_TMPFS, _rel(path), attr=attr, data=data))
            what.append(f"the private {path}")
        elif kind == "private":
            # its mount point is the template's; the bind keeps the private tmpfs's
            # nosuid, nodev, noexec (the attrs of every directory of it)
            attr = privates[path][0]
            ops.append(_Op(lib.VE_VOP_BIND, _rel(path), data=f"{_PRIVATE}/{order[path]}",
                           attr=0 if attr == _PRIVATE_ATTR else attr))
            what.append(f"the private {path}")
        elif kind == "bind":
            ops.append(_Op(lib.VE_VOP_CLONE, f"{_STASH}/{stash[path]}", slot=0, recursive=True))
            ops.append(_Op(lib.VE_VOP_ATTACH, _rel(path), slot=0))
            what += [f"binding {path} above the private directory"] * 2
        elif kind == "devpts":
            ops.append(_Op(lib.VE_VOP_DEVPTS, "dev/pts"))
            what.append("the private devpts")
        else:
            ops.append(_Op(lib.VE_VOP_PROC, "proc"))
            what.append("the child's /proc")
            # its kernel settings read-only too, as the template's
            # (a fresh procfs has no submounts: the bind's own flags are all there is)
            for sub in [p for p in ("proc/sys", "proc/sysrq-trigger") if os.path.exists("/" + p)]:
                ops.append(_Op(lib.VE_VOP_BIND, sub, data=sub,
                               attr=_RDONLY | _NOSUID | _NODEV | _NOEXEC))
                what.append(f"/{sub} read-only")
    return ops, what


class _COps:
    """A struct ve_view_op[] and the strings it points into."""

    def __init__(self, ops: list[_Op]) -> None:
        self.keep: list[Any] = []
        self.arr = ffi.new("struct ve_view_op[]", max(len(ops), 1))
        self.n = len(ops)
        for i, o in enumerate(ops):
            c = self.arr[i]
            c.op, c.slot, c.recursive, c.mode, c.attr_set = (
                o.op, o.slot, 1 if o.recursive else 0, o.mode, o.attr)
            c.path = self._str(o.path)
            c.data = self._str(o.data) if o.data is not None else ffi.NULL
            c.userns_fd = o.userns_fd

    def _str(self, s: str) -> Any:
        b = ffi.new("char[]", os.fsencode(s))
        self.keep.append(b)
        return b


def _rule_view_path(path: str) -> str:
    return os.path.realpath(path) if os.path.lexists(path) else path


def landlock_rules(plan: ViewPlan, ruleset: CompiledRuleset) -> list[tuple[str, int, int]]:
    """The Landlock rules a child adds inside its view: (view path, access, flags).

    The compiled ruleset's rules, moved to their place in the view; writable
    directories get WRITABLE_EXTRA; the view's own /dev/shm, $HOME and devpts,
    and listing the view's root and /dev."""
    rep = ruleset.report
    handled = int(rep.handled_fs)
    writable = set(plan.writable_dirs())
    extra = int(WRITABLE_EXTRA) & handled
    rules: list[tuple[str, int, int]] = []
    for r in rep.rules:
        path = plan.to_view(_rule_view_path(r.path))
        access = int(r.access)
        if r.kind == "directory" and access & int(_A.WRITE_FILE) and any(
                path_under(path, w) for w in writable):
            access |= extra
        rules.append((path, access, lib.LANDLOCK_ADD_RULE_QUIET if r.quiet else 0))
    if handled and not plan.read_only:
        rw = int(_A.READ_FILE | _A.WRITE_FILE | _A.READ_DIR) | extra
        for path in (["/dev/shm"] + ([plan.home] if plan.home else [])):
            rules.append((path, rw & handled, 0))
        pts = int(_A.READ_FILE | _A.WRITE_FILE | _A.READ_DIR | _A.IOCTL_DEV) & handled
        rules.append(("/dev/pts", pts, 0))
    # listing the view's own directories shows only what the policy grants
    listing = ["/dev"] + (["/"] if plan.root != "/" else [])
    rules += [(path, int(_A.READ_DIR) & handled, 0) for path in listing]
    return [r for r in rules if r[1] or r[2]]


def _pruned(rules: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """``rules`` without those an ancestor's rule already grants: within one layer
    Landlock grants what any rule on the way up grants, and the way up from a path
    in the view passes every directory above it (a mount point's top mount, which is
    what the ancestor's rule was opened on). Fewer rules: less for each child to open
    and add. A rule with flags (QUIET) is kept, as is every rule below one."""
    kept: list[tuple[str, int, int]] = []
    for path, access, flags in rules:
        covered = any(path_under(path, a) and path != a and not access & ~a_access
                      and not flags and not a_flags for a, a_access, a_flags in rules)
        if not covered:
            kept.append((path, access, flags))
    return kept


def plan_records(plan: ViewPlan, ruleset: CompiledRuleset | None, scopes: int) -> list[str]:
    """The view's records of a volt-init plan (csrc/init/volt_init.c)."""
    from .landlock import DIR_ONLY_RIGHTS

    def hx(text: str) -> str:
        return os.fsencode(text).hex()

    out = []
    for where, (ops, _) in ((0, _template_ops(plan)), (1, _child_ops(plan))):
        for o in ops:
            rec = (f"view-op {where} {o.op:x} {o.slot + 1:x} {int(o.recursive):x} {o.mode:x} "
                   f"{o.attr:x} {hx(o.path)}")
            out.append(rec + (f" {hx(o.data)}" if o.data is not None else ""))
    if ruleset is not None and ruleset.fd >= 0:
        rep = ruleset.report
        out.append(f"view-ll {int(rep.handled_fs):x} {int(rep.handled_net):x} "
                   f"{int(rep.scopes) | scopes:x} {int(rep.quiet_access_fs):x} "
                   f"{int(rep.quiet_access_net):x} {int(rep.quiet_scoped):x} "
                   f"{int(DIR_ONLY_RIGHTS):x}")
        out += [f"view-rule {access:x} {flags:x} {hx(path)}"
                for path, access, flags in landlock_rules(plan, ruleset)]
        out += [f"view-port {int(p.access):x} {p.port:x}" for p in rep.ports]
    return out


class View:
    """A prepared view: the template namespace (held by fd) and what a child
    does to enter it (``c``, a ``struct ve_view *`` for the child plan).

    ``ruleset``: the compiled Landlock ruleset whose rules, handled rights and
    ports the child builds again inside its view (None: no Landlock).
    ``scopes``: Landlock scopes added at enforcement (the presets'), best effort.
    ``idmap_fds``: the user namespace of each idmapped bind, by host path (the
    mounts keep them: the caller may close them once the view is made).
    """

    def __init__(self, plan: ViewPlan, ruleset: CompiledRuleset | None = None,
                 scopes: int = 0, idmap_fds: dict[str, int] | None = None) -> None:
        self.plan = plan
        self.notes = list(plan.notes)
        self.scopes = 0
        self._fd = -1
        # each child of a Sandbox mounts its procfs before it joins a user namespace
        ops, what = _template_ops(plan, idmap_fds, proc=not plan.fresh_proc)
        self.template_what = what  # what each of the template's operations is about
        tmpl = _COps(ops)
        failed = ffi.new("int *")
        fd = lib.ve_view_prepare(tmpl.arr, tmpl.n, failed)
        if fd < 0:
            i = failed[0]
            about = what[i] if 0 <= i < len(what) else "a mount namespace"
            raise EnforcementError(-fd, "view", f"preparing the view: {about}"
                                   + (f" ({view_errno_hint(-fd)})" if -fd == errno.EPERM else ""))
        self._fd = fd
        child_ops, self._child_what = _child_ops(plan)
        self._ops = _COps(child_ops)
        c = ffi.new("struct ve_view *")
        c.ns_fd = fd
        c.ops = self._ops.arr
        c.n_ops = self._ops.n
        self._keep: list[Any] = []
        self._rule_paths: list[str] = []
        #: the Landlock rules enforcement adds in the view (writable means writable,
        #: the view's own directories), as the report lists rules
        self.landlock_added: list[dict[str, Any]] = []
        if ruleset is not None and ruleset.fd >= 0:
            self._landlock(c, ruleset, scopes)
        self.c = c

    def _landlock(self, c: Any, ruleset: CompiledRuleset, scopes: int) -> None:
        from .landlock import DIR_ONLY_RIGHTS

        rep = ruleset.report
        handled = int(rep.handled_fs)
        rules = landlock_rules(self.plan, ruleset)
        added = _pruned(rules)  # what the child adds (the report lists every rule)
        arr = ffi.new("struct ve_view_rule[]", max(len(added), 1))
        for i, (path, access, flags) in enumerate(added):
            b = ffi.new("char[]", os.fsencode(path))
            self._keep.append(b)
            arr[i].path, arr[i].access, arr[i].flags = b, access, flags
        ports = ffi.new("struct ve_view_port[]", max(len(rep.ports), 1))
        for i, p in enumerate(rep.ports):
            ports[i].access, ports[i].port = int(p.access), p.port
        self._keep += [arr, ports]
        self._rule_paths = [r[0] for r in added]
        from .landlock import _lower

        # what enforcement grants beyond the compiled rules, for the report
        compiled = {(self.plan.to_view(_rule_view_path(r.path)), int(r.access)) for r in rep.rules}
        self.landlock_added = [{"path": path, "access": _lower(_A, access)}
                               for path, access, _ in rules if (path, access) not in compiled]
        c.ll = 1
        c.handled_fs, c.handled_net = handled, int(rep.handled_net)
        c.scoped = int(rep.scopes) | scopes
        self.scopes = scopes & ~int(rep.scopes)
        c.quiet_fs, c.quiet_net = int(rep.quiet_access_fs), int(rep.quiet_access_net)
        c.quiet_scoped = int(rep.quiet_scoped)
        c.dir_only = int(DIR_ONLY_RIGHTS)
        c.rules, c.n_rules = arr, len(added)
        c.ports, c.n_ports = ports, len(rep.ports)

    def describe_failure(self, index: int) -> str:
        """What a child's failed view step was about (``struct ve_result.index``)."""
        if 0 <= index < len(self._child_what):
            return self._child_what[index]
        if 1000 <= index < 1000 + len(self._rule_paths):
            return f"Landlock rule on {self._rule_paths[index - 1000]} inside the view"
        if index >= 2000:
            return "Landlock port rule inside the view"
        return "entering the view"

    @property
    def fd(self) -> int:
        return self._fd

    def close(self) -> None:
        """Release the template (children already started keep their copy)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    @property
    def open_fds(self) -> int:
        """The fds this view holds: the template's."""
        return 1 if self._fd >= 0 else 0

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 (never raise from a finalizer)
            pass



def preset_scopes(config: IsolationConfig, abi: int) -> tuple[int, str | None]:
    """The Landlock scopes enforcement adds for the server and desktop presets
    (signals, abstract UNIX sockets: ABI 6), and a note for the report."""
    from .model import LandlockScope

    policy = config.landlock
    if policy is None:
        return 0, None
    name = is_preset_policy(policy.rules)
    if name is None:
        return 0, None
    want = int(LandlockScope.SIGNAL | LandlockScope.ABSTRACT_UNIX_SOCKET)
    if abi < 6:
        return 0, (f"{name} preset: Landlock scopes (signal, abstract UNIX sockets) dropped "
                   f"(best effort): they need ABI 6, kernel has {abi}")
    have = policy.scopes if isinstance(policy.scopes, int) else 0  # validated: a LandlockScope
    if not want & ~int(have):
        return 0, None
    return want, (f"{name} preset: Landlock scopes signal and abstract UNIX socket added "
                  "(best effort)")


def view_errno_hint(err: int) -> str:
    """What to do about a template the kernel refused with ``err``."""
    if err == errno.EPERM:
        return ("a mount namespace needs CAP_SYS_ADMIN: run as root, or pass contain=False "
                "(--no-contain), or best_effort=True to drop the view and say so")
    return os.strerror(err)
