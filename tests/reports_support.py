"""What the report-input tests share: yt-dlp's lines, the followers' counters and callback on a
private registry, real journal files (systemd-journal-remote writes them, journalctl follows them
without a running journald) and plain log files."""

from __future__ import annotations

import asyncio
import itertools
import struct
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

JOURNAL_REMOTE = next(
    (
        p
        for p in map(
            Path, ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")
        )
        if p.exists()
    ),
    Path("systemd-journal-remote"),
)
BOT = "ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm you’re not a bot. Use --cookies-from-browser or --cookies for the authentication."
ROTATED = "WARNING: [youtube] The provided YouTube account cookies are no longer valid. They have likely been rotated in the browser as a security measure."
RATE = "ERROR: [youtube] jNQXAC9IVRw: Video unavailable. This content isn't available, try again later. The current session has been rate-limited by YouTube for up to an hour."


class Metrics:
    """The three collectors the followers count with, on a private registry."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        labels = ["source", "input"]
        self.report_lines_read_total = Counter(
            "cookie_supervisor_report_lines_read_total", "read", labels, registry=r
        )
        self.report_lines_matched_total = Counter(
            "cookie_supervisor_report_lines_matched_total", "matched", labels, registry=r
        )
        self.report_input_up = Gauge("cookie_supervisor_report_input_up", "up", labels, registry=r)

    def read(self, source: str, input_: str) -> float:
        return self._value("report_lines_read_total", source, input_) or 0.0

    def matched(self, source: str, input_: str) -> float:
        return self._value("report_lines_matched_total", source, input_) or 0.0

    def up(self, source: str, input_: str) -> float | None:
        return self._value("report_input_up", source, input_)

    def _value(self, name: str, source: str, input_: str) -> float | None:
        return self.registry.get_sample_value(
            f"cookie_supervisor_{name}", {"source": source, "input": input_}
        )


class Reports(list[tuple[str, str, str]]):
    """on_report's calls, checked to happen on the event loop's thread."""

    def __call__(self, source: str, text: str, input_: str) -> None:
        asyncio.get_running_loop()  # raises off the loop
        self.append((source, text, input_))

    def texts(self) -> list[str]:
        return [text for _, text, _ in self]


async def until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


# --- journal files -------------------------------------------------------------------------------

BOOT_ID = "4f1c3a0e9b2d4c6f8a7e5d3c1b0a9f8e"
_monotonic = itertools.count(1_000_000)


def _field(name: str, value: str) -> bytes:
    data = value.encode()
    if b"\n" in data or b"\x1b" in data:  # the export format's binary form
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return f"{name}={value}\n".encode()


def append_journal(
    journal: Path, entries: Iterable[tuple[str, str]], realtime: float | None = None
) -> None:
    """Writes (unit, message) entries into a real journal file, as journald would."""
    export: list[str | bytes] = []
    at = int((realtime or time.time()) * 1e6)
    for i, (unit, message) in enumerate(entries):
        export.append(f"__REALTIME_TIMESTAMP={at + i}\n__MONOTONIC_TIMESTAMP={next(_monotonic)}\n")
        export.append(f"_BOOT_ID={BOOT_ID}\n_SYSTEMD_UNIT={unit}.service\nPRIORITY=3\n")
        export.append(_field("MESSAGE", message) + b"\n")
    source = journal.with_suffix(f".{next(_monotonic)}.export")
    source.write_bytes(
        b"".join(part if isinstance(part, bytes) else part.encode() for part in export)
    )
    subprocess.run(
        [str(JOURNAL_REMOTE), f"--output={journal}", str(source)], check=True, capture_output=True
    )


@pytest.fixture(name="journal")
def journal_file(tmp_path: Path) -> Path:
    assert JOURNAL_REMOTE.exists(), "systemd-journal-remote is not installed (make test does it)"
    path = tmp_path / "backend.journal"  # absolute: journalctl 252 cannot follow a bare name
    append_journal(path, [("ytd-backend", "ytd-backend started")], realtime=time.time() - 3600)
    return path


@pytest.fixture(name="unit_dirs")
def unit_files(tmp_path: Path) -> list[Path]:
    directory = tmp_path / "units"
    directory.mkdir()
    for unit in ("ytd-backend", "ytd-celery", "other"):
        (directory / f"{unit}.service").touch()
    return [directory]


# --- plain log files -----------------------------------------------------------------------------


def append(path: Path, *lines: str, end: str = "\n") -> None:
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in lines[:-1]) + lines[-1] + end)


@pytest.fixture(name="log")
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "backend.log"
    path.write_text("old line\n" + BOT + " (yesterday)\n")
    return path
