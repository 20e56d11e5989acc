"""Real parts for the tests: a redis-server on a unix socket, a loopback HTTP site."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue

from newswire.embedded import RedisServer
from newswire.queueing import job_entries
from newswire.settings import Settings

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), persist=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


Handler = Callable[[Request], Response]


class Site:
    """A loopback HTTP server answering from a table of paths, recording every request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Response | Handler] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        site = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle and the
            # client's delayed ACK hold every response back about 40 ms on loopback.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802
                request = Request("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                with site._lock:
                    site.requests.append(request)
                route = site.routes.get(self.path) or site.routes.get(self.path.split("?")[0])
                if route is None:
                    response = Response(404, {"Content-Type": "text/plain"}, b"not found")
                elif callable(route):
                    response = route(request)
                else:
                    response = route
                self.log_request(response.status)
                self.send_response_only(response.status)
                if "Date" not in response.headers:  # one Date, the route's if it has one
                    self.send_header("Date", self.date_time_string())
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class _Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client hanging up mid-body (size limits) is expected here

        self.server = _Server((host, 0), _Handler)  # any 127.0.0.0/8 address is loopback
        self.base = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def fixture(self, name: str) -> bytes:
        """A file of tests/data with ``{{BASE}}`` replaced by this site's address."""
        return (DATA / name).read_bytes().replace(b"{{BASE}}", self.base.encode())

    def serve(self, path: str, name: str, content_type: str, **headers: str) -> None:
        self.routes[path] = Response(200, {"Content-Type": content_type, **headers},
                                     self.fixture(name))

    def hits(self, path: str) -> list[Request]:
        """Requests for ``path`` (query string ignored)."""
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    yield s
    s.close()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        allow_private_networks=True,
        feeds_path=tmp_path / "feeds.toml",
        data_dir=tmp_path / ".newswire",
        request_timeout=5.0,
        host_spacing=0.0,  # tests that space requests per host say so
    )


def write_feeds(path: Path, feeds: dict[str, str]) -> Path:
    path.write_text("".join(f'[[feeds]]\nname = "{n}"\nurl = "{u}"\n\n' for n, u in feeds.items()))
    return path


@dataclass
class Runner:
    """Runs newswire's documented commands as real processes."""

    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], env=self.env, cwd=self.cwd, capture_output=True,
            text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def newswire(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The installed ``newswire`` console script (``python -m newswire`` without one)."""
        script = Path(sys.executable).parent / "newswire"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "newswire"]
        return subprocess.run(
            [*command, *args], env=self.env, cwd=self.cwd, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def run(redis_url: str, tmp_path: Path) -> Runner:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWIRE_", "REDIS_"))}
    env.update(
        REDIS_URL=redis_url,
        NEWSWIRE_FEEDS=str(tmp_path / "feeds.toml"),
        NEWSWIRE_ALLOW_PRIVATE_NETWORKS="1",
        PYTHONPATH=str(ROOT),
        # Every fixture feed is on one loopback host: no second's spacing between them.
        NEWSWIRE_HOST_SPACING_MS="0",
    )
    return Runner(env, tmp_path)


def queued_entries(queue: Queue) -> list[dict[str, Any]]:
    """The entry payloads of the queue's jobs, in order (a batch job holds several)."""
    return [payload for job in queue.get_jobs() for payload in job_entries(job)]
