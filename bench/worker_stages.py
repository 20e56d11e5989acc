"""Where a worker's time goes: each stage of an article, beside the floor's three.

    .venv/bin/python bench/worker_stages.py [--pages 300] [--repeat 3]

The same loopback site and pages as ``bench/worker_throughput.py`` and a real
redis-server, all stages run in this one process over every page, in order:
the floor's ``httpx`` GET, ``trafilatura.extract`` and ``HSET``; then the worker's
own, as ``worker.jobs`` runs them: fetch, clean, learned boilerplate (as the
worker remembers it), the article record (fingerprint), the near-duplicate and story
probe, and the commit (the commit script, which checks the learned boilerplate and
finds the candidates, and their verification when it finds some); then the last four
again as a batch runs them, each article's made while Redis runs the commit of the
one before (``worker: the last four, overlapped``). Printed per
stage: CPU and wall milliseconds per article, medians of ``--repeat`` passes
(Redis flushed before each), and the sums. What the worker spends outside these
(RQ's job handling, start-up) is the difference to ``bench/worker_throughput.py``'s
figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
import trafilatura

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker_throughput import Bench  # noqa: E402

from newswire import dedup  # noqa: E402
from newswire.dedup import probe  # noqa: E402
from newswire.model import ArticleRecord, FeedEntry, parse_iso  # noqa: E402
from newswire.store import Commit  # noqa: E402
from newswire.urls import canonicalize  # noqa: E402
from worker import jobs  # noqa: E402
from worker.runtime import Runtime, install  # noqa: E402


class Stages:
    """CPU and wall milliseconds per item of each stage, in the order they ran."""

    def __init__(self) -> None:
        self.figures: dict[str, tuple[float, float]] = {}

    def run(self, name: str, items: Sequence[Any], step: Callable[[Any], Any]) -> list[Any]:
        cpu, wall = time.process_time(), time.perf_counter()
        out = [step(item) for item in items]
        self.figures[name] = (1000 * (time.process_time() - cpu) / len(items),
                              1000 * (time.perf_counter() - wall) / len(items))
        return out


def one_pass(urls: list[str], runtime: Runtime, client: redis.Redis) -> Stages:
    client.flushall()
    # A fresh worker's: the shingle sets kept from the pass before would spare this
    # one's verifications work that a worker meeting these pages once has to do.
    dedup.shingles_of = dedup.RecentShingles(dedup.RECENT_TEXTS)
    stages = Stages()
    with httpx.Client() as http:
        bodies = stages.run("floor: GET", urls, lambda u: http.get(u).text)
    texts = stages.run("floor: trafilatura.extract", bodies, trafilatura.extract)
    stages.run("floor: HSET", range(len(urls)), lambda n: client.hset(
        f"floor:{n}", mapping={"url": urls[n], "text": texts[n] or ""}))
    entries = [FeedEntry(feed="bench", link=u, canonical_url=canonicalize(u), guid=u,
                         title=f"Story {n}", published="2025-02-20T11:05:00Z")
               for n, u in enumerate(urls)]
    pages = stages.run("worker: fetch", entries, jobs.fetch)
    cleaned = stages.run("worker: clean", list(zip(entries, pages, strict=True)),
                         lambda pair: jobs.clean_fetched(*pair, retry_later=True)[0])
    learned = stages.run("worker: learned boilerplate", cleaned,
                         lambda article: runtime.store.without_learned(article, remembered=True))
    now = datetime.now(UTC)

    def made(entry: FeedEntry, view: tuple[Any, ...]) -> ArticleRecord:
        return jobs.build_record(entry, view[0], now=now, fetched_url=entry.canonical_url,
                                 blocks=view[1], learned_blocks=view[2])

    records = stages.run("worker: record, fingerprint", list(zip(entries, learned, strict=True)),
                         lambda pair: made(*pair))
    stages.run("worker: dedup probe", records,
               lambda r: probe(r.id, r.text, parse_iso(r.published) or now))
    stages.run("worker: commit", list(zip(entries, cleaned, records, strict=True)),
               lambda t: runtime.store.commit(t[2], now, rebuild=lambda: made(
                   t[0], runtime.store.without_learned(t[1], remembered=True))))
    # The last four again, as a batch runs them: each article's learned boilerplate and
    # record made while Redis runs the first call of the one before, its probe while
    # Redis runs that one's next call.
    client.flushall()
    sent: list[Commit] = []

    def overlapped(pair: tuple[FeedEntry, Any]) -> None:
        commit = jobs.start_commit(pair[0], pair[1], pair[0].canonical_url, "")
        if sent:
            sent[0].advance()
        commit.prepare()
        if sent:
            sent.pop().result()
        commit.send()
        sent.append(commit)

    stages.run(OVERLAPPED, list(zip(entries, cleaned, strict=True)) + [None],
               lambda pair: overlapped(pair) if pair else sent.pop().result())
    return stages


#: The stage that stands for learned boilerplate, record, probe and commit overlapped.
OVERLAPPED = "worker: the last four, overlapped"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bench = Bench.start(args.pages)
    client, urls, settings = bench.client, bench.urls, bench.settings
    runtime = Runtime.create(settings)
    install(runtime)
    try:
        passes = [one_pass(urls, runtime, client) for _ in range(args.repeat)]
    finally:
        runtime.fetcher.close()
        bench.stop()
    print(f"{args.pages} pages, one process, medians of {args.repeat} passes, "
          "milliseconds per article")
    print(f"  {'stage':34} {'CPU':>6} {'wall':>6}")
    totals = {"floor": [0.0, 0.0], "worker": [0.0, 0.0], "worker, overlapped": [0.0, 0.0]}
    for stage in passes[0].figures:
        cpu = statistics.median(p.figures[stage][0] for p in passes)
        wall = statistics.median(p.figures[stage][1] for p in passes)
        side = stage.split(":")[0]
        # The commit runs the probe again: shown apart, counted once.
        if stage != "worker: dedup probe" and stage != OVERLAPPED:
            totals[side][0] += cpu
            totals[side][1] += wall
        if stage in ("worker: fetch", "worker: clean", OVERLAPPED):
            totals["worker, overlapped"][0] += cpu
            totals["worker, overlapped"][1] += wall
        print(f"  {stage:34} {cpu:6.3f} {wall:6.3f}")
    for side, (cpu, wall) in totals.items():
        print(f"  {side + ', all stages':34} {cpu:6.3f} {wall:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
