"""The figures an operator looks at: one snapshot, read from Redis.

``newswire status`` prints it once; ``newswire up`` redraws it live.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from .settings import Settings
from .store import Store


@dataclass(frozen=True)
class Snapshot:
    feeds_polled: int
    not_modified: int
    feed_errors: int
    feeds_failing: int
    feeds_disabled: int
    entries_enqueued: int
    new_stories: int
    duplicates: int
    recent: int
    queued: int
    running: int
    scheduled: int
    failed: int
    workers: int

    @property
    def articles(self) -> int:
        return self.new_stories + self.duplicates

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "articles": self.articles}

    def line(self) -> str:
        """The compact one-line form of ``newswire up``."""
        return (
            f"polls {self.feeds_polled} (304 {self.not_modified}, errors {self.feed_errors})"
            f" · articles {self.articles} (new {self.new_stories}, dup {self.duplicates})"
            f" · queue {self.queued} running {self.running} retrying {self.scheduled}"
            f" failed {self.failed} · workers {self.workers}"
        )


def snapshot(client: redis.Redis, settings: Settings, feed_names: list[str]) -> Snapshot:
    store = Store(client, settings)
    stats = store.stats()
    queue = Queue(settings.queue_name, connection=client)
    states = store.feed_states(feed_names).values()
    failing = sum((state.get("errors") or "0") != "0" for state in states)
    disabled = sum(state.get("disabled") == "1" for state in states)
    return Snapshot(
        feeds_polled=stats.get("feeds_polled", 0),
        not_modified=stats.get("feeds_not_modified", 0),
        feed_errors=stats.get("feed_errors", 0),
        feeds_failing=failing,
        feeds_disabled=disabled,
        entries_enqueued=stats.get("entries_enqueued", 0),
        new_stories=stats.get("articles_new", 0),
        duplicates=stats.get("articles_duplicate", 0),
        recent=int(client.zcard(store.keys.recent)),
        queued=queue.count,
        running=StartedJobRegistry(queue=queue).count,
        scheduled=ScheduledJobRegistry(queue=queue).count,  # type: ignore[no-untyped-call]
        failed=FailedJobRegistry(queue=queue).count,
        workers=Worker.count(queue=queue),
    )
