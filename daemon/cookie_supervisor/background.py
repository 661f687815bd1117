"""Background tasks: started on the running loop, reaped when done, cancelled together.

One helper for a pattern the daemon had four copies of (the supervisor's spawned effects, the
webhook sender's loop, the journal and log-file followers, the systemd watchdog ping): asyncio
keeps only a weak reference to a task, so one nobody holds can vanish mid-flight, and a task whose
failure nobody awaits loses its traceback. Here a task is held until it ends, its failure is
logged (never lost), and `aclose` cancels what is still running and waits for it to finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """The tasks one owner runs in the background."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run `coro` in the background; its failure is logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task failed", exc_info=exc)

    async def aclose(self) -> None:
        """Cancel every task still running and wait until all have ended."""
        running = list(self._tasks)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
