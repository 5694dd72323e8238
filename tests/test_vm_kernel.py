"""The kernel matrix's other kernels (Debian's 6.1, 7.2, 7.3), booted in a VM by .ci/kernel-matrix.

What the host (Linux 6.18, Landlock ABI 7, hybrid cgroups with no v2 controllers)
cannot show: cgroup v2 limits on a pure v2 host, written from the model's
ResourceLimits and enforced on a child placed by clone3(CLONE_INTO_CGROUP); and the
library on an older Landlock ABI and an older syscall table, for real. Every test
is marked ``kernel_matrix``: outside the VM (VOLT_ENFORCE_VM_KERNEL unset)
tests/vm/matrix.py deselects them. Children are forked or are small programs
(sh, dd, cat): a Python start costs seconds under the VM's emulation.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import re
import shutil
import signal
import socket
import stat
import time
from collections.abc import Callable
from typing import Any

import pytest
from forked import json_reply
from kernelreq import (
    need_cgroup2,
    need_cgroup_v2_controller,
    need_landlock,
    need_seccomp,
    vm_features,
)

import volt_enforce
from volt_enforce import (
    Compatibility,
    CompatibilityError,
    IsolationConfig,
    LandlockAccess as A,
    LandlockPolicy,
    LandlockRule,
    LandlockScope,
    NetworkConfig,
    NetworkMode,
    ResourceLimits,
    Sandbox,
    SeccompProfile,
    child as spawn,
    landlock,
    run,
    seccomp,
)
from volt_enforce._core import lib
from volt_enforce.cgroups import SUBTREE, Cgroup
from volt_enforce.seccomp import bpf
from volt_enforce.seccomp.tables import ARCHES, native_arch

pytestmark = pytest.mark.kernel_matrix

CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")
MIB = 1 << 20


def _release() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", platform.release())  # 6.1.0-50-amd64, 7.3-amd64
    assert m, platform.release()
    return int(m.group(1)), int(m.group(2))


def _in_child(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a forked child, which may restrict itself freely; its JSON result
    comes back through a pipe. A child that raised fails the test with its traceback."""
    status, out = json_reply(fn)
    assert "ok" in out and os.waitstatus_to_exitcode(status) == 0, out.get("raised", status)
    return out["ok"]


def _err(op: Callable[..., Any], *args: Any) -> int:
    """0 when ``op(*args)`` succeeds, else its errno; an fd it returns is closed."""
    try:
        res = op(*args)
    except OSError as exc:
        return exc.errno or -1
    if isinstance(res, int) and op is os.open:
        os.close(res)
    elif isinstance(res, socket.socket):
        res.close()
    return 0


@pytest.fixture
def v2_controllers():
    need_cgroup2()
    for ctrl in CONTROLLERS:
        need_cgroup_v2_controller(ctrl)


def _limits(**kw: Any) -> IsolationConfig:
    return IsolationConfig(resources=ResourceLimits(**kw))


# ---- the kernel is what the matrix says it is -------------------------------------------


def test_probe_sees_pure_cgroup2_with_every_controller(v2_controllers):
    layout = volt_enforce.probe().cgroups
    assert layout.kind == "v2"
    assert layout.v1 == ()
    assert set(CONTROLLERS) <= set(layout.v2.controllers)


def test_probe_sees_landlock_seccomp_and_namespaces_of_an_older_kernel():
    need_landlock(1)
    need_seccomp()
    p = volt_enforce.probe()
    row = vm_features(p.kernel)
    assert row is not None, f"not one of the matrix's kernels ({p.kernel})"
    assert p.kernel == platform.release()
    # the ABI the release implies (Landlock ABI versions came with these releases), at
    # least the ABI the matrix requires of it (7.3-rc7: 10, perhaps 11)
    implied = max(abi for abi, linux in landlock.ABI_LINUX.items()
                  if tuple(map(int, linux.split("."))) <= _release())
    required = max(int(f.rsplit(" ", 1)[1]) for f in row if f.startswith("landlock ABI "))
    assert p.landlock_abi == landlock.kernel_abi()
    assert required <= p.landlock_abi <= max(implied, required)
    assert p.seccomp and {"kill_process", "user_notif", "log", "errno"} <= set(p.seccomp_actions)
    assert p.user_namespaces and p.network_namespaces


