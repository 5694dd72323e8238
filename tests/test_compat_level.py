"""The command's compatibility level (FACILITY_REQUIREMENT): a whole facility asked
for and missing runs nothing; a part of one dropped runs, with one warning line per
downgrade on stderr (none with --no-warnings). --best-effort, --hard-requirement and
an explicit Compatibility in the config file override it.

A missing Landlock is simulated in this process with the ``assume_abi`` fixture (the
command is run in-process by ``cli.main``), and for real in a child of the console
script whose seccomp filter answers ENOSYS for landlock_create_ruleset, as an old
kernel does. Each target touches a marker in a directory it may write (``--rw``):
had it run, the marker would be there."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
from cliargs import SYSTEM_ROX, VOLT
from kernelreq import need_cgroup_v1, need_cgroup_v2_controller, need_landlock, need_seccomp

from volt_enforce import Compatibility, IsolationConfig, LandlockPolicy, cgroups as cgroups_pkg, cli, landlock
from volt_enforce.compile import COMMAND_COMPATIBILITY, compatibility_of, resolve_compatibility
from volt_enforce.downgrades import downgrades
from volt_enforce.landlock import Dropped, LandlockReport
from volt_enforce.model import LandlockAccess, LandlockScope
from volt_enforce.report import EnforcementReport


@pytest.fixture(autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()


@pytest.fixture
def no_landlock(assume_abi):
    """As if the kernel had no Landlock (tests/conftest.py's ABI cap at 0)."""
    with assume_abi(0):
        yield


def main(capsys, tmp_path, *options: str, config: dict | None = None) -> tuple[int, list[str], bool]:
    """``cli.main(["run", "--rw", TMP, OPTIONS, "--", "touch", TMP/ran])`` in this
    process: the exit status, the stderr lines, whether the target ran."""
    marker = tmp_path / "ran"
    # no rules for the program: their report lines are not what these tests count
    argv = ["run", "--no-auto-rules", "--rw", str(tmp_path), *SYSTEM_ROX]
    if config is not None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        argv += ["--config", str(path)]
    else:
        argv += ["--profile", "none"]
    capsys.readouterr()
    rc = cli.main([*argv, *options, "--", "touch", str(marker)])
    err = capsys.readouterr().err
    ran = marker.exists()
    if ran:
        marker.unlink()
    return rc, err.splitlines(), ran


def warnings(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("volt-enforce: warning: ")]


# ---- the vocabulary -----------------------------------------------------------------


def test_one_vocabulary_four_levels():
    c = Compatibility
    assert [(x.drops_parts, x.runs_without) for x in c] == [
        (True, True), (False, True), (False, False), (True, False)]
    assert COMMAND_COMPATIBILITY is c.FACILITY_REQUIREMENT
    assert compatibility_of(None, "facility_requirement") is c.FACILITY_REQUIREMENT


def test_an_omitted_compatibility_stays_distinguishable():
    omitted = IsolationConfig.from_json('{"Landlock": {"Rules": null}}')
    explicit = IsolationConfig.from_json('{"Landlock": {"Rules": null, '
                                         '"Compatibility": "best_effort"}}')
    assert omitted.landlock.compatibility is None
    assert explicit.landlock.compatibility is Compatibility.BEST_EFFORT
    # the library acts on both as best effort; JSON keeps the difference
    assert omitted.landlock.effective_compatibility is Compatibility.BEST_EFFORT
    assert "Compatibility" not in omitted.to_json()
    assert '"Compatibility":"best_effort"' in explicit.to_json()
    again = IsolationConfig.from_json(explicit.to_json())
    assert again.landlock.compatibility is Compatibility.BEST_EFFORT


def test_resolve_compatibility_override_then_config_then_default():
    def cfg(level=None):
        return IsolationConfig(landlock=LandlockPolicy(compatibility=level))

    c = cfg()
    assert resolve_compatibility(c) is Compatibility.FACILITY_REQUIREMENT
    assert c.landlock.compatibility is Compatibility.FACILITY_REQUIREMENT
    c = cfg("best_effort")
    assert resolve_compatibility(c) is Compatibility.BEST_EFFORT
    c = cfg("best_effort")
    assert resolve_compatibility(c, Compatibility.HARD_REQUIREMENT) is Compatibility.HARD_REQUIREMENT
    assert c.landlock.compatibility is Compatibility.HARD_REQUIREMENT
    assert resolve_compatibility(IsolationConfig()) is Compatibility.FACILITY_REQUIREMENT


def test_facility_requirement_in_the_landlock_plan():
    policy = LandlockPolicy(scopes=LandlockScope.SIGNAL,
                            compatibility=Compatibility.FACILITY_REQUIREMENT)
    with landlock.compile(policy, abi=5) as rs:  # scopes need ABI 6: a part dropped
        assert rs.report.status == "partial"
        assert [d.name for d in rs.report.dropped] == ["SIGNAL"]
    with pytest.raises(landlock.CompatibilityError, match="Landlock"):
        landlock.compile(policy, abi=0)


# ---- the command: a whole facility missing ----------------------------------------------


def test_default_refuses_to_run_without_landlock(capsys, tmp_path, no_landlock):
    rc, err, ran = main(capsys, tmp_path)
    assert (rc, ran) == (125, False), err
    assert len(err) == 1 and "Landlock" in err[0], err


def test_best_effort_runs_without_landlock_and_says_so(capsys, tmp_path, no_landlock):
    rc, err, ran = main(capsys, tmp_path, "--best-effort")
    assert (rc, ran) == (0, True), err
    (line,) = warnings(err)
    assert "landlock not enforced" in line and "capped to 0" in line


def test_no_warnings_silences_the_line(capsys, tmp_path, no_landlock):
    rc, err, ran = main(capsys, tmp_path, "--best-effort", "--no-warnings")
    assert (rc, ran, err) == (0, True, [])


def test_config_file_compatibility_overrides_the_default(capsys, tmp_path, no_landlock):
    rules = [{"Path": str(tmp_path), "Access": int(LandlockAccess.READ_WRITE)}]
    rules += [{"Path": p, "Access": int(LandlockAccess.READ_EXEC)}
              for p in SYSTEM_ROX[1::2]]
    omitted = {"Landlock": {"Rules": rules}}
    rc, err, ran = main(capsys, tmp_path, config=omitted)
    assert (rc, ran) == (125, False), err
    explicit = {"Landlock": {"Rules": rules, "Compatibility": "best_effort"}}
    rc, err, ran = main(capsys, tmp_path, config=explicit)
    assert (rc, ran) == (0, True), err
    assert len(warnings(err)) == 1
    # and an option overrides the file
    rc, err, ran = main(capsys, tmp_path, "--hard-requirement", config=explicit)
    assert (rc, ran) == (125, False), err


def test_compile_refuses_a_plan_without_landlock(capsys, tmp_path, no_landlock):
    plan = tmp_path / "plan"
    capsys.readouterr()
    assert cli.main(["compile", "--rw", str(tmp_path), "-o", str(plan)]) == 125
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "Landlock" in err[0], err
    assert not plan.exists()
    assert cli.main(["compile", "--best-effort", "--rw", str(tmp_path), "-o", str(plan)]) == 0
    assert plan.exists() and "\nlandlock " not in plan.read_text()
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("volt-enforce: warning: landlock not enforced")


def test_compile_warns_for_a_part_dropped(capsys, tmp_path, assume_abi):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"Landlock": {"Rules": [
        {"Path": str(tmp_path), "Access": int(LandlockAccess.READ_WRITE)}],
        "Scopes": ["signal"]}}))
    plan = tmp_path / "plan"
    capsys.readouterr()
    with assume_abi(5):
        assert cli.main(["compile", "--config", str(config), "-o", str(plan)]) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert "warning: landlock scope signal dropped" in line
    assert "\nlandlock " in plan.read_text()
    with assume_abi(5):
        assert cli.main(["compile", "--config", str(config), "--no-warnings", "-o",
                         str(plan)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("mode", ["run", "exec"])
def test_default_refuses_without_landlock_for_real(tmp_path, mode):
    """No simulation: landlock_create_ruleset answers ENOSYS to the inner command."""
    prof = tmp_path / "no-landlock.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["landlock_create_ruleset"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}))
    outer = [VOLT, "run", "--no-contain", "--cap-add", "ALL", "--profile", "none",
             "--seccomp", str(prof), "--", VOLT, mode, "--rw", str(tmp_path), *SYSTEM_ROX]
    marker = tmp_path / "ran"
    cp = subprocess.run([*outer, "--", "touch", str(marker)], capture_output=True, text=True,
                        timeout=60, check=False)
    assert cp.returncode == 125 and not marker.exists(), cp.stderr
    assert "Landlock" in cp.stderr
    cp = subprocess.run([*outer, "--best-effort", "--", "touch", str(marker)],
                        capture_output=True, text=True, timeout=60, check=False)
    assert cp.returncode == 0 and marker.exists(), cp.stderr
    assert "warning: landlock not enforced" in cp.stderr


def test_a_namespace_that_cannot_be_made(tmp_path):
    """A contained outer child has no CAP_SYS_ADMIN: the inner command cannot make
    its IPC and UTS namespaces. The default refuses; best effort runs and says so."""
    # the outer view binds the marker's directory writable (the host's root is read-only
    # there, its /tmp private)
    inner = [VOLT, "run", "--profile", "none", "--seccomp", "unconfined", "--rox", "/",
             "--rw", str(tmp_path), "--", VOLT, "run", "--rw", str(tmp_path), *SYSTEM_ROX]
    marker = tmp_path / "ran"
    cp = subprocess.run([*inner, "--", "touch", str(marker)], capture_output=True, text=True,
                        timeout=60, check=False)
    assert cp.returncode == 125 and not marker.exists(), cp.stderr
    assert "namespace" in cp.stderr
    cp = subprocess.run([*inner, "--best-effort", "--", "touch", str(marker)],
                        capture_output=True, text=True, timeout=60, check=False)
    assert cp.returncode == 0 and marker.exists(), cp.stderr
    lines = [ln for ln in cp.stderr.splitlines() if "warning:" in ln]
    assert any("ipc namespace dropped" in ln for ln in lines), lines
    assert any("uts namespace dropped" in ln for ln in lines), lines


def test_a_filter_that_cannot_load_runs_nothing_at_any_level(tmp_path):
    """seccomp(2) answering ENOSYS: the filter cannot load, and that is never dropped."""
    prof = tmp_path / "no-seccomp.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["seccomp"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}))
    marker = tmp_path / "ran"
    for level in ("--best-effort", "--hard-requirement", None):
        cmd = [VOLT, "run", "--no-contain", "--cap-add", "ALL", "--profile", "none",
               "--seccomp", str(prof), "--", VOLT, "run", "--rw", str(tmp_path), *SYSTEM_ROX,
               "--seccomp", "default", *([level] if level else []), "--", "touch", str(marker)]
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert cp.returncode == 125 and not marker.exists(), (level, cp.stderr)
        assert "seccomp" in cp.stderr, cp.stderr


# ---- the command: a part dropped -------------------------------------------------------


def test_dropped_scopes_warn_one_line_each(capsys, tmp_path, assume_abi):
    rules = [{"Path": str(tmp_path), "Access": int(LandlockAccess.READ_WRITE)}]
    rules += [{"Path": p, "Access": int(LandlockAccess.READ_EXEC)} for p in SYSTEM_ROX[1::2]]
    config = {"Landlock": {"Rules": rules, "Scopes": ["abstract_unix_socket", "signal"]}}
    with assume_abi(5):
        rc, err, ran = main(capsys, tmp_path, config=config)
        assert (rc, ran) == (0, True), err
        lines = warnings(err)
        assert len(lines) == 2, err
        assert all("landlock scope" in ln and "needs ABI 6" in ln for ln in lines), lines
        rc, err, ran = main(capsys, tmp_path, "--hard-requirement", config=config)
        assert (rc, ran) == (125, False), err
    # the kernel has them: nothing dropped, nothing said (but that the contained view
    # lacks this test's working directory)
    rc, err, ran = main(capsys, tmp_path, config=config)
    err = [ln for ln in err if "the view lacks the working directory" not in ln]
    assert (rc, ran, err) == (0, True, [])


@pytest.fixture
def no_pids_controller(monkeypatch):
    """Plan cgroup limits as on a host without the pids controller."""
    real = cgroups_pkg.plan_limits

    def plan(limits, layout=None):
        lay = layout or cgroups_pkg.detect()
        v1 = tuple(m for m in lay.v1 if "pids" not in m.controllers)
        v2 = lay.v2
        if v2 is not None:
            v2 = dataclasses.replace(v2, controllers=tuple(c for c in v2.controllers
                                                           if c != "pids"))
        return real(limits, dataclasses.replace(lay, v1=v1, v2=v2))

    monkeypatch.setattr(cgroups_pkg, "plan_limits", plan)


def test_a_dropped_controller_warns(capsys, tmp_path, no_pids_controller):
    if cgroups_pkg.detect().controller_version("pids") == 2:
        need_cgroup_v2_controller("pids")
    else:
        need_cgroup_v1("pids")
    rc, err, ran = main(capsys, tmp_path, "--pids", "64")
    assert (rc, ran) == (0, True), err
    (line,) = warnings(err)
    assert "cgroup limit pids.max dropped" in line and "pids controller" in line
    rc, err, ran = main(capsys, tmp_path, "--pids", "64", "--hard-requirement")
    assert (rc, ran) == (125, False), err
    assert "pids" in err[0]


# ---- the lines ----------------------------------------------------------------------------


def _report(status: str, dropped: tuple[Dropped, ...]) -> EnforcementReport:
    ll = LandlockReport(status=status, abi=5, kernel_abi=7, errata=0,
                        compatibility="facility_requirement", handled_fs=LandlockAccess(0),
                        handled_net=landlock.LandlockNetAccess(0), scopes=LandlockScope(0),
                        restrict_flags=landlock.RestrictFlag(0), dropped=dropped)
    return EnforcementReport(landlock=ll)


def test_only_weakening_drops_are_downgrades():
    dropped = (Dropped("scope", "SIGNAL", "SIGNAL needs ABI 6, kernel has 5", abi=6),
               Dropped("logging", "SAME_EXEC_OFF", "needs ABI 7", weakens=False),
               Dropped("rule", "READ_DIR", "not a directory", path="/etc/passwd", weakens=False),
               Dropped("port", "BIND_TCP", "no TCP", port=80))
    assert downgrades(_report("partial", dropped)) == [
        "landlock scope signal dropped: SIGNAL needs ABI 6, kernel has 5",
        "landlock port bind_tcp for port 80 dropped: no TCP"]


def test_an_absent_landlock_is_one_line():
    reason = "Landlock ABI capped to 0 (kernel has 7)"
    dropped = tuple(Dropped("fs", n, reason) for n in ("EXECUTE", "WRITE_FILE"))
    dropped += (Dropped("scope", "SIGNAL", reason),)
    assert downgrades(_report("none", dropped)) == [
        f"landlock not enforced: {reason} (dropped fs execute|write_file; scope signal)"]


def test_namespace_cgroup_and_thread_lines():
    rep = EnforcementReport(
        dropped_namespaces={"network": "Operation not permitted"},
        cgroup={"skipped": {"memory.max": "no cgroup hierarchy here has the memory controller",
                            "cgroup2": "no cgroup2 cgroup for placement: EPERM",
                            "memory": "not enabled for statistics: EBUSY",
                            "io.weight": "x has no io.weight; 100 is the default, nothing to change"}},
        calling_thread_only=["capabilities"])
    assert downgrades(rep) == [
        "network namespace dropped: Operation not permitted",
        "cgroup limit memory.max dropped: no cgroup hierarchy here has the memory controller",
        "capabilities reached the calling thread only (other threads stay unrestricted)"]
    assert rep.to_dict()["downgrades"] == downgrades(rep)
