"""seccomp against the real kernel: a child loads the filter, makes calls and
reports what it got (results through a pipe, kills as the child's signal)."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from _volt_testcore import lib as testlib  # the test-only extension (tests/build_testcore.py)
from forked import json_reply
from kernelreq import need, need_seccomp

from volt_enforce import PolicyError, seccomp
from volt_enforce._core import lib
from volt_enforce.seccomp.tables import ARCHES, native_arch

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
NR = ARCHES[native_arch()].syscalls
X86_64 = native_arch() == "x86_64"


NR_MAX = ARCHES[native_arch()].max_nr


def kernel_has(syscall: str, release: tuple[int, int]) -> bool:
    """Whether the running kernel has ``syscall`` (added in ``release``): its own symbol
    table says, else its release does."""
    try:
        with open("/proc/kallsyms") as f:
            return any(line.rstrip().endswith(f"_sys_{syscall}") for line in f)
    except OSError:
        version = os.uname().release.split("-")[0].split("+")[0]
        major, minor = (int(x) for x in version.split(".")[:2])
        return (major, minor) >= release


def kernel_has_listns() -> bool:
    """listns(2): x86_64 470, Linux 6.19."""
    return kernel_has("listns", (6, 19))


def need_x86_compat() -> None:
    need("the i386 and x32 entry points", X86_64, f"this machine is {native_arch()}")


def sys_(name_or_nr, *args: int) -> int:
    """A raw syscall: its result, or -errno. Unused arguments are 0, not register garbage."""
    nr = NR[name_or_nr] if isinstance(name_or_nr, str) else name_or_nr
    args = args + (0,) * (6 - len(args))
    ctypes.set_errno(0)
    r = LIBC.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a & (2**64 - 1)) for a in args])
    return -ctypes.get_errno() if r == -1 else r


def in_child(filt, fn, **load):
    """Fork; the child loads ``filt`` and runs ``fn``. Returns fn's JSON result, or
    ("signal", n) when the child was killed."""
    def child():
        filt.load(**load)
        return fn()

    status, out = json_reply(child)
    if os.WIFSIGNALED(status):
        return ("signal", os.WTERMSIG(status))
    assert os.WEXITSTATUS(status) == 0, out.get("raised", out)
    return out["ok"]


@pytest.fixture(autouse=True)
def _seccomp():
    need_seccomp()


def test_default_profile_decisions():
    filt = seccomp.compile("default")

    def calls():
        fork_pid = os.fork()
        if fork_pid == 0:
            os._exit(7)
        _, st = os.waitpid(fork_pid, 0)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.close()
        return {
            "getpid": sys_("getpid") == os.getpid(),
            "fork": os.WEXITSTATUS(st),
            "inet": True,
            "mount": sys_("mount", 0, 0, 0, 0, 0),
            "unshare_user": sys_("unshare", lib.CLONE_NEWUSER),
            "clone_newns": sys_("clone", lib.CLONE_NEWNS | signal.SIGCHLD, 0, 0, 0, 0),
            "clone3": sys_("clone3", 0, 0),
            "vsock": sys_("socket", lib.AF_VSOCK, socket.SOCK_STREAM, 0),
            "alg": sys_("socket", lib.AF_ALG, socket.SOCK_SEQPACKET, 0),
            "personality_query": sys_("personality", lib.VE_PER_QUERY) >= 0,
            "personality_bad": sys_("personality", 0x0400000),  # READ_IMPLIES_EXEC
            "listns": sys_("listns"),
            "above_the_table": sys_(NR_MAX + 1),
            "unknown_1000": sys_(1000),
            "hole_400": sys_(400),
            "x32_getpid": sys_(lib.VE_X32_SYSCALL_BIT | NR["getpid"]) if X86_64 else None,
            "int80_getpid": testlib.ve_test_int80_getpid() if X86_64 else None,
            "nnp": lib.ve_no_new_privs(),
            "mode": lib.ve_seccomp_mode(),
        }

    got = in_child(filt, calls)
    assert got == {
        "getpid": True, "fork": 7, "inet": True,
        "mount": -errno.EPERM, "unshare_user": -errno.EPERM, "clone_newns": -errno.EPERM,
        "clone3": -errno.ENOSYS, "vsock": -errno.EPERM, "alg": -errno.EPERM,
        "personality_query": True, "personality_bad": -errno.EPERM,
        # listns is in the table (Linux 6.19) and not in Docker's profile: its default, EPERM
        "listns": -errno.EPERM,
        "above_the_table": -errno.ENOSYS, "unknown_1000": -errno.ENOSYS, "hole_400": -errno.ENOSYS,
        "x32_getpid": -errno.EPERM if X86_64 else None,
        "int80_getpid": -errno.EPERM if X86_64 else None,
        "nnp": 1, "mode": 2,
    }


def test_without_a_filter_the_same_calls_behave_differently():
    """The control for the test above: the errors come from the filter."""
    need_x86_compat()
    got = in_child(seccomp.compile("unconfined"), lambda: {
        "mode": lib.ve_seccomp_mode(),
        "x32_is_getpid": sys_(lib.VE_X32_SYSCALL_BIT | NR["getpid"]) == os.getpid(),
        "int80_is_getpid": testlib.ve_test_int80_getpid() == os.getpid(),
        "clone3": sys_("clone3", 0, 0),
        "listns": sys_("listns"),
        "above_the_table": sys_(NR_MAX + 1),
    })
    assert got["mode"] == 0
    assert got["int80_is_getpid"]  # the i386 entry works: the EPERM above is the filter's
    assert got["clone3"] in (-errno.EFAULT, -errno.EINVAL)
    # x32 is off in this kernel (ENOSYS) or getpid; either way not the filter's EPERM
    assert got["x32_is_getpid"] or sys_(lib.VE_X32_SYSCALL_BIT | NR["getpid"]) == -errno.ENOSYS
    # the table ends at 472 (Linux 7.3's fchroot): the filter's ENOSYS above 472 is its rule
    # for numbers it does not know, and no kernel of the matrix (up to 7.3) has 473
    assert NR_MAX == 472
    assert got["above_the_table"] == -errno.ENOSYS
    # listns(2) (6.19) with a NULL request faults: the EPERM above is the filter's
    assert got["listns"] == (-errno.EFAULT if kernel_has_listns() else -errno.ENOSYS)


def test_subarches_let_i386_calls_through():
    need_x86_compat()
    filt = seccomp.compile("default", subarches=("i386",))
    assert in_child(filt, lambda: testlib.ve_test_int80_getpid() == os.getpid()) is True
    # x32 stays denied: only the ABIs asked for are covered
    assert in_child(filt, lambda: sys_(lib.VE_X32_SYSCALL_BIT | NR["getpid"])) == -errno.EPERM


def test_strict_profile_decisions():
    filt = seccomp.compile("strict")

    def calls():
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.close()
        return {
            "ptrace": sys_("ptrace", 0, 0, 0, 0),  # PTRACE_TRACEME
            "io_uring": sys_("io_uring_setup", 1, 0),
            "bpf": sys_("bpf", 0, 0, 0),
            "perf": sys_("perf_event_open", 0, 0, 0, 0, 0),
            "keyctl": sys_("keyctl", 0, 0),
            "userfaultfd": sys_("userfaultfd", 0),
            "settime": sys_("clock_settime", 0, 0),
            "unshare_net": sys_("unshare", lib.CLONE_NEWNET),
            "packet": sys_("socket", socket.AF_PACKET, socket.SOCK_RAW, 0),
            "unix": sys_("socket", lib.AF_UNIX, socket.SOCK_STREAM, 0) >= 0,
            "netlink": sys_("socket", lib.AF_NETLINK, socket.SOCK_RAW, 0) >= 0,
            "getrandom": sys_("getrandom", 0, 0, 0),
            "listns": sys_("listns"),
            "fchroot": sys_("fchroot", 2**32 - 1, 0),
            "rseq_slice_yield": sys_("rseq_slice_yield"),
        }

    got = in_child(filt, calls)
    # strict allows rseq_slice_yield (as rseq and sched_yield): the kernel's answer, whatever
    # it is (ENOSYS before the kernel has it), never the filter's EPERM
    assert got.pop("rseq_slice_yield") != -errno.EPERM
    assert got == {
        "ptrace": -errno.EPERM, "io_uring": -errno.EPERM, "bpf": -errno.EPERM,
        "perf": -errno.EPERM, "keyctl": -errno.EPERM, "userfaultfd": -errno.EPERM,
        "settime": -errno.EPERM, "unshare_net": -errno.EPERM, "packet": -errno.EPERM,
        "unix": True, "netlink": True, "getrandom": 0,
        "listns": -errno.EPERM, "fchroot": -errno.EPERM,  # as setns/unshare, and chroot
    }


def test_strict_new_calls_without_the_filter():
    """The control for the new calls above: the kernel's own answers are not EPERM."""
    got = in_child(seccomp.compile("unconfined"), lambda: {
        "listns": sys_("listns"), "fchroot": sys_("fchroot", 2**32 - 1, 0)})
    assert got == {"listns": -errno.EFAULT if kernel_has_listns() else -errno.ENOSYS,
                   "fchroot": -errno.EBADF if kernel_has("fchroot", (7, 3)) else -errno.ENOSYS}


