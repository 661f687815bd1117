"""HTTP connections: how many the daemon holds, how long one may take to ask, and the answer to a
request too broken to reach the routes.

uvicorn's h11 protocol keeps a connection that sends nothing, or its headers a byte at a time, for
as long as the client likes, and every held connection is a file descriptor: a thousand idle
sockets once exhausted the descriptor limit and took /healthz, Redis and the jar reads down with
them. This protocol bounds both. A request must arrive whole within `header_timeout` of the
connection opening (or of the previous answer); at the connection cap the longest-idle
connection is closed to make room, so a new client (a scrape, a health check) is served while a
flood holds the rest. The cap stays below the process's descriptor limit, so accept() never meets
EMFILE because of HTTP clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import resource
import time
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# The listen queue. asyncio accepts up to this many connections per loop tick, and a connection
# only reaches the protocol (which can close one to make room) two ticks later, so up to about
# three queues' worth of sockets exist beyond the cap: kept small, and reserved for.
BACKLOG = 64
IN_FLIGHT = 3 * BACKLOG
# Descriptors kept for everything else: Redis, inotify, the jar, yt-dlp's pipes, log files.
FD_RESERVE = 32 + IN_FLIGHT
MIN_CONNECTIONS = 8
WARN_EVERY = 60.0

log = logging.getLogger("cookie_supervisor.http")
# uvicorn warns once per malformed request or refused upgrade: a fuzzer or a flood would flood
# the log. Its errors (an exception in the app) still show.
_uvicorn_log = logging.getLogger("cookie_supervisor.http.uvicorn")
_uvicorn_log.setLevel(logging.ERROR)


class _AcceptErrors(logging.Filter):
    """asyncio logs EMFILE on accept() with a traceback once per queued connection, every tick:
    should the descriptors run out anyway, one line a minute says so."""

    last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("socket.accept() out of system resource"):
            return True
        now = time.monotonic()
        if now - self.last < WARN_EVERY:
            return False
        self.last = now
        error = record.exc_info[1] if record.exc_info else None
        record.msg, record.args, record.exc_info, record.exc_text = (
            "socket.accept() out of system resource: %s (repeats hidden for %ds)",
            (error, WARN_EVERY),
            None,
            None,
        )
        return True


logging.getLogger("asyncio").addFilter(_AcceptErrors())


def connection_cap(limit: int, nofile: int | None = None) -> int:
    """`limit`, lowered to keep FD_RESERVE descriptors free under the soft RLIMIT_NOFILE, so
    accept() does not meet EMFILE (where asyncio logs once per queued connection, every tick)."""
    soft = nofile if nofile is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return limit
    return min(limit, max(MIN_CONNECTIONS, soft - FD_RESERVE))


def protocol(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """The protocol class for uvicorn.Config(http=...), with its two bounds."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )


class GuardedH11Protocol(H11Protocol):
    header_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 256
    _evicted: ClassVar[int] = 0
    _warned_at: ClassVar[float] = float("-inf")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _uvicorn_log
        self.idle_since = 0.0
        self.deadline = math.inf  # when a request must have arrived whole

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request()
        self._keep_sweeping()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        try:
            super().handle_events()
        except (UnicodeDecodeError, ValueError):  # a request line h11 let through, uvicorn can't
            self.send_400_response("malformed request line")  # the message is not sent

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_request()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 refuses, as JSON like every other error."""
        if self.cycle is not None and not self.cycle.response_complete:
            # The request's headers had reached the app (a bad chunk came later): it must not
            # answer a second time on a connection that already has its answer.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        body = json.dumps({"success": False, "error": "malformed HTTP request"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            for event in (
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:
            pass  # an answer had already begun: closing is all that is left
        self.transport.close()

    # --- bounds --------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No request is being served: waiting for one, or for the rest of its headers."""
        return self.cycle is None or self.cycle.response_complete

    def _await_request(self) -> None:
        # A deadline to compare, not a timer per request: arming and cancelling a TimerHandle
        # on every answer left the loop's heap full of cancelled ones under a trigger storm
        # (~17 us a request, measured with tests/benchmarks/bench_trigger.py).
        self.idle_since = time.monotonic()
        self.deadline = self.idle_since + self.header_timeout

    def _disarm(self) -> None:
        self.deadline = math.inf

    def _keep_sweeping(self) -> None:
        """One sweeper per server closes what is overdue, a quarter timeout late at most."""
        state, loop, every = self.server_state, self.loop, self.header_timeout / 4
        if getattr(state, "cs_sweeping", False):
            return
        state.cs_sweeping = True  # type: ignore[attr-defined]

        def sweep() -> None:  # holds the server's state, not the connection that started it
            now = time.monotonic()
            for conn in list(state.connections):
                if isinstance(conn, GuardedH11Protocol) and conn.deadline <= now:
                    conn._request_overdue()
            if state.connections:
                loop.call_later(every, sweep)
            else:
                state.cs_sweeping = False  # type: ignore[attr-defined]

        loop.call_later(every, sweep)

    def _request_overdue(self) -> None:
        self.deadline = math.inf
        reading_body = (
            self.cycle is not None
            and not self.cycle.response_started
            and self.conn.their_state is h11.SEND_BODY
        )
        # A request being answered (a validation may take minutes) is never cut short.
        if (self.idle or reading_body) and not self.transport.is_closing():
            self.transport.close()

    def _make_room(self) -> None:
        idle = [c for c in self.connections if isinstance(c, GuardedH11Protocol) and c.idle]
        victim = min(idle, key=lambda c: c.idle_since, default=self)
        self.connections.discard(victim)  # counted out now, not when asyncio reports the close
        victim.transport.close()
        cls = GuardedH11Protocol
        cls._evicted += 1
        now = time.monotonic()
        if now - cls._warned_at >= WARN_EVERY:
            cls._warned_at = now
            log.warning(
                "HTTP connection limit %d reached: closing the longest-idle connections"
                " (%d so far)",
                self.max_connections,
                cls._evicted,
            )
