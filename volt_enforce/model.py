"""The Volt isolation model (``shared/seed/isolation.go``) in Python spelling.

Every type and function of the seed is here, with the seed's behaviour: the
presets, ``systemd_properties()``, ``nspawn_args()``, and JSON in the wire format
that Go's encoding/json writes for the seed's structs, so a document written by
the Go side loads unchanged and ``default_isolation(...)`` serializes to the same
bytes.

Fields added by this library (TCP ports, scopes, compatibility, CPU quota, ...)
use new JSON keys, are optional on input and are written only when set, so the
seed's documents stay byte-identical.

Reading follows encoding/json: keys match case-insensitively (with Go's
Unicode folding), null leaves the zero value, and a null document is the zero
config. Where we differ, it is in documents the Go model never writes, and we
refuse them: an unknown key is an error (Go ignores it); two keys for one field
(``"Seccomp"`` twice, or ``"Seccomp"`` and ``"ſeccomp"``) are an error, where Go
lets the later one win while other JSON readers may see the first; nesting
deeper than any document of the model (Go allows 10000 levels) and the
non-JSON constants ``NaN`` and ``Infinity`` are errors. An empty list is written
as null (Go keeps ``[]`` apart from null, and reads both as an empty slice).

Two places where the seed is wrong about systemd-nspawn, and what we do:

* A ``.nspawn`` file has no ``[ResourceControl]`` section; ``nspawn_config_block``
  writes a valid ``.nspawn`` file without it, and ``nspawn_service_dropin`` writes
  the resource settings as a drop-in for ``systemd-nspawn@NAME.service``.
* "strict" seccomp in the seed only drops capabilities under nspawn; this library
  enforces a real, tighter filter for it (see ``volt_enforce.seccomp``).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._core import lib
from .errors import PolicyError

__all__ = [
    "SeccompProfile",
    "LandlockAccess",
    "LandlockScope",
    "LandlockLogging",
    "LandlockNetAccess",
    "Compatibility",
    "MissingPaths",
    "LandlockRule",
    "LandlockPolicy",
    "server_policy",
    "desktop_policy",
    "ResourceLimits",
    "default_resource_limits",
    "parse_size",
    "parse_cpuset",
    "NetworkMode",
    "NetworkConfig",
    "PortForward",
    "default_network_config",
    "IsolationConfig",
    "default_isolation",
    "CAPABILITIES",
    "DOCKER_DEFAULT_CAPABILITIES",
]


# ── helpers ──────────────────────────────────────────────────────────────────


def _go_clean(path: str) -> str:
    """Go's path/filepath.Clean for Unix paths."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _go_join(*elems: str) -> str:
    """Go's path/filepath.Join: join the non-empty elements and clean."""
    parts = [e for e in elems if e != ""]
    if not parts:
        return ""
    return _go_clean("/".join(parts))


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _go_json(obj: Any, indent: int | None = None) -> str:
    """JSON as Go's encoding/json writes it (HTML-safe escapes, UTF-8 kept).

    A lone surrogate (a byte of a non-UTF-8 file name, decoded with
    surrogateescape) becomes \\ufffd, as Go writes each invalid UTF-8 byte.
    "\\b" and "\\f" are written short, as Go does since 1.22.
    """
    if indent is None:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return _SURROGATE_RE.sub(
        "\\\\ufffd",
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029"),
    )