def test_strict_kills_module_loading():
    # without the filter finit_module(-1, "", 0) is a harmless EBADF
    assert in_child(seccomp.compile("strict"), lambda: sys_("finit_module", 2**64 - 1, 0, 0)) \
        == ("signal", signal.SIGSYS)


@pytest.mark.parametrize("action,expect", [
    ({"action": "SCMP_ACT_ERRNO", "errnoRet": errno.EBADFD}, -errno.EBADFD),
    ({"action": "SCMP_ACT_ERRNO", "errnoRet": 0}, 0),
    ({"action": "SCMP_ACT_KILL_PROCESS"}, ("signal", signal.SIGSYS)),
    ({"action": "SCMP_ACT_KILL_THREAD"}, ("signal", signal.SIGSYS)),
    ({"action": "SCMP_ACT_KILL"}, ("signal", signal.SIGSYS)),
    ({"action": "SCMP_ACT_TRAP"}, ("signal", signal.SIGSYS)),
    ({"action": "SCMP_ACT_LOG"}, "ppid"),
])
def test_configured_action(action, expect):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [dict(names=["getppid"], **action)]}
    filt = seccomp.compile(profile)
    got = in_child(filt, lambda: sys_("getppid"))
    assert got == (os.getpid() if expect == "ppid" else expect)


