"""Sandbox, run, Popen, preexec and apply_self against the real kernel."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import pytest
from forked import exit_status
from kernelreq import (
    need_cgroup2,
    need_cgroup_v1,
    need_landlock,
    need_netns,
    need_private_network,
    need_seccomp,
    need_userns,
)

import volt_enforce
from volt_enforce import (
    EnforcementError,
    IsolationConfig,
    LandlockAccess,
    LandlockPolicy,
    LandlockRule,
    NetworkConfig,
    NetworkMode,
    ResourceLimits,
    Sandbox,
    SeccompProfile,
    default_isolation,
    server_policy,
)
from volt_enforce.child import ENFORCEMENT_STEPS
from volt_enforce.model import CAPABILITIES, DOCKER_DEFAULT_CAPABILITIES


@pytest.fixture(autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()


def _policy(workdir: str) -> LandlockPolicy:
    """The server preset on the host, plus a writable work directory and the
    Python running the tests (which may live outside /usr, e.g. under pyenv)."""
    pol = server_policy("/")
    pol.rules.append(LandlockRule(path=workdir, access=LandlockAccess.READ_WRITE))
    for prefix in {sys.base_prefix, sys.prefix}:
        pol.rules.append(LandlockRule(path=prefix, access=LandlockAccess.READ_EXEC))
    return pol


def _status(field: str, text: str) -> str:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{field} not in {text!r}")


@pytest.fixture
def work(tmp_path):
    d = tmp_path / "work"
    d.mkdir()
    return str(d)


def _config(work: str, **kw) -> IsolationConfig:
    base = dict(landlock=_policy(work), seccomp=SeccompProfile.DEFAULT)
    base.update(kw)
    return IsolationConfig(**base)


# ---- real programs, allowed and denied ------------------------------------------


def test_run_shell_allowed_and_denied(work):
    r = volt_enforce.run(
        ["sh", "-c", f"cat /etc/hostname >/dev/null && echo read-ok; "
                     f"echo hi > {work}/f && cat {work}/f; "
                     "touch /usr/volt-denied 2>&1; echo rc=$?"],
        isolation=_config(work), capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "read-ok" in r.stdout
    assert "hi" in r.stdout
    # contained: /usr is a read-only bind in the child's view
    assert "Read-only file system" in r.stdout and "rc=1" in r.stdout
    assert not os.path.exists("/usr/volt-denied")
    assert r.report.landlock is not None and r.report.seccomp is not None


def test_coreutils_and_python(work):
    cfg = _config(work)
    r = volt_enforce.run(["ls", "/usr"], isolation=cfg, capture_output=True, text=True)
    assert r.returncode == 0 and "bin" in r.stdout.split()
    code = "import json, os, sys; print(json.dumps({'pid': os.getpid()}))"
    r = volt_enforce.run([sys.executable, "-c", code], isolation=cfg, capture_output=True,
                         text=True)
    assert r.returncode == 0, r.stderr
    assert '"pid"' in r.stdout
    # reading outside the rules: absent from the contained view, denied by Landlock on
    # the host's view
    here = os.path.dirname(os.path.abspath(__file__))
    r = volt_enforce.run(["ls", here], isolation=cfg, capture_output=True, text=True)
    assert r.returncode != 0 and "No such file or directory" in r.stderr
    r = volt_enforce.run(["ls", here], isolation=cfg, capture_output=True, text=True,
                         contain=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr


def _default_isolation_run(work):
    cfg = default_isolation("/")
    cfg.landlock.rules.append(LandlockRule(path=work, access=LandlockAccess.READ_WRITE))
    # root inside is an unprivileged host uid: host root's 0755 work dir is bound
    # idmapped (its owner is the child's root), so what the child makes there is
    # host root's, the directory owner's (volt_enforce.users)
    r = volt_enforce.run(["sh", "-c", f"echo ok > {work}/idmapped"], isolation=cfg,
                         capture_output=True, text=True)
    made = os.path.join(work, "idmapped")
    idmapped = (r.returncode, r.stderr, os.stat(made).st_uid if os.path.exists(made) else None,
                any("bound idmapped" in n for n in r.report.notes))
    work = tempfile.mkdtemp(prefix="volt-default-", dir="/tmp")
    os.chmod(work, 0o1777)  # writable for anyone, as /tmp (and reachable: not below tmp_path)
    cfg = default_isolation("/")
    cfg.landlock.rules.append(LandlockRule(path=work, access=LandlockAccess.READ_WRITE))
    try:
        r = volt_enforce.run(
            ["sh", "-c", "cat /proc/self/uid_map; cat /proc/net/dev | tail -n +3 | cut -d: -f1;"
                         f"echo ok > {work}/x; cat /proc/self/status"],
            isolation=cfg, capture_output=True, text=True,
        )
        x = os.path.join(work, "x")
        written = (open(x).read(), os.stat(x).st_uid) if os.path.exists(x) else None
    finally:
        shutil.rmtree(work)
    return r.returncode, r.stdout, r.stderr, r.report.namespaces, r.report.cgroup is not None, \
        r.report.network, idmapped, written


def test_default_isolation_based_sandbox(work):
    """The seed's production config on this host, with the work dir added; its
    private network is made in a namespace standing in for the host (netns_host)."""
    need_userns()
    need_private_network()
    need_cgroup_v1("pids")
    from netns_host import in_stand_in_host

    rc, out, err, namespaces, has_cgroup, network, idmapped, written = in_stand_in_host(
        _default_isolation_run, work)
    assert list(idmapped) == [0, "", 0, True]  # (a JSON reply: a list)
    assert rc == 0, err
    lines = out.split()
    assert lines[0] == "0" and int(lines[1]) > 0 and lines[2] == "65536"  # never host root
    assert written == ["ok\n", int(lines[1])] or written == ("ok\n", int(lines[1]))
    assert "lo" in lines and "eth0" in lines  # own network namespace, on the bridge
    assert network["bridge"] == "voltbr0" and network["address"].startswith("10.213.")
    assert _status("Seccomp", out) == "2"
    assert _status("NoNewPrivs", out) == "1"
    assert "user" in namespaces and "network" in namespaces
    assert has_cgroup


def test_capabilities_follow_profile(work):
    def capbnd(seccomp, caps=None, network=None):
        cfg = _config(work, seccomp=seccomp, capabilities=caps, network=network)
        r = volt_enforce.run(["cat", "/proc/self/status"], isolation=cfg, capture_output=True,
                             text=True)
        assert r.returncode == 0, r.stderr
        return int(_status("CapBnd", r.stdout), 16), int(_status("CapEff", r.stdout), 16)

    bnd, eff = capbnd(SeccompProfile.STRICT)
    assert bnd == 0 and eff == 0
    # a contained child that is host root never keeps CAP_SETFCAP (Docker's set has it),
    # nor CAP_NET_RAW on the host's network unless named
    docker = sum(1 << CAPABILITIES[c] for c in DOCKER_DEFAULT_CAPABILITIES if c != "SETFCAP")
    bnd, eff = capbnd(SeccompProfile.DEFAULT)
    assert bnd == docker & ~(1 << CAPABILITIES["NET_RAW"])
    bnd, _ = capbnd(SeccompProfile.DEFAULT, ["NET_BIND_SERVICE"])
    assert bnd == 1 << CAPABILITIES["NET_BIND_SERVICE"]
    bnd, _ = capbnd(SeccompProfile.DEFAULT, ["NET_RAW"])
    assert bnd == 1 << CAPABILITIES["NET_RAW"]


def test_net_raw_kept_on_a_network_of_its_own(work):
    """CAP_NET_RAW in a network namespace of the child's own sees only its own traffic."""
    need_netns()
    cfg = _config(work, network=NetworkConfig(mode=NetworkMode.NONE))
    r = volt_enforce.run(["cat", "/proc/self/status"], isolation=cfg, capture_output=True,
                         text=True)
    assert r.returncode == 0, r.stderr
    docker = sum(1 << CAPABILITIES[c] for c in DOCKER_DEFAULT_CAPABILITIES if c != "SETFCAP")
    assert int(_status("CapBnd", r.stdout), 16) == docker


