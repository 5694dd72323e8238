"""Landlock enforcement against the real kernel: each operation runs in a forked
child restricted by a compiled ruleset, and the test reads the errno it got."""

from __future__ import annotations

import errno
import fcntl
import gc
import json
import os
import shutil
import socket
import stat
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from forked import json_reply
from kernelreq import need, need_landlock

from volt_enforce import (
    IsolationConfig,
    LandlockAccess as A,
    LandlockPolicy,
    LandlockRule,
    NetworkConfig,
    NetworkMode,
    PolicyError,
    PortForward,
    landlock as ll,
    server_policy,
)
from volt_enforce._core import lib

ALL = A.all()
OK = 0
#: Exit codes of in_child() that are not an errno.
RESTRICT_FAILED, OTHER_ERROR = 201, 202


def in_child(ruleset: ll.CompiledRuleset | None, op: Callable[[], object], *,
             no_new_privs: bool = True) -> int:
    """Fork; the child restricts itself, runs ``op`` and exits with 0 on success,
    the errno of an OSError, or RESTRICT_FAILED / OTHER_ERROR. Returns that code."""
    pid = os.fork()
    if pid == 0:
        code = RESTRICT_FAILED
        try:
            if ruleset is not None:
                ruleset.restrict_self(no_new_privs=no_new_privs)
            code = OTHER_ERROR
            op()
            code = OK
        except OSError as exc:
            if code == OTHER_ERROR:
                code = exc.errno if exc.errno and exc.errno < 200 else OTHER_ERROR
        except BaseException:  # any other failure: the exit code says OTHER_ERROR
            pass
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def child_results(ruleset: ll.CompiledRuleset, ops: dict[str, Callable[[], object]]) -> dict:
    """Run several operations in one restricted child; {name: errno or 0}."""
    def child() -> dict:
        ruleset.restrict_self()
        out = {}
        for name, op in ops.items():
            try:
                op()
                out[name] = OK
            except OSError as exc:
                out[name] = exc.errno
        return out

    _, reply = json_reply(child)
    assert "ok" in reply, reply.get("raised")
    return reply["ok"]


def read(path: Path | str) -> Callable[[], bytes]:
    def op() -> bytes:
        with open(path, "rb") as f:
            return f.read()
    return op


def open_flags(path: Path | str, flags: int) -> Callable[[], None]:
    return lambda: os.close(os.open(path, flags))


# ── the tree the matrix runs on ──────────────────────────────────────────────


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for d in ("ro", "rw", "wnt", "denied", "refer_b", "norefer", "narrow", "links"):
        (tmp_path / d).mkdir()
    for d in ("ro", "rw", "wnt", "denied", "narrow", "norefer"):
        (tmp_path / d / "f").write_bytes(b"data")
        (tmp_path / d / "emptydir").mkdir()
    for d in ("ro", "denied"):
        shutil.copy("/bin/true", tmp_path / d / "true")
    (tmp_path / "file_rule.txt").write_text("file")
    (tmp_path / "other.txt").write_text("other")
    os.symlink(tmp_path / "denied" / "f", tmp_path / "links" / "to_denied")
    os.symlink(tmp_path / "ro" / "f", tmp_path / "denied" / "to_ro")
    return tmp_path


def matrix_policy(t: Path, runtime: bool = False) -> LandlockPolicy:
    exec_rules = [LandlockRule("/usr", A.READ_EXEC)] + [
        LandlockRule(p, A.READ_EXEC, optional=True) for p in ("/lib", "/lib64", "/bin")]
    return LandlockPolicy(rules=exec_rules + [
        LandlockRule(str(t / "ro"), A.READ_ONLY | A.EXECUTE),
        LandlockRule(str(t / "rw"), ALL),
        LandlockRule(str(t / "wnt"), A.READ_ONLY | A.WRITE_FILE | A.MAKE_REG),
        LandlockRule(str(t / "refer_b"), ALL),
        LandlockRule(str(t / "norefer"), ALL & ~A.REFER),
        LandlockRule(str(t / "narrow"), ALL & ~A.EXECUTE),
        LandlockRule(str(t / "links"), A.READ_ONLY | A.MAKE_SYM),
        LandlockRule(str(t / "file_rule.txt"), A.READ_WRITE),
    ], runtime=runtime)


