"""A bad day, through a real daemon: Redis killed during a trigger flood, Redis back empty with a job
pending, the daemon killed while it owes a refresh, and uploads that are slow, torn or swapped.

Bounded in count and time; every wait is on a condition.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import httpx
import redis

from tests.support import (
    Daemon,
    RedisServer,
    cookie_jar,
    daemon_env,
    source_config,
    wait_for,
    write_atomic,
)

BASE = "bull:cookie-refresh:"
KILLS = 3


def jobs(r: redis.Redis) -> list[dict[str, object]]:
    keys = [k for k in r.keys(BASE + "*") if k.decode().removeprefix(BASE).isdigit()]
    return [json.loads(r.hget(k, "data") or b"{}") for k in keys]


def pending_ids(r: redis.Redis) -> list[str]:
    ids = r.lrange(BASE + "wait", 0, -1) + r.lrange(BASE + "active", 0, -1)
    return [i.decode() for i in ids]


def test_redis_killed_during_a_trigger_flood_leaves_one_job(
    own_redis: RedisServer, jar: Path
) -> None:
    d = Daemon(env=daemon_env(own_redis.url, jar, COOKIE_SUPERVISOR_REDIS_BACKOFF_MAX="0.2s"))
    d.start()
    stop = threading.Event()
    answers: dict[str, int] = {}
    errors: list[BaseException] = []

    def flood() -> None:
        with httpx.Client(base_url=d.base_url, timeout=10) as client:
            while not stop.is_set():
                try:
                    state = client.post(
                        "/api/cookies/trigger-refresh", json={"reason": "manual"}
                    ).json()["state"]
                    answers[state] = answers.get(state, 0) + 1
                except BaseException as exc:
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(KILLS):
            wait_for(lambda: answers.get("enqueued", 0) + answers.get("coalesced", 0) > 0)
            own_redis.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            own_redis.proc.wait()  # type: ignore[union-attr]
            # the outage lasts until the daemon has noticed it under the flood
            wait_for(lambda: d.metric("cookie_supervisor_redis_up") == 0, what="outage seen")
            own_redis.start()  # empty: no persistence
        stop.set()
        for t in threads:
            t.join(10)
        assert errors == []
        assert set(answers) <= {"enqueued", "coalesced", "deferred"}, answers
        r = redis.Redis.from_url(own_redis.url)
        # the request stands (a person asked); whatever Redis lost, exactly one job is pending
        wait_for(lambda: len(pending_ids(r)) == 1, timeout=10, what="one pending job")
        # the daemon has observed that job since the flood ended: nothing more will ask
        pending = "cookie_supervisor_refresh_pending"
        wait_for(lambda: d.metric(pending, source="default") == 1, what="the job observed")
        assert len(pending_ids(r)) == 1 and len(jobs(r)) == 1
        assert d.get("/healthz").status_code == 200
        lines = d.log().count("\n")
        assert lines < 200, f"{lines} log lines for a flood of {sum(answers.values())} triggers"
    finally:
        stop.set()
        d.stop()


def test_redis_back_empty_with_a_job_pending_asks_again(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar(login=False))  # logged out: a standing need
    d = Daemon(env=daemon_env(own_redis.url, jar, COOKIE_SUPERVISOR_REDIS_BACKOFF_MAX="0.2s"))
    d.start()
    r = redis.Redis.from_url(own_redis.url)
    try:
        wait_for(lambda: [j["reason"] for j in jobs(r)] == ["logged_out"], what="first job")
        own_redis.stop()
        own_redis.start()  # failover to an empty replica, FLUSHALL, a restart without persistence
        wait_for(lambda: [j["reason"] for j in jobs(r)] == ["logged_out"], timeout=10)
        lost = d.metric("cookie_supervisor_pending_jobs_lost_total", source="default")
        assert lost == 1
        assert "pending refresh job vanished" in d.log()
    finally:
        d.stop()


def test_a_refresh_owed_when_the_daemon_is_killed_is_paid_after_restart(
    own_redis: RedisServer, jar: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    env = daemon_env(
        own_redis.url,
        jar,
        COOKIE_SUPERVISOR_STATE_DIR=str(state),
        COOKIE_SUPERVISOR_REDIS_BACKOFF_MAX="0.2s",
    )
    d = Daemon(env=env).start()
    own_redis.stop()
    answer = d.post("/api/cookies/trigger-refresh", json={"reason": "manual"}).json()
    assert answer["state"] == "deferred" and "will be enqueued" not in answer["message"]

    def owed() -> object:
        try:
            saved = json.loads((state / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return saved["sources"]["default"]["owed"]

    wait_for(lambda: owed() is not None, what="the owed refresh in the state file")
    assert oct((state / "state.json").stat().st_mode & 0o777) == "0o600"
    d.stop(signal.SIGKILL)
    own_redis.start()
    again = Daemon(env=env).start()
    r = redis.Redis.from_url(own_redis.url)
    try:
        wait_for(lambda: len(jobs(r)) == 1, what="the owed job paid")
        [job] = jobs(r)
        assert job["reason"] == "manual" and job["origin"] == "owed"
        wait_for(lambda: owed() is None, what="the state file forgets what was paid")
        assert again.status()["refresh"]["owed"] is None
    finally:
        again.stop()


def test_slow_torn_and_swapped_rewrites_ask_nothing_within_grace(
    redis_url: str, tmp_path: Path
) -> None:
    jar = tmp_path / "cookies.txt"
    good = cookie_jar()
    write_atomic(jar, good)
    cfg = source_config(
        tmp_path / "graces.toml",
        jar,
        missing_grace="30s",
        corrupt_grace="30s",
        logged_out_confirm="30s",
    )
    env = daemon_env(redis_url, jar)
    env.pop("YT_DLP_COOKIES_FILE")
    d = Daemon(env=env, args=["--config", str(cfg)]).start()
    r = redis.Redis.from_url(redis_url)
    changes = "cookie_supervisor_file_changes_total"

    def seen(n: float) -> bool:
        return (d.metric(changes, source="default") or 0) >= n

    try:
        # a slow truncate-and-write: half a jar, a pause longer than the debounce, the rest
        with jar.open("w") as fh:
            fh.write(good[: len(good) // 2])
            fh.flush()
            wait_for(lambda: seen(1), what="the half-written jar seen")
            assert d.status()["problem"] in ("logged_out", "corrupt_cookies")
            fh.write(good[len(good) // 2 :])
        wait_for(lambda: d.status()["logged_in"] is True, what="the finished jar")
        # torn: garbage, then the good jar again
        jar.write_bytes(b"\x00\x01garbage")
        wait_for(lambda: d.status()["problem"] == "corrupt_cookies")
        write_atomic(jar, good)
        wait_for(lambda: d.status()["logged_in"] is True)
        # swapped: a FIFO where the jar was, then the jar back
        jar.unlink()
        os.mkfifo(jar)
        wait_for(lambda: d.status()["problem"] == "not_a_file", what="the FIFO seen, not blocked")
        assert d.get("/healthz").status_code == 200
        jar.unlink()
        write_atomic(jar, good)
        wait_for(lambda: d.status()["logged_in"] is True and d.status()["problem"] is None)
        assert jobs(r) == []  # every upload looked broken for a moment; none outlasted its grace
        status = d.status()
        assert status["valid"] is True and status["cookies"] == 6 and status["error"] is None
    finally:
        d.stop()
