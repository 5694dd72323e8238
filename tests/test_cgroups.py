"""Cgroup against the real kernel: limits enforced on children, statistics,
placement, removal with processes inside, errors, and nothing left behind."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

import pytest
from kernelreq import need_cgroup2, need_cgroup_v1, need_cgroup_v2_controller

from volt_enforce import CompatibilityError, EnforcementError, PolicyError, ResourceLimits, cgroups
from volt_enforce.cgroups import SUBTREE, V2, Cgroup, CgroupLayout, detect

MiB = 1 << 20


# ── helpers ──────────────────────────────────────────────────────────────────


def join(cg: Cgroup) -> None:
    """In a forked child: join every cgroup of ``cg`` through its fds, as the spawn path does."""
    if cg.v2_procs_fd >= 0:
        os.write(cg.v2_procs_fd, b"0")
    for fd in cg.procs_fds:
        os.write(fd, b"0")


def fork_in(cg: Cgroup | None, body: Callable[[int], int]) -> tuple[int, int]:
    """Fork a child that joins ``cg`` and returns ``body(write_fd)`` as its exit code.
    Returns (pid, read end of the child's pipe)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.close(r)
            if cg is not None:
                join(cg)
            code = body(w)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks)


def run_in(cg: Cgroup | None, body: Callable[[int], int]) -> tuple[int, bytes]:
    """Run ``body`` in a child inside ``cg``; (wait status, what it wrote to its pipe)."""
    pid, r = fork_in(cg, body)
    data = read_all(r)
    _, status = os.waitpid(pid, 0)
    return status, data


def exit_code(status: int) -> int | str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return os.WEXITSTATUS(status)


def v1_only(layout: CgroupLayout | None = None) -> CgroupLayout:
    """This host's layout without cgroup2: how a pure v1 host looks to Cgroup."""
    layout = layout or detect()
    return CgroupLayout("v1", None, layout.v1)


def mounts(layout: CgroupLayout) -> list:
    return ([layout.v2] if layout.v2 else []) + list(layout.v1)


def volt_dirs() -> set[str]:
    """Every cgroup directory named ``volt`` or ``volt-*``, in every hierarchy."""
    out = set()
    for m in mounts(detect()):
        for dirpath, dirnames, _ in os.walk(m.path):
            out.update(os.path.join(dirpath, d) for d in dirnames
                       if d == SUBTREE or d.startswith(SUBTREE + "-"))
    return out


def read_line(r: int) -> bytes:
    """One newline-terminated line from the pipe ``r``, which is then closed."""
    line = b""
    while not line.endswith(b"\n"):
        line += os.read(r, 100)
    os.close(r)
    return line


def open_fds() -> set[int]:
    return {int(x) for x in os.listdir("/proc/self/fd")}


@pytest.fixture(scope="session", autouse=True)
def nothing_left_after_the_session():
    """After the whole session, no cgroup directory of ours remains anywhere."""
    before = volt_dirs()
    yield
    left = volt_dirs() - before
    assert not left, f"cgroups left behind: {sorted(left)}"


@pytest.fixture(autouse=True)
def nothing_left_after_each_test(monkeypatch):
    """The cgroups each test's Cgroup objects made (and their volt subtrees, when
    this test made them) are gone afterwards, and no fd is left open."""
    touched: list[str] = []
    real_mkdir, real_subtree = Cgroup._mkdir, Cgroup._make_subtree

    def mkdir(self, parent_dir, name, *a):  # type: ignore[no-untyped-def]
        touched.append(os.path.join(parent_dir, name))
        return real_mkdir(self, parent_dir, name, *a)

    def subtree(self, d, *a):  # type: ignore[no-untyped-def]
        if not os.path.exists(d):
            touched.append(d)
        return real_subtree(self, d, *a)

    monkeypatch.setattr(Cgroup, "_mkdir", mkdir)
    monkeypatch.setattr(Cgroup, "_make_subtree", subtree)
    fds = open_fds()
    yield
    # a subtree may stay only while another process's cgroup lives in it
    left = sorted(d for d in set(touched) if os.path.isdir(d) and (
        os.path.basename(d) != SUBTREE or not any(e.is_dir() for e in os.scandir(d))))
    assert not left, f"cgroups left behind: {left}"
    leaked = open_fds() - fds
    assert not leaked, f"fds leaked: {[os.readlink(f'/proc/self/fd/{fd}') for fd in leaked if os.path.exists(f'/proc/self/fd/{fd}')]}"


