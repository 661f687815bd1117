"""The journal follower (reports.journal) on real journal files: systemd-journal-remote writes
them, journalctl follows them without a running journald."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from cookie_supervisor.reports import (
    JournalFollower,
    unit_known,
)
from tests import reports_support
from tests.reports_support import (
    BOT,
    RATE,
    ROTATED,
    Metrics,
    Reports,
    append_journal,
    until,
)

# the shared fixtures this module uses (pytest finds fixtures among a module's names)
journal_file = reports_support.journal_file
unit_files = reports_support.unit_files


def follower(
    journal: Path,
    reports: Reports,
    metrics: Metrics,
    unit_dirs: list[Path],
    units: Iterable[str] = ("ytd-backend", "ytd-celery"),
    **kwargs: object,
) -> JournalFollower:
    return JournalFollower(
        "default",
        list(units),
        reports,
        metrics,
        journal_args=[f"--file={journal}"],
        unit_dirs=unit_dirs,
        backoff=0.05,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_journal_reports_relevant_entries_of_its_units_only(
    journal: Path, unit_dirs: list[Path]
) -> None:
    append_journal(journal, [("ytd-backend", BOT)], realtime=time.time() - 3600)  # history
    reports, metrics = Reports(), Metrics()
    f = follower(journal, reports, metrics, unit_dirs)
    await f.start()
    try:
        append_journal(
            journal,
            [
                ("ytd-backend", "[download] Destination: x.mp4"),
                ("ytd-backend", "\x1b[0;31mERROR:\x1b[0m " + BOT[7:]),  # a byte-array MESSAGE
                ("other", RATE),  # not ours
                ("ytd-celery", ROTATED),
                ("ytd-celery", "WARNING: Only images are available for download"),
            ],
        )
        await until(lambda: metrics.read("default", "ytd-celery") == 2, what="entries read")
        assert reports == [
            ("default", BOT, "ytd-backend"),
            ("default", ROTATED, "ytd-celery"),
        ]
        assert metrics.read("default", "ytd-backend") == 2  # history not replayed
        assert metrics.matched("default", "ytd-backend") == 1
        assert metrics.matched("default", "ytd-celery") == 1
        assert metrics.read("default", "other") == 0
        assert metrics.up("default", "ytd-backend") == 1
        assert f.cursors()["journal:default"].startswith("s=")
    finally:
        await f.aclose()
    assert metrics.up("default", "ytd-backend") == 0  # not followed any more


async def test_journal_cursor_resumes_without_replay_or_gap(
    journal: Path, unit_dirs: list[Path]
) -> None:
    reports, metrics = Reports(), Metrics()
    first = follower(journal, reports, metrics, unit_dirs)
    await first.start()
    append_journal(journal, [("ytd-backend", f"{BOT} #1"), ("ytd-backend", f"{BOT} #2")])
    await until(lambda: len(reports) == 2)
    await first.aclose()
    cursors = first.cursors()

    # Lines logged while the daemon is down are read after its restart, once.
    append_journal(journal, [("ytd-backend", f"{BOT} #3"), ("ytd-celery", f"{ROTATED} #4")])
    second = follower(journal, reports, metrics, unit_dirs, cursors=cursors)
    await second.start()
    try:
        append_journal(journal, [("ytd-backend", f"{BOT} #5")])
        await until(lambda: len(reports) >= 5)
        await until(lambda: metrics.read("default", "ytd-backend") == 4)
        assert [t.rsplit("#", 1)[1] for t in reports.texts()] == ["1", "2", "3", "4", "5"]
        assert second.cursors() != cursors
    finally:
        await second.aclose()


async def test_journalctl_exit_restarts_and_a_rejected_cursor_is_dropped(
    journal: Path, unit_dirs: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    reports, metrics = Reports(), Metrics()
    f = follower(journal, reports, metrics, unit_dirs, cursors={"journal:default": "bogus"})
    await f.start()
    try:
        # journalctl refuses the cursor and exits; the follower restarts it by time.
        await until(lambda: f.restarts >= 1 and not f.cursors(), what="a restart")
        assert "cursor of source default rejected" in caplog.text
        append_journal(journal, [("ytd-backend", BOT)])
        await until(lambda: reports.texts() == [BOT])
        assert f.cursors()
    finally:
        await f.aclose()


async def test_unit_without_unit_file_warns_and_runs_on(
    journal: Path, unit_dirs: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    reports, metrics = Reports(), Metrics()
    f = follower(journal, reports, metrics, unit_dirs, units=["ytd-backend", "ghost"])
    with caplog.at_level(logging.WARNING):
        await f.start()
    try:
        assert "journal unit 'ghost' of source default has no unit file" in caplog.text
        await until(lambda: metrics.up("default", "ytd-backend") == 1)
        assert metrics.up("default", "ghost") == 0
        append_journal(journal, [("ytd-backend", BOT)])
        await until(lambda: len(reports) == 1)
        append_journal(journal, [("ghost", RATE)])  # it exists after all: it logs
        await until(lambda: metrics.up("default", "ghost") == 1)
        assert reports.texts() == [BOT, RATE]
    finally:
        await f.aclose()


async def test_missing_journalctl_is_retried_with_input_down(
    tmp_path: Path, unit_dirs: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    f = JournalFollower(
        "default",
        ["ytd-backend"],
        Reports(),
        metrics,
        journalctl=str(tmp_path / "no-journalctl"),
        unit_dirs=unit_dirs,
        backoff=0.01,
        backoff_max=0.05,
    )
    await f.start()
    try:
        await until(lambda: f.restarts >= 3)
        assert metrics.up("default", "ytd-backend") == 0
        assert "cannot run" in caplog.text
    finally:
        await f.aclose()


async def test_journal_burst_is_read_in_full(journal: Path, unit_dirs: list[Path]) -> None:
    reports, metrics = Reports(), Metrics()
    f = follower(journal, reports, metrics, unit_dirs)
    await f.start()
    try:
        lines = [("ytd-backend", BOT if i % 100 == 0 else f"[download] {i}") for i in range(10_000)]
        started = time.monotonic()  # the write is part of the burst: journalctl reads meanwhile
        append_journal(journal, lines)
        await until(lambda: metrics.read("default", "ytd-backend") == 10_000, timeout=20)
        elapsed = time.monotonic() - started
        assert len(reports) == 100 == metrics.matched("default", "ytd-backend")
        print(f"journal: 10000 entries in {elapsed:.3f}s = {10_000 / elapsed:.0f} entries/s")
    finally:
        await f.aclose()


def test_unit_known_looks_for_unit_files_and_templates(tmp_path: Path) -> None:
    (tmp_path / "ytd-backend.service").touch()
    (tmp_path / "ytd-worker@.service").touch()
    (tmp_path / "ytd.socket").touch()
    assert unit_known("ytd-backend", [tmp_path])
    assert unit_known("ytd-backend.service", [tmp_path])
    assert unit_known("ytd-worker@3", [tmp_path])
    assert unit_known("ytd.socket", [tmp_path])
    assert unit_known("ytd-*", [tmp_path])  # a pattern cannot be checked
    assert not unit_known("ytd", [tmp_path])
    assert not unit_known("ghost", [tmp_path])
