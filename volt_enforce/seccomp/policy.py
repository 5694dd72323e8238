"""The compiler's input: actions, argument conditions, rules and policies.

A ``Policy`` is a resolved profile: every ``includes``/``excludes`` of an OCI profile
already evaluated, so it says exactly which rules apply. Its meaning, for a syscall:
of the rules that name it and whose argument conditions all hold, the one with the
most severe action wins (the kernel's order: KILL_PROCESS, KILL_THREAD, TRAP, ERRNO,
LOG, ALLOW), the first in the policy among equals; when none holds, the default
action. Argument values are unsigned 64-bit, compared as the kernel reads the
argument: an argument the syscall declares ``int`` or ``unsigned int`` (socket's
family, ioctl's request, personality; clone's flags, which the kernel truncates) on
its low 32 bits, a ``umode_t`` on its low 16 (``tables.arg_bits``); a value wider
than that can never match. On the 32-bit ABIs i386 and arm the kernel passes 32-bit
arguments and only the low 32 bits are compared (x32 passes whole 64-bit registers,
like x86_64).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from .._core import lib
from ..errors import PolicyError
from .tables import is_known_syscall

__all__ = ["ActionKind", "Action", "Op", "Arg", "Rule", "Policy", "ALLOW", "KILL_PROCESS",
           "KILL_THREAD", "TRAP", "LOG"]

_U64 = (1 << 64) - 1
#: The largest errno a filter may return (the kernel's MAX_ERRNO).
MAX_ERRNO = 4095


class ActionKind(str, enum.Enum):
    """What a filter does with a syscall. TRACE and USER_NOTIF are only decoded
    (from other filters' output): profiles cannot ask for them."""

    KILL_PROCESS = "kill_process"
    KILL_THREAD = "kill_thread"
    TRAP = "trap"
    ERRNO = "errno"
    USER_NOTIF = "user_notif"
    TRACE = "trace"
    LOG = "log"
    ALLOW = "allow"

    def __str__(self) -> str:
        return self.value


_RET = {
    ActionKind.KILL_PROCESS: lib.SECCOMP_RET_KILL_PROCESS,
    ActionKind.KILL_THREAD: lib.SECCOMP_RET_KILL_THREAD,
    ActionKind.TRAP: lib.SECCOMP_RET_TRAP,
    ActionKind.ERRNO: lib.SECCOMP_RET_ERRNO,
    ActionKind.USER_NOTIF: lib.SECCOMP_RET_USER_NOTIF,
    ActionKind.TRACE: lib.SECCOMP_RET_TRACE,
    ActionKind.LOG: lib.SECCOMP_RET_LOG,
    ActionKind.ALLOW: lib.SECCOMP_RET_ALLOW,
}
_SEVERITY = {kind: i for i, kind in enumerate(ActionKind)}


@dataclass(frozen=True)
class Action:
    """A filter's verdict: ``Action.errno(1)``, ``ALLOW``, ``KILL_PROCESS`` ..."""

    kind: ActionKind
    data: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ActionKind):
            object.__setattr__(self, "kind", ActionKind(self.kind))
        if self.kind == ActionKind.ERRNO:
            if not isinstance(self.data, int) or not 0 <= self.data <= MAX_ERRNO:
                raise PolicyError("errno", self.data, f"is not an errno from 0 to {MAX_ERRNO}")
        elif self.kind not in (ActionKind.TRACE,) and self.data:
            raise PolicyError("action", self, "carries data only for ERRNO and TRACE")

    @classmethod
    def errno(cls, value: int) -> Action:
        return cls(ActionKind.ERRNO, value)

    @classmethod
    def from_ret(cls, value: int) -> Action:
        """Decode a filter's 32-bit return value."""
        full = value & lib.SECCOMP_RET_ACTION_FULL
        data = value & lib.SECCOMP_RET_DATA
        for kind, ret in _RET.items():
            if ret == full:
                if kind == ActionKind.ERRNO:
                    return cls(kind, min(data, MAX_ERRNO))
                return cls(kind, data if kind == ActionKind.TRACE else 0)
        # the kernel treats unknown actions as KILL_PROCESS
        return cls(ActionKind.KILL_PROCESS)

    @property
    def ret(self) -> int:
        """The 32-bit value a filter returns for this action."""
        return _RET[self.kind] | self.data

    @property
    def severity(self) -> int:
        """Smaller is more severe (the kernel's precedence)."""
        return _SEVERITY[self.kind]

    @property
    def denies(self) -> bool:
        return self.kind not in (ActionKind.ALLOW, ActionKind.LOG)

    def __str__(self) -> str:
        name = self.kind.name
        return f"{name}({self.data})" if self.kind in (ActionKind.ERRNO, ActionKind.TRACE) else name


ALLOW = Action(ActionKind.ALLOW)
LOG = Action(ActionKind.LOG)
TRAP = Action(ActionKind.TRAP)
KILL_PROCESS = Action(ActionKind.KILL_PROCESS)
KILL_THREAD = Action(ActionKind.KILL_THREAD)


