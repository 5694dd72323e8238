"""Containing a root child: what the filter closes, in the compiler and in the kernel.

1. Arguments compared as wide as the kernel reads them: an ``int`` family with a high
   bit set is the same family to the kernel, so the filter must not see another one.
2. TIOCSTI and TIOCLINUX denied; 3. no setuid/setgid modes, openat2 ENOSYS, io_uring
   denied; 4. the port rule guard (MPTCP, SCTP, SMC). Each attack runs in a forked child
   under the filter, is checked on the host, and runs again unfiltered as the control.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import socket
import stat
import termios

import pytest
from kernelreq import need, need_seccomp
from test_seccomp_kernel import in_child, sys_

from volt_enforce import PolicyError, seccomp
from volt_enforce._core import lib
from volt_enforce.seccomp import bpf, profiles
from volt_enforce.seccomp.policy import Action, Arg, Op, Policy, Rule
from volt_enforce.seccomp.tables import ARG_BITS, arg_bits

EPERM = Action.errno(errno.EPERM)
ALLOW = seccomp.ALLOW

# ---- 1. the argument widths -------------------------------------------------------------

#: The prototypes of the syscalls the built-in profiles filter on, as
#: include/linux/syscalls.h declares them (v6.12 .. v6.18; clone's x86_64/arm64 variant).
PROTOTYPES = """
sys_socket(int, int, int)
sys_ioctl(unsigned int fd, unsigned int cmd, unsigned long arg)
sys_personality(unsigned int personality)
sys_clone(unsigned long, unsigned long, int __user *, int __user *, unsigned long)
sys_chmod(const char __user *filename, umode_t mode)
sys_fchmod(unsigned int fd, umode_t mode)
sys_fchmodat(int dfd, const char __user *filename, umode_t mode)
sys_fchmodat2(int dfd, const char __user *filename, umode_t mode, unsigned int flags)
sys_open(const char __user *filename, int flags, umode_t mode)
sys_openat(int dfd, const char __user *filename, int flags, umode_t mode)
sys_creat(const char __user *pathname, umode_t mode)
sys_mkdir(const char __user *pathname, umode_t mode)
sys_mkdirat(int dfd, const char __user * pathname, umode_t mode)
sys_mknod(const char __user *filename, umode_t mode, unsigned dev)
sys_mknodat(int dfd, const char __user * filename, umode_t mode, unsigned dev)
"""
#: kernel/fork.c: clone uses lower_32_bits(clone_flags).
BODY_NARROWED = {("clone", 0): 32}


def _width(param: str) -> int:
    if "*" in param or "unsigned long" in param:
        return 64
    if param.split()[0] == "umode_t":
        return 16
    assert param.split()[0] in ("int", "unsigned"), param
    return 32


def _prototypes() -> dict[str, list[int]]:
    out = {}
    for m in re.finditer(r"sys_(\w+)\((.*)\)", PROTOTYPES):
        out[m.group(1)] = [_width(p.strip()) for p in m.group(2).split(",")]
    for (name, index), bits in BODY_NARROWED.items():
        out[name][index] = bits
    return out


def test_table_follows_the_prototypes():
    for name, widths in _prototypes().items():
        assert list(ARG_BITS[name][:len(widths)]) == widths, name
        assert [arg_bits(name, i) for i in range(len(widths))] == widths
    assert arg_bits("socket", 0, abi_bits=32) == 32 and arg_bits("chmod", 1, abi_bits=32) == 16
    assert arg_bits("mmap", 0) == 64  # x86's own entry point: not in the generic prototypes


def _filtered_args(policy: Policy) -> set[tuple[str, int]]:
    return {(name, a.index) for rule in policy.rules for a in rule.args for name in rule.names}


def test_every_argument_the_profiles_filter_has_its_prototype():
    protos = _prototypes()
    for policy in (profiles.default_policy("x86_64"), profiles.strict_policy(),
                   Policy("guard", ALLOW, profiles.port_rule_guard())):
        for name, index in _filtered_args(policy):
            assert name in protos and index < len(protos[name]), (policy.name, name, index)


def _loads(filt) -> set[int]:
    return {i.k for i in filt.program if i.code == bpf.ld_abs(0).code}


def test_a_32_bit_argument_reads_only_the_low_word():
    for op in Op:
        rule = Rule(("socket",), EPERM, (Arg(0, op, 40, 40 if op == Op.MASKED_EQ else 0),))
        filt = seccomp.compile(Policy("p", ALLOW, (rule,)), arch="x86_64")
        assert bpf.arg_offset(0, high=False) in _loads(filt), op
        assert bpf.arg_offset(0, high=True) not in _loads(filt), op
    # a 64-bit argument still reads both halves
    rule = Rule(("mmap",), EPERM, (Arg(0, Op.EQ, 40),))
    filt = seccomp.compile(Policy("p", ALLOW, (rule,)), arch="x86_64")
    assert {bpf.arg_offset(0, high=False), bpf.arg_offset(0, high=True)} <= _loads(filt)


@pytest.mark.parametrize("value,expect", [
    (lib.AF_VSOCK, EPERM), ((1 << 32) | lib.AF_VSOCK, EPERM), ((0xFFFF << 48) | lib.AF_ALG, EPERM),
    (lib.AF_INET, ALLOW), ((1 << 32) | lib.AF_INET, ALLOW), (41, ALLOW), ((1 << 40) | 41, ALLOW),
])
def test_default_socket_family_as_the_kernel_reads_it(value, expect):
    assert seccomp.compile("default", arch="x86_64").simulate("socket", (value,)) == expect


def test_16_bit_mode_and_values_wider_than_the_argument():
    # umode_t: the kernel reads 16 bits, so 0o4755 | 1 << 16 is 0o4755
    p = Policy("p", ALLOW, (Rule(("chmod",), EPERM, (Arg(1, Op.EQ, 0o4755),)),
                            Rule(("mkdir",), EPERM, (Arg(1, Op.GT, 0o777),)),
                            Rule(("socket",), EPERM, (Arg(0, Op.EQ, 1 << 32),))))
    f = seccomp.compile(p, arch="x86_64")
    assert f.simulate("chmod", (0, 0o4755)) == EPERM
    assert f.simulate("chmod", (0, (1 << 16) | 0o4755)) == EPERM
    assert f.simulate("chmod", (0, 0o755)) == ALLOW
    assert f.simulate("mkdir", (0, 0o1777)) == EPERM
    assert f.simulate("mkdir", (0, 1 << 16)) == ALLOW  # mode 0 to the kernel
    # no int is 1 << 32: the rule never matches
    assert f.simulate("socket", (1 << 32,)) == ALLOW and f.simulate("socket", (0,)) == ALLOW


# ---- against the kernel: each attack in a child under the filter, and without it ---------

AT_FDCWD = -100 & (2**64 - 1)
HIGH = 1 << 32


def _c(path) -> ctypes.Array:
    return ctypes.create_string_buffer(os.fsencode(path))


def _addr(buf) -> int:
    return ctypes.addressof(buf)


def _run(profile, fn):
    """fn in a child under ``profile`` (a filter, or a name), its JSON result."""
    filt = profile if isinstance(profile, seccomp.SeccompFilter) else seccomp.compile(profile)
    return in_child(filt, fn)


def _kernel_at_least(major: int, minor: int) -> bool:
    version = os.uname().release.split("-")[0].split("+")[0]
    return tuple(int(x) for x in version.split(".")[:2]) >= (major, minor)


@pytest.fixture
def _kernel():
    need_seccomp()


def _sockets(calls: dict[str, tuple[int, int, int]]):
    def child():
        out = {}
        for key, (family, type_, proto) in calls.items():
            fd = sys_("socket", family, type_, proto)
            out[key] = fd if fd < 0 else "created"
            if fd >= 0:
                os.close(fd)
        return out
    return child


HIGH_BIT_SOCKETS = {
    "vsock": (lib.AF_VSOCK, socket.SOCK_STREAM, 0),
    "vsock_high": (HIGH | lib.AF_VSOCK, socket.SOCK_STREAM, 0),
    "vsock_top": ((0xFFFF << 48) | lib.AF_VSOCK, socket.SOCK_STREAM, 0),
    "alg_high": (HIGH | lib.AF_ALG, socket.SOCK_SEQPACKET, 0),
    "inet_high": (HIGH | lib.AF_INET, socket.SOCK_STREAM, 0),
}


def test_high_bits_do_not_smuggle_a_denied_socket_family(_kernel):
    got = _run("default", _sockets(HIGH_BIT_SOCKETS))
    assert got == {"vsock": -errno.EPERM, "vsock_high": -errno.EPERM, "vsock_top": -errno.EPERM,
                   "alg_high": -errno.EPERM, "inet_high": "created"}
    assert _run("strict", _sockets({"vsock_high": HIGH_BIT_SOCKETS["vsock_high"],
                                    "packet_high": (HIGH | socket.AF_PACKET, socket.SOCK_RAW, 0)})) \
        == {"vsock_high": -errno.EPERM, "packet_high": -errno.EPERM}
    # the control: the kernel reads the family's low 32 bits, so the attack works unfiltered
    control = _run("unconfined", _sockets(HIGH_BIT_SOCKETS))
    assert control["vsock_high"] == control["vsock"] == control["vsock_top"]
    assert control["inet_high"] == "created"
    if control["vsock"] != "created":
        pytest.skip(f"the kernel has no AF_VSOCK ({control['vsock']}): the control shows "
                    "the high bits are ignored but not a created socket")


def test_high_bits_in_personality_are_ignored_by_the_kernel(_kernel):
    read_implies_exec = 0x0400000

    def child():
        return [sys_("personality", HIGH | read_implies_exec),
                sys_("personality", 2**64 - 1) & read_implies_exec]  # the query

    assert _run("default", child) == [-errno.EPERM, 0]
    got = _run("unconfined", child)  # the control: the persona was set
    assert got[0] >= 0 and got[1] == read_implies_exec


# TIOCSTI and TIOCLINUX

def _tty_child(slave: int):
    def child():
        nl, sel, attrs = ctypes.c_char(b"\n"), ctypes.c_char(b"\x02"), ctypes.create_string_buffer(64)
        return {"sti": sys_("ioctl", slave, termios.TIOCSTI, _addr(nl)),
                "sti_high": sys_("ioctl", slave, HIGH | termios.TIOCSTI, _addr(nl)),
                "linux": sys_("ioctl", slave, termios.TIOCLINUX, _addr(sel)),
                "tcgets": sys_("ioctl", slave, termios.TCGETS, _addr(attrs))}
    return child


def _pending(fd: int) -> bytes:
    """What the terminal's input queue holds (a canonical tty reads a line at a time)."""
    os.set_blocking(fd, False)
    got = b""
    while True:
        try:
            got += os.read(fd, 16)
        except BlockingIOError:
            return got


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_terminal_injection_is_denied(_kernel, profile):
    master, slave = os.openpty()
    try:
        got = _run(profile, _tty_child(slave))
        assert got == {"sti": -errno.EPERM, "sti_high": -errno.EPERM, "linux": -errno.EPERM,
                       "tcgets": 0}
        assert _pending(slave) == b""  # nothing reached the terminal's input
        # the control: root injects input unfiltered (also with the request's high bits
        # set: the kernel reads unsigned int cmd); TIOCLINUX wants a virtual console, so
        # a pty answers ENOTTY, not the filter's EPERM
        control = _run("unconfined", _tty_child(slave))
        assert control == {"sti": 0, "sti_high": 0, "linux": -errno.ENOTTY, "tcgets": 0}
        assert _pending(slave) == b"\n\n"
    finally:
        os.close(master)
        os.close(slave)


