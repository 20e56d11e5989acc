"""``python -m worker [--burst]``: an RQ worker for newswire's queue."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

import redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from newswire import metrics
from newswire.cli_args import OneLineParser
from newswire.process import run_main
from newswire.settings import Settings
from newswire.store import ping

from . import jobs  # noqa: F401  (imported once here, so no job pays for it)
from .recovery import reclaim
from .runtime import Runtime, install

log = logging.getLogger("newswire.worker")
#: Longest wait between two tries to reach Redis again after RQ's loop gave up.
MAX_REDIS_WAIT = 30.0
#: Seconds between RQ's maintenance runs (RQ's default: 10 minutes). Maintenance is
#: what gives back a job that a killed worker had taken off the queue but not yet
#: started (RQ's intermediate queue: after a minute there) and what lets a live worker
#: take over the scheduling of retries from a dead one; it is one locked pass over
#: the registries, cheap at this rate.
MAINTENANCE_INTERVAL = 60
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """In a child forked from the worker (RQ forks its scheduler of retries): end when
    the worker ends, even by SIGKILL, instead of living on as an orphan that holds
    RQ's scheduler lock."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return  # not Linux: RQ's own lock expiry applies
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(0)


class Worker(SimpleWorker):
    """RQ's SimpleWorker, which runs jobs in this process: the imports, the HTTP
    client and the Redis pool stay warm from one job to the next (RQ's default
    Worker forks a fresh child per job). It remembers whether a signal asked it to
    stop, so that a loop ended by anything else can be started again."""

    stopping = threading.Event()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        type(self).stopping.set()
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def unsubscribe(self) -> None:
        """RQ's, with its listener thread told to stop *before* the UNSUBSCRIBE whose
        reply wakes it. In RQ's order the listener may read that reply first, go back
        to its 60 s wait, and hold up every exit for the whole second of RQ's join:
        ``worker --burst`` with nothing to do took 0.6 to 1.6 s."""
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop()
        super().unsubscribe()  # type: ignore[no-untyped-call]


def run(settings: Settings, *, burst: bool, name: str | None = None) -> int:
    ping(settings)
    runtime = Runtime.create(settings)
    client = runtime.store.redis
    install(runtime)
    if not burst:
        metrics.serve(settings.metrics_port)
    queue = Queue(settings.queue_name, connection=client, serializer=JSONSerializer)
    worker_pid = os.getpid()
    os.register_at_fork(after_in_child=lambda: _die_with_parent(worker_pid))
    wait, attempt = 1.0, 0
    try:
        while True:
            # RQ refuses a second live registration of one name: a restart takes a new one.
            this_name = name if not name or not attempt else f"{name}.{attempt}"
            attempt += 1
            worker = Worker([queue], connection=client, serializer=JSONSerializer, name=this_name,
                            maintenance_interval=MAINTENANCE_INTERVAL)
            try:
                reclaim(queue, me=worker.name)
                worked = worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
            except redis.ConnectionError as e:  # raised outside RQ's loop (start, reclaim)
                log.warning("Redis unavailable (%s)", e)
                worked = False
            if burst or Worker.stopping.is_set():
                return 0
            # RQ's loop ended on its own: Redis was gone for longer than the client's
            # retries. Start again once it answers (data is in Redis, nothing is lost).
            wait = 1.0 if worked else min(wait * 2, MAX_REDIS_WAIT)
            log.warning("worker loop ended; starting again in %.0f s", wait)
            if Worker.stopping.wait(wait):
                return 0
    finally:
        runtime.fetcher.close()


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m worker", description=__doc__)
    parser.add_argument(
        "--burst", action="store_true", help="process every queued job, then exit"
    )
    parser.add_argument("--name", help="worker name shown by RQ (default: random)")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    args = parser.parse_args(argv)
    return run_main(
        lambda s: run(s, burst=args.burst, name=args.name), prog="worker", json_logs=args.log_json
    )


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` once its logs are out, without the interpreter's
    teardown of every module and object: about 0.15 s on the development machine (a
    burst with nothing to do, alternated with the teardown: 0.68-0.80 s -> 0.51-0.64 s).
    What the teardown would do besides is the exit handlers, and the only one
    (logging's) is run here first. The sockets close with the process; the loop has
    left Redis and joined its threads by now."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
