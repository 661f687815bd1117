"""Trigger-endpoint throughput and latency under concurrent load, all coalescing onto one job.

    .venv/bin/python tests/benchmarks/bench_trigger.py [--seconds 10] [--connections 50]

Load from wrk (C, Debian's `wrk`; `make bench` installs it) on 127.0.0.1, so the figures are the
daemon's, not a Python client's. wrk and the daemon share this 2-core box. After the run, Redis
must hold exactly one job: coalescing under load.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import Daemon, RedisServer, cookie_jar, daemon_env, write_atomic

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    args = ap.parse_args()
    wrk = shutil.which("wrk")
    assert wrk, "wrk is not installed: apt-get install wrk (make bench does)"
    server = RedisServer().start()
    jar = Path(tempfile.mkdtemp(prefix="cs-bench-")) / "cookies.txt"
    write_atomic(jar, cookie_jar())
    d = Daemon(env=daemon_env(server.url, jar)).start()
    try:
        url = d.base_url + "/api/cookies/trigger-refresh"
        cmd = [
            wrk,
            "-t2",
            f"-c{args.connections}",
            f"-d{args.seconds}s",
            "--latency",
            "-s",
            str(HERE / "trigger.lua"),
            url,
        ]
        subprocess.run([*cmd[:3], "-d2s", *cmd[4:]], capture_output=True, check=True)  # warm-up
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        jobs = [
            k
            for k in redis.Redis.from_url(server.url).keys("bull:cookie-refresh:*")
            if k.rsplit(b":", 1)[1].isdigit()
        ]
    finally:
        d.stop()
        server.cleanup()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    print(f"trigger-refresh under wrk: {args.connections} connections, {args.seconds} s")
    print(f"  throughput : {float(rate.group(1)) if rate else 0:.0f} req/s")
    print(f"  latency    : p50 {lat.get('50')}, p90 {lat.get('90')}, p99 {lat.get('99')}")
    print(f"  non-2xx    : {errors.group(1) if errors else 0}")
    print(f"  jobs in Redis afterwards: {len(jobs)} (every other request coalesced)")


if __name__ == "__main__":
    main()
