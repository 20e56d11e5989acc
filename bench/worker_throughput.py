"""Worker throughput against the floor: the cost of the work itself.

    .venv/bin/python bench/worker_throughput.py [--pages 300] [--repeat 3] [--latency 0.2]
    .venv/bin/python bench/worker_throughput.py --memory 10000
    .venv/bin/python bench/worker_throughput.py --instructions

A loopback site (its own process: asyncio, keep-alive, responses prebuilt, so it
takes little of the cores the workers need) serves ``--pages`` article pages
shaped like real news pages: head metadata and JSON-LD, a navigation bar, a
story of its own (random words, seeded, with the names and figures a news story has:
a few names of its own, repeated, among common ones that many stories share, so the
story index has postings to read and candidates to verify, as on a real site), a
donation appeal, related links, a footer and an inline script. A real redis-server
runs in a child. Measured, each as whole processes, wall clock from start to exit,
``--repeat`` times (medians):

* **floor**: one process looping over the same URLs doing what no ingestion can
  skip: one ``httpx`` GET, one ``trafilatura.extract``, one Redis ``HSET`` with the
  text.
* **1 worker**: the same URLs as feed entries enqueued the way the scheduler does
  (not timed), then ``python -m worker --burst``: fetch, clean, fingerprint,
  dedup, commit, announce.
* **2 workers**: two ``python -m worker --burst`` at once on the same queue.
* **2 floors**: two floor processes at once, each over half the URLs: how far two
  processes scale on this machine at all (they share its cores with the site and
  Redis, and its caches), the ceiling for the two workers.
* **1 and 2 running workers**: ``python -m worker`` as deployed, long-running: started,
  registered with RQ and warmed up on pages of their own first (so start-up, imports
  and first-use costs are out), then timed from the enqueueing of the same URLs to
  the last article stored. This is the throughput a deployment gets.

Printed: articles per second and CPU per article of each, and beside it the CPU that
Redis, the site and the bench process itself used meanwhile (all on the same cores; for
the running workers also how busy the cores were in all), the ratio of one worker
to the floor (1.0 = no overhead at all) and the scaling of two workers over one;
both also without start-up, from the same processes timed with nothing to do; and
the scaling of two running workers over one. Each ratio is the median of the ratios of
the rounds, whose runs follow one another within seconds, every other round in the
other order: the development machine's speed drifts by half over minutes, and a ratio
of medians would mix its phases, a fixed order favour one side.

Newswire's packages are byte-compiled first (:func:`byte_compiled`), as an installed
package's are, like the floor's libraries.

``--latency SECONDS`` makes every page answer after a time of its own (seeded, from a
tenth of SECONDS to SECONDS), as distant sites do: the workers then wait on the network
more than they work. Their fetches overlap (``NEWSWIRE_FETCH_AHEAD``) and the floor's
don't, so the one worker / floor ratio then measures that, not newswire's overhead;
the scaling of two workers shows how far they scale when the network sets the pace.

``--instructions`` instead counts the instructions the floor and one worker execute,
each as a whole process and with nothing to do (valgrind's callgrind, so Redis's and
the site's are not in them): unlike time, the count does not drift with the machine.

``--memory N`` instead stores N articles with one worker and prints Redis bytes
per stored article without its text, and the worker's RSS at every tenth of the
way and at its peak.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import redis
from rq import Queue, Worker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newswire.embedded import RedisServer  # noqa: E402
from newswire.model import FeedEntry  # noqa: E402
from newswire.schema import Keys  # noqa: E402
from newswire.settings import Settings  # noqa: E402
from newswire.urls import canonicalize  # noqa: E402
from scheduler.service import Scheduler  # noqa: E402

WORDS = (
    "harbour council ferry bridge river winter market school hospital station mayor budget "
    "road storm village farmer teacher court police museum library factory airport train "
    "island forest mountain election minister energy water housing festival theatre garden "
    "the a of and to in that said on for with was officials report week year plan new"
).split()
#: Names as they occur in news: a few very common (most stories of a region name them),
#: most rare. Drawn with weights 1/rank, a page's own names from the whole list.
NAMES = (
    "Dublin Ireland Cork Galway Limerick Moscow Russia Kyiv Ukraine Brussels London Paris "
    "Berlin Warsaw Madrid Rome Vienna Prague Helsinki Oslo Tallinn Riga Vilnius Minsk Kazan "
    "Murphy Kelly Byrne Walsh Ryan Doyle McCarthy Gallagher Kennedy Lynch Murray Quinn Moore "
    "Volkov Petrova Ivanov Smirnova Kuznetsov Popova Sokolov Lebedeva Kozlov Novikova Morozov "
    "Harris Martin Varadkar Sandu Fico Orban Meloni Tusk Scholz Macron Sanchez Costa Stubb "
    "Gazprom Rosneft Ryanair Aer Lingus Eurostat Frontex Europol Interpol Eurovision Bundestag "
    "Dail Seanad Duma Kremlin Garda Tusla Ofcom Aeroflot Sberbank Yandex Lukoil Nornickel "
    "Shannon Liffey Volga Neva Danube Rhine Wicklow Kerry Donegal Mayo Sligo Clare Tipperary "
    "Wexford Waterford Kilkenny Carlow Offaly Laois Meath Louth Cavan Monaghan Leitrim Roscommon "
    "Longford Westmeath Kildare Athlone Ennis Tralee Navan Drogheda Dundalk Bray Naas Portlaoise "
    "Novosibirsk Yekaterinburg Samara Omsk Chelyabinsk Rostov Ufa Krasnoyarsk Perm Voronezh "
    "Volgograd Saratov Tyumen Tolyatti Izhevsk Barnaul Irkutsk Khabarovsk Yaroslavl Vladivostok"
).split()
_NAME_WEIGHTS = [1 / (rank + 1) for rank in range(len(NAMES))]
APPEAL = (
    "<div class='support-box'><h3>A message from the Valley Gazette</h3>"
    "<p>Dear readers, independent local journalism costs money. We keep this site free "
    "of charge and without a paywall for everyone in the valley.</p><p>If you can, "
    "please support us with a contribution today.</p><a>Monthly</a><a>Annual</a>"
    "<a>Continue</a><p>Remind me later.</p></div>"
)


def page(n: int) -> bytes:
    rng = random.Random(n)
    words = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))  # noqa: E731
    own = rng.sample(NAMES, 4)  # the story's own names, which it repeats

    def sentence() -> str:
        said = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
        if rng.random() < 0.7:
            said.insert(rng.randint(1, len(said)),
                        rng.choice(own) if rng.random() < 0.8
                        else rng.choices(NAMES, _NAME_WEIGHTS)[0])
        if rng.random() < 0.25:  # mostly amounts, now and then a year
            figure = rng.randint(1990, 2025) if rng.random() < 0.2 else rng.randint(10, 9999)
            said.insert(rng.randint(1, len(said)), str(figure))
        return said[0].capitalize() + " " + " ".join(said[1:]) + "."

    title = words(8).capitalize()
    paragraphs = "".join(f"<p>{' '.join(sentence() for _ in range(rng.randint(3, 6)))}</p>"
                         for _ in range(rng.randint(6, 12)))
    nav = "".join(f"<li><a href='/section/{i}'>Section {i}</a></li>" for i in range(40))
    related = "".join(f"<li><a href='/a/{n + i}'>{words(7)}</a></li>" for i in range(1, 9))
    script = "var config = {" + ",".join(f'"k{i}": "{words(3)}"' for i in range(300)) + "};"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title} - The '
        f'Valley Gazette</title><meta property="og:title" content="{title}">'
        '<meta property="og:site_name" content="The Valley Gazette">'
        '<meta property="article:published_time" content="2025-02-20T14:05:00+03:00">'
        '<script type="application/ld+json">{"@type": "NewsArticle", "datePublished": '
        '"2025-02-20T14:05:00+03:00", "author": {"name": "Staff"}}</script>'
        f"<script>{script}</script></head><body><header><nav><ul>{nav}</ul></nav></header>"
        f"<main><article><h1>{title}</h1><p class='byline'>By Staff</p>{paragraphs}"
        f"{APPEAL}</article><aside class='related'><ul>{related}</ul></aside></main>"
        "<footer><p>&copy; 2025 The Valley Gazette</p></footer></body></html>"
    ).encode()


def serve(pages: int, ready: Connection, latency: float = 0.0) -> None:
    """Serve the pages on keep-alive connections, each response prebuilt: an asyncio
    protocol that reads the request line and writes bytes, so that the site takes as
    little as possible of the cores the workers run on. With ``latency``, each page's
    answer waits a time of its own, seeded, from a tenth of that to that."""
    def response(n: int) -> bytes:
        body = page(n)
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    # Up to 2,000 prebuilt (the throughput runs); --memory's thousands more made on demand.
    responses = {f"/a/{n}".encode(): response(n) for n in range(min(pages, 2000))}

    class Site(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport, self.buffer = transport, b""
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:  # GETs have no body
                request, self.buffer = self.buffer[:end], self.buffer[end + 4:]
                path = request.split(b" ", 2)[1]
                n = int(path.rsplit(b"/", 1)[1])
                answer = responses.get(path) or response(n)
                if latency:
                    wait = random.Random(-1 - n).uniform(latency / 10, latency)
                    asyncio.get_running_loop().call_later(wait, self.transport.write, answer)
                else:
                    self.transport.write(answer)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Site, "127.0.0.1", 0,
                                                                backlog=1024)
        ready.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


FLOOR = """
import sys, httpx, redis, trafilatura
urls, url = sys.argv[2:], sys.argv[1]
r = redis.Redis.from_url(url)
with httpx.Client() as client:
    for u in urls:
        text = trafilatura.extract(client.get(u).text) or ""
        r.hset(f"floor:{u}", mapping={"url": u, "text": text})
