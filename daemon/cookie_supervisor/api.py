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
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.routing import Route

from cookie_supervisor import __version__, core, runbook
from cookie_supervisor.classify import clean_text, scrub_tree
from cookie_supervisor.metrics import Metrics
from cookie_supervisor.supervisor import Supervisor, TriggerOutcome, UnknownSource

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024
AUTH_LOG_EVERY = 60.0  # seconds between two log lines about refused tokens; the metric counts all
READS = "/api/cookies/"  # the GET routes under this prefix need the token off loopback
MAX_HEALTH_ANSWERS = 1024  # rendered health answers kept (per source and usability)
MAX_CLIENTS = 10_000  # rate-limit buckets kept; the least recently seen client is forgotten first
Handler = Callable[[Request], Awaitable[Response]]


class JSONResponse(_StarletteJSON):
    """Every JSON answer passes the one redaction: no cookie value, token or configured URL in
    any field, whichever code path filled it; lone surrogates become U+FFFD (they cannot be
    encoded, and a 500 would lose the answer)."""

    def render(self, content: Any) -> bytes:
        return super().render(scrub_tree(content))


# --- bodies and answers (the OpenAPI description is built from these) -------------------------


_HOT = frozenset({"/api/cookies/trigger-refresh", "/api/cookies/health", "/metrics"})


class TriggerRequest(BaseModel):
    """The backend's body, plus optional extras. Unknown keys are ignored for old clients; known
    ones are strict (`"force": "yes"` is refused, not read as true)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    source: str | None = None
    error: Annotated[str, StringConstraints(max_length=8000)] | None = None
    video_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    force: bool = False


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(_Answer):
    """Every error, whatever the route or the input."""

    success: bool
    error: str


class Health(_Answer):
    status: str


class Ready(_Answer):
    ready: bool
    redis_up: bool
    sources: list[str]


class CookiesStatus(_Answer):
    """The backend's keys; the daemon adds more (login cookies, validation, refresh state)."""

    success: bool
    source: str
    exists: bool
    configured: bool
    path: str
    size_bytes: int | None
    last_modified: float | None
    message: str


class CookieHealth(_Answer):
    """The health gate: 200 when the cookies are usable, else 503, both with this body.

    `reason` is null when healthy, else the file's problem (`missing_cookies`, `logged_out`…),
    the reason the last conclusive validation failed, or `not_inspected`; `since` is when this
    answer began (epoch seconds, as this process saw it; null before the first inspection)."""

    healthy: bool
    source: str
    reason: str | None
    since: float | None


class Sources(_Answer):
    success: bool
    sources: list[dict[str, Any]]


class QueueStatus(_Answer):
    """Bull's job counts (`status`), or `error` with `redis_up: false`."""

    success: bool
    queue: str
    redis_up: bool
    status: dict[str, int] | None = None
    error: str | None = None


class TriggerAnswer(_Answer):
    """`reason` echoes the request's; `classified_as` is what the daemon made of it (the
    `reason` of metrics, job data and webhooks). `triggered`: a job was made, is pending or is
    owed (Redis down) — not when a cooldown or backoff holds the request (`retry_after`)."""

    success: bool
    message: str
    reason: str
    classified_as: str
    triggered: bool
    state: str
    source: str
    job_id: str | None
    coalesced: bool
    forced: bool
    retry_after: float | None = None


class ValidateAnswer(_Answer):
    success: bool
    source: str
    ok: bool
    reason: str | None


# --- the rate limiter ---------------------------------------------------------------------------


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


# --- routes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One route and its description: every status it can answer, and with what."""

    path: str
    method: str
    handler: Handler
    summary: str
    responses: dict[int, type[BaseModel] | str]  # a model, or a media type for non-JSON
    guarded: bool = False
    source_query: bool = False
    body: type[BaseModel] | None = None
    read_guarded: bool = False  # a GET that needs the token (off loopback)


_GUARD = {401: Error, 429: Error}
_SOURCE = {404: Error}


@dataclass
class Api:
    supervisor: Supervisor
    metrics: Metrics
    ready: Callable[[], bool]
    token: str | None
    limiter: RateLimiter
    # Off loopback the cookie reads need the token too (`build` decides from the listener).
    guard_reads: bool = False
    endpoints: list[Endpoint] = field(init=False)
    auth_failures: AuthFailures = field(init=False)
    _health_answers: dict[tuple[str, core.Usable], bytes] = field(init=False, default_factory=dict)

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
        name = name or next(iter(self.supervisor.sources))
        if name not in self.supervisor.sources:
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
            for e in sorted(self.endpoints, key=lambda e: e.path not in _HOT)
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
            "redis_up": self.supervisor.redis_up,
            "sources": list(self.supervisor.sources),
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def cookies_status(self, request: Request) -> Response:
        source = self.source_of(request.query_params.get("source"))
        return JSONResponse({"success": True, **self.supervisor.status(source)})

    async def cookie_health(self, request: Request) -> Response:
        """From the core's state only: no file, Redis or network I/O, so it is cheap to poll."""
        name, u = self.supervisor.usable(request.query_params.get("source"))
        # The answer changes only when a source's usability does: rendered (and redacted) once.
        rendered = self._health_answers.get((name, u))
        if rendered is None:
            if len(self._health_answers) >= MAX_HEALTH_ANSWERS:
                self._health_answers.clear()
            body = {"healthy": u.ok, "source": name, "reason": u.reason, "since": u.since}
            rendered = self._health_answers[(name, u)] = bytes(JSONResponse(body).body)
        return Response(rendered, 200 if u.ok else 503, media_type="application/json")

    async def sources(self, request: Request) -> Response:
        states = [self.supervisor.status(name) for name in self.supervisor.sources]
        return JSONResponse({"success": True, "sources": states})

    async def queue_status(self, request: Request) -> Response:
        queue = self.supervisor.settings.queue
        counts = await self.supervisor.queue_counts()
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
        raw = await _json_body(request)
        body = TriggerRequest.model_validate(raw)
        outcome = await self.supervisor.request(
            self.source_of(body.source),
            body.reason,
            origin="api",
            error=body.error,
            video_id=body.video_id,
            force=body.force,
        )
        return JSONResponse(_trigger_answer(outcome, raw["reason"]))

    async def validate(self, request: Request) -> Response:
        source = self.source_of(request.query_params.get("source"))
        result = await self.supervisor.validate(source, "api")
        return JSONResponse({"success": True, "source": source, **result.as_dict()})


