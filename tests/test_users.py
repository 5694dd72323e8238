"""PrivateUsers: the child's root is an unprivileged host range (volt_enforce.users).

The ranges come from stand-ins for /etc/subuid and /etc/subgid that the tests
write (VOLT_ENFORCE_SUBUID, VOLT_ENFORCE_SUBGID) and a state directory of their
own (VOLT_ENFORCE_IDMAP_DIR): the real files and /run are never touched."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import pytest
from hypothesis import given, strategies as st
from kernelreq import need, need_userns

from volt_enforce import IsolationConfig, LandlockAccess, LandlockRule, Sandbox, SeccompProfile, users
from volt_enforce.errors import EnforcementError, PolicyError
from volt_enforce.model import LandlockPolicy

PY = sys.executable
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mapping a range needs root")


@pytest.fixture
def ids(tmp_path, monkeypatch):
    """Stand-in subuid/subgid files with 4 slots for root, and a state directory."""
    def write(uid_lines: str, gid_lines: str | None = None) -> None:
        (tmp_path / "subuid").write_text(uid_lines)
        (tmp_path / "subgid").write_text(gid_lines if gid_lines is not None else uid_lines)

    write("# stand-in\nalice:100000:65536\nroot:300000:262144\n",
          "root:500000:262144\n")
    monkeypatch.setenv("VOLT_ENFORCE_SUBUID", str(tmp_path / "subuid"))
    monkeypatch.setenv("VOLT_ENFORCE_SUBGID", str(tmp_path / "subgid"))
    monkeypatch.setenv("VOLT_ENFORCE_IDMAP_DIR", str(tmp_path / "state"))
    write.state = tmp_path / "state"  # type: ignore[attr-defined]
    return write


@pytest.fixture
def shared_dir():
    """A directory the mapped root can reach (tmp_path's parents are 0700)."""
    d = tempfile.mkdtemp(prefix="volt-users-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


# ---- the ranges ------------------------------------------------------------------------------


def test_parse_subid_vectors():
    text = "root:100000:65536\n# c\n0:300000:131072\nbob:1:2\nroot:bad:1\nroot:5\n\n"
    assert users.parse_subid(text) == [(100000, 65536), (300000, 131072)]
    assert users.slots(users.parse_subid(text)) == [100000, 300000, 365536]
    assert users.slots([(0, 196608)]) == [65536, 131072]  # never host id 0
    assert users.slots([(10, 65535)]) == []  # not a whole slot


@given(st.lists(st.tuples(st.integers(0, 1 << 24), st.integers(1, 1 << 20)), max_size=5))
def test_slots_are_whole_and_inside_their_ranges(ranges):
    out = users.slots(ranges)
    assert len(out) == len(set(out))
    for base in out:
        assert base != 0
        assert any(s <= base and base + users.COUNT <= s + c for s, c in ranges)


def test_the_child_is_root_of_a_range_from_subuid(ids, shared_dir):
    need_userns()
    with Sandbox(IsolationConfig(private_users=True)) as sb:
        # the first slot is volt-init's (plan_idmap); a Sandbox gets one of the others
        assert users.plan_idmap().uid == 300000
        assert sb.idmap is not None and sb.idmap.uid in (365536, 431072, 496608)
        assert sb.idmap.gid - 500000 == sb.idmap.uid - 300000
        cp = sb.run(["cat", "/proc/self/uid_map", "/proc/self/gid_map", "/proc/self/status"],
                    capture_output=True, text=True)
        lines = cp.stdout.splitlines()
        assert lines[0].split() == ["0", str(sb.idmap.uid), "65536"]
        assert lines[1].split() == ["0", str(sb.idmap.gid), "65536"]
        uid_line = next(line for line in lines if line.startswith("Uid:"))
        assert uid_line.split()[1:] == ["0"] * 4  # root inside
        assert any("root is host uid" in n for n in sb.report.notes)
        # its processes are that host uid, never host root
        p = sb.popen(["sleep", "300"])
        try:
            with open(f"/proc/{p.pid}/status") as f:
                status = f.read()
            assert f"Uid:\t{sb.idmap.uid}\t" in status
        finally:
            p.kill()
            p.wait()


def test_without_root_lines_the_documented_base(ids):
    need_userns()
    ids("alice:100000:65536\n")
    with Sandbox(IsolationConfig(private_users=True)) as sb:
        assert sb.idmap is not None
        assert (sb.idmap.uid - users.DEFAULT_BASE) % users.COUNT == 0
        assert users.DEFAULT_BASE < sb.idmap.uid < users.DEFAULT_BASE + 256 * users.COUNT


def test_a_range_starting_at_zero_never_maps_host_root(ids):
    ids("root:0:196608\n")
    alloc = users.allocate()
    try:
        assert alloc.idmap.uid not in (0,) and alloc.idmap.uid % users.COUNT == 0
        assert not alloc.idmap.maps_uid(0) and not alloc.idmap.maps_gid(0)
    finally:
        alloc.release()


def test_subuid_and_subgid_must_agree(ids):
    ids("root:300000:65536\n", "")
    with pytest.raises(EnforcementError, match="subgid"):
        users.allocate()


# ---- the allocation ----------------------------------------------------------------------------


def test_allocation_under_concurrency_and_release(ids):
    # 4 slots for root, the first volt-init's: 3 for sandboxes
    got: list[users.Allocation] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def take():
        try:
            a = users.allocate()
            with lock:
                got.append(a)
        except EnforcementError as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.idmap.uid for a in got) == [365536, 431072, 496608]
    assert len(errors) == 5 and all(e.errno == errno.EBUSY for e in errors)
    # another process sees them taken too
    code = ("import volt_enforce.users as u\n"
            "try:\n    u.allocate()\nexcept OSError as e:\n    print('busy', e.errno)\n")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=os.environ).stdout
    assert out.strip() == f"busy {errno.EBUSY}"
    got[0].release()
    again = users.allocate()
    assert again.idmap == got[0].idmap
    for a in [again, *got[1:]]:
        a.release()
    assert sorted(os.listdir(ids.state)) == ["lock"]


