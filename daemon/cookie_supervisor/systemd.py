"""sd_notify: READY=1, STATUS=…, WATCHDOG=1, STOPPING=1 over $NOTIFY_SOCKET.

A few lines of stdlib instead of a dependency. Outside systemd (no NOTIFY_SOCKET) every call is a
no-op, so the daemon runs the same in a terminal, a container or a unit.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        # A leading "@" names a socket in the abstract namespace.
        self._address = "\0" + address[1:] if address and address.startswith("@") else address
        self.watchdog_interval = watchdog_usec / 1e6 if watchdog_usec else None

    @classmethod
    def from_env(cls) -> Notifier:
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        # WATCHDOG_PID, when set, says which process systemd expects the pings from.
        ours = not pid or pid == str(os.getpid())
        return cls(os.environ.get("NOTIFY_SOCKET"), int(usec) if usec.isdigit() and ours else None)

    @property
    def enabled(self) -> bool:
        """Running under systemd (a notify socket to talk to)."""
        return bool(self._address)

    def notify(self, *lines: str) -> bool:
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(lines).encode(), self._address)
            return True
        except OSError as exc:  # systemd gone or socket unwritable: log, never crash the daemon
            log.warning("sd_notify failed: %s", exc.strerror)
            return False

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping")
