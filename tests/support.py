"""The real test rig: a private redis-server, the daemon as a child process, condition waits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the condition may not be checkable yet
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate}"
                + (f" (last error: {last_exc!r})" if last_exc else "")
            )
        time.sleep(interval)


class RedisServer:
    """A real redis-server on a free loopback port, stoppable and restartable on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cs-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (make test installs it)"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self.ping, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in an exposition, or None when there is no such sample."""
    return parse_metrics(text).get((name, frozenset(labels.items())))


@dataclass
class Daemon:
    """`cookie-supervisor run` as a real child process."""

    env: Mapping[str, str]
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> Daemon:
        inherited = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        env = {**inherited, "COOKIE_SUPERVISOR_LISTEN": f"127.0.0.1:{self.port}", **self.env}
        # An empty variable is unset, and the default validation URL is YouTube's: a test daemon
        # must never go there. `none` turns validation downloads off.
        assert env.get("COOKIE_SUPERVISOR_VALIDATION_URLS") != "", "VALIDATION_URLS: use 'none'"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cookie_supervisor", "run", *self.args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait_ready:
            wait_for(self.ready, timeout=20, what="daemon /readyz")
        return self

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
        return self.get("/readyz").status_code == 200

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.base_url + path, timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.base_url + path, timeout=30, **kw)

    def metrics(self) -> str:
        return self.get("/metrics").text

    def metric(self, name: str, **labels: str) -> float | None:
        return metric(self.metrics(), name, **labels)

    def wait_one_verdict(self, result: str, timeout: float = 5.0) -> None:
        """Wait until the refresh verifications of source `default` count exactly one `result`."""
        wait_for(
            lambda: (
                self.metric(
                    "cookie_supervisor_refresh_verifications_total",
                    source="default",
                    result=result,
                )
                == 1
            ),
            timeout=timeout,
            what=result,
        )

    def status(self, source: str = "default") -> dict[str, Any]:
        return json.loads(self.get(f"/api/cookies/cookies-status?source={source}").text)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def daemon_env(redis_url: str, jar: Path, **extra: str) -> dict[str, str]:
    """The environment of a test daemon: offline validation, fast queue polling, no rate limit."""
    return {
        "REDIS_URL": redis_url,
        "YT_DLP_COOKIES_FILE": str(jar),
        "COOKIE_SUPERVISOR_VALIDATION_URLS": "none",
        "COOKIE_SUPERVISOR_QUEUE_POLL_INTERVAL": "0.1",
        "COOKIE_SUPERVISOR_RATE_LIMIT": "0",
        **extra,
    }


FAKE_YTDLP = ROOT / "tests" / "fakes" / "fake_ytdlp.py"
WATCH = "https://www.youtube.com/watch?v=jNQXAC9IVRw"


def youtube_daemon(redis_url: str, jar: Path, **fake: str) -> Daemon:
    """A started daemon validating WATCH on demand only, through the yt-dlp stand-in; `fake`
    sets the stand-in's FAKE_* answers."""
    env = daemon_env(
        redis_url,
        jar,
        COOKIE_SUPERVISOR_VALIDATION_URLS=WATCH,
        COOKIE_SUPERVISOR_VALIDATE_EVERY="0",
        COOKIE_SUPERVISOR_YT_DLP_COMMAND=f"{sys.executable},{FAKE_YTDLP},ok",
        COOKIE_SUPERVISOR_JS_RUNTIME="node",
        **fake,
    )
    return Daemon(env=env).start()