def _check_type(prefix: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    # bool is an int in Python but not in Go's JSON
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise PolicyError(prefix, value, f"is not {what}")
    if not isinstance(value, kind):
        raise PolicyError(prefix, value, f"is not {what}")


def _check_int(prefix: str, value: Any, lo: int, hi: int | None = None) -> None:
    _check_type(prefix, value, int, "an integer")
    if value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise PolicyError(prefix, value, f"is out of range ({rng})")


def _check_str(prefix: str, value: Any) -> None:
    _check_type(prefix, value, str, "a string")
    if "\0" in value:
        raise PolicyError(prefix, value, "contains a NUL byte")


def _check_abs_path(prefix: str, value: Any) -> None:
    _check_str(prefix, value)
    if not value.startswith("/"):
        raise PolicyError(prefix, value, "is not an absolute path")
    try:
        os.fsencode(value)
    except UnicodeError:
        raise PolicyError(prefix, value, "cannot be encoded as a file name") from None


def _fold(key: str) -> str:
    # Go matches keys with Unicode simple folding: besides ASCII case, only
    # U+017F (long s) and U+212A (Kelvin sign) fold onto ASCII letters
    return key.lower().replace("\u017f", "s")


class _JSONObject(dict[str, Any]):
    """A decoded JSON object that also keeps every pair in document order,
    duplicates included, so that a repeated key can be refused."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def _decode_keys(prefix: str, doc: Any, known: Iterable[str]) -> dict[str, Any]:
    """Match JSON keys to Go field names as encoding/json does: exact, then
    case-insensitive. Null leaves the zero value; a null document is the zero
    value. Unknown keys are an error, since a misspelt limit that is silently
    ignored is a limit not enforced; so are two keys for one field, exact
    duplicates or spellings that fold together, since Go would use the last one
    and another reader of the same document the first."""
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise PolicyError(prefix or "document", doc, "is not a JSON object")
    known = list(known)
    folded = {_fold(k): k for k in known}
    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    pairs = doc.pairs if isinstance(doc, _JSONObject) else doc.items()
    for key, value in pairs:
        name = key if key in known else folded.get(_fold(str(key)))
        where = f"{prefix}.{key}" if prefix else str(key)
        if name is None:
            raise PolicyError(where, value, "is not a known field")
        if name in seen:
            first = seen[name]
            how = "again" if first == key else f"after {first!r}, a spelling of the same field"
            raise PolicyError(where, value, f"is given {how} ({name}): a field may appear once")
        seen[name] = key
        if value is not None:
            out[name] = value
    return out


#: Deeper than any document of the model (a rule in a list in a policy is 4).
_MAX_DEPTH = 64


def _depth_ok(doc: Any) -> bool:
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > _MAX_DEPTH:
            return False
        stack.extend((c, depth + 1) for c in children)
    return True


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load_json(data: str | bytes | Mapping[str, Any]) -> Any:
    if isinstance(data, Mapping):
        doc: Any = data
    else:
        shown = data[:60] if isinstance(data, (str, bytes)) else data
        try:
            doc = json.loads(data, object_pairs_hook=_JSONObject, parse_constant=_no_constant)
        except RecursionError:
            raise PolicyError("document", shown,
                              f"is nested deeper than {_MAX_DEPTH} levels") from None
        except (ValueError, TypeError) as exc:
            raise PolicyError("document", shown, f"is not valid JSON ({exc})") from None
    if not _depth_ok(doc):
        raise PolicyError("document", "...", f"is nested deeper than {_MAX_DEPTH} levels")
    return doc


def _reprefix(exc: PolicyError, prefix: str, own: str) -> PolicyError:
    """Re-root an error raised with a part's own prefix under the document's."""
    fld = exc.field
    if fld == own or fld.startswith(own + ".") or fld.startswith(own + "["):
        fld = prefix + fld[len(own):]
    return PolicyError(fld, exc.value, exc.reason)


# ── seccomp profile ──────────────────────────────────────────────────────────


class SeccompProfile(str, enum.Enum):
    """The syscall filtering level for a container (seed: SeccompProfile)."""

    #: A tight allowlist for untrusted server workloads.
    STRICT = "strict"
    #: Docker's default decisions: mount, reboot, kexec, modules, namespaces denied.
    DEFAULT = "default"
    #: No filter.
    UNCONFINED = "unconfined"

    def __str__(self) -> str:
        return self.value


# ── Landlock ─────────────────────────────────────────────────────────────────


class LandlockAccess(enum.IntFlag):
    """Filesystem rights; the values are the kernel's LANDLOCK_ACCESS_FS_* bits."""

    EXECUTE = lib.LANDLOCK_ACCESS_FS_EXECUTE
    WRITE_FILE = lib.LANDLOCK_ACCESS_FS_WRITE_FILE
    READ_FILE = lib.LANDLOCK_ACCESS_FS_READ_FILE
    READ_DIR = lib.LANDLOCK_ACCESS_FS_READ_DIR
    REMOVE_DIR = lib.LANDLOCK_ACCESS_FS_REMOVE_DIR
    REMOVE_FILE = lib.LANDLOCK_ACCESS_FS_REMOVE_FILE
    MAKE_CHAR = lib.LANDLOCK_ACCESS_FS_MAKE_CHAR
    MAKE_DIR = lib.LANDLOCK_ACCESS_FS_MAKE_DIR
    MAKE_REG = lib.LANDLOCK_ACCESS_FS_MAKE_REG
    MAKE_SOCK = lib.LANDLOCK_ACCESS_FS_MAKE_SOCK
    MAKE_FIFO = lib.LANDLOCK_ACCESS_FS_MAKE_FIFO
    MAKE_BLOCK = lib.LANDLOCK_ACCESS_FS_MAKE_BLOCK
    MAKE_SYM = lib.LANDLOCK_ACCESS_FS_MAKE_SYM
    REFER = lib.LANDLOCK_ACCESS_FS_REFER  # ABI 2
    TRUNCATE = lib.LANDLOCK_ACCESS_FS_TRUNCATE  # ABI 3
    IOCTL_DEV = lib.LANDLOCK_ACCESS_FS_IOCTL_DEV  # ABI 5
    #: connect()/sendmsg() to pathname UNIX sockets (ABI 9). Policies handle it at
    #: enforcement, best effort, granted where WRITE_FILE is (volt_enforce.landlock).
    RESOLVE_UNIX = lib.LANDLOCK_ACCESS_FS_RESOLVE_UNIX

    # The seed's convenience combinations.
    READ_ONLY = READ_FILE | READ_DIR
    READ_WRITE = READ_ONLY | WRITE_FILE | MAKE_REG | MAKE_DIR | REMOVE_FILE | REMOVE_DIR | TRUNCATE
    READ_EXEC = READ_ONLY | EXECUTE

    @classmethod
    def all(cls) -> LandlockAccess:
        """Every filesystem right a policy handles: all the library knows but
        RESOLVE_UNIX, which enforcement adds on its own (best effort)."""
        v = 0
        for m in _LANDLOCK_SINGLE_BITS:
            v |= m
        return cls(v & ~lib.LANDLOCK_ACCESS_FS_RESOLVE_UNIX)


_LANDLOCK_SINGLE_BITS = [
    m for m in LandlockAccess.__members__.values() if m.value and m.value & (m.value - 1) == 0
]
_LANDLOCK_ALL_FS = 0
for _m in _LANDLOCK_SINGLE_BITS:
    _LANDLOCK_ALL_FS |= _m.value


class LandlockNetAccess(enum.IntFlag):
    """Network port rights; the values are the kernel's LANDLOCK_ACCESS_NET_* bits."""

    BIND_TCP = lib.LANDLOCK_ACCESS_NET_BIND_TCP  # ABI 4
    CONNECT_TCP = lib.LANDLOCK_ACCESS_NET_CONNECT_TCP  # ABI 4
    BIND_UDP = lib.LANDLOCK_ACCESS_NET_BIND_UDP  # ABI 10
    CONNECT_SEND_UDP = lib.LANDLOCK_ACCESS_NET_CONNECT_SEND_UDP  # ABI 10


class LandlockScope(enum.IntFlag):
    """IPC scopes (ABI 6): deny reaching out of the sandbox's Landlock domain."""

    ABSTRACT_UNIX_SOCKET = lib.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
    SIGNAL = lib.LANDLOCK_SCOPE_SIGNAL


class LandlockLogging(enum.IntFlag):
    """Audit logging flags of landlock_restrict_self (ABI 7)."""

    SAME_EXEC_OFF = lib.LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF
    NEW_EXEC_ON = lib.LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
    SUBDOMAINS_OFF = lib.LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF


class Compatibility(str, enum.Enum):
    """What to do when the kernel or host lacks a requested facility, in whole or
    in part (as rust-landlock, plus a level of our own). One vocabulary for
    Landlock, namespaces and cgroups.

    * BEST_EFFORT: drop what the kernel lacks, enforce the rest, report the drop.
    * SOFT_REQUIREMENT: fail when a requested restriction cannot be enforced;
      without Landlock at all, run unrestricted and report it.
    * HARD_REQUIREMENT: fail whenever anything requested cannot be enforced.
    * FACILITY_REQUIREMENT (the volt-enforce command's default): fail when a whole
      facility that was asked for is missing (no Landlock at all, a namespace that
      cannot be made); drop and report what is missing of one that exists (a
      Landlock right or scope, a cgroup controller).
    """

    BEST_EFFORT = "best_effort"
    SOFT_REQUIREMENT = "soft_requirement"
    HARD_REQUIREMENT = "hard_requirement"
    FACILITY_REQUIREMENT = "facility_requirement"

    @property
    def drops_parts(self) -> bool:
        """Whether a facility the kernel has only in part is used for that part
        (the rest dropped and reported) rather than refused."""
        return self in (Compatibility.BEST_EFFORT, Compatibility.FACILITY_REQUIREMENT)

    @property
    def runs_without(self) -> bool:
        """Whether a facility the kernel lacks entirely is gone without (reported)
        rather than refused."""
        return self in (Compatibility.BEST_EFFORT, Compatibility.SOFT_REQUIREMENT)

    def __str__(self) -> str:
        return self.value


class MissingPaths(str, enum.Enum):
    """What to do with a rule whose path does not exist."""

    ERROR = "error"  # fail, naming the path (the default for rules a user writes)
    SKIP = "skip"  # skip the rule and report it

    def __str__(self) -> str:
        return self.value


def flag_value(value: object) -> int:
    """The int of a validated flag field (``validate()`` normalized a list of names
    to the IntFlag); a field that was never validated is a TypeError."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"flag field is not validated: {value!r}")


def _flag_names(flag_cls: type[enum.IntFlag], value: int) -> list[str]:
    return [m.name.lower() for m in flag_cls if m.value & value]  # type: ignore[union-attr]


def _parse_flags(prefix: str, flag_cls: type[enum.IntFlag], value: Any) -> int:
    """Flags as a list of lower-case names (JSON) or an int / the IntFlag."""
    if isinstance(value, enum.IntFlag) or (isinstance(value, int) and not isinstance(value, bool)):
        v = int(value)
        known = 0
        for m in flag_cls:
            known |= m.value
        if v < 0 or v & ~known:
            raise PolicyError(prefix, value, f"has unknown bits (known: {known:#x})")
        return v
    if value is None:
        return 0
    if isinstance(value, (list, tuple, set, frozenset)):
        v = 0
        for i, name in enumerate(value):
            if isinstance(name, flag_cls):
                v |= int(name)
                continue
            if not isinstance(name, str) or name.upper() not in flag_cls.__members__:
                choices = ", ".join(m.name.lower() for m in flag_cls)  # type: ignore[union-attr]
                raise PolicyError(f"{prefix}[{i}]", name, f"is not one of: {choices}")
            v |= flag_cls.__members__[name.upper()].value
        return v
    raise PolicyError(prefix, value, "is not a list of names")


@dataclass
class LandlockRule:
    """A filesystem path and the rights granted beneath it (seed: LandlockRule)."""

    path: str
    access: LandlockAccess | int
    #: Skip (and report) the rule when the path does not exist. JSON "Optional".
    optional: bool = False
    #: No audit record for a denial under this path of the policy's quiet_access_fs
    #: rights (LANDLOCK_ADD_RULE_QUIET, ABI 10). JSON "Quiet", omitted when false.
    #: A quiet rule may grant nothing (access 0): it only marks the path.
    quiet: bool = False
    #: Set on the rules of server_policy/desktop_policy: skipped where the host
    #: lacks the path. Not part of JSON, so the seed's documents stay identical.
    preset: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.validate("LandlockRule")
        self.access = LandlockAccess(int(self.access))

    def validate(self, prefix: str = "LandlockRule") -> None:
        _check_abs_path(f"{prefix}.Path", self.path)
        _check_type(f"{prefix}.Access", self.access, int, "an access mask")
        a = int(self.access)
        if a < 0:
            raise PolicyError(f"{prefix}.Access", a, "is negative")
        if a & ~_LANDLOCK_ALL_FS:
            raise PolicyError(
                f"{prefix}.Access", a, f"has unknown access bits {a & ~_LANDLOCK_ALL_FS:#x}"
            )
        _check_type(f"{prefix}.Quiet", self.quiet, bool, "a boolean")
        if a == 0 and not self.quiet:
            raise PolicyError(f"{prefix}.Access", a, "grants no access")
        _check_type(f"{prefix}.Optional", self.optional, bool, "a boolean")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"Path": self.path, "Access": int(self.access)}
        if self.optional:
            d["Optional"] = True
        if self.quiet:
            d["Quiet"] = True
        return d

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], prefix: str = "LandlockRule") -> LandlockRule:
        d = _decode_keys(prefix, doc, ["Path", "Access", "Optional", "Quiet"])
        if "Path" not in d or "Access" not in d:
            missing = "Path" if "Path" not in d else "Access"
            raise PolicyError(f"{prefix}.{missing}", None, "is required")
        try:
            return cls(path=d["Path"], access=d["Access"], optional=d.get("Optional", False),
                       quiet=d.get("Quiet", False))
        except PolicyError as exc:
            raise _reprefix(exc, prefix, "LandlockRule") from None


def _as_list(prefix: str, value: Any, what: str) -> list[Any]:
    """A fresh list from a list or tuple (None: empty); anything else is an error."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise PolicyError(prefix, value, f"is not {what}")
    return list(value)


def _ports(prefix: str, value: Any) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise PolicyError(prefix, value, "is not a list of ports")
    for i, p in enumerate(value):
        _check_int(f"{prefix}[{i}]", p, 0, 65535)
    return list(value)


@dataclass
class LandlockPolicy:
    """An ordered set of Landlock rules (seed: LandlockPolicy), plus what the
    kernel's later ABIs offer.

    ``bind_tcp``/``connect_tcp``: None leaves TCP unrestricted; a list (even
    empty) restricts bind/connect to those ports (ABI 4). ``bind_udp``/
    ``connect_udp`` mean the same for UDP bind and connect-or-send (ABI 10); JSON
    omits a port list only when it is None (``[]``, deny all, is written).
    ``quiet_access_fs``/``quiet_access_net``/``quiet_scoped`` (ABI 10): denials of
    these rights (under a rule marked ``quiet``) and scopes (anywhere) make no
    audit record; JSON omits them when zero.
    """

    rules: list[LandlockRule] = field(default_factory=list)
    bind_tcp: list[int] | None = None
    connect_tcp: list[int] | None = None
    scopes: LandlockScope | int | list[str] = LandlockScope(0)
    logging: LandlockLogging | int | list[str] = LandlockLogging(0)
    bind_udp: list[int] | None = None
    connect_udp: list[int] | None = None
    quiet_access_fs: LandlockAccess | int = LandlockAccess(0)
    quiet_access_net: LandlockNetAccess | int | list[str] = LandlockNetAccess(0)
    quiet_scoped: LandlockScope | int | list[str] = LandlockScope(0)
    #: None: not given (the library then acts as BEST_EFFORT, the volt-enforce
    #: command at its own default); JSON writes it only when given.
    compatibility: Compatibility | str | None = None
    missing_paths: MissingPaths | str = MissingPaths.ERROR
    #: Add the documented runtime rules (/dev/null, /proc/self, ...) at enforcement.
    runtime: bool = True

    def __post_init__(self) -> None:
        # a copy, so the caller's list does not change the policy behind its back
        self.rules = _as_list("Landlock.Rules", self.rules, "a list of rules")
        self.validate()

    def validate(self, prefix: str = "Landlock") -> None:
        """Check (and normalize) every field; on error nothing is changed."""
        rules = self.rules
        if not isinstance(rules, list):
            raise PolicyError(f"{prefix}.Rules", rules, "is not a list of rules")
        for i, rule in enumerate(rules):
            if not isinstance(rule, LandlockRule):
                raise PolicyError(f"{prefix}.Rules[{i}]", rule, "is not a LandlockRule")
            rule.validate(f"{prefix}.Rules[{i}]")
        bind_tcp = _ports(f"{prefix}.BindTCP", self.bind_tcp)
        connect_tcp = _ports(f"{prefix}.ConnectTCP", self.connect_tcp)
        bind_udp = _ports(f"{prefix}.BindUDP", self.bind_udp)
        connect_udp = _ports(f"{prefix}.ConnectUDP", self.connect_udp)
        _check_type(f"{prefix}.QuietAccessFS", self.quiet_access_fs, int, "an access mask")
        quiet_fs = int(self.quiet_access_fs)
        if quiet_fs < 0 or quiet_fs & ~_LANDLOCK_ALL_FS:
            raise PolicyError(f"{prefix}.QuietAccessFS", quiet_fs, "has unknown access bits")
        quiet_net = LandlockNetAccess(_parse_flags(f"{prefix}.QuietAccessNet",
                                                   LandlockNetAccess, self.quiet_access_net))
        quiet_scoped = LandlockScope(_parse_flags(f"{prefix}.QuietScoped", LandlockScope,
                                                  self.quiet_scoped))
        scopes = LandlockScope(_parse_flags(f"{prefix}.Scopes", LandlockScope, self.scopes))
        logging = LandlockLogging(_parse_flags(f"{prefix}.Logging", LandlockLogging, self.logging))
        compatibility = (None if self.compatibility is None else
                         _enum(f"{prefix}.Compatibility", Compatibility, self.compatibility))
        missing_paths = _enum(f"{prefix}.MissingPaths", MissingPaths, self.missing_paths)
        _check_type(f"{prefix}.Runtime", self.runtime, bool, "a boolean")
        self.bind_tcp, self.connect_tcp = bind_tcp, connect_tcp
        self.bind_udp, self.connect_udp = bind_udp, connect_udp
        self.quiet_access_fs = LandlockAccess(quiet_fs)
        self.quiet_access_net, self.quiet_scoped = quiet_net, quiet_scoped
        self.scopes, self.logging = scopes, logging
        self.compatibility, self.missing_paths = compatibility, missing_paths

    @property
    def effective_compatibility(self) -> Compatibility:
        """The level the library applies: the one given, else BEST_EFFORT."""
        return Compatibility(self.compatibility or Compatibility.BEST_EFFORT)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"Rules": [r.to_dict() for r in self.rules] if self.rules else None}
        if self.bind_tcp is not None:
            d["BindTCP"] = list(self.bind_tcp)
        if self.connect_tcp is not None:
            d["ConnectTCP"] = list(self.connect_tcp)
        if self.scopes:
            d["Scopes"] = _flag_names(LandlockScope, flag_value(self.scopes))
        if self.logging:
            d["Logging"] = _flag_names(LandlockLogging, flag_value(self.logging))
        if self.bind_udp is not None:
            d["BindUDP"] = list(self.bind_udp)
        if self.connect_udp is not None:
            d["ConnectUDP"] = list(self.connect_udp)
        if self.quiet_access_fs:
            d["QuietAccessFS"] = flag_value(self.quiet_access_fs)
        if self.quiet_access_net:
            d["QuietAccessNet"] = _flag_names(LandlockNetAccess, flag_value(self.quiet_access_net))
        if self.quiet_scoped:
            d["QuietScoped"] = _flag_names(LandlockScope, flag_value(self.quiet_scoped))
        if self.compatibility is not None:
            d["Compatibility"] = str(self.compatibility)
        if self.missing_paths != MissingPaths.ERROR:
            d["MissingPaths"] = str(self.missing_paths)
        if not self.runtime:
            d["Runtime"] = False
        return d

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], prefix: str = "Landlock") -> LandlockPolicy:
        keys = ["Rules", "BindTCP", "ConnectTCP", "Scopes", "Logging", "BindUDP", "ConnectUDP",
                "QuietAccessFS", "QuietAccessNet", "QuietScoped", "Compatibility",
                "MissingPaths", "Runtime"]
        d = _decode_keys(prefix, doc, keys)
        rules_doc = d.get("Rules")
        if rules_doc is not None and not isinstance(rules_doc, list):
            raise PolicyError(f"{prefix}.Rules", rules_doc, "is not a list of rules")
        rules = [
            LandlockRule.from_dict(r, f"{prefix}.Rules[{i}]") for i, r in enumerate(rules_doc or [])
        ]
        try:
            return cls(
                rules=rules,
                bind_tcp=d.get("BindTCP"),
                connect_tcp=d.get("ConnectTCP"),
                scopes=d.get("Scopes") or 0,
                logging=d.get("Logging") or 0,
                bind_udp=d.get("BindUDP"),
                connect_udp=d.get("ConnectUDP"),
                quiet_access_fs=d.get("QuietAccessFS") or 0,
                quiet_access_net=d.get("QuietAccessNet") or 0,
                quiet_scoped=d.get("QuietScoped") or 0,
                compatibility=d.get("Compatibility"),
                missing_paths=d.get("MissingPaths", MissingPaths.ERROR),
                runtime=d.get("Runtime", True),
            )
        except PolicyError as exc:
            raise _reprefix(exc, prefix, "Landlock") from None

    def to_json(self, indent: int | None = None) -> str:
        return _go_json(self.to_dict(), indent)

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> LandlockPolicy:
        return cls.from_dict(_load_json(data))


