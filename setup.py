"""Build: the cffi extension (build.py) and the volt-init executable.

volt-init is a small C program over the same C core (csrc/init/volt_init.c,
csrc/spawn.c, csrc/landlock.c): it applies a compiled plan and execs, for
container images without Python. It is installed inside the package
(volt_enforce/_bin/volt-init); `volt-enforce init-path` prints where. It is linked
statically (it then runs in images without a C library, and starts faster): a
machine without a static C library cannot build it, and the build says so.

The static executables are built against musl where musl-gcc is installed (Debian:
musl-tools), else against glibc: a static glibc program probes the CPU at start
(cpuid, for its string functions and cache sizes), and in a VM each cpuid traps to
the hypervisor; here that is about 320 us a start, more than the rest of
`volt-init run PLAN -- /bin/true`. VOLT_ENFORCE_STATIC_CC names the compiler instead
(`cc` for glibc).
"""

import os
import platform
import shlex
import shutil
import subprocess
import sysconfig

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, LinkError

INIT_SOURCES = ["csrc/init/volt_init.c", "csrc/spawn.c", "csrc/landlock.c", "csrc/seccomp.c",
                "csrc/util.c", "csrc/users.c", "csrc/view.c"]
#: PID 1 of a contained child's PID namespace (csrc/pidns.h): run from a sealed memfd on
#: every contained spawn, so without the C library where it has system call stubs.
PIDINIT_SOURCES = ["csrc/init/pidinit.c"]
NOLIBC = platform.machine() in ("x86_64", "aarch64")
PIDINIT_CFLAGS = (["-DVE_NOLIBC", "-ffreestanding", "-fno-stack-protector", "-fno-pie"]
                  if NOLIBC else [])
PIDINIT_LDFLAGS = ["-nostdlib", "-no-pie"] if NOLIBC else []
# the Sandbox's pre-restricted spawner (volt_enforce/spawner.py): the same core, static too
SPAWNER_SOURCES = ["csrc/spawner/spawner.c", "csrc/spawn.c", "csrc/landlock.c", "csrc/seccomp.c",
                   "csrc/util.c", "csrc/view.c"]
CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wno-unused-parameter"]
STATIC_LIBC_HINT = (
    "volt-init is linked statically (-static), with no dynamic fallback. If the linker cannot "
    "find -lc, this machine lacks the static C library (libc.a): install it (Debian/Ubuntu: "
    "apt-get install libc6-dev; Fedora: dnf install glibc-static; Alpine: apk add musl-dev), "
    "then build again"
)


def _cc() -> list[str]:
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")


def _kernel_headers(build_temp: str) -> str | None:
    """A directory holding only the kernel's UAPI headers (linux/, asm/, asm-generic/),
    for musl-gcc, whose include path leaves out the system's (glibc's) headers."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    found = {}
    for name, candidates in (("linux", ["/usr/include/linux"]),
                             ("asm", [f"/usr/include/{multiarch}/asm", "/usr/include/asm"]),
                             ("asm-generic", ["/usr/include/asm-generic"])):
        found[name] = next((c for c in candidates if os.path.isdir(c)), None)
        if found[name] is None:
            return None
    out = os.path.join(build_temp, "kernel-headers")
    os.makedirs(out, exist_ok=True)
    for name, target in found.items():
        link = os.path.join(out, name)
        if os.path.islink(link) or os.path.exists(link):
            os.unlink(link)
        os.symlink(target, link)
    return out


def _static_cc(build_temp: str) -> tuple[list[str], str]:
    """The compiler of the static executables, and which C library they get."""
    chosen = os.environ.get("VOLT_ENFORCE_STATIC_CC")
    if chosen:
        return shlex.split(chosen), "VOLT_ENFORCE_STATIC_CC"
    musl = shutil.which("musl-gcc")
    headers = _kernel_headers(build_temp) if musl else None
    if musl and headers:
        return [musl, "-isystem", headers], "musl"
    return _cc(), "glibc (no musl-gcc: each start probes the CPU)"


def _run(cmd: list[str], error: type[Exception], hint: str = "") -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        raise error(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{out}" + (f"\n\n{hint}" if hint else ""))


class BuildExtWithInit(build_ext):
    def run(self):
        super().run()
        self.build_volt_init()
        self.build_static("volt-spawner", SPAWNER_SOURCES)

    def build_volt_init(self):
        self.build_static("volt-init", INIT_SOURCES)
        self.build_static("volt-pidinit", PIDINIT_SOURCES, PIDINIT_CFLAGS, PIDINIT_LDFLAGS)

    def build_static(self, name, sources, cflags=(), ldflags=()):
        # volt-pidinit has no C library at all where it can (NOLIBC): any compiler will do
        cc, libc = (_cc(), "none") if "-nostdlib" in ldflags else _static_cc(self.build_temp)
        try:
            self._link_static(name, sources, cflags, ldflags, cc, libc)
        except (CompileError, LinkError) as exc:
            if libc != "musl":
                raise
            # a musl that cannot build it here (its headers, say) leaves glibc's build
            print(f"volt-enforce: {name} did not build against musl, so glibc instead: {exc}")
            self._link_static(name, sources, cflags, ldflags, _cc(), "glibc (musl failed)")

    def _link_static(self, name, sources, cflags, ldflags, cc, libc):
        print(f"volt-enforce: building {name} (static, C library: {libc})")
        obj_dir = os.path.join(self.build_temp, name.replace("-", "_"))
        os.makedirs(obj_dir, exist_ok=True)
        objects = []
        for src in sources:
            obj = os.path.join(obj_dir, os.path.basename(src)[:-2] + ".o")
            _run([*cc, *CFLAGS, *cflags, "-Icsrc", "-c", src, "-o", obj], CompileError)
            objects.append(obj)
        package_dir = os.path.dirname(self.get_ext_fullpath("volt_enforce._core"))
        out_dir = os.path.join(package_dir, "_bin")
        os.makedirs(out_dir, exist_ok=True)
        # static and stripped; no dynamic fallback: a dynamic volt-init fails in images without libc
        _run([*cc, "-static", "-s", *ldflags, *objects, "-o", os.path.join(out_dir, name)], LinkError,
             STATIC_LIBC_HINT)


setup(cffi_modules=["build.py:ffibuilder"], cmdclass={"build_ext": BuildExtWithInit})
