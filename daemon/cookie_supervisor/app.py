"""The daemon: one asyncio loop for the HTTP server, the timers, the watcher's events and Redis.

Start order serves /healthz and /metrics first (a scrape during start-up sees something), then
inspects every file, then tells systemd READY=1. SIGTERM/SIGINT stop everything within ~2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from redis.asyncio import Redis

from cookie_supervisor import __version__, core, redisconn, views
from cookie_supervisor.background import Background
from cookie_supervisor.bull import BullQueue
from cookie_supervisor.children import die_with_parent
from cookie_supervisor.classify import register_secret
from cookie_supervisor.config import Settings, is_loopback
from cookie_supervisor.memory import CoreMemory
from cookie_supervisor.metrics import Metrics, outbox_gauges, task_gauge
from cookie_supervisor.probe import (
    runtime_name,
    stop_quick_runs,
    sweep_stale_copies,
    ytdlp_components,
    ytdlp_version,
)
from cookie_supervisor.reports import ReportInputs
from cookie_supervisor.schedule import Timers
from cookie_supervisor.state import Saver, StateFile
from cookie_supervisor.supervisor import Sink, Supervisor
from cookie_supervisor.systemd import Notifier
from cookie_supervisor.validator import Validator
from cookie_supervisor.watcher import DirectoryWatch, FileWatcher
from cookie_supervisor.web import connections, routes
from cookie_supervisor.webhooks import (
    INCIDENT_EVENTS,
    Event,
    Incidents,
    WebhookSender,
    event_id_for,
)

log = logging.getLogger(__name__)
RESCAN_EVERY = 60.0  # safety net for file events inotify cannot see (NFS, a replaced directory)
STATUS_EVERY = 2.0  # systemd's STATUS= line follows the cookie health this closely
CURSOR_SAVE_EVERY = 10.0  # journal and log-file positions reach the state file this often
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
    return redisconn.connect(settings.redis_url)


@dataclass
class Runtime:
    """The daemon's parts, wired by construction: nothing is assigned into one from outside."""

    supervisor: Supervisor
    metrics: Metrics
    sender: WebhookSender
    notifications: Notifications


def build(
    settings: Settings,
    redis: Redis,
    *,
    clock: Callable[[], float] = time.time,
    mono: Callable[[], float] = time.monotonic,
) -> Runtime:
    """Every part of the runtime, the state file read; nothing started (`serve` starts them)."""
    metrics = Metrics()
    state = core.State.of([s.policy() for s in settings.all_sources()])
    saver = Saver.load(StateFile(settings.state_path()), CoreMemory(state))
    queue = BullQueue(
        redis, settings.queue, prefix=settings.queue_prefix, job_name=settings.job_name
    )
    validator = Validator(settings, key=saver.key, clock=clock, mono=mono, count=metrics.count)
    # Notifications: the core says what happened, the sender owns delivery and its outbox.
    sender = WebhookSender(
        settings.all_webhooks(),
        metrics,
        queue.claim,
        saver.soon,
        clock=clock,
        settle=queue.settle,
        mono=mono,
    )
    incidents = Incidents(state.sources, queue.open_incident, queue.close_incident, saver.soon)
    notifications = Notifications(sender, incidents, saver, clock)
    sink = Sink(metrics, notifications.notify)
    timers = Timers(clock)
    supervisor = Supervisor(settings, queue, timers, saver, validator, sink, clock=clock, mono=mono)
    stored = saver.stored.get("outbox")
    sender.outbox.from_state(stored if isinstance(stored, list) else [])
    saver.part("outbox", sender.outbox.to_state)
    metrics.register(outbox_gauges(sender.outbox_sizes))
    for name, hook in sender.webhooks.items():
        metrics.init_webhook(name, hook.events)
    incidents.from_state(saver.stored.get("incidents"))
    saver.part("incidents", incidents.to_state)
    return Runtime(supervisor, metrics, sender, notifications)


def build_supervisor(settings: Settings, redis: Redis) -> Supervisor:
    return build(settings, redis).supervisor


