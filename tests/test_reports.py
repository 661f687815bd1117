"""Every source's report inputs together (reports.inputs): journal and log files followed, their
cursors resumed, and the series the daemon exposes."""

from __future__ import annotations

from pathlib import Path

from cookie_supervisor.config import SourceSettings
from cookie_supervisor.reports import (
    LogFileFollower,
    ReportInputs,
)
from tests import reports_support
from tests.reports_support import (
    BOT,
    RATE,
    ROTATED,
    Metrics,
    Reports,
    append,
    append_journal,
    until,
)
from tests.support import cookie_jar, write_atomic

# the shared fixtures this module uses (pytest finds fixtures among a module's names)
journal_file = reports_support.journal_file
log_file = reports_support.log_file
unit_files = reports_support.unit_files


async def test_report_inputs_follow_every_source_and_resume(
    journal: Path, unit_dirs: list[Path], log: Path, tmp_path: Path
) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    sources = [
        SourceSettings(name="main", cookies_file=jar, journal_units=["ytd-backend"]),
        SourceSettings(name="alt", cookies_file=jar, log_files=[log]),
        SourceSettings(name="quiet", cookies_file=jar),
    ]
    reports, metrics = Reports(), Metrics()

    def inputs(cursors: dict[str, str] | None = None) -> ReportInputs:
        return ReportInputs(
            sources,
            reports,
            metrics,
            cursors=cursors,
            journal_args=[f"--file={journal}"],
            unit_dirs=unit_dirs,
            poll_interval=0.2,
        )

    first = inputs()
    assert len(first.followers) == 2
    await first.start()
    await until(lambda: metrics.up("alt", str(log)) == 1 and metrics.up("main", "ytd-backend"))
    append_journal(journal, [("ytd-backend", BOT)])
    append(log, ROTATED)
    await until(lambda: len(reports) == 2)
    assert sorted(reports) == [("alt", ROTATED, str(log)), ("main", BOT, "ytd-backend")]
    await first.aclose()
    cursors = first.cursors()
    assert sorted(cursors) == ["file:alt:" + str(log), "journal:main"]

    append_journal(journal, [("ytd-backend", RATE)])
    append(log, BOT)
    second = inputs(cursors)
    await second.start()
    try:
        await until(lambda: len(reports) == 4)
        assert sorted(reports[2:]) == [("alt", BOT, str(log)), ("main", RATE, "ytd-backend")]
    finally:
        await second.aclose()


async def test_daemon_metrics_expose_the_report_series(log: Path) -> None:
    from cookie_supervisor.metrics import Metrics as DaemonMetrics

    metrics, reports = DaemonMetrics(), Reports()
    f = LogFileFollower("default", log, reports, metrics, poll_interval=0.2)
    await f.start()
    try:
        await until(lambda: metrics.report_input_up.value("default", str(log)) == 1)
        append(log, "INFO: fine", BOT)
        await until(lambda: len(reports) == 1)
    finally:
        await f.aclose()
    text = metrics.exposition().decode()
    labels = f'{{source="default",input="{log}"}}'
    assert f"cookie_supervisor_report_lines_read_total{labels} 2.0" in text
    assert f"cookie_supervisor_report_lines_matched_total{labels} 1.0" in text
    assert f"cookie_supervisor_report_input_up{labels} 1.0" in text
