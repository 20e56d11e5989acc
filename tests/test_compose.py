"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The file is read as data and held to the contract; then each service's own
``command`` and ``environment`` run for real, against the test Redis and a feed
on loopback (only the Redis URL and the feeds file's host folder are swapped
for the test's), and must stop with status 0 on SIGTERM, as ``docker compose
stop`` asks them to.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import yaml
from rq import Queue
from rq.serializers import JSONSerializer

from newswire.feeds import load_feeds_file

from .conftest import ROOT, Site, queued_entries, write_feeds

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = ("scheduler", "worker")
#: Passed through from the host with a default, as ``${NAME:-default}``.
PASSED_THROUGH = ("NEWSWIRE_PREFIX", "NEWSWIRE_ALLOW_PRIVATE_NETWORKS", "NEWSWIRE_LOG_JSON")

FEED_PATH = "/mt/rss/news"
PAGES = {
    "/mt/news/2025/02/20/leaders-agree-new-talks-a1001": "pages/mt-leaders-agree.html",
    "/mt/news/2025/02/20/ruble-steadies-a1002": "pages/mt-ruble-steadies.html",
    "/mt/news/2025/12/11/macron-reengagement-a1003": "pages/mt-macron-reengagement.html",
}


# -- reading the compose file as Compose does ---------------------------------------------


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME:-default}``, ``${NAME-default}``, ``${NAME}`` and ``$NAME``."""

    def sub(m: re.Match[str]) -> str:
        name, op, default = m.group("name") or m.group("bare"), m.group("op"), m.group("default")
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    pattern = r"\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|\$(?P<bare>\w+)"
    return re.sub(pattern, sub, value)


def environment(service: str) -> dict[str, str]:
    """A service's ``environment`` as written (mapping or ``KEY=value`` list)."""
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command(service: str) -> list[str]:
    raw = SERVICES[service]["command"]
    return shlex.split(raw) if isinstance(raw, str) else [str(a) for a in raw]


