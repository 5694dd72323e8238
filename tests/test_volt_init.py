"""volt-init, the init shim without Python: a plan from `volt-enforce compile`
enforces what `volt-enforce run` does with the same options; a bad plan runs
nothing and leaves nothing; the plan writer's cgroup mapping on each layout."""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from kernelreq import need_landlock, need_netns, need_seccomp, need_userns
from test_cli import (
    FORK_COUNT,
    PROBE,
    PY,
    PY_ROX,
    SYSTEM_ROX,
    free_port,
    need_controller,
    ve,
)

from volt_enforce import cgroups
from volt_enforce.errors import CompatibilityError, PolicyError
from volt_enforce.init_plan import CgroupWrite, cgroup_directories, compile_plan, volt_init_path
from volt_enforce.model import IsolationConfig, ResourceLimits

INIT = volt_init_path()


@pytest.fixture(autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()


def plan_dirs(text: str) -> list[str]:
    """The cgroup directories a plan makes."""
    return [os.fsdecode(bytes.fromhex(ln.split()[1])) for ln in text.splitlines()
            if ln.startswith("cgroup-dir ")]


def remove_cgroups(dirs: list[str]) -> None:
    """Kill what runs in the plan's cgroups, then remove them."""
    for d in reversed(dirs):
        if not os.path.isdir(d):
            continue
        deadline = time.monotonic() + 10
        while True:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids = [int(p) for p in f.read().split()]
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.rmdir(d)
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


@pytest.fixture
def compiled(tmp_path):
    """compiled(*options) -> (plan path, plan text); its cgroups are removed after."""
    made: list[str] = []

    def compile_(*options: str, name: str = "plan"):
        plan = tmp_path / name
        cp = ve("compile", *options, "-o", str(plan))
        assert cp.returncode == 0, cp.stderr
        text = plan.read_text()
        dirs = plan_dirs(text)
        remove_cgroups(dirs)  # a plan's cgroups are named by its hash: start clean
        made.extend(dirs)
        return plan, text

    yield compile_
    remove_cgroups(made)


def init(plan, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([INIT, str(plan), "--", *cmd], check=False, capture_output=True, text=True,
                          timeout=60, **kw)


def init_failed(cp: subprocess.CompletedProcess, *words: str) -> None:
    assert cp.returncode == 125, (cp.returncode, cp.stdout, cp.stderr)
    lines = cp.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("volt-init: "), cp.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


# ---- the shim enforces what the library does ---------------------------------------------


SAME = {
    "server-default": [],
    "none-strict-userns": ["--profile", "none", "--seccomp", "strict", "--private-users",
                           "--ro", "/proc", "--rox", "/lib64", "--rox", "/lib"],
    "network-ports-pids": ["--network", "none", "--bind-tcp", "{port}", "--connect-tcp",
                           "{port}", "--pids", "16", "--ro", "/sys/fs/cgroup"],
    "desktop-limits": ["--profile", "desktop", "--seccomp", "unconfined", "--read-only",
                       "--memory", "256M",
                       "--memory-high", "128M", "--cpus", "0", "--cpu-weight", "50",
                       "--cpu-quota", "50%", "--io-weight", "200", "--pids", "32",
                       "--ro", "/sys/fs/cgroup"],
}


#: Writing the data directory (below /tmp): only --ro names it, so in the contained
#: view it is a read-only bind (on the private /tmp of the presets).
WRITE_TMP = {"server-default": "EROFS", "none-strict-userns": "EROFS",
             "network-ports-pids": "EROFS", "desktop-limits": "EROFS"}


@pytest.mark.parametrize("name", list(SAME))
def test_same_as_the_library(name, compiled, tmp_path):
    if "--private-users" in SAME[name]:
        need_userns()
    if "--network" in SAME[name]:
        need_netns()
        need_landlock(4)
    if "--pids" in SAME[name]:
        need_controller("pids")
    if "--cpus" in SAME[name]:
        for ctrl in ("memory", "cpu", "cpuset", "io"):
            need_controller(ctrl)
    data = tmp_path / "data-dir"
    data.mkdir()
    (data / "data").write_text("x\n")
    port = str(free_port())
    options = [o.replace("{port}", port) for o in SAME[name]]
    options += ["--ro", str(data), "--rox", "/usr", *PY_ROX]
    if "--network" not in options:
        # run's default network is none, compile's (a shim inside a container) the one it
        # is given: the same network named for both
        options += ["--network", "host"]
    # the user namespace's root is an unprivileged host uid: it cannot reach a Python
    # under root's 0700 home (pyenv), so it runs the system's
    py = "/usr/bin/python3" if "--private-users" in SAME[name] else PY
    cmd = [py, "-S", "-c", PROBE, str(data), port]

    report = tmp_path / "report.json"
    lib = ve("run", *options, "--report", str(report), "--", *cmd)
    assert lib.returncode == 0, lib.stderr
    plan, _ = compiled(*options)
    shim = init(plan, *cmd)
    assert shim.returncode == 0, shim.stderr
    want, got = json.loads(lib.stdout), json.loads(shim.stdout)

    written = (json.loads(report.read_text())["cgroup"] or {}).get("written", {})
    for name_ in written:
        assert got["cgroup"][name_] == want["cgroup"][name_] == written[name_], name_
    want.pop("cgroup"), got.pop("cgroup")
    assert got == want
    assert want["status"]["NoNewPrivs"] == "1"
    assert want["status"]["Seccomp"] == ("0" if "unconfined" in options else "2")
    assert want["write_usr"] == "EROFS"  # the contained view: a read-only bind
    assert want["write_tmp"] == WRITE_TMP[name]


def test_limits_applied_by_the_shim(compiled):
    need_controller("pids")
    plan, text = compiled("--pids", "5", *PY_ROX)
    cp = init(plan, "sh", "-c",
              f"grep pids /proc/self/cgroup; exec {PY} -S -c {shlex.quote(FORK_COUNT)}")
    assert cp.returncode == 0, cp.stderr
    line, count = cp.stdout.split()
    assert count == "5"
    pids_dir = [d for d in plan_dirs(text) if os.path.exists(os.path.join(d, "pids.max"))]
    assert len(pids_dir) == 1
    assert line.endswith("/" + os.path.basename(pids_dir[0]))
    with open(os.path.join(pids_dir[0], "pids.max")) as f:
        assert f.read().strip() == "5"
    # a second run of the plan reuses its cgroups
    assert init(plan, "true").returncode == 0
    assert all(os.path.isdir(d) for d in plan_dirs(text))


# ---- exit codes -----------------------------------------------------------------------------


def test_exit_codes(compiled, tmp_path):
    plan, _ = compiled()
    assert init(plan, "sh", "-c", "exit 7").returncode == 7
    cp = init(plan, "no-such-command-volt")
    assert cp.returncode == 127 and "no-such-command-volt" in cp.stderr
    assert init(plan, str(tmp_path / "missing")).returncode == 127
    cp = init(plan, "/etc/passwd")
    assert cp.returncode == 126 and "cannot execute" in cp.stderr
    assert init(plan, "sh", "-c", "kill -TERM $$").returncode == -signal.SIGTERM

    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    script.chmod(0o755)
    denied, _ = compiled("--profile", "none", *SYSTEM_ROX, "--ro", str(tmp_path), name="ro")
    cp = init(denied, str(script))
    assert cp.returncode == 126 and "Permission denied" in cp.stderr

    proc = subprocess.Popen([INIT, str(plan), "--", "sh", "-c", "echo $$"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.communicate(timeout=30)[0].strip() == str(proc.pid)  # exec'd in place


def test_usage(tmp_path):
    marker = tmp_path / "ran"
    for argv in ([], [str(tmp_path / "plan")], [str(tmp_path / "plan"), "touch", str(marker)]):
        cp = subprocess.run([INIT, *argv], check=False, capture_output=True, text=True)
        assert cp.returncode == 125 and cp.stderr.startswith("usage: volt-init PLAN --")
    cp = subprocess.run([INIT, "--help"], check=False, capture_output=True, text=True)
    assert cp.returncode == 0 and "usage:" in cp.stdout
    cp = init(tmp_path / "missing", "touch", str(marker))
    init_failed(cp, "cannot open plan", "No such file")
    cp = init(tmp_path, "touch", str(marker))
    init_failed(cp, "cannot read plan")
    assert not marker.exists()


# ---- bad plans: exit 125, nothing run, nothing left -------------------------------------------


def _replace_record(kind: str, new):
    def mutate(text: str) -> str:
        lines = text.splitlines()
        i = next(i for i, ln in enumerate(lines) if ln.split()[0] == kind)
        lines[i] = new(lines[i])
        return "\n".join(lines) + "\n"
    return mutate


def _insert_before_end(record: str):
    return lambda text: text.replace("\nend\n", f"\n{record}\nend\n")


MUTATIONS = {
    "empty": (lambda t: "", "truncated"),
    "no end record": (lambda t: t.replace("end\n", ""), "truncated"),
    "cut in half": (lambda t: t[: len(t) // 2], ""),
    "version 2": (lambda t: t.replace("volt-plan 1", "volt-plan 2"), "version 1 plan"),
    "not a plan": (lambda t: "#!/bin/sh\necho hi\n", "version 1 plan"),
    "unknown record": (_insert_before_end("mount 2f"), "unknown or malformed"),
    "too many fields": (_insert_before_end("nnp 1 2 3 4 5 6"), "malformed"),
    "wrong field count": (_insert_before_end("cgroup-set 2f 30 2f"), "malformed"),
    "bad hex": (_replace_record("path", lambda ln: ln[:-2] + "zz"), "bad hex"),
    "odd hex": (_replace_record("path", lambda ln: ln[:-1]), "bad hex"),
    "NUL in a path": (_replace_record("path", lambda ln: ln + "00"), "NUL byte"),
    "bad number": (_replace_record("caps", lambda ln: "caps xyz"), "bad number"),
    "signed number": (_replace_record("caps", lambda ln: "caps -1"), "bad number"),
    "data after end": (lambda t: t + "nnp 1\n", "after the end"),
    "NUL byte": (lambda t: t.replace("nnp 1", "nnp\0 1"), "NUL bytes"),
    "seccomp odd hex": (_replace_record("seccomp", lambda ln: ln[:-1]), "bad hex"),
    "seccomp not 8-byte": (_replace_record("seccomp", lambda ln: ln[:-2]), "filter length"),
    "two seccomp records": (lambda t: t.replace(
        "\nend\n", "\n" + next(ln for ln in t.splitlines() if ln.startswith("seccomp"))
        + "\nend\n"), "second seccomp"),
    "path before landlock": (lambda t: t.replace("nnp 1\n", "nnp 1\npath c 0 2f\n"),
                             "before the landlock"),
    "unshare flags": (_replace_record("nnp", lambda ln: "unshare 1"), "unshare flags"),
    "bad port": (_insert_before_end("port 1 10000"), "bad port"),
}


@pytest.fixture(scope="module")
def base_plan(tmp_path_factory):
    """A plan with cgroups, Landlock and seccomp, compiled once."""
    need_controller("pids")
    path = tmp_path_factory.mktemp("plan") / "plan"
    cp = ve("compile", "--pids", "5", "--bind-tcp", "8080", "-o", str(path))
    assert cp.returncode == 0, cp.stderr
    text = path.read_text()
    assert plan_dirs(text)
    remove_cgroups(plan_dirs(text))
    yield text
    remove_cgroups(plan_dirs(text))


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_bad_plan_runs_nothing(name, base_plan, tmp_path):
    mutate, words = MUTATIONS[name]
    plan = tmp_path / "bad-plan"
    plan.write_text(mutate(base_plan))
    marker = tmp_path / "ran"
    init_failed(init(plan, "touch", str(marker)), words)
    assert not marker.exists()
    assert not any(os.path.exists(d) for d in plan_dirs(base_plan))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0, 1))
def test_any_truncation_runs_nothing(base_plan, tmp_path, cut):
    plan = tmp_path / "cut-plan"
    end = int(cut * (len(base_plan) - len("end\n")))
    plan.write_text(base_plan[:end])
    marker = tmp_path / "ran"
    cp = init(plan, "touch", str(marker))
    assert cp.returncode == 125, (end, cp.stderr)
    assert not marker.exists()
    assert not any(os.path.exists(d) for d in plan_dirs(base_plan))


def test_failure_after_the_cgroups_removes_them(base_plan, tmp_path):
    marker = tmp_path / "ran"
    # a value the kernel refuses: the directories were made, and are removed again
    bad_value = _replace_record("cgroup-set", lambda ln: " ".join(
        ln.split()[:2] + [b"lots".hex()]))(base_plan)
    plan = tmp_path / "plan"
    plan.write_text(bad_value)
    init_failed(init(plan, "touch", str(marker)), "cannot write", "Invalid argument")
    # restrict flags the kernel refuses: the process joined the cgroups, left them again
    bad_flags = _replace_record("landlock", lambda ln: " ".join(
        ln.split()[:4] + ["80000000"]))(base_plan)
    plan.write_text(bad_flags)
    init_failed(init(plan, "touch", str(marker)), "enforcement failed at landlock")
    assert not marker.exists()
    assert not any(os.path.exists(d) for d in plan_dirs(base_plan))


def test_rule_path_gone_at_run_time(compiled, tmp_path):
    need_controller("pids")
    sub = tmp_path / "sub"
    sub.mkdir()
    plan, text = compiled("--pids", "5", "--ro", str(sub))
    sub.rmdir()
    marker = tmp_path / "ran"
    init_failed(init(plan, "touch", str(marker)), "cannot add a rule for", str(sub))
    assert not marker.exists()
    assert not any(os.path.exists(d) for d in plan_dirs(text))  # cgroups come last


# ---- the plan writer's cgroup mapping, on made-up layouts ----------------------------------


def _layout(tmp_path, v2_controllers=None, v1=(), self_v2="/", self_v1=None):
    """A cgroup layout over plain directories: cgroup2 (with these controllers)
    and v1 hierarchies (controller names), this process at the given paths."""
    lines, cg = [], []
    if v2_controllers is not None:
        root = tmp_path / "v2"
        cur = root / self_v2.strip("/")
        cur.mkdir(parents=True, exist_ok=True)
        (root / "cgroup.controllers").write_text(" ".join(v2_controllers) + "\n")
        (cur / "cgroup.subtree_control").write_text("")
        (cur / "cpuset.cpus.effective").write_text("0-3\n")
        (cur / "cpuset.mems.effective").write_text("0\n")
        lines.append(f"30 20 0:26 / {root} rw - cgroup2 cgroup2 rw")
        cg.append(f"0::{self_v2}")
    for i, ctrl in enumerate(v1):
        root = tmp_path / "v1" / ctrl
        cur = root / (self_v1 or "/").strip("/")
        cur.mkdir(parents=True, exist_ok=True)
        (cur / "cpuset.effective_cpus").write_text("0-1\n")
        (cur / "cpuset.effective_mems").write_text("0\n")
        lines.append(f"{40 + i} 20 0:{40 + i} / {root} rw - cgroup cgroup rw,{ctrl}")
        cg.append(f"{i + 1}:{ctrl}:{self_v1 or '/'}")
    return cgroups.detect("\n".join(lines) + "\n", "\n".join(cg) + "\n")


def test_mapping_pure_v2(tmp_path):
    layout = _layout(tmp_path, ["cpuset", "cpu", "io", "memory", "pids"], self_v2="/a")
    limits = ResourceLimits(memory_hard="1G", cpu_set="1-2", pids_max=5, io_weight=300)
    [(d, files)] = cgroup_directories(limits, name="n", layout=layout)
    cur = tmp_path / "v2" / "a"
    assert d == str(cur / "n")
    assert files == {
        str(cur / "cgroup.subtree_control"): "+cpuset +io +memory +pids",
        "memory.max": str(1 << 30),
        "cpuset.cpus": "1-2",
        "cpuset.mems": "0",  # the parent's, read at compile time
        "io.weight": CgroupWrite((("io.weight", "default 300"), ("io.bfq.weight", "118"))),
        "pids.max": "5",
    }
    (cur / "cgroup.subtree_control").write_text("memory pids io cpuset\n")
    [(_, files)] = cgroup_directories(limits, name="n", layout=layout)
    assert str(cur / "cgroup.subtree_control") not in files


def test_mapping_v1_and_hybrid(tmp_path):
    limits = ResourceLimits(pids_max=7, cpu_weight=200, io_weight=100)
    v1 = _layout(tmp_path / "a", v1=("pids", "cpu", "blkio"), self_v1="/x")
    dirs = dict(cgroup_directories(limits, name="n", layout=v1))
    base = tmp_path / "a" / "v1"
    assert dirs == {
        str(base / "cpu" / "x" / "n"): {"cpu.shares": "2048"},
        str(base / "blkio" / "x" / "n"): {"blkio.weight": CgroupWrite(
            (("blkio.weight", "500"), ("blkio.bfq.weight", "100")), optional=True)},
        str(base / "pids" / "x" / "n"): {"pids.max": "7"},
    }
    hybrid = _layout(tmp_path / "b", v2_controllers=[], v1=("pids",))
    out = cgroup_directories(ResourceLimits(pids_max=7), name="n", layout=hybrid)
    # cgroup2 holds no controller here, but the workload joins it too (placement)
    assert out == [(str(tmp_path / "b" / "v1" / "pids" / "n"), {"pids.max": "7"}),
                   (str(tmp_path / "b" / "v2" / "n"), {})]


def test_mapping_missing_controller_and_bad_cpus(tmp_path):
    layout = _layout(tmp_path, v1=("pids", "cpuset"))
    limits = ResourceLimits(pids_max=7, memory_hard="1G")
    with pytest.raises(CompatibilityError, match="memory"):
        cgroup_directories(limits, name="n", layout=layout)
    out = cgroup_directories(limits, name="n", layout=layout, best_effort=True)
    assert out == [(str(tmp_path / "v1" / "pids" / "n"), {"pids.max": "7"})]
    with pytest.raises(PolicyError, match="CPUSet"):
        cgroup_directories(ResourceLimits(cpu_set="3"), name="n", layout=layout)


def test_plan_records_for_cgroups(tmp_path):
    d = str(tmp_path / "cg")
    files = {"pids.max": "5",
             "io.weight": CgroupWrite((("io.weight", "default 300"), ("io.bfq.weight", "118"))),
             "blkio.weight": CgroupWrite((("blkio.weight", "500"),), optional=True)}
    text = compile_plan(IsolationConfig(), cgroup_dirs=[(d, files)])
    records = [ln.split() for ln in text.splitlines() if ln.startswith("cgroup")]
    h = lambda s: os.fsencode(s).hex()
    assert records == [
        ["cgroup-dir", h(d)],
        ["cgroup-set", h(d + "/pids.max"), h("5")],
        ["cgroup-set", h(d + "/io.weight"), h("default 300"), h(d + "/io.bfq.weight"), h("118")],
        ["cgroup-try", h(d + "/blkio.weight"), h("500")],
        ["cgroup-join", h(d)],
    ]
    lines = text.splitlines()
    assert lines[0] == "volt-plan 1" and lines[-1] == "end"


def test_plan_names_its_cgroups_by_its_content():
    need_controller("pids")
    a = IsolationConfig(resources=ResourceLimits(pids_max=5))
    b = IsolationConfig(resources=ResourceLimits(pids_max=6))
    ta, tb = compile_plan(a), compile_plan(b)
    assert ta == compile_plan(IsolationConfig(resources=ResourceLimits(pids_max=5)))
    names_a = {os.path.basename(d) for d in plan_dirs(ta)}
    names_b = {os.path.basename(d) for d in plan_dirs(tb)}
    assert len(names_a) == len(names_b) == 1 and names_a != names_b
    assert next(iter(names_a)).startswith("volt-init-")


def test_the_static_executables_use_musl_where_it_is_installed():
    """setup.py builds volt-init and volt-spawner against musl where musl-gcc is installed:
    a static glibc program probes the CPU at each start (cpuid, which traps to the
    hypervisor in a VM: about 320 us here). glibc's static start-up carries the name of
    its tunables variable; musl's has none. A build from before musl-gcc was installed
    fails this: build again."""
    import shutil

    bin_dir = os.path.dirname(INIT)
    for name in ("volt-init", "volt-spawner"):
        with open(os.path.join(bin_dir, name), "rb") as f:
            glibc = b"GLIBC_TUNABLES" in f.read()
        assert glibc == (shutil.which("musl-gcc") is None), (name, glibc)


def test_the_volt_init_command_imports_nothing_before_the_exec():
    """The volt-init command (scripts/volt-init) execs the C executable after importing
    only the package's __init__: the entry point it replaced imported re with its
    wrapper and the model and the compiler with volt_enforce.init_plan (about 40 ms).
    Run without site (an editable install's finder imports re itself); the package is
    found through PYTHONPATH."""
    import sys

    from cliargs import imported_without_site

    imported, err, out = imported_without_site([os.path.join(os.path.dirname(sys.executable),
                                                             "volt-init"), "--help"])
    assert "volt_enforce" in imported and out.startswith("usage: volt-init"), err
    heavy = {"re", "enum", "typing", "dataclasses", "hashlib", "subprocess",
             "volt_enforce.init_plan", "volt_enforce.compile", "volt_enforce.model"}
    assert not imported & heavy, sorted(imported & heavy)
