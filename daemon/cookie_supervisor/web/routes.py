"""HTTP: metrics, health, the `/api/cookies/*` routes the download backend already speaks, a landing
page and the OpenAPI description of all of it.

The backend's three routes keep their paths and JSON shapes; everything added is extra keys. One
table (`Api.endpoints`) gives both the routes and their description, so the two cannot drift.
Every error is JSON with a reason, whatever the input; no answer ever carries a cookie value or
the token. State-changing routes are rate limited per client *before* the token is checked, so
guessing the token is throttled too. On a listener other hosts can reach, the `/api/cookies/*`
reads need the token as well (the cookie routes are what the original integration asked to
secure first); `/metrics`, `/healthz`, `/readyz` and `/runbook` stay open for scrapers, probes and
alert mails. A refused token is counted and logged (at most one line a minute, never the token).
"""

from __future__ import annotations

import hmac
import html
import json
import math
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.routing import Route

from cookie_supervisor import __version__, model, runbook
from cookie_supervisor.classify import Reason, scrub_tree
from cookie_supervisor.metrics import Metrics
from cookie_supervisor.web.limits import (
    AuthFailures,
    BodyError,
    RateLimiter,
    parse_json,
    read_body,
)
from cookie_supervisor.web.openapi import (
    CookieHealth,
    CookiesStatus,
    Endpoint,
    Error,
    Handler,
    Health,
    QueueStatus,
    Ready,
    Sources,
    TriggerAnswer,
    TriggerRequest,
    ValidateAnswer,
    openapi,
)

READS = "/api/cookies/"  # the GET routes under this prefix need the token off loopback
MAX_ANSWERS = 1024  # rendered answers kept per route (health: per source and usability)
MAX_ECHO = 256  # longer reasons (whitespace padding) are answered without being remembered
MAX_BODIES = 1024  # trigger bodies remembered parsed and validated
MAX_REMEMBERED_BODY = 2048  # bytes; a longer body is parsed every time


# --- what the routes need from the runtime ----------------------------------------------------


