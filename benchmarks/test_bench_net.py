"""The private network's cost: a spawn with a private network against the
loopback-only ``none`` mode and plain ``subprocess.run``, in the same rounds
(benchmarks/pairs.py), the kernel's cost of a network namespace alone, and
where the time of a private network goes (``breakdown_ms``: each step of
making and removing it, per run).

Run inside a network namespace standing in for the host (as the tests do): the
module enters a fresh one for its benchmarks and returns to its own after.

    python -m pytest benchmarks/test_bench_net.py --benchmark-enable -q
"""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import time
from collections import defaultdict

import pytest
from kernelreq import need_private_network
from pairs import paired

import volt_enforce as ve
from volt_enforce import IsolationConfig, NetworkConfig, NetworkMode, PortForward

TRUE = ["/bin/true"]
CLONE_NEWNET = 0x40000000


@pytest.fixture(scope="module", autouse=True)
def stand_in_host():
    need_private_network()
    from volt_enforce._core import lib

    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        os.close(own)
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        yield
    finally:
        from volt_enforce.net import lease, netns

        state = os.path.join(lease.RUN_DIR, "net", str(netns.host_netns_id()))
        subprocess.run(["rm", "-rf", state], check=False)
        assert lib.ve_setns(own, CLONE_NEWNET) == 0
        os.close(own)


def _private(forwards: bool = False) -> IsolationConfig:
    pf = [PortForward(8080, 80)] if forwards else []
    return IsolationConfig(network=NetworkConfig(mode=NetworkMode.PRIVATE, port_forwards=pf))


NONE = IsolationConfig(network=NetworkConfig(mode=NetworkMode.NONE))


def _plain() -> None:
    subprocess.run(TRUE)


def _run(cfg: IsolationConfig):
    return lambda: ve.run(TRUE, isolation=cfg)


def test_spawn_network_none(benchmark):
    benchmark.group = "net"
    benchmark.name = "run(network none)"
    paired(benchmark, _run(NONE), _plain, rounds=100, key="ratio_over_subprocess_run")


def test_spawn_private_network(benchmark):
    benchmark.group = "net"
    benchmark.name = "run(network private)"
    paired(benchmark, _run(_private()), _plain, rounds=40, key="ratio_over_subprocess_run")


def test_spawn_private_network_over_none(benchmark):
    benchmark.group = "net"
    benchmark.name = "run(network private) / run(network none)"
    paired(benchmark, _run(_private()), _run(NONE), rounds=40, key="ratio_over_network_none")


def test_spawn_private_network_with_forward(benchmark):
    benchmark.group = "net"
    benchmark.name = "run(network private, one port forward)"
    paired(benchmark, _run(_private(forwards=True)), _plain, rounds=40, key="ratio_over_subprocess_run")


def test_netns_create_destroy_kernel_cost(benchmark):
    """unshare(CLONE_NEWNET) in a CLONE_VM child plus the fd's close; the kernel
    frees the namespace later, in its cleanup_net work queue."""
    from volt_enforce.net import netns

    benchmark.group = "net"
    benchmark.name = "netns create + close"
    benchmark.pedantic(lambda: os.close(netns.new_netns()), rounds=200, warmup_rounds=5, iterations=1)


def test_where_the_time_goes(benchmark):
    """Each step of attach() and close(), timed over the rounds (ms per run)."""
    from volt_enforce import net
    from volt_enforce.net import bridge, forward, lease, netns as netns_mod

    spent: dict[str, float] = defaultdict(float)
    runs = [0]
    patched = []

    def timed(owner, attr, label):
        real = getattr(owner, attr)

        @functools.wraps(real)
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                spent[label] += time.perf_counter() - t0

        setattr(owner, attr, wrapper)
        patched.append((owner, attr, real))

    timed(net, "attach", "attach (all)")
    timed(netns_mod, "new_netns", "netns: create")
    timed(bridge, "open_ipr", "netlink: open socket")
    timed(bridge, "ensure_bridge", "bridge: look up")
    timed(bridge, "add_veth", "veth: create, attach to bridge")
    timed(netns_mod, "inside", "inside: lo, eth0, address, route (thread + netlink)")
    timed(forward, "add_rules", "nft: add rules")
    timed(forward, "delete_rules", "nft: list + delete rules")
    timed(bridge, "delete_link", "veth: delete")
    timed(net.PrivateNetwork, "close", "close (all)")
    timed(lease, "_start_time", "lease: owner check")
    cfg = _private(forwards=True)

    def one():
        runs[0] += 1
        ve.run(TRUE, isolation=cfg)

    benchmark.group = "net"
    benchmark.name = "run(network private, one forward): breakdown"
    try:
        t0 = time.perf_counter()
        benchmark.pedantic(one, rounds=30, warmup_rounds=2, iterations=1)
        total = time.perf_counter() - t0
    finally:
        for owner, attr, real in patched:
            setattr(owner, attr, real)
    n = max(runs[0], 1)
    benchmark.extra_info["breakdown_ms"] = {k: round(v * 1e3 / n, 2) for k, v in sorted(spent.items())}
    benchmark.extra_info["run_ms"] = round(total * 1e3 / n, 2)
