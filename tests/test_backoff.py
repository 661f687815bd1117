"""The one backoff formula (`backoff.backoff_delay`), and the Lua in bull_scripts.py that applies it in
Redis for refreshes: both must say the same wait, or daemons and the simulator disagree on when a
source may ask again."""

from __future__ import annotations

import re

import pytest

from cookie_supervisor import bull_scripts
from cookie_supervisor.backoff import backoff_delay
from cookie_supervisor.bull import BullQueue


@pytest.mark.parametrize(
    ("failures", "base", "cap", "expected"),
    [
        (0, 1800, 86400, 0),
        (1, 1800, 86400, 1800),
        (2, 1800, 86400, 3600),
        (3, 1800, 86400, 7200),
        (6, 1800, 86400, 57600),
        (7, 1800, 86400, 86400),
        (30, 1800, 86400, 86400),
        (5000, 1800, 86400, 86400),  # no overflow, however long a source keeps failing
        # the journal follower's restarts: 1 s doubling to a minute
        (1, 1.0, 60.0, 1.0),
        (3, 1.0, 60.0, 4.0),
        (6, 1.0, 60.0, 32.0),
        (7, 1.0, 60.0, 60.0),
        (501, 1.0, 60.0, 60.0),
    ],
)
def test_backoff_delay(failures: int, base: float, cap: float, expected: float) -> None:
    assert backoff_delay(failures, base, cap) == expected


def _lua_wait() -> str:
    """The Lua expression bull_scripts.py's outcome script computes the wait with (ARGV[4]: base ms,
    ARGV[5]: cap ms, n: failures so far, this one included)."""
    found = re.findall(r"local wait = (.+)", bull_scripts.OUTCOME)
    assert len(found) == 1, "bull_scripts.py's outcome script computes its wait in one line"
    return found[0].strip()


FAILURES = [*range(1, 40), 64, 65, 500, 1100]


@pytest.mark.parametrize(("base", "cap"), [(1800, 86400), (60, 600), (10, 25), (1, 60)])
async def test_the_lua_computes_the_same_wait(queue: BullQueue, base: int, cap: int) -> None:
    """The wait the script computes, evaluated by Redis itself for every failure count, is the
    Python formula's (in ms: the script's unit), including past the cap and past 2^1024."""
    script = f"local n = tonumber(ARGV[1])\nlocal wait = {_lua_wait()}\nreturn tostring(wait)"
    for n in FAILURES:
        said = await queue.redis.eval(script, 0, n, 0, 0, base * 1000, cap * 1000)
        lua = float(said.decode() if isinstance(said, bytes) else said)
        assert lua == backoff_delay(n, base * 1000, cap * 1000), (n, lua)


async def test_a_recorded_failure_waits_what_the_formula_says(queue: BullQueue) -> None:
    """End to end through the script: the n-th failure's `until` is Redis's now plus the wait."""
    for n in range(1, 6):
        before = await _redis_ms(queue)
        found = await queue.record_refresh_outcome("default", f"job{n}", False, base_s=10, max_s=45)
        after = await _redis_ms(queue)
        assert found.failures == n and found.until is not None
        wait = backoff_delay(n, 10, 45) * 1000
        assert before + wait - 1 <= found.until * 1000 <= after + wait + 1, (n, found.until)


async def _redis_ms(queue: BullQueue) -> float:
    seconds, micros = await queue.redis.time()
    return float(seconds) * 1000 + micros // 1000
