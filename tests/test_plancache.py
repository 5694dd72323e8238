"""The plan cache of run and exec (volt_enforce.plancache, volt_enforce._launch).

A hit is told from a miss by what the command imported (``python -X importtime``): a
hit execs volt-init before the CLI is imported. The session's cache is a temporary
directory of its own (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys

import pytest
from cliargs import imported_without_site
from netns_host import in_stand_in_host

from volt_enforce import plancache

VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the plan cache is root's alone")


def ve(*args: str, cwd: str = "/", env: dict | None = None, timeout: int = 60):
    """(returncode, stdout, stderr without the import lines, whether it was a hit)."""
    cp = subprocess.run([sys.executable, "-X", "importtime", VOLT, *args], capture_output=True,
                        text=True, cwd=cwd, timeout=timeout, env=env)
    # an import line is one write, but may land inside a line of the child's (a miss
    # imports what fills the cache while the child runs): taken out wherever it is
    imports = [m.rstrip() for m in re.findall(r"import time:[^\n]*", cp.stderr)]
    assert any(ln.endswith("| volt_enforce.plancache") or ln.endswith("| volt_enforce.cli")
               for ln in imports), "the import lines are the test's only witness"
    hit = not any(ln.endswith("| volt_enforce.cli") for ln in imports)
    err = re.sub(r"import time:[^\n]*\n?", "", cp.stderr).rstrip("\n")
    return cp.returncode, cp.stdout, err, hit


def entries() -> list[str]:
    d = plancache.cache_dir()
    assert d is not None
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


@pytest.fixture(autouse=True)
def empty_cache():
    plancache.clear()
    yield
    plancache.clear()


def miss_then_hit(*args: str, cwd: str = "/"):
    first = ve(*args, cwd=cwd)
    second = ve(*args, cwd=cwd)
    assert not first[3], "the first start compiles"
    assert second[3], f"the second start is a hit: {second}"
    return first[:3], second[:3]


# ---- hits behave as misses --------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["run", "--", "sh", "-c", "echo out; echo err >&2; exit 7"],
    ["run", "--", "sh", "-c", "touch /usr/volt-x; echo $?"],                   # a denial
    ["run", "--", "sh", "-c", "cat /proc/net/dev | tail -n +3 | cut -d: -f1"],  # network none
    ["run", "--", "sh", "-c", "echo $$; hostname; ls /tmp | wc -l"],         # PID 2, UTS, view
    ["run", "--", "sh", "-c", "kill -TERM $$"],                               # 128+15
    ["run", "--seccomp", "strict", "--", "sh", "-c", "unshare -U true; echo $?"],
    ["run", "--no-contain", "--profile", "none", "--ro", "/", "--", "sh", "-c",
     "touch /var/tmp/volt-x 2>&1; echo $?"],
    ["run", "--pids", "16", "--memory", "64M", "--", "sh", "-c", "echo limited"],
    ["exec", "--", "sh", "-c", "echo $$ >/dev/null; touch /usr/volt-x; echo $?"],
    ["exec", "--no-contain", "--profile", "none", "--ro", "/", "--", "sh", "-c",
     "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; touch /var/tmp/volt-x; echo $?"],
])
def test_a_hit_behaves_as_the_miss(args):
    miss, hit = miss_then_hit(*args)
    assert hit == miss
    assert miss[0] != 125, miss


def test_a_child_that_may_write_the_cache_is_never_cached():
    """--no-contain with the server profile may write /tmp, where this session's cache
    is: never cached, each start compiles."""
    d = plancache.cache_dir() or ""
    assert d.startswith("/tmp/")
    for _ in range(2):
        assert not ve("exec", "--no-contain", "--", "/bin/true")[3]
    assert entries() == []


def test_the_cwd_outside_the_view_is_said_alike(tmp_path):
    miss, hit = miss_then_hit("run", "--", "pwd", cwd=str(tmp_path))
    assert hit == miss
    assert "the view lacks the working directory" in miss[2] and miss[1] == "/\n"
    miss, hit = miss_then_hit("run", "--no-warnings", "--", "pwd", cwd=str(tmp_path))
    assert hit == miss and miss[2] == ""


def test_exec_hit_keeps_the_pid_and_the_warnings(tmp_path):
    cp = subprocess.run([VOLT, "exec", "--best-effort", "--", "sh", "-c", "echo $$"],
                        capture_output=True, text=True, cwd="/")
    proc = subprocess.Popen([VOLT, "exec", "--best-effort", "--", "sh", "-c", "echo $$"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    out, err = proc.communicate(timeout=60)
    assert out.strip() == str(proc.pid)  # volt-init exec'd the target in place
    assert err == cp.stderr


def test_a_rw_path_stays_writable_on_a_hit(tmp_path):
    d = tmp_path / "work"
    d.mkdir()
    for i in range(2):
        rc, out, err, hit = ve("run", "--rw", str(d), "--", "sh", "-c", f"echo {i} > {d}/f")
        assert (rc, hit) == (0, i == 1), err
        assert (d / "f").read_text() == f"{i}\n"


def test_the_cgroup_of_a_hit_is_removed():
    def volt_cgroups() -> set[str]:
        out = set()
        for root, dirs, _ in os.walk("/sys/fs/cgroup"):
            out.update(os.path.join(root, d) for d in dirs if d.startswith("volt-init-"))
            dirs[:] = [d for d in dirs if not d.startswith(("system.slice", "user.slice"))]
        return out

    before = volt_cgroups()
    # the library also places the child in the memory hierarchy of a v1 host (for its
    # figures); the limits are the same
    miss, hit = miss_then_hit("run", "--pids", "8", "--", "sh", "-c", "cat /proc/self/cgroup | grep -c volt")
    assert hit[0] == miss[0] == 0
    assert int(miss[1]) >= 1 and int(hit[1]) >= 1  # the child was in a cgroup of its own
    assert volt_cgroups() == before


# ---- what is never cached ------------------------------------------------------------------


@pytest.mark.parametrize("extra", [["--why"], ["--report", "/dev/null"], ["--private-users"],
                                   ["--net", "none"]])
def test_options_that_are_never_served_from_the_cache(extra):
    args = ["run", *extra, "--", "/bin/true"]
    for _ in range(2):
        rc, out, err, hit = ve(*args)
        assert not hit
    assert entries() == []
    # the control: without the option the second start is a hit
    miss_then_hit("run", "--", "/bin/true")


def _private_network_twice() -> list[list]:
    return [list(ve("run", "--network", "private", "--", "/bin/true")[::3]) for _ in range(2)]


def test_a_private_network_is_never_served_from_the_cache():
    # in a stand-in host's network namespace: the bridge it makes never reaches the machine's own
    assert in_stand_in_host(_private_network_twice) == [[0, False], [0, False]]
    assert entries() == []
    miss_then_hit("run", "--", "/bin/true")


def test_a_denied_exec_is_not_cached(tmp_path):
    prog = tmp_path / "prog"
    prog.write_text("#!/bin/sh\necho ran\n")
    prog.chmod(0o755)
    for _ in range(2):
        rc, out, err, hit = ve("exec", "--no-auto-rules", "--no-contain", "--", str(prog))
        assert rc == 126 and not hit, (rc, err)
    assert entries() == []


# ---- a policy change is another key ---------------------------------------------------------


def test_a_config_change_invalidates(tmp_path):
    cfg = tmp_path / "isolation.json"
    from volt_enforce import LandlockAccess

    rx, rw = int(LandlockAccess.READ_EXEC), int(LandlockAccess.all())
    cfg.write_text(json.dumps({"Landlock": {"Rules": [{"Path": "/", "Access": rx}]}}))
    args = ["run", "--config", str(cfg), "--no-contain", "--", "sh", "-c", "touch /var/tmp/volt-cfg; echo $?"]
    miss, hit = miss_then_hit(*args)
    assert hit == miss and miss[1].strip() != "0"
    cfg.write_text(json.dumps({"Landlock": {"Rules": [{"Path": "/", "Access": rw}]}}))
    try:
        rc, out, err, was_hit = ve(*args)
        assert not was_hit and out.strip() == "0", err
    finally:
        if os.path.exists("/var/tmp/volt-cfg"):
            os.unlink("/var/tmp/volt-cfg")


def test_a_seccomp_profile_change_invalidates(tmp_path):
    prof = tmp_path / "profile.json"
    allow = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    deny = {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    prof.write_text(json.dumps(allow))
    args = ["run", "--seccomp", str(prof), "--", "sh", "-c", "mkdir /tmp/d && echo made"]
    miss, hit = miss_then_hit(*args)
    assert hit == miss and miss[1] == "made\n"
    prof.write_text(json.dumps(deny))
    rc, out, err, was_hit = ve(*args)
    assert not was_hit and out == "" and rc != 0


def test_an_option_change_invalidates():
    miss_then_hit("run", "--", "sh", "-c", "touch /usr/volt-x 2>/dev/null; echo $?")
    rc, out, err, hit = ve("run", "--rw", "/usr", "--", "sh", "-c", "touch /usr/volt-x 2>/dev/null; echo $?")
    try:
        assert not hit and out == "0\n"
    finally:
        if os.path.exists("/usr/volt-x"):
            os.unlink("/usr/volt-x")


def test_a_changed_program_invalidates(tmp_path):
    prog = tmp_path / "prog"
    prog.write_text("#!/bin/sh\necho one\n")
    prog.chmod(0o755)
    miss, hit = miss_then_hit("run", "--rox", str(tmp_path), "--", str(prog))
    assert miss[1] == "one\n"
    prog.write_text("#!/bin/sh\necho two\n")
    rc, out, err, was_hit = ve("run", "--rox", str(tmp_path), "--", str(prog))
    assert not was_hit and out == "two\n"


def test_cache_clear():
    miss_then_hit("run", "--", "/bin/true")
    cp = subprocess.run([VOLT, "cache", "clear"], capture_output=True, text=True, check=True)
    assert cp.stdout.startswith("removed 1 cached plan")
    assert entries() == []
    assert not ve("run", "--", "/bin/true")[3]


# ---- tampering ------------------------------------------------------------------------------


def _entry_path() -> str:
    (name,) = entries()
    return os.path.join(plancache.cache_dir() or "", name)


@pytest.mark.parametrize("tamper", ["plan", "mode", "owner", "dir_mode", "link", "key"])
def test_a_tampered_entry_is_a_miss(tamper):
    args = ("run", "--", "sh", "-c", "touch /usr/volt-x 2>/dev/null; echo $?")
    miss_then_hit(*args)
    path = _entry_path()
    if tamper == "plan":  # the MAC no longer matches: the Landlock ruleset dropped
        data = open(path, "rb").read()
        data = b"\n".join(ln for ln in data.split(b"\n") if not ln.startswith((b"landlock ", b"path ")))
        open(path, "wb").write(data)
    elif tamper == "mode":
        os.chmod(path, 0o644)
    elif tamper == "owner":
        os.chown(path, 65534, 0)
    elif tamper == "dir_mode":
        os.chmod(os.path.dirname(path), 0o755)
    elif tamper == "link":
        os.link(path, path + ".hard")
    elif tamper == "key":
        os.unlink(plancache.key_path())
    try:
        rc, out, err, hit = ve(*args)
        assert not hit and out == "1\n"
    finally:
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.exists(path + ".hard"):
            os.unlink(path + ".hard")
    assert not os.path.exists("/usr/volt-x")


def digest(args) -> str:
    """The key of ``args`` as the command computes it (its cwd is the tests' "/")."""
    cp = subprocess.run([sys.executable, "-c", "import sys; from volt_enforce import plancache; "
                         "print(plancache.Request.from_argv(sys.argv[1:]).digest())", *args],
                        capture_output=True, text=True, cwd="/", check=True)
    return cp.stdout.strip()


def _rm(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)


def _forge_permissive(args: tuple[str, ...]) -> bytes:
    """An entry for ``args`` whose plan is that of the same command with --rw /usr, MAC'd
    with the current key: what an attacker who can write the cache would plant."""
    permissive = ["run", "--rw", "/usr", *args[1:]]
    try:
        assert ve(*permissive)[1] == "0\n"  # fills the permissive entry
    finally:
        _rm("/usr/volt-x")
    pd, d = digest(permissive), digest(args)
    pdata = open(os.path.join(plancache.cache_dir() or "", pd), "rb").read()
    body = pdata.split(b"\n", 1)[1].replace(pd.encode(), d.encode())
    secret = open(plancache.key_path(), "rb").read()
    plancache.clear()
    return b"mac " + plancache._mac(secret, body).hex().encode() + b"\n" + body


def _plant(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.close(fd)


ARGS = ("run", "--", "sh", "-c", "touch /usr/volt-x 2>/dev/null; echo $?")


def test_control_a_forged_entry_with_the_key_is_taken():
    """The control of the attacks below: the forged entry, planted by the test itself
    with the real key, is served (so the attacks could succeed if the cache let them)."""
    forged = _forge_permissive(ARGS)
    _plant(os.path.join(plancache.cache_dir() or "", digest(ARGS)), forged)
    try:
        rc, out, err, hit = ve(*ARGS)
        assert hit and out == "0\n"
    finally:
        _rm("/usr/volt-x")


@pytest.mark.parametrize("command, where", [
    ("run", "cache"), ("run", "parent"), ("run", "key_dir"), ("run", "both"),
    ("exec", "cache"), ("exec", "parent"),
    # an exec'd child that may write the key's directory outlives the command: the key's
    # default place is the installed package, which such a child could rewrite anyway
])
def test_attack_a_child_that_may_write_the_cache_cannot_plant_a_plan(tmp_path, where, command):
    """A child given --rw on the cache directory, on its parent, or on the key's
    directory writes a forged entry (and the key it was MAC'd with) for the next run:
    that run compiles again, and the touch stays denied."""
    forged = _forge_permissive(ARGS)
    name = digest(ARGS)
    d = plancache.cache_dir() or ""
    key = plancache.key_path()
    secret = open(key, "rb").read()
    stash = tmp_path / "stash"
    stash.mkdir()
    (stash / "entry").write_bytes(forged)
    (stash / "key").write_bytes(secret)
    targets = {"cache": [d], "parent": [os.path.dirname(d)], "key_dir": [os.path.dirname(key)],
               "both": [d, os.path.dirname(key)]}[where]
    rw = [a for t in targets for a in ("--rw", t)]
    script = (f"mkdir -p {d} {os.path.dirname(key)}; "
              f"cat {stash}/entry > {d}/{name} && chmod 600 {d}/{name} && "
              f"cat {stash}/key > {key} && chmod 600 {key} && echo planted")
    rc, out, err, hit = ve(command, *rw, "--ro", str(stash), "--", "sh", "-c", script)
    assert out == "planted\n", err  # the child could write there
    try:
        rc, out, err, hit = ve(*ARGS)
        assert not hit and out == "1\n", (out, err)
    finally:
        if os.path.exists("/usr/volt-x"):
            os.unlink("/usr/volt-x")
            pytest.fail("the forged plan ran")
    assert ve(*ARGS)[3]  # the cache works again: the second start after is a hit


def test_attack_a_plan_that_writes_the_cache_is_never_served(tmp_path):
    """The entry of a command whose child may write the cache is never written, nor
    served if planted: its writable paths are checked on each use."""
    d = plancache.cache_dir() or ""
    for _ in range(2):
        assert not ve("run", "--rw", os.path.dirname(d), "--", "/bin/true")[3]
    assert entries() == []


def test_a_signal_to_a_hit_reaches_the_child():
    args = ["run", "--", "sh", "-c", "trap 'echo got; exit 42' TERM; echo ready; "
                                     "while :; do sleep 0.1; done"]
    ve(*args[:1], "--", "/bin/true")
    for _ in range(2):
        proc = subprocess.Popen([VOLT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd="/")
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert (proc.returncode, out) == (42, "got\n")
    assert len(entries()) == 2  # /bin/true's and this one's: the second start was a hit


def test_the_cache_directory_is_0700_and_entries_0600():
    miss_then_hit("run", "--", "/bin/true")
    d = plancache.cache_dir() or ""
    assert stat.S_IMODE(os.lstat(d).st_mode) == 0o700
    for name in entries():
        st = os.lstat(os.path.join(d, name))
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert stat.S_IMODE(os.lstat(plancache.key_path()).st_mode) == 0o600


def test_an_untrusted_directory_is_never_used(tmp_path):
    d = tmp_path / "open"
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)
    env = dict(os.environ, VOLT_ENFORCE_PLAN_CACHE=str(d / "plans"))
    for _ in range(2):
        assert not ve("run", "--", "/bin/true", env=env)[3]
    assert not os.path.exists(d / "plans")  # its parent is world-writable: never made
    shutil.rmtree(d)


def test_a_linked_cache_directory_is_never_used(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o755)
    link = tmp_path / "plans"
    link.symlink_to(real)
    env = dict(os.environ, VOLT_ENFORCE_PLAN_CACHE=str(link))
    for _ in range(2):
        assert not ve("run", "--", "/bin/true", env=env)[3]
    assert os.listdir(real) == []
    # the control: the directory itself is used
    env["VOLT_ENFORCE_PLAN_CACHE"] = str(real)
    assert [ve("run", "--", "/bin/true", env=env)[3] for _ in range(2)] == [False, True]


_COUNT_COMPILES = r"""
import os, sys
import volt_enforce.compile as comp, volt_enforce.sandbox as sbx
real = comp.compile_config
def counting(*a, **k):
    os.environ["VOLT_COMPILES"] = str(int(os.environ.get("VOLT_COMPILES", "0")) + 1)
    return real(*a, **k)
comp.compile_config = sbx.compile_config = counting
from volt_enforce.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("cache", ["on", "off"])
def test_exec_compiles_once_on_a_miss(cache):
    """A miss compiles the plan once: the cache is filled from the very Compiled that
    apply_self then enforces (the exec'd shell sees the count the wrapper kept)."""
    env = dict(os.environ)
    if cache == "off":
        env["VOLT_ENFORCE_PLAN_CACHE"] = "off"
    cp = subprocess.run([sys.executable, "-c", _COUNT_COMPILES, "exec", "--no-warnings", "--",
                         "sh", "-c", "echo $VOLT_COMPILES"], capture_output=True, text=True,
                        cwd="/", env=env, timeout=60)
    assert (cp.returncode, cp.stdout) == (0, "1\n"), cp.stderr
    assert entries() != [] if cache == "on" else entries() == []


#: what a hit never imports: the CLI and what the compiler needs, and the modules of
#: the standard library that cost the most to import here (re with enum about 4 ms)
HEAVY = {"volt_enforce.cli", "volt_enforce.model", "volt_enforce.compile", "_cffi_backend",
         "re", "enum", "typing", "argparse", "json", "dataclasses", "pathlib", "hashlib",
         "collections", "functools", "inspect", "tempfile", "subprocess"}


def test_a_hit_imports_only_the_launcher():
    """The installed command (scripts/volt-enforce) imports nothing before the look-up:
    an entry point's generated wrapper imports re, and with it enum (about 4 ms)."""
    argv = [VOLT, "run", "--no-warnings", "--", "/bin/true"]
    imported_without_site(argv)  # the miss fills the cache (the key covers PYTHONPATH)
    hit, err, _ = imported_without_site(argv)
    assert "volt_enforce.plancache" in hit and "volt_enforce.cli" not in hit, err
    assert not hit & HEAVY, sorted(hit & HEAVY)


_FORGE = r"""
import hashlib, hmac, os, sys
cache, key_path = sys.argv[1], sys.argv[2]
try:
    key = open(key_path, "rb").read()
    for name in os.listdir(cache):
        path = os.path.join(cache, name)
        old = open(path, "rb").read()
        head, _, body = old.partition(b"\n")
        meta, _, plan = body.partition(b"\nplan\n")
        # no restriction at all, padded with a blank note to the old length: rewritten in
        # place, since truncating or making a file takes rights of their own
        body = meta + b"\nnote " + b"20" * len(old) + b"\nplan\nvolt-plan 1\nend\n"
        mac = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        with open(path, "r+b") as f:
            f.write(b"mac " + mac + b"\n" + body)
    print("forged")
except OSError as exc:
    print("refused", exc.errno)
"""


@pytest.fixture
def package_layout(monkeypatch):
    """The default layout, entries beside the key in a directory no preset grants, in a
    stand-in for the package of its own under /root (the suite's checkout may sit where
    the cache does not trust the ancestors, or where a preset grants writing)."""
    import tempfile

    d = tempfile.mkdtemp(prefix=".volt-test-package-", dir="/root")
    monkeypatch.setenv("VOLT_ENFORCE_PLAN_CACHE", os.path.join(d, ".plan-cache"))
    monkeypatch.setenv("VOLT_ENFORCE_PLAN_KEY", os.path.join(d, ".plan-cache.key"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_the_default_layout_is_the_package(monkeypatch):
    import volt_enforce

    monkeypatch.delenv("VOLT_ENFORCE_PLAN_CACHE")
    monkeypatch.delenv("VOLT_ENFORCE_PLAN_KEY")
    pkg = os.path.dirname(os.path.realpath(volt_enforce.__file__))
    assert plancache.cache_dir() == plancache.DEFAULT_DIR == os.path.join(pkg, ".plan-cache")
    assert plancache.key_path() == os.path.join(pkg, ".plan-cache.key")


def test_attack_a_sandbox_that_reads_the_key_cannot_plant_a_plan(tmp_path, package_layout):
    """The default layout (entries and key in the package): a contain=False sandbox under
    the server preset that may also read the package (as it may read /usr, where a
    system install puts it) reads the key but cannot rewrite an entry, so the next hit
    still runs contained. Control: the same forgery unsandboxed makes the next hit run
    the planted empty plan, and the target writes where the contained run cannot."""
    from volt_enforce import (
        IsolationConfig,
        LandlockAccess,
        LandlockPolicy,
        LandlockRule,
        Sandbox,
        SeccompProfile,
        server_policy,
    )

    cache, key = plancache.cache_dir(), plancache.key_path()
    assert os.path.dirname(key) == os.path.dirname(cache) == package_layout
    marker = tmp_path / "escaped"
    args = ("run", "--no-warnings", "--", "sh", "-c", f"touch {marker} 2>/dev/null; echo $?")
    try:
        miss, hit = miss_then_hit(*args)
        assert hit == miss and miss[1] == "1\n"
        pkg = os.path.dirname(key)  # the package, where the key is (and the cache)
        rules = [*server_policy("/").rules, LandlockRule(path=pkg, access=LandlockAccess.READ_ONLY)]
        rules += [LandlockRule(path=p, access=LandlockAccess.READ_EXEC)
                  for p in sorted({sys.prefix, sys.base_prefix})]
        cfg = IsolationConfig(landlock=LandlockPolicy(rules=rules), seccomp=SeccompProfile.DEFAULT)
        before = {n: open(os.path.join(cache, n), "rb").read() for n in os.listdir(cache)}
        with Sandbox(cfg, contain=False) as sb:
            cp = sb.run([sys.executable, "-c", _FORGE, cache, key], capture_output=True, text=True)
        assert cp.stdout.startswith("refused"), (cp.stdout, cp.stderr)
        assert {n: open(os.path.join(cache, n), "rb").read() for n in os.listdir(cache)} == before
        again = ve(*args)
        assert again[3] and again[1] == "1\n" and not marker.exists()
        # control: the forgery works where writing is allowed, and the hit then escapes
        cp = subprocess.run([sys.executable, "-c", _FORGE, cache, key], capture_output=True,
                            text=True, timeout=60)
        assert cp.stdout == "forged\n", cp.stderr
        forged = ve(*args)
        assert forged[3] and forged[1] == "0\n" and marker.exists()
    finally:
        plancache.clear()


def test_the_default_layout_caches_no_contain_with_the_server_profile(package_layout):
    """The server profile's writable directories (/app, /tmp, /var, /run) cover neither
    the package's cache nor its key: --no-contain is cached too (with the cache under
    /run, the old default, it compiled on every start)."""
    miss, hit = miss_then_hit("exec", "--no-contain", "--no-warnings", "--", "/bin/true")
    assert hit == miss and miss[0] == 0
