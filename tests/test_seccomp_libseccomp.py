"""Differential check against libseccomp (loaded with ctypes, in tests only).

The same resolved Docker default profile is built with libseccomp's
``seccomp_rule_add_array`` and exported with ``seccomp_export_bpf``; our simulator
runs both programs. They must agree for every syscall number of the table and a set
of argument vectors, except where the difference is ours by design (numbers the
table does not know get ENOSYS) or libseccomp does not know a syscall name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

import pytest

from volt_enforce import seccomp
from volt_enforce.seccomp import bpf, profiles
from volt_enforce.seccomp.policy import Action, Op, Policy
from volt_enforce.seccomp.tables import ARCHES, native_arch

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
    if ctypes.util.find_library("seccomp") is None:
        try:
            return LibSeccomp()
        except OSError:
            pytest.skip("libseccomp.so.2 is not installed (the differential check needs it)")
    return LibSeccomp()
