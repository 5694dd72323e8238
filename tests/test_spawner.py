"""The pre-restricted spawner (volt_enforce/spawner.py, csrc/spawner/spawner.c).

Its children are checked exactly like the direct path's: the same probe runs
under a spawner sandbox and a ``spawner=False`` twin, and their observations
(restrictions, denied operations, fds, cwd, umask, signals, rlimits) and
reports must agree; unsandboxed controls show each denial is real. Faults (the
spawner killed between and during requests, its restriction failing, its fds
exhausted) end in a restart or an error, never in an unrestricted child.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from kernelreq import need_cgroup_v1, need_landlock, need_seccomp

from volt_enforce import (
    EnforcementError,
    IsolationConfig,
    LandlockAccess,
    LandlockRule,
    LandlockScope,
    PolicyError,
    ResourceLimits,
    Sandbox,
    SeccompProfile,
    server_policy,
)


@pytest.fixture(autouse=True)
def _kernel():
    need_landlock(6)
    need_seccomp()


def _policy(work: str, *, scopes: bool = False):
    pol = server_policy("/")
    pol.rules.append(LandlockRule(path=work, access=LandlockAccess.READ_WRITE))
    for prefix in {sys.base_prefix, sys.prefix}:
        pol.rules.append(LandlockRule(path=prefix, access=LandlockAccess.READ_EXEC))
    if scopes:
        pol.scopes = LandlockScope.SIGNAL | LandlockScope.ABSTRACT_UNIX_SOCKET
    return pol


def _config(work: str, seccomp=SeccompProfile.DEFAULT, scoped: bool = False) -> IsolationConfig:
    return IsolationConfig(landlock=_policy(work, scopes=scoped), seccomp=seccomp)


@pytest.fixture
def work(tmp_path):
    d = tmp_path / "work"
    d.mkdir()
    return str(d)


@pytest.fixture
def outside():
    """A directory no policy here grants (the server preset grants /tmp): denied in
    the sandbox, allowed to a control."""
    d = tempfile.mkdtemp(prefix=".spawner-outside-", dir=os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(d, "secret"), "w") as f:
        f.write("s\n")
    yield d
    shutil.rmtree(d)


def _twins(cfg: IsolationConfig):
    sp = Sandbox(cfg, contain=False, spawner=True)
    direct = Sandbox(cfg, contain=False, spawner=False)
    assert sp.report.spawn["path"] == "spawner", sp.report.spawn
    assert direct.report.spawn == {"path": "direct", "reason": "spawner=False"}
    return sp, direct


def _fds() -> set[int]:
    """This process's open fds, less the one that listed them."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
            out.add(int(name))
        except OSError:
            pass
    return out


def _children() -> set[int]:
    out: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                out |= {int(p) for p in f.read().split()}
        except FileNotFoundError:
            pass  # a thread that has just exited
    return out


PROBE = r"""
import json, os, resource, signal, sys
out = {}
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
for k in ("NoNewPrivs", "Seccomp", "Seccomp_filters", "CapEff", "CapPrm", "CapBnd", "CapAmb",
          "CapInh", "SigBlk", "SigIgn", "Uid", "Gid", "Cpus_allowed_list"):
    out[k] = st[k].strip()
out["umask"] = st["Umask"].strip()
out["cwd"] = os.getcwd()
def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
out["fds"] = [fd for fd in range(1024) if is_open(fd)]
out["env"] = os.environ.get("VOLT_PROBE")
out["rlimit_core"] = list(resource.getrlimit(resource.RLIMIT_CORE))
out["rlimit_nofile"] = list(resource.getrlimit(resource.RLIMIT_NOFILE))
out["pgid_is_parent"] = os.getpgid(0) == os.getpgid(os.getppid())
out["sid_is_self"] = os.getsid(0) == os.getpid()
out["ppid"] = os.getppid()
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return e.errno
out["read_outside"] = attempt(lambda: open(sys.argv[1] + "/secret").read())
out["write_outside"] = attempt(lambda: open(sys.argv[1] + "/new", "w").close())
out["write_work"] = attempt(lambda: open(sys.argv[2] + "/new", "w").close())
out["read_etc"] = attempt(lambda: open("/etc/hostname").read())
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = libc.unshare(0x04000000)  # CLONE_NEWUTS: denied by the default filter and the caps
out["unshare"] = ctypes.get_errno() if r < 0 else "ok"
print(json.dumps(out))
"""


def _probe(sb: Sandbox, work: str, outside: str, **kw) -> dict:
    p = sb.popen([sys.executable, "-c", PROBE, outside, work], stdout=subprocess.PIPE, text=True,
                 **kw)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0
    return {"path": p.spawn_path, **json.loads(out)}


# ---- the path a sandbox takes ------------------------------------------------------------


