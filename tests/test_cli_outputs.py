"""Output files: devices and fifos are written through, regular files replaced
atomically keeping their mode, symlinks followed and never replaced
(volt_enforce.fileout, and every command that writes a file)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading

import pytest
from kernelreq import need_landlock, need_seccomp

from volt_enforce import fileout

VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")

#: Every command that writes a file, with its output option last.
WRITERS = {
    "compile": ["compile", "--seccomp", "strict", "-o"],
    "seccomp export": ["seccomp", "export", "strict", "-o"],
    "seccomp import": ["seccomp", "import", "strict", "-o"],
    "run --report": ["run", "--profile", "none", "--seccomp", "unconfined", "--report"],
}


def writer(name: str, path) -> list[str]:
    argv = [*WRITERS[name], str(path)]
    return argv + ["--", "/bin/true"] if name == "run --report" else argv


def ve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([VOLT, *args], check=False, capture_output=True, timeout=60)


@pytest.fixture
def null_device(tmp_path):
    """A character device with /dev/null's numbers, made by the test."""
    path = tmp_path / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod of a character device needs CAP_MKNOD")
    return path


def read_fifo(path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def reader() -> None:
        with open(path, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    return t, got


@pytest.fixture(autouse=True)
def _kernel(request):
    if "run" in request.node.name:
        need_landlock(1)
        need_seccomp()


# ---- the helper -------------------------------------------------------------------------


def test_char_device_is_written_through(null_device):
    fileout.write_text(null_device, "plan\n")
    st = os.lstat(null_device)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert os.listdir(null_device.parent) == ["null"]  # no temporary file left


def test_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t, got = read_fifo(fifo)
    fileout.write_bytes(fifo, b"through the fifo\n")
    t.join(10)
    assert got == [b"through the fifo\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_regular_file_is_replaced_keeping_its_mode(tmp_path):
    path = tmp_path / "out"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    before = os.stat(path).st_ino
    fileout.write_text(path, "new\n")
    assert path.read_text() == "new\n"
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_ino != before  # replaced by a rename, not rewritten in place
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_new_file_gets_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        fileout.write_text(tmp_path / "new", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o640


def test_symlink_is_followed_not_replaced(tmp_path, null_device):
    target = tmp_path / "target"
    target.write_text("old\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    fileout.write_text(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"
    # a link to a device writes through to the device
    dev_link = tmp_path / "dev-link"
    dev_link.symlink_to(null_device)
    fileout.write_text(dev_link, "x")
    assert dev_link.is_symlink() and stat.S_ISCHR(os.lstat(null_device).st_mode)


def test_dangling_symlink_is_refused(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(OSError, match="symbolic link to a missing file"):
        fileout.write_text(link, "x")
    assert link.is_symlink() and not (tmp_path / "missing").exists()


def test_directory_is_refused(tmp_path):
    with pytest.raises(OSError, match="directory"):
        fileout.write_text(tmp_path, "x")


def test_unwritable_file_is_not_replaced(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write any file (DAC override)")
    path = tmp_path / "ro"
    path.write_text("old\n")
    os.chmod(path, 0o444)
    with pytest.raises(PermissionError):
        fileout.write_text(path, "new\n")
    assert path.read_text() == "old\n"


def test_discard_leaves_what_was_there(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_text("old\n")
    for in_place in (False, True):
        for path in (old, new):
            with fileout.Output(path, in_place=in_place):
                pass
    assert old.read_text() == "old\n" and not new.exists()
    assert sorted(os.listdir(tmp_path)) == ["old"]


def test_in_place_writes_into_the_file_opened_before(tmp_path):
    path = tmp_path / "report"
    path.write_text("a much longer old content\n")
    ino = os.stat(path).st_ino
    out = fileout.Output(path, in_place=True)
    out.write(b"new\n")
    assert path.read_text() == "new\n" and os.stat(path).st_ino == ino


# ---- the commands ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", WRITERS)
def test_command_writes_through_a_char_device(name, null_device):
    cp = ve(*writer(name, null_device))
    assert cp.returncode == 0, cp.stderr
    st = os.lstat(null_device)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert os.listdir(null_device.parent) == ["null"]


@pytest.mark.parametrize("name", WRITERS)
def test_command_writes_through_a_fifo(name, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t, got = read_fifo(fifo)
    cp = ve(*writer(name, fifo))
    t.join(10)
    assert cp.returncode == 0, cp.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and got[0]
    if name == "compile":
        assert got[0].startswith(b"volt-plan 1\n")
    elif name in ("seccomp export", "run --report"):
        json.loads(got[0])


@pytest.mark.parametrize("name", WRITERS)
def test_command_replaces_a_regular_file_keeping_its_mode(name, tmp_path):
    path = tmp_path / "out"
    path.write_text("old\n")
    os.chmod(path, 0o600)
    cp = ve(*writer(name, path))
    assert cp.returncode == 0, cp.stderr
    assert path.read_bytes() != b"old\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize("name", WRITERS)
def test_command_follows_a_symlink(name, tmp_path):
    target = tmp_path / "target"
    target.write_text("old\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    cp = ve(*writer(name, link))
    assert cp.returncode == 0, cp.stderr
    assert link.is_symlink() and target.read_bytes() != b"old\n"


@pytest.mark.parametrize("name", WRITERS)
def test_command_refuses_a_dangling_symlink(name, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing")
    cp = ve(*writer(name, link))
    assert cp.returncode == 125
    assert b"symbolic link" in cp.stderr and len(cp.stderr.splitlines()) == 1
    assert link.is_symlink() and not (tmp_path / "missing").exists()


def test_exec_report_writes_through_a_char_device(null_device):
    cp = ve("exec", "--profile", "none", "--seccomp", "unconfined", "--report",
            str(null_device), "--", "/bin/true")
    assert cp.returncode == 0, cp.stderr
    assert stat.S_ISCHR(os.lstat(null_device).st_mode)


def test_write_plan_writes_through_a_fifo_and_replaces_a_file_atomically(tmp_path):
    """The library's plan writer follows the same rules as the CLI's outputs."""
    import threading

    from volt_enforce import IsolationConfig
    from volt_enforce.init_plan import compile_plan, write_plan

    config = IsolationConfig(seccomp="strict")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_plan(config, str(fifo))
    reader.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got == [compile_plan(config).encode()]
    plain = tmp_path / "plan"
    plain.write_text("old")
    plain.chmod(0o640)
    write_plan(config, str(plain))
    assert plain.read_text() == compile_plan(config) and plain.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "plan"]
