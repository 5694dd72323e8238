"""The command's start-up with the plan cache (volt_enforce.plancache): a cache hit of
`volt-enforce run -- /bin/true` (the contained default: view, PID namespace, network
none, server Landlock, default seccomp) and of `volt-enforce exec -- /bin/true`,
against `python -c pass` of the same interpreter; and `volt-init run PLAN -- /bin/true`
on a cached plan (server Landlock + default seccomp), against `/bin/true`.

Group "cli": each figure is paired with its baseline in the same rounds
(benchmarks/pairs.py) and reported as ``ratio_over_python_pass`` or
``ratio_over_bin_true`` (targets, issue 18: 1.6x, 1.6x and 1.5x). The cache is a
temporary directory of this module's own; the interpreter may write its bytecode
(PYTHONDONTWRITEBYTECODE is dropped for the commands timed), as an installed copy has
it: otherwise each start would compile the launcher's modules again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
from kernelreq import need_landlock, need_seccomp
from pairs import paired

from volt_enforce.compile import compile_config
from volt_enforce.init_plan import compile_plan, volt_init_path
from volt_enforce.model import IsolationConfig, server_policy

VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")
INIT = volt_init_path()
TRUE = "/bin/true"


@pytest.fixture(scope="module")
def env():
    need_landlock(1)
    need_seccomp()
    if os.geteuid() != 0:
        pytest.skip("the plan cache is root's alone")
    roots = [tempfile.mkdtemp(prefix=f"volt-bench-{n}-") for n in ("plans", "key")]
    e = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    e["VOLT_ENFORCE_PLAN_CACHE"] = os.path.join(roots[0], "plans")
    e["VOLT_ENFORCE_PLAN_KEY"] = os.path.join(roots[1], "key")
    yield e
    import shutil

    for r in roots:
        shutil.rmtree(r, ignore_errors=True)


def _quiet(argv: list[str], env: dict[str, str]):
    def run() -> None:
        cp = subprocess.run(argv, env=env, cwd="/", stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, check=False)
        assert cp.returncode == 0, cp.stderr

    return run


def _hit(argv: list[str], env: dict[str, str]) -> None:
    """Fill the cache, and check the next start is a hit (it never imports the CLI)."""
    subprocess.run(argv, env=env, cwd="/", check=True, capture_output=True)
    cp = subprocess.run([sys.executable, "-X", "importtime", *argv], env=env, cwd="/",
                        check=True, capture_output=True, text=True)
    assert "| volt_enforce.plancache" in cp.stderr and "| volt_enforce.cli" not in cp.stderr


def _cli(benchmark, command: str, env: dict[str, str]) -> None:
    argv = [VOLT, command, "--", TRUE]
    _hit(argv, env)
    benchmark.group = "cli"
    benchmark.name = f"volt-enforce {command} -- /bin/true (cache hit)"
    paired(benchmark, _quiet(argv, env), _quiet([sys.executable, "-c", "pass"], env),
           rounds=60, warmup=5, key="ratio_over_python_pass")


def test_run_cache_hit(benchmark, env):
    _cli(benchmark, "run", env)


def test_exec_cache_hit(benchmark, env):
    _cli(benchmark, "exec", env)


@pytest.mark.parametrize("what", ["server+default", "contained", "empty plan"])
def test_volt_init_run_cached_plan(benchmark, env, tmp_path, what):
    """The empty plan (no Landlock, no seccomp, no capability drop, no namespace; only
    no_new_privs) is volt-init run's floor here: its own exec and the supervised
    child, which any plan pays before the first restriction."""
    cfg = (IsolationConfig() if what == "empty plan"
           else IsolationConfig(landlock=server_policy("/"), seccomp="default"))
    with compile_config(cfg, contain=what == "contained") as c:
        text = compile_plan(c, run=True, kernel_check=True)
    if what == "empty plan":
        assert not any(line.split()[0] in ("landlock", "seccomp", "caps", "pidns", "unshare")
                       for line in text.splitlines() if line), text
    plan = tmp_path / "plan"
    plan.write_text(text)
    benchmark.group = "cli"
    benchmark.name = f"volt-init run PLAN -- /bin/true ({what})"
    paired(benchmark, _quiet([INIT, "run", str(plan), "--", TRUE], env), _quiet([TRUE], env),
           rounds=100, warmup=10, key="ratio_over_bin_true")
