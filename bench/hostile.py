"""What the hostile-input guards cost, each beside what it is compared with in the same run.

    .venv/bin/python bench/hostile.py [--repeat 5] [--requests 300]

1. Feed parsing: ``parse_feed`` (entity check, character-reference repair, text
   cleaning, caps) against ``feedparser.parse`` alone, on the fixture feeds and on
   generated feeds of 1,000 and 10,000 entries. CPU seconds, median of ``--repeat``.
2. Memory: peak RSS growth (``VmHWM``, in a process of its own per case) of
   ``parse_feed`` on generated feeds of about 1, 5 and 10 MiB (the default feed
   limit), against the document's own size.
3. Fetching: ``Fetcher.get`` over the checked transport (name resolved, every
   address checked, connection to the checked address, deadline on every socket
   operation) against the same ``Fetcher`` over httpx's plain transport, both
   against one loopback HTTP server; wall time per request, median of
   ``--repeat`` rounds of ``--requests`` requests.

Nothing leaves the machine: the server is on 127.0.0.1 and private networks are
allowed for the run (the address check still runs on the checked transport).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newswire.feeds import (  # noqa: E402
    _neutralise_bad_charrefs,
    _refuse_entity_declarations,
    parse_feed,
)
from newswire.http import Fetcher  # noqa: E402
from newswire.settings import Settings  # noqa: E402

BASE = "http://127.0.0.1:8000"


def feed_of(entries: int, words: int = 30) -> bytes:
    summary = ("Officials said the plan would be reviewed again in spring. " * (words // 10 + 1))
    items = "".join(
        f"<item><title>Story number {i} about the council</title>"
        f"<link>https://news.example/2025/02/20/story-{i}</link>"
        f"<guid>https://news.example/2025/02/20/story-{i}</guid>"
        f"<pubDate>Thu, 20 Feb 2025 08:00:00 GMT</pubDate>"
        f"<description>{summary}</description></item>"
        for i in range(entries)
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Bench</title>{items}</channel></rss>").encode()


def cpu(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return statistics.median(times)


def parsing(repeat: int) -> None:
    print("## 1. Feed parsing, CPU ms per document (median of", repeat, "runs)\n")
    print("| document | size | feedparser.parse | parse_feed | ratio | of which the entity and "
          "character-reference checks |")
    print("|---|---:|---:|---:|---:|---:|")
    docs = [(p.name, p.read_bytes().replace(b"{{BASE}}", BASE.encode()))
            for p in sorted((ROOT / "tests" / "data" / "feeds").glob("*.*ss"))
            + sorted((ROOT / "tests" / "data" / "feeds").glob("*.atom"))]
    docs += [("1,000 entries", feed_of(1000)), ("10,000 entries", feed_of(10_000, words=0))]
    for name, body in docs:
        alone = cpu(lambda b=body: feedparser.parse(b, sanitize_html=False), repeat)  # type: ignore[misc]
        ours = cpu(lambda b=body: parse_feed(b, feed="x", url=BASE), repeat)  # type: ignore[misc]
        checks = cpu(lambda b=body: (_refuse_entity_declarations(b, {}),  # type: ignore[misc]
                                     _neutralise_bad_charrefs(b)), repeat)
        print(f"| {name} | {len(body) / 1024:,.0f} KiB | {alone * 1000:,.1f} | "
              f"{ours * 1000:,.1f} | {ours / alone:.2f}× | {checks * 1000:,.2f} |")
    print()


MEASURE = textwrap.dedent("""
    import json, re, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from newswire.feeds import parse_feed

    def peak():
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1])

    body = Path({path!r}).read_bytes()
    before = peak()
    parsed = parse_feed(body, feed="x", url="http://x.example/")
    print(json.dumps({{"entries": len(parsed.entries), "growth_kib": peak() - before}}))
""")


def memory(tmp: Path) -> None:
    print("## 2. Peak memory of parse_feed (VmHWM growth, one process per case)\n")
    print("| document | size | entries | peak growth | growth / size |")
    print("|---|---:|---:|---:|---:|")
    per_mib = len(feed_of(1000)) / (1024 * 1024)
    for target in (1, 5, 10):
        body = feed_of(int(1000 * target / per_mib * 0.98))
        path = tmp / f"feed-{target}.xml"
        path.write_bytes(body)
        done = subprocess.run(
            [sys.executable, "-c", MEASURE.format(root=str(ROOT), path=str(path))],
            capture_output=True, text=True, check=True, timeout=600,
        )
        result = json.loads(done.stdout)
        size = len(body) / (1024 * 1024)
        growth = result["growth_kib"] / 1024
        print(f"| generated | {size:.1f} MiB | {result['entries']:,} | {growth:.0f} MiB | "
              f"{growth / size:.1f}× |")
    print()


def fetching(repeat: int, requests: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            # One write: headers and body in two would meet Nagle and delayed ACKs
            # (40 ms per kept-alive request, the same for both transports).
            body = b"<rss/>" * 100
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://localhost:{server.server_address[1]}/feed"  # a name: resolved each connection
    settings = Settings(allow_private_networks=True)
    print(f"## 3. Fetching from loopback, ms per request (median of {repeat} rounds of "
          f"{requests})\n")
    print("| transport | new connection each time | kept-alive connection |")
    print("|---|---:|---:|")
    rows = {}
    for label, transport in (("httpx plain", httpx.HTTPTransport), ("checked", None)):
        figures = []
        for keep_alive in (False, True):
            headers = {} if keep_alive else {"Connection": "close"}
            with closing(Fetcher(settings, transport=transport() if transport else None)) as f:
                def run(f: Fetcher = f, headers: dict[str, str] = headers) -> None:
                    for _ in range(requests):
                        f.get(url, max_bytes=1 << 20, headers=headers)

                rounds = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    run()
                    rounds.append((time.perf_counter() - started) / requests)
                figures.append(statistics.median(rounds) * 1000)
        rows[label] = figures
        print(f"| {label} | {figures[0]:.2f} | {figures[1]:.2f} |")
    plain, checked = rows["httpx plain"], rows["checked"]
    print(f"| checked / plain | {checked[0] / plain[0]:.2f}× | {checked[1] / plain[1]:.2f}× |")
    server.shutdown()
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    parsing(args.repeat)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        memory(Path(tmp))
    fetching(args.repeat, args.requests)


if __name__ == "__main__":
    main()
