"""cgroups.detect(): the host's cgroup layout, from this machine's /proc and from
canned mountinfo and /proc/self/cgroup texts of pure v2, pure v1 and hybrid hosts."""

from __future__ import annotations

import os
import subprocess

import pytest
from kernelreq import need_cgroup2, need_cgroup_v1

from volt_enforce import cgroups

# ── canned hosts ─────────────────────────────────────────────────────────────
# {root} is replaced by a temporary directory that stands in for /sys/fs/cgroup,
# so cgroup.controllers can be read and writability checked.

PURE_V2_MOUNTINFO = """\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 24 0:24 / {root} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 24 0:25 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:5 - pstore pstore rw
"""
PURE_V2_CGROUP = "0::/user.slice/user-1000.slice/session-2.scope\n"
PURE_V2_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc\n"

PURE_V1_MOUNTINFO = """\
18 40 0:17 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
24 18 0:20 / {root} ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
25 24 0:21 / {root}/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 24 0:24 / {root}/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
29 24 0:25 / {root}/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory
30 24 0:26 / {root}/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,net_cls,net_prio
31 24 0:27 / {root}/pids rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,pids
32 24 0:28 / {root}/cpuset rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpuset
33 24 0:29 / {root}/blkio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,blkio
"""
PURE_V1_CGROUP = """\
11:blkio:/user.slice
10:cpuset:/
9:pids:/user.slice/user-1000.slice/session-2.scope
4:memory:/user.slice/user-1000.slice/session-2.scope
3:net_cls,net_prio:/
2:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
"""

HYBRID_MOUNTINFO = """\
31 23 0:28 / {root} ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:29 / {root}/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 31 0:30 / {root}/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
36 31 0:33 / {root}/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
37 31 0:34 / {root}/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct
38 31 0:35 / {root}/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
39 31 0:36 / {root}/hugetlb rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,hugetlb
"""
HYBRID_CGROUP = """\
5:hugetlb:/
4:pids:/system.slice/app.service
3:cpu,cpuacct:/system.slice/app.service
2:memory:/system.slice/app.service
1:name=systemd:/system.slice/app.service
0::/system.slice/app.service
"""


def _host(tmp_path, mountinfo, controllers="", dirs=()):
    root = tmp_path / "cg root"  # a space, escaped as \040 in mountinfo
    root.mkdir()
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    if controllers:
        (root / "cgroup.controllers").write_text(controllers)
    return str(root), mountinfo.format(root=str(root).replace(" ", "\\040"))


def test_pure_v2(tmp_path):
    root, mi = _host(tmp_path, PURE_V2_MOUNTINFO, PURE_V2_CONTROLLERS,
                     ["user.slice/user-1000.slice/session-2.scope"])
    layout = cgroups.detect(mi, PURE_V2_CGROUP)
    assert layout.kind == "v2"
    assert layout.v1 == ()
    v2 = layout.v2
    assert (v2.version, v2.path, v2.root) == (2, root, "/")
    assert v2.controllers == ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")
    assert v2.current == "/user.slice/user-1000.slice/session-2.scope"
    assert v2.current_path == os.path.join(root, "user.slice/user-1000.slice/session-2.scope")
    assert v2.current_writable
    assert layout.controller_version("memory") == 2
    assert layout.controller_version("net_cls") is None
    assert layout.v1_mount("memory") is None


def test_pure_v1(tmp_path):
    root, mi = _host(tmp_path, PURE_V1_MOUNTINFO, dirs=["memory", "cpu,cpuacct/user.slice"])
    layout = cgroups.detect(mi, PURE_V1_CGROUP)
    assert layout.kind == "v1" and layout.v2 is None
    by_ctrl = {m.controllers: m for m in layout.v1}
    assert set(by_ctrl) == {("name=systemd",), ("cpu", "cpuacct"), ("memory",),
                            ("net_cls", "net_prio"), ("pids",), ("cpuset",), ("blkio",)}
    cpu = layout.v1_mount("cpuacct")
    assert cpu is layout.v1_mount("cpu") and cpu.path == os.path.join(root, "cpu,cpuacct")
    assert cpu.current == "/user.slice"
    assert cpu.current_path == os.path.join(root, "cpu,cpuacct", "user.slice")
    assert cpu.current_writable
    mem = layout.v1_mount("memory")
    assert mem.current_path == os.path.join(
        root, "memory/user.slice/user-1000.slice/session-2.scope")
    assert not mem.current_writable  # that directory does not exist here
    assert layout.v1_mount("cpuset").current_path == os.path.join(root, "cpuset")
    assert layout.controller_version("pids") == 1
    assert layout.controller_version("io") is None
    assert all(m.version == 1 for m in layout.v1)