def test_network_none_denies_tcp(work):
    need_netns()
    need_landlock(4)
    code = (
        "import socket\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.bind(('127.0.0.1', 0)); print('bound')\n"
        "except OSError as e:\n"
        "    print('bind', e.errno)\n"
    )
    cfg = _config(work, network=NetworkConfig(mode=NetworkMode.NONE))
    r = volt_enforce.run([sys.executable, "-c", code], isolation=cfg, capture_output=True,
                         text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bind 13"  # EACCES from Landlock


# ---- the subprocess-shaped API -----------------------------------------------------------


def test_popen_interface(work, tmp_path):
    cfg = _config(work)
    with Sandbox(cfg) as sb:
        p = sb.popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        out, _ = p.communicate("hello\n", timeout=10)
        assert out == "hello\n" and p.returncode == 0

        p = sb.popen(["sh", "-c", "pwd; echo $VOLT_X"], stdout=subprocess.PIPE, cwd=work,
                     env={"VOLT_X": "42", "PATH": "/usr/bin:/bin"}, text=True)
        assert p.communicate(timeout=10)[0].split() == [work, "42"]

        r, w = os.pipe()
        try:
            # dash cannot redirect to fds above 9: write with Python instead
            p = sb.popen([sys.executable, "-c", f"import os; os.write({w}, b'via-fd\\n')"],
                         pass_fds=[w])
            assert p.wait(timeout=10) == 0
            os.close(w)
            w = -1
            assert os.read(r, 100) == b"via-fd\n"
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

        p = sb.popen(["sleep", "30"])
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=0.05)
        p.kill()
        assert p.wait(timeout=10) == -signal.SIGKILL

        r2 = sb.run(["sh", "-c", "exit 3"])
        assert r2.returncode == 3
        with pytest.raises(subprocess.CalledProcessError):
            sb.run(["false"], check=True)
        assert sb.run("echo $((1+2))", shell=True, capture_output=True).stdout == b"3\n"


