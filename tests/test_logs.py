"""Structured logs: extra fields as JSON keys or key=value pairs; journald priorities under systemd."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from cookie_supervisor.logs import JsonFormatter, TextFormatter, syslog_priority


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(
        "cookie_supervisor.x", logging.WARNING, __file__, 1, "refresh %s", ("enqueued",), None
    )
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_the_fields() -> None:
    line = JsonFormatter().format(
        record(source="default", job_id="7", color_message="x", detail="")
    )
    entry = json.loads(line)
    assert entry["msg"] == "refresh enqueued" and entry["level"] == "warning"
    assert entry["source"] == "default" and entry["job_id"] == "7"
    assert "color_message" not in entry and "detail" not in entry  # uvicorn's extra; empty fields


def test_text_lines_end_with_key_values() -> None:
    line = TextFormatter().format(record(source="default", reason="forbidden"))
    assert line.endswith("cookie_supervisor.x: refresh enqueued source=default reason=forbidden")


# --- journald: priorities when stderr is the stream systemd announced ----------------------

EMIT = """
import logging, sys
from cookie_supervisor import logs
logs.setup(sys.argv[1], "debug")
log = logging.getLogger("cookie_supervisor.t")
log.debug("d")
log.info("i", extra={"source": "main"})
log.warning("w")
log.error("e")
log.critical("c")
try:
    raise ValueError("boom")
except ValueError:
    log.exception("x")
"""


def emit(tmp_path: Path, fmt: str, journal_stream: str | None) -> list[str]:
    """Run logs.setup in a child whose stderr is a file, as systemd would hand it a socket."""
    err = tmp_path / f"stderr-{fmt}"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with err.open("w") as fh:
        if journal_stream == "match":
            st = os.fstat(fh.fileno())
            journal_stream = f"{st.st_dev}:{st.st_ino}"
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream
        subprocess.run(
            [sys.executable, "-c", EMIT, fmt], stderr=fh, env=env, check=True, timeout=30
        )
    return err.read_text().splitlines()


def test_priority_of_each_level() -> None:
    levels = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
    assert [syslog_priority(level) for level in levels] == [7, 6, 4, 3, 2]


def test_journal_stream_lines_carry_priorities_and_no_timestamp(tmp_path: Path) -> None:
    lines = emit(tmp_path, "text", "match")
    assert lines[:5] == [
        "<7>DEBUG   cookie_supervisor.t: d",
        "<6>INFO    cookie_supervisor.t: i source=main",
        "<4>WARNING cookie_supervisor.t: w",
        "<3>ERROR   cookie_supervisor.t: e",
        "<2>CRITICAL cookie_supervisor.t: c",
    ]
    traceback = lines[5:]
    assert traceback[0] == "<3>ERROR   cookie_supervisor.t: x"
    assert len(traceback) > 2 and all(line.startswith("<3>") for line in traceback)
    assert traceback[-1] == "<3>ValueError: boom"


def test_json_on_the_journal_stream_is_prefixed_json(tmp_path: Path) -> None:
    lines = emit(tmp_path, "json", "match")
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>", "<3>"]
    assert json.loads(lines[1][3:])["source"] == "main"


def test_another_stream_or_none_keeps_timestamps(tmp_path: Path) -> None:
    """JOURNAL_STREAM inherited by a process whose stderr was redirected must not count."""
    for announced in (None, "1:2", "garbage"):
        lines = emit(tmp_path, "text", announced)
        assert not lines[0].startswith("<"), announced
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} DEBUG ", lines[0]), lines[0]


# --- every library's logger: quiet below WARNING, and through the one redaction -------------

LIBRARIES = """
import logging, sys
from cookie_supervisor import logs
from cookie_supervisor.classify import register_secret
register_secret("https://hooks.example.org/services/T0/B0/PaThSeCrEt")
logs.setup(sys.argv[1], "debug")
for name in ("httpx", "httpcore", "uvicorn.error", "apscheduler", "watchdog", "redis", "asyncio",
             "some.new.library"):
    lib = logging.getLogger(name)
    lib.setLevel(logging.DEBUG)  # a library may lower its own level: it still stays quiet
    lib.info("HTTP Request: POST https://hooks.example.org/services/T0/B0/PaThSeCrEt")
    lib.warning("%s: Cookie: SID=%s", name, "SeCrEtVaLuE")
try:
    raise RuntimeError("https://u:PaSsWoRd@hooks.example.org/x?token=ToKeN123 failed")
except RuntimeError:
    logging.getLogger("httpx").exception("send failed")
logging.getLogger("cookie_supervisor.t").debug("own %s", "LOGIN_INFO=SeCrEtVaLuE", extra={
    "detail": ".youtube.com\\tTRUE\\t/\\tTRUE\\t0\\tSID\\tSeCrEtVaLuE"})
"""


def test_libraries_are_quiet_below_warning_and_redacted(tmp_path: Path) -> None:
    for fmt in ("text", "json"):
        out = subprocess.run(
            [sys.executable, "-c", LIBRARIES, fmt],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stderr
        assert "HTTP Request" not in out  # INFO of a library
        for name in ("httpx", "redis", "asyncio", "some.new.library"):
            assert f"{name}: Cookie: [redacted]" in out, out  # its WARNING, scrubbed
        assert "own LOGIN_INFO=[redacted]" in out  # the daemon's own DEBUG stays
        assert "send failed" in out and "RuntimeError" in out  # the traceback, scrubbed
        for secret in ("SeCrEtVaLuE", "PaThSeCrEt", "PaSsWoRd", "ToKeN123"):
            assert secret not in out, (fmt, out)
