"""The process-event follower of `--why` (volt_enforce.audit.ProcessFollower), on the host.

Audit's seccomp records name a host pid; a contained target is the PID-namespace
init's child and may be reaped before its record arrives, so the child's tree is
followed from the kernel's fork events. No audit is needed here: a child forks a
grandchild that exits at once, and the follower must hold both, where the /proc walk
(the fallback) finds nothing once the grandchild is reaped."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

from kernelreq import need, need_userns

from volt_enforce.audit import ProcessFollower, proc_ancestry

# prints the pid of a grandchild that exited at once, after reaping it
FORK_ONE = ("import os\n"
            "p = os.fork()\n"
            "if p == 0:\n"
            "    os._exit(0)\n"
            "os.waitpid(p, 0)\n"
            "print(p, flush=True)\n")


def _follower() -> ProcessFollower:
    try:
        return ProcessFollower()
    except OSError as exc:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.ETIMEDOUT):  # no CONFIG_PROC_EVENTS
            need("process events connector", False, str(exc))
        raise


def test_the_follower_records_a_grandchild_that_exited_at_once():
    with _follower() as f:
        child = subprocess.Popen([sys.executable, "-c", FORK_ONE], stdout=subprocess.PIPE,
                                 text=True)
        f.follow(child.pid)
        out, _ = child.communicate(timeout=60)
        grandchild = out.strip()
        other = subprocess.run(["true"], check=True)  # a fork that is not the child's
        assert other.returncode == 0
        f.drain()
        pids = f.snapshot()
    assert child.returncode == 0 and grandchild.isdigit()
    assert {str(child.pid), grandchild} <= pids, (child.pid, grandchild, pids)
    assert str(os.getpid()) not in pids  # the follower's own process is not below the child
    assert len(pids) == 2, pids  # nothing else: the run of `true` came from us, not the child
    # control: walking up through /proc, as the fallback does, finds nothing once reaped
    assert proc_ancestry(grandchild, {str(child.pid)}) is None


def test_the_proc_walk_finds_a_live_grandchild():
    """The control's own control: the walk works while the grandchild lives."""
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys\n"
                              "p = subprocess.Popen(['sleep', '30'])\n"
                              "print(p.pid, flush=True)\n"
                              "sys.stdin.read()\n"
                              "p.kill()\n"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        grandchild = child.stdout.readline().strip()
        assert proc_ancestry(grandchild, {str(child.pid)}) == [grandchild]
    finally:
        child.communicate("", timeout=60)


def test_the_follower_links_forks_made_before_it_is_told_the_root():
    """The spawn's own forks come before follow(pid) names the child."""
    with _follower() as f:
        r, w = os.pipe2(os.O_CLOEXEC)
        child = subprocess.Popen([sys.executable, "-c", FORK_ONE], stdout=w, text=True)
        os.close(w)
        with os.fdopen(r) as out:
            grandchild = out.read().strip()
        child.wait(timeout=60)
        f.drain()  # the grandchild's fork is read before the root is named
        f.follow(child.pid)
        pids = f.snapshot()
    assert {str(child.pid), grandchild} <= pids, (child.pid, grandchild, pids)


def test_the_followers_socket_is_close_on_exec_and_closed_after():
    with _follower() as f:
        fd = f.fileno()
        assert fd >= 0 and not os.get_inheritable(fd)
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        inode = os.readlink(f"/proc/self/fd/{fd}")
    assert f.fileno() == -1
    try:
        after: str | None = os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        after = None
    assert after != inode  # closed (the number may have been taken by another file since)


def test_in_a_user_namespace_of_its_own_the_follower_cannot_subscribe():
    """Fork events are told in the initial namespaces' pids: from another user
    namespace opening fails (EPERM before Linux 6.6, no reply since), and the watch
    falls back to /proc and says so."""
    need_userns()
    unshare = shutil.which("unshare")
    assert unshare is not None, "the test needs unshare (util-linux)"
    _follower().close()  # control: from here it opens
    code = ("import errno\nfrom volt_enforce.audit import ProcessFollower\n"
            "try:\n    ProcessFollower().close()\nexcept OSError as e:\n"
            "    print(errno.errorcode[e.errno])\nelse:\n    print('opened')\n")
    r = subprocess.run([unshare, "--user", "--map-root-user", "--", sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("EPERM", "ETIMEDOUT"), r.stdout
