"""``python -m worker [--burst]``: an RQ worker for newswire's queue."""

from __future__ import annotations

import sys

from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from newswire import metrics
from newswire.cli_args import OneLineParser
from newswire.process import run_main
from newswire.settings import Settings
from newswire.store import ping

from . import jobs  # noqa: F401  (imported once here, so no job pays for it)
from .runtime import Runtime, install


def run(settings: Settings, *, burst: bool, name: str | None = None) -> int:
    ping(settings)
    runtime = Runtime.create(settings)
    client = runtime.store.redis
    install(runtime)
    if not burst:
        metrics.serve(settings.metrics_port)
    queue = Queue(settings.queue_name, connection=client, serializer=JSONSerializer)
    # SimpleWorker runs jobs in this process: the imports, the HTTP client and
    # the Redis pool stay warm from one job to the next (RQ's default Worker
    # forks a fresh child per job).
    worker = SimpleWorker([queue], connection=client, serializer=JSONSerializer, name=name)
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        runtime.fetcher.close()
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
