"""Soak: validations every second against a loopback media server and a steady trigger load, for
ten minutes; RSS, open descriptors, threads and event-loop tasks must stay flat.

    .venv/bin/python tests/benchmarks/bench_soak.py [--seconds 600] [--triggers-per-second 20]

Prints a sample every 30 s and the slopes over the second half (the first half includes warm-up:
imports, yt-dlp's first run, caches). Exits 1 when RSS grows faster than 5 MB/h or descriptors,
threads or tasks end above where they stood at half time. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.bench_daemon import rss_mb
from tests.support import (
    Daemon,
    MediaServer,
    RedisServer,
    cookie_jar,
    daemon_env,
    metric,
    write_atomic,
)
from tests.test_decisions import session_line

SAMPLE_EVERY = 30.0
RSS_SLOPE_LIMIT = 5.0  # MB per hour


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, per hour."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs) or 1.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 3600


def trigger_load(base_url: str, per_second: float, stop: threading.Event, sent: list[int]) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while not stop.wait(1 / per_second):
            client.post("/api/cookies/trigger-refresh", json={"reason": "manual"})
            sent[0] += 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--triggers-per-second", type=float, default=20)
    args = ap.parse_args()
    redis = RedisServer().start()
    gate = MediaServer(require_cookie="session=fresh")
    tmp = Path(tempfile.mkdtemp(prefix="cs-soak-"))
    jar = tmp / "cookies.txt"
    write_atomic(jar, cookie_jar(extra_lines=(session_line("fresh"),)))
    env = daemon_env(
        redis.url,
        jar,
        COOKIE_SUPERVISOR_VALIDATION_URLS=gate.url(),
        COOKIE_SUPERVISOR_VALIDATE_EVERY="1s",
        COOKIE_SUPERVISOR_STATE_DIR=str(tmp / "state"),
    )
    d = Daemon(env=env).start()
    assert d.proc is not None
    pid, stop, sent = d.proc.pid, threading.Event(), [0]
    load = threading.Thread(
        target=trigger_load, args=(d.base_url, args.triggers_per_second, stop, sent)
    )
    load.start()
    rows: list[tuple[float, float, int, int, float]] = []
    t0 = time.monotonic()
    try:
        while (elapsed := time.monotonic() - t0) < args.seconds:
            text = d.metrics()
            tasks = metric(text, "cookie_supervisor_asyncio_tasks") or -1
            rows.append((elapsed, rss_mb(pid), fds(pid), threads(pid), tasks))
            print(
                f"t={elapsed:5.0f}s rss={rows[-1][1]:6.1f} MB fds={rows[-1][2]:3d} "
                f"threads={rows[-1][3]:2d} tasks={tasks:3.0f} triggers={sent[0]}",
                flush=True,
            )
            stop.wait(min(SAMPLE_EVERY, max(0.0, args.seconds - elapsed)))
        runs = sum(
            v or 0
            for v in [
                metric(
                    d.metrics(),
                    "cookie_supervisor_validation_runs_total",
                    source="default",
                    result="ok",
                )
            ]
        )
    finally:
        stop.set()
        load.join(10)
        d.stop()
        gate.shutdown()
        redis.cleanup()
    half = [r for r in rows if r[0] >= args.seconds / 2] or rows
    rss_slope = slope([(r[0], r[1]) for r in half])
    grew = [
        name for i, name in ((2, "fds"), (3, "threads"), (4, "tasks")) if rows[-1][i] > half[0][i]
    ]
    print(
        f"\n{args.seconds:.0f} s: {runs:.0f} validations, {sent[0]} triggers; second half: "
        f"RSS slope {rss_slope:+.2f} MB/h (limit {RSS_SLOPE_LIMIT}), "
        f"fds {half[0][2]}→{rows[-1][2]}, threads {half[0][3]}→{rows[-1][3]}, "
        f"tasks {half[0][4]:.0f}→{rows[-1][4]:.0f}"
    )
    ok = rss_slope <= RSS_SLOPE_LIMIT and not grew
    print("flat" if ok else f"NOT FLAT: {', '.join(grew) or 'RSS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
