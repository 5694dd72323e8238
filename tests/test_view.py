"""The filesystem view of a contained child (volt_enforce.view): attacks on the host's
files under the CLI default and the contained library config, each against the same
attack unsandboxed (the control, so that the test can fail); what a program sees in
the view; siblings; cwd; real programs with a --rw work directory.

Every attack targets a stand-in the test makes (a root-owned file in a directory it
makes, a setuid copy of id(1) of its own, a unique name under /run and /var that it
removes); no real system file is changed."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest
from kernelreq import need_landlock

import volt_enforce
from volt_enforce import IsolationConfig, LandlockAccess, LandlockRule, SeccompProfile
from volt_enforce.view import plan_view, preset_private

VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")
PY = sys.executable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the view is built by root")

_A = LandlockAccess


def _library_config(*rw: str, ro: tuple[str, ...] = (), rwx: tuple[str, ...] = ()) -> IsolationConfig:
    """The README's strongest library config (server preset, default seccomp, network
    none), contained, with the test's directories and its Python."""
    cfg = volt_enforce.default_isolation("/")
    cfg.network = volt_enforce.NetworkConfig(mode=volt_enforce.NetworkMode.NONE)
    cfg.private_users = False
    cfg.resources = None
    cfg.seccomp = SeccompProfile.DEFAULT
    assert cfg.landlock is not None
    for path in rw:
        cfg.landlock.rules.append(LandlockRule(path=path, access=_A.READ_WRITE))
    for path in ro:
        cfg.landlock.rules.append(LandlockRule(path=path, access=_A.READ_ONLY))
    for path in rwx:
        cfg.landlock.rules.append(LandlockRule(path=path, access=_A.READ_WRITE | _A.EXECUTE))
    for prefix in {sys.prefix, sys.base_prefix}:
        cfg.landlock.rules.append(LandlockRule(path=prefix, access=_A.READ_EXEC))
    return cfg


def _without_abi_warnings(text: str) -> str:
    """``text`` less the warnings of a kernel below the preset's Landlock ABI (one per
    right it lacks, as on the 6.1 VM's ABI 2): they depend on the kernel, not the view."""
    return "".join(ln for ln in text.splitlines(keepends=True)
                   if not re.fullmatch(r"volt-enforce: warning: landlock .* dropped: \S+ needs "
                                       r"ABI \d+, kernel has \d+\n?", ln))


def _cli(*cmd: str, opts: tuple[str, ...] = (), **kw: object) -> subprocess.CompletedProcess[str]:
    pyopts: list[str] = []
    for prefix in sorted({sys.prefix, sys.base_prefix}):
        pyopts += ["--rox", prefix]
    return subprocess.run([VOLT, "run", *opts, *pyopts, "--", *cmd], text=True,
                          capture_output=True, timeout=120, **kw)  # type: ignore[call-overload]


def _lib(cmd: list[str], cfg: IsolationConfig, **kw: object) -> subprocess.CompletedProcess[str]:
    return volt_enforce.run(cmd, isolation=cfg, capture_output=True, text=True, timeout=120,
                            **kw)


def _plain(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]


@pytest.fixture
def shared_dir():
    """A directory any uid may traverse (tmp_path's parents are root's 0700)."""
    d = tempfile.mkdtemp(prefix="volt-view-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- attack 1: metadata of root-owned files the policy grants read-only, or not at all ---

_META = r"""
import errno, json, os, sys
out = {}
for path in sys.argv[1:]:
    for name, call in (("chmod", lambda: os.chmod(path, 0o666)),
                       ("chmod-setuid", lambda: os.chmod(path, 0o4755)),
                       ("chown", lambda: os.chown(path, 1, 1)),
                       ("touch", lambda: os.utime(path, (0, 0))),
                       ("setxattr", lambda: os.setxattr(path, "user.volt", b"1")),
                       ("setcap", lambda: os.setxattr(path, "security.capability",
                            bytes.fromhex("0100000201000000000000000000000000000000")))):
        try:
            call()
            out[path + " " + name] = "ok"
        except OSError as exc:
            out[path + " " + name] = errno.errorcode[exc.errno]
print(json.dumps(out))
"""


@pytest.fixture
def standins(tmp_path):
    """A root-owned file in a directory the test grants read-only, and one in a
    directory it does not grant."""
    granted, hidden = tmp_path / "granted", tmp_path / "hidden"
    for d in (granted, hidden):
        d.mkdir()
        (d / "file").write_text("stand-in\n")
        os.chown(d / "file", 0, 0)
        os.chmod(d / "file", 0o644)
    return str(granted), str(hidden)


def _unchanged(path: str) -> None:
    st = os.stat(path)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, 0, 0)
    assert st.st_mtime > 0
    assert "user.volt" not in os.listxattr(path)
    assert "security.capability" not in os.listxattr(path)


