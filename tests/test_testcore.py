"""The test-only C lives in its own extension (tests/build_testcore.py), not in the product."""

from pathlib import Path

import _volt_testcore
import build_testcore

from volt_enforce import _core


def test_product_core_exports_no_test_or_bench_function():
    leaked = [n for n in dir(_core.lib) if n.startswith(("ve_bench_", "ve_test_", "VE_BENCH_"))]
    assert leaked == []


def test_test_extension_has_the_helpers_and_is_current():
    names = set(dir(_volt_testcore.lib))
    assert {"ve_bench_build_ruleset", "ve_bench_fork_apply", "ve_test_int80_getpid",
            "ve_bench_load_ns", "ve_bench_call_ns", "ve_bench_syscall_ns"} <= names
    assert build_testcore.is_current()
    # beside the tests, outside the package: it never ships in a wheel
    assert Path(_volt_testcore.__file__).parent == build_testcore.TESTS
