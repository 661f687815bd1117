"""Webhook payloads as the README's table documents them, field by field (issue 19 point 7).

Every event the core can send is produced here from the decision core itself, turned into the
payload receivers get (`webhooks.Event.as_json`), and compared with the README: the JSON example's
keys, and for each row of the table whether `reason` and `job_id` are set and to what.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from cookie_supervisor.bull import FinishedJob
from cookie_supervisor.classify import Reason
from cookie_supervisor.config import WEBHOOK_EVENTS
from cookie_supervisor.core import Notify, QueueObserved, RefreshAsked, TimerFired
from cookie_supervisor.webhooks import Event, event_id_for
from tests.corekit import DAY, MISSING, T0, Harness, enqueued, jar, of, settings
from tests.support import ROOT


def readme_webhooks() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Webhooks", 1)[1].split("\n## ", 1)[0]


def readme_table() -> dict[str, dict[str, str]]:
    """`event` → its row: reason and job_id as the README words them."""
    rows = {}
    for line in readme_webhooks().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and (m := re.fullmatch(r"`(\w+)`", cells[0])) and m[1] != "event":
            rows[m[1]] = {"reason": cells[2], "job_id": cells[3]}
    return rows


def readme_example() -> dict[str, Any]:
    block = re.search(r"```json\n(.*?)```", readme_webhooks(), re.S)
    assert block is not None
    return json.loads(block[1])  # type: ignore[no-any-return]


def finished(
    job_id: str, outcome: str, at: float, reason: str = "bot_detection", created: float = T0
) -> Any:
    return FinishedJob(job_id, "main", reason, outcome, at, 1, None, created)  # type: ignore[arg-type]


def every_event() -> dict[str, Notify]:
    """One of each event, from the core, through the stories that make them."""
    seen: dict[str, Notify] = {}

    def keep(fx: list[Any]) -> None:
        for n in of(fx, Notify):
            seen.setdefault(n.event, n)

    def refreshed(h: Harness, job_id: str, outcome: str = "completed") -> None:
        keep(h.file(jar("A")))
        ask = enqueued(h(RefreshAsked("main", Reason.BOT_DETECTION, "api", False)))
        keep(h.answer(ask, "enqueued", job_id=job_id))
        keep(h(QueueObserved({"main": job_id})))
        at = h.now + 100
        keep(h(QueueObserved({"main": None}, (finished(job_id, outcome, at),)), at=at))

    h = Harness(settings(upload_timeout=600))
    refreshed(h, "9")  # enqueued, completed
    keep(h.file(jar("B"), at=h.now + 10))
    keep(h.validated(True, started_at=h.now))  # verified
    h = Harness(settings(upload_timeout=600))
    refreshed(h, "10")
    keep(h.file(jar("B"), at=h.now + 10))
    keep(h.validated(False, Reason.LOGGED_OUT, started_at=h.now))  # still failing, validation
    keep(h.validated(True, started_at=h.now))  # recovered
    h = Harness(settings(upload_timeout=600))
    refreshed(h, "11")
    keep(h(TimerFired("main", "upload"), at=h.now + 700))  # no upload
    refreshed(Harness(), "12", "failed")  # failed
    h = Harness(settings(renew_before=2 * DAY, rotate_after=0))
    h.file(jar(expires=T0 + 3 * DAY))
    keep(h(TimerFired("main", "rotation"), at=T0 + DAY))  # expiring
    h = Harness()
    h.file(jar())
    h.file(MISSING, at=T0 + 1)
    keep(h(TimerFired("main", "grace"), at=T0 + 100))  # missing
    h = Harness()
    keep(h.file(jar(None)))  # logged out
    h = Harness()
    keep(h.file(replace(jar(None), login_expired=True)))  # expired
    return seen


def payload(n: Notify) -> dict[str, Any]:
    event_id = event_id_for(n.event, n.source, n.key, "epoch")
    return Event(event_id, n.event, n.source, T0, n.reason, n.job_id, "dl-01", n.summary).as_json()


def test_the_table_lists_every_event() -> None:
    assert sorted(readme_table()) == sorted(WEBHOOK_EVENTS)


def test_payloads_match_the_readme_field_by_field() -> None:
    table, example = readme_table(), readme_example()
    events = every_event()
    assert sorted(events) == sorted(WEBHOOK_EVENTS)  # the core sends every documented event
    reasons = {r.value for r in Reason}
    for name, n in events.items():
        body = payload(n)
        assert list(body) == list(example), name  # the schema, in the documented order
        assert body["event"] == name and body["source"] == "main"
        assert body["summary"].startswith("main: ")
        documented = table[name]
        literal = re.fullmatch(r"`(\w+)`", documented["reason"])
        if literal and literal[1] == "null":
            assert body["reason"] is None, (name, body)
        elif literal:
            assert body["reason"] == literal[1], (name, body)
        else:  # "why", "the failure", "the new failure": a reason of the daemon's vocabulary
            assert body["reason"] in reasons, (name, body)
        if documented["job_id"] == "the job":
            assert body["job_id"] is not None and body["job_id"] in body["summary"], (name, body)
        else:
            assert documented["job_id"] == "`null`" and body["job_id"] is None, (name, body)


def test_still_failing_names_the_new_failure_and_the_others_the_jobs_reason() -> None:
    events = every_event()
    assert events["refresh_still_failing"].reason == "logged_out"
    for name in ("refresh_completed", "refresh_verified", "refresh_no_upload", "refresh_failed"):
        assert events[name].reason == "bot_detection", name


def test_daemons_sharing_a_jar_name_its_problem_alike() -> None:
    # Three daemons notice the jar vanish (or turn logged out) at different moments: the events'
    # keys come from the file they all saw, so the ids agree and one delivery is made.
    keys: dict[str, set[str]] = {"file_missing": set(), "logged_out": set()}
    for delay in (0.0, 7.0, 31.0):
        h = Harness()
        h.file(jar(mtime=T0 - 50), at=T0 + delay)
        h.file(MISSING, at=T0 + 1 + delay)
        for n in of(h(TimerFired("main", "grace"), at=T0 + 100 + delay), Notify):
            keys[n.event].add(n.key)
        h = Harness()
        for n in of(h.file(jar(None, mtime=T0 - 20), at=T0 + delay), Notify):
            keys[n.event].add(n.key)
    assert all(len(found) == 1 for found in keys.values()), keys
    # another spell (the jar came back and went again) is another event
    h = Harness()
    h.file(jar(mtime=T0 - 50))
    h.file(MISSING, at=T0 + 1)
    [first] = of(h(TimerFired("main", "grace"), at=T0 + 100), Notify)
    h.file(jar(mtime=T0 + 200), at=T0 + 200)
    h.file(MISSING, at=T0 + 300)
    [second] = of(h(TimerFired("main", "grace"), at=T0 + 400), Notify)
    assert first.key != second.key
