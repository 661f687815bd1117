"""The state file: what the daemon must remember across a restart, in one JSON document.

Per source, the login sessions seen (fingerprint → first seen; so a restart neither makes an old
session new nor forgets its age) and the refresh owed while Redis was away; the key that makes
fingerprints comparable across restarts; the webhook outbox and the journal cursors. Decisions
shared by several daemons (pending job, cooldown, backoff) live in Redis, not here.

Written atomically (temporary file, fsync, rename, fsync of the directory) with mode 0600. A
corrupt, unreadable or newer-schema file is logged once and ignored: losing it costs a little
history, never the daemon.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from cookie_supervisor import core
from cookie_supervisor.classify import Reason

log = logging.getLogger(__name__)
SCHEMA = 1
FILENAME = "state.json"


class StateFile:
    """One JSON document under the state directory; `None` directory keeps nothing."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / FILENAME if directory is not None else None

    def load(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("state file ignored: %s", _why(exc), extra={"path": str(self.path)})
            return {}
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            log.warning("state file ignored: unknown schema", extra={"path": str(self.path)})
            return {}
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Replace the file atomically; raises OSError for the caller to log."""
        if self.path is None:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps({**data, "schema": SCHEMA}, separators=(",", ":")).encode()
        tmp = self.path.with_name(f".{FILENAME}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path.parent)


def fingerprint_key(data: dict[str, Any]) -> bytes:
    """The key of the session fingerprints: the stored one, else a new one (stored next save)."""
    raw = data.get("key")
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            key = bytes.fromhex(raw)
            if len(key) == 32:
                return key
    return secrets.token_bytes(32)


def snapshot(state: core.State, key: bytes, **extra: Any) -> dict[str, Any]:
    sources = {
        name: {
            "sessions": dict(src.sessions),
            "owed": src.owed.as_dict() if src.owed else None,
        }
        for name, src in state.sources.items()
    }
    return {"key": key.hex(), "sources": sources, **extra}


def restore(state: core.State, data: dict[str, Any]) -> None:
    """Put what the file remembers back into the core's state; skip what does not parse."""
    stored = data.get("sources")
    if not isinstance(stored, dict):
        return
    for name, src in state.sources.items():
        entry = stored.get(name)
        if not isinstance(entry, dict):
            continue
        sessions = entry.get("sessions")
        if isinstance(sessions, dict):
            src.sessions = {
                str(fp): float(at)
                for fp, at in sessions.items()
                if isinstance(at, int | float) and not isinstance(at, bool)
            }
        src.owed = _owed(entry.get("owed"))


def _owed(raw: Any) -> core.Owed | None:
    if not isinstance(raw, dict):
        return None
    try:
        return core.Owed(
            Reason(raw["reason"]), float(raw["at"]), str(raw["origin"]), bool(raw.get("force"))
        )
    except (KeyError, ValueError, TypeError):
        return None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return "not valid JSON"
