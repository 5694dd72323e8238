"""Import cost: a fresh interpreter that imports the package (and the CLI, which a
`volt-enforce` command pays before it does anything), against `python -c pass`.

Group "import": read each as a ratio to "python -c pass" measured in the same run
(benchmarks/compare.py prints the ratios); the difference of medians is the
import's own cost (the structure issue's budget: at most 15 ms for the package).
`-S` is not used: site-packages is where an installed copy lives.
"""

from __future__ import annotations

import subprocess
import sys

BASELINE = "python -c pass"


def _go(benchmark, code: str, name: str, baseline: str | None = BASELINE) -> None:
    argv = [sys.executable, "-c", code]

    def run() -> None:
        subprocess.run(argv, check=True)

    benchmark.group = "import"
    benchmark.name = name
    if baseline is not None:
        benchmark.extra_info["baseline"] = baseline
    benchmark.pedantic(run, rounds=40, warmup_rounds=4, iterations=1)


def test_python_pass(benchmark):
    _go(benchmark, "pass", BASELINE, baseline=None)


def test_import_package(benchmark):
    _go(benchmark, "import volt_enforce", "python -c 'import volt_enforce'")


def test_import_package_and_run_sandbox(benchmark):
    """What a library user pays for the whole spawn path: model, compile, Landlock,
    seccomp, the C core."""
    _go(benchmark, "from volt_enforce import Sandbox, IsolationConfig",
        "python -c 'from volt_enforce import Sandbox, IsolationConfig'")


def test_import_cli(benchmark):
    _go(benchmark, "import volt_enforce.cli", "python -c 'import volt_enforce.cli'")
