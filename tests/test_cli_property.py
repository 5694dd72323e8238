"""Property: for random option sets the command accepts, the child's real
restrictions are at least what the report claims.

The child reads Seccomp, NoNewPrivs, CapEff and CapBnd from /proc/self/status, its
namespaces from /proc/self/ns, and probes Landlock with one path the policy never
grants (listing /) and one it does (reading a file in the --rw directory). On the
host only (QEMU without KVM is too slow for it), at most 50 examples."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cliargs import SYSTEM_ROX, VOLT
from hypothesis import HealthCheck, event, given, settings, strategies as st
from kernelreq import VM_KERNEL, need_landlock, need_netns, need_seccomp, need_userns

from volt_enforce.model import CAPABILITIES

pytestmark = pytest.mark.skipif(VM_KERNEL, reason="host only: too slow in the kernel matrix's VM")

PY = os.path.realpath(sys.executable)
PY_ROX = [a for p in sorted({sys.base_prefix, sys.prefix, os.path.dirname(PY)})
          for a in ("--rox", p)]
DOCKER_PROFILE = os.path.join(os.path.dirname(__file__), "..", "volt_enforce", "seccomp",
                              "docker-default.json")

PROBE = r'''
import errno, json, os, sys
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
out = {k: st[k].strip() for k in ("Seccomp", "NoNewPrivs", "CapEff", "CapBnd")}
out["ns"] = {n: os.readlink("/proc/self/ns/" + n) for n in ("user", "net", "ipc", "uts", "pid")}
out["denied"] = attempt(lambda: os.listdir("/"))
out["granted"] = attempt(lambda: open(sys.argv[1]).read())
print(json.dumps(out))
'''

CAP_NAMES = sorted(CAPABILITIES)

options = st.fixed_dictionaries({
    "profile": st.sampled_from(["server", "desktop", "none"]),
    "seccomp": st.sampled_from(["strict", "default", "unconfined", "oci"]),
    "read_only": st.booleans(),
    "network": st.sampled_from([None, "none", "host"]),
    "private_users": st.booleans(),
    "contain": st.booleans(),
    "cap_add": st.lists(st.sampled_from(CAP_NAMES + ["ALL"]), max_size=3),
    "cap_drop": st.lists(st.sampled_from(CAP_NAMES + ["ALL"]), max_size=3),
    "level": st.sampled_from([None, "--best-effort", "--hard-requirement"]),
})


@pytest.fixture(scope="module")
def work():
    need_landlock(1)
    need_seccomp()
    need_netns()
    need_userns()
    # not under pytest's 0700 /tmp/pytest-of-root: with PrivateUsers and --no-contain the
    # child's root is an unprivileged host uid, which must reach the granted directory on
    # the host's own tree, and write it (else the run is refused, naming it: test_users.py)
    d = Path(tempfile.mkdtemp(prefix="volt-property-", dir="/var/tmp"))
    d.chmod(0o755)
    (d / "granted").mkdir()
    (d / "granted" / "data").write_text("x")
    (d / "granted").chmod(0o777)
    with open(DOCKER_PROFILE) as f:
        (d / "docker.json").write_text(f.read())
    yield d
    shutil.rmtree(d, ignore_errors=True)


def argv(o: dict, work) -> list[str]:
    args = ["run", "--profile", o["profile"], "--rw", str(work / "granted"), *SYSTEM_ROX,
            *PY_ROX, "--report", str(work / "report.json")]
    args += ["--seccomp", str(work / "docker.json") if o["seccomp"] == "oci" else o["seccomp"]]
    if o["read_only"]:
        args.append("--read-only")
    if o["network"]:
        args += ["--network", o["network"]]
    if o["private_users"]:
        args.append("--private-users")
    if not o["contain"]:
        args.append("--no-contain")
    for c in o["cap_add"]:
        args += ["--cap-add", c]
    for c in o["cap_drop"]:
        args += ["--cap-drop", c]
    if o["level"]:
        args.append(o["level"])
    return args


def _host_ns() -> dict[str, str]:
    return {n: os.readlink(f"/proc/self/ns/{n}") for n in ("user", "net", "ipc", "uts", "pid")}


_NS = {"user": "user", "network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid"}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(o=options)
def test_the_child_is_at_least_as_restricted_as_the_report_says(work, o):
    report_path = work / "report.json"
    if report_path.exists():
        report_path.unlink()
    # the mapped root of PrivateUsers cannot reach an interpreter under /root (pyenv's)
    py = "/usr/bin/python3" if o["private_users"] and not PY.startswith("/usr/") else PY
    cp = subprocess.run([VOLT, *argv(o, work), "--", py, "-S", "-c", PROBE,
                         str(work / "granted" / "data")],
                        capture_output=True, text=True, timeout=120, check=False)
    if cp.returncode == 125:
        # refused: volt-enforce said why in one line, and nothing ran
        event(f"refused: {cp.stderr.split(':')[1:3]}")
        assert len(cp.stderr.splitlines()) == 1 and not report_path.exists(), cp.stderr
        return
    assert cp.returncode == 0, (o, cp.stderr)
    event("ran")
    got = json.loads(cp.stdout)
    rep = json.loads(report_path.read_text())

    sc = rep["seccomp"]
    if sc is not None and sc.get("instructions"):
        assert got["Seccomp"] == "2", (o, got)
    if rep["no_new_privs"]:
        assert got["NoNewPrivs"] == "1", (o, got)
    if rep["capabilities"] is not None:
        kept = sum(1 << CAPABILITIES[c] for c in rep["capabilities"])
        assert int(got["CapEff"], 16) & ~kept == 0, (o, got, rep["capabilities"])
        assert int(got["CapBnd"], 16) & ~kept == 0, (o, got, rep["capabilities"])
    host = _host_ns()
    for ns in rep["namespaces"]:
        assert got["ns"][_NS[ns]] != host[_NS[ns]], (o, ns, got["ns"])
    ll = rep["landlock"]
    if ll is not None and ll["status"] != "none" and "read_dir" in ll["handled_fs"]:
        # the contained view's own additions count as grants (its root listed)
        added = (rep.get("view") or {}).get("landlock_added", [])
        granted_root = [r for r in ll["rules"] + added
                        if r["path"] == "/" and "read_dir" in r["access"]]
        if not granted_root:
            assert got["denied"] == errno.errorcode[errno.EACCES], (o, got)
    # the probe itself works: the granted path is readable
    assert got["granted"] == "ok", (o, got)
    # a downgrade is never silent: each one is a warning line
    warned = [ln for ln in cp.stderr.splitlines() if ln.startswith("volt-enforce: warning: ")]
    assert len(warned) == len(rep["downgrades"]), (cp.stderr, rep["downgrades"])