def bind_mounts(service: str, env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Container path → (host path, options) of a service's short-syntax mounts."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *options = interpolate(volume, env).split(":")
        mounts[target] = (source, ",".join(options))
    return mounts


def mounted(service: str, container_path: str, env: dict[str, str]) -> tuple[Path, str, str]:
    """The host folder (relative to the compose file) holding ``container_path``, the path
    inside it, and the mount's options."""
    for target, (source, options) in bind_mounts(service, env).items():
        if container_path.startswith(target.rstrip("/") + "/"):
            return Path(source), container_path[len(target):].lstrip("/"), options
    raise AssertionError(f"{container_path} of {service} is in no mounted folder")


def documented_variables() -> set[str]:
    """The variables of README.md's Configuration table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in lines if line and not line.startswith("#")]


# -- the file as data ---------------------------------------------------------------------


def test_services_and_no_version_key() -> None:
    assert {"redis", "scheduler", "worker", "rq-dashboard"} <= set(SERVICES)
    assert "version" not in COMPOSE  # the Compose spec has none


def test_redis_persists_never_evicts_and_reports_health() -> None:
    redis_service = SERVICES["redis"]
    assert re.fullmatch(r"redis:7(\.[\w.-]+)?", redis_service["image"])
    args = command("redis")
    pairs = {args[i]: args[i + 1] for i in range(len(args) - 1)}
    assert pairs.get("--appendonly") == "yes"
    assert pairs.get("--maxmemory-policy") == "noeviction"
    named = [v.split(":")[0] for v in redis_service["volumes"] if v.split(":")[1] == "/data"]
    assert named and named[0] in (COMPOSE.get("volumes") or {}), "/data is no named volume"
    test = redis_service["healthcheck"]["test"]
    assert "redis-cli ping" in (test if isinstance(test, str) else " ".join(test))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_waits_for_healthy_redis_restarts_and_scales(name: str) -> None:
    service = SERVICES[name]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert re.fullmatch(r"unless-stopped|always|on-failure(:\d+)?", service["restart"])
    assert "container_name" not in service
    assert service["build"] in (".", {"context": "."})  # the one Dockerfile
    assert command(name)[:3] == ["python", "-m", name]


def test_scheduler_and_worker_share_one_environment_contract() -> None:
    env = environment("scheduler")
    assert env == environment("worker")
    url = urlsplit(env["REDIS_URL"])
    assert url.scheme == "redis" and url.hostname == "redis" and url.port in (None, 6379)
    assert url.hostname in SERVICES
    undocumented = set(env) - documented_variables()
    assert not undocumented, f"not in README.md's Configuration table: {undocumented}"
    for name in PASSED_THROUGH:
        assert re.fullmatch(rf"\$\{{{name}:-[^}}]*\}}", env[name]), env[name]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_feeds_file_is_mounted_read_only_and_exists_in_a_fresh_clone(name: str) -> None:
    folder, inside, options = mounted(name, environment(name)["NEWSWIRE_FEEDS"], env={})
    assert "ro" in options.split(",")
    feeds = ROOT / folder / inside
    assert feeds.is_file(), f"{feeds} missing: `docker compose up` fails in a fresh clone"
    assert load_feeds_file(feeds)


def test_dashboard_is_optional_and_watches_the_same_redis() -> None:
    dashboard = SERVICES["rq-dashboard"]
    assert dashboard["profiles"]
    assert dashboard["environment"]["RQ_DASHBOARD_REDIS_URL"] == environment("worker")["REDIS_URL"]
    assert any(str(p).endswith("9181:9181") for p in dashboard["ports"])


def test_dockerfile_is_slim_unprivileged_and_caches_dependencies() -> None:
    steps = dockerfile_instructions()
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.1\d+-slim(-\w+)?", steps[0][1])
    assert ("WORKDIR", "/app") in steps
    user = [args for kind, args in steps if kind == "USER"][-1]
    assert user.split(":")[0] not in {"root", "0"}
    assert steps[-1] == ("CMD", '["python", "-m", "worker"]')

    packages = {"newswire", "scheduler", "worker"}

    def copied(kind: str, args: str) -> set[str]:
        *sources, _ = [a for a in args.split() if not a.startswith("--")]
        return {s.rstrip("/") or "." for s in sources} if kind == "COPY" else set()

    def copies_source(kind: str, args: str) -> bool:
        return bool(copied(kind, args) & (packages | {"."}))

    everything = set().union(*(copied(*step) for step in steps))
    assert "." in everything or packages <= everything, "a package is not copied into the image"

    installs = [i for i, (kind, args) in enumerate(steps)
                if kind == "RUN" and "pip install" in args]
    sources = [i for i, step in enumerate(steps) if copies_source(*step)]
    assert installs and sources
    assert installs[0] < sources[0], "dependencies are installed after the source is copied"
    assert "--no-deps" in steps[installs[-1]][1] and installs[-1] > sources[-1]


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on this machine")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no docker compose plugin: {(probe.stderr.strip() or '?').splitlines()[0]}")
    result = subprocess.run([docker, "compose", "-f", "docker-compose.yml", "config", "--quiet"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- the services' commands, run for real ------------------------------------------------


@pytest.fixture
def newsfeed(site: Site) -> Site:
    site.serve(FEED_PATH, "feeds/moscowtimes.rss", "application/rss+xml")
    for path, page in PAGES.items():
        site.serve(path, page, "text/html; charset=utf-8")
    return site


@pytest.fixture
def start(newsfeed: Site, redis_url: str, tmp_path: Path) -> Iterator[Callable[[str], Service]]:
    """Starts a compose service's command as a process, as the container would."""
    started: list[Service] = []

    def start_service(name: str) -> Service:
        env = {k: interpolate(v, {}) for k, v in environment(name).items()}
        # The feeds file: at its place in the mounted folder, a folder of the test's
        # standing in for the host's, with one feed on loopback.
        _, inside, _ = mounted(name, env["NEWSWIRE_FEEDS"], env={})
        local_feeds = tmp_path / "config" / inside
        if not local_feeds.exists():  # never rewritten under a running service
            local_feeds.parent.mkdir(parents=True, exist_ok=True)
            write_feeds(local_feeds, {"moscowtimes": newsfeed.url(FEED_PATH)})
        env.update(REDIS_URL=redis_url, NEWSWIRE_FEEDS=str(local_feeds),
                   NEWSWIRE_ALLOW_PRIVATE_NETWORKS="1")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWIRE_", "REDIS_"))}
        argv = command(name)
        assert argv[0] == "python"
        service = Service(name, [sys.executable, *argv[1:]], {**base, **env}, tmp_path)
        started.append(service)
        return service

    yield start_service
    for service in started:
        service.close()


class Service:
    """One service's process; output goes to files so that no pipe fills up."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.env = name, env
        self.log = logs / f"{name}.log"
        with self.log.open("wb") as out:
            # cwd: the image's WORKDIR /app holds this source tree.
            self.process = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        """Poll ``condition`` until it holds; fail early if the process ends first."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, (
                f"{self.name} exited ({self.process.returncode}) before {what}:\n{self.output()}")
            assert time.monotonic() < deadline, f"{self.name}: no {what} in {timeout} s\n" + (
                self.output())
            time.sleep(0.1)

    def terminate(self) -> int:
        """SIGTERM, as ``docker compose stop`` sends; the exit status within 15 s."""
        assert self.process.poll() is None, f"{self.name} is no long-running service:\n" + (
            self.output())
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} still running 15 s after SIGTERM:\n{self.output()}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def feed_state(client: redis.Redis, env: dict[str, str]) -> dict[bytes, bytes]:
    return client.hgetall(f"{env['NEWSWIRE_PREFIX']}:feed:moscowtimes")


def articles(client: redis.Redis, env: dict[str, str]) -> list[dict[bytes, bytes]]:
    keys = client.keys(f"{env['NEWSWIRE_PREFIX']}:article:*")
    return [client.hgetall(k) for k in keys]


@pytest.mark.slow
def test_scheduler_service_polls_enqueues_and_stops_on_sigterm(
    start: Callable[[str], Service], client: redis.Redis,
) -> None:
    scheduler = start("scheduler")
    queue = Queue("newswire", connection=client, serializer=JSONSerializer)
    scheduler.wait_until(
        lambda: feed_state(client, scheduler.env).get(b"last_status") == b"200"
        and len(queued_entries(queue)) == len(PAGES), "feed polled and its entries enqueued")
    assert scheduler.terminate() == 0, scheduler.output()


@pytest.mark.slow
def test_worker_service_stores_articles_and_stops_on_sigterm(
    start: Callable[[str], Service], client: redis.Redis, newsfeed: Site,
) -> None:
    # As `docker compose up` does: both at once.
    scheduler, worker = start("scheduler"), start("worker")
    worker.wait_until(lambda: len(articles(client, worker.env)) == len(PAGES), "articles stored")
    stored = articles(client, worker.env)
    assert {a[b"url"].decode() for a in stored} == {newsfeed.url(p) for p in PAGES}
    assert all(a[b"source"] == b"page" and a[b"text"] for a in stored)
    assert worker.terminate() == 0, worker.output()
    assert scheduler.terminate() == 0, scheduler.output()
