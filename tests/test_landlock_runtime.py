"""The runtime rules: ``sh -c``, coreutils and ``python3 -c`` run under
``server_policy("/")``, started by subprocess with ``restrict_self`` as preexec_fn,
writing only in /tmp-based directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from kernelreq import need_landlock

from volt_enforce import landlock as ll, server_policy

PYTHON = "/usr/bin/python3"  # under /usr, which server_policy lets run


@pytest.fixture(scope="module")
def server():
    need_landlock(1)
    with ll.compile(server_policy("/")) as compiled:
        yield compiled


@pytest.fixture
def outside():
    """A directory no rule of server_policy("/") covers, with a file in it."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else "/"
    d = Path(tempfile.mkdtemp(prefix="volt-enforce-ll-", dir=base))
    (d / "secret").write_text("secret")
    try:
        yield d
    finally:
        shutil.rmtree(d)


def run(ruleset: ll.CompiledRuleset, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, preexec_fn=ruleset.restrict_self, cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)


COREUTILS = r"""
set -e
echo hello > out.txt
cat out.txt
cp out.txt copy.txt && mv copy.txt moved.txt && rm moved.txt
mkdir -p a/b && touch a/b/c && ls a/b && rm -r a
printf 'b\na\n' | sort | tr -d '\n'; echo
wc -c < out.txt
head -c 8 /dev/urandom | wc -c
echo discard > /dev/null
cat /etc/hostname > /dev/null
ls /proc/self/fd > /dev/null
grep -q . /proc/self/status
id -u
date +%Y > /dev/null
env > /dev/null
uname -s
test -w . && echo writable
"""


def test_sh_and_coreutils_run_under_server_policy(server, tmp_path):
    assert str(tmp_path).startswith("/tmp/")
    p = run(server, ["sh", "-c", COREUTILS], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n") == ["hello", "c", "ab", "6", "8", str(os.getuid()), "Linux",
                                    "writable", ""]
    assert (tmp_path / "out.txt").read_text() == "hello\n"


def test_python_runs_under_server_policy(server, tmp_path):
    code = "import json, os, sys; print(json.dumps({'ok': os.getcwd() == sys.argv[1]}))"
    p = run(server, [PYTHON, "-c", code, str(tmp_path)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == '{"ok": true}\n'


def test_outside_the_rules_is_denied(server, tmp_path, outside):
    script = (f"cat {outside}/secret; echo x > {outside}/new; ls {outside};"
              f" mkdir {outside}/d; rm {outside}/secret; true")
    p = run(server, ["sh", "-c", script], tmp_path)
    assert p.stdout == ""
    assert p.stderr.count("Permission denied") == 5, p.stderr
    assert sorted(os.listdir(outside)) == ["secret"]
    etc_file = Path("/etc/volt-enforce-test")
    try:
        p = run(server, ["sh", "-c", f"echo x > {etc_file}"], tmp_path)
        assert p.returncode != 0 and "Permission denied" in p.stderr
        assert not etc_file.exists()
    finally:
        etc_file.unlink(missing_ok=True)


def test_without_runtime_rules_devices_and_proc_are_denied(tmp_path):
    need_landlock(1)
    policy = server_policy("/")
    policy.runtime = False
    with ll.compile(policy) as compiled:
        assert not [r for r in compiled.report.rules if r.source == "runtime"]
        for script in ("echo x > /dev/null", "head -c1 /dev/urandom", "ls /proc/self/fd"):
            p = run(compiled, ["sh", "-c", script], tmp_path)
            assert p.returncode != 0 and "Permission denied" in p.stderr, script


def test_runtime_rules_are_reported(server):
    runtime = {r.path: r for r in server.report.rules if r.source == "runtime"}
    assert set(runtime) | {s.path for s in server.report.skipped if s.source == "runtime"} \
        == {path for path, _ in ll.RUNTIME_RULES}
    assert runtime["/proc"].access == ll.LandlockAccess.READ_ONLY
    assert runtime["/dev/null"].kind == "device"


def test_read_only_server_policy_runs_but_writes_nothing(tmp_path):
    need_landlock(3)
    with ll.compile(server_policy("/"), read_only=True) as compiled:
        script = "cat /etc/hostname >/dev/null && echo fine > /dev/null && ls . && echo done"
        ok = run(compiled, ["sh", "-c", script], tmp_path)
        assert ok.returncode == 0 and ok.stdout == "done\n", ok.stderr
        bad = run(compiled, ["sh", "-c", "echo x > written"], tmp_path)
        assert bad.returncode != 0 and "Permission denied" in bad.stderr
        py = run(compiled, [PYTHON, "-c", "import json; print(json.dumps(1))"], tmp_path)
        assert py.returncode == 0 and py.stdout == "1\n", py.stderr
    assert os.listdir(tmp_path) == []
