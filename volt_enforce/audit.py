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

The process tree is followed with the kernel's process events connector
(``ProcessFollower``): its fork events name every descendant in host pids, also one
that exits before its record arrives (a contained target is the PID-namespace init's
child, reaped at once). Where the connector is unavailable (it answers only the
initial user and PID namespaces, and before Linux 6.6 only ``CAP_NET_ADMIN``) a
record's pid is walked up through /proc instead, which misses a process already
reaped, and a note says so.

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

__all__ = ["AuditState", "Denial", "DenialWatch", "ProcessFollower", "audit_state", "parse_record",
           "summarize"]

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


# ---- following the child's process tree ---------------------------------------------------

# from linux/netlink.h, linux/connector.h and linux/cn_proc.h
NETLINK_CONNECTOR = 11
CN_IDX_PROC, CN_VAL_PROC = 0x1, 0x1
PROC_CN_MCAST_LISTEN, PROC_CN_MCAST_IGNORE = 1, 2
PROC_EVENT_NONE, PROC_EVENT_FORK = 0x0, 0x1
_CN_MSG = struct.Struct("=IIIIHH")  # struct cn_msg: id.idx, id.val, seq, ack, len, flags
_PROC_EVENT = struct.Struct("=IIQ")  # struct proc_event: what, cpu, timestamp_ns (then the union)
_FORK_EVENT = struct.Struct("=iiii")  # struct fork_proc_event: parent pid, tgid; child pid, tgid
_ACK_ERR = struct.Struct("=I")  # struct proc_event's ack.err (PROC_EVENT_NONE)
#: How long the kernel's reply to PROC_CN_MCAST_LISTEN may take (it is sent synchronously).
CONNECTOR_ACK_SECONDS = 1.0


class ProcessFollower:
    """The descendants of one process, from the kernel's process events connector.

    Opening subscribes to the fork events (``OSError`` where the connector is
    unavailable: it answers only the initial user and PID namespaces, and before
    Linux 6.6 only ``CAP_NET_ADMIN``); open it before the spawn, name the spawned
    pid with ``follow(pid)`` once, and call ``drain()`` to read what has arrived:
    ``pids`` then holds the pid and every process forked below it (host pids, as
    audit names them), also those that have exited and been reaped. A pid stays in
    ``pids`` once seen: its records may arrive after it exited."""

    def __init__(self) -> None:
        self.pids: set[str] = set()
        self.lost = False
        self._lock = threading.Lock()
        # the forks seen before follow() names the root: the spawn's own come first
        self._early: dict[str, list[str]] | None = {}
        self._cookie = (os.getpid() ^ int(time.monotonic_ns())) & 0x7FFFFFFF
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                             NETLINK_CONNECTOR)
        self._sock: socket.socket | None = sock
        self._listening = False
        try:
            with contextlib.suppress(OSError):  # a larger buffer where we may (root)
                sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
            sock.bind((0, CN_IDX_PROC))
            self._control(sock, PROC_CN_MCAST_LISTEN)
            self._await_ack()
        except BaseException:
            self.close()
            raise

    def _control(self, sock: socket.socket, op: int) -> None:
        data = struct.pack("=I", op)
        cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, self._cookie, len(data), 0) + data
        sock.send(_NLMSG.pack(_NLMSG.size + len(cn), NLMSG_DONE, 0, 0, 0) + cn)

    def _await_ack(self) -> None:
        """Read up to the kernel's reply to our LISTEN (others' replies and forks may
        come first); a PID namespace other than the initial one gets no reply."""
        sock = self._sock
        assert sock is not None
        deadline = time.monotonic() + CONNECTOR_ACK_SECONDS
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise OSError(errno.ETIMEDOUT, "no reply to PROC_CN_MCAST_LISTEN")
            err = self._take(sock.recv(1 << 16))
            if err is not None:
                if err:
                    raise OSError(err, os.strerror(err))
                self._listening = True
                return

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def follow(self, pid: int) -> None:
        """Name the root (the spawned pid); forks seen before it are linked to it."""
        with self._lock:
            root = str(pid)
            self.pids.add(root)
            early, self._early = self._early or {}, None
            todo = [root]
            while todo:
                for child in early.pop(todo.pop(), []):
                    self.pids.add(child)
                    todo.append(child)

    def snapshot(self) -> set[str]:
        """A copy of ``pids`` (another thread may be adding to it)."""
        with self._lock:
            return set(self.pids)

    def drain(self) -> None:
        """Read every event that has arrived, without waiting."""
        sock = self._sock
        while sock is not None:
            try:
                data = sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.lost = True
                    continue
                raise
            self._take(data)

    def _take(self, data: bytes) -> int | None:
        """Record the fork events in ``data``; return the error of our LISTEN's reply."""
        ack: int | None = None
        for _t, payload in _messages(data):
            if len(payload) < _CN_MSG.size + _PROC_EVENT.size:
                continue
            idx, val, _seq, cookie, _len, _flags = _CN_MSG.unpack_from(payload)
            if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC):
                continue
            what, _cpu, _ts = _PROC_EVENT.unpack_from(payload, _CN_MSG.size)
            body = _CN_MSG.size + _PROC_EVENT.size
            if what == PROC_EVENT_NONE and cookie == (self._cookie + 1) & 0xFFFFFFFF:
                (ack,) = _ACK_ERR.unpack_from(payload, body)
            elif what == PROC_EVENT_FORK and len(payload) >= body + _FORK_EVENT.size:
                _parent_pid, ptgid, cpid, ctgid = _FORK_EVENT.unpack_from(payload, body)
                if cpid != ctgid:  # a new thread, not a process
                    continue
                parent, child = str(ptgid), str(ctgid)
                with self._lock:
                    if self._early is not None:
                        self._early.setdefault(parent, []).append(child)
                    elif parent in self.pids:
                        self.pids.add(child)
        return ack

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if self._listening:  # the kernel counts listeners: give ours back
                with contextlib.suppress(OSError):
                    self._control(sock, PROC_CN_MCAST_IGNORE)
        finally:
            sock.close()

    def __enter__(self) -> ProcessFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ppid(pid: str) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(b")", 1)[1].split()[1].decode()


