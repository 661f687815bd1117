"""A hostile state file: absurd numbers, wrong types, a FIFO, /dev/zero, 30 000 sessions, a symlink
planted at the temporary name. Each is dropped or refused with a log line; the daemon starts, answers
and never writes through a link.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cookie_supervisor import core, memory, state
from cookie_supervisor.config import SourceSettings
from cookie_supervisor.webhooks import Outbox
from tests.support import Daemon, daemon_env

HUGE = "1" + "0" * 400  # 10**400 as JSON writes it: no float holds it
NOW = 1_800_000_000.0
FP = "a" * 64


def source_state() -> core.State:
    return core.State.of([SourceSettings(name="default", cookies_file=Path("/srv/c.txt")).policy()])


def owed(at: str = str(NOW)) -> str:
    return f'{{"reason":"manual","at":{at},"origin":"api","force":false}}'


def stored(sessions: str, owed_json: str = "null", outbox: str = "[]") -> bytes:
    text = (
        f'{{"schema":1,"key":"{"ab" * 32}","sources":{{"default":'
        f'{{"sessions":{sessions},"owed":{owed_json}}}}},"outbox":{outbox}}}'
    )
    return text.encode()


def load(tmp_path: Path, body: bytes) -> dict[str, Any]:
    (tmp_path / state.FILENAME).write_bytes(body)
    return state.StateFile(tmp_path).load()


def outbox_entry(first_at: str, at: str = str(NOW)) -> str:
    event = {
        "event_id": "evt_1",
        "event": "validation_failed",
        "source": "default",
        "at": "AT",
        "reason": "logged_out",
        "job_id": None,
        "host": "h",
        "summary": "s",
    }
    entry = json.dumps({"webhook": "ops", "event": event, "first_at": "FIRST"})
    entry = entry.replace('"AT"', at).replace('"FIRST"', first_at)
    return entry[:-1] + f',"next_at":{NOW},"attempts":0}}'


@pytest.mark.parametrize("bad", [HUGE, "-" + HUGE, "NaN", "Infinity", "-Infinity", "1e400", "-5"])
def test_absurd_numbers_drop_their_entry_with_one_log_line(
    tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = f'{{"{FP}":{NOW},"{"b" * 64}":{bad}}}'
    outbox = f"[{outbox_entry(bad)},{outbox_entry(str(NOW), at=bad)}]"
    data = load(tmp_path, stored(sessions, owed(bad), outbox))
    assert data["schema"] == 1  # the file itself is kept: only the bad entries go
    st_ = source_state()
    with caplog.at_level(logging.WARNING):
        memory.restore(st_, data)
        box = Outbox({"ops": 10})
        box.from_state(data["outbox"])
    src = st_.sources["default"]
    assert src.sessions == {FP: NOW}
    assert src.owed is None
    assert box.sizes() == {"ops": 0}
    dropped = [
        r for r in caplog.records if "dropped" in r.getMessage() or "skipping" in r.getMessage()
    ]
    assert len(dropped) == 4, [r.getMessage() for r in caplog.records]  # one line per entry


@pytest.mark.parametrize(
    "value",
    ['"1800000000"', "true", "[1]", "{}", "null"],
)
def test_wrong_types_drop_their_entry(tmp_path: Path, value: str) -> None:
    sessions = f'{{"{FP}":{NOW},"{"c" * 64}":{value}}}'
    owed_json = f'{{"reason":"manual","at":{value},"origin":"api","force":false}}'
    data = load(tmp_path, stored(sessions, owed_json, f"[{outbox_entry(value)}]"))
    st_ = source_state()
    memory.restore(st_, data)
    box = Outbox({"ops": 10})
    box.from_state(data["outbox"])
    assert st_.sources["default"].sessions == {FP: NOW}
    assert st_.sources["default"].owed is None
    assert box.sizes() == {"ops": 0}


def test_a_good_file_is_restored_whole(tmp_path: Path) -> None:
    data = load(tmp_path, stored(f'{{"{FP}":{NOW}}}', owed(), f"[{outbox_entry(str(NOW))}]"))
    st_ = source_state()
    memory.restore(st_, data)
    box = Outbox({"ops": 10})
    box.from_state(data["outbox"])
    assert st_.sources["default"].sessions == {FP: NOW}
    assert st_.sources["default"].owed == core.Owed(core.Reason.MANUAL, NOW, "api", False)
    assert box.sizes() == {"ops": 1}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(sessions=json_values, owed_=json_values, outbox=json_values, at=json_values)
def test_restore_never_raises_whatever_the_file_holds(
    sessions: Any, owed_: Any, outbox: Any, at: Any
) -> None:
    """Any JSON in any slot: restore keeps only what is well-formed and never raises."""
    body = json.dumps(
        {
            "schema": 1,
            "key": "zz",
            "sources": {"default": {"sessions": sessions, "owed": owed_}},
            "outbox": [outbox, {"webhook": "ops", "event": outbox, "first_at": at}],
        },
        allow_nan=True,
    ).encode()
    data = state.parse(body)
    st_ = source_state()
    memory.restore(st_, data)
    Outbox({"ops": 10}).from_state(data["outbox"])
    for at_ in st_.sources["default"].sessions.values():
        assert 0 <= at_ <= state.LATEST
    assert len(st_.sources["default"].sessions) <= core.SESSIONS_KEPT
    assert len(state.fingerprint_key(data)) == 32


def test_thirty_thousand_sessions_keep_the_newest_in_one_pass(tmp_path: Path) -> None:
    sessions = {f"{i:064x}": NOW + i for i in range(30_000)}
    data = load(tmp_path, stored(json.dumps(sessions)))
    st_ = source_state()
    memory.restore(st_, data)
    kept = st_.sources["default"].sessions
    assert list(kept.values()) == [NOW + i for i in range(30_000 - core.SESSIONS_KEPT, 30_000)]


def test_a_fifo_at_the_path_is_refused_without_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.mkfifo(tmp_path / state.FILENAME)
    result: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: result.append(state.StateFile(tmp_path).load()))
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the stuck reader so the suite goes on, then fail
        with open(tmp_path / state.FILENAME, "wb"):
            pass
        pytest.fail("load() blocked on a FIFO")
    assert result == [{}]
    assert "not a regular file" in caplog.text


def test_dev_zero_behind_a_symlink_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / state.FILENAME).symlink_to("/dev/zero")
    assert state.StateFile(tmp_path).load() == {}
    assert "not a regular file" in caplog.text


def test_an_oversized_file_is_refused_before_it_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "MAX_BYTES", 1000)
    path = tmp_path / state.FILENAME
    with path.open("wb") as fh:  # sparse: 1 GiB that costs nothing to make
        fh.truncate(1 << 30)
    assert state.StateFile(tmp_path).load() == {}
    assert "larger than 1000 bytes" in caplog.text


def test_a_symlink_planted_at_the_temporary_name_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    planted = directory / f".{state.FILENAME}.{os.getpid()}.tmp"
    planted.symlink_to(victim)
    store = state.StateFile(directory)
    store.save({"key": "ab" * 32})
    assert victim.read_text() == "precious"
    saved = directory / state.FILENAME
    assert not saved.is_symlink() and json.loads(saved.read_text())["key"] == "ab" * 32
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    assert not os.path.lexists(planted)


def test_a_dangling_symlink_at_the_temporary_name_creates_nothing_at_its_target(
    tmp_path: Path,
) -> None:
    target = tmp_path / "created-through-link"
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    (directory / f".{state.FILENAME}.{os.getpid()}.tmp").symlink_to(target)
    state.StateFile(directory).save({})
    assert not target.exists()
    assert (directory / state.FILENAME).is_file()


# --- the real daemon -------------------------------------------------------------------------


def test_daemon_starts_and_answers_with_a_hostile_state_file(redis_url: str, jar: Path) -> None:
    directory = jar.parent / "state"
    directory.mkdir(mode=0o700)
    sessions = f'{{"{FP}":{HUGE},"{"b" * 64}":NaN,"{"c" * 64}":Infinity,"{"d" * 64}":{NOW}}}'
    outbox = f"[{outbox_entry(HUGE)},{outbox_entry('NaN')}]"
    (directory / state.FILENAME).write_bytes(stored(sessions, owed("Infinity"), outbox))
    env = daemon_env(redis_url, jar, COOKIE_SUPERVISOR_STATE_DIR=str(directory))
    d = Daemon(env=env).start()
    try:
        answer = d.get("/api/cookies/cookies-status")
        assert answer.status_code == 200, answer.text
        assert answer.json()["refresh"]["owed"] is None
        assert d.get("/api/cookies/sources").status_code == 200
        assert "state file: dropped" in d.log()
    finally:
        d.stop()


def test_daemon_start_is_not_blocked_by_a_fifo_state_file(redis_url: str, jar: Path) -> None:
    directory = jar.parent / "state"
    directory.mkdir(mode=0o700)
    os.mkfifo(directory / state.FILENAME)
    env = daemon_env(redis_url, jar, COOKIE_SUPERVISOR_STATE_DIR=str(directory))
    started = time.monotonic()
    d = Daemon(env=env).start()
    try:
        assert time.monotonic() - started < 20
        assert "state file ignored: not a regular file" in d.log()
    finally:
        d.stop()
