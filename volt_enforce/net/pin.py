"""Pinned networks for volt-init: ``volt-enforce net up NAME`` / ``net down NAME``.

volt-init has no Python and nothing that would clean up after its exec, so its
private network is made beforehand and kept by a bind mount of the namespace's
nsfs file on ``PIN_DIR/NAME`` (as ``ip netns`` does under /run/netns). The lease
is owned by that pin; ``NAME.resolv.conf`` beside it is the sandbox's DNS file.
A plan compiled with ``--netns NAME`` names both, and volt-init only joins
them. ``net down NAME`` takes the rules, the veth, the lease and the pin away.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re

from ..errors import EnforcementError, PolicyError
from .lease import RUN_DIR, is_pinned

__all__ = ["PIN_DIR", "pin_path", "resolv_path", "is_pinned", "pin", "unpin", "check_name"]

PIN_DIR = os.path.join(RUN_DIR, "netns")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_MS_BIND = 0x1000
_MNT_DETACH = 0x2


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise PolicyError("netns", name, "is not a network name (1-64 of A-Z a-z 0-9 _ . -, "
                          "not starting with '.' or '-')")
    return name


def pin_path(name: str) -> str:
    return os.path.join(PIN_DIR, check_name(name))


def resolv_path(name: str) -> str:
    return pin_path(name) + ".resolv.conf"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def pin(netns_fd: int, path: str) -> None:
    """Bind the namespace ``netns_fd`` on ``path`` (made empty first)."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    src = f"/proc/self/fd/{netns_fd}".encode()
    if _libc().mount(src, os.fsencode(path), None, _MS_BIND, None) != 0:
        err = ctypes.get_errno()
        os.unlink(path)
        raise EnforcementError(err, "network", f"binding the namespace on {path}")


def unpin(path: str) -> None:
    """Undo ``pin`` (the namespace goes when nothing else holds it)."""
    if is_pinned(path) and _libc().umount2(os.fsencode(path), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL:
            raise EnforcementError(err, "network", f"unmounting {path}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