# setuid and setgid bits

def _mode_attacks(d):
    """(name, syscall, args builder) for each way of making a setuid/setgid file."""
    S_IFREG = stat.S_IFREG
    wr = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    return [
        ("chmod", "chmod", lambda: (_c(d / "chmod"), 0o4755), "chmod"),
        ("chmod_wide", "chmod", lambda: (_c(d / "chmod_wide"), (1 << 16) | 0o4755), "chmod_wide"),
        ("fchmod", "fchmod", lambda: (os.open(d / "fchmod", os.O_RDONLY), 0o2755), "fchmod"),
        ("fchmodat", "fchmodat", lambda: (AT_FDCWD, _c(d / "fchmodat"), 0o6755), "fchmodat"),
        ("fchmodat2", "fchmodat2", lambda: (AT_FDCWD, _c(d / "fchmodat2"), 0o4755, 0), "fchmodat2"),
        ("open", "open", lambda: (_c(d / "new_open"), wr, 0o4755), "new_open"),
        ("openat", "openat", lambda: (AT_FDCWD, _c(d / "new_openat"), wr, 0o2755), "new_openat"),
        ("creat", "creat", lambda: (_c(d / "new_creat"), 0o4755), "new_creat"),
        ("mkdir", "mkdir", lambda: (_c(d / "new_mkdir"), 0o2755), "new_mkdir"),
        ("mkdirat", "mkdirat", lambda: (AT_FDCWD, _c(d / "new_mkdirat"), 0o4755), "new_mkdirat"),
        ("mknod", "mknod", lambda: (_c(d / "new_mknod"), S_IFREG | 0o4755, 0), "new_mknod"),
        ("mknodat", "mknodat", lambda: (AT_FDCWD, _c(d / "new_mknodat"), S_IFREG | 0o2755, 0),
         "new_mknodat"),
    ]