class Notifications:
    """The core's notifications as webhook events: ids derived in the scope the supervisor hands
    with each (the queue's epoch), one failing-validation incident shared by every daemon on it,
    and an event owed to a receiver on disk before the step goes on."""

    def __init__(
        self,
        sender: WebhookSender,
        incidents: Incidents,
        saver: Saver[CoreMemory],
        clock: Callable[[], float],
    ) -> None:
        self.sender = sender
        self.incidents = incidents
        self.saver = saver
        self.clock = clock
        self.host = socket.gethostname()
        self.background = Background()

    def notify(self, n: core.Notify, scope: str) -> bool:
        at = self.clock()
        if n.event in INCIDENT_EVENTS:
            self.background.spawn(self._incident_event(n, at, scope))
            return False  # owed once the incident is known; saved then
        return self._submit(n, event_id_for(n.event, n.source, n.key, scope), at)

    def _submit(self, n: core.Notify, event_id: str, at: float) -> bool:
        self.sender.submit(
            Event(event_id, n.event, n.source, at, n.reason, n.job_id, self.host, n.summary)
        )
        # Owed to a receiver now: saved before the step goes on. Later outbox changes (tries,
        # removals) stay debounced: losing one costs a duplicate the receiver drops.
        return any(n.event in hook.events for hook in self.sender.webhooks.values())

    async def _incident_event(self, n: core.Notify, at: float, scope: str) -> None:
        if n.event == "validation_failed":
            candidate = event_id_for("incident", n.source, n.key, scope)
            incident = await self.incidents.failed(n.source, candidate)
        else:
            incident = await self.incidents.recovered(n.source)
        if incident is not None and self._submit(n, event_id_for(n.event, n.source, incident), at):
            await self.saver.now()  # every daemon in the incident derives the same id

    async def aclose(self) -> None:
        await self.background.aclose()


def uvicorn_config(settings: Settings, app: Any) -> uvicorn.Config:
    """uvicorn with every bound set: connections, request-read time, forwarded headers."""
    cap = connections.connection_cap(settings.limit_concurrency)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=connections.protocol(settings.header_timeout, cap),
        ws="none",
        log_config=None,
        access_log=False,
        lifespan="off",
        date_header=False,
        server_header=False,
        # The protocol holds at most `cap` connections; uvicorn's own check counts the asking
        # connection too, so cap + 1 leaves it a backstop that never answers first.
        limit_concurrency=cap + 1,
        backlog=connections.BACKLOG,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
        # X-Forwarded-For is believed only from configured proxies: uvicorn's default trusts
        # loopback, which gave every local client a fresh rate-limit bucket per request.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=list(settings.forwarded_allow_ips) or None,
    )


def register_secrets(settings: Settings) -> None:
    """Configured credentials the redaction removes wherever they would appear (classify.scrub)."""
    for hook in settings.all_webhooks():
        register_secret(hook.url)
        register_secret(hook.secret.get_secret_value() if hook.secret else None)
    register_secret(settings.api_token.get_secret_value() if settings.api_token else None)
    register_secret(urlsplit(settings.redis_url).password)


async def serve(settings: Settings) -> int:
    register_secrets(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    redis = connect_redis(settings)
    daemon = _Daemon(settings, build(settings, redis), redis)
    try:
        if not await daemon.startup():
            return 1  # could not listen; uvicorn said why
        await daemon.main_loop(stop)
    finally:
        await daemon.shutdown()
    return 0


class _Daemon:
    """The running daemon in three phases: `startup` (HTTP first, so a scrape during start-up
    sees something; then every file inspected, then READY=1), `main_loop` (until a signal or the
    HTTP server ends), `shutdown` (everything stopped, the state file written, within ~2 s)."""

    def __init__(self, settings: Settings, runtime: Runtime, redis: Redis) -> None:
        self.settings = settings
        self.rt = runtime
        self.redis = redis
        self.supervisor = sup = runtime.supervisor
        loop = asyncio.get_running_loop()
        runtime.metrics.register(task_gauge(lambda: len(asyncio.all_tasks(loop))))
        self.files = {name: cfg.cookies_file for name, cfg in sup.source_settings.items()}
        self.watcher = FileWatcher(loop, self.files, sup.file_event, settings.debounce)
        # Passive detection: the backend's journal and log lines, followed through the
        # watcher's directory watches (one inotify instance for the daemon).
        self.inputs = _report_inputs(settings, sup, runtime.metrics, self.watcher.directories)
        self.notifier = Notifier.from_env()
        self.background = Background()  # the systemd watchdog's pings
        token = settings.api_token.get_secret_value() if settings.api_token else None
        app = routes.build(
            sup,
            runtime.metrics,
            # Ready once every file has been looked at: a client that writes a jar right after
            # /readyz must not be racing the first inspection.
            lambda: sup.started and self.watcher.running,
            token,
            settings.rate_limit,
            queue=settings.queue,
            guard_reads=not is_loopback(settings.host),
        )
        self.server = _Server(uvicorn_config(settings, app))
        self.server_task: asyncio.Task[None] | None = None

    async def startup(self) -> bool:
        """False when the HTTP server could not listen."""
        sup, rt, settings = self.supervisor, self.rt, self.settings
        swept = await asyncio.to_thread(sweep_stale_copies)
        if swept:
            log.info("removed %d cookie copies left by a killed probe", swept)
        self.server_task = asyncio.get_running_loop().create_task(_serve_http(self.server))
        while not self.server.started:
            if self.server_task.done():
                return False
            await asyncio.sleep(0.01)
        sup.timers.start()
        self.watcher.start()
        rt.sender.start()
        await sup.start()
        await self.inputs.start()
        if self.inputs.followers:
            sup.timers.every("cursors", CURSOR_SAVE_EVERY, _saver(sup.saver))
        sup.timers.every("rescan", RESCAN_EVERY, _rescanner(sup, self.watcher))
        sup.spawn(_build_info(settings, sup))
        # Everything built so far lives as long as the daemon: keep the collector from scanning
        # it again on every full collection (a storm of requests triggers many).
        gc.freeze()
        if self.notifier.enabled:  # outside systemd nobody reads STATUS=: no timer, no idle work
            reporter = _status_reporter(sup, self.notifier)
            sup.timers.every("status", STATUS_EVERY, reporter)
        if self.notifier.watchdog_interval:
            self.background.spawn(_watchdog(self.notifier, self.notifier.watchdog_interval))
        status = f"supervising {len(self.files)} source(s) on {settings.listen}"
        self.notifier.ready(status)
        log.info("cookie-supervisor %s ready: %s", __version__, status)
        return True

    async def main_loop(self, stop: asyncio.Event) -> None:
        assert self.server_task is not None
        await _first_of(stop.wait(), self.server_task)

    async def shutdown(self) -> None:
        sup, rt = self.supervisor, self.rt
        self.notifier.stopping()
        log.info("shutting down")
        self.server.exit()
        if self.server_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.server_task, SHUTDOWN_TIMEOUT)
        await self.background.aclose()
        self.watcher.stop()
        stop_quick_runs()  # a hung `yt-dlp --version` must not outlive the daemon
        sup.timers.shutdown()
        await self.inputs.aclose()
        await rt.sender.aclose()
        await rt.notifications.aclose()
        await sup.stop()
        await sup.queue.aclose()
        await self.redis.aclose()