@pytest.fixture
def rs(tree: Path):
    need_landlock(1)
    with ll.compile(matrix_policy(tree)) as compiled:
        yield compiled


# ── filesystem ───────────────────────────────────────────────────────────────


def test_read(rs, tree):
    assert in_child(rs, read(tree / "ro" / "f")) == OK
    assert in_child(rs, read(tree / "denied" / "f")) == errno.EACCES
    assert in_child(rs, read(tree / "other.txt")) == errno.EACCES


def test_write(rs, tree):
    assert in_child(rs, open_flags(tree / "rw" / "f", os.O_WRONLY)) == OK
    assert in_child(rs, open_flags(tree / "wnt" / "f", os.O_WRONLY)) == OK
    assert in_child(rs, open_flags(tree / "ro" / "f", os.O_WRONLY)) == errno.EACCES
    assert in_child(rs, open_flags(tree / "denied" / "f", os.O_RDWR)) == errno.EACCES


def test_exec(rs, tree):
    assert in_child(rs, lambda: os.execv(tree / "ro" / "true", ["true"])) == OK
    assert in_child(rs, lambda: os.execv(tree / "denied" / "true", ["true"])) == errno.EACCES


def test_readdir(rs, tree):
    assert in_child(rs, lambda: os.listdir(tree / "ro")) == OK
    assert in_child(rs, lambda: os.listdir(tree / "denied")) == errno.EACCES
    assert in_child(rs, lambda: os.listdir(tree)) == errno.EACCES


def test_mkdir_unlink_rmdir(rs, tree):
    got = child_results(rs, {
        "mkdir rw": lambda: os.mkdir(tree / "rw" / "new"),
        "mkdir ro": lambda: os.mkdir(tree / "ro" / "new"),
        "mkdir wnt": lambda: os.mkdir(tree / "wnt" / "new"),
        "unlink rw": lambda: os.unlink(tree / "rw" / "f"),
        "unlink ro": lambda: os.unlink(tree / "ro" / "f"),
        "unlink wnt": lambda: os.unlink(tree / "wnt" / "f"),
        "rmdir rw": lambda: os.rmdir(tree / "rw" / "emptydir"),
        "rmdir ro": lambda: os.rmdir(tree / "ro" / "emptydir"),
    })
    assert got == {"mkdir rw": OK, "mkdir ro": errno.EACCES, "mkdir wnt": errno.EACCES,
                   "unlink rw": OK, "unlink ro": errno.EACCES, "unlink wnt": errno.EACCES,
                   "rmdir rw": OK, "rmdir ro": errno.EACCES}
    assert (tree / "rw" / "new").is_dir() and not (tree / "rw" / "f").exists()
    assert (tree / "ro" / "f").exists() and (tree / "ro" / "emptydir").is_dir()


