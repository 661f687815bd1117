"""Passive detection: yt-dlp failures read from the backend's journal and plain log files.

For backends nobody wants to modify, the daemon follows their systemd units' journal
(`journalctl --follow --output=json`) and their plain log files, and hands every line that carries
a yt-dlp `ERROR:` or the "cookies are no longer valid" WARNING to `on_report(source, text, input)`
on the event loop. Nothing else is parsed; what a report leads to (classification, evidence,
coalescing) is decided where posted reports go. Each follower keeps a cursor (the journal's
`__CURSOR`, a log file's inode and offset) that the state file persists, so a daemon restart
neither replays nor skips lines.

- `lines`: which lines matter, and splitting a byte stream into bounded lines (pure)
- `journal`: `JournalFollower`, one `journalctl` child per source
- `logfile`: `LogFileFollower`, one plain log file
- `inputs`: `ReportInputs`, every source's followers together (what the daemon wires)
- `sink`: the report callback and the counters both followers use
"""

from cookie_supervisor.reports.inputs import ReportInputs
from cookie_supervisor.reports.journal import UNIT_DIRS, JournalFollower, unit_known, unit_name
from cookie_supervisor.reports.lines import journal_message, relevant, relevant_text
from cookie_supervisor.reports.logfile import SYMLINK, LogFileFollower
from cookie_supervisor.reports.sink import OnReport, ReportMetrics

__all__ = [
    "SYMLINK",
    "UNIT_DIRS",
    "JournalFollower",
    "LogFileFollower",
    "OnReport",
    "ReportInputs",
    "ReportMetrics",
    "journal_message",
    "relevant",
    "relevant_text",
    "unit_known",
    "unit_name",
]
