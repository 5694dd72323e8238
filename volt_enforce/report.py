"""EnforcementReport: what a sandbox enforces, and what was dropped and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# imported now: exec writes the report after Landlock may forbid reading the package
from .downgrades import downgrades

if TYPE_CHECKING:
    from .compile import Compiled
    from .landlock import LandlockReport
    from .seccomp import SeccompFilter

__all__ = ["EnforcementReport"]


@dataclass
class EnforcementReport:
    """What was enforced for a sandbox, and what was dropped and why.

    ``landlock`` is the ruleset's ``LandlockReport`` and ``seccomp`` the
    ``SeccompFilter``'s summary; ``to_dict()`` gives the whole report as JSON-able
    data (built on demand: spawning never pays for formatting it).
    """

    landlock: LandlockReport | None = None
    seccomp_filter: SeccompFilter | None = None
    cgroup: dict[str, Any] | None = None
    namespaces: list[str] = field(default_factory=list)
    capabilities: list[str] | None = None  # kept; None: not reduced
    no_new_privs: bool = False
    notes: list[str] = field(default_factory=list)
    view: dict[str, Any] | None = None  # the filesystem view (volt_enforce.view), contained
    network: dict[str, Any] | None = None  # the private network: address, routes, forwards
    #: namespaces asked for and dropped (best effort), with the reason
    dropped_namespaces: dict[str, str] = field(default_factory=dict)
    #: apply_self with other threads alive (allow_threads=True): the steps that
    #: reached the calling thread only
    calling_thread_only: list[str] = field(default_factory=list)
    #: how children are started: {"path": "spawner" | "direct", "reason": why} (spawner.py)
    spawn: dict[str, Any] | None = None

    @classmethod
    def of(cls, compiled: Compiled) -> EnforcementReport:
        """The report of a compiled config, before anything ran."""
        return cls(
            landlock=compiled.ruleset.report if compiled.ruleset is not None else None,
            seccomp_filter=compiled.seccomp,
            namespaces=[ns.value for ns in compiled.namespaces],
            capabilities=None if compiled.capabilities is None else list(compiled.capabilities),
            no_new_privs=compiled.no_new_privs,
            notes=list(compiled.notes) + (compiled.view.notes if compiled.view else []),
            dropped_namespaces=dict(compiled.dropped_namespaces),
            view=compiled.view.to_dict() if compiled.view is not None else None,
        )

    @property
    def seccomp(self) -> dict[str, Any] | None:
        """The seccomp filter's summary (profile, instructions, cacheable, ...)."""
        return self.seccomp_filter.summary() if self.seccomp_filter is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "landlock": self.landlock.to_dict() if self.landlock is not None else None,
            "seccomp": self.seccomp,
            "cgroup": self.cgroup,
            "namespaces": list(self.namespaces),
            "capabilities": self.capabilities,
            "no_new_privs": self.no_new_privs,
            "notes": list(self.notes),
            "view": self.view,
            "network": self.network,
            "dropped_namespaces": dict(self.dropped_namespaces),
            "calling_thread_only": list(self.calling_thread_only),
            "downgrades": self.downgrades(),
            "spawn": dict(self.spawn) if self.spawn is not None else None,
        }

    def downgrades(self) -> list[str]:
        """One line per restriction asked for and not enforced (see
        volt_enforce.downgrades)."""
        return downgrades(self)