def test_a_dead_owners_slot_is_free_again(ids):
    code = "import volt_enforce.users as u\nprint(u.allocate().idmap.uid)\n"  # never released
    dead = int(subprocess.run([PY, "-c", code], capture_output=True, text=True,
                              env=os.environ).stdout)
    assert len(os.listdir(ids.state)) == 2  # its slot file stayed behind
    alloc = users.allocate()
    try:
        assert alloc.idmap.uid == dead
    finally:
        alloc.release()


def test_sandbox_close_releases_its_slot_and_fd(ids):
    need_userns()
    fds = len(os.listdir("/proc/self/fd"))
    sb = Sandbox(IsolationConfig(private_users=True))
    assert len(os.listdir(ids.state)) == 2
    sb.close()
    assert sorted(os.listdir(ids.state)) == ["lock"]
    assert len(os.listdir("/proc/self/fd")) == fds


def test_siblings_share_the_namespace_sandboxes_do_not(ids):
    need_userns()
    with Sandbox(IsolationConfig(private_users=True)) as a, \
            Sandbox(IsolationConfig(private_users=True)) as b:
        assert a.idmap != b.idmap
        ns = [sb.run(["readlink", "/proc/self/ns/user"], capture_output=True, text=True).stdout
              for sb in (a, a, b)]
        assert ns[0] == ns[1] != ns[2]


# ---- what the mapped root can do to host files -------------------------------------------------

_META = """
import os, sys
path = sys.argv[1]
for name, fn in (("chmod", lambda: os.chmod(path, 0o4755)), ("chown", lambda: os.chown(path, 1, 1)),
                 ("utime", lambda: os.utime(path, (0, 0)))):
    try:
        fn(); print(name, "done")
    except OSError as exc:
        print(name, "refused", exc.errno)
"""


