"""Which lines matter (reports.lines): yt-dlp's failures in journal entries and log lines."""

from __future__ import annotations

import json

import pytest

from cookie_supervisor.classify import Reason, classify
from cookie_supervisor.reports import relevant
from tests.reports_support import (
    BOT,
    RATE,
    ROTATED,
)


def _journal(message: str | list[int], **fields: str) -> str:
    return json.dumps({"__CURSOR": "s=1;i=1", "MESSAGE": message, **fields})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (BOT, BOT),
        ("2026-11-25 12:00:01 worker[812]: " + BOT, BOT),
        ("yt_dlp.utils.DownloadError: " + RATE, RATE),
        (ROTATED, ROTATED),
        ("[debug] " + ROTATED, ROTATED),
        (
            "\x1b[0;31mERROR:\x1b[0m [youtube] x: Private video. Sign in",
            "ERROR: [youtube] x: Private video. Sign in",
        ),
        ('WARNING: [youtube] Skipping client "ios" since it does not support cookies', None),
        ("WARNING: Only images are available for download", None),
        ("[download] 100% of 10.00KiB", None),
        ("ERROR:root:database is locked", None),  # Python logging's default format
        ("ERROR:    Exception in ASGI application", None),  # uvicorn's
        ("[ERROR]: something else", None),
        ("level=ERROR msg=boom", None),
        ("MYERROR: nope", None),
        ("", None),
        ("{not json ERROR: [youtube] x: Private video", "ERROR: [youtube] x: Private video"),
        (_journal(BOT), BOT),
        (_journal(list(("\x1b[0;31mERROR:\x1b[0m " + BOT[7:]).encode())), BOT),
        (_journal(list(b"ERROR: bad \xff byte")), "ERROR: bad \ufffd byte"),
        (_journal("Traceback (most recent call last):\n  File x\n" + RATE + "\n"), RATE),
        (_journal("Started ytd-backend.service"), None),
        (_journal(None), None),  # type: ignore[arg-type]
        (json.dumps({"level": "error", "msg": BOT}), BOT),  # a structured log line
        (json.dumps({"level": "info", "msg": "done"}), None),
    ],
)
def test_relevant(line: str, expected: str | None) -> None:
    assert relevant(line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [(BOT, Reason.BOT_DETECTION), (ROTATED, Reason.COOKIES_ROTATED), (RATE, Reason.RATE_LIMITED)],
)
def test_relevant_text_classifies_like_a_posted_report(line: str, reason: Reason) -> None:
    text = relevant("Nov 25 ytd-backend[9]: " + line)
    assert text and classify(text).reason is reason
