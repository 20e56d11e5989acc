"""Jobs of workers that died mid-job (``kill -9``, OOM, a lost machine), given back to RQ.

RQ keeps a started job in the queue's ``StartedJobRegistry`` until the job's
timeout plus a minute has passed, then its maintenance (every 10 minutes by
default) treats it as abandoned: retried if it has retries left, else failed.
Left to that, an article whose worker was killed waits up to a quarter of an
hour. A worker that starts looks for workers registered on its own host whose
process is gone, marks their started jobs as expired in that registry, and
runs RQ's own clean-up, so those jobs take RQ's abandoned-job path at once.
The commit script makes running them again safe: an article committed before
the kill is found and not stored or announced twice.

Workers on other hosts can't be checked this way; for them RQ's timeout
applies.
"""

from __future__ import annotations

import logging
import os
import socket

from rq import Queue, Worker
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.registry import StartedJobRegistry
from rq.worker import BaseWorker

from newswire.store import decoded

log = logging.getLogger("newswire.worker")


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def dead_workers(queue: Queue, *, me: str = "") -> list[BaseWorker]:
    """Workers of ``queue`` registered from this host whose process no longer runs.

    A worker with this process's own pid but another name is dead too: a container
    restarted after a crash gets the same hostname and, often, the same pid.
    """
    host = socket.gethostname()
    dead = []
    for worker in Worker.all(queue=queue):
        if worker.name == me or worker.hostname != host or not worker.pid:
            continue
        if worker.pid == os.getpid() or _process_gone(worker.pid):
            dead.append(worker)
    return dead


def reclaim(queue: Queue, *, me: str = "") -> int:
    """Hand the started jobs of this host's dead workers to RQ's abandoned-job
    handling now; the number of jobs handed back."""
    registry = StartedJobRegistry(queue=queue)
    connection = queue.connection
    count = 0
    for worker in dead_workers(queue, me=me):
        executions = connection.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker.name))
        started = [decoded(e) for e in executions
                   if connection.zscore(registry.key, e) is not None]
        if started:
            # Expired as of the epoch: the next clean-up takes them, and only them
            # besides the jobs that have really timed out.
            connection.zadd(registry.key, dict.fromkeys(started, 0), xx=True)
            count += len(started)
        log.warning("worker %s (pid %s) is gone: %d started job(s) handed back",
                    worker.name, worker.pid, len(started))
        worker.register_death()  # type: ignore[no-untyped-call]
    if count:
        registry.cleanup()
    return count
