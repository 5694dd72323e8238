"""Rights by path, as Landlock decides them: what a child may do with a path under a
policy (before compiling) or a compiled ruleset (as the kernel got it). Read by
``diagnose`` (why an exec failed, ``explain --path``) and ``autorules`` (what a
program still needs)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._paths import path_under
from .compile import Compiled
from .landlock import RUNTIME_RULES, fs_rights_for_abi
from .model import LandlockAccess, LandlockPolicy

if TYPE_CHECKING:
    from .report import EnforcementReport

__all__ = ["PolicyRights", "WRITE_RIGHTS", "access_names", "path_under"]

_A = LandlockAccess
_SINGLE = [m for m in _A if m.value and m.value & (m.value - 1) == 0]
_ALL = 0
for _m in _SINGLE:
    _ALL |= _m.value
#: What makes a path writable for "never make a writable file executable".
WRITE_RIGHTS = _A.WRITE_FILE | _A.MAKE_REG


def access_names(access: int) -> list[str]:
    """The single rights of a mask, lower case (``["read_file", "execute"]``)."""
    return [m.name.lower() for m in _SINGLE if access & m.value and m.name is not None]


@dataclass(frozen=True)
class PolicyRights:
    """Rights by path, as Landlock decides them: ``handled`` rights are denied unless
    a rule on the path or on a directory above it grants them; the rest are free.

    ``rules`` are (resolved path, rights, is a directory, source). ``dropped`` maps a
    right this kernel cannot enforce (so it is free) to the reason."""

    handled: int
    rules: tuple[tuple[str, int, bool, str], ...]
    dropped: tuple[tuple[int, str], ...] = ()

    @classmethod
    def of_policy(cls, policy: LandlockPolicy) -> PolicyRights:
        """From a model policy, before compiling (every right handled, runtime rules in)."""
        pairs: list[tuple[str, int, str]] = [(r.path, int(r.access), "policy") for r in policy.rules]
        if policy.runtime:
            pairs += [(p, int(a), "runtime") for p, a in RUNTIME_RULES]
        return cls(int(_A.all()), _resolved(pairs))

    @classmethod
    def of_compiled(cls, compiled: Compiled | EnforcementReport) -> PolicyRights:
        """From a compiled sandbox (or its report): the rules as the kernel got them."""
        if isinstance(compiled, Compiled):
            report = compiled.ruleset.report if compiled.ruleset is not None else None
        else:
            report = compiled.landlock
        if report is None or not report.handled_fs:
            free = tuple((int(m), "no Landlock filesystem restriction") for m in _SINGLE)
            return cls(0, (), free if report is None else ())
        pairs = [(r.path, int(r.access), r.source) for r in report.rules]
        dropped: list[tuple[int, str]] = []
        for d in (*report.dropped, *report.best_effort):
            bit = getattr(_A, d.name, None) if d.kind == "fs" else None
            if bit is not None:
                dropped.append((int(bit), f"dropped on this kernel: {d.reason}"))
        known = int(fs_rights_for_abi(report.abi))
        for m in _SINGLE:
            if not known & m.value and all(b != m.value for b, _ in dropped):
                dropped.append((m.value, f"not enforced on this kernel: Landlock ABI {report.abi} "
                                         "lacks it"))
        return cls(int(report.handled_fs), _resolved(pairs), tuple(dropped))

    def granting(self, path: str) -> list[tuple[str, int, str]]:
        """The rules that give ``path`` (resolved) rights: (rule path, rights, source)."""
        out = []
        for rpath, access, is_dir, source in self.rules:
            if (is_dir and path_under(path, rpath)) or (not is_dir and path == rpath):
                out.append((rpath, access, source))
        return out

    def granted(self, path: str) -> int:
        """The rights a child has on ``path`` (a resolved path)."""
        g = _ALL & ~self.handled
        for _p, access, _s in self.granting(path):
            g |= access
        return g

    def writable(self, path: str) -> bool:
        return bool(self.granted(path) & WRITE_RIGHTS)

    def writable_beneath(self, directory: str) -> bool:
        """Whether a write right is granted somewhere strictly below ``directory``."""
        return any(access & WRITE_RIGHTS and rpath != directory and path_under(rpath, directory)
                   for rpath, access, _d, _s in self.rules)


def _resolved(pairs: Iterable[tuple[str, int, str]]) -> tuple[tuple[str, int, bool, str], ...]:
    out = []
    for path, access, source in pairs:
        real = os.path.realpath(path)  # the rule is on what the path named when added
        out.append((real, access, os.path.isdir(real), source))
    return tuple(out)
