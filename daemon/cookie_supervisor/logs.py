"""Structured logging: `extra={...}` fields become JSON keys or `key=value` pairs.

The daemon logs names, reasons, counts and ids — never a cookie value or a token. Libraries log
what they like (httpx the whole URL of every request, a webhook's credentials included), so every
record, ours and theirs, passes the one redaction (`classify.scrub`) on its way out, and every
logger but the daemon's own is quiet below WARNING.

Under systemd, stderr is a stream to journald: `JOURNAL_STREAM` holds that stream's
`device:inode`, and when it matches stderr every line starts with its syslog priority (`<4>`),
which journald turns into the entry's PRIORITY (sd-daemon(3)), so `journalctl -p warning` works;
the journal stamps each entry itself, so such lines carry no timestamp of their own.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, TextIO

from cookie_supervisor.classify import scrub

OWN = "cookie_supervisor"  # the daemon's loggers; every other one is a library's

# Attributes every LogRecord has; anything else on a record came from `extra=`. uvicorn adds a
# `color_message` copy of its message for its own formatter.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _STANDARD and not k.startswith("_") and v not in (None, "")
    }


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: critical 2, error 3, warning 4, info 6, debug 7."""
    for floor, priority in (
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
    ):
        if levelno >= floor:
            return priority
    return 7


def is_journal_stream(stream: TextIO) -> bool:
    """True when `stream` is the journald stream systemd announced in $JOURNAL_STREAM."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or not a real file (pytest capture)
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def _prefixed(priority: int, text: str) -> str:
    # journald reads the prefix per line: a traceback's lines keep the record's priority too.
    return "\n".join(f"<{priority}>{line}" for line in text.splitlines() or [""])


def _own(name: str) -> bool:
    return name == OWN or name.startswith(OWN + ".")


class Redact(logging.Filter):
    """Scrubs a record before any formatter sees it: message, arguments, extra fields, traceback.

    On the handler, not a logger: a library's record reaches the handler by propagation without
    passing any filter of the root logger.
    """

    _plain = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and not _own(record.name):
            return False  # a library that set its own logger's level lower still stays quiet
        try:
            message = record.getMessage()
        except Exception:  # a library's bad format string: keep the template, not the args
            message = str(record.msg)
        record.msg, record.args = scrub(message), None
        for key, value in _fields(record).items():
            if isinstance(value, str):
                setattr(record, key, scrub(value))
            elif not isinstance(value, int | float | bool):
                setattr(record, key, scrub(str(value)))
        if record.exc_info and not record.exc_text:
            record.exc_text = self._plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record.exc_info = None  # the formatters print exc_text; nothing unscrubbed is left
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        line = self._json(record)
        return _prefixed(syslog_priority(record.levelno), line) if self.journal else line

    def _json(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, journal: bool = False) -> None:
        stamp = "" if journal else "%(asctime)s "
        super().__init__(stamp + "%(levelname)-7s %(name)s: %(message)s")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        if extra:
            # After the message's first line, so a traceback below it stays readable.
            first, sep, rest = line.partition("\n")
            line = f"{first} {extra}{sep}{rest}"
        return _prefixed(syslog_priority(record.levelno), line) if self.journal else line


def setup(fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    journal = is_journal_stream(out)
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(journal) if fmt == "json" else TextFormatter(journal))
    handler.addFilter(Redact())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries (httpx, httpcore, uvicorn, apscheduler, watchdog, redis, asyncio, …) speak at
    # WARNING and above only: at INFO httpx logs every webhook URL, uvicorn every connection.
    # The root's level is theirs; the daemon's own loggers take the configured one.
    wanted = logging.getLevelName(level.upper())
    root.setLevel(max(logging.WARNING, wanted))
    logging.getLogger(OWN).setLevel(wanted)
    for name in list(logging.root.manager.loggerDict):
        lib = logging.getLogger(name)
        if not _own(name) and lib.level < logging.WARNING:
            lib.setLevel(logging.NOTSET)  # a library that lowered its own level inherits the root
