"""Spawning /bin/true into a cgroup: CLONE_INTO_CGROUP against the child writing
cgroup.procs against no cgroup at all.

Spawns are 20 ms apart (the gap is not timed): moving a process between cgroups
takes a lock whose slow path only shows when moves are not back to back. Each
variant records its ratio to the spawn without a cgroup measured in the same run
(``extra_info["ratio_to_no_cgroup"]``); the target for CLONE_INTO_CGROUP is 1.1x.

    pytest benchmarks/test_bench_cgroups.py --benchmark-enable --benchmark-json=cg.json
"""

from __future__ import annotations

import os
import sys
import time

import pytest

# kernelreq lives in tests/, whose conftest is not loaded when this file runs alone
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from kernelreq import need_cgroup2, need_cgroup_v1

from volt_enforce import ResourceLimits
from volt_enforce.cgroups import Cgroup, CgroupLayout, detect
from volt_enforce.child import ChildPlan, clone3_supported, spawn

GAP = 0.020  # seconds between spawns, outside the timing
ROUNDS = 200
TRUE = ["/bin/true"]

_medians: dict[str, float] = {}

# (variant, hierarchies needed, Cgroup.create kwargs, how the child is placed)
VARIANTS = [
    ("no cgroup", (), None, "none"),
    ("clone3 CLONE_INTO_CGROUP (cgroup2)", ("v2",), {"statistics": False}, "clone"),
    ("write cgroup2 cgroup.procs", ("v2",), {"statistics": False}, "v2 write"),
    ("write v1 cgroup.procs (pids, freezer)", ("v1",),
     {"statistics": False, "layout": "v1", "limits": ResourceLimits(pids_max=64)}, "v1 write"),
    ("hybrid: clone3 + v1 cgroup.procs (pids, memory)", ("v2", "v1"),
     {"limits": ResourceLimits(pids_max=64)}, "clone + v1 write"),
]


def _run(argv: list[str], **kw: object) -> None:
    pid = spawn(argv, **kw)  # type: ignore[arg-type]
    _, status = os.waitpid(pid, 0)
    assert status == 0


@pytest.mark.parametrize("variant, needs, create, placement", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_spawn_true_into_a_cgroup(benchmark, variant, needs, create, placement):
    if "v2" in needs:
        need_cgroup2()
    if "v1" in needs:
        need_cgroup_v1("pids")
    benchmark.group = "spawn /bin/true, 20 ms apart"
    cg = None
    if create is not None:
        kw = dict(create)
        if kw.pop("layout", None) == "v1":
            kw["layout"] = CgroupLayout("v1", None, detect().v1)
        cg = Cgroup.create(kw.pop("limits", ResourceLimits()), **kw)
    try:
        spawn_kw: dict[str, object] = {}
        if placement == "clone":
            spawn_kw = {"cgroup_fd": cg.clone_fd}
        elif placement == "v2 write":
            spawn_kw = {"plan": ChildPlan(procs_fds=(cg.v2_procs_fd,), no_new_privs=False)}
        elif placement == "v1 write":
            spawn_kw = {"plan": ChildPlan(procs_fds=cg.procs_fds, no_new_privs=False)}
        elif placement == "clone + v1 write":
            spawn_kw = {"cgroup_fd": cg.clone_fd,
                        "plan": ChildPlan(procs_fds=cg.procs_fds, procs_paths=cg.procs_paths,
                                     no_new_privs=False)}
        if "plan" not in spawn_kw:
            spawn_kw["plan"] = ChildPlan(no_new_privs=False)  # the same (empty) plan for every variant
        benchmark.extra_info["clone3"] = clone3_supported()
        if cg is not None:
            benchmark.extra_info["cgroups"] = sorted(cg.paths)
        benchmark.pedantic(_run, args=(TRUE,), kwargs=spawn_kw,
                           setup=lambda: time.sleep(GAP), rounds=ROUNDS, iterations=1)
        if cg is not None:
            # the spawns ran inside: they were counted (pids.peak) or used its CPU (cpu.stat)
            st = cg.stats()
            assert st.pids_peak == 1 if "pids" in cg.paths else st.cpu_usec > 0
    finally:
        if cg is not None:
            cg.close()
    if benchmark.enabled and benchmark.stats is not None:
        _medians[variant] = benchmark.stats.stats.median
        base = _medians.get("no cgroup")
        if base:
            benchmark.extra_info["ratio_to_no_cgroup"] = round(_medians[variant] / base, 3)