def test_mapped_root_cannot_change_host_root_files(ids, shared_dir):
    need_userns()
    target = os.path.join(shared_dir, "tool")
    with open(target, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(target, 0o755)
    # granted writable, no seccomp filter, every capability: only the uid stops it
    os.chmod(shared_dir, 0o1777)
    with Sandbox(_rw(shared_dir)) as sb:
        cp = sb.run(["/usr/bin/python3", "-S", "-c", _META, target], capture_output=True, text=True)
    assert cp.stdout.split("\n")[:3] == [f"{n} refused {errno.EPERM}" for n in
                                         ("chmod", "chown", "utime")], cp.stdout + cp.stderr
    st = os.stat(target)
    assert (st.st_mode & 0o7777, st.st_uid) == (0o755, 0)
    # control: the same unsandboxed (host root)
    cp = subprocess.run(["/usr/bin/python3", "-S", "-c", _META, target], capture_output=True,
                        text=True)
    assert cp.stdout.split("\n")[:3] == ["chmod done", "chown done", "utime done"]


def _rw(path: str, seccomp: SeccompProfile | None = None) -> IsolationConfig:
    return IsolationConfig(private_users=True, seccomp=seccomp, landlock=LandlockPolicy(
        rules=[LandlockRule(path="/", access=LandlockAccess.READ_EXEC),
                         LandlockRule(path=path, access=LandlockAccess.READ_WRITE)]))


def test_a_writable_dir_the_mapped_root_cannot_write_is_refused(ids, shared_dir):
    """Without a filter that keeps setuid bits off what it makes there, no idmapped
    bind: refused, naming the directory and the uid it needs."""
    need_userns()
    with pytest.raises(PolicyError) as exc:
        Sandbox(_rw(shared_dir))
    msg = str(exc.value)
    assert shared_dir in msg and "host uid" in msg and "seccomp strict or default" in msg
    assert sorted(os.listdir(ids.state)) == ["lock"]  # nothing stays allocated
    # given to the uid it names, it works, and what the child writes is that uid's
    uid = int(msg.split("give uid ")[1].split()[0])
    os.chown(shared_dir, uid, uid)
    with Sandbox(_rw(shared_dir)) as sb:
        assert sb.idmap is not None and sb.idmap.uid == uid
        cp = sb.run(["sh", "-c", f"echo x > {shared_dir}/made"], capture_output=True, text=True)
        assert cp.returncode == 0, cp.stderr
    assert os.stat(os.path.join(shared_dir, "made")).st_uid == uid


def test_without_a_view_no_idmapped_bind(ids, shared_dir):
    """contain=False has no view to bind into: refused as before, naming the uid."""
    need_userns()
    with pytest.raises(PolicyError) as exc:
        Sandbox(_rw(shared_dir, SeccompProfile.DEFAULT), contain=False)
    assert shared_dir in str(exc.value) and "give uid" in str(exc.value)
    assert sorted(os.listdir(ids.state)) == ["lock"]


def _need_idmap(path: str) -> None:
    alloc = users.allocate()
    try:
        fd = users.open_userns(alloc.idmap)
        try:
            os.close(users.idmapped_tree(path, fd))
            ok, why = True, ""
        except OSError as exc:
            ok, why = False, f"{users.fs_type(path)} at {path}: {exc.strerror}"
        finally:
            os.close(fd)
    finally:
        alloc.release()
    need("idmapped mounts", ok, why)


#: What the child tries in a directory bound idmapped: make a file, then give it
#: (and a file of host root's that was there) setuid bits, root's ownership and a
#: file capability, and create files and directories with setuid/setgid modes.
_IDMAPPED = r"""
import os, sys
d = sys.argv[1]
made = os.path.join(d, "made")
with open(made, "w") as f:
    f.write("#!/bin/sh\n")
print("id", os.getuid())
cap = bytes.fromhex("01000002" + "ffffffff" * 2 + "00000000" * 2)  # v2, every cap +ep
tries = [
    ("chmod", lambda: os.chmod(made, 0o4755)),
    ("chmod-g", lambda: os.chmod(made, 0o2755)),
    ("chown", lambda: os.chown(made, 0, 0)),
    ("setcap", lambda: os.setxattr(made, "security.capability", cap)),
    ("creat", lambda: os.close(os.open(os.path.join(d, "c"), os.O_CREAT | os.O_WRONLY, 0o6755))),
    ("mkdir", lambda: os.mkdir(os.path.join(d, "m"), 0o2755)),
    ("victim", lambda: os.chmod(os.path.join(d, "victim"), 0o4755)),
]
for name, fn in tries:
    try:
        fn(); print(name, "done")
    except OSError as exc:
        print(name, "refused", exc.errno)
for sib in sys.argv[2:]:
    try:
        open(os.path.join(sib, "x"), "w").close(); print("sibling done")
    except OSError as exc:
        print("sibling refused", exc.errno)
"""


def _privileged(d: str) -> list[str]:
    """Files below ``d`` that would give a host user something: a setuid/setgid bit,
    a file capability."""
    out = []
    for name in os.listdir(d):
        p = os.path.join(d, name)
        st = os.lstat(p)
        if st.st_mode & 0o6000 and not os.path.isdir(p):
            out.append(f"{name}: mode {st.st_mode & 0o7777:o} uid {st.st_uid}")
        try:
            os.getxattr(p, "security.capability", follow_symlinks=False)
            out.append(f"{name}: security.capability")
        except OSError:
            pass
    return out


@pytest.mark.parametrize("owner", [(0, 0), (1234, 2345)], ids=["root's", "another uid's"])
def test_a_dir_the_mapped_root_cannot_write_is_bound_idmapped(ids, owner):
    """--rw of a directory the mapped root cannot write (host root's 0755, another
    uid's): bound idmapped, its owner as the child's root. What the child makes
    lands as the owner, and nothing it does there leaves a setuid/setgid file or a
    file capability; a host root file there stays as it was; a sibling not named
    writable stays out of reach. Control: host root does it all unsandboxed."""
    need_userns()
    base = tempfile.mkdtemp(prefix="volt-idmap-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        d, sibling = os.path.join(base, "rw"), os.path.join(base, "sibling")
        for p in (d, sibling):
            os.mkdir(p, 0o755)
        os.chown(d, *owner)
        victim = os.path.join(d, "victim")
        with open(victim, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(victim, 0o755)
        _need_idmap(d)
        cmd = ["/usr/bin/python3", "-S", "-c", _IDMAPPED, d, sibling, "/etc"]
        with Sandbox(_rw(d, SeccompProfile.DEFAULT)) as sb:
            assert any("bound idmapped" in n and d in n for n in sb.report.notes)
            assert "SETFCAP" not in (sb.report.capabilities or ())
            assert sb.view is not None and sb.view.plan.idmapped() == [d]
            cp = sb.run(cmd, capture_output=True, text=True)
        out = cp.stdout.splitlines()
        assert out[0] == "id 0", cp.stdout + cp.stderr
        got = dict(line.split()[:2] for line in out[1:8])
        assert got == {"chmod": "refused", "chmod-g": "refused", "chown": "done",
                       "setcap": "refused", "creat": "refused", "mkdir": "refused",
                       "victim": "refused"}, cp.stdout
        # the sibling is absent (the private /tmp), /etc read-only
        assert out[8:] == [f"sibling refused {errno.ENOENT}", f"sibling refused {errno.EROFS}"]
        st = os.stat(os.path.join(d, "made"))
        assert (st.st_uid, st.st_gid) == owner  # not a mapped id, not 0 unless the dir is 0's
        assert _privileged(d) == []
        assert os.stat(victim).st_mode & 0o7777 == 0o755 and os.stat(victim).st_uid == 0
        assert os.listdir(sibling) == []
        # control: the same unsandboxed (host root), in a fresh directory of that owner
        ctl = os.path.join(base, "control")
        os.mkdir(ctl, 0o755)
        os.chown(ctl, *owner)
        shutil.copy(victim, os.path.join(ctl, "victim"))
        cp = subprocess.run(["/usr/bin/python3", "-S", "-c", _IDMAPPED, ctl], capture_output=True,
                            text=True)
        assert {line.split()[0]: line.split()[1] for line in cp.stdout.splitlines()[1:8]} == \
            dict.fromkeys(got, "done"), cp.stdout + cp.stderr
        assert os.stat(os.path.join(ctl, "made")).st_uid == 0  # host root's, not the owner's
        assert _privileged(ctl)
    finally:
        shutil.rmtree(base)


_RAMFS = """
import os, subprocess, sys
from volt_enforce import IsolationConfig, LandlockAccess, LandlockRule, Sandbox, SeccompProfile
from volt_enforce.errors import PolicyError
from volt_enforce.model import LandlockPolicy
d = sys.argv[1]
if sys.argv[2:] == ["ramfs"]:
    subprocess.run(["mount", "-t", "ramfs", "-o", "mode=0755", "none", d], check=True)
cfg = IsolationConfig(private_users=True, seccomp=SeccompProfile.DEFAULT, landlock=LandlockPolicy(
    rules=[LandlockRule(path="/", access=LandlockAccess.READ_EXEC),
           LandlockRule(path=d, access=LandlockAccess.READ_WRITE)]))
try:
    Sandbox(cfg).close()
    print("made")
except PolicyError as exc:
    print(exc)
"""


def test_a_filesystem_without_idmapped_mounts_is_refused(ids, shared_dir):
    """ramfs has no idmapped mounts: the run fails naming the directory, its
    filesystem and the uid it needs (in a mount namespace of the test's own).
    Control: the same directory on the host's filesystem is made."""
    need_userns()
    d = os.path.join(shared_dir, "ram")
    os.mkdir(d, 0o755)
    cp = subprocess.run(["unshare", "--mount", "--propagation", "private", PY, "-c", _RAMFS, d,
                         "ramfs"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    msg = cp.stdout
    assert d in msg and "(ramfs)" in msg and "give uid" in msg, msg
    assert sorted(os.listdir(ids.state)) == ["lock"]
    assert os.listdir(d) == []  # nothing made on the host's side of the mount point
    _need_idmap(d)
    cp = subprocess.run([PY, "-c", _RAMFS, d],
                        capture_output=True, text=True, timeout=60)
    assert cp.stdout.splitlines()[-1] == "made", cp.stdout + cp.stderr


def test_idmapped_tree_shows_host_root_files_as_the_mapped_root(ids, shared_dir):
    """For the view: a bind idmapped through the namespace makes host root's files
    the namespace root's (control: the same file through the plain path)."""
    need_userns()
    _need_idmap(shared_dir)  # the 6.1 VM's /tmp (an overlay) has no idmapped mounts
    path = os.path.join(shared_dir, "f")
    open(path, "w").close()
    alloc = users.allocate()
    fd = users.open_userns(alloc.idmap)
    try:
        tree = users.idmapped_tree(shared_dir, fd)
        try:
            assert os.stat("f", dir_fd=tree).st_uid == alloc.idmap.uid
            assert os.stat(path).st_uid == 0
        finally:
            os.close(tree)
    finally:
        os.close(fd)
        alloc.release()


def test_volt_init_plans_map_the_first_slot(ids, tmp_path):
    """volt-init restricts itself: its plan carries the range's first slot, and the
    shim makes the namespace from outside (a holder) before joining it."""
    need_userns()
    from volt_enforce.init_plan import compile_plan, volt_init_path

    text = compile_plan(IsolationConfig(private_users=True))
    assert f"userns {300000:x} {500000:x} {65536:x}" in text.splitlines()
    plan = tmp_path / "plan"
    plan.write_text(text)
    cp = subprocess.run([volt_init_path(), str(plan), "--", "cat", "/proc/self/uid_map",
                         "/proc/self/gid_map"], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert [line.split() for line in cp.stdout.splitlines()] == [
        ["0", "300000", "65536"], ["0", "500000", "65536"]]


def test_an_unprivileged_caller_maps_root_to_itself():
    """Only root can map a range: a caller of another uid gets root mapped to itself
    (the child writes its own one-id map), and the report says so."""
    need_userns()
    from forked import json_reply

    def child():
        import ctypes
        import importlib.readers  # noqa: F401  (below root's 0700 home: import before)

        from volt_enforce.compile import compile_config

        compile_config(IsolationConfig(private_users=True), contain=False).close()
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        # a uid change makes a process non-dumpable (its /proc/self files root's); a
        # process started as that user is dumpable
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
        with Sandbox(IsolationConfig(private_users=True), contain=False) as sb:
            cp = sb.run(["cat", "/proc/self/uid_map"], capture_output=True, text=True)
            return {"map": cp.stdout.split(), "rc": cp.returncode, "err": cp.stderr,
                    "notes": sb.report.notes}

    status, reply = json_reply(child)
    assert status == 0, reply
    got = reply["ok"]
    assert got["rc"] == 0, got["err"]
    assert got["map"] == ["0", "65534", "1"]
    assert any("root is the caller, host uid 65534" in n for n in got["notes"])


def test_a_plan_refuses_a_dir_its_root_cannot_write(ids, shared_dir, tmp_path):
    """volt-init plans carry no idmapped binds: compiling one whose writable directory
    the plan's root (the range's first slot) cannot write fails, naming the directory
    and the uid; given to that uid, the plan compiles and volt-init's child writes
    there as that uid (before, it compiled and the child met EACCES)."""
    need_userns()
    from volt_enforce.init_plan import compile_plan, volt_init_path

    cfg = _rw(shared_dir, SeccompProfile.DEFAULT)
    with pytest.raises(PolicyError) as exc:
        compile_plan(cfg)
    msg = str(exc.value)
    assert shared_dir in msg and "give uid 300000 write access" in msg, msg
    os.chown(shared_dir, 300000, 500000)
    plan = tmp_path / "plan"
    plan.write_text(compile_plan(cfg))
    cp = subprocess.run([volt_init_path(), str(plan), "--", "sh", "-c", f"echo x > {shared_dir}/made"],
                        capture_output=True, text=True, timeout=60, cwd="/")
    assert cp.returncode == 0, cp.stderr
    assert os.stat(os.path.join(shared_dir, "made")).st_uid == 300000
