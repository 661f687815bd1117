"""SIGKILL at the worst moment: right after an event is owed to a webhook, and during a probe.

Nothing owed is lost (the outbox is on disk before the step that made the event goes on, and the
restarted daemon still holds its claim), and nothing the daemon started outlives it (its yt-dlp
children die with it).
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from cookie_supervisor import probe
from tests.support import Daemon, Receiver, cookie_jar, daemon_env, wait_for, write_atomic

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_ytdlp.py"
KILLS = 3


def outbox_events(state: Path) -> list[str]:
    saved = json.loads((state / "state.json").read_text())
    return [item["event"]["event"] for item in saved.get("outbox", [])]


def test_an_event_owed_to_a_webhook_survives_sigkill_right_after_it(
    redis_url: str, tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    hook = receivers(hang=True)  # the first daemon's try never ends: the event stays owed
    state = tmp_path / "state"
    env = daemon_env(
        redis_url,
        jar,
        COOKIE_SUPERVISOR_STATE_DIR=str(state),
        COOKIE_SUPERVISOR_WEBHOOK_URL=hook.url(),
    )
    r = redis.Redis.from_url(redis_url)
    for kill in range(KILLS):
        d = Daemon(env=env).start()
        answer = d.post("/api/cookies/trigger-refresh", json={"reason": "manual"}).json()
        assert answer["state"] == "enqueued", answer
        d.stop(signal.SIGKILL)  # at once: well within the old 1 s save delay
        owed = outbox_events(state)
        assert owed.count("refresh_enqueued") == kill + 1, owed
        # the next round's job: this one ends, so a new request enqueues again
        for key in r.keys("bull:cookie-refresh:*"):
            if key != b"bull:cookie-refresh:id":  # job ids (and so event ids) stay unique
                r.delete(key)
        for key in r.keys("cookie-supervisor:bull:cookie-refresh:pending:*"):
            r.delete(key)
    hook.hang = False
    hook.release.set()
    again = Daemon(env=env).start()
    try:
        delivered = "cookie_supervisor_webhook_deliveries_total"

        def sent() -> float:
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in again.metrics().splitlines()
                if line.startswith(delivered + "{") and 'outcome="delivered"' in line
            )

        wait_for(lambda: sent() == KILLS, timeout=15, what="every owed event delivered")
        ids = {e["event_id"] for e in hook.events() if e["event"] == "refresh_enqueued"}
        assert len(ids) == KILLS
        wait_for(lambda: outbox_events(state) == [], what="the outbox emptied on disk")
    finally:
        again.stop()


def test_a_probe_child_dies_with_a_sigkilled_daemon(redis_url: str, tmp_path: Path) -> None:
    """yt-dlp dies with the daemon (PR_SET_PDEATHSIG); what it started itself (a JS runtime),
    at the latest when the daemon starts again (its sweep of the dead daemon's directory)."""
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    record = tmp_path / "record.json"
    private = tmp_path / "tmp"
    private.mkdir()
    env = daemon_env(redis_url, jar, TMPDIR=str(private))
    probing = {
        **env,
        "COOKIE_SUPERVISOR_VALIDATION_URLS": "http://127.0.0.1:9/v.mp4",
        "COOKIE_SUPERVISOR_YT_DLP_COMMAND": f"{sys.executable},{FAKE},hang",
        "COOKIE_SUPERVISOR_PROBE_TIMEOUT": "60s",
        "FAKE_RECORD": str(record),
    }
    d = Daemon(env=probing).start()
    # the fake writes the record, then hangs: read it once it is whole
    pids = wait_for(lambda: json.loads(record.read_text()), timeout=10, what="the probe running")
    child, grandchild = int(pids["pid"]), int(pids["child"])
    assert alive(child) and alive(grandchild)
    d.stop(signal.SIGKILL)
    wait_for(lambda: not alive(child), timeout=5, what="yt-dlp gone with the daemon")
    again = Daemon(env=env).start()
    try:
        wait_for(lambda: not alive(grandchild), timeout=5, what="its own child gone at restart")
        assert list(private.iterdir()) == []  # and the jar's private copy with it
    finally:
        again.stop()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(") ", 1)[1][0] != "Z"


def test_a_hung_version_run_leaves_no_process_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start-up `--version` / `-v` runs: at their timeout the whole group goes, the JS
    runtime a hung yt-dlp started included (subprocess.run killed the child alone)."""
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    monkeypatch.setattr(probe, "VERSION_TIMEOUT", 1.0)
    command = [sys.executable, str(FAKE), "hang"]
    assert probe.ytdlp_components(command, None) == probe.Components(None, None)
    pids = json.loads(record.read_text())
    wait_for(lambda: not alive(int(pids["pid"])), timeout=5, what="the hung run gone")
    wait_for(lambda: not alive(int(pids["child"])), timeout=5, what="its child gone too")


def test_a_stopped_daemon_leaves_no_start_up_run_behind(redis_url: str, tmp_path: Path) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    record = tmp_path / "record.json"
    env = daemon_env(
        redis_url,
        jar,
        COOKIE_SUPERVISOR_YT_DLP_COMMAND=f"{sys.executable},{FAKE},hang",
        FAKE_RECORD=str(record),
    )
    d = Daemon(env=env).start()
    pids = wait_for(lambda: json.loads(record.read_text()), timeout=10, what="the -v run hung")
    d.stop()
    wait_for(lambda: not alive(int(pids["pid"])), timeout=5, what="the hung run gone")
    wait_for(lambda: not alive(int(pids["child"])), timeout=5, what="its child gone too")
