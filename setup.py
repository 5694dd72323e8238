"""Build: the cffi extension (build.py) and the volt-init executable.

volt-init is a small C program over the same C core (csrc/init/volt_init.c,
csrc/spawn.c, csrc/landlock.c): it applies a compiled plan and execs, for
container images without Python. It is installed inside the package
(volt_enforce/_bin/volt-init); `volt-enforce init-path` prints where. It is linked
statically (it then runs in images without a C library, and starts faster): a
machine without a static C library cannot build it, and the build says so.
"""

import os
import shlex
import subprocess
import sysconfig

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, LinkError

INIT_SOURCES = ["csrc/init/volt_init.c", "csrc/spawn.c", "csrc/landlock.c", "csrc/seccomp.c",
                "csrc/util.c", "csrc/view.c"]
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

    def build_static(self, name, sources):
        obj_dir = os.path.join(self.build_temp, name.replace("-", "_"))
        os.makedirs(obj_dir, exist_ok=True)
        objects = []
        for src in sources:
            obj = os.path.join(obj_dir, os.path.basename(src)[:-2] + ".o")
            _run([*_cc(), *CFLAGS, "-Icsrc", "-c", src, "-o", obj], CompileError)
            objects.append(obj)
        package_dir = os.path.dirname(self.get_ext_fullpath("volt_enforce._core"))
        out_dir = os.path.join(package_dir, "_bin")
        os.makedirs(out_dir, exist_ok=True)
        # static and stripped; no dynamic fallback: a dynamic volt-init fails in images without libc
        _run([*_cc(), "-static", "-s", *objects, "-o", os.path.join(out_dir, name)], LinkError,
             STATIC_LIBC_HINT)


setup(cffi_modules=["build.py:ffibuilder"], cmdclass={"build_ext": BuildExtWithInit})
