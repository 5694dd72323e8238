"""The mapping of ResourceLimits onto cgroup files, without a kernel: vectors
for v2, v1 and mixed hosts, the weight and quota conversions, and parent paths."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from volt_enforce import PolicyError, ResourceLimits, parse_cpuset
from volt_enforce.cgroups import (
    CgroupLayout,
    CgroupMount,
    LimitWrite,
    _format_cpus,
    _fs_path,
    _parent_rel,
    cpu_quota_to_max,
    cpu_weight_to_shares,
    io_weight_to_bfq,
    io_weight_to_blkio,
    limit_writes,
)

MiB = 1 << 20
ALL = ("memory", "cpu", "cpuset", "io", "pids")
V2 = {c: 2 for c in ALL}
V1 = {c: 1 for c in ALL}
FULL = ResourceLimits(memory_hard="512M", memory_soft="256M", cpu_weight=200, cpu_set="0-1,3",
                      io_weight=50, pids_max=100, cpu_quota="150%", memory_swap="1G")


def files(writes: list[LimitWrite]) -> list[tuple[str, str | None]]:
    return [(w.file, w.value) for w in writes]


# ── conversions ──────────────────────────────────────────────────────────────


@pytest.mark.parametrize("weight, shares", [
    (1, 10), (10, 102), (50, 512), (100, 1024), (200, 2048), (1000, 10240), (10000, 102400),
])
def test_cpu_weight_to_shares_vectors(weight, shares):
    assert cpu_weight_to_shares(weight) == shares


@pytest.mark.parametrize("weight, blkio", [
    (1, 10), (2, 10), (10, 50), (100, 500), (150, 750), (200, 1000), (10000, 1000),
])
def test_io_weight_to_blkio_vectors(weight, blkio):
    assert io_weight_to_blkio(weight) == blkio


@pytest.mark.parametrize("weight, bfq", [
    (1, 1), (50, 50), (100, 100), (199, 109), (1000, 181), (5050, 550), (10000, 1000),
])
def test_io_weight_to_bfq_vectors(weight, bfq):
    assert io_weight_to_bfq(weight) == bfq


@pytest.mark.parametrize("convert, lo, hi", [
    (cpu_weight_to_shares, 2, 262144), (io_weight_to_blkio, 10, 1000), (io_weight_to_bfq, 1, 1000),
])
@given(a=st.integers(1, 10000), b=st.integers(1, 10000))
def test_weight_conversions_are_monotone_and_in_range(convert, lo, hi, a, b):
    ca, cb = convert(a), convert(b)
    assert lo <= ca <= hi
    if a <= b:
        assert ca <= cb


@pytest.mark.parametrize("quota, expect", [
    ("50%", (50_000, 100_000)), ("100%", (100_000, 100_000)), ("150%", (150_000, 100_000)),
    ("33.33%", (33_330, 100_000)), ("0.5%", (1_000, 100_000)), ("1%", (1_000, 100_000)),
    ("400%", (400_000, 100_000)),
])
def test_cpu_quota_vectors(quota, expect):
    assert cpu_quota_to_max(ResourceLimits(cpu_quota=quota).cpu_quota_percent) == expect


@given(pct=st.floats(0.01, 10000, allow_nan=False), period=st.integers(1000, 1_000_000))
def test_cpu_quota_keeps_the_ratio_above_the_kernel_minimum(pct, period):
    quota, p = cpu_quota_to_max(pct, period)
    assert p == period and quota >= 1000
    if quota > 1000:
        assert abs(quota - pct * period / 100) <= 0.5


@given(st.sets(st.integers(0, 300), min_size=1))
def test_cpu_list_format_round_trips(cpus):
    text = _format_cpus(sorted(cpus))
    assert parse_cpuset(text) == sorted(cpus)
    assert len(text.split(",")) <= len(cpus)


# ── limit files ─────────────────────────────────────────────────────────────


def test_v2_mapping():
    assert files(limit_writes(FULL, V2)) == [
        ("memory.max", str(512 * MiB)),
        ("memory.high", str(256 * MiB)),
        ("memory.swap.max", str(1024 * MiB)),
        ("cpu.weight", "200"),
        ("cpu.max", "150000 100000"),
        ("cpuset.cpus", "0-1,3"),
        ("cpuset.mems", None),
        ("io.weight", "default 50"),
        ("pids.max", "100"),
    ]
    io = [w for w in limit_writes(FULL, V2) if w.field == "Resources.IOWeight"][0]
    assert io.alternatives == (("io.bfq.weight", "50"),) and io.controller == "io"


def test_v1_mapping():
    writes = limit_writes(FULL, V1)
    assert files(writes) == [
        ("memory.limit_in_bytes", str(512 * MiB)),
        ("memory.soft_limit_in_bytes", str(256 * MiB)),
        ("memory.memsw.limit_in_bytes", str(1536 * MiB)),  # memory plus swap
        ("cpu.shares", "2048"),
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_quota_us", "150000"),
        ("cpuset.cpus", "0-1,3"),
        ("cpuset.mems", None),
        ("blkio.weight", "250"),
        ("pids.max", "100"),
    ]
    io = [w for w in writes if w.field == "Resources.IOWeight"][0]
    assert io.controller == "blkio" and io.alternatives == (("blkio.bfq.weight", "50"),)
    assert {w.version for w in writes} == {1}


def test_hybrid_mapping_follows_each_controller():
    writes = limit_writes(FULL, {"memory": 2, "cpu": 1, "pids": 1, "io": 2})
    by = {w.file: (w.version, w.controller) for w in writes}
    assert by["memory.max"] == (2, "memory") and by["memory.swap.max"] == (2, "memory")
    assert by["cpu.shares"] == (1, "cpu") and by["cpu.cfs_quota_us"] == (1, "cpu")
    assert by["io.weight"] == (2, "io") and by["pids.max"] == (1, "pids")
    # no hierarchy has cpuset: the writes say so (version 0), under their v2 names
    assert by["cpuset.cpus"] == (0, "cpuset")


def test_unlimited_values():
    lim = ResourceLimits(memory_hard="max", memory_soft="max", memory_swap="max")
    assert files(limit_writes(lim, V2)) == [
        ("memory.max", "max"), ("memory.high", "max"), ("memory.swap.max", "max")]
    assert files(limit_writes(lim, V1)) == [
        ("memory.limit_in_bytes", "-1"), ("memory.soft_limit_in_bytes", "-1"),
        ("memory.memsw.limit_in_bytes", "-1")]


def test_empty_limits_write_nothing():
    assert limit_writes(ResourceLimits(), V2) == [] and limit_writes(ResourceLimits(), V1) == []


@pytest.mark.parametrize("hard", ["", "max"])
def test_v1_swap_needs_a_memory_size(hard):
    lim = ResourceLimits(memory_hard=hard, memory_swap="64M")
    with pytest.raises(PolicyError) as ei:
        limit_writes(lim, V1)
    assert ei.value.field == "Resources.MemorySwap" and "memory.memsw.limit_in_bytes" in str(ei.value)
    assert files(limit_writes(lim, V2))[-1] == ("memory.swap.max", str(64 * MiB))


def test_v1_swap_of_zero_pins_memsw_to_the_memory_limit():
    lim = ResourceLimits(memory_hard="100M", memory_swap="0")
    assert files(limit_writes(lim, V1)) == [
        ("memory.limit_in_bytes", str(100 * MiB)), ("memory.memsw.limit_in_bytes", str(100 * MiB))]


limits_strategy = st.builds(
    ResourceLimits,
    memory_hard=st.sampled_from(["", "max", "64M", "1G", "4096"]),
    memory_soft=st.sampled_from(["", "max", "32M"]),
    cpu_weight=st.integers(0, 10000),
    cpu_set=st.sampled_from(["", "0", "0-3", "1,3-5"]),
    io_weight=st.integers(0, 10000),
    pids_max=st.integers(0, 1 << 20),
    cpu_quota=st.sampled_from(["", "1%", "50%", "250.5%"]),
    memory_swap=st.sampled_from(["", "max", "0", "128M"]),
)
versions_strategy = st.dictionaries(st.sampled_from(ALL), st.sampled_from([1, 2]))


@given(lim=limits_strategy, versions=versions_strategy)
def test_every_set_limit_is_written_once_where_its_controller_lives(lim, versions):
    try:
        writes = limit_writes(lim, versions)
    except PolicyError as exc:
        # the one limit v1 cannot express alone
        assert exc.field == "Resources.MemorySwap" and versions.get("memory") == 1
        assert lim.memory_hard_bytes is None and lim.memory_swap_bytes is not None
        return
    names = [w.file for w in writes]
    assert len(names) == len(set(names))
    fields = {w.field for w in writes}
    expect = {f"Resources.{k}" for k, attr in ResourceLimits._KEYS.items() if getattr(lim, attr)}
    assert fields == expect
    for w in writes:
        ctrl = "io" if w.controller == "blkio" else w.controller
        assert w.version == versions.get(ctrl, 0)
        if w.version == 1:
            assert not w.file.startswith("io.") and w.file != "memory.max"
        assert (w.value is None) == (w.file == "cpuset.mems")
    if "memory.memsw.limit_in_bytes" in names and "memory.limit_in_bytes" in names:
        # memsw may never be below the memory limit, so the memory limit goes first
        assert names.index("memory.limit_in_bytes") < names.index("memory.memsw.limit_in_bytes")
    if "cpu.cfs_quota_us" in names:
        assert names.index("cpu.cfs_period_us") < names.index("cpu.cfs_quota_us")


# ── parent paths ────────────────────────────────────────────────────────────

LAYOUT = CgroupLayout("hybrid", CgroupMount(2, "/sys/fs/cgroup/unified", "/", ("hugetlb",), "/"), (
    CgroupMount(1, "/sys/fs/cgroup/memory", "/", ("memory",), "/a/b"),
    CgroupMount(1, "/sys/fs/cgroup/cpu,cpuacct", "/", ("cpu", "cpuacct"), "/"),
))


@pytest.mark.parametrize("parent, rel", [
    ("/", "/"),
    ("/a/b", "/a/b"),
    ("//a///b/", "/a/b"),
    ("/sys/fs/cgroup/memory/a/b", "/a/b"),
    ("/sys/fs/cgroup/memory", "/"),
    ("/sys/fs/cgroup/unified/x", "/x"),
    ("/sys/fs/cgroup/cpu,cpuacct/y", "/y"),
    ("/sys/fs/cgroup/memoryx/y", "/sys/fs/cgroup/memoryx/y"),  # not a mount: a cgroup path
])
def test_parent_paths(parent, rel):
    assert _parent_rel(parent, LAYOUT) == rel


def test_parent_under_a_mount_of_a_subtree():
    # a container that sees only /ctr of the hierarchy, mounted at /sys/fs/cgroup
    m = CgroupMount(2, "/sys/fs/cgroup", "/ctr", (), "/ctr")
    lay = CgroupLayout("v2", m, ())
    assert _parent_rel("/sys/fs/cgroup/x", lay) == "/ctr/x"
    assert _fs_path(m, "/ctr/x") == "/sys/fs/cgroup/x"
    assert _fs_path(m, "/ctr") == "/sys/fs/cgroup"
    assert _fs_path(m, "/other") is None
    assert _fs_path(m, "/ctrl") is None


@pytest.mark.parametrize("parent", ["rel", "", "/a/../b", "/./a", "/a\0"])
def test_bad_parent_paths(parent):
    with pytest.raises(PolicyError) as ei:
        _parent_rel(parent, LAYOUT)
    assert ei.value.field == "parent"
