"""volt_enforce.probe() and `volt-enforce check` on this machine, checked against
what the kernel reports through other channels (/proc, util-linux)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest
from kernelreq import need_landlock, need_netns, need_seccomp, need_userns

import volt_enforce as ve
from volt_enforce import kernel
from volt_enforce.cli import EXIT_FAILURE

BIN = os.path.dirname(sys.executable)
CONSOLE_SCRIPT = os.path.join(BIN, "volt-enforce")


def _status(field: str) -> str:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"{field} not in /proc/self/status")


@pytest.fixture(scope="module")
def p() -> ve.Probe:
    return ve.probe()


# ── Landlock ─────────────────────────────────────────────────────────────────


def test_landlock_abi_7(p):
    need_landlock(7)
    assert p.landlock_abi >= 7
    assert p.landlock_status == "enabled"
    assert ve.landlock_abi() == p.landlock_abi
    # errata 1-3 (TCP socket, signal scoping, disconnected directory fixes)
    # came with the errata query itself in 6.15, the kernel of ABI 7
    assert p.landlock_errata & 0x7 == 0x7
    assert f"ABI {p.landlock_abi}, errata {p.landlock_errata:#x}" in p.format()


_REAL_LIB = kernel.lib


class _FakeLib:
    """The real C core, with chosen results for some calls."""

    def __init__(self, **results):
        self._results = results

    def __getattr__(self, name):
        if name in self._results:
            r = self._results[name]
            return lambda *a: r
        return getattr(_REAL_LIB, name)


@pytest.mark.parametrize("rc,status", [
    (-errno.EOPNOTSUPP, "disabled at boot"),
    (-errno.ENOSYS, "not built in"),
    (-errno.EPERM, os.strerror(errno.EPERM)),
])
def test_landlock_absent_is_reported_with_the_reason(monkeypatch, rc, status):
    monkeypatch.setattr(kernel, "lib", _FakeLib(ve_landlock_abi=rc, ve_landlock_errata=-1))
    q = kernel.probe()
    assert (q.landlock_abi, q.landlock_errata, q.landlock_status) == (0, 0, status)
    assert f"landlock        {status}\n" in q.format() + "\n"


def test_namespace_failures_are_reported_with_the_errno(monkeypatch):
    monkeypatch.setattr(kernel, "lib", _FakeLib(ve_probe_unshare=-errno.EPERM))
    q = kernel.probe()
    assert q.user_namespaces is False and q.network_namespaces is False
    assert q.user_namespaces_error == os.strerror(errno.EPERM)
    assert f"user namespaces no ({os.strerror(errno.EPERM)})" in q.format()


# ── seccomp, no_new_privs, process state ─────────────────────────────────────


def test_seccomp_actions_match_the_kernels_list(p):
    need_seccomp()
    with open("/proc/sys/kernel/seccomp/actions_avail") as f:
        kernel_list = f.read().split()
    assert set(p.seccomp_actions) == set(kernel_list)
    assert {"allow", "errno", "kill_process", "user_notif", "log"} <= set(p.seccomp_actions)
    assert p.seccomp is True


def test_process_state_matches_proc_status(p):
    assert p.seccomp_mode == int(_status("Seccomp"))
    assert p.no_new_privs == (_status("NoNewPrivs") == "1")
    assert p.euid == os.geteuid()
    assert p.kernel == os.uname().release and p.machine == os.uname().machine


def test_threads_are_counted():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert ve.probe().threads == len(os.listdir("/proc/self/task")) >= 2
    finally:
        stop.set()
        t.join()


# ── namespaces ───────────────────────────────────────────────────────────────


def _unshare_works(flag: str) -> bool:
    return subprocess.run(["unshare", flag, "true"], capture_output=True).returncode == 0


def test_user_namespace_probe(p):
    need_userns()
    assert p.user_namespaces is True and p.user_namespaces_error is None
    assert _unshare_works("--user")


def test_net_namespace_probe(p):
    need_netns()
    assert p.network_namespaces is True and p.network_namespaces_error is None
    assert _unshare_works("--net")


def test_probe_leaves_this_process_alone():
    ns = {n: os.stat(f"/proc/self/ns/{n}").st_ino for n in ("user", "net", "mnt")}
    nnp = _status("NoNewPrivs")
    ve.probe()
    assert ns == {n: os.stat(f"/proc/self/ns/{n}").st_ino for n in ("user", "net", "mnt")}
    assert _status("NoNewPrivs") == nnp
    with pytest.raises(ChildProcessError):  # the probe's children were all reaped
        os.waitpid(-1, os.WNOHANG)


def test_to_dict_is_json_and_complete(p):
    d = json.loads(json.dumps(p.to_dict()))
    assert set(d) == {
        "kernel", "machine", "landlock_abi", "landlock_errata", "landlock_status", "seccomp",
        "seccomp_mode", "seccomp_actions", "cgroups", "user_namespaces", "user_namespaces_error",
        "network_namespaces", "network_namespaces_error", "no_new_privs", "euid", "threads",
        "landlock_features",
    }
    assert d["cgroups"] == p.cgroups.to_dict()
    assert d["seccomp_actions"] == list(p.seccomp_actions)


# ── the command ──────────────────────────────────────────────────────────────


def _check_json(cmd: list[str]) -> dict:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return json.loads(r.stdout)


def _comparable(d: dict) -> dict:
    d = dict(d)
    d.pop("threads")  # a property of each process
    return d


@pytest.mark.parametrize("cmd", [[CONSOLE_SCRIPT], [sys.executable, "-m", "volt_enforce"]],
                         ids=["console-script", "python-m"])
def test_check_json_matches_probe(cmd, p):
    assert os.access(cmd[0], os.X_OK), f"{cmd[0]} is not installed"
    d = _check_json(cmd + ["check", "--json"])
    assert _comparable(d) == _comparable(p.to_dict())


@pytest.mark.parametrize("cmd", [[CONSOLE_SCRIPT], [sys.executable, "-m", "volt_enforce"]],
                         ids=["console-script", "python-m"])
def test_check_prints_for_people(cmd, p):
    r = subprocess.run(cmd + ["check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == p.format() + "\n"
    heads = [line.split()[0] for line in r.stdout.splitlines() if not line.startswith(" ")]
    assert heads == ["kernel", "landlock", "seccomp", "cgroups", "user", "net", "no_new_privs",
                     "euid"]
    assert f"cgroups         {p.cgroups.kind}\n" in r.stdout


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["check", "--yaml"]])
def test_check_usage_errors(args):
    r = subprocess.run([sys.executable, "-m", "volt_enforce"] + args, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == EXIT_FAILURE  # volt-enforce's own failure, as env(1)'s 125
    assert r.stdout == ""
    assert r.stderr.startswith("volt-enforce: ") and r.stderr.count("\n") == 1


def test_check_sees_no_new_privs_of_its_process():
    d = _check_json(["setpriv", "--no-new-privs", sys.executable, "-m", "volt_enforce", "check",
                     "--json"])
    assert d["no_new_privs"] is True


def _overflowuid() -> int:
    with open("/proc/sys/kernel/overflowuid") as f:
        return int(f.read())


# Run in the child: the probe's claim about each current cgroup, and whether a
# child cgroup can really be made there (removed at once).
_WRITABLE_TRUTH = """
import json, os, volt_enforce as ve
p = ve.probe()
out = []
for m in ([p.cgroups.v2] if p.cgroups.v2 else []) + list(p.cgroups.v1):
    if m.current_path is None:
        continue
    d = os.path.join(m.current_path, "volt-probe-test-%d" % os.getpid())
    try:
        os.mkdir(d)
    except OSError:
        made = False
    else:
        made = True
        os.rmdir(d)
    out.append([m.current_path, m.current_writable, made])
print(json.dumps({"probe": p.to_dict(), "writable": out}))
"""


def test_check_in_an_unmapped_user_namespace():
    # no uid mapping: we are the overflow uid without capabilities, and nested
    # namespaces are refused; what the probe calls writable must be writable
    need_userns()
    assert shutil.which("unshare")
    r = _check_json(["unshare", "--user", sys.executable, "-c", _WRITABLE_TRUTH])
    d = r["probe"]
    assert d["euid"] == _overflowuid()
    assert d["user_namespaces"] is False
    assert d["user_namespaces_error"] == os.strerror(errno.EPERM)
    assert d["network_namespaces"] is False
    assert d["landlock_abi"] == ve.probe().landlock_abi
    assert r["writable"], "no current cgroup was visible"
    for path, claimed, made in r["writable"]:
        assert claimed == made, path
    assert not all(claimed for _, claimed, _ in r["writable"])  # root's 0755 hierarchies


def test_check_as_mapped_root_of_a_user_namespace():
    need_userns()
    d = _check_json(["unshare", "--user", "--map-root-user", sys.executable, "-m",
                     "volt_enforce", "check", "--json"])
    assert d["euid"] == 0
    assert d["user_namespaces"] is True and d["network_namespaces"] is True