def source_config(path: Path, jar: Path, **settings: str) -> Path:
    """Write a TOML file with one source `default` for `jar` and the given per-source settings."""
    lines = ["[[sources]]", 'name = "default"', f'cookies_file = "{jar}"', "validation_urls = []"]
    lines += [f'{key} = "{value}"' for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# A jar that yt-dlp counts as logged in; values are recognisable so leak tests can grep for them.
SECRET_MARK = "SeCrEtVaLuE"


def cookie_jar(
    *,
    expires: int | None = None,
    login: bool = True,
    extra_lines: tuple[str, ...] = (),
    mark: str = SECRET_MARK,
) -> str:
    exp = expires if expires is not None else int(time.time()) + 180 * 86400
    lines = ["# Netscape HTTP Cookie File", "# test jar", ""]
    rows = [
        (".youtube.com", "TRUE", "/", "TRUE", exp, "PREF", f"hl=en-{mark}-pref"),
        (".youtube.com", "TRUE", "/", "TRUE", exp, "SID", f"{mark}-sid"),
        (".youtube.com", "TRUE", "/", "TRUE", exp, "__Secure-3PSID", f"{mark}-3psid"),
    ]
    if login:
        rows += [
            (".youtube.com", "TRUE", "/", "TRUE", exp, "SAPISID", f"{mark}-sapisid"),
            (".youtube.com", "TRUE", "/", "TRUE", exp, "__Secure-3PAPISID", f"{mark}-3papisid"),
            ("#HttpOnly_.youtube.com", "TRUE", "/", "TRUE", exp, "LOGIN_INFO", f"{mark}-login"),
        ]
    lines += ["\t".join(map(str, r)) for r in rows]
    lines += list(extra_lines)
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace `path` the way an uploader that renames into place does."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


INTEROP = ROOT / "tests" / "interop"


class NodeProcess:
    """A Node program from tests/interop printing JSON lines; `events` fills as they arrive."""

    def __init__(self, script: str, env: Mapping[str, str], *args: str) -> None:
        import threading

        assert shutil.which("node"), "node is not installed"
        assert (INTEROP / "node_modules" / "bull").is_dir(), "run `npm ci` in tests/interop"
        self.events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            ["node", str(INTEROP / script), *args],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=INTEROP,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.events.append({"event": "output", "line": line.rstrip()})

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == event]

    def wait(self, event: str, count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        return wait_for(
            lambda: len(self.of(event)) >= count and self.of(event),
            timeout=timeout,
            what=f"{count} '{event}' event(s) from {self.proc.args}: {self.events[-5:]}",
        )

    def stop(self) -> None:
        terminate(self.proc)


def terminate(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM a helper process, SIGKILL it if it has not gone within 10 s, and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def node_queue(redis_url: str, queue: str, *args: str, script: str = "queue.js") -> Any:
    """Run tests/interop/queue.js (counts, pause, resume, job ID), or another one-shot `script`
    there, and return its JSON answer."""
    proc = subprocess.run(
        ["node", str(INTEROP / script), *args],
        env={**os.environ, "REDIS_URL": redis_url, "QUEUE": queue},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=INTEROP,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


MEDIA = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64  # enough bytes for a ranged GET
PLAYER = b'var reverse = function (a) { return a.split("").reverse().join(""); };\n'
PLAYER_PATH = "/s/player/0123abcd/player_ias.vflset/en_US/base.js"  # the shape yt-dlp accepts


class MediaServer:
    """A local stand-in for the media host yt-dlp's generic extractor downloads from.

    /video.mp4 serves MEDIA (honouring Range) — only to requests whose Cookie header holds
    `require_cookie`, when one is set; /forbidden.mp4 403, /missing.mp4 404, /ratelimit.mp4 429,
    /error.mp4 500,
    /hang.mp4 never answers until the server shuts down; /s/player/…/base.js is a "player" that
    is JavaScript but not YouTube's (yt-dlp's challenge solver must refuse it).
    """

    def __init__(self, require_cookie: str | None = None) -> None:
        import threading
        from http.server import ThreadingHTTPServer

        self.require_cookie = require_cookie
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.released = threading.Event()
        handler = _media_handler(self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/video.mp4") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def shutdown(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _media_handler(server: MediaServer) -> Any:
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests.append((self.path, dict(self.headers)))
            errors = {
                "/forbidden.mp4": 403,
                "/missing.mp4": 404,
                "/ratelimit.mp4": 429,
                "/error.mp4": 500,  # a failure no table entry explains: reason `other`
            }
            if self.path in errors:
                self.send_error(errors[self.path])
            elif self.path == "/hang.mp4":
                server.released.wait(120)
            elif self.path.startswith("/s/player/") and self.path.endswith("/base.js"):
                self._send(PLAYER, "text/javascript")
            elif server.require_cookie and server.require_cookie not in self.headers.get(
                "Cookie", ""
            ):
                self.send_error(403, "Forbidden")
            else:
                self._media()

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _media(self) -> None:
            start, end = 0, len(MEDIA) - 1
            if rng := self.headers.get("Range"):
                lo, _, hi = rng.removeprefix("bytes=").partition("-")
                start, end = int(lo or 0), min(int(hi or end), end)
            body = MEDIA[start : end + 1]
            self.send_response(206 if rng else 200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(body)))
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(MEDIA)}")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def exported_metric_names() -> set[str]:
    """Every sample name the daemon can export (counters' _total, histograms' parts)."""
    from cookie_supervisor.metrics import Metrics

    metrics = Metrics()
    names = metrics.names()
    histograms = (metrics.validation_duration_seconds, metrics.login_session_lifetime_seconds)
    return names | {h.name + s for h in histograms for s in ("_bucket", "_sum", "_count")}


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 answering from a script of (status, headers); then 200."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    hang: bool = False
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-request (a SIGKILL test): a cut-off request is no
                    # request, as for any HTTP server; it would read as an empty event.
                    self.close_connection = True
                    return
                receiver.requests.append(Received(time.monotonic(), dict(self.headers), body))
                if receiver.hang:
                    receiver.release.wait(30)
                    return
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                payload = b"receiver says " + b"x" * 1000
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.requests]
