"""newswire: feeds in, clean deduplicated stories out, on Redis.

The packages are laid out by stage:

* ``newswire`` holds the shared core: settings, domain types, the pure
  functions (URL canonicalization, feed parsing, cleaning, fingerprints),
  the adapters for HTTP and Redis, and the ``newswire`` CLI.
* ``scheduler`` polls feeds and enqueues one RQ job per new entry.
* ``worker`` runs those jobs: fetch the page, clean it, fingerprint it and
  commit it to Redis in one atomic script.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("newswire")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

PROJECT_URL = "https://github.com/newswire-project/newswire"
USER_AGENT = f"newswire/{__version__} (+{PROJECT_URL})"
