"""Webhooks shared by daemons on one Redis, with real redis-server and real loopback receivers.

Issue 18 G4 (a receiver answering 503 `Retry-After: 0` or a past date got ~256 tries a second and
512 log lines a second), issue 16 D9 (the daemon that claimed an event died: nobody delivered
it), D11 (event ids repeated after a queue reset), D17 (validation_failed/recovered once per
daemon), and issue 19 point 7 (a recovery after a restart with no failure before it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import pytest
import redis
import redis.asyncio

from cookie_supervisor.bull import BullQueue
from tests.support import (
    Daemon,
    NodeProcess,
    Receiver,
    cookie_jar,
    daemon_env,
    free_port,
    wait_for,
    write_atomic,
)
from tests.test_webhooks import Counters, Rig, event, hook, until
from tests.test_webhooks import rig_fixture as rig_fixture  # the `rig` fixture, shared


@pytest.mark.parametrize("retry_after", ["0", "past date"])
async def test_retry_after_zero_or_past_is_not_a_tight_loop(
    rig: Rig,
    receivers: Callable[..., Receiver],
    caplog: pytest.LogCaptureFixture,
    retry_after: str,
) -> None:
    value = formatdate(time.time() - 3600, usegmt=True) if retry_after == "past date" else "0"
    rx = receivers(script=[(503, {"Retry-After": value})] * 10_000)
    metrics = Counters()
    sender = rig.sender([hook(rx.url())], metrics, backoff_base=0.1)
    with caplog.at_level(logging.DEBUG, logger="cookie_supervisor.webhooks"):
        sender.start()
        sender.submit(event())
        await asyncio.sleep(2.0)  # the span watched, not an event waited for
    # the backoff is the floor: waits of at least 0.05, 0.1, 0.2, 0.4, 0.8 s fit ~6 tries in 2 s
    assert 3 <= len(rx.requests) <= 8, len(rx.requests)
    gaps = [b.at - a.at for a, b in zip(rx.requests, rx.requests[1:], strict=False)]
    assert all(g >= 0.04 for g in gaps), gaps
    assert sum(gaps[-2:]) > sum(gaps[:2])  # and it grows
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(loud) == 1 and "further failed tries are counted" in loud[0].getMessage()
    assert metrics("retried") == len(rx.requests)


async def test_trouble_is_logged_when_it_starts_and_when_it_ends(
    rig: Rig, receivers: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    rx = receivers(script=[(503, {})] * 5)
    metrics = Counters()
    sender = rig.sender([hook(rx.url())], metrics)
    with caplog.at_level(logging.INFO, logger="cookie_supervisor.webhooks"):
        sender.start()
        sender.submit(event())
        await until(lambda: metrics("delivered") == 1)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "try 1 failed" in lines[0] and "delivering again after 5 failed tries" in lines[1]


async def test_an_event_whose_claimer_died_is_delivered_by_another_daemon(
    rig: Rig, receivers: Callable[..., Receiver], redis_url: str
) -> None:
    # D9: daemon A takes the event, its receiver fails, A dies holding the lease; B saw the same
    # job end and still owes the event: it delivers it once A's lease runs out.
    rx = receivers(script=[(503, {})])
    client = redis.asyncio.Redis.from_url(redis_url)
    queue = BullQueue(client, f"d9-{free_port()}")
    a_metrics, b_metrics = Counters(), Counters()
    a = rig.sender([hook(rx.url())], a_metrics, queue.claim, settle=queue.settle, lease_margin=0.5)
    b = rig.sender([hook(rx.url())], b_metrics, queue.claim, settle=queue.settle, lease_margin=0.5)
    a.submit(event("42"))
    a.start()
    await until(lambda: len(rx.requests) == 1, what="A's first try")
    await until(lambda: a_metrics("retried") == 1)
    await a.aclose()  # A is gone, its lease still in Redis
    b.submit(event("42"))
    b.start()
    await until(lambda: b_metrics("delivered") == 1, timeout=10, what="B delivers")
    await client.aclose()
    assert len(rx.requests) == 2
    assert {r.headers["X-Cookie-Supervisor-Event-Id"] for r in rx.requests} == {
        event("42").event_id
    }


# --- through real daemons ----------------------------------------------------------------------


def _env(redis_url: str, jar: Path, state: Path, url: str, **extra: str) -> dict[str, str]:
    return daemon_env(
        redis_url,
        jar,
        COOKIE_SUPERVISOR_WEBHOOK_URL=url,
        COOKIE_SUPERVISOR_STATE_DIR=str(state),
        COOKIE_SUPERVISOR_VALIDATE_EVERY="0",
        **extra,
    )


def _of(rx: Receiver, name: str) -> list[dict[str, object]]:
    return [e for e in rx.events() if e["event"] == name]


def test_event_ids_are_new_after_a_queue_reset(
    redis_url: str, tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    # D11: after a FLUSHALL job ids start again at 1; the same job id must not make the same id
    rx = receivers()
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    queue = f"d11-{free_port()}"
    d = Daemon(
        env=_env(redis_url, jar, tmp_path / "state", rx.url(), COOKIE_SUPERVISOR_QUEUE=queue)
    ).start()
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "QUEUE": queue})
    try:
        worker.wait("ready")
        first = d.post("/api/cookies/trigger-refresh", json={"reason": "manual"}).json()
        wait_for(lambda: len(_of(rx, "refresh_completed")) == 1, timeout=20)
        redis.Redis.from_url(redis_url).flushall()  # the queue starts again: job ids from 1
        wait_for(lambda: d.metric("cookie_supervisor_refresh_pending", source="default") == 0)
        second = d.post("/api/cookies/trigger-refresh", json={"reason": "manual"}).json()
        wait_for(lambda: len(_of(rx, "refresh_enqueued")) == 2, timeout=20)
    finally:
        worker.stop()
        d.stop()
    assert first["job_id"] == second["job_id"] == "1", (first, second)
    enqueued = _of(rx, "refresh_enqueued")
    assert [e["job_id"] for e in enqueued] == ["1", "1"]
    assert enqueued[0]["event_id"] != enqueued[1]["event_id"]
    # the job end's id carries the job's creation and the queue's epoch (new after the flush)
    assert _of(rx, "refresh_completed")[0]["event_id"] not in {e["event_id"] for e in enqueued}


def test_validation_incidents_once_across_daemons_and_restarts(
    redis_url: str, tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    # D17: three daemons see one jar fail; one validation_failed, one validation_recovered.
    # Point 7: a restart in the middle neither repeats the failure nor loses the recovery.
    rx = receivers()
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar(login=False))  # logged out: the offline check fails
    queue = f"d17-{free_port()}"
    daemons = [
        Daemon(
            env=_env(
                redis_url, jar, tmp_path / f"state{i}", rx.url(), COOKIE_SUPERVISOR_QUEUE=queue
            )
        ).start()
        for i in range(3)
    ]
    try:
        for d in daemons:
            assert d.post("/api/cookies/validate").json()["ok"] is False
        wait_for(lambda: len(_of(rx, "validation_failed")) >= 1, what="validation_failed")
        daemons[0].stop(signal.SIGTERM)
        daemons[0] = Daemon(env=daemons[0].env).start()  # same state file: same incident
        assert daemons[0].post("/api/cookies/validate").json()["ok"] is False
        write_atomic(jar, cookie_jar())
        for d in daemons:
            wait_for(lambda d=d: d.status()["logged_in"] is True, what="the new jar seen")
            assert d.post("/api/cookies/validate").json()["ok"] is True
        wait_for(lambda: len(_of(rx, "validation_recovered")) >= 1, what="recovered")
        outbox = "cookie_supervisor_webhook_outbox"
        wait_for(lambda: all((d.metric(outbox, webhook="127.0.0.1") or 0) == 0 for d in daemons))
    finally:
        for d in daemons:
            d.stop()
    failed, recovered = _of(rx, "validation_failed"), _of(rx, "validation_recovered")
    assert len(failed) == 1 and len(recovered) == 1, [e["event"] for e in rx.events()]
    assert failed[0]["reason"] == "logged_out" and recovered[0]["reason"] is None
    assert rx.events().index(failed[0]) < rx.events().index(recovered[0])
    assert len(_of(rx, "logged_out")) == 1  # its own event, once for the three daemons


def test_no_recovery_without_a_failure_before_it(
    redis_url: str, tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    rx = receivers()
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    d = Daemon(env=_env(redis_url, jar, tmp_path / "state", rx.url())).start()
    try:
        assert d.post("/api/cookies/validate").json()["ok"] is True
        assert d.post("/api/cookies/validate").json()["ok"] is True
        d.post("/api/cookies/trigger-refresh", json={"reason": "manual"})
        wait_for(lambda: len(_of(rx, "refresh_enqueued")) == 1)  # the receiver is listening
    finally:
        d.stop()
    assert [e["event"] for e in rx.events()] == ["refresh_enqueued"]
    assert json.dumps(rx.events())  # plain JSON


def test_a_daemon_killed_while_holding_an_event_does_not_lose_it(
    redis_url: str, tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    # D9 end to end: two daemons see one job end; the one holding the lease (the one that
    # tries) is SIGKILLed while the receiver fails; the other delivers once the lease runs out.
    rx = receivers(script=[(503, {})] * 1000)
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    queue = f"d9e-{free_port()}"
    cfg = tmp_path / "hooks.toml"
    cfg.write_text(f'[[webhooks]]\nname = "ops"\nurl = "{rx.url()}"\ntimeout = "1s"\n')
    daemons = [
        Daemon(
            env=_env(redis_url, jar, tmp_path / f"state{i}", "", COOKIE_SUPERVISOR_QUEUE=queue),
            args=["--config", str(cfg)],
        ).start()
        for i in range(2)
    ]
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "QUEUE": queue})
    retried = "cookie_supervisor_webhook_deliveries_total"

    def tries(d: Daemon) -> float:
        return d.metric(retried, webhook="ops", event="refresh_completed", outcome="retried") or 0

    try:
        worker.wait("ready")
        daemons[0].post("/api/cookies/trigger-refresh", json={"reason": "manual"})
        worker.wait("completed")
        wait_for(lambda: any(tries(d) for d in daemons), timeout=20, what="a failed try")
        holder, other = sorted(daemons, key=tries, reverse=True)
        assert tries(other) == 0  # only the lease holder tries
        holder.stop(signal.SIGKILL)
        rx.script.clear()  # the receiver is back
        delivered = "cookie_supervisor_webhook_deliveries_total"
        wait_for(
            lambda: (
                other.metric(
                    delivered, webhook="ops", event="refresh_completed", outcome="delivered"
                )
                == 1
            ),
            timeout=30,
            what="the other daemon delivers",
        )
    finally:
        worker.stop()
        for d in daemons:
            d.stop()
    completed = [r for r in rx.requests if b'"refresh_completed"' in r.body]
    assert len({r.headers["X-Cookie-Supervisor-Event-Id"] for r in completed}) == 1
    assert rx.events()[-1]["event"] == "refresh_completed"
