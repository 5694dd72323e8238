"""The volt-enforce command end to end: each command and option as a subprocess
of the installed console script (and ``python -m volt_enforce``), checked by
what the sandboxed command was allowed and denied."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from cliargs import SYSTEM_ROX, VOLT
from kernelreq import (
    need_cgroup_v1,
    need_cgroup_v2_controller,
    need_landlock,
    need_netns,
    need_seccomp,
    need_userns,
)

from volt_enforce import cgroups

PY = sys.executable
#: The test's Python may live outside /usr (pyenv): let sandboxed children run it.
PY_ROX = [a for p in sorted({sys.base_prefix, sys.prefix}) for a in ("--rox", p)]
#: What sh and coreutils need under --profile none.

#: A child that tries one thing of each kind and prints what it got, as JSON:
#: "ok", or the errno's name. argv: a directory with a file "data", a TCP port.
PROBE = r'''
import errno, json, os, socket, subprocess, sys

def attempt(fn):
    try:
        r = fn()
        return "ok" if r is None else r
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def create(path):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    os.unlink(path)  # never leave a file where the policy should have denied it

def bind(port):
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))

def connect(port):
    with socket.socket() as srv, socket.socket() as c:
        if port:
            srv.bind(("127.0.0.1", port))
            srv.listen()
        c.connect(("127.0.0.1", port or 1))

def run(*argv):
    return "exit %d" % subprocess.run(argv, stderr=subprocess.DEVNULL).returncode

def status():
    with open("/proc/self/status") as f:
        d = dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
    return {k: d.get(k) for k in ("NoNewPrivs", "Seccomp", "CapEff")}

def cgroup_files():
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fs, _, opts = right.split()[:3]
            if fs == "cgroup2":
                mounts.setdefault("", left.split()[4])
            elif fs == "cgroup":
                for o in opts.split(","):
                    mounts.setdefault(o, left.split()[4])
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                if c not in mounts:
                    continue
                d = mounts[c] + path
                for name in sorted(os.listdir(d)):
                    if name.split(".")[0] in ("pids", "memory", "cpu", "cpuset", "blkio", "io"):
                        try:
                            with open(os.path.join(d, name)) as g:
                                out[name] = g.read().strip()
                        except OSError:
                            pass
    return out

tmp, port = sys.argv[1], int(sys.argv[2])
print(json.dumps({
    "read_etc": attempt(lambda: open("/etc/passwd").close()),
    "write_usr": attempt(lambda: create("/usr/.volt-probe-%d" % os.getpid())),
    "read_tmp": attempt(lambda: open(os.path.join(tmp, "data")).close()),
    "write_tmp": attempt(lambda: create(os.path.join(tmp, "new-%d" % os.getpid()))),
    "exec_true": attempt(lambda: run("/bin/true")),
    "unshare_user": attempt(lambda: run("unshare", "-r", "true")),
    "bind_any": attempt(lambda: bind(0)),
    "bind_port": attempt(lambda: bind(port)),
    "connect_port": attempt(lambda: connect(port)),
    "connect_other": attempt(lambda: connect(0)),
    "netdevs": attempt(lambda: sorted(l.split(":")[0].strip()
                                      for l in open("/proc/net/dev").readlines()[2:])),
    "status": attempt(status),
    "affinity": sorted(os.sched_getaffinity(0)),
    "cgroup": attempt(cgroup_files),
}))
'''

#: Forks until the kernel refuses, and prints how many processes it had then.
FORK_COUNT = r'''
import os
r, w = os.pipe()
n = 1
while n < 100:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    n += 1
os.close(w)
print(n)
'''


@pytest.fixture(autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()


def ve(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """volt-enforce ARGS, as the console script the package installs."""
    return subprocess.run([VOLT, *args], check=False, capture_output=True, text=True, timeout=timeout, **kw)


def probe_cmd(tmp) -> list[str]:
    return [PY, "-S", "-c", PROBE, str(tmp), str(free_port())]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(*options: str, tmp, runner=None) -> dict:
    """What a probe child was allowed under ``volt-enforce run OPTIONS``."""
    cmd = [*options, "--ro", str(tmp), "--rox", "/usr", *PY_ROX, "--", *probe_cmd(tmp)]
    cp = runner(cmd) if runner is not None else ve("run", *cmd)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout.splitlines()[-1])


def need_controller(ctrl: str) -> None:
    layout = cgroups.detect()
    if layout.v2 is not None and ctrl in layout.v2.controllers:
        need_cgroup_v2_controller(ctrl)
    else:
        need_cgroup_v1({"io": "blkio"}.get(ctrl, ctrl))


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data-dir"
    d.mkdir()
    (d / "data").write_text("data\n")
    return d


def one_line_error(cp: subprocess.CompletedProcess, *words: str) -> None:
    """volt-enforce failed itself: exit 125 and one line naming what is wrong."""
    assert cp.returncode == 125, (cp.returncode, cp.stdout, cp.stderr)
    lines = cp.stderr.splitlines()
    assert len(lines) == 1, cp.stderr
    assert lines[0].startswith("volt-enforce"), lines
    for w in words:
        assert w in lines[0], (w, lines[0])


# ---- help, python -m, check ----------------------------------------------------------


@pytest.mark.parametrize("command", [None, "run", "exec", "check", "explain", "seccomp",
                                     "compile", "init-path"])
def test_help_shows_examples(command):
    cp = ve(*([command] if command else []), "--help")
    assert cp.returncode == 0, cp.stderr
    assert "examples:" in cp.stdout
    assert f"volt-enforce {command or 'run'}" in cp.stdout.split("examples:", 1)[1]
    if command in (None, "run", "exec"):
        assert "128+N" in cp.stdout and "125" in cp.stdout
    if command in ("run", "exec", "explain", "compile"):
        for option in ("--config", "--profile", "--rootfs", "--ro", "--rw", "--rox",
                       "--bind-tcp", "--connect-tcp", "--seccomp", "--memory", "--memory-high",
                       "--cpu-weight", "--cpus", "--io-weight", "--pids", "--network",
                       "--best-effort", "--hard-requirement", "--ignore-missing"):
            assert option in cp.stdout, option
    if command in ("run", "exec"):
        assert "--report" in cp.stdout


def test_python_m_is_the_same_command(tmp_path):
    m = [PY, "-m", "volt_enforce"]
    a = subprocess.run(m + ["check", "--json"], check=False, capture_output=True, text=True)
    b = ve("check", "--json")
    assert a.returncode == b.returncode == 0
    assert json.loads(a.stdout) == json.loads(b.stdout)
    assert subprocess.run(m + ["run", "--", "sh", "-c", "exit 3"], check=False).returncode == 3
    marker = tmp_path / "ran"
    cp = subprocess.run(m + ["run", "--bogus", "--", "touch", str(marker)], check=False,
                        capture_output=True, text=True)
    one_line_error(cp, "--bogus")
    assert not marker.exists()
    cp = subprocess.run(m, check=False, capture_output=True, text=True)
    one_line_error(cp, "COMMAND")


def test_check():
    text = ve("check")
    assert text.returncode == 0
    assert "landlock" in text.stdout and "seccomp" in text.stdout
    info = json.loads(ve("check", "--json").stdout)
    assert info["landlock_abi"] >= 1 and info["seccomp"] is True
    assert ve("--version").stdout.startswith("volt-enforce ")


# ---- run: what the options allow and deny ----------------------------------------------


def test_run_default_is_server_profile_and_default_seccomp(tmp_path, data_dir):
    report = tmp_path / "report.json"
    got = probe("--report", str(report), tmp=data_dir)
    assert got["read_etc"] == "ok"
    assert got["write_usr"] == "EROFS"  # contained: a read-only bind in the view
    # the data dir is granted read-only: a read-only bind on the private /tmp
    assert got["read_tmp"] == "ok" and got["write_tmp"] == "EROFS"
    assert got["exec_true"] == "exit 0"
    assert got["status"]["NoNewPrivs"] == "1" and got["status"]["Seccomp"] == "2"
    rep = json.loads(report.read_text())
    assert rep["returncode"] == 0
    assert rep["seccomp"]["profile"] == "default"
    assert rep["landlock"]["status"] == "full"
    assert {r["path"] for r in rep["landlock"]["rules"]} >= {"/usr", "/etc", "/tmp"}
    assert rep["no_new_privs"] is True


def test_run_server_profile_denies_writing_usr():
    name = f"/usr/volt-cli-test-{os.getpid()}"
    try:
        cp = ve("run", "--profile", "server", "--", "sh", "-c",
                f"cat /etc/hostname >/dev/null && echo read-etc; touch {name} && echo wrote")
        assert cp.stdout.split() == ["read-etc"]
        assert cp.returncode == 1 and "Read-only file system" in cp.stderr
        assert not os.path.exists(name)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def test_ro_rw_rox(tmp_path):
    dirs = {}
    for kind in ("ro", "rw", "rox", "other"):
        d = dirs[kind] = tmp_path / kind
        d.mkdir()
        (d / "f").write_text("x\n")
        (d / "s.sh").write_text("#!/bin/sh\ntrue\n")
        (d / "s.sh").chmod(0o755)
    script = "; ".join(
        f"cat {dirs[k]}/f >/dev/null 2>&1 && echo {k}-read; "
        f"(echo x > {dirs[k]}/new) 2>/dev/null && echo {k}-write; "
        f"{dirs[k]}/s.sh 2>/dev/null && echo {k}-exec"
        for k in dirs)
    cp = ve("run", "--profile", "none", *SYSTEM_ROX, "--ro", str(dirs["ro"]),
            "--rw", str(dirs["rw"]), "--rox", str(dirs["rox"]), "--", "sh", "-c", script)
    assert cp.stdout.split() == ["ro-read", "rw-read", "rw-write", "rox-read", "rox-exec"]
    assert not (dirs["ro"] / "new").exists() and (dirs["rw"] / "new").exists()


def test_relative_paths_are_made_absolute(tmp_path):
    (tmp_path / "f").write_text("x\n")
    cp = ve("run", "--profile", "none", *SYSTEM_ROX, "--ro", ".", "--", "cat", "f",
            cwd=tmp_path)
    assert (cp.returncode, cp.stdout) == (0, "x\n"), cp.stderr


def test_rootfs_moves_the_preset(tmp_path):
    root = tmp_path / "root"
    for d in ("etc", "tmp"):
        (root / d).mkdir(parents=True)
    (root / "etc" / "conf").write_text("c\n")
    script = (f"cat {root}/etc/conf >/dev/null && echo root-etc-read; "
              f"(echo x > {root}/etc/new) 2>/dev/null && echo root-etc-write; "
              f"(echo x > {root}/tmp/new) && echo root-tmp-write; "
              f"cat /etc/hostname >/dev/null 2>&1 && echo host-etc-read")
    # the host view (--no-contain): the preset's paths move into the rootfs; contained, the
    # child is pivoted into it instead (tests/test_view.py)
    cp = ve("run", "--no-contain", "--profile", "server", "--rootfs", str(root), *SYSTEM_ROX, "--",
            "sh", "-c", script)
    assert cp.stdout.split() == ["root-etc-read", "root-tmp-write"], cp.stderr


def test_desktop_profile_differs_from_server():
    # desktop makes /etc read-write: opening for append writes nothing
    script = "( : >> /etc/passwd ) 2>/dev/null && echo etc-writable; echo done"
    server = ve("run", "--profile", "server", "--", "sh", "-c", script)
    desktop = ve("run", "--profile", "desktop", "--", "sh", "-c", script)
    assert server.stdout.split() == ["done"]
    assert desktop.stdout.split() == ["etc-writable", "done"]


def test_read_only_and_private_users(tmp_path):
    need_userns()
    cp = ve("run", "--read-only", "--private-users", "--", "sh", "-c",
            f"(echo x > {tmp_path}/new) 2>/dev/null && echo wrote; cat /proc/self/uid_map")
    assert cp.returncode == 0, cp.stderr
    # root inside is an unprivileged host range, never host root (volt_enforce.users)
    inside, outside, count = map(int, cp.stdout.split())
    assert (inside, count) == (0, 65536) and outside > 0, cp.stdout
    assert not (tmp_path / "new").exists()


def test_network_none_and_tcp_ports(data_dir):
    need_netns()
    need_landlock(4)
    none = probe("--network", "none", tmp=data_dir)
    assert none["netdevs"] == ["lo"]
    assert none["bind_any"] == none["bind_port"] == "EACCES"
    assert none["connect_other"] == "EACCES"

    port = free_port()
    cmd = ["--network", "none", "--bind-tcp", str(port), "--connect-tcp", str(port),
           "--ro", str(data_dir), "--rox", "/usr", *PY_ROX, "--",
           PY, "-S", "-c", PROBE, str(data_dir), str(port)]
    ports = json.loads(ve("run", *cmd).stdout)
    assert ports["bind_port"] == ports["connect_port"] == "ok"
    assert ports["bind_any"] == "EACCES" and ports["connect_other"] == "EACCES"

    host = probe("--network", "host", tmp=data_dir)
    assert "lo" in host["netdevs"] and len(host["netdevs"]) >= 1
    assert host["bind_any"] == "ok" and host["connect_other"] == "ECONNREFUSED"


def test_bind_tcp_without_a_filesystem_profile(data_dir):
    need_landlock(4)
    port = free_port()
    cmd = ["--profile", "none", "--network", "host", "--bind-tcp", str(port), "--", PY, "-S", "-c", PROBE,
           str(data_dir), str(port)]
    got = json.loads(ve("run", *cmd).stdout)
    # ports only: Landlock leaves the filesystem open, TCP bind is restricted to the
    # port; the contained view is the host's root read-only with a private /tmp
    assert got["write_tmp"] == "ENOENT" and got["read_etc"] == "ok"
    assert got["bind_port"] == "ok" and got["bind_any"] == "EACCES"
    assert got["connect_other"] == "ECONNREFUSED"


def test_seccomp_strict_denies_unshare():
    need_userns()
    strict = ve("run", "--profile", "none", "--seccomp", "strict", "--", "unshare", "-r", "true")
    assert strict.returncode == 1 and "Operation not permitted" in strict.stderr
    # not contained: a contained root child may not map root into a user namespace
    # (that needs CAP_SETFCAP, which containment drops)
    unconfined = ve("run", "--no-contain", "--profile", "none", "--seccomp", "unconfined", "--",
                    "unshare", "-r", "true")
    assert unconfined.returncode == 0, unconfined.stderr
    caps = ve("run", "--profile", "none", "--seccomp", "strict", "--",
              "grep", "^CapEff", "/proc/self/status")
    assert caps.stdout.split()[1] == "0000000000000000"


def _oci(tmp_path, deny: list[str], errno_ret: int = 1):
    prof = tmp_path / "profile.json"
    prof.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": deny, "action": "SCMP_ACT_ERRNO", "errnoRet": errno_ret}],
    }))
    return prof


def test_seccomp_json_file(tmp_path):
    prof = _oci(tmp_path, ["mkdir", "mkdirat"])
    cp = ve("run", "--profile", "none", "--seccomp", str(prof), "--", "mkdir",
            str(tmp_path / "d"))
    assert cp.returncode == 1 and "Operation not permitted" in cp.stderr
    assert not (tmp_path / "d").exists()
    # a relative profile path is the caller's
    cp = ve("run", "--profile", "none", "--seccomp", "profile.json", "--", "mkdir", "d2",
            cwd=tmp_path)
    assert cp.returncode == 1 and not (tmp_path / "d2").exists()


def test_best_effort_and_hard_requirement_without_landlock(tmp_path):
    """A filter answering ENOSYS for landlock_create_ruleset makes Landlock absent
    for the inner volt-enforce, as on an old kernel."""
    prof = _oci(tmp_path, ["landlock_create_ruleset"], errno_ret=38)
    # the outer sandbox is a test harness, not contained and with every capability
    # (an OCI profile keeps Docker's set): the inner run makes namespaces
    outer = ["run", "--no-contain", "--cap-add", "ALL", "--profile", "none", "--seccomp",
             str(prof), "--", VOLT]
    marker = tmp_path / "ran"
    # the marker's directory is bound: the inner run is contained (private /tmp)
    hard = ve(*outer, "run", "--rw", str(tmp_path), "--hard-requirement", "--", "touch",
              str(marker))
    one_line_error(hard, "Landlock")
    assert not marker.exists()
    report = tmp_path / "report.json"
    best = ve(*outer, "run", "--rw", str(tmp_path), "--best-effort", "--report", str(report),
              "--", "touch", str(marker))
    assert best.returncode == 0, best.stderr
    assert marker.exists()
    rep = json.loads(report.read_text())
    assert rep["landlock"]["status"] == "none" and rep["landlock"]["dropped"]


def test_ignore_missing(tmp_path):
    missing = str(tmp_path / "missing")
    marker = tmp_path / "ran"
    cp = ve("run", "--ro", missing, "--rw", str(tmp_path), "--", "touch", str(marker))
    one_line_error(cp, missing)
    assert not marker.exists()
    report = tmp_path / "report.json"
    cp = ve("run", "--ro", missing, "--rw", str(tmp_path), "--ignore-missing", "--report",
            str(report), "--", "touch", str(marker))
    assert cp.returncode == 0, cp.stderr
    assert marker.exists()
    skipped = json.loads(report.read_text())["landlock"]["skipped"]
    assert missing in [s["path"] for s in skipped]


def test_report_only_when_something_ran(tmp_path):
    old = tmp_path / "old.json"
    old.write_text("old\n")
    new = tmp_path / "new.json"
    for path in (old, new):
        cp = ve("run", "--report", str(path), "--", "no-such-command-volt")
        assert cp.returncode == 127
    assert old.read_text() == "old\n" and not new.exists()
    assert ve("run", "--report", str(old), "--", "true").returncode == 0
    assert json.loads(old.read_text())["returncode"] == 0


# ---- run: cgroup limits ------------------------------------------------------------------


def test_pids_stops_a_fork_loop():
    need_controller("pids")
    cp = ve("run", *PY_ROX, "--pids", "5", "--", PY, "-S", "-c", FORK_COUNT)
    # the PID namespace's init is one of the cgroup's 5 tasks (as a container's is)
    assert (cp.returncode, cp.stdout.strip()) == (0, "4"), cp.stderr
    cp = ve("run", "--no-contain", *PY_ROX, "--pids", "5", "--", PY, "-S", "-c", FORK_COUNT)
    assert (cp.returncode, cp.stdout.strip()) == (0, "5"), cp.stderr


def test_memory_limit_oom(tmp_path):
    need_controller("memory")
    report = tmp_path / "report.json"
    cp = ve("run", *PY_ROX, "--memory", "32M", "--report", str(report), "--",
            PY, "-S", "-c", "b = b'x' * (256 << 20); print('survived')")
    assert cp.returncode == 128 + signal.SIGKILL, (cp.stdout, cp.stderr)
    assert "survived" not in cp.stdout
    rep = json.loads(report.read_text())
    assert rep["returncode"] == -signal.SIGKILL
    assert rep["stats"]["oom_kills"] >= 1
    assert rep["stats"]["memory_peak"] <= 32 << 20
    assert str(32 << 20) in rep["cgroup"]["written"].values()


def test_cgroup_limit_options(tmp_path, data_dir):
    for ctrl in ("memory", "cpu", "cpuset", "io", "pids"):
        need_controller(ctrl)
    report = tmp_path / "report.json"
    got = probe("--memory", "256M", "--memory-high", "128M", "--cpu-weight", "50",
                "--cpus", "0", "--io-weight", "200", "--pids", "64", "--cpu-quota", "50%",
                "--ro", "/sys/fs/cgroup", "--report", str(report), tmp=data_dir)
    written = json.loads(report.read_text())["cgroup"]["written"]
    assert got["affinity"] == [0]
    for name, value in written.items():
        assert got["cgroup"][name] == value, name
    by_field = {f for f in written}
    assert {"pids.max", "cpuset.cpus"} <= by_field
    assert by_field & {"memory.max", "memory.limit_in_bytes"}
    assert by_field & {"memory.high", "memory.soft_limit_in_bytes"}
    assert by_field & {"cpu.weight", "cpu.shares"}
    assert by_field & {"cpu.max", "cpu.cfs_quota_us"}
    assert by_field & {"io.weight", "io.bfq.weight", "blkio.weight", "blkio.bfq.weight"}


# ---- exit codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["run", "exec"])
def test_exit_codes(mode, tmp_path):
    assert ve(mode, "--", "sh", "-c", "exit 7").returncode == 7
    cp = ve(mode, "--", "no-such-command-volt")
    assert cp.returncode == 127 and "no-such-command-volt: command not found" in cp.stderr
    cp = ve(mode, "--", str(tmp_path / "missing"))
    assert cp.returncode == 127
    cp = ve(mode, "--", "/etc/passwd")
    assert cp.returncode == 126 and "cannot execute" in cp.stderr
    # a file Landlock forbids executing (without the rule the CLI adds for it by default)
    (tmp_path / "s.sh").write_text("#!/bin/sh\ntrue\n")
    (tmp_path / "s.sh").chmod(0o755)
    cp = ve(mode, "--profile", "none", *SYSTEM_ROX, "--ro", str(tmp_path), "--no-auto-rules",
            "--", str(tmp_path / "s.sh"))
    assert cp.returncode == 126, cp.stderr
    assert f"allow it with --rox {os.path.realpath(tmp_path)}" in cp.stderr
    # run reports a signal as 128+N; exec is replaced, so its caller sees the signal itself
    for sig in (signal.SIGTERM, signal.SIGKILL):
        rc = ve(mode, "--", "sh", "-c", f"kill -{sig.name[3:]} $$").returncode
        assert rc == (128 + sig if mode == "run" else -sig)


def test_exec_replaces_the_process(tmp_path):
    report = tmp_path / "report.json"
    # Landlock forbids writing the report's directory; it was opened before
    proc = subprocess.Popen([VOLT, "exec", "--profile", "none", *SYSTEM_ROX, "--report",
                             str(report), "--", "sh", "-c",
                             f"echo $$; (echo x > {tmp_path}/new) 2>/dev/null || echo denied"],
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out.split() == [str(proc.pid), "denied"]
    rep = json.loads(report.read_text())
    assert rep["landlock"]["status"] == "full" and rep["seccomp"]["profile"] == "default"


def test_run_forwards_sigterm():
    proc = subprocess.Popen([VOLT, "run", "--", "sh", "-c", "echo up; sleep 30"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "up\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM


# ---- bad options and files: one line, exit 125, nothing run ------------------------------


def _bad_files(tmp_path):
    (tmp_path / "bad.json").write_text("{bad")
    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "field.json").write_text('{"Resources": {"PIDsMax": "many"}}')
    (tmp_path / "unknown.json").write_text('{"Landlock": {"Rulez": []}}')
    (tmp_path / "seccomp-bad.json").write_text('{"defaultAction": "SCMP_ACT_NOPE"}')


BAD = [
    (["--bogus"], ["--bogus"]),
    (["--profile", "laptop"], ["--profile", "laptop"]),
    (["--network", "bridge"], ["--network"]),
    (["--seccomp", "lenient"], ["lenient"]),
    (["--seccomp", "{tmp}/missing.json"], ["missing.json"]),
    (["--seccomp", "{tmp}/bad.json"], ["bad.json", "JSON"]),
    (["--seccomp", "{tmp}/seccomp-bad.json"], ["SCMP_ACT_NOPE"]),
    (["--config", "{tmp}/missing.json"], ["--config", "No such file"]),
    (["--config", "{tmp}/bad.json"], ["--config", "not valid JSON"]),
    (["--config", "{tmp}/list.json"], ["--config", "not a JSON object"]),
    (["--config", "{tmp}/field.json"], ["Resources.PIDsMax"]),
    (["--config", "{tmp}/unknown.json"], ["Rulez"]),
    (["--memory", "lots"], ["Resources.MemoryHard", "lots"]),
    (["--memory-high", "12Q"], ["Resources.MemorySoft", "12Q"]),
    (["--cpu-weight", "0"], ["--cpu-weight", "1..10000"]),
    (["--cpu-weight", "x"], ["--cpu-weight"]),
    (["--io-weight", "10001"], ["--io-weight"]),
    (["--pids", "0"], ["--pids"]),
    (["--pids", "-3"], ["--pids"]),
    (["--cpus", "zero"], ["Resources.CPUSet", "zero"]),
    (["--cpus", "4095"], ["Resources.CPUSet", "4095"]),
    (["--cpu-quota", "half"], ["Resources.CPUQuota"]),
    (["--bind-tcp", "70000"], ["--bind-tcp", "70000"]),
    (["--connect-tcp", "http"], ["--connect-tcp", "http"]),
    (["--ro", "{tmp}/missing"], ["missing", "does not exist"]),
    (["--rootfs", "{tmp}/missing", "--profile", "server"], ["--rootfs"]),
    (["--rootfs", "{tmp}", "--profile", "none"], ["--rootfs", "--profile none"]),
    (["--best-effort", "--hard-requirement"], ["--hard-requirement", "--best-effort"]),
    (["--report", "{tmp}/no-dir/report.json"], ["--report", "No such file"]),
    ([], ["no command"]),
]


#: exec parses the same options: a few suffice there
EXEC_BAD = {"--bogus", "--seccomp", "--config", "--ro", "--report", "--rootfs", "--cpus", ""}
BAD_CASES = [("run", o, w) for o, w in BAD] + [
    ("exec", o, w) for o, w in BAD if (o[0] if o else "") in EXEC_BAD]


@pytest.mark.parametrize("mode,options,words", BAD_CASES,
                         ids=[f"{m} {' '.join(o) or 'no-command'}" for m, o, _ in BAD_CASES])
def test_bad_options_run_nothing(mode, options, words, tmp_path):
    _bad_files(tmp_path)
    marker = tmp_path / "ran"
    options = [o.replace("{tmp}", str(tmp_path)) for o in options]
    words = [w.replace("{tmp}", str(tmp_path)) for w in words]
    cmd = ["--", "touch", str(marker)] if options else ["--"]
    cp = ve(mode, *options, *cmd)
    one_line_error(cp, *words)
    assert not marker.exists()
    assert not (tmp_path / "no-dir").exists()


def test_options_override_the_config_file(tmp_path):
    need_userns()
    cfg = tmp_path / "isolation.json"
    cfg.write_text(json.dumps({
        "Landlock": {"Rules": [{"Path": "/usr", "Access": 13}, {"Path": "/lib", "Access": 13}]},
        "Seccomp": "strict",
        "Resources": {"PIDsMax": 3, "MemoryHard": "64M"},
        "Network": {"Mode": "none"},
    }))
    base = json.loads(ve("explain", "--config", str(cfg), "--json").stdout)
    assert base["seccomp"]["profile"] == "strict"
    assert {r["path"] for r in base["landlock"]["rules"]} >= {"/usr", "/lib"}
    assert {w["value"] for w in base["cgroup"]["files"]} >= {"3", str(64 << 20)}
    assert [n["namespace"] for n in base["namespaces"]] == ["mount", "pid", "ipc", "uts",
                                                            "network"]

    over = json.loads(ve("explain", "--config", str(cfg), "--json", "--seccomp", "default",
                         "--pids", "9", "--profile", "server", "--network", "host",
                         "--hard-requirement").stdout)
    assert over["seccomp"]["profile"] == "default"
    assert "/etc" in {r["path"] for r in over["landlock"]["rules"]}
    values = {w["file"]: w["value"] for w in over["cgroup"]["files"]}
    assert values["pids.max"] == "9" and str(64 << 20) in values.values()  # kept
    assert [n["namespace"] for n in over["namespaces"]] == ["mount", "pid", "ipc", "uts"]
    assert over["landlock"]["compatibility"] == "hard_requirement"

    # and for real: the file's strict filter denies unshare, the option lifts it
    run = ["run", "--config", str(cfg), "--network", "host", *SYSTEM_ROX, "--"]
    assert ve(*run, "unshare", "-r", "true").returncode == 1
    lifted = ve("run", "--no-contain", "--config", str(cfg), "--network", "host",
                "--seccomp", "unconfined",
                "--profile", "none", "--", "unshare", "-r", "true")
    assert lifted.returncode == 0, lifted.stderr


# ---- explain, seccomp, compile, init-path ------------------------------------------------------


def test_explain(tmp_path):
    text = ve("explain", "--pids", "10", "--network", "none", "--ro", str(tmp_path))
    assert text.returncode == 0, text.stderr
    assert "Landlock" in text.stdout and "seccomp" in text.stdout
    assert "pids.max" in text.stdout and "namespace network" in text.stdout
    assert f"allow {tmp_path}" in text.stdout
    info = json.loads(ve("explain", "--json", "--seccomp", "strict").stdout)
    assert set(info) >= {"landlock", "seccomp", "cgroup", "namespaces", "capabilities"}
    assert info["capabilities"] == {"reduced": True, "keep": []}
    bpf = ve("explain", "--seccomp", "strict", "--bpf").stdout
    assert "listing:" in bpf and "ret" in bpf


_NS_FILES = {"user": "user", "mount": "mnt", "pid": "pid", "ipc": "ipc", "uts": "uts",
             "network": "net"}


def _child_namespaces(*options: str) -> dict[str, bool]:
    """For each namespace, whether a child that run makes with ``options`` has its own."""
    script = "; ".join(f"echo {n} $(readlink /proc/self/ns/{f})" for n, f in _NS_FILES.items())
    cp = ve("run", *options, "--", "/bin/sh", "-c", script)
    assert cp.returncode == 0, cp.stderr
    got = dict(line.split() for line in cp.stdout.splitlines())
    return {n: got[n] != os.readlink(f"/proc/self/ns/{f}") for n, f in _NS_FILES.items()}


def _explained_namespaces(*options: str) -> tuple[dict[str, bool], str]:
    info = json.loads(ve("explain", "--json", *options).stdout)
    text = ve("explain", *options).stdout
    return {n["namespace"]: n["available"] for n in info["namespaces"]}, text


@pytest.mark.parametrize("options", [(), ("--private-users",), ("--no-contain",),
                                     ("--no-contain", "--network", "none"),
                                     ("--network", "host")], ids=" ".join)
def test_explain_lists_the_namespaces_run_makes(options):
    """explain with run's options names exactly the namespaces of run's child, in
    text and JSON: a contained child's mount, PID, IPC and UTS ones included."""
    need_netns()
    if "--private-users" in options:
        need_userns()
    listed, text = _explained_namespaces(*options)
    own = _child_namespaces(*options)
    assert set(listed) == {n for n, mine in own.items() if mine}, (listed, own)
    assert all(listed.values()), listed  # this kernel has each
    for name in listed:
        assert f"namespace {name}: " in text, text
    if "--no-contain" not in options:
        assert {"mount", "pid", "ipc", "uts"} <= set(listed)


