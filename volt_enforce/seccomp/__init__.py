"""seccomp BPF: our own compiler, the seed's profiles, Docker/OCI import and export.

``compile(profile)`` turns ``"default"``, ``"strict"``, ``"unconfined"``, a
``SeccompProfile``, a ``Policy``, the path of an OCI JSON profile or the dict of one
into a ``SeccompFilter``: BPF bytes the parent prepares once and a child loads with
one ``seccomp(2)`` call (``SeccompFilter.load()`` here, or ``ve_seccomp_load`` /
the spawn plan in C). libseccomp is not used at run time; the tests compare
against it.

The filter checks the architecture first (a foreign one kills the process), then
searches the syscall number over merged ranges (see ``compiler``). Actions: ALLOW,
ERRNO(n), KILL_PROCESS, KILL_THREAD, TRAP, LOG. Not supported: TRACE and
USER_NOTIF (no tracer or listener here), big-endian ABIs, and filters longer than
the kernel's 4096 instructions (an error). Argument conditions compare unsigned
values as wide as the kernel reads the argument (``tables.arg_bits``, from the
syscall prototypes): an ``int`` or ``unsigned int`` on its low 32 bits, a
``umode_t`` on its low 16, pointers and ``unsigned long`` on all 64; on 32-bit ABIs
at most the low half, which is all the kernel passes.

``default`` makes the decisions of Docker's default profile (shipped as
``docker-default.json``) for a container with Docker's default capabilities, on
this machine's architecture, including its argument rules (clone without namespace
flags, personality values, socket families but AF_ALG and AF_VSOCK), and adds
``profiles.containment_rules()`` (TIOCSTI and TIOCLINUX, setuid/setgid modes,
openat2, io_uring). Where it differs from Docker running the same profile:

* 32-bit arguments are compared on their 32 bits, as the kernel reads them, where
  libseccomp compares 64: ``socket(AF_VSOCK | 1 << 32, ...)`` is AF_VSOCK, denied.

* Syscall numbers the table does not know (holes, and above the highest number,
  currently Linux 7.3's) return ENOSYS, not EPERM, so that libc falls back from
  syscalls newer than the table as it does on an older kernel (the clone3 lesson).
  runc adds the same rule only above the highest number libseccomp knows.
* The compat ABIs are denied: on x86_64 every i386 call (``int 0x80``) and every
  x32 call (``nr`` with the x32 bit, or any number from 0x40000000 up) gets the
  profile's default action, EPERM, where Docker applies the profile to them too
  (its ``archMap``). ``compile(..., subarches=("i386", "x32"))`` covers them
  instead. A profile whose default allows kills there, so that a denylist cannot be
  bypassed through a compat ABI.
* A rule ``includes``/``excludes`` names architectures in Go's spelling; ``x86`` is
  taken as i386 (Docker never matches it on any host).

``strict`` is described in ``profiles``; ``unconfined`` is no filter at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import PolicyError
from ..model import SeccompProfile
from . import bpf, oci, profiles, tables
from .compiler import compile_policy
from .filters import SeccompFilter
from .policy import ALLOW, KILL_PROCESS, KILL_THREAD, LOG, TRAP, Action, ActionKind, Arg, Op, Policy, Rule
from .tables import native_arch

__all__ = [
    "compile",
    "SeccompFilter",
    "Policy",
    "Rule",
    "Arg",
    "Op",
    "Action",
    "ActionKind",
    "ALLOW",
    "LOG",
    "TRAP",
    "KILL_PROCESS",
    "KILL_THREAD",
    "native_arch",
    "bpf",
    "oci",
    "tables",
]

_BUILTIN = {"default", "strict", "unconfined"}
_cache: dict[tuple[str, str, tuple[Rule, ...]], SeccompFilter] = {}
_lock = threading.Lock()


def compile(profile: Any, *, arch: str | None = None, caps: Iterable[str] | None = None,
            subarches: Iterable[str] = (), kernel: tuple[int, ...] | None = None,
            extra_rules: Iterable[Rule] = ()) -> SeccompFilter:
    """Compile a profile for ``arch`` (default: this machine's).

    ``profile``: ``"default"``, ``"strict"``, ``"unconfined"`` or a ``SeccompProfile``
    (compiled once per process and cached); a ``Policy``; the path of an OCI/Docker
    JSON profile, or its dict. For OCI profiles, ``caps`` (capability names: those
    the child keeps) replaces Docker's default set, and ``kernel`` (``(6, 1)``) the
    running kernel's version, in ``includes``/``excludes``. ``subarches`` adds compat
    ABIs (``i386``, ``x32``; ``arm`` on aarch64) instead of denying them.
    ``extra_rules`` are added to the profile's rules (``Policy.with_rules``), e.g.
    ``profiles.port_rule_guard()`` when Landlock has TCP port rules.

    Raises PolicyError, naming the entry, for anything malformed or unknown.
    """
    arch_name = native_arch() if arch is None else tables.canonical_arch(arch)
    if arch_name == "x32":
        raise PolicyError("arch", arch, "is a compat ABI of x86_64: use subarches=('x32',)")
    subs = tuple(subarches)
    extra = tuple(extra_rules)
    for i, rule in enumerate(extra):
        if not isinstance(rule, Rule):
            raise PolicyError(f"extra_rules[{i}]", rule, "is not a Rule")
    if isinstance(profile, SeccompProfile):
        profile = profile.value
    if isinstance(profile, str) and profile in _BUILTIN:
        if caps is not None or kernel is not None:
            raise PolicyError("caps", caps, f"do not apply to the built-in profile {profile!r}")
        if subs:
            return _compile_builtin(profile, arch_name, subs, extra)
        key = (profile, arch_name, extra)
        with _lock:
            cached = _cache.get(key)
            if cached is None:
                cached = _cache[key] = _compile_builtin(profile, arch_name, (), extra)
        return cached
    if isinstance(profile, Policy):
        if subs:
            profile = Policy(profile.name, profile.default_action, profile.rules, profile.flags,
                             profile.unknown_action, subs)
        return _compile(profile.with_rules(extra), arch_name)
    if isinstance(profile, (str, os.PathLike)):
        path = os.fspath(profile)
        doc = oci.load_file(path)
        name = os.path.basename(path)
    elif isinstance(profile, Mapping):
        doc, name = profile, "oci"
    else:
        raise PolicyError("profile", profile, "is not a profile name, Policy, OCI file path or dict")
    policy, skipped = oci.parse_profile(doc, name=name, arch=arch_name, caps=caps, kernel=kernel,
                                        subarches=subs)
    return _compile(policy.with_rules(extra), arch_name, skipped)


def _compile_builtin(name: str, arch: str, subs: tuple[str, ...],
                     extra: tuple[Rule, ...] = ()) -> SeccompFilter:
    if name == "unconfined":
        if extra:
            raise PolicyError("extra_rules", list(extra), "do not apply to 'unconfined' (no filter)")
        return SeccompFilter.unconfined(arch)
    if name == "default":
        policy = profiles.default_policy(arch)
    else:
        policy = profiles.strict_policy()
    if subs:
        policy = Policy(policy.name, policy.default_action, policy.rules, policy.flags,
                        policy.unknown_action, subs)
    return _compile(policy.with_rules(extra), arch)


def _compile(policy: Policy, arch: str, skipped: tuple[str, ...] = ()) -> SeccompFilter:
    program = compile_policy(policy, arch)
    return SeccompFilter.from_program(policy, arch, program.insns, skipped)
