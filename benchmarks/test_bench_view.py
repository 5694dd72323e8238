"""A contained spawn (the filesystem view, IPC/UTS namespaces, a session) of /bin/true,
against plain subprocess.run and against bubblewrap with the equivalent isolation, in
the same run (benchmarks/pairs.py: alternate rounds, the ratio of the medians).

Targets (issue 13): contained ``Sandbox(cfg).run`` at most 2.0x plain; the
``contain=False`` path at most 1.25x. bubblewrap gets ``--unshare-all
--die-with-parent --new-session``, read-only binds of what the server preset grants
on this host, ``--proc /proc --dev /dev --tmpfs /tmp``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from kernelreq import need_landlock, need_seccomp
from spawnbench import TRUE, against_plain, server_default

import volt_enforce
from volt_enforce import Sandbox, server_policy


@pytest.fixture(scope="module", autouse=True)
def _kernel():
    need_landlock(1)
    need_seccomp()
    if os.geteuid() != 0:
        pytest.skip("the view is built by root")


def _go(benchmark, fn, name: str) -> None:
    against_plain(benchmark, fn, "contained spawn", name)


def test_contained_sandbox_run(benchmark):
    with Sandbox(server_default()) as sb:
        assert sb.contained and sb.view is not None
        _go(benchmark, lambda: sb.run(TRUE), "contained Sandbox(cfg).run, prepared once")


def test_contained_run_isolation(benchmark):
    cfg = server_default()
    _go(benchmark, lambda: volt_enforce.run(TRUE, isolation=cfg),
        "contained volt_enforce.run(..., isolation=cfg)")


def test_uncontained_sandbox_run(benchmark):
    with Sandbox(server_default(), contain=False) as sb:
        _go(benchmark, lambda: sb.run(TRUE), "Sandbox(cfg, contain=False).run")


def _bwrap_args() -> list[str] | None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    for rule in server_policy("/").rules:
        p = rule.path
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p) and p not in ("/tmp", "/var", "/run", "/app"):
            args += ["--ro-bind", p, p]
    return args + ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", *TRUE]


def test_peer_bubblewrap_equivalent(benchmark):
    args = _bwrap_args()
    if args is None:
        pytest.skip("peer bubblewrap is not installed (apt-get install bubblewrap)")
    if subprocess.run(args, capture_output=True).returncode != 0:
        pytest.skip("bubblewrap cannot create its namespaces here")
    _go(benchmark, lambda: subprocess.run(args),
        "peer: bubblewrap --unshare-all --die-with-parent --new-session + ro binds")