# ---- cgroup v2 limits for real, from the model's ResourceLimits ------------------------


def test_memory_max_kills_and_the_statistics_count_the_oom_kill(v2_controllers):
    # dd's buffer is one block: bs= is how much memory it touches
    big = run(["dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"],
              isolation=_limits(memory_hard="32M"), capture_output=True)
    assert big.report.cgroup["written"]["memory.max"] == str(32 * MIB)
    assert big.returncode == -signal.SIGKILL, big.stderr
    assert big.stats.oom_kills >= 1
    assert big.stats.memory_peak <= 32 * MIB
    small = run(["dd", "if=/dev/zero", "of=/dev/null", "bs=8M", "count=1"],
                isolation=_limits(memory_hard="32M"), capture_output=True)
    assert small.returncode == 0, small.stderr
    assert small.stats.oom_kills == 0
    assert 8 * MIB <= small.stats.memory_peak <= 32 * MIB


def test_pids_max_stops_forks_at_the_limit(v2_controllers):
    # the contained child's init (PID 1 of its namespace) and the shell count as two:
    # three sleeps fit under pids.max 5, the fourth fork fails
    r = run(["sh", "-c", "n=0; for i in 1 2 3 4 5 6; do sleep 1 & n=$((n+1)); echo $n; done"],
            isolation=_limits(pids_max=5), capture_output=True, text=True)
    assert r.report.cgroup["written"]["pids.max"] == "5"
    assert r.stdout.split() == ["1", "2", "3"], r.stderr
    assert r.returncode != 0 and "fork" in r.stderr.lower()


def test_cpu_max_throttles_a_busy_loop(v2_controllers):
    busy = ["timeout", "1", "sh", "-c", "while :; do :; done"]
    free = run(busy, isolation=_limits(pids_max=16))
    capped = run(busy, isolation=_limits(pids_max=16, cpu_quota="10%"))
    assert capped.report.cgroup["written"]["cpu.max"] == "10000 100000"
    assert "cpu.max" not in free.report.cgroup["written"]
    assert capped.stats.cpu_throttled_usec > 0
    # a tenth of a second of CPU per second against what the loop takes when free
    assert capped.stats.cpu_usec * 2 < free.stats.cpu_usec, (capped.stats, free.stats)


def test_io_weight_is_written(v2_controllers):
    with Sandbox(_limits(io_weight=500)) as sb:
        path = sb.cgroup.path
        written = sb.report.cgroup["written"]
        assert written == {"io.weight": "default 500"}  # the I/O cost model's weight (iocost)
        (name, value), = written.items()
        with open(os.path.join(path, name)) as f:
            assert f.readline().split() == value.split()


def test_statistics_after_a_run(v2_controllers):
    r = run(["sh", "-c", "dd if=/dev/zero of=/dev/null bs=8M count=1 2>/dev/null; "
                         "sleep 0 & sleep 0 & wait"],
            isolation=_limits(memory_hard="128M", pids_max=16))
    assert r.returncode == 0
    s = r.stats
    assert s.memory_peak >= 8 * MIB
    assert s.cpu_usec > 0 and s.cpu_user_usec is not None and s.cpu_system_usec is not None
    assert s.pids_current == 0
    assert s.oom_kills == 0


def test_cgroup_kill_and_removal_leave_nothing(v2_controllers):
    sb = Sandbox(_limits(pids_max=32))
    path = sb.cgroup.path
    assert os.path.exists(os.path.join(path, "cgroup.kill"))  # 5.14: an atomic kill
    p = sb.popen(["sh", "-c", "sleep 60 & sleep 60 & sleep 60 & wait"])
    deadline = time.monotonic() + 30
    # the init, the shell and three sleeps
    while len(sb.cgroup.pids()) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sb.cgroup.pids()) == 5
    sb.close()
    assert p.wait(timeout=30) == -signal.SIGKILL
    assert not os.path.exists(path)


