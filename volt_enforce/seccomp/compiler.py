"""Policy -> BPF.

The program, for a native architecture N with compat ABIs:

1. ``ld arch``; N goes on, N's compat arch (i386 on x86_64, arm on aarch64) gets its
   own search tree when the policy covers it and the deny action otherwise, any other
   architecture is killed.
2. ``ld nr``; a balanced binary search (``jge``) over ranges of numbers: consecutive
   numbers with the same decision are one range, so the tree has one leaf per range,
   not per syscall. Numbers the table does not know (holes, above the highest) get the
   unknown action; on x86_64 everything from ``VE_X32_SYSCALL_BIT`` up is x32 (or a
   negative number) and gets the compat deny action unless the policy covers x32.
3. A leaf is a shared ``ret`` or an argument block: the syscall's conditional rules in
   precedence order. An argument is compared as wide as the kernel reads it
   (``tables.arg_bits``): a 64-bit one as word tests on the high and low halves, an
   ``int`` or ``unsigned int`` on the low word alone (whatever a caller puts in the high
   word, the kernel never sees it), a ``umode_t`` on the low word masked to 16 bits.
   Single-bit and all-clear masks are ``jset`` tests.

An unconditional ALLOW path therefore reads only ``arch`` and ``nr``, which is what
the kernel's action cache needs to skip the filter for that syscall. A jump-threading
pass then removes tests that earlier tests on the same path already decide, and
reloads of a word that the accumulator still holds. Layout puts the false branch
next, shared returns last, and inserts trampolines (a copy of the ``ret`` or a ``ja``)
for conditional jumps longer than 255 instructions.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .._core import lib
from ..errors import PolicyError
from . import bpf
from .bpf import Instruction
from .policy import KILL_PROCESS, Action, Arg, Op, Policy
from .tables import ARCHES, COMPAT, ArchTable, arg_bits

__all__ = ["Program", "compile_policy", "compat_deny_action", "unknown_action"]

_U32 = 0xFFFFFFFF
_MAX_JUMP = 255


# ---- decisions ----------------------------------------------------------------

#: An argument condition and the bits of the argument the kernel reads.
Cond = tuple[Arg, int]
#: A syscall's decision: conditional rules in precedence order, then the fallback.
Decision = tuple[tuple[tuple[tuple[Cond, ...], Action], ...], Action]


def unknown_action(policy: Policy) -> Action:
    if policy.unknown_action is not None:
        return policy.unknown_action
    return policy.default_action if not policy.default_action.denies else Action.errno(_errno.ENOSYS)


def compat_deny_action(policy: Policy) -> Action:
    """For compat ABIs the policy does not cover: its default, unless that lets the
    call through, so that a denylist cannot be bypassed with int 0x80 or x32."""
    return policy.default_action if policy.default_action.denies else KILL_PROCESS


def decisions(policy: Policy, table: ArchTable) -> dict[int, Decision]:
    """nr -> decision for every syscall of the table."""
    per_nr: dict[int, list[tuple[int, int, tuple[Cond, ...], Action]]] = {}
    for index, rule in enumerate(policy.rules):
        for name in dict.fromkeys(rule.names):
            nr = table.number(name)
            if nr is not None:
                conds = tuple((a, arg_bits(name, a.index, table.bits)) for a in rule.args)
                per_nr.setdefault(nr, []).append((rule.action.severity, index, conds, rule.action))
    out: dict[int, Decision] = {}
    for nr in table.syscalls.values():
        rules: list[tuple[tuple[Cond, ...], Action]] = []
        fallback = policy.default_action
        for _sev, _i, args, action in sorted(per_nr.get(nr, ()), key=lambda r: (r[0], r[1])):
            if not args:
                fallback = action
                break
            if (args, action) not in rules:  # a repeated rule can never match anew
                rules.append((args, action))
        while rules and rules[-1][1] == fallback:  # ends in the fallback anyway
            rules.pop()
        out[nr] = (tuple(rules), fallback)
    return out


def _add(out: list[tuple[int, Decision]], start: int, d: Decision) -> None:
    if out and start <= out[-1][0]:
        raise AssertionError("ranges out of order")
    if not out or out[-1][1] != d:
        out.append((start, d))


def _ranges(out: list[tuple[int, Decision]], start: int, table: ArchTable,
            decided: dict[int, Decision], unknown: Decision) -> None:
    """Append [(start, decision)] for start .. the table's highest number, then the
    unknown action after it; equal neighbours merged."""
    nxt = start
    for nr in sorted(set(table.syscalls.values())):
        if nr > nxt:
            _add(out, nxt, unknown)  # a hole
        _add(out, nr, decided[nr])
        nxt = nr + 1
    _add(out, nxt, unknown)


# ---- the graph --------------------------------------------------------------------

class Node:
    """One instruction. ``ld``/``and``: ``t`` is the next node; jumps: ``t``/``f``."""

    __slots__ = ("op", "k", "t", "f")

    def __init__(self, op: str, k: int, t: Node | None = None, f: Node | None = None):
        self.op, self.k, self.t, self.f = op, k, t, f

    @property
    def is_jump(self) -> bool:
        return self.op in ("jeq", "jgt", "jge", "jset")

    def successors(self) -> tuple[Node, ...]:
        if self.op == "ret":
            return ()
        if self.is_jump:
            return (self.t, self.f)  # type: ignore[return-value]
        return (self.t,)  # type: ignore[return-value]


class _Builder:
    def __init__(self) -> None:
        self.rets: dict[int, Node] = {}
        self.blocks: dict[Decision, Node] = {}

    def ret(self, action: Action) -> Node:
        node = self.rets.get(action.ret)
        if node is None:
            node = self.rets[action.ret] = Node("ret", action.ret)
        return node

    # word tests (accumulator loaded with the word first)
    def test(self, off: int, op: str, k: int, t: Node, f: Node) -> Node:
        if t is f:
            return t
        return Node("ld", off, Node(op, k, t, f))

    def gt(self, off: int, k: int, t: Node, f: Node) -> Node:
        return f if k == _U32 else self.test(off, "jgt", k, t, f)

    def ge(self, off: int, k: int, t: Node, f: Node) -> Node:
        return t if k == 0 else self.test(off, "jge", k, t, f)

    def masked(self, off: int, mask: int, want: int, t: Node, f: Node) -> Node:
        if want & ~mask & _U32:
            return f
        if mask == 0:
            return t
        if mask == _U32:
            return self.test(off, "jeq", want, t, f)
        if want == 0:  # no bit of the mask set
            return self.test(off, "jset", mask, f, t)
        if want == mask and mask & (mask - 1) == 0:  # the one bit set
            return self.test(off, "jset", mask, t, f)
        if t is f:
            return t
        return Node("ld", off, Node("and", mask, Node("jeq", want, t, f)))

    def short(self, arg: Arg, op: Op, bits: int, t: Node, f: Node) -> Node:
        """EQ/GT/GE on an argument narrower than a word: the low word masked."""
        width = (1 << bits) - 1
        v = arg.value
        lo = bpf.arg_offset(arg.index, high=False)
        if op == Op.EQ:
            if v > width:
                return f
            jump = Node("jeq", v, t, f)
        elif op == Op.GT:
            if v >= width:
                return f
            jump = Node("jgt", v, t, f)
        else:
            if v == 0:
                return t
            if v > width:
                return f
            jump = Node("jge", v, t, f)
        return t if t is f else Node("ld", lo, Node("and", width, jump))

    def cond(self, arg: Arg, bits: int, t: Node, f: Node) -> Node:
        """``arg`` on the low ``bits`` bits of the argument (64: all of it)."""
        lo = bpf.arg_offset(arg.index, high=False)
        hi = bpf.arg_offset(arg.index, high=True)
        v = arg.value
        v_lo, v_hi = v & _U32, v >> 32
        narrow = bits <= 32  # the high word is 0 as far as the comparison goes
        op = arg.op
        if op in (Op.NE, Op.LT, Op.LE):
            t, f = f, t
            op = {Op.NE: Op.EQ, Op.LT: Op.GE, Op.LE: Op.GT}[op]
        if bits < 32 and op != Op.MASKED_EQ:
            return self.short(arg, op, bits, t, f)
        if op == Op.EQ:
            low = self.test(lo, "jeq", v_lo, t, f)
            if narrow:
                return low if v_hi == 0 else f
            return self.test(hi, "jeq", v_hi, low, f)
        if op in (Op.GT, Op.GE):
            low = self.gt(lo, v_lo, t, f) if op == Op.GT else self.ge(lo, v_lo, t, f)
            if narrow:
                return low if v_hi == 0 else f
            if v_hi == 0:  # high > 0 decides true
                return self.test(hi, "jeq", 0, low, t)
            if v_hi == _U32:  # high cannot be greater
                return self.test(hi, "jeq", v_hi, low, f)
            if low is t:
                return self.test(hi, "jge", v_hi, t, f)
            if low is f:
                return self.test(hi, "jgt", v_hi, t, f)
            return Node("ld", hi, Node("jgt", v_hi, t, Node("jeq", v_hi, low, f)))
        # MASKED_EQ: (arg & value) == value_two
        m, d = arg.value, arg.value_two
        if d & ~m:
            return f
        if bits < 32:
            m &= (1 << bits) - 1
            if d & ~m:
                return f
        low = self.masked(lo, m & _U32, d & _U32, t, f)
        if narrow:
            return low if d >> 32 == 0 else f
        return self.masked(hi, m >> 32, d >> 32, low, f)

    def block(self, decision: Decision) -> Node:
        node = self.blocks.get(decision)
        if node is not None:
            return node
        rules, fallback = decision
        entry = self.ret(fallback)
        for args, action in reversed(rules):
            ok = self.ret(action)
            for arg, bits in reversed(args):
                ok = self.cond(arg, bits, ok, entry)
            entry = ok
        self.blocks[decision] = entry
        return entry

    def tree(self, ranges: Sequence[tuple[int, Decision]]) -> Node:
        """A balanced search over ranges; the accumulator holds nr."""
        if len(ranges) == 1:
            return self.block(ranges[0][1])
        mid = (len(ranges) + 1) // 2
        return Node("jge", ranges[mid][0], self.tree(ranges[mid:]), self.tree(ranges[:mid]))


# ---- jump threading ------------------------------------------------------------------

# facts: word offset -> (lo, hi, excluded values); the accumulator: a word offset or None
_Facts = dict[int, tuple[int, int, frozenset[int]]]


@dataclass
class _State:
    acc: int | None
    facts: _Facts

    def fact(self, off: int) -> tuple[int, int, frozenset[int]]:
        return self.facts.get(off, (0, _U32, frozenset()))


def _meet(a: _State | None, b: _State) -> _State:
    if a is None:
        return b
    facts: _Facts = {}
    for off in a.facts.keys() & b.facts.keys():
        lo1, hi1, ex1 = a.facts[off]
        lo2, hi2, ex2 = b.facts[off]
        facts[off] = (min(lo1, lo2), max(hi1, hi2), ex1 & ex2)
    return _State(a.acc if a.acc == b.acc else None, facts)


def _decide(node: Node, lo: int, hi: int, ex: frozenset[int]) -> bool | None:
    k = node.k
    if node.op == "jeq":
        if lo == hi:
            return lo == k
        if k < lo or k > hi or k in ex:
            return False
    elif node.op == "jgt":
        if lo > k:
            return True
        if hi <= k:
            return False
    elif node.op == "jge":
        if lo >= k:
            return True
        if hi < k:
            return False
    elif node.op == "jset":
        if lo == hi:
            return bool(lo & k)
        if hi < (k & -k):
            return False
    return None


def _refine(state: _State, node: Node, taken: bool) -> _State:
    """The state on one branch of a jump on the accumulator."""
    if state.acc is None or node.op == "jset":
        return state
    lo, hi, ex = state.fact(state.acc)
    k = node.k
    if node.op == "jeq":
        if taken:
            lo, hi, ex = k, k, frozenset()
        else:
            ex = ex | {k}
    elif node.op == "jgt":
        lo, hi = (max(lo, k + 1), hi) if taken else (lo, min(hi, k))
    elif node.op == "jge":
        lo, hi = (max(lo, k), hi) if taken else (lo, min(hi, k - 1))
    while lo in ex and lo < hi:
        lo += 1
    while hi in ex and hi > lo:
        hi -= 1
    ex = frozenset(v for v in ex if lo < v < hi)
    facts = dict(state.facts)
    facts[state.acc] = (lo, hi, ex)
    return _State(state.acc, facts)


def _step(node: Node, state: _State) -> Iterator[tuple[str, Node, _State]]:
    if node.op == "ld":
        yield "t", node.t, _State(node.k, state.facts)  # type: ignore[misc]
    elif node.op == "and":
        yield "t", node.t, _State(None, state.facts)  # type: ignore[misc]
    elif node.is_jump:
        yield "t", node.t, _refine(state, node, True)  # type: ignore[misc]
        yield "f", node.f, _refine(state, node, False)  # type: ignore[misc]


def _advance(target: Node, edge: _State) -> Node:
    """The furthest node along the path the facts decide from ``target`` that the
    edge may jump to directly (same accumulator as if it had walked there)."""
    best, node, state = target, target, edge
    for _ in range(256):
        if node.op == "ld":
            state = _State(node.k, state.facts)
            node = node.t  # type: ignore[assignment]
        elif node.is_jump and state.acc is not None:
            outcome = _decide(node, *state.fact(state.acc))
            if outcome is None:
                break
            node = node.t if outcome else node.f  # type: ignore[assignment]
        else:
            break
        if node.op in ("ld", "ret") or (state.acc is not None and state.acc == edge.acc):
            best = node
    return best


def _topo(entry: Node) -> list[Node]:
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, int]] = [(entry, 0)]
    seen.add(id(entry))
    while stack:
        node, i = stack.pop()
        succ = node.successors()
        if i < len(succ):
            stack.append((node, i + 1))
            s = succ[i]
            if id(s) not in seen:
                seen.add(id(s))
                stack.append((s, 0))
        else:
            order.append(node)
    order.reverse()
    return order


def thread(entry: Node) -> None:
    """Jump threading over the DAG below ``entry``, to a fixed point."""
    for _ in range(16):
        changed = False
        incoming: dict[int, _State] = {id(entry): _State(None, {})}
        for node in _topo(entry):
            state = incoming.get(id(node), _State(None, {}))
            for slot, succ, edge in list(_step(node, state)):
                new = _advance(succ, edge)
                if new is not succ:
                    setattr(node, slot, new)
                    changed = True
                    succ = new
                incoming[id(succ)] = _meet(incoming.get(id(succ)), edge)
        if not changed:
            return


# ---- layout and emission ----------------------------------------------------------------

class _Item:
    __slots__ = ("node", "op", "k", "t", "f")

    def __init__(self, op: str, k: int, node: Node | None = None):
        self.op, self.k, self.node = op, k, node
        self.t: _Item | None = None
        self.f: _Item | None = None


def emit(entry: Node) -> list[Instruction]:
    order = [n for n in _topo(entry) if n.op != "ret"]
    rets = {}
    for n in _topo(entry):
        if n.op == "ret":
            rets[id(n)] = n
    items: list[_Item] = []
    by_node: dict[int, _Item] = {}
    for node in list(order) + list(rets.values()):
        it = _Item(node.op, node.k, node)
        by_node[id(node)] = it
        items.append(it)
    for it in list(items):
        src = it.node
        if src is None or src.op == "ret":
            continue
        it.t = by_node[id(src.t)]
        if src.is_jump:
            it.f = by_node[id(src.f)]
    # ld/and fall through: add a ja where the next node is not placed right after
    out: list[_Item] = []
    for i, it in enumerate(items):
        out.append(it)
        if it.op in ("ld", "and") and (i + 1 >= len(items) or items[i + 1] is not it.t):
            j = _Item("ja", 0)
            j.t = it.t
            it.t = j
            out.append(j)
    items = out
    _fix_long_jumps(items)
    index = {id(it): i for i, it in enumerate(items)}
    insns: list[Instruction] = []
    for i, it in enumerate(items):
        if it.op == "ld":
            insns.append(bpf.ld_abs(it.k))
        elif it.op == "and":
            insns.append(bpf.alu("and", it.k))
        elif it.op == "ret":
            insns.append(bpf.ret(it.k))
        elif it.op == "ja":
            insns.append(bpf.ja(index[id(it.t)] - i - 1))
        else:
            insns.append(bpf.jump(it.op, it.k, index[id(it.t)] - i - 1, index[id(it.f)] - i - 1))
    return insns


def _fix_long_jumps(items: list[_Item]) -> None:
    """Give every conditional jump longer than 255 a trampoline in reach: a ``ret``
    with the same value, or a ``ja`` to the target. Trampolines are placed as far
    forward as they can be, so that later jumps share them; each pass leaves a
    margin for the trampolines it inserts itself and repeats until none is needed."""
    window = _MAX_JUMP - 32
    while True:
        index = {id(it): i for i, it in enumerate(items)}
        inserts: dict[int, list[_Item]] = {}
        placed: dict[tuple[str, int], list[tuple[int, _Item]]] = {}
        for i, it in enumerate(items):
            if it.op not in ("jeq", "jgt", "jge", "jset"):
                continue
            for slot in ("t", "f"):
                target: _Item = getattr(it, slot)
                if id(target) not in index or index[id(target)] - i - 1 <= _MAX_JUMP:
                    continue
                key = ("ret", target.k) if target.op == "ret" else ("ja", id(target))
                near = None
                for q, cand in placed.get(key, ()):
                    if i < q <= i + window:
                        near = cand
                if near is None:
                    for j in range(i + 1, min(i + 1 + window, len(items))):
                        cand = items[j]
                        if (key[0] == "ret" and cand.op == "ret" and cand.k == target.k) or (
                                cand.op == "ja" and cand.t is target):
                            near = cand
                if near is None:
                    q = i + 1  # after the jump itself: it never falls through
                    for j in range(min(i + 1 + window, len(items)), i + 1, -1):
                        if items[j - 1].op not in ("ld", "and"):
                            q = j
                            break
                    if target.op == "ret":
                        near = _Item("ret", target.k)
                    else:
                        near = _Item("ja", 0)
                        near.t = target
                    inserts.setdefault(q, []).append(near)
                    placed.setdefault(key, []).append((q, near))
                setattr(it, slot, near)
        if not inserts:
            return
        merged: list[_Item] = []
        for i, it in enumerate(items):
            merged.extend(inserts.get(i, ()))
            merged.append(it)
        merged.extend(inserts.get(len(items), ()))
        items[:] = merged


# ---- compile -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Program:
    """A compiled program and what it was compiled from."""

    insns: tuple[Instruction, ...]
    arch: str
    subarches: tuple[str, ...]


def compile_policy(policy: Policy, arch: str) -> Program:
    native = ARCHES[arch]
    compat = COMPAT.get(arch, ())
    for i, sub in enumerate(policy.subarches):
        if sub not in compat:
            raise PolicyError(f"subarches[{i}]", sub,
                              f"is not a compat ABI of {arch} ({', '.join(compat) or 'none'})")
    b = _Builder()
    deny = b.ret(compat_deny_action(policy))
    unknown: Decision = ((), unknown_action(policy))

    ranges: list[tuple[int, Decision]] = []
    _ranges(ranges, 0, native, decisions(policy, native), unknown)
    if arch == "x86_64":
        x32_bit = lib.VE_X32_SYSCALL_BIT
        if "x32" in policy.subarches:
            x32 = ARCHES["x32"]
            _ranges(ranges, x32_bit, x32, decisions(policy, x32), unknown)
        else:
            _add(ranges, x32_bit, ((), compat_deny_action(policy)))
    native_tree = b.tree(ranges)

    blocks = list(b.blocks.values())
    other: Node = b.ret(KILL_PROCESS)
    for sub_name in reversed(compat):
        sub_table = ARCHES[sub_name]
        if sub_table.audit_arch == native.audit_arch:
            continue  # x32: part of the native tree
        if sub_name in policy.subarches:
            sb = _Builder()
            sb.rets = b.rets
            sub_ranges: list[tuple[int, Decision]] = []
            _ranges(sub_ranges, 0, sub_table, decisions(policy, sub_table), unknown)
            sub_tree = Node("ld", bpf.OFF_NR, sb.tree(sub_ranges))
            blocks.extend(sb.blocks.values())
        else:
            sub_tree = deny
        other = Node("jeq", sub_table.audit_arch, sub_tree, other)
    entry = Node("ld", bpf.OFF_ARCH,
                 Node("jeq", native.audit_arch, Node("ld", bpf.OFF_NR, native_tree), other))
    for block in blocks:  # the search tree is already minimal: only argument tests thread
        if block.op != "ret":
            thread(block)
    insns = emit(entry)
    if len(insns) > lib.BPF_MAXINSNS:
        raise PolicyError("profile", policy.name,
                          f"compiles to {len(insns)} instructions; the kernel takes at most "
                          f"{lib.BPF_MAXINSNS}")
    bpf.validate(insns)
    return Program(tuple(insns), arch, policy.subarches)


def action_of(insns: Sequence[Instruction], data: bpf.SeccompData) -> Action:
    return Action.from_ret(bpf.run(insns, data))