def _make_sock(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
    finally:
        s.close()


MAKERS: dict[str, tuple[A, Callable[[Path], None]]] = {
    "reg": (A.MAKE_REG, lambda p: os.mknod(p, stat.S_IFREG | 0o600)),
    "dir": (A.MAKE_DIR, lambda p: os.mkdir(p)),
    "fifo": (A.MAKE_FIFO, lambda p: os.mkfifo(p)),
    "sock": (A.MAKE_SOCK, _make_sock),
    "char": (A.MAKE_CHAR, lambda p: os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(1, 3))),
    "block": (A.MAKE_BLOCK, lambda p: os.mknod(p, stat.S_IFBLK | 0o600, os.makedev(7, 250))),
    "sym": (A.MAKE_SYM, lambda p: os.symlink("target", p)),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_make_rights_are_separate(tmp_path, kind):
    """A directory granting one MAKE_* right allows creating exactly that kind of file."""
    need_landlock(1)
    right, _ = MAKERS[kind]
    (tmp_path / "g").mkdir()
    (tmp_path / "none").mkdir()
    policy = LandlockPolicy(rules=[LandlockRule(str(tmp_path / "g"), right | A.READ_DIR)],
                            runtime=False)
    with ll.compile(policy) as compiled:
        ops = {f"{k} in g": (lambda m=m, k=k: m(tmp_path / "g" / k))
               for k, (_, m) in MAKERS.items()}
        ops[f"{kind} elsewhere"] = lambda: MAKERS[kind][1](tmp_path / "none" / kind)
        got = child_results(compiled, ops)
    expected = {f"{k} in g": OK if k == kind else errno.EACCES for k in MAKERS}
    expected[f"{kind} elsewhere"] = errno.EACCES
    assert got == expected


def test_refer_across_directories(rs, tree):
    """rename/link across directories needs REFER on both sides (ABI 2), and may not
    move a file to where it would gain rights (EXDEV)."""
    need_landlock(2)
    for name in ("a", "b", "c", "d", "e", "s"):
        (tree / "rw" / name).write_text(name)
    (tree / "narrow" / "n").write_text("n")
    got = child_results(rs, {
        "rename to refer_b": lambda: os.rename(tree / "rw" / "a", tree / "refer_b" / "a"),
        "rename to norefer": lambda: os.rename(tree / "rw" / "b", tree / "norefer" / "b"),
        "link to refer_b": lambda: os.link(tree / "rw" / "c", tree / "refer_b" / "c"),
        "link to norefer": lambda: os.link(tree / "rw" / "d", tree / "norefer" / "d"),
        "rename same dir": lambda: os.rename(tree / "norefer" / "f", tree / "norefer" / "g"),
        "rename gaining EXECUTE": lambda: os.rename(tree / "narrow" / "n", tree / "rw" / "n"),
        "rename to ro": lambda: os.rename(tree / "rw" / "e", tree / "ro" / "e"),
    })
    assert got == {"rename to refer_b": OK, "rename to norefer": errno.EXDEV,
                   "link to refer_b": OK, "link to norefer": errno.EXDEV,
                   "rename same dir": OK, "rename gaining EXECUTE": errno.EXDEV,
                   "rename to ro": errno.EACCES}  # no MAKE_REG there: EACCES wins over EXDEV
    assert (tree / "refer_b" / "a").exists() and (tree / "rw" / "b").exists()


def test_truncate(rs, tree):
    need_landlock(3)
    (tree / "rw" / "t").write_text("0123456789")
    with open(tree / "rw" / "t", "r+b") as pre:
        got = child_results(rs, {
            "truncate rw": lambda: os.truncate(tree / "rw" / "f", 1),
            "truncate wnt": lambda: os.truncate(tree / "wnt" / "f", 1),
            "truncate ro": lambda: os.truncate(tree / "ro" / "f", 1),
            "O_TRUNC wnt": open_flags(tree / "wnt" / "f", os.O_WRONLY | os.O_TRUNC),
            "write wnt": open_flags(tree / "wnt" / "f", os.O_WRONLY),
            "ftruncate fd opened in rw": lambda: os.ftruncate(
                os.open(tree / "rw" / "t", os.O_WRONLY), 2),
            "ftruncate fd opened before": lambda: os.ftruncate(pre.fileno(), 3),
        })
    assert got == {"truncate rw": OK, "truncate wnt": errno.EACCES, "truncate ro": errno.EACCES,
                   "O_TRUNC wnt": errno.EACCES, "write wnt": OK,
                   "ftruncate fd opened in rw": OK, "ftruncate fd opened before": OK}
    assert (tree / "wnt" / "f").read_bytes() == b"data"


@pytest.fixture
def pty():
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave), slave
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("grant", [True, False], ids=["IOCTL_DEV", "no IOCTL_DEV"])
def test_device_ioctl(pty, grant):
    """IOCTL_DEV (ABI 5) governs device ioctls (TCGETS, FIONREAD) on devices opened after
    restricting; fd-level ioctls (FIOCLEX) and fds opened before stay allowed."""
    need_landlock(5)
    name, inherited = pty
    access = A.READ_FILE | A.WRITE_FILE | (A.IOCTL_DEV if grant else 0)
    policy = LandlockPolicy(rules=[LandlockRule(name, access)], runtime=False)

    def ioctl(cmd: int, arg: bytes | int = 0) -> Callable[[], None]:
        def op() -> None:
            fd = os.open(name, os.O_RDWR | os.O_NOCTTY)
            try:
                fcntl.ioctl(fd, cmd, arg)
            finally:
                os.close(fd)
        return op

    with ll.compile(policy) as compiled:
        got = child_results(compiled, {
            "TCGETS": ioctl(termios.TCGETS, bytes(64)),
            "FIONREAD": ioctl(termios.FIONREAD, bytes(4)),
            "FIOCLEX": ioctl(termios.FIOCLEX),
            "TCGETS inherited": lambda: fcntl.ioctl(inherited, termios.TCGETS, bytes(64)),
        })
    denied = OK if grant else errno.EACCES
    assert got == {"TCGETS": denied, "FIONREAD": denied, "FIOCLEX": OK, "TCGETS inherited": OK}


