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
