"""Benchmarks: pytest-benchmark tests, run once with --benchmark-disable in the
normal suite (pyproject's addopts) so they never rot, and for real with
`python -m pytest benchmarks --benchmark-enable --benchmark-json=FILE`."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import build_testcore  # noqa: E402


def pytest_configure(config):
    # the test-only extension the benchmarks' C floors live in (also when run without tests/)
    build_testcore.ensure_built()
    # run's and exec's plan cache (volt_enforce.plancache): this run's own, never the host's
    import tempfile

    for var, name in (("VOLT_ENFORCE_PLAN_CACHE", "plans"), ("VOLT_ENFORCE_PLAN_KEY", "key")):
        os.environ[var] = os.path.join(tempfile.mkdtemp(prefix=f"volt-bench-{name}-"), name)


def pytest_unconfigure(config):
    import shutil

    for var in ("VOLT_ENFORCE_PLAN_CACHE", "VOLT_ENFORCE_PLAN_KEY"):
        path = os.environ.get(var, "")
        if os.path.basename(os.path.dirname(path)).startswith("volt-bench-"):
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