def test_explain_no_contain_describes_the_host_view_sandbox():
    """explain --no-contain describes what run --no-contain makes: no view, and root
    keeps the capabilities containment would drop."""
    contained = json.loads(ve("explain", "--json").stdout)
    trusted = json.loads(ve("explain", "--json", "--no-contain").stdout)
    assert contained["view"] is not None and trusted["view"] is None
    assert "SETFCAP" not in contained["capabilities"]["keep"]
    assert "SETFCAP" in trusted["capabilities"]["keep"]
    assert "filesystem view" not in ve("explain", "--no-contain").stdout
    # --rw / is the one option that makes the host root writable in the view
    rw_root = json.loads(ve("explain", "--json", "--rw", "/").stdout)
    assert contained["view"]["root_read_only"] and not rw_root["view"]["root_read_only"]


def test_explain_writes_nothing():
    """explain of cgroup limits works where cgroups cannot be written (under a
    server profile: /sys read-only), so it makes none."""
    need_controller("pids")
    package = os.path.dirname(os.path.dirname(os.path.abspath(cgroups.__file__)))
    cp = ve("run", *PY_ROX, "--rox", package, "--ro", "/sys/fs/cgroup", "--",
            VOLT, "explain", "--pids", "10", "--memory", "64M", "--json")
    assert cp.returncode == 0, cp.stderr
    files = {w["file"]: w["value"] for w in json.loads(cp.stdout)["cgroup"]["files"]}
    assert files["pids.max"] == "10"
    assert str(64 << 20) in files.values()


