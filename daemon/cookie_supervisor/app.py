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
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from redis.asyncio import Redis

from cookie_supervisor import __version__, core, redisconn, views
from cookie_supervisor.bull import BullQueue
from cookie_supervisor.children import die_with_parent
from cookie_supervisor.classify import register_secret
from cookie_supervisor.config import Settings, is_loopback
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
from cookie_supervisor.supervisor import Supervisor
from cookie_supervisor.systemd import Notifier
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


def build_supervisor(
    settings: Settings, redis: Redis, metrics: Metrics | None = None
) -> Supervisor:
    queue = BullQueue(
        redis, settings.queue, prefix=settings.queue_prefix, job_name=settings.job_name
    )
    return Supervisor(settings, metrics or Metrics(), queue, Timers())


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
    supervisor = build_supervisor(settings, redis)
    swept = await asyncio.to_thread(sweep_stale_copies)
    if swept:
        log.info("removed %d cookie copies left by a killed probe", swept)
    supervisor.metrics.register(task_gauge(lambda: len(asyncio.all_tasks(loop))))
    sender = _webhooks(settings, supervisor)
    files = {name: st.settings.cookies_file for name, st in supervisor.sources.items()}
    watcher = FileWatcher(loop, files, supervisor.file_event, settings.debounce)
    inputs = _report_inputs(settings, supervisor, watcher.directories)
    notifier = Notifier.from_env()
    token = settings.api_token.get_secret_value() if settings.api_token else None
    app = routes.build(
        supervisor,
        supervisor.metrics,
        # Ready once every file has been looked at: a client that writes a jar right after
        # /readyz must not be racing the first inspection.
        lambda: supervisor.started and watcher.running,
        token,
        settings.rate_limit,
        queue=settings.queue,
        guard_reads=not is_loopback(settings.host),
    )
    server = _Server(uvicorn_config(settings, app))
    server_task = loop.create_task(_serve_http(server))
    try:
        while not server.started:
            if server_task.done():
                return 1  # could not listen; uvicorn said why
            await asyncio.sleep(0.01)
        supervisor.timers.start()
        watcher.start()
        sender.start()
        await supervisor.start()
        await inputs.start()
        if inputs.followers:
            supervisor.timers.every("cursors", CURSOR_SAVE_EVERY, _saver(supervisor))
        supervisor.timers.every("rescan", RESCAN_EVERY, _rescanner(supervisor, watcher))
        supervisor.spawn(_build_info(settings, supervisor))
        # Everything built so far lives as long as the daemon: keep the collector from scanning
        # it again on every full collection (a storm of requests triggers many).
        gc.freeze()
        if notifier.enabled:  # outside systemd nobody reads STATUS=: no timer, no idle work
            supervisor.timers.every("status", STATUS_EVERY, _status_reporter(supervisor, notifier))
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
        stop_quick_runs()  # a hung `yt-dlp --version` must not outlive the daemon
        supervisor.timers.shutdown()
        await inputs.aclose()
        await sender.aclose()
        await supervisor.stop()
        await supervisor.queue.aclose()
        await redis.aclose()
    return 0


def _webhooks(settings: Settings, supervisor: Supervisor) -> WebhookSender:
    """Notifications: the core says what happened, the sender owns delivery and its outbox."""
    hooks = settings.all_webhooks()
    queue = supervisor.queue
    sender = WebhookSender(
        hooks,
        supervisor.metrics,
        queue.claim,
        supervisor.save_soon,
        clock=supervisor.clock,
        settle=queue.settle,
        mono=supervisor.mono,
    )
    stored = supervisor.stored.get("outbox")
    sender.outbox.from_state(stored if isinstance(stored, list) else [])
    supervisor.saver.part("outbox", sender.outbox.to_state)
    supervisor.metrics.register(outbox_gauges(sender.outbox_sizes))
    for name, hook in sender.webhooks.items():
        supervisor.metrics.init_webhook(name, hook.events)
    incidents = Incidents(
        supervisor.sources, queue.open_incident, queue.close_incident, supervisor.save_soon
    )
    incidents.from_state(supervisor.stored.get("incidents"))
    supervisor.saver.part("incidents", incidents.to_state)

    def submit(n: core.Notify, event_id: str, at: float) -> bool:
        sender.submit(
            Event(event_id, n.event, n.source, at, n.reason, n.job_id, supervisor.host, n.summary)
        )
        # Owed to a receiver now: saved before the step goes on. Later outbox changes (tries,
        # removals) stay debounced: losing one costs a duplicate the receiver drops.
        return any(n.event in hook.events for hook in sender.webhooks.values())

    async def incident_event(n: core.Notify, at: float) -> None:
        if n.event == "validation_failed":
            candidate = event_id_for("incident", n.source, n.key, supervisor.scope)
            incident = await incidents.failed(n.source, candidate)
        else:
            incident = await incidents.recovered(n.source)
        if incident is not None and submit(n, event_id_for(n.event, n.source, incident), at):
            await supervisor.save_now()  # every daemon in the incident derives the same id

    def notify(n: core.Notify) -> bool:
        at = supervisor.clock()
        if n.event in INCIDENT_EVENTS:
            supervisor.spawn(incident_event(n, at))
            return False  # owed once the incident is known; saved then
        return submit(n, event_id_for(n.event, n.source, n.key, supervisor.scope), at)

    supervisor.notify = notify
    return sender


def _report_inputs(
    settings: Settings, supervisor: Supervisor, directories: DirectoryWatch
) -> ReportInputs:
    """Passive detection: the backend's journal and log lines become reports, like posted ones."""

    def on_report(source: str, text: str, input_: str) -> None:
        supervisor.spawn(supervisor.request(source, "report", origin="report", error=text))
        supervisor.save_soon()  # the cursor moved past a line that mattered

    stored = supervisor.stored.get("cursors")
    cursors = {str(k): str(v) for k, v in stored.items()} if isinstance(stored, dict) else {}
    inputs = ReportInputs(
        settings.all_sources(), on_report, supervisor.metrics, cursors=cursors, watch=directories
    )
    supervisor.saver.part("cursors", inputs.cursors)
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


def _saver(supervisor: Supervisor) -> Any:
    async def save() -> None:
        supervisor.save_soon()

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
