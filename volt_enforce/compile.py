"""IsolationConfig -> Compiled: everything the parent prepares, decided once.

``compile_config`` is the one place where a config becomes decisions for this
kernel and host: the Landlock ruleset (masked to the ABI, paths opened), the
seccomp filter (compiled to bytes), the cgroup limit plan (which files get which
values, in which hierarchy), the namespaces a child enters, the capabilities it
keeps, and the notes of what was dropped and why. ``Sandbox``, the volt-init plan
writer (``init_plan``) and ``explain`` all read a ``Compiled``; none of them
decides anything again.

Compiling changes nothing on the system: no cgroup is made, no namespace
entered. The only resource it holds is the ruleset fd, released by ``close()``.
"""

from __future__ import annotations

import enum
import errno
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._core import lib
from .errors import EnforcementError, PolicyError
from .kernel import namespace_errno
from .model import (
    CAPABILITIES,
    DOCKER_DEFAULT_CAPABILITIES,
    Compatibility,
    IsolationConfig,
    NetworkMode,
    SeccompProfile,
)

if TYPE_CHECKING:
    from .cgroups import LimitPlan
    from .landlock import CompiledRuleset
    from .seccomp import SeccompFilter
    from .seccomp.policy import Rule
    from .view import ViewPlan

__all__ = [
    "Compiled",
    "Namespace",
    "compile_config",
    "kept_capabilities",
    "capabilities_with",
    "compatibility_of",
    "resolve_compatibility",
    "COMMAND_COMPATIBILITY",
]


class Namespace(str, enum.Enum):
    """A namespace a child may enter, with its clone flag."""

    USER = "user"
    NETWORK = "network"
    IPC = "ipc"
    UTS = "uts"

    @property
    def flag(self) -> int:
        return {Namespace.USER: lib.CLONE_NEWUSER, Namespace.NETWORK: lib.CLONE_NEWNET,
                Namespace.IPC: lib.CLONE_NEWIPC, Namespace.UTS: lib.CLONE_NEWUTS}[self]

    def __str__(self) -> str:
        return self.value


#: What a contained child never keeps without a user namespace of its own: it is
#: host root, and these would let it mark files with capabilities (SETFCAP),
#: undo its containment (SYS_ADMIN: mount, setns, pivot_root, ...) or, on the
#: host's network, sniff and forge the host's traffic (NET_RAW: AF_PACKET).
CONTAINED_DROPS = ("SETFCAP", "SYS_ADMIN", "NET_RAW")


def _is_oci_profile(profile: object) -> bool:
    """Whether a config's seccomp names an OCI/Docker profile file (not a built-in)."""
    return isinstance(profile, str) and not isinstance(profile, SeccompProfile) and \
        profile not in ("strict", "default", "unconfined")


def _shares_host_network(config: IsolationConfig) -> bool:
    """Whether the config leaves the child on the host's network namespace."""
    mode = config.network.effective_mode if config.network is not None else None
    return mode not in (NetworkMode.NONE, NetworkMode.PRIVATE)


def kept_capabilities(config: IsolationConfig, contain: bool = False,
                      host_network: bool | None = None) -> tuple[str, ...] | None:
    """The capabilities a child keeps: the config's list, else by seccomp profile
    (``strict``: none; ``default`` or an OCI profile file: Docker's default set, the
    set such a profile is written for). None: not reduced.

    Contained without a user namespace, the child never keeps CAP_SETFCAP, nor
    CAP_SYS_ADMIN unless the config lists it by name, nor, on the host's network
    (``host_network``; by default: the config makes no network namespace),
    CAP_NET_RAW unless the config lists it by name. An OCI profile's
    ``includes``/``excludes`` ``caps`` are evaluated against this set."""
    if config.capabilities is not None:
        kept: tuple[str, ...] | None = tuple(config.capabilities)
    elif config.seccomp == SeccompProfile.STRICT:
        kept = ()
    elif config.seccomp == SeccompProfile.DEFAULT or _is_oci_profile(config.seccomp):
        kept = tuple(DOCKER_DEFAULT_CAPABILITIES)
    else:
        kept = None
    if not contain or config.private_users:
        return kept
    explicit = config.capabilities is not None
    unless_named = () if explicit else _unless_named(config, host_network)
    return tuple(c for c in (CAPABILITIES if kept is None else kept)
                 if c != "SETFCAP" and c not in unless_named)