def _enum(prefix: str, cls: type[enum.Enum], value: Any) -> Any:
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)
        raise PolicyError(prefix, value, f"is not one of {choices}") from None


def _preset(rootfs: str, spec: Sequence[tuple[str, int]]) -> LandlockPolicy:
    # Go joins a relative rootfs into relative rules, which Landlock cannot use
    _check_abs_path("rootfs", rootfs)
    return LandlockPolicy(
        rules=[
            LandlockRule(path=_go_join(rootfs, name), access=LandlockAccess(acc), preset=True)
            for name, acc in spec
        ]
    )


_A = LandlockAccess
_SERVER = [
    ("usr", _A.READ_EXEC),
    ("lib", _A.READ_ONLY | _A.EXECUTE),
    ("lib64", _A.READ_ONLY | _A.EXECUTE),
    ("bin", _A.READ_EXEC),
    ("sbin", _A.READ_EXEC),
    ("etc", _A.READ_ONLY),
    ("app", _A.READ_WRITE),
    ("tmp", _A.READ_WRITE),
    ("var", _A.READ_WRITE),
    ("run", _A.READ_WRITE),
]
_DESKTOP = [
    ("usr", _A.READ_EXEC),
    ("lib", _A.READ_ONLY | _A.EXECUTE),
    ("lib64", _A.READ_ONLY | _A.EXECUTE),
    ("bin", _A.READ_EXEC),
    ("sbin", _A.READ_EXEC),
    ("etc", _A.READ_WRITE),
    ("home", _A.READ_WRITE | _A.EXECUTE),
    ("tmp", _A.READ_WRITE),
    ("var", _A.READ_WRITE),
    ("run", _A.READ_WRITE),
    ("opt", _A.READ_EXEC),
]