def need_controller(layout: CgroupLayout, ctrl: str) -> None:
    """Skip unless some hierarchy has ``ctrl`` (cgroup2 or v1)."""
    if layout.controller_version(ctrl) != 2:
        need_cgroup_v1(ctrl)


def dir_of(cg: Cgroup, layout: CgroupLayout, ctrl: str) -> str:
    """The directory of ``cg`` that holds the files of ``ctrl``."""
    if layout.controller_version(ctrl) == 2:
        return cg.paths[V2]
    return cg.paths[",".join(layout.v1_mount(ctrl).controllers)]


@pytest.fixture
def host():
    layout = detect()
    if layout.kind == "none":
        need_cgroup_v1("memory")
    return layout


# ── layout and placement ───────────────────────────────────────────────────


def test_hybrid_host_gets_one_cgroup_per_hierarchy_below_the_current_one(host):
    need_cgroup2()
    need_cgroup_v1("pids")
    need_cgroup_v1("memory")
    with Cgroup.create(ResourceLimits(pids_max=50, memory_hard="256M")) as cg:
        assert cg.path == cg.paths[V2]
        assert set(cg.paths) >= {V2, "pids", "memory"}
        name = os.path.basename(cg.path)
        assert name.startswith("volt-") and len(name) == len("volt-") + 12
        for key, d in cg.paths.items():
            m = host.v2 if key == V2 else next(m for m in host.v1 if ",".join(m.controllers) == key)
            assert d == os.path.join(m.current_path, SUBTREE, name), key
            assert os.path.isdir(d)
        assert cg.report["written"] == {"pids.max": "50", "memory.limit_in_bytes": str(256 * MiB)}
        assert cg.report["skipped"] == {}
        assert os.path.samestat(os.fstat(cg.clone_fd), os.stat(cg.path))
        assert [os.path.samestat(os.fstat(fd), os.stat(p))
                for fd, p in zip(cg.procs_fds, cg.procs_paths)] == [True] * len(cg.procs_fds)
        assert len(cg.procs_fds) == len(cg.paths) - 1
        assert all(os.get_inheritable(fd) is False for fd in (cg.clone_fd, cg.v2_procs_fd, *cg.procs_fds))
        assert os.path.join(cg.path, "cgroup.procs") not in cg.procs_paths
    assert cg.closed and cg.clone_fd == -1 and cg.procs_fds == ()
    assert not any(os.path.exists(d) for d in cg.paths.values())
    cg.close()  # idempotent


def test_a_child_joins_every_cgroup_through_the_fds(host):
    need_controller(host, "pids")
    with Cgroup.create(ResourceLimits(pids_max=20)) as cg:
        def body(w: int) -> int:
            os.write(w, open("/proc/self/cgroup", "rb").read())
            return 0

        status, data = run_in(cg, body)
        assert exit_code(status) == 0
        lines = dict(line.split(":", 2)[1:] for line in data.decode().splitlines())
        for key, d in cg.paths.items():
            m = host.v2 if key == V2 else next(m for m in host.v1 if ",".join(m.controllers) == key)
            rel = "/" + os.path.relpath(d, m.path)
            assert lines["" if key == V2 else key] == rel, key


def test_pure_v1_layout_uses_the_v1_hierarchies_and_the_freezer(host):
    need_cgroup_v1("freezer")
    need_cgroup_v1("cpuacct")
    with Cgroup.create(ResourceLimits(pids_max=20), layout=v1_only(host)) as cg:
        assert V2 not in cg.paths and cg.clone_fd == -1 and cg.v2_procs_fd == -1
        assert {"freezer", "cpuacct", "pids", "memory"} <= set(cg.paths)
        assert cg.path == cg.paths["memory"]

        def body(w: int) -> int:
            t = time.process_time()
            while time.process_time() - t < 0.05:
                pass
            return 0

        assert exit_code(run_in(cg, body)[0]) == 0
        assert cg.stats().cpu_usec >= 40_000  # from cpuacct.usage without cgroup2


