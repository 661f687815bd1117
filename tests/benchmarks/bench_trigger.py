"""Trigger-endpoint throughput and latency under concurrent load (all but one coalesce).

    .venv/bin/python tests/benchmarks/bench_trigger.py [--requests 5000] [--concurrency 50]

The load comes from one asyncio httpx client on the same 2-core box as the daemon and Redis, so
the figures are a floor: the client costs about as much CPU as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import Daemon, RedisServer, cookie_jar, write_atomic


async def load(url: str, total: int, concurrency: int) -> tuple[list[float], Counter[str], float]:
    latencies: list[float] = []
    states: Counter[str] = Counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                t0 = time.perf_counter()
                r = await client.post(
                    url, json={"reason": "bot_detection", "error": "HTTP Error 403"}
                )
                latencies.append(time.perf_counter() - t0)
                states[r.json().get("state", str(r.status_code))] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return latencies, states, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    redis = RedisServer().start()
    jar = Path(tempfile.mkdtemp(prefix="cs-bench-")) / "cookies.txt"
    write_atomic(jar, cookie_jar())
    d = Daemon(
        env={
            "REDIS_URL": redis.url,
            "YT_DLP_COOKIES_FILE": str(jar),
            "COOKIE_SUPERVISOR_VALIDATION_URLS": "",
            "COOKIE_SUPERVISOR_RATE_LIMIT": "0",
        }
    ).start()
    try:
        url = d.base_url + "/api/cookies/trigger-refresh"
        asyncio.run(load(url, 200, args.concurrency))  # warm-up
        lat, states, wall = asyncio.run(load(url, args.requests, args.concurrency))
    finally:
        d.stop()
        redis.cleanup()
    q = statistics.quantiles(lat, n=100)
    print(f"trigger-refresh: {args.requests} requests, concurrency {args.concurrency}")
    print(f"  throughput : {args.requests / wall:.0f} req/s")
    p50, p99, top = q[49] * 1000, q[98] * 1000, max(lat) * 1000
    print(f"  latency    : p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {top:.1f} ms")
    print(f"  outcomes   : {dict(states)}")


if __name__ == "__main__":
    main()
