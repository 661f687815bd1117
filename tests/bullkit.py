"""A general bull producer for the tests: `queue.add()` with bull's options, on bull.py's own Lua.

The daemon only ever adds refresh jobs (BullQueue.request_refresh); tests also need plain, delayed,
prioritized, LIFO and custom-id jobs, the way bull's own `queue.add()` makes them (docs/bull.md §3).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from cookie_supervisor.bull import BullQueue
from cookie_supervisor.bull_scripts import ADD_JOB_LUA

_ADD = (
    ADD_JOB_LUA
    + """
return add_job(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8],
               ARGV[9], ARGV[10])
"""
)


class Producer:
    """Adds jobs to one BullQueue's queue as Node bull's `queue.add()` does."""

    def __init__(self, queue: BullQueue) -> None:
        self.queue = queue
        self._script = queue.redis.register_script(_ADD)

    async def add(
        self,
        data: Mapping[str, Any],
        *,
        job_id: str | None = None,
        attempts: int = 1,
        backoff: int | Mapping[str, Any] | None = None,
        delay_ms: int = 0,
        priority: int = 0,
        lifo: bool = False,
        remove_on_complete: bool | int | None = None,
        remove_on_fail: bool | int | None = None,
    ) -> tuple[str, bool]:
        """Add one job; returns its id and whether it was created (False: duplicate custom id)."""
        if job_id is not None and (not job_id or job_id.isdigit() or ":" in job_id):
            raise ValueError("a custom job id must be non-empty, not all digits, without ':'")
        timestamp = int(time.time() * 1000)
        opts: dict[str, Any] = {}
        if job_id is not None:
            opts["jobId"] = job_id
        if priority:
            opts["priority"] = priority
        if lifo:
            opts["lifo"] = True
        if remove_on_complete is not None:
            opts["removeOnComplete"] = remove_on_complete
        if remove_on_fail is not None:
            opts["removeOnFail"] = remove_on_fail
        opts.update(attempts=attempts, delay=delay_ms, timestamp=timestamp)
        if backoff is not None:
            opts["backoff"] = (
                {"type": "fixed", "delay": backoff} if isinstance(backoff, int) else dict(backoff)
            )
        q = self.queue
        args = (
            q.base,
            job_id or "",
            q.job_name,
            json.dumps(data, separators=(",", ":"), ensure_ascii=False),
            json.dumps(opts, separators=(",", ":")),
            timestamp,
            delay_ms,
            priority,
            "1" if lifo else "0",
            q.token,
        )
        new_id, created = await self._script(q.keys[:6], args)
        return new_id.decode(), bool(created)
