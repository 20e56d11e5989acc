"""``newswire up``: Redis, the scheduler and N workers on one machine, supervised.

Without ``REDIS_URL`` an embedded redis-server runs on ``<data>/redis.sock``
with AOF persistence (``newswire.embedded``). Children run in their own process
group so that Ctrl-C reaches only the supervisor, which then stops them in
order: workers and scheduler (SIGTERM: RQ finishes the job at hand), then Redis
(SIGTERM: it flushes the AOF). A child that dies is started again, with a
growing pause if it keeps dying.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from .embedded import RedisServer, lock_data_dir
from .errors import ConfigError, StoreError
from .feeds import FeedsFile
from .settings import Settings
from .status import snapshot
from .store import connect, ping

log = logging.getLogger("newswire.up")

#: Seconds a stopping child gets before it is killed.
STOP_GRACE = 8.0
#: Pause before restarting a child that died, doubling up to the maximum.
RESTART_PAUSE, RESTART_PAUSE_MAX = 1.0, 30.0


@dataclass
class Child:
    """A supervised process: the scheduler or one worker."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_file: Path | None
    process: subprocess.Popen[bytes] | None = None
    pause: float = RESTART_PAUSE
    start_after: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if self.log_file is not None and self._log is None:
            self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=self._log, start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()

    def wait(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", self.name)
            self.process.kill()
            self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


class Supervisor:
    """Runs the children until asked to stop; restarts the ones that die."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stop = threading.Event()

    def check(self, now: float) -> None:
        for child in self.children:
            if child.process is None:
                if now >= child.start_after:
                    child.start()
                continue
            code = child.process.poll()
            if code is None:
                continue
            log.warning("%s exited with status %s; starting it again in %.0f s",
                        child.name, code, child.pause)
            child.process = None
            child.start_after = now + child.pause
            child.pause = min(child.pause * 2, RESTART_PAUSE_MAX)

    def shutdown(self) -> None:
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for child in self.children:
            child.wait(deadline)


def run_up(settings: Settings, *, workers: int, env: dict[str, str], interactive: bool) -> int:
    """The body of ``newswire up``; returns the exit status (0 on Ctrl-C/SIGTERM)."""
    feeds_file = FeedsFile(settings.feeds_path)
    feeds_file.load()  # a bad feeds file is an error now, not in a child
    lock = lock_data_dir(settings.data_dir)
    server: RedisServer | None = None
    orphan = False
    if not env.get("REDIS_URL", "").strip():
        server = RedisServer(settings.data_dir.resolve(), persist=True)
        settings = settings.with_(redis_url=server.url, redis_embedded=True)
        try:
            ping(settings)
        except StoreError:
            server.start()
            log.info("embedded Redis on %s (data in %s)", server.socket, server.folder)
        else:
            # A server left by an `up` that was killed: keep it, shut it down at the end.
            orphan = True
            log.info("reusing the embedded Redis still running on %s", server.socket)
    ping(settings)

    child_env = {**env, "REDIS_URL": settings.redis_url,
                 "NEWSWIRE_FEEDS": str(settings.feeds_path.resolve())}
    logs_dir = settings.data_dir / "logs"
    if interactive:
        logs_dir.mkdir(parents=True, exist_ok=True)
    base_port = settings.metrics_port
    children: list[Child] = []
    names = ["scheduler"] + [f"worker-{i + 1}" for i in range(workers)]
    for index, name in enumerate(names):
        port_env = {"NEWSWIRE_METRICS_PORT": str(base_port + index)} if base_port else {}
        children.append(Child(
            name=name,
            argv=[sys.executable, "-m", name.split("-")[0]],
            env={**child_env, **port_env},
            log_file=logs_dir / f"{name}.log" if interactive else None,
        ))
    supervisor = Supervisor(children)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: supervisor.stop.set())
    client = connect(settings)
    logs_note = f"; logs in {logs_dir}" if interactive else ""
    print(f"newswire up: {len(feeds_file.load())} feeds from {settings.feeds_path}, "
          f"{workers} workers, Redis {settings.redis_url_redacted}{logs_note}",
          file=sys.stderr, flush=True)
    last_status = 0.0
    try:
        while not supervisor.stop.is_set():
            now = time.monotonic()
            supervisor.check(now)
            if now - last_status >= (1.0 if interactive else 15.0):
                last_status = now
                try:
                    feed_names = [f.name for f in feeds_file.load()]  # re-read only if changed
                    line = snapshot(client, settings, feed_names).line()
                except (redis.RedisError, ConfigError) as e:
                    line = f"status unavailable: {e}"
                if interactive:
                    sys.stderr.write(f"\r\033[K{line}")
                    sys.stderr.flush()
                else:
                    log.info("status: %s", line)
            supervisor.stop.wait(0.25)
    finally:
        if interactive:
            sys.stderr.write("\n")
        log.info("stopping: workers and scheduler, then Redis")
        supervisor.shutdown()
        client.close()
        if server is not None:
            if orphan:
                try:
                    with redis.Redis(unix_socket_path=str(server.socket)) as c:
                        c.shutdown()
                except redis.RedisError:
                    pass  # SHUTDOWN closes the connection it came on: that is success
            else:
                server.stop()
        lock.close()
    log.info("stopped")
    return 0
