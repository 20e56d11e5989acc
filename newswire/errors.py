"""The one exception tree of newswire.

Third-party errors (httpx, redis, feedparser, trafilatura, tomllib) are
translated into these at the edges with ``raise ... from e``, so a user sees
one clear line and the log keeps the cause::

    NewswireError
    ├── ConfigError            bad settings, unreadable or invalid feeds file, unknown feed
    ├── FetchError             an HTTP request did not give a usable body
    │   ├── BlockedURLError    refused before any request: scheme or private address
    │   │   └── DisallowedByRobotsError  the site's robots.txt disallows the page
    │   ├── TooLargeError      body over the size limit (cut off while streaming)
    │   ├── HTTPStatusError    the server answered with an error status
    │   └── TransientFetchError  worth retrying: timeout, connection reset, 429, 5xx
    ├── ParseError             a feed that is not a feed (malformed XML, HTML, binary)
    ├── ExtractError           a page and its feed entry gave no article text
    └── StoreError             Redis unreachable or refused a command
"""

from __future__ import annotations


class NewswireError(Exception):
    """Root of every error newswire raises on purpose."""


class ConfigError(NewswireError):
    """Settings or the feeds file are unusable."""


class FetchError(NewswireError):
    """An HTTP request did not give a usable body."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class BlockedURLError(FetchError):
    """Refused before any request was made (non-HTTP scheme or a private address)."""


class DisallowedByRobotsError(BlockedURLError):
    """The site's robots.txt does not let newswire fetch this page."""


class TooLargeError(FetchError):
    """The body grew past the configured limit and was cut off while streaming."""


class HTTPStatusError(FetchError):
    """The server answered with a status that carries no usable body."""

    def __init__(
        self, message: str, *, url: str = "", status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


class TransientFetchError(HTTPStatusError):
    """A failure that may go away by itself: timeouts, resets, 429 and 5xx."""


class ParseError(NewswireError):
    """A feed document that could not be parsed into entries."""


class ExtractError(NewswireError):
    """Neither the page nor the feed entry gave any article text."""


class StoreError(NewswireError):
    """Redis could not be reached or refused a command."""
