"""Soak: `newswire up` for minutes on a loopback site, workers killed at random.

    .venv/bin/python bench/soak.py [--feeds 300] [--items 10] [--workers 3]
                                   [--minutes 4] [--kill-every 15]

A loopback site serves ``--feeds`` RSS feeds; each starts with half of its
``--items`` articles and gains one more every ``--grow-every`` seconds, so new
stories keep arriving while workers die. Every page is a story of its own. The
bench runs the real ``newswire up --workers N`` (embedded Redis, a data folder of
its own) and kills a random worker with SIGKILL every ``--kill-every`` seconds;
``up`` starts it again, and the new worker hands the dead one's job back to RQ.

At the end (every article published, the queue drained) it checks, from Redis:
every article stored once (one hash per canonical URL), one stream entry each, and
as many ``news:new`` announcements as new stories, no failed job; after ``up`` has
stopped, that no process of the run is left (a killed worker's forked RQ scheduler
must die with it). It prints Redis memory and worker RSS over time, so growth would
show. Exit status 1 if a check fails.
Only loopback traffic; the run stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "harbour council ferry bridge river winter market school hospital station mayor budget "
    "road storm village farmer teacher court police museum library factory airport train "
    "island forest mountain election minister energy water housing festival theatre garden "
    "bakery clinic tunnel canal lighthouse orchard quarry vineyard brewery ranger pilot"
).split()


def story_html(feed: int, item: int) -> bytes:
    rng = random.Random(feed * 100_003 + item)
    paragraphs = "".join(
        "<p>" + " ".join(rng.choice(WORDS) for _ in range(40)).capitalize() + ".</p>"
        for _ in range(5))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Feed {feed} '
            f"story {item}</title></head><body><nav><a href='/'>Home</a></nav><article>"
            f"<h1>Feed {feed} story {item}</h1>{paragraphs}</article></body></html>").encode()


class SoakSite:
    def __init__(self, feeds: int, items: int, grow_every: float) -> None:
        self.feeds, self.items, self.grow_every = feeds, items, grow_every
        self.started = time.monotonic()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle and the
            # client's delayed ACK hold every response back about 40 ms on loopback.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802
                status, body, kind = site.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def published(self) -> int:
        """Items each feed lists now: half at first, one more per ``grow_every``."""
        grown = int((time.monotonic() - self.started) / self.grow_every)
        return min(self.items, self.items // 2 + grown)

    def answer(self, path: str) -> tuple[int, bytes, str]:
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "feed":
            return 200, self.feed_xml(int(parts[1])), "application/rss+xml"
        if len(parts) == 3 and parts[0] == "story":
            return 200, story_html(int(parts[1]), int(parts[2])), "text/html; charset=utf-8"
        return 404, b"not found", "text/plain"

    def feed_xml(self, feed: int) -> bytes:
        epoch = datetime(2025, 2, 20, tzinfo=UTC)
        items = "".join(
            f"<item><title>Feed {feed} story {i}</title>"
            f"<link>{self.base}/story/{feed}/{i}</link><guid>{self.base}/story/{feed}/{i}</guid>"
            f"<pubDate>{format_datetime(epoch + timedelta(minutes=i))}</pubDate></item>"
            for i in range(self.published()))
        return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {feed}'
                f"</title><link>{self.base}/</link>{items}</channel></rss>").encode()


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _environ(proc: Path) -> bytes:
    try:
        return (proc / "environ").read_bytes()
    except OSError:
        return b""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--items", type=int, default=10, help="articles per feed in the end")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=4.0, help="length of the run")
    parser.add_argument("--kill-every", type=float, default=15.0, help="seconds between kills")
    parser.add_argument("--grow-every", type=float, default=20.0,
                        help="seconds between new items in each feed")
    args = parser.parse_args()

    site = SoakSite(args.feeds, args.items, args.grow_every)
    folder = Path(tempfile.mkdtemp(prefix="newswire-soak-"))
    feeds = folder / "feeds.toml"
    feeds.write_text("".join(
        f'[[feeds]]\nname = "feed{n}"\nurl = "{site.base}/feed/{n}"\ninterval = 10\n\n'
        for n in range(args.feeds)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWIRE_", "REDIS_"))}
    # Every feed is on one loopback host: the default spacing between requests to one
    # host (politeness on the web) would make the soak a test of that spacing.
    env.update(NEWSWIRE_FEEDS=str(feeds), NEWSWIRE_ALLOW_PRIVATE_NETWORKS="1",
               NEWSWIRE_DATA=str(folder / ".newswire"), NEWSWIRE_HOST_SPACING_MS="0",
               PYTHONPATH=str(ROOT))
    log = (folder / "up.log").open("wb")
    up = subprocess.Popen([sys.executable, "-m", "newswire", "up", "--workers",
                           str(args.workers)], env=env, cwd=folder, stdout=log,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    socket = folder / ".newswire" / "redis.sock"
    deadline = time.monotonic() + 60
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    client = redis.Redis(unix_socket_path=str(socket))
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("news:new")
    announced: list[str] = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                message = pubsub.get_message(timeout=0.2)
            except redis.RedisError:
                time.sleep(0.2)
                continue
            if message:
                announced.append(json.loads(message["data"])["id"])

    threading.Thread(target=listen, daemon=True).start()
    expected = args.feeds * args.items
    print(f"soak: {args.feeds} feeds x {args.items} items = {expected} articles, "
          f"{args.workers} workers, {args.minutes:g} min, a worker killed every "
          f"{args.kill_every:g} s; data in {folder}")
    print(f"{'t (s)':>6} {'stored':>7} {'queued':>7} {'redis MiB':>9} {'worker RSS MiB':>15} "
          f"{'kills':>5}")
    samples: list[tuple[float, int, float, float]] = []
    kills, started = 0, time.monotonic()
    end = started + args.minutes * 60
    next_kill = started + args.kill_every
    rng = random.Random(1)
    failed = False
    try:
        while True:
            now = time.monotonic()
            stored = sum(1 for _ in client.scan_iter("news:article:*", count=1000))
            queued = int(client.llen("rq:queue:newswire"))
            memory = int(client.info("memory")["used_memory"]) / 2**20
            workers = [p for p in children(up.pid) if "-m worker" in cmdline(p)]
            rss = max((rss_mib(p) for p in workers), default=0.0)
            samples.append((now - started, stored, memory, rss))
            print(f"{now - started:6.0f} {stored:7d} {queued:7d} {memory:9.1f} {rss:15.1f} "
                  f"{kills:5d}", flush=True)
            if now >= end and site.published() == args.items and stored >= expected \
                    and queued == 0:
                break
            if now >= end + 300:
                print("soak: not every article was stored 5 minutes after the end")
                failed = True
                break
            if now >= next_kill and now < end and workers:
                os.kill(rng.choice(workers), signal.SIGKILL)
                kills += 1
                next_kill = now + args.kill_every
            time.sleep(5)
        time.sleep(2)  # the last announcements
        urls = [client.hget(k, "canonical_url") for k in client.scan_iter("news:article:*")]
        stream = client.xrange("news:stream")
        new = [f for _, f in stream if f[b"type"] == b"new"]
        checks = {
            "every article stored": len(set(urls)) == expected,
            "no article stored twice": len(urls) == len(set(urls)),
            "one stream entry each": len(stream) == len(urls),
            "announcements == new stories": sorted(announced) == sorted(
                f[b"id"].decode() for f in new),
            "no job failed": client.zcard("rq:failed:newswire") == 0,
        }
    finally:
        stop.set()
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        site.server.shutdown()
    marker = f"NEWSWIRE_DATA={folder / '.newswire'}".encode()
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _environ(p)]
    checks["no process left behind"] = not left
    half = len(samples) // 2
    elapsed = samples[-1][0]
    print(f"\nstored {len(urls)} articles in {elapsed:.0f} s ({len(urls) / elapsed:.1f}/s) with "
          f"{kills} workers killed; {len(announced)} announced, {len(new)} new stories")
    first, second = samples[1:half] or samples[:1], samples[half:]
    for what, index in (("Redis used_memory MiB", 2), ("max worker RSS MiB", 3)):
        print(f"{what}: median {statistics.median(s[index] for s in first):.1f} in the first "
              f"half, {statistics.median(s[index] for s in second):.1f} in the second")
    per = [s[2] * 2**20 / s[1] for s in samples if s[1] >= 100]
    if per:
        print(f"Redis bytes per stored article (text included): {per[len(per) // 2]:.0f} at "
              f"mid-run, {per[-1]:.0f} at the end")
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        failed |= not ok
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