def _report_inputs(
    settings: Settings, supervisor: Supervisor, metrics: Metrics, directories: DirectoryWatch
) -> ReportInputs:
    """Passive detection: the backend's journal and log lines become reports, like posted ones."""
    saver = supervisor.saver

    def on_report(source: str, text: str, input_: str) -> None:
        supervisor.spawn(supervisor.request(source, "report", origin="report", error=text))
        saver.soon()  # the cursor moved past a line that mattered

    stored = saver.stored.get("cursors")
    cursors = {str(k): str(v) for k, v in stored.items()} if isinstance(stored, dict) else {}
    inputs = ReportInputs(
        settings.all_sources(), on_report, metrics, cursors=cursors, watch=directories
    )
    saver.part("cursors", inputs.cursors)
    return inputs


async def _build_info(settings: Settings, supervisor: Supervisor) -> None:
    """Which yt-dlp, challenge solver and JS runtime the daemon validates with: a `--version` run
    and a `-v` header run of the probe's own command, off the start-up path."""
    labels = supervisor.metrics.build_labels
    labels["js_runtime"] = runtime_name(supervisor.validator.js_runtime)  # a name, never a path
    labels["revision"] = await asyncio.to_thread(_revision)
    version: str | None = await asyncio.to_thread(ytdlp_version, settings.yt_dlp_command)
    labels["yt_dlp_version"] = version or "unknown"
    found = await asyncio.to_thread(
        ytdlp_components, settings.yt_dlp_command, supervisor.validator.js_runtime
    )
    labels["js_solver_version"] = found.solver or "none"
    labels["js_runtime_version"] = found.runtime or "none"
    if found.solver is None or found.runtime is None or "unsupported" in found.runtime:
        log.warning(
            "yt-dlp cannot solve YouTube's JS challenges: YouTube validations will fail as"
            " js_challenge_failed (install yt-dlp[default] and deno)",
            extra={
                "js_runtime": labels["js_runtime"],
                "js_runtime_version": labels["js_runtime_version"],
                "js_solver_version": labels["js_solver_version"],
            },
        )


def _revision() -> str:
    """The git revision when running from a checkout, else what `make install` recorded."""
    here = Path(__file__).resolve()
    recorded = here.with_name("REVISION")
    if recorded.is_file():
        return recorded.read_text().strip()[:40] or "unknown"
    top = here.parents[2]
    if not (top / ".git").exists():
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "-C", str(top), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(),
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and rev.isalnum() else "unknown"


def _status_reporter(supervisor: Supervisor, notifier: Notifier) -> Any:
    last = ""

    async def report() -> None:
        nonlocal last
        line = views.health_line(supervisor.state, supervisor.now())
        if line != last and notifier.status(line):
            last = line

    return report


def _saver(saver: Saver[CoreMemory]) -> Any:
    async def save() -> None:
        saver.soon()

    return save


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


async def _watchdog(notifier: Notifier, interval: float) -> None:
    """Ping systemd from the event loop itself: a blocked loop stops the pings, and gets killed."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval / 2)
