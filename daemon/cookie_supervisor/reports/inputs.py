"""Every source's report inputs (journal units, log files), built, started and closed together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cookie_supervisor.reports.journal import UNIT_DIRS, JournalFollower
from cookie_supervisor.reports.logfile import LogFileFollower
from cookie_supervisor.reports.sink import OnReport, ReportMetrics
from cookie_supervisor.watcher import DirectoryWatch

if TYPE_CHECKING:
    from cookie_supervisor.config import SourceSettings


class ReportInputs:
    """Every source's journal and log-file followers, started and closed together."""

    def __init__(
        self,
        sources: Iterable[SourceSettings],
        on_report: OnReport,
        metrics: ReportMetrics,
        *,
        cursors: Mapping[str, str] | None = None,
        journal_args: Sequence[str] = (),
        journalctl: str = "journalctl",
        unit_dirs: Iterable[Path] = UNIT_DIRS,
        poll_interval: float = 5.0,
        watch: DirectoryWatch | None = None,
    ) -> None:
        self.followers: list[JournalFollower | LogFileFollower] = []
        # every log file's directory on one inotify instance, read on the loop: no thread per
        # file, and no instance per directory (the default limit is 128 per user). The daemon's
        # is the jar watcher's (`watch`), which closes it; without one, its own.
        self.watch = watch or DirectoryWatch()
        self._own_watch = watch is None
        for source in sources:
            if source.journal_units:
                self.followers.append(
                    JournalFollower(
                        source.name,
                        source.journal_units,
                        on_report,
                        metrics,
                        cursors=cursors,
                        journal_args=journal_args,
                        journalctl=journalctl,
                        unit_dirs=unit_dirs,
                    )
                )
            for path in source.log_files:
                self.followers.append(
                    LogFileFollower(
                        source.name,
                        path,
                        on_report,
                        metrics,
                        cursors=cursors,
                        poll_interval=poll_interval,
                        watch=self.watch,
                    )
                )

    def cursors(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for follower in self.followers:
            merged.update(follower.cursors())
        return merged

    async def start(self) -> None:
        for follower in self.followers:
            await follower.start()

    async def aclose(self) -> None:
        for follower in self.followers:
            await follower.aclose()
        if self._own_watch:
            self.watch.close()
