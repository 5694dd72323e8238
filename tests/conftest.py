import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import build_testcore  # noqa: E402
from vm.matrix import pytest_collection_modifyitems, pytest_report_header  # noqa: E402,F401


def pytest_configure(config: pytest.Config) -> None:
    # the test-only extension (tests/build_testcore.py), on the host, before collection imports it
    build_testcore.ensure_built()
    # the smoke run of an installed wheel (.ci/run) names the prefix volt_enforce must come from:
    # the source tree, with its in-place _core, must not shadow the installed copy
    installed = os.environ.get("VOLT_ENFORCE_TEST_INSTALLED")
    if installed:
        import volt_enforce

        where = os.path.realpath(volt_enforce.__file__)
        if not where.startswith(os.path.realpath(installed) + os.sep):
            raise pytest.UsageError(f"volt_enforce is imported from {where}, not from under {installed}")