def test_clone_into_cgroup_places_the_child_under_its_limits(v2_controllers):
    assert spawn.clone3_supported()  # 5.7 has CLONE_INTO_CGROUP
    with Cgroup.create(ResourceLimits(pids_max=1, memory_hard="64M")) as cg:
        rel = "/" + os.path.relpath(cg.path, volt_enforce.probe().cgroups.v2.path)
        for argv, expect in ((["cat", "/proc/self/cgroup"], f"0::{rel}\n"),
                             # pids.max 1 holds from the first instruction: no fork at all
                             (["sh", "-c", "sleep 0 & wait; echo forked"], "")):
            r, w = os.pipe()
            try:
                # no cgroup.procs fd: only clone3 can have put the child there
                pid = spawn.spawn(argv, stdout=w, stderr=w, cgroup_fd=cg.clone_fd,
                                  cgroup_procs_fd=-1)
            finally:
                os.close(w)
            with os.fdopen(r) as f:
                out = f.read()
            os.waitpid(pid, 0)
            if expect:
                assert out == expect
            else:
                assert "forked" not in out and "fork" in out.lower(), out
        with open(os.path.join(cg.path, "memory.max")) as f:
            assert f.read() == f"{64 * MIB}\n"


# ---- Landlock on an older ABI -----------------------------------------------------------

#: Features newer than ABI 2 that a policy can ask for: name -> the ABI that has them.
FEATURE_ABI = {"TRUNCATE": 3, "BIND_TCP": 4, "CONNECT_TCP": 4, "IOCTL_DEV": 5,
               "ABSTRACT_UNIX_SOCKET": 6, "SIGNAL": 6}


@pytest.fixture
def abi():
    """The kernel's Landlock ABI (2 on Debian's 6.1, 10 on 7.2); the tests follow it:
    where the kernel has every feature of FEATURE_ABI nothing is dropped."""
    need_landlock(2)
    return landlock.kernel_abi()


def _lacking(abi: int, among: tuple[str, ...] = tuple(FEATURE_ABI)) -> dict[str, int]:
    return {n: a for n, a in FEATURE_ABI.items() if a > abi and n in among}


@pytest.fixture
def tree(tmp_path):
    """ro/ (read only), rw/ and rw2/ (read-write, no REFER), refer/ and refer2/
    (read-write with REFER), outside/ (no rule); a file f in each, and in ro/ an
    empty directory and a copy of /bin/true."""
    d = {}
    for name in ("ro", "rw", "rw2", "refer", "refer2", "outside"):
        d[name] = tmp_path / name
        d[name].mkdir()
        (d[name] / "f").write_text(name)
    (d["ro"] / "empty").mkdir()
    shutil.copy2("/bin/true", d["ro"] / "true")
    return {k: str(v) for k, v in d.items()}


def _everything(tree: dict[str, str], compatibility: Compatibility) -> LandlockPolicy:
    """A policy asking for every feature of ABI 7 over the tree."""
    rules = [LandlockRule(tree["ro"], A.READ_ONLY),
             LandlockRule(tree["rw"], A.READ_WRITE | A.IOCTL_DEV),
             LandlockRule(tree["rw2"], A.READ_WRITE),
             LandlockRule(tree["refer"], A.READ_WRITE | A.REFER),
             LandlockRule(tree["refer2"], A.READ_WRITE | A.REFER)]
    # executing needs the loader and libc, outside the tree
    rules += [LandlockRule(p, A.READ_EXEC, optional=True) for p in ("/usr", "/lib", "/lib64")]
    return LandlockPolicy(rules=rules, bind_tcp=[8080], connect_tcp=[443],
                          scopes=LandlockScope.ABSTRACT_UNIX_SOCKET | LandlockScope.SIGNAL,
                          compatibility=compatibility)


def _dropped(report: Any) -> dict[str, Any]:
    # RESOLVE_UNIX, added at enforcement, has tests of its own (test_vm_landlock_abi8plus)
    return {d.name: d for d in report.dropped
            if d.kind in ("fs", "net", "scope") and d.name in FEATURE_ABI}


