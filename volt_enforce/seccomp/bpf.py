"""Classic BPF for seccomp: instructions, a validator, a simulator, the kernel's
action-cache analysis and a disassembler.

The simulator is the oracle of the tests: it runs a program the way the kernel's
seccomp runs it (``struct seccomp_data`` as the packet, word loads only) and
returns the 32-bit value the filter returns. ``const_allow`` repeats the kernel's
``seccomp_is_const_allow`` (kernel/seccomp.c, 5.11+): a syscall whose path reads only
``nr`` and ``arch`` and reaches ``RET ALLOW`` is allowed from a bitmap without
running the filter at all.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .._core import ffi, lib

__all__ = [
    "Instruction",
    "SeccompData",
    "BPFError",
    "INSN_SIZE",
    "OFF_NR",
    "OFF_ARCH",
    "OFF_IP",
    "arg_offset",
    "pack",
    "unpack",
    "validate",
    "run",
    "const_allow",
    "disassemble",
    "ld_abs",
    "jump",
    "ja",
    "ret",
    "alu",
]

#: Size of ``struct sock_filter``.
INSN_SIZE: int = ffi.sizeof("struct sock_filter")
_INSN = struct.Struct("=HBBI")
assert _INSN.size == INSN_SIZE

#: Offsets into ``struct seccomp_data``.
OFF_NR: int = ffi.offsetof("struct seccomp_data", "nr")
OFF_ARCH: int = ffi.offsetof("struct seccomp_data", "arch")
OFF_IP: int = ffi.offsetof("struct seccomp_data", "instruction_pointer")
_OFF_ARGS: int = ffi.offsetof("struct seccomp_data", "args")
_DATA_SIZE: int = ffi.sizeof("struct seccomp_data")
_U32 = 0xFFFFFFFF


def arg_offset(index: int, high: bool) -> int:
    """Offset of the low or high 32-bit word of ``args[index]`` (little-endian ABIs)."""
    return _OFF_ARGS + 8 * index + (4 if high else 0)


class Instruction(NamedTuple):
    """One ``struct sock_filter``."""

    code: int
    jt: int
    jf: int
    k: int


class BPFError(ValueError):
    """A program the kernel would reject."""


# ---- building single instructions ---------------------------------------------

_JUMP_OPS = {"jeq": lib.BPF_JEQ, "jgt": lib.BPF_JGT, "jge": lib.BPF_JGE, "jset": lib.BPF_JSET}
_ALU_OPS = {
    "add": lib.BPF_ADD, "sub": lib.BPF_SUB, "mul": lib.BPF_MUL, "div": lib.BPF_DIV,
    "or": lib.BPF_OR, "and": lib.BPF_AND, "lsh": lib.BPF_LSH, "rsh": lib.BPF_RSH,
    "mod": lib.BPF_MOD, "xor": lib.BPF_XOR,
}


def ld_abs(offset: int) -> Instruction:
    return Instruction(lib.BPF_LD | lib.BPF_W | lib.BPF_ABS, 0, 0, offset)


def jump(op: str, k: int, jt: int, jf: int) -> Instruction:
    return Instruction(lib.BPF_JMP | _JUMP_OPS[op] | lib.BPF_K, jt, jf, k & _U32)


def ja(offset: int) -> Instruction:
    return Instruction(lib.BPF_JMP | lib.BPF_JA, 0, 0, offset)


def ret(k: int) -> Instruction:
    return Instruction(lib.BPF_RET | lib.BPF_K, 0, 0, k & _U32)


def alu(op: str, k: int) -> Instruction:
    return Instruction(lib.BPF_ALU | _ALU_OPS[op] | lib.BPF_K, 0, 0, k & _U32)


def pack(insns: Iterable[Instruction]) -> bytes:
    """The native ``struct sock_filter`` array for ``seccomp(2)``."""
    return b"".join(_INSN.pack(*i) for i in insns)


def unpack(data: bytes) -> list[Instruction]:
    if len(data) % INSN_SIZE:
        raise BPFError(f"{len(data)} bytes is not a whole number of instructions")
    return [Instruction(*t) for t in _INSN.iter_unpack(data)]


# ---- decoding -------------------------------------------------------------------

def _cls(code: int) -> int:
    return code & 0x07


def _size(code: int) -> int:
    return code & 0x18


def _mode(code: int) -> int:
    return code & 0xE0


def _op(code: int) -> int:
    return code & 0xF0


def _src(code: int) -> int:
    return code & 0x08


def _rval(code: int) -> int:
    return code & 0x18


_LD_W_ABS = lib.BPF_LD | lib.BPF_W | lib.BPF_ABS


def validate(insns: Sequence[Instruction]) -> None:
    """Raise BPFError for what the kernel's checks (``bpf_check_classic`` and
    ``seccomp_check_filter``) refuse: a bad length, an opcode seccomp does not allow,
    a load outside ``struct seccomp_data``, a jump out of the program, a constant
    division by zero, scratch memory read before it is written, or a last
    instruction that is not a return."""
    n = len(insns)
    if not 1 <= n <= lib.BPF_MAXINSNS:
        raise BPFError(f"{n} instructions; the kernel takes 1 to {lib.BPF_MAXINSNS}")
    for pc, ins in enumerate(insns):
        code, k = ins.code, ins.k
        cls = _cls(code)
        if cls == lib.BPF_LD or cls == lib.BPF_LDX:
            mode = _mode(code)
            if mode == lib.BPF_ABS and cls == lib.BPF_LD and _size(code) == lib.BPF_W:
                if k >= _DATA_SIZE or k % 4:
                    raise BPFError(f"{pc}: load of offset {k} outside struct seccomp_data")
            elif mode == lib.BPF_LEN and _size(code) == lib.BPF_W:
                pass
            elif mode in (lib.BPF_IMM,) and _size(code) == lib.BPF_W:
                pass
            elif mode == lib.BPF_MEM and _size(code) == lib.BPF_W:
                if k >= lib.BPF_MEMWORDS:
                    raise BPFError(f"{pc}: scratch memory {k} out of range")
            else:
                raise BPFError(f"{pc}: load {code:#x} is not allowed in seccomp")
        elif cls in (lib.BPF_ST, lib.BPF_STX):
            if k >= lib.BPF_MEMWORDS:
                raise BPFError(f"{pc}: scratch memory {k} out of range")
        elif cls == lib.BPF_ALU:
            op = _op(code)
            if op not in _ALU_OPS.values() and op != lib.BPF_NEG:
                raise BPFError(f"{pc}: ALU op {code:#x} unknown")
            if op in (lib.BPF_DIV, lib.BPF_MOD) and _src(code) == lib.BPF_K and k == 0:
                raise BPFError(f"{pc}: division by constant zero")
        elif cls == lib.BPF_JMP:
            op = _op(code)
            if op == lib.BPF_JA:
                if k >= n - pc - 1:
                    raise BPFError(f"{pc}: ja {k} leaves the program")
            elif op in _JUMP_OPS.values():
                if pc + 1 + max(ins.jt, ins.jf) >= n:
                    raise BPFError(f"{pc}: jump leaves the program")
            else:
                raise BPFError(f"{pc}: jump op {code:#x} unknown")
        elif cls == lib.BPF_RET:
            if _rval(code) not in (lib.BPF_K, lib.BPF_A):
                raise BPFError(f"{pc}: return {code:#x} unknown")
        elif cls == lib.BPF_MISC:
            if code not in (lib.BPF_MISC | lib.BPF_TAX, lib.BPF_MISC | lib.BPF_TXA):
                raise BPFError(f"{pc}: misc op {code:#x} unknown")
        else:
            raise BPFError(f"{pc}: instruction class {code:#x} unknown")
    if _cls(insns[-1].code) != lib.BPF_RET:
        raise BPFError("the last instruction is not a return")
    _check_memory(insns)


def _check_memory(insns: Sequence[Instruction]) -> None:
    """Every scratch-memory read is preceded by a write on every path (as the kernel checks)."""
    n = len(insns)
    valid: list[int | None] = [None] * n  # bitmask of written slots on entry; None: unreached
    valid[0] = 0
    for pc, ins in enumerate(insns):
        mem = valid[pc]
        if mem is None:
            continue
        cls, code = _cls(ins.code), ins.code
        if cls in (lib.BPF_ST, lib.BPF_STX):
            mem |= 1 << ins.k
        elif cls in (lib.BPF_LD, lib.BPF_LDX) and _mode(code) == lib.BPF_MEM:
            if not mem >> ins.k & 1:
                raise BPFError(f"{pc}: scratch memory {ins.k} read before it is written")
        if cls == lib.BPF_RET:
            continue
        if cls == lib.BPF_JMP:
            if _op(code) == lib.BPF_JA:
                succ = [pc + 1 + ins.k]
            else:
                succ = [pc + 1 + ins.jt, pc + 1 + ins.jf]
        else:
            succ = [pc + 1]
        for s in succ:
            if s < n:
                prev = valid[s]
                valid[s] = mem if prev is None else prev & mem


# ---- running ----------------------------------------------------------------------

@dataclass(frozen=True)
class SeccompData:
    """The input a filter sees (``struct seccomp_data``)."""

    nr: int
    arch: int
    instruction_pointer: int = 0
    args: tuple[int, ...] = field(default=(0, 0, 0, 0, 0, 0))

    def word(self, offset: int) -> int:
        if offset == OFF_NR:
            return self.nr & _U32
        if offset == OFF_ARCH:
            return self.arch & _U32
        if offset in (OFF_IP, OFF_IP + 4):
            return self.instruction_pointer >> (32 if offset != OFF_IP else 0) & _U32
        i, rem = divmod(offset - _OFF_ARGS, 8)
        args = tuple(self.args) + (0,) * (6 - len(self.args))
        return args[i] >> (32 if rem else 0) & _U32


def run(insns: Sequence[Instruction], data: SeccompData) -> int:
    """The value the program returns for ``data`` (classic BPF semantics)."""
    a = x = 0
    mem = [0] * lib.BPF_MEMWORDS
    pc = 0
    n = len(insns)
    while pc < n:
        code, jt, jf, k = insns[pc]
        cls = _cls(code)
        pc += 1
        if cls == lib.BPF_LD:
            mode = _mode(code)
            if mode == lib.BPF_ABS:
                a = data.word(k)
            elif mode == lib.BPF_IMM:
                a = k
            elif mode == lib.BPF_MEM:
                a = mem[k]
            elif mode == lib.BPF_LEN:
                a = _DATA_SIZE
            else:
                raise BPFError(f"{pc - 1}: load {code:#x} is not allowed in seccomp")
        elif cls == lib.BPF_LDX:
            mode = _mode(code)
            if mode == lib.BPF_IMM:
                x = k
            elif mode == lib.BPF_MEM:
                x = mem[k]
            else:
                x = {lib.BPF_LEN: _DATA_SIZE}[mode]
        elif cls == lib.BPF_ST:
            mem[k] = a
        elif cls == lib.BPF_STX:
            mem[k] = x
        elif cls == lib.BPF_ALU:
            op = _op(code)
            v = x if _src(code) == lib.BPF_X else k
            if op == lib.BPF_NEG:
                a = -a & _U32
            elif op in (lib.BPF_DIV, lib.BPF_MOD) and v == 0:
                return 0  # the kernel ends the program with 0 on division by zero
            else:
                a = _ALU[op](a, v) & _U32
        elif cls == lib.BPF_JMP:
            op = _op(code)
            if op == lib.BPF_JA:
                pc += k
                continue
            v = x if _src(code) == lib.BPF_X else k
            pc += jt if _JMP[op](a, v) else jf
        elif cls == lib.BPF_RET:
            return a if _rval(code) == lib.BPF_A else k
        elif cls == lib.BPF_MISC:
            if code == lib.BPF_MISC | lib.BPF_TAX:
                x = a
            else:
                a = x
    raise BPFError("the program ran off its end")


_ALU: dict[int, Callable[[int, int], int]] = {
    lib.BPF_ADD: lambda a, v: a + v,
    lib.BPF_SUB: lambda a, v: a - v,
    lib.BPF_MUL: lambda a, v: a * v,
    lib.BPF_DIV: lambda a, v: a // v,
    lib.BPF_MOD: lambda a, v: a % v,
    lib.BPF_OR: lambda a, v: a | v,
    lib.BPF_AND: lambda a, v: a & v,
    lib.BPF_XOR: lambda a, v: a ^ v,
    lib.BPF_LSH: lambda a, v: a << v if v < 32 else 0,
    lib.BPF_RSH: lambda a, v: a >> v if v < 32 else 0,
}
_JMP: dict[int, Callable[[int, int], bool]] = {
    lib.BPF_JEQ: lambda a, v: a == v,
    lib.BPF_JGT: lambda a, v: a > v,
    lib.BPF_JGE: lambda a, v: a >= v,
    lib.BPF_JSET: lambda a, v: bool(a & v),
}


def const_allow(insns: Sequence[Instruction], arch: int, nr: int) -> bool:
    """True when the kernel's action cache will allow ``nr`` on ``arch`` without
    running the filter: the path reads only ``nr``/``arch`` and returns ALLOW."""
    reg = 0
    pc = 0
    n = len(insns)
    ld, ret_k, ja_, and_k, jumps = _LD_W_ABS, _RET_K, _JA, _AND_K, _CONST_JUMP_OPS
    while pc < n:
        code, jt, jf, k = insns[pc]
        if code == ld:
            if k == OFF_NR:
                reg = nr & _U32
            elif k == OFF_ARCH:
                reg = arch & _U32
            else:
                return False
        elif code == ret_k:
            return k == lib.SECCOMP_RET_ALLOW
        elif code == ja_:
            pc += k
        elif code in jumps:
            pc += jt if jumps[code](reg, k) else jf
        elif code == and_k:
            reg &= k
        else:
            return False
        pc += 1
    return False


_RET_K = lib.BPF_RET | lib.BPF_K
_JA = lib.BPF_JMP | lib.BPF_JA
_AND_K = lib.BPF_ALU | lib.BPF_AND | lib.BPF_K
_CONST_JUMP_OPS = {lib.BPF_JMP | op | lib.BPF_K: f for op, f in _JMP.items()}


# ---- listing ------------------------------------------------------------------------

_RET_NAMES = [
    (lib.SECCOMP_RET_KILL_PROCESS, "KILL_PROCESS"),
    (lib.SECCOMP_RET_KILL_THREAD, "KILL_THREAD"),
    (lib.SECCOMP_RET_TRAP, "TRAP"),
    (lib.SECCOMP_RET_ERRNO, "ERRNO"),
    (lib.SECCOMP_RET_USER_NOTIF, "USER_NOTIF"),
    (lib.SECCOMP_RET_TRACE, "TRACE"),
    (lib.SECCOMP_RET_LOG, "LOG"),
    (lib.SECCOMP_RET_ALLOW, "ALLOW"),
]


def ret_name(value: int) -> str:
    """``ALLOW``, ``ERRNO(1)``, ``KILL_PROCESS`` ... for a filter return value."""
    action = value & lib.SECCOMP_RET_ACTION_FULL
    data = value & lib.SECCOMP_RET_DATA
    for v, name in _RET_NAMES:
        if v == action:
            return f"{name}({data})" if data or name in ("ERRNO", "TRACE") else name
    return f"{value:#010x}"


def _word_name(k: int) -> str:
    if k == OFF_NR:
        return "nr"
    if k == OFF_ARCH:
        return "arch"
    if k in (OFF_IP, OFF_IP + 4):
        return "ip" + ("_hi" if k != OFF_IP else "")
    if _OFF_ARGS <= k < _DATA_SIZE:
        i, rem = divmod(k - _OFF_ARGS, 8)
        return f"args[{i}]" + (".hi" if rem else ".lo")
    return f"[{k}]"


def disassemble(insns: Sequence[Instruction],
                names: Mapping[int, str] | None = None,
                arches: Mapping[int, str] | None = None) -> str:
    """A readable listing: one line per instruction, jump targets as absolute lines,
    with syscall names (``names``: nr -> name) and arch names in the comments."""
    names = names or {}
    arches = arches or {}
    width = len(str(max(len(insns) - 1, 0)))
    lines = []
    loaded: str | None = None
    for pc, ins in enumerate(insns):
        code, jt, jf, k = ins
        cls = _cls(code)
        text, note = "", ""
        if code == _LD_W_ABS:
            loaded = _word_name(k)
            text = f"ld  {loaded}"
        elif cls == lib.BPF_LD or cls == lib.BPF_LDX:
            reg = "" if cls == lib.BPF_LD else "x"
            mode = _mode(code)
            src = {lib.BPF_IMM: f"#{k:#x}", lib.BPF_MEM: f"M[{k}]", lib.BPF_LEN: "len"}.get(
                mode, f"?{code:#x}")
            text = f"ld{reg} {src}"
            loaded = None if cls == lib.BPF_LD else loaded
        elif cls == lib.BPF_ST or cls == lib.BPF_STX:
            text = f"st{'x' if cls == lib.BPF_STX else ''} M[{k}]"
        elif cls == lib.BPF_ALU:
            alu_name = {v: n for n, v in _ALU_OPS.items()}.get(_op(code), "neg")
            text = f"{alu_name} {'x' if _src(code) == lib.BPF_X else f'#{k:#x}'}"
            loaded = None
        elif cls == lib.BPF_JMP:
            op = _op(code)
            if op == lib.BPF_JA:
                text = f"ja  {pc + 1 + k}"
            else:
                name = {v: n for n, v in _JUMP_OPS.items()}.get(op, "j?")
                text = f"{name} #{k:#x}, {pc + 1 + jt}, {pc + 1 + jf}"
                if loaded == "nr" and k in names:
                    note = names[k]
                elif loaded == "arch" and k in arches:
                    note = arches[k]
        elif cls == lib.BPF_RET:
            text = "ret a" if code == lib.BPF_RET | lib.BPF_A else f"ret {ret_name(k)}"
        elif cls == lib.BPF_MISC:
            text = "tax" if code == lib.BPF_MISC | lib.BPF_TAX else "txa"
            loaded = None
        line = f"{pc:>{width}}: {text}"
        if note:
            line = f"{line:<36}; {note}"
        lines.append(line)
    return "\n".join(lines)
