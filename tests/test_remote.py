"""Workers on other machines: they join with the same REDIS_URL, TLS and password included."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newswire.embedded import find_redis_server

from .conftest import Runner, Site, write_feeds

PASSWORD = "s3cret-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server that speaks only TLS on loopback and wants a password."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    port = free_port()
    log = tmp_path / "redis.log"
    server = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--tls-port", str(port), "--tls-cert-file",
         str(cert), "--tls-key-file", str(key), "--tls-auth-clients", "no", "--requirepass",
         PASSWORD, "--save", "", "--appendonly", "no", "--logfile", str(log)],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while "Ready to accept" not in (log.read_text() if log.exists() else ""):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.skip(f"this redis-server has no TLS support: {log.read_text()[-300:]}")
        time.sleep(0.05)
    yield f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    server.terminate()
    server.wait(10)


def test_scheduler_worker_and_cli_over_tls_with_a_password(
    tls_redis: str, run: Runner, site: Site
) -> None:
    site.serve("/a", "pages/mt-ruble-steadies.html", "text/html; charset=utf-8")
    site.routes["/feed"] = type(site.routes["/a"])(
        200, {"Content-Type": "application/rss+xml"},
        f"<rss version='2.0'><channel><title>t</title><item><title>A</title>"
        f"<link>{site.url('/a')}</link></item></channel></rss>".encode())
    write_feeds(run.cwd / "feeds.toml", {"remote": site.url("/feed")})
    run.env["REDIS_URL"] = tls_redis
    assert run("-m", "scheduler", "--once").returncode == 0
    worker = run("-m", "worker", "--burst")
    assert worker.returncode == 0, worker.stderr
    recent = run.newswire("recent")
    assert recent.returncode == 0 and "[remote]" in recent.stdout

    run.env["REDIS_URL"] = tls_redis.replace(PASSWORD, "wrong")
    refused = run.newswire("recent")
    assert refused.returncode == 1
    assert refused.stderr.startswith("newswire: error: cannot reach Redis")
    assert "wrong" not in refused.stderr and ":***@127.0.0.1" in refused.stderr
