"""Downgrades: each restriction asked for that the sandbox does not enforce, one line each.

An ``EnforcementReport`` already holds every drop, in the form of its facility:
Landlock's ``dropped`` entries, the namespaces dropped under best effort, the cgroup
limits skipped for a missing controller or file, the steps of ``apply_self`` that
reached only the calling thread. ``downgrades(report)`` turns them into lines a
person reads (the volt-enforce command prints each on stderr, unless
``--no-warnings``).

Only what leaves the sandbox weaker than asked is a downgrade: a grant lost with
its right (a directory right on a file), a logging or quiet option, a rule skipped
because its path is missing (asked for with MissingPaths ``skip``), a statistics
controller or a limit whose value is the kernel's default anyway are not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .landlock import Dropped, LandlockReport
    from .report import EnforcementReport

__all__ = ["downgrades"]


def _landlock(report: LandlockReport) -> list[str]:
    weakening = [d for d in report.dropped if d.weakens]
    if not weakening:
        return []
    if report.status == "none":
        # Landlock absent (or capped to 0): one line for the whole facility
        by_kind: dict[str, list[str]] = {}
        for d in weakening:
            by_kind.setdefault(d.kind, []).append(d.name.lower())
        what = "; ".join(f"{kind} {'|'.join(names)}" for kind, names in by_kind.items())
        return [f"landlock not enforced: {weakening[0].reason} (dropped {what})"]
    return [_dropped_line(d) for d in weakening]


def _dropped_line(d: Dropped) -> str:
    where = f" on {d.path}" if d.path else f" for port {d.port}" if d.port is not None else ""
    return f"landlock {d.kind} {d.name.lower()}{where} dropped: {d.reason}"


def _cgroup(cgroup: dict[str, Any] | None) -> list[str]:
    if not cgroup:
        return []
    out = []
    for key, reason in (cgroup.get("skipped") or {}).items():
        # limit files are "<controller>.<name>"; the other keys name hierarchies or
        # controllers joined only for statistics, and a default value changes nothing
        if "." in key and "is the default" not in str(reason):
            out.append(f"cgroup limit {key} dropped: {reason}")
    return out


def downgrades(report: EnforcementReport) -> list[str]:
    """One line per restriction asked for that is not enforced, by facility."""
    lines = _landlock(report.landlock) if report.landlock is not None else []
    lines += [f"{ns} namespace dropped: {why}" for ns, why in report.dropped_namespaces.items()]
    lines += _cgroup(report.cgroup)
    lines += [f"{step} reached the calling thread only (other threads stay unrestricted)"
              for step in report.calling_thread_only]
    return lines
