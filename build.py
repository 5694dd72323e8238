"""cffi builder for volt_enforce._core (API mode, out of line).

Each kernel facility has three files in csrc/: `<area>.h` (the C declarations),
`<area>.c` (the code) and `<area>.cdef` (what Python may call: the functions and
the kernel constants, read from the headers with `#define NAME ...`).
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"

ffibuilder = FFI()
for cdef in sorted(CSRC.glob("*.cdef")):
    ffibuilder.cdef(cdef.read_text(), override=False)

ffibuilder.set_source(
    "volt_enforce._core",
    "\n".join(f'#include "{h.name}"' for h in sorted(CSRC.glob("*.h"))),
    sources=[str(c.relative_to(HERE)) for c in sorted(CSRC.glob("*.c"))],
    include_dirs=[str(CSRC)],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE), verbose=True)