def test_argument_rule_64_bit_in_the_kernel():
    """A high word that differs must not match a rule on the low word."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
         "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 12,
         "args": [{"index": 1, "value": 1 << 32, "op": "SCMP_CMP_GE"}]},
    ]}
    got = in_child(seccomp.compile(profile), lambda: [
        sys_("getppid", 5), sys_("getppid", 5 | 1 << 32), sys_("getppid", 6),
        sys_("getppid", 0, 1 << 32), sys_("getppid", 0, 0xFFFFFFFF)])
    ppid = os.getpid()
    assert got == [-11, ppid, ppid, -12, ppid]


def test_tsync_and_flags_load():
    got = in_child(seccomp.compile("default"), lambda: lib.ve_seccomp_mode(), tsync=True,
                   spec_allow=True)
    assert got == 2


def test_unconfined_loads_nothing():
    filt = seccomp.compile("unconfined")
    assert filt.bpf == b"" and filt.instructions == 0
    assert in_child(filt, lambda: [lib.ve_seccomp_mode(), lib.ve_no_new_privs()]) == [0, 0]


def test_foreign_filter_is_not_loaded():
    filt = seccomp.compile("default", arch="aarch64")
    got = in_child(seccomp.compile("unconfined"), lambda: _try_load(filt))
    assert got[0].startswith("PolicyError") and got[1] == 0


def _try_load(filt):
    try:
        filt.load()
    except PolicyError as e:
        return [f"PolicyError: {e}", lib.ve_seccomp_mode()]
    return ["loaded", lib.ve_seccomp_mode()]


def test_kernel_refuses_garbage_and_nothing_is_loaded():
    bad = b"\x06\x00\x00\x00\x00\x00\xff\x7f" + b"\xff\xff\x00\x00\x00\x00\x00\x00"  # ret; bad op

    def child():
        r = lib.ve_seccomp_load(bad, 2, 0)
        return [r, lib.ve_seccomp_mode()]

    assert in_child(seccomp.compile("unconfined"), child) == [-errno.EINVAL, 0]


# ---- real programs ---------------------------------------------------------------------

PIPELINE = "printf 'b\\na\\nc\\n' | sort | tr a-z A-Z | head -n 2; echo done >&2"
PYTHON = textwrap.dedent("""
    import json, ssl, sqlite3, ctypes, os, errno, hashlib, threading, subprocess
    db = sqlite3.connect(":memory:")
    db.execute("create table t (x)"); db.execute("insert into t values (42)")
    t = threading.Thread(target=lambda: None); t.start(); t.join()
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.unshare(0x10000000)  # CLONE_NEWUSER
    print(json.dumps({"row": db.execute("select x from t").fetchone()[0],
                      "tls": ssl.create_default_context().protocol > 0,
                      "sha": hashlib.sha256(b"x").hexdigest()[:8],
                      "unshare": r, "errno": ctypes.get_errno(),
                      "child": subprocess.run(["true"]).returncode}))
""")


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_shell_pipeline(profile):
    filt = seccomp.compile(profile)
    p = subprocess.run(["sh", "-c", PIPELINE], capture_output=True, text=True,
                       preexec_fn=filt.load, timeout=30)
    assert (p.returncode, p.stdout, p.stderr) == (0, "A\nB\n", "done\n")


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_python_with_stdlib(profile):
    filt = seccomp.compile(profile)
    p = subprocess.run([sys.executable, "-c", PYTHON], capture_output=True, text=True,
                       preexec_fn=filt.load, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"row": 42, "tls": True, "sha": "2d711642", "unshare": -1,
                                    "errno": errno.EPERM, "child": 0}
