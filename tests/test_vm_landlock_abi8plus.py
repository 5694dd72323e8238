"""Landlock ABI 8 to 11 enforced for real, on the kernel matrix's 7.2 (ABI 10) and 7.3
(ABI 10 or 11): booted by .ci/kernel-matrix, deselected elsewhere (kernel_matrix).
Each test needs the ABI that has its feature and follows the running kernel: on 6.1
they skip naming it. Children are forked; the parent's threads stay unrestricted."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading

import pytest
from forked import json_reply
from kernelreq import need_landlock

from volt_enforce import LandlockAccess as A, LandlockPolicy, LandlockRule, landlock as ll

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