def test_statistics_false_joins_only_what_limits_need(host):
    need_cgroup2()
    need_controller(host, "pids")
    with Cgroup.create(ResourceLimits(pids_max=5), statistics=False) as cg:
        assert set(cg.paths) == {V2} | ({"pids"} if host.controller_version("pids") == 1 else set())
    with Cgroup.create(ResourceLimits(), statistics=False) as cg:
        assert set(cg.paths) == {V2} and cg.procs_fds == ()


def test_name_and_explicit_parent(host):
    need_controller(host, "pids")
    if host.kind == "v2":
        lay, key, mount = host, V2, host.v2
    else:
        # only the pids hierarchy, whose root every host has: "/" is a parent that exists
        lay = CgroupLayout("v1", None, (host.v1_mount("pids"),))
        key, mount = ",".join(host.v1_mount("pids").controllers), host.v1_mount("pids")
    with Cgroup.create(ResourceLimits(pids_max=3), parent="/", name="volt-explicit", layout=lay) as cg:
        assert cg.paths == {key: os.path.join(mount.path, "volt-explicit")}
        # the same parent as a directory of a cgroup mount
        with Cgroup.create(ResourceLimits(pids_max=2), parent=cg.paths[key], name="volt-inner",
                           layout=lay) as inner:
            assert inner.paths == {key: os.path.join(cg.paths[key], "volt-inner")}
            assert inner.report["written"] == {"pids.max": "2"}
        # a second cgroup of the same name fails and leaves the first alone
        with pytest.raises(EnforcementError) as ei:
            Cgroup.create(ResourceLimits(), parent="/", name="volt-explicit", layout=lay)
        assert ei.value.errno == errno.EEXIST and "volt-explicit" in str(ei.value)
        assert os.path.isdir(cg.paths[key])


# ── limits enforced ─────────────────────────────────────────────────────────


def test_pids_max_makes_fork_fail_with_eagain(host):
    with Cgroup.create(ResourceLimits(pids_max=3)) as cg:
        def body(w: int) -> int:
            kids = []
            try:
                for _ in range(10):
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(5)
                        os._exit(0)
                    kids.append(pid)
            except BlockingIOError as exc:
                os.write(w, f"{len(kids)} {exc.errno}".encode())
            for k in kids:
                os.kill(k, signal.SIGKILL)
                os.waitpid(k, 0)
            return 0

        status, data = run_in(cg, body)
        assert exit_code(status) == 0
        # the child itself is one of the 3
        assert data.decode() == f"2 {errno.EAGAIN}"
        st = cg.stats()
        assert st.pids_peak == 3 and st.pids_current == 0


def test_memory_limit_oom_kills_and_stats_show_it(host):
    with Cgroup.create(ResourceLimits(memory_hard="32M")) as cg:
        def body(w: int) -> int:
            os.write(w, b"start")
            blob = b"x" * (256 * MiB)  # touches every page
            os.write(w, b"survived %d" % len(blob))
            return 0

        status, data = run_in(cg, body)
        assert exit_code(status) == "signal SIGKILL", data
        assert data == b"start"
        st = cg.stats()
        assert st.oom_kills is not None and st.oom_kills >= 1
        assert 8 * MiB <= st.memory_peak <= 32 * MiB


def test_memory_below_the_limit_runs(host):
    with Cgroup.create(ResourceLimits(memory_hard="128M", memory_soft="96M")) as cg:
        def body(w: int) -> int:
            blob = b"x" * (32 * MiB)
            return 0 if len(blob) == 32 * MiB else 1

        assert exit_code(run_in(cg, body)[0]) == 0
        st = cg.stats()
        assert st.oom_kills == 0 and 32 * MiB <= st.memory_peak <= 128 * MiB


def _busy(seconds: float) -> Callable[[int], int]:
    def body(w: int) -> int:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            pass
        return 0
    return body


def test_cpu_quota_throttles_a_busy_loop(host):
    with Cgroup.create(ResourceLimits(cpu_quota="20%")) as cg:
        t0 = time.monotonic()
        assert exit_code(run_in(cg, _busy(0.6))[0]) == 0
        wall = time.monotonic() - t0
        st = cg.stats()
    # 20% of one CPU, generously: well under the ~100% an unthrottled loop gets
    assert st.cpu_usec / 1e6 < 0.45 * wall, (st, wall)
    assert st.cpu_usec > 0.05 * wall * 1e6
    assert st.cpu_throttled_usec > 0