def _unless_named(config: IsolationConfig, host_network: bool | None = None) -> tuple[str, ...]:
    """What a contained child without a user namespace keeps only when named."""
    if host_network is None:
        host_network = _shares_host_network(config)
    return ("SYS_ADMIN", "NET_RAW") if host_network else ("SYS_ADMIN",)


def _cap_list(option: str, names: Iterable[str]) -> list[str]:
    out = []
    for name in names:
        if not isinstance(name, str):
            raise PolicyError(option, name, "is not a capability name")
        n = name.upper()
        n = n[4:] if n.startswith("CAP_") else n
        if n != "ALL" and n not in CAPABILITIES:
            raise PolicyError(option, name, "is not a known capability (or ALL)")
        out.append(n)
    return out


def capabilities_with(config: IsolationConfig, add: Iterable[str] = (),
                      drop: Iterable[str] = (), contain: bool = True) -> list[str] | None:
    """The capability list of ``config`` after Docker's ``--cap-add``/``--cap-drop``:
    from the config's list, else the set its seccomp profile implies (all of them
    when that is not reduced), drop ``drop`` and then add ``add`` (``ALL`` names
    every capability). None when neither is given (the config's own list stands).
    ``contain``: the implied set leaves out what a contained child keeps only when
    named (see ``kept_capabilities``), since the result lists capabilities by name."""
    add_l, drop_l = _cap_list("--cap-add", add), _cap_list("--cap-drop", drop)
    if not add_l and not drop_l:
        return None if config.capabilities is None else list(config.capabilities)
    base = kept_capabilities(config)
    caps = list(CAPABILITIES) if base is None else list(base)
    if contain and config.capabilities is None and not config.private_users:
        caps = [c for c in caps if c not in _unless_named(config)]
    if "ALL" in drop_l:
        caps = []
    caps = [c for c in caps if c not in drop_l]
    for c in (list(CAPABILITIES) if "ALL" in add_l else add_l):
        if c not in caps:
            caps.append(c)
    return caps


def compatibility_of(best_effort: bool | None, compatibility: Compatibility | None) -> Compatibility:
    """The one compatibility level for the facilities beside Landlock (cgroups,
    namespaces): ``compatibility`` when given, else BEST_EFFORT for
    ``best_effort=True``, else HARD_REQUIREMENT (a missing facility fails)."""
    if compatibility is not None:
        if not isinstance(compatibility, Compatibility):
            try:
                compatibility = Compatibility(compatibility)
            except ValueError:
                raise PolicyError("compatibility", compatibility,
                                  "is not one of " + ", ".join(c.value for c in Compatibility)) from None
        if best_effort and compatibility != Compatibility.BEST_EFFORT:
            raise PolicyError("best_effort", best_effort,
                              f"contradicts compatibility={compatibility.value}")
        return compatibility
    if best_effort is not None and not isinstance(best_effort, bool):
        raise PolicyError("best_effort", best_effort, "is not a boolean")
    return Compatibility.BEST_EFFORT if best_effort else Compatibility.HARD_REQUIREMENT


#: The level of the volt-enforce command unless an option or the config says otherwise.
COMMAND_COMPATIBILITY = Compatibility.FACILITY_REQUIREMENT


def resolve_compatibility(config: IsolationConfig, override: Compatibility | None = None,
                          default: Compatibility = COMMAND_COMPATIBILITY) -> Compatibility:
    """One level for every facility of ``config`` (the volt-enforce command's
    rule): ``override`` (``--best-effort``, ``--hard-requirement``) when given,
    else the config's own Landlock ``Compatibility`` when it gives one, else
    ``default``. The config's Landlock policy is set to that level, so that
    Landlock and the facilities beside it (``compile_config(compatibility=)``)
    follow the same one."""
    level = compatibility_of(None, override) if override is not None else None
    policy = config.landlock
    if level is None and policy is not None and policy.compatibility is not None:
        level = Compatibility(policy.compatibility)
    if level is None:
        level = compatibility_of(None, default)
    if policy is not None:
        policy.compatibility = level
    return level


