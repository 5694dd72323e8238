"""The BPF layer: simulator vectors, the kernel's checks, the action-cache analysis
and the listing."""

from __future__ import annotations

import pytest

from volt_enforce._core import lib
from volt_enforce.seccomp import bpf
from volt_enforce.seccomp.bpf import Instruction, SeccompData, ja, jump, ld_abs, ret

ALLOW = lib.SECCOMP_RET_ALLOW
X86 = lib.AUDIT_ARCH_X86_64


def data(nr=0, arch=X86, args=(0,) * 6, ip=0):
    return SeccompData(nr=nr, arch=arch, instruction_pointer=ip, args=args)


def I(code, k=0, jt=0, jf=0):  # noqa: E743 - a raw instruction
    return Instruction(code, jt, jf, k)


def test_layout_matches_the_kernel():
    assert bpf.INSN_SIZE == 8
    assert (bpf.OFF_NR, bpf.OFF_ARCH, bpf.OFF_IP) == (0, 4, 8)
    assert bpf.arg_offset(0, high=False) == 16 and bpf.arg_offset(5, high=True) == 60
    prog = [ld_abs(bpf.OFF_NR), ret(ALLOW)]
    assert bpf.unpack(bpf.pack(prog)) == prog
    assert bpf.pack([ret(ALLOW)]) == (0x06).to_bytes(2, "little") + b"\0\0" + ALLOW.to_bytes(4, "little")


@pytest.mark.parametrize("offset,expect", [
    (0, 7), (4, X86), (8, 0x1234), (12, 0xAB), (16, 0x89ABCDEF), (20, 0x01234567),
    (56, 0xFFFFFFFF), (60, 0),
])
def test_word_loads(offset, expect):
    d = data(nr=7, args=(0x01234567_89ABCDEF, 0, 0, 0, 0, 0xFFFFFFFF), ip=0xAB_00001234)
    prog = [ld_abs(offset), I(lib.BPF_RET | lib.BPF_A)]
    assert bpf.run(prog, d) == expect


@pytest.mark.parametrize("op,k,a,expect", [
    ("add", 5, 0xFFFFFFFE, 3), ("sub", 5, 3, 0xFFFFFFFE), ("mul", 3, 0x80000001, 0x80000003),
    ("div", 4, 17, 4), ("mod", 4, 17, 1), ("or", 0xF0, 0x0F, 0xFF), ("and", 0xF0, 0xFF, 0xF0),
    ("xor", 0xFF, 0x0F, 0xF0), ("lsh", 4, 0x10000001, 0x10), ("rsh", 4, 0x100, 0x10),
])
def test_alu(op, k, a, expect):
    prog = [I(lib.BPF_LD | lib.BPF_IMM, a), bpf.alu(op, k), I(lib.BPF_RET | lib.BPF_A)]
    assert bpf.run(prog, data()) == expect


def test_alu_with_x_scratch_memory_and_misc():
    prog = [
        I(lib.BPF_LDX | lib.BPF_IMM, 3),             # x = 3
        I(lib.BPF_LD | lib.BPF_IMM, 10),              # a = 10
        I(lib.BPF_ALU | lib.BPF_SUB | lib.BPF_X),     # a = 7
        I(lib.BPF_ST, 2),                             # M[2] = 7
        I(lib.BPF_MISC | lib.BPF_TAX),                # x = 7
        I(lib.BPF_LD | lib.BPF_IMM, 0),
        I(lib.BPF_ALU | lib.BPF_NEG),                 # a = 0
        I(lib.BPF_LD | lib.BPF_MEM, 2),               # a = 7
        I(lib.BPF_JMP | lib.BPF_JEQ | lib.BPF_X, 0, 1, 0),  # a == x
        ret(1),
        ret(2),
    ]
    bpf.validate(prog)
    assert bpf.run(prog, data()) == 2


def test_division_by_zero_in_x_returns_zero():
    prog = [I(lib.BPF_LDX | lib.BPF_IMM, 0), I(lib.BPF_ALU | lib.BPF_DIV | lib.BPF_X), ret(ALLOW)]
    assert bpf.run(prog, data()) == 0


@pytest.mark.parametrize("op,k,a,taken", [
    ("jeq", 5, 5, True), ("jeq", 5, 6, False), ("jgt", 5, 6, True), ("jgt", 5, 5, False),
    ("jge", 5, 5, True), ("jge", 5, 4, False), ("jset", 0x10, 0x30, True), ("jset", 0x10, 0x20, False),
    ("jgt", 0x7FFFFFFF, 0x80000000, True),  # unsigned
])
def test_jumps(op, k, a, taken):
    prog = [I(lib.BPF_LD | lib.BPF_IMM, a), jump(op, k, 1, 0), ret(1), ret(2)]
    assert bpf.run(prog, data()) == (2 if taken else 1)


