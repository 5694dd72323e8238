"""Landlock ABI 8 to 11 on a kernel that lacks them (the host: ABI 7): each new
feature is reported as dropped under best effort and refused, naming the feature
and the ABI that has it, under a requirement. tests/test_vm_landlock_abi8plus.py
enforces them for real on the matrix's 7.2 and 7.3."""

from __future__ import annotations

import errno
import json
import os
import threading

import pytest
from kernelreq import need_landlock

import volt_enforce
from volt_enforce import (
    Compatibility,
    CompatibilityError,
    EnforcementError,
    IsolationConfig,
    LandlockAccess as A,
    LandlockPolicy,
    LandlockRule,
    LandlockScope,
    PolicyError,
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


def _only_new_features_missing() -> None:
    """A requirement refuses the first feature the kernel lacks: below ABI 7 that is one
    of the policy's own rights (TRUNCATE on 6.1; tests/test_vm_kernel.py covers those),
    so the tests of a requirement on the ABI 8-11 features need ABI 7."""
    need_landlock(7)


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
    _only_new_features_missing()
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
    loud = LandlockPolicy(rules=[LandlockRule(str(tmp_path), A.READ_ONLY)], runtime=False)
    with ll.compile(pol) as rs, ll.compile(loud) as control:
        assert ("rule", "QUIET", str(tmp_path)) in {(d.kind, d.name, d.path)
                                                     for d in rs.report.dropped}
        # silencing the audit log weakens nothing: the status is the loud policy's
        assert rs.report.status == control.report.status and not rs.report.quiet_access_fs
        assert not any(d.weakens for d in rs.report.dropped if d.kind in ("rule", "quiet"))


def test_resolve_unix_is_best_effort_whatever_the_level():
    # the presets' RESOLVE_UNIX is added at enforcement: not asked for by the policy
    _lacking("RESOLVE_UNIX")
    _only_new_features_missing()
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
    if not ll.tsync_supported() and ll.kernel_abi() >= 7:  # below 7: _only_new_features_missing
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


def _apply_self_with_a_thread(cfg: IsolationConfig, secret: str, **kwargs) -> dict:
    """In a forked child with a second thread: apply_self(cfg), then each thread opens
    ``secret``; their errnos (0: opened), the notes, or the refusal."""
    from forked import json_reply

    def child():
        go, done, got = threading.Event(), threading.Event(), []

        def other():
            go.wait()
            try:
                os.close(os.open(secret, os.O_RDONLY))
                got.append(0)
            except OSError as exc:
                got.append(exc.errno)
            done.set()

        threading.Thread(target=other, daemon=True).start()
        try:
            # contain=False: namespaces and capabilities, which reach only the calling
            # thread, are not asked for; Landlock alone is
            report = volt_enforce.apply_self(cfg, contain=False, **kwargs)
        except EnforcementError as exc:
            return {"refused": str(exc)}
        go.set()
        done.wait(30)
        try:
            os.close(os.open(secret, os.O_RDONLY))
            own = 0
        except OSError as exc:
            own = exc.errno
        return {"own": own, "other": got[0] if got else None, "notes": report.notes}

    status, out = json_reply(child)
    assert "ok" in out, out
    return out["ok"]


def test_apply_self_restricts_every_thread_where_the_kernel_has_tsync(tmp_path):
    """A thread that apply_self leaves unrestricted below ABI 8 (the host's 6.18, or the
    ABI capped at 7) is restricted where the kernel has TSYNC (the matrix's 7.2, 7.3).

    TSYNC lifts the refusal where Landlock is the one step that would reach only the
    calling thread: here no_new_privs is not asked for (root may restrict itself without
    it). With no_new_privs and no filter, or with a seccomp profile (which reduces the
    capabilities to Docker's set), apply_self still refuses: prctl's no_new_privs and the
    capability sets are per thread (sandbox.thread_coverage)."""
    need_landlock(1)
    (tmp_path / "ok").write_text("x")
    secret = tmp_path / "secret"
    secret.write_text("s")
    policy = LandlockPolicy(rules=[LandlockRule(str(tmp_path / "ok"), A.READ_FILE)],
                            runtime=False)
    cfg = IsolationConfig(landlock=policy)
    landlock_only = {"no_new_privs": False}

    # the control: below ABI 8 only the calling thread is restricted, and only when
    # that is accepted; otherwise apply_self refuses and says why
    refused = _apply_self_with_a_thread(cfg, str(secret), landlock_abi=7, **landlock_only)
    assert "threads and landlock would reach only the calling one" in refused["refused"]
    assert "TSYNC needs ABI 8" in refused["refused"]
    accepted = _apply_self_with_a_thread(cfg, str(secret), landlock_abi=7, allow_threads=True,
                                         **landlock_only)
    assert accepted["own"] == errno.EACCES and accepted["other"] == 0
    assert any("calling thread only" in n and "TSYNC needs ABI 8" in n
               for n in accepted["notes"])

    got = _apply_self_with_a_thread(cfg, str(secret), **landlock_only)
    if ll.kernel_abi() >= 8:
        assert ll.tsync_supported(), "ABI 8+ but the kernel refused TSYNC"
    if ll.tsync_supported():
        assert got["own"] == got["other"] == errno.EACCES
        assert "Landlock restricts all 2 threads (TSYNC)" in got["notes"]
    else:
        assert f"TSYNC needs ABI 8, kernel has {ll.kernel_abi()}" in got["refused"]

    # the steps TSYNC does not cover still refuse, on every kernel
    nnp = _apply_self_with_a_thread(cfg, str(secret))
    assert "no_new_privs" in nnp["refused"]
    caps = _apply_self_with_a_thread(IsolationConfig(landlock=policy, seccomp="default"),
                                     str(secret))
    assert "threads and capabilities" in caps["refused"]


def test_no_new_privs_is_set_iff_the_restriction_succeeds_where_the_kernel_can(tmp_path):
    """The C spawn path (ve_apply, also volt-init's): with NO_NEW_PRIVS among the restrict
    flags (ABI 11) no prctl is made and the kernel sets no_new_privs with the restriction,
    so a restriction that fails leaves it unset; elsewhere prctl sets it first (the
    control, also on ABI 11 with the ABI capped at 10)."""
    from forked import json_reply

    need_landlock(1)
    cfg = IsolationConfig(landlock=_policy(tmp_path, Compatibility.BEST_EFFORT))

    def failed_restriction(**kwargs) -> list:
        def child():
            import ctypes
            libc = ctypes.CDLL(None)
            sb = volt_enforce.Sandbox(cfg, contain=False, **kwargs)
            flag = bool(sb.plan.c.landlock_flags & ll.RestrictFlag.NO_NEW_PRIVS)
            sb.plan._inject_failure("landlock")  # fails before landlock_restrict_self
            try:
                sb.apply_self()
                return ["applied"]
            except EnforcementError as exc:
                assert exc.step == "landlock", exc
            return [flag, libc.prctl(39, 0, 0, 0, 0)]  # PR_GET_NO_NEW_PRIVS

        status, out = json_reply(child)
        assert "ok" in out, out
        return out["ok"]

    assert failed_restriction(landlock_abi=10) == [False, 1]
    if ll.kernel_abi() >= 11:
        assert ll.no_new_privs_flag_supported()
    if ll.no_new_privs_flag_supported():
        assert failed_restriction() == [True, 0]
    else:
        assert failed_restriction() == [False, 1]


# ---- the CLI's options and the compiled config ----------------------------------------------


def _cli_config(*argv: str):
    from volt_enforce.cli import build_parser, config_from_args

    args = build_parser().parse_args(["explain", *argv])
    return args, config_from_args(args)


def test_cli_udp_and_audit_quiet_options_build_the_policy(tmp_path, monkeypatch):
    from volt_enforce import cli_landlock

    monkeypatch.chdir(tmp_path)
    args, cfg = _cli_config("--bind-udp", "5353", "--bind-udp", "53", "--connect-udp", "53",
                            "--audit-quiet", "logs", "--unix-socket", "run/d.sock")
    pol = cfg.landlock
    assert pol.bind_udp == [53, 5353] and pol.connect_udp == [53]
    assert [(r.path, int(r.access), r.quiet) for r in pol.rules if r.quiet] == [
        (str(tmp_path / "logs"), 0, True)]
    assert pol.quiet_access_fs == A.all()
    assert cli_landlock.unix_sockets(args) == [str(tmp_path / "run/d.sock")]
    doc = json.loads(cfg.to_json())["Landlock"]
    assert doc["BindUDP"] == [53, 5353] and doc["ConnectUDP"] == [53]
    # without them nothing of the kind is asked for
    _, plain = _cli_config()
    assert plain.landlock.bind_udp is None and plain.landlock.connect_udp is None
    assert not plain.landlock.quiet_access_fs and not any(r.quiet for r in plain.landlock.rules)
    # UDP ports alone, with no preset: a policy that leaves the filesystem alone
    _, ports = _cli_config("--profile", "none", "--connect-udp", "53")
    assert ports.landlock.connect_udp == [53] and ports.landlock.bind_udp is None
    assert [(r.path, r.access) for r in ports.landlock.rules] == [("/", A.all())]


@pytest.mark.parametrize("argv, words", [
    (["--bind-udp", "65536"], "--bind-udp: 65536 is not a port"),
    (["--connect-udp", "x"], "--connect-udp: 'x' is not a port number"),
    (["--unix-socket", ""], "--unix-socket: an empty value"),
    (["--audit-quiet", ""], "--audit-quiet: an empty value"),
])
def test_cli_refuses_bad_values_of_the_new_options(argv, words, tmp_path, capsys):
    from volt_enforce.cli import main

    marker = tmp_path / "ran"
    with pytest.raises(SystemExit) as ei:
        main(["run", *argv, "--", "touch", str(marker)])
    assert ei.value.code == 125 and not marker.exists()
    assert words in capsys.readouterr().err


def test_compiled_config_keeps_the_unix_sockets_for_the_view(tmp_path):
    import socket

    from volt_enforce.compile import compile_config

    need_landlock(1)
    sock = str(tmp_path / "d.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(sock)  # a rule needs the socket to exist (where RESOLVE_UNIX is handled)
    cfg = IsolationConfig(landlock=_policy(tmp_path, Compatibility.BEST_EFFORT))
    with compile_config(cfg, unix_sockets=[sock]) as c:
        assert c.unix_sockets == (sock,)
        rules = {r.path: r for r in c.ruleset.report.rules}
        if ll.kernel_abi() >= 9:
            assert rules[sock].access == A.RESOLVE_UNIX and rules[sock].source == "unix_socket"
        else:  # dropped with the right, and said so
            assert sock not in rules
            assert [k.path for k in c.ruleset.report.skipped] == [sock]
            assert any(d.name == "RESOLVE_UNIX" and d.weakens for d in c.ruleset.report.dropped)
        with pytest.raises(PolicyError, match="unix_sockets.*lent ruleset"):
            compile_config(cfg, unix_sockets=[sock], ruleset=c.ruleset)
    with compile_config(cfg) as c:
        assert c.unix_sockets == ()
    with pytest.raises(PolicyError, match=r"unix_sockets\[0\].*absolute"):
        compile_config(cfg, unix_sockets=["d.sock"])
    with volt_enforce.Sandbox(cfg, unix_sockets=[sock], contain=False) as sb:
        assert sb.compiled.unix_sockets == (sock,)
    server.close()


# ---- volt-init's plan records for ABI 10 --------------------------------------------------


def _run_plan(tmp_path, records: list[str]):
    import subprocess
    import tempfile

    from volt_enforce.init_plan import volt_init_path

    plan = tmp_path / "plan"
    plan.write_text("\n".join(["volt-plan 1", "nnp 1", *records, "end"]) + "\n")
    marker = tmp_path / os.path.basename(tempfile.mktemp(prefix="ran-", dir=tmp_path))
    cp = subprocess.run([volt_init_path(), str(plan), "--", "/bin/sh", "-c", f": > {marker}"],
                        check=False, capture_output=True, text=True, timeout=60)
    return cp, marker.exists()


def test_volt_init_takes_the_quiet_fields_and_rule_flags_where_the_kernel_has_them(tmp_path):
    need_landlock(1)
    fs = int(ll.fs_rights_for_abi(min(ll.kernel_abi(), 10)))
    hx = os.fsencode("/").hex()
    allow_all = f"path {fs:x} 0 {hx}"
    quiet_rule = f"path 0 0 {os.fsencode(str(tmp_path)).hex()} {lib.LANDLOCK_ADD_RULE_QUIET:x}"
    plain = _run_plan(tmp_path, [f"landlock {fs:x} 0 0 0", allow_all])
    assert plain[0].returncode == 0 and plain[1], plain[0].stderr  # the control
    quiet = _run_plan(tmp_path, [f"landlock {fs:x} 0 0 0 {int(A.READ_FILE):x} 0 0", allow_all,
                                 quiet_rule])
    if ll.kernel_abi() >= 10:
        assert quiet[0].returncode == 0 and quiet[1], quiet[0].stderr
    else:
        assert quiet[0].returncode == 125 and not quiet[1]
        assert "refused the quiet_* ruleset fields (needs ABI 10)" in quiet[0].stderr
    # a quiet rule on a ruleset without quiet fields: ABI 10 refuses it as older kernels
    # refuse the flag (EINVAL), so the plan writer never asks for one (init_plan)
    rule_only = _run_plan(tmp_path, [f"landlock {fs:x} 0 0 0", allow_all, quiet_rule])
    assert rule_only[0].returncode == 125 and not rule_only[1]
    assert f"cannot add a rule for {tmp_path}: Invalid argument" in rule_only[0].stderr


@pytest.mark.parametrize("records, words", [
    (["landlock 2 0 0 0 4 0"], "malformed"),  # quiet fields come three together
    (["landlock 2 0 0 0", "path 2 0 2f 2"], "unsupported rule flags"),
    (["landlock 2 0 0 0", "path 2 0 2f x"], "bad number"),
])
def test_volt_init_refuses_malformed_abi10_records(tmp_path, records, words):
    need_landlock(1)
    cp, ran = _run_plan(tmp_path, records)
    assert cp.returncode == 125 and not ran and words in cp.stderr, cp.stderr


def test_plans_carry_udp_quiet_and_restrict_flags_as_compiled(tmp_path):
    from volt_enforce.init_plan import compile_plan

    need_landlock(1)
    pol = LandlockPolicy(rules=[LandlockRule(str(tmp_path), A.READ_ONLY),
                                LandlockRule(str(tmp_path / "q"), 0, quiet=True, optional=True)],
                         bind_udp=[0], connect_udp=[53], quiet_access_fs=A.READ_FILE,
                         runtime=False, compatibility=Compatibility.BEST_EFFORT)
    (tmp_path / "q").mkdir()
    cfg = IsolationConfig(landlock=pol)
    from volt_enforce.compile import compile_config

    with compile_config(cfg) as c:
        rep = c.ruleset.report
        text = compile_plan(c)
        flags = c.ruleset.restrict_flags
    lines = text.splitlines()
    landlock = next(ln.split() for ln in lines if ln.startswith("landlock "))
    assert int(landlock[4], 16) == flags
    quiet = [int(rep.quiet_access_fs), int(rep.quiet_access_net), int(rep.quiet_scoped)]
    assert landlock[5:] == ([f"{q:x}" for q in quiet] if any(quiet) else [])
    paths = [ln.split() for ln in lines if ln.startswith("path ")]
    assert [len(p) == 5 for p in paths] == [r.quiet for r in rep.rules]
    ports = {int(ln.split()[2], 16): int(ln.split()[1], 16) for ln in lines
             if ln.startswith("port ")}
    assert ports == {p.port: int(p.access) for p in rep.ports}
    if ll.kernel_abi() >= 10:
        assert ports == {0: int(N.BIND_UDP), 53: int(N.CONNECT_SEND_UDP)} and any(quiet)
        assert [r.quiet for r in rep.rules] == [False, True]
    else:
        assert ports == {} and not any(quiet) and all(len(p) == 4 for p in paths)


def test_check_and_explain_show_the_features_with_their_abi_and_release(tmp_path):
    import subprocess
    import sys

    need_landlock(1)
    cmd = [sys.executable, "-m", "volt_enforce"]
    d = json.loads(subprocess.run([*cmd, "check", "--json"], check=True, capture_output=True,
                                  text=True, timeout=60).stdout)
    assert d["landlock_features"] == json.loads(json.dumps(ll.features()))
    for name, abi, linux in (("TSYNC", 8, "7.0"), ("RESOLVE_UNIX", 9, "7.1"),
                             ("UDP", 10, "7.2"), ("QUIET", 10, "7.2"),
                             ("NO_NEW_PRIVS", 11, "7.3")):
        f = d["landlock_features"][name]
        assert (f["abi"], f["linux"]) == (abi, linux)
        assert f["available"] == (name in ll.features() and ll.features()[name]["available"])
    text = subprocess.run([*cmd, "check"], check=True, capture_output=True, text=True,
                          timeout=60).stdout
    lacking = [n for n, f in ll.features().items() if not f["available"]]
    lacks = next(ln for ln in text.splitlines() if ln.startswith("  lacks  "))
    assert all(f"{n} (ABI " in lacks for n in lacking)
    import socket

    sock = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(sock)
        cp = subprocess.run([*cmd, "explain", "--json", "--unix-socket", sock], check=False,
                            capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    info = json.loads(cp.stdout)
    assert info["landlock_features"] == json.loads(json.dumps(ll.features()))
    assert info["unix_sockets"] == [sock]


def test_a_unix_socket_that_does_not_exist_is_an_error_naming_it(tmp_path):
    """Where RESOLVE_UNIX is handled (ABI 9) the socket's rule opens the path; a missing
    one is refused naming the option's entry. Built directly (a plan handling READ_FILE
    for the socket rule), so that every kernel checks the message."""
    need_landlock(1)
    missing = str(tmp_path / "gone.sock")
    plan = ll._Plan(abi=ll.kernel_abi(), kernel_abi=ll.kernel_abi(),
                    compatibility=Compatibility.HARD_REQUIREMENT, handled_fs=int(A.READ_FILE))
    plan.rules.append(ll._PathRule(missing, int(A.READ_FILE), "unix_socket", False,
                                   "unix_sockets[0]"))
    with pytest.raises(PolicyError) as ei:
        ll._build(plan)
    assert ei.value.field == "unix_sockets[0]" and ei.value.value == missing
    assert "must exist when the sandbox is prepared" in str(ei.value)
    assert "Optional" not in str(ei.value)
