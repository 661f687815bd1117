"""The routes in-process, on Starlette's TestClient, against a fake runtime: every route, every
status the API description documents, bad bodies refused with a reason, the health gate, the
token and the rate limit. No daemon, Redis or socket: the routes depend only on `routes.Runtime`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pytest

from cookie_supervisor.classify import Reason
from cookie_supervisor.metrics import Metrics
from cookie_supervisor.model import Usable
from cookie_supervisor.web import limits, routes

with warnings.catch_warnings():
    # starlette 1.x would rather drive its TestClient with httpx2; httpx (installed) still does
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

TOKEN = "s3cret-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRIGGER = "/api/cookies/trigger-refresh"
VALIDATE = "/api/cookies/validate"
HEALTH = "/api/cookies/health"


@dataclass(frozen=True)
class Outcome:
    state: str
    source: str
    reason: Reason
    message: str
    job_id: str | None = None
    retry_after: float | None = None
    forced: bool = False

    @property
    def triggered(self) -> bool:
        return self.state in ("enqueued", "coalesced", "deferred")


@dataclass(frozen=True)
class Result:
    ok: bool
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason}


@dataclass
class FakeRuntime:
    """`routes.Runtime` with answers a test sets, and the calls it received."""

    names: tuple[str, ...] = ("main", "alt")
    redis_up: bool = True
    counts: dict[str, int] | None = field(
        default_factory=lambda: {"waiting": 1, "active": 0, "completed": 3, "failed": 1}
    )
    health: dict[str, Usable] = field(
        default_factory=lambda: {"main": Usable(None, 10.0), "alt": Usable(None, 20.0)}
    )
    outcome: Outcome = Outcome("enqueued", "main", Reason.BOT_DETECTION, "made", "7")
    result: Result = Result(True, None)
    requests: list[dict[str, Any]] = field(default_factory=list)
    validations: list[tuple[str, str]] = field(default_factory=list)
    broken: bool = False  # status() raises: the 500 path

    @property
    def sources(self) -> tuple[str, ...]:
        return self.names

    def status(self, source: str) -> dict[str, Any]:
        assert source in self.names, "the routes pass only known names"
        if self.broken:
            raise RuntimeError("SID=leaked-in-a-traceback")
        return {
            "source": source,
            "configured": True,
            "path": f"/jars/{source}.txt",
            "exists": True,
            "size_bytes": 100,
            "last_modified": 1.0,
            "message": "Cookies file found",
        }

    def usable(self, name: str | None) -> tuple[str, Usable]:
        if name is None:  # the fake's worst: the first unusable, else the first
            bad = [n for n in self.names if not self.health[n].ok]
            name = (bad or list(self.names))[0]
        assert name in self.names, "the routes pass only known names"
        return name, self.health[name]

    async def queue_counts(self) -> dict[str, int] | None:
        return self.counts

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
        assert source in self.names, "the routes pass only known names"
        self.requests.append(
            {
                "source": source,
                "reason": reason_text,
                "origin": origin,
                "error": error,
                "video_id": video_id,
                "force": force,
            }
        )
        return replace(self.outcome, source=source)

    async def validate(self, source: str, trigger: Literal["api"]) -> Result:
        self.validations.append((source, trigger))
        return self.result


def _typed(runtime: FakeRuntime) -> routes.Runtime:
    return runtime  # the fake stands where the Supervisor stands: it has what the routes use


@dataclass
class Rig:
    runtime: FakeRuntime
    metrics: Metrics
    client: TestClient
    ready: list[bool]


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from _rig()


def _rig(token: str | None = None, rate_limit: int = 0, guard_reads: bool = False) -> Iterator[Rig]:
    runtime, metrics, ready = FakeRuntime(), Metrics(), [True]
    app = routes.build(
        _typed(runtime),
        metrics,
        lambda: ready[0],
        token,
        rate_limit,
        queue="cookie-refresh",
        guard_reads=guard_reads,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Rig(runtime, metrics, client, ready)


def _error(response: Any, status: int) -> str:
    """The error's reason, after checking the error shape every error has."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["success"] is False and set(body) == {"success", "error"}
    assert body["error"]
    return str(body["error"])


