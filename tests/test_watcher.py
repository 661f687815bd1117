"""The file watcher on the daemon's one inotify instance, on real directories: bursts,
replacements, and the instance shared with the log-file followers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from cookie_supervisor.config import SourceSettings
from cookie_supervisor.reports import ReportInputs
from cookie_supervisor.watcher import FileWatcher
from tests.reports_support import BOT, Metrics, Reports, append
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


async def test_a_directory_renamed_away_is_no_longer_watched(
    watched: tuple[FileWatcher, Seen, Path],
) -> None:
    watcher, seen, jar = watched
    old = jar.parent.with_name("srv.old")
    os.rename(jar.parent, old)  # the watch follows the inode; it must not stay on srv.old
    await seen.next("main", 0)
    await settled(watcher, seen)
    assert not watcher.directories.watching(jar.parent, watcher._event)
    assert watcher.directories.directories == 1  # the parent only: nothing follows srv.old
    old.rename(jar.parent)  # back: watched again
    await until(lambda: watcher.directories.watching(jar.parent, watcher._event))
    n = await settled(watcher, seen)
    write_atomic(jar, cookie_jar())
    await seen.next("main", n)


def inotify_instances() -> int:
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return links.count("anon_inode:inotify")


async def test_jars_and_log_files_share_one_instance_and_no_thread(tmp_path: Path) -> None:
    """Ten jars in ten directories, and a log file beside one of them: one inotify instance
    for all, read by the loop (watchdog had an instance and two threads per directory)."""
    jars = {}
    for i in range(10):
        (tmp_path / f"srv{i}").mkdir()
        jars[f"s{i}"] = tmp_path / f"srv{i}" / "cookies.txt"
        write_atomic(jars[f"s{i}"], cookie_jar())
    log = tmp_path / "srv0" / "backend.log"
    log.write_text("history\n")
    seen, reports, metrics = Seen(), Reports(), Metrics()
    instances, threads = inotify_instances(), set(threading.enumerate())
    watcher = FileWatcher(asyncio.get_running_loop(), jars, seen, debounce=0.05)
    source = SourceSettings(name="s0", cookies_file=jars["s0"], log_files=[log])
    # the slow poll is a minute: only the shared instance can make the new line seen in time
    inputs = ReportInputs([source], reports, metrics, poll_interval=60.0, watch=watcher.directories)
    watcher.start()
    await inputs.start()
    try:
        await until(lambda: metrics.up("s0", str(log)) == 1, what="the log file seen")
        assert inotify_instances() == instances + 1
        # no watching thread: the only new ones are asyncio's executor, where the log is read
        new = [t.name for t in set(threading.enumerate()) - threads]
        assert all(name.startswith("asyncio_") for name in new), new
        assert watcher.directories.directories == 11  # ten jar directories and their parent
        write_atomic(jars["s0"], cookie_jar())  # the directory both watch: each hears its own
        append(log, "worker: " + BOT)
        await seen.next("s0", 0)
        await until(lambda: reports == [("s0", BOT, str(log))], what="the report")
        write_atomic(jars["s9"], cookie_jar())
        await seen.next("s9", 0)
        assert seen.changes["s5"] == 0
    finally:
        await inputs.aclose()  # borrowed: leaves the instance open for its owner
        assert inotify_instances() == instances + 1
        watcher.stop()
    assert inotify_instances() == instances
