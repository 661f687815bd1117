"""The daemon: one asyncio loop for the HTTP server, the timers, the watcher's events and Redis.

Start order serves /healthz and /metrics first (a scrape during start-up sees something), then
inspects every file, then tells systemd READY=1. SIGTERM/SIGINT stop everything within ~2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cookie_supervisor import __version__, api
from cookie_supervisor.bull import BullQueue
from cookie_supervisor.config import Settings
from cookie_supervisor.metrics import Metrics
from cookie_supervisor.schedule import Timers
from cookie_supervisor.supervisor import Supervisor
from cookie_supervisor.systemd import Notifier
from cookie_supervisor.watcher import FileWatcher

log = logging.getLogger(__name__)
RESCAN_EVERY = 60.0  # safety net for file events inotify cannot see (NFS, a replaced directory)
SHUTDOWN_TIMEOUT = 1.5


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling and without its 10 Hz housekeeping tick."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon owns SIGTERM/SIGINT

    async def main_loop(self) -> None:
        while not self.should_exit:
            await self._exit.wait()

    async def startup(self, sockets: Any = None) -> None:
        self._exit = asyncio.Event()
        await super().startup(sockets)

    def exit(self) -> None:
        self.should_exit = True
        self._exit.set()


def connect_redis(settings: Settings) -> Redis:
    # No retries inside redis-py: an outage is a state the supervisor handles, fast.
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=1.0,
        socket_timeout=3.0,
        retry=Retry(NoBackoff(), 0),
        client_name="cookie-supervisor",
    )


def build_supervisor(
    settings: Settings, redis: Redis, metrics: Metrics | None = None
) -> Supervisor:
    queue = BullQueue(
        redis, settings.queue, prefix=settings.queue_prefix, job_name=settings.job_name
    )
    return Supervisor(settings, metrics or Metrics(), queue, Timers())


async def serve(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    redis = connect_redis(settings)
    supervisor = build_supervisor(settings, redis)
    files = {name: st.settings.cookies_file for name, st in supervisor.sources.items()}
    watcher = FileWatcher(loop, files, supervisor.file_event, settings.debounce)
    notifier = Notifier.from_env()
    token = settings.api_token.get_secret_value() if settings.api_token else None
    app = api.build(
        supervisor, supervisor.metrics, lambda: watcher.running, token, settings.rate_limit
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="off",
        date_header=False,
        server_header=False,
    )
    server = _Server(config)
    server_task = loop.create_task(_serve_http(server))
    try:
        while not server.started:
            if server_task.done():
                return 1  # could not listen; uvicorn said why
            await asyncio.sleep(0.01)
        supervisor.timers.start()
        watcher.start()
        await supervisor.start()
        supervisor.timers.every("rescan", RESCAN_EVERY, _rescanner(supervisor, watcher))
        watchdog = _start_watchdog(notifier)
        status = f"supervising {len(files)} source(s) on {settings.listen}"
        notifier.ready(status)
        log.info("cookie-supervisor %s ready: %s", __version__, status)
        await _first_of(stop.wait(), server_task)
    finally:
        notifier.stopping()
        log.info("shutting down")
        server.exit()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(server_task, SHUTDOWN_TIMEOUT)
        if "watchdog" in locals():
            watchdog.cancel()
        watcher.stop()
        supervisor.timers.shutdown()
        await supervisor.stop()
        await supervisor.queue.aclose()
        await redis.aclose()
    return 0


async def _serve_http(server: _Server) -> None:
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits when it cannot bind; the daemon decides how to end
        log.error("HTTP server failed to start")


async def _first_of(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks[:1]:  # the stop waiter is ours to clean up; the server task is awaited later
        t.cancel()


def _rescanner(supervisor: Supervisor, watcher: FileWatcher) -> Any:
    async def rescan() -> None:
        watcher.rearm()
        for name in supervisor.sources:
            await supervisor.inspect(name)

    return rescan


def _start_watchdog(notifier: Notifier) -> asyncio.Task[None]:
    """Ping systemd from the event loop itself: a blocked loop stops the pings, and gets killed."""

    async def ping() -> None:
        assert notifier.watchdog_interval is not None
        while True:
            notifier.watchdog()
            await asyncio.sleep(notifier.watchdog_interval / 2)

    async def idle() -> None:
        return None

    return asyncio.get_running_loop().create_task(ping() if notifier.watchdog_interval else idle())
