#!/usr/bin/env python3
"""Generate volt_enforce/seccomp/syscalls.json, the syscall tables the compiler ships.

Sources, in order:

1. The kernel's UAPI headers as installed by Debian (Linux 6.1):
   * x86_64, i386, x32: ``linux-libc-dev`` -
     ``/usr/include/x86_64-linux-gnu/asm/unistd_64.h``, ``unistd_32.h``, ``unistd_x32.h``
     (x32 numbers are stored with ``__X32_SYSCALL_BIT`` set, as the kernel sees them).
   * aarch64: ``linux-libc-dev-arm64-cross`` - ``/usr/aarch64-linux-gnu/include/asm/unistd.h``,
     which is ``asm-generic/unistd.h`` with arm64's ``__ARCH_WANT_*`` switches.
   * arm (EABI): ``linux-libc-dev-armhf-cross`` -
     ``/usr/arm-linux-gnueabihf/include/asm/unistd.h`` (``unistd-eabi.h`` plus the
     ARM-private ``__ARM_NR_*`` calls: breakpoint, cacheflush, usr26, usr32, set_tls, get_tls).
   The headers are run through ``gcc -E -dM`` so that the architecture's switches
   and aliases (``__NR3264_*``, ``__NR_SYSCALL_BASE``) resolve as the compiler sees them.
2. ``NEWER`` below: the syscalls added from Linux 6.2 through 6.18, which the 6.1
   headers lack, transcribed from the kernel's own tables at v6.18:
   ``arch/x86/entry/syscalls/syscall_64.tbl`` (453 map_shadow_stack is ``64``, so not
   x32; the others ``common``), ``arch/x86/entry/syscalls/syscall_32.tbl`` (all ``i386``),
   ``scripts/syscall.tbl`` / ``include/uapi/asm-generic/unistd.h`` (aarch64) and
   ``arch/arm/tools/syscall.tbl`` (all ``common``). Every one of them has the same
   number on each of these architectures.

Run ``python tools/gen_syscall_tables.py`` after installing the two cross header
packages; ``tests/test_seccomp_tables.py`` checks the result against the headers of
the machine the tests run on.
"""

from __future__ import annotations

import ast
import json
import operator
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "volt_enforce" / "seccomp" / "syscalls.json"

X86_INCLUDE = Path("/usr/include/x86_64-linux-gnu")
ARM64_INCLUDE = Path("/usr/aarch64-linux-gnu/include")
ARM_INCLUDE = Path("/usr/arm-linux-gnueabihf/include")

#: Linux 6.2 .. 6.18: (number, name, the arches that have it; None: all five).
NEWER: list[tuple[int, str, frozenset[str] | None]] = [
    (451, "cachestat", None),  # 6.5
    (452, "fchmodat2", None),  # 6.6
    (453, "map_shadow_stack", frozenset({"x86_64", "i386", "aarch64", "arm"})),  # 6.6; "64" in syscall_64.tbl
    (454, "futex_wake", None),  # 6.7
    (455, "futex_wait", None),
    (456, "futex_requeue", None),
    (457, "statmount", None),  # 6.8
    (458, "listmount", None),
    (459, "lsm_get_self_attr", None),
    (460, "lsm_set_self_attr", None),
    (461, "lsm_list_modules", None),
    (462, "mseal", None),  # 6.10
    (463, "setxattrat", None),  # 6.13
    (464, "getxattrat", None),
    (465, "listxattrat", None),
    (466, "removexattrat", None),
    (467, "open_tree_attr", None),  # 6.15
    (468, "file_getattr", None),  # 6.17
    (469, "file_setattr", None),
    (335, "uretprobe", frozenset({"x86_64", "x32"})),  # 6.11, "common" in syscall_64.tbl only
    (336, "uprobe", frozenset({"x86_64", "x32"})),  # 6.18, "common" in syscall_64.tbl only
]

#: Syscalls that exist only on architectures we do not compile for (from those
#: architectures' syscall tables in Linux 6.18). Profiles such as Docker's name them in
#: rules for every architecture; they are known names with no number here.
FOREIGN = sorted({
    # powerpc: arch/powerpc/kernel/syscalls/syscall.tbl
    "swapcontext", "sys_debug_setcontext", "subpage_prot", "spu_run", "spu_create",
    "multiplexer", "rtas", "switch_endian",
    # s390: arch/s390/kernel/syscalls/syscall.tbl
    "s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr",
    "s390_guarded_storage", "s390_sthyi",
    # mips: arch/mips/kernel/syscalls/syscall_*.tbl
    "sysmips", "cachectl",
    # riscv: arch/riscv/include/uapi/asm/unistd.h
    "riscv_flush_icache", "riscv_hwprobe",
    # sparc: arch/sparc/kernel/syscalls/syscall.tbl
    "kern_features", "utrap_install", "getdomainname", "perfctr", "memory_ordering",
    # alpha: arch/alpha/kernel/syscalls/syscall.tbl
    "getxpid", "getxuid", "getxgid", "osf_getsysinfo", "osf_setsysinfo", "pciconfig_iobase",
})