def server_policy(rootfs: str) -> LandlockPolicy:
    """Landlock policy for server workloads (seed: ServerPolicy): execute from
    /usr, /lib, /bin, /sbin; read /etc; read-write /app, /tmp, /var, /run.
    Rules whose path the host lacks are skipped and reported at enforcement."""
    return _preset(rootfs, _SERVER)


def desktop_policy(rootfs: str) -> LandlockPolicy:
    """Landlock policy for desktop workloads (seed: DesktopPolicy): as the server
    policy, plus read-write /etc, /home (with execute) and /opt (read-exec)."""
    return _preset(rootfs, _DESKTOP)


# ── resource limits ──────────────────────────────────────────────────────────

_SIZE_RE = re.compile(r"([0-9]+)([KMGTkmgt]?)")
_SIZE_MULT = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_CPUSET_RE = re.compile(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*")
_QUOTA_RE = re.compile(r"([0-9]+)(\.[0-9]{1,2})?%")
_QUOTA_MAX_PERCENT = 8192 * 100


def parse_size(value: str, field_name: str = "size") -> int | None:
    """Parse a memory size as systemd does: bytes, or K/M/G/T (base 1024).

    Returns bytes, or None for "max"/"infinity" (no limit). Raises PolicyError.
    """
    _check_str(field_name, value)
    if value in ("max", "infinity"):
        return None
    m = _SIZE_RE.fullmatch(value)  # fullmatch: "$" would let a trailing newline in
    if not m:
        raise PolicyError(field_name, value, "is not a size (bytes, K, M, G, T or max)")
    n = int(m.group(1)) * _SIZE_MULT[m.group(2).upper()]
    if n >= 1 << 63:
        raise PolicyError(field_name, value, "is too large")
    return n


def parse_cpuset(value: str, field_name: str = "cpuset") -> list[int]:
    """Parse a cpuset list ("0-3,5") into sorted CPU numbers. Raises PolicyError."""
    _check_str(field_name, value)
    if not _CPUSET_RE.fullmatch(value):
        raise PolicyError(field_name, value, 'is not a CPU list (such as "0-3" or "0,2")')
    cpus: set[int] = set()
    for part in value.split(","):
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if a > b:
            raise PolicyError(field_name, value, f"has a reversed range {part!r}")
        if b >= 8192:
            raise PolicyError(field_name, value, f"names CPU {b}, beyond any kernel's limit")
        cpus.update(range(a, b + 1))
    return sorted(cpus)


def parse_cpu_quota(value: str, field_name: str = "CPUQuota") -> float:
    """Parse a CPU quota as systemd's CPUQuota= ("50%", "150%"): percent of one CPU."""
    _check_str(field_name, value)
    m = _QUOTA_RE.fullmatch(value)
    if not m or float(value[:-1]) <= 0:
        raise PolicyError(field_name, value, 'is not a positive percentage (such as "50%")')
    percent = float(value[:-1])
    if percent > _QUOTA_MAX_PERCENT:  # also a digit string that float() makes inf
        raise PolicyError(field_name, value, f"is more than {_QUOTA_MAX_PERCENT}% "
                          "(all of 8192 CPUs, beyond any kernel's limit)")
    return percent


@dataclass
class ResourceLimits:
    """cgroup resource constraints (seed: ResourceLimits).

    Empty strings and zeros mean "not limited", as in the seed.
    """

    memory_hard: str = ""  # memory.max, "512M", "2G", "max"
    memory_soft: str = ""  # memory.high
    cpu_weight: int = 0  # cpu.weight 1..10000 (0: unset)
    cpu_set: str = ""  # cpuset.cpus "0-3"
    io_weight: int = 0  # io.weight 1..10000 (0: unset)
    pids_max: int = 0  # pids.max (0: unlimited)
    #: CPU time limit as a percentage of one CPU (cpu.max), "50%". JSON "CPUQuota".
    cpu_quota: str = ""
    #: Swap limit (memory.swap.max), a size. JSON "MemorySwap".
    memory_swap: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "Resources") -> None:
        for name, key in (("memory_hard", "MemoryHard"), ("memory_soft", "MemorySoft"),
                          ("memory_swap", "MemorySwap")):
            v = getattr(self, name)
            _check_str(f"{prefix}.{key}", v)
            if v:
                parse_size(v, f"{prefix}.{key}")
        for name, key in (("cpu_weight", "CPUWeight"), ("io_weight", "IOWeight")):
            v = getattr(self, name)
            _check_int(f"{prefix}.{key}", v, 0, 10000)
        _check_str(f"{prefix}.CPUSet", self.cpu_set)
        if self.cpu_set:
            parse_cpuset(self.cpu_set, f"{prefix}.CPUSet")
        _check_int(f"{prefix}.PIDsMax", self.pids_max, 0, (1 << 31) - 1)
        _check_str(f"{prefix}.CPUQuota", self.cpu_quota)
        if self.cpu_quota:
            parse_cpu_quota(self.cpu_quota, f"{prefix}.CPUQuota")

    # parsed views, for the cgroup writer
    @property
    def memory_hard_bytes(self) -> int | None:
        return parse_size(self.memory_hard) if self.memory_hard else None

    @property
    def memory_soft_bytes(self) -> int | None:
        return parse_size(self.memory_soft) if self.memory_soft else None

    @property
    def memory_swap_bytes(self) -> int | None:
        return parse_size(self.memory_swap) if self.memory_swap else None

    @property
    def cpus(self) -> list[int]:
        return parse_cpuset(self.cpu_set) if self.cpu_set else []

    @property
    def cpu_quota_percent(self) -> float | None:
        return parse_cpu_quota(self.cpu_quota) if self.cpu_quota else None

    def is_empty(self) -> bool:
        return self == ResourceLimits()

    def systemd_properties(self) -> list[str]:
        """systemd unit properties for these limits (seed: SystemdProperties)."""
        props = ["Delegate=yes"]
        if self.memory_hard:
            props.append(f"MemoryMax={self.memory_hard}")
        if self.memory_soft:
            props.append(f"MemoryHigh={self.memory_soft}")
        if self.cpu_weight > 0:
            props.append(f"CPUWeight={self.cpu_weight}")
        if self.cpu_set:
            props.append(f"AllowedCPUs={self.cpu_set}")
        if self.io_weight > 0:
            props.append(f"IOWeight={self.io_weight}")
        if self.pids_max > 0:
            props.append(f"TasksMax={self.pids_max}")
        # this library's additions, after the seed's so its output is a prefix
        if self.cpu_quota:
            props.append(f"CPUQuota={self.cpu_quota}")
        if self.memory_swap:
            props.append(f"MemorySwapMax={self.memory_swap}")
        return props

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "MemoryHard": self.memory_hard,
            "MemorySoft": self.memory_soft,
            "CPUWeight": self.cpu_weight,
            "CPUSet": self.cpu_set,
            "IOWeight": self.io_weight,
            "PIDsMax": self.pids_max,
        }
        if self.cpu_quota:
            d["CPUQuota"] = self.cpu_quota
        if self.memory_swap:
            d["MemorySwap"] = self.memory_swap
        return d

    _KEYS = {
        "MemoryHard": "memory_hard", "MemorySoft": "memory_soft", "CPUWeight": "cpu_weight",
        "CPUSet": "cpu_set", "IOWeight": "io_weight", "PIDsMax": "pids_max",
        "CPUQuota": "cpu_quota", "MemorySwap": "memory_swap",
    }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], prefix: str = "Resources") -> ResourceLimits:
        d = _decode_keys(prefix, doc, cls._KEYS)
        try:
            return cls(**{cls._KEYS[k]: v for k, v in d.items()})
        except PolicyError as exc:
            raise _reprefix(exc, prefix, "Resources") from None

    def to_json(self, indent: int | None = None) -> str:
        return _go_json(self.to_dict(), indent)

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> ResourceLimits:
        return cls.from_dict(_load_json(data))