@dataclass
class Compiled:
    """What the parent prepares for a config, decided once (see the module doc).

    ``ruleset`` is owned unless ``ruleset_borrowed`` (then the caller that lent it
    keeps it open). ``limits`` is the cgroup plan for ``config.resources`` (None
    without limits): the files and values, by hierarchy, that ``Cgroup.create``
    writes and ``init_plan`` serializes.
    """

    config: IsolationConfig
    compatibility: Compatibility
    ruleset: CompiledRuleset | None
    seccomp: SeccompFilter | None
    limits: LimitPlan | None
    namespaces: tuple[Namespace, ...]
    capabilities: tuple[str, ...] | None
    no_new_privs: bool
    contain: bool = True
    #: Pathname UNIX sockets the ruleset lets the sandbox connect to (RESOLVE_UNIX,
    #: --unix-socket): a filesystem view of its own binds these paths into it.
    unix_sockets: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    dropped_namespaces: dict[str, str] = field(default_factory=dict)
    ruleset_borrowed: bool = False
    #: spawned children are PID 1 of a PID namespace of their own, run by an init (pidns)
    pid_namespace: bool = False
    #: vm.memfd_noexec of that namespace (0: not set; pidns.memfd_noexec_level)
    memfd_noexec: int = 0
    #: Ask the kernel to log denials (SECCOMP_FILTER_FLAG_LOG; the Landlock logging
    #: flags are the policy's): what ``volt-enforce run --why`` reads back from audit.
    log_denials: bool = False

    @property
    def seccomp_flags(self) -> int:
        """The flags of the seccomp load: the profile's own, and LOG for log_denials."""
        flags = self.seccomp.flags if self.seccomp is not None else 0
        return flags | (lib.SECCOMP_FILTER_FLAG_LOG if self.log_denials else 0)
    #: the filesystem view a contained child gets (volt_enforce.view), and the
    #: Landlock scopes its ruleset adds at enforcement
    view: ViewPlan | None = None
    view_scopes: int = 0

    @property
    def new_session(self) -> bool:
        """A contained child starts a session of its own: no controlling terminal."""
        return self.contain

    @property
    def best_effort(self) -> bool:
        return self.compatibility == Compatibility.BEST_EFFORT

    @property
    def cgroup_best_effort(self) -> bool:
        """Whether a limit whose controller this host lacks is skipped (reported):
        a dropped part of the cgroup facility (BEST_EFFORT, FACILITY_REQUIREMENT)."""
        return self.compatibility.drops_parts

    @property
    def private_network(self) -> bool:
        """A network namespace prepared in the parent (volt_enforce.net), which the
        child joins instead of unsharing one."""
        net = self.config.network
        return (Namespace.NETWORK in self.namespaces and net is not None
                and net.effective_mode == NetworkMode.PRIVATE)

    @property
    def unshare_flags(self) -> int:
        """The namespaces the child unshares (a private network is joined instead)."""
        flags = 0
        for ns in self.namespaces:
            if ns != Namespace.NETWORK or not self.private_network:
                flags |= ns.flag
        return flags

    @property
    def capability_numbers(self) -> tuple[int, ...] | None:
        return None if self.capabilities is None else tuple(CAPABILITIES[c] for c in self.capabilities)

    @property
    def capability_mask(self) -> int | None:
        nums = self.capability_numbers
        if nums is None:
            return None
        mask = 0
        for n in nums:
            mask |= 1 << n
        return mask

    def close(self) -> None:
        """Close the ruleset fd, unless it was borrowed."""
        if self.ruleset is not None and not self.ruleset_borrowed:
            self.ruleset.close()

    def __enter__(self) -> Compiled:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _namespaces(config: IsolationConfig, compatibility: Compatibility, contain: bool,
                notes: list[str], dropped: dict[str, str]) -> tuple[Namespace, ...]:
    wanted: list[Namespace] = []
    if contain:
        wanted += [Namespace.IPC, Namespace.UTS]
    if config.private_users:
        wanted.append(Namespace.USER)
    mode = config.network.effective_mode if config.network is not None else None
    if mode in (NetworkMode.NONE, NetworkMode.PRIVATE):
        wanted.append(Namespace.NETWORK)
    out: list[Namespace] = []
    for ns in wanted:
        err = namespace_errno(ns.flag)
        if err == 0:
            out.append(ns)
            continue
        error = os.strerror(err)
        if compatibility != Compatibility.BEST_EFFORT:
            raise EnforcementError(err or errno.EOPNOTSUPP, f"{ns.value}_namespace",
                                   f"not available: unshare({ns.name}) fails here")
        dropped[ns.value] = error
        notes.append(f"{ns.value} namespace dropped: {error}")
    if Namespace.NETWORK in out and mode == NetworkMode.PRIVATE:
        bridge = (config.network.bridge if config.network is not None else "") or "voltbr0"
        notes.append(f"network private: a namespace prepared in the parent, with a veth on "
                     f"bridge {bridge!r} (the address is leased when the sandbox is made)")
    return tuple(out)