def test_path_choice_and_report(work):
    from volt_enforce.child import ChildPlan
    from volt_enforce.compile import compile_config
    from volt_enforce.spawner import eligibility

    cfg = _config(work)
    with Sandbox(cfg, contain=False, spawner=True) as sb:
        assert sb.report.spawn["path"] == "spawner"
        assert sb.report.to_dict()["spawn"]["path"] == "spawner"
        assert sb.popen(["/bin/true"]).spawn_path == "spawner"
    with Sandbox(cfg, contain=False) as sb:  # opt-in: the default is the direct path
        assert sb.report.spawn["path"] == "direct"
        assert "not requested" in sb.report.spawn["reason"]
        p = sb.popen(["/bin/true"])
        assert p.spawn_path == "direct" and p.wait() == 0
    with compile_config(cfg) as compiled:  # contained: namespaces of each child's own
        assert "contained" in eligibility(compiled, None, ChildPlan(no_new_privs=True))
    with compile_config(IsolationConfig(seccomp="default"), contain=False) as compiled:
        assert "no Landlock ruleset" in eligibility(compiled, None, ChildPlan(no_new_privs=True))
    with pytest.raises(PolicyError, match="spawner.*no Landlock ruleset"):
        Sandbox(IsolationConfig(seccomp="default"), contain=False, spawner=True)
    limits = cfg.replace(resources=ResourceLimits(pids_max=64))
    try:
        Sandbox(limits, contain=False).close()
    except EnforcementError as exc:
        pytest.skip(f"no pids controller here: {exc}")
    with pytest.raises(PolicyError, match="spawner.*cgroup"):
        Sandbox(limits, contain=False, spawner=True)
    # a per-child step in the plan itself keeps the direct path, whatever the config says
    with compile_config(cfg, contain=False) as compiled:
        assert eligibility(compiled, None, ChildPlan(no_new_privs=True)) is None
        for step in (dict(new_session=True), dict(other_namespaces=0x08000000)):  # IPC
            assert "each child's own" in eligibility(compiled, None, ChildPlan(**step))
    with pytest.raises(PolicyError, match="spawner.*contained"):
        Sandbox(cfg, spawner=True)
    with pytest.raises(PolicyError, match="spawner"):
        Sandbox(cfg, contain=False, spawner="yes")


def test_per_call_fallback_and_forced_spawner(work):
    cfg = _config(work)
    with Sandbox(cfg, contain=False, spawner=True) as sb:
        # a call the spawner cannot serve is refused, never served with less
        for kw in (dict(close_fds=False), dict(process_group=0),
                   dict(env={f"V{i}": "x" * 1000 for i in range(250)})):  # > 1 message
            with pytest.raises(ValueError, match="spawner=True"):
                sb.popen(["/bin/true"], **kw)
        p = sb.popen(["/bin/true"])
        assert p.wait() == 0 and p.spawn_path == "spawner"
    with Sandbox(cfg, contain=False, spawner=True) as sb:
        assert sb.run(["/bin/true"]).returncode == 0
        with pytest.raises(ValueError, match="spawner=True.*close_fds"):
            sb.run(["/bin/true"], close_fds=False)


# ---- children checked like the direct path's ------------------------------------------


def test_children_match_the_direct_path(work, outside):
    sp, direct = _twins(_config(work))
    with sp, direct:
        a = _probe(sp, work, outside)
        b = _probe(direct, work, outside)
        assert a.pop("path") == "spawner" and b.pop("path") == "direct"
        assert a == b
        assert a["ppid"] == os.getpid()  # the caller's own child (CLONE_PARENT)
        assert a["NoNewPrivs"] == "1" and a["Seccomp"] == "2"
        assert a["read_outside"] == errno.EACCES and a["write_outside"] == errno.EACCES
        assert a["write_work"] == "ok" and a["read_etc"] == "ok"
        assert a["unshare"] == errno.EPERM
        assert a["fds"] == [0, 1, 2]
        rs, rd = sp.report.to_dict(), direct.report.to_dict()
        assert rs.pop("spawn")["path"] == "spawner" and rd.pop("spawn")["path"] == "direct"
        assert rs == rd
    # the control: unsandboxed, the same operations succeed
    ctl = subprocess.run([sys.executable, "-c", PROBE, outside, work], capture_output=True,
                         text=True, check=True)
    c = json.loads(ctl.stdout)
    assert c["read_outside"] == "ok" and c["write_outside"] == "ok" and c["Seccomp"] == "0"


