"""The PID namespace of a contained child and its init (volt_enforce.pidns).

Attack 6 of the containment issue (signalling host processes of the same uid, the
parent included), under the CLI default and the contained library config, each
with an unsandboxed control; the init's duties (signals forwarded, orphans
reaped, the target's fate as returncode, exec errors before Popen returns, death
with the parent process, not with the spawning thread); the init's own
protection (not ptrace-able, its executable sealed); siblings of one sandbox
kept apart; memfd execution (attack 8's memfd half)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from kernelreq import need_landlock, need_seccomp
from test_containment import VOLT, _library_config

import volt_enforce
from volt_enforce import IsolationConfig, Sandbox, SeccompProfile
from volt_enforce.pidns import memfd_noexec_level
from volt_enforce.seccomp.policy import Action

PY = sys.executable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attacks are a root child's")


def _cli(*cmd: str, work: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VOLT, "run", "--rw", work, "--rox", sys.prefix, "--rox",
                           sys.base_prefix, "--", *cmd], text=True, capture_output=True,
                          timeout=timeout)


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether ``pid`` ended (gone, or a zombie nobody reaped yet) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _target_of(init_pid: int, timeout: float = 10.0) -> int:
    """The host pid of a contained child's target: the init's child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = _children(init_pid)
        if kids:
            return kids[0]
        time.sleep(0.02)
    raise AssertionError(f"init {init_pid} has no child")


# ---- attack 6: kill() a host process, the parent included ------------------------------

_KILL = textwrap.dedent("""
    import os, signal, sys
    for pid in map(int, sys.argv[1:]):
        try:
            os.kill(pid, signal.SIGTERM if pid != {test} else 0)
            print(pid, "signalled")
        except OSError as exc:
            print(pid, "refused", exc.errno)
    # the parent this process sees (the namespace's init, or the host's parent)
    ppid = os.getppid()
    try:
        os.kill(ppid, 0)
        print("parent", ppid, "visible")
    except OSError as exc:
        print("parent", ppid, "refused", exc.errno)
""")


def _kill_attack() -> str:
    return _KILL.format(test=os.getpid())


def _results(out: str) -> dict[int, str]:
    res = {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0].isdigit():
            res[int(words[0])] = words[1]
    return res


def test_kill_control_signals_the_host_process(victim):
    cp = subprocess.run([PY, "-c", _kill_attack(), str(victim.pid), str(os.getpid())],
                        capture_output=True, text=True, timeout=60)
    assert _results(cp.stdout) == {victim.pid: "signalled", os.getpid(): "signalled"}, cp.stdout
    assert victim.wait(timeout=10) == -signal.SIGTERM


def test_kill_from_the_cli_default(victim, tmp_path):
    need_seccomp()
    cp = _cli(PY, "-c", _kill_attack(), str(victim.pid), str(os.getpid()), work=str(tmp_path))
    assert cp.returncode == 0, cp.stderr
    assert _results(cp.stdout) == {victim.pid: "refused", os.getpid(): "refused"}, cp.stdout
    assert f"refused {errno.ESRCH}" in cp.stdout
    assert "parent 1 visible" in cp.stdout  # its init, not a host process
    assert victim.poll() is None


