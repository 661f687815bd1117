"""Cost of one validation (`run_probe`, download mode) against a bare yt-dlp run of the same check.

    .venv/bin/python tests/benchmarks/bench_probe.py [--runs 20]

Against a local HTTP server on 127.0.0.1 serving a small media file. Each measurement runs in a
fresh process so that getrusage(RUSAGE_CHILDREN) is exactly that run's child: CPU (user+sys) and
peak RSS of yt-dlp; wall time is taken around the call (the probe's private copy, its pipes and
its removal included). Runs alternate probe and bare. The budget: a validation costs at most
BUDGET times the bare run, in wall time and CPU; the exit code says whether it held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cookie_supervisor.probe import run_probe, ytdlp_args, ytdlp_version
from tests.support import MediaServer, cookie_jar, write_atomic

BUDGET = 1.1


def one(kind: str, url: str, jar: Path) -> dict[str, float]:
    start = time.perf_counter()
    if kind == "probe":
        result = asyncio.run(run_probe(jar, url, mode="download"))
        assert result.ok, result
    else:
        copy = Path(tempfile.mkdtemp()) / "cookies.txt"
        shutil.copyfile(jar, copy)  # yt-dlp rewrites its --cookies file: never the jar itself
        argv = [sys.executable, "-m", "yt_dlp", *ytdlp_args(copy, url, "download", None, None)]
        subprocess.run(argv, check=True, capture_output=True)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def measure(kind: str, url: str, jar: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--one", kind, url, str(jar)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--one", nargs=3, metavar=("KIND", "URL", "JAR"))
    args = ap.parse_args()
    if args.one:
        kind, url, jar = args.one
        print(json.dumps(one(kind, url, Path(jar))))
        return 0
    server = MediaServer()
    jar = Path(tempfile.mkdtemp(prefix="cs-bench-")) / "cookies.txt"
    write_atomic(jar, cookie_jar())
    try:
        runs: dict[str, list[dict[str, float]]] = {"probe": [], "bare": []}
        for _ in range(args.runs):
            for kind in runs:
                runs[kind].append(measure(kind, server.url(), jar))
    finally:
        server.shutdown()
    print(
        f"one validation (download mode, local server, yt-dlp {ytdlp_version(())}), "
        f"median of {args.runs} alternating runs"
    )
    print(f"{'':<14}{'run_probe':>12}{'bare yt-dlp':>14}{'ratio':>8}")
    held = True
    for key, unit in (("wall", "s"), ("cpu", "s"), ("rss_mb", "MB")):
        p = statistics.median(r[key] for r in runs["probe"])
        b = statistics.median(r[key] for r in runs["bare"])
        print(f"{key + ' (' + unit + ')':<14}{p:>12.3f}{b:>14.3f}{p / b:>8.2f}")
        held = held and (key == "rss_mb" or p / b <= BUDGET)
    print(f"budget: run_probe <= {BUDGET}x bare in wall and CPU: {'held' if held else 'EXCEEDED'}")
    return 0 if held else 1


if __name__ == "__main__":
    raise SystemExit(main())