def test_caller_state_at_call_time(work, outside, tmp_path):
    """cwd, env, umask, rlimits, blocked and ignored signals, fds and sessions come
    from the caller when it spawns, not from when the spawner started."""
    sp, direct = _twins(_config(work))
    old_core = resource.getrlimit(resource.RLIMIT_CORE)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    old_usr2 = signal.getsignal(signal.SIGUSR2)
    r, w = os.pipe()
    try:
        with sp, direct:
            assert sp.run(["/bin/true"]).returncode == 0  # started with the old state
            resource.setrlimit(resource.RLIMIT_CORE, (4096, old_core[1]))
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)
            os.environ["VOLT_PROBE"] = "from-environ"
            kw = dict(cwd=str(tmp_path), umask=0o077, pass_fds=(w,))
            results = []
            for sb in (sp, direct):
                results.append(_probe(sb, work, outside, **kw))
                results.append(_probe(sb, work, outside, start_new_session=True,
                                      env={"VOLT_PROBE": "given"}))
            for res in results:
                res.pop("path")
            assert results[0] == results[2] and results[1] == results[3]
            a, s = results[0], results[1]
            assert a["cwd"] == str(tmp_path) and a["umask"] == "0077"
            assert a["env"] == "from-environ" and s["env"] == "given"
            assert a["rlimit_core"] == [4096, old_core[1]]
            assert int(a["SigBlk"], 16) & (1 << (signal.SIGUSR1 - 1))
            assert int(a["SigIgn"], 16) & (1 << (signal.SIGUSR2 - 1))
            assert a["fds"] == [0, 1, 2, w]
            assert a["pgid_is_parent"] and not a["sid_is_self"] and s["sid_is_self"]
            # the cwd and umask the caller has now (the spawner shares them: CLONE_FS)
            here, mask = os.getcwd(), os.umask(0o027)
            try:
                os.chdir(str(tmp_path))
                live = [_probe(sb, work, outside) for sb in (sp, direct)]
            finally:
                os.chdir(here)
                os.umask(mask)
            assert live[0]["cwd"] == live[1]["cwd"] == str(tmp_path)
            assert live[0]["umask"] == live[1]["umask"] == "0027"
            assert sp._spawners.counts["started"] == 1  # none of this needed a restart
    finally:
        os.close(r)
        os.close(w)
        os.environ.pop("VOLT_PROBE", None)
        resource.setrlimit(resource.RLIMIT_CORE, old_core)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGUSR2, old_usr2)


def test_children_get_the_callers_affinity_not_the_pinned_spawners(work, outside):
    """The spawner runs pinned to its caller's CPU (the request and the reply then
    wake a task on a running CPU, not an idle one), and each child is given the
    caller's affinity again before exec; a thread with an affinity of its own gets
    a spawner of its own, as any changed state does."""
    allowed = sorted(os.sched_getaffinity(0))
    sp, direct = _twins(_config(work))
    out: dict = {}
    with sp, direct:
        a, b = _probe(sp, work, outside), _probe(direct, work, outside)
        assert a["Cpus_allowed_list"] == b["Cpus_allowed_list"]
        assert _cpus(a["Cpus_allowed_list"]) == allowed
        (pid,) = sp._spawners.pids()
        pinned = os.sched_getaffinity(pid)
        assert len(pinned) == 1 and pinned <= set(allowed)

        def in_thread(cpu: int) -> None:
            os.sched_setaffinity(0, {cpu})  # this thread only
            out[cpu] = _probe(sp, work, outside)["Cpus_allowed_list"]

        for cpu in allowed[-2:]:
            t = threading.Thread(target=in_thread, args=(cpu,))
            t.start()
            t.join(60)
            assert _cpus(out[cpu]) == [cpu]
        if len(allowed) > 1:
            assert sp._spawners.counts["restarted"] >= 1
        assert _cpus(_probe(sp, work, outside)["Cpus_allowed_list"]) == allowed
    # the control: a child pinned the way the spawner is shows it
    ctl = subprocess.run(["taskset", "-c", str(allowed[0]), "grep", "Cpus_allowed_list",
                          "/proc/self/status"], capture_output=True, text=True, check=True)
    assert _cpus(ctl.stdout.split(":")[1].strip()) == [allowed[0]]


def _cpus(text: str) -> list[int]:
    """The CPUs of a Cpus_allowed_list ("0-3,5")."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def test_errors_match_the_direct_path(work, tmp_path):
    sp, direct = _twins(_config(work))
    with sp, direct:
        with pytest.raises(ValueError, match="spawner=True"):  # not open: refused, not served
            sp.run(["/bin/true"], pass_fds=(1000,))
        for kw in ({"args": ["/nonexistent/x"]}, {"args": ["no-such-command-volt"]},
                   {"args": ["/bin/true"], "cwd": str(tmp_path / "absent")},
                   {"args": [str(tmp_path)]}):
            errs = []
            for sb in (sp, direct):
                with pytest.raises(OSError) as info:
                    sb.run(**kw)
                errs.append((type(info.value), info.value.errno, info.value.filename))
            assert errs[0] == errs[1], kw


def test_lowered_hard_limit_reaches_the_child(work):
    """A hard limit lowered after the spawner started is the child's too (lowering
    is for good, so in a forked child). Raising one needs CAP_SYS_RESOURCE, which a
    spawner's child lacks: the spawner answers STALE and a new one is started."""
    from forked import json_reply

    def child():
        old = resource.getrlimit(resource.RLIMIT_MSGQUEUE)
        with Sandbox(_config(work), contain=False, spawner=True) as sb:
            sb.run(["/bin/true"])
            low = 4096 if old[1] == resource.RLIM_INFINITY else old[1] // 2
            resource.setrlimit(resource.RLIMIT_MSGQUEUE, (min(old[0], low), low))
            r = sb.run(["cat", "/proc/self/limits"], capture_output=True, text=True)
            line = next(ln for ln in r.stdout.splitlines() if ln.startswith("Max msgqueue size"))
            return [line.split()[3:5], [min(old[0], low), low], sb._spawners.counts["started"]]

    status, reply = json_reply(child)
    assert os.waitstatus_to_exitcode(status) == 0, reply
    got, want, started = reply["ok"]
    assert got == [str(v) for v in want] and started == 1


