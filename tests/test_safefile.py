"""The one safe open of a file at a path someone else controls, and its two users: the cookie
jar's inspection (cookiefile) and the probe's private copy of the jar. Each hostile path gets
the same clear answer from both as before they shared it."""

from __future__ import annotations

import concurrent.futures
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from cookie_supervisor import cookiefile, probe, safefile
from cookie_supervisor.classify import Reason
from tests.support import cookie_jar

T = TypeVar("T")


def no_block(fn: Callable[[], T]) -> T:
    """Runs `fn` in a thread: a blocking open of a FIFO fails the test instead of hanging it."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(fn).result(timeout=5)
    finally:
        pool.shutdown(wait=False)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def make(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "cookies.txt"
    if kind == "fifo":
        os.mkfifo(path)  # no writer: a blocking open would wait forever
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink":
        real = tmp_path / "real.txt"
        real.write_text(cookie_jar())
        path.symlink_to(real.name)
    else:
        path.write_text(cookie_jar())
    return path


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_anything_but_a_regular_file_is_refused_after_the_open(tmp_path: Path, kind: str) -> None:
    path = make(tmp_path, kind)
    before = open_fds()

    def attempt() -> None:
        with safefile.open_regular(path, follow=False):
            pytest.fail("opened")

    with pytest.raises(safefile.NotRegular, match="not a regular file") as refused:
        no_block(attempt)
    assert (refused.value.stat.st_mode & 0o170000) == {"fifo": 0o010000, "directory": 0o040000}[
        kind
    ]
    assert open_fds() == before  # the descriptor was closed


def test_a_symlink_is_followed_only_when_asked(tmp_path: Path) -> None:
    path = make(tmp_path, "symlink")
    with pytest.raises(OSError) as refused, safefile.open_regular(path, follow=False):
        pass
    assert refused.value.errno == errno.ELOOP
    with safefile.open_regular(path, follow=True) as (fd, st):
        assert safefile.read_at_most(fd, st.st_size + 10) == cookie_jar().encode()


def test_reads_stop_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 3000)
    with safefile.open_regular(path, follow=False) as (fd, _):
        assert safefile.read_at_most(fd, 1000) == b"x" * 1000
    with safefile.open_regular(path, follow=False) as (fd, _):
        stream = safefile.Bounded(fd, 2999)
        with pytest.raises(safefile.TooLarge, match=r"^too large \(over 2999 bytes\)$"):
            while stream.read(1024):
                pass
    with safefile.open_regular(path, follow=False) as (fd, _):
        stream = safefile.Bounded(fd, 3000)  # exactly at the limit is fine
        assert sum(len(chunk) for chunk in iter(lambda: stream.read(1024), b"")) == 3000


# What each user says about each path: the texts they gave before sharing the helper.
INSPECTED = {
    "fifo": "not a file (fifo)",
    "directory": "is a directory",
    "symlink": None,  # a symlinked jar is followed on purpose (Kubernetes secrets)
}
COPIED = {
    "fifo": (Reason.NOT_A_FILE, "the cookie file's path holds a FIFO, not a regular file"),
    "directory": (
        Reason.NOT_A_FILE,
        "the cookie file's path holds a directory, not a regular file",
    ),
    "symlink": None,
}


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink"])
def test_both_users_answer_as_before(tmp_path: Path, kind: str) -> None:
    path = make(tmp_path, kind)
    report = no_block(lambda: cookiefile.inspect(path, time.time()))
    assert report.error == INSPECTED[kind] and report.exists
    copy = tmp_path / "copy.txt"
    assert no_block(lambda: probe._copy_jar(path, copy)) == COPIED[kind]
    if COPIED[kind] is None:
        assert copy.read_text() == cookie_jar() and (copy.stat().st_mode & 0o777) == 0o600
    else:
        assert not copy.exists()


def test_an_oversized_jar_is_too_large_to_inspect_and_copied_up_to_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cookies.txt"
    path.write_text(cookie_jar() + "#" * 200 + "\n")
    size = path.stat().st_size
    monkeypatch.setattr(cookiefile, "MAX_BYTES", 100)
    report = cookiefile.inspect(path, time.time())
    assert report.error == f"too large ({size} bytes, limit 100)" and report.size == size
    # The probe's copy holds at most the bound, as it always did (the rest is never read).
    monkeypatch.setattr(probe, "MAX_BYTES", 100)
    copy = tmp_path / "copy.txt"
    assert probe._copy_jar(path, copy) is None
    assert copy.read_bytes() == path.read_bytes()[:100]
