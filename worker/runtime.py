"""Per-process state of a worker, made once and reused by every job."""

from __future__ import annotations

from dataclasses import dataclass, field

from newswire.http import Fetcher
from newswire.settings import Settings
from newswire.store import Store, connect


@dataclass
class Runtime:
    settings: Settings
    store: Store
    fetcher: Fetcher
    #: Hosts by whether their last page took ``worker.jobs.SLOW_FETCH`` or more, the
    #: most recent last (read and written by a job's own thread only).
    slow_hosts: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        return cls(settings, Store(connect(settings), settings), Fetcher(settings))


_current: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    """Make ``runtime`` the one jobs in this process use (``python -m worker`` does)."""
    global _current
    _current = runtime


def current() -> Runtime:
    """The installed runtime; made from the environment on first use otherwise
    (a job run by a plain ``rq worker``)."""
    global _current
    if _current is None:
        _current = Runtime.create(Settings.from_env())
    return _current
