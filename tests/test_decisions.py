"""The supervisor's decisions, end to end: real daemon, real yt-dlp, real Redis, real bull worker.

The validation target is a local HTTP server that serves a small media file only to a request
carrying the cookie `session=fresh` — the part of YouTube that decides whether cookies work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import (
    Daemon,
    MediaServer,
    NodeProcess,
    cookie_jar,
    daemon_env,
    free_port,
    source_config,
    wait_for,
    write_atomic,
)

BASE = "bull:cookie-refresh:"


def session_line(value: str) -> str:
    return f"127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{value}"


@pytest.fixture
def gate() -> Iterator[MediaServer]:
    """Serves the media only to the session the fresh cookies carry: what YouTube decides."""
    server = MediaServer(require_cookie="session=fresh")
    yield server
    server.shutdown()


def env(redis_url: str, jar: Path, url: str, **extra: str) -> dict[str, str]:
    """A test daemon validating against `url` on demand only (no periodic runs)."""
    return daemon_env(
        redis_url,
        jar,
        COOKIE_SUPERVISOR_VALIDATION_URLS=url,
        COOKIE_SUPERVISOR_VALIDATE_EVERY="0",
        COOKIE_SUPERVISOR_PROBE_TIMEOUT="30s",
        **extra,
    )


def job_reasons(r: redis.Redis) -> list[str]:
    keys = [k for k in r.keys(BASE + "*") if k.decode().removeprefix(BASE).isdigit()]
    return [json.loads(r.hget(k, "data") or b"{}")["reason"] for k in keys]


def test_failing_validation_refresh_upload_verified(
    redis_url: str, tmp_path: Path, gate: MediaServer
) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar(extra_lines=(session_line("stale"),)))
    fresh = tmp_path / "fresh.txt"
    fresh.write_text(cookie_jar(mark="NewSession", extra_lines=(session_line("fresh"),)))
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "JAR_FILE": str(fresh)})
    worker.wait("ready")
    d = Daemon(env=env(redis_url, jar, gate.url())).start()
    try:
        # start-up validation: the server refuses the stale session → forbidden → a refresh job
        wait_for(
            lambda: (
                d.metric(
                    "cookie_supervisor_validation_runs_total", source="default", result="forbidden"
                )
                == 1
            ),
            timeout=30,
        )
        first = d.status()["last_validation"]
        assert first["ok"] is False and first["reason"] == "forbidden" and first["fixable"] is True
        [job] = worker.wait("processing")
        assert job["data"]["reason"] == "forbidden" and job["data"]["origin"] == "validation"
        worker.wait("completed")
        # the upload carries a new session → revalidated → the server serves it → verified
        d.wait_one_verdict("verified", timeout=30)
        assert d.metric("cookie_supervisor_validation_success", source="default") == 1
        assert d.metric(
            "cookie_supervisor_validation_last_success_timestamp_seconds", source="default"
        )
        assert (
            d.metric(
                "cookie_supervisor_refresh_jobs_finished_total",
                source="default",
                outcome="completed",
            )
            == 1
        )
        assert d.status()["last_validation"]["ok"] is True
        assert any("session=fresh" in h.get("Cookie", "") for _, h in gate.requests)
        # validation never touched the production file: it is byte for byte the upload
        assert jar.read_bytes() == fresh.read_bytes()
    finally:
        d.stop()
        worker.stop()


def test_validation_never_touches_the_production_file(
    redis_url: str, tmp_path: Path, gate: MediaServer
) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar(extra_lines=(session_line("fresh"),)))
    before = (jar.read_bytes(), jar.stat().st_mtime_ns)
    d = Daemon(env=env(redis_url, jar, gate.url())).start()
    try:
        for _ in range(3):
            r = d.post("/api/cookies/validate")
            assert r.status_code == 200 and r.json()["ok"] is True, r.text
        assert (jar.read_bytes(), jar.stat().st_mtime_ns) == before
    finally:
        d.stop()


def test_network_error_records_but_never_enqueues(redis_url: str, tmp_path: Path) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    closed = f"http://127.0.0.1:{free_port()}/video.mp4"
    d = Daemon(env=env(redis_url, jar, closed)).start()
    try:
        result = d.post("/api/cookies/validate").json()
        assert result["ok"] is False and result["reason"] == "network_error"
        assert result["fixable"] is False
        assert d.metric("cookie_supervisor_validation_success", source="default") == 0
        assert job_reasons(redis.Redis.from_url(redis_url)) == []
    finally:
        d.stop()


def test_file_evidence(redis_url: str, tmp_path: Path) -> None:
    """Logged out at once; missing only past the grace; an upload's delete-and-rename is fine."""
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    quick = env(
        redis_url,
        jar,
        "none",
        COOKIE_SUPERVISOR_QUEUE_POLL_INTERVAL="0.2",
    )
    quick.pop("YT_DLP_COOKIES_FILE")
    # The logged-out jar is smaller than the logged-in one, so it is confirmed first: after
    # logged_out_confirm (10 s by default, which this test would only sit through).
    confirm = source_config(tmp_path / "confirm.toml", jar, logged_out_confirm="0.5s")
    d = Daemon(env=quick, args=["--config", str(confirm)]).start()
    r = redis.Redis.from_url(redis_url)
    try:
        write_atomic(jar, cookie_jar(login=False))  # YouTube cleared LOGIN_INFO, yt-dlp saved it
        wait_for(lambda: job_reasons(r) == ["logged_out"], timeout=15, what="logged_out job")
        jar.unlink()
        write_atomic(jar, cookie_jar())  # delete-and-rename upload: no missing_cookies
        wait_for(lambda: d.status()["logged_in"] is True)
        r.flushall()  # the job vanishes; its cause is gone, so nothing is asked again
        lost = 'cookie_supervisor_pending_jobs_lost_total{source="default"} 1.0'
        wait_for(lambda: lost in d.metrics(), what="the vanished job noticed")
        assert job_reasons(r) == []
    finally:
        d.stop()
    fast = env(
        redis_url,
        jar,
        "none",
        COOKIE_SUPERVISOR_QUEUE_POLL_INTERVAL="0.2",
    )
    cfg = source_config(
        tmp_path / "graces.toml", jar, missing_grace="1s", corrupt_grace="1s", refresh_cooldown="0"
    )
    fast.pop("YT_DLP_COOKIES_FILE")
    d = Daemon(env=fast, args=["--config", str(cfg)]).start()
    try:
        jar.unlink()
        start = time.monotonic()
        wait_for(lambda: job_reasons(r) == ["missing_cookies"], timeout=5, what="missing_cookies")
        assert time.monotonic() - start >= 0.9  # not before the grace
        jar.write_text("this is not a cookie file\n")
        wait_for(lambda: d.status()["problem"] == "corrupt_cookies", what="corrupt file seen")
        r.flushall()  # the missing_cookies job vanishes; the corrupt file still calls for one
        wait_for(lambda: job_reasons(r) == ["corrupt_cookies"], timeout=5, what="corrupt_cookies")
    finally:
        d.stop()


