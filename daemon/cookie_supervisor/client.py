"""The download backend's client: tell the daemon that a download failed.

Standard library only, so a backend imports it without the daemon's dependencies. It sits on the
backend's download path, so it never raises and never waits longer than `timeout` for the whole
exchange (connect, send, answer): a missing, slow or overloaded daemon costs a download at most
that, and a lost report costs nothing (the next failure reports again; coalescing absorbs repeats).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:9479"
ROUTE = "/api/cookies/trigger-refresh"
MAX_ERROR = 8000  # what the daemon accepts of `error`
MAX_ANSWER = 64 * 1024
MAX_HEAD = 16 * 1024
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
    """POST with one deadline for the whole exchange: connect, send, every read.

    Not http.client: its `getresponse()` reads the status line and headers with as many socket
    reads as the server likes, each with the full socket timeout, and skips any number of
    `100 Continue` answers — a server dripping header bytes held the caller forever. Here every
    read gets only what is left of the deadline, and the answer's size is bounded.
    """
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("COOKIE_SUPERVISOR_URL must be an http(s) URL")
    deadline = time.monotonic() + timeout
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    authority = f"[{host}]" if ":" in host else host
    if parts.port:
        authority += f":{parts.port}"
    head = [
        f"POST {parts.path.rstrip('/') + ROUTE} HTTP/1.0",  # 1.0: no chunked answer, close ends it
        f"Host: {authority}",
        "Content-Type: application/json",
        "User-Agent: cookie-supervisor-client",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if token:
        head.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
    address = _resolve(host, port, deadline)
    with socket.create_connection(address, timeout=_left(deadline)) as raw:
        sock: socket.socket = raw
        if parts.scheme == "https":
            raw.settimeout(_left(deadline))
            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
        with sock:
            _send(sock, request, deadline)
            return _answer(sock, deadline)


def _resolve(host: str, port: int, deadline: float) -> tuple[str, int]:
    """The address to connect to, resolved within the deadline: getaddrinfo has no timeout of
    its own, so a name is resolved in a daemon thread that is left behind if the resolver hangs."""
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        pass
    found: list[tuple[str, int]] = []

    def lookup() -> None:
        try:  # never raise in the thread: the backend's stderr would get a traceback
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return
        found.extend((str(info[4][0]), port) for info in infos[:1])

    worker = threading.Thread(target=lookup, name="cookie-supervisor-resolve", daemon=True)
    worker.start()
    worker.join(_left(deadline))
    if worker.is_alive():
        raise TimeoutError("cookie-supervisor's address did not resolve in time")
    if not found:
        raise OSError(f"cannot resolve {host}")
    return found[0]


def _left(deadline: float) -> float:
    """What is left of the deadline; TimeoutError when nothing is."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("cookie-supervisor did not answer in time")
    return left


def _send(sock: socket.socket, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    while view:
        sock.settimeout(_left(deadline))
        view = view[sock.send(view) :]


def _answer(sock: socket.socket, deadline: float) -> tuple[int, Any]:
    """(status, parsed JSON or None) of the first final answer; 1xx answers are skipped."""
    buf = b""
    status, length, start = 0, None, -1
    while True:
        if start < 0:  # still in the head (or a 1xx head): parse what has arrived
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                status, length = _head(buf[:end])
                buf = buf[end + 4 :]
                if 100 <= status < 200:
                    continue  # an interim answer: the real one follows (within the deadline)
                start = 0
            elif len(buf) > MAX_HEAD:
                raise ValueError("answer head too large")
        if start >= 0 and (len(buf) > MAX_ANSWER or (length is not None and len(buf) >= length)):
            break
        sock.settimeout(_left(deadline))
        chunk = sock.recv(16384)
        if not chunk:
            if start < 0:
                raise ConnectionError("connection closed before an answer")
            break
        buf += chunk
    data = buf[:length] if length is not None else buf
    try:
        return status, json.loads(data[: MAX_ANSWER + 1])
    except ValueError:
        return status, None


def _head(head: bytes) -> tuple[int, int | None]:
    """(status, Content-Length or None) from an answer's head."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/") or not code.isdigit():
        raise ValueError("not an HTTP answer")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    return int(code), length
