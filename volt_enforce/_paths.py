"""Paths shared by the compile side, the launcher and the commands: no import but the
standard library's, so the plan cache's fast start and scripts/volt-init can use it."""

from __future__ import annotations

import os

#: the package's directory, where its executables are (in _bin/)
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def path_under(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or lies beneath it (both resolved)."""
    return path == top or top == "/" or path.startswith(top.rstrip("/") + "/")


def executable(name: str) -> str:
    """Where the package's executable ``name`` (volt-init, volt-pidinit, volt-spawner) is."""
    return os.path.join(PACKAGE_DIR, "_bin", name)


def installed(name: str) -> str:
    """``executable(name)``, checked: InstallationError when it is not there to run."""
    path = executable(name)
    if not os.access(path, os.X_OK):
        from .errors import InstallationError  # only here: the fast start never needs it

        raise InstallationError(name, path)
    return path
