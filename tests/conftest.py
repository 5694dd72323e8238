import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import build_testcore  # noqa: E402
from vm.matrix import pytest_collection_modifyitems, pytest_report_header  # noqa: E402,F401


@pytest.fixture
def assume_abi(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], contextlib.AbstractContextManager[None]]:
    """For one test: a context manager that caps the Landlock ABI the library believes
    the kernel has (0 acts as if Landlock were absent); nested caps take the lowest.
    Test-only state: the library itself has none (``abi=`` is its per-call cap)."""
    from volt_enforce import landlock as ll

    @contextlib.contextmanager
    def cap(n: int) -> Iterator[None]:
        ll._check_abi("abi", n)
        previous = ll.effective_abi

        def capped(abi: int | None = None) -> int:
            return min(previous(abi), n)

        monkeypatch.setattr(ll, "effective_abi", capped)
        try:
            yield
        finally:
            monkeypatch.setattr(ll, "effective_abi", previous)

    return cap


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A host process of the same uid, the test's own: what attack tests try to reach."""
    p = subprocess.Popen(["sleep", "300"])
    yield p
    p.kill()
    p.wait()


def _host_links() -> set[str]:
    try:
        return set(os.listdir("/sys/class/net"))
    except OSError:
        return set()


@pytest.fixture(scope="session", autouse=True)
def _host_network_untouched() -> Iterator[None]:
    """The host's network namespace (the one pytest runs in) gains no interface during the
    run: network tests build their bridges and veths in namespaces of their own
    (tests/netns_host.py). A test that made one on the host fails the session here."""
    before = _host_links()
    yield
    made = sorted(_host_links() - before)
    if made:
        raise AssertionError(f"the host's network namespace gained interfaces during the run: "
                             f"{', '.join(made)} (network tests must run in a stand-in namespace)")


def pytest_configure(config: pytest.Config) -> None:
    # run's and exec's plan cache (volt_enforce.plancache): this session's own, in a fresh
    # 0700 directory, and its key in another (a test with --rw on one never covers both)
    import tempfile

    for var, name in (("VOLT_ENFORCE_PLAN_CACHE", "plans"), ("VOLT_ENFORCE_PLAN_KEY", "key")):
        os.environ[var] = os.path.join(tempfile.mkdtemp(prefix=f"volt-test-{name}-"), name)
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


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    for var in ("VOLT_ENFORCE_PLAN_CACHE", "VOLT_ENFORCE_PLAN_KEY"):
        path = os.environ.get(var, "")
        if os.path.basename(os.path.dirname(path)).startswith("volt-test-"):
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
