"""The figures an operator looks at: one snapshot, read from Redis.

``newswire status`` prints it once; ``newswire up`` redraws it live.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from .queueing import job_entries
from .settings import Settings
from .store import Store


@dataclass(frozen=True)
class FailedJob:
    """An article job in RQ's failed registry, and why it failed."""

    id: str
    url: str
    feed: str
    failed_at: str  # ISO 8601 UTC or ''
    reason: str


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
    #: The most recently failed jobs (at most :data:`FAILED_SHOWN`).
    failed_jobs: tuple[FailedJob, ...] = field(default=())

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


#: Failed jobs ``newswire status`` lists, newest first.
FAILED_SHOWN = 10


def _reason(job: Job) -> str:
    """The last line of the job's failure (the exception and its message)."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else "") or ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # "newswire.errors.ExtractError: ..." -> "ExtractError: ..."
    return re.sub(r"^(?:\w+\.)+(?=\w+: )", "", lines[-1]) if lines else "unknown"


def failed_jobs(queue: Queue, limit: int = FAILED_SHOWN) -> tuple[FailedJob, ...]:
    """The newest ``limit`` jobs of the queue's failed registry, with their reasons."""
    registry = FailedJobRegistry(queue=queue)
    ids = registry.get_job_ids()[-limit:][::-1]  # the registry is ordered by failure time
    jobs = Job.fetch_many(ids, connection=queue.connection, serializer=JSONSerializer)
    out = []
    for job_id, job in zip(ids, jobs, strict=True):
        if job is None:
            continue
        payloads = job_entries(job)  # a batch is shown by its first entry
        payload = payloads[0] if payloads else {}
        more = f" and {len(payloads) - 1} more" if len(payloads) > 1 else ""
        ended = job.ended_at
        out.append(FailedJob(
            id=job_id,
            url=f"{payload.get('link', '')}{more}",
            feed=str(payload.get("feed", "")),
            failed_at=ended.strftime("%Y-%m-%dT%H:%M:%SZ") if ended else "",
            reason=_reason(job),
        ))
    return tuple(out)


def snapshot(
    client: redis.Redis, settings: Settings, feed_names: list[str], *, failed_shown: int = 0
) -> Snapshot:
    """The figures; with ``failed_shown``, that many of the newest failed jobs too."""
    store = Store(client, settings)
    stats = store.stats()
    queue = Queue(settings.queue_name, connection=client, serializer=JSONSerializer)
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
        failed_jobs=failed_jobs(queue, failed_shown) if failed_shown else (),
    )
