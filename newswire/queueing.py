"""How feed entries become RQ jobs, for the scheduler (which enqueues what its polls
found) and the worker (which hands an entry that failed inside a batch back to
the queue as a job of its own).

RQ spends about 4 ms of its own on every job (some twenty round trips to Redis:
registries, heartbeats, results), more than fetching and cleaning a page costs.
So entries go out in batches of up to ``Settings.job_batch``, spread over the
live workers. A batch job commits each of its entries on its own: one that
can't be stored at once becomes a single-entry job with RQ's retries and
failed registry, as if it had been enqueued alone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import redis
from rq import Queue, Retry, Worker
from rq.exceptions import DuplicateJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from .model import FeedEntry
from .schema import job_id
from .settings import Settings

#: The worker's jobs. Strings, so the scheduler never imports the worker.
INGEST_JOB = "worker.jobs.ingest"
INGEST_BATCH_JOB = "worker.jobs.ingest_batch"
#: RQ retries a job that raised (transient fetch failures) after these many seconds.
RETRY_INTERVALS = [10, 60, 300]


def ingest_queue(settings: Settings, client: redis.Redis) -> Queue:
    return Queue(settings.queue_name, connection=client, serializer=JSONSerializer)


def job_entries(job: Job) -> list[dict[str, Any]]:
    """The entry payloads a job carries: a single job's one, a batch job's several
    (none for a job newswire did not enqueue)."""
    arg = job.args[0] if job.args else None
    payloads = arg if isinstance(arg, list) else [arg]
    return [p for p in payloads if isinstance(p, dict)]


def batch_size(settings: Settings, entries: int, workers: int) -> int:
    """Entries per job: at most ``job_batch``, and few enough that every live worker
    gets a share (ten new entries and five workers: five jobs of two)."""
    return max(1, min(settings.job_batch, math.ceil(entries / max(1, workers))))


def _retry() -> Retry:
    return Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS)


def _timeout(settings: Settings, entries: int) -> int:
    return int(settings.request_timeout * 2 * entries + 60)


def enqueue_one(queue: Queue, entry: FeedEntry, settings: Settings) -> str | None:
    """One entry as its own job, with RQ's retries. The job id comes from the
    canonical URL and RQ's ``unique=True`` makes the check-and-save one atomic step:
    None when a job for that URL is already queued, running or done."""
    jid = job_id(entry.canonical_url)
    try:
        queue.enqueue_call(
            INGEST_JOB, args=[entry.to_payload()], job_id=jid, unique=True, retry=_retry(),
            timeout=_timeout(settings, 1), result_ttl=86_400, failure_ttl=7 * 86_400,
            description=f"ingest {entry.canonical_url}",
        )
    except DuplicateJobError:
        return None
    return jid


def enqueue_entries(
    queue: Queue, entries: Sequence[FeedEntry], settings: Settings
) -> list[tuple[FeedEntry, str]]:
    """Enqueue ``entries`` in batches (a batch of one is a plain single job): the
    entries enqueued, each with the id of its job."""
    if not entries:
        return []
    # A single entry is a single job however many work: no need to count them.
    workers = Worker.count(queue=queue) if len(entries) > 1 else 1
    size = batch_size(settings, len(entries), workers)
    enqueued: list[tuple[FeedEntry, str]] = []
    for start in range(0, len(entries), size):
        chunk = entries[start:start + size]
        if len(chunk) == 1:
            jid = enqueue_one(queue, chunk[0], settings)
            enqueued += [(chunk[0], jid)] if jid else []
            continue
        # The same entries give the same id: a scheduler that re-polls after a crash
        # between enqueueing and marking them seen cannot enqueue them twice.
        digest = hashlib.sha256(" ".join(e.canonical_url for e in chunk).encode())
        jid = f"batch-{digest.hexdigest()[:32]}"
        try:
            queue.enqueue_call(
                INGEST_BATCH_JOB, args=[[e.to_payload() for e in chunk]], job_id=jid,
                unique=True, retry=_retry(), timeout=_timeout(settings, len(chunk)),
                result_ttl=86_400, failure_ttl=7 * 86_400,
                description=f"ingest {len(chunk)} entries of {chunk[0].feed}",
            )
        except DuplicateJobError:
            continue
        enqueued += [(entry, jid) for entry in chunk]
    return enqueued