"""


def byte_compiled(checkout: Path) -> None:
    """Write the bytecode of newswire's packages in ``checkout``, as ``pip install .`` and
    the Docker image have it. The floor's libraries were byte-compiled when pip installed
    them; newswire's, in an editable install where ``PYTHONDONTWRITEBYTECODE`` is set (as
    on the development machine), would be compiled from source by every process the
    bench times: 50 ms of each worker's start-up (0.70 -> 0.65 s, eight alternated)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "newswire", "worker", "scheduler"],
                   cwd=checkout, check=True, stdout=subprocess.DEVNULL)


def timed(commands: list[list[str]], env: dict[str, str],
          cwd: Path = ROOT) -> tuple[float, float]:
    """Wall seconds until every command (started together, in ``cwd``) has exited with
    0, and the CPU seconds (user and system) they used in all."""
    # Each child logs to a file of its own: a pipe not read while another child is
    # waited for would fill and stall its writer.
    logs = [tempfile.TemporaryFile() for _ in commands]
    started = time.perf_counter()
    processes = [subprocess.Popen(c, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=log)
                 for c, log in zip(commands, logs, strict=True)]
    cpu = 0.0
    for process, log in zip(processes, logs, strict=True):
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            log.seek(0)
            raise SystemExit(f"{' '.join(process.args)} failed:\n{log.read().decode()[-2000:]}")
        cpu += usage.ru_utime + usage.ru_stime
    elapsed = time.perf_counter() - started
    for log in logs:
        log.close()
    return elapsed, cpu