# --- every route --------------------------------------------------------------------------


def test_open_routes(rig: Rig) -> None:
    c = rig.client
    landing = c.get("/")
    assert landing.status_code == 200 and "text/html" in landing.headers["content-type"]
    assert f'<a href="{HEALTH}">' in landing.text and TRIGGER in landing.text
    doc = c.get("/openapi.json").json()
    assert set(doc["paths"]) >= {TRIGGER, VALIDATE, HEALTH, "/metrics"}
    metrics = c.get("/metrics")
    assert metrics.status_code == 200 and "cookie_supervisor_" in metrics.text
    assert c.get("/healthz").json() == {"status": "ok"}
    assert "text/html" in c.get("/runbook").headers["content-type"]


def test_readyz_answers_the_readiness_and_what_it_watches(rig: Rig) -> None:
    ready = rig.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "redis_up": True, "sources": ["main", "alt"]}
    rig.ready[0], rig.runtime.redis_up = False, False
    waiting = rig.client.get("/readyz")
    assert waiting.status_code == 503
    assert waiting.json() == {"ready": False, "redis_up": False, "sources": ["main", "alt"]}


def test_cookies_status_the_default_source_a_named_one_and_an_unknown_one(rig: Rig) -> None:
    first = rig.client.get("/api/cookies/cookies-status").json()
    assert first["success"] is True and first["source"] == "main"
    assert first["path"] == "/jars/main.txt" and first["message"] == "Cookies file found"
    assert rig.client.get("/api/cookies/cookies-status?source=alt").json()["source"] == "alt"
    reason = _error(rig.client.get("/api/cookies/cookies-status?source=nope"), 404)
    assert reason == "unknown source 'nope'"


def test_sources_lists_every_source_in_order(rig: Rig) -> None:
    body = rig.client.get("/api/cookies/sources").json()
    assert body["success"] is True
    assert [s["source"] for s in body["sources"]] == ["main", "alt"]


def test_queue_status_counts_or_says_redis_is_unavailable(rig: Rig) -> None:
    ok = rig.client.get("/api/cookies/queue-status")
    assert ok.status_code == 200
    assert ok.json() == {
        "success": True,
        "queue": "cookie-refresh",
        "redis_up": True,
        "status": {"waiting": 1, "active": 0, "completed": 3, "failed": 1, "total": 5},
    }
    rig.runtime.counts = None
    down = rig.client.get("/api/cookies/queue-status")
    assert down.status_code == 503
    assert down.json() == {
        "success": False,
        "queue": "cookie-refresh",
        "redis_up": False,
        "error": "redis unavailable",
    }


def test_trigger_passes_the_body_on_and_answers_the_outcome(rig: Rig) -> None:
    body = {"reason": " bot_detection ", "error": "Sign in", "video_id": "abc_-1", "force": True}
    answer = rig.client.post(TRIGGER, json={**body, "source": "alt", "extra": 1})
    assert answer.status_code == 200
    assert rig.runtime.requests == [
        {
            "source": "alt",
            "reason": "bot_detection",  # stripped
            "origin": "api",
            "error": "Sign in",
            "video_id": "abc_-1",
            "force": True,
        }
    ]
    assert answer.json() == {
        "success": True,
        "message": "made",
        "reason": " bot_detection ",  # the request's, as sent
        "classified_as": "bot_detection",
        "triggered": True,
        "state": "enqueued",
        "source": "alt",
        "job_id": "7",
        "coalesced": False,
        "forced": False,
    }


