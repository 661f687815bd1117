"""sd_notify against a socket this test plays systemd on."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Daemon, cookie_jar, wait_for, write_atomic


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def seen(self, line: str) -> bool:
        return any(line in m.splitlines() for m in self.drain())


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.sock.close()


def test_ready_status_watchdog_stopping(
    redis_url: str, tmp_path: Path, notify: NotifySocket
) -> None:
    jar = tmp_path / "c.txt"
    write_atomic(jar, cookie_jar())
    d = Daemon(
        env={
            "REDIS_URL": redis_url,
            "YT_DLP_COOKIES_FILE": str(jar),
            "COOKIE_SUPERVISOR_VALIDATION_URLS": "none",
            "NOTIFY_SOCKET": str(notify.path),
            "WATCHDOG_USEC": "200000",  # 0.2 s → pings every 0.1 s
        }
    ).start()
    try:
        wait_for(lambda: notify.seen("READY=1"), what="READY=1")
        ready = next(m for m in notify.messages if "READY=1" in m)
        assert "STATUS=supervising 1 source(s)" in ready
        assert f"MAINPID={d.proc.pid}" in ready  # type: ignore[union-attr]
        # then the cookie health, for `systemctl status`
        wait_for(lambda: notify.seen("STATUS=1 source: default ok"), what="health in STATUS=")
        jar.unlink()
        wait_for(lambda: notify.seen("STATUS=1 source: default missing cookies"), timeout=10)
        count = lambda: sum("WATCHDOG=1" in m for m in notify.drain())  # noqa: E731
        wait_for(lambda: count() >= 3, what="repeated WATCHDOG=1 pings")
    finally:
        assert d.stop() == 0
    wait_for(lambda: notify.seen("STOPPING=1"), what="STOPPING=1")


def test_abstract_socket_address(tmp_path: Path) -> None:
    from cookie_supervisor.systemd import Notifier

    name = f"cs-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind("\0" + name)
    try:
        assert Notifier("@" + name).status("hello")
        assert srv.recv(100) == b"STATUS=hello"
        assert not Notifier(None).ready("x")  # outside systemd: a no-op
    finally:
        srv.close()
