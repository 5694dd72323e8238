"""Writing output files (plans, reports, BPF, profiles) without harming what is there.

The path's existing file decides how it is written:

* a character device or a fifo (``/dev/null``, ``/dev/stdout``, a pipe) is written
  through, never replaced;
* a regular file is replaced atomically (a temporary file in the same directory,
  renamed over it), only when the caller may write it, keeping its mode (and its
  owner, for root);
* a symbolic link is followed: its target is written by the same rules; a link
  to nothing is refused, never replaced;
* nothing there: a new file (mode 0666 less the umask), created by a rename, so
  a reader never sees it half written;
* a directory, a block device or a socket is refused.

Errors are ``OSError`` with ``strerror`` saying why and ``filename`` the path given.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["Output", "write_bytes", "write_text"]


def _refuse(err: int, why: str, path: str) -> OSError:
    return OSError(err, why, path)


class Output:
    """A file opened now and written (or discarded) later: decided and opened
    before anything runs, so a bad path runs nothing.

    ``in_place``: for a process that restricts itself (Landlock) between opening
    and writing, where a rename may be denied. A regular file is then written
    into, not replaced: a new one is created now (and removed by ``discard``), an
    existing one is opened now and truncated only by ``write``. Devices, fifos and
    links follow the same rules as without it.
    """

    def __init__(self, path: str | os.PathLike[str], *, in_place: bool = False) -> None:
        self.path = os.fspath(path)
        self.fd = -1
        self._tmp: str | None = None
        self._created: str | None = None
        self._truncate = False
        target = self.path
        try:
            st: os.stat_result | None = os.lstat(target)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(target)
            try:
                st = os.stat(target)
            except FileNotFoundError:
                raise _refuse(errno.ENOENT, "is a symbolic link to a missing file",
                              self.path) from None
        self.target = target
        if st is None:
            parent = os.path.dirname(os.path.abspath(target))
            if not os.path.isdir(parent):
                err = errno.ENOTDIR if os.path.exists(parent) else errno.ENOENT
                raise _refuse(err, f"{os.strerror(err)} ({parent})", self.path)
            if in_place:
                self.fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                                  | os.O_NOFOLLOW, 0o666)
                self._created = target
                return
            umask = os.umask(0)
            os.umask(umask)
            self._open_tmp(0o666 & ~umask, None)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            # a fifo blocks here until it has a reader, as a shell redirection does
            self.fd = os.open(target, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        elif stat.S_ISREG(st.st_mode):
            if not os.access(target, os.W_OK, effective_ids=os.access in os.supports_effective_ids):
                raise _refuse(errno.EACCES, "Permission denied", self.path)
            if in_place:
                self.fd = os.open(target, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
                self._truncate = True
                return
            self._open_tmp(stat.S_IMODE(st.st_mode), st)
        else:
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else
                    "a block device" if stat.S_ISBLK(st.st_mode) else
                    "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise _refuse(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL,
                          f"is {kind}: refusing to write it", self.path)

    def _open_tmp(self, mode: int, st: os.stat_result | None) -> None:
        d, base = os.path.split(os.path.abspath(self.target))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        for n in range(100):
            tmp = os.path.join(d, f".{base}.tmp{os.getpid()}.{n}")
            try:
                fd = os.open(tmp, flags, 0o600)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, self.path) from None
        else:
            raise _refuse(errno.EEXIST, "no temporary file name is free", self.path)
        self.fd, self._tmp = fd, tmp
        try:
            if st is not None and os.geteuid() == 0:
                os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, mode)
        except OSError:
            self.discard()
            raise

    def write(self, data: bytes) -> None:
        """Write ``data`` and finish: rename the temporary file into place, or
        close the device or fifo written through."""
        if self.fd < 0:
            raise ValueError("output already written or discarded")
        try:
            if self._truncate:
                os.ftruncate(self.fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
            if self._tmp is not None:
                os.fsync(self.fd)
                self._check_unchanged()
                os.rename(self._tmp, self.target)
                self._tmp = None
        except OSError as exc:
            self.discard()
            if exc.filename is None:
                raise OSError(exc.errno, exc.strerror, self.path) from None
            raise
        os.close(self.fd)
        self.fd = -1
        self._created = None

    def _check_unchanged(self) -> None:
        # what was there when opened was a regular file or nothing: never
        # rename over a device, fifo or link put there since
        try:
            st = os.lstat(self.target)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(errno.EEXIST, "was replaced by something not a regular file",
                          self.path)

    def discard(self) -> None:
        """Write nothing: what was there stays as it was."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None
        if self._created is not None:
            try:
                os.unlink(self._created)
            except FileNotFoundError:
                pass
            self._created = None

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` by the rules above."""
    with Output(path) as out:
        out.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` by the rules above."""
    write_bytes(path, text.encode())