def test_rotation_is_decided_once_by_two_daemons(redis_url: str, tmp_path: Path) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    cfg = source_config(tmp_path / "rotate.toml", jar, rotate_after="3s", refresh_cooldown="0")
    base = env(redis_url, jar, "none")
    base.pop("YT_DLP_COOKIES_FILE")
    daemons = [Daemon(env=base, args=["--config", str(cfg)]).start() for _ in range(2)]
    r = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: job_reasons(r) == ["scheduled_rotation"], timeout=10, what="rotation job")
        due = [
            d.metric("cookie_supervisor_rotation_due_timestamp_seconds", source="default")
            for d in daemons
        ]
        assert due[0] == pytest.approx(jar.stat().st_mtime + 3, abs=0.01)

        # both daemons reached the due date; Redis made it one job between them, and each
        # knows it is pending (one asked and was coalesced, or saw it in the queue)
        def asked(d: Daemon, outcome: str) -> float:
            value = d.metric(
                "cookie_supervisor_refresh_requests_total",
                source="default",
                reason="scheduled_rotation",
                outcome=outcome,
            )
            return value or 0.0

        pending = "cookie_supervisor_refresh_pending"
        wait_for(lambda: all(d.metric(pending, source="default") == 1 for d in daemons))
        assert sum(asked(d, "enqueued") for d in daemons) == 1
        assert job_reasons(r) == ["scheduled_rotation"]
    finally:
        for d in daemons:
            d.stop()


def test_expiring_soon_and_no_upload(redis_url: str, tmp_path: Path) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar(expires=int(time.time()) + 3600))  # expires in 1 h < renew_before
    cfg = source_config(tmp_path / "renew.toml", jar, upload_timeout="1s")
    base = env(redis_url, jar, "none")
    base.pop("YT_DLP_COOKIES_FILE")
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url})  # completes, uploads nothing
    worker.wait("ready")
    d = Daemon(env=base, args=["--config", str(cfg)]).start()
    try:
        [job] = worker.wait("processing")
        assert job["data"]["reason"] == "expiring_soon" and job["data"]["origin"] == "rotation"
        d.wait_one_verdict("no_upload", timeout=10)
        assert (
            d.metric(
                "cookie_supervisor_refresh_verifications_total", source="default", result="verified"
            )
            == 0
        )
    finally:
        d.stop()
        worker.stop()
