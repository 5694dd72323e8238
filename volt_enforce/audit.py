"""Live denials: the kernel's audit records of a child's Landlock and seccomp denials.

With ``--why`` the child's Landlock domain is made with
``LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON`` (without it Landlock logs nothing once the
target is exec'd) and its seccomp filter with ``SECCOMP_FILTER_FLAG_LOG``. While the
child runs, ``DenialWatch`` reads the audit records the kernel multicasts to the
``AUDIT_NLGRP_READLOG`` group of the audit netlink socket (which needs
``CAP_AUDIT_READ``, and reaches listeners in the initial network namespace), keeps
those of the child's domain (``AUDIT_LANDLOCK_DOMAIN`` names the process that made
it) and of its process tree (``AUDIT_SECCOMP`` names the process), and tells one line
per distinct denial with the option that would allow it.

Nothing here changes the audit configuration: where audit is off, unreadable, or
(for seccomp denials that return an errno) has no rule loaded, it says so once, and
how to turn it on. A path hidden by a filesystem view is never logged (it does not
exist for the child); ``volt_enforce.diagnose`` speaks for those.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compile import Compiled
    from .model import IsolationConfig

__all__ = ["AuditState", "Denial", "DenialWatch", "audit_state", "parse_record", "summarize"]

NETLINK_AUDIT = 9
AUDIT_NLGRP_READLOG = 1
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
AUDIT_GET, AUDIT_LIST_RULES = 1000, 1013
AUDIT_SYSCALL, AUDIT_SECCOMP = 1300, 1326
AUDIT_LANDLOCK_ACCESS, AUDIT_LANDLOCK_DOMAIN = 1423, 1424
_NLMSG = struct.Struct("=IHHII")
#: How long records may trail the child's exit (kauditd sends them from a thread).
SETTLE_SECONDS = 0.3
SETTLE_MAX_SECONDS = 3.0

TURN_ON = ("turn it on with `auditctl -e 1` (package auditd) or boot with audit=1; "
           "volt-enforce never changes it")


# ---- the audit state ------------------------------------------------------------------

@dataclass(frozen=True)
class AuditState:
    """What audit will let ``--why`` see: ``enabled`` (None: cannot tell), ``rules``
    (the number of audit rules loaded, None: cannot tell), ``readable`` (the
    multicast group could be joined) and why not."""

    enabled: bool | None
    rules: int | None
    readable: bool
    reason: str = ""


def _request(msg_type: int, flags: int, timeout: float = 1.0) -> list[tuple[int, bytes]]:
    """Send one audit request and collect the replies (the kernel sends AUDIT_GET's
    reply after its ack, from a thread)."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_AUDIT)
    try:
        s.bind((0, 0))
        s.send(_NLMSG.pack(_NLMSG.size, msg_type, flags, 1, 0))
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                return out
            data = s.recv(1 << 16)
            for t, payload in _messages(data):
                if t == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", payload)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    if msg_type == AUDIT_LIST_RULES:
                        continue
                elif t == NLMSG_DONE:
                    return out
                else:
                    out.append((t, payload))
                    if msg_type == AUDIT_GET:
                        return out
    finally:
        s.close()


def _messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    at = 0
    while at + _NLMSG.size <= len(data):
        length, t, _flags, _seq, _pid = _NLMSG.unpack_from(data, at)
        if length < _NLMSG.size:
            return
        yield t, data[at + _NLMSG.size:at + length]
        at += (length + 3) & ~3


def audit_state() -> AuditState:
    """Read (never change) whether audit is enabled and how many rules it has."""
    enabled: bool | None = None
    rules: int | None = None
    reason = ""
    try:
        got = _request(AUDIT_GET, NLM_F_REQUEST | NLM_F_ACK)
        for t, payload in got:
            if t == AUDIT_GET and len(payload) >= 8:
                enabled = struct.unpack_from("=I", payload, 4)[0] != 0
        rules = sum(1 for t, _ in _request(AUDIT_LIST_RULES, NLM_F_REQUEST | NLM_F_ACK)
                    if t == AUDIT_LIST_RULES)
    except OSError as exc:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT):
            return AuditState(False, None, False, "this kernel has no audit (CONFIG_AUDIT)")
        reason = f"cannot read the audit state ({exc.strerror}: needs CAP_AUDIT_CONTROL)"
    readable = True
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_AUDIT)
        try:
            s.bind((0, AUDIT_NLGRP_READLOG))
        finally:
            s.close()
    except OSError as exc:
        readable = False
        reason = f"cannot read audit records ({exc.strerror}: needs CAP_AUDIT_READ)"
    return AuditState(enabled, rules, readable, reason)


# ---- records ----------------------------------------------------------------------------

_FIELD = re.compile(r'(\w+)=("([^"]*)"|\S*)')
_HEX = re.compile(r"(?:[0-9A-F]{2})+")