def test_cpuset_pins_the_child(host):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs to tell pinning apart")  # not a kernel feature: the machine
    last = cpus[-1]
    with Cgroup.create(ResourceLimits(cpu_set=str(last))) as cg:
        def body(w: int) -> int:
            os.write(w, " ".join(map(str, sorted(os.sched_getaffinity(0)))).encode())
            return 0

        status, data = run_in(cg, body)
        assert exit_code(status) == 0
        assert data.decode() == str(last)
        assert cg.report["written"]["cpuset.cpus"] == str(last)
        assert cg.report["written"]["cpuset.mems"]


def test_cpu_weight_is_written_converted(host):
    with Cgroup.create(ResourceLimits(cpu_weight=200)) as cg:
        w = cg.report["written"]
        if host.controller_version("cpu") == 1:
            assert w == {"cpu.shares": "2048"}
            assert open(os.path.join(cg.paths[",".join(host.v1_mount("cpu").controllers)],
                                     "cpu.shares")).read().strip() == "2048"
        else:
            assert w == {"cpu.weight": "200"}


def test_memory_swap_on_v1_limits_memory_plus_swap(host):
    need_cgroup_v1("memory")
    key = ",".join(host.v1_mount("memory").controllers)
    with Cgroup.create(ResourceLimits(memory_hard="64M", memory_swap="16M"),
                       layout=v1_only(host), best_effort=True) as cg:
        path = os.path.join(cg.paths[key], "memory.memsw.limit_in_bytes")
        if os.path.exists(os.path.join(os.path.dirname(cg.paths[key]), "memory.memsw.limit_in_bytes")):
            assert cg.report["written"]["memory.memsw.limit_in_bytes"] == str(80 * MiB)
            assert int(open(path).read()) == 80 * MiB
        else:  # swap accounting off: the file is missing and the skip is reported
            assert "memory.memsw.limit_in_bytes" in cg.report["skipped"]


def test_io_weight_written_or_named_as_missing(host):
    lim = ResourceLimits(io_weight=200)
    ver = host.controller_version("io") or (1 if host.v1_mount("blkio") else None)
    if ver is None:
        need_cgroup_v1("blkio")
    files = ("io.weight", "io.bfq.weight") if ver == 2 else ("blkio.weight", "blkio.bfq.weight")
    try:
        cg = Cgroup.create(lim)
    except CompatibilityError as exc:
        # no I/O scheduler with weights here (blkio.weight needs CFQ or BFQ)
        assert exc.feature == f"cgroup file {files[0]}"
        assert files[0] in str(exc) and files[1] in str(exc) and "Resources.IOWeight" in str(exc)
        with Cgroup.create(lim, best_effort=True) as cg:
            assert files[0] in cg.report["skipped"] and not cg.report["written"]
    else:
        with cg:
            assert set(cg.report["written"]) & set(files)


def test_the_default_io_weight_needs_no_file(host):
    ver = host.controller_version("io") or (1 if host.v1_mount("blkio") else None)
    if ver is None:
        need_cgroup_v1("blkio")
    with Cgroup.create(ResourceLimits(io_weight=100)) as cg:
        written, skipped = cg.report["written"], cg.report["skipped"]
        main = "io.weight" if ver == 2 else "blkio.weight"
        # either a weight file took the default, or there is none and nothing needed it
        assert bool(written) != (main in skipped)
        if main in skipped:
            assert "100 is the default" in skipped[main]


# ── statistics ───────────────────────────────────────────────────────────────


def test_stats_after_a_run(host):
    with Cgroup.create(ResourceLimits()) as cg:
        assert cg.stats().pids_current == 0

        def body(w: int) -> int:
            blob = b"x" * (24 * MiB)
            kids = []
            for _ in range(3):
                pid = os.fork()
                if pid == 0:
                    time.sleep(0.05)
                    os._exit(0)
                kids.append(pid)
            t = time.process_time()
            while time.process_time() - t < 0.1:
                pass
            for k in kids:
                os.waitpid(k, 0)
            return 0 if len(blob) else 1

        assert exit_code(run_in(cg, body)[0]) == 0
        st = cg.stats()
        assert st.memory_peak >= 24 * MiB
        assert st.cpu_usec >= 80_000
        assert st.cpu_user_usec + st.cpu_system_usec >= 0.8 * st.cpu_usec
        assert st.pids_peak == 4 and st.pids_current == 0
        assert st.oom_kills == 0
        assert set(st.to_dict()) == {
            "memory_peak", "memory_current", "cpu_usec", "cpu_user_usec", "cpu_system_usec",
            "cpu_throttled_usec", "pids_current", "pids_peak", "oom_kills"}