class Op(str, enum.Enum):
    """Argument comparisons (unsigned), spelled as in OCI/libseccomp."""

    NE = "SCMP_CMP_NE"
    LT = "SCMP_CMP_LT"
    LE = "SCMP_CMP_LE"
    EQ = "SCMP_CMP_EQ"
    GE = "SCMP_CMP_GE"
    GT = "SCMP_CMP_GT"
    MASKED_EQ = "SCMP_CMP_MASKED_EQ"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Arg:
    """``args[index] <op> value``; for MASKED_EQ: ``args[index] & value == value_two``
    (OCI's ``value`` is the mask, ``valueTwo`` the expected bits)."""

    index: int
    op: Op
    value: int
    value_two: int = 0

    def __post_init__(self) -> None:
        self.validate("arg")

    def validate(self, prefix: str) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int) or not 0 <= self.index <= 5:
            raise PolicyError(f"{prefix}.index", self.index, "is not an argument index from 0 to 5")
        if not isinstance(self.op, Op):
            try:
                object.__setattr__(self, "op", Op(self.op))
            except ValueError:
                raise PolicyError(f"{prefix}.op", self.op, "is not a comparison "
                                  f"({', '.join(o.value for o in Op)})") from None
        for name, v in (("value", self.value), ("valueTwo", self.value_two)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _U64:
                raise PolicyError(f"{prefix}.{name}", v, "is not an unsigned 64-bit integer")

    def matches(self, arg: int, bits: int = 64) -> bool:
        """The condition on an argument value of which the kernel reads the low
        ``bits`` bits (reference semantics)."""
        if bits < 64:
            arg &= (1 << bits) - 1
        v = self.value
        if self.op == Op.EQ:
            return arg == v
        if self.op == Op.NE:
            return arg != v
        if self.op == Op.LT:
            return arg < v
        if self.op == Op.LE:
            return arg <= v
        if self.op == Op.GT:
            return arg > v
        if self.op == Op.GE:
            return arg >= v
        return arg & v == self.value_two


@dataclass(frozen=True)
class Rule:
    """Syscalls that get ``action`` when every condition in ``args`` holds."""

    names: tuple[str, ...]
    action: Action
    args: tuple[Arg, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.names, str):
            object.__setattr__(self, "names", (self.names,))
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "args", tuple(self.args))
        self.validate("rule")

    def validate(self, prefix: str) -> None:
        if not self.names:
            raise PolicyError(f"{prefix}.names", list(self.names), "is empty")
        for j, name in enumerate(self.names):
            if not isinstance(name, str) or not is_known_syscall(name):
                raise PolicyError(f"{prefix}.names[{j}]", name, "is not a known syscall")
        if not isinstance(self.action, Action):
            raise PolicyError(f"{prefix}.action", self.action, "is not an Action")
        if self.action.kind in (ActionKind.TRACE, ActionKind.USER_NOTIF):
            raise PolicyError(f"{prefix}.action", str(self.action), "is not supported")
        for k, arg in enumerate(self.args):
            if not isinstance(arg, Arg):
                raise PolicyError(f"{prefix}.args[{k}]", arg, "is not an Arg")


#: Filter flags a profile may ask for (OCI ``flags``).
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": lib.SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": lib.SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": lib.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}


@dataclass(frozen=True)
class Policy:
    """A resolved profile: what to compile.

    ``unknown_action`` applies to numbers the syscall table does not know (holes and
    everything above the highest): None means ``ERRNO(ENOSYS)`` when the default
    denies, so that libc falls back from syscalls newer than the table, and the
    default action when it allows. ``subarches`` names the compat ABIs (``i386``,
    ``x32``, ``arm``) the profile also covers; the others are denied.
    """

    name: str
    default_action: Action
    rules: tuple[Rule, ...] = ()
    flags: tuple[str, ...] = ()
    unknown_action: Action | None = None
    subarches: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "flags", tuple(self.flags))
        object.__setattr__(self, "subarches", tuple(self.subarches))
        if not isinstance(self.name, str) or not self.name:
            raise PolicyError("name", self.name, "is not a profile name")
        if not isinstance(self.default_action, Action):
            raise PolicyError("defaultAction", self.default_action, "is not an Action")
        for i, rule in enumerate(self.rules):
            if not isinstance(rule, Rule):
                raise PolicyError(f"syscalls[{i}]", rule, "is not a Rule")
        for i, flag in enumerate(self.flags):
            if flag not in FLAGS:
                raise PolicyError(f"flags[{i}]", flag, f"is not one of {', '.join(FLAGS)}")

    def with_rules(self, rules: Iterable[Rule]) -> Policy:
        """This policy with ``rules`` appended (precedence decides between them and the
        policy's own, not order: a more severe action wins)."""
        return Policy(self.name, self.default_action, self.rules + tuple(rules), self.flags,
                      self.unknown_action, self.subarches)

    @property
    def flag_bits(self) -> int:
        bits = 0
        for flag in self.flags:
            bits |= FLAGS[flag]
        return bits

    def syscall_names(self) -> Iterable[str]:
        seen: dict[str, None] = {}
        for rule in self.rules:
            for name in rule.names:
                seen.setdefault(name)
        return seen.keys()