def test_symlinks_resolve_inside_the_rules(rs, tree):
    """Rules apply to the file a symlink resolves to, not to where the link lives."""
    assert in_child(rs, read(tree / "links" / "to_denied")) == errno.EACCES
    assert in_child(rs, read(tree / "denied" / "to_ro")) == OK


def test_rule_on_a_symlink_follows_it(tmp_path):
    need_landlock(1)
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "f").write_text("x")
    os.symlink(tmp_path / "target", tmp_path / "alias")
    policy = LandlockPolicy(rules=[LandlockRule(str(tmp_path / "alias"), A.READ_ONLY)],
                            runtime=False)
    with ll.compile(policy) as compiled:
        assert compiled.report.rules[0].kind == "directory"
        assert in_child(compiled, read(tmp_path / "target" / "f")) == OK
        assert in_child(compiled, read(tmp_path / "alias" / "f")) == OK


def test_proc_self_fd_reopen_stays_inside_the_rules(rs, tree):
    """Reopening /proc/self/fd/N is checked against the file it points to;
    the fds themselves keep the rights they were opened with."""
    denied_fd = os.open(tree / "denied" / "f", os.O_RDONLY)
    ro_fd = os.open(tree / "ro" / "f", os.O_RDONLY)
    try:
        got = child_results(rs, {
            "reopen denied": read(f"/proc/self/fd/{denied_fd}"),
            "reopen ro": read(f"/proc/self/fd/{ro_fd}"),
            "reopen denied for writing": open_flags(f"/proc/self/fd/{ro_fd}", os.O_WRONLY),
            "read inherited fd": lambda: os.pread(denied_fd, 4, 0),
        })
    finally:
        os.close(denied_fd)
        os.close(ro_fd)
    assert got == {"reopen denied": errno.EACCES, "reopen ro": OK,
                   "reopen denied for writing": errno.EACCES, "read inherited fd": OK}


# ── file versus directory rules, missing paths ──────────────────────────────