def _mode_child(d):
    def child():
        os.umask(0o022)
        out = {}
        for key, name, build, _target in _mode_attacks(d):
            args = build()
            out[key] = sys_(name, *[_addr(a) if isinstance(a, ctypes.Array) else a for a in args])
        # still allowed: plain modes, and openat2 gets ENOSYS (libc falls back to openat)
        plain, new_plain, new_openat2 = _c(d / "plain"), _c(d / "new_plain"), _c(d / "new_openat2")
        out["chmod_plain"] = sys_("chmod", _addr(plain), 0o755)
        out["open_plain"] = sys_("open", _addr(new_plain), os.O_WRONLY | os.O_CREAT, 0o644)
        how = ctypes.create_string_buffer(24)  # struct open_how {flags, mode, resolve}
        ctypes.memmove(how, (os.O_WRONLY | os.O_CREAT).to_bytes(8, "little")
                       + (0o4755).to_bytes(8, "little"), 16)
        out["openat2"] = sys_("openat2", AT_FDCWD, _addr(new_openat2), _addr(how), 24)
        return {k: v if v <= 0 else "ok" for k, v in out.items()}
    return child


def _stand_ins(d):
    d.mkdir()
    for name in ("chmod", "chmod_wide", "fchmod", "fchmodat", "fchmodat2", "plain"):
        (d / name).write_bytes(b"#!/bin/sh\n")
        os.chmod(d / name, 0o755)
    assert all(os.stat(d / n).st_uid == 0 for n in ("chmod", "plain"))  # root-owned


