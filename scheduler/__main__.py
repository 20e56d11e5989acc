"""``python -m scheduler [--once]``: poll the feeds file's feeds."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

import redis

from newswire import metrics
from newswire.cli_args import OneLineParser
from newswire.process import run_main
from newswire.settings import Settings
from newswire.store import connect, ping

from .service import Scheduler

log = logging.getLogger("newswire.scheduler")
#: The longest the loop sleeps, so that feeds added to the file are picked up soon.
MAX_SLEEP = 30.0
#: How often the loop looks at polls in flight while there are some.
IN_FLIGHT_SLEEP = 0.2


def run(settings: Settings, *, once: bool) -> int:
    ping(settings)
    client = connect(settings)
    scheduler = Scheduler(settings, client)
    if not once:
        metrics.serve(settings.metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        scheduler.feeds_file.load()  # a bad feeds file is a one-line error at start
        started = time.time()
        while not stop.is_set():
            try:
                # --once: every feed due at the start, in batches, each polled once (a
                # polled feed is never due again at the same 'now'). Otherwise the
                # loop doesn't wait for slow feeds: a later tick reports them.
                report = scheduler.tick(started if once else time.time(), wait=once)
            except redis.RedisError as e:
                if once:
                    raise
                log.warning("Redis unavailable (%s); trying again", e)
                stop.wait(2.0)
                continue
            if report.polled:
                log.info(
                    "polled %d feeds (%s), enqueued %d articles", report.polled,
                    ", ".join(f"{k}: {v}" for k, v in sorted(report.statuses.items())),
                    report.enqueued,
                )
            if once:
                if report.polled + len(report.errors) == 0:
                    break
                continue
            due = scheduler.next_due()
            wait = MAX_SLEEP if due is None else min(max(due - time.time(), 0.5), MAX_SLEEP)
            if scheduler.in_flight:
                wait = min(wait, IN_FLIGHT_SLEEP)  # report them (and start more) soon
            stop.wait(wait)
    finally:
        scheduler.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m scheduler", description=__doc__)
    parser.add_argument(
        "--once", action="store_true",
        help="poll every due feed (all of them on a fresh Redis) one time, then exit",
    )
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    args = parser.parse_args(argv)
    return run_main(lambda s: run(s, once=args.once), prog="scheduler", json_logs=args.log_json)


if __name__ == "__main__":
    sys.exit(main())
