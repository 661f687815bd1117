"""Which lines matter: a yt-dlp failure found in a journal entry or a plain log line (pure).

Only a yt-dlp `ERROR:` or the "cookies are no longer valid" WARNING is a report; nothing else is
parsed. `LineSplitter` cuts a byte stream into bounded lines and keeps offsets exact, so a
follower's cursor never skips nor repeats a line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# yt-dlp prints `ERROR: ` and one space before its text. Python logging's default `ERROR:root:`
# has none, uvicorn's `ERROR:    ` pads with several, and `[ERROR]` or `level=ERROR` are other
# programs' levels, not yt-dlp's.
_ERROR = re.compile(r"(?<![\w\[=])ERROR: (?=\S)")
_WARNING = re.compile(r"(?<![\w\[=])WARNING: (?=\S)")
_ROTATED = "cookies are no longer valid"  # the one WARNING that matters (docs/ytdlp.md)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # `--color always` output in a journal
MAX_LINE = 64 * 1024  # longer lines keep their head: yt-dlp's messages are far shorter
MAX_TEXT = 4096  # a report's text; the classifier needs the first sentence
CHUNK = 1 << 20  # bytes read per turn, so a burst never holds the loop for long


def relevant_text(message: str) -> str | None:
    """The yt-dlp failure a (possibly multi-line) message carries, from its marker on; or None."""
    for raw in message.splitlines():
        line = _ANSI.sub("", raw) if "\x1b" in raw else raw
        if found := _ERROR.search(line):
            return line[found.start() :].strip()[:MAX_TEXT]
        found = _WARNING.search(line)
        if found and _ROTATED in line[found.end() :].lower():
            return line[found.start() :].strip()[:MAX_TEXT]
    return None


def journal_message(entry: Mapping[str, Any]) -> str | None:
    """An entry's MESSAGE: journalctl writes it as an array of byte values when it is not
    printable UTF-8 (colour codes, invalid bytes)."""
    value = entry.get("MESSAGE")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", "replace")
    return None


def relevant(line: str) -> str | None:
    """The text to classify for a journal JSON entry or a plain log line, or None to skip it.

    A JSON object without MESSAGE is a structured log line: any of its string values may hold
    yt-dlp's message.
    """
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            entry = json.loads(stripped)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            message = journal_message(entry)
            if message is not None:
                return relevant_text(message)
            for value in entry.values():
                if isinstance(value, str) and (text := relevant_text(value)):
                    return text
            return None
    return relevant_text(line)


class LineSplitter:
    """Splits a byte stream into lines. An overlong line keeps its first `limit` bytes;
    `pending` counts the bytes of the unfinished last line, so offsets stay exact."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._limit = limit
        self._head = bytearray()
        self.pending = 0

    def feed(self, data: bytes) -> list[bytes]:
        *complete, rest = data.split(b"\n")
        lines = []
        for part in complete:
            self._add(part)
            lines.append(bytes(self._head))
            self.reset()
        self._add(rest)
        return lines

    def flush(self) -> list[bytes]:
        """The unfinished line, if any, as a line of its own (its file will not grow again)."""
        line = [bytes(self._head)] if self.pending else []
        self.reset()
        return line

    def reset(self) -> None:
        self._head.clear()
        self.pending = 0

    def _add(self, part: bytes) -> None:
        self.pending += len(part)
        room = self._limit - len(self._head)
        if room > 0:
            self._head += part[:room]
