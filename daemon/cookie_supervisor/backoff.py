"""The one backoff formula of the daemon: refreshes (the Lua in bull.py applies it atomically in
Redis, so several daemons share one backoff; tests/test_backoff.py holds the two together),
webhook retries and journal follower restarts."""

from __future__ import annotations


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """The wait after `failures` consecutive failures: base × 2^(n−1), capped.

    The one formula of the daemon's backoffs: refreshes (Redis applies it atomically in bull.py,
    so several daemons share one), webhook retries and journal follower restarts."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** min(failures - 1, 64)))  # 2.0 ** 1024 overflows