def _expect_denied(out: dict[str, str], granted: str, hidden: str) -> None:
    assert len(out) == 12
    for key, got in out.items():
        want = "EROFS" if key.startswith(granted) else "ENOENT"
        if key.endswith("chmod-setuid"):  # seccomp refuses the mode bits first
            assert got in (want, "EPERM"), (key, out)
        else:
            assert got == want, (key, out)


def _user_xattrs(directory: str) -> bool:
    """Whether the filesystem of ``directory`` stores user.* xattrs (tmpfs only since
    Linux 6.6: the 6.1 VM's /tmp does not)."""
    probe = os.path.join(directory, ".xattr-probe")
    open(probe, "w").close()
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError as exc:
        if exc.errno != errno.ENOTSUP:
            raise
        return False
    finally:
        os.unlink(probe)


def test_metadata_control_changes_the_file(standins):
    granted, hidden = standins
    f = os.path.join(granted, "file")
    user_xattrs = _user_xattrs(granted)
    out = json.loads(_plain([PY, "-c", _META, f]).stdout)
    if not user_xattrs:  # the only call the filesystem refuses: the others still show root's reach
        assert out.pop(f + " setxattr") == "ENOTSUP"
    assert set(out.values()) == {"ok"}, out
    st = os.stat(f)
    assert (st.st_uid, st.st_gid, st.st_mtime) == (1, 1, 0)
    assert "security.capability" in os.listxattr(f)
    assert ("user.volt" in os.listxattr(f)) == user_xattrs


def test_metadata_from_the_cli_default(standins):
    need_landlock()
    granted, hidden = standins
    files = [os.path.join(granted, "file"), os.path.join(hidden, "file")]
    r = _cli(PY, "-c", _META, *files, opts=("--ro", granted))
    assert r.returncode == 0, r.stderr
    _expect_denied(json.loads(r.stdout), granted, hidden)
    for f in files:
        _unchanged(f)


def test_metadata_from_the_library_default(standins):
    need_landlock()
    granted, hidden = standins
    files = [os.path.join(granted, "file"), os.path.join(hidden, "file")]
    r = _lib([PY, "-c", _META, *files], _library_config(ro=(granted,)))
    assert r.returncode == 0, r.stderr
    _expect_denied(json.loads(r.stdout), granted, hidden)
    for f in files:
        _unchanged(f)


# ---- attack 2: a setuid-root executable in a writable directory ---------------------------

_AS_NOBODY = "import os, sys; os.setgid(65534); os.setuid(65534); os.execv(sys.argv[1], sys.argv[1:])"


@pytest.fixture
def setuid_id(shared_dir):
    """A setuid-root copy of id(1) in a directory the child may write and execute in."""
    target = os.path.join(shared_dir, "id")
    shutil.copy2(shutil.which("id") or "/usr/bin/id", target)
    os.chown(target, 0, 0)
    os.chmod(target, 0o4755)
    return shared_dir, target


def test_setuid_control_runs_as_root(setuid_id):
    _, target = setuid_id
    r = _plain([PY, "-c", _AS_NOBODY, target, "-u"])
    assert r.stdout.strip() == "0", r.stderr


def test_setuid_from_the_cli_default(setuid_id):
    need_landlock()
    work, target = setuid_id
    r = _cli(PY, "-c", _AS_NOBODY, target, "-u", opts=("--rw", work, "--rox", work))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "65534"