def test_changed_capabilities_restart_the_spawner(work):
    """A thread that dropped a capability from its bounding set spawns without it,
    as on the direct path: its fingerprint no longer matches the spawner's, so a
    new spawner is started from it (capabilities are per thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    out = {}
    sp, direct = _twins(_config(work))
    with sp, direct:
        assert sp.run(["/bin/true"]).returncode == 0

        def bounding(sb):
            r = sb.run(["grep", "CapBnd", "/proc/self/status"], capture_output=True, text=True)
            return int(r.stdout.split()[1], 16)

        def in_thread():
            if libc.prctl(24, 0, 0, 0, 0) < 0:  # PR_CAPBSET_DROP CAP_CHOWN, this thread only
                out["err"] = ctypes.get_errno()
                return
            out["spawner"], out["direct"] = bounding(sp), bounding(direct)

        t = threading.Thread(target=in_thread)
        t.start()
        t.join(30)
        assert "err" not in out, os.strerror(out["err"])
        assert out["spawner"] == out["direct"] and not out["spawner"] & 1  # no CAP_CHOWN
        assert sp._spawners.counts["restarted"] >= 1
        assert bounding(sp) & 1  # this thread kept it: a spawner for it again


def _enter_landlock_domain_denying_writes(libc) -> None:
    """This thread only: a Landlock domain that handles writing files and grants it
    nowhere, entered through raw syscalls (other code, not apply_self), without
    no_new_privs (root's CAP_SYS_ADMIN), so that no fingerprint shows it."""
    import struct

    attr = struct.pack("<Q", 1 << 1)  # handled_access_fs: LANDLOCK_ACCESS_FS_WRITE_FILE
    fd = libc.syscall(444, attr, len(attr), 0)  # landlock_create_ruleset
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        if libc.syscall(446, fd, 0) < 0:  # landlock_restrict_self
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(fd)


def test_landlock_domain_entered_since_restarts_the_spawner(work, outside):
    """The hostile case of the fingerprint's blind spot: a thread restricts itself
    further through other code, then spawns. Its child must be as restricted as the
    thread (as on the direct path), never the spawner's older, weaker domain: the
    request's ptrace-access check (kcmp) sees the thread is no longer above the
    spawner, and a new spawner is started from the thread's state. This holds with
    idle spawners in the pool that were started before."""
    if os.geteuid() != 0:
        pytest.skip("entering a Landlock domain without no_new_privs needs root")
    libc = ctypes.CDLL(None, use_errno=True)
    sp, direct = _twins(_config(work))
    out: dict = {}
    with sp, direct:
        pool = sp._spawners
        idle = [pool._acquire() for _ in range(3)]  # three spawners of this thread's state
        for one in idle:
            pool._release(one, True)
        assert all(one.check_fs for one in idle)
        before = _probe(sp, work, outside)
        assert before["write_work"] == "ok"  # the control: the sandbox lets it write there

        def in_thread() -> None:
            try:
                _enter_landlock_domain_denying_writes(libc)
                out["spawner"] = _probe(sp, work, outside)
                out["direct"] = _probe(direct, work, outside)
            except BaseException as exc:  # reported below, in the test's thread
                out["error"] = exc

        t = threading.Thread(target=in_thread)
        t.start()
        t.join(60)
        assert "error" not in out, out["error"]
        assert out["direct"]["write_work"] == errno.EACCES  # the thread's own domain
        assert out["spawner"]["write_work"] == errno.EACCES
        assert out["spawner"]["path"] == "spawner"
        assert pool.counts["restarted"] >= 1


def _in_thread(fn):
    """fn() in a thread of its own (whose state it may change for good): its result,
    or its exception raised here."""
    out: dict = {}

    def run() -> None:
        try:
            out["ok"] = fn()
        except BaseException as exc:  # raised below, in the test's thread
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(120)
    assert not t.is_alive()
    if "error" in out:
        raise out["error"]
    return out["ok"]


NS_PROBE = r"""
import json, os, sys
out = {"mnt": os.stat("/proc/self/ns/mnt").st_ino}
try:
    out["secret"] = open(sys.argv[1]).read()
except OSError as e:
    out["secret"] = e.errno
print(json.dumps(out))
"""


def _ns_probe(sb: Sandbox, secret: str) -> dict:
    p = sb.run([sys.executable, "-c", NS_PROBE, secret], capture_output=True, text=True,
               timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_a_mount_namespace_entered_since_restarts_the_spawner(work):
    """A thread that enters a mount namespace of its own after the spawner started,
    and hides a secret there under an empty tmpfs, gets children in that namespace,
    as on the direct path, never in the spawner's older one, where the secret is
    readable. unshare(CLONE_NEWNS) gives the thread an fs of its own, and the
    request's kcmp sees that the thread no longer shares the spawner's."""
    if os.geteuid() != 0:
        pytest.skip("unshare of a mount namespace, and kcmp of the spawner, need root")
    libc = ctypes.CDLL(None, use_errno=True)
    hidden = os.path.join(work, "hidden")
    os.mkdir(hidden)
    secret = os.path.join(hidden, "secret")
    with open(secret, "w") as f:
        f.write("s\n")
    sp, direct = _twins(_config(work))
    with sp, direct:
        assert sp.report.spawn["unchecked"] == []  # root
        before = _ns_probe(sp, secret)
        host = os.stat("/proc/self/ns/mnt").st_ino
        assert before == {"mnt": host, "secret": "s\n"}  # the control: it reads it

        def hide_and_spawn() -> tuple[int, dict, dict]:
            if libc.unshare(0x00020000) < 0:  # CLONE_NEWNS
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
            if libc.mount(b"none", b"/", None, 0x40000 | 0x4000, None) < 0:  # MS_REC|MS_PRIVATE
                raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
            if libc.mount(b"tmpfs", hidden.encode(), b"tmpfs", 0, None) < 0:
                raise OSError(ctypes.get_errno(), "mount tmpfs on " + hidden)
            mine = os.stat("/proc/thread-self/ns/mnt").st_ino
            return mine, _ns_probe(sp, secret), _ns_probe(direct, secret)

        mine, via_spawner, via_direct = _in_thread(hide_and_spawn)
        assert mine != host
        assert via_direct == {"mnt": mine, "secret": errno.ENOENT}
        assert via_spawner == via_direct
        assert sp._spawners.counts["restarted"] >= 1
        assert _ns_probe(sp, secret) == before  # this thread's spawner again
    assert os.path.exists(secret)  # the tmpfs was the thread's namespace's only


def test_a_thread_with_an_fs_of_its_own_restarts_the_spawner(work, outside):
    """The spawner shares the fs_struct (cwd, root, umask) of the thread that started
    it. A thread that unshares it and then changes its cwd and umask gets children
    with its own, as on the direct path: the request's kcmp sees the fs differ."""
    if os.geteuid() != 0:
        pytest.skip("kcmp of the spawner needs CAP_SYS_PTRACE")
    libc = ctypes.CDLL(None, use_errno=True)
    sp, direct = _twins(_config(work))
    with sp, direct:
        assert not [u for u in sp.report.spawn["unchecked"] if "kcmp" in u]  # root
        before = _probe(sp, work, outside)
        assert before["cwd"] == os.getcwd() != work  # the control

        def own_fs() -> tuple[dict, dict]:
            if libc.unshare(0x00000200) < 0:  # CLONE_FS
                raise OSError(ctypes.get_errno(), "unshare(CLONE_FS)")
            os.chdir(work)
            os.umask(0o077)  # this thread's alone now
            return _probe(sp, work, outside), _probe(direct, work, outside)

        via_spawner, via_direct = _in_thread(own_fs)
        assert via_direct["cwd"] == work and via_direct["umask"] == "0077"
        assert (via_spawner["cwd"], via_spawner["umask"]) == (work, "0077")
        assert sp._spawners.counts["restarted"] >= 1
        assert _probe(sp, work, outside)["cwd"] == before["cwd"]


CGROUP_PROBE = r"""
import sys
lines = open("/proc/self/cgroup").read().splitlines()
print([line.split(":", 2)[2] for line in lines if line.split(":")[1] == "pids"][0])
"""


def test_a_thread_moved_to_a_cgroup_of_its_own_restarts_the_spawner(work):
    """cgroup v1 moves threads one by one (a tid written to ``tasks``). A thread moved
    into a pids-limited cgroup after the spawner started gets children in it, as on
    the direct path, never in the spawner's: the fingerprint reads the thread's own
    /proc/thread-self/cgroup (/proc/self/cgroup shows the leader's only)."""
    need_cgroup_v1("pids")
    from volt_enforce.kernel import probe as kernel_probe

    mount = kernel_probe().cgroups.v1_mount("pids").path
    with open("/proc/self/cgroup") as f:
        here = [line.split(":", 2)[2] for line in f.read().splitlines()
                if line.split(":")[1] == "pids"][0]
    limited = f"{mount}{here.rstrip('/')}/volt-spawner-test-{os.getpid()}"
    os.mkdir(limited)
    try:
        with open(f"{limited}/pids.max", "w") as f:
            f.write("64")
        rel = limited[len(mount):]
        sp, direct = _twins(_config(work))
        with sp, direct:
            run = lambda sb: sb.run([sys.executable, "-c", CGROUP_PROBE], capture_output=True,
                                    text=True, timeout=60).stdout.strip()
            assert run(sp) == here  # the control: this thread's cgroup

            def move_and_spawn() -> tuple[str, str]:
                tid = threading.get_native_id()
                with open(f"{limited}/tasks", "w") as f:
                    f.write(str(tid))
                try:
                    return run(sp), run(direct)
                finally:
                    with open(f"{mount}{here}/tasks", "w") as f:
                        f.write(str(tid))

            via_spawner, via_direct = _in_thread(move_and_spawn)
            assert via_direct == rel
            assert via_spawner == rel
            assert sp._spawners.counts["restarted"] >= 1
    finally:
        for _ in range(50):
            try:
                os.rmdir(limited)
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                time.sleep(0.05)


def test_a_probe_fd_closed_and_reused_by_other_code_is_reopened(work, outside):
    """Code that closes fds it does not own, and opens another file at the number of
    the pool's /proc/self/stat, must not blind the fingerprint (its process group and
    ignored signals): the fd's st_dev and st_ino are checked on each request, and a
    changed one is forgotten (never closed: the number is the other file's) and
    reopened. Without the check the next child got the ignored signals parsed from
    the other file."""
    sp, direct = _twins(_config(work))
    old_usr2 = signal.getsignal(signal.SIGUSR2)
    decoy = os.path.join(work, "decoy")
    with open(decoy, "w") as f:
        f.write("1 (x) S " + " ".join(["0"] * 40) + "\n")
    with sp, direct:
        try:
            _probe(sp, work, outside)
            pool = sp._spawners
            fd = pool._probe[0]
            os.close(fd)
            other = os.open(decoy, os.O_RDONLY)
            os.dup2(other, fd)  # another file at the number, as a reused one would be
            os.close(other)
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)
            via_spawner, via_direct = _probe(sp, work, outside), _probe(direct, work, outside)
            assert int(via_direct["SigIgn"], 16) & (1 << (signal.SIGUSR2 - 1))
            assert via_spawner["SigIgn"] == via_direct["SigIgn"]
            assert via_spawner["path"] == "spawner"
            assert os.readlink(f"/proc/self/fd/{fd}") == decoy  # left to its owner
            assert os.readlink(f"/proc/self/fd/{pool._probe[0]}").endswith("/stat")
        finally:
            signal.signal(signal.SIGUSR2, old_usr2)
            os.close(fd)


# ---- what children can do to the spawner and to each other ---------------------------


PEEK = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
target, fd = int(sys.argv[1]), int(sys.argv[2])
out = {}
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return e.errno
out["fd_link"] = attempt(lambda: os.readlink(f"/proc/{target}/fd/{fd}"))
out["fdinfo"] = attempt(lambda: open(f"/proc/{target}/fdinfo/{fd}").read())
def getfd():
    pidfd = os.pidfd_open(target)
    try:
        r = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd
        if r < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        os.close(r)
    finally:
        os.close(pidfd)
out["pidfd_getfd"] = attempt(getfd)
r = libc.ptrace(16, target, 0, 0)  # PTRACE_ATTACH
out["ptrace"] = ctypes.get_errno() if r < 0 else "ok"
if r == 0:  # wait for the attach's stop, then detach: else the target stays stopped
    os.waitpid(target, 0x40000000)  # __WALL
    libc.ptrace(17, target, 0, 0)  # PTRACE_DETACH
out["kill0"] = attempt(lambda: os.kill(target, 0))
print(json.dumps(out))
"""


def _peek(run, target: int, fd: int = 0) -> dict:
    r = run([sys.executable, "-c", PEEK, str(target), str(fd)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_child_cannot_ptrace_the_spawner_nor_take_its_fds(work):
    # no seccomp filter and every capability (root): only the Landlock domain and
    # non-dumpability stand between the child and the spawner
    cfg = _config(work, seccomp="unconfined")
    with Sandbox(cfg, contain=False, spawner=True) as sb:
        assert sb.run(["/bin/true"]).returncode == 0
        (spawner,) = sb._spawners.pids()
        fds = os.listdir(f"/proc/{spawner}/fd")
        assert len(fds) == 1 and os.readlink(f"/proc/{spawner}/fd/{fds[0]}").startswith("socket:")
        got = _peek(sb.run, spawner, int(fds[0]))
        assert got["fd_link"] == errno.EACCES and got["fdinfo"] == errno.EACCES
        assert got["pidfd_getfd"] == errno.EPERM and got["ptrace"] == errno.EPERM
        # the control: an unsandboxed child of this process can do all of it
        ctl = _peek(subprocess.run, spawner, int(fds[0]))
        assert ctl == {"fd_link": "ok", "fdinfo": "ok", "pidfd_getfd": "ok", "ptrace": "ok",
                       "kill0": "ok"}
        assert sb.run(["/bin/true"]).returncode == 0  # the spawner survived the control


@pytest.mark.parametrize("scoped", [False, True])
def test_siblings_as_on_the_direct_path(work, scoped):
    """Each child is in a domain of its own: a sibling cannot ptrace or read it; a
    scoped policy also keeps it from signalling; unscoped, it may, as on the
    direct path."""
    cfg = _config(work, seccomp="unconfined", scoped=scoped)
    sp, direct = _twins(cfg)
    got = {}
    with sp, direct:
        for name, sb in (("spawner", sp), ("direct", direct)):
            victim = sb.popen(["sleep", "30"])
            try:
                got[name] = _peek(sb.run, victim.pid)
            finally:
                victim.kill()
                victim.wait()
    assert got["spawner"] == got["direct"]
    assert got["spawner"]["ptrace"] == errno.EPERM and got["spawner"]["fd_link"] == errno.EACCES
    assert got["spawner"]["pidfd_getfd"] == errno.EPERM
    assert got["spawner"]["kill0"] == (errno.EPERM if scoped else "ok")


# ---- faults --------------------------------------------------------------------------


def _restricted(sb: Sandbox, outside: str) -> None:
    r = sb.run(["sh", "-c", f"grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; cat {outside}/secret"],
               capture_output=True, text=True)
    assert "Seccomp:\t2" in r.stdout and "NoNewPrivs:\t1" in r.stdout
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_spawner_killed_between_requests_is_restarted(work, outside):
    with Sandbox(_config(work), contain=False, spawner=True) as sb:
        _restricted(sb, outside)
        (first,) = sb._spawners.pids()
        os.kill(first, signal.SIGKILL)
        for _ in range(100):  # dead (a zombie until the pool reaps it)
            with open(f"/proc/{first}/stat") as f:
                if f.read().split(") ")[1][0] == "Z":
                    break
            time.sleep(0.01)
        _restricted(sb, outside)
        (second,) = sb._spawners.pids()
        assert second != first and sb._spawners.counts["restarted"] == 1
        assert not os.path.exists(f"/proc/{first}")  # reaped


def test_spawner_killed_during_a_request_fails_closed(work, outside):
    with Sandbox(_config(work), contain=False, spawner=True) as sb:
        pool = sb._spawners
        _restricted(sb, outside)
        # the spawner stopped: the request waits unread, then it dies
        (spawner,) = pool.pids()
        os.kill(spawner, signal.SIGSTOP)
        box = {}

        def call():
            try:
                sb.run(["touch", f"{work}/ran-1"])
            except BaseException as exc:
                box["exc"] = exc

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.3)
        os.kill(spawner, signal.SIGKILL)
        t.join(30)
        assert isinstance(box.get("exc"), EnforcementError) and box["exc"].step == "spawner"
        assert not os.path.exists(f"{work}/ran-1")

    with Sandbox(_config(work), contain=False, spawner=True) as sb:
        pool = sb._spawners
        pool.stop_child = 1  # its children stop before exec: the spawner is mid-request
        box = {}
        before = _children()
        t = threading.Thread(target=lambda: box.setdefault("r", _try(sb, work)))
        t.start()
        child = spawner = None
        for _ in range(1000):
            for pid in _children() - before:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read()
                    with open(f"/proc/{pid}/stat") as f:
                        state = f.read().split(") ")[1][0]
                except FileNotFoundError:
                    continue  # gone already
                if state == "T":  # stopped before exec: it still shares the spawner's mm
                    child = pid
                elif b"volt-spawner" in cmd:
                    spawner = pid
            if child and spawner:
                break
            time.sleep(0.01)
        assert child and spawner
        os.kill(spawner, signal.SIGKILL)
        t.join(30)
        exc = box["r"]
        assert isinstance(exc, EnforcementError) and "its child was killed" in str(exc)
        assert not os.path.exists(f"/proc/{child}")  # killed and reaped
        assert not os.path.exists(f"{work}/ran-2")
        pool.stop_child = 0
        _restricted(sb, outside)  # and the next spawn starts a new spawner
        assert _children() - before == set(pool.pids())


def _try(sb: Sandbox, work: str):
    try:
        sb.run(["touch", f"{work}/ran-2"])
    except BaseException as exc:
        return exc
    return None


def test_failed_restriction_raises_as_on_the_direct_path(work):
    sp, direct = _twins(_config(work))
    with sp, direct:
        for step in ("landlock", "seccomp", "capabilities", "no_new_privs"):
            errs = []
            for sb in (sp, direct):
                sb.plan._inject_failure(step)
                with pytest.raises(EnforcementError) as info:
                    sb.run(["touch", f"{work}/ran"])
                errs.append((info.value.step, info.value.errno, str(info.value)))
                sb.plan.c.fail_step = 0
            assert errs[0] == errs[1]
            assert "failure injected" in errs[0][2]
            assert not os.path.exists(f"{work}/ran")
            assert sp._spawners.pids() == []  # the spawner that failed is gone
        assert sp.run(["/bin/true"]).returncode == 0


def test_exhausted_fds_is_an_error_then_recovers(work, outside):
    with Sandbox(_config(work), contain=False, spawner=True) as sb:
        sb._spawners.nofile_limit = 12
        _restricted(sb, outside)
        fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(16)]
        try:
            with pytest.raises(EnforcementError) as info:
                sb.run(["touch", f"{work}/ran"], pass_fds=fds)
            assert info.value.errno == errno.EMFILE and info.value.step == "spawner"
            assert not os.path.exists(f"{work}/ran")
            (spawner,) = sb._spawners.pids()
            assert len(os.listdir(f"/proc/{spawner}/fd")) == 1  # nothing kept
            _restricted(sb, outside)
            assert sb._spawners.pids() == [spawner]
        finally:
            for fd in fds:
                os.close(fd)


def test_apply_self_turns_the_spawner_off():
    from forked import json_reply

    def child():
        import volt_enforce
        from volt_enforce import spawner

        volt_enforce.apply_self(IsolationConfig(seccomp="default"), contain=False)
        cfg = IsolationConfig(landlock=server_policy("/"), seccomp="default")
        try:
            Sandbox(cfg, contain=False, spawner=True).close()
        except volt_enforce.PolicyError as exc:
            return [str(exc), bool(spawner._DISABLED)]
        return ["served", bool(spawner._DISABLED)]

    status, reply = json_reply(child)
    assert os.waitstatus_to_exitcode(status) == 0, reply
    why, disabled = reply["ok"]
    assert disabled and "apply_self" in why


# ---- lifetime ------------------------------------------------------------------------


def test_spawner_outlives_the_thread_and_exits_with_the_process(work):
    with Sandbox(_config(work), contain=False, spawner=True) as sb:
        t = threading.Thread(target=lambda: sb.run(["/bin/true"]))
        t.start()
        t.join(30)
        (spawner,) = sb._spawners.pids()
        assert sb.run(["/bin/true"]).returncode == 0  # not PDEATHSIG's thread gotcha
        assert sb._spawners.pids() == [spawner]
    assert not os.path.exists(f"/proc/{spawner}")  # closed with the sandbox, reaped

    code = (f"import os, sys; sys.path[:0] = {sys.path!r}\n"
            "from volt_enforce import *\n"
            f"sb = Sandbox(IsolationConfig(landlock=server_policy('/'), seccomp='default'), contain=False, spawner=True)\n"
            "sb.run(['/bin/true'])\n"
            "print(sb._spawners.pids()[0], flush=True)\n"
            "os._exit(0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    orphan = int(r.stdout)
    for _ in range(300):
        if not os.path.exists(f"/proc/{orphan}"):
            break
        with open(f"/proc/{orphan}/cmdline", "rb") as f:
            if b"volt-spawner" not in f.read():
                break  # the pid was reused
        time.sleep(0.01)
    else:
        pytest.fail(f"spawner {orphan} outlived its process")


def test_eight_threads_two_hundred_spawns(work, outside):
    gc.collect()  # earlier tests' objects close their fds now, not during this one
    fds_before = _fds()
    children_before = _children()
    errors: list[BaseException] = []
    checked = [0]
    lock = threading.Lock()
    with Sandbox(_config(work), contain=False, spawner=True) as sb:
        def worker():
            try:
                for _ in range(200):
                    r = sb.run(["cat", "/proc/self/status", f"{outside}/secret"],
                               capture_output=True, text=True)
                    assert "Seccomp:\t2" in r.stdout and "NoNewPrivs:\t1" in r.stdout
                    assert r.returncode == 1 and "Permission denied" in r.stderr
                    with lock:
                        checked[0] += 1
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not any(t.is_alive() for t in threads), "deadlock"
        assert not errors, errors[:3]
        assert checked[0] == 1600
        counts = sb._spawners.counts
        assert counts["spawned"] == 1600 and 1 <= counts["started"] <= sb._spawners.size
    assert _children() == children_before
    assert _fds() - fds_before == set()  # nothing left open


UNCHECKED = r"""
import ctypes, json, os, sys
from volt_enforce import seccomp
from volt_enforce.spawner import unchecked
out = {"before": unchecked()}
if sys.argv[1] == "filter":
    ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # no_new_privs, for the filter
    seccomp.compile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kcmp"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}).load()
else:
    os.setresuid(65534, 65534, 65534)  # every capability gone, CAP_SYS_PTRACE with them
out["after"] = unchecked()
print(json.dumps(out))
"""


@pytest.mark.parametrize("how", ["filter", "nobody"])
def test_report_names_the_checks_a_caller_cannot_make(how):
    """``report.spawn["unchecked"]`` names what the request's check cannot see from
    here: a Landlock domain or an unshared fs, where kcmp of the spawner is not
    possible (a filter that refuses kcmp; a caller without CAP_SYS_PTRACE, here
    after setresuid to nobody). The control: root without a filter has it."""
    if os.geteuid() != 0:
        pytest.skip("the control needs root")
    p = subprocess.run([sys.executable, "-c", UNCHECKED, how], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["before"] == []
    assert len(out["after"]) == 1 and "CAP_SYS_PTRACE" in out["after"][0]
