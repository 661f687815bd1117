"""Many log files, and a log path swapped for a symlink.

150 followed log files share one inotify instance read on the loop (no thread, no instance per
file or directory: the default limit is 128 instances per user). A symlink put at a log path is
never read through: it could point at any file the daemon can read.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import redis

from cookie_supervisor.config import SourceSettings
from cookie_supervisor.reports import SYMLINK, LogFileFollower, ReportInputs
from tests.reports_support import BOT, Metrics, Reports, append, until
from tests.support import Daemon, cookie_jar, daemon_env, wait_for, write_atomic

FILES = 150


def open_files(pid: int | str = "self") -> list[str]:
    """What each descriptor of `pid` points at; one closed between listing and reading is not
    open any more, so it is left out (the daemon opens and closes files all the time)."""
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return links


def inotify_instances() -> int:
    return open_files().count("anon_inode:inotify")


def logs(tmp_path: Path, n: int) -> list[Path]:
    """One log file per directory: the worst case for per-directory watches."""
    paths = []
    for i in range(n):
        directory = tmp_path / f"app{i}"
        directory.mkdir()
        (directory / "backend.log").write_text("history\n")
        paths.append(directory / "backend.log")
    return paths


async def test_150_log_files_share_one_inotify_instance_and_no_thread(tmp_path: Path) -> None:
    paths = logs(tmp_path, FILES)
    jar = tmp_path / "cookies.txt"
    reports, metrics = Reports(), Metrics()
    source = SourceSettings(name="default", cookies_file=jar, log_files=paths)
    # the slow poll is a minute: only inotify can make the new line seen in time
    inputs = ReportInputs([source], reports, metrics, poll_interval=60.0)
    instances, threads = inotify_instances(), threading.active_count()
    await inputs.start()
    try:
        await until(lambda: all(metrics.up("default", str(p)) == 1 for p in paths))
        assert inotify_instances() == instances + 1
        # no thread per file (watchdog had two per directory): the reads share asyncio's
        # executor, at most min(32, CPUs + 4) threads
        assert threading.active_count() - threads <= min(32, (os.cpu_count() or 1) + 4)
        assert inputs.watch.directories == FILES
        append(paths[-1], "worker: " + BOT)
        await until(lambda: len(reports) == 1, timeout=5)
        assert reports == [("default", BOT, str(paths[-1]))]
    finally:
        await inputs.aclose()
    assert inotify_instances() == instances


def test_the_daemon_follows_150_log_files(redis_url: str, tmp_path: Path) -> None:
    paths = logs(tmp_path, FILES)
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    cfg = tmp_path / "sources.toml"
    listed = ", ".join(f'"{p}"' for p in paths)
    cfg.write_text(
        f'[[sources]]\nname = "default"\ncookies_file = "{jar}"\nvalidation_urls = []\n'
        f"log_files = [{listed}]\n"
    )
    env = daemon_env(redis_url, jar)
    env.pop("YT_DLP_COOKIES_FILE")
    d = Daemon(env=env, args=["--config", str(cfg)]).start()
    try:
        assert d.proc is not None
        links = open_files(d.proc.pid)
        # the cookie file's watches and the log files' on one instance
        assert links.count("anon_inode:inotify") == 1
        up = "cookie_supervisor_report_input_up"
        # every file seen once (its end marked) before a line is added
        wait_for(lambda: d.metric(up, source="default", input=str(paths[-1])) == 1, timeout=10)
        append(paths[-1], "worker: " + BOT)
        r = redis.Redis.from_url(redis_url)
        wait_for(lambda: r.llen("bull:cookie-refresh:wait") == 1, timeout=10, what="report → job")
    finally:
        d.stop()


async def test_a_log_path_replaced_by_a_symlink_is_not_followed(tmp_path: Path) -> None:
    log = tmp_path / "backend.log"
    log.write_text("history\n")
    secret = tmp_path / "root-only.txt"
    secret.write_text("")
    reports, metrics = Reports(), Metrics()
    f = LogFileFollower("default", log, reports, metrics, poll_interval=0.1)
    await f.start()
    try:
        await until(lambda: metrics.up("default", str(log)) == 1)
        log.unlink()
        log.symlink_to(secret)  # an attacker who can write the log directory
        append(secret, "ERROR: [secret] the root-only line")
        await until(lambda: metrics.up("default", str(log)) == 0, what="the symlink refused")
        append(secret, "ERROR: [secret] another root-only line")
        # the follower keeps looking (every 0.1 s) and keeps refusing
        await until(lambda: metrics.read("default", str(log)) == 0 and f._problem == SYMLINK)
        assert not any("secret" in text for _, text, _ in reports)
        # a regular file back at the path is followed again, from its start
        log.unlink()
        log.write_text("worker: " + BOT + "\n")
        await until(lambda: len(reports) == 1)
        assert reports == [("default", BOT, str(log))]
    finally:
        await f.aclose()


async def test_a_symlink_at_the_path_from_the_start_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "root-only.txt"
    secret.write_text("ERROR: [secret] the root-only line\n")
    log = tmp_path / "backend.log"
    log.symlink_to(secret)
    reports, metrics = Reports(), Metrics()
    f = LogFileFollower("default", log, reports, metrics, poll_interval=0.1)
    await f.start()
    try:
        await until(lambda: f._problem == SYMLINK)
        append(secret, "ERROR: [secret] another")
        assert metrics.up("default", str(log)) == 0 and reports == []
    finally:
        await f.aclose()