# ── removal ─────────────────────────────────────────────────────────────────


def _spawn_family(cg: Cgroup, n: int, *, ignore_term: bool) -> tuple[int, list[int]]:
    """A child in ``cg`` that forks ``n`` sleeping grandchildren (in their own
    sessions, so they outlive it) and waits; returns its pid and theirs."""
    def body(w: int) -> int:
        kids = []
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                os.setsid()
                if ignore_term:
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                time.sleep(60)
                os._exit(0)
            kids.append(pid)
        os.write(w, " ".join(map(str, kids)).encode() + b"\n")
        time.sleep(60)
        return 0

    pid, r = fork_in(cg, body)
    return pid, [int(x) for x in read_line(r).split()]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("flavour", ["host", "v1 only"])
def test_close_kills_live_processes_and_removes_everything(host, flavour):
    if flavour == "v1 only":
        need_cgroup_v1("freezer")
    layout = host if flavour == "host" else v1_only(host)
    cg = Cgroup.create(ResourceLimits(pids_max=20), layout=layout)
    pid, grandkids = _spawn_family(cg, 4, ignore_term=True)
    assert set(cg.pids()) == {pid, *grandkids}
    dirs = list(cg.paths.values())
    cg.close()
    _, status = os.waitpid(pid, 0)
    assert exit_code(status) == "signal SIGKILL"
    assert all(_gone(p) for p in grandkids)
    assert not any(os.path.exists(d) for d in dirs)
    assert cg.closed


@pytest.mark.parametrize("flavour", ["host", "v1 only"])
def test_cgroups_the_workload_made_inside_are_emptied_and_removed(host, flavour):
    if flavour == "v1 only":
        need_cgroup_v1("freezer")
    cg = Cgroup.create(ResourceLimits(pids_max=20),
                       layout=host if flavour == "host" else v1_only(host))
    subs = [os.path.join(d, "inner") for d in cg.paths.values()]

    def body(w: int) -> int:
        for sub in subs:
            os.mkdir(sub)
        pid = os.fork()
        if pid == 0:
            for sub in subs:
                with open(os.path.join(sub, "cgroup.procs"), "w") as f:
                    f.write("0")
            time.sleep(60)
            os._exit(0)
        os.write(w, b"%d\n" % pid)
        time.sleep(60)
        return 0

    pid, r = fork_in(cg, body)
    grandchild = int(read_line(r))
    for _ in range(500):  # until the grandchild has moved itself into every inner cgroup
        if all(str(grandchild) in open(os.path.join(s, "cgroup.procs")).read().split()
               for s in subs):
            break
        time.sleep(0.002)
    assert grandchild in cg.pids()
    cg.close()
    os.waitpid(pid, 0)
    assert _gone(grandchild)
    assert not any(os.path.exists(s) for s in subs)


def test_repeated_removal_right_after_kill_never_hits_ebusy(host):
    # removing right after cgroup.kill fails with EBUSY most of the time unless the
    # removal waits for the cgroup to empty
    for _ in range(15):
        cg = Cgroup.create(ResourceLimits())
        pid, _ = _spawn_family(cg, 2, ignore_term=False)
        cg.close()
        os.waitpid(pid, 0)


def test_context_manager_removes_on_exception_and_kill_is_safe_when_empty(host):
    with pytest.raises(RuntimeError):
        with Cgroup.create(ResourceLimits()) as cg:
            pid, _ = _spawn_family(cg, 1, ignore_term=False)
            raise RuntimeError("the parent fails")
    os.waitpid(pid, 0)
    assert not any(os.path.exists(d) for d in cg.paths.values())
    with Cgroup.create(ResourceLimits()) as cg2:
        cg2.kill()
        assert cg2.pids() == []