def test_directory_rights_are_masked_on_files(rs, tree):
    report = rs.report
    rule = next(r for r in report.rules if r.path.endswith("file_rule.txt"))
    assert rule.kind == "file"
    # RESOLVE_UNIX follows WRITE_FILE (ABI 9), and applies to a file (a socket) too
    assert rule.access == (A.READ_FILE | A.WRITE_FILE | A.TRUNCATE | A.RESOLVE_UNIX) & \
        ll.fs_rights_for_abi(rs.abi)
    masked = [d for d in report.dropped if d.kind == "rule"]
    assert len(masked) == 1 and masked[0].path == str(tree / "file_rule.txt")
    assert set(masked[0].name.split("|")) == {"READ_DIR", "REMOVE_DIR", "REMOVE_FILE",
                                              "MAKE_DIR", "MAKE_REG"}
    assert "not a directory" in masked[0].reason
    assert report.status == _full_here()
    got = child_results(rs, {"read": read(tree / "file_rule.txt"),
                             "write": open_flags(tree / "file_rule.txt", os.O_WRONLY),
                             "sibling": read(tree / "other.txt")})
    assert got == {"read": OK, "write": OK, "sibling": errno.EACCES}


def test_rule_with_only_directory_rights_on_a_file_is_skipped(tmp_path):
    need_landlock(1)
    (tmp_path / "f").write_text("x")
    policy = LandlockPolicy(rules=[LandlockRule(str(tmp_path / "f"), A.READ_DIR)],
                            runtime=False)
    with ll.compile(policy) as compiled:
        assert compiled.report.rules == ()
        (skip,) = compiled.report.skipped
        assert skip.path == str(tmp_path / "f") and "only directory rights" in skip.reason


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_missing_path_fails_naming_it(tmp_path):
    need_landlock(1)
    missing = str(tmp_path / "nope")
    policy = LandlockPolicy(rules=[LandlockRule(str(tmp_path), A.READ_ONLY),
                                   LandlockRule(missing, A.READ_ONLY)])
    before = _open_fds()
    with pytest.raises(PolicyError) as exc:
        ll.compile(policy)
    assert exc.value.field == "Landlock.Rules[1].Path"
    assert exc.value.value == missing and missing in str(exc.value)
    assert _open_fds() == before


@pytest.mark.parametrize("how", ["optional", "policy skip"])
def test_missing_path_skipped_when_asked(tmp_path, how):
    need_landlock(1)
    missing = str(tmp_path / "nope" / "deeper")
    rule = LandlockRule(missing, A.READ_ONLY, optional=how == "optional")
    policy = LandlockPolicy(rules=[rule], missing_paths="skip" if how == "policy skip" else "error",
                            runtime=False)
    with ll.compile(policy) as compiled:
        assert compiled.report.skipped == (ll.SkippedRule(missing, "does not exist", "policy"),)
        assert compiled.report.status == _full_here()


def _full_here() -> str:
    """A policy handles every right: "full" only where the ABI has them all (5)."""
    # RESOLVE_UNIX (ABI 9) is handled best effort: its absence does not make it partial
    have = ll.fs_rights_for_abi(ll.effective_abi()) & A.all()
    return "full" if have == A.all() else "partial"


def test_preset_rules_skip_missing_paths(tmp_path):
    need_landlock(1)
    for d in ("usr", "etc", "tmp"):
        (tmp_path / d).mkdir()
    with ll.compile(server_policy(str(tmp_path))) as compiled:
        applied = {r.path for r in compiled.report.rules if r.source == "preset"}
        skipped = {s.path for s in compiled.report.skipped if s.source == "preset"}
    assert applied == {str(tmp_path / d) for d in ("usr", "etc", "tmp")}
    assert skipped == {str(tmp_path / d) for d in
                       ("lib", "lib64", "bin", "sbin", "app", "var", "run")}


def test_other_open_errors_are_enforcement_errors(tmp_path):
    need_landlock(1)
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    with pytest.raises(ll.EnforcementError) as exc:
        ll.compile(LandlockPolicy(rules=[LandlockRule(str(loop), A.READ_FILE, optional=True)]))
    assert exc.value.errno == errno.ELOOP and exc.value.step == "open"
    assert str(loop) in str(exc.value)


