"""Scale: spawn cost against policy size, throughput against threads, memory per sandbox.

* group "spawn vs landlock rules": Sandbox.run of /bin/true with N Landlock
  rules (N directories made for it, outside the view's private directories), ratio
  to plain subprocess.run; "... under /tmp": the same directories in /tmp, where
  each is a bind of each child's own.
* group "spawn vs seccomp rules": the same with an OCI profile of N syscall
  rules (errno for N syscalls the program never makes), ratio to subprocess.run.
* group "threads": children per second with 1, 2, 4, 8 threads spawning at
  once, sandboxed against plain subprocess.run with the same threads.
* group "memory": bytes of Python heap and fds per live Sandbox.

benchmarks/plot.py draws the first two from a JSON run (docs/spawn-scale.svg).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import tracemalloc

import pytest
from kernelreq import need_landlock, need_seccomp
from pairs import paired

from volt_enforce import (
    IsolationConfig,
    LandlockAccess,
    LandlockRule,
    Sandbox,
    SeccompProfile,
    server_policy,
)

TRUE = ["/bin/true"]
ROUNDS = 60


@pytest.fixture(scope="module", autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()


def _bench(benchmark, group: str, name: str, fn, **info) -> None:
    benchmark.group = group
    benchmark.name = name
    benchmark.extra_info.update(info)
    paired(benchmark, fn, lambda: subprocess.run(TRUE), rounds=ROUNDS, warmup=5,
           key="ratio_over_subprocess_run")


@pytest.fixture
def host_dir():
    """A directory outside the contained view's private ones (/tmp, /run, /var, ...):
    its rules' paths are bound once, in the view's template."""
    d = tempfile.mkdtemp(prefix=".scale-", dir=os.path.dirname(os.path.abspath(__file__)))
    yield d
    shutil.rmtree(d)


@pytest.mark.parametrize("under", ["host", "tmp"])
@pytest.mark.parametrize("n", [1, 10, 50, 200])
def test_spawn_vs_landlock_rules(benchmark, tmp_path, host_dir, n, under):
    """Under the contained default each child opens the rules in its view (~3 us a
    rule here); a rule beneath a private directory (/tmp) is also a bind of the
    child's own (~25 us), the host's directory into its private /tmp."""
    base = host_dir if under == "host" else str(tmp_path)
    policy = server_policy("/")
    for i in range(n):
        d = os.path.join(base, f"d{i}")
        os.mkdir(d)
        policy.rules.append(LandlockRule(path=d, access=LandlockAccess.READ_ONLY))
    cfg = IsolationConfig(landlock=policy)
    group = "spawn vs landlock rules" + ("" if under == "host" else " under /tmp")
    with Sandbox(cfg) as sb:
        _bench(benchmark, group, f"Sandbox.run, {n} extra landlock rules"
               + ("" if under == "host" else " under /tmp"), lambda: sb.run(TRUE),
               rules=len(sb.ruleset.report.rules), x=n)


def _syscall_names(n: int) -> list[str]:
    from volt_enforce.seccomp.tables import arch_table, native_arch

    # syscalls /bin/true never makes, so the filter's size is all that changes
    avoid = {"execve", "brk", "mmap", "munmap", "mprotect", "openat", "read", "close", "fstat",
             "newfstatat", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
             "prlimit64", "exit_group", "access", "pread64", "getrandom", "write", "futex",
             "rt_sigaction", "rt_sigprocmask", "sigaltstack", "exit", "statx", "lseek"}
    table = arch_table(native_arch()).syscalls
    names = [s for s in sorted(table, key=table.get) if s not in avoid]
    return names[:n]


@pytest.mark.parametrize("n", [10, 50, 100, 250])
def test_spawn_vs_seccomp_rules(benchmark, tmp_path, n):
    names = _syscall_names(n)
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 + i % 100}
                     for i, name in enumerate(names)],
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    cfg = IsolationConfig(seccomp=str(path))
    group = "spawn vs seccomp rules"
    with Sandbox(cfg) as sb:
        _bench(benchmark, group, f"Sandbox.run, {n} seccomp rules", lambda: sb.run(TRUE),
               instructions=sb.seccomp.instructions, x=n)


def _throughput(spawn, threads: int, per_thread: int) -> float:
    def worker():
        for _ in range(per_thread):
            spawn()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return threads * per_thread / (time.perf_counter() - t0)


@pytest.mark.parametrize("threads", [1, 2, 4, 8])
def test_throughput_threads(benchmark, threads):
    cfg = IsolationConfig(landlock=server_policy("/"), seccomp=SeccompProfile.DEFAULT)
    per_thread = max(4, 32 // threads)
    with Sandbox(cfg) as sb:
        result = {}

        def one():
            result["plain"] = _throughput(lambda: subprocess.run(TRUE), threads, per_thread)
            result["ours"] = _throughput(lambda: sb.run(TRUE), threads, per_thread)

        benchmark.group = "threads"
        benchmark.name = f"children per second, {threads} threads"
        benchmark.pedantic(one, rounds=3, iterations=1)
    benchmark.extra_info["children_per_s_plain"] = round(result["plain"])
    benchmark.extra_info["children_per_s_sandboxed"] = round(result["ours"])
    # time per child, ours over plain: larger is worse
    benchmark.extra_info["ratio_time_per_child"] = round(result["plain"] / result["ours"], 3)


def test_memory_per_sandbox(benchmark):
    cfg = IsolationConfig(landlock=server_policy("/"), seccomp=SeccompProfile.DEFAULT)
    n = 50
    info = {}

    def one():
        fds0 = len(os.listdir("/proc/self/fd"))
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        boxes = [Sandbox(cfg) for _ in range(n)]
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        fds1 = len(os.listdir("/proc/self/fd"))
        for b in boxes:
            b.close()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        info["bytes_per_sandbox"] = grown // n
        info["fds_per_sandbox"] = (fds1 - fds0) / n

    benchmark.group = "memory"
    benchmark.name = "live Sandbox (landlock server + seccomp default)"
    benchmark.pedantic(one, rounds=3, iterations=1)
    benchmark.extra_info.update(info)
    # the ruleset fd and the filesystem view's template (a mount namespace), nothing else
    assert info["fds_per_sandbox"] <= 2.0
