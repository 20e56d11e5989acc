"""What every newswire entry point shares: settings, logging, one-line errors."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

import redis

from .errors import NewswireError
from .logs import setup_logging
from .settings import Settings


def run_main(body: Callable[[Settings], int], *, prog: str, json_logs: bool = False) -> int:
    """Run ``body`` with settings from the environment; turn errors into one line.

    A :class:`NewswireError` or a Redis connection failure prints
    ``prog: error: ...`` on stderr and gives exit status 1, never a traceback.
    """
    setup_logging(json_lines=json_logs or os.environ.get("NEWSWIRE_LOG_JSON", "") == "1")
    try:
        settings = Settings.from_env()
        return body(settings)
    except KeyboardInterrupt:
        return 0
    except NewswireError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except redis.RedisError as e:
        logging.getLogger(prog).debug("redis error", exc_info=True)
        print(f"{prog}: error: Redis: {e}", file=sys.stderr)
        return 1