# ── network ──────────────────────────────────────────────────────────────────


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def listeners():
    socks = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        socks.append(s)
    try:
        yield [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def bind(port: int, kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1",
         family: int = socket.AF_INET) -> Callable[[], None]:
    def op() -> None:
        with socket.socket(family, kind) as s:
            s.bind((host, port))
    return op


def connect(port: int) -> Callable[[], None]:
    def op() -> None:
        with socket.socket() as s:
            s.connect(("127.0.0.1", port))
    return op


def test_tcp_bind_and_connect(listeners):
    need_landlock(4)
    allowed_conn, other_conn = listeners
    allowed_bind, other_bind = _free_port(), _free_port()
    policy = LandlockPolicy(bind_tcp=[allowed_bind], connect_tcp=[allowed_conn], runtime=False)
    with ll.compile(policy) as compiled:
        assert [(p.port, p.access) for p in compiled.report.ports] == sorted(
            [(allowed_bind, ll.LandlockNetAccess.BIND_TCP),
             (allowed_conn, ll.LandlockNetAccess.CONNECT_TCP)])
        got = child_results(compiled, {
            "bind allowed": bind(allowed_bind),
            "bind other": bind(other_bind),
            "bind ephemeral": bind(0),
            "connect allowed": connect(allowed_conn),
            "connect other": connect(other_conn),
            "udp bind other": bind(other_bind, socket.SOCK_DGRAM),
        })
    assert got == {"bind allowed": OK, "bind other": errno.EACCES, "bind ephemeral": errno.EACCES,
                   "connect allowed": OK, "connect other": errno.EACCES, "udp bind other": OK}


def test_tcp_port_zero_allows_ephemeral_bind():
    need_landlock(4)
    with ll.compile(LandlockPolicy(bind_tcp=[0], runtime=False)) as compiled:
        assert in_child(compiled, bind(0)) == OK
        assert in_child(compiled, bind(_free_port())) == errno.EACCES


def test_tcp_ipv6_is_restricted_too():
    need_landlock(4)
    need("IPv6 on loopback", socket.has_ipv6 and in_child(
        None, bind(0, host="::1", family=socket.AF_INET6)) == OK, "cannot bind [::1]")
    port = _free_port()
    with ll.compile(LandlockPolicy(bind_tcp=[port], runtime=False)) as compiled:
        assert in_child(compiled, bind(port, host="::1", family=socket.AF_INET6)) == OK
        assert in_child(compiled, bind(_free_port(), host="::1",
                                       family=socket.AF_INET6)) == errno.EACCES


def test_network_mode_none_denies_tcp(listeners):
    need_landlock(4)
    config = IsolationConfig(network=NetworkConfig(mode=NetworkMode.NONE))
    with ll.compile_for(config) as compiled:
        assert compiled.report.handled_fs == 0
        assert compiled.report.handled_net == (ll.LandlockNetAccess.BIND_TCP
                                               | ll.LandlockNetAccess.CONNECT_TCP)
        got = child_results(compiled, {"bind": bind(_free_port()), "connect": connect(listeners[0]),
                                       "fs untouched": read("/etc/hostname")})
    assert got == {"bind": errno.EACCES, "connect": errno.EACCES, "fs untouched": OK}


def test_port_forwards_allow_bind_on_container_ports():
    need_landlock(4)
    fwd, udp, other = _free_port(), _free_port(), _free_port()
    net = NetworkConfig(mode=NetworkMode.PRIVATE, bridge="voltbr0", port_forwards=[
        PortForward(host_port=8080, container_port=fwd),
        PortForward(host_port=8081, container_port=udp, protocol="udp")])
    config = IsolationConfig(landlock=LandlockPolicy(bind_tcp=[], runtime=False), network=net)
    with ll.compile_for(config) as compiled:
        assert [p.port for p in compiled.report.ports] == [fwd]
        got = child_results(compiled, {"forward": bind(fwd), "udp forward": bind(udp),
                                       "other": bind(other)})
    assert got == {"forward": OK, "udp forward": errno.EACCES, "other": errno.EACCES}


# ── scopes ───────────────────────────────────────────────────────────────────


@pytest.fixture
def abstract_listener():
    name = f"\0volt-enforce-test-{os.getpid()}-{id(object())}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(name)
    s.listen(8)
    d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    d.bind(name + "-dgram")
    try:
        yield name
    finally:
        s.close()
        d.close()


def unix_connect(name: str) -> Callable[[], None]:
    def op() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(name)
    return op


def unix_sendto(name: str) -> Callable[[], None]:
    def op() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            c.sendto(b"x", name)
    return op


def connect_within_domain() -> None:
    name = f"\0volt-enforce-inner-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(name)
        s.listen(1)
        unix_connect(name)()


@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "unscoped"])
def test_abstract_unix_socket_scope(abstract_listener, scoped):
    need_landlock(6)
    policy = LandlockPolicy(scopes=["abstract_unix_socket"] if scoped else [], runtime=False)
    with ll.compile(policy) as compiled:
        got = child_results(compiled, {
            "connect outside": unix_connect(abstract_listener),
            "sendto outside": unix_sendto(abstract_listener + "-dgram"),
            "connect inside": connect_within_domain,
        })
    outside = errno.EPERM if scoped else OK
    assert got == {"connect outside": outside, "sendto outside": outside, "connect inside": OK}