def default_resource_limits() -> ResourceLimits:
    """Conservative defaults (seed: DefaultResourceLimits)."""
    return ResourceLimits(
        memory_hard="2G", memory_soft="1G", cpu_weight=100, cpu_set="", io_weight=100,
        pids_max=4096,
    )


# ── network ──────────────────────────────────────────────────────────────────


class NetworkMode(str, enum.Enum):
    """The container network configuration (seed: NetworkMode)."""

    PRIVATE = "private"  # own network namespace (bridge wiring is the platform's job)
    HOST = "host"  # the host's network namespace
    NONE = "none"  # own network namespace, loopback only

    def __str__(self) -> str:
        return self.value


@dataclass
class PortForward:
    """A host port forwarded to a container port (seed: PortForward)."""

    host_port: int
    container_port: int
    protocol: str = ""  # "tcp" (also when empty) or "udp"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "PortForward") -> None:
        _check_int(f"{prefix}.HostPort", self.host_port, 1, 65535)
        _check_int(f"{prefix}.ContainerPort", self.container_port, 1, 65535)
        _check_str(f"{prefix}.Protocol", self.protocol)
        if self.protocol not in ("", "tcp", "udp"):
            raise PolicyError(f"{prefix}.Protocol", self.protocol, "is not 'tcp' or 'udp'")

    def to_dict(self) -> dict[str, Any]:
        return {"HostPort": self.host_port, "ContainerPort": self.container_port,
                "Protocol": self.protocol}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], prefix: str = "PortForward") -> PortForward:
        d = _decode_keys(prefix, doc, ["HostPort", "ContainerPort", "Protocol"])
        try:
            return cls(host_port=d.get("HostPort", 0), container_port=d.get("ContainerPort", 0),
                       protocol=d.get("Protocol", ""))
        except PolicyError as exc:
            raise _reprefix(exc, prefix, "PortForward") from None


