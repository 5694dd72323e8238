"""Differential check against libseccomp (loaded with ctypes, in tests only).

The same resolved Docker default profile (Docker's decisions alone: libseccomp cannot
take our containment rules as they are, a conditional rule whose action is the
default's) is built with libseccomp's
``seccomp_rule_add_array`` and exported with ``seccomp_export_bpf``; our simulator
runs both programs. They must agree for every syscall number of the table and a set
of argument vectors, except where the difference is ours by design (numbers the
table does not know get ENOSYS) or libseccomp does not know a syscall name.

The other difference by design: we compare an ``int`` argument on the low 32 bits the
kernel reads, libseccomp on all 64. So ours must equal libseccomp's verdict on the
arguments as the kernel sees them (high bits of 32-bit arguments cleared), which is
libseccomp's own verdict whenever those high bits are clear; where they are set and the
verdicts differ, the difference is listed explicitly (``HIGH_BIT_DIFFERENCES``).
"""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from volt_enforce import seccomp
from volt_enforce.seccomp import bpf, profiles
from volt_enforce.seccomp.policy import Action, Op, Policy
from volt_enforce.seccomp.tables import ARCHES, arg_bits, native_arch

# libseccomp's enums (seccomp.h, 2.5): enum scmp_compare and enum scmp_filter_attr
_SCMP_CMP = {Op.NE: 1, Op.LT: 2, Op.LE: 3, Op.EQ: 4, Op.GE: 5, Op.GT: 6, Op.MASKED_EQ: 7}
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_OPTIMIZE = 8


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class LibSeccomp:
    """The few libseccomp calls the tests and benchmarks need."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        L = self.lib
        L.seccomp_init.restype = ctypes.c_void_p
        L.seccomp_init.argtypes = [ctypes.c_uint32]
        L.seccomp_release.argtypes = [ctypes.c_void_p]
        L.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                             ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        L.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        L.seccomp_load.argtypes = [ctypes.c_void_p]
        L.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        L.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        L.seccomp_syscall_resolve_name.restype = ctypes.c_int

    def build(self, policy: Policy, optimize: int = 2) -> tuple[int, set[str]]:
        """A libseccomp context for the policy on the native arch, and the names
        libseccomp did not know."""
        ctx = self.lib.seccomp_init(policy.default_action.ret)
        assert ctx, "seccomp_init failed"
        unknown: set[str] = set()
        if optimize != 1:
            rc = self.lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, optimize)
            assert rc == 0, f"seccomp_attr_set(OPTIMIZE): {rc}"
        for rule in policy.rules:
            arr = (_ArgCmp * max(len(rule.args), 1))(*[
                _ArgCmp(a.index, _SCMP_CMP[a.op], a.value, a.value_two) for a in rule.args])
            for name in rule.names:
                nr = self.lib.seccomp_syscall_resolve_name(name.encode())
                if nr == -1:  # __NR_SCMP_ERROR: a name libseccomp does not know
                    unknown.add(name)
                    continue
                rc = self.lib.seccomp_rule_add_array(ctx, rule.action.ret, nr, len(rule.args), arr)
                assert rc == 0, f"seccomp_rule_add_array({name}, {rule}): {os.strerror(-rc)}"
        return ctx, unknown

    def export(self, ctx: int) -> bytes:
        fd = os.memfd_create("bpf")
        try:
            rc = self.lib.seccomp_export_bpf(ctx, fd)
            assert rc == 0, f"seccomp_export_bpf: {rc}"
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def release(self, ctx: int) -> None:
        self.lib.seccomp_release(ctx)

    def compile(self, policy: Policy, optimize: int = 2) -> tuple[list[bpf.Instruction], set[str]]:
        ctx, unknown = self.build(policy, optimize)
        try:
            return bpf.unpack(self.export(ctx)), unknown
        finally:
            self.release(ctx)


def libseccomp() -> LibSeccomp:
    try:
        return LibSeccomp()
    except OSError:
        pytest.skip("libseccomp.so.2 is not installed (the differential check needs it)")


# ---- the differential check ---------------------------------------------------------

#: Argument vectors around the values Docker's rules compare (socket families,
#: personality values, clone namespace flags) and the 64-bit edges.
VECTORS = [
    (), (0,), (1,), (2,), (8,), (10,), (37,), (38,), (39,), (40,), (41,), (44,),
    (0x20000,), (0x20008,), (0x20001,), (0xFFFFFFFF,), (0xFFFFFFFE,), (1 << 32,),
    ((1 << 32) | 39,), ((1 << 32) | 8,), (0xFFFFFFFF_FFFFFFFF,), (0x11,), (0x01200011,),
    (0x10000000 | 0x11,), (0x20000000,), (0x40000000,), (0x02000000,), (0x00020000,),
    (0x7E020000,), (0x80000000,), (0, 0x7E020000), (0x7FFFFFFF_00000000,),
    ((1 << 32) | 40,), ((1 << 32) | 38,), ((1 << 32) | 0x0400000,), ((1 << 63) | 0x20008,),
]

_U64 = (1 << 64) - 1

#: (syscall, vector) -> (ours, libseccomp's) where a 32-bit argument has high bits set
#: and the kernel reads something else than libseccomp compares.
HIGH_BIT_DIFFERENCES = {
    # socket(int family): AF_VSOCK and AF_ALG with a high bit are > 40 for libseccomp
    ("socket", ((1 << 32) | 40,)): ("ERRNO(1)", "ALLOW"),
    ("socket", ((1 << 32) | 38,)): ("ERRNO(1)", "ALLOW"),
    # personality(unsigned int): the kernel reads PER_LINUX, UNAME26|PER_LINUX32 and
    # the query; libseccomp sees values it does not allow
    ("personality", (1 << 32,)): ("ALLOW", "ERRNO(1)"),
    ("personality", ((1 << 32) | 8,)): ("ALLOW", "ERRNO(1)"),
    ("personality", (_U64,)): ("ALLOW", "ERRNO(1)"),
    ("personality", (0x7FFFFFFF_00000000,)): ("ALLOW", "ERRNO(1)"),
    ("personality", ((1 << 63) | 0x20008,)): ("ALLOW", "ERRNO(1)"),
}


def kernel_view(name: str | None, args: tuple[int, ...]) -> tuple[int, ...]:
    """The arguments as the syscall reads them: each cut to its declared width."""
    if name is None:
        return args
    return tuple(a & ((1 << arg_bits(name, i)) - 1) for i, a in enumerate(args))


@pytest.fixture(scope="module")
def docker_pair():
    arch = native_arch()
    policy = profiles.docker_policy(arch)
    ours = seccomp.compile(policy)
    theirs, unknown = libseccomp().compile(policy, optimize=2)
    return arch, policy, ours, theirs, unknown


def test_libseccomp_misses_only_newer_syscalls(docker_pair):
    _, _, _, _, unknown = docker_pair
    table = ARCHES[native_arch()]
    # libseccomp 2.5.4 knows Linux up to 6.7 or so: what it misses is newer, or another arch's
    for name in unknown:
        nr = table.number(name)
        assert nr is None or nr >= 457 or name in ("uretprobe", "uprobe"), name


def test_same_decisions_as_libseccomp_for_every_number(docker_pair):
    arch, policy, ours, theirs, unknown = docker_pair
    table = ARCHES[arch]
    audit = table.audit_arch
    compared = differing = 0
    high_bits: dict[tuple[str, tuple[int, ...]], tuple[str, str]] = {}
    for nr in range(table.max_nr + 64):
        name = table.by_number.get(nr)
        if name is not None and name in unknown:
            continue  # libseccomp cannot express a rule for it
        vectors = VECTORS if name in ("socket", "personality", "clone", "clone3") else VECTORS[:4]
        for args in vectors:
            full = tuple(args) + (0,) * (6 - len(args))
            got = ours.simulate(nr, full)
            run = lambda a: Action.from_ret(  # noqa: E731
                bpf.run(theirs, bpf.SeccompData(nr=nr, arch=audit, args=a)))
            want = run(full)
            if name is None:
                # by design: numbers the table does not know get ENOSYS, libseccomp the default
                assert got == Action.errno(errno.ENOSYS), (nr, got)
                assert want == policy.default_action, (nr, want)
                differing += 1
                continue
            seen = kernel_view(name, full)
            assert got == run(seen), (name, nr, args, got, run(seen))
            if seen == full:
                assert got == want, (name, nr, args, got, want)
                compared += 1
            elif got != want:
                high_bits[(name, tuple(args))] = (str(got), str(want))
    assert compared > 300 * 4
    assert high_bits == HIGH_BIT_DIFFERENCES


def test_docker_argument_rules_agree(docker_pair):
    _, _, ours, theirs, _ = docker_pair
    table = ARCHES[native_arch()]
    for name in ("socket", "personality", "clone"):
        nr = table.number(name)
        for args in VECTORS:
            full = tuple(args) + (0,) * (6 - len(args))
            seen = kernel_view(name, full)
            want = Action.from_ret(bpf.run(theirs, bpf.SeccompData(nr, table.audit_arch, args=seen)))
            assert ours.simulate(name, full) == want, (name, args)


def test_half_of_libseccomp_instructions(docker_pair):
    _, policy, ours, theirs, _ = docker_pair
    linear, _ = libseccomp().compile(policy, optimize=1)
    assert ours.instructions * 2 <= min(len(theirs), len(linear)), (
        ours.instructions, len(theirs), len(linear))


def test_libseccomp_output_runs_in_our_simulator_like_the_kernel():
    # a cross-check of the simulator itself: libseccomp's own program, our verdicts
    policy = Policy("p", Action.errno(errno.EPERM), (
        seccomp.Rule(("getpid",), seccomp.ALLOW),
        seccomp.Rule(("read",), seccomp.ALLOW, (seccomp.Arg(0, Op.GT, (1 << 32) + 5),)),
        seccomp.Rule(("write",), seccomp.ALLOW, (seccomp.Arg(2, Op.LE, 100),)),
    ))
    insns, _ = libseccomp().compile(policy, optimize=1)
    bpf.validate(insns)
    table = ARCHES[native_arch()]
    run = lambda name, args: Action.from_ret(bpf.run(  # noqa: E731
        insns, bpf.SeccompData(table.number(name), table.audit_arch, args=args)))
    assert run("getpid", (0,) * 6) == seccomp.ALLOW
    assert run("read", ((1 << 32) + 6, 0, 0, 0, 0, 0)) == seccomp.ALLOW
    assert run("read", ((1 << 32) + 5, 0, 0, 0, 0, 0)) == Action.errno(errno.EPERM)
    assert run("read", (1 << 33, 0, 0, 0, 0, 0)) == seccomp.ALLOW
    assert run("write", (0, 0, 100, 0, 0, 0)) == seccomp.ALLOW
    assert run("write", (0, 0, 101, 0, 0, 0)) == Action.errno(errno.EPERM)
    assert run("write", (0, 0, 1 << 32, 0, 0, 0)) == Action.errno(errno.EPERM)