def build(
    supervisor: Supervisor,
    metrics: Metrics,
    ready: Callable[[], bool],
    token: str | None,
    rate_limit: int,
    guard_reads: bool = False,
) -> Starlette:
    """`guard_reads`: the listener is reachable from other hosts, so the cookie reads need the
    token too (the daemon passes `not is_loopback(listen)`)."""
    api = Api(supervisor, metrics, ready, token, RateLimiter(rate_limit), guard_reads)
    for e in api.endpoints:  # every series from the start, so `increase()` sees the first one
        if (e.guarded or e.read_guarded) and token is not None:
            for why in ("missing", "wrong"):
                metrics.http_auth_failures_total.touch(e.path, why)
    handlers = {
        HTTPException: _http_error,
        ValidationError: _invalid_body,
        UnknownSource: _unknown_source,
        _BodyError: _body_error,
        Exception: _server_error,
    }
    app = Starlette(routes=api.routes(), exception_handlers=handlers)
    # Starlette's trailing-slash redirect builds its Location from the client's Host header.
    app.router.redirect_slashes = False
    return app


# --- the OpenAPI description ----------------------------------------------------------------


def openapi(endpoints: list[Endpoint], token: bool) -> dict[str, Any]:
    """OpenAPI 3.1 for `endpoints`: bodies and answers from the pydantic models above."""
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    paths: dict[str, Any] = {}
    for e in endpoints:
        op: dict[str, Any] = {"summary": e.summary, "responses": {}}
        for status, answer in sorted(e.responses.items()):
            op["responses"][str(status)] = {
                "description": _STATUS_TEXT[status],
                "content": _content(answer, ref),
            }
        if e.source_query:
            op["parameters"] = [
                {
                    "name": "source",
                    "in": "query",
                    "required": False,
                    "description": "a configured source's name; default: the first",
                    "schema": {"type": "string"},
                }
            ]
        if e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(e.body)}},
            }
        if (e.guarded or e.read_guarded) and token:
            op["security"] = [{"bearer": []}]
        paths.setdefault(e.path, {})[e.method.lower()] = op
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "cookie-supervisor",
            "version": __version__,
            "description": (
                "Every error is JSON (`Error`). Any other path answers 404, any other method"
                " 405 (with `Allow`), a request HTTP cannot parse 400."
            ),
        },
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }
    if token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc


def _content(answer: type[BaseModel] | str, ref: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    if isinstance(answer, str):
        media = {"json": "application/json", "text/plain": "text/plain"}.get(answer, answer)
        schema: dict[str, Any] = {"type": "object"} if answer == "json" else {"type": "string"}
        return {media: {"schema": schema}}
    return {"application/json": {"schema": ref(answer)}}


_STATUS_TEXT = {
    200: "OK",
    401: "missing or wrong bearer token",
    404: "unknown source",
    413: f"body larger than {MAX_BODY} bytes",
    422: "body is not the expected JSON object",
    429: "rate limit exceeded (see Retry-After)",
    503: "not ready / Redis unavailable / cookies not usable",
}


# --- request bodies and answers --------------------------------------------------------------


class _BodyError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


async def _json_body(request: Request) -> Any:
    """The body as JSON, whatever the content type says (backends send what they send); every
    way it can be wrong is a 4xx with a reason."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _BodyError(413, f"body larger than {MAX_BODY} bytes")
    # Read in chunks and stop at the limit: a chunked body has no Content-Length to refuse early.
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise _BodyError(413, f"body larger than {MAX_BODY} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise _BodyError(400, "client disconnected") from None
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BodyError(422, f"body is not UTF-8 (byte {exc.start})") from None
    try:
        body = json.loads(text or "null")
    except json.JSONDecodeError as exc:
        raise _BodyError(422, f"malformed JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise _BodyError(422, "malformed JSON: nested too deeply") from None
    except ValueError:  # an integer longer than Python's int-from-text limit
        raise _BodyError(422, "malformed JSON: a number too long") from None
    if not isinstance(body, dict):
        raise _BodyError(422, "body must be a JSON object")
    return _clean(body)


def _clean(value: Any) -> Any:
    """JSON's `\\ud800` escapes decode to lone surrogates, which no UTF-8 encoder (nor pydantic)
    takes: such a report is sanitised (U+FFFD), not refused — the rest of its text is evidence."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _trigger_answer(o: TriggerOutcome, sent: str) -> dict[str, Any]:
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
        answer["retry_after"] = round(o.retry_after, 1)
    return answer


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
    assert isinstance(exc, _BodyError)
    return _error(exc.status, exc.detail)


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error(500, "internal error")  # the traceback goes to the log, never to the client