_IFNAME_RE = re.compile(r"[^\s/:]{1,15}")


@dataclass
class NetworkConfig:
    """Network isolation settings (seed: NetworkConfig).

    ``mode=None`` is the Go zero value "", which the seed treats as a private
    network on the default bridge. ``outbound`` (new, JSON ``Outbound``, written
    only when true): a private network's traffic leaves the host, masqueraded
    (volt_enforce.net); off by default, the sandbox then reaches the host only.
    """

    mode: NetworkMode | str | None = None
    bridge: str = ""
    port_forwards: list[PortForward] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    outbound: bool = False

    def __post_init__(self) -> None:
        self.port_forwards = _as_list("Network.PortForwards", self.port_forwards,
                                      "a list of PortForward")
        self.dns = _as_list("Network.DNS", self.dns, "a list of IP addresses")
        self.validate()

    @property
    def effective_mode(self) -> NetworkMode:
        return self.mode if isinstance(self.mode, NetworkMode) else NetworkMode.PRIVATE

    def validate(self, prefix: str = "Network") -> None:
        """Check (and normalize) every field; on error nothing is changed."""
        mode = None if self.mode in (None, "") else _enum(f"{prefix}.Mode", NetworkMode, self.mode)
        _check_str(f"{prefix}.Bridge", self.bridge)
        if self.bridge and (not _IFNAME_RE.fullmatch(self.bridge) or self.bridge in (".", "..")):
            raise PolicyError(f"{prefix}.Bridge", self.bridge,
                              "is not an interface name (1-15 characters, no space, '/' or ':')")
        if not isinstance(self.port_forwards, list):
            raise PolicyError(f"{prefix}.PortForwards", self.port_forwards,
                              "is not a list of PortForward")
        for i, pf in enumerate(self.port_forwards):
            if not isinstance(pf, PortForward):
                raise PolicyError(f"{prefix}.PortForwards[{i}]", pf, "is not a PortForward")
            pf.validate(f"{prefix}.PortForwards[{i}]")
        if not isinstance(self.dns, list):
            raise PolicyError(f"{prefix}.DNS", self.dns, "is not a list of IP addresses")
        for i, server in enumerate(self.dns):
            _check_str(f"{prefix}.DNS[{i}]", server)
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise PolicyError(f"{prefix}.DNS[{i}]", server, "is not an IP address") from None
        _check_type(f"{prefix}.Outbound", self.outbound, bool, "a boolean")
        self.mode = mode

    def nspawn_network_args(self) -> list[str]:
        """systemd-nspawn arguments (seed: NspawnNetworkArgs)."""
        if self.mode == NetworkMode.PRIVATE:
            args = ["--network-bridge=" + self.bridge]
            for pf in self.port_forwards:
                proto = pf.protocol or "tcp"
                args.append(f"--port={proto}:{pf.host_port}:{pf.container_port}")
            return args
        if self.mode == NetworkMode.HOST:
            return []
        if self.mode == NetworkMode.NONE:
            return ["--private-network"]
        return ["--network-bridge=voltbr0"]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "Mode": str(self.mode) if self.mode is not None else "",
            "Bridge": self.bridge,
            "PortForwards": [p.to_dict() for p in self.port_forwards] or None,
            "DNS": list(self.dns) or None,
        }
        if self.outbound:
            d["Outbound"] = True
        return d

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], prefix: str = "Network") -> NetworkConfig:
        d = _decode_keys(prefix, doc, ["Mode", "Bridge", "PortForwards", "DNS", "Outbound"])
        pfs = d.get("PortForwards")
        if pfs is not None and not isinstance(pfs, list):
            raise PolicyError(f"{prefix}.PortForwards", pfs, "is not a list")
        dns = d.get("DNS")
        if dns is not None and not isinstance(dns, list):
            raise PolicyError(f"{prefix}.DNS", dns, "is not a list")
        forwards = [PortForward.from_dict(p, f"{prefix}.PortForwards[{i}]")
                    for i, p in enumerate(pfs or [])]
        mode = d.get("Mode", "")
        if not isinstance(mode, str):
            raise PolicyError(f"{prefix}.Mode", mode, "is not a string")
        try:
            return cls(mode=mode or None, bridge=d.get("Bridge", ""), port_forwards=forwards,
                       dns=dns or [], outbound=d.get("Outbound", False))
        except PolicyError as exc:
            raise _reprefix(exc, prefix, "Network") from None

    def to_json(self, indent: int | None = None) -> str:
        return _go_json(self.to_dict(), indent)

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> NetworkConfig:
        return cls.from_dict(_load_json(data))


