"""cffi builder for _volt_testcore, the test-only extension (API mode, out of line).

The C helpers that tests and benchmarks need (the benchmarks' C floors, the int 0x80
probe) live in csrc/test/ and are built here into ``tests/_volt_testcore*.so``, outside
the volt_enforce package, so they never ship in a wheel. They use the product's C
(csrc/*.h, and the product .c files they call into, compiled again into this module).

Built on the host by the test session when missing or stale (tests/conftest.py and
benchmarks/conftest.py call ``ensure_built``), or by hand: ``python tests/build_testcore.py``.
Never inside the kernel matrix's VMs, which see the tree read-only: there a missing or
stale module is an error.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sysconfig
from pathlib import Path

MODULE = "_volt_testcore"
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CSRC = ROOT / "csrc"
TEST_CSRC = CSRC / "test"
# the product C the test helpers call into (ve_landlock_restrict_self, ve_seccomp_load)
PRODUCT_SOURCES = [CSRC / "landlock.c", CSRC / "seccomp.c"]
BUILD_DIR = TESTS / ".testcore-build"
STAMP = TESTS / f"{MODULE}.stamp"


def _inputs() -> list[Path]:
    return sorted([*TEST_CSRC.glob("*"), *CSRC.glob("*.h"), *PRODUCT_SOURCES, Path(__file__).resolve()])


def fingerprint() -> str:
    """What the built module was made from: its inputs' contents and the interpreter."""
    h = hashlib.sha256(str(sysconfig.get_config_var("EXT_SUFFIX")).encode())
    for path in _inputs():
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def module_path() -> Path:
    return TESTS / (MODULE + sysconfig.get_config_var("EXT_SUFFIX"))


def is_current() -> bool:
    try:
        return module_path().exists() and STAMP.read_text().strip() == fingerprint()
    except OSError:
        return False


def ffibuilder():  # a function: importing this file must not need cffi's compiler setup
    from cffi import FFI

    ffi = FFI()
    ffi.cdef((TEST_CSRC / "testcore.cdef").read_text())
    ffi.set_source(
        MODULE,
        '#include "testcore.h"',
        sources=[str(p) for p in [*sorted(TEST_CSRC.glob("*.c")), *PRODUCT_SOURCES]],
        include_dirs=[str(TEST_CSRC), str(CSRC)],
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    )
    return ffi


def build(verbose: bool = False) -> Path:
    """Compile the module into tests/ and record what it was built from."""
    if os.environ.get("VOLT_ENFORCE_VM_KERNEL") == "1":
        raise RuntimeError(f"{MODULE} is missing or stale inside the kernel matrix's VM: "
                           f"build it on the host first (python {Path(__file__).relative_to(ROOT)})")
    stamp = fingerprint()
    shutil.rmtree(BUILD_DIR, ignore_errors=True)
    BUILD_DIR.mkdir()
    built = Path(ffibuilder().compile(tmpdir=str(BUILD_DIR), verbose=verbose))
    target = module_path()
    tmp = target.with_name(target.name + ".tmp")
    shutil.copy2(built, tmp)
    os.replace(tmp, target)  # atomic: a concurrent session sees the old or the new module
    STAMP.write_text(stamp + "\n")
    shutil.rmtree(BUILD_DIR, ignore_errors=True)
    return target


def ensure_built() -> Path:
    """The module, built first when missing or made from other sources."""
    return module_path() if is_current() else build()


if __name__ == "__main__":
    print(build(verbose=True))
