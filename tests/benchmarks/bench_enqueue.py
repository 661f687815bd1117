"""Enqueue rate of bull.py against Node bull's own `queue.add()`, side by side on one Redis.

    .venv/bin/python tests/benchmarks/bench_enqueue.py [--jobs 10000] [--rounds 5] [--inflight 1000]

Modes: one at a time (await each add), and many in flight (`--inflight` adds awaited together:
Promise.all in Node, asyncio.gather here). Rounds alternate Node and Python so that drift of this
shared 2-core box hits both; medians are reported. The Python side is the tests' producer
(tests/bullkit.py), on the daemon's own add Lua. Also the coalesced path of request_refresh, the
daemon's trigger path, one at a time and with 50 callers (requests in flight together share one
round trip), with the client CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cookie_supervisor.bull import BullQueue, JobOptions
from tests.bullkit import Producer
from tests.support import INTEROP, RedisServer

HERE = Path(__file__).resolve().parent


def data(i: int) -> dict[str, Any]:
    return {"i": i, "reason": "bench", "source": "default", "cookies_file": "/srv/cookies.txt"}


def node_rate(url: str, queue: str, jobs: int, inflight: int) -> float:
    env = {**os.environ, "NODE_PATH": str(INTEROP / "node_modules")}
    out = subprocess.run(
        ["node", str(HERE / "enqueue.js"), url, queue, str(jobs), str(inflight)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(json.loads(out.stdout)["rate"])


async def python_rate(url: str, queue: str, jobs: int, inflight: int) -> float:
    # a producer of the tests, on redis-py's pool: at most 50 connections, callers wait for one
    client = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=50))
    kit = Producer(BullQueue(client, queue))
    await kit.add(data(-1))  # warm: connection, script load
    start = time.perf_counter()
    for done in range(0, jobs, inflight):
        batch = range(done, min(jobs, done + inflight))
        if inflight == 1:
            await kit.add(data(done))
        else:
            await asyncio.gather(*[kit.add(data(i)) for i in batch])
    rate = jobs / (time.perf_counter() - start)
    await client.aclose()
    return rate


async def coalesced_rate(url: str, calls: int, callers: int) -> tuple[float, float]:
    """Calls per second and client CPU microseconds per call, `callers` looping together."""
    client = Redis.from_url(url)
    q = BullQueue(client, f"bench-coalesce-{callers}")
    await q.request_refresh("default", data(0), JobOptions(), cooldown_s=600)

    async def caller() -> None:
        for _ in range(calls // callers):
            await q.request_refresh("default", data(0), JobOptions(), cooldown_s=600)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*[caller() for _ in range(callers)])
    done = calls // callers * callers
    rate = done / (time.perf_counter() - start)
    cpu_us = (time.process_time() - cpu) / done * 1e6
    await q.aclose()
    await client.aclose()
    return rate, cpu_us


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--inflight", type=int, default=1000)
    args = ap.parse_args()
    redis = RedisServer().start()
    try:
        rates: dict[tuple[str, str], list[float]] = {}
        for r in range(args.rounds):
            for mode, inflight in (
                ("one at a time", 1),
                (f"{args.inflight} in flight", args.inflight),
            ):
                tag = f"{r}-{inflight}"
                rates.setdefault(("node", mode), []).append(
                    node_rate(redis.url, f"node-{tag}", args.jobs, inflight)
                )
                rates.setdefault(("python", mode), []).append(
                    asyncio.run(python_rate(redis.url, f"py-{tag}", args.jobs, inflight))
                )
        coalesced = {n: asyncio.run(coalesced_rate(redis.url, args.jobs, n)) for n in (1, 50)}
    finally:
        redis.cleanup()
    print(f"enqueue, {args.jobs} jobs per run, median of {args.rounds} alternating rounds")
    print(f"{'mode':<18}{'Node bull add()':>18}{'bullkit add()':>16}{'ratio':>8}")
    for mode in ("one at a time", f"{args.inflight} in flight"):
        node = statistics.median(rates[("node", mode)])
        py = statistics.median(rates[("python", mode)])
        print(f"{mode:<18}{node:>14,.0f}/s{py:>12,.0f}/s{py / node:>8.2f}")
    for callers, (rate, cpu_us) in coalesced.items():
        print(
            f"request_refresh, coalesced path, {callers:>2} caller(s): {rate:,.0f}/s, "
            f"{cpu_us:.0f} us client CPU per call"
        )


if __name__ == "__main__":
    main()