def parse_record(text: str) -> dict[str, str]:
    """The fields of an audit record's text (``audit(T:S): k=v ...``); a quoted value is
    unquoted, an untrusted string that audit wrote in hex is decoded."""
    body = text.split("): ", 1)[1] if text.startswith("audit(") else text
    out: dict[str, str] = {}
    head = re.match(r"audit\(([0-9.]+):([0-9]+)\)", text)
    if head:
        out["_serial"] = head.group(2)
    for m in _FIELD.finditer(body):
        key, raw, quoted = m.group(1), m.group(2), m.group(3)
        if quoted is not None:
            out[key] = quoted
        elif key in ("path", "exe", "comm", "name") and _HEX.fullmatch(raw):
            out[key] = os.fsdecode(bytes.fromhex(raw))
        else:
            out[key] = raw
    return out


@dataclass(frozen=True)
class Denial:
    """One distinct denial: ``kind`` "landlock" or "seccomp", ``access`` (Landlock's
    blocker such as ``fs.read_file``, or ``syscall``), ``target`` (a path, a port, a
    syscall name), how often, and the option that allows it."""

    kind: str
    access: str
    target: str
    count: int
    option: str

    def line(self) -> str:
        times = f"{self.count}x " if self.count > 1 else ""
        what = (f"{self.access} {self.target}" if self.kind == "landlock"
                else f"syscall {self.target}")
        return f"denied {times}{what} ({'Landlock' if self.kind == 'landlock' else 'seccomp'}); " \
               f"allow it with {self.option}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "access": self.access, "target": self.target,
                "count": self.count, "option": self.option}


def _syscall_name(arch: str, nr: str) -> str:
    from .seccomp.tables import ARCHES

    try:
        a, n = int(arch, 16), int(nr)
    except ValueError:
        return nr
    for table in ARCHES.values():
        if table.audit_arch == a and n in table.by_number:
            return table.by_number[n]
    return f"#{n}"


def _landlock_option(blocker: str, fields: dict[str, str]) -> tuple[str, str]:
    from .diagnose import option_for
    from .model import LandlockAccess

    kind, _, right = blocker.partition(".")
    if kind == "fs":
        path = fields.get("path", "?")
        bit = getattr(LandlockAccess, right.upper(), None)
        if bit is None:
            return path, "a --config rule for it"
        return path, option_for(path, int(bit))
    if kind == "net":
        # lsm_audit writes a connect's port as dest=, a bind's as src=
        port = fields.get("dest") or fields.get("src") or fields.get("lport") or "?"
        flag = {"bind_tcp": "--bind-tcp", "connect_tcp": "--connect-tcp"}.get(right)
        return port, f"{flag} {port}" if flag else f"a --config {right} port rule for {port}"
    target = fields.get("path") or fields.get("opid") or "?"
    return target, "a --config without that scope (scopes have no exceptions)"


def summarize(records: list[tuple[int, dict[str, str]]], domains: set[str], pids: set[str],
              profile: str = "the filter") -> list[Denial]:
    """The distinct denials among ``records`` (type, fields) that belong to the
    child: Landlock records of ``domains``, seccomp records of ``pids``."""
    counts: dict[tuple[str, str, str], list[Any]] = {}
    for t, f in records:
        if t == AUDIT_LANDLOCK_ACCESS and f.get("domain") in domains:
            for blocker in f.get("blockers", "").split(","):
                if blocker:
                    target, option = _landlock_option(blocker, f)
                    key = ("landlock", blocker, target)
                    counts.setdefault(key, [0, option])[0] += 1
        elif t == AUDIT_SECCOMP and f.get("pid") in pids:
            name = _syscall_name(f.get("arch", ""), f.get("syscall", ""))
            option = f"a --seccomp profile that allows {name} ({profile} denies it)"
            key = ("seccomp", "syscall", name)
            counts.setdefault(key, [0, option])[0] += 1
    return [Denial(k[0], k[1], k[2], n, opt) for k, (n, opt) in counts.items()]


# ---- watching a child -------------------------------------------------------------------

def _ppid(pid: str) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(b")", 1)[1].split()[1].decode()