def _special_bits(path) -> int | None:
    try:
        return os.lstat(path).st_mode & 0o6000
    except FileNotFoundError:
        return None


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_no_setuid_or_setgid_files(_kernel, tmp_path, profile):
    need("root (stand-in files owned by root)", os.geteuid() == 0, "not root")
    filtered, control_dir = tmp_path / "filtered", tmp_path / "control"
    _stand_ins(filtered)
    _stand_ins(control_dir)
    got = _run(profile, _mode_child(filtered))
    denied = {key: -errno.EPERM for key, *_ in _mode_attacks(filtered)}
    assert got == {**denied, "chmod_plain": 0, "open_plain": "ok", "openat2": -errno.ENOSYS}
    for key, _name, _build, target in _mode_attacks(filtered):
        assert _special_bits(filtered / target) in (0, None), key  # on the host: no bit set
        if target.startswith("new_"):
            assert not (filtered / target).exists(), key
    assert not (filtered / "new_openat2").exists()
    # the control: unfiltered, root makes every one of them (mkdir drops S_ISUID/S_ISGID
    # itself, so the directories only show the call went through)
    control = _run("unconfined", _mode_child(control_dir))
    # fchmodat2 is Linux 6.6's: before it the kernel itself has no such call
    lacks = {"fchmodat2"} if not _kernel_at_least(6, 6) else set()
    assert all(control[key] in (0, "ok") for key in denied if key not in lacks), control
    assert all(control[key] == -errno.ENOSYS for key in lacks), control
    for key, _name, _build, target in _mode_attacks(control_dir):
        if key in lacks:
            continue
        if "mkdir" in key:
            assert (control_dir / target).is_dir(), key
        else:
            assert _special_bits(control_dir / target), key
    assert control["openat2"] == "ok" and _special_bits(control_dir / "new_openat2")


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_io_uring_is_denied(_kernel, profile):
    def child():
        params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
        fd = sys_("io_uring_setup", 1, _addr(params))
        return {"setup": fd if fd < 0 else "ok",
                "enter": sys_("io_uring_enter", 2**32 - 1, 0, 0, 0, 0, 0),
                "register": sys_("io_uring_register", 2**32 - 1, 0, 0, 0)}

    assert _run(profile, child) == {"setup": -errno.EPERM, "enter": -errno.EPERM,
                                    "register": -errno.EPERM}
    control = _run("unconfined", child)  # a bad fd (or opcode): not the filter's EPERM
    assert control["enter"] == -errno.EBADF and control["register"] in (-errno.EBADF, -errno.EINVAL)
    if control["setup"] != "ok":
        pytest.skip(f"io_uring_setup fails unfiltered ({control['setup']}): io_uring is "
                    "disabled in this kernel, the control shows only EBADF")


