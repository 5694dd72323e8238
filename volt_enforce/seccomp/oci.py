"""Docker/OCI seccomp profiles: import (to a ``Policy``) and export.

Import takes the OCI runtime-spec form (``defaultAction``, ``defaultErrnoRet``,
``architectures``, ``flags``, ``syscalls`` with ``names``, ``action``, ``errnoRet``,
``args``) and Docker's additions (``archMap``, ``name``, ``comment``, ``includes`` and
``excludes`` with ``caps``, ``arches`` and ``minKernel``). ``includes``/``excludes``
are evaluated the way Docker does, for the process that will run under the filter:
``caps`` against its capabilities (by default Docker's default set, the one a child
under such a profile keeps unless told otherwise: never the caller's, which would
let a root caller's child reach reboot, settimeofday or bpf), ``arches`` against the target architecture,
``minKernel`` against the running kernel. A rule ``includes`` only when all its listed
capabilities are present, and ``excludes`` when any is.

The containers dialect (containers/common ``pkg/seccomp``, shipped by podman,
buildah and CRI-O) is read too, as runc and crun read it: ``defaultErrno`` and a
rule's ``errno`` name an errno (``"EPERM"``) beside or instead of
``defaultErrnoRet``/``errnoRet``; a name alone means that errno, and a name and a
number both given must agree.

Syscall names with no number on the target architecture (nor on a compat ABI
asked for) are skipped, as runc and crun skip what libseccomp cannot resolve: a
profile names ``_llseek``, ``socketcall`` or s390 calls for every architecture.
``parse_profile`` returns them, and a compiled filter lists them in its summary
(``skipped_names``). A name that is not a syscall of any architecture we know is
still an error. A field that no dialect has is an error.

Not supported, and refused by name: ``SCMP_ACT_TRACE``, ``SCMP_ACT_NOTIFY`` (and so a
``listenerPath``). ``architectures``/``archMap`` are checked but do not add compat ABIs
to the filter: those are denied unless ``compile(..., subarches=...)`` asks for them.
"""

from __future__ import annotations

import errno as _errno
import json
import os
import platform
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import PolicyError
from ..model import CAPABILITIES, DOCKER_DEFAULT_CAPABILITIES
from .policy import (
    ALLOW,
    FLAGS,
    KILL_PROCESS,
    KILL_THREAD,
    LOG,
    TRAP,
    Action,
    ActionKind,
    Arg,
    Op,
    Policy,
    Rule,
)
from .tables import ARCHES, COMPAT, is_known_syscall

__all__ = ["parse", "parse_profile", "load_file", "export", "effective_capabilities",
           "running_kernel"]

_ACTIONS = {
    "SCMP_ACT_ALLOW": ALLOW,
    "SCMP_ACT_LOG": LOG,
    "SCMP_ACT_TRAP": TRAP,
    "SCMP_ACT_KILL": KILL_THREAD,  # libseccomp's KILL is the thread
    "SCMP_ACT_KILL_THREAD": KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": KILL_PROCESS,
}
_UNSUPPORTED_ACTIONS = {"SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"}

#: libseccomp's architecture names, accepted in ``architectures`` and ``archMap``.
_SCMP_ARCHES = {
    "SCMP_ARCH_NATIVE", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
}
#: Go's names (runtime.GOARCH) and Docker's, as used in ``includes``/``excludes``.
_GO_ARCHES = {
    "386", "x86", "amd64", "x32", "arm", "arm64", "aarch64", "ppc", "ppc64", "ppc64le",
    "s390", "s390x", "mips", "mipsle", "mips64", "mips64le", "mips64n32", "mips64len32",
    "mips64p32", "mips64p32le", "riscv64", "loong64", "loongarch64", "parisc", "parisc64",
    "m68k", "sh", "sheb",
}
_GO_NAME = {"x86_64": {"amd64"}, "i386": {"386", "x86"}, "aarch64": {"arm64", "aarch64"},
            "arm": {"arm"}, "x32": {"x32"}}
_OCI_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "i386": "SCMP_ARCH_X86", "x32": "SCMP_ARCH_X32",
             "aarch64": "SCMP_ARCH_AARCH64", "arm": "SCMP_ARCH_ARM"}

_TOP_KEYS = {"defaultAction", "defaultErrnoRet", "defaultErrno", "architectures", "archMap",
             "syscalls", "flags", "listenerPath", "listenerMetadata", "comment"}
_SYSCALL_KEYS = {"names", "name", "action", "errnoRet", "errno", "args", "comment", "includes",
                 "excludes"}