def _rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None  # it has just ended
    return next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")) / 1024


def watched(command: list[str], env: dict[str, str], client: redis.Redis,
            count: int) -> tuple[float, float, list[tuple[int, float]]]:
    """Run ``command`` (one worker) to its end: wall seconds, the largest RSS in MiB
    seen in ten looks a second, and its RSS each time another tenth of ``count``
    articles was stored."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[int, float]] = []
    largest = 0.0
    step = max(1, count // 10)
    while process.poll() is None:
        stored = int(client.zcard("news:recent"))
        rss = _rss_mib(process.pid)
        if rss is not None:
            largest = max(largest, rss)
            if stored >= step * (len(samples) + 1):
                samples.append((stored, rss))
        time.sleep(0.1)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with {process.returncode}")
    return time.perf_counter() - started, largest, samples


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _wait_for(condition: Callable[[], bool], what: str, pause: float = 0.01) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(pause)


def running(bench: Bench, workers: int, warm_up: list[str]) -> tuple[float, float, Shared]:
    """``workers`` long-running ``python -m worker``, each registered and the lot warmed
    up on ``warm_up`` first, then the bench's URLs enqueued by the scheduler (entries
    and scheduler made before): wall seconds from that enqueueing until the last is
    stored, the CPU seconds the workers used meanwhile, and what the rest used."""
    client = bench.client
    client.flushall()
    logs = [tempfile.TemporaryFile() for _ in range(workers)]
    processes: list[subprocess.Popen[bytes]] = []
    queue = Queue(bench.settings.queue_name, connection=client)
    keys = Keys(bench.settings.prefix)
    stored = lambda: int(client.zcard(keys.recent))  # noqa: E731
    scheduler = Scheduler(bench.settings, client)
    try:
        processes += [subprocess.Popen([sys.executable, "-m", "worker"], env=bench.env,
                                       cwd=ROOT, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=log) for log in logs]
        _wait_for(lambda: Worker.count(queue=queue) == workers, f"{workers} workers to start")
        assert scheduler.enqueue(entries_of(warm_up)) == len(warm_up)
        _wait_for(lambda: stored() == len(warm_up), "the warm-up pages")
        entries = entries_of(bench.urls)
        # The workers' own CPU (RQ's scheduler of retries, a child, is not in it).
        cpu = sum(_cpu_seconds(p.pid) for p in processes)
        shared = bench.shared()
        seconds, micros = client.time()
        scheduler.enqueue(entries)
        # The watch shares the cores with the workers it times, so it looks only every
        # 50 ms; the time of the last article is its stream entry's, Redis's clock to
        # the millisecond, as is the start.
        _wait_for(lambda: stored() == len(warm_up) + len(entries), "the pages", pause=0.05)
        [(last, _)] = client.xrevrange(keys.stream, count=1)
        elapsed = int(last.split(b"-")[0]) / 1000 - (seconds + micros / 1e6)
        cpu = sum(_cpu_seconds(p.pid) for p in processes) - cpu
        shared = bench.shared() - shared
    except BaseException:
        for log in logs:
            log.seek(0)
            print(log.read().decode()[-2000:], file=sys.stderr)
        raise
    finally:
        scheduler.close()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
    return elapsed, cpu, shared


def entries_of(urls: list[str]) -> tuple[FeedEntry, ...]:
    return tuple(FeedEntry(feed="bench", link=u, canonical_url=canonicalize(u), guid=u,
                           title=f"Story {n}", published="2025-02-20T11:05:00Z")
                 for n, u in enumerate(urls))


def enqueue(settings: Settings, client: redis.Redis, urls: list[str]) -> None:
    """The URLs as feed entries, enqueued the way the scheduler does."""
    scheduler = Scheduler(settings, client)
    try:
        assert scheduler.enqueue(entries_of(urls)) == len(urls)
    finally:
        scheduler.close()


@dataclass(frozen=True)
class Shared:
    """CPU seconds of what runs beside the timed processes, on the same cores: the
    redis-server, the loopback site, and this process (the scheduler's enqueueing and
    the watch for the last article, in the running workers' window)."""

    redis: float = 0.0
    site: float = 0.0
    bench: float = 0.0

    def __sub__(self, before: Shared) -> Shared:
        return Shared(self.redis - before.redis, self.site - before.site,
                      self.bench - before.bench)

    def per_article(self, count: int) -> str:
        return (f"beside: Redis {1000 * self.redis / count:.2f}, site "
                f"{1000 * self.site / count:.2f}, bench {1000 * self.bench / count:.2f}")


def median_shared(runs: list[Shared]) -> Shared:
    return Shared(statistics.median(r.redis for r in runs),
                  statistics.median(r.site for r in runs),
                  statistics.median(r.bench for r in runs))


@dataclass
class Bench:
    """The loopback site serving ``urls`` in a process of its own, and a real
    redis-server in a child, with the settings and environment newswire runs with."""

    site: mp.Process
    server: RedisServer
    client: redis.Redis
    urls: list[str]
    settings: Settings
    env: dict[str, str]

    @classmethod
    def start(cls, pages: int, latency: float = 0.0, **settings: Any) -> Bench:
        ready, sender = mp.Pipe(duplex=False)
        site = mp.Process(target=serve, args=(pages, sender, latency), daemon=True)
        site.start()
        port = ready.recv()
        byte_compiled(ROOT)
        folder = Path(tempfile.mkdtemp(prefix="newswire-bench-"))
        server = RedisServer(folder, persist=False).start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWIRE_", "REDIS_"))}
        env.update(REDIS_URL=server.url, NEWSWIRE_ALLOW_PRIVATE_NETWORKS="1",
                   NEWSWIRE_OBEY_ROBOTS="0", NEWSWIRE_FEEDS=str(folder / "feeds.toml"),
                   PYTHONPATH=str(ROOT))
        return cls(site, server, redis.Redis.from_url(server.url),
                   [f"http://127.0.0.1:{port}/a/{n}" for n in range(pages)],
                   Settings(redis_url=server.url, allow_private_networks=True,
                            obey_robots=False, feeds_path=folder / "feeds.toml", **settings),
                   env)

    def shared(self) -> Shared:
        """The CPU seconds Redis, the site and this process have used so far."""
        assert self.server.process is not None and self.site.pid is not None
        return Shared(_cpu_seconds(self.server.process.pid), _cpu_seconds(self.site.pid),
                      time.process_time())

    def stop(self) -> None:
        self.client.close()
        self.server.stop()
        self.site.terminate()


def instructions(command: list[str], env: dict[str, str]) -> int:
    """The instructions ``command`` executes in its own process (its main program and
    threads; not Redis's, the site's or any child's), counted by valgrind's callgrind:
    however busy the machine is, nearly the same from run to run (a worker of 300
    pages: 9.26 and 9.27 G in two runs), and about 40 times as slow."""
    with tempfile.TemporaryDirectory(prefix="newswire-callgrind-") as folder:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out.%p", *command],
            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
    # A child that the process forks (RQ's scheduler of retries, when its maintenance
    # runs during the slowed run) reports too, with the counts it inherited: the
    # command's own line is the one with its pid, valgrind's first.
    pid = re.search(r"==(\d+)==", done.stderr)
    found = pid and re.search(rf"=={pid.group(1)}== Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"{' '.join(command)} under callgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def _kind(run: str) -> str:
    return "worker" if "worker" in run else "floor"


def add_latency_argument(parser: argparse.ArgumentParser) -> None:
    """``--latency``, for :meth:`Bench.start`: this bench's and ``bench/worker_ab.py``'s."""
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="each page answers after a time of its own (seeded) from a "
                             "tenth of SECONDS to SECONDS, as a distant site does")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", type=int, metavar="N", help="store N articles, measure")
    parser.add_argument("--instructions", action="store_true",
                        help="count the instructions of the floor and one worker (valgrind)")
    parser.add_argument("--job-batch", type=int, default=Settings().job_batch, metavar="N",
                        help="entries per RQ job (default: %(default)s, as NEWSWIRE_JOB_BATCH)")
    add_latency_argument(parser)
    args = parser.parse_args()

    count = args.memory or args.pages
    bench = Bench.start(count, args.latency, job_batch=args.job_batch)
    client, urls, settings, env = bench.client, bench.urls, bench.settings, bench.env
    worker = [sys.executable, "-m", "worker", "--burst"]
    try:
        if args.memory:
            client.flushall()
            before = int(client.info("memory")["used_memory"])
            enqueue(settings, client, urls)
            queued = int(client.info("memory")["used_memory"]) - before
            seconds, peak_mib, samples = watched(worker + ["--name", "memory"], env, client,
                                                 count)
            texts = sum(len(client.hget(k, "text") or b"")
                        for k in client.scan_iter("news:article:*", count=1000))
            stored = sum(1 for _ in client.scan_iter("news:article:*", count=1000))
            for key in client.scan_iter("rq:*"):
                client.delete(key)  # RQ's job records are not the article's cost
            after = int(client.info("memory")["used_memory"])
            print(f"{stored} articles stored in {seconds:.0f} s by one worker")
            print(f"Redis bytes per article without its text: "
                  f"{(after - before - texts) / stored:.0f} (text: {texts / stored:.0f} bytes "
                  f"on average; RQ's job records while queued: {queued / stored:.0f} bytes)")
            print("worker RSS by articles stored: " + ", ".join(
                f"{n}: {mib:.0f} MiB" for n, mib in samples))
            print(f"worker's largest RSS seen over the run: {peak_mib:.0f} MiB")
            return 0
        floor = [sys.executable, "-c", FLOOR, settings.redis_url]
        if args.instructions:
            if shutil.which("valgrind") is None:
                raise SystemExit("--instructions needs valgrind on PATH")
            counted = {}
            for name, command, pages in (("floor", floor, urls), ("worker", worker, [])):
                client.flushall()
                counted[name, "idle"] = instructions(command, env)
                client.flushall()
                if name == "worker":
                    enqueue(settings, client, urls)
                counted[name, "pages"] = instructions(command + pages, env)
            print(f"{len(urls)} pages, instructions executed by each process (callgrind)")
            work = {}
            for name in ("floor", "worker"):
                work[name] = counted[name, "pages"] - counted[name, "idle"]
                print(f"  {name:6} {counted[name, 'pages'] / 1e9:6.2f} G in all, "
                      f"{counted[name, 'idle'] / 1e9:5.2f} G with nothing to do, "
                      f"{work[name] / len(urls) / 1e6:6.2f} M an article")
            print(f"one worker / floor in instructions: "
                  f"{counted['floor', 'pages'] / counted['worker', 'pages']:.2f}  "
                  f"({work['floor'] / work['worker']:.2f} without start-up)")
            return 0
        half = len(urls) // 2
        # In each round, each pair that a ratio compares runs one after the other, and
        # every other round in the other order: a machine speeding up or slowing down
        # over a round then favours neither side of a ratio in all.
        runs = {"2 floors": [floor + urls[:half], floor + urls[half:]],
                "floor": [floor + urls],
                "1 worker": [worker], "2 workers": [worker, worker]}
        walls: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        beside: dict[str, list[Shared]] = {name: [] for name in runs}
        startup: dict[str, list[float]] = {"floor": [], "worker": []}
        # Pages of their own for the running workers' warm-up: four jobs' worth.
        site = urls[0].rsplit("/", 1)[0]
        warm_up = [f"{site}/{len(urls) + n}" for n in range(4 * args.job_batch)]
        served: dict[int, list[tuple[float, float, Shared]]] = {1: [], 2: []}
        for round_ in range(args.repeat):
            turn = 1 if round_ % 2 == 0 else -1
            for name, commands in list(runs.items())[::turn]:
                client.flushall()
                if "worker" in name:
                    enqueue(settings, client, urls)
                before = bench.shared()
                seconds, used = timed(commands, env)
                beside[name].append(bench.shared() - before)
                walls[name].append(seconds)
                cpu[name].append(used)
                stored = sum(1 for _ in client.scan_iter(
                    "news:article:*" if "worker" in name else "floor:*", count=1000))
                assert stored == len(urls), f"{name}: {stored} of {len(urls)} stored"
            # The same processes with nothing to do: what start-up and exit cost.
            client.flushall()
            startup["floor"].append(timed([floor], env)[0])
            startup["worker"].append(timed([worker], env)[0])
            for workers, runs_ in list(served.items())[::turn]:
                runs_.append(running(bench, workers, warm_up))
        wall = {name: statistics.median(times) for name, times in walls.items()}
        idle = {name: statistics.median(times) for name, times in startup.items()}
        print(f"{len(urls)} pages, {args.repeat} runs each, medians of wall time per whole "
              f"process (start-up included), {os.cpu_count()} cores")
        for name, times in walls.items():
            print(f"  {name:10} {wall[name]:6.2f} s  {len(urls) / wall[name]:6.1f} articles/s"
                  f"  {1000 * statistics.median(cpu[name]) / len(urls):5.2f} ms CPU/article"
                  f"  (runs: {', '.join(f'{t:.2f}' for t in times)})")
            print(f"  {'':10} {median_shared(beside[name]).per_article(len(urls))} ms CPU/article")
        print(f"  start-up and exit with nothing to do: floor {idle['floor']:.2f} s, "
              f"worker {idle['worker']:.2f} s")
        print("ratios: the median of each round's, whose runs were seconds apart (the "
              "machine's speed drifts over minutes); without start-up, each run less its "
              "round's process with nothing to do")

        def ratio(label: str, a: str, b: str, target: str) -> None:
            both = [(walls[a][i], walls[b][i], startup[_kind(a)][i], startup[_kind(b)][i])
                    for i in range(args.repeat)]
            rounds_ = [x / y for x, y, _, _ in both]
            bare = statistics.median((x - sa) / (y - sb) for x, y, sa, sb in both)
            print(f"{label} {statistics.median(rounds_):.2f}  ({target}{bare:.2f} without "
                  f"start-up; rounds: {', '.join(f'{r:.2f}' for r in rounds_)})")

        ratio("one worker / floor:", "floor", "1 worker", "target >= 0.9; ")
        ratio("two workers / one: ", "1 worker", "2 workers", "target >= 1.8; ")
        ratio("two floors / one (this machine's own ceiling for the line above):", "floor",
              "2 floors", "")
        print(f"running workers (started, registered and warmed up on {len(warm_up)} pages "
              "first), from the scheduler's enqueueing to the last article stored, medians:")
        took = {n: statistics.median(t for t, _, _ in runs_) for n, runs_ in served.items()}
        cores = os.cpu_count() or 1
        for workers, runs_ in served.items():
            used = statistics.median(c for _, c, _ in runs_)
            shared = median_shared([b for _, _, b in runs_])
            busy = statistics.median((c + b.redis + b.site + b.bench) / (cores * t)
                                     for t, c, b in runs_)
            print(f"  {workers} worker{'s' if workers > 1 else ' '} {took[workers]:6.2f} s  "
                  f"{len(urls) / took[workers]:6.1f} articles/s"
                  f"  {1000 * used / len(urls):5.2f} ms CPU/article"
                  f"  (runs: {', '.join(f'{t:.2f}' for t, _, _ in runs_)})")
            print(f"  {'':9} {shared.per_article(len(urls))} ms CPU/article; "
                  f"the {cores} cores {100 * busy:.0f}% busy")
        scaling = [one[0] / two[0] for one, two in zip(served[1], served[2], strict=True)]
        print(f"two running workers / one: {statistics.median(scaling):.2f}  (target >= 1.8; "
              f"rounds: {', '.join(f'{r:.2f}' for r in scaling)})")
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
