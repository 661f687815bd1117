"""HTTP: metrics, health, and the `/api/cookies/*` routes the download backend already speaks.

The three seed routes keep their paths and JSON shapes; everything added is extra keys.
Every error is JSON with a reason, and no answer ever carries a cookie value or the token.
"""

from __future__ import annotations

import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cookie_supervisor.metrics import Metrics
from cookie_supervisor.supervisor import Supervisor, TriggerOutcome, UnknownSource

MAX_BODY = 16 * 1024
Handler = Callable[[Request], Awaitable[Response]]


class TriggerRequest(BaseModel):
    """The seed backend's body, plus optional extras. Unknown keys are ignored for old clients."""

    model_config = ConfigDict(extra="ignore")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    source: Annotated[str, StringConstraints(max_length=64)] | None = None
    error: Annotated[str, StringConstraints(max_length=8000)] | None = None
    video_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    force: bool = False


class RateLimiter:
    """A token bucket per client: `per_minute` requests, refilled continuously."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float:
        """0 when allowed, else seconds until a request would be."""
        if self.capacity <= 0:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if len(self._buckets) > 10_000:  # forget idle clients rather than grow without end
            self._buckets.clear()
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1 - tokens) / self.rate


@dataclass
class Api:
    supervisor: Supervisor
    metrics: Metrics
    ready: Callable[[], bool]
    token: str | None
    limiter: RateLimiter

    # --- plumbing ------------------------------------------------------------------------------

    def guarded(self, handler: Handler) -> Handler:
        """Token, rate limit: the checks every state-changing route shares."""

        async def guarded_handler(request: Request) -> Response:
            if self.token is not None and not _bearer_ok(request, self.token):
                return _error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
            wait = self.limiter.take(request.client.host if request.client else "?")
            if wait:
                headers = {"Retry-After": str(math.ceil(wait))}
                return _error(429, "rate limit exceeded", headers)
            return await handler(request)

        return guarded_handler

    def source_of(self, request: Request, name: str | None = None, status: int = 404) -> str:
        """The named source, or the first configured one; an unknown name is the client's error."""
        name = name or request.query_params.get("source") or next(iter(self.supervisor.sources))
        if name not in self.supervisor.sources:
            raise _BodyError(status, f"unknown source {name[:64]!r}")
        return name

    # --- routes --------------------------------------------------------------------------------

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
        return JSONResponse({"success": True, **self.supervisor.status(self.source_of(request))})

    async def sources(self, request: Request) -> Response:
        states = [self.supervisor.status(name) for name in self.supervisor.sources]
        return JSONResponse({"success": True, "sources": states})

    async def queue_status(self, request: Request) -> Response:
        queue = self.supervisor.settings.queue
        try:
            counts = (await self.supervisor.queue.counts()).as_dict()
        except RedisError:
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
        body = TriggerRequest.model_validate(await _json_body(request))
        source = self.source_of(request, body.source, status=422)
        outcome = await self.supervisor.request(
            source,
            body.reason,
            origin="api",
            error=body.error,
            video_id=body.video_id,
            force=body.force,
        )
        return JSONResponse(_trigger_answer(outcome))

    async def validate(self, request: Request) -> Response:
        source = self.source_of(request)
        result = await self.supervisor.validate(source, "api")
        return JSONResponse({"success": True, "source": source, **result.as_dict()})


def build(
    supervisor: Supervisor,
    metrics: Metrics,
    ready: Callable[[], bool],
    token: str | None,
    rate_limit: int,
) -> Starlette:
    api = Api(supervisor, metrics, ready, token, RateLimiter(rate_limit))
    routes = [
        Route("/metrics", api.metrics_route),
        Route("/healthz", api.healthz),
        Route("/readyz", api.readyz),
        Route("/api/cookies/cookies-status", api.cookies_status),
        Route("/api/cookies/sources", api.sources),
        Route("/api/cookies/queue-status", api.queue_status),
        Route("/api/cookies/trigger-refresh", api.guarded(api.trigger_refresh), methods=["POST"]),
        Route("/api/cookies/validate", api.guarded(api.validate), methods=["POST"]),
    ]
    handlers = {
        HTTPException: _http_error,
        ValidationError: _invalid_body,
        UnknownSource: _unknown_source,
        404: _not_found,
        405: _not_allowed,
        _BodyError: _body_error,
    }
    return Starlette(routes=routes, exception_handlers=handlers)


# --- request bodies and answers --------------------------------------------------------------


class _BodyError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


async def _json_body(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise _BodyError(413, f"body larger than {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _BodyError(413, f"body larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    try:
        body = json.loads((b"".join(chunks) or b"null").decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise _BodyError(422, f"malformed JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(body, dict):
        raise _BodyError(422, "body must be a JSON object")
    return body


def _trigger_answer(o: TriggerOutcome) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "success": True,
        "message": o.message,
        "reason": o.reason.value,
        "triggered": o.triggered,
        "state": o.state,
        "source": o.source,
        "job_id": o.job_id,
        "coalesced": o.state == "coalesced",
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
    return _error(exc.status_code, exc.detail, dict(exc.headers or {}))


async def _invalid_body(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    err = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or "body"
    return _error(422, f"{field}: {err['msg']}")


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, f"no route {request.url.path[:100]}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _error(405, f"{request.method} not allowed on {request.url.path[:100]}")


async def _unknown_source(request: Request, exc: Exception) -> Response:
    return _error(404, f"unknown source {str(exc)[:64]}")


async def _body_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _BodyError)
    return _error(exc.status, exc.detail)
