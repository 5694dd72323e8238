"""Start-to-exec of the init shims: `volt-init PLAN -- /bin/true` (C, no Python)
and `volt-enforce exec ... -- /bin/true` (Python: imports, compiles, restricts),
against plain `/bin/true`, each spawned the same way (subprocess.run).

Group "init": read each as a ratio to "/bin/true" measured in the same run
(benchmarks/compare.py prints the ratios). The policy is the command's default:
the server Landlock profile and the default seccomp filter; one more figure
adds a pids limit, which volt-init applies by joining cgroups its plan names.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kernelreq import need_cgroup_v1, need_cgroup_v2_controller, need_landlock, need_seccomp

from volt_enforce import cgroups
from volt_enforce.init_plan import volt_init_path

TRUE = "/bin/true"
BASELINE = "/bin/true"
VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")
INIT = volt_init_path()


@pytest.fixture(scope="module", autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()


def _compile(tmp_path, *options: str) -> str:
    plan = str(tmp_path / "plan")
    subprocess.run([VOLT, "compile", *options, "-o", plan], check=True)
    return plan


def _remove_plan_cgroups(plan: str) -> None:
    with open(plan) as f:
        dirs = [os.fsdecode(bytes.fromhex(ln.split()[1])) for ln in f
                if ln.startswith("cgroup-dir ")]
    for d in reversed(dirs):
        if os.path.isdir(d):
            os.rmdir(d)  # /bin/true has exited: the cgroup is empty


def _go(benchmark, fn, name: str, rounds: int, baseline: str | None = BASELINE) -> None:
    benchmark.group = "init"
    benchmark.name = name
    if baseline is not None:
        benchmark.extra_info["baseline"] = baseline
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=max(rounds // 10, 1), iterations=1)


def _ok(argv: list[str]):
    def run() -> None:
        cp = subprocess.run(argv, check=False)
        assert cp.returncode == 0

    return run


def test_plain_true(benchmark):
    _go(benchmark, _ok([TRUE]), BASELINE, rounds=200, baseline=None)


def test_volt_init(benchmark, tmp_path):
    plan = _compile(tmp_path)
    _go(benchmark, _ok([INIT, plan, "--", TRUE]),
        "volt-init plan -- /bin/true (server + default seccomp)", rounds=200)


def test_volt_init_with_pids(benchmark, tmp_path):
    layout = cgroups.detect()
    if layout.v2 is not None and "pids" in layout.v2.controllers:
        need_cgroup_v2_controller("pids")
    else:
        need_cgroup_v1("pids")
    plan = _compile(tmp_path, "--pids", "64")
    try:
        _go(benchmark, _ok([INIT, plan, "--", TRUE]),
            "volt-init plan -- /bin/true (server + default seccomp + pids)", rounds=200)
    finally:
        _remove_plan_cgroups(plan)


def test_volt_enforce_exec(benchmark):
    _go(benchmark, _ok([VOLT, "exec", "--", TRUE]),
        "volt-enforce exec -- /bin/true (server + default seccomp)", rounds=20)
