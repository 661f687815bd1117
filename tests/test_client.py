"""The backend's client against a real daemon, a dead port, and servers that hang or drip."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cookie_supervisor.client import (
    ROUTE,
    DaemonClient,
    DaemonRefused,
    DaemonUnreachable,
    report_failure,
    report_failure_async,
)
from tests.support import ROOT, Daemon, RedisServer, cookie_jar, daemon_env, free_port, write_atomic

TOKEN = "client-test-token-0123456789"
BOT = (
    "ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm you're not a bot. Use --cookies-from-browser"
    " or --cookies for the authentication. See  https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to manually pass cookies"
)
NETWORK = "ERROR: [generic] video: Unable to download webpage: [Errno 111] Connection refused"


@pytest.fixture(scope="module")
def daemon(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    import redis

    with redis.Redis.from_url(redis_server.url) as r:
        r.flushall()
    jar = tmp_path_factory.mktemp("client") / "cookies.txt"
    write_atomic(jar, cookie_jar())
    env = daemon_env(redis_server.url, jar, COOKIE_SUPERVISOR_API_TOKEN=TOKEN)
    d = Daemon(env).start()
    yield d
    d.stop()


def test_importable_without_the_daemons_dependencies() -> None:
    # -I -S: no site-packages at all, so httpx, redis, pydantic... cannot be imported.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import cookie_supervisor.client as c;"
        "assert c.report_failure('x', url='http://127.0.0.1:1', timeout=0.2) is None;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " {'httpx', 'redis', 'pydantic', 'prometheus_client', 'starlette', 'yt_dlp'}))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(ROOT / "daemon")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_reports_reach_the_daemon_and_coalesce(daemon: Daemon) -> None:
    first = report_failure(BOT, video_id="jNQXAC9IVRw", url=daemon.base_url, token=TOKEN)
    assert first is not None
    assert first["state"] == "enqueued" and first["classified_as"] == "bot_detection"
    assert first["reason"] == "download_failed"  # echoed as sent
    assert first["job_id"]
    again = report_failure(BOT, url=daemon.base_url, token=TOKEN, source="default")
    assert again is not None and again["state"] == "coalesced"
    assert again["job_id"] == first["job_id"]


def test_address_and_token_come_from_the_environment(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOKIE_SUPERVISOR_URL", daemon.base_url)
    monkeypatch.setenv("COOKIE_SUPERVISOR_API_TOKEN", TOKEN)
    answer = report_failure(NETWORK, video_id="not a valid id!")  # a bad id is left out, not fatal
    assert answer is not None
    assert answer["state"] == "ignored" and answer["classified_as"] == "network_error"


def test_wrong_token_is_none_and_a_warning(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="cookie_supervisor.client"):
        assert report_failure(BOT, url=daemon.base_url, token="wrong-token") is None
    assert "HTTP 401" in caplog.text and "wrong-token" not in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


async def test_async_twin_reaches_the_daemon(daemon: Daemon) -> None:
    answer = await report_failure_async(NETWORK, url=daemon.base_url, token=TOKEN)
    assert answer is not None and answer["classified_as"] == "network_error"


# --- a daemon that is away, stuck or unhappy -------------------------------------------------


@pytest.fixture
def server() -> Iterator[Callable[[str], str]]:
    """A loopback server that misbehaves as asked: `hang`, `drip`, `429`, `503`."""
    stop = threading.Event()
    servers: list[ThreadingHTTPServer] = []

    def make(mode: str) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                if mode == "hang":
                    stop.wait(30)
                    return
                if mode == "drip":  # headers at once, then a byte now and then, forever
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    while not stop.wait(0.05):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    return
                body = json.dumps({"success": False, "error": "busy"}).encode()
                self.send_response(int(mode))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield make
    stop.set()
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_dead_port_is_none_at_once() -> None:
    started = time.monotonic()
    assert report_failure(BOT, url=f"http://127.0.0.1:{free_port()}") is None
    assert time.monotonic() - started < 0.5


def test_silent_listener_costs_the_timeout_and_no_more() -> None:
    # Accepts connections (the kernel completes the handshake) and never reads or answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        assert report_failure(BOT, url=url, timeout=0.3) is None
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 0.6


@pytest.mark.parametrize("mode", ["hang", "drip"])
def test_the_timeout_covers_the_whole_exchange(server: Callable[[str], str], mode: str) -> None:
    url = server(mode)
    started = time.monotonic()
    assert report_failure(BOT, url=url, timeout=0.3) is None
    assert time.monotonic() - started < 0.6  # a dripping answer does not restart the clock


@pytest.mark.parametrize("status", ["429", "503"])
def test_busy_daemon_is_harmless(
    server: Callable[[str], str], status: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="cookie_supervisor.client"):
        assert report_failure(BOT, url=server(status)) is None
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert f"HTTP {status}" in caplog.text


async def test_async_twin_never_blocks_the_loop(server: Callable[[str], str]) -> None:
    url = server("hang")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    assert await report_failure_async(BOT, url=url, timeout=0.3) is None
    elapsed = time.monotonic() - started
    task.cancel()
    assert elapsed < 0.6
    assert ticks >= 10  # the loop kept running while the report waited


def test_bad_address_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKIE_SUPERVISOR_URL", "127.0.0.1:9479")  # no scheme
    assert report_failure(BOT) is None


@pytest.fixture
def raw_server() -> Iterator[Callable[[bytes, bytes, float], str]]:
    """A raw asyncio server on 127.0.0.1 in its own thread: reads the request, writes `first`,
    then `repeat` every `every` seconds until the client goes (drip, endless interim answers)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers: list[asyncio.Server] = []

    def make(first: bytes, repeat: bytes, every: float) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            try:
                writer.write(first)
                while True:
                    await writer.drain()
                    await asyncio.sleep(every)
                    writer.write(repeat)
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def start() -> asyncio.Server:
            return await asyncio.start_server(handle, "127.0.0.1", 0)

        srv = asyncio.run_coroutine_threadsafe(start(), loop).result(5)
        servers.append(srv)
        return f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"

    yield make

    async def shutdown() -> None:
        for srv in servers:
            srv.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.mark.parametrize(
    ("first", "repeat"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Drip: ", b"a"),  # header bytes, one at a time, forever
        (b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"),  # endless interims
        (b"HTTP/1.1 200 OK\r\n", b"X-A: b\r\n"),  # endless header lines
    ],
    ids=["drip-header", "repeated-100-continue", "endless-headers"],
)
@pytest.mark.parametrize("timeout", [0.3, 1.0])
def test_the_deadline_holds_against_a_server_that_never_finishes_its_head(
    raw_server: Callable[[bytes, bytes, float], str], first: bytes, repeat: bytes, timeout: float
) -> None:
    # issue 18 G10: http.client gave each header read the full timeout and skipped every
    # `100 Continue`: still blocked after 20 s
    url = raw_server(first, repeat, 0.05)
    started = time.monotonic()
    assert report_failure(BOT, url=url, timeout=timeout) is None
    assert time.monotonic() - started < timeout + 0.3


def test_an_interim_answer_then_the_real_one_is_read(
    raw_server: Callable[[bytes, bytes, float], str],
) -> None:
    body = b'{"state": "coalesced", "reason": "bot_detection"}'
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    url = raw_server(answer, b"", 30)
    assert report_failure(BOT, url=url) == json.loads(body)


def test_a_hanging_resolver_costs_the_deadline_and_no_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # getaddrinfo has no timeout of its own; a resolver that hangs (no stand-in for DNS on
    # loopback, hence the patch) must not hold the caller past the deadline
    release = threading.Event()

    def hanging(*args: Any, **kw: Any) -> Any:
        release.wait(10)
        raise OSError("resolver gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    started = time.monotonic()
    try:
        assert report_failure(BOT, url="http://daemon.invalid:9479", timeout=0.3) is None
        assert time.monotonic() - started < 0.6
    finally:
        release.set()


def test_a_name_resolves_and_reaches_the_daemon(daemon: Daemon) -> None:
    url = daemon.base_url.replace("127.0.0.1", "localhost")
    answer = report_failure(NETWORK, url=url, token=TOKEN)
    assert answer is not None and answer["state"] == "ignored", answer


# --- DaemonClient: the one client of the daemon's API (the CLI's, and report_failure's) ---------


def canned_answer(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_the_daemon_client_reads_the_daemons_answers(daemon: Daemon) -> None:
    client = DaemonClient(daemon.base_url + "/", TOKEN, timeout=5)
    status = client.get("/api/cookies/cookies-status", source="default")
    assert status["source"] == "default"
    with pytest.raises(DaemonRefused) as unknown:
        client.get("/api/cookies/cookies-status", source="nope")
    assert 400 <= unknown.value.status < 500 and unknown.value.answer is not None
    assert str(unknown.value).startswith(f"{daemon.base_url}/api/cookies/cookies-status answered")
    anonymous = DaemonClient(daemon.base_url, None, auth_hint="set the token")
    with pytest.raises(DaemonRefused) as refused:
        anonymous.post(ROUTE, {"reason": "manual"})
    assert refused.value.status == 401 and str(refused.value).endswith("(set the token)")


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (canned_answer("200 OK", b'{"a": "' + b"x" * 2000 + b'"}'), "with more than 1000 bytes"),
        (canned_answer("200 OK", b"<html>a proxy's page</html>"), "200 without JSON"),
        (canned_answer("502 Bad Gateway", b"<html>down</html>"), "502 without JSON"),
        (canned_answer("200 OK", b'"a string"'), "with unexpected JSON"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nX-A: " + b"b" * 20000, "answer head too large"),
    ],
    ids=["too-large", "html", "html-error", "not-an-object", "not-http", "huge-head"],
)
def test_a_daemon_client_answer_that_is_not_the_daemons_is_a_clear_error(
    raw_server: Callable[[bytes, bytes, float], str], answer: bytes, said: str
) -> None:
    url = raw_server(answer, b"", 30)
    with pytest.raises(DaemonUnreachable, match=said) as caught:
        DaemonClient(url, timeout=2, max_answer=1000).get("/api/cookies/sources")
    assert len(str(caught.value).splitlines()) == 1


def test_json_nested_past_the_recursion_limit_is_no_crash(
    raw_server: Callable[[bytes, bytes, float], str],
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError, not ValueError
    url = raw_server(canned_answer("200 OK", deep), b"", 30)
    with pytest.raises(DaemonUnreachable, match="without JSON"):
        DaemonClient(url, timeout=2).get("/api/cookies/sources")


def test_a_daemon_client_refusal_is_one_printable_line(
    raw_server: Callable[[bytes, bytes, float], str],
) -> None:
    body = json.dumps({"error": "\x1b]0;owned\x07bad\r\nsource\x9b2J"}).encode()
    url = raw_server(canned_answer("400 Bad Request", body), b"", 30)
    with pytest.raises(DaemonRefused) as caught:
        DaemonClient(url, timeout=2).get("/api/cookies/cookies-status", source="x y")
    said = str(caught.value)
    assert caught.value.status == 400 and "bad??source" in said
    assert said.isprintable(), said  # no terminal escapes, no second line


def test_a_daemon_client_takes_listed_statuses_and_follows_no_redirect(
    raw_server: Callable[[bytes, bytes, float], str],
) -> None:
    busy = raw_server(canned_answer("503 Service Unavailable", b'{"redis_up": false}'), b"", 30)
    client = DaemonClient(busy, timeout=2)
    assert client.get("/api/cookies/queue-status", ok_statuses=(503,)) == {"redis_up": False}
    with pytest.raises(DaemonRefused):
        client.get("/api/cookies/queue-status")
    moved = canned_answer("302 Found", b"{}", "Location: http://elsewhere.example/")
    with pytest.raises(DaemonRefused) as caught:  # a token is never carried elsewhere
        DaemonClient(raw_server(moved, b"", 30), "tok", timeout=2).get("/api/cookies/sources")
    assert caught.value.status == 302


@pytest.mark.parametrize(
    ("first", "repeat"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Drip: ", b"a"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", b" "),
    ],
    ids=["drip-header", "drip-body"],
)
def test_every_daemon_client_call_has_one_deadline(
    raw_server: Callable[[bytes, bytes, float], str], first: bytes, repeat: bytes
) -> None:
    url = raw_server(first, repeat, 0.05)
    client = DaemonClient(url, timeout=10)
    started = time.monotonic()
    with pytest.raises(DaemonUnreachable, match=r"no daemon answers at .*: no answer within 0.3 s"):
        client.post("/api/cookies/validate", None, timeout=0.3)  # the call's own deadline
    assert time.monotonic() - started < 0.6


def test_a_daemon_client_never_shows_credentials_of_its_url() -> None:
    url = f"http://user:pw-{TOKEN}@127.0.0.1:{free_port()}/cs"
    with pytest.raises(DaemonUnreachable) as caught:
        DaemonClient(url, timeout=1).get("/api/cookies/sources")
    assert str(caught.value).startswith("no daemon answers at http://127.0.0.1:")
    assert TOKEN not in str(caught.value) and caught.value.status is None
    with pytest.raises(ValueError, match="http"):
        DaemonClient("127.0.0.1:9479")
