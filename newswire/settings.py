"""One settings object, read from the environment once at process start.

Nothing below the entry points reads ``os.environ``: each process builds a
:class:`Settings` with :meth:`Settings.from_env` and passes it down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path

from . import USER_AGENT
from .errors import ConfigError

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
EMBEDDED_SOCKET = "redis.sock"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, high: float | None = None) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or (high is not None and value > high):
        bound = f"between 0 and {high:g}" if high is not None else "at least 0"
        raise ConfigError(f"{name} must be {bound}, got {raw}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def shipped_feeds_file() -> Path:
    """The feeds file shipped with the package (The Moscow Times and TheJournal)."""
    return Path(str(files("newswire") / "data" / "feeds.toml"))


@dataclass(frozen=True)
class Settings:
    """Everything a newswire process needs to know about its environment."""

    redis_url: str = DEFAULT_REDIS_URL
    #: True when REDIS_URL was not given and the URL points at ``newswire up``'s Redis.
    redis_embedded: bool = False
    prefix: str = "news"
    feeds_path: Path = field(default_factory=shipped_feeds_file)
    data_dir: Path = Path(".newswire")
    allow_private_networks: bool = False
    user_agent: str = USER_AGENT
    queue_name: str = "newswire"
    #: Seconds between polls of a feed that gives no hint of its own.
    default_interval: int = 900
    #: Days an article, its dedup keys and its index entries are kept.
    retention_days: int = 30
    #: Approximate cap of the ``news:stream`` stream (XADD MAXLEN ~).
    stream_maxlen: int = 100_000
    feed_max_bytes: int = 10 * 1024 * 1024
    page_max_bytes: int = 10 * 1024 * 1024
    #: New entries enqueued from one feed per poll, the first in document order;
    #: the rest wait for the next polls (0: no cap).
    feed_max_entries: int = 1000
    #: Most entries in one RQ job (:mod:`newswire.queueing`), and pages a job fetches
    #: ahead of the one it is cleaning.
    job_batch: int = 32
    fetch_ahead: int = 4
    #: Seconds for connecting, and the total budget of one request with its redirects.
    connect_timeout: float = 10.0
    request_timeout: float = 30.0
    max_redirects: int = 5
    #: Feed polls in flight at once, at most so many per host, and the least time
    #: in seconds between the starts of two requests to one host.
    poll_concurrency: int = 32
    per_host_concurrency: int = 2
    host_spacing: float = 1.0
    #: Bounds in seconds of the interval learnt from a feed's pace (feeds without
    #: an ``interval`` of their own).
    min_interval: int = 300
    max_interval: int = 43_200
    #: Most feeds one scheduler tick claims.
    poll_batch: int = 2000
    #: Honour robots.txt for article pages (feeds, subscribed to by name, are not crawled).
    obey_robots: bool = True
    #: Port of the Prometheus endpoint (None: off).
    metrics_port: int | None = None
    #: The user's folder of site profiles (None: only the shipped ones).
    profiles_dir: Path | None = None
    #: Pages of one site a paragraph must be seen on to count as its boilerplate (0: off).
    boilerplate_min_pages: int = 3
    #: Most paragraph counts kept per site in Redis (bounded memory).
    site_blocks_max: int = 4096
    #: Word 3-shingle Jaccard from which an article is the same as an earlier one.
    neardup_threshold: float = 0.5
    #: Share of the shorter text's shingles found in the longer one from which it is
    #: the same article, truncated (or with a lead paragraph only).
    neardup_containment: float = 0.9
    #: Story score (``newswire.stories.compare``) from which a rewrite joins a story.
    story_threshold: float = 0.6
    #: Hours apart within which two articles may be one story.
    story_window_hours: float = 72.0
    #: Most ids kept per near-duplicate bucket and per story-term posting list.
    index_bucket_max: int = 64
    #: Most candidates verified per article and level (the best by shared bands or terms).
    dedup_candidates: int = 12

    @property
    def redis_url_redacted(self) -> str:
        """``redis_url`` with any password replaced by ``***``, for messages and logs."""
        return re.sub(r"(?<=://)([^:/@]*):[^@/]*@", r"\1:***@", self.redis_url)

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 86_400

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """Read the settings from ``env`` (default: ``os.environ``).

        ``REDIS_URL`` unset: when a ``newswire up`` in this folder (or
        ``NEWSWIRE_DATA``) runs or ran an embedded Redis, its socket is used, so
        that ``newswire recent`` and friends find it without being told.
        """
        env = os.environ if env is None else env
        cwd = Path.cwd() if cwd is None else cwd
        data_dir = Path(env.get("NEWSWIRE_DATA") or cwd / ".newswire")
        redis_url = env.get("REDIS_URL", "").strip()
        embedded = False
        if not redis_url:
            # `newswire up` keeps its Redis here: running (a socket), or stopped (its AOF).
            if (data_dir / EMBEDDED_SOCKET).exists() or (data_dir / "appendonlydir").is_dir():
                redis_url = f"unix://{(data_dir / EMBEDDED_SOCKET).resolve()}"
                embedded = True
            else:
                redis_url = DEFAULT_REDIS_URL
        if not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"REDIS_URL must be a redis://, rediss:// or unix:// URL, got {redis_url!r}"
            )
        feeds = env.get("NEWSWIRE_FEEDS", "").strip()
        if feeds:
            feeds_path = Path(feeds)
        elif (cwd / "feeds.toml").exists():
            feeds_path = cwd / "feeds.toml"
        else:
            feeds_path = shipped_feeds_file()
        profiles = env.get("NEWSWIRE_PROFILES", "").strip()
        profiles_dir = Path(profiles) if profiles else cwd / "profiles"
        if profiles and not profiles_dir.is_dir():
            raise ConfigError(f"NEWSWIRE_PROFILES must be a folder, got {profiles!r}")
        min_interval = _int(env, "NEWSWIRE_MIN_INTERVAL", 300) or 300
        max_interval = _int(env, "NEWSWIRE_MAX_INTERVAL", 43_200) or 43_200
        if min_interval > max_interval:
            raise ConfigError(
                f"NEWSWIRE_MIN_INTERVAL ({min_interval}) is above NEWSWIRE_MAX_INTERVAL "
                f"({max_interval})"
            )
        prefix = env.get("NEWSWIRE_PREFIX", "").strip() or "news"
        if ":" in prefix or " " in prefix:
            raise ConfigError(f"NEWSWIRE_PREFIX must not contain ':' or spaces, got {prefix!r}")
        return cls(
            redis_url=redis_url,
            redis_embedded=embedded,
            prefix=prefix,
            feeds_path=feeds_path,
            data_dir=data_dir,
            allow_private_networks=_flag(env, "NEWSWIRE_ALLOW_PRIVATE_NETWORKS"),
            default_interval=_int(env, "NEWSWIRE_DEFAULT_INTERVAL", 900) or 900,
            retention_days=_int(env, "NEWSWIRE_RETENTION_DAYS", 30) or 30,
            stream_maxlen=_int(env, "NEWSWIRE_STREAM_MAXLEN", 100_000) or 100_000,
            feed_max_bytes=_int(env, "NEWSWIRE_FEED_MAX_BYTES", 10 * 1024 * 1024),
            page_max_bytes=_int(env, "NEWSWIRE_PAGE_MAX_BYTES", 10 * 1024 * 1024),
            feed_max_entries=_int(env, "NEWSWIRE_FEED_MAX_ENTRIES", 1000),
            job_batch=_int(env, "NEWSWIRE_JOB_BATCH", 32) or 1,
            fetch_ahead=_int(env, "NEWSWIRE_FETCH_AHEAD", 4),
            request_timeout=float(_int(env, "NEWSWIRE_REQUEST_TIMEOUT", 30) or 30),
            metrics_port=_int(env, "NEWSWIRE_METRICS_PORT", 0) or None,
            poll_concurrency=_int(env, "NEWSWIRE_POLL_CONCURRENCY", 32) or 32,
            per_host_concurrency=_int(env, "NEWSWIRE_PER_HOST_CONCURRENCY", 2) or 2,
            host_spacing=_int(env, "NEWSWIRE_HOST_SPACING_MS", 1000) / 1000.0,
            min_interval=min_interval,
            max_interval=max_interval,
            obey_robots=env.get("NEWSWIRE_OBEY_ROBOTS", "1").strip().lower()
            not in {"0", "false", "no", "off"},
            profiles_dir=profiles_dir if profiles_dir.is_dir() else None,
            boilerplate_min_pages=_int(env, "NEWSWIRE_BOILERPLATE_MIN_PAGES", 3),
            site_blocks_max=_int(env, "NEWSWIRE_SITE_BLOCKS_MAX", 4096) or 4096,
            neardup_threshold=_float(env, "NEWSWIRE_NEARDUP_THRESHOLD", 0.5, high=1.0),
            neardup_containment=_float(env, "NEWSWIRE_NEARDUP_CONTAINMENT", 0.9, high=1.0),
            story_threshold=_float(env, "NEWSWIRE_STORY_THRESHOLD", 0.6, high=1.0),
            story_window_hours=_float(env, "NEWSWIRE_STORY_WINDOW_HOURS", 72.0),
            index_bucket_max=_int(env, "NEWSWIRE_INDEX_BUCKET_MAX", 64) or 64,
            dedup_candidates=_int(env, "NEWSWIRE_DEDUP_CANDIDATES", 12) or 12,
        )

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and the CLI's flags use it)."""
        return replace(self, **changes)  # type: ignore[arg-type]
