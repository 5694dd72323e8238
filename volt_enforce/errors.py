"""Exceptions of volt_enforce.

Each also inherits the builtin it means, so ``except ValueError`` and
``except OSError`` keep working for callers that do not know this library.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = [
    "VoltEnforceError",
    "PolicyError",
    "EnforcementError",
    "CompatibilityError",
    "check",
]


class VoltEnforceError(Exception):
    """Base class of every error this library raises on purpose."""


class PolicyError(VoltEnforceError, ValueError):
    """A policy, limit or option is invalid. Nothing was applied.

    ``field`` names what was wrong in the model's spelling (``Resources.MemoryHard``),
    ``value`` is the offending value.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {value!r} {reason}")


class EnforcementError(VoltEnforceError, OSError):
    """The kernel refused a step of enforcement.

    ``step`` names the step (``landlock_restrict_self``, ``cgroup.procs``, ...),
    ``detail`` what it was applied to (a path, a rule, a cgroup file). When raised
    for a child, the target was never executed.
    """

    def __init__(self, err: int, step: str, detail: str | None = None) -> None:
        self.step = step
        self.detail = detail
        msg = f"{step}: {os.strerror(err) if err else 'failed'}"
        if detail:
            msg += f" ({detail})"
        super().__init__(err, msg)

    def __str__(self) -> str:
        return self.strerror or ""

    def __reduce__(self):  # keep step and detail across pickling
        return (type(self), (self.errno, self.step, self.detail))


class CompatibilityError(EnforcementError):
    """A required feature is missing from the running kernel.

    Raised for hard (and soft) requirements that the kernel cannot meet; the
    message names the feature and the ABI or kernel version that has it.
    """

    def __init__(self, feature: str, detail: str | None = None) -> None:
        self.feature = feature
        super().__init__(_errno.EOPNOTSUPP, f"unsupported: {feature}", detail)


def check(rc: int, step: str, detail: str | None = None) -> int:
    """Turn a C core result (``>= 0`` or ``-errno``) into a value or an error."""
    if rc < 0:
        raise EnforcementError(-rc, step, detail)
    return rc


class InstallationError(VoltEnforceError, FileNotFoundError):
    """A part of this installation is missing (the volt-init executable)."""