def test_best_effort_drops_what_the_abi_lacks_and_says_so(abi, tree):
    with landlock.compile(_everything(tree, Compatibility.BEST_EFFORT)) as rs:
        rep = rs.report
        assert rs.fd >= 0
        lacking = _lacking(abi)
        assert rep.status == ("partial" if lacking else "full")
        assert rep.abi == rep.kernel_abi == abi
        lacking = _lacking(abi)
        dropped = _dropped(rep)
        assert set(dropped) == set(lacking)
        for name, need in lacking.items():
            assert dropped[name].abi == need and dropped[name].weakens
            assert f"{name} needs ABI {need}, kernel has {abi}" in dropped[name].reason
        # the port rules go with the TCP rights, and the report names each
        ports = {(d.name, d.port) for d in rep.dropped if d.kind == "port"}
        assert ports == ({("BIND_TCP", 8080), ("CONNECT_TCP", 443)} if "BIND_TCP" in lacking
                         else set())
        assert rep.handled_fs == landlock.fs_rights_for_abi(abi)
        assert bool(rep.handled_net) == ("BIND_TCP" not in lacking)
        assert bool(rep.scopes) == ("SIGNAL" not in lacking)
        as_json = json.loads(json.dumps(rep.to_dict()))
        assert {d["name"] for d in as_json["dropped"]} >= set(lacking)
        text = rep.format()
        assert text.startswith(f"landlock {rep.status}")
        assert all(dropped[name].reason in text for name in lacking)


def test_what_was_dropped_is_really_not_enforced(abi, tree):
    with landlock.compile(_everything(tree, Compatibility.BEST_EFFORT)) as rs:
        listener = socket.create_server(("127.0.0.1", 0))
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(b"\0volt-kernel-matrix-%d" % os.getpid())
        unix.listen()
        port, parent = listener.getsockname()[1], os.getpid()

        def child():
            rs.restrict_self()
            return {
                # a plain connect: create_connection's getaddrinfo reads /etc, denied here
                "connect_tcp": _err(lambda: socket.socket().connect(("127.0.0.1", port))),
                "abstract_unix": _err(lambda: socket.socket(socket.AF_UNIX).connect(
                    b"\0volt-kernel-matrix-%d" % parent)),
                "signal": _err(os.kill, parent, 0),
                "truncate_read_only_file": _err(os.truncate, os.path.join(tree["ro"], "f"), 0),
            }

        try:
            got = _in_child(child)
        finally:
            listener.close()
            unix.close()
    # what the report says was dropped is allowed; what it kept is denied
    lacking = _lacking(abi)
    denied = {"connect_tcp": ("CONNECT_TCP", errno.EACCES),
              "abstract_unix": ("ABSTRACT_UNIX_SOCKET", errno.EPERM),
              "signal": ("SIGNAL", errno.EPERM),
              "truncate_read_only_file": ("TRUNCATE", errno.EACCES)}
    assert got == {k: 0 if name in lacking else err for k, (name, err) in denied.items()}


