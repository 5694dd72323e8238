"""The contained spawn's PID namespace and init (volt_enforce.pidns), against plain
`subprocess.run` in the same rounds (benchmarks/pairs.py).

Group "spawn-pidns": `Sandbox(cfg).run(["/bin/true"])` contained (a PID namespace
whose init, volt-pidinit, starts and reaps the target; IPC/UTS namespaces; a new
session), the same with a user namespace prepared once per Sandbox, the same
sandbox with its children left in the caller's PID namespace (what the init
costs by itself), and `contain=False`. Each records `ratio_over_subprocess_run`;
the containment issue's target for the whole contained spawn is 2.0x.
"""

from __future__ import annotations

import pytest
from kernelreq import need_landlock, need_seccomp, need_userns
from spawnbench import TRUE, against_plain

from volt_enforce import IsolationConfig, Sandbox, SeccompProfile, server_policy


@pytest.fixture(scope="module", autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()


def _config(**kw: object) -> IsolationConfig:
    return IsolationConfig(landlock=server_policy("/"), seccomp=SeccompProfile.DEFAULT, **kw)


def _go(benchmark, fn, name: str) -> None:
    against_plain(benchmark, fn, "spawn-pidns", name)


def test_contained_with_pid_namespace(benchmark):
    with Sandbox(_config()) as sb:
        assert sb.plan.pid_namespace
        _go(benchmark, lambda: sb.run(TRUE), "Sandbox.run contained (PID ns + init)")


def test_contained_with_user_namespace(benchmark):
    need_userns()
    with Sandbox(_config(private_users=True)) as sb:
        _go(benchmark, lambda: sb.run(TRUE), "Sandbox.run contained + PrivateUsers (setns)")


def test_contained_without_pid_namespace(benchmark):
    with Sandbox(_config()) as sb:
        sb.plan.pid_namespace = False  # what the init and the namespace cost, by difference
        _go(benchmark, lambda: sb.run(TRUE), "Sandbox.run contained, no PID ns")


def test_not_contained(benchmark):
    with Sandbox(_config(), contain=False) as sb:
        _go(benchmark, lambda: sb.run(TRUE), "Sandbox(contain=False).run")