class Outcome(Protocol):
    """What a refresh request came to (the runtime's answer to `request`)."""

    @property
    def state(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def reason(self) -> Reason: ...
    @property
    def message(self) -> str: ...
    @property
    def job_id(self) -> str | None: ...
    @property
    def retry_after(self) -> float | None: ...
    @property
    def forced(self) -> bool: ...
    @property
    def triggered(self) -> bool: ...


class Result(Protocol):
    """A validation's result, as the answer shows it."""

    def as_dict(self) -> dict[str, Any]: ...


class Runtime(Protocol):
    """Everything the routes need from the daemon's runtime, and nothing more: the API answers
    from these alone (the `Supervisor` is one; tests/test_routes.py drives the routes with a
    fake). Source names reach the runtime only once `Api.source_of` has found them configured."""

    @property
    def sources(self) -> Collection[str]:
        """The configured source names, in configuration order (the first is the default)."""
        ...

    @property
    def redis_up(self) -> bool: ...

    def status(self, source: str) -> dict[str, Any]:
        """One source's status view (cookies-status, sources)."""
        ...

    def usable(self, name: str | None) -> tuple[str, model.Usable]:
        """The health gate: the named source's usability, or without a name the worst one."""
        ...

    async def queue_counts(self) -> dict[str, int] | None:
        """Bull's job counts by state; None when Redis does not answer."""
        ...

    async def request(
        self,
        source: str,
        reason_text: str,
        *,
        origin: Literal["api"],
        error: str | None,
        video_id: str | None,
        force: bool,
    ) -> Outcome:
        """A refresh asked for in the backend's words."""
        ...

    async def validate(self, source: str, trigger: Literal["api"]) -> Result:
        """One validation now."""
        ...


class UnknownSource(LookupError):
    """A source name no configured source has: 404, wherever it was given."""


class JSONResponse(_StarletteJSON):
    """Every JSON answer passes the one redaction: no cookie value, token or configured URL in
    any field, whichever code path filled it; lone surrogates become U+FFFD (they cannot be
    encoded, and a 500 would lose the answer)."""

    def render(self, content: Any) -> bytes:
        return super().render(scrub_tree(content))


class Rendered:
    """JSON answers rendered (and so redacted) once per distinct content: a storm of identical
    requests pays one `scrub_tree` and one `json.dumps`, not one per request (on the trigger
    route they were a third of the daemon's own time per request). `key` must determine the
    content entirely. At most `size` are kept, then all are forgotten at once. Configured
    secrets are registered before the API is built (app.serve), so no answer is remembered
    from before a secret was known."""

    def __init__(self, size: int = MAX_ANSWERS) -> None:
        self.size = size
        self._answers: dict[Hashable, JSONResponse] = {}

    def get(self, key: Hashable, content: Callable[[], Any], status: int = 200) -> Response:
        first = self._answers.get(key)
        if first is None:
            if len(self._answers) >= self.size:
                self._answers.clear()
            first = self._answers[key] = JSONResponse(content())
        return _Again(first, status)


class _Again(Response):
    """A rendered answer sent again: its body and headers as they were (building the headers
    anew cost more than the rest of a remembered answer)."""

    def __init__(self, first: Response, status: int) -> None:
        self.status_code, self.body, self.background = status, first.body, None
        self.raw_headers = list(first.raw_headers)  # a copy: whoever sends it may add some


# The hot routes, tried first and in this order: Starlette matches routes one by one, and a
# trigger storm, a polled health gate or a scrape should not pay for matching the others.
_HOT = ("/api/cookies/trigger-refresh", "/api/cookies/health", "/metrics")

_GUARD = {401: Error, 429: Error}
_SOURCE = {404: Error}


@dataclass
class Api:
    runtime: Runtime
    metrics: Metrics
    ready: Callable[[], bool]
    token: str | None
    limiter: RateLimiter
    queue: str  # the Bull queue's name, for queue-status
    # Off loopback the cookie reads need the token too (`build` decides from the listener).
    guard_reads: bool = False
    endpoints: list[Endpoint] = field(init=False)
    auth_failures: AuthFailures = field(init=False)
    _health_answers: Rendered = field(init=False, default_factory=Rendered)
    _trigger_answers: Rendered = field(init=False, default_factory=Rendered)
    _trigger_bodies: dict[bytes, tuple[TriggerRequest, str]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        E = Endpoint
        self.endpoints = [
            E("/", "GET", self.landing, "this page: the routes", {200: "text/html"}),
            E("/openapi.json", "GET", self.openapi_route, "the API description", {200: "json"}),
            E("/metrics", "GET", self.metrics_route, "Prometheus metrics", {200: "text/plain"}),
            E("/healthz", "GET", self.healthz, "the process answers", {200: Health}),
            E("/readyz", "GET", self.readyz, "watching files", {200: Ready, 503: Ready}),
            E("/runbook", "GET", self.runbook_route, "the alerts' runbook", {200: "text/html"}),
            E(
                "/api/cookies/cookies-status",
                "GET",
                self.cookies_status,
                "one source's cookie file, validation and refresh state",
                {200: CookiesStatus, **_SOURCE},
                source_query=True,
            ),
            E(
                "/api/cookies/health",
                "GET",
                self.cookie_health,
                "are the cookies usable? 200 yes, 503 no; without source the worst one decides",
                {200: CookieHealth, 503: CookieHealth, **_SOURCE},
                source_query=True,
            ),
            E(
                "/api/cookies/sources",
                "GET",
                self.sources,
                "every source's state",
                {200: Sources},
            ),
            E(
                "/api/cookies/queue-status",
                "GET",
                self.queue_status,
                "the Bull queue's job counts",
                {200: QueueStatus, 503: QueueStatus},
            ),
            E(
                "/api/cookies/trigger-refresh",
                "POST",
                self.trigger_refresh,
                "ask for a cookie refresh (coalesced: at most one job per source)",
                {200: TriggerAnswer, **_SOURCE, 413: Error, 422: Error, **_GUARD},
                guarded=True,
                body=TriggerRequest,
            ),
            E(
                "/api/cookies/validate",
                "POST",
                self.validate,
                "run one validation now and answer its result",
                {200: ValidateAnswer, **_SOURCE, **_GUARD},
                guarded=True,
                source_query=True,
            ),
        ]
        if self.guard_reads and self.token is not None:
            # Every GET under /api/cookies/, whoever adds it: the rule is the prefix, not a list.
            self.endpoints = [
                replace(e, read_guarded=True, responses={**e.responses, **_GUARD})
                if e.method == "GET" and e.path.startswith(READS)
                else e
                for e in self.endpoints
            ]
        self.auth_failures = AuthFailures(self.metrics)
        self._openapi = json.dumps(openapi(self.endpoints, self.token is not None)).encode()

    # --- plumbing ------------------------------------------------------------------------------

    def guarded(self, handler: Handler) -> Handler:
        """Rate limit, then token: a failed authentication costs the client like any request."""

        async def guarded_handler(request: Request) -> Response:
            wait = self.limiter.take(request.client.host if request.client else "?")
            if wait:
                return _error(429, "rate limit exceeded", {"Retry-After": str(math.ceil(wait))})
            if self.token is not None and not _bearer_ok(request, self.token):
                return self._refused(request)
            return await handler(request)

        return guarded_handler

    def read_guarded(self, handler: Handler) -> Handler:
        """Token first, so reads with the token are never throttled; a refused token costs the
        client like a POST, and a client out of requests is refused before its token is looked
        at (else guessing would go on at full speed, only its answers delayed)."""

        async def read_guarded_handler(request: Request) -> Response:
            client = request.client.host if request.client else "?"
            if wait := self.limiter.waiting(client):
                return _error(429, "rate limit exceeded", {"Retry-After": str(math.ceil(wait))})
            if self.token is not None and not _bearer_ok(request, self.token):
                self.limiter.take(client)
                return self._refused(request)
            return await handler(request)

        return read_guarded_handler

    def _refused(self, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        sent = "authorization" in request.headers
        self.auth_failures.refused(request.url.path[:100], client, sent)
        return _error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

    def source_of(self, name: str | None) -> str:
        """The named source, or the first configured one. An unknown name is a 404 wherever it
        was given (query string or body): the thing asked about does not exist."""
        name = name or next(iter(self.runtime.sources))
        if name not in self.runtime.sources:
            raise UnknownSource(name)
        return name

    def routes(self) -> list[Route]:
        return [
            Route(
                e.path,
                self.guarded(e.handler)
                if e.guarded
                else self.read_guarded(e.handler)
                if e.read_guarded
                else e.handler,
                methods=[e.method],
                include_in_schema=False,
            )
            # the hot routes first: Starlette tries routes in order, and a trigger storm or a
            # scrape should not pay for matching every other path
            for e in sorted(self.endpoints, key=_hot_first)
        ]

    # --- routes --------------------------------------------------------------------------------

    async def landing(self, request: Request) -> Response:
        rows = "".join(
            f"<tr><td>{e.method}</td><td>"
            + (f'<a href="{e.path}">{e.path}</a>' if e.method == "GET" else e.path)
            + f"</td><td>{html.escape(e.summary)}</td></tr>"
            for e in self.endpoints
        )
        return HTMLResponse(
            f"<!doctype html><html><head><title>cookie-supervisor</title></head><body>"
            f"<h1>cookie-supervisor {html.escape(__version__)}</h1><table>{rows}</table>"
            f"</body></html>"
        )

    async def runbook_route(self, request: Request) -> Response:
        # Alert mails link here (`runbook_url`), so it needs no token, like /metrics.
        return Response(runbook.page(), media_type="text/html; charset=utf-8")

    async def openapi_route(self, request: Request) -> Response:
        return Response(self._openapi, media_type="application/json")

    async def metrics_route(self, request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        ready = self.ready()
        body = {
            "ready": ready,
            "redis_up": self.runtime.redis_up,
            "sources": list(self.runtime.sources),
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def cookies_status(self, request: Request) -> Response:
        source = self.source_of(request.query_params.get("source"))
        return JSONResponse({"success": True, **self.runtime.status(source)})

    async def cookie_health(self, request: Request) -> Response:
        """From the core's state only: no file, Redis or network I/O, so it is cheap to poll."""
        asked = request.query_params.get("source")
        name, u = self.runtime.usable(self.source_of(asked) if asked else None)
        # The answer changes only when a source's usability does: rendered (and redacted) once.
        body = {"healthy": u.ok, "source": name, "reason": u.reason, "since": u.since}
        return self._health_answers.get((name, u), lambda: body, 200 if u.ok else 503)

    async def sources(self, request: Request) -> Response:
        states = [self.runtime.status(name) for name in self.runtime.sources]
        return JSONResponse({"success": True, "sources": states})

    async def queue_status(self, request: Request) -> Response:
        queue = self.queue
        counts = await self.runtime.queue_counts()
        if counts is None:
            body = {
                "success": False,
                "queue": queue,
                "redis_up": False,
                "error": "redis unavailable",
            }
            return JSONResponse(body, status_code=503)
        status = {**counts, "total": sum(counts.values())}
        return JSONResponse({"success": True, "queue": queue, "status": status, "redis_up": True})

    async def trigger_refresh(self, request: Request) -> Response:
        body, sent = self._trigger_request(await read_body(request))
        o = await self.runtime.request(
            self.source_of(body.source),
            body.reason,
            origin="api",
            error=body.error,
            video_id=body.video_id,
            force=body.force,
        )
        if len(sent) > MAX_ECHO:
            return JSONResponse(_trigger_answer(o, sent))
        # Everything the answer says, so one key is one answer (`retry_after` as shown).
        shown = _shown(o.retry_after)
        key = (sent, o.message, o.reason, o.triggered, o.state, o.source, o.job_id, o.forced, shown)
        return self._trigger_answers.get(key, lambda: _trigger_answer(o, sent))

    def _trigger_request(self, data: bytes) -> tuple[TriggerRequest, str]:
        """The body validated, and its reason as sent (echoed in the answer). A pure function of
        the bytes, so a storm of identical triggers parses and validates them once (JSON,
        surrogates and pydantic were a quarter of the route's own time); a body refused is
        refused every time, never remembered. At most MAX_BODIES are kept, then all are
        forgotten at once."""
        known = self._trigger_bodies.get(data)
        if known is not None:
            return known
        raw = parse_json(data)
        known = TriggerRequest.model_validate(raw), raw["reason"]
        if len(data) <= MAX_REMEMBERED_BODY:
            if len(self._trigger_bodies) >= MAX_BODIES:
                self._trigger_bodies.clear()
            self._trigger_bodies[data] = known
        return known

    async def validate(self, request: Request) -> Response:
        source = self.source_of(request.query_params.get("source"))
        result = await self.runtime.validate(source, "api")
        return JSONResponse({"success": True, "source": source, **result.as_dict()})


def build(
    runtime: Runtime,
    metrics: Metrics,
    ready: Callable[[], bool],
    token: str | None,
    rate_limit: int,
    *,
    queue: str,
    guard_reads: bool = False,
) -> Starlette:
    """`guard_reads`: the listener is reachable from other hosts, so the cookie reads need the
    token too (the daemon passes `not is_loopback(listen)`)."""
    api = Api(runtime, metrics, ready, token, RateLimiter(rate_limit), queue, guard_reads)
    for e in api.endpoints:  # every series from the start, so `increase()` sees the first one
        if (e.guarded or e.read_guarded) and token is not None:
            for why in ("missing", "wrong"):
                metrics.http_auth_failures_total.touch(e.path, why)
    handlers = {
        HTTPException: _http_error,
        ValidationError: _invalid_body,
        UnknownSource: _unknown_source,
        BodyError: _body_error,
        Exception: _server_error,
    }
    app = Starlette(routes=api.routes(), exception_handlers=handlers)
    # Starlette's trailing-slash redirect builds its Location from the client's Host header.
    app.router.redirect_slashes = False
    return app


def _trigger_answer(o: Outcome, sent: str) -> dict[str, Any]:
    """The documented keys (`success`, `message`, `reason` as sent), then the daemon's own."""
    answer: dict[str, Any] = {
        "success": True,
        "message": o.message,
        "reason": sent,
        "classified_as": o.reason.value,
        "triggered": o.triggered,
        "state": o.state,
        "source": o.source,
        "job_id": o.job_id,
        "coalesced": o.state == "coalesced",
        "forced": o.forced,
    }
    if o.retry_after is not None:
        answer["retry_after"] = _shown(o.retry_after)
    return answer


def _shown(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _hot_first(e: Endpoint) -> int:
    return _HOT.index(e.path) if e.path in _HOT else len(_HOT)


def _bearer_ok(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "error": detail}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = {
        404: f"no route {request.url.path[:100]}",
        405: f"{request.method} not allowed on {request.url.path[:100]}",
    }.get(exc.status_code, exc.detail)
    return _error(exc.status_code, detail, dict(exc.headers or {}))


async def _invalid_body(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    err = exc.errors(include_url=False, include_input=False)[0]
    field_name = ".".join(str(p) for p in err["loc"]) or "body"
    return _error(422, f"{field_name}: {err['msg']}")


async def _unknown_source(request: Request, exc: Exception) -> Response:
    name = exc.args[0] if exc.args else ""
    return _error(404, f"unknown source {str(name)[:64]!r}")


async def _body_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyError)
    return _error(exc.status, exc.detail)


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error(500, "internal error")  # the traceback goes to the log, never to the client
