"""The kernel matrix's pytest hooks (tests/conftest.py imports them).

Tests marked ``kernel_matrix`` are meant for the matrix's VM only (a second
kernel booted by .ci/kernel-matrix, which sets VOLT_ENFORCE_VM_KERNEL=1):
elsewhere they are deselected, so they neither run nor count as skipped. In
the VM the session header shows what the kernel offers.
"""

from __future__ import annotations

import os

import pytest

IN_VM = os.environ.get("VOLT_ENFORCE_VM_KERNEL") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_VM:
        return
    vm_only = [it for it in items if it.get_closest_marker("kernel_matrix") is not None]
    if vm_only:
        config.hook.pytest_deselected(items=vm_only)
        items[:] = [it for it in items if it.get_closest_marker("kernel_matrix") is None]


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not IN_VM:
        return None
    import volt_enforce

    return ["kernel matrix VM:"] + ["  " + line for line in volt_enforce.probe().format().splitlines()]