def test_a_crashing_child_leaves_nothing(host):
    with Cgroup.create(ResourceLimits(pids_max=10)) as cg:
        def body(w: int) -> int:
            import faulthandler

            faulthandler.disable()  # no traceback dump: the crash is the point
            os.kill(os.getpid(), signal.SIGSEGV)
            return 0

        assert exit_code(run_in(cg, body)[0]) == "signal SIGSEGV"


def test_detach_keeps_the_cgroups_and_what_runs_in_them(host):
    cg = Cgroup.create(ResourceLimits(pids_max=10))
    pid, _ = _spawn_family(cg, 0, ignore_term=False)
    paths = dict(cg.paths)
    try:
        cg.detach()
        with pytest.raises(ValueError):
            cg.kill()
        cg.close()
        assert cg.closed and cg.clone_fd == -1 and cg.procs_fds == ()
        assert all(os.path.isdir(d) for d in paths.values())
        assert not _gone(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for d in paths.values():
            for _ in range(200):
                try:
                    os.rmdir(d)
                    break
                except OSError as exc:
                    assert exc.errno == errno.EBUSY
                    time.sleep(0.005)
            try:
                os.rmdir(os.path.dirname(d))  # the volt subtree, empty now
            except OSError:
                pass


# ── errors ─────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("parent, reason", [
    ("relative/path", "is not an absolute cgroup path"),
    ("/a/../b", "has '.' or '..' components"),
    ("/a\0b", "is not an absolute cgroup path"),
    ("/volt-does-not-exist", "does not exist"),
    (42, "is not a string"),
])
def test_bad_parent_is_a_policy_error_and_makes_nothing(host, parent, reason):
    with pytest.raises(PolicyError) as ei:
        Cgroup.create(ResourceLimits(pids_max=3), parent=parent)
    assert ei.value.field == "parent" and reason in str(ei.value)


def test_parent_that_exists_in_one_hierarchy_only_names_the_other(host):
    need_cgroup_v1("memory")
    need_cgroup_v1("pids")
    mem = host.v1_mount("memory")
    if mem.current in (None, "/"):
        pytest.skip("this process's memory cgroup is the root, like every other hierarchy's")
    with pytest.raises(PolicyError) as ei:
        Cgroup.create(ResourceLimits(pids_max=3), parent=mem.current_path)
    assert "hierarchy" in str(ei.value) and "does not exist" in str(ei.value)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "x\0y", "a\nb", "v" * 256, 7])
def test_bad_name_is_a_policy_error(name):
    with pytest.raises(PolicyError) as ei:
        Cgroup.create(ResourceLimits(), name=name)
    assert ei.value.field == "name"


def test_limits_must_be_resource_limits():
    with pytest.raises(PolicyError) as ei:
        Cgroup.create({"PIDsMax": 3})  # type: ignore[arg-type]
    assert ei.value.field == "limits"


def test_missing_controller_is_named_or_skipped_under_best_effort(host):
    need_controller(host, "pids")
    # this host as if it had no memory controller anywhere
    v2 = host.v2 and dataclasses.replace(
        host.v2, controllers=tuple(c for c in host.v2.controllers if c != "memory"))
    layout = CgroupLayout(host.kind, v2, tuple(m for m in host.v1 if "memory" not in m.controllers))
    with pytest.raises(CompatibilityError) as ei:
        Cgroup.create(ResourceLimits(memory_hard="64M", pids_max=5), layout=layout)
    assert ei.value.feature == "cgroup controller memory"
    assert "Resources.MemoryHard" in str(ei.value) and "memory.max" in str(ei.value)
    with Cgroup.create(ResourceLimits(memory_hard="64M", pids_max=5), layout=layout,
                       best_effort=True) as cg:
        assert cg.report["written"] == {"pids.max": "5"}
        assert "memory controller" in cg.report["skipped"]["memory.max"]
        assert "memory" not in cg.paths and not os.path.exists(os.path.join(cg.path, "memory.max"))


def test_no_hierarchy_at_all_is_a_compatibility_error():
    with pytest.raises(CompatibilityError) as ei:
        Cgroup.create(ResourceLimits(), layout=CgroupLayout("none", None, ()))
    assert ei.value.feature == "cgroups"


