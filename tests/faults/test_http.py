"""The HTTP side under hostile input and exhausted resources, through a real daemon.

Bounded in count and time: a raw-socket fuzz (malformed requests, deep JSON, huge numbers, bad
headers, wrong content types, huge bodies) that must never meet a 5xx or a non-JSON error; idle
and slow connections cut at the header timeout; a connection flood at a lowered descriptor limit
that must leave /healthz answering; and schemathesis against the served OpenAPI description.
"""

from __future__ import annotations

import contextlib
import random
import resource
import select
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import Daemon, cookie_jar, daemon_env, wait_for, write_atomic

TOKEN = "faults-token-0123456789abcdef"
QUEUE = "http-faults"
HEADER_TIMEOUT = 1.0
EXAMPLES = 15  # per operation and generation mode: bounded, and a few seconds in all


@pytest.fixture(scope="module")
def daemon(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    jar = tmp_path_factory.mktemp("http-faults") / "cookies.txt"
    write_atomic(jar, cookie_jar())
    env = daemon_env(
        redis_server.url,
        jar,
        COOKIE_SUPERVISOR_QUEUE=QUEUE,
        COOKIE_SUPERVISOR_API_TOKEN=TOKEN,
        COOKIE_SUPERVISOR_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
    )
    d = Daemon(env=env).start()
    yield d
    d.stop()


# --- raw HTTP ----------------------------------------------------------------------------------


def exchange(port: int, raw: bytes, timeout: float = 3.0) -> bytes:
    """Send `raw` on a fresh connection; everything the daemon answers until it closes or waits."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with contextlib.suppress(OSError):  # the daemon may close before taking it all
            s.sendall(raw)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
                if _complete(b"".join(chunks)):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def post(path: str, body: bytes, *headers: str, ctype: str = "application/json") -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: x",
        f"Authorization: Bearer {TOKEN}",
        f"Content-Type: {ctype}",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


TRIGGER = "/api/cookies/trigger-refresh"
GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
CASES: list[bytes] = [
    # the request line and headers
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX\xff\xfe: v\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: \xff\xfe\xc3\x28\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n",
    b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%ff%fe%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/cookies/cookies-status?source=%ff%00%zz&source=a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://evil.example/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS ClientHello
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    b"GET /healthz/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"TRACE /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    GET * 5,  # pipelined
    # framing
    b"POST " + TRIGGER.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST " + TRIGGER.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n",
    b"POST " + TRIGGER.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Content-Length: 6\r\n\r\n{}{}{}",
    b"POST " + TRIGGER.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999"
    b"\r\n\r\n{}",
    b"POST " + TRIGGER.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b"POST " + TRIGGER.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST " + TRIGGER.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\n{}\r\n0\r\n\r\n",
    b"POST "
    + TRIGGER.encode()
    + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    + f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
    + b"".join(b"4000\r\n" + b"[" * 0x4000 + b"\r\n" for _ in range(4))
    + b"0\r\n\r\n",
    # bodies
    post(TRIGGER, b"[" * 5000 + b"]" * 5000),
    post(TRIGGER, b'{"reason": ' * 3000 + b'"x"' + b"}" * 3000),
    post(TRIGGER, b'{"reason": "manual", "force": ' + b"9" * 5000 + b"}"),
    post(TRIGGER, b'{"reason": 1e999999}'),
    post(TRIGGER, b'{"reason": NaN, "force": Infinity}'),
    post(TRIGGER, b'{"reason": "\xff\xfe\xc3\x28"}'),
    post(TRIGGER, b'{"reason": "\\ud800"}'),
    post(TRIGGER, b'{"reason": "manual\\u0000"}'),
    post(TRIGGER, b"\xef\xbb\xbf" + b'{"reason": "manual"}'),
    post(TRIGGER, b'{"reason": "manual", "reason": 5}'),
    post(TRIGGER, b'{"reason": "manual", "force": "yes"}'),
    post(TRIGGER, b'{"reason": "manual", "source": {"a": 1}}'),
    post(TRIGGER, b'{"reason": ["manual"]}'),
    post(TRIGGER, b'"just a string"'),
    post(TRIGGER, b"null"),
    post(TRIGGER, b""),
    post(TRIGGER, b"reason=manual", ctype="application/x-www-form-urlencoded"),
    post(
        TRIGGER,
        b"--b\r\nContent-Disposition: form-data; name=reason\r\n\r\nx\r\n--b--\r\n",
        ctype="multipart/form-data; boundary=b",
    ),
    post(TRIGGER, b"<reason>manual</reason>", ctype="application/xml"),
    post(TRIGGER, b'{"reason": "manual"}', ctype="application/json; charset=latin-1"),
    post(TRIGGER, b'{"reason": "manual"}', ctype="\xff/\xfe"),
    post(TRIGGER, b'{"reason": "manual"}', "Authorization: Bearer \xff\xfe"),
    post(TRIGGER, b'{"reason": "manual"}', "Authorization: Basic Zm9vOmJhcg=="),
    post(TRIGGER, b"x" * (2 * 1024 * 1024)),
    post("/api/cookies/validate?source=%00", b"{}"),
    post("/api/cookies/validate", b"x" * 100000),
    post("/healthz", b"{}"),
    post("/metrics", b"{}"),
]


def status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer[9:12])


def check_answers(port: int, cases: list[bytes]) -> list[tuple[int | None, bytes]]:
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda raw: exchange(port, raw), cases))
    results = []
    for raw, answer in zip(cases, answers, strict=True):
        status = status_of(answer)
        assert answer == b"" or status is not None, (raw[:80], answer[:200])
        if status is None:
            results.append((None, raw))
            continue
        head = answer.partition(b"\r\n\r\n")[0].lower()
        assert status < 500, (raw[:120], answer[:300])
        if status >= 400:
            assert b"content-type: application/json" in head, (raw[:120], answer[:300])
        results.append((status, raw))
    return results


def test_raw_http_fuzz_never_meets_a_5xx(daemon: Daemon, redis_server: Any) -> None:
    lines_before = len(daemon.log().splitlines())
    results = check_answers(daemon.port, CASES)
    statuses = [s for s, _ in results]
    # nearly every case is answered (only a request cut at the header timeout may go unanswered)
    assert statuses.count(None) <= 3, [raw[:60] for s, raw in results if s is None]
    assert 400 in statuses and 413 in statuses and 422 in statuses
    # seeded mutations of valid requests: flipped, dropped, duplicated and inserted bytes
    rng = random.Random(9)
    seeds = [GET, post(TRIGGER, b'{"reason": "manual", "force": true}')]
    mutants = []
    for _ in range(150):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(data))
            op = rng.randrange(4)
            if op == 0:
                data[i] = rng.randrange(256)
            elif op == 1:
                del data[i]
            elif op == 2:
                data[i:i] = data[i : i + rng.randint(1, 40)]
            else:
                data[i:i] = rng.choice([b"\r\n", b":", b" ", b"\x00", b"{", b"\xff", b"%"])
        mutants.append(bytes(data))
    check_answers(daemon.port, mutants)
    assert daemon.get("/healthz").status_code == 200
    log = daemon.log().splitlines()[lines_before:]
    assert not [line for line in log if "Traceback" in line or "ERROR" in line], log[-20:]
    assert len(log) < 20, log[-20:]  # no line per malformed request


# --- slow and idle connections -----------------------------------------------------------------


def closed_within(s: socket.socket, bound: float) -> float:
    start = time.monotonic()
    s.settimeout(bound + 2)
    try:
        while s.recv(1024):
            pass
    except ConnectionResetError:
        pass
    took = time.monotonic() - start
    assert took <= bound, f"connection held {took:.2f}s (bound {bound}s)"
    return took


def test_idle_and_slow_connections_are_cut_at_the_header_timeout(daemon: Daemon) -> None:
    bound = HEADER_TIMEOUT + 1.0
    idle = socket.create_connection(("127.0.0.1", daemon.port))
    slow = socket.create_connection(("127.0.0.1", daemon.port))
    slow_body = socket.create_connection(("127.0.0.1", daemon.port))
    slow_body.sendall(post(TRIGGER, b'{"reason": "manual"}')[:-5])  # the body never finishes
    start = time.monotonic()
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
    try:
        for byte in request:  # a header a byte every 50 ms: slowloris
            if time.monotonic() - start > bound:
                break
            try:
                slow.send(bytes([byte]))
            except OSError:
                break
            time.sleep(0.05)  # the attacker's pace, not a wait for the daemon
        for s in (idle, slow, slow_body):
            closed_within(s, bound - (time.monotonic() - start) + 0.5)
    finally:
        for s in (idle, slow, slow_body):
            s.close()
    # a kept-alive connection that asks again within the timeout is served again
    with httpx.Client(base_url=daemon.base_url) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz").status_code == 200


def test_a_request_being_answered_is_never_cut_by_the_header_timeout(
    redis_server: Any, tmp_path: Path
) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    fake = Path(__file__).resolve().parents[1] / "fakes" / "fake_ytdlp.py"
    env = daemon_env(
        redis_server.url,
        jar,
        COOKIE_SUPERVISOR_QUEUE=QUEUE + "-slow",
        COOKIE_SUPERVISOR_HEADER_TIMEOUT="0.3",
        COOKIE_SUPERVISOR_VALIDATION_URLS="http://127.0.0.1:9/v.mp4",
        COOKIE_SUPERVISOR_YT_DLP_COMMAND=f"{sys.executable},{fake},hang",
        COOKIE_SUPERVISOR_PROBE_TIMEOUT="1.5s",
        COOKIE_SUPERVISOR_VALIDATE_EVERY="0",
    )
    d = Daemon(env=env).start()
    try:
        start = time.monotonic()
        r = d.post("/api/cookies/validate")  # a validation that runs into its probe timeout
        took = time.monotonic() - start
        assert r.status_code == 200 and r.json()["ok"] is False, r.text
        assert took > 1.0, took  # answered long after the header timeout, on the same connection
    finally:
        d.stop()


# --- a connection flood at a lowered descriptor limit ------------------------------------------


class LimitedDaemon(Daemon):
    """The daemon with a soft RLIMIT_NOFILE of `nofile` (inherited from this process at start)."""

    nofile = 256

    def start(self, wait_ready: bool = True) -> Daemon:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, hard))
        try:
            super().start(wait_ready=False)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        if wait_ready:
            wait_for(self.ready, timeout=20, what="daemon /readyz")
        return self


def test_connection_flood_at_a_low_descriptor_limit(redis_server: Any, tmp_path: Path) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    queue = QUEUE + "-flood"
    d = LimitedDaemon(env=daemon_env(redis_server.url, jar, COOKIE_SUPERVISOR_QUEUE=queue))
    d.start()
    flood: list[socket.socket] = []
    try:
        assert d.proc is not None
        limits = Path(f"/proc/{d.proc.pid}/limits").read_text()
        assert any(
            line.startswith("Max open files") and " 256 " in line for line in limits.splitlines()
        ), limits
        lines_before = len(d.log().splitlines())
        flood = open_idle_connections(d.port, 320)  # more than the daemon has descriptors
        start = time.monotonic()
        r = httpx.get(d.base_url + "/healthz", timeout=5)
        took = time.monotonic() - start
        assert r.status_code == 200 and took < 2.0, took
        write_atomic(jar, cookie_jar(expires=int(time.time()) + 90 * 86400))  # read under flood
        wait_for(
            lambda: (
                (s := d.status())["valid"] is True
                and s["logged_in"] is True
                and s["login_expires_at"] < time.time() + 100 * 86400
            ),
            what="the rewritten jar read correctly during the flood",
        )
        assert d.get("/readyz").json()["redis_up"] is True
        descriptors = len(list(Path(f"/proc/{d.proc.pid}/fd").iterdir()))
        assert descriptors < 256 - 16, descriptors
        # the CPU is not spinning: under 0.5 s of CPU over one second
        cpu = _cpu_seconds(d.proc.pid)
        time.sleep(1.0)  # measuring a rate over a fixed window
        assert _cpu_seconds(d.proc.pid) - cpu < 0.5
        assert redis.Redis.from_url(redis_server.url).keys(f"bull:{queue}:[0-9]*") == []
        new_lines = d.log().splitlines()[lines_before:]
        assert len(new_lines) < 10, new_lines[-10:]
        assert "Too many open files" not in d.log()
    finally:
        for s in flood:
            s.close()
        d.stop()


def open_idle_connections(port: int, count: int) -> list[socket.socket]:
    """`count` connections that never send a byte, opened at once (a flood, not a queue)."""
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    deadline = time.monotonic() + 10
    pending = list(socks)
    while pending and time.monotonic() < deadline:
        _, writable, _ = select.select([], pending, [], 0.5)
        pending = [s for s in pending if s not in writable]
    assert not pending, f"{len(pending)} connections never completed"
    return socks


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime in clock ticks


# --- schemathesis against the served description -----------------------------------------------


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_5xx_and_no_answer_off_the_description(
    daemon: Daemon, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(daemon.get("/openapi.json").json())
    headers = {"Authorization": f"Bearer {TOKEN}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(ops) for ops in schema.raw_schema["paths"].values())
    if mode is GenerationMode.NEGATIVE:  # only inputs can be made invalid
        raw = schema.raw_schema["paths"]
        operations = [
            op
            for op in operations
            if {"parameters", "requestBody"} & set(raw[op.path][op.method.lower()])
        ]
        assert len(operations) == 4  # cookies-status, health, trigger-refresh, validate
    calls = 0
    with requests.Session() as session:
        for operation in operations:

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                nonlocal calls
                calls += 1
                case.call_and_validate(
                    base_url=daemon.base_url, session=session, headers=headers, checks=CHECKS
                )

            run()
    assert calls >= len(operations)
