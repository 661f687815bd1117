"""The file watcher with a real watchdog observer on real directories: bursts, replacements."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from cookie_supervisor.watcher import FileWatcher
from tests.support import cookie_jar, write_atomic


class Seen:
    """What the watcher reported, and a way to wait for the next report."""

    def __init__(self) -> None:
        self.changes: Counter[str] = Counter()

    def __call__(self, source: str) -> None:
        self.changes[source] += 1

    async def next(self, source: str, after: int, timeout: float = 5.0) -> None:
        await until(lambda: self.changes[source] > after, timeout, f"a change to {source}")


async def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def settled(watcher: FileWatcher, seen: Seen, source: str = "main") -> int:
    """Wait until no change is pending (the burst so far has fired); the count from then on."""
    await until(lambda: not watcher._timers, what="the burst to end")
    return seen.changes[source]


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[tuple[FileWatcher, Seen, Path]]:
    jar = tmp_path / "srv" / "cookies.txt"
    jar.parent.mkdir()
    write_atomic(jar, cookie_jar())
    seen = Seen()
    watcher = FileWatcher(asyncio.get_running_loop(), {"main": jar}, seen, debounce=0.05)
    watcher.start()
    await until(lambda: watcher.running, what="the observer")
    yield watcher, seen, jar
    watcher.stop()


async def test_a_burst_of_writes_is_one_change(tmp_path: Path) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    seen = Seen()
    # A long quiet time, so a loaded machine cannot split the burst.
    watcher = FileWatcher(asyncio.get_running_loop(), {"main": jar}, seen, debounce=0.5)
    watcher.start()
    try:
        await until(lambda: watcher.running, what="the observer")
        with jar.open("a") as fh:
            for _ in range(20):
                fh.write("# more\n")
                fh.flush()
        await seen.next("main", 0)
        assert await settled(watcher, seen) == 1  # twenty writes, one change
        write_atomic(jar, cookie_jar())  # the next burst is another change
        await seen.next("main", 1)
        assert await settled(watcher, seen) == 2
    finally:
        watcher.stop()


async def test_directory_deleted_and_recreated_is_rearmed(
    watched: tuple[FileWatcher, Seen, Path],
) -> None:
    watcher, seen, jar = watched
    shutil.rmtree(jar.parent)
    await seen.next("main", 0)  # the file went with its directory
    n = await settled(watcher, seen)
    jar.parent.mkdir()
    await seen.next("main", n)  # the directory came back: look again
    n = await settled(watcher, seen)
    write_atomic(jar, cookie_jar())  # seen by the new watch, not by a 60 s rescan
    await seen.next("main", n)


async def test_directory_renamed_over_is_rearmed(
    watched: tuple[FileWatcher, Seen, Path],
) -> None:
    watcher, seen, jar = watched
    staged = jar.parent.with_name("srv.new")
    staged.mkdir()
    write_atomic(staged / "cookies.txt", cookie_jar(mark="NewSession"))
    old = jar.parent.with_name("srv.old")
    os.rename(jar.parent, old)  # the old watch follows this inode to its new name
    os.rename(staged, jar.parent)
    await seen.next("main", 0)
    n = await settled(watcher, seen)
    write_atomic(jar, cookie_jar())  # only a watch on the new directory sees this
    await seen.next("main", n)


async def test_directory_replaced_by_an_atomic_rename(
    watched: tuple[FileWatcher, Seen, Path],
) -> None:
    watcher, seen, jar = watched
    jar.unlink()
    await seen.next("main", 0)
    n = await settled(watcher, seen)
    staged = jar.parent.with_name("srv.new")
    staged.mkdir()
    write_atomic(staged / "cookies.txt", cookie_jar())
    os.rename(staged, jar.parent)  # over the (now empty) watched directory
    await seen.next("main", n)
    n = await settled(watcher, seen)
    write_atomic(jar, cookie_jar())
    await seen.next("main", n)


async def test_a_directory_or_fifo_at_the_files_path_is_a_change(
    watched: tuple[FileWatcher, Seen, Path],
) -> None:
    watcher, seen, jar = watched
    jar.unlink()
    await seen.next("main", 0)
    n = await settled(watcher, seen)
    jar.mkdir()
    await seen.next("main", n)
    n = await settled(watcher, seen)
    jar.rmdir()
    os.mkfifo(jar)
    await seen.next("main", n)


async def test_directory_that_appears_later_is_watched(tmp_path: Path) -> None:
    jar = tmp_path / "later" / "cookies.txt"
    seen = Seen()
    watcher = FileWatcher(asyncio.get_running_loop(), {"main": jar}, seen, debounce=0.05)
    watcher.start()
    try:
        await until(lambda: watcher.running, what="the observer")
        jar.parent.mkdir()
        await seen.next("main", 0)
        n = await settled(watcher, seen)
        write_atomic(jar, cookie_jar())
        await seen.next("main", n)
    finally:
        watcher.stop()


async def test_symlinked_jar_changes_through_its_target(tmp_path: Path) -> None:
    # A Kubernetes secret volume swaps the `..data` link to a new timestamped directory.
    mount = tmp_path / "secret"
    (mount / "..v1").mkdir(parents=True)
    write_atomic(mount / "..v1" / "cookies.txt", cookie_jar())
    (mount / "..data").symlink_to("..v1")
    (mount / "cookies.txt").symlink_to("..data/cookies.txt")
    seen = Seen()
    watcher = FileWatcher(
        asyncio.get_running_loop(), {"main": mount / "cookies.txt"}, seen, debounce=0.05
    )
    watcher.start()
    try:
        await until(lambda: watcher.running, what="the observer")
        (mount / "..v2").mkdir()
        write_atomic(mount / "..v2" / "cookies.txt", cookie_jar(mark="Rotated"))
        (mount / "..data_tmp").symlink_to("..v2")
        os.replace(mount / "..data_tmp", mount / "..data")
        await seen.next("main", 0)
    finally:
        watcher.stop()


async def test_an_event_for_a_stopping_emitter_is_not_an_error(
    watched: tuple[FileWatcher, Seen, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Replays watchdog's stop race without timing: an emitter asked for events after its stop
    (what its thread does when an event arrives mid-stop) logs ERROR, which the watcher drops;
    watchdog's other errors still get through."""
    watcher, _seen, _jar = watched
    [emitter, *_] = watcher._observer.emitters
    with caplog.at_level(logging.DEBUG, logger="watchdog"):
        emitter.stop()
        emitter.queue_events(0)  # the stopped emitter's thread, one event too late
        logging.getLogger("watchdog.observers.inotify").error("something else")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["something else"]
