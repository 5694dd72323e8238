"""Exceptions of volt_enforce.

Each also inherits the builtin it means, so ``except ValueError`` and
``except OSError`` keep working for callers that do not know this library::

    VoltEnforceError
    ├── PolicyError (ValueError)            the policy is invalid; nothing was applied
    ├── EnforcementError (OSError)          the kernel refused a step, with its errno
    │   ├── StepUnavailableError            a step this system cannot perform (EOPNOTSUPP)
    │   └── CompatibilityError              a required kernel feature is missing (EOPNOTSUPP)
    └── InstallationError (FileNotFoundError)  a part of the installation is missing

Rules every raiser follows:

- An ``EnforcementError`` always carries a real errno (``1 .. 4095``): ``errno`` 0 (or a
  negative one) is refused at construction with a ``ValueError``, so ``except OSError as e:
  e.errno`` always means something.
- A C core result (``>= 0`` or ``-errno``) becomes an exception in one place only:
  ``check(rc, step, detail)``.
- A step that cannot be performed here at all (a namespace this kernel or this
  container does not allow, say) is ``StepUnavailableError(step, detail)``: an
  ``EnforcementError`` with ``errno.EOPNOTSUPP``, whose message says "not available".
  A step refused for another reason names the errno that fits (``EnforcementError(
  errno.EBUSY, step, detail)``, ...). A missing kernel *feature* a policy requires is
  ``CompatibilityError(feature, detail)``.
- A missing part of the installation (the volt-init executable not built) is
  ``InstallationError(what, path)``.

Every class pickles (``pickle``, ``multiprocessing``, ``concurrent.futures``) to one of
the same type with the same ``args``, message and attributes; ``PolicyError.value`` must
itself be picklable for that.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

__all__ = [
    "VoltEnforceError",
    "PolicyError",
    "EnforcementError",
    "StepUnavailableError",
    "CompatibilityError",
    "InstallationError",
    "check",
]

#: The largest errno the kernel returns (MAX_ERRNO, include/linux/err.h).
MAX_ERRNO = 4095


class VoltEnforceError(Exception):
    """Base class of every error this library raises on purpose."""


class PolicyError(VoltEnforceError, ValueError):
    """A policy, limit or option is invalid. Nothing was applied.

    ``field`` names what was wrong in the model's spelling (``Resources.MemoryHard``),
    ``value`` is the offending value, ``reason`` what is wrong with it.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {value!r} {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.reason), self.__dict__)


def _checked_errno(err: object) -> int:
    if isinstance(err, bool) or not isinstance(err, int):
        raise TypeError(f"EnforcementError: errno must be an int, not {type(err).__name__}")
    if not 0 < err <= MAX_ERRNO:
        raise ValueError(
            f"EnforcementError: errno must be 1..{MAX_ERRNO}, not {err}; for a step that is "
            "not available raise StepUnavailableError(step, detail)"
        )
    return err


class EnforcementError(VoltEnforceError, OSError):
    """The kernel refused a step of enforcement.

    ``errno`` is the kernel's answer (never 0), ``step`` names the step
    (``landlock_restrict_self``, ``cgroup.procs``, ...), ``detail`` what it was applied
    to (a path, a rule, a cgroup file). When raised for a child, the target was never
    executed.
    """

    def __init__(self, err: int, step: str, detail: str | None = None) -> None:
        err = _checked_errno(err)
        self.step = step
        self.detail = detail
        super().__init__(err, self._message(err, step, detail))

    @staticmethod
    def _message(err: int, step: str, detail: str | None) -> str:
        msg = f"{step}: {os.strerror(err)}"
        return f"{msg} ({detail})" if detail else msg

    def __str__(self) -> str:
        return self.strerror or ""

    def __reduce__(self) -> tuple[Any, ...]:  # keep step and detail across pickling
        return (type(self), (self.errno, self.step, self.detail), self.__dict__)


class StepUnavailableError(EnforcementError):
    """A step of enforcement that this system cannot perform at all (``EOPNOTSUPP``).

    Raised instead of a made-up errno when nothing was refused by a call but the step
    is not possible here: a namespace the kernel or the surrounding container does not
    allow, say. ``detail`` says why.
    """

    def __init__(self, step: str, detail: str | None = None) -> None:
        super().__init__(_errno.EOPNOTSUPP, step, detail)

    @staticmethod
    def _message(err: int, step: str, detail: str | None) -> str:
        return f"{step}: not available ({detail})" if detail else f"{step}: not available"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.step, self.detail), self.__dict__)


class CompatibilityError(EnforcementError):
    """A required feature is missing from the running kernel.

    Raised for hard (and soft) requirements that the kernel cannot meet; ``feature``
    names the feature, the message also the ABI or kernel version that has it.
    """

    def __init__(self, feature: str, detail: str | None = None) -> None:
        self.feature = feature
        super().__init__(_errno.EOPNOTSUPP, f"unsupported: {feature}", detail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.feature, self.detail), self.__dict__)


class InstallationError(VoltEnforceError, FileNotFoundError):
    """A part of this installation is missing, such as the volt-init executable.

    ``what`` names the part, ``filename`` where it was looked for; ``hint`` how to get it.
    """

    def __init__(self, what: str, path: str, hint: str = "reinstall the package") -> None:
        self.what = what
        self.hint = hint
        super().__init__(_errno.ENOENT, f"{what} is not built ({hint})", path)

    def __str__(self) -> str:
        return f"{self.what} is not built: {self.filename} ({self.hint})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.filename, self.hint), self.__dict__)


def check(rc: int, step: str, detail: str | None = None) -> int:
    """Turn a C core result (``>= 0`` or ``-errno``) into a value or an ``EnforcementError``.

    The one place a ``-errno`` becomes an exception. A result that is neither (not an
    int, or below ``-MAX_ERRNO``) is a bug in the C call and raises ``TypeError`` or
    ``ValueError``.
    """
    if isinstance(rc, bool) or not isinstance(rc, int):
        raise TypeError(f"{step}: the C result must be an int, not {type(rc).__name__}")
    if rc < 0:
        if rc < -MAX_ERRNO:
            raise ValueError(f"{step}: malformed C result {rc} (neither >= 0 nor -errno)")
        raise EnforcementError(-rc, step, detail)
    return rc
