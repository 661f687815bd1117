"""What one client may cost the daemon: requests per minute (a token bucket per client), the size
and shape of a request body, and log lines about refused tokens (at most one a minute; the metric
counts every one)."""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from cookie_supervisor.classify import clean_text
from cookie_supervisor.metrics import Metrics

# The name this line has always been logged under: operators' log filters know it.
log = logging.getLogger("cookie_supervisor.api")
MAX_BODY = 16 * 1024
AUTH_LOG_EVERY = 60.0  # seconds between two log lines about refused tokens; the metric counts all
MAX_CLIENTS = 10_000  # rate-limit buckets kept; the least recently seen client is forgotten first


class RateLimiter:
    """A token bucket per client: `per_minute` requests, refilled continuously.

    At most `max_clients` buckets are kept, least recently used first out: clearing them all
    would free every throttled client at once.
    """

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when allowed, else seconds until a request would be."""
        if self.capacity <= 0:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self._buckets[client] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return 0.0 if allowed else (1 - tokens) / self.rate

    def waiting(self, client: str) -> float:
        """Like `take`, but takes nothing: seconds until `client` may be refused less."""
        if self.capacity <= 0 or client not in self._buckets:
            return 0.0
        tokens, last = self._buckets[client]
        tokens = min(self.capacity, tokens + (self.clock() - last) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass
class AuthFailures:
    """Requests refused for their bearer token: each counted in the metric; logged as one WARNING
    line when the first comes and then at most once every `every` seconds with how many came
    since, so a guessing client cannot flood the journal. The token is never logged, nor its
    length: only whether one was sent, the client and the route."""

    metrics: Metrics
    clock: Callable[[], float] = time.monotonic
    every: float = AUTH_LOG_EVERY
    unlogged: int = 0
    last_line: float | None = None

    def refused(self, route: str, client: str, sent: bool) -> None:
        why = "wrong" if sent else "missing"
        self.metrics.http_auth_failures_total.labels(route, why).inc()
        self.unlogged += 1
        now = self.clock()
        if self.last_line is not None and now - self.last_line < self.every:
            return
        log.warning(
            "refused %d request(s) for a missing or wrong bearer token since the last such line;"
            " the latest: %s token from %s on %s",
            self.unlogged,
            why,
            client,
            route,
            extra={"client": client, "route": route},
        )
        self.unlogged, self.last_line = 0, now


# --- request bodies ----------------------------------------------------------------------------


class BodyError(Exception):
    """A body the routes cannot read: answered `status` with `detail` as the reason."""

    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


async def json_body(request: Request) -> Any:
    """The body as JSON, whatever the content type says (backends send what they send); every
    way it can be wrong is a 4xx with a reason."""
    return parse_json(await read_body(request))


async def read_body(request: Request) -> bytes:
    """The body's bytes, at most MAX_BODY of them (else 413)."""
    declared = _content_length(request)
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise BodyError(413, f"body larger than {MAX_BODY} bytes")
    return await _read(request)


def parse_json(data: bytes) -> Any:
    """A body's bytes as a JSON object; every way they can be wrong is a 422 with a reason."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(422, f"body is not UTF-8 (byte {exc.start})") from None
    try:
        body = json.loads(text or "null")
    except json.JSONDecodeError as exc:
        raise BodyError(422, f"malformed JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise BodyError(422, "malformed JSON: nested too deeply") from None
    except ValueError:  # an integer longer than Python's int-from-text limit
        raise BodyError(422, "malformed JSON: a number too long") from None
    if not isinstance(body, dict):
        raise BodyError(422, "body must be a JSON object")
    # Strict UTF-8 decoding yields no surrogate: only a `\\u` escape can make one.
    return clean(body) if "\\u" in text else body


def _content_length(request: Request) -> bytes:
    """The declared Content-Length, as sent. Read from the ASGI scope, whose header names are
    lower case (ASGI spec): building `request.headers` to look one up cost ~2.6 us a request."""
    for name, value in request.scope["headers"]:
        if name == b"content-length":
            return bytes(value)
    return b""


async def _read(request: Request) -> bytes:
    """The body, read message by message from the server and refused once over the limit (a
    chunked body has no Content-Length to refuse early). Straight from `receive`, not through
    `request.stream()`: its async generator was a fifth of the trigger route's own time."""
    receive, chunks, size = request.receive, list[bytes](), 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyError(400, "client disconnected")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyError(413, f"body larger than {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def clean(value: Any) -> Any:
    """JSON's `\\ud800` escapes decode to lone surrogates, which no UTF-8 encoder (nor pydantic)
    takes: such a report is sanitised (U+FFFD), not refused — the rest of its text is evidence."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value