def test_pure_v1_after_cgroup2_was_ever_mounted(tmp_path):
    # /proc/self/cgroup gains a "0::" line, but no cgroup2 mount means v1
    _, mi = _host(tmp_path, PURE_V1_MOUNTINFO)
    assert cgroups.detect(mi, PURE_V1_CGROUP + "0::/\n").kind == "v1"


def test_hybrid(tmp_path):
    root, mi = _host(tmp_path, HYBRID_MOUNTINFO, dirs=["unified/system.slice/app.service"])
    (tmp_path / "cg root" / "unified" / "cgroup.controllers").write_text("\n")
    layout = cgroups.detect(mi, HYBRID_CGROUP)
    assert layout.kind == "hybrid"
    assert layout.v2.path == os.path.join(root, "unified")
    assert layout.v2.controllers == ()
    assert layout.v2.current_path == os.path.join(root, "unified/system.slice/app.service")
    assert layout.v2.current_writable
    assert layout.controller_version("memory") == 1
    assert layout.controller_version("hugetlb") == 1
    assert [m.controllers for m in layout.v1] == [
        ("name=systemd",), ("memory",), ("cpu", "cpuacct"), ("pids",), ("hugetlb",)]
    d = layout.to_dict()
    assert d["kind"] == "hybrid"
    assert d["v2"] == {"version": 2, "path": os.path.join(root, "unified"), "controllers": [],
                       "current": os.path.join(root, "unified/system.slice/app.service"),
                       "writable": True}
    assert [m["controllers"] for m in d["v1"]][1] == ["memory"]


