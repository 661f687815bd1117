"""The queue poll: what Redis holds of the refresh jobs, read on a timer and told to the core.

Each poll is one look at the queue (`BullQueue.observe`: its epoch, counts, each source's pending
job, the jobs finished since the last ones judged, shared diagnoses; the backoffs until the
history is recovered), handed to the core as `BackoffObserved` and `QueueObserved` events. It is
also how a Redis outage ends: while one lasts the poll waits out the outage's backoff, and the
first look that succeeds tells the core Redis is back. The poll owns the scope event ids are
derived in (webhooks.event_id_for): the queue's epoch once read, until then words of this process
alone (docs/bull.md §9).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from cookie_supervisor import core
from cookie_supervisor.bull import BullQueue
from cookie_supervisor.redisconn import Outage

log = logging.getLogger("cookie_supervisor.supervisor")  # the runtime's lines, one logger


class QueuePoller:
    """Polls `queue` for the core's `state`, feeding what it sees to `handle`; Redis errors go
    to `outage`."""

    def __init__(
        self,
        queue: BullQueue,
        state: core.State,
        outage: Outage,
        handle: Callable[[core.Event], Awaitable[object]],
        host: str,
        mono: Callable[[], float],
    ) -> None:
        self.queue = queue
        self.state = state
        self.outage = outage
        self.handle = handle
        self.mono = mono  # the core's monotonic clock: `read_at` is compared with its events
        self.scope = f"local:{host}:{secrets.token_hex(8)}"
        self._epoch_candidate = secrets.token_hex(16)
        self._failing = False

    async def poll(self) -> None:
        """Queue counts, pending and finished jobs; also how Redis outages end."""
        if self.state.redis_up is False and self.outage.waiting():
            return
        try:
            observed = await self.outage.guard(self._observe())
        except Exception:
            # What Redis held could not be read (a bug or data no bound foresaw): no outage, and
            # the next poll tries again. Logged once per spell, not once per poll.
            if not self._failing:
                log.exception("queue poll failed on data read from Redis")
            self._failing = True
            return
        self._failing = False
        if observed is not None:
            self.outage.ended()
            await self.handle(observed)

    async def _observe(self) -> core.QueueObserved:
        state, read_at = self.state, self.mono()
        seen = await self.queue.observe(
            {name: src.pending_job for name, src in state.sources.items()},
            default_source=state.default_source,
            judged=state.judged or (),
            candidate=self._epoch_candidate,
            backoffs=not state.history_recovered,
        )
        self.scope = seen.epoch
        for name, found in seen.backoffs.items():
            await self.handle(core.BackoffObserved(name, found.failures, found.until))
        return core.QueueObserved(
            seen.pending,
            seen.finished,
            seen.vanished,
            seen.counts.as_dict(),
            seen.diagnoses,
            progress=seen.progress,
            window=seen.window,
            epoch=seen.epoch,
            read_at=read_at,
        )
