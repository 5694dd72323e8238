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
2. ``NEWER`` below: the syscalls added from Linux 6.2 through 7.3, which the 6.1
   headers lack, transcribed from the kernel's own tables at v6.18 and, for 6.19 .. 7.3,
   from Debian's linux-libc-dev 7.3~rc7-1~exp1 (``/usr/lib/linux/uapi/<arch>/asm/unistd*.h``):
   ``arch/x86/entry/syscalls/syscall_64.tbl`` (453 map_shadow_stack is ``64``, so not
   x32; the others ``common``), ``arch/x86/entry/syscalls/syscall_32.tbl`` (all ``i386``),
   ``scripts/syscall.tbl`` / ``include/uapi/asm-generic/unistd.h`` (aarch64) and
   ``arch/arm/tools/syscall.tbl`` (all ``common``). Every one of them has the same
   number on each of these architectures.

Run ``python tools/gen_syscall_tables.py`` after installing the two cross header
packages; ``tests/test_seccomp_tables.py`` checks the result against the headers of
the machine the tests run on.

``python tools/gen_syscall_tables.py --args SYSCALLS_H`` writes the second table,
``syscall_args.json``: the width in bits of each argument as the kernel reads it, from
the ``sys_*`` prototypes of ``include/linux/syscalls.h`` (Debian's
``linux-headers-<version>-common``, 6.12 when generated: ``apt-get download``,
``dpkg-deb -x``) plus ``NEWER_PROTOTYPES`` below for 6.13 .. 7.3. The syscall
wrappers cast each register to the declared type (``__SC_CAST``), so an ``int`` or
``unsigned int`` argument is its low 32 bits and a ``umode_t`` its low 16, whatever
the caller put above them.
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

#: Linux 6.2 .. 7.3: (number, name, the arches that have it; None: all five).
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
    (470, "listns", None),  # 6.19
    (471, "rseq_slice_yield", None),  # in 7.2's headers
    (472, "fchroot", None),  # 7.3
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
KERNEL = "7.3"

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


# ---- argument widths ---------------------------------------------------------------

ARGS_OUT = ROOT / "volt_enforce" / "seccomp" / "syscall_args.json"

#: Prototypes of the syscalls added after the 6.12 headers, as include/linux/syscalls.h
#: declares them at v6.18 and in linux-headers-7.3-common (listns, rseq_slice_yield,
#: fchroot); uprobe and uretprobe are x86's SYSCALL_DEFINE0.
NEWER_PROTOTYPES = """
asmlinkage long sys_setxattrat(int dfd, const char __user *path, unsigned int at_flags,
                               const char __user *name,
                               const struct xattr_args __user *args, size_t size);
asmlinkage long sys_getxattrat(int dfd, const char __user *path, unsigned int at_flags,
                               const char __user *name,
                               struct xattr_args __user *args, size_t size);
asmlinkage long sys_listxattrat(int dfd, const char __user *path, unsigned int at_flags,
                                char __user *list, size_t size);
asmlinkage long sys_removexattrat(int dfd, const char __user *path, unsigned int at_flags,
                                  const char __user *name);
asmlinkage long sys_open_tree_attr(int dfd, const char __user *path, unsigned flags,
                                   struct mount_attr __user *uattr, size_t usize);
asmlinkage long sys_file_getattr(int dfd, const char __user *filename,
                                 struct file_attr __user *attr, size_t usize,
                                 unsigned int at_flags);
asmlinkage long sys_file_setattr(int dfd, const char __user *filename,
                                 struct file_attr __user *attr, size_t usize,
                                 unsigned int at_flags);
asmlinkage long sys_listns(const struct ns_id_req __user *req, u64 __user *ns_ids,
                           size_t nr_ns_ids, unsigned int flags);
asmlinkage long sys_rseq_slice_yield(void);
asmlinkage long sys_fchroot(int fd, unsigned int flags);
asmlinkage long sys_uretprobe(void);
asmlinkage long sys_uprobe(void);
"""

#: Arguments the kernel narrows in the body rather than in the prototype:
#: kernel/fork.c's clone takes ``unsigned long clone_flags`` and uses
#: ``lower_32_bits(clone_flags)`` (since 5.3).
BODY_NARROWED = {("clone", 0): 32}

#: Table names whose entry point has another name (x86's syscall_64.tbl, arm64's
#: and arm's tables): name -> the sys_* it calls.
ENTRY_ALIASES = {
    "stat": "newstat", "fstat": "newfstat", "lstat": "newlstat", "uname": "newuname",
    "umount2": "umount", "sendfile": "sendfile64", "_llseek": "llseek",
}

