"""Live denials (`volt-enforce run --why`): audit records read back for the child.

The record parser and the summary are checked with vectors here and on the host;
the host's audit is never changed, so there `--why` must say audit is off (or read
what audit gives). The tests marked kernel_matrix run only in the kernel matrix's VM
(the Landlock denial on 7.2 and 7.3: Landlock audit needs ABI 7, Linux 6.15; the
seccomp ones on 6.1 too), where the test itself turns audit on and loads one harmless rule (seccomp's errno denials are logged only while
a rule is loaded): a denied open and a denied syscall are each reported once with the
right path and syscall name, and an allowed run reports no denial. They run under the
contained default (the view, a PID namespace whose init spawns the target): a denied
syscall of a target that exits at once is still the child's, since its fork was
followed (tests/test_audit_follow.py tests the follower on the host). A path outside
the view is absent (ENOENT, which the exec diagnosis explains, not audit): the denied
open is of a path the view holds and Landlock denies."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

import pytest
from kernelreq import VM_KERNEL, need_landlock, need_seccomp

from volt_enforce.audit import (
    AUDIT_LANDLOCK_ACCESS,
    AUDIT_LANDLOCK_DOMAIN,
    AUDIT_SECCOMP,
    Denial,
    audit_state,
    parse_record,
    summarize,
)
from volt_enforce.model import IsolationConfig, LandlockAccess, LandlockRule, server_policy

VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---- vectors ----------------------------------------------------------------------------

ACCESS = ('audit(1733100000.123:456): domain=195ba459b blockers=fs.read_file '
          'path="/srv/x/secret" dev="vda2" ino=351')
ACCESS_HEX = ("audit(1733100000.124:457): domain=195ba459b blockers=fs.make_reg,fs.refer "
              "path=2F7372762F61206220 dev=\"vda2\" ino=365")
DOMAIN = ('audit(1733100000.123:456): domain=195ba459b status=allocated mode=enforcing pid=4242 '
          'uid=0 exe="/usr/bin/cat" comm="cat"')
SECCOMP = ('audit(1733100001.000:460): auid=0 uid=0 gid=0 ses=1 subj=unconfined pid=4243 '
           'comm="acct" exe="/srv/x/acct" sig=0 arch=c000003e syscall=163 compat=0 '
           'ip=0x7f00 code=0x50001')


def test_parse_record_unquotes_and_decodes_hex_paths():
    f = parse_record(ACCESS)
    assert (f["domain"], f["blockers"], f["path"], f["_serial"]) == (
        "195ba459b", "fs.read_file", "/srv/x/secret", "456")
    assert parse_record(ACCESS_HEX)["path"] == "/srv/a b "
    s = parse_record(SECCOMP)
    assert (s["pid"], s["arch"], s["syscall"], s["comm"]) == ("4243", "c000003e", "163", "acct")


def test_summarize_keeps_the_childs_records_counts_them_and_names_the_option():
    records = [(AUDIT_LANDLOCK_ACCESS, parse_record(ACCESS))] * 3 + [
        (AUDIT_LANDLOCK_DOMAIN, parse_record(DOMAIN)),
        (AUDIT_LANDLOCK_ACCESS, parse_record(ACCESS.replace("195ba459b", "999"))),  # not ours
        (AUDIT_SECCOMP, parse_record(SECCOMP)),
        (AUDIT_SECCOMP, parse_record(SECCOMP.replace("pid=4243", "pid=1"))),  # not ours
    ]
    got = summarize(records, {"195ba459b"}, {"4242", "4243"}, "the default profile")
    assert got == [
        Denial("landlock", "fs.read_file", "/srv/x/secret", 3, "--ro /srv/x"),
        Denial("seccomp", "syscall", "acct", 1,
               "a --seccomp profile that allows acct (the default profile denies it)"),
    ]
    assert got[0].line() == "denied 3x fs.read_file /srv/x/secret (Landlock); allow it with --ro /srv/x"


def test_summarize_names_port_options():
    connect = parse_record("audit(1.0:1): domain=7 blockers=net.connect_tcp daddr=127.0.0.1 dest=8080")
    bind = parse_record("audit(1.0:2): domain=7 blockers=net.bind_tcp saddr=0.0.0.0 src=9000")
    got = summarize([(AUDIT_LANDLOCK_ACCESS, connect), (AUDIT_LANDLOCK_ACCESS, bind)], {"7"}, set())
    assert [d.option for d in got] == ["--connect-tcp 8080", "--bind-tcp 9000"]


def test_why_on_this_host_reads_audit_as_it_is_and_changes_nothing(tmp_path):
    """The host's audit is left as it is: off, --why says so once and how to turn it on."""
    need_landlock()
    before = audit_state()
    report = tmp_path / "r.json"
    r = subprocess.run([VOLT, "run", "--why", "--report", str(report), "--", "true"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    written = json.loads(report.read_text())
    assert written["denials"] == []
    if before.enabled is False:
        assert r.stderr.count("--why: audit is off") == 1 and "auditctl -e 1" in r.stderr
        assert any(n.startswith("audit is off") for n in written["denials_notes"])
    elif not before.readable:
        assert "needs CAP_AUDIT_READ" in r.stderr
    assert audit_state().enabled == before.enabled  # never turned on or off


# ---- in the VM: audit turned on there --------------------------------------------------------

AUDIT_SET, AUDIT_ADD_RULE, AUDIT_DEL_RULE = 1001, 1011, 1012
AUDIT_FILTER_EXIT, AUDIT_NEVER, AUDIT_ARCH, AUDIT_EQUAL = 0x04, 0, 11, 0x40000000
AUDIT_ARCH_X86_64 = 0xC000003E


def _audit_control(msg_type: int, payload: bytes) -> None:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 9)
    try:
        s.bind((0, 0))
        s.send(struct.pack("=IHHII", 16 + len(payload), msg_type, 0x1 | 0x4, 1, 0) + payload)
        data = s.recv(8192)
        length, t = struct.unpack_from("=IH", data)
        if t == 2:
            (err,) = struct.unpack_from("=i", data, 16)
            if err:
                raise OSError(-err, os.strerror(-err), f"audit message {msg_type}")
    finally:
        s.close()


def _never_rule() -> bytes:
    """exit,never -F arch=b64 -S getpid: a rule that suppresses nothing anyone reads, and
    makes syscall contexts real, which seccomp's errno records need."""
    mask = [0] * 64
    mask[39 // 32] |= 1 << (39 % 32)
    fields, values, flags = [0] * 64, [0] * 64, [0] * 64
    fields[0], values[0], flags[0] = AUDIT_ARCH, AUDIT_ARCH_X86_64, AUDIT_EQUAL
    return struct.pack("=III", AUDIT_FILTER_EXIT, AUDIT_NEVER, 1) + struct.pack(
        "=64I64I64I64II", *mask, *fields, *values, *flags, 0)


@pytest.fixture
def audit_on():
    """Audit on with one rule, in the VM only; put back as it was afterwards."""
    assert VM_KERNEL, "changes the audit configuration: the kernel matrix's VM only"
    need_landlock()
    need_seccomp()
    was = audit_state()
    _audit_control(AUDIT_SET, struct.pack("=10I", 1, 1, 0, 0, 0, 0, 0, 0, 0, 0))
    _audit_control(AUDIT_ADD_RULE, _never_rule())
    yield
    _audit_control(AUDIT_DEL_RULE, _never_rule())
    if was.enabled is False:
        _audit_control(AUDIT_SET, struct.pack("=10I", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0))


@pytest.fixture
def outside():
    d = tempfile.mkdtemp(prefix="volt-why-", dir=REPO)  # the repo lies outside the preset
    yield os.path.realpath(d)
    shutil.rmtree(d, ignore_errors=True)


def _why(argv: list[str], report: str, options: tuple[str, ...] = ()
         ) -> tuple[subprocess.CompletedProcess[str], dict]:
    """``volt-enforce run --why`` under the contained default; the report."""
    r = subprocess.run([VOLT, "run", "--why", "--report", report, *options, "--", *argv],
                       capture_output=True, text=True, timeout=600)
    return r, json.load(open(report))


@pytest.mark.kernel_matrix
def test_vm_a_denied_open_is_reported_once_with_its_path(audit_on, outside):
    """A write-only drop directory: the view binds it (writable), Landlock denies reading."""
    need_landlock(7)  # Landlock's audit records (Linux 6.15); seccomp's are older
    secret = os.path.join(outside, "secret")
    with open(secret, "w") as f:
        f.write("x")
    policy = server_policy("/")
    policy.rules.append(LandlockRule(path=outside, access=LandlockAccess.WRITE_FILE))
    config = os.path.join(outside, "c.json")
    with open(config, "w") as f:
        f.write(IsolationConfig(landlock=policy, seccomp="default").to_json())
    # /app of the preset need not exist on the VM's host
    options = ("--config", config, "--ignore-missing")
    r, report = _why(["sh", "-c", f"echo y >> {secret} && cat {secret}"],
                     os.path.join(outside, "r.json"), options)
    # control: the file is in the view (the write went through), reading it is what failed
    assert r.returncode == 1 and "Permission denied" in r.stderr, r.stderr
    assert open(secret).read() == "xy\n"
    assert report["denials"] == [{"kind": "landlock", "access": "fs.read_file", "target": secret,
                                  "count": 1, "option": f"--ro {outside}"}], r.stderr
    assert f"denied fs.read_file {secret} (Landlock); allow it with --ro {outside}" in r.stderr


def _acct(outside: str) -> str:
    """A target that makes one syscall the default profile denies (acct) and exits at
    once with its errno."""
    src = os.path.join(outside, "acct.c")
    with open(src, "w") as f:
        f.write("#include <errno.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n"
                "int main(void) { return syscall(SYS_acct, 0) < 0 ? errno : 0; }\n")
    exe = os.path.join(outside, "acct")
    subprocess.run([shutil.which("gcc") or "cc", "-o", exe, src], check=True, timeout=300)
    assert subprocess.run([exe]).returncode == 0  # control: root may switch accounting off
    return exe


ACCT_DENIAL = {"kind": "seccomp", "access": "syscall", "target": "acct", "count": 1,
               "option": "a --seccomp profile that allows acct (the default profile denies it)"}


@pytest.mark.kernel_matrix
def test_vm_a_denied_syscall_of_a_target_that_exits_at_once_is_reported_once(audit_on, outside):
    """The target is the init's child, reaped before its record arrives."""
    exe = _acct(outside)
    r, report = _why([exe], os.path.join(outside, "r.json"))
    assert r.returncode == errno.EPERM, r.stderr  # the denial happened: acct got EPERM
    assert [d for d in report["denials"] if d["kind"] == "seccomp"] == [ACCT_DENIAL], r.stderr
    assert "denied syscall acct (seccomp)" in r.stderr
    assert not any("process events connector" in n for n in report["denials_notes"])


@pytest.mark.kernel_matrix
def test_vm_a_denied_syscall_of_a_grandchild_is_reported_once(audit_on, outside):
    """Below the target: a shell's child that makes the denied syscall and exits."""
    exe = _acct(outside)
    r, report = _why(["sh", "-c", f"{exe}; echo rc=$?"], os.path.join(outside, "r.json"),
                     ("--rox", outside))
    assert r.returncode == 0 and r.stdout == f"rc={errno.EPERM}\n", r.stderr
    assert [d for d in report["denials"] if d["kind"] == "seccomp"] == [ACCT_DENIAL], r.stderr
    assert r.stderr.count("denied syscall acct (seccomp)") == 1


@pytest.mark.kernel_matrix
def test_vm_without_the_process_events_connector_it_says_so_once(audit_on, outside):
    """In a PID namespace of its own the connector does not answer: the watch falls back
    to the /proc walk, says so once, and the run goes on."""
    r = subprocess.run([shutil.which("unshare") or "unshare", "--pid", "--fork", "--kill-child",
                        "--", VOLT, "run", "--why", "--report", os.path.join(outside, "r.json"),
                        "--", "true"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("process events connector") == 1, r.stderr
    notes = json.load(open(os.path.join(outside, "r.json")))["denials_notes"]
    assert sum("process events connector" in n for n in notes) == 1, notes


@pytest.mark.kernel_matrix
def test_vm_an_allowed_run_reports_no_denial(audit_on, outside):
    r, report = _why(["sh", "-c", "cat /etc/hostname >/dev/null; sh -c true; echo ok"],
                     os.path.join(outside, "r.json"))
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
    assert report["denials"] == []
    assert "denied" not in r.stderr and "audit is off" not in r.stderr


def test_why_without_cap_audit_read_says_it_cannot_read_records():
    need_landlock()
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "the test needs setpriv (util-linux)"
    assert os.geteuid() == 0, "the suite runs as root (CI does): it drops CAP_AUDIT_READ"
    before = audit_state()
    r = subprocess.run([setpriv, "--bounding-set", "-audit_read", "--", VOLT, "run", "--why",
                        "--", "true"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if before.enabled is False:  # off is said first: reading would show nothing anyway
        assert r.stderr.count("--why: audit is off") == 1
    else:
        assert r.stderr.count("needs CAP_AUDIT_READ") == 1 and "audit_read" in r.stderr


@pytest.mark.kernel_matrix
def test_vm_without_cap_audit_read_it_says_so_once(audit_on):
    r = subprocess.run([shutil.which("setpriv") or "setpriv", "--bounding-set", "-audit_read",
                        "--", VOLT, "run", "--why", "--", "true"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("needs CAP_AUDIT_READ") == 1 and "audit is off" not in r.stderr
