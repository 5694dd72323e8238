"""Kernel feature requirements for tests.

A test may skip only when the kernel lacks a feature, and says which. With
VOLT_ENFORCE_REQUIRE_KERNEL=1 (set by .ci/run) the features this project's
machines are known to have must be present: a missing one fails the test
instead of skipping it. Features outside that list (such as cgroup v2
controllers on a hybrid host) still skip, naming what is missing.
"""

from __future__ import annotations

import functools
import os

import pytest

REQUIRE = os.environ.get("VOLT_ENFORCE_REQUIRE_KERNEL") == "1"

#: Features that must be present under VOLT_ENFORCE_REQUIRE_KERNEL=1.
REQUIRED_FEATURES = {
    "landlock",
    "seccomp",
    "user namespaces",
    "network namespaces",
    "cgroup v1 controllers",
    "cgroup2 placement",
}


def need(feature: str, available: bool, why: str = "") -> None:
    """Skip (or fail, under the requirement) unless ``available``."""
    if available:
        return
    msg = f"kernel lacks {feature}" + (f": {why}" if why else "")
    if REQUIRE and feature.split(" ABI")[0] in REQUIRED_FEATURES:
        pytest.fail(f"{msg} (required by VOLT_ENFORCE_REQUIRE_KERNEL=1)", pytrace=False)
    pytest.skip(msg)


@functools.lru_cache(maxsize=None)
def probe():
    import volt_enforce

    return volt_enforce.probe()


def need_landlock(abi: int = 1) -> None:
    have = probe().landlock_abi
    need("landlock" if abi <= 1 else f"landlock ABI {abi}", have >= abi,
         f"running kernel has ABI {have} ({probe().landlock_status})")


def need_seccomp() -> None:
    need("seccomp", probe().seccomp, "seccomp(2) filters are not available")


def need_userns() -> None:
    p = probe()
    need("user namespaces", p.user_namespaces, p.user_namespaces_error or "")


def need_netns() -> None:
    p = probe()
    need("network namespaces", p.network_namespaces, p.network_namespaces_error or "")


def need_cgroup_v1(controller: str) -> None:
    layout = probe().cgroups
    need("cgroup v1 controllers", layout.v1_mount(controller) is not None,
         f"no v1 hierarchy with the {controller} controller ({layout.kind} host)")


def need_cgroup2() -> None:
    layout = probe().cgroups
    need("cgroup2 placement", layout.v2 is not None and layout.v2.current_writable,
         "no writable cgroup2 hierarchy")


def need_cgroup_v2_controller(controller: str) -> None:
    layout = probe().cgroups
    have = layout.v2 is not None and controller in layout.v2.controllers
    need(f"cgroup v2 controller {controller}", have,
         f"cgroup2 here offers {list(layout.v2.controllers) if layout.v2 else 'nothing'}"
         f" ({layout.kind} host)")