def test_trigger_answers_coalesced_held_and_forced_outcomes(rig: Rig) -> None:
    rig.runtime.outcome = Outcome("coalesced", "main", Reason.MANUAL, "pending", "7")
    coalesced = rig.client.post(TRIGGER, json={"reason": "manual"}).json()
    assert coalesced["coalesced"] is True and coalesced["triggered"] is True
    assert "retry_after" not in coalesced
    rig.runtime.outcome = Outcome("cooldown", "main", Reason.MANUAL, "wait", retry_after=12.345)
    held = rig.client.post(TRIGGER, json={"reason": "manual"}).json()
    assert held["triggered"] is False and held["retry_after"] == 12.3
    assert held["job_id"] is None and held["state"] == "cooldown"
    rig.runtime.outcome = Outcome("enqueued", "main", Reason.MANUAL, "made", "8", forced=True)
    assert rig.client.post(TRIGGER, json={"reason": "manual"}).json()["forced"] is True


def test_trigger_answers_follow_each_request_and_outcome(rig: Rig) -> None:
    """The same body twice answers the same; any difference in the request or the outcome
    shows (answers may be remembered, never mixed up)."""
    first = rig.client.post(TRIGGER, json={"reason": "one"}).json()
    assert rig.client.post(TRIGGER, json={"reason": "one"}).json() == first
    assert rig.client.post(TRIGGER, json={"reason": "two"}).json()["reason"] == "two"
    rig.runtime.outcome = replace(rig.runtime.outcome, job_id="8")
    assert rig.client.post(TRIGGER, json={"reason": "one"}).json()["job_id"] == "8"
    assert rig.client.post(TRIGGER, json={"reason": "one", "source": "alt"}).json()["source"] == (
        "alt"
    )


def test_a_reason_echoed_from_the_body_is_redacted(rig: Rig) -> None:
    for _ in range(2):  # the first answer and any remembered one alike
        answer = rig.client.post(TRIGGER, json={"reason": "SAPISID=AbCdEf123456/xyz"})
        assert answer.status_code == 200
        assert "AbCdEf123456" not in answer.text
        assert answer.json()["reason"] == "SAPISID=[redacted]"
    assert rig.runtime.requests[0]["reason"] == "SAPISID=AbCdEf123456/xyz"  # the core's to judge


def test_trigger_to_an_unknown_source_is_a_404_and_asks_nothing(rig: Rig) -> None:
    reason = _error(rig.client.post(TRIGGER, json={"reason": "manual", "source": "x"}), 404)
    assert reason == "unknown source 'x'"
    assert rig.runtime.requests == []


def test_validate_runs_one_validation(rig: Rig) -> None:
    answer = rig.client.post(f"{VALIDATE}?source=alt")
    assert answer.json() == {"success": True, "source": "alt", "ok": True, "reason": None}
    rig.runtime.result = Result(False, "logged_out")
    failed = rig.client.post(VALIDATE).json()
    assert failed == {"success": True, "source": "main", "ok": False, "reason": "logged_out"}
    assert rig.runtime.validations == [("alt", "api"), ("main", "api")]
    assert _error(rig.client.post(f"{VALIDATE}?source=x"), 404) == "unknown source 'x'"
    assert len(rig.runtime.validations) == 2


# --- bad bodies ---------------------------------------------------------------------------

BAD_BODIES = [
    (b"{", 422, "malformed JSON: Expecting property name enclosed in double quotes at position 1"),
    (b"[1]", 422, "body must be a JSON object"),
    (b"", 422, "body must be a JSON object"),
    (b'"reason"', 422, "body must be a JSON object"),
    (b"\xff{}", 422, "body is not UTF-8 (byte 0)"),
    (b"[" * 5000 + b"]" * 5000, 422, "malformed JSON: nested too deeply"),
    (b'{"reason": 1' + b"0" * 5000 + b"}", 422, "malformed JSON: a number too long"),
    (b"{}", 422, "reason: Field required"),
    (b'{"reason": "   "}', 422, "reason: String should have at least 1 character"),
    (b'{"reason": 5}', 422, "reason: Input should be a valid string"),
    (b'{"reason": "x", "force": "yes"}', 422, "force: Input should be a valid boolean"),
    (b'{"reason": "x", "video_id": "a b"}', 422, "video_id: String should match pattern"),
    (json.dumps({"reason": "x" * 201}).encode(), 422, "reason: String should have at most 200"),
    (json.dumps({"reason": "x", "pad": "y" * limits.MAX_BODY}).encode(), 413, "body larger"),
]


