"""Prometheus metrics of this process, served on ``/metrics``.

Scheduler and workers each serve their own (``NEWSWIRE_METRICS_PORT``; the
scheduler takes that port, ``newswire up`` gives its workers the ports after
it). Cluster-wide counters live in Redis (``news:stats``) for ``newswire status``.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("newswire.metrics")

_LATENCY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

FEED_POLLS = Counter(
    "newswire_feed_polls", "Feed polls by outcome: HTTP status, or 'error' with no response",
    ["status"],
)
NOT_MODIFIED_RATIO = Gauge(
    "newswire_feed_not_modified_ratio", "Share of this scheduler's feed polls answered 304"
)
ENTRIES_ENQUEUED = Counter("newswire_entries_enqueued", "Feed entries enqueued as new jobs")
ARTICLES = Counter(
    "newswire_articles_stored", "Articles committed, by type: new story or duplicate", ["type"]
)
JOB_FAILURES = Counter(
    "newswire_job_failures", "Article jobs that raised (retried or failed), by error", ["error"]
)
FETCH_SECONDS = Histogram(
    "newswire_fetch_seconds", "HTTP fetch time, by what was fetched", ["kind"], buckets=_LATENCY
)
EXTRACT_SECONDS = Histogram(
    "newswire_extract_seconds", "Main-text extraction time per page", buckets=_LATENCY
)

_polls = {"total": 0, "not_modified": 0}


def observe_poll(status: int | None) -> None:
    FEED_POLLS.labels(str(status) if status else "error").inc()
    _polls["total"] += 1
    _polls["not_modified"] += status == 304
    NOT_MODIFIED_RATIO.set(_polls["not_modified"] / _polls["total"])


def serve(port: int | None, *, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``port`` (None or 0: not at all). A port in use is
    logged, not fatal: metrics must never stop ingestion."""
    if not port:
        return
    try:
        start_http_server(port, addr=addr)
    except OSError as e:
        log.warning("metrics: cannot listen on port %d (%s); /metrics is off", port, e)
        return
    log.info("metrics on http://%s:%d/metrics", addr, port)