@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "unscoped"])
def test_signal_scope(scoped):
    need_landlock(6)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        policy = LandlockPolicy(scopes=["signal"] if scoped else [], runtime=False)

        def signal_own_child() -> None:
            pid = os.fork()
            if pid == 0:
                time.sleep(30)  # until the signal
                os._exit(0)
            os.kill(pid, 15)
            os.waitpid(pid, 0)

        with ll.compile(policy) as compiled:
            got = child_results(compiled, {
                "outside": lambda: os.kill(sleeper.pid, 0),
                "self": lambda: os.kill(os.getpid(), 0),
                "own child": signal_own_child,
            })
    finally:
        sleeper.kill()
        sleeper.wait()
    assert got == {"outside": errno.EPERM if scoped else OK, "self": OK, "own child": OK}


# ── the compiled ruleset object ──────────────────────────────────────────────


def test_ruleset_fd_is_close_on_exec_and_survives_many_children(rs, tree):
    assert fcntl.fcntl(rs.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    for _ in range(5):
        assert in_child(rs, read(tree / "ro" / "f")) == OK
        assert in_child(rs, read(tree / "denied" / "f")) == errno.EACCES
    probe = f"test -e /proc/self/fd/{rs.fd} && exit 3; exit 0"
    assert subprocess.run(["sh", "-c", probe], close_fds=False, check=False).returncode == 0


def test_restrict_self_sets_no_new_privs_and_returns_the_report(rs, tree):
    def op() -> None:
        if lib.ve_no_new_privs() != 0:
            raise OSError(errno.EEXIST, "no_new_privs set before")
        if rs.restrict_self() is not rs.report:
            raise OSError(errno.EINVAL, "restrict_self() did not return the report")
        if lib.ve_no_new_privs() != 1:
            raise OSError(errno.EPERM, "no_new_privs not set")
        read(tree / "denied" / "f")()
    assert in_child(None, op) == errno.EACCES


def test_restrict_self_without_no_new_privs(rs, tree):
    """As root (CAP_SYS_ADMIN) Landlock can be enforced without no_new_privs."""
    def op() -> None:
        if lib.ve_no_new_privs() != 0:
            raise OSError(errno.EEXIST, "no_new_privs was set")
        read(tree / "denied" / "f")()
    assert in_child(rs, op, no_new_privs=False) == errno.EACCES


def test_close_context_and_finalizer(tree):
    need_landlock(1)
    compiled = ll.compile(matrix_policy(tree))
    fd = compiled.fd
    with compiled:
        assert not compiled.closed
    assert compiled.closed and compiled.fd == -1
    with pytest.raises(OSError):
        fcntl.fcntl(fd, fcntl.F_GETFD)
    with pytest.raises(ValueError, match="closed"):
        compiled.restrict_self()
    compiled.close()

    dropped = ll.compile(matrix_policy(tree))
    fd = dropped.fd
    del dropped
    gc.collect()
    with pytest.raises(OSError):
        fcntl.fcntl(fd, fcntl.F_GETFD)


def test_nothing_requested_enforces_nothing(tree):
    compiled = ll.compile(None)
    assert compiled.fd == -1 and compiled.report.status == "none"
    assert in_child(compiled, open_flags(tree / "denied" / "f", os.O_RDWR)) == OK
    assert ll.compile_for(IsolationConfig()) is None
    assert ll.compile_for(IsolationConfig(network=NetworkConfig(mode=NetworkMode.HOST))) is None


def test_report_is_json(rs, tree):
    doc = json.loads(json.dumps(rs.report.to_dict()))
    assert doc["status"] == _full_here()
    assert doc["abi"] == rs.abi == ll.effective_abi()
    assert doc["handled_fs"] == [n.lower() for n in ll._names(A, int(rs.report.handled_fs))]
    assert {"path": str(tree / "ro"), "access": ["execute", "read_file", "read_dir"],
            "kind": "directory", "source": "policy"} in doc["rules"]
    assert {"path": str(tree / "file_rule.txt"), "kind": "rule", "weakens": False}.items() \
        <= next(d for d in doc["dropped"] if d.get("path")).items()
    assert rs.report.format().startswith(f"landlock {_full_here()} (ABI {rs.abi}")


# ── ReadOnlyFS ───────────────────────────────────────────────────────────────


def test_read_only_without_policy_handles_only_writes(tree):
    need_landlock(3)
    with ll.compile_for(IsolationConfig(read_only_fs=True)) as compiled:
        assert compiled.report.handled_fs == ll.WRITE_RIGHTS & ll.fs_rights_for_abi(compiled.abi)
        got = child_results(compiled, {
            "read anywhere": read(tree / "denied" / "f"),
            "write file": open_flags(tree / "rw" / "f", os.O_WRONLY),
            "create": open_flags(tree / "rw" / "new", os.O_CREAT | os.O_WRONLY),
            "mkdir": lambda: os.mkdir(tree / "rw" / "d"),
            "unlink": lambda: os.unlink(tree / "rw" / "f"),
            "truncate": lambda: os.truncate(tree / "rw" / "f", 0),
            "write /dev/null": open_flags("/dev/null", os.O_WRONLY),
        })
    assert got == {"read anywhere": OK, "write file": errno.EACCES, "create": errno.EACCES,
                   "mkdir": errno.EACCES, "unlink": errno.EACCES, "truncate": errno.EACCES,
                   "write /dev/null": OK}


def test_read_only_with_policy_removes_write_rights(tree):
    need_landlock(1)
    with ll.compile(matrix_policy(tree, runtime=True), read_only=True) as compiled:
        for rule in compiled.report.rules:
            if rule.source != "runtime":
                assert not rule.access & ll.WRITE_RIGHTS, rule
        got = child_results(compiled, {
            "read ro": read(tree / "ro" / "f"),
            "write rw": open_flags(tree / "rw" / "f", os.O_WRONLY),
            "mkdir rw": lambda: os.mkdir(tree / "rw" / "d"),
            "write /dev/null": open_flags("/dev/null", os.O_WRONLY),
        })
    assert got == {"read ro": OK, "write rw": errno.EACCES, "mkdir rw": errno.EACCES,
                   "write /dev/null": OK}


def test_compile_a_policy_of_the_model(tree):
    """volt_enforce.landlock.compile builds a model policy; the model itself has no
    compile method (it imports nothing above it)."""
    need_landlock(2)
    assert not hasattr(matrix_policy(tree), "compile")
    with ll.compile(matrix_policy(tree), abi=2) as compiled:
        assert isinstance(compiled, ll.CompiledRuleset) and compiled.abi == 2
        assert compiled.report.handled_fs == ll.fs_rights_for_abi(2)
        assert in_child(compiled, read(tree / "denied" / "f")) == errno.EACCES
