"""URL canonicalization: one spelling per article, whatever the feed wrote.

Pure functions over strings. The rules follow RFC 3986 section 6 (syntax-based
normalization: case of scheme and host, default ports, percent-encoding, dot
segments) plus what news feeds add: tracking parameters (``utm_*`` and the
click ids of ad networks), fragments, and whitespace or stray separators at
the end of a link.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from tld import get_fld

#: Query parameters that identify a campaign or a click, never a page.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
    "igshid", "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id",
    "rb_clickid", "s_cid", "vero_id", "vero_conv", "wickedid", "_ga", "_gl", "ito", "cmpid",
    "ncid", "ocid", "sr_share", "at_medium", "at_campaign", "at_custom1", "at_custom2",
    "at_custom3", "at_custom4", "ref_src", "ref_url", "spm", "xtor", "__twitter_impression",
})
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters RFC 3986 calls unreserved never need escaping; everything else that
# is legal in a path stays as it is.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_TRAILING_JUNK = re.compile(r"[\s\u200b\ufeff]+$|^[\s\u200b\ufeff<]+|>+$")


class InvalidURL(ValueError):
    """Not an absolute http(s) URL."""


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def _normalize_path(path: str) -> str:
    if not path:
        return "/"
    # Decode then re-encode so that %7E and ~ or %2f-free escapes compare equal;
    # a literal %2F stays escaped because it differs from "/" (RFC 3986 2.2).
    parts = [quote(unquote(p), safe=_PATH_SAFE.replace("/", "")) for p in path.split("/")]
    normalized = "/".join(parts)
    trailing = normalized.endswith("/")
    normalized = posixpath.normpath(normalized)
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    if trailing and normalized != "/":
        normalized += "/"
    return normalized


def canonicalize(url: str) -> str:
    """The canonical spelling of an absolute http(s) ``url``.

    Lower-cases scheme and host, drops default ports, user info, fragments,
    tracking parameters and trailing junk, resolves dot segments, normalizes
    percent-encoding and sorts the remaining query parameters.

    >>> canonicalize("HTTPS://Example.COM:443/a/./b/../c?utm_source=rss&b=2&a=1#top")
    'https://example.com/a/c?a=1&b=2'

    Raises :class:`InvalidURL` for anything but an absolute http(s) URL.
    """
    url = _TRAILING_JUNK.sub("", url.strip())
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidURL(f"not a valid URL: {url[:200]!r} ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURL(f"not an http(s) URL: {url[:200]!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidURL(f"URL has no host: {url[:200]!r}")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise InvalidURL(f"URL has an invalid host name: {url[:200]!r}") from None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query_pairs = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    ]
    query = urlencode(sorted(query_pairs), quote_via=quote, safe="-._~!$'()*,;:@/")
    return urlunsplit((scheme, netloc, _normalize_path(parts.path), query, ""))


def url_hash(url: str) -> str:
    """A short, stable hex digest of a URL, for Redis keys and RQ job ids."""
    return hashlib.blake2b(url.encode("utf-8"), digest_size=16).hexdigest()


def host_of(url: str) -> str:
    """The lower-cased host of ``url`` ('' when it has none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def site_of(url: str) -> str:
    """The site a URL belongs to: its registered domain (``www.bbc.co.uk`` → ``bbc.co.uk``,
    by the Public Suffix List that ``tld`` ships), or for an IP address or a single-label
    host such as ``localhost``, the host with its port, so two local servers stay apart.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return ""
    if not host:
        return ""
    domain = get_fld(host, fix_protocol=True, fail_silently=True)
    if isinstance(domain, str) and domain:
        return domain
    return f"{host}:{port}" if port else host