@pytest.mark.parametrize(("body", "status", "reason"), BAD_BODIES)
def test_a_bad_body_is_refused_with_its_reason(
    rig: Rig, body: bytes, status: int, reason: str
) -> None:
    answer = rig.client.post(TRIGGER, content=body, headers={"Content-Type": "text/plain"})
    assert _error(answer, status).startswith(reason)
    assert rig.runtime.requests == []


def test_a_remembered_body_is_passed_on_as_the_first_and_a_refused_one_is_refused_again(
    rig: Rig,
) -> None:
    """Bodies are parsed and validated once per distinct bytes: the runtime sees the same
    request each time, a refused body is never remembered, and the memo stays bounded."""
    body = b'{"reason": " bot_detection ", "error": "Sign in", "force": true}'
    answers = [rig.client.post(TRIGGER, content=body).json() for _ in range(3)]
    assert answers[0]["reason"] == " bot_detection " and answers == answers[:1] * 3
    assert rig.runtime.requests == rig.runtime.requests[:1] * 3
    assert rig.runtime.requests[0]["reason"] == "bot_detection" and rig.runtime.requests[0]["force"]
    for _ in range(2):
        bad = rig.client.post(TRIGGER, content=b'{"reason": "x", "force": "yes"}')
        assert _error(bad, 422).startswith("force: Input should be a valid boolean")
    assert len(rig.runtime.requests) == 3
    for i in range(routes.MAX_BODIES + 5):
        assert rig.client.post(TRIGGER, json={"reason": f"r{i}"}).json()["reason"] == f"r{i}"
    assert rig.runtime.requests[-1]["reason"] == f"r{routes.MAX_BODIES + 4}"
    api_bodies = [
        len(cell.cell_contents._trigger_bodies)
        for route in rig.client.app.routes  # type: ignore[attr-defined]
        if route.path == TRIGGER
        for cell in route.endpoint.__closure__ or ()
        if hasattr(cell.cell_contents, "_trigger_bodies")
    ]
    assert api_bodies and 0 < api_bodies[0] <= routes.MAX_BODIES