def default_network_config() -> NetworkConfig:
    """A private network on the standard Volt bridge (seed: DefaultNetworkConfig)."""
    return NetworkConfig(mode=NetworkMode.PRIVATE, bridge="voltbr0", dns=["1.1.1.1", "1.0.0.1"])


# ── capabilities ─────────────────────────────────────────────────────────────

#: Capability names and numbers (linux/capability.h, through 5.9).
CAPABILITIES: dict[str, int] = {
    name: i
    for i, name in enumerate(
        "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
        "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK "
        "IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN "
        "SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE "
        "AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND "
        "AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE".split()
    )
}

#: The capabilities Docker grants a container by default (moby's defaults).
DOCKER_DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)


def _cap_names(prefix: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise PolicyError(prefix, value, "is not a list of capability names")
    out = []
    for i, name in enumerate(value):
        _check_str(f"{prefix}[{i}]", name)
        n = name.upper()
        n = n[4:] if n.startswith("CAP_") else n
        if n not in CAPABILITIES:
            raise PolicyError(f"{prefix}[{i}]", name, "is not a capability name")
        if n not in out:
            out.append(n)
    return out


# ── isolation config ─────────────────────────────────────────────────────────


def _seccomp_value(prefix: str, value: Any) -> SeccompProfile | str | None:
    """A profile name, or the absolute path of a Docker/OCI JSON profile."""
    if value is None or value == "":
        return None
    if isinstance(value, SeccompProfile):
        return value
    _check_str(prefix, value)
    try:
        return SeccompProfile(value)
    except ValueError:
        pass
    if value.startswith("/"):
        return str(value)
    raise PolicyError(
        prefix, value,
        "is not 'strict', 'default', 'unconfined' or the absolute path of an OCI JSON profile",
    )


_ISO_KEYS = ["Landlock", "Seccomp", "Resources", "Network", "PrivateUsers", "ReadOnlyFS",
             "Capabilities"]


@dataclass
class IsolationConfig:
    """All isolation settings of a container (seed: IsolationConfig).

    Every part is optional; a part left out enforces nothing for that part.
    ``capabilities`` (new): the capabilities to keep; None derives them from the
    seccomp profile (strict: none; default or an OCI profile file: Docker's default
    set; unconfined or none: all).
    """

    landlock: LandlockPolicy | None = None
    seccomp: SeccompProfile | str | None = None
    resources: ResourceLimits | None = None
    network: NetworkConfig | None = None
    private_users: bool = False
    read_only_fs: bool = False
    capabilities: list[str] | None = None
    #: The root directory a contained child is pivoted into (``default_isolation``
    #: records its argument here). None: the host's. Never serialized, so the JSON
    #: stays the seed's.
    rootfs: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every part again (parts are mutable), naming the first bad field."""
        if self.landlock is not None:
            if not isinstance(self.landlock, LandlockPolicy):
                raise PolicyError("Landlock", self.landlock, "is not a LandlockPolicy")
            self.landlock.validate("Landlock")
        self.seccomp = _seccomp_value("Seccomp", self.seccomp)
        if self.resources is not None:
            if not isinstance(self.resources, ResourceLimits):
                raise PolicyError("Resources", self.resources, "is not a ResourceLimits")
            self.resources.validate("Resources")
        if self.network is not None:
            if not isinstance(self.network, NetworkConfig):
                raise PolicyError("Network", self.network, "is not a NetworkConfig")
            self.network.validate("Network")
        _check_type("PrivateUsers", self.private_users, bool, "a boolean")
        _check_type("ReadOnlyFS", self.read_only_fs, bool, "a boolean")
        self.capabilities = _cap_names("Capabilities", self.capabilities)
        if self.rootfs is not None:
            _check_abs_path("rootfs", self.rootfs)

    def nspawn_args(self) -> list[str]:
        """systemd-nspawn arguments for this configuration (seed: NspawnArgs)."""
        args: list[str] = []
        if self.resources is not None:
            args += ["--property=" + p for p in self.resources.systemd_properties()]
        if self.seccomp == SeccompProfile.STRICT:
            args.append("--drop-capability=all")
        elif self.seccomp == SeccompProfile.UNCONFINED:
            args.append("--system-call-filter=~")
        if self.network is not None:
            args += self.network.nspawn_network_args()
        if self.private_users:
            args.append("--private-users=pick")
        if self.read_only_fs:
            args.append("--read-only")
        return args

    def nspawn_config_block(self, name: str) -> str:
        """A valid ``.nspawn`` file for this configuration (seed: NspawnConfigBlock).

        The seed also writes a ``[ResourceControl]`` section, which ``.nspawn`` files
        do not have (systemd ignores it with a warning); the resource limits are in
        ``nspawn_service_dropin`` instead.
        """
        _check_str("name", name)
        if not name or "\n" in name:
            raise PolicyError("name", name, "is not a machine name")
        lines = ["[Exec]", "Boot=yes", "PrivateUsers=" + ("pick" if self.private_users else "no"),
                 f"Environment=VOLT_CONTAINER={name}", "Environment=VOLT_RUNTIME=hybrid", "",
                 "[Network]"]
        if self.network is not None:
            if self.network.mode == NetworkMode.PRIVATE:
                lines.append(f"Bridge={self.network.bridge}")
            elif self.network.mode == NetworkMode.NONE:
                lines.append("Private=yes")
        if self.read_only_fs:
            lines += ["", "[Files]", "ReadOnly=yes"]
        return "\n".join(lines) + "\n"

    def nspawn_service_dropin(self) -> str:
        """The resource limits as a drop-in for ``systemd-nspawn@NAME.service``
        (``/etc/systemd/system/systemd-nspawn@NAME.service.d/volt.conf``), where
        systemd applies them to the container's scope."""
        props = self.resources.systemd_properties() if self.resources is not None else []
        return "[Service]\n" + "".join(p + "\n" for p in props)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "Landlock": self.landlock.to_dict() if self.landlock is not None else None,
            "Seccomp": str(self.seccomp) if self.seccomp is not None else "",
            "Resources": self.resources.to_dict() if self.resources is not None else None,
            "Network": self.network.to_dict() if self.network is not None else None,
            "PrivateUsers": self.private_users,
            "ReadOnlyFS": self.read_only_fs,
        }
        if self.capabilities is not None:
            d["Capabilities"] = list(self.capabilities)
        return d

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> IsolationConfig:
        d = _decode_keys("", doc, _ISO_KEYS)

        def part(key: str, loader: Callable[..., Any]) -> Any:
            v = d.get(key)
            return None if v is None else loader(v, key)

        seccomp = d.get("Seccomp", "")
        if not isinstance(seccomp, str):
            raise PolicyError("Seccomp", seccomp, "is not a string")
        return cls(
            landlock=part("Landlock", LandlockPolicy.from_dict),
            seccomp=seccomp,
            resources=part("Resources", ResourceLimits.from_dict),
            network=part("Network", NetworkConfig.from_dict),
            private_users=d.get("PrivateUsers", False),
            read_only_fs=d.get("ReadOnlyFS", False),
            capabilities=d.get("Capabilities"),
        )

    def to_json(self, indent: int | None = None) -> str:
        """The seed's wire format: Go field names, Go's encodings."""
        return _go_json(self.to_dict(), indent)

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> IsolationConfig:
        return cls.from_dict(_load_json(data))

    def replace(self, **changes: Any) -> IsolationConfig:
        return dataclasses.replace(self, **changes)


def default_isolation(rootfs: str) -> IsolationConfig:
    """A security-first configuration for production (seed: DefaultIsolation)."""
    return IsolationConfig(
        landlock=server_policy(rootfs),
        seccomp=SeccompProfile.DEFAULT,
        resources=default_resource_limits(),
        network=default_network_config(),
        private_users=True,
        read_only_fs=False,
        rootfs=rootfs,
    )
