"""Kernel feature requirements for tests.

A test may skip only when the kernel lacks a feature, and says which. With
VOLT_ENFORCE_REQUIRE_KERNEL=1 (set by .ci/run) the features this project's
machines are known to have must be present: a missing one fails the test
instead of skipping it. Features outside that list (such as cgroup v2
controllers on a hybrid host) still skip, naming what is missing.

In the kernel matrix's VM (VOLT_ENFORCE_VM_KERNEL=1, see .ci/kernel-matrix) the
list is the booted release's, from VM_FEATURES_BY_RELEASE (a prefix of the
release picks the row): pure cgroup v2 with its controllers, no v1 hierarchies,
and the Landlock ABI that release has.
"""

from __future__ import annotations

import functools
import os
import platform

import pytest

REQUIRE = os.environ.get("VOLT_ENFORCE_REQUIRE_KERNEL") == "1"
VM_KERNEL = os.environ.get("VOLT_ENFORCE_VM_KERNEL") == "1"

#: Features that must be present under VOLT_ENFORCE_REQUIRE_KERNEL=1: this
#: project's machines (Landlock of any ABI counts), or the matrix's VM kernel.
HOST_FEATURES = {
    "landlock",
    "landlock ABI *",
    "seccomp",
    "user namespaces",
    "network namespaces",
    "cgroup v1 controllers",
    "cgroup2 placement",
    "private network",
    "idmapped mounts",
}
_VM_COMMON = {
    "landlock",
    "seccomp",
    "user namespaces",
    "network namespaces",
    "cgroup2 placement",
    "cgroup v2 controller *",
}
#: The matrix's kernels (Debian's, see .ci/kernel-matrix) by release prefix, and the
#: Landlock ABIs each must have. 7.3-rc7 must have ABI 10; its ABI 11 is tested where
#: it reports it and skipped (naming it) where not.
VM_FEATURES_BY_RELEASE: dict[str, set[str]] = {
    "6.1.": _VM_COMMON | {"landlock ABI 2"},
    "7.2.": _VM_COMMON | {f"landlock ABI {n}" for n in range(2, 11)},
    "7.3": _VM_COMMON | {f"landlock ABI {n}" for n in range(2, 11)},
}


def vm_features(release: str) -> set[str] | None:
    """The row of VM_FEATURES_BY_RELEASE for ``release`` (longest prefix), or None."""
    keys = sorted((k for k in VM_FEATURES_BY_RELEASE if release.startswith(k)), key=len)
    return VM_FEATURES_BY_RELEASE[keys[-1]] if keys else None


#: The booted VM kernel's row; a release the table lacks requires only what all share.
VM_FEATURES = vm_features(platform.release()) or _VM_COMMON
REQUIRED_FEATURES = VM_FEATURES if VM_KERNEL else HOST_FEATURES


def required(feature: str) -> bool:
    """Whether the requirement covers ``feature`` ("landlock ABI 3", "cgroup v2
    controller io"): named as is, or by its family with a "*"."""
    family = feature.rsplit(" ", 1)[0] + " *"
    return feature in REQUIRED_FEATURES or family in REQUIRED_FEATURES


def need(feature: str, available: bool, why: str = "") -> None:
    """Skip (or fail, under the requirement) unless ``available``."""
    if available:
        return
    msg = f"kernel lacks {feature}" + (f": {why}" if why else "")
    if REQUIRE and required(feature):
        pytest.fail(f"{msg} (required by VOLT_ENFORCE_REQUIRE_KERNEL=1)", pytrace=False)
    pytest.skip(msg)


@functools.cache
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


@functools.cache
def _private_network_error() -> str:
    """What a private network needs, tried in a namespace of its own: a bridge, a
    veth pair and nftables NAT with fib (the kernel's modules)."""
    import subprocess

    script = ("ip link set lo up && ip link add vtprobe0 type bridge && "
              "ip link add vtprobe1 type veth peer name vtprobe2 && "
              "nft 'add table ip vtprobe; add chain ip vtprobe p { type nat hook prerouting priority -100; }; "
              "add rule ip vtprobe p fib daddr type local tcp dport 1 dnat to 10.0.0.1:2; "
              "add chain ip vtprobe o { type nat hook postrouting priority 100; }; "
              "add rule ip vtprobe o ct status dnat masquerade'")
    cp = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True)
    return "" if cp.returncode == 0 else (cp.stderr.strip() or f"exit {cp.returncode}")


def need_private_network() -> None:
    """A bridge, veths and nftables NAT (tried in a namespace of its own)."""
    need_netns()
    err = _private_network_error()
    need("private network", not err, err)


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
