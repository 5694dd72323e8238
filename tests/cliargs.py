"""What the CLI tests share: the installed command and the system directories a child
needs to run anything (read+execute)."""

import os
import sys

VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")
SYSTEM_ROX = [a for p in ("/usr", "/bin", "/lib", "/lib64") if os.path.exists(p)
              for a in ("--rox", p)]
