"""Webhooks through the real daemon: what the core decides reaches a real loopback receiver, survives
a SIGKILL in the state file, is sent once by two daemons, and never waits on a slow receiver.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from tests.support import (
    Daemon,
    NodeProcess,
    Receiver,
    cookie_jar,
    daemon_env,
    wait_for,
    write_atomic,
)
from tests.test_webhooks import readme_verifier

SECRET = "a-webhook-secret-of-32-bytes-ok!"


def sources_config(tmp_path: Path, names: list[str]) -> Path:
    lines = []
    for name in names:
        jar = tmp_path / f"{name}.txt"
        write_atomic(jar, cookie_jar())
        lines += [
            "[[sources]]",
            f'name = "{name}"',
            f'cookies_file = "{jar}"',
            "validation_urls = []",
        ]
    cfg = tmp_path / "sources.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def hook_env(redis_url: str, tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    env = daemon_env(
        redis_url,
        tmp_path / "unused.txt",
        COOKIE_SUPERVISOR_WEBHOOK_URL=url,
        COOKIE_SUPERVISOR_WEBHOOK_SECRET=SECRET,
        COOKIE_SUPERVISOR_STATE_DIR=str(tmp_path / "state"),
        **extra,
    )
    env.pop("YT_DLP_COOKIES_FILE")
    return env


def saved_outbox(tmp_path: Path) -> list[dict[str, object]]:
    try:
        data = json.loads((tmp_path / "state" / "state.json").read_text())
    except (OSError, ValueError):
        return []
    return list(data.get("outbox") or [])


def test_events_in_the_outbox_survive_a_sigkill(
    redis_url: str, tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    names = [f"s{i}" for i in range(5)]
    cfg = sources_config(tmp_path, names)
    receiver = receivers(script=[(503, {})] * 1000)
    env = hook_env(redis_url, tmp_path, receiver.url())
    d = Daemon(env=env, args=["--config", str(cfg)]).start()
    for name in names:
        answer = d.post("/api/cookies/trigger-refresh", json={"reason": "manual", "source": name})
        assert answer.json()["state"] == "enqueued"
    wait_for(lambda: len(saved_outbox(tmp_path)) == 5, what="5 events in the state file")
    wait_for(lambda: len(receiver.requests) >= 5, what="first tries refused")
    d.stop(signal.SIGKILL)
    receiver.script.clear()  # the receiver recovers while the daemon is down
    tried = len(receiver.requests)
    again = Daemon(env=env, args=["--config", str(cfg)]).start()
    try:
        delivered = lambda: receiver.requests[tried:]  # noqa: E731
        wait_for(lambda: len(delivered()) >= 5, timeout=15, what="5 deliveries after restart")
        events = [json.loads(r.body) for r in delivered()]
        assert sorted(e["source"] for e in events) == names
        assert {e["event"] for e in events} == {"refresh_enqueued"}
        assert len({e["event_id"] for e in events}) == 5
        verify = readme_verifier()
        for r in delivered():
            signature = r.headers["X-Cookie-Supervisor-Signature"]
            assert verify(SECRET, signature, r.body)
        wait_for(lambda: saved_outbox(tmp_path) == [], what="outbox emptied in the state file")
    finally:
        again.stop()


def test_two_daemons_deliver_a_job_end_once(
    redis_url: str, tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    cfg = sources_config(tmp_path, ["default"])
    receiver = receivers()
    env = hook_env(redis_url, tmp_path, receiver.url())
    daemons = [Daemon(env=env, args=["--config", str(cfg)]).start() for _ in range(2)]
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url})
    try:
        worker.wait("ready")
        daemons[0].post("/api/cookies/trigger-refresh", json={"reason": "manual"})
        worker.wait("completed")
        done = "cookie_supervisor_refresh_jobs_finished_total"
        for d in daemons:
            wait_for(lambda d=d: d.metric(done, source="default", outcome="completed") == 1)
        completed = lambda: [  # noqa: E731
            e for e in receiver.events() if e["event"] == "refresh_completed"
        ]
        wait_for(lambda: len(completed()) == 1, what="one refresh_completed delivery")
        # both daemons have had their turn: nothing is left to send, and nothing came twice
        outbox = "cookie_supervisor_webhook_outbox"
        wait_for(lambda: all((d.metric(outbox, webhook="127.0.0.1") or 0) == 0 for d in daemons))
        assert len(completed()) == 1
    finally:
        worker.stop()
        for d in daemons:
            d.stop()


def test_a_hanging_receiver_delays_neither_triggers_nor_metrics(
    redis_url: str, tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    cfg = sources_config(tmp_path, ["default"])
    receiver = receivers(hang=True)
    d = Daemon(
        env=hook_env(redis_url, tmp_path, receiver.url()), args=["--config", str(cfg)]
    ).start()
    r = redis.Redis.from_url(redis_url)
    try:
        d.post("/api/cookies/trigger-refresh", json={"reason": "manual"})
        wait_for(lambda: len(receiver.requests) >= 1, what="the receiver holds a delivery")
        slowest = 0.0
        with httpx.Client(base_url=d.base_url, timeout=10) as client:
            for _ in range(20):
                started = time.monotonic()
                assert client.post("/api/cookies/trigger-refresh", json={"reason": "manual"})
                assert client.get("/metrics").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
        # the receiver holds its request for 30 s; the API never waited on it
        assert slowest < 2.0, f"a trigger and a scrape took {slowest:.2f}s"
        assert len([k for k in r.keys("bull:cookie-refresh:*") if k.decode()[20:].isdigit()]) == 1
    finally:
        d.stop()
