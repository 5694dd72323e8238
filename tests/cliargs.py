"""What the CLI tests share: the installed command, the system directories a child
needs to run anything (read+execute), and what a command imports."""

import os
import subprocess
import sys

VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")
SYSTEM_ROX = [a for p in ("/usr", "/bin", "/lib", "/lib64") if os.path.exists(p)
              for a in ("--rox", p)]


def imported_without_site(argv: list[str]) -> tuple[set[str], str, str]:
    """The modules ``python ARGV`` imports, its stderr without the import lines and its
    stdout, run without site (an editable install's finder imports re and more there,
    which would hide what the command imports): the package, and cffi's backend that
    the CLI needs, are found through PYTHONPATH instead."""
    import _cffi_backend

    import volt_enforce

    where = {os.path.dirname(os.path.dirname(os.path.abspath(volt_enforce.__file__))),
             os.path.dirname(_cffi_backend.__file__)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sorted(where))}
    cp = subprocess.run([sys.executable, "-S", "-X", "importtime", *argv], capture_output=True,
                        text=True, cwd="/", timeout=60, env=env)
    lines = cp.stderr.splitlines()
    return ({ln.rsplit("|", 1)[1].strip() for ln in lines
             if ln.startswith("import time:") and "|" in ln},
            "\n".join(ln for ln in lines if not ln.startswith("import time:")), cp.stdout)
