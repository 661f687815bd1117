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