def proc_ancestry(pid: str, roots: set[str]) -> list[str] | None:
    """``pid`` and its ancestors below the first one in ``roots``, walked up through
    /proc (None if none is: also when a process on the way has been reaped)."""
    seen: list[str] = []
    p: str | None = pid
    for _ in range(64):
        if p is None or p in ("0", "1"):
            return None
        if p in roots:
            return seen
        seen.append(p)
        p = _ppid(p)
    return None


# ---- watching a child -------------------------------------------------------------------

@dataclass
class DenialWatch:
    """Collects a child's denials from audit while it runs (see the module doc).

    ``watch()`` joins the multicast group and subscribes to the fork events before
    the spawn, so that no record and no descendant is missed; ``follow(pid)`` names
    the child; ``finish()`` waits for trailing records, prints the notes and one
    line per denial through ``say``, and returns the denials as dicts (the report's
    ``denials``)."""

    landlock_logs: bool = True
    notes: list[str] = field(default_factory=list)
    records: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    pids: set[str] = field(default_factory=set)
    _sock: socket.socket | None = None
    _follower: ProcessFollower | None = None
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
        try:
            self._follower = ProcessFollower()
        except OSError as exc:
            self.notes.append(
                f"cannot follow the child's processes with the process events connector "
                f"({exc.strerror}: it needs the initial user and PID namespaces, and before "
                "Linux 6.6 CAP_NET_ADMIN): seccomp denials of a process reaped before its record "
                "arrives are missed")
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        try:
            self._thread = threading.Thread(target=self._read, name="volt-enforce-audit",
                                            daemon=True)
            self._thread.start()
            try:
                yield self
            finally:
                self._settle()
                self._stop.set()
                self._thread.join()
                self._drain()  # what arrived after the reader's last look
        finally:
            if self._follower is not None:
                self._follower.close()
            sock.close()
            self._sock = None

    def follow(self, pid: int) -> None:
        if self._follower is not None:
            self._follower.follow(pid)
        with self._lock:
            self.pids.add(str(pid))

    def _known(self) -> set[str]:
        return self.pids | self._follower.snapshot() if self._follower is not None else self.pids

    def _ours(self, pid: str) -> bool:
        """Whether ``pid`` is the child or below it (asked when its record arrives,
        after the fork events that came before it): from the fork events, else
        walked up through /proc while the process still lives."""
        known = self._known()
        if pid in known:
            return True
        chain = proc_ancestry(pid, known)
        if chain is None:
            return False
        self.pids.update(chain)
        return True

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        follower = self._follower
        watched: list[Any] = [sock] if follower is None else [sock, follower]
        while not self._stop.is_set():
            ready = select.select(watched, [], [], 0.05)[0]
            if not ready:
                continue
            if follower is not None:
                try:  # the forks first: a process's fork event is queued before its records
                    follower.drain()
                except OSError as exc:
                    self.notes.append(f"the process events connector failed ({exc.strerror}): "
                                      "the child's processes are now looked up in /proc")
                    follower, watched = None, [sock]
            try:
                if sock in ready:
                    self._take(sock.recv(1 << 16))
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.notes.append("some audit records were lost (the buffer overflowed)")
                    continue
                return

    def _drain(self) -> None:
        """Read what both sockets hold, without waiting."""
        sock = self._sock
        assert sock is not None
        if self._follower is not None:
            with contextlib.suppress(OSError):
                self._follower.drain()
        while True:
            try:
                self._take(sock.recv(1 << 16, socket.MSG_DONTWAIT))
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    break
                self.notes.append("some audit records were lost (the buffer overflowed)")
        if self._follower is not None and self._follower.lost:
            self.notes.append("some process events were lost (the buffer overflowed): a process "
                              "reaped before its record arrived may be missed")

    def _take(self, data: bytes) -> None:
        for t, payload in _messages(data):
            if t not in (AUDIT_LANDLOCK_ACCESS, AUDIT_LANDLOCK_DOMAIN, AUDIT_SECCOMP):
                continue
            fields = parse_record(payload.rstrip(b"\0").decode("utf-8", "replace"))
            with self._lock:
                self._last = time.monotonic()
                if t in (AUDIT_SECCOMP, AUDIT_LANDLOCK_DOMAIN) and fields.get("pid"):
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
            pids = set(self._known())
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
