"""Refreshes with brakes, end to end: the account check, the diagnosis, evidence before a job, and a
burst of backend failures read from a log file. Real daemon, real Redis; YouTube's answers come
from the stand-in that prints yt-dlp's exact messages (tests/fakes/fake_ytdlp.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.support import Daemon, cookie_jar, daemon_env, wait_for, write_atomic, youtube_daemon

BASE = "bull:cookie-refresh:"


def job_reasons(r: redis.Redis) -> list[str]:
    keys = [k for k in r.keys(BASE + "*") if k.decode().removeprefix(BASE).isdigit()]
    return [json.loads(r.hget(k, "data") or b"{}")["reason"] for k in keys]


@pytest.mark.parametrize(
    ("fake", "verdict", "diagnosis", "job"),
    [
        # the account is honoured and the same wall stands without cookies: the address
        (
            {"FAKE_WITH_COOKIES": "bot", "FAKE_WITHOUT_COOKIES": "bot", "FAKE_ACCOUNT": "ll_ok"},
            "ip_flagged",
            "ip_flagged",
            None,
        ),
        # the wall stops the account check too, and a guest alike: the address, found by one
        # yt-dlp run without cookies instead of a login (N27)
        (
            {"FAKE_WITH_COOKIES": "bot", "FAKE_WITHOUT_COOKIES": "bot", "FAKE_ACCOUNT": "bot"},
            "ip_flagged",
            "ip_flagged",
            None,
        ),
        # ... YouTube's own words for it, as a guest: the address too
        (
            {
                "FAKE_WITH_COOKIES": "bot",
                "FAKE_WITHOUT_COOKIES": "ip_blocked",
                "FAKE_ACCOUNT": "bot",
            },
            "ip_flagged",
            "ip_flagged",
            None,
        ),
        # the wall on the account check, but a guest gets through: a session YouTube does not
        # honour (nothing says it does), the cookies' failure: a job (N18)
        (
            {"FAKE_WITH_COOKIES": "bot", "FAKE_WITHOUT_COOKIES": "ok", "FAKE_ACCOUNT": "bot"},
            "bot_detection",
            None,
            "bot_detection",
        ),
        # works without cookies, not with them: the account is restricted
        (
            {
                "FAKE_WITH_COOKIES": "media_403",
                "FAKE_WITHOUT_COOKIES": "ok",
                "FAKE_ACCOUNT": "ll_ok",
            },
            "account_restricted",
            "account_restricted",
            None,
        ),
        # YouTube no longer honours the session: that is the cookies, a job
        (
            {"FAKE_WITH_COOKIES": "bot", "FAKE_ACCOUNT": "ll_rotated"},
            "cookies_rotated",
            None,
            "cookies_rotated",
        ),
    ],
)
def test_account_check_and_diagnosis_decide_whether_a_refresh_can_help(
    redis_url: str,
    tmp_path: Path,
    fake: dict[str, str],
    verdict: str,
    diagnosis: str | None,
    job: str | None,
) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    d = youtube_daemon(redis_url, jar, **fake)
    r = redis.Redis.from_url(redis_url)
    try:
        answer = d.post("/api/cookies/validate").json()
        assert answer["reason"] == verdict and answer["diagnosis"] == diagnosis
        walled = fake["FAKE_ACCOUNT"] == "bot"
        assert answer["account_check"] is (verdict != "cookies_rotated" and not walled)
        if job is None:
            assert (
                d.metric("cookie_supervisor_diagnosis", source="default", diagnosis=diagnosis or "")
                == 1
            )
            assert job_reasons(r) == []
        else:
            wait_for(lambda: job_reasons(r) == [job], what=f"{job} job")
    finally:
        d.stop()


def test_ambiguous_report_is_validated_before_any_job(redis_url: str, tmp_path: Path) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    d = youtube_daemon(redis_url, jar, FAKE_ACCOUNT="ll_ok")  # the cookies are fine
    r = redis.Redis.from_url(redis_url)
    try:
        runs = "cookie_supervisor_validation_runs_total"
        before = d.metric(runs, source="default", result="ok") or 0
        for _ in range(20):
            body = {
                "reason": "forbidden",
                "error": "ERROR: unable to download video data: HTTP Error 403: Forbidden",
            }
            assert d.post("/api/cookies/trigger-refresh", json=body).json()["state"] == "validating"
        wait_for(lambda: (d.metric(runs, source="default", result="ok") or 0) > before)
        assert job_reasons(r) == []
        reports = d.metric(
            "cookie_supervisor_failure_reports_total",
            source="default",
            reason="forbidden",
            outcome="validating",
        )
        assert reports == 20
    finally:
        d.stop()


def test_a_burst_of_backend_failures_in_its_log_costs_one_refresh(
    redis_url: str, tmp_path: Path
) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    backend_log = tmp_path / "backend.log"
    backend_log.write_text("starting\n")
    cfg = tmp_path / "sources.toml"
    cfg.write_text(
        "[[sources]]\n"
        'name = "default"\n'
        f'cookies_file = "{jar}"\n'
        "validation_urls = []\n"
        f'log_files = ["{backend_log}"]\n'
    )
    env = daemon_env(redis_url, jar, COOKIE_SUPERVISOR_STATE_DIR=str(tmp_path / "state"))
    env.pop("YT_DLP_COOKIES_FILE")
    d = Daemon(env=env, args=["--config", str(cfg)]).start()
    r = redis.Redis.from_url(redis_url)
    bot = "ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm you’re not a bot. Use --cookies"
    try:
        wait_for(
            lambda: (
                d.metric(
                    "cookie_supervisor_report_input_up", source="default", input=str(backend_log)
                )
                == 1
            ),
            what="log file followed",
        )
        lines = []
        for i in range(10_000):
            lines.append(bot if i % 100 == 0 else f"[download] {i}% of 10MiB")
        with backend_log.open("a") as fh:
            fh.write("\n".join(lines) + "\n")
        counted = lambda: sum(  # noqa: E731
            d.metric(
                "cookie_supervisor_failure_reports_total",
                source="default",
                reason="bot_detection",
                outcome=outcome,
            )
            or 0
            for outcome in ("enqueued", "coalesced")
        )
        wait_for(lambda: counted() == 100, timeout=20, what="100 reports counted")
        assert job_reasons(r) == ["bot_detection"]
        read = d.metric(
            "cookie_supervisor_report_lines_read_total", source="default", input=str(backend_log)
        )
        assert read is not None and read >= 10_000
        assert d.log().count("refresh enqueued") == 1  # one line in the journal, not 100
    finally:
        d.stop()