def test_everything_the_abi_offers_is_still_denied(abi, tree):
    with landlock.compile(_everything(tree, Compatibility.BEST_EFFORT)) as rs:
        def child():
            rs.restrict_self()
            ro, out = tree["ro"], tree["outside"]

            def execute(path: str) -> int:
                pid = os.fork()
                if pid == 0:
                    try:
                        os.execv(path, [path])
                    except OSError as exc:
                        os._exit(exc.errno or 1)
                return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

            def sock(path: str) -> None:
                with socket.socket(socket.AF_UNIX) as s:
                    s.bind(path)

            return {
                "read ro": _err(os.open, os.path.join(ro, "f"), os.O_RDONLY),
                "execute /usr/bin/true": execute("/usr/bin/true"),
                "rename within rw": _err(os.rename, os.path.join(tree["rw"], "f"),
                                         os.path.join(tree["rw"], "g")),
                "rename refer to refer2": _err(os.rename, os.path.join(tree["refer"], "f"),
                                               os.path.join(tree["refer2"], "moved")),
                # denied, one right each (ABI 1), and REFER (ABI 2)
                "read outside": _err(os.open, os.path.join(out, "f"), os.O_RDONLY),
                "list outside": _err(os.listdir, out),
                "execute ro": execute(os.path.join(ro, "true")),
                "write ro": _err(os.open, os.path.join(ro, "f"), os.O_WRONLY),
                "create ro": _err(os.open, os.path.join(ro, "new"), os.O_CREAT | os.O_WRONLY),
                "mkdir ro": _err(os.mkdir, os.path.join(ro, "d")),
                "unlink ro": _err(os.unlink, os.path.join(ro, "f")),
                "rmdir ro": _err(os.rmdir, os.path.join(ro, "empty")),
                "symlink ro": _err(os.symlink, "f", os.path.join(ro, "l")),
                "mkfifo ro": _err(os.mkfifo, os.path.join(ro, "p")),
                "mknod char ro": _err(os.mknod, os.path.join(ro, "c"), stat.S_IFCHR | 0o600,
                                      os.makedev(1, 3)),
                "bind socket ro": _err(sock, os.path.join(ro, "s")),
                "rename rw to rw2": _err(os.rename, os.path.join(tree["rw"], "g"),
                                         os.path.join(tree["rw2"], "moved")),
                "link rw to rw2": _err(os.link, os.path.join(tree["rw2"], "f"),
                                       os.path.join(tree["rw"], "linked")),
            }

        got = _in_child(child)
    assert got == {
        "read ro": 0, "execute /usr/bin/true": 0, "rename within rw": 0,
        "rename refer to refer2": 0,
        "read outside": errno.EACCES, "list outside": errno.EACCES,
        "execute ro": errno.EACCES, "write ro": errno.EACCES, "create ro": errno.EACCES,
        "mkdir ro": errno.EACCES, "unlink ro": errno.EACCES, "rmdir ro": errno.EACCES,
        "symlink ro": errno.EACCES, "mkfifo ro": errno.EACCES,
        "mknod char ro": errno.EACCES, "bind socket ro": errno.EACCES,
        # Landlock answers a move between directories without REFER with EXDEV
        "rename rw to rw2": errno.EXDEV, "link rw to rw2": errno.EXDEV,
    }


@pytest.mark.parametrize("level", [Compatibility.SOFT_REQUIREMENT,
                                   Compatibility.HARD_REQUIREMENT])
def test_requirements_fail_naming_the_missing_feature(abi, tree, level):
    if not _lacking(abi):  # the kernel has them all: the requirement is met
        with landlock.compile(_everything(tree, level)) as rs:
            assert rs.report.status == "full"
        return
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(CompatibilityError) as ei:
        landlock.compile(_everything(tree, level))
    err = ei.value
    # the oldest feature the kernel lacks comes first, the others follow
    oldest = min((a, n) for n, a in _lacking(abi).items())
    assert err.feature == oldest[1]
    assert f"{oldest[1]} needs ABI {oldest[0]}, kernel has {abi}" in str(err)
    assert f"Linux {landlock.ABI_LINUX[oldest[0]]}" in str(err)
    for name, need in _lacking(abi).items():
        assert f"{name} needs ABI {need}" in str(err)
    assert len(os.listdir("/proc/self/fd")) == fds  # nothing leaked
    # through a Sandbox: refused before anything is made, cgroup included
    before = _our_cgroups()
    with pytest.raises(CompatibilityError):
        Sandbox(IsolationConfig(landlock=_everything(tree, level),
                                resources=ResourceLimits(pids_max=8)))
    assert _our_cgroups() == before
    assert len(os.listdir("/proc/self/fd")) == fds


def _our_cgroups() -> list[str]:
    v2 = volt_enforce.probe().cgroups.v2
    top = os.path.join(v2.path, SUBTREE) if v2 is not None else ""
    return sorted(os.listdir(top)) if os.path.isdir(top) else []


def test_any_policy_is_partial_where_handled_rights_are_missing(abi, tree):
    # a policy handles every right the library knows: on ABI 2 TRUNCATE and IOCTL_DEV
    # are not handled, and the report says so even when no rule grants them
    pol = LandlockPolicy(rules=[LandlockRule(tree["ro"], A.READ_ONLY)])
    missing = _lacking(abi, ("TRUNCATE", "IOCTL_DEV"))
    with landlock.compile(pol) as rs:
        assert rs.report.status == ("partial" if missing else "full")
        assert set(_dropped(rs.report)) == set(missing)