def test_exec_errors_are_subprocess_errors(work):
    with Sandbox(_config(work)) as sb:
        with pytest.raises(FileNotFoundError):
            sb.run(["volt-no-such-command"])
        with pytest.raises(FileNotFoundError):
            sb.run(["/nonexistent/cmd"])
        # outside the Landlock rules: absent from the contained view
        with pytest.raises(FileNotFoundError):
            sb.run([os.path.join(os.path.dirname(__file__), "..", "build.py")])
    with Sandbox(_config(work), contain=False) as sb:
        # on the host's view the exec itself is denied
        with pytest.raises(PermissionError):
            sb.run([os.path.join(os.path.dirname(__file__), "..", "build.py")])


def test_preexec_path(work):
    cfg = _config(work)
    with Sandbox(cfg) as sb:
        r = subprocess.run(["sh", "-c", "touch /usr/volt-x 2>&1; grep Seccomp: /proc/self/status"],
                           preexec_fn=sb.preexec, capture_output=True, text=True)
        assert "Read-only file system" in r.stdout  # the contained view
        assert "Seccomp:\t2" in r.stdout


# ---- failing closed ---------------------------------------------------------------------


@pytest.mark.parametrize("step", ENFORCEMENT_STEPS)
@pytest.mark.parametrize("path", ["spawn", "preexec"])
def test_failing_step_never_runs_target(step, path, work):
    marker = os.path.join(work, "ran")
    cfg = _config(work)
    with Sandbox(cfg) as sb:
        sb.plan._inject_failure(step)
        with pytest.raises(EnforcementError) as ei:
            if path == "spawn":
                sb.run(["sh", "-c", f"touch {marker}"])
            else:
                with sb.child_errors():
                    subprocess.run(["sh", "-c", f"touch {marker}"], preexec_fn=sb.preexec)
    assert ei.value.step == step
    assert "test hook" in str(ei.value)
    assert not os.path.exists(marker)


