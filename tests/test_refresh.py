"""Refresh requests through the real daemon: API contract, coalescing, outages, outcomes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support import (
    SECRET_MARK,
    Daemon,
    NodeProcess,
    RedisServer,
    daemon_env,
    metric,
    wait_for,
)

QUEUE = "cookie-refresh"
BASE = f"bull:{QUEUE}:"


@pytest.fixture
def daemon(redis_url: str, jar: Path) -> Iterator[Daemon]:
    d = Daemon(env=daemon_env(redis_url, jar)).start()
    yield d
    d.stop()


def jobs(r: redis.Redis) -> list[str]:
    return sorted(
        k.decode().removeprefix(BASE)
        for k in r.keys(BASE + "*")
        if k.decode().removeprefix(BASE).isdigit()
    )


def trigger(d: Daemon, **body: object) -> httpx.Response:
    return d.post("/api/cookies/trigger-refresh", json={"reason": "bot_detection", **body})


def test_trigger_enqueues_one_job_then_coalesces(daemon: Daemon, redis_url: str, jar: Path) -> None:
    first = trigger(daemon, error="Sign in to confirm you’re not a bot", video_id="jNQXAC9IVRw")
    assert first.status_code == 200, first.text
    a = first.json()
    assert a["success"] is True and a["state"] == "enqueued" and a["triggered"] is True
    assert a["reason"] == "bot_detection" and a["source"] == "default" and a["coalesced"] is False
    assert a["classified_as"] == "bot_detection"
    second = trigger(daemon, reason="forbidden", error="ERROR: HTTP Error 403: Forbidden").json()
    assert second["state"] == "coalesced" and second["coalesced"] is True
    assert second["job_id"] == a["job_id"]
    r = redis.Redis.from_url(redis_url)
    assert jobs(r) == [a["job_id"]]
    job = r.hgetall(BASE + a["job_id"])
    assert job[b"name"] == b"__default__"
    data = json.loads(job[b"data"])
    assert data["reason"] == "bot_detection" and data["source"] == "default"
    assert data["cookies_file"] == str(jar) and data["video_id"] == "jNQXAC9IVRw"
    assert data["requested_at"].endswith("Z") and data["host"]
    assert "not a bot" in data["error"]
    opts = json.loads(job[b"opts"])
    assert opts["attempts"] == 3 and opts["backoff"] == {"type": "exponential", "delay": 60000}
    assert opts["removeOnComplete"] == 100 and opts["removeOnFail"] == 100
    q = daemon.get("/api/cookies/queue-status").json()
    assert q["success"] is True and q["queue"] == QUEUE and q["redis_up"] is True
    assert q["status"]["waiting"] == 1 and q["status"]["total"] == 1
    assert set(q["status"]) >= {
        "waiting",
        "active",
        "completed",
        "failed",
        "delayed",
        "paused",
        "total",
    }
    text = daemon.metrics()
    assert (
        metric(
            text,
            "cookie_supervisor_refresh_requests_total",
            source="default",
            reason="bot_detection",
            outcome="enqueued",
        )
        == 1
    )
    assert (
        metric(
            text,
            "cookie_supervisor_refresh_requests_total",
            source="default",
            reason="forbidden",
            outcome="coalesced",
        )
        == 1
    )
    assert (
        metric(
            text,
            "cookie_supervisor_refresh_jobs_enqueued_total",
            source="default",
            reason="bot_detection",
        )
        == 1
    )
    assert metric(text, "cookie_supervisor_refresh_pending", source="default") == 1
    wait_for(
        lambda: daemon.metric("cookie_supervisor_queue_jobs", queue=QUEUE, state="waiting") == 1
    )


def test_unfixable_errors_enqueue_nothing(daemon: Daemon, redis_url: str) -> None:
    for error, reason in [
        (
            "ERROR: [generic] video: Unable to download webpage: [Errno 111] Connection refused",
            "network_error",
        ),
        (
            "ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader",
            "unavailable",
        ),
    ]:
        a = trigger(daemon, reason="download_failed", error=error).json()
        assert a["success"] is True and a["triggered"] is False and a["state"] == "ignored"
        assert a["reason"] == "download_failed" and a["classified_as"] == reason
    assert jobs(redis.Redis.from_url(redis_url)) == []


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 422, "malformed JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (json.dumps({"source": "default"}).encode(), 422, "reason"),
        (json.dumps({"reason": "x" * 500}).encode(), 422, "reason"),
        (json.dumps({"reason": "manual", "source": "nope"}).encode(), 404, "unknown source"),
        (json.dumps({"reason": "manual", "video_id": "bad id!"}).encode(), 422, "video_id"),
        (json.dumps({"reason": "manual", "error": "e" * 20000}).encode(), 413, "larger than"),
    ],
)
def test_bad_requests_get_a_reason(daemon: Daemon, body: bytes, status: int, needle: str) -> None:
    r = daemon.post(
        "/api/cookies/trigger-refresh", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == status and needle in r.json()["error"], r.text


def test_token_and_rate_limit(redis_url: str, jar: Path) -> None:
    token = f"tok-{SECRET_MARK}"
    d = Daemon(
        env=daemon_env(
            redis_url, jar, COOKIE_SUPERVISOR_API_TOKEN=token, COOKIE_SUPERVISOR_RATE_LIMIT="3"
        )
    ).start()
    try:
        assert trigger(d).status_code == 401
        assert (
            d.post(
                "/api/cookies/trigger-refresh",
                json={"reason": "manual"},
                headers={"Authorization": "Bearer wrong"},
            ).status_code
            == 401
        )
        ok = d.post(
            "/api/cookies/trigger-refresh",
            json={"reason": "manual"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert ok.status_code == 200 and ok.json()["state"] == "enqueued"
        codes = [
            d.post(
                "/api/cookies/trigger-refresh",
                json={"reason": "manual"},
                headers={"Authorization": f"Bearer {token}"},
            ).status_code
            for _ in range(3)
        ]
        assert codes[-1] == 429, codes
        limited = d.post(
            "/api/cookies/trigger-refresh",
            json={"reason": "manual"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert d.get("/metrics").status_code == 200  # reads stay open
        assert token not in d.log() and token not in d.metrics()
    finally:
        d.stop()


async def _storm(url: str, n: int) -> list[dict[str, object]]:
    async with httpx.AsyncClient(timeout=30) as c:
        rs = await asyncio.gather(
            *[c.post(url, json={"reason": "bot_detection"}) for _ in range(n)]
        )
    return [r.json() for r in rs]


def test_concurrent_triggers_from_two_daemons_make_one_job(redis_url: str, jar: Path) -> None:
    daemons = [Daemon(env=daemon_env(redis_url, jar)).start() for _ in range(2)]
    try:

        async def both() -> list[list[dict[str, object]]]:
            return await asyncio.gather(
                *[_storm(d.base_url + "/api/cookies/trigger-refresh", 250) for d in daemons]
            )

        answers = [a for batch in asyncio.run(both()) for a in batch]
    finally:
        for d in daemons:
            d.stop()
    states = [a["state"] for a in answers]
    assert states.count("enqueued") == 1 and states.count("coalesced") == 499
    assert len({a["job_id"] for a in answers}) == 1
    assert len(jobs(redis.Redis.from_url(redis_url))) == 1


def test_redis_outage_owes_exactly_one_job(own_redis: RedisServer, jar: Path) -> None:
    d = Daemon(
        env=daemon_env(own_redis.url, jar, COOKIE_SUPERVISOR_REDIS_BACKOFF_MAX="0.5")
    ).start()
    try:
        wait_for(lambda: d.metric("cookie_supervisor_redis_up") == 1)
        own_redis.stop()
        states = [
            trigger(d, **body).json()["state"]
            for body in (
                {"reason": "auth_required", "error": "ERROR: [youtube] x: Login required"},
                {"reason": "bot_detection", "error": "Sign in to confirm you’re not a bot"},
                {"reason": "manual"},
            )
        ]
        assert states == ["deferred"] * 3
        wait_for(lambda: d.metric("cookie_supervisor_redis_up") == 0)
        owed = d.status()["refresh"]["owed"]
        # a person's request (the trigger without an error) is paid as theirs, never merged
        # into an automatic one that could be dropped with its cause (issue 16 D15, P4)
        assert owed == "manual"
        assert d.get("/api/cookies/queue-status").status_code == 503
        assert d.get("/healthz").status_code == 200
        own_redis.start()
        wait_for(lambda: d.metric("cookie_supervisor_redis_up") == 1, timeout=10)
        r = redis.Redis.from_url(own_redis.url)
        wait_for(lambda: len(jobs(r)) == 1, what="owed job enqueued")
        data = json.loads(r.hget(BASE + jobs(r)[0], "data") or b"{}")
        assert data["reason"] == "manual" and data["origin"] == "owed"
        assert d.status()["refresh"]["owed"] is None
        assert trigger(d).json()["state"] == "coalesced"
        assert len(jobs(r)) == 1
        assert (
            d.metric(
                "cookie_supervisor_refresh_requests_total",
                source="default",
                reason="bot_detection",
                outcome="deferred",
            )
            == 1
        )
    finally:
        d.stop()


def test_outcomes_are_followed_and_recovered_after_restart(
    redis_url: str, jar: Path, tmp_path: Path
) -> None:
    env = daemon_env(
        redis_url, jar, COOKIE_SUPERVISOR_JOB_BACKOFF="0.05s", COOKIE_SUPERVISOR_JOB_ATTEMPTS="2"
    )
    d = Daemon(env=env).start()
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "FAIL_ATTEMPTS": "2"})
    try:
        worker.wait("ready")
        first = trigger(d).json()
        worker.wait("failed", 2)  # two attempts, both fail → final failure
        wait_for(
            lambda: (
                d.metric(
                    "cookie_supervisor_refresh_jobs_finished_total",
                    source="default",
                    outcome="failed",
                )
                == 1
            )
        )
        attempts = [
            e["attemptsMade"] for e in worker.of("processing") if e["id"] == first["job_id"]
        ]
        assert attempts == [0, 1]
        assert d.metric("cookie_supervisor_refresh_success_ratio", source="default") == 0
        assert d.metric("cookie_supervisor_refresh_pending", source="default") == 0
        assert d.metric(
            "cookie_supervisor_refresh_last_failure_timestamp_seconds", source="default"
        )
        worker.stop()
        worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url})
        worker.wait("ready")
        second = trigger(d, force=True).json()  # the failure started a cooldown; force passes it
        assert second["state"] == "enqueued" and second["job_id"] != first["job_id"]
        # the failed job started a cooldown and a backoff; an automatic trigger meets one of them
        assert trigger(d).json()["state"] in ("coalesced", "cooldown", "backoff")
        worker.wait("completed")
        # Booked (the ratio) and no longer pending: one poll can book the job while its pending
        # read, taken a moment before it ended, still names it (the next poll clears it).
        wait_for(
            lambda: (
                d.metric("cookie_supervisor_refresh_success_ratio", source="default") == 0.5
                and d.metric("cookie_supervisor_refresh_pending", source="default") == 0
            )
        )
        cooled = trigger(d).json()
        assert cooled["state"] in ("cooldown", "backoff") and cooled["retry_after"] > 0
    finally:
        worker.stop()
        d.stop()
    again = Daemon(env=env).start()
    try:
        wait_for(
            lambda: (
                again.metric("cookie_supervisor_refresh_success_ratio", source="default") == 0.5
            ),
            what="history recovered from Redis",
        )
        assert again.metric(
            "cookie_supervisor_refresh_last_success_timestamp_seconds", source="default"
        )
        assert again.status()["refresh"]["success_ratio"] == 0.5
    finally:
        again.stop()
