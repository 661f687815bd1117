"""Structured logs: extra fields as JSON keys or key=value pairs; nothing from other libraries' extras."""

from __future__ import annotations

import json
import logging

from cookie_supervisor.logs import JsonFormatter, TextFormatter


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