def test_real_failure_names_step(work):
    """A real (not injected) failure: a seccomp filter longer than the kernel allows
    is refused at validation; an invalid Landlock fd fails in the child."""
    with Sandbox(_config(work), contain=False) as sb:  # the plan's own ruleset fd
        sb.plan.c.landlock_fd = 1 << 20  # not an fd
        with pytest.raises(EnforcementError) as ei:
            sb.run(["true"])
        assert ei.value.step == "landlock" and ei.value.errno == 9  # EBADF


# ---- apply_self -------------------------------------------------------------------------


def test_apply_self(work):
    cfg = _config(work)

    def child():
        report = volt_enforce.apply_self(cfg)
        assert report.landlock is not None
        with open(os.path.join(work, "ok"), "w") as f:
            f.write("x")
        try:
            open("/usr/volt-apply-self", "w")
            return 1
        except OSError as exc:  # the view: a read-only bind
            if exc.errno != errno.EROFS:
                return 4
        try:
            os.listdir(os.path.dirname(os.path.abspath(__file__)))
            return 2
        except FileNotFoundError:  # not granted: absent from the view
            pass
        with open("/proc/self/status") as f:
            st = f.read()
        return 0 if _status("Seccomp", st) == "2" and _status("NoNewPrivs", st) == "1" else 3

    assert exit_status(child) == 0
    assert os.path.exists(os.path.join(work, "ok"))


def test_apply_self_refuses_threads(work):
    cfg = _config(work)

    def child():
        ev = threading.Event()
        t = threading.Thread(target=ev.wait, daemon=True)
        t.start()
        try:  # below ABI 8 (no TSYNC): tests/test_landlock_abi8plus.py has ABI 8
            volt_enforce.apply_self(cfg, landlock_abi=7)
            return 1
        except EnforcementError as exc:
            if "threads" not in str(exc) or "TSYNC needs ABI 8" not in str(exc):
                return 2
        # a threaded process enters no mount namespace: the view is left out, and said so
        report = volt_enforce.apply_self(cfg, allow_threads=True, landlock_abi=7)
        ev.set()
        if not any("view was not entered" in n for n in report.notes) or report.view:
            return 4
        return 0 if any("TSYNC" in n for n in report.notes) else 3

    assert exit_status(child) == 0


# ---- concurrency and leaks ---------------------------------------------------------------


def test_threads_spawning_concurrently(work):
    cfg = _config(work)
    results: list[str] = []
    errors: list[BaseException] = []
    with Sandbox(cfg) as sb:
        def worker():
            try:
                for _ in range(25):
                    r = sb.run(["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status;"
                                           "touch /usr/volt-thr 2>/dev/null && echo WROTE"],
                               capture_output=True, text=True, timeout=60)
                    results.append(r.stdout)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors, errors[:3]
    assert len(results) == 200
    for out in results:
        assert "Seccomp:\t2" in out and "NoNewPrivs:\t1" in out and "WROTE" not in out


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _volt_cgroups() -> list[str]:
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(root, d) for d in dirs if d.startswith("volt-")]
    return found


def test_no_fd_or_cgroup_leak_after_1000_spawns(work):
    need_cgroup2()
    need_cgroup_v1("pids")
    volt_enforce.sandbox.clear_cache()
    from volt_enforce import pidns

    pidns.init_memfd(), pidns.parent_pidfd()  # made once per process, for every contained spawn
    before_fds, before_cg = _fds(), _volt_cgroups()
    cfg = _config(work, resources=ResourceLimits(pids_max=64))
    with Sandbox(cfg) as sb:
        for _ in range(1000):
            assert sb.run(["/bin/true"]).returncode == 0
    for _ in range(1000):  # one sandbox (and cgroup) per call; the ruleset is reused
        assert volt_enforce.run(["/bin/true"], isolation=cfg).returncode == 0
    cached = [sb for sb in volt_enforce.sandbox._PREPARED.values() if not sb._closed]
    assert len(cached) == 1
    view_fds = cached[0].view.open_fds if cached[0].view is not None else 0
    assert _fds() == before_fds + 1 + view_fds  # the one cached ruleset and view template
    del cached  # the last reference to the cached sandbox is the cache's
    volt_enforce.sandbox.clear_cache()
    assert _fds() == before_fds
    assert _volt_cgroups() == before_cg


