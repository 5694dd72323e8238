"""Spawning /bin/true sandboxed, against plain subprocess.run and peers.

Group "spawn": each benchmark times its spawn and a plain `subprocess.run`
alternately in the same rounds (benchmarks/pairs.py) and records the ratio of
the medians as `ratio_over_subprocess_run` (benchmarks/compare.py reads it).
Peers run where they are installed: the PyPI `landlock` and `pyseccomp`
packages in preexec_fn (the `bench` extra), bubblewrap (Debian's `bubblewrap`),
minijail0.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import pytest
from kernelreq import need_cgroup2, need_landlock, need_seccomp
from spawnbench import TRUE, against_plain, plain, server_default

import volt_enforce
from volt_enforce import ResourceLimits, Sandbox, server_policy
from volt_enforce.cgroups import Cgroup


@pytest.fixture(scope="module", autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()


def _go(benchmark, fn, name: str) -> None:
    against_plain(benchmark, fn, "spawn", name)


def test_subprocess_run_baseline(benchmark):
    benchmark.group = "spawn"
    benchmark.name = "subprocess.run"
    benchmark.pedantic(plain, rounds=200, warmup_rounds=10, iterations=1)


def test_subprocess_empty_preexec(benchmark):
    _go(benchmark, lambda: subprocess.run(TRUE, preexec_fn=lambda: None),
        "subprocess.run(preexec_fn=lambda: None)")


def test_volt_run_prepared_sandbox(benchmark):
    with Sandbox(server_default()) as sb:
        _go(benchmark, lambda: sb.run(TRUE), "Sandbox.run (landlock server + seccomp default)")


def test_volt_popen(benchmark):
    with Sandbox(server_default()) as sb:
        _go(benchmark, lambda: sb.popen(TRUE).wait(), "Sandbox.popen(...).wait()")


def test_volt_run_per_call(benchmark):
    cfg = server_default()
    _go(benchmark, lambda: volt_enforce.run(TRUE, isolation=cfg),
        "volt_enforce.run (landlock server + seccomp default, prepared per call)")


def test_volt_run_with_v2_cgroup(benchmark):
    need_cgroup2()
    # a cgroup2 cgroup only: v1 statistics cgroups would add a cgroup.procs write
    with Cgroup.create(ResourceLimits(), statistics=False) as cg, \
            Sandbox(server_default(), cgroup=cg) as sb:
        _go(benchmark, lambda: sb.run(TRUE),
            "Sandbox.run + cgroup2 placement (CLONE_INTO_CGROUP)")


def test_volt_preexec(benchmark):
    with Sandbox(server_default()) as sb:
        pre = sb.preexec
        _go(benchmark, lambda: subprocess.run(TRUE, preexec_fn=pre),
            "subprocess.run(preexec_fn=sandbox.preexec)")


def _docker_allowlist() -> list[str]:
    """Names Docker's profile allows unconditionally (the peer gets no arg rules)."""
    import json

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "shared", "fixtures", "moby-default.json")) as f:
        prof = json.load(f)
    names = []
    for rule in prof["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args") and not rule.get("includes"):
            names += rule["names"]
    return names


# ---- peers ---------------------------------------------------------------------------


def _peer(module: str):
    try:
        return __import__(module)
    except ImportError:
        pytest.skip(f"peer {module!r} is not installed (pip install '.[bench]')")


def test_peer_landlock_pyseccomp_preexec(benchmark):
    landlock = _peer("landlock")
    pyseccomp = _peer("pyseccomp")
    paths = [r.path for r in server_policy("/").rules if os.path.exists(r.path)]
    filt = pyseccomp.SyscallFilter(pyseccomp.ERRNO(1))
    for name in _docker_allowlist():
        try:
            filt.add_rule(pyseccomp.ALLOW, name)
        except (ValueError, RuntimeError, OSError):
            pass  # a name this libseccomp does not know

    def preexec():
        ctypes.set_errno(0)  # the package reads ctypes' errno, not the result
        rs = landlock.Ruleset()
        rs.allow(*paths)
        rs.apply()
        filt.load()

    _go(benchmark, lambda: subprocess.run(TRUE, preexec_fn=preexec),
        "peer: PyPI landlock + pyseccomp in preexec_fn")


def test_peer_bubblewrap(benchmark):
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("peer bubblewrap is not installed (apt-get install bubblewrap)")
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--unshare-pid", "--die-with-parent", "--", *TRUE]
    if subprocess.run(args, capture_output=True).returncode != 0:
        pytest.skip("bubblewrap cannot create its namespaces here")
    _go(benchmark, lambda: subprocess.run(args), "peer: bubblewrap")


def test_peer_minijail(benchmark):
    minijail = shutil.which("minijail0")
    if minijail is None:
        pytest.skip("peer minijail0 is not installed (not packaged in Debian 12 or on PyPI)")
    args = [minijail, "-n", "--", *TRUE]
    _go(benchmark, lambda: subprocess.run(args), "peer: minijail0")
