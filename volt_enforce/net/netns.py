"""Network namespaces made in the parent, and work done inside one.

``new_netns`` makes a namespace (owned by a given user namespace, or by ours)
and returns its fd; nothing runs in it. ``inside`` runs a function in a
short-lived thread that joined the namespace, so the calling thread never
leaves the host's namespace (a socket keeps the namespace it was made in).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .._core import lib
from ..errors import EnforcementError

__all__ = ["new_netns", "inside", "host_netns_id", "write_sysctl", "read_sysctl"]

T = TypeVar("T")


def host_netns_id() -> int:
    """The inode of the calling thread's network namespace (its id)."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def new_netns(userns_fd: int | None = None) -> int:
    """A new network namespace as an fd (close-on-exec, the caller closes it).

    ``userns_fd``: a user namespace to own it (so that root in that namespace
    may configure it and bind ports below 1024); None: owned by ours.
    """
    fd = lib.ve_netns_new(-1 if userns_fd is None else userns_fd)
    if fd < 0:
        detail = ("unshare(CLONE_NEWNET)" if userns_fd is None else
                  f"setns to user namespace fd {userns_fd}, then unshare(CLONE_NEWNET)")
        raise EnforcementError(-fd, "network", detail)
    return fd


def inside(netns_fd: int, fn: Callable[[], T]) -> T:
    """``fn()`` run in a new thread that joined ``netns_fd``; its result or exception."""
    out: list[T] = []
    err: list[BaseException] = []

    def body() -> None:
        try:
            rc = lib.ve_setns(netns_fd, lib.CLONE_NEWNET)
            if rc < 0:
                raise EnforcementError(-rc, "network", "setns into the prepared namespace")
            out.append(fn())
        except BaseException as exc:  # handed to the caller
            err.append(exc)

    t = threading.Thread(target=body, name="volt-enforce-netns", daemon=True)
    t.start()
    t.join()
    # join() returns before the kernel has reaped the thread: wait until it is gone, so
    # that a caller restricting itself next (apply_self) counts one thread, and no
    # thread of ours is left in the sandbox's namespace
    task = f"/proc/self/task/{t.native_id}"
    for _ in range(2000):
        if not os.path.exists(task):
            break
        time.sleep(0.0005)
    if err:
        raise err[0]
    return out[0]


def _sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def read_sysctl(name: str) -> str:
    """A sysctl of the calling thread's network namespace, e.g. net.ipv4.ip_forward."""
    with open(_sysctl_path(name)) as f:
        return f.read().strip()


def write_sysctl(name: str, value: str) -> None:
    """Set a sysctl of the calling thread's namespace: only ever one of ours
    (inside a sandbox's namespace, or an interface setting of our bridge)."""
    try:
        with open(_sysctl_path(name), "w") as f:
            f.write(value)
    except OSError as exc:
        raise EnforcementError(exc.errno or 0, "network", f"writing {value} to {name}") from None