def test_closed_sandbox_refuses(work):
    sb = Sandbox(_config(work))
    sb.close()
    with pytest.raises(ValueError):
        sb.run(["true"])
    sb.close()  # idempotent


def test_refused_cgroup_placement_names_the_cgroup(tmp_path):
    """A cgroup2 directory the kernel refuses to place a child in (it has a
    controller enabled for its children and so may hold no process): the spawn
    fails naming the cgroup step, and nothing runs."""
    need_cgroup2()
    from volt_enforce.child import spawn

    layout = volt_enforce.probe().cgroups
    d = os.path.join(layout.v2.current_path, f"volt-test-{os.getpid()}")
    os.mkdir(d)
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        os.rmdir(d)  # a removed cgroup refuses new members
        marker = tmp_path / "ran"
        try:
            with pytest.raises(EnforcementError) as ei:
                spawn(["sh", "-c", f"touch {marker}"], cgroup_fd=fd)
        finally:
            os.close(fd)
        assert ei.value.step == "cgroup" and "CLONE_INTO_CGROUP" in str(ei.value)
        assert not marker.exists()
    finally:
        if os.path.isdir(d):
            os.rmdir(d)


def _writable(d: str) -> bool:
    try:
        os.rmdir(tempfile.mkdtemp(dir=d))
        return True
    except OSError:
        return False


def test_run_reuses_preparation_but_sees_changes(work):
    """run(isolation=cfg) reuses what it prepared for cfg, yet a change to cfg
    (here: a new readable directory) is enforced on the next call."""
    # a directory outside every rule of the server preset (in the kernel matrix's
    # VM only some of these are writable)
    parent = next(d for d in ("/mnt", "/home", "/opt", "/srv", "/")
                  if os.path.isdir(d) and os.access(d, os.W_OK) and _writable(d))
    other = tempfile.mkdtemp(prefix="volt-test-", dir=parent)
    try:
        cfg = _config(work)
        script = ["ls", other]
        assert volt_enforce.run(script, isolation=cfg, capture_output=True).returncode != 0
        cfg.landlock.rules.append(LandlockRule(path=other, access=LandlockAccess.READ_ONLY))
        assert volt_enforce.run(script, isolation=cfg, capture_output=True).returncode == 0
        cfg.landlock.rules.pop()
        assert volt_enforce.run(script, isolation=cfg, capture_output=True).returncode != 0
    finally:
        shutil.rmtree(other)


def test_apply_self_with_tsync_fails_when_a_thread_cannot_be_synchronized():
    """seccomp's TSYNC returns the id of a thread it could not synchronize (one with a
    filter of its own) and installs nothing: that is a failure, never "synchronized"."""
    need_seccomp()
    import struct

    from volt_enforce._core import ffi, lib

    allow_all = struct.pack("=HBBI", 0x06, 0, 0, lib.SECCOMP_RET_ALLOW)  # BPF_RET|BPF_K

    def child():
        loaded, done = threading.Event(), threading.Event()

        def own_filter():
            lib.ve_seccomp_set_no_new_privs()
            buf = ffi.from_buffer(allow_all)
            if lib.ve_seccomp_load(buf, 1, 0) == 0:
                loaded.set()
            done.wait()

        t = threading.Thread(target=own_filter, daemon=True)
        t.start()
        if not loaded.wait(5):
            return 4
        try:
            volt_enforce.apply_self(IsolationConfig(seccomp="default"), allow_threads=True,
                                    contain=False)  # threads: the host's view
            return 1  # reported success
        except EnforcementError as exc:
            if exc.step != "seccomp" or "TSYNC" not in str(exc):
                return 2
        finally:
            done.set()
        with open("/proc/thread-self/status") as f:
            return 0 if _status("Seccomp", f.read()) == "0" else 3

    assert exit_status(child) == 0