def _pid_namespace(contain: bool, compatibility: Compatibility, unconfined: bool,
                   notes: list[str], dropped: dict[str, str]) -> tuple[bool, int, tuple[Rule, ...]]:
    """Whether spawned children get a PID namespace with an init, the
    vm.memfd_noexec it gets, and the seccomp rules that stand in for that setting
    below Linux 6.3 (memfd_create denied)."""
    if not contain:
        return False, 0, ()
    from .pidns import current_memfd_noexec, memfd_noexec_level

    err = namespace_errno(lib.CLONE_NEWPID)
    if err:
        error = os.strerror(err)
        if compatibility != Compatibility.BEST_EFFORT:
            raise EnforcementError(err, "pid_namespace", "not available: unshare(NEWPID) fails here")
        dropped["pid"] = error
        notes.append(f"pid namespace dropped: {error}")
        return False, 0, ()
    level = memfd_noexec_level()
    if level:
        inherited = current_memfd_noexec()
        notes.append(f"vm.memfd_noexec = {max(level, inherited)} in the child's PID namespace: "
                     + ("no memfd can be executed" if max(level, inherited) == 2 else
                        "memfds are not executable unless created with MFD_EXEC"))
        # a namespace starts with its parent's value and may not go below it
        return True, (level if level > inherited else 0), ()
    if unconfined:
        notes.append("memfd execution NOT restricted: this kernel has no vm.memfd_noexec "
                     "(6.3) and no seccomp filter denies memfd_create")
        return True, 0, ()
    from .seccomp.policy import Action, Rule

    notes.append("memfd_create denied by the seccomp filter: this kernel has no "
                 "vm.memfd_noexec (6.3)")
    return True, 0, (Rule(("memfd_create",), Action.errno(errno.EPERM)),)


def _has_port_rules(config: IsolationConfig) -> bool:
    """Whether the config restricts TCP ports (its policy's lists, or network none)."""
    policy = config.landlock
    if policy is not None and (policy.bind_tcp is not None or policy.connect_tcp is not None):
        return True
    return config.network is not None and config.network.effective_mode == NetworkMode.NONE


