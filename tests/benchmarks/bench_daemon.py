"""Daemon figures: start-up, idle RSS and CPU, file change → metrics, RSS across validations.

    .venv/bin/python tests/benchmarks/bench_daemon.py [--validations 200]

Everything runs on 127.0.0.1: a private redis-server, the daemon, and a local HTTP server that
serves the media the validation downloads check.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import (
    Daemon,
    MediaServer,
    RedisServer,
    cookie_jar,
    metric,
    wait_for,
    write_atomic,
)
from tests.test_decisions import session_line

TICK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def startup(redis: RedisServer, jar: Path) -> tuple[Daemon, float]:
    d = Daemon(
        env={
            "REDIS_URL": redis.url,
            "YT_DLP_COOKIES_FILE": str(jar),
            "COOKIE_SUPERVISOR_VALIDATION_URLS": "none",
        }
    )
    t0 = time.monotonic()
    d.start(wait_ready=False)
    wait_for(lambda: d.get("/metrics").status_code == 200, timeout=30, interval=0.005)
    return d, time.monotonic() - t0


def idle(d: Daemon, seconds: float) -> tuple[float, float]:
    assert d.proc is not None
    time.sleep(2)  # let start-up work (first inspection, first poll) finish
    c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
    time.sleep(seconds)
    cpu = (cpu_seconds(d.proc.pid) - c0) / (time.monotonic() - t0) * 100
    return rss_mb(d.proc.pid), cpu


def change_latency(d: Daemon, jar: Path, rounds: int) -> list[float]:
    took = []
    for i in range(rounds):
        extra = tuple(f".youtube.com\tTRUE\t/\tTRUE\t0\tX{j}\tx" for j in range(i + 1))
        write_atomic(jar, cookie_jar(extra_lines=extra))
        t0 = time.monotonic()
        wait_for(
            lambda n=6 + i + 1: (
                metric(d.metrics(), "cookie_supervisor_file_cookies", source="default") == n
            ),
            interval=0.002,
        )
        took.append(time.monotonic() - t0)
    return took


def validations(redis: RedisServer, tmp: Path, runs: int) -> tuple[float, float, float]:
    gate = MediaServer(require_cookie="session=fresh")
    jar = tmp / "v.txt"
    write_atomic(jar, cookie_jar(extra_lines=(session_line("fresh"),)))
    d = Daemon(
        env={
            "REDIS_URL": redis.url,
            "YT_DLP_COOKIES_FILE": str(jar),
            "COOKIE_SUPERVISOR_VALIDATION_URLS": gate.url(),
            "COOKIE_SUPERVISOR_VALIDATE_EVERY": "0",
            "COOKIE_SUPERVISOR_RATE_LIMIT": "0",  # 200 POSTs in a few minutes is the point
        }
    ).start()
    assert d.proc is not None
    try:
        wait_for(lambda: d.status()["last_validation"], timeout=30)
        after_one = rss_mb(d.proc.pid)
        t0 = time.monotonic()
        for _ in range(runs):
            answer = d.post("/api/cookies/validate")
            assert answer.status_code == 200 and answer.json()["ok"] is True, answer.text
        per_run = (time.monotonic() - t0) / runs
        return after_one, rss_mb(d.proc.pid), per_run
    finally:
        d.stop()
        gate.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--validations", type=int, default=200)
    ap.add_argument("--idle", type=float, default=10.0)
    args = ap.parse_args()
    redis = RedisServer().start()
    tmp = Path(tempfile.mkdtemp(prefix="cs-bench-"))
    try:
        jar = tmp / "cookies.txt"
        write_atomic(jar, cookie_jar())
        d, first = startup(redis, jar)
        try:
            rss, cpu = idle(d, args.idle)
            lat = change_latency(d, jar, 20)
        finally:
            d.stop()
        print(f"start → first /metrics answer : {first:.2f} s")
        print(f"idle RSS                      : {rss:.1f} MB")
        print(f"idle CPU over {args.idle:.0f} s          : {cpu:.2f} %")
        print(
            f"file change → metrics (n=20)  : median {statistics.median(lat) * 1000:.0f} ms, "
            f"max {max(lat) * 1000:.0f} ms"
        )
        if args.validations:
            one, many, per = validations(redis, tmp, args.validations)
            print(f"RSS after 1 validation        : {one:.1f} MB")
            print(
                f"RSS after {args.validations} more validations : {many:.1f} MB "
                f"({many - one:+.1f} MB; {per:.2f} s per validation)"
            )
    finally:
        redis.cleanup()


if __name__ == "__main__":
    main()
