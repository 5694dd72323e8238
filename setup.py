"""Build: the cffi extension (build.py) and the volt-init executable.

volt-init is a small C program over the same C core (csrc/init/volt_init.c,
csrc/spawn.c, csrc/landlock.c): it applies a compiled plan and execs, for
container images without Python. It is installed inside the package
(volt_enforce/_bin/volt-init); `volt-enforce init-path` prints where.
"""

import os

from setuptools import setup
from setuptools.command.build_ext import build_ext

INIT_SOURCES = ["csrc/init/volt_init.c", "csrc/spawn.c", "csrc/landlock.c", "csrc/seccomp.c",
                "csrc/util.c"]


class BuildExtWithInit(build_ext):
    def run(self):
        super().run()
        self.build_volt_init()

    def build_volt_init(self):
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler

        cc = new_compiler()
        customize_compiler(cc)
        objects = cc.compile(
            INIT_SOURCES,
            output_dir=os.path.join(self.build_temp, "volt_init"),
            include_dirs=["csrc"],
            extra_postargs=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-parameter"],
        )
        package_dir = os.path.dirname(self.get_ext_fullpath("volt_enforce._core"))
        out_dir = os.path.join(package_dir, "_bin")
        os.makedirs(out_dir, exist_ok=True)
        try:
            # static: the shim then runs in images without a C library, and starts faster
            cc.link_executable(objects, "volt-init", output_dir=out_dir, extra_postargs=["-static", "-s"])
        except Exception:  # no static libc on this machine: a dynamic binary does the same job
            cc.link_executable(objects, "volt-init", output_dir=out_dir)


setup(cffi_modules=["build.py:ffibuilder"], cmdclass={"build_ext": BuildExtWithInit})