def test_seccomp_export_import_disasm(tmp_path):
    exported = tmp_path / "default.json"
    assert ve("seccomp", "export", "default", "-o", str(exported)).returncode == 0
    oci = json.loads(exported.read_text())
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO" and oci["syscalls"]
    assert json.loads(ve("seccomp", "export", "strict").stdout)["syscalls"]

    bpf = tmp_path / "filter.bpf"
    imp = ve("seccomp", "import", str(exported), "-o", str(bpf))
    assert imp.returncode == 0, imp.stderr
    summary = json.loads(ve("seccomp", "import", str(exported), "--json").stdout)
    assert bpf.stat().st_size == summary["instructions"] * 8
    assert ["instructions", str(summary["instructions"])] in [ln.split() for ln in
                                                              imp.stdout.splitlines()]
    # the imported profile enforces what the exported one did
    cp = ve("run", "--profile", "none", "--seccomp", str(exported), "--",
            "unshare", "-r", "true")
    assert cp.returncode == 1

    listing = ve("seccomp", "disasm", "strict").stdout.splitlines()
    assert listing[0].split()[:3] == ["0:", "ld", "arch"]
    assert any("ret" in ln for ln in listing)

    one_line_error(ve("seccomp", "disasm", "strict", "-o", str(tmp_path / "x")), "-o")
    one_line_error(ve("seccomp", "export", "nope"), "nope")
    (tmp_path / "bad.json").write_text("{")
    one_line_error(ve("seccomp", "import", str(tmp_path / "bad.json")), "JSON")
    one_line_error(ve("seccomp", "export", "default", "-o", str(tmp_path / "no" / "x.json")),
                   "No such file")


def test_compile_and_init_path(tmp_path):
    plan = tmp_path / "plan"
    cp = ve("compile", "--seccomp", "strict", "-o", str(plan))
    assert cp.returncode == 0, cp.stderr
    lines = plan.read_text().splitlines()
    assert lines[0] == "volt-plan 1" and lines[-1] == "end"
    assert any(ln.startswith("seccomp ") for ln in lines)
    path = ve("init-path").stdout.strip()
    assert os.access(path, os.X_OK) and os.path.basename(path) == "volt-init"
    one_line_error(ve("compile", "-o", str(tmp_path / "no" / "plan")), "--output")
    one_line_error(ve("compile", "--pids", "x", "-o", str(plan)), "--pids")
