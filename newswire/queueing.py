"""How feed entries become RQ jobs, for the scheduler (which enqueues what its polls
found) and the worker (which hands an entry that failed inside a batch back to
the queue as a job of its own).

RQ spends about 3 ms of its own on every job (some twenty round trips to Redis:
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


def batch_sizes(settings: Settings, entries: int, workers: int) -> list[int]:
    """How many entries each job gets: at most ``job_batch``, as evenly as they go
    (sizes one apart at most), in as many jobs as the live workers or a multiple of
    that, while there are entries enough. So every worker gets an equal share, and
    none works a last job alone while the others wait: ten new entries and five
    workers make five jobs of two; 300 entries, two workers and a ``job_batch`` of 16
    make 20 jobs of 15, not 18 of 16 and one of 12."""
    if entries <= 0:
        return []
    jobs = math.ceil(entries / max(1, settings.job_batch))
    jobs = min(entries, math.ceil(jobs / max(1, workers)) * max(1, workers))
    size, more = divmod(entries, jobs)
    return [size + 1] * more + [size] * (jobs - more)


def _retry() -> Retry:
    return Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS)


def _timeout(settings: Settings, entries: int) -> int:
    return int(settings.request_timeout * 2 * entries + 60)


def _enqueue(queue: Queue, function: str, arg: Any, jid: str, settings: Settings,
             entries: int, description: str) -> bool:
    """Enqueue one job with newswire's policy (RQ's retries, a timeout for its
    entries, how long its result and failure are kept). ``unique=True`` makes the
    check-and-save one atomic step: False when a job of that id is already queued,
    running or done."""
    try:
        queue.enqueue_call(
            function, args=[arg], job_id=jid, unique=True, retry=_retry(),
            timeout=_timeout(settings, entries), result_ttl=86_400, failure_ttl=7 * 86_400,
            description=description,
        )
    except DuplicateJobError:
        return False
    return True


def enqueue_one(queue: Queue, entry: FeedEntry, settings: Settings) -> str | None:
    """One entry as its own job, with RQ's retries; its id comes from the canonical
    URL. None when a job for that URL is already queued, running or done."""
    jid = job_id(entry.canonical_url)
    enqueued = _enqueue(queue, INGEST_JOB, entry.to_payload(), jid, settings, 1,
                        f"ingest {entry.canonical_url}")
    return jid if enqueued else None


def enqueue_entries(
    queue: Queue, entries: Sequence[FeedEntry], settings: Settings
) -> tuple[list[tuple[FeedEntry, str]], int]:
    """Enqueue ``entries`` in batches (a batch of one is a plain single job): each
    entry with the id of the job that has it, and how many were enqueued now (the
    rest had their job already: enqueued by another scheduler, or by this one before
    a crash kept it from marking them seen, if they fall into the same batch again)."""
    if not entries:
        return [], 0
    # A single entry is a single job however many work: no need to count them.
    workers = Worker.count(queue=queue) if len(entries) > 1 else 1
    placed: list[tuple[FeedEntry, str]] = []
    count = start = 0
    for size in batch_sizes(settings, len(entries), workers):
        chunk, start = entries[start:start + size], start + size
        if len(chunk) == 1:
            jid = job_id(chunk[0].canonical_url)
            enqueued = enqueue_one(queue, chunk[0], settings) is not None
        else:
            # The same entries give the same id: a scheduler that re-polls after a
            # crash between enqueueing and marking them seen enqueues them again only
            # if they now fall into other batches (other feeds collected alongside,
            # another number of workers); the worker then finds them stored.
            digest = hashlib.sha256(" ".join(e.canonical_url for e in chunk).encode())
            jid = f"batch-{digest.hexdigest()[:32]}"
            feeds = sorted({e.feed for e in chunk})
            enqueued = _enqueue(queue, INGEST_BATCH_JOB, [e.to_payload() for e in chunk], jid,
                                settings, len(chunk),
                                f"ingest {len(chunk)} entries of {', '.join(feeds[:3])}"
                                + (f" and {len(feeds) - 3} more feeds" if len(feeds) > 3 else ""))
        placed += [(entry, jid) for entry in chunk]
        count += len(chunk) if enqueued else 0
    return placed, count
