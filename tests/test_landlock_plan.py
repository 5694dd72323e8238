"""Pure logic of volt_enforce.landlock: the ABI tables (vectors) and the masking of
a request to an ABI (property tests). No system call is made here."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from volt_enforce import (
    CompatibilityError,
    LandlockAccess as A,
    LandlockLogging as L,
    LandlockPolicy,
    LandlockRule,
    LandlockScope as S,
    landlock as ll,
)

N = ll.LandlockNetAccess
ALL_FS = int(A.all())


def test_abi_vectors():
    assert ALL_FS == 0xFFFF
    assert [int(ll.fs_rights_for_abi(n)) for n in range(9)] == [
        0, 0x1FFF, 0x3FFF, 0x7FFF, 0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]
    assert int(ll.FILE_RIGHTS) == 0x1C007  # RESOLVE_UNIX applies to the socket file
    assert int(ll.DIR_ONLY_RIGHTS) == 0x3FF8
    assert int(ll.WRITE_RIGHTS) == 0x7FF2
    assert int(N.BIND_TCP) == 1 and int(N.CONNECT_TCP) == 2
    assert ll.ABI_LINUX == {1: "5.13", 2: "5.19", 3: "6.2", 4: "6.7", 5: "6.10", 6: "6.12",
                            7: "6.15", 8: "7.0", 9: "7.1", 10: "7.2", 11: "7.3"}
    assert {n: abi for n, (abi, _) in ll.ERRATA.items()} == {1: 4, 2: 6, 3: 1}


def test_request_from_policy_and_read_only():
    policy = LandlockPolicy(rules=[LandlockRule("/a", A.READ_WRITE, optional=True),
                                   LandlockRule("/b", A.WRITE_FILE)], missing_paths="error")
    req = ll._request(policy, read_only=True)
    assert req.handled_fs == ALL_FS
    own = [r for r in req.rules if r.source == "policy"]
    assert [(r.path, r.access, r.skip_missing, r.field) for r in own] == [
        ("/a", int(A.READ_ONLY), True, "Landlock.Rules[0].Path"),
        ("/b", 0, False, "Landlock.Rules[1].Path")]
    runtime = {r.path: r.access for r in req.rules if r.source == "runtime"}
    assert runtime["/dev/null"] == A.READ_FILE | A.WRITE_FILE
    assert runtime["/proc"] == A.READ_ONLY
    plan = ll._plan(req, 7, 7, 0b111)
    assert [s.path for s in plan.skipped] == ["/b"]
    assert "only write rights" in plan.skipped[0].reason

    bare = ll._request(None, read_only=True)
    assert bare.handled_fs == int(ll.WRITE_RIGHTS)
    plan = ll._plan(bare, 7, 7, 0b111)
    assert {r.path: r.access for r in plan.rules} == {
        p: int(A.WRITE_FILE) for p, a in ll.RUNTIME_RULES if a & A.WRITE_FILE}

    assert ll._request(None, read_only=False).rules == []
    no_runtime = LandlockPolicy(runtime=False)
    assert ll._request(no_runtime, read_only=False).rules == []


def test_errata_notes_name_unfixed_errata_of_features_in_use():
    req = ll._Request(handled_fs=ALL_FS, bind_tcp=[1], scopes=int(S.SIGNAL))
    notes = ll._plan(req, 7, 7, errata_mask=0).notes
    assert [n.split(":")[0] for n in notes if n.startswith("erratum")] == [
        "erratum 1 is not fixed in this kernel", "erratum 2 is not fixed in this kernel",
        "erratum 3 is not fixed in this kernel"]
    assert "MPTCP" in next(n for n in notes if n.startswith("erratum 1"))
    assert not [n for n in ll._plan(req, 7, 7, errata_mask=0b111).notes
                if n.startswith("erratum")]
    # erratum 2 concerns SIGNAL only
    only_unix = ll._Request(scopes=int(S.ABSTRACT_UNIX_SOCKET))
    assert not [n for n in ll._plan(only_unix, 6, 6, 0).notes if n.startswith("erratum")]


ports = st.none() | st.lists(st.integers(0, 65535), max_size=4)
requests = st.builds(
    ll._Request,
    handled_fs=st.sampled_from([0, ALL_FS, int(ll.WRITE_RIGHTS)]) | st.integers(0, ALL_FS),
    rules=st.lists(st.builds(ll._PathRule, path=st.just("/x"), access=st.integers(1, ALL_FS),
                             source=st.sampled_from(["policy", "preset", "runtime"]),
                             skip_missing=st.booleans(), field=st.just("f")), max_size=4),
    bind_tcp=ports,
    connect_tcp=ports,
    scopes=st.integers(0, 3),
    logging=st.integers(0, 7),
)
abis = st.integers(1, 8)


@settings(max_examples=300, deadline=None)
@given(requests, abis)
def test_best_effort_keeps_only_what_the_abi_has(req, abi):
    plan = ll._plan(req, abi, 8)
    assert plan.handled_fs == req.handled_fs & ll.fs_rights_for_abi(abi)
    want_net = (1 if req.bind_tcp is not None else 0) | (2 if req.connect_tcp is not None else 0)
    assert plan.handled_net == (want_net if abi >= 4 else 0)
    assert plan.scopes == (req.scopes if abi >= 6 else 0)
    if plan.handled_fs or plan.handled_net or plan.scopes:
        assert plan.restrict_flags == (req.logging if abi >= 7 else 0)
    else:
        assert plan.restrict_flags == (req.logging & L.SUBDOMAINS_OFF if abi >= 7 else 0)
    for rule in plan.rules:
        assert rule.access and not rule.access & ~plan.handled_fs
    for port, access in plan.ports.items():
        assert access and not access & ~plan.handled_net
        assert bool(access & 1) == (port in (req.bind_tcp or ()))
        assert bool(access & 2) == (port in (req.connect_tcp or ()))
    # every requested right is either kept, dropped with a reason, or REFER noted on ABI 1
    dropped_fs = {d.name for d in plan.dropped if d.kind == "fs"}
    for name in ll._names(A, req.handled_fs):
        kept = plan.handled_fs & A[name]
        noted = name == "REFER" and any(n.startswith("REFER:") for n in plan.notes)
        assert bool(kept) + (name in dropped_fs) + noted == 1, name
    for d in plan.dropped:
        if d.abi is not None:
            assert d.abi > abi and f"needs ABI {d.abi}, kernel has {abi}" in d.reason
    assert [d.abi or 0 for d in plan.dropped] == sorted(d.abi or 0 for d in plan.dropped)


@settings(max_examples=200, deadline=None)
@given(requests, abis, abis)
def test_a_newer_abi_never_handles_less(req, a, b):
    lo, hi = sorted((a, b))
    p, q = ll._plan(req, lo, 8), ll._plan(req, hi, 8)
    assert p.handled_fs & ~q.handled_fs == 0
    assert p.handled_net & ~q.handled_net == 0
    assert p.scopes & ~q.scopes == 0
    assert len(p.dropped) >= len(q.dropped)


@settings(max_examples=200, deadline=None)
@given(requests, abis, st.sampled_from(["soft_requirement", "hard_requirement"]))
def test_requirements_fail_exactly_when_best_effort_drops(req, abi, level):
    best = ll._plan(req, abi, 8)
    req.compatibility = ll.Compatibility(level)
    if best.dropped:
        with pytest.raises(CompatibilityError) as exc:
            ll._plan(req, abi, 8)
        assert exc.value.feature == best.dropped[0].name
        assert best.dropped[0].reason in str(exc.value)
    else:
        strict = ll._plan(req, abi, 8)
        assert strict.handled_fs == best.handled_fs and strict.dropped == []


@settings(max_examples=100, deadline=None)
@given(requests)
def test_without_landlock(req):
    asked = bool(req.handled_fs or req.bind_tcp is not None or req.connect_tcp is not None
                 or req.scopes or req.logging)
    plan = ll._plan(req, 0, 0, absent="Landlock is not built into this kernel")
    assert not plan.enforces and plan.rules == [] and plan.ports == {}
    assert bool(plan.absent) == asked
    req.compatibility = ll.Compatibility.SOFT_REQUIREMENT
    assert not ll._plan(req, 0, 0, absent="x").enforces
    req.compatibility = ll.Compatibility.HARD_REQUIREMENT
    if asked:
        with pytest.raises(CompatibilityError, match="Landlock"):
            ll._plan(req, 0, 0, absent="x")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, ALL_FS), max_size=4))
def test_read_only_never_grants_a_write_right(rights):
    policy = LandlockPolicy(rules=[LandlockRule(f"/p{i}", a or 1) for i, a in enumerate(rights)])
    req = ll._request(policy, read_only=True)
    assert req.handled_fs & ll.WRITE_RIGHTS == ll.WRITE_RIGHTS
    for r in req.rules:
        allowed = int(A.WRITE_FILE) if r.source == "runtime" and r.path.startswith("/dev/") else 0
        assert r.access & ll.WRITE_RIGHTS & ~allowed == 0


def test_bad_arguments_change_nothing():
    with pytest.raises(ll.PolicyError, match="abi"):
        ll.compile(None, abi="7")
    with pytest.raises(ll.PolicyError, match="ReadOnlyFS"):
        ll.compile(None, read_only=1)
    with pytest.raises(ll.PolicyError, match="LandlockPolicy"):
        ll.compile({"Rules": []})
    with pytest.raises(ll.PolicyError, match="IsolationConfig"):
        ll.compile_for(LandlockPolicy())