@dataclass
class DenialWatch:
    """Collects a child's denials from audit while it runs (see the module doc).

    ``watch()`` joins the multicast group before the spawn, so that no record is
    missed; ``follow(pid)`` names the child; ``finish()`` waits for trailing records,
    prints the notes and one line per denial through ``say``, and returns the
    denials as dicts (the report's ``denials``)."""

    landlock_logs: bool = True
    notes: list[str] = field(default_factory=list)
    records: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    pids: set[str] = field(default_factory=set)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _last: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_config(cls, config: IsolationConfig) -> DenialWatch:
        """A watch for ``config``, whose Landlock policy is told to log after the exec."""
        from . import landlock
        from .model import LandlockLogging

        watch = cls()
        policy = config.landlock
        if policy is not None:
            policy.logging = LandlockLogging(int(policy.logging) | LandlockLogging.NEW_EXEC_ON)  # type: ignore[arg-type]
            abi = landlock.kernel_abi()
            if abi < 7:
                watch.landlock_logs = False
                watch.notes.append(f"Landlock denials: this kernel's Landlock (ABI {abi}) logs none "
                                   "(audit logging needs ABI 7, Linux 6.15); exec failures are "
                                   "still diagnosed")
        return watch

    @contextlib.contextmanager
    def watch(self) -> Iterator[DenialWatch]:
        state = audit_state()
        if state.enabled is False:
            self.notes.append(f"audit is off: no denial is logged; {TURN_ON}")
            yield self
            return
        if not state.readable:
            self.notes.append(f"{state.reason}: no denial can be shown; run volt-enforce with "
                              "CAP_AUDIT_READ (as root, or `setpriv --inh-caps +audit_read`)")
            yield self
            return
        if state.enabled is None:
            self.notes.append(f"{state.reason}; denials are shown if audit is on")
        elif state.rules == 0:
            self.notes.append("audit has no rule loaded: seccomp denials that return an errno are "
                              "not logged (any syscall rule enables them, e.g. `auditctl -a "
                              "never,exit -F arch=b64 -S getpid`); Landlock's are")
        try:
            actions = open("/proc/sys/kernel/seccomp/actions_logged").read().split()
        except OSError:
            actions = []
        if actions and "errno" not in actions:
            self.notes.append("seccomp denials that return an errno are not logged: "
                              "/proc/sys/kernel/seccomp/actions_logged lacks errno")
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_AUDIT)
        try:
            with contextlib.suppress(OSError):  # a larger buffer where we may (root)
                sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
            sock.bind((0, AUDIT_NLGRP_READLOG))
        except OSError as exc:
            sock.close()
            self.notes.append(f"cannot read audit records ({exc.strerror}); {TURN_ON}")
            yield self
            return
        self._sock = sock
        self._thread = threading.Thread(target=self._read, name="volt-enforce-audit", daemon=True)
        self._thread.start()
        try:
            yield self
        finally:
            self._settle()
            self._stop.set()
            self._thread.join()
            sock.close()
            self._sock = None

    def follow(self, pid: int) -> None:
        with self._lock:
            self.pids.add(str(pid))

    def _ours(self, pid: str) -> bool:
        """Whether ``pid`` is the child or below it (asked when its record arrives)."""
        seen: list[str] = []
        p: str | None = pid
        for _ in range(64):
            if p is None or p in ("0", "1"):
                return False
            if p in self.pids:
                self.pids.update(seen)
                return True
            seen.append(p)
            p = _ppid(p)
        return False

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            if not select.select([sock], [], [], 0.05)[0]:
                continue
            try:
                data = sock.recv(1 << 16)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.notes.append("some audit records were lost (the buffer overflowed)")
                    continue
                return
            for t, payload in _messages(data):
                if t not in (AUDIT_LANDLOCK_ACCESS, AUDIT_LANDLOCK_DOMAIN, AUDIT_SECCOMP):
                    continue
                fields = parse_record(payload.rstrip(b"\0").decode("utf-8", "replace"))
                with self._lock:
                    self._last = time.monotonic()
                    if t == AUDIT_SECCOMP and fields.get("pid") and fields["pid"] not in self.pids:
                        self._ours(fields["pid"])
                    self.records.append((t, fields))

    def _settle(self) -> None:
        """Wait until records stop arriving: kauditd sends them after the fact."""
        start = time.monotonic()
        while time.monotonic() - start < SETTLE_MAX_SECONDS:
            time.sleep(SETTLE_SECONDS / 3)
            with self._lock:
                quiet = time.monotonic() - max(self._last, start) >= SETTLE_SECONDS
            if quiet:
                return

    def denials(self, profile: str = "the filter") -> list[Denial]:
        with self._lock:
            records = list(self.records)
            pids = set(self.pids)
        domains = {f["domain"] for t, f in records
                   if t == AUDIT_LANDLOCK_DOMAIN and f.get("pid") in pids and "domain" in f}
        return summarize(records, domains, pids, profile)

    def finish(self, compiled: Compiled, say: Callable[[str], None]) -> list[dict[str, Any]]:
        """Print the notes (once each) and the denials; return the denials as dicts."""
        for note in dict.fromkeys(self.notes):
            say(f"--why: {note}")
        profile = (f"the {compiled.seccomp.name} profile" if compiled.seccomp is not None
                   else "the filter")
        found = self.denials(profile)
        for d in found:
            say(d.line())
        return [d.to_dict() for d in found]