def compile_config(
    config: IsolationConfig,
    *,
    best_effort: bool | None = None,
    compatibility: Compatibility | None = None,
    no_new_privs: bool = True,
    contain: bool = True,
    landlock_abi: int | None = None,
    ruleset: CompiledRuleset | None = None,
    seccomp_filter: SeccompFilter | None = None,
    named_writable: tuple[str, ...] = (),
    rootfs: str | None = None,
    unix_sockets: Sequence[str] | None = None,
    log_denials: bool = False,
) -> Compiled:
    """Decide everything the parent prepares for ``config`` on this kernel.

    ``contain``: the child gets a session and IPC and UTS namespaces of its own,
    and, being host root without a user namespace, never keeps CAP_SETFCAP (nor
    CAP_SYS_ADMIN unless named). False is the explicit opt-out for trusted children.
    ``best_effort``/``compatibility``: what to do when the kernel or host lacks a
    cgroup controller or a namespace (Landlock follows its policy's own
    ``Compatibility``). ``landlock_abi`` caps the Landlock ABI used. ``ruleset``
    and ``seccomp_filter`` lend an already compiled ruleset and filter of an
    identical config (a process-wide cache), which are then not built again.
    ``unix_sockets``: pathname UNIX sockets the sandbox may connect to (see
    ``landlock.compile``), kept on the result for the filesystem view.
    ``log_denials`` loads the seccomp filter with SECCOMP_FILTER_FLAG_LOG, so that
    audit records every action but ALLOW (the policy's Landlock logging flags say
    the same for Landlock).

    Raises PolicyError for an invalid config, CompatibilityError for a
    requirement this kernel cannot meet, EnforcementError when the kernel refused
    a step; nothing stays open on error.
    """
    from . import landlock, seccomp

    if not isinstance(config, IsolationConfig):
        raise PolicyError("isolation", config, "is not an IsolationConfig")
    if not isinstance(no_new_privs, bool):
        raise PolicyError("no_new_privs", no_new_privs, "is not a boolean")
    if not isinstance(contain, bool):
        raise PolicyError("contain", contain, "is not a boolean")
    config.validate()
    compat = compatibility_of(best_effort, compatibility)
    notes: list[str] = []
    dropped: dict[str, str] = {}

    filt = seccomp_filter
    guard = _has_port_rules(config)
    unconfined = config.seccomp in (None, SeccompProfile.UNCONFINED, "unconfined")
    # the namespaces first: they decide nothing irreversible, and the filter may depend on them
    namespaces = _namespaces(config, compat, contain, notes, dropped)
    pid_ns, memfd_level, memfd_rules = _pid_namespace(contain, compat, unconfined, notes, dropped)
    kept = kept_capabilities(config, contain, host_network=Namespace.NETWORK not in namespaces)
    if filt is None and config.seccomp is not None:
        # an OCI profile's includes/excludes caps: the capabilities the child keeps
        oci_caps = kept if _is_oci_profile(config.seccomp) else None
        extra: tuple[Rule, ...] = memfd_rules
        if guard and not unconfined:
            from .seccomp import profiles

            extra = (*profiles.port_rule_guard(), *extra)
        filt = seccomp.compile(config.seccomp, extra_rules=extra, caps=oci_caps)
    if guard:
        # Landlock's TCP rules see plain TCP only (erratum 1 aside)
        notes.append("TCP port rules: MPTCP, SCTP and SMC sockets are denied by the seccomp "
                     "filter" if not unconfined else
                     "TCP port rules: MPTCP, SCTP and SMC sockets are NOT restricted "
                     "(no seccomp filter holds them to the ports)")

    limits = None
    if config.resources is not None and not config.resources.is_empty():
        from .cgroups import plan_limits

        limits = plan_limits(config.resources)

    base = kept_capabilities(config)
    lost = sorted(set(base if base is not None else CAPABILITIES) - set(kept or ()))
    if contain and kept is not None and base != kept and lost:
        notes.append("contained without a user namespace: " +
                     ", ".join(f"CAP_{c}" + (" (on the host's network: AF_PACKET would see its "
                                             "traffic)" if c == "NET_RAW" else "")
                               for c in lost if c in CONTAINED_DROPS) + " dropped")

    view, view_scopes = None, 0
    if contain:
        from .landlock import effective_abi
        from .view import plan_view, preset_scopes

        root = rootfs if rootfs is not None else (config.rootfs or "/")
        view = plan_view(config, named_writable=named_writable, rootfs=root)
        if pid_ns:  # each child mounts a procfs of its own PID namespace
            import dataclasses

            view = dataclasses.replace(view, fresh_proc=True)
        for sock in unix_sockets or ():  # a socket the child may connect to is in its view
            if os.path.exists(sock):
                view = view.with_file_bind(sock, view.to_view(sock))
        view_scopes, scope_note = preset_scopes(config, effective_abi(landlock_abi))
        if scope_note:
            notes.append(scope_note)

    # last: the only step that holds a resource
    borrowed = ruleset is not None
    sockets = tuple(unix_sockets or ())
    if borrowed and sockets:
        raise PolicyError("unix_sockets", list(sockets), "cannot be added to a lent ruleset")
    if ruleset is None:
        ruleset = landlock.compile_for(config, abi=landlock_abi, unix_sockets=list(sockets))
    return Compiled(
        config=config,
        compatibility=compat,
        ruleset=ruleset,
        seccomp=filt,
        limits=limits,
        namespaces=namespaces,
        capabilities=kept,
        no_new_privs=no_new_privs,
        contain=contain,
        unix_sockets=sockets,
        notes=notes,
        dropped_namespaces=dropped,
        ruleset_borrowed=borrowed,
        pid_namespace=pid_ns,
        memfd_noexec=memfd_level,
        log_denials=bool(log_denials),
        view=view,
        view_scopes=view_scopes,
    )


@contextmanager
def compiled(config: IsolationConfig, **kwargs: object) -> Iterator[Compiled]:
    """``compile_config`` as a context manager that closes what it opened."""
    c = compile_config(config, **kwargs)  # type: ignore[arg-type]
    try:
        yield c
    finally:
        c.close()
