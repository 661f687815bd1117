"""Standing problems in the log: after every step, one WARNING when a problem starts and one
INFO when it ends (how long it lasted, how often it was seen again)."""

from __future__ import annotations

import logging
from typing import Any

from cookie_supervisor.classify import Reason
from cookie_supervisor.core.events import (
    BackoffObserved,
    Effect,
    Event,
    FileInspected,
    ValidationFinished,
)
from cookie_supervisor.core.source import (
    FILE_PROBLEMS,
    Source,
    Spell,
    State,
    file_evidence,
    log_line,
)
from cookie_supervisor.model import (
    Now,
    Validation,
    as_now,
)

# --- standing problems in the log ---------------------------------------------------------------
#
# `journalctl -p warning` must show every problem that stands, once: one WARNING line when it
# starts, one INFO line when it ends (with how long it lasted and how often it was seen again
# meanwhile); repeats are counted, not logged. Redis outages are logged where they are seen
# (redis_went_down, redis_back); the file's, the validation's and the refreshes' problems are found
# here, after every step, from the state the step left.

# Refreshes in a row that did not help before "refreshes do not fix the cookies" is a problem:
# the rules' default cookie_supervisor:threshold_refresh_consecutive_failures.
INEFFECTIVE_AFTER = 2
PROBLEM_TEXT = {
    Reason.MISSING_COOKIES: "cookie file missing",
    Reason.CORRUPT_COOKIES: "cookie file unusable",
    Reason.LOGGED_OUT: "cookies logged out",
    Reason.EXPIRED: "login cookies expired",
    Reason.UNREADABLE: "cookie file unreadable",
    Reason.NOT_A_FILE: "cookie path is not a regular file",
    "validation_failing": "validation failing",
    "refresh_ineffective": "refreshes do not fix the cookies",
    # The daemon's own trouble (descriptors, memory, I/O), logged at ERROR in _read_error.
    "read_error": "cannot read cookie file (daemon resource problem)",
}
# What sees a standing problem again: that sighting is a repeat.
_SIGHTINGS: dict[type, frozenset[str]] = {
    FileInspected: frozenset(r.value for r in FILE_PROBLEMS),
    ValidationFinished: frozenset({"validation_failing"}),
    BackoffObserved: frozenset({"refresh_ineffective"}),
}


def standing(src: Source, now: Now | float) -> dict[str, dict[str, Any]]:
    """The source's problems that stand now, each with the fields its WARNING line carries."""
    now = as_now(now)
    found: dict[str, dict[str, Any]] = {}
    if (problem := file_evidence(src, now)) is not None:
        found[problem.value] = {"path": str(src.settings.cookies_file)}
    v = src.last_validation
    if v is not None and not v.ok and v.reason not in FILE_PROBLEMS:
        # (a failing offline check of a missing or logged-out jar is that problem's line)
        reason = (v.reason or Reason.OTHER).value
        found["validation_failing"] = {"reason": reason, "detail": v.message}
    if src.failures >= INEFFECTIVE_AFTER:
        found["refresh_ineffective"] = {"failures": src.failures}
    return found


def problem_lines(state: State, event: Event, now: Now) -> list[Effect]:
    name = getattr(event, "source", None)
    if name is not None:
        return _source_problem_lines(state.sources[name], event, now)
    fx: list[Effect] = []
    for src in state.sources.values():  # the queue's and Redis's events concern every source
        fx += _source_problem_lines(src, event, now)
    return fx


def _source_problem_lines(src: Source, event: Event, now: Now) -> list[Effect]:
    if src.read_error is not None:
        return []  # the daemon cannot look: nothing starts or ends until it can again
    now_standing = standing(src, now)
    if not now_standing and not src.warned:
        return []
    fx: list[Effect] = []
    for key in [k for k in src.warned if k not in now_standing]:
        spell = src.warned.pop(key)
        fx.append(
            log_line(
                logging.INFO,
                f"{_problem_text(key)}: ended",
                src,
                problem=key,
                lasted=round(now.mono - spell.since, 3),
                repeats=spell.repeats,
            )
        )
    sighted = _SIGHTINGS.get(type(event), frozenset())
    for key, fields in now_standing.items():
        if (seen := src.warned.get(key)) is not None:
            seen.repeats += key in sighted
            continue
        src.warned[key] = Spell(now.mono)
        fx.append(log_line(logging.WARNING, _problem_text(key), src, problem=key, **fields))
    return fx


def _problem_text(key: str) -> str:
    return PROBLEM_TEXT.get(key, key.replace("_", " "))


def validation_level(src: Source, v: Validation) -> int:
    """A pass is INFO; a failure INFO the first time (its problem's WARNING follows) and DEBUG
    while its problem stands (a repeat: counted, not logged)."""
    if v.ok:
        return logging.INFO
    reason = (v.reason or Reason.OTHER).value
    key = reason if v.reason in FILE_PROBLEMS else "validation_failing"
    return logging.DEBUG if key in src.warned else logging.INFO