def test_ja_is_32_bit():
    prog = [ja(300)] + [ret(1)] * 300 + [ret(2)]
    bpf.validate(prog)
    assert bpf.run(prog, data()) == 2


@pytest.mark.parametrize("prog,msg", [
    ([], "instructions"),
    ([ret(0)] * 4097, "instructions"),
    ([ld_abs(64), ret(0)], "outside"),
    ([ld_abs(2), ret(0)], "outside"),
    ([I(lib.BPF_LD | lib.BPF_B | lib.BPF_ABS, 0), ret(0)], "not allowed"),
    ([I(lib.BPF_LD | lib.BPF_W | lib.BPF_IND, 0), ret(0)], "not allowed"),
    ([jump("jeq", 0, 1, 0), ret(0)], "leaves"),
    ([ja(1), ret(0)], "leaves"),
    ([ld_abs(0)], "last instruction"),
    ([bpf.alu("div", 0), ret(0)], "zero"),
    ([I(lib.BPF_LD | lib.BPF_MEM, 1), ret(0)], "before it is written"),
    ([I(lib.BPF_ST, 16), ret(0)], "out of range"),
    ([I(0x07 | 0xF0), ret(0)], "misc"),
])
def test_validate_refuses_what_the_kernel_refuses(prog, msg):
    with pytest.raises(bpf.BPFError, match=msg):
        bpf.validate(prog)


def test_memory_written_on_one_path_only():
    prog = [ld_abs(0), jump("jeq", 1, 0, 1), I(lib.BPF_ST, 0), I(lib.BPF_LD | lib.BPF_MEM, 0), ret(0)]
    with pytest.raises(bpf.BPFError, match="before it is written"):
        bpf.validate(prog)


def test_const_allow_follows_the_kernel():
    prog = [
        ld_abs(bpf.OFF_ARCH), jump("jeq", X86, 0, 6),
        ld_abs(bpf.OFF_NR), jump("jeq", 39, 3, 0),        # getpid -> ALLOW
        jump("jeq", 1, 0, 3),                              # write -> check args
        ld_abs(bpf.arg_offset(0, False)), jump("jeq", 1, 0, 1),
        ret(ALLOW),
        ret(lib.SECCOMP_RET_ERRNO | 1),
    ]
    bpf.validate(prog)
    assert bpf.const_allow(prog, X86, 39)
    assert not bpf.const_allow(prog, X86, 1)      # reads args[0]
    assert not bpf.const_allow(prog, X86, 2)      # denied
    assert not bpf.const_allow(prog, lib.AUDIT_ARCH_I386, 39)
    masked = [ld_abs(bpf.OFF_NR), bpf.alu("and", 0xFF), jump("jeq", 39, 0, 1), ret(ALLOW), ret(0)]
    assert bpf.const_allow(masked, X86, 0x100 | 39)
    assert not bpf.const_allow([I(lib.BPF_LD | lib.BPF_IMM, 39), ret(ALLOW)], X86, 39)


def test_ret_names():
    assert bpf.ret_name(ALLOW) == "ALLOW"
    assert bpf.ret_name(lib.SECCOMP_RET_ERRNO | 38) == "ERRNO(38)"
    assert bpf.ret_name(lib.SECCOMP_RET_KILL_PROCESS) == "KILL_PROCESS"
    assert bpf.ret_name(lib.SECCOMP_RET_TRACE | 3) == "TRACE(3)"


def test_disassembly():
    prog = [
        ld_abs(bpf.OFF_ARCH), jump("jeq", X86, 1, 0), ret(lib.SECCOMP_RET_KILL_PROCESS),
        ld_abs(bpf.OFF_NR), jump("jge", 39, 0, 3), ld_abs(bpf.arg_offset(2, True)),
        bpf.alu("and", 0xF0), ja(0), ret(ALLOW), ret(lib.SECCOMP_RET_ERRNO | 1),
    ]
    text = bpf.disassemble(prog, names={39: "getpid"}, arches={X86: "x86_64"})
    lines = text.splitlines()
    assert lines[0] == "0: ld  arch"
    assert lines[1].startswith("1: jeq #0xc000003e, 3, 2") and lines[1].endswith("; x86_64")
    assert lines[4].startswith("4: jge #0x27, 5, 8") and lines[4].endswith("; getpid")
    assert lines[5:] == ["5: ld  args[2].hi", "6: and #0xf0", "7: ja  8", "8: ret ALLOW",
                         "9: ret ERRNO(1)"]
