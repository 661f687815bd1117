"""Secrets against the real daemon: nothing a library logs, yt-dlp prints or a report carries leaks.

Issue 18: G1 (httpx logged every webhook URL at INFO, credentials included), G2 (yt-dlp's
"skipping cookie file entry … '<the whole jar line>'" reached cookies-status, /sources, the
validate answer and the log), G12 (`NAME: value` and tab-separated rows in a report reached job
data), G14 (a report with a lone surrogate was refused 422).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis

from tests.support import (
    SECRET_MARK,
    Daemon,
    MediaServer,
    Receiver,
    cookie_jar,
    daemon_env,
    wait_for,
    write_atomic,
)

HOOK_USER, HOOK_PASSWORD = "hookuser", f"pw-{SECRET_MARK}-1"
PATH_TOKEN, QUERY_TOKEN = f"B000/{SECRET_MARK}Path", f"{SECRET_MARK}Query"


def test_webhook_url_is_never_logged_by_any_library(
    redis_url: str, jar: Path, receivers: Any
) -> None:
    # G1: a failing receiver behind a URL with every kind of credential in it
    rx: Receiver = receivers(script=[(503, {})] * 200)
    url = (
        f"http://{HOOK_USER}:{HOOK_PASSWORD}@127.0.0.1:{rx.port}"
        f"/services/T000/{PATH_TOKEN}?token={QUERY_TOKEN}"
    )
    d = Daemon(
        env=daemon_env(
            redis_url,
            jar,
            COOKIE_SUPERVISOR_QUEUE="secrets-g1",
            COOKIE_SUPERVISOR_WEBHOOK_URL=url,
            COOKIE_SUPERVISOR_LOG_LEVEL="debug",
        )
    ).start()
    try:
        assert d.post("/api/cookies/trigger-refresh", json={"reason": "manual"}).status_code == 200
        wait_for(lambda: len(rx.requests) >= 3, timeout=20, what="three tries")
        assert rx.requests[0].headers.get("Authorization", "").startswith("Basic ")  # used
        log = d.log()
    finally:
        d.stop()
    for secret in (HOOK_PASSWORD, PATH_TOKEN, QUERY_TOKEN, url):
        assert secret not in log, secret
    assert "webhook" in log and "503" in log  # the tries are logged, without the URL
    libraries = [line for line in log.splitlines() if " httpx:" in line or " httpcore" in line]
    assert libraries == []  # httpx's INFO "HTTP Request: POST <url>" is below its floor


def test_a_malformed_jar_line_never_reaches_an_answer_or_the_log(
    redis_url: str, tmp_path: Path, media: MediaServer
) -> None:
    # G2: yt-dlp prints the whole malformed line; a failure of kind `other` keeps its warnings
    jar = tmp_path / "cookies.txt"
    bad = f".youtube.com\tTRUE\t/\tTRUE\tLOGIN_INFO\tAFmm-{SECRET_MARK}-broken"
    write_atomic(jar, cookie_jar(extra_lines=(bad,)))
    d = Daemon(
        env=daemon_env(
            redis_url,
            jar,
            COOKIE_SUPERVISOR_QUEUE="secrets-g2",
            COOKIE_SUPERVISOR_VALIDATION_URLS=media.url("/error.mp4"),
            COOKIE_SUPERVISOR_VALIDATE_EVERY="0",
        )
    ).start()
    try:
        answer = d.post("/api/cookies/validate")
        outputs = [
            answer.text,
            d.get("/api/cookies/cookies-status").text,
            d.get("/api/cookies/sources").text,
            d.log(),
        ]
    finally:
        d.stop()
    result = answer.json()
    assert result["ok"] is False and result["reason"] == "other", result
    # yt-dlp did print the warning (so the check below is not vacuous), without the line
    assert "skipping cookie file entry due to invalid length 6" in result["message"], result
    for text in outputs:
        assert SECRET_MARK not in text


def test_report_texts_carry_no_cookie_value_into_job_data(redis_url: str, jar: Path) -> None:
    # G12: three shapes the old redaction let through, in one report
    error = "\n".join(
        [
            "ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm you're not a bot.",
            f"__Secure-1PSIDTS: {SECRET_MARK}-psidts",
            f".youtube.com\tTRUE\t/\tTRUE\t1799999999\tSID\t{SECRET_MARK}-row",
            f"LOGIN_INFO\t{SECRET_MARK}-login",
        ]
    )
    queue = "secrets-g12"
    d = Daemon(env=daemon_env(redis_url, jar, COOKIE_SUPERVISOR_QUEUE=queue)).start()
    try:
        r = d.post(
            "/api/cookies/trigger-refresh", json={"reason": "download_failed", "error": error}
        )
        assert r.status_code == 200 and r.json()["state"] == "enqueued", r.text
        raw = redis.Redis.from_url(redis_url).hget(f"bull:{queue}:{r.json()['job_id']}", "data")
        log = d.log()
    finally:
        d.stop()
    data = json.loads(raw or b"{}")
    assert "not a bot" in data["error"] and "LOGIN_INFO" in data["error"], data
    assert SECRET_MARK not in json.dumps(data) and SECRET_MARK not in log


def test_a_report_with_a_lone_surrogate_is_taken(redis_url: str, jar: Path) -> None:
    # G14: JSON may escape a lone surrogate; the report is evidence all the same
    d = Daemon(env=daemon_env(redis_url, jar, COOKIE_SUPERVISOR_QUEUE="secrets-g14")).start()
    body = b'{"reason": "download_failed", "error": "Sign in to confirm \\ud800 not a bot"}'
    try:
        r = d.post(
            "/api/cookies/trigger-refresh",
            content=body,
            headers={"content-type": "application/json"},
        )
        reports = d.metric(
            "cookie_supervisor_failure_reports_total",
            source="default",
            reason="bot_detection",
            outcome="enqueued",
        )
    finally:
        d.stop()
    assert r.status_code == 200 and r.json()["state"] == "enqueued", r.text
    assert reports == 1