def test_setuid_from_the_library_default(setuid_id):
    need_landlock()
    work, target = setuid_id
    r = _lib([PY, "-c", _AS_NOBODY, target, "-u"], _library_config(rwx=(work,)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "65534"


def test_writable_binds_are_nosuid_and_nodev(tmp_path):
    work = str(tmp_path)
    r = _lib([PY, "-c", "print(open('/proc/self/mountinfo').read())"], _library_config(work))
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.split()[4] == work)
    opts = line.split()[5].split(",")
    assert {"rw", "nosuid", "nodev", "noexec"} <= set(opts), line


# ---- attack 3: writes under the preset's /run and /var -----------------------------------

_WRITE = r"""
import sys
for path in sys.argv[1:]:
    with open(path, "w") as f:
        f.write("x")
print("written")
"""


@pytest.fixture
def system_names():
    name = f"volt-view-test-{uuid.uuid4().hex}"
    paths = [os.path.join("/run", name), os.path.join("/var", name)]
    yield paths
    for p in paths:
        if os.path.lexists(p):
            os.unlink(p)


def test_system_dirs_control_reaches_the_host(system_names):
    r = _plain([PY, "-c", _WRITE, *system_names])
    assert r.stdout.strip() == "written", r.stderr
    assert all(os.path.exists(p) for p in system_names)


def test_system_dirs_from_the_cli_default(system_names):
    need_landlock()
    r = _cli(PY, "-c", _WRITE, *system_names)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "written"  # private: the write works, in the view
    assert not any(os.path.lexists(p) for p in system_names)


def test_system_dirs_from_the_library_default(system_names):
    need_landlock()
    r = _lib([PY, "-c", _WRITE, *system_names], _library_config())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "written"
    assert not any(os.path.lexists(p) for p in system_names)


def test_rw_names_a_host_system_dir_writable(tmp_path, system_names):
    """Named by the caller (--rw /run), the host directory is bound writable."""
    r = _cli(PY, "-c", _WRITE, system_names[0], opts=("--rw", "/run"))
    assert r.returncode == 0, r.stderr
    assert os.path.exists(system_names[0])


# ---- attack 8: a binary written into a writable directory, run through ld.so -------------

_LDSO = "/lib64/ld-linux-x86-64.so.2"
_DROP = r"""
import os, shutil, subprocess, sys
work = sys.argv[1]
b = os.path.join(work, "b")
shutil.copyfile("/usr/bin/true", b)
os.chmod(b, 0o755)
for argv in ([b], [sys.argv[2], b]):
    try:
        print(subprocess.run(argv, capture_output=True).returncode)
    except OSError as exc:
        print(exc.errno)
"""


@pytest.mark.skipif(not os.path.exists(_LDSO), reason="an x86-64 glibc loader")
def test_ldso_control_runs_the_binary(tmp_path):
    r = _plain([PY, "-c", _DROP, str(tmp_path), _LDSO])
    assert r.stdout.split() == ["0", "0"], r.stderr


def _assert_not_run(out: str) -> None:
    direct, via_loader = out.split()
    assert direct == str(__import__("errno").EACCES)  # execve on a noexec mount
    assert via_loader not in ("0",)  # ld.so cannot map it executable


@pytest.mark.skipif(not os.path.exists(_LDSO), reason="an x86-64 glibc loader")
def test_ldso_from_the_cli_default(tmp_path):
    need_landlock()
    r = _cli(PY, "-c", _DROP, str(tmp_path), _LDSO, opts=("--rw", str(tmp_path)))
    assert r.returncode == 0, r.stderr
    _assert_not_run(r.stdout)


@pytest.mark.skipif(not os.path.exists(_LDSO), reason="an x86-64 glibc loader")
def test_ldso_from_the_library_default(tmp_path):
    need_landlock()
    r = _lib([PY, "-c", _DROP, str(tmp_path), _LDSO], _library_config(str(tmp_path)))
    assert r.returncode == 0, r.stderr
    _assert_not_run(r.stdout)


# ---- what a program sees ------------------------------------------------------------------


def test_proc_ls_tmp_under_the_default(tmp_path):
    need_landlock()
    script = ("cat /proc/self/status | head -1; ls /; echo hi > /tmp/x && cat /tmp/x; "
              "ls /home 2>&1; ls /dev")
    r = _cli("sh", "-c", script)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Name:\tcat"
    top = set(lines[1:lines.index("hi")])
    assert {"usr", "etc", "tmp", "proc", "dev", "run", "var"} <= top
    home_top = os.environ.get("HOME", "").strip("/").split("/")[0]
    assert "home" not in top or home_top == "home"
    if home_top:
        assert home_top in top  # the private $HOME's mount point
    assert "No such file or directory" in r.stdout
    dev = set(lines[lines.index("hi") + 2:])
    assert dev == {"fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
                   "stdout", "tty", "urandom", "zero"}


_POOL = r"""
import multiprocessing, sys
def sq(x):
    return x * x
if __name__ == "__main__":
    with multiprocessing.Pool(2) as p:
        print(sum(p.map(sq, range(10))))
    sem = multiprocessing.Semaphore(1)  # POSIX semaphore: /dev/shm
    sem.acquire()
    print("sem")
"""


def test_multiprocessing_pool_under_the_default():
    need_landlock()
    r = _cli(PY, "-c", _POOL)
    assert (r.returncode, r.stdout.split()) == (0, ["285", "sem"]), r.stderr
    r = _lib([PY, "-c", _POOL], _library_config())
    assert (r.returncode, r.stdout.split()) == (0, ["285", "sem"]), r.stderr


def test_home_is_private_empty_and_writable(tmp_path, monkeypatch):
    need_landlock()
    home = "/root"
    monkeypatch.setenv("HOME", home)  # the view's $HOME is the caller's
    marker = os.path.join(home, f"volt-{uuid.uuid4().hex}")
    # only the granted paths that live below $HOME (this Python, perhaps) are there
    granted = {os.path.relpath(p, home).split("/")[0] for p in (sys.prefix, sys.base_prefix)
               if p.startswith(home.rstrip("/") + "/")}
    with volt_enforce.Sandbox(_library_config()) as sb:  # prepared now, with this $HOME
        r = sb.run(["sh", "-c", f'ls -A "$HOME"; echo x > {marker} && cat {marker}'],
                   capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == sorted(granted) + ["x"]
    assert not os.path.exists(marker)
    ctl = _plain(["sh", "-c", f"echo x > {marker}"])
    assert ctl.returncode == 0 and os.path.exists(marker)
    os.unlink(marker)


def test_siblings_do_not_see_each_other():
    need_landlock()
    with volt_enforce.Sandbox(_library_config()) as sb:
        a = sb.popen(["sh", "-c", "echo a > /tmp/a; echo a > /dev/shm/a; echo ready; read x"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert a.stdout is not None
            assert a.stdout.readline().strip() == "ready"
            b = sb.run(["sh", "-c", "ls -A /tmp /dev/shm; cat /tmp/a 2>&1"],
                       capture_output=True, text=True)
        finally:
            a.communicate("go\n", timeout=30)
    assert "No such file or directory" in b.stdout
    assert "a\n" not in b.stdout.replace("/tmp/a", "")
    assert not os.path.exists("/dev/shm/a") or open("/dev/shm/a").read() != "a\n"


def test_without_a_policy_the_host_root_is_read_only():
    cfg = IsolationConfig()
    work = tempfile.mkdtemp(prefix="volt-view-", dir="/var/tmp")  # /tmp is private
    request_cleanup = shutil.rmtree
    target = __import__("pathlib").Path(work) / "x"
    r = _lib(["sh", "-c", f"ls / >/dev/null && touch {target}; echo y > /tmp/y && cat /tmp/y"],
             cfg)
    assert "Read-only file system" in r.stderr
    assert r.stdout.strip() == "y"
    assert not target.exists()
    ctl = _lib(["sh", "-c", f"touch {target}"], cfg, contain=False)
    assert ctl.returncode == 0 and target.exists()
    request_cleanup(work)


# ---- cwd ------------------------------------------------------------------------------------


def test_relative_paths_after_the_pivot(tmp_path):
    need_landlock()
    (tmp_path / "f").write_text("inside\n")
    r = _lib(["sh", "-c", "cat ./f; pwd; echo out > ./g"], _library_config(str(tmp_path)),
             cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["inside", str(tmp_path)]
    assert (tmp_path / "g").read_text() == "out\n"


def test_cwd_outside_the_view_starts_in_root(tmp_path):
    need_landlock()
    cwd = tmp_path / "outside"
    cwd.mkdir()
    r = _cli("pwd", cwd=str(cwd))
    assert (r.returncode, r.stdout) == (0, "/\n")
    assert _without_abi_warnings(r.stderr) == \
        f"volt-enforce: the view lacks the working directory {cwd}: starting in /\n"
    with volt_enforce.Sandbox(_library_config()) as sb:
        p = sb.popen(["pwd"], cwd=str(cwd), stdout=subprocess.PIPE, text=True)
        out, _ = p.communicate(timeout=30)
    assert out == "/\n" and p.cwd_outside_view == str(cwd)


# ---- the preset table survives JSON -----------------------------------------------------------


def test_json_round_trip_keeps_the_private_dirs():
    cfg = volt_enforce.default_isolation("/")
    again = IsolationConfig.from_json(cfg.to_json())
    assert again.landlock is not None and cfg.landlock is not None
    assert [preset_private(r) for r in again.landlock.rules] == [
        preset_private(r) for r in cfg.landlock.rules]
    assert plan_view(again).to_dict() == plan_view(cfg).to_dict()
    private = set(plan_view(again).to_dict()["private"])
    assert {"/tmp", "/var", "/run"} <= private


def test_a_rule_on_root_never_makes_it_writable():
    cfg = IsolationConfig(landlock=volt_enforce.LandlockPolicy(
        rules=[LandlockRule("/", _A.READ_WRITE | _A.EXECUTE)]))
    assert plan_view(cfg).to_dict()["root_read_only"] is True
    assert plan_view(cfg, named_writable=("/",)).to_dict()["root_read_only"] is False


# ---- real programs with a --rw work directory ---------------------------------------------------


def test_git_commit_in_a_work_dir(tmp_path):
    need_landlock()
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    script = ("git init -q . && echo x > f && git add f && "
              "git -c user.name=t -c user.email=t@t commit -qm m && git log --format=%s")
    r = _cli("sh", "-c", script, opts=("--rw", str(tmp_path)), cwd=str(tmp_path))
    assert (r.returncode, r.stdout) == (0, "m\n"), r.stderr


def test_venv_and_pip_in_a_work_dir(tmp_path):
    need_landlock()
    script = f"{PY} -m venv ve && ve/bin/python -m pip --version"
    r = _cli("sh", "-c", script, opts=("--rw", str(tmp_path)), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pip ")


# ---- the README's first command -------------------------------------------------------------------


def test_readme_first_command_prints_what_the_readme_says(tmp_path):
    readme = open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md")).read()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    first = block.splitlines()[0]
    demo = first.split("volt-enforce run", 1)[1]
    shown = readme.split("prints:\n\n```text\n", 1)[1].split("```", 1)[0]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    r = subprocess.run(f"{VOLT} run{demo}", shell=True, capture_output=True, text=True,
                       cwd=outside, timeout=120)
    host = open("/etc/hostname").read().strip()
    want = shown.replace("HOSTNAME", host).replace("DIR", str(outside))
    assert sorted(_without_abi_warnings(r.stdout + r.stderr).splitlines()) == \
        sorted(want.splitlines())


# ---- another rootfs ----------------------------------------------------------------------------

_BUSYBOX = shutil.which("busybox")


def _rootfs(base, *, with_mount_points: bool) -> str:
    """A tiny container rootfs: a static busybox, its links, an /etc of its own."""
    root = base / "rootfs"
    for d in ("usr/bin", "etc", "tmp", "var", "run", "app", "lib"):
        (root / d).mkdir(parents=True)
    if with_mount_points:
        (root / "dev").mkdir()
        (root / "proc").mkdir()
    assert _BUSYBOX is not None
    shutil.copy2(_BUSYBOX, root / "usr/bin/busybox")
    for tool in ("sh", "cat", "ls", "touch", "grep"):
        os.symlink("busybox", root / "usr/bin" / tool)
    os.symlink("usr/bin", root / "bin")
    os.symlink("usr/bin", root / "sbin")
    (root / "etc/os-release").write_text("ID=volt-test-rootfs\n")
    return str(root)


def _rootfs_config(root: str, **kw: object) -> IsolationConfig:
    cfg = volt_enforce.default_isolation(root)
    cfg.private_users = False
    cfg.resources = None
    cfg.network = volt_enforce.NetworkConfig(mode=volt_enforce.NetworkMode.NONE)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _tree(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


@pytest.mark.skipif(_BUSYBOX is None, reason="a static busybox for the test's rootfs")
@pytest.mark.parametrize("mount_points", [True, False], ids=["with-mount-points", "bare"])
def test_rootfs_is_the_childs_root(tmp_path, mount_points):
    need_landlock()
    root = _rootfs(tmp_path, with_mount_points=mount_points)
    before = _tree(root)
    cfg = _rootfs_config(root)
    assert cfg.rootfs == root and cfg.to_json() == cfg.replace(rootfs=None).to_json()
    script = "cat /etc/os-release; ls /; echo x > /app/f; echo y > /tmp/t; cat /proc/self/status | grep -c Name"
    r = _lib(["/bin/sh", "-c", script], cfg)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "ID=volt-test-rootfs"  # the rootfs's own /etc, its own /bin/sh
    assert {"usr", "etc", "app", "tmp", "dev", "proc"} <= set(lines[1:-1])
    assert lines[-1] == "1"
    assert (tmp_path / "rootfs/app/f").read_text() == "x\n"  # the container's /app
    assert not (tmp_path / "rootfs/tmp/t").exists()  # its /tmp is private per child
    after = _tree(root)
    assert after == sorted(before + ["app/f"])  # no directory was made inside it
    assert os.path.exists("/etc/os-release") and "volt-test-rootfs" not in open("/etc/os-release").read()


@pytest.mark.skipif(_BUSYBOX is None, reason="a static busybox for the test's rootfs")
def test_rootfs_read_only_fs_makes_the_root_read_only(tmp_path):
    need_landlock()
    root = _rootfs(tmp_path, with_mount_points=True)
    cfg = _rootfs_config(root, read_only_fs=True)
    r = _lib(["/bin/sh", "-c", "cat /proc/self/mountinfo; touch /app/f"], cfg)
    assert r.returncode != 0
    root_line = next(ln for ln in r.stdout.splitlines() if ln.split()[4] == "/")
    assert "ro" in root_line.split()[5].split(","), root_line
    assert "Read-only file system" in r.stderr
    assert not (tmp_path / "rootfs/app/f").exists()
    ctl = _lib(["/bin/sh", "-c", "touch /app/f"], _rootfs_config(root))
    assert ctl.returncode == 0 and (tmp_path / "rootfs/app/f").exists()


@pytest.mark.skipif(_BUSYBOX is None, reason="a static busybox for the test's rootfs")
def test_rootfs_from_the_cli(tmp_path):
    need_landlock()
    root = _rootfs(tmp_path, with_mount_points=False)
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([VOLT, "run", "--rootfs", root, "--rw", str(work), "--", "/bin/sh", "-c",
                        f"cat /etc/os-release; echo w > {work}/f"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ID=volt-test-rootfs\n"
    assert (work / "f").read_text() == "w\n"  # a host path beyond the rootfs, bound
    assert "work" not in os.listdir(root) and "tmp" in os.listdir(root)


# ---- writable means writable; scopes; hard links ----------------------------------------------

_ORDINARY = r"""
import errno, os, socket, sys
work = sys.argv[1]
out = []
def attempt(name, fn):
    try:
        fn()
        out.append(name + "=ok")
    except OSError as exc:
        out.append(name + "=" + errno.errorcode[exc.errno])
attempt("mkdir", lambda: os.mkdir(os.path.join(work, "d")))
attempt("file", lambda: open(os.path.join(work, "d", "f"), "w").close())
attempt("rename", lambda: os.rename(os.path.join(work, "d", "f"), os.path.join(work, "g")))
attempt("symlink", lambda: os.symlink("g", os.path.join(work, "l")))
attempt("fifo", lambda: os.mkfifo(os.path.join(work, "p")))
attempt("socket", lambda: socket.socket(socket.AF_UNIX).bind(os.path.join(work, "s")))
attempt("truncate", lambda: os.truncate(os.path.join(work, "g"), 0))
attempt("unlink", lambda: os.unlink(os.path.join(work, "g")))
print(" ".join(out))
"""


def test_writable_means_writable(tmp_path):
    need_landlock(3)
    work = tmp_path / "w"
    work.mkdir()
    cfg = _library_config(str(work))
    r = _lib([PY, "-c", _ORDINARY, str(work)], cfg)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"{n}=ok" for n in ("mkdir", "file", "rename", "symlink",
                                                     "fifo", "socket", "truncate", "unlink")]
    # the seed's READ_WRITE on the host's view: no symlink, fifo, socket, rename
    shutil.rmtree(work)
    work.mkdir()
    ctl = _lib([PY, "-c", _ORDINARY, str(work)], cfg, contain=False)
    assert "symlink=EACCES" in ctl.stdout.split() and "fifo=EACCES" in ctl.stdout.split()
    assert cfg.landlock is not None
    assert [r.access for r in cfg.landlock.rules if r.path == str(work)] == [_A.READ_WRITE]
    assert '"Access":' + str(int(_A.READ_WRITE)) in cfg.to_json()  # the JSON keeps its value


def test_hard_links_across_binds_fail(tmp_path):
    need_landlock()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("x")
    script = f"import os\ntry:\n    os.link('{a}/f', '{b}/f'); print('linked')\nexcept OSError as e:\n    print(e.errno)"
    r = _lib([PY, "-c", script], _library_config(str(a), str(b)))
    assert r.stdout.strip() == str(__import__("errno").EXDEV), r.stderr
    assert _plain([PY, "-c", script]).stdout.strip() == "linked"


_SCOPES = r"""
import errno, os, socket, sys
pid, name = int(sys.argv[1]), sys.argv[2]
try:
    os.kill(pid, 0); print("signal=ok")
except OSError as exc:
    print("signal=" + errno.errorcode[exc.errno])
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("\0" + name); print("abstract=ok")
except OSError as exc:
    print("abstract=" + errno.errorcode[exc.errno])
"""


def test_presets_are_scoped(tmp_path):
    """Signals and abstract UNIX sockets do not reach a process of the test's own."""
    need_landlock(6)
    name = f"volt-view-{uuid.uuid4().hex}"
    listener = socket_listener(name)
    victim = subprocess.Popen(["sleep", "60"])
    try:
        ctl = _plain([PY, "-c", _SCOPES, str(victim.pid), name])
        assert ctl.stdout.split() == ["signal=ok", "abstract=ok"]
        # network none would keep the abstract socket out by itself: the host's network
        cfg = _library_config()
        cfg.network = None
        r = _lib([PY, "-c", _SCOPES, str(victim.pid), name], cfg)
        # the victim is outside the child's PID namespace: no such process (ESRCH) before
        # Landlock's signal scope would refuse it (EPERM)
        assert r.stdout.split() == ["signal=ESRCH", "abstract=EPERM"], r.stderr
        assert any("scopes" in n for n in r.report.notes)
    finally:
        victim.kill()
        victim.wait()
        listener.close()


def socket_listener(name: str):
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind("\0" + name)
    s.listen(4)
    return s


# ---- volt-init: a process restricting itself enters the view too -------------------------------


def test_volt_init_enters_the_view(standins, system_names, tmp_path):
    need_landlock()
    granted, hidden = standins
    plan = tmp_path / "plan"
    c = subprocess.run([VOLT, "compile", "--ro", granted, "-o", str(plan)], capture_output=True,
                       text=True, timeout=60)
    assert c.returncode == 0, c.stderr
    init = os.path.join(os.path.dirname(sys.executable), "volt-init")
    script = (f"chmod 666 {granted}/file; chmod 666 {hidden}/file; echo x > {system_names[0]}; "
              f"echo y > {system_names[1]}; cat {system_names[0]} {system_names[1]}")
    r = subprocess.run([init, str(plan), "--", "sh", "-c", script], capture_output=True,
                       text=True, timeout=60, cwd="/")
    # the granted file: a read-only bind; the other: absent
    assert r.stderr.count("Read-only file system") == 1, r.stderr
    assert r.stderr.count("No such file or directory") == 1, r.stderr
    assert r.stdout.split() == ["x", "y"]  # private /run and /var: written in the view
    _unchanged(os.path.join(granted, "file"))
    _unchanged(os.path.join(hidden, "file"))
    assert not any(os.path.lexists(p) for p in system_names)


# ---- failing closed ---------------------------------------------------------------------------


def test_a_failed_view_never_runs_the_target(tmp_path):
    need_landlock()
    marker = tmp_path / "ran"
    with volt_enforce.Sandbox(_library_config(str(tmp_path))) as sb:
        assert sb.view is not None
        sb.view.c.ns_fd = 1 << 20  # not an fd: setns fails in the child
        with pytest.raises(volt_enforce.EnforcementError) as ei:
            sb.run(["sh", "-c", f"touch {marker}"])
    assert ei.value.step == "view" and ei.value.errno == __import__("errno").EBADF
    assert not marker.exists()


def test_bad_rootfs_is_refused_naming_it(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(volt_enforce.PolicyError) as ei:
        volt_enforce.Sandbox(IsolationConfig(), rootfs=missing)
    assert ei.value.field == "rootfs" and missing in str(ei.value)
    with pytest.raises(volt_enforce.PolicyError):
        volt_enforce.Sandbox(IsolationConfig(), rootfs="relative/dir")


def test_ptys_work_and_host_ttys_are_absent():
    need_landlock()
    script = ("import os, pty\n"
              "m, s = pty.openpty()\n"
              "os.write(m, b'hi\\n')\n"
              "print(os.ttyname(s), os.read(s, 3))\n"
              "print(sorted(os.listdir('/dev/pts')))\n"
              "print([n for n in os.listdir('/dev') if n.startswith('tty') and n != 'tty'])\n")
    r = _lib([PY, "-c", script], _library_config())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "/dev/pts/0 b'hi\\n'"  # a devpts of its own: its first pty
    assert lines[1] == "['0', 'ptmx']" and lines[2] == "[]"
    host_ttys = [n for n in os.listdir("/dev") if n.startswith("tty") and n != "tty"]
    assert host_ttys  # the control: the host has them


def test_without_cap_sys_admin_the_view_fails_or_is_dropped_and_reported(tmp_path):
    """A caller without CAP_SYS_ADMIN cannot make the template: an error naming the view
    step, or under best effort the view dropped and the report saying so."""
    need_landlock()
    out = tmp_path / "out"
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child reports through its exit status)
        code = 9
        try:
            from volt_enforce.child import ChildPlan
            from volt_enforce.model import CAPABILITIES

            keep = [n for name, n in CAPABILITIES.items() if name != "SYS_ADMIN"]
            ChildPlan(cap_keep=keep, no_new_privs=False).apply()  # root without CAP_SYS_ADMIN
            from volt_enforce.view import View

            try:
                View(plan_view(IsolationConfig()))
                code = 1
            except volt_enforce.EnforcementError as exc:
                code = 0 if exc.step == "view" and "contain=False" in str(exc) else 2
            if code == 0:
                with volt_enforce.Sandbox(IsolationConfig(), best_effort=True) as sb:
                    dropped = [n for n in sb.report.notes if "view dropped" in n]
                    code = 0 if dropped and sb.report.view is None and sb.view is None else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not out.exists()
    with volt_enforce.Sandbox(IsolationConfig(), best_effort=True) as sb:  # the control
        assert sb.view is not None and sb.report.view is not None


_MOUNTS = r"""
import json
out = []
for line in open("/proc/self/mountinfo"):
    f = line.split()
    out.append([f[4], f[5].split(","), f[f.index("-") + 1]])
print(json.dumps(out))
"""


@pytest.mark.parametrize("policy", ["none", "server", "desktop"])
def test_every_writable_mount_is_noexec_unless_execute_is_granted(policy, tmp_path):
    """No way around noexec (attack 8) through a mount the view makes writable, its
    own private tmpfs and stash included; nothing is setuid or device-capable but /dev."""
    work = tmp_path / "w"
    work.mkdir()
    if policy == "none":
        cfg = IsolationConfig()
    else:
        cfg = _library_config(str(work))
        if policy == "desktop":
            assert cfg.landlock is not None
            cfg.landlock.rules = volt_enforce.desktop_policy("/").rules + cfg.landlock.rules[-3:]
    r = _lib([PY, "-c", _MOUNTS], cfg)
    assert r.returncode == 0, r.stderr
    mounts = json.loads(r.stdout)
    writable = [(path, opts) for path, opts, fstype in mounts if "rw" in opts]
    assert writable, mounts
    exec_ok = {"/home"} if policy == "desktop" else set()
    for path, opts in writable:
        assert "nosuid" in opts, (path, opts)
        if path not in exec_ok:
            assert "noexec" in opts, (path, opts)
        if path != "/dev/pts":
            assert "nodev" in opts, (path, opts)
    # the control: the host has writable mounts that allow exec
    host = [ln.split() for ln in open("/proc/self/mountinfo")]
    assert any("rw" in f[5].split(",") and "noexec" not in f[5].split(",") for f in host)


def test_kernel_settings_are_read_only():
    """A root child cannot change sysctls through /proc/sys. The stand-in is the
    hostname, which the control writes in a UTS namespace of its own (the host's
    stays as it is)."""
    path = "/proc/sys/kernel/hostname"
    script = f"import errno\ntry:\n    open({path!r}, 'w').write('volt-test'); print('ok')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])"
    own_uts = "import ctypes; assert ctypes.CDLL(None).unshare(0x04000000) == 0\n"  # CLONE_NEWUTS
    assert _plain([PY, "-c", own_uts + script]).stdout.strip() == "ok"  # the control
    for cfg in (IsolationConfig(), _library_config()):
        r = _lib([PY, "-c", script], cfg)
        assert r.stdout.strip() in ("EROFS", "EACCES"), (r.stdout, r.stderr)
    r = _lib([PY, "-c", script], IsolationConfig(seccomp=SeccompProfile.UNCONFINED))
    assert r.stdout.strip() == "EROFS", r.stderr  # the view itself, no Landlock involved


def test_exec_enters_the_view_in_place(tmp_path, system_names):
    """volt-enforce exec: this process enters the view itself, then execs; the cwd line,
    and a --rw directory written through (the control of the private /run)."""
    need_landlock()
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "w"
    work.mkdir()
    pyopts = [a for p in sorted({sys.prefix, sys.base_prefix}) for a in ("--rox", p)]
    r = subprocess.run([VOLT, "exec", "--rw", str(work), *pyopts, "--", "sh", "-c",
                        f"pwd; echo x > {work}/f; echo y > {system_names[0]}; touch /usr/volt-x"],
                       capture_output=True, text=True, timeout=60, cwd=outside)
    assert r.stdout == "/\n"
    assert f"the view lacks the working directory {outside}: starting in /" in r.stderr
    assert "Read-only file system" in r.stderr
    assert (work / "f").read_text() == "x\n"
    assert not os.path.lexists(system_names[0]) and not os.path.exists("/usr/volt-x")


_CONNECT = r"""
import errno, socket, sys
out = []
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        out.append("ok")
    except OSError as exc:
        out.append(errno.errorcode[exc.errno])
print(" ".join(out))
"""


def test_pathname_sockets_are_absent_unless_named(tmp_path):
    """Attack 5: a daemon's socket (a listener of the test's own) is not in the view;
    one named with --unix-socket / unix_sockets= is bound into it."""
    import socket as _socket

    need_landlock()
    named, other = str(tmp_path / "named.sock"), str(tmp_path / "other.sock")
    listeners = []
    for path in (named, other):
        s = _socket.socket(_socket.AF_UNIX)
        s.bind(path)
        s.listen(4)
        listeners.append(s)
    try:
        assert _plain([PY, "-c", _CONNECT, named, other]).stdout.split() == ["ok", "ok"]
        r = _cli(PY, "-c", _CONNECT, named, other, opts=("--unix-socket", named))
        assert r.stdout.split() == ["ok", "ENOENT"], r.stderr
        with volt_enforce.Sandbox(_library_config(), unix_sockets=[named],
                                  best_effort=True) as sb:
            r2 = sb.run([PY, "-c", _CONNECT, named, other], capture_output=True, text=True)
        assert r2.stdout.split() == ["ok", "ENOENT"], r2.stderr
    finally:
        for s in listeners:
            s.close()


@pytest.mark.parametrize("fresh", [False, True])
def test_a_procfs_of_its_own_when_asked(fresh):
    """Without a PID namespace of its own a child shares the template's procfs (it
    shows the same processes); ``fresh_proc`` (for a PID namespace) mounts one per
    child, on a bare mount point: the template then has none (the child mounts it as
    the caller, where no other procfs needs to be visible). Either way the child has
    exactly one procfs at /proc (what it shows is tests/test_pidns_proc.py's)."""
    from volt_enforce.child import ChildPlan, spawn
    from volt_enforce.view import View

    plan = plan_view(IsolationConfig())
    plan.fresh_proc = fresh
    view = View(plan)
    r, w = os.pipe()
    try:
        pid = spawn([PY, "-c", "print(open('/proc/self/mountinfo').read())"], stdout=w,
                    plan=ChildPlan(view=view, no_new_privs=False))
        os.close(w)
        w = -1
        with os.fdopen(r, closefd=True) as f:
            r = -1
            text = f.read()
        os.waitpid(pid, 0)
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
        view.close()
    procs = [ln for ln in text.splitlines() if ln.strip() and ln.split()[4] == "/proc"]
    assert len(procs) == 1 and " - proc " in procs[0], procs
    assert [ln.split()[4] for ln in text.splitlines() if ln.strip()].count("/proc/sys") == 1
    # the child's own procfs, mounted by each child; the template's, copied with it
    assert ("the child's /proc" in view._child_what) == fresh
    assert ("the template's /proc" in view.template_what) == (not fresh)