#: Names other architectures have that the syscall tables do not list yet (MIPS
#: o32's indirect ``syscall``; containers/common's profile names it).
_FOREIGN_EXTRA = frozenset({"syscall"})
_ARG_KEYS = {"index", "value", "valueTwo", "op"}
_FILTER_KEYS = {"caps", "arches", "minKernel"}


def effective_capabilities() -> frozenset[str]:
    """The capability names (``SYS_ADMIN`` ...) in this process's effective set."""
    mask = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                mask = int(line.split()[1], 16)
                break
    return frozenset(name for name, bit in CAPABILITIES.items() if mask >> bit & 1)


def running_kernel() -> tuple[int, ...]:
    """The running kernel's version as numbers: (6, 18, 44)."""
    return _version(platform.release()) or (0,)


def _version(text: str) -> tuple[int, ...] | None:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if m is None:
        return None
    return tuple(int(p) for p in m.groups() if p is not None)


def _cap_name(prefix: str, value: Any) -> str:
    if not isinstance(value, str):
        raise PolicyError(prefix, value, "is not a capability name")
    name = value.upper()
    name = name[4:] if name.startswith("CAP_") else name
    if name not in CAPABILITIES:
        raise PolicyError(prefix, value, "is not a known capability")
    return name


def _list(prefix: str, value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(prefix, value, f"is not a list of {what}")
    return value


def _keys(prefix: str, value: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(prefix, value, "is not an object")
    for key in value:
        if key not in allowed:
            raise PolicyError(f"{prefix}.{key}" if prefix else key, value[key],
                              f"is not a field of a seccomp profile here ({', '.join(sorted(allowed))})")
    return value


def _errno_value(prefix: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 4095:
        raise PolicyError(prefix, value, "is not an errno from 0 to 4095")
    return value


def _errno_of(entry: Mapping[str, Any], ret_key: str, name_key: str,
              prefix: str) -> tuple[int | None, str]:
    """The errno a rule (or the default) gives, from the number (OCI), the name
    (containers/common) or both, which must agree; and the field to name in errors."""
    where = f"{prefix}.{ret_key}" if prefix else ret_key
    number = entry.get(ret_key)
    name = entry.get(name_key)
    if name is None:
        return (None if number is None else _errno_value(where, number)), where
    name_where = f"{prefix}.{name_key}" if prefix else name_key
    if not isinstance(name, str) or not name.startswith("E") \
            or not isinstance(getattr(_errno, name, None), int):
        raise PolicyError(name_where, name, "is not an errno name (such as EPERM)")
    by_name = getattr(_errno, name)
    if number is None:
        return by_name, name_where
    if _errno_value(where, number) != by_name:
        raise PolicyError(name_where, name,
                          f"is errno {by_name}, but {ret_key} gives {number}: they must agree")
    return by_name, where


def _action(prefix: str, name: Any, errno_ret: Any, errno_prefix: str, default_errno: int) -> Action:
    if not isinstance(name, str):
        raise PolicyError(prefix, name, "is not an action name")
    if name == "SCMP_ACT_ERRNO":
        return Action.errno(default_errno if errno_ret is None
                            else _errno_value(errno_prefix, errno_ret))
    if name in _UNSUPPORTED_ACTIONS:
        raise PolicyError(prefix, name, "is not supported (no tracer or notification listener)")
    action = _ACTIONS.get(name)
    if action is None:
        raise PolicyError(prefix, name,
                          f"is not an action ({', '.join(sorted(_ACTIONS))}, SCMP_ACT_ERRNO)")
    if errno_ret is not None:
        raise PolicyError(errno_prefix, errno_ret, f"is only valid with SCMP_ACT_ERRNO, not {name}")
    return action


class _Filter:
    """Evaluates ``includes``/``excludes`` for one process."""

    def __init__(self, caps: frozenset[str], arch: str, kernel: tuple[int, ...]):
        self.caps, self.arch, self.kernel = caps, arch, kernel

    def parse(self, prefix: str, value: Any) -> tuple[list[str], list[str], tuple[int, ...] | None]:
        v = _keys(prefix, value, _FILTER_KEYS)
        caps = [_cap_name(f"{prefix}.caps[{i}]", c)
                for i, c in enumerate(_list(f"{prefix}.caps", v.get("caps"), "capabilities"))]
        arches = []
        for i, a in enumerate(_list(f"{prefix}.arches", v.get("arches"), "architectures")):
            if not isinstance(a, str) or a not in _GO_ARCHES:
                raise PolicyError(f"{prefix}.arches[{i}]", a, "is not an architecture name")
            arches.append(a)
        kernel = None
        if v.get("minKernel") is not None:
            mk = v["minKernel"]
            kernel = _version(mk) if isinstance(mk, str) else None
            if kernel is None:
                raise PolicyError(f"{prefix}.minKernel", mk, "is not a kernel version like '4.8'")
        return caps, arches, kernel

    def applies(self, prefix: str, entry: Mapping[str, Any]) -> bool:
        """Docker's rule: excludes first, then includes; unset parts do not filter."""
        inc = self.parse(f"{prefix}.includes", entry.get("includes") or {})
        exc = self.parse(f"{prefix}.excludes", entry.get("excludes") or {})
        arch_names = _GO_NAME[self.arch]
        caps, arches, kernel = exc
        if arches and arch_names & set(arches):
            return False
        if caps and any(c in self.caps for c in caps):
            return False
        if kernel is not None and self.kernel >= kernel:
            return False
        caps, arches, kernel = inc
        if arches and not arch_names & set(arches):
            return False
        if caps and not all(c in self.caps for c in caps):
            return False
        if kernel is not None and self.kernel < kernel:
            return False
        return True


def parse(doc: Any, *, name: str = "oci", arch: str, caps: Iterable[str] | None = None,
          kernel: tuple[int, ...] | None = None, subarches: Iterable[str] = ()) -> Policy:
    """A Docker/OCI profile (parsed JSON) as a Policy for ``arch``; every malformed
    entry raises PolicyError naming it (``syscalls[12].names[3]``)."""
    return parse_profile(doc, name=name, arch=arch, caps=caps, kernel=kernel,
                         subarches=subarches)[0]


def parse_profile(doc: Any, *, name: str = "oci", arch: str, caps: Iterable[str] | None = None,
                  kernel: tuple[int, ...] | None = None,
                  subarches: Iterable[str] = ()) -> tuple[Policy, tuple[str, ...]]:
    """``parse``, and the syscall names a filter for ``arch`` and ``subarches`` skips:
    those with no number on any of them (sorted, each once). Names with no number
    on ``arch`` nor on any of its compat ABIs are left out of the policy; those of
    a compat ABI stay in it, for a filter that covers that ABI."""
    subarches = tuple(subarches)
    kept = [ARCHES[arch]] + [ARCHES[s] for s in COMPAT.get(arch, ())]
    used = [ARCHES[arch]] + [ARCHES[s] for s in subarches if s in ARCHES]
    skipped: set[str] = set()
    top = _keys("", doc, _TOP_KEYS)
    cap_set = (frozenset(DOCKER_DEFAULT_CAPABILITIES) if caps is None
               else frozenset(_cap_name(f"caps[{i}]", c) for i, c in enumerate(caps)))
    flt = _Filter(cap_set, arch, kernel if kernel is not None else running_kernel())

    if "defaultAction" not in top:
        raise PolicyError("defaultAction", None, "is missing")
    default_ret, default_field = _errno_of(top, "defaultErrnoRet", "defaultErrno", "")
    default = _action("defaultAction", top["defaultAction"], default_ret, default_field,
                      _errno.EPERM if default_ret is None else default_ret)

    for i, a in enumerate(_list("architectures", top.get("architectures"), "architectures")):
        if a not in _SCMP_ARCHES:
            raise PolicyError(f"architectures[{i}]", a, "is not a libseccomp architecture")
    for i, m in enumerate(_list("archMap", top.get("archMap"), "architecture maps")):
        m = _keys(f"archMap[{i}]", m, {"architecture", "subArchitectures"})
        if m.get("architecture") not in _SCMP_ARCHES:
            raise PolicyError(f"archMap[{i}].architecture", m.get("architecture"),
                              "is not a libseccomp architecture")
        for j, s in enumerate(_list(f"archMap[{i}].subArchitectures", m.get("subArchitectures"),
                                    "architectures")):
            if s not in _SCMP_ARCHES:
                raise PolicyError(f"archMap[{i}].subArchitectures[{j}]", s,
                                  "is not a libseccomp architecture")
    flags = _list("flags", top.get("flags"), "flags")
    for i, f in enumerate(flags):
        if f not in FLAGS:
            raise PolicyError(f"flags[{i}]", f, f"is not supported ({', '.join(FLAGS)})")
    if top.get("listenerPath"):
        raise PolicyError("listenerPath", top["listenerPath"],
                          "is not supported (no notification listener)")

    rules: list[Rule] = []
    for i, raw in enumerate(_list("syscalls", top.get("syscalls"), "syscall rules")):
        prefix = f"syscalls[{i}]"
        entry = _keys(prefix, raw, _SYSCALL_KEYS)
        if "name" in entry and "names" in entry:
            raise PolicyError(f"{prefix}.name", entry["name"], "is given together with names")
        if "name" in entry:
            names, names_field = [entry["name"]], f"{prefix}.name"
        else:
            names = _list(f"{prefix}.names", entry.get("names"), "syscall names")
            names_field = f"{prefix}.names"
            if not names:
                raise PolicyError(names_field, names, "is empty")
        if "action" not in entry:
            raise PolicyError(f"{prefix}.action", None, "is missing")
        errno_ret, errno_field = _errno_of(entry, "errnoRet", "errno", prefix)
        action = _action(f"{prefix}.action", entry["action"], errno_ret, errno_field,
                         _errno.EPERM)
        args: list[Arg] = []
        for k, a in enumerate(_list(f"{prefix}.args", entry.get("args"), "argument conditions")):
            ap = f"{prefix}.args[{k}]"
            a = _keys(ap, a, _ARG_KEYS)
            for key in ("index", "value", "op"):
                if key not in a:
                    raise PolicyError(f"{ap}.{key}", None, "is missing")
            try:
                op = Op(a["op"])
            except (ValueError, TypeError):
                raise PolicyError(f"{ap}.op", a["op"], "is not a comparison "
                                  f"({', '.join(o.value for o in Op)})") from None
            arg = object.__new__(Arg)  # validated with this entry's field names
            object.__setattr__(arg, "index", a["index"])
            object.__setattr__(arg, "op", op)
            object.__setattr__(arg, "value", a["value"])
            object.__setattr__(arg, "value_two", a.get("valueTwo", 0))
            arg.validate(ap)
            args.append(arg)
        _check_names(names_field, names, "name" in entry)
        if flt.applies(prefix, entry):
            here = [n for n in names if any(t.number(n) is not None for t in kept)]
            skipped.update(n for n in names if all(t.number(n) is None for t in used))
            if here:
                rules.append(Rule(tuple(here), action, tuple(args)))
    policy = Policy(name=name, default_action=default, rules=tuple(rules), flags=tuple(flags),
                    subarches=subarches)
    return policy, tuple(sorted(skipped))


def _check_names(field_name: str, names: list[Any], single: bool) -> None:
    for j, n in enumerate(names):
        if not isinstance(n, str) or not (is_known_syscall(n) or n in _FOREIGN_EXTRA):
            raise PolicyError(field_name if single else f"{field_name}[{j}]", n,
                              "is not a known syscall")


def load_file(path: str | os.PathLike[str]) -> Any:
    """The JSON document of a profile file; unreadable or invalid JSON is a PolicyError."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise PolicyError("profile", os.fspath(path), f"cannot be read: {e.strerror}") from None
    except ValueError as e:
        raise PolicyError("profile", os.fspath(path), f"is not valid JSON: {e}") from None


def _action_json(action: Action) -> dict[str, Any]:
    if action.kind == ActionKind.ERRNO:
        return {"action": "SCMP_ACT_ERRNO", "errnoRet": action.data}
    name = {ActionKind.ALLOW: "SCMP_ACT_ALLOW", ActionKind.LOG: "SCMP_ACT_LOG",
            ActionKind.TRAP: "SCMP_ACT_TRAP", ActionKind.KILL_THREAD: "SCMP_ACT_KILL_THREAD",
            ActionKind.KILL_PROCESS: "SCMP_ACT_KILL_PROCESS"}[action.kind]
    return {"action": name}


def export(policy: Policy, arch: str) -> dict[str, Any]:
    """The OCI runtime-spec ``linux.seccomp`` object for a policy. Consecutive rules
    with the same action and conditions share one entry."""
    default = _action_json(policy.default_action)
    out: dict[str, Any] = {"defaultAction": default["action"]}
    if "errnoRet" in default:
        out["defaultErrnoRet"] = default["errnoRet"]
    out["architectures"] = [_OCI_ARCH[arch]] + [_OCI_ARCH[s] for s in policy.subarches]
    if policy.flags:
        out["flags"] = list(policy.flags)
    syscalls: list[dict[str, Any]] = []
    last_key = None
    for rule in policy.rules:
        key = (rule.action, rule.args)
        if key == last_key:
            syscalls[-1]["names"].extend(n for n in rule.names if n not in syscalls[-1]["names"])
            continue
        entry: dict[str, Any] = {"names": list(dict.fromkeys(rule.names))}
        entry.update(_action_json(rule.action))
        if rule.args:
            entry["args"] = [{"index": a.index, "value": a.value, "valueTwo": a.value_two,
                              "op": a.op.value} for a in rule.args]
        syscalls.append(entry)
        last_key = key
    out["syscalls"] = syscalls
    return out
