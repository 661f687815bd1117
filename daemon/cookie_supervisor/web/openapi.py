"""The API's description: the bodies and answers of every route (pydantic models), the table
row that names a route and what it answers (`Endpoint`), and the OpenAPI 3.1 document built from
them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.requests import Request
from starlette.responses import Response

from cookie_supervisor import __version__
from cookie_supervisor.web.limits import MAX_BODY

Handler = Callable[[Request], Awaitable[Response]]


# --- bodies and answers (the OpenAPI description is built from these) -------------------------


class TriggerRequest(BaseModel):
    """The backend's body, plus optional extras. Unknown keys are ignored for old clients; known
    ones are strict (`"force": "yes"` is refused, not read as true)."""

    # frozen: the routes remember validated bodies and hand the same one out again
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

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