# ---- seccomp on an older kernel ---------------------------------------------------------

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
NR = ARCHES[native_arch()].syscalls


def _sys(nr: int) -> int:
    """The raw syscall ``nr`` with zero arguments: its result, or -errno."""
    ctypes.set_errno(0)
    r = LIBC.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(0)] * 6)
    return -ctypes.get_errno() if r == -1 else r


def _newer_than_6_1() -> dict[str, int]:
    # x86_64 and the generic table number syscalls in order: 6.1's last came with 5.17
    last = NR["set_mempolicy_home_node"]
    return {n: nr for n, nr in NR.items() if nr > last}


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_seccomp_answers_syscalls_newer_than_the_kernel_as_the_simulator_says(profile):
    need_seccomp()
    if _release() >= (6, 5):
        pytest.skip(f"needs a kernel older than cachestat (6.5), this is {platform.release()}")
    newer = _newer_than_6_1()
    assert newer, "the syscall table stops at 6.1"
    # the control: this kernel has none of them (cachestat, the first, came with 6.5)
    assert _release() < (6, 5), "name the newer kernel's last syscall in _newer_than_6_1"
    assert _in_child(lambda: {n: _sys(nr) for n, nr in newer.items()}) == {
        n: -errno.ENOSYS for n in newer}
    filt = seccomp.compile(profile)
    audit = ARCHES[native_arch()].audit_arch
    expect = {}
    for name, nr in newer.items():
        ret = bpf.run(filt.program, bpf.SeccompData(nr=nr, arch=audit))
        action = ret & lib.SECCOMP_RET_ACTION_FULL
        assert action in (lib.SECCOMP_RET_ALLOW, lib.SECCOMP_RET_ERRNO), (name, hex(ret))
        # allowed: the kernel's own ENOSYS, so libc falls back; denied: the profile's errno
        expect[name] = (-errno.ENOSYS if action == lib.SECCOMP_RET_ALLOW
                        else -(ret & lib.SECCOMP_RET_DATA))

    def child():
        filt.load()
        return {n: _sys(nr) for n, nr in newer.items()}

    assert _in_child(child) == expect


# ---- volt_enforce.run, end to end --------------------------------------------------------


def test_run_end_to_end_on_the_older_kernel(v2_controllers, abi, tmp_path):
    need_seccomp()
    work = tmp_path / "work"
    work.mkdir()
    pol = volt_enforce.server_policy("/")
    pol.rules.append(LandlockRule(str(work), A.READ_WRITE))
    cfg = IsolationConfig(
        landlock=pol,
        seccomp=SeccompProfile.DEFAULT,
        resources=ResourceLimits(memory_hard="64M", pids_max=16, cpu_quota="50%"),
        network=NetworkConfig(mode=NetworkMode.NONE),
    )
    script = (f"echo hi > {work}/f && cat {work}/f; "
              "touch /etc/volt-denied 2>/dev/null; echo touch=$?; "
              "cat /proc/self/cgroup; "
              "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; "
              "dd if=/dev/zero of=/dev/null bs=128M count=1 2>/dev/null; echo dd=$?")
    r = run(["sh", "-c", script], isolation=cfg, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    cg = "/" + os.path.relpath(r.report.cgroup["paths"]["cgroup2"],
                               volt_enforce.probe().cgroups.v2.path)
    assert lines == ["hi", "touch=1", f"0::{cg}", "lo", "dd=137"], r.stdout
    rep = r.report
    # network none denies TCP through Landlock too, where the ABI has it
    assert rep.landlock.abi == abi
    missing = _lacking(abi, ("TRUNCATE", "IOCTL_DEV", "BIND_TCP", "CONNECT_TCP"))
    assert set(_dropped(rep.landlock)) == set(missing)
    assert rep.to_dict()["landlock"]["status"] == rep.landlock.status == (
        "partial" if missing else "full")
    assert rep.seccomp["profile"] == "default"
    assert "network" in rep.namespaces
    assert rep.cgroup["written"] == {"memory.max": str(64 * MIB), "pids.max": "16",
                                     "cpu.max": "50000 100000"}
    assert r.stats.oom_kills == 1 and r.stats.memory_peak <= 64 * MIB
