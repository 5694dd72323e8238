"""volt-init run: volt-init supervises the child the way `volt-enforce run` does (its
exit status, signals passed on, the PID namespace, cgroups of its own that are killed
and removed), and the plan cache's records (pidns, kernel-landlock, --plan-fd)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from kernelreq import need_landlock, need_seccomp

from volt_enforce.compile import compile_config
from volt_enforce.init_plan import compile_plan, volt_init_path
from volt_enforce.model import IsolationConfig, ResourceLimits, server_policy

INIT = volt_init_path()


@pytest.fixture(autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()


def plan_for(tmp_path, *, contain: bool = True, pids: int | None = None, name: str = "plan") -> str:
    cfg = IsolationConfig(landlock=server_policy("/"), seccomp="default",
                          resources=ResourceLimits(pids_max=pids) if pids else None)
    with compile_config(cfg, contain=contain) as c:
        text = compile_plan(c, run=True, kernel_check=True)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def plan_memfd(data: bytes) -> int:
    import fcntl

    fd = os.memfd_create("plan", os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
    return fd


def run(plan: str, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([INIT, "run", plan, "--", *cmd], capture_output=True, text=True,
                          timeout=60, cwd="/", **kw)


def cgroup_dirs(plan: str) -> list[str]:
    return [os.fsdecode(bytes.fromhex(ln.split()[1])) for ln in open(plan).read().splitlines()
            if ln.startswith("cgroup-dir ")]


def own_dirs(plan: str) -> list[str]:
    """The per-run directories volt-init run made for the plan's (DIR.PID), still there."""
    out = []
    for d in cgroup_dirs(plan):
        parent, base = os.path.split(d)
        out += [os.path.join(parent, n) for n in os.listdir(parent) if n.startswith(base + ".")]
    return out


def alive(marker: str) -> list[int]:
    pids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        pids.append(int(p))
            except OSError:
                pass
    return pids


def unique_sleep() -> str:
    """A sleep duration (about 300 s) no other process has on its command line."""
    return f"300.{os.getpid()}{time.monotonic_ns() % 10**9}"