def test_a_chunked_body_over_the_limit_is_refused_while_read(rig: Rig) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: only counting can stop it
        yield b'{"reason": "x", "pad": "'
        for _ in range(limits.MAX_BODY // 1024 + 1):
            yield b"y" * 1024
        yield b'"}'

    answer = rig.client.post(TRIGGER, content=chunks())
    assert _error(answer, 413) == f"body larger than {limits.MAX_BODY} bytes"


def test_lone_surrogates_are_replaced_not_refused(rig: Rig) -> None:
    answer = rig.client.post(TRIGGER, content=b'{"reason": "x\\ud800y", "error": "\\udfff"}')
    assert answer.status_code == 200
    assert answer.json()["reason"] == "x\ufffdy"
    assert rig.runtime.requests[0]["error"] == "\ufffd"


# --- the health gate ----------------------------------------------------------------------


def test_health_gate_200_when_usable_503_when_not_404_when_unknown(rig: Rig) -> None:
    ok = rig.client.get(HEALTH)
    assert ok.status_code == 200
    assert ok.json() == {"healthy": True, "source": "main", "reason": None, "since": 10.0}
    rig.runtime.health["alt"] = Usable("logged_out", 30.0)
    worst = rig.client.get(HEALTH)  # without a source, the worst decides
    assert worst.status_code == 503
    assert worst.json() == {
        "healthy": False,
        "source": "alt",
        "reason": "logged_out",
        "since": 30.0,
    }
    named = rig.client.get(f"{HEALTH}?source=main")
    assert named.status_code == 200 and named.json()["source"] == "main"
    assert _error(rig.client.get(f"{HEALTH}?source=x"), 404) == "unknown source 'x'"


def test_health_gate_follows_every_change_of_usability(rig: Rig) -> None:
    """Answers are rendered once per source and usability: a change must still show."""
    seen = []
    for u in (Usable(None, 1.0), Usable("expired", 2.0), Usable(None, 3.0), Usable(None, 1.0)):
        rig.runtime.health["main"] = u
        answer = rig.client.get(f"{HEALTH}?source=main")
        seen.append((answer.status_code, answer.json()["reason"], answer.json()["since"]))
    assert seen == [(200, None, 1.0), (503, "expired", 2.0), (200, None, 3.0), (200, None, 1.0)]


# --- errors of any route ------------------------------------------------------------------


def test_unknown_paths_and_methods_answer_json_with_a_reason(rig: Rig) -> None:
    assert _error(rig.client.get("/nope"), 404) == "no route /nope"
    assert _error(rig.client.get("/healthz/"), 404) == "no route /healthz/"  # no redirect
    wrong = rig.client.get(TRIGGER)
    assert _error(wrong, 405) == f"GET not allowed on {TRIGGER}"
    assert wrong.headers["allow"] == "POST"


def test_a_failing_runtime_is_a_500_that_says_nothing_more(rig: Rig) -> None:
    rig.runtime.broken = True
    answer = rig.client.get("/api/cookies/cookies-status")
    assert _error(answer, 500) == "internal error"
    assert "leaked" not in answer.text


# --- token and rate limit -----------------------------------------------------------------


def _auth_failures(metrics: Metrics, route: str, why: str) -> float:
    prefix = f'cookie_supervisor_http_auth_failures_total{{route="{route}",reason="{why}"}} '
    lines = [x for x in metrics.exposition().decode().splitlines() if x.startswith(prefix)]
    assert len(lines) == 1, prefix
    return float(lines[0].removeprefix(prefix))


def test_state_changing_routes_need_the_token() -> None:
    for rig in _rig(token=TOKEN):
        for path in (TRIGGER, VALIDATE):
            assert _auth_failures(rig.metrics, path, "missing") == 0  # every series from start
            missing = rig.client.post(path, json={"reason": "manual"})
            assert _error(missing, 401) == "missing or wrong bearer token"
            assert missing.headers["www-authenticate"] == "Bearer"
            wrong = rig.client.post(path, json={"reason": "manual"}, headers={"Authorization": "x"})
            assert _error(wrong, 401) == "missing or wrong bearer token"
            assert _auth_failures(rig.metrics, path, "missing") == 1
            assert _auth_failures(rig.metrics, path, "wrong") == 1
            right = rig.client.post(path, json={"reason": "manual"}, headers=AUTH)
            assert right.status_code == 200
        assert TOKEN not in rig.metrics.exposition().decode()
        # On loopback the reads stay open.
        assert rig.client.get("/api/cookies/sources").status_code == 200
        assert rig.runtime.requests and rig.runtime.validations


def test_off_loopback_the_cookie_reads_need_the_token_too() -> None:
    for rig in _rig(token=TOKEN, guard_reads=True):
        for path in ("/api/cookies/cookies-status", "/api/cookies/sources", HEALTH):
            assert _error(rig.client.get(path), 401) == "missing or wrong bearer token"
            assert rig.client.get(path, headers=AUTH).status_code == 200
        assert rig.client.get("/api/cookies/queue-status", headers=AUTH).status_code == 200
        for path in ("/metrics", "/healthz", "/readyz", "/runbook", "/", "/openapi.json"):
            assert rig.client.get(path).status_code == 200, path


def test_the_rate_limit_answers_429_with_retry_after() -> None:
    for rig in _rig(rate_limit=2):
        for _ in range(2):
            assert rig.client.post(TRIGGER, json={"reason": "manual"}).status_code == 200
        refused = rig.client.post(TRIGGER, json={"reason": "manual"})
        assert _error(refused, 429) == "rate limit exceeded"
        assert 1 <= int(refused.headers["retry-after"]) <= 30  # 2 a minute: one in <= 30 s
        assert len(rig.runtime.requests) == 2
        # The limit is per route kind, not on reads: they stay answered.
        assert rig.client.get("/api/cookies/sources").status_code == 200


def test_a_refused_token_costs_a_read_like_a_post_then_429_before_the_token() -> None:
    for rig in _rig(token=TOKEN, rate_limit=1, guard_reads=True):
        assert rig.client.get(HEALTH).status_code == 401  # the only request this minute
        limited = rig.client.get(HEALTH, headers=AUTH)  # even with the token: out of requests
        assert _error(limited, 429) == "rate limit exceeded"
        assert limited.headers["retry-after"]


# --- every documented status is reached ---------------------------------------------------


def _documented() -> set[tuple[str, str, int]]:
    runtime = FakeRuntime()
    api = routes.Api(runtime, Metrics(), lambda: True, TOKEN, limits.RateLimiter(0), "q", True)
    return {(e.method, e.path, s) for e in api.endpoints for s in e.responses}


def _reach_every_status() -> set[tuple[str, str, int]]:
    """One request for each status each route documents, on one token-guarded, off-loopback
    API allowing one request a minute per client; the answers seen, as (method, path, status).
    Each request comes from a client of its own, but for the last ones, which spend the limit."""
    seen: set[tuple[str, str, int]] = set()
    clients = (f"10.0.0.{n}" for n in range(1, 255))
    for rig in _rig(token=TOKEN, rate_limit=1, guard_reads=True):
        app, rt = rig.client.app, rig.runtime

        def ask(method: str, path: str, query: str = "", app: Any = app, **kw: Any) -> None:
            kw.setdefault("headers", AUTH)
            c = TestClient(app, client=(next(clients), 1), raise_server_exceptions=False)
            seen.add((method, path, c.request(method, path + query, **kw).status_code))

        for path in ("/", "/openapi.json", "/metrics", "/healthz", "/readyz", "/runbook"):
            ask("GET", path)
        rig.ready[0] = False
        ask("GET", "/readyz")
        for path in ("/api/cookies/cookies-status", HEALTH, "/api/cookies/sources"):
            ask("GET", path)
        ask("GET", "/api/cookies/cookies-status", "?source=x")
        ask("GET", HEALTH, "?source=x")
        rt.health["main"] = Usable("expired", 1.0)
        ask("GET", HEALTH)
        ask("GET", "/api/cookies/queue-status")
        rt.counts = None
        ask("GET", "/api/cookies/queue-status")
        ask("POST", TRIGGER, json={"reason": "manual"})
        ask("POST", TRIGGER, json={"reason": "manual", "source": "x"})
        ask("POST", TRIGGER, content=b"{")
        ask("POST", TRIGGER, content=b"{" + b" " * limits.MAX_BODY + b"}")
        ask("POST", VALIDATE)
        ask("POST", VALIDATE, "?source=x")
        guarded = [("GET", p) for p in ("/api/cookies/cookies-status", HEALTH)]
        guarded += [("GET", p) for p in ("/api/cookies/sources", "/api/cookies/queue-status")]
        guarded += [("POST", TRIGGER), ("POST", VALIDATE)]
        for method, path in guarded:
            c = TestClient(app, client=(next(clients), 1), raise_server_exceptions=False)
            for _ in range(2):  # no token: 401, which spends the one request; then 429
                seen.add((method, path, c.request(method, path).status_code))
    return seen


def test_every_documented_status_is_answered_and_nothing_undocumented() -> None:
    seen = _reach_every_status()
    assert seen == _documented()
