"""The kernel matrix's second kernel: Debian's 6.1, booted in a VM by .ci/kernel-matrix.

What the host (Linux 6.18, Landlock ABI 7, hybrid cgroups with no v2 controllers)
cannot show: cgroup v2 limits on a pure v2 host, and the library on an older
Landlock ABI, for real. Every test is marked ``kernel_matrix``: outside the VM
(VOLT_ENFORCE_VM_KERNEL unset) tests/vm/matrix.py deselects them.
"""

from __future__ import annotations

import platform

import pytest

import volt_enforce
from kernelreq import need_cgroup2, need_cgroup_v2_controller, need_landlock, need_seccomp

pytestmark = pytest.mark.kernel_matrix

CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")


def _release() -> tuple[int, int]:
    major, minor = platform.release().split(".")[:2]
    return int(major), int(minor)


# ---- the kernel is what the matrix says it is -------------------------------------------


def test_probe_sees_pure_cgroup2_with_every_controller():
    need_cgroup2()
    for ctrl in CONTROLLERS:
        need_cgroup_v2_controller(ctrl)
    layout = volt_enforce.probe().cgroups
    assert layout.kind == "v2"
    assert layout.v1 == ()
    assert set(CONTROLLERS) <= set(layout.v2.controllers)


def test_probe_sees_landlock_seccomp_and_namespaces_of_an_older_kernel():
    need_landlock(1)
    need_seccomp()
    p = volt_enforce.probe()
    assert _release() < (6, 18), f"the matrix booted the host's kernel again ({p.kernel})"
    assert p.kernel == platform.release()
    if _release()[:2] == (6, 1):
        # 6.1 has Landlock ABI 2 (5.19) and no errata query (6.15)
        assert p.landlock_abi == 2
    assert p.seccomp and {"kill_process", "user_notif", "log", "errno"} <= set(p.seccomp_actions)
    assert p.user_namespaces and p.network_namespaces
