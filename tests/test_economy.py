"""The refresh economy, black-box: real daemon, real redis-server, a real bull v4 worker
(tests/interop/extractor.js) and yt-dlp's exact texts (tests/fakes/fake_ytdlp.py).

Each test replays one way the brakes used to fail (issue 16: D1, D2, D7, D10) and counts the jobs
— the logins — the daemon asks for in a window. The bound is promise P1 of docs/core.md: while
fresh cookies cannot help, a window W after the first unsuccessful refresh holds at most
1 + ⌈log2(1 + W/base)⌉ + W/cap automatic jobs; while a diagnosis names the address, none.
Each test prints its figure (`pytest -s`): jobs in the window.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import (
    ROOT,
    Daemon,
    NodeProcess,
    cookie_jar,
    daemon_env,
    wait_for,
    write_atomic,
)

BASE = "bull:cookie-refresh:"
FAKE = ROOT / "tests" / "fakes" / "fake_ytdlp.py"
WATCH = "https://www.youtube.com/watch?v=jNQXAC9IVRw"
MARK = "SeCrEtVaLuE"


def p1_bound(window: float, base: float, cap: float) -> int:
    return 1 + math.ceil(math.log2(1 + window / base)) + int(window // cap)


def jobs(r: redis.Redis) -> list[dict[str, object]]:
    """Every refresh job in the queue (ours have numeric ids), oldest first."""
    found = []
    for key in r.keys(BASE + "*"):
        job_id = key.decode().removeprefix(BASE)
        if job_id.isdigit():
            row = r.hmget(key, ["data", "timestamp"])
            data = json.loads(row[0] or b"{}")
            found.append({"id": int(job_id), "created": int(row[1] or 0) / 1000, **data})
    return sorted(found, key=lambda j: int(j["id"]))  # type: ignore[call-overload]


def jobs_within(r: redis.Redis, window: float) -> int:
    """Jobs created within `window` seconds of the first one, once that window has passed."""
    first = wait_for(lambda: jobs(r), timeout=30, what="a first refresh job")[0]
    end = float(first["created"]) + window  # type: ignore[arg-type]
    time.sleep(max(0.0, end - time.time()))  # the window is the measurement, not an event
    return sum(float(j["created"]) <= end for j in jobs(r))  # type: ignore[arg-type]


def config(tmp: Path, jar: Path, **settings: str) -> Path:
    lines = ["[[sources]]", 'name = "default"', f'cookies_file = "{jar}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path = tmp / f"sources-{len(list(tmp.glob('sources-*')))}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_daemon(
    redis_url: str, tmp: Path, jar: Path, settings: dict[str, str], **env: str
) -> Daemon:
    cfg = config(tmp, jar, **settings)
    base = daemon_env(
        redis_url,
        jar,
        COOKIE_SUPERVISOR_YT_DLP_COMMAND=f"{sys.executable},{FAKE},ok",
        COOKIE_SUPERVISOR_JS_RUNTIME="node",
        COOKIE_SUPERVISOR_STATE_DIR=str(tmp / f"state-{cfg.stem}"),
        **env,
    )
    for inherited in ("YT_DLP_COOKIES_FILE", "COOKIE_SUPERVISOR_VALIDATION_URLS"):
        base.pop(inherited)
    return Daemon(env=base, args=["--config", str(cfg)]).start()


@pytest.fixture
def worker_factory(redis_url: str) -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for w in started:
        w.stop()


def worker(started: list[NodeProcess], redis_url: str, **env: str) -> NodeProcess:
    w = NodeProcess("extractor.js", {"REDIS_URL": redis_url, **env})
    started.append(w)
    w.wait("ready")
    return w


# --- D1: refreshes that upload new sessions which still fail ------------------------------------


def test_d1_new_sessions_that_still_fail_do_not_reset_the_backoff(
    redis_url: str, tmp_path: Path, worker_factory: list[NodeProcess]
) -> None:
    """Every job uploads a new login session, and YouTube honours none of them (the account
    check says the cookies were rotated). Before: each upload reset the backoff, 14 jobs in 52 s
    at `refresh_backoff = 3s`, `consecutive_failures` never above 1."""
    jar, fresh = tmp_path / "cookies.txt", tmp_path / "fresh.txt"
    write_atomic(jar, cookie_jar())
    fresh.write_text(cookie_jar(mark=MARK + "-new"))
    worker(worker_factory, redis_url, JAR_FILE=str(fresh), JAR_MARK=MARK)
    base, window = 2.0, 24.0
    settings = {
        "validation_urls": [WATCH],
        "validate_every": "0",
        "refresh_cooldown": "0",
        "refresh_backoff": f"{base:g}s",
        "refresh_backoff_max": "1h",
        "upload_timeout": "10s",
    }
    d = start_daemon(
        redis_url,
        tmp_path,
        jar,
        settings,  # type: ignore[arg-type]
        FAKE_WITH_COOKIES="bot",
        FAKE_ACCOUNT="ll_rotated",
    )
    r = redis.Redis.from_url(redis_url)
    try:
        n = jobs_within(r, window)
        failures = d.status()["refresh"]["consecutive_failures"]
        print(
            f"\nD1: {n} jobs in {window:g} s (bound {p1_bound(window, base, 3600)}), "
            f"consecutive_failures={failures}"
        )
        assert n <= p1_bound(window, base, 3600)
        assert failures >= 2  # the count grows: each still-failing session is one more
    finally:
        d.stop()


# --- D2: jobs behind a flagged address ---------------------------------------------------------

BOT_REPORT = (
    "ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm you’re not a bot. Use --cookies-from-browser"
    " or --cookies for the authentication."
)
YOUTUBE = {"validation_urls": [WATCH], "refresh_cooldown": "0", "upload_timeout": "5s"}


def diagnosis(d: Daemon) -> str | None:
    return d.status()["diagnosis"]  # type: ignore[no-any-return]


def test_d2a_the_bot_wall_on_the_account_check_is_the_address_without_a_login(
    redis_url: str, tmp_path: Path, worker_factory: list[NodeProcess]
) -> None:
    """The bot wall blocks the media probe, the account check and the cookie-less probe alike.
    Before: every periodic validation forgot ip_flagged and asked again (10 jobs in 40 s); then
    the first refresh paid to find out (it was still_failing, and only its diagnosis run probed
    without cookies). Now the wall on the account check runs the cookie-less probe at once (N27):
    ip_flagged from the first validation, no job in the window."""
    jar, fresh = tmp_path / "cookies.txt", tmp_path / "fresh.txt"
    write_atomic(jar, cookie_jar())
    fresh.write_text(cookie_jar(mark=MARK + "-new"))
    worker(worker_factory, redis_url, JAR_FILE=str(fresh), JAR_MARK=MARK)
    settings = {**YOUTUBE, "validate_every": "1s", "refresh_backoff": "1s"}
    d = start_daemon(
        redis_url, tmp_path, jar, settings, FAKE_WITH_COOKIES="bot", FAKE_WITHOUT_COOKIES="bot",
        FAKE_ACCOUNT="bot",
    )  # fmt: skip
    r = redis.Redis.from_url(redis_url)
    runs = "cookie_supervisor_validation_runs_total"
    try:
        wait_for(lambda: diagnosis(d) == "ip_flagged", timeout=30, what="ip_flagged")
        # periodic validations meet the wall on every run and keep it (the window of the test)
        wait_for(
            lambda: (d.metric(runs, source="default", result="ip_flagged") or 0) >= 8,
            timeout=60,
            what="eight validations behind the wall",
        )
        n = len(jobs(r))
        walled = d.metric(runs, source="default", result="bot_detection") or 0
        print(f"\nD2a: {n} jobs after 8 validations behind the wall (diagnosis {diagnosis(d)})")
        assert diagnosis(d) == "ip_flagged"
        assert walled == 0  # never taken for the cookies' failure (no cookie alert)
        assert n == 0  # no login: the cookie-less probe told the address
    finally:
        d.stop()


def test_d2b_backend_bot_reports_honour_the_diagnosis(
    redis_url: str, tmp_path: Path, worker_factory: list[NodeProcess]
) -> None:
    """ip_flagged stands (the account check passes, the same wall stands without cookies); the
    backend keeps reporting the bot check. Before: each report enqueued, 13 jobs, never `backoff`."""
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    worker(worker_factory, redis_url)
    settings = {**YOUTUBE, "validate_every": "0"}
    d = start_daemon(
        redis_url, tmp_path, jar, settings, FAKE_WITH_COOKIES="bot", FAKE_WITHOUT_COOKIES="bot",
        FAKE_ACCOUNT="ll_ok",
    )  # fmt: skip
    r = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: diagnosis(d) == "ip_flagged", timeout=30, what="ip_flagged")
        states = []
        for _ in range(13):
            wait_for(lambda: d.status()["refresh"]["pending_job"] is None, what="no pending job")
            body = {"reason": "bot_detection", "error": BOT_REPORT}
            states.append(d.post("/api/cookies/trigger-refresh", json=body).json()["state"])
        n = len(jobs(r))
        print(f"\nD2b: {n} jobs for 13 bot-check reports, answers {sorted(set(states))}")
        assert n == 0 and set(states) == {"ignored"}
    finally:
        d.stop()


def test_d2c_a_daemon_without_an_account_check_honours_a_peers_diagnosis(
    redis_url: str, tmp_path: Path, worker_factory: list[NodeProcess]
) -> None:
    """Daemon A (account check on) diagnoses ip_flagged; daemon B on the same Redis validates the
    same jar without an account check, so it could never tell the address from the cookies."""
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    worker(worker_factory, redis_url)
    walls = {"FAKE_WITH_COOKIES": "bot", "FAKE_WITHOUT_COOKIES": "bot", "FAKE_ACCOUNT": "ll_ok"}
    a = start_daemon(redis_url, tmp_path, jar, {**YOUTUBE, "validate_every": "0"}, **walls)
    b: Daemon | None = None
    r = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: diagnosis(a) == "ip_flagged", timeout=30, what="A: ip_flagged")
        settings = {**YOUTUBE, "validate_every": "1s", "account_check_url": ""}
        b = start_daemon(redis_url, tmp_path, jar, settings, **walls)
        runs = "cookie_supervisor_validation_runs_total"
        wait_for(
            lambda: sum(
                b.metric(runs, source="default", result=x) or 0  # type: ignore[union-attr]
                for x in ("ip_flagged", "bot_detection")
            ) >= 5,
            timeout=30,
            what="B: five validations",
        )  # fmt: skip
        n = len(jobs(r))
        print(f"\nD2c: {n} jobs after B's 5 validations behind A's diagnosis ({diagnosis(b)})")
        assert n == 0 and diagnosis(b) == "ip_flagged"
    finally:
        a.stop()
        if b is not None:
            b.stop()


# --- D7: a second extractor host whose clock is 5 minutes behind --------------------------------


def test_d7_a_worker_whose_clock_is_behind_is_booked_and_cooled_down(
    redis_url: str, tmp_path: Path, worker_factory: list[NodeProcess]
) -> None:
    """Two extractor hosts take the jobs, one 5 minutes behind; every job uploads a new session,
    and a rotation falls due a second after each: only the cooldown paces the jobs. Before: the
    finished-jobs cursor skipped the late-stamped jobs and the cooldown ran from their
    finishedOn, so jobs went back to back (17 jobs in 10 s, 1 booked)."""
    jar, fresh = tmp_path / "cookies.txt", tmp_path / "fresh.txt"
    write_atomic(jar, cookie_jar())
    fresh.write_text(cookie_jar(mark=MARK + "-new"))
    worker(worker_factory, redis_url, JAR_FILE=str(fresh), JAR_MARK=MARK)
    worker(worker_factory, redis_url, JAR_FILE=str(fresh), JAR_MARK=MARK, CLOCK_SKEW_MS="-300000")
    cooldown, window = 2.0, 8.0  # the bound 1 + W/cooldown = 5 jobs; before: 17 jobs in 10 s
    settings = {
        "validation_urls": [],
        "validate_every": "0",
        "refresh_cooldown": f"{cooldown:g}s",
        "rotate_after": "1s",
        "renew_before": "0",
        "upload_timeout": "5s",
    }
    d = start_daemon(redis_url, tmp_path, jar, settings)  # type: ignore[arg-type]
    r = redis.Redis.from_url(redis_url)
    try:
        n = jobs_within(r, window)
        finished = lambda: int(r.zcard(BASE + "completed"))  # noqa: E731
        booked = lambda: d.metric(  # noqa: E731
            "cookie_supervisor_refresh_jobs_finished_total", source="default", outcome="completed"
        )
        print(f"\nD7: {n} jobs in {window:g} s; {finished()} finished, {booked()} booked")
        assert n <= 1 + window / cooldown
        wait_for(lambda: booked() == finished(), timeout=10, what="every finished job booked")
    finally:
        d.stop()


# --- D10: an scp-style upload written in place ----------------------------------------------------


def test_d10_an_upload_written_in_place_in_chunks_asks_nothing(
    redis_url: str, tmp_path: Path, worker_factory: list[NodeProcess]
) -> None:
    """scp truncates the jar, then writes it in chunks, here with 0.7 s stalls: the daemon sees an
    empty file, then a jar without login cookies (they come last), then the new session. Before:
    the empty file made the next report's `shrank` comparison void, so the half-written jar was
    `logged_out` at once and cost a login."""
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    worker(worker_factory, redis_url)
    settings = {"validation_urls": [], "validate_every": "0", "refresh_cooldown": "0"}
    d = start_daemon(redis_url, tmp_path, jar, settings)  # type: ignore[arg-type]
    r = redis.Redis.from_url(redis_url)
    try:
        before = d.status()["session_changed_at"]
        text = cookie_jar(mark=MARK + "-new").encode()
        with jar.open("r+b") as fh:  # in place, as scp does: same inode, truncated first
            fh.truncate(0)
            fh.flush()
            os.fsync(fh.fileno())
            for i in range(0, len(text), 150):
                time.sleep(0.7)  # the stall is the scenario, not a wait for an event
                fh.write(text[i : i + 150])
                fh.flush()
                os.fsync(fh.fileno())
        wait_for(
            lambda: d.status()["logged_in"] and d.status()["session_changed_at"] != before,
            timeout=10,
            what="the new session seen",
        )
        n = len(jobs(r))
        print(f"\nD10: {n} jobs for one in-place upload in {len(text) // 150 + 1} chunks")
        assert n == 0
    finally:
        d.stop()
