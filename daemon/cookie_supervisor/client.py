"""Clients of the daemon's HTTP API: the download backend's `report_failure`, and `DaemonClient`,
which it and the command line speak through.

Standard library only, so a backend imports it (or copies this one file) without the daemon's
dependencies. Every call has one deadline for the whole exchange (resolve, connect, send, every
read), answers are read up to a bound and must be a JSON object, and every failure is one clear
line. `report_failure` sits on the backend's download path, so it never raises and never waits
longer than `timeout`: a missing, slow or overloaded daemon costs a download at most that, and a
lost report costs nothing (the next failure reports again; coalescing absorbs repeats).
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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:9479"
ROUTE = "/api/cookies/trigger-refresh"
MAX_ERROR = 8000  # what the daemon accepts of `error`
MAX_ANSWER = 64 * 1024  # a trigger's answer; the CLI's calls allow DaemonClient.max_answer
MAX_HEAD = 16 * 1024
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]")


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
        daemon = DaemonClient(base, token, timeout=timeout, max_answer=MAX_ANSWER)
        answer = daemon.post(ROUTE, _body(error, video_id, source, reason))
    except DaemonError as exc:
        _log_failure(exc)
        return None
    except Exception as exc:  # the caller's download path must never see our trouble
        log.debug("cookie-supervisor: report not delivered: %s", type(exc).__name__)
        return None
    log.debug("cookie-supervisor: report %s (%s)", answer.get("state"), answer.get("classified_as"))
    return answer


def _log_failure(exc: DaemonError) -> None:
    """Said without the URL (a configured URL may carry credentials) nor the message."""
    if exc.status is None:
        cause = exc.__cause__ or exc
        log.debug("cookie-supervisor: report not delivered: %s", type(cause).__name__)
        return
    detail = exc.answer.get("error") if exc.answer is not None else None
    if exc.status == 429 or exc.status >= 500:  # busy or Redis down: the next report retries
        log.debug("cookie-supervisor: report not taken: HTTP %d %s", exc.status, detail or "")
    else:  # a wrong token, an unknown source: every report is lost until someone fixes it
        log.warning("cookie-supervisor: report refused: HTTP %d %s", exc.status, detail or "")


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


def _body(error: str, video_id: str | None, source: str | None, reason: str) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": reason, "error": str(error)[:MAX_ERROR]}
    # A malformed id would get the whole report refused; the error text is what matters.
    if video_id and _VIDEO_ID.match(video_id):
        body["video_id"] = video_id
    if source:
        body["source"] = source
    return body


# --- the daemon's API ---------------------------------------------------------------------------


class DaemonError(Exception):
    """No usable answer from the daemon; the message is one line naming where it was asked.

    `status` is the HTTP status when an answer came (None: none did); `answer` its JSON object.
    """

    def __init__(
        self, message: str, status: int | None = None, answer: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer


class DaemonUnreachable(DaemonError):
    """Nothing that speaks the daemon's API answered: no connection, no answer in time, or an
    answer that is not the daemon's (not HTTP, not a JSON object, too large)."""


class DaemonRefused(DaemonError):
    """The daemon answered with an HTTP error (a bad token, an unknown source, busy, Redis down)."""

    status: int