# the port rule guard

GUARDED_SOCKETS = {
    "mptcp": (lib.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP),
    "mptcp6": (lib.AF_INET6, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, socket.IPPROTO_MPTCP),
    "mptcp_high": (lib.AF_INET, socket.SOCK_STREAM, HIGH | socket.IPPROTO_MPTCP),
    "sctp": (lib.AF_INET, socket.SOCK_SEQPACKET, socket.IPPROTO_SCTP),
    "sctp6": (lib.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_SCTP),
    "smc": (profiles.AF_SMC, socket.SOCK_STREAM, 0),
    "inet_smc": (lib.AF_INET, socket.SOCK_STREAM, profiles.IPPROTO_SMC),
    "tcp": (lib.AF_INET, socket.SOCK_STREAM, 0),
    "udp": (lib.AF_INET6, socket.SOCK_DGRAM, 0),
}


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_port_rule_guard_denies_sockets_landlock_does_not_see(_kernel, profile):
    guarded = seccomp.compile(profile, extra_rules=profiles.port_rule_guard())
    got = _run(guarded, _sockets(GUARDED_SOCKETS))
    eacces = -errno.EACCES
    assert got == {"mptcp": eacces, "mptcp6": eacces, "mptcp_high": eacces, "sctp": eacces,
                   "sctp6": eacces, "smc": eacces, "inet_smc": eacces,
                   "tcp": "created", "udp": "created"}
    # the control: without the guard the same profile lets a MPTCP socket be created
    mptcp = {"mptcp": GUARDED_SOCKETS["mptcp"]}
    unfiltered = _run("unconfined", _sockets(mptcp))["mptcp"]
    if unfiltered == -errno.EPROTONOSUPPORT:
        pytest.skip("the kernel has no MPTCP (EPROTONOSUPPORT unfiltered): no control")
    assert unfiltered == "created"
    assert _run(profile, _sockets(mptcp)) == {"mptcp": "created"}


def test_port_rule_guard_api():
    guard = profiles.port_rule_guard()
    base = seccomp.compile("default")
    with_guard = seccomp.compile("default", extra_rules=guard)
    assert with_guard is seccomp.compile("default", extra_rules=list(guard))  # cached
    assert with_guard.bpf != base.bpf
    policy = profiles.default_policy(seccomp.native_arch()).with_rules(guard)
    assert seccomp.compile(policy).bpf == with_guard.bpf
    with pytest.raises(PolicyError, match="extra_rules"):
        seccomp.compile("default", extra_rules=["socket"])
