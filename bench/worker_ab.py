"""One worker of several checkouts against the floor, alternated on the same pages.

    .venv/bin/python bench/worker_ab.py [--pages 300] [--rounds 8] [--latency 0.2]
                                        CHECKOUT [CHECKOUT...]

The development machine is shared and its speed drifts by half within minutes, so
figures from runs minutes apart compare badly. This runs, round after round, the
floor of ``bench/worker_throughput.py`` and then ``python -m worker --burst`` of each
CHECKOUT (a directory holding a newswire tree, e.g. from ``git worktree add
/tmp/before REV``; it runs with this venv's packages) on the same loopback site and
Redis, flushed before each and enqueued by that checkout's own scheduler code (its
batch sizes and default ``NEWSWIRE_JOB_BATCH``), and prints the medians of wall time
and CPU per article of each, and the floor / worker ratio of each: the median of the
rounds' own ratios. ``--latency`` as in ``bench/worker_throughput.py``: pages that
answer as a distant site's do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker_throughput import (  # noqa: E402
    FLOOR,
    Bench,
    add_latency_argument,
    byte_compiled,
    timed,
)

#: Run in a checkout: its bench's enqueue, with its own settings from the environment.
ENQUEUE = """
import sys
sys.path.insert(0, "bench")
import redis
from newswire.settings import Settings
from worker_throughput import enqueue
settings = Settings.from_env()
enqueue(settings, redis.Redis.from_url(settings.redis_url), sys.argv[1:])
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=8)
    add_latency_argument(parser)
    parser.add_argument("checkouts", nargs="+", type=Path, metavar="CHECKOUT")
    args = parser.parse_args()
    for checkout in args.checkouts:
        for needed in ("worker/__main__.py", "bench/worker_throughput.py"):
            if not (checkout / needed).exists():
                parser.error(f"{checkout}: no newswire tree there ({needed})")
        byte_compiled(checkout)

    bench = Bench.start(args.pages, args.latency)
    client, urls = bench.client, bench.urls
    names = ["floor", *(str(c) for c in args.checkouts)]
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    try:
        for _ in range(args.rounds):
            client.flushall()
            figures["floor"].append(timed(
                [[sys.executable, "-c", FLOOR, bench.settings.redis_url, *urls]], bench.env))
            for checkout in args.checkouts:
                client.flushall()
                env, cwd = dict(bench.env, PYTHONPATH=str(checkout.resolve())), checkout.resolve()
                timed([[sys.executable, "-c", ENQUEUE, *urls]], env, cwd=cwd)
                figures[str(checkout)].append(timed(
                    [[sys.executable, "-m", "worker", "--burst"]], env, cwd=cwd))
                stored = sum(1 for _ in client.scan_iter("news:article:*", count=1000))
                assert stored == len(urls), f"{checkout}: {stored} of {len(urls)} stored"
    finally:
        bench.stop()
    print(f"{len(urls)} pages, {args.rounds} rounds, medians, {os.cpu_count()} cores")
    wall = {name: statistics.median(w for w, _ in runs) for name, runs in figures.items()}
    for name, runs in figures.items():
        cpu = statistics.median(c for _, c in runs)
        # As bench/worker_throughput.py: the median of each round's ratio.
        rounds = [f / w for (f, _), (w, _) in zip(figures["floor"], runs, strict=True)]
        ratio = f"  floor / worker {statistics.median(rounds):.2f}" if name != "floor" else ""
        print(f"  {name:24} {wall[name]:6.2f} s  {1000 * cpu / len(urls):5.2f} ms CPU/article"
              f"{ratio}  (runs: {', '.join(f'{w:.2f}' for w, _ in runs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