#: The kernel version the shipped tables describe.
KERNEL = "6.18"

#: Architecture name -> (AUDIT_ARCH_* constant name, width of the arguments a filter
#: sees). x32 has 32-bit pointers but enters through the 64-bit syscall path: its
#: arguments reach seccomp as whole 64-bit registers.
ARCHES = {
    "x86_64": ("AUDIT_ARCH_X86_64", 64),
    "x32": ("AUDIT_ARCH_X86_64", 64),
    "i386": ("AUDIT_ARCH_I386", 32),
    "aarch64": ("AUDIT_ARCH_AARCH64", 64),
    "arm": ("AUDIT_ARCH_ARM", 32),
}

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.BitOr: operator.or_,
        ast.LShift: operator.lshift}


def macros(header: str, include: Path, defines: tuple[str, ...] = ()) -> dict[str, str]:
    """Every macro that including ``header`` defines, as gcc's preprocessor sees it."""
    cmd = ["gcc", "-E", "-dM", "-nostdinc", f"-I{include}", *defines,
           "-include", header, "-x", "c", "/dev/null"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"#define (\w+) (.*)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def evaluate(expr: str, env: dict[str, str], depth: int = 0) -> int:
    """An integer macro body: numbers, other macros, + - | <<, parentheses."""
    if depth > 20:
        raise ValueError(f"macro recursion in {expr!r}")

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return evaluate(env[node.id], env, depth + 1)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"cannot evaluate {expr!r}")

    return walk(ast.parse(re.sub(r"(0x[0-9a-fA-F]+|\d+)[UuLl]+\b", r"\1", expr), mode="eval"))


def syscalls(env: dict[str, str], prefix: str = "__NR_") -> dict[str, int]:
    skip = {"syscalls", "arch_specific_syscall", "SYSCALL_BASE", "OABI_SYSCALL_BASE",
            "SYSCALL_MASK", "compat_syscalls"}
    table = {}
    for name, body in env.items():
        if name.startswith(prefix) and name[len(prefix):] not in skip:
            table[name[len(prefix):]] = evaluate(body, env)
    return table


def x86_table(arch: str) -> dict[str, int]:
    header = {"x86_64": "asm/unistd_64.h", "i386": "asm/unistd_32.h",
              "x32": "asm/unistd_x32.h"}[arch]
    env = macros(header, X86_INCLUDE)
    table = syscalls(env | {"__X32_SYSCALL_BIT": macros("asm/unistd.h", X86_INCLUDE)["__X32_SYSCALL_BIT"]})
    return {name: nr for name, nr in table.items() if f"__NR_{name}" in env}


def aarch64_table() -> dict[str, int]:
    return syscalls(macros("asm/unistd.h", ARM64_INCLUDE))


def arm_table() -> dict[str, int]:
    env = macros("asm/unistd.h", ARM_INCLUDE, ("-D__ARM_EABI__",))
    table = syscalls(env)
    table.update(syscalls(env, "__ARM_NR_"))
    table.pop("BASE", None)
    return table


def build() -> dict:
    tables = {
        "x86_64": x86_table("x86_64"),
        "x32": x86_table("x32"),
        "i386": x86_table("i386"),
        "aarch64": aarch64_table(),
        "arm": arm_table(),
    }
    x32_bit = evaluate("__X32_SYSCALL_BIT", macros("asm/unistd.h", X86_INCLUDE))
    for arch, table in tables.items():
        for nr, name, only in NEWER:
            if only is not None and arch not in only:
                continue
            value = nr | x32_bit if arch == "x32" else nr
            old = table.get(name)
            if old is not None and old != value:
                raise SystemExit(f"{arch}: {name} is {old} in the headers, {value} in NEWER")
            table[name] = value
    doc = {
        "_comment": "Generated by tools/gen_syscall_tables.py; do not edit.",
        "kernel": KERNEL,
        "headers": {
            "x86": "linux-libc-dev " + _deb_version("linux-libc-dev"),
            "aarch64": "linux-libc-dev-arm64-cross " + _deb_version("linux-libc-dev-arm64-cross"),
            "arm": "linux-libc-dev-armhf-cross " + _deb_version("linux-libc-dev-armhf-cross"),
        },
        "arches": {},
        "foreign": [],
    }
    for arch, table in tables.items():
        audit, bits = ARCHES[arch]
        doc["arches"][arch] = {
            "audit_arch": audit,
            "bits": bits,
            "syscalls": dict(sorted(table.items(), key=lambda kv: (kv[1], kv[0]))),
        }
    known = set().union(*(t.keys() for t in tables.values()))
    doc["foreign"] = [n for n in FOREIGN if n not in known]
    return doc


def _deb_version(package: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                       capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def main() -> int:
    doc = build()
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    counts = {a: len(t["syscalls"]) for a, t in doc["arches"].items()}
    print(f"wrote {OUT.relative_to(ROOT)}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
