"""Landlock ABI 8 to 11 enforced for real, on the kernel matrix's 7.2 (ABI 10) and 7.3
(ABI 10 or 11): booted by .ci/kernel-matrix, deselected elsewhere (kernel_matrix).
Each test needs the ABI that has its feature and follows the running kernel: on 6.1
they skip naming it. Children are forked; the parent's threads stay unrestricted."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import threading

import pytest
from forked import json_reply
from kernelreq import need_landlock
from test_cli import PY, PY_ROX, SYSTEM_ROX, ve

from volt_enforce import LandlockAccess as A, LandlockPolicy, LandlockRule, landlock as ll
from volt_enforce.init_plan import run_init

pytestmark = pytest.mark.kernel_matrix
LIBC = ctypes.CDLL(None, use_errno=True)
PR_GET_NO_NEW_PRIVS = 39
CLONE_NEWNET = 0x40000000


def _in_child(fn):
    status, out = json_reply(fn)
    assert "ok" in out and os.waitstatus_to_exitcode(status) == 0, out.get("raised", status)
    return out["ok"]


def _err(op, *args) -> int:
    try:
        res = op(*args)
    except OSError as exc:
        return exc.errno or -1
    if isinstance(res, int) and op is os.open:
        os.close(res)
    return 0


def test_tsync_restricts_the_other_threads_too(tmp_path):
    need_landlock(8)
    assert ll.tsync_supported(), "ABI 8+ but TSYNC with fd -1 and LOG_SUBDOMAINS_OFF refused"
    (tmp_path / "ok").write_text("x")
    (tmp_path / "denied").mkdir()
    (tmp_path / "denied" / "f").write_text("x")
    pol = LandlockPolicy(rules=[LandlockRule(str(tmp_path / "ok"), A.READ_FILE)], runtime=False)

    def run(all_threads: bool):
        with ll.compile(pol, all_threads=all_threads) as rs:
            def child():
                go, done, got = threading.Event(), threading.Event(), []

                def other():
                    go.wait()
                    got.append(_err(os.open, str(tmp_path / "denied" / "f"), os.O_RDONLY))
                    done.set()

                threading.Thread(target=other).start()
                rs.restrict_self()
                go.set()
                done.wait(30)
                return [int(rs.restrict_flags), got[0]]

            return _in_child(child)

    flags, plain = run(False)
    assert not flags & ll.RestrictFlag.TSYNC and plain == 0  # the other thread is free
    flags, synced = run(True)
    assert flags & ll.RestrictFlag.TSYNC and synced == errno.EACCES


def test_resolve_unix_refuses_a_socket_outside_the_policy_and_accepts_a_granted_one(tmp_path):
    need_landlock(9)
    path = str(tmp_path / "s")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(4)
    pol = LandlockPolicy(rules=[LandlockRule(str(tmp_path), A.READ_ONLY)], runtime=False)

    def connect():
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(path)

    try:
        results = {}
        for name, sockets in (("denied", None), ("granted", [path])):
            with ll.compile(pol, unix_sockets=sockets) as rs:
                assert rs.report.handled_fs & A.RESOLVE_UNIX and not rs.report.best_effort

                def child():
                    rs.restrict_self()
                    return _err(connect)

                results[name] = _in_child(child)
    finally:
        server.close()
    assert results == {"denied": errno.EACCES, "granted": 0}


def test_udp_send_to_a_denied_port_fails_and_to_an_allowed_one_succeeds():
    need_landlock(10)

    def child():
        assert LIBC.unshare(CLONE_NEWNET) == 0, ctypes.get_errno()
        assert os.system("ip link set lo up") == 0
        allowed, denied = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        allowed.bind(("127.0.0.1", 0))
        denied.bind(("127.0.0.1", 0))
        a_port, d_port = allowed.getsockname()[1], denied.getsockname()[1]
        # bind 0 lets the sender's socket autobind an ephemeral port
        pol = LandlockPolicy(bind_udp=[0], connect_udp=[a_port], runtime=False)
        with ll.compile(pol) as rs:
            assert rs.report.status == "full", rs.report.format()
            rs.restrict_self()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        got = {"allowed": _err(s.sendto, b"x", ("127.0.0.1", a_port)),
               "denied": _err(s.sendto, b"x", ("127.0.0.1", d_port))}
        allowed.settimeout(5)
        got["received"] = allowed.recv(8).decode()
        return got

    assert _in_child(child) == {"allowed": 0, "denied": errno.EACCES, "received": "x"}


def test_quiet_fields_and_rules_are_taken(tmp_path):
    need_landlock(10)
    pol = LandlockPolicy(rules=[LandlockRule(str(tmp_path), A.READ_ONLY, quiet=True)],
                         quiet_access_fs=A.READ_FILE | A.WRITE_FILE, runtime=False)
    with ll.compile(pol) as rs:
        rep = rs.report
        assert rep.quiet_access_fs == A.READ_FILE | A.WRITE_FILE and not rep.dropped
        assert [r.quiet for r in rep.rules] == [True]

        def child():
            rs.restrict_self()
            return _err(os.open, str(tmp_path / "new"), os.O_CREAT | os.O_WRONLY)

        assert _in_child(child) == errno.EACCES


def test_no_new_privs_is_set_by_the_restriction_itself(tmp_path):
    need_landlock(11)
    assert ll.no_new_privs_flag_supported()
    pol = LandlockPolicy(rules=[LandlockRule(str(tmp_path), A.READ_ONLY)], runtime=False)
    with ll.compile(pol) as rs:
        assert rs.restrict_flags & ll.RestrictFlag.NO_NEW_PRIVS

        def child():
            before = LIBC.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
            rs.restrict_self()  # no prctl: the flag makes the kernel set it
            return [before, LIBC.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)]

        assert _in_child(child) == [0, 1]
    with ll.compile(pol, no_new_privs_flag=False) as rs:
        assert not rs.restrict_flags & ll.RestrictFlag.NO_NEW_PRIVS


# ---- the CLI and volt-init (the C spawn path) with the ABI 9 and 10 options ------------------

#: A child that sends one UDP datagram to an allowed and one to a denied port, and reads
#: the first back; argv: the two ports. Prints {"allowed", "denied", "received"} as JSON.
UDP_CHILD = r'''
import errno, json, socket, sys
a, d = int(sys.argv[1]), int(sys.argv[2])
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", a))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
got = {}
for name, port in (("allowed", a), ("denied", d)):
    try:
        s.sendto(b"x", ("127.0.0.1", port))
        got[name] = "ok"
    except OSError as e:
        got[name] = errno.errorcode[e.errno]
server.settimeout(5)
got["received"] = server.recv(8).decode()
print(json.dumps(got))
'''

#: A child that connects to the pathname UNIX socket argv[1]; prints "ok" or the errno.
UNIX_CHILD = r'''
import errno, socket, sys
c = socket.socket(socket.AF_UNIX)
try:
    c.connect(sys.argv[1])
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
'''


def _ve_options() -> list[str]:
    return ["--profile", "none", *SYSTEM_ROX, *PY_ROX, "--seccomp", "default"]


def _udp_options(a_port: int) -> list[str]:
    # own network namespace (loopback), UDP bind on a_port and the sender's ephemeral
    # autobind (port 0), send to a_port only
    return ["--network", "none", "--bind-udp", "0", "--bind-udp", str(a_port),
            "--connect-udp", str(a_port)]


def test_cli_udp_options_allow_the_ports_given_and_deny_the_others():
    need_landlock(10)

    cp = ve("run", *_ve_options(), *_udp_options(5300), "--", PY, "-S", "-c", UDP_CHILD,
            "5300", "5301", timeout=300)
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout) == {"allowed": "ok", "denied": "EACCES", "received": "x"}
    # the control: without the UDP options both datagrams go out
    cp = ve("run", *_ve_options(), "--network", "none", "--", PY, "-S", "-c", UDP_CHILD,
            "5300", "5301", timeout=300)
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout) == {"allowed": "ok", "denied": "ok", "received": "x"}


def test_cli_unix_socket_grants_the_named_socket_only(tmp_path):
    need_landlock(9)

    path = str(tmp_path / "docker.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(4)
    try:
        cmd = ["--", PY, "-S", "-c", UNIX_CHILD, path]
        # the host's view: Landlock's RESOLVE_UNIX is what is tested (in the contained
        # view an unnamed socket is absent: ENOENT, tests/test_view.py)
        denied = ve("run", "--no-contain", *_ve_options(), *cmd, timeout=300)
        granted = ve("run", "--no-contain", *_ve_options(), "--unix-socket", path, *cmd,
                     timeout=300)
    finally:
        server.close()
    assert (denied.returncode, denied.stdout.strip()) == (0, "EACCES"), denied.stderr
    assert (granted.returncode, granted.stdout.strip()) == (0, "ok"), granted.stderr


def test_volt_init_plan_carries_udp_rules_quiet_fields_and_the_restrict_flags(tmp_path):
    need_landlock(10)

    quiet = tmp_path / "quiet"
    quiet.mkdir()
    plan = tmp_path / "plan"
    cp = ve("compile", *_ve_options(), *_udp_options(5310), "--audit-quiet", str(quiet),
            "-o", str(plan), timeout=300)
    assert cp.returncode == 0, cp.stderr
    records = {ln.split()[0]: ln.split() for ln in plan.read_text().splitlines()}
    landlock = records["landlock"]
    assert len(landlock) == 8 and int(landlock[5], 16) != 0  # quiet_access_fs
    udp = int(ll.LandlockNetAccess.BIND_UDP | ll.LandlockNetAccess.CONNECT_SEND_UDP)
    assert int(landlock[2], 16) & udp == udp  # handled net
    ports = {int(r[2], 16): int(r[1], 16) for r in
             (ln.split() for ln in plan.read_text().splitlines() if ln.startswith("port "))}
    assert ports[5310] == udp and ports[0] == int(ll.LandlockNetAccess.BIND_UDP)
    flags = int(landlock[4], 16)
    assert bool(flags & ll.RestrictFlag.NO_NEW_PRIVS) == ll.no_new_privs_flag_supported()
    quiet_rules = [ln.split() for ln in plan.read_text().splitlines()
                   if ln.startswith("path ") and len(ln.split()) == 5]
    assert [bytes.fromhex(r[3]).decode() for r in quiet_rules] == [str(quiet)]
    run = run_init(str(plan), [PY, "-S", "-c", UDP_CHILD, "5310", "5311"],
                   capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"allowed": "ok", "denied": "EACCES", "received": "x"}


# ---- the quiet flags against the audit log (in the VM only: audit is never touched on
# the host) -------------------------------------------------------------------------------

NETLINK_AUDIT, AUDIT_GET, AUDIT_SET = 9, 1000, 1001
AUDIT_STATUS_ENABLED, AUDIT_STATUS_PID = 1, 4
AUDIT_LANDLOCK_ACCESS = 1423
NLMSG_ERROR = 2


class _AuditDaemon:
    """This process as the VM's audit daemon: audit enabled, records to this socket."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        self.sock.bind((0, 0))
        self.seq = 0
        self.before = self._status()

    def _send(self, kind: int, payload: bytes) -> None:
        import struct
        self.seq += 1
        hdr = struct.pack("=IHHII", 16 + len(payload), kind, 1 | 4, self.seq, 0)  # REQUEST|ACK
        self.sock.send(hdr + payload)

    def _status(self) -> tuple[int, int]:
        import struct
        self._send(AUDIT_GET, b"")
        self.sock.settimeout(5)
        while True:
            data = self.sock.recv(65536)
            length, kind = struct.unpack_from("=IH", data)
            if kind == AUDIT_GET:
                _mask, enabled, _failure, pid = struct.unpack_from("=IIII", data, 16)
                return enabled, pid
            if kind == NLMSG_ERROR and struct.unpack_from("=i", data, 16)[0] < 0:
                raise OSError(-struct.unpack_from("=i", data, 16)[0], "AUDIT_GET")

    def set(self, enabled: int, pid: int) -> None:
        import struct
        self._send(AUDIT_SET, struct.pack("=10I", AUDIT_STATUS_ENABLED | AUDIT_STATUS_PID,
                                          enabled, 0, pid, 0, 0, 0, 0, 0, 0))
        while True:
            data = self.sock.recv(65536)
            if struct.unpack_from("=IH", data)[1] == NLMSG_ERROR:
                err = struct.unpack_from("=i", data, 16)[0]
                if err < 0:
                    raise OSError(-err, "AUDIT_SET")
                return

    def landlock_records(self, until: str, timeout: float = 20) -> list[str]:
        """LANDLOCK_ACCESS records, up to the first that contains ``until``."""
        import struct
        import time
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            # one record a datagram; its nlmsg_len counts the text only (audit's own way)
            if len(data) >= 16 and struct.unpack_from("=IH", data)[1] == AUDIT_LANDLOCK_ACCESS:
                out.append(data[16:].rstrip(b"\0").decode(errors="replace"))
            if any(until in r for r in out):
                return out
        raise AssertionError(f"no Landlock audit record with {until!r} (got {out})")

    def close(self) -> None:
        try:
            self.set(*self.before)
        finally:
            self.sock.close()


