"""``SeccompFilter``: a compiled, immutable filter ready to load."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core import ffi, lib
from ..errors import PolicyError, check
from . import bpf, oci
from .bpf import Instruction, SeccompData
from .policy import ALLOW, Action, Policy
from .tables import ARCHES, ArchTable, canonical_arch, native_arch

__all__ = ["SeccompFilter"]

_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class SeccompFilter:
    """A compiled seccomp filter.

    ``bpf`` is the ``struct sock_filter`` array in native layout (what
    ``seccomp(SECCOMP_SET_MODE_FILTER)`` takes); ``instructions`` its length, 0 for
    ``unconfined``. ``cacheable`` names the syscalls of ``arch`` that the kernel's
    action cache allows without running the filter (their ALLOW path reads only
    ``nr`` and ``arch``).
    """

    name: str
    arch: str
    bpf: bytes = field(repr=False)
    instructions: int
    cacheable: frozenset[str] = field(repr=False)
    policy: Policy | None = field(repr=False, default=None)
    flags: int = 0
    program: tuple[Instruction, ...] = field(repr=False, default=())
    #: Syscall names of an imported profile that this filter skipped: no number on
    #: ``arch`` nor on a compat ABI it covers (sorted).
    skipped_names: tuple[str, ...] = ()

    @classmethod
    def from_program(cls, policy: Policy, arch: str, insns: Sequence[Instruction],
                     skipped: Iterable[str] = ()) -> SeccompFilter:
        """``skipped``: the profile's names the filter skipped (``oci.parse_profile``)."""
        audit = ARCHES[arch].audit_arch
        cacheable = frozenset(name for name, nr in ARCHES[arch].syscalls.items()
                              if bpf.const_allow(insns, audit, nr))
        return cls(name=policy.name, arch=arch, bpf=bpf.pack(insns), instructions=len(insns),
                   cacheable=cacheable, policy=policy, flags=policy.flag_bits,
                   program=tuple(insns), skipped_names=tuple(sorted(set(skipped))))

    @classmethod
    def unconfined(cls, arch: str) -> SeccompFilter:
        return cls(name="unconfined", arch=arch, bpf=b"", instructions=0,
                   cacheable=frozenset(ARCHES[arch].syscalls), policy=None)

    # ---- loading ----------------------------------------------------------------------

    def load(self, *, tsync: bool = False, log: bool = False, spec_allow: bool = False) -> None:
        """Load into the calling thread (all threads with ``tsync``): sets no_new_privs,
        then ``seccomp(SECCOMP_SET_MODE_FILTER)``. Irreversible; a no-op for unconfined."""
        if not self.instructions:
            return
        here = native_arch()
        if self.arch != here:
            raise PolicyError("arch", self.arch,
                              f"is not this machine's architecture ({here}); the filter would kill it")
        flags = self.flags
        if tsync:
            flags |= lib.SECCOMP_FILTER_FLAG_TSYNC
        if log:
            flags |= lib.SECCOMP_FILTER_FLAG_LOG
        if spec_allow:
            flags |= lib.SECCOMP_FILTER_FLAG_SPEC_ALLOW
        check(lib.ve_seccomp_set_no_new_privs(), "no_new_privs")
        check(lib.ve_seccomp_load(ffi.from_buffer(self.bpf), self.instructions, flags),
              "seccomp", f"profile {self.name}")

    # ---- inspection ------------------------------------------------------------------

    def disassemble(self) -> str:
        """The program as a readable listing, syscall and arch names in comments."""
        if not self.instructions:
            return "(no filter)"
        table = ARCHES[self.arch]
        arches = {t.audit_arch: n for n, t in ARCHES.items() if n != "x32"}
        return bpf.disassemble(self.program, names=dict(table.by_number), arches=arches)

    def simulate(self, nr_or_name: int | str, args: Sequence[int] = (),
                 arch: str | int | None = None, *, instruction_pointer: int = 0) -> Action:
        """What the filter decides for a syscall, by running the BPF in Python.

        ``arch``: an architecture name (default: the filter's; ``x32`` is the x86_64
        ABI with the x32 bit in nr; names are looked up in that ABI's table) or a raw
        AUDIT_ARCH value. ``args``: up to six unsigned 64-bit values.
        """
        table: ArchTable | None
        if isinstance(arch, int) and not isinstance(arch, bool):
            audit, table = arch, None
        else:
            name = self.arch if arch is None else canonical_arch(arch)  # type: ignore[arg-type]
            table = ARCHES[name]
            audit = table.audit_arch
        if isinstance(nr_or_name, str):
            nr = table.number(nr_or_name) if table is not None else None
            if nr is None:
                raise PolicyError("syscall", nr_or_name,
                                  f"has no number on {table.name if table else hex(audit)}")
        elif isinstance(nr_or_name, int) and not isinstance(nr_or_name, bool):
            nr = nr_or_name & 0xFFFFFFFF
        else:
            raise PolicyError("syscall", nr_or_name, "is not a syscall name or number")
        if len(args) > 6 or any(not isinstance(a, int) or not 0 <= a <= _U64 for a in args):
            raise PolicyError("args", list(args), "are not up to six unsigned 64-bit integers")
        if not self.instructions:
            return ALLOW
        data = SeccompData(nr=nr, arch=audit, instruction_pointer=instruction_pointer,
                           args=tuple(args) + (0,) * (6 - len(args)))
        return Action.from_ret(bpf.run(self.program, data))

    def to_oci(self) -> dict[str, Any]:
        """The profile as an OCI runtime-spec ``linux.seccomp`` object (runc, crun,
        Kubernetes). ``unconfined`` exports as a profile that allows everything."""
        if self.policy is None:
            return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
        return oci.export(self.policy, self.arch)

    def summary(self) -> dict[str, Any]:
        """For the enforcement report; ``skipped_names`` only when there are any."""
        out = {
            "profile": self.name,
            "arch": self.arch,
            "instructions": self.instructions,
            "rules": len(self.policy.rules) if self.policy is not None else 0,
            "default_action": str(self.policy.default_action) if self.policy is not None else "ALLOW",
            "cacheable": len(self.cacheable),
        }
        if self.skipped_names:
            out["skipped_names"] = list(self.skipped_names)
        return out
