"""Sandbox: one object from an IsolationConfig, applied three ways.

A ``Compiled`` (volt_enforce.compile) is made once, in the parent: the Landlock
ruleset, the seccomp bytes, the cgroup limit plan, the capabilities to keep, the
namespaces to enter. The Sandbox creates the cgroup from that plan and turns the
rest into the C child plan. Then

* ``Sandbox.popen``/``run`` and the module's ``Popen``/``run`` spawn in C
  (clone3 with CLONE_VM|CLONE_VFORK, CLONE_INTO_CGROUP on cgroup v2), with no
  Python in the child: safe in threaded programs and close to a plain spawn;
* ``Sandbox.preexec`` is a ``preexec_fn`` for plain ``subprocess`` (one C call);
* ``apply_self`` restricts the calling process (init shims).

The child's steps run in DESIGN.md's order: join the cgroup (unless clone3
placed it), namespaces, capabilities, no_new_privs, Landlock, seccomp last. If
any step fails the target is not executed and the caller gets an
``EnforcementError`` naming the step, the errno and what it was applied to.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import hashlib
import os
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._core import ffi, lib
from .child import ChildPlan, read_preexec_failure
from .compile import Compiled, Namespace, compile_config
from .errors import EnforcementError, PolicyError
from .model import Compatibility, IsolationConfig, NetworkMode, SeccompProfile
from .process import SandboxedPopen, run_in
from .report import EnforcementReport
from .view import View, ViewPlan

if TYPE_CHECKING:
    from .cgroups import Cgroup, CgroupStats
    from .landlock import CompiledRuleset
    from .net import PrivateNetwork
    from .seccomp import SeccompFilter
    from .spawner import SpawnerPool
    from .users import Allocation, IdMap

__all__ = ["Sandbox", "EnforcementReport", "Popen", "run", "apply_self", "clear_cache",
           "thread_coverage"]


_PREPARED: OrderedDict[tuple[Any, ...], Sandbox] = OrderedDict()
_PREPARED_MAX = 32
_PREPARED_LOCK = threading.Lock()
#: (id(config), abi, effective abi) -> (a copy of that config, its presets, its input digest, its sandbox)
_BY_ID: dict[tuple[Any, ...], tuple[IsolationConfig, tuple[Any, ...], str, Sandbox]] = {}


def _inputs_digest(config: IsolationConfig) -> str:
    """A digest of the files a config names as its input (an OCI seccomp profile),
    so that a cached sandbox is not reused after such a file changed."""
    sc = config.seccomp
    if sc is None or isinstance(sc, SeccompProfile) or sc in ("default", "strict", "unconfined"):
        return ""
    try:
        with open(os.fspath(sc), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except (OSError, TypeError):
        return "unreadable"  # compiling it says what is wrong


def _prepared(config: IsolationConfig, abi: int | None = None, contain: bool = True,
              rootfs: str | None = None) -> Sandbox:
    """A prepared Sandbox for a config without resource limits, from a small LRU
    cache keyed by the config's content (and the content of the files it names).

    Such a sandbox holds only immutable parts (the ruleset, the filter, the
    plan), so any number of threads may spawn from it at once. An entry dropped
    from the cache is closed when the last user lets go of it (__del__).
    """
    from . import landlock

    try:
        presets = (tuple(r.preset for r in config.landlock.rules) if config.landlock else (),
                   rootfs, config.rootfs)
        ident = (id(config), abi, landlock.effective_abi(abi), contain)
        digest = _inputs_digest(config)
        # fast path: the same object as last time, unchanged (compared with a copy)
        seen = _BY_ID.get(ident)
        if (seen is not None and seen[1] == presets and seen[2] == digest and seen[0] == config
                and not seen[3]._closed):
            return seen[3]
        key = (config.to_json(), presets, digest, ident[1], ident[2], contain)
    except Exception:
        config.validate()  # a malformed config: say what is wrong with it
        raise
    with _PREPARED_LOCK:
        hit = _PREPARED.get(key)
        if hit is not None and not hit._closed:
            _PREPARED.move_to_end(key)
    if hit is None or hit._closed:
        # a private network's config is here only as the base that lends its ruleset
        # and filter (run/Popen never reuse a sandbox with a network)
        hit = Sandbox(config, landlock_abi=abi, contain=contain, rootfs=rootfs,
                      _lend_only=_private(config))
        with _PREPARED_LOCK:
            _PREPARED[key] = hit
            while len(_PREPARED) > _PREPARED_MAX:
                _PREPARED.popitem(last=False)
    with _PREPARED_LOCK:
        if len(_BY_ID) >= _PREPARED_MAX:
            _BY_ID.clear()
        _BY_ID[ident] = (copy.deepcopy(config), presets, digest, hit)
    return hit


def clear_cache() -> None:
    """Drop the sandboxes ``run``/``Popen(isolation=...)`` keep prepared for reuse
    (after a rule's path was replaced, for instance)."""
    with _PREPARED_LOCK:
        _PREPARED.clear()
        _BY_ID.clear()


class Sandbox:
    """Isolation prepared once, for any number of children.

    ``config`` is the model (``IsolationConfig``); ``cgroup_parent`` is where the
    cgroup for ``config.resources`` is created (default: below this process's
    cgroup); ``cgroup`` is an existing ``volt_enforce.cgroups.Cgroup`` to place
    children in instead (the caller keeps owning it). ``compatibility`` (or
    ``best_effort=True`` for BEST_EFFORT) says what happens when the host lacks a
    cgroup controller or a namespace: skipped and reported under BEST_EFFORT,
    an error otherwise (Landlock follows its policy's own ``compatibility``).
    ``no_new_privs`` is set in children unless False. ``contain`` (the default)
    gives each child a session and IPC and UTS namespaces of its own, and keeps
    CAP_SETFCAP and CAP_SYS_ADMIN from a child that is host root;
    ``contain=False`` is the explicit opt-out for trusted children.
    ``share_compiled`` takes the Landlock ruleset and the seccomp filter from a
    process-wide cache of identical configs (what ``volt_enforce.run`` and
    ``Popen(isolation=...)`` do): the paths of such a ruleset were resolved when
    it was first built. ``unix_sockets``: pathname UNIX sockets children may connect to
    (RESOLVE_UNIX, ABI 9; such a sandbox builds its own ruleset, never a shared one).
    ``log_denials`` has the kernel log the seccomp filter's
    denials to audit (SECCOMP_FILTER_FLAG_LOG; see volt_enforce.audit).
    ``spawner``: start children through a pre-restricted spawner
    (volt_enforce.spawner): True uses it where that gives children exactly what the
    direct path gives (a config or call that cannot use it is refused); None (the
    default) and False never do; ``report.spawn`` says which path, and why.

    A private network (``config.network``, mode private: volt_enforce.net) is
    made here, once, for all the sandbox's children: its namespace (owned by
    ``userns_fd`` when given), veth, lease, forwards and resolv.conf, all
    removed by ``close()``.
    """

    def __init__(
        self,
        config: IsolationConfig | None = None,
        *,
        cgroup_parent: str | None = None,
        cgroup: Cgroup | None = None,
        best_effort: bool | None = None,
        compatibility: Compatibility | None = None,
        no_new_privs: bool = True,
        contain: bool = True,
        landlock_abi: int | None = None,
        share_compiled: bool = False,
        named_writable: tuple[str, ...] = (),
        rootfs: str | None = None,
        unix_sockets: Sequence[str] | None = None,
        log_denials: bool = False,
        userns_fd: int | None = None,
        _lend_only: bool = False,
        spawner: bool | None = None,
        _compiled: Compiled | None = None,
    ) -> None:
        config = config if config is not None else IsolationConfig()
        if not isinstance(config, IsolationConfig):
            raise PolicyError("isolation", config, "is not an IsolationConfig")
        self.config = config
        self._closed = True  # until prepared: close() then has nothing to do
        self._own_cgroup = cgroup is None
        self._lock = threading.Lock()
        self._report_r = self._report_w = -1
        self._base: Sandbox | None = None
        self._lend_only = _lend_only
        self.cgroup: Cgroup | None = None
        self._ids: Allocation | None = None
        self._userns_fd = -1
        #: host path -> its idmapping (idmapped binds), and by owner the user
        #: namespace of that mapping, open until the view's mounts hold it
        self._idmaps: dict[str, tuple[int, int, int, int]] = {}
        self._idmap_fds: dict[tuple[int, int], int] = {}
        self.view: View | None = None
        self._own_view = False
        self._named_writable = tuple(named_writable)
        self._rootfs = rootfs
        self.network: PrivateNetwork | None = None
        self._spawners: SpawnerPool | None = None
        if spawner is not None and not isinstance(spawner, bool):
            raise PolicyError("spawner", spawner, "is not True, False or None")
        self._spawner_option = spawner
        with contextlib.ExitStack() as undo:
            # _compiled: compile_config of this very config and these options, already
            # made by the caller (the CLI's exec, which also cached it); the sandbox owns it
            self.compiled = _compiled if _compiled is not None else self._compile(
                config, best_effort, compatibility, no_new_privs, contain, landlock_abi,
                share_compiled, unix_sockets, log_denials)
            undo.callback(self.compiled.close)
            self.report = EnforcementReport.of(self.compiled)
            self._place(cgroup, cgroup_parent, undo)
            if not _lend_only:
                self._prepare_users(undo)
            if self.compiled.private_network and not _lend_only:
                # owned by the sandbox's user namespace where it has one
                if userns_fd is None and self._userns_fd >= 0:
                    userns_fd = self._userns_fd
                self._attach_network(userns_fd, undo)
            base = self._base.view if self._base is not None else None
            view_plan = self._view_plan()
            if base is not None and base.plan == view_plan:
                self.view = base  # the identical config's template, kept open by it
            elif view_plan is not None:  # the template: a namespace held by fd
                try:
                    self.view = View(view_plan, self.compiled.ruleset,
                                     self.compiled.view_scopes,
                                     idmap_fds={p: self._idmap_fds[spec[:2]]
                                                for p, spec in self._idmaps.items()})
                except EnforcementError as exc:
                    if self._idmaps:
                        raise  # without the view the idmapped directories are unwritable
                    if not self.compiled.best_effort:
                        raise
                    # reported, never silent: the host's filesystem, under Landlock's rules
                    self.report.view = None
                    self.report.notes.append(f"filesystem view dropped (best effort): {exc}; "
                                             "the child sees the host's filesystem")
                else:
                    self._own_view = True
                    undo.callback(self.view.close)
            self._close_idmap_fds()  # the template's mounts keep those namespaces
            if self.view is not None and self.report.view is not None:
                self.report.view = {**self.report.view,
                                    "landlock_added": list(self.view.landlock_added)}
            self.plan = self._child_plan()
            self._choose_spawn_path(spawner)
            undo.pop_all()
        self._closed = False

    # ---- preparation, in the parent --------------------------------------------

    def _compile(self, config: IsolationConfig, best_effort: bool | None,
                 compatibility: Compatibility | None, no_new_privs: bool, contain: bool,
                 landlock_abi: int | None, share_compiled: bool,
                 unix_sockets: Sequence[str] | None = None,
                 log_denials: bool = False) -> Compiled:
        ruleset = filt = None
        if share_compiled and not unix_sockets:
            # the ruleset and filter of an identical config without limits, kept open by it
            base = config.replace(resources=None) if config.resources is not None else config
            self._base = _prepared(base, landlock_abi, contain, self._rootfs)
            ruleset, filt = self._base.compiled.ruleset, self._base.compiled.seccomp
        return compile_config(config, best_effort=best_effort, compatibility=compatibility,
                              no_new_privs=no_new_privs, contain=contain,
                              landlock_abi=landlock_abi, unix_sockets=unix_sockets,
                              ruleset=ruleset, seccomp_filter=filt, log_denials=log_denials,
                              named_writable=self._named_writable, rootfs=self._rootfs)

    def _place(self, cgroup: Cgroup | None, cgroup_parent: str | None,
               undo: contextlib.ExitStack) -> None:
        """The cgroup, last: the only preparation that changes the system."""
        limits = self.compiled.limits
        if cgroup is not None:
            if limits is not None:
                raise PolicyError("Resources", self.config.resources,
                                  "cannot be applied: an existing cgroup was given")
            self.cgroup = cgroup
        elif limits is not None:
            from .cgroups import Cgroup

            self.cgroup = Cgroup.create(limits, parent=cgroup_parent,
                                        best_effort=self.compiled.cgroup_best_effort)
            undo.callback(self.cgroup.close)
        if self.cgroup is not None:
            self.report.cgroup = {"paths": dict(self.cgroup.paths), **self.cgroup.report}

    def _prepare_users(self, undo: contextlib.ExitStack) -> None:
        """The user namespace, once per Sandbox: a range of host ids of its own
        (volt_enforce.users), maps written here; children setns into it."""
        if Namespace.USER not in self.compiled.namespaces:
            return
        if os.geteuid() != 0:
            # an unprivileged caller can map only itself: the child maps root to it
            self.report.notes.append(f"user namespace: root is the caller, host uid "
                                     f"{os.geteuid()} (only root can map a range)")
            return
        from . import users

        self._ids = users.allocate()
        undo.callback(self._ids.release)
        idmap = self._ids.idmap
        need = users.check_writable(self.config, idmap, self.compiled.capabilities,
                                    can_idmap=self.compiled.view is not None,
                                    named_writable=self._named_writable)
        self._userns_fd = users.open_userns(idmap)
        undo.callback(os.close, self._userns_fd)
        self.report.notes.append(idmap.describe())
        if need:
            undo.callback(self._close_idmap_fds)
            self._prepare_idmaps(need, idmap)

    def _prepare_idmaps(self, paths: list[str], idmap: IdMap) -> None:
        """Idmapped binds for the writable directories the child's root cannot write:
        a user namespace per owner maps that owner to the child's root (users.py).
        What the child makes there is the owner's on the host, so the filter must
        keep setuid/setgid bits off it and the child loses CAP_SETFCAP."""
        import stat as _stat

        from . import users
        from .model import CAPABILITIES

        profile = self.config.seccomp
        name = profile.value if isinstance(profile, SeccompProfile) else profile
        for path in paths:
            st = os.stat(path)
            if name not in users.IDMAP_SECCOMP:
                raise PolicyError(
                    "PrivateUsers", path,
                    f"is writable by the policy but not by the user namespace's root, host uid "
                    f"{idmap.uid} (gid {idmap.gid}): it belongs to {st.st_uid}:{st.st_gid} with "
                    f"mode {_stat.S_IMODE(st.st_mode):o}; an idmapped bind (files made there "
                    f"are uid {st.st_uid}'s on the host) needs seccomp strict or default, which "
                    f"deny setuid/setgid bits (seccomp is {name!r}); give uid {idmap.uid} write "
                    f"access to it, or turn PrivateUsers off")
            owner = (st.st_uid, st.st_gid)
            if owner not in self._idmap_fds:
                self._idmap_fds[owner] = users.owner_userns(st, idmap)
            users.probe_idmap(path, self._idmap_fds[owner], idmap)
            self._idmaps[path] = (*owner, idmap.uid, idmap.gid)
        caps = self.compiled.capabilities
        if caps is None or "SETFCAP" in caps:
            kept = tuple(c for c in (caps if caps is not None else CAPABILITIES) if c != "SETFCAP")
            self.compiled.capabilities = kept
            self.report.capabilities = list(kept)
        owners = ", ".join(f"{p} (uid {spec[0]}, gid {spec[1]})"
                           for p, spec in self._idmaps.items())
        self.report.notes.append(f"bound idmapped (the owner is the child's root): {owners}; "
                                 "CAP_SETFCAP dropped")

    def _close_idmap_fds(self) -> None:
        fds, self._idmap_fds = self._idmap_fds, {}
        for fd in fds.values():
            os.close(fd)

    @property
    def idmap(self) -> IdMap | None:
        """The host ids the children's root and users are, with a user namespace."""
        return self._ids.idmap if self._ids is not None else None
    def _attach_network(self, userns_fd: int | None, undo: contextlib.ExitStack) -> None:
        from . import net

        assert self.config.network is not None
        self.network = net.attach(
            self.config.network, userns_fd=userns_fd,
            # root in a user namespace of the child's own may then bind port 80
            unprivileged_ports=userns_fd is None and self.config.private_users)
        undo.callback(self.network.close)
        self.report.network = self.network.report()
        self.report.notes = [n for n in self.report.notes if not n.startswith("network private:")]
        self.report.notes.append(self.network.note())

    def _view_plan(self) -> ViewPlan | None:
        """The compiled view, with the private network's resolv.conf bound over the
        host's (or its symlink's target) when there is one."""
        plan = self.compiled.view
        if plan is not None and self._idmaps:
            plan = plan.with_idmaps(self._idmaps)
        resolv = self._resolv()
        if plan is None or resolv is None:
            return plan
        src, dst, _ = resolv
        if plan.rootfs != "/":
            dst = "/etc/resolv.conf"
            if not os.path.isfile(os.path.join(plan.rootfs, "etc/resolv.conf")):
                # nothing is made inside a rootfs: said, not silently skipped
                self.report.notes.append(f"{plan.rootfs} has no etc/resolv.conf: the private "
                                         "network's DNS servers are not bound into the view")
                return plan
        return plan.with_file_bind(src, dst)

    def _resolv(self) -> tuple[str, str, int] | None:
        # not redundant: the one source of the bind, made by the view or, without one, the child
        network = self.network
        if network is None or not network.resolv_conf:
            return None
        from .net import dns

        return (network.resolv_conf, dns.bind_target(), dns.mount_flags(network.resolv_conf))

    def _child_plan(self) -> ChildPlan:
        c = self.compiled
        cg = self.cgroup
        ruleset, filt = c.ruleset, c.seccomp
        return ChildPlan(
            procs_fds=tuple(cg.procs_fds) if cg is not None else (),
            procs_paths=tuple(cg.procs_paths) if cg is not None else (),
            new_user_ns=bool(c.unshare_flags & lib.CLONE_NEWUSER),
            new_net_ns=bool(c.unshare_flags & lib.CLONE_NEWNET),
            other_namespaces=c.unshare_flags & ~(lib.CLONE_NEWUSER | lib.CLONE_NEWNET),
            new_session=c.new_session,
            cap_keep=c.capability_numbers,
            no_new_privs=c.no_new_privs,
            landlock_fd=ruleset.fd if ruleset is not None else -1,
            landlock_flags=ruleset.restrict_flags if ruleset is not None else 0,
            landlock_detail=(f"ruleset of {len(ruleset.report.rules)} rules"
                             if ruleset is not None else ""),
            bpf=filt.bpf if filt is not None else b"",
            # the profile's OCI flags (LOG, SPEC_ALLOW), LOG for log_denials
            seccomp_flags=c.seccomp_flags,
            seccomp_detail=(f"profile {filt.name}, {filt.instructions} instructions"
                            if filt is not None else ""),
            pid_namespace=c.pid_namespace,
            memfd_noexec=c.memfd_noexec,
            userns_fd=self._userns_fd,
            view=self.view,
            net_fd=self.network.netns_fd if self.network is not None else -1,
            # the view carries the private network's resolv.conf itself (_view_plan)
            resolv=self._resolv() if self.view is None else None,
        )

    def _choose_spawn_path(self, option: bool | None) -> None:
        from .spawner import SpawnerPool, eligibility, unchecked

        # opt-in: on the machines measured it is no faster than the direct path, and
        # while one lives the caller shares its filesystem context (see spawner.py)
        reason = ("spawner=False" if option is False
                  else "spawner not requested (spawner=True opts in)" if option is None
                  else eligibility(self.compiled, self.cgroup, self.plan))
        if reason is None:
            self._spawners = SpawnerPool(self.compiled, self.plan)
            self.report.spawn = {"path": "spawner",
                                 "reason": "restricted once in a spawner; each child in a "
                                           "Landlock domain of its own",
                                 # what the per-request check cannot see from here
                                 "unchecked": unchecked()}
        elif option is True:
            raise PolicyError("spawner", True, f"cannot be used for this sandbox: {reason}")
        else:
            self.report.spawn = {"path": "direct", "reason": reason}

    def spawn_child(self, args: Any, **kwargs: Any) -> tuple[int, str]:
        """Start a child (SandboxedPopen's spawn): through the spawner where this
        sandbox and this call can use it, else on the direct path. Returns the pid
        and the path taken ("spawner" or "direct")."""
        from .child import spawn

        pool = self._spawners
        if pool is not None:
            why = pool.unsupported(close_fds=kwargs["close_fds"], uid=kwargs["uid"],
                                   gid=kwargs["gid"], extra_groups=kwargs["extra_groups"],
                                   process_group=kwargs["process_group"])
            if why is None:
                pid = pool.spawn(args, executable=kwargs["executable"], env=kwargs["env"],
                                 cwd=kwargs["cwd"], stdin=kwargs["stdin"],
                                 stdout=kwargs["stdout"], stderr=kwargs["stderr"],
                                 pass_fds=kwargs["pass_fds"],
                                 restore_signals=kwargs["restore_signals"],
                                 start_new_session=kwargs["start_new_session"],
                                 umask=kwargs["umask"])
                if isinstance(pid, int):
                    return pid, "spawner"
                why = pid
            if self._spawner_option is True:
                raise ValueError(f"spawner=True: this call cannot use the spawner ({why})")
        return spawn(args, **kwargs, **self.spawn_kwargs()), "direct"

    @property
    def contained(self) -> bool:
        """Whether children get a session and IPC/UTS namespaces of their own."""
        return self.compiled.contain

    @property
    def ruleset(self) -> CompiledRuleset | None:
        return self.compiled.ruleset

    @property
    def seccomp(self) -> SeccompFilter | None:
        return self.compiled.seccomp

    # ---- the three ways to apply ----------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the sandbox is closed")
        if self._lend_only:
            raise ValueError("this sandbox only lends its compiled parts: it has no network")

    def spawn_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of volt_enforce.spawn.spawn for this sandbox."""
        if self._lend_only:
            raise ValueError("this sandbox only lends its compiled parts: it has no network")
        cg = self.cgroup
        return {
            "plan": self.plan,
            "cgroup_fd": cg.clone_fd if cg is not None else -1,
            "cgroup_procs_fd": cg.v2_procs_fd if cg is not None else -1,
        }

    def popen(self, args: Any, **kwargs: Any) -> Popen:
        """``subprocess.Popen`` of ``args`` in this sandbox (C spawn path)."""
        self._check_open()
        return Popen(args, sandbox=self, **kwargs)

    def run(self, args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` of ``args`` in this sandbox (C spawn path)."""
        self._check_open()
        return run_in(args, sandbox=self, **kwargs)

    @property
    def preexec(self) -> Callable[[], None]:
        """A ``preexec_fn`` for ``subprocess``: one C call in the child.

        ``subprocess`` reports a failing preexec_fn without detail; wrap the call
        in ``with sandbox.child_errors():`` (or use the sandbox as a context
        manager) to get the ``EnforcementError`` naming the step instead.
        """
        self._check_open()
        with self._lock:
            if self._report_r < 0:
                r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                self._report_r, self._report_w = r, w
        if self.compiled.pid_namespace and _PREEXEC_NOTE not in self.report.notes:
            self.report.notes.append(_PREEXEC_NOTE)
        return self.plan.preexec_fn(self._report_w)

    @contextlib.contextmanager
    def child_errors(self) -> Iterator[None]:
        """Turn subprocess's error for a failed preexec into EnforcementError."""
        try:
            yield
        except (subprocess.SubprocessError, OSError) as exc:
            err = self._pending_preexec_error()
            if err is not None:
                raise err from exc
            raise

    def _pending_preexec_error(self) -> EnforcementError | None:
        if self._report_r < 0:
            return None
        rec = read_preexec_failure(self._report_r)
        if rec is None:
            return None
        return self.plan.error(*rec)

    def apply_self(self, *, allow_threads: bool = False) -> EnforcementReport:
        """Restrict the calling process with this sandbox (init shims).

        With other threads alive, seccomp is synchronized to all of them (TSYNC),
        and so is Landlock where the kernel has its TSYNC (ABI 8); but the
        capability sets, the bounding set, namespaces, no_new_privs without a
        filter and Landlock without TSYNC reach only the calling thread
        (``thread_coverage``): this then refuses, applying nothing, unless
        ``allow_threads``, and the report's ``calling_thread_only`` lists those
        steps. The cgroup stays in place (removing it would kill this process).
        """
        self._check_open()
        return _apply_plan_to_self(self, allow_threads)

    # ---- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the ruleset fd, remove the cgroup (killing what is left in it)."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        closers: list[Callable[[], None]] = [self.compiled.close]
        if self.view is not None and self._own_view:
            closers.append(self.view.close)
        if self._spawners is not None:
            closers.insert(0, self._spawners.close)
        if self.cgroup is not None and self._own_cgroup:
            closers.append(self.cgroup.close)
        if self._userns_fd >= 0:
            closers.append(self._close_userns)
        if self.network is not None:
            closers.append(self.network.close)
        for closer in closers:
            try:
                closer()
            except Exception as exc:  # close everything, then raise the first
                errors.append(exc)
        self._close_report_pipe()
        if errors:
            raise errors[0]

    def _close_userns(self) -> None:
        os.close(self._userns_fd)
        self._userns_fd = -1
        if self._ids is not None:
            self._ids.release()
            self._ids = None

    def _close_report_pipe(self) -> None:
        for fd in (self._report_r, self._report_w):
            if fd >= 0:
                os.close(fd)
        self._report_r = self._report_w = -1

    def stats(self) -> CgroupStats | None:
        """cgroup statistics (peak memory, CPU time, PIDs, OOM kills), or None."""
        return self.cgroup.stats() if self.cgroup is not None else None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        pending = None
        if exc is not None and isinstance(exc, (subprocess.SubprocessError, OSError)):
            pending = self._pending_preexec_error()
        self.close()
        if pending is not None:
            raise pending from exc

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not getattr(self, "_closed", True):
                self.close()


def thread_coverage(plan: ChildPlan) -> dict[str, bool]:
    """For each step ``apply_self`` takes with this plan, whether it reaches every
    thread of the process (True) or only the calling one (False).

    The one place that decides it: joining a cgroup and a new session are
    process-wide; namespaces (unshare, setns into a private network), the
    capability sets and the bounding set are per thread; seccomp covers every
    thread with SECCOMP_FILTER_FLAG_TSYNC among the plan's flags (apply_self sets
    it whenever other threads are alive), and that TSYNC also sets no_new_privs
    on each of them; Landlock covers them only with LANDLOCK_RESTRICT_SELF_TSYNC
    among the plan's flags (ABI 8).
    """
    c = plan.c
    synced_filter = bool(c.bpf_len) and bool(c.seccomp_flags & lib.SECCOMP_FILTER_FLAG_TSYNC)
    steps: dict[str, bool] = {}
    if c.n_procs_fds:
        steps["cgroup"] = True
    if c.unshare_flags or c.join_net:  # unshare and setns change the calling thread's
        steps["namespaces"] = False
    if c.view != ffi.NULL:  # a threaded process enters no mount namespace: not even its own
        steps["view"] = False
    if c.new_session:
        steps["session"] = True
    if c.drop_caps:
        steps["capabilities"] = False
        steps["bounding set"] = False
    if c.no_new_privs:
        steps["no_new_privs"] = synced_filter
    if c.landlock_fd >= 0 or c.landlock_flags:
        steps["landlock"] = bool(c.landlock_flags & lib.LANDLOCK_RESTRICT_SELF_TSYNC)
    if c.bpf_len:
        steps["seccomp"] = synced_filter
    return steps


def _apply_plan_to_self(sb: Sandbox, allow_threads: bool) -> EnforcementReport:
    from .spawner import disable_for_process

    threads = len(os.listdir("/proc/self/task"))
    plan = sb.plan
    if threads > 1:
        seccomp_flags, landlock_flags = plan.c.seccomp_flags, plan.c.landlock_flags
        # Landlock's TSYNC (ABI 8, probed) puts every thread in the domain
        why_not = ""
        if sb.ruleset is not None and sb.ruleset.fd >= 0:
            flags, why_not = sb.ruleset.tsync_for_threads()
            if flags is not None:
                plan.c.landlock_flags = flags
        if sb.seccomp is not None and sb.seccomp.instructions:
            plan.c.seccomp_flags |= lib.SECCOMP_FILTER_FLAG_TSYNC
        partial = [step for step, every in thread_coverage(plan).items() if not every]
        because = f" (Landlock: {why_not})" if "landlock" in partial and why_not else ""
        if partial and not allow_threads:
            plan.c.seccomp_flags, plan.c.landlock_flags = seccomp_flags, landlock_flags
            raise EnforcementError(
                errno.EPERM, partial[0],
                f"this process has {threads} threads and {', '.join(partial)} would reach "
                f"only the calling one{because}; nothing was applied (pass "
                "allow_threads=True to accept that)",
            )
        sb.report.calling_thread_only = partial
        if "view" in partial:
            # setns(CLONE_NEWNS) refuses a process whose threads share its filesystem
            # context: the view is left out, and said so; Landlock on the host's view
            plan.c.view = ffi.NULL
            sb.report.view = None
            sb.report.notes.append(f"{threads} threads: the filesystem view was not entered "
                                   "(a threaded process cannot enter a mount namespace); "
                                   "Landlock's rules apply on the host's view")
        if plan.c.seccomp_flags & lib.SECCOMP_FILTER_FLAG_TSYNC:
            sb.report.notes.append(f"seccomp synchronized to all {threads} threads (TSYNC)")
        if plan.c.landlock_flags & lib.LANDLOCK_RESTRICT_SELF_TSYNC:
            sb.report.notes.append(f"Landlock restricts all {threads} threads (TSYNC)")
        if partial:
            sb.report.notes.append(f"{threads} threads: {', '.join(partial)} reached the "
                                   f"calling thread only (allow_threads=True){because}")
    if sb.cgroup is not None:
        sb.cgroup.detach()  # the process lives in it now: never remove it under us
    # Landlock binds threads one by one: from here (even if a step fails half-way) no
    # spawner may stand in for this process
    disable_for_process("apply_self restricted this process: its threads may differ")
    plan.apply()
    if sb.compiled.pid_namespace:
        _no_pid_namespace(sb.report)
    if getattr(plan, "cwd_outside_view", False):
        sb.report.notes.append("the view lacks the working directory: now in /")
    return sb.report


_PREEXEC_NOTE = ("children started through preexec get no PID namespace (nor its "
                 "vm.memfd_noexec): a process restricting itself stays in its own")


def _no_pid_namespace(report: EnforcementReport) -> None:
    """A process restricting itself stays in its PID namespace (and so does the
    program it execs): the report says so, for apply_self, preexec and volt-init."""
    if "pid" in report.namespaces:
        report.namespaces.remove("pid")
    report.notes = [n for n in report.notes if "memfd" not in n]
    report.notes.append("no PID namespace was made: a process restricting itself stays in "
                        "its own (and vm.memfd_noexec is not set)")


# ---- subprocess-shaped API ------------------------------------------------------


class Popen(SandboxedPopen):
    """``subprocess.Popen`` whose child is spawned in C under a sandbox.

    ``Popen(args, isolation=config, **subprocess_kwargs)`` prepares a Sandbox
    for this one child (closed when the child has been waited for);
    ``Popen(args, sandbox=sb, ...)`` reuses a prepared one. Pipes, cwd, env,
    pass_fds, text, timeout, communicate, wait and kill work as in subprocess;
    ``preexec_fn`` is refused (no Python runs in the child).
    """

    def __init__(self, args: Any, *, isolation: IsolationConfig | None = None,
                 sandbox: Sandbox | None = None, contain: bool = True, rootfs: str | None = None,
                 **kwargs: Any) -> None:
        if kwargs.get("preexec_fn") is not None:
            raise ValueError("volt_enforce.Popen runs no Python in the child: "
                             "use subprocess.Popen(preexec_fn=sandbox.preexec) instead")
        if sandbox is not None and isolation is not None:
            raise ValueError("pass isolation= or sandbox=, not both")
        own = sandbox is None
        if sandbox is None and _limitless(isolation):
            sandbox, own = _prepared(isolation or IsolationConfig(), contain=contain,
                                     rootfs=rootfs), False
        if sandbox is None:
            sandbox = Sandbox(isolation, share_compiled=True, contain=contain, rootfs=rootfs)
        super().__init__(args, sandbox=sandbox, own_sandbox=own, **kwargs)


def run(args: Any, *, isolation: IsolationConfig | None = None, sandbox: Sandbox | None = None,
        contain: bool = True, rootfs: str | None = None,
        **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` with the child sandboxed (C spawn path).

    Returns a ``CompletedProcess`` with two more attributes: ``report`` (the
    EnforcementReport) and ``stats`` (the statistics of the child's own cgroup,
    made for ``isolation.resources``; None otherwise: for a shared sandbox ask
    ``Sandbox.stats()``).
    """
    if sandbox is not None:
        if isolation is not None:
            raise ValueError("pass isolation= or sandbox=, not both")
        return run_in(args, sandbox=sandbox, **kwargs)
    if _limitless(isolation):  # nothing per child to set up or tear down: reuse
        return run_in(args, sandbox=_prepared(isolation or IsolationConfig(), contain=contain,
                                              rootfs=rootfs), **kwargs)
    with Sandbox(isolation, share_compiled=True, contain=contain, rootfs=rootfs) as sb:
        return run_in(args, sandbox=sb, with_stats=True, **kwargs)


def _limitless(config: IsolationConfig | None) -> bool:
    """Nothing per run to set up or tear down (no cgroup, no private network):
    such a sandbox is reused from the prepared cache."""
    if config is not None and _private(config):
        return False
    return config is None or config.resources is None or config.resources.is_empty()


def _private(config: IsolationConfig) -> bool:
    net = config.network
    return net is not None and net.effective_mode == NetworkMode.PRIVATE


def apply_self(config: IsolationConfig, *, allow_threads: bool = False,
               **sandbox_kwargs: Any) -> EnforcementReport:
    """Restrict the calling process by ``config`` and return the report.

    For init shims that restrict themselves and then exec the workload. See
    ``Sandbox.apply_self`` for threads.
    """
    sb = Sandbox(config, **sandbox_kwargs)
    try:
        report = sb.apply_self(allow_threads=allow_threads)
    except BaseException:
        sb.close()
        raise
    # the restriction is in force; the ruleset fd is no longer needed
    if sb.network is not None:
        sb.network.keep()  # we are in it now: it lives as long as this process
    sb.compiled.close()
    sb._closed = True
    sb._close_report_pipe()
    if sb._userns_fd >= 0:  # this process is in the range now: it stays its until exit
        os.close(sb._userns_fd)
        sb._userns_fd, sb._ids = -1, None
    return report
