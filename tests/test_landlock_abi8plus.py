"""Landlock ABI 8 to 11 on a kernel that lacks them (the host: ABI 7): each new
feature is reported as dropped under best effort and refused, naming the feature
and the ABI that has it, under a requirement. tests/test_vm_landlock_abi8plus.py
enforces them for real on the matrix's 7.2 and 7.3."""

from __future__ import annotations

import errno
import json
import os

import pytest
from kernelreq import need_landlock

from volt_enforce import (
    Compatibility,
    CompatibilityError,
    LandlockAccess as A,
    LandlockPolicy,
    LandlockRule,
    LandlockScope,
    landlock as ll,
    server_policy,
)
from volt_enforce._core import lib

N = ll.LandlockNetAccess

#: feature -> (the ABI that has it, compile() keyword arguments and policy fields asking it)
FEATURES = {
    "TSYNC": (8, {"all_threads": True}, {}),
    "RESOLVE_UNIX": (9, {"unix_sockets": ["/run/volt-test.sock"]}, {}),
    "BIND_UDP": (10, {}, {"bind_udp": [53]}),
    "CONNECT_SEND_UDP": (10, {}, {"connect_udp": [53]}),
    "quiet_access_fs": (10, {}, {"quiet_access_fs": A.READ_FILE}),
    "quiet_scoped": (10, {}, {"quiet_scoped": LandlockScope.SIGNAL,
                              "scopes": LandlockScope.SIGNAL}),
    "NO_NEW_PRIVS": (11, {"no_new_privs_flag": True}, {}),
}


def _lacking(name: str) -> int:
    need_landlock(1)
    abi = FEATURES[name][0]
    if ll.kernel_abi() >= abi:
        pytest.skip(f"the kernel has {name} (ABI {abi}): tests/test_vm_landlock_abi8plus.py")
    return abi


def _policy(tmp_path, level: Compatibility, **fields) -> LandlockPolicy:
    return LandlockPolicy(rules=[LandlockRule(str(tmp_path), A.READ_ONLY)], runtime=False,
                          compatibility=level, **fields)


@pytest.mark.parametrize("name", list(FEATURES))
def test_best_effort_drops_it_and_says_so(tmp_path, name):
    need, kwargs, fields = FEATURES[name][0], FEATURES[name][1], FEATURES[name][2]
    _lacking(name)
    with ll.compile(_policy(tmp_path, Compatibility.BEST_EFFORT, **fields), **kwargs) as rs:
        dropped = {d.name: d for d in rs.report.dropped}
        assert name in dropped, rs.report.format()
        d = dropped[name]
        assert d.abi == need and f"{name} needs ABI {need}, kernel has {rs.abi}" in d.reason
        assert name in rs.report.format()
        doc = json.loads(json.dumps(rs.report.to_dict()))
        assert name in {x["name"] for x in doc["dropped"]}
        assert not rs.restrict_flags & (ll.RestrictFlag.TSYNC | ll.RestrictFlag.NO_NEW_PRIVS)


@pytest.mark.parametrize("level", [Compatibility.SOFT_REQUIREMENT,
                                   Compatibility.HARD_REQUIREMENT])
@pytest.mark.parametrize("name", list(FEATURES))
def test_requirement_refuses_it_naming_the_abi(tmp_path, name, level):
    need, kwargs, fields = FEATURES[name]
    _lacking(name)
    with pytest.raises(CompatibilityError) as ei:
        ll.compile(_policy(tmp_path, level, **fields), **kwargs)
    assert ei.value.feature == name
    assert f"{name} needs ABI {need}" in str(ei.value)
    if need in ll.ABI_LINUX:
        assert f"Linux {ll.ABI_LINUX[need]}" in str(ei.value)


def test_quiet_rule_dropped_under_best_effort(tmp_path):
    _lacking("quiet_access_fs")
    pol = LandlockPolicy(rules=[LandlockRule(str(tmp_path), A.READ_ONLY, quiet=True)],
                         quiet_access_fs=A.READ_FILE, runtime=False)
    with ll.compile(pol) as rs:
        assert ("rule", "QUIET", str(tmp_path)) in {(d.kind, d.name, d.path)
                                                     for d in rs.report.dropped}
        assert rs.report.status == "full" and not rs.report.quiet_access_fs


def test_resolve_unix_is_best_effort_whatever_the_level():
    # the presets' RESOLVE_UNIX is added at enforcement: not asked for by the policy
    _lacking("RESOLVE_UNIX")
    pol = server_policy("/")
    pol.compatibility = Compatibility.HARD_REQUIREMENT
    with ll.compile(pol) as rs:
        assert rs.report.status == "full"
        assert [d.name for d in rs.report.best_effort] == ["RESOLVE_UNIX"]
        assert "RESOLVE_UNIX" not in {d.name for d in rs.report.dropped}
        assert rs.report.to_dict()["best_effort_dropped"][0]["abi"] == 9
        assert "dropped (best effort) fs RESOLVE_UNIX" in rs.report.format()