_QUALIFIERS = {"const", "volatile", "__user", "struct", "union"}
_C_TYPE_WORDS = {"int", "long", "short", "char", "unsigned", "signed"}
#: Kernel types -> bits, for x86_64 and aarch64 (LP64). Pointers are 64.
TYPE_BITS = {
    "int": 32, "unsigned int": 32, "unsigned": 32, "signed int": 32,
    "long": 64, "unsigned long": 64, "long long": 64, "unsigned long long": 64,
    "short": 16, "unsigned short": 16, "char": 8, "unsigned char": 8,
    "u64": 64, "__u64": 64, "s64": 64, "__s64": 64, "loff_t": 64, "off_t": 64,
    "size_t": 64, "ssize_t": 64, "time_t": 64, "aio_context_t": 64, "old_sigset_t": 64,
    "__sighandler_t": 64, "cap_user_header_t": 64, "cap_user_data_t": 64,
    "u32": 32, "__u32": 32, "s32": 32, "__s32": 32, "uint32_t": 32, "int32_t": 32,
    "pid_t": 32, "uid_t": 32, "gid_t": 32, "qid_t": 32, "clockid_t": 32, "timer_t": 32,
    "key_t": 32, "key_serial_t": 32, "mqd_t": 32, "rwf_t": 32, "__kernel_rwf_t": 32,
    "umode_t": 16, "old_uid_t": 16, "old_gid_t": 16,
}


def param_bits(param: str) -> int:
    """The width of one prototype parameter (``const char __user *name``, ``int``,
    ``umode_t mode``, ``enum landlock_rule_type rule_type``)."""
    if "*" in param or "[" in param:
        return 64
    words = [w for w in param.split() if w not in _QUALIFIERS]
    if not words:
        raise ValueError(f"empty parameter {param!r}")
    if words[0] == "enum":
        return 32
    if len(words) > 1 and words[-1] not in _C_TYPE_WORDS and words[-1] not in TYPE_BITS:
        words = words[:-1]  # the parameter's name
    name = " ".join(words)
    if name not in TYPE_BITS:
        raise ValueError(f"unknown type {name!r} in {param!r}")
    return TYPE_BITS[name]


def prototypes(text: str) -> dict[str, list[int]]:
    """``sys_<name>`` declarations -> argument widths. A name declared more than once
    (``#ifdef`` variants such as clone's) gets the widest width per position."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    out: dict[str, list[int]] = {}
    for m in re.finditer(r"asmlinkage\s+long\s+sys_(\w+)\s*\(([^)]*)\)\s*;", text):
        params = " ".join(m.group(2).split())
        bits = [] if params in ("", "void") else [param_bits(p) for p in params.split(",")]
        old = out.get(m.group(1))
        if old is not None:
            if len(old) != len(bits):
                bits = (bits + [64] * 6)[:max(len(bits), len(old))]
                old = (old + [64] * 6)[:len(bits)]
            bits = [max(a, b) for a, b in zip(old, bits)]
        out[m.group(1)] = bits
    return out


def build_args(syscalls_h: Path) -> dict:
    protos = prototypes(syscalls_h.read_text())
    protos.update(prototypes(NEWER_PROTOTYPES))
    known = set().union(*(t["syscalls"] for t in json.loads(OUT.read_text())["arches"].values()))
    args: dict[str, list[int]] = {}
    for name in sorted(known):
        bits = protos.get(ENTRY_ALIASES.get(name, name))
        if bits is None:
            continue  # arch-specific entry points: compared on 64 bits
        bits = list(bits)
        for (sc, index), width in BODY_NARROWED.items():
            if sc == name:
                bits[index] = width
        args[name] = bits
    return {
        "_comment": "Generated by tools/gen_syscall_tables.py --args; do not edit. Bits of "
                    "each argument as the kernel reads it on a 64-bit ABI.",
        "kernel": KERNEL,
        "source": f"include/linux/syscalls.h ({_deb_version_of(syscalls_h)}) + NEWER_PROTOTYPES",
        "args": args,
    }


def _deb_version_of(path: Path) -> str:
    m = re.search(r"linux-headers-([^/]+)-common", str(path))
    return f"linux-headers-{m.group(1)}-common" if m else str(path.name)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--args":
        doc_args = build_args(Path(sys.argv[2]))
        lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc_args.items() if k != "args"]
        rows = [f"  {json.dumps(n)}: {json.dumps(b)}" for n, b in doc_args["args"].items()]
        lines.append(' "args": {\n' + ",\n".join(rows) + "\n }")
        ARGS_OUT.write_text("{\n" + ",\n".join(lines) + "\n}\n")
        print(f"wrote {ARGS_OUT.relative_to(ROOT)}: {len(doc_args['args'])} syscalls")
        return 0
    doc = build()
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    counts = {a: len(t["syscalls"]) for a, t in doc["arches"].items()}
    print(f"wrote {OUT.relative_to(ROOT)}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