def wait_gone(marker: str, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while alive(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(marker)


def test_exit_status_stdout_and_the_pid_namespace(tmp_path):
    plan = plan_for(tmp_path)
    cp = run(plan, "sh", "-c", "echo $$; touch /usr/volt-x 2>/dev/null; echo $?; exit 5")
    assert (cp.returncode, cp.stdout) == (5, "2\n1\n")  # PID 2 below the init; the touch denied
    assert run(plan, "sh", "-c", "kill -KILL $$").returncode == 128 + 9
    assert run(plan, "/nonexistent").returncode == 127


def test_no_contain_plan_runs_in_this_pid_namespace(tmp_path):
    plan = plan_for(tmp_path, contain=False)
    cp = run(plan, "sh", "-c", "echo $$; exit 3")
    assert cp.returncode == 3 and int(cp.stdout) > 2


def test_signals_are_passed_on(tmp_path):
    plan = plan_for(tmp_path)
    proc = subprocess.Popen([INIT, "run", plan, "--", "sh", "-c",
                             "trap 'echo got; exit 42' TERM; echo ready; while :; do sleep 0.05; done"],
                            stdout=subprocess.PIPE, text=True, cwd="/")
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (42, "got\n")


def test_plain_volt_init_refuses_a_run_plan(tmp_path):
    plan = plan_for(tmp_path)
    marker = tmp_path / "ran"
    cp = subprocess.run([INIT, plan, "--", "touch", str(marker)], capture_output=True, text=True)
    assert cp.returncode == 125 and "for 'volt-init run' only" in cp.stderr
    assert not marker.exists()


def test_a_plan_for_another_kernels_landlock_is_refused(tmp_path):
    plan = plan_for(tmp_path)
    text = open(plan).read()
    line = next(ln for ln in text.splitlines() if ln.startswith("kernel-landlock "))
    abi = int(line.split()[1], 16)
    bad = tmp_path / "bad"
    bad.write_text(text.replace(line, f"kernel-landlock {abi + 1:x} {line.split()[2]}"))
    marker = tmp_path / "ran"
    cp = run(str(bad), "touch", str(marker))
    assert cp.returncode == 125 and "another kernel's Landlock" in cp.stderr
    assert not marker.exists()
    assert run(plan, "true").returncode == 0  # the control: the unchanged plan runs


def test_plan_fd_must_be_a_sealed_memfd(tmp_path):
    plan = plan_for(tmp_path, contain=False)
    data = open(plan, "rb").read()
    fd = plan_memfd(data)
    try:
        cp = subprocess.run([INIT, "run", "--plan-fd", str(fd), "--", "sh", "-c", "exit 9"],
                            pass_fds=[fd], capture_output=True, text=True)
        assert cp.returncode == 9, cp.stderr
    finally:
        os.close(fd)
    with open(plan, "rb") as f:  # a file anyone with write access may still change
        cp = subprocess.run([INIT, "run", "--plan-fd", str(f.fileno()), "--", "true"],
                            pass_fds=[f.fileno()], capture_output=True, text=True)
    assert cp.returncode == 125 and "not a memfd sealed" in cp.stderr


def test_the_cgroup_is_removed_after_the_run(tmp_path):
    plan = plan_for(tmp_path, pids=16)
    assert cgroup_dirs(plan)
    cp = run(plan, "sh", "-c", "grep -c volt-init /proc/self/cgroup")
    assert cp.returncode == 0 and int(cp.stdout) >= 1
    assert own_dirs(plan) == []


def test_attack_a_daemon_cannot_keep_the_cgroup_nor_outlive_the_run(tmp_path):
    """The child double-forks a daemon in a new session and exits: the run ends, the
    daemon is gone and the cgroup with it. Control: the same shell code unsandboxed
    leaves its daemon running."""
    marker = unique_sleep()
    daemon = f"(setsid sleep {marker} </dev/null >/dev/null 2>&1 &); echo forked"
    for contain in (True, False):
        plan = plan_for(tmp_path, contain=contain, pids=32, name=f"plan-{contain}")
        cp = run(plan, "sh", "-c", daemon)
        assert cp.stdout == "forked\n", cp.stderr
        assert wait_gone(marker) == [], f"contain={contain}: the daemon outlived the run"
        assert own_dirs(plan) == []
    # control
    subprocess.run(["sh", "-c", daemon], check=True, capture_output=True)
    try:
        time.sleep(0.2)
        assert alive(marker), "the control's daemon should still run"
    finally:
        for pid in alive(marker):
            os.kill(pid, signal.SIGKILL)


def test_attack_the_child_cannot_outlive_a_killed_supervisor(tmp_path):
    """The supervisor is SIGKILLed while its contained child runs: the PID namespace's
    init sees its parent go and the kernel kills the namespace. Control: a plain
    shell's child outlives its killed parent."""
    marker = unique_sleep()
    plan = plan_for(tmp_path)
    proc = subprocess.Popen([INIT, "run", plan, "--", "sh", "-c",
                             f"echo ready; exec sleep {marker}"],
                            stdout=subprocess.PIPE, text=True, cwd="/")
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    deadline = time.monotonic() + 10
    while not alive(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert alive(marker)
    proc.kill()
    proc.wait()
    assert wait_gone(marker) == []
    # control
    ctl = subprocess.Popen(["sh", "-c", f"sleep {marker} & echo ready; wait"],
                           stdout=subprocess.PIPE, text=True)
    assert ctl.stdout is not None and ctl.stdout.readline() == "ready\n"
    ctl.kill()
    ctl.wait()
    try:
        time.sleep(0.2)
        assert alive(marker)
    finally:
        for pid in alive(marker):
            os.kill(pid, signal.SIGKILL)


def test_attack_the_child_cannot_move_itself_out_of_its_cgroup(tmp_path):
    """A root child writes its pid into the parent cgroup's cgroup.procs (to stay when
    the run's cgroup is removed): Landlock denies it. Control: unsandboxed, it works."""
    plan = plan_for(tmp_path, contain=False, pids=16)
    d = cgroup_dirs(plan)[0]
    parent_procs = os.path.join(os.path.dirname(d), "cgroup.procs")
    cp = run(plan, "sh", "-c", f"echo $$ > {parent_procs} && echo moved")
    assert "moved" not in cp.stdout
    assert own_dirs(plan) == []
    # control: an unrestricted shell moves itself
    probe = os.path.join(os.path.dirname(d), f"volt-ctl-{os.getpid()}")
    os.mkdir(probe)
    try:
        cp = subprocess.run(["sh", "-c", f"echo $$ > {probe}/cgroup.procs && echo moved; "
                                         f"echo $$ > {parent_procs}"],
                            capture_output=True, text=True)
        assert "moved" in cp.stdout, cp.stderr
    finally:
        os.rmdir(probe)


def test_usage_names_run():
    cp = subprocess.run([INIT, "--help"], capture_output=True, text=True)
    assert cp.returncode == 0 and "volt-init run PLAN" in cp.stdout
    cp = subprocess.run([INIT, "run"], capture_output=True, text=True)
    assert cp.returncode == 125 and cp.stderr.startswith("usage:")