def test_resolve_unix_follows_write_file_in_the_presets():
    req = ll._request(server_policy("/"), read_only=False)
    by_path = {r.path: r.access for r in req.rules if r.source == "preset"}
    assert by_path["/tmp"] & A.RESOLVE_UNIX and by_path["/run"] & A.RESOLVE_UNIX
    assert not by_path["/etc"] & A.RESOLVE_UNIX and not by_path["/usr"] & A.RESOLVE_UNIX
    # under ReadOnlyFS nothing is writable, so nothing is connectable either
    ro = ll._request(server_policy("/"), read_only=True)
    assert not any(r.access & A.RESOLVE_UNIX for r in ro.rules)
    plan = ll._plan(ll._request(server_policy("/"), False), 9, 9)
    assert plan.handled_fs & A.RESOLVE_UNIX and not plan.best_effort


def test_quiet_fields_in_the_attribute_are_refused_by_an_older_kernel(tmp_path):
    _lacking("quiet_access_fs")
    read = int(A.READ_FILE)
    # the 48-byte attribute with zero quiet fields is what create_ruleset always sends
    fd = lib.ve_landlock_create_ruleset_quiet(read, 0, 0, 0, 0, 0)
    assert fd >= 0
    os.close(fd)
    assert lib.ve_landlock_create_ruleset_quiet(read, 0, 0, read, 0, 0) == -errno.E2BIG
    # a plan made for ABI 10 on this kernel: E2BIG is reported as a dropped feature
    req = ll._Request(handled_fs=read, quiet_fs=read)
    with ll._build(ll._plan(req, 10, ll.kernel_abi())) as rs:
        (d,) = [d for d in rs.report.dropped if d.kind == "quiet"]
        assert d.name == "quiet_access_fs" and "E2BIG" in d.reason
    req.compatibility = Compatibility.HARD_REQUIREMENT
    with pytest.raises(CompatibilityError, match="E2BIG"):
        ll._build(ll._plan(req, 10, ll.kernel_abi()))


def test_probes_and_features_follow_the_kernel():
    need_landlock(1)
    abi = ll.kernel_abi()
    f = ll.features()
    assert {"TSYNC", "RESOLVE_UNIX", "UDP", "QUIET", "NO_NEW_PRIVS"} <= set(f)
    assert f["TSYNC"]["available"] == ll.tsync_supported() and f["TSYNC"]["abi"] == 8
    if abi < 8:
        assert not ll.tsync_supported()
    assert f["UDP"]["available"] == (abi >= 10)
    assert f["NO_NEW_PRIVS"]["available"] == ll.no_new_privs_flag_supported()
    assert ll.no_new_privs_flag_supported() <= (abi >= 11)
    json.dumps(f)


def test_restrict_flags_for(tmp_path):
    need_landlock(1)
    with ll.compile(_policy(tmp_path, Compatibility.BEST_EFFORT)) as rs:
        base = rs.restrict_flags
        assert rs.restrict_flags_for(all_threads=False) == base & ~ll.RestrictFlag.TSYNC
        assert not rs.restrict_flags_for(no_new_privs=False) & ll.RestrictFlag.NO_NEW_PRIVS
        with_tsync = rs.restrict_flags_for(all_threads=True)
        assert bool(with_tsync & ll.RestrictFlag.TSYNC) == ll.tsync_supported()
    if not ll.tsync_supported():
        with ll.compile(_policy(tmp_path, Compatibility.HARD_REQUIREMENT)) as rs:
            with pytest.raises(CompatibilityError, match="TSYNC"):
                rs.restrict_flags_for(all_threads=True)


def test_udp_ports_in_json_round_trip():
    deny_all = LandlockPolicy(bind_udp=[], connect_udp=None, bind_tcp=[80])
    d = deny_all.to_dict()
    assert d["BindUDP"] == [] and "ConnectUDP" not in d
    back = LandlockPolicy.from_json(deny_all.to_json())
    assert back.bind_udp == [] and back.connect_udp is None and back == deny_all
    quiet = LandlockPolicy(rules=[LandlockRule("/x", 0, quiet=True)],
                           quiet_access_fs=A.READ_FILE, quiet_access_net=["bind_udp"],
                           bind_udp=[5353], quiet_scoped=["signal"], scopes=["signal"])
    doc = quiet.to_dict()
    assert doc["Rules"] == [{"Path": "/x", "Access": 0, "Quiet": True}]
    assert doc["QuietAccessFS"] == int(A.READ_FILE) and doc["QuietAccessNet"] == ["bind_udp"]
    assert LandlockPolicy.from_json(quiet.to_json()) == quiet
    assert "Quiet" not in json.dumps(LandlockPolicy().to_dict())


def test_restrict_self_sets_no_new_privs_by_prctl_below_abi_11(tmp_path):
    from forked import json_reply

    need_landlock(1)
    with ll.compile(_policy(tmp_path, Compatibility.BEST_EFFORT)) as rs:
        def child():
            import ctypes
            libc = ctypes.CDLL(None)
            before = libc.prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS
            rs.restrict_self()
            return [before, libc.prctl(39, 0, 0, 0, 0)]

        status, out = json_reply(child)
    assert out.get("ok") == [0, 1], out
