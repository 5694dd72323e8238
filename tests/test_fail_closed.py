"""Fail closed: input that is empty, malformed, ambiguous or out of range is an
error naming what was wrong, and the target never runs.

Each test that runs something puts its marker in a directory the sandbox may
write (``--rw DIR``): had the target run, the marker would be there."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from cliargs import SYSTEM_ROX, VOLT
from kernelreq import need_landlock, need_seccomp

import volt_enforce
from volt_enforce import (
    IsolationConfig,
    LandlockAccess,
    LandlockRule,
    PolicyError,
    ResourceLimits,
    server_policy,
)


@pytest.fixture(autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()


def ve(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([VOLT, *args], check=False, capture_output=True, text=True,
                          timeout=60, **kw)


def one_line_error(cp: subprocess.CompletedProcess, *words: str) -> None:
    assert cp.returncode == 125, (cp.returncode, cp.stdout, cp.stderr)
    lines = cp.stderr.splitlines()
    assert len(lines) == 1, cp.stderr
    assert lines[0].startswith("volt-enforce"), lines
    for w in words:
        assert w in lines[0], (w, lines[0])


def run_marked(tmp_path, mode: str, *options: str) -> tuple[subprocess.CompletedProcess, bool]:
    """``volt-enforce MODE --profile none --rw TMP OPTIONS -- touch TMP/ran``: the
    result, and whether the target ran."""
    marker = tmp_path / "ran"
    cp = ve(mode, "--profile", "none", "--rw", str(tmp_path), *SYSTEM_ROX, *options,
            "--", "touch", str(marker), cwd=str(tmp_path))
    return cp, marker.exists()


def test_the_marker_shows_a_run(tmp_path):
    cp, ran = run_marked(tmp_path, "run", "--seccomp", "default", "--cpus", "0")
    assert cp.returncode == 0, cp.stderr
    assert ran


# ---- 1. empty option values ---------------------------------------------------------

EMPTY = ["--seccomp", "--rw", "--ro", "--rox", "--memory", "--memory-high", "--cpus",
         "--cpu-quota", "--config", "--rootfs", "--report", "--bind-tcp", "--connect-tcp",
         "--cpu-weight", "--io-weight", "--pids", "--network", "--cap-add", "--cap-drop"]
EMPTY_CASES = [(m, o) for m in ("run", "exec") for o in EMPTY]


@pytest.mark.parametrize("mode,option", EMPTY_CASES, ids=[f"{m} {o}" for m, o in EMPTY_CASES])
def test_empty_option_value_is_an_error(tmp_path, mode, option):
    cp, ran = run_marked(tmp_path, mode, option, "")
    one_line_error(cp, option)
    assert not ran


@pytest.mark.parametrize("argv,option", [
    (["seccomp", "export", "default", "-o", ""], "--output"),
    (["seccomp", "import", ""], "profile"),
    (["compile", "-o", ""], "--output"),
    (["explain", "--seccomp", ""], "--seccomp"),
    (["explain", "--config", ""], "--config"),
])
def test_empty_values_of_other_commands(tmp_path, argv, option):
    cp = ve(*argv, cwd=str(tmp_path))
    one_line_error(cp, option)
    assert os.listdir(tmp_path) == []  # nothing written in the current directory


def test_config_from_args_refuses_empty_values_without_the_parser():
    from volt_enforce import cli

    args = cli.build_parser().parse_args(["explain"])
    args.seccomp = ""
    with pytest.raises(cli.CLIError, match="--seccomp"):
        cli.config_from_args(args)
    args.seccomp, args.rw = None, [""]
    with pytest.raises(cli.CLIError, match="--rw"):
        cli.config_from_args(args)


# ---- 2. input that crashed or misled --------------------------------------------------


def _config_file(tmp_path, text: str) -> str:
    path = tmp_path / "isolation.json"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_config(tmp_path, depth):
    text = '{"Landlock":' * depth + "null" + "}" * depth
    with pytest.raises(PolicyError) as ei:
        IsolationConfig.from_json(text)
    assert ei.value.field == "document" and "nested" in ei.value.reason
    cp, ran = run_marked(tmp_path, "run", "--config", _config_file(tmp_path, text))
    one_line_error(cp, "--config", "nested")
    assert not ran


def test_deep_lists_are_refused_too():
    with pytest.raises(PolicyError, match="nested"):
        IsolationConfig.from_json('{"Landlock":{"Rules":' + "[" * 50_000 + "]" * 50_000 + "}}")


@pytest.mark.parametrize("quota", ["1" + "0" * 400 + "%", "819201%", "99999999999999999999%",
                                   "inf", "inf%"])
def test_cpu_quota_beyond_any_machine(tmp_path, quota):
    with pytest.raises(PolicyError) as ei:
        ResourceLimits(cpu_quota=quota)
    assert ei.value.field == "Resources.CPUQuota"
    text = json.dumps({"Resources": {"CPUQuota": quota}})
    cp, ran = run_marked(tmp_path, "run", "--config", _config_file(tmp_path, text))
    one_line_error(cp, "Resources.CPUQuota")
    assert not ran
    cp, ran = run_marked(tmp_path, "run", "--cpu-quota", quota)
    one_line_error(cp, "Resources.CPUQuota")
    assert not ran


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants(value):
    with pytest.raises(PolicyError, match="not valid JSON"):
        IsolationConfig.from_json('{"Resources":{"CPUWeight":%s}}' % value)


@pytest.mark.parametrize("text,field", [
    # Go reads "unconfined" (the later key folds onto Seccomp); any other reader "strict"
    ('{"Seccomp": "strict", "\\u017feccomp": "unconfined"}', "\u017feccomp"),
    ('{"Seccomp": "strict", "Seccomp": "unconfined"}', "Seccomp"),
    ('{"Seccomp": "strict", "seccomp": "unconfined"}', "seccomp"),
    ('{"Resources": {"PIDsMax": 5, "PID\\u017fMax": 0}}', "Resources.PID\u017fMax"),
    ('{"Landloc\\u212a": {}, "Landlock": {"Rules": []}}', "Landlock"),
])
def test_two_keys_for_one_field(tmp_path, text, field):
    with pytest.raises(PolicyError) as ei:
        IsolationConfig.from_json(text)
    assert ei.value.field == field
    cp, ran = run_marked(tmp_path, "run", "--config", _config_file(tmp_path, text))
    one_line_error(cp, "--config", field)
    assert not ran


def _writable(tmp_path) -> IsolationConfig:
    pol = server_policy("/")
    pol.rules.append(LandlockRule(path=str(tmp_path), access=LandlockAccess.READ_WRITE))
    return IsolationConfig(landlock=pol, seccomp="default")


def test_cwd_with_a_nul_byte_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    cfg = _writable(tmp_path)
    with pytest.raises(ValueError, match="embedded null byte"):
        volt_enforce.run(["touch", str(marker)], isolation=cfg, cwd=f"{tmp_path}\0elsewhere")
    assert not marker.exists()
    with pytest.raises(ValueError, match="embedded null byte"):
        volt_enforce.Popen(["touch", str(marker)], isolation=cfg, cwd=f"{tmp_path}\0x".encode())
    assert not marker.exists()
    assert volt_enforce.run(["touch", str(marker)], isolation=cfg, cwd=str(tmp_path)).returncode == 0
    assert marker.exists()


@pytest.mark.parametrize("kwargs,name", [
    ({"pass_fds": [1 << 40]}, "pass_fds"),
    ({"pass_fds": [1 << 31]}, "pass_fds"),
    ({"umask": 1 << 40}, "umask"),
    ({"umask": 0o1000}, "umask"),
    ({"user": 1 << 40}, "uid"),
    ({"user": (1 << 32) - 1}, "uid"),  # (uid_t)-1: "leave the uid", never a user
    ({"group": 1 << 40}, "gid"),
    ({"extra_groups": [1 << 40]}, "extra_groups"),
    ({"extra_groups": [(1 << 32) - 1]}, "extra_groups"),
    ({"process_group": 1 << 40}, "process_group"),
])
def test_out_of_range_spawn_arguments(tmp_path, kwargs, name):
    marker = tmp_path / "ran"
    with pytest.raises(ValueError, match=name) as ei:
        volt_enforce.run(["touch", str(marker)], isolation=_writable(tmp_path), **kwargs)
    assert not isinstance(ei.value, OverflowError)
    assert not marker.exists()


# ---- 5. a profile file changed between runs ---------------------------------------------


def test_tightened_profile_file_is_used_by_the_next_run(tmp_path):
    profile = tmp_path / "profile.json"
    work = tmp_path / "work"
    work.mkdir()
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}))
    pol = server_policy("/")
    pol.rules.append(LandlockRule(path=str(work), access=LandlockAccess.READ_WRITE))
    cfg = IsolationConfig(landlock=pol, seccomp=str(profile))

    first = volt_enforce.run(["mkdir", str(work / "first")], isolation=cfg, capture_output=True)
    assert first.returncode == 0, first.stderr
    assert (work / "first").is_dir()

    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    second = volt_enforce.run(["mkdir", str(work / "second")], isolation=cfg,
                              capture_output=True, text=True)
    assert second.returncode != 0
    assert "Operation not permitted" in second.stderr
    assert not (work / "second").exists()
    # and an equal config built anew sees the same file
    third = volt_enforce.run(["mkdir", str(work / "third")],
                             isolation=IsolationConfig(landlock=pol, seccomp=str(profile)))
    assert third.returncode != 0 and not (work / "third").exists()
