"""Say why: the diagnosis of a failed exec and ``explain --path``, each checked against
what the kernel really does (the exec fails as diagnosed, and runs once the named
option is given), and the CLI's messages."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from kernelreq import need_landlock
from outside import outside_dir

import volt_enforce
from volt_enforce.compile import compiled
from volt_enforce.diagnose import PolicyRights, diagnose_exec, explain_path, option_for
from volt_enforce.model import (
    IsolationConfig,
    LandlockAccess,
    LandlockPolicy,
    LandlockRule,
    server_policy,
)

A = LandlockAccess
VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")
SYSTEM = [LandlockRule(p, A.READ_EXEC) for p in ("/usr", "/lib", "/lib64", "/bin", "/etc")
          if os.path.exists(p)]


@pytest.fixture
def outside() -> Iterator[str]:
    with outside_dir() as d:
        yield d


def script(directory: str, name: str = "run.sh", interp: str = "/bin/sh",
           body: str = "echo hello from the script") -> str:
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(f"#!{interp}\n{body}\n")
    os.chmod(path, 0o755)
    return path


def cli(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VOLT, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


# ---- rights by path: pure logic ------------------------------------------------------------

def test_rights_accumulate_down_directories_and_a_file_rule_covers_only_its_file(tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    f = d / "sub" / "f"
    f.write_text("x")
    other = tmp_path / "other"
    other.write_text("y")
    rights = PolicyRights.of_policy(LandlockPolicy(
        rules=[LandlockRule(str(d), A.READ_ONLY), LandlockRule(str(d / "sub"), A.EXECUTE),
               LandlockRule(str(other), A.READ_FILE)], runtime=False))
    handled = A.all()  # RESOLVE_UNIX, which enforcement handles on its own, is not
    assert rights.granted(str(f)) & handled == A.READ_ONLY | A.EXECUTE
    assert rights.granted(str(d)) & handled == A.READ_ONLY
    assert rights.granted(str(other)) & handled == A.READ_FILE
    assert rights.granted(str(tmp_path)) & handled == 0
    assert not rights.writable(str(f))


def test_option_names_the_directory_and_the_right_kind():
    assert option_for("/srv/x/run.sh", A.EXECUTE) == "--rox /srv/x"
    assert option_for("/srv/x/data", A.READ_FILE) == "--ro /srv/x"
    assert option_for("/srv/x/data", A.WRITE_FILE) == "--rw /srv/x"
    assert "--config" in option_for("/dev/x", A.IOCTL_DEV)


def test_a_path_absent_from_the_view_is_said_so(tmp_path):
    exe = script(str(tmp_path))

    class View:
        def visible(self, path: str) -> bool:
            return not path.startswith(os.path.realpath(str(tmp_path)))

    with compiled(IsolationConfig(landlock=server_policy("/"))) as c:
        fake = SimpleNamespace(landlock=c.ruleset.report, view=View())
        diag = diagnose_exec(fake, exe)  # type: ignore[arg-type]
    assert diag is not None and diag.denied_by == "view"
    assert diag.message() == (f"{exe}: not in the sandbox's view; allow it with "
                              f"--rox {os.path.realpath(str(tmp_path))}")


# ---- diagnosis against the kernel -----------------------------------------------------------

def _spawn(argv: list[str], policy: LandlockPolicy) -> subprocess.CompletedProcess[str]:
    return volt_enforce.run(argv, isolation=IsolationConfig(landlock=policy),
                            capture_output=True, text=True, timeout=60)


def _with_option(policy: LandlockPolicy, option: str) -> LandlockPolicy:
    flag, path = option.split(" ", 1)
    access = {"--rox": A.READ_EXEC, "--ro": A.READ_ONLY, "--rw": A.READ_WRITE}[flag]
    return LandlockPolicy(rules=[*policy.rules, LandlockRule(path, access)])


@pytest.mark.parametrize("case", ["script", "interpreter", "elf_interpreter", "unreadable_script"])
def test_diagnosis_names_what_the_kernel_denies_and_the_option_fixes_it(outside, case):
    need_landlock()
    writable = os.path.join(outside, "work")
    tools = os.path.join(outside, "tools")
    os.makedirs(writable)
    os.makedirs(tools)
    base = [*SYSTEM, LandlockRule(writable, A.READ_WRITE)]
    if case == "script":  # a script in a writable directory: no execute there
        target, role, access = script(writable), "the executable", "execute"
    elif case == "interpreter":  # a script whose #! interpreter lies outside the policy
        interp = os.path.join(tools, "mysh")
        shutil.copy("/bin/sh", interp)
        target = script(writable, interp=interp)
        base.append(LandlockRule(target, A.READ_FILE | A.EXECUTE))
        role, access = f"the interpreter of {target}", "execute"
    elif case == "elf_interpreter":  # a program whose PT_INTERP is a loader outside
        ld = os.path.join(tools, "ld.so")
        shutil.copy(os.path.realpath("/lib64/ld-linux-x86-64.so.2"), ld)
        exe = os.path.join(outside, "prog")
        _build_with_interp(exe, ld)
        target = exe
        base.append(LandlockRule(exe, A.READ_FILE | A.EXECUTE))
        role, access = f"the ELF interpreter of {exe}", "execute"
    else:  # executable but not readable: the kernel opens it for reading too
        scripts = os.path.join(outside, "x")
        os.makedirs(scripts)
        target = script(scripts)
        base.append(LandlockRule(scripts, A.EXECUTE))
        role, access = "the executable", "read_file"
    policy = LandlockPolicy(rules=base)
    with compiled(IsolationConfig(landlock=policy)) as c:
        diag = diagnose_exec(c, target)
        view = getattr(c, "view", None)
    # the view (where the sandbox has one) binds what the rules name, and nothing else
    hidden = view is not None and case in ("interpreter", "elf_interpreter")
    assert diag is not None, case
    # a sandbox with a filesystem view hides what it does not bind: ENOENT, not EACCES
    assert (diag.role, diag.denied_by) == (role, "view" if hidden else "landlock"), diag
    if not hidden:
        assert diag.access == access
    # the kernel agrees: it fails as diagnosed ...
    with pytest.raises(FileNotFoundError if hidden else PermissionError):
        _spawn([target], policy)
    # ... and runs once the option is given
    fixed = _with_option(policy, diag.option)
    with compiled(IsolationConfig(landlock=fixed)) as c:
        assert diagnose_exec(c, target) is None
    r = _spawn([target], fixed)
    assert r.returncode == 0, (case, diag.option, r.stderr)


def _build_with_interp(dst: str, interp: str) -> None:
    """A C program whose PT_INTERP names ``interp``, built by gcc."""
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc is not None, "the test suite needs a C compiler (the C core is built with one)"
    src = dst + ".c"
    with open(src, "w") as f:
        f.write("int main(void) { return 0; }\n")
    subprocess.run([cc, "-o", dst, src, f"-Wl,--dynamic-linker={interp}"], check=True)


def test_explain_path_tells_each_right_and_its_rule(tmp_path):
    with compiled(IsolationConfig(landlock=server_policy("/"))) as c:
        info = explain_path(c, "/usr/bin")
        tmp = explain_path(c, "/tmp")
    rights = {r["right"]: r for r in info["rights"]}
    assert rights["execute"]["allowed"] and rights["execute"]["why"] == "rule /usr (preset)"
    assert not rights["write_file"]["allowed"] and rights["write_file"]["option"] == "--rw /usr/bin"
    trights = {r["right"]: r for r in tmp["rights"]}
    assert not trights["execute"]["allowed"] and trights["execute"]["option"] == "--rox /tmp"


# ---- the CLI -------------------------------------------------------------------------------

def test_cli_script_in_the_writable_work_dir_fails_naming_the_option_and_runs_given_it(tmp_path):
    need_landlock()
    work = tmp_path / "work"
    work.mkdir()
    exe = script(str(work))
    assert subprocess.run([exe], capture_output=True).returncode == 0  # control
    r = cli("run", "--rw", str(work), "--", exe)
    assert r.returncode == 126
    real = os.path.realpath(str(work))
    assert f"Landlock denies execute (no rule grants it); allow it with --rox {real}" in r.stderr
    r = cli("run", "--rw", str(work), "--rox", str(work), "--", exe)
    assert r.returncode == 0 and r.stdout == "hello from the script\n", r.stderr


def test_cli_script_outside_the_policy_runs_with_its_added_rule_and_not_without(outside):
    need_landlock()
    exe = script(outside)
    r = cli("run", "--", exe)
    assert r.returncode == 0 and r.stdout == "hello from the script\n", r.stderr
    assert f"added --rox {exe} for the executable" in r.stderr
    r = cli("run", "--no-auto-rules", "--", exe)
    # outside every rule: Landlock refuses it (EACCES, 126), or a view has no such path (127)
    assert (r.returncode, f"{exe}: Landlock denies execute (no rule grants it); allow it with "
            f"--rox {outside}" in r.stderr) == (126, True) or (
        r.returncode, f"{exe}: not in the sandbox's view; allow it with --rox {outside}"
        in r.stderr) == (127, True), r.stderr
    r = cli("run", "--no-auto-rules", "--rox", outside, "--", exe)
    assert r.returncode == 0 and r.stdout == "hello from the script\n", r.stderr


def test_cli_a_missing_interpreter_is_not_blamed_on_the_sandbox(tmp_path):
    need_landlock()
    exe = script(str(tmp_path), interp="/nonexistent-volt/sh")
    with pytest.raises(FileNotFoundError):  # control: it fails outside too
        subprocess.run([exe], capture_output=True)
    r = cli("run", "--rox", str(tmp_path), "--", exe)  # the script itself may run
    assert r.returncode in (126, 127) and "Landlock" not in r.stderr and "allow it" not in r.stderr
    policy = server_policy("/")
    policy.rules.append(LandlockRule(str(tmp_path), A.READ_EXEC))
    with compiled(IsolationConfig(landlock=policy)) as c:
        assert diagnose_exec(c, exe) is None


def test_cli_a_program_exiting_126_itself_gets_no_diagnosis():
    need_landlock()
    r = cli("run", "--", "sh", "-c", "exit 126")
    assert r.returncode == 126 and "Landlock" not in r.stderr and "allow it" not in r.stderr


def test_cli_explain_path_json_and_text(outside):
    r = cli("explain", "--path", outside, "--path", "/usr/bin/env", "--json")
    assert r.returncode == 0, r.stderr
    infos = json.loads(r.stdout)
    assert [i["path"] for i in infos] == [outside, "/usr/bin/env"]
    ex = {x["right"]: x for x in infos[0]["rights"]}["execute"]
    assert not ex["allowed"] and ex["option"] == f"--rox {outside}"
    r = cli("explain", "--path", "/usr/bin/env")
    assert r.returncode == 0 and "execute" in r.stdout and "rule /usr (preset)" in r.stdout


def test_cli_venv_python_runs_with_its_added_rules_reported(outside):
    """The interpreter CI uses may live outside /usr (pyenv, uv); a venv of it, outside
    every rule, runs under the defaults with the rules that made it run reported."""
    need_landlock()
    ve = os.path.join(outside, "ve")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", ve], check=True, timeout=120)
    py = os.path.join(ve, "bin", "python")
    code = "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix]))"
    r = cli("run", "--", py, "-c", code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0] == ve
    assert f"added --rox {ve} for the Python prefix" in r.stderr
    r = cli("run", "--report", os.path.join(outside, "report.json"), "--", py, "-c", "pass")
    assert r.returncode == 0, r.stderr
    report = json.load(open(os.path.join(outside, "report.json")))
    assert any(x["path"] == ve for x in report["auto_rules"]["rules"])
    r = cli("run", "--no-auto-rules", "--", py, "-c", code)
    assert r.returncode != 0 and "allow it with" in r.stderr
    assert stat.S_ISDIR(os.stat(ve).st_mode)


def test_cli_an_env_script_gets_the_rules_of_what_env_runs(outside):
    """`#!/usr/bin/env python3` with a Python outside /usr first in PATH: env execs it,
    so it needs the rules as if it were the target."""
    need_landlock()
    exe = script(outside, "tool", interp="/usr/bin/env python3",
                 body="import sys; print(sys.prefix)")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    assert subprocess.run([exe], capture_output=True, env=env).returncode == 0  # control
    r = subprocess.run([VOLT, "run", "--", exe], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.path.realpath(r.stdout.strip()) == os.path.realpath(sys.prefix)
    r = subprocess.run([VOLT, "run", "--no-auto-rules", "--rox", outside, "--", exe],
                       capture_output=True, text=True, env=env, timeout=120)
    if os.path.realpath(sys.base_prefix).startswith("/usr/"):
        return  # a system Python needs no rule of its own: nothing to compare with
    # without them env cannot run this Python: it fails, or finds another one in PATH
    assert r.returncode != 0 or os.path.realpath(r.stdout.strip()) != os.path.realpath(sys.prefix)


def test_explain_path_tells_a_right_this_kernel_cannot_enforce(assume_abi):
    """On a Landlock ABI without TRUNCATE (ABI 3) or IOCTL_DEV (ABI 5), those are not
    denied: explain says so, and why, instead of naming a rule."""
    need_landlock()
    with assume_abi(2), compiled(IsolationConfig(landlock=server_policy("/")),
                                 best_effort=True) as c:
        assert c.ruleset is not None and c.ruleset.report.abi == 2
        info = explain_path(c, "/etc/hostname")
    rights = {r["right"]: r for r in info["rights"]}
    for name in ("truncate", "ioctl_dev"):
        assert rights[name]["allowed"] and "on this kernel" in rights[name]["why"], rights[name]
    assert not rights["write_file"]["allowed"]  # handled on ABI 2, no rule grants it


def test_a_view_plan_hides_what_it_neither_binds_nor_owns():
    """The view's plan (binds of host paths, private tmpfs directories and home, a tmpfs
    root): the most specific entry decides what the child sees."""
    from volt_enforce.diagnose import _PlanView

    plan = SimpleNamespace(
        root="tmpfs", home="/root", private={"/tmp": "mode=1777", "/var": "mode=0755"},
        binds=[SimpleNamespace(host="/usr", view="/usr"),
               SimpleNamespace(host="/root/.pyenv/versions/3.11.7", view="/root/.pyenv/versions/3.11.7"),
               SimpleNamespace(host="/tmp/work", view="/tmp/work")],
        symlinks=[("/bin", "usr/bin")], to_view=lambda p: p)
    v = _PlanView(plan)
    assert v.visible("/usr/bin/env") and v.visible("/bin/sh")
    assert v.visible("/root/.pyenv/versions/3.11.7/bin/python3.11")  # bound below the home
    assert not v.visible("/root/.bashrc")  # the private home hides the host's
    assert not v.visible("/tmp/x/run.sh") and v.visible("/tmp/work/run.sh")
    assert not v.visible("/opt/tool") and v.visible("/dev/null")
    assert _PlanView(SimpleNamespace(root="/srv/rootfs", binds=[], private={}, home=None)
                     ).visible("/srv/rootfs/bin/sh")


def test_cli_adds_no_rules_for_another_rootfs(tmp_path):
    """With --rootfs the program is the rootfs's own: rules naming the host's files
    would be the wrong ones."""
    root = tmp_path / "rootfs"
    for d in ("usr", "etc"):
        (root / d).mkdir(parents=True)
    from volt_enforce.cli import _auto_rules, build_parser, config_from_args

    args = build_parser().parse_args(["run", "--rootfs", str(root), "--", "/bin/sh"])
    cfg = config_from_args(args)
    before = list(cfg.landlock.rules)
    assert _auto_rules(args, cfg, ["/bin/sh"]) is None and cfg.landlock.rules == before
    args = build_parser().parse_args(["run", "--", "/bin/sh"])
    assert _auto_rules(args, config_from_args(args), ["/bin/sh"]) is not None


def test_cli_explain_path_describes_the_sandbox_run_makes(outside):
    """explain --path takes run's options: contained, a path outside the policy is absent
    from the view, and what run does with it follows (ENOENT); --no-contain shows the
    host's view, where Landlock is what denies (EACCES)."""
    need_landlock()
    probe = os.path.join(outside, "probe")
    with open(probe, "w") as f:
        f.write("x")

    def read_file(*options):
        r = cli("explain", *options, "--path", probe, "--json")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        return info, {x["right"]: x for x in info["rights"]}["read_file"]

    info, rd = read_file()
    assert "view" in info and not rd["allowed"] and rd["why"] == "not in the sandbox's view"
    r = cli("run", "--", "cat", probe)
    assert r.returncode != 0 and "No such file" in r.stderr, r.stderr
    info, rd = read_file("--no-contain")
    assert "view" not in info and not rd["allowed"] and rd["why"] == "no rule grants it"
    r = cli("run", "--no-contain", "--", "cat", probe)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