@pytest.fixture
def audit():
    from kernelreq import VM_KERNEL, need

    need_landlock(10)
    if not VM_KERNEL:  # the file runs in the VM only; never switch the host's audit on
        need("audit", False, "switched on only in the kernel matrix's VM")
    try:
        daemon = _AuditDaemon()
        daemon.set(1, os.getpid())
    except OSError as exc:
        need("audit", False, f"the VM's kernel refused audit over netlink: {exc}")
    yield daemon
    daemon.close()


def test_a_quiet_rule_makes_no_audit_record_where_a_normal_denial_does(tmp_path, audit):
    quiet_dir, loud_dir = tmp_path / "quiet", tmp_path / "loud"
    for d in (quiet_dir, loud_dir):
        d.mkdir()
        (d / "f").write_text("x")
    ino = {name: os.stat(d / "f").st_ino for name, d in (("quiet", quiet_dir),
                                                          ("loud", loud_dir))}

    def denied_under(quiet: bool) -> list[str]:
        pol = LandlockPolicy(rules=[LandlockRule(str(tmp_path), A.READ_DIR),
                                    LandlockRule(str(quiet_dir), 0, quiet=True)],
                             quiet_access_fs=A.READ_FILE if quiet else 0, runtime=False)
        with ll.compile(pol) as rs:
            assert rs.report.quiet_access_fs == (A.READ_FILE if quiet else 0)

            def child():
                rs.restrict_self()
                # the quiet one first: its record, if any, comes before the loud one's
                return [_err(os.open, str(quiet_dir / "f"), os.O_RDONLY),
                        _err(os.open, str(loud_dir / "f"), os.O_RDONLY)]

            assert _in_child(child) == [errno.EACCES, errno.EACCES]
        records = audit.landlock_records(until=f" ino={ino['loud']}")
        return [name for name, n in ino.items() if any(f" ino={n}" in r for r in records)]

    # the control: the same rule without quiet_access_fs logs both denials
    assert denied_under(quiet=False) == ["quiet", "loud"]
    assert denied_under(quiet=True) == ["loud"]
