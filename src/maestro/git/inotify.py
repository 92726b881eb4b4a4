"""Linux's inotify through libc (ctypes): the one low layer under the worktrees' watch and the tamper guard's.

:class:`Inotify` is one instance: folders are added (``add`` answers the watch descriptor, or None when the folder
is not there), and ``events`` reads what happened since the last read, without blocking, as ``(descriptor, mask,
name)``.  :data:`AVAILABLE` says whether there is inotify at all (Linux with a libc); an instance past the user's
limit of instances or watches raises ``OSError``, and its caller does without (it scans instead).  What inotify
does not report: writes through ``mmap``, through another hard link, or from another machine on a network file
system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import sys
import weakref
from collections.abc import Iterator

__all__ = [
    "AVAILABLE",
    "FLAGS",
    "IN_ATTRIB",
    "IN_CREATE",
    "IN_DELETE",
    "IN_DELETE_SELF",
    "IN_IGNORED",
    "IN_ISDIR",
    "IN_MODIFY",
    "IN_MOVED_FROM",
    "IN_MOVED_TO",
    "IN_MOVE_SELF",
    "IN_Q_OVERFLOW",
    "MASK",
    "Inotify",
]

IN_MODIFY, IN_ATTRIB, IN_MOVED_FROM, IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED, IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = 0x4000, 0x8000, 0x1000000, 0x2000000, 0x40000000
MASK = IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
"""The events a folder is watched for: anything that changes what is in it."""
FLAGS = IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW
"""And: the folder itself moved; only folders; a symbolic link is not followed."""

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, length of the name that follows


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()
AVAILABLE = _LIBC is not None
"""Whether this system has inotify (Linux, with a libc that ctypes can load)."""


class Inotify:
    """One inotify instance (its file descriptor closed by :meth:`close`, or when it is collected)."""

    def __init__(self) -> None:
        if _LIBC is None:
            raise OSError("no inotify here")
        fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._fd = fd
        self._close = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        self._close()

    def add(self, folder: bytes) -> int | None:
        """Watch ``folder`` for :data:`MASK` (with :data:`FLAGS`): its descriptor, or None when it is not a folder
        there; ``OSError`` past the user's limit of watches (``ENOSPC``)."""
        assert _LIBC is not None
        wd = int(_LIBC.inotify_add_watch(self._fd, folder, MASK | FLAGS))
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise OSError(err, f"{os.fsdecode(folder)}: cannot watch: {os.strerror(err)}")
        return wd

    def events(self) -> Iterator[tuple[int, int, bytes]]:
        """The events queued since the last read, as ``(descriptor, mask, name)`` (name empty: the folder itself)."""
        while True:
            try:
                buf = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            pos = 0
            while pos < len(buf):
                wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
                name = buf[pos + _EVENT.size : pos + _EVENT.size + length].rstrip(b"\0")
                pos += _EVENT.size + length
                yield wd, mask, name
