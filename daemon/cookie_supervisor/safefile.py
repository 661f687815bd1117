"""Opening a regular file at a path someone else controls: never blocking, never anything but a
regular file, never reading past a bound.

The cookie jar's path is the operator's (or an uploader's): a FIFO put there would block a plain
open forever waiting for a writer, a device could have effects or read endlessly, and a jar that
grows while it is read must not be read to the end. So the open is non-blocking and takes no
controlling terminal, the type check is made on the *opened* descriptor (a swap between a look
and the open cannot slip anything else in), and reads stop at a limit. Used by `cookiefile`
(inspection, streamed) and `probe` (the jar's private copy); what an errno means stays with each.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_READ = 1 << 20


class NotRegular(Exception):
    """What was opened is not a regular file; `stat` is the opened descriptor's."""

    def __init__(self, st: os.stat_result) -> None:
        super().__init__("not a regular file")
        self.stat = st


class TooLarge(Exception):
    """A file past the limit: by its size when opened, or while read (it grew meanwhile)."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        if size is None:
            super().__init__(f"too large (over {limit} bytes)")
        else:
            super().__init__(f"too large ({size} bytes, limit {limit})")
        self.limit = limit
        self.size = size


@contextmanager
def open_regular(path: Path | str, *, follow: bool) -> Iterator[tuple[int, os.stat_result]]:
    """The descriptor of the regular file at `path` and its fstat, closed on leaving.

    `follow=False` refuses a symlink at the path (OSError ELOOP): a caller that looked at the path
    and saw no link must not be led elsewhere by one put there since. Raises NotRegular for
    anything but a regular file, and lets OSError through: what an errno means is the caller's.
    """
    fd = os.open(path, FLAGS if follow else FLAGS | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)  # what was opened, which need not be what anybody looked at
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(st)
        yield fd, st
    finally:
        os.close(fd)


def read_at_most(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from the descriptor's position, whatever its size says."""
    chunks = []
    while limit > 0 and (chunk := os.read(fd, min(limit, _READ))):
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


class Bounded(io.RawIOBase):
    """The descriptor as a stream that raises TooLarge past `limit` bytes (a file that grows
    while it is read, or a /proc file that stats as empty)."""

    def __init__(self, fd: int, limit: int) -> None:
        super().__init__()
        self._fd = fd
        self._limit = limit
        self._total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        n = os.readv(self._fd, [buffer])
        self._total += n
        if self._total > self._limit:
            raise TooLarge(self._limit)
        return n