def test_cpuset_outside_the_parent_is_refused_and_rolled_back(host):
    ncpu = len(os.sched_getaffinity(0))
    with pytest.raises(PolicyError) as ei:
        Cgroup.create(ResourceLimits(memory_hard="64M", pids_max=4, cpu_set=str(ncpu + 100)))
    assert ei.value.field == "Resources.CPUSet" and "outside" in str(ei.value)
    # the autouse fixture checks that the memory and pids cgroups made first are gone


def test_swap_without_memory_hard_on_v1_is_a_policy_error(host):
    need_cgroup_v1("memory")
    with pytest.raises(PolicyError) as ei:
        Cgroup.create(ResourceLimits(memory_swap="16M"), layout=v1_only(host))
    assert ei.value.field == "Resources.MemorySwap" and "MemoryHard" in str(ei.value)


def test_a_refused_write_names_the_file_and_value(host):
    need_controller(host, "pids")
    with Cgroup.create(ResourceLimits(pids_max=3)) as cg:
        path = os.path.join(dir_of(cg, host, "pids"), "pids.max")
        with pytest.raises(EnforcementError) as ei:
            cgroups._write(path, "lots", "Resources.PIDsMax")
        assert ei.value.errno == errno.EINVAL
        assert ei.value.step == "write pids.max"
        assert path in str(ei.value) and "'lots'" in str(ei.value) and "Resources.PIDsMax" in str(ei.value)
        assert open(path).read().strip() == "3"


def test_a_short_write_is_an_error(host, monkeypatch):
    real_write = os.write

    def short(fd: int, data: bytes) -> int:
        return real_write(fd, data[:1] if data == b"12345" else data)

    monkeypatch.setattr(os, "write", short)
    with pytest.raises(EnforcementError) as ei:
        Cgroup.create(ResourceLimits(pids_max=12345))
    monkeypatch.undo()
    assert ei.value.errno == errno.EIO and "short write, 1 of 5 bytes" in str(ei.value)


def test_a_failure_after_some_cgroups_were_made_removes_them(host, monkeypatch):
    made = []
    real_mkdir = os.mkdir
    # the second cgroup fails; with one hierarchy (pure v2) the first, after its subtree
    fail_at = 1 if host.kind == "v2" else 2

    def mkdir(path: str, mode: int = 0o777) -> None:
        name = os.path.basename(path)
        if name.startswith("volt-") and sum(p.endswith("/" + name) for p in made) + 1 >= fail_at:
            raise PermissionError(errno.EACCES, "injected", path)
        real_mkdir(path, mode)
        made.append(path)

    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(EnforcementError) as ei:
        Cgroup.create(ResourceLimits(pids_max=5, memory_hard="64M"))
    monkeypatch.undo()
    assert ei.value.errno == errno.EACCES and ei.value.step == "mkdir"
    assert made and not any(os.path.exists(p) for p in made)


# ── placement at spawn ─────────────────────────────────────────────────────


def test_clone_into_cgroup_places_the_child_in_every_cgroup(host):
    need_cgroup2()
    from volt_enforce import child as spawn

    if not spawn.clone3_supported():
        need_cgroup2()  # pragma: no cover
    with Cgroup.create(ResourceLimits(pids_max=10)) as cg:
        r, w = os.pipe()
        plan = spawn.ChildPlan(procs_fds=cg.procs_fds, procs_paths=cg.procs_paths, no_new_privs=False)
        # no cgroup.procs fallback for cgroup2: the child can only get there through clone3
        pid = spawn.spawn(["/bin/cat", "/proc/self/cgroup"], stdout=w, cgroup_fd=cg.clone_fd,
                          plan=plan)
        os.close(w)
        out = read_all(r).decode()
        _, status = os.waitpid(pid, 0)
        assert exit_code(status) == 0
        lines = dict(line.split(":", 2)[1:] for line in out.splitlines())
        assert lines[""] == "/" + os.path.relpath(cg.paths[V2], host.v2.path)
        for key, d in cg.paths.items():
            if key != V2:
                m = next(m for m in host.v1 if ",".join(m.controllers) == key)
                assert lines[key] == "/" + os.path.relpath(d, m.path)


