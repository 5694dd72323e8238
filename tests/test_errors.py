"""The exceptions: builtin bases, messages, pickling (pickle and a real process pool),
no errno 0, and check() as the one -errno helper."""

from __future__ import annotations

import concurrent.futures
import copy
import errno
import multiprocessing
import pickle

import pytest
from forked import json_reply

import volt_enforce
from volt_enforce import errors
from volt_enforce.errors import (
    CompatibilityError,
    EnforcementError,
    InstallationError,
    PolicyError,
    StepUnavailableError,
    VoltEnforceError,
    check,
)

ATTRS = ("args", "errno", "strerror", "filename", "step", "detail", "field", "value", "reason",
         "feature", "what", "hint")


def _examples() -> list[BaseException]:
    return [
        VoltEnforceError("something went wrong"),
        PolicyError("Resources.MemoryHard", "12Q", "is not a size"),
        PolicyError("Network.DNS", ["1.2.3.4", None], "is not a list of IP addresses"),
        EnforcementError(errno.EPERM, "landlock_restrict_self", "ruleset fd 5"),
        EnforcementError(errno.ENOENT, "open"),
        StepUnavailableError("user_namespace", "unshare(CLONE_NEWUSER): Operation not permitted"),
        StepUnavailableError("net_namespace"),
        CompatibilityError("LANDLOCK_ACCESS_FS_REFER", "needs ABI 2 (Linux 5.19)"),
        CompatibilityError("Landlock"),
        InstallationError("volt-init", "/x/volt_enforce/_bin/volt-init"),
        InstallationError("volt-init", "/y/volt-init", "build it with pip install ."),
    ]


EXAMPLES = _examples()
IDS = [f"{type(e).__name__}-{i}" for i, e in enumerate(EXAMPLES)]


def _same(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert str(a) == str(b)
    assert repr(a) == repr(b)
    for name in ATTRS:
        assert getattr(a, name, "<absent>") == getattr(b, name, "<absent>"), name


def test_every_exported_class_is_covered():
    classes = {getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)}
    assert classes == {type(e) for e in EXAMPLES}


def test_builtin_bases():
    assert issubclass(PolicyError, ValueError)
    assert issubclass(EnforcementError, OSError)
    assert issubclass(CompatibilityError, EnforcementError)
    assert issubclass(StepUnavailableError, EnforcementError)
    assert issubclass(InstallationError, FileNotFoundError)
    for cls in (PolicyError, EnforcementError, CompatibilityError, StepUnavailableError, InstallationError):
        assert issubclass(cls, VoltEnforceError)
    # the package re-exports the names it always had
    for name in ("VoltEnforceError", "PolicyError", "EnforcementError", "CompatibilityError"):
        assert getattr(volt_enforce, name) is getattr(errors, name)


def test_messages_and_attributes():
    e = EnforcementError(errno.EACCES, "cgroup.procs", "/sys/fs/cgroup/x")
    assert (e.errno, e.step, e.detail) == (errno.EACCES, "cgroup.procs", "/sys/fs/cgroup/x")
    assert str(e) == "cgroup.procs: Permission denied (/sys/fs/cgroup/x)"
    assert e.args == (errno.EACCES, str(e))
    u = StepUnavailableError("user_namespace", "EPERM from unshare")
    assert u.errno == errno.EOPNOTSUPP and str(u) == "user_namespace: not available (EPERM from unshare)"
    c = CompatibilityError("Landlock", "needs ABI 1")
    assert (c.errno, c.feature, c.step) == (errno.EOPNOTSUPP, "Landlock", "unsupported: Landlock")
    p = PolicyError("Resources.MemoryHard", "12Q", "is not a size")
    assert (p.field, p.value, p.reason) == ("Resources.MemoryHard", "12Q", "is not a size")
    assert str(p) == "Resources.MemoryHard: '12Q' is not a size"
    i = InstallationError("volt-init", "/p/volt-init")
    assert (i.errno, i.filename) == (errno.ENOENT, "/p/volt-init")
    assert str(i) == "volt-init is not built: /p/volt-init (reinstall the package)"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("exc", EXAMPLES, ids=IDS)
def test_pickle_round_trip(exc, protocol):
    _same(exc, pickle.loads(pickle.dumps(exc, protocol=protocol)))


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=IDS)
def test_copy_keeps_attributes_set_later(index):
    exc = _examples()[index]  # a fresh one: the note must not reach the other tests
    exc.add_note("while spawning /bin/true")
    for got in (copy.copy(exc), copy.deepcopy(exc), pickle.loads(pickle.dumps(exc))):
        _same(exc, got)
        assert got.__notes__ == ["while spawning /bin/true"]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_raised_in_a_process_pool(method):
    def in_child() -> bool:  # a child of its own: the pool's helper processes are not this process's
        ctx = multiprocessing.get_context(method)
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            # exec is found by name in any worker (a test module may not be importable there):
            # each exception goes to the worker pickled, is raised there and comes back pickled
            futures = [pool.submit(exec, "raise exc", {"exc": exc}) for exc in EXAMPLES]
            for want, fut in zip(EXAMPLES, futures, strict=True):
                got = fut.exception(timeout=60)
                assert got is not None
                _same(want, got)
        return True

    status, reply = json_reply(in_child)
    assert reply == {"ok": True}, reply.get("raised")


@pytest.mark.parametrize("bad", [0, -1, -errno.EPERM, 4096, 1 << 40])
def test_no_errno_zero_or_out_of_range(bad):
    with pytest.raises(ValueError, match="StepUnavailableError"):
        EnforcementError(bad, "landlock", "threads")


@pytest.mark.parametrize("bad", [None, "1", 1.0, True, False])
def test_errno_must_be_an_int(bad):
    with pytest.raises(TypeError, match="errno must be an int"):
        EnforcementError(bad, "landlock")


def test_check_passes_results_and_raises_errno():
    assert check(0, "x") == 0
    assert check(7, "x") == 7
    with pytest.raises(EnforcementError) as ei:
        check(-errno.EBADF, "landlock_restrict_self", "fd 3")
    assert type(ei.value) is EnforcementError
    assert (ei.value.errno, ei.value.step, ei.value.detail) == (errno.EBADF, "landlock_restrict_self", "fd 3")
    with pytest.raises(EnforcementError) as ei:
        check(-errors.MAX_ERRNO, "x")
    assert ei.value.errno == errors.MAX_ERRNO


@pytest.mark.parametrize("bad", [-errors.MAX_ERRNO - 1, -(1 << 31)])
def test_check_rejects_a_malformed_negative_result(bad):
    with pytest.raises(ValueError, match="malformed"):
        check(bad, "seccomp_load")


@pytest.mark.parametrize("bad", [None, -1.0, "-1", True])
def test_check_rejects_a_result_that_is_not_an_int(bad):
    with pytest.raises(TypeError, match="must be an int"):
        check(bad, "seccomp_load")
