"""The download backend's client: tell the daemon that a download failed.

Standard library only, so a backend imports it without the daemon's dependencies. It sits on the
backend's download path, so it never raises and never waits longer than `timeout` for the whole
exchange (connect, send, answer): a missing, slow or overloaded daemon costs a download at most
that, and a lost report costs nothing (the next failure reports again; coalescing absorbs repeats).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:9479"
ROUTE = "/api/cookies/trigger-refresh"
MAX_ERROR = 8000  # what the daemon accepts of `error`
MAX_ANSWER = 64 * 1024
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def report_failure(
    error: str,
    video_id: str | None = None,
    source: str | None = None,
    *,
    reason: str = "download_failed",
    url: str | None = None,
    token: str | None = None,
    timeout: float = 1.0,
) -> dict[str, Any] | None:
    """Report a failed download; the daemon's answer, or None when there is none to have.

    `url` defaults to $COOKIE_SUPERVISOR_URL, `token` to $COOKIE_SUPERVISOR_API_TOKEN.
    """
    try:
        base = url or os.environ.get("COOKIE_SUPERVISOR_URL") or DEFAULT_URL
        token = token or os.environ.get("COOKIE_SUPERVISOR_API_TOKEN") or None
        status, answer = _post(base, _body(error, video_id, source, reason), token, timeout)
    except Exception as exc:  # the caller's download path must never see our trouble
        log.debug("cookie-supervisor: report not delivered: %s", type(exc).__name__)
        return None
    if 200 <= status < 300 and isinstance(answer, dict):
        log.debug(
            "cookie-supervisor: report %s (%s)", answer.get("state"), answer.get("classified_as")
        )
        return answer
    detail = answer.get("error") if isinstance(answer, dict) else None
    if status == 429 or status >= 500:  # busy or Redis down: harmless, the next report retries
        log.debug("cookie-supervisor: report not taken: HTTP %d %s", status, detail or "")
    else:  # a wrong token, an unknown source: every report is lost until someone fixes it
        log.warning("cookie-supervisor: report refused: HTTP %d %s", status, detail or "")
    return None


async def report_failure_async(
    error: str,
    video_id: str | None = None,
    source: str | None = None,
    *,
    reason: str = "download_failed",
    url: str | None = None,
    token: str | None = None,
    timeout: float = 1.0,
) -> dict[str, Any] | None:
    """`report_failure` for asyncio code: runs in a thread, so the event loop is never blocked."""
    try:
        return await asyncio.to_thread(
            report_failure,
            error,
            video_id,
            source,
            reason=reason,
            url=url,
            token=token,
            timeout=timeout,
        )
    except Exception as exc:  # e.g. the loop's executor is shutting down
        log.debug("cookie-supervisor: report not delivered: %s", type(exc).__name__)
        return None


def _body(error: str, video_id: str | None, source: str | None, reason: str) -> bytes:
    body: dict[str, Any] = {"reason": reason, "error": str(error)[:MAX_ERROR]}
    # A malformed id would get the whole report refused; the error text is what matters.
    if video_id and _VIDEO_ID.match(video_id):
        body["video_id"] = video_id
    if source:
        body["source"] = source
    return json.dumps(body).encode()


def _post(base: str, body: bytes, token: str | None, timeout: float) -> tuple[int, Any]:
    """POST with one deadline for the whole exchange (a socket timeout alone is per read)."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("COOKIE_SUPERVISOR_URL must be an http(s) URL")
    deadline = time.monotonic() + timeout
    conn_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_type(parts.hostname, parts.port, timeout=timeout)
    headers = {"Content-Type": "application/json", "User-Agent": "cookie-supervisor-client"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.connect()
        _left(conn, deadline)
        conn.request("POST", parts.path.rstrip("/") + ROUTE, body, headers)
        _left(conn, deadline)
        response = conn.getresponse()
        data = b""
        while len(data) <= MAX_ANSWER:
            _left(conn, deadline)
            chunk = response.read1(16384)
            if not chunk:
                break
            data += chunk
    finally:
        conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, None


def _left(conn: http.client.HTTPConnection, deadline: float) -> None:
    """Give the next socket operation only what is left of the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("cookie-supervisor did not answer in time")
    if conn.sock is not None:
        conn.sock.settimeout(left)
