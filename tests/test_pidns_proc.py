"""Attack 6's /proc half, for after the filesystem view lands: a contained child's
/proc is its own PID namespace's (the view's per-child procfs, ViewPlan.fresh_proc,
which compile must set when the child has a PID namespace), so a host process's
command line and the init's executable are out of its reach."""

from __future__ import annotations

import errno
import subprocess
import textwrap

import pytest
from kernelreq import need_landlock, need_seccomp
from test_containment import _library_config
from test_pidns import PY, _cli

import volt_enforce

pytestmark = pytest.mark.skipif(__import__("os").geteuid() != 0,
                                reason="the attacks are a root child's")


# ---- attack 6, its /proc half: host processes' command lines ---------------------------------

_CMDLINE = textwrap.dedent("""
    import sys
    try:
        with open(f"/proc/{sys.argv[1]}/cmdline", "rb") as f:
            print("read", f.read().split(b"\\0")[0].decode())
    except OSError as exc:
        print("refused", exc.errno)
""")


def test_cmdline_control_reads_the_host_process(victim):
    cp = subprocess.run([PY, "-c", _CMDLINE, str(victim.pid)], capture_output=True, text=True,
                        timeout=60)
    assert cp.stdout.strip() == "read sleep", cp.stdout + cp.stderr


def test_cmdline_from_the_cli_default(victim, tmp_path):
    need_seccomp()
    cp = _cli(PY, "-c", _CMDLINE, str(victim.pid), work=str(tmp_path))
    assert cp.stdout.strip() == f"refused {errno.ENOENT}", cp.stdout + cp.stderr


def test_cmdline_from_the_library_default(victim, tmp_path):
    need_landlock(1)
    cp = volt_enforce.run([PY, "-c", _CMDLINE, str(victim.pid)],
                          isolation=_library_config(str(tmp_path)), capture_output=True,
                          text=True, timeout=60)
    assert cp.stdout.strip() == f"refused {errno.ENOENT}", cp.stdout + cp.stderr


_INIT_EXE = textwrap.dedent("""
    import os
    for flags in (os.O_WRONLY, os.O_RDONLY):
        try:
            os.close(os.open("/proc/1/exe", flags)); print("opened")
        except OSError as exc:
            print("refused", exc.errno)
""")


def test_the_target_cannot_open_its_inits_executable(tmp_path):
    need_seccomp()
    cp = _cli(PY, "-c", _INIT_EXE, work=str(tmp_path))
    assert cp.stdout.split("\n")[:2] == [f"refused {errno.EACCES}"] * 2, cp.stdout + cp.stderr
    # control: its own executable opens (not for writing: it runs)
    cp = _cli(PY, "-c", _INIT_EXE.replace("/proc/1/exe", "/proc/self/exe"), work=str(tmp_path))
    # refused for writing as running (ETXTBSY) or, where its filesystem is read-only (the
    # VM's root), EROFS: the point is that it opens for reading, where /proc/1/exe does not
    first, second = cp.stdout.split("\n")[:2]
    assert first in (f"refused {errno.ETXTBSY}", f"refused {errno.EROFS}"), cp.stdout
    assert second == "opened", cp.stdout
