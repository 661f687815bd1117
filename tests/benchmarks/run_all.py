"""`make bench`: every benchmark, one after another, in one run. Each prints its figures; one that
misses its target exits non-zero and is listed at the end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "bench_enqueue.py",
    "bench_trigger.py",
    "bench_probe.py",
    "bench_daemon.py",
    "bench_memory.py",
    "bench_metrics.py",
    "bench_soak.py",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)]).returncode:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
