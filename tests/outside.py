"""A directory that no rule of the server preset covers, for the tests of saying why and
of the rules that follow the program (tests/test_diagnose.py, tests/test_autorules.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from volt_enforce.model import LandlockAccess, server_policy
from volt_enforce.rights import PolicyRights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def outside_dir() -> Iterator[str]:
    """A fresh directory (resolved) outside every rule of the server preset (not /tmp,
    /var...), removed afterwards: under /opt, /srv, /root, /mnt or the repository."""
    rights = PolicyRights.of_policy(server_policy("/"))
    for base in ("/opt", "/srv", "/root", "/mnt", REPO):
        if os.path.isdir(base) and os.access(base, os.W_OK) and not rights.granted(
                os.path.realpath(base)) & LandlockAccess.READ_FILE:
            d = tempfile.mkdtemp(prefix="volt-why-", dir=base)
            try:
                yield os.path.realpath(d)
            finally:
                shutil.rmtree(d, ignore_errors=True)
            return
    raise AssertionError("no writable directory outside the server preset to test in")