def test_kill_from_the_library_default(victim, tmp_path):
    need_landlock(1)
    cp = volt_enforce.run([PY, "-c", _kill_attack(), str(victim.pid), str(os.getpid())],
                          isolation=_library_config(str(tmp_path)), capture_output=True,
                          text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert _results(cp.stdout) == {victim.pid: "refused", os.getpid(): "refused"}, cp.stdout
    assert "parent 1 visible" in cp.stdout
    assert victim.poll() is None
    assert "pid" in cp.report.namespaces


def test_kill_from_the_init_is_ignored():
    """The target signalling its init (SIGKILL, SIGTERM) neither kills it nor
    reaches the target back: the init forwards only signals from outside."""
    script = ("import os, signal, time\n"
              "os.kill(1, signal.SIGKILL); os.kill(1, signal.SIGTERM); time.sleep(0.3)\n"
              "print('alive')\n")
    cp = volt_enforce.run([PY, "-c", script], capture_output=True, text=True, timeout=60)
    assert (cp.returncode, cp.stdout) == (0, "alive\n"), cp.stderr


def test_siblings_of_one_sandbox_cannot_signal_each_other():
    with Sandbox(IsolationConfig()) as sb, Sandbox(IsolationConfig(), contain=False) as open_sb:
        first = sb.popen(["sleep", "300"])
        try:
            target = _target_of(first.pid)
            for pid in (first.pid, target):
                script = f"import os\ntry:\n    os.kill({pid}, 0); print('visible')\n" \
                         f"except OSError as exc:\n    print('refused', exc.errno)\n"
                cp = sb.run([PY, "-c", script], capture_output=True, text=True, timeout=60)
                assert cp.stdout.strip() == f"refused {errno.ESRCH}", cp.stdout
                # control: a sibling without containment sees it
                cp = open_sb.run([PY, "-c", script], capture_output=True, text=True, timeout=60)
                assert cp.stdout.strip() == "visible", cp.stdout
            assert first.poll() is None
        finally:
            first.kill()
            first.wait()


# ---- the init's duties ---------------------------------------------------------------------


def test_exit_status_and_signals_as_returncode():
    with Sandbox(IsolationConfig()) as sb:
        assert sb.run(["sh", "-c", "exit 7"]).returncode == 7
        assert sb.run(["sh", "-c", "kill -KILL $$"]).returncode == -signal.SIGKILL
        assert sb.run([PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
                      ).returncode == -signal.SIGSEGV
        p = sb.popen(["sleep", "300"])
        _target_of(p.pid)
        p.terminate()  # forwarded by the init: the target dies of it
        assert p.wait(timeout=30) == -signal.SIGTERM
        p = sb.popen(["sleep", "300"])
        p.kill()  # the init itself: the namespace goes with it
        assert p.wait(timeout=30) == -signal.SIGKILL


def test_cli_exit_status_of_a_signalled_target(tmp_path):
    cp = _cli("sh", "-c", "kill -TERM $$", work=str(tmp_path))
    assert cp.returncode == 128 + signal.SIGTERM, cp.stderr


def test_signals_from_outside_are_forwarded_to_the_target():
    script = ("import signal, sys\n"
              "got = []\n"
              "def h(n, f):\n"
              "    got.append(n)\n"
              "for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):\n"
              "    signal.signal(s, h)\n"
              "print('ready', flush=True)\n"
              "while len(got) < 3:\n"
              "    signal.pause()\n"
              "print(' '.join(signal.Signals(n).name for n in got), flush=True)\n")
    with Sandbox(IsolationConfig()) as sb:
        p = sb.popen([PY, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline() == "ready\n"
            for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
                p.send_signal(s)  # to the init, the pid Popen holds
                time.sleep(0.1)
            out = p.stdout.read()
            assert p.wait(timeout=30) == 0
            assert out.split() == ["SIGUSR1", "SIGUSR2", "SIGHUP"]
        finally:
            p.kill()
            p.wait()


def test_the_init_reaps_orphans():
    """A grandchild orphaned inside the namespace is the init's to reap: no zombie
    stays behind while the target runs on."""
    script = ("import os, sys, time\n"
              "if os.fork() == 0:\n"
              "    if os.fork() == 0:\n"
              "        time.sleep(0.2); os._exit(0)\n"
              "    os._exit(0)\n"
              "os.wait()\n"
              "print('forked', flush=True)\n"
              "sys.stdin.read()\n")
    with Sandbox(IsolationConfig()) as sb:
        p = sb.popen([PY, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline() == "forked\n"
            target = _target_of(p.pid)
            time.sleep(1.0)  # the orphan has exited by now
            kids = _children(p.pid)
            assert kids == [target], kids  # the orphan was reaped, not left a zombie
            p.stdin.close()
            assert p.wait(timeout=30) == 0
        finally:
            p.kill()
            p.wait()


def test_exec_errors_raise_before_popen_returns(tmp_path):
    fds = len(os.listdir("/proc/self/fd"))
    script = "/etc/passwd"  # a file every view has, and nobody may execute
    with Sandbox(IsolationConfig()) as sb:
        with pytest.raises(FileNotFoundError) as exc:
            sb.popen([str(tmp_path / "missing")])
        assert exc.value.filename == str(tmp_path / "missing")
        with pytest.raises(FileNotFoundError):
            sb.run(["no-such-program-volt"])
        with pytest.raises(PermissionError):
            sb.run([script])
        with pytest.raises(FileNotFoundError):  # as subprocess: a missing cwd
            sb.run(["true"], cwd=str(tmp_path / "nowhere"))
    assert len(os.listdir("/proc/self/fd")) == fds
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every child was reaped


def test_process_group_under_containment_is_an_error():
    with pytest.raises(ValueError, match="process_group"):
        volt_enforce.run(["true"], process_group=0)
    assert volt_enforce.run(["true"], process_group=0, contain=False).returncode == 0


_THREAD_SPAWN = textwrap.dedent("""
    import json, sys, threading, time, volt_enforce
    from volt_enforce import IsolationConfig, Sandbox
    sb = Sandbox(IsolationConfig())
    out = {}
    def spawn():
        p = sb.popen(["sleep", "300"])
        out["init"] = p.pid
    t = threading.Thread(target=spawn)
    t.start(); t.join()  # the spawning thread has exited
    time.sleep(0.5)
    with open(f"/proc/{out['init']}/task/{out['init']}/children") as f:
        out["target"] = int(f.read().split()[0])
    print(json.dumps(out), flush=True)
    sys.stdin.read()  # until the test says so; then this process exits
""")


def test_the_child_dies_with_the_parent_process_not_the_thread(tmp_path):
    parent = subprocess.Popen([PY, "-c", _THREAD_SPAWN], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(parent.stdout.readline())
        # the thread that spawned is gone, the process is not: the child lives on
        time.sleep(0.5)
        for pid in pids.values():
            assert not _wait_gone(pid, timeout=0.1), f"{pid} died with the spawning thread"
        parent.stdin.close()
        assert parent.wait(timeout=30) == 0
        for pid in pids.values():
            assert _wait_gone(pid), f"{pid} outlived its parent process"
    finally:
        parent.kill()
        parent.wait()


# ---- the init itself ------------------------------------------------------------------------

_PTRACE = textwrap.dedent("""
    import ctypes, sys
    libc = ctypes.CDLL(None, use_errno=True)
    pid = int(sys.argv[1])
    r = libc.ptrace(16, pid, None, None)  # PTRACE_ATTACH
    print("attached" if r == 0 else f"refused {ctypes.get_errno()}")
""")


def test_the_target_cannot_ptrace_its_init(tmp_path):
    need_seccomp()
    # control: the same attach to a process of the same uid that is dumpable
    stand_in = subprocess.Popen(["sleep", "300"])
    try:
        cp = subprocess.run([PY, "-c", _PTRACE, str(stand_in.pid)], capture_output=True,
                            text=True, timeout=60)
        assert cp.stdout.strip() == "attached", cp.stdout + cp.stderr
    finally:
        stand_in.kill()
        stand_in.wait()
    cp = _cli(PY, "-c", _PTRACE, "1", work=str(tmp_path))
    assert cp.stdout.strip() == f"refused {errno.EPERM}", cp.stdout + cp.stderr


def test_the_init_runs_from_a_sealed_memfd_and_holds_no_capability():
    with Sandbox(IsolationConfig()) as sb:
        p = sb.popen(["sleep", "300"])
        try:
            _target_of(p.pid)
            deadline = time.monotonic() + 10
            while True:  # the child execs the init after starting the target
                exe = os.readlink(f"/proc/{p.pid}/exe")
                with open(f"/proc/{p.pid}/status") as f:
                    status = dict(line.split(":\t", 1) for line in f.read().splitlines())
                if exe.startswith("/memfd:") and int(status["CapPrm"], 16) == 0 or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            assert exe.startswith("/memfd:volt-pidinit"), exe
            with pytest.raises(OSError) as exc:  # running: ETXTBSY
                os.open(f"/proc/{p.pid}/exe", os.O_WRONLY)
            assert exc.value.errno in (errno.ETXTBSY, errno.EPERM)
            # the memfd the next child runs: sealed against writes and resizing
            from volt_enforce.pidns import init_memfd

            w = init_memfd()  # opened for writing when it was made
            with pytest.raises(PermissionError):  # F_SEAL_WRITE
                os.pwrite(w, b"x", 0)
            with pytest.raises(PermissionError):  # F_SEAL_SHRINK
                os.ftruncate(w, 0)
            with pytest.raises(PermissionError):  # F_SEAL_SEAL: no seal comes off
                import fcntl

                fcntl.fcntl(w, fcntl.F_ADD_SEALS, 0)
            for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                assert int(status[field], 16) == 0, (field, status[field])
            # control: the target kept what its profile keeps
            with open(f"/proc/{_target_of(p.pid)}/status") as f:
                assert "CapEff:\t0000000000000000" not in f.read()
        finally:
            p.kill()
            p.wait()


# ---- memfd execution (attack 8, its memfd half) -----------------------------------------------

_MEMFD_EXEC = textwrap.dedent("""
    import os
    with open("/bin/true", "rb") as f:
        data = f.read()
    for flags in (0, 0x10):  # MFD_EXEC (6.3)
        try:
            fd = os.memfd_create("x", flags)
        except OSError as exc:
            print("memfd_create", flags, "refused", exc.errno)
            continue
        os.write(fd, data)
        if os.fork() == 0:
            try:
                os.execve(fd, ["true"], {})
            except OSError as exc:
                os._exit(100 + exc.errno)
        _, st = os.wait()
        code = os.waitstatus_to_exitcode(st)
        print("fexecve", flags, "ran" if code == 0 else f"refused {code - 100}")
""")


def test_memfd_exec_control_runs():
    cp = subprocess.run([PY, "-c", _MEMFD_EXEC], capture_output=True, text=True, timeout=60)
    assert "fexecve 0 ran" in cp.stdout, cp.stdout + cp.stderr


def _assert_memfd_refused(out: str) -> None:
    assert "ran" not in out, out
    assert out.count("refused") == 2, out


def test_memfd_exec_from_the_cli_default(tmp_path):
    need_seccomp()
    cp = _cli(PY, "-c", _MEMFD_EXEC, work=str(tmp_path))
    _assert_memfd_refused(cp.stdout + cp.stderr)


def test_memfd_exec_from_the_library_default(tmp_path):
    need_landlock(1)
    cp = volt_enforce.run([PY, "-c", _MEMFD_EXEC], isolation=_library_config(str(tmp_path)),
                          capture_output=True, text=True, timeout=60)
    _assert_memfd_refused(cp.stdout + cp.stderr)
    assert any("memfd" in n for n in cp.report.notes), cp.report.notes
    # unconfined too: the setting is the namespace's, not the filter's (from Linux 6.3;
    # below it nothing stands in for the filter, and the report says so)
    cp = volt_enforce.run([PY, "-c", _MEMFD_EXEC],
                          isolation=IsolationConfig(seccomp=SeccompProfile.UNCONFINED),
                          capture_output=True, text=True, timeout=60)
    if memfd_noexec_level():
        _assert_memfd_refused(cp.stdout + cp.stderr)
    else:
        assert "fexecve 0 ran" in cp.stdout, cp.stdout + cp.stderr
        assert any("memfd execution NOT restricted" in n for n in cp.report.notes), \
            cp.report.notes


def test_memfd_noexec_levels_by_kernel():
    from volt_enforce.pidns import memfd_noexec_level

    assert [memfd_noexec_level(r) for r in ("6.1.0-26-amd64", "6.3.0", "6.5.13", "6.6.0",
                                            "6.18.44-fc", "7.3.0-rc7")] == [0, 1, 1, 2, 2, 2]


def test_below_6_3_the_filter_denies_memfd_create(monkeypatch):
    from volt_enforce import compile as comp, pidns

    monkeypatch.setattr(pidns, "memfd_noexec_level", lambda release=None: 0)
    with comp.compiled(IsolationConfig(seccomp=SeccompProfile.DEFAULT)) as c:
        assert c.memfd_noexec == 0 and c.pid_namespace
        assert any("memfd_create denied by the seccomp filter" in n for n in c.notes)
        assert c.seccomp is not None
        assert c.seccomp.simulate("memfd_create", (0, 0)) == Action.errno(errno.EPERM)
    with comp.compiled(IsolationConfig(seccomp=SeccompProfile.UNCONFINED)) as c:
        assert any("memfd execution NOT restricted" in n for n in c.notes)


# ---- what restricts itself gets no PID namespace -------------------------------------------------


def test_apply_self_and_preexec_report_no_pid_namespace():
    from forked import json_reply

    def child():
        rep = volt_enforce.apply_self(IsolationConfig())
        return {"namespaces": rep.namespaces, "notes": rep.notes}

    status, reply = json_reply(child)
    assert status == 0, reply
    assert "pid" not in reply["ok"]["namespaces"]
    assert any("no PID namespace was made" in n for n in reply["ok"]["notes"])
    with Sandbox(IsolationConfig()) as sb:
        assert "pid" in sb.report.namespaces
        cp = subprocess.run(["sh", "-c", "echo $$"], preexec_fn=sb.preexec, capture_output=True,
                            text=True)
        assert int(cp.stdout) > 1  # a host pid: no namespace of its own
        assert any("preexec get no PID namespace" in n for n in sb.report.notes)




# ---- the CLI passes the terminal's and the caller's signals on -------------------------------

_SIGNALS_TARGET = textwrap.dedent("""
    import os, signal
    got = []
    def h(n, f):
        got.append(n)
        os.write(1, (signal.Signals(n).name + "\\n").encode())
    for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, h)
    os.write(1, b"ready\\n")
    while len(got) < 4:
        signal.pause()
""")


def _on_terminal(argv: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """argv with a fresh pty as its controlling terminal (it leads the session and
    the terminal's foreground group); stdout a pipe. Returns it and the master."""
    import fcntl
    import termios

    master, slave = os.openpty()
    name = os.ttyname(slave)

    def own_terminal() -> None:
        os.setsid()
        fd = os.open(name, os.O_RDWR)
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
        os.close(fd)

    p = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         preexec_fn=own_terminal)
    os.close(slave)
    return p, master


def _line(p: subprocess.Popen[bytes], timeout: float = 20.0) -> str:
    import select

    r, _, _ = select.select([p.stdout], [], [], timeout)
    return p.stdout.readline().decode().strip() if r else ""  # type: ignore[union-attr]


def test_cli_forwards_terminal_and_caller_signals(tmp_path):
    need_seccomp()
    p, master = _on_terminal([VOLT, "run", "--rox", sys.prefix, "--rox", sys.base_prefix, "--",
                              PY, "-c", _SIGNALS_TARGET])
    try:
        assert _line(p) == "ready"
        os.write(master, b"\x03")  # ^C: SIGINT to the terminal's foreground group (the CLI)
        assert _line(p) == "SIGINT"
        os.write(master, b"\x1c")  # ^\: SIGQUIT
        assert _line(p) == "SIGQUIT"
        p.send_signal(signal.SIGTERM)
        assert _line(p) == "SIGTERM"
        p.send_signal(signal.SIGHUP)
        assert _line(p) == "SIGHUP"
        assert p.wait(timeout=30) == 0
    finally:
        p.kill()
        p.wait()
        os.close(master)


def test_terminal_signals_control():
    """The pty delivers ^C to a child in the terminal's session; a child in a
    session of its own (as a contained one is) gets nothing without forwarding."""
    p, master = _on_terminal([PY, "-c", _SIGNALS_TARGET])
    try:
        assert _line(p) == "ready"
        os.write(master, b"\x03")
        assert _line(p) == "SIGINT"
    finally:
        p.kill()
        p.wait()
        os.close(master)
    # the same target in a session of its own, started by a wrapper that says its pid
    wrapper = ("import subprocess, sys\n"
               f"p = subprocess.Popen([sys.executable, '-c', {_SIGNALS_TARGET!r}], "
               "start_new_session=True)\n"
               "print(p.pid, flush=True)\n"
               "p.wait()\n")
    p, master = _on_terminal([PY, "-c", wrapper])
    target = 0
    try:
        target = int(_line(p))
        assert _line(p) == "ready"
        os.write(master, b"\x03")
        assert _line(p, timeout=1.0) == ""
    finally:
        if target:
            os.kill(target, signal.SIGKILL)  # in a session of its own: nothing else ends it
        p.kill()
        p.wait()
        os.close(master)


def test_the_init_keeps_no_fd_of_the_callers():
    """A pipe passed to the target reaches EOF when the target closes it, while the
    target runs on: the init holds no copy of pass_fds (nor of stdio)."""
    import select

    r, w = os.pipe()
    with Sandbox(IsolationConfig()) as sb:
        p = sb.popen([PY, "-c", f"import os, sys; os.close({w}); sys.stdin.read()"],
                     pass_fds=[w], stdin=subprocess.PIPE)
        os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], 20)
            assert ready and os.read(r, 1) == b""  # EOF while the target still runs
            assert p.poll() is None
            p.stdin.close()
            assert p.wait(timeout=30) == 0
        finally:
            os.close(r)
            p.kill()
            p.wait()


def test_memfd_noexec_is_never_lowered(monkeypatch):
    """A namespace starts with its parent's vm.memfd_noexec and may not go below it:
    where the caller's is already as high, nothing is written (the child inherits it)."""
    from volt_enforce import compile as comp, pidns

    monkeypatch.setattr(pidns, "memfd_noexec_level", lambda release=None: 1)
    monkeypatch.setattr(pidns, "current_memfd_noexec", lambda: 2)
    with comp.compiled(IsolationConfig()) as c:
        assert c.memfd_noexec == 0
        assert any("vm.memfd_noexec = 2" in n for n in c.notes), c.notes
    monkeypatch.setattr(pidns, "current_memfd_noexec", lambda: 0)
    with comp.compiled(IsolationConfig()) as c:
        assert c.memfd_noexec == 1


def test_a_profile_denying_what_the_init_needs_still_runs_the_target(tmp_path):
    """The seccomp filter is the target's alone: a profile that denies clone,
    execveat and wait4 stops the target using them, not the init from starting it."""
    need_seccomp()
    profile = tmp_path / "deny.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["clone", "clone3", "execveat", "wait4", "signalfd4"],
         "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}]}))
    script = "import os\ntry:\n    os.fork(); print('forked')\nexcept OSError as e:\n    print('refused', e.errno)\n"
    cp = volt_enforce.run([PY, "-c", script], isolation=IsolationConfig(seccomp=str(profile)),
                          capture_output=True, text=True, timeout=60)
    assert (cp.returncode, cp.stdout.strip()) == (0, f"refused {errno.EPERM}"), cp.stderr
