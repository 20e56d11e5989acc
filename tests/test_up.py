"""``newswire up``: embedded Redis, scheduler and workers, supervised, stopped cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq import Worker

from .conftest import Response, Site, write_feeds

pytestmark = pytest.mark.slow

NEWSWIRE = str(Path(sys.executable).parent / "newswire")
PAGES = ["pages/mt-ruble-steadies.html", "pages/mt-sanctions-review.html",
         "pages/tj-leaders-agree.html"]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds (waiting on a state, not timing anything)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Up:
    """A ``newswire up`` process in a folder, its output in ``up.log`` there
    (a pipe nobody reads would fill up and block the children's logging)."""

    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.log = folder / "up.log"
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [NEWSWIRE, "up", *args], cwd=folder, env=env or env_for(folder),
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            )

    @property
    def socket(self) -> Path:
        return self.folder / ".newswire" / "redis.sock"

    def stop(self, signum: int = signal.SIGINT) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def env_for(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWIRE_", "REDIS_"))}
    env["NEWSWIRE_ALLOW_PRIVATE_NETWORKS"] = "1"  # feeds.toml in the folder is found by itself
    return env


def newswire(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEWSWIRE, *args], cwd=folder, env=env_for(folder), text=True,
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def stored(folder: Path) -> list[dict[str, str]]:
    result = newswire(folder, "recent", "--json", "--limit", "100")
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def folder(tmp_path: Path, site: Site) -> Path:
    for n, page in enumerate(PAGES):
        site.serve(f"/a{n}", page, "text/html; charset=utf-8")
    items = "".join(f"<item><title>Story {n}</title><link>{site.url(f'/a{n}')}</link></item>"
                    for n in range(len(PAGES)))
    # An item with no page and nothing of its own: a job that fails for good.
    items += f"<item><title>Gone</title><link>{site.url('/gone')}</link></item>"
    site.routes["/feed"] = Response(
        200, {"Content-Type": "application/rss+xml"},
        f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>".encode())
    write_feeds(tmp_path / "feeds.toml", {"local": site.url("/feed")})
    return tmp_path


@pytest.fixture
def up(folder: Path) -> Iterator[Up]:
    running = Up(folder, "--workers", "2")
    yield running
    if running.process.poll() is None:
        running.stop(signal.SIGTERM)


def test_ingests_on_embedded_redis_stops_cleanly_and_keeps_the_data(
    folder: Path, site: Site, up: Up
) -> None:
    wait_for(lambda: len(stored(folder)) == 3, "three stored articles")
    assert up.stop() == 0, up.output()
    assert not up.socket.exists()
    assert (folder / ".newswire" / "appendonlydir").is_dir()

    # Stopped: `newswire recent` and `status` in the folder still find the data.
    assert len(stored(folder)) == 3
    status = newswire(folder, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["articles"] == 3

    # Started again: the poll state survived (the feed is not due yet); made due,
    # it is polled again and nothing is fetched twice.
    again = Up(folder, "--workers", "1")
    try:
        wait_for(again.socket.exists, "the socket")
        with redis.Redis(unix_socket_path=str(again.socket)) as client:
            assert client.zscore("news:feeds:due", "local") > time.time()
            client.zadd("news:feeds:due", {"local": 0})
        wait_for(lambda: "polled 1 feeds" in again.output(), "a poll by the new scheduler")
        assert len(stored(folder)) == 3
        for n in range(len(PAGES)):
            assert len(site.hits(f"/a{n}")) == 1
    finally:
        assert again.stop(signal.SIGTERM) == 0, again.output()


def test_a_second_up_in_the_same_folder_is_refused(folder: Path, up: Up) -> None:
    wait_for(up.socket.exists, "the socket")
    second = newswire(folder, "up", "--workers", "1")
    assert second.returncode == 1
    assert second.stderr.strip().splitlines()[-1].startswith("newswire: error: another newswire")


def test_a_crashed_worker_is_started_again(up: Up) -> None:
    wait_for(up.socket.exists, "the socket")
    client = redis.Redis(unix_socket_path=str(up.socket))

    def worker_pids() -> set[int]:
        return {w.pid for w in Worker.all(connection=client) if w.pid}

    wait_for(lambda: len(worker_pids()) == 2, "two workers")
    victim = min(worker_pids())
    os.kill(victim, signal.SIGKILL)
    # A replacement starts (and unregisters the dead one, handing back its job).
    wait_for(lambda: len(worker_pids() - {victim}) == 2, "a replacement worker")
    client.close()
    log = up.log.read_text(errors="replace")
    assert "worker-" in log and "starting it again" in log
    assert f"(pid {victim}) is gone" in log
    assert up.stop() == 0, up.output()


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports (the scheduler takes P, the workers
    P+1 ...: each must be free, not only the first)."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            try:
                for offset in range(1, count):
                    with socket.socket() as other:
                        other.bind(("0.0.0.0", port + offset))
            except OSError:
                continue
        return port
    raise AssertionError(f"no {count} consecutive free ports")


def test_metrics_endpoints_of_scheduler_and_workers(folder: Path) -> None:
    port = free_ports(2)
    env = env_for(folder)
    env["NEWSWIRE_METRICS_PORT"] = str(port)
    running = Up(folder, "--workers", "1", env=env)

    def scrape(p: int) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    try:
        wait_for(lambda: len(stored(folder)) == 3, "three stored articles")
        wait_for(lambda: 'newswire_feed_polls_total{status="200"} 1.0' in scrape(port),
                 "the scheduler's poll counter")
        scheduler = scrape(port)
        assert "newswire_feed_not_modified_ratio 0.0" in scheduler
        assert 'newswire_fetch_seconds_count{kind="feed"} 1.0' in scheduler
        assert "newswire_entries_enqueued_total 4.0" in scheduler
        try:
            # Four pages, the one with nothing to store twice: in its batch, then in the
            # job of its own that ends in the failed registry.
            wait_for(lambda: 'newswire_fetch_seconds_count{kind="page"} 5.0' in scrape(port + 1),
                     "the worker's page fetches")
        except AssertionError as e:
            fetches = [line for line in scrape(port + 1).splitlines() if "_count" in line]
            raise AssertionError(f"{e}: {fetches}\n{running.output()}") from None
        worker = scrape(port + 1)
        assert 'newswire_articles_stored_total{type="new"}' in worker
        assert "newswire_extract_seconds_count 3.0" in worker
        wait_for(lambda: 'newswire_job_failures_total{error="ExtractError"} 1.0'
                 in scrape(port + 1), "the failed job's counter")
    finally:
        assert running.stop() == 0, running.output()
