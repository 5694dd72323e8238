"""Landlock compatibility: the ABI the library believes the kernel has is capped
to 1..7 (and 0: Landlock absent), and the masking, the report and the errors of
best effort, soft and hard requirements are checked, in part by the real kernel."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import termios
from pathlib import Path

import pytest
from kernelreq import need_landlock
from test_landlock import OK, in_child, open_flags

from volt_enforce import (
    CompatibilityError,
    IsolationConfig,
    LandlockAccess as A,
    LandlockLogging as L,
    LandlockPolicy,
    LandlockRule,
    LandlockScope as S,
    NetworkConfig,
    NetworkMode,
    landlock as ll,
)
from volt_enforce._core import lib

N = ll.LandlockNetAccess
ALL = A.all()
FULL_FS = {1: 0x1FFF, 2: 0x3FFF, 3: 0x7FFF, 4: 0x7FFF, 5: 0xFFFF, 6: 0xFFFF, 7: 0xFFFF}


def everything(tmp: Path, **kw) -> LandlockPolicy:
    """A policy asking for every feature through ABI 7."""
    return LandlockPolicy(
        rules=[LandlockRule(str(tmp), ALL)],
        bind_tcp=[1], connect_tcp=[2],
        scopes=S.ABSTRACT_UNIX_SOCKET | S.SIGNAL,
        logging=L.SAME_EXEC_OFF | L.SUBDOMAINS_OFF,
        runtime=False, **kw)


def expected_drops(abi: int) -> set[tuple[str, str]]:
    drops = set()
    if abi < 2:
        drops.add(("fs", "REFER"))
    if abi < 3:
        drops.add(("fs", "TRUNCATE"))
    if abi < 4:
        drops |= {("net", "BIND_TCP"), ("net", "CONNECT_TCP"), ("port", "BIND_TCP"),
                  ("port", "CONNECT_TCP")}
    if abi < 5:
        drops.add(("fs", "IOCTL_DEV"))
    if abi < 6:
        drops |= {("scope", "ABSTRACT_UNIX_SOCKET"), ("scope", "SIGNAL")}
    if abi < 7:
        drops |= {("logging", "SAME_EXEC_OFF"), ("logging", "SUBDOMAINS_OFF")}
    return drops


@pytest.mark.parametrize("abi", range(1, 8))
def test_best_effort_masks_to_the_abi(tmp_path, abi, assume_abi):
    need_landlock(abi)
    with assume_abi(abi), ll.compile(everything(tmp_path)) as compiled:
        r = compiled.report
        assert compiled.abi == r.abi == abi and r.kernel_abi == ll.kernel_abi()
        assert r.handled_fs == FULL_FS[abi] == ll.fs_rights_for_abi(abi)
        assert r.handled_net == (N.BIND_TCP | N.CONNECT_TCP if abi >= 4 else 0)
        assert r.scopes == (S.ABSTRACT_UNIX_SOCKET | S.SIGNAL if abi >= 6 else 0)
        assert compiled.restrict_flags == r.restrict_flags == (
            L.SAME_EXEC_OFF | L.SUBDOMAINS_OFF if abi >= 7 else 0)
        assert {(d.kind, d.name) for d in r.dropped} == expected_drops(abi)
        assert r.rules[0].access == FULL_FS[abi]
        assert [p.port for p in r.ports] == ([1, 2] if abi >= 4 else [])
        assert r.status == ("full" if abi >= 6 else "partial")
        capped = f"(capped from {ll.kernel_abi()})" if abi < ll.kernel_abi() else ""
        for d in r.dropped:
            assert d.reason.startswith(f"{d.name} needs ABI ") and f"kernel has {abi}" in d.reason
            assert capped in d.reason
        # the kernel takes the masked ruleset and flags
        assert in_child(compiled, lambda: None) == OK


def test_drop_reason_wording(assume_abi):
    need_landlock(3)
    with assume_abi(2), ll.compile(LandlockPolicy(runtime=False)) as compiled:
        reasons = {d.name: d.reason for d in compiled.report.dropped}
    suffix = f" (capped from {ll.kernel_abi()})" if ll.kernel_abi() > 2 else ""
    assert reasons["TRUNCATE"] == "TRUNCATE needs ABI 3, kernel has 2" + suffix


def test_abi_argument_and_assume_abi_take_the_lowest(tmp_path, assume_abi):
    need_landlock(5)
    with ll.compile(everything(tmp_path), abi=3) as a:
        assert a.abi == 3
    with assume_abi(4):
        assert ll.effective_abi() == 4
        assert ll.effective_abi(2) == 2 and ll.effective_abi(6) == 4
        with assume_abi(2):
            assert ll.effective_abi() == 2
        assert ll.effective_abi() == 4
    assert ll.effective_abi() == ll.kernel_abi()
    with pytest.raises(ll.PolicyError):
        ll.compile(None, abi=-1)
    with pytest.raises(ll.PolicyError), assume_abi(True):
        pass


def test_refer_on_abi_1(tmp_path, assume_abi):
    """ABI 1 always denies cross-directory rename and link: not a loss, unless a rule
    grants REFER."""
    need_landlock(1)
    plain = LandlockPolicy(rules=[LandlockRule(str(tmp_path), ALL & ~A.REFER)], runtime=False)
    with assume_abi(1), ll.compile(plain) as compiled:
        assert "REFER" not in {d.name for d in compiled.report.dropped}
        assert any(n.startswith("REFER:") for n in compiled.report.notes)
    with assume_abi(1), ll.compile(everything(tmp_path)) as compiled:
        (refer,) = [d for d in compiled.report.dropped if d.name == "REFER"]
        assert not refer.weakens and "stay denied" in refer.reason


@pytest.mark.parametrize("abi,expect", [(1, errno.EXDEV), (2, OK)])
def test_rename_across_directories_by_abi(tmp_path, abi, expect, assume_abi):
    need_landlock(abi)
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    (tmp_path / "a" / "f").write_text("x")
    with assume_abi(abi), ll.compile(everything(tmp_path)) as compiled:
        assert in_child(compiled, lambda: os.rename(tmp_path / "a" / "f",
                                                    tmp_path / "b" / "f")) == expect


@pytest.mark.parametrize("abi,expect", [(2, OK), (3, errno.EACCES)])
def test_truncate_by_abi(tmp_path, abi, expect, assume_abi):
    need_landlock(abi)
    (tmp_path / "f").write_text("data")
    policy = LandlockPolicy(rules=[LandlockRule(str(tmp_path), A.READ_ONLY | A.WRITE_FILE)],
                            runtime=False)
    with assume_abi(abi), ll.compile(policy) as compiled:
        assert in_child(compiled, lambda: os.truncate(tmp_path / "f", 0)) == expect


@pytest.mark.parametrize("abi,expect", [(4, OK), (5, errno.EACCES)])
def test_ioctl_by_abi(abi, expect, assume_abi):
    need_landlock(abi)
    master, slave = os.openpty()
    name = os.ttyname(slave)
    try:
        policy = LandlockPolicy(rules=[LandlockRule(name, A.READ_FILE | A.WRITE_FILE)],
                                runtime=False)

        def tcgets() -> None:
            fd = os.open(name, os.O_RDWR | os.O_NOCTTY)
            fcntl.ioctl(fd, termios.TCGETS, bytes(64))

        with assume_abi(abi), ll.compile(policy) as compiled:
            assert in_child(compiled, tcgets) == expect
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("abi,expect", [(3, OK), (4, errno.EACCES)])
def test_tcp_by_abi(abi, expect, assume_abi):
    need_landlock(abi)

    def bind() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))

    with assume_abi(abi), ll.compile(LandlockPolicy(bind_tcp=[], runtime=False)) as compiled:
        assert in_child(compiled, bind) == expect


@pytest.mark.parametrize("abi,expect", [(5, OK), (6, errno.EPERM)])
def test_scope_by_abi(abi, expect, assume_abi):
    need_landlock(abi)
    name = f"\0volt-enforce-compat-{os.getpid()}-{abi}"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(name)
        listener.listen(1)

        def connect() -> None:
            with socket.socket(socket.AF_UNIX) as c:
                c.connect(name)

        policy = LandlockPolicy(scopes=["abstract_unix_socket"], runtime=False)
        with assume_abi(abi), ll.compile(policy) as compiled:
            assert in_child(compiled, connect) == expect


# ── hard and soft requirements ──────────────────────────────────────────────

CASES = [
    # (abi, policy keywords, feature named, ABI that has it)
    (1, {"rules_refer": True}, "REFER", 2),
    (2, {}, "TRUNCATE", 3),
    (3, {"bind_tcp": [80]}, "BIND_TCP", 4),
    (3, {"connect_tcp": [80]}, "CONNECT_TCP", 4),
    (4, {}, "IOCTL_DEV", 5),
    (5, {"scopes": ["signal"]}, "SIGNAL", 6),
    (5, {"scopes": ["abstract_unix_socket"]}, "ABSTRACT_UNIX_SOCKET", 6),
    (6, {"logging": ["new_exec_on"]}, "NEW_EXEC_ON", 7),
]


def _policy(tmp: Path, level: str, kw: dict) -> LandlockPolicy:
    kw = dict(kw)
    rights = ALL if kw.pop("rules_refer", False) else A.READ_ONLY
    return LandlockPolicy(rules=[LandlockRule(str(tmp), rights)], compatibility=level,
                          runtime=False, **kw)


@pytest.mark.parametrize("level", ["hard_requirement", "soft_requirement"])
@pytest.mark.parametrize("abi,kw,feature,has", CASES, ids=[c[2] for c in CASES])
def test_requirement_names_the_missing_feature(tmp_path, level, abi, kw, feature, has, assume_abi):
    """The error names the oldest missing feature and the ABI that has it."""
    full = max(has, 5)  # a policy handles every filesystem right, IOCTL_DEV (ABI 5) included
    need_landlock(full)
    before = set(os.listdir("/proc/self/fd"))
    with assume_abi(abi), pytest.raises(CompatibilityError) as exc:
        ll.compile(_policy(tmp_path, level, kw))
    assert exc.value.feature == feature
    assert f"{feature} needs ABI {has}, kernel has {abi}" in str(exc.value)
    assert f"ABI {has} came with Linux {ll.ABI_LINUX[has]}" in str(exc.value)
    assert exc.value.errno == errno.EOPNOTSUPP
    assert set(os.listdir("/proc/self/fd")) == before
    # with an ABI that has everything asked, the same policy compiles
    with assume_abi(full), ll.compile(_policy(tmp_path, level, kw)) as compiled:
        assert compiled.report.status == "full" and compiled.report.dropped == ()


def test_landlock_absent(tmp_path, assume_abi):
    (tmp_path / "f").write_text("x")
    policy = LandlockPolicy(rules=[LandlockRule("/usr", A.READ_ONLY)], runtime=False)
    with assume_abi(0):
        best = ll.compile(policy)
        soft = ll.compile(LandlockPolicy(rules=policy.rules, compatibility="soft_requirement"))
        with pytest.raises(CompatibilityError) as exc:
            ll.compile(LandlockPolicy(rules=policy.rules, compatibility="hard_requirement"))
    assert exc.value.feature == "Landlock" and "ABI 1" in str(exc.value)
    for compiled in (best, soft):
        assert compiled.fd == -1 and compiled.abi == 0 and compiled.report.status == "none"
        assert not compiled.report.enforced
        assert {d.name for d in compiled.report.dropped if d.kind == "fs"} == set(
            ll._names(A, int(ALL)))
        assert in_child(compiled, open_flags(tmp_path / "f", os.O_RDWR)) == OK
        compiled.close()


def test_best_effort_with_everything_dropped_enforces_nothing(assume_abi):
    """Network mode none on ABI 3: TCP cannot be restricted and nothing else was asked."""
    need_landlock(3)
    with assume_abi(3):
        compiled = ll.compile_for(IsolationConfig(network=NetworkConfig(mode=NetworkMode.NONE)))
    assert compiled is not None and compiled.fd == -1 and compiled.report.status == "none"
    assert {(d.kind, d.name) for d in compiled.report.dropped} == {
        ("net", "BIND_TCP"), ("net", "CONNECT_TCP")}


def test_logging_flags_only_without_a_ruleset():
    """ABI 7 lets LOG_SUBDOMAINS_OFF be applied with ruleset fd -1."""
    need_landlock(7)
    plan = ll._plan(ll._Request(logging=int(L.SUBDOMAINS_OFF | L.SAME_EXEC_OFF)), 7, 7)
    compiled = ll._build(plan)
    assert compiled.fd == -1 and compiled.restrict_flags == L.SUBDOMAINS_OFF
    assert [d.name for d in compiled.report.dropped] == ["SAME_EXEC_OFF"]
    assert in_child(compiled, lambda: None) == OK
    assert ll.compile_for(IsolationConfig()) is None


def test_errata_come_from_the_kernel():
    need_landlock(1)
    raw = lib.ve_landlock_errata()
    assert ll.errata() == (raw if raw > 0 else 0)
    with ll.compile(LandlockPolicy(runtime=False)) as compiled:
        assert compiled.report.errata == ll.errata()