def test_v2_with_only_a_named_v1_hierarchy_is_v2(tmp_path):
    # the systemd "legacy" name=systemd mount holds no controllers
    mi = PURE_V2_MOUNTINFO + (
        "40 26 0:40 / {root}/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    )
    _, mi = _host(tmp_path, mi, PURE_V2_CONTROLLERS)
    layout = cgroups.detect(mi, "1:name=systemd:/\n" + PURE_V2_CGROUP)
    assert layout.kind == "v2"
    assert [m.controllers for m in layout.v1] == [("name=systemd",)]


def test_no_cgroups(tmp_path):
    layout = cgroups.detect("22 1 259:2 / / rw - ext4 /dev/root rw\n", "")
    assert (layout.kind, layout.v2, layout.v1) == ("none", None, ())
    assert layout.to_dict() == {"kind": "none", "v2": None, "v1": []}


def test_first_cgroup2_mount_wins_and_v1_bind_mounts_are_merged(tmp_path):
    root, mi = _host(tmp_path, HYBRID_MOUNTINFO, dirs=["unified"])
    extra = (
        "50 31 0:29 /system.slice /mnt/bound rw,relatime - cgroup2 cgroup2 rw\n"
        "51 31 0:33 / /mnt/mem-again rw,relatime - cgroup cgroup rw,memory\n"
    )
    layout = cgroups.detect(mi + extra, HYBRID_CGROUP)
    assert layout.v2.path == os.path.join(root, "unified")
    memory = [m.path for m in layout.v1 if "memory" in m.controllers]
    assert memory == [os.path.join(root, "memory")]


def test_container_sees_its_own_cgroup_as_the_mount_root(tmp_path):
    # docker without a cgroup namespace: each hierarchy is mounted from the
    # container's cgroup, and /proc/self/cgroup shows that same path
    root = tmp_path / "cg"
    (root / "memory").mkdir(parents=True)
    mi = f"60 59 0:33 /docker/abc123 {root}/memory ro,nosuid - cgroup cgroup rw,memory\n"
    layout = cgroups.detect(mi, "4:memory:/docker/abc123\n")
    m = layout.v1_mount("memory")
    assert m.root == "/docker/abc123"
    assert m.current_path == str(root / "memory")
    # a deeper cgroup under the mounted root
    layout = cgroups.detect(mi, "4:memory:/docker/abc123/sub\n")
    assert layout.v1_mount("memory").current_path == str(root / "memory" / "sub")


@pytest.mark.parametrize("mount_root,current", [
    ("/docker/abc123", "/docker/other"),     # outside the mounted subtree
    ("/docker/abc123", "/docker/abc1234"),   # a sibling whose name shares the prefix
    ("/", "/../../system.slice"),            # moved out of our cgroup namespace
    ("/", "/a/../../b"),
    ("/..", "/"),                            # mounted from outside the namespace
])
def test_current_cgroup_outside_the_mount_is_not_visible(tmp_path, mount_root, current):
    mi = f"60 59 0:24 {mount_root} {tmp_path} rw - cgroup2 cgroup2 rw\n"
    layout = cgroups.detect(mi, f"0::{current}\n")
    assert layout.v2.current == current
    assert layout.v2.current_path is None
    assert layout.v2.current_writable is False
    assert layout.to_dict()["v2"]["current"] is None


def test_mountinfo_escapes_and_odd_lines(tmp_path):
    root = tmp_path / "a\tb\\c"
    root.mkdir()
    (root / "cgroup.controllers").write_text("pids\n")
    escaped = str(root).replace("\\", "\\134").replace("\t", "\\011")
    mi = ("garbage line without separator\n"
          "1 2 3\n"
          f"70 1 0:24 / {escaped} rw shared:1 master:2 - cgroup2 none rw\n")
    layout = cgroups.detect(mi, "0::/\n")
    assert layout.v2.path == str(root)
    assert layout.v2.controllers == ("pids",)


def test_unescape_only_takes_octal_triplets():
    assert cgroups._unescape(r"/x\040y") == "/x y"
    assert cgroups._unescape(r"/x\134") == "/x\\"
    assert cgroups._unescape("/x\\9999") == "/x\\9999"  # not octal: kept as is
    assert cgroups._unescape("/x\\\u0661\u0662\u0663") == "/x\\\u0661\u0662\u0663"
    assert cgroups._unescape("/x\\04") == "/x\\04"


# ── this machine ─────────────────────────────────────────────────────────────


def _fs_type(path: str) -> str:
    # statfs(2) through coreutils: an account of the mount independent of mountinfo
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True,
                          check=True).stdout.strip()


def _read(path):
    with open(path) as f:
        return f.read()


def test_real_detection_matches_the_kernels_view():
    layout = cgroups.detect()
    assert layout == cgroups.detect(_read("/proc/self/mountinfo"), _read("/proc/self/cgroup"))
    mounts = ([layout.v2] if layout.v2 else []) + list(layout.v1)
    for m in mounts:
        assert _fs_type(m.path) == ("cgroup2fs" if m.version == 2 else "cgroupfs"), m.path
        if m.current_path is not None:
            # this process is a member of the cgroup detected as its own
            assert str(os.getpid()) in _read(os.path.join(m.current_path, "cgroup.procs")).split()
    if layout.v2 is not None:
        assert layout.v2.controllers == tuple(
            _read(os.path.join(layout.v2.path, "cgroup.controllers")).split())
    # each v1 hierarchy is one line of /proc/self/cgroup, with the same controllers
    lines = _read("/proc/self/cgroup").splitlines()
    hierarchies = [set(line.split(":")[1].split(",")) for line in lines
                   if not line.startswith("0::")]
    for m in layout.v1:
        assert set(m.controllers) in hierarchies


def test_this_host_is_hybrid():
    # the project's machines: v1 controllers, and cgroup2 mounted beside them
    need_cgroup_v1("memory")
    need_cgroup2()
    layout = cgroups.detect()
    assert layout.kind == "hybrid"
    assert layout.controller_version("memory") == 1
    assert layout.controller_version("pids") in (1, 2)
    assert layout.v2.current_writable
    assert layout.v1_mount("memory").current_writable == os.access(
        layout.v1_mount("memory").current_path, os.W_OK)
