"""The sandbox's /etc/resolv.conf, listing the configured DNS servers.

``resolv_conf_file`` writes the file (ours, in the lease's directory) and is
all a filesystem view needs: it binds that file over its own /etc/resolv.conf.
Without a view, the child binds it itself, read-only, in a mount namespace of
its own (the ``resolv_conf`` step of csrc/spawn.c), over the host's
/etc/resolv.conf or, where that is a symlink (systemd-resolved's into /run),
over its target. The host's file is never written.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

from ..errors import EnforcementError

__all__ = ["resolv_conf_file", "resolv_conf_text", "bind_target", "mount_flags"]

HOST_RESOLV_CONF = "/etc/resolv.conf"
#: spawn.h's buffers for the two paths
_PATH_MAX = 255


def resolv_conf_text(servers: Sequence[str]) -> str:
    lines = ["# written by volt-enforce for this sandbox's private network"]
    lines += [f"nameserver {s}" for s in servers]
    return "\n".join(lines) + "\n"


def resolv_conf_file(servers: Sequence[str], path: str) -> str:
    """Write the resolv.conf listing ``servers`` to ``path`` (0644) and return it."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(resolv_conf_text(servers))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def bind_target() -> str:
    """Where the child's bind goes: the host's resolv.conf, or its symlink's target."""
    target = os.path.realpath(HOST_RESOLV_CONF)
    if not os.path.isfile(target):
        raise EnforcementError(errno.ENOENT, "resolv_conf",
                               f"{HOST_RESOLV_CONF} (-> {target}) is not a file to bind the "
                               "sandbox's DNS servers over")
    if len(os.fsencode(target)) > _PATH_MAX:
        raise EnforcementError(errno.ENAMETOOLONG, "resolv_conf", target)
    return target


def mount_flags(path: str) -> int:
    """The MS_* flags of the mount that holds ``path``: a read-only remount of a
    bind must keep them (a user namespace may not clear them)."""
    st = os.statvfs(path)
    flags = 0
    for st_flag, ms_flag in ((os.ST_NOSUID, 0x2), (os.ST_NODEV, 0x4), (os.ST_NOEXEC, 0x8),
                             (os.ST_NOATIME, 0x400), (os.ST_NODIRATIME, 0x800),
                             (os.ST_RELATIME, 0x200000)):
        if st.f_flag & st_flag:
            flags |= ms_flag
    return flags
