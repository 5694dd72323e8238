"""The pre-restricted spawner (volt_enforce/spawner.py) against plain subprocess.run.

Group "spawner": each figure is a ratio to plain ``subprocess.run(['/bin/true'])``
timed in the same rounds (benchmarks/pairs.py), under the issue's policy: the
server Landlock preset and the default seccomp filter, ``contain=False``.

* one thread: the spawner, and the direct path (``spawner=False``) beside it;
* 8 threads spawning at once: the time per child, against 8 threads of plain
  ``subprocess.run`` (each round starts 8 threads of 25 spawns each);
* the contained default (``Sandbox(cfg)``), which keeps the direct path.
"""

from __future__ import annotations

import threading

import pytest
from kernelreq import need_landlock, need_seccomp
from spawnbench import TRUE, against_plain, plain, server_default

from volt_enforce import Sandbox

THREADS, PER_THREAD = 8, 25


@pytest.fixture(scope="module", autouse=True)
def _kernel():
    need_landlock(6)
    need_seccomp()


def _go(benchmark, fn, name: str, baseline=plain, rounds: int = 200) -> None:
    against_plain(benchmark, fn, "spawner", name, baseline=baseline, rounds=rounds)


def test_spawner_contain_false(benchmark):
    with Sandbox(server_default(), contain=False, spawner=True) as sb:
        assert sb.report.spawn["path"] == "spawner"
        sb.run(TRUE)  # the spawner starts once, outside the rounds
        _go(benchmark, lambda: sb.run(TRUE),
            "Sandbox(contain=False).run via the spawner (server + default seccomp)")


def test_direct_contain_false(benchmark):
    with Sandbox(server_default(), contain=False, spawner=False) as sb:
        _go(benchmark, lambda: sb.run(TRUE),
            "Sandbox(contain=False, spawner=False).run, direct path (server + default seccomp)")


def test_contained_default(benchmark):
    with Sandbox(server_default()) as sb:
        assert sb.report.spawn["path"] == "direct"
        _go(benchmark, lambda: sb.run(TRUE),
            "Sandbox(cfg).run, the contained default (direct path)")


def _threads(fn) -> None:
    def work() -> None:
        for _ in range(PER_THREAD):
            fn()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_spawner_eight_threads(benchmark):
    """Per child, as a ratio: both sides start THREADS x PER_THREAD children a round."""
    with Sandbox(server_default(), contain=False, spawner=True) as sb:
        _threads(lambda: sb.run(TRUE))  # the pool's spawners start outside the rounds
        _go(benchmark, lambda: _threads(lambda: sb.run(TRUE)),
            "8 threads: Sandbox(contain=False).run via the spawner, per child",
            baseline=lambda: _threads(plain), rounds=10)