@dataclass(frozen=True)
class DaemonClient:
    """The daemon's HTTP API at `url` (http or https, optionally under a path).

    Each call is bounded by one deadline (`timeout` unless the call gives its own) for the whole
    exchange, its answer by `max_answer` bytes. Not http.client: its `getresponse()` reads the
    status line and headers with as many socket reads as the server likes, each with the full
    socket timeout, and skips any number of `100 Continue` answers — a server dripping header
    bytes held the caller forever (issue 18 G10). Nor urllib: no proxy from the environment may
    see requests meant for a daemon on this host or a private network.
    """

    url: str
    token: str | None = None
    timeout: float = 10.0
    max_answer: int = 1 << 20
    user_agent: str = "cookie-supervisor-client"
    auth_hint: str = ""  # said after a 401: where the token should come from

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the daemon's URL must be an http(s) URL")

    @property
    def shown(self) -> str:
        """The URL for messages: any user:password@ left out."""
        parts = urlsplit(self.url.rstrip("/"))
        netloc = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=netloc, query="", fragment="").geturl()

    def get(
        self,
        path: str,
        *,
        ok_statuses: tuple[int, ...] = (),
        timeout: float | None = None,
        **query: str | None,
    ) -> dict[str, Any]:
        return self.call("GET", path, None, ok_statuses=ok_statuses, timeout=timeout, query=query)

    def post(
        self,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        ok_statuses: tuple[int, ...] = (),
        timeout: float | None = None,
        **query: str | None,
    ) -> dict[str, Any]:
        return self.call("POST", path, body, ok_statuses=ok_statuses, timeout=timeout, query=query)

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        ok_statuses: tuple[int, ...] = (),
        timeout: float | None = None,
        query: Mapping[str, str | None] | None = None,
    ) -> dict[str, Any]:
        """The daemon's JSON answer; DaemonUnreachable or DaemonRefused (unless its status is in
        `ok_statuses`) when there is no usable one."""
        limit = self.timeout if timeout is None else timeout
        params = {k: v for k, v in (query or {}).items() if v is not None}
        target = path + (f"?{urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body).encode()
        parts = urlsplit(self.url)
        request = _request(parts, method, target, data, self.token, self.user_agent)
        try:
            status, raw = _exchange(parts, request, time.monotonic() + limit, self.max_answer)
        except TimeoutError as exc:
            why = f"no answer within {limit:g} s"
            raise DaemonUnreachable(f"no daemon answers at {self.shown}: {why}") from exc
        except (OSError, ValueError) as exc:
            why = _printable(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
            raise DaemonUnreachable(f"no daemon answers at {self.shown}: {why}") from exc
        answer = self._parsed(status, raw)
        if not 200 <= status < 300 and status not in ok_statuses:  # no redirect is followed
            detail = _printable(str(answer.get("error") or answer.get("message") or "")[:300])
            hint = f" ({self.auth_hint})" if status == 401 and self.auth_hint else ""
            message = f"{self.shown}{path} answered {status}: {detail}{hint}"
            raise DaemonRefused(message, status, answer)
        return answer

    def _parsed(self, status: int, raw: bytes) -> dict[str, Any]:
        if len(raw) > self.max_answer:
            raise DaemonUnreachable(
                f"{self.shown} answered {status} with more than {self.max_answer} bytes", status
            )
        try:
            answer = json.loads(raw)
        except (ValueError, RecursionError):
            raise DaemonUnreachable(
                f"{self.shown} answered {status} without JSON: not a cookie-supervisor daemon?",
                status,
            ) from None
        if not isinstance(answer, dict):
            raise DaemonUnreachable(f"{self.shown} answered {status} with unexpected JSON", status)
        return answer


def _printable(text: str) -> str:
    """A server's words fit for one line of a terminal: no control characters or escapes."""
    return _UNPRINTABLE.sub("?", text)


def _request(
    parts: SplitResult,
    method: str,
    target: str,
    body: bytes | None,
    token: str | None,
    user_agent: str,
) -> bytes:
    host = parts.hostname or ""
    authority = f"[{host}]" if ":" in host else host
    if parts.port:
        authority += f":{parts.port}"
    head = [
        f"{method} {parts.path.rstrip('/') + target} HTTP/1.0",  # 1.0: no chunks, close ends it
        f"Host: {authority}",
        "Accept: application/json",
        f"User-Agent: {user_agent}",
        "Connection: close",
    ]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    elif method != "GET":
        head.append("Content-Length: 0")  # a POST without a length is refused by some proxies
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")


def _exchange(
    parts: SplitResult, request: bytes, deadline: float, max_answer: int
) -> tuple[int, bytes]:
    """Send `request` and read the answer, all before `deadline`: (status, at most
    `max_answer` + 1 bytes of the body)."""
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _resolve(host, port, deadline)
    with socket.create_connection(address, timeout=_left(deadline)) as raw:
        sock: socket.socket = raw
        if parts.scheme == "https":
            raw.settimeout(_left(deadline))
            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
        with sock:
            _send(sock, request, deadline)
            return _answer(sock, deadline, max_answer)


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


def _answer(sock: socket.socket, deadline: float, max_answer: int) -> tuple[int, bytes]:
    """(status, body) of the first final answer; 1xx answers are skipped. A body longer than
    `max_answer` is cut to `max_answer` + 1 bytes: the caller sees it is too long."""
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
        if start >= 0 and (len(buf) > max_answer or (length is not None and len(buf) >= length)):
            break
        sock.settimeout(_left(deadline))
        chunk = sock.recv(16384)
        if not chunk:
            if start < 0:
                raise ConnectionError("connection closed before an answer")
            break
        buf += chunk
    data = buf[:length] if length is not None else buf
    return status, data[: max_answer + 1]


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
