"""What the spawn benchmarks share: the program they spawn (/bin/true), the issues'
policy (the server Landlock preset and the default seccomp filter), plain
``subprocess.run`` of it, and a figure paired with that baseline (benchmarks/pairs.py)
as ``ratio_over_subprocess_run``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from pairs import paired

from volt_enforce import IsolationConfig, SeccompProfile, server_policy

TRUE = ["/bin/true"]


def server_default() -> IsolationConfig:
    return IsolationConfig(landlock=server_policy("/"), seccomp=SeccompProfile.DEFAULT)


def plain() -> None:
    subprocess.run(TRUE)


def against_plain(benchmark, fn: Callable[[], object], group: str, name: str, *,
                  baseline: Callable[[], object] = plain, rounds: int = 200) -> None:
    benchmark.group = group
    benchmark.name = name
    paired(benchmark, fn, baseline, rounds=rounds, key="ratio_over_subprocess_run")