def test_the_cgroup2_procs_fd_is_the_fallback_placement(host):
    need_cgroup2()
    with Cgroup.create(ResourceLimits(), statistics=False) as cg:
        def body(w: int) -> int:
            os.write(w, open("/proc/self/cgroup", "rb").read())
            return 0

        pid, r = fork_in(None, lambda w: (os.write(cg.v2_procs_fd, b"0"), body(w))[1])
        out = read_all(r).decode()
        os.waitpid(pid, 0)
        assert "0::/" + os.path.relpath(cg.path, host.v2.path) in out.splitlines()


# ── cgroup v2 controllers (pure v2 hosts; skipped where cgroup2 has none) ─────


def test_v2_limit_files_on_real_controllers(host):
    for ctrl in ("memory", "pids", "cpu", "cpuset"):
        need_cgroup_v2_controller(ctrl)
    lim = ResourceLimits(memory_hard="64M", memory_soft="48M", cpu_weight=300, pids_max=7,
                         cpu_quota="50%", cpu_set=str(min(os.sched_getaffinity(0))))
    with Cgroup.create(lim) as cg:
        d = cg.path

        def rd(f: str) -> str:
            return open(os.path.join(d, f)).read().strip()

        assert rd("memory.max") == str(64 * MiB)
        assert rd("memory.high") == str(48 * MiB)
        assert rd("cpu.weight") == "300"
        assert rd("pids.max") == "7"
        assert rd("cpu.max") == "50000 100000"
        assert rd("cpuset.cpus") == lim.cpu_set
        parent_ctl = open(os.path.join(os.path.dirname(d), "cgroup.subtree_control")).read().split()
        assert {"memory", "pids", "cpu", "cpuset"} <= set(parent_ctl)
        assert set(cg.paths) == {V2}


def test_v2_memory_limit_oom_kills(host):
    need_cgroup_v2_controller("memory")
    with Cgroup.create(ResourceLimits(memory_hard="32M", memory_swap="0")) as cg:
        assert cg.report["written"]["memory.max"] == str(32 * MiB)
        status, _ = run_in(cg, lambda w: len(b"x" * (256 * MiB)) and 0)
        assert exit_code(status) == "signal SIGKILL"
        assert cg.stats().oom_kills >= 1


def test_v2_pids_max_makes_fork_fail(host):
    need_cgroup_v2_controller("pids")
    with Cgroup.create(ResourceLimits(pids_max=1)) as cg:
        assert cg.report["written"] == {"pids.max": "1"}

        def body(w: int) -> int:
            try:
                pid = os.fork()
            except BlockingIOError:
                return 0
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            return 1

        assert exit_code(run_in(cg, body)[0]) == 0


def test_v2_parent_with_processes_is_refused_with_the_rule_named(host):
    # the rule binds domain controllers (memory, io), not threaded ones (pids, cpu)
    need_cgroup_v2_controller("memory")
    with Cgroup.create(ResourceLimits(), statistics=False) as busy:
        pid, _ = _spawn_family(busy, 0, ignore_term=False)  # busy now has a process
        with pytest.raises(EnforcementError) as ei:
            Cgroup.create(ResourceLimits(memory_hard="64M"), parent=busy.path)
        assert ei.value.errno == errno.EBUSY
        assert "no internal processes" in str(ei.value) and busy.path in str(ei.value)
        with Cgroup.create(ResourceLimits(memory_hard="64M", pids_max=5), parent=busy.path,
                           best_effort=True) as cg:
            assert "memory.max" in cg.report["skipped"]
            assert cg.report["written"] == {"pids.max": "5"}
    os.waitpid(pid, 0)


def test_v2_default_parent_below_a_cgroup_with_processes_moves_to_the_root_subtree(host):
    need_cgroup_v2_controller("memory")
    with Cgroup.create(ResourceLimits(), statistics=False) as busy:
        def body(w: int) -> int:
            # this child's own cgroup (busy) has a process: itself
            with Cgroup.create(ResourceLimits(memory_hard="64M")) as cg:
                os.write(w, f"{cg.path}\n{cg.report['written']}".encode())
            return 0

        status, data = run_in(busy, body)
        assert exit_code(status) == 0, data
        path, written = data.decode().split("\n")
        assert os.path.dirname(path) == os.path.join(host.v2.path, SUBTREE)
        assert written == f"{{'memory.max': '{64 * MiB}'}}"
